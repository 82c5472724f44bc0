//! The registry: areas, buildings, rooms, gateways, buses and meters;
//! seeding the reference campus; the installation status.

use crate::row::{self, BadValue, decode_row, decoded};
use crate::{Db, Result, Tx, on_db, on_tx};
use domain::campus::CampusPlan;
use domain::time::CampusTz;
use domain::{AreaId, CentiKwh, MeterAddress, MeterId, UnitPrice};
use serde::Serialize;

/// Where the simulator's (or real) gateways listen, for a seeded plan.
#[derive(Debug, Clone)]
pub struct GatewayAddressing {
    /// Host every gateway of the plan is reached at.
    pub host: String,
    /// Gateway `index` i listens on `base_port + i`.
    pub base_port: u16,
}

impl Default for GatewayAddressing {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            base_port: 21_000,
        }
    }
}

/// What `seed` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedOutcome {
    /// The plan's areas were created.
    Created {
        /// Meters created.
        meters: usize,
    },
    /// Every area of the plan already existed; nothing changed.
    AlreadyPresent,
}

/// Creates the areas of `plan` that do not exist yet, with their buildings,
/// rooms, gateways, buses and meters, in one transaction.
pub async fn seed(
    db: &Db,
    plan: &CampusPlan,
    addressing: &GatewayAddressing,
    now_ms: i64,
) -> Result<SeedOutcome> {
    let mut tx = db.begin().await?;
    let mut meters = 0;
    for area in &plan.areas {
        let exists: i64 = on_tx!(&mut tx, |c| sqlx::query_scalar(
            "select count(*) from area where code = $1"
        )
        .bind(&area.code)
        .fetch_one(c)
        .await?);
        if exists > 0 {
            continue;
        }
        let area_id: i64 = on_tx!(&mut tx, |c| {
            sqlx::query_scalar(
            "insert into area (code, name_zh, name_en, unit_price_centifen_per_kwh, created_at_ms)
             values ($1, $2, $3, $4, $5) returning id"
        )
        .bind(&area.code)
        .bind(&area.name_zh)
        .bind(&area.name_en)
        .bind(area.unit_price.centifen_per_kwh())
        .bind(now_ms)
        .fetch_one(c)
        .await?
        });
        for (pos, b) in area.buildings.iter().enumerate() {
            let building_id: i64 = on_tx!(&mut tx, |c| {
                sqlx::query_scalar(
                "insert into building (area_id, name_zh, name_en, position) values ($1, $2, $3, $4) returning id"
            )
            .bind(area_id)
            .bind(&b.name_zh)
            .bind(&b.name_en)
            .bind(i64::try_from(pos).unwrap_or(0))
            .fetch_one(c)
            .await?
            });
            for g in &b.gateways {
                let port = i64::from(addressing.base_port) + i64::try_from(g.index).unwrap_or(0);
                let gateway_id: i64 = on_tx!(&mut tx, |c| {
                    sqlx::query_scalar(
                    "insert into gateway (building_id, name, mode, host, port) values ($1, $2, 'dial', $3, $4)
                     returning id"
                )
                .bind(building_id)
                .bind(&g.name)
                .bind(&addressing.host)
                .bind(port)
                .fetch_one(c)
                .await?
                });
                for bus in &g.buses {
                    let bus_id: i64 = on_tx!(&mut tx, |c| {
                        sqlx::query_scalar(
                        "insert into bus (gateway_id, port, baud) values ($1, $2, $3) returning id"
                    )
                    .bind(gateway_id)
                    .bind(i64::from(bus.port))
                    .bind(i64::from(bus.baud))
                    .fetch_one(c)
                    .await?
                    });
                    insert_bus_meters(&mut tx, area_id, building_id, bus_id, &bus.meters, now_ms)
                        .await?;
                    meters += bus.meters.len();
                }
            }
        }
    }
    tx.commit().await?;
    Ok(if meters == 0 {
        SeedOutcome::AlreadyPresent
    } else {
        SeedOutcome::Created { meters }
    })
}

