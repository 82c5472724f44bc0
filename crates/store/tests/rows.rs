//! Rows leave the store as domain types: a stored value that is not a
//! domain value is `Error::Corrupt` naming the column, on both backends.

mod common;

use common::{NOW, exec, seeded};
use store::Db;

/// A student with one (default) binding to the first meter of area 1, and
/// a live session whose token hash is `"h"`.
async fn bound_student(db: &Db) -> (i64, i64) {
    let s = store::students::upsert_by_openid(db, "o-rows", false, NOW)
        .await
        .expect("student");
    let meter: i64 = store::on_db!(db, |p| sqlx::query_scalar(
        "select min(id) from meter where area_id = 1"
    )
    .fetch_one(p)
    .await)
    .expect("meter");
    store::on_db!(db, |p| sqlx::query(
        "insert into binding (student_id, meter_id, is_default, created_at_ms) values ($1, $2, true, $3)"
    )
    .bind(s.id)
    .bind(meter)
    .bind(NOW)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
    .expect("binding");
    store::students::create_session(db, "h", s.id, "csrf", NOW, NOW + 3_600_000)
        .await
        .expect("session");
    (s.id, meter)
}

/// Runs `update meter <set> where id = meter` behind the store's back.
async fn update_meter(db: &Db, set: &str, meter: i64) {
    let sql = format!("update meter {set} where id = $1");
    store::on_db!(db, |p| sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
        .bind(meter)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
    .expect("update");
}

#[track_caller]
fn assert_corrupt<T: std::fmt::Debug>(read: store::Result<T>, column: &str, stored: &str) {
    match read {
        Err(store::Error::Corrupt(why)) => {
            assert!(why.contains(column), "{why}");
            assert!(why.contains(stored), "{why}");
        }
        other => panic!("expected corrupt {column}, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_area_time_zone_is_corrupt_never_a_fallback() {
    for db in seeded().await {
        let (student, _) = bound_student(&db).await;
        exec(
            &db,
            "update area set time_zone = 'Mars/Olympus_Mons' where id = 1",
        )
        .await;
        assert_corrupt(
            store::campus::areas(&db).await,
            "area.time_zone",
            "Mars/Olympus_Mons",
        );
        assert_corrupt(
            store::students::bindings(&db, student).await,
            "area.time_zone",
            "Mars/Olympus_Mons",
        );
        assert_corrupt(
            store::students::default_binding(&db, student).await,
            "area.time_zone",
            "Mars/Olympus_Mons",
        );
        assert_corrupt(
            store::students::session_with_default(&db, "h", NOW).await,
            "area.time_zone",
            "Mars/Olympus_Mons",
        );
    }
}

#[tokio::test]
async fn a_meter_price_that_is_not_a_price_is_corrupt() {
    for db in seeded().await {
        let (student, meter) = bound_student(&db).await;
        // The area's price has a check; a meter's own override has none.
        update_meter(&db, "set unit_price_centifen_per_kwh = 0", meter).await;
        assert_corrupt(
            store::campus::meter_by_id(&db, domain::MeterId::new(meter)).await,
            "unit_price_centifen_per_kwh",
            "= 0",
        );
        assert_corrupt(
            store::students::bindings(&db, student).await,
            "unit_price_centifen_per_kwh",
            "= 0",
        );
    }
}

#[tokio::test]
async fn an_unknown_job_state_is_corrupt() {
    for db in seeded().await {
        // The schema's check keeps such a row out; get past it the way a
        // bad migration or a hand edit would.
        let mut tx = db.begin().await.expect("tx");
        let sqlite = matches!(tx, store::Tx::Sqlite(_));
        let ddl = if sqlite {
            "pragma ignore_check_constraints = on"
        } else {
            "alter table job drop constraint job_state_check"
        };
        store::on_tx!(&mut tx, |c| sqlx::query(ddl)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))
        .expect(ddl);
        store::on_tx!(&mut tx, |c| sqlx::query(
            "insert into job (queue, payload, state, run_at_ms, attempts_max, created_at_ms, updated_at_ms)
             values ('deliver', '{}', 'paused', 0, 3, 0, 0)"
        )
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .expect("insert");
        if sqlite {
            store::on_tx!(&mut tx, |c| sqlx::query(
                "pragma ignore_check_constraints = off"
            )
            .execute(c)
            .await
            .map(|r| r.rows_affected()))
            .expect("pragma");
        }
        tx.commit().await.expect("commit");
        assert_corrupt(store::jobs::depths(&db).await, "job.state", "paused");
    }
}

/// A meter's address leaves the store as a `MeterAddress`: one that is
/// not 12 digits (the schema checks only the length) is corrupt, never a
/// string for callers to compare.
#[tokio::test]
async fn a_meter_address_that_is_not_12_digits_is_corrupt() {
    for db in seeded().await {
        let (_, meter) = bound_student(&db).await;
        let id = domain::MeterId::new(meter);
        let read = store::campus::meter_by_id(&db, id)
            .await
            .expect("read")
            .expect("meter");
        assert_eq!(read.address.as_str().len(), 12);
        update_meter(&db, "set address = '20170101000X'", meter).await;
        assert_corrupt(
            store::campus::meter_by_id(&db, id).await,
            "meter.address",
            "20170101000X",
        );
    }
}
