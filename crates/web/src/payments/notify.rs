//! `POST /pay/wechat/notify`: payment and refund notifications from WeChat
//! Pay (or the sandbox, which signs and encrypts them the same way).
//!
//! Order of checks (reliability.md §4.5): signature over the raw body with a
//! key chosen by `Wechatpay-Serial` (probes, unknown serials and stale
//! timestamps fail here), decryption, appid/mchid, `trade_state`, then our
//! order's number and amount inside `record_payment`. A 2xx answer is sent
//! only after the payment is committed, because WeChat stops retrying on
//! any 2xx. Every notification, accepted or not, is logged in
//! `payment_notification`; refused ones change nothing else.

use super::{ApiError, Payments};
use crate::AppState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use pay::{Notification, NotificationError, PaymentNotification, RefundNotification, VerifyError};
use store::orders::{PaidOutcome, PayError, PaymentConfirmation};

/// Path of the notify endpoint (payments and refunds share it); the notify
/// URL given to WeChat is the public URL followed by this.
pub const NOTIFY_PATH: &str = "/pay/wechat/notify";

/// Provider name recorded with each logged notification.
const PROVIDER: &str = "wechat";

pub(super) fn router() -> Router<AppState> {
    Router::new().route(NOTIFY_PATH, post(notify))
}

/// Counts of notifications refused before their signature verified, per
/// kind. Anyone can POST to the notify URL, so these are never all written
/// to the database (issue 10 item 7): the 1st, 2nd, 4th, 8th … of each kind
/// get a row and a warning, every one is counted here.
#[derive(Debug, Default)]
pub struct RejectedNotifications {
    counts: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl RejectedNotifications {
    /// Counts one more of `kind`; `true` when this one is sampled (logged).
    fn count(&self, kind: &str) -> bool {
        let mut m = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = m.entry(kind.to_owned()).or_insert(0);
        *n += 1;
        n.is_power_of_two()
    }

    /// All refused-before-verification notifications since start.
    pub fn total(&self) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .sum()
    }
}

/// What became of one notification: the HTTP answer and the log line.
struct Verdict {
    status: StatusCode,
    outcome: String,
    out_trade_no: Option<String>,
    transaction_id: Option<String>,
    amount_fen: Option<i64>,
    /// Already written in the payment's own transaction.
    logged: bool,
}

impl Verdict {
    fn new(status: StatusCode, outcome: impl Into<String>) -> Self {
        Self {
            status,
            outcome: outcome.into(),
            out_trade_no: None,
            transaction_id: None,
            amount_fen: None,
            logged: false,
        }
    }

    fn about(mut self, otn: &str, txid: Option<&str>, amount_fen: Option<i64>) -> Self {
        self.out_trade_no = Some(otn.chars().take(64).collect());
        self.transaction_id = txid.map(|t| t.chars().take(64).collect());
        self.amount_fen = amount_fen;
        self
    }
}

async fn notify(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(payments) = state.payments() else {
        return fail(StatusCode::SERVICE_UNAVAILABLE);
    };
    let now_ms = store::now_ms();
    let verdict = match payments.provider.parse_notification(&headers, &body) {
        Err(e) => {
            let v = rejected(&e);
            if !payments.rejected.count(&v.outcome) {
                // Counted, not stored: unauthenticated junk must not fill the database.
                tracing::debug!(outcome = %v.outcome, "payment notification refused (not sampled)");
                return fail(v.status);
            }
            v
        }
        Ok(Notification::Payment(n)) => on_payment(&state, payments, &n, now_ms).await,
        Ok(Notification::Refund(n)) => on_refund(&state, payments, &n, now_ms).await,
    };
    if verdict.status.is_success() {
        tracing::info!(outcome = %verdict.outcome, out_trade_no = ?verdict.out_trade_no, "payment notification accepted");
    } else {
        tracing::warn!(outcome = %verdict.outcome, out_trade_no = ?verdict.out_trade_no, status = verdict.status.as_u16(), "payment notification refused");
    }
    if !verdict.logged {
        let logged = store::orders::log_notification(
            state.db(),
            PROVIDER,
            verdict.out_trade_no.as_deref(),
            verdict.transaction_id.as_deref(),
            verdict.amount_fen,
            &verdict.outcome,
            now_ms,
        )
        .await;
        if let Err(e) = logged {
            tracing::error!(error = %e, "cannot log a payment notification");
            // WeChat retries a non-2xx answer; the retry is idempotent and logs then.
            return fail(StatusCode::INTERNAL_SERVER_ERROR);
        }
    }
    if verdict.status.is_success() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        fail(verdict.status)
    }
}

/// WeChat's failure body; WeChat looks at the status, the body is for people.
fn fail(status: StatusCode) -> Response {
    ApiError::new(status, "FAIL", "失败").into_response()
}

fn rejected(e: &NotificationError) -> Verdict {
    let (status, kind) = match e {
        NotificationError::Verify(v) => match v {
            VerifyError::SignatureProbe => (StatusCode::UNAUTHORIZED, "signtest_probe"),
            VerifyError::UnknownSerial(_) => (StatusCode::UNAUTHORIZED, "unknown_serial"),
            VerifyError::StaleTimestamp { .. } => (StatusCode::UNAUTHORIZED, "stale_timestamp"),
            VerifyError::MalformedTimestamp => (StatusCode::BAD_REQUEST, "malformed_timestamp"),
            VerifyError::MissingHeader(_) => (StatusCode::BAD_REQUEST, "missing_header"),
            VerifyError::BadSignature => (StatusCode::UNAUTHORIZED, "bad_signature"),
        },
        NotificationError::MalformedEnvelope(_) => (StatusCode::BAD_REQUEST, "malformed_envelope"),
        NotificationError::UnsupportedAlgorithm(_) => {
            (StatusCode::BAD_REQUEST, "unsupported_algorithm")
        }
        NotificationError::Decrypt(_) => (StatusCode::BAD_REQUEST, "decrypt_failed"),
        NotificationError::MalformedResource(_) => (StatusCode::BAD_REQUEST, "malformed_resource"),
        NotificationError::UnexpectedEventType(_) => (StatusCode::BAD_REQUEST, "unexpected_event"),
    };
    Verdict::new(status, format!("rejected:{kind}"))
}

