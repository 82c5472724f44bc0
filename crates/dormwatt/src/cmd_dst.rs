//! `dormwatt dst`: the deterministic simulation of the money core
//! (`headend::dst`), many seeds, one JSON summary.

use anyhow::Context;

/// Arguments of `dormwatt dst`.
#[derive(Debug, clap::Args)]
pub struct DstArgs {
    /// Number of seeds to run (starting at --seed).
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// First seed (alone with --seeds 1 it replays one seed exactly).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Random steps per seed before the liveness phase.
    #[arg(long, default_value_t = 120)]
    steps: usize,
    /// PostgreSQL server to run on (a database per seed is created and
    /// dropped); default: SQLite in memory.
    #[arg(long = "pg-url")]
    pg_url: Option<String>,
    /// Print every step to stderr.
    #[arg(long)]
    trace: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs the seeds; fails (exit status 1) when any seed failed.
pub fn run(args: DstArgs, database_url: Option<&str>) -> anyhow::Result<std::process::ExitCode> {
    // A postgres:// --database-url means: run on that server.
    let postgres_url = args.pg_url.clone().or_else(|| {
        database_url
            .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
            .map(str::to_owned)
    });
    let opts = headend::dst::DstOptions {
        first_seed: args.seed,
        seeds: args.seeds,
        steps: args.steps,
        postgres_url,
        trace: args.trace,
    };
    // One thread: a seed's steps happen in exactly one order.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("runtime")?;
    let started = std::time::Instant::now();
    let sum = rt.block_on(headend::dst::run(&opts))?;
    let secs = started.elapsed().as_secs_f64();
    let ok = sum.violations == 0 && sum.lost == 0 && sum.doubled == 0;
    if args.json {
        let mut v = serde_json::to_value(&sum)?;
        v["seconds"] = serde_json::json!((secs * 10.0).round() / 10.0);
        v["backend"] = serde_json::json!(if opts.postgres_url.is_some() {
            "postgres"
        } else {
            "sqlite"
        });
        println!("{v}");
    } else {
        println!(
            "{} seeds, {} steps, {} paid orders ({} completed, {} refunded), {} crashes: {} violations, {} lost, {} doubled ({secs:.1} s)",
            sum.seeds,
            sum.steps,
            sum.orders_paid,
            sum.orders_completed,
            sum.orders_refunded,
            sum.crashes,
            sum.violations,
            sum.lost,
            sum.doubled
        );
        if let Some(v) = &sum.first_violation {
            println!("first violation: {v}");
        }
    }
    Ok(if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}
