//! Background work of the payment side. Each worker is a `*_tick` function
//! that takes `now_ms`, does a bounded amount of work and can be called
//! again at any time (idempotent, restart-safe: all state is in the
//! database or at WeChat); [`crate::supervisor`] calls them on an interval
//! until shutdown ([`service_workers`] lists them with their intervals and
//! batch sizes). Tests call the ticks directly with a chosen `now_ms`.
//!
//! - expiry: close unpaid orders at WeChat first, then locally; if WeChat
//!   says the order was paid meanwhile, record the payment instead;
//! - reconciliation: query unpaid orders whose notification never came,
//!   and compare a day's trade bill with our orders;
//! - refunds: execute and poll refunds of orders in `refunding`;
//! - overdue: mark charging orders the meter has not confirmed as delayed.

use crate::supervisor::{Role, WorkerSpec};
use crate::{Payments, Service};
use domain::order::{Channel, OrderEvent, OrderState};
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;
use store::orders::{Order, PaidOutcome, PaymentConfirmation};

/// Most orders one tick of a worker handles; the rest wait for the next tick.
pub const TICK_ORDERS_MAX: i64 = 100;
/// Rows read when looking for unpaid orders to query (bounded scan).
/// Unpaid orders of one buyer looked at per reconciliation tick.
const UNPAID_PER_BUYER_PER_TICK: i64 = 2;
/// Most bill rows compared in one reconciliation (a campus day is far below).
pub const BILL_ROWS_MAX: usize = 200_000;
/// Bill reconciliation runs after this Beijing hour (WeChat: bills are ready from 10:00).
const BILL_READY_HOUR: i64 = 10;
/// Wait after a failed bill fetch.
const BILL_RETRY: Duration = Duration::from_secs(30 * 60);

/// What settling an order from WeChat's signed query answer found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Settled {
    /// WeChat has the payment and it is now recorded here (or already was).
    Paid,
    /// WeChat says not paid (yet).
    Unpaid,
    /// WeChat says closed.
    Closed,
    /// WeChat does not know the order (never prepaid).
    NotFound,
    /// WeChat's answer did not match our order (amount/merchant): refused,
    /// needs staff.
    Mismatch,
    /// The call or the write failed; try again later.
    Failed,
}

/// Asks WeChat for the order and, only if its signed answer says SUCCESS
/// with our merchant ids and our amount, records the payment.
pub async fn settle_from_query(
    svc: &Service,
    payments: &Payments,
    order: &Order,
    now_ms: i64,
) -> Settled {
    let t = match payments.provider.query_order(&order.out_trade_no).await {
        Ok(t) => t,
        Err(e) if e.is_not_found() => return Settled::NotFound,
        Err(e) => {
            tracing::warn!(order.id = order.id.get(), error = %e, "order query failed");
            return Settled::Failed;
        }
    };
    match t.trade_state {
        // REFUND means it was paid first; the payment still has to be recorded.
        pay::TradeState::Success | pay::TradeState::Refund => {}
        pay::TradeState::Closed | pay::TradeState::Revoked | pay::TradeState::Payerror => {
            return Settled::Closed;
        }
        pay::TradeState::Notpay | pay::TradeState::Userpaying | pay::TradeState::Unknown => {
            return Settled::Unpaid;
        }
    }
    let s = &payments.settings;
    if t.appid != s.appid || t.mchid != s.mchid || t.out_trade_no != order.out_trade_no {
        tracing::error!(
            order.id = order.id.get(),
            "query answer for another merchant or order"
        );
        return Settled::Mismatch;
    }
    let (Some(transaction_id), Some(amount_fen)) = (t.transaction_id.as_deref(), t.total_fen())
    else {
        return Settled::Mismatch;
    };
    let confirmation = PaymentConfirmation {
        out_trade_no: &order.out_trade_no,
        transaction_id,
        amount_fen: domain::Fen::new(amount_fen),
    };
    match store::orders::record_payment(svc.db(), &confirmation, now_ms).await {
        Ok(PaidOutcome::Credited(o)) => {
            tracing::info!(
                order.id = o.id.get(),
                "payment credited from a query (no notification)"
            );
            Settled::Paid
        }
        Ok(PaidOutcome::AlreadyRecorded(_)) => Settled::Paid,
        Err(store::orders::PayError::Store(e)) => {
            tracing::error!(order.id = order.id.get(), error = %e, "cannot record a queried payment");
            Settled::Failed
        }
        Err(e) => {
            tracing::error!(order.id = order.id.get(), error = %e, "queried payment refused; needs staff");
            Settled::Mismatch
        }
    }
}

