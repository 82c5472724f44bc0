//! Registry imports against the database (issue 14 item 2) on SQLite and,
//! when `DORMWATT_TEST_PG_URL` is set, on PostgreSQL.

use import::{Records, RowError};
use store::audit::{self, Actor, Filter};
use store::registry::{self, Outcome};
use store::{Db, Error, campus, testing};

const NOW: i64 = 1_795_622_400_000;

/// Every backend, seeded with one building per area (4号楼: 30 meters on
/// bus 1 of cuc-b01-gw1; 1号楼 of demo-east).
async fn seeded() -> Vec<Db> {
    let dbs = testing::all().await.expect("test databases");
    for db in &dbs {
        testing::seed_one_building_per_area(db, NOW)
            .await
            .expect("seed");
    }
    dbs
}

fn records(csv: &str) -> Records {
    let parsed = import::parse(csv.as_bytes(), None).expect("readable");
    assert_eq!(parsed.errors, [], "the file itself is well formed");
    parsed.records
}

/// Rooms 4号楼/501… and one meter each on bus 1, addresses from `first`.
fn rooms_and_meters(n: usize, first: u64) -> (Records, Records) {
    let mut rooms = String::from("area,building,room,floor\n");
    let mut meters = String::from("address,area,building,room,gateway,bus\n");
    for i in 0..n {
        rooms.push_str(&format!("cuc,4号楼,{},5\n", 501 + i));
        meters.push_str(&format!(
            "{},cuc,4号楼,{},cuc-b01-gw1,1\n",
            first + i as u64,
            501 + i
        ));
    }
    (records(&rooms), records(&meters))
}

/// Applies `n` new rooms; their meters' file and the meters before.
async fn with_rooms(db: &Db, n: usize, first: u64) -> (Records, i64) {
    let (rooms, file) = rooms_and_meters(n, first);
    applied(db, &rooms).await;
    (file, meters(db).await)
}

async fn meters(db: &Db) -> i64 {
    campus::status(db).await.expect("status").meters
}

async fn imports_audited(db: &Db) -> Vec<audit::AuditRow> {
    audit::search(
        db,
        &Filter {
            action: Some("registry_imported".to_owned()),
            limit: 100,
            ..Filter::default()
        },
    )
    .await
    .expect("audit")
}

async fn applied(db: &Db, r: &Records) {
    let out = registry::apply(db, r, &Actor::command_line(), NOW).await;
    assert!(
        matches!(out, Ok(Outcome::Applied { rows, .. }) if rows == r.len()),
        "{out:?}"
    );
}

fn at(errors: &[RowError]) -> Vec<(u32, &str)> {
    errors.iter().map(|e| (e.row, e.column.as_str())).collect()
}

#[tokio::test]
async fn an_address_already_in_the_database_and_unknown_places_are_reported() {
    for db in seeded().await {
        let r = records(
            "address,area,building,room,gateway,bus\n\
             201701010001,cuc,4号楼,101,cuc-b01-gw1,1\n\
             201701019001,cuc,5号楼,101,cuc-b01-gw1,1\n\
             201701019002,nowhere,4号楼,101,cuc-b01-gw1,1\n\
             201701019003,cuc,4号楼,999,cuc-b01-gw1,1\n\
             201701019004,cuc,4号楼,101,no-such-gw,1\n\
             201701019005,cuc,4号楼,101,cuc-b01-gw1,4\n\
             201701019006,cuc,4号楼,101,cuc-b01-gw1,1\n",
        );
        let errors = registry::check(&db, &r).await.unwrap();
        assert_eq!(
            at(&errors),
            [
                (2, "电表编号/address"),
                (3, "楼栋/building"),
                (4, "区域代码/area"),
                (5, "房间/room"),
                (6, "网关/gateway"),
                (7, "总线/bus"),
            ],
            "{errors:?}"
        );
        assert_eq!(errors[0].reason, "already registered");
        assert_eq!(errors[1].reason, "unknown building '5号楼' in area 'cuc'");

        let r = records("区域代码,楼栋,英文名\ncuc,4号楼,\ncuc,9号楼,\n");
        assert_eq!(
            at(&registry::check(&db, &r).await.unwrap()),
            [(2, "楼栋/building")]
        );
        let r = records(
            "区域代码,楼栋,网关,模式,总线\ncuc,4号楼,cuc-b01-gw1,listen,1\ncuc,9号楼,x,listen,1\n",
        );
        assert_eq!(
            at(&registry::check(&db, &r).await.unwrap()),
            [(2, "网关/gateway"), (3, "楼栋/building")]
        );
        let r = records("area,building,room,floor\ncuc,4号楼,101,1\ncuc,4号楼,601,6\n");
        assert_eq!(
            at(&registry::check(&db, &r).await.unwrap()),
            [(2, "房间/room")]
        );
    }
}

