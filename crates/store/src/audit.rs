//! The audit log of staff actions (issue 13 item 2): who, what, when, from
//! where, before and after.
//!
//! - **Append-only**: this module has no function that changes or removes
//!   a row, and the database refuses it too (migration 0008: a trigger
//!   raising on UPDATE, DELETE and TRUNCATE on PostgreSQL, `RAISE(ABORT)`
//!   triggers on SQLite).
//! - **Tamper-evident**: row `seq` carries `hash = SHA-256(prev_hash ‖ "\n"
//!   ‖ canonical content)`, where `prev_hash` is row `seq − 1`'s hash (64
//!   zeros for the first). Someone who edits a row behind the triggers'
//!   back breaks the chain at that row; [`verify`] (run by `dormwatt
//!   check-ledger`) names the first broken one.
//! - **One chain under concurrency**: an append takes a transaction-scoped
//!   advisory lock on PostgreSQL (SQLite's `BEGIN IMMEDIATE` already
//!   serialises writers), reads the last row after the lock and inserts
//!   `seq + 1`; `seq` is the primary key, so two appends can never both
//!   claim a place.

use crate::{Db, Result, Tx, on_db, on_tx};
use sha2::{Digest, Sha256};

/// `prev_hash` of the first row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The advisory lock key that serialises appends on PostgreSQL ("dwaudit\0").
const APPEND_LOCK_KEY: i64 = 0x6477_6175_6469_7400;
/// Rows [`verify`] reads per query (it never holds the whole log).
const VERIFY_BATCH_ROWS: i64 = 1_000;
/// Most rows one [`search`] returns.
pub const SEARCH_ROWS_MAX: i64 = 10_000;
/// Longest staff note an action records, in characters.
pub const NOTE_CHARS_MAX: usize = 500;

/// Who acts, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The operator's row id; `None` for the command line and for a login
    /// attempt under an unknown name.
    pub operator_id: Option<i64>,
    /// The operator's name as it was (or the name tried at a login).
    pub name: String,
    /// The client's IP address (`local` for the command line).
    pub client_ip: String,
}

impl Actor {
    /// The `dormwatt` command line on the server itself.
    pub fn command_line() -> Self {
        Actor {
            operator_id: None,
            name: "(command line)".to_owned(),
            client_ip: "local".to_owned(),
        }
    }
}

/// One staff action to record.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// Who.
    pub actor: &'a Actor,
    /// What, a stable name (`login_ok`, `operator_created`, `forbidden`…).
    pub action: &'a str,
    /// What it was done to (`operator:wang`, a path), or empty.
    pub subject: &'a str,
    /// The state before, when the action changed one.
    pub before: Option<serde_json::Value>,
    /// The state after, or the action's details.
    pub after: Option<serde_json::Value>,
}

/// A stored audit row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct AuditRow {
    /// Place in the chain, from 1.
    pub seq: i64,
    /// When (unix ms).
    pub at_ms: i64,
    /// The operator's id, if an operator acted.
    pub operator_id: Option<i64>,
    /// The operator's name.
    pub operator_name: String,
    /// What.
    pub action: String,
    /// From where.
    pub client_ip: String,
    /// To what.
    pub subject: String,
    /// State before (JSON text).
    pub before_json: Option<String>,
    /// State after (JSON text).
    pub after_json: Option<String>,
    /// The previous row's hash.
    pub prev_hash: String,
    /// This row's hash.
    pub hash: String,
}

impl AuditRow {
    /// The hash this row must carry, from its content and `prev_hash`.
    pub fn expected_hash(&self) -> String {
        chain_hash(
            &self.prev_hash,
            &canonical(
                self.seq,
                self.at_ms,
                self.operator_id,
                &self.operator_name,
                &self.action,
                &self.client_ip,
                &self.subject,
                self.before_json.as_deref(),
                self.after_json.as_deref(),
            ),
        )
    }
}

