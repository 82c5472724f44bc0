//! `dormwatt prune`: one retention pass now (issue 16 item 4), the same
//! as the background `prune` worker's, or with `--dry-run` only what it
//! would delete. `--sizes` prints every table's rows and bytes.

use crate::config::Config;
use std::process::ExitCode;

/// Arguments of `dormwatt prune`.
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Count what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also print each table's rows and bytes on disk (indexes included).
    #[arg(long)]
    sizes: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the pass with `[retention]`'s settings on the configured database.
pub async fn run(cfg: &Config, db: &store::Db, args: PruneArgs) -> anyhow::Result<ExitCode> {
    let policy = cfg.retention.policy(&cfg.web);
    let report = store::retention::prune(db, &policy, store::now_ms(), args.dry_run).await?;
    let sizes = if args.sizes {
        store::retention::sizes(db).await?
    } else {
        Vec::new()
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "dry_run": args.dry_run,
                "policy": policy,
                "rows": report,
                "sizes": sizes,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    println!(
        "retention: readings {} days, meter events {} days, done jobs {} days, \
         throttle rows {} days, idempotency keys {} days",
        policy.readings_days,
        policy.events_days,
        policy.jobs_days,
        policy.attempts_days,
        policy.idempotency_days
    );
    for (what, n) in [
        ("readings", report.readings),
        ("meter events", report.meter_events),
        ("jobs", report.jobs),
        ("sessions", report.sessions),
        ("throttle rows", report.attempts),
        ("idempotency keys", report.idempotency_keys),
    ] {
        println!("{verb} {n:>10} {what}");
    }
    if !args.dry_run {
        println!("in {} statements", report.statements);
    }
    if !sizes.is_empty() {
        println!("{:<24} {:>12} {:>14}", "table", "rows", "bytes");
        for t in &sizes {
            println!("{:<24} {:>12} {:>14}", t.table, t.rows, t.bytes);
        }
        println!(
            "{:<24} {:>12} {:>14}",
            "all",
            sizes.iter().map(|t| t.rows).sum::<i64>(),
            sizes.iter().map(|t| t.bytes).sum::<i64>()
        );
    }
    Ok(ExitCode::SUCCESS)
}
