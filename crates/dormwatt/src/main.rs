//! The `dormwatt` binary. `main` only parses the command line, loads the
//! configuration, sets up logging and hands over to a subcommand; the logic
//! lives in the library crates.

// Outside tests a panic is a bug we chose to keep: an `expect` with its
// reason under a local `allow`, or a type that makes the case impossible
// (crates/dormwatt/tests/workspace_lints.rs checks every crate says so).
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod bench_collect;
mod bench_pages;
#[cfg(feature = "sandbox")]
mod bench_purchase;
mod cmd_backup;
mod cmd_check_config;
mod cmd_dst;
mod cmd_frame;
mod cmd_import;
mod cmd_operator;
mod cmd_prune;
mod cmd_report;
mod cmd_simulate;
mod cmd_subsidy;
mod config;
// Issue 16 item 1: the head-end counters /metrics reads.
mod metrics_source;
mod run;
mod workers;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Prepaid electricity for university dormitories.
#[derive(Debug, Parser)]
#[command(name = "dormwatt", version, about)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML configuration file (see docs/CONFIGURATION.md).
    #[arg(long, global = true, env = "DORMWATT_CONFIG")]
    config: Option<PathBuf>,
    /// Database: sqlite://path or postgres://… (overrides the configuration).
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Address to listen on, e.g. 127.0.0.1:8080 (overrides the configuration).
    #[arg(long, global = true)]
    listen: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply the database migrations.
    Migrate,
    /// Create the reference campus (16 buildings, 2316 meters) and a small second area.
    Seed(run::SeedArgs),
    /// Run the server: pages, API and (unless disabled) the head-end against real gateways.
    Serve(run::ServeArgs),
    /// Try everything on one machine: migrate, seed if empty, simulator, payment sandbox, serve.
    Demo(run::ServeArgs),
    /// Describe the installation (totals, meters per building, online meters, open orders).
    Status(run::StatusArgs),
    /// Check the ledger invariants I1–I14 and the audit log's hash chain on the database.
    CheckLedger(run::StatusArgs),
    /// Staff operators of the console: add (password from stdin), list, disable.
    #[command(subcommand)]
    Operator(cmd_operator::OperatorCommand),
    /// Bulk-register buildings, rooms, gateways or meters from XLSX/CSV (docs/IMPORT.md).
    Import(cmd_import::ImportArgs),
    /// The free monthly allowance: `subsidy run [--month YYYY-MM] [--json]`.
    #[command(subcommand)]
    Subsidy(cmd_subsidy::SubsidyCommand),
    /// A console report (sales, usage, read-success, trips, offline) as CSV/XLSX/JSON on stdout.
    Report(cmd_report::ReportArgs),
    /// Decode or build DL/T 645-2007 frames (for field engineers).
    Frame(cmd_frame::FrameArgs),
    /// Run the meter-fleet simulator (virtual meters behind TCP gateways).
    Simulate(cmd_simulate::SimulateArgs),
    /// Deterministic simulation of the money core under faults, many seeds.
    Dst(cmd_dst::DstArgs),
    /// Write a consistent online backup of the database to a new file.
    Backup(cmd_backup::BackupArgs),
    /// Restore a backup into an empty database.
    Restore(cmd_backup::RestoreArgs),
    /// Check a backup file's integrity and print what it holds.
    VerifyBackup(cmd_backup::VerifyArgs),
    /// Delete what `[retention]` no longer keeps (what the background worker does), or --dry-run.
    Prune(cmd_prune::PruneArgs),
    /// Check the configuration, its files and keys and the database; print it, secrets redacted.
    CheckConfig(cmd_check_config::CheckConfigArgs),
    /// Benchmarks whose figures go in docs/BENCHMARKS.md.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// One full collection sweep of the reference campus against the simulator.
    Collect(bench_collect::BenchCollectArgs),
    /// End-to-end purchases per second on SQLite and PostgreSQL, against pgbench.
    #[cfg(feature = "sandbox")]
    Purchase(bench_purchase::BenchPurchaseArgs),
    /// The overview page under 100 concurrent connections.
    Pages(bench_pages::BenchPagesArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Frame(args) => cmd_frame::run(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Simulate(args) => {
            cmd_simulate::run(args).map(|()| std::process::ExitCode::SUCCESS)
        }
        Command::Dst(args) => cmd_dst::run(args, cli.global.database_url.as_deref()),
        Command::VerifyBackup(args) => cmd_backup::verify(args),
        Command::Import(args) if args.template.is_some() => cmd_import::write_template(&args),
        Command::Report(args) if args.read.is_some() => cmd_report::read(&args),
        Command::Bench(b) => match b {
            BenchCommand::Collect(a) => bench_collect::run(a),
            #[cfg(feature = "sandbox")]
            BenchCommand::Purchase(a) => bench_purchase::run(a, cli.global.database_url.as_deref()),
            BenchCommand::Pages(a) => bench_pages::run(a, cli.global.database_url.as_deref()),
        }
        .map(|()| std::process::ExitCode::SUCCESS),
        cmd => run::with_config(&cli.global, |cfg| run::dispatch(cfg, cmd)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
