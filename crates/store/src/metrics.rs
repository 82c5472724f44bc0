//! Gauges of `/metrics` that come from the database (issue 16 item 1):
//! meters by building, orders by state, open exceptions, job queues, and
//! the pool. Each is one grouped query on an index (EXPLAIN plans in
//! docs/BENCHMARKS.md); the web side caches the result for a few seconds
//! so a scrape storm cannot load the database.

use crate::{Db, Result, on_db};

/// Meters of one building.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildingMeters {
    /// Area (Chinese name).
    pub area: String,
    /// Building (Chinese name, unique in its area).
    pub building: String,
    /// Meters in the registry.
    pub total: i64,
    /// Meters the head-end last saw online.
    pub online: i64,
}

/// One job queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    /// Queue name.
    pub queue: String,
    /// Jobs not yet done or dead (due or waiting for a retry).
    pub queued: i64,
    /// Earliest `run_at_ms` among them.
    pub oldest_run_at_ms: i64,
}

/// Every database-derived gauge, read together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gauges {
    /// By building, in seeding order.
    pub meters: Vec<BuildingMeters>,
    /// Orders by state.
    pub orders_by_state: Vec<(String, i64)>,
    /// Order flags (the exceptions queue) not resolved.
    pub exceptions_open: i64,
    /// Job queues with queued jobs.
    pub queues: Vec<QueueDepth>,
}

/// Reads the gauges.
pub async fn gauges(db: &Db) -> Result<Gauges> {
    let meters: Vec<(String, String, i64, i64)> = on_db!(db, |p| sqlx::query_as(
        "select a.name_zh, b.name_zh, count(m.id),
                coalesce(sum(case when s.online then 1 else 0 end), 0)
         from building b join area a on a.id = b.area_id
         left join room r on r.building_id = b.id
         left join meter m on m.room_id = r.id
         left join meter_state s on s.meter_id = m.id
         group by a.id, a.name_zh, b.id, b.name_zh, b.position
         order by a.id, b.position"
    )
    .fetch_all(p)
    .await?);
    let orders_by_state: Vec<(String, i64)> = on_db!(db, |p| sqlx::query_as(
        "select state, count(*) from orders group by state order by state"
    )
    .fetch_all(p)
    .await?);
    let exceptions_open: i64 = on_db!(db, |p| sqlx::query_scalar(
        "select count(*) from order_flag where resolved_at_ms is null"
    )
    .fetch_one(p)
    .await?);
    let queues: Vec<(String, i64, i64)> = on_db!(db, |p| sqlx::query_as(
        "select queue, count(*), min(run_at_ms) from job
         where state = 'queued' group by queue order by queue"
    )
    .fetch_all(p)
    .await?);
    Ok(Gauges {
        meters: meters
            .into_iter()
            .map(|(area, building, total, online)| BuildingMeters {
                area,
                building,
                total,
                online,
            })
            .collect(),
        orders_by_state,
        exceptions_open,
        queues: queues
            .into_iter()
            .map(|(queue, queued, oldest_run_at_ms)| QueueDepth {
                queue,
                queued,
                oldest_run_at_ms,
            })
            .collect(),
    })
}

/// The connection pool now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open (in use or idle).
    pub open: u32,
    /// Open connections idle.
    pub idle: u32,
    /// Most connections the pool opens.
    pub max: u32,
}

/// The pool's counts (no query). sqlx does not count callers waiting for
/// a connection, so there is no wait gauge.
pub fn pool(db: &Db) -> PoolStats {
    on_db!(db, |p| PoolStats {
        open: p.size(),
        idle: u32::try_from(p.num_idle()).unwrap_or(u32::MAX),
        max: p.options().get_max_connections(),
    })
}
