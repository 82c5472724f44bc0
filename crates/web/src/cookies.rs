//! Reading and writing cookies with this crate's attributes. Our own
//! rather than the `cookie` crate (not in the dependency tree): we read a
//! value by name and write one fixed attribute set (`Path=/; HttpOnly;
//! SameSite=Lax`, `Secure` behind https), for values that are hex tokens,
//! language tags or [`crate::url::encode`]d paths, so no cookie parsing or
//! escaping beyond that is needed.

use crate::AppState;
use axum::http::header::{self, HeaderMap, HeaderValue};

/// The value of cookie `name` in the request.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value with this crate's attributes for the student
/// pages (`Path=/; SameSite=Lax`). `max_age_s` `None` makes a
/// browser-session cookie. `value` must be cookie-safe (hex, ids,
/// [`crate::url::encode`]d text).
pub fn set(state: &AppState, name: &str, value: &str, max_age_s: Option<i64>) -> HeaderValue {
    set_scoped(state, name, value, max_age_s, "/", SameSite::Lax)
}

/// The `SameSite` attribute of a cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Sent on top-level navigations from other sites (the student pages:
    /// WeChat opens them from a link).
    Lax,
    /// Never sent from another site (the staff console).
    Strict,
}

/// A `Set-Cookie` value limited to `path`: always `HttpOnly`, `Secure`
/// when the public URL is https.
pub fn set_scoped(
    state: &AppState,
    name: &str,
    value: &str,
    max_age_s: Option<i64>,
    path: &str,
    same_site: SameSite,
) -> HeaderValue {
    let secure = if state.settings().public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let max_age = max_age_s
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    let same_site = match same_site {
        SameSite::Lax => "Lax",
        SameSite::Strict => "Strict",
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite={same_site}{max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("dw_invalid=; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SESSION_COOKIE;

    #[test]
    fn cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; dw_session=abc; b=2"),
        );
        assert_eq!(get(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(get(&h, "c"), None);
    }

    #[tokio::test]
    async fn cookies_are_secure_behind_https_only() {
        let db = store::testing::sqlite().await.expect("db");
        let plain = AppState::new(
            db.clone(),
            crate::Settings::new(
                "http://127.0.0.1:8080",
                domain::time::CampusTz::default(),
                true,
            ),
            None,
        );
        let tls = AppState::new(
            db,
            crate::Settings::new(
                "https://power.example.edu.cn",
                domain::time::CampusTz::default(),
                false,
            ),
            None,
        );
        let c = set(&plain, SESSION_COOKIE, "abc", Some(60));
        let c = c.to_str().expect("ascii");
        assert_eq!(
            c,
            "dw_session=abc; Path=/; HttpOnly; SameSite=Lax; Max-Age=60"
        );
        let c = set(&tls, SESSION_COOKIE, "abc", Some(60));
        assert!(c.to_str().expect("ascii").ends_with("; Secure"));
    }
}
