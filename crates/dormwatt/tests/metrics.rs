//! `GET /metrics` (issue 16 item 1), black-box against the real binary:
//! after a short `dormwatt demo` run (the reference campus seeded, the
//! simulator answering, the head-end polling, one purchase paid through the
//! payment sandbox and delivered to its meter) a scrape parses with a
//! Prometheus text-format parser (`prometheus-parse`) and shows every
//! family the issue names, with sane values, on both backends. The sample
//! Grafana dashboard (docs/grafana-dashboard.json) uses only names a real
//! scrape has. Who may scrape: loopback only by default (a client forwarded
//! by a trusted proxy is not loopback), an allow-list, its own listener.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;
use common::{BIN, temp_dir};

/// Upper bound on the server coming up (migrations and seeding 2316 meters).
const START_ATTEMPTS: u32 = 1200;
/// Polls of `/metrics` waiting for the head-end's first reads.
const READ_ATTEMPTS: u32 = 600;
/// Polls of the order waiting for its delivery.
const DELIVERY_ATTEMPTS: u32 = 600;
const POLL: Duration = Duration::from_millis(100);
/// The buyer's phone number, which no log line may hold.
const PHONE: &str = "13812345678";

/// Ports the seeded plan's gateways may take (`simulator.base_port + i`).
const GATEWAY_PORTS: u16 = 48;

