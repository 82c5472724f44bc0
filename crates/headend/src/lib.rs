//! Head-end: gateway connections, per-bus schedulers, collection, relay
//! control, exactly-once recharge.
//!
//! Invariant: **a purchase is marked delivered only on evidence from the
//! meter** (a recharge reply or a read-back purchase count equal to the
//! order's sequence number), and a purchase is only ever (re)sent with the
//! sequence number persisted for it before the first frame.
//!
//! Shape of the running head-end ([`Headend::start`]):
//! - one [`link`] task per gateway (we dial it, or it dials our listener and
//!   registers by name), reconnecting with backoff;
//! - one [`bus`] task per RS485 bus: never two requests in flight on a bus,
//!   urgent requests (deliveries, relay commands) before routine polling,
//!   the collection plan of [`plan`] for routine polling;
//! - one store writer that batches what the buses learn into transactions;
//! - the [`deliver`] worker that claims `deliver` jobs and runs the
//!   read-back algorithm of reliability.md §2.5 through the meter's bus.
//!
//! Time comes from a [`Clock`], so tests and the benchmark run the head-end
//! on the simulator's fast virtual clock.

// Outside tests a panic is a bug we chose to keep: an `expect` with its
// reason under a local `allow`, or a type that makes the case impossible
// (crates/dormwatt/tests/workspace_lints.rs checks every crate says so).
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod bus;
pub mod clock;
pub mod commands;
pub mod deliver;
pub mod dst;
mod headend;
pub mod link;
pub mod metrics;
pub mod params;
pub mod plan;
mod reload;
mod writer;

pub use clock::{Clock, SharedClock, SystemClock};
pub use headend::{Headend, RelayOutcome};
pub use metrics::{BusSnapshot, Metrics, MetricsSnapshot};

use serde::{Deserialize, Serialize};

/// Why a head-end operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No matching reply within the request's timeout.
    #[error("no reply in time")]
    Timeout,
    /// The gateway link is down.
    #[error("gateway not connected")]
    Disconnected,
    /// The head-end is shutting down.
    #[error("head-end stopped")]
    Stopped,
    /// The meter answered with an abnormal reply.
    #[error("meter refused: {0}")]
    Refused(String),
    /// The reply did not decode as the expected value.
    #[error("bad reply: {0}")]
    BadReply(String),
    /// No bus carries this meter.
    #[error("meter {0} is on no bus the head-end serves")]
    UnknownMeter(i64),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A socket could not be bound.
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
}

