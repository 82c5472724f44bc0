//! A student's purchase: find the meter (their own, or someone else's by
//! its number), create the order, start (or resume) its WeChat payment,
//! cancel it.

use crate::input::{NotTwelveDigits, meter_number, normalise_digits};
use crate::{PaymentSettings, Service, workers};
use domain::ids::OrderId;
use domain::money::KwhError;
use domain::order::{Channel, OrderEvent, OrderState};
use serde::Serialize;
use store::campus::MeterInfo;
use store::orders::{CreateError, Order};

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
    /// browser there instead of the bridge (the edge adds where to return).
    pub cashier_url: Option<String>,
    /// The prepay id (the same for every tab paying this order).
    pub prepay_id: String,
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
    let order = reread(svc, order.id).await?;
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

/// Lookups of meters the student is not bound to, per student per hour
/// (a real payer buys for a roommate or two) and per client address per
/// hour (a campus NAT holds many students).
pub const LOOKUPS_PER_STUDENT_HOUR: i64 = 20;
/// See [`LOOKUPS_PER_STUDENT_HOUR`].
pub const LOOKUPS_PER_IP_HOUR: i64 = 300;
const LOOKUP_WINDOW_MS: i64 = 3_600_000;

/// A student buying, and from where (for the lookup throttle).
#[derive(Debug, Clone, Copy)]
pub struct Buyer<'a> {
    /// The student.
    pub student_id: i64,
    /// The client address.
    pub ip: &'a str,
}

/// A meter found for buying.
#[derive(Debug, Clone)]
pub struct MeterToBuy {
    /// The meter.
    pub meter: MeterInfo,
    /// What the buyer may be shown of it: everything for a binder; for
    /// anyone else only what a payer must see (the room masked, no balance).
    pub shown: MeterInfo,
}

/// Why no meter was found to buy for.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The number typed is not 12 digits (the bind page's hint).
    #[error(transparent)]
    NotTwelveDigits(#[from] NotTwelveDigits),
    /// Too many lookups of meters the student is not bound to.
    #[error("too many meter look-ups; try again later")]
    Throttled,
    /// No meter with that number in that area.
    #[error("no such meter in this area")]
    NoSuchMeter,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Finds the meter a student buys for (issue 10 item 6). A binder sees
/// everything; anyone else — buying for someone — sees only what a payer
/// must, and such lookups are throttled per student and per address, found
/// or not, so buying cannot be used to enumerate rooms and balances. A
/// number that is not 12 digits is refused before anything is counted.
pub async fn find_meter(
    svc: &Service,
    buyer: Buyer<'_>,
    area_id: i64,
    typed: &str,
) -> Result<MeterToBuy, LookupError> {
    let address = meter_number(typed)?;
    let bound = store::students::bindings(svc.db(), buyer.student_id)
        .await?
        .iter()
        .any(|b| b.address == address.as_str() && b.area_id.get() == area_id);
    if !bound {
        let now = store::now_ms();
        let (mine, from_ip) = store::students::record_lookup(
            svc.db(),
            buyer.student_id,
            address.as_str(),
            buyer.ip,
            now - LOOKUP_WINDOW_MS,
            now,
        )
        .await?;
        if mine > LOOKUPS_PER_STUDENT_HOUR || from_ip > LOOKUPS_PER_IP_HOUR {
            tracing::warn!(student.id = buyer.student_id, "meter lookups throttled");
            return Err(LookupError::Throttled);
        }
    }
    let meter = store::campus::meter_by_address(svc.db(), domain::AreaId::new(area_id), &address)
        .await?
        .ok_or(LookupError::NoSuchMeter)?;
    let shown = if bound {
        meter.clone()
    } else {
        MeterInfo {
            room: mask_room(&meter.room),
            remaining_centikwh: None,
            remaining_at_ms: None,
            ..meter.clone()
        }
    };
    Ok(MeterToBuy { meter, shown })
}

/// `402` → `4**`: the floor helps a payer check the building, no more.
fn mask_room(room: &str) -> String {
    let mut cs = room.chars();
    cs.next()
        .map(|c| std::iter::once(c).chain(cs.map(|_| '*')).collect())
        .unwrap_or_default()
}

/// The most kWh one order for `meter` may have: its area's limit, and the
/// campus-wide one of the payment settings when that is stricter.
pub fn order_kwh_max(svc: &Service, meter: &MeterInfo) -> u32 {
    let area = u32::try_from(meter.order_kwh_max).unwrap_or(u32::MAX);
    area.min(svc.order_kwh_max())
}

/// Why what a student typed as an amount is not one; each has its own
/// message (only a fraction is "no decimals").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Nothing typed.
    #[error("enter an amount")]
    Empty,
    /// Not a number at all (letters, signs).
    #[error("only digits")]
    NotANumber,
    /// A number, but not a whole one in range.
    #[error(transparent)]
    Kwh(#[from] KwhError),
}

/// Parses a typed amount of whole kWh (full-width digits accepted).
pub fn parse_amount(typed: &str, max: u32) -> Result<domain::WholeKwh, AmountError> {
    let input = normalise_digits(typed);
    if input.is_empty() {
        return Err(AmountError::Empty);
    }
    if !input.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(AmountError::NotANumber);
    }
    Ok(domain::WholeKwh::parse(&input, max)?)
}

