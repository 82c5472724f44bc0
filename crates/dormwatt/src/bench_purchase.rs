//! `dormwatt bench purchase`: end-to-end purchases per second with many
//! concurrent students, on SQLite and on PostgreSQL, next to `pgbench
//! -b tpcb-like` on the same PostgreSQL server for a hardware-independent ratio.
//!
//! One purchase is what a student's phone and WeChat do, over HTTP against
//! the real router, store and payment code:
//! 1. `POST /api/orders` (session cookie + CSRF header) — timed: "create";
//! 2. `POST /api/orders/{no}/pay` — our server prepays at the sandbox over HTTP;
//! 3. the student confirms at the sandbox cashier ([`pay::Sandbox::pay`]),
//!    which POSTs a signed, AES-GCM encrypted notification to our notify URL;
//! 4. the purchase is done when the order is `charging`, i.e. the payment,
//!    its ledger rows and its delivery job are committed.
//!
//! Each client loops over steps 1–3 like a phone (which does not wait for
//! WeChat's notification to reach us); after the measuring window the run
//! waits until every paid order is `charging`, and the rate is purchases
//! divided by the time from start until that drain finished, so the
//! notification work is fully counted. Purchase latency (create → charging)
//! is taken from the orders' own timestamps.
//!
//! Server, sandbox and load generator share one process and the same cores
//! (as `wrk` on the same box would); the load generator speaks minimal
//! HTTP/1.1 over raw keep-alive TCP so that it costs little next to the server.

use anyhow::{Context, bail};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Most seconds a measurement may run.
const SECONDS_MAX: u64 = 120;
/// Most concurrent clients (each is a student with a session and a meter).
const CLIENTS_MAX: usize = 2000;
/// Longest a single purchase may take before the run fails.
const PURCHASE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response the load generator accepts.
const RESPONSE_BYTES_MAX: usize = 256 * 1024;
/// Poll interval while waiting for the notifications to drain.
const POLL: Duration = Duration::from_millis(20);
/// pgbench connections: as many as our pool, so both sides get the same
/// server concurrency (PostgreSQL's default max_connections is 100).
const PGBENCH_CLIENTS: u32 = 16;

