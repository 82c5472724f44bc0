//! Campus policy (issue 14 item 6, E4): the unit-price schedule per area or
//! building and the low-balance threshold per area or building.
//!
//! The price of an order is the one in force for its meter when the order
//! is created ([`price_in_force_sql!`], used by `orders::create`), frozen on
//! the order row as it always was. In force at instant `t`, most specific
//! first:
//! 1. the meter's own tariff (`meter.unit_price_centifen_per_kwh`, set by the
//!    registry for a single meter);
//! 2. the latest row of `price_schedule` for the meter's building with
//!    `effective_from_ms <= t`;
//! 3. the latest such row for the meter's area (`building_id` null);
//! 4. the area's default `area.unit_price_centifen_per_kwh`.
//!
//! A schedule row is only ever added for the future ([`schedule_price`]
//! refuses an instant not after `now`, and the table checks
//! `effective_from_ms > created_at_ms`), and only a future row can be
//! withdrawn ([`withdraw_price`]): the price any past instant had never
//! changes, so an order created yesterday and the price shown with it agree.
//!
//! The low-balance threshold of a meter is its building's
//! `campus_policy.low_balance_centikwh`, else its area's, else the meter's
//! own `low_balance_centikwh` ([`low_balance_sql!`], used by the low-balance
//! scan and the student views).

use crate::audit::{self, Actor};
use crate::{Db, Error, Result, on_db, on_tx};
use domain::{AreaId, CentiKwh, MeterId, UnitPrice};

/// SQL expression: the unit price (0.0001 元/kWh) in force at the instant
/// bound to the placeholder `$at` for the meter aliased `m`, joined with its
/// area `a` and room `r`. One text on both backends.
#[macro_export]
#[doc(hidden)]
macro_rules! price_in_force_sql {
    ($at:literal) => {
        concat!(
            "coalesce(m.unit_price_centifen_per_kwh,
            (select ps.unit_price_centifen_per_kwh from price_schedule ps
              where ps.area_id = m.area_id and (ps.building_id = r.building_id or ps.building_id is null)
                and ps.effective_from_ms <= ",
            $at,
            "
              order by (case when ps.building_id is null then 1 else 0 end), ps.effective_from_ms desc, ps.id desc
              limit 1),
            a.unit_price_centifen_per_kwh)"
        )
    };
}

/// SQL expression: the low-balance threshold (0.01 kWh) of the meter
/// aliased `m` in room `r`: its building's policy, else its area's, else
/// the meter's own.
#[macro_export]
#[doc(hidden)]
macro_rules! low_balance_sql {
    () => {
        "coalesce(
            (select cpb.low_balance_centikwh from campus_policy cpb where cpb.building_id = r.building_id),
            (select cpa.low_balance_centikwh from campus_policy cpa
              where cpa.area_id = m.area_id and cpa.building_id is null),
            m.low_balance_centikwh)"
    };
}

/// Most schedule rows one scope keeps listed (the page lists the recent
/// past and the future; older rows stay in the table).
pub const SCHEDULE_LIST_MAX: i64 = 200;

/// Where a policy applies: a whole area or one building of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    /// The area.
    pub area_id: AreaId,
    /// One building of it, or `None` for the whole area.
    pub building_id: Option<i64>,
}

impl Scope {
    /// The audit log's subject for this scope (`area:1`, `building:7`).
    pub fn subject(&self) -> String {
        match self.building_id {
            Some(b) => format!("building:{b}"),
            None => format!("area:{}", self.area_id.get()),
        }
    }
}

/// One row of the price schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledPrice {
    /// Row id.
    pub id: i64,
    /// Where it applies.
    pub scope: Scope,
    /// The building's name (zh), for a building's row.
    pub building_name_zh: Option<String>,
    /// The building's name (en), for a building's row.
    pub building_name_en: Option<String>,
    /// The price.
    pub unit_price: UnitPrice,
    /// From when.
    pub effective_from_ms: i64,
    /// Who scheduled it.
    pub operator_name: String,
    /// When it was scheduled.
    pub created_at_ms: i64,
}

