//! The staff console's frame (issue 13): login at `/staff/login`, the
//! staff session, the [`CurrentOperator`] extractor every console handler
//! takes, the desktop layout, the landing page, the operators and the
//! audit log pages.
//!
//! - The staff session is its own cookie, `dw_staff` — `Path=/staff;
//!   HttpOnly; SameSite=Strict`, `Secure` behind https — with a random
//!   256-bit token whose SHA-256 alone is stored (the student session's
//!   [`crate::session::random_token`] / [`crate::session::token_hash`]).
//!   It ends after [`StaffSettings::idle_timeout_ms`] without a request and
//!   [`StaffSettings::absolute_timeout_ms`] after login, on the clock of
//!   [`StaffSettings::clock`] (a test moves it; nothing sleeps).
//! - Every POST carries the session's (or, before login, the login
//!   cookie's) anti-CSRF token ([`StaffForm`]) and passes the origin check.
//! - Every handler asks [`CurrentOperator::require`] (for the console-wide
//!   action, through its gate: [`Console`], [`StaffForm`]), which asks
//!   `domain::staff::can` and audits a refusal (`forbidden`, answered 403).
//! - Markup in `templates/staff/`, texts in the `## staff` section of the
//!   catalogs; no `.rs` file here writes markup.

mod apikeys;
mod audit;
mod exceptions;
mod login;
mod meter_password;
mod moveout;
mod notices;
mod operators;
// Issue 13 item 3: meter look-up, the counter sale and its receipt, shifts.
mod counter;
mod meters;
mod orders;
/// Meter parameters written to a selection (issue 14 item 6 part 4).
mod params;
/// Campus policy (issue 14 item 6).
mod policy;
/// The free monthly allowance on the policy page (issue 14 item 6).
mod policy_subsidy;
/// No-cut and power-off hours on the policy page (issue 14 item 6, part 3).
pub(crate) mod policy_windows;
/// Meter replacement (issue 14 item 3).
mod replace;
mod shifts;
// Issue 14 item 7: reports, their charts and exports (`dormwatt report` reuses them).
mod report_chart;
pub mod reports;
// Issue 14 items 4-5: the live building view, relay control, meter history.
mod buildings;
mod meter_history;
mod relay;
// Issue 14 items 1–2: the registry and bulk import.
mod import;
mod registry;

use crate::AppState;
use crate::cookies::get as cookie;
use crate::i18n::Lang;
use crate::pages::{CsrfForm, CsrfOnly};
use crate::session::{self, CsrfError, constant_eq};
use askama::Template;
use axum::Router;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use domain::staff::{Action, Place, Role, can};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Name of the staff session cookie.
pub const STAFF_COOKIE: &str = "dw_staff";
/// Path of the staff cookies: never sent to the student pages.
const COOKIE_PATH: &str = "/staff";
/// Default idle timeout of a staff session: 30 minutes.
pub const IDLE_TIMEOUT_MS_DEFAULT: i64 = 30 * 60 * 1000;
/// Default absolute timeout of a staff session: 12 hours (one long shift).
pub const ABSOLUTE_TIMEOUT_MS_DEFAULT: i64 = 12 * 60 * 60 * 1000;
/// The console's stylesheet.
const CSS: &str = include_str!("../../assets/staff.css");
/// Where the console links its stylesheet (the query changes per release).
const CSS_PATH: &str = concat!(
    "/staff/assets/staff.css?v=",
    env!("CARGO_PKG_VERSION"),
    "-3"
);

/// The clock of the staff console: the system's, or one a test sets.
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock(None)
    }

    /// A clock standing at `now_ms` until [`Clock::advance`] moves it.
    pub fn manual(now_ms: i64) -> Self {
        Clock(Some(Arc::new(AtomicI64::new(now_ms))))
    }

    /// Moves a manual clock forward (the system clock ignores it).
    pub fn advance(&self, ms: i64) {
        if let Some(c) = &self.0 {
            c.fetch_add(ms, Ordering::SeqCst);
        }
    }

    /// Now, unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.0
            .as_ref()
            .map_or_else(store::now_ms, |c| c.load(Ordering::SeqCst))
    }
}

