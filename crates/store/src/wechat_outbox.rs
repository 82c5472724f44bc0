//! WeChat template messages (issue 15): the outbox, each student's follow
//! state and notification preferences.
//!
//! The outbox holds one row per (event, recipient), written by
//! [`enqueue_in`] in the transaction that writes the inbox message it
//! copies (store::notify), so a message is never lost between the two and
//! the unique `(event_key, student_id)` makes it at most once across
//! restarts and nodes. The sender (service::wechat_notify) claims due rows
//! with a lease ([`claim`]): every claim advances the row's `lease_epoch`,
//! and [`finish`] changes a row only where it is still `sending` under the
//! claimer's name and epoch — a sender whose lease ran out (and whose row
//! another sender re-claimed) gets [`Error::LeaseLost`] and changes
//! nothing, so a row is sent by at most one claim that finishes.
//!
//! States: `pending` (waiting for `next_attempt_at_ms`), `sending` (claimed;
//! claimable again once `locked_until_ms` passed), `sent`, `failed` (gave up,
//! counted), `skipped` (not a follower, kind switched off, no template).

use crate::message::MessageArgs;
use crate::row::{BadValue, decode_row, decoded};
use crate::{Db, Error, Result, Tx, on_db, on_tx};
use serde::{Deserialize, Serialize};

/// Most characters of an error text kept on a row.
const ERROR_CHARS_MAX: usize = 200;

/// What an outbox row carries: the inbox message's arguments plus what only
/// the WeChat text needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxArgs {
    /// The event, as the inbox message has it.
    pub message: MessageArgs,
    /// Low balance: whole days the remaining energy lasts at recent usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_left: Option<i64>,
    /// Delivered: the buyer's name, masked ("张**"), when the recipient is
    /// not the buyer (a roommate paid); `None` when the recipient paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_by_other: Option<String>,
}

/// Where an outbox row is, as `wechat_outbox.state` holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Waiting for its time.
    Pending,
    /// Claimed by a sender.
    Sending,
    /// WeChat accepted it.
    Sent,
    /// Given up (out of time or refused for good).
    Failed,
    /// Not sent on purpose (not following, switched off, no template).
    Skipped,
}

impl OutboxState {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    /// The state of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Sending,
            Self::Sent,
            Self::Failed,
            Self::Skipped,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// Whether a student follows the official account, as last learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Follows {
    /// Never learnt (no event, no user info, no send yet).
    Unknown,
    /// Follows: template messages reach them.
    Yes,
    /// Does not follow: nothing is pushed.
    No,
}

impl Follows {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Yes => "yes",
            Self::No => "no",
        }
    }

    /// The value of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Unknown, Self::Yes, Self::No]
            .into_iter()
            .find(|f| f.as_str() == s)
    }
}

/// How the follow state was learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowSource {
    /// A subscribe/unsubscribe event push.
    Event,
    /// `cgi-bin/user/info`.
    UserInfo,
    /// WeChat answered 43004 to a template message.
    RequireSubscribe,
}

impl FollowSource {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Event => "event",
            Self::UserInfo => "user_info",
            Self::RequireSubscribe => "43004",
        }
    }
}

/// A student's language for pushed messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Language {
    /// Simplified Chinese (the default).
    ZhCn,
    /// English.
    En,
}

impl Language {
    /// The stored tag.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ZhCn => "zh-CN",
            Self::En => "en",
        }
    }

    /// The language of a stored tag.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::ZhCn, Self::En].into_iter().find(|l| l.as_str() == s)
    }
}

/// A student's notification choices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prefs {
    /// Language of pushed messages.
    pub language: Language,
    /// Quiet hours start, minutes after campus midnight.
    pub quiet_start_min: i64,
    /// Quiet hours end, minutes after campus midnight (start = end: none).
    pub quiet_end_min: i64,
}

impl Prefs {
    /// Default quiet hours start: 23:00.
    pub const QUIET_START_MIN_DEFAULT: i64 = 23 * 60;
    /// Default quiet hours end: 07:00.
    pub const QUIET_END_MIN_DEFAULT: i64 = 7 * 60;
}

impl Default for Prefs {
    fn default() -> Self {
        Self {
            language: Language::ZhCn,
            quiet_start_min: Self::QUIET_START_MIN_DEFAULT,
            quiet_end_min: Self::QUIET_END_MIN_DEFAULT,
        }
    }
}

