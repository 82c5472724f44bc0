//! Student sessions: the session cookie, the per-session anti-CSRF token and
//! the [`CurrentStudent`] extractor every student handler (pages and
//! payments) takes.
//!
//! - The cookie carries a random 256-bit token; the database keeps only its
//!   SHA-256, so a leaked database holds no live sessions (ASVS 7.2.3).
//! - A new session is created at every login (rotation, ASVS 7.2.4) and has
//!   an absolute expiry ([`crate::Settings::session_ttl_ms`]).
//! - Cookies are `HttpOnly; SameSite=Lax; Path=/`, plus `Secure` when the
//!   public URL is https (a plain-http demo on localhost must still work).
//! - State-changing requests carry the session's CSRF token in a form field
//!   and pass an Origin / `Sec-Fetch-Site` check ([`same_origin_posts`]).

use crate::{AppState, cookies};
use axum::extract::{FromRequestParts, Request};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "dw_session";
/// Default absolute lifetime of a session: 7 days (a phone stays logged in
/// through a week of WeChat use; WeChat login is one silent redirect anyway).
pub const SESSION_TTL_MS_DEFAULT: i64 = 7 * 24 * 60 * 60 * 1000;

/// The logged-in student of a request. Extracting it looks the session
/// cookie up (one query, which also counts unread messages); without a live
/// session a page request is redirected to `/login?next=<where it was going>`
/// and a JSON request gets 401.
#[derive(Debug, Clone)]
pub struct CurrentStudent {
    /// Student row id.
    pub id: i64,
    /// WeChat openid (the JSAPI `payer.openid`). Never log it.
    pub openid: String,
    /// Display name (may be empty).
    pub name: String,
    /// A demo identity.
    pub is_demo: bool,
    /// A WeChat snapshot-page identity: may look, never bind or pay.
    pub is_snapshot: bool,
    /// The session's anti-CSRF token, to put in every form.
    pub csrf_token: String,
    /// Unread inbox messages.
    pub unread: i64,
}

impl CurrentStudent {
    /// Checks a submitted anti-CSRF token (constant time).
    pub fn check_csrf(&self, submitted: &str) -> Result<(), CsrfError> {
        if constant_eq(self.csrf_token.as_bytes(), submitted.as_bytes()) {
            Ok(())
        } else {
            Err(CsrfError)
        }
    }

    /// Whether this identity may bind meters and pay (snapshot users may not;
    /// wechat-notes §1.1).
    pub fn may_act(&self) -> bool {
        !self.is_snapshot
    }
}

/// A form's anti-CSRF token did not match the session's.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the form's anti-forgery token does not match the session")]
pub struct CsrfError;

impl IntoResponse for CsrfError {
    fn into_response(self) -> Response {
        (
            StatusCode::FORBIDDEN,
            "页面已过期，请返回重试 / This page has expired; go back and try again.",
        )
            .into_response()
    }
}

/// Why [`CurrentStudent`] could not be extracted.
#[derive(Debug)]
pub enum SessionRejection {
    /// No live session: go to the login page, then come back to `next`.
    Login {
        /// The path and query the student was going to.
        next: String,
        /// The request wanted JSON (answer 401 instead of a redirect).
        json: bool,
    },
    /// The session store failed.
    Unavailable,
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        match self {
            SessionRejection::Login { json: true, .. } => (
                StatusCode::UNAUTHORIZED,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"error":"login required"}"#,
            )
                .into_response(),
            SessionRejection::Login { next, json: false } => {
                Redirect::to(&format!("/login?next={}", crate::url::encode(&next))).into_response()
            }
            SessionRejection::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "服务暂时不可用，请稍后再试 / Service unavailable; try again shortly.",
            )
                .into_response(),
        }
    }
}

impl FromRequestParts<AppState> for CurrentStudent {
    type Rejection = SessionRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(s) = parts.extensions.get::<CurrentStudent>() {
            return Ok(s.clone());
        }
        let login = || login_rejection(parts);
        let Some(token) = cookies::get(&parts.headers, SESSION_COOKIE) else {
            return Err(login());
        };
        let row = store::students::session(state.db(), &token_hash(token), store::now_ms())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "session lookup failed");
                SessionRejection::Unavailable
            })?;
        let Some(row) = row else {
            return Err(login());
        };
        let student = CurrentStudent::from(row);
        parts.extensions.insert(student.clone());
        Ok(student)
    }
}

impl From<store::students::SessionRow> for CurrentStudent {
    fn from(row: store::students::SessionRow) -> Self {
        CurrentStudent {
            id: row.student_id,
            openid: row.openid,
            name: row.name,
            is_demo: row.is_demo,
            is_snapshot: row.is_snapshot,
            csrf_token: row.csrf_token,
            unread: row.unread,
        }
    }
}

