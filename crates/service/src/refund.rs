//! Staff refunds: a delayed order (the energy could not be delivered) moves
//! to *refunding*; the refund worker ([`crate::workers::refund_tick`]) asks
//! WeChat and records the final answer.

use crate::Service;
use store::orders::Order;

/// Why a refund could not be requested.
#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    /// The order is not in a refundable state (the message says why).
    #[error("{0}")]
    NotRefundable(String),
    /// The database failed.
    #[error("something went wrong on our side; please try again")]
    Store(#[from] store::Error),
}

/// Requests the refund of `order` on behalf of staff.
pub async fn request_refund(svc: &Service, order: &Order) -> Result<Order, RefundError> {
    match store::orders::request_refund(svc.db(), order.id, store::now_ms()).await {
        Ok(o) => {
            tracing::info!(order.id = o.id.get(), "refund requested by staff");
            Ok(o)
        }
        Err(store::Error::IllegalTransition(_)) => Err(RefundError::NotRefundable(
            "only a delayed order can be refunded".to_owned(),
        )),
        Err(store::Error::Conflict(m)) => {
            Err(RefundError::NotRefundable(if m.contains("in progress") {
                m
            } else {
                "only a delayed order can be refunded".to_owned()
            }))
        }
        Err(e) => Err(RefundError::Store(e)),
    }
}

pub use store::exceptions::{ActionError, Refusal};

/// A staff refund from the exceptions queue (issue 13 item 6): the whole
/// amount, only when the meter's evidence says the energy is not on it
/// (`store::exceptions::refund` has the rule, the guard and the audit
/// entry). The refund worker then refunds through WeChat Pay, or records
/// a counter order's cash paid back at the counter.
pub async fn staff_refund(
    svc: &Service,
    order_id: domain::OrderId,
    actor: &store::audit::Actor,
    now_ms: i64,
) -> Result<Order, ActionError> {
    let o = store::exceptions::refund(svc.db(), order_id, actor, now_ms).await?;
    tracing::info!(
        order.id = o.id.get(),
        channel = o.channel.as_str(),
        "refund requested by staff"
    );
    Ok(o)
}

/// Staff "deliver again" for a flagged order (the head-end reads the meter
/// before anything else).
pub async fn staff_redeliver(
    svc: &Service,
    order_id: domain::OrderId,
    actor: &store::audit::Actor,
    now_ms: i64,
) -> Result<Order, ActionError> {
    let o = store::exceptions::redeliver(svc.db(), order_id, actor, now_ms).await?;
    tracing::info!(order.id = o.id.get(), "delivery restarted by staff");
    Ok(o)
}

/// Staff mark a flagged order resolved with a note.
pub async fn staff_resolve(
    svc: &Service,
    order_id: domain::OrderId,
    actor: &store::audit::Actor,
    note: &str,
    now_ms: i64,
) -> Result<u64, ActionError> {
    store::exceptions::resolve(svc.db(), order_id, actor, note, now_ms).await
}
