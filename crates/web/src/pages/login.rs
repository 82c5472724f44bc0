//! Login (S5): WeChat official-account web authorization with
//! `snsapi_base` (wechat-notes §1.1–1.2), the demo login, logout and the
//! language switch.

use super::{PageError, PageResult, Shell, Tab, html, safe_next};
use crate::AppState;
use crate::cookies;
use crate::i18n::{LANG_COOKIE, Lang};
use crate::session::{self, MaybeStudent, constant_eq};
use crate::url;
use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::header::{self, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

/// Cookie holding the OAuth `state` / the demo form's anti-CSRF token
/// before a session exists.
const LOGIN_COOKIE: &str = "dw_login";
/// Cookie holding where to go after login (percent-encoded local path).
const NEXT_COOKIE: &str = "dw_next";
/// How long a login attempt may take (WeChat codes expire after 5 minutes).
const LOGIN_COOKIE_MAX_AGE_S: i64 = 600;
/// Most demo students listed in the demo login.
const DEMO_STUDENTS_MAX: i64 = 20;

/// Query of the login page.
#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /login`.
pub async fn page(
    State(state): State<AppState>,
    lang: Lang,
    MaybeStudent(student): MaybeStudent,
    Query(q): Query<NextQuery>,
) -> PageResult {
    let next = safe_next(q.next.as_deref()).to_owned();
    if student.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    let l = lang;
    let token = session::random_token();
    let demo = if state.settings().demo_login {
        let students = store::students::demo_students(state.db(), DEMO_STUDENTS_MAX).await?;
        Some(
            students
                .into_iter()
                .map(|s| DemoStudent {
                    id: s.id,
                    name: if s.name.is_empty() {
                        "—".to_owned()
                    } else {
                        s.name
                    },
                })
                .collect(),
        )
    } else {
        None
    };
    let here = format!("/login?next={}", url::encode(&next));
    let mut resp = html(&LoginPage {
        l,
        shell: Shell::new(l, "login-title", None, Tab::None, &here),
        wechat: state.settings().wechat_oauth.is_some(),
        next_enc: url::encode(&next),
        next,
        token: token.clone(),
        demo,
    })?;
    resp.headers_mut().append(
        header::SET_COOKIE,
        cookies::set(&state, LOGIN_COOKIE, &token, Some(LOGIN_COOKIE_MAX_AGE_S)),
    );
    Ok(resp)
}

/// The login page.
#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    l: Lang,
    shell: Shell<'a>,
    wechat: bool,
    next: String,
    next_enc: String,
    /// The demo forms' anti-CSRF token (no session yet).
    token: String,
    /// Demo students, when the demo login is on.
    demo: Option<Vec<DemoStudent>>,
}

/// A demo student to log in as.
struct DemoStudent {
    id: i64,
    name: String,
}

/// The page after a failed WeChat login.
#[derive(Template)]
#[template(path = "login_failed.html")]
struct LoginFailedPage<'a> {
    l: Lang,
    shell: Shell<'a>,
}

/// `GET /login/wechat`: redirects to WeChat's authorize URL with a fresh
/// `state` that the callback must see again in our cookie.
pub async fn wechat_start(State(state): State<AppState>, Query(q): Query<NextQuery>) -> PageResult {
    let Some(oauth) = state.settings().wechat_oauth.as_ref() else {
        return Err(PageError::NotFound);
    };
    let next = safe_next(q.next.as_deref());
    let st = session::random_token();
    let redirect_uri = format!(
        "{}/login/wechat/callback",
        state.settings().public_url.trim_end_matches('/')
    );
    // Parameter order matters to WeChat (wechat-notes §1.1).
    let url = format!(
        "{}?appid={}&redirect_uri={}&response_type=code&scope=snsapi_base&state={}#wechat_redirect",
        oauth.authorize_url,
        url::encode(&oauth.appid),
        url::encode(&redirect_uri),
        st
    );
    let mut resp = Redirect::to(&url).into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        cookies::set(&state, LOGIN_COOKIE, &st, Some(LOGIN_COOKIE_MAX_AGE_S)),
    );
    h.append(
        header::SET_COOKIE,
        cookies::set(
            &state,
            NEXT_COOKIE,
            &url::encode(next),
            Some(LOGIN_COOKIE_MAX_AGE_S),
        ),
    );
    Ok(resp)
}

/// Query of the OAuth callback.
#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
}