#[tokio::test]
async fn apply_is_all_or_nothing_and_audited_once() {
    for db in seeded().await {
        let (good, before) = with_rooms(&db, 3, 201_701_018_001).await;
        let bad = records(
            "address,area,building,room,gateway,bus\n\
             201701018001,cuc,4号楼,501,cuc-b01-gw1,1\n\
             201701018002,cuc,4号楼,502,cuc-b01-gw1,1\n\
             201701018003,cuc,4号楼,777,cuc-b01-gw1,1\n",
        );
        let out = registry::apply(&db, &bad, &Actor::command_line(), NOW)
            .await
            .unwrap();
        let Outcome::Refused(errors) = out else {
            panic!("applied with a bad row: {out:?}")
        };
        assert_eq!(at(&errors), [(4, "房间/room")]);
        assert_eq!(meters(&db).await, before, "one bad row: nothing written");
        assert_eq!(imports_audited(&db).await.len(), 1, "only the rooms");

        applied(&db, &good).await;
        assert_eq!(meters(&db).await, before + 3);
        let audited = imports_audited(&db).await;
        assert_eq!(audited.len(), 2);
        assert_eq!(audited[0].subject, "registry:meters");
        assert_eq!(
            audited[0].after_json.as_deref(),
            Some(r#"{"kind":"meters","rows":3}"#)
        );
        assert!(audit::verify(&db).await.unwrap().broken.is_none());
        // The new meters are looked up like seeded ones.
        let areas = campus::areas(&db).await.unwrap();
        let area = areas.iter().find(|a| a.code == "cuc").unwrap().id;
        let m = campus::meter_by_address(
            &db,
            area,
            &domain::MeterAddress::parse("201701018002").unwrap(),
        )
        .await
        .unwrap();
        assert!(m.is_some());
    }
}

#[tokio::test]
async fn a_bus_over_capacity_fails_the_rows_beyond_it() {
    for db in seeded().await {
        // Bus 1 of 4号楼 carries 30 of its 64.
        let (meters_file, _) = with_rooms(&db, 36, 201_701_017_001).await;
        let errors = registry::check(&db, &meters_file).await.unwrap();
        assert_eq!(at(&errors), [(36, "总线/bus"), (37, "总线/bus")]);
        assert!(
            errors[0].reason.contains("at most 64"),
            "{}",
            errors[0].reason
        );
    }
}

#[tokio::test]
async fn two_imports_of_one_file_at_once_write_it_once() {
    for db in seeded().await {
        let (file, before) = with_rooms(&db, 20, 201_701_016_001).await;
        let actor = Actor::command_line();
        let (a, b) = tokio::join!(
            registry::apply(&db, &file, &actor, NOW),
            registry::apply(&db, &file, &actor, NOW)
        );
        let outcomes = [a, b];
        let won = outcomes
            .iter()
            .filter(|o| matches!(o, Ok(Outcome::Applied { rows: 20, .. })))
            .count();
        assert_eq!(won, 1, "{outcomes:?}");
        for o in &outcomes {
            assert!(
                matches!(
                    o,
                    Ok(Outcome::Applied { .. }) | Ok(Outcome::Refused(_)) | Err(Error::Conflict(_))
                ),
                "{o:?}"
            );
        }
        assert_eq!(meters(&db).await, before + 20);
        assert_eq!(
            imports_audited(&db).await.len(),
            2,
            "rooms and one meter import"
        );
    }
}

/// Two imports of different meters onto a bus with room for only some of
/// them, at the same moment: together they never take it over capacity
/// (the second sees the first's meters once it commits).
#[tokio::test]
async fn two_imports_onto_one_bus_at_once_keep_its_capacity() {
    for db in seeded().await {
        // Bus 1 of 4号楼 carries 30 of its 64: room for 34.
        let (rooms, _) = rooms_and_meters(40, 201_701_015_001);
        applied(&db, &rooms).await;
        let csv = |range: std::ops::Range<usize>| {
            let mut s = String::from("address,area,building,room,gateway,bus\n");
            for i in range {
                s.push_str(&format!(
                    "{},cuc,4号楼,{},cuc-b01-gw1,1\n",
                    201_701_015_001 + i as u64,
                    501 + i
                ));
            }
            records(&s)
        };
        let (first, second) = (csv(0..20), csv(20..40));
        let before = meters(&db).await;
        let actor = Actor::command_line();
        let (a, b) = tokio::join!(
            registry::apply(&db, &first, &actor, NOW),
            registry::apply(&db, &second, &actor, NOW)
        );
        let on_bus = meters(&db).await - before + 30;
        assert!(
            on_bus <= 64,
            "{:?}: {on_bus} meters on a 64-meter bus ({a:?}, {b:?})",
            db.backend()
        );
        let won = [&a, &b]
            .iter()
            .filter(|o| matches!(o, Ok(Outcome::Applied { rows: 20, .. })))
            .count();
        assert_eq!(won, 1, "{a:?} {b:?}");
    }
}

#[tokio::test]
async fn an_order_for_a_retired_meter_is_refused_on_every_channel() {
    for db in seeded().await {
        let (file, _) = with_rooms(&db, 1, 201_701_016_001).await;
        applied(&db, &file).await;
        let area_id = campus::areas(&db).await.expect("areas")[0].id.get();
        let address = "201701016001";
        let meter_id = store::lookup::by_address(&db, area_id, address)
            .await
            .expect("lookup")
            .expect("the imported meter")
            .meter_id
            .get();
        let retired = registry::retire_meter(&db, meter_id, &Actor::command_line(), NOW).await;
        assert!(matches!(retired, Ok(Ok(()))), "{retired:?}");
        let kwh = domain::WholeKwh::parse("10", 1000).expect("10 kWh");
        for channel in [
            domain::order::Channel::Wechat,
            domain::order::Channel::Counter,
        ] {
            let req = store::orders::NewOrder {
                area_id,
                meter_address: address,
                student_id: None,
                kwh,
                channel,
                operator: None,
            };
            let e = store::orders::create(&db, &req, NOW + 1).await;
            assert!(
                matches!(e, Err(store::orders::CreateError::Retired)),
                "{:?} {channel:?}: {e:?}",
                db.backend()
            );
        }
        let orders: i64 = match &db {
            Db::Sqlite(p) => sqlx::query_scalar("select count(*) from orders where meter_id = $1")
                .bind(meter_id)
                .fetch_one(p)
                .await
                .expect("count"),
            Db::Postgres(p) => {
                sqlx::query_scalar("select count(*) from orders where meter_id = $1")
                    .bind(meter_id)
                    .fetch_one(p)
                    .await
                    .expect("count")
            }
        };
        assert_eq!(orders, 0, "no order was written");
    }
}

/// Backends waiting on a lock in this database (PostgreSQL).
async fn lock_waiters(p: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "select count(*) from pg_stat_activity
         where datname = current_database() and wait_event_type = 'Lock'",
    )
    .fetch_one(p)
    .await
    .expect("pg_stat_activity")
}