/// Counts of what one tick did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TickReport {
    /// Orders looked at.
    pub examined: u64,
    /// Orders closed (expiry) or refunds finished.
    pub closed: u64,
    /// Payments recorded because WeChat said paid.
    pub paid: u64,
    /// Orders left for a later tick (provider error, still pending).
    pub deferred: u64,
}

/// Expiry: every unpaid order past its two hours is closed at WeChat first,
/// then re-queried (a close of an unknown order may also answer 204), and
/// closed here only when WeChat confirms it is not paid. A payment found on
/// the way is recorded, never dropped.
pub async fn expire_tick(svc: &Service, now_ms: i64) -> store::Result<TickReport> {
    let mut report = TickReport::default();
    let orders = store::orders::expired_unpaid(svc.db(), now_ms, TICK_ORDERS_MAX).await?;
    for order in orders {
        report.examined += 1;
        let Some(payments) = svc.payments() else {
            // No provider on this node: no payment can have been started here.
            store::orders::close(svc.db(), order.id, OrderEvent::Expire, now_ms).await?;
            report.closed += 1;
            continue;
        };
        match payments.provider.close_order(&order.out_trade_no).await {
            Ok(()) => {}
            // Already closed, already paid, never prepaid: the query below decides.
            Err(e)
                if matches!(e.code(), Some("ORDER_CLOSED" | "ORDERPAID")) || e.is_not_found() => {}
            Err(e) => {
                tracing::warn!(order.id = order.id.get(), error = %e, "close at WeChat failed; retrying later");
                report.deferred += 1;
                continue;
            }
        }
        match settle_from_query(svc, payments, &order, now_ms).await {
            Settled::Paid => report.paid += 1,
            Settled::Closed | Settled::NotFound => {
                store::orders::close(svc.db(), order.id, OrderEvent::Expire, now_ms).await?;
                report.closed += 1;
            }
            Settled::Unpaid | Settled::Mismatch | Settled::Failed => report.deferred += 1,
        }
    }
    Ok(report)
}

/// Reconciliation of missing notifications: unpaid orders with a prepay id,
/// older than `reconcile_after`, are queried at WeChat; only a signed
/// SUCCESS answer with our amount credits them.
pub async fn reconcile_unpaid_tick(svc: &Service, now_ms: i64) -> store::Result<TickReport> {
    let mut report = TickReport::default();
    let Some(payments) = svc.payments() else {
        return Ok(report);
    };
    let after_ms = i64::try_from(payments.settings.reconcile_after.as_millis()).unwrap_or(i64::MAX);
    // Fair across buyers: a flood of one buyer's unpaid orders cannot keep
    // someone else's lost notification from being reconciled.
    let candidates = store::orders::unpaid_to_reconcile(
        svc.db(),
        now_ms.saturating_sub(after_ms),
        UNPAID_PER_BUYER_PER_TICK,
        TICK_ORDERS_MAX,
    )
    .await?;
    for order in &candidates {
        report.examined += 1;
        match settle_from_query(svc, payments, order, now_ms).await {
            Settled::Paid => report.paid += 1,
            Settled::Failed | Settled::Mismatch => report.deferred += 1,
            // Expiry closes them at two hours.
            Settled::Unpaid | Settled::Closed | Settled::NotFound => {}
        }
    }
    Ok(report)
}

