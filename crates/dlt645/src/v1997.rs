//! Recognising DL/T 645-1997 frames (protocol-notes §1.6), so that
//! [`crate::describe`] can name them instead of calling them unknown.
//!
//! The link layer is the same as 2007's; what differs is the function codes
//! (read is 01H, not 11H) and the data identifiers, which are two bytes
//! (DI1 DI0, low byte first on the wire). This codec does not *speak* 1997 —
//! the head-end and simulator are 2007 only — it only explains captures
//! from older meters that a field engineer meets on the same bus.

use std::fmt;

use crate::Control;
use crate::value::{Bcd, Format};

/// DL/T 645-1997 function codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Function1997 {
    /// 01H read data.
    Read = 0x01,
    /// 02H read follow-up data.
    ReadFollowUp = 0x02,
    /// 03H re-read data.
    Reread = 0x03,
    /// 04H write data.
    Write = 0x04,
    /// 08H broadcast time.
    BroadcastTime = 0x08,
    /// 0AH write address.
    WriteAddress = 0x0A,
    /// 0CH change baud rate.
    ChangeBaud = 0x0C,
    /// 0FH change password.
    ChangePassword = 0x0F,
    /// 10H maximum-demand clear.
    ClearDemand = 0x10,
}

impl Function1997 {
    /// The codes that exist only in 1997: a control byte with one of these
    /// is a 1997 frame. 03H and 08H exist in both (03H is 2007's security
    /// command, 08H broadcast time in both), so they are read as 2007.
    const ONLY_1997: [Function1997; 7] = [
        Function1997::Read,
        Function1997::ReadFollowUp,
        Function1997::Write,
        Function1997::WriteAddress,
        Function1997::ChangeBaud,
        Function1997::ChangePassword,
        Function1997::ClearDemand,
    ];

    /// The 1997 function of a control byte whose code exists only in 1997.
    pub fn of(control: Control) -> Option<Function1997> {
        let code = control.function_code();
        Self::ONLY_1997.into_iter().find(|f| *f as u8 == code)
    }

    /// A short English name, as [`crate::Function::name`].
    pub const fn name(self) -> &'static str {
        match self {
            Function1997::Read => "read",
            Function1997::ReadFollowUp => "read_follow_up",
            Function1997::Reread => "reread",
            Function1997::Write => "write",
            Function1997::BroadcastTime => "broadcast_time",
            Function1997::WriteAddress => "write_address",
            Function1997::ChangeBaud => "change_baud",
            Function1997::ChangePassword => "change_password",
            Function1997::ClearDemand => "clear_demand",
        }
    }

    /// Whether the data field starts with a 2-byte DI.
    pub const fn carries_di(self) -> bool {
        matches!(
            self,
            Function1997::Read
                | Function1997::ReadFollowUp
                | Function1997::Reread
                | Function1997::Write
        )
    }
}

/// A DL/T 645-1997 data identifier, written DI1 DI0 (`Di1997(0x9010)`);
/// DI0 goes first on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Di1997(pub u16);

const fn bcd(bytes: u8, decimals: u8, unit: &'static str) -> Format {
    Format::Number(Bcd {
        bytes,
        decimals,
        signed: false,
        unit,
    })
}

impl Di1997 {
    /// 9010 forward active total energy, XXXXXX.XX kWh.
    pub const FORWARD_ACTIVE_ENERGY: Di1997 = Di1997(0x9010);
    /// 901F forward active energy block: total, then tariffs 1–4.
    pub const FORWARD_ACTIVE_BLOCK: Di1997 = Di1997(0x901F);
    /// 9020 reverse active total energy, XXXXXX.XX kWh.
    pub const REVERSE_ACTIVE_ENERGY: Di1997 = Di1997(0x9020);
    /// B611 phase-A voltage, XXX V.
    pub const VOLTAGE_A: Di1997 = Di1997(0xB611);
    /// B621 phase-A current, XX.XX A.
    pub const CURRENT_A: Di1997 = Di1997(0xB621);
    /// B630 total active power, XX.XXXX kW.
    pub const ACTIVE_POWER: Di1997 = Di1997(0xB630);
    /// B650 total power factor, X.XXX.
    pub const POWER_FACTOR: Di1997 = Di1997(0xB650);
    /// C010 date and weekday, YYMMDDWW.
    pub const DATE: Di1997 = Di1997(0xC010);
    /// C011 time, hhmmss.
    pub const TIME: Di1997 = Di1997(0xC011);
    /// C020 meter running status byte.
    pub const STATUS: Di1997 = Di1997(0xC020);
    /// C030 meter constant (active), NNNNNN imp/kWh.
    pub const CONSTANT: Di1997 = Di1997(0xC030);
    /// C032 meter number, 12 digits.
    pub const METER_NUMBER: Di1997 = Di1997(0xC032);
    /// C033 customer number, 12 digits.
    pub const CUSTOMER_NUMBER: Di1997 = Di1997(0xC033);