/// Why a price could not be scheduled.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The instant is not after now (an order already created keeps its
    /// price; a past price is history).
    #[error("a price can only be scheduled for the future")]
    NotInFuture,
    /// The building is not in the area (or does not exist).
    #[error("no such building in this area")]
    NoSuchBuilding,
    /// The area does not exist.
    #[error("no such area")]
    NoSuchArea,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] Error),
}

impl From<sqlx::Error> for ScheduleError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Checks that `scope` names an existing area and, if a building, one of
/// that area's.
pub(crate) async fn check_scope(
    tx: &mut crate::Tx,
    scope: Scope,
) -> std::result::Result<(), ScheduleError> {
    let n: i64 = on_tx!(tx, |c| sqlx::query_scalar(
        "select count(*) from area where id = $1"
    )
    .bind(scope.area_id.get())
    .fetch_one(c)
    .await?);
    if n == 0 {
        return Err(ScheduleError::NoSuchArea);
    }
    if let Some(b) = scope.building_id {
        let n: i64 = on_tx!(tx, |c| sqlx::query_scalar(
            "select count(*) from building where id = $1 and area_id = $2"
        )
        .bind(b)
        .bind(scope.area_id.get())
        .fetch_one(c)
        .await?);
        if n == 0 {
            return Err(ScheduleError::NoSuchBuilding);
        }
    }
    Ok(())
}

