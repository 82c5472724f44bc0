//! Buying (S10–S11): pick a bound meter or type one, the order page with
//! presets and a whole-kWh "other amount", payment (WeixinJSBridge, or the
//! sandbox cashier in the demo) and the success page that follows the order
//! live until the meter confirms.

use super::bind::ClientIp;
use super::{
    Acting, CsrfOnly, Ctx, PageError, PageResult, PathId, Posted, Shell, Tab, area_name,
    csrf_forms, energy_or_dash, fmt_price, fmt_time, html, pay_deadline, see,
};
use crate::AppState;
use crate::i18n::Lang;
use crate::payments::{self, PaymentError};
use crate::session::CurrentStudent;
use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use domain::money::KwhError;
use domain::order::OrderState;
use serde::Deserialize;
use service::purchase::{AmountError, BuyError, Buyer, LookupError, OrderRefused};
use store::campus::MeterInfo;
use store::orders::Order;

/// Preset amounts on the order page, kWh.
const PRESETS_KWH: [u32; 5] = [10, 20, 50, 100, 200];

/// An order state in words.
pub fn state_label(l: Lang, s: OrderState) -> String {
    l.t(match Some(s) {
        Some(OrderState::Unpaid) => "order-state-unpaid",
        Some(OrderState::Charging) => "order-state-charging",
        Some(OrderState::Delayed) => "order-state-delayed",
        Some(OrderState::Completed) => "order-state-completed",
        Some(OrderState::Closed) => "order-state-closed",
        Some(OrderState::Refunding) => "order-state-refunding",
        Some(OrderState::Refunded) => "order-state-refunded",
        None => "unknown",
    })
}

fn meter_place(l: Lang, m: &MeterInfo) -> String {
    super::room_place(
        l,
        (&m.area_name_zh, &m.area_name_en),
        (&m.building_name_zh, &m.building_name_en),
        &m.room,
        " · ",
    )
}

/// `GET /buy`: bound meters, or area + meter number of any meter.
pub async fn page(State(state): State<AppState>, ctx: Ctx) -> PageResult {
    buy_page(&state, &ctx, None, None).await
}

/// The buy page; after a failed look-up it keeps the area and number typed.
async fn buy_page(
    state: &AppState,
    ctx: &Ctx,
    error: Option<String>,
    typed: Option<(i64, &str)>,
) -> PageResult {
    let l = ctx.l;
    let mut bound = store::students::bindings(state.db(), ctx.student.id).await?;
    super::sort_meters(&mut bound);
    let areas = store::campus::areas(state.db()).await?;
    html(&BuyPage {
        l,
        shell: Shell::new(l, "buy-title", Some(&ctx.student), Tab::Buy, "/buy"),
        error,
        bound: bound
            .iter()
            .map(|m| BoundRow {
                area_id: m.area_id.get(),
                address: m.address.clone(),
                place: super::overview::place(l, m),
                is_default: m.is_default,
                remaining: energy_or_dash(m.remaining_centikwh),
            })
            .collect(),
        areas: areas
            .iter()
            .map(|a| AreaOption {
                id: a.id.get(),
                name: area_name(l, &a.name_zh, &a.name_en).to_owned(),
                selected: typed.is_some_and(|(id, _)| id == a.id.get()),
            })
            .collect(),
        meter: typed.map(|(_, m)| m.to_owned()).unwrap_or_default(),
    })
}

/// The buy page.
#[derive(Template)]
#[template(path = "buy.html")]
struct BuyPage<'a> {
    l: Lang,
    shell: Shell<'a>,
    error: Option<String>,
    bound: Vec<BoundRow>,
    areas: Vec<AreaOption>,
    meter: String,
}

/// A bound meter on the buy page.
struct BoundRow {
    area_id: i64,
    address: String,
    place: String,
    is_default: bool,
    remaining: String,
}

/// An area in a picker.
pub(super) struct AreaOption {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) selected: bool,
}

/// The meter chosen for an order.
#[derive(Debug, Deserialize)]
pub struct MeterQuery {
    area_id: i64,
    meter: String,
}

/// `GET /buy/order?area_id=…&meter=…`: the order page.
pub async fn order_page(
    State(state): State<AppState>,
    ctx: Ctx,
    ClientIp(ip): ClientIp,
    Query(q): Query<MeterQuery>,
) -> PageResult {
    let buyer = Buyer {
        student_id: ctx.student.id,
        ip: &ip,
    };
    match service::purchase::find_meter(state.service(), buyer, q.area_id, &q.meter).await {
        Ok(found) => order_form(&state, &ctx, &found.shown, None, "20", "").await,
        Err(e) => lookup_failed(&state, &ctx, e, q.area_id, &q.meter).await,
    }
}

