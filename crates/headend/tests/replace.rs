//! Meter replacement (issue 14 item 3) against the simulated fleet: the
//! running head-end picks up the new meter without a restart, writes the
//! energy carried from the old meter into it through the purchase
//! read-back algorithm, and delivers an order for the new meter after it
//! (the next purchase number). SQLite and, when `DORMWATT_TEST_PG_URL` is
//! set, PostgreSQL.

#[expect(
    dead_code,
    reason = "the shared test world has more than this test needs"
)]
mod common;

use common::{World, config, databases, eventually, small_plan};
use domain::order::OrderState;
use store::audit::Actor;

/// The head-end's registry poll, virtual ms.
const POLL_MS: i64 = 2_000;
/// The old meter and the new one; the simulator has both on bus 1, the
/// database starts without the new one.
const OLD: &str = "201799010001";
const NEW: &str = "201799010006";

fn db_plan() -> domain::campus::CampusPlan {
    let mut p = small_plan();
    p.areas[0].buildings[0].gateways[0].buses[0]
        .meters
        .truncate(5);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_new_meter_receives_the_carried_energy_then_its_orders() {
    for db in databases().await {
        let w = World::with_plans(db, sim::FaultConfig::default(), &small_plan(), &db_plan()).await;
        let cfg = headend::Config {
            registry_poll_ms: POLL_MS,
            ..config("he-replace")
        };
        let he = w.headend(cfg).await;
        let (old, old_addr) = w.meter(0).await;
        assert_eq!(old_addr, OLD);
        eventually(30, "the old meter's balance to be read", || async {
            store::meters::state(&w.db, old)
                .await
                .unwrap()
                .is_some_and(|s| s.remaining_centikwh.is_some_and(|r| r.get() > 0))
        })
        .await;
        let before = w.fleet.inspect(NEW).unwrap();
        let req = store::replace::Request {
            old_meter_id: old,
            new_address: NEW,
            profile: "dlt645-ref",
            final_total_centikwh: None,
            reason: "burnt",
        };
        let done = store::replace::replace(&w.db, &req, &Actor::command_line(), w.clock.now_ms())
            .await
            .unwrap();
        assert!(done.carried_centikwh > 0);
        // An order for the new meter, paid at once: it goes after the
        // carried energy.
        let order = w.buy(done.new_meter_id, 5).await;
        eventually(60, "the carried energy to reach the new meter", || async {
            store::replace::of_meter(&w.db, done.new_meter_id)
                .await
                .unwrap()
                .1
                .is_some_and(|r| r.delivered_at_ms.is_some())
        })
        .await;
        eventually(60, "the order to be delivered", || async {
            w.order_state(order).await == OrderState::Completed
        })
        .await;
        let after = w.fleet.inspect(NEW).unwrap();
        assert_eq!(after.purchase_count, before.purchase_count + 2);
        let carried = u32::try_from(done.carried_centikwh).unwrap();
        assert_eq!(
            after.purchased_total_centikwh,
            before.purchased_total_centikwh + carried + 500,
            "the carried energy and the order, each once"
        );
        let o = store::orders::by_id(&w.db, order).await.unwrap().unwrap();
        assert_eq!(o.purchase_seq, Some(i64::from(before.purchase_count) + 2));
        w.assert_ledger().await;
        he.shutdown().await;
    }
}
