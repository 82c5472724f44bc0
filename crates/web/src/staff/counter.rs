//! The cashier's counter sale (issue 13 item 3, S16): pick the meter, sell
//! whole kWh for cash or card into the cashier's open shift, and the 80-mm
//! receipt, which follows the delivery live.
//!
//! The sale form carries a one-time key drawn when the form is shown; the
//! sale claims it in its own transaction (`service::counter`), so a second
//! submission of the same form sells nothing more and shows the same
//! receipt.

use super::meters::{self, Choice, FindQuery, Found, MeterPanel, OrderLine};
use super::{
    Console, CurrentOperator, StaffError, StaffForm, StaffResult, fmt_seconds, html,
    html_with_status,
};
use crate::AppState;
use crate::i18n::Lang;
use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use domain::counter::Tender;
use domain::money::KwhError;
use domain::order::Channel;
use domain::staff::Action;
use serde::Deserialize;
use service::counter::{SaleError, SaleOutcome, SaleRequest, Till};
use store::idempotency::{IdempotencyKey, StoredResponse};
use store::lookup::MeterHit;
use store::orders::CreateError;

/// Query of the counter page: a meter by id, or a look-up.
#[derive(Debug, Default, Deserialize)]
pub struct CounterQuery {
    #[serde(default)]
    meter: String,
    #[serde(flatten)]
    find: FindQuery,
}

/// The sale form.
#[derive(Debug, Deserialize)]
pub struct SaleForm {
    csrf: String,
    #[serde(default)]
    meter_id: String,
    #[serde(default)]
    kwh: String,
    #[serde(default)]
    tender: String,
    #[serde(default)]
    key: String,
}

crate::pages::csrf_forms!(SaleForm);

/// A tender option of the sale form.
struct TenderChoice {
    value: &'static str,
    label: String,
    on: bool,
}

/// The counter page.
#[derive(Template)]
#[template(path = "staff/counter.html")]
struct CounterPage {
    l: Lang,
    frame: super::Frame,
    script: &'static str,
    /// The cashier's open shift, if any.
    shift: Option<i64>,
    areas: Vec<Choice>,
    number: String,
    /// Several meters found: pick one.
    hits: Vec<meters::HitView>,
    meter: Option<MeterPanel>,
    orders: Vec<OrderLine>,
    kwh: String,
    kwh_max: u32,
    tenders: Vec<TenderChoice>,
    key: String,
    error: Option<String>,
}

/// A fresh one-time key for a sale form (128 random bits, hex).
fn fresh_key() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

struct Shown<'a> {
    meter: Option<&'a MeterHit>,
    hits: Vec<MeterHit>,
    find: &'a FindQuery,
    kwh: &'a str,
    tender: Tender,
    key: Option<&'a str>,
    error: Option<String>,
}

async fn render(state: &AppState, op: &CurrentOperator, s: Shown<'_>) -> StaffResult {
    let l = op.l;
    let tz = crate::pages::campus_tz(state);
    let shift = store::shifts::open_for(state.db(), op.operator.id).await?;
    let (meter, orders) = match s.meter {
        Some(h) => (
            Some(meters::panel(state, l, h).await?),
            meters::order_lines(state, l, h.meter_id, 5).await?,
        ),
        None => (None, Vec::new()),
    };
    let failed = s.error.is_some();
    html_with_status(
        &CounterPage {
            l,
            script: super::JS_PATH,
            shift: shift.map(|s| s.id),
            areas: meters::area_choices(state, op, &s.find.area).await?,
            number: s.find.number.clone(),
            hits: s
                .hits
                .iter()
                .take(50)
                .map(|h| meters::HitView::new(l, h, tz))
                .collect(),
            meter,
            orders,
            kwh: s.kwh.to_owned(),
            kwh_max: state.service().order_kwh_max(),
            tenders: Tender::ALL
                .into_iter()
                .map(|t| TenderChoice {
                    value: t.as_str(),
                    label: l.t(tender_key(t)),
                    on: t == s.tender,
                })
                .collect(),
            key: s.key.map_or_else(fresh_key, str::to_owned),
            error: s.error,
            frame: op.frame("staff-counter-title", "/staff/counter"),
        },
        failed,
    )
}

/// The catalog key of a tender's name.
pub fn tender_key(t: Tender) -> &'static str {
    match t {
        Tender::Cash => "staff-counter-cash",
        Tender::Card => "staff-counter-card",
    }
}

