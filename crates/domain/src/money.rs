//! Money (integer fen), energy (integer 0.01 kWh) and tariffs.
//!
//! Floats never touch money. Prices can have sub-fen precision (0.5283 元/kWh
//! is common), so a unit price is kept in 0.0001 元 = 0.01 fen per kWh.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An amount of money in fen (0.01 元).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Fen(i64);

impl Fen {
    /// An amount of `fen` (negative for a debit or a refund).
    pub const fn new(fen: i64) -> Self {
        Self(fen)
    }

    /// The value in fen.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Fen {
    /// Formats as yuan with two decimals, e.g. `10.60`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", a / 100, a % 100)
    }
}

/// An amount of energy in 0.01 kWh, the resolution of DL/T 645 energy fields.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct CentiKwh(i64);

impl CentiKwh {
    /// An amount of `centikwh` × 0.01 kWh (negative for a debit).
    pub const fn new(centikwh: i64) -> Self {
        Self(centikwh)
    }

    /// The value in 0.01 kWh.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for CentiKwh {
    /// Formats as kWh with two decimals, e.g. `1234.56`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", a / 100, a % 100)
    }
}

/// Why an amount of kWh was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KwhError {
    /// Not a whole number (students buy whole kWh only, S10).
    #[error("enter a whole number of kWh")]
    NotWhole,
    /// Zero or negative.
    #[error("buy at least 1 kWh")]
    TooSmall,
    /// Above the campus maximum for one order.
    #[error("at most {max} kWh per order")]
    TooLarge {
        /// The campus maximum.
        max: u32,
    },
}

/// A whole number of kWh for one order, at least 1 and at most a campus maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct WholeKwh(u32);

impl WholeKwh {
    /// Parses what a student typed; anything but a plain positive integer is refused.
    pub fn parse(input: &str, max: u32) -> Result<Self, KwhError> {
        let s = input.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return Err(KwhError::NotWhole);
        }
        if let Some(digits) = s.strip_prefix('-') {
            let negative_number = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
            return Err(if negative_number {
                KwhError::TooSmall
            } else {
                KwhError::NotWhole
            });
        }
        if s.contains('-') {
            return Err(KwhError::NotWhole);
        }
        // Longer than u32 digits is certainly too large; avoid overflow.
        let Ok(v) = s.parse::<u64>() else {
            return Err(KwhError::TooLarge { max });
        };
        Self::new(v, max)
    }

    /// Checks a numeric amount.
    pub fn new(v: u64, max: u32) -> Result<Self, KwhError> {
        if v == 0 {
            return Err(KwhError::TooSmall);
        }
        if v > u64::from(max) {
            return Err(KwhError::TooLarge { max });
        }
        Ok(Self(
            u32::try_from(v).map_err(|_| KwhError::TooLarge { max })?,
        ))
    }

    /// A stored amount: at least 1, any size that fits (the campus maximum
    /// in force when the order was created was checked then).
    pub fn from_stored(v: i64) -> Option<Self> {
        u32::try_from(v).ok().filter(|&v| v > 0).map(Self)
    }

    /// The number of kWh.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The same energy in 0.01 kWh.
    pub fn centikwh(self) -> CentiKwh {
        CentiKwh::new(i64::from(self.0) * 100)
    }
}

impl fmt::Display for WholeKwh {
    /// The number of kWh, e.g. `20`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A unit price in 0.0001 元 (= 0.01 fen) per kWh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnitPrice(i64);

impl UnitPrice {
    /// A price from its value in 0.0001 元 per kWh; must be positive.
    pub const fn from_centifen_per_kwh(v: i64) -> Option<Self> {
        if v > 0 { Some(Self(v)) } else { None }
    }

    /// A price known when the program is compiled: `const P: UnitPrice =
    /// UnitPrice::fixed(5300);` — a non-positive value fails the build
    /// (const evaluation), never a running program.
    pub const fn fixed(centifen_per_kwh: i64) -> Self {
        match Self::from_centifen_per_kwh(centifen_per_kwh) {
            Some(p) => p,
            None => panic!("a unit price is positive"),
        }
    }

    /// The value in 0.0001 元 (0.01 fen) per kWh.
    pub fn centifen_per_kwh(self) -> i64 {
        self.0
    }

    /// The amount to pay for `kwh`, rounded half up to the fen.
    ///
    /// Rounding rule (documented once, here): the student pays the exact
    /// product rounded to the nearest fen, halves up. With whole kWh and most
    /// tariffs the product is exact anyway.
    pub fn amount_for(self, kwh: WholeKwh) -> Fen {
        let centifen = i128::from(self.0) * i128::from(kwh.get());
        let fen = (centifen + 50) / 100;
        Fen::new(i64::try_from(fen).unwrap_or(i64::MAX))
    }
}

impl fmt::Display for UnitPrice {
    /// Formats as 元/kWh with four decimals, trailing zeros trimmed to two.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 10_000;
        let frac = self.0 % 10_000;
        if frac % 100 == 0 {
            write!(f, "{whole}.{:02}", frac / 100)
        } else {
            write!(f, "{whole}.{frac:04}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_kwh_accepts_only_whole_positive_bounded() {
        assert_eq!(WholeKwh::parse("20", 500).unwrap().get(), 20);
        assert_eq!(WholeKwh::parse(" 7 ", 500).unwrap().get(), 7);
        assert_eq!(WholeKwh::parse("0", 500), Err(KwhError::TooSmall));
        assert_eq!(WholeKwh::parse("-3", 500), Err(KwhError::TooSmall));
        assert_eq!(WholeKwh::parse("2.5", 500), Err(KwhError::NotWhole));
        assert_eq!(WholeKwh::parse("abc", 500), Err(KwhError::NotWhole));
        assert_eq!(WholeKwh::parse("", 500), Err(KwhError::NotWhole));
        assert_eq!(WholeKwh::parse("1-2", 500), Err(KwhError::NotWhole));
        assert_eq!(
            WholeKwh::parse("501", 500),
            Err(KwhError::TooLarge { max: 500 })
        );
        assert_eq!(
            WholeKwh::parse("99999999999999999999999", 500),
            Err(KwhError::TooLarge { max: 500 })
        );
    }

    #[test]
    fn price_rounds_half_up_to_fen() {
        let p = UnitPrice::from_centifen_per_kwh(5283).unwrap(); // 0.5283 元
        assert_eq!(p.amount_for(WholeKwh::new(1, 500).unwrap()), Fen::new(53));
        assert_eq!(
            p.amount_for(WholeKwh::new(20, 500).unwrap()),
            Fen::new(1057)
        ); // 10.566
        let p = UnitPrice::from_centifen_per_kwh(5300).unwrap();
        assert_eq!(
            p.amount_for(WholeKwh::new(20, 500).unwrap()),
            Fen::new(1060)
        );
        assert_eq!(p.to_string(), "0.53");
        assert_eq!(
            UnitPrice::from_centifen_per_kwh(5283).unwrap().to_string(),
            "0.5283"
        );
        assert!(UnitPrice::from_centifen_per_kwh(0).is_none());
    }

    #[test]
    fn display_formats() {
        assert_eq!(Fen::new(1060).to_string(), "10.60");
        assert_eq!(Fen::new(-5).to_string(), "-0.05");
        assert_eq!(CentiKwh::new(123_456).to_string(), "1234.56");
    }
}