/// Schedules `price` for `scope` from `effective_from_ms` on, audited
/// (`price_scheduled`) in the same transaction. Refuses an instant that is
/// not after `now_ms`: the insert itself carries the condition, and the
/// table's check repeats it.
pub async fn schedule_price(
    db: &Db,
    scope: Scope,
    price: UnitPrice,
    effective_from_ms: i64,
    actor: &Actor,
    now_ms: i64,
) -> std::result::Result<i64, ScheduleError> {
    if effective_from_ms <= now_ms {
        return Err(ScheduleError::NotInFuture);
    }
    let mut tx = db.begin().await?;
    check_scope(&mut tx, scope).await?;
    let id: Option<i64> = on_tx!(&mut tx, |c| {
        sqlx::query_scalar(
        "insert into price_schedule (area_id, building_id, unit_price_centifen_per_kwh, effective_from_ms,
                                     operator_name, created_at_ms)
         select $1, $2, $3, $4, $5, $6 where $4 > $6
         returning id"
    )
    .bind(scope.area_id.get())
    .bind(scope.building_id)
    .bind(price.centifen_per_kwh())
    .bind(effective_from_ms)
    .bind(&actor.name)
    .bind(now_ms)
    .fetch_optional(c)
    .await?
    });
    let Some(id) = id else {
        return Err(ScheduleError::NotInFuture);
    };
    audit::append_tx(
        &mut tx,
        &audit::Entry {
            actor,
            action: "price_scheduled",
            subject: &scope.subject(),
            before: None,
            after: Some(serde_json::json!({
                "id": id,
                "unit_price_centifen_per_kwh": price.centifen_per_kwh(),
                "effective_from_ms": effective_from_ms,
            })),
        },
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Withdraws a scheduled price that is not yet in force, audited
/// (`price_withdrawn`). A row already in force is refused (`Conflict`):
/// orders may carry it.
pub async fn withdraw_price(
    db: &Db,
    id: i64,
    actor: &Actor,
    now_ms: i64,
) -> Result<ScheduledPrice> {
    let mut tx = db.begin().await?;
    let row: Option<ScheduledRow> = on_tx!(&mut tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(
        format!("{SCHEDULE_SELECT} where ps.id = $1")
    ))
    .bind(id)
    .fetch_optional(c)
    .await?);
    let Some(row) = row else {
        return Err(Error::NotFound("price_schedule"));
    };
    let row = ScheduledPrice::try_from(row)?;
    let n = on_tx!(&mut tx, |c| sqlx::query(
        "delete from price_schedule where id = $1 and effective_from_ms > $2"
    )
    .bind(id)
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected());
    if n != 1 {
        return Err(Error::Conflict("the price is already in force".to_owned()));
    }
    audit::append_tx(
        &mut tx,
        &audit::Entry {
            actor,
            action: "price_withdrawn",
            subject: &row.scope.subject(),
            before: Some(serde_json::json!({
                "id": id,
                "unit_price_centifen_per_kwh": row.unit_price.centifen_per_kwh(),
                "effective_from_ms": row.effective_from_ms,
            })),
            after: None,
        },
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(row)
}

const SCHEDULE_SELECT: &str =
    "select ps.id, ps.area_id, ps.building_id, b.name_zh as building_name_zh,
        b.name_en as building_name_en, ps.unit_price_centifen_per_kwh, ps.effective_from_ms,
        ps.operator_name, ps.created_at_ms
    from price_schedule ps left join building b on b.id = ps.building_id";

#[derive(sqlx::FromRow)]
struct ScheduledRow {
    id: i64,
    area_id: i64,
    building_id: Option<i64>,
    building_name_zh: Option<String>,
    building_name_en: Option<String>,
    unit_price_centifen_per_kwh: i64,
    effective_from_ms: i64,
    operator_name: String,
    created_at_ms: i64,
}

impl TryFrom<ScheduledRow> for ScheduledPrice {
    type Error = Error;

    fn try_from(r: ScheduledRow) -> Result<Self> {
        let unit_price = UnitPrice::from_centifen_per_kwh(r.unit_price_centifen_per_kwh)
            .ok_or_else(|| {
                Error::Corrupt(format!(
                    "price_schedule {} has price {}",
                    r.id, r.unit_price_centifen_per_kwh
                ))
            })?;
        Ok(Self {
            id: r.id,
            scope: Scope {
                area_id: AreaId::new(r.area_id),
                building_id: r.building_id,
            },
            building_name_zh: r.building_name_zh,
            building_name_en: r.building_name_en,
            unit_price,
            effective_from_ms: r.effective_from_ms,
            operator_name: r.operator_name,
            created_at_ms: r.created_at_ms,
        })
    }
}

/// One schedule row by id.
pub async fn scheduled(db: &Db, id: i64) -> Result<Option<ScheduledPrice>> {
    let row: Option<ScheduledRow> = on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SCHEDULE_SELECT} where ps.id = $1"
    )))
    .bind(id)
    .fetch_optional(p)
    .await?);
    row.map(ScheduledPrice::try_from).transpose()
}

/// The schedule of an area (its own rows and its buildings'), newest
/// instant first, at most [`SCHEDULE_LIST_MAX`].
pub async fn schedule(db: &Db, area_id: AreaId) -> Result<Vec<ScheduledPrice>> {
    let rows: Vec<ScheduledRow> = on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SCHEDULE_SELECT} where ps.area_id = $1
         order by ps.effective_from_ms desc, ps.id desc limit $2"
    )))
    .bind(area_id.get())
    .bind(SCHEDULE_LIST_MAX)
    .fetch_all(p)
    .await?);
    rows.into_iter().map(ScheduledPrice::try_from).collect()
}

/// The unit price in force for a meter at `at_ms` (`None`: no such meter).
pub async fn price_at(db: &Db, meter_id: MeterId, at_ms: i64) -> Result<Option<UnitPrice>> {
    const SQL: &str = concat!(
        "select ",
        crate::price_in_force_sql!("$2"),
        " from meter m join area a on a.id = m.area_id join room r on r.id = m.room_id where m.id = $1"
    );
    let v: Option<i64> = on_db!(db, |p| sqlx::query_scalar(SQL)
        .bind(meter_id.get())
        .bind(at_ms)
        .fetch_optional(p)
        .await?);
    v.map(|v| {
        UnitPrice::from_centifen_per_kwh(v)
            .ok_or_else(|| Error::Corrupt(format!("meter {} has price {v}", meter_id.get())))
    })
    .transpose()
}

