//! Typed codecs for data-field values: BCD numbers with sign bit, dates and
//! times, status word 3, passwords and operator codes, relay commands and
//! the recharge payload.
//!
//! Everything here works on **plain** bytes (the +33H offset is the frame
//! layer's business) in wire order, low byte first.

use std::fmt;

use crate::{Address, Di, FrameError};

fn out_of_range(what: impl Into<String>) -> FrameError {
    FrameError::OutOfRange(what.into())
}

fn expect_len(bytes: &[u8], expected: usize) -> Result<(), FrameError> {
    if bytes.len() == expected {
        Ok(())
    } else {
        Err(FrameError::Length {
            expected,
            got: bytes.len(),
        })
    }
}

/// Packs `value` into `bytes` bytes of BCD, low byte first.
pub fn encode_bcd(value: u64, bytes: usize) -> Result<Vec<u8>, FrameError> {
    let mut rest = value;
    let mut out = Vec::with_capacity(bytes);
    for _ in 0..bytes {
        let low = (rest % 10) as u8;
        let high = ((rest / 10) % 10) as u8;
        out.push((high << 4) | low);
        rest /= 100;
    }
    if rest != 0 {
        return Err(out_of_range(format!(
            "{value} does not fit {bytes} BCD bytes"
        )));
    }
    Ok(out)
}

/// Reads packed BCD, low byte first.
pub fn decode_bcd(bytes: &[u8]) -> Result<u64, FrameError> {
    if bytes.len() > 9 {
        // 19 digits is the most a u64 always holds.
        return Err(FrameError::Length {
            expected: 9,
            got: bytes.len(),
        });
    }
    let mut value = 0u64;
    for &b in bytes.iter().rev() {
        let (high, low) = (b >> 4, b & 0x0F);
        if high > 9 || low > 9 {
            return Err(FrameError::NotBcd(bytes.to_vec()));
        }
        value = value * 100 + u64::from(high) * 10 + u64::from(low);
    }
    Ok(value)
}

/// Converts one BCD byte (e.g. a month `0x09`) to its value.
fn bcd_byte(b: u8) -> Result<u8, FrameError> {
    decode_bcd(&[b]).map(|v| v as u8)
}

/// Converts a value 0..=99 to one BCD byte.
fn to_bcd_byte(v: u8) -> u8 {
    ((v / 10) << 4) | (v % 10)
}

/// A BCD number format: `bytes` bytes, `decimals` implied decimal places,
/// optionally with a sign in bit 7 of the most significant byte.
///
/// Values are integers in units of the last digit: [`Bcd::ENERGY`] holds
/// hundredths of a kWh, [`Bcd::VOLTAGE`] tenths of a volt, [`Bcd::CURRENT`]
/// milliamps, [`Bcd::POWER`] ten-thousandths of a kW (0.1 W),
/// [`Bcd::POWER_FACTOR`] thousandths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bcd {
    /// Bytes on the wire.
    pub bytes: u8,
    /// Implied decimal places.
    pub decimals: u8,
    /// Whether bit 7 of the top byte is a sign (1 = negative).
    pub signed: bool,
    /// Unit for display ("" for pure numbers).
    pub unit: &'static str,
}

impl Bcd {
    /// XXXXXX.XX kWh, unsigned (forward energy, remaining, thresholds).
    pub const ENERGY: Bcd = Bcd {
        bytes: 4,
        decimals: 2,
        signed: false,
        unit: "kWh",
    };
    /// XXXXXX.XX kWh with sign bit (combined active energy).
    pub const SIGNED_ENERGY: Bcd = Bcd {
        bytes: 4,
        decimals: 2,
        signed: true,
        unit: "kWh",
    };
    /// XXXXXX.XX yuan.
    pub const MONEY: Bcd = Bcd {
        bytes: 4,
        decimals: 2,
        signed: false,
        unit: "yuan",
    };
    /// XXX.X V.
    pub const VOLTAGE: Bcd = Bcd {
        bytes: 2,
        decimals: 1,
        signed: false,
        unit: "V",
    };
    /// XXX.XXX A with sign bit.
    pub const CURRENT: Bcd = Bcd {
        bytes: 3,
        decimals: 3,
        signed: true,
        unit: "A",
    };
    /// XX.XXXX kW with sign bit.
    pub const POWER: Bcd = Bcd {
        bytes: 3,
        decimals: 4,
        signed: true,
        unit: "kW",
    };
    /// XX.XXXX kW, unsigned (the vendor power limit).
    pub const POWER_LIMIT: Bcd = Bcd {
        bytes: 3,
        decimals: 4,
        signed: false,
        unit: "kW",
    };
    /// X.XXX with sign bit.
    pub const POWER_FACTOR: Bcd = Bcd {
        bytes: 2,
        decimals: 3,
        signed: true,
        unit: "",
    };
    /// X.XXX unsigned (the vendor malicious-load threshold).
    pub const RATIO: Bcd = Bcd {
        bytes: 2,
        decimals: 3,
        signed: false,
        unit: "",
    };
    /// XX.XX Hz.
    pub const FREQUENCY: Bcd = Bcd {
        bytes: 2,
        decimals: 2,
        signed: false,
        unit: "Hz",
    };
    /// NNNN, a count.
    pub const COUNT: Bcd = Bcd {
        bytes: 2,
        decimals: 0,
        signed: false,
        unit: "",
    };
    /// NN, a small count.
    pub const SMALL_COUNT: Bcd = Bcd {
        bytes: 1,
        decimals: 0,
        signed: false,
        unit: "",
    };
    /// XXXX W.
    pub const WATTS: Bcd = Bcd {
        bytes: 2,
        decimals: 0,
        signed: false,
        unit: "W",
    };
    /// NNNN minutes.
    pub const MINUTES: Bcd = Bcd {
        bytes: 2,
        decimals: 0,
        signed: false,
        unit: "min",
    };

