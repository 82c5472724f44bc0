//! Data identifiers (DI3 DI2 DI1 DI0).

use std::fmt;

use crate::value::Format;

/// A 4-byte data identifier, held as the number written `DI3 DI2 DI1 DI0`
/// in the standard's tables (`Di(0x0090_0100)` is "00 90 01 00"); on the wire
/// it goes low byte (DI0) first.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Di(pub u32);

impl Di {
    /// 00 00 00 00 combined active total energy, XXXXXX.XX kWh, sign bit.
    pub const COMBINED_ACTIVE_ENERGY: Di = Di(0x0000_0000);
    /// 00 01 00 00 forward active total energy, XXXXXX.XX kWh.
    pub const FORWARD_ACTIVE_ENERGY: Di = Di(0x0001_0000);
    /// 00 02 00 00 reverse active total energy, XXXXXX.XX kWh.
    pub const REVERSE_ACTIVE_ENERGY: Di = Di(0x0002_0000);
    /// 00 90 01 00 remaining energy, XXXXXX.XX kWh.
    pub const REMAINING_ENERGY: Di = Di(0x0090_0100);
    /// 00 90 01 01 overdraft energy used, XXXXXX.XX kWh.
    pub const OVERDRAFT_ENERGY: Di = Di(0x0090_0101);
    /// 00 90 02 00 remaining money, XXXXXX.XX yuan (money-prepaid meters).
    pub const REMAINING_MONEY: Di = Di(0x0090_0200);
    /// 02 01 01 00 phase-A voltage, XXX.X V.
    pub const VOLTAGE: Di = Di(0x0201_0100);
    /// 02 02 01 00 phase-A current, XXX.XXX A, sign bit.
    pub const CURRENT: Di = Di(0x0202_0100);
    /// 02 03 00 00 total active power, XX.XXXX kW, sign bit.
    pub const ACTIVE_POWER: Di = Di(0x0203_0000);
    /// 02 03 01 00 phase-A active power, XX.XXXX kW, sign bit.
    pub const ACTIVE_POWER_A: Di = Di(0x0203_0100);
    /// 02 06 00 00 total power factor, X.XXX, sign bit.
    pub const POWER_FACTOR: Di = Di(0x0206_0000);
    /// 02 80 00 02 frequency, XX.XX Hz.
    pub const FREQUENCY: Di = Di(0x0280_0002);
    /// 04 00 01 01 date and weekday, YYMMDDWW.
    pub const DATE: Di = Di(0x0400_0101);
    /// 04 00 01 02 time, hhmmss.
    pub const TIME: Di = Di(0x0400_0102);
    /// 04 00 01 0C date, weekday and time, YYMMDDWWhhmmss.
    pub const DATE_WEEK_TIME: Di = Di(0x0400_010C);
    /// 04 00 04 01 communication address, 6 bytes.
    pub const COMM_ADDRESS: Di = Di(0x0400_0401);
    /// 04 00 04 02 meter number (表号), 12 digits.
    pub const METER_NUMBER: Di = Di(0x0400_0402);
    /// 04 00 05 03 running status word 3 (relay state), see [`crate::value::StatusWord3`].
    pub const STATUS_WORD_3: Di = Di(0x0400_0503);
    /// 04 00 0F 01 alarm energy 1, XXXXXX.XX kWh.
    pub const ALARM_ENERGY_1: Di = Di(0x0400_0F01);
    /// 04 00 0F 02 alarm energy 2, XXXXXX.XX kWh.
    pub const ALARM_ENERGY_2: Di = Di(0x0400_0F02);
    /// 04 00 0F 03 hoarding limit (largest remaining energy), XXXXXX.XX kWh.
    pub const HOARDING_LIMIT: Di = Di(0x0400_0F03);
    /// 04 00 0F 04 overdraft limit, XXXXXX.XX kWh.
    pub const OVERDRAFT_LIMIT: Di = Di(0x0400_0F04);
    /// 03 32 01 01 time of the last purchase, YYMMDDhhmm.
    pub const LAST_PURCHASE_TIME: Di = Di(0x0332_0101);
    /// 03 32 02 01 total purchase count after the last purchase, NNNN.
    pub const PURCHASE_COUNT: Di = Di(0x0332_0201);
    /// 03 32 03 01 energy of the last purchase, XXXXXX.XX kWh.
    pub const LAST_PURCHASE_ENERGY: Di = Di(0x0332_0301);
    /// 03 32 04 01 remaining energy before the last purchase, XXXXXX.XX kWh.
    pub const REMAINING_BEFORE_PURCHASE: Di = Di(0x0332_0401);
    /// 03 32 05 01 remaining energy after the last purchase, XXXXXX.XX kWh.
    pub const REMAINING_AFTER_PURCHASE: Di = Di(0x0332_0501);
    /// 03 32 06 01 cumulative purchased energy, XXXXXX.XX kWh.
    pub const CUMULATIVE_PURCHASED_ENERGY: Di = Di(0x0332_0601);
    /// 05 06 00 01 time of the last daily freeze, YYMMDDhhmm.
    pub const LAST_DAILY_FREEZE_TIME: Di = Di(0x0506_0001);
    /// 05 06 01 01 forward active energy block at the last daily freeze.
    pub const LAST_DAILY_FREEZE_ENERGY: Di = Di(0x0506_0101);
    /// 1D 00 01 01 last trip event (first field YYMMDDhhmmss).
    pub const LAST_TRIP_EVENT: Di = Di(0x1D00_0101);
    /// 1E 00 01 01 last close event (first field YYMMDDhhmmss).
    pub const LAST_CLOSE_EVENT: Di = Di(0x1E00_0101);
    /// (vendor) 04 A0 01 01 power limit, XX.XXXX kW.
    pub const POWER_LIMIT: Di = Di(0x04A0_0101);
    /// (vendor) 04 A0 01 02 malicious-load power step, XXXX W.
    pub const MALICIOUS_LOAD_STEP: Di = Di(0x04A0_0102);
    /// (vendor) 04 A0 01 03 malicious-load increment power-factor threshold, X.XXX.
    pub const MALICIOUS_LOAD_PF_THRESHOLD: Di = Di(0x04A0_0103);
    /// (vendor) 04 A0 01 04 auto-restore delay, NNNN minutes.
    pub const AUTO_RESTORE_DELAY: Di = Di(0x04A0_0104);
    /// (vendor) 04 A0 01 05 trips per day before lockout, NN.
    pub const TRIPS_BEFORE_LOCKOUT: Di = Di(0x04A0_0105);
    /// (vendor) 04 A0 02 01 malicious-load trip count since install, NNNN.
    pub const MALICIOUS_LOAD_TRIPS: Di = Di(0x04A0_0201);
    /// (vendor) 04 A0 02 02 over-power trip count since install, NNNN.
    pub const OVER_POWER_TRIPS: Di = Di(0x04A0_0202);
    /// (vendor) 04 A0 02 03 time of the last malicious-load trip, YYMMDDhhmmss.
    pub const LAST_MALICIOUS_LOAD_TRIP: Di = Di(0x04A0_0203);
    /// (vendor) 07 01 02 FF recharge, sent with C = 03H; see [`crate::value::Recharge`].
    pub const RECHARGE: Di = Di(0x0701_02FF);

