//! The scheduler of no-cut hours and power-off hours (issue 14 item 6,
//! part 3): every [`SCHEDULE_INTERVAL`] it runs [`store::schedule::tick`],
//! which opens the windows under way and queues the relay commands of
//! their edges (at most [`SCHEDULE_BATCH`] meters a tick) for the head-end.
//! Safe on several nodes at once: each occurrence and each meter's edge is
//! one unique row in the store, so a command is queued once whoever ticks.

use crate::supervisor::{Role, WorkerSpec};
use domain::time::CampusTz;
use std::time::Duration;

/// Time between scheduler ticks: how late after a window edge its first
/// commands are queued, at most.
pub const SCHEDULE_INTERVAL: Duration = Duration::from_secs(30);
/// Most meters one tick queues commands for (start and end edges together);
/// a larger scope is covered over the next ticks.
pub const SCHEDULE_BATCH: usize = 200;

/// One tick at `now_ms`.
pub async fn schedule_tick(
    db: &store::Db,
    tz: &CampusTz,
    now_ms: i64,
) -> store::Result<store::schedule::TickReport> {
    store::schedule::tick(db, tz.tz(), now_ms, SCHEDULE_BATCH).await
}

/// The scheduler worker (role `headend`: the node that sends the commands).
pub fn schedule_worker(db: store::Db, tz: CampusTz) -> WorkerSpec {
    WorkerSpec::tick_with(
        "schedule",
        Role::Headend,
        SCHEDULE_INTERVAL,
        SCHEDULE_BATCH,
        (db, tz),
        |(db, tz), now_ms| async move {
            match schedule_tick(&db, &tz, now_ms).await {
                Ok(r) if r == store::schedule::TickReport::default() => {}
                Ok(r) => tracing::info!(
                    opened = r.opened,
                    started = r.started,
                    ended = r.ended,
                    skipped = r.skipped,
                    finished = r.finished,
                    "scheduled relay windows"
                ),
                Err(e) => tracing::warn!(error = %e, "scheduler tick failed"),
            }
        },
    )
}
