//! Idempotency keys of the JSON API (`Idempotency-Key` header): a client
//! that retries a request with the same key gets the first answer again
//! instead of a second effect (a cashier's retried POST must not sell twice).
//!
//! The key row is written in the same transaction as the effect and carries
//! its answer, so it is race-free at READ COMMITTED without locks of our own:
//!
//! 1. `begin` → [`claim`] inserts `(scope, key)` with `on conflict do
//!    nothing`. A concurrent twin's insert waits on the unique key until the
//!    first transaction ends (PostgreSQL) or cannot start before it ends
//!    (SQLite's `BEGIN IMMEDIATE`); then it finds the committed row.
//! 2. [`Claim::New`]: the caller does the work in the same transaction and
//!    calls [`complete`] with the answer before `commit`.
//! 3. [`Claim::Replay`]: the stored answer, to be sent again unchanged;
//!    [`Claim::Mismatch`]: the key was used for another request.
//!
//! A request that fails rolls its transaction back, key row included: a
//! refused request changed nothing, so its retry is judged afresh.

use crate::{Error, Result, Tx, on_tx};

/// Most characters of a key (clients send UUIDs: 36).
pub const KEY_CHARS_MAX: usize = 128;

/// A client's idempotency key: 1 to [`KEY_CHARS_MAX`] visible ASCII
/// characters (no spaces, no control characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The header was present but empty.
    #[error("Idempotency-Key must not be empty")]
    Empty,
    /// Longer than [`KEY_CHARS_MAX`].
    #[error("Idempotency-Key must be at most {KEY_CHARS_MAX} characters")]
    TooLong,
    /// Contains something other than visible ASCII.
    #[error("Idempotency-Key must be visible ASCII characters (e.g. a UUID)")]
    BadCharacter,
}

