//! The head-end against the simulator over loopback TCP, with faults on:
//! the "Done when" scenarios of the head-end issue. Every scenario runs on
//! SQLite and, when `DORMWATT_TEST_PG_URL` is set, on PostgreSQL, and ends
//! with the ledger invariants.

mod common;

use common::{DAY_MS, World, config, databases, eventually, lossy};
use dlt645::{Di, request};
use domain::CentiKwh;
use domain::order::OrderState;
use headend::plan;
use sim::{Appliance, ApplianceKind};
use std::sync::atomic::Ordering;

/// remaining + register total only changes by purchases (while the meter
/// has a balance), so it proves how much energy arrived.
fn energy_sum(fleet: &sim::Fleet, address: &str) -> (u32, i64, u32) {
    let v = fleet.inspect(address).unwrap();
    assert_eq!(v.overdraft_centikwh, 0, "meter in overdraft: {v:?}");
    (
        v.purchase_count,
        i64::from(v.remaining_centikwh) + i64::from(v.total_centikwh),
        v.purchased_total_centikwh,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_recharge_reply_is_delivered_exactly_once() {
    for db in databases().await {
        let w = World::new(db, lossy()).await;
        let he = w.headend(config("he-1")).await;
        let (meter_id, address) = w.meter(2).await;
        w.fleet.set_remaining(&address, 5_000).unwrap();
        let (count0, sum0, bought0) = energy_sum(&w.fleet, &address);
        // The meter applies the recharge but its reply never comes back.
        w.rules.drop_recharge_replies.store(1, Ordering::SeqCst);
        let order = w.buy(meter_id, 20).await;
        eventually(60, "the order to complete", || async {
            w.order_state(order).await == OrderState::Completed
        })
        .await;
        assert_eq!(
            w.rules.dropped.load(Ordering::SeqCst),
            1,
            "a reply was lost"
        );
        let (count1, sum1, bought1) = energy_sum(&w.fleet, &address);
        assert_eq!(count1, count0 + 1, "exactly one purchase on the meter");
        assert_eq!(sum1, sum0 + 2_000, "exactly 20 kWh arrived");
        assert_eq!(bought1, bought0 + 2_000);
        let o = store::orders::by_id(&w.db, order).await.unwrap().unwrap();
        assert_eq!(o.purchase_seq, Some(i64::from(count1)));
        let s = store::meters::state(&w.db, meter_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.purchase_count, Some(i64::from(count1)));
        eventually(10, "the delivery to be counted", || async {
            he.metrics().deliveries_completed == 1
        })
        .await;
        let m = he.metrics();
        assert!(m.frames_sent > 0 && m.replies > 0);
        w.assert_ledger().await;
        he.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_in_the_middle_of_a_delivery_neither_loses_nor_repeats_it() {
    for db in databases().await {
        let w = World::new(db, lossy()).await;
        let he = w.headend(config("he-1")).await;
        let (meter_id, address) = w.meter(7).await;
        w.fleet.set_remaining(&address, 5_000).unwrap();
        let (count0, sum0, _) = energy_sum(&w.fleet, &address);
        // The recharge lands on the meter, then the link goes dark: the
        // first head-end cannot learn the outcome.
        w.rules.drop_recharge_replies.store(1, Ordering::SeqCst);
        w.rules.blackout_after_drop.store(true, Ordering::SeqCst);
        let order = w.buy(meter_id, 30).await;
        eventually(60, "the recharge to reach the meter", || async {
            w.rules.dropped.load(Ordering::SeqCst) == 1
        })
        .await;
        assert_eq!(energy_sum(&w.fleet, &address).0, count0 + 1, "applied");
        // Let it try to read back a little, then crash it.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(w.order_state(order).await, OrderState::Charging);
        drop(he);
        w.rules.blackout.store(false, Ordering::SeqCst);
        w.rules.blackout_after_drop.store(false, Ordering::SeqCst);
        let he2 = w.headend(config("he-2")).await;
        eventually(
            60,
            "the restarted head-end to complete the order",
            || async { w.order_state(order).await == OrderState::Completed },
        )
        .await;
        let (count1, sum1, _) = energy_sum(&w.fleet, &address);
        assert_eq!(count1, count0 + 1, "not repeated");
        assert_eq!(sum1, sum0 + 3_000, "not lost");
        assert_eq!(
            w.rules.recharges_sent.load(Ordering::SeqCst),
            1,
            "the second head-end read back instead of re-sending"
        );
        eventually(10, "the delivery to be counted", || async {
            he2.metrics().deliveries_completed == 1
        })
        .await;
        w.assert_ledger().await;
        he2.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn meter_offline_two_days_gets_its_purchase_and_its_days_back_filled() {
    for db in databases().await {
        let w = World::new(db, lossy()).await;
        let he = w.headend(config("he-1")).await;
        let (meter_id, address) = w.meter(4).await;
        w.fleet.set_remaining(&address, 5_000).unwrap();
        let tz = domain::time::CampusTz::default().tz().clone();
        let (day0, _) = plan::campus_day(w.clock.now_ms(), &tz);
        // The first daily read stores the freeze history up to yesterday.
        eventually(60, "the first daily read", || async {
            store::meters::days(&w.db, meter_id, day0 - 1, day0 - 1)
                .await
                .unwrap()
                .first()
                .is_some_and(|d| d.status == "ok")
        })
        .await;
        let (count0, sum0, _) = energy_sum(&w.fleet, &address);
        w.fleet.set_offline(&address, 10 * DAY_MS).unwrap();
        let order = w.buy(meter_id, 10).await;
        eventually(60, "the meter to be seen offline", || async {
            !store::meters::state(&w.db, meter_id)
                .await
                .unwrap()
                .unwrap()
                .online
        })
        .await;
        // Two days pass with the meter unreachable.
        w.fleet.clock().advance(2 * DAY_MS);
        eventually(60, "the unread days to be marked missing", || async {
            let d = store::meters::days(&w.db, meter_id, day0, day0 + 1)
                .await
                .unwrap();
            d.len() == 2
                && d.iter()
                    .all(|d| d.status == "missing" && d.usage_centikwh.is_none())
        })
        .await;
        assert_ne!(w.order_state(order).await, OrderState::Completed);
        // Back online.
        w.fleet.set_offline(&address, 0).unwrap();
        eventually(60, "the purchase to arrive", || async {
            w.order_state(order).await == OrderState::Completed
        })
        .await;
        eventually(60, "the missing days to be back-filled", || async {
            let d = store::meters::days(&w.db, meter_id, day0, day0 + 1)
                .await
                .unwrap();
            d.len() == 2 && d.iter().all(|d| d.status == "ok")
        })
        .await;
        // The back-filled usage is the meter's own daily freezes.
        let freeze = |n: u8| {
            let a = dlt645::Address::parse(&address).unwrap();
            let f = w
                .fleet
                .request(&request::read_request(
                    a,
                    Di::daily_freeze_energy(n).unwrap(),
                ))
                .unwrap();
            match plan::value(&f) {
                Some(dlt645::value::Value::EnergyBlock(v)) => v[0],
                other => panic!("freeze {n}: {other:?}"),
            }
        };
        let d = store::meters::days(&w.db, meter_id, day0, day0 + 1)
            .await
            .unwrap();
        assert_eq!(d[0].usage_centikwh, Some(freeze(2) - freeze(3)));
        assert_eq!(d[1].usage_centikwh, Some(freeze(1) - freeze(2)));
        let (count1, sum1, _) = energy_sum(&w.fleet, &address);
        assert_eq!(count1, count0 + 1);
        assert_eq!(sum1, sum0 + 1_000);
        let kinds: Vec<String> = store::meters::events(&w.db, meter_id, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        let pos = |k: &str| kinds.iter().position(|x| x == k);
        assert!(
            pos("offline") < pos("online") && pos("online").is_some(),
            "{kinds:?}"
        );
        assert!(kinds.contains(&"delivered".to_owned()), "{kinds:?}");
        w.assert_ledger().await;
        he.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malicious_load_trip_becomes_an_event_with_its_reason() {
    for db in databases().await {
        let w = World::new(db, lossy()).await;
        let he = w.headend(config("he-1")).await;
        let (meter_id, address) = w.meter(9).await;
        w.fleet.set_remaining(&address, 5_000).unwrap();
        // The meter needs a window of samples from before the appliance.
        w.fleet.clock().advance(2 * 60_000);
        w.fleet
            .plug(&address, Appliance::preset(ApplianceKind::Kettle), None)
            .unwrap();
        eventually(60, "a malicious-load trip event", || async {
            store::meters::events(&w.db, meter_id, 100)
                .await
                .unwrap()
                .iter()
                .any(|e| e.kind == "trip" && e.detail.starts_with("malicious_load"))
        })
        .await;
        let s = store::meters::state(&w.db, meter_id)
            .await
            .unwrap()
            .unwrap();
        assert!(s.status_word.is_some());
        // Staff close the relay directly; the head-end confirms by status word.
        w.fleet.unplug(&address).unwrap();
        let out = he
            .relay(meter_id, dlt645::value::RelayCommand::DirectClose)
            .await;
        let out = out.unwrap();
        assert!(out.accepted);
        assert_eq!(out.relay_closed, Some(true));
        eventually(60, "the restore event", || async {
            store::meters::events(&w.db, meter_id, 100)
                .await
                .unwrap()
                .iter()
                .any(|e| e.kind == "relay_command")
        })
        .await;
        w.assert_ledger().await;
        he.shutdown().await;
    }
}

/// Issue 11 item 3: a meter whose balance runs out runs into its
/// overdraft; the head-end reads how much (DI 00900101) and stores it, and
/// a purchase, which repays the overdraft first, leaves none stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_meter_driven_into_overdraft_has_its_overdraft_stored() {
    for db in databases().await {
        let w = World::new(db, lossy()).await;
        let he = w.headend(config("he-1")).await;
        let (meter_id, address) = w.meter(5).await;
        // A small overdraft limit, so the meter trips on it and the
        // overdraft stops moving (an open relay counts nothing).
        w.fleet.set_overdraft_limit(&address, 60).unwrap();
        w.fleet.set_remaining(&address, 10).unwrap();
        w.fleet
            .plug(&address, Appliance::parse("500W@0.7").unwrap(), None)
            .unwrap();
        w.fleet.clock().advance(2 * 3_600_000);
        w.fleet.unplug(&address).unwrap();
        let v = w.fleet.inspect(&address).unwrap();
        assert!(
            v.relay_open && v.remaining_centikwh == 0 && v.overdraft_centikwh >= 60,
            "{v:?}"
        );
        let overdraft = i64::from(v.overdraft_centikwh);
        eventually(60, "the overdraft to be stored", || async {
            let s = store::meters::state(&w.db, meter_id)
                .await
                .unwrap()
                .unwrap();
            s.remaining_centikwh == Some(CentiKwh::new(0))
                && s.overdraft_centikwh == Some(CentiKwh::new(overdraft))
        })
        .await;
        let order = w.buy(meter_id, 5).await;
        eventually(60, "the order to complete", || async {
            w.order_state(order).await == OrderState::Completed
        })
        .await;
        assert_eq!(
            w.fleet.inspect(&address).unwrap().overdraft_centikwh,
            0,
            "repaid first"
        );
        let s = store::meters::state(&w.db, meter_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.overdraft_centikwh, Some(CentiKwh::new(0)), "{s:?}");
        assert!(
            s.remaining_centikwh
                .is_some_and(|r| r.get() <= 500 - overdraft),
            "{s:?}"
        );
        w.assert_ledger().await;
        he.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gateways_that_dial_in_register_and_get_served() {
    use std::sync::Arc;
    use tokio::io::AsyncWriteExt;
    for db in databases().await {
        let plan = common::small_plan();
        let fleet = sim::Fleet::from_plan(
            &plan,
            sim::SimConfig {
                seed: 3,
                start_ms: Some(common::START_MS),
                speed: common::SPEED,
                faults: lossy(),
                heartbeat_period_ms: 5_000,
                ..sim::SimConfig::default()
            },
        );
        let clock: headend::SharedClock = Arc::new(common::VirtualClock(fleet.clock().clone()));
        store::campus::seed(
            &db,
            &plan,
            &store::campus::GatewayAddressing::default(),
            clock.now_ms(),
        )
        .await
        .unwrap();
        for g in &plan.areas[0].buildings[0].gateways {
            assert!(
                store::meters::set_gateway_mode(&db, &g.name, "listen")
                    .await
                    .unwrap()
            );
        }
        let cfg = headend::Config {
            listen: Some("127.0.0.1:0".to_owned()),
            ..config("he-listen")
        };
        let he = headend::Headend::start(db.clone(), cfg, clock.clone())
            .await
            .unwrap();
        let at = he.listen_addr().unwrap();
        // A stranger with an unknown registration id is turned away.
        let mut stranger = tokio::net::TcpStream::connect(at).await.unwrap();
        stranger.write_all(b"nobody-gw9").await.unwrap();
        eventually(30, "the unknown registration to be counted", || async {
            he.metrics().unknown_registrations == 1
        })
        .await;
        let _running = fleet
            .start(sim::GatewayMode::Client { headend: at })
            .await
            .unwrap();
        let r = store::meters::registry(&db).await.unwrap();
        let m = r[0].buses[1].meters[2].clone();
        fleet.set_remaining(&m.address, 5_000).unwrap();
        let (count0, sum0, _) = energy_sum(&fleet, &m.address);
        let info = store::campus::meter_by_id(&db, domain::MeterId::new(m.id))
            .await
            .unwrap()
            .unwrap();
        let order = store::orders::create_counter_sale(
            &db,
            info.area_id.get(),
            &m.address,
            domain::WholeKwh::parse("5", 500).unwrap(),
            "test",
            clock.now_ms(),
        )
        .await
        .unwrap();
        eventually(60, "the purchase over a dial-in gateway", || async {
            store::orders::by_id(&db, order.id)
                .await
                .unwrap()
                .unwrap()
                .state
                == OrderState::Completed
        })
        .await;
        let (count1, sum1, _) = energy_sum(&fleet, &m.address);
        assert_eq!((count1, sum1), (count0 + 1, sum0 + 500));
        eventually(60, "every meter to be polled", || async {
            he.metrics()
                .buses
                .iter()
                .all(|b| b.first_sweep_done_ms.is_some())
        })
        .await;
        assert!(he.metrics().connects >= 1);
        let v = store::ledger::check(&db).await.unwrap();
        assert!(v.is_empty(), "{v:?}");
        he.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sequence_gap_is_flagged_for_staff_never_guessed() {
    use dlt645::value::{OperatorCode, Recharge};
    for db in databases().await {
        let w = World::new(db, lossy()).await;
        let (meter_id, address) = w.meter(5).await;
        w.fleet.set_remaining(&address, 5_000).unwrap();
        let a = dlt645::Address::parse(&address).unwrap();
        // The platform assigns the order's number from the count it knows…
        let count0 = w.fleet.inspect(&address).unwrap().purchase_count;
        store::meters::set_purchase_count(
            &w.db,
            domain::MeterId::new(meter_id),
            i64::from(count0),
            w.clock.now_ms(),
        )
        .await
        .unwrap();
        let order = w.buy(meter_id, 10).await;
        let seq = store::orders::assign_purchase_seq(&w.db, order, w.clock.now_ms())
            .await
            .unwrap();
        assert_eq!(seq.seq(), Some(i64::from(count0) + 1));
        // …then two purchases it never heard of land on the meter.
        for k in 1..=2 {
            let r = Recharge {
                operator: OperatorCode(99),
                energy_centikwh: 700,
                purchase_count: count0 + k,
                mac1: [0; 4],
                customer: 1,
                mac2: [0; 4],
            };
            let reply = w
                .fleet
                .request(&request::recharge_request(a, &r).unwrap())
                .unwrap();
            assert!(!reply.control().is_abnormal());
        }
        let he = w.headend(config("he-1")).await;
        eventually(60, "the order to be flagged delayed", || async {
            w.order_state(order).await == OrderState::Delayed
        })
        .await;
        let events = store::meters::events(&w.db, meter_id, 100).await.unwrap();
        assert!(events.iter().any(|e| e.kind == "seq_gap"), "{events:?}");
        assert_eq!(
            w.rules.recharges_sent.load(Ordering::SeqCst),
            0,
            "nothing sent"
        );
        assert_eq!(
            w.fleet.inspect(&address).unwrap().purchase_count,
            count0 + 2
        );
        eventually(10, "the flag to be counted", || async {
            he.metrics().deliveries_flagged == 1
        })
        .await;
        w.assert_ledger().await;
        he.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn meter_clocks_are_synced_by_broadcast_or_corrected_one_by_one() {
    use dlt645::value::{OperatorCode, Password, WriteData};
    for db in databases().await {
        let w = World::new(db, lossy()).await;
        let tz = domain::time::CampusTz::default().tz().clone();
        let (near_id, near) = w.meter(1).await;
        let (far_id, far) = w.meter(8).await;
        // Knock two meter clocks off: 3 minutes (a broadcast fixes it) and
        // 9 minutes (beyond what a broadcast may correct).
        for (address, off_ms) in [(&near, 3 * 60_000), (&far, 9 * 60_000)] {
            let t = plan::meter_time(w.clock.now_ms() + off_ms, &tz).unwrap();
            let write = WriteData {
                di: Di::TIME,
                password: Password {
                    level: 2,
                    code: 0x12_34_56,
                },
                operator: OperatorCode(1),
                value: t.to_wire_time().to_vec(),
            };
            let a = dlt645::Address::parse(address).unwrap();
            let reply = w
                .fleet
                .request(&request::write_request(a, &write).unwrap())
                .unwrap();
            assert!(!reply.control().is_abnormal());
            assert!(w.fleet.inspect(address).unwrap().clock_error_ms >= off_ms - 2_000);
        }
        let he = w.headend(config("he-1")).await;
        eventually(60, "the broadcast", || async {
            he.metrics().time_syncs == 1
        })
        .await;
        eventually(60, "both clocks to be right", || async {
            w.fleet.inspect(&near).unwrap().clock_error_ms.abs() < 5_000
                && w.fleet.inspect(&far).unwrap().clock_error_ms.abs() < 5_000
        })
        .await;
        // The event is stored with the bus round's observations, a moment
        // after the meter took the new time.
        eventually(30, "the correction to be recorded", || async {
            store::meters::events(&w.db, far_id, 100)
                .await
                .unwrap()
                .iter()
                .any(|e| e.kind == "clock_corrected")
        })
        .await;
        let near_events = store::meters::events(&w.db, near_id, 100).await.unwrap();
        assert!(
            !near_events.iter().any(|e| e.kind == "clock_corrected"),
            "the broadcast was enough: {near_events:?}"
        );
        he.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_recharge_gives_its_number_back_and_the_next_purchase_lands() {
    for db in databases().await {
        let w = World::new(db, sim::FaultConfig::default()).await;
        let (meter_id, address) = w.meter(9).await;
        w.fleet.set_remaining(&address, 5_000).unwrap();
        // The meter holds at most 60 kWh (the platform was told more).
        w.fleet.set_hoarding_limit(&address, 6_000).unwrap();
        let count0 = w.fleet.inspect(&address).unwrap().purchase_count;
        let he = w.headend(config("he-1")).await;
        let refused = w.buy(meter_id, 20).await;
        eventually(60, "the refused order to be flagged", || async {
            w.order_state(refused).await == OrderState::Delayed
        })
        .await;
        let o = store::orders::by_id(&w.db, refused).await.unwrap().unwrap();
        assert_eq!(o.purchase_seq, None, "number given back");
        let events = store::meters::events(&w.db, meter_id, 100).await.unwrap();
        assert!(
            events.iter().any(|e| e.kind == "recharge_refused"),
            "{events:?}"
        );
        // One refusal does not block the meter: the next purchase gets the
        // same number and lands.
        let next = w.buy(meter_id, 5).await;
        eventually(60, "the next purchase to be delivered", || async {
            w.order_state(next).await == OrderState::Completed
        })
        .await;
        assert_eq!(
            w.fleet.inspect(&address).unwrap().purchase_count,
            count0 + 1
        );
        let n = store::orders::by_id(&w.db, next).await.unwrap().unwrap();
        assert_eq!(n.purchase_seq, Some(i64::from(count0) + 1));
        // The refused order is refundable.
        let r = store::orders::request_refund(&w.db, refused, w.clock.now_ms())
            .await
            .unwrap();
        assert_eq!(r.state, OrderState::Refunding);
        w.assert_ledger().await;
        he.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backlog_on_one_meter_drains_without_failed_attempts() {
    for db in databases().await {
        let w = World::new(db, sim::FaultConfig::default()).await;
        let (meter_id, address) = w.meter(10).await;
        w.fleet.set_remaining(&address, 1_000).unwrap();
        let count0 = w.fleet.inspect(&address).unwrap().purchase_count;
        let mut orders = Vec::new();
        for _ in 0..8 {
            orders.push(w.buy(meter_id, 2).await);
        }
        let he = w.headend(config("he-1")).await;
        eventually(60, "all eight purchases to be delivered", || async {
            let mut all = true;
            for o in &orders {
                all &= w.order_state(*o).await == OrderState::Completed;
            }
            all
        })
        .await;
        assert_eq!(
            w.fleet.inspect(&address).unwrap().purchase_count,
            count0 + 8
        );
        // Waiting behind a sibling is not a failed attempt.
        assert_eq!(he.metrics().delivery_attempts_failed, 0);
        // Delivered in payment order.
        let mut seqs = Vec::new();
        for o in &orders {
            seqs.push(
                store::orders::by_id(&w.db, *o)
                    .await
                    .unwrap()
                    .unwrap()
                    .purchase_seq
                    .unwrap(),
            );
        }
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        assert_eq!(seqs, sorted);
        w.assert_ledger().await;
        he.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_paid_out_of_creation_order_settle_by_the_meters_count() {
    for db in databases().await {
        let w = World::new(db, lossy()).await;
        let (meter_id, address) = w.meter(11).await;
        w.fleet.set_remaining(&address, 5_000).unwrap();
        let (count0, sum0, _) = energy_sum(&w.fleet, &address);
        let info = store::campus::meter_by_id(&w.db, domain::MeterId::new(meter_id))
            .await
            .unwrap()
            .unwrap();
        // A is created first but paid second.
        let a = store::orders::create(
            &w.db,
            &store::orders::NewOrder {
                area_id: info.area_id.get(),
                meter_address: info.address.as_str(),
                student_id: None,
                kwh: domain::WholeKwh::new(2, 500).unwrap(),
                channel: domain::order::Channel::Wechat,
                operator: None,
            },
            w.clock.now_ms(),
        )
        .await
        .unwrap();
        // B's frame reaches the meter, then the link goes dark: B's outcome
        // is unknown while A is paid.
        w.rules.drop_recharge_replies.store(1, Ordering::SeqCst);
        w.rules.blackout_after_drop.store(true, Ordering::SeqCst);
        let he = w.headend(config("he-1")).await;
        let b = w.buy(meter_id, 3).await;
        eventually(60, "B's recharge to reach the meter", || async {
            w.rules.dropped.load(Ordering::SeqCst) == 1
        })
        .await;
        let conf = store::orders::PaymentConfirmation {
            out_trade_no: &a.out_trade_no,
            transaction_id: "4200000001202612020000000001",
            amount_fen: a.amount_fen,
        };
        store::orders::record_payment(&w.db, &conf, w.clock.now_ms())
            .await
            .unwrap();
        // Restart on another node while B is unsettled, then the link heals.
        drop(he);
        w.rules.blackout.store(false, Ordering::SeqCst);
        w.rules.blackout_after_drop.store(false, Ordering::SeqCst);
        let he2 = w.headend(config("he-2")).await;
        eventually(90, "both orders to be delivered", || async {
            w.order_state(a.id).await == OrderState::Completed
                && w.order_state(b).await == OrderState::Completed
        })
        .await;
        let (count1, sum1, _) = energy_sum(&w.fleet, &address);
        assert_eq!(count1, count0 + 2);
        assert_eq!(sum1, sum0 + 500);
        let ob = store::orders::by_id(&w.db, b).await.unwrap().unwrap();
        assert_eq!(
            ob.purchase_seq,
            Some(i64::from(count0) + 1),
            "B keeps its number"
        );
        w.assert_ledger().await;
        he2.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_node_resumes_its_inflight_delivery_without_waiting_for_the_lease() {
    for db in databases().await {
        let w = World::new(db, sim::FaultConfig::default()).await;
        // A lease far longer than the test may wait: only taking back the
        // dead incarnation's lease can finish it in time.
        let cfg = headend::Config {
            deliver_lease_ms: 3_600_000,
            ..config("node-a")
        };
        let (meter_id, address) = w.meter(3).await;
        w.fleet.set_remaining(&address, 5_000).unwrap();
        let count0 = w.fleet.inspect(&address).unwrap().purchase_count;
        w.rules.drop_recharge_replies.store(1, Ordering::SeqCst);
        w.rules.blackout_after_drop.store(true, Ordering::SeqCst);
        let he = w.headend(cfg.clone()).await;
        let order = w.buy(meter_id, 4).await;
        eventually(60, "the recharge to reach the meter", || async {
            w.rules.dropped.load(Ordering::SeqCst) == 1
        })
        .await;
        drop(he); // killed mid-delivery, holding the lease
        w.rules.blackout.store(false, Ordering::SeqCst);
        w.rules.blackout_after_drop.store(false, Ordering::SeqCst);
        let he2 = w.headend(cfg).await;
        assert!(
            he2.worker_name().starts_with("node-a#"),
            "{}",
            he2.worker_name()
        );
        eventually(30, "the restarted node to complete the order", || async {
            w.order_state(order).await == OrderState::Completed
        })
        .await;
        assert_eq!(
            w.fleet.inspect(&address).unwrap().purchase_count,
            count0 + 1
        );
        assert_eq!(
            w.rules.recharges_sent.load(Ordering::SeqCst),
            1,
            "read back, not re-sent"
        );
        w.assert_ledger().await;
        he2.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_is_quick_and_releases_the_leases() {
    for db in databases().await {
        let w = World::new(db, sim::FaultConfig::default()).await;
        let (meter_id, address) = w.meter(4).await;
        w.fleet.set_remaining(&address, 5_000).unwrap();
        w.rules.drop_recharge_replies.store(1, Ordering::SeqCst);
        w.rules.blackout_after_drop.store(true, Ordering::SeqCst);
        let he = w.headend(config("node-s")).await;
        let order = w.buy(meter_id, 4).await;
        eventually(60, "the recharge to reach the meter", || async {
            w.rules.dropped.load(Ordering::SeqCst) == 1
        })
        .await;
        assert_eq!(store::jobs::held(&w.db).await.unwrap(), 1);
        he.shutdown().await;
        assert_eq!(
            store::jobs::held(&w.db).await.unwrap(),
            0,
            "leases released on shutdown"
        );
        assert_eq!(w.order_state(order).await, OrderState::Charging);
        w.assert_ledger().await;
    }
}