/// A claimed outbox row with what the sender needs to decide and render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// Row id.
    pub id: i64,
    /// The event's key (e.g. `delivered:<order>`).
    pub event_key: String,
    /// Recipient.
    pub student_id: i64,
    /// Recipient's openid.
    pub openid: String,
    /// The message kind (`delivered`, `low_balance`, …).
    pub kind: String,
    /// The event's arguments.
    pub args: OutboxArgs,
    /// Pushed even in quiet hours.
    pub urgent: bool,
    /// Send attempts so far, this claim included.
    pub attempts: i64,
    /// When the row was enqueued.
    pub created_at_ms: i64,
    /// The recipient's follow state.
    pub follows: Follows,
    /// The recipient's choices.
    pub prefs: Prefs,
    /// The recipient switched this kind off.
    pub kind_disabled: bool,
    /// The claimer (fencing).
    pub locked_by: String,
    /// The claim's epoch (fencing).
    pub lease_epoch: i64,
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: i64,
    event_key: String,
    student_id: i64,
    openid: String,
    kind: String,
    args: String,
    urgent: bool,
    attempts: i64,
    created_at_ms: i64,
    follows: Option<String>,
    language: Option<String>,
    quiet_start_min: Option<i64>,
    quiet_end_min: Option<i64>,
    kind_enabled: Option<bool>,
    locked_by: Option<String>,
    lease_epoch: i64,
}

impl TryFrom<ClaimedRow> for Claimed {
    type Error = BadValue;

    fn try_from(r: ClaimedRow) -> std::result::Result<Self, BadValue> {
        let what = |c: &str| format!("{c} of wechat_outbox {}", r.id);
        let args: OutboxArgs = serde_json::from_str(&r.args)
            .map_err(|e| BadValue(format!("{} = {}: {e}", what("args"), r.args)))?;
        let follows = match &r.follows {
            None => Follows::Unknown,
            Some(f) => decoded(&what("wechat_follow.follows"), f, Follows::parse(f))?,
        };
        let defaults = Prefs::default();
        let language = match &r.language {
            None => defaults.language,
            Some(l) => decoded(&what("notify_pref.language"), l, Language::parse(l))?,
        };
        Ok(Self {
            id: r.id,
            event_key: r.event_key,
            student_id: r.student_id,
            openid: r.openid,
            kind: r.kind,
            args,
            urgent: r.urgent,
            attempts: r.attempts,
            created_at_ms: r.created_at_ms,
            follows,
            prefs: Prefs {
                language,
                quiet_start_min: r.quiet_start_min.unwrap_or(defaults.quiet_start_min),
                quiet_end_min: r.quiet_end_min.unwrap_or(defaults.quiet_end_min),
            },
            kind_disabled: r.kind_enabled == Some(false),
            locked_by: r.locked_by.unwrap_or_default(),
            lease_epoch: r.lease_epoch,
        })
    }
}

decode_row!(Claimed, ClaimedRow);

/// Enqueues the WeChat copy of an event for `student_id` in the caller's
/// transaction (the one writing the inbox message). A second enqueue of the
/// same `(event_key, student_id)` does nothing; returns whether a row was
/// written.
pub async fn enqueue_in(
    tx: &mut Tx,
    event_key: &str,
    student_id: i64,
    args: &OutboxArgs,
    urgent: bool,
    now_ms: i64,
) -> Result<bool> {
    let kind = args.message.kind();
    let json = serde_json::to_string(args).map_err(|e| Error::Corrupt(e.to_string()))?;
    let n = on_tx!(tx, |c| sqlx::query(
        "insert into wechat_outbox (event_key, student_id, kind, args, urgent, state,
                                    next_attempt_at_ms, created_at_ms, updated_at_ms)
         values ($1, $2, $3, $4, $5, 'pending', $6, $6, $6)
         on conflict (event_key, student_id) do nothing"
    )
    .bind(event_key)
    .bind(student_id)
    .bind(&kind)
    .bind(&json)
    .bind(urgent)
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected());
    Ok(n == 1)
}

const CLAIMED_SELECT: &str =
    "select o.id, o.event_key, o.student_id, s.openid, o.kind, o.args, o.urgent,
        o.attempts, o.created_at_ms, f.follows, p.language, p.quiet_start_min, p.quiet_end_min,
        k.enabled as kind_enabled, o.locked_by, o.lease_epoch
     from wechat_outbox o
     join student s on s.id = o.student_id
     left join wechat_follow f on f.student_id = o.student_id
     left join notify_pref p on p.student_id = o.student_id
     left join notify_pref_kind k on k.student_id = o.student_id and k.kind = o.kind";

