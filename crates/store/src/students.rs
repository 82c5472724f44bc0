//! Students and what belongs to them: sessions, meter bindings, binding
//! attempts (the audit trail the guessing throttle counts), inbox messages,
//! notices and the usage figures the student pages show.
//!
//! Invariant: every read of a binding, order or message that a page reaches
//! by an id from the URL is scoped by the student id in the same query, so a
//! tampered id finds nothing rather than someone else's row (ASVS 8.2.2).

use crate::message::{self, MessageArgs, MessageContent, Place};
use crate::row::{self, BadValue, decode_row};
use crate::{Db, Error, Result, Tx, on_db, on_tx};
use domain::time::CampusTz;
use domain::{AreaId, CentiKwh, MeterId, UnitPrice};
use serde::Serialize;

/// A student (a WeChat identity, or a demo identity).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq, Eq)]
pub struct Student {
    /// Row id.
    pub id: i64,
    /// WeChat openid (for demo students `demo-…`). Never log it in full.
    pub openid: String,
    /// Display name the student typed (may be empty).
    pub name: String,
    /// Phone number the student typed (may be empty).
    pub phone: String,
    /// Created by the demo login.
    pub is_demo: bool,
    /// A WeChat snapshot-page identity: may look, never bind or pay.
    pub is_snapshot: bool,
}

const STUDENT_COLUMNS: &str = "id, openid, name, phone, is_demo, is_snapshot";

/// Finds the student of `openid` or creates it. A later login of the same
/// openid updates the snapshot flag: WeChat decides per login.
pub async fn upsert_by_openid(
    db: &Db,
    openid: &str,
    is_snapshot: bool,
    now_ms: i64,
) -> Result<Student> {
    let sql = format!(
        "insert into student (openid, is_snapshot, created_at_ms) values ($1, $2, $3)
         on conflict (openid) do update set is_snapshot = excluded.is_snapshot
         returning {STUDENT_COLUMNS}"
    );
    Ok(on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(openid)
    .bind(is_snapshot)
    .bind(now_ms)
    .fetch_one(p)
    .await?))
}

/// Creates a demo student (demo login only) with a random openid.
pub async fn create_demo(db: &Db, name: &str, now_ms: i64) -> Result<Student> {
    let openid = format!("demo-{:016x}", rand::random::<u64>());
    let sql = format!(
        "insert into student (openid, name, is_demo, created_at_ms) values ($1, $2, true, $3)
         returning {STUDENT_COLUMNS}"
    );
    Ok(on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(&openid)
    .bind(name)
    .bind(now_ms)
    .fetch_one(p)
    .await?))
}

/// Demo students, newest first (the demo login's picker).
pub async fn demo_students(db: &Db, limit: i64) -> Result<Vec<Student>> {
    let sql =
        format!("select {STUDENT_COLUMNS} from student where is_demo order by id desc limit $1");
    Ok(on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(limit)
    .fetch_all(p)
    .await?))
}

/// A student by id.
pub async fn by_id(db: &Db, student_id: i64) -> Result<Option<Student>> {
    let sql = format!("select {STUDENT_COLUMNS} from student where id = $1");
    Ok(on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(student_id)
    .fetch_optional(p)
    .await?))
}

/// Updates the profile fields (already validated by the caller).
pub async fn update_profile(db: &Db, student_id: i64, name: &str, phone: &str) -> Result<()> {
    on_db!(db, |p| sqlx::query(
        "update student set name = $2, phone = $3 where id = $1"
    )
    .bind(student_id)
    .bind(name)
    .bind(phone)
    .execute(p)
    .await?
    .rows_affected());
    Ok(())
}

// ---------------------------------------------------------------- sessions

/// What a valid session cookie resolves to, read in one query because every
/// page needs it.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct SessionRow {
    /// The student.
    pub student_id: i64,
    /// Their openid (for JSAPI payment; never log it).
    pub openid: String,
    /// Display name.
    pub name: String,
    /// Demo identity.
    pub is_demo: bool,
    /// Snapshot identity (look only).
    pub is_snapshot: bool,
    /// The per-session anti-CSRF token forms must echo.
    pub csrf_token: String,
    /// When the session ends.
    pub expires_at_ms: i64,
    /// Unread inbox messages (shown on every page's menu).
    pub unread: i64,
}

/// Stores a new session. `token_hash` is a hash of the cookie value: a leaked
/// database does not give out live sessions.
pub async fn create_session(
    db: &Db,
    token_hash: &str,
    student_id: i64,
    csrf_token: &str,
    now_ms: i64,
    expires_at_ms: i64,
) -> Result<()> {
    on_db!(db, |p| sqlx::query(
        "insert into session (token_hash, student_id, csrf_token, created_at_ms, expires_at_ms)
         values ($1, $2, $3, $4, $5)"
    )
    .bind(token_hash)
    .bind(student_id)
    .bind(csrf_token)
    .bind(now_ms)
    .bind(expires_at_ms)
    .execute(p)
    .await?
    .rows_affected());
    Ok(())
}

/// The live session of `token_hash`, if any (expired sessions are not returned).
pub async fn session(db: &Db, token_hash: &str, now_ms: i64) -> Result<Option<SessionRow>> {
    Ok(on_db!(db, |p| {
        sqlx::query_as(
        "select s.student_id, st.openid, st.name, st.is_demo, st.is_snapshot, s.csrf_token, s.expires_at_ms,
                (select count(*) from message m where m.student_id = s.student_id and m.read_at_ms is null)
                    as unread
         from session s join student st on st.id = s.student_id
         where s.token_hash = $1 and s.expires_at_ms > $2"
    )
    .bind(token_hash)
    .bind(now_ms)
    .fetch_optional(p)
    .await?
    }))
}

/// A live session together with the student's default meter (the
/// overview's data in one query: the most visited page pays one round trip
/// instead of two).
pub async fn session_with_default(
    db: &Db,
    token_hash: &str,
    now_ms: i64,
) -> Result<Option<(SessionRow, Option<BoundMeter>)>> {
    let row: Option<SessionDefaultRow> = on_db!(db, |p| {
        sqlx::query_as(concat!(
        "select s.student_id, st.openid, st.name, st.is_demo, st.is_snapshot, s.csrf_token, s.expires_at_ms,
                (select count(*) from message msg where msg.student_id = s.student_id and msg.read_at_ms is null)
                    as unread,
                bd.id as binding_id, bd.is_default, m.id as meter_id, m.address, m.area_id,
                a.name_zh as area_name_zh, a.name_en as area_name_en, a.time_zone,
                b.name_zh as building_name_zh, b.name_en as building_name_en, r.number as room, ",
            crate::price_in_force_sql!("$2"),
            " as unit_price_centifen_per_kwh,
                (m.password_hash is null) as password_is_default, ",
            crate::low_balance_sql!(),
            " as low_balance_centikwh,
                ms.remaining_centikwh, ms.overdraft_centikwh, ms.remaining_at_ms, ms.online, ms.relay_closed, ms.relay_reason,
                ms.relay_restore_at_ms, ms.power_w, ms.last_seen_at_ms
         from session s
         join student st on st.id = s.student_id
         left join binding bd on bd.id = (select b2.id from binding b2 where b2.student_id = s.student_id
                                          order by b2.is_default desc, b2.id limit 1)
         left join meter m on m.id = bd.meter_id
         left join area a on a.id = m.area_id
         left join room r on r.id = m.room_id
         left join building b on b.id = r.building_id
         left join meter_state ms on ms.meter_id = m.id
         where s.token_hash = $1 and s.expires_at_ms > $2"
    ))
    .bind(token_hash)
    .bind(now_ms)
    .fetch_optional(p)
    .await?
    });
    Ok(row.map(SessionDefaultRow::split).transpose()?)
}

