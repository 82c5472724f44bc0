//! The database-backed subcommands: migrate, seed, serve, demo, status,
//! check-ledger.

#[cfg(feature = "sandbox")]
use crate::config::SANDBOX_WARNING;
use crate::config::{Config, LogFormat, PAYMENT_REFUSED, PaymentSide};
use crate::{Command, GlobalArgs};
use anyhow::Context;
use std::process::ExitCode;

/// Arguments of `dormwatt seed`.
#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// Also generate this many days of plausible daily usage per meter.
    #[arg(long, default_value_t = 0)]
    history_days: u32,
}

/// Arguments of `dormwatt serve` and `dormwatt demo`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Do not run the head-end in this process (a web-only node).
    #[arg(long)]
    no_headend: bool,
    /// Demo only: days of usage history to generate when seeding an empty database.
    #[arg(long, default_value_t = 60)]
    history_days: u32,
}

/// Arguments of `dormwatt status` and `dormwatt check-ledger`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Loads the configuration (file ← env ← flags), sets up logging, builds a
/// tokio runtime and runs `f`.
pub fn with_config(
    global: &GlobalArgs,
    f: impl FnOnce(Config) -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    let mut cfg = Config::load(global.config.as_deref())?;
    if let Some(url) = &global.database_url {
        cfg.database_url.clone_from(url);
    }
    if let Some(listen) = &global.listen {
        cfg.listen.clone_from(listen);
        cfg.listen
            .parse::<std::net::SocketAddr>()
            .with_context(|| format!("--listen: '{listen}' is not an address"))?;
    }
    init_logging(cfg.log_format);
    f(cfg)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour_logs());
    // A second init (tests) is harmless; ignore it.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The start-up log's one line about payments: which provider, the
/// merchant ids and what is switched on — never a key, token or the whole
/// settings struct.
fn payment_summary(payments: Option<&web::payments::Payments>) -> String {
    let Some(p) = payments else {
        return "payments: none (counter sales only)".to_owned();
    };
    let s = &p.settings;
    let provider = match &p.cashier_origin {
        Some(origin) => format!("sandbox (cashier {origin})"),
        None => "WeChat Pay".to_owned(),
    };
    format!(
        "payments: {provider}, appid {}, mchid {}, counter API {}, bill reconciliation {}, order max {} kWh",
        s.appid,
        s.mchid,
        if s.counter_token.is_some() {
            "on"
        } else {
            "off"
        },
        if s.bill_reconciliation { "on" } else { "off" },
        s.order_kwh_max,
    )
}

/// Colour codes only when a person watches: a log piped to a file, a
/// journal or `grep` must stay plain text.
pub fn colour_logs() -> bool {
    use std::io::IsTerminal as _;
    std::io::stderr().is_terminal()
}

// issue 15 (wechat notifications)
/// The WeChat sender of this process: with an official account configured
/// (`web.wechat_appid`) and `wechat.notify`; kinds without a template are
/// logged once here and stay in-app only.
fn wechat_sender(
    cfg: &Config,
    oauth: Option<&web::WechatOAuth>,
    public_url: &str,
) -> Option<crate::workers::WechatSender> {
    let Some(oauth) = oauth else {
        tracing::info!(
            "wechat notifications: no official account (web.wechat_appid); in-app messages only"
        );
        return None;
    };
    if !cfg.wechat.notify {
        tracing::info!("wechat notifications: off on this node (wechat.notify = false)");
        return None;
    }
    let settings = cfg.wechat.sender(&cfg.time_zone, public_url);
    let missing = settings.templates.missing();
    if !missing.is_empty() {
        tracing::warn!(kinds = ?missing, "wechat notifications: no template id configured ([wechat.templates]); these kinds stay in-app only");
    }
    Some(crate::workers::WechatSender {
        api: oauth.api.clone(),
        settings,
        interval: std::time::Duration::from_millis(cfg.wechat.interval_ms),
    })
}
// end issue 15 (wechat notifications)