/// Arguments of `dormwatt bench purchase`.
#[derive(Debug, clap::Args)]
pub struct BenchPurchaseArgs {
    /// Concurrent clients (students paying in a loop).
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Seconds of measurement per backend (and of pgbench), at most 120.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// PostgreSQL server to use (a fresh database is created on it, and a
    /// scratch one for pgbench); default `$DORMWATT_TEST_PG_URL`, or the
    /// global `--database-url` when it is a postgres:// URL. Without any,
    /// only SQLite is measured.
    #[arg(long, env = "DORMWATT_TEST_PG_URL")]
    pg_url: Option<String>,
    /// Skip SQLite.
    #[arg(long)]
    no_sqlite: bool,
    /// Pause of each client between purchases, in ms (0: closed loop, as
    /// fast as possible; a real student pauses for minutes).
    #[arg(long, default_value_t = 0)]
    think_ms: u64,
    /// Database pool size of the server under test.
    #[arg(long, default_value_t = 16)]
    pool: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Figures of one backend.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct Run {
    purchases: u64,
    purchases_per_s: f64,
    p50_create_ms: f64,
    p99_create_ms: f64,
    p50_purchase_ms: f64,
    p99_purchase_ms: f64,
    ledger_violations: usize,
    delivery_jobs: i64,
}

/// Runs `dormwatt bench purchase`; `database_url` is the global
/// `--database-url`, used for the PostgreSQL half when it is postgres://.
pub fn run(args: BenchPurchaseArgs, database_url: Option<&str>) -> anyhow::Result<()> {
    if args.seconds == 0 || args.seconds > SECONDS_MAX {
        bail!("--seconds must be 1..={SECONDS_MAX}");
    }
    if args.clients == 0 || args.clients > CLIENTS_MAX {
        bail!("--clients must be 1..={CLIENTS_MAX}");
    }
    let pg_url = args.pg_url.clone().or_else(|| {
        database_url
            .filter(|u| u.starts_with("postgres"))
            .map(str::to_owned)
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let sqlite = if args.no_sqlite {
            None
        } else {
            let dir = std::env::temp_dir().join(format!(
                "dormwatt-bench-purchase-{}-{}",
                std::process::id(),
                store::now_ms()
            ));
            std::fs::create_dir_all(&dir)?;
            let url = format!("sqlite://{}", dir.join("bench.db").display());
            let r = measure(&args, &url, "sqlite").await;
            let _ = std::fs::remove_dir_all(&dir);
            Some(r?)
        };
        let (postgres, pgbench_tps) = match &pg_url {
            Some(url) => {
                let name = format!("dw_bench_{}_{}", std::process::id(), store::now_ms());
                let db_url = create_database(url, &name).await?;
                let r = measure(&args, &db_url, "postgres").await;
                drop_database(url, &name).await;
                let r = r?;
                let tps = pgbench(url, args.seconds).await?;
                (Some(r), Some(tps))
            }
            None => (None, None),
        };
        report(&args, sqlite.as_ref(), postgres.as_ref(), pgbench_tps);
        anyhow::Ok(())
    })
}

fn report(
    args: &BenchPurchaseArgs,
    sqlite: Option<&Run>,
    postgres: Option<&Run>,
    pgbench_tps: Option<f64>,
) {
    let pg_per_s = postgres.map(|r| r.purchases_per_s);
    let ratio = pg_per_s.zip(pgbench_tps).map(|(a, b)| a / b);
    // The headline latency is PostgreSQL's (the production backend) when measured.
    let headline = postgres.or(sqlite);
    if args.json {
        let v = serde_json::json!({
            "clients": args.clients,
            "think_ms": args.think_ms,
            "seconds": args.seconds,
            "sqlite_purchases_per_s": sqlite.map(|r| r.purchases_per_s),
            "postgres_purchases_per_s": pg_per_s,
            "pgbench_tps": pgbench_tps,
            "ratio_to_pgbench": ratio,
            "p50_create_ms": headline.map(|r| r.p50_create_ms),
            "p99_create_ms": headline.map(|r| r.p99_create_ms),
            "sqlite": sqlite,
            "postgres": postgres,
        });
        println!("{v}");
        return;
    }
    println!(
        "dormwatt bench purchase: {} clients, {} s per backend",
        args.clients, args.seconds
    );
    for (name, r) in [("SQLite", sqlite), ("PostgreSQL", postgres)] {
        if let Some(r) = r {
            println!(
                "{name:<11} {:>8.1} purchases/s ({} in all); create p50 {:.1} ms, p99 {:.1} ms; \
                 purchase p50 {:.1} ms, p99 {:.1} ms; delivery jobs {}; ledger violations {}",
                r.purchases_per_s,
                r.purchases,
                r.p50_create_ms,
                r.p99_create_ms,
                r.p50_purchase_ms,
                r.p99_purchase_ms,
                r.delivery_jobs,
                r.ledger_violations
            );
        }
    }
    if let (Some(tps), Some(ratio)) = (pgbench_tps, ratio) {
        println!(
            "pgbench     {tps:>8.1} tps (tpcb-like, {PGBENCH_CLIENTS} clients); ratio {ratio:.2}"
        );
    } else {
        println!("PostgreSQL not measured (give --pg-url or set DORMWATT_TEST_PG_URL)");
    }
}

/// One logged-in student with a meter.
struct Client {
    cookie: String,
    csrf: String,
    area_id: i64,
    meter: String,
}

/// Measures one backend on a fresh database at `url`.
async fn measure(args: &BenchPurchaseArgs, url: &str, label: &str) -> anyhow::Result<Run> {
    let opts = store::DbOptions {
        connections_max: args.pool.max(1),
        ..store::DbOptions::default()
    };
    let db = store::Db::connect(url, &opts)
        .await
        .with_context(|| format!("cannot open {}", store::redact_url(url)))?;
    db.migrate().await?;
    let now = store::now_ms();
    let plan = domain::campus::reference_plan();
    store::campus::seed(&db, &plan, &Default::default(), now).await?;
    let area_id = store::campus::areas(&db).await?[0].id.get();
    let meters: Vec<String> = plan.areas[0]
        .buildings
        .iter()
        .flat_map(|b| b.meters())
        .map(|m| m.address.as_str().to_owned())
        .collect();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");
    let mut settings = web::payments::PaymentSettings::new("", "");
    settings.bill_reconciliation = false;
    // The sandbox has its own listener, as in `dormwatt demo`.
    let sandbox_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sandbox_base = format!("http://{}", sandbox_listener.local_addr()?);
    let payments = web::payments::Payments::sandbox(
        pay::Sandbox::demo(),
        &sandbox_base,
        &format!("{base}{}", web::payments::NOTIFY_PATH),
        settings,
    )?;
    let sandbox = payments.sandbox.clone().context("sandbox")?;
    let (stop_sandbox, sandbox_stopped) = tokio::sync::oneshot::channel::<()>();
    let served = sandbox.clone();
    tokio::spawn(async move {
        served
            .serve(sandbox_listener, async {
                let _ = sandbox_stopped.await;
            })
            .await
    });
    let state = web::AppState::new(
        db.clone(),
        {
            // Every client comes from 127.0.0.1: lift the per-IP cap.
            let mut s = web::Settings::new(base, domain::time::CampusTz::default(), false);
            s.limits.connections_per_ip_max = s.limits.connections_max;
            s
        },
        Some(payments),
    );
    let mut clients = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let student =
            store::students::upsert_by_openid(&db, &format!("oBench{label}{i:08}"), false, now)
                .await?;
        let set_cookie = web::session::start(&state, student.id).await?;
        let pair = set_cookie
            .to_str()?
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned();
        let token = pair
            .split_once('=')
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default();
        let row = store::students::session(&db, &web::session::token_hash(&token), now)
            .await?
            .context("session just created")?;
        clients.push(Client {
            cookie: pair,
            csrf: row.csrf_token,
            area_id,
            meter: meters[i % meters.len()].clone(),
        });
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(web::serve(listener, state, async {
        let _ = stopped.await;
    }));

    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients.len());
    let n = u32::try_from(clients.len()).unwrap_or(u32::MAX);
    for (i, c) in clients.into_iter().enumerate() {
        let sandbox = sandbox.clone();
        let think = Duration::from_millis(args.think_ms.min(60_000));
        // Spread the clients' starts over one think time, so that they do not
        // arrive in lockstep bursts.
        let offset = think * u32::try_from(i).unwrap_or(0) / n.max(1);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            client_loop(addr, &c, &sandbox, deadline, think).await
        }));
    }
    let mut create_ms = Vec::new();
    for t in tasks {
        create_ms.extend(t.await.context("client task")??);
    }
    // Every order created was paid at the sandbox; the purchases are done
    // when no order is unpaid any more.
    let drain_deadline = Instant::now() + PURCHASE_TIMEOUT;
    while !store::orders::in_state(&db, domain::order::OrderState::Unpaid, 1)
        .await?
        .is_empty()
    {
        if Instant::now() > drain_deadline {
            bail!("payments not recorded within {PURCHASE_TIMEOUT:?} after the window");
        }
        tokio::time::sleep(POLL).await;
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    let _ = stop_sandbox.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    let violations = store::ledger::check(&db).await?.len();
    let jobs = store::jobs::depths(&db)
        .await?
        .into_iter()
        .filter(|(q, _, _)| q == store::orders::DELIVER_QUEUE)
        .map(|(_, _, n)| n)
        .sum();
    let paid =
        store::orders::in_state(&db, domain::order::OrderState::Charging, 10_000_000).await?;
    let mut purchase_ms: Vec<f64> = paid
        .iter()
        .filter_map(|o| o.paid_at_ms.map(|p| (p - o.created_at_ms) as f64))
        .collect();
    db.close().await;
    let purchases = u64::try_from(purchase_ms.len()).unwrap_or(u64::MAX);
    Ok(Run {
        purchases,
        purchases_per_s: purchase_ms.len() as f64 / elapsed_s,
        p50_create_ms: percentile(&mut create_ms, 0.50),
        p99_create_ms: percentile(&mut create_ms, 0.99),
        p50_purchase_ms: percentile(&mut purchase_ms, 0.50),
        p99_purchase_ms: percentile(&mut purchase_ms, 0.99),
        ledger_violations: violations,
        delivery_jobs: jobs,
    })
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Buys 1 kWh in a loop until `deadline` (create, prepay, pay at the
/// cashier); returns the create latencies in ms. Any failure fails the run:
/// a benchmark that drops errors measures the wrong thing.
async fn client_loop(
    addr: std::net::SocketAddr,
    c: &Client,
    sandbox: &pay::Sandbox,
    deadline: Instant,
    think: Duration,
) -> anyhow::Result<Vec<f64>> {
    let mut conn = Conn::connect(addr).await?;
    let mut create_ms = Vec::new();
    let body =
        serde_json::json!({"area_id": c.area_id, "meter_address": c.meter, "kwh": 1}).to_string();
    while Instant::now() < deadline {
        let t0 = Instant::now();
        let (status, resp) = conn.request("POST", "/api/orders", c, Some(&body)).await?;
        if status != 201 {
            bail!(
                "create answered {status}: {}",
                String::from_utf8_lossy(&resp)
            );
        }
        create_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        let order: serde_json::Value = serde_json::from_slice(&resp)?;
        let otn = order["out_trade_no"]
            .as_str()
            .context("out_trade_no")?
            .to_owned();
        let (status, resp) = conn
            .request("POST", &format!("/api/orders/{otn}/pay"), c, Some(""))
            .await?;
        if status != 200 {
            bail!("pay answered {status}: {}", String::from_utf8_lossy(&resp));
        }
        sandbox
            .pay(&otn)
            .map_err(|e| anyhow::anyhow!("sandbox pay: {e}"))?;
        if !think.is_zero() {
            tokio::time::sleep(think).await;
        }
    }
    Ok(create_ms)
}

/// A keep-alive HTTP/1.1 connection (just enough for our JSON API).
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    async fn connect(addr: std::net::SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::new(stream),
        })
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        c: &Client,
        body: Option<&str>,
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let body = body.unwrap_or("");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nAccept: application/json\r\n\
             Content-Type: application/json\r\nCookie: {}\r\nX-CSRF-Token: {}\r\n\
             Content-Length: {}\r\n\r\n",
            c.cookie,
            c.csrf,
            body.len()
        );
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let mut line = String::new();
        self.reader.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let mut len = 0usize;
        loop {
            line.clear();
            if self.reader.read_line(&mut line).await? == 0 {
                bail!("connection closed in headers");
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().context("content-length")?;
            }
        }
        if len > RESPONSE_BYTES_MAX {
            bail!("response of {len} bytes");
        }
        let mut buf = vec![0; len];
        self.reader.read_exact(&mut buf).await?;
        Ok((status, buf))
    }
}

