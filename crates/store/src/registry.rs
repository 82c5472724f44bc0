//! Registry imports against the database (issue 14 item 2): the checks a
//! file's rows need the registry for, and applying them all or nothing.
//!
//! - [`check`] (the dry run) and [`apply`] run the same checks in one
//!   transaction: unknown area, building, room, gateway or bus; a building,
//!   room, gateway or meter address already registered; a bus over its
//!   `meter_capacity` (migration 0013).
//! - [`apply`] writes nothing when any row fails, and writes every row and
//!   one audit entry (`registry_imported`) in one commit otherwise.
//! - Two imports of the same file at once: on SQLite the second waits for
//!   the first (`BEGIN IMMEDIATE`) and is refused row by row; on PostgreSQL
//!   it passes the checks, then fails on the unique constraints when the
//!   first commits ([`Error::Conflict`]). Either way it changes nothing.

use crate::audit::{self, Actor, Entry};
use crate::{Db, Error, Result, Tx, on_db, on_tx};
use import::{Kind, Records, RowError, header_of};
use std::collections::{HashMap, HashSet};

/// `meter.low_balance_centikwh`'s default (migration 0001), for a row
/// that leaves it blank.
const LOW_BALANCE_DEFAULT_CENTIKWH: i64 = 500;

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every row was written.
    Applied {
        /// What.
        kind: Kind,
        /// How many rows.
        rows: usize,
    },
    /// Some rows fail; nothing was written.
    Refused(Vec<RowError>),
}

/// A bus as the checks see it.
#[derive(Debug, Clone, Copy)]
struct Bus {
    id: i64,
    capacity: i64,
    meters: i64,
}

/// The part of the registry the rows of one kind refer to.
#[derive(Debug, Default)]
struct Registry {
    areas: HashMap<String, i64>,
    /// (area code, building name) → (building id, area id).
    buildings: HashMap<(String, String), (i64, i64)>,
    /// Highest building `position` per area.
    positions: HashMap<i64, i64>,
    rooms: HashMap<(i64, String), i64>,
    gateways: HashMap<String, i64>,
    buses: HashMap<(i64, i64), Bus>,
    addresses: HashSet<String>,
}

async fn load(tx: &mut Tx, kind: Kind) -> Result<Registry> {
    let mut r = Registry::default();
    let areas: Vec<(String, i64)> = on_tx!(tx, |c| sqlx::query_as("select code, id from area")
        .fetch_all(c)
        .await?);
    r.areas = areas.into_iter().collect();
    let buildings: Vec<(String, String, i64, i64, i64)> = on_tx!(tx, |c| {
        sqlx::query_as(
        "select a.code, b.name_zh, b.id, b.area_id, b.position from building b join area a on a.id = b.area_id"
    )
    .fetch_all(c)
    .await?
    });
    for (code, name, id, area_id, position) in buildings {
        let top = r.positions.entry(area_id).or_insert(position);
        *top = (*top).max(position);
        r.buildings.insert((code, name), (id, area_id));
    }
    if matches!(kind, Kind::Rooms | Kind::Meters) {
        let rooms: Vec<(i64, String, i64)> = on_tx!(tx, |c| sqlx::query_as(
            "select building_id, number, id from room"
        )
        .fetch_all(c)
        .await?);
        r.rooms = rooms.into_iter().map(|(b, n, id)| ((b, n), id)).collect();
    }
    if matches!(kind, Kind::Gateways | Kind::Meters) {
        let gateways: Vec<(String, i64)> =
            on_tx!(tx, |c| sqlx::query_as("select name, id from gateway")
                .fetch_all(c)
                .await?);
        r.gateways = gateways.into_iter().collect();
    }
    if kind == Kind::Meters {
        let buses: Vec<(i64, i64, i64, i64, i64)> = on_tx!(tx, |c| sqlx::query_as(
            "select b.gateway_id, b.port, b.id, b.meter_capacity,
                    (select count(*) from meter m where m.bus_id = b.id)
             from bus b"
        )
        .fetch_all(c)
        .await?);
        r.buses = buses
            .into_iter()
            .map(|(g, port, id, capacity, meters)| {
                (
                    (g, port),
                    Bus {
                        id,
                        capacity,
                        meters,
                    },
                )
            })
            .collect();
        let addresses: Vec<String> =
            on_tx!(tx, |c| sqlx::query_scalar("select address from meter")
                .fetch_all(c)
                .await?);
        r.addresses = addresses.into_iter().collect();
    }
    Ok(r)
}

