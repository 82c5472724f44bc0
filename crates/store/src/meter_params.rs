//! Staff parameter writes to meters (issue 14 item 6, part 4): the vendor
//! power limit (04A00101) and malicious-load settings (04A00102 step,
//! 04A00103 power-factor threshold), written with DL/T 645 14H and read
//! back by the head-end (headend::params).
//!
//! One `meter_param_command` row per meter, with the same life as a relay
//! command (store::relay):
//!
//! ```text
//! queued ──claim──▶ sending ──finish──▶ done | failed
//!   ▲                 │
//!   └──requeue────────┘ (the meter did not answer; retried after a pause)
//! queued / stale sending ──expire (older than the bound)──▶ cancelled
//! ```
//!
//! - [`claim`] is one guarded update per row on the epoch read (of two
//!   head-ends only one wins); [`finish`] / [`requeue`] write only where the
//!   row is still `sending` under the claimer's epoch and name
//!   ([`Error::LeaseLost`] otherwise).
//! - [`finish`] decides `done` only when every value read back equals the
//!   requested one; an error reply or a mismatch is `failed` with the
//!   reason. An error reply is never taken as "not applied": the head-end
//!   reads back whatever the write replied, and the read values are stored.
//! - [`request`] writes the rows and their `meter_params_requested` audit
//!   rows in one transaction; [`finish`] and [`cancel_expired`] write the
//!   outcome and its `meter_params_done` / `meter_params_failed` /
//!   `meter_params_cancelled` audit row in one.

use crate::audit::{self, Actor, Entry};
use crate::relay::CommandState;
use crate::row::{BadValue, decode_row, decoded};
use crate::{Db, Error, Result, on_db};
use serde::Serialize;

/// Most meters one request may carry (a building).
pub const BATCH_MAX: usize = 2_000;
/// Candidates one [`claim`] looks at.
const CANDIDATES_MAX: i64 = 200;
/// Power limit bounds, watts (inclusive).
pub const POWER_LIMIT_W: (i64, i64) = (100, 10_000);
/// Malicious-load step bounds, watts (inclusive).
pub const STEP_W: (i64, i64) = (100, 5_000);
/// Power-factor threshold bounds, thousandths, both **exclusive**: the
/// meter only applies 500 < value < 1000 (meter-profile).
pub const PF_MILLI_EXCLUSIVE: (i64, i64) = (500, 1_000);

/// The parameters to write; `None` leaves one as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ParamSet {
    /// Power limit, watts (04A00101).
    pub power_limit_w: Option<i64>,
    /// Malicious-load power step, watts (04A00102).
    pub malicious_step_w: Option<i64>,
    /// Malicious-load increment power-factor threshold, thousandths (04A00103).
    pub malicious_pf_milli: Option<i64>,
}

/// Why a parameter set was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadParams {
    /// Nothing to write.
    #[error("choose at least one parameter")]
    Empty,
    /// Power limit outside 100–10000 W.
    #[error("the power limit must be 100 to 10000 W")]
    PowerLimit,
    /// Step outside 100–5000 W.
    #[error("the malicious-load step must be 100 to 5000 W")]
    Step,
    /// Threshold not strictly between 0.500 and 1.000.
    #[error("the power-factor threshold must be above 0.500 and below 1.000")]
    PowerFactor,
}

impl ParamSet {
    /// Checks the ranges.
    pub fn validate(&self) -> std::result::Result<(), BadParams> {
        if self.power_limit_w.is_none()
            && self.malicious_step_w.is_none()
            && self.malicious_pf_milli.is_none()
        {
            return Err(BadParams::Empty);
        }
        if let Some(v) = self.power_limit_w
            && !(POWER_LIMIT_W.0..=POWER_LIMIT_W.1).contains(&v)
        {
            return Err(BadParams::PowerLimit);
        }
        if let Some(v) = self.malicious_step_w
            && !(STEP_W.0..=STEP_W.1).contains(&v)
        {
            return Err(BadParams::Step);
        }
        if let Some(v) = self.malicious_pf_milli
            && !(v > PF_MILLI_EXCLUSIVE.0 && v < PF_MILLI_EXCLUSIVE.1)
        {
            return Err(BadParams::PowerFactor);
        }
        Ok(())
    }

    /// Every requested value that `read` does not show; empty when all match.
    pub fn mismatches(&self, read: &ParamSet) -> Vec<&'static str> {
        let mut out = Vec::new();
        let pairs = [
            ("power_limit_w", self.power_limit_w, read.power_limit_w),
            (
                "malicious_step_w",
                self.malicious_step_w,
                read.malicious_step_w,
            ),
            (
                "malicious_pf_milli",
                self.malicious_pf_milli,
                read.malicious_pf_milli,
            ),
        ];
        for (name, want, got) in pairs {
            if want.is_some() && want != got {
                out.push(name);
            }
        }
        out
    }
}

