//! The durable job table: enqueue inside the transaction that causes the
//! work (transactional outbox), claim with a lease, retry with exponential
//! backoff, dead-letter after `attempts_max`.
//!
//! A lease rather than a held row lock: a delivery can spend seconds on an
//! RS485 bus, and no transaction should stay open that long. A worker that
//! dies simply lets its lease run out; the job is claimed again.
//!
//! Fencing: every claim increments the job's `lease_epoch`, and every later
//! change a worker makes to the job ([`complete`], [`fail`], [`release`],
//! [`wait`], [`heartbeat`]) names the worker and the epoch it claimed. Once
//! the lease ran out and another worker claimed the job, the old worker's
//! changes match no row and fail with [`Error::LeaseLost`], so it can
//! neither complete nor fail work it no longer owns. Long work renews its
//! lease with [`heartbeat`], so leases can be short.

use crate::row::{BadValue, decode_row, decoded};
use crate::{Db, Error, Result, Tx, on_db, on_tx};
use domain::JobId;
use serde::Serialize;

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// Queue name, e.g. `deliver`, `expire`, `notify`.
    pub queue: &'a str,
    /// Idempotency key: enqueuing a second job with the same key does nothing.
    pub dedup_key: Option<&'a str>,
    /// JSON payload.
    pub payload: &'a str,
    /// Higher runs first.
    pub priority: i64,
    /// Earliest time to run.
    pub run_at_ms: i64,
    /// Attempts before the job is dead-lettered.
    pub attempts_max: i64,
}

/// Where a job is in its life, as the `job.state` column holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting to run, or running under a lease.
    Queued,
    /// Finished.
    Done,
    /// Dead-lettered: out of attempts or refused for good.
    Dead,
}

impl JobState {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Done => "done",
            Self::Dead => "dead",
        }
    }

    /// The state of a stored name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Queued, Self::Done, Self::Dead]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A claimed job.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Job {
    /// Row id.
    pub id: JobId,
    /// Queue name.
    pub queue: String,
    /// Idempotency key.
    pub dedup_key: Option<String>,
    /// JSON payload.
    pub payload: String,
    /// Priority.
    pub priority: i64,
    /// Queued, done or dead.
    pub state: JobState,
    /// Attempts so far, including the current one once claimed.
    pub attempts: i64,
    /// Attempts allowed.
    pub attempts_max: i64,
    /// Error of the last failed attempt.
    pub last_error: Option<String>,
    /// When it may run.
    pub run_at_ms: i64,
    /// The worker holding the lease, if any.
    pub locked_by: Option<String>,
    /// The lease epoch of the current (or last) claim: the fencing token.
    pub lease_epoch: i64,
}

/// [`Job`] as stored.
#[derive(sqlx::FromRow)]
struct JobRow {
    id: i64,
    queue: String,
    dedup_key: Option<String>,
    payload: String,
    priority: i64,
    state: String,
    attempts: i64,
    attempts_max: i64,
    last_error: Option<String>,
    run_at_ms: i64,
    locked_by: Option<String>,
    lease_epoch: i64,
}

impl TryFrom<JobRow> for Job {
    type Error = BadValue;

    fn try_from(r: JobRow) -> std::result::Result<Self, BadValue> {
        Ok(Self {
            state: decoded(
                &format!("job.state of job {}", r.id),
                &r.state,
                JobState::parse(&r.state),
            )?,
            id: JobId::new(r.id),
            queue: r.queue,
            dedup_key: r.dedup_key,
            payload: r.payload,
            priority: r.priority,
            attempts: r.attempts,
            attempts_max: r.attempts_max,
            last_error: r.last_error,
            run_at_ms: r.run_at_ms,
            locked_by: r.locked_by,
            lease_epoch: r.lease_epoch,
        })
    }
}

decode_row!(Job, JobRow);

const JOB_COLUMNS: &str =
    "id, queue, dedup_key, payload, priority, state, attempts, attempts_max, last_error, run_at_ms,
    locked_by, lease_epoch";