/// The staff console's settings.
#[derive(Debug, Clone)]
pub struct StaffSettings {
    /// A session ends after this long without a request.
    pub idle_timeout_ms: i64,
    /// A session ends this long after login.
    pub absolute_timeout_ms: i64,
    /// The clock sessions, throttling and the audit log read.
    pub clock: Clock,
}

impl Default for StaffSettings {
    fn default() -> Self {
        StaffSettings {
            idle_timeout_ms: IDLE_TIMEOUT_MS_DEFAULT,
            absolute_timeout_ms: ABSOLUTE_TIMEOUT_MS_DEFAULT,
            clock: Clock::system(),
        }
    }
}

/// Routes of the console.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/staff", get(home))
        .route("/staff/", get(home))
        .route("/staff/login", get(login::page).post(login::submit))
        .route("/staff/logout", post(login::logout))
        .route(
            "/staff/password",
            get(login::password_page).post(login::password_submit),
        )
        .route("/staff/audit", get(audit::page))
        .route("/staff/audit.csv", get(audit::csv))
        .route(
            "/staff/operators",
            get(operators::page).post(operators::create),
        )
        .route("/staff/operators/{id}/disable", post(operators::disable))
        .route("/staff/orders", get(orders::page))
        .route("/staff/orders/{id}", get(orders::story))
        .route("/staff/exceptions", get(exceptions::page))
        .route("/staff/exceptions/{id}/refund", post(exceptions::refund))
        .route(
            "/staff/exceptions/{id}/redeliver",
            post(exceptions::redeliver),
        )
        .route("/staff/exceptions/{id}/resolve", post(exceptions::resolve))
        .route("/staff/move-out", get(moveout::page).post(moveout::settle))
        .route("/staff/notices", get(notices::list).post(notices::create))
        .route("/staff/notices/new", get(notices::new_page))
        .route(
            "/staff/notices/{id}",
            get(notices::edit_page).post(notices::update),
        )
        .route(
            "/staff/meters/{id}/password",
            get(meter_password::confirm).post(meter_password::reset),
        )
        .route(
            "/staff/meters/{id}/replace",
            get(replace::page).post(replace::replace),
        )
        .route("/staff/apikeys", get(apikeys::page).post(apikeys::create))
        .route("/staff/apikeys/{id}/revoke", post(apikeys::revoke))
        .route("/staff/assets/staff.css", get(css))
        .route("/staff/meters", get(meters::page))
        .route("/staff/meters/suggest", get(meters::suggest))
        .route("/staff/meters/{id}", get(meters::meter))
        .route("/staff/counter", get(counter::page).post(counter::sell))
        .route("/staff/counter/receipts/{id}", get(counter::receipt))
        .route(
            "/staff/counter/receipts/{id}/status.json",
            get(counter::receipt_status),
        )
        .route("/staff/shifts", get(shifts::page))
        .route("/staff/shifts/open", post(shifts::open))
        .route("/staff/shifts/{id}", get(shifts::shift))
        .route("/staff/shifts/{id}/close", post(shifts::close))
        .route("/staff/shifts/{id}/sign-off", post(shifts::sign_off))
        .route("/staff/assets/staff.js", get(js))
        .route("/staff/reports", get(reports::index))
        .route("/staff/reports/{name}", get(reports::report))
        // Campus policy (issue 14 item 6).
        .route("/staff/policy", get(policy::page))
        .route("/staff/policy/prices", post(policy::schedule))
        .route("/staff/policy/prices/{id}/withdraw", post(policy::withdraw))
        .route("/staff/policy/low-balance", post(policy::low_balance))
        // Issue 14 item 6 part 4: meter parameters (power limit, malicious load).
        .route(
            "/staff/policy/params",
            get(params::page).post(params::submit),
        )
        .route("/staff/policy/params/confirm", post(params::confirm))
        // The free monthly allowance (issue 14 item 6).
        .route("/staff/policy/subsidy", post(policy_subsidy::set))
        .route("/staff/policy/subsidy/run", post(policy_subsidy::run))
        // Issue 14 items 4-5: live building view and relay control.
        .route("/staff/buildings", get(buildings::index))
        .route("/staff/buildings/{id}", get(buildings::building))
        .route("/staff/relay/confirm", post(relay::confirm))
        .route("/staff/relay", post(relay::submit))
        .route(
            "/staff/meters/{id}/relay.json",
            get(relay::meter_relay_json),
        )
        .merge(registry_routes())
        // No-cut and power-off hours (issue 14 item 6, part 3).
        .route("/staff/policy/windows", post(policy_windows::set))
        .route("/staff/policy/windows/clear", post(policy_windows::clear))
        .route_layer(axum::middleware::from_fn(localise_errors))
        .route_layer(axum::middleware::from_fn(session::same_origin_posts))
}

