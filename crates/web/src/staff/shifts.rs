//! Counter shifts (issue 13 item 3): a cashier opens and closes their
//! shift (the close enters the cash counted and shows the cash-up);
//! administrators and auditors read the shifts of the cashiers who may sell
//! in their areas, and an administrator signs a closed one off. A cashier
//! sees only their own shifts (another's, or one out of scope, is "not
//! found"). Every change is guarded and audited in `store::shifts`.

use super::counter::tender_key;
use super::{
    Console, CsrfOnly, CurrentOperator, IdPost, StaffError, StaffForm, StaffResult, fmt_seconds,
    html_with_status,
};
use crate::AppState;
use crate::i18n::Lang;
use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect};
use domain::counter::{CashError, parse_counted_cash};
use domain::staff::{Action, Place, Role};
use serde::Deserialize;
use store::shifts::Shift;

/// Shifts the list shows.
const LIST_ROWS: i64 = 200;

/// A shift as the list and the page show it.
struct ShiftView {
    id: i64,
    cashier: String,
    opened: String,
    closed: String,
    open: bool,
    sales: i64,
    expected: String,
    counted: String,
    difference: String,
    short: bool,
    signed: String,
}

fn view(l: Lang, s: &Shift, tz: &jiff::tz::TimeZone) -> ShiftView {
    let yuan = |f: Option<domain::Fen>| f.map(|f| f.to_string()).unwrap_or_default();
    ShiftView {
        id: s.id,
        cashier: s.operator_name.clone(),
        opened: fmt_seconds(s.opened_at_ms, tz),
        closed: s
            .closed_at_ms
            .map(|ms| fmt_seconds(ms, tz))
            .unwrap_or_else(|| l.t("staff-shift-open-now")),
        open: s.is_open(),
        sales: s.sales_count,
        expected: yuan(s.expected_cash_fen),
        counted: yuan(s.counted_cash_fen),
        difference: yuan(s.difference_fen()),
        short: s.difference_fen().is_some_and(|d| d.get() < 0),
        signed: match (&s.signed_off_by, s.signed_off_at_ms) {
            (Some(by), Some(at)) => format!("{by} · {}", fmt_seconds(at, tz)),
            _ => String::new(),
        },
    }
}

/// Whether `op` reads every cashier's shifts (a cashier reads their own).
fn sees_all(op: &CurrentOperator) -> bool {
    op.operator.role != Role::Cashier
}

/// The cashiers whose shifts `op` may read beyond their own: everyone for
/// an operator of every area; otherwise those who may sell in one of
/// `op`'s areas (a cashier of every area included). `None`: no limit.
async fn visible_cashiers(state: &AppState, op: &CurrentOperator) -> StaffResult<Option<Vec<i64>>> {
    let Some(mine) = &op.operator.scope.areas else {
        return Ok(None);
    };
    Ok(Some(
        store::operators::list(state.db())
            .await?
            .into_iter()
            .filter(|o| {
                o.id == op.operator.id
                    || o.scope
                        .areas
                        .as_ref()
                        .is_none_or(|theirs| theirs.iter().any(|a| mine.contains(a)))
            })
            .map(|o| o.id)
            .collect(),
    ))
}

/// Whether `op` may read shift `s`.
async fn may_read(state: &AppState, op: &CurrentOperator, s: &Shift) -> StaffResult<bool> {
    if s.operator_id == op.operator.id {
        return Ok(true);
    }
    if !sees_all(op) {
        return Ok(false);
    }
    Ok(visible_cashiers(state, op)
        .await?
        .is_none_or(|v| v.contains(&s.operator_id)))
}

/// The shifts page.
#[derive(Template)]
#[template(path = "staff/shifts.html")]
struct ShiftsPage {
    l: Lang,
    frame: super::Frame,
    rows: Vec<ShiftView>,
    /// The open form (a cashier without an open shift).
    can_open: bool,
    /// The cashier's open shift.
    open_id: Option<i64>,
    error: Option<String>,
}