/// Inserts the rooms and meters of one bus with a few multi-row statements:
/// one round trip per row would make seeding 2316 meters take seconds on
/// PostgreSQL.
async fn insert_bus_meters(
    tx: &mut Tx,
    area_id: i64,
    building_id: i64,
    bus_id: i64,
    meters: &[domain::campus::MeterPlan],
    now_ms: i64,
) -> Result<()> {
    macro_rules! run {
        ($c:expr, $db:ty) => {{
            let mut qb =
                sqlx::QueryBuilder::<$db>::new("insert into room (building_id, number, floor) ");
            qb.push_values(meters, |mut b, m| {
                b.push_bind(building_id)
                    .push_bind(&m.room)
                    .push_bind(i64::from(m.floor));
            });
            qb.build().execute(&mut **$c).await?;
            let mut qb = sqlx::QueryBuilder::<$db>::new(
                "insert into meter (address, area_id, room_id, bus_id, hoard_limit_centikwh, created_at_ms) ",
            );
            qb.push_values(meters, |mut b, m| {
                b.push_bind(m.address.as_str())
                    .push_bind(area_id)
                    .push("(select id from room where building_id = ")
                    .push_bind_unseparated(building_id)
                    .push_unseparated(" and number = ")
                    .push_bind_unseparated(&m.room)
                    .push_unseparated(")")
                    .push_bind(bus_id)
                    .push_bind(domain::campus::METER_HOARD_LIMIT_CENTIKWH)
                    .push_bind(now_ms);
            });
            qb.build().execute(&mut **$c).await?;
        }};
    }
    match tx {
        Tx::Sqlite(t) => run!(t, sqlx::Sqlite),
        Tx::Postgres(t) => run!(t, sqlx::Postgres),
    }
    on_tx!(tx, |c| {
        sqlx::query(
        "insert into meter_state (meter_id, updated_at_ms) select id, $1 from meter where bus_id = $2"
    )
    .bind(now_ms)
    .bind(bus_id)
    .execute(c)
    .await?
    .rows_affected()
    });
    Ok(())
}

/// Totals describing an installation (`dormwatt status`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Status {
    /// Areas (schools/campuses).
    pub areas: i64,
    /// Buildings.
    pub buildings: i64,
    /// Rooms.
    pub rooms: i64,
    /// Meters.
    pub meters: i64,
    /// Gateways.
    pub gateways: i64,
    /// RS485 buses.
    pub buses: i64,
    /// Meters the head-end currently sees online.
    pub meters_online: i64,
    /// Orders not yet completed, closed or refunded (unpaid, charging, delayed, refunding).
    pub orders_open: i64,
    /// Students.
    pub students: i64,
    /// `("<area> / <building>", meter count)` in natural order
    /// ([`domain::natural`]: "4号楼" before "34号楼"); a JSON object in
    /// that order.
    #[serde(serialize_with = "ordered_map")]
    pub meters_per_building: Vec<(String, i64)>,
    /// Highest schema version applied.
    pub schema_version: i64,
}

