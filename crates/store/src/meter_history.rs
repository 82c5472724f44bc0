//! A meter's history as its console page shows it (issue 14 item 4): the
//! newest events, the newest readings, and the students bound to it. Each
//! a single bounded statement.

use crate::{Db, Result, on_db};
use serde::Serialize;

/// Most rows any of these returns.
pub const ROWS_MAX: i64 = 200;

/// A meter's newest events, newest first, at most `limit` (≤ [`ROWS_MAX`]).
pub async fn recent_events(
    db: &Db,
    meter_id: i64,
    limit: i64,
) -> Result<Vec<crate::meters::MeterEvent>> {
    Ok(on_db!(db, |p| sqlx::query_as(
        "select meter_id, at_ms, kind, detail from meter_event where meter_id = $1
         order by at_ms desc, id desc limit $2"
    )
    .bind(meter_id)
    .bind(limit.clamp(1, ROWS_MAX))
    .fetch_all(p)
    .await?))
}

/// One stored reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Reading {
    /// `remaining` (0.01 kWh), `total` (0.01 kWh), `voltage` (0.1 V) or
    /// `power` (W).
    pub quantity: String,
    /// When read.
    pub at_ms: i64,
    /// The value in the quantity's unit.
    pub value: i64,
}

/// A meter's newest readings, newest first, at most `limit` (≤ [`ROWS_MAX`]).
pub async fn recent_readings(db: &Db, meter_id: i64, limit: i64) -> Result<Vec<Reading>> {
    Ok(on_db!(db, |p| sqlx::query_as(
        "select quantity, at_ms, value from reading where meter_id = $1
         order by at_ms desc, quantity limit $2"
    )
    .bind(meter_id)
    .bind(limit.clamp(1, ROWS_MAX))
    .fetch_all(p)
    .await?))
}

/// A student bound to a meter (the console masks openid and phone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Binder {
    /// Binding row id.
    pub binding_id: i64,
    /// The student's WeChat openid.
    pub openid: String,
    /// The student's name as they typed it.
    pub name: String,
    /// The student's phone as they typed it.
    pub phone: String,
    /// Their default meter.
    pub is_default: bool,
    /// Bound since.
    pub created_at_ms: i64,
}

/// The students bound to meter `meter_id`, oldest binding first, at most
/// [`ROWS_MAX`].
pub async fn binders(db: &Db, meter_id: i64) -> Result<Vec<Binder>> {
    Ok(on_db!(db, |p| sqlx::query_as(
        "select b.id as binding_id, s.openid, s.name, s.phone, b.is_default, b.created_at_ms
         from binding b join student s on s.id = b.student_id
         where b.meter_id = $1 order by b.id limit $2"
    )
    .bind(meter_id)
    .bind(ROWS_MAX)
    .fetch_all(p)
    .await?))
}
