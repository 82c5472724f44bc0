//! The one place that starts and stops every background worker of the
//! process: the payment side's ticks ([`crate::workers`]), the head-end
//! and whatever follows its readings.
//!
//! Each worker is a [`WorkerSpec`]: a name, the [`Role`] of the node that
//! runs it, a stated interval and batch size, and either a *tick* (called
//! every interval with the time, does at most `batch_max` items) or a
//! *task* (runs its own loop until its stop token is cancelled). A node
//! runs the workers whose role it has ([`Supervisor::start`]), so the
//! multi-node change decides placement by giving each node its roles.
//!
//! Stopping ([`Supervisor::shutdown`]) cancels every worker at once and
//! waits at most [`STOP_DEADLINE`] for all of them together; a tick in
//! progress is dropped at its next await (all its state is durable, and
//! every tick is idempotent), and a worker still running at the deadline is
//! aborted and named in the [`StopReport`].

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long [`Supervisor::shutdown`] waits for every worker together.
pub const STOP_DEADLINE: Duration = Duration::from_secs(2);

/// A boxed future of a worker.
pub type WorkerFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// What kind of node runs a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Order bookkeeping against the database and the payment provider:
    /// expiry, reconciliation, refunds, overdue deliveries, the trade bill.
    /// Every tick is idempotent and guarded in the store, so several nodes
    /// may run them at once; today every node does.
    Orders,
    /// Meter-facing work: the head-end (gateways, buses, deliveries) and
    /// what follows its readings (low-balance messages).
    Headend,
}

impl Role {
    /// The role's name in logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Orders => "orders",
            Self::Headend => "headend",
        }
    }
}

enum Body {
    /// Called every interval with the wall clock's unix milliseconds.
    Tick(Box<dyn FnMut(i64) -> WorkerFuture + Send>),
    /// Runs its own loop until the token is cancelled.
    Task(Box<dyn FnOnce(CancellationToken) -> WorkerFuture + Send>),
}

/// One background worker: what it is, where it runs, how often and how much.
pub struct WorkerSpec {
    /// Name in logs and in the [`StopReport`].
    pub name: &'static str,
    /// Which node runs it.
    pub role: Role,
    /// How often it runs (a task: its own poll interval, for the record).
    pub interval: Duration,
    /// Most items one run handles (a task: its own bound, for the record).
    pub batch_max: usize,
    body: Body,
}

impl std::fmt::Debug for WorkerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerSpec")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("interval", &self.interval)
            .field("batch_max", &self.batch_max)
            .finish_non_exhaustive()
    }
}

/// Shortest interval a tick worker runs at.
const INTERVAL_MIN: Duration = Duration::from_secs(1);

impl WorkerSpec {
    /// A worker called every `interval` (at least 1 s) with the time;
    /// `tick` handles at most `batch_max` items per call.
    pub fn tick<F, Fut>(
        name: &'static str,
        role: Role,
        interval: Duration,
        batch_max: usize,
        mut tick: F,
    ) -> Self
    where
        F: FnMut(i64) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let body = Body::Tick(Box::new(move |now_ms| Box::pin(tick(now_ms))));
        Self::new(name, role, interval.max(INTERVAL_MIN), batch_max, body)
    }

    /// [`WorkerSpec::tick`] for a tick that needs a context (the service, a
    /// pool): each call gets its own clone of `ctx`, so the future owns
    /// what it uses.
    pub fn tick_with<C, F, Fut>(
        name: &'static str,
        role: Role,
        interval: Duration,
        batch_max: usize,
        ctx: C,
        tick: F,
    ) -> Self
    where
        C: Clone + Send + 'static,
        F: Fn(C, i64) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::tick(name, role, interval, batch_max, move |now_ms| {
            tick(ctx.clone(), now_ms)
        })
    }

    /// A worker with its own loop (the head-end): `run` must return soon
    /// after its token is cancelled. `interval` and `batch_max` state its
    /// own pace and bound.
    pub fn task<F, Fut>(
        name: &'static str,
        role: Role,
        interval: Duration,
        batch_max: usize,
        run: F,
    ) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let body = Body::Task(Box::new(move |stop| Box::pin(run(stop))));
        Self::new(name, role, interval, batch_max, body)
    }

    fn new(
        name: &'static str,
        role: Role,
        interval: Duration,
        batch_max: usize,
        body: Body,
    ) -> Self {
        Self {
            name,
            role,
            interval,
            batch_max,
            body,
        }
    }
}

