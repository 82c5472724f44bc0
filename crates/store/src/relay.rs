//! Staff relay commands across processes (issue 14 item 5).
//!
//! The web node that takes a command and the head-end that sends it may be
//! different processes, so a command is a `relay_command` row:
//!
//! ```text
//! queued ──claim──▶ sending ──finish──▶ done | failed
//!   ▲                 │
//!   └──requeue────────┘ (the meter did not answer; retried after a pause)
//! queued / stale sending ──expire (older than the bound)──▶ cancelled
//! ```
//!
//! - **One sender**: [`claim`] moves a row to `sending` only where it is
//!   still `queued` (or `sending` under a lease that ran out: a crashed
//!   head-end) *and* its `lease_epoch` is the one the claimer read, and
//!   increments the epoch; the row count says whether this claimer won.
//! - **Fenced outcome**: [`finish`] and [`requeue`] write only
//!   `where state = 'sending' and lease_epoch = $epoch and locked_by = $me`
//!   and fail with [`Error::LeaseLost`] otherwise, so a head-end whose
//!   lease was retaken cannot record over the new holder.
//! - **Never dropped**: a command to an offline meter is not claimed (the
//!   claim joins `meter_state.online`); it stays `queued`, visible, until
//!   [`cancel_expired`] cancels it after the configured bound, with an
//!   audit row naming the operator who asked.
//! - **Audited twice**: [`request`] writes the rows and their
//!   `relay_requested` audit rows in one transaction; [`finish`] and
//!   [`cancel_expired`] write the outcome and its audit row in one.
//! - **Keep-power (保电)** is `meter_state.keep_power`, set and cleared in
//!   the transaction that records a confirmed keep-power (release)
//!   command; [`enqueue_balance_trip`] refuses, in its one statement, a
//!   meter under keep-power.

use crate::audit::{self, Actor, Entry};
use crate::row::{BadValue, decode_row, decoded};
use crate::{Db, Error, Result, on_db};
use serde::Serialize;

/// Longest reason, in characters (the table's check says the same).
pub const REASON_CHARS_MAX: usize = 200;
/// Most commands one request may carry (a bulk selection on one page).
pub const BATCH_MAX: usize = 500;
/// Candidates one [`claim`] looks at.
const CANDIDATES_MAX: i64 = 200;

/// What a staff relay command asks the meter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RelayAction {
    /// Trip (拉闸): power off.
    Trip,
    /// Close (合闸): power on.
    Close,
    /// Keep-power (保电): the meter suppresses trips.
    KeepPower,
    /// Release keep-power.
    KeepPowerRelease,
}

impl RelayAction {
    /// Every action.
    pub const ALL: [RelayAction; 4] = [
        Self::Trip,
        Self::Close,
        Self::KeepPower,
        Self::KeepPowerRelease,
    ];

    /// The stored (and posted) name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Trip => "trip",
            Self::Close => "close",
            Self::KeepPower => "keep_power",
            Self::KeepPowerRelease => "keep_power_release",
        }
    }

    /// The action of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// Where a command is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandState {
    /// Waiting for a head-end (or for its meter to come online).
    Queued,
    /// Claimed by a head-end, on the bus.
    Sending,
    /// Accepted by the meter; status word 3 read back.
    Done,
    /// Refused by the meter.
    Failed,
    /// Not sent within the bound (the meter stayed offline).
    Cancelled,
}

impl CommandState {
    /// Every state.
    pub const ALL: [CommandState; 5] = [
        Self::Queued,
        Self::Sending,
        Self::Done,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The state of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Whether nothing more will happen to the command.
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }
}

/// A command's reason: trimmed, 1 to [`REASON_CHARS_MAX`] characters, no
/// control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason(String);

/// Why a reason was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadReason {
    /// Empty or blank.
    #[error("a reason is required")]
    Missing,
    /// Longer than [`REASON_CHARS_MAX`].
    #[error("the reason is too long: at most {REASON_CHARS_MAX} characters")]
    TooLong,
    /// Holds control characters.
    #[error("the reason holds control characters")]
    Control,
}

