//! Typed errors: why bytes are not a frame, and the meters' own error words.

use std::fmt;

/// Why bytes do not decode as a DL/T 645-2007 frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// More bytes are needed; `needed` is a lower bound on how many more.
    #[error("incomplete frame: at least {needed} more bytes needed")]
    Incomplete {
        /// At least this many more bytes are needed.
        needed: usize,
    },
    /// The first byte after any `FE` preamble is not the start byte 68H.
    #[error("expected start byte 68, found {found:02X}")]
    NoStart {
        /// The byte found instead.
        found: u8,
    },
    /// Byte 7 of the frame is not the second 68H.
    #[error("expected second start byte 68 after the address, found {found:02X}")]
    NoSecondStart {
        /// The byte found instead.
        found: u8,
    },
    /// The byte after the checksum is not the end byte 16H.
    #[error("expected end byte 16, found {found:02X}")]
    NoEnd {
        /// The byte found instead.
        found: u8,
    },
    /// The checksum byte does not match the sum of the frame.
    #[error("bad checksum: frame says {found:02X}, bytes sum to {computed:02X}")]
    BadChecksum {
        /// The checksum byte in the frame.
        found: u8,
        /// The checksum computed from the frame.
        computed: u8,
    },
    /// The frame is well formed but its function code is not DL/T 645-2007's.
    #[error("unknown function code {code:02X} (control byte {control:02X})")]
    UnknownFunction {
        /// The 5-bit function code.
        code: u8,
        /// The whole control byte.
        control: u8,
    },
}

/// Why a frame or value cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The data field holds more than 255 bytes; L is a single byte.
    #[error("data field of {0} bytes does not fit the one-byte length L")]
    DataTooLong(usize),
    /// A value does not fit its field (too many digits, negative where
    /// unsigned, a month of 13, ...).
    #[error("value out of range: {0}")]
    OutOfRange(String),
    /// A field holds bytes that are not packed BCD.
    #[error("not BCD: {0:02X?}")]
    NotBcd(Vec<u8>),
    /// A field has the wrong number of bytes.
    #[error("expected {expected} bytes, got {got}")]
    Length {
        /// The length the field needs.
        expected: usize,
        /// The length given.
        got: usize,
    },
}

/// The ERR byte of an abnormal reply (protocol-notes §1.4).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorFlags(pub u8);

impl ErrorFlags {
    /// bit0: other error.
    pub const OTHER: ErrorFlags = ErrorFlags(0x01);
    /// bit1: no requested data (unknown DI).
    pub const NO_DATA: ErrorFlags = ErrorFlags(0x02);
    /// bit2: wrong password / unauthorised.
    pub const PASSWORD: ErrorFlags = ErrorFlags(0x04);
    /// bit3: baud rate cannot be changed.
    pub const BAUD: ErrorFlags = ErrorFlags(0x08);
    /// bit4: too many year time zones.
    pub const TOO_MANY_ZONES: ErrorFlags = ErrorFlags(0x10);
    /// bit5: too many day periods.
    pub const TOO_MANY_PERIODS: ErrorFlags = ErrorFlags(0x20);
    /// bit6: too many tariffs.
    pub const TOO_MANY_TARIFFS: ErrorFlags = ErrorFlags(0x40);
    /// bit7: reserved; one vendor uses it for "programming key not pressed".
    pub const RESERVED7: ErrorFlags = ErrorFlags(0x80);

    const NAMES: [&'static str; 8] = [
        "other",
        "no_data",
        "password",
        "baud",
        "too_many_zones",
        "too_many_periods",
        "too_many_tariffs",
        "reserved_bit7",
    ];

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: ErrorFlags) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    /// Names of the set bits, low bit first.
    pub fn names(self) -> Vec<&'static str> {
        (0..8)
            .filter(|bit| self.0 & (1 << bit) != 0)
            .map(|bit| Self::NAMES[bit])
            .collect()
    }
}

impl fmt::Debug for ErrorFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ErrorFlags({:02X} {:?})", self.0, self.names())
    }
}

impl fmt::Display for ErrorFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ERR={:02X}", self.0)?;
        for name in self.names() {
            write!(f, " {name}")?;
        }
        Ok(())
    }
}

/// The 2-byte SERR word of an abnormal reply to a 03H security/recharge
/// command (protocol-notes §1.4), low byte first on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecurityErrorFlags(pub u16);

impl SecurityErrorFlags {
    /// bit0: other error.
    pub const OTHER: SecurityErrorFlags = SecurityErrorFlags(0x0001);
    /// bit1: repeat recharge (the count equals the meter's).
    pub const REPEAT_RECHARGE: SecurityErrorFlags = SecurityErrorFlags(0x0002);
    /// bit2: ESAM verification failed.
    pub const ESAM: SecurityErrorFlags = SecurityErrorFlags(0x0004);
    /// bit3: identity authentication failed.
    pub const AUTHENTICATION: SecurityErrorFlags = SecurityErrorFlags(0x0008);
    /// bit4: customer number mismatch.
    pub const CUSTOMER_MISMATCH: SecurityErrorFlags = SecurityErrorFlags(0x0010);
    /// bit5: recharge count error (neither the next count nor a repeat).
    pub const COUNT_ERROR: SecurityErrorFlags = SecurityErrorFlags(0x0020);
    /// bit6: the purchase would exceed the hoarding limit.
    pub const HOARDING_LIMIT: SecurityErrorFlags = SecurityErrorFlags(0x0040);

    const NAMES: [&'static str; 7] = [
        "other",
        "repeat_recharge",
        "esam",
        "authentication",
        "customer_mismatch",
        "count_error",
        "hoarding_limit",
    ];

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: SecurityErrorFlags) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    /// Names of the set bits, low bit first; reserved bits show as `bitN`.
    pub fn names(self) -> Vec<String> {
        (0..16)
            .filter(|bit| self.0 & (1 << bit) != 0)
            .map(|bit| match Self::NAMES.get(bit) {
                Some(name) => (*name).to_owned(),
                None => format!("bit{bit}"),
            })
            .collect()
    }

    /// The two wire bytes (before the +33H offset), low byte first.
    pub const fn to_le_bytes(self) -> [u8; 2] {
        self.0.to_le_bytes()
    }
}

impl fmt::Debug for SecurityErrorFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecurityErrorFlags({:04X} {:?})", self.0, self.names())
    }
}

impl fmt::Display for SecurityErrorFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SERR={:04X}", self.0)?;
        for name in self.names() {
            write!(f, " {name}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_names() {
        assert_eq!(ErrorFlags(0x06).names(), ["no_data", "password"]);
        assert!(ErrorFlags(0x06).contains(ErrorFlags::PASSWORD));
        assert!(!ErrorFlags(0x06).contains(ErrorFlags::OTHER));
        assert_eq!(
            SecurityErrorFlags(0x0102).names(),
            ["repeat_recharge".to_owned(), "bit8".to_owned()]
        );
        assert_eq!(
            SecurityErrorFlags::COUNT_ERROR.to_string(),
            "SERR=0020 count_error"
        );
    }
}