    /// How many daily freezes a meter keeps (n = 1..=62, protocol-notes §2.5).
    pub const DAILY_FREEZES_MAX: u8 = 62;

    /// 05 06 00 nn: time of the `n`-th last daily freeze (1 = the latest), or
    /// `None` outside 1..=62.
    pub fn daily_freeze_time(n: u8) -> Option<Di> {
        (1..=Self::DAILY_FREEZES_MAX)
            .contains(&n)
            .then(|| Di(0x0506_0000 | u32::from(n)))
    }

    /// 05 06 01 nn: forward active energy block (total + 4 tariffs) at the
    /// `n`-th last daily freeze, or `None` outside 1..=62.
    pub fn daily_freeze_energy(n: u8) -> Option<Di> {
        (1..=Self::DAILY_FREEZES_MAX)
            .contains(&n)
            .then(|| Di(0x0506_0100 | u32::from(n)))
    }

    /// 04 00 0C nn: the password of `level` 0..=9 (nn = level + 1; dlt645
    /// 3.2.0 gets this wrong, protocol-notes §5 discrepancy 3).
    pub fn password(level: u8) -> Option<Di> {
        (level <= 9).then(|| Di(0x0400_0C01 + u32::from(level)))
    }

    /// The four wire bytes, DI0 first.
    pub const fn to_le_bytes(self) -> [u8; 4] {
        self.0.to_le_bytes()
    }

    /// Reads a DI from the first four bytes of `bytes` (DI0 first).
    pub fn from_le_bytes(bytes: &[u8]) -> Option<Di> {
        let four: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
        Some(Di(u32::from_le_bytes(four)))
    }

    /// For `05 06 0x nn`, the freeze index nn; else `None`.
    pub fn daily_freeze_index(self) -> Option<u8> {
        let [di0, di1, di2, di3] = self.to_le_bytes();
        (di3 == 0x05 && di2 == 0x06 && di1 <= 0x01 && (1..=Self::DAILY_FREEZES_MAX).contains(&di0))
            .then_some(di0)
    }

