//! The service-hall counter (S16): how a counter sale was paid, and the
//! cash-up arithmetic of a shift.
//!
//! Both cash and card sales are `order::Channel::Counter` orders (one
//! delivery and ledger path); the tender says which drawer the money is in
//! and is stored with the sale's link to its shift (`store::shifts`).

use crate::Fen;
use std::fmt;

/// How the student paid at the counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tender {
    /// Banknotes and coins: counted into the cash-up.
    Cash,
    /// A bank card on the counter's terminal: settled by the bank.
    Card,
}

impl Tender {
    /// Both, in the order the console lists them.
    pub const ALL: [Tender; 2] = [Tender::Cash, Tender::Card];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tender::Cash => "cash",
            Tender::Card => "card",
        }
    }

    /// Parses the stored (or posted) name.
    pub fn parse(s: &str) -> Option<Tender> {
        Tender::ALL.into_iter().find(|t| t.as_str() == s.trim())
    }
}

impl fmt::Display for Tender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Most cash one cash-up may count: ¥10,000,000.00 (a typo guard, not a policy).
pub const COUNTED_CASH_FEN_MAX: i64 = 1_000_000_000;

/// Why a counted amount was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CashError {
    /// Not a yuan amount with at most two decimals.
    #[error("enter the cash counted in yuan, e.g. 300 or 299.50")]
    NotAnAmount,
    /// Negative or above [`COUNTED_CASH_FEN_MAX`].
    #[error("the cash counted is out of range")]
    OutOfRange,
}

/// Parses the cash counted as typed — yuan with up to two decimals
/// (`300`, `299.5`, `299.50`; full-width digits and spaces tolerated) —
/// into fen.
pub fn parse_counted_cash(input: &str) -> Result<Fen, CashError> {
    let s: String = input
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            '．' => '.',
            other => other,
        })
        .collect();
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, f),
        None => (s.as_str(), ""),
    };
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 2
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (s.contains('.') && frac.is_empty())
    {
        return Err(CashError::NotAnAmount);
    }
    if whole.len() > 12 {
        return Err(CashError::OutOfRange);
    }
    let yuan: i64 = whole.parse().map_err(|_| CashError::NotAnAmount)?;
    let mut cents: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| CashError::NotAnAmount)?
    };
    if frac.len() == 1 {
        cents *= 10;
    }
    let fen = yuan
        .checked_mul(100)
        .and_then(|f| f.checked_add(cents))
        .ok_or(CashError::OutOfRange)?;
    if fen > COUNTED_CASH_FEN_MAX {
        return Err(CashError::OutOfRange);
    }
    Ok(Fen::new(fen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenders_round_trip() {
        for t in Tender::ALL {
            assert_eq!(Tender::parse(t.as_str()), Some(t));
        }
        assert_eq!(Tender::parse("wechat"), None);
    }

    #[test]
    fn counted_cash_in_yuan() {
        assert_eq!(parse_counted_cash("300"), Ok(Fen::new(30_000)));
        assert_eq!(parse_counted_cash(" 299.5 "), Ok(Fen::new(29_950)));
        assert_eq!(parse_counted_cash("０.０５"), Ok(Fen::new(5)));
        assert_eq!(parse_counted_cash("0"), Ok(Fen::new(0)));
        for bad in ["", "-1", "1.234", "abc", "1.", ".5", "1e3", "1,000"] {
            assert_eq!(
                parse_counted_cash(bad),
                Err(CashError::NotAnAmount),
                "{bad}"
            );
        }
        assert_eq!(
            parse_counted_cash("99999999999"),
            Err(CashError::OutOfRange)
        );
    }
}