/// A row resolved to the ids it is written with.
enum Insert<'a> {
    Building {
        area_id: i64,
        position: i64,
        row: &'a import::Building,
    },
    /// In the building of this id.
    Room(i64, &'a import::Room),
    /// In the building of this id.
    Gateway(i64, &'a import::Gateway),
    Meter {
        area_id: i64,
        room_id: i64,
        bus_id: i64,
        row: &'a import::Meter,
    },
}

/// Resolves one row's place, or says why it cannot be.
struct Checker<'r> {
    kind: Kind,
    reg: &'r mut Registry,
    errors: Vec<RowError>,
}

impl Checker<'_> {
    fn fail(&mut self, row: u32, key: &str, reason: String) {
        self.errors
            .push(RowError::new(row, &header_of(self.kind, key), reason));
    }

    /// The building's (id, area id).
    fn building(&mut self, row: u32, area: &str, building: &str) -> Option<(i64, i64)> {
        if !self.reg.areas.contains_key(area) {
            self.fail(row, "area", format!("unknown area '{area}'"));
            return None;
        }
        let found = self
            .reg
            .buildings
            .get(&(area.to_owned(), building.to_owned()))
            .copied();
        if found.is_none() {
            self.fail(
                row,
                "building",
                format!("unknown building '{building}' in area '{area}'"),
            );
        }
        found
    }

    /// The building a new room or gateway goes in, unless the building is
    /// unknown or `taken` says the row's `key` is registered there already.
    fn new_in(
        &mut self,
        row: u32,
        area: &str,
        building: &str,
        key: &str,
        taken: impl FnOnce(&Registry, i64) -> bool,
    ) -> Option<i64> {
        let (building_id, _) = self.building(row, area, building)?;
        if taken(self.reg, building_id) {
            self.fail(row, key, "already registered".to_owned());
            return None;
        }
        Some(building_id)
    }

    fn plan<'a>(&mut self, records: &'a Records) -> Vec<Insert<'a>> {
        let mut out = Vec::with_capacity(records.len());
        match records {
            Records::Buildings(rows) => {
                for b in rows {
                    let Some(&area_id) = self.reg.areas.get(&b.area) else {
                        self.fail(b.row, "area", format!("unknown area '{}'", b.area));
                        continue;
                    };
                    if self
                        .reg
                        .buildings
                        .contains_key(&(b.area.clone(), b.name_zh.clone()))
                    {
                        self.fail(b.row, "building", "already registered".to_owned());
                        continue;
                    }
                    let position = self.reg.positions.entry(area_id).or_insert(-1);
                    *position += 1;
                    out.push(Insert::Building {
                        area_id,
                        position: *position,
                        row: b,
                    });
                }
            }
            Records::Rooms(rows) => {
                for r in rows {
                    let taken = |reg: &Registry, b| reg.rooms.contains_key(&(b, r.number.clone()));
                    let building = self.new_in(r.row, &r.area, &r.building, "room", taken);
                    out.extend(building.map(|b| Insert::Room(b, r)));
                }
            }
            Records::Gateways(rows) => {
                for g in rows {
                    let taken = |reg: &Registry, _| reg.gateways.contains_key(&g.name);
                    let building = self.new_in(g.row, &g.area, &g.building, "gateway", taken);
                    out.extend(building.map(|b| Insert::Gateway(b, g)));
                }
            }
            Records::Meters(rows) => {
                for m in rows {
                    if let Some(i) = self.meter(m) {
                        out.push(i);
                    }
                }
            }
        }
        out
    }

    fn meter<'a>(&mut self, m: &'a import::Meter) -> Option<Insert<'a>> {
        let before = self.errors.len();
        if self.reg.addresses.contains(m.address.as_str()) {
            self.fail(m.row, "address", "already registered".to_owned());
        }
        let place = self.building(m.row, &m.area, &m.building);
        let room_id = place.and_then(|(b, _)| self.reg.rooms.get(&(b, m.room.clone())).copied());
        if place.is_some() && room_id.is_none() {
            let reason = format!("unknown room '{}' in {}", m.room, m.building);
            self.fail(m.row, "room", reason);
        }
        let bus = match self.reg.gateways.get(&m.gateway) {
            None => {
                self.fail(m.row, "gateway", format!("unknown gateway '{}'", m.gateway));
                None
            }
            Some(&g) => {
                let bus = self.reg.buses.get(&(g, m.bus)).map(|b| (g, *b));
                if bus.is_none() {
                    let reason = format!("gateway '{}' has no bus on port {}", m.gateway, m.bus);
                    self.fail(m.row, "bus", reason);
                }
                bus
            }
        };
        if let Some((_, b)) = bus
            && b.meters >= b.capacity
        {
            let reason = format!(
                "bus over capacity: port {} of '{}' carries at most {} meters",
                m.bus, m.gateway, b.capacity
            );
            self.fail(m.row, "bus", reason);
        }
        let (Some((_, area_id)), Some(room_id), Some((g, b))) = (place, room_id, bus) else {
            return None;
        };
        if self.errors.len() > before {
            return None;
        }
        // Later rows see this meter on its bus.
        if let Some(b) = self.reg.buses.get_mut(&(g, m.bus)) {
            b.meters += 1;
        }
        Some(Insert::Meter {
            area_id,
            room_id,
            bus_id: b.id,
            row: m,
        })
    }
}

