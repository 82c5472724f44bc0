//! The free monthly allowance (issue 14 item 6, E4; docs/OPERATIONS.md
//! "Campus policy"): kWh per room per month set per area or building
//! (`campus_policy.subsidy_centikwh_per_month`, a building's setting before
//! its area's).
//!
//! A run for a month ([`run`]) credits each eligible room's current meter
//! once per (room, month): the `subsidy` row's unique key (room, month), its
//! `subsidy_credited` ledger entry (`subsidy_issued` → `in_flight:<meter>`)
//! and its delivery job (`subsidy:<id>`) are written in one transaction, so
//! a second run — on this node or another, at the same time or later —
//! inserts nothing for that room. The head-end delivers the allowance like
//! a replacement's carried energy (read-back, its own purchase number,
//! contiguous with the orders', exactly once) and [`complete`] writes
//! `subsidy_delivered` (`in_flight:<meter>` → `delivered:<meter>`);
//! check-ledger invariant I14 checks the pair. Retired meters and meters on
//! no bus are skipped (the room can be credited by a later run of the
//! month once its meter is on a bus).

use crate::audit::{self, Actor, Entry};
use crate::dashboard::Within;
use crate::jobs::{self, Job};
use crate::meters::{DeliveryEvidence, MeterEvent, event_in};
use crate::orders::{self, Assignment, DELIVER_ATTEMPTS_MAX, DELIVER_PRIORITY, DELIVER_QUEUE};
use crate::policy::{ScheduleError, Scope};
use crate::replace::lock_meter;
use crate::{Backend, Db, Error, Result, Tx, ledger, on_db, on_tx};
use domain::time::{CampusTz, local_date};
use domain::{AreaId, CentiKwh, MeterId, OrderId, RoomId};
use serde::Serialize;

/// Largest allowance per room and month (0.01 kWh): 1000 kWh.
pub const CENTIKWH_PER_MONTH_MAX: i64 = 100_000;

/// The delivery job key of subsidy `id`.
pub fn job_key(id: i64) -> String {
    format!("subsidy:{id}")
}

/// A calendar month `YYYY-MM`, checked.
pub fn parse_month(s: &str) -> Option<String> {
    let s = s.trim();
    let (y, m) = s.split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    let y: u16 = y.parse().ok()?;
    let m: u8 = m.parse().ok()?;
    ((2000..=9999).contains(&y) && (1..=12).contains(&m)).then(|| format!("{y:04}-{m:02}"))
}

/// The campus-local month of an instant, `YYYY-MM`.
pub fn month_of(ms: i64, tz: &CampusTz) -> String {
    let d = local_date(ms, tz.tz());
    format!("{:04}-{:02}", d.year(), d.month())
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    /// The month.
    pub month: String,
    /// Rooms with an allowance for this month in the run's areas.
    pub rooms: u64,
    /// Rooms credited by this run.
    pub credited: u64,
    /// Rooms not credited: credited before, or no current meter on a bus.
    pub skipped: u64,
    /// Energy credited by this run, kWh (two decimals).
    pub kwh: String,
    /// The same in 0.01 kWh.
    pub centikwh: i64,
}

#[derive(sqlx::FromRow)]
struct Eligible {
    room_id: i64,
    done: bool,
    meter_id: Option<i64>,
    centikwh: i64,
}

/// The areas and their time zones.
async fn areas(db: &Db, only: Option<AreaId>) -> Result<Vec<(i64, String)>> {
    Ok(on_db!(db, |p| sqlx::query_as(
        "select id, time_zone from area where cast($1 as bigint) is null or id = $1 order by id"
    )
    .bind(only.map(AreaId::get))
    .fetch_all(p)
    .await?))
}

