//! The audit log for auditors (and administrators): search by operator,
//! action and campus-local dates, and the same search as CSV.

use super::{Console, StaffResult, fmt_seconds, html};
use crate::AppState;
use crate::i18n::Lang;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use domain::staff::Action;
use serde::Deserialize;

/// Rows the page shows.
const PAGE_ROWS: i64 = 200;

/// The search, from the query string. Empty fields match everything.
#[derive(Debug, Default, Deserialize)]
pub struct Search {
    #[serde(default)]
    operator: String,
    #[serde(default)]
    action: String,
    /// First day, `YYYY-MM-DD` (campus time).
    #[serde(default)]
    from: String,
    /// Last day, inclusive.
    #[serde(default)]
    to: String,
}

impl Search {
    /// The store's filter; a date that does not parse is ignored (and kept
    /// in the form for the operator to see).
    fn filter(&self, tz: &jiff::tz::TimeZone, limit: i64) -> store::audit::Filter {
        let day_start = |s: &str, plus_days: i64| -> Option<i64> {
            let d: jiff::civil::Date = s.trim().parse().ok()?;
            let d = d.checked_add(jiff::Span::new().days(plus_days)).ok()?;
            d.to_datetime(jiff::civil::Time::midnight())
                .to_zoned_datetime(tz.clone())
                .ok()
                .map(|z| z.timestamp().as_millisecond())
        };
        let some = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        store::audit::Filter {
            operator: some(&self.operator),
            action: some(&self.action),
            from_ms: day_start(&self.from, 0),
            until_ms: day_start(&self.to, 1),
            limit,
        }
    }

    /// What the page and the export both show: at most `limit` rows (the
    /// handlers' gate asked for `Action::ViewAudit`).
    async fn run(&self, state: &AppState, limit: i64) -> StaffResult<Vec<store::audit::AuditRow>> {
        let tz = crate::pages::campus_tz(state);
        Ok(store::audit::search(state.db(), &self.filter(tz, limit)).await?)
    }

    /// The query string of this search (for the CSV link).
    fn query(&self) -> String {
        let e = crate::url::encode;
        format!(
            "operator={}&action={}&from={}&to={}",
            e(&self.operator),
            e(&self.action),
            e(&self.from),
            e(&self.to)
        )
    }
}

/// One row as the page shows it.
struct Row {
    seq: i64,
    at: String,
    operator: String,
    action: String,
    ip: String,
    subject: String,
    before: String,
    after: String,
}

/// The audit page.
#[derive(Template)]
#[template(path = "staff/audit.html")]
struct AuditPage {
    l: Lang,
    frame: super::Frame,
    q: Search,
    actions: Vec<String>,
    rows: Vec<Row>,
    csv_href: String,
    /// The page shows the newest [`PAGE_ROWS`] only.
    truncated: bool,
}

/// `GET /staff/audit`.
pub async fn page(
    State(state): State<AppState>,
    Console(op): Console<{ Action::ViewAudit as u8 }>,
    Query(q): Query<Search>,
) -> StaffResult {
    let found = q.run(&state, PAGE_ROWS + 1).await?;
    let tz = crate::pages::campus_tz(&state);
    let truncated = found.len() > usize::try_from(PAGE_ROWS).unwrap_or(usize::MAX);
    let rows = found
        .into_iter()
        .take(usize::try_from(PAGE_ROWS).unwrap_or(usize::MAX))
        .map(|r| Row {
            seq: r.seq,
            at: fmt_seconds(r.at_ms, tz),
            operator: r.operator_name,
            action: r.action,
            ip: r.client_ip,
            subject: r.subject,
            before: r.before_json.unwrap_or_default(),
            after: r.after_json.unwrap_or_default(),
        })
        .collect();
    html(&AuditPage {
        l: op.l,
        frame: op.frame("staff-audit-title", "/staff/audit"),
        actions: store::audit::actions(state.db()).await?,
        csv_href: format!("/staff/audit.csv?{}", q.query()),
        q,
        rows,
        truncated,
    })
}

/// `GET /staff/audit.csv`: the search as CSV (UTF-8 with a byte-order mark,
/// so spreadsheet programs read the Chinese right), every column of the
/// stored rows including the chain's hashes; up to
/// [`store::audit::SEARCH_ROWS_MAX`] rows. The export itself is audited.
pub async fn csv(
    State(state): State<AppState>,
    Console(op): Console<{ Action::ViewAudit as u8 }>,
    Query(q): Query<Search>,
) -> StaffResult {
    let rows = q.run(&state, store::audit::SEARCH_ROWS_MAX).await?;
    let tz = crate::pages::campus_tz(&state);
    let mut w = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
    let failed = |e: csv::Error| super::StaffError::Store(store::Error::Corrupt(e.to_string()));
    w.write_record([
        "seq",
        "at",
        "operator_id",
        "operator",
        "action",
        "client_ip",
        "subject",
        "before",
        "after",
        "prev_hash",
        "hash",
    ])
    .map_err(failed)?;
    for r in &rows {
        w.write_record([
            r.seq.to_string(),
            fmt_seconds(r.at_ms, tz),
            r.operator_id.map(|i| i.to_string()).unwrap_or_default(),
            r.operator_name.clone(),
            r.action.clone(),
            r.client_ip.clone(),
            r.subject.clone(),
            r.before_json.clone().unwrap_or_default(),
            r.after_json.clone().unwrap_or_default(),
            r.prev_hash.clone(),
            r.hash.clone(),
        ])
        .map_err(failed)?;
    }
    let body = w
        .into_inner()
        .map_err(|e| super::StaffError::Store(store::Error::Corrupt(e.to_string())))?;
    let actor = op.actor();
    store::audit::append(
        state.db(),
        &store::audit::Entry {
            actor: &actor,
            action: "audit_exported",
            subject: &op.here,
            before: None,
            after: Some(serde_json::json!({ "rows": rows.len() })),
        },
        state.settings().staff.clock.now_ms(),
    )
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"dormwatt-audit.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}
