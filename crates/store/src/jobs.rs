//! The durable job table: enqueue inside the transaction that causes the
//! work (transactional outbox), claim with a lease, retry with exponential
//! backoff, dead-letter after `attempts_max`.
//!
//! A lease rather than a held row lock: a delivery can spend seconds on an
//! RS485 bus, and no transaction should stay open that long. A worker that
//! dies simply lets its lease run out; the job is claimed again.

use crate::{Db, Result, Tx, on_db, on_tx};
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

/// A claimed job.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq, Eq)]
pub struct Job {
    /// Row id.
    pub id: i64,
    /// Queue name.
    pub queue: String,
    /// Idempotency key.
    pub dedup_key: Option<String>,
    /// JSON payload.
    pub payload: String,
    /// Priority.
    pub priority: i64,
    /// `queued`, `done` or `dead`.
    pub state: String,
    /// Attempts so far, including the current one once claimed.
    pub attempts: i64,
    /// Attempts allowed.
    pub attempts_max: i64,
    /// Error of the last failed attempt.
    pub last_error: Option<String>,
    /// When it may run.
    pub run_at_ms: i64,
}

const JOB_COLUMNS: &str =
    "id, queue, dedup_key, payload, priority, state, attempts, attempts_max, last_error, run_at_ms";

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
                "update job set locked_by = $1, locked_until_ms = $2, attempts = attempts + 1, updated_at_ms = $3
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
                "update job set locked_by = $1, locked_until_ms = $2, attempts = attempts + 1, updated_at_ms = $3
                 where id in (select id from job where queue = $4 and state = 'queued' and run_at_ms <= $3
                              and (locked_until_ms is null or locked_until_ms < $3)
                              order by priority desc, id limit $5 for update skip locked)
                 returning {JOB_COLUMNS}"
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
/// and the completion commit together).
pub async fn complete(tx: &mut Tx, job_id: i64, now_ms: i64) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query(
        "update job set state = 'done', locked_by = null, locked_until_ms = null, updated_at_ms = $2 where id = $1"
    )
    .bind(job_id)
    .bind(now_ms)
    .execute(c)
    .await?.rows_affected()
    });
    Ok(())
}

/// The wait before attempt `attempts + 1`: 1 s doubling, capped at `cap_ms`.
pub fn backoff_ms(attempts: i64, cap_ms: i64) -> i64 {
    let exp = u32::try_from(attempts.clamp(0, 30)).unwrap_or(30);
    1000i64.saturating_mul(1i64 << exp).min(cap_ms)
}

/// Records a failed attempt: the job runs again after a backoff, or is
/// dead-lettered once it has used `attempts_max` attempts. Returns true if
/// it was dead-lettered.
pub async fn fail(
    db: &Db,
    job: &Job,
    error: &str,
    now_ms: i64,
    backoff_cap_ms: i64,
) -> Result<bool> {
    let dead = job.attempts >= job.attempts_max;
    let run_at = now_ms + backoff_ms(job.attempts - 1, backoff_cap_ms);
    on_db!(db, |p| {
        sqlx::query(
        "update job set state = $2, run_at_ms = $3, last_error = $4, locked_by = null, locked_until_ms = null,
                        updated_at_ms = $5
         where id = $1"
    )
    .bind(job.id)
    .bind(if dead { "dead" } else { "queued" })
    .bind(run_at)
    .bind(error)
    .bind(now_ms)
    .execute(p)
    .await?.rows_affected()
    });
    Ok(dead)
}

/// Puts a claimed job back without counting the attempt (e.g. the meter's
/// bus is busy or the worker is shutting down), to run at `run_at_ms`.
pub async fn release(db: &Db, job: &Job, run_at_ms: i64, now_ms: i64) -> Result<()> {
    on_db!(db, |p| sqlx::query(
        "update job set attempts = attempts - 1, run_at_ms = $2, locked_by = null,
                        locked_until_ms = null, updated_at_ms = $3 where id = $1"
    )
    .bind(job.id)
    .bind(run_at_ms)
    .bind(now_ms)
    .execute(p)
    .await?
    .rows_affected());
    Ok(())
}

/// Puts a dead job back in the queue (staff "retry").
pub async fn revive(db: &Db, job_id: i64, now_ms: i64) -> Result<bool> {
    let n = on_db!(db, |p| sqlx::query(
        "update job set state = 'queued', attempts = 0, run_at_ms = $2, updated_at_ms = $2
         where id = $1 and state = 'dead'"
    )
    .bind(job_id)
    .bind(now_ms)
    .execute(p)
    .await?
    .rows_affected());
    Ok(n == 1)
}

/// Number of jobs per (queue, state), for metrics and status.
pub async fn depths(db: &Db) -> Result<Vec<(String, String, i64)>> {
    Ok(on_db!(db, |p| {
        sqlx::query_as(
        "select queue, state, count(*) from job where state <> 'done' group by queue, state order by queue, state"
    )
    .fetch_all(p)
    .await?
    }))
}