/// The canonical content of a row: a JSON array of its fields in a fixed
/// order (the JSON texts of before/after as stored), so no field can be
/// moved into another without changing the hash.
#[expect(clippy::too_many_arguments, reason = "one argument per hashed column")]
fn canonical(
    seq: i64,
    at_ms: i64,
    operator_id: Option<i64>,
    operator_name: &str,
    action: &str,
    client_ip: &str,
    subject: &str,
    before_json: Option<&str>,
    after_json: Option<&str>,
) -> String {
    serde_json::json!([
        seq,
        at_ms,
        operator_id,
        operator_name,
        action,
        client_ip,
        subject,
        before_json,
        after_json
    ])
    .to_string()
}

fn chain_hash(prev_hash: &str, content: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(content.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Appends `entry` in its own transaction.
pub async fn append(db: &Db, entry: &Entry<'_>, now_ms: i64) -> Result<AuditRow> {
    let mut tx = db.begin().await?;
    let row = append_tx(&mut tx, entry, now_ms).await?;
    tx.commit().await?;
    Ok(row)
}

/// Appends `entry` inside the caller's transaction, so an action and its
/// audit row commit (or roll back) together. On PostgreSQL the append lock
/// is held until that transaction ends.
pub async fn append_tx(tx: &mut Tx, entry: &Entry<'_>, now_ms: i64) -> Result<AuditRow> {
    if let Tx::Postgres(t) = tx {
        sqlx::query("select pg_advisory_xact_lock($1)")
            .bind(APPEND_LOCK_KEY)
            .execute(&mut **t)
            .await?;
    }
    // Read after the lock: at READ COMMITTED this statement sees what the
    // previous holder committed.
    let last: Option<(i64, String)> = on_tx!(tx, |c| sqlx::query_as(
        "select seq, hash from audit_log order by seq desc limit 1"
    )
    .fetch_optional(c)
    .await?);
    let (prev_seq, prev_hash) = last.unwrap_or((0, GENESIS_HASH.to_owned()));
    let before_json = entry.before.as_ref().map(ToString::to_string);
    let after_json = entry.after.as_ref().map(ToString::to_string);
    let mut row = AuditRow {
        seq: prev_seq + 1,
        at_ms: now_ms,
        operator_id: entry.actor.operator_id,
        operator_name: entry.actor.name.clone(),
        action: entry.action.to_owned(),
        client_ip: entry.actor.client_ip.clone(),
        subject: entry.subject.to_owned(),
        before_json,
        after_json,
        prev_hash,
        hash: String::new(),
    };
    row.hash = row.expected_hash();
    on_tx!(tx, |c| sqlx::query(
        "insert into audit_log (seq, at_ms, operator_id, operator_name, action, client_ip, subject,
                                before_json, after_json, prev_hash, hash)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    )
    .bind(row.seq)
    .bind(row.at_ms)
    .bind(row.operator_id)
    .bind(&row.operator_name)
    .bind(&row.action)
    .bind(&row.client_ip)
    .bind(&row.subject)
    .bind(&row.before_json)
    .bind(&row.after_json)
    .bind(&row.prev_hash)
    .bind(&row.hash)
    .execute(c)
    .await?
    .rows_affected());
    Ok(row)
}

/// Appends `entry` in `tx` and commits: the change and its audit row
/// commit together or not at all.
pub(crate) async fn append_and_commit(mut tx: Tx, entry: &Entry<'_>, now_ms: i64) -> Result<()> {
    append_tx(&mut tx, entry, now_ms).await?;
    tx.commit().await
}

/// A staff note as an action records it (a resolution, a move-out):
/// trimmed, `missing` when empty, `too_long` over [`NOTE_CHARS_MAX`].
pub(crate) fn checked_note<E>(note: &str, missing: E, too_long: E) -> std::result::Result<&str, E> {
    let note = note.trim();
    if note.is_empty() {
        return Err(missing);
    }
    if note.chars().count() > NOTE_CHARS_MAX {
        return Err(too_long);
    }
    Ok(note)
}

/// What to look for in the log. Empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Operator name, exactly.
    pub operator: Option<String>,
    /// Action, exactly.
    pub action: Option<String>,
    /// From this instant (unix ms, inclusive).
    pub from_ms: Option<i64>,
    /// Before this instant (unix ms, exclusive).
    pub until_ms: Option<i64>,
    /// Most rows (capped at [`SEARCH_ROWS_MAX`]).
    pub limit: i64,
}

