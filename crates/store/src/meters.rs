//! What the head-end learns from meters and what it needs to reach them:
//! the gateway/bus/meter registry, meter state (online, relay, balance),
//! compact readings, events, daily usage from frozen totals (with missing
//! days marked and later back-filled), and the delivery bookkeeping around
//! `orders::mark_delivered`.
//!
//! The head-end batches its observations: one call of [`record`] writes a
//! whole batch in one transaction, because on SQLite one commit per read
//! would cost more time than the RS485 bus itself.

use crate::jobs::{self, Job};
use crate::row::{BadValue, decode_row, decoded};
use crate::{Db, Result, Tx, on_db, on_tx, orders};
use domain::order::OrderState;
use domain::{CentiKwh, MeterId, OrderId, RoomId};
use serde::Serialize;

/// Most days [`mark_missing_through`] writes at once: the meter keeps 62
/// daily freezes, so older days can never be back-filled anyway.
pub const MISSING_DAYS_MAX: i64 = 62;

/// One gateway with its buses and meters, as the head-end connects to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayRow {
    /// Row id.
    pub id: i64,
    /// Unique name; also the registration id of a gateway that dials us.
    pub name: String,
    /// `dial` (we connect to host:port) or `listen` (it connects to us).
    pub mode: String,
    /// Host to dial.
    pub host: String,
    /// Port to dial.
    pub port: i64,
    /// The buses behind the gateway, by port.
    pub buses: Vec<BusRow>,
}

/// One RS485 bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BusRow {
    /// Row id.
    pub id: i64,
    /// Port number on the gateway.
    pub port: i64,
    /// Line speed, bit/s.
    pub baud: i64,
    /// Meters on the bus, by id.
    pub meters: Vec<MeterRow>,
}

/// One meter on a bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeterRow {
    /// Row id.
    pub id: i64,
    /// 12-digit nameplate address.
    pub address: String,
    /// The room's row id, used as the recharge customer number.
    pub room_id: i64,
    /// Last purchase count read from the meter, if any.
    pub purchase_count: Option<i64>,
    /// Whether the meter was online when last seen.
    pub online: bool,
    /// Whether the head-end has ever heard from the meter.
    pub seen: bool,
    /// The last campus day whose frozen total is stored.
    pub last_frozen_day: Option<i64>,
    /// The last status word 3 read, so a restart does not report old trips again.
    pub status_word: Option<i64>,
}

/// The enabled gateways with their buses and meters.
pub async fn registry(db: &Db) -> Result<Vec<GatewayRow>> {
    let gws: Vec<(i64, String, String, String, i64)> = on_db!(db, |p| sqlx::query_as(
        "select id, name, mode, host, port from gateway where enabled order by id"
    )
    .fetch_all(p)
    .await?);
    let buses: Vec<(i64, i64, i64, i64)> = on_db!(db, |p| sqlx::query_as(
        "select id, gateway_id, port, baud from bus order by gateway_id, port"
    )
    .fetch_all(p)
    .await?);
    type MeterTuple = (
        i64,
        i64,
        String,
        i64,
        Option<i64>,
        Option<bool>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );
    let meters: Vec<MeterTuple> = on_db!(db, |p| {
        sqlx::query_as(
        "select m.id, m.bus_id, m.address, m.room_id, s.purchase_count, s.online,
                (select max(d.day) from daily_usage d where d.meter_id = m.id and d.total_end_centikwh is not null),
                s.status_word, s.last_seen_at_ms
         from meter m left join meter_state s on s.meter_id = m.id
         where m.bus_id is not null order by m.bus_id, m.id"
    )
    .fetch_all(p)
    .await?
    });
    let mut by_bus: std::collections::HashMap<i64, Vec<MeterRow>> = Default::default();
    for (
        id,
        bus_id,
        address,
        room_id,
        purchase_count,
        online,
        last_frozen_day,
        status_word,
        last_seen,
    ) in meters
    {
        by_bus.entry(bus_id).or_default().push(MeterRow {
            id,
            address,
            room_id,
            purchase_count,
            online: online.unwrap_or(false),
            seen: last_seen.is_some(),
            last_frozen_day,
            status_word,
        });
    }
    let mut by_gw: std::collections::HashMap<i64, Vec<BusRow>> = Default::default();
    for (id, gateway_id, port, baud) in buses {
        by_gw.entry(gateway_id).or_default().push(BusRow {
            id,
            port,
            baud,
            meters: by_bus.remove(&id).unwrap_or_default(),
        });
    }
    Ok(gws
        .into_iter()
        .map(|(id, name, mode, host, port)| GatewayRow {
            buses: by_gw.remove(&id).unwrap_or_default(),
            id,
            name,
            mode,
            host,
            port,
        })
        .collect())
}

/// Points a gateway at another host and port (the simulator's ephemeral
/// ports in tests and benchmarks, or a re-addressed gateway). Returns false
/// when no gateway has that name.
pub async fn set_gateway_endpoint(db: &Db, name: &str, host: &str, port: u16) -> Result<bool> {
    let n = on_db!(db, |p| sqlx::query(
        "update gateway set host = $2, port = $3 where name = $1"
    )
    .bind(name)
    .bind(host)
    .bind(i64::from(port))
    .execute(p)
    .await?
    .rows_affected());
    // issue 14 (hot reload): running head-ends follow the new endpoint.
    crate::registry::bump_version(db).await?;
    Ok(n == 1)
}