/// How a shutdown went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopReport {
    /// Workers that ended by themselves after the cancellation.
    pub stopped: Vec<&'static str>,
    /// Workers still running at the deadline, aborted.
    pub aborted: Vec<&'static str>,
}

impl StopReport {
    /// Every worker stopped by itself.
    pub fn is_clean(&self) -> bool {
        self.aborted.is_empty()
    }
}

/// The running workers of a process.
#[derive(Debug)]
pub struct Supervisor {
    stop: CancellationToken,
    running: Vec<(&'static str, JoinHandle<()>)>,
}

impl Supervisor {
    /// Starts every worker of `specs` whose role is in `roles`; the others
    /// are dropped (and logged as placed elsewhere).
    pub fn start(specs: Vec<WorkerSpec>, roles: &[Role]) -> Self {
        let stop = CancellationToken::new();
        let mut running = Vec::with_capacity(specs.len());
        for spec in specs {
            if !roles.contains(&spec.role) {
                tracing::info!(
                    worker = spec.name,
                    role = spec.role.name(),
                    "worker not run on this node"
                );
                continue;
            }
            tracing::info!(
                worker = spec.name,
                role = spec.role.name(),
                interval_ms = u64::try_from(spec.interval.as_millis()).unwrap_or(u64::MAX),
                batch_max = spec.batch_max,
                "worker started"
            );
            let token = stop.child_token();
            let handle = match spec.body {
                Body::Tick(tick) => tokio::spawn(run_ticks(spec.name, spec.interval, tick, token)),
                Body::Task(run) => tokio::spawn(run(token)),
            };
            running.push((spec.name, handle));
        }
        Self { stop, running }
    }

    /// Names of the workers running here.
    pub fn workers(&self) -> Vec<&'static str> {
        self.running.iter().map(|(n, _)| *n).collect()
    }

    /// Cancels every worker and waits for them together, at most
    /// [`STOP_DEADLINE`]; aborts whatever is still running then.
    pub async fn shutdown(self) -> StopReport {
        self.stop.cancel();
        let deadline = tokio::time::Instant::now() + STOP_DEADLINE;
        let mut report = StopReport::default();
        for (name, mut handle) in self.running {
            match tokio::time::timeout_at(deadline, &mut handle).await {
                Ok(_) => report.stopped.push(name),
                Err(_) => {
                    handle.abort();
                    report.aborted.push(name);
                }
            }
        }
        if report.is_clean() {
            tracing::info!(workers = report.stopped.len(), "background workers stopped");
        } else {
            tracing::warn!(aborted = ?report.aborted, "background workers did not stop in time; aborted them");
        }
        report
    }
}

async fn run_ticks(
    name: &'static str,
    interval: Duration,
    mut tick: Box<dyn FnMut(i64) -> WorkerFuture + Send>,
    stop: CancellationToken,
) {
    use tracing::Instrument as _;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Every log line of a tick carries the worker's name and the tick's
    // number: the background actions' correlation id.
    let mut run: u64 = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        run += 1;
        let span = tracing::info_span!("worker", worker = name, run);
        // A tick is bounded (batch_max items, each call with its own
        // timeout); a stop still wins at once.
        tokio::select! {
            () = stop.cancelled() => break,
            () = tick(store::now_ms()).instrument(span) => {}
        }
    }
    tracing::debug!(worker = name, "worker stopped");
}