async fn render_list(state: &AppState, op: &CurrentOperator, error: Option<String>) -> StaffResult {
    let l = op.l;
    let tz = crate::pages::campus_tz(state);
    let who = (!sees_all(op)).then_some(op.operator.id);
    let visible = visible_cashiers(state, op).await?;
    let rows: Vec<Shift> = store::shifts::list(state.db(), who, LIST_ROWS)
        .await?
        .into_iter()
        .filter(|s| {
            s.operator_id == op.operator.id
                || visible.as_ref().is_none_or(|v| v.contains(&s.operator_id))
        })
        .collect();
    let open = store::shifts::open_for(state.db(), op.operator.id).await?;
    let failed = error.is_some();
    html_with_status(
        &ShiftsPage {
            l,
            rows: rows.iter().map(|s| view(l, s, tz)).collect(),
            can_open: open.is_none() && op.may(Action::SellAtCounter, Place::Console),
            open_id: open.map(|s| s.id),
            error,
            frame: op.frame("staff-shifts-title", "/staff/shifts"),
        },
        failed,
    )
}

/// `GET /staff/shifts`.
pub async fn page(
    State(state): State<AppState>,
    Console(op): Console<{ Action::ViewShifts as u8 }>,
) -> StaffResult {
    render_list(&state, &op, None).await
}

/// `POST /staff/shifts/open`.
pub async fn open(
    State(state): State<AppState>,
    f: StaffForm<CsrfOnly, { Action::SellAtCounter as u8 }>,
) -> StaffResult {
    let op = f.op;
    let now = state.settings().staff.clock.now_ms();
    match store::shifts::open(state.db(), op.operator.id, &op.actor(), now).await {
        Ok(s) => Ok(Redirect::to(&format!("/staff/shifts/{}", s.id)).into_response()),
        Err(store::Error::Conflict(_)) => {
            render_list(&state, &op, Some(op.l.t("staff-shift-already-open"))).await
        }
        Err(e) => Err(e.into()),
    }
}

/// One line of the cash-up.
struct TotalLine {
    label: String,
    count: i64,
    kwh: String,
    amount: String,
}

/// One sale of the shift.
struct SaleView {
    order_id: i64,
    no: String,
    tender: String,
    kwh: i64,
    amount: String,
    state: String,
    at: String,
}

/// A shift's page.
#[derive(Template)]
#[template(path = "staff/shift.html")]
struct ShiftPage {
    l: Lang,
    frame: super::Frame,
    s: ShiftView,
    totals: Vec<TotalLine>,
    total: TotalLine,
    /// Counter refunds paid out of this till (count, amount).
    refunds: i64,
    refunded: String,
    sales: Vec<SaleView>,
    /// The close form (the cashier's own open shift).
    can_close: bool,
    /// The sign-off form (an administrator, a closed shift not signed off).
    can_sign: bool,
    counted: String,
    error: Option<String>,
    notice: Option<String>,
}

async fn load(state: &AppState, op: &CurrentOperator, id: i64) -> StaffResult<Shift> {
    let s = store::shifts::get(state.db(), id)
        .await?
        .ok_or(StaffError::NotFound)?;
    if !may_read(state, op, &s).await? {
        return Err(StaffError::NotFound);
    }
    Ok(s)
}

