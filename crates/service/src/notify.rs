//! Handling a payment or refund notification from WeChat Pay (or the
//! sandbox, which signs and encrypts them the same way).
//!
//! Order of checks (reliability.md §4.5): signature over the raw body with a
//! key chosen by `Wechatpay-Serial` (probes, unknown serials and stale
//! timestamps fail here; done by the provider's parser), decryption,
//! appid/mchid, `trade_state`, then our order's number and amount inside
//! `record_payment`. [`Answer::Accepted`] is returned only after the payment
//! is committed, because WeChat stops retrying on any 2xx. Every
//! notification, accepted or not, is logged in `payment_notification`;
//! refused ones change nothing else.

use crate::{Payments, Service};
use pay::{Notification, NotificationError, PaymentNotification, RefundNotification, VerifyError};
use store::orders::{PaidOutcome, PayError, PaymentConfirmation};

/// Provider name recorded with each logged notification.
const PROVIDER: &str = "wechat";

/// What to answer WeChat. The HTTP edge maps each to a status; WeChat
/// retries anything but [`Answer::Accepted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Recorded (or already was, or nothing to do): 204.
    Accepted,
    /// The signature did not verify: 401.
    Unauthorized,
    /// Malformed, or for another merchant, or not a success: 400.
    BadRequest,
    /// For an order or refund we do not have: 404.
    NotFound,
    /// The order was paid by another transaction: 409.
    Conflict,
    /// Our side failed; WeChat retries: 500.
    Internal,
    /// This node takes no payments: 503.
    Unavailable,
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

/// What became of one notification: the answer and the log line.
struct Verdict {
    answer: Answer,
    outcome: String,
    out_trade_no: Option<String>,
    transaction_id: Option<String>,
    amount_fen: Option<i64>,
    /// Already written in the payment's own transaction.
    logged: bool,
}