async fn wait_for_waiters(p: &sqlx::PgPool, n: i64) {
    // A condition, not a time: the statements are blocked on the row lock.
    while lock_waiters(p).await < n {
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_retirement_queued_behind_an_order_sees_the_order() {
    for db in seeded().await {
        let Db::Postgres(pool) = &db else {
            continue; // SQLite serialises the two transactions whole
        };
        let (file, _) = with_rooms(&db, 1, 201_701_017_001).await;
        applied(&db, &file).await;
        let area_id = campus::areas(&db).await.expect("areas")[0].id.get();
        let address = "201701017001";
        let meter_id = store::lookup::by_address(&db, area_id, address)
            .await
            .expect("lookup")
            .expect("meter")
            .meter_id
            .get();
        // Hold the meter row, queue an order, then a retirement behind it.
        let mut hold = pool.begin().await.expect("begin");
        sqlx::query("select id from meter where id = $1 for update")
            .bind(meter_id)
            .execute(&mut *hold)
            .await
            .expect("lock");
        let kwh = domain::WholeKwh::parse("10", 1000).expect("10 kWh");
        let order = {
            let db = db.clone();
            tokio::spawn(async move {
                let req = store::orders::NewOrder {
                    area_id,
                    meter_address: "201701017001",
                    student_id: None,
                    kwh,
                    channel: domain::order::Channel::Wechat,
                    operator: None,
                };
                store::orders::create(&db, &req, NOW + 1).await
            })
        };
        wait_for_waiters(pool, 1).await;
        let retire = {
            let db = db.clone();
            tokio::spawn(async move {
                registry::retire_meter(&db, meter_id, &Actor::command_line(), NOW + 2).await
            })
        };
        wait_for_waiters(pool, 2).await;
        hold.commit().await.expect("release");
        let order = order.await.expect("task");
        let retire = retire.await.expect("task").expect("store");
        assert!(order.is_ok(), "{order:?}");
        assert_eq!(
            retire,
            Err(registry::RetireRefusal::OrderInFlight),
            "a meter retired with an unpaid order"
        );
    }
}