    /// The largest magnitude the format holds (a sign bit costs the top digit
    /// its high values: 799999.99 kWh for signed energy).
    pub fn max(self) -> i64 {
        if self.bytes == 0 {
            return 0;
        }
        let digits = 2 * u32::from(self.bytes);
        let all = 10i64.saturating_pow(digits) - 1;
        if self.signed {
            8i64.saturating_mul(10i64.saturating_pow(digits.saturating_sub(1))) - 1
        } else {
            all
        }
    }

    /// Encodes `raw` (in units of the last digit), low byte first.
    pub fn encode(self, raw: i64) -> Result<Vec<u8>, FrameError> {
        if raw < 0 && !self.signed {
            return Err(out_of_range(format!(
                "{raw} is negative in an unsigned field"
            )));
        }
        if raw.unsigned_abs() > self.max().unsigned_abs() {
            return Err(out_of_range(format!(
                "{raw} exceeds {} for this field",
                self.max()
            )));
        }
        let mut out = encode_bcd(raw.unsigned_abs(), usize::from(self.bytes))?;
        if raw < 0
            && let Some(top) = out.last_mut()
        {
            *top |= 0x80;
        }
        Ok(out)
    }

    /// Decodes exactly `self.bytes` bytes to a raw integer.
    pub fn decode(self, bytes: &[u8]) -> Result<i64, FrameError> {
        expect_len(bytes, usize::from(self.bytes))?;
        let mut magnitude = bytes.to_vec();
        let mut negative = false;
        if self.signed
            && let Some(top) = magnitude.last_mut()
        {
            negative = *top & 0x80 != 0;
            *top &= 0x7F;
        }
        let value = decode_bcd(&magnitude)? as i64;
        Ok(if negative { -value } else { value })
    }

    /// Shows `raw` with its decimal point, e.g. `1234.56` or `-5.123`.
    pub fn format_raw(self, raw: i64) -> String {
        format_decimal(raw, self.decimals)
    }
}

/// `raw / 10^decimals` written exactly, e.g. `format_decimal(123456, 2)` is `1234.56`.
pub fn format_decimal(raw: i64, decimals: u8) -> String {
    let sign = if raw < 0 { "-" } else { "" };
    if decimals == 0 {
        return raw.to_string();
    }
    // Work on the digit string so that any number of decimals is exact and
    // cannot overflow a power of ten.
    let places = usize::from(decimals);
    let digits = format!("{:0>width$}", raw.unsigned_abs(), width = places + 1);
    let (whole, fraction) = digits.split_at(digits.len() - places);
    format!("{sign}{whole}.{fraction}")
}

/// Parses decimal text exactly into an integer with `decimals` implied places:
/// `parse_decimal("20.5", 2)` is `2050`. Refuses more places than `decimals`
/// rather than rounding, since a rounded purchase amount is a wrong one.
pub fn parse_decimal(text: &str, decimals: u8) -> Result<i64, FrameError> {
    let bad = || {
        out_of_range(format!(
            "{text:?} is not a number with at most {decimals} decimals"
        ))
    };
    let text = text.trim();
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty()
        || !digits_ok(whole)
        || !digits_ok(fraction)
        || fraction.len() > usize::from(decimals)
    {
        return Err(bad());
    }
    let padded = format!("{whole}{fraction:0<width$}", width = usize::from(decimals));
    let magnitude: i64 = padded.parse().map_err(|_| bad())?;
    Ok(if negative { -magnitude } else { magnitude })
}

