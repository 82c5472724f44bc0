//! Reports (issue 14 item 7): `/staff/reports` lists them; each has a page
//! (`/staff/reports/sales`) with a range of campus days, a table with its
//! totals, a server-side SVG chart where one helps, and exports of the same
//! rows (`/staff/reports/sales.xlsx`, `.csv`). The figures are
//! `store::reports`' within the operator's scope (a building manager's
//! buildings); the table, the exports and `dormwatt report` are all built
//! from one [`Sheet`] ([`sheet`]), so the page's totals and the file's
//! agree by construction and the tests check both against the store.
//! Every export is audited (`report_exported`).

use super::report_chart::{self, HeatStrip, Series, StackChart};
use super::{Console, CurrentOperator, StaffResult};
use crate::AppState;
use crate::i18n::Lang;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse};
use domain::order::Channel;
use domain::staff::Action;
use domain::time::{date_of_day_number, day_number, local_date};
use import::export::{Cell, Column, ColumnKind, Sheet, text_of};
use jiff::tz::TimeZone;
use serde::Deserialize;
use std::collections::BTreeMap;
use store::dashboard::Within;
use store::reports::{self as rep, OfflineBucket, Range, RangeError};

/// Days a report covers when the form gives none: the last 30, today
/// included.
pub const DEFAULT_DAYS: i64 = 30;

/// A report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// Sales and refunds by day, channel and cashier.
    Sales,
    /// Usage by building and day.
    Usage,
    /// Read success by bus and day.
    ReadSuccess,
    /// Malicious-load trips by room.
    Trips,
    /// Meters offline now, by how long.
    Offline,
    /// The free monthly allowance issued, by month and building.
    Subsidy,
}

impl Report {
    /// Every report, in the index's order (the subsidy report, issue 14
    /// item 6, last).
    pub const ALL: [Report; 6] = [
        Report::Sales,
        Report::Usage,
        Report::ReadSuccess,
        Report::Trips,
        Report::Offline,
        Report::Subsidy,
    ];

    /// Its name in URLs and on the command line.
    pub fn slug(self) -> &'static str {
        match self {
            Report::Sales => "sales",
            Report::Usage => "usage",
            Report::ReadSuccess => "read-success",
            Report::Trips => "trips",
            Report::Offline => "offline",
            Report::Subsidy => "subsidy",
        }
    }

    /// Parses [`Report::slug`].
    pub fn parse(s: &str) -> Option<Report> {
        Report::ALL.into_iter().find(|r| r.slug() == s)
    }

    /// Its catalog key stem (`staff-report-sales`).
    fn key(self) -> &'static str {
        match self {
            Report::Sales => "staff-report-sales",
            Report::Usage => "staff-report-usage",
            Report::ReadSuccess => "staff-report-read-success",
            Report::Trips => "staff-report-trips",
            Report::Offline => "staff-report-offline",
            Report::Subsidy => "staff-report-subsidy",
        }
    }

    /// Whether a range of days applies (the offline report is "now").
    pub fn has_range(self) -> bool {
        self != Report::Offline
    }
}

/// Why a range from a form or the command line was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeProblem {
    /// A date that is not `YYYY-MM-DD`.
    Malformed,
    /// `store::reports::Range::new` refused it.
    Refused(RangeError),
}

impl RangeProblem {
    /// Its catalog key.
    fn key(self) -> &'static str {
        match self {
            RangeProblem::Malformed => "staff-report-bad-date",
            RangeProblem::Refused(RangeError::Backwards) => "staff-report-backwards",
            RangeProblem::Refused(RangeError::TooLong) => "staff-report-too-long",
        }
    }

    /// The reason in language `l`.
    pub fn text(self, l: Lang) -> String {
        l.t1(self.key(), "max", rep::RANGE_DAYS_MAX)
    }
}

/// A campus day number from `YYYY-MM-DD`.
fn parse_day(s: &str) -> Option<i64> {
    let d: jiff::civil::Date = s.trim().parse().ok()?;
    // Years a spreadsheet shows as dates (Excel starts in 1900).
    (1901..=9998).contains(&d.year()).then(|| day_number(d))
}