#[derive(sqlx::FromRow)]
struct SessionDefaultRow {
    student_id: i64,
    openid: String,
    name: String,
    is_demo: bool,
    is_snapshot: bool,
    csrf_token: String,
    expires_at_ms: i64,
    unread: i64,
    binding_id: Option<i64>,
    is_default: Option<bool>,
    meter_id: Option<i64>,
    address: Option<String>,
    area_id: Option<i64>,
    area_name_zh: Option<String>,
    area_name_en: Option<String>,
    time_zone: Option<String>,
    building_name_zh: Option<String>,
    building_name_en: Option<String>,
    room: Option<String>,
    unit_price_centifen_per_kwh: Option<i64>,
    password_is_default: Option<bool>,
    low_balance_centikwh: Option<i64>,
    #[sqlx(flatten)]
    live: LiveRow,
}

impl SessionDefaultRow {
    fn split(self) -> std::result::Result<(SessionRow, Option<BoundMeter>), BadValue> {
        let session = SessionRow {
            student_id: self.student_id,
            openid: self.openid,
            name: self.name,
            is_demo: self.is_demo,
            is_snapshot: self.is_snapshot,
            csrf_token: self.csrf_token,
            expires_at_ms: self.expires_at_ms,
            unread: self.unread,
        };
        let meter = match (self.binding_id, self.meter_id, self.address, self.area_id) {
            (Some(binding_id), Some(meter_id), Some(address), Some(area_id)) => {
                Some(BoundMeter::try_from(BoundMeterRow {
                    binding_id,
                    is_default: self.is_default.unwrap_or(false),
                    meter_id,
                    address,
                    area_id,
                    area_name_zh: self.area_name_zh.unwrap_or_default(),
                    area_name_en: self.area_name_en.unwrap_or_default(),
                    time_zone: self.time_zone.unwrap_or_default(),
                    building_name_zh: self.building_name_zh.unwrap_or_default(),
                    building_name_en: self.building_name_en.unwrap_or_default(),
                    room: self.room.unwrap_or_default(),
                    unit_price_centifen_per_kwh: self.unit_price_centifen_per_kwh.unwrap_or(0),
                    password_is_default: self.password_is_default.unwrap_or(false),
                    low_balance_centikwh: self.low_balance_centikwh.unwrap_or(0),
                    live: self.live,
                })?)
            }
            _ => None,
        };
        Ok((session, meter))
    }
}

/// Ends a session (logout).
pub async fn delete_session(db: &Db, token_hash: &str) -> Result<()> {
    on_db!(db, |p| sqlx::query(
        "delete from session where token_hash = $1"
    )
    .bind(token_hash)
    .execute(p)
    .await?
    .rows_affected());
    Ok(())
}

/// Deletes expired sessions; returns how many.
pub async fn purge_sessions(db: &Db, now_ms: i64) -> Result<u64> {
    Ok(on_db!(db, |p| sqlx::query(
        "delete from session where expires_at_ms <= $1"
    )
    .bind(now_ms)
    .execute(p)
    .await?
    .rows_affected()))
}

// ---------------------------------------------------------------- bindings

/// A meter bound by a student, with its place and latest state.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BoundMeter {
    /// Binding row id (what URLs carry).
    pub binding_id: i64,
    /// Whether this is the student's default meter (S8).
    pub is_default: bool,
    /// Meter row id.
    pub meter_id: MeterId,
    /// 12-digit nameplate number.
    pub address: String,
    /// Area row id.
    pub area_id: AreaId,
    /// Area name (zh).
    pub area_name_zh: String,
    /// Area name (en).
    pub area_name_en: String,
    /// The area's time zone.
    pub time_zone: CampusTz,
    /// Building name (zh).
    pub building_name_zh: String,
    /// Building name (en).
    pub building_name_en: String,
    /// Room number.
    pub room: String,
    /// Effective tariff (meter override, else the area's).
    pub unit_price_centifen_per_kwh: UnitPrice,
    /// Whether the factory default password is still in force (S7).
    pub password_is_default: bool,
    /// Below this much energy the meter counts as low (its own setting).
    pub low_balance_centikwh: CentiKwh,
    /// Last remaining energy read.
    pub remaining_centikwh: Option<CentiKwh>,
    /// Overdraft energy used, as last read (DI 00900101).
    pub overdraft_centikwh: Option<CentiKwh>,
    /// When it was read.
    pub remaining_at_ms: Option<i64>,
    /// Whether the head-end currently reaches the meter.
    pub online: Option<bool>,
    /// Relay closed (power on); null before the first reading.
    pub relay_closed: Option<bool>,
    /// Why the relay is open: balance, malicious_load, over_power, staff, lockout.
    pub relay_reason: Option<String>,
    /// When a malicious-load trip restores by itself.
    pub relay_restore_at_ms: Option<i64>,
    /// Present load.
    pub power_w: Option<i64>,
    /// Last time the meter answered.
    pub last_seen_at_ms: Option<i64>,
}

/// [`BoundMeter`] as stored.
#[derive(sqlx::FromRow)]
struct BoundMeterRow {
    binding_id: i64,
    is_default: bool,
    meter_id: i64,
    address: String,
    area_id: i64,
    area_name_zh: String,
    area_name_en: String,
    time_zone: String,
    building_name_zh: String,
    building_name_en: String,
    room: String,
    unit_price_centifen_per_kwh: i64,
    password_is_default: bool,
    low_balance_centikwh: i64,
    #[sqlx(flatten)]
    live: LiveRow,
}

/// A meter's latest state as the student's views read it (`meter_state`,
/// left-joined: every column may be null).
#[derive(sqlx::FromRow)]
struct LiveRow {
    remaining_centikwh: Option<i64>,
    overdraft_centikwh: Option<i64>,
    remaining_at_ms: Option<i64>,
    online: Option<bool>,
    relay_closed: Option<bool>,
    relay_reason: Option<String>,
    relay_restore_at_ms: Option<i64>,
    power_w: Option<i64>,
    last_seen_at_ms: Option<i64>,
}

