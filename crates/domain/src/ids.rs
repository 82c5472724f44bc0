//! Identifiers and the meter address newtype.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            /// The id of row `id`.
            pub const fn new(id: i64) -> Self {
                Self(id)
            }

            /// The row id.
            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            /// The row id, honouring width and fill (`{:024}`).
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

id_type!(
    /// A school or campus ("所属区域").
    AreaId
);
id_type!(
    /// A dormitory building.
    BuildingId
);
id_type!(
    /// A room in a building.
    RoomId
);
id_type!(
    /// A serial-to-TCP gateway or concentrator.
    GatewayId
);
id_type!(
    /// One RS485 bus behind a gateway.
    BusId
);
id_type!(
    /// A prepaid meter (the database row, not its wire address).
    MeterId
);
id_type!(
    /// A student (a WeChat user of the pages).
    StudentId
);
id_type!(
    /// A purchase order.
    OrderId
);
id_type!(
    /// A durable job (`store::jobs`: deliveries and the like).
    JobId
);

/// Why a meter address was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The address was not exactly 12 decimal digits.
    #[error("a meter number has exactly 12 digits")]
    Invalid,
}

/// A meter's 12-digit address as printed on its nameplate ("电表编号").
///
/// The nameplate order is the human order; DL/T 645 sends the six BCD bytes
/// low byte first, which is the codec's business, not this type's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MeterAddress([u8; 12]);

impl MeterAddress {
    /// Parses a nameplate number; spaces are ignored because people copy it
    /// in groups ("1234 5678 9012").
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        let mut out = [0u8; 12];
        let mut n = 0;
        for c in s.chars().filter(|c| !c.is_whitespace()) {
            if !c.is_ascii_digit() || n == 12 {
                return Err(AddressError::Invalid);
            }
            out[n] = c as u8;
            n += 1;
        }
        if n != 12 {
            return Err(AddressError::Invalid);
        }
        Ok(Self(out))
    }

    /// The address made of the last 12 decimal digits of `n` (zero-padded):
    /// every `u64` gives one, so a computed address needs no error path.
    pub fn from_low_digits(n: u64) -> Self {
        let mut out = [b'0'; 12];
        let mut rest = n;
        for d in out.iter_mut().rev() {
            *d = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        Self(out)
    }

    /// The 12 digits in nameplate order.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("000000000000")
    }
}

impl fmt::Display for MeterAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for MeterAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MeterAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_parses_nameplate_forms() {
        assert_eq!(
            MeterAddress::parse("123456789012").unwrap().as_str(),
            "123456789012"
        );
        assert_eq!(
            MeterAddress::parse("1234 5678 9012").unwrap().as_str(),
            "123456789012"
        );
        assert!(MeterAddress::parse("12345678901").is_err());
        assert!(MeterAddress::parse("1234567890123").is_err());
        assert!(MeterAddress::parse("12345678901a").is_err());
        assert!(MeterAddress::parse("").is_err());
    }
}