/// The buy page again after a failed look-up, with the area and the number
/// as the student chose and typed them (issue 11 item 8).
async fn lookup_failed(
    state: &AppState,
    ctx: &Ctx,
    e: LookupError,
    area_id: i64,
    typed: &str,
) -> PageResult {
    let key = match e {
        LookupError::NotTwelveDigits(_) => "bind-not-12-digits",
        LookupError::Throttled => "buy-throttled",
        LookupError::NoSuchMeter => "buy-no-such-meter",
        LookupError::Store(e) => return Err(e.into()),
    };
    buy_page(state, ctx, Some(ctx.l.t(key)), Some((area_id, typed))).await
}

/// The most kWh one order may have (shown on the form; the service checks it).
fn order_max_kwh(state: &AppState, m: &MeterInfo) -> u32 {
    service::purchase::order_kwh_max(state.service(), m)
}

async fn order_form(
    state: &AppState,
    ctx: &Ctx,
    m: &MeterInfo,
    error: Option<String>,
    chosen: &str,
    other: &str,
) -> PageResult {
    let l = ctx.l;
    let tz = super::campus_tz(state);
    // Campus policy (issue 14 item 6): a scheduled change of this meter's price.
    let price_next = store::policy::next_change(
        state.db(),
        m.id,
        store::now_ms(),
        m.unit_price_centifen_per_kwh,
    )
    .await?
    .map(|(p, at)| super::price_change_text(l, p, at, tz));
    html(&OrderPage {
        l,
        shell: Shell::new(l, "order-title", Some(&ctx.student), Tab::Buy, "/buy").with_script(),
        place: meter_place(l, m),
        remaining: energy_or_dash(m.remaining_centikwh),
        remaining_at: m
            .remaining_at_ms
            .map(|t| fmt_time(t, tz))
            .unwrap_or_default(),
        price: fmt_price(m.unit_price_centifen_per_kwh),
        price_next,
        presets: PRESETS_KWH
            .iter()
            .map(|&p| Preset {
                kwh: p,
                checked: chosen == p.to_string(),
                amount: price_of(m, p).map(|f| f.to_string()).unwrap_or_default(),
            })
            .collect(),
        submit: {
            let amount = PRESETS_KWH
                .iter()
                .find(|p| chosen == p.to_string())
                .copied()
                .or_else(|| other.trim().parse().ok())
                .and_then(|k| Some((k, price_of(m, k)?)));
            match amount {
                Some((k, fen)) => l.t2("order-submit-amount", "kwh", k, "yuan", fen.to_string()),
                None => l.t("buy"),
            }
        },
        submit_template: l.t2("order-submit-amount", "kwh", "{kwh}", "yuan", "{yuan}"),
        price_centifen: m.unit_price_centifen_per_kwh.centifen_per_kwh(),
        other_checked: chosen == "other",
        other: other.to_owned(),
        error,
        max_kwh: order_max_kwh(state, m),
        m,
    })
}

/// The order page.
#[derive(Template)]
#[template(path = "order.html")]
struct OrderPage<'a> {
    l: Lang,
    shell: Shell<'a>,
    m: &'a MeterInfo,
    place: String,
    remaining: String,
    remaining_at: String,
    price: String,
    /// A scheduled change: "自 12月1日起 0.60 元/kWh".
    price_next: Option<String>,
    presets: Vec<Preset>,
    other_checked: bool,
    other: String,
    error: Option<String>,
    max_kwh: u32,
    /// The button: "购电 50 kWh · ¥26.50".
    submit: String,
    /// The same with `{kwh}` and `{yuan}` for app.js to fill as the student types.
    submit_template: String,
    /// For app.js: 0.0001 元 per kWh.
    price_centifen: i64,
}

/// A preset amount.
struct Preset {
    kwh: u32,
    checked: bool,
    /// Its price, yuan (`26.50`).
    amount: String,
}

/// What `kwh` whole kWh cost at this meter's price (rounded half up to the
/// fen, as the order will be).
fn price_of(m: &MeterInfo, kwh: u32) -> Option<domain::Fen> {
    let k = domain::WholeKwh::new(u64::from(kwh), u32::MAX).ok()?;
    Some(m.unit_price_centifen_per_kwh.amount_for(k))
}

/// The order form.
#[derive(Debug, Deserialize)]
pub struct OrderForm {
    csrf: String,
    area_id: i64,
    meter: String,
    kwh: Option<String>,
    other: Option<String>,
}
csrf_forms!(OrderForm);

