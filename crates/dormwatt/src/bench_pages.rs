//! `dormwatt bench pages`: the overview page for random students of the
//! reference campus with years of usage history, under many concurrent
//! keep-alive connections.
//!
//! The server (`web::serve`, the real router and store) and the load
//! generator run in this one process on separate tokio runtimes, on the same
//! cores, as `wrk` on the same box would. The load generator speaks minimal
//! HTTP/1.1 over raw TCP so that it costs little next to the server.

use anyhow::{Context, bail};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Most seconds a measurement may run.
const DURATION_S_MAX: u64 = 120;
/// Most concurrent connections.
const CONNECTIONS_MAX: usize = 1000;
/// Most students created.
const STUDENTS_MAX: usize = 20_000;
/// Largest response the load generator accepts (pages must stay < 100 kB).
const RESPONSE_BYTES_MAX: usize = 256 * 1024;

/// Arguments of `dormwatt bench pages`.
#[derive(Debug, clap::Args)]
pub struct BenchPagesArgs {
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// Seconds of measurement (after warm-up), at most 120.
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Seconds of warm-up load before measuring.
    #[arg(long, default_value_t = 2)]
    warmup_s: u64,
    /// Days of daily-usage history per meter (3 years by default).
    #[arg(long, default_value_t = 1095)]
    history_days: u32,
    /// Students (each with one bound meter and a session).
    #[arg(long, default_value_t = 1000)]
    students: usize,
    /// Database pool size of the server.
    #[arg(long, default_value_t = 16)]
    pool: u32,
    /// Path to request (the overview by default; `/healthz` gives the
    /// harness's own ceiling).
    #[arg(long, default_value = "/overview")]
    path: String,
    /// Server worker threads (default: the number of cores).
    #[arg(long)]
    server_threads: Option<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `dormwatt bench pages` on the global `--database-url` when given
/// (an existing database that already holds the campus is reused as is:
/// history and students are only added where missing), else on a new
/// SQLite file in a temporary directory.
pub fn run(args: BenchPagesArgs, database_url: Option<&str>) -> anyhow::Result<()> {
    if args.duration_s == 0 || args.duration_s > DURATION_S_MAX {
        bail!("--duration-s must be 1..={DURATION_S_MAX}");
    }
    if args.connections == 0 || args.connections > CONNECTIONS_MAX {
        bail!("--connections must be 1..={CONNECTIONS_MAX}");
    }
    if args.students == 0 || args.students > STUDENTS_MAX {
        bail!("--students must be 1..={STUDENTS_MAX}");
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.server_threads.unwrap_or(cores).max(1))
        .thread_name("bench-server")
        .enable_all()
        .build()?;
    let tmp = std::env::temp_dir().join(format!("dormwatt-bench-pages-{}", std::process::id()));
    let url = match database_url {
        Some(u) => u.to_owned(),
        None => {
            std::fs::create_dir_all(&tmp)?;
            format!("sqlite://{}", tmp.join("bench.db").display())
        }
    };
    let (addr, tokens, setup_s) = server_rt.block_on(setup(&args, &url))?;
    // The server keeps running on server_rt's threads while the client runs.
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.max(1))
        .thread_name("bench-client")
        .enable_all()
        .build()?;
    let result = client_rt.block_on(load(&args, addr, &tokens));
    drop(client_rt);
    drop(server_rt);
    if database_url.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    let r = result?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "pages_per_s": r.pages_per_s,
                "p50_ms": r.p50_ms,
                "p99_ms": r.p99_ms,
                "max_ms": r.max_ms,
                "requests": r.requests,
                "errors": r.errors,
                "page_bytes": r.page_bytes,
                "history_days": args.history_days,
                "students": args.students,
                "connections": args.connections,
                "duration_s": args.duration_s,
                "backend": if url.starts_with("sqlite") { "sqlite" } else { "postgres" },
                "cores": cores,
                "setup_s": setup_s,
            })
        );
    } else {
        println!(
            "dormwatt bench pages: GET {}, {} connections, {} s",
            args.path, args.connections, args.duration_s
        );
        println!(
            "  backend        {}",
            if url.starts_with("sqlite") {
                "sqlite"
            } else {
                "postgres"
            }
        );
        println!(
            "  history        {} days × every meter of the reference campus",
            args.history_days
        );
        println!("  students       {}", args.students);
        println!("  pages/s        {:.0}", r.pages_per_s);
        println!(
            "  p50 / p99 / max  {:.2} / {:.2} / {:.2} ms",
            r.p50_ms, r.p99_ms, r.max_ms
        );
        println!("  requests       {} ({} errors)", r.requests, r.errors);
        println!("  page size      {} bytes", r.page_bytes);
        println!("  setup          {setup_s:.1} s");
    }
    if r.errors > 0 {
        bail!("{} requests failed", r.errors);
    }
    Ok(())
}

