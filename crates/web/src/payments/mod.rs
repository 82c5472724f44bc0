//! Payments: starting a WeChat Pay (or sandbox) payment, the notification
//! endpoint, counter sales, the JSON orders API and the background workers
//! (expiry, reconciliation, refunds, overdue deliveries).
//!
//! Invariant: an order is credited only from a payment fact WeChat signed —
//! a verified notification or a signed query answer — after its appid, mchid,
//! amount and `trade_state` were checked against our order. Nothing here
//! credits from what a browser says.

use crate::AppState;
use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use store::orders::Order;

mod api;
mod notify;
pub mod workers;

pub use api::{OrderView, Receipt};
pub use notify::{NOTIFY_PATH, RejectedNotifications};

/// The payment side of the application state. Cheap to clone.
#[derive(Clone)]
pub struct Payments {
    /// WeChat Pay (or the sandbox speaking the same protocol).
    pub provider: Arc<dyn pay::PaymentProvider>,
    /// The in-process sandbox, when it is the provider (demo and tests).
    /// It is served on its own listener ([`pay::Sandbox::serve`]), never by
    /// this crate's router.
    #[cfg(feature = "sandbox")]
    pub sandbox: Option<pay::Sandbox>,
    /// The sandbox cashier's origin (`http://host:port`), which the payment
    /// form redirects browsers to; `None` with the real WeChat Pay.
    pub cashier_origin: Option<String>,
    /// Merchant identity and limits.
    pub settings: Arc<PaymentSettings>,
    /// Notifications refused before their signature verified (counted; only
    /// a sample is stored).
    pub rejected: Arc<RejectedNotifications>,
}

impl fmt::Debug for Payments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payments")
            .field("sandbox", &self.cashier_origin.is_some())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Settings of the payment side (from `[payment]` in the configuration).
#[derive(Clone)]
pub struct PaymentSettings {
    /// Our service account's AppID: notifications for another one are refused.
    pub appid: String,
    /// Our merchant id: notifications for another one are refused.
    pub mchid: String,
    /// Shown in the payer's WeChat bill before the order details (≤ 60 chars, no emoji).
    pub description_prefix: String,
    /// Campus-wide ceiling of kWh per order; each area may be stricter.
    pub order_kwh_max: u32,
    /// How much earlier than our 2-hour expiry WeChat stops accepting the
    /// payment, so a payment can never land after we closed the order.
    pub time_expire_margin: Duration,
    /// Bearer token of the counter-sales and staff API; `None` refuses every call.
    pub counter_token: Option<String>,
    /// Unpaid orders older than this with no notification are queried at WeChat.
    pub reconcile_after: Duration,
    /// Charging orders not confirmed by the meter within this become delayed.
    pub delivery_window: Duration,
    /// How often the workers run.
    pub worker_interval: Duration,
    /// Fetch and compare the previous day's trade bill (not with the sandbox
    /// in tests, where there is no previous day).
    pub bill_reconciliation: bool,
}

impl fmt::Debug for PaymentSettings {
    /// The counter token is a secret: show only whether it is set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaymentSettings")
            .field("appid", &self.appid)
            .field("mchid", &self.mchid)
            .field("description_prefix", &self.description_prefix)
            .field("order_kwh_max", &self.order_kwh_max)
            .field("time_expire_margin", &self.time_expire_margin)
            .field("counter_token", &self.counter_token.as_ref().map(|_| "***"))
            .field("reconcile_after", &self.reconcile_after)
            .field("delivery_window", &self.delivery_window)
            .field("worker_interval", &self.worker_interval)
            .field("bill_reconciliation", &self.bill_reconciliation)
            .finish()
    }
}

impl PaymentSettings {
    /// Defaults for a merchant identity; every knob can be changed after.
    pub fn new(appid: impl Into<String>, mchid: impl Into<String>) -> Self {
        Self {
            appid: appid.into(),
            mchid: mchid.into(),
            description_prefix: "宿舍电费".to_owned(),
            order_kwh_max: 500,
            time_expire_margin: Duration::from_secs(5 * 60),
            counter_token: None,
            reconcile_after: Duration::from_secs(3 * 60),
            delivery_window: Duration::from_secs(30 * 60),
            worker_interval: Duration::from_secs(30),
            bill_reconciliation: true,
        }
    }
}

impl Payments {
    /// Payments through `provider`.
    pub fn new(provider: Arc<dyn pay::PaymentProvider>, settings: PaymentSettings) -> Self {
        Self {
            provider,
            #[cfg(feature = "sandbox")]
            sandbox: None,
            cashier_origin: None,
            settings: Arc::new(settings),
            rejected: Arc::default(),
        }
    }

