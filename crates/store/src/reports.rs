//! Staff reports (issue 14 item 7), each one aggregate query over a range
//! of campus days, limited to an operator's scope ([`Within`]). What each
//! figure means is written down in docs/OPERATIONS.md "Reports"; in short:
//!
//! - **Sales**: orders paid on a campus day (refunded ones included: they
//!   were sold), by channel and — for counter sales — by the cashier who
//!   sold them; refunds are counted on the day the refund completed, in
//!   their own columns, never netted into the sales.
//! - **Usage**: the `daily_usage` rows of the range by building and day;
//!   a day that could not be read counts as missing, never as zero.
//! - **Read success**: per bus and day, the daily freezes received over the
//!   freezes due. A meter on a bus is due one freeze (its end-of-day total)
//!   for every campus day that has ended and that ended after the meter was
//!   registered; it is received when `daily_usage` holds that day's end
//!   total, however late it was read (a back-fill raises an old day's
//!   figure). Today is never due. Meters on no bus are not counted.
//! - **Malicious-load trips**: `trip` meter events whose reason is
//!   `malicious_load`, by room.
//! - **Offline meters**: meters the head-end does not reach now, with how
//!   long since it last heard from them, bucketed ([`OfflineBucket`]).
//!
//! Campus days are day numbers (`domain::time::day_number`) of the campus
//! time zone. Queries that bucket instants into days get the days' bounds
//! as an inline `values` list computed here with the time zone (integers
//! we format, so no text enters the SQL), so a zone with daylight saving
//! is still right.

use crate::dashboard::Within;
use crate::{Db, Error, Result, on_db};
use domain::order::Channel;
use domain::time::{date_of_day_number, day_start_ms};
use domain::{CentiKwh, Fen};
use jiff::tz::TimeZone;

/// The longest range a report covers (a year and a day, for a leap year).
pub const RANGE_DAYS_MAX: i64 = 366;

/// Why a report range was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// The last day is before the first.
    #[error("the report range ends before it starts")]
    Backwards,
    /// More than [`RANGE_DAYS_MAX`] days.
    #[error("a report covers at most {RANGE_DAYS_MAX} days")]
    TooLong,
}

/// Campus days `from..=to` (day numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First day.
    pub from: i64,
    /// Last day, inclusive.
    pub to: i64,
}

impl Range {
    /// The range, refused when it is backwards or longer than
    /// [`RANGE_DAYS_MAX`].
    pub fn new(from: i64, to: i64) -> std::result::Result<Self, RangeError> {
        if to < from {
            return Err(RangeError::Backwards);
        }
        if to - from + 1 > RANGE_DAYS_MAX {
            return Err(RangeError::TooLong);
        }
        Ok(Range { from, to })
    }

    /// Days in the range.
    pub fn days(self) -> i64 {
        self.to - self.from + 1
    }
}

/// `days (day, start_ms, end_ms) as (values …)` for `days` (none: an empty
/// list that matches nothing).
fn days_cte(days: impl Iterator<Item = i64>, tz: &TimeZone) -> String {
    let rows: Vec<String> = days
        .map(|d| {
            let start = day_start_ms(date_of_day_number(d), tz);
            let end = day_start_ms(date_of_day_number(d + 1), tz);
            format!("({d}, {start}, {end})")
        })
        .collect();
    if rows.is_empty() {
        // A row no instant falls in.
        return "days (day, start_ms, end_ms) as (values (0, 0, 0))".to_owned();
    }
    format!(
        "days (day, start_ms, end_ms) as (values {})",
        rows.join(", ")
    )
}

/// The instant the range starts and the one after it ends.
fn bounds(range: Range, tz: &TimeZone) -> (i64, i64) {
    (
        day_start_ms(date_of_day_number(range.from), tz),
        day_start_ms(date_of_day_number(range.to + 1), tz),
    )
}