/// Runs a database-backed subcommand.
pub fn dispatch(cfg: Config, cmd: Command) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cmd {
            Command::Migrate => {
                let db = connect(&cfg).await?;
                db.migrate().await?;
                println!(
                    "database is at schema version {}",
                    db.known_schema_version()
                );
                Ok(ExitCode::SUCCESS)
            }
            Command::Seed(args) => {
                let db = connect_migrated(&cfg).await?;
                seed(&db, &cfg, args.history_days).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Serve(args) => serve(cfg, args, false).await,
            Command::Demo(args) => serve(cfg, args, true).await,
            Command::Status(args) => {
                let db = connect_migrated(&cfg).await?;
                let s = store::campus::status(&db).await?;
                // Issue 15: WeChat notifications, "today" in the campus calendar.
                let now_ms = store::now_ms();
                let tz = cfg.time_zone.tz();
                let since_ms =
                    domain::time::day_start_ms(domain::time::local_date(now_ms, tz), tz);
                let n = store::wechat_outbox::stats(&db, since_ms).await?;
                if args.json {
                    // Flattened, not through a Value: keeps the buildings' natural order.
                    #[derive(serde::Serialize)]
                    struct WithNotifications<'a> {
                        #[serde(flatten)]
                        status: &'a store::campus::Status,
                        notifications: store::wechat_outbox::Stats,
                    }
                    let v = WithNotifications {
                        status: &s,
                        notifications: n,
                    };
                    println!("{}", serde_json::to_string(&v)?);
                } else {
                    print_status(&s);
                    println!(
                        "wechat notifications: {} pending, {} sent today, {} failed today, {} followers",
                        n.pending, n.sent_today, n.failed_today, n.followers
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::CheckLedger(args) => {
                let db = connect_migrated(&cfg).await?;
                let v = store::ledger::check(&db).await?;
                let chain = store::audit::verify(&db).await?;
                let ok = v.is_empty() && chain.broken.is_none();
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({ "ok": ok, "violations": v, "audit_chain": chain })
                    );
                } else {
                    if v.is_empty() {
                        println!("ledger invariants I1–I14 hold");
                    } else {
                        for x in &v {
                            println!("{}: {}", x.invariant, x.detail);
                        }
                    }
                    match &chain.broken {
                        None => println!("audit log: chain of {} rows intact", chain.rows),
                        Some(b) => println!(
                            "audit log: chain broken at row {}: {} ({} rows before it intact)",
                            b.seq, b.reason, chain.rows
                        ),
                    }
                }
                Ok(if ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
            Command::Operator(c) => {
                let db = connect_migrated(&cfg).await?;
                crate::cmd_operator::run(&db, c).await
            }
            Command::Backup(args) => crate::cmd_backup::backup(&cfg, args).await,
            Command::Restore(args) => crate::cmd_backup::restore(&cfg, args).await,
            Command::CheckConfig(args) => crate::cmd_check_config::run(&cfg, args).await,
            Command::Prune(args) => {
                crate::cmd_prune::run(&cfg, &connect_migrated(&cfg).await?, args).await
            }
            Command::Import(args) if args.example.is_some() => {
                crate::cmd_import::write_example(&connect_migrated(&cfg).await?, &args).await
            }
            Command::Import(args) => {
                crate::cmd_import::run(&connect_migrated(&cfg).await?, args).await
            }
            Command::Subsidy(c) => {
                let db = connect_migrated(&cfg).await?;
                crate::cmd_subsidy::run(&db, &cfg.time_zone, c).await
            }
            Command::Report(args) => {
                let db = connect_migrated(&cfg).await?;
                crate::cmd_report::run(&db, &cfg.time_zone, args).await
            }
            Command::Frame(_)
            | Command::Simulate(_)
            | Command::Dst(_)
            | Command::Bench(_)
            | Command::VerifyBackup(_) => {
                unreachable!("handled in main")
            }
        }
    })
}

/// Connects, refusing a database from a newer dormwatt.
pub(crate) async fn connect(cfg: &Config) -> anyhow::Result<store::Db> {
    let shown = store::redact_url(&cfg.database_url);
    let db = store::Db::connect(&cfg.database_url, &cfg.db_options())
        .await
        .with_context(|| format!("cannot open the database at {shown}"))?;
    db.check_not_newer().await?;
    Ok(db)
}

