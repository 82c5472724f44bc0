//! Security headers on every answer (issue 10 item 8).
//!
//! - `Content-Security-Policy`: scripts only from our origin (the pages use
//!   one external `app.js`, no inline script or handler), styles from our
//!   origin plus inline `style` attributes (`style-src-attr`, used for
//!   show/hide and chart colours; no `<style>` elements), images from our
//!   origin and `data:`, XHR to our origin, forms posting to our origin —
//!   and, in the demo, to the sandbox cashier's origin, which the payment
//!   form redirects to — no framing, no `<base>`, no plugins.
//! - `X-Frame-Options: DENY` for browsers without `frame-ancestors`.
//! - `X-Content-Type-Options: nosniff`, `Referrer-Policy: same-origin`
//!   (WeChat's OAuth `code` and order paths never leak to third parties).
//! - `Strict-Transport-Security` when `public_url` is https.
//! - `Cache-Control: no-store` on every answer that does not set its own
//!   (pages and API answers carry balances, rooms and orders; only the
//!   versioned static assets are cacheable).

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;

/// The headers, computed once per application.
#[derive(Debug, Clone)]
pub(crate) struct SecurityHeaders {
    csp: HeaderValue,
    hsts: Option<HeaderValue>,
}

impl SecurityHeaders {
    /// `form_origin`: one more origin forms may post to (the demo cashier).
    pub(crate) fn new(public_url: &str, form_origin: Option<&str>) -> Self {
        let form_action = match form_origin {
            Some(o) => format!("'self' {o}"),
            None => "'self'".to_owned(),
        };
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; \
             img-src 'self' data:; connect-src 'self'; form-action {form_action}; \
             frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
        );
        Self {
            csp: HeaderValue::from_str(&csp)
                .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'")),
            hsts: public_url
                .starts_with("https://")
                .then(|| HeaderValue::from_static("max-age=31536000")),
        }
    }
}

/// Adds the headers to every response.
pub(crate) async fn headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let sec = state.security_headers();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, sec.csp.clone());
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if let Some(v) = &sec.hsts {
        h.insert(header::STRICT_TRANSPORT_SECURITY, v.clone());
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
