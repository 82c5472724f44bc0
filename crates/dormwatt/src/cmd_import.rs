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
    #[arg(
        required_unless_present_any = ["template", "example"],
        conflicts_with_all = ["template", "example"]
    )]
    file: Option<PathBuf>,
    /// Write this kind's template to stdout instead: buildings, rooms, gateways or meters.
    #[arg(long, value_name = "KIND", value_parser = parse_kind)]
    pub template: Option<Kind>,
    /// The template's (or example file's) format.
    #[arg(long, value_enum, default_value = "csv")]
    format: TemplateFormat,
    /// Test and demo helper: write a meters file valid against this
    /// database (free bus places, existing rooms, unused addresses) to stdout.
    #[arg(long, value_name = "KIND", value_parser = parse_kind, hide = true, conflicts_with = "template")]
    pub example: Option<Kind>,
    /// With --example: how many rows.
    #[arg(long, default_value_t = 500, hide = true, requires = "example")]
    rows: usize,
    /// With --example: how many of them are bad (a repeated address, a
    /// malformed address, an unknown building, in turn).
    #[arg(long, default_value_t = 0, hide = true, requires = "example")]
    bad: usize,
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

/// (area code, building, room number).
type Room<'a> = (&'a str, &'a str, &'a str);

/// `--example meters --rows N --bad K`: a meters file of `N` rows valid
/// against the database but for `K` bad rows spread through it; on stdout.
pub async fn write_example(db: &store::Db, args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let kind = args.example.context("--example KIND")?;
    anyhow::ensure!(kind == Kind::Meters, "--example writes meters files only");
    anyhow::ensure!(args.bad <= args.rows, "--bad is at most --rows");
    let listing = registry::listing(db, None, i64::MAX).await?;
    let taken: std::collections::HashSet<&str> =
        listing.meters.iter().map(|m| m.address.as_str()).collect();
    // Rooms (of meters) per building, and buses with free places.
    let mut rooms: std::collections::BTreeMap<i64, Vec<Room<'_>>> = Default::default();
    for m in &listing.meters {
        let list = rooms.entry(m.building_id).or_default();
        let room = (m.area.as_str(), m.building.as_str(), m.room.as_str());
        if !list.contains(&room) {
            list.push(room);
        }
    }
    // (gateway, rooms of its building, bus port, free places).
    let mut places: Vec<(&str, &[Room<'_>], i64, i64)> = Vec::new();
    for g in &listing.gateways {
        let Some(in_building) = rooms.get(&g.building_id) else {
            continue;
        };
        for b in &g.buses {
            if b.capacity > b.meters {
                places.push((g.name.as_str(), in_building, b.port, b.capacity - b.meters));
            }
        }
    }
    let free: i64 = places.iter().map(|p| p.3).sum();
    anyhow::ensure!(
        usize::try_from(free).unwrap_or(0) >= args.rows,
        "the registry's buses have room for {free} more meters, not {}",
        args.rows
    );
    let mut next = 209_900_000_000u64;
    let mut address = || loop {
        next += 1;
        let a = next.to_string();
        if !taken.contains(a.as_str()) {
            return a;
        }
    };
    let mut out: Vec<Vec<String>> = Vec::with_capacity(args.rows);
    let (mut place, mut used) = (0, 0);
    for i in 0..args.rows {
        while used >= places[place].3 {
            (place, used) = (place + 1, 0);
        }
        let (gateway, in_building, port, _) = places[place];
        let (area, building, room) = in_building[i % in_building.len()];
        used += 1;
        out.push(vec![
            address(),
            area.to_owned(),
            building.to_owned(),
            room.to_owned(),
            gateway.to_owned(),
            port.to_string(),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    // Bad rows spread evenly, never the first (a repeat needs a row before).
    for k in 0..args.bad {
        let i = (k + 1) * args.rows / (args.bad + 1);
        let i = i.max(1);
        match k % 3 {
            0 => out[i][0] = out[i - 1][0].clone(),
            1 => out[i][0] = format!("{}X", &out[i][0][..11]),
            _ => out[i][2] = "不存在的楼".to_owned(),
        }
    }
    let format = match args.format {
        TemplateFormat::Csv => Format::Csv,
        TemplateFormat::Xlsx => Format::Xlsx,
    };
    let bytes = import::write(kind, format, &out).map_err(anyhow::Error::msg)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&bytes)?;
    stdout.flush()?;
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