/// Refunds: for each order in `refunding`, ask WeChat for the refund by its
/// number, create it if WeChat does not know it (the same number is reused
/// forever, so WeChat refunds at most once), and record a final answer.
/// A counter sale is refunded in cash by the operator who asked for it, so
/// it is finished at once.
pub async fn refund_tick(svc: &Service, now_ms: i64) -> store::Result<TickReport> {
    let mut report = TickReport::default();
    let orders = store::orders::in_state(svc.db(), OrderState::Refunding, TICK_ORDERS_MAX).await?;
    for order in orders {
        report.examined += 1;
        let Some(refund_no) = order.refund_no.clone() else {
            tracing::error!(
                order.id = order.id.get(),
                "refunding order without a refund number"
            );
            report.deferred += 1;
            continue;
        };
        if order.channel == Channel::Counter {
            store::orders::finish_refund(svc.db(), &refund_no, true, now_ms).await?;
            report.closed += 1;
            continue;
        }
        let Some(payments) = svc.payments() else {
            report.deferred += 1;
            continue;
        };
        let refund = match payments.provider.query_refund(&refund_no).await {
            Ok(r) => Ok(r),
            Err(e) if e.is_not_found() => {
                let request = pay::RefundOrder {
                    out_trade_no: order.out_trade_no.clone(),
                    out_refund_no: refund_no.clone(),
                    reason: Some("电费充值未能送达电表,全额退款".to_owned()),
                    refund_fen: order.amount_fen.get(),
                    total_fen: order.amount_fen.get(),
                };
                payments.provider.create_refund(&request).await
            }
            Err(e) => Err(e),
        };
        let refund = match refund {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(order.id = order.id.get(), error = %e, "refund call failed; retrying later");
                report.deferred += 1;
                continue;
            }
        };
        let succeeded = match refund.status {
            pay::RefundStatus::Success => true,
            pay::RefundStatus::Closed => false,
            // The money left the merchant but did not reach the payer (e.g. a
            // closed card): staff settle it at WeChat; a second refund here
            // could pay twice, so the order stays refunding.
            pay::RefundStatus::Abnormal => {
                tracing::error!(
                    order.id = order.id.get(),
                    "refund abnormal at WeChat; needs staff"
                );
                store::exceptions::raise(
                    svc.db(),
                    order.id,
                    store::exceptions::REFUND_ABNORMAL,
                    &format!("refund {refund_no} abnormal at WeChat: settle it there"),
                    now_ms,
                )
                .await?;
                report.deferred += 1;
                continue;
            }
            pay::RefundStatus::Processing | pay::RefundStatus::Unknown => {
                report.deferred += 1;
                continue;
            }
        };
        store::orders::finish_refund(svc.db(), &refund_no, succeeded, now_ms).await?;
        report.closed += 1;
    }
    Ok(report)
}

/// Overdue deliveries: charging orders paid longer than the delivery window
/// ago become delayed (visible to the student and staff, refundable).
pub async fn overdue_tick(svc: &Service, now_ms: i64) -> store::Result<u64> {
    store::orders::mark_overdue(svc.db(), svc.delivery_window().as_ms(), now_ms).await
}

/// One difference between WeChat's trade bill and our orders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BillDifference {
    /// Our order number (as in the bill, or ours when the bill lacks it).
    pub out_trade_no: String,
    /// What differs: `unknown_order`, `not_paid_here`, `amount`,
    /// `transaction_id`, `missing_from_bill`, `refund_not_here`.
    pub kind: &'static str,
    /// Details for staff.
    pub detail: String,
}

/// The outcome of comparing one day's bill with our orders.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BillReport {
    /// The Beijing day, `YYYY-MM-DD`.
    pub bill_date: String,
    /// Bill rows compared.
    pub rows: usize,
    /// Whether the bill's summary agreed with its rows.
    pub totals_match: bool,
    /// Every difference found (empty: the day reconciles).
    pub differences: Vec<BillDifference>,
}