async fn connect_migrated(cfg: &Config) -> anyhow::Result<store::Db> {
    let db = connect(cfg).await?;
    db.migrate().await?;
    Ok(db)
}

fn addressing(cfg: &Config) -> store::campus::GatewayAddressing {
    store::campus::GatewayAddressing {
        host: cfg.simulator.host.clone(),
        base_port: cfg.simulator.base_port,
    }
}

async fn seed(db: &store::Db, cfg: &Config, history_days: u32) -> anyhow::Result<bool> {
    let plan = domain::campus::reference_plan();
    let started = std::time::Instant::now();
    let now = store::now_ms();
    let outcome = store::campus::seed(db, &plan, &addressing(cfg), now).await?;
    let created = match outcome {
        store::campus::SeedOutcome::Created { meters } => {
            println!(
                "seeded the reference campus: {meters} meters in {} ms",
                started.elapsed().as_millis()
            );
            true
        }
        store::campus::SeedOutcome::AlreadyPresent => {
            println!("the reference campus is already present; nothing changed");
            false
        }
    };
    if history_days > 0 {
        let started = std::time::Instant::now();
        let rows = store::history::generate(db, history_days, cfg.time_zone.tz(), now).await?;
        println!(
            "generated {rows} days of usage history in {} ms",
            started.elapsed().as_millis()
        );
    }
    Ok(created)
}

/// Prints the status for a human. Write errors (a closed pipe, as with
/// `| head`) end the output quietly instead of panicking.
fn print_status(s: &store::campus::Status) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "areas        {}", s.areas);
    let _ = writeln!(out, "buildings    {}", s.buildings);
    let _ = writeln!(out, "rooms        {}", s.rooms);
    let _ = writeln!(
        out,
        "meters       {} ({} online)",
        s.meters, s.meters_online
    );
    let _ = writeln!(out, "gateways     {}", s.gateways);
    let _ = writeln!(out, "buses        {}", s.buses);
    let _ = writeln!(out, "students     {}", s.students);
    let _ = writeln!(out, "open orders  {}", s.orders_open);
    let _ = writeln!(out, "schema       v{}", s.schema_version);
    let _ = writeln!(out, "meters per building:");
    for (k, v) in &s.meters_per_building {
        let _ = writeln!(out, "  {k:<32} {v:>5}");
    }
}

