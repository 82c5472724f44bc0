//! Staff login, logout and password change.
//!
//! Login is throttled per name and per client address: after
//! [`FAILURES_PER_NAME_MAX`] failed attempts under one name, or
//! [`FAILURES_PER_IP_MAX`] from one address, within [`FAILURE_WINDOW_MS`],
//! no password is checked until the oldest of them leaves the window, and
//! the page states the wait. An unknown name costs the same argon2 work as
//! a known one. The password of a disabled operator is checked like any
//! other, and only a right one learns that the account is disabled.

use super::{StaffError, StaffForm, StaffResult, client_ip, html, staff_cookie};
use crate::AppState;
use crate::cookies::get as cookie;
use crate::i18n::Lang;
use crate::session::{self, constant_eq};
use askama::Template;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use domain::staff::{self, Action};
use serde::Deserialize;
use std::sync::LazyLock;

/// Cookie holding the login form's anti-CSRF token (no session yet).
const LOGIN_COOKIE: &str = "dw_staff_login";
/// How long the login form stays valid.
const LOGIN_COOKIE_MAX_AGE_S: i64 = 1800;
/// Failed attempts counted over this window.
pub const FAILURE_WINDOW_MS: i64 = 15 * 60 * 1000;
/// Failed attempts under one name before the wait.
pub const FAILURES_PER_NAME_MAX: i64 = 5;
/// Failed attempts from one address before the wait (a shared office
/// address makes this larger than the per-name limit).
pub const FAILURES_PER_IP_MAX: i64 = 20;
/// Most characters of a name or password read from the form.
const FIELD_CHARS_MAX: usize = 256;

/// A hash of nothing anyone knows, verified against when the name is
/// unknown so that the answer takes as long as for a known name.
static DUMMY_PHC: LazyLock<String> = LazyLock::new(|| {
    staff::hash_password(&session::random_token(), rand::random()).unwrap_or_default()
});

/// The login page.
#[derive(Template)]
#[template(path = "staff/login.html")]
struct LoginPage {
    l: Lang,
    css: &'static str,
    token: String,
    name: String,
    error: Option<String>,
}

/// Renders the login page with a fresh form token (and its cookie).
fn login_page(
    state: &AppState,
    l: Lang,
    status: StatusCode,
    name: &str,
    error: Option<String>,
) -> StaffResult {
    let token = session::random_token();
    let mut resp = html(&LoginPage {
        l,
        css: super::CSS_PATH,
        token: token.clone(),
        name: name.to_owned(),
        error,
    })?;
    *resp.status_mut() = status;
    resp.headers_mut().append(
        header::SET_COOKIE,
        staff_cookie(state, LOGIN_COOKIE, &token, Some(LOGIN_COOKIE_MAX_AGE_S)),
    );
    Ok(resp)
}

/// `GET /staff/login`.
pub async fn page(State(state): State<AppState>, l: Lang) -> StaffResult {
    login_page(&state, l, StatusCode::OK, "", None)
}

/// The login form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    csrf: String,
    name: String,
    password: String,
}

/// How long to wait before the next attempt (0: go ahead), from the
/// failures' times, newest first: when the oldest counted one leaves the
/// window, the count drops below the limit.
fn wait_ms(failures: &[i64], limit: i64, now_ms: i64) -> i64 {
    match usize::try_from(limit - 1)
        .ok()
        .and_then(|i| failures.get(i))
    {
        Some(at) => (at + FAILURE_WINDOW_MS - now_ms).max(0),
        None => 0,
    }
}

/// `POST /staff/login`.
pub async fn submit(State(state): State<AppState>, req: Request) -> StaffResult {
    let (parts, body) = req.into_parts();
    let l = Lang::of_request(&parts);
    let ip = client_ip(&parts);
    let expected = cookie(&parts.headers, LOGIN_COOKIE).map(str::to_owned);
    let axum::Form(form) =
        axum::Form::<LoginForm>::from_request(Request::from_parts(parts, body), &state)
            .await
            .map_err(|_| StaffError::Csrf)?;
    match expected {
        Some(t) if constant_eq(t.as_bytes(), form.csrf.as_bytes()) => {}
        _ => return Err(StaffError::Csrf),
    }
    let name: String = form.name.trim().chars().take(FIELD_CHARS_MAX).collect();
    let password: String = form.password.chars().take(FIELD_CHARS_MAX).collect();
    let db = state.db();
    let now = state.settings().staff.clock.now_ms();
    let (by_name, by_ip) = store::operators::recent_failures(
        db,
        &name,
        &ip,
        now - FAILURE_WINDOW_MS,
        FAILURES_PER_IP_MAX,
    )
    .await?;
    let wait = wait_ms(&by_name, FAILURES_PER_NAME_MAX, now).max(wait_ms(
        &by_ip,
        FAILURES_PER_IP_MAX,
        now,
    ));
    let creds = store::operators::credentials(db, &name).await?;
    let mut actor = store::audit::Actor {
        operator_id: creds.as_ref().map(|c| c.id),
        name: name.clone(),
        client_ip: ip.clone(),
    };
    let audit = |action: &'static str, after: serde_json::Value, actor: store::audit::Actor| {
        let db = db.clone();
        async move {
            store::audit::append(
                &db,
                &store::audit::Entry {
                    actor: &actor,
                    action,
                    subject: "/staff/login",
                    before: None,
                    after: Some(after),
                },
                now,
            )
            .await
        }
    };
    if wait > 0 {
        let minutes = (wait + 59_999) / 60_000;
        audit(
            "login_throttled",
            serde_json::json!({ "wait_ms": wait }),
            actor,
        )
        .await?;
        return login_page(
            &state,
            l,
            StatusCode::TOO_MANY_REQUESTS,
            &name,
            Some(l.t1("staff-login-throttled", "n", minutes)),
        );
    }
    let phc = creds
        .as_ref()
        .map_or(DUMMY_PHC.as_str(), |c| c.password_phc.as_str());
    let right = staff::verify_password(&password, phc) && creds.is_some();
    let Some(creds) = creds.filter(|_| right) else {
        store::operators::record_login_attempt(db, &name, &ip, false, now).await?;
        audit(
            "login_failed",
            serde_json::json!({ "reason": "wrong name or password" }),
            actor,
        )
        .await?;
        return login_page(
            &state,
            l,
            StatusCode::UNAUTHORIZED,
            &name,
            Some(l.t("staff-login-wrong")),
        );
    };
    if creds.disabled_at_ms.is_some() {
        store::operators::record_login_attempt(db, &name, &ip, false, now).await?;
        audit(
            "login_failed",
            serde_json::json!({ "reason": "disabled" }),
            actor,
        )
        .await?;
        return login_page(
            &state,
            l,
            StatusCode::FORBIDDEN,
            &name,
            Some(l.t("staff-login-disabled")),
        );
    }
    store::operators::record_login_attempt(db, &name, &ip, true, now).await?;
    // A new session at every login (rotation).
    let token = session::random_token();
    let csrf = session::random_token();
    store::operators::create_session(db, &session::token_hash(&token), creds.id, &csrf, now)
        .await?;
    actor.name.clone_from(&creds.name);
    audit("login_ok", serde_json::json!({}), actor).await?;
    let mut resp = Redirect::to("/staff").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        staff_cookie(&state, super::STAFF_COOKIE, &token, None),
    );
    resp.headers_mut().append(
        header::SET_COOKIE,
        staff_cookie(&state, LOGIN_COOKIE, "", Some(0)),
    );
    Ok(resp)
}

