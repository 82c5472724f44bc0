//! Purchase records (S12): every order with its state. Unpaid orders show
//! the time left and can be paid or cancelled; unpaid orders whose two hours
//! are up disappear (S11) even before the expiry worker closes them.

use super::buy::state_label;
use super::{Ctx, PageResult, Shell, Tab, area_name, campus_tz, fmt_time, html, pay_deadline};
use crate::AppState;
use crate::i18n::Lang;
use askama::Template;
use axum::extract::{Query, State};
use domain::order::OrderState;
use std::collections::HashMap;

/// Most orders listed.
const ORDERS_MAX: i64 = 100;

/// The records page.
#[derive(Template)]
#[template(path = "records.html")]
struct RecordsPage<'a> {
    l: Lang,
    shell: Shell<'a>,
    orders: Vec<OrderRow>,
    cancelled: bool,
    /// The free monthly allowances of the student's rooms (issue 14 item 6).
    allowances: Vec<AllowanceRow>,
}

/// One free monthly allowance as listed: "每月免费电量 10.00 kWh".
struct AllowanceRow {
    kwh: String,
    month: String,
    place: String,
    delivered: bool,
}

/// Query of the records page.
#[derive(Debug, serde::Deserialize)]
pub struct RecordsQuery {
    /// Set after the student cancelled an order.
    cancelled: Option<u8>,
}

/// One order as listed.
struct OrderRow {
    id: i64,
    kwh: i64,
    amount: domain::Fen,
    place: String,
    at: String,
    state: String,
    label: String,
    /// Unpaid: "请在 07:36 前支付".
    deadline: Option<String>,
}

/// `GET /records`.
pub async fn page(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(q): Query<RecordsQuery>,
) -> PageResult {
    let l = ctx.l;
    let tz = campus_tz(&state);
    let now = store::now_ms();
    let orders = store::orders::for_student(state.db(), ctx.student.id, ORDERS_MAX).await?;
    let mut places: HashMap<i64, String> = HashMap::new();
    let mut rows = Vec::with_capacity(orders.len());
    for o in &orders {
        if o.state == OrderState::Unpaid && o.expires_at_ms <= now {
            continue;
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = places.entry(o.meter_id.get()) {
            let p = store::campus::meter_by_id(state.db(), o.meter_id)
                .await?
                .map(|m| {
                    format!(
                        "{} {} · {}",
                        area_name(l, &m.building_name_zh, &m.building_name_en),
                        m.room,
                        m.address
                    )
                })
                .unwrap_or_default();
            slot.insert(p);
        }
        rows.push(OrderRow {
            id: o.id.get(),
            kwh: i64::from(o.kwh.get()),
            amount: o.amount_fen,
            place: places.get(&o.meter_id.get()).cloned().unwrap_or_default(),
            at: fmt_time(o.created_at_ms, tz),
            state: o.state.as_str().to_owned(),
            label: state_label(l, o.state),
            deadline: (o.state == OrderState::Unpaid)
                .then(|| pay_deadline(l, o.expires_at_ms, now, tz)),
        });
    }
    let mut allowances = Vec::new();
    for b in store::students::bindings(state.db(), ctx.student.id).await? {
        for c in store::subsidy::of_room_of_meter(state.db(), b.meter_id, 12).await? {
            allowances.push(AllowanceRow {
                kwh: domain::CentiKwh::new(c.centikwh).to_string(),
                month: c.month,
                place: format!(
                    "{} {}",
                    area_name(l, &b.building_name_zh, &b.building_name_en),
                    b.room
                ),
                delivered: c.delivered_at_ms.is_some(),
            });
        }
    }
    html(&RecordsPage {
        l,
        shell: ctx.shell("records-title", Tab::Records),
        orders: rows,
        cancelled: q.cancelled == Some(1),
        allowances,
    })
}
