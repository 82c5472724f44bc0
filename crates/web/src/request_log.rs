//! One correlation id per request and one access-log line per answer.
//!
//! The id is the request's `X-Request-Id` when a proxy in front sent a
//! plausible one (1–64 of `A–Z a–z 0–9 . _ -`), otherwise 16 random hex
//! digits; it is put on the request (so the trace span sees it), on every
//! log event inside the request's span, and on the answer's
//! `X-Request-Id`. The span and the access line carry the method and the
//! path only: never the query string (an OAuth `code`, a search for a
//! student's name) and never a header or body.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Duration;
use tower_http::classify::ServerErrorsFailureClass;

/// The header both ways.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest id taken from a client.
const ID_CHARS_MAX: usize = 64;

fn plausible(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= ID_CHARS_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Middleware: gives the request its id and echoes it on the answer.
pub async fn correlate(mut req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| plausible(id))
        .map(str::to_owned);
    let id = given.unwrap_or_else(|| hex::encode(rand::random::<[u8; 8]>()));
    // Plausible ids and hex are header-safe.
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    req.headers_mut().insert(REQUEST_ID.clone(), value.clone());
    let mut res = next.run(req).await;
    res.headers_mut().insert(REQUEST_ID.clone(), value);
    res
}

/// The request's span: its id, method and path.
pub fn span(req: &Request) -> tracing::Span {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
    )
}

/// The access-log line, inside the request's span.
pub fn on_response(res: &Response, latency: Duration, _span: &tracing::Span) {
    tracing::info!(
        status = res.status().as_u16(),
        ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
        "answered"
    );
}

/// A 5xx or a failed body: logged at warn with its class.
pub fn on_failure(class: ServerErrorsFailureClass, latency: Duration, _span: &tracing::Span) {
    tracing::warn!(
        failure = %class,
        ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
        "request failed"
    );
}

#[cfg(test)]
mod tests {
    use super::plausible;

    #[test]
    fn only_short_plain_ids_are_taken_from_clients() {
        assert!(plausible("3f9a-01.b_c"));
        assert!(!plausible(""));
        assert!(!plausible("a\nforged log line"));
        assert!(!plausible("x y"));
        assert!(!plausible(&"a".repeat(65)));
    }
}
