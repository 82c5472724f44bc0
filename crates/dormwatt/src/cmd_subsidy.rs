//! `dormwatt subsidy run [--month YYYY-MM] [--json]`: the free monthly
//! allowance of a month now (issue 14 item 6), what the background
//! `subsidy` worker does for the current month. Safe to repeat: each room
//! is credited once per month.

use std::process::ExitCode;

/// `dormwatt subsidy …`.
#[derive(Debug, clap::Subcommand)]
pub enum SubsidyCommand {
    /// Credit every eligible room's allowance of a month (once per room and month).
    Run(RunArgs),
}

/// Arguments of `dormwatt subsidy run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The month, YYYY-MM (default: the current month in the campus time zone).
    #[arg(long)]
    month: Option<String>,
    /// Print JSON {month, rooms, credited, skipped, kwh} instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the command on the configured database.
pub async fn run(
    db: &store::Db,
    tz: &domain::time::CampusTz,
    cmd: SubsidyCommand,
) -> anyhow::Result<ExitCode> {
    let SubsidyCommand::Run(args) = cmd;
    let now = store::now_ms();
    let month = match &args.month {
        Some(m) => store::subsidy::parse_month(m)
            .ok_or_else(|| anyhow::anyhow!("--month is YYYY-MM, e.g. 2026-09 (got {m:?})"))?,
        None => store::subsidy::month_of(now, tz),
    };
    let s =
        store::subsidy::run(db, None, &month, &store::audit::Actor::command_line(), now).await?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "month": s.month,
                "rooms": s.rooms,
                "credited": s.credited,
                "skipped": s.skipped,
                "kwh": s.kwh,
            })
        );
    } else {
        println!(
            "{}: {} rooms with an allowance, {} credited now ({} kWh), {} skipped (credited before or no meter on a bus)",
            s.month, s.rooms, s.credited, s.kwh, s.skipped
        );
    }
    Ok(ExitCode::SUCCESS)
}
