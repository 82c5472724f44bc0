//! Time on an RS-485 line (protocol-notes §4).

use std::time::Duration;

/// Bits per byte at 8E1: start + 8 data + even parity + stop.
pub const BITS_PER_BYTE: u64 = 11;

/// The standard baud rates, with the feature byte Z of the 17H "change baud"
/// command (a bit field: protocol-notes §1.3; dlt645 3.2.0 gets 4800 and up
/// wrong).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Baud {
    /// 600 bps.
    B600,
    /// 1200 bps (infrared, old meters).
    B1200,
    /// 2400 bps (the RS-485 default).
    B2400,
    /// 4800 bps.
    B4800,
    /// 9600 bps.
    B9600,
    /// 19200 bps.
    B19200,
}

impl Baud {
    /// Every rate, slowest first.
    pub const ALL: [Baud; 6] = [
        Baud::B600,
        Baud::B1200,
        Baud::B2400,
        Baud::B4800,
        Baud::B9600,
        Baud::B19200,
    ];

    /// Bits per second.
    pub const fn bps(self) -> u32 {
        match self {
            Baud::B600 => 600,
            Baud::B1200 => 1200,
            Baud::B2400 => 2400,
            Baud::B4800 => 4800,
            Baud::B9600 => 9600,
            Baud::B19200 => 19200,
        }
    }

    /// The rate for `bps`, if standard.
    pub fn from_bps(bps: u32) -> Option<Baud> {
        Self::ALL.into_iter().find(|b| b.bps() == bps)
    }

    /// Feature byte Z: bit1 = 600 … bit6 = 19200.
    pub const fn feature_byte(self) -> u8 {
        match self {
            Baud::B600 => 0x02,
            Baud::B1200 => 0x04,
            Baud::B2400 => 0x08,
            Baud::B4800 => 0x10,
            Baud::B9600 => 0x20,
            Baud::B19200 => 0x40,
        }
    }

    /// The rate for a feature byte with exactly one known bit set.
    pub fn from_feature_byte(z: u8) -> Option<Baud> {
        Self::ALL.into_iter().find(|b| b.feature_byte() == z)
    }
}

/// Microseconds that `bytes` bytes take on the line at `baud` bps (8E1),
/// rounded up; 0 when `baud` is 0 rather than dividing by zero.
pub const fn wire_time_us(bytes: usize, baud: u32) -> u64 {
    if baud == 0 {
        return 0;
    }
    // Saturating: an absurd length gives a huge time, not a panic.
    (bytes as u64)
        .saturating_mul(BITS_PER_BYTE * 1_000_000)
        .div_ceil(baud as u64)
}

/// The time `bytes` bytes take on the line at `baud` bps: bytes × 11 / baud.
pub const fn wire_time(bytes: usize, baud: u32) -> Duration {
    Duration::from_micros(wire_time_us(bytes, baud))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_notes_table() {
        // §4: a 20-byte request at 2400 bps takes 91.7 ms, 24 bytes 110.0 ms.
        assert_eq!(wire_time_us(20, 2400), 91_667);
        assert_eq!(wire_time_us(24, 2400), 110_000);
        assert_eq!(wire_time(32, 2400).as_micros(), 146_667);
        assert_eq!(wire_time_us(1, 0), 0);
        assert!(wire_time_us(usize::MAX, 600) > 0);
    }

    #[test]
    fn feature_bytes() {
        assert_eq!(Baud::B9600.feature_byte(), 0x20);
        for b in Baud::ALL {
            assert_eq!(Baud::from_feature_byte(b.feature_byte()), Some(b));
            assert_eq!(Baud::from_bps(b.bps()), Some(b));
        }
    }
}
