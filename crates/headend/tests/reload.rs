//! Hot reload (issue 14 item 1): the head-end follows meters imported and
//! retired while it runs, without a restart. SQLite and, when
//! `DORMWATT_TEST_PG_URL` is set, PostgreSQL.

#[expect(
    dead_code,
    reason = "the shared test world has more than this test needs"
)]
mod common;

use common::{World, config, databases, eventually, small_plan};
use store::audit::Actor;
use store::registry::{self, Outcome, RetireRefusal};

/// The head-end's registry poll, virtual ms.
const POLL_MS: i64 = 2_000;

/// The simulator carries all twelve meters of the small plan; the
/// database starts with the first nine (bus 2 has three).
fn db_plan() -> domain::campus::CampusPlan {
    let mut p = small_plan();
    p.areas[0].buildings[0].gateways[0].buses[1]
        .meters
        .truncate(3);
    p
}

async fn last_seen(w: &World, id: i64) -> Option<i64> {
    store::meters::state(&w.db, id)
        .await
        .unwrap()
        .and_then(|s| s.last_seen_at_ms)
}

async fn id_of(w: &World, address: &str) -> i64 {
    store::meters::registry(&w.db)
        .await
        .unwrap()
        .iter()
        .flat_map(|g| g.buses.iter())
        .flat_map(|b| b.meters.iter())
        .find(|m| m.address == address)
        .unwrap()
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn imported_meters_are_read_and_retired_ones_no_longer_without_restart() {
    for db in databases().await {
        let w = World::with_plans(db, sim::FaultConfig::default(), &small_plan(), &db_plan()).await;
        let cfg = headend::Config {
            registry_poll_ms: POLL_MS,
            ..config("he-reload")
        };
        let frequent = cfg.frequent_interval_ms;
        let he = w.headend(cfg).await;
        let (first, first_addr) = w.meter(0).await;
        let (neighbour, _) = w.meter(1).await;
        eventually(30, "the first sweep", || async {
            last_seen(&w, first).await.is_some()
        })
        .await;

        // Three meters the simulator knows join bus 2 (into existing rooms).
        let file = "address,area,building,room,gateway,bus\n\
                    201799010010,t,1号楼,101,t-b01-gw1,2\n\
                    201799010011,t,1号楼,102,t-b01-gw1,2\n\
                    201799010012,t,1号楼,103,t-b01-gw1,2\n";
        let parsed = import::parse(file.as_bytes(), None).unwrap();
        assert_eq!(parsed.errors, []);
        let v0 = registry::version(&w.db).await.unwrap();
        let out = registry::apply(
            &w.db,
            &parsed.records,
            &Actor::command_line(),
            w.clock.now_ms(),
        )
        .await
        .unwrap();
        assert!(matches!(out, Outcome::Applied { rows: 3, .. }), "{out:?}");
        assert!(
            registry::version(&w.db).await.unwrap() > v0,
            "the import bumps the version"
        );
        for a in ["201799010010", "201799010011", "201799010012"] {
            let id = id_of(&w, a).await;
            eventually(30, "an imported meter to be read", || async {
                last_seen(&w, id).await.is_some()
            })
            .await;
        }

        // Retiring a meter that still holds energy is refused; at zero it
        // leaves the bus and is no longer polled.
        let refused =
            registry::retire_meter(&w.db, first, &Actor::command_line(), w.clock.now_ms())
                .await
                .unwrap();
        assert_eq!(refused, Err(RetireRefusal::PositiveBalance));
        w.fleet.set_remaining(&first_addr, 0).unwrap();
        eventually(30, "the empty balance to be read", || async {
            store::meters::state(&w.db, first)
                .await
                .unwrap()
                .and_then(|s| s.remaining_centikwh)
                .is_some_and(|r| r.get() <= 0)
        })
        .await;
        let t0 = w.clock.now_ms();
        registry::retire_meter(&w.db, first, &Actor::command_line(), t0)
            .await
            .unwrap()
            .unwrap();
        // Two full rounds of its neighbour after the reload had its chance.
        let settled = t0 + POLL_MS + 2 * frequent;
        eventually(60, "the neighbour to be read after the reload", || async {
            last_seen(&w, neighbour).await.is_some_and(|t| t > settled)
        })
        .await;
        let frozen = last_seen(&w, first).await;
        let later = w.clock.now_ms() + 2 * frequent;
        eventually(60, "two more rounds of the neighbour", || async {
            last_seen(&w, neighbour).await.is_some_and(|t| t > later)
        })
        .await;
        assert_eq!(
            last_seen(&w, first).await,
            frozen,
            "a retired meter is not polled"
        );
        assert!(
            frozen.is_some_and(|t| t <= t0 + POLL_MS + frequent),
            "it stopped within a poll interval and one round: {frozen:?} vs {t0}"
        );
        he.shutdown().await;
    }
}
