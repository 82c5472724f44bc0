//! The student pages (S5–S15): WeChat login, binding meters, the overview
//! with its usage chart, buying, purchase records, the bill and "my info".
//!
//! Markup lives in askama templates (`crates/web/templates/`), checked at
//! compile time against the structs below and escaped automatically; texts
//! live in the Fluent catalogs (`crates/web/locales/`, see [`crate::i18n`]).
//! No `.rs` file here writes markup (a test checks it).
//!
//! A handler's opening is shared, not copied: [`Ctx`] (language, student,
//! this page's address), [`Posted`] / [`Acting`] (a form whose anti-CSRF
//! token is checked; `Acting` also refuses WeChat snapshot identities),
//! [`PathId`] (an id from the URL, anything else is "not found") and
//! [`see`] (redirect).
//!
//! Every handler that reaches a binding, order or message by an id from the
//! URL or a form asks `store::students` with the session's student id, so a
//! tampered id gives 404 (never another student's data).

mod assets;
mod bill;
mod bind;
mod buy;
pub(crate) mod chart;
mod layout;
mod login;
mod me;
mod overview;
mod records;

use crate::AppState;
use crate::i18n::Lang;
use crate::session::{CurrentStudent, SessionRejection};
use askama::Template;
use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

pub use layout::{Shell, Tab};

/// In-memory caches of the student pages, one per [`AppState`].
#[derive(Debug, Default)]
pub struct Cache {
    /// Latest notices per meter (see `overview::NOTICES_CACHE_MS`).
    notices: overview::NoticeCache,
}

impl Cache {
    /// Forgets the cached notices, so a notice published or edited on this
    /// node shows on its next overview (other nodes within the cache time).
    pub(crate) fn forget_notices(&self) {
        if let Ok(mut c) = self.notices.lock() {
            c.clear();
        }
    }
}

/// Routes of the student pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(overview::home))
        .route("/overview", get(overview::overview))
        .route("/login", get(login::page))
        .route("/login/wechat", get(login::wechat_start))
        .route("/login/wechat/callback", get(login::wechat_callback))
        .route("/login/demo", post(login::demo_login))
        .route("/logout", post(login::logout))
        .route("/lang", get(login::switch_lang))
        .route("/bind", get(bind::page).post(bind::submit))
        .route("/buy", get(buy::page))
        .route("/buy/order", get(buy::order_page).post(buy::create_order))
        .route("/orders/{id}", get(buy::order_status_page))
        .route("/orders/{id}/status.json", get(buy::order_status_json))
        .route("/orders/{id}/pay", get(buy::pay_page).post(buy::pay))
        .route("/orders/{id}/cancel", post(buy::cancel))
        .route("/records", get(records::page))
        .route("/bill", get(bill::page))
        .route("/me", get(me::page))
        .route(
            "/me/profile",
            get(me::profile_page).post(me::profile_submit),
        )
        .route("/me/messages", get(me::messages_page))
        .route("/me/meters", get(me::meters_page))
        .route("/me/meters/{id}/default", post(me::meter_default))
        .route("/me/meters/{id}/unbind", post(me::meter_unbind))
        .route(
            "/me/meters/{id}/password",
            get(me::password_page).post(me::password_submit),
        )
        .route("/assets/{name}", get(assets::serve))
        .route_layer(axum::middleware::from_fn(localise_errors))
        .route_layer(axum::middleware::from_fn(crate::session::same_origin_posts))
        .fallback(not_found)
}

/// Any unknown path: the app's own 404 page in the reader's language
/// (issue 11 item 15); JSON callers under `/api/` get a JSON 404.
pub(crate) async fn not_found(uri: axum::http::Uri, headers: axum::http::HeaderMap) -> Response {
    if uri.path().starts_with("/api/") {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"code": "NOT_FOUND", "message": "no such endpoint"})),
        )
            .into_response();
    }
    error_page(
        Lang::of_headers(&headers),
        StatusCode::NOT_FOUND,
        "error-not-found",
    )
}