/// Creates database `name` (a safe identifier we made) and returns its URL.
async fn create_database(url: &str, name: &str) -> anyhow::Result<String> {
    Ok(store::scratch::create_postgres(url, name).await?)
}

async fn drop_database(url: &str, name: &str) {
    if let Err(e) = store::scratch::drop_postgres(url, name).await {
        eprintln!("warning: could not drop scratch database {name}: {e:#}");
    }
}

/// Runs pgbench's TPC-B-like script on a scratch database of the same
/// server for `seconds` and returns its tps.
async fn pgbench(url: &str, seconds: u64) -> anyhow::Result<f64> {
    let name = format!("dw_pgbench_{}_{}", std::process::id(), store::now_ms());
    let scratch = create_database(url, &name).await?;
    let run = async {
        let init = tokio::process::Command::new("pgbench")
            .args(["-i", "-q", "-s", "1", &scratch])
            .output()
            .await
            .context("cannot run pgbench (install postgresql-client)")?;
        if !init.status.success() {
            bail!(
                "pgbench -i failed: {}",
                String::from_utf8_lossy(&init.stderr)
            );
        }
        let clients = PGBENCH_CLIENTS.to_string();
        let out = tokio::time::timeout(
            Duration::from_secs(seconds + 60),
            tokio::process::Command::new("pgbench")
                .args(["-b", "tpcb-like", "-c", &clients, "-j", "2", "-T"])
                .arg(seconds.to_string())
                .arg(&scratch)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .context("pgbench did not finish")??;
        if !out.status.success() {
            bail!("pgbench failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| {
                l.strip_prefix("tps = ")
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|n| n.parse::<f64>().ok())
            })
            .with_context(|| format!("no tps in pgbench output: {text}"))
    };
    let r = run.await;
    drop_database(url, &name).await;
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn percentiles_and_urls() {
        let mut v = vec![5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(super::percentile(&mut v, 0.5), 3.0);
        assert_eq!(super::percentile(&mut v, 0.99), 5.0);
        assert_eq!(super::percentile(&mut [], 0.5), 0.0);
        assert_eq!(
            store::scratch::database_url("postgres://u@h:5432/postgres?x=1", "d"),
            "postgres://u@h:5432/d?x=1"
        );
    }
}
