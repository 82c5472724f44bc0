//! Bulk import in the console (issue 14 item 2): `/staff/import`.
//!
//! - `GET /staff/import/template/{kind}.{xlsx|csv}`: the template of a kind
//!   (header and example rows, `import::template`).
//! - `POST /staff/import` (multipart: `csrf`, `kind`, `file`; at most
//!   [`UPLOAD_BYTES_MAX`]): the dry run — the file is read (XLSX, or CSV in
//!   UTF-8 or GBK), every row checked without and with the database
//!   (`import::parse`, `store::registry::check`), and the report shown with
//!   every failing row, its column and reason. The file is kept in memory
//!   keyed by its SHA-256 and the operator for [`PENDING_TTL_MS`].
//! - `POST /staff/import/apply` (`csrf`, `sha256`): applies exactly the
//!   file that was dry-run (looked up by its hash), all or nothing, audited
//!   with the hash (`store::registry::apply_file`, which bumps the registry
//!   version in the same transaction so head-ends reload).
//!
//! The pending files live in this process: behind several console
//! processes, an apply that lands on another one is told to upload again
//! (nothing is applied that was not dry-run).

use super::{Console, CurrentOperator, StaffError, StaffForm, StaffResult, html_with_status};
use crate::AppState;
use crate::i18n::Lang;
use askama::Template;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use domain::staff::{Action, Place};
use import::{Format, Kind, Report, RowError};
use serde::Deserialize;
use std::sync::{Arc, Mutex, PoisonError};
use store::registry::Outcome;

/// Largest upload: a 50,000-row workbook is about 3 MB.
pub const UPLOAD_BYTES_MAX: usize = 8 * 1024 * 1024;
/// How long a dry-run file waits for its apply.
pub const PENDING_TTL_MS: i64 = 30 * 60 * 1000;
/// Most files waiting at once (the oldest is dropped).
const PENDING_MAX: usize = 16;

/// A dry-run file waiting for its apply.
struct Pending {
    sha256: String,
    operator_id: i64,
    kind: Option<Kind>,
    bytes: Arc<Vec<u8>>,
    expires_at_ms: i64,
}

/// The files dry-run in this process, newest last.
static PENDING: Mutex<Vec<Pending>> = Mutex::new(Vec::new());

fn keep(p: Pending, now_ms: i64) {
    let mut all = PENDING.lock().unwrap_or_else(PoisonError::into_inner);
    all.retain(|q| {
        q.expires_at_ms > now_ms && !(q.sha256 == p.sha256 && q.operator_id == p.operator_id)
    });
    if all.len() >= PENDING_MAX {
        all.remove(0);
    }
    all.push(p);
}

/// The file `sha256` dry-run by `operator_id`, unless it expired.
fn pending(sha256: &str, operator_id: i64, now_ms: i64) -> Option<(Option<Kind>, Arc<Vec<u8>>)> {
    let mut all = PENDING.lock().unwrap_or_else(PoisonError::into_inner);
    all.retain(|q| q.expires_at_ms > now_ms);
    all.iter()
        .find(|q| q.sha256 == sha256 && q.operator_id == operator_id)
        .map(|q| (q.kind, Arc::clone(&q.bytes)))
}

fn forget(sha256: &str, operator_id: i64) {
    let mut all = PENDING.lock().unwrap_or_else(PoisonError::into_inner);
    all.retain(|q| !(q.sha256 == sha256 && q.operator_id == operator_id));
}

/// The SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

/// One template link.
struct TemplateLink {
    kind: &'static str,
    label: String,
}

/// One failing row as the report shows it.
struct ErrorRow {
    row: String,
    column: String,
    reason: String,
}

/// A dry run's result.
struct DryRun {
    file: String,
    kind: String,
    sha256: String,
    /// "N rows, M pass, K fail".
    summary: String,
    apply_label: String,
    errors: Vec<ErrorRow>,
    /// No row fails: the apply button is shown.
    can_apply: bool,
}

/// The import page.
#[derive(Template)]
#[template(path = "staff/import.html")]
struct ImportPage {
    l: Lang,
    frame: super::Frame,
    templates: Vec<TemplateLink>,
    kinds: Vec<TemplateLink>,
    report: Option<DryRun>,
    error: Option<String>,
    notice: Option<String>,
    upload_mb: usize,
}

fn kind_label(l: Lang, k: Kind) -> String {
    l.t(match k {
        Kind::Buildings => "staff-import-kind-buildings",
        Kind::Rooms => "staff-import-kind-rooms",
        Kind::Gateways => "staff-import-kind-gateways",
        Kind::Meters => "staff-import-kind-meters",
    })
}