/// `POST /staff/logout`.
pub async fn logout(State(state): State<AppState>, f: StaffForm<super::CsrfOnly>) -> StaffResult {
    let op = f.op;
    store::operators::delete_session(state.db(), &op.session_hash).await?;
    let actor = op.actor();
    store::audit::append(
        state.db(),
        &store::audit::Entry {
            actor: &actor,
            action: "logout",
            subject: "/staff/logout",
            before: None,
            after: None,
        },
        state.settings().staff.clock.now_ms(),
    )
    .await?;
    let mut resp = Redirect::to("/staff/login").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        staff_cookie(&state, super::STAFF_COOKIE, "", Some(0)),
    );
    Ok(resp)
}

/// The password page.
#[derive(Template)]
#[template(path = "staff/password.html")]
struct PasswordPage {
    l: Lang,
    frame: super::Frame,
    error: Option<String>,
    done: bool,
}

/// Query of the password page.
#[derive(Debug, Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

/// `GET /staff/password`.
pub async fn password_page(
    super::Console(op): super::Console<{ Action::ChangeOwnPassword as u8 }>,
    axum::extract::Query(q): axum::extract::Query<DoneQuery>,
) -> StaffResult {
    html(&PasswordPage {
        l: op.l,
        frame: op.frame("staff-password-title", "/staff/password"),
        error: None,
        done: q.done.is_some(),
    })
}

/// The password form.
#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    csrf: String,
    old: String,
    new: String,
    again: String,
}

crate::pages::csrf_forms!(PasswordForm);

/// `POST /staff/password`: the old password is required; the new one
/// passes the policy; the operator's other sessions end.
pub async fn password_submit(
    State(state): State<AppState>,
    f: StaffForm<PasswordForm, { Action::ChangeOwnPassword as u8 }>,
) -> StaffResult {
    let StaffForm { op, form } = f;
    let l = op.l;
    let refuse = |key: &str| -> StaffResult {
        super::html_with_status(
            &PasswordPage {
                l,
                frame: op.frame("staff-password-title", "/staff/password"),
                error: Some(l.t(key)),
                done: false,
            },
            true,
        )
    };
    let Some(creds) = store::operators::credentials_by_id(state.db(), op.operator.id).await? else {
        return Err(StaffError::NotFound);
    };
    if !staff::verify_password(&form.old, &creds.password_phc) {
        return refuse("staff-password-old-wrong");
    }
    if form.new != form.again {
        return refuse("staff-password-mismatch");
    }
    if let Err(e) = staff::check_new_password(&form.new, &op.operator.name) {
        return refuse(weak_key(e));
    }
    let phc = staff::hash_password(&form.new, rand::random())
        .map_err(|e| StaffError::Store(store::Error::Corrupt(e.to_string())))?;
    store::operators::change_password(
        state.db(),
        op.operator.id,
        &creds.password_phc,
        &phc,
        &op.session_hash,
        &op.actor(),
        state.settings().staff.clock.now_ms(),
    )
    .await?;
    Ok(Redirect::to("/staff/password?done=1").into_response())
}

/// The catalog key of a refused password.
pub(super) fn weak_key(e: staff::WeakPassword) -> &'static str {
    match e {
        staff::WeakPassword::TooShort => "staff-password-too-short",
        staff::WeakPassword::TooLong => "staff-password-too-long",
        staff::WeakPassword::Common => "staff-password-common",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_ends_when_the_oldest_counted_failure_leaves_the_window() {
        let now = 100 * 60_000;
        let f: Vec<i64> = (0..5).map(|i| now - i * 60_000).collect();
        assert_eq!(wait_ms(&f[..4], 5, now), 0);
        assert_eq!(wait_ms(&f, 5, now), FAILURE_WINDOW_MS - 4 * 60_000);
        assert_eq!(wait_ms(&f, 5, now + FAILURE_WINDOW_MS), 0);
    }
}