/// A calendar date and time as a meter keeps it (local time, no zone,
/// years 2000–2099 because the wire has two year digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MeterDateTime {
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl MeterDateTime {
    /// The earliest time a meter can hold: 2000-01-01 00:00:00.
    pub const EARLIEST: MeterDateTime = MeterDateTime {
        year: 2000,
        month: 1,
        day: 1,
        hour: 0,
        minute: 0,
        second: 0,
    };

    /// A checked date and time; `year` is the full year (2000..=2099).
    pub fn new(
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
    ) -> Result<Self, FrameError> {
        let ok = (2000..=2099).contains(&year)
            && (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month)
            && hour < 24
            && minute < 60
            && second < 60;
        if !ok {
            return Err(out_of_range(format!(
                "{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} is not a meter time"
            )));
        }
        Ok(MeterDateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }

    /// Full year.
    pub const fn year(self) -> u16 {
        self.year
    }
    /// Month 1..=12.
    pub const fn month(self) -> u8 {
        self.month
    }
    /// Day of month.
    pub const fn day(self) -> u8 {
        self.day
    }
    /// Hour 0..=23.
    pub const fn hour(self) -> u8 {
        self.hour
    }
    /// Minute.
    pub const fn minute(self) -> u8 {
        self.minute
    }
    /// Second.
    pub const fn second(self) -> u8 {
        self.second
    }

    /// Day of the week, 0 = Sunday (the WW byte's convention).
    pub fn weekday(self) -> u8 {
        // Days since 2000-01-01, which was a Saturday (6).
        let mut days = u32::from(self.day) - 1;
        for y in 2000..self.year {
            days += if days_in_month(y, 2) == 29 { 366 } else { 365 };
        }
        for m in 1..self.month {
            days += u32::from(days_in_month(self.year, m));
        }
        ((days + 6) % 7) as u8
    }

    /// Seconds-resolution wire form YYMMDDhhmmss, low byte first:
    /// `ss mm hh DD MM YY` (broadcast time, relay deadlines, events).
    pub fn to_wire_seconds(self) -> [u8; 6] {
        [
            to_bcd_byte(self.second),
            to_bcd_byte(self.minute),
            to_bcd_byte(self.hour),
            to_bcd_byte(self.day),
            to_bcd_byte(self.month),
            to_bcd_byte((self.year - 2000) as u8),
        ]
    }

    /// Reads `ss mm hh DD MM YY`.
    pub fn from_wire_seconds(bytes: &[u8]) -> Result<Self, FrameError> {
        expect_len(bytes, 6)?;
        let second = bcd_byte(bytes[0])?;
        let rest = Self::from_wire_minutes(&bytes[1..])?;
        Self::new(
            rest.year,
            rest.month,
            rest.day,
            rest.hour,
            rest.minute,
            second,
        )
    }

    /// Minute-resolution wire form YYMMDDhhmm, low byte first:
    /// `mm hh DD MM YY` (purchase and freeze times). Seconds are dropped.
    pub fn to_wire_minutes(self) -> [u8; 5] {
        let [_, rest @ ..] = self.to_wire_seconds();
        rest
    }

    /// Reads `mm hh DD MM YY` (seconds = 0).
    pub fn from_wire_minutes(bytes: &[u8]) -> Result<Self, FrameError> {
        expect_len(bytes, 5)?;
        let [minute, hour, day, month, year] = [
            bcd_byte(bytes[0])?,
            bcd_byte(bytes[1])?,
            bcd_byte(bytes[2])?,
            bcd_byte(bytes[3])?,
            bcd_byte(bytes[4])?,
        ];
        Self::new(2000 + u16::from(year), month, day, hour, minute, 0)
    }

    /// The date+weekday wire form YYMMDDWW, low byte first: `WW DD MM YY`.
    pub fn to_wire_date(self) -> [u8; 4] {
        [
            self.weekday(),
            to_bcd_byte(self.day),
            to_bcd_byte(self.month),
            to_bcd_byte((self.year - 2000) as u8),
        ]
    }

    /// Reads `WW DD MM YY`; returns the date (time 00:00:00) and the weekday
    /// byte as the meter sent it (not checked against the date: meters with
    /// a wrong weekday exist, and the head-end should see it).
    pub fn from_wire_date(bytes: &[u8]) -> Result<(Self, u8), FrameError> {
        expect_len(bytes, 4)?;
        let weekday = bcd_byte(bytes[0])?;
        let date = Self::new(
            2000 + u16::from(bcd_byte(bytes[3])?),
            bcd_byte(bytes[2])?,
            bcd_byte(bytes[1])?,
            0,
            0,
            0,
        )?;
        Ok((date, weekday))
    }

    /// The time wire form hhmmss, low byte first: `ss mm hh`.
    pub fn to_wire_time(self) -> [u8; 3] {
        [
            to_bcd_byte(self.second),
            to_bcd_byte(self.minute),
            to_bcd_byte(self.hour),
        ]
    }

    /// Reads `ss mm hh` as (hour, minute, second).
    pub fn time_from_wire(bytes: &[u8]) -> Result<(u8, u8, u8), FrameError> {
        expect_len(bytes, 3)?;
        let (second, minute, hour) = (
            bcd_byte(bytes[0])?,
            bcd_byte(bytes[1])?,
            bcd_byte(bytes[2])?,
        );
        if hour >= 24 || minute >= 60 || second >= 60 {
            return Err(out_of_range(format!(
                "{hour:02}:{minute:02}:{second:02} is not a time"
            )));
        }
        Ok((hour, minute, second))
    }
}

impl fmt::Display for MeterDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Running status word 3 (DI 04 00 05 03), two bytes, low byte first.
/// Bit meanings from protocol-notes §2.2 and the reference profile's vendor
/// bits 12–15.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StatusWord3(pub u16);

impl StatusWord3 {
    /// bit0: time-period table set 2 in use.
    pub const PERIOD_TABLE_2: u16 = 1 << 0;
    /// bit3: programming allowed.
    pub const PROGRAMMING_ALLOWED: u16 = 1 << 3;
    /// bit4: relay actually open (power off).
    pub const RELAY_OPEN: u16 = 1 << 4;
    /// bit5: time-zone set 2 in use.
    pub const TIME_ZONE_SET_2: u16 = 1 << 5;
    /// bit6: relay commanded open (set on a trip command, before the trip).
    pub const RELAY_COMMANDED_OPEN: u16 = 1 << 6;
    /// bit7: pre-trip (low balance) alarm.
    pub const PRE_TRIP_ALARM: u16 = 1 << 7;
    /// bits 8–9 = 01: energy (kWh) prepaid meter.
    pub const KWH_PREPAID: u16 = 0b01 << 8;
    /// bits 8–9 = 10: money prepaid meter.
    pub const MONEY_PREPAID: u16 = 0b10 << 8;
    /// Mask of bits 8–9.
    pub const METER_TYPE_MASK: u16 = 0b11 << 8;
    /// bit10: tariff price set 2 in use.
    pub const PRICE_SET_2: u16 = 1 << 10;
    /// bit11: step (阶梯) set 2 in use.
    pub const STEP_SET_2: u16 = 1 << 11;
    /// (vendor) bit12: tripped by malicious load.
    pub const MALICIOUS_LOAD_TRIP: u16 = 1 << 12;
    /// (vendor) bit13: tripped by over-power.
    pub const OVER_POWER_TRIP: u16 = 1 << 13;
    /// (vendor) bit14: keep-power (保电) on.
    pub const KEEP_POWER: u16 = 1 << 14;
    /// (vendor) bit15: locked out after too many trips today.
    pub const LOCKED_OUT: u16 = 1 << 15;

    const NAMED: [(u16, &'static str); 13] = [
        (Self::PERIOD_TABLE_2, "period_table_2"),
        (Self::PROGRAMMING_ALLOWED, "programming_allowed"),
        (Self::RELAY_OPEN, "relay_open"),
        (Self::TIME_ZONE_SET_2, "time_zone_set_2"),
        (Self::RELAY_COMMANDED_OPEN, "relay_commanded_open"),
        (Self::PRE_TRIP_ALARM, "pre_trip_alarm"),
        (Self::KWH_PREPAID, "kwh_prepaid"),
        (Self::MONEY_PREPAID, "money_prepaid"),
        (Self::PRICE_SET_2, "price_set_2"),
        (Self::STEP_SET_2, "step_set_2"),
        (Self::MALICIOUS_LOAD_TRIP, "malicious_load_trip"),
        (Self::OVER_POWER_TRIP, "over_power_trip"),
        (Self::KEEP_POWER, "keep_power"),
    ];

    /// Whether all bits of `mask` are set.
    pub const fn has(self, mask: u16) -> bool {
        self.0 & mask == mask
    }

    /// A copy with the bits of `mask` set or cleared.
    #[must_use]
    pub const fn with(self, mask: u16, on: bool) -> Self {
        StatusWord3(if on { self.0 | mask } else { self.0 & !mask })
    }

    /// Relay actually open (bit4).
    pub const fn relay_open(self) -> bool {
        self.has(Self::RELAY_OPEN)
    }
    /// Relay commanded open (bit6).
    pub const fn relay_commanded_open(self) -> bool {
        self.has(Self::RELAY_COMMANDED_OPEN)
    }
    /// Pre-trip alarm (bit7).
    pub const fn pre_trip_alarm(self) -> bool {
        self.has(Self::PRE_TRIP_ALARM)
    }
    /// Energy-prepaid meter (bits 8–9 = 01).
    pub const fn is_kwh_prepaid(self) -> bool {
        self.0 & Self::METER_TYPE_MASK == Self::KWH_PREPAID
    }
    /// (vendor) Malicious-load trip (bit12).
    pub const fn malicious_load_trip(self) -> bool {
        self.has(Self::MALICIOUS_LOAD_TRIP)
    }
    /// (vendor) Over-power trip (bit13).
    pub const fn over_power_trip(self) -> bool {
        self.has(Self::OVER_POWER_TRIP)
    }
    /// (vendor) Keep-power on (bit14).
    pub const fn keep_power(self) -> bool {
        self.has(Self::KEEP_POWER)
    }
    /// (vendor) Locked out (bit15).
    pub const fn locked_out(self) -> bool {
        self.has(Self::LOCKED_OUT)
    }

    /// Names of the set bits (meter type as one name).
    pub fn names(self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Self::NAMED
            .iter()
            .filter(|(mask, _)| {
                if mask & Self::METER_TYPE_MASK != 0 {
                    self.0 & Self::METER_TYPE_MASK == *mask
                } else {
                    self.has(*mask)
                }
            })
            .map(|(_, name)| *name)
            .collect();
        if self.locked_out() {
            names.push("locked_out");
        }
        names
    }

    /// The two wire bytes, low byte first.
    pub const fn to_wire(self) -> [u8; 2] {
        self.0.to_le_bytes()
    }

    /// Reads two bytes, low byte first.
    pub fn from_wire(bytes: &[u8]) -> Result<Self, FrameError> {
        expect_len(bytes, 2)?;
        Ok(StatusWord3(u16::from_le_bytes([bytes[0], bytes[1]])))
    }
}

impl fmt::Debug for StatusWord3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StatusWord3({:04X} {:?})", self.0, self.names())
    }
}

