//! `store::metrics` (issue 16 item 1): the database gauges of `/metrics`
//! count what is there, show the delivery queue even when it is empty, and
//! every gauge query runs. On SQLite and PostgreSQL.

use store::{metrics, testing};

mod common;

use common::NOW;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gauges_count_meters_orders_and_queued_deliveries() {
    for db in testing::all().await.expect("test databases") {
        testing::seed_one_building_per_area(&db, NOW)
            .await
            .expect("seed");
        let meters: Vec<(String, i64)> = store::on_db!(&db, |p| sqlx::query_as(
            "select address, area_id from meter order by id"
        )
        .fetch_all(p)
        .await
        .expect("meters"));

        let g = metrics::gauges(&db).await.expect("gauges");
        let total: i64 = g.meters.iter().map(|b| b.total).sum();
        assert_eq!(total, i64::try_from(meters.len()).expect("count"));
        assert!(g.meters.len() >= 2, "one building per area: {:?}", g.meters);
        assert!(g.meters.iter().all(|b| b.online == 0), "nothing read yet");
        assert!(g.orders_by_state.is_empty());
        assert_eq!(g.exceptions_open, 0);
        let deliver = g
            .queues
            .iter()
            .find(|q| q.queue == store::orders::DELIVER_QUEUE)
            .expect("the deliver queue, empty");
        assert_eq!((deliver.queued, deliver.oldest_run_at_ms), (0, None));
        assert!(g.acquire_wait_us >= 0);

        // A counter sale: paid at once, its delivery queued.
        let (address, area) = &meters[0];
        store::orders::create_counter_sale(
            &db,
            *area,
            address,
            domain::WholeKwh::new(5, 500).expect("kwh"),
            "cashier",
            NOW,
        )
        .await
        .expect("sale");
        let g = metrics::gauges(&db).await.expect("gauges");
        assert_eq!(g.orders_by_state, vec![("charging".to_owned(), 1)]);
        let deliver = g
            .queues
            .iter()
            .find(|q| q.queue == store::orders::DELIVER_QUEUE)
            .expect("deliver");
        assert_eq!(deliver.queued, 1);
        assert!(deliver.oldest_run_at_ms.is_some_and(|at| at <= NOW + 1));

        let p = metrics::pool(&db);
        assert!(p.max >= 1 && p.idle <= p.open && p.open <= p.max, "{p:?}");
        db.close().await;
    }
}