async fn on_payment(
    state: &AppState,
    payments: &Payments,
    n: &PaymentNotification,
    now_ms: i64,
) -> Verdict {
    let t = &n.transaction;
    let total = t.total_fen();
    let about = |v: Verdict| v.about(&t.out_trade_no, t.transaction_id.as_deref(), total);
    if t.appid != payments.settings.appid || t.mchid != payments.settings.mchid {
        return about(Verdict::new(StatusCode::BAD_REQUEST, "rejected:merchant"));
    }
    if t.trade_state != pay::TradeState::Success {
        return about(Verdict::new(
            StatusCode::BAD_REQUEST,
            format!("rejected:trade_state:{:?}", t.trade_state),
        ));
    }
    let (Some(transaction_id), Some(amount_fen)) = (t.transaction_id.as_deref(), total) else {
        return about(Verdict::new(StatusCode::BAD_REQUEST, "rejected:incomplete"));
    };
    let confirmation = PaymentConfirmation {
        out_trade_no: &t.out_trade_no,
        transaction_id,
        amount_fen: domain::Fen::new(amount_fen),
    };
    // The audit row of an accepted notification commits with the payment.
    let recorded =
        store::orders::record_payment_logged(state.db(), &confirmation, PROVIDER, now_ms).await;
    let (status, outcome) = match recorded {
        Ok(PaidOutcome::Credited(o)) => {
            tracing::info!(order.id = o.id.get(), "payment credited from notification");
            let mut v = about(Verdict::new(StatusCode::NO_CONTENT, "credited"));
            v.logged = true;
            return v;
        }
        Ok(PaidOutcome::AlreadyRecorded(_)) => {
            let mut v = about(Verdict::new(StatusCode::NO_CONTENT, "duplicate"));
            v.logged = true;
            return v;
        }
        Err(PayError::UnknownOrder) => (StatusCode::NOT_FOUND, "rejected:unknown_order"),
        Err(PayError::AmountMismatch { expected, paid }) => {
            tracing::error!(out_trade_no = %t.out_trade_no, expected = expected.get(), paid = paid.get(), "notification amount differs from the order: refused, needs staff");
            (StatusCode::BAD_REQUEST, "rejected:amount_mismatch")
        }
        Err(PayError::OtherTransaction) => {
            tracing::error!(out_trade_no = %t.out_trade_no, "order already paid by another transaction: double payment, needs a refund by staff");
            (StatusCode::CONFLICT, "rejected:other_transaction")
        }
        Err(PayError::Store(e)) => {
            tracing::error!(error = %e, "cannot record a payment");
            (StatusCode::INTERNAL_SERVER_ERROR, "error:store")
        }
    };
    about(Verdict::new(status, outcome))
}

async fn on_refund(
    state: &AppState,
    payments: &Payments,
    n: &RefundNotification,
    now_ms: i64,
) -> Verdict {
    let r = &n.refund;
    let about = |v: Verdict| v.about(&r.out_trade_no, Some(&r.refund_id), Some(r.amount.refund));
    if r.mchid != payments.settings.mchid {
        return about(Verdict::new(
            StatusCode::BAD_REQUEST,
            "rejected:refund_merchant",
        ));
    }
    let order = match store::orders::by_out_trade_no(state.db(), &r.out_trade_no).await {
        Ok(Some(o)) if o.refund_no.as_deref() == Some(r.out_refund_no.as_str()) => o,
        Ok(_) => {
            return about(Verdict::new(
                StatusCode::NOT_FOUND,
                "rejected:unknown_refund",
            ));
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read an order for a refund notification");
            return about(Verdict::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "error:store",
            ));
        }
    };
    if r.amount.refund != order.amount_fen.get() {
        return about(Verdict::new(
            StatusCode::BAD_REQUEST,
            "rejected:refund_amount",
        ));
    }
    let succeeded = match r.refund_status {
        pay::RefundStatus::Success => true,
        pay::RefundStatus::Closed => false,
        // Not final for us: staff settle it at WeChat (see the refund worker).
        pay::RefundStatus::Abnormal => {
            tracing::error!(out_trade_no = %r.out_trade_no, "refund abnormal at WeChat; needs staff");
            return about(Verdict::new(StatusCode::NO_CONTENT, "refund:abnormal"));
        }
        // Nothing final yet; the refund worker keeps asking.
        pay::RefundStatus::Processing | pay::RefundStatus::Unknown => {
            return about(Verdict::new(StatusCode::NO_CONTENT, "refund:pending"));
        }
    };
    match store::orders::finish_refund(state.db(), &r.out_refund_no, succeeded, now_ms).await {
        Ok(o) => about(Verdict::new(
            StatusCode::NO_CONTENT,
            format!("refund:{}", o.state),
        )),
        Err(e) => {
            tracing::error!(error = %e, "cannot record a refund");
            about(Verdict::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "error:store",
            ))
        }
    }
}