/// The range of `from`/`to` (`YYYY-MM-DD`, campus days); an empty one
/// defaults to the last [`DEFAULT_DAYS`] days ending `today`.
pub fn parse_range(from: &str, to: &str, today: i64) -> Result<Range, RangeProblem> {
    let to = match to.trim() {
        "" => today,
        s => parse_day(s).ok_or(RangeProblem::Malformed)?,
    };
    let from = match from.trim() {
        "" => to - (DEFAULT_DAYS - 1),
        s => parse_day(s).ok_or(RangeProblem::Malformed)?,
    };
    Range::new(from, to).map_err(RangeProblem::Refused)
}

/// `YYYY-MM-DD` of a day number.
pub fn day_text(day: i64) -> String {
    date_of_day_number(day).to_string()
}

/// A report's rows as the store gave them.
#[derive(Debug, Clone)]
pub enum Data {
    /// [`Report::Sales`].
    Sales(Vec<rep::SalesRow>),
    /// [`Report::Usage`].
    Usage(Vec<rep::UsageRow>),
    /// [`Report::ReadSuccess`].
    ReadSuccess(Vec<rep::ReadSuccessRow>),
    /// [`Report::Trips`].
    Trips(Vec<rep::TripRow>),
    /// [`Report::Offline`], and the instant it was taken.
    Offline(Vec<rep::OfflineRow>, i64),
    /// [`Report::Subsidy`]: the months the range's days fall in.
    Subsidy(Vec<store::subsidy::IssuedRow>),
}

/// Reads `report` over `range` within `w` (`now_ms`: today, and the
/// offline durations).
pub async fn fetch(
    db: &store::Db,
    w: &Within,
    report: Report,
    range: Range,
    tz: &TimeZone,
    now_ms: i64,
) -> store::Result<Data> {
    Ok(match report {
        Report::Sales => Data::Sales(rep::sales(db, w, range, tz).await?),
        Report::Usage => Data::Usage(rep::usage(db, w, range).await?),
        Report::ReadSuccess => {
            let today = day_number(local_date(now_ms, tz));
            Data::ReadSuccess(rep::read_success(db, w, range, today, tz).await?)
        }
        Report::Trips => Data::Trips(rep::trips(db, w, range, tz).await?),
        Report::Offline => Data::Offline(rep::offline(db, w).await?, now_ms),
        Report::Subsidy => {
            let month = |day: i64| {
                let d = date_of_day_number(day);
                format!("{:04}-{:02}", d.year(), d.month())
            };
            Data::Subsidy(
                store::subsidy::issued(db, w, &month(range.from), &month(range.to)).await?,
            )
        }
    })
}

fn date_cell(day: i64) -> Cell {
    let d = date_of_day_number(day);
    Cell::Date {
        y: d.year(),
        m: d.month(),
        d: d.day(),
    }
}

fn instant_cell(ms: i64, tz: &TimeZone) -> Cell {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => {
            let z = t.to_zoned_datetime(tz.clone());
            Cell::DateTime {
                y: z.year(),
                m: z.month(),
                d: z.day(),
                hh: z.hour(),
                mm: z.minute(),
                ss: z.second(),
            }
        }
        Err(_) => Cell::Empty,
    }
}

/// A channel's name in language `l`.
fn channel_name(l: Lang, c: Channel) -> String {
    l.t(match c {
        Channel::Wechat => "staff-dash-channel-wechat",
        _ => "staff-dash-channel-counter",
    })
}

/// A building's name in language `l`.
fn building_name(l: Lang, zh: &str, en: &str) -> String {
    if l == Lang::ZH || en.is_empty() {
        zh.to_owned()
    } else {
        en.to_owned()
    }
}

fn bucket_key(b: OfflineBucket) -> String {
    format!("staff-report-bucket-{}", b.as_str().replace('_', "-"))
}

