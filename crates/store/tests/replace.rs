//! Meter replacement (issue 14 item 3) on SQLite and, when
//! `DORMWATT_TEST_PG_URL` is set, on PostgreSQL: the carried energy as
//! ledger entries and a delivery, bindings moving, refusals that change
//! nothing, and a payment racing a replacement.

mod common;

use common::{NOW, audit_rows, ledger_ok, staff};
use store::orders::{self, Assignment, DELIVER_QUEUE, PaymentConfirmation};
use store::replace::{self, Refusal, ReplaceError, Request};
use store::{Db, jobs, ledger, meters, on_db, registry, testing};

/// Every backend, seeded with one building per area (4号楼: 30 meters on
/// bus 1 of cuc-b01-gw1).
async fn seeded() -> Vec<Db> {
    let dbs = testing::all().await.expect("test databases");
    for db in &dbs {
        testing::seed_one_building_per_area(db, NOW)
            .await
            .expect("seed");
    }
    dbs
}

/// The `n`th meter of area 1 (id, address).
async fn meter(db: &Db, n: i64) -> (i64, String) {
    on_db!(db, |p| sqlx::query_as(
        "select id, address from meter where area_id = 1 and retired_at_ms is null order by id limit 1 offset $1"
    )
    .bind(n)
    .fetch_one(p)
    .await)
    .unwrap()
}

/// Sets meter `id`'s last read register and balance.
async fn read(db: &Db, id: i64, total: i64, remaining: i64) {
    on_db!(db, |p| sqlx::query(
        "update meter_state set total_centikwh = $2, remaining_centikwh = $3, remaining_at_ms = $4
         where meter_id = $1"
    )
    .bind(id)
    .bind(total)
    .bind(remaining)
    .bind(NOW)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
}

/// A student bound to meter `id`.
async fn bound_student(db: &Db, id: i64, openid: &str) -> i64 {
    let s = store::students::upsert_by_openid(db, openid, false, NOW)
        .await
        .unwrap();
    on_db!(db, |p| sqlx::query(
        "insert into binding (student_id, meter_id, is_default, created_at_ms) values ($1, $2, true, $3)"
    )
    .bind(s.id)
    .bind(id)
    .bind(NOW)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    s.id
}

async fn scalar(db: &Db, sql: &'static str, id: i64) -> i64 {
    on_db!(db, |p| sqlx::query_scalar(sql).bind(id).fetch_one(p).await).unwrap()
}

fn req<'a>(old: i64, address: &'a str) -> Request<'a> {
    Request {
        old_meter_id: old,
        new_address: address,
        profile: "dlt645-ref",
        final_total_centikwh: None,
        reason: "烧坏 burnt",
    }
}

