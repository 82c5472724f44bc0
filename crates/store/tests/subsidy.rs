//! The free monthly allowance (issue 14 item 6, E4) on SQLite and, when
//! `DORMWATT_TEST_PG_URL` is set, on PostgreSQL: a run credits each room
//! once per month (twice in a row, or two runs at once), skips retired
//! meters, keeps the ledger balanced through the delivery, and is reported.

mod common;

use common::{NOW, audit_rows, ledger_ok, staff};
use domain::time::CampusTz;
use domain::{AreaId, CentiKwh, MeterId};
use store::dashboard::Within;
use store::meters::DeliveryEvidence;
use store::orders::{Assignment, DELIVER_QUEUE};
use store::policy::Scope;
use store::{Db, jobs, ledger, on_db, subsidy, testing};

async fn seeded() -> Vec<Db> {
    let dbs = testing::all().await.expect("test databases");
    for db in &dbs {
        testing::seed_one_building_per_area(db, NOW)
            .await
            .expect("seed");
    }
    dbs
}

fn area(id: i64) -> Scope {
    Scope {
        area_id: AreaId::new(id),
        building_id: None,
    }
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    on_db!(db, |p| sqlx::query_scalar(sql).fetch_one(p).await).unwrap()
}

/// Rooms of area 1 with a current meter on a bus.
async fn rooms_of_area_1(db: &Db) -> i64 {
    count(
        db,
        "select cast(count(distinct m.room_id) as bigint) from meter m
         where m.area_id = 1 and m.retired_at_ms is null and m.bus_id is not null",
    )
    .await
}

fn month() -> String {
    subsidy::month_of(NOW, &CampusTz::default())
}

#[tokio::test]
async fn a_second_run_of_the_month_credits_nothing_and_the_ledger_balances() {
    for db in seeded().await {
        subsidy::set_allowance(
            &db,
            area(1),
            Some(CentiKwh::new(1000)),
            &staff("admin"),
            NOW,
        )
        .await
        .unwrap();
        assert_eq!(audit_rows(&db, "subsidy_policy_set").await.len(), 1);
        let rooms = rooms_of_area_1(&db).await;
        assert!(rooms > 0);
        let first = subsidy::run(&db, None, &month(), &staff("admin"), NOW + 1)
            .await
            .unwrap();
        assert_eq!(first.credited as i64, rooms, "{:?}", db.backend());
        assert_eq!(first.centikwh, rooms * 1000);
        assert_eq!(first.kwh, format!("{}.00", rooms * 10));
        let second = subsidy::run(&db, None, &month(), &staff("admin"), NOW + 2)
            .await
            .unwrap();
        assert_eq!(second.credited, 0, "{:?}", db.backend());
        assert_eq!(second.skipped as i64, rooms);
        assert_eq!(second.rooms, first.rooms);
        assert_eq!(
            count(&db, "select cast(count(*) as bigint) from subsidy").await,
            rooms
        );
        assert_eq!(
            count(
                &db,
                "select cast(count(*) as bigint) from job where dedup_key like 'subsidy:%'"
            )
            .await,
            rooms
        );
        assert_eq!(
            ledger::balance(&db, "subsidy_issued", "centikwh")
                .await
                .unwrap(),
            -rooms * 1000
        );
        ledger_ok(&db).await;
        // One audit entry: the run that credited something.
        assert_eq!(audit_rows(&db, "subsidy_run").await.len(), 1);
        // The next month is a new allowance.
        let next = subsidy::run(&db, None, "2099-01", &staff("admin"), NOW + 3)
            .await
            .unwrap();
        assert_eq!(next.credited as i64, rooms);
        // The report: one building of area 1, both months.
        let all = Within {
            areas: None,
            buildings: None,
        };
        let rows = subsidy::issued(&db, &all, "2000-01", "2099-12")
            .await
            .unwrap();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0].month, "2099-01");
        assert_eq!(rows[1].month, month());
        assert_eq!(rows[1].rooms, rooms);
        assert_eq!(rows[1].centikwh, rooms * 1000);
        assert_eq!(rows[1].delivered_centikwh, 0);
        let none = Within {
            areas: Some(vec![2]),
            buildings: None,
        };
        assert!(
            subsidy::issued(&db, &none, "2000-01", "2099-12")
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn two_runs_at_once_credit_each_room_once() {
    for db in seeded().await {
        subsidy::set_allowance(&db, area(1), Some(CentiKwh::new(500)), &staff("admin"), NOW)
            .await
            .unwrap();
        let rooms = rooms_of_area_1(&db).await;
        let m = month();
        // Two nodes' workers: two tasks on their own connections.
        let run = |name: &'static str| {
            let db = db.clone();
            let m = m.clone();
            tokio::spawn(async move { subsidy::run(&db, None, &m, &staff(name), NOW + 1).await })
        };
        let (a, b) = (run("node-a"), run("node-b"));
        let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
        assert_eq!(
            (a.credited + b.credited) as i64,
            rooms,
            "{:?}: {a:?} {b:?}",
            db.backend()
        );
        assert_eq!(
            count(&db, "select cast(count(*) as bigint) from subsidy").await,
            rooms
        );
        ledger_ok(&db).await;
    }
}

