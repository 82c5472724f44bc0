//! Payments: the WeChat Pay provider (or the sandbox), notification
//! handling, expiry, reconciliation and refunds (being written; see issue 5).

use crate::AppState;
use axum::Router;
use std::sync::Arc;

/// The payment side of the application state.
#[derive(Clone)]
pub struct Payments {
    /// WeChat Pay (or the sandbox speaking the same protocol).
    pub provider: Arc<dyn pay::PaymentProvider>,
    /// The in-process sandbox, when it is the provider (demo and tests).
    pub sandbox: Option<pay::Sandbox>,
}

/// Routes of the payment side (notifications, sandbox mount).
pub fn router(state: &AppState) -> Router<AppState> {
    let _ = state;
    Router::new()
}
