//! Campus-local calendar days. Instants are unix milliseconds; a day of
//! usage or a bill month is always computed in the campus time zone
//! (Asia/Shanghai by default), never in UTC.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The default campus time zone.
pub const DEFAULT_TZ: &str = "Asia/Shanghai";

/// An IANA time zone name that the bundled tz database does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a known IANA time zone")]
pub struct UnknownTimeZone(pub String);

/// The campus time zone: an IANA name resolved once (at configuration load
/// or row decode) against the tz database compiled into the binary (jiff's
/// `tzdb-bundle-always`; the host's zoneinfo is never read, so a campus
/// day does not depend on the machine's tzdata package). Cheap to clone.
#[derive(Clone)]
pub struct CampusTz {
    name: String,
    tz: TimeZone,
}

impl CampusTz {
    /// Resolves `name` (e.g. `Asia/Shanghai`); an unknown name is an error,
    /// never a fallback offset.
    pub fn parse(name: &str) -> Result<Self, UnknownTimeZone> {
        let tz = jiff::tz::TimeZoneDatabase::bundled()
            .get(name)
            .map_err(|_| UnknownTimeZone(name.to_owned()))?;
        Ok(Self {
            name: name.to_owned(),
            tz,
        })
    }

    /// The IANA name as configured or stored.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The resolved zone, for calendar arithmetic.
    pub fn tz(&self) -> &TimeZone {
        &self.tz
    }
}

impl Default for CampusTz {
    /// [`DEFAULT_TZ`], which the bundled database always holds (a test pins it).
    #[expect(
        clippy::expect_used,
        reason = "the zone is compiled into the binary (tzdb-bundle-always); a test pins it"
    )]
    fn default() -> Self {
        Self::parse(DEFAULT_TZ).expect("Asia/Shanghai is in the bundled tz database")
    }
}

impl PartialEq for CampusTz {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for CampusTz {}

impl fmt::Debug for CampusTz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CampusTz").field(&self.name).finish()
    }
}

impl fmt::Display for CampusTz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl std::str::FromStr for CampusTz {
    type Err = UnknownTimeZone;

    fn from_str(s: &str) -> Result<Self, UnknownTimeZone> {
        Self::parse(s)
    }
}

impl Serialize for CampusTz {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

impl<'de> Deserialize<'de> for CampusTz {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Self::parse(&name).map_err(serde::de::Error::custom)
    }
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
    fn the_tz_database_is_the_bundled_one_never_the_systems() {
        // Whatever /usr/share/zoneinfo (or TZDIR) holds on this machine, the
        // database jiff consults is the copy compiled into the binary.
        assert_eq!(
            format!("{:?}", jiff::tz::db()),
            "TimeZoneDatabase(Bundled(available))"
        );
        assert!(jiff::tz::db().get(DEFAULT_TZ).is_ok());
        assert_eq!(CampusTz::default().name(), "Asia/Shanghai");
    }

    #[test]
    fn an_unknown_zone_is_an_error_not_a_fallback() {
        assert_eq!(
            CampusTz::parse("Mars/Olympus_Mons").err(),
            Some(UnknownTimeZone("Mars/Olympus_Mons".to_owned()))
        );
        let utc = CampusTz::parse("UTC").expect("UTC");
        assert_eq!(local_date(0, utc.tz()), Date::constant(1970, 1, 1));
        assert_eq!(
            serde_json::from_str::<CampusTz>("\"Asia/Shanghai\"").ok(),
            Some(CampusTz::default())
        );
    }

    #[test]
    fn shanghai_day_boundary_is_16_utc() {
        let tz = CampusTz::default();
        let tz = tz.tz();
        // 2026-11-25T15:59:59Z is 23:59:59 local on the 25th; one second later it is the 26th.
        let ms = 1_795_622_399_000;
        assert_eq!(local_date(ms, tz), Date::constant(2026, 11, 25));
        assert_eq!(local_date(ms + 1000, tz), Date::constant(2026, 11, 26));
        assert_eq!(day_start_ms(Date::constant(2026, 11, 26), tz), ms + 1000);
        let d = Date::constant(2026, 11, 26);
        assert_eq!(date_of_day_number(day_number(d)), d);
    }
}