/// Runs the subsidy of `month` (`YYYY-MM`) in area `area` (every area:
/// `None`). Each room is its own transaction; see the module documentation.
/// The run is audited (`subsidy_run`) when it credited a room.
pub async fn run(
    db: &Db,
    area: Option<AreaId>,
    month: &str,
    actor: &Actor,
    now_ms: i64,
) -> Result<RunSummary> {
    let month =
        parse_month(month).ok_or_else(|| Error::Conflict(format!("bad month {month:?}")))?;
    let eligible: Vec<Eligible> = on_db!(db, |p| {
        sqlx::query_as(
        "select r.id as room_id,
                exists (select 1 from subsidy s where s.room_id = r.id and s.month = $2) as done,
                (select min(m.id) from meter m where m.room_id = r.id and m.retired_at_ms is null
                   and m.bus_id is not null) as meter_id,
                coalesce(cpb.subsidy_centikwh_per_month, cpa.subsidy_centikwh_per_month, 0) as centikwh
         from room r join building b on b.id = r.building_id
         left join campus_policy cpb on cpb.building_id = b.id
         left join campus_policy cpa on cpa.area_id = b.area_id and cpa.building_id is null
         where (cast($1 as bigint) is null or b.area_id = $1)
           and coalesce(cpb.subsidy_centikwh_per_month, cpa.subsidy_centikwh_per_month, 0) > 0
         order by r.id"
    )
    .bind(area.map(AreaId::get))
    .bind(&month)
    .fetch_all(p)
    .await?
    });
    let mut s = RunSummary {
        month: month.clone(),
        rooms: eligible.len() as u64,
        credited: 0,
        skipped: 0,
        kwh: String::new(),
        centikwh: 0,
    };
    for e in &eligible {
        // A room credited before is skipped without a transaction (the
        // worker runs this every few minutes); the unique key still guards.
        let credited = match e.meter_id {
            Some(_) if e.done => false,
            Some(meter_id) => {
                credit(db, e.room_id, meter_id, &month, e.centikwh, actor, now_ms).await?
            }
            None => false,
        };
        if credited {
            s.credited += 1;
            s.centikwh += e.centikwh;
        } else {
            s.skipped += 1;
        }
    }
    s.kwh = format!("{}.{:02}", s.centikwh / 100, s.centikwh % 100);
    if s.credited > 0 {
        let mut tx = db.begin().await?;
        audit::append_tx(
            &mut tx,
            &Entry {
                actor,
                action: "subsidy_run",
                subject: &format!("subsidy:{month}"),
                before: None,
                after: Some(serde_json::json!({
                    "area_id": area.map(AreaId::get),
                    "month": month,
                    "rooms": s.rooms,
                    "credited": s.credited,
                    "centikwh": s.centikwh,
                })),
            },
            now_ms,
        )
        .await?;
        tx.commit().await?;
    }
    Ok(s)
}

/// Runs the current campus-local month of every area (each area in its own
/// time zone). What the background worker and the console's button do.
pub async fn run_current(
    db: &Db,
    area: Option<AreaId>,
    actor: &Actor,
    now_ms: i64,
) -> Result<Vec<RunSummary>> {
    let mut out = Vec::new();
    for (id, tz) in areas(db, area).await? {
        let tz = CampusTz::parse(&tz).unwrap_or_default();
        out.push(
            run(
                db,
                Some(AreaId::new(id)),
                &month_of(now_ms, &tz),
                actor,
                now_ms,
            )
            .await?,
        );
    }
    Ok(out)
}