fn render(
    op: &CurrentOperator,
    report: Option<DryRun>,
    error: Option<String>,
    notice: Option<String>,
) -> StaffResult {
    let l = op.l;
    let links = || {
        Kind::ALL
            .into_iter()
            .map(|k| TemplateLink {
                kind: k.as_str(),
                label: kind_label(l, k),
            })
            .collect::<Vec<_>>()
    };
    let failed = error.is_some() || report.as_ref().is_some_and(|r| !r.can_apply);
    html_with_status(
        &ImportPage {
            l,
            frame: op.frame("staff-import-title", "/staff/import"),
            templates: links(),
            kinds: links(),
            report,
            error,
            notice,
            upload_mb: UPLOAD_BYTES_MAX / (1024 * 1024),
        },
        failed,
    )
}

/// Query of the import page after an apply.
#[derive(Debug, Deserialize)]
pub struct DoneQuery {
    imported: Option<usize>,
    kind: Option<String>,
}

/// `GET /staff/import`.
pub async fn page(
    Console(op): Console<{ Action::ManageRegistry as u8 }>,
    Query(q): Query<DoneQuery>,
) -> StaffResult {
    let l = op.l;
    let notice = q.imported.map(|n| {
        let kind = q
            .kind
            .as_deref()
            .and_then(Kind::parse)
            .map_or_else(String::new, |k| kind_label(l, k));
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        l.t2("staff-import-applied", "n", n, "kind", kind)
    });
    render(&op, None, None, notice)
}

/// `GET /staff/import/template/{file}`: `meters.xlsx`, `rooms.csv`, …
pub async fn template(
    Console(_op): Console<{ Action::ManageRegistry as u8 }>,
    Path(file): Path<String>,
) -> StaffResult {
    let (name, ext) = file.rsplit_once('.').ok_or(StaffError::NotFound)?;
    let kind = Kind::parse(name).ok_or(StaffError::NotFound)?;
    let (format, mime) = match ext {
        "xlsx" => (
            Format::Xlsx,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        "csv" => (Format::Csv, "text/csv; charset=utf-8"),
        _ => return Err(StaffError::NotFound),
    };
    let bytes =
        import::template(kind, format).map_err(|e| StaffError::Store(store::Error::Corrupt(e)))?;
    let disposition = format!("attachment; filename=\"dormwatt-{}.{ext}\"", kind.as_str());
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// What the upload form posted.
#[derive(Default)]
struct Upload {
    csrf: String,
    kind: Option<Kind>,
    name: String,
    bytes: Vec<u8>,
}

/// Why an upload could not be read.
enum UploadError {
    /// Over [`UPLOAD_BYTES_MAX`].
    TooLarge,
    /// A broken multipart body, or no token.
    Unreadable,
    /// No file chosen.
    NoFile,
}

fn unreadable(e: &axum::extract::multipart::MultipartError) -> UploadError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        UploadError::TooLarge
    } else {
        UploadError::Unreadable
    }
}

async fn read_upload(mut m: Multipart) -> Result<Upload, UploadError> {
    let mut u = Upload::default();
    let mut file = false;
    while let Some(field) = m.next_field().await.map_err(|e| unreadable(&e))? {
        match field.name() {
            Some("csrf") => u.csrf = field.text().await.map_err(|e| unreadable(&e))?,
            Some("kind") => {
                let t = field.text().await.map_err(|e| unreadable(&e))?;
                u.kind = Kind::parse(t.trim());
            }
            Some("file") => {
                u.name = field.file_name().unwrap_or_default().to_owned();
                u.bytes = field.bytes().await.map_err(|e| unreadable(&e))?.to_vec();
                file = !u.bytes.is_empty();
            }
            _ => {}
        }
    }
    if u.csrf.is_empty() {
        return Err(UploadError::Unreadable);
    }
    if !file {
        return Err(UploadError::NoFile);
    }
    Ok(u)
}

/// Parses `bytes` and checks the rows against the database: the report,
/// and the records when every row passes.
async fn check(
    state: &AppState,
    bytes: &[u8],
    kind: Option<Kind>,
) -> Result<(Report, Option<(Kind, import::Records)>), StaffError> {
    match import::parse(bytes, kind) {
        Err(e) => Ok((Report::new(0, vec![e.as_row_error()]), None)),
        Ok(parsed) => {
            let mut errors = parsed.errors;
            errors.extend(store::registry::check(state.db(), &parsed.records).await?);
            let report = Report::new(parsed.rows, errors);
            let records = report
                .errors
                .is_empty()
                .then(|| (parsed.records.kind(), parsed.records));
            Ok((report, records))
        }
    }
}