/// Loads the registry in `tx` and checks `records` against it.
async fn plan<'a>(tx: &mut Tx, records: &'a Records) -> Result<(Vec<Insert<'a>>, Vec<RowError>)> {
    let kind = records.kind();
    let mut reg = load(tx, kind).await?;
    let mut checker = Checker {
        kind,
        reg: &mut reg,
        errors: Vec::new(),
    };
    let inserts = checker.plan(records);
    Ok((inserts, checker.errors))
}

/// The dry run: every error `records` would meet in the database (nothing
/// is written; the checks read in a transaction that is rolled back).
pub async fn check(db: &Db, records: &Records) -> Result<Vec<RowError>> {
    let mut tx = db.begin().await?;
    let (_, errors) = plan(&mut tx, records).await?;
    Ok(errors)
}

/// Writes every row of `records` and one audit entry in one transaction,
/// or nothing when any row fails the checks.
pub async fn apply(db: &Db, records: &Records, actor: &Actor, now_ms: i64) -> Result<Outcome> {
    apply_file(db, records, actor, now_ms, None).await
}

/// [`apply`], recording the imported file's SHA-256 (hex) in the audit
/// entry (the console's import page).
pub async fn apply_file(
    db: &Db,
    records: &Records,
    actor: &Actor,
    now_ms: i64,
    sha256: Option<&str>,
) -> Result<Outcome> {
    apply_audited(db, records, actor, now_ms, "registry_imported", sha256).await
}

/// One row entered in the console's registry forms (a building, room,
/// gateway or meter): the import's checks and writes, audited as
/// `registry_created`.
pub async fn create(db: &Db, records: &Records, actor: &Actor, now_ms: i64) -> Result<Outcome> {
    apply_audited(db, records, actor, now_ms, "registry_created", None).await
}

async fn apply_audited(
    db: &Db,
    records: &Records,
    actor: &Actor,
    now_ms: i64,
    action: &str,
    sha256: Option<&str>,
) -> Result<Outcome> {
    let mut tx = db.begin().await?;
    if records.kind() == Kind::Meters {
        // Bus capacity is a count the checks read: row-lock every bus first
        // (a no-op update), so a second meter import waits for this one and
        // then counts its meters (PostgreSQL, READ COMMITTED; SQLite's
        // BEGIN IMMEDIATE already serialises writers). Without it two
        // imports each saw room and together overfilled a bus.
        on_tx!(&mut tx, |c| {
            sqlx::query("update bus set meter_capacity = meter_capacity")
                .execute(c)
                .await?;
        });
    }
    let (inserts, errors) = plan(&mut tx, records).await?;
    if !errors.is_empty() {
        return Ok(Outcome::Refused(errors));
    }
    let kind = records.kind();
    write(&mut tx, &inserts, now_ms).await.map_err(raced)?;
    audit::append_tx(
        &mut tx,
        &Entry {
            actor,
            action,
            subject: &format!("registry:{}", kind.as_str()),
            before: None,
            after: Some(match sha256 {
                Some(h) => {
                    serde_json::json!({ "kind": kind.as_str(), "rows": inserts.len(), "sha256": h })
                }
                None => serde_json::json!({ "kind": kind.as_str(), "rows": inserts.len() }),
            }),
        },
        now_ms,
    )
    .await?;
    bump_version_tx(&mut tx).await?;
    tx.commit().await.map_err(raced)?;
    Ok(Outcome::Applied {
        kind,
        rows: inserts.len(),
    })
}

