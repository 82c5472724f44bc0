//! The double-entry ledger of money (fen) and energy (0.01 kWh).
//!
//! Every movement is a [`Transfer`] of a positive amount from a debit account
//! to a credit account, so Σ debits = Σ credits holds by construction per
//! unit (invariant I1 of reliability.md); an account's balance is its credits
//! minus its debits. Each business event produces a fixed set of transfers,
//! one per [`TransferKind`], and the store keeps at most one transfer per
//! (order, kind) with a unique constraint (I2).
//!
//! Chart of accounts:
//! - `wx_clearing`, `counter_cash`: money taken in, by channel (go negative:
//!   they are the sources of money entering the system);
//! - `prepaid`: money paid for orders whose energy has not reached a meter;
//! - `revenue`: money of orders whose energy was confirmed by the meter;
//! - `refunds`: money returned to payers;
//! - `energy_issued`: source of energy sold (goes negative);
//! - `in_flight:<meter>`: energy sold, not yet confirmed by the meter;
//! - `delivered:<meter>`: energy confirmed by the meter.

use crate::order::Channel;
use crate::{CentiKwh, Fen, MeterId};

/// The unit a transfer counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Money in fen.
    Fen,
    /// Energy in 0.01 kWh.
    CentiKwh,
}

impl Unit {
    /// Stable stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fen => "fen",
            Self::CentiKwh => "centikwh",
        }
    }
}

/// What caused a transfer; at most one transfer per (order, kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferKind {
    /// Money received for an order.
    PaymentReceived,
    /// Energy sold and owed to the meter.
    EnergyIssued,
    /// The meter confirmed the energy.
    EnergyDelivered,
    /// Prepaid money became revenue on delivery.
    RevenueRecognised,
    /// Energy owed was cancelled because the order was refunded.
    EnergyVoided,
    /// Money returned to the payer.
    Refund,
    /// A replaced meter's remaining energy, owed to its successor (one per
    /// replacement, not per order).
    EnergyCarried,
    /// The successor confirmed the carried energy.
    CarryDelivered,
    /// A room's free monthly allowance, owed to its meter (one per
    /// subsidy, not per order).
    SubsidyCredited,
    /// The meter confirmed the allowance.
    SubsidyDelivered,
}

impl TransferKind {
    /// Stable stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PaymentReceived => "payment_received",
            Self::EnergyIssued => "energy_issued",
            Self::EnergyDelivered => "energy_delivered",
            Self::RevenueRecognised => "revenue_recognised",
            Self::EnergyVoided => "energy_voided",
            Self::Refund => "refund",
            Self::EnergyCarried => "energy_carried",
            Self::CarryDelivered => "carry_delivered",
            Self::SubsidyCredited => "subsidy_credited",
            Self::SubsidyDelivered => "subsidy_delivered",
        }
    }
}

/// One double-entry movement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Cause, unique per order.
    pub kind: TransferKind,
    /// Account the amount leaves.
    pub debit: String,
    /// Account the amount enters.
    pub credit: String,
    /// Positive amount in `unit`.
    pub amount: i64,
    /// Fen or 0.01 kWh.
    pub unit: Unit,
}

/// Account names.
pub mod account {
    use crate::MeterId;

    /// Money received through WeChat Pay.
    pub const WX_CLEARING: &str = "wx_clearing";
    /// Money taken at the service-hall counter.
    pub const COUNTER_CASH: &str = "counter_cash";
    /// Money of orders not yet delivered.
    pub const PREPAID: &str = "prepaid";
    /// Money of delivered orders.
    pub const REVENUE: &str = "revenue";
    /// Money returned.
    pub const REFUNDS: &str = "refunds";
    /// Source of energy sold.
    pub const ENERGY_ISSUED: &str = "energy_issued";
    /// Source of the free monthly allowance (goes negative).
    pub const SUBSIDY_ISSUED: &str = "subsidy_issued";