/// Credits `centikwh` of `month` to room `room_id`'s meter `meter_id`, once:
/// false when the room was credited for the month already or the meter was
/// retired or moved off its bus meanwhile.
async fn credit(
    db: &Db,
    room_id: i64,
    meter_id: i64,
    month: &str,
    centikwh: i64,
    actor: &Actor,
    now_ms: i64,
) -> Result<bool> {
    let mut tx = db.begin().await?;
    // Ordered with a replacement of the meter (crate::replace locks the
    // same row): either the replacement sees this allowance in flight and
    // is refused, or this run sees the meter retired.
    if !lock_meter(&mut tx, meter_id).await? {
        return Ok(false);
    }
    let current: Option<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "select id from meter where id = $1 and room_id = $2 and retired_at_ms is null
           and bus_id is not null"
    )
    .bind(meter_id)
    .bind(room_id)
    .fetch_optional(c)
    .await?);
    if current.is_none() {
        return Ok(false);
    }
    // The guard: one row per (room, month). A concurrent run's insert waits
    // for this one's commit (PostgreSQL) and then inserts nothing.
    let id: Option<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "insert into subsidy (room_id, month, meter_id, centikwh, operator_name, at_ms)
         values ($1, $2, $3, $4, $5, $6)
         on conflict (room_id, month) do nothing returning id"
    )
    .bind(room_id)
    .bind(month)
    .bind(meter_id)
    .bind(centikwh)
    .bind(&actor.name)
    .bind(now_ms)
    .fetch_optional(c)
    .await?);
    let Some(id) = id else {
        return Ok(false);
    };
    let t = domain::ledger::on_subsidy_credited(MeterId::new(meter_id), CentiKwh::new(centikwh));
    ledger::insert_for_subsidy(&mut tx, id, &t, now_ms).await?;
    let key = job_key(id);
    let payload = format!("{{\"subsidy_id\":{id},\"meter_id\":{meter_id}}}");
    let queued = jobs::enqueue(
        &mut tx,
        &jobs::NewJob {
            queue: DELIVER_QUEUE,
            dedup_key: Some(&key),
            payload: &payload,
            priority: DELIVER_PRIORITY,
            run_at_ms: now_ms,
            attempts_max: DELIVER_ATTEMPTS_MAX,
        },
        now_ms,
    )
    .await?;
    if !queued {
        return Err(Error::Conflict(format!(
            "delivery job {key} exists already"
        )));
    }
    event_in(
        &mut tx,
        &MeterEvent {
            meter_id,
            at_ms: now_ms,
            kind: "subsidy".to_owned(),
            detail: format!("free allowance of {month}: {centikwh} centikWh"),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Sets (or with `None` clears) the monthly allowance of `scope` (0.01 kWh
/// per room), audited (`subsidy_policy_set`).
pub async fn set_allowance(
    db: &Db,
    scope: Scope,
    centikwh: Option<CentiKwh>,
    actor: &Actor,
    now_ms: i64,
) -> std::result::Result<(), ScheduleError> {
    let value = centikwh.map(CentiKwh::get);
    if value.is_some_and(|v| !(0..=CENTIKWH_PER_MONTH_MAX).contains(&v)) {
        return Err(ScheduleError::Store(Error::Conflict(format!(
            "an allowance is between 0 and {CENTIKWH_PER_MONTH_MAX} centikWh"
        ))));
    }
    let mut tx = db.begin().await?;
    crate::policy::check_scope(&mut tx, scope).await?;
    let (sel, upsert) = match scope.building_id {
        None => (
            "select subsidy_centikwh_per_month from campus_policy
             where area_id = $1 and building_id is null and cast($2 as bigint) is null",
            "insert into campus_policy (area_id, building_id, subsidy_centikwh_per_month, operator_name, updated_at_ms)
             values ($1, $2, $3, $4, $5)
             on conflict (area_id) where building_id is null
             do update set subsidy_centikwh_per_month = excluded.subsidy_centikwh_per_month,
                           operator_name = excluded.operator_name, updated_at_ms = excluded.updated_at_ms",
        ),
        Some(_) => (
            "select subsidy_centikwh_per_month from campus_policy where area_id = $1 and building_id = $2",
            "insert into campus_policy (area_id, building_id, subsidy_centikwh_per_month, operator_name, updated_at_ms)
             values ($1, $2, $3, $4, $5)
             on conflict (building_id) where building_id is not null
             do update set subsidy_centikwh_per_month = excluded.subsidy_centikwh_per_month,
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
        &Entry {
            actor,
            action: "subsidy_policy_set",
            subject: &scope.subject(),
            before: Some(serde_json::json!({ "subsidy_centikwh_per_month": before.flatten() })),
            after: Some(serde_json::json!({ "subsidy_centikwh_per_month": value })),
        },
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// One scope's allowance as set.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Allowance {
    /// The building, or `None` for the area.
    pub building_id: Option<i64>,
    /// 0.01 kWh per room and month.
    pub centikwh: i64,
}

/// The allowances set in an area (the area's first).
pub async fn allowances(db: &Db, area_id: AreaId) -> Result<Vec<Allowance>> {
    Ok(on_db!(db, |p| sqlx::query_as(
        "select building_id, subsidy_centikwh_per_month as centikwh from campus_policy
         where area_id = $1 and subsidy_centikwh_per_month is not null
         order by (case when building_id is null then 0 else 1 end), building_id"
    )
    .bind(area_id.get())
    .fetch_all(p)
    .await?))
}

/// Subsidy issued in one month to one building.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct IssuedRow {
    /// `YYYY-MM`.
    pub month: String,
    /// Building row id.
    pub building_id: i64,
    /// Its Chinese name.
    pub building_zh: String,
    /// Its English name.
    pub building_en: String,
    /// Rooms credited.
    pub rooms: i64,
    /// Energy credited (0.01 kWh).
    pub centikwh: i64,
    /// Of it, confirmed by the meters (0.01 kWh).
    pub delivered_centikwh: i64,
}

/// Subsidy issued per month and building in months `from..=to`
/// (`YYYY-MM`), within an operator's scope; newest month first.
pub async fn issued(db: &Db, w: &Within, from: &str, to: &str) -> Result<Vec<IssuedRow>> {
    let scope = w.clause();
    let sql = format!(
        "select s.month, b.id as building_id, b.name_zh as building_zh, b.name_en as building_en,
                cast(count(*) as bigint) as rooms,
                cast(sum(s.centikwh) as bigint) as centikwh,
                cast(sum(case when s.delivered_at_ms is null then 0 else s.centikwh end) as bigint) as delivered_centikwh
         from subsidy s join meter m on m.id = s.meter_id join room r on r.id = s.room_id
         join building b on b.id = r.building_id
         where s.month >= $1 and s.month <= $2{scope}
         group by s.month, b.id, b.name_zh, b.name_en, b.position
         order by s.month desc, b.position, b.id"
    );
    Ok(on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(from)
    .bind(to)
    .fetch_all(p)
    .await?))
}

/// A room's allowances, newest first (the student's records).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Credit {
    /// Row id.
    pub id: i64,
    /// `YYYY-MM`.
    pub month: String,
    /// The meter credited.
    pub meter_id: i64,
    /// 0.01 kWh.
    pub centikwh: i64,
    /// When the meter confirmed it.
    pub delivered_at_ms: Option<i64>,
    /// When it was credited.
    pub at_ms: i64,
}

/// The allowances of the room of meter `meter_id` (any of the room's
/// meters), newest first, at most `limit`.
pub async fn of_room_of_meter(db: &Db, meter_id: MeterId, limit: i64) -> Result<Vec<Credit>> {
    Ok(on_db!(db, |p| sqlx::query_as(
        "select s.id, s.month, s.meter_id, s.centikwh, s.delivered_at_ms, s.at_ms from subsidy s
         where s.room_id = (select room_id from meter where id = $1)
         order by s.month desc limit $2"
    )
    .bind(meter_id.get())
    .bind(limit)
    .fetch_all(p)
    .await?))
}

// ---- the head-end's side: delivering the allowance ----

/// What the delivery worker needs to deliver an allowance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The subsidy row.
    pub subsidy_id: i64,
    /// The meter.
    pub meter_id: MeterId,
    /// Its room (the recharge customer number).
    pub room_id: RoomId,
    /// Energy to deliver.
    pub centikwh: CentiKwh,
    /// The purchase number, once assigned.
    pub purchase_seq: Option<i64>,
    /// Delivered already.
    pub delivered: bool,
    /// When it was credited (the "paid" instant of this energy).
    pub at_ms: i64,
}

/// Subsidy `id` as the delivery worker needs it.
pub async fn target(db: &Db, id: i64) -> Result<Option<Target>> {
    type Row = (i64, i64, i64, Option<i64>, Option<i64>, i64);
    let row: Option<Row> = on_db!(db, |p| sqlx::query_as(
        "select meter_id, room_id, centikwh, purchase_seq, delivered_at_ms, at_ms
         from subsidy where id = $1"
    )
    .bind(id)
    .fetch_optional(p)
    .await?);
    Ok(row.map(
        |(meter_id, room_id, centikwh, purchase_seq, delivered, at_ms)| Target {
            subsidy_id: id,
            meter_id: MeterId::new(meter_id),
            room_id: RoomId::new(room_id),
            centikwh: CentiKwh::new(centikwh),
            purchase_seq,
            delivered: delivered.is_some(),
            at_ms,
        },
    ))
}

/// Assigns the allowance its purchase number on its meter, like
/// [`crate::replace::assign_carry_seq`]: under the meter's row lock, after
/// any number an order holds (it waits for that order to settle); an order
/// of the meter waits while an allowance holds an unsettled number.
pub async fn assign_seq(db: &Db, id: i64) -> Result<Assignment> {
    let mut tx = db.begin().await?;
    let meter_id: Option<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "select meter_id from subsidy where id = $1"
    )
    .bind(id)
    .fetch_optional(c)
    .await?);
    let meter_id = meter_id.ok_or(Error::NotFound("subsidy"))?;
    lock_meter(&mut tx, meter_id).await?;
    let (seq, delivered): (Option<i64>, Option<i64>) = on_tx!(&mut tx, |c| sqlx::query_as(
        "select purchase_seq, delivered_at_ms from subsidy where id = $1"
    )
    .bind(id)
    .fetch_one(c)
    .await?);
    if delivered.is_some() {
        return Ok(Assignment::NotDeliverable(None));
    }
    if let Some(s) = seq {
        return Ok(Assignment::Assigned(s));
    }
    if let Some(why) = number_held(&mut tx, meter_id, None, Some(id)).await? {
        return Ok(Assignment::Wait(why));
    }
    let sql = match tx.backend() {
        Backend::Sqlite => {
            "update meter set purchase_seq_last = 1 + max(purchase_seq_last,
                    coalesce((select purchase_count from meter_state where meter_id = meter.id), 0))
             where id = $1 returning purchase_seq_last"
        }
        Backend::Postgres => {
            "update meter set purchase_seq_last = 1 + greatest(purchase_seq_last,
                    coalesce((select purchase_count from meter_state where meter_id = meter.id), 0))
             where id = $1 returning purchase_seq_last"
        }
    };
    let seq: i64 = on_tx!(&mut tx, |c| sqlx::query_scalar(sql)
        .bind(meter_id)
        .fetch_one(c)
        .await?);
    let n = on_tx!(&mut tx, |c| sqlx::query(
        "update subsidy set purchase_seq = $2
         where id = $1 and purchase_seq is null and delivered_at_ms is null"
    )
    .bind(id)
    .bind(seq)
    .execute(c)
    .await?
    .rows_affected());
    if n != 1 {
        return Err(Error::Conflict(format!(
            "subsidy {id} changed concurrently"
        )));
    }
    tx.commit().await?;
    Ok(Assignment::Assigned(seq))
}