/// `POST /buy/order`: creates an unpaid order and goes to payment.
pub async fn create_order(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Acting(Posted { ctx, form: f }): Acting<OrderForm>,
) -> PageResult {
    let l = ctx.l;
    let buyer = Buyer {
        student_id: ctx.student.id,
        ip: &ip,
    };
    // Exactly one amount is selected: the ticked tile. Typing an amount
    // ticks "other" (app.js), and tapping a tile clears what was typed, so
    // the highlighted amount, the button's text and the order agree.
    let chosen = f.kwh.as_deref().unwrap_or("other");
    let other = f.other.as_deref().unwrap_or("");
    let typed = if chosen == "other" { other } else { chosen };
    let svc = state.service();
    let (shown, why) =
        match service::purchase::order_for_student(svc, buyer, f.area_id, &f.meter, typed).await {
            Ok(order) => return see(&format!("/orders/{}/pay", order.id.get())),
            // The form came from an order page that found the meter.
            Err(BuyError::Lookup(LookupError::NoSuchMeter)) => return Err(PageError::NotFound),
            Err(BuyError::Lookup(e)) => {
                return lookup_failed(&state, &ctx, e, f.area_id, &f.meter).await;
            }
            Err(BuyError::Store(e)) => return Err(e.into()),
            Err(BuyError::Refused { shown, why }) => (shown, why),
        };
    let msg = match why {
        OrderRefused::Amount(AmountError::Empty) => l.t("order-empty"),
        OrderRefused::Amount(AmountError::NotANumber) => l.t("order-not-a-number"),
        OrderRefused::Amount(AmountError::Kwh(KwhError::NotWhole)) => l.t("order-not-whole"),
        OrderRefused::Amount(AmountError::Kwh(KwhError::TooSmall)) => l.t("order-too-small"),
        OrderRefused::Amount(AmountError::Kwh(KwhError::TooLarge { max })) => {
            l.t1("order-too-large", "max", max)
        }
        OrderRefused::TooLarge { max } => l.t1("order-too-large", "max", max),
        OrderRefused::HoardingLimit { room } => l.t1("order-hoarding", "room", room),
        OrderRefused::TooManyUnpaid { max } => l.t1("order-too-many-unpaid", "max", max),
        OrderRefused::MeterUnpaidLimit { max } => l.t1("order-meter-unpaid-limit", "max", max),
        OrderRefused::Retired => l.t("order-meter-retired"),
    };
    order_form(&state, &ctx, &shown, Some(msg), "other", other).await
}

async fn my_order(state: &AppState, student: &CurrentStudent, id: i64) -> PageResult<Order> {
    store::students::order(state.db(), student.id, id)
        .await?
        .ok_or(PageError::NotFound)
}

/// `GET /orders/{id}/pay`: the payment page ("确认支付").
pub async fn pay_page(State(state): State<AppState>, ctx: Ctx, PathId(id): PathId) -> PageResult {
    let l = ctx.l;
    let o = my_order(&state, &ctx.student, id).await?;
    let now = store::now_ms();
    if o.state != OrderState::Unpaid || o.expires_at_ms <= now {
        return see(&format!("/orders/{}", o.id.get()));
    }
    let m = store::campus::meter_by_id(state.db(), o.meter_id).await?;
    html(&PayPage {
        l,
        shell: ctx.shell("pay-title", Tab::Buy),
        place: m.as_ref().map(|m| meter_place(l, m)).unwrap_or_default(),
        amount: o.amount_fen,
        deadline: pay_deadline(l, o.expires_at_ms, now, super::campus_tz(&state)),
        o: &o,
    })
}

/// The payment page.
#[derive(Template)]
#[template(path = "pay.html")]
struct PayPage<'a> {
    l: Lang,
    shell: Shell<'a>,
    o: &'a Order,
    place: String,
    amount: domain::Fen,
    /// "请在 07:36 前支付".
    deadline: String,
}

/// What starting a payment led to (when the browser is not sent on).
#[derive(Template)]
#[template(path = "pay_started.html")]
struct PayStarted<'a> {
    l: Lang,
    shell: Shell<'a>,
    done: String,
    outcome: PayOutcome,
}

/// See [`PayStarted`].
enum PayOutcome {
    /// Payment did not start: why.
    Failed(String),
    /// Inside WeChat: the bridge's parameters (JSON).
    Bridge(String),
}

