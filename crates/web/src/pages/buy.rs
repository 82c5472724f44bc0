//! Buying (S10–S11): pick a bound meter or type one, the order page with
//! presets and a whole-kWh "other amount", payment (WeixinJSBridge, or the
//! sandbox cashier in the demo) and the success page that follows the order
//! live until the meter confirms.

use super::bind::ClientIp;
use super::layout::{Shell, Tab, render};
use super::{
    CsrfField, Esc, PageError, PageResult, area_name, assets, fmt_price, fmt_time, kwh, parse_id,
};
use crate::AppState;
use crate::i18n::Lang;
use crate::payments::{self, PaymentError};
use crate::session::CurrentStudent;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::{Form, Json};
use domain::order::OrderState;
use serde::Deserialize;
use std::fmt::Write as _;
use store::campus::MeterInfo;
use store::orders::Order;

/// Preset amounts on the order page, kWh.
const PRESETS_KWH: [u32; 5] = [10, 20, 50, 100, 200];

/// An order state in words.
pub fn state_label(l: Lang, s: OrderState) -> &'static str {
    match s {
        OrderState::Unpaid => l.t("未支付", "Unpaid"),
        OrderState::Charging => l.t("加电中", "Charging"),
        OrderState::Delayed => l.t("延迟加电", "Delayed"),
        OrderState::Completed => l.t("已完成", "Completed"),
        OrderState::Closed => l.t("已关闭", "Closed"),
        OrderState::Refunding => l.t("退款中", "Refunding"),
        OrderState::Refunded => l.t("已退款", "Refunded"),
    }
}

fn meter_place(l: Lang, m: &MeterInfo) -> String {
    format!(
        "{} · {} {}",
        area_name(l, &m.area_name_zh, &m.area_name_en),
        area_name(l, &m.building_name_zh, &m.building_name_en),
        m.room
    )
}

fn shell<'a>(l: Lang, title: &'a str, s: &'a CurrentStudent, here: &'a str) -> Shell<'a> {
    Shell {
        lang: l,
        title,
        student: Some(s),
        tab: Tab::Buy,
        here,
    }
}

/// `GET /buy`: bound meters, or area + meter number of any meter.
pub async fn page(
    State(state): State<AppState>,
    lang: Lang,
    student: CurrentStudent,
) -> PageResult {
    buy_page(&state, lang, &student, None).await
}

async fn buy_page(
    state: &AppState,
    lang: Lang,
    student: &CurrentStudent,
    error: Option<&str>,
) -> PageResult {
    let l = lang;
    let bound = store::students::bindings(state.db(), student.id).await?;
    let areas = store::campus::areas(state.db()).await?;
    let mut b = String::with_capacity(4096);
    if let Some(e) = error {
        let _ = write!(b, "<div class=errbox id=buy-error>{}</div>", Esc(e));
    }
    let _ = write!(
        b,
        "<div class=card><h2>{}</h2>",
        l.t("已绑定电表", "My meters")
    );
    if bound.is_empty() {
        let _ = write!(
            b,
            "<p class=muted>{} <a href=\"/bind\">{}</a></p>",
            l.t("还没有绑定电表。", "No meter bound yet."),
            l.t("绑定电表", "Bind a meter")
        );
    }
    for m in &bound {
        let _ = write!(
            b,
            "<a class=row href=\"/buy/order?area_id={}&amp;meter={}\"><span>{}{}</span><span class=muted>{} kWh ›</span></a>",
            m.area_id,
            Esc(&m.address),
            Esc(&super::overview::place(l, m)),
            if m.is_default {
                format!(" <span class=state>{}</span>", l.t("默认", "default"))
            } else {
                String::new()
            },
            m.remaining_centikwh
                .map_or_else(|| "—".to_owned(), |r| kwh(r).to_string()),
        );
    }
    let _ = write!(
        b,
        "</div><form class=card method=get action=\"/buy/order\"><h2>{}</h2><p class=muted>{}</p>\
         <label for=area>{}</label><select id=area name=area_id>",
        l.t("手工输入", "Enter a meter"),
        l.t(
            "为未绑定的电表（例如同学的）购电。",
            "Buy for a meter you have not bound (a friend's, say)."
        ),
        l.t("所属区域", "Area (school)"),
    );
    for a in &areas {
        let _ = write!(
            b,
            "<option value=\"{}\">{}</option>",
            a.id,
            Esc(area_name(l, &a.name_zh, &a.name_en))
        );
    }
    let _ = write!(
        b,
        "</select><label for=meter>{}</label>\
         <input type=text id=meter name=meter inputmode=numeric maxlength=20 required placeholder=\"{}\">\
         <button class=btn type=submit>{}</button></form>",
        l.t("电表编号", "Meter number"),
        l.t("12 位数字", "12 digits"),
        l.t("下一步", "Next"),
    );
    Ok(render(
        &shell(l, l.t("购电缴费", "Buy electricity"), student, "/buy"),
        &b,
    )
    .into_response())
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
    lang: Lang,
    student: CurrentStudent,
    ClientIp(ip): ClientIp,
    Query(q): Query<MeterQuery>,
) -> PageResult {
    let m = match lookup(&state, &student, &ip, q.area_id, &q.meter).await? {
        Lookup::Found(m, shown) => (m, shown),
        Lookup::Throttled => {
            return buy_page(&state, lang, &student, Some(throttled_msg(lang))).await;
        }
        Lookup::Missing => {
            let msg = lang.t(
                "未找到该电表，请检查所属区域和电表编号。",
                "No such meter in this area; check the area and the meter number.",
            );
            return buy_page(&state, lang, &student, Some(msg)).await;
        }
    };
    order_form(&state, lang, &student, &m.1, None, "20", "").await
}

