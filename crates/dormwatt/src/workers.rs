//! Every background worker of a `serve`/`demo` process, in one list, and
//! which of them this node runs. [`service::supervisor::Supervisor`] starts
//! them and stops them (all at once, within its 2 s deadline) on shutdown.
//!
//! | worker | role | interval | batch |
//! |---|---|---|---|
//! | `overdue`, `expire`, `reconcile`, `refund`, `bill` | orders | `payment.worker_interval_s` | see `service::workers::order_workers` |
//! | `low_balance` | headend | 60 s | one statement per tick (once per crossing, deduplicated) |
//! | `prune` | orders | `retention.interval_s` | a pass of delete statements of `retention.batch_rows` rows each (`store::retention`) |
//! | `schedule` | headend | 30 s | 200 meters (`service::schedule`: no-cut and power-off hours) |
//! | `headend` | headend | `headend.deliver_poll_ms` | `headend.deliver_concurrency` deliveries; plus one task per gateway and bus; staff relay commands every `headend.relay_poll_ms`, `headend.relay_batch` at a time |
//!
//! A node runs the roles it is given ([`roles`]): today every node runs
//! `orders` and a node with the head-end also `headend`. The multi-node
//! work changes only [`roles`] (or gives it a configuration key).

use service::supervisor::{Role, WorkerSpec};
use std::time::Duration;

/// How often low-balance messages are looked for. A message goes out once
/// per crossing (dedup key), so this only bounds how late it can be.
const LOW_BALANCE_INTERVAL: Duration = Duration::from_secs(60);

// issue 16 item 4 (retention)
/// The pruning worker's settings (`[retention]`).
#[derive(Debug, Clone, Copy)]
pub struct Prune {
    /// What is kept how long.
    pub policy: store::retention::Policy,
    /// Time between passes.
    pub interval: Duration,
}

/// Every `interval` one pass of [`store::retention::prune`]: each delete
/// a short statement of at most `batch_rows` rows, idempotent, so several
/// nodes may run it at once; counts logged.
fn prune_worker(db: store::Db, p: Prune) -> WorkerSpec {
    let batch = usize::try_from(p.policy.batch_rows).unwrap_or(5000);
    WorkerSpec::tick_with(
        "prune",
        Role::Orders,
        p.interval,
        batch,
        (db, p.policy),
        |(db, policy), now_ms| async move {
            match store::retention::prune(&db, &policy, now_ms, false).await {
                Ok(r) if r.total() == 0 => {
                    tracing::debug!(statements = r.statements, "nothing to prune");
                }
                Ok(r) => tracing::info!(
                    readings = r.readings,
                    meter_events = r.meter_events,
                    jobs = r.jobs,
                    sessions = r.sessions,
                    attempts = r.attempts,
                    idempotency_keys = r.idempotency_keys,
                    statements = r.statements,
                    "pruned old rows"
                ),
                Err(e) => tracing::warn!(error = %e, "pruning failed; the next pass retries"),
            }
        },
    )
}

/// The roles of this node.
pub fn roles(runs_headend: bool) -> Vec<Role> {
    let mut roles = vec![Role::Orders];
    if runs_headend {
        roles.push(Role::Headend);
    }
    roles
}

/// The process's worker list: the service's order workers, then (with a
/// running head-end) the head-end itself and the low-balance messages that
/// follow its readings.
pub fn all(
    svc: &service::Service,
    headend: Option<headend::Headend>,
    prune: Option<Prune>,
    tz: &domain::time::CampusTz,
) -> Vec<WorkerSpec> {
    let mut list = service::workers::order_workers(svc);
    // issue 14 item 6 part 3: no-cut and power-off hours.
    list.push(service::schedule::schedule_worker(
        svc.db().clone(),
        tz.clone(),
    ));
    // issue 16 item 4 (retention): the pruning pass.
    if let Some(p) = prune {
        list.push(prune_worker(svc.db().clone(), p));
    }
    list.push(WorkerSpec::tick_with(
        "low_balance",
        Role::Headend,
        LOW_BALANCE_INTERVAL,
        1,
        svc.db().clone(),
        |db, now_ms| async move {
            match store::notify::scan_low_balance(&db, now_ms).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(messages = n, "low-balance messages sent"),
                Err(e) => tracing::warn!(error = %e, "low-balance scan failed"),
            }
        },
    ));
    if let Some(h) = headend {
        let (poll, concurrency) = h.delivery_pace();
        // Issue 14 item 5: the staff relay commands of this head-end's
        // meters run in its task, until the stop (headend::commands).
        let db = svc.db().clone();
        list.push(WorkerSpec::task(
            "headend",
            Role::Headend,
            poll,
            concurrency,
            move |stop| async move {
                headend::commands::run(&h, db, stop).await;
                h.shutdown().await;
            },
        ));
    }
    list
}