async fn serve(cfg: Config, args: ServeArgs, demo: bool) -> anyhow::Result<ExitCode> {
    let db = connect_migrated(&cfg).await?;
    let problems = crate::cmd_check_config::problems(&cfg).await;
    anyhow::ensure!(
        problems.is_empty(),
        "not starting: the configuration has problems (`dormwatt check-config` lists them):\n  {}",
        problems.join("\n  ")
    );
    if demo {
        let empty = store::campus::status(&db).await?.meters == 0;
        if empty {
            seed(&db, &cfg, args.history_days).await?;
            // A campus-wide notice, so the overview's notice list is not
            // empty in the demo (staff publish real ones).
            store::students::add_notice(
                &db,
                None,
                "宿舍安全用电提示",
                "请勿使用电热毯、热得快等大功率电器；超过限定功率时电表会自动断电，几分钟后恢复。离开宿舍时请关闭电器电源。",
                store::now_ms(),
            )
            .await?;
        }
    }
    let demo_admin = if demo {
        Some(demo_administrator(&db).await?)
    } else {
        None
    };
    // Demo: the reference campus's meters, simulated in this process on the
    // ports the seeded registry points at; the head-end then talks to them
    // over loopback TCP exactly as it would to real gateways. Started before
    // our own listeners take ephemeral ports, which could fall in their range.
    let simulator = if demo {
        let fleet =
            sim::Fleet::from_plan(&domain::campus::reference_plan(), sim::SimConfig::default());
        let host: std::net::IpAddr = cfg.simulator.host.parse().with_context(|| {
            format!(
                "simulator.host: '{}' is not an IP address",
                cfg.simulator.host
            )
        })?;
        let running = fleet
            .start(sim::GatewayMode::Server {
                host,
                base_port: cfg.simulator.base_port,
            })
            .await
            .with_context(|| {
                format!(
                    "cannot start the simulated gateways on {}:{}+",
                    cfg.simulator.host, cfg.simulator.base_port
                )
            })?;
        tracing::info!(
            meters = fleet.meter_count(),
            base_port = cfg.simulator.base_port,
            "simulator started"
        );
        Some(running)
    } else {
        None
    };
    // Demo: meters registered later (console, `dormwatt import`) get a
    // simulated meter on their gateway's bus, so the head-end's hot reload
    // finds them answering (issue 14 item 4).
    let follower = match (&simulator, cfg.headend.settings.registry_poll_ms) {
        (Some(running), ms) if ms > 0 => Some(tokio::spawn(follow_registry(
            db.clone(),
            running.fleet().clone(),
            std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(5_000)),
        ))),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let public_url = cfg
        .public_url
        .clone()
        .unwrap_or_else(|| derived_public_url(addr));
    let (payments, sandbox) = payment_side(&cfg, demo, addr, &public_url).await?;
    let wechat_oauth = cfg.web.wechat_oauth()?;
    let wechat_sender = wechat_sender(&cfg, wechat_oauth.as_ref(), &public_url);
    let settings = web::Settings {
        public_url: public_url.clone(),
        time_zone: cfg.time_zone.clone(),
        demo_login: demo,
        wechat_oauth,
        wechat_event_token: cfg.wechat.event_token()?,
        session_ttl_ms: cfg.web.session_ttl_ms(),
        limits: cfg.web.limits(),
        staff: cfg.web.staff(),
        metrics: cfg.metrics.settings(),
    };
    tracing::info!("{}", payment_summary(payments.as_ref()));
    let (stop_sandbox, sandbox_stopped) = tokio::sync::oneshot::channel::<()>();
    let sandbox_addr = sandbox.as_ref().and_then(sandbox_local_addr);
    let sandbox_task = sandbox.map(|s| spawn_sandbox(s, sandbox_stopped));
    let service = service::Service::new(db.clone(), payments, cfg.payment.delivery_window()?);
    let state = web::AppState::with_service(service.clone(), settings);
    let headend = if cfg.headend.enabled && !args.no_headend {
        let h = headend::Headend::start(
            db.clone(),
            cfg.headend.to_headend(&cfg.time_zone),
            std::sync::Arc::new(headend::SystemClock),
        )
        .await
        .context("cannot start the head-end")?;
        Some(h)
    } else {
        None
    };
    // Issue 16 item 1: /metrics reads the head-end's counters at scrape time.
    if let Some(h) = &headend {
        state
            .metrics()
            .set_headend(crate::metrics_source::headend_source(h.counters()));
    }
    let metrics_task = match cfg.metrics.listen_addr()? {
        Some(a) if cfg.metrics.enabled => {
            let l = tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("metrics.listen: cannot listen on {a}"))?;
            tracing::info!(listen = %a, "metrics listener");
            let router = web::metrics::router(state.clone());
            Some(tokio::spawn(async move {
                // The peer is the client here: no proxy forwards to it.
                let limits = web::ServeLimits::default();
                if let Err(e) =
                    web::server::serve_router(l, router, limits, shutdown_signal()).await
                {
                    tracing::error!(error = %e, "metrics listener stopped");
                }
            }))
        }
        _ => None,
    };
    let runs_headend = headend.is_some();
    // Every background worker of the process, started and stopped in one place.
    let workers = service::supervisor::Supervisor::start(
        crate::workers::all(
            &service,
            headend,
            cfg.retention.enabled.then(|| crate::workers::Prune {
                policy: cfg.retention.policy(&cfg.web),
                interval: std::time::Duration::from_secs(cfg.retention.interval_s),
            }),
            wechat_sender,
            &cfg.time_zone,
        ),
        &crate::workers::roles(runs_headend),
    );
    tracing::info!(listen = %addr, demo, headend = runs_headend, "dormwatt is serving");
    if demo {
        println!(
            "dormwatt demo is running at {}/  (Ctrl-C to stop)",
            public_url.trim_end_matches('/')
        );
        if let Some(a) = sandbox_addr {
            // After the main URL: scripts take the first URL printed.
            println!("  payment sandbox (cashier, admin API) on its own port: http://{a}/");
        }
        if let Some(pw) = &demo_admin {
            println!(
                "  DEMO staff console: {}/staff/login  name {DEMO_ADMIN}  password {pw}  (demo administrator, reset at every demo start)",
                public_url.trim_end_matches('/')
            );
        }
    }
    web::serve(listener, state, shutdown_signal()).await?;
    if let Some(t) = metrics_task {
        t.abort();
    }
    // Workers first (the head-end's last step may still talk to the
    // simulated meters), then the sandbox and the simulator.
    let stopped = workers.shutdown().await;
    if !stopped.is_clean() {
        tracing::warn!(aborted = ?stopped.aborted, "some workers were aborted at shutdown");
    }
    let _ = stop_sandbox.send(());
    if let Some(t) = sandbox_task {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), t).await;
    }
    if let Some(t) = follower {
        t.abort();
    }
    if let Some(s) = simulator {
        s.shutdown();
    }
    db.close().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Demo: follows the registry version and adds a simulated meter for