impl Reason {
    /// Parses a typed reason.
    pub fn parse(s: &str) -> std::result::Result<Self, BadReason> {
        let t = s.trim();
        if t.is_empty() {
            return Err(BadReason::Missing);
        }
        if t.chars().count() > REASON_CHARS_MAX {
            return Err(BadReason::TooLong);
        }
        if t.chars().any(char::is_control) {
            return Err(BadReason::Control);
        }
        Ok(Reason(t.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stored command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Command {
    /// Row id.
    pub id: i64,
    /// The meter.
    pub meter_id: i64,
    /// What it asks.
    pub action: RelayAction,
    /// Why (as typed by staff).
    pub reason: String,
    /// Who asked (row id), `None` for the head-end's own.
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
    /// Status word 3 read back after the command.
    pub status_word: Option<i64>,
    /// The relay that status word shows (true: closed, power on).
    pub relay_closed: Option<bool>,
    /// The last error (meter refused, did not answer).
    pub error: Option<String>,
    /// When asked.
    pub created_at_ms: i64,
    /// Last change.
    pub updated_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct RawCommand {
    id: i64,
    meter_id: i64,
    command: String,
    reason: String,
    operator_id: Option<i64>,
    operator_name: String,
    client_ip: String,
    state: String,
    lease_epoch: i64,
    locked_by: Option<String>,
    locked_until_ms: Option<i64>,
    attempts: i64,
    status_word: Option<i64>,
    relay_closed: Option<bool>,
    error: Option<String>,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl TryFrom<RawCommand> for Command {
    type Error = BadValue;

    fn try_from(r: RawCommand) -> std::result::Result<Self, BadValue> {
        Ok(Command {
            action: decoded(
                "relay_command.command",
                &r.command,
                RelayAction::parse(&r.command),
            )?,
            state: decoded(
                "relay_command.state",
                &r.state,
                CommandState::parse(&r.state),
            )?,
            id: r.id,
            meter_id: r.meter_id,
            reason: r.reason,
            operator_id: r.operator_id,
            operator_name: r.operator_name,
            client_ip: r.client_ip,
            lease_epoch: r.lease_epoch,
            locked_by: r.locked_by,
            locked_until_ms: r.locked_until_ms,
            attempts: r.attempts,
            status_word: r.status_word,
            relay_closed: r.relay_closed,
            error: r.error,
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
        })
    }
}

decode_row!(Command, RawCommand);

const COLUMNS: &str = "id, meter_id, command, reason, operator_id, operator_name, client_ip, state,
    lease_epoch, locked_by, locked_until_ms, attempts, status_word, relay_closed, error,
    created_at_ms, updated_at_ms";

impl Command {
    /// The actor the audit log names for this command's outcome: the
    /// operator who asked (the head-end records on their behalf).
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
            "command": self.action.as_str(),
            "reason": self.reason,
            "state": self.state.as_str(),
            "status_word": self.status_word,
            "relay_closed": self.relay_closed,
            "error": self.error,
        })
    }
}

fn subject(meter_id: i64) -> String {
    format!("meter:{meter_id}")
}

/// Queues `action` for every meter of `meters` (at most [`BATCH_MAX`]), one
/// row each, with a `relay_requested` audit row each, all in one
/// transaction: a bulk request is queued whole or not at all. Returns the
/// commands in the order of `meters`.
pub async fn request(
    db: &Db,
    actor: &Actor,
    meters: &[i64],
    action: RelayAction,
    reason: &Reason,
    now_ms: i64,
) -> Result<Vec<Command>> {
    if meters.is_empty() || meters.len() > BATCH_MAX {
        return Err(Error::Conflict(format!(
            "a relay request names 1 to {BATCH_MAX} meters, not {}",
            meters.len()
        )));
    }
    let mut tx = db.begin().await?;
    let mut out = Vec::with_capacity(meters.len());
    let sql = format!(
        "insert into relay_command (meter_id, command, reason, operator_id, operator_name, client_ip,
                                    state, created_at_ms, updated_at_ms)
         values ($1, $2, $3, $4, $5, $6, 'queued', $7, $7)
         returning {COLUMNS}"
    );
    for &m in meters {
        let c: Command = crate::on_tx!(&mut tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.clone()
        ))
        .bind(m)
        .bind(action.as_str())
        .bind(reason.as_str())
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
                action: "relay_requested",
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

/// Queues a trip for balance on behalf of the head-end (no operator),
/// unless the meter is under keep-power (保电) or already has an open
/// command: decided in the insert's own statement, so a keep-power
/// confirmed a moment earlier is always seen. `true` when queued.
pub async fn enqueue_balance_trip(db: &Db, meter_id: i64, now_ms: i64) -> Result<bool> {
    let n = on_db!(db, |p| {
        sqlx::query(
        "insert into relay_command (meter_id, command, reason, operator_id, operator_name, client_ip,
                                    state, created_at_ms, updated_at_ms)
         select $1, 'trip', 'balance', null, '(head-end)', 'local', 'queued', $2, $2
         where not exists (select 1 from meter_state where meter_id = $1 and keep_power)
           and not exists (select 1 from relay_command
                           where meter_id = $1 and state in ('queued', 'sending'))"
    )
    .bind(meter_id)
    .bind(now_ms)
    .execute(p)
    .await?
    .rows_affected()
    });
    Ok(n == 1)
}

/// Whether `meter_id` is under keep-power (保电).
pub async fn keep_power(db: &Db, meter_id: i64) -> Result<bool> {
    Ok(on_db!(db, |p| sqlx::query_scalar::<_, bool>(
        "select keep_power from meter_state where meter_id = $1"
    )
    .bind(meter_id)
    .fetch_optional(p)
    .await?)
    .unwrap_or(false))
}

/// Claims up to `limit` commands for `worker` until `now_ms + lease_ms`:
/// queued ones (and `sending` ones whose lease ran out) of the meters in
/// `routed` that are online, oldest first. Each claim is one guarded
/// update on the epoch read, so of two head-ends only one wins a command.
pub async fn claim(
    db: &Db,
    routed: &[i64],
    worker: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: usize,
) -> Result<Vec<Command>> {
    if routed.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let ids = serde_json::to_string(routed).map_err(|e| Error::Conflict(e.to_string()))?;
    // The routed meters travel as one JSON array: one statement whatever
    // the head-end's size; the dialects differ only in how it is unpacked.
    let routed_sql = match db {
        Db::Sqlite(_) => "select value from json_each($1)",
        Db::Postgres(_) => "select (jsonb_array_elements_text($1::jsonb))::bigint",
    };
    let sql = format!(
        "select rc.id, rc.lease_epoch from relay_command rc
         join meter_state ms on ms.meter_id = rc.meter_id and ms.online
         where rc.state in ('queued', 'sending')
           and (rc.locked_until_ms is null or rc.locked_until_ms < $2)
           and rc.meter_id in ({routed_sql})
         order by rc.id limit $3"
    );
    let candidates: Vec<(i64, i64)> =
        on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(&ids)
            .bind(now_ms)
            .bind(CANDIDATES_MAX)
            .fetch_all(p)
            .await?);
    let take = format!(
        "update relay_command set state = 'sending', lease_epoch = lease_epoch + 1, locked_by = $3,
                locked_until_ms = $4, attempts = attempts + 1, updated_at_ms = $5
         where id = $1 and lease_epoch = $2 and state in ('queued', 'sending')
           and (locked_until_ms is null or locked_until_ms < $5)
         returning {COLUMNS}"
    );
    let mut out = Vec::new();
    for (id, epoch) in candidates {
        if out.len() == limit {
            break;
        }
        let won: Option<Command> =
            on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(take.clone()))
                .bind(id)
                .bind(epoch)
                .bind(worker)
                .bind(now_ms + lease_ms)
                .bind(now_ms)
                .fetch_optional(p)
                .await?);
        out.extend(won);
    }
    Ok(out)
}

