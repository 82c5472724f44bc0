//! The store writer: buses hand over what they learned and go on polling;
//! this task writes it in batches, one transaction per batch, so the bus
//! pace never waits on a commit (on SQLite a commit costs milliseconds,
//! more than a whole RS485 transaction at 9600 bps).

use crate::clock::SharedClock;
use crate::metrics::Metrics;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use store::meters::{FrozenDays, MeterEvent, Observation};
use tokio::sync::mpsc;

/// What a bus hands to the writer.
#[derive(Debug)]
pub(crate) enum WriterMsg {
    /// One meter's polling round.
    Round {
        // Boxed: a round is much larger than the other message.
        obs: Box<Observation>,
        events: Vec<MeterEvent>,
        frozen: Option<FrozenDays>,
    },
    /// Days up to `through_day` that could not be read.
    MarkMissing { meter_id: i64, through_day: i64 },
}

/// Messages queued for the writer before buses wait (back-pressure).
pub(crate) const WRITER_QUEUE: usize = 4096;
/// How long the writer gathers a batch after its first message, real
/// time: one commit per window instead of one per meter keeps SQLite's
/// fsyncs (synchronous = FULL) off the CPU budget.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(250);

pub(crate) async fn run(
    db: store::Db,
    mut rx: mpsc::Receiver<WriterMsg>,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    batch_max: usize,
) {
    let mut obs = Vec::new();
    let mut events = Vec::new();
    let mut frozen = Vec::new();
    let mut missing = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let mut n = 0;
        let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
        while let Some(msg) = next.take() {
            match msg {
                WriterMsg::Round {
                    obs: o,
                    events: e,
                    frozen: f,
                } => {
                    obs.push(*o);
                    events.extend(e);
                    frozen.extend(f);
                }
                WriterMsg::MarkMissing {
                    meter_id,
                    through_day,
                } => missing.push((meter_id, through_day)),
            }
            n += 1;
            if n < batch_max {
                next = tokio::time::timeout_at(deadline, rx.recv())
                    .await
                    .unwrap_or_default();
            }
        }
        let now = clock.now_ms();
        if let Err(e) = store::meters::record(&db, &obs, &events, &frozen, now).await {
            metrics.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, rounds = obs.len(), "could not store meter observations");
        }
        for (meter_id, through_day) in missing.drain(..) {
            if let Err(e) =
                store::meters::mark_missing_through(&db, meter_id, through_day, now).await
            {
                metrics.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, meter.id = meter_id, "could not mark missing days");
            }
        }
        obs.clear();
        events.clear();
        frozen.clear();
    }
}
