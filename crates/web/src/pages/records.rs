//! Purchase records (S12): every order with its state. Unpaid orders show
//! the time left and can be paid or cancelled; unpaid orders whose two hours
//! are up disappear (S11) even before the expiry worker closes them.

use super::buy::state_label;
use super::layout::{Shell, Tab, render};
use super::{CsrfField, Esc, PageResult, area_name, campus_tz, fmt_time};
use crate::AppState;
use crate::i18n::Lang;
use crate::session::CurrentStudent;
use axum::extract::State;
use axum::response::IntoResponse;
use domain::order::OrderState;
use std::collections::HashMap;
use std::fmt::Write as _;

/// Most orders listed.
const ORDERS_MAX: i64 = 100;

/// `GET /records`.
pub async fn page(
    State(state): State<AppState>,
    lang: Lang,
    student: CurrentStudent,
) -> PageResult {
    let l = lang;
    let tz = campus_tz(&state);
    let now = store::now_ms();
    let orders = store::orders::for_student(state.db(), student.id, ORDERS_MAX).await?;
    let mut places: HashMap<domain::MeterId, String> = HashMap::new();
    let mut b = String::with_capacity(8192);
    b.push_str("<div class=card id=records>");
    let mut shown = 0;
    for o in &orders {
        if o.state == OrderState::Unpaid && o.expires_at_ms <= now {
            continue;
        }
        shown += 1;
        if let std::collections::hash_map::Entry::Vacant(slot) = places.entry(o.meter_id) {
            let p = store::campus::meter_by_id(state.db(), o.meter_id.get())
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
        let _ = write!(
            b,
            "<div class=\"row order\" data-order=\"{id}\"><div><a href=\"/orders/{id}\">{kwh} kWh · ¥{amt}</a>\
             <div class=muted>{place}</div><div class=muted>{at}</div></div>\
             <div style=\"text-align:right\"><span class=\"state {st}\">{label}</span>",
            id = o.id,
            kwh = o.kwh,
            amt = o.amount_fen,
            place = Esc(places.get(&o.meter_id).map_or("", String::as_str)),
            at = fmt_time(o.created_at_ms, &tz),
            st = Esc(o.state.as_str()),
            label = state_label(l, o.state),
        );
        if o.state == OrderState::Unpaid {
            let left_min = (o.expires_at_ms - now + 59_999) / 60_000;
            let _ = write!(
                b,
                "<div class=muted>{}</div><a class=\"btn small\" href=\"/orders/{id}/pay\">{}</a> \
                 <form class=inline method=post action=\"/orders/{id}/cancel\">{}\
                 <button class=\"btn small sec\" type=submit>{}</button></form>",
                match l {
                    Lang::Zh => format!("剩余 {left_min} 分钟"),
                    Lang::En => format!("{left_min} min left"),
                },
                l.t("支付", "Pay"),
                CsrfField(&student.csrf_token),
                l.t("取消", "Cancel"),
                id = o.id,
            );
        }
        b.push_str("</div></div>");
    }
    if shown == 0 {
        let _ = write!(
            b,
            "<p class=muted>{}</p>",
            l.t("暂无购电记录", "No purchases yet")
        );
    }
    b.push_str("</div>");
    let _ = write!(
        b,
        "<div class=card><p class=muted>{}</p></div>",
        l.t(
            "未支付：用户未支付，超过 2 小时自动移除；加电中：已支付，等待系统下发电量；已完成：电量已下发至电表。",
            "Unpaid: not paid yet, removed after 2 hours. Charging: paid, waiting for the system to send the energy. Completed: the energy is in the meter."
        )
    );
    Ok(render(
        &Shell {
            lang,
            title: l.t("购电记录", "Purchase records"),
            student: Some(&student),
            tab: Tab::Records,
            here: "/records",
        },
        &b,
    )
    .into_response())
}