/// The table of a report in language `l`: what the page shows, the
/// exports write and `dormwatt report` prints.
pub fn sheet(l: Lang, data: &Data, tz: &TimeZone) -> Sheet {
    let col = |key: &'static str, kind: ColumnKind, width: u16| Column {
        key,
        header: l.t(&format!("staff-report-col-{}", key.replace('_', "-"))),
        kind,
        width,
    };
    let text = |s: &str| Cell::Text(s.to_owned());
    let (report, columns, rows): (Report, Vec<Column>, Vec<Vec<Cell>>) = match data {
        Data::Sales(rows) => (
            Report::Sales,
            vec![
                col("day", ColumnKind::Date, 12),
                col("channel", ColumnKind::Text, 10),
                col("cashier", ColumnKind::Text, 14),
                col("orders", ColumnKind::Int, 10),
                col("kwh", ColumnKind::Int, 10),
                col("amount_yuan", ColumnKind::Yuan, 14),
                col("refunds", ColumnKind::Int, 10),
                col("refunded_yuan", ColumnKind::Yuan, 14),
            ],
            rows.iter()
                .map(|r| {
                    vec![
                        date_cell(r.day),
                        Cell::Text(channel_name(l, r.channel)),
                        text(&r.cashier),
                        Cell::Num(r.orders),
                        Cell::Num(r.kwh),
                        Cell::Num(r.amount.get()),
                        Cell::Num(r.refunds),
                        Cell::Num(r.refunded.get()),
                    ]
                })
                .collect(),
        ),
        Data::Usage(rows) => (
            Report::Usage,
            vec![
                col("day", ColumnKind::Date, 12),
                col("building", ColumnKind::Text, 16),
                col("usage_kwh", ColumnKind::Hundredths, 14),
                col("meters_read", ColumnKind::Int, 12),
                col("meters_missing", ColumnKind::Int, 12),
            ],
            rows.iter()
                .map(|r| {
                    vec![
                        date_cell(r.day),
                        Cell::Text(building_name(l, &r.building_zh, &r.building_en)),
                        Cell::Num(r.usage.get()),
                        Cell::Num(r.meters_read),
                        Cell::Num(r.meters_missing),
                    ]
                })
                .collect(),
        ),
        Data::ReadSuccess(rows) => (
            Report::ReadSuccess,
            vec![
                col("day", ColumnKind::Date, 12),
                col("gateway", ColumnKind::Text, 16),
                col("port", ColumnKind::Code, 8),
                col("due", ColumnKind::Int, 10),
                col("received", ColumnKind::Int, 10),
                col("ratio_percent", ColumnKind::Percent, 10),
            ],
            rows.iter()
                .map(|r| {
                    vec![
                        date_cell(r.day),
                        text(&r.gateway),
                        Cell::Num(r.port),
                        Cell::Num(r.due),
                        Cell::Num(r.received),
                        r.ratio_bp().map_or(Cell::Empty, Cell::Num),
                    ]
                })
                .collect(),
        ),
        Data::Trips(rows) => (
            Report::Trips,
            vec![
                col("building", ColumnKind::Text, 16),
                col("room", ColumnKind::Text, 10),
                col("meter", ColumnKind::Text, 16),
                col("trips", ColumnKind::Int, 10),
                col("last_at", ColumnKind::DateTime, 20),
            ],
            rows.iter()
                .map(|r| {
                    vec![
                        Cell::Text(building_name(l, &r.building_zh, &r.building_en)),
                        text(&r.room),
                        text(&r.meter_address),
                        Cell::Num(r.trips),
                        instant_cell(r.last_at_ms, tz),
                    ]
                })
                .collect(),
        ),
        Data::Subsidy(rows) => (
            Report::Subsidy,
            vec![
                col("month", ColumnKind::Text, 10),
                col("building", ColumnKind::Text, 16),
                col("rooms", ColumnKind::Int, 10),
                col("subsidy_kwh", ColumnKind::Hundredths, 14),
                col("delivered_kwh", ColumnKind::Hundredths, 14),
            ],
            rows.iter()
                .map(|r| {
                    vec![
                        text(&r.month),
                        Cell::Text(building_name(l, &r.building_zh, &r.building_en)),
                        Cell::Num(r.rooms),
                        Cell::Num(r.centikwh),
                        Cell::Num(r.delivered_centikwh),
                    ]
                })
                .collect(),
        ),
        Data::Offline(rows, now_ms) => (
            Report::Offline,
            vec![
                col("meter", ColumnKind::Text, 16),
                col("building", ColumnKind::Text, 16),
                col("room", ColumnKind::Text, 10),
                col("last_seen", ColumnKind::DateTime, 20),
                col("offline_hours", ColumnKind::Hundredths, 12),
                col("bucket", ColumnKind::Text, 14),
            ],
            rows.iter()
                .map(|r| {
                    let off = r.offline_ms(*now_ms);
                    vec![
                        text(&r.meter_address),
                        Cell::Text(building_name(l, &r.building_zh, &r.building_en)),
                        text(&r.room),
                        r.last_seen_at_ms
                            .map_or(Cell::Empty, |t| instant_cell(t, tz)),
                        // Hundredths of an hour: 36 s each.
                        off.map_or(Cell::Empty, |ms| Cell::Num(ms / 36_000)),
                        Cell::Text(l.t(&bucket_key(OfflineBucket::of(off)))),
                    ]
                })
                .collect(),
        ),
    };
    Sheet {
        name: l.t(report.key()),
        columns,
        rows,
    }
}

