//! Rows are decoded into domain types once, here at the store boundary: a
//! typed row (`orders::Order`, …) is read through a private raw twin with
//! the column types, and a stored value that is not a valid domain value
//! becomes [`crate::Error::Corrupt`] instead of reaching a caller as a
//! string to compare, or a panic.

use std::fmt::Display;

/// A stored value that is not a valid domain value (a bug or tampering).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BadValue(pub(crate) String);

/// `parsed`, or a [`BadValue`] naming the column and the stored value.
pub(crate) fn decoded<T>(
    column: &str,
    stored: impl Display,
    parsed: Option<T>,
) -> Result<T, BadValue> {
    parsed.ok_or_else(|| BadValue(format!("{column} = {stored}")))
}

/// Implements `sqlx::FromRow` for a typed row through its raw twin and a
/// `TryFrom<raw, Error = BadValue>`, so every `query_as` of the typed row
/// decodes it (on both backends).
macro_rules! decode_row {
    ($typed:ty, $raw:ty) => {
        impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for $typed
        where
            $raw: sqlx::FromRow<'r, R>,
        {
            fn from_row(row: &'r R) -> std::result::Result<Self, sqlx::Error> {
                let raw = <$raw as sqlx::FromRow<'r, R>>::from_row(row)?;
                <$typed>::try_from(raw).map_err(|e| sqlx::Error::Decode(Box::new(e)))
            }
        }
    };
}
pub(crate) use decode_row;

impl From<BadValue> for crate::Error {
    fn from(bad: BadValue) -> Self {
        crate::Error::Corrupt(bad.0)
    }
}

/// The time zone stored in `column`, resolved once here.
pub(crate) fn campus_tz(column: &str, stored: &str) -> Result<domain::time::CampusTz, BadValue> {
    decoded(column, stored, domain::time::CampusTz::parse(stored).ok())
}

/// A meter's effective tariff (its own, else its area's) as read for meter
/// `meter_id`; 0 or a negative price is corrupt.
pub(crate) fn meter_price(
    meter_id: i64,
    centifen_per_kwh: i64,
) -> Result<domain::money::UnitPrice, BadValue> {
    decoded(
        &format!("meter.unit_price_centifen_per_kwh (or its area's) of meter {meter_id}"),
        centifen_per_kwh,
        domain::money::UnitPrice::from_centifen_per_kwh(centifen_per_kwh),
    )
}

/// A meter's nameplate number as stored for meter `meter_id`.
pub(crate) fn meter_address(meter_id: i64, stored: &str) -> Result<domain::MeterAddress, BadValue> {
    decoded(
        &format!("meter.address of meter {meter_id}"),
        stored,
        domain::MeterAddress::parse(stored).ok(),
    )
}