/// every live registered meter the simulator lacks, on its gateway and bus
/// port (a gateway or bus the simulator lacks — one registered after the
/// start — is skipped: its simulated gateway does not exist).
async fn follow_registry(db: store::Db, fleet: sim::Fleet, every: std::time::Duration) {
    let mut seen = None;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let version = match store::registry::version(&db).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "demo: cannot read the registry version");
                continue;
            }
        };
        if seen == Some(version) {
            continue;
        }
        match add_simulated_meters(&db, &fleet).await {
            Ok(added) => {
                if added > 0 {
                    tracing::info!(
                        added,
                        version,
                        "demo: simulated meters added for the registry"
                    );
                }
                seen = Some(version);
            }
            Err(e) => tracing::warn!(error = %e, "demo: cannot read the registry"),
        }
    }
}

async fn add_simulated_meters(db: &store::Db, fleet: &sim::Fleet) -> anyhow::Result<usize> {
    let listing = store::registry::listing(db, None, i64::MAX).await?;
    let mut added = 0;
    for m in &listing.meters {
        let (Some(gateway), Some(port)) = (&m.gateway, m.bus) else {
            continue; // retired: off its bus
        };
        let Ok(port) = u8::try_from(port) else {
            continue;
        };
        match fleet.add_meter(gateway, port, &m.address, &m.room) {
            Ok(true) => added += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::debug!(error = %e, meter = %m.address, "demo: no simulated bus for it")
            }
        }
    }
    Ok(added)
}

/// Name of the demo administrator `dormwatt demo` creates.
const DEMO_ADMIN: &str = "demo-admin";

/// Creates the demo administrator, or gives it a new password, and returns
/// the password (printed, labelled as demo). Never called by `serve`.
async fn demo_administrator(db: &store::Db) -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let password = loop {
        let pw: String = (0..14)
            .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
            .collect();
        if domain::staff::check_new_password(&pw, DEMO_ADMIN).is_ok() {
            break pw;
        }
    };
    let phc = domain::staff::hash_password(&password, rand::random())?;
    store::operators::ensure_with_password(
        db,
        DEMO_ADMIN,
        domain::staff::Role::Administrator,
        &phc,
        &store::audit::Actor::command_line(),
        store::now_ms(),
    )
    .await?;
    Ok(password)
}

/// `http://<listened address>`, loopback for a wildcard address.
fn derived_public_url(mut addr: std::net::SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}")
}

