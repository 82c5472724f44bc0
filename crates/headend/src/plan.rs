//! Pure decisions of the head-end, testable without I/O: what to read when
//! (the collection plan), how long to wait for a reply, why a relay is
//! open, what a read-back means for a purchase, and the campus calendar.

use dlt645::value::{Format, MeterDateTime, StatusWord3, Value};
use dlt645::{Di, Frame, wire_time_us};
use jiff::tz::TimeZone;

/// Largest reply delay Td the standard allows (protocol-notes §1.1).
pub const TD_MAX_MS: i64 = 500;
/// `FE` bytes before every request we send.
pub const REQUEST_PREAMBLE: usize = 4;
/// The reply length assumed for a timeout: 4 `FE` plus the longest reply
/// of the reference profile we ask for (a 5-value freeze block, L = 24).
pub const REPLY_BYTES_MAX: usize = 4 + 12 + 24;

/// Frequent plan: what a student's page and the relay logic need.
pub const FREQUENT: [Di; 3] = [Di::REMAINING_ENERGY, Di::STATUS_WORD_3, Di::ACTIVE_POWER];
/// Hourly plan: the register, the line voltage and the purchase count.
pub const HOURLY: [Di; 3] = [Di::COMBINED_ACTIVE_ENERGY, Di::VOLTAGE, Di::PURCHASE_COUNT];

/// What a polling round knows of a meter's overdraft (DI 00900101), from
/// the remaining energy it read. The reference meter runs into overdraft
/// only at remaining 0, and a purchase repays the overdraft before the
/// balance grows (meter-profile.md), so a balance above 0 means none is
/// used and only a meter at 0 is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overdraft {
    /// Remaining was not read this round: nothing is known.
    Unknown,
    /// A balance is left: no overdraft used, without asking.
    Zero,
    /// The balance is used up: read 00900101 in the same round.
    Read,
}

/// [`Overdraft`] for the remaining energy read this round.
pub fn overdraft(remaining_centikwh: Option<i64>) -> Overdraft {
    match remaining_centikwh {
        None => Overdraft::Unknown,
        Some(r) if r > 0 => Overdraft::Zero,
        Some(_) => Overdraft::Read,
    }
}

/// How long to wait for the reply to a request of `request_len` bytes
/// (without preamble) on a bus at `baud`: the request's wire time, the Td
/// ceiling, the longest reply's wire time and the gateway slack.
pub fn timeout_ms(baud: u32, request_len: usize, slack_ms: i64) -> i64 {
    let req = wire_time_us(REQUEST_PREAMBLE + request_len, baud);
    let rep = wire_time_us(REPLY_BYTES_MAX, baud);
    i64::try_from((req + rep).div_ceil(1000)).unwrap_or(i64::MAX / 4) + TD_MAX_MS + slack_ms
}

/// The reason a relay is open, from status word 3 and the remaining energy
/// read in the same round; `None` when it is closed. Safety trips first:
/// they are what staff must act on.
pub fn relay_reason(sw: StatusWord3, remaining_centikwh: Option<i64>) -> Option<&'static str> {
    if !sw.relay_open() {
        return None;
    }
    Some(if sw.locked_out() {
        "lockout"
    } else if sw.malicious_load_trip() {
        "malicious_load"
    } else if sw.over_power_trip() {
        "over_power"
    } else if sw.relay_commanded_open() && remaining_centikwh.is_some_and(|r| r > 0) {
        // Commanded open with a balance left: a staff trip. With no balance
        // the meter opened it itself.
        "staff"
    } else {
        "balance"
    })
}

/// The integer value of a read reply for a numeric DI.
pub fn number(frame: &Frame) -> Option<i64> {
    match Format::of(frame.di()?)?.decode(frame.payload()).ok()? {
        Value::Number { raw, .. } => Some(raw),
        _ => None,
    }
}

/// The decoded value of a read reply.
pub fn value(frame: &Frame) -> Option<Value> {
    Format::of(frame.di()?)?.decode(frame.payload()).ok()
}

/// The campus day number of `ms` and the milliseconds since that day began.
pub fn campus_day(ms: i64, tz: &TimeZone) -> (i64, i64) {
    let date = domain::time::local_date(ms, tz);
    (
        domain::time::day_number(date),
        ms - domain::time::day_start_ms(date, tz),
    )
}

/// The campus day number of a meter's civil date.
pub fn meter_day(t: MeterDateTime) -> Option<i64> {
    let d = jiff::civil::Date::new(
        i16::try_from(t.year()).ok()?,
        i8::try_from(t.month()).ok()?,
        i8::try_from(t.day()).ok()?,
    )
    .ok()?;
    Some(domain::time::day_number(d))
}