/// Rows matching `f`, newest first.
pub async fn search(db: &Db, f: &Filter) -> Result<Vec<AuditRow>> {
    let limit = f.limit.clamp(1, SEARCH_ROWS_MAX);
    Ok(on_db!(db, |p| sqlx::query_as(
        "select seq, at_ms, operator_id, operator_name, action, client_ip, subject,
                before_json, after_json, prev_hash, hash
         from audit_log
         where ($1 is null or operator_name = $1)
           and ($2 is null or action = $2)
           and ($3 is null or at_ms >= $3)
           and ($4 is null or at_ms < $4)
         order by seq desc
         limit $5"
    )
    .bind(f.operator.as_deref())
    .bind(f.action.as_deref())
    .bind(f.from_ms)
    .bind(f.until_ms)
    .bind(limit)
    .fetch_all(p)
    .await?))
}

/// The distinct actions recorded so far (for the search form).
pub async fn actions(db: &Db) -> Result<Vec<String>> {
    Ok(on_db!(db, |p| sqlx::query_scalar(
        "select distinct action from audit_log order by action"
    )
    .fetch_all(p)
    .await?))
}

/// The first row where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Broken {
    /// The row's `seq` (or the `seq` expected where one is missing).
    pub seq: i64,
    /// What is wrong.
    pub reason: String,
}

/// The result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainCheck {
    /// Rows read.
    pub rows: i64,
    /// The first broken row, if any.
    pub broken: Option<Broken>,
}

/// Walks the whole chain in `seq` order, in batches: the sequence must
/// run 1, 2, 3…, each `prev_hash` must be the previous row's hash and each
/// hash must match the row's content.
pub async fn verify(db: &Db) -> Result<ChainCheck> {
    let mut rows = 0;
    let mut expected_seq = 1;
    let mut prev_hash = GENESIS_HASH.to_owned();
    loop {
        let batch: Vec<AuditRow> = on_db!(db, |p| sqlx::query_as(
            "select seq, at_ms, operator_id, operator_name, action, client_ip, subject,
                    before_json, after_json, prev_hash, hash
             from audit_log where seq >= $1 order by seq limit $2"
        )
        .bind(expected_seq)
        .bind(VERIFY_BATCH_ROWS)
        .fetch_all(p)
        .await?);
        if batch.is_empty() {
            return Ok(ChainCheck { rows, broken: None });
        }
        for r in batch {
            let broken = |reason: String| ChainCheck {
                rows,
                broken: Some(Broken {
                    seq: r.seq.min(expected_seq),
                    reason,
                }),
            };
            if r.seq != expected_seq {
                return Ok(broken(format!(
                    "row {expected_seq} is missing (next is {})",
                    r.seq
                )));
            }
            if r.prev_hash != prev_hash {
                return Ok(broken(
                    "its prev_hash is not the previous row's hash".to_owned(),
                ));
            }
            if r.hash != r.expected_hash() {
                return Ok(broken(
                    "its content does not match its hash (edited after it was written)".to_owned(),
                ));
            }
            rows += 1;
            expected_seq += 1;
            prev_hash = r.hash;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_every_field_and_the_previous_hash() {
        let row = AuditRow {
            seq: 1,
            at_ms: 10,
            operator_id: Some(3),
            operator_name: "wang".to_owned(),
            action: "login_ok".to_owned(),
            client_ip: "10.0.0.1".to_owned(),
            subject: String::new(),
            before_json: None,
            after_json: Some("{}".to_owned()),
            prev_hash: GENESIS_HASH.to_owned(),
            hash: String::new(),
        };
        let h = row.expected_hash();
        assert_eq!(h.len(), 64);
        let mut other = row.clone();
        other.client_ip = "10.0.0.2".to_owned();
        assert_ne!(other.expected_hash(), h);
        let mut other = row.clone();
        other.prev_hash = "1".repeat(64);
        assert_ne!(other.expected_hash(), h);
        // Moving text between fields changes the hash too.
        let mut a = row.clone();
        a.operator_name = "wa".to_owned();
        a.action = "nglogin_ok".to_owned();
        assert_ne!(a.expected_hash(), h);
    }
}