/// The payment side this process runs, and the sandbox with its own bound
/// listener when it is the provider. `serve` without a configured merchant
/// runs none and says what to configure; `serve` with an explicit
/// `provider = "sandbox"` warns loudly.
async fn payment_side(
    cfg: &Config,
    demo: bool,
    addr: std::net::SocketAddr,
    public_url: &str,
) -> anyhow::Result<(Option<web::payments::Payments>, Option<SandboxServer>)> {
    #[cfg(not(feature = "sandbox"))]
    let _ = addr;
    match cfg.payment.resolve(demo) {
        PaymentSide::None => Ok((None, None)),
        PaymentSide::Refused => {
            eprintln!("dormwatt serve: payment side NOT started: {PAYMENT_REFUSED}");
            tracing::error!("payment side not started: {PAYMENT_REFUSED}");
            Ok((None, None))
        }
        PaymentSide::Wechat => Ok((Some(cfg.payment.build_wechat(public_url)?), None)),
        #[cfg(not(feature = "sandbox"))]
        PaymentSide::Sandbox { .. } => anyhow::bail!(
            "payment.provider = \"sandbox\": this dormwatt was built without the payment sandbox \
             (cargo feature `sandbox`, off in production builds); configure payment.provider = \"wechat\""
        ),
        #[cfg(feature = "sandbox")]
        PaymentSide::Sandbox { opted_in } => {
            let want = cfg.payment.sandbox_addr(addr);
            let listener = tokio::net::TcpListener::bind(want)
                .await
                .with_context(|| format!("payment.sandbox_listen: cannot listen on {want}"))?;
            let bound = listener.local_addr()?;
            let payments = cfg.payment.build_sandbox(public_url, bound)?;
            let sandbox = payments
                .sandbox
                .clone()
                .context("the sandbox provider carries its sandbox")?;
            if opted_in {
                eprintln!("\n!!! {SANDBOX_WARNING}\n!!! sandbox listening on http://{bound}/\n");
                tracing::warn!(sandbox = %bound, "{SANDBOX_WARNING}");
            }
            Ok((Some(payments), Some((sandbox, listener))))
        }
    }
}

/// The sandbox, bound to its own listener and ready to be served.
#[cfg(feature = "sandbox")]
type SandboxServer = (pay::Sandbox, tokio::net::TcpListener);
/// A build without the sandbox feature never has one.
#[cfg(not(feature = "sandbox"))]
type SandboxServer = std::convert::Infallible;

#[cfg(feature = "sandbox")]
fn sandbox_local_addr(s: &SandboxServer) -> Option<std::net::SocketAddr> {
    s.1.local_addr().ok()
}

#[cfg(not(feature = "sandbox"))]
fn sandbox_local_addr(s: &SandboxServer) -> Option<std::net::SocketAddr> {
    match *s {}
}

/// Serves the sandbox at the root of its own listener until `stop`.
#[cfg(feature = "sandbox")]
fn spawn_sandbox(
    (sb, l): SandboxServer,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = sb
            .serve(l, async {
                let _ = stop.await;
            })
            .await
        {
            tracing::error!(error = %e, "payment sandbox stopped");
        }
    })
}

#[cfg(not(feature = "sandbox"))]
fn spawn_sandbox(
    s: SandboxServer,
    _stop: tokio::sync::oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<()> {
    match s {}
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[cfg(all(test, feature = "sandbox"))]
mod tests {
    use std::sync::Arc;

    use super::payment_summary;

    #[test]
    fn the_payment_summary_is_one_line_without_secrets_or_the_struct() {
        let config = pay::sandbox::demo_merchant_config(
            "http://127.0.0.1:1",
            "http://127.0.0.1:2/pay/wechat/notify",
        );
        let mut settings =
            web::payments::PaymentSettings::new(pay::sandbox::DEMO_APPID, pay::sandbox::DEMO_MCHID);
        settings.counter_token = Some("s3cret-counter-token".to_owned());
        let payments = web::payments::Payments {
            provider: Arc::new(pay::WechatPayClient::new(config).expect("client")),
            sandbox: None,
            cashier_origin: Some("http://127.0.0.1:1".to_owned()),
            settings: Arc::new(settings),
            rejected: Arc::default(),
        };
        let line = payment_summary(Some(&payments));
        assert!(
            line.starts_with(
                "payments: sandbox (cashier http://127.0.0.1:1), appid wxsandbox0000demo, \
                 mchid 1900000000, counter API on, "
            ),
            "{line}"
        );
        for leak in ["s3cret", "***", "PaymentSettings", "{"] {
            assert!(!line.contains(leak), "{leak} in {line}");
        }
        assert_eq!(payment_summary(None), "payments: none (counter sales only)");
    }
}