/// The claimable condition: pending and due, or sending with a lapsed lease.
const DUE: &str = "(state = 'pending' and next_attempt_at_ms <= $3)
                   or (state = 'sending' and locked_until_ms < $3)";

/// Claims up to `limit` due rows for `worker` until `now_ms + lease_ms`,
/// oldest first, counting an attempt and advancing each row's epoch.
pub async fn claim(
    db: &Db,
    worker: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<Claimed>> {
    // As store::jobs::claim: SQLite's single writer makes the update of a
    // subselect atomic; PostgreSQL needs `for update skip locked` so two
    // senders never take the same row.
    let ids: Vec<(i64, i64)> = match db {
        Db::Sqlite(p) => {
            let sql = format!(
                "update wechat_outbox set state = 'sending', locked_by = $1, locked_until_ms = $2,
                        attempts = attempts + 1, lease_epoch = lease_epoch + 1, updated_at_ms = $3
                 where id in (select id from wechat_outbox where {DUE}
                              order by next_attempt_at_ms, id limit $4)
                 returning id, lease_epoch"
            );
            let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
            let ids = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(worker)
                .bind(now_ms + lease_ms)
                .bind(now_ms)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            ids
        }
        Db::Postgres(p) => {
            let sql = format!(
                "with picked as materialized (
                     select id from wechat_outbox where {DUE}
                     order by next_attempt_at_ms, id limit $4 for update skip locked)
                 update wechat_outbox set state = 'sending', locked_by = $1, locked_until_ms = $2,
                        attempts = attempts + 1, lease_epoch = lease_epoch + 1, updated_at_ms = $3
                 from picked where wechat_outbox.id = picked.id
                 returning wechat_outbox.id, wechat_outbox.lease_epoch"
            );
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(worker)
                .bind(now_ms + lease_ms)
                .bind(now_ms)
                .bind(limit)
                .fetch_all(p)
                .await?
        }
    };
    let mut claimed = Vec::with_capacity(ids.len());
    let sql = format!("{CLAIMED_SELECT} where o.id = $1 and o.lease_epoch = $2");
    for (id, epoch) in ids {
        let row: Option<Claimed> = on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(id)
            .bind(epoch)
            .fetch_optional(p)
            .await?);
        // None: re-claimed by another sender between the two statements
        // (only after our lease lapsed); that claim owns it now.
        claimed.extend(row);
    }
    claimed.sort_by_key(|c| c.id);
    Ok(claimed)
}

/// How a claimed row ends (or waits again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// WeChat accepted it with this `msgid`.
    Sent {
        /// WeChat's message id.
        msgid: i64,
    },
    /// Not sent on purpose; `errcode` when WeChat's answer decided it.
    Skipped {
        /// Why (for staff).
        reason: String,
        /// WeChat's errcode, if any.
        errcode: Option<i64>,
    },
    /// Try again at `at_ms` (backoff after an error).
    Retry {
        /// When.
        at_ms: i64,
        /// WeChat's errcode, if any.
        errcode: Option<i64>,
        /// The error.
        error: String,
    },
    /// Wait until `at_ms` without counting an attempt (quiet hours).
    Defer {
        /// When.
        at_ms: i64,
    },
    /// Given up, visibly.
    Failed {
        /// WeChat's errcode, if any.
        errcode: Option<i64>,
        /// The error.
        error: String,
    },
}

fn short(e: &str) -> String {
    e.chars().take(ERROR_CHARS_MAX).collect()
}

/// Records how a claimed row ended, fenced by its claim: fails with
/// [`Error::LeaseLost`] (changing nothing) unless the row is still
/// `sending` under `c.locked_by` and `c.lease_epoch`.
pub async fn finish(db: &Db, c: &Claimed, outcome: &Outcome, now_ms: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    finish_in(&mut tx, c, outcome, now_ms).await?;
    tx.commit().await
}