    /// Payments through the in-process sandbox: a [`pay::WechatPayClient`]
    /// that talks to the sandbox at `api_base_url` (the root of the
    /// sandbox's own listener) and receives its notifications at
    /// `notify_url` (the public URL + [`NOTIFY_PATH`]). This is exactly the
    /// production client and verification path, only the keys differ.
    #[cfg(feature = "sandbox")]
    pub fn sandbox(
        sandbox: pay::Sandbox,
        api_base_url: &str,
        notify_url: &str,
        settings: PaymentSettings,
    ) -> Result<Self, pay::PayError> {
        Self::sandbox_with_cashier(sandbox, api_base_url, api_base_url, notify_url, settings)
    }

    /// [`Payments::sandbox`] where browsers reach the sandbox's cashier at
    /// `cashier_base_url` (its listener as seen from outside) while the
    /// server calls it at `api_base_url`.
    #[cfg(feature = "sandbox")]
    pub fn sandbox_with_cashier(
        sandbox: pay::Sandbox,
        api_base_url: &str,
        cashier_base_url: &str,
        notify_url: &str,
        mut settings: PaymentSettings,
    ) -> Result<Self, pay::PayError> {
        let mut config = pay::sandbox::demo_merchant_config(api_base_url, notify_url);
        let cashier_base = cashier_base_url.trim_end_matches('/');
        config.cashier_url = Some(format!("{cashier_base}/cashier"));
        // scheme://host[:port] of the cashier: what the CSP's form-action allows.
        let cashier_origin = cashier_base
            .split_once("://")
            .map(|(scheme, rest)| format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest)));
        settings.appid.clone_from(&config.appid);
        settings.mchid.clone_from(&config.mchid);
        let client = pay::WechatPayClient::new(config)?;
        Ok(Self {
            provider: Arc::new(client),
            sandbox: Some(sandbox),
            cashier_origin,
            settings: Arc::new(settings),
            rejected: Arc::default(),
        })
    }
}

/// Routes of the payment side: the notify endpoint and the JSON API. The
/// sandbox is never among them: its admin routes pay orders without money,
/// so it runs on its own listener (`dormwatt demo`, tests).
pub fn router() -> Router<AppState> {
    Router::new().merge(notify::router()).merge(api::router())
}

/// What the payment page needs to take the student's money.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StartedPayment {
    /// Our order number.
    pub out_trade_no: String,
    /// Signed parameters for `WeixinJSBridge.invoke('getBrandWCPayRequest', params, cb)`.
    /// The bridge's answer is not authoritative: poll the order afterwards.
    pub pay_params: pay::JsapiPayParams,
    /// Sandbox (demo) only: the cashier page for this payment on the
    /// sandbox's own origin (it already carries `?prepay_id=…`); send the
    /// browser there instead of the bridge,
    /// or use [`StartedPayment::cashier_link`] to come back to a page after.
    pub cashier_url: Option<String>,
    /// The prepay id (the same for every tab paying this order).
    pub prepay_id: String,
}

impl StartedPayment {
    /// The sandbox cashier link for this payment, returning to `return_path`
    /// (a same-site path) afterwards; `None` with the real WeChat Pay.
    pub fn cashier_link(&self, return_path: &str) -> Option<String> {
        self.cashier_url.as_ref().map(|url| {
            // The provider's link may already carry `?prepay_id=`; rebuild the query.
            let base = url.split('?').next().unwrap_or(url);
            format!(
                "{base}?prepay_id={}&return_url={}",
                url_encode(&self.prepay_id),
                url_encode(return_path)
            )
        })
    }
}

fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why a payment could not be started, or another payment-side call failed.
/// `Display` is the message for the user; causes are logged, not shown.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// This node takes no payments (no `[payment]` provider configured).
    #[error("online payment is not available right now")]
    Unavailable,
    /// The order is not waiting for payment (paid, closed, refunded…).
    #[error("this order can no longer be paid")]
    NotPayable,
    /// The order was already paid; show its status.
    #[error("this order is already paid")]
    AlreadyPaid,
    /// Too close to the order's expiry to pay safely.
    #[error("this order has expired; please place a new one")]
    Expired,
    /// WeChat Pay failed or timed out: the outcome is unknown, retrying is safe.
    #[error("WeChat Pay did not answer; please try again")]
    Provider(#[source] pay::PayError),
    /// The database failed.
    #[error("something went wrong on our side; please try again")]
    Store(#[from] store::Error),
}

impl PaymentError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotPayable | Self::AlreadyPaid | Self::Expired => StatusCode::CONFLICT,
            Self::Provider(_) => StatusCode::BAD_GATEWAY,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Unavailable => "PAYMENT_UNAVAILABLE",
            Self::NotPayable => "NOT_PAYABLE",
            Self::AlreadyPaid => "ALREADY_PAID",
            Self::Expired => "EXPIRED",
            Self::Provider(_) => "PROVIDER_ERROR",
            Self::Store(_) => "INTERNAL",
        }
    }
}