    /// Reads a DI from the first two bytes of `bytes` (DI0 first).
    pub fn from_le_bytes(bytes: &[u8]) -> Option<Di1997> {
        let two: [u8; 2] = bytes.get(..2)?.try_into().ok()?;
        Some(Di1997(u16::from_le_bytes(two)))
    }

    /// A short English name for the common DIs.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x9010 => "forward active total energy",
            0x9011..=0x9014 => "forward active energy, tariff",
            0x901F => "forward active energy block",
            0x9020 => "reverse active total energy",
            0x902F => "reverse active energy block",
            0xB611 => "phase-A voltage",
            0xB612 => "phase-B voltage",
            0xB613 => "phase-C voltage",
            0xB621 => "phase-A current",
            0xB622 => "phase-B current",
            0xB623 => "phase-C current",
            0xB630 => "total active power",
            0xB650 => "total power factor",
            0xC010 => "date",
            0xC011 => "time",
            0xC020 => "status byte",
            0xC030 => "meter constant",
            0xC032 => "meter number",
            0xC033 => "customer number",
            _ => return None,
        })
    }

    /// The value format of a read reply, for the DIs this codec knows.
    /// The status byte has none: it is bits, shown in hex.
    pub fn format(self) -> Option<Format> {
        Some(match self.0 {
            0x9010..=0x9014 | 0x9020..=0x9024 => bcd(4, 2, "kWh"),
            0x901F | 0x902F => Format::EnergyBlock { count: 5 },
            0xB611..=0xB613 => bcd(2, 0, "V"),
            0xB621..=0xB623 => bcd(2, 2, "A"),
            0xB630 => bcd(3, 4, "kW"),
            0xB650 => bcd(2, 3, ""),
            0xC010 => Format::Date,
            0xC011 => Format::Time,
            0xC030 => bcd(3, 0, "imp/kWh"),
            0xC032 | 0xC033 => Format::Address,
            _ => return None,
        })
    }
}

impl fmt::Display for Di1997 {
    /// Four hex digits, DI1 first, as in the 1997 tables.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X}", self.0)
    }
}

impl fmt::Debug for Di1997 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Di1997({:04X})", self.0)
    }
}

/// Names of the 1997 ERR bits (protocol-notes §1.6): 0 illegal data, 1 DI
/// error, 2 password error, 4/5/6 zone/period/tariff count exceeded.
pub fn error_names(err: u8) -> Vec<&'static str> {
    const NAMES: [&str; 8] = [
        "illegal_data",
        "di_error",
        "password",
        "reserved_bit3",
        "too_many_zones",
        "too_many_periods",
        "too_many_tariffs",
        "reserved_bit7",
    ];
    (0..8)
        .filter(|bit| err & (1 << bit) != 0)
        .map(|bit| NAMES[bit])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_1997_codes_are_taken_for_1997() {
        assert_eq!(
            Function1997::of(Control::from_byte(0x01)),
            Some(Function1997::Read)
        );
        assert_eq!(
            Function1997::of(Control::from_byte(0x81)),
            Some(Function1997::Read)
        );
        assert_eq!(
            Function1997::of(Control::from_byte(0xC1)),
            Some(Function1997::Read)
        );
        // 2007 codes, and the two codes both versions share.
        for c in [0x11, 0x91, 0x03, 0x08, 0x1C] {
            assert_eq!(Function1997::of(Control::from_byte(c)), None, "{c:02X}");
        }
    }

    #[test]
    fn dis_read_low_byte_first() {
        assert_eq!(
            Di1997::from_le_bytes(&[0x11, 0xB6, 0x00]),
            Some(Di1997::VOLTAGE_A)
        );
        assert_eq!(Di1997::VOLTAGE_A.to_string(), "B611");
        assert_eq!(Di1997::from_le_bytes(&[0x10]), None);
        assert_eq!(error_names(0x06), ["di_error", "password"]);
    }
}
