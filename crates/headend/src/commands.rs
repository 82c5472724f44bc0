//! Staff relay commands (issue 14 item 5): the head-end's side of the
//! `relay_command` table (store::relay).
//!
//! Every `relay_poll_ms` the worker cancels what waited longer than
//! `relay_queue_bound_ms` (its meter stayed offline), claims up to
//! `relay_batch` queued commands of the meters this head-end routes and
//! that are online, under a `relay_lease_ms` lease, and sends each through
//! [`Headend::relay`] (the DL/T 645 relay control, then status word 3 read
//! back). The outcome is recorded fenced on the claim's epoch:
//!
//! - accepted → `done` with the status word; refused → `failed`;
//! - no answer (timeout, link down, head-end stopping) → back to `queued`
//!   with the error shown, tried again after `relay_retry_ms`, until the
//!   bound cancels it.
//!
//! Commands are sent one after another: a bus carries one request at a
//! time anyway, and a batch is small. A relay command is idempotent (the
//! head-end already repeats it on timeout), so a command retaken after a
//! crash mid-send is safe to send again.

use crate::{Error, Headend};
use dlt645::value::RelayCommand;
use std::time::Duration;
use store::relay::{self, Command, Outcome, RelayAction};
use tokio_util::sync::CancellationToken;

/// The DL/T 645 command of a staff action. "Close" is the direct close
/// (1C): staff restoring a room expect power at once, and it also clears a
/// safety lockout; "close allowed" (1B) depends on the meter.
pub fn command_of(a: RelayAction) -> RelayCommand {
    match a {
        RelayAction::Trip => RelayCommand::Trip,
        RelayAction::Close => RelayCommand::DirectClose,
        RelayAction::KeepPower => RelayCommand::KeepPower,
        RelayAction::KeepPowerRelease => RelayCommand::KeepPowerRelease,
    }
}

/// What one [`tick`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// Commands cancelled for waiting past the bound.
    pub cancelled: usize,
    /// Commands sent and recorded (done or failed).
    pub finished: usize,
    /// Commands put back in the queue (no answer).
    pub requeued: usize,
}

/// Runs [`tick`] every `relay_poll_ms` until `stop` is cancelled.
pub async fn run(h: &Headend, db: store::Db, stop: CancellationToken) {
    let every = Duration::from_millis(u64::try_from(h.config().relay_poll_ms).unwrap_or(2_000));
    loop {
        match tick(h, &db, &stop).await {
            Ok(t) if t == Tick::default() => {}
            Ok(t) => tracing::info!(
                cancelled = t.cancelled,
                finished = t.finished,
                requeued = t.requeued,
                "relay commands"
            ),
            Err(e) => tracing::warn!(error = %e, "relay command round failed"),
        }
        // Issue 14 item 6 part 4: staff parameter writes, same pace (crate::params).
        match crate::params::tick(h, &db, &stop).await {
            Ok(t) if t == crate::params::Tick::default() => {}
            Ok(t) => tracing::info!(
                cancelled = t.cancelled,
                finished = t.finished,
                requeued = t.requeued,
                "parameter writes"
            ),
            Err(e) => tracing::warn!(error = %e, "parameter write round failed"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// One round: cancel the expired, claim, send, record.
pub async fn tick(h: &Headend, db: &store::Db, stop: &CancellationToken) -> Result<Tick, Error> {
    let cfg = h.config();
    let mut out = Tick::default();
    let cancelled = relay::cancel_expired(db, cfg.relay_queue_bound_ms, h.now_ms()).await?;
    for c in &cancelled {
        tracing::warn!(
            command = c.id,
            meter.id = c.meter_id,
            "relay command cancelled: not sent within the bound"
        );
    }
    out.cancelled = cancelled.len();
    let claimed = relay::claim(
        db,
        &h.routed_meters(),
        &h.worker_name(),
        h.now_ms(),
        cfg.relay_lease_ms,
        cfg.relay_batch,
    )
    .await?;
    for c in claimed {
        if stop.is_cancelled() {
            // Give it back for the next head-end (or this one restarted).
            relay::requeue(db, &c, "head-end stopped", h.now_ms(), h.now_ms()).await?;
            out.requeued += 1;
            continue;
        }
        match send(h, db, &c).await {
            Ok(true) => out.finished += 1,
            Ok(false) => out.requeued += 1,
            // Lost the lease: another head-end holds it now; not ours to record.
            Err(Error::Store(store::Error::LeaseLost(e))) => {
                tracing::warn!(command = c.id, error = %e, "relay command lease lost");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Sends claimed command `c` and records its outcome; `true` when it is
/// final (done or failed), `false` when it went back to the queue.
async fn send(h: &Headend, db: &store::Db, c: &Command) -> Result<bool, Error> {
    let result = h.relay(c.meter_id, command_of(c.action)).await;
    let now = h.now_ms();
    let outcome = match result {
        Ok(o) => Outcome {
            accepted: o.accepted,
            status_word: o.status_word.map(i64::from),
            relay_closed: o.relay_closed,
            error: None,
        },
        Err(Error::Refused(why)) => Outcome {
            accepted: false,
            status_word: None,
            relay_closed: None,
            error: Some(format!("meter refused: {why}")),
        },
        Err(e) => {
            relay::requeue(db, c, &e.to_string(), now + h.config().relay_retry_ms, now).await?;
            return Ok(false);
        }
    };
    let done = relay::finish(db, c, &outcome, now).await?;
    tracing::info!(command = done.id, meter.id = done.meter_id, action = done.action.as_str(), state = done.state.as_str(), status_word = ?done.status_word, "relay command recorded");
    Ok(true)
}
