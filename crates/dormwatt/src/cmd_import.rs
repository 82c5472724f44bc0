//! `dormwatt import` (issue 14 item 2): a registry template to stdout, or a
//! file checked (`--dry-run`) and applied all or nothing. docs/IMPORT.md
//! describes the templates.

use anyhow::Context as _;
use import::{Format, Kind, Report, RowError};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use store::registry::{self, Outcome};

/// Arguments of `dormwatt import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The file: an XLSX workbook (first sheet) or a CSV in UTF-8 or GBK.
    #[arg(required_unless_present = "template", conflicts_with = "template")]
    file: Option<PathBuf>,
    /// Write this kind's template to stdout instead: buildings, rooms, gateways or meters.
    #[arg(long, value_name = "KIND", value_parser = parse_kind)]
    pub template: Option<Kind>,
    /// The template's format.
    #[arg(long, value_enum, default_value = "csv", requires = "template")]
    format: TemplateFormat,
    /// What the file registers, when its header should not decide.
    #[arg(long, value_parser = parse_kind)]
    kind: Option<Kind>,
    /// Check every row and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print one JSON object: {"rows", "ok", "errors": [{"row", "column", "reason"}]}.
    #[arg(long)]
    json: bool,
}

/// `--format`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum TemplateFormat {
    Csv,
    Xlsx,
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    Kind::parse(s).ok_or_else(|| format!("unknown kind '{s}' (buildings, rooms, gateways, meters)"))
}

/// `--template KIND`: the template on stdout; no database.
pub fn write_template(args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let kind = args.template.context("--template KIND")?;
    let format = match args.format {
        TemplateFormat::Csv => Format::Csv,
        TemplateFormat::Xlsx => Format::Xlsx,
    };
    let bytes = import::template(kind, format).map_err(anyhow::Error::msg)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `import FILE`: checks every row; applies when none fails and this is
/// not a dry run.
pub async fn run(db: &store::Db, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let path = args.file.as_deref().context("a FILE to import")?;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (rows, errors, applied) = match import::parse(&bytes, args.kind) {
        Err(e) => (0, vec![e.as_row_error()], None),
        Ok(parsed) if args.dry_run || !parsed.errors.is_empty() => {
            let mut errors = parsed.errors;
            errors.extend(registry::check(db, &parsed.records).await?);
            (parsed.rows, errors, None)
        }
        Ok(parsed) => {
            let actor = store::audit::Actor::command_line();
            match registry::apply(db, &parsed.records, &actor, store::now_ms()).await? {
                Outcome::Refused(errors) => (parsed.rows, errors, None),
                Outcome::Applied { kind, rows } => (parsed.rows, Vec::new(), Some((kind, rows))),
            }
        }
    };
    let report = Report::new(rows, errors);
    // Written, not printed: a closed pipe is an error, not a panic.
    let mut out = std::io::stdout().lock();
    if args.json {
        let answer = Answer {
            report: &report,
            applied: applied.map(|(_, n)| n),
        };
        writeln!(out, "{}", serde_json::to_string(&answer)?)?;
    } else {
        print_report(&mut out, &report, applied, args.dry_run)?;
    }
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `--json`: the report, and the rows written when it was applied.
#[derive(serde::Serialize)]
struct Answer<'a> {
    #[serde(flatten)]
    report: &'a Report,
    #[serde(skip_serializing_if = "Option::is_none")]
    applied: Option<usize>,
}

fn print_report(
    out: &mut impl std::io::Write,
    report: &Report,
    applied: Option<(Kind, usize)>,
    dry_run: bool,
) -> std::io::Result<()> {
    for RowError {
        row,
        column,
        reason,
    } in &report.errors
    {
        match (row, column.as_str()) {
            (0, _) => writeln!(out, "file: {reason}")?,
            (_, "") => writeln!(out, "row {row}: {reason}")?,
            _ => writeln!(out, "row {row}, {column}: {reason}")?,
        }
    }
    writeln!(
        out,
        "{} rows, {} ok, {} failing",
        report.rows,
        report.ok,
        report.rows - report.ok
    )?;
    match applied {
        Some((kind, n)) => writeln!(out, "imported {n} {} (audited)", kind.as_str()),
        None if dry_run => writeln!(out, "dry run: nothing written"),
        None => writeln!(out, "nothing imported"),
    }
}