impl TryFrom<BoundMeterRow> for BoundMeter {
    type Error = BadValue;

    fn try_from(r: BoundMeterRow) -> std::result::Result<Self, BadValue> {
        let live = r.live;
        Ok(Self {
            time_zone: row::campus_tz(
                &format!("area.time_zone of area {}", r.area_id),
                &r.time_zone,
            )?,
            unit_price_centifen_per_kwh: row::meter_price(
                r.meter_id,
                r.unit_price_centifen_per_kwh,
            )?,
            binding_id: r.binding_id,
            is_default: r.is_default,
            meter_id: MeterId::new(r.meter_id),
            address: r.address,
            area_id: AreaId::new(r.area_id),
            area_name_zh: r.area_name_zh,
            area_name_en: r.area_name_en,
            building_name_zh: r.building_name_zh,
            building_name_en: r.building_name_en,
            room: r.room,
            password_is_default: r.password_is_default,
            low_balance_centikwh: CentiKwh::new(r.low_balance_centikwh),
            remaining_centikwh: live.remaining_centikwh.map(CentiKwh::new),
            overdraft_centikwh: live.overdraft_centikwh.map(CentiKwh::new),
            remaining_at_ms: live.remaining_at_ms,
            online: live.online,
            relay_closed: live.relay_closed,
            relay_reason: live.relay_reason,
            relay_restore_at_ms: live.relay_restore_at_ms,
            power_w: live.power_w,
            last_seen_at_ms: live.last_seen_at_ms,
        })
    }
}

decode_row!(BoundMeter, BoundMeterRow);

/// The price is the one in force at the placeholder `$at` and the
/// threshold the policy's (`store::policy`).
macro_rules! bound_meters {
    ($at:literal, $tail:literal) => {
        concat!(
            "select bd.id as binding_id, bd.is_default, m.id as meter_id, m.address, m.area_id,
        a.name_zh as area_name_zh, a.name_en as area_name_en, a.time_zone,
        b.name_zh as building_name_zh, b.name_en as building_name_en, r.number as room, ",
            crate::price_in_force_sql!($at),
            " as unit_price_centifen_per_kwh,
        (m.password_hash is null) as password_is_default, ",
            crate::low_balance_sql!(),
            " as low_balance_centikwh,
        s.remaining_centikwh, s.overdraft_centikwh, s.remaining_at_ms, s.online, s.relay_closed, s.relay_reason,
        s.relay_restore_at_ms, s.power_w, s.last_seen_at_ms
    from binding bd
    join meter m on m.id = bd.meter_id
    join area a on a.id = m.area_id
    join room r on r.id = m.room_id
    join building b on b.id = r.building_id
    left join meter_state s on s.meter_id = m.id
    where bd.student_id = $1",
            $tail
        )
    };
}

/// The student's bound meters, default first (prices: in force now).
pub async fn bindings(db: &Db, student_id: i64) -> Result<Vec<BoundMeter>> {
    Ok(on_db!(db, |p| sqlx::query_as(bound_meters!(
        "$2",
        " order by bd.is_default desc, bd.id"
    ))
    .bind(student_id)
    .bind(crate::now_ms())
    .fetch_all(p)
    .await?))
}

/// The meter the home page and bill show: the default binding, else the
/// oldest binding.
pub async fn default_binding(db: &Db, student_id: i64) -> Result<Option<BoundMeter>> {
    Ok(on_db!(db, |p| sqlx::query_as(bound_meters!(
        "$2",
        " order by bd.is_default desc, bd.id limit 1"
    ))
    .bind(student_id)
    .bind(crate::now_ms())
    .fetch_optional(p)
    .await?))
}

/// One of the student's bindings by id; `None` for another student's (IDOR).
pub async fn binding(db: &Db, student_id: i64, binding_id: i64) -> Result<Option<BoundMeter>> {
    Ok(on_db!(db, |p| sqlx::query_as(bound_meters!(
        "$3",
        " and bd.id = $2"
    ))
    .bind(student_id)
    .bind(binding_id)
    .bind(crate::now_ms())
    .fetch_optional(p)
    .await?))
}

/// A meter as the binding check needs it.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct MeterSecret {
    /// Meter row id.
    pub meter_id: i64,
    /// Stored password hash; `None` = factory default.
    pub password_hash: Option<String>,
}

/// The password hash of the meter with this number in this area.
pub async fn meter_secret(db: &Db, area_id: i64, address: &str) -> Result<Option<MeterSecret>> {
    Ok(on_db!(db, |p| sqlx::query_as(
        "select id as meter_id, password_hash from meter where area_id = $1 and address = $2"
    )
    .bind(area_id)
    .bind(address)
    .fetch_optional(p)
    .await?))
}

/// The password hash of a meter the student has bound (for changing it).
pub async fn bound_meter_secret(
    db: &Db,
    student_id: i64,
    binding_id: i64,
) -> Result<Option<MeterSecret>> {
    Ok(on_db!(db, |p| {
        sqlx::query_as(
        "select m.id as meter_id, m.password_hash from binding bd join meter m on m.id = bd.meter_id
         where bd.student_id = $1 and bd.id = $2"
    )
    .bind(student_id)
    .bind(binding_id)
    .bind(crate::now_ms())
    .fetch_optional(p)
    .await?
    }))
}

/// What [`bind`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindOutcome {
    /// The binding row id.
    pub binding_id: i64,
    /// The student had already bound this meter (nothing new was created).
    pub already_bound: bool,
    /// Other students who had bound this meter and were told.
    pub others_told: u64,
}

/// What [`bind`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindResult {
    /// Bound (or already bound).
    Bound(BindOutcome),
    /// The student already has `bindings_max` other meters; nothing changed.
    TooMany,
}

