//! Prometheus metrics at `GET /metrics` (issue 16 item 1), in the
//! Prometheus text format (0.0.4) written by `prometheus-client`.
//!
//! - **HTTP** counters and a latency histogram are kept here, labelled by
//!   the *matched route template* (`/me/meters/:id`), never the raw path,
//!   so label cardinality is bounded by the router ([`track`]).
//! - **Head-end** counters are not counted twice: the binary hands over a
//!   [`HeadendSource`] (a closure over the head-end's atomics) that is read
//!   at scrape time.
//! - **Database** gauges come from one set of indexed queries
//!   ([`store::metrics::gauges`]), cached for [`DB_GAUGES_TTL`] so a
//!   scrape storm cannot load the database.
//!
//! Access ([`MetricsSettings`]): off the public internet by default. A
//! client that may not scrape gets the same 404 page as any unknown path,
//! so the endpoint is not advertised. The client address is the one the
//! throttles use ([`crate::server::forwarded_client`]): a request that
//! nginx forwarded from the internet is *not* loopback.

use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::AppState;

/// How long database-derived gauges are reused between scrapes.
pub const DB_GAUGES_TTL: Duration = Duration::from_secs(5);

/// Upper bounds of the HTTP latency histogram, seconds.
const HTTP_BUCKETS_S: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Who may scrape, and where (`[metrics]` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Off: `/metrics` is 404 for everyone.
    pub enabled: bool,
    /// Networks besides loopback whose clients may scrape.
    pub allow: Vec<ipnet::IpNet>,
    /// Served on its own listener (then the main listener answers 404).
    pub own_listener: bool,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            allow: Vec::new(),
            own_listener: false,
        }
    }
}

impl MetricsSettings {
    /// Whether a request from `client` (the address the throttles use) may
    /// scrape: loopback, or inside a network of [`Self::allow`].
    pub fn allows(&self, client: IpAddr) -> bool {
        let client = match client {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        self.enabled && (client.is_loopback() || self.allow.iter().any(|n| n.contains(&client)))
    }
}

/// One bus as `/metrics` shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BusView {
    /// Bus row id.
    pub bus_id: i64,
    /// Gateway name.
    pub gateway: String,
    /// Requests put on the wire.
    pub frames_sent: u64,
    /// Requests without a usable reply in time.
    pub timeouts: u64,
    /// Reads that succeeded.
    pub reads_ok: u64,
    /// Reads that failed after every retry.
    pub reads_failed: u64,
    /// Urgent requests waiting now.
    pub urgent_queued: i64,
}

/// The head-end's counters as `/metrics` shows them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeadendView {
    /// Per bus.
    pub buses: Vec<BusView>,
    /// Garbled frames by gateway.
    pub garbled_by_gateway: Vec<(String, u64)>,
    /// Replies that matched no request.
    pub unmatched_replies: u64,
    /// Gateway connections established / lost.
    pub connects: u64,
    /// Gateway connections lost.
    pub disconnects: u64,
    /// Deliveries confirmed by meters.
    pub deliveries_completed: u64,
    /// Deliveries stopped for staff.
    pub deliveries_flagged: u64,
    /// Cumulative (le seconds, count) buckets of paid → confirmed.
    pub delivery_latency_buckets: Vec<(f64, u64)>,
    /// Deliveries in the histogram.
    pub delivery_latency_count: u64,
    /// Their summed latency, seconds.
    pub delivery_latency_sum_s: f64,
}

/// Reads the head-end's counters at scrape time (set by the binary when
/// this process runs a head-end).
pub type HeadendSource = Arc<dyn Fn() -> HeadendView + Send + Sync>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS_S)
}

