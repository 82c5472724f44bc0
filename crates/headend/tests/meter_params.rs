//! Staff parameter writes through the head-end and the simulator (issue 14
//! item 6, part 4): the values are written with 14H and read back equal;
//! a meter that refuses the write is failed per meter with its reply; the
//! meter then behaves by the new limit (a lower power limit trips on
//! over-power); a silent meter's write is requeued, then cancelled after
//! the bound. SQLite and PostgreSQL.

#[expect(
    dead_code,
    reason = "the shared test world has more than this test needs"
)]
mod common;

use common::{World, config, databases, eventually};
use headend::params;
use sim::Appliance;
use store::meter_params::{self, ParamSet};
use store::relay::CommandState;
use tokio_util::sync::CancellationToken;

fn actor() -> store::audit::Actor {
    store::audit::Actor {
        operator_id: None,
        name: "wang".into(),
        client_ip: "127.0.0.1".into(),
    }
}

async fn online(w: &World, meter_id: i64) {
    eventually(60, "the meter to be read", || async {
        store::meters::state(&w.db, meter_id)
            .await
            .unwrap()
            .is_some_and(|s| s.online)
    })
    .await;
}

fn he_now(w: &World) -> i64 {
    w.clock.now_ms()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn written_values_read_back_equal_a_refusing_meter_fails_and_the_limit_trips() {
    for db in databases().await {
        let w = World::new(db, sim::FaultConfig::default()).await;
        let he = w.headend(config("he-1")).await;
        let (good_id, good) = w.meter(3).await;
        let (bad_id, bad) = w.meter(4).await;
        w.fleet.set_remaining(&good, 50_000).unwrap();
        online(&w, good_id).await;
        online(&w, bad_id).await;
        // A meter whose password the head-end does not know refuses writes.
        w.fleet.set_password(&bad, 0x65_43_21).unwrap();
        let before = w.fleet.inspect(&bad).unwrap().params;
        let want = ParamSet {
            power_limit_w: Some(1_000),
            malicious_step_w: Some(800),
            malicious_pf_milli: Some(950),
        };
        let c = meter_params::request(&w.db, &actor(), &[good_id, bad_id], &want, he_now(&w))
            .await
            .unwrap();
        let stop = CancellationToken::new();
        let t = params::tick(&he, &w.db, &stop).await.unwrap();
        assert_eq!(t.finished, 2, "{:?}: {t:?}", w.db.backend());
        let done = meter_params::get(&w.db, c[0].id).await.unwrap().unwrap();
        assert_eq!(done.state, CommandState::Done, "{done:?}");
        assert_eq!(done.read, want, "read back equal");
        let p = w.fleet.inspect(&good).unwrap().params;
        assert_eq!(
            (p.power_limit_w, p.step_w, p.pf_threshold_milli),
            (1_000, 800, 950)
        );
        let failed = meter_params::get(&w.db, c[1].id).await.unwrap().unwrap();
        assert_eq!(failed.state, CommandState::Failed, "{failed:?}");
        let why = failed.error.clone().unwrap();
        assert!(
            why.contains("04A00101") && why.contains("password"),
            "{why}"
        );
        // Read back anyway: the meter's own values, not the requested ones.
        assert_eq!(
            failed.read.power_limit_w,
            Some(i64::from(before.power_limit_w))
        );
        assert_eq!(w.fleet.inspect(&bad).unwrap().params, before);
        let audit = store::audit::search(
            &w.db,
            &store::audit::Filter {
                action: Some("meter_params_failed".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].subject, format!("meter:{bad_id}"));
        // The new limit is the meter's: 1.5 kW (not resistive) now trips.
        w.fleet
            .plug(&good, Appliance::parse("1500W@0.6").unwrap(), None)
            .unwrap();
        w.fleet.clock().advance(3 * 60_000);
        let v = w.fleet.inspect(&good).unwrap();
        assert!(v.relay_open && v.over_power_trips == 1, "{v:?}");
        // …and not on the meter that refused (still 2.5 kW).
        w.fleet
            .plug(&bad, Appliance::parse("1500W@0.6").unwrap(), None)
            .unwrap();
        w.fleet.clock().advance(3 * 60_000);
        let v = w.fleet.inspect(&bad).unwrap();
        assert!(!v.relay_open && v.over_power_trips == 0, "{v:?}");
        he.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_meters_write_is_requeued_then_cancelled() {
    for db in databases().await {
        let w = World::new(db, sim::FaultConfig::default()).await;
        let cfg = headend::Config {
            relay_queue_bound_ms: 5 * 60_000,
            ..config("he-1")
        };
        let bound = cfg.relay_queue_bound_ms;
        let he = w.headend(cfg).await;
        let (meter_id, address) = w.meter(4).await;
        online(&w, meter_id).await;
        w.fleet.set_offline(&address, 3_600_000).unwrap();
        let want = ParamSet {
            power_limit_w: Some(1_200),
            ..Default::default()
        };
        let c = meter_params::request(&w.db, &actor(), &[meter_id], &want, he_now(&w))
            .await
            .unwrap();
        let stop = CancellationToken::new();
        let t = params::tick(&he, &w.db, &stop).await.unwrap();
        assert_eq!(t.requeued, 1, "{t:?}");
        let q = meter_params::get(&w.db, c[0].id).await.unwrap().unwrap();
        assert_eq!(q.state, CommandState::Queued, "never dropped: {q:?}");
        assert!(q.error.is_some(), "{q:?}");
        w.fleet.clock().advance(bound + 1);
        let t = params::tick(&he, &w.db, &stop).await.unwrap();
        assert_eq!(t.cancelled, 1, "{t:?}");
        let q = meter_params::get(&w.db, c[0].id).await.unwrap().unwrap();
        assert_eq!(q.state, CommandState::Cancelled);
        he.shutdown().await;
    }
}
