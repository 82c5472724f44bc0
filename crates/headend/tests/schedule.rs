//! No-cut hours and power-off hours through the head-end (issue 14 item 6,
//! part 3): the scheduler's commands at a window's edges reach the
//! simulated meter and are confirmed by status word 3 read back. SQLite
//! and PostgreSQL.

#[expect(
    dead_code,
    reason = "the shared test world has more than this test needs"
)]
mod common;

use common::{World, config, databases, eventually};
use headend::commands;
use store::relay::{self, CommandState};
use store::schedule::{self, WindowKind, WindowSpec};
use tokio_util::sync::CancellationToken;

const KEEP_POWER_BIT: i64 = 1 << 14;

fn actor() -> store::audit::Actor {
    store::audit::Actor {
        operator_id: None,
        name: "wang".into(),
        client_ip: "127.0.0.1".into(),
    }
}

fn tz() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get("Asia/Shanghai").unwrap()
}

/// A window of every day from the campus-local minute of `now_ms` for an hour.
fn hour_from(now_ms: i64) -> WindowSpec {
    let minute = (now_ms / 60_000 + 8 * 60).rem_euclid(1440);
    let start = schedule::hhmm(u16::try_from(minute).unwrap());
    let end = schedule::hhmm(u16::try_from((minute + 60) % 1440).unwrap());
    WindowSpec::parse(&start, &end, &[0, 1, 2, 3, 4, 5, 6]).unwrap()
}

/// The scheduler's latest command of `command` to `meter_id`.
async fn latest(w: &World, meter_id: i64, command: &str) -> relay::Command {
    relay::of_meter(&w.db, meter_id, 50)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.action.as_str() == command && c.operator_name == schedule::SCHEDULER_NAME)
        .unwrap_or_else(|| panic!("no scheduled {command} for meter {meter_id}"))
}

/// Runs the head-end's command ticks until `id` is final.
async fn sent(w: &World, he: &headend::Headend, id: i64) -> relay::Command {
    let stop = CancellationToken::new();
    for _ in 0..50 {
        commands::tick(he, &w.db, &stop).await.unwrap();
        let c = relay::get(&w.db, id).await.unwrap().unwrap();
        if c.state.is_final() {
            return c;
        }
    }
    panic!("command {id} not sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn window_edges_reach_the_meter_and_are_read_back() {
    for db in databases().await {
        let w = World::new(db, sim::FaultConfig::default()).await;
        let he = w.headend(config("he-1")).await;
        let (meter_id, address) = w.meter(3).await;
        w.fleet.set_remaining(&address, 5_000).unwrap();
        eventually(60, "the meter to be read", || async {
            store::meters::state(&w.db, meter_id)
                .await
                .unwrap()
                .is_some_and(|s| s.online)
        })
        .await;
        let area = store::campus::meter_by_id(&w.db, domain::MeterId::new(meter_id))
            .await
            .unwrap()
            .unwrap()
            .area_id;
        // The whole area (the world's campus is small).
        let building = None;
        // Power-off hours: tripped at the start, closed at the end.
        let now = w.clock.now_ms();
        let spec = hour_from(now);
        schedule::set_window(
            &w.db,
            &actor(),
            area,
            building,
            WindowKind::PowerOff,
            spec,
            now,
        )
        .await
        .unwrap();
        let r = schedule::tick(&w.db, &tz(), now, 1000).await.unwrap();
        assert!(r.started >= 1, "{:?}: {r:?}", w.db.backend());
        let trip = sent(&w, &he, latest(&w, meter_id, "trip").await.id).await;
        assert_eq!(trip.state, CommandState::Done, "{trip:?}");
        assert_eq!(trip.reason, "scheduled");
        assert_eq!(trip.relay_closed, Some(false), "read back: {trip:?}");
        assert!(w.fleet.inspect(&address).unwrap().relay_open);
        let end = now + 61 * 60_000;
        let r = schedule::tick(&w.db, &tz(), end, 1000).await.unwrap();
        assert!(r.ended >= 1, "{r:?}");
        let close = sent(&w, &he, latest(&w, meter_id, "close").await.id).await;
        assert_eq!(close.state, CommandState::Done, "{close:?}");
        assert_eq!(close.relay_closed, Some(true));
        assert!(!w.fleet.inspect(&address).unwrap().relay_open);
        schedule::clear_window(&w.db, &actor(), area, building, WindowKind::PowerOff, end)
            .await
            .unwrap();
        // No-cut hours: keep-power at the start, released at the end.
        let now = end + 60_000;
        schedule::set_window(
            &w.db,
            &actor(),
            area,
            building,
            WindowKind::NoCut,
            hour_from(now),
            now,
        )
        .await
        .unwrap();
        schedule::tick(&w.db, &tz(), now, 1000).await.unwrap();
        let keep = sent(&w, &he, latest(&w, meter_id, "keep_power").await.id).await;
        assert_eq!(keep.state, CommandState::Done, "{keep:?}");
        assert_eq!(keep.reason, "no-cut hours");
        let sw = keep.status_word.expect("status word read back");
        assert_ne!(
            sw & KEEP_POWER_BIT,
            0,
            "keep-power bit read back: {sw:#06x}"
        );
        assert!(relay::keep_power(&w.db, meter_id).await.unwrap());
        schedule::tick(&w.db, &tz(), now + 61 * 60_000, 1000)
            .await
            .unwrap();
        let release = sent(&w, &he, latest(&w, meter_id, "keep_power_release").await.id).await;
        assert_eq!(release.state, CommandState::Done, "{release:?}");
        let sw = release.status_word.expect("status word read back");
        assert_eq!(sw & KEEP_POWER_BIT, 0, "keep-power bit cleared: {sw:#06x}");
        assert!(!relay::keep_power(&w.db, meter_id).await.unwrap());
        he.shutdown().await;
    }
}
