//! A student's purchase: create the order, start (or resume) its WeChat
//! payment, cancel it.

use crate::{PaymentSettings, Service, workers};
use domain::order::{Channel, OrderEvent, OrderState};
use serde::Serialize;
use store::orders::Order;

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
                query_encode(&self.prepay_id),
                query_encode(return_path)
            )
        })
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
fn query_encode(s: &str) -> String {
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
    svc: &Service,
    order: &Order,
    payer_openid: &str,
) -> Result<StartedPayment, PaymentError> {
    let payments = svc.payments().ok_or(PaymentError::Unavailable)?;
    let now_ms = store::now_ms();
    // Re-read: the caller's copy may be stale (another tab may have paid).
    let order = store::orders::by_id(svc.db(), order.id)
        .await?
        .ok_or(PaymentError::NotPayable)?;
    match order.state {
        OrderState::Unpaid => {}
        s if s.is_paid() => return Err(PaymentError::AlreadyPaid),
        _ => return Err(PaymentError::NotPayable),
    }
    if order.channel != Channel::Wechat {
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
            workers::settle_from_query(svc, payments, &order, now_ms).await;
            return Err(PaymentError::AlreadyPaid);
        }
        Err(e) if e.code() == Some("ORDER_CLOSED") => return Err(PaymentError::NotPayable),
        Err(e) => return Err(PaymentError::Provider(e)),
    };
    if order.prepay_id.as_deref() != Some(payment.prepay_id.as_str()) {
        store::orders::set_prepay_id(svc.db(), order.id, &payment.prepay_id, now_ms).await?;
    }
    tracing::info!(order.id = order.id.get(), out_trade_no = %order.out_trade_no, "payment started");
    Ok(StartedPayment {
        out_trade_no: order.out_trade_no.clone(),
        pay_params: payment.pay_params,
        cashier_url: payment.cashier_url,
        prepay_id: payment.prepay_id,
    })
}

/// Creates an unpaid WeChat order for a student: `kwh_input` is what they
/// typed (whole kWh only), priced from the meter's tariff now. Call
/// [`start_wechat_payment`] next.
pub async fn create_student_order(
    svc: &Service,
    student_id: i64,
    area_id: i64,
    meter_address: &str,
    kwh_input: &str,
) -> Result<Order, OrderInputError> {
    let kwh = domain::WholeKwh::parse(kwh_input, svc.order_kwh_max())?;
    let req = store::orders::NewOrder {
        area_id,
        meter_address: meter_address.trim(),
        student_id: Some(student_id),
        kwh,
        channel: Channel::Wechat,
        operator: None,
    };
    Ok(store::orders::create(svc.db(), &req, store::now_ms()).await?)
}

/// Cancels an unpaid order at the student's request: closes it at WeChat
/// first (so no other tab can still pay it), then here. If WeChat says it
/// was paid meanwhile, the payment is recorded from WeChat's signed query
/// answer and [`PaymentError::AlreadyPaid`] is returned instead.
pub async fn cancel_order(svc: &Service, order: &Order) -> Result<Order, PaymentError> {
    let now_ms = store::now_ms();
    let order = store::orders::by_id(svc.db(), order.id)
        .await?
        .ok_or(PaymentError::NotPayable)?;
    match order.state {
        OrderState::Unpaid => {}
        OrderState::Closed => return Ok(order),
        s if s.is_paid() => return Err(PaymentError::AlreadyPaid),
        _ => return Err(PaymentError::NotPayable),
    }
    if let Some(payments) = svc.payments()
        && order.prepay_id.is_some()
    {
        match payments.provider.close_order(&order.out_trade_no).await {
            Ok(()) => {}
            Err(e) if e.code() == Some("ORDERPAID") => {
                workers::settle_from_query(svc, payments, &order, now_ms).await;
                return Err(PaymentError::AlreadyPaid);
            }
            Err(e) if e.code() == Some("ORDER_CLOSED") || e.is_not_found() => {}
            Err(e) => return Err(PaymentError::Provider(e)),
        }
    }
    Ok(store::orders::close(svc.db(), order.id, OrderEvent::Cancel, now_ms).await?)
}