const JOB_COLUMNS_QUALIFIED: &str =
    "job.id, job.queue, job.dedup_key, job.payload, job.priority, job.state,
    job.attempts, job.attempts_max, job.last_error, job.run_at_ms, job.locked_by, job.lease_epoch";

/// The fencing condition of every change a lease holder makes: `$1` job id,
/// `$2` worker, `$3` epoch.
const HELD: &str = "id = $1 and locked_by = $2 and lease_epoch = $3 and state = 'queued'";

fn lost(job: &Job) -> Error {
    Error::LeaseLost(format!(
        "job {} (epoch {}) is no longer held by {}",
        job.id,
        job.lease_epoch,
        job.locked_by.as_deref().unwrap_or("?")
    ))
}

/// Enqueues a job in the caller's transaction. Returns false when a job with
/// the same `dedup_key` already exists (in any state).
pub async fn enqueue(tx: &mut Tx, job: &NewJob<'_>, now_ms: i64) -> Result<bool> {
    let n = on_tx!(tx, |c| sqlx::query(
        "insert into job (queue, dedup_key, payload, priority, state, run_at_ms, attempts_max,
                          created_at_ms, updated_at_ms)
         values ($1, $2, $3, $4, 'queued', $5, $6, $7, $7)
         on conflict (dedup_key) do nothing"
    )
    .bind(job.queue)
    .bind(job.dedup_key)
    .bind(job.payload)
    .bind(job.priority)
    .bind(job.run_at_ms)
    .bind(job.attempts_max)
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected());
    Ok(n == 1)
}

/// Claims up to `limit` ready jobs of `queue` for `worker` until
/// `now_ms + lease_ms`, highest priority first, counting an attempt.
pub async fn claim(
    db: &Db,
    queue: &str,
    worker: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<Job>> {
    // SQLite has a single writer, so the update-of-a-subselect is atomic there;
    // PostgreSQL needs `for update skip locked` so two workers never take the same row.
    match db {
        Db::Sqlite(p) => {
            let sql = format!(
                "update job set locked_by = $1, locked_until_ms = $2, attempts = attempts + 1, updated_at_ms = $3,
                                lease_epoch = lease_epoch + 1
                 where id in (select id from job where queue = $4 and state = 'queued' and run_at_ms <= $3
                              and (locked_until_ms is null or locked_until_ms < $3)
                              order by priority desc, id limit $5)
                 returning {JOB_COLUMNS}"
            );
            let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
            let jobs = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(worker)
                .bind(now_ms + lease_ms)
                .bind(now_ms)
                .bind(queue)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(jobs)
        }
        Db::Postgres(p) => {
            let sql = format!(
                "with picked as materialized (
                     select id from job where queue = $4 and state = 'queued' and run_at_ms <= $3
                       and (locked_until_ms is null or locked_until_ms < $3)
                     order by priority desc, id limit $5 for update skip locked)
                 update job set locked_by = $1, locked_until_ms = $2, attempts = attempts + 1, updated_at_ms = $3,
                                lease_epoch = lease_epoch + 1
                 from picked where job.id = picked.id
                 returning {JOB_COLUMNS_QUALIFIED}"
            );
            Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(worker)
                .bind(now_ms + lease_ms)
                .bind(now_ms)
                .bind(queue)
                .bind(limit)
                .fetch_all(p)
                .await?)
        }
    }
}

/// Marks a claimed job done (in the caller's transaction, so the effect
/// and the completion commit together). Fenced: fails with
/// [`Error::LeaseLost`] unless `job` still holds its lease, so the caller's
/// whole transaction rolls back.
pub async fn complete(tx: &mut Tx, job: &Job, now_ms: i64) -> Result<()> {
    let sql = format!(
        "update job set state = 'done', locked_by = null, locked_until_ms = null, updated_at_ms = $4
         where {HELD}"
    );
    let n = on_tx!(tx, |c| sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
        .bind(job.id.get())
        .bind(job.locked_by.as_deref())
        .bind(job.lease_epoch)
        .bind(now_ms)
        .execute(c)
        .await?
        .rows_affected());
    if n != 1 {
        return Err(lost(job));
    }
    Ok(())
}

