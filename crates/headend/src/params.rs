//! Staff parameter writes (issue 14 item 6, part 4): the head-end's side of
//! the `meter_param_command` table (store::meter_params), run in the same
//! task and at the same pace as the relay commands (crate::commands), with
//! the relay settings (`relay_poll_ms`, `relay_lease_ms`,
//! `relay_queue_bound_ms`, `relay_retry_ms`, `relay_batch`).
//!
//! For a claimed write, each requested DI (04A00101 power limit, 04A00102
//! malicious-load step, 04A00103 power-factor threshold) is written with
//! 14H (level-02 password and operator code), then **every** requested DI
//! is read back whatever the write replied: an error reply is never taken
//! as "not applied" (protocol-notes). The outcome is recorded fenced on the
//! claim's epoch:
//!
//! - no error reply and every value read back equal → `done`;
//! - an error reply or a value read back different → `failed` with the
//!   reason (`meter_params_failed` in the audit log);
//! - no answer at all, or a value not read back (timeout, link down,
//!   stopping) → back to `queued`,
//!   retried after `relay_retry_ms` until the bound cancels it.
//!
//! Writing the same values twice is harmless, so a write retaken after a
//! crash mid-send is safe to send again.

use crate::{Error, Headend};
use dlt645::value::{Bcd, OperatorCode, Password, Value, WriteData};
use dlt645::{Di, request};
use store::meter_params::{self, Outcome, ParamCommand, ParamSet};
use tokio_util::sync::CancellationToken;

/// What one [`tick`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// Writes cancelled for waiting past the bound.
    pub cancelled: usize,
    /// Writes sent and recorded (done or failed).
    pub finished: usize,
    /// Writes put back in the queue (no answer).
    pub requeued: usize,
}

/// The DIs of a set, with their wire format and the raw wire value
/// (power limit: XX.XXXX kW, i.e. 0.1 W units).
fn items(p: &ParamSet) -> Vec<(Di, Bcd, i64)> {
    let mut out = Vec::new();
    if let Some(w) = p.power_limit_w {
        out.push((Di::POWER_LIMIT, Bcd::POWER_LIMIT, w * 10));
    }
    if let Some(w) = p.malicious_step_w {
        out.push((Di::MALICIOUS_LOAD_STEP, Bcd::WATTS, w));
    }
    if let Some(m) = p.malicious_pf_milli {
        out.push((Di::MALICIOUS_LOAD_PF_THRESHOLD, Bcd::RATIO, m));
    }
    out
}

fn di_hex(di: Di) -> String {
    format!("{:08X}", di.0)
}

/// One round: cancel the expired, claim, write, read back, record.
pub async fn tick(h: &Headend, db: &store::Db, stop: &CancellationToken) -> Result<Tick, Error> {
    let cfg = h.config();
    let mut out = Tick::default();
    let cancelled = meter_params::cancel_expired(db, cfg.relay_queue_bound_ms, h.now_ms()).await?;
    for c in &cancelled {
        tracing::warn!(
            command = c.id,
            meter.id = c.meter_id,
            "parameter write cancelled: not sent within the bound"
        );
    }
    out.cancelled = cancelled.len();
    let claimed = meter_params::claim(
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
            meter_params::requeue(db, &c, "head-end stopped", h.now_ms(), h.now_ms()).await?;
            out.requeued += 1;
            continue;
        }
        match send(h, db, &c).await {
            Ok(true) => out.finished += 1,
            Ok(false) => out.requeued += 1,
            Err(Error::Store(store::Error::LeaseLost(e))) => {
                tracing::warn!(command = c.id, error = %e, "parameter write lease lost");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Writes and reads back claimed `c`, records the outcome; `true` when
/// final, `false` when requeued (the meter answered nothing).
async fn send(h: &Headend, db: &store::Db, c: &ParamCommand) -> Result<bool, Error> {
    let Some(route) = h.route(c.meter_id) else {
        return Err(Error::UnknownMeter(c.meter_id));
    };
    let cfg = h.config();
    let mut refusals = Vec::new();
    let mut answered = false;
    let mut last_silence = None;
    for (di, bcd, raw) in items(&c.wanted) {
        let w = WriteData {
            di,
            password: Password {
                level: 2,
                code: cfg.meter_password,
            },
            operator: OperatorCode(cfg.operator_code),
            value: bcd
                .encode(raw)
                .map_err(|e| Error::Config(format!("parameter {}: {e}", di_hex(di))))?,
        };
        let frame = request::write_request(route.address, &w)
            .map_err(|e| Error::Config(format!("parameter {}: {e}", di_hex(di))))?;
        match route.bus.request(frame, 3).await {
            Ok(reply) => {
                answered = true;
                if reply.control().is_abnormal() {
                    refusals.push(format!(
                        "{} refused: {:?}",
                        di_hex(di),
                        reply.error_flags().map(|e| e.names()).unwrap_or_default()
                    ));
                }
            }
            Err(e) => last_silence = Some(e.to_string()),
        }
    }
    // Read back every requested DI, whatever the writes replied.
    let mut read = ParamSet::default();
    let mut read_silent = false;
    for (di, _, _) in items(&c.wanted) {
        let got = match route
            .bus
            .request(request::read_request(route.address, di), 3)
            .await
        {
            Ok(f) if !f.control().is_abnormal() => {
                answered = true;
                match crate::plan::value(&f) {
                    Some(Value::Number { raw, .. }) => Some(raw),
                    _ => None,
                }
            }
            Ok(_) => {
                answered = true;
                None
            }
            Err(e) => {
                read_silent = true;
                last_silence = Some(e.to_string());
                None
            }
        };
        if di == Di::POWER_LIMIT {
            read.power_limit_w = got.map(|r| r / 10);
        } else if di == Di::MALICIOUS_LOAD_STEP {
            read.malicious_step_w = got;
        } else {
            read.malicious_pf_milli = got;
        }
    }
    let now = h.now_ms();
    // Nothing answered, or a value could not be read back: the outcome is
    // unknown, so it goes back to the queue (writing the same values again
    // is harmless) rather than being called failed.
    if !answered || read_silent {
        let why = last_silence.unwrap_or_else(|| "no answer".to_owned());
        meter_params::requeue(db, c, &why, now + cfg.relay_retry_ms, now).await?;
        return Ok(false);
    }
    let error = (!refusals.is_empty()).then(|| refusals.join("; "));
    let done = meter_params::finish(db, c, &Outcome { read, error }, now).await?;
    tracing::info!(command = done.id, meter.id = done.meter_id, state = done.state.as_str(), error = ?done.error, "parameter write recorded");
    Ok(true)
}