fn refused(r: Result<replace::Replaced, ReplaceError>) -> Refusal {
    match r {
        Err(ReplaceError::Refused(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn claim(db: &Db, key: &str) -> jobs::Job {
    let jobs = jobs::claim(db, DELIVER_QUEUE, "test#1", NOW + 10, 60_000, 100)
        .await
        .unwrap();
    jobs.into_iter()
        .find(|j| j.dedup_key.as_deref() == Some(key))
        .expect("the job is ready")
}

#[tokio::test]
async fn a_replacement_carries_the_energy_moves_the_bindings_and_delivers_once() {
    for db in seeded().await {
        let (old, old_address) = meter(&db, 0).await;
        read(&db, old, 9000, 1500).await;
        let student = bound_student(&db, old, "o-carry").await;
        let version = registry::version(&db).await.unwrap();
        let mut r = req(old, "880000000001");
        // The technician read 9200 on the display: 2 kWh used since the last read.
        r.final_total_centikwh = Some(9200);
        let done = replace::replace(&db, &r, &staff("tech"), NOW + 1)
            .await
            .unwrap();
        assert_eq!(done.carried_centikwh, 1300, "{:?}", db.backend());
        assert_eq!(done.bindings_moved, 1);
        let new = done.new_meter_id;
        // The old meter left its bus and is retired; the new one took its place.
        let old_bus: Option<i64> = on_db!(&db, |p| sqlx::query_scalar(
            "select bus_id from meter where id = $1 and retired_at_ms is not null"
        )
        .bind(old)
        .fetch_one(p)
        .await)
        .unwrap();
        assert_eq!(old_bus, None);
        let new_bus = scalar(&db, "select bus_id from meter where id = $1", new).await;
        let buses = meters::registry(&db).await.unwrap();
        let polled: Vec<i64> = buses
            .iter()
            .flat_map(|g| &g.buses)
            .filter(|b| b.id == new_bus)
            .flat_map(|b| b.meters.iter().map(|m| m.id))
            .collect();
        assert!(polled.contains(&new) && !polled.contains(&old));
        assert_eq!(registry::version(&db).await.unwrap(), version + 1);
        // The student's binding is on the new meter.
        let bound = scalar(
            &db,
            "select meter_id from binding where student_id = $1",
            student,
        )
        .await;
        assert_eq!(bound, new);
        // Ledger: 13 kWh left the old meter and are owed to the new one.
        let in_flight = domain::ledger::account::in_flight(domain::MeterId::new(new));
        assert_eq!(
            ledger::balance(&db, &in_flight, "centikwh").await.unwrap(),
            1300
        );
        let delivered_old = domain::ledger::account::delivered(domain::MeterId::new(old));
        assert_eq!(
            ledger::balance(&db, &delivered_old, "centikwh")
                .await
                .unwrap(),
            -1300
        );
        ledger_ok(&db).await;
        let a = audit_rows(&db, "meter_replaced").await;
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].subject, format!("meter:{old_address}"));
        // Both pages link the meters.
        let (by, _) = replace::of_meter(&db, old).await.unwrap();
        assert_eq!(by.unwrap().new_meter_id, new);
        let (_, of) = replace::of_meter(&db, new).await.unwrap();
        assert_eq!(of.unwrap().old_meter_id, old);

        // An order for the new meter waits for the carried energy.
        let o = common::paid(&db, "880000000001", 10, "wx-after", NOW + 2).await;
        assert!(matches!(
            orders::assign_purchase_seq(&db, o.id, NOW + 3)
                .await
                .unwrap(),
            Assignment::Wait(_)
        ));

        // The head-end's delivery of the carried energy, as a purchase.
        let key = replace::carry_key(done.replacement_id);
        let job = claim(&db, &key).await;
        let target = replace::carry_target(&db, done.replacement_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(target.centikwh.get(), 1300);
        assert_eq!(target.meter_id.get(), new);
        let seq = replace::assign_carry_seq(&db, done.replacement_id)
            .await
            .unwrap();
        assert_eq!(seq, Assignment::Assigned(1));
        let ev = meters::DeliveryEvidence {
            purchase_count: 1,
            remaining_centikwh: Some(1300),
        };
        let first = replace::complete_carry(
            &db,
            done.replacement_id,
            &job,
            domain::MeterId::new(new),
            ev,
            NOW + 4,
        )
        .await
        .unwrap();
        assert!(first);
        assert_eq!(
            ledger::balance(&db, &in_flight, "centikwh").await.unwrap(),
            1000,
            "only the order's 10 kWh are still owed"
        );
        let delivered_new = domain::ledger::account::delivered(domain::MeterId::new(new));
        assert_eq!(
            ledger::balance(&db, &delivered_new, "centikwh")
                .await
                .unwrap(),
            1300
        );
        ledger_ok(&db).await;
        // The order goes next, with the following number.
        assert_eq!(
            orders::assign_purchase_seq(&db, o.id, NOW + 5)
                .await
                .unwrap(),
            Assignment::Assigned(2)
        );
    }
}

#[tokio::test]
async fn bad_input_and_energy_in_flight_are_refused_and_change_nothing() {
    for db in seeded().await {
        let (old, old_address) = meter(&db, 0).await;
        let (_, other_address) = meter(&db, 1).await;
        let (never_read, _) = meter(&db, 2).await;
        read(&db, old, 9000, 1500).await;
        let version = registry::version(&db).await.unwrap();
        let count = |db: Db| async move {
            on_db!(&db, |p| sqlx::query_scalar::<_, i64>(
                "select count(*) from meter where retired_at_ms is null"
            )
            .fetch_one(p)
            .await)
            .unwrap()
        };
        let meters_before = count(db.clone()).await;
        let actor = staff("tech");
        let r = |addr| req(old, addr);
        assert_eq!(
            refused(replace::replace(&db, &r("12345"), &actor, NOW).await),
            Refusal::BadAddress
        );
        assert_eq!(
            refused(replace::replace(&db, &r(&other_address), &actor, NOW).await),
            Refusal::AddressTaken
        );
        let mut bad = r("880000000002");
        bad.profile = "modbus-x";
        assert_eq!(
            refused(replace::replace(&db, &bad, &actor, NOW).await),
            Refusal::UnknownProfile
        );
        let mut bad = r("880000000002");
        bad.reason = "  ";
        assert_eq!(
            refused(replace::replace(&db, &bad, &actor, NOW).await),
            Refusal::ReasonMissing
        );
        let mut bad = r("880000000002");
        bad.final_total_centikwh = Some(8999);
        assert_eq!(
            refused(replace::replace(&db, &bad, &actor, NOW).await),
            Refusal::FinalBelowLast
        );
        assert_eq!(
            refused(replace::replace(&db, &req(never_read, "880000000002"), &actor, NOW).await),
            Refusal::NeverRead
        );
        // A paid order not yet delivered: refused until it settles.
        let o = common::paid(&db, &old_address, 5, "wx-inflight", NOW).await;
        assert_eq!(
            refused(replace::replace(&db, &r("880000000002"), &actor, NOW + 2).await),
            Refusal::InFlight
        );
        // Nothing changed.
        assert_eq!(count(db.clone()).await, meters_before);
        assert_eq!(registry::version(&db).await.unwrap(), version);
        assert!(audit_rows(&db, "meter_replaced").await.is_empty());
        let retired = scalar(
            &db,
            "select count(*) from meter where id = $1 and retired_at_ms is not null",
            old,
        )
        .await;
        assert_eq!(retired, 0);
        ledger_ok(&db).await;
        // Once the order is delivered the replacement goes through, and a
        // second replacement of the same meter is refused.
        let job = claim(&db, &format!("deliver:{}", o.id)).await;
        assert_eq!(
            orders::assign_purchase_seq(&db, o.id, NOW + 3)
                .await
                .unwrap(),
            Assignment::Assigned(1)
        );
        meters::complete_delivery(
            &db,
            o.id,
            &job,
            o.meter_id,
            meters::DeliveryEvidence {
                purchase_count: 1,
                remaining_centikwh: Some(2000),
            },
            NOW + 3,
        )
        .await
        .unwrap();
        let done = replace::replace(&db, &r("880000000002"), &actor, NOW + 4)
            .await
            .unwrap();
        assert_eq!(done.carried_centikwh, 2000);
        assert_eq!(
            refused(replace::replace(&db, &r("880000000003"), &actor, NOW + 5).await),
            Refusal::Retired
        );
        // The new meter's carried energy is in flight: it cannot be
        // replaced again until delivered.
        assert_eq!(
            refused(
                replace::replace(
                    &db,
                    &req(done.new_meter_id, "880000000003"),
                    &actor,
                    NOW + 5
                )
                .await
            ),
            Refusal::NeverRead
        );
        read(&db, done.new_meter_id, 0, 2000).await;
        assert_eq!(
            refused(
                replace::replace(
                    &db,
                    &req(done.new_meter_id, "880000000003"),
                    &actor,
                    NOW + 5
                )
                .await
            ),
            Refusal::InFlight
        );
        ledger_ok(&db).await;
    }
}

#[tokio::test]
async fn an_unpaid_order_paid_after_the_replacement_goes_to_the_new_meter() {
    for db in seeded().await {
        let (old, address) = meter(&db, 0).await;
        read(&db, old, 100, 0).await;
        let o = orders::create(&db, &common::req(&address, 3), NOW)
            .await
            .unwrap();
        let done = replace::replace(&db, &req(old, "880000000009"), &staff("t"), NOW + 1)
            .await
            .unwrap();
        assert_eq!(done.carried_centikwh, 0);
        let conf = PaymentConfirmation {
            out_trade_no: &o.out_trade_no,
            transaction_id: "wx-late",
            amount_fen: o.amount_fen,
        };
        let paid = match orders::record_payment(&db, &conf, NOW + 2).await.unwrap() {
            orders::PaidOutcome::Credited(p) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(paid.meter_id.get(), done.new_meter_id, "{:?}", db.backend());
        let payload: String = on_db!(&db, |p| sqlx::query_scalar(
            "select payload from job where dedup_key = $1"
        )
        .bind(format!("deliver:{}", o.id))
        .fetch_one(p)
        .await)
        .unwrap();
        assert!(payload.contains(&format!("\"meter_id\":{}", done.new_meter_id)));
        ledger_ok(&db).await;
    }
}

/// A payment and a replacement of the same meter at once, many times: the
/// replacement is refused (the order charges the old meter), or it goes
/// through and the order charges the new meter. Never a charging order for
/// a retired meter (energy nobody would deliver).
#[tokio::test]
async fn a_payment_racing_a_replacement_is_never_lost() {
    for db in seeded().await {
        let rounds = 12;
        let (mut refused_n, mut replaced_n) = (0, 0);
        let mut olds = Vec::new();
        for i in 0..rounds {
            olds.push(meter(&db, i).await);
        }
        for (i, (old, address)) in (0..rounds).zip(olds) {
            read(&db, old, 100, 500).await;
            let o = orders::create(&db, &common::req(&address, 2), NOW + i)
                .await
                .unwrap();
            let new_address = format!("8800000001{i:02}");
            let (pay, rep) = tokio::join!(
                tokio::spawn({
                    let db = db.clone();
                    let no = o.out_trade_no.clone();
                    let amount = o.amount_fen;
                    async move {
                        let conf = PaymentConfirmation {
                            out_trade_no: &no,
                            transaction_id: &format!("wx-race-{no}"),
                            amount_fen: amount,
                        };
                        orders::record_payment(&db, &conf, NOW + 100 + i).await
                    }
                }),
                tokio::spawn({
                    let db = db.clone();
                    async move {
                        let r = Request {
                            old_meter_id: old,
                            new_address: &new_address,
                            profile: "dlt645-ref",
                            final_total_centikwh: None,
                            reason: "race",
                        };
                        replace::replace(&db, &r, &staff("t"), NOW + 100 + i).await
                    }
                }),
            );
            let paid = match pay.unwrap().unwrap() {
                orders::PaidOutcome::Credited(p) => p,
                other => panic!("{other:?}"),
            };
            match rep.unwrap() {
                Ok(done) => {
                    replaced_n += 1;
                    assert_eq!(
                        paid.meter_id.get(),
                        done.new_meter_id,
                        "{:?} round {i}: the order was paid for the replaced meter",
                        db.backend()
                    );
                }
                Err(ReplaceError::Refused(Refusal::InFlight)) => {
                    refused_n += 1;
                    assert_eq!(paid.meter_id.get(), old);
                }
                Err(e) => panic!("{:?}: {e:?}", db.backend()),
            }
            // No charging order for a retired meter.
            let lost: i64 = on_db!(&db, |p| sqlx::query_scalar(
                "select count(*) from orders o join meter m on m.id = o.meter_id
                 where m.retired_at_ms is not null and o.state in ('charging', 'delayed')"
            )
            .fetch_one(p)
            .await)
            .unwrap();
            assert_eq!(lost, 0, "{:?} round {i}", db.backend());
            ledger_ok(&db).await;
        }
        assert_eq!(refused_n + replaced_n, rounds);
    }
}

#[tokio::test]
async fn the_students_usage_continues_across_the_replacement() {
    for db in seeded().await {
        let (old, _) = meter(&db, 0).await;
        read(&db, old, 100, 0).await;
        store::students::put_daily_usage(&db, old, 100, Some(250), NOW)
            .await
            .unwrap();
        store::students::put_daily_usage(&db, old, 101, Some(40), NOW)
            .await
            .unwrap();
        let done = replace::replace(&db, &req(old, "880000000077"), &staff("t"), NOW + 1)
            .await
            .unwrap();
        let new = done.new_meter_id;
        store::students::put_daily_usage(&db, new, 101, Some(60), NOW)
            .await
            .unwrap();
        store::students::put_daily_usage(&db, new, 102, None, NOW)
            .await
            .unwrap();
        let days = store::students::daily_usage(&db, new, 90, 110)
            .await
            .unwrap();
        let got: Vec<(i64, Option<i64>)> = days.iter().map(|d| (d.day, d.usage_centikwh)).collect();
        assert_eq!(
            got,
            [(100, Some(250)), (101, Some(100)), (102, None)],
            "{:?}",
            db.backend()
        );
        let start = store::students::usage_start(&db, new)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(start.first_read_day, Some(100));
        // The old meter's own history is unchanged.
        let own = store::students::daily_usage(&db, old, 90, 110)
            .await
            .unwrap();
        assert_eq!(own.len(), 2);
    }
}

/// The carried energy counts against the new meter's hoarding limit until
/// it is delivered, like an order paid and not yet delivered.
#[tokio::test]
async fn carried_energy_on_its_way_counts_against_the_hoarding_limit() {
    for db in seeded().await {
        let (old, _) = meter(&db, 0).await;
        read(&db, old, 100, 15_000).await;
        on_db!(&db, |p| sqlx::query(
            "update meter set hoard_limit_centikwh = 20000 where id = $1"
        )
        .bind(old)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
        let done = replace::replace(&db, &req(old, "880000000088"), &staff("t"), NOW + 1)
            .await
            .unwrap();
        assert_eq!(done.carried_centikwh, 15_000);
        // 150 kWh on the way, 200 kWh the limit: 60 kWh do not fit, 50 do.
        match orders::create(&db, &common::req("880000000088", 60), NOW + 2).await {
            Err(orders::CreateError::HoardingLimit { room, .. }) => {
                assert_eq!(room, 50, "{:?}", db.backend());
            }
            other => panic!("{:?}: {other:?}", db.backend()),
        }
        orders::create(&db, &common::req("880000000088", 50), NOW + 2)
            .await
            .unwrap();
    }
}
