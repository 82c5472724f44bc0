//! Campus policy (issue 14 item 6): the price schedule per area and
//! building (orders freeze the price in force at their creation; a price
//! cannot be scheduled in the past) and the low-balance threshold per area
//! and building. Both backends.

mod common;

use common::{NOW, audit_rows, exec, operator, req, seeded_two_buildings};
use domain::staff::Role;
use domain::{AreaId, CentiKwh, MeterId, UnitPrice};
use store::Db;
use store::policy::{self, ScheduleError, Scope};

const DAY_MS: i64 = 86_400_000;

/// Two meters of area 1 in different buildings: (id, address, building id).
async fn two_buildings(db: &Db) -> [(i64, String, i64); 2] {
    let rows: Vec<(i64, String, i64)> = store::on_db!(db, |p| sqlx::query_as(
        "select m.id, m.address, r.building_id from meter m join room r on r.id = m.room_id
         where m.area_id = 1 order by m.id"
    )
    .fetch_all(p)
    .await)
    .unwrap();
    let first = rows[0].clone();
    let other = rows
        .iter()
        .find(|r| r.2 != first.2)
        .expect("a meter in a second building")
        .clone();
    [first, other]
}

async fn area_price(db: &Db) -> UnitPrice {
    let v: i64 = store::on_db!(db, |p| sqlx::query_scalar(
        "select unit_price_centifen_per_kwh from area where id = 1"
    )
    .fetch_one(p)
    .await)
    .unwrap();
    UnitPrice::from_centifen_per_kwh(v).unwrap()
}

fn area1() -> Scope {
    Scope {
        area_id: AreaId::new(1),
        building_id: None,
    }
}

fn price(v: i64) -> UnitPrice {
    UnitPrice::from_centifen_per_kwh(v).unwrap()
}