/// [`finish`] in the caller's transaction.
pub async fn finish_in(tx: &mut Tx, c: &Claimed, outcome: &Outcome, now_ms: i64) -> Result<()> {
    let (state, next_ms, errcode, error, msgid, uncount): (_, _, _, _, _, i64) = match outcome {
        Outcome::Sent { msgid } => ("sent", None, None, None, Some(*msgid), 0),
        Outcome::Skipped { reason, errcode } => {
            ("skipped", None, *errcode, Some(short(reason)), None, 0)
        }
        Outcome::Retry {
            at_ms,
            errcode,
            error,
        } => (
            "pending",
            Some(*at_ms),
            *errcode,
            Some(short(error)),
            None,
            0,
        ),
        Outcome::Defer { at_ms } => ("pending", Some(*at_ms), None, None, None, 1),
        Outcome::Failed { errcode, error } => {
            ("failed", None, *errcode, Some(short(error)), None, 0)
        }
    };
    let n = on_tx!(tx, |c2| sqlx::query(
        "update wechat_outbox set state = $4,
                next_attempt_at_ms = coalesce($5, next_attempt_at_ms),
                last_errcode = coalesce($6, last_errcode), last_error = coalesce($7, last_error),
                msgid = coalesce($8, msgid), attempts = attempts - $9,
                locked_by = null, locked_until_ms = null, updated_at_ms = $10
         where id = $1 and locked_by = $2 and lease_epoch = $3 and state = 'sending'"
    )
    .bind(c.id)
    .bind(&c.locked_by)
    .bind(c.lease_epoch)
    .bind(state)
    .bind(next_ms)
    .bind(errcode)
    .bind(error.as_deref())
    .bind(msgid)
    .bind(uncount)
    .bind(now_ms)
    .execute(c2)
    .await?
    .rows_affected());
    if n != 1 {
        return Err(Error::LeaseLost(format!(
            "wechat_outbox {} (epoch {}) is no longer held by {}",
            c.id, c.lease_epoch, c.locked_by
        )));
    }
    Ok(())
}

/// Marks `c`'s recipient as not following (WeChat answered 43004) and
/// skips the row, in one transaction, fenced like [`finish`].
pub async fn finish_not_following(db: &Db, c: &Claimed, now_ms: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    finish_in(
        &mut tx,
        c,
        &Outcome::Skipped {
            reason: "require subscribe".to_owned(),
            errcode: Some(43004),
        },
        now_ms,
    )
    .await?;
    set_follow_in(
        &mut tx,
        c.student_id,
        Follows::No,
        FollowSource::RequireSubscribe,
        now_ms,
    )
    .await?;
    tx.commit().await
}

async fn set_follow_in(
    tx: &mut Tx,
    student_id: i64,
    follows: Follows,
    source: FollowSource,
    now_ms: i64,
) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query(
        "insert into wechat_follow (student_id, follows, source, changed_at_ms) values ($1, $2, $3, $4)
         on conflict (student_id) do update
           set follows = excluded.follows, source = excluded.source, changed_at_ms = excluded.changed_at_ms"
    )
    .bind(student_id)
    .bind(follows.as_str())
    .bind(source.as_str())
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected()
    });
    Ok(())
}

/// Records the follow state of the student with `openid`; `false` when no
/// student has that openid (an official-account follower who never opened
/// our pages: nothing to record).
pub async fn set_follow_by_openid(
    db: &Db,
    openid: &str,
    follows: Follows,
    source: FollowSource,
    now_ms: i64,
) -> Result<bool> {
    let mut tx = db.begin().await?;
    let student: Option<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "select id from student where openid = $1"
    )
    .bind(openid)
    .fetch_optional(c)
    .await?);
    let Some(student_id) = student else {
        return Ok(false);
    };
    set_follow_in(&mut tx, student_id, follows, source, now_ms).await?;
    tx.commit().await?;
    Ok(true)
}

/// The follow state of a student.
pub async fn follows(db: &Db, student_id: i64) -> Result<Follows> {
    let f: Option<String> = on_db!(db, |p| sqlx::query_scalar(
        "select follows from wechat_follow where student_id = $1"
    )
    .bind(student_id)
    .fetch_optional(p)
    .await?);
    match f {
        None => Ok(Follows::Unknown),
        Some(f) => {
            Follows::parse(&f).ok_or_else(|| Error::Corrupt(format!("wechat_follow.follows = {f}")))
        }
    }
}