/// Switches a gateway between `dial` and `listen` mode.
pub async fn set_gateway_mode(db: &Db, name: &str, mode: &str) -> Result<bool> {
    let n = on_db!(db, |p| sqlx::query(
        "update gateway set mode = $2 where name = $1"
    )
    .bind(name)
    .bind(mode)
    .execute(p)
    .await?
    .rows_affected());
    crate::registry::bump_version(db).await?;
    Ok(n == 1)
}

/// What one polling round learned about one meter. `None` fields were not
/// read this round and keep their stored value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Observation {
    /// Meter row id.
    pub meter_id: i64,
    /// When the round ended.
    pub at_ms: i64,
    /// Whether the meter answered at all this round.
    pub seen: bool,
    /// Online/offline after this round, when it changed or is known.
    pub online: Option<bool>,
    /// Consecutive polls without an answer.
    pub missed_polls: i64,
    /// Relay closed (power on).
    pub relay_closed: Option<bool>,
    /// Why the relay is open (balance, malicious_load, over_power, staff,
    /// lockout); written together with `relay_closed`.
    pub relay_reason: Option<String>,
    /// Active power, W.
    pub power_w: Option<i64>,
    /// Remaining energy, 0.01 kWh.
    pub remaining_centikwh: Option<i64>,
    /// Overdraft energy used (DI 00900101), 0.01 kWh.
    pub overdraft_centikwh: Option<i64>,
    /// Total energy register, 0.01 kWh.
    pub total_centikwh: Option<i64>,
    /// Voltage, 0.1 V.
    pub voltage_dv: Option<i64>,
    /// Purchase count.
    pub purchase_count: Option<i64>,
    /// Raw status word 3.
    pub status_word: Option<i64>,
    /// Keep-power (保电) as status word 3 shows it (bit 14); `None` when
    /// the word was not read this round.
    pub keep_power: Option<bool>,
    /// Meter clock minus true time, ms.
    pub clock_offset_ms: Option<i64>,
    /// Store these quantities as readings (hourly values, not every poll).
    pub keep_readings: bool,
}

/// A meter event: trips, restores, offline/online, count errors, deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct MeterEvent {
    /// Meter row id.
    pub meter_id: i64,
    /// When it happened (or was noticed).
    pub at_ms: i64,
    /// Short kind: `trip`, `restore`, `offline`, `online`, `count_error`,
    /// `seq_gap`, `delivered`, `relay_command`, `clock_corrected`.
    pub kind: String,
    /// Detail for staff (e.g. the trip reason).
    pub detail: String,
}

/// Frozen day-end totals read from a meter's daily-freeze history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FrozenDays {
    /// Meter row id.
    pub meter_id: i64,
    /// (campus day number, register total at the end of that day), any order.
    pub totals: Vec<(i64, i64)>,
}

/// Writes a batch of observations, events and frozen totals in one
/// transaction.
pub async fn record(
    db: &Db,
    observations: &[Observation],
    events: &[MeterEvent],
    frozen: &[FrozenDays],
    now_ms: i64,
) -> Result<()> {
    let mut tx = db.begin().await?;
    for o in observations {
        observe_in(&mut tx, o, now_ms).await?;
    }
    for e in events {
        event_in(&mut tx, e).await?;
    }
    for f in frozen {
        frozen_in(&mut tx, f, now_ms).await?;
    }
    tx.commit().await
}

