//! Data retention (issue 16 item 4): a simulated run at the head-end's
//! real cadence (hourly readings of four quantities, a daily freeze read,
//! a purchase per meter per week with its delivery, offline spells, staff
//! logins), pruned once a day, stays within the bound of
//! docs/OPERATIONS.md and keeps everything that must be kept. On SQLite
//! and PostgreSQL.
//!
//! The storage figures of docs/BENCHMARKS.md come from the ignored
//! `measure_growth` test here:
//! `cargo test -p store --test retention -- --ignored --nocapture measure_growth`.

use domain::OrderId;
use domain::campus::CampusPlan;
use store::meters::{self, DeliveryEvidence, FrozenDays, MeterEvent, Observation};
use store::retention::{self, Policy, READING_QUANTITIES};
use store::story::{self, Reach};
use store::{Db, jobs, ledger, orders, testing};

mod common;

use common::{NOW, paid};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// The first meters of the reference campus's first bus: `meters` of them.
fn small_plan(meters: usize) -> CampusPlan {
    let mut plan = testing::reference_plan_cut(1);
    plan.areas.truncate(1);
    let b = &mut plan.areas[0].buildings[0];
    b.gateways.truncate(1);
    b.gateways[0].buses.truncate(1);
    b.gateways[0].buses[0].meters.truncate(meters);
    plan
}

async fn seeded(meters: usize) -> Vec<(Db, Vec<(i64, String)>)> {
    let mut out = Vec::new();
    for db in testing::all().await.expect("test databases") {
        store::campus::seed(&db, &small_plan(meters), &Default::default(), NOW)
            .await
            .expect("seed");
        let ms: Vec<(i64, String)> = store::on_db!(&db, |p| sqlx::query_as(
            "select id, address from meter order by id"
        )
        .fetch_all(p)
        .await
        .expect("meters"));
        assert_eq!(ms.len(), meters);
        // Two roommates bound to each meter: a delivery messages both.
        for (id, _) in &ms {
            for n in 0..2 {
                let s = store::students::upsert_by_openid(&db, &format!("o-{id}-{n}"), false, NOW)
                    .await
                    .expect("student");
                store::students::bind(&db, s.id, *id, true, 4, NOW)
                    .await
                    .expect("bind");
            }
        }
        out.push((db, ms));
    }
    out
}

/// The reach of an operator who sees everything.
const EVERYWHERE: Reach = Reach {
    operator_id: 0,
    all_areas: true,
    buildings_only: false,
};

/// What a simulated run leaves to compare.
#[derive(Default)]
struct Run {
    orders: Vec<(OrderId, Vec<story::Event>, Vec<story::LedgerRow>)>,
    first_total_at: Vec<i64>,
    last_total_at: Vec<i64>,
}