/// Binds a meter (the password was checked by the caller), at most
/// `bindings_max` meters per student. The first meter becomes the default;
/// `make_default` moves the default here. Other binders of the meter get an
/// inbox message (they may be roommates, or may learn that their password
/// leaked), in the same transaction.
///
/// Concurrent binds of one student are serialised on the student's row
/// (`FOR UPDATE` on PostgreSQL; SQLite's write transactions are serial), so
/// parallel requests cannot each see room under the cap.
pub async fn bind(
    db: &Db,
    student_id: i64,
    meter_id: i64,
    make_default: bool,
    bindings_max: usize,
    now_ms: i64,
) -> Result<BindResult> {
    let mut tx = db.begin().await?;
    if let Tx::Postgres(t) = &mut tx {
        sqlx::query("select id from student where id = $1 for update")
            .bind(student_id)
            .fetch_optional(&mut **t)
            .await?;
    }
    let existing: Option<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "select id from binding where student_id = $1 and meter_id = $2"
    )
    .bind(student_id)
    .bind(meter_id)
    .fetch_optional(c)
    .await?);
    let has_any: i64 = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "select count(*) from binding where student_id = $1"
    )
    .bind(student_id)
    .fetch_one(c)
    .await?);
    if existing.is_none() && usize::try_from(has_any).unwrap_or(usize::MAX) >= bindings_max {
        drop(tx);
        return Ok(BindResult::TooMany);
    }
    let (binding_id, already_bound, others_told) = match existing {
        Some(id) => (id, true, 0),
        None => {
            let id: i64 = on_tx!(&mut tx, |c| sqlx::query_scalar(
                "insert into binding (student_id, meter_id, is_default, created_at_ms)
                 values ($1, $2, false, $3) returning id"
            )
            .bind(student_id)
            .bind(meter_id)
            .bind(now_ms)
            .fetch_one(c)
            .await?);
            let told = tell_other_binders(&mut tx, meter_id, student_id, now_ms, |place| {
                MessageArgs::BinderAdded { place }
            })
            .await?;
            (id, false, told)
        }
    };
    if make_default || has_any == 0 {
        set_default_in(&mut tx, student_id, binding_id).await?;
    }
    tx.commit().await?;
    Ok(BindResult::Bound(BindOutcome {
        binding_id,
        already_bound,
        others_told,
    }))
}

/// Sends `what` (a message about the meter's place) to every student bound
/// to `meter_id` except `student_id`; returns how many were told.
async fn tell_other_binders(
    tx: &mut Tx,
    meter_id: i64,
    student_id: i64,
    now_ms: i64,
    what: impl Fn(Place) -> MessageArgs,
) -> Result<u64> {
    let others: Vec<i64> = on_tx!(tx, |c| {
        sqlx::query_scalar(
        "select student_id from binding where meter_id = $1 and student_id <> $2 order by student_id"
    )
    .bind(meter_id)
    .bind(student_id)
    .fetch_all(c)
    .await?
    });
    if others.is_empty() {
        return Ok(0);
    }
    let place = message::place_in(tx, MeterId::new(meter_id)).await?;
    let mut told = 0;
    for other in others {
        if message::insert_in(tx, other, &what(place.clone()), None, now_ms).await? {
            told += 1;
        }
    }
    Ok(told)
}

/// Makes the oldest binding the default of every student left without
/// one (after bindings were removed).
pub(crate) async fn restore_defaults_in(tx: &mut Tx) -> Result<u64> {
    Ok(on_tx!(tx, |c| sqlx::query(
        "update binding set is_default = true
         where id in (select min(b.id) from binding b group by b.student_id
                      having sum(case when b.is_default then 1 else 0 end) = 0)"
    )
    .execute(c)
    .await?
    .rows_affected()))
}

async fn set_default_in(tx: &mut Tx, student_id: i64, binding_id: i64) -> Result<bool> {
    let n = on_tx!(tx, |c| sqlx::query(
        "update binding set is_default = (id = $2) where student_id = $1"
    )
    .bind(student_id)
    .bind(binding_id)
    .execute(c)
    .await?
    .rows_affected());
    Ok(n > 0)
}

/// Makes one of the student's bindings the default. `NotFound` for a
/// binding that is not theirs.
pub async fn set_default(db: &Db, student_id: i64, binding_id: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    let mine: i64 = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "select count(*) from binding where student_id = $1 and id = $2"
    )
    .bind(student_id)
    .bind(binding_id)
    .fetch_one(c)
    .await?);
    if mine == 0 {
        return Err(Error::NotFound("binding"));
    }
    set_default_in(&mut tx, student_id, binding_id).await?;
    tx.commit().await?;
    Ok(())
}

/// Removes one of the student's bindings; if it was the default, the oldest
/// remaining binding becomes the default. `NotFound` for another's binding.
pub async fn unbind(db: &Db, student_id: i64, binding_id: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    let n = on_tx!(&mut tx, |c| sqlx::query(
        "delete from binding where student_id = $1 and id = $2"
    )
    .bind(student_id)
    .bind(binding_id)
    .execute(c)
    .await?
    .rows_affected());
    if n == 0 {
        return Err(Error::NotFound("binding"));
    }
    let defaults: i64 = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "select count(*) from binding where student_id = $1 and is_default"
    )
    .bind(student_id)
    .fetch_one(c)
    .await?);
    if defaults == 0 {
        let next: Option<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
            "select id from binding where student_id = $1 order by id limit 1"
        )
        .bind(student_id)
        .fetch_optional(c)
        .await?);
        if let Some(next) = next {
            set_default_in(&mut tx, student_id, next).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Sets meter `meter_id`'s password hash to `new_hash` only if it still is
/// `expected` (`None`: the factory default); whether it did (row count
/// checked, so of two changes at once one wins).
pub(crate) async fn set_meter_password_in(
    tx: &mut Tx,
    meter_id: i64,
    expected: Option<&str>,
    new_hash: &str,
) -> Result<bool> {
    let n = on_tx!(tx, |c| sqlx::query(
        "update meter set password_hash = $2
         where id = $1 and ((password_hash is null and $3 is null) or password_hash = $3)"
    )
    .bind(meter_id)
    .bind(new_hash)
    .bind(expected)
    .execute(c)
    .await?
    .rows_affected());
    Ok(n == 1)
}

/// Changes a meter's password as one of its binders, who proved the current
/// one: only if the hash still is `expected` (two concurrent changes cannot
/// both win), and in the same transaction every *other* binder — none of
/// whom has proven the new password — is unbound and told so in the inbox.
/// `None`: the password changed meanwhile (nothing done); `Some(n)`: `n`
/// other binders were removed.
pub async fn change_meter_password(
    db: &Db,
    student_id: i64,
    meter_id: i64,
    expected: Option<&str>,
    new_hash: &str,
    now_ms: i64,
) -> Result<Option<u64>> {
    let mut tx = db.begin().await?;
    if !set_meter_password_in(&mut tx, meter_id, expected, new_hash).await? {
        drop(tx);
        return Ok(None);
    }
    let mine: i64 = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "select count(*) from binding where student_id = $1 and meter_id = $2"
    )
    .bind(student_id)
    .bind(meter_id)
    .fetch_one(c)
    .await?);
    if mine != 1 {
        drop(tx);
        return Err(Error::NotFound("binding"));
    }
    let told = tell_other_binders(&mut tx, meter_id, student_id, now_ms, |place| {
        MessageArgs::UnboundByPasswordChange { place }
    })
    .await?;
    let gone = on_tx!(&mut tx, |c| sqlx::query(
        "delete from binding where meter_id = $1 and student_id <> $2"
    )
    .bind(meter_id)
    .bind(student_id)
    .execute(c)
    .await?
    .rows_affected());
    debug_assert_eq!(told, gone);
    // A removed binder whose default it was gets their oldest meter as default.
    restore_defaults_in(&mut tx).await?;
    tx.commit().await?;
    Ok(Some(gone))
}

