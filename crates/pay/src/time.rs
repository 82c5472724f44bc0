//! RFC 3339 timestamps as WeChat Pay writes them (`2015-05-20T13:29:35+08:00`).
//!
//! Only the fixed `YYYY-MM-DDTHH:MM:SS` + offset shape appears in the v3 API,
//! so a few lines of calendar arithmetic beat a date-time dependency here.
//! Instants are unix seconds; the caller owns the clock.

/// Seconds in a day.
const DAY_S: i64 = 86_400;
/// China Standard Time, the offset WeChat uses in every example.
pub const BEIJING_OFFSET_S: i64 = 8 * 3600;

/// Days since 1970-01-01 for a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    // Shift the year so it starts in March; leap days then fall at year end.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) for a count of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Unix seconds of a UTC civil date and time (fields are not range-checked).
pub(crate) fn unix_from_utc(year: i64, month: i64, day: i64, h: i64, mi: i64, s: i64) -> i64 {
    days_from_civil(year, month, day) * DAY_S + h * 3600 + mi * 60 + s
}

/// Formats unix seconds as `YYYY-MM-DDTHH:MM:SS+08:00`.
pub fn format_beijing(unix_s: i64) -> String {
    let local = unix_s + BEIJING_OFFSET_S;
    let (y, mo, d) = civil_from_days(local.div_euclid(DAY_S));
    let secs = local.rem_euclid(DAY_S);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}+08:00",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The Beijing calendar date (`YYYY-MM-DD`) of an instant; bills are per Beijing day.
pub fn beijing_date(unix_s: i64) -> String {
    let (y, mo, d) = civil_from_days((unix_s + BEIJING_OFFSET_S).div_euclid(DAY_S));
    format!("{y:04}-{mo:02}-{d:02}")
}

/// Formats an instant as the bill's `YYYY-MM-DD HH:MM:SS` (Beijing time).
pub fn format_beijing_bill(unix_s: i64) -> String {
    let s = format_beijing(unix_s);
    format!("{} {}", &s[..10], &s[11..19])
}

fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses `YYYY-MM-DDTHH:MM:SS` followed by `Z` or `±HH:MM` (optional
/// fractional seconds are dropped) into unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(&s[0..4])?;
    let month = digits(&s[5..7])?;
    let day = digits(&s[8..10])?;
    let hour = digits(&s[11..13])?;
    let minute = digits(&s[14..16])?;
    let second = digits(&s[17..19])?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // Leap seconds (60) are folded into the next second by the arithmetic.
    if second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let end = frac
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(frac.len());
        if end == 0 {
            return None;
        }
        rest = &frac[end..];
    }
    let offset_s = match rest {
        "Z" | "z" => 0,
        _ => {
            let rb = rest.as_bytes();
            if rb.len() != 6 || rb[3] != b':' {
                return None;
            }
            let sign = match rb[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh = digits(&rest[1..3])?;
            let om = digits(&rest[4..6])?;
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    Some(days * DAY_S + hour * 3600 + minute * 60 + second - offset_s)
}

/// Parses a bill date `YYYY-MM-DD`; returns unix seconds of its Beijing midnight.
pub fn parse_bill_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&s[0..4])?;
    let month = digits(&s[5..7])?;
    let day = digits(&s[8..10])?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some(days_from_civil(year, month, day) * DAY_S - BEIJING_OFFSET_S)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_official_example() {
        // 2015-05-20T13:29:35+08:00 is 05:29:35 UTC.
        let t = parse_rfc3339("2015-05-20T13:29:35+08:00").expect("valid");
        assert_eq!(t, 1_432_099_775);
        assert_eq!(format_beijing(t), "2015-05-20T13:29:35+08:00");
        assert_eq!(parse_rfc3339("2015-05-20T05:29:35Z"), Some(t));
        assert_eq!(parse_rfc3339("2015-05-20T05:29:35.123Z"), Some(t));
    }

    #[test]
    fn handles_leap_years_and_day_boundaries() {
        let t = parse_rfc3339("2024-02-29T23:59:59+08:00").expect("valid");
        assert_eq!(format_beijing(t), "2024-02-29T23:59:59+08:00");
        assert_eq!(beijing_date(t + 1), "2024-03-01");
        assert_eq!(format_beijing_bill(t), "2024-02-29 23:59:59");
        assert_eq!(parse_bill_date("2024-03-01"), Some(t + 1));
        assert_eq!(format_beijing(0), "1970-01-01T08:00:00+08:00");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2015-05-20",
            "2015-05-20T13:29:35",
            "2015-13-20T13:29:35+08:00",
            "2015-05-20T13:29:35+0800",
            "2015-05-20T13:29:35.+08:00",
            "2015-05-20T1a:29:35+08:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