/// The head-end's writes for `days` days from [`NOW`] for `meters`: every
/// hour a round per meter that keeps readings (the poll rounds between
/// them only update `meter_state`, no rows); at 00:30 the freeze read of
/// yesterday's end total; on day `7k + i` meter `i` buys 10 kWh and it is
/// delivered; every 7 days (offset by meter) an offline and online event.
/// Meter 0 stops answering after day 2 (its last readings grow old).
/// With `policy`, a prune pass runs at 03:00 every day; `check` then
/// compares daily usage before and after it.
async fn simulate(
    db: &Db,
    meters: &[(i64, String)],
    days: std::ops::Range<i64>,
    policy: Option<&Policy>,
    run: &mut Run,
) {
    let op = if days.start == 0 {
        common::created_op(db, "night", domain::staff::Role::Administrator).await
    } else {
        store::operators::list(db)
            .await
            .expect("operators")
            .into_iter()
            .find(|o| o.name == "night")
            .expect("night")
    };
    if run.first_total_at.is_empty() {
        run.first_total_at = vec![i64::MAX; meters.len()];
        run.last_total_at = vec![0; meters.len()];
    }
    let last_day = days.end - 1;
    for day in days {
        let day_start = NOW + day * DAY;
        for hour in 0..24 {
            let t = day_start + hour * HOUR;
            let mut obs = Vec::new();
            let mut events = Vec::new();
            for (i, (id, _)) in meters.iter().enumerate() {
                if i == 0 && day > 2 {
                    continue;
                }
                let hours = day * 24 + hour;
                obs.push(Observation {
                    meter_id: *id,
                    at_ms: t,
                    seen: true,
                    online: Some(true),
                    power_w: Some(300 + (hours % 7) * 50),
                    remaining_centikwh: Some(20_000 - (hours % 200) * 20),
                    total_centikwh: Some(100_000 + hours * 25),
                    voltage_dv: Some(2200 + hours % 13),
                    keep_readings: true,
                    ..Observation::default()
                });
                run.first_total_at[i] = run.first_total_at[i].min(t);
                run.last_total_at[i] = t;
                let offset = i64::try_from(i).unwrap_or(0);
                if hour == 10 && (day + offset) % 7 == 3 {
                    for kind in ["offline", "online"] {
                        events.push(MeterEvent {
                            meter_id: *id,
                            at_ms: t,
                            kind: kind.to_owned(),
                            detail: "3 polls unanswered".to_owned(),
                        });
                    }
                }
            }
            let frozen: Vec<FrozenDays> = if hour == 0 && day > 0 {
                obs.iter()
                    .map(|o| FrozenDays {
                        meter_id: o.meter_id,
                        totals: vec![(NOW / DAY + day - 1, 100_000 + day * 24 * 25)],
                    })
                    .collect()
            } else {
                Vec::new()
            };
            meters::record(db, &obs, &events, &frozen, t)
                .await
                .expect("record");
        }
        for (i, (id, address)) in meters.iter().enumerate() {
            let offset = i64::try_from(i).unwrap_or(0);
            if i == 0 || (day + offset) % 7 != 0 {
                continue;
            }
            let at = day_start + 12 * HOUR;
            let tx_id = format!("tx-{id}-{day}");
            let o = paid(db, address, 10, &tx_id, at).await;
            orders::log_notification(
                db,
                "wechat",
                Some(&o.out_trade_no),
                Some(&tx_id),
                Some(o.amount_fen.get()),
                "credited",
                at + 1,
            )
            .await
            .expect("notification");
            let job = jobs::claim(db, orders::DELIVER_QUEUE, "w", at + 2, 60_000, 10)
                .await
                .expect("claim")
                .into_iter()
                .find(|j| j.dedup_key.as_deref() == Some(&format!("deliver:{}", o.id)))
                .expect("delivery job");
            let seq = orders::assign_purchase_seq(db, o.id, at + 3)
                .await
                .expect("seq")
                .seq()
                .expect("numbered");
            let evidence = DeliveryEvidence {
                purchase_count: seq,
                remaining_centikwh: Some(21_000),
            };
            assert!(
                meters::complete_delivery(db, o.id, &job, o.meter_id, evidence, at + 4)
                    .await
                    .expect("delivered")
            );
            let s = story::story(db, o.id, &EVERYWHERE)
                .await
                .expect("story")
                .expect("in reach");
            run.orders.push((o.id, s.events, s.ledger));
        }
        let at = day_start + 8 * HOUR;
        store::operators::record_login_attempt(db, "night", "10.0.0.9", true, at)
            .await
            .expect("attempt");
        store::operators::create_session(db, &format!("t{day}"), op.id, "c", at)
            .await
            .expect("session");
        if let Some(policy) = policy {
            let before = usage(db).await;
            let r = retention::prune(db, policy, day_start + 3 * HOUR, false)
                .await
                .expect("prune");
            assert_eq!(usage(db).await, before, "pruning never touches daily usage");
            if day == last_day {
                eprintln!("{:?} last prune: {r:?}", db.backend());
            }
        }
    }
}