/// A unique violation while writing: another import registered the same
/// thing after our checks.
fn raced(e: Error) -> Error {
    match e {
        Error::Sqlx(sqlx::Error::Database(d)) if d.is_unique_violation() => Error::Conflict(
            format!("another change registered the same row first; nothing was imported ({d})"),
        ),
        e => e,
    }
}

async fn write(tx: &mut Tx, inserts: &[Insert<'_>], now_ms: i64) -> Result<()> {
    for insert in inserts {
        let _rows = match *insert {
            Insert::Building {
                area_id,
                position,
                row,
            } => {
                on_tx!(tx, |c| {
                    sqlx::query(
                "insert into building (area_id, name_zh, name_en, position) values ($1, $2, $3, $4)"
            )
            .bind(area_id)
            .bind(&row.name_zh)
            .bind(&row.name_en)
            .bind(position)
            .execute(c)
            .await?
            .rows_affected()
                })
            }
            Insert::Room(building_id, row) => on_tx!(tx, |c| sqlx::query(
                "insert into room (building_id, number, floor) values ($1, $2, $3)"
            )
            .bind(building_id)
            .bind(&row.number)
            .bind(row.floor)
            .execute(c)
            .await?
            .rows_affected()),
            Insert::Gateway(building_id, row) => {
                let gateway_id: i64 = on_tx!(tx, |c| {
                    sqlx::query_scalar(
                    "insert into gateway (building_id, name, mode, host, port) values ($1, $2, $3, $4, $5)
                     returning id"
                )
                .bind(building_id)
                .bind(&row.name)
                .bind(row.mode.as_str())
                .bind(&row.host)
                .bind(row.port)
                .fetch_one(c)
                .await?
                });
                for port in &row.buses {
                    on_tx!(tx, |c| sqlx::query(
                        "insert into bus (gateway_id, port, baud) values ($1, $2, $3)"
                    )
                    .bind(gateway_id)
                    .bind(port)
                    .bind(row.baud)
                    .execute(c)
                    .await?
                    .rows_affected());
                }
                1
            }
            Insert::Meter {
                area_id,
                room_id,
                bus_id,
                row,
            } => on_tx!(tx, |c| {
                sqlx::query(
                "insert into meter (address, area_id, room_id, bus_id, profile, unit_price_centifen_per_kwh,
                                    low_balance_centikwh, hoard_limit_centikwh, created_at_ms)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            )
            .bind(row.address.as_str())
            .bind(area_id)
            .bind(room_id)
            .bind(bus_id)
            .bind(&row.profile)
            .bind(row.unit_price_centifen_per_kwh)
            .bind(
                row.low_balance_centikwh
                    .unwrap_or(LOW_BALANCE_DEFAULT_CENTIKWH)
            )
            .bind(domain::campus::METER_HOARD_LIMIT_CENTIKWH)
            .bind(now_ms)
            .execute(c)
            .await?
            .rows_affected()
            }),
        };
    }
    // Every meter has its state row, as a seeded one does.
    on_tx!(tx, |c| {
        sqlx::query(
        "insert into meter_state (meter_id, updated_at_ms)
         select id, $1 from meter m where not exists (select 1 from meter_state s where s.meter_id = m.id)"
    )
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected()
    });
    Ok(())
}

// ---- issue 14 item 1: the registry version (hot reload) and retiring ----

/// The registry's version: bumped in the transaction of every registry
/// change (import, edit, retire, gateway endpoint), so a head-end in any
/// process sees that it must reload (migration 0015).
pub async fn version(db: &Db) -> Result<i64> {
    Ok(on_db!(db, |p| sqlx::query_scalar(
        "select version from registry_version where id = 1"
    )
    .fetch_one(p)
    .await?))
}