/// Seeds the campus, history, students with bindings and sessions; starts
/// the server. Returns its address and one session token per student.
async fn setup(
    args: &BenchPagesArgs,
    url: &str,
) -> anyhow::Result<(std::net::SocketAddr, Vec<String>, f64)> {
    let t0 = Instant::now();
    let db = store::Db::connect(
        url,
        &store::DbOptions {
            connections_max: args.pool,
            ..store::DbOptions::default()
        },
    )
    .await
    .context("cannot open the bench database")?;
    db.migrate().await?;
    let now = store::now_ms();
    let tz = domain::time::CampusTz::default().tz().clone();
    let plan = domain::campus::reference_plan();
    store::campus::seed(
        &db,
        &plan,
        &store::campus::GatewayAddressing::default(),
        now,
    )
    .await?;
    eprintln!(
        "bench pages: generating {} days of history…",
        args.history_days
    );
    store::history::generate(&db, args.history_days, &tz, now).await?;
    let area = store::campus::areas(&db)
        .await?
        .into_iter()
        .next()
        .context("no area")?;
    let addresses: Vec<domain::MeterAddress> = plan.areas[0]
        .buildings
        .iter()
        .flat_map(|b| b.meters())
        .map(|m| m.address)
        .collect();
    eprintln!("bench pages: creating {} students…", args.students);
    let mut tokens = Vec::with_capacity(args.students);
    let mut rng = 0x2545_F491_4F6C_DD1D_u64;
    for i in 0..args.students {
        rng = xorshift(rng);
        let idx = usize::try_from(rng % addresses.len() as u64).unwrap_or(0);
        let address = &addresses[idx];
        let s = store::students::upsert_by_openid(&db, &format!("bench-{i}"), false, now).await?;
        let meter = store::campus::meter_by_address(&db, area.id, address)
            .await?
            .context("meter")?;
        store::students::bind(&db, s.id, meter.id.get(), true, 8, now).await?;
        let token = web::session::random_token();
        store::students::create_session(
            &db,
            &web::session::token_hash(&token),
            s.id,
            &web::session::random_token(),
            now,
            now + 24 * 3600 * 1000,
        )
        .await?;
        tokens.push(token);
    }
    let mut settings =
        web::Settings::new("http://127.0.0.1", domain::time::CampusTz::default(), false);
    // Every load connection comes from 127.0.0.1: lift the per-IP cap.
    settings.limits.connections_per_ip_max = settings.limits.connections_max;
    let state = web::AppState::new(db, settings, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(web::serve(listener, state, std::future::pending()));
    Ok((addr, tokens, t0.elapsed().as_secs_f64()))
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

struct LoadResult {
    pages_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    requests: u64,
    errors: u64,
    page_bytes: usize,
}

async fn load(
    args: &BenchPagesArgs,
    addr: std::net::SocketAddr,
    tokens: &[String],
) -> anyhow::Result<LoadResult> {
    let warm_until = Instant::now() + Duration::from_secs(args.warmup_s);
    let end = warm_until + Duration::from_secs(args.duration_s);
    let mut tasks = Vec::with_capacity(args.connections);
    for c in 0..args.connections {
        let tokens: Vec<String> = tokens.to_vec();
        let path = args.path.clone();
        tasks.push(tokio::spawn(async move {
            connection(addr, tokens, path, c as u64 + 1, warm_until, end).await
        }));
    }
    let mut lat_us: Vec<u32> = Vec::new();
    let (mut errors, mut page_bytes) = (0_u64, 0_usize);
    for t in tasks {
        let (l, e, b) = t.await??;
        lat_us.extend(l);
        errors += e;
        page_bytes = page_bytes.max(b);
    }
    if lat_us.is_empty() {
        bail!("no request completed");
    }
    lat_us.sort_unstable();
    let q = |p: f64| {
        let i = ((lat_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(lat_us[i.min(lat_us.len() - 1)]) / 1000.0
    };
    let requests = lat_us.len() as u64;
    Ok(LoadResult {
        pages_per_s: requests as f64 / args.duration_s as f64,
        p50_ms: q(0.50),
        p99_ms: q(0.99),
        max_ms: q(1.0),
        requests,
        errors,
        page_bytes,
    })
}

/// One keep-alive connection sending requests back to back until `end`;
/// latencies are kept only after `warm_until`.
async fn connection(
    addr: std::net::SocketAddr,
    tokens: Vec<String>,
    path: String,
    seed: u64,
    warm_until: Instant,
    end: Instant,
) -> anyhow::Result<(Vec<u32>, u64, usize)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut buf = vec![0_u8; 64 * 1024];
    let mut lat = Vec::with_capacity(100_000);
    let (mut errors, mut page_bytes) = (0_u64, 0_usize);
    loop {
        let start = Instant::now();
        if start >= end {
            break;
        }
        rng = xorshift(rng);
        let token = &tokens[usize::try_from(rng % tokens.len() as u64).unwrap_or(0)];
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: bench\r\nCookie: dw_session={token}\r\nAccept-Language: zh-CN\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await?;
        let (status, body_len) = read_response(&mut stream, &mut buf).await?;
        let us = u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX);
        if status != 200 {
            errors += 1;
        }
        page_bytes = page_bytes.max(body_len);
        if start >= warm_until {
            lat.push(us);
        }
    }
    Ok((lat, errors, page_bytes))
}

/// Reads one HTTP/1.1 response with a Content-Length; returns the status and
/// the body length.
async fn read_response(
    stream: &mut tokio::net::TcpStream,
    buf: &mut [u8],
) -> anyhow::Result<(u16, usize)> {
    let mut have = 0;
    let header_end = loop {
        if have == buf.len() {
            bail!("response headers too large");
        }
        let n = stream.read(&mut buf[have..]).await?;
        if n == 0 {
            bail!("connection closed");
        }
        have += n;
        if let Some(p) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = std::str::from_utf8(&buf[..header_end])?;
    let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .context("no content-length")?;
    if len > RESPONSE_BYTES_MAX {
        bail!("response too large");
    }
    let mut body_have = have - header_end;
    while body_have < len {
        let want = (len - body_have).min(buf.len());
        let n = stream.read(&mut buf[..want]).await?;
        if n == 0 {
            bail!("connection closed mid-body");
        }
        body_have += n;
    }
    Ok((status, len))
}