impl Verdict {
    fn new(answer: Answer, outcome: impl Into<String>) -> Self {
        Self {
            answer,
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

/// Handles one notification: `parse` verifies and decrypts it with the
/// node's provider (the HTTP edge passes the headers and the raw body).
pub async fn handle(
    svc: &Service,
    parse: impl FnOnce(&dyn pay::PaymentProvider) -> Result<Notification, NotificationError>,
) -> Answer {
    let Some(payments) = svc.payments() else {
        return Answer::Unavailable;
    };
    let now_ms = store::now_ms();
    let verdict = match parse(payments.provider.as_ref()) {
        Err(e) => {
            let v = rejected(&e);
            if !payments.rejected.count(&v.outcome) {
                // Counted, not stored: unauthenticated junk must not fill the database.
                tracing::debug!(outcome = %v.outcome, "payment notification refused (not sampled)");
                return v.answer;
            }
            v
        }
        Ok(Notification::Payment(n)) => on_payment(svc, payments, &n, now_ms).await,
        Ok(Notification::Refund(n)) => on_refund(svc, payments, &n, now_ms).await,
    };
    if verdict.answer == Answer::Accepted {
        tracing::info!(outcome = %verdict.outcome, out_trade_no = ?verdict.out_trade_no, "payment notification accepted");
    } else {
        tracing::warn!(outcome = %verdict.outcome, out_trade_no = ?verdict.out_trade_no, answer = ?verdict.answer, "payment notification refused");
    }
    if !verdict.logged {
        let logged = store::orders::log_notification(
            svc.db(),
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
            return Answer::Internal;
        }
    }
    verdict.answer
}

fn rejected(e: &NotificationError) -> Verdict {
    let (answer, kind) = match e {
        NotificationError::Verify(v) => match v {
            VerifyError::SignatureProbe => (Answer::Unauthorized, "signtest_probe"),
            VerifyError::UnknownSerial(_) => (Answer::Unauthorized, "unknown_serial"),
            VerifyError::StaleTimestamp { .. } => (Answer::Unauthorized, "stale_timestamp"),
            VerifyError::MalformedTimestamp => (Answer::BadRequest, "malformed_timestamp"),
            VerifyError::MissingHeader(_) => (Answer::BadRequest, "missing_header"),
            VerifyError::BadSignature => (Answer::Unauthorized, "bad_signature"),
        },
        NotificationError::MalformedEnvelope(_) => (Answer::BadRequest, "malformed_envelope"),
        NotificationError::UnsupportedAlgorithm(_) => (Answer::BadRequest, "unsupported_algorithm"),
        NotificationError::Decrypt(_) => (Answer::BadRequest, "decrypt_failed"),
        NotificationError::MalformedResource(_) => (Answer::BadRequest, "malformed_resource"),
        NotificationError::UnexpectedEventType(_) => (Answer::BadRequest, "unexpected_event"),
    };
    Verdict::new(answer, format!("rejected:{kind}"))
}

async fn on_payment(
    svc: &Service,
    payments: &Payments,
    n: &PaymentNotification,
    now_ms: i64,
) -> Verdict {
    let t = &n.transaction;
    let total = t.total_fen();
    let about = |v: Verdict| v.about(&t.out_trade_no, t.transaction_id.as_deref(), total);
    if t.appid != payments.settings.appid || t.mchid != payments.settings.mchid {
        return about(Verdict::new(Answer::BadRequest, "rejected:merchant"));
    }
    if t.trade_state != pay::TradeState::Success {
        return about(Verdict::new(
            Answer::BadRequest,
            format!("rejected:trade_state:{:?}", t.trade_state),
        ));
    }
    let (Some(transaction_id), Some(amount_fen)) = (t.transaction_id.as_deref(), total) else {
        return about(Verdict::new(Answer::BadRequest, "rejected:incomplete"));
    };
    let confirmation = PaymentConfirmation {
        out_trade_no: &t.out_trade_no,
        transaction_id,
        amount_fen: domain::Fen::new(amount_fen),
    };
    // The audit row of an accepted notification commits with the payment.
    let recorded =
        store::orders::record_payment_logged(svc.db(), &confirmation, PROVIDER, now_ms).await;
    let (answer, outcome) = match recorded {
        Ok(PaidOutcome::Credited(o)) => {
            tracing::info!(order.id = o.id.get(), "payment credited from notification");
            let mut v = about(Verdict::new(Answer::Accepted, "credited"));
            v.logged = true;
            return v;
        }
        Ok(PaidOutcome::AlreadyRecorded(_)) => {
            let mut v = about(Verdict::new(Answer::Accepted, "duplicate"));
            v.logged = true;
            return v;
        }
        Err(PayError::UnknownOrder) => (Answer::NotFound, "rejected:unknown_order"),
        Err(PayError::AmountMismatch { expected, paid }) => {
            tracing::error!(out_trade_no = %t.out_trade_no, expected = expected.get(), paid = paid.get(), "notification amount differs from the order: refused, needs staff");
            (Answer::BadRequest, "rejected:amount_mismatch")
        }
        Err(PayError::OtherTransaction) => {
            tracing::error!(out_trade_no = %t.out_trade_no, "order already paid by another transaction: double payment, needs a refund by staff");
            (Answer::Conflict, "rejected:other_transaction")
        }
        Err(PayError::Store(e)) => {
            tracing::error!(error = %e, "cannot record a payment");
            (Answer::Internal, "error:store")
        }
    };
    about(Verdict::new(answer, outcome))
}

async fn on_refund(
    svc: &Service,
    payments: &Payments,
    n: &RefundNotification,
    now_ms: i64,
) -> Verdict {
    let r = &n.refund;
    let about = |v: Verdict| v.about(&r.out_trade_no, Some(&r.refund_id), Some(r.amount.refund));
    if r.mchid != payments.settings.mchid {
        return about(Verdict::new(Answer::BadRequest, "rejected:refund_merchant"));
    }
    let order = match store::orders::by_out_trade_no(svc.db(), &r.out_trade_no).await {
        Ok(Some(o)) if o.refund_no.as_deref() == Some(r.out_refund_no.as_str()) => o,
        Ok(_) => {
            return about(Verdict::new(Answer::NotFound, "rejected:unknown_refund"));
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read an order for a refund notification");
            return about(Verdict::new(Answer::Internal, "error:store"));
        }
    };
    if r.amount.refund != order.amount_fen.get() {
        return about(Verdict::new(Answer::BadRequest, "rejected:refund_amount"));
    }
    let succeeded = match r.refund_status {
        pay::RefundStatus::Success => true,
        pay::RefundStatus::Closed => false,
        // Not final for us: staff settle it at WeChat (see the refund worker).
        pay::RefundStatus::Abnormal => {
            tracing::error!(out_trade_no = %r.out_trade_no, "refund abnormal at WeChat; needs staff");
            return about(Verdict::new(Answer::Accepted, "refund:abnormal"));
        }
        // Nothing final yet; the refund worker keeps asking.
        pay::RefundStatus::Processing | pay::RefundStatus::Unknown => {
            return about(Verdict::new(Answer::Accepted, "refund:pending"));
        }
    };
    match store::orders::finish_refund(svc.db(), &r.out_refund_no, succeeded, now_ms).await {
        Ok(o) => about(Verdict::new(
            Answer::Accepted,
            format!("refund:{}", o.state),
        )),
        Err(e) => {
            tracing::error!(error = %e, "cannot record a refund");
            about(Verdict::new(Answer::Internal, "error:store"))
        }
    }
}