    /// A short English name for the DIs of the reference profile.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Di::COMBINED_ACTIVE_ENERGY => "combined active energy",
            Di::FORWARD_ACTIVE_ENERGY => "forward active energy",
            Di::REVERSE_ACTIVE_ENERGY => "reverse active energy",
            Di::REMAINING_ENERGY => "remaining energy",
            Di::OVERDRAFT_ENERGY => "overdraft energy",
            Di::REMAINING_MONEY => "remaining money",
            Di::VOLTAGE => "voltage",
            Di::CURRENT => "current",
            Di::ACTIVE_POWER => "active power",
            Di::ACTIVE_POWER_A => "phase-A active power",
            Di::POWER_FACTOR => "power factor",
            Di::FREQUENCY => "frequency",
            Di::DATE => "date",
            Di::TIME => "time",
            Di::DATE_WEEK_TIME => "date, weekday and time",
            Di::COMM_ADDRESS => "communication address",
            Di::METER_NUMBER => "meter number",
            Di::STATUS_WORD_3 => "status word 3",
            Di::ALARM_ENERGY_1 => "alarm energy 1",
            Di::ALARM_ENERGY_2 => "alarm energy 2",
            Di::HOARDING_LIMIT => "hoarding limit",
            Di::OVERDRAFT_LIMIT => "overdraft limit",
            Di::LAST_PURCHASE_TIME => "last purchase time",
            Di::PURCHASE_COUNT => "purchase count",
            Di::LAST_PURCHASE_ENERGY => "last purchase energy",
            Di::REMAINING_BEFORE_PURCHASE => "remaining before last purchase",
            Di::REMAINING_AFTER_PURCHASE => "remaining after last purchase",
            Di::CUMULATIVE_PURCHASED_ENERGY => "cumulative purchased energy",
            Di::LAST_TRIP_EVENT => "last trip event",
            Di::LAST_CLOSE_EVENT => "last close event",
            Di::POWER_LIMIT => "power limit",
            Di::MALICIOUS_LOAD_STEP => "malicious-load power step",
            Di::MALICIOUS_LOAD_PF_THRESHOLD => "malicious-load power-factor threshold",
            Di::AUTO_RESTORE_DELAY => "auto-restore delay",
            Di::TRIPS_BEFORE_LOCKOUT => "trips per day before lockout",
            Di::MALICIOUS_LOAD_TRIPS => "malicious-load trip count",
            Di::OVER_POWER_TRIPS => "over-power trip count",
            Di::LAST_MALICIOUS_LOAD_TRIP => "last malicious-load trip time",
            Di::RECHARGE => "recharge",
            other => match (other.daily_freeze_index(), other.0 >> 8) {
                (Some(_), 0x0005_0600) => "daily freeze time",
                (Some(_), 0x0005_0601) => "daily freeze forward active energy",
                _ => return None,
            },
        })
    }

    /// The value format of this DI's read reply, for the DIs of the reference
    /// profile.
    pub fn format(self) -> Option<Format> {
        Format::of(self)
    }
}

impl fmt::Display for Di {
    /// Eight hex digits, DI3 first, as in the standard's tables.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}", self.0)
    }
}

impl fmt::Debug for Di {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Di({:08X})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_order_is_di0_first() {
        assert_eq!(Di::REMAINING_ENERGY.to_le_bytes(), [0x00, 0x01, 0x90, 0x00]);
        assert_eq!(
            Di::from_le_bytes(&[0x03, 0x05, 0x00, 0x04, 0xFF]),
            Some(Di::STATUS_WORD_3)
        );
        assert_eq!(Di::from_le_bytes(&[0x03]), None);
        assert_eq!(Di::RECHARGE.to_string(), "070102FF");
    }

    #[test]
    fn indexed_dis() {
        assert_eq!(Di::daily_freeze_time(1), Some(Di::LAST_DAILY_FREEZE_TIME));
        assert_eq!(Di::daily_freeze_energy(0x3E), Some(Di(0x0506_013E)));
        assert_eq!(Di::daily_freeze_energy(63), None);
        assert_eq!(Di::daily_freeze_time(0), None);
        assert_eq!(Di::password(2), Some(Di(0x0400_0C03)));
        assert_eq!(Di::password(10), None);
        assert_eq!(
            Di(0x0506_0105).name(),
            Some("daily freeze forward active energy")
        );
        assert_eq!(Di(0x0506_0205).name(), None);
    }
}