/// The registry and import pages (issue 14 items 1–2); the upload takes
/// a larger body than the application's default.
fn registry_routes() -> Router<AppState> {
    Router::new()
        .route("/staff/registry", get(registry::page))
        .route("/staff/registry/buildings", post(registry::create_building))
        .route("/staff/registry/rooms", post(registry::create_room))
        .route("/staff/registry/gateways", post(registry::create_gateway))
        .route(
            "/staff/registry/gateways/{id}",
            post(registry::edit_gateway),
        )
        .route("/staff/registry/meters", post(registry::create_meter))
        .route("/staff/registry/meters/{id}", post(registry::edit_meter))
        .route(
            "/staff/registry/meters/{id}/retire",
            post(registry::retire_meter),
        )
        .route(
            "/staff/import",
            get(import::page)
                .post(import::dry_run)
                .layer(axum::extract::DefaultBodyLimit::max(
                    import::UPLOAD_BYTES_MAX,
                )),
        )
        .route("/staff/import/apply", post(import::apply))
        .route("/staff/import/template/{file}", get(import::template))
}

/// The console's only script: the meter type-ahead and the live receipt,
/// after the polling it shares with the student pages'.
const JS: &str = concat!(
    include_str!("../../assets/poll.js"),
    include_str!("../../assets/staff.js")
);
/// Where the console pages load it from (same origin: the CSP allows only
/// `script-src 'self'`).
const JS_PATH: &str = concat!("/staff/assets/staff.js?v=", env!("CARGO_PKG_VERSION"), "-3");

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        JS,
    )
        .into_response()
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        CSS,
    )
        .into_response()
}

/// The client's address: the socket's peer, or behind a configured trusted
/// proxy the address it forwards ([`crate::server::forwarded_client`]).
fn client_ip(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

/// This request's path and query.
fn here(parts: &Parts) -> String {
    parts
        .uri
        .path_and_query()
        .map_or_else(|| "/staff".to_owned(), |p| p.as_str().to_owned())
}

/// A `Set-Cookie` value for a console cookie: `Path=/staff; HttpOnly;
/// SameSite=Strict`, `Secure` when the public URL is https; `max_age_s`
/// `None` makes it last until the browser closes.
fn staff_cookie(state: &AppState, name: &str, value: &str, max_age_s: Option<i64>) -> HeaderValue {
    crate::cookies::set_scoped(
        state,
        name,
        value,
        max_age_s,
        COOKIE_PATH,
        crate::cookies::SameSite::Strict,
    )
}

/// The logged-in operator of a request, with the language, address and
/// client IP. Without a live session a request is sent to `/staff/login`.
#[derive(Debug, Clone)]
pub struct CurrentOperator {
    /// The operator.
    pub operator: store::operators::Operator,
    /// The session's anti-CSRF token.
    pub csrf_token: String,
    /// The stored hash of the session token.
    pub session_hash: String,
    /// Page language.
    pub l: Lang,
    /// This request's path and query.
    pub here: String,
    /// The client's IP address.
    pub ip: String,
}

/// Why [`CurrentOperator`] could not be extracted.
#[derive(Debug)]
pub enum StaffRejection {
    /// No live session.
    Login,
    /// The session store failed.
    Unavailable,
}

impl IntoResponse for StaffRejection {
    fn into_response(self) -> Response {
        match self {
            StaffRejection::Login => Redirect::to("/staff/login").into_response(),
            StaffRejection::Unavailable => StaffError::Unavailable.into_response(),
        }
    }
}

impl FromRequestParts<AppState> for CurrentOperator {
    type Rejection = StaffRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = cookie(&parts.headers, STAFF_COOKIE) else {
            return Err(StaffRejection::Login);
        };
        let hash = session::token_hash(token);
        let s = &state.settings().staff;
        let found = store::operators::session(
            state.db(),
            &hash,
            s.clock.now_ms(),
            s.idle_timeout_ms,
            s.absolute_timeout_ms,
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "staff session lookup failed");
            StaffRejection::Unavailable
        })?;
        let Some(found) = found else {
            return Err(StaffRejection::Login);
        };
        Ok(CurrentOperator {
            operator: found.operator,
            csrf_token: found.csrf_token,
            session_hash: hash,
            l: Lang::of_request(parts),
            here: here(parts),
            ip: client_ip(parts),
        })
    }
}

