//! The exceptions queue in the console (issue 13 item 5): every order
//! that needs a person within the operator's reach, with its reasons, and
//! for those who may resolve orders the actions — deliver again, refund
//! (only by the rule of docs/ARCHITECTURE.md; otherwise the reason is
//! shown instead of the button), mark resolved with a note. Each action is
//! guarded and audited in the store (`store::exceptions`).

use super::{
    Console, CurrentOperator, IdPost, StaffError, StaffForm, StaffResult, fmt_seconds,
    html_with_status,
};
use crate::AppState;
use crate::i18n::Lang;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect};
use domain::OrderId;
use domain::staff::{Action, Place};
use serde::Deserialize;
use service::refund::{ActionError, Refusal};
use store::story::Reach;

/// One reason as the queue shows it.
struct Reason {
    kind: String,
    text: String,
    detail: String,
    since: String,
}

/// One order of the queue.
struct Item {
    o: super::orders::Row,
    reasons: Vec<Reason>,
    seq: String,
    meter_count: String,
    /// Why the refund button is absent, when it is.
    refund_refused: Option<String>,
    can_redeliver: bool,
}

/// The queue page.
#[derive(Template)]
#[template(path = "staff/exceptions.html")]
struct ExceptionsPage {
    l: Lang,
    frame: super::Frame,
    items: Vec<Item>,
    /// The action buttons (operators who may resolve orders).
    act: bool,
    notice: Option<String>,
    error: Option<String>,
}

/// The catalog key of a refusal.
fn refusal_key(r: &Refusal) -> &'static str {
    match r {
        Refusal::NotFound => "staff-error-not-found",
        Refusal::NotDelayed(_) => "staff-exc-refused-not-delayed",
        Refusal::OnMeter(_) => "staff-exc-refused-on-meter",
        Refusal::InProgress => "staff-exc-refused-in-progress",
        Refusal::StillDelivering => "staff-exc-refused-still-delivering",
        Refusal::AlreadyResolved => "staff-exc-refused-already-resolved",
        Refusal::NoteMissing => "staff-exc-refused-note-missing",
        Refusal::NoteTooLong => "staff-exc-refused-note-too-long",
    }
}

/// A refusal in the page language.
fn refusal_text(l: Lang, r: &Refusal) -> String {
    match r {
        Refusal::NotDelayed(s) => l.t1(
            refusal_key(r),
            "state",
            domain::order::OrderState::parse(s)
                .map_or_else(|| (*s).to_owned(), |s| super::orders::state_text(l, s)),
        ),
        Refusal::OnMeter(seq) => l.t1(refusal_key(r), "seq", *seq),
        _ => l.t(refusal_key(r)),
    }
}

/// A flag's reason in the page language (a head-end alarm kind we have no
/// text for is shown by its name).
fn reason_text(l: Lang, kind: &str) -> String {
    match kind {
        "delayed" | "recharge_refused" | "seq_gap" | "refund_failed" | "refund_abnormal"
        | "reconciliation" => l.t(&format!("staff-exc-kind-{kind}")),
        other => l.t1("staff-exc-kind-other", "kind", other),
    }
}

/// Query of the queue page (after an action).
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    #[serde(default)]
    done: String,
    #[serde(default)]
    no: String,
}

async fn render(
    state: &AppState,
    op: &CurrentOperator,
    notice: Option<String>,
    error: Option<String>,
) -> StaffResult {
    let l = op.l;
    let tz = crate::pages::campus_tz(state);
    let reach = Reach::of(&op.operator);
    let act = op.may(Action::ResolveOrders, Place::Console);
    let items = store::exceptions::open(state.db(), &reach, store::exceptions::QUEUE_ROWS_MAX)
        .await?
        .into_iter()
        .map(|e| Item {
            o: super::orders::row(l, tz, &e.hit),
            reasons: e
                .flags
                .iter()
                .map(|f| Reason {
                    kind: f.kind.clone(),
                    text: reason_text(l, &f.kind),
                    detail: f.detail.clone(),
                    since: fmt_seconds(f.raised_at_ms, tz),
                })
                .collect(),
            seq: e
                .hit
                .order
                .purchase_seq
                .map(|s| s.to_string())
                .unwrap_or_default(),
            meter_count: e
                .meter_count
                .map_or_else(|| l.t("staff-orders-unknown"), |c| c.to_string()),
            refund_refused: e.refund_refused().map(|r| refusal_text(l, &r)),
            can_redeliver: e.can_redeliver(),
        })
        .collect();
    let failed = error.is_some();
    html_with_status(
        &ExceptionsPage {
            l,
            frame: op.frame("staff-exc-title", "/staff/exceptions"),
            items,
            act,
            notice,
            error,
        },
        failed,
    )
}

