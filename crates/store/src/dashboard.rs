//! The console's landing figures (issue 13 item 9), limited to an
//! operator's scope: today's sales by channel, orders paid but not yet
//! delivered (count and the oldest), exceptions, meters offline, and how
//! many meters were read today.
//!
//! - "Today" is the caller's campus-local day, `[day_start_ms, day_end_ms)`.
//! - Sales are orders paid today (refunded ones included: they were sold),
//!   by channel; a counter sale made in a shift is split by its tender
//!   (`counter:cash`, `counter:card`, from `shift_sale`), one made through
//!   the API without a shift stays `counter`.
//! - Exceptions are the orders the exceptions queue lists: those with an
//!   unresolved `order_flag` (`store::exceptions`).
//! - Read success is the share of meters whose last answer is from today.

use crate::{Db, Result, on_db};
use domain::staff::{Role, Scope};

/// Where the figures are counted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Within {
    /// Area row ids; `None`: every area.
    pub areas: Option<Vec<i64>>,
    /// Building row ids; `None`: every building of the areas.
    pub buildings: Option<Vec<i64>>,
}

impl Within {
    /// An operator's scope: a building manager's buildings, others' areas.
    pub fn of(role: Role, scope: &Scope) -> Self {
        Within {
            areas: scope
                .areas
                .as_ref()
                .map(|v| v.iter().map(|a| a.get()).collect()),
            buildings: (role == Role::BuildingManager)
                .then(|| scope.buildings.iter().map(|b| b.get()).collect()),
        }
    }

    /// The `and …` clause on `m` (meter) and `r` (room). The ids are
    /// integers from the store, formatted as literals (no text enters).
    pub(crate) fn clause(&self) -> String {
        fn list(v: &[i64]) -> String {
            if v.is_empty() {
                // Nothing in scope: match nothing.
                return "null".to_owned();
            }
            v.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
        }
        let mut s = String::new();
        if let Some(a) = &self.areas {
            s.push_str(&format!(" and m.area_id in ({})", list(a)));
        }
        if let Some(b) = &self.buildings {
            s.push_str(&format!(" and r.building_id in ({})", list(b)));
        }
        s
    }
}

/// Sales of one channel today.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ChannelSales {
    /// `wechat`, `counter:cash`, `counter:card`, `counter` (no shift).
    pub channel: String,
    /// Orders.
    pub orders: i64,
    /// Whole kWh.
    pub kwh: i64,
    /// Amount, fen.
    pub amount_fen: i64,
}

/// The landing figures.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Figures {
    /// Today's sales, by channel.
    pub sales: Vec<ChannelSales>,
    /// Orders paid and not delivered yet (`charging`).
    pub undelivered: i64,
    /// When the oldest of them was paid.
    pub undelivered_oldest_paid_ms: Option<i64>,
    /// Orders that need a person (an unresolved flag).
    pub exceptions: i64,
    /// Meters in scope.
    pub meters: i64,
    /// Meters the head-end does not reach now (or never reached).
    pub offline: i64,
    /// Meters that answered today.
    pub read_today: i64,
}

/// The figures within `w` for the day `[day_start_ms, day_end_ms)`.
pub async fn figures(db: &Db, w: &Within, day_start_ms: i64, day_end_ms: i64) -> Result<Figures> {
    let scope = w.clause();
    let from_orders = format!(
        "from orders o join meter m on m.id = o.meter_id join room r on r.id = m.room_id where true{scope}"
    );
    let sales_sql = format!(
        "select coalesce(o.channel || ':' || ss.tender, o.channel) as channel, count(*) as orders,
                cast(coalesce(sum(o.kwh), 0) as bigint) as kwh,
                cast(coalesce(sum(o.amount_fen), 0) as bigint) as amount_fen
         from orders o join meter m on m.id = o.meter_id join room r on r.id = m.room_id
         left join shift_sale ss on ss.order_id = o.id
         where o.paid_at_ms >= $1 and o.paid_at_ms < $2{scope}
         group by 1 order by 1"
    );
    let sales: Vec<ChannelSales> = on_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(
        sales_sql.clone()
    ))
    .bind(day_start_ms)
    .bind(day_end_ms)
    .fetch_all(p)
    .await?);
    let undelivered_sql =
        format!("select count(*), min(o.paid_at_ms) {from_orders} and o.state = 'charging'");
    let (undelivered, oldest): (i64, Option<i64>) = on_db!(db, |p| sqlx::query_as(
        sqlx::AssertSqlSafe(undelivered_sql.clone())
    )
    .fetch_one(p)
    .await?);
    let exceptions_sql = format!(
        "select count(*) {from_orders} and exists (select 1 from order_flag f
         where f.order_id = o.id and f.resolved_at_ms is null)"
    );
    let exceptions: i64 = on_db!(db, |p| sqlx::query_scalar(sqlx::AssertSqlSafe(
        exceptions_sql.clone()
    ))
    .fetch_one(p)
    .await?);
    let meters_sql = format!(
        "select count(*),
                cast(coalesce(sum(case when s.online then 0 else 1 end), 0) as bigint),
                cast(coalesce(sum(case when s.last_seen_at_ms >= $1 and s.last_seen_at_ms < $2 then 1 else 0 end), 0) as bigint)
         from meter m join room r on r.id = m.room_id
         left join meter_state s on s.meter_id = m.id where true{scope}"
    );
    let (meters, offline, read_today): (i64, i64, i64) = on_db!(db, |p| sqlx::query_as(
        sqlx::AssertSqlSafe(meters_sql.clone())
    )
    .bind(day_start_ms)
    .bind(day_end_ms)
    .fetch_one(p)
    .await?);
    Ok(Figures {
        sales,
        undelivered,
        undelivered_oldest_paid_ms: oldest,
        exceptions,
        meters,
        offline,
        read_today,
    })
}
