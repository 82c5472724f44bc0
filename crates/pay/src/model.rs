//! Wire types of the v3 endpoints we use (wechat-notes §3.3–§3.9).
//!
//! Money is integer fen (`i64`) as in the v3 JSON. Fields WeChat may omit are
//! `Option`s, and `None` is never serialized because the newer docs forbid
//! JSON `null`.

use serde::{Deserialize, Serialize};

use crate::config::WechatPayConfig;

/// What the caller asks for when creating a JSAPI payment; the client adds
/// appid, mchid and notify_url from its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsapiOrder {
    /// Shown in the payer's bill; ≤127 bytes, no emoji.
    pub description: String,
    /// Our order id: 6–32 chars of `[0-9A-Za-z_-*]`, unique per merchant.
    pub out_trade_no: String,
    /// Amount in fen, ≥1.
    pub amount_fen: i64,
    /// The payer's openid under our appid.
    pub payer_openid: String,
    /// Last moment to pay (unix seconds); sent as RFC 3339 `+08:00`.
    pub time_expire_unix_s: Option<i64>,
    /// Echoed back in query results and notifications (≤128 bytes).
    pub attach: Option<String>,
}

/// `amount` of a prepay request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepayAmount {
    /// Fen.
    pub total: i64,
    /// Always `CNY` for us.
    #[serde(default = "cny")]
    pub currency: String,
}

fn cny() -> String {
    "CNY".to_owned()
}

/// `payer` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payer {
    /// openid under the appid.
    pub openid: String,
}

/// `POST /v3/pay/transactions/jsapi` request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsapiPrepayRequest {
    /// Service-account AppID.
    pub appid: String,
    /// Merchant id.
    pub mchid: String,
    /// Goods description.
    pub description: String,
    /// Our order id.
    pub out_trade_no: String,
    /// RFC 3339 deadline to pay.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub time_expire: Option<String>,
    /// Opaque merchant data.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attach: Option<String>,
    /// Where WeChat posts the payment notification.
    pub notify_url: String,
    /// Amount.
    pub amount: PrepayAmount,
    /// Payer.
    pub payer: Payer,
}

impl JsapiPrepayRequest {
    /// Fills in the merchant fields for an order.
    pub fn new(config: &WechatPayConfig, order: &JsapiOrder) -> Self {
        Self {
            appid: config.appid.clone(),
            mchid: config.mchid.clone(),
            description: order.description.clone(),
            out_trade_no: order.out_trade_no.clone(),
            time_expire: order.time_expire_unix_s.map(crate::time::format_beijing),
            attach: order.attach.clone(),
            notify_url: config.notify_url.clone(),
            amount: PrepayAmount {
                total: order.amount_fen,
                currency: cny(),
            },
            payer: Payer {
                openid: order.payer_openid.clone(),
            },
        }
    }
}

/// Prepay response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepayResponse {
    /// Valid for 2 h.
    pub prepay_id: String,
}

/// `trade_state` of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TradeState {
    /// Paid. The only state that credits kWh.
    Success,
    /// Paid, then (partly) refunded.
    Refund,
    /// Not paid (yet).
    Notpay,
    /// Closed by us or by expiry; terminal.
    Closed,
    /// Revoked (payment-code flows only).
    Revoked,
    /// Waiting for the payer (e.g. password entry).
    Userpaying,
    /// Payment failed.
    Payerror,
    /// A state this code does not know; treat as "not paid, ask again later".
    #[serde(other)]
    Unknown,
}

/// `amount` of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TransactionAmount {
    /// Order total, fen.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub total: Option<i64>,
    /// What the payer actually paid (total minus coupons), fen.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub payer_total: Option<i64>,
    /// Currency.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub currency: Option<String>,
    /// Payer currency.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub payer_currency: Option<String>,
}

/// A transaction: the query-order response and the decrypted payment notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// AppID the order was made under.
    pub appid: String,
    /// Merchant id.
    pub mchid: String,
    /// Our order id.
    pub out_trade_no: String,
    /// WeChat's order id (absent before payment).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub transaction_id: Option<String>,
    /// `JSAPI`, `NATIVE`, …
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub trade_type: Option<String>,
    /// State.
    pub trade_state: TradeState,
    /// Human-readable state.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub trade_state_desc: Option<String>,
    /// Payer's bank.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bank_type: Option<String>,
    /// Echo of `attach`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attach: Option<String>,
    /// RFC 3339 payment time.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub success_time: Option<String>,
    /// Payer.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub payer: Option<Payer>,
    /// Amounts.
    #[serde(default)]
    pub amount: TransactionAmount,
}

/// A transaction was not made for our merchant account.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("transaction belongs to appid {appid} / mchid {mchid}, not ours")]
pub struct MerchantMismatch {
    /// The appid in the message.
    pub appid: String,
    /// The mchid in the message.
    pub mchid: String,
}

impl Transaction {
    /// Order total in fen, if present.
    pub fn total_fen(&self) -> Option<i64> {
        self.amount.total
    }

    /// Amount the payer paid in fen, if present.
    pub fn payer_total_fen(&self) -> Option<i64> {
        self.amount.payer_total
    }

    /// `success_time` as unix seconds.
    pub fn success_time_unix_s(&self) -> Option<i64> {
        self.success_time
            .as_deref()
            .and_then(crate::time::parse_rfc3339)
    }

    /// The payer's openid.
    pub fn payer_openid(&self) -> Option<&str> {
        self.payer.as_ref().map(|p| p.openid.as_str())
    }

    /// Checks appid and mchid against our config. Amount and out_trade_no
    /// must still be compared with our own order by the caller.
    pub fn check_merchant(&self, config: &WechatPayConfig) -> Result<(), MerchantMismatch> {
        if self.appid == config.appid && self.mchid == config.mchid {
            Ok(())
        } else {
            Err(MerchantMismatch {
                appid: self.appid.clone(),
                mchid: self.mchid.clone(),
            })
        }
    }
}