// ---- Pages ----

/// The range form, from the query string.
#[derive(Debug, Default, Deserialize)]
pub struct RangeQuery {
    /// First day, `YYYY-MM-DD` (campus time); empty: 30 days before `to`.
    #[serde(default)]
    from: String,
    /// Last day, inclusive; empty: today.
    #[serde(default)]
    to: String,
}

/// One report in the index.
struct IndexEntry {
    href: String,
    title: String,
    about: String,
}

/// `/staff/reports`.
#[derive(Template)]
#[template(path = "staff/reports.html")]
struct IndexPage {
    l: Lang,
    frame: super::Frame,
    reports: Vec<IndexEntry>,
    scope: String,
}

fn within(op: &CurrentOperator) -> Within {
    Within::of(op.operator.role, &op.operator.scope)
}

/// `GET /staff/reports`: the reports the operator may read.
pub async fn index(Console(op): Console<{ Action::ViewReports as u8 }>) -> StaffResult {
    let l = op.l;
    super::html(&IndexPage {
        l,
        reports: Report::ALL
            .into_iter()
            .map(|r| IndexEntry {
                href: format!("/staff/reports/{}", r.slug()),
                title: l.t(r.key()),
                about: l.t(&format!("{}-about", r.key())),
            })
            .collect(),
        scope: super::scope_text(l, &op.operator),
        frame: op.frame("staff-reports-title", "/staff/reports"),
    })
}

/// A cell as the page shows it.
struct CellView {
    text: String,
    num: bool,
}

/// A report's page.
#[derive(Template)]
#[template(path = "staff/report.html")]
struct ReportPage {
    l: Lang,
    frame: super::Frame,
    slug: &'static str,
    about: String,
    has_range: bool,
    from: String,
    to: String,
    error: Option<String>,
    scope: String,
    keys: Vec<&'static str>,
    headers: Vec<String>,
    rows: Vec<Vec<CellView>>,
    /// The total of each summed column, or empty.
    totals: Vec<String>,
    export_query: String,
    stack: Option<StackChart>,
    heat: Option<HeatStrip>,
}

/// What `/staff/reports/{name}` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Page,
    Csv,
    Xlsx,
}

fn parse_name(name: &str) -> Option<(Report, Want)> {
    let (stem, want) = match name.rsplit_once('.') {
        Some((s, "csv")) => (s, Want::Csv),
        Some((s, "xlsx")) => (s, Want::Xlsx),
        Some(_) => return None,
        None => (name, Want::Page),
    };
    Report::parse(stem).map(|r| (r, want))
}