/// Bumps the registry version inside `tx`.
pub async fn bump_version_tx(tx: &mut Tx) -> Result<()> {
    let n = on_tx!(tx, |c| sqlx::query(
        "update registry_version set version = version + 1 where id = 1"
    )
    .execute(c)
    .await?
    .rows_affected());
    if n != 1 {
        return Err(Error::Conflict("registry_version row missing".into()));
    }
    Ok(())
}

/// Bumps the registry version on its own (after a one-statement change).
pub async fn bump_version(db: &Db) -> Result<()> {
    let mut tx = db.begin().await?;
    bump_version_tx(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Why a meter cannot be retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetireRefusal {
    /// No such meter, or already retired.
    Unknown,
    /// An order for it is unpaid, charging or delayed: it must settle first.
    OrderInFlight,
    /// It still holds energy the student paid for (replacement carries it over).
    PositiveBalance,
}

/// Retires a meter: it leaves its bus (the head-end stops polling it) and
/// keeps its row and history. Refused while an order for it is in flight or
/// its last read balance is positive; the preconditions are in the
/// `UPDATE … WHERE`, evaluated after the meter row lock is held, so an
/// order created at the same moment is either seen (refused) or refused
/// itself (`CreateError::Retired`).
/// Audited as `meter_retired`.
pub async fn retire_meter(
    db: &Db,
    meter_id: i64,
    actor: &Actor,
    now_ms: i64,
) -> Result<std::result::Result<(), RetireRefusal>> {
    let mut tx = db.begin().await?;
    // PostgreSQL: take the meter row lock (the one order creation holds)
    // in a statement of its own first. The UPDATE below then runs on a
    // snapshot taken after any order created meanwhile committed; as one
    // statement it waited for the lock on its old snapshot and retired a
    // meter whose order it could not see (READ COMMITTED). SQLite's
    // BEGIN IMMEDIATE serialises the two transactions whole.
    if let Tx::Postgres(t) = &mut tx {
        sqlx::query("select id from meter where id = $1 for update")
            .bind(meter_id)
            .execute(&mut **t)
            .await?;
    }
    let n = on_tx!(&mut tx, |c| {
        sqlx::query(
        "update meter set bus_id = null, retired_at_ms = $2
         where id = $1 and retired_at_ms is null
           and not exists (select 1 from orders o where o.meter_id = $1
                           and o.state in ('unpaid', 'charging', 'delayed'))
           and coalesce((select s.remaining_centikwh from meter_state s where s.meter_id = $1), 0) <= 0"
    )
    .bind(meter_id)
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected()
    });
    if n != 1 {
        let (exists, in_flight): (bool, bool) = on_tx!(&mut tx, |c| sqlx::query_as(
            "select exists (select 1 from meter where id = $1 and retired_at_ms is null),
                    exists (select 1 from orders o where o.meter_id = $1
                            and o.state in ('unpaid', 'charging', 'delayed'))"
        )
        .bind(meter_id)
        .fetch_one(c)
        .await?);
        let why = if !exists {
            RetireRefusal::Unknown
        } else if in_flight {
            RetireRefusal::OrderInFlight
        } else {
            RetireRefusal::PositiveBalance
        };
        return Ok(Err(why));
    }
    audit::append_tx(
        &mut tx,
        &Entry {
            actor,
            action: "meter_retired",
            subject: &format!("meter:{meter_id}"),
            before: None,
            after: Some(serde_json::json!({ "retired_at_ms": now_ms })),
        },
        now_ms,
    )
    .await?;
    bump_version_tx(&mut tx).await?;
    tx.commit().await?;
    Ok(Ok(()))
}

// ---- issue 14 item 1: the console's registry pages ----

/// An area as the registry page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AreaRow {
    /// Row id.
    pub id: i64,
    /// Code (`cuc`).
    pub code: String,
    /// Chinese name.
    pub name_zh: String,
}

/// A building with its counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildingRow {
    /// Row id.
    pub id: i64,
    /// Area id.
    pub area_id: i64,
    /// Area code.
    pub area: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// Rooms registered.
    pub rooms: i64,
    /// Meters in its rooms (retired ones not counted).
    pub meters: i64,
}

