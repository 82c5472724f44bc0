//! Staff operators (issue 13 item 1): accounts with argon2id password
//! hashes (made by `domain::staff`), a role, and the areas and buildings
//! they act in; their console sessions and login attempts.
//!
//! Every change an operator account goes through writes its audit row in
//! the same transaction ([`crate::audit::append_tx`]), and is guarded in
//! its `UPDATE … WHERE` with the row count checked.

use crate::audit::{self, Actor, Entry};
use crate::{Db, Error, Result, on_db, on_tx};
use domain::staff::{Role, Scope};
use domain::{AreaId, BuildingId};

/// An operator as the console and the command line show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Operator {
    /// Row id.
    pub id: i64,
    /// Login name (unique).
    pub name: String,
    /// Role.
    pub role: Role,
    /// Area codes the operator is limited to; empty with `all_areas`.
    pub areas: Vec<String>,
    /// Every area.
    pub all_areas: bool,
    /// Buildings of a building manager, as `area code / building name`.
    pub buildings: Vec<String>,
    /// The scope for `domain::staff::can`.
    #[serde(skip)]
    pub scope: Scope,
    /// When disabled (unix ms); a disabled operator cannot log in.
    pub disabled_at_ms: Option<i64>,
    /// When created (unix ms).
    pub created_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct OperatorRaw {
    id: i64,
    name: String,
    role: String,
    all_areas: bool,
    disabled_at_ms: Option<i64>,
    created_at_ms: i64,
}

/// What `create` needs.
#[derive(Debug, Clone)]
pub struct NewOperator {
    /// Login name: 2–32 characters, no spaces or control characters.
    pub name: String,
    /// Role.
    pub role: Role,
    /// The argon2id PHC string (`domain::staff::hash_password`).
    pub password_phc: String,
    /// Area codes to limit the operator to; empty: every area (unless
    /// buildings are given, which imply their areas).
    pub area_codes: Vec<String>,
    /// Buildings of a building manager, by name (Chinese or English),
    /// looked up within `area_codes` when given.
    pub building_names: Vec<String>,
}

/// Fewest characters of an operator name.
pub const NAME_CHARS_MIN: usize = 2;
/// Most characters of an operator name.
pub const NAME_CHARS_MAX: usize = 32;

/// Whether `name` is acceptable as an operator name.
pub fn check_name(name: &str) -> Result<()> {
    let n = name.chars().count();
    if !(NAME_CHARS_MIN..=NAME_CHARS_MAX).contains(&n)
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::Conflict(format!(
            "an operator name has {NAME_CHARS_MIN}–{NAME_CHARS_MAX} characters and no spaces"
        )));
    }
    Ok(())
}

