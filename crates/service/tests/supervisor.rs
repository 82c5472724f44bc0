//! The supervisor on Tokio's paused clock: ticks run at their interval,
//! a stop cancels every worker at once, a tick in progress is dropped
//! (not waited for), and a worker that ignores its token is aborted at
//! the deadline and named.

use service::supervisor::{Role, STOP_DEADLINE, Supervisor, WorkerSpec};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn ticks_run_and_everything_stops_at_once() {
    let ticks = Arc::new(AtomicU32::new(0));
    let t = ticks.clone();
    let (entered_tx, mut entered_rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
    let specs = vec![
        WorkerSpec::tick(
            "counting",
            Role::Orders,
            Duration::from_secs(30),
            10,
            move |_| {
                let n = t.fetch_add(1, Ordering::SeqCst) + 1;
                let entered = entered_tx.clone();
                async move {
                    let _ = entered.send(n);
                    if n == 3 {
                        // The third tick never finishes by itself.
                        std::future::pending::<()>().await;
                    }
                }
            },
        ),
        WorkerSpec::task(
            "looping",
            Role::Orders,
            Duration::from_secs(1),
            1,
            |stop| async move {
                stop.cancelled().await;
            },
        ),
    ];
    let sup = Supervisor::start(specs, &[Role::Orders]);
    assert_eq!(sup.workers(), ["counting", "looping"]);
    for want in 1..=3 {
        assert_eq!(entered_rx.recv().await, Some(want));
    }
    let report = sup.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.stopped, ["counting", "looping"]);
    assert_eq!(ticks.load(Ordering::SeqCst), 3, "no tick after the stop");
}

#[tokio::test(start_paused = true)]
async fn a_worker_ignoring_its_token_is_aborted_at_the_deadline() {
    let started = tokio::time::Instant::now();
    let specs = vec![
        WorkerSpec::task(
            "stubborn",
            Role::Headend,
            Duration::from_secs(1),
            1,
            |_stop| async {
                std::future::pending::<()>().await;
            },
        ),
        WorkerSpec::task(
            "polite",
            Role::Headend,
            Duration::from_secs(1),
            1,
            |stop| async move {
                stop.cancelled().await;
            },
        ),
    ];
    let sup = Supervisor::start(specs, &[Role::Headend]);
    tokio::task::yield_now().await;
    let report = sup.shutdown().await;
    assert_eq!(report.aborted, ["stubborn"]);
    assert_eq!(report.stopped, ["polite"]);
    assert!(!report.is_clean());
    // On the paused clock this is exact: the wait is the deadline, no more.
    assert_eq!(started.elapsed(), STOP_DEADLINE);
}

#[tokio::test(start_paused = true)]
async fn a_node_runs_only_the_workers_of_its_roles() {
    let ran = Arc::new(AtomicU32::new(0));
    let r = ran.clone();
    let specs = vec![
        WorkerSpec::tick(
            "orders",
            Role::Orders,
            Duration::from_secs(5),
            1,
            |_| async {},
        ),
        WorkerSpec::task(
            "headend",
            Role::Headend,
            Duration::from_secs(1),
            1,
            move |stop| {
                r.fetch_add(1, Ordering::SeqCst);
                async move { stop.cancelled().await }
            },
        ),
    ];
    let sup = Supervisor::start(specs, &[Role::Orders]);
    assert_eq!(sup.workers(), ["orders"]);
    assert!(sup.shutdown().await.is_clean());
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "a web-only node runs no head-end"
    );
}
