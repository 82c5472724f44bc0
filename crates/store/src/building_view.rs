//! The live building view of the staff console (issue 14 item 4): every
//! room of a building with its meter's state, in **one** query per
//! building whatever its size (the per-room figures — malicious-load trips
//! today, the open relay command — are correlated subqueries on indexed
//! columns, not a query per room), and a summary of every building in one
//! grouped query.
//!
//! The filters (offline, power off, low balance, overdraft, malicious-load
//! trips today, not read today) are methods of [`Cell`], decided on the
//! typed row, so the page, its JSON and the tests agree.

use crate::{Db, Result, on_db};
use serde::Serialize;

/// Most rooms one building view returns (the largest reference building
/// has 470 meters).
pub const CELLS_MAX: i64 = 2000;

/// One room (and its current meter) of a building view. A room without a
/// live meter has `meter_id == None` and no state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Cell {
    /// Room row id.
    pub room_id: i64,
    /// Room number as written on the door.
    pub room: String,
    /// Floor.
    pub floor: i64,
    /// The room's meter (not retired).
    pub meter_id: Option<i64>,
    /// Its 12-digit address.
    pub address: Option<String>,
    /// Answering polls.
    pub online: Option<bool>,
    /// Last answer.
    pub last_seen_at_ms: Option<i64>,
    /// Relay closed (power on); `None` never read.
    pub relay_closed: Option<bool>,
    /// Why it is open (balance, malicious_load, over_power, staff, lockout).
    pub relay_reason: Option<String>,
    /// Keep-power (保电) on.
    pub keep_power: Option<bool>,
    /// Present active power, W.
    pub power_w: Option<i64>,
    /// Remaining energy as last read, 0.01 kWh.
    pub remaining_centikwh: Option<i64>,
    /// When it was read.
    pub remaining_at_ms: Option<i64>,
    /// Overdraft used, 0.01 kWh.
    pub overdraft_centikwh: Option<i64>,
    /// The meter's low-balance threshold, 0.01 kWh.
    pub low_balance_centikwh: Option<i64>,
    /// Malicious-load trips since the start of the campus day.
    pub malicious_trips_today: i64,
    /// The newest open (queued or sending) relay command's action.
    pub open_command: Option<String>,
    /// Its state.
    pub open_command_state: Option<String>,
}

/// A filter of the building view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// Not answering.
    Offline,
    /// Relay open.
    PowerOff,
    /// Remaining energy at or below the meter's threshold (and above zero).
    LowBalance,
    /// Into overdraft (overdraft used, or nothing remaining).
    Overdraft,
    /// At least one malicious-load trip today.
    MaliciousToday,
    /// No answer since the start of the campus day.
    NotReadToday,
}

impl Filter {
    /// Every filter.
    pub const ALL: [Filter; 6] = [
        Self::Offline,
        Self::PowerOff,
        Self::LowBalance,
        Self::Overdraft,
        Self::MaliciousToday,
        Self::NotReadToday,
    ];

    /// The name in URLs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::PowerOff => "power_off",
            Self::LowBalance => "low_balance",
            Self::Overdraft => "overdraft",
            Self::MaliciousToday => "malicious_today",
            Self::NotReadToday => "not_read_today",
        }
    }

    /// The filter of a URL name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

impl Cell {
    /// Whether this room passes filter `f` (`day_start_ms`: the start of
    /// the campus day the view was taken in). A room without a meter
    /// passes none.
    pub fn passes(&self, f: Filter, day_start_ms: i64) -> bool {
        if self.meter_id.is_none() {
            return false;
        }
        match f {
            Filter::Offline => self.online != Some(true),
            Filter::PowerOff => self.relay_closed == Some(false),
            Filter::LowBalance => match (self.remaining_centikwh, self.low_balance_centikwh) {
                (Some(r), Some(t)) => r > 0 && r <= t,
                _ => false,
            },
            Filter::Overdraft => {
                self.overdraft_centikwh.is_some_and(|o| o > 0)
                    || self.remaining_centikwh.is_some_and(|r| r <= 0)
            }
            Filter::MaliciousToday => self.malicious_trips_today > 0,
            Filter::NotReadToday => self.last_seen_at_ms.is_none_or(|t| t < day_start_ms),
        }
    }
}

/// The rooms of building `building_id` with their meters' state, by floor
/// and room number (natural order is the caller's), at most
/// [`CELLS_MAX`]. One statement.
pub async fn cells(db: &Db, building_id: i64, day_start_ms: i64) -> Result<Vec<Cell>> {
    Ok(on_db!(db, |p| sqlx::query_as(
        "select r.id as room_id, r.number as room, r.floor, m.id as meter_id, m.address,
                ms.online, ms.last_seen_at_ms, ms.relay_closed, ms.relay_reason, ms.keep_power,
                ms.power_w, ms.remaining_centikwh, ms.remaining_at_ms, ms.overdraft_centikwh,
                m.low_balance_centikwh,
                (select count(*) from meter_event e
                  where e.meter_id = m.id and e.at_ms >= $2 and e.kind = 'trip'
                    and e.detail like 'malicious_load%') as malicious_trips_today,
                (select rc.command from relay_command rc
                  where rc.meter_id = m.id and rc.state in ('queued', 'sending')
                  order by rc.id desc limit 1) as open_command,
                (select rc.state from relay_command rc
                  where rc.meter_id = m.id and rc.state in ('queued', 'sending')
                  order by rc.id desc limit 1) as open_command_state
         from room r
         left join meter m on m.room_id = r.id and m.retired_at_ms is null
         left join meter_state ms on ms.meter_id = m.id
         where r.building_id = $1
         order by r.floor, r.number, m.id
         limit $3"
    )
    .bind(building_id)
    .bind(day_start_ms)
    .bind(CELLS_MAX)
    .fetch_all(p)
    .await?))
}

/// A building as the view's index lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Summary {
    /// Building row id.
    pub building_id: i64,
    /// Area row id.
    pub area_id: i64,
    /// Name (zh).
    pub name_zh: String,
    /// Name (en).
    pub name_en: String,
    /// Live meters.
    pub meters: i64,
    /// Of which not answering.
    pub offline: i64,
    /// Of which with the relay open.
    pub power_off: i64,
}

/// Every building with its meter counts, in one grouped statement (the
/// console filters by scope).
pub async fn summaries(db: &Db) -> Result<Vec<Summary>> {
    Ok(on_db!(db, |p| sqlx::query_as(
        "select b.id as building_id, b.area_id, b.name_zh, b.name_en,
                count(m.id) as meters,
                coalesce(sum(case when m.id is not null and (ms.online is null or not ms.online)
                                  then 1 else 0 end), 0) as offline,
                coalesce(sum(case when ms.relay_closed = false then 1 else 0 end), 0) as power_off
         from building b
         left join room r on r.building_id = b.id
         left join meter m on m.room_id = r.id and m.retired_at_ms is null
         left join meter_state ms on ms.meter_id = m.id
         group by b.id, b.area_id, b.name_zh, b.name_en
         order by b.area_id, b.position, b.id"
    )
    .fetch_all(p)
    .await?))
}