fn login_rejection(parts: &Parts) -> SessionRejection {
    let next = if parts.method == Method::GET {
        parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned())
    } else {
        // After login a POST cannot be replayed; go to the page it came from.
        "/".to_owned()
    };
    let json = parts.uri.path().ends_with(".json")
        || parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
    SessionRejection::Login { next, json }
}

/// The logged-in student and their default meter, in one query (the
/// overview, the most visited page). Same rejections as [`CurrentStudent`].
#[derive(Debug, Clone)]
pub struct StudentWithDefaultMeter(pub CurrentStudent, pub Option<store::students::BoundMeter>);

impl FromRequestParts<AppState> for StudentWithDefaultMeter {
    type Rejection = SessionRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = cookies::get(&parts.headers, SESSION_COOKIE) else {
            return Err(login_rejection(parts));
        };
        let row =
            store::students::session_with_default(state.db(), &token_hash(token), store::now_ms())
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "session lookup failed");
                    SessionRejection::Unavailable
                })?;
        let Some((session, meter)) = row else {
            return Err(login_rejection(parts));
        };
        let student = CurrentStudent::from(session);
        parts.extensions.insert(student.clone());
        Ok(StudentWithDefaultMeter(student, meter))
    }
}

/// The student if logged in, `None` otherwise (pages that also work
/// logged out, such as the login page itself).
#[derive(Debug, Clone)]
pub struct MaybeStudent(pub Option<CurrentStudent>);

impl FromRequestParts<AppState> for MaybeStudent {
    type Rejection = SessionRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match CurrentStudent::from_request_parts(parts, state).await {
            Ok(s) => Ok(MaybeStudent(Some(s))),
            Err(SessionRejection::Login { .. }) => Ok(MaybeStudent(None)),
            Err(e) => Err(e),
        }
    }
}

/// A new random token: 256 bits, hex.
pub fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// The stored form of a session token.
pub fn token_hash(token: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ))
}

/// Starts a session for `student_id` and returns the `Set-Cookie` value.
pub async fn start(state: &AppState, student_id: i64) -> store::Result<HeaderValue> {
    let token = random_token();
    let csrf = random_token();
    let now = store::now_ms();
    let ttl_ms = state.settings().session_ttl_ms;
    store::students::create_session(
        state.db(),
        &token_hash(&token),
        student_id,
        &csrf,
        now,
        now.saturating_add(ttl_ms),
    )
    .await?;
    Ok(cookies::set(
        state,
        SESSION_COOKIE,
        &token,
        Some(ttl_ms / 1000),
    ))
}

/// Ends the session of this request, if any, and returns the `Set-Cookie`
/// value that clears the cookie.
pub async fn end(state: &AppState, headers: &HeaderMap) -> store::Result<HeaderValue> {
    if let Some(token) = cookies::get(headers, SESSION_COOKIE) {
        store::students::delete_session(state.db(), &token_hash(token)).await?;
    }
    Ok(cookies::set(state, SESSION_COOKIE, "", Some(0)))
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware: refuses a state-changing request that a browser says comes
/// from another site (`Sec-Fetch-Site: cross-site`) or whose `Origin` is
/// not this host (ASVS 3.5.2, 3.5.3). The CSRF token is checked in the
/// handlers; this is the second, independent layer.
pub async fn same_origin_posts(req: Request, next: Next) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD && !is_same_origin(req.headers())
    {
        tracing::warn!(path = %req.uri().path(), "cross-origin state change refused");
        return (
            StatusCode::FORBIDDEN,
            "跨站请求被拒绝 / Cross-site request refused.",
        )
            .into_response();
    }
    next.run(req).await
}

fn is_same_origin(h: &HeaderMap) -> bool {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
    if get("sec-fetch-site") == Some("cross-site") {
        return false;
    }
    match (get("origin"), get("host")) {
        // Some WebViews send "null" for form posts after redirects; the CSRF token still guards.
        (Some("null") | None, _) => true,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.trim_end_matches('/') == host),
        (Some(_), None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_check() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("x.test:8080"));
        assert!(is_same_origin(&h));
        h.insert("origin", HeaderValue::from_static("http://x.test:8080"));
        assert!(is_same_origin(&h));
        h.insert("origin", HeaderValue::from_static("http://evil.test"));
        assert!(!is_same_origin(&h));
        h.insert("origin", HeaderValue::from_static("http://x.test:8080"));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!is_same_origin(&h));
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = random_token();
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_token());
        assert_ne!(token_hash(&a), a);
        assert!(constant_eq(b"abc", b"abc"));
        assert!(!constant_eq(b"abc", b"abd"));
        assert!(!constant_eq(b"abc", b"ab"));
    }
}