/// The process's metrics: HTTP families, the head-end source, the cache.
pub struct Metrics {
    settings: MetricsSettings,
    requests: Family<HttpLabels, Counter>,
    durations: HistogramFamily,
    headend: OnceLock<HeadendSource>,
    cache: tokio::sync::Mutex<Option<(Instant, store::metrics::Gauges)>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// Empty metrics with `settings`.
    pub fn new(settings: MetricsSettings) -> Self {
        Self {
            settings,
            requests: Family::default(),
            durations: Family::new_with_constructor(http_histogram),
            headend: OnceLock::new(),
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// Who may scrape.
    pub fn settings(&self) -> &MetricsSettings {
        &self.settings
    }

    /// Reads the head-end's counters from `source` at every scrape. Only
    /// the first call counts (one head-end per process).
    pub fn set_headend(&self, source: HeadendSource) {
        let _ = self.headend.set(source);
    }

    fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&HttpLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status: status.to_string(),
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The database gauges, from the cache when fresh.
    async fn db_gauges(&self, db: &store::Db) -> Option<store::metrics::Gauges> {
        let mut cache = self.cache.lock().await;
        if let Some((at, g)) = cache.as_ref()
            && at.elapsed() < DB_GAUGES_TTL
        {
            return Some(g.clone());
        }
        match store::metrics::gauges(db).await {
            Ok(g) => {
                *cache = Some((Instant::now(), g.clone()));
                Some(g)
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics: cannot read the database gauges");
                None
            }
        }
    }

    /// The whole exposition now.
    pub async fn render(&self, db: &store::Db) -> String {
        let scraped = Scraped {
            gauges: self.db_gauges(db).await,
            pool: store::metrics::pool(db),
            headend: self.headend.get().map(|f| f()),
            now_ms: store::now_ms(),
        };
        let mut registry = Registry::with_prefix("dormwatt");
        registry.register(
            "http_requests",
            "HTTP requests answered, by matched route template and status",
            self.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request handling time by matched route template",
            self.durations.clone(),
        );
        registry.register_collector(Box::new(scraped));
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
            tracing::warn!(error = %e, "metrics: cannot encode");
        }
        out
    }
}

/// What one scrape read; encoded by [`Collector::encode`].
#[derive(Debug)]
struct Scraped {
    gauges: Option<store::metrics::Gauges>,
    pool: store::metrics::PoolStats,
    headend: Option<HeadendView>,
    now_ms: i64,
}

/// One family written from (labels, value) pairs.
fn family<L: EncodeLabelSet, M: EncodeMetric>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl IntoIterator<Item = (L, M)>,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, metric) in rows {
        metric.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

type Labels = Vec<(&'static str, String)>;

impl Collector for Scraped {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let gauge = MetricType::Gauge;
        let counter = MetricType::Counter;
        if let Some(g) = &self.gauges {
            let by_building = |b: &store::metrics::BuildingMeters| -> Labels {
                vec![("area", b.area.clone()), ("building", b.building.clone())]
            };
            family(
                &mut enc,
                "meters",
                "Meters in the registry, by building",
                gauge,
                g.meters
                    .iter()
                    .map(|b| (by_building(b), ConstGauge::new(b.total))),
            )?;
            family(
                &mut enc,
                "meters_online",
                "Meters the head-end last saw online, by building",
                gauge,
                g.meters
                    .iter()
                    .map(|b| (by_building(b), ConstGauge::new(b.online))),
            )?;
            family(
                &mut enc,
                "orders",
                "Orders by state",
                gauge,
                g.orders_by_state
                    .iter()
                    .map(|(s, n)| (vec![("state", s.clone())], ConstGauge::new(*n))),
            )?;
            family(
                &mut enc,
                "exceptions_open",
                "Order flags in the exceptions queue not yet resolved",
                gauge,
                [(Labels::new(), ConstGauge::new(g.exceptions_open))],
            )?;
            family(
                &mut enc,
                "job_queue_depth",
                "Jobs queued (due or waiting for a retry), by queue",
                gauge,
                g.queues
                    .iter()
                    .map(|q| (vec![("queue", q.queue.clone())], ConstGauge::new(q.queued))),
            )?;
            family(
                &mut enc,
                "job_queue_oldest_age_seconds",
                "How long the earliest-due queued job has been due, by queue (0: none is due, or the queue is empty)",
                gauge,
                g.queues.iter().map(|q| {
                    #[allow(clippy::cast_precision_loss)] // ms of an age: exact in f64
                    let age_s = q.oldest_run_at_ms.map_or(0, |at| (self.now_ms - at).max(0)) as f64
                        / 1000.0;
                    (vec![("queue", q.queue.clone())], ConstGauge::new(age_s))
                }),
            )?;
            family(
                &mut enc,
                "db_pool_acquire_wait_seconds",
                "How long the last refresh of these gauges waited for a database pool connection",
                gauge,
                [(Labels::new(), {
                    #[allow(clippy::cast_precision_loss)] // µs of a wait: exact in f64
                    let s = g.acquire_wait_us as f64 / 1e6;
                    ConstGauge::new(s)
                })],
            )?;
        }
        let p = self.pool;
        family(
            &mut enc,
            "db_pool_connections",
            "Database pool connections by state (waiting: db_pool_acquire_wait_seconds)",
            gauge,
            [
                (
                    vec![("state", "in_use".to_owned())],
                    ConstGauge::new(i64::from(p.open.saturating_sub(p.idle))),
                ),
                (
                    vec![("state", "idle".to_owned())],
                    ConstGauge::new(i64::from(p.idle)),
                ),
            ],
        )?;
        family(
            &mut enc,
            "db_pool_connections_max",
            "Most connections the database pool opens",
            gauge,
            [(Labels::new(), ConstGauge::new(i64::from(p.max)))],
        )?;
        let Some(h) = &self.headend else {
            return Ok(());
        };
        let bus = |b: &BusView| -> Labels {
            vec![
                ("bus", b.bus_id.to_string()),
                ("gateway", b.gateway.clone()),
            ]
        };
        family(
            &mut enc,
            "headend_reads_due",
            "Scheduled meter reads that finished (succeeded or failed after retries), by bus",
            counter,
            h.buses
                .iter()
                .map(|b| (bus(b), ConstCounter::new(b.reads_ok + b.reads_failed))),
        )?;
        family(
            &mut enc,
            "headend_reads_received",
            "Meter reads that succeeded, by bus",
            counter,
            h.buses
                .iter()
                .map(|b| (bus(b), ConstCounter::new(b.reads_ok))),
        )?;
        family(
            &mut enc,
            "headend_urgent_queue_depth",
            "Urgent requests (deliveries, relay commands) waiting, by bus",
            gauge,
            h.buses
                .iter()
                .map(|b| (bus(b), ConstGauge::new(b.urgent_queued))),
        )?;
        let mut per_gateway: std::collections::BTreeMap<&str, (u64, u64, u64)> =
            std::collections::BTreeMap::new();
        for b in &h.buses {
            let e = per_gateway.entry(b.gateway.as_str()).or_default();
            e.0 += b.frames_sent;
            e.1 += b.timeouts;
        }
        for (gw, n) in &h.garbled_by_gateway {
            per_gateway.entry(gw.as_str()).or_default().2 += n;
        }
        let gw = |g: &str| -> Labels { vec![("gateway", g.to_owned())] };
        family(
            &mut enc,
            "headend_frames_sent",
            "Requests put on the wire, by gateway",
            counter,
            per_gateway
                .iter()
                .map(|(g, n)| (gw(g), ConstCounter::new(n.0))),
        )?;
        family(
            &mut enc,
            "headend_timeouts",
            "Requests that got no usable reply in time, by gateway",
            counter,
            per_gateway
                .iter()
                .map(|(g, n)| (gw(g), ConstCounter::new(n.1))),
        )?;
        family(
            &mut enc,
            "headend_garbled_frames",
            "Frames from the gateway that failed their checksum or framing, by gateway",
            counter,
            per_gateway
                .iter()
                .map(|(g, n)| (gw(g), ConstCounter::new(n.2))),
        )?;
        let plain = |name: &str, help: &str, v: u64, enc: &mut DescriptorEncoder<'_>| {
            family(
                enc,
                name,
                help,
                counter,
                [(Labels::new(), ConstCounter::new(v))],
            )
        };
        plain(
            "headend_unmatched_replies",
            "Replies that matched no outstanding request",
            h.unmatched_replies,
            &mut enc,
        )?;
        plain(
            "headend_gateway_connects",
            "Gateway TCP connections established",
            h.connects,
            &mut enc,
        )?;
        plain(
            "headend_gateway_disconnects",
            "Gateway TCP connections lost",
            h.disconnects,
            &mut enc,
        )?;
        plain(
            "deliveries_completed",
            "Purchases confirmed by their meters",
            h.deliveries_completed,
            &mut enc,
        )?;
        plain(
            "deliveries_flagged",
            "Purchases stopped for staff (sequence gap, refusal)",
            h.deliveries_flagged,
            &mut enc,
        )?;
        let mut m = enc.encode_descriptor(
            "delivery_latency_seconds",
            "Purchase delivery time, paid to confirmed by the meter",
            None,
            MetricType::Histogram,
        )?;
        m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            h.delivery_latency_sum_s,
            h.delivery_latency_count,
            &per_bucket(&h.delivery_latency_buckets),
            None,
        )?;
        Ok(())
    }
}