async fn observe_in(tx: &mut Tx, o: &Observation, now_ms: i64) -> Result<()> {
    let seen_at = o.seen.then_some(o.at_ms);
    on_tx!(tx, |c| sqlx::query(
        "update meter_state set
            online = coalesce($2, online),
            last_seen_at_ms = coalesce($3, last_seen_at_ms),
            missed_polls = $4,
            relay_closed = coalesce($5, relay_closed),
            relay_reason = case when $5 is null then relay_reason else $6 end,
            power_w = coalesce($7, power_w),
            remaining_centikwh = coalesce($8, remaining_centikwh),
            remaining_at_ms = case when $8 is null then remaining_at_ms else $9 end,
            total_centikwh = coalesce($10, total_centikwh),
            voltage_dv = coalesce($11, voltage_dv),
            -- never lowered by a routine read: one taken before a delivery
            -- may be written after it (the writer batches observations).
            purchase_count = case when $12 is null then purchase_count
                                  when purchase_count is null or $12 > purchase_count then $12
                                  else purchase_count end,
            status_word = coalesce($13, status_word),
            clock_offset_ms = coalesce($14, clock_offset_ms),
            updated_at_ms = $15,
            overdraft_centikwh = coalesce($16, overdraft_centikwh),
            -- the meter's own keep-power bit, unless a keep-power command
            -- was confirmed after this word was read (a batched write of
            -- an older read must not undo it).
            keep_power = case when $17 is null then keep_power
                              when exists (select 1 from relay_command rc
                                           where rc.meter_id = $1 and rc.state = 'done'
                                             and rc.command in ('keep_power', 'keep_power_release')
                                             and rc.updated_at_ms > $9) then keep_power
                              else $17 end
         where meter_id = $1"
    )
    .bind(o.meter_id)
    .bind(o.online)
    .bind(seen_at)
    .bind(o.missed_polls)
    .bind(o.relay_closed)
    .bind(o.relay_reason.as_deref())
    .bind(o.power_w)
    .bind(o.remaining_centikwh)
    .bind(o.at_ms)
    .bind(o.total_centikwh)
    .bind(o.voltage_dv)
    .bind(o.purchase_count)
    .bind(o.status_word)
    .bind(o.clock_offset_ms)
    .bind(now_ms)
    .bind(o.overdraft_centikwh)
    .bind(o.keep_power)
    .execute(c)
    .await?
    .rows_affected());
    if o.keep_readings {
        let rows = [
            ("remaining", o.remaining_centikwh),
            ("total", o.total_centikwh),
            ("voltage", o.voltage_dv),
            ("power", o.power_w),
        ];
        for (quantity, value) in rows {
            let Some(value) = value else { continue };
            on_tx!(tx, |c| sqlx::query(
                "insert into reading (meter_id, quantity, at_ms, value) values ($1, $2, $3, $4)
                 on conflict (meter_id, quantity, at_ms) do update set value = excluded.value"
            )
            .bind(o.meter_id)
            .bind(quantity)
            .bind(o.at_ms)
            .bind(value)
            .execute(c)
            .await?
            .rows_affected());
        }
    }
    Ok(())
}

pub(crate) async fn event_in(tx: &mut Tx, e: &MeterEvent) -> Result<()> {
    on_tx!(tx, |c| sqlx::query(
        "insert into meter_event (meter_id, at_ms, kind, detail) values ($1, $2, $3, $4)"
    )
    .bind(e.meter_id)
    .bind(e.at_ms)
    .bind(&e.kind)
    .bind(&e.detail)
    .execute(c)
    .await?
    .rows_affected());
    // Issue 15: the meter cut the power for balance — tell its binders.
    let detail = e.detail.as_str();
    if e.kind == "trip" && (detail == "balance" || detail.starts_with("balance;")) {
        crate::notify::power_cut_in(tx, e.meter_id, e.at_ms).await?;
    }
    Ok(())
}

async fn frozen_in(tx: &mut Tx, f: &FrozenDays, now_ms: i64) -> Result<()> {
    let (Some(first), Some(last)) = (
        f.totals.iter().map(|t| t.0).min(),
        f.totals.iter().map(|t| t.0).max(),
    ) else {
        return Ok(());
    };
    for &(day, total) in &f.totals {
        // A new day starts as 'missing' until its predecessor's total is
        // known; the update below turns it 'ok'.
        on_tx!(tx, |c| {
            sqlx::query(
            "insert into daily_usage (meter_id, day, usage_centikwh, total_end_centikwh, status, updated_at_ms)
             values ($1, $2, null, $3, 'missing', $4)
             on conflict (meter_id, day) do update set total_end_centikwh = excluded.total_end_centikwh,
                 updated_at_ms = excluded.updated_at_ms"
        )
        .bind(f.meter_id)
        .bind(day)
        .bind(total)
        .bind(now_ms)
        .execute(c)
        .await?
        .rows_affected()
        });
    }
    // Usage of a day = its end total minus the previous day's end total.
    // The day after the range is recomputed too: its predecessor may just
    // have become known (a back-fill). A negative difference (a replaced
    // meter, a seeded history) is never stored as usage.
    on_tx!(tx, |c| sqlx::query(
        "update daily_usage set
            usage_centikwh = total_end_centikwh - (select p.total_end_centikwh from daily_usage p
                 where p.meter_id = daily_usage.meter_id and p.day = daily_usage.day - 1),
            status = 'ok', updated_at_ms = $4
         where meter_id = $1 and day >= $2 and day <= $3 + 1 and total_end_centikwh is not null
           and total_end_centikwh >= (select p.total_end_centikwh from daily_usage p
                 where p.meter_id = daily_usage.meter_id and p.day = daily_usage.day - 1)"
    )
    .bind(f.meter_id)
    .bind(first)
    .bind(last)
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected());
    Ok(())
}

/// Marks every day after the meter's last stored day up to `through_day`
/// as missing (usage unknown, never zero), at most [`MISSING_DAYS_MAX`]
/// days back. Days already stored are left alone. Returns rows written.
pub async fn mark_missing_through(
    db: &Db,
    meter_id: i64,
    through_day: i64,
    now_ms: i64,
) -> Result<u64> {
    let mut tx = db.begin().await?;
    let last: Option<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "select max(day) from daily_usage where meter_id = $1"
    )
    .bind(meter_id)
    .fetch_one(c)
    .await?);
    let from = last
        .map_or(through_day, |d| d + 1)
        .max(through_day - MISSING_DAYS_MAX + 1);
    let mut n = 0;
    for day in from..=through_day {
        n += on_tx!(&mut tx, |c| {
            sqlx::query(
            "insert into daily_usage (meter_id, day, usage_centikwh, total_end_centikwh, status, updated_at_ms)
             values ($1, $2, null, null, 'missing', $3) on conflict (meter_id, day) do nothing"
        )
        .bind(meter_id)
        .bind(day)
        .bind(now_ms)
        .execute(c)
        .await?
        .rows_affected()
        });
    }
    tx.commit().await?;
    Ok(n)
}