/// Why a new purchase number of meter `meter_id` must wait: an order
/// (other than `order`) or an allowance (other than `subsidy`) holds an
/// unsettled number. Read under the meter's row lock.
pub(crate) async fn number_held(
    tx: &mut Tx,
    meter_id: i64,
    order: Option<OrderId>,
    subsidy: Option<i64>,
) -> Result<Option<String>> {
    let held: Option<i64> = on_tx!(tx, |c| sqlx::query_scalar(
        "select purchase_seq from orders where meter_id = $1 and purchase_seq is not null
           and state in ('charging', 'delayed') and id <> $2 order by purchase_seq limit 1"
    )
    .bind(meter_id)
    .bind(order.map_or(0, OrderId::get))
    .fetch_optional(c)
    .await?);
    if let Some(s) = held {
        return Ok(Some(format!(
            "waiting for purchase {s} of this meter to settle"
        )));
    }
    let held: Option<(i64, i64)> = on_tx!(tx, |c| sqlx::query_as(
        "select id, purchase_seq from subsidy where meter_id = $1 and purchase_seq is not null
           and delivered_at_ms is null and id <> $2 order by purchase_seq limit 1"
    )
    .bind(meter_id)
    .bind(subsidy.unwrap_or(0))
    .fetch_optional(c)
    .await?);
    Ok(held.map(|(id, s)| {
        format!("waiting for purchase {s} of this meter (free allowance {id}) to settle")
    }))
}