/// Per-bucket counts (what the encoder sums up again, adding `+Inf` as
/// the total) from cumulative ones.
fn per_bucket(cumulative: &[(f64, u64)]) -> Vec<(f64, u64)> {
    let mut before = 0;
    cumulative
        .iter()
        .map(|&(le, n)| {
            let one = n.saturating_sub(before);
            before = n;
            (le, one)
        })
        .collect()
}

/// Middleware: counts every answer by matched route template and status.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| route_label(p.as_str()));
    let res = next.run(req).await;
    state
        .metrics()
        .observe(&method, &route, res.status().as_u16(), started.elapsed());
    res
}

/// A route template as a label value: `/api/orders/{out_trade_no}` is
/// written `/api/orders/:out_trade_no` (`{*rest}` as `*rest`), so that no
/// label value holds a brace: the format allows them, but common
/// text-format parsers (prometheus-parse among them) end a label set at the
/// first `}` and silently drop the sample.
fn route_label(template: &str) -> String {
    template
        .replace("{*", "*")
        .replace('{', ":")
        .replace('}', "")
}

/// The client as the throttles see it, if the server recorded one.
fn client(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

async fn exposition(state: &AppState) -> Response {
    let body = state.metrics().render(state.db()).await;
    let mut res = (StatusCode::OK, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `GET /metrics` on the main listener.
pub(crate) async fn main_listener(State(state): State<AppState>, req: Request) -> Response {
    let s = state.metrics().settings();
    match client(&req) {
        Some(ip) if !s.own_listener && s.allows(ip) => exposition(&state).await,
        _ => crate::pages::not_found(req.uri().clone(), req.headers().clone()).await,
    }
}

/// `GET /metrics` on its own listener.
async fn own_listener(State(state): State<AppState>, req: Request) -> Response {
    match client(&req) {
        Some(ip) if state.metrics().settings().allows(ip) => exposition(&state).await,
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The router of the metrics listener (`[metrics] listen`): `/metrics`
/// only, to the same clients.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(own_listener))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::{MetricsSettings, per_bucket};

    #[test]
    fn only_loopback_scrapes_by_default_and_the_allow_list_adds_networks() {
        let d = MetricsSettings::default();
        for ip in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert!(d.allows(ip.parse().expect("ip")), "{ip}");
        }
        for ip in [
            "10.1.2.3",
            "203.0.113.7",
            "::ffff:203.0.113.7",
            "2001:db8::1",
        ] {
            assert!(!d.allows(ip.parse().expect("ip")), "{ip}");
        }
        let a = MetricsSettings {
            allow: vec!["10.0.0.0/8".parse().expect("net")],
            ..MetricsSettings::default()
        };
        assert!(a.allows("10.1.2.3".parse().expect("ip")));
        assert!(!a.allows("11.1.2.3".parse().expect("ip")));
        let off = MetricsSettings {
            enabled: false,
            ..MetricsSettings::default()
        };
        assert!(!off.allows("127.0.0.1".parse().expect("ip")));
    }

    #[test]
    fn route_labels_have_no_braces() {
        assert_eq!(super::route_label("/me/meters/{id}"), "/me/meters/:id");
        assert_eq!(
            super::route_label("/api/orders/{out_trade_no}/pay"),
            "/api/orders/:out_trade_no/pay"
        );
        assert_eq!(super::route_label("/static/{*path}"), "/static/*path");
        assert_eq!(super::route_label("/login"), "/login");
    }

    #[test]
    fn cumulative_buckets_become_per_bucket_counts() {
        assert_eq!(
            per_bucket(&[(1.0, 2), (5.0, 2), (10.0, 5)]),
            vec![(1.0, 2), (5.0, 0), (10.0, 3)]
        );
    }
}