/// `GET /login/wechat/callback?code=…&state=…`.
pub async fn wechat_callback(
    State(state): State<AppState>,
    lang: Lang,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> PageResult {
    let Some(oauth) = state.settings().wechat_oauth.as_ref() else {
        return Err(PageError::NotFound);
    };
    let expected = cookies::get(&headers, LOGIN_COOKIE).unwrap_or("");
    let got = q.state.as_deref().unwrap_or("");
    if expected.is_empty() || !constant_eq(expected.as_bytes(), got.as_bytes()) {
        tracing::warn!("wechat login: state mismatch");
        return Ok(login_failed(&state, lang));
    }
    let Some(code) = q
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 256)
    else {
        // The student declined (only possible with snsapi_userinfo) or the link was cut.
        return Ok(login_failed(&state, lang));
    };
    let ex = match oauth.api.exchange_code(code).await {
        Ok(ex) => ex,
        Err(e) => {
            // The client's errors never carry the URL (it carries the secret).
            tracing::warn!(error = %e, "wechat code exchange failed");
            return Ok(login_failed(&state, lang));
        }
    };
    let openid = ex.openid;
    let snapshot = ex.is_snapshot_user;
    let student =
        store::students::upsert_by_openid(state.db(), &openid, snapshot, store::now_ms()).await?;
    tracing::info!(student.id = student.id, snapshot, "wechat login");
    let next = cookies::get(&headers, NEXT_COOKIE)
        .and_then(url::decode)
        .unwrap_or_else(|| "/".to_owned());
    logged_in(&state, student.id, safe_next(Some(&next))).await
}

fn login_failed(state: &AppState, lang: Lang) -> Response {
    let page = LoginFailedPage {
        l: lang,
        shell: Shell::new(lang, "login-title", None, Tab::None, "/login"),
    };
    let mut resp = html(&page).unwrap_or_else(IntoResponse::into_response);
    resp.headers_mut().append(
        header::SET_COOKIE,
        cookies::set(state, LOGIN_COOKIE, "", Some(0)),
    );
    resp
}

/// Starts the session and goes to `next`, clearing the login cookies.
async fn logged_in(state: &AppState, student_id: i64, next: &str) -> PageResult {
    let cookie_v = session::start(state, student_id).await?;
    // Expired sessions are swept here, at the rate of logins: no separate
    // job, and the table never holds more than a lifetime's worth.
    if let Err(e) = store::students::purge_sessions(state.db(), store::now_ms()).await {
        tracing::warn!(error = %e, "purging expired sessions failed");
    }
    let mut resp = Redirect::to(next).into_response();
    let h = resp.headers_mut();
    h.append(header::SET_COOKIE, cookie_v);
    h.append(
        header::SET_COOKIE,
        cookies::set(state, LOGIN_COOKIE, "", Some(0)),
    );
    h.append(
        header::SET_COOKIE,
        cookies::set(state, NEXT_COOKIE, "", Some(0)),
    );
    Ok(resp)
}

/// The demo login form.
#[derive(Debug, Deserialize)]
pub struct DemoForm {
    csrf: String,
    next: Option<String>,
    student_id: Option<i64>,
    name: Option<String>,
}

/// `POST /login/demo`: only when the demo login is enabled.
pub async fn demo_login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<DemoForm>,
) -> PageResult {
    if !state.settings().demo_login {
        return Err(PageError::NotFound);
    }
    let expected = cookies::get(&headers, LOGIN_COOKIE).unwrap_or("");
    if expected.is_empty() || !constant_eq(expected.as_bytes(), f.csrf.as_bytes()) {
        return Err(PageError::Csrf(session::CsrfError));
    }
    let now = store::now_ms();
    let student = match f.student_id {
        Some(id) => match store::students::by_id(state.db(), id).await? {
            Some(s) if s.is_demo => s,
            _ => return Err(PageError::NotFound),
        },
        None => {
            let name: String = f
                .name
                .as_deref()
                .unwrap_or("")
                .trim()
                .chars()
                .take(20)
                .collect();
            let name = if name.is_empty() {
                format!("演示同学{}", rand::random::<u16>() % 1000)
            } else {
                name
            };
            store::students::create_demo(state.db(), &name, now).await?
        }
    };
    tracing::info!(student.id = student.id, "demo login");
    logged_in(&state, student.id, safe_next(f.next.as_deref())).await
}

/// Logout form.
#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    csrf: String,
}

/// `POST /logout`.
pub async fn logout(
    State(state): State<AppState>,
    student: session::CurrentStudent,
    headers: HeaderMap,
    Form(f): Form<LogoutForm>,
) -> PageResult {
    student.check_csrf(&f.csrf)?;
    let c = session::end(&state, &headers).await?;
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().append(header::SET_COOKIE, c);
    Ok(resp)
}

/// Query of the language switch.
#[derive(Debug, Deserialize)]
pub struct LangQuery {
    to: String,
    next: Option<String>,
}

/// `GET /lang?to=en&next=/…`: a display preference kept in a cookie only
/// (no server state changes, so a plain link is fine).
pub async fn switch_lang(State(state): State<AppState>, Query(q): Query<LangQuery>) -> Response {
    let lang = Lang::parse(&q.to).unwrap_or_default();
    let mut resp = Redirect::to(safe_next(q.next.as_deref())).into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        cookies::set(&state, LANG_COOKIE, lang.code(), Some(365 * 24 * 3600)),
    );
    resp
}
