//! `dormwatt report` (issue 14 item 7): a console report on stdout as CSV,
//! XLSX or JSON, built by the same code as the console's exports
//! (`web::staff::reports`); and `--read FILE`, an XLSX export read back
//! with calamine into its columns' kinds and totals (what the browser test
//! checks a downloaded file with). docs/OPERATIONS.md "Reports".

use anyhow::{Context as _, bail};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use store::dashboard::Within;
use web::i18n::Lang;
use web::staff::reports::{self, Report};

/// Arguments of `dormwatt report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// sales, usage, read-success, trips or offline.
    #[arg(required_unless_present = "read", value_parser = parse_report)]
    kind: Option<Report>,
    /// First campus day, YYYY-MM-DD (default: 29 days before --to).
    #[arg(long, default_value = "")]
    from: String,
    /// Last campus day, inclusive (default: today).
    #[arg(long, default_value = "")]
    to: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "csv")]
    format: OutFormat,
    /// Only this building (row id, or its Chinese or English name); repeatable.
    #[arg(long, value_name = "N")]
    building: Vec<String>,
    /// Language of headers and names: zh-CN or en.
    #[arg(long, default_value = "zh-CN")]
    lang: String,
    /// Read an XLSX export back instead and print its columns and totals.
    #[arg(long, value_name = "FILE", conflicts_with = "kind")]
    pub read: Option<PathBuf>,
    /// With --read: one JSON object (the default is one line per column).
    #[arg(long, requires = "read")]
    json: bool,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutFormat {
    Csv,
    Xlsx,
    Json,
}

fn parse_report(s: &str) -> Result<Report, String> {
    Report::parse(s)
        .ok_or_else(|| format!("unknown report '{s}' (sales, usage, read-success, trips, offline)"))
}

/// `--read FILE`: no database.
pub fn read(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let path = args.read.as_deref().context("--read FILE")?;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let back = import::export::read_back(&bytes).map_err(anyhow::Error::msg)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&back)?)?;
    } else {
        writeln!(out, "sheet {}: {} rows", back.sheet, back.rows)?;
        for c in &back.columns {
            let sum = c.sum.map(|s| format!(" sum {s:.2}")).unwrap_or_default();
            writeln!(out, "{}: {:?}{sum}", c.header, c.cells)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `report KIND`: the report on stdout.
pub async fn run(
    db: &store::Db,
    tz: &domain::time::CampusTz,
    args: ReportArgs,
) -> anyhow::Result<ExitCode> {
    let report = args.kind.context("a report KIND")?;
    let Some(l) = Lang::parse(&args.lang) else {
        bail!("unknown language '{}' (zh-CN, en)", args.lang);
    };
    let tz = tz.tz();
    let now = store::now_ms();
    let today = domain::time::day_number(domain::time::local_date(now, tz));
    let range = reports::parse_range(&args.from, &args.to, today)
        .map_err(|p| anyhow::anyhow!(p.text(Lang::parse("en").unwrap_or(l))))?;
    let within = if args.building.is_empty() {
        Within {
            areas: None,
            buildings: None,
        }
    } else {
        let all = store::lookup::buildings(db).await?;
        let mut ids = Vec::new();
        for b in &args.building {
            let found: Vec<i64> = all
                .iter()
                .filter(|x| {
                    b.parse::<i64>().is_ok_and(|id| id == x.id)
                        || x.name_zh == *b
                        || x.name_en == *b
                })
                .map(|x| x.id)
                .collect();
            if found.is_empty() {
                bail!("no building '{b}'");
            }
            ids.extend(found);
        }
        Within {
            areas: None,
            buildings: Some(ids),
        }
    };
    let data = reports::fetch(db, &within, report, range, tz, now).await?;
    let sheet = reports::sheet(l, &data, tz);
    let bytes = match args.format {
        OutFormat::Csv => import::export::to_csv(&sheet).map_err(anyhow::Error::msg)?,
        OutFormat::Xlsx => import::export::to_xlsx(&sheet).map_err(anyhow::Error::msg)?,
        OutFormat::Json => {
            let mut v = serde_json::to_vec(&reports::sheet_json(&sheet))?;
            v.push(b'\n');
            v
        }
    };
    // Written, not printed: a closed pipe is an error, not a panic.
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