/// Creates an operator and its audit row (`operator_created`). Refuses a
/// taken name, unknown area codes or buildings, buildings for a role other
/// than building manager, and a building manager without buildings.
pub async fn create(db: &Db, new: &NewOperator, actor: &Actor, now_ms: i64) -> Result<Operator> {
    check_name(&new.name)?;
    let is_manager = new.role == Role::BuildingManager;
    if is_manager && new.building_names.is_empty() {
        return Err(Error::Conflict(
            "a building manager needs at least one building (--building NAME)".to_owned(),
        ));
    }
    if !is_manager && !new.building_names.is_empty() {
        return Err(Error::Conflict(format!(
            "only a building manager is limited to buildings, not a {}",
            new.role
        )));
    }
    let mut tx = db.begin().await?;
    let mut areas = Vec::new();
    for code in &new.area_codes {
        let id: Option<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
            "select id from area where code = $1"
        )
        .bind(code)
        .fetch_optional(c)
        .await?);
        let id = id.ok_or_else(|| Error::Conflict(format!("no area has the code {code}")))?;
        if !areas.contains(&id) {
            areas.push(id);
        }
    }
    let mut buildings: Vec<(i64, i64)> = Vec::new();
    for name in &new.building_names {
        let found: Vec<(i64, i64)> = on_tx!(&mut tx, |c| sqlx::query_as(
            "select id, area_id from building where name_zh = $1 or name_en = $1 order by id"
        )
        .bind(name)
        .fetch_all(c)
        .await?);
        let found: Vec<(i64, i64)> = found
            .into_iter()
            .filter(|(_, a)| areas.is_empty() || areas.contains(a))
            .collect();
        match found.as_slice() {
            [one] => {
                if !buildings.contains(one) {
                    buildings.push(*one);
                }
            }
            [] => return Err(Error::Conflict(format!("no building is named {name}"))),
            _ => {
                return Err(Error::Conflict(format!(
                    "several areas have a building named {name}; name its area with --area CODE"
                )));
            }
        }
    }
    // A building manager's areas are their buildings' areas.
    if is_manager && areas.is_empty() {
        for (_, a) in &buildings {
            if !areas.contains(a) {
                areas.push(*a);
            }
        }
    }
    let all_areas = areas.is_empty();
    let inserted: Option<i64> = on_tx!(&mut tx, |c| {
        sqlx::query_scalar(
        "insert into operator (name, role, password_phc, all_areas, created_at_ms, password_changed_at_ms)
         values ($1, $2, $3, $4, $5, $5)
         on conflict (name) do nothing
         returning id"
    )
    .bind(&new.name)
    .bind(new.role.as_str())
    .bind(&new.password_phc)
    .bind(all_areas)
    .bind(now_ms)
    .fetch_optional(c)
    .await?
    });
    let Some(id) = inserted else {
        return Err(Error::Conflict(format!(
            "an operator named {} already exists",
            new.name
        )));
    };
    for a in &areas {
        on_tx!(&mut tx, |c| sqlx::query(
            "insert into operator_area (operator_id, area_id) values ($1, $2)"
        )
        .bind(id)
        .bind(a)
        .execute(c)
        .await?
        .rows_affected());
    }
    for (b, _) in &buildings {
        on_tx!(&mut tx, |c| sqlx::query(
            "insert into operator_building (operator_id, building_id) values ($1, $2)"
        )
        .bind(id)
        .bind(b)
        .execute(c)
        .await?
        .rows_affected());
    }
    let op = load_tx(&mut tx, id).await?;
    let after = serde_json::to_value(&op).map_err(|e| Error::Corrupt(e.to_string()))?;
    audit_operator(
        &mut tx,
        actor,
        "operator_created",
        &op.name,
        None,
        Some(after),
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(op)
}

/// Writes `action` on operator `name` to the audit log in the caller's
/// transaction, so the change and its audit row commit together.
async fn audit_operator(
    tx: &mut crate::Tx,
    actor: &Actor,
    action: &str,
    name: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    now_ms: i64,
) -> Result<()> {
    let subject = format!("operator:{name}");
    let entry = Entry {
        actor,
        action,
        subject: &subject,
        before,
        after,
    };
    audit::append_tx(tx, &entry, now_ms).await.map(drop)
}

async fn load_tx(tx: &mut crate::Tx, id: i64) -> Result<Operator> {
    let raw: OperatorRaw = on_tx!(tx, |c| {
        sqlx::query_as(
        "select id, name, role, all_areas, disabled_at_ms, created_at_ms from operator where id = $1"
    )
    .bind(id)
    .fetch_one(c)
    .await?
    });
    let areas: Vec<(i64, String)> = on_tx!(tx, |c| sqlx::query_as(
        "select a.id, a.code from operator_area oa join area a on a.id = oa.area_id
         where oa.operator_id = $1 order by a.code"
    )
    .bind(id)
    .fetch_all(c)
    .await?);
    let buildings: Vec<(i64, String, String)> = on_tx!(tx, |c| sqlx::query_as(
        "select b.id, a.code, b.name_zh from operator_building ob
         join building b on b.id = ob.building_id join area a on a.id = b.area_id
         where ob.operator_id = $1 order by a.code, b.position, b.id"
    )
    .bind(id)
    .fetch_all(c)
    .await?);
    assemble(raw, areas, buildings)
}