#[tokio::test]
async fn retired_meters_and_buildings_set_to_zero_are_skipped() {
    for db in seeded().await {
        subsidy::set_allowance(
            &db,
            area(1),
            Some(CentiKwh::new(1000)),
            &staff("admin"),
            NOW,
        )
        .await
        .unwrap();
        // Area 2's building opts out with 0; area 2 itself gives 3 kWh.
        subsidy::set_allowance(&db, area(2), Some(CentiKwh::new(300)), &staff("admin"), NOW)
            .await
            .unwrap();
        let b2: i64 = count(&db, "select min(id) from building where area_id = 2").await;
        subsidy::set_allowance(
            &db,
            Scope {
                area_id: AreaId::new(2),
                building_id: Some(b2),
            },
            Some(CentiKwh::new(0)),
            &staff("admin"),
            NOW,
        )
        .await
        .unwrap();
        let retired: i64 = count(&db, "select min(id) from meter where area_id = 1").await;
        on_db!(&db, |p| sqlx::query(
            "update meter set retired_at_ms = $2 where id = $1"
        )
        .bind(retired)
        .bind(NOW)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
        let rooms = rooms_of_area_1(&db).await;
        let s = subsidy::run(&db, None, &month(), &staff("admin"), NOW + 1)
            .await
            .unwrap();
        assert_eq!(s.credited as i64, rooms, "{:?}: {s:?}", db.backend());
        assert_eq!(s.skipped, 1, "the retired meter's room");
        let on_retired: i64 = on_db!(&db, |p| sqlx::query_scalar(
            "select cast(count(*) as bigint) from subsidy where meter_id = $1"
        )
        .bind(retired)
        .fetch_one(p)
        .await)
        .unwrap();
        assert_eq!(on_retired, 0);
        assert_eq!(
            count(&db, "select cast(count(*) as bigint) from subsidy s join meter m on m.id = s.meter_id where m.area_id = 2").await,
            0
        );
        ledger_ok(&db).await;
    }
}

#[tokio::test]
async fn the_allowance_is_delivered_once_with_its_own_purchase_number() {
    for db in seeded().await {
        subsidy::set_allowance(
            &db,
            area(1),
            Some(CentiKwh::new(1000)),
            &staff("admin"),
            NOW,
        )
        .await
        .unwrap();
        subsidy::run(
            &db,
            Some(AreaId::new(1)),
            &month(),
            &staff("admin"),
            NOW + 1,
        )
        .await
        .unwrap();
        let (id, meter): (i64, i64) = on_db!(&db, |p| sqlx::query_as(
            "select id, meter_id from subsidy order by id limit 1"
        )
        .fetch_one(p)
        .await)
        .unwrap();
        let t = subsidy::target(&db, id).await.unwrap().unwrap();
        assert!(!t.delivered);
        assert_eq!(t.centikwh.get(), 1000);
        // A replacement of the meter is refused while the allowance is on its way.
        let r = store::replace::replace(
            &db,
            &store::replace::Request {
                old_meter_id: meter,
                new_address: "880000000009",
                profile: "dlt645-ref",
                final_total_centikwh: None,
                reason: "test",
            },
            &staff("tech"),
            NOW + 2,
        )
        .await;
        assert!(
            matches!(
                r,
                Err(store::replace::ReplaceError::Refused(
                    store::replace::Refusal::InFlight | store::replace::Refusal::NeverRead
                ))
            ),
            "{r:?}"
        );
        let seq = match subsidy::assign_seq(&db, id).await.unwrap() {
            Assignment::Assigned(s) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            subsidy::assign_seq(&db, id).await.unwrap(),
            Assignment::Assigned(seq)
        );
        let key = subsidy::job_key(id);
        let job = jobs::claim(&db, DELIVER_QUEUE, "test#1", NOW + 10, 60_000, 1000)
            .await
            .unwrap()
            .into_iter()
            .find(|j| j.dedup_key.as_deref() == Some(key.as_str()))
            .expect("the job is ready");
        let ev = DeliveryEvidence {
            purchase_count: seq,
            remaining_centikwh: Some(2000),
        };
        assert!(
            subsidy::complete(&db, id, &job, MeterId::new(meter), ev, NOW + 20)
                .await
                .unwrap()
        );
        assert!(subsidy::target(&db, id).await.unwrap().unwrap().delivered);
        assert_eq!(
            ledger::balance(&db, &format!("delivered:{meter}"), "centikwh")
                .await
                .unwrap(),
            1000
        );
        ledger_ok(&db).await;
        // The room's records show it.
        let credits = subsidy::of_room_of_meter(&db, MeterId::new(meter), 10)
            .await
            .unwrap();
        assert_eq!(credits.len(), 1);
        assert!(credits[0].delivered_at_ms.is_some());
    }
}

#[tokio::test]
async fn check_ledger_sees_a_subsidy_without_its_entry() {
    for db in seeded().await {
        subsidy::set_allowance(
            &db,
            area(1),
            Some(CentiKwh::new(1000)),
            &staff("admin"),
            NOW,
        )
        .await
        .unwrap();
        subsidy::run(
            &db,
            Some(AreaId::new(1)),
            &month(),
            &staff("admin"),
            NOW + 1,
        )
        .await
        .unwrap();
        ledger_ok(&db).await;
        on_db!(&db, |p| sqlx::query(
            "delete from ledger_transfer where subsidy_id = (select min(id) from subsidy)"
        )
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
        let v = ledger::check(&db).await.unwrap();
        assert!(v.iter().any(|v| v.invariant == "I14"), "{v:?}");
    }
}
