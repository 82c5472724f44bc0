//! Data retention (issue 16 item 4, docs/OPERATIONS.md "Data retention"):
//! what grows without bound is pruned in bounded batches; what is money,
//! energy or evidence is kept forever.
//!
//! | table | kept | why |
//! |---|---|---|
//! | `reading` | [`Policy::readings_days`], plus the first and the last reading of each meter and quantity | raw hourly values; the daily usage is filled from the meter's own frozen day-end registers (`meters::record`), never from these rows, so no day waits on them. The first `total` reading dates the meter's bill start (`students::usage_start`), the last one is the meter's latest value |
//! | `meter_event` | [`Policy::events_days`]; events about an order (`order N…`) forever | trips and offline spells for staff; the order story reads the order's events |
//! | `job` | done jobs [`Policy::jobs_days`]; delivery jobs and dead jobs forever | a delivery job is one row per order and is part of its story (queued, attempts, last error) and the exceptions queue |
//! | `session`, `staff_session` | until they expire | dead sessions are refused anyway |
//! | `bind_attempt`, `meter_lookup`, `staff_login_attempt` | [`Policy::attempts_days`] (at least the longest throttle window, 30 days) | throttle rows |
//! | `idempotency_key` | [`Policy::idempotency_days`] | a client retries within minutes |
//! | `daily_usage`, `orders`, `ledger_transfer`, `payment_notification`, `message`, `audit_log`, registry, shifts, flags | forever | money, energy and who-did-what (the ledger invariants and the audit chain are checked over all rows); the usage chart and the bill; a few hundred bytes per meter-day |
//!
//! Every delete is one statement of at most [`Policy::batch_rows`] rows
//! chosen by a bounded `WHERE` on the same table: a short transaction on
//! its own, never holding locks long on PostgreSQL nor the SQLite writer.
//! Deletes are idempotent, so two nodes pruning at once only share the
//! work. A dry run counts the same predicates and deletes nothing.

use crate::{Db, Result, on_db};
use serde::Serialize;

/// One day, ms.
const DAY_MS: i64 = 86_400_000;

/// The quantities the head-end stores as readings (`meters::record`).
pub const READING_QUANTITIES: [&str; 4] = ["remaining", "total", "voltage", "power"];

/// How long what is pruned is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Raw readings, days.
    pub readings_days: u32,
    /// Meter events not about an order, days.
    pub events_days: u32,
    /// Done jobs (other than deliveries), days.
    pub jobs_days: u32,
    /// Throttle rows (bind attempts, lookups, staff logins), days.
    pub attempts_days: u32,
    /// Idempotency keys of the JSON API, days.
    pub idempotency_days: u32,
    /// A staff session idle this long is dead (the console's idle timeout).
    pub staff_idle_ms: i64,
    /// A staff session this old is dead (the console's absolute timeout).
    pub staff_absolute_ms: i64,
    /// Most rows one delete statement removes.
    pub batch_rows: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            readings_days: 90,
            events_days: 365,
            jobs_days: 30,
            attempts_days: 90,
            idempotency_days: 7,
            staff_idle_ms: 30 * 60 * 1000,
            staff_absolute_ms: 12 * 60 * 60 * 1000,
            batch_rows: 5000,
        }
    }
}

/// Rows pruned (or, in a dry run, that would be) per table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// `reading`.
    pub readings: u64,
    /// `meter_event`.
    pub meter_events: u64,
    /// `job`.
    pub jobs: u64,
    /// `session` and `staff_session`.
    pub sessions: u64,
    /// `bind_attempt`, `meter_lookup`, `staff_login_attempt`.
    pub attempts: u64,
    /// `idempotency_key`.
    pub idempotency_keys: u64,
    /// Delete statements run (0 in a dry run).
    pub statements: u64,
}

impl Report {
    /// All rows.
    pub fn total(&self) -> u64 {
        self.readings
            + self.meter_events
            + self.jobs
            + self.sessions
            + self.attempts
            + self.idempotency_keys
    }
}

/// Readings of meter `$1`, quantity `$2`, older than `$3`, other than the
/// first and the last of that meter and quantity (primary-key range).
const OLD_READINGS: &str = "meter_id = $1 and quantity = $2 and at_ms < $3
    and at_ms > (select min(f.at_ms) from reading f where f.meter_id = $1 and f.quantity = $2)
    and at_ms < (select max(l.at_ms) from reading l where l.meter_id = $1 and l.quantity = $2)";