/// Sets a student's language and quiet hours (minutes after campus
/// midnight, 0..1440; equal: none).
pub async fn set_prefs(db: &Db, student_id: i64, prefs: &Prefs, now_ms: i64) -> Result<()> {
    let minute = 0..1440;
    if !minute.contains(&prefs.quiet_start_min) || !minute.contains(&prefs.quiet_end_min) {
        return Err(Error::Conflict(
            "quiet hours are minutes 0..1440 after midnight".to_owned(),
        ));
    }
    on_db!(db, |p| {
        sqlx::query(
        "insert into notify_pref (student_id, language, quiet_start_min, quiet_end_min, updated_at_ms)
         values ($1, $2, $3, $4, $5)
         on conflict (student_id) do update
           set language = excluded.language, quiet_start_min = excluded.quiet_start_min,
               quiet_end_min = excluded.quiet_end_min, updated_at_ms = excluded.updated_at_ms"
    )
    .bind(student_id)
    .bind(prefs.language.as_str())
    .bind(prefs.quiet_start_min)
    .bind(prefs.quiet_end_min)
    .bind(now_ms)
    .execute(p)
    .await?
    .rows_affected()
    });
    Ok(())
}

/// Switches one message kind on or off for a student.
pub async fn set_kind_enabled(db: &Db, student_id: i64, kind: &str, enabled: bool) -> Result<()> {
    on_db!(db, |p| sqlx::query(
        "insert into notify_pref_kind (student_id, kind, enabled) values ($1, $2, $3)
         on conflict (student_id, kind) do update set enabled = excluded.enabled"
    )
    .bind(student_id)
    .bind(kind)
    .bind(enabled)
    .execute(p)
    .await?
    .rows_affected());
    Ok(())
}

/// One outbox row as staff and tests see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxRow {
    /// Row id.
    pub id: i64,
    /// The event's key.
    pub event_key: String,
    /// Recipient.
    pub student_id: i64,
    /// Message kind.
    pub kind: String,
    /// State.
    pub state: OutboxState,
    /// Attempts so far.
    pub attempts: i64,
    /// Next attempt.
    pub next_attempt_at_ms: i64,
    /// WeChat's last errcode.
    pub last_errcode: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct OutboxRaw {
    id: i64,
    event_key: String,
    student_id: i64,
    kind: String,
    state: String,
    attempts: i64,
    next_attempt_at_ms: i64,
    last_errcode: Option<i64>,
}

impl TryFrom<OutboxRaw> for OutboxRow {
    type Error = BadValue;

    fn try_from(r: OutboxRaw) -> std::result::Result<Self, BadValue> {
        Ok(Self {
            state: decoded(
                &format!("wechat_outbox.state of {}", r.id),
                &r.state,
                OutboxState::parse(&r.state),
            )?,
            id: r.id,
            event_key: r.event_key,
            student_id: r.student_id,
            kind: r.kind,
            attempts: r.attempts,
            next_attempt_at_ms: r.next_attempt_at_ms,
            last_errcode: r.last_errcode,
        })
    }
}

decode_row!(OutboxRow, OutboxRaw);

/// Every outbox row of a student, oldest first (tests, support).
pub async fn rows_of(db: &Db, student_id: i64) -> Result<Vec<OutboxRow>> {
    Ok(on_db!(db, |p| sqlx::query_as(
        "select id, event_key, student_id, kind, state, attempts, next_attempt_at_ms, last_errcode
         from wechat_outbox where student_id = $1 order by id"
    )
    .bind(student_id)
    .fetch_all(p)
    .await?))
}

/// Counts for `dormwatt status` and the dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Waiting or being sent.
    pub pending: i64,
    /// Sent since `since_ms`.
    pub sent_today: i64,
    /// Given up since `since_ms`.
    pub failed_today: i64,
    /// Students known to follow the account.
    pub followers: i64,
}

/// [`Stats`], "today" meaning since `since_ms` (the campus day's start).
pub async fn stats(db: &Db, since_ms: i64) -> Result<Stats> {
    let (pending, sent_today, failed_today): (i64, i64, i64) = on_db!(db, |p| sqlx::query_as(
        "select
           (select count(*) from wechat_outbox where state in ('pending', 'sending')),
           (select count(*) from wechat_outbox where state = 'sent' and updated_at_ms >= $1),
           (select count(*) from wechat_outbox where state = 'failed' and updated_at_ms >= $1)"
    )
    .bind(since_ms)
    .fetch_one(p)
    .await?);
    let followers: i64 = on_db!(db, |p| sqlx::query_scalar(
        "select count(*) from wechat_follow where follows = 'yes'"
    )
    .fetch_one(p)
    .await?);
    Ok(Stats {
        pending,
        sent_today,
        failed_today,
        followers,
    })
}