/// Another binder of a meter, as a binder may see them (masked).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CoBinder {
    /// Display name (mask it before showing).
    pub name: String,
    /// Phone (mask it before showing).
    pub phone: String,
    /// When they bound the meter.
    pub created_at_ms: i64,
}

/// The other students bound to the meter of `student_id`'s binding.
pub async fn co_binders(db: &Db, student_id: i64, binding_id: i64) -> Result<Vec<CoBinder>> {
    Ok(on_db!(db, |p| sqlx::query_as(
        "select s.name, s.phone, o.created_at_ms from binding mine
         join binding o on o.meter_id = mine.meter_id and o.student_id <> mine.student_id
         join student s on s.id = o.student_id
         where mine.student_id = $1 and mine.id = $2 order by o.id"
    )
    .bind(student_id)
    .bind(binding_id)
    .fetch_all(p)
    .await?))
}

// ---------------------------------------------------------------- bind attempts

/// One binding (or password) attempt, for the audit trail.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    /// Who tried.
    pub student_id: i64,
    /// The meter number as typed (normalised), whether or not it exists.
    pub meter_address: &'a str,
    /// Client address.
    pub client_ip: &'a str,
    /// Whether the password was right.
    pub ok: bool,
}

/// Records an attempt as a failure *before* the password is checked, and
/// returns its id: parallel requests then see each other's attempts when
/// they count ([`failures`] with `except_id`), so they cannot each get a
/// guess past the throttle. Call [`settle_attempt`] after the check, or
/// [`forget_attempt`] if the attempt was refused by the throttle.
pub async fn record_attempt(db: &Db, a: &Attempt<'_>, now_ms: i64) -> Result<i64> {
    Ok(on_db!(db, |p| {
        sqlx::query_scalar(
            "insert into bind_attempt (student_id, meter_address, client_ip, ok, at_ms)
             values ($1, $2, $3, $4, $5) returning id",
        )
        .bind(a.student_id)
        .bind(a.meter_address)
        .bind(a.client_ip)
        .bind(a.ok)
        .bind(now_ms)
        .fetch_one(p)
        .await?
    }))
}

/// Marks a recorded attempt as successful (the password was right).
pub async fn settle_attempt(db: &Db, attempt_id: i64, ok: bool) -> Result<()> {
    on_db!(db, |p| sqlx::query(
        "update bind_attempt set ok = $2 where id = $1"
    )
    .bind(attempt_id)
    .bind(ok)
    .execute(p)
    .await?
    .rows_affected());
    Ok(())
}

/// Removes an attempt the throttle refused: a refused request never got a
/// guess, so it must not lengthen anyone's wait (a victim's meter cannot be
/// kept locked by hammering it).
pub async fn forget_attempt(db: &Db, attempt_id: i64) -> Result<()> {
    on_db!(db, |p| sqlx::query(
        "delete from bind_attempt where id = $1"
    )
    .bind(attempt_id)
    .execute(p)
    .await?
    .rows_affected());
    Ok(())
}

/// Failed attempts of one key in a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Failures {
    /// Failures in the window (a success does not reset them).
    pub count: i64,
    /// When the latest failure happened.
    pub last_at_ms: Option<i64>,
}

/// Which attempts a [`Failures`] count covers.
#[derive(Debug, Clone, Copy)]
pub enum AttemptKey<'a> {
    /// Attempts on one meter number, by anyone.
    Meter(&'a str),
    /// Attempts by one student on one meter number.
    MeterStudent(&'a str, i64),
    /// Attempts by one student, on any meter.
    Student(i64),
    /// Attempts from one client address.
    Ip(&'a str),
    /// All attempts.
    Global,
}

/// Failed attempts of `key` after `since_ms`, other than `except_id` (the
/// caller's own, still unsettled attempt). Successes never reset the count:
/// otherwise "four wrong guesses, then re-bind my own meter" repeats forever.
pub async fn failures(
    db: &Db,
    key: AttemptKey<'_>,
    since_ms: i64,
    except_id: i64,
) -> Result<Failures> {
    // The SQL texts are fixed strings per key (no injection).
    macro_rules! q {
        ($cond:literal $(, $v:expr)*) => {
            on_db!(db, |p| sqlx::query_as(concat!(
                "select count(*) as count, max(at_ms) as last_at_ms from bind_attempt
                 where not ok and at_ms > $1 and id <> $2",
                $cond
            ))
                .bind(since_ms)
                .bind(except_id)
                $(.bind($v))*
                .fetch_one(p)
                .await?)
        };
    }
    Ok(match key {
        AttemptKey::Meter(a) => q!(" and meter_address = $3", a),
        AttemptKey::MeterStudent(a, s) => q!(" and meter_address = $3 and student_id = $4", a, s),
        AttemptKey::Student(s) => q!(" and student_id = $3", s),
        AttemptKey::Ip(ip) => q!(" and client_ip = $3", ip),
        AttemptKey::Global => q!(""),
    })
}

// ---------------------------------------------------------------- meter lookups

/// Records a lookup of a meter the student is not bound to (buying for
/// someone else) and returns how many such lookups the student and the
/// client address made since `since_ms`, this one included. Recorded first,
/// counted after, so parallel lookups all see each other.
pub async fn record_lookup(
    db: &Db,
    student_id: i64,
    meter_address: &str,
    client_ip: &str,
    since_ms: i64,
    now_ms: i64,
) -> Result<(i64, i64)> {
    on_db!(db, |p| {
        sqlx::query(
        "insert into meter_lookup (student_id, meter_address, client_ip, at_ms) values ($1, $2, $3, $4)"
    )
    .bind(student_id)
    .bind(meter_address)
    .bind(client_ip)
    .bind(now_ms)
    .execute(p)
    .await?
    .rows_affected()
    });
    let by_student: i64 = on_db!(db, |p| sqlx::query_scalar(
        "select count(*) from meter_lookup where student_id = $1 and at_ms > $2"
    )
    .bind(student_id)
    .bind(since_ms)
    .fetch_one(p)
    .await?);
    let by_ip: i64 = on_db!(db, |p| sqlx::query_scalar(
        "select count(*) from meter_lookup where client_ip = $1 and at_ms > $2"
    )
    .bind(client_ip)
    .bind(since_ms)
    .fetch_one(p)
    .await?);
    Ok((by_student, by_ip))
}

// ---------------------------------------------------------------- messages and notices

/// An inbox message.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Message {
    /// Row id.
    pub id: i64,
    /// low_balance, delivered, binder_added, … (`binding` on old rows).
    pub kind: String,
    /// What it says: typed arguments, or the stored text of an old row.
    pub content: MessageContent,
    /// Sent.
    pub created_at_ms: i64,
    /// Read, if it was.
    pub read_at_ms: Option<i64>,
}

/// [`Message`] as stored.
#[derive(sqlx::FromRow)]
struct MessageRow {
    id: i64,
    kind: String,
    title: String,
    body: String,
    args: Option<String>,
    created_at_ms: i64,
    read_at_ms: Option<i64>,
}

impl TryFrom<MessageRow> for Message {
    type Error = BadValue;

    fn try_from(r: MessageRow) -> std::result::Result<Self, BadValue> {
        let content = MessageContent::from_columns(&r.kind, r.title, r.body, r.args.as_deref())?;
        Ok(Message {
            id: r.id,
            kind: r.kind,
            content,
            created_at_ms: r.created_at_ms,
            read_at_ms: r.read_at_ms,
        })
    }
}
decode_row!(Message, MessageRow);

/// The student's messages, newest first.
pub async fn messages(db: &Db, student_id: i64, limit: i64) -> Result<Vec<Message>> {
    Ok(on_db!(db, |p| sqlx::query_as(
        "select id, kind, title, body, args, created_at_ms, read_at_ms from message
         where student_id = $1 order by created_at_ms desc, id desc limit $2"
    )
    .bind(student_id)
    .bind(limit)
    .fetch_all(p)
    .await?))
}

/// Adds a message to a student's inbox; a repeated `dedup_key` is ignored.
/// Returns whether a row was written.
pub async fn send_message(
    db: &Db,
    student_id: i64,
    kind: &str,
    title: &str,
    body: &str,
    dedup_key: Option<&str>,
    now_ms: i64,
) -> Result<bool> {
    let n = on_db!(db, |p| sqlx::query(
        "insert into message (student_id, kind, title, body, dedup_key, created_at_ms)
         values ($1, $2, $3, $4, $5, $6) on conflict (dedup_key) do nothing"
    )
    .bind(student_id)
    .bind(kind)
    .bind(title)
    .bind(body)
    .bind(dedup_key)
    .bind(now_ms)
    .execute(p)
    .await?
    .rows_affected());
    Ok(n > 0)
}

/// Most messages [`mark_shown_read`] marks in one call (the inbox shows
/// fewer).
pub const MARK_READ_MAX: usize = 200;

/// Marks the student's messages `ids` — the ones a page has just shown —
/// read, once: only rows still unread and the student's own change
/// (`where student_id = $1 and read_at_ms is null`), so a message that
/// arrived after the page was built stays unread, and another student's id
/// changes nothing. Returns how many changed. At most [`MARK_READ_MAX`] ids.
pub async fn mark_shown_read(db: &Db, student_id: i64, ids: &[i64], now_ms: i64) -> Result<u64> {
    let ids = &ids[..ids.len().min(MARK_READ_MAX)];
    if ids.is_empty() {
        return Ok(0);
    }
    let list: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 3)).collect();
    let sql = format!(
        "update message set read_at_ms = $2
         where student_id = $1 and read_at_ms is null and id in ({})",
        list.join(", ")
    );
    Ok(on_db!(db, |p| {
        // Only numbered placeholders are formatted in; the ids are bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(student_id)
            .bind(now_ms);
        for id in ids {
            q = q.bind(*id);
        }
        q.execute(p).await?.rows_affected()
    }))
}