/// `GET /staff/reports/{name}`: a report's page (`sales`) or its export
/// (`sales.xlsx`, `sales.csv`). A bad range is answered 400 with the page
/// and its reason, never with a file.
pub async fn report(
    State(state): State<AppState>,
    Console(op): Console<{ Action::ViewReports as u8 }>,
    Path(name): Path<String>,
    Query(q): Query<RangeQuery>,
) -> StaffResult {
    let Some((report, want)) = parse_name(&name) else {
        return Err(super::StaffError::NotFound);
    };
    let l = op.l;
    let tz = crate::pages::campus_tz(&state);
    let now = state.settings().staff.clock.now_ms();
    let today = day_number(local_date(now, tz));
    let range = parse_range(&q.from, &q.to, today);
    let mut page = ReportPage {
        l,
        slug: report.slug(),
        about: l.t(&format!("{}-about", report.key())),
        has_range: report.has_range(),
        from: q.from.clone(),
        to: q.to.clone(),
        error: None,
        scope: super::scope_text(l, &op.operator),
        keys: Vec::new(),
        headers: Vec::new(),
        rows: Vec::new(),
        totals: Vec::new(),
        export_query: String::new(),
        stack: None,
        heat: None,
        frame: op.frame(report.key(), "/staff/reports"),
    };
    let range = match range {
        Ok(r) => r,
        Err(p) if report.has_range() => {
            page.error = Some(p.text(l));
            let mut resp = Html(page.render()?).into_response();
            *resp.status_mut() = StatusCode::BAD_REQUEST;
            return Ok(resp);
        }
        // The offline report has no range: whatever the form says.
        Err(_) => Range {
            from: today,
            to: today,
        },
    };
    let data = fetch(state.db(), &within(&op), report, range, tz, now).await?;
    let sheet = sheet(l, &data, tz);
    match want {
        Want::Page => {}
        Want::Csv | Want::Xlsx => return export(&state, &op, report, range, &sheet, want).await,
    }
    page.from = day_text(range.from);
    page.to = day_text(range.to);
    page.export_query = format!("from={}&to={}", page.from, page.to);
    page.keys = sheet.columns.iter().map(|c| c.key).collect();
    page.headers = sheet.columns.iter().map(|c| c.header.clone()).collect();
    page.totals = sheet
        .totals()
        .iter()
        .zip(&sheet.columns)
        .map(|(t, c)| {
            t.map(|t| text_of(c.kind, &Cell::Num(t)))
                .unwrap_or_default()
        })
        .collect();
    page.rows = sheet
        .rows
        .iter()
        .map(|r| {
            sheet
                .columns
                .iter()
                .zip(r)
                .map(|(c, cell)| CellView {
                    text: text_of(c.kind, cell),
                    num: matches!(cell, Cell::Num(_)),
                })
                .collect()
        })
        .collect();
    (page.stack, page.heat) = chart(l, &data, range);
    super::html(&page)
}

/// The chart of a report where one helps: stacked sales (yuan) by channel
/// and usage (kWh) by building per day, a heat strip of read success per
/// bus and day.
fn chart(l: Lang, data: &Data, range: Range) -> (Option<StackChart>, Option<HeatStrip>) {
    match data {
        Data::Sales(rows) if !rows.is_empty() => {
            let mut values = BTreeMap::new();
            let mut names: Vec<String> = Vec::new();
            for r in rows {
                let name = channel_name(l, r.channel);
                let i = names.iter().position(|n| *n == name).unwrap_or_else(|| {
                    names.push(name);
                    names.len() - 1
                });
                *values.entry((r.day, i)).or_insert(0) += r.amount.get();
            }
            let series = names.into_iter().map(|label| Series { label }).collect();
            (Some(report_chart::stacked(range, series, &values)), None)
        }
        Data::Usage(rows) if !rows.is_empty() => {
            let mut values = BTreeMap::new();
            let mut ids: Vec<i64> = Vec::new();
            let mut series = Vec::new();
            for r in rows {
                let i = ids
                    .iter()
                    .position(|b| *b == r.building_id)
                    .unwrap_or_else(|| {
                        ids.push(r.building_id);
                        series.push(Series {
                            label: building_name(l, &r.building_zh, &r.building_en),
                        });
                        ids.len() - 1
                    });
                *values.entry((r.day, i)).or_insert(0) += r.usage.get();
            }
            (Some(report_chart::stacked(range, series, &values)), None)
        }
        Data::ReadSuccess(rows) if !rows.is_empty() => {
            let mut buses: Vec<(i64, String)> = Vec::new();
            let mut cells = BTreeMap::new();
            for r in rows {
                let i = buses
                    .iter()
                    .position(|b| b.0 == r.bus_id)
                    .unwrap_or_else(|| {
                        buses.push((r.bus_id, format!("{} / {}", r.gateway, r.port)));
                        buses.len() - 1
                    });
                cells.insert((r.day, i), r.ratio_bp());
            }
            let labels = buses.into_iter().map(|b| b.1).collect();
            (None, Some(report_chart::heat(range, labels, &cells)))
        }
        _ => (None, None),
    }
}