/// Errors of the page handlers. Internal causes are logged here, once; the
/// student sees a plain message in their language.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Not found, or not theirs (the same answer on purpose).
    #[error("not found")]
    NotFound,
    /// The form's anti-CSRF token did not match.
    #[error(transparent)]
    Csrf(#[from] crate::session::CsrfError),
    /// A snapshot identity tried to bind or pay.
    #[error("snapshot identity")]
    Snapshot,
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] store::Error),
    /// A template failed to render.
    #[error("template: {0}")]
    Render(#[from] askama::Error),
}

/// Which error page a response carries; [`localise_errors`] renders it in
/// the reader's language (an error has no request to read it from).
#[derive(Debug, Clone, Copy)]
struct ErrorPage {
    /// Catalog key of the message.
    key: &'static str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, key) = match &self {
            PageError::NotFound | PageError::Store(store::Error::NotFound(_)) => {
                (StatusCode::NOT_FOUND, "error-not-found")
            }
            PageError::Csrf(e) => return e.into_response(),
            PageError::Snapshot => (StatusCode::FORBIDDEN, "error-snapshot"),
            PageError::Store(e) => {
                tracing::error!(error = %e, "page failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "error-internal")
            }
            PageError::Render(e) => {
                tracing::error!(error = %e, "page did not render");
                (StatusCode::INTERNAL_SERVER_ERROR, "error-internal")
            }
        };
        let mut resp = status.into_response();
        resp.extensions_mut().insert(ErrorPage { key });
        resp
    }
}

/// The error page.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorTemplate {
    l: Lang,
    css: &'static str,
    msg: String,
}

/// An error page of `status` with the catalog text `key`.
fn error_page(l: Lang, status: StatusCode, key: &str) -> Response {
    let t = ErrorTemplate {
        l,
        css: assets::CSS_PATH,
        msg: l.t(key),
    };
    match t.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "error page did not render");
            status.into_response()
        }
    }
}

/// Renders the error page a [`PageError`] left in its response, in the
/// language of the request.
async fn localise_errors(req: Request, next: Next) -> Response {
    let l = Lang::of_headers(req.headers());
    let resp = next.run(req).await;
    match resp.extensions().get::<ErrorPage>().copied() {
        Some(e) => error_page(l, resp.status(), e.key),
        None => resp,
    }
}

/// Result of a page handler.
pub type PageResult<T = Response> = Result<T, PageError>;

/// Renders a page template.
pub fn html(t: &impl Template) -> PageResult {
    Ok(Html(t.render()?).into_response())
}

/// Redirects (303) to a local path.
pub fn see(path: &str) -> PageResult {
    Ok(Redirect::to(path).into_response())
}

/// What every logged-in page handler starts from: the language, the
/// student and where the page is (for the language switch).
pub struct Ctx {
    /// Page language.
    pub l: Lang,
    /// The logged-in student.
    pub student: CurrentStudent,
    /// This page's path and query.
    pub here: String,
}

impl Ctx {
    /// The shell of a page of `tab` titled `title_key`.
    pub fn shell(&self, title_key: &str, tab: Tab) -> Shell<'_> {
        Shell::new(self.l, title_key, Some(&self.student), tab, &self.here)
    }
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = SessionRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let student = CurrentStudent::from_request_parts(parts, state).await?;
        Ok(Ctx {
            l: Lang::of_request(parts),
            student,
            here: here(parts),
        })
    }
}

/// This request's path and query.
fn here(parts: &Parts) -> String {
    parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned())
}

/// A form with the session's anti-CSRF token in its `csrf` field.
pub trait CsrfForm: DeserializeOwned + Send {
    /// The submitted token.
    fn csrf(&self) -> &str;
}

/// Implements [`CsrfForm`] for form structs with a `csrf: String` field.
macro_rules! csrf_forms {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::pages::CsrfForm for $t {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        }
    )*};
}
pub(crate) use csrf_forms;

/// Splits a posted request into what `X` extracts from its head (the
/// student's or the operator's session) and its urlencoded form `T`: the
/// opening every CSRF-checked form extractor shares.
pub(crate) async fn head_and_form<X, T>(req: Request, state: &AppState) -> Result<(X, T), Response>
where
    X: FromRequestParts<AppState>,
    X::Rejection: IntoResponse,
    T: DeserializeOwned + Send,
{
    let (mut parts, body) = req.into_parts();
    let head = X::from_request_parts(&mut parts, state)
        .await
        .map_err(IntoResponse::into_response)?;
    let req = Request::from_parts(parts, body);
    let axum::Form(form) = axum::Form::<T>::from_request(req, state)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok((head, form))
}