/// `POST .../close` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CloseRequest {
    /// Merchant id.
    pub mchid: String,
}

/// What the caller asks for when refunding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundOrder {
    /// The paid order.
    pub out_trade_no: String,
    /// Our refund id; re-submitting the same one refunds only once, so a
    /// failed refund must be retried with the same value.
    pub out_refund_no: String,
    /// Shown in the payer's refund message.
    pub reason: Option<String>,
    /// Amount to refund, fen.
    pub refund_fen: i64,
    /// The original order total, fen.
    pub total_fen: i64,
}

/// `amount` of a refund request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequestAmount {
    /// Fen to refund.
    pub refund: i64,
    /// Original order total, fen.
    pub total: i64,
    /// `CNY`.
    pub currency: String,
}

/// `POST /v3/refund/domestic/refunds` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    /// The paid order (empty when it is named by `transaction_id`).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub out_trade_no: String,
    /// WeChat's id of the paid order, the alternative to `out_trade_no`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub transaction_id: Option<String>,
    /// Our refund id.
    pub out_refund_no: String,
    /// Reason shown to the payer.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// Where refund notifications go.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub notify_url: Option<String>,
    /// Amounts.
    pub amount: RefundRequestAmount,
}

impl RefundRequest {
    /// Builds the body for a refund, taking the refund notify URL from config.
    pub fn new(config: &WechatPayConfig, order: &RefundOrder) -> Self {
        Self {
            out_trade_no: order.out_trade_no.clone(),
            transaction_id: None,
            out_refund_no: order.out_refund_no.clone(),
            reason: order.reason.clone(),
            notify_url: config.refund_notify_url.clone(),
            amount: RefundRequestAmount {
                refund: order.refund_fen,
                total: order.total_fen,
                currency: cny(),
            },
        }
    }
}

/// Refund status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundStatus {
    /// Money returned.
    Success,
    /// Refund closed.
    Closed,
    /// In progress.
    Processing,
    /// Failed; needs manual handling (e.g. the payer's card was cancelled).
    Abnormal,
    /// Unknown to this code.
    #[serde(other)]
    Unknown,
}

/// `amount` of a refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RefundAmount {
    /// Original order total, fen.
    pub total: i64,
    /// Refunded, fen.
    pub refund: i64,
    /// Payer paid, fen.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub payer_total: Option<i64>,
    /// Refunded to the payer, fen.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub payer_refund: Option<i64>,
    /// Settlement refund, fen.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub settlement_refund: Option<i64>,
    /// Settlement total, fen.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub settlement_total: Option<i64>,
    /// Discount refunded, fen.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub discount_refund: Option<i64>,
    /// Currency.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub currency: Option<String>,
}

/// A refund: the create/query response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// WeChat's refund id.
    pub refund_id: String,
    /// Our refund id.
    pub out_refund_no: String,
    /// WeChat's order id.
    pub transaction_id: String,
    /// Our order id.
    pub out_trade_no: String,
    /// `ORIGINAL`, `BALANCE`, …
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub channel: Option<String>,
    /// Where the money went, e.g. "支付用户零钱".
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_received_account: Option<String>,
    /// RFC 3339, when it succeeded.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub success_time: Option<String>,
    /// RFC 3339, when it was created.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub create_time: Option<String>,
    /// Status.
    pub status: RefundStatus,
    /// Funds account.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub funds_account: Option<String>,
    /// Amounts.
    pub amount: RefundAmount,
}

/// `amount` in a refund notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundNotifyAmount {
    /// Order total, fen.
    pub total: i64,
    /// Refunded, fen.
    pub refund: i64,
    /// Payer paid, fen.
    pub payer_total: i64,
    /// Refunded to payer, fen.
    pub payer_refund: i64,
}

/// Decrypted `resource` of a REFUND.* notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundResult {
    /// Merchant id.
    pub mchid: String,
    /// WeChat's order id.
    pub transaction_id: String,
    /// Our order id.
    pub out_trade_no: String,
    /// WeChat's refund id.
    pub refund_id: String,
    /// Our refund id.
    pub out_refund_no: String,
    /// Status.
    pub refund_status: RefundStatus,
    /// RFC 3339 success time.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub success_time: Option<String>,
    /// Where the money went.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_received_account: Option<String>,
    /// Amounts.
    pub amount: RefundNotifyAmount,
}

impl RefundResult {
    /// Checks the mchid against our config (refund notifications carry no appid).
    pub fn check_merchant(&self, config: &WechatPayConfig) -> Result<(), MerchantMismatch> {
        if self.mchid == config.mchid {
            Ok(())
        } else {
            Err(MerchantMismatch {
                appid: String::new(),
                mchid: self.mchid.clone(),
            })
        }
    }
}

/// Which rows a trade bill holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillType {
    /// Everything (default).
    All,
    /// Successful payments only.
    Success,
    /// Refunds only.
    Refund,
}

impl BillType {
    /// Query-string spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "ALL",
            Self::Success => "SUCCESS",
            Self::Refund => "REFUND",
        }
    }
}

/// `GET /v3/bill/tradebill` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeBillResponse {
    /// `SHA1`.
    pub hash_type: String,
    /// Hex SHA-1 of the uncompressed bill.
    pub hash_value: String,
    /// Short-lived download URL (download it with a signed GET).
    pub download_url: String,
}

/// Error body of a non-2xx response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// e.g. `PARAM_ERROR`, `ORDER_NOT_EXIST`.
    pub code: String,
    /// Human-readable message (Chinese).
    pub message: String,
    /// Extra detail, shape varies.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<serde_json::Value>,
}
