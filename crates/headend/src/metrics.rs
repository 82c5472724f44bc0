//! Counters of the head-end, kept in atomics and read as a
//! [`MetricsSnapshot`] (for the console, `bench collect` and the
//! Prometheus endpoint `/metrics`, which reads a snapshot at scrape time).
//! Counting never takes a lock on the hot path (a garbled frame, rare,
//! takes one to count it against its gateway).

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Counters of one RS485 bus.
#[derive(Debug, Default)]
pub struct BusCounters {
    /// Bus row id.
    pub bus_id: i64,
    /// Gateway name.
    pub gateway: String,
    /// Line speed.
    pub baud: u32,
    /// Meters on the bus.
    pub meters: usize,
    pub(crate) frames_sent: AtomicU64,
    pub(crate) replies: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) reads_ok: AtomicU64,
    pub(crate) reads_failed: AtomicU64,
    pub(crate) urgent_done: AtomicU64,
    pub(crate) urgent_queued: AtomicI64,
    /// Wire time of every request sent plus every reply received (without
    /// reply preambles), µs: the physical floor of what the bus did.
    pub(crate) wire_us: AtomicU64,
    /// Virtual instant the bus finished polling every meter once, or 0.
    pub(crate) first_sweep_done_ms: AtomicI64,
    /// Meters polled successfully in the first sweep.
    pub(crate) first_sweep_read: AtomicU64,
}

/// The head-end's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    pub(crate) connects: AtomicU64,
    pub(crate) disconnects: AtomicU64,
    pub(crate) unknown_registrations: AtomicU64,
    pub(crate) bad_frames: AtomicU64,
    pub(crate) unmatched_replies: AtomicU64,
    pub(crate) deliveries_completed: AtomicU64,
    pub(crate) deliveries_flagged: AtomicU64,
    pub(crate) delivery_attempts_failed: AtomicU64,
    pub(crate) delivery_latency_ms_sum: AtomicU64,
    pub(crate) delivery_latency_ms_max: AtomicU64,
    pub(crate) store_errors: AtomicU64,
    pub(crate) time_syncs: AtomicU64,
    pub(crate) buses: Mutex<Vec<Arc<BusCounters>>>,
    /// Deliveries by paid → confirmed latency: slot `i` counts those of at
    /// most [`DELIVERY_LATENCY_BUCKETS_S`]`[i]` seconds (and more than the
    /// bound before), the last slot those above every bound.
    delivery_latency_slots: [AtomicU64; DELIVERY_LATENCY_BUCKETS_S.len() + 1],
    /// Garbled frames (checksum or framing failures) by gateway name.
    bad_frames_by_gateway: Mutex<BTreeMap<String, u64>>,
}

/// Upper bounds of the delivery latency histogram, seconds: a purchase
/// normally lands within seconds; minutes mean a bus is slow or a meter
/// was offline; the delivery window is counted in hours.
pub const DELIVERY_LATENCY_BUCKETS_S: [f64; 12] = [
    1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0,
];

impl Metrics {
    pub(crate) fn add_bus(&self, b: Arc<BusCounters>) {
        self.buses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(b);
    }

    pub(crate) fn delivered(&self, latency_ms: i64) {
        let l = u64::try_from(latency_ms.max(0)).unwrap_or(0);
        self.deliveries_completed.fetch_add(1, Ordering::Relaxed);
        self.delivery_latency_ms_sum.fetch_add(l, Ordering::Relaxed);
        self.delivery_latency_ms_max.fetch_max(l, Ordering::Relaxed);
        #[allow(clippy::cast_precision_loss)] // ms fit f64 exactly far past any latency
        let s = l as f64 / 1000.0;
        let slot = DELIVERY_LATENCY_BUCKETS_S
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(DELIVERY_LATENCY_BUCKETS_S.len());
        self.delivery_latency_slots[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a garbled frame from `gateway`.
    pub(crate) fn garbled(&self, gateway: &str) {
        self.bad_frames.fetch_add(1, Ordering::Relaxed);
        let mut m = self
            .bad_frames_by_gateway
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match m.get_mut(gateway) {
            Some(n) => *n += 1,
            None => {
                m.insert(gateway.to_owned(), 1);
            }
        }
    }

    /// A consistent-enough copy of every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let buses: Vec<BusSnapshot> = self
            .buses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|b| BusSnapshot {
                bus_id: b.bus_id,
                gateway: b.gateway.clone(),
                baud: b.baud,
                meters: b.meters,
                frames_sent: g(&b.frames_sent),
                replies: g(&b.replies),
                timeouts: g(&b.timeouts),
                reads_ok: g(&b.reads_ok),
                reads_failed: g(&b.reads_failed),
                urgent_done: g(&b.urgent_done),
                urgent_queued: b.urgent_queued.load(Ordering::Relaxed),
                wire_us: g(&b.wire_us),
                first_sweep_done_ms: match b.first_sweep_done_ms.load(Ordering::Relaxed) {
                    0 => None,
                    t => Some(t),
                },
                first_sweep_read: g(&b.first_sweep_read),
            })
            .collect();
        let completed = g(&self.deliveries_completed);
        let mut cumulative = 0;
        let delivery_latency_buckets = DELIVERY_LATENCY_BUCKETS_S
            .iter()
            .zip(&self.delivery_latency_slots)
            .map(|(&le, n)| {
                cumulative += g(n);
                (le, cumulative)
            })
            .collect();
        let delivery_latency_count = self.delivery_latency_slots.iter().map(g).sum();
        MetricsSnapshot {
            delivery_latency_buckets,
            delivery_latency_count,
            delivery_latency_ms_sum: g(&self.delivery_latency_ms_sum),
            bad_frames_by_gateway: self
                .bad_frames_by_gateway
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            frames_sent: buses.iter().map(|b| b.frames_sent).sum(),
            replies: buses.iter().map(|b| b.replies).sum(),
            timeouts: buses.iter().map(|b| b.timeouts).sum(),
            reads_ok: buses.iter().map(|b| b.reads_ok).sum(),
            reads_failed: buses.iter().map(|b| b.reads_failed).sum(),
            connects: g(&self.connects),
            disconnects: g(&self.disconnects),
            unknown_registrations: g(&self.unknown_registrations),
            bad_frames: g(&self.bad_frames),
            unmatched_replies: g(&self.unmatched_replies),
            deliveries_completed: completed,
            deliveries_flagged: g(&self.deliveries_flagged),
            delivery_attempts_failed: g(&self.delivery_attempts_failed),
            delivery_latency_ms_avg: g(&self.delivery_latency_ms_sum)
                .checked_div(completed)
                .unwrap_or(0),
            delivery_latency_ms_max: g(&self.delivery_latency_ms_max),
            store_errors: g(&self.store_errors),
            time_syncs: g(&self.time_syncs),
            buses,
        }
    }
}