/// One day's sales of one channel (and, at the counter, one cashier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalesRow {
    /// Campus day.
    pub day: i64,
    /// WeChat or counter.
    pub channel: Channel,
    /// The selling operator's name for a counter sale; empty for WeChat.
    pub cashier: String,
    /// Orders paid that day.
    pub orders: i64,
    /// Their whole kWh.
    pub kwh: i64,
    /// Their amount.
    pub amount: Fen,
    /// Orders refunded that day (whenever they were paid).
    pub refunds: i64,
    /// The refunded amount.
    pub refunded: Fen,
}

#[derive(sqlx::FromRow)]
struct SalesDbRow {
    day: i64,
    channel: String,
    cashier: String,
    orders: i64,
    kwh: i64,
    amount_fen: i64,
    refunds: i64,
    refunded_fen: i64,
}

/// Sales and refunds by day, channel and cashier, oldest day first.
pub async fn sales(db: &Db, w: &Within, range: Range, tz: &TimeZone) -> Result<Vec<SalesRow>> {
    let (from_ms, until_ms) = bounds(range, tz);
    let days = days_cte(range.from..=range.to, tz);
    let scope = w.clause();
    let paid = "o.paid_at_ms >= d.start_ms and o.paid_at_ms < d.end_ms";
    let refunded = "o.refunded_at_ms >= d.start_ms and o.refunded_at_ms < d.end_ms";
    let sql = format!(
        "with {days}
         select cast(d.day as bigint) as day, o.channel,
                case when o.channel = 'counter' then coalesce(o.operator, '') else '' end as cashier,
                cast(sum(case when {paid} then 1 else 0 end) as bigint) as orders,
                cast(sum(case when {paid} then o.kwh else 0 end) as bigint) as kwh,
                cast(sum(case when {paid} then o.amount_fen else 0 end) as bigint) as amount_fen,
                cast(sum(case when {refunded} then 1 else 0 end) as bigint) as refunds,
                cast(sum(case when {refunded} then o.amount_fen else 0 end) as bigint) as refunded_fen
         from orders o
         join days d on ({paid}) or ({refunded})
         join meter m on m.id = o.meter_id join room r on r.id = m.room_id
         where ((o.paid_at_ms >= $1 and o.paid_at_ms < $2)
                or (o.refunded_at_ms >= $1 and o.refunded_at_ms < $2)){scope}
         group by d.day, o.channel, case when o.channel = 'counter' then coalesce(o.operator, '') else '' end
         order by 1, 2, 3"
    );
    let rows: Vec<SalesDbRow> = on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .bind(from_ms)
        .bind(until_ms)
        .fetch_all(p)
        .await?);
    rows.into_iter()
        .map(|r| {
            Ok(SalesRow {
                day: r.day,
                channel: Channel::parse(&r.channel)
                    .ok_or_else(|| Error::Corrupt(format!("order channel '{}'", r.channel)))?,
                cashier: r.cashier,
                orders: r.orders,
                kwh: r.kwh,
                amount: Fen::new(r.amount_fen),
                refunds: r.refunds,
                refunded: Fen::new(r.refunded_fen),
            })
        })
        .collect()
}

/// One building's usage on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// Campus day.
    pub day: i64,
    /// Building row id.
    pub building_id: i64,
    /// Its Chinese name.
    pub building_zh: String,
    /// Its English name.
    pub building_en: String,
    /// Sum of the usage of the meters read that day.
    pub usage: CentiKwh,
    /// Meters whose usage that day is known.
    pub meters_read: i64,
    /// Meters whose day is stored as missing.
    pub meters_missing: i64,
}

#[derive(sqlx::FromRow)]
struct UsageDbRow {
    day: i64,
    building_id: i64,
    building_zh: String,
    building_en: String,
    usage_centikwh: i64,
    meters_read: i64,
    meters_missing: i64,
}