async fn render_shift(
    state: &AppState,
    op: &CurrentOperator,
    s: &Shift,
    counted: &str,
    error: Option<String>,
    notice: Option<String>,
) -> StaffResult {
    let l = op.l;
    let tz = crate::pages::campus_tz(state);
    let t = store::shifts::totals(state.db(), s.id).await?;
    let (n, e, a) = t.all();
    let sales = store::shifts::sales(state.db(), s.id)
        .await?
        .into_iter()
        .map(|x| SaleView {
            order_id: x.order_id,
            no: x.out_trade_no,
            tender: domain::counter::Tender::parse(&x.tender)
                .map(|t| l.t(tender_key(t)))
                .unwrap_or(x.tender),
            kwh: x.kwh,
            amount: domain::Fen::new(x.amount_fen).to_string(),
            state: l.t(&format!("order-state-{}", x.state)),
            at: fmt_seconds(x.created_at_ms, tz),
        })
        .collect();
    let failed = error.is_some();
    html_with_status(
        &ShiftPage {
            l,
            s: view(l, s, tz),
            totals: t
                .by_tender
                .iter()
                .map(|x| TotalLine {
                    label: l.t(tender_key(x.tender)),
                    count: x.count,
                    kwh: x.energy.to_string(),
                    amount: x.amount.to_string(),
                })
                .collect(),
            total: TotalLine {
                label: l.t("staff-shift-total"),
                count: n,
                kwh: e.to_string(),
                amount: a.to_string(),
            },
            refunds: t.refunds,
            refunded: t.cash_refunded.to_string(),
            sales,
            can_close: s.is_open()
                && s.operator_id == op.operator.id
                && op.may(Action::SellAtCounter, Place::Console),
            can_sign: !s.is_open()
                && s.signed_off_at_ms.is_none()
                && op.may(Action::SignOffShift, Place::Console),
            counted: counted.to_owned(),
            error,
            notice,
            frame: op.frame("staff-shift-title", "/staff/shifts"),
        },
        failed,
    )
}

/// `GET /staff/shifts/{id}`.
pub async fn shift(
    State(state): State<AppState>,
    Console(op): Console<{ Action::ViewShifts as u8 }>,
    crate::pages::PathId(id): crate::pages::PathId,
) -> StaffResult {
    let s = load(&state, &op, id).await?;
    render_shift(&state, &op, &s, "", None, None).await
}

/// The close form.
#[derive(Debug, Deserialize)]
pub struct CloseForm {
    csrf: String,
    #[serde(default)]
    counted: String,
}

crate::pages::csrf_forms!(CloseForm);

/// `POST /staff/shifts/{id}/close`: the cashier enters the cash counted.
pub async fn close(
    State(state): State<AppState>,
    crate::pages::PathId(id): crate::pages::PathId,
    f: StaffForm<CloseForm, { Action::SellAtCounter as u8 }>,
) -> StaffResult {
    let StaffForm { op, form } = f;
    let l = op.l;
    let s = load(&state, &op, id).await?;
    let counted = match parse_counted_cash(&form.counted) {
        Ok(c) => c,
        Err(e) => {
            let key = match e {
                CashError::NotAnAmount => "staff-shift-bad-cash",
                CashError::OutOfRange => "staff-shift-cash-range",
            };
            return render_shift(&state, &op, &s, &form.counted, Some(l.t(key)), None).await;
        }
    };
    let now = state.settings().staff.clock.now_ms();
    match store::shifts::close(state.db(), id, op.operator.id, counted, &op.actor(), now).await {
        Ok(_) => Ok(Redirect::to(&format!("/staff/shifts/{id}")).into_response()),
        Err(store::Error::Conflict(_)) => {
            let s = load(&state, &op, id).await?;
            let key = if s.is_open() {
                "staff-shift-not-yours"
            } else {
                "staff-shift-already-closed"
            };
            render_shift(&state, &op, &s, &form.counted, Some(l.t(key)), None).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /staff/shifts/{id}/sign-off`: an administrator signs the cash-up off.
pub async fn sign_off(
    State(state): State<AppState>,
    IdPost { id, op }: IdPost<{ Action::SignOffShift as u8 }>,
) -> StaffResult {
    let l = op.l;
    load(&state, &op, id).await?;
    let now = state.settings().staff.clock.now_ms();
    match store::shifts::sign_off(state.db(), id, op.operator.id, &op.actor(), now).await {
        Ok(s) => render_shift(&state, &op, &s, "", None, Some(l.t("staff-shift-signed"))).await,
        Err(store::Error::Conflict(_)) => {
            let s = load(&state, &op, id).await?;
            let key = if s.is_open() {
                "staff-shift-sign-open"
            } else {
                "staff-shift-already-signed"
            };
            render_shift(&state, &op, &s, "", Some(l.t(key)), None).await
        }
        Err(e) => Err(e.into()),
    }
}