/// Every daily usage row as the student's chart reads it.
async fn usage(db: &Db) -> Vec<(i64, i64, Option<i64>, String)> {
    store::on_db!(db, |p| sqlx::query_as(
        "select meter_id, day, usage_centikwh, status from daily_usage order by meter_id, day"
    )
    .fetch_all(p)
    .await
    .expect("usage"))
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    store::on_db!(db, |p| sqlx::query_scalar(sql)
        .fetch_one(p)
        .await
        .expect(sql))
}

/// 30 days at the real cadence with raw readings kept 7 days and events
/// 14: readings stay within 8 days of rows per meter and quantity (plus
/// the first and last), old events and dead sessions go, and the ledger,
/// the daily usage, every order's story, each meter's first and last
/// reading are as before.
#[tokio::test]
async fn thirty_days_pruned_daily_stay_bounded_and_keep_what_must_be_kept() {
    let policy = Policy {
        readings_days: 7,
        events_days: 14,
        jobs_days: 7,
        attempts_days: 31,
        idempotency_days: 1,
        batch_rows: 100,
        ..Policy::default()
    };
    const METERS: usize = 4;
    const DAYS: i64 = 30;
    for (db, ms) in seeded(METERS).await {
        let mut run = Run::default();
        simulate(&db, &ms, 0..DAYS, Some(&policy), &mut run).await;
        let end = NOW + DAYS * DAY;

        // The bound: at most readings_days + 1 days of hourly rows per meter
        // and quantity (a prune a day), plus the first and the last.
        let readings = count(&db, "select count(*) from reading").await;
        let per_series = (i64::from(policy.readings_days) + 1) * 24 + 2;
        let bound = i64::try_from(METERS * READING_QUANTITIES.len()).unwrap() * per_series;
        assert!(readings <= bound, "{readings} readings > bound {bound}");
        let unpruned = i64::try_from((METERS - 1) * READING_QUANTITIES.len()).unwrap() * DAYS * 24;
        assert!(readings < unpruned / 3, "{readings} of {unpruned}: pruned");

        // The first and the last reading of every meter survive: meter 0
        // stopped answering on day 3, so its last values are weeks old.
        for (i, (id, _)) in ms.iter().enumerate() {
            let span: (Option<i64>, Option<i64>) = store::on_db!(&db, |p| {
                sqlx::query_as(
                "select min(at_ms), max(at_ms) from reading where meter_id = $1 and quantity = 'total'"
            )
            .bind(id)
            .fetch_one(p)
            .await
            .unwrap()
            });
            assert_eq!(
                span,
                (Some(run.first_total_at[i]), Some(run.last_total_at[i])),
                "meter {i}"
            );
            let start = store::students::usage_start(&db, *id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(start.first_reading_at_ms, Some(run.first_total_at[i]));
            let series: i64 = store::on_db!(&db, |p| sqlx::query_scalar(
                "select count(*) from reading where meter_id = $1"
            )
            .bind(id)
            .fetch_one(p)
            .await
            .unwrap());
            if i == 0 {
                // Offline since day 3: just its first and last of each quantity.
                assert_eq!(series, 8, "meter 0");
            }
        }

        // Money and energy: the ledger checks and nothing of it went.
        assert!(ledger::check(&db).await.unwrap().is_empty());
        let orders_n = count(&db, "select count(*) from orders").await;
        assert_eq!(orders_n, i64::try_from(run.orders.len()).unwrap());
        assert!(orders_n >= 10, "{orders_n} orders");
        for (id, events, ledger_rows) in &run.orders {
            let s = story::story(&db, *id, &EVERYWHERE).await.unwrap().unwrap();
            assert_eq!(&s.events, events, "story of order {id} intact");
            assert_eq!(&s.ledger, ledger_rows);
            assert!(s.events.iter().any(|e| e.what == "delivered"), "{id}");
            let messages = s
                .events
                .iter()
                .filter(|e| e.source == story::Source::Message)
                .count();
            assert_eq!(messages, 2, "both binders' messages in the story of {id}");
        }
        // Old offline/online events went; events about orders stayed.
        let old_plain: i64 = store::on_db!(&db, |p| sqlx::query_scalar(
            "select count(*) from meter_event where at_ms < $1 and detail not like 'order %'"
        )
        .bind(end - 16 * DAY)
        .fetch_one(p)
        .await
        .unwrap());
        assert_eq!(old_plain, 0);
        let order_events = count(
            &db,
            "select count(*) from meter_event where kind = 'delivered'",
        )
        .await;
        assert_eq!(order_events, orders_n);
        // Daily usage: every day of every answering meter, none pruned.
        let days = count(&db, "select count(*) from daily_usage").await;
        assert_eq!(days, i64::try_from(METERS - 1).unwrap() * (DAYS - 1) + 2);
        // Staff sessions (12 h) and login attempts (31 days): bounded.
        assert!(count(&db, "select count(*) from staff_session").await <= 1);
        assert_eq!(
            count(&db, "select count(*) from staff_login_attempt").await,
            DAYS
        );
        // The dry run after a pass finds nothing more at the same time.
        let dry = retention::prune(&db, &policy, NOW + (DAYS - 1) * DAY + 3 * HOUR, true)
            .await
            .unwrap();
        assert_eq!(dry.total(), 0, "{dry:?}");
        assert_eq!(dry.statements, 0);
    }
}

/// A dry run counts exactly what the pass then deletes, and deletes
/// nothing itself; a second pass finds nothing (two nodes at once only
/// share the work).
#[tokio::test]
async fn a_dry_run_counts_what_a_pass_deletes_and_passes_are_idempotent() {
    for (db, ms) in seeded(3).await {
        let mut run = Run::default();
        simulate(&db, &ms, 0..12, None, &mut run).await;
        let policy = Policy {
            readings_days: 3,
            events_days: 3,
            batch_rows: 50,
            ..Policy::default()
        };
        let at = NOW + 12 * DAY;
        let before = count(&db, "select count(*) from reading").await;
        let dry = retention::prune(&db, &policy, at, true).await.unwrap();
        assert_eq!(count(&db, "select count(*) from reading").await, before);
        assert!(dry.readings > 500, "{dry:?}");
        assert!(dry.meter_events > 0, "{dry:?}");
        let (a, b) = tokio::join!(
            retention::prune(&db, &policy, at, false),
            retention::prune(&db, &policy, at, false)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.readings + b.readings, dry.readings, "{a:?} {b:?}");
        assert_eq!(a.meter_events + b.meter_events, dry.meter_events);
        assert_eq!(
            count(&db, "select count(*) from reading").await,
            before - i64::try_from(dry.readings).unwrap()
        );
        assert!(a.statements > 0);
        let again = retention::prune(&db, &policy, at, false).await.unwrap();
        assert_eq!(again.total(), 0, "{again:?}");
        assert!(ledger::check(&db).await.unwrap().is_empty());
    }
}

/// A delivery job is part of its order's story and the exceptions queue:
/// never pruned, however old; a done job of another queue is. A dead job
/// (an exception for staff) stays.
#[tokio::test]
async fn delivery_and_dead_jobs_are_kept_done_jobs_of_other_queues_go() {
    for (db, ms) in seeded(2).await {
        let mut run = Run::default();
        simulate(&db, &ms, 0..8, None, &mut run).await;
        let mut tx = db.begin().await.unwrap();
        for (key, queue) in [("a", "report"), ("b", "report")] {
            jobs::enqueue(
                &mut tx,
                &jobs::NewJob {
                    queue,
                    dedup_key: Some(key),
                    payload: "{}",
                    priority: 0,
                    run_at_ms: NOW,
                    attempts_max: 3,
                },
                NOW,
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        let claimed = jobs::claim(&db, "report", "w", NOW, 60_000, 2)
            .await
            .unwrap();
        let mut tx = db.begin().await.unwrap();
        jobs::complete(&mut tx, &claimed[0], NOW).await.unwrap();
        jobs::bury_in(&mut tx, &claimed[1], "broken", NOW)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let deliveries = count(&db, "select count(*) from job where queue = 'deliver'").await;
        assert!(deliveries > 0);
        let r = retention::prune(&db, &Policy::default(), NOW + 400 * DAY, false)
            .await
            .unwrap();
        assert_eq!(r.jobs, 1, "{r:?}");
        assert_eq!(
            count(&db, "select count(*) from job where queue = 'deliver'").await,
            deliveries
        );
        assert_eq!(
            count(&db, "select count(*) from job where state = 'dead'").await,
            1
        );
        for (id, events, _) in &run.orders {
            let s = story::story(&db, *id, &EVERYWHERE).await.unwrap().unwrap();
            assert_eq!(&s.events, events);
        }
    }
}

/// Every quantity the head-end stores is one [`READING_QUANTITIES`]
/// prunes.
#[tokio::test]
async fn every_stored_quantity_is_pruned() {
    for (db, ms) in seeded(1).await {
        let o = Observation {
            meter_id: ms[0].0,
            at_ms: NOW,
            seen: true,
            online: Some(true),
            relay_closed: Some(true),
            power_w: Some(1),
            remaining_centikwh: Some(1),
            overdraft_centikwh: Some(1),
            total_centikwh: Some(1),
            voltage_dv: Some(1),
            purchase_count: Some(1),
            status_word: Some(1),
            clock_offset_ms: Some(1),
            keep_readings: true,
            ..Observation::default()
        };
        meters::record(&db, &[o], &[], &[], NOW).await.unwrap();
        let qs: Vec<String> = store::on_db!(&db, |p| sqlx::query_scalar(
            "select distinct quantity from reading"
        )
        .fetch_all(p)
        .await
        .unwrap());
        assert!(!qs.is_empty());
        for q in qs {
            assert!(READING_QUANTITIES.contains(&q.as_str()), "{q}");
        }
    }
}

/// The storage figures of docs/BENCHMARKS.md: `METERS` meters at the
/// real cadence, unpruned; the table sizes after `DAYS / 2` days and after
/// `DAYS` days, so that the growth between them (the steady state, without
/// the first pages every table and index takes) is what is extrapolated to
/// a meter-year. PostgreSQL is vacuumed before each measurement.
#[tokio::test]
#[ignore = "a measurement (docs/BENCHMARKS.md), minutes per backend"]
async fn measure_growth() {
    const METERS: usize = 24;
    const DAYS: i64 = 56;
    for (db, ms) in seeded(METERS).await {
        let mut run = Run::default();
        simulate(&db, &ms, 0..DAYS / 2, None, &mut run).await;
        let vacuum = |db: Db| async move {
            if let Db::Postgres(p) = &db {
                sqlx::query("vacuum analyze").execute(p).await.unwrap();
            }
        };
        vacuum(db.clone()).await;
        let half = retention::sizes(&db).await.unwrap();
        simulate(&db, &ms, DAYS / 2..DAYS, None, &mut run).await;
        vacuum(db.clone()).await;
        let after = retention::sizes(&db).await.unwrap();
        // Meter 0 went silent on day 3: the others answered all along.
        let meter_days = f64::from(u32::try_from(METERS - 1).unwrap()) * (DAYS / 2) as f64;
        println!(
            "\n{:?}: {METERS} meters, days {}..{DAYS} (unpruned)",
            db.backend(),
            DAYS / 2
        );
        println!("| table | rows added | bytes added | bytes/row | bytes per meter-year |");
        println!("|---|---:|---:|---:|---:|");
        let mut total = 0.0;
        for t in &after {
            let b = half.iter().find(|b| b.table == t.table);
            let rows = t.rows - b.map_or(0, |b| b.rows);
            let bytes = t.bytes - b.map_or(0, |b| b.bytes);
            if rows <= 0 {
                continue;
            }
            let per_year = bytes as f64 / meter_days * 365.0;
            total += per_year;
            println!(
                "| {} | {rows} | {bytes} | {:.0} | {:.0} |",
                t.table,
                bytes as f64 / rows as f64,
                per_year
            );
        }
        println!("| all | | | | {total:.0} |");
    }
}