/// A password: level PA (00 highest … 09; plain-text levels are 02 and 04)
/// and the three code bytes P0 P1 P2. The code is written as the six hex
/// digits printed in manuals: `0x123456` goes on the wire as `56 34 12`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Password {
    /// PA, the level.
    pub level: u8,
    /// P2 P1 P0 as a number (only the low 24 bits are sent).
    pub code: u32,
}

impl Password {
    /// The four wire bytes PA P0 P1 P2.
    pub const fn to_wire(self) -> [u8; 4] {
        let [p0, p1, p2, _] = self.code.to_le_bytes();
        [self.level, p0, p1, p2]
    }

    /// Reads PA P0 P1 P2.
    pub fn from_wire(bytes: &[u8]) -> Result<Self, FrameError> {
        expect_len(bytes, 4)?;
        Ok(Password {
            level: bytes[0],
            code: u32::from_le_bytes([bytes[1], bytes[2], bytes[3], 0]),
        })
    }
}

/// The operator code C0..C3 that meters log with every change, written as the
/// eight hex digits printed in logs: `0x12345678` goes on the wire as `78 56 34 12`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OperatorCode(pub u32);

impl OperatorCode {
    /// The four wire bytes C0..C3.
    pub const fn to_wire(self) -> [u8; 4] {
        self.0.to_le_bytes()
    }

    /// Reads C0..C3.
    pub fn from_wire(bytes: &[u8]) -> Result<Self, FrameError> {
        expect_len(bytes, 4)?;
        Ok(OperatorCode(u32::from_le_bytes([
            bytes[0], bytes[1], bytes[2], bytes[3],
        ])))
    }
}

/// N1 of a 1CH relay-control command (protocol-notes §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RelayCommand {
    /// 1A trip (拉闸).
    Trip = 0x1A,
    /// 1B close allowed (the reference meter closes by itself).
    CloseAllowed = 0x1B,
    /// 1C direct close (also clears a lockout).
    DirectClose = 0x1C,
    /// 2A alarm.
    Alarm = 0x2A,
    /// 2B alarm release.
    AlarmRelease = 0x2B,
    /// 3A keep-power on (trips suppressed).
    KeepPower = 0x3A,
    /// 3B keep-power off.
    KeepPowerRelease = 0x3B,
}

impl RelayCommand {
    /// Every command.
    pub const ALL: [RelayCommand; 7] = [
        RelayCommand::Trip,
        RelayCommand::CloseAllowed,
        RelayCommand::DirectClose,
        RelayCommand::Alarm,
        RelayCommand::AlarmRelease,
        RelayCommand::KeepPower,
        RelayCommand::KeepPowerRelease,
    ];

    /// The N1 byte.
    pub const fn byte(self) -> u8 {
        self as u8
    }

    /// The command for an N1 byte.
    pub fn from_byte(b: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.byte() == b)
    }

    /// A short name, also accepted by `dormwatt frame encode relay`.
    pub const fn name(self) -> &'static str {
        match self {
            RelayCommand::Trip => "trip",
            RelayCommand::CloseAllowed => "close-allowed",
            RelayCommand::DirectClose => "direct-close",
            RelayCommand::Alarm => "alarm",
            RelayCommand::AlarmRelease => "alarm-release",
            RelayCommand::KeepPower => "keep-power",
            RelayCommand::KeepPowerRelease => "keep-power-release",
        }
    }

    /// The command with this [`RelayCommand::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// The 16-byte data field of a 1CH relay-control request:
