//! Named API keys for integrations (issue 13 item 1): created by an
//! administrator in the console with a role, the secret shown once and
//! only its SHA-256 stored, listed with when it was created and last used,
//! revocable once (`where revoked_at_ms is null`, row count checked).
//!
//! SHA-256 rather than argon2: the secret is 256 random bits, not a
//! password a person chose, so there is nothing to guess and no need for
//! a slow hash; a fast one keeps every API call cheap and lets the stored
//! hash be looked up by equality (unique index).

use crate::audit::{self, Actor, Entry};
use crate::{Db, Error, Result, on_db, on_tx};
use domain::staff::Role;
use sha2::{Digest, Sha256};

/// Fewest characters of a key's name.
pub const NAME_CHARS_MIN: usize = 2;
/// Most characters of a key's name.
pub const NAME_CHARS_MAX: usize = 40;
/// How every secret starts (so a leaked one is recognisable in logs).
pub const SECRET_PREFIX: &str = "dwk_";

/// An API key as the console lists it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiKey {
    /// Row id.
    pub id: i64,
    /// Name (unique), what the audit log records as the actor.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Created (unix ms).
    pub created_at_ms: i64,
    /// Who created it.
    pub created_by: Option<String>,
    /// Last used (unix ms).
    pub last_used_at_ms: Option<i64>,
    /// Revoked (unix ms).
    pub revoked_at_ms: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct Raw {
    id: i64,
    name: String,
    role: String,
    created_at_ms: i64,
    created_by: Option<String>,
    last_used_at_ms: Option<i64>,
    revoked_at_ms: Option<i64>,
}

impl TryFrom<Raw> for ApiKey {
    type Error = Error;
    fn try_from(r: Raw) -> Result<Self> {
        Ok(ApiKey {
            role: Role::parse(&r.role)
                .ok_or_else(|| Error::Corrupt(format!("api_key {}: role {}", r.id, r.role)))?,
            id: r.id,
            name: r.name,
            created_at_ms: r.created_at_ms,
            created_by: r.created_by,
            last_used_at_ms: r.last_used_at_ms,
            revoked_at_ms: r.revoked_at_ms,
        })
    }
}

const SELECT: &str = "select k.id, k.name, k.role, k.created_at_ms, o.name as created_by,
    k.last_used_at_ms, k.revoked_at_ms from api_key k left join operator o on o.id = k.created_by";

/// The stored form of a secret.
pub fn secret_hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every key, newest first.
pub async fn list(db: &Db) -> Result<Vec<ApiKey>> {
    let sql = format!("{SELECT} order by k.id desc");
    let rows: Vec<Raw> = on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .fetch_all(p)
        .await?);
    rows.into_iter().map(ApiKey::try_from).collect()
}

/// Creates key `name` with `role` and returns it with its secret (shown
/// once; 256 random bits). Audited (`api_key_created`, never the secret).
/// `Conflict` for a bad or taken name.
pub async fn create(
    db: &Db,
    name: &str,
    role: Role,
    actor: &Actor,
    now_ms: i64,
) -> Result<(ApiKey, String)> {
    let name = name.trim();
    let chars = name.chars().count();
    if !(NAME_CHARS_MIN..=NAME_CHARS_MAX).contains(&chars) || name.chars().any(char::is_control) {
        return Err(Error::Conflict(format!(
            "the name must have {NAME_CHARS_MIN}–{NAME_CHARS_MAX} characters"
        )));
    }
    let secret = format!(
        "{SECRET_PREFIX}{}",
        rand::random::<[u8; 32]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let mut tx = db.begin().await?;
    let taken: i64 = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "select count(*) from api_key where name = $1"
    )
    .bind(name)
    .fetch_one(c)
    .await?);
    if taken > 0 {
        return Err(Error::Conflict(format!(
            "an API key named {name} already exists"
        )));
    }
    let id: i64 = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "insert into api_key (name, role, secret_hash, created_at_ms, created_by)
         values ($1, $2, $3, $4, $5) returning id"
    )
    .bind(name)
    .bind(role.as_str())
    .bind(secret_hash(&secret))
    .bind(now_ms)
    .bind(actor.operator_id)
    .fetch_one(c)
    .await?);
    let key = ApiKey {
        id,
        name: name.to_owned(),
        role,
        created_at_ms: now_ms,
        created_by: actor.operator_id.map(|_| actor.name.clone()),
        last_used_at_ms: None,
        revoked_at_ms: None,
    };
    audit::append_tx(
        &mut tx,
        &Entry {
            actor,
            action: "api_key_created",
            subject: &format!("api_key:{name}"),
            before: None,
            after: serde_json::to_value(&key).ok(),
        },
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok((key, secret))
}

/// Revokes key `id`: `true` if this call revoked it, `false` if it already
/// was (nothing written). Audited (`api_key_revoked`). `NotFound` for no key.
pub async fn revoke(db: &Db, id: i64, actor: &Actor, now_ms: i64) -> Result<bool> {
    let mut tx = db.begin().await?;
    let n = on_tx!(&mut tx, |c| {
        sqlx::query(
        "update api_key set revoked_at_ms = $2, revoked_by = $3 where id = $1 and revoked_at_ms is null"
    )
    .bind(id)
    .bind(now_ms)
    .bind(actor.operator_id)
    .execute(c)
    .await?
    .rows_affected()
    });
    if n != 1 {
        drop(tx);
        let exists = list(db).await?.into_iter().any(|k| k.id == id);
        return if exists {
            Ok(false)
        } else {
            Err(Error::NotFound("api_key"))
        };
    }
    let name: String = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "select name from api_key where id = $1"
    )
    .bind(id)
    .fetch_one(c)
    .await?);
    audit::append_tx(
        &mut tx,
        &Entry {
            actor,
            action: "api_key_revoked",
            subject: &format!("api_key:{name}"),
            before: Some(serde_json::json!({ "revoked": false })),
            after: Some(serde_json::json!({ "revoked": true })),
        },
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// What a bearer secret is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// A live key (its last use is now `now_ms`).
    Live(ApiKey),
    /// A key that was revoked.
    Revoked(ApiKey),
    /// No key has this secret.
    Unknown,
}

/// Looks the secret up by its hash and, for a live key, records the use.
pub async fn verify(db: &Db, secret: &str, now_ms: i64) -> Result<Verified> {
    let sql = format!("{SELECT} where k.secret_hash = $1");
    let row: Option<Raw> = on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .bind(secret_hash(secret))
        .fetch_optional(p)
        .await?);
    let Some(key) = row.map(ApiKey::try_from).transpose()? else {
        return Ok(Verified::Unknown);
    };
    if key.revoked_at_ms.is_some() {
        return Ok(Verified::Revoked(key));
    }
    let n = on_db!(db, |p| sqlx::query(
        "update api_key set last_used_at_ms = $2 where id = $1 and revoked_at_ms is null"
    )
    .bind(key.id)
    .bind(now_ms)
    .execute(p)
    .await?
    .rows_affected());
    if n != 1 {
        // Revoked between the two statements.
        return Ok(Verified::Revoked(key));
    }
    Ok(Verified::Live(ApiKey {
        last_used_at_ms: Some(now_ms),
        ..key
    }))
}