fn assemble(
    raw: OperatorRaw,
    areas: Vec<(i64, String)>,
    buildings: Vec<(i64, String, String)>,
) -> Result<Operator> {
    let role = Role::parse(&raw.role)
        .ok_or_else(|| Error::Corrupt(format!("operator.role: {}", raw.role)))?;
    let scope = Scope {
        areas: (!raw.all_areas).then(|| areas.iter().map(|(a, _)| AreaId::new(*a)).collect()),
        buildings: buildings
            .iter()
            .map(|(b, _, _)| BuildingId::new(*b))
            .collect(),
    };
    Ok(Operator {
        id: raw.id,
        name: raw.name,
        role,
        areas: areas.into_iter().map(|(_, c)| c).collect(),
        all_areas: raw.all_areas,
        buildings: buildings
            .into_iter()
            .map(|(_, a, b)| format!("{a} / {b}"))
            .collect(),
        scope,
        disabled_at_ms: raw.disabled_at_ms,
        created_at_ms: raw.created_at_ms,
    })
}

/// The operator with row id `id`.
pub async fn get(db: &Db, id: i64) -> Result<Option<Operator>> {
    let mut tx = db.begin().await?;
    let exists: Option<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "select id from operator where id = $1"
    )
    .bind(id)
    .fetch_optional(c)
    .await?);
    let op = match exists {
        Some(id) => Some(load_tx(&mut tx, id).await?),
        None => None,
    };
    tx.commit().await?;
    Ok(op)
}

/// Every operator, by name.
pub async fn list(db: &Db) -> Result<Vec<Operator>> {
    let ids: Vec<i64> = on_db!(db, |p| sqlx::query_scalar(
        "select id from operator order by name"
    )
    .fetch_all(p)
    .await?);
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(op) = get(db, id).await? {
            out.push(op);
        }
    }
    Ok(out)
}

/// What a login checks: the operator's id, role, password hash and
/// whether it is disabled.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Credentials {
    /// Row id.
    pub id: i64,
    /// Login name.
    pub name: String,
    /// argon2id PHC string.
    pub password_phc: String,
    /// When disabled, if it is.
    pub disabled_at_ms: Option<i64>,
}

/// The credentials of operator `name`.
pub async fn credentials(db: &Db, name: &str) -> Result<Option<Credentials>> {
    credentials_of(db, Some(name), None).await
}

/// The credentials of operator `id`.
pub async fn credentials_by_id(db: &Db, id: i64) -> Result<Option<Credentials>> {
    credentials_of(db, None, Some(id)).await
}

/// The credentials of the operator named `name` or with row id `id` (the
/// other is null, which matches nothing).
async fn credentials_of(
    db: &Db,
    name: Option<&str>,
    id: Option<i64>,
) -> Result<Option<Credentials>> {
    Ok(on_db!(db, |p| sqlx::query_as(
        "select id, name, password_phc, disabled_at_ms from operator where name = $1 or id = $2"
    )
    .bind(name)
    .bind(id)
    .fetch_optional(p)
    .await?))
}