/// Usage by building and day, oldest day first, buildings in their order.
pub async fn usage(db: &Db, w: &Within, range: Range) -> Result<Vec<UsageRow>> {
    let scope = w.clause();
    let sql = format!(
        "select u.day, b.id as building_id, b.name_zh as building_zh, b.name_en as building_en,
                cast(coalesce(sum(case when u.status = 'ok' then u.usage_centikwh else 0 end), 0) as bigint) as usage_centikwh,
                cast(sum(case when u.status = 'ok' then 1 else 0 end) as bigint) as meters_read,
                cast(sum(case when u.status = 'ok' then 0 else 1 end) as bigint) as meters_missing
         from daily_usage u join meter m on m.id = u.meter_id join room r on r.id = m.room_id
         join building b on b.id = r.building_id
         where u.day >= $1 and u.day <= $2{scope}
         group by u.day, b.id, b.name_zh, b.name_en, b.position
         order by u.day, b.position, b.id"
    );
    let rows: Vec<UsageDbRow> = on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .bind(range.from)
        .bind(range.to)
        .fetch_all(p)
        .await?);
    Ok(rows
        .into_iter()
        .map(|r| UsageRow {
            day: r.day,
            building_id: r.building_id,
            building_zh: r.building_zh,
            building_en: r.building_en,
            usage: CentiKwh::new(r.usage_centikwh),
            meters_read: r.meters_read,
            meters_missing: r.meters_missing,
        })
        .collect())
}

/// One bus's daily reads on one day.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ReadSuccessRow {
    /// Campus day.
    pub day: i64,
    /// Bus row id.
    pub bus_id: i64,
    /// The gateway's name.
    pub gateway: String,
    /// The bus's port on the gateway.
    pub port: i64,
    /// Daily freezes due (meters on the bus registered before the day ended).
    pub due: i64,
    /// Daily freezes received (the day's end total is stored).
    pub received: i64,
}

impl ReadSuccessRow {
    /// Received / due in basis points of a percent (10000 = 100 %);
    /// `None` when nothing was due.
    pub fn ratio_bp(&self) -> Option<i64> {
        (self.due > 0).then(|| self.received * 10_000 / self.due)
    }
}

/// Read success by bus and day for the days of `range` that have ended
/// before `today` (a day number), oldest day first.
pub async fn read_success(
    db: &Db,
    w: &Within,
    range: Range,
    today: i64,
    tz: &TimeZone,
) -> Result<Vec<ReadSuccessRow>> {
    let days = days_cte(range.from..=range.to.min(today - 1), tz);
    let scope = w.clause();
    let sql = format!(
        "with {days}
         select cast(d.day as bigint) as day, b.id as bus_id, g.name as gateway, b.port,
                count(m.id) as due, count(u.meter_id) as received
         from days d
         join meter m on m.created_at_ms < d.end_ms
         join bus b on b.id = m.bus_id join gateway g on g.id = b.gateway_id
         join room r on r.id = m.room_id
         left join daily_usage u on u.meter_id = m.id and u.day = d.day
              and u.total_end_centikwh is not null
         where d.end_ms > 0{scope}
         group by d.day, b.id, g.name, b.port
         order by 1, g.name, b.port"
    );
    Ok(on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .fetch_all(p)
    .await?))
}

/// One room's malicious-load trips in the range.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TripRow {
    /// Building, Chinese name.
    pub building_zh: String,
    /// Building, English name.
    pub building_en: String,
    /// Room number.
    pub room: String,
    /// The room's meter address(es) that tripped (the smallest when several).
    pub meter_address: String,
    /// Trips.
    pub trips: i64,
    /// The last one.
    pub last_at_ms: i64,
}

