//! `dormwatt simulate`: serve a fleet of virtual DL/T 645 meters behind TCP
//! gateways, for the head-end, demos and load tests. The simulator itself
//! lives in the `sim` crate; this module parses flags, starts it and prints
//! what it serves.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, bail};
use sim::{FaultConfig, Fleet, GatewayMode, LoadConfig, SimConfig};

/// Which campus to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Campus {
    /// The reference campus of `dormwatt seed` (same addresses, buses, gateways).
    Reference,
}

/// How gateways meet the head-end (protocol-notes §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Each gateway listens on base-port + its index; the head-end connects.
    Server,
    /// Each gateway dials --headend, registers with its name, then heartbeats.
    Client,
}

/// Arguments of `dormwatt simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Simulate this campus plan.
    #[arg(
        long,
        value_enum,
        default_value = "reference",
        conflicts_with = "meters"
    )]
    campus: Campus,
    /// Instead of a campus, a synthetic fleet of N meters (64 per bus, 4
    /// buses per gateway), for load and memory tests.
    #[arg(long)]
    meters: Option<usize>,
    /// Gateway mode.
    #[arg(long, value_enum, default_value = "server")]
    mode: Mode,
    /// Client mode: the head-end's gateway listener, host:port.
    #[arg(long, required_if_eq("mode", "client"))]
    headend: Option<String>,
    /// Server mode: host to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    listen_host: IpAddr,
    /// Server mode: port of gateway 0; gateway i listens on base-port + i
    /// (the same default as the `[simulator] base_port` that `dormwatt seed`
    /// writes into the gateway registry, so `serve` finds these gateways).
    #[arg(long, default_value_t = 21000)]
    base_port: u16,
    /// Virtual seconds per real second (0 = paused; use the control `advance`).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Seed of meters, loads and reply jitter.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Virtual start time (RFC 3339, e.g. 2026-11-26T08:00:00+08:00); default now.
    #[arg(long)]
    start: Option<String>,
    /// Meter reply delay Td, ms.
    #[arg(long, default_value_t = 30)]
    reply_delay_ms: u32,
    /// Extra random jitter on Td, ms.
    #[arg(long, default_value_t = 10)]
    reply_jitter_ms: u32,
    /// FE bytes before each reply (0–4).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(0..=4))]
    reply_preamble: u8,
    /// Largest meter clock drift, ppm.
    #[arg(long, default_value_t = 20)]
    drift_ppm: u16,
    /// Power samples per meter every this many virtual ms (energy and
    /// malicious-load detection resolution).
    #[arg(long, default_value_t = 10_000)]
    sample_ms: i64,
    /// Scale of natural forbidden-appliance episodes (0 = none).
    #[arg(long, default_value_t = 1.0)]
    appliance_rate: f64,
    /// Client mode: heartbeat period, virtual seconds.
    #[arg(long, default_value_t = 60)]
    heartbeat_secs: i64,
    /// Seed of the fault draws.
    #[arg(long, default_value_t = 1)]
    fault_seed: u64,
    /// Rate: request lost before the meter (not applied).
    #[arg(long, default_value_t = 0.0)]
    request_loss: f64,
    /// Rate: reply lost after the meter applied the request.
    #[arg(long, default_value_t = 0.0)]
    reply_loss: f64,
    /// Rate: one reply byte corrupted.
    #[arg(long, default_value_t = 0.0)]
    corrupt: f64,
    /// Rate: reply held back up to --latency-ms-max.
    #[arg(long, default_value_t = 0.0)]
    latency: f64,
    /// Longest extra latency, virtual ms.
    #[arg(long, default_value_t = 2000)]
    latency_ms_max: u32,
    /// Rate per meter and day: the meter goes offline for a random window.
    #[arg(long, default_value_t = 0.0)]
    offline_per_day: f64,
    /// Shortest / longest offline window, virtual hours.
    #[arg(long, default_value_t = 1.0)]
    offline_hours_min: f64,
    /// Longest offline window, virtual hours (at most 168).
    #[arg(long, default_value_t = 48.0)]
    offline_hours_max: f64,
    /// Rate per request: the gateway resets its TCP connection.
    #[arg(long, default_value_t = 0.0)]
    tcp_reset: f64,
    /// Rate per request: the gateway goes silent for --silent-secs.
    #[arg(long, default_value_t = 0.0)]
    silent: f64,
    /// Length of a silent spell, virtual seconds.
    #[arg(long, default_value_t = 60)]
    silent_secs: i64,
    /// Serve the text control surface (`help` lists commands) on this TCP
    /// port of --listen-host.
    #[arg(long)]
    control_port: Option<u16>,
    /// Also read control commands from standard input.
    #[arg(long)]
    stdin_control: bool,
    /// Stop after this many real seconds (benchmarks); prints the RSS first.
    #[arg(long)]
    exit_after_secs: Option<u64>,
    /// List every gateway even for large fleets.
    #[arg(long)]
    list_all: bool,
}

fn rate(name: &str, v: f64) -> anyhow::Result<f64> {
    if !(0.0..=1.0).contains(&v) {
        bail!("--{name} is a probability between 0 and 1, got {v}");
    }
    Ok(v)
}