/// `PA P0P1P2 | C0..C3 | N1 | N2 | ss mm hh DD MM YY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RelayControl {
    /// Password (plain-text level 02 in the reference profile).
    pub password: Password,
    /// Operator code.
    pub operator: OperatorCode,
    /// N1.
    pub command: RelayCommand,
    /// N2: reserved, 00 in the standard; some multi-circuit meters put a
    /// channel here, so it is kept rather than forced to zero.
    pub reserved: u8,
    /// The deadline after which the meter must refuse the command.
    pub valid_until: MeterDateTime,
}

impl RelayControl {
    /// Length of the data field.
    pub const LEN: usize = 16;

    /// The plain data field.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.extend(self.password.to_wire());
        out.extend(self.operator.to_wire());
        out.push(self.command.byte());
        out.push(self.reserved);
        out.extend(self.valid_until.to_wire_seconds());
        out
    }

    /// Reads the plain data field of a 1CH request.
    pub fn from_wire(bytes: &[u8]) -> Result<Self, FrameError> {
        expect_len(bytes, Self::LEN)?;
        let command = RelayCommand::from_byte(bytes[8])
            .ok_or_else(|| out_of_range(format!("relay command N1={:02X}", bytes[8])))?;
        Ok(RelayControl {
            password: Password::from_wire(&bytes[0..4])?,
            operator: OperatorCode::from_wire(&bytes[4..8])?,
            command,
            reserved: bytes[9],
            valid_until: MeterDateTime::from_wire_seconds(&bytes[10..16])?,
        })
    }
}

/// A 14H write request's data field: `DI | PA P0P1P2 | C0..C3 | value`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WriteData {
    /// What to write.
    pub di: Di,
    /// Password.
    pub password: Password,
    /// Operator code.
    pub operator: OperatorCode,
    /// The value bytes, encoded with the DI's format.
    pub value: Vec<u8>,
}

impl WriteData {
    /// The plain data field.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.value.len());
        out.extend(self.di.to_le_bytes());
        out.extend(self.password.to_wire());
        out.extend(self.operator.to_wire());
        out.extend_from_slice(&self.value);
        out
    }

    /// Reads a write request's plain data field.
    pub fn from_wire(bytes: &[u8]) -> Result<Self, FrameError> {
        if bytes.len() < 12 {
            return Err(FrameError::Length {
                expected: 12,
                got: bytes.len(),
            });
        }
        Ok(WriteData {
            di: Di::from_le_bytes(bytes).ok_or(FrameError::Length {
                expected: 4,
                got: 0,
            })?,
            password: Password::from_wire(&bytes[4..8])?,
            operator: OperatorCode::from_wire(&bytes[8..12])?,
            value: bytes[12..].to_vec(),
        })
    }
}

/// The reference profile's recharge request (C = 03H, DI 07 01 02 FF,
/// plain text, L = 30), meter-profile.md "Recharge".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Recharge {
    /// Operator code.
    pub operator: OperatorCode,
    /// Purchased energy, unsigned binary, in 0.01 kWh.
    pub energy_centikwh: u32,
    /// The purchase count this recharge makes (stored + 1 to be applied).
    pub purchase_count: u32,
    /// MAC1, zeros in plain-text mode.
    pub mac1: [u8; 4],
    /// Customer (room account) number, at most 12 decimal digits, BCD on the wire.
    pub customer: u64,
    /// MAC2, zeros in plain-text mode.
    pub mac2: [u8; 4],
}

impl Recharge {
    /// Length of the data field, DI included.
    pub const LEN: usize = 30;
    /// The largest customer number (12 BCD digits).
    pub const CUSTOMER_MAX: u64 = 999_999_999_999;

    /// The plain data field, DI included. Fails only for a customer number
    /// over 12 digits.
    pub fn to_wire(&self) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.extend(Di::RECHARGE.to_le_bytes());
        out.extend(self.operator.to_wire());
        out.extend(self.energy_centikwh.to_le_bytes());
        out.extend(self.purchase_count.to_le_bytes());
        out.extend(self.mac1);
        out.extend(encode_bcd(self.customer, 6)?);
        out.extend(self.mac2);
        Ok(out)
    }

    /// Reads the plain data field (DI included) of a recharge request.
    pub fn from_wire(bytes: &[u8]) -> Result<Self, FrameError> {
        expect_len(bytes, Self::LEN)?;
        if Di::from_le_bytes(bytes) != Some(Di::RECHARGE) {
            return Err(out_of_range(format!(
                "recharge DI must be 070102FF, got {:02X?}",
                &bytes[..4]
            )));
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let four_at = |i: usize| [bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]];
        Ok(Recharge {
            operator: OperatorCode(u32_at(4)),
            energy_centikwh: u32_at(8),
            purchase_count: u32_at(12),
            mac1: four_at(16),
            customer: decode_bcd(&bytes[20..26])?,
            mac2: four_at(26),
        })
    }
}

/// The normal reply to a recharge (C = 83H): DI + remaining energy
/// (XXXXXX.XX BCD) + purchase count (4 bytes binary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RechargeReply {
    /// Remaining energy after the recharge, 0.01 kWh.
    pub remaining_centikwh: i64,
    /// The meter's purchase count after the recharge.
    pub purchase_count: u32,
}

impl RechargeReply {
    /// Length of the data field, DI included.
    pub const LEN: usize = 12;