impl IntoResponse for PaymentError {
    fn into_response(self) -> Response {
        match &self {
            Self::Provider(e) => tracing::warn!(error = %e, "payment provider call failed"),
            Self::Store(e) => tracing::error!(error = %e, "store failed in payments"),
            _ => {}
        }
        ApiError::new(self.status(), self.code(), self.to_string()).into_response()
    }
}

/// A JSON error answer `{"code": "...", "message": "..."}` (the same shape
/// WeChat uses, so the notify endpoint and the API answer alike).
#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// An error answer.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(&self)).into_response()
    }
}

/// The description shown in the payer's WeChat bill.
fn description(settings: &PaymentSettings, order: &Order) -> String {
    // Bounded well under WeChat's 127 bytes; the prefix is config, the rest ASCII.
    let prefix: String = settings.description_prefix.chars().take(30).collect();
    format!("{prefix} {} kWh {}", order.kwh, order.out_trade_no)
}

/// Last instant (unix seconds) WeChat may accept payment for `order`:
/// a margin before our own expiry, so no payment lands after we closed it.
fn time_expire_unix_s(settings: &PaymentSettings, order: &Order) -> i64 {
    let margin_ms = i64::try_from(settings.time_expire_margin.as_millis()).unwrap_or(i64::MAX);
    order.expires_at_ms.saturating_sub(margin_ms) / 1000
}

/// WeChat bumps a `time_expire` closer than one minute to one minute from
/// now, which could let a payment land after our expiry; refuse instead.
const PAY_WINDOW_MIN_S: i64 = 90;

/// Starts (or resumes) the WeChat payment of an unpaid order for the payer
/// `payer_openid` (the student's openid under our AppID).
///
/// Safe to call from several tabs: every call sends WeChat the *same*
/// prepay request (same `out_trade_no`, amount, description and
/// `time_expire`), which WeChat answers with the same prepay id, so one
/// order can be paid only once; a new `out_trade_no` is never minted.
/// If WeChat says the order is already paid, the payment is settled through
/// its signed query answer and [`PaymentError::AlreadyPaid`] is returned.
pub async fn start_wechat_payment(
    state: &AppState,
    order: &Order,
    payer_openid: &str,
) -> Result<StartedPayment, PaymentError> {
    let payments = state.payments().ok_or(PaymentError::Unavailable)?;
    let now_ms = store::now_ms();
    // Re-read: the caller's copy may be stale (another tab may have paid).
    let order = store::orders::by_id(state.db(), order.id)
        .await?
        .ok_or(PaymentError::NotPayable)?;
    match order.state {
        domain::order::OrderState::Unpaid => {}
        s if s.is_paid() => return Err(PaymentError::AlreadyPaid),
        _ => return Err(PaymentError::NotPayable),
    }
    if order.channel != domain::order::Channel::Wechat {
        return Err(PaymentError::NotPayable);
    }
    let time_expire = time_expire_unix_s(&payments.settings, &order);
    if time_expire - now_ms / 1000 < PAY_WINDOW_MIN_S {
        return Err(PaymentError::Expired);
    }
    let request = pay::JsapiOrder {
        description: description(&payments.settings, &order),
        out_trade_no: order.out_trade_no.clone(),
        amount_fen: order.amount_fen.get(),
        payer_openid: payer_openid.to_owned(),
        time_expire_unix_s: Some(time_expire),
        attach: None,
    };
    let payment = match payments.provider.create_jsapi_order(&request).await {
        Ok(p) => p,
        Err(e) if e.code() == Some("ORDERPAID") => {
            // Paid at WeChat but not here yet (notification in flight or lost):
            // settle now from the signed query answer.
            workers::settle_from_query(state, payments, &order, now_ms).await;
            return Err(PaymentError::AlreadyPaid);
        }
        Err(e) if e.code() == Some("ORDER_CLOSED") => return Err(PaymentError::NotPayable),
        Err(e) => return Err(PaymentError::Provider(e)),
    };
    if order.prepay_id.as_deref() != Some(payment.prepay_id.as_str()) {
        store::orders::set_prepay_id(state.db(), order.id, &payment.prepay_id, now_ms).await?;
    }
    tracing::info!(order.id = order.id.get(), out_trade_no = %order.out_trade_no, "payment started");
    Ok(StartedPayment {
        out_trade_no: order.out_trade_no.clone(),
        pay_params: payment.pay_params,
        cashier_url: payment.cashier_url,
        prepay_id: payment.prepay_id,
    })
}