/// A notice from the logistics office.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq, Eq)]
pub struct Notice {
    /// Row id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Published.
    pub created_at_ms: i64,
}

/// The notices a student bound to meter `meter_id` sees at `now_ms`: those
/// whose schedule covers now and whose target is the whole campus, the
/// meter's area or a set of buildings holding the meter's building —
/// pinned first, then newest first.
pub async fn latest_notices(
    db: &Db,
    meter_id: i64,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<Notice>> {
    Ok(on_db!(db, |p| sqlx::query_as(
        "select n.id, n.title, n.body, n.created_at_ms from notice n
         where (n.shown_from_ms is null or n.shown_from_ms <= $2)
           and (n.shown_until_ms is null or n.shown_until_ms > $2)
           and (n.target = 'campus'
                or (n.target = 'area' and n.area_id = (select area_id from meter where id = $1))
                or (n.target = 'buildings' and exists (
                    select 1 from notice_building nb
                    join room r on r.building_id = nb.building_id
                    join meter m on m.room_id = r.id
                    where nb.notice_id = n.id and m.id = $1)))
         order by n.pinned desc, coalesce(n.shown_from_ms, n.created_at_ms) desc, n.id desc
         limit $3"
    )
    .bind(meter_id)
    .bind(now_ms)
    .bind(limit)
    .fetch_all(p)
    .await?))
}

/// Publishes a notice for an area (`None`: the whole campus), shown from
/// now on (the demo seed and tests; the console uses
/// [`crate::notices::create`]).
pub async fn add_notice(
    db: &Db,
    area_id: Option<i64>,
    title: &str,
    body: &str,
    now_ms: i64,
) -> Result<i64> {
    let target = if area_id.is_some() { "area" } else { "campus" };
    Ok(on_db!(db, |p| {
        sqlx::query_scalar(
        "insert into notice (area_id, title, body, created_at_ms, target) values ($1, $2, $3, $4, $5) returning id"
    )
    .bind(area_id)
    .bind(title)
    .bind(body)
    .bind(now_ms)
    .bind(target)
    .fetch_one(p)
    .await?
    }))
}

// ---------------------------------------------------------------- usage

/// One campus-local day of usage.
#[derive(Debug, Clone, Copy, Serialize, sqlx::FromRow, PartialEq, Eq)]
pub struct DayUsage {
    /// Days since 1970-01-01 in the campus time zone.
    pub day: i64,
    /// Usage; `None` when the day could not be read (S4), never zero.
    pub usage_centikwh: Option<i64>,
}

/// The meter `$1` and the meters it replaced, one after another
/// (crate::replace): the room's history, as a student sees it.
const ROOM_METERS: &str = "with recursive chain(id) as (
        select cast($1 as bigint)
        union all
        select r.old_meter_id from meter_replacement r join chain c on r.new_meter_id = c.id
    ) ";

/// Stored daily usage of a meter for days `from_day..=to_day`, in day order,
/// with the days of the meters it replaced (a replaced meter's room
/// continues: the day of the replacement adds both meters' read usage).
/// Days with no row at all are absent; callers treat them as missing too.
pub async fn daily_usage(
    db: &Db,
    meter_id: i64,
    from_day: i64,
    to_day: i64,
) -> Result<Vec<DayUsage>> {
    let sql = format!(
        "{ROOM_METERS}select day,
                cast(sum(case when status = 'ok' then usage_centikwh end) as bigint) as usage_centikwh
         from daily_usage where meter_id in (select id from chain) and day >= $2 and day <= $3
         group by day order by day"
    );
    Ok(on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(meter_id)
    .bind(from_day)
    .bind(to_day)
    .fetch_all(p)
    .await?))
}

