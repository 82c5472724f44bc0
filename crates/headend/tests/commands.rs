//! Staff relay commands through the head-end (issue 14 item 5): a queued
//! command is claimed, sent to the simulated meter, confirmed by status
//! word 3 and recorded; a silent meter's command goes back to the queue
//! and is cancelled after the bound. SQLite and PostgreSQL.

#[expect(
    dead_code,
    reason = "the shared test world has more than this test needs"
)]
mod common;

use common::{World, config, databases, eventually};
use headend::commands;
use store::relay::{self, CommandState, Reason, RelayAction};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queued_trip_is_sent_confirmed_and_restored() {
    for db in databases().await {
        let w = World::new(db, sim::FaultConfig::default()).await;
        let he = w.headend(config("he-1")).await;
        let (meter_id, address) = w.meter(3).await;
        w.fleet.set_remaining(&address, 5_000).unwrap();
        online(&w, meter_id).await;
        let stop = CancellationToken::new();
        let reason = Reason::parse("违规电器").unwrap();
        let c = relay::request(
            &w.db,
            &actor(),
            &[meter_id],
            RelayAction::Trip,
            &reason,
            he_now(&w),
        )
        .await
        .unwrap();
        let t = commands::tick(&he, &w.db, &stop).await.unwrap();
        assert_eq!(t.finished, 1, "{:?}: {t:?}", w.db.backend());
        let done = relay::get(&w.db, c[0].id).await.unwrap().unwrap();
        assert_eq!(done.state, CommandState::Done, "{done:?}");
        let sw = done.status_word.expect("status word read back");
        assert_ne!(
            sw & 0x10,
            0,
            "status word 3 shows the relay open: {sw:#06x}"
        );
        assert_eq!(done.relay_closed, Some(false));
        assert!(w.fleet.inspect(&address).unwrap().relay_open);
        // Restore.
        let c = relay::request(
            &w.db,
            &actor(),
            &[meter_id],
            RelayAction::Close,
            &reason,
            he_now(&w),
        )
        .await
        .unwrap();
        commands::tick(&he, &w.db, &stop).await.unwrap();
        let done = relay::get(&w.db, c[0].id).await.unwrap().unwrap();
        assert_eq!(done.state, CommandState::Done, "{done:?}");
        assert_eq!(done.relay_closed, Some(true));
        assert!(!w.fleet.inspect(&address).unwrap().relay_open);
        // Keep-power: confirmed on the meter, recorded in meter_state.
        let c = relay::request(
            &w.db,
            &actor(),
            &[meter_id],
            RelayAction::KeepPower,
            &reason,
            he_now(&w),
        )
        .await
        .unwrap();
        commands::tick(&he, &w.db, &stop).await.unwrap();
        let done = relay::get(&w.db, c[0].id).await.unwrap().unwrap();
        assert_eq!(done.state, CommandState::Done);
        assert!(relay::keep_power(&w.db, meter_id).await.unwrap());
        assert!(
            !relay::enqueue_balance_trip(&w.db, meter_id, he_now(&w))
                .await
                .unwrap()
        );
        he.shutdown().await;
    }
}

fn he_now(w: &World) -> i64 {
    w.clock.now_ms()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_meters_command_stays_queued_then_is_cancelled() {
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
        // The meter stops answering (the database still says online).
        w.fleet.set_offline(&address, 3_600_000).unwrap();
        let stop = CancellationToken::new();
        let reason = Reason::parse("检修").unwrap();
        let c = relay::request(
            &w.db,
            &actor(),
            &[meter_id],
            RelayAction::Trip,
            &reason,
            he_now(&w),
        )
        .await
        .unwrap();
        let t = commands::tick(&he, &w.db, &stop).await.unwrap();
        assert_eq!(t.requeued, 1, "{t:?}");
        let q = relay::get(&w.db, c[0].id).await.unwrap().unwrap();
        assert_eq!(q.state, CommandState::Queued, "never dropped: {q:?}");
        assert!(q.error.is_some(), "{q:?}");
        w.fleet.clock().advance(bound + 1);
        let t = commands::tick(&he, &w.db, &stop).await.unwrap();
        assert_eq!(t.cancelled, 1, "{t:?}");
        let q = relay::get(&w.db, c[0].id).await.unwrap().unwrap();
        assert_eq!(q.state, CommandState::Cancelled);
        assert!(!w.fleet.inspect(&address).unwrap().relay_open);
        he.shutdown().await;
    }
}