/// Writes `(key, value)` pairs as a JSON object, keeping their order.
fn ordered_map<S: serde::Serializer>(
    pairs: &[(String, i64)],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap as _;
    let mut map = s.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// Reads the installation totals.
pub async fn status(db: &Db) -> Result<Status> {
    let count = |sql: &'static str| async move {
        let n: i64 = on_db!(db, |p| sqlx::query_scalar(sql).fetch_one(p).await?);
        Ok::<_, crate::Error>(n)
    };
    let rows: Vec<(String, String, i64)> = on_db!(db, |p| sqlx::query_as(
        "select a.name_zh, b.name_zh, count(m.id)
         from building b join area a on a.id = b.area_id
         left join room r on r.building_id = b.id
         left join meter m on m.room_id = r.id
         group by a.id, a.name_zh, b.id, b.name_zh, b.position
         order by a.id, b.position"
    )
    .fetch_all(p)
    .await?);
    Ok(Status {
        areas: count("select count(*) from area").await?,
        buildings: count("select count(*) from building").await?,
        rooms: count("select count(*) from room").await?,
        meters: count("select count(*) from meter").await?,
        gateways: count("select count(*) from gateway").await?,
        buses: count("select count(*) from bus").await?,
        meters_online: count("select count(*) from meter_state where online").await?,
        orders_open: count("select count(*) from orders where state in ('unpaid', 'charging', 'delayed', 'refunding')")
            .await?,
        students: count("select count(*) from student").await?,
        meters_per_building: {
            let mut per: Vec<(String, i64)> =
                rows.into_iter().map(|(a, b, n)| (format!("{a} / {b}"), n)).collect();
            // SQL orders by string (or by seeding position); people number buildings.
            domain::natural::sort_natural_by_key(&mut per, |(k, _)| k);
            per
        },
        schema_version: db.applied_schema_version().await?.unwrap_or(0),
    })
}

/// An area as shown in pickers.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Area {
    /// Row id.
    pub id: AreaId,
    /// Stable code.
    pub code: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// Tariff.
    pub unit_price_centifen_per_kwh: UnitPrice,
    /// Most kWh in one order.
    pub order_kwh_max: i64,
    /// The area's time zone for calendar days.
    pub time_zone: CampusTz,
}

/// [`Area`] as stored.
#[derive(sqlx::FromRow)]
struct AreaRow {
    id: i64,
    code: String,
    name_zh: String,
    name_en: String,
    unit_price_centifen_per_kwh: i64,
    order_kwh_max: i64,
    time_zone: String,
}

impl TryFrom<AreaRow> for Area {
    type Error = BadValue;

    fn try_from(r: AreaRow) -> std::result::Result<Self, BadValue> {
        Ok(Self {
            time_zone: row::campus_tz(&format!("area.time_zone of area {}", r.id), &r.time_zone)?,
            unit_price_centifen_per_kwh: decoded(
                &format!("area.unit_price_centifen_per_kwh of area {}", r.id),
                r.unit_price_centifen_per_kwh,
                UnitPrice::from_centifen_per_kwh(r.unit_price_centifen_per_kwh),
            )?,
            id: AreaId::new(r.id),
            code: r.code,
            name_zh: r.name_zh,
            name_en: r.name_en,
            order_kwh_max: r.order_kwh_max,
        })
    }
}

decode_row!(Area, AreaRow);

/// All areas in display order.
pub async fn areas(db: &Db) -> Result<Vec<Area>> {
    Ok(on_db!(db, |p| sqlx::query_as(
        "select id, code, name_zh, name_en, unit_price_centifen_per_kwh, order_kwh_max, time_zone
         from area order by id"
    )
    .fetch_all(p)
    .await?))
}

/// A meter with where it is and what it costs.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MeterInfo {
    /// Row id.
    pub id: MeterId,
    /// 12-digit nameplate address.
    pub address: MeterAddress,
    /// Area row id.
    pub area_id: AreaId,
    /// Area name (zh).
    pub area_name_zh: String,
    /// Area name (en).
    pub area_name_en: String,
    /// Building name (zh).
    pub building_name_zh: String,
    /// Building name (en).
    pub building_name_en: String,
    /// Room number.
    pub room: String,
    /// Effective tariff (meter override, else the area's).
    pub unit_price_centifen_per_kwh: UnitPrice,
    /// Low-balance threshold.
    pub low_balance_centikwh: CentiKwh,
    /// Hoarding limit: the meter refuses a balance above this.
    pub hoard_limit_centikwh: CentiKwh,
    /// Whether the factory default password is still in force.
    pub password_is_default: bool,
    /// Most kWh in one order in this area.
    pub order_kwh_max: i64,
    /// Last remaining energy read from the meter.
    pub remaining_centikwh: Option<CentiKwh>,
    /// When that was read.
    pub remaining_at_ms: Option<i64>,
}