/// Events of meter `$1` older than `$2` that are not about an order (the
/// order story matches `order N`, `order N:…`, `order N,…`).
const OLD_EVENTS: &str = "meter_id = $1 and at_ms < $2 and detail not like 'order %'";

/// A table-wide prune: the table, its key, the predicate with the cutoff
/// as `$1` (and `$2` for a second one).
struct Sweep {
    table: &'static str,
    key: &'static str,
    predicate: &'static str,
}

const JOBS: Sweep = Sweep {
    table: "job",
    key: "id",
    predicate: "state = 'done' and queue <> 'deliver' and updated_at_ms < $1",
};
const SESSIONS: Sweep = Sweep {
    table: "session",
    key: "token_hash",
    predicate: "expires_at_ms <= $1",
};
const STAFF_SESSIONS: Sweep = Sweep {
    table: "staff_session",
    key: "token_hash",
    predicate: "(last_seen_at_ms <= $1 or created_at_ms <= $2)",
};
const ATTEMPTS: [Sweep; 3] = [
    Sweep {
        table: "bind_attempt",
        key: "id",
        predicate: "at_ms < $1",
    },
    Sweep {
        table: "meter_lookup",
        key: "id",
        predicate: "at_ms < $1",
    },
    Sweep {
        table: "staff_login_attempt",
        key: "id",
        predicate: "at_ms < $1",
    },
];
const IDEMPOTENCY: Sweep = Sweep {
    table: "idempotency_key",
    key: "scope, idem_key",
    predicate: "created_at_ms < $1",
};

fn days_ago(now_ms: i64, days: u32) -> i64 {
    now_ms.saturating_sub(i64::from(days).saturating_mul(DAY_MS))
}

/// One prune pass at `now_ms` (or, with `dry_run`, the counts of what it
/// would delete). Runs until nothing older is left; each statement is
/// bounded, so stopping it between statements (shutdown) is safe.
pub async fn prune(db: &Db, policy: &Policy, now_ms: i64, dry_run: bool) -> Result<Report> {
    let mut p = Pass {
        db,
        batch: policy.batch_rows.max(1),
        dry_run,
        statements: 0,
    };
    let mut r = Report::default();
    let meters: Vec<i64> = on_db!(db, |c| sqlx::query_scalar(
        "select id from meter order by id"
    )
    .fetch_all(c)
    .await?);
    let readings_cut = days_ago(now_ms, policy.readings_days);
    let events_cut = days_ago(now_ms, policy.events_days);
    for &m in &meters {
        for q in READING_QUANTITIES {
            r.readings += p
                .per_meter("reading", "at_ms", OLD_READINGS, m, Some(q), readings_cut)
                .await?;
        }
        r.meter_events += p
            .per_meter("meter_event", "id", OLD_EVENTS, m, None, events_cut)
            .await?;
    }
    r.jobs = p
        .sweep(&JOBS, days_ago(now_ms, policy.jobs_days), 0)
        .await?;
    r.sessions = p.sweep(&SESSIONS, now_ms, 0).await?
        + p.sweep(
            &STAFF_SESSIONS,
            now_ms.saturating_sub(policy.staff_idle_ms),
            now_ms.saturating_sub(policy.staff_absolute_ms),
        )
        .await?;
    for s in &ATTEMPTS {
        r.attempts += p
            .sweep(s, days_ago(now_ms, policy.attempts_days), 0)
            .await?;
    }
    r.idempotency_keys = p
        .sweep(&IDEMPOTENCY, days_ago(now_ms, policy.idempotency_days), 0)
        .await?;
    r.statements = p.statements;
    Ok(r)
}

struct Pass<'a> {
    db: &'a Db,
    batch: i64,
    dry_run: bool,
    statements: u64,
}