/// `POST /orders/{id}/pay`: starts the WeChat payment; in the demo the
/// sandbox cashier takes the browser, inside WeChat the bridge does.
pub async fn pay(
    State(state): State<AppState>,
    PathId(id): PathId,
    Acting(Posted { ctx, .. }): Acting<CsrfOnly>,
) -> PageResult {
    let l = ctx.l;
    let o = my_order(&state, &ctx.student, id).await?;
    let done = format!("/orders/{}", o.id.get());
    let outcome = match payments::start_wechat_payment(&state, &o, &ctx.student.openid).await {
        Ok(started) => {
            // Demo: the sandbox cashier takes the browser and returns it here.
            if let Some(link) = payments::cashier_link(&started, &done) {
                return see(&link);
            }
            PayOutcome::Bridge(serde_json::to_string(&started.pay_params).unwrap_or_default())
        }
        Err(PaymentError::AlreadyPaid) => return see(&done),
        Err(e) => PayOutcome::Failed(match e {
            PaymentError::Unavailable => l.t("pay-unavailable"),
            PaymentError::NotPayable | PaymentError::AlreadyPaid => l.t("pay-not-payable"),
            PaymentError::Expired => l.t("pay-expired"),
            PaymentError::Provider(ref err) => {
                tracing::warn!(order.id = o.id.get(), error = %err, "payment start failed");
                l.t("pay-provider-failed")
            }
            PaymentError::Store(err) => return Err(err.into()),
        }),
    };
    let shell = Shell::new(l, "pay-title", Some(&ctx.student), Tab::Buy, &done);
    let shell = match outcome {
        PayOutcome::Bridge(_) => shell.with_script(),
        PayOutcome::Failed(_) => shell,
    };
    html(&PayStarted {
        l,
        shell,
        done,
        outcome,
    })
}

/// `POST /orders/{id}/cancel`: the student cancels an unpaid order.
pub async fn cancel(
    State(state): State<AppState>,
    PathId(id): PathId,
    Posted { ctx, .. }: Posted<CsrfOnly>,
) -> PageResult {
    let o = my_order(&state, &ctx.student, id).await?;
    if o.state == OrderState::Unpaid {
        // Closed at WeChat first, so another tab cannot still pay it; a
        // cancel racing a payment loses cleanly and the order shows as paid.
        match crate::payments::cancel_order(&state, &o).await {
            Ok(c) if c.state == OrderState::Closed => {
                return see("/records?cancelled=1");
            }
            Ok(_) => {}
            Err(e) => tracing::info!(order.id = o.id.get(), error = %e, "cancel refused"),
        }
    }
    see("/records")
}

/// `GET /orders/{id}`: the payment-success / order status page; follows the
/// order live (charging → completed) through `status.json`.
pub async fn order_status_page(
    State(state): State<AppState>,
    ctx: Ctx,
    PathId(id): PathId,
) -> PageResult {
    let l = ctx.l;
    let o = my_order(&state, &ctx.student, id).await?;
    let m = store::campus::meter_by_id(state.db(), o.meter_id).await?;
    let st = Some(o.state);
    let now = store::now_ms();
    html(&OrderStatusPage {
        l,
        shell: ctx.shell("order-detail-title", Tab::Buy).with_script(),
        place: m.as_ref().map(|m| meter_place(l, m)).unwrap_or_default(),
        amount: o.amount_fen,
        paid: st.is_some_and(OrderState::is_paid),
        completed: st == Some(OrderState::Completed),
        // Nothing is in progress for an unpaid order: no spinner.
        final_state: matches!(
            st,
            Some(
                OrderState::Unpaid
                    | OrderState::Completed
                    | OrderState::Closed
                    | OrderState::Refunded
            )
        ),
        payable: st == Some(OrderState::Unpaid) && o.expires_at_ms > now,
        deadline: pay_deadline(l, o.expires_at_ms, now, super::campus_tz(&state)),
        state_label: state_label(l, o.state),
        remaining: energy_or_dash(m.as_ref().and_then(|m| m.remaining_centikwh)),
        o: &o,
    })
}

/// The order status page.
#[derive(Template)]
#[template(path = "order_status.html")]
struct OrderStatusPage<'a> {
    l: Lang,
    shell: Shell<'a>,
    o: &'a Order,
    place: String,
    amount: domain::Fen,
    paid: bool,
    completed: bool,
    final_state: bool,
    payable: bool,
    deadline: String,
    state_label: String,
    remaining: String,
}

/// `GET /orders/{id}/status.json`: `{"state": "...", "remaining_kwh": "12.34"}`.
pub async fn order_status_json(
    State(state): State<AppState>,
    student: CurrentStudent,
    PathId(id): PathId,
) -> PageResult {
    let o = my_order(&state, &student, id).await?;
    let m = store::campus::meter_by_id(state.db(), o.meter_id).await?;
    let remaining = m.and_then(|m| m.remaining_centikwh).map(|r| r.to_string());
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({
            "state": o.state,
            "remaining_kwh": remaining,
            "completed_at_ms": o.completed_at_ms,
        })),
    )
        .into_response())
}