/// A stored parameter write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParamCommand {
    /// Row id.
    pub id: i64,
    /// The meter.
    pub meter_id: i64,
    /// What to write.
    pub wanted: ParamSet,
    /// Who asked (row id).
    pub operator_id: Option<i64>,
    /// Who asked, as they were named.
    pub operator_name: String,
    /// From where.
    pub client_ip: String,
    /// Where it is.
    pub state: CommandState,
    /// Fencing epoch: incremented by every claim.
    pub lease_epoch: i64,
    /// The head-end holding it, while `sending`.
    pub locked_by: Option<String>,
    /// Until when the lease holds.
    pub locked_until_ms: Option<i64>,
    /// Claims so far.
    pub attempts: i64,
    /// The values read back after the writes.
    pub read: ParamSet,
    /// The meter's error reply, the mismatch, or the last "no answer".
    pub error: Option<String>,
    /// When asked.
    pub created_at_ms: i64,
    /// Last change.
    pub updated_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct RawParamCommand {
    id: i64,
    meter_id: i64,
    power_limit_w: Option<i64>,
    malicious_step_w: Option<i64>,
    malicious_pf_milli: Option<i64>,
    operator_id: Option<i64>,
    operator_name: String,
    client_ip: String,
    state: String,
    lease_epoch: i64,
    locked_by: Option<String>,
    locked_until_ms: Option<i64>,
    attempts: i64,
    read_power_limit_w: Option<i64>,
    read_malicious_step_w: Option<i64>,
    read_malicious_pf_milli: Option<i64>,
    error: Option<String>,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl TryFrom<RawParamCommand> for ParamCommand {
    type Error = BadValue;

    fn try_from(r: RawParamCommand) -> std::result::Result<Self, BadValue> {
        Ok(ParamCommand {
            state: decoded(
                "meter_param_command.state",
                &r.state,
                CommandState::parse(&r.state),
            )?,
            id: r.id,
            meter_id: r.meter_id,
            wanted: ParamSet {
                power_limit_w: r.power_limit_w,
                malicious_step_w: r.malicious_step_w,
                malicious_pf_milli: r.malicious_pf_milli,
            },
            operator_id: r.operator_id,
            operator_name: r.operator_name,
            client_ip: r.client_ip,
            lease_epoch: r.lease_epoch,
            locked_by: r.locked_by,
            locked_until_ms: r.locked_until_ms,
            attempts: r.attempts,
            read: ParamSet {
                power_limit_w: r.read_power_limit_w,
                malicious_step_w: r.read_malicious_step_w,
                malicious_pf_milli: r.read_malicious_pf_milli,
            },
            error: r.error,
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
        })
    }
}

decode_row!(ParamCommand, RawParamCommand);

const COLUMNS: &str = "id, meter_id, power_limit_w, malicious_step_w, malicious_pf_milli,
    operator_id, operator_name, client_ip, state, lease_epoch, locked_by, locked_until_ms,
    attempts, read_power_limit_w, read_malicious_step_w, read_malicious_pf_milli, error,
    created_at_ms, updated_at_ms";

impl ParamCommand {
    fn actor(&self) -> Actor {
        Actor {
            operator_id: self.operator_id,
            name: self.operator_name.clone(),
            client_ip: self.client_ip.clone(),
        }
    }

    fn audit_after(&self) -> serde_json::Value {
        serde_json::json!({
            "command_id": self.id,
            "wanted": self.wanted,
            "read": self.read,
            "state": self.state.as_str(),
            "error": self.error,
        })
    }
}

fn subject(meter_id: i64) -> String {
    format!("meter:{meter_id}")
}

/// Queues `params` for every meter of `meters` (1 to [`BATCH_MAX`]), one
/// row and one `meter_params_requested` audit row each, all in one
/// transaction: queued whole or not at all. Refuses an invalid set before
/// writing anything.
pub async fn request(
    db: &Db,
    actor: &Actor,
    meters: &[i64],
    params: &ParamSet,
    now_ms: i64,
) -> Result<Vec<ParamCommand>> {
    params
        .validate()
        .map_err(|e| Error::Conflict(e.to_string()))?;
    if meters.is_empty() || meters.len() > BATCH_MAX {
        return Err(Error::Conflict(format!(
            "a parameter write names 1 to {BATCH_MAX} meters, not {}",
            meters.len()
        )));
    }
    let mut tx = db.begin().await?;
    let mut out = Vec::with_capacity(meters.len());
    let sql = format!(
        "insert into meter_param_command (meter_id, power_limit_w, malicious_step_w,
                malicious_pf_milli, operator_id, operator_name, client_ip, state,
                created_at_ms, updated_at_ms)
         values ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $8)
         returning {COLUMNS}"
    );
    for &m in meters {
        let c: ParamCommand = crate::on_tx!(&mut tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.clone()
        ))
        .bind(m)
        .bind(params.power_limit_w)
        .bind(params.malicious_step_w)
        .bind(params.malicious_pf_milli)
        .bind(actor.operator_id)
        .bind(&actor.name)
        .bind(&actor.client_ip)
        .bind(now_ms)
        .fetch_one(c)
        .await?);
        audit::append_tx(
            &mut tx,
            &Entry {
                actor,
                action: "meter_params_requested",
                subject: &subject(m),
                before: None,
                after: Some(c.audit_after()),
            },
            now_ms,
        )
        .await?;
        out.push(c);
    }
    tx.commit().await?;
    Ok(out)
}

