//! The free monthly allowance (issue 14 item 6, E4) against the simulated
//! fleet: a run (twice) credits each room once, the running head-end writes
//! the allowance into the meter through the purchase read-back algorithm
//! exactly once, and an order for the same meter gets the next purchase
//! number. SQLite and, when `DORMWATT_TEST_PG_URL` is set, PostgreSQL.

#[expect(
    dead_code,
    reason = "the shared test world has more than this test needs"
)]
mod common;

use common::{World, config, databases, eventually, small_plan};
use domain::order::OrderState;
use domain::{AreaId, CentiKwh};
use store::audit::Actor;
use store::policy::Scope;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_meter_receives_the_allowance_once_then_its_order() {
    for db in databases().await {
        let w = World::with_plan(db, sim::FaultConfig::default(), small_plan()).await;
        let he = w.headend(config("he-subsidy")).await;
        let (meter, addr) = w.meter(0).await;
        // The small plan's first meter is in area 1.
        let area = 1;
        let before = w.fleet.inspect(&addr).unwrap();
        let actor = Actor::command_line();
        store::subsidy::set_allowance(
            &w.db,
            Scope {
                area_id: AreaId::new(area),
                building_id: None,
            },
            Some(CentiKwh::new(1000)),
            &actor,
            w.clock.now_ms(),
        )
        .await
        .unwrap();
        let credited =
            |v: Vec<store::subsidy::RunSummary>| v.iter().map(|s| s.credited).sum::<u64>();
        let first = store::subsidy::run_current(&w.db, None, &actor, w.clock.now_ms())
            .await
            .unwrap();
        let again = store::subsidy::run_current(&w.db, None, &actor, w.clock.now_ms())
            .await
            .unwrap();
        assert!(credited(first) > 0);
        assert_eq!(credited(again), 0);
        let credits = store::subsidy::of_room_of_meter(&w.db, domain::MeterId::new(meter), 10)
            .await
            .unwrap();
        assert_eq!(credits.len(), 1, "{credits:?}");
        let id = credits[0].id;
        let order = w.buy(meter, 5).await;
        eventually(60, "the allowance to reach the meter", || async {
            store::subsidy::target(&w.db, id)
                .await
                .unwrap()
                .is_some_and(|t| t.delivered)
        })
        .await;
        eventually(60, "the order to be delivered", || async {
            w.order_state(order).await == OrderState::Completed
        })
        .await;
        let after = w.fleet.inspect(&addr).unwrap();
        assert_eq!(after.purchase_count, before.purchase_count + 2);
        assert_eq!(
            after.purchased_total_centikwh,
            before.purchased_total_centikwh + 1000 + 500,
            "the allowance and the order, each once"
        );
        let t = store::subsidy::target(&w.db, id).await.unwrap().unwrap();
        let o = store::orders::by_id(&w.db, order).await.unwrap().unwrap();
        let mut seqs = [t.purchase_seq.unwrap(), o.purchase_seq.unwrap()];
        seqs.sort_unstable();
        assert_eq!(
            seqs,
            [
                i64::from(before.purchase_count) + 1,
                i64::from(before.purchase_count) + 2
            ],
            "contiguous purchase numbers"
        );
        w.assert_ledger().await;
        he.shutdown().await;
    }
}
