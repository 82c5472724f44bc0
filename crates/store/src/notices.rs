//! Notices as the staff console edits them (issue 13 item 7): title and
//! body, a schedule (shown from / until), a target (the whole campus, an
//! area, or a set of buildings), a pin, and the `push` flag stored for the
//! notifications issue (nothing sends it yet). The student overview reads
//! them through [`crate::students::latest_notices`].
//!
//! Every create and edit writes its audit row, with the notice before and
//! after, in the same transaction. An edit names the revision it was made
//! from and changes the row only `where revision = $expected` (row count
//! checked): of two editors saving the same revision at once one wins and
//! the other is told the notice changed meanwhile.

use crate::audit::{self, Actor, Entry};
use crate::{Db, Error, Result, Tx, on_db, on_tx};

/// Most characters of a title.
pub const TITLE_CHARS_MAX: usize = 60;
/// Most characters of a body.
pub const BODY_CHARS_MAX: usize = 2_000;
/// Most buildings one notice targets.
pub const BUILDINGS_MAX: usize = 200;

/// Who a notice is for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// Every student.
    Campus,
    /// The students of one area.
    Area {
        /// Area row id.
        area_id: i64,
    },
    /// The students of some buildings.
    Buildings {
        /// Building row ids, ascending, no repeats.
        building_ids: Vec<i64>,
    },
}

/// A notice as the console writes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Draft {
    /// Title (1–[`TITLE_CHARS_MAX`] characters).
    pub title: String,
    /// Body (1–[`BODY_CHARS_MAX`] characters).
    pub body: String,
    /// Shown from (unix ms); `None`: from publication.
    pub shown_from_ms: Option<i64>,
    /// Shown until, exclusive (unix ms); `None`: until further notice.
    pub shown_until_ms: Option<i64>,
    /// Who sees it.
    pub target: Target,
    /// Listed before unpinned notices.
    pub pinned: bool,
    /// To be pushed by the notifications issue (stored only).
    pub push: bool,
}

/// Why a draft was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DraftError {
    /// Empty title.
    #[error("the title is required")]
    TitleMissing,
    /// Title too long.
    #[error("the title is too long")]
    TitleTooLong,
    /// Empty body.
    #[error("the text is required")]
    BodyMissing,
    /// Body too long.
    #[error("the text is too long")]
    BodyTooLong,
    /// Until is not after from.
    #[error("the end must be after the start")]
    UntilBeforeFrom,
    /// A building target without buildings, or too many.
    #[error("choose between one and {BUILDINGS_MAX} buildings")]
    Buildings,
}

impl Draft {
    /// Checks the bounds (the target's existence is checked on write).
    pub fn check(&self) -> std::result::Result<(), DraftError> {
        let t = self.title.trim().chars().count();
        if t == 0 {
            return Err(DraftError::TitleMissing);
        }
        if t > TITLE_CHARS_MAX {
            return Err(DraftError::TitleTooLong);
        }
        let b = self.body.trim().chars().count();
        if b == 0 {
            return Err(DraftError::BodyMissing);
        }
        if b > BODY_CHARS_MAX {
            return Err(DraftError::BodyTooLong);
        }
        if let (Some(f), Some(u)) = (self.shown_from_ms, self.shown_until_ms)
            && u <= f
        {
            return Err(DraftError::UntilBeforeFrom);
        }
        if let Target::Buildings { building_ids } = &self.target
            && (building_ids.is_empty() || building_ids.len() > BUILDINGS_MAX)
        {
            return Err(DraftError::Buildings);
        }
        Ok(())
    }
}

/// A stored notice.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Notice {
    /// Row id.
    pub id: i64,
    /// What it says and who it is for.
    #[serde(flatten)]
    pub draft: Draft,
    /// Bumped by every edit.
    pub revision: i64,
    /// Published.
    pub created_at_ms: i64,
    /// Who published it (none for the demo seed and old rows).
    pub created_by: Option<String>,
    /// Last edited.
    pub updated_at_ms: Option<i64>,
    /// Who last edited it.
    pub updated_by: Option<String>,
}

/// Where a notice is in its schedule at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Showing {
    /// Not yet.
    Scheduled,
    /// Now.
    Showing,
    /// No more.
    Ended,
}

impl Notice {
    /// The notice's state at `now_ms`.
    pub fn showing(&self, now_ms: i64) -> Showing {
        if self.draft.shown_from_ms.is_some_and(|f| f > now_ms) {
            Showing::Scheduled
        } else if self.draft.shown_until_ms.is_some_and(|u| u <= now_ms) {
            Showing::Ended
        } else {
            Showing::Showing
        }
    }
}

#[derive(sqlx::FromRow)]
struct NoticeRow {
    id: i64,
    area_id: Option<i64>,
    title: String,
    body: String,
    target: String,
    shown_from_ms: Option<i64>,
    shown_until_ms: Option<i64>,
    pinned: bool,
    push: bool,
    revision: i64,
    created_at_ms: i64,
    created_by: Option<String>,
    updated_at_ms: Option<i64>,
    updated_by: Option<String>,
}

