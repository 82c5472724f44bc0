//! Every background worker of a `serve`/`demo` process, in one list, and
//! which of them this node runs. [`service::supervisor::Supervisor`] starts
//! them and stops them (all at once, within its 2 s deadline) on shutdown.
//!
//! | worker | role | interval | batch |
//! |---|---|---|---|
//! | `overdue`, `expire`, `reconcile`, `refund`, `bill` | orders | `payment.worker_interval_s` | see `service::workers::order_workers` |
//! | `low_balance` | headend | 60 s | one statement per tick (once per crossing, deduplicated) |
//! | `wechat_notify` | orders | `wechat.interval_ms` | `wechat.batch` outbox rows, leased (`service::wechat_notify`); only with `web.wechat_appid` |
//! | `subsidy` | orders | 5 min | the current month's free allowance of every area: rooms credited already cost nothing, the others one transaction each (`store::subsidy::run_current`; safe on every node through the unique (room, month)) |
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

// issue 15 (wechat notifications)
/// The WeChat sender's setup (`[wechat]`, with the official account of
/// `web.wechat_appid`).
#[derive(Clone)]
pub struct WechatSender {
    /// The official account's client (shared with the web login: one token cache).
    pub api: std::sync::Arc<dyn wechat::WechatApi>,
    /// How it sends.
    pub settings: service::wechat_notify::SenderSettings,
    /// Time between passes.
    pub interval: Duration,
}

/// Every `interval` one [`service::wechat_notify::tick`] under a name
/// unique to this process (leases of a dead process simply run out).
fn wechat_worker(db: store::Db, w: WechatSender) -> WorkerSpec {
    let batch = usize::try_from(w.settings.batch).unwrap_or(50);
    let name = format!("wx-{}-{}", std::process::id(), store::now_ms());
    WorkerSpec::tick_with(
        "wechat_notify",
        Role::Orders,
        w.interval,
        batch,
        (db, w, name),
        |(db, w, name), now_ms| async move {
            match service::wechat_notify::tick(&db, w.api.as_ref(), &w.settings, &name, now_ms)
                .await
            {
                Ok(r) if r.claimed == 0 => {}
                Ok(r) => tracing::info!(
                    claimed = r.claimed,
                    sent = r.sent,
                    skipped = r.skipped,
                    deferred = r.deferred,
                    retried = r.retried,
                    failed = r.failed,
                    "wechat notifications"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "wechat sender pass failed; the next one retries")
                }
            }
        },
    )
}
// end issue 15 (wechat notifications)

/// How often the current month's free allowance is looked at: it is run
/// on the 1st of the month, or as soon as a node is up after it.
const SUBSIDY_INTERVAL: Duration = Duration::from_secs(300);

/// The free-allowance worker (issue 14 item 6): every node, every
/// [`SUBSIDY_INTERVAL`], `store::subsidy::run_current` for every area.
fn subsidy_worker(db: store::Db) -> WorkerSpec {
    WorkerSpec::tick_with(
        "subsidy",
        Role::Orders,
        SUBSIDY_INTERVAL,
        1,
        db,
        |db, now_ms| async move {
            let actor = store::audit::Actor {
                operator_id: None,
                name: "(subsidy worker)".to_owned(),
                client_ip: "local".to_owned(),
            };
            match store::subsidy::run_current(&db, None, &actor, now_ms).await {
                Ok(runs) => {
                    for r in runs.iter().filter(|r| r.credited > 0) {
                        tracing::info!(month = %r.month, rooms = r.rooms, credited = r.credited, kwh = %r.kwh, "free monthly allowance credited");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "subsidy run failed; the next tick retries"),
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
    wechat: Option<WechatSender>,
    tz: &domain::time::CampusTz,
) -> Vec<WorkerSpec> {
    let mut list = service::workers::order_workers(svc);
    // issue 15: template messages from the outbox.
    if let Some(w) = wechat {
        list.push(wechat_worker(svc.db().clone(), w));
    }
    // issue 14 item 6 part 3: no-cut and power-off hours.
    list.push(service::schedule::schedule_worker(
        svc.db().clone(),
        tz.clone(),
    ));
    // issue 16 item 4 (retention): the pruning pass.
    if let Some(p) = prune {
        list.push(prune_worker(svc.db().clone(), p));
    }
    // issue 14 item 6 (subsidy): the free monthly allowance.
    list.push(subsidy_worker(svc.db().clone()));
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
