//! `dormwatt bench collect`: one full collection sweep of the reference
//! campus by the real head-end, against the in-process simulator over
//! loopback TCP, once with faults off and once under the standard fault
//! profile (5 % of frames lost in each direction).
//!
//! A sweep is every meter's frequent plan (remaining energy, status word 3,
//! power: three reads) with bounded retries. Reported per run:
//! - `sweep_s`: virtual time from start until the last bus finished;
//! - `wire_bound_s`: the physical floor of the frames actually sent
//!   (protocol-notes §4): per bus, the wire time of every request (4 `FE`
//!   included) and every reply (with the simulator's reply preamble) at the
//!   bus's baud, plus Td for every reply; the slowest bus;
//! - `ratio` = sweep / bound (target ≤ 1.10 without faults);
//! - `cpu_us_per_frame`: CPU time of the head-end's threads (its tokio
//!   runtime and the SQLite worker; the simulator runs on its own runtime
//!   and is not counted) per request sent;
//! - `read_success`: share of meters read within the sweep.
//!
//! The simulator's clock may run faster than real time (`--speed`); sweep
//! and bound are both in virtual time, so the ratio is what counts.

use anyhow::Context;
use headend::{Clock, SharedClock};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest a sweep may take in real time before the run fails.
const SWEEP_REAL_MAX: Duration = Duration::from_secs(600);
/// Thread-name prefix of the head-end's runtime (for CPU accounting).
const HEADEND_THREADS: &str = "headend";
/// Thread-name prefix of the simulator's runtime.
const SIM_THREADS: &str = "sim";

/// Arguments of `dormwatt bench collect`.
#[derive(Debug, clap::Args)]
pub struct BenchCollectArgs {
    /// Virtual seconds per real second of the simulator (and head-end) clock.
    #[arg(long, default_value_t = 2.0)]
    speed: f64,
    /// Use a synthetic campus of this many meters instead of the reference one.
    #[arg(long)]
    meters: Option<usize>,
    /// Only the run without faults.
    #[arg(long)]
    no_faults_run: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The simulator's virtual clock as the head-end's clock.
#[derive(Debug, Clone)]
struct VirtualClock(sim::SimClock);

impl Clock for VirtualClock {
    fn now_ms(&self) -> i64 {
        self.0.now_ms()
    }

    fn sleep_ms(&self, ms: i64) -> headend::clock::Sleep<'_> {
        Box::pin(self.0.sleep_ms(ms))
    }
}

/// One run's figures.
#[derive(Debug, Clone, serde::Serialize)]
struct Run {
    faults: &'static str,
    meters: usize,
    buses: usize,
    frames: u64,
    timeouts: u64,
    sweep_s: f64,
    wire_bound_s: f64,
    ratio: f64,
    cpu_us_per_frame: f64,
    /// User-space share of `cpu_us_per_frame`: the rest is the kernel's
    /// loopback TCP, which also runs the simulator's receive path on our
    /// thread (a real NIC would not).
    user_us_per_frame: f64,
    read_success: f64,
    real_s: f64,
}

/// Runs `dormwatt bench collect`.
pub fn run(args: BenchCollectArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.speed > 0.0 && args.speed <= 50.0,
        "--speed must be in (0, 50]"
    );
    let plan = match args.meters {
        Some(n) => {
            anyhow::ensure!((1..=200_000).contains(&n), "--meters must be 1..=200000");
            sim::synthetic_plan(n)
        }
        None => domain::campus::reference_plan(),
    };
    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(SIM_THREADS)
        .enable_all()
        .build()?;
    let he_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(HEADEND_THREADS)
        .enable_all()
        .build()?;
    let mut runs = vec![once(&sim_rt, &he_rt, &plan, args.speed, None)?];
    if !args.no_faults_run {
        let lossy = sim::FaultConfig {
            seed: 5,
            request_loss: 0.05,
            reply_loss: 0.05,
            ..sim::FaultConfig::default()
        };
        runs.push(once(&sim_rt, &he_rt, &plan, args.speed, Some(lossy))?);
    }
    if args.json {
        let first = &runs[0];
        let mut v = serde_json::to_value(first)?;
        v["speed"] = serde_json::json!(args.speed);
        v["runs"] = serde_json::to_value(&runs)?;
        println!("{v}");
    } else {
        println!(
            "{:<8} {:>7} {:>6} {:>7} {:>9} {:>9} {:>13} {:>7} {:>14} {:>15} {:>13}",
            "faults",
            "meters",
            "buses",
            "frames",
            "timeouts",
            "sweep_s",
            "wire_bound_s",
            "ratio",
            "cpu_us/frame",
            "user_us/frame",
            "read_success"
        );
        for r in &runs {
            println!(
                "{:<8} {:>7} {:>6} {:>7} {:>9} {:>9.2} {:>13.2} {:>7.3} {:>14.1} {:>15.1} {:>13.4}",
                r.faults,
                r.meters,
                r.buses,
                r.frames,
                r.timeouts,
                r.sweep_s,
                r.wire_bound_s,
                r.ratio,
                r.cpu_us_per_frame,
                r.user_us_per_frame,
                r.read_success
            );
        }
        println!("(speed {}×; sweep and bound in virtual time)", args.speed);
    }
    Ok(())
}