const SELECT: &str = "select n.id, n.area_id, n.title, n.body, n.target, n.shown_from_ms,
    n.shown_until_ms, n.pinned, n.push, n.revision, n.created_at_ms, c.name as created_by,
    n.updated_at_ms, u.name as updated_by
    from notice n left join operator c on c.id = n.created_by
    left join operator u on u.id = n.updated_by";

async fn buildings_of(db: &Db, notice_id: i64) -> Result<Vec<i64>> {
    Ok(on_db!(db, |p| sqlx::query_scalar(
        "select building_id from notice_building where notice_id = $1 order by building_id"
    )
    .bind(notice_id)
    .fetch_all(p)
    .await?))
}

async fn decode(db: &Db, r: NoticeRow) -> Result<Notice> {
    let target = match (r.target.as_str(), r.area_id) {
        ("area", Some(area_id)) => Target::Area { area_id },
        ("buildings", _) => Target::Buildings {
            building_ids: buildings_of(db, r.id).await?,
        },
        ("campus", _) => Target::Campus,
        (t, a) => {
            return Err(Error::Corrupt(format!(
                "notice {}: target {t} with area {a:?}",
                r.id
            )));
        }
    };
    Ok(Notice {
        id: r.id,
        draft: Draft {
            title: r.title,
            body: r.body,
            shown_from_ms: r.shown_from_ms,
            shown_until_ms: r.shown_until_ms,
            target,
            pinned: r.pinned,
            push: r.push,
        },
        revision: r.revision,
        created_at_ms: r.created_at_ms,
        created_by: r.created_by,
        updated_at_ms: r.updated_at_ms,
        updated_by: r.updated_by,
    })
}

/// One notice.
pub async fn get(db: &Db, id: i64) -> Result<Option<Notice>> {
    Ok(select(db, "where n.id = $1", id).await?.pop())
}

/// The newest `limit` notices, pinned first.
pub async fn list(db: &Db, limit: i64) -> Result<Vec<Notice>> {
    select(
        db,
        "order by n.pinned desc, n.created_at_ms desc, n.id desc limit $1",
        limit,
    )
    .await
}

/// The notices of [`SELECT`] followed by `tail`, whose one parameter is `arg`.
async fn select(db: &Db, tail: &str, arg: i64) -> Result<Vec<Notice>> {
    let sql = format!("{SELECT} {tail}");
    let rows: Vec<NoticeRow> = on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .bind(arg)
        .fetch_all(p)
        .await?);
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(decode(db, r).await?);
    }
    Ok(out)
}

/// A building as the target picker shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct Building {
    /// Row id.
    pub id: i64,
    /// Its area.
    pub area_id: i64,
    /// Name (zh).
    pub name_zh: String,
    /// Name (en).
    pub name_en: String,
}

/// Every building, by area and name.
pub async fn buildings(db: &Db) -> Result<Vec<Building>> {
    Ok(on_db!(db, |p| sqlx::query_as(
        "select id, area_id, name_zh, name_en from building order by area_id, id"
    )
    .fetch_all(p)
    .await?))
}

/// Checks that the target's area or buildings exist.
async fn check_target(tx: &mut Tx, t: &Target) -> Result<()> {
    match t {
        Target::Campus => Ok(()),
        Target::Area { area_id } => {
            let n: i64 = on_tx!(tx, |c| sqlx::query_scalar(
                "select count(*) from area where id = $1"
            )
            .bind(*area_id)
            .fetch_one(c)
            .await?);
            if n == 1 {
                Ok(())
            } else {
                Err(Error::Conflict(format!("no area {area_id}")))
            }
        }
        Target::Buildings { building_ids } => {
            for b in building_ids {
                let n: i64 = on_tx!(tx, |c| sqlx::query_scalar(
                    "select count(*) from building where id = $1"
                )
                .bind(*b)
                .fetch_one(c)
                .await?);
                if n != 1 {
                    return Err(Error::Conflict(format!("no building {b}")));
                }
            }
            Ok(())
        }
    }
}

fn target_columns(t: &Target) -> (&'static str, Option<i64>) {
    match t {
        Target::Campus => ("campus", None),
        Target::Area { area_id } => ("area", Some(*area_id)),
        Target::Buildings { .. } => ("buildings", None),
    }
}

async fn write_buildings(tx: &mut Tx, id: i64, t: &Target) -> Result<()> {
    on_tx!(tx, |c| sqlx::query(
        "delete from notice_building where notice_id = $1"
    )
    .bind(id)
    .execute(c)
    .await?
    .rows_affected());
    if let Target::Buildings { building_ids } = t {
        for b in building_ids {
            on_tx!(tx, |c| sqlx::query(
                "insert into notice_building (notice_id, building_id) values ($1, $2)"
            )
            .bind(id)
            .bind(*b)
            .execute(c)
            .await?
            .rows_affected());
        }
    }
    Ok(())
}

