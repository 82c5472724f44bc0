//! A few seeds of the deterministic simulation on every `cargo test` (CI
//! runs 1,000 on SQLite and 100 on PostgreSQL with `dormwatt dst`).

#[tokio::test(flavor = "current_thread")]
async fn the_money_core_survives_simulated_faults() {
    let mut opts = headend::dst::DstOptions {
        first_seed: 1,
        seeds: 12,
        steps: 120,
        postgres_url: None,
        trace: false,
    };
    let s = headend::dst::run(&opts).await.unwrap();
    assert_eq!(
        (s.violations, s.lost, s.doubled),
        (0, 0, 0),
        "sqlite: {:?}",
        s.first_violation
    );
    assert!(s.orders_paid > 0 && s.orders_completed > 0, "{s:?}");
    match std::env::var(store::testing::PG_URL_ENV) {
        Ok(url) => {
            opts.postgres_url = Some(url);
            opts.seeds = 4;
            let s = headend::dst::run(&opts).await.unwrap();
            assert_eq!(
                (s.violations, s.lost, s.doubled),
                (0, 0, 0),
                "postgres: {:?}",
                s.first_violation
            );
        }
        Err(_) => eprintln!(
            "notice: {} is not set; skipping the PostgreSQL seeds",
            store::testing::PG_URL_ENV
        ),
    }
}

#[test]
fn a_seed_replays_exactly() {
    let run = || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(headend::dst::run(&headend::dst::DstOptions {
            first_seed: 42,
            seeds: 1,
            steps: 120,
            postgres_url: None,
            trace: false,
        }))
        .unwrap()
    };
    let (a, b) = (run(), run());
    assert_eq!(
        (
            a.steps,
            a.orders_paid,
            a.orders_completed,
            a.orders_refunded,
            a.crashes
        ),
        (
            b.steps,
            b.orders_paid,
            b.orders_completed,
            b.orders_refunded,
            b.crashes
        )
    );
}
