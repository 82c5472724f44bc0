//! The head-end's counters as `/metrics` reads them (issue 16 item 1):
//! web does not depend on headend, so the binary hands web a closure over
//! the live atomics, snapshotted at scrape time. tests/metrics.rs scrapes
//! a running `dormwatt demo`, so through this very conversion.

use std::sync::Arc;

/// A source reading `counters` at every scrape.
pub fn headend_source(counters: Arc<headend::Metrics>) -> web::metrics::HeadendSource {
    Arc::new(move || view(&counters.snapshot()))
}

/// The snapshot in web's terms.
pub fn view(s: &headend::MetricsSnapshot) -> web::metrics::HeadendView {
    web::metrics::HeadendView {
        buses: s
            .buses
            .iter()
            .map(|b| web::metrics::BusView {
                bus_id: b.bus_id,
                gateway: b.gateway.clone(),
                frames_sent: b.frames_sent,
                timeouts: b.timeouts,
                reads_ok: b.reads_ok,
                reads_failed: b.reads_failed,
                urgent_queued: b.urgent_queued,
            })
            .collect(),
        garbled_by_gateway: s.bad_frames_by_gateway.clone(),
        unmatched_replies: s.unmatched_replies,
        connects: s.connects,
        disconnects: s.disconnects,
        deliveries_completed: s.deliveries_completed,
        deliveries_flagged: s.deliveries_flagged,
        delivery_latency_buckets: s.delivery_latency_buckets.clone(),
        delivery_latency_count: s.delivery_latency_count,
        #[allow(clippy::cast_precision_loss)] // a ms sum: exact in f64 for 285 000 years
        delivery_latency_sum_s: s.delivery_latency_ms_sum as f64 / 1000.0,
    }
}