/// The campus civil time of `ms`, as a meter shows it.
pub fn meter_time(ms: i64, tz: &TimeZone) -> Option<MeterDateTime> {
    let z = jiff::Timestamp::from_millisecond(ms)
        .ok()?
        .to_zoned_datetime(tz.clone());
    let n = |v: i8| u8::try_from(v).ok();
    MeterDateTime::new(
        u16::try_from(z.year()).ok()?,
        n(z.month())?,
        n(z.day())?,
        n(z.hour())?,
        n(z.minute())?,
        n(z.second())?,
    )
    .ok()
}

/// Meter time-of-day minus true time-of-day, in ms, folded into ±12 h (the
/// daily check runs a few minutes after midnight, where a lagging meter
/// still shows yesterday's 23:5x).
pub fn clock_error_ms(meter_hms: (u8, u8, u8), true_ms_of_day: i64) -> i64 {
    const DAY: i64 = 86_400_000;
    let (h, m, s) = meter_hms;
    let meter = (i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(s)) * 1000;
    (meter - true_ms_of_day + DAY / 2).rem_euclid(DAY) - DAY / 2
}

/// What to do next with a purchase, given the meter's purchase count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The meter holds this purchase (count == seq): complete the order.
    Delivered,
    /// The meter is one short (count == seq − 1): send the identical frame.
    Send,
    /// Anything else: alarm for staff, never guess.
    Gap,
}

/// reliability.md §2.5: the meter's purchase count decides.
pub fn decide(seq: i64, meter_count: i64) -> Step {
    if meter_count == seq {
        Step::Delivered
    } else if meter_count == seq - 1 {
        Step::Send
    } else {
        Step::Gap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_covers_wire_td_and_slack() {
        // 20-byte read at 2400: 91.7 ms; 40-byte reply 183.4 ms; + 500 + 100.
        assert_eq!(timeout_ms(2400, 16, 100), 276 + 500 + 100);
        assert!(timeout_ms(9600, 16, 0) < timeout_ms(2400, 16, 0));
    }

    #[test]
    fn relay_reasons() {
        let open = StatusWord3(StatusWord3::KWH_PREPAID).with(StatusWord3::RELAY_OPEN, true);
        assert_eq!(
            relay_reason(StatusWord3(StatusWord3::KWH_PREPAID), Some(0)),
            None
        );
        let mal = open.with(StatusWord3::MALICIOUS_LOAD_TRIP, true);
        assert_eq!(relay_reason(mal, Some(500)), Some("malicious_load"));
        assert_eq!(
            relay_reason(mal.with(StatusWord3::LOCKED_OUT, true), Some(500)),
            Some("lockout")
        );
        let cmd = open.with(StatusWord3::RELAY_COMMANDED_OPEN, true);
        assert_eq!(relay_reason(cmd, Some(0)), Some("balance"));
        assert_eq!(relay_reason(cmd, Some(10)), Some("staff"));
        assert_eq!(
            relay_reason(open.with(StatusWord3::OVER_POWER_TRIP, true), None),
            Some("over_power")
        );
    }

    #[test]
    fn overdraft_is_read_only_at_zero() {
        assert_eq!(overdraft(None), Overdraft::Unknown);
        assert_eq!(overdraft(Some(1)), Overdraft::Zero);
        assert_eq!(overdraft(Some(0)), Overdraft::Read);
    }

    #[test]
    fn read_back_decides() {
        assert_eq!(decide(8, 8), Step::Delivered);
        assert_eq!(decide(8, 7), Step::Send);
        assert_eq!(decide(8, 9), Step::Gap);
        assert_eq!(decide(8, 5), Step::Gap);
    }

    #[test]
    fn clock_error_folds_midnight() {
        // Meter shows 23:58:00, truth is 00:02:00: 4 minutes behind.
        assert_eq!(clock_error_ms((23, 58, 0), 2 * 60_000), -4 * 60_000);
        assert_eq!(clock_error_ms((0, 2, 30), 2 * 60_000), 30_000);
    }

    #[test]
    fn campus_calendar() {
        let tz = domain::time::CampusTz::default().tz().clone();
        // 2026-11-25T16:00:00Z is 00:00 on the 26th in Shanghai.
        let ms = 1_795_622_400_000;
        let (day, tod) = campus_day(ms + 61_000, &tz);
        assert_eq!(tod, 61_000);
        let t = meter_time(ms + 61_000, &tz).unwrap();
        assert_eq!((t.day(), t.hour(), t.minute(), t.second()), (26, 0, 1, 1));
        assert_eq!(meter_day(t), Some(day));
    }
}