impl CurrentOperator {
    /// The operator as the audit log records them.
    pub fn actor(&self) -> store::audit::Actor {
        store::audit::Actor {
            operator_id: Some(self.operator.id),
            name: self.operator.name.clone(),
            client_ip: self.ip.clone(),
        }
    }

    /// Whether the operator may do `action` at `place`.
    pub fn may(&self, action: Action, place: Place) -> bool {
        can(self.operator.role, action, &self.operator.scope, place)
    }

    /// Goes ahead when the operator may do `action` at `place`; otherwise
    /// records `forbidden` in the audit log and answers 403.
    pub async fn require(
        &self,
        state: &AppState,
        action: Action,
        place: Place,
    ) -> Result<(), StaffError> {
        if self.may(action, place) {
            return Ok(());
        }
        tracing::warn!(operator = %self.operator.name, action = action.as_str(), "staff action refused");
        let actor = self.actor();
        store::audit::append(
            state.db(),
            &store::audit::Entry {
                actor: &actor,
                action: "forbidden",
                subject: &self.here,
                before: None,
                after: Some(serde_json::json!({
                    "action": action.as_str(),
                    "role": self.operator.role.as_str(),
                })),
            },
            state.settings().staff.clock.now_ms(),
        )
        .await?;
        Err(StaffError::Forbidden)
    }

    /// The frame of a console page titled with the catalog text `title_key`.
    pub fn frame(&self, title_key: &str, current: &'static str) -> Frame {
        let l = self.l;
        let nav = NAV
            .iter()
            .filter(|n| self.may(n.action, Place::Console))
            .map(|n| NavLink {
                href: n.href,
                label: l.t(n.label),
                on: n.href == current,
            })
            .collect();
        Frame {
            title: l.t(title_key),
            operator: self.operator.name.clone(),
            role: role_text(l, self.operator.role),
            csrf: self.csrf_token.clone(),
            nav,
            next: crate::url::encode(&self.here),
            css: CSS_PATH,
        }
    }
}

/// A console navigation entry and the action that shows it.
struct NavEntry {
    href: &'static str,
    label: &'static str,
    action: Action,
}

/// The console's navigation: only pages that exist, each shown to the
/// roles that may use it. Later issues append their pages here.
const NAV: &[NavEntry] = &[
    NavEntry {
        href: "/staff",
        label: "staff-nav-home",
        action: Action::ViewConsole,
    },
    NavEntry {
        href: "/staff/operators",
        label: "staff-nav-operators",
        action: Action::ViewOperators,
    },
    NavEntry {
        href: "/staff/audit",
        label: "staff-nav-audit",
        action: Action::ViewAudit,
    },
    NavEntry {
        href: "/staff/notices",
        label: "staff-nav-notices",
        action: Action::ViewConsole,
    },
    NavEntry {
        href: "/staff/apikeys",
        label: "staff-nav-apikeys",
        action: Action::ViewOperators,
    },
    NavEntry {
        href: "/staff/password",
        label: "staff-nav-password",
        action: Action::ChangeOwnPassword,
    },
    NavEntry {
        href: "/staff/meters",
        label: "staff-nav-meters",
        action: Action::ViewMeters,
    },
    NavEntry {
        href: "/staff/counter",
        label: "staff-nav-counter",
        action: Action::SellAtCounter,
    },
    NavEntry {
        href: "/staff/shifts",
        label: "staff-nav-shifts",
        action: Action::ViewShifts,
    },
    NavEntry {
        href: "/staff/orders",
        label: "staff-nav-orders",
        action: Action::ViewOrders,
    },
    NavEntry {
        href: "/staff/exceptions",
        label: "staff-nav-exceptions",
        action: Action::ViewOrders,
    },
    NavEntry {
        href: "/staff/buildings",
        label: "staff-nav-buildings",
        action: Action::ViewMeters,
    },
    NavEntry {
        href: "/staff/move-out",
        label: "staff-nav-moveout",
        action: Action::ResolveOrders,
    },
    NavEntry {
        href: "/staff/reports",
        label: "staff-nav-reports",
        action: Action::ViewReports,
    },
    // Campus policy (issue 14 item 6).
    NavEntry {
        href: "/staff/policy",
        label: "staff-nav-policy",
        action: Action::ManagePolicy,
    },
    NavEntry {
        href: "/staff/registry",
        label: "staff-nav-registry",
        action: Action::ManageRegistry,
    },
    NavEntry {
        href: "/staff/import",
        label: "staff-nav-import",
        action: Action::ManageRegistry,
    },
];

