//! Pure domain model of dormwatt: money, energy, identifiers, the campus plan,
//! the order state machine and the double-entry ledger.
//!
//! Invariant: this crate does no I/O and reads no clock. Time comes in as an
//! argument (`now_ms`, unix milliseconds), so a simulation can drive every
//! decision deterministically.

// Outside tests a panic is a bug we chose to keep: an `expect` with its
// reason under a local `allow`, or a type that makes the case impossible
// (crates/dormwatt/tests/workspace_lints.rs checks every crate says so).
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod campus;
pub mod counter;
pub mod ids;
pub mod ledger;
pub mod money;
pub mod natural;
pub mod order;
pub mod password;
pub mod staff;
pub mod time;

pub use ids::*;
pub use money::{CentiKwh, Fen, UnitPrice, WholeKwh};