/// Where a meter's data can start (the bill lists no day before it as
/// missing). The registry has no installation date, so the earliest of
/// these stands for it.
#[derive(Debug, Clone, Copy, sqlx::FromRow, PartialEq, Eq)]
pub struct UsageStart {
    /// When the meter was registered (`meter.created_at_ms`).
    pub created_at_ms: i64,
    /// Its first stored reading of the energy register, if any.
    pub first_reading_at_ms: Option<i64>,
    /// Its first day with read usage, if any (imported or generated
    /// history can predate the registration).
    pub first_read_day: Option<i64>,
}

impl UsageStart {
    /// The first campus-local day (days since 1970-01-01) the meter has
    /// data for: the earliest of its registration, first reading and first
    /// read day.
    pub fn first_day(&self, tz: &jiff::tz::TimeZone) -> i64 {
        let day = |ms| domain::time::day_number(domain::time::local_date(ms, tz));
        [self.first_reading_at_ms.map(day), self.first_read_day]
            .into_iter()
            .flatten()
            .fold(day(self.created_at_ms), i64::min)
    }
}

/// The facts [`UsageStart`] is made of, over the meter and the meters it
/// replaced; `None` for an unknown meter.
pub async fn usage_start(db: &Db, meter_id: i64) -> Result<Option<UsageStart>> {
    let sql = format!(
        "{ROOM_METERS}select
             (select min(m.created_at_ms) from meter m where m.id in (select id from chain)) as created_at_ms,
             (select min(r.at_ms) from reading r where r.meter_id in (select id from chain)
                 and r.quantity = 'total') as first_reading_at_ms,
             (select min(d.day) from daily_usage d where d.meter_id in (select id from chain)
                 and d.status = 'ok') as first_read_day
         from meter where id = $1"
    );
    Ok(on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(meter_id)
    .fetch_optional(p)
    .await?))
}

/// Writes one day of usage (head-end collection; tests and fixtures).
pub async fn put_daily_usage(
    db: &Db,
    meter_id: i64,
    day: i64,
    usage_centikwh: Option<i64>,
    now_ms: i64,
) -> Result<()> {
    let status = if usage_centikwh.is_some() {
        "ok"
    } else {
        "missing"
    };
    on_db!(db, |p| {
        sqlx::query(
        "insert into daily_usage (meter_id, day, usage_centikwh, status, updated_at_ms) values ($1, $2, $3, $4, $5)
         on conflict (meter_id, day) do update set usage_centikwh = excluded.usage_centikwh,
             status = excluded.status, updated_at_ms = excluded.updated_at_ms"
    )
    .bind(meter_id)
    .bind(day)
    .bind(usage_centikwh)
    .bind(status)
    .bind(now_ms)
    .execute(p)
    .await?
    .rows_affected()
    });
    Ok(())
}

// ---------------------------------------------------------------- orders seen by a student