/// One navigation link as the frame draws it.
pub struct NavLink {
    /// Where it goes.
    pub href: &'static str,
    /// Its label.
    pub label: String,
    /// The current page.
    pub on: bool,
}

/// What the console layout (`templates/staff/base.html`) needs.
pub struct Frame {
    /// Page title.
    pub title: String,
    /// The operator's name.
    pub operator: String,
    /// The operator's role, in the page language.
    pub role: String,
    /// The session's anti-CSRF token (the logout form).
    pub csrf: String,
    /// Navigation.
    pub nav: Vec<NavLink>,
    /// This page, percent-encoded (the language switch comes back here).
    pub next: String,
    /// The stylesheet.
    pub css: &'static str,
}

/// A role option of a create form (operators, API keys).
pub struct RoleOption {
    /// The form value.
    pub value: &'static str,
    /// The role in the page language.
    pub label: String,
}

/// Every role as a create form offers it.
fn role_options(l: Lang) -> Vec<RoleOption> {
    Role::ALL
        .into_iter()
        .map(|r| RoleOption {
            value: r.as_str(),
            label: role_text(l, r),
        })
        .collect()
}

/// A role's name in the page language.
fn role_text(l: Lang, r: Role) -> String {
    l.t(match r {
        Role::Administrator => "staff-role-administrator",
        Role::Cashier => "staff-role-cashier",
        Role::BuildingManager => "staff-role-building-manager",
        Role::Auditor => "staff-role-auditor",
    })
}

/// The gate of a handler that asks nothing beyond a live session; any
/// other gate is `Action::X as u8`, asked at [`Place::Console`].
pub const ANYONE: u8 = u8::MAX;

/// The action of gate `g` (a number that is neither fails to compile).
const fn gate(g: u8) -> Option<Action> {
    let mut i = 0;
    while i < Action::ALL.len() {
        if Action::ALL[i] as u8 == g {
            return Some(Action::ALL[i]);
        }
        i += 1;
    }
    assert!(g == ANYONE, "a gate is `Action::X as u8` or ANYONE");
    None
}

impl CurrentOperator {
    /// [`CurrentOperator::require`] for gate `G` on the console.
    async fn pass<const G: u8>(&self, state: &AppState) -> Result<(), StaffError> {
        match const { gate(G) } {
            Some(action) => self.require(state, action, Place::Console).await,
            None => Ok(()),
        }
    }
}

/// The logged-in operator once [`CurrentOperator::require`] allowed gate
/// `G` on the console (a refusal is audited and answered 403).
pub struct Console<const G: u8>(pub CurrentOperator);

impl<const G: u8> FromRequestParts<AppState> for Console<G> {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let op = CurrentOperator::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        op.pass::<G>(state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Console(op))
    }
}

/// A posted console form of the logged-in operator whose anti-CSRF token
/// matched the session's, once gate `G` allowed them (after the token
/// check, as a refusal is audited).
pub struct StaffForm<T, const G: u8 = ANYONE> {
    /// The operator.
    pub op: CurrentOperator,
    /// The form.
    pub form: T,
}

impl<T: CsrfForm, const G: u8> FromRequest<AppState> for StaffForm<T, G> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (op, form) = crate::pages::head_and_form::<CurrentOperator, T>(req, state).await?;
        if !constant_eq(op.csrf_token.as_bytes(), form.csrf().as_bytes()) {
            return Err(StaffError::Csrf.into_response());
        }
        op.pass::<G>(state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(StaffForm { op, form })
    }
}

