//! The only crate that knows HTTP: the axum router of dormwatt (health,
//! student pages, JSON API, payment notifications, static assets).
//!
//! Invariant: handlers hold no SQL (they call `store`) and never show an
//! internal error's cause to a user; causes are logged once, here.

// Outside tests a panic is a bug we chose to keep: an `expect` with its
// reason under a local `allow`, or a type that makes the case impossible
// (crates/dormwatt/tests/workspace_lints.rs checks every crate says so).
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use std::sync::Arc;
use std::time::Duration;

pub mod i18n;
pub mod pages;
pub mod payments;
mod security;
pub mod server;
pub mod session;

pub use server::ServeLimits;

/// Everything a handler may need, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    db: store::Db,
    settings: Settings,
    payments: Option<payments::Payments>,
    /// Small in-memory caches of the student pages (per application).
    pages_cache: pages::Cache,
    /// Security headers of every answer.
    security_headers: security::SecurityHeaders,
}

/// Web settings from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The public base URL (for links and the payment notify URL).
    pub public_url: String,
    /// Campus time zone name for calendar days.
    pub time_zone: String,
    /// Whether the clearly labelled demo login is offered (never in production).
    pub demo_login: bool,
    /// WeChat official-account web authorization; `None`: WeChat login is
    /// not configured (the login page says so, the demo login may remain).
    pub wechat_oauth: Option<WechatOAuth>,
    /// Absolute lifetime of a student session.
    pub session_ttl_ms: i64,
    /// Timeouts and connection caps of [`serve`].
    pub limits: ServeLimits,
}

impl Settings {
    /// Settings with the defaults for everything but what must be given.
    pub fn new(
        public_url: impl Into<String>,
        time_zone: impl Into<String>,
        demo_login: bool,
    ) -> Self {
        Self {
            public_url: public_url.into(),
            time_zone: time_zone.into(),
            demo_login,
            wechat_oauth: None,
            session_ttl_ms: session::SESSION_TTL_MS_DEFAULT,
            limits: ServeLimits::default(),
        }
    }
}

/// The official account's web-authorization credentials (wechat-notes §1).
#[derive(Clone)]
pub struct WechatOAuth {
    /// The official account's AppID.
    pub appid: String,
    /// The AppSecret (read from a file by the binary; never logged).
    pub secret: String,
    /// Base URL of the WeChat API (`https://api.weixin.qq.com`; a mock in tests).
    pub api_base_url: String,
    /// The authorize endpoint
    /// (`https://open.weixin.qq.com/connect/oauth2/authorize`; a mock in tests).
    pub authorize_url: String,
}

impl std::fmt::Debug for WechatOAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatOAuth")
            .field("appid", &self.appid)
            .field("secret", &"<redacted>")
            .field("api_base_url", &self.api_base_url)
            .field("authorize_url", &self.authorize_url)
            .finish()
    }
}

impl AppState {
    /// Builds the state.
    pub fn new(db: store::Db, settings: Settings, payments: Option<payments::Payments>) -> Self {
        let form_origin = payments.as_ref().and_then(|p| p.cashier_origin.clone());
        let security_headers =
            security::SecurityHeaders::new(&settings.public_url, form_origin.as_deref());
        Self {
            inner: Arc::new(Inner {
                db,
                settings,
                payments,
                pages_cache: pages::Cache::default(),
                security_headers,
            }),
        }
    }

    /// The payment provider, when this node takes payments.
    pub fn payments(&self) -> Option<&payments::Payments> {
        self.inner.payments.as_ref()
    }

    /// The database.
    pub fn db(&self) -> &store::Db {
        &self.inner.db
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    fn security_headers(&self) -> &security::SecurityHeaders {
        &self.inner.security_headers
    }

    /// The student pages' caches.
    pub(crate) fn pages_cache(&self) -> &pages::Cache {
        &self.inner.pages_cache
    }
}

/// Most bytes a request body may have; forms and notifications are small.
const BODY_LIMIT_BYTES: usize = 64 * 1024;
/// Upper bound on any request's handling time.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(pages::router())
        .merge(payments::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::headers,
        ))
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Liveness: the process answers.
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database takes a write. A read-only check stayed 200
/// through a full disk and a read-only spell while every purchase failed.
async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.db().check_writable(store::now_ms()).await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            let reason = match e.storage_fault() {
                Some(store::StorageFault::Full) => "database full",
                Some(store::StorageFault::ReadOnly) => "database read-only",
                None => "database unavailable",
            };
            (StatusCode::SERVICE_UNAVAILABLE, reason)
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then waits for
/// in-flight requests (bounded). Header-read and idle timeouts and the
/// connection caps are `state.settings().limits` ([`server`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.settings().limits;
    server::serve_router(listener, app(state), limits, shutdown).await
}