    /// The plain data field, DI included.
    pub fn to_wire(&self) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.extend(Di::RECHARGE.to_le_bytes());
        out.extend(Bcd::ENERGY.encode(self.remaining_centikwh)?);
        out.extend(self.purchase_count.to_le_bytes());
        Ok(out)
    }

    /// Reads the plain data field (DI included) of a recharge reply.
    pub fn from_wire(bytes: &[u8]) -> Result<Self, FrameError> {
        expect_len(bytes, Self::LEN)?;
        if Di::from_le_bytes(bytes) != Some(Di::RECHARGE) {
            return Err(out_of_range(format!(
                "recharge DI must be 070102FF, got {:02X?}",
                &bytes[..4]
            )));
        }
        Ok(RechargeReply {
            remaining_centikwh: Bcd::ENERGY.decode(&bytes[4..8])?,
            purchase_count: u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
        })
    }
}

/// How the value of a DI is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// A BCD number.
    Number(Bcd),
    /// YYMMDDWW.
    Date,
    /// hhmmss.
    Time,
    /// YYMMDDhhmm.
    DateTimeMinutes,
    /// YYMMDDhhmmss.
    DateTimeSeconds,
    /// Status word 3.
    StatusWord3,
    /// `count` × XXXXXX.XX kWh (total, then tariffs).
    EnergyBlock {
        /// How many 4-byte values.
        count: u8,
    },
    /// An event record: YYMMDDhhmmss, then fields this codec keeps opaque.
    Event,
    /// A 6-byte address (also 12-digit numbers such as the meter number).
    Address,
    /// YYMMDDWWhhmmss: date, weekday and time in one field (04 00 01 0C).
    DateWeekTime,
}

/// A decoded DI value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// A number in units of its last digit (`1234.56 kWh` is `raw = 123456`).
    Number {
        /// The integer.
        raw: i64,
        /// Its format (decimals, unit).
        bcd: Bcd,
    },
    /// A date with the weekday byte the meter sent.
    Date {
        /// The date (time fields zero).
        date: MeterDateTime,
        /// WW, 0 = Sunday.
        weekday: u8,
    },
    /// A time of day.
    Time {
        /// Hour.
        hour: u8,
        /// Minute.
        minute: u8,
        /// Second.
        second: u8,
    },
    /// A date and time.
    DateTime(MeterDateTime),
    /// Status word 3.
    StatusWord3(StatusWord3),
    /// Energies in 0.01 kWh: total, then tariffs 1..n.
    EnergyBlock(Vec<i64>),
    /// An event record.
    Event {
        /// When it happened.
        time: MeterDateTime,
        /// The remaining fields, plain bytes.
        rest: Vec<u8>,
    },
    /// An address (or another 12-digit number).
    Address(Address),
    /// A date and time with the weekday byte the meter sent.
    DateWeekTime {
        /// The date and time.
        time: MeterDateTime,
        /// WW, 0 = Sunday.
        weekday: u8,
    },
}

impl Format {
    /// The format of the read reply for `di`, for the reference profile's DIs.
    pub fn of(di: Di) -> Option<Format> {
        let number = Format::Number;
        Some(match di {
            Di::COMBINED_ACTIVE_ENERGY => number(Bcd::SIGNED_ENERGY),
            Di::FORWARD_ACTIVE_ENERGY
            | Di::REVERSE_ACTIVE_ENERGY
            | Di::REMAINING_ENERGY
            | Di::OVERDRAFT_ENERGY
            | Di::ALARM_ENERGY_1
            | Di::ALARM_ENERGY_2
            | Di::HOARDING_LIMIT
            | Di::OVERDRAFT_LIMIT
            | Di::LAST_PURCHASE_ENERGY
            | Di::REMAINING_BEFORE_PURCHASE
            | Di::REMAINING_AFTER_PURCHASE
            | Di::CUMULATIVE_PURCHASED_ENERGY => number(Bcd::ENERGY),
            Di::REMAINING_MONEY => number(Bcd::MONEY),
            Di::VOLTAGE => number(Bcd::VOLTAGE),
            Di::CURRENT => number(Bcd::CURRENT),
            Di::ACTIVE_POWER | Di::ACTIVE_POWER_A => number(Bcd::POWER),
            Di::POWER_FACTOR => number(Bcd::POWER_FACTOR),
            Di::FREQUENCY => number(Bcd::FREQUENCY),
            Di::DATE => Format::Date,
            Di::TIME => Format::Time,
            Di::COMM_ADDRESS | Di::METER_NUMBER => Format::Address,
            Di::DATE_WEEK_TIME => Format::DateWeekTime,
            Di::STATUS_WORD_3 => Format::StatusWord3,
            Di::LAST_PURCHASE_TIME => Format::DateTimeMinutes,
            Di::PURCHASE_COUNT => number(Bcd::COUNT),
            Di::LAST_TRIP_EVENT | Di::LAST_CLOSE_EVENT => Format::Event,
            Di::POWER_LIMIT => number(Bcd::POWER_LIMIT),
            Di::MALICIOUS_LOAD_STEP => number(Bcd::WATTS),
            Di::MALICIOUS_LOAD_PF_THRESHOLD => number(Bcd::RATIO),
            Di::AUTO_RESTORE_DELAY => number(Bcd::MINUTES),
            Di::TRIPS_BEFORE_LOCKOUT => number(Bcd::SMALL_COUNT),
            Di::MALICIOUS_LOAD_TRIPS | Di::OVER_POWER_TRIPS => number(Bcd::COUNT),
            Di::LAST_MALICIOUS_LOAD_TRIP => Format::DateTimeSeconds,
            other => match (other.daily_freeze_index(), (other.0 >> 8) & 0xFF) {
                (Some(_), 0x00) => Format::DateTimeMinutes,
                (Some(_), 0x01) => Format::EnergyBlock { count: 5 },
                _ => return None,
            },
        })
    }