/// Records the meter's confirmation of the allowance: delivered, with its
/// `subsidy_delivered` ledger entry, the job, the meter state and an event,
/// and wakes the meter's waiting orders — one transaction, fenced by the
/// job's lease. Returns false when it was delivered already.
pub async fn complete(
    db: &Db,
    id: i64,
    job: &Job,
    meter_id: MeterId,
    evidence: DeliveryEvidence,
    now_ms: i64,
) -> Result<bool> {
    let mut tx = db.begin().await?;
    jobs::complete(&mut tx, job, now_ms).await?;
    let row: Option<(Option<i64>, i64, String)> = on_tx!(&mut tx, |c| sqlx::query_as(
        "select purchase_seq, centikwh, month from subsidy where id = $1"
    )
    .bind(id)
    .fetch_optional(c)
    .await?);
    let (seq, centikwh, month) = row.ok_or(Error::NotFound("subsidy"))?;
    if seq != Some(evidence.purchase_count) {
        return Err(Error::Conflict(format!(
            "subsidy {id} holds purchase {seq:?}, the meter's evidence is for {}",
            evidence.purchase_count
        )));
    }
    let n = on_tx!(&mut tx, |c| sqlx::query(
        "update subsidy set delivered_at_ms = $2 where id = $1 and delivered_at_ms is null"
    )
    .bind(id)
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected());
    let changed = n == 1;
    if changed {
        let t = domain::ledger::on_subsidy_delivered(meter_id, CentiKwh::new(centikwh));
        ledger::insert_for_subsidy(&mut tx, id, &t, now_ms).await?;
        event_in(
            &mut tx,
            &MeterEvent {
                meter_id: meter_id.get(),
                at_ms: now_ms,
                kind: "delivered".to_owned(),
                detail: format!(
                    "free allowance of {month}, purchase {}",
                    evidence.purchase_count
                ),
            },
        )
        .await?;
    }
    on_tx!(&mut tx, |c| sqlx::query(
        "update meter_state set purchase_count = $2,
                remaining_centikwh = coalesce($3, remaining_centikwh),
                remaining_at_ms = case when $3 is null then remaining_at_ms else $4 end,
                online = true, missed_polls = 0, last_seen_at_ms = $4, updated_at_ms = $4
         where meter_id = $1"
    )
    .bind(meter_id.get())
    .bind(evidence.purchase_count)
    .bind(evidence.remaining_centikwh)
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected());
    let keys = orders::sibling_delivery_keys(&mut tx, meter_id, OrderId::new(0)).await?;
    jobs::wake(&mut tx, &keys, now_ms).await?;
    tx.commit().await?;
    Ok(changed)
}