/// Disables operator `name` (guarded: only one that is enabled), ends its
/// sessions and writes `operator_disabled`. Not found: `NotFound`; already
/// disabled: `Conflict`.
pub async fn disable(db: &Db, name: &str, actor: &Actor, now_ms: i64) -> Result<Operator> {
    let mut tx = db.begin().await?;
    let id: Option<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "select id from operator where name = $1"
    )
    .bind(name)
    .fetch_optional(c)
    .await?);
    let id = id.ok_or(Error::NotFound("operator"))?;
    let n = on_tx!(&mut tx, |c| sqlx::query(
        "update operator set disabled_at_ms = $2 where id = $1 and disabled_at_ms is null"
    )
    .bind(id)
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected());
    if n != 1 {
        return Err(Error::Conflict(format!(
            "the operator {name} is already disabled"
        )));
    }
    on_tx!(&mut tx, |c| sqlx::query(
        "delete from staff_session where operator_id = $1"
    )
    .bind(id)
    .execute(c)
    .await?
    .rows_affected());
    let op = load_tx(&mut tx, id).await?;
    audit_operator(
        &mut tx,
        actor,
        "operator_disabled",
        name,
        Some(serde_json::json!({ "disabled": false })),
        Some(serde_json::json!({ "disabled": true })),
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(op)
}

/// Replaces operator `id`'s password hash, guarded by the hash it had when
/// the caller checked the old password (`old_phc`), so two changes at once
/// cannot both win; ends the operator's other sessions (all but
/// `keep_session_hash`) and writes `password_changed`.
pub async fn change_password(
    db: &Db,
    id: i64,
    old_phc: &str,
    new_phc: &str,
    keep_session_hash: &str,
    actor: &Actor,
    now_ms: i64,
) -> Result<()> {
    let mut tx = db.begin().await?;
    let n = on_tx!(&mut tx, |c| sqlx::query(
        "update operator set password_phc = $3, password_changed_at_ms = $4
         where id = $1 and password_phc = $2 and disabled_at_ms is null"
    )
    .bind(id)
    .bind(old_phc)
    .bind(new_phc)
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected());
    if n != 1 {
        return Err(Error::Conflict(
            "the password was changed meanwhile; try again".to_owned(),
        ));
    }
    on_tx!(&mut tx, |c| sqlx::query(
        "delete from staff_session where operator_id = $1 and token_hash <> $2"
    )
    .bind(id)
    .bind(keep_session_hash)
    .execute(c)
    .await?
    .rows_affected());
    audit_operator(
        &mut tx,
        actor,
        "password_changed",
        &actor.name,
        None,
        None,
        now_ms,
    )
    .await?;
    tx.commit().await
}