/// One day of a meter's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DayUsage {
    /// Campus day number.
    pub day: i64,
    /// Usage, 0.01 kWh; `None` when missing.
    pub usage_centikwh: Option<i64>,
    /// Register total at the end of the day, when read.
    pub total_end_centikwh: Option<i64>,
    /// `ok` or `missing`.
    pub status: String,
}

/// A meter's daily usage rows for days `from..=to`.
pub async fn days(db: &Db, meter_id: i64, from: i64, to: i64) -> Result<Vec<DayUsage>> {
    Ok(on_db!(db, |p| sqlx::query_as(
        "select day, usage_centikwh, total_end_centikwh, status from daily_usage
         where meter_id = $1 and day >= $2 and day <= $3 order by day"
    )
    .bind(meter_id)
    .bind(from)
    .bind(to)
    .fetch_all(p)
    .await?))
}

/// A meter's events, oldest first, at most `limit`.
pub async fn events(db: &Db, meter_id: i64, limit: i64) -> Result<Vec<MeterEvent>> {
    Ok(on_db!(db, |p| {
        sqlx::query_as(
        "select meter_id, at_ms, kind, detail from meter_event where meter_id = $1 order by id limit $2"
    )
    .bind(meter_id)
    .bind(limit)
    .fetch_all(p)
    .await?
    }))
}

/// The state the head-end keeps for one meter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeterState {
    /// Meter row id.
    pub meter_id: MeterId,
    /// Seen within the last few polls.
    pub online: bool,
    /// Last answer.
    pub last_seen_at_ms: Option<i64>,
    /// Consecutive polls without an answer.
    pub missed_polls: i64,
    /// Relay closed (power on).
    pub relay_closed: Option<bool>,
    /// Why the relay is open.
    pub relay_reason: Option<String>,
    /// Active power, W.
    pub power_w: Option<i64>,
    /// Remaining energy, 0.01 kWh.
    pub remaining_centikwh: Option<CentiKwh>,
    /// Total register, 0.01 kWh.
    pub total_centikwh: Option<CentiKwh>,
    /// Purchase count.
    pub purchase_count: Option<i64>,
    /// Status word 3.
    pub status_word: Option<i64>,
    /// Overdraft energy used, 0.01 kWh, as last read.
    pub overdraft_centikwh: Option<CentiKwh>,
}

/// [`MeterState`] as stored.
#[derive(sqlx::FromRow)]
struct MeterStateRow {
    meter_id: i64,
    online: bool,
    last_seen_at_ms: Option<i64>,
    missed_polls: i64,
    relay_closed: Option<bool>,
    relay_reason: Option<String>,
    power_w: Option<i64>,
    remaining_centikwh: Option<i64>,
    total_centikwh: Option<i64>,
    purchase_count: Option<i64>,
    status_word: Option<i64>,
    overdraft_centikwh: Option<i64>,
}

impl From<MeterStateRow> for MeterState {
    fn from(r: MeterStateRow) -> Self {
        Self {
            meter_id: MeterId::new(r.meter_id),
            online: r.online,
            last_seen_at_ms: r.last_seen_at_ms,
            missed_polls: r.missed_polls,
            relay_closed: r.relay_closed,
            relay_reason: r.relay_reason,
            power_w: r.power_w,
            remaining_centikwh: r.remaining_centikwh.map(CentiKwh::new),
            total_centikwh: r.total_centikwh.map(CentiKwh::new),
            purchase_count: r.purchase_count,
            status_word: r.status_word,
            overdraft_centikwh: r.overdraft_centikwh.map(CentiKwh::new),
        }
    }
}

impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for MeterState
where
    MeterStateRow: sqlx::FromRow<'r, R>,
{
    fn from_row(row: &'r R) -> std::result::Result<Self, sqlx::Error> {
        MeterStateRow::from_row(row).map(Self::from)
    }
}

/// The head-end's state of one meter.
pub async fn state(db: &Db, meter_id: i64) -> Result<Option<MeterState>> {
    Ok(on_db!(db, |p| {
        sqlx::query_as(
        "select meter_id, online, last_seen_at_ms, missed_polls, relay_closed, relay_reason, power_w,
                remaining_centikwh, total_centikwh, purchase_count, status_word, overdraft_centikwh
         from meter_state where meter_id = $1"
    )
    .bind(meter_id)
    .fetch_optional(p)
    .await?
    }))
}