fn config(args: &SimulateArgs) -> anyhow::Result<SimConfig> {
    let start_ms = match &args.start {
        None => None,
        Some(s) => Some(
            s.parse::<jiff::Timestamp>()
                .with_context(|| format!("--start {s:?} is not an RFC 3339 instant"))?
                .as_millisecond(),
        ),
    };
    if !(args.speed >= 0.0 && args.speed.is_finite()) {
        bail!("--speed must be a number >= 0");
    }
    if args.sample_ms < 1000 {
        bail!("--sample-ms must be at least 1000");
    }
    let hours = |h: f64| (h.clamp(0.0, 168.0) * 3_600_000.0) as i64;
    let faults = FaultConfig {
        seed: args.fault_seed,
        request_loss: rate("request-loss", args.request_loss)?,
        reply_loss: rate("reply-loss", args.reply_loss)?,
        corrupt: rate("corrupt", args.corrupt)?,
        latency: rate("latency", args.latency)?,
        latency_ms_max: args.latency_ms_max,
        offline_per_day: rate("offline-per-day", args.offline_per_day)?,
        offline_ms_min: hours(args.offline_hours_min),
        offline_ms_max: hours(args.offline_hours_max.max(args.offline_hours_min)),
        tcp_reset: rate("tcp-reset", args.tcp_reset)?,
        silent: rate("silent", args.silent)?,
        silent_ms: args.silent_secs.max(0) * 1000,
    };
    let mut cfg = SimConfig {
        seed: args.seed,
        start_ms,
        speed: args.speed,
        drift_ppm_max: args.drift_ppm,
        reply_delay_ms: args.reply_delay_ms,
        reply_jitter_ms: args.reply_jitter_ms,
        reply_preamble: args.reply_preamble,
        faults,
        heartbeat_period_ms: args.heartbeat_secs.max(1) * 1000,
        ..SimConfig::default()
    };
    cfg.env.sample_period_ms = args.sample_ms;
    cfg.env.load = LoadConfig {
        appliance_rate: args.appliance_rate.max(0.0),
        ..LoadConfig::default()
    };
    Ok(cfg)
}

/// Resident set size of this process in KiB (Linux), for the benchmarks.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `dormwatt simulate`.
pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(crate::run::colour_logs())
        .try_init();
    let cfg = config(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let result = runtime.block_on(serve(args, cfg));
    // A catch-up tick of a large fleet may still be running on the blocking
    // pool; it holds nothing worth waiting for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn serve(args: SimulateArgs, cfg: SimConfig) -> anyhow::Result<()> {
    let plan = match (args.meters, args.campus) {
        (Some(n), _) => {
            if n == 0 || n > 1_000_000 {
                bail!("--meters must be between 1 and 1000000");
            }
            sim::synthetic_plan(n)
        }
        (None, Campus::Reference) => domain::campus::reference_plan(),
    };
    let rss_before = rss_kib();
    let fleet = Fleet::from_plan(&plan, cfg);
    let mode = match args.mode {
        Mode::Server => GatewayMode::Server {
            host: args.listen_host,
            base_port: args.base_port,
        },
        Mode::Client => {
            let h = args.headend.as_deref().unwrap_or_default();
            let headend = tokio::net::lookup_host(h)
                .await
                .with_context(|| format!("resolving --headend {h}"))?
                .next()
                .with_context(|| format!("--headend {h} resolves to nothing"))?;
            GatewayMode::Client { headend }
        }
    };
    let running = fleet
        .start(mode)
        .await
        .context("starting the gateways (is another simulator using these ports?)")?;
    println!(
        "simulating {} meters on {} buses behind {} gateways; virtual clock {} at {}x",
        fleet.meter_count(),
        fleet.bus_count(),
        running.endpoints().len(),
        jiff::Timestamp::from_millisecond(fleet.clock().now_ms())
            .map(|t| t.to_string())
            .unwrap_or_default(),
        fleet.clock().speed(),
    );
    let gateways = fleet.gateways();
    let show = if args.list_all || gateways.len() <= 64 {
        gateways.len()
    } else {
        8
    };
    for (ep, g) in running.endpoints().iter().zip(&gateways).take(show) {
        let buses: Vec<String> = g
            .buses
            .iter()
            .map(|(port, baud, n)| format!("port {port}: {n} meters @ {baud} bps"))
            .collect();
        match ep.listen {
            Some(a) => println!("  {:<16} listening on {a}  [{}]", g.name, buses.join(", ")),
            None => println!(
                "  {:<16} dialling {}  [{}]",
                g.name,
                args.headend.as_deref().unwrap_or_default(),
                buses.join(", ")
            ),
        }
    }
    if show < gateways.len() {
        println!(
            "  … and {} more (--list-all shows them)",
            gateways.len() - show
        );
    }
    if let Some(port) = args.control_port {
        let addr = SocketAddr::new(args.listen_host, port);
        let listener = sim::control::bind(addr)
            .await
            .with_context(|| format!("binding the control port {addr}"))?;
        println!("control: `nc {} {port}` then `help`", args.listen_host);
        tokio::spawn(sim::control::serve_tcp(fleet.clone(), listener));
    }
    if args.stdin_control {
        tokio::spawn(sim::control::serve_lines(
            fleet.clone(),
            tokio::io::stdin(),
            tokio::io::stdout(),
        ));
    }
    if let (Some(before), Some(after)) = (rss_before, rss_kib()) {
        println!(
            "memory: RSS {:.1} MiB ({:.1} MiB for the fleet, {:.0} bytes per meter)",
            after as f64 / 1024.0,
            after.saturating_sub(before) as f64 / 1024.0,
            after.saturating_sub(before) as f64 * 1024.0 / fleet.meter_count() as f64
        );
    }
    match args.exit_after_secs {
        Some(secs) => {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            // Bring every meter up to date so the figure includes a tick's work.
            fleet.advance_all();
            if let Some(rss) = rss_kib() {
                println!("memory after {secs} s: RSS {:.1} MiB", rss as f64 / 1024.0);
            }
        }
        None => {
            tokio::signal::ctrl_c()
                .await
                .context("waiting for Ctrl-C")?;
            println!("stopping");
        }
    }
    running.shutdown();
    Ok(())
}