/// A bus of a gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusRow {
    /// RS485 port.
    pub port: i64,
    /// Speed, bit/s.
    pub baud: i64,
    /// Most meters it carries.
    pub capacity: i64,
    /// Meters on it.
    pub meters: i64,
}

/// A gateway with its buses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRow {
    /// Row id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Its building's id.
    pub building_id: i64,
    /// Its building's Chinese name.
    pub building: String,
    /// `dial` or `listen`.
    pub mode: String,
    /// Host (dial mode; empty otherwise).
    pub host: String,
    /// TCP port (dial mode; 0 otherwise).
    pub port: i64,
    /// Its buses by port.
    pub buses: Vec<BusRow>,
}

/// A meter as the registry page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterRow {
    /// Row id.
    pub id: i64,
    /// Address.
    pub address: String,
    /// Area code.
    pub area: String,
    /// Building id.
    pub building_id: i64,
    /// Building's Chinese name.
    pub building: String,
    /// Room number.
    pub room: String,
    /// Gateway name (none once retired).
    pub gateway: Option<String>,
    /// Bus port (none once retired).
    pub bus: Option<i64>,
    /// Profile.
    pub profile: String,
    /// Own tariff, 0.0001 yuan per kWh; `None`: the area's.
    pub unit_price_centifen_per_kwh: Option<i64>,
    /// Low-balance threshold.
    pub low_balance_centikwh: i64,
    /// When it was retired.
    pub retired_at_ms: Option<i64>,
}

/// The registry in one read.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Areas by code.
    pub areas: Vec<AreaRow>,
    /// Buildings by area and position.
    pub buildings: Vec<BuildingRow>,
    /// Gateways by name.
    pub gateways: Vec<GatewayRow>,
    /// Meters of the chosen building (or the first `meters_max` of all), by address.
    pub meters: Vec<MeterRow>,
    /// Meters matching in all (the list may stop at `meters_max`).
    pub meters_total: i64,
}

type MeterTuple = (
    i64,
    String,
    String,
    i64,
    String,
    String,
    Option<String>,
    Option<i64>,
    String,
    Option<i64>,
    i64,
    Option<i64>,
);

