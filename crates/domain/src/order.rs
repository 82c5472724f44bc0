//! The order state machine of S11, as a pure function of (state, event, now).
//!
//! ```text
//!            pay                deliver
//!  unpaid ───────► charging ───────────────► completed
//!    │  ▲            │ overdue                 ▲
//!    │  │ late pay   ▼            deliver      │
//!    │  └── closed  delayed ─────────────────── ┘
//!    │ expire(≥2h)   │ refund
//!    │ / cancel      ▼
//!    └──► closed   refunding ──► refunded
//! ```
//! A payment that arrives after an order was closed is never ignored: it
//! moves the order to charging and the energy is delivered (or, if delivery
//! is impossible, refunded through delayed → refunding).

use serde::{Deserialize, Serialize};

/// Unpaid orders are closed after exactly this long (S11).
pub const UNPAID_TTL_MS: i64 = 2 * 60 * 60 * 1000;

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Created, waiting for payment (未支付).
    Unpaid,
    /// Paid, waiting for the meter to confirm (加电中).
    Charging,
    /// Paid, but the meter has not confirmed within the delivery window.
    Delayed,
    /// The meter confirmed the energy (已完成).
    Completed,
    /// Expired after two hours unpaid, or cancelled by the student.
    Closed,
    /// A refund was requested from the payment provider.
    Refunding,
    /// The money went back to the payer.
    Refunded,
}

impl OrderState {
    /// The stable lower-case name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unpaid => "unpaid",
            Self::Charging => "charging",
            Self::Delayed => "delayed",
            Self::Completed => "completed",
            Self::Closed => "closed",
            Self::Refunding => "refunding",
            Self::Refunded => "refunded",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "unpaid" => Self::Unpaid,
            "charging" => Self::Charging,
            "delayed" => Self::Delayed,
            "completed" => Self::Completed,
            "closed" => Self::Closed,
            "refunding" => Self::Refunding,
            "refunded" => Self::Refunded,
            _ => return None,
        })
    }

    /// Whether money has been received for the order in this state.
    pub fn is_paid(self) -> bool {
        matches!(
            self,
            Self::Charging | Self::Delayed | Self::Completed | Self::Refunding | Self::Refunded
        )
    }
}

impl std::fmt::Display for OrderState {
    /// The stored name (`unpaid`, `charging`, …).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an order was paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// WeChat Pay JSAPI inside the official account's pages.
    Wechat,
    /// Cash or card at the service-hall counter (S16).
    Counter,
}

impl Channel {
    /// The stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wechat => "wechat",
            Self::Counter => "counter",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "wechat" => Some(Self::Wechat),
            "counter" => Some(Self::Counter),
            _ => None,
        }
    }
}

impl std::fmt::Display for Channel {
    /// The stored name (`wechat`, `counter`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happened to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderEvent {
    /// The payment provider (or the counter) confirmed the money.
    PaymentConfirmed,
    /// The meter confirmed the energy (by reply or read-back).
    DeliveryConfirmed,
    /// The delivery window passed without confirmation.
    DeliveryOverdue,
    /// The expiry timer fired.
    Expire,
    /// The student cancelled an unpaid order.
    Cancel,
    /// Staff asked to refund an undeliverable order.
    RefundRequested,
    /// The provider confirmed the refund.
    RefundSucceeded,
    /// The provider refused the refund; the order waits for staff again.
    RefundFailed,
}

/// The result of applying an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state after the event.
    pub to: OrderState,
    /// False when the event was a harmless repeat (e.g. a duplicate payment
    /// notification) and nothing must be written.
    pub changed: bool,
}

/// An event that is not allowed in the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("order event {event:?} is not allowed in state {from:?}")]
pub struct IllegalTransition {
    /// State the order was in.
    pub from: OrderState,
    /// The refused event.
    pub event: OrderEvent,
}

/// When an unpaid order created at `created_at_ms` expires.
pub fn expires_at_ms(created_at_ms: i64) -> i64 {
    created_at_ms + UNPAID_TTL_MS
}