/// [`MeterInfo`] as stored.
#[derive(sqlx::FromRow)]
struct MeterInfoRow {
    id: i64,
    address: String,
    area_id: i64,
    area_name_zh: String,
    area_name_en: String,
    building_name_zh: String,
    building_name_en: String,
    room: String,
    unit_price_centifen_per_kwh: i64,
    low_balance_centikwh: i64,
    hoard_limit_centikwh: i64,
    password_is_default: bool,
    order_kwh_max: i64,
    remaining_centikwh: Option<i64>,
    remaining_at_ms: Option<i64>,
}

impl TryFrom<MeterInfoRow> for MeterInfo {
    type Error = BadValue;

    fn try_from(r: MeterInfoRow) -> std::result::Result<Self, BadValue> {
        Ok(Self {
            unit_price_centifen_per_kwh: row::meter_price(r.id, r.unit_price_centifen_per_kwh)?,
            id: MeterId::new(r.id),
            address: row::meter_address(r.id, &r.address)?,
            area_id: AreaId::new(r.area_id),
            area_name_zh: r.area_name_zh,
            area_name_en: r.area_name_en,
            building_name_zh: r.building_name_zh,
            building_name_en: r.building_name_en,
            room: r.room,
            low_balance_centikwh: CentiKwh::new(r.low_balance_centikwh),
            hoard_limit_centikwh: CentiKwh::new(r.hoard_limit_centikwh),
            password_is_default: r.password_is_default,
            order_kwh_max: r.order_kwh_max,
            remaining_centikwh: r.remaining_centikwh.map(CentiKwh::new),
            remaining_at_ms: r.remaining_at_ms,
        })
    }
}

decode_row!(MeterInfo, MeterInfoRow);

/// The meter-info select list, followed by a literal `where` clause.
/// The price is the one in force at the placeholder `$at` (the wall clock
/// when the caller passes no instant) and the threshold the policy's
/// (`store::policy`).
macro_rules! meter_info {
    ($at:literal, $tail:literal) => {
        concat!(
            "select m.id, m.address, m.area_id, a.name_zh as area_name_zh, a.name_en as area_name_en,
        b.name_zh as building_name_zh, b.name_en as building_name_en, r.number as room, ",
            crate::price_in_force_sql!($at),
            " as unit_price_centifen_per_kwh, ",
            crate::low_balance_sql!(),
            " as low_balance_centikwh, m.hoard_limit_centikwh, (m.password_hash is null) as password_is_default,
        a.order_kwh_max, s.remaining_centikwh, s.remaining_at_ms
    from meter m
    join area a on a.id = m.area_id
    join room r on r.id = m.room_id
    join building b on b.id = r.building_id
    left join meter_state s on s.meter_id = m.id",
            $tail
        )
    };
}

/// Finds a meter by area and nameplate number (S10: buying for any meter);
/// its price is the one in force now (the order itself is priced again at
/// its creation, `orders::create`).
pub async fn meter_by_address(
    db: &Db,
    area_id: AreaId,
    address: &MeterAddress,
) -> Result<Option<MeterInfo>> {
    const SQL: &str = meter_info!("$3", " where m.area_id = $1 and m.address = $2");
    Ok(on_db!(db, |p| sqlx::query_as(SQL)
        .bind(area_id.get())
        .bind(address.as_str())
        .bind(crate::now_ms())
        .fetch_optional(p)
        .await?))
}

/// Finds a meter by row id (its price: the one in force now).
pub async fn meter_by_id(db: &Db, meter_id: MeterId) -> Result<Option<MeterInfo>> {
    const SQL: &str = meter_info!("$2", " where m.id = $1");
    Ok(on_db!(db, |p| sqlx::query_as(SQL)
        .bind(meter_id.get())
        .bind(crate::now_ms())
        .fetch_optional(p)
        .await?))
}
