//! Finding meters for the staff console (issue 13 item 3): by area and
//! nameplate number, by building and room, type-ahead, and the offline
//! meters. The console filters the rows by the operator's scope
//! (`domain::staff::can`), so each row carries its area and building.

use crate::{Db, Result, on_db};
use domain::{AreaId, BuildingId, MeterId};

/// Most rows one look-up returns before the console filters them by scope.
pub const ROWS_MAX: i64 = 500;

/// A meter as a look-up lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MeterHit {
    /// Meter row id.
    pub meter_id: MeterId,
    /// 12-digit nameplate number.
    pub address: String,
    /// Area.
    pub area_id: AreaId,
    /// Area code.
    pub area_code: String,
    /// Area name (zh).
    pub area_name_zh: String,
    /// Area name (en).
    pub area_name_en: String,
    /// Building.
    pub building_id: BuildingId,
    /// Building name (zh).
    pub building_name_zh: String,
    /// Building name (en).
    pub building_name_en: String,
    /// Room number.
    pub room: String,
    /// Online as the head-end last saw it (`None`: never polled).
    pub online: Option<bool>,
    /// Last answer from the meter (unix ms).
    pub last_seen_at_ms: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct HitRow {
    meter_id: i64,
    address: String,
    area_id: i64,
    area_code: String,
    area_name_zh: String,
    area_name_en: String,
    building_id: i64,
    building_name_zh: String,
    building_name_en: String,
    room: String,
    online: Option<bool>,
    last_seen_at_ms: Option<i64>,
}

impl From<HitRow> for MeterHit {
    fn from(r: HitRow) -> Self {
        MeterHit {
            meter_id: MeterId::new(r.meter_id),
            address: r.address,
            area_id: AreaId::new(r.area_id),
            area_code: r.area_code,
            area_name_zh: r.area_name_zh,
            area_name_en: r.area_name_en,
            building_id: BuildingId::new(r.building_id),
            building_name_zh: r.building_name_zh,
            building_name_en: r.building_name_en,
            room: r.room,
            online: r.online,
            last_seen_at_ms: r.last_seen_at_ms,
        }
    }
}

macro_rules! hits {
    ($tail:literal) => {
        concat!(
            "select m.id as meter_id, m.address, m.area_id, a.code as area_code, a.name_zh as area_name_zh,
        a.name_en as area_name_en, b.id as building_id, b.name_zh as building_name_zh,
        b.name_en as building_name_en, r.number as room, s.online, s.last_seen_at_ms
    from meter m
    join area a on a.id = m.area_id
    join room r on r.id = m.room_id
    join building b on b.id = r.building_id
    left join meter_state s on s.meter_id = m.id ",
            $tail
        )
    };
}

fn like_prefix(q: &str) -> String {
    let esc: String = q
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("{esc}%")
}

/// Meter `meter_id` as a look-up row (its area and building for the scope check).
pub async fn by_id(db: &Db, meter_id: i64) -> Result<Option<MeterHit>> {
    const SQL: &str = hits!("where m.id = $1");
    let r: Option<HitRow> = on_db!(db, |p| sqlx::query_as(SQL)
        .bind(meter_id)
        .fetch_optional(p)
        .await?);
    Ok(r.map(MeterHit::from))
}

/// The meter with nameplate number `address` in area `area_id`.
pub async fn by_address(db: &Db, area_id: i64, address: &str) -> Result<Option<MeterHit>> {
    const SQL: &str = hits!("where m.area_id = $1 and m.address = $2");
    let r: Option<HitRow> = on_db!(db, |p| sqlx::query_as(SQL)
        .bind(area_id)
        .bind(address)
        .fetch_optional(p)
        .await?);
    Ok(r.map(MeterHit::from))
}

/// The meters of room `room` (exact number) in building `building_id`.
pub async fn by_room(db: &Db, building_id: i64, room: &str) -> Result<Vec<MeterHit>> {
    const SQL: &str = hits!("where b.id = $1 and r.number = $2 order by m.address");
    let r: Vec<HitRow> = on_db!(db, |p| sqlx::query_as(SQL)
        .bind(building_id)
        .bind(room.trim())
        .fetch_all(p)
        .await?);
    Ok(r.into_iter().map(MeterHit::from).collect())
}

/// Type-ahead: meters whose nameplate number or room number starts with
/// `q` (optionally in area `area_id`), at most `limit` (≤ [`ROWS_MAX`]).
pub async fn suggest(db: &Db, q: &str, area_id: Option<i64>, limit: i64) -> Result<Vec<MeterHit>> {
    const SQL: &str = hits!(
        "where ($1 is null or m.area_id = $1)
           and (m.address like $2 escape '\\' or r.number like $2 escape '\\')
         order by m.address limit $3"
    );
    let pattern = like_prefix(q.trim());
    let r: Vec<HitRow> = on_db!(db, |p| sqlx::query_as(SQL)
        .bind(area_id)
        .bind(&pattern)
        .bind(limit.clamp(1, ROWS_MAX))
        .fetch_all(p)
        .await?);
    Ok(r.into_iter().map(MeterHit::from).collect())
}

/// Meters the head-end marked offline (or never reached), at most `limit`
/// (≤ [`ROWS_MAX`]), longest silent first.
pub async fn offline(db: &Db, limit: i64) -> Result<Vec<MeterHit>> {
    const SQL: &str = hits!(
        "where s.online is null or s.online = false
         order by coalesce(s.last_seen_at_ms, 0), m.address limit $1"
    );
    let r: Vec<HitRow> = on_db!(db, |p| sqlx::query_as(SQL)
        .bind(limit.clamp(1, ROWS_MAX))
        .fetch_all(p)
        .await?);
    Ok(r.into_iter().map(MeterHit::from).collect())
}

/// A building to pick in the building → room look-up.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BuildingRow {
    /// Building row id.
    pub id: i64,
    /// Area row id.
    pub area_id: i64,
    /// Name (zh).
    pub name_zh: String,
    /// Name (en).
    pub name_en: String,
}

/// Every building (the console filters by scope and sorts naturally).
pub async fn buildings(db: &Db) -> Result<Vec<BuildingRow>> {
    Ok(on_db!(db, |p| sqlx::query_as(
        "select id, area_id, name_zh, name_en from building order by area_id, id"
    )
    .fetch_all(p)
    .await?))
}

/// A meter's recent orders, newest first (at most `limit`, ≤ 50). Reads
/// the ids here and each order through `orders::by_id`, so the order row
/// is decoded in one place (a handful of rows on a console page).
pub async fn recent_orders(
    db: &Db,
    meter_id: MeterId,
    limit: i64,
) -> Result<Vec<crate::orders::Order>> {
    let ids: Vec<i64> = on_db!(db, |p| {
        sqlx::query_scalar(
        "select id from orders where meter_id = $1 order by created_at_ms desc, id desc limit $2"
    )
    .bind(meter_id.get())
    .bind(limit.clamp(1, 50))
    .fetch_all(p)
    .await?
    });
    let mut v = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(o) = crate::orders::by_id(db, domain::OrderId::new(id)).await? {
            v.push(o);
        }
    }
    Ok(v)
}
