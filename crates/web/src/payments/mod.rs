//! Payments over HTTP: the notification endpoint and the JSON orders API.
//! What a purchase, a notification, a refund or a counter sale *does* is in
//! the `service` crate; this module maps requests to service calls and
//! service outcomes to answers.
//!
//! Invariant: an order is credited only from a payment fact WeChat signed —
//! a verified notification or a signed query answer (`service`). Nothing
//! here credits from what a browser says.

use crate::AppState;
use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use store::orders::Order;

mod api;
mod notify;

pub use api::{OrderView, Receipt};
pub use notify::NOTIFY_PATH;
pub use service::workers;
pub use service::{
    OrderInputError, PaymentError, PaymentSettings, Payments, RejectedNotifications, StartedPayment,
};

/// Routes of the payment side: the notify endpoint and the JSON API. The
/// sandbox is never among them: its admin routes pay orders without money,
/// so it runs on its own listener (`dormwatt demo`, tests).
pub fn router() -> Router<AppState> {
    Router::new().merge(notify::router()).merge(api::router())
}

/// The HTTP status and stable code of a payment error.
fn payment_error_status(e: &PaymentError) -> (StatusCode, &'static str) {
    match e {
        PaymentError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "PAYMENT_UNAVAILABLE"),
        PaymentError::NotPayable => (StatusCode::CONFLICT, "NOT_PAYABLE"),
        PaymentError::AlreadyPaid => (StatusCode::CONFLICT, "ALREADY_PAID"),
        PaymentError::Expired => (StatusCode::CONFLICT, "EXPIRED"),
        PaymentError::Provider(_) => (StatusCode::BAD_GATEWAY, "PROVIDER_ERROR"),
        PaymentError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
    }
}

/// A payment error as a JSON answer; causes are logged, not shown.
pub(crate) fn payment_error_response(e: &PaymentError) -> Response {
    match e {
        PaymentError::Provider(c) => tracing::warn!(error = %c, "payment provider call failed"),
        PaymentError::Store(c) => tracing::error!(error = %c, "store failed in payments"),
        _ => {}
    }
    let (status, code) = payment_error_status(e);
    ApiError::new(status, code, e.to_string()).into_response()
}

/// An order-input error as a JSON answer.
pub(crate) fn order_input_response(e: &OrderInputError) -> Response {
    use store::orders::CreateError;
    let (status, code) = match e {
        OrderInputError::Kwh(_) => (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_KWH"),
        OrderInputError::Refused(CreateError::NoSuchMeter) => {
            (StatusCode::NOT_FOUND, "NO_SUCH_METER")
        }
        OrderInputError::Refused(CreateError::TooLarge { .. }) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_KWH")
        }
        OrderInputError::Refused(CreateError::HoardingLimit { .. }) => {
            (StatusCode::CONFLICT, "HOARDING_LIMIT")
        }
        OrderInputError::Refused(
            CreateError::TooManyUnpaid { .. } | CreateError::MeterUnpaidLimit { .. },
        ) => (StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_UNPAID"),
        OrderInputError::Refused(CreateError::Retired) => (StatusCode::CONFLICT, "METER_RETIRED"),
        OrderInputError::Refused(_) | OrderInputError::Store(_) => {
            tracing::error!(error = %e, "order creation failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL")
        }
    };
    ApiError::new(status, code, e.to_string()).into_response()
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

/// The sandbox cashier link for a started payment, returning to
/// `return_path` (a same-site path) afterwards; `None` with the real WeChat
/// Pay.
pub fn cashier_link(started: &StartedPayment, return_path: &str) -> Option<String> {
    use crate::url::encode as url_encode;
    started.cashier_url.as_ref().map(|url| {
        // The provider's link may already carry `?prepay_id=`; rebuild the query.
        let base = url.split('?').next().unwrap_or(url);
        format!(
            "{base}?prepay_id={}&return_url={}",
            url_encode(&started.prepay_id),
            url_encode(return_path)
        )
    })
}

/// [`service::purchase::start_wechat_payment`] for a page or API handler.
pub async fn start_wechat_payment(
    state: &AppState,
    order: &Order,
    payer_openid: &str,
) -> Result<StartedPayment, PaymentError> {
    service::purchase::start_wechat_payment(state.service(), order, payer_openid).await
}

/// [`service::purchase::create_student_order`] for a page or API handler.
pub async fn create_student_order(
    state: &AppState,
    student_id: i64,
    area_id: i64,
    meter_address: &str,
    kwh_input: &str,
) -> Result<Order, OrderInputError> {
    service::purchase::create_student_order(
        state.service(),
        student_id,
        area_id,
        meter_address,
        kwh_input,
    )
    .await
}

/// [`service::purchase::cancel_order`] for a page or API handler.
pub async fn cancel_order(state: &AppState, order: &Order) -> Result<Order, PaymentError> {
    service::purchase::cancel_order(state.service(), order).await
}