    /// Energy owed to a meter and not yet confirmed.
    pub fn in_flight(meter: MeterId) -> String {
        format!("in_flight:{meter}")
    }

    /// Energy a meter confirmed.
    pub fn delivered(meter: MeterId) -> String {
        format!("delivered:{meter}")
    }
}

fn channel_account(channel: Channel) -> &'static str {
    match channel {
        Channel::Wechat => account::WX_CLEARING,
        Channel::Counter => account::COUNTER_CASH,
    }
}

fn t(
    kind: TransferKind,
    debit: impl Into<String>,
    credit: impl Into<String>,
    amount: i64,
    unit: Unit,
) -> Transfer {
    Transfer {
        kind,
        debit: debit.into(),
        credit: credit.into(),
        amount,
        unit,
    }
}

/// Transfers written in the transaction that marks an order paid.
pub fn on_paid(channel: Channel, amount: Fen, energy: CentiKwh, meter: MeterId) -> Vec<Transfer> {
    vec![
        t(
            TransferKind::PaymentReceived,
            channel_account(channel),
            account::PREPAID,
            amount.get(),
            Unit::Fen,
        ),
        t(
            TransferKind::EnergyIssued,
            account::ENERGY_ISSUED,
            account::in_flight(meter),
            energy.get(),
            Unit::CentiKwh,
        ),
    ]
}

/// Transfers written in the transaction that marks an order completed.
pub fn on_delivered(amount: Fen, energy: CentiKwh, meter: MeterId) -> Vec<Transfer> {
    vec![
        t(
            TransferKind::EnergyDelivered,
            account::in_flight(meter),
            account::delivered(meter),
            energy.get(),
            Unit::CentiKwh,
        ),
        t(
            TransferKind::RevenueRecognised,
            account::PREPAID,
            account::REVENUE,
            amount.get(),
            Unit::Fen,
        ),
    ]
}

/// Transfers written in the transaction that marks an order refunded.
///
/// A WeChat order's money goes to `refunds` (WeChat pays it back); a
/// counter order's is cash paid back at the counter, so it returns to
/// `counter_cash`, whose balance then stays the cash the counter holds.
pub fn on_refunded(
    channel: Channel,
    amount: Fen,
    energy: CentiKwh,
    meter: MeterId,
) -> Vec<Transfer> {
    let paid_back_to = match channel {
        Channel::Wechat => account::REFUNDS,
        Channel::Counter => account::COUNTER_CASH,
    };
    vec![
        t(
            TransferKind::EnergyVoided,
            account::in_flight(meter),
            account::ENERGY_ISSUED,
            energy.get(),
            Unit::CentiKwh,
        ),
        t(
            TransferKind::Refund,
            account::PREPAID,
            paid_back_to,
            amount.get(),
            Unit::Fen,
        ),
    ]
}

/// Transfer written in the transaction that replaces meter `old` by `new`:
/// the energy left in the old meter leaves its `delivered` account and is
/// owed to the new meter like a sold purchase (`in_flight:<new>`).
pub fn on_replaced(old: MeterId, new: MeterId, carried: CentiKwh) -> Transfer {
    t(
        TransferKind::EnergyCarried,
        account::delivered(old),
        account::in_flight(new),
        carried.get(),
        Unit::CentiKwh,
    )
}

/// Transfer written when the new meter confirmed the carried energy.
pub fn on_carry_delivered(new: MeterId, carried: CentiKwh) -> Transfer {
    t(
        TransferKind::CarryDelivered,
        account::in_flight(new),
        account::delivered(new),
        carried.get(),
        Unit::CentiKwh,
    )
}

/// Transfer written in the transaction that credits a room's free monthly
/// allowance to its meter: owed like a sold purchase.
pub fn on_subsidy_credited(meter: MeterId, energy: CentiKwh) -> Transfer {
    t(
        TransferKind::SubsidyCredited,
        account::SUBSIDY_ISSUED.to_owned(),
        account::in_flight(meter),
        energy.get(),
        Unit::CentiKwh,
    )
}

