//! Meter communication addresses.

use std::fmt;
use std::str::FromStr;

/// A meter's 6-byte communication address, stored in **wire order**
/// (A0 first, i.e. the nameplate's last two digits first).
///
/// Constructed from the 12-digit nameplate string with [`Address::parse`] (or
/// [`FromStr`]) and shown in nameplate order by [`fmt::Display`], so the
/// reversal happens in exactly one place. A byte `AA` is a wildcard
/// ("缩位寻址"); `99 × 6` is the broadcast address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address([u8; 6]);

/// Why a nameplate string is not an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The string was empty or longer than 12 characters.
    #[error("a meter address has 1 to 12 digits, got {0} characters")]
    Length(usize),
    /// A character was neither a decimal digit nor part of an `AA` wildcard pair.
    #[error("a meter address holds only digits or AA wildcard bytes: {0:?}")]
    Character(String),
}

impl Address {
    /// The broadcast address `99 99 99 99 99 99`; meters never reply to it.
    pub const BROADCAST: Address = Address([0x99; 6]);
    /// The all-wildcard address `AA × 6`, used to read the address of the only
    /// meter on a bus (every meter answers it, so never on a shared bus).
    pub const WILDCARD: Address = Address([0xAA; 6]);
    /// The byte that marks one wildcard position.
    pub const WILDCARD_BYTE: u8 = 0xAA;

    /// Wraps six bytes exactly as they appear on the wire (A0 first).
    pub const fn from_wire(bytes: [u8; 6]) -> Self {
        Address(bytes)
    }

    /// The six bytes as they appear on the wire (A0 first).
    pub const fn to_wire(self) -> [u8; 6] {
        self.0
    }

    /// Parses a nameplate address such as `123456789012`.
    ///
    /// Shorter strings are padded with leading zeros (the standard's rule).
    /// A pair `AA` at an even position from the right is a wildcard byte, so
    /// `AAAAAAAAAAAA` is [`Address::WILDCARD`] and `AAAA12345678` addresses
    /// meters whose low eight digits are 12345678.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        let text = text.trim();
        let len = text.chars().count();
        if len == 0 || len > 12 {
            return Err(AddressError::Length(len));
        }
        // Pad on the left so that pairs line up with bytes.
        let padded = format!("{text:0>12}");
        let chars = padded.as_bytes();
        let mut wire = [0u8; 6];
        for (i, pair) in chars.chunks_exact(2).enumerate() {
            let byte = match pair {
                [b'a' | b'A', b'a' | b'A'] => Self::WILDCARD_BYTE,
                [hi @ b'0'..=b'9', lo @ b'0'..=b'9'] => ((hi - b'0') << 4) | (lo - b'0'),
                _ => return Err(AddressError::Character(text.to_owned())),
            };
            // The nameplate's first pair is the wire's last byte.
            wire[5 - i] = byte;
        }
        Ok(Address(wire))
    }

    /// Whether this is the broadcast address `99 × 6`.
    pub fn is_broadcast(self) -> bool {
        self == Self::BROADCAST
    }

    /// Whether any byte is the `AA` wildcard.
    pub fn has_wildcard(self) -> bool {
        self.0.contains(&Self::WILDCARD_BYTE)
    }

    /// Whether a meter whose real address is `meter` must act on a frame sent
    /// to `self`: equal, broadcast, or equal outside the wildcard bytes.
    pub fn matches(self, meter: Address) -> bool {
        self.is_broadcast()
            || self
                .0
                .iter()
                .zip(meter.0.iter())
                .all(|(&want, &have)| want == Self::WILDCARD_BYTE || want == have)
    }
}

impl fmt::Display for Address {
    /// Nameplate order: the wire's last byte first; wildcard bytes show as `AA`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0.iter().rev() {
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameplate_is_reversed_on_the_wire() {
        let address = Address::parse("123456789012").unwrap();
        assert_eq!(address.to_wire(), [0x12, 0x90, 0x78, 0x56, 0x34, 0x12]);
        assert_eq!(address.to_string(), "123456789012");
    }

    #[test]
    fn go645_capture_address() {
        // protocol-notes §1.2: meter 002241020208 is `08 02 02 41 22 00`.
        let address = Address::parse("002241020208").unwrap();
        assert_eq!(address.to_wire(), [0x08, 0x02, 0x02, 0x41, 0x22, 0x00]);
    }

    #[test]
    fn short_addresses_are_zero_padded() {
        assert_eq!(Address::parse("3").unwrap().to_wire(), [3, 0, 0, 0, 0, 0]);
        assert_eq!(Address::parse("12345").unwrap().to_string(), "000000012345");
    }

    #[test]
    fn wildcard_and_broadcast() {
        assert_eq!(Address::parse("aaaaaaaaaaaa").unwrap(), Address::WILDCARD);
        assert!(Address::parse("999999999999").unwrap().is_broadcast());
        let partial = Address::parse("AAAA56789012").unwrap();
        assert!(partial.has_wildcard());
        assert!(partial.matches(Address::parse("123456789012").unwrap()));
        assert!(!partial.matches(Address::parse("123456789013").unwrap()));
        assert!(Address::WILDCARD.matches(Address::parse("1").unwrap()));
        assert_eq!(partial.to_string(), "AAAA56789012");
    }

    #[test]
    fn rejects_bad_text() {
        assert_eq!(Address::parse(""), Err(AddressError::Length(0)));
        assert_eq!(
            Address::parse("1234567890123"),
            Err(AddressError::Length(13))
        );
        assert!(matches!(
            Address::parse("12345678901x"),
            Err(AddressError::Character(_))
        ));
        // A lone `A` is not a wildcard byte.
        assert!(Address::parse("1A3456789012").is_err());
    }
}