/// Lookups of meters the student is not bound to, per student per hour
/// (a real payer buys for a roommate or two) and per client address per
/// hour (a campus NAT holds many students).
pub const LOOKUPS_PER_STUDENT_HOUR: i64 = 20;
/// See [`LOOKUPS_PER_STUDENT_HOUR`].
pub const LOOKUPS_PER_IP_HOUR: i64 = 300;

enum Lookup {
    /// The meter, and what this student may be shown of it.
    Found(Box<MeterInfo>, Box<MeterInfo>),
    Missing,
    Throttled,
}

/// Resolves a meter number for buying (issue 10 item 6). A binder sees
/// everything; anyone else — buying for someone — sees only what a payer
/// must (area, building, the room masked, no balance), and such lookups
/// are throttled per student and per address, found or not, so the buy
/// page cannot be used to enumerate rooms and balances.
async fn lookup(
    state: &AppState,
    student: &CurrentStudent,
    ip: &str,
    area_id: i64,
    meter: &str,
) -> store::Result<Lookup> {
    let Ok(address) = domain::MeterAddress::parse(meter) else {
        return Ok(Lookup::Missing);
    };
    let bound = store::students::bindings(state.db(), student.id)
        .await?
        .iter()
        .any(|b| b.address == address.as_str() && b.area_id == area_id);
    if !bound {
        let now = store::now_ms();
        let (mine, from_ip) = store::students::record_lookup(
            state.db(),
            student.id,
            address.as_str(),
            ip,
            now - 3_600_000,
            now,
        )
        .await?;
        if mine > LOOKUPS_PER_STUDENT_HOUR || from_ip > LOOKUPS_PER_IP_HOUR {
            tracing::warn!(student.id = student.id, "meter lookups throttled");
            return Ok(Lookup::Throttled);
        }
    }
    let Some(m) = find_meter(state, area_id, address.as_str()).await? else {
        return Ok(Lookup::Missing);
    };
    let shown = if bound {
        m.clone()
    } else {
        MeterInfo {
            room: mask_room(&m.room),
            remaining_centikwh: None,
            remaining_at_ms: None,
            ..m.clone()
        }
    };
    Ok(Lookup::Found(Box::new(m), Box::new(shown)))
}

/// `402` → `4**`: the floor helps a payer check the building, no more.
fn mask_room(room: &str) -> String {
    let mut cs = room.chars();
    cs.next()
        .map(|c| std::iter::once(c).chain(cs.map(|_| '*')).collect())
        .unwrap_or_default()
}

fn throttled_msg(lang: Lang) -> &'static str {
    lang.t(
        "查询电表过于频繁，请稍后再试，或先绑定该电表。",
        "Too many meter look-ups; try again later, or bind the meter first.",
    )
}

/// The most kWh one order may have: the area's limit, and the campus-wide
/// one of the payment settings when it is stricter.
fn order_max_kwh(state: &AppState, m: &MeterInfo) -> u32 {
    let area = u32::try_from(m.order_kwh_max).unwrap_or(u32::MAX);
    state
        .payments()
        .map_or(area, |p| area.min(p.settings.order_kwh_max))
}