/// Stops an allowance's delivery that needs staff, like
/// [`crate::replace::flag_carry`]: an event, the job dead-lettered with the
/// reason, and a number a refused recharge held given back. Fenced.
#[expect(
    clippy::too_many_arguments,
    reason = "the delivery outcome's fields, as refuse_delivery"
)]
pub async fn flag(
    db: &Db,
    id: i64,
    job: &Job,
    meter_id: MeterId,
    kind: &str,
    detail: &str,
    unapplied_seq: Option<i64>,
    now_ms: i64,
) -> Result<()> {
    let mut tx = db.begin().await?;
    jobs::bury_in(&mut tx, job, &format!("{kind}: {detail}"), now_ms).await?;
    event_in(
        &mut tx,
        &MeterEvent {
            meter_id: meter_id.get(),
            at_ms: now_ms,
            kind: kind.to_owned(),
            detail: format!("free allowance {id}: {detail}"),
        },
    )
    .await?;
    if let Some(seq) = unapplied_seq {
        let n = on_tx!(&mut tx, |c| sqlx::query(
            "update subsidy set purchase_seq = null
             where id = $1 and purchase_seq = $2 and delivered_at_ms is null"
        )
        .bind(id)
        .bind(seq)
        .execute(c)
        .await?
        .rows_affected());
        let m = on_tx!(&mut tx, |c| {
            sqlx::query(
            "update meter set purchase_seq_last = $2 - 1 where id = $1 and purchase_seq_last = $2"
        )
        .bind(meter_id.get())
        .bind(seq)
        .execute(c)
        .await?
        .rows_affected()
        });
        if n != 1 || m != 1 {
            return Err(Error::Conflict(format!(
                "purchase {seq} of subsidy {id} cannot be given back"
            )));
        }
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    #[test]
    fn months() {
        assert_eq!(super::parse_month("2026-12").as_deref(), Some("2026-12"));
        assert_eq!(super::parse_month("2026-13"), None);
        assert_eq!(super::parse_month("26-1"), None);
        assert_eq!(super::parse_month("2026-1"), None);
    }
}