/// `GET /staff/counter[?meter=ID | ?area=…&number=… | ?q=…]`.
pub async fn page(
    State(state): State<AppState>,
    Console(op): Console<{ Action::SellAtCounter as u8 }>,
    Query(q): Query<CounterQuery>,
) -> StaffResult {
    let l = op.l;
    let mut shown = Shown {
        meter: None,
        hits: Vec::new(),
        find: &q.find,
        kwh: "",
        tender: Tender::Cash,
        key: None,
        error: None,
    };
    let chosen;
    if let Ok(id) = q.meter.trim().parse::<i64>() {
        let Some(h) = store::lookup::by_id(state.db(), id).await? else {
            shown.error = Some(l.t("staff-lookup-none"));
            return render(&state, &op, shown).await;
        };
        op.require(&state, Action::SellAtCounter, meters::place(&h))
            .await?;
        chosen = h;
        shown.meter = Some(&chosen);
        return render(&state, &op, shown).await;
    }
    match meters::find(&state, &op, &q.find, Action::SellAtCounter).await? {
        Found::Nothing => {}
        Found::Message(m) => shown.error = Some(m),
        Found::Hits(mut h) if h.len() == 1 => {
            chosen = h.remove(0);
            shown.meter = Some(&chosen);
        }
        Found::Hits(h) => shown.hits = h,
    }
    render(&state, &op, shown).await
}

/// Why a sale was refused, in the page language.
fn sale_message(l: Lang, e: &SaleError) -> Option<String> {
    use service::OrderInputError as E;
    Some(match e {
        SaleError::Order(E::Kwh(KwhError::NotWhole)) => l.t("staff-counter-kwh-not-whole"),
        SaleError::Order(E::Kwh(KwhError::TooSmall)) => l.t("staff-counter-kwh-too-small"),
        SaleError::Order(E::Kwh(KwhError::TooLarge { max })) => {
            l.t1("staff-counter-kwh-too-large", "max", *max)
        }
        SaleError::Order(E::Refused(CreateError::TooLarge { max })) => {
            l.t1("staff-counter-kwh-too-large", "max", *max)
        }
        SaleError::Order(E::Refused(CreateError::HoardingLimit { room, .. })) => {
            l.t1("staff-counter-hoarding", "room", *room)
        }
        SaleError::Order(E::Refused(CreateError::NoSuchMeter)) => l.t("staff-lookup-none"),
        SaleError::Order(E::Refused(CreateError::Retired)) => l.t("staff-counter-meter-retired"),
        SaleError::Order(E::Refused(_)) => l.t("staff-counter-refused"),
        SaleError::ShiftClosed => l.t("staff-counter-no-shift"),
        SaleError::KeyReused => l.t("staff-counter-key-reused"),
        SaleError::InvalidOperator => l.t("staff-counter-refused"),
        SaleError::Order(E::Store(_)) | SaleError::Render(_) | SaleError::Store(_) => return None,
    })
}

/// The receipt's address.
fn receipt_path(order_id: i64) -> String {
    format!("/staff/counter/receipts/{order_id}")
}

/// The stored answer of a sale: where its receipt is.
fn answer_of(stored: &StoredResponse) -> Option<i64> {
    serde_json::from_str::<serde_json::Value>(&stored.body)
        .ok()?
        .get("order_id")?
        .as_i64()
}

/// `POST /staff/counter`: sells.
pub async fn sell(
    State(state): State<AppState>,
    f: StaffForm<SaleForm, { Action::SellAtCounter as u8 }>,
) -> StaffResult {
    let StaffForm { op, form } = f;
    let l = op.l;
    let find = FindQuery::default();
    let tender = Tender::parse(&form.tender);
    let mut shown = Shown {
        meter: None,
        hits: Vec::new(),
        find: &find,
        kwh: &form.kwh,
        tender: tender.unwrap_or(Tender::Cash),
        key: Some(&form.key),
        error: None,
    };
    let hit = match form.meter_id.trim().parse::<i64>() {
        Ok(id) => store::lookup::by_id(state.db(), id)
            .await?
            .ok_or("staff-lookup-none"),
        Err(_) => Err("staff-counter-pick-meter"),
    };
    let hit = match hit {
        Ok(h) => h,
        Err(key) => {
            shown.error = Some(l.t(key));
            shown.key = None;
            return render(&state, &op, shown).await;
        }
    };
    // Outside the cashier's areas: 403 and an audit row, nothing sold.
    op.require(&state, Action::SellAtCounter, meters::place(&hit))
        .await?;
    shown.meter = Some(&hit);
    let Some(tender) = tender else {
        shown.error = Some(l.t("staff-counter-pick-tender"));
        return render(&state, &op, shown).await;
    };
    let Ok(key) = IdempotencyKey::parse(form.key.trim()) else {
        shown.error = Some(l.t("staff-counter-form-expired"));
        shown.key = None;
        return render(&state, &op, shown).await;
    };
    let Some(shift) = store::shifts::open_for(state.db(), op.operator.id).await? else {
        shown.error = Some(l.t("staff-counter-no-shift"));
        return render(&state, &op, shown).await;
    };
    let actor = op.actor();
    let req = SaleRequest {
        area_id: hit.area_id.get(),
        meter_address: &hit.address,
        kwh_text: &form.kwh,
        operator: &op.operator.name,
    };
    let till = Till {
        shift_id: shift.id,
        operator_id: op.operator.id,
        tender,
        actor: &actor,
    };
    let render_answer = |order: &store::orders::Order, _: &str, _: &str| {
        Ok(StoredResponse {
            status_code: StatusCode::SEE_OTHER.as_u16(),
            body: serde_json::json!({ "order_id": order.id.get() }).to_string(),
        })
    };
    match service::counter::sell_at_till(
        state.service(),
        req,
        Some(till),
        Some(&key),
        render_answer,
    )
    .await
    {
        Ok(SaleOutcome::Sold { order, .. }) => {
            Ok(Redirect::to(&receipt_path(order.id.get())).into_response())
        }
        Ok(SaleOutcome::Replay(stored)) => match answer_of(&stored) {
            Some(id) => Ok(Redirect::to(&receipt_path(id)).into_response()),
            None => Err(StaffError::Store(store::Error::Corrupt(
                "a stored counter sale answer without an order".to_owned(),
            ))),
        },
        Err(e) => match sale_message(l, &e) {
            Some(m) => {
                shown.error = Some(m);
                render(&state, &op, shown).await
            }
            None => {
                tracing::error!(error = %e, "counter sale failed");
                Err(StaffError::Store(store::Error::Corrupt(e.to_string())))
            }
        },
    }
}