    /// Decodes a value (the bytes after the DI in a read reply).
    pub fn decode(self, bytes: &[u8]) -> Result<Value, FrameError> {
        Ok(match self {
            Format::Number(bcd) => Value::Number {
                raw: bcd.decode(bytes)?,
                bcd,
            },
            Format::Date => {
                let (date, weekday) = MeterDateTime::from_wire_date(bytes)?;
                Value::Date { date, weekday }
            }
            Format::Time => {
                let (hour, minute, second) = MeterDateTime::time_from_wire(bytes)?;
                Value::Time {
                    hour,
                    minute,
                    second,
                }
            }
            Format::DateTimeMinutes => Value::DateTime(MeterDateTime::from_wire_minutes(bytes)?),
            Format::DateTimeSeconds => Value::DateTime(MeterDateTime::from_wire_seconds(bytes)?),
            Format::StatusWord3 => Value::StatusWord3(StatusWord3::from_wire(bytes)?),
            Format::EnergyBlock { count } => {
                expect_len(bytes, 4 * usize::from(count))?;
                Value::EnergyBlock(
                    bytes
                        .chunks_exact(4)
                        .map(|c| Bcd::ENERGY.decode(c))
                        .collect::<Result<_, _>>()?,
                )
            }
            Format::Event => {
                if bytes.len() < 6 {
                    return Err(FrameError::Length {
                        expected: 6,
                        got: bytes.len(),
                    });
                }
                Value::Event {
                    time: MeterDateTime::from_wire_seconds(&bytes[..6])?,
                    rest: bytes[6..].to_vec(),
                }
            }
            Format::Address => {
                expect_len(bytes, 6)?;
                let mut wire = [0u8; 6];
                wire.copy_from_slice(bytes);
                Value::Address(Address::from_wire(wire))
            }
            Format::DateWeekTime => {
                // ss mm hh WW DD MM YY on the wire.
                expect_len(bytes, 7)?;
                let weekday = bcd_byte(bytes[3])?;
                let mut seconds = [0u8; 6];
                seconds[..3].copy_from_slice(&bytes[..3]);
                seconds[3..].copy_from_slice(&bytes[4..]);
                Value::DateWeekTime {
                    time: MeterDateTime::from_wire_seconds(&seconds)?,
                    weekday,
                }
            }
        })
    }

    /// How many bytes a value of this format takes, or the least it takes
    /// for the variable-length event records.
    pub const fn byte_len(self) -> usize {
        match self {
            Format::Number(bcd) => bcd.bytes as usize,
            Format::Date => 4,
            Format::Time => 3,
            Format::DateTimeMinutes => 5,
            Format::DateTimeSeconds | Format::Event | Format::Address => 6,
            Format::StatusWord3 => 2,
            Format::EnergyBlock { count } => 4 * count as usize,
            Format::DateWeekTime => 7,
        }
    }

    /// Whether [`Format::byte_len`] is exact (every format but events).
    pub const fn is_fixed_len(self) -> bool {
        !matches!(self, Format::Event)
    }
}

impl Value {
    /// Encodes the value in its own layout (the inverse of [`Format::decode`]).
    pub fn to_wire(&self) -> Result<Vec<u8>, FrameError> {
        Ok(match self {
            Value::Number { raw, bcd } => bcd.encode(*raw)?,
            Value::Date { date, weekday } => {
                let mut out = date.to_wire_date().to_vec();
                out[0] = to_bcd_byte(*weekday % 100);
                out
            }
            Value::Time {
                hour,
                minute,
                second,
            } => MeterDateTime::new(2000, 1, 1, *hour, *minute, *second)?
                .to_wire_time()
                .to_vec(),
            Value::DateTime(t) => t.to_wire_seconds().to_vec(),
            Value::StatusWord3(s) => s.to_wire().to_vec(),
            Value::EnergyBlock(values) => {
                let mut out = Vec::with_capacity(4 * values.len());
                for v in values {
                    out.extend(Bcd::ENERGY.encode(*v)?);
                }
                out
            }
            Value::Event { time, rest } => {
                let mut out = time.to_wire_seconds().to_vec();
                out.extend_from_slice(rest);
                out
            }
            Value::Address(a) => a.to_wire().to_vec(),
            Value::DateWeekTime { time, weekday } => {
                let mut out = time.to_wire_seconds().to_vec();
                out.insert(3, to_bcd_byte(*weekday % 100));
                out
            }
        })
    }