/// Malicious-load trips by room, most trips first.
pub async fn trips(db: &Db, w: &Within, range: Range, tz: &TimeZone) -> Result<Vec<TripRow>> {
    let (from_ms, until_ms) = bounds(range, tz);
    let scope = w.clause();
    let sql = format!(
        "select b.name_zh as building_zh, b.name_en as building_en, r.number as room,
                min(m.address) as meter_address, count(*) as trips, max(e.at_ms) as last_at_ms
         from meter_event e join meter m on m.id = e.meter_id join room r on r.id = m.room_id
         join building b on b.id = r.building_id
         where e.kind = 'trip' and (e.detail = 'malicious_load' or e.detail like 'malicious\\_load;%' escape '\\')
           and e.at_ms >= $1 and e.at_ms < $2{scope}
         group by r.id, b.name_zh, b.name_en, r.number, b.position
         order by count(*) desc, b.position, r.number"
    );
    Ok(on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(from_ms)
    .bind(until_ms)
    .fetch_all(p)
    .await?))
}

/// How long an offline meter has been unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OfflineBucket {
    /// Under an hour.
    UnderHour,
    /// One hour to a day.
    UnderDay,
    /// One to three days.
    UnderThreeDays,
    /// Three to seven days.
    UnderWeek,
    /// A week or more.
    WeekOrMore,
    /// Never heard from.
    Never,
}

impl OfflineBucket {
    /// Every bucket, shortest first.
    pub const ALL: [OfflineBucket; 6] = [
        OfflineBucket::UnderHour,
        OfflineBucket::UnderDay,
        OfflineBucket::UnderThreeDays,
        OfflineBucket::UnderWeek,
        OfflineBucket::WeekOrMore,
        OfflineBucket::Never,
    ];

    /// The bucket of an offline duration (`None`: never seen).
    pub fn of(offline_ms: Option<i64>) -> Self {
        const HOUR_MS: i64 = 3_600_000;
        const DAY_MS: i64 = 24 * HOUR_MS;
        match offline_ms {
            None => OfflineBucket::Never,
            Some(ms) if ms < HOUR_MS => OfflineBucket::UnderHour,
            Some(ms) if ms < DAY_MS => OfflineBucket::UnderDay,
            Some(ms) if ms < 3 * DAY_MS => OfflineBucket::UnderThreeDays,
            Some(ms) if ms < 7 * DAY_MS => OfflineBucket::UnderWeek,
            Some(_) => OfflineBucket::WeekOrMore,
        }
    }

    /// A stable name (`under_hour`), for exports and catalog keys.
    pub fn as_str(self) -> &'static str {
        match self {
            OfflineBucket::UnderHour => "under_hour",
            OfflineBucket::UnderDay => "under_day",
            OfflineBucket::UnderThreeDays => "under_3_days",
            OfflineBucket::UnderWeek => "under_week",
            OfflineBucket::WeekOrMore => "week_or_more",
            OfflineBucket::Never => "never",
        }
    }
}

/// One meter the head-end does not reach now.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OfflineRow {
    /// Meter address.
    pub meter_address: String,
    /// Building, Chinese name.
    pub building_zh: String,
    /// Building, English name.
    pub building_en: String,
    /// Room number.
    pub room: String,
    /// When it last answered; `None`: never.
    pub last_seen_at_ms: Option<i64>,
}

impl OfflineRow {
    /// How long it has been unreachable at `now_ms`; `None`: never seen.
    pub fn offline_ms(&self, now_ms: i64) -> Option<i64> {
        self.last_seen_at_ms.map(|s| (now_ms - s).max(0))
    }
}

/// The meters offline now, longest unreachable first (never seen last).
pub async fn offline(db: &Db, w: &Within) -> Result<Vec<OfflineRow>> {
    let scope = w.clause();
    let sql = format!(
        "select m.address as meter_address, b.name_zh as building_zh, b.name_en as building_en,
                r.number as room, s.last_seen_at_ms
         from meter m join room r on r.id = m.room_id join building b on b.id = r.building_id
         left join meter_state s on s.meter_id = m.id
         where (s.online is null or not s.online){scope}
         order by case when s.last_seen_at_ms is null then 1 else 0 end, s.last_seen_at_ms, m.address"
    );
    Ok(on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .fetch_all(p)
    .await?))
}
