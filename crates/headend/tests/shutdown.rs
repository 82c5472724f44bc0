//! Shutdown is bounded by the head-end's own stop, not by the meters: a bus
//! waiting for a reply that never comes, and the daily time broadcast that
//! holds every bus of a gateway for seconds, both end at once when the
//! head-end stops, so no task has to be aborted (the broadcast used to run
//! to its end: "head-end tasks did not stop in time; aborting them").

#[expect(
    dead_code,
    reason = "the shared test world has more than this test needs"
)]
mod common;

use common::{World, config, databases, eventually};
use std::sync::atomic::Ordering;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bus_waiting_for_a_silent_meter_stops_with_the_headend() {
    for db in databases().await {
        let w = World::new(db, sim::FaultConfig::default()).await;
        // Every reply is dropped, and each request waits 10 virtual minutes
        // (a minute of real time) before it counts as unanswered.
        w.rules.blackout.store(true, Ordering::SeqCst);
        let cfg = headend::Config {
            gateway_slack_ms: 600_000,
            ..config("he-stop")
        };
        let he = w.headend(cfg).await;
        eventually(30, "a request on the wire", || async {
            he.metrics().frames_sent > 0
        })
        .await;
        assert_eq!(he.metrics().timeouts, 0, "still waiting for the reply");
        assert!(he.shutdown().await, "every head-end task stopped by itself");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_time_broadcast_in_progress_stops_with_the_headend() {
    for db in databases().await {
        // At 4 baud each of the three broadcasts holds the buses for ~60
        // virtual seconds (six real seconds here).
        let w = World::with_plan(db, sim::FaultConfig::default(), common::small_plan_at(4)).await;
        let cfg = headend::Config {
            // Due at once: any time after campus midnight.
            time_sync_at_ms: 0,
            ..config("he-sync")
        };
        let he = w.headend(cfg).await;
        eventually(30, "the first time broadcast on the wire", || async {
            w.rules.broadcasts_sent.load(Ordering::SeqCst) >= 1
        })
        .await;
        assert!(
            w.rules.broadcasts_sent.load(Ordering::SeqCst) < 3,
            "the broadcast is still in progress"
        );
        assert!(he.shutdown().await, "every head-end task stopped by itself");
    }
}