/// Transfer written when the meter confirmed the allowance.
pub fn on_subsidy_delivered(meter: MeterId, energy: CentiKwh) -> Transfer {
    t(
        TransferKind::SubsidyDelivered,
        account::in_flight(meter),
        account::delivered(meter),
        energy.get(),
        Unit::CentiKwh,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn balances(ts: &[Transfer]) -> HashMap<(String, &'static str), i64> {
        let mut m = HashMap::new();
        for t in ts {
            *m.entry((t.debit.clone(), t.unit.as_str())).or_insert(0) -= t.amount;
            *m.entry((t.credit.clone(), t.unit.as_str())).or_insert(0) += t.amount;
        }
        m
    }

    #[test]
    fn delivered_order_leaves_nothing_in_flight_or_prepaid() {
        let m = MeterId::new(7);
        let mut ts = on_paid(Channel::Wechat, Fen::new(1060), CentiKwh::new(2000), m);
        ts.extend(on_delivered(Fen::new(1060), CentiKwh::new(2000), m));
        let b = balances(&ts);
        assert_eq!(b[&(account::PREPAID.to_owned(), "fen")], 0);
        assert_eq!(b[&(account::in_flight(m), "centikwh")], 0);
        assert_eq!(b[&(account::delivered(m), "centikwh")], 2000);
        assert_eq!(b[&(account::REVENUE.to_owned(), "fen")], 1060);
        assert_eq!(b.values().sum::<i64>(), 0);
    }

    #[test]
    fn carried_energy_moves_from_the_old_meter_to_the_new() {
        let (old, new) = (MeterId::new(7), MeterId::new(8));
        let mut ts = on_paid(Channel::Wechat, Fen::new(1060), CentiKwh::new(2000), old);
        ts.extend(on_delivered(Fen::new(1060), CentiKwh::new(2000), old));
        ts.push(on_replaced(old, new, CentiKwh::new(1234)));
        let b = balances(&ts);
        assert_eq!(b[&(account::delivered(old), "centikwh")], 2000 - 1234);
        assert_eq!(b[&(account::in_flight(new), "centikwh")], 1234);
        ts.push(on_carry_delivered(new, CentiKwh::new(1234)));
        let b = balances(&ts);
        assert_eq!(b[&(account::in_flight(new), "centikwh")], 0);
        assert_eq!(b[&(account::delivered(new), "centikwh")], 1234);
        assert_eq!(b.values().sum::<i64>(), 0);
    }

    #[test]
    fn refunded_order_returns_money_and_voids_energy() {
        let m = MeterId::new(7);
        let mut ts = on_paid(Channel::Counter, Fen::new(530), CentiKwh::new(1000), m);
        ts.extend(on_refunded(
            Channel::Counter,
            Fen::new(530),
            CentiKwh::new(1000),
            m,
        ));
        let b = balances(&ts);
        assert_eq!(b[&(account::in_flight(m), "centikwh")], 0);
        assert_eq!(b[&(account::ENERGY_ISSUED.to_owned(), "centikwh")], 0);
        // Cash paid back at the counter: the drawer's account is even again.
        assert_eq!(b[&(account::COUNTER_CASH.to_owned(), "fen")], 0);
        assert!(!b.contains_key(&(account::REFUNDS.to_owned(), "fen")));
        let mut ts = on_paid(Channel::Wechat, Fen::new(530), CentiKwh::new(1000), m);
        ts.extend(on_refunded(
            Channel::Wechat,
            Fen::new(530),
            CentiKwh::new(1000),
            m,
        ));
        let b = balances(&ts);
        assert_eq!(b[&(account::REFUNDS.to_owned(), "fen")], 530);
        assert_eq!(b[&(account::WX_CLEARING.to_owned(), "fen")], -530);
    }
}