fn normalised(d: &Draft) -> Draft {
    let mut d = d.clone();
    d.title = d.title.trim().to_owned();
    d.body = d.body.trim().to_owned();
    if let Target::Buildings { building_ids } = &mut d.target {
        building_ids.sort_unstable();
        building_ids.dedup();
    }
    d
}

fn bad(e: DraftError) -> Error {
    Error::Conflict(e.to_string())
}

/// Writes `action`'s audit row (the notice before, if any, and after) and
/// commits `tx`.
async fn commit_audited(
    tx: Tx,
    actor: &Actor,
    action: &str,
    before: Option<&Notice>,
    after: &Notice,
    now_ms: i64,
) -> Result<()> {
    let entry = Entry {
        actor,
        action,
        subject: &format!("notice:{}", after.id),
        before: before.and_then(|b| serde_json::to_value(b).ok()),
        after: serde_json::to_value(after).ok(),
    };
    audit::append_and_commit(tx, &entry, now_ms).await
}

/// Publishes a notice by `actor` (an operator) and audits it
/// (`notice_created`). A draft that fails [`Draft::check`] or names an
/// unknown area or building is refused (`Conflict`) and nothing is written.
pub async fn create(db: &Db, draft: &Draft, actor: &Actor, now_ms: i64) -> Result<Notice> {
    draft.check().map_err(bad)?;
    let d = normalised(draft);
    let mut tx = db.begin().await?;
    check_target(&mut tx, &d.target).await?;
    let (target, area_id) = target_columns(&d.target);
    let id: i64 = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "insert into notice (area_id, title, body, created_at_ms, target, shown_from_ms,
             shown_until_ms, pinned, push, created_by, revision)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1) returning id"
    )
    .bind(area_id)
    .bind(&d.title)
    .bind(&d.body)
    .bind(now_ms)
    .bind(target)
    .bind(d.shown_from_ms)
    .bind(d.shown_until_ms)
    .bind(d.pinned)
    .bind(d.push)
    .bind(actor.operator_id)
    .fetch_one(c)
    .await?);
    write_buildings(&mut tx, id, &d.target).await?;
    let after = Notice {
        id,
        draft: d,
        revision: 1,
        created_at_ms: now_ms,
        created_by: actor.operator_id.map(|_| actor.name.clone()),
        updated_at_ms: None,
        updated_by: None,
    };
    commit_audited(tx, actor, "notice_created", None, &after, now_ms).await?;
    Ok(after)
}

/// Edits notice `id` as it was at `revision`, and audits it
/// (`notice_updated`, before and after). `NotFound` for no such notice;
/// `Conflict` for a bad draft or when the notice changed since `revision`
/// (nothing written).
pub async fn update(
    db: &Db,
    id: i64,
    revision: i64,
    draft: &Draft,
    actor: &Actor,
    now_ms: i64,
) -> Result<Notice> {
    draft.check().map_err(bad)?;
    let d = normalised(draft);
    let Some(before) = get(db, id).await? else {
        return Err(Error::NotFound("notice"));
    };
    if before.revision != revision {
        return Err(Error::Conflict(CHANGED_MEANWHILE.to_owned()));
    }
    let mut tx = db.begin().await?;
    check_target(&mut tx, &d.target).await?;
    let (target, area_id) = target_columns(&d.target);
    let n = on_tx!(&mut tx, |c| {
        sqlx::query(
        "update notice set area_id = $3, title = $4, body = $5, target = $6, shown_from_ms = $7,
             shown_until_ms = $8, pinned = $9, push = $10, updated_by = $11, updated_at_ms = $12,
             revision = revision + 1
         where id = $1 and revision = $2"
    )
    .bind(id)
    .bind(revision)
    .bind(area_id)
    .bind(&d.title)
    .bind(&d.body)
    .bind(target)
    .bind(d.shown_from_ms)
    .bind(d.shown_until_ms)
    .bind(d.pinned)
    .bind(d.push)
    .bind(actor.operator_id)
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected()
    });
    if n != 1 {
        drop(tx);
        return Err(Error::Conflict(CHANGED_MEANWHILE.to_owned()));
    }
    write_buildings(&mut tx, id, &d.target).await?;
    let after = Notice {
        id,
        draft: d,
        revision: revision + 1,
        created_at_ms: before.created_at_ms,
        created_by: before.created_by.clone(),
        updated_at_ms: Some(now_ms),
        updated_by: Some(actor.name.clone()),
    };
    commit_audited(tx, actor, "notice_updated", Some(&before), &after, now_ms).await?;
    Ok(after)
}

/// The `Conflict` reason of an edit made from an old revision.
pub const CHANGED_MEANWHILE: &str = "the notice was changed by someone else meanwhile";
