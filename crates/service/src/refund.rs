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