/// Head-end settings: collection plan, limits, delivery. Every interval is
/// in milliseconds of the head-end's clock.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Frequent plan (remaining energy, status word 3, power) per meter.
    pub frequent_interval_ms: i64,
    /// Hourly plan (total energy, voltage, purchase count; stored as
    /// readings); 0 disables it.
    pub hourly_interval_ms: i64,
    /// Read the daily-freeze history (and check the meter clock) once a
    /// day, this long after campus midnight; negative disables it.
    pub daily_read_after_ms: i64,
    /// Days read back on a meter's first daily read.
    pub first_backfill_days: u8,
    /// Most days back-filled in one daily read (the meter keeps 62).
    pub backfill_days_max: u8,
    /// A meter is offline after this many consecutive unanswered polls.
    pub offline_after_missed_polls: u32,
    /// Attempts per routine read (1 for a meter already offline).
    pub read_attempts: u32,
    /// Added to a request's timeout for the gateway's pack timer and TCP.
    pub gateway_slack_ms: i64,
    /// Consecutive timeouts on one bus after which the gateway link is
    /// dropped and re-established (a half-open TCP connection).
    pub link_reset_after_timeouts: u32,
    /// Urgent requests queued per bus.
    pub urgent_queue: usize,
    /// Observations batched into one store transaction at most.
    pub writer_batch_max: usize,
    /// How often the delivery worker looks for paid orders.
    pub deliver_poll_ms: i64,
    /// Lease of a claimed delivery job, renewed every third of it while the
    /// delivery runs; another worker may take the job once it runs out.
    pub deliver_lease_ms: i64,
    /// Deliveries running at once (each holds at most one bus slot).
    pub deliver_concurrency: usize,
    /// Longest wait between two delivery attempts of an unreachable meter.
    pub deliver_backoff_cap_ms: i64,
    /// Identical re-sends within one delivery attempt after a read-back
    /// showed the purchase not applied.
    pub deliver_resends_max: u32,
    /// Address gateways in client mode dial (`None`: no listener).
    pub listen: Option<String>,
    /// IANA time zone of campus days and meter clocks: the process's one
    /// `time_zone` setting, never a `[headend]` key of its own.
    #[serde(skip)]
    pub time_zone: domain::time::CampusTz,
    /// Level-02 password of the meters (six hex digits, e.g. 0x123456).
    pub meter_password: u32,
    /// Operator code the head-end writes into meters' records.
    pub operator_code: u32,
    /// A meter clock further off than this is corrected by a write.
    pub clock_max_error_ms: i64,
    /// Broadcast the time to every gateway's meters once a day, this long
    /// after campus midnight (away from midnight and whole hours, which
    /// disturb daily freezes); negative disables it.
    pub time_sync_at_ms: i64,
    /// Validity of a relay command (the meter refuses it after this).
    pub relay_validity_ms: i64,
    // Issue 14 item 5: staff relay commands from the `relay_command` table.
    /// How often the head-end looks for queued staff relay commands.
    pub relay_poll_ms: i64,
    /// Lease of a claimed relay command; after a crash another head-end
    /// retakes it when it runs out.
    pub relay_lease_ms: i64,
    /// A relay command not sent this long after it was asked (its meter
    /// stayed offline) is cancelled, audited, never silently dropped.
    pub relay_queue_bound_ms: i64,
    /// Pause before a command whose meter did not answer is tried again.
    pub relay_retry_ms: i64,
    /// Most relay commands claimed at once.
    pub relay_batch: usize,
    /// This node's name. Job leases are held as `<name>#<incarnation>`; a
    /// restarted process with the same name takes back its dead
    /// incarnation's leases at once. Two live processes never share a name
    /// (the second becomes `<name>-2`). Default: the host name.
    pub worker_id: String,
    /// How often the head-end checks the registry version and follows
    /// registry changes (gateways, buses, meters added, moved, retired)
    /// without a restart; 0 disables it (issue 14).
    pub registry_poll_ms: i64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            frequent_interval_ms: 5 * 60_000,
            hourly_interval_ms: 3_600_000,
            daily_read_after_ms: 10 * 60_000,
            first_backfill_days: 7,
            backfill_days_max: 62,
            offline_after_missed_polls: 3,
            read_attempts: 3,
            gateway_slack_ms: 150,
            link_reset_after_timeouts: 32,
            urgent_queue: 64,
            writer_batch_max: 512,
            deliver_poll_ms: 1_000,
            deliver_lease_ms: 15_000,
            deliver_concurrency: 64,
            deliver_backoff_cap_ms: 60_000,
            deliver_resends_max: 3,
            listen: None,
            time_zone: domain::time::CampusTz::default(),
            meter_password: 0x12_34_56,
            operator_code: 0x0000_0001,
            clock_max_error_ms: 5 * 60_000,
            time_sync_at_ms: 2 * 3_600_000 + 30 * 60_000,
            relay_validity_ms: 10 * 60_000,
            relay_poll_ms: 2_000,
            relay_lease_ms: 60_000,
            relay_queue_bound_ms: 10 * 60_000,
            relay_retry_ms: 15_000,
            relay_batch: 16,
            worker_id: default_node_name(),
            registry_poll_ms: 5_000,
        }
    }
}

/// The host name (`HOSTNAME`, else /etc/hostname), else `headend`.
pub fn default_node_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "headend".to_owned())
}

impl Config {
    /// Checks the limits make sense.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::Config(m.to_owned()));
        if self.frequent_interval_ms <= 0 {
            return bad("frequent_interval_ms must be positive");
        }
        if self.read_attempts == 0 || self.read_attempts > 10 {
            return bad("read_attempts must be 1..=10");
        }
        if self.backfill_days_max == 0 || self.backfill_days_max > 62 {
            return bad("backfill_days_max must be 1..=62");
        }
        if self.first_backfill_days == 0 || self.first_backfill_days > self.backfill_days_max {
            return bad("first_backfill_days must be 1..=backfill_days_max");
        }
        if self.urgent_queue == 0 || self.writer_batch_max == 0 || self.deliver_concurrency == 0 {
            return bad("queue sizes must be positive");
        }
        if self.deliver_lease_ms < 3_000 {
            return bad("deliver_lease_ms must be at least 3 s");
        }
        if self.worker_id.is_empty() || self.worker_id.contains('#') {
            return bad("worker_id must be non-empty and contain no '#'");
        }
        if self.relay_poll_ms <= 0
            || self.relay_lease_ms < 3_000
            || self.relay_queue_bound_ms <= 0
            || self.relay_retry_ms <= 0
            || self.relay_batch == 0
        {
            return bad(
                "relay_poll_ms, relay_queue_bound_ms, relay_retry_ms and relay_batch must be positive, relay_lease_ms at least 3 s",
            );
        }
        if self.registry_poll_ms < 0 {
            return bad("registry_poll_ms must be 0 (off) or positive");
        }
        if self.offline_after_missed_polls == 0 {
            return bad("offline_after_missed_polls must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod config_tests {
    use super::Config;

    #[test]
    fn bad_worker_ids_and_short_leases_are_refused() {
        for id in ["", "a#b"] {
            let c = Config {
                worker_id: id.to_owned(),
                ..Config::default()
            };
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("worker_id"), "{e}");
        }
        let c = Config {
            deliver_lease_ms: 2_999,
            ..Config::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("deliver_lease_ms")
        );
        assert!(Config::default().validate().is_ok());
    }
}