/// Readings of one quantity of a meter in `[from_ms, to_ms]`, oldest first.
pub async fn readings(
    db: &Db,
    meter_id: i64,
    quantity: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<(i64, i64)>> {
    Ok(on_db!(db, |p| sqlx::query_as(
        "select at_ms, value from reading where meter_id = $1 and quantity = $2
         and at_ms >= $3 and at_ms <= $4 order by at_ms"
    )
    .bind(meter_id)
    .bind(quantity)
    .bind(from_ms)
    .bind(to_ms)
    .fetch_all(p)
    .await?))
}

/// What the delivery worker needs to know about an order's meter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryTarget {
    /// Order row id.
    pub order_id: OrderId,
    /// Order state.
    pub state: OrderState,
    /// Meter row id.
    pub meter_id: MeterId,
    /// Meter address.
    pub address: String,
    /// The room, used as the recharge customer number.
    pub room_id: RoomId,
    /// Energy to deliver.
    pub centikwh: CentiKwh,
    /// The assigned purchase sequence number, if any yet.
    pub purchase_seq: Option<i64>,
    /// When it was paid.
    pub paid_at_ms: Option<i64>,
}

/// [`DeliveryTarget`] as stored.
#[derive(sqlx::FromRow)]
struct DeliveryTargetRow {
    order_id: i64,
    state: String,
    meter_id: i64,
    address: String,
    room_id: i64,
    centikwh: i64,
    purchase_seq: Option<i64>,
    paid_at_ms: Option<i64>,
}

impl TryFrom<DeliveryTargetRow> for DeliveryTarget {
    type Error = BadValue;

    fn try_from(r: DeliveryTargetRow) -> Result<Self, BadValue> {
        Ok(Self {
            order_id: OrderId::new(r.order_id),
            state: decoded(
                &format!("orders.state of order {}", r.order_id),
                &r.state,
                OrderState::parse(&r.state),
            )?,
            meter_id: MeterId::new(r.meter_id),
            address: r.address,
            room_id: RoomId::new(r.room_id),
            centikwh: CentiKwh::new(r.centikwh),
            purchase_seq: r.purchase_seq,
            paid_at_ms: r.paid_at_ms,
        })
    }
}

decode_row!(DeliveryTarget, DeliveryTargetRow);

/// The delivery target of an order.
pub async fn delivery_target(db: &Db, order_id: OrderId) -> Result<Option<DeliveryTarget>> {
    Ok(on_db!(db, |p| {
        sqlx::query_as(
        "select o.id as order_id, o.state, o.meter_id, m.address, m.room_id, o.kwh * 100 as centikwh,
                o.purchase_seq, o.paid_at_ms
         from orders o join meter m on m.id = o.meter_id where o.id = $1"
    )
    .bind(order_id.get())
    .fetch_optional(p)
    .await?
    }))
}

/// Stores a purchase count just read from the meter (before a sequence
/// number is assigned from it).
pub async fn set_purchase_count(db: &Db, meter_id: MeterId, count: i64, now_ms: i64) -> Result<()> {
    on_db!(db, |p| sqlx::query(
        "update meter_state set purchase_count = $2, online = true, missed_polls = 0,
                last_seen_at_ms = $3, updated_at_ms = $3 where meter_id = $1"
    )
    .bind(meter_id.get())
    .bind(count)
    .bind(now_ms)
    .execute(p)
    .await?
    .rows_affected());
    Ok(())
}

/// The meter's evidence that a purchase arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DeliveryEvidence {
    /// The meter's purchase count (equals the order's sequence number).
    pub purchase_count: i64,
    /// Remaining energy the meter reported, when it did.
    pub remaining_centikwh: Option<i64>,
}