/// `GET /staff/exceptions`.
pub async fn page(
    State(state): State<AppState>,
    Console(op): Console<{ Action::ViewOrders as u8 }>,
    Query(q): Query<Done>,
) -> StaffResult {
    let l = op.l;
    let notice = match q.done.as_str() {
        "refund" | "redeliver" | "resolve" => {
            Some(l.t1(&format!("staff-exc-done-{}", q.done), "no", q.no.clone()))
        }
        _ => None,
    };
    render(&state, &op, notice, None).await
}

/// The resolve form: the note.
#[derive(Debug, Deserialize)]
pub struct ResolveForm {
    csrf: String,
    #[serde(default)]
    note: String,
}

crate::pages::csrf_forms!(ResolveForm);

/// Which action a POST asks.
#[derive(Debug, Clone, Copy)]
enum Act {
    Refund,
    Redeliver,
    Resolve,
}

impl Act {
    fn name(self) -> &'static str {
        match self {
            Act::Refund => "refund",
            Act::Redeliver => "redeliver",
            Act::Resolve => "resolve",
        }
    }
}

/// Asks `can` for the order's building (audited 403 outside it); the
/// form's gate asked for the console.
async fn allowed(state: &AppState, op: &CurrentOperator, id: OrderId) -> Result<(), StaffError> {
    let Some((area, place)) = store::story::place_of(state.db(), id).await? else {
        return Err(StaffError::NotFound);
    };
    op.require(
        state,
        Action::ResolveOrders,
        Place::Building(
            domain::AreaId::new(area),
            domain::BuildingId::new(place.building_id),
        ),
    )
    .await
}

async fn act(
    state: &AppState,
    op: &CurrentOperator,
    id: i64,
    what: Act,
    note: &str,
) -> StaffResult {
    let order_id = OrderId::new(id);
    allowed(state, op, order_id).await?;
    let svc = state.service();
    let actor = op.actor();
    let now = state.settings().staff.clock.now_ms();
    let outcome = match what {
        Act::Refund => service::refund::staff_refund(svc, order_id, &actor, now)
            .await
            .map(|_| ()),
        Act::Redeliver => service::refund::staff_redeliver(svc, order_id, &actor, now)
            .await
            .map(|_| ()),
        Act::Resolve => service::refund::staff_resolve(svc, order_id, &actor, note, now)
            .await
            .map(|_| ()),
    };
    match outcome {
        Ok(()) => {
            let no = store::orders::by_id(state.db(), order_id)
                .await?
                .map(|o| o.out_trade_no)
                .unwrap_or_default();
            Ok(Redirect::to(&format!(
                "/staff/exceptions?done={}&no={}",
                what.name(),
                crate::url::encode(&no)
            ))
            .into_response())
        }
        Err(ActionError::Refused(Refusal::NotFound)) => Err(StaffError::NotFound),
        Err(ActionError::Refused(r)) => {
            let l = op.l;
            render(state, op, None, Some(refusal_text(l, &r))).await
        }
        Err(ActionError::Store(e)) => Err(e.into()),
    }
}

/// `POST /staff/exceptions/{id}/refund`.
pub async fn refund(
    State(state): State<AppState>,
    IdPost { id, op }: IdPost<{ Action::ResolveOrders as u8 }>,
) -> StaffResult {
    act(&state, &op, id, Act::Refund, "").await
}

/// `POST /staff/exceptions/{id}/redeliver`.
pub async fn redeliver(
    State(state): State<AppState>,
    IdPost { id, op }: IdPost<{ Action::ResolveOrders as u8 }>,
) -> StaffResult {
    act(&state, &op, id, Act::Redeliver, "").await
}

/// `POST /staff/exceptions/{id}/resolve`.
pub async fn resolve(
    State(state): State<AppState>,
    crate::pages::PathId(id): crate::pages::PathId,
    f: StaffForm<ResolveForm, { Action::ResolveOrders as u8 }>,
) -> StaffResult {
    act(&state, &f.op, id, Act::Resolve, &f.form.note).await
}