/// Dead-letters a claimed job for staff, with the reason, in the caller's
/// transaction. Fenced like [`complete`].
pub async fn bury_in(tx: &mut Tx, job: &Job, error: &str, now_ms: i64) -> Result<()> {
    let sql = format!(
        "update job set state = 'dead', last_error = $4, locked_by = null, locked_until_ms = null,
                        updated_at_ms = $5
         where {HELD}"
    );
    let n = on_tx!(tx, |c| sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
        .bind(job.id.get())
        .bind(job.locked_by.as_deref())
        .bind(job.lease_epoch)
        .bind(error)
        .bind(now_ms)
        .execute(c)
        .await?
        .rows_affected());
    if n != 1 {
        return Err(lost(job));
    }
    Ok(())
}

/// Renews a held lease until `now_ms + lease_ms` (work that runs longer than
/// a lease calls this between steps). Fails with [`Error::LeaseLost`] when
/// another worker took the job: the caller must stop at once.
pub async fn heartbeat(db: &Db, job: &Job, now_ms: i64, lease_ms: i64) -> Result<()> {
    let sql = format!("update job set locked_until_ms = $4, updated_at_ms = $5 where {HELD}");
    let n = on_db!(db, |p| sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
        .bind(job.id.get())
        .bind(job.locked_by.as_deref())
        .bind(job.lease_epoch)
        .bind(now_ms + lease_ms)
        .bind(now_ms)
        .execute(p)
        .await?
        .rows_affected());
    if n != 1 {
        return Err(lost(job));
    }
    Ok(())
}

/// The wait before attempt `attempts + 1`: 1 s doubling, capped at `cap_ms`.
pub fn backoff_ms(attempts: i64, cap_ms: i64) -> i64 {
    let exp = u32::try_from(attempts.clamp(0, 30)).unwrap_or(30);
    1000i64.saturating_mul(1i64 << exp).min(cap_ms)
}

/// Records a failed attempt: the job runs again after a backoff, or is
/// dead-lettered once it has used `attempts_max` attempts. Returns true if
/// it was dead-lettered. Fenced like [`complete`].
pub async fn fail(
    db: &Db,
    job: &Job,
    error: &str,
    now_ms: i64,
    backoff_cap_ms: i64,
) -> Result<bool> {
    let dead = job.attempts >= job.attempts_max;
    let run_at = now_ms + backoff_ms(job.attempts - 1, backoff_cap_ms);
    let sql = format!(
        "update job set state = $4, run_at_ms = $5, last_error = $6, locked_by = null, locked_until_ms = null,
                        updated_at_ms = $7
         where {HELD}"
    );
    let n = on_db!(db, |p| sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
        .bind(job.id.get())
        .bind(job.locked_by.as_deref())
        .bind(job.lease_epoch)
        .bind(if dead { "dead" } else { "queued" })
        .bind(run_at)
        .bind(error)
        .bind(now_ms)
        .execute(p)
        .await?
        .rows_affected());
    if n != 1 {
        return Err(lost(job));
    }
    Ok(dead)
}

/// Puts a claimed job back without counting the attempt (e.g. the worker is
/// shutting down), to run at `run_at_ms`. Fenced like [`complete`].
pub async fn release(db: &Db, job: &Job, run_at_ms: i64, now_ms: i64) -> Result<()> {
    wait_or_release(db, job, run_at_ms, None, now_ms).await
}

/// Puts a claimed job back without counting the attempt because it must
/// wait for other work (a purchase of the same meter ahead of it), with the
/// reason for staff. Whoever finishes the work it waits for wakes it with
/// [`wake`]; `run_at_ms` is only the fallback. Fenced like [`complete`].
pub async fn wait(db: &Db, job: &Job, reason: &str, run_at_ms: i64, now_ms: i64) -> Result<()> {
    wait_or_release(db, job, run_at_ms, Some(reason), now_ms).await
}