/// A copy of one bus's counters.
#[derive(Debug, Clone, Serialize)]
pub struct BusSnapshot {
    /// Bus row id.
    pub bus_id: i64,
    /// Gateway name.
    pub gateway: String,
    /// Line speed.
    pub baud: u32,
    /// Meters on the bus.
    pub meters: usize,
    /// Requests put on the wire.
    pub frames_sent: u64,
    /// Replies matched to a request.
    pub replies: u64,
    /// Requests that got no (usable) reply in time.
    pub timeouts: u64,
    /// Reads that succeeded (after retries).
    pub reads_ok: u64,
    /// Reads that failed after every retry.
    pub reads_failed: u64,
    /// Urgent requests (deliveries, relay commands) served.
    pub urgent_done: u64,
    /// Urgent requests waiting now (queue depth).
    pub urgent_queued: i64,
    /// Wire time of requests and replies, µs.
    pub wire_us: u64,
    /// When the bus finished its first full sweep (clock ms).
    pub first_sweep_done_ms: Option<i64>,
    /// Meters read in the first sweep.
    pub first_sweep_read: u64,
}

/// A copy of every counter.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsSnapshot {
    /// Requests put on the wire, all buses.
    pub frames_sent: u64,
    /// Replies matched, all buses.
    pub replies: u64,
    /// Timeouts, all buses.
    pub timeouts: u64,
    /// Successful reads.
    pub reads_ok: u64,
    /// Failed reads (after retries).
    pub reads_failed: u64,
    /// TCP connections established.
    pub connects: u64,
    /// TCP connections lost.
    pub disconnects: u64,
    /// Gateways that dialled in with an unknown registration id.
    pub unknown_registrations: u64,
    /// Frame-shaped bytes that failed their checksum.
    pub bad_frames: u64,
    /// Replies that matched no outstanding request (late, wrong address or DI).
    pub unmatched_replies: u64,
    /// Purchases confirmed by meters.
    pub deliveries_completed: u64,
    /// Purchases stopped for staff (sequence gap, refusal).
    pub deliveries_flagged: u64,
    /// Delivery attempts that ended without an answer (retried later).
    pub delivery_attempts_failed: u64,
    /// Mean paid → confirmed, ms.
    pub delivery_latency_ms_avg: u64,
    /// Longest paid → confirmed, ms.
    pub delivery_latency_ms_max: u64,
    /// Deliveries of at most `le` seconds paid → confirmed (cumulative,
    /// one entry per bound of [`DELIVERY_LATENCY_BUCKETS_S`]).
    pub delivery_latency_buckets: Vec<(f64, u64)>,
    /// Deliveries in the histogram (its `+Inf` bucket).
    pub delivery_latency_count: u64,
    /// Sum of paid → confirmed over those deliveries, ms.
    pub delivery_latency_ms_sum: u64,
    /// Garbled frames by gateway name.
    pub bad_frames_by_gateway: Vec<(String, u64)>,
    /// Batches the store refused.
    pub store_errors: u64,
    /// Daily time broadcasts sent (one per gateway and day).
    pub time_syncs: u64,
    /// Per bus.
    pub buses: Vec<BusSnapshot>,
}