async fn find_meter(
    state: &AppState,
    area_id: i64,
    meter: &str,
) -> store::Result<Option<MeterInfo>> {
    let Ok(address) = domain::MeterAddress::parse(meter) else {
        return Ok(None);
    };
    store::campus::meter_by_address(state.db(), area_id, address.as_str()).await
}

async fn order_form(
    state: &AppState,
    lang: Lang,
    student: &CurrentStudent,
    m: &MeterInfo,
    error: Option<&str>,
    chosen: &str,
    other: &str,
) -> PageResult {
    let l = lang;
    let tz = super::campus_tz(state);
    let mut b = String::with_capacity(4096);
    let _ = write!(
        b,
        "<div class=card id=order-meter><div class=row><span>{}</span><span>{}</span></div>\
         <div class=row><span>{}</span><span>{}</span></div>\
         <div class=row><span>{}</span><span>{} kWh <span class=muted>{}</span></span></div>\
         <div class=row><span>{}</span><span id=unit-price>{} {}</span></div></div>",
        l.t("房间", "Room"),
        Esc(&meter_place(l, m)),
        l.t("电表编号", "Meter number"),
        Esc(&m.address),
        l.t("剩余电量", "Remaining"),
        m.remaining_centikwh
            .map_or_else(|| "—".to_owned(), |r| kwh(r).to_string()),
        m.remaining_at_ms
            .map(|t| fmt_time(t, &tz))
            .unwrap_or_default(),
        l.t("电价", "Unit price"),
        fmt_price(m.unit_price_centifen_per_kwh),
        l.t("元/kWh", "yuan/kWh"),
    );
    let _ = write!(
        b,
        "<form class=card method=post action=\"/buy/order\" id=order-form>{}\
         <input type=hidden name=area_id value=\"{}\"><input type=hidden name=meter value=\"{}\">\
         <h2>{}</h2><div class=presets>",
        CsrfField(&student.csrf_token),
        m.area_id,
        Esc(&m.address),
        l.t("购电电量", "Amount"),
    );
    for p in PRESETS_KWH {
        let v = p.to_string();
        let _ = write!(
            b,
            "<label><input type=radio name=kwh value=\"{v}\"{}><span>{v} kWh</span></label>",
            if chosen == v { " checked" } else { "" }
        );
    }
    let _ = write!(
        b,
        "<label><input type=radio name=kwh value=other id=kwh-other{}><span>{}</span></label></div>\
         <label for=other>{}</label>\
         <input type=text id=other name=other inputmode=numeric maxlength=6 value=\"{}\" placeholder=\"{}\">",
        if chosen == "other" { " checked" } else { "" },
        l.t("其它", "Other"),
        l.t("其它电量（整数 kWh）", "Other amount (whole kWh)"),
        Esc(other),
        l.t("只能输入整数", "whole numbers only"),
    );
    if let Some(e) = error {
        let _ = write!(b, "<p class=field-msg id=kwh-error>{}</p>", Esc(e));
    }
    let _ = write!(
        b,
        "<p class=muted>{} {} kWh</p><button class=btn type=submit id=order-submit>{}</button></form>",
        l.t("单笔最多", "At most"),
        order_max_kwh(state, m),
        l.t("购电", "Buy"),
    );
    Ok(render(&shell(l, l.t("购电订单", "Order"), student, "/buy"), &b).into_response())
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

/// `POST /buy/order`: creates an unpaid order and goes to payment.
pub async fn create_order(
    State(state): State<AppState>,
    lang: Lang,
    student: CurrentStudent,
    ClientIp(ip): ClientIp,
    Form(f): Form<OrderForm>,
) -> PageResult {
    let l = lang;
    student.check_csrf(&f.csrf)?;
    if !student.may_act() {
        return Err(PageError::Snapshot);
    }
    let (m, shown) = match lookup(&state, &student, &ip, f.area_id, &f.meter).await? {
        Lookup::Found(m, shown) => (*m, *shown),
        Lookup::Throttled => {
            return buy_page(&state, lang, &student, Some(throttled_msg(lang))).await;
        }
        Lookup::Missing => return Err(PageError::NotFound),
    };
    let chosen = f.kwh.as_deref().unwrap_or("other");
    let other = f.other.as_deref().unwrap_or("");
    // A typed amount wins when the student typed one (they may not have
    // ticked "other" first).
    let input = if chosen == "other" || !other.trim().is_empty() {
        other
    } else {
        chosen
    };
    let max = order_max_kwh(&state, &m);
    let kwh_v = match domain::WholeKwh::parse(input, max) {
        Ok(k) => k,
        Err(e) => {
            let msg = match e {
                domain::money::KwhError::NotWhole => l
                    .t(
                        "请输入整数电量（如 30），不能有小数。",
                        "Enter a whole number of kWh (such as 30), no decimals.",
                    )
                    .to_owned(),
                domain::money::KwhError::TooSmall => {
                    l.t("至少购买 1 kWh。", "Buy at least 1 kWh.").to_owned()
                }
                domain::money::KwhError::TooLarge { max } => match l {
                    Lang::Zh => format!("单笔最多购买 {max} kWh。"),
                    Lang::En => format!("At most {max} kWh per order."),
                },
            };
            return order_form(&state, lang, &student, &shown, Some(&msg), "other", other).await;
        }
    };
    let req = store::orders::NewOrder {
        area_id: m.area_id,
        meter_address: &m.address,
        student_id: Some(student.id),
        kwh: kwh_v,
        channel: domain::order::Channel::Wechat,
        operator: None,
    };
    let order = match store::orders::create(state.db(), &req, store::now_ms()).await {
        Ok(o) => o,
        Err(store::orders::CreateError::Store(e)) => return Err(e.into()),
        Err(store::orders::CreateError::NoSuchMeter) => return Err(PageError::NotFound),
        Err(store::orders::CreateError::TooLarge { max }) => {
            let msg = match l {
                Lang::Zh => format!("单笔最多购买 {max} kWh。"),
                Lang::En => format!("At most {max} kWh per order."),
            };
            return order_form(&state, lang, &student, &shown, Some(&msg), "other", other).await;
        }
        Err(store::orders::CreateError::HoardingLimit { room, .. }) => {
            let msg = match l {
                Lang::Zh => format!("电表内电量已接近上限，本次最多可购买 {room} kWh。"),
                Lang::En => {
                    format!("The meter is near its limit; you can buy at most {room} kWh now.")
                }
            };
            return order_form(&state, lang, &student, &shown, Some(&msg), "other", other).await;
        }
        Err(store::orders::CreateError::TooManyUnpaid { max }) => {
            let msg = match l {
                Lang::Zh => format!("您已有 {max} 笔未支付的订单，请先支付或取消。"),
                Lang::En => {
                    format!("You already have {max} unpaid orders; pay or cancel one first.")
                }
            };
            return order_form(&state, lang, &student, &m, Some(&msg), "other", other).await;
        }
        Err(store::orders::CreateError::MeterUnpaidLimit { max }) => {
            let msg = match l {
                Lang::Zh => format!("该电表已有 {max} 笔未支付的订单，请先支付或取消。"),
                Lang::En => {
                    format!("This meter already has {max} unpaid orders; pay or cancel one first.")
                }
            };
            return order_form(&state, lang, &student, &m, Some(&msg), "other", other).await;
        }
    };
    tracing::info!(
        student.id = student.id,
        order.id = order.id.get(),
        meter.id = m.id,
        kwh = order.kwh.get(),
        "order created"
    );
    Ok(Redirect::to(&format!("/orders/{}/pay", order.id)).into_response())
}

async fn my_order(state: &AppState, student: &CurrentStudent, id: &str) -> PageResult<Order> {
    let id = parse_id(id)?;
    store::students::order(state.db(), student.id, id)
        .await?
        .ok_or(PageError::NotFound)
}

fn order_summary(l: Lang, o: &Order, m: Option<&MeterInfo>) -> String {
    let mut b = String::with_capacity(1024);
    let _ = write!(
        b,
        "<div class=card id=order-summary><div class=row><span>{}</span><span>{}</span></div>\
         <div class=row><span>{}</span><span>{}</span></div>\
         <div class=row><span>{}</span><span>{} kWh</span></div>\
         <div class=row><span>{}</span><span class=big>¥{}</span></div></div>",
        l.t("订单号", "Order"),
        Esc(&o.out_trade_no),
        l.t("房间", "Room"),
        Esc(&m.map(|m| meter_place(l, m)).unwrap_or_default()),
        l.t("电量", "Energy"),
        o.kwh,
        l.t("金额", "Amount"),
        o.amount_fen,
    );
    b
}

/// `GET /orders/{id}/pay`: the payment page ("确认支付").
pub async fn pay_page(
    State(state): State<AppState>,
    lang: Lang,
    student: CurrentStudent,
    Path(id): Path<String>,
) -> PageResult {
    let l = lang;
    let o = my_order(&state, &student, &id).await?;
    if o.state != OrderState::Unpaid || o.expires_at_ms <= store::now_ms() {
        return Ok(Redirect::to(&format!("/orders/{}", o.id)).into_response());
    }
    let m = store::campus::meter_by_id(state.db(), o.meter_id.get()).await?;
    let mut b = order_summary(l, &o, m.as_ref());
    let left_min = (o.expires_at_ms - store::now_ms()) / 60_000;
    let _ = write!(
        b,
        "<form method=post action=\"/orders/{id}/pay\">{csrf}<button class=btn type=submit id=pay-confirm>{pay}</button></form>\
         <form method=post action=\"/orders/{id}/cancel\">{csrf}<button class=\"btn sec\" type=submit id=pay-cancel>{cancel}</button></form>\
         <p class=muted>{left}</p>",
        id = o.id,
        csrf = CsrfField(&student.csrf_token),
        pay = l.t("确认支付", "Pay now"),
        cancel = l.t("取消订单", "Cancel order"),
        left = match l {
            Lang::Zh => format!("请在 {left_min} 分钟内支付，超时订单将自动关闭。"),
            Lang::En => format!("Pay within {left_min} minutes; the order closes after that."),
        },
    );
    let here = format!("/orders/{}/pay", o.id);
    Ok(render(&shell(l, l.t("支付", "Payment"), &student, &here), &b).into_response())
}

/// CSRF-only form.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// `POST /orders/{id}/pay`: starts the WeChat payment; in the demo the
/// sandbox cashier takes the browser, inside WeChat the bridge does.
pub async fn pay(
    State(state): State<AppState>,
    lang: Lang,
    student: CurrentStudent,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> PageResult {
    let l = lang;
    student.check_csrf(&f.csrf)?;
    if !student.may_act() {
        return Err(PageError::Snapshot);
    }
    let o = my_order(&state, &student, &id).await?;
    let done = format!("/orders/{}", o.id);
    let started = match payments::start_wechat_payment(&state, &o, &student.openid).await {
        Ok(p) => p,
        Err(PaymentError::AlreadyPaid) => return Ok(Redirect::to(&done).into_response()),
        Err(e) => {
            let msg = match e {
                PaymentError::Unavailable => l.t(
                    "在线支付暂不可用，请稍后再试或到后勤服务大厅购电。",
                    "Online payment is unavailable; try later or buy at the service hall.",
                ),
                PaymentError::NotPayable | PaymentError::AlreadyPaid => {
                    l.t("该订单已不能支付。", "This order can no longer be paid.")
                }
                PaymentError::Expired => l.t(
                    "订单已过期，请重新下单。",
                    "This order has expired; please place a new one.",
                ),
                PaymentError::Provider(ref err) => {
                    tracing::warn!(order.id = o.id.get(), error = %err, "payment start failed");
                    l.t(
                        "微信支付暂时没有响应，请重试。",
                        "WeChat Pay did not answer; please try again.",
                    )
                }
                PaymentError::Store(err) => return Err(err.into()),
            };
            let b = format!(
                "<div class=errbox id=pay-error>{}</div><a class=btn href=\"{}\">{}</a>",
                Esc(msg),
                done,
                l.t("查看订单", "View order")
            );
            return Ok(
                render(&shell(l, l.t("支付", "Payment"), &student, &done), &b).into_response(),
            );
        }
    };
    // Demo: the sandbox cashier takes the browser and returns it here.
    if let Some(link) = started.cashier_link(&done) {
        return Ok(Redirect::to(&link).into_response());
    }
    let params = serde_json::to_string(&started.pay_params).unwrap_or_default();
    let b = format!(
        "<div class=card><p>{}</p><div id=wxpay data-params=\"{}\" data-done=\"{}\"></div>\
         <button class=btn type=button id=wxpay-btn>{}</button><a class=\"btn sec\" href=\"{}\">{}</a></div>\
         <script src=\"{}\"></script>",
        l.t("正在打开微信支付……", "Opening WeChat Pay…"),
        Esc(&params),
        done,
        l.t("确认支付", "Pay now"),
        done,
        l.t("查看订单", "View order"),
        assets::JS_PATH,
    );
    Ok(render(&shell(l, l.t("支付", "Payment"), &student, &done), &b).into_response())
}

/// `POST /orders/{id}/cancel`: the student cancels an unpaid order.
pub async fn cancel(
    State(state): State<AppState>,
    student: CurrentStudent,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> PageResult {
    student.check_csrf(&f.csrf)?;
    let o = my_order(&state, &student, &id).await?;
    if o.state == OrderState::Unpaid {
        // Closed at WeChat first, so another tab cannot still pay it; a
        // cancel racing a payment loses cleanly and the order shows as paid.
        if let Err(e) = crate::payments::cancel_order(&state, &o).await {
            tracing::info!(order.id = o.id.get(), error = %e, "cancel refused");
        }
    }
    Ok(Redirect::to("/records").into_response())
}

/// `GET /orders/{id}`: the payment-success / order status page; follows the
/// order live (charging → completed) through `status.json`.
pub async fn order_status_page(
    State(state): State<AppState>,
    lang: Lang,
    student: CurrentStudent,
    Path(id): Path<String>,
) -> PageResult {
    let l = lang;
    let o = my_order(&state, &student, &id).await?;
    let m = store::campus::meter_by_id(state.db(), o.meter_id.get()).await?;
    let paid = o.state.is_paid();
    let mut b = String::with_capacity(4096);
    if paid {
        let _ = write!(
            b,
            "<div class=card id=pay-success><p class=big><span class=ok>✔</span> {}</p><p class=muted id=sending-note{}>{}</p></div>",
            l.t("支付成功", "Payment received"),
            if o.state == OrderState::Completed {
                " style=\"display:none\""
            } else {
                ""
            },
            l.t(
                "系统正在把电量下发到电表，完成后会通知您。",
                "The system is sending the energy to the meter; you will be told when it arrives."
            )
        );
    }
    b.push_str(&order_summary(l, &o, m.as_ref()));
    let final_state = matches!(
        o.state,
        OrderState::Completed | OrderState::Closed | OrderState::Refunded
    );
    let _ = write!(
        b,
        "<div class=card id=order-live data-url=\"/orders/{id}/status.json\" data-lang=\"{lang}\" data-state=\"{st}\">\
         <div class=row><span>{sl}</span><span><span id=order-spinner class=spinner{hide}></span> \
         <span id=order-state class=\"state {st}\">{label}</span></span></div>\
         <div class=row><span>{rl}</span><span><span id=order-remaining>{rem}</span> kWh</span></div>\
         <p id=order-done class=ok style=\"display:{done}\">{dl}</p></div>",
        id = o.id,
        lang = l.code(),
        st = Esc(o.state.as_str()),
        sl = l.t("订单状态", "Status"),
        hide = if final_state {
            " style=\"display:none\""
        } else {
            ""
        },
        label = state_label(l, o.state),
        rl = l.t("表内剩余", "Remaining in meter"),
        rem = m
            .as_ref()
            .and_then(|m| m.remaining_centikwh)
            .map_or_else(|| "—".to_owned(), |r| kwh(r).to_string()),
        done = if o.state == OrderState::Completed {
            "block"
        } else {
            "none"
        },
        dl = l.t(
            "电量已成功下发至电表。",
            "The energy has reached the meter."
        ),
    );
    if o.state == OrderState::Unpaid && o.expires_at_ms > store::now_ms() {
        let _ = write!(
            b,
            "<a class=btn href=\"/orders/{}/pay\">{}</a>",
            o.id,
            l.t("去支付", "Pay")
        );
    }
    let _ = write!(
        b,
        "<div class=grid2><a class=\"btn sec\" href=\"/records\">{}</a><a class=\"btn sec\" href=\"/\">{}</a></div>\
         <script src=\"{}\"></script>",
        l.t("购电记录", "Records"),
        l.t("返回首页", "Home"),
        assets::JS_PATH
    );
    let here = format!("/orders/{}", o.id);
    Ok(render(&shell(l, l.t("订单详情", "Order"), &student, &here), &b).into_response())
}

/// `GET /orders/{id}/status.json`: `{"state": "...", "remaining_kwh": "12.34"}`.
pub async fn order_status_json(
    State(state): State<AppState>,
    student: CurrentStudent,
    Path(id): Path<String>,
) -> PageResult {
    let o = my_order(&state, &student, &id).await?;
    let m = store::campus::meter_by_id(state.db(), o.meter_id.get()).await?;
    let remaining = m
        .and_then(|m| m.remaining_centikwh)
        .map(|r| kwh(r).to_string());
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