/// Why a bill could not be reconciled.
#[derive(Debug, thiserror::Error)]
pub enum BillReconcileError {
    /// No payment provider on this node.
    #[error("no payment provider configured")]
    NoProvider,
    /// `bill_date` is not `YYYY-MM-DD`.
    #[error("bad bill date {0}")]
    BadDate(String),
    /// Fetching or parsing the bill failed.
    #[error("trade bill: {0}")]
    Provider(#[from] pay::PayError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Compares WeChat's trade bill for `bill_date` (Beijing day) with our
/// orders and reports every difference. It never credits or refunds
/// anything: a difference is for staff (or for the query-based
/// reconciliation, which needs WeChat's signed answer per order).
pub async fn reconcile_bill(
    svc: &Service,
    bill_date: &str,
) -> Result<BillReport, BillReconcileError> {
    let payments = svc.payments().ok_or(BillReconcileError::NoProvider)?;
    let day_start_s = pay::time::parse_bill_date(bill_date)
        .ok_or_else(|| BillReconcileError::BadDate(bill_date.to_owned()))?;
    let bill = payments
        .provider
        .fetch_trade_bill(bill_date, pay::BillType::All)
        .await?;
    let mut report = BillReport {
        bill_date: bill_date.to_owned(),
        rows: bill.rows.len(),
        totals_match: bill.totals_match(),
        differences: Vec::new(),
    };
    let mut diff = |otn: &str, kind, detail: String| {
        report.differences.push(BillDifference {
            out_trade_no: otn.to_owned(),
            kind,
            detail,
        });
    };
    let mut in_bill: HashMap<String, ()> = HashMap::new();
    for row in bill.rows.iter().take(BILL_ROWS_MAX) {
        if row.appid != payments.settings.appid || row.mchid != payments.settings.mchid {
            diff(
                &row.out_trade_no,
                "unknown_order",
                format!("bill row for merchant {}", row.mchid),
            );
            continue;
        }
        let order = store::orders::by_out_trade_no(svc.db(), &row.out_trade_no).await?;
        let Some(order) = order else {
            diff(
                &row.out_trade_no,
                "unknown_order",
                "in the bill, not in our orders".to_owned(),
            );
            continue;
        };
        in_bill.insert(order.out_trade_no.clone(), ());
        let paid_here = order.state.is_paid();
        if row.trade_state == "REFUND" {
            if !matches!(order.state, OrderState::Refunded | OrderState::Refunding)
                || row.out_refund_no.as_deref() != order.refund_no.as_deref()
            {
                diff(
                    &order.out_trade_no,
                    "refund_not_here",
                    format!(
                        "bill refunds {} fen, order is {}",
                        row.refund_fen, order.state
                    ),
                );
            }
            continue;
        }
        if !paid_here {
            diff(
                &order.out_trade_no,
                "not_paid_here",
                format!(
                    "paid at WeChat ({}), order is {}",
                    row.transaction_id, order.state
                ),
            );
            continue;
        }
        if row.order_total_fen != order.amount_fen.get() {
            diff(
                &order.out_trade_no,
                "amount",
                format!(
                    "bill {} fen, order {} fen",
                    row.order_total_fen,
                    order.amount_fen.get()
                ),
            );
        }
        if order.transaction_id.as_deref() != Some(row.transaction_id.as_str()) {
            diff(
                &order.out_trade_no,
                "transaction_id",
                format!(
                    "bill {}, order {:?}",
                    row.transaction_id, order.transaction_id
                ),
            );
        }
    }
    let from_ms = day_start_s * 1000;
    let paid = store::orders::paid_between(
        svc.db(),
        Channel::Wechat,
        from_ms,
        from_ms + 86_400_000,
        i64::try_from(BILL_ROWS_MAX).unwrap_or(i64::MAX),
    )
    .await?;
    for order in paid {
        if !in_bill.contains_key(&order.out_trade_no) {
            diff(
                &order.out_trade_no,
                "missing_from_bill",
                format!(
                    "paid here ({} fen) but not in WeChat's bill",
                    order.amount_fen.get()
                ),
            );
        }
    }
    if !report.totals_match {
        tracing::error!(bill_date, "trade bill summary does not add up");
    }
    for d in &report.differences {
        tracing::warn!(bill_date, out_trade_no = %d.out_trade_no, kind = d.kind, detail = %d.detail, "bill difference");
        // An order we know goes to the exceptions queue (raised once while
        // open, so reconciling the day again changes nothing).
        if let Some(o) = store::orders::by_out_trade_no(svc.db(), &d.out_trade_no).await? {
            store::exceptions::raise(
                svc.db(),
                o.id,
                store::exceptions::RECONCILIATION,
                &format!("trade bill {bill_date}: {}: {}", d.kind, d.detail),
                store::now_ms(),
            )
            .await?;
        }
    }
    Ok(report)
}

/// How often the workers run when no payment side sets it.
pub const WORKER_INTERVAL_DEFAULT: Duration = Duration::from_secs(30);

/// The bill worker's memory between ticks (only in this process: a restart
/// reconciles the previous day once more, which changes nothing).
#[derive(Debug, Default)]
struct BillState {
    done: Option<String>,
    next_try_ms: i64,
}

/// The order-side workers of `svc`, each with its interval and batch size,
/// for the [`crate::supervisor::Supervisor`] (role [`Role::Orders`]).
///
/// | worker | interval | batch |
/// |---|---|---|
/// | `expire` | `payment.worker_interval_s` (30 s) | [`TICK_ORDERS_MAX`] orders |
/// | `reconcile` | same | [`TICK_ORDERS_MAX`] orders, 2 per buyer |
/// | `refund` | same | [`TICK_ORDERS_MAX`] orders |
/// | `overdue` | same | one guarded `update` of every overdue order |
/// | `bill` | same, acting once a day after 10:00 Beijing | [`BILL_ROWS_MAX`] bill rows |
///
/// `overdue` runs with or without a payment side (a counter sale can be
/// overdue too); the others need one and are left out without it.
pub fn order_workers(svc: &Service) -> Vec<WorkerSpec> {
    let interval = svc
        .payments()
        .map_or(WORKER_INTERVAL_DEFAULT, |p| p.settings.worker_interval);
    let batch = usize::try_from(TICK_ORDERS_MAX).unwrap_or(100);
    let mut list = Vec::new();
    list.push(WorkerSpec::tick_with(
        "overdue",
        Role::Orders,
        interval,
        1,
        svc.clone(),
        |s, now_ms| async move {
            match overdue_tick(&s, now_ms).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(orders = n, "deliveries overdue: marked delayed"),
                Err(e) => tracing::error!(error = %e, "overdue worker failed"),
            }
        },
    ));
    if svc.payments().is_none() {
        return list;
    }
    list.push(WorkerSpec::tick_with(
        "expire",
        Role::Orders,
        interval,
        batch,
        svc.clone(),
        |s, now_ms| async move { log_tick("expire", expire_tick(&s, now_ms).await) },
    ));
    list.push(WorkerSpec::tick_with(
        "reconcile",
        Role::Orders,
        interval,
        batch,
        svc.clone(),
        |s, now_ms| async move { log_tick("reconcile", reconcile_unpaid_tick(&s, now_ms).await) },
    ));
    list.push(WorkerSpec::tick_with(
        "refund",
        Role::Orders,
        interval,
        batch,
        svc.clone(),
        |s, now_ms| async move { log_tick("refund", refund_tick(&s, now_ms).await) },
    ));
    if svc
        .payments()
        .is_some_and(|p| p.settings.bill_reconciliation)
    {
        let state = std::sync::Arc::new(std::sync::Mutex::new(BillState::default()));
        list.push(WorkerSpec::tick_with(
            "bill",
            Role::Orders,
            interval,
            BILL_ROWS_MAX,
            (svc.clone(), state),
            |(s, state), now_ms| async move { bill_tick(&s, &state, now_ms).await },
        ));
    }
    list
}

/// The bill of each previous Beijing day is reconciled once after 10:00;
/// after a failed fetch WeChat is asked again only after [`BILL_RETRY`].
async fn bill_tick(svc: &Service, state: &std::sync::Mutex<BillState>, now_ms: i64) {
    let now_s = now_ms / 1000;
    let beijing_hour = (now_s + pay::time::BEIJING_OFFSET_S).rem_euclid(86_400) / 3600;
    let yesterday = pay::time::beijing_date(now_s - 86_400);
    let due = {
        let st = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        beijing_hour >= BILL_READY_HOUR
            && st.done.as_deref() != Some(&yesterday)
            && now_ms >= st.next_try_ms
    };
    if !due {
        return;
    }
    let outcome = reconcile_bill(svc, &yesterday).await;
    let mut st = state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match outcome {
        Ok(r) => {
            tracing::info!(bill_date = %r.bill_date, rows = r.rows, differences = r.differences.len(), "trade bill reconciled");
            st.done = Some(yesterday);
        }
        // WeChat has no bill for a day without trades; nothing to compare.
        Err(BillReconcileError::Provider(e)) if e.code() == Some("NO_STATEMENT_EXIST") => {
            tracing::info!(bill_date = %yesterday, "no trade bill (no trades that day)");
            st.done = Some(yesterday);
        }
        Err(e) => {
            tracing::warn!(error = %e, "trade bill reconciliation failed; retrying in 30 min");
            st.next_try_ms =
                now_ms.saturating_add(i64::try_from(BILL_RETRY.as_millis()).unwrap_or(i64::MAX));
        }
    }
}

fn log_tick(name: &'static str, r: store::Result<TickReport>) {
    match r {
        Ok(t) if t == TickReport::default() => {}
        Ok(t) => tracing::info!(
            worker = name,
            examined = t.examined,
            closed = t.closed,
            paid = t.paid,
            deferred = t.deferred,
            "payment worker tick"
        ),
        Err(e) => tracing::error!(worker = name, error = %e, "payment worker failed"),
    }
}