/// Claims up to `limit` writes for `worker` until `now_ms + lease_ms`:
/// queued ones (and `sending` ones whose lease ran out) of the online
/// meters in `routed`, oldest first, each by one update guarded on the
/// epoch read.
pub async fn claim(
    db: &Db,
    routed: &[i64],
    worker: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: usize,
) -> Result<Vec<ParamCommand>> {
    if routed.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let ids = serde_json::to_string(routed).map_err(|e| Error::Conflict(e.to_string()))?;
    let routed_sql = match db {
        Db::Sqlite(_) => "select value from json_each($1)",
        Db::Postgres(_) => "select (jsonb_array_elements_text($1::jsonb))::bigint",
    };
    let sql = format!(
        "select pc.id, pc.lease_epoch from meter_param_command pc
         join meter_state ms on ms.meter_id = pc.meter_id and ms.online
         where pc.state in ('queued', 'sending')
           and (pc.locked_until_ms is null or pc.locked_until_ms < $2)
           and pc.meter_id in ({routed_sql})
         order by pc.id limit $3"
    );
    let candidates: Vec<(i64, i64)> =
        on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(&ids)
            .bind(now_ms)
            .bind(CANDIDATES_MAX)
            .fetch_all(p)
            .await?);
    let mut out = Vec::new();
    for (id, epoch) in candidates {
        if out.len() == limit {
            break;
        }
        out.extend(take(db, id, epoch, worker, now_ms, lease_ms).await?);
    }
    Ok(out)
}

/// One guarded claim of row `id` read at `epoch`: `None` when another
/// claimer moved it first.
pub async fn take(
    db: &Db,
    id: i64,
    epoch: i64,
    worker: &str,
    now_ms: i64,
    lease_ms: i64,
) -> Result<Option<ParamCommand>> {
    let sql = format!(
        "update meter_param_command set state = 'sending', lease_epoch = lease_epoch + 1,
                locked_by = $3, locked_until_ms = $4, attempts = attempts + 1, updated_at_ms = $5
         where id = $1 and lease_epoch = $2 and state in ('queued', 'sending')
           and (locked_until_ms is null or locked_until_ms < $5)
         returning {COLUMNS}"
    );
    Ok(on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(id)
    .bind(epoch)
    .bind(worker)
    .bind(now_ms + lease_ms)
    .bind(now_ms)
    .fetch_optional(p)
    .await?))
}

fn lost(c: &ParamCommand) -> Error {
    Error::LeaseLost(format!(
        "parameter write {} (epoch {}) is no longer held by {}",
        c.id,
        c.lease_epoch,
        c.locked_by.as_deref().unwrap_or("?")
    ))
}

/// What the meter made of a claimed write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The values read back after the writes (`None`: not readable).
    pub read: ParamSet,
    /// The meter's error replies to the writes, if any.
    pub error: Option<String>,
}