fn dry_run_view(
    l: Lang,
    file: String,
    sha256: String,
    kind: Option<Kind>,
    report: &Report,
) -> DryRun {
    let errors = report
        .errors
        .iter()
        .map(
            |RowError {
                 row,
                 column,
                 reason,
             }| ErrorRow {
                row: if *row == 0 {
                    l.t("staff-import-whole-file")
                } else {
                    row.to_string()
                },
                column: column.clone(),
                reason: reason.clone(),
            },
        )
        .collect();
    DryRun {
        file,
        kind: kind.map_or_else(String::new, |k| kind_label(l, k)),
        sha256,
        summary: l.t_args(
            "staff-import-summary",
            &[
                ("rows", count(report.rows).into()),
                ("ok", count(report.ok).into()),
                (
                    "failing",
                    count(report.rows.saturating_sub(report.ok)).into(),
                ),
            ],
        ),
        apply_label: l.t1("staff-import-apply", "n", count(report.rows)),
        can_apply: report.errors.is_empty(),
        errors,
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `POST /staff/import`: the dry run of an uploaded file.
pub async fn dry_run(
    State(state): State<AppState>,
    op: CurrentOperator,
    m: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> StaffResult {
    let l = op.l;
    // A body that is not multipart at all: one without the permission is
    // refused as such (403, audited); anyone else's is a forged request.
    let Ok(m) = m else {
        op.require(&state, Action::ManageRegistry, Place::Console)
            .await?;
        return Err(StaffError::Csrf);
    };
    let upload = match read_upload(m).await {
        Ok(u) => u,
        // Without a readable token the request is treated as a forged one.
        Err(UploadError::Unreadable) => return Err(StaffError::Csrf),
        Err(UploadError::NoFile) => {
            op.require(&state, Action::ManageRegistry, Place::Console)
                .await?;
            return render(&op, None, Some(l.t("staff-import-no-file")), None);
        }
        Err(UploadError::TooLarge) => {
            op.require(&state, Action::ManageRegistry, Place::Console)
                .await?;
            let msg = l.t1(
                "staff-import-too-large",
                "mb",
                UPLOAD_BYTES_MAX / (1024 * 1024),
            );
            let mut r = render(&op, None, Some(msg), None)?;
            *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            return Ok(r);
        }
    };
    if !crate::session::constant_eq(op.csrf_token.as_bytes(), upload.csrf.as_bytes()) {
        return Err(StaffError::Csrf);
    }
    op.require(&state, Action::ManageRegistry, Place::Console)
        .await?;
    let sha256 = sha256_hex(&upload.bytes);
    let started = std::time::Instant::now();
    let (report, records) = check(&state, &upload.bytes, upload.kind).await?;
    tracing::info!(
        rows = report.rows,
        errors = report.errors.len(),
        duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "registry import dry run"
    );
    let kind = records.as_ref().map(|(k, _)| *k);
    if records.is_some() {
        keep(
            Pending {
                sha256: sha256.clone(),
                operator_id: op.operator.id,
                kind: upload.kind,
                bytes: Arc::new(upload.bytes),
                expires_at_ms: state.settings().staff.clock.now_ms() + PENDING_TTL_MS,
            },
            state.settings().staff.clock.now_ms(),
        );
    }
    let view = dry_run_view(l, upload.name, sha256, kind, &report);
    render(&op, Some(view), None, None)
}

/// The apply form.
// Fields default so a crafted body reaches the permission gate (403).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ApplyForm {
    csrf: String,
    sha256: String,
}

crate::pages::csrf_forms!(ApplyForm);

/// `POST /staff/import/apply`: applies the dry-run file of that hash.
pub async fn apply(
    State(state): State<AppState>,
    f: StaffForm<ApplyForm, { Action::ManageRegistry as u8 }>,
) -> StaffResult<Response> {
    let StaffForm { op, form } = f;
    let l = op.l;
    let now = state.settings().staff.clock.now_ms();
    let sha256 = form.sha256.trim().to_ascii_lowercase();
    let Some((kind, bytes)) = pending(&sha256, op.operator.id, now) else {
        return render(&op, None, Some(l.t("staff-import-expired")), None);
    };
    // The kept bytes are the dry-run file (its hash is the key); checked
    // again, as the registry may have changed since.
    debug_assert_eq!(sha256_hex(&bytes), sha256);
    let (report, records) = check(&state, &bytes, kind).await?;
    let Some((kind, records)) = records else {
        let view = dry_run_view(l, String::new(), sha256, None, &report);
        return render(&op, Some(view), None, None);
    };
    match store::registry::apply_file(state.db(), &records, &op.actor(), now, Some(&sha256)).await {
        Ok(Outcome::Applied { kind, rows }) => {
            forget(&sha256, op.operator.id);
            Ok(Redirect::to(&format!(
                "/staff/import?imported={rows}&kind={}",
                kind.as_str()
            ))
            .into_response())
        }
        Ok(Outcome::Refused(errors)) => {
            let report = Report::new(report.rows, errors);
            let view = dry_run_view(l, String::new(), sha256, Some(kind), &report);
            render(&op, Some(view), None, None)
        }
        Err(store::Error::Conflict(why)) => render(
            &op,
            None,
            Some(l.t1("staff-import-conflict", "why", why)),
            None,
        ),
        Err(e) => Err(e.into()),
    }
}
