//! Pure domain model: money, energy, ids, campus plan, order state machine, ledger. No I/O.