/// Areas, buildings, gateways with buses, and the meters of `building_id`
/// (every building when `None`), at most `meters_max` of them.
pub async fn listing(db: &Db, building_id: Option<i64>, meters_max: i64) -> Result<Listing> {
    let areas: Vec<(i64, String, String)> = on_db!(db, |p| sqlx::query_as(
        "select id, code, name_zh from area order by code"
    )
    .fetch_all(p)
    .await?);
    let buildings: Vec<(i64, i64, String, String, String, i64, i64)> = on_db!(db, |p| {
        sqlx::query_as(
            "select b.id, b.area_id, a.code, b.name_zh, b.name_en,
                    (select count(*) from room r where r.building_id = b.id),
                    (select count(*) from meter m join room r on r.id = m.room_id
                     where r.building_id = b.id and m.retired_at_ms is null)
             from building b join area a on a.id = b.area_id
             order by a.code, b.position, b.id",
        )
        .fetch_all(p)
        .await?
    });
    let gateways: Vec<(i64, String, i64, String, String, String, i64)> =
        on_db!(db, |p| sqlx::query_as(
            "select g.id, g.name, g.building_id, b.name_zh, g.mode, g.host, g.port
             from gateway g join building b on b.id = g.building_id order by g.name"
        )
        .fetch_all(p)
        .await?);
    let buses: Vec<(i64, i64, i64, i64, i64)> = on_db!(db, |p| sqlx::query_as(
        "select u.gateway_id, u.port, u.baud, u.meter_capacity,
                (select count(*) from meter m where m.bus_id = u.id)
         from bus u order by u.gateway_id, u.port"
    )
    .fetch_all(p)
    .await?);
    let filter = building_id.unwrap_or(-1);
    let meters_total: i64 = on_db!(db, |p| sqlx::query_scalar(
        "select count(*) from meter m join room r on r.id = m.room_id
         where ($1 < 0 or r.building_id = $1)"
    )
    .bind(filter)
    .fetch_one(p)
    .await?);
    let meters: Vec<MeterTuple> = on_db!(db, |p| {
        sqlx::query_as(
            "select m.id, m.address, a.code, r.building_id, b.name_zh, r.number, g.name, u.port,
                    m.profile, m.unit_price_centifen_per_kwh, m.low_balance_centikwh, m.retired_at_ms
             from meter m join area a on a.id = m.area_id join room r on r.id = m.room_id
                  join building b on b.id = r.building_id
                  left join bus u on u.id = m.bus_id left join gateway g on g.id = u.gateway_id
             where ($1 < 0 or r.building_id = $1)
             order by m.address limit $2",
        )
        .bind(filter)
        .bind(meters_max)
        .fetch_all(p)
        .await?
    });
    let mut out = Listing {
        areas: areas
            .into_iter()
            .map(|(id, code, name_zh)| AreaRow { id, code, name_zh })
            .collect(),
        buildings: buildings
            .into_iter()
            .map(
                |(id, area_id, area, name_zh, name_en, rooms, meters)| BuildingRow {
                    id,
                    area_id,
                    area,
                    name_zh,
                    name_en,
                    rooms,
                    meters,
                },
            )
            .collect(),
        gateways: Vec::with_capacity(gateways.len()),
        meters: meters
            .into_iter()
            .map(
                |(
                    id,
                    address,
                    area,
                    building_id,
                    building,
                    room,
                    gateway,
                    bus,
                    profile,
                    unit_price_centifen_per_kwh,
                    low_balance_centikwh,
                    retired_at_ms,
                )| MeterRow {
                    id,
                    address,
                    area,
                    building_id,
                    building,
                    room,
                    gateway,
                    bus,
                    profile,
                    unit_price_centifen_per_kwh,
                    low_balance_centikwh,
                    retired_at_ms,
                },
            )
            .collect(),
        meters_total,
    };
    for (id, name, building_id, building, mode, host, port) in gateways {
        out.gateways.push(GatewayRow {
            buses: buses
                .iter()
                .filter(|b| b.0 == id)
                .map(|&(_, port, baud, capacity, meters)| BusRow {
                    port,
                    baud,
                    capacity,
                    meters,
                })
                .collect(),
            id,
            name,
            building_id,
            building,
            mode,
            host,
            port,
        });
    }
    Ok(out)
}

/// A meter's registry row, retired or not.
pub async fn meter(db: &Db, meter_id: i64) -> Result<Option<MeterRow>> {
    let row: Option<MeterTuple> = on_db!(db, |p| {
        sqlx::query_as(
            "select m.id, m.address, a.code, r.building_id, b.name_zh, r.number, g.name, u.port,
                    m.profile, m.unit_price_centifen_per_kwh, m.low_balance_centikwh, m.retired_at_ms
             from meter m join area a on a.id = m.area_id join room r on r.id = m.room_id
                  join building b on b.id = r.building_id
                  left join bus u on u.id = m.bus_id left join gateway g on g.id = u.gateway_id
             where m.id = $1",
        )
        .bind(meter_id)
        .fetch_optional(p)
        .await?
    });
    Ok(row.map(
        |(
            id,
            address,
            area,
            building_id,
            building,
            room,
            gateway,
            bus,
            profile,
            unit_price_centifen_per_kwh,
            low_balance_centikwh,
            retired_at_ms,
        )| MeterRow {
            id,
            address,
            area,
            building_id,
            building,
            room,
            gateway,
            bus,
            profile,
            unit_price_centifen_per_kwh,
            low_balance_centikwh,
            retired_at_ms,
        },
    ))
}

/// What an edit of a meter sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterEdit {
    /// Profile (one of `import::PROFILES`).
    pub profile: String,
    /// Own tariff; `None`: the area's.
    pub unit_price_centifen_per_kwh: Option<i64>,
    /// Low-balance threshold; `None`: the default.
    pub low_balance_centikwh: Option<i64>,
}