/// Why a student's order could not be created: each has a clear message.
#[derive(Debug, thiserror::Error)]
pub enum OrderInputError {
    /// The kWh amount is not a whole number in range.
    #[error("{0}")]
    Kwh(#[from] domain::money::KwhError),
    /// The order was refused (no such meter in the area, above the area
    /// maximum, above the meter's hoarding limit).
    #[error("{0}")]
    Refused(store::orders::CreateError),
    /// The database failed.
    #[error("something went wrong on our side; please try again")]
    Store(#[from] store::Error),
}

impl From<store::orders::CreateError> for OrderInputError {
    fn from(e: store::orders::CreateError) -> Self {
        match e {
            store::orders::CreateError::Store(s) => Self::Store(s),
            other => Self::Refused(other),
        }
    }
}

impl IntoResponse for OrderInputError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::Kwh(_) => (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_KWH"),
            Self::Refused(store::orders::CreateError::NoSuchMeter) => {
                (StatusCode::NOT_FOUND, "NO_SUCH_METER")
            }
            Self::Refused(store::orders::CreateError::TooLarge { .. }) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_KWH")
            }
            Self::Refused(store::orders::CreateError::HoardingLimit { .. }) => {
                (StatusCode::CONFLICT, "HOARDING_LIMIT")
            }
            Self::Refused(
                store::orders::CreateError::TooManyUnpaid { .. }
                | store::orders::CreateError::MeterUnpaidLimit { .. },
            ) => (StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_UNPAID"),
            Self::Refused(_) | Self::Store(_) => {
                tracing::error!(error = %self, "order creation failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL")
            }
        };
        ApiError::new(status, code, self.to_string()).into_response()
    }
}

/// Creates an unpaid WeChat order for a student: `kwh_input` is what they
/// typed (whole kWh only), priced from the meter's tariff now. Call
/// [`start_wechat_payment`] next.
pub async fn create_student_order(
    state: &AppState,
    student_id: i64,
    area_id: i64,
    meter_address: &str,
    kwh_input: &str,
) -> Result<Order, OrderInputError> {
    let max = state
        .payments()
        .map_or(PaymentSettings::new("", "").order_kwh_max, |p| {
            p.settings.order_kwh_max
        });
    let kwh = domain::WholeKwh::parse(kwh_input, max)?;
    let req = store::orders::NewOrder {
        area_id,
        meter_address: meter_address.trim(),
        student_id: Some(student_id),
        kwh,
        channel: domain::order::Channel::Wechat,
        operator: None,
    };
    Ok(store::orders::create(state.db(), &req, store::now_ms()).await?)
}

/// Cancels an unpaid order at the student's request: closes it at WeChat
/// first (so no other tab can still pay it), then here. If WeChat says it
/// was paid meanwhile, the payment is recorded from WeChat's signed query
/// answer and [`PaymentError::AlreadyPaid`] is returned instead.
pub async fn cancel_order(state: &AppState, order: &Order) -> Result<Order, PaymentError> {
    let now_ms = store::now_ms();
    let order = store::orders::by_id(state.db(), order.id)
        .await?
        .ok_or(PaymentError::NotPayable)?;
    match order.state {
        domain::order::OrderState::Unpaid => {}
        domain::order::OrderState::Closed => return Ok(order),
        s if s.is_paid() => return Err(PaymentError::AlreadyPaid),
        _ => return Err(PaymentError::NotPayable),
    }
    if let Some(payments) = state.payments()
        && order.prepay_id.is_some()
    {
        match payments.provider.close_order(&order.out_trade_no).await {
            Ok(()) => {}
            Err(e) if e.code() == Some("ORDERPAID") => {
                workers::settle_from_query(state, payments, &order, now_ms).await;
                return Err(PaymentError::AlreadyPaid);
            }
            Err(e) if e.code() == Some("ORDER_CLOSED") || e.is_not_found() => {}
            Err(e) => return Err(PaymentError::Provider(e)),
        }
    }
    Ok(store::orders::close(
        state.db(),
        order.id,
        domain::order::OrderEvent::Cancel,
        now_ms,
    )
    .await?)
}