/// One of the student's orders by id; `None` for another student's (IDOR).
pub async fn order(
    db: &Db,
    student_id: i64,
    order_id: i64,
) -> Result<Option<crate::orders::Order>> {
    let Some(o) = crate::orders::by_id(db, domain::OrderId::new(order_id)).await? else {
        return Ok(None);
    };
    Ok((o.student_id == Some(domain::StudentId::new(student_id))).then_some(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database with a one-building campus; returns two meter ids.
    async fn fixture(db: &Db) -> (i64, i64) {
        crate::testing::seed_one_building_per_area(db, 1)
            .await
            .expect("seed");
        let ids: Vec<i64> = on_db!(db, |p| sqlx::query_scalar(
            "select id from meter order by id limit 2"
        )
        .fetch_all(p)
        .await
        .expect("meters"));
        (ids[0], ids[1])
    }

    impl BindResult {
        fn bound(self) -> BindOutcome {
            match self {
                BindResult::Bound(o) => o,
                BindResult::TooMany => panic!("too many bindings"),
            }
        }
    }

    #[tokio::test]
    async fn bindings_defaults_and_scoping() {
        for db in crate::testing::all().await.expect("dbs") {
            let (m1, m2) = fixture(&db).await;
            let a = upsert_by_openid(&db, "oA", false, 1).await.expect("a");
            let b = upsert_by_openid(&db, "oB", false, 1).await.expect("b");
            // The first meter becomes the default even without asking.
            let x = bind(&db, a.id, m1, false, 8, 2)
                .await
                .expect("bind")
                .bound();
            assert!(!x.already_bound);
            let y = bind(&db, a.id, m2, false, 8, 3)
                .await
                .expect("bind")
                .bound();
            let d = default_binding(&db, a.id).await.expect("d").expect("some");
            assert_eq!(d.binding_id, x.binding_id);
            set_default(&db, a.id, y.binding_id).await.expect("default");
            let d = default_binding(&db, a.id).await.expect("d").expect("some");
            assert_eq!(d.binding_id, y.binding_id);
            // Binding again is a no-op.
            assert!(
                bind(&db, a.id, m2, false, 8, 4)
                    .await
                    .expect("again")
                    .bound()
                    .already_bound
            );
            // B binds A's meter: A is told, B is not.
            let z = bind(&db, b.id, m1, true, 8, 5).await.expect("bind").bound();
            assert_eq!(z.others_told, 1);
            let told = messages(&db, a.id, 10).await.expect("m");
            assert_eq!(told.len(), 1);
            // The message names the meter (issue 11 item 6).
            let MessageContent::Typed(MessageArgs::BinderAdded { place }) = &told[0].content else {
                panic!("a typed binder message: {told:?}");
            };
            assert_eq!(told[0].kind, "binder_added");
            assert!(
                !place.meter.is_empty() && !place.room.is_empty(),
                "{place:?}"
            );
            assert!(messages(&db, b.id, 10).await.expect("m").is_empty());
            // B cannot reach A's bindings or messages by id.
            assert!(binding(&db, b.id, x.binding_id).await.expect("q").is_none());
            assert!(matches!(
                set_default(&db, b.id, x.binding_id).await,
                Err(Error::NotFound(_))
            ));
            assert!(matches!(
                unbind(&db, b.id, x.binding_id).await,
                Err(Error::NotFound(_))
            ));
            let mid = messages(&db, a.id, 10).await.expect("m")[0].id;
            assert_eq!(mark_shown_read(&db, b.id, &[mid], 6).await.expect("q"), 0);
            // Unbinding the default promotes the oldest remaining binding.
            unbind(&db, a.id, y.binding_id).await.expect("unbind");
            let d = default_binding(&db, a.id).await.expect("d").expect("some");
            assert_eq!(d.binding_id, x.binding_id);
            assert!(d.is_default);
            // The session carries the unread count and the default meter.
            create_session(&db, "h", a.id, "c", 1, 100)
                .await
                .expect("s");
            let (s, m) = session_with_default(&db, "h", 50)
                .await
                .expect("q")
                .expect("live");
            assert_eq!((s.student_id, s.unread), (a.id, 1));
            assert_eq!(m.expect("meter").binding_id, x.binding_id);
            assert!(
                session(&db, "h", 100).await.expect("q").is_none(),
                "expired"
            );
            assert_eq!(
                mark_shown_read(&db, a.id, &[mid], 7).await.expect("read"),
                1
            );
            assert_eq!(
                mark_shown_read(&db, a.id, &[mid], 8).await.expect("again"),
                0
            );
            assert_eq!(
                session(&db, "h", 50)
                    .await
                    .expect("q")
                    .expect("live")
                    .unread,
                0
            );
            assert_eq!(purge_sessions(&db, 100).await.expect("purge"), 1);
        }
    }

    /// Issue 10 item 2: parallel binds of one student stop at the cap.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_binds_stop_at_the_cap() {
        for db in crate::testing::all().await.expect("dbs") {
            fixture(&db).await;
            let ids: Vec<i64> = on_db!(&db, |p| sqlx::query_scalar(
                "select id from meter order by id limit 16"
            )
            .fetch_all(p)
            .await
            .expect("meters"));
            let a = upsert_by_openid(&db, "oPar", false, 1).await.expect("a");
            let tasks: Vec<_> = ids
                .iter()
                .map(|&m| {
                    let db = db.clone();
                    tokio::spawn(async move { bind(&db, a.id, m, false, 8, 2).await })
                })
                .collect();
            let mut bound = 0;
            for t in tasks {
                if let BindResult::Bound(_) = t.await.expect("task").expect("bind") {
                    bound += 1;
                }
            }
            assert_eq!(bound, 8, "{:?}", db.backend());
            assert_eq!(bindings(&db, a.id).await.expect("b").len(), 8);
        }
    }

    #[tokio::test]
    async fn failures_are_not_reset_by_a_success() {
        for db in crate::testing::all().await.expect("dbs") {
            let a = upsert_by_openid(&db, "oA", false, 1).await.expect("a");
            let at = |ok, ms| {
                let db = db.clone();
                async move {
                    record_attempt(
                        &db,
                        &Attempt {
                            student_id: a.id,
                            meter_address: "201701010001",
                            client_ip: "10.0.0.1",
                            ok,
                        },
                        ms,
                    )
                    .await
                    .expect("attempt")
                }
            };
            at(false, 10).await;
            at(true, 20).await;
            at(false, 30).await;
            let own = at(false, 40).await;
            for key in [
                AttemptKey::Meter("201701010001"),
                AttemptKey::MeterStudent("201701010001", a.id),
                AttemptKey::Student(a.id),
                AttemptKey::Ip("10.0.0.1"),
                AttemptKey::Global,
            ] {
                // The success at 20 does not reset the count (issue 10 item 2).
                let f = failures(&db, key, 0, 0).await.expect("f");
                assert_eq!((f.count, f.last_at_ms), (3, Some(40)), "{key:?}");
                // A request does not count its own, still unsettled attempt.
                let f = failures(&db, key, 0, own).await.expect("f");
                assert_eq!((f.count, f.last_at_ms), (2, Some(30)), "{key:?}");
            }
            settle_attempt(&db, own, true).await.expect("settle");
            assert_eq!(
                failures(&db, AttemptKey::Global, 0, 0)
                    .await
                    .expect("f")
                    .count,
                2
            );
            let refused = at(false, 50).await;
            forget_attempt(&db, refused).await.expect("forget");
            assert_eq!(
                failures(&db, AttemptKey::Global, 0, 0)
                    .await
                    .expect("f")
                    .count,
                2
            );
            assert_eq!(
                failures(
                    &db,
                    AttemptKey::MeterStudent("201701010001", a.id + 1),
                    0,
                    0
                )
                .await
                .expect("f")
                .count,
                0,
                "another student's pair is untouched"
            );
            // The window cuts older failures.
            assert_eq!(
                failures(&db, AttemptKey::Ip("10.0.0.1"), 25, 0)
                    .await
                    .expect("f")
                    .count,
                1
            );
            assert_eq!(
                failures(&db, AttemptKey::Ip("10.9.9.9"), 0, 0)
                    .await
                    .expect("f"),
                Failures::default()
            );
        }
    }

    #[tokio::test]
    async fn usage_and_password_updates() {
        for db in crate::testing::all().await.expect("dbs") {
            let (m1, _) = fixture(&db).await;
            put_daily_usage(&db, m1, 100, Some(250), 1)
                .await
                .expect("u");
            put_daily_usage(&db, m1, 101, None, 1).await.expect("u");
            put_daily_usage(&db, m1, 102, Some(300), 1)
                .await
                .expect("u");
            let u = daily_usage(&db, m1, 101, 200).await.expect("u");
            assert_eq!(
                u,
                vec![
                    DayUsage {
                        day: 101,
                        usage_centikwh: None
                    },
                    DayUsage {
                        day: 102,
                        usage_centikwh: Some(300)
                    }
                ]
            );
        }
    }

    /// The bill's start: the earliest of registration, first reading of the
    /// energy register and first read day; missing days do not count.
    #[tokio::test]
    async fn usage_starts_at_the_earliest_fact() {
        for db in crate::testing::all().await.expect("dbs") {
            let (m1, _) = fixture(&db).await;
            assert_eq!(usage_start(&db, -1).await.expect("start"), None);
            let tz = jiff::tz::TimeZone::UTC;
            let day_ms = 86_400_000;
            on_db!(&db, |p| sqlx::query(
                "update meter set created_at_ms = $1 where id = $2"
            )
            .bind(20 * day_ms)
            .bind(m1)
            .execute(p)
            .await
            .map(|_| ())
            .expect("created"));
            let start = usage_start(&db, m1).await.expect("start").expect("meter");
            assert_eq!(
                (start.first_reading_at_ms, start.first_read_day),
                (None, None)
            );
            assert_eq!(start.first_day(&tz), 20);
            put_daily_usage(&db, m1, 12, None, 1)
                .await
                .expect("missing day");
            on_db!(&db, |p| sqlx::query(
                "insert into reading (meter_id, quantity, at_ms, value) values ($1, 'total', $2, 5)"
            )
            .bind(m1)
            .bind(17 * day_ms + 5)
            .execute(p)
            .await
            .map(|_| ())
            .expect("reading"));
            assert_eq!(
                usage_start(&db, m1)
                    .await
                    .expect("start")
                    .expect("meter")
                    .first_day(&tz),
                17
            );
            put_daily_usage(&db, m1, 15, Some(40), 1)
                .await
                .expect("read day");
            let start = usage_start(&db, m1).await.expect("start").expect("meter");
            assert_eq!(start.first_read_day, Some(15));
            assert_eq!(start.first_day(&tz), 15);
        }
    }
}
