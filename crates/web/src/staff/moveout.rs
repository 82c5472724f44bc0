//! Move-out settlement in the console (issue 13 item 6; the policy is
//! docs/MOVE-OUT.md): an administrator names the room's meter and writes a
//! note; the meter's bindings end and its balance stays in the meter for
//! the room's next occupant (`store::moveout::settle`, audited).

use super::{Console, CurrentOperator, StaffError, StaffForm, StaffResult, html_with_status};
use crate::AppState;
use crate::i18n::Lang;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect};
use domain::staff::{Action, Place};
use serde::Deserialize;
use store::moveout::{Refusal, SettleError};

/// The page.
#[derive(Template)]
#[template(path = "staff/moveout.html")]
struct MoveOutPage {
    l: Lang,
    frame: super::Frame,
    meter: String,
    note: String,
    notice: Option<String>,
    error: Option<String>,
}

/// Query after a settlement.
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    #[serde(default)]
    meter: String,
    #[serde(default)]
    unbound: Option<i64>,
    #[serde(default)]
    kwh: String,
}

fn render(
    op: &CurrentOperator,
    form: (&str, &str),
    notice: Option<String>,
    error: Option<String>,
) -> StaffResult {
    let failed = error.is_some();
    html_with_status(
        &MoveOutPage {
            l: op.l,
            frame: op.frame("staff-moveout-title", "/staff/move-out"),
            meter: form.0.to_owned(),
            note: form.1.to_owned(),
            notice,
            error,
        },
        failed,
    )
}

/// `GET /staff/move-out`.
pub async fn page(
    Console(op): Console<{ Action::ResolveOrders as u8 }>,
    Query(q): Query<Done>,
) -> StaffResult {
    let l = op.l;
    let notice = q.unbound.map(|n| {
        let balance = if q.kwh.is_empty() {
            l.t("staff-moveout-done-unread")
        } else {
            l.t1("staff-moveout-done-kwh", "kwh", q.kwh.clone())
        };
        format!(
            "{} {balance}",
            l.t2("staff-moveout-done", "meter", q.meter.clone(), "n", n)
        )
    });
    render(&op, ("", ""), notice, None)
}

/// The form.
#[derive(Debug, Deserialize)]
pub struct SettleForm {
    csrf: String,
    #[serde(default)]
    meter: String,
    #[serde(default)]
    note: String,
}

crate::pages::csrf_forms!(SettleForm);

fn refusal_key(r: &Refusal) -> &'static str {
    match r {
        Refusal::NoSuchMeter => "staff-moveout-no-meter",
        Refusal::NobodyBound => "staff-moveout-nobody",
        Refusal::NoteMissing => "staff-moveout-note-missing",
        Refusal::NoteTooLong => "staff-moveout-note-too-long",
    }
}

/// `POST /staff/move-out`.
pub async fn settle(
    State(state): State<AppState>,
    f: StaffForm<SettleForm, { Action::ResolveOrders as u8 }>,
) -> StaffResult {
    let StaffForm { op, form } = f;
    let l = op.l;
    let shown = (form.meter.as_str(), form.note.as_str());
    let Ok(address) = service::input::meter_number(&form.meter) else {
        return render(&op, shown, None, Some(l.t("staff-orders-bad-meter")));
    };
    let address = address.to_string();
    let Some((_, area, building)) = store::moveout::place(state.db(), &address).await? else {
        return render(&op, shown, None, Some(l.t("staff-moveout-no-meter")));
    };
    op.require(
        &state,
        Action::ResolveOrders,
        Place::Building(domain::AreaId::new(area), domain::BuildingId::new(building)),
    )
    .await?;
    let now = state.settings().staff.clock.now_ms();
    match store::moveout::settle(state.db(), &address, &op.actor(), &form.note, now).await {
        Ok(s) => Ok(Redirect::to(&format!(
            "/staff/move-out?meter={}&unbound={}&kwh={}",
            crate::url::encode(&s.address),
            s.unbound_students,
            s.remaining_centikwh
                .map(|c| domain::CentiKwh::new(c).to_string())
                .unwrap_or_default()
        ))
        .into_response()),
        Err(SettleError::Refused(r)) => render(&op, shown, None, Some(l.t(refusal_key(&r)))),
        Err(SettleError::Store(e)) => Err(StaffError::Store(e)),
    }
}