/// A posted form of the logged-in student whose anti-CSRF token matched.
pub struct Posted<T> {
    /// Language, student, address.
    pub ctx: Ctx,
    /// The form.
    pub form: T,
}

impl<T: CsrfForm> FromRequest<AppState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (ctx, form) = head_and_form::<Ctx, T>(req, state).await?;
        ctx.student
            .check_csrf(form.csrf())
            .map_err(|e| PageError::from(e).into_response())?;
        Ok(Posted { ctx, form })
    }
}

/// A [`Posted`] form that binds or pays: WeChat snapshot identities may
/// look but not act (wechat-notes §1.1).
pub struct Acting<T>(pub Posted<T>);

impl<T: CsrfForm> FromRequest<AppState> for Acting<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let p = Posted::<T>::from_request(req, state).await?;
        if !p.ctx.student.may_act() {
            return Err(PageError::Snapshot.into_response());
        }
        Ok(Acting(p))
    }
}

/// A form with nothing but the anti-CSRF token.
#[derive(Debug, serde::Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}
csrf_forms!(CsrfOnly);

/// A positive id from the URL's `{id}`; anything else is "not found".
pub struct PathId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(s) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| PageError::NotFound.into_response())?;
        parse_id(&s)
            .map(PathId)
            .map_err(IntoResponse::into_response)
    }
}

/// A local path safe to redirect to after login: it must start with one
/// `/` (not `//host`, not a scheme), so `next` cannot send a student away.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && n.len() <= 512
                && !n.bytes().any(|b| b.is_ascii_control()) =>
        {
            n
        }
        _ => "/",
    }
}

/// Formats unix milliseconds as campus-local `YYYY-MM-DD HH:MM`.
pub fn fmt_time(ms: i64, tz: &jiff::tz::TimeZone) -> String {
    fmt_local(ms, tz, "%Y-%m-%d %H:%M")
}

/// Formats unix milliseconds in campus time with `strftime` format `fmt`
/// (empty when out of range).
pub fn fmt_local(ms: i64, tz: &jiff::tz::TimeZone, fmt: &str) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned_datetime(tz.clone()).strftime(fmt).to_string())
        .unwrap_or_default()
}

/// Energy in 0.01 kWh as `12.34`.
pub fn kwh(c: i64) -> domain::CentiKwh {
    domain::CentiKwh::new(c)
}

/// "Pay by 07:36" for an unpaid order: one clock time, the same on every
/// page (issue 11 item 9); the date is added when it is not today.
pub fn pay_deadline(l: Lang, expires_at_ms: i64, now_ms: i64, tz: &jiff::tz::TimeZone) -> String {
    let at = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| t.to_zoned_datetime(tz.clone()))
            .ok()
    };
    let (Some(due), Some(now)) = (at(expires_at_ms), at(now_ms)) else {
        return String::new();
    };
    let time = if due.date() == now.date() {
        due.strftime("%H:%M").to_string()
    } else {
        due.strftime("%m-%d %H:%M").to_string()
    };
    l.t1("pay-deadline", "time", time)
}

/// Full-width digits (a Chinese input method's `３０`) as ASCII, trimmed
/// (issue 11 item 11): the service's, so pages and use cases agree.
pub use service::input::normalise_digits;

/// A student's meters as the pages list them: the default first, then by
/// area, building and room in natural order ("4号楼" before "34号楼").
pub fn sort_meters(ms: &mut [store::students::BoundMeter]) {
    ms.sort_by(|a, b| {
        b.is_default
            .cmp(&a.is_default)
            .then(a.area_id.cmp(&b.area_id))
            .then_with(|| domain::natural::natural_cmp(&a.building_name_zh, &b.building_name_zh))
            .then_with(|| domain::natural::natural_cmp(&a.room, &b.room))
            .then(a.binding_id.cmp(&b.binding_id))
    });
}

/// Energy as `12.34`, or `—` when not known.
pub fn energy_or_dash(c: Option<domain::CentiKwh>) -> String {
    c.map_or_else(|| "—".to_owned(), |r| r.to_string())
}