/// Completes a delivery in one transaction: the order (charging/delayed →
/// completed) with its ledger rows, the job, the meter state and an event,
/// and wakes the meter's next purchase. Fenced: fails with
/// [`crate::Error::LeaseLost`] (and changes nothing) unless `job` still
/// holds its lease. Returns false when the order was already completed.
pub async fn complete_delivery(
    db: &Db,
    order_id: OrderId,
    job: &Job,
    meter_id: MeterId,
    evidence: DeliveryEvidence,
    now_ms: i64,
) -> Result<bool> {
    let mut tx = db.begin().await?;
    jobs::complete(&mut tx, job, now_ms).await?;
    let seq: Option<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "select purchase_seq from orders where id = $1"
    )
    .bind(order_id.get())
    .fetch_optional(c)
    .await?)
    .flatten();
    if seq != Some(evidence.purchase_count) {
        return Err(crate::Error::Conflict(format!(
            "order {order_id} holds purchase {seq:?}, the meter's evidence is for {}",
            evidence.purchase_count
        )));
    }
    let changed = orders::mark_delivered(&mut tx, order_id, now_ms).await?;
    on_tx!(&mut tx, |c| sqlx::query(
        "update meter_state set purchase_count = $2,
                remaining_centikwh = coalesce($3, remaining_centikwh),
                remaining_at_ms = case when $3 is null then remaining_at_ms else $4 end,
                -- A purchase repays the overdraft first: a balance left means
                -- none is owed; none left means some may be, amount unknown
                -- until the next read.
                overdraft_centikwh = case when $3 is null then overdraft_centikwh
                                          when $3 > 0 then 0 else null end,
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
    if changed {
        event_in(
            &mut tx,
            &MeterEvent {
                meter_id: meter_id.get(),
                at_ms: now_ms,
                kind: "delivered".to_owned(),
                detail: format!("order {order_id}, purchase {}", evidence.purchase_count),
            },
        )
        .await?;
    }
    let keys = orders::sibling_delivery_keys(&mut tx, meter_id, order_id).await?;
    jobs::wake(&mut tx, &keys, now_ms).await?;
    tx.commit().await?;
    Ok(changed)
}

/// Stops a delivery that needs staff (a sequence gap, an unreadable
/// outcome): an event, the order flagged delayed if it was still charging,
/// and the job dead-lettered with the reason. Never marks the purchase
/// delivered; the order keeps its number, so the meter's other purchases
/// wait until staff settle it ([`orders::redeliver`]). Fenced like
/// [`complete_delivery`].
pub async fn flag_delivery(
    db: &Db,
    order_id: OrderId,
    job: &Job,
    meter_id: MeterId,
    kind: &str,
    detail: &str,
    now_ms: i64,
) -> Result<()> {
    let mut tx = db.begin().await?;
    flag_in(&mut tx, order_id, job, meter_id, kind, detail, now_ms).await?;
    tx.commit().await
}

/// The meter refused the recharge (e.g. its hoarding limit) and a read-back
/// showed its purchase count `count` below the order's number `seq`: the
/// purchase was not applied. The number is given back (so the meter's next
/// purchase is not a gap and later orders are not blocked), the order is
/// flagged delayed with its job dead-lettered: it is refundable, and staff
/// may deliver it again once it fits. Fenced like [`complete_delivery`].
#[allow(clippy::too_many_arguments)]
pub async fn refuse_delivery(
    db: &Db,
    order_id: OrderId,
    job: &Job,
    meter_id: MeterId,
    seq: i64,
    count: i64,
    detail: &str,
    now_ms: i64,
) -> Result<()> {
    let mut tx = db.begin().await?;
    flag_in(
        &mut tx,
        order_id,
        job,
        meter_id,
        "recharge_refused",
        detail,
        now_ms,
    )
    .await?;
    if !orders::release_unapplied_seq(&mut tx, order_id, seq, count, now_ms).await? {
        return Err(crate::Error::Conflict(format!(
            "order {order_id} no longer holds purchase {seq}"
        )));
    }
    on_tx!(&mut tx, |c| sqlx::query(
        "update meter_state set purchase_count = $2, updated_at_ms = $3 where meter_id = $1"
    )
    .bind(meter_id.get())
    .bind(count)
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected());
    let keys = orders::sibling_delivery_keys(&mut tx, meter_id, order_id).await?;
    jobs::wake(&mut tx, &keys, now_ms).await?;
    tx.commit().await
}

async fn flag_in(
    tx: &mut Tx,
    order_id: OrderId,
    job: &Job,
    meter_id: MeterId,
    kind: &str,
    detail: &str,
    now_ms: i64,
) -> Result<()> {
    jobs::bury_in(tx, job, &format!("{kind}: {detail}"), now_ms).await?;
    event_in(
        tx,
        &MeterEvent {
            meter_id: meter_id.get(),
            at_ms: now_ms,
            kind: kind.to_owned(),
            detail: format!("order {order_id}: {detail}"),
        },
    )
    .await?;
    on_tx!(tx, |c| sqlx::query(
        "update orders set state = 'delayed', delayed_at_ms = $2, updated_at_ms = $2
         where id = $1 and state = 'charging'"
    )
    .bind(order_id.get())
    .bind(now_ms)
    .execute(c)
    .await?
    .rows_affected());
    // In the staff's exceptions queue from this commit on.
    crate::exceptions::raise_in(tx, order_id, kind, detail, now_ms).await?;
    Ok(())
}

/// Counts of meters online and offline, for metrics.
pub async fn online_counts(db: &Db) -> Result<(i64, i64)> {
    let (on, off): (i64, i64) = on_db!(db, |p| sqlx::query_as(
        "select coalesce(sum(case when online then 1 else 0 end), 0),
                coalesce(sum(case when online then 0 else 1 end), 0) from meter_state"
    )
    .fetch_one(p)
    .await?);
    Ok((on, off))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use domain::campus::reference_plan;

    async fn seeded() -> Vec<Db> {
        let mut v = Vec::new();
        for db in testing::all().await.expect("test databases") {
            let mut plan = reference_plan();
            plan.areas.truncate(1);
            plan.areas[0].buildings.truncate(1);
            crate::campus::seed(
                &db,
                &plan,
                &crate::campus::GatewayAddressing::default(),
                1_000,
            )
            .await
            .expect("seed");
            v.push(db);
        }
        v
    }

    /// The first meter of the seeded registry.
    async fn first_meter(db: &Db) -> i64 {
        registry(db).await.unwrap()[0].buses[0].meters[0].id
    }

    /// An observation of meter `m` at `at_ms` in a round that reached it.
    fn seen(m: i64, at_ms: i64) -> Observation {
        Observation {
            meter_id: m,
            at_ms,
            seen: true,
            ..Observation::default()
        }
    }

    #[tokio::test]
    async fn registry_lists_gateways_buses_meters() {
        for db in seeded().await {
            let r = registry(&db).await.unwrap();
            assert_eq!(r.len(), 1);
            let meters: usize = r[0].buses.iter().map(|b| b.meters.len()).sum();
            assert_eq!(meters, 30);
            assert_eq!(r[0].port, 21_000);
            assert!(
                set_gateway_endpoint(&db, &r[0].name, "127.0.0.1", 9)
                    .await
                    .unwrap()
            );
            assert!(!set_gateway_endpoint(&db, "nope", "h", 1).await.unwrap());
            assert!(set_gateway_mode(&db, &r[0].name, "listen").await.unwrap());
            let r = registry(&db).await.unwrap();
            assert_eq!((r[0].port, r[0].mode.as_str()), (9, "listen"));
        }
    }

    /// Issue 11 item 3: the overdraft energy read from a meter is kept, a
    /// round that did not read it keeps it, and the student's view of the
    /// meter carries it.
    #[tokio::test]
    async fn overdraft_round_trips_to_the_students_view() {
        for db in seeded().await {
            let m = first_meter(&db).await;
            let o = Observation {
                relay_closed: Some(true),
                remaining_centikwh: Some(0),
                overdraft_centikwh: Some(321),
                ..seen(m, 5_000)
            };
            record(&db, &[o], &[], &[], 5_000).await.unwrap();
            let s = state(&db, m).await.unwrap().unwrap();
            assert_eq!(
                (s.remaining_centikwh, s.overdraft_centikwh),
                (Some(CentiKwh::new(0)), Some(CentiKwh::new(321)))
            );
            let o2 = Observation {
                power_w: Some(40),
                ..seen(m, 6_000)
            };
            record(&db, &[o2], &[], &[], 6_000).await.unwrap();
            assert_eq!(
                state(&db, m).await.unwrap().unwrap().overdraft_centikwh,
                Some(CentiKwh::new(321))
            );
            // The student's pages read it through their binding.
            let student = crate::students::upsert_by_openid(&db, "o-od", false, 1)
                .await
                .unwrap();
            crate::students::bind(&db, student.id, m, true, 8, 2)
                .await
                .unwrap();
            let b = crate::students::default_binding(&db, student.id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(b.overdraft_centikwh, Some(CentiKwh::new(321)));
        }
    }

    #[tokio::test]
    async fn observations_events_and_readings() {
        for db in seeded().await {
            let m = first_meter(&db).await;
            let o = Observation {
                online: Some(true),
                relay_closed: Some(false),
                relay_reason: Some("malicious_load".into()),
                power_w: Some(0),
                remaining_centikwh: Some(1234),
                total_centikwh: Some(99_000),
                purchase_count: Some(7),
                status_word: Some(0x1150),
                keep_readings: true,
                ..seen(m, 5_000)
            };
            let e = MeterEvent {
                meter_id: m,
                at_ms: 5_000,
                kind: "trip".into(),
                detail: "malicious_load".into(),
            };
            record(&db, &[o], std::slice::from_ref(&e), &[], 5_000)
                .await
                .unwrap();
            let s = state(&db, m).await.unwrap().unwrap();
            assert!(s.online);
            assert_eq!(s.relay_closed, Some(false));
            assert_eq!(s.relay_reason.as_deref(), Some("malicious_load"));
            assert_eq!(s.remaining_centikwh, Some(CentiKwh::new(1234)));
            assert_eq!(s.purchase_count, Some(7));
            // A later round that read nothing but missed keeps the values.
            let o2 = Observation {
                meter_id: m,
                at_ms: 6_000,
                online: Some(false),
                missed_polls: 3,
                ..Observation::default()
            };
            record(&db, &[o2], &[], &[], 6_000).await.unwrap();
            let s = state(&db, m).await.unwrap().unwrap();
            assert!(!s.online);
            assert_eq!(s.missed_polls, 3);
            assert_eq!(s.remaining_centikwh, Some(CentiKwh::new(1234)));
            assert_eq!(s.relay_reason.as_deref(), Some("malicious_load"));
            assert_eq!(events(&db, m, 10).await.unwrap(), vec![e]);
            assert_eq!(
                readings(&db, m, "remaining", 0, 10_000).await.unwrap(),
                vec![(5_000, 1234)]
            );
            assert_eq!(online_counts(&db).await.unwrap(), (0, 30));
        }
    }

    #[tokio::test]
    async fn daily_usage_missing_then_backfilled() {
        for db in seeded().await {
            let m = first_meter(&db).await;
            // Day 100 read; 101..=103 unreadable (offline); then a freeze
            // read covering 100..=104 fills them in.
            let f = FrozenDays {
                meter_id: m,
                totals: vec![(99, 1_000), (100, 1_500)],
            };
            record(&db, &[], &[], &[f], 1).await.unwrap();
            assert_eq!(mark_missing_through(&db, m, 103, 2).await.unwrap(), 3);
            assert_eq!(mark_missing_through(&db, m, 103, 2).await.unwrap(), 0);
            let d = days(&db, m, 99, 104).await.unwrap();
            let st: Vec<(&str, Option<i64>)> = d
                .iter()
                .map(|d| (d.status.as_str(), d.usage_centikwh))
                .collect();
            assert_eq!(
                st,
                [
                    ("missing", None),
                    ("ok", Some(500)),
                    ("missing", None),
                    ("missing", None),
                    ("missing", None)
                ]
            );
            let f = FrozenDays {
                meter_id: m,
                totals: vec![(104, 3_000), (103, 2_400), (102, 2_000), (101, 1_800)],
            };
            record(&db, &[], &[], &[f], 3).await.unwrap();
            let d = days(&db, m, 100, 104).await.unwrap();
            let usage: Vec<Option<i64>> = d.iter().map(|d| d.usage_centikwh).collect();
            assert_eq!(
                usage,
                [Some(500), Some(300), Some(200), Some(400), Some(600)]
            );
            assert!(d.iter().all(|d| d.status == "ok"));
            // A decreasing total (meter replaced) is not stored as usage.
            let f = FrozenDays {
                meter_id: m,
                totals: vec![(105, 10)],
            };
            record(&db, &[], &[], &[f], 4).await.unwrap();
            let d = days(&db, m, 105, 105).await.unwrap();
            assert_eq!(
                (d[0].status.as_str(), d[0].usage_centikwh),
                ("missing", None)
            );
            // The registry knows the last frozen day.
            let r = registry(&db).await.unwrap();
            assert_eq!(r[0].buses[0].meters[0].last_frozen_day, Some(105));
        }
    }

    #[tokio::test]
    async fn delivery_bookkeeping() {
        for db in seeded().await {
            let m = registry(&db).await.unwrap()[0].buses[0].meters[0].clone();
            let info = crate::campus::meter_by_id(&db, MeterId::new(m.id))
                .await
                .unwrap()
                .unwrap();
            let kwh = domain::WholeKwh::parse("20", 500).unwrap();
            let sell = |now| {
                let db = db.clone();
                let address = info.address;
                async move {
                    orders::create_counter_sale(
                        &db,
                        info.area_id.get(),
                        address.as_str(),
                        kwh,
                        "t",
                        now,
                    )
                    .await
                    .unwrap()
                }
            };
            let a = sell(10).await;
            let b = sell(11).await;
            let t = delivery_target(&db, a.id).await.unwrap().unwrap();
            assert_eq!(
                (t.meter_id, t.centikwh, t.purchase_seq),
                (MeterId::new(m.id), CentiKwh::new(2_000), None)
            );
            assert_eq!(t.room_id, RoomId::new(m.room_id));
            set_purchase_count(&db, MeterId::new(m.id), 41, 20)
                .await
                .unwrap();
            // B was paid after A: it waits for A.
            assert!(matches!(
                orders::assign_purchase_seq(&db, b.id, 21).await.unwrap(),
                orders::Assignment::Wait(_)
            ));
            assert_eq!(
                orders::assign_purchase_seq(&db, a.id, 21).await.unwrap(),
                orders::Assignment::Assigned(42)
            );
            let jobs = jobs::claim(&db, orders::DELIVER_QUEUE, "w", 30, 60_000, 10)
                .await
                .unwrap();
            assert_eq!(jobs.len(), 2);
            let ev = DeliveryEvidence {
                purchase_count: 42,
                remaining_centikwh: Some(7_000),
            };
            assert!(
                complete_delivery(&db, a.id, &jobs[0], MeterId::new(m.id), ev, 40)
                    .await
                    .unwrap()
            );
            // A second confirmation with the finished lease changes nothing.
            assert!(matches!(
                complete_delivery(&db, a.id, &jobs[0], MeterId::new(m.id), ev, 41).await,
                Err(crate::Error::LeaseLost(_))
            ));
            let o = orders::by_id(&db, a.id).await.unwrap().unwrap();
            assert_eq!(o.state, OrderState::Completed);
            let s = state(&db, m.id).await.unwrap().unwrap();
            assert_eq!(
                (s.purchase_count, s.remaining_centikwh),
                (Some(42), Some(CentiKwh::new(7_000)))
            );
            flag_delivery(
                &db,
                b.id,
                &jobs[1],
                MeterId::new(m.id),
                "seq_gap",
                "count 40",
                50,
            )
            .await
            .unwrap();
            let o = orders::by_id(&db, b.id).await.unwrap().unwrap();
            assert_eq!(o.state, OrderState::Delayed);
            let kinds: Vec<String> = events(&db, m.id, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.kind)
                .collect();
            assert_eq!(kinds, ["delivered", "seq_gap"]);
            assert_eq!(
                jobs::claim(&db, orders::DELIVER_QUEUE, "w", 10_000_000, 60_000, 10)
                    .await
                    .unwrap(),
                vec![]
            );
            assert!(crate::ledger::check(&db).await.unwrap().is_empty());
        }
    }
}