fn once(
    sim_rt: &tokio::runtime::Runtime,
    he_rt: &tokio::runtime::Runtime,
    plan: &domain::campus::CampusPlan,
    speed: f64,
    faults: Option<sim::FaultConfig>,
) -> anyhow::Result<Run> {
    let lossy = faults.is_some();
    let sim_cfg = sim::SimConfig {
        speed,
        faults: faults.unwrap_or_default(),
        ..sim::SimConfig::default()
    };
    let td_ms = i64::from(sim_cfg.reply_delay_ms);
    let reply_preamble = usize::from(sim_cfg.reply_preamble);
    let fleet = sim::Fleet::from_plan(plan, sim_cfg);
    let f2 = fleet.clone();
    let running = sim_rt.block_on(async move {
        f2.start(sim::GatewayMode::Server {
            host: [127, 0, 0, 1].into(),
            base_port: 0,
        })
        .await
    })?;
    let clock: SharedClock = Arc::new(VirtualClock(fleet.clock().clone()));
    let endpoints = running.endpoints().to_vec();
    let dir = std::env::temp_dir().join(format!(
        "dormwatt-bench-collect-{}-{}",
        std::process::id(),
        store::now_ms()
    ));
    std::fs::create_dir_all(&dir)?;
    let result = he_rt.block_on(async {
        let db = store::Db::connect(
            &format!("sqlite://{}", dir.join("collect.db").display()),
            &store::DbOptions::default(),
        )
        .await?;
        db.migrate().await?;
        store::campus::seed(
            &db,
            plan,
            &store::campus::GatewayAddressing::default(),
            clock.now_ms(),
        )
        .await?;
        for ep in &endpoints {
            let port = ep.listen.context("server mode binds")?.port();
            store::meters::set_gateway_endpoint(&db, &ep.name, "127.0.0.1", port).await?;
        }
        let cfg = headend::Config {
            // One sweep: nothing is due twice within the run.
            frequent_interval_ms: 30 * 86_400_000,
            hourly_interval_ms: 0,
            daily_read_after_ms: -1,
            ..headend::Config::default()
        };
        let (cpu0, user0) = cpu_us(HEADEND_THREADS);
        let real0 = Instant::now();
        let t0 = clock.now_ms();
        let he = headend::Headend::start(db.clone(), cfg, clock.clone()).await?;
        let snapshot = loop {
            let m = he.metrics();
            if m.buses.iter().all(|b| b.first_sweep_done_ms.is_some()) {
                break m;
            }
            anyhow::ensure!(
                real0.elapsed() < SWEEP_REAL_MAX,
                "the sweep did not finish in {} s",
                SWEEP_REAL_MAX.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let real_s = real0.elapsed().as_secs_f64();
        let (cpu1, user1) = cpu_us(HEADEND_THREADS);
        let (cpu, user) = (cpu1.saturating_sub(cpu0), user1.saturating_sub(user0));
        he.shutdown().await;
        db.close().await;
        let done = snapshot
            .buses
            .iter()
            .filter_map(|b| b.first_sweep_done_ms)
            .max()
            .unwrap_or(t0);
        let bound_us = snapshot
            .buses
            .iter()
            .map(|b| {
                let per_reply = td_ms * 1000
                    + i64::try_from(dlt645::wire_time_us(reply_preamble, b.baud)).unwrap_or(0);
                i64::try_from(b.wire_us).unwrap_or(0)
                    + i64::try_from(b.replies).unwrap_or(0) * per_reply
            })
            .max()
            .unwrap_or(1)
            .max(1);
        let meters: usize = snapshot.buses.iter().map(|b| b.meters).sum();
        let read: u64 = snapshot.buses.iter().map(|b| b.first_sweep_read).sum();
        let sweep_s = (done - t0) as f64 / 1000.0;
        let wire_bound_s = bound_us as f64 / 1e6;
        let frames = snapshot.frames_sent.max(1);
        anyhow::Ok(Run {
            faults: if lossy { "5%-loss" } else { "off" },
            meters,
            buses: snapshot.buses.len(),
            frames: snapshot.frames_sent,
            timeouts: snapshot.timeouts,
            sweep_s,
            wire_bound_s,
            ratio: sweep_s / wire_bound_s,
            cpu_us_per_frame: cpu as f64 / frames as f64,
            user_us_per_frame: user as f64 / frames as f64,
            read_success: read as f64 / meters.max(1) as f64,
            real_s,
        })
    });
    running.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// CPU time (user + system, and user alone) of this process's threads
/// whose name starts with `prefix` (plus the SQLite worker threads when
/// counting the head-end), in µs, from /proc; 0 where /proc is missing.
fn cpu_us(prefix: &str) -> (u64, u64) {
    // Linux reports in clock ticks; USER_HZ is 100 on every mainstream
    // configuration.
    const TICK_US: u64 = 10_000;
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return (0, 0);
    };
    let (mut total, mut user) = (0, 0);
    for t in dir.flatten() {
        let path = t.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let name = name.trim();
        let ours = name.starts_with(prefix)
            || (prefix == HEADEND_THREADS && name.starts_with("sqlx-sqlite"));
        if !ours {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        total += (ticks(11) + ticks(12)) * TICK_US;
        user += ticks(11) * TICK_US;
    }
    (total, user)
}