fn lost(c: &Command) -> Error {
    Error::LeaseLost(format!(
        "relay command {} (epoch {}) is no longer held by {}",
        c.id,
        c.lease_epoch,
        c.locked_by.as_deref().unwrap_or("?")
    ))
}

/// What the meter made of a claimed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the meter accepted it (9CH).
    pub accepted: bool,
    /// Status word 3 read back afterwards.
    pub status_word: Option<i64>,
    /// The relay that status word shows (true: closed).
    pub relay_closed: Option<bool>,
    /// Why not accepted, for staff.
    pub error: Option<String>,
}

/// Records the outcome of claimed command `c` (`done` when accepted, else
/// `failed`), its effect on `meter_state.keep_power`, and a `relay_done` /
/// `relay_failed` audit row in the operator's name, in one transaction.
/// Fenced: [`Error::LeaseLost`] unless `c` still holds its lease.
pub async fn finish(db: &Db, c: &Command, o: &Outcome, now_ms: i64) -> Result<Command> {
    let state = if o.accepted {
        CommandState::Done
    } else {
        CommandState::Failed
    };
    let mut tx = db.begin().await?;
    let sql = format!(
        "update relay_command set state = $4, status_word = $5, relay_closed = $6, error = $7,
                locked_by = null, locked_until_ms = null, updated_at_ms = $8
         where id = $1 and state = 'sending' and lease_epoch = $2 and locked_by = $3
         returning {COLUMNS}"
    );
    let row: Option<Command> = crate::on_tx!(&mut tx, |x| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(c.id)
    .bind(c.lease_epoch)
    .bind(c.locked_by.as_deref())
    .bind(state.as_str())
    .bind(o.status_word)
    .bind(o.relay_closed)
    .bind(o.error.as_deref())
    .bind(now_ms)
    .fetch_optional(x)
    .await?);
    let Some(done) = row else {
        return Err(lost(c));
    };
    let keep = match (o.accepted, c.action) {
        (true, RelayAction::KeepPower) => Some(true),
        (true, RelayAction::KeepPowerRelease) => Some(false),
        _ => None,
    };
    if let Some(keep) = keep {
        crate::on_tx!(&mut tx, |x| sqlx::query(
            "update meter_state set keep_power = $2, updated_at_ms = $3 where meter_id = $1"
        )
        .bind(c.meter_id)
        .bind(keep)
        .bind(now_ms)
        .execute(x)
        .await?
        .rows_affected());
    }
    audit::append_tx(
        &mut tx,
        &Entry {
            actor: &done.actor(),
            action: if o.accepted {
                "relay_done"
            } else {
                "relay_failed"
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

/// Puts claimed command `c` back in the queue (the meter did not answer),
/// keeping `error` visible; it is not claimed again before `retry_at_ms`
/// (a silent meter must not take its bus from routine polling). Fenced
/// like [`finish`].
pub async fn requeue(
    db: &Db,
    c: &Command,
    error: &str,
    retry_at_ms: i64,
    now_ms: i64,
) -> Result<()> {
    let n = on_db!(db, |p| sqlx::query(
        "update relay_command set state = 'queued', locked_by = null, locked_until_ms = $6,
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
    .rows_affected());
    if n != 1 {
        return Err(lost(c));
    }
    Ok(())
}

/// Cancels every command asked at or before `now_ms - bound_ms` that is
/// still queued (or `sending` under a lease that ran out), each with a
/// `relay_cancelled` audit row, in one transaction. Returns them.
pub async fn cancel_expired(db: &Db, bound_ms: i64, now_ms: i64) -> Result<Vec<Command>> {
    let mut tx = db.begin().await?;
    let sql = format!(
        "update relay_command set state = 'cancelled', locked_by = null, locked_until_ms = null,
                error = coalesce(error, 'not sent within the bound'), updated_at_ms = $1
         where created_at_ms <= $2
           and (state = 'queued' or (state = 'sending' and locked_until_ms < $1))
         returning {COLUMNS}"
    );
    let rows: Vec<Command> = crate::on_tx!(&mut tx, |x| sqlx::query_as(sqlx::AssertSqlSafe(
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
                action: "relay_cancelled",
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

/// One command by id.
pub async fn get(db: &Db, id: i64) -> Result<Option<Command>> {
    let sql = format!("select {COLUMNS} from relay_command where id = $1");
    Ok(on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(id)
    .fetch_optional(p)
    .await?))
}

/// The latest `limit` commands of meter `meter_id`, newest first.
pub async fn of_meter(db: &Db, meter_id: i64, limit: i64) -> Result<Vec<Command>> {
    let sql = format!(
        "select {COLUMNS} from relay_command where meter_id = $1 order by id desc limit $2"
    );
    Ok(on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(meter_id)
    .bind(limit)
    .fetch_all(p)
    .await?))
}

/// The latest `limit` commands to meters of building `building_id`,
/// newest first.
pub async fn of_building(db: &Db, building_id: i64, limit: i64) -> Result<Vec<Command>> {
    let cols = COLUMNS
        .split(',')
        .map(|c| format!("rc.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "select {cols} from relay_command rc
         join meter m on m.id = rc.meter_id join room r on r.id = m.room_id
         where r.building_id = $1 order by rc.id desc limit $2"
    );
    Ok(on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(building_id)
    .bind(limit)
    .fetch_all(p)
    .await?))
}