impl Pass<'_> {
    /// Rows of one meter (`$1`, and quantity `$2` when given) matching
    /// `predicate` with the cutoff bound last; deleted `batch` at a time by
    /// `key` within the meter (a primary-key or index range).
    async fn per_meter(
        &mut self,
        table: &str,
        key: &str,
        predicate: &str,
        meter: i64,
        quantity: Option<&str>,
        cutoff: i64,
    ) -> Result<u64> {
        let scope = if quantity.is_some() {
            "meter_id = $1 and quantity = $2"
        } else {
            "meter_id = $1"
        };
        let limit = if quantity.is_some() { "$4" } else { "$3" };
        let sql = if self.dry_run {
            format!("select count(*) from {table} where {predicate}")
        } else {
            format!(
                "delete from {table} where {scope} and {key} in
                 (select {key} from {table} where {predicate} order by {key} limit {limit})"
            )
        };
        let mut total = 0u64;
        loop {
            let n: u64 = on_db!(self.db, |c| {
                let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.clone()));
                let mut d = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
                q = q.bind(meter);
                d = d.bind(meter);
                if let Some(qty) = quantity {
                    q = q.bind(qty);
                    d = d.bind(qty);
                }
                if self.dry_run {
                    u64::try_from(q.bind(cutoff).fetch_one(c).await?).unwrap_or(0)
                } else {
                    d.bind(cutoff)
                        .bind(self.batch)
                        .execute(c)
                        .await?
                        .rows_affected()
                }
            });
            total += n;
            if self.dry_run {
                return Ok(total);
            }
            self.statements += 1;
            // Until a statement finds nothing: a short batch may only mean
            // another node took some of the same rows at the same time.
            if n == 0 {
                return Ok(total);
            }
        }
    }

    /// Rows of `s.table` matching its predicate, `batch` at a time.
    async fn sweep(&mut self, s: &Sweep, first: i64, second: i64) -> Result<u64> {
        let (table, key, predicate) = (s.table, s.key, s.predicate);
        let two = predicate.contains("$2");
        let limit = if two { "$3" } else { "$2" };
        let sql = if self.dry_run {
            format!("select count(*) from {table} where {predicate}")
        } else {
            format!(
                "delete from {table} where ({key}) in
                 (select {key} from {table} where {predicate} limit {limit})"
            )
        };
        let mut total = 0u64;
        loop {
            let n: u64 = on_db!(self.db, |c| {
                let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.clone()));
                let mut d = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
                q = q.bind(first);
                d = d.bind(first);
                if two {
                    q = q.bind(second);
                    d = d.bind(second);
                }
                if self.dry_run {
                    u64::try_from(q.fetch_one(c).await?).unwrap_or(0)
                } else {
                    d.bind(self.batch).execute(c).await?.rows_affected()
                }
            });
            total += n;
            if self.dry_run {
                return Ok(total);
            }
            self.statements += 1;
            // Until a statement finds nothing: a short batch may only mean
            // another node took some of the same rows at the same time.
            if n == 0 {
                return Ok(total);
            }
        }
    }
}

/// Bytes and rows of one table (its indexes included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableSize {
    /// Table name.
    pub table: String,
    /// Bytes on disk of the table and its indexes (SQLite: pages in use
    /// per `dbstat`; PostgreSQL: `pg_total_relation_size`).
    pub bytes: i64,
    /// Rows.
    pub rows: i64,
}

/// The size of every table of the schema, largest first (measurements,
/// docs/BENCHMARKS.md). Counts every row: for operators and benchmarks,
/// not for a request path.
pub async fn sizes(db: &Db) -> Result<Vec<TableSize>> {
    let sized: Vec<(String, i64)> = match db {
        Db::Sqlite(p) => {
            sqlx::query_as(
                "select coalesce(m.tbl_name, d.name), sum(d.pgsize)
                 from dbstat d left join sqlite_master m on m.name = d.name
                 where coalesce(m.tbl_name, d.name) not like 'sqlite_%'
                 group by 1",
            )
            .fetch_all(p)
            .await?
        }
        Db::Postgres(p) => {
            sqlx::query_as(
                "select c.relname::text, pg_total_relation_size(c.oid)
                 from pg_class c join pg_namespace n on n.oid = c.relnamespace
                 where n.nspname = current_schema() and c.relkind = 'r'
                   and c.relname not like '\\_sqlx%'",
            )
            .fetch_all(p)
            .await?
        }
    };
    let mut out = Vec::with_capacity(sized.len());
    for (table, bytes) in sized {
        if table.starts_with("_sqlx") {
            continue;
        }
        // Names come from the catalogue, quoted as identifiers.
        let sql = format!("select count(*) from \"{}\"", table.replace('"', "\"\""));
        let rows: i64 = on_db!(db, |c| sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(c)
            .await?);
        out.push(TableSize { table, bytes, rows });
    }
    out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.table.cmp(&b.table)));
    Ok(out)
}