/// Applies `event` to an order in `from` created at `created_at_ms`.
pub fn transition(
    from: OrderState,
    event: OrderEvent,
    created_at_ms: i64,
    now_ms: i64,
) -> Result<Transition, IllegalTransition> {
    use OrderEvent as E;
    use OrderState as S;
    let moved = |to| Ok(Transition { to, changed: true });
    let same = Ok(Transition {
        to: from,
        changed: false,
    });
    match (from, event) {
        (S::Unpaid | S::Closed, E::PaymentConfirmed) => moved(S::Charging),
        // Duplicate confirmations of a payment we already hold.
        (
            S::Charging | S::Delayed | S::Completed | S::Refunding | S::Refunded,
            E::PaymentConfirmed,
        ) => same,
        (S::Unpaid, E::Expire) if now_ms >= expires_at_ms(created_at_ms) => moved(S::Closed),
        (S::Unpaid, E::Cancel) => moved(S::Closed),
        (S::Closed, E::Expire | E::Cancel) => same,
        (S::Charging | S::Delayed, E::DeliveryConfirmed) => moved(S::Completed),
        (S::Completed, E::DeliveryConfirmed) => same,
        (S::Charging, E::DeliveryOverdue) => moved(S::Delayed),
        (S::Delayed, E::DeliveryOverdue) => same,
        (S::Delayed, E::RefundRequested) => moved(S::Refunding),
        (S::Refunding, E::RefundSucceeded) => moved(S::Refunded),
        (S::Refunded, E::RefundSucceeded) => same,
        (S::Refunding, E::RefundFailed) => moved(S::Delayed),
        _ => Err(IllegalTransition { from, event }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderEvent as E;
    use OrderState as S;

    const T0: i64 = 1_764_000_000_000;

    fn go(from: S, e: E) -> Result<Transition, IllegalTransition> {
        transition(from, e, T0, T0 + 1000)
    }

    #[test]
    fn happy_path_of_s11() {
        assert_eq!(
            go(S::Unpaid, E::PaymentConfirmed).unwrap(),
            Transition {
                to: S::Charging,
                changed: true
            }
        );
        assert_eq!(
            go(S::Charging, E::DeliveryConfirmed).unwrap().to,
            S::Completed
        );
    }

    #[test]
    fn expiry_is_at_exactly_two_hours() {
        let just_before = transition(S::Unpaid, E::Expire, T0, T0 + UNPAID_TTL_MS - 1);
        assert_eq!(
            just_before,
            Err(IllegalTransition {
                from: S::Unpaid,
                event: E::Expire
            })
        );
        let at = transition(S::Unpaid, E::Expire, T0, T0 + UNPAID_TTL_MS).unwrap();
        assert_eq!(
            at,
            Transition {
                to: S::Closed,
                changed: true
            }
        );
        assert_eq!(expires_at_ms(T0), T0 + 7_200_000);
    }

    #[test]
    fn cancel_and_late_payment() {
        assert_eq!(go(S::Unpaid, E::Cancel).unwrap().to, S::Closed);
        // A payment after closing is credited, never ignored.
        assert_eq!(
            go(S::Closed, E::PaymentConfirmed).unwrap(),
            Transition {
                to: S::Charging,
                changed: true
            }
        );
        assert!(!go(S::Closed, E::Expire).unwrap().changed);
    }

    #[test]
    fn duplicates_are_no_ops() {
        for s in [
            S::Charging,
            S::Delayed,
            S::Completed,
            S::Refunding,
            S::Refunded,
        ] {
            assert_eq!(
                go(s, E::PaymentConfirmed).unwrap(),
                Transition {
                    to: s,
                    changed: false
                }
            );
        }
        assert!(!go(S::Completed, E::DeliveryConfirmed).unwrap().changed);
    }

    #[test]
    fn delay_and_refund_paths() {
        assert_eq!(go(S::Charging, E::DeliveryOverdue).unwrap().to, S::Delayed);
        assert_eq!(
            go(S::Delayed, E::DeliveryConfirmed).unwrap().to,
            S::Completed
        );
        assert_eq!(go(S::Delayed, E::RefundRequested).unwrap().to, S::Refunding);
        assert_eq!(
            go(S::Refunding, E::RefundSucceeded).unwrap().to,
            S::Refunded
        );
        assert_eq!(go(S::Refunding, E::RefundFailed).unwrap().to, S::Delayed);
    }

    #[test]
    fn illegal_transitions_are_refused() {
        let illegal = [
            (S::Unpaid, E::DeliveryConfirmed),
            (S::Unpaid, E::RefundRequested),
            (S::Unpaid, E::DeliveryOverdue),
            (S::Charging, E::Cancel),
            (S::Charging, E::Expire),
            (S::Charging, E::RefundRequested),
            (S::Completed, E::RefundRequested),
            (S::Completed, E::Cancel),
            (S::Completed, E::DeliveryOverdue),
            (S::Closed, E::DeliveryConfirmed),
            (S::Refunded, E::DeliveryConfirmed),
            (S::Refunded, E::Cancel),
            (S::Refunding, E::DeliveryConfirmed),
            (S::Delayed, E::Cancel),
        ];
        for (s, e) in illegal {
            assert_eq!(
                go(s, e),
                Err(IllegalTransition { from: s, event: e }),
                "{s:?} + {e:?}"
            );
        }
    }

    #[test]
    fn terminal_states_never_move_forward_again() {
        let all = [
            E::PaymentConfirmed,
            E::DeliveryConfirmed,
            E::DeliveryOverdue,
            E::Expire,
            E::Cancel,
            E::RefundRequested,
            E::RefundSucceeded,
            E::RefundFailed,
        ];
        for e in all {
            for s in [S::Completed, S::Refunded] {
                if let Ok(t) = go(s, e) {
                    assert!(!t.changed && t.to == s, "{s:?} + {e:?}");
                }
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for s in [
            S::Unpaid,
            S::Charging,
            S::Delayed,
            S::Completed,
            S::Closed,
            S::Refunding,
            S::Refunded,
        ] {
            assert_eq!(S::parse(s.as_str()), Some(s));
        }
        assert_eq!(Channel::parse("counter"), Some(Channel::Counter));
    }
}