/// A running `dormwatt` process, killed on drop.
struct Server {
    child: Child,
    base: String,
    stderr: PathBuf,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The first port of `GATEWAY_PORTS` consecutive free ones.
fn free_port_range() -> u16 {
    for _ in 0..200 {
        let start = 20_000 + (rand::random::<u16>() % 40_000);
        let held: Vec<_> = (start..start + GATEWAY_PORTS)
            .map_while(|p| std::net::TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if held.len() == usize::from(GATEWAY_PORTS) {
            return start;
        }
    }
    panic!("no {GATEWAY_PORTS} consecutive free ports");
}

impl Server {
    /// Runs `dormwatt --config dormwatt.toml args…` in a new directory
    /// holding `config` (whose `listen` is `127.0.0.1:port`) and waits for
    /// `/healthz`.
    async fn start(tag: &str, port: u16, config: &str, args: &[&str]) -> Self {
        let dir = temp_dir(&format!("metrics-{tag}"));
        std::fs::write(dir.join("dormwatt.toml"), config).expect("config");
        let stderr = dir.join("stderr.log");
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars() {
            if k.starts_with("DORMWATT_") {
                cmd.env_remove(k);
            }
        }
        cmd.current_dir(&dir)
            .env("RUST_LOG", "info,sqlx=warn")
            .args(["--config", "dormwatt.toml"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        let child = cmd.spawn().expect("start dormwatt");
        let mut s = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            stderr,
            dir,
        };
        for _ in 0..START_ATTEMPTS {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("dormwatt exited with {status}: {}", s.stderr_text());
            }
            if let Ok(r) = reqwest::get(format!("{}/healthz", s.base)).await
                && r.status().is_success()
            {
                return s;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("dormwatt did not come up: {}", s.stderr_text());
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// `GET url` as (status, body), optionally as a client forwarded from `xff`.
async fn get(url: &str, xff: Option<&str>) -> (u16, String) {
    let mut req = http().get(url);
    if let Some(ip) = xff {
        req = req.header("x-forwarded-for", ip);
    }
    let r = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    (status, r.text().await.expect("body"))
}

/// One parsed scrape.
struct Scrape {
    text: String,
    parsed: prometheus_parse::Scrape,
    /// `# TYPE` of every family.
    types: BTreeMap<String, String>,
}

impl Scrape {
    fn parse(text: String) -> Self {
        let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .expect("the exposition parses");
        // prometheus-parse skips a line it cannot read: every sample line
        // must be in what it returned.
        let lines = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .count();
        let read: usize = parsed
            .samples
            .iter()
            .map(|s| match &s.value {
                prometheus_parse::Value::Histogram(b) => b.len(),
                prometheus_parse::Value::Summary(q) => q.len(),
                _ => 1,
            })
            .sum();
        assert_eq!(read, lines, "the parser read every sample line of\n{text}");
        let types = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_once(' '))
            .map(|(n, t)| (n.to_owned(), t.trim().to_owned()))
            .collect();
        Self {
            text,
            parsed,
            types,
        }
    }

    /// Samples of `metric` (a histogram by its family name).
    fn samples(&self, metric: &str) -> Vec<&prometheus_parse::Sample> {
        self.parsed
            .samples
            .iter()
            .filter(|s| s.metric == metric)
            .collect()
    }

    /// (label values of `keys`, value) of every sample of `metric`.
    fn values(&self, metric: &str, keys: &[&str]) -> Vec<(Vec<String>, f64)> {
        let rows: Vec<_> = self
            .samples(metric)
            .into_iter()
            .map(|s| {
                let labels = keys
                    .iter()
                    .map(|k| {
                        s.labels
                            .get(k)
                            .unwrap_or_else(|| panic!("{metric} has no label {k}"))
                            .to_owned()
                    })
                    .collect();
                let v = match s.value {
                    prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Untyped(v) => v,
                    _ => panic!("{metric} is not a plain value"),
                };
                (labels, v)
            })
            .collect();
        assert!(!rows.is_empty(), "no {metric} in\n{}", self.text);
        rows
    }

    fn sum(&self, metric: &str) -> f64 {
        self.values(metric, &[]).iter().map(|(_, v)| v).sum()
    }

    /// Every sample name the exposition has (histograms as `_bucket`,
    /// `_sum`, `_count`).
    fn names(&self) -> BTreeSet<String> {
        self.text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(str::to_owned)
            .collect()
    }

    fn assert_type(&self, family: &str, kind: &str) {
        assert_eq!(
            self.types.get(family).map(String::as_str),
            Some(kind),
            "TYPE of {family}"
        );
    }
}

/// The naming conventions: `dormwatt_` prefix, counters end in `_total`,
/// durations in `_seconds` (never ms), histograms have their three series.
fn assert_conventions(s: &Scrape) {
    assert!(!s.types.is_empty());
    for (family, kind) in &s.types {
        assert!(family.starts_with("dormwatt_"), "{family}");
        assert!(
            !family.contains("_ms") && !family.contains("milli"),
            "base units: {family}"
        );
        assert!(
            s.parsed.docs.contains_key(family),
            "{family} has a HELP line"
        );
        let names = s.names();
        match kind.as_str() {
            // The 0.0.4 text format names a counter's family with its
            // `_total` sample name.
            "counter" => {
                assert!(family.ends_with("_total"), "{family}");
                assert!(names.contains(family), "{family}");
                for sample in s.samples(family) {
                    assert!(
                        matches!(sample.value, prometheus_parse::Value::Counter(v) if v >= 0.0),
                        "{family} parses as a counter"
                    );
                }
            }
            "histogram" => {
                assert!(family.ends_with("_seconds"), "{family}");
                for part in ["_bucket", "_sum", "_count"] {
                    assert!(names.contains(&format!("{family}{part}")), "{family}{part}");
                }
            }
            "gauge" => {}
            other => panic!("{family}: unexpected type {other}"),
        }
    }
}

/// Cumulative buckets of a histogram sample are non-decreasing, end in
/// `+Inf`, and `+Inf` equals `_count`.
fn assert_histogram(s: &Scrape, family: &str, want_observations: bool) {
    let hs = s.samples(family);
    assert!(!hs.is_empty(), "{family}");
    let mut observed = 0.0;
    for h in hs {
        let prometheus_parse::Value::Histogram(buckets) = &h.value else {
            panic!("{family} is not a histogram");
        };
        let counts: Vec<f64> = buckets.iter().map(|b| b.count).collect();
        assert!(
            counts.windows(2).all(|w| w[0] <= w[1]),
            "{family}: {counts:?}"
        );
        let last = buckets.last().expect("buckets");
        assert!(last.less_than.is_infinite(), "{family} ends in +Inf");
        observed += last.count;
    }
    let count: f64 = s
        .values(&format!("{family}_count"), &[])
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert!(
        (count - observed).abs() < 0.5,
        "{family}: {count} vs {observed}"
    );
    if want_observations {
        assert!(count >= 1.0, "{family} observed something");
        assert!(s.sum(&format!("{family}_sum")) > 0.0, "{family}_sum");
    }
}

/// Fresh databases: a SQLite file in `dir`, or a new PostgreSQL database.
async fn database(pg: bool, dir: &Path) -> String {
    if pg {
        store::testing::postgres_url()
            .await
            .expect("postgres")
            .expect("configured")
    } else {
        format!("sqlite://{}", dir.join("demo.db").display())
    }
}

async fn drop_database(url: &str) {
    if url.starts_with("postgres") {
        let admin = std::env::var(store::testing::PG_URL_ENV).expect("admin url");
        let name = url.rsplit('/').next().expect("db name");
        store::scratch::drop_postgres(&admin, name)
            .await
            .expect("drop");
    }
}

/// One purchase as a student's phone makes it: a session (made in the
/// database, as the WeChat login would), `POST /api/orders`,
/// `POST /api/orders/{no}/pay` (our server prepays at the sandbox), the
/// payment at the sandbox's cashier (which notifies us), then the head-end
/// delivers it to the simulated meter. Returns the order number once the
/// order is `completed`, and the student's openid.
async fn buy_through_the_sandbox(s: &Server, url: &str, sandbox: &str) -> (String, String) {
    let db = store::Db::connect(url, &Default::default())
        .await
        .expect("connect");
    let (area_id, address): (i64, String) = store::on_db!(&db, |p| sqlx::query_as(
        "select area_id, address from meter order by id limit 1"
    )
    .fetch_one(p)
    .await
    .expect("a seeded meter"));
    let now = store::now_ms();
    let student = store::students::create_demo(&db, "指标同学", now)
        .await
        .expect("student");
    store::students::update_profile(&db, student.id, "指标同学", PHONE)
        .await
        .expect("phone");
    let token = hex::encode(rand::random::<[u8; 32]>());
    let csrf = hex::encode(rand::random::<[u8; 32]>());
    let hash = hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ));
    store::students::create_session(&db, &hash, student.id, &csrf, now, now + 3_600_000)
        .await
        .expect("session");
    db.close().await;
    let c = http();
    let cookie = format!("dw_session={token}");
    let r = c
        .post(format!("{}/api/orders", s.base))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&serde_json::json!({"area_id": area_id, "meter_address": address, "kwh": 2}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status().as_u16(), 201, "create: {}", s.stderr_text());
    let order: serde_json::Value = r.json().await.expect("order");
    let otn = order["out_trade_no"]
        .as_str()
        .expect("out_trade_no")
        .to_owned();
    let r = c
        .post(format!("{}/api/orders/{otn}/pay", s.base))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .expect("pay");
    assert_eq!(r.status().as_u16(), 200, "pay: {}", s.stderr_text());
    let r = c
        .post(format!("{sandbox}/admin/pay"))
        .json(&serde_json::json!({ "out_trade_no": otn }))
        .send()
        .await
        .expect("sandbox pay");
    assert!(r.status().is_success(), "sandbox: {}", r.status());
    for _ in 0..DELIVERY_ATTEMPTS {
        let r = c
            .get(format!("{}/api/orders/{otn}", s.base))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("order");
        let o: serde_json::Value = r.json().await.expect("order json");
        if o["state"] == "completed" {
            return (otn, student.openid);
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("order {otn} was not delivered: {}", s.stderr_text());
}

/// The demo's configuration: its own ports, and the test's loopback as a
/// trusted proxy (so a forwarded client can be played).
fn demo_config(port: u16, url: &str, gateways: u16, sandbox: u16) -> String {
    format!(
        "listen = \"127.0.0.1:{port}\"\n\
         database_url = \"{url}\"\n\
         [simulator]\nbase_port = {gateways}\n\
         [payment]\nsandbox_listen = \"127.0.0.1:{sandbox}\"\n\
         [web]\ntrusted_proxies = [\"127.0.0.1\"]\n"
    )
}

/// The names the issue lists, with sane values after a short demo run.
async fn a_short_demo_run_shows_every_named_family(pg: bool) {
    let dir = temp_dir(if pg { "metrics-pg" } else { "metrics-sqlite" });
    let url = database(pg, &dir).await;
    let port = free_port();
    let sandbox_port = free_port();
    let config = demo_config(port, &url, free_port_range(), sandbox_port);
    let s = Server::start(
        if pg { "demo-pg" } else { "demo-sqlite" },
        port,
        &config,
        &["demo", "--history-days", "0"],
    )
    .await;
    let metrics_url = format!("{}/metrics", s.base);

    // The head-end polls a little: wait for its first successful reads.
    let mut polled = false;
    for _ in 0..READ_ATTEMPTS {
        let (status, body) = get(&metrics_url, None).await;
        assert_eq!(status, 200, "{body}");
        let scrape = Scrape::parse(body);
        if !scrape
            .samples("dormwatt_headend_reads_received_total")
            .is_empty()
            && scrape.sum("dormwatt_headend_reads_received_total") > 0.0
        {
            polled = true;
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert!(polled, "the head-end read no meter: {}", s.stderr_text());
    let (otn, openid) =
        buy_through_the_sandbox(&s, &url, &format!("http://127.0.0.1:{sandbox_port}")).await;
    // A page and an unknown path, so the HTTP families have a few routes.
    assert_eq!(get(&format!("{}/login", s.base), None).await.0, 200);
    assert_eq!(get(&format!("{}/no-such-page", s.base), None).await.0, 404);

    // The database gauges are cached for a few seconds (web::metrics::
    // DB_GAUGES_TTL): scrape until they show the purchase.
    let mut scrape = None;
    for _ in 0..READ_ATTEMPTS {
        let r = http().get(&metrics_url).send().await.expect("scrape");
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(
            r.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let s = Scrape::parse(r.text().await.expect("body"));
        let completed = s
            .samples("dormwatt_orders")
            .iter()
            .any(|o| o.labels.get("state") == Some("completed"));
        if completed {
            scrape = Some(s);
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let scrape = scrape.unwrap_or_else(|| panic!("no completed order in /metrics"));
    assert_conventions(&scrape);

    // Meters total/online by building: the reference campus.
    let total = scrape.values("dormwatt_meters", &["area", "building"]);
    let online = scrape.values("dormwatt_meters_online", &["area", "building"]);
    assert_eq!(total.len(), online.len());
    assert!(total.len() >= 16, "{total:?}");
    let meters: f64 = total.iter().map(|(_, v)| v).sum();
    assert!(meters >= 2316.0, "{meters}");
    for ((b, t), (b2, o)) in total.iter().zip(&online) {
        assert_eq!(b, b2);
        assert!(*o >= 0.0 && o <= t, "{b:?}: {o} of {t} online");
    }
    assert!(
        online.iter().map(|(_, v)| v).sum::<f64>() >= 1.0,
        "the read meters are online"
    );
    scrape.assert_type("dormwatt_meters", "gauge");

    // Reads due/received by bus.
    let due = scrape.values("dormwatt_headend_reads_due_total", &["bus", "gateway"]);
    let received = scrape.values("dormwatt_headend_reads_received_total", &["bus", "gateway"]);
    assert_eq!(due.len(), received.len());
    for ((b, d), (b2, r)) in due.iter().zip(&received) {
        assert_eq!(b, b2);
        assert!(r <= d, "{b:?}: {r} received of {d} due");
    }
    assert!(received.iter().map(|(_, v)| v).sum::<f64>() >= 1.0);
    scrape.assert_type("dormwatt_headend_reads_due_total", "counter");

    // Frames, timeouts, garbled replies by gateway.
    let frames = scrape.values("dormwatt_headend_frames_sent_total", &["gateway"]);
    let timeouts = scrape.values("dormwatt_headend_timeouts_total", &["gateway"]);
    let garbled = scrape.values("dormwatt_headend_garbled_frames_total", &["gateway"]);
    assert_eq!(frames.len(), timeouts.len());
    assert_eq!(frames.len(), garbled.len());
    let sent: f64 = frames.iter().map(|(_, v)| v).sum();
    assert!(
        sent >= scrape.sum("dormwatt_headend_reads_received_total"),
        "{sent}"
    );
    for ((g, f), (_, t)) in frames.iter().zip(&timeouts) {
        assert!(t <= f, "{g:?}: {t} timeouts of {f} frames");
    }

    // Delivery latency paid → completed: the purchase is in it.
    assert_histogram(&scrape, "dormwatt_delivery_latency_seconds", true);
    scrape.assert_type("dormwatt_delivery_latency_seconds", "histogram");
    assert!(scrape.sum("dormwatt_deliveries_completed_total") >= 1.0);

    // Orders by state: our purchase is completed.
    let orders = scrape.values("dormwatt_orders", &["state"]);
    let completed = orders
        .iter()
        .find(|(l, _)| l[0] == "completed")
        .map(|(_, v)| *v);
    assert!(completed >= Some(1.0), "{orders:?} ({otn})");
    for (_, v) in &orders {
        assert!(*v >= 0.0);
    }

    // Exceptions open: none in a clean run.
    assert_eq!(scrape.sum("dormwatt_exceptions_open"), 0.0);
    scrape.assert_type("dormwatt_exceptions_open", "gauge");

    // Job queue depth and oldest age by queue: the family is there (queues
    // with nothing queued are left out), ages are not negative.
    scrape.assert_type("dormwatt_job_queue_depth", "gauge");
    scrape.assert_type("dormwatt_job_queue_oldest_age_seconds", "gauge");
    for metric in [
        "dormwatt_job_queue_depth",
        "dormwatt_job_queue_oldest_age_seconds",
    ] {
        for s in scrape.samples(metric) {
            assert!(s.labels.get("queue").is_some(), "{metric}");
            let prometheus_parse::Value::Gauge(v) = s.value else {
                panic!("{metric}");
            };
            assert!(v >= 0.0, "{metric}: {v}");
        }
    }

    // HTTP requests by route and status, with a latency histogram; routes
    // are templates, never raw paths.
    let requests = scrape.values(
        "dormwatt_http_requests_total",
        &["method", "route", "status"],
    );
    let has = |route: &str, status: &str| {
        requests
            .iter()
            .any(|(l, v)| l[1] == route && l[2] == status && *v >= 1.0)
    };
    assert!(has("/metrics", "200"), "{requests:?}");
    assert!(has("/api/orders", "201"), "{requests:?}");
    assert!(has("/api/orders/:out_trade_no", "200"), "{requests:?}");
    assert!(has("/api/orders/:out_trade_no/pay", "200"), "{requests:?}");
    assert!(has("/login", "200"), "{requests:?}");
    assert!(has("unmatched", "404"), "{requests:?}");
    assert!(
        requests.iter().all(|(l, _)| !l[1].contains(&otn)),
        "no raw path: {requests:?}"
    );
    assert_histogram(&scrape, "dormwatt_http_request_duration_seconds", true);

    // The database pool: in use, idle, the acquire wait, the maximum.
    let pool = scrape.values("dormwatt_db_pool_connections", &["state"]);
    let states: BTreeSet<&str> = pool.iter().map(|(l, _)| l[0].as_str()).collect();
    assert_eq!(states, BTreeSet::from(["idle", "in_use"]));
    let max = scrape.sum("dormwatt_db_pool_connections_max");
    assert!(max >= 1.0);
    assert!(pool.iter().map(|(_, v)| v).sum::<f64>() <= max);
    let wait = scrape.sum("dormwatt_db_pool_acquire_wait_seconds");
    assert!((0.0..30.0).contains(&wait), "{wait}");

    // A client forwarded by the (trusted) proxy from outside is not
    // loopback: the same 404 as an unknown path.
    let (status, body) = get(&metrics_url, Some("203.0.113.7")).await;
    assert_eq!(status, 404);
    assert!(!body.contains("dormwatt_"), "{body}");

    // Issue 16 "done when": the whole run's log (info level) has neither
    // the buyer's openid nor their phone number.
    let log = s.stderr_text();
    assert!(log.contains("dormwatt is serving"), "{log}");
    assert!(!log.contains(&openid), "the openid in the log");
    assert!(!log.contains(PHONE), "the phone number in the log");

    // Every name the sample dashboard queries is in this real scrape.
    dashboard_names_exist(&scrape);

    drop(s);
    drop_database(&url).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_demo_run_shows_every_named_family_on_sqlite() {
    a_short_demo_run_shows_every_named_family(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_demo_run_shows_every_named_family_on_postgres() {
    if std::env::var(store::testing::PG_URL_ENV).is_err() {
        // Prints the skip notice.
        assert!(store::testing::postgres_url().await.unwrap().is_none());
        return;
    }
    a_short_demo_run_shows_every_named_family(true).await;
}

/// docs/grafana-dashboard.json.
fn dashboard() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/grafana-dashboard.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("json")
}

/// Every `expr` of the dashboard, recursively.
fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

/// The metric names an expression uses: identifiers starting `dormwatt_`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("dormwatt_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

fn dashboard_names_exist(scrape: &Scrape) {
    let mut all = Vec::new();
    exprs(&dashboard(), &mut all);
    assert!(all.len() >= 10, "{all:?}");
    let have = scrape.names();
    let mut used = BTreeSet::new();
    for e in &all {
        let names = metric_names(e);
        assert!(!names.is_empty(), "an expr without a dormwatt metric: {e}");
        for n in names {
            assert!(
                have.contains(&n),
                "the dashboard uses {n}, which /metrics does not have ({e})"
            );
            used.insert(n);
        }
    }
    // The dashboard covers every family the issue names.
    for family in [
        "dormwatt_meters",
        "dormwatt_meters_online",
        "dormwatt_headend_reads_due_total",
        "dormwatt_headend_reads_received_total",
        "dormwatt_headend_frames_sent_total",
        "dormwatt_headend_timeouts_total",
        "dormwatt_headend_garbled_frames_total",
        "dormwatt_delivery_latency_seconds_bucket",
        "dormwatt_orders",
        "dormwatt_exceptions_open",
        "dormwatt_job_queue_depth",
        "dormwatt_job_queue_oldest_age_seconds",
        "dormwatt_http_requests_total",
        "dormwatt_http_request_duration_seconds_bucket",
        "dormwatt_db_pool_connections",
        "dormwatt_db_pool_acquire_wait_seconds",
    ] {
        assert!(
            used.contains(family),
            "the dashboard does not show {family}"
        );
    }
}

/// The name extraction finds names next to PromQL syntax.
#[test]
fn metric_names_are_found_in_promql() {
    assert_eq!(
        metric_names(
            "sum by (gateway) (rate(dormwatt_headend_timeouts_total[5m])) / rate(dormwatt_x{a=\"b\"}[1m])"
        ),
        BTreeSet::from([
            "dormwatt_headend_timeouts_total".to_owned(),
            "dormwatt_x".to_owned()
        ])
    );
}

/// A `serve --no-headend` on a fresh SQLite file with `extra` config.
async fn web_node(tag: &str, extra: &str) -> Server {
    let port = free_port();
    let dir = std::env::temp_dir();
    let db = dir.join(format!(
        "dw-metrics-{tag}-{}-{}.db",
        std::process::id(),
        store::now_ms()
    ));
    let config = format!(
        "listen = \"127.0.0.1:{port}\"\n\
         database_url = \"sqlite://{}\"\n\
         [payment]\nprovider = \"none\"\n\
         [web]\ntrusted_proxies = [\"127.0.0.1\"]\n{extra}",
        db.display()
    );
    Server::start(tag, port, &config, &["serve", "--no-headend"]).await
}

/// The allow-list lets a forwarded client of its network scrape, and only it.
#[tokio::test]
async fn the_allow_list_admits_its_networks_only() {
    let s = web_node(
        "allow",
        "[metrics]\nallow = [\"203.0.113.0/24\", \"2001:db8::5\"]\n",
    )
    .await;
    let url = format!("{}/metrics", s.base);
    for (client, want) in [
        (None, 200),
        (Some("203.0.113.7"), 200),
        (Some("2001:db8::5"), 200),
        (Some("198.51.100.7"), 404),
        (Some("2001:db8::6"), 404),
    ] {
        let (status, body) = get(&url, client).await;
        assert_eq!(status, want, "{client:?}: {body}");
        assert_eq!(
            body.contains("dormwatt_http_requests"),
            want == 200,
            "{client:?}"
        );
    }
}

/// Off: 404 to everyone, loopback too.
#[tokio::test]
async fn disabled_metrics_answer_404_to_loopback_too() {
    let s = web_node("off", "[metrics]\nenabled = false\n").await;
    let (status, _) = get(&format!("{}/metrics", s.base), None).await;
    assert_eq!(status, 404);
}

/// Its own listener: `/metrics` there (and nothing else), 404 on the main one.
#[tokio::test]
async fn its_own_listener_serves_metrics_and_the_main_one_does_not() {
    let own = free_port();
    let s = web_node("own", &format!("[metrics]\nlisten = \"127.0.0.1:{own}\"\n")).await;
    assert_eq!(get(&format!("{}/metrics", s.base), None).await.0, 404);
    let mut up = false;
    for _ in 0..START_ATTEMPTS {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{own}/metrics")).await {
            assert_eq!(r.status().as_u16(), 200);
            let scrape = Scrape::parse(r.text().await.expect("body"));
            assert_conventions(&scrape);
            assert!(!scrape.samples("dormwatt_db_pool_connections").is_empty());
            up = true;
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert!(up, "no metrics listener: {}", s.stderr_text());
    assert_eq!(
        get(&format!("http://127.0.0.1:{own}/healthz"), None)
            .await
            .0,
        404
    );
}

/// `dormwatt --config F check-config` on a migrated SQLite file with
/// `metrics` as the `[metrics]` section (and `extra` top-level keys).
fn check_config(dir: &Path, name: &str, extra: &str, metrics: &str) -> (bool, String) {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "listen = \"0.0.0.0:8080\"\ndatabase_url = \"sqlite://{}\"\n{extra}\n[metrics]\n{metrics}\n",
            dir.join("cc.db").display()
        ),
    )
    .expect("config");
    let o = Command::new(BIN)
        .current_dir(dir)
        .env_remove("DORMWATT_DATABASE_URL")
        .env_remove("DORMWATT_CONFIG")
        .env("RUST_LOG", "warn")
        .arg("--config")
        .arg(&config)
        .arg("check-config")
        .output()
        .expect("check-config");
    (o.status.success(), common::text(&o))
}

/// check-config refuses a bad `[metrics]` with a message naming the key,
/// and says where and to whom /metrics answers when it is good.
#[test]
fn check_config_refuses_a_bad_metrics_section() {
    let dir = temp_dir("metrics-cc");
    let migrated = Command::new(BIN)
        .current_dir(&dir)
        .env_remove("DORMWATT_CONFIG")
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.join("cc.db").display()))
        .arg("migrate")
        .output()
        .expect("migrate");
    assert!(migrated.status.success(), "{}", common::text(&migrated));
    for (name, extra, metrics, want) in [
        (
            "cidr",
            "",
            "allow = [\"10.0.0.0/33\"]",
            "metrics.allow: '10.0.0.0/33' is not a network like 10.0.0.0/8 or an IP address",
        ),
        (
            "word",
            "",
            "allow = [\"prometheus.example\"]",
            "metrics.allow: 'prometheus.example' is not a network",
        ),
        (
            "addr",
            "",
            "listen = \"localhost:9464\"",
            "metrics.listen: 'localhost:9464' is not an address like 127.0.0.1:9464",
        ),
        (
            "same",
            "",
            "listen = \"0.0.0.0:8080\"",
            "metrics.listen: 0.0.0.0:8080 takes the main listener's port (0.0.0.0:8080)",
        ),
        (
            "wildcard",
            "",
            "listen = \"127.0.0.1:8080\"",
            "metrics.listen: 127.0.0.1:8080 takes the main listener's port (0.0.0.0:8080)",
        ),
        (
            "sandbox",
            "[payment]\nsandbox_listen = \"127.0.0.1:9464\"",
            "listen = \"127.0.0.1:9464\"",
            "metrics.listen: 127.0.0.1:9464 takes the port of payment.sandbox_listen (127.0.0.1:9464)",
        ),
        (
            "headend",
            "[headend]\nlisten = \"0.0.0.0:9000\"",
            "listen = \"127.0.0.1:9000\"",
            "metrics.listen: 127.0.0.1:9000 takes the port of headend.listen (0.0.0.0:9000)",
        ),
        ("key", "", "allowed = []", "metrics.allowed: unknown field"),
    ] {
        let (ok, out) = check_config(&dir, name, extra, metrics);
        assert!(!ok, "{name}: accepted\n{out}");
        assert!(out.contains(want), "{name}: {want}\n{out}");
    }
    let (ok, out) = check_config(
        &dir,
        "good",
        "[payment]\nprovider = \"none\"",
        "allow = [\"10.0.0.0/8\"]\nlisten = \"127.0.0.1:9464\"",
    );
    assert!(ok, "{out}");
    assert!(
        out.contains(
            "metrics: /metrics on its own listener 127.0.0.1:9464, to loopback and 10.0.0.0/8"
        ),
        "{out}"
    );
    let (ok, out) = check_config(&dir, "default", "[payment]\nprovider = \"none\"", "");
    assert!(ok, "{out}");
    assert!(
        out.contains("metrics: /metrics on the main listener, to loopback clients only"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