/// Records the outcome of claimed write `c`: `done` only when there was no
/// error reply and every requested value was read back equal, else `failed`
/// with the reason; with its audit row, in one transaction. Fenced:
/// [`Error::LeaseLost`] unless `c` still holds its lease.
pub async fn finish(db: &Db, c: &ParamCommand, o: &Outcome, now_ms: i64) -> Result<ParamCommand> {
    let mismatched = c.wanted.mismatches(&o.read);
    let mut reasons: Vec<String> = o.error.iter().cloned().collect();
    if !mismatched.is_empty() {
        reasons.push(format!("read back differs: {}", mismatched.join(", ")));
    }
    let (state, error) = if reasons.is_empty() {
        (CommandState::Done, None)
    } else {
        (CommandState::Failed, Some(reasons.join("; ")))
    };
    let mut tx = db.begin().await?;
    let sql = format!(
        "update meter_param_command set state = $4, read_power_limit_w = $5,
                read_malicious_step_w = $6, read_malicious_pf_milli = $7, error = $8,
                locked_by = null, locked_until_ms = null, updated_at_ms = $9
         where id = $1 and state = 'sending' and lease_epoch = $2 and locked_by = $3
         returning {COLUMNS}"
    );
    let row: Option<ParamCommand> = crate::on_tx!(&mut tx, |x| sqlx::query_as(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(c.id)
    .bind(c.lease_epoch)
    .bind(c.locked_by.as_deref())
    .bind(state.as_str())
    .bind(o.read.power_limit_w)
    .bind(o.read.malicious_step_w)
    .bind(o.read.malicious_pf_milli)
    .bind(error.as_deref())
    .bind(now_ms)
    .fetch_optional(x)
    .await?);
    let Some(done) = row else {
        return Err(lost(c));
    };
    audit::append_tx(
        &mut tx,
        &Entry {
            actor: &done.actor(),
            action: if state == CommandState::Done {
                "meter_params_done"
            } else {
                "meter_params_failed"
            },
            subject: &subject(c.meter_id),
            before: None,
            after: Some(done.audit_after()),
        },
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(done)
}

/// Puts claimed write `c` back in the queue (the meter did not answer),
/// keeping `error` visible, not claimed again before `retry_at_ms`. Fenced
/// like [`finish`].
pub async fn requeue(
    db: &Db,
    c: &ParamCommand,
    error: &str,
    retry_at_ms: i64,
    now_ms: i64,
) -> Result<()> {
    let n = on_db!(db, |p| {
        sqlx::query(
        "update meter_param_command set state = 'queued', locked_by = null, locked_until_ms = $6,
                error = $4, updated_at_ms = $5
         where id = $1 and state = 'sending' and lease_epoch = $2 and locked_by = $3"
    )
    .bind(c.id)
    .bind(c.lease_epoch)
    .bind(c.locked_by.as_deref())
    .bind(error)
    .bind(now_ms)
    .bind(retry_at_ms)
    .execute(p)
    .await?
    .rows_affected()
    });
    if n != 1 {
        return Err(lost(c));
    }
    Ok(())
}

/// Cancels every write asked at or before `now_ms - bound_ms` still queued
/// (or `sending` under a lease that ran out), each with a
/// `meter_params_cancelled` audit row, in one transaction.
pub async fn cancel_expired(db: &Db, bound_ms: i64, now_ms: i64) -> Result<Vec<ParamCommand>> {
    let mut tx = db.begin().await?;
    let sql = format!(
        "update meter_param_command set state = 'cancelled', locked_by = null,
                locked_until_ms = null,
                error = coalesce(error, 'not sent within the bound'), updated_at_ms = $1
         where created_at_ms <= $2
           and (state = 'queued' or (state = 'sending' and locked_until_ms < $1))
         returning {COLUMNS}"
    );
    let rows: Vec<ParamCommand> = crate::on_tx!(&mut tx, |x| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(now_ms)
    .bind(now_ms - bound_ms)
    .fetch_all(x)
    .await?);
    for c in &rows {
        audit::append_tx(
            &mut tx,
            &Entry {
                actor: &c.actor(),
                action: "meter_params_cancelled",
                subject: &subject(c.meter_id),
                before: None,
                after: Some(c.audit_after()),
            },
            now_ms,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(rows)
}

/// One write by id.
pub async fn get(db: &Db, id: i64) -> Result<Option<ParamCommand>> {
    let sql = format!("select {COLUMNS} from meter_param_command where id = $1");
    Ok(on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(id)
    .fetch_optional(p)
    .await?))
}

/// The latest `limit` writes to meters of building `building_id`, newest
/// first.
pub async fn of_building(db: &Db, building_id: i64, limit: i64) -> Result<Vec<ParamCommand>> {
    let cols = COLUMNS
        .split(',')
        .map(|c| format!("pc.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "select {cols} from meter_param_command pc
         join meter m on m.id = pc.meter_id join room r on r.id = m.room_id
         where r.building_id = $1 order by pc.id desc limit $2"
    );
    Ok(on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(building_id)
    .bind(limit)
    .fetch_all(p)
    .await?))
}

/// The meters (not retired) of building `building_id`, by id: the
/// selection a building-wide parameter write names.
pub async fn meters_of_building(db: &Db, building_id: i64) -> Result<Vec<i64>> {
    Ok(on_db!(db, |p| sqlx::query_scalar::<_, i64>(
        "select m.id from meter m join room r on r.id = m.room_id
         where r.building_id = $1 and m.retired_at_ms is null order by m.id"
    )
    .bind(building_id)
    .fetch_all(p)
    .await?))
}
