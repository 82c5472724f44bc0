//! Campus-local calendar days. Instants are unix milliseconds; a day of
//! usage or a bill month is always computed in the campus time zone
//! (Asia/Shanghai by default), never in UTC.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// The default campus time zone.
pub const DEFAULT_TZ: &str = "Asia/Shanghai";

/// Loads a time zone by IANA name, falling back to the fixed UTC+8 offset
/// of China (no DST since 1991) when the system has no tz database.
pub fn campus_tz(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap_or_else(|_| TimeZone::fixed(jiff::tz::offset(8)))
}

/// The campus-local date of an instant.
pub fn local_date(ms: i64, tz: &TimeZone) -> Date {
    Timestamp::from_millisecond(ms)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned_datetime(tz.clone())
        .date()
}

/// The instant (unix ms) a campus-local date starts.
pub fn day_start_ms(date: Date, tz: &TimeZone) -> i64 {
    date.to_datetime(jiff::civil::Time::midnight())
        .to_zoned_datetime(tz.clone())
        .map(|z| z.timestamp().as_millisecond())
        .unwrap_or(0)
}

/// The date as a day number (days since 1970-01-01), the compact key the
/// store uses for daily usage.
pub fn day_number(date: Date) -> i64 {
    i64::from((date - Date::constant(1970, 1, 1)).get_days())
}

/// The inverse of [`day_number`].
pub fn date_of_day_number(day: i64) -> Date {
    Date::constant(1970, 1, 1)
        .checked_add(day.days())
        .unwrap_or(Date::constant(1970, 1, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shanghai_day_boundary_is_16_utc() {
        let tz = campus_tz(DEFAULT_TZ);
        // 2026-11-25T15:59:59Z is 23:59:59 local on the 25th; one second later it is the 26th.
        let ms = 1_795_622_399_000;
        assert_eq!(local_date(ms, &tz), Date::constant(2026, 11, 25));
        assert_eq!(local_date(ms + 1000, &tz), Date::constant(2026, 11, 26));
        assert_eq!(day_start_ms(Date::constant(2026, 11, 26), &tz), ms + 1000);
        let d = Date::constant(2026, 11, 26);
        assert_eq!(date_of_day_number(day_number(d)), d);
    }
}