/// A console button posted on the URL's `{id}`: the id (anything else is
/// "not found"), then a [`StaffForm`] with nothing but the token, gate `G`.
pub struct IdPost<const G: u8> {
    /// The id from the URL.
    pub id: i64,
    /// The operator.
    pub op: CurrentOperator,
}

impl<const G: u8> FromRequest<AppState> for IdPost<G> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let crate::pages::PathId(id) =
            crate::pages::PathId::from_request_parts(&mut parts, state).await?;
        let f =
            StaffForm::<CsrfOnly, G>::from_request(Request::from_parts(parts, body), state).await?;
        Ok(IdPost { id, op: f.op })
    }
}

/// Errors of the console handlers; causes are logged here, once.
#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    /// Not found.
    #[error("not found")]
    NotFound,
    /// The operator's role or scope does not allow it (already audited).
    #[error("forbidden")]
    Forbidden,
    /// The form's anti-CSRF token did not match.
    #[error("csrf")]
    Csrf,
    /// The session store is unavailable.
    #[error("unavailable")]
    Unavailable,
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] store::Error),
    /// A template failed to render.
    #[error("template: {0}")]
    Render(#[from] askama::Error),
}

impl From<CsrfError> for StaffError {
    fn from(_: CsrfError) -> Self {
        StaffError::Csrf
    }
}

/// Which error page a response carries ([`localise_errors`] renders it).
#[derive(Debug, Clone, Copy)]
struct ErrorKey(&'static str);

impl IntoResponse for StaffError {
    fn into_response(self) -> Response {
        let (status, key) = match &self {
            StaffError::NotFound | StaffError::Store(store::Error::NotFound(_)) => {
                (StatusCode::NOT_FOUND, "staff-error-not-found")
            }
            StaffError::Forbidden => (StatusCode::FORBIDDEN, "staff-error-forbidden"),
            StaffError::Csrf => (StatusCode::FORBIDDEN, "staff-error-expired"),
            StaffError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "staff-error-internal"),
            StaffError::Store(e) => {
                tracing::error!(error = %e, "staff page failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "staff-error-internal")
            }
            StaffError::Render(e) => {
                tracing::error!(error = %e, "staff page did not render");
                (StatusCode::INTERNAL_SERVER_ERROR, "staff-error-internal")
            }
        };
        let mut resp = status.into_response();
        resp.extensions_mut().insert(ErrorKey(key));
        resp
    }
}

/// The console's error page.
#[derive(Template)]
#[template(path = "staff/error.html")]
struct ErrorPage {
    l: Lang,
    css: &'static str,
    msg: String,
}

/// Renders the error page a [`StaffError`] left in its response, in the
/// language of the request.
async fn localise_errors(req: Request, next: Next) -> Response {
    let l = Lang::of_headers(req.headers());
    let head = req.method() == Method::HEAD;
    let resp = next.run(req).await;
    let Some(ErrorKey(key)) = resp.extensions().get::<ErrorKey>().copied() else {
        return resp;
    };
    let status = resp.status();
    let page = ErrorPage {
        l,
        css: CSS_PATH,
        msg: l.t(key),
    };
    match page.render() {
        Ok(body) if !head => (status, Html(body)).into_response(),
        Ok(_) => status.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "staff error page did not render");
            status.into_response()
        }
    }
}

/// Result of a console handler.
pub type StaffResult<T = Response> = Result<T, StaffError>;

/// Renders a console template.
fn html(t: &impl Template) -> StaffResult {
    Ok(Html(t.render()?).into_response())
}

/// Redirects to `base` (ending in `key=`) followed by `value`, encoded.
fn see_with(base: &str, value: &str) -> StaffResult {
    Ok(Redirect::to(&format!("{base}{}", crate::url::encode(value))).into_response())
}

