//! Rows leave the store as domain types: a stored value that is not a
//! domain value is `Error::Corrupt` naming the column, on both backends.

use domain::campus::reference_plan;
use store::campus::GatewayAddressing;
use store::{Db, testing};

const NOW: i64 = 1_795_622_400_000;

async fn seeded() -> Vec<Db> {
    let dbs = testing::all().await.expect("test databases");
    for db in &dbs {
        store::campus::seed(db, &reference_plan(), &GatewayAddressing::default(), NOW)
            .await
            .expect("seed");
    }
    dbs
}

async fn exec(db: &Db, sql: &'static str) {
    store::on_db!(db, |p| sqlx::query(sql)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
    .expect(sql);
}

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