#[tokio::test]
async fn an_order_takes_the_price_in_force_at_its_creation_and_keeps_it() {
    for db in seeded_two_buildings().await {
        let (_, admin) = operator(&db, "admin", Role::Administrator).await;
        let [(m1, a1, b1), (m2, a2, _)] = two_buildings(&db).await;
        let default = area_price(&db).await;
        policy::schedule_price(&db, area1(), price(6_000), NOW + DAY_MS, &admin, NOW)
            .await
            .unwrap();
        let building = Scope {
            area_id: AreaId::new(1),
            building_id: Some(b1),
        };
        policy::schedule_price(&db, building, price(4_500), NOW + 2 * DAY_MS, &admin, NOW)
            .await
            .unwrap();

        // Before the area's change: the default; an order made now keeps it.
        let before = store::orders::create(&db, &req(&a1, 10), NOW + 1)
            .await
            .unwrap();
        assert_eq!(
            before.unit_price_centifen_per_kwh,
            default,
            "{:?}",
            db.backend()
        );
        assert_eq!(
            before.amount_fen,
            default.amount_for(domain::WholeKwh::new(10, 500).unwrap())
        );

        // After the area's change, before the building's: the area's price for both.
        let o1 = store::orders::create(&db, &req(&a1, 10), NOW + DAY_MS + 1)
            .await
            .unwrap();
        let o2 = store::orders::create(&db, &req(&a2, 10), NOW + DAY_MS + 1)
            .await
            .unwrap();
        assert_eq!(
            o1.unit_price_centifen_per_kwh,
            price(6_000),
            "{:?}",
            db.backend()
        );
        assert_eq!(o1.amount_fen.get(), 600);
        assert_eq!(o2.unit_price_centifen_per_kwh, price(6_000));

        // After the building's: the building's own for its meter, the area's elsewhere.
        let o3 = store::orders::create(&db, &req(&a1, 10), NOW + 2 * DAY_MS + 1)
            .await
            .unwrap();
        let o4 = store::orders::create(&db, &req(&a2, 10), NOW + 2 * DAY_MS + 1)
            .await
            .unwrap();
        assert_eq!(
            o3.unit_price_centifen_per_kwh,
            price(4_500),
            "{:?}",
            db.backend()
        );
        assert_eq!(o3.amount_fen.get(), 450);
        assert_eq!(o4.unit_price_centifen_per_kwh, price(6_000));

        // Orders already created keep the price they were made with.
        let again = store::orders::by_id(&db, before.id).await.unwrap().unwrap();
        assert_eq!(again.unit_price_centifen_per_kwh, default);
        assert_eq!(again.amount_fen, before.amount_fen);

        // The meter's own tariff still wins over every schedule.
        store::on_db!(&db, |p| sqlx::query(
            "update meter set unit_price_centifen_per_kwh = 7000 where id = $1"
        )
        .bind(m2)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
        let o5 = store::orders::create(&db, &req(&a2, 10), NOW + 3 * DAY_MS)
            .await
            .unwrap();
        assert_eq!(o5.unit_price_centifen_per_kwh, price(7_000));

        // price_at agrees with the orders at every instant.
        let at = |t| policy::price_at(&db, MeterId::new(m1), t);
        assert_eq!(at(NOW).await.unwrap(), Some(default));
        assert_eq!(at(NOW + DAY_MS).await.unwrap(), Some(price(6_000)));
        assert_eq!(at(NOW + 2 * DAY_MS).await.unwrap(), Some(price(4_500)));
        assert_eq!(
            policy::price_at(&db, MeterId::new(m2), NOW).await.unwrap(),
            Some(price(7_000))
        );

        let audited = audit_rows(&db, "price_scheduled").await;
        assert_eq!(audited.len(), 2);
        assert_eq!(audited[0].subject, format!("building:{b1}"));
        assert_eq!(audited[1].subject, "area:1");
    }
}

#[tokio::test]
async fn a_price_cannot_be_scheduled_now_or_in_the_past() {
    for db in seeded_two_buildings().await {
        let (_, admin) = operator(&db, "admin", Role::Administrator).await;
        for at in [NOW - DAY_MS, NOW - 1, NOW] {
            let r = policy::schedule_price(&db, area1(), price(6_000), at, &admin, NOW).await;
            assert!(
                matches!(r, Err(ScheduleError::NotInFuture)),
                "{:?}: scheduling at {at} (now {NOW}) gave {r:?}",
                db.backend()
            );
        }
        assert!(
            policy::schedule(&db, AreaId::new(1))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(audit_rows(&db, "price_scheduled").await.is_empty());
        // The table itself refuses a row not in the future of its creation.
        let direct = store::on_db!(&db, |p| sqlx::query(
            "insert into price_schedule (area_id, building_id, unit_price_centifen_per_kwh,
                                         effective_from_ms, operator_name, created_at_ms)
             values (1, null, 6000, 100, 'x', 100)"
        )
        .execute(p)
        .await
        .map(|r| r.rows_affected()));
        assert!(
            direct.is_err(),
            "{:?}: the check constraint is missing",
            db.backend()
        );
    }
}

#[tokio::test]
async fn a_building_of_another_area_is_refused() {
    for db in seeded_two_buildings().await {
        let (_, admin) = operator(&db, "admin", Role::Administrator).await;
        let other: i64 = store::on_db!(&db, |p| sqlx::query_scalar(
            "select min(id) from building where area_id <> 1"
        )
        .fetch_one(p)
        .await)
        .unwrap();
        let scope = Scope {
            area_id: AreaId::new(1),
            building_id: Some(other),
        };
        let r = policy::schedule_price(&db, scope, price(6_000), NOW + DAY_MS, &admin, NOW).await;
        assert!(matches!(r, Err(ScheduleError::NoSuchBuilding)), "{r:?}");
    }
}

#[tokio::test]
async fn only_a_future_price_can_be_withdrawn() {
    for db in seeded_two_buildings().await {
        let (_, admin) = operator(&db, "admin", Role::Administrator).await;
        let id = policy::schedule_price(&db, area1(), price(6_000), NOW + DAY_MS, &admin, NOW)
            .await
            .unwrap();
        // Once in force it stays: orders may carry it.
        let late = policy::withdraw_price(&db, id, &admin, NOW + DAY_MS).await;
        assert!(
            matches!(late, Err(store::Error::Conflict(_))),
            "{:?}: {late:?}",
            db.backend()
        );
        assert_eq!(
            policy::schedule(&db, AreaId::new(1)).await.unwrap().len(),
            1
        );
        let gone = policy::withdraw_price(&db, id, &admin, NOW + DAY_MS - 1)
            .await
            .unwrap();
        assert_eq!(gone.unit_price, price(6_000));
        assert!(
            policy::schedule(&db, AreaId::new(1))
                .await
                .unwrap()
                .is_empty()
        );
        let audited = audit_rows(&db, "price_withdrawn").await;
        assert_eq!(audited.len(), 1);
        assert_eq!(audited[0].subject, "area:1");
    }
}

#[tokio::test]
async fn the_outlook_shows_the_next_real_change() {
    for db in seeded_two_buildings().await {
        let (_, admin) = operator(&db, "admin", Role::Administrator).await;
        let [(m1, _, b1), (m2, _, _)] = two_buildings(&db).await;
        let default = area_price(&db).await;
        let building = Scope {
            area_id: AreaId::new(1),
            building_id: Some(b1),
        };
        // The building fixes its price from tomorrow; the area changes the day after.
        policy::schedule_price(&db, building, price(4_500), NOW + DAY_MS, &admin, NOW)
            .await
            .unwrap();
        policy::schedule_price(&db, area1(), price(6_000), NOW + 2 * DAY_MS, &admin, NOW)
            .await
            .unwrap();
        let o1 = policy::price_outlook(&db, MeterId::new(m1), NOW)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(o1.now, default);
        assert_eq!(o1.next, Some((price(4_500), NOW + DAY_MS)));
        // After tomorrow the area's change does not reach the building's meter.
        let o1 = policy::price_outlook(&db, MeterId::new(m1), NOW + DAY_MS)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(o1.now, price(4_500));
        assert_eq!(o1.next, None, "{:?}", db.backend());
        // The other building sees the area's change.
        let o2 = policy::price_outlook(&db, MeterId::new(m2), NOW)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(o2.next, Some((price(6_000), NOW + 2 * DAY_MS)));
        assert_eq!(
            policy::price_outlook(&db, MeterId::new(0), NOW)
                .await
                .unwrap(),
            None
        );
    }
}

#[tokio::test]
async fn the_low_balance_threshold_follows_the_building_then_the_area() {
    for db in seeded_two_buildings().await {
        let (_, admin) = operator(&db, "admin", Role::Administrator).await;
        let [(m1, a1, b1), (m2, _, _)] = two_buildings(&db).await;
        // Both meters hold 8 kWh, above their own 5 kWh threshold; a student is bound to each.
        exec(
            &db,
            "update meter_state set remaining_centikwh = 800, purchase_count = 1",
        )
        .await;
        for (i, m) in [m1, m2].into_iter().enumerate() {
            let openid = format!("o-policy-{i}");
            store::on_db!(&db, |p| sqlx::query(
                "insert into student (openid, created_at_ms) values ($1, 1)"
            )
            .bind(&openid)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
            .unwrap();
            store::on_db!(&db, |p| sqlx::query(
                "insert into binding (student_id, meter_id, is_default, created_at_ms)
                 select id, $2, true, 1 from student where openid = $1"
            )
            .bind(&openid)
            .bind(m)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
            .unwrap();
        }
        assert_eq!(store::notify::scan_low_balance(&db, NOW).await.unwrap(), 0);
        let own = policy::low_balance_of(&db, MeterId::new(m1)).await.unwrap();
        assert_eq!(own, Some(CentiKwh::new(500)));

        // The area's threshold of 10 kWh makes both low.
        policy::set_low_balance(&db, area1(), Some(CentiKwh::new(1_000)), &admin, NOW)
            .await
            .unwrap();
        // The first building's own 6 kWh keeps its meter above it.
        let building = Scope {
            area_id: AreaId::new(1),
            building_id: Some(b1),
        };
        policy::set_low_balance(&db, building, Some(CentiKwh::new(600)), &admin, NOW)
            .await
            .unwrap();
        assert_eq!(
            policy::low_balance_of(&db, MeterId::new(m1)).await.unwrap(),
            Some(CentiKwh::new(600)),
            "{:?}",
            db.backend()
        );
        assert_eq!(
            policy::low_balance_of(&db, MeterId::new(m2)).await.unwrap(),
            Some(CentiKwh::new(1_000))
        );
        assert_eq!(
            store::notify::scan_low_balance(&db, NOW + 1).await.unwrap(),
            1
        );
        let told: Vec<i64> = store::on_db!(&db, |p| sqlx::query_scalar(
            "select b.meter_id from message msg join binding b on b.student_id = msg.student_id
             where msg.kind = 'low_balance'"
        )
        .fetch_all(p)
        .await)
        .unwrap();
        assert_eq!(told, vec![m2], "{:?}", db.backend());
        // The student's views show the threshold in force.
        let info = store::campus::meter_by_address(
            &db,
            AreaId::new(1),
            &domain::MeterAddress::parse(&a1).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(info.low_balance_centikwh, CentiKwh::new(600));

        // Setting again replaces (one row per scope); clearing falls back.
        policy::set_low_balance(&db, building, Some(CentiKwh::new(900)), &admin, NOW + 2)
            .await
            .unwrap();
        policy::set_low_balance(&db, area1(), None, &admin, NOW + 3)
            .await
            .unwrap();
        let rows = policy::policies(&db, AreaId::new(1)).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].scope, area1());
        assert_eq!(rows[0].low_balance_centikwh, None);
        assert_eq!(rows[1].low_balance_centikwh, Some(CentiKwh::new(900)));
        assert_eq!(
            policy::low_balance_of(&db, MeterId::new(m2)).await.unwrap(),
            Some(CentiKwh::new(500))
        );
        let audited = audit_rows(&db, "low_balance_policy_set").await;
        assert_eq!(audited.len(), 4);
    }
}

#[tokio::test]
async fn two_first_settings_of_one_scope_leave_one_row() {
    for db in seeded_two_buildings().await {
        let (_, admin) = operator(&db, "admin", Role::Administrator).await;
        let out = common::at_once(&db, 4, move |db, i| {
            let admin = admin.clone();
            async move {
                policy::set_low_balance(&db, area1(), Some(CentiKwh::new(700 + i)), &admin, NOW)
                    .await
            }
        })
        .await;
        for r in &out {
            assert!(r.is_ok(), "{:?}: {r:?}", db.backend());
        }
        let rows = policy::policies(&db, AreaId::new(1)).await.unwrap();
        assert_eq!(rows.len(), 1, "{:?}", db.backend());
    }
}