async fn wait_or_release(
    db: &Db,
    job: &Job,
    run_at_ms: i64,
    reason: Option<&str>,
    now_ms: i64,
) -> Result<()> {
    let sql = format!(
        "update job set attempts = attempts - 1, run_at_ms = $4, locked_by = null, locked_until_ms = null,
                        last_error = coalesce($5, last_error), updated_at_ms = $6
         where {HELD}"
    );
    let n = on_db!(db, |p| sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
        .bind(job.id.get())
        .bind(job.locked_by.as_deref())
        .bind(job.lease_epoch)
        .bind(run_at_ms)
        .bind(reason)
        .bind(now_ms)
        .execute(p)
        .await?
        .rows_affected());
    if n != 1 {
        return Err(lost(job));
    }
    Ok(())
}

/// Makes queued jobs with these dedup keys due now (in the caller's
/// transaction): the work they waited for is finished. Returns how many.
pub async fn wake(tx: &mut Tx, dedup_keys: &[String], now_ms: i64) -> Result<u64> {
    let mut n = 0;
    for key in dedup_keys {
        n += on_tx!(tx, |c| sqlx::query(
            "update job set run_at_ms = $2, updated_at_ms = $2
             where dedup_key = $1 and state = 'queued' and run_at_ms > $2"
        )
        .bind(key)
        .bind(now_ms)
        .execute(c)
        .await?
        .rows_affected());
    }
    Ok(n)
}

/// Releases every lease held by `worker` (a process shutting down) so the
/// jobs can be claimed at once; the attempt is not counted. Returns how many.
pub async fn release_worker(db: &Db, worker: &str, now_ms: i64) -> Result<u64> {
    Ok(on_db!(db, |p| sqlx::query(
        "update job set attempts = case when attempts > 0 then attempts - 1 else 0 end,
                        locked_by = null, locked_until_ms = null, updated_at_ms = $2
         where locked_by = $1 and state = 'queued'"
    )
    .bind(worker)
    .bind(now_ms)
    .execute(p)
    .await?
    .rows_affected()))
}

/// A restarted process takes back at once the leases of its own earlier,
/// dead incarnations: worker names are `<node>#<incarnation>`, and the
/// caller proves that no other live process is `<node>` (it holds the
/// node's lock) before calling this. Leases of `current` are kept.
/// Returns how many were released.
pub async fn release_incarnations(db: &Db, node: &str, current: &str, now_ms: i64) -> Result<u64> {
    let prefix = format!("{node}#");
    Ok(on_db!(db, |p| sqlx::query(
        "update job set attempts = case when attempts > 0 then attempts - 1 else 0 end,
                        locked_by = null, locked_until_ms = null, updated_at_ms = $3
         where state = 'queued' and locked_by <> $2 and substr(locked_by, 1, length($1)) = $1"
    )
    .bind(&prefix)
    .bind(current)
    .bind(now_ms)
    .execute(p)
    .await?
    .rows_affected()))
}

/// Puts a dead job back in the queue (staff "retry").
pub async fn revive(db: &Db, job_id: JobId, now_ms: i64) -> Result<bool> {
    let n = on_db!(db, |p| sqlx::query(
        "update job set state = 'queued', attempts = 0, run_at_ms = $2, updated_at_ms = $2
         where id = $1 and state = 'dead'"
    )
    .bind(job_id.get())
    .bind(now_ms)
    .execute(p)
    .await?
    .rows_affected());
    Ok(n == 1)
}

/// Number of queued jobs whose lease someone holds (status, tests).
pub async fn held(db: &Db) -> Result<i64> {
    Ok(on_db!(db, |p| sqlx::query_scalar(
        "select count(*) from job where state = 'queued' and locked_by is not null"
    )
    .fetch_one(p)
    .await?))
}

/// Number of jobs per (queue, state), for metrics and status.
pub async fn depths(db: &Db) -> Result<Vec<(String, JobState, i64)>> {
    let rows: Vec<(String, String, i64)> = on_db!(db, |p| {
        sqlx::query_as(
        "select queue, state, count(*) from job where state <> 'done' group by queue, state order by queue, state"
    )
    .fetch_all(p)
    .await?
    });
    rows.into_iter()
        .map(|(queue, state, n)| {
            let parsed = decoded(
                &format!("job.state of queue {queue}"),
                &state,
                JobState::parse(&state),
            )?;
            Ok((queue, parsed, n))
        })
        .collect()
}