/// Sets operator `name`'s password (the demo administrator at each demo
/// start); creates it as an administrator of every area when missing.
/// Writes `operator_created` or `password_reset`.
pub async fn ensure_with_password(
    db: &Db,
    name: &str,
    role: Role,
    phc: &str,
    actor: &Actor,
    now_ms: i64,
) -> Result<()> {
    if credentials(db, name).await?.is_none() {
        let new = NewOperator {
            name: name.to_owned(),
            role,
            password_phc: phc.to_owned(),
            area_codes: Vec::new(),
            building_names: Vec::new(),
        };
        match create(db, &new, actor, now_ms).await {
            Ok(_) => return Ok(()),
            // Created meanwhile by another process: reset it below.
            Err(Error::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let mut tx = db.begin().await?;
    let n = on_tx!(&mut tx, |c| {
        sqlx::query(
        "update operator set password_phc = $2, password_changed_at_ms = $3, disabled_at_ms = null
         where name = $1"
    )
    .bind(name)
    .bind(phc)
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected()
    });
    if n != 1 {
        return Err(Error::NotFound("operator"));
    }
    audit_operator(&mut tx, actor, "password_reset", name, None, None, now_ms).await?;
    tx.commit().await
}

/// Records a login attempt under `name` from `client_ip`.
pub async fn record_login_attempt(
    db: &Db,
    name: &str,
    client_ip: &str,
    ok: bool,
    now_ms: i64,
) -> Result<()> {
    on_db!(db, |p| sqlx::query(
        "insert into staff_login_attempt (name, client_ip, ok, at_ms) values ($1, $2, $3, $4)"
    )
    .bind(name)
    .bind(client_ip)
    .bind(ok)
    .bind(now_ms)
    .execute(p)
    .await?
    .rows_affected());
    Ok(())
}

/// The times of the latest failed logins since `since_ms`, newest first,
/// at most `limit` each: under `name`, and from `client_ip`.
pub async fn recent_failures(
    db: &Db,
    name: &str,
    client_ip: &str,
    since_ms: i64,
    limit: i64,
) -> Result<(Vec<i64>, Vec<i64>)> {
    let by_name = failures_where(db, FailuresOf::Name, name, since_ms, limit).await?;
    let by_ip = failures_where(db, FailuresOf::Ip, client_ip, since_ms, limit).await?;
    Ok((by_name, by_ip))
}

/// Whose failed logins [`failures_where`] counts.
enum FailuresOf {
    /// Under a login name.
    Name,
    /// From a client address.
    Ip,
}

/// Failed logins whose `of` column is `key` since `since_ms`, newest first,
/// at most `limit` (each column has its own index).
async fn failures_where(
    db: &Db,
    of: FailuresOf,
    key: &str,
    since_ms: i64,
    limit: i64,
) -> Result<Vec<i64>> {
    let sql = match of {
        FailuresOf::Name => {
            "select at_ms from staff_login_attempt where name = $1 and not ok and at_ms > $2
             order by at_ms desc limit $3"
        }
        FailuresOf::Ip => {
            "select at_ms from staff_login_attempt where client_ip = $1 and not ok and at_ms > $2
             order by at_ms desc limit $3"
        }
    };
    Ok(on_db!(db, |p| sqlx::query_scalar(sql)
        .bind(key)
        .bind(since_ms)
        .bind(limit)
        .fetch_all(p)
        .await?))
}

/// Starts a console session (the token's hash is stored, never the token).
pub async fn create_session(
    db: &Db,
    token_hash: &str,
    operator_id: i64,
    csrf_token: &str,
    now_ms: i64,
) -> Result<()> {
    on_db!(db, |p| {
        sqlx::query(
        "insert into staff_session (token_hash, operator_id, csrf_token, created_at_ms, last_seen_at_ms)
         values ($1, $2, $3, $4, $4)"
    )
    .bind(token_hash)
    .bind(operator_id)
    .bind(csrf_token)
    .bind(now_ms)
    .execute(p)
    .await?
        .rows_affected()
    });
    Ok(())
}

/// A live console session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The operator (enabled).
    pub operator: Operator,
    /// The session's anti-CSRF token.
    pub csrf_token: String,
}

/// The session of `token_hash` if it is live at `now_ms` — seen within
/// `idle_ms` and started within `absolute_ms` — and its operator enabled;
/// it is touched (seen now) by a guarded update. A dead session is removed.
pub async fn session(
    db: &Db,
    token_hash: &str,
    now_ms: i64,
    idle_ms: i64,
    absolute_ms: i64,
) -> Result<Option<Session>> {
    let live: Option<(i64, String)> = on_db!(db, |p| sqlx::query_as(
        "update staff_session set last_seen_at_ms = $2
         where token_hash = $1 and last_seen_at_ms > $3 and created_at_ms > $4
           and exists (select 1 from operator o where o.id = staff_session.operator_id
                       and o.disabled_at_ms is null)
         returning operator_id, csrf_token"
    )
    .bind(token_hash)
    .bind(now_ms)
    .bind(now_ms.saturating_sub(idle_ms))
    .bind(now_ms.saturating_sub(absolute_ms))
    .fetch_optional(p)
    .await?);
    let Some((operator_id, csrf_token)) = live else {
        delete_session(db, token_hash).await?;
        return Ok(None);
    };
    Ok(get(db, operator_id).await?.map(|operator| Session {
        operator,
        csrf_token,
    }))
}

/// Ends a console session.
pub async fn delete_session(db: &Db, token_hash: &str) -> Result<()> {
    on_db!(db, |p| sqlx::query(
        "delete from staff_session where token_hash = $1"
    )
    .bind(token_hash)
    .execute(p)
    .await?
    .rows_affected());
    Ok(())
}
