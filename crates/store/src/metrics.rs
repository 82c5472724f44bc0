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
    /// Earliest `run_at_ms` among them (`None`: the queue is empty).
    pub oldest_run_at_ms: Option<i64>,
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
    /// Every job queue, known ones (`deliver`) even when empty.
    pub queues: Vec<QueueDepth>,
    /// How long the read waited for a pool connection, µs (sqlx counts no
    /// waiters; this is the wait a caller sees).
    pub acquire_wait_us: i64,
}

/// Meters by building (total, online): the registry's indexes on
/// `room.building_id`, `meter.room_id` and `meter_state`'s primary key.
const METERS_SQL: &str = "select a.name_zh, b.name_zh, count(m.id),
        coalesce(sum(case when s.online then 1 else 0 end), 0)
 from building b join area a on a.id = b.area_id
 left join room r on r.building_id = b.id
 left join meter m on m.room_id = r.id
 left join meter_state s on s.meter_id = m.id
 group by a.id, a.name_zh, b.id, b.name_zh, b.position
 order by a.id, b.position";
const ORDERS_SQL: &str = "select state, count(*) from orders group by state order by state";
const EXCEPTIONS_SQL: &str = "select count(*) from order_flag where resolved_at_ms is null";
const QUEUES_SQL: &str = "select queue, count(*), min(run_at_ms) from job
 where state = 'queued' group by queue order by queue";

/// Queues shown even when empty, so their series exist from the start.
const KNOWN_QUEUES: [&str; 1] = [crate::orders::DELIVER_QUEUE];

/// The gauge queries, for `EXPLAIN` (docs/BENCHMARKS.md) and the tests.
pub const GAUGE_QUERIES: [&str; 4] = [METERS_SQL, ORDERS_SQL, EXCEPTIONS_SQL, QUEUES_SQL];

/// Reads the gauges on one pooled connection, and how long getting that
/// connection took (the pool's wait, as a scrape sees it).
pub async fn gauges(db: &Db) -> Result<Gauges> {
    let started = std::time::Instant::now();
    on_db!(db, |p| {
        let mut c = p.acquire().await?;
        let acquire_wait_us = i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX);
        let meters: Vec<(String, String, i64, i64)> =
            sqlx::query_as(METERS_SQL).fetch_all(&mut *c).await?;
        let orders_by_state: Vec<(String, i64)> =
            sqlx::query_as(ORDERS_SQL).fetch_all(&mut *c).await?;
        let exceptions_open: i64 = sqlx::query_scalar(EXCEPTIONS_SQL)
            .fetch_one(&mut *c)
            .await?;
        let mut queues: Vec<(String, i64, Option<i64>)> =
            sqlx::query_as(QUEUES_SQL).fetch_all(&mut *c).await?;
        for known in KNOWN_QUEUES {
            if !queues.iter().any(|q| q.0 == known) {
                queues.push((known.to_owned(), 0, None));
            }
        }
        queues.sort();
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
            acquire_wait_us,
        })
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
/// a connection; [`Gauges::acquire_wait_us`] is the wait one caller saw.
pub fn pool(db: &Db) -> PoolStats {
    on_db!(db, |p| PoolStats {
        open: p.size(),
        idle: u32::try_from(p.num_idle()).unwrap_or(u32::MAX),
        max: p.options().get_max_connections(),
    })
}
