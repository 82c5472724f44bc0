//! The student pages (S5–S15): WeChat login, binding meters, the overview
//! with its usage chart, buying, purchase records, the bill and "my info".
//!
//! Server-rendered HTML built with plain Rust string writing and one escaping
//! helper ([`Esc`]) rather than a template engine: the pages are small, the
//! markup sits next to the data it shows, and rendering stays allocation-light
//! for the overview benchmark. Every value that came from a user or the
//! database goes through [`Esc`].
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
use axum::Router;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use std::fmt::{self, Write as _};

pub use layout::Esc;

/// In-memory caches of the student pages, one per [`AppState`].
#[derive(Debug, Default)]
pub struct Cache {
    /// Latest notices per area (see `overview::NOTICES_CACHE_MS`).
    notices: overview::NoticeCache,
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
        .route("/me/messages/read", post(me::messages_read_all))
        .route("/me/messages/{id}/read", post(me::message_read))
        .route("/me/meters", get(me::meters_page))
        .route("/me/meters/{id}/default", post(me::meter_default))
        .route("/me/meters/{id}/unbind", post(me::meter_unbind))
        .route(
            "/me/meters/{id}/password",
            get(me::password_page).post(me::password_submit),
        )
        .route("/assets/{name}", get(assets::serve))
        .route_layer(axum::middleware::from_fn(crate::session::same_origin_posts))
}

/// Errors of the page handlers. Internal causes are logged here, once; the
/// student sees a plain bilingual message.
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
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, msg) = match &self {
            PageError::NotFound => (StatusCode::NOT_FOUND, "页面不存在 / Page not found"),
            PageError::Csrf(e) => return e.into_response(),
            PageError::Snapshot => (
                StatusCode::FORBIDDEN,
                "请在微信中打开本页面后再操作 / Please open this page inside WeChat to do this",
            ),
            PageError::Store(store::Error::NotFound(_)) => {
                (StatusCode::NOT_FOUND, "页面不存在 / Page not found")
            }
            PageError::Store(e) => {
                tracing::error!(error = %e, "page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "系统繁忙，请稍后再试 / Something went wrong; please try again",
                )
            }
        };
        let mut body = String::with_capacity(600);
        let _ = write!(
            body,
            "<!doctype html><html lang=zh-CN><head><meta charset=utf-8>\
             <meta name=viewport content=\"width=device-width,initial-scale=1\">\
             <link rel=stylesheet href=\"{css}\"><title>{msg}</title></head><body><main>\
             <div class=card><p class=err>{msg}</p><p><a class=btn href=\"/\">首页 / Home</a></p></div>\
             </main></body></html>",
            css = assets::CSS_PATH,
            msg = Esc(msg)
        );
        (status, Html(body)).into_response()
    }
}

/// Result of a page handler.
pub type PageResult<T = Response> = Result<T, PageError>;

/// Percent-encodes a query-string component (RFC 3986 unreserved kept).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
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
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned_datetime(tz.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

/// Energy in 0.01 kWh as `12.34`.
pub fn kwh(c: i64) -> domain::CentiKwh {
    domain::CentiKwh::new(c)
}

/// A unit price in 0.0001 元/kWh as `0.5500`-style yuan with 4 decimals
/// trimmed to at least 2.
pub fn fmt_price(centifen_per_kwh: i64) -> String {
    let yuan = centifen_per_kwh / 10_000;
    let frac = (centifen_per_kwh % 10_000).abs();
    let mut s = format!("{yuan}.{frac:04}");
    while s.ends_with('0') && s.len() > s.find('.').map_or(0, |p| p + 3) {
        s.pop();
    }
    s
}

/// The campus time zone of the settings.
pub fn campus_tz(state: &AppState) -> jiff::tz::TimeZone {
    domain::time::campus_tz(&state.settings().time_zone)
}

/// A form's hidden CSRF field.
pub struct CsrfField<'a>(pub &'a str);

impl fmt::Display for CsrfField<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<input type=hidden name=csrf value=\"{}\">", Esc(self.0))
    }
}

/// The area's name in the page language.
pub fn area_name<'a>(lang: Lang, zh: &'a str, en: &'a str) -> &'a str {
    if lang == Lang::En && !en.is_empty() {
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
    fn encodes_and_prices() {
        assert_eq!(url_encode("/a b?c=1&d"), "%2Fa%20b%3Fc%3D1%26d");
        assert_eq!(fmt_price(5_500), "0.55");
        assert_eq!(fmt_price(5_512), "0.5512");
        assert_eq!(fmt_price(10_000), "1.00");
    }
}
