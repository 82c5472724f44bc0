//! The HTTP edge of dormwatt: the axum router (health, student pages, JSON
//! API, payment notifications, static assets). With `pay` and `wechat` one
//! of the crates that know HTTP.
//!
//! Invariant: handlers hold no SQL (they call `service` for use cases and
//! `store` for plain reads) and never show an internal error's cause to a
//! user; causes are logged once, here.

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

pub mod cookies;
pub mod i18n;
// Issue 16 item 1: Prometheus metrics at /metrics.
pub mod metrics;
pub mod pages;
pub mod payments;
pub mod request_log;
mod security;
pub mod server;
pub mod session;
pub mod staff;
pub mod url;
/// The official account's message server: URL verification and event push (issue 15).
pub mod wechat_events;

pub use server::ServeLimits;

/// Everything a handler may need, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    /// The use cases (and through them the database and payment side).
    service: service::Service,
    settings: Settings,
    /// Small in-memory caches of the student pages (per application).
    pages_cache: pages::Cache,
    /// Security headers of every answer.
    security_headers: security::SecurityHeaders,
    /// `/metrics`: HTTP counters, the head-end's source, the gauge cache.
    metrics: metrics::Metrics,
}

/// Web settings from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The public base URL (for links and the payment notify URL).
    pub public_url: String,
    /// Campus time zone for calendar days (parsed at configuration load).
    pub time_zone: domain::time::CampusTz,
    /// Whether the clearly labelled demo login is offered (never in production).
    pub demo_login: bool,
    /// WeChat official-account web authorization; `None`: WeChat login is
    /// not configured (the login page says so, the demo login may remain).
    pub wechat_oauth: Option<WechatOAuth>,
    /// Absolute lifetime of a student session.
    pub session_ttl_ms: i64,
    /// Timeouts and connection caps of [`serve`].
    pub limits: ServeLimits,
    /// The staff console's session timeouts and clock.
    pub staff: staff::StaffSettings,
    /// Who may scrape `/metrics`, and where.
    pub metrics: metrics::MetricsSettings,
    /// The official account's message-server token (issue 15); `None`: no
    /// `/wechat/events` endpoint (404).
    pub wechat_event_token: Option<String>,
}

impl Settings {
    /// Settings with the defaults for everything but what must be given.
    pub fn new(
        public_url: impl Into<String>,
        time_zone: domain::time::CampusTz,
        demo_login: bool,
    ) -> Self {
        Self {
            public_url: public_url.into(),
            time_zone,
            demo_login,
            wechat_oauth: None,
            session_ttl_ms: session::SESSION_TTL_MS_DEFAULT,
            limits: ServeLimits::default(),
            staff: staff::StaffSettings::default(),
            metrics: metrics::MetricsSettings::default(),
            wechat_event_token: None,
        }
    }
}

/// The official account's web authorization (wechat-notes §1): where to
/// send the browser, and the client that exchanges the code.
#[derive(Clone)]
pub struct WechatOAuth {
    /// The official account's AppID.
    pub appid: String,
    /// The authorize endpoint
    /// (`https://open.weixin.qq.com/connect/oauth2/authorize`; a mock in tests).
    pub authorize_url: String,
    /// The official-account API (code exchange).
    pub api: Arc<dyn wechat::WechatApi>,
}

impl WechatOAuth {
    /// Web authorization through a [`wechat::WechatClient`] for `appid`
    /// with `secret` at `api_base_url`. Fails when the HTTP client cannot
    /// be built (never a client without its timeouts).
    pub fn new(
        appid: impl Into<String>,
        secret: impl Into<String>,
        api_base_url: impl Into<String>,
        authorize_url: impl Into<String>,
    ) -> Result<Self, wechat::Error> {
        let appid = appid.into();
        let mut cfg = wechat::Config::new(appid.clone(), secret);
        cfg.api_base_url = api_base_url.into();
        Ok(Self {
            appid,
            authorize_url: authorize_url.into(),
            api: Arc::new(wechat::WechatClient::new(cfg)?),
        })
    }
}

impl std::fmt::Debug for WechatOAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatOAuth")
            .field("appid", &self.appid)
            .field("authorize_url", &self.authorize_url)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the state over a new [`service::Service`] (with the default
    /// delivery window; the web side never flags overdue orders itself).
    pub fn new(db: store::Db, settings: Settings, payments: Option<payments::Payments>) -> Self {
        let service = service::Service::new(db, payments, service::DeliveryWindow::default());
        Self::with_service(service, settings)
    }

    /// Builds the state over the process's [`service::Service`].
    pub fn with_service(service: service::Service, settings: Settings) -> Self {
        let form_origin = service.payments().and_then(|p| p.cashier_origin.clone());
        let security_headers =
            security::SecurityHeaders::new(&settings.public_url, form_origin.as_deref());
        let metrics = metrics::Metrics::new(settings.metrics.clone());
        Self {
            inner: Arc::new(Inner {
                service,
                metrics,
                settings,
                pages_cache: pages::Cache::default(),
                security_headers,
            }),
        }
    }

    /// The payment provider, when this node takes payments.
    pub fn payments(&self) -> Option<&payments::Payments> {
        self.inner.service.payments()
    }

    /// The use cases.
    pub fn service(&self) -> &service::Service {
        &self.inner.service
    }

    /// The database.
    pub fn db(&self) -> &store::Db {
        self.inner.service.db()
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The process's metrics (`/metrics`).
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
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
        .route("/metrics", get(metrics::main_listener))
        .merge(staff::router())
        .merge(pages::router())
        .merge(payments::router())
        .merge(wechat_events::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(request_log::span)
                .on_response(request_log::on_response)
                .on_failure(request_log::on_failure),
        )
        .layer(axum::middleware::from_fn(request_log::correlate))
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
    let limits = state.settings().limits.clone();
    server::serve_router(listener, app(state), limits, shutdown).await
}