/// Why an order for a found meter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderRefused {
    /// The amount typed is not one.
    #[error(transparent)]
    Amount(#[from] AmountError),
    /// Above the area's per-order maximum.
    #[error("at most {max} kWh per order")]
    TooLarge {
        /// The maximum.
        max: i64,
    },
    /// The meter would refuse the energy: this many whole kWh still fit.
    #[error("buy at most {room} kWh")]
    HoardingLimit {
        /// Whole kWh that still fit.
        room: i64,
    },
    /// The buyer already has this many unpaid orders.
    #[error("you already have {max} unpaid orders")]
    TooManyUnpaid {
        /// The cap.
        max: i64,
    },
    /// The meter already has this many unpaid orders (by anyone).
    #[error("this meter already has {max} unpaid orders")]
    MeterUnpaidLimit {
        /// The cap.
        max: i64,
    },
    /// The meter was retired: it can no longer be recharged.
    #[error("this meter has been retired")]
    Retired,
}

/// Why a student's order was not created.
#[derive(Debug, thiserror::Error)]
pub enum BuyError {
    /// No meter to buy for (never [`LookupError::Store`]: that is [`BuyError::Store`]).
    #[error(transparent)]
    Lookup(LookupError),
    /// The meter was found (`shown`: what the buyer may see of it) but the
    /// order was refused.
    #[error("{why}")]
    Refused {
        /// What the buyer may be shown of the meter, to offer the form again.
        shown: Box<MeterInfo>,
        /// Why.
        why: OrderRefused,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl From<LookupError> for BuyError {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::Store(s) => Self::Store(s),
            other => Self::Lookup(other),
        }
    }
}

/// Creates an unpaid WeChat order of `kwh_typed` whole kWh for the meter a
/// student typed or picked ([`find_meter`], throttled the same way), priced
/// from the meter's tariff now. Call [`start_wechat_payment`] next.
pub async fn order_for_student(
    svc: &Service,
    buyer: Buyer<'_>,
    area_id: i64,
    meter_typed: &str,
    kwh_typed: &str,
) -> Result<Order, BuyError> {
    let MeterToBuy { meter, shown } = find_meter(svc, buyer, area_id, meter_typed).await?;
    let refused = |why| BuyError::Refused {
        shown: Box::new(shown.clone()),
        why,
    };
    let kwh = parse_amount(kwh_typed, order_kwh_max(svc, &meter))
        .map_err(|e| refused(OrderRefused::Amount(e)))?;
    let req = store::orders::NewOrder {
        area_id: meter.area_id.get(),
        meter_address: meter.address.as_str(),
        student_id: Some(buyer.student_id),
        kwh,
        channel: Channel::Wechat,
        operator: None,
    };
    let why = match store::orders::create(svc.db(), &req, store::now_ms()).await {
        Ok(order) => {
            tracing::info!(
                student.id = buyer.student_id,
                order.id = order.id.get(),
                meter.id = meter.id.get(),
                kwh = order.kwh.get(),
                "order created"
            );
            return Ok(order);
        }
        Err(CreateError::Store(e)) => return Err(e.into()),
        Err(CreateError::NoSuchMeter) => return Err(LookupError::NoSuchMeter.into()),
        Err(CreateError::TooLarge { max }) => OrderRefused::TooLarge { max },
        Err(CreateError::HoardingLimit { room, .. }) => OrderRefused::HoardingLimit { room },
        Err(CreateError::TooManyUnpaid { max }) => OrderRefused::TooManyUnpaid { max },
        Err(CreateError::MeterUnpaidLimit { max }) => OrderRefused::MeterUnpaidLimit { max },
        Err(CreateError::Retired) => OrderRefused::Retired,
    };
    Err(refused(why))
}

/// The order as stored now; one that is gone cannot be paid.
async fn reread(svc: &Service, id: OrderId) -> Result<Order, PaymentError> {
    store::orders::by_id(svc.db(), id)
        .await?
        .ok_or(PaymentError::NotPayable)
}

/// Cancels an unpaid order at the student's request: closes it at WeChat
/// first (so no other tab can still pay it), then here. If WeChat says it
/// was paid meanwhile, the payment is recorded from WeChat's signed query
/// answer and [`PaymentError::AlreadyPaid`] is returned instead.
pub async fn cancel_order(svc: &Service, order: &Order) -> Result<Order, PaymentError> {
    let now_ms = store::now_ms();
    let order = reread(svc, order.id).await?;
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
