//! Head-end: gateway connections, per-bus schedulers, collection, relay control, exactly-once recharge.
