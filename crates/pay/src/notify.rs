//! Payment and refund notifications (wechat-notes §3.6, §3.7).
//!
//! Order of operations is fixed: verify the signature over the *raw* body
//! bytes, then parse the envelope, then decrypt. Re-serialized JSON would not
//! verify, and nothing unverified is ever decrypted or parsed further.

use serde::{Deserialize, Serialize};

use crate::aead::{self, AeadError};
use crate::keys::{ApiV3Key, WechatPayKeys};
use crate::model::{RefundResult, Transaction};
use crate::sign::{SignedHeaders, VerifyError};

/// The only algorithm WeChat uses for resources.
pub const ALGORITHM: &str = "AEAD_AES_256_GCM";

/// Body to send with a failure answer (non-2xx), so WeChat retries.
pub const ACK_FAIL_BODY: &str = r#"{"code":"FAIL","message":"失败"}"#;

/// The encrypted `resource` of a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedResource {
    /// `transaction` or `refund`.
    pub original_type: String,
    /// `AEAD_AES_256_GCM`.
    pub algorithm: String,
    /// base64(ciphertext ‖ tag).
    pub ciphertext: String,
    /// AAD; may be empty or absent.
    #[serde(default)]
    pub associated_data: String,
    /// 12-character nonce.
    pub nonce: String,
}

/// The notification envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationEnvelope {
    /// Notification id (same across WeChat's retries of one event).
    pub id: String,
    /// RFC 3339 creation time.
    pub create_time: String,
    /// `encrypt-resource`.
    pub resource_type: String,
    /// `TRANSACTION.SUCCESS`, `REFUND.SUCCESS`, …
    pub event_type: String,
    /// Short text.
    #[serde(default)]
    pub summary: String,
    /// The encrypted payload.
    pub resource: EncryptedResource,
}

/// Why a notification was rejected. Answer every one of these with a non-2xx
/// status (WeChat then retries); act on none of them.
#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    /// Signature checks failed (probe, unknown serial, stale, bad signature …).
    #[error("notification signature rejected: {0}")]
    Verify(#[from] VerifyError),
    /// The verified body is not a notification envelope.
    #[error("malformed notification envelope: {0}")]
    MalformedEnvelope(serde_json::Error),
    /// `resource.algorithm` is not `AEAD_AES_256_GCM`.
    #[error("unsupported resource algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// The resource failed to decrypt (tampered ciphertext, wrong APIv3 key …).
    #[error("resource decryption failed: {0}")]
    Decrypt(#[from] AeadError),
    /// The decrypted resource is not the expected object.
    #[error("malformed decrypted resource: {0}")]
    MalformedResource(serde_json::Error),
    /// The event type does not belong to this kind of notification.
    #[error("unexpected event type {0}")]
    UnexpectedEventType(String),
}

/// A verified, decrypted payment notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentNotification {
    /// Notification id; the same event retried keeps its id.
    pub id: String,
    /// Normally `TRANSACTION.SUCCESS`.
    pub event_type: String,
    /// RFC 3339.
    pub create_time: String,
    /// The transaction. Check `trade_state`, appid/mchid
    /// ([`Transaction::check_merchant`]), out_trade_no and amount before crediting.
    pub transaction: Transaction,
}

/// A verified, decrypted refund notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundNotification {
    /// Notification id.
    pub id: String,
    /// `REFUND.SUCCESS`, `REFUND.ABNORMAL` or `REFUND.CLOSED`.
    pub event_type: String,
    /// RFC 3339.
    pub create_time: String,
    /// The refund.
    pub refund: RefundResult,
}

/// Either kind of notification, for a handler that serves payments and
/// refunds on one URL (the sandbox demo does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// `TRANSACTION.*`.
    Payment(PaymentNotification),
    /// `REFUND.*`.
    Refund(RefundNotification),
}

/// Verifies, decrypts and parses a notification of either kind, dispatching
/// on `event_type` (after verification, so the type itself is trusted).
pub fn parse_notification(
    keys: &WechatPayKeys,
    api_v3_key: &ApiV3Key,
    headers: &SignedHeaders,
    raw_body: &[u8],
    now_unix_s: i64,
) -> Result<Notification, NotificationError> {
    let (envelope, plain) = open_notification(keys, api_v3_key, headers, raw_body, now_unix_s)?;
    if envelope.event_type.starts_with("TRANSACTION.") {
        let transaction =
            serde_json::from_slice(&plain).map_err(NotificationError::MalformedResource)?;
        Ok(Notification::Payment(PaymentNotification {
            id: envelope.id,
            event_type: envelope.event_type,
            create_time: envelope.create_time,
            transaction,
        }))
    } else if envelope.event_type.starts_with("REFUND.") {
        let refund =
            serde_json::from_slice(&plain).map_err(NotificationError::MalformedResource)?;
        Ok(Notification::Refund(RefundNotification {
            id: envelope.id,
            event_type: envelope.event_type,
            create_time: envelope.create_time,
            refund,
        }))
    } else {
        Err(NotificationError::UnexpectedEventType(envelope.event_type))
    }
}

/// Verifies and decrypts any notification, returning the envelope and the plaintext.
pub fn open_notification(
    keys: &WechatPayKeys,
    api_v3_key: &ApiV3Key,
    headers: &SignedHeaders,
    raw_body: &[u8],
    now_unix_s: i64,
) -> Result<(NotificationEnvelope, Vec<u8>), NotificationError> {
    headers.verify(keys, raw_body, now_unix_s)?;
    let envelope: NotificationEnvelope =
        serde_json::from_slice(raw_body).map_err(NotificationError::MalformedEnvelope)?;
    let r = &envelope.resource;
    if r.algorithm != ALGORITHM {
        return Err(NotificationError::UnsupportedAlgorithm(r.algorithm.clone()));
    }
    let plain = aead::decrypt(api_v3_key, &r.nonce, &r.associated_data, &r.ciphertext)?;
    Ok((envelope, plain))
}

/// Verifies, decrypts and parses a `TRANSACTION.*` notification.
pub fn parse_payment_notification(
    keys: &WechatPayKeys,
    api_v3_key: &ApiV3Key,
    headers: &SignedHeaders,
    raw_body: &[u8],
    now_unix_s: i64,
) -> Result<PaymentNotification, NotificationError> {
    let (envelope, plain) = open_notification(keys, api_v3_key, headers, raw_body, now_unix_s)?;
    if !envelope.event_type.starts_with("TRANSACTION.") {
        return Err(NotificationError::UnexpectedEventType(envelope.event_type));
    }
    let transaction =
        serde_json::from_slice(&plain).map_err(NotificationError::MalformedResource)?;
    Ok(PaymentNotification {
        id: envelope.id,
        event_type: envelope.event_type,
        create_time: envelope.create_time,
        transaction,
    })
}

/// Verifies, decrypts and parses a `REFUND.*` notification.
pub fn parse_refund_notification(
    keys: &WechatPayKeys,
    api_v3_key: &ApiV3Key,
    headers: &SignedHeaders,
    raw_body: &[u8],
    now_unix_s: i64,
) -> Result<RefundNotification, NotificationError> {
    let (envelope, plain) = open_notification(keys, api_v3_key, headers, raw_body, now_unix_s)?;
    if !envelope.event_type.starts_with("REFUND.") {
        return Err(NotificationError::UnexpectedEventType(envelope.event_type));
    }
    let refund = serde_json::from_slice(&plain).map_err(NotificationError::MalformedResource)?;
    Ok(RefundNotification {
        id: envelope.id,
        event_type: envelope.event_type,
        create_time: envelope.create_time,
        refund,
    })
}