impl IdempotencyKey {
    /// Checks a key as received.
    pub fn parse(raw: &str) -> Result<Self, KeyError> {
        if raw.is_empty() {
            return Err(KeyError::Empty);
        }
        if raw.len() > KEY_CHARS_MAX {
            return Err(KeyError::TooLong);
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(KeyError::BadCharacter);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An answer stored with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status code.
    pub status_code: u16,
    /// Response body (JSON text).
    pub body: String,
}

/// What [`claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is new and now held by this transaction: do the work, then
    /// [`complete`] and commit.
    New,
    /// The same request was answered before: send this again.
    Replay(StoredResponse),
    /// The key was used before for a different request.
    Mismatch,
}

/// A claimed row not yet completed has this status; no committed row has
/// it unless a caller committed without [`complete`] (a bug).
const PENDING_STATUS: i64 = 0;

/// Claims `key` in `scope` for the request whose canonical form hashes to
/// `request_sha256`, inside `tx` (see the module docs for the protocol).
pub async fn claim(
    tx: &mut Tx,
    scope: &str,
    key: &IdempotencyKey,
    request_sha256: &str,
    now_ms: i64,
) -> Result<Claim> {
    let inserted = on_tx!(tx, |c| {
        sqlx::query(
        "insert into idempotency_key (scope, idem_key, request_sha256, status_code, response_body, created_at_ms)
         values ($1, $2, $3, $4, '', $5)
         on conflict (scope, idem_key) do nothing"
    )
    .bind(scope)
    .bind(key.as_str())
    .bind(request_sha256)
    .bind(PENDING_STATUS)
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected()
    });
    if inserted == 1 {
        return Ok(Claim::New);
    }
    // The row exists and is committed: the insert above waited for its
    // transaction (READ COMMITTED shows it to this new statement).
    let row: Option<(String, i64, String)> = on_tx!(tx, |c| sqlx::query_as(
        "select request_sha256, cast(status_code as bigint), response_body from idempotency_key
         where scope = $1 and idem_key = $2"
    )
    .bind(scope)
    .bind(key.as_str())
    .fetch_optional(c)
    .await?);
    let Some((stored_sha256, status, body)) = row else {
        return Err(Error::Corrupt(format!(
            "idempotency key in {scope} neither inserted nor found"
        )));
    };
    if stored_sha256 != request_sha256 {
        return Ok(Claim::Mismatch);
    }
    let status_code = u16::try_from(status)
        .ok()
        .filter(|s| i64::from(*s) != PENDING_STATUS)
        .ok_or_else(|| {
            Error::Corrupt(format!(
                "idempotency key in {scope} committed without an answer"
            ))
        })?;
    Ok(Claim::Replay(StoredResponse { status_code, body }))
}

/// Stores the answer of the request that claimed `key` ([`Claim::New`]) in
/// the same transaction, before it commits.
pub async fn complete(
    tx: &mut Tx,
    scope: &str,
    key: &IdempotencyKey,
    response: &StoredResponse,
) -> Result<()> {
    let n = on_tx!(tx, |c| sqlx::query(
        "update idempotency_key set status_code = $3, response_body = $4
         where scope = $1 and idem_key = $2 and status_code = $5"
    )
    .bind(scope)
    .bind(key.as_str())
    .bind(i64::from(response.status_code))
    .bind(&response.body)
    .bind(PENDING_STATUS)
    .execute(c)
    .await?
    .rows_affected());
    if n == 1 {
        Ok(())
    } else {
        Err(Error::Conflict(format!(
            "idempotency key in {scope} was not claimed by this transaction"
        )))
    }
}

/// Deletes keys created before `cutoff_ms` (retention); returns how many.
pub async fn purge_before(db: &crate::Db, cutoff_ms: i64) -> Result<u64> {
    Ok(crate::on_db!(db, |p| sqlx::query(
        "delete from idempotency_key where created_at_ms < $1"
    )
    .bind(cutoff_ms)
    .execute(p)
    .await?
    .rows_affected()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert_eq!(IdempotencyKey::parse(""), Err(KeyError::Empty));
        assert_eq!(
            IdempotencyKey::parse(&"k".repeat(KEY_CHARS_MAX + 1)),
            Err(KeyError::TooLong)
        );
        assert_eq!(IdempotencyKey::parse("a b"), Err(KeyError::BadCharacter));
        assert_eq!(IdempotencyKey::parse("收银"), Err(KeyError::BadCharacter));
        let k = IdempotencyKey::parse("0f8fad5b-d9cb-469f-a165-70867728950e").expect("uuid");
        assert_eq!(k.as_str().len(), 36);
    }

    #[tokio::test]
    async fn claim_complete_replay_and_mismatch() {
        for db in crate::testing::all().await.expect("dbs") {
            let key = IdempotencyKey::parse("k-1").expect("key");
            let answer = StoredResponse {
                status_code: 201,
                body: "{\"ok\":true}".to_owned(),
            };
            let mut tx = db.begin().await.expect("tx");
            assert_eq!(
                claim(&mut tx, "t", &key, "h1", 1).await.expect("claim"),
                Claim::New
            );
            complete(&mut tx, "t", &key, &answer)
                .await
                .expect("complete");
            tx.commit().await.expect("commit");

            let mut tx = db.begin().await.expect("tx");
            assert_eq!(
                claim(&mut tx, "t", &key, "h1", 2).await.expect("replay"),
                Claim::Replay(answer.clone())
            );
            assert_eq!(
                claim(&mut tx, "t", &key, "h2", 2).await.expect("mismatch"),
                Claim::Mismatch
            );
            // Another scope is another key space.
            assert_eq!(
                claim(&mut tx, "u", &key, "h2", 2)
                    .await
                    .expect("other scope"),
                Claim::New
            );
            drop(tx);

            // A rolled-back claim leaves nothing behind.
            let other = IdempotencyKey::parse("k-2").expect("key");
            let mut tx = db.begin().await.expect("tx");
            assert_eq!(
                claim(&mut tx, "t", &other, "h1", 3).await.expect("claim"),
                Claim::New
            );
            drop(tx);
            let mut tx = db.begin().await.expect("tx");
            assert_eq!(
                claim(&mut tx, "t", &other, "h9", 4).await.expect("again"),
                Claim::New
            );
            drop(tx);
            assert_eq!(purge_before(&db, 2).await.expect("purge"), 1);
        }
    }
}