/// Sets a live (not retired) meter's profile, tariff and low-balance
/// threshold, audited as `meter_edited` with before and after, and bumps
/// the registry version (the head-end reloads the profile). `false`: no
/// such live meter, nothing changed.
pub async fn edit_meter(
    db: &Db,
    meter_id: i64,
    edit: &MeterEdit,
    actor: &Actor,
    now_ms: i64,
) -> Result<bool> {
    let mut tx = db.begin().await?;
    // PostgreSQL: the row lock makes `before` the row this update changes
    // (SQLite's BEGIN IMMEDIATE already serialises writers).
    let sql = match &tx {
        Tx::Postgres(_) => {
            "select profile, unit_price_centifen_per_kwh, low_balance_centikwh from meter
             where id = $1 and retired_at_ms is null for update"
        }
        Tx::Sqlite(_) => {
            "select profile, unit_price_centifen_per_kwh, low_balance_centikwh from meter
             where id = $1 and retired_at_ms is null"
        }
    };
    let before: Option<(String, Option<i64>, i64)> = on_tx!(&mut tx, |c| sqlx::query_as(sql)
        .bind(meter_id)
        .fetch_optional(c)
        .await?);
    let Some(before) = before else {
        return Ok(false);
    };
    let low_balance_centikwh = edit
        .low_balance_centikwh
        .unwrap_or(LOW_BALANCE_DEFAULT_CENTIKWH);
    let n = on_tx!(&mut tx, |c| {
        sqlx::query(
        "update meter set profile = $2, unit_price_centifen_per_kwh = $3, low_balance_centikwh = $4
         where id = $1 and retired_at_ms is null"
    )
    .bind(meter_id)
    .bind(&edit.profile)
    .bind(edit.unit_price_centifen_per_kwh)
    .bind(low_balance_centikwh)
    .execute(c)
    .await?
    .rows_affected()
    });
    if n != 1 {
        return Ok(false);
    }
    audit::append_tx(
        &mut tx,
        &Entry {
            actor,
            action: "meter_edited",
            subject: &format!("meter:{meter_id}"),
            before: Some(serde_json::json!({
                "profile": before.0,
                "unit_price_centifen_per_kwh": before.1,
                "low_balance_centikwh": before.2,
            })),
            after: Some(serde_json::json!({
                "profile": edit.profile,
                "unit_price_centifen_per_kwh": edit.unit_price_centifen_per_kwh,
                "low_balance_centikwh": low_balance_centikwh,
            })),
        },
        now_ms,
    )
    .await?;
    bump_version_tx(&mut tx).await?;
    tx.commit().await?;
    Ok(true)
}

/// A gateway's connection: mode, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayEdit {
    /// `dial` or `listen`.
    pub mode: String,
    /// Host we dial (empty when listening).
    pub host: String,
    /// Port we dial (0 when listening).
    pub port: i64,
}

/// Sets a gateway's mode, host and port in one transaction with its audit
/// entry (`gateway_edited`, before and after) and the registry version
/// bump (running head-ends reconnect). `false`: no such gateway.
pub async fn edit_gateway(
    db: &Db,
    gateway_id: i64,
    edit: &GatewayEdit,
    actor: &Actor,
    now_ms: i64,
) -> Result<bool> {
    let mut tx = db.begin().await?;
    let sql = match &tx {
        Tx::Postgres(_) => "select mode, host, port from gateway where id = $1 for update",
        Tx::Sqlite(_) => "select mode, host, port from gateway where id = $1",
    };
    let before: Option<(String, String, i64)> = on_tx!(&mut tx, |c| sqlx::query_as(sql)
        .bind(gateway_id)
        .fetch_optional(c)
        .await?);
    let Some(before) = before else {
        return Ok(false);
    };
    let n = on_tx!(&mut tx, |c| sqlx::query(
        "update gateway set mode = $2, host = $3, port = $4 where id = $1"
    )
    .bind(gateway_id)
    .bind(&edit.mode)
    .bind(&edit.host)
    .bind(edit.port)
    .execute(c)
    .await?
    .rows_affected());
    if n != 1 {
        return Ok(false);
    }
    audit::append_tx(
        &mut tx,
        &Entry {
            actor,
            action: "gateway_edited",
            subject: &format!("gateway:{gateway_id}"),
            before: Some(
                serde_json::json!({ "mode": before.0, "host": before.1, "port": before.2 }),
            ),
            after: Some(
                serde_json::json!({ "mode": edit.mode, "host": edit.host, "port": edit.port }),
            ),
        },
        now_ms,
    )
    .await?;
    bump_version_tx(&mut tx).await?;
    tx.commit().await?;
    Ok(true)
}