/// A meter's price now and its next change, for the student's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceOutlook {
    /// In force now.
    pub now: UnitPrice,
    /// The next different price and the instant it comes into force.
    pub next: Option<(UnitPrice, i64)>,
}

/// How many future instants [`price_outlook`] considers: a change of the
/// area's price hidden by the building's own is skipped, and the first
/// instant at which the meter's price really changes is shown.
const OUTLOOK_INSTANTS_MAX: i64 = 16;

/// The meter's price at `now_ms` and its next change (`None`: no such meter).
pub async fn price_outlook(
    db: &Db,
    meter_id: MeterId,
    now_ms: i64,
) -> Result<Option<PriceOutlook>> {
    let Some(now) = price_at(db, meter_id, now_ms).await? else {
        return Ok(None);
    };
    let next = next_change(db, meter_id, now_ms, now).await?;
    Ok(Some(PriceOutlook { now, next }))
}

/// The first instant after `now_ms` at which the meter's price differs from
/// `now_price` (the price in force now, which the caller already read), and
/// that price. One query when nothing is scheduled (the overview's case).
pub async fn next_change(
    db: &Db,
    meter_id: MeterId,
    now_ms: i64,
    now_price: UnitPrice,
) -> Result<Option<(UnitPrice, i64)>> {
    let instants: Vec<i64> = on_db!(db, |p| sqlx::query_scalar(
        "select distinct ps.effective_from_ms
         from meter m join room r on r.id = m.room_id
         join price_schedule ps on ps.area_id = m.area_id
              and (ps.building_id = r.building_id or ps.building_id is null)
         where m.id = $1 and m.unit_price_centifen_per_kwh is null and ps.effective_from_ms > $2
         order by ps.effective_from_ms limit $3"
    )
    .bind(meter_id.get())
    .bind(now_ms)
    .bind(OUTLOOK_INSTANTS_MAX)
    .fetch_all(p)
    .await?);
    for t in instants {
        if let Some(p) = price_at(db, meter_id, t).await?
            && p != now_price
        {
            return Ok(Some((p, t)));
        }
    }
    Ok(None)
}

/// A scope's settings as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopePolicy {
    /// Where.
    pub scope: Scope,
    /// The building's name (zh), for a building's row.
    pub building_name_zh: Option<String>,
    /// The building's name (en), for a building's row.
    pub building_name_en: Option<String>,
    /// The low-balance threshold that replaces the meters' own, if set.
    pub low_balance_centikwh: Option<CentiKwh>,
    /// Who changed it last.
    pub operator_name: String,
    /// When.
    pub updated_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct PolicyRow {
    area_id: i64,
    building_id: Option<i64>,
    name_zh: Option<String>,
    name_en: Option<String>,
    low_balance_centikwh: Option<i64>,
    operator_name: String,
    updated_at_ms: i64,
}

/// The settings rows of an area and its buildings (area first).
pub async fn policies(db: &Db, area_id: AreaId) -> Result<Vec<ScopePolicy>> {
    let rows: Vec<PolicyRow> = on_db!(db, |p| sqlx::query_as(
        "select cp.area_id, cp.building_id, b.name_zh, b.name_en, cp.low_balance_centikwh,
                    cp.operator_name, cp.updated_at_ms
             from campus_policy cp left join building b on b.id = cp.building_id
             where cp.area_id = $1
             order by (case when cp.building_id is null then 0 else 1 end), b.position, b.id"
    )
    .bind(area_id.get())
    .fetch_all(p)
    .await?);
    Ok(rows
        .into_iter()
        .map(|r| ScopePolicy {
            scope: Scope {
                area_id: AreaId::new(r.area_id),
                building_id: r.building_id,
            },
            building_name_zh: r.name_zh,
            building_name_en: r.name_en,
            low_balance_centikwh: r.low_balance_centikwh.map(CentiKwh::new),
            operator_name: r.operator_name,
            updated_at_ms: r.updated_at_ms,
        })
        .collect())
}