/// The receipt page.
#[derive(Template)]
#[template(path = "staff/receipt.html")]
struct ReceiptPage {
    l: Lang,
    frame: super::Frame,
    script: &'static str,
    order_id: i64,
    no: String,
    meter: String,
    place: String,
    kwh: String,
    amount: String,
    channel: String,
    operator: String,
    at: String,
    state: String,
    state_class: String,
    final_state: bool,
    qr: String,
    shift: Option<i64>,
    labels: Vec<(String, String)>,
}

/// The order states the live receipt can show, with their labels.
const STATES: [&str; 7] = [
    "unpaid",
    "charging",
    "delayed",
    "completed",
    "closed",
    "refunding",
    "refunded",
];

/// The QR code of `text` as an SVG `data:` URI (an `<img>` source; the CSP
/// allows `img-src data:`, so no markup is injected into the page).
fn qr_data_uri(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(160, 160)
        .quiet_zone(true)
        .build();
    Some(format!("data:image/svg+xml,{}", crate::url::encode(&svg)))
}

/// A counter order the operator may read, with its meter.
async fn counter_order(
    state: &AppState,
    op: &CurrentOperator,
    id: i64,
) -> StaffResult<(store::orders::Order, MeterHit)> {
    let Some(o) = store::orders::by_id(state.db(), domain::OrderId::new(id)).await? else {
        return Err(StaffError::NotFound);
    };
    if o.channel != Channel::Counter {
        return Err(StaffError::NotFound);
    }
    let h = store::lookup::by_id(state.db(), o.meter_id.get())
        .await?
        .ok_or(StaffError::NotFound)?;
    op.require(state, Action::ViewOrders, meters::place(&h))
        .await?;
    Ok((o, h))
}

/// `GET /staff/counter/receipts/{order_id}`: the 80-mm receipt.
pub async fn receipt(
    State(state): State<AppState>,
    op: CurrentOperator,
    crate::pages::PathId(id): crate::pages::PathId,
) -> StaffResult {
    let (o, h) = counter_order(&state, &op, id).await?;
    let l = op.l;
    let tz = crate::pages::campus_tz(&state);
    let link = store::shifts::of_order(state.db(), o.id).await?;
    let channel = match link {
        Some((_, t)) => format!(
            "{} · {}",
            l.t("staff-counter-channel-counter"),
            l.t(tender_key(t))
        ),
        None => l.t("staff-counter-channel-counter"),
    };
    let state_name = o.state.as_str();
    html(&ReceiptPage {
        l,
        script: super::JS_PATH,
        order_id: o.id.get(),
        qr: qr_data_uri(&o.out_trade_no).unwrap_or_default(),
        no: o.out_trade_no.clone(),
        meter: h.address.clone(),
        place: crate::pages::room_place(
            l,
            (&h.area_name_zh, &h.area_name_en),
            (&h.building_name_zh, &h.building_name_en),
            &h.room,
            " ",
        ),
        kwh: o.kwh.to_string(),
        amount: o.amount_fen.to_string(),
        channel,
        operator: o.operator.clone().unwrap_or_default(),
        at: fmt_seconds(o.paid_at_ms.unwrap_or(o.created_at_ms), tz),
        state: l.t(&format!("order-state-{state_name}")),
        state_class: state_name.to_owned(),
        final_state: matches!(state_name, "completed" | "closed" | "refunded"),
        shift: link.map(|(s, _)| s),
        labels: STATES
            .iter()
            .map(|s| ((*s).to_owned(), l.t(&format!("order-state-{s}"))))
            .collect(),
        frame: op.frame("staff-counter-receipt-title", "/staff/counter"),
    })
}

/// `GET /staff/counter/receipts/{order_id}/status.json`: `{"state": …}`.
pub async fn receipt_status(
    State(state): State<AppState>,
    op: CurrentOperator,
    crate::pages::PathId(id): crate::pages::PathId,
) -> StaffResult {
    let (o, _) = counter_order(&state, &op, id).await?;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({
            "state": o.state,
            "completed_at_ms": o.completed_at_ms,
        })),
    )
        .into_response())
}