/// Renders a console page that may show an error: 422 when it does.
fn html_with_status(t: &impl Template, failed: bool) -> StaffResult {
    let mut r = html(t)?;
    if failed {
        *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(r)
}

/// The landing page: the operator's figures, each a link to its list.
#[derive(Template)]
#[template(path = "staff/home.html")]
struct HomePage {
    l: Lang,
    frame: Frame,
    welcome: String,
    scope: String,
    sales: Vec<SalesRow>,
    sales_kwh: i64,
    sales_amount: String,
    undelivered: i64,
    undelivered_oldest: Option<String>,
    exceptions: i64,
    meters: i64,
    offline: i64,
    read_today: i64,
    /// Read today, in percent of the meters, one decimal.
    read_share: String,
}

/// Today's sales of one channel as the dashboard shows them.
struct SalesRow {
    channel: String,
    orders: i64,
    kwh: i64,
    amount: String,
}

/// A channel's name in the page language (an unknown one as stored).
fn channel_text(l: Lang, c: &str) -> String {
    match c {
        "wechat" => l.t("staff-dash-channel-wechat"),
        "counter" => l.t("staff-dash-channel-counter"),
        "counter:cash" => l.t("staff-dash-channel-counter-cash"),
        "counter:card" => l.t("staff-dash-channel-counter-card"),
        other => other.to_owned(),
    }
}

/// How long ago `ms` was, in whole minutes (hours past two hours).
fn age_text(l: Lang, ms: i64, now_ms: i64) -> String {
    let min = (now_ms - ms).max(0) / 60_000;
    if min >= 120 {
        l.t1("staff-dash-age-hours", "n", min / 60)
    } else {
        l.t1("staff-dash-age-minutes", "n", min)
    }
}

/// What an operator's scope reads like in the page language.
fn scope_text(l: Lang, op: &store::operators::Operator) -> String {
    if !op.buildings.is_empty() {
        l.t1("staff-scope-buildings", "list", op.buildings.join("、"))
    } else if op.all_areas {
        l.t("staff-scope-all")
    } else {
        l.t1("staff-scope-areas", "list", op.areas.join("、"))
    }
}

/// `GET /staff`: the dashboard — today's (campus-local) figures within the
/// operator's scope (`store::dashboard`), each a link to the list behind it.
async fn home(
    axum::extract::State(state): axum::extract::State<AppState>,
    Console(op): Console<{ Action::ViewConsole as u8 }>,
) -> StaffResult {
    let l = op.l;
    let tz = crate::pages::campus_tz(&state);
    let now = state.settings().staff.clock.now_ms();
    let today = domain::time::local_date(now, tz);
    let start = domain::time::day_start_ms(today, tz);
    let end = today
        .tomorrow()
        .map_or(start + 86_400_000, |d| domain::time::day_start_ms(d, tz));
    let within = store::dashboard::Within::of(op.operator.role, &op.operator.scope);
    let f = store::dashboard::figures(state.db(), &within, start, end).await?;
    let read_share = if f.meters > 0 {
        let per_mille = f.read_today * 1000 / f.meters;
        format!("{}.{}", per_mille / 10, per_mille % 10)
    } else {
        "—".to_owned()
    };
    html(&HomePage {
        l,
        welcome: l.t1("staff-welcome", "name", op.operator.name.clone()),
        scope: scope_text(l, &op.operator),
        sales_kwh: f.sales.iter().map(|s| s.kwh).sum(),
        sales_amount: domain::Fen::new(f.sales.iter().map(|s| s.amount_fen).sum()).to_string(),
        sales: f
            .sales
            .iter()
            .map(|s| SalesRow {
                channel: channel_text(l, &s.channel),
                orders: s.orders,
                kwh: s.kwh,
                amount: domain::Fen::new(s.amount_fen).to_string(),
            })
            .collect(),
        undelivered: f.undelivered,
        undelivered_oldest: f.undelivered_oldest_paid_ms.map(|t| age_text(l, t, now)),
        exceptions: f.exceptions,
        meters: f.meters,
        offline: f.offline,
        read_today: f.read_today,
        read_share,
        frame: op.frame("staff-home-title", "/staff"),
    })
}

/// Formats unix milliseconds as campus-local `YYYY-MM-DD HH:MM:SS`.
fn fmt_seconds(ms: i64, tz: &jiff::tz::TimeZone) -> String {
    crate::pages::fmt_local(ms, tz, "%Y-%m-%d %H:%M:%S")
}