/// Sets (or with `None` clears) the low-balance threshold of `scope`,
/// audited (`low_balance_policy_set`, before and after) in the same
/// transaction. One row per scope: the partial unique indexes of
/// migration 0018 decide between two concurrent first settings.
pub async fn set_low_balance(
    db: &Db,
    scope: Scope,
    threshold: Option<CentiKwh>,
    actor: &Actor,
    now_ms: i64,
) -> std::result::Result<(), ScheduleError> {
    if threshold.is_some_and(|t| t.get() < 0) {
        return Err(ScheduleError::Store(Error::Conflict(
            "a threshold is not negative".to_owned(),
        )));
    }
    let mut tx = db.begin().await?;
    check_scope(&mut tx, scope).await?;
    let value = threshold.map(CentiKwh::get);
    let (sel, upsert) = match scope.building_id {
        None => (
            "select low_balance_centikwh from campus_policy
             where area_id = $1 and building_id is null and cast($2 as bigint) is null",
            "insert into campus_policy (area_id, building_id, low_balance_centikwh, operator_name, updated_at_ms)
             values ($1, $2, $3, $4, $5)
             on conflict (area_id) where building_id is null
             do update set low_balance_centikwh = excluded.low_balance_centikwh,
                           operator_name = excluded.operator_name, updated_at_ms = excluded.updated_at_ms",
        ),
        Some(_) => (
            "select low_balance_centikwh from campus_policy where area_id = $1 and building_id = $2",
            "insert into campus_policy (area_id, building_id, low_balance_centikwh, operator_name, updated_at_ms)
             values ($1, $2, $3, $4, $5)
             on conflict (building_id) where building_id is not null
             do update set low_balance_centikwh = excluded.low_balance_centikwh,
                           operator_name = excluded.operator_name, updated_at_ms = excluded.updated_at_ms",
        ),
    };
    let before: Option<Option<i64>> = on_tx!(&mut tx, |c| sqlx::query_scalar(sel)
        .bind(scope.area_id.get())
        .bind(scope.building_id)
        .fetch_optional(c)
        .await?);
    let n = on_tx!(&mut tx, |c| sqlx::query(upsert)
        .bind(scope.area_id.get())
        .bind(scope.building_id)
        .bind(value)
        .bind(&actor.name)
        .bind(now_ms)
        .execute(c)
        .await?
        .rows_affected());
    if n != 1 {
        return Err(ScheduleError::Store(Error::Conflict(format!(
            "campus_policy upsert touched {n} rows"
        ))));
    }
    audit::append_tx(
        &mut tx,
        &audit::Entry {
            actor,
            action: "low_balance_policy_set",
            subject: &scope.subject(),
            before: Some(serde_json::json!({ "low_balance_centikwh": before.flatten() })),
            after: Some(serde_json::json!({ "low_balance_centikwh": value })),
        },
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The low-balance threshold in force for a meter (`None`: no such meter).
pub async fn low_balance_of(db: &Db, meter_id: MeterId) -> Result<Option<CentiKwh>> {
    const SQL: &str = concat!(
        "select ",
        crate::low_balance_sql!(),
        " from meter m join room r on r.id = m.room_id where m.id = $1"
    );
    let v: Option<i64> = on_db!(db, |p| sqlx::query_scalar(SQL)
        .bind(meter_id.get())
        .fetch_optional(p)
        .await?);
    Ok(v.map(CentiKwh::new))
}