    /// Encodes the value in the layout of `format`, which matters for
    /// date-times: the same [`Value::DateTime`] is 5 bytes in a
    /// [`Format::DateTimeMinutes`] field and 6 in a [`Format::DateTimeSeconds`] one.
    pub fn to_wire_as(&self, format: Format) -> Result<Vec<u8>, FrameError> {
        match (self, format) {
            (Value::DateTime(t), Format::DateTimeMinutes) => Ok(t.to_wire_minutes().to_vec()),
            _ => self.to_wire(),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number { raw, bcd } if bcd.unit.is_empty() => {
                write!(f, "{}", bcd.format_raw(*raw))
            }
            Value::Number { raw, bcd } => write!(f, "{} {}", bcd.format_raw(*raw), bcd.unit),
            Value::Date { date, weekday } => {
                write!(
                    f,
                    "{:04}-{:02}-{:02} weekday {weekday}",
                    date.year(),
                    date.month(),
                    date.day()
                )
            }
            Value::Time {
                hour,
                minute,
                second,
            } => write!(f, "{hour:02}:{minute:02}:{second:02}"),
            Value::DateTime(t) => write!(f, "{t}"),
            Value::StatusWord3(s) => write!(f, "{:04X} [{}]", s.0, s.names().join(", ")),
            Value::EnergyBlock(values) => {
                let parts: Vec<String> = values.iter().map(|v| format_decimal(*v, 2)).collect();
                write!(f, "[{}] kWh", parts.join(", "))
            }
            Value::Event { time, rest } => write!(f, "{time} +{} bytes", rest.len()),
            Value::Address(a) => write!(f, "{a}"),
            Value::DateWeekTime { time, weekday } => write!(f, "{time} weekday {weekday}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcd_numbers() {
        assert_eq!(
            Bcd::ENERGY.encode(123_456).unwrap(),
            [0x56, 0x34, 0x12, 0x00]
        );
        assert_eq!(
            Bcd::ENERGY.decode(&[0x56, 0x34, 0x12, 0x00]).unwrap(),
            123_456
        );
        assert_eq!(Bcd::CURRENT.encode(-5123).unwrap(), [0x23, 0x51, 0x80]);
        assert_eq!(Bcd::CURRENT.decode(&[0x23, 0x51, 0x80]).unwrap(), -5123);
        assert_eq!(Bcd::SIGNED_ENERGY.max(), 79_999_999);
        assert!(Bcd::SIGNED_ENERGY.encode(80_000_000).is_err());
        assert!(Bcd::ENERGY.encode(-1).is_err());
        assert!(Bcd::ENERGY.encode(100_000_000).is_err());
        assert_eq!(Bcd::ENERGY.encode(99_999_999).unwrap(), [0x99; 4]);
        assert!(matches!(
            Bcd::VOLTAGE.decode(&[0x0A, 0x00]),
            Err(FrameError::NotBcd(_))
        ));
        assert!(matches!(
            Bcd::VOLTAGE.decode(&[0x00]),
            Err(FrameError::Length { .. })
        ));
        assert_eq!(format_decimal(-5123, 3), "-5.123");
        assert_eq!(format_decimal(5, 2), "0.05");
        assert_eq!(format_decimal(11_280, 4), "1.1280");
        assert_eq!(
            format_decimal(i64::MIN, 30),
            format!("-0.{:0>30}", i64::MIN.unsigned_abs())
        );
        assert_eq!(format_decimal(-7, 0), "-7");
        assert_eq!(
            Bcd {
                bytes: 0,
                decimals: 0,
                signed: true,
                unit: ""
            }
            .max(),
            0
        );
        assert_eq!(
            Bcd {
                bytes: 12,
                decimals: 0,
                signed: true,
                unit: ""
            }
            .max(),
            i64::MAX - 1
        );
        assert_eq!(parse_decimal("20.5", 2).unwrap(), 2050);
        assert_eq!(parse_decimal("-5.123", 3).unwrap(), -5123);
        assert_eq!(parse_decimal("7", 0).unwrap(), 7);
        assert_eq!(parse_decimal(".5", 1).unwrap(), 5);
        assert!(parse_decimal("1.234", 2).is_err());
        assert!(parse_decimal("1e3", 2).is_err());
        assert!(parse_decimal(".", 2).is_err());
        assert!(parse_decimal("", 2).is_err());
    }

    #[test]
    fn date_times() {
        let t = MeterDateTime::new(2025, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(t.to_wire_seconds(), [0x59, 0x59, 0x23, 0x31, 0x12, 0x25]);
        assert_eq!(
            MeterDateTime::from_wire_seconds(&t.to_wire_seconds()).unwrap(),
            t
        );
        // 2025-09-01 was a Monday.
        assert_eq!(
            MeterDateTime::new(2025, 9, 1, 0, 0, 0).unwrap().weekday(),
            1
        );
        assert_eq!(
            MeterDateTime::new(2026, 11, 26, 0, 0, 0).unwrap().weekday(),
            4
        );
        assert_eq!(
            MeterDateTime::new(2000, 1, 1, 0, 0, 0).unwrap().weekday(),
            6
        );
        assert!(MeterDateTime::new(2025, 2, 29, 0, 0, 0).is_err());
        assert!(MeterDateTime::new(2024, 2, 29, 0, 0, 0).is_ok());
        assert!(MeterDateTime::new(2025, 13, 1, 0, 0, 0).is_err());
        assert!(MeterDateTime::from_wire_minutes(&[0x00, 0x24, 0x01, 0x01, 0x25]).is_err());
    }

    #[test]
    fn status_word() {
        let s = StatusWord3(0x0150);
        assert!(s.relay_open() && s.relay_commanded_open() && s.is_kwh_prepaid());
        assert!(!s.pre_trip_alarm() && !s.locked_out());
        assert_eq!(
            s.names(),
            ["relay_open", "relay_commanded_open", "kwh_prepaid"]
        );
        assert_eq!(s.to_wire(), [0x50, 0x01]);
        let s = s
            .with(StatusWord3::LOCKED_OUT, true)
            .with(StatusWord3::RELAY_OPEN, false);
        assert_eq!(s.0, 0x8140);
        assert!(s.names().contains(&"locked_out"));
    }

    #[test]
    fn recharge_payload_layout() {
        let r = Recharge {
            operator: OperatorCode(0x1234_5678),
            energy_centikwh: 2000,
            purchase_count: 7,
            mac1: [0; 4],
            customer: 101_203,
            mac2: [0; 4],
        };
        let wire = r.to_wire().unwrap();
        assert_eq!(wire.len(), Recharge::LEN);
        assert_eq!(&wire[..4], [0xFF, 0x02, 0x01, 0x07]);
        assert_eq!(&wire[8..12], [0xD0, 0x07, 0, 0]);
        assert_eq!(&wire[12..16], [7, 0, 0, 0]);
        assert_eq!(&wire[20..26], [0x03, 0x12, 0x10, 0, 0, 0]);
        assert_eq!(Recharge::from_wire(&wire).unwrap(), r);
        assert!(
            Recharge {
                customer: Recharge::CUSTOMER_MAX + 1,
                ..r
            }
            .to_wire()
            .is_err()
        );
        assert!(Recharge::from_wire(&wire[..29]).is_err());
        let reply = RechargeReply {
            remaining_centikwh: 3550,
            purchase_count: 7,
        };
        assert_eq!(
            RechargeReply::from_wire(&reply.to_wire().unwrap()).unwrap(),
            reply
        );
    }

    #[test]
    fn formats_of_profile_dis() {
        assert_eq!(Format::of(Di::VOLTAGE), Some(Format::Number(Bcd::VOLTAGE)));
        assert_eq!(Format::of(Di(0x0506_0003)), Some(Format::DateTimeMinutes));
        assert_eq!(
            Format::of(Di(0x0506_0103)),
            Some(Format::EnergyBlock { count: 5 })
        );
        assert_eq!(Format::of(Di(0x0101_0101)), None);
    }
}