/// An export as a download, audited.
async fn export(
    state: &AppState,
    op: &CurrentOperator,
    report: Report,
    range: Range,
    sheet: &Sheet,
    want: Want,
) -> StaffResult {
    let (bytes, mime, ext) = match want {
        Want::Xlsx => (
            import::export::to_xlsx(sheet),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "xlsx",
        ),
        _ => (
            import::export::to_csv(sheet),
            "text/csv; charset=utf-8",
            "csv",
        ),
    };
    let bytes = bytes.map_err(|e| super::StaffError::Store(store::Error::Corrupt(e)))?;
    let actor = op.actor();
    store::audit::append(
        state.db(),
        &store::audit::Entry {
            actor: &actor,
            action: "report_exported",
            subject: &op.here,
            before: None,
            after: Some(serde_json::json!({
                "report": report.slug(),
                "from": day_text(range.from),
                "to": day_text(range.to),
                "format": ext,
                "rows": sheet.rows.len(),
            })),
        },
        state.settings().staff.clock.now_ms(),
    )
    .await?;
    let file = if report.has_range() {
        format!(
            "dormwatt-{}-{}-{}.{ext}",
            report.slug(),
            day_text(range.from),
            day_text(range.to)
        )
    } else {
        format!("dormwatt-{}.{ext}", report.slug())
    };
    Ok((
        [
            (header::CONTENT_TYPE, mime.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// The table as JSON (`dormwatt report --format json`): one object per row
/// keyed by column, and the totals. Money, energy, hours and ratios are
/// numbers in the unit their key ends in (`amount_yuan`: yuan, two
/// decimals); counts are integers; days and instants are ISO text.
pub fn sheet_json(sheet: &Sheet) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = sheet
        .rows
        .iter()
        .map(|r| {
            let obj: serde_json::Map<String, serde_json::Value> = sheet
                .columns
                .iter()
                .zip(r)
                .map(|(c, cell)| {
                    let v = match cell {
                        Cell::Empty => serde_json::Value::Null,
                        Cell::Num(n) => json_number(c.kind, *n),
                        other => serde_json::Value::from(text_of(c.kind, other)),
                    };
                    (c.key.to_owned(), v)
                })
                .collect();
            serde_json::Value::Object(obj)
        })
        .collect();
    let totals: serde_json::Map<String, serde_json::Value> = sheet
        .columns
        .iter()
        .zip(sheet.totals())
        .filter_map(|(c, t)| t.map(|t| (c.key.to_owned(), json_number(c.kind, t))))
        .collect();
    serde_json::json!({ "report": sheet.name, "rows": rows, "totals": totals })
}

/// A number of column kind `kind` in its key's unit.
fn json_number(kind: ColumnKind, n: i64) -> serde_json::Value {
    match kind {
        ColumnKind::Yuan | ColumnKind::Hundredths | ColumnKind::Percent => {
            // Hundredths to the nearest double, which prints as two decimals.
            #[expect(clippy::cast_precision_loss, reason = "amounts are below 2^53")]
            let v = n as f64 / 100.0;
            serde_json::Value::from(v)
        }
        _ => serde_json::Value::from(n),
    }
}