/// A scheduled price change as students read it (campus policy, issue 14
/// item 6): "自 12月1日起 0.60 元/kWh" / "From 2026-12-01: 0.60 yuan/kWh".
pub fn price_change_text(
    l: Lang,
    price: domain::UnitPrice,
    at_ms: i64,
    tz: &jiff::tz::TimeZone,
) -> String {
    let date = domain::time::local_date(at_ms, tz);
    l.t_args(
        "price-change",
        &[
            ("month", i64::from(date.month()).into()),
            ("day", i64::from(date.day()).into()),
            ("date", date.to_string().into()),
            ("price", fmt_price(price).into()),
        ],
    )
}

/// A unit price as `0.5500`-style yuan with 4 decimals trimmed to at
/// least 2.
pub fn fmt_price(price: domain::UnitPrice) -> String {
    let centifen_per_kwh = price.centifen_per_kwh();
    let yuan = centifen_per_kwh / 10_000;
    let frac = (centifen_per_kwh % 10_000).abs();
    let mut s = format!("{yuan}.{frac:04}");
    while s.ends_with('0') && s.len() > s.find('.').map_or(0, |p| p + 3) {
        s.pop();
    }
    s
}

/// The campus time zone of the settings (resolved once, at configuration
/// load; nothing is parsed here).
pub fn campus_tz(state: &AppState) -> &jiff::tz::TimeZone {
    state.settings().time_zone.tz()
}

/// "Area`sep`building room" in the page language; names are (zh, en).
pub fn room_place(
    l: Lang,
    area: (&str, &str),
    building: (&str, &str),
    room: &str,
    sep: &str,
) -> String {
    format!(
        "{}{sep}{} {room}",
        area_name(l, area.0, area.1),
        area_name(l, building.0, building.1),
    )
}

/// The area's name in the page language.
pub fn area_name<'a>(lang: Lang, zh: &'a str, en: &'a str) -> &'a str {
    if lang.code() != "zh" && !en.is_empty() {
        en
    } else {
        zh
    }
}

/// Parses an id from a path segment; anything else is "not found".
pub fn parse_id(s: &str) -> PageResult<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or(PageError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_must_be_local() {
        assert_eq!(
            safe_next(Some("/bill?month=2026-11")),
            "/bill?month=2026-11"
        );
        assert_eq!(safe_next(Some("//evil.test/")), "/");
        assert_eq!(safe_next(Some("https://evil.test/")), "/");
        assert_eq!(safe_next(Some("/\\evil.test")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn meters_are_listed_in_natural_order() {
        let m =
            |id: i64, building: &str, room: &str, is_default: bool| store::students::BoundMeter {
                binding_id: id,
                is_default,
                meter_id: domain::MeterId::new(id),
                address: format!("{id:012}"),
                area_id: domain::AreaId::new(1),
                area_name_zh: "中蓝".to_owned(),
                area_name_en: String::new(),
                time_zone: domain::time::CampusTz::default(),
                building_name_zh: building.to_owned(),
                building_name_en: String::new(),
                room: room.to_owned(),
                unit_price_centifen_per_kwh: domain::UnitPrice::fixed(5_500),
                password_is_default: false,
                low_balance_centikwh: domain::CentiKwh::new(500),
                remaining_centikwh: None,
                overdraft_centikwh: None,
                remaining_at_ms: None,
                online: None,
                relay_closed: None,
                relay_reason: None,
                relay_restore_at_ms: None,
                power_w: None,
                last_seen_at_ms: None,
            };
        let mut ms = vec![
            m(1, "34号楼", "101", false),
            m(2, "4号楼", "1002", false),
            m(3, "4号楼", "202", false),
            m(4, "5号楼", "101", true),
        ];
        sort_meters(&mut ms);
        let order: Vec<i64> = ms.iter().map(|m| m.binding_id).collect();
        assert_eq!(order, [4, 3, 2, 1]);
    }

    #[test]
    fn encodes_and_prices() {
        assert_eq!(fmt_price(domain::UnitPrice::fixed(5_500)), "0.55");
        assert_eq!(fmt_price(domain::UnitPrice::fixed(5_512)), "0.5512");
        assert_eq!(fmt_price(domain::UnitPrice::fixed(10_000)), "1.00");
    }
}
