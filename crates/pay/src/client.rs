//! The HTTP client for API v3 and the [`PaymentProvider`] trait the web crate holds.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bill::{self, BillError, TradeBill};
use crate::config::{ConfigError, WechatPayConfig};
use crate::keys::SignError;
use crate::model::{
    ApiErrorBody, BillType, CloseRequest, JsapiOrder, JsapiPrepayRequest, PrepayResponse, Refund,
    RefundOrder, RefundRequest, TradeBillResponse, Transaction,
};
use crate::notify::{
    self, Notification, NotificationError, PaymentNotification, RefundNotification,
};
use crate::sign::{self, Authorization, JsapiPayParams, SignedHeaders, VerifyError};

/// Where "now" comes from. The protocol core takes time as an argument; the
/// client and sandbox ask this, so tests can pin or skew it.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Current unix time in seconds.
    fn now_unix_s(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_s(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

/// A clock offset from the system clock by a fixed number of seconds
/// (tests use it to produce stale signatures).
#[derive(Debug, Clone, Copy)]
pub struct OffsetClock(pub i64);

impl Clock for OffsetClock {
    fn now_unix_s(&self) -> i64 {
        SystemClock.now_unix_s() + self.0
    }
}

/// Largest API response body we accept (JSON answers are a few KiB).
const API_BODY_LIMIT_BYTES: usize = 1 << 20;
/// Largest bill we accept (a busy campus day is well under this).
const BILL_BODY_LIMIT_BYTES: usize = 64 << 20;

/// Why a WeChat Pay call failed.
#[derive(Debug, thiserror::Error)]
pub enum PayError {
    /// The configuration cannot work.
    #[error("invalid WeChat Pay config: {0}")]
    Config(#[from] ConfigError),
    /// Network failure or timeout: the outcome is unknown, query before acting.
    #[error("transport error: {0}")]
    Transport(#[from] reqwest::Error),
    /// WeChat answered with an error status and body.
    #[error("WeChat Pay error {status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Error code, e.g. `ORDER_NOT_EXIST`.
        code: String,
        /// Message (Chinese).
        message: String,
    },
    /// A 2xx response whose signature did not verify: treat it as forged.
    #[error("response signature rejected: {0}")]
    ResponseSignature(#[from] VerifyError),
    /// The response body was not what the endpoint returns.
    #[error("unexpected response body: {0}")]
    Decode(#[from] serde_json::Error),
    /// The response exceeded our size limit.
    #[error("response body over {0} bytes")]
    BodyTooLarge(usize),
    /// The bill failed to verify or parse.
    #[error("bill: {0}")]
    Bill(#[from] BillError),
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The API base URL plus path did not form a URL.
    #[error("bad URL {0}")]
    BadUrl(String),
}

impl PayError {
    /// The WeChat error code, if WeChat answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the order/refund does not exist on WeChat's side.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.code(),
            Some("ORDER_NOT_EXIST" | "ORDERNOTEXIST" | "RESOURCE_NOT_EXISTS")
        )
    }

    /// Whether retrying with the *same* parameters is the documented reaction
    /// (transport failure, 429, 5xx). The outcome of the failed call is unknown.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Api { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// Result of creating a JSAPI payment: what the payment page needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsapiPayment {
    /// The prepay id (valid 2 h).
    pub prepay_id: String,
    /// Signed parameters for `WeixinJSBridge.invoke('getBrandWCPayRequest', …)`.
    pub pay_params: JsapiPayParams,
    /// Sandbox only: send the student here instead of invoking the bridge.
    pub cashier_url: Option<String>,
}

/// A boxed future, so the trait can be used as `Arc<dyn PaymentProvider>`.
pub type PayFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, PayError>> + Send + 'a>>;

/// The payment operations the order logic needs, implemented by
/// [`WechatPayClient`] (production and sandbox alike) and by test doubles.
pub trait PaymentProvider: Send + Sync {
    /// Prepay + `paySign`: everything the payment page needs.
    fn create_jsapi_order<'a>(&'a self, order: &'a JsapiOrder) -> PayFuture<'a, JsapiPayment>;
    /// Authoritative order state.
    fn query_order<'a>(&'a self, out_trade_no: &'a str) -> PayFuture<'a, Transaction>;
    /// Closes an unpaid order. Always re-query afterwards (a wrong id may also get 204).
    fn close_order<'a>(&'a self, out_trade_no: &'a str) -> PayFuture<'a, ()>;
    /// Requests a refund (idempotent per `out_refund_no`).
    fn create_refund<'a>(&'a self, refund: &'a RefundOrder) -> PayFuture<'a, Refund>;
    /// Refund state.
    fn query_refund<'a>(&'a self, out_refund_no: &'a str) -> PayFuture<'a, Refund>;
    /// Fetches, hash-checks and parses a day's trade bill (`YYYY-MM-DD`, Beijing day).
    fn fetch_trade_bill<'a>(
        &'a self,
        bill_date: &'a str,
        bill_type: BillType,
    ) -> PayFuture<'a, TradeBill>;
    /// Verifies and decrypts a payment notification from its headers and raw body.
    fn parse_payment_notification(
        &self,
        headers: &HeaderMap,
        raw_body: &[u8],
    ) -> Result<PaymentNotification, NotificationError>;
    /// Verifies and decrypts a refund notification.
    fn parse_refund_notification(
        &self,
        headers: &HeaderMap,
        raw_body: &[u8],
    ) -> Result<RefundNotification, NotificationError>;
    /// Verifies and decrypts a notification of either kind (one notify URL for both).
    fn parse_notification(
        &self,
        headers: &HeaderMap,
        raw_body: &[u8],
    ) -> Result<Notification, NotificationError>;
}

/// The WeChat Pay API v3 client. Cheap to clone (shares its connection pool).
#[derive(Clone)]
pub struct WechatPayClient {
    config: Arc<WechatPayConfig>,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for WechatPayClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatPayClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Percent-encodes a path segment. Valid ids are `[0-9A-Za-z_\-*|@]`, so
/// this only matters for garbage input, which must not change the path.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'*' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl WechatPayClient {
    /// Validates the config and builds a client on the system clock.
    pub fn new(config: WechatPayConfig) -> Result<Self, PayError> {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// Like [`Self::new`] with an explicit clock.
    pub fn with_clock(config: WechatPayConfig, clock: Arc<dyn Clock>) -> Result<Self, PayError> {
        config.validate()?;
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(config.user_agent.clone())
            // A redirect would change the URL we signed; WeChat never redirects.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            config: Arc::new(config),
            http,
            clock,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &WechatPayConfig {
        &self.config
    }

    /// The path WeChat's SDKs sign: the URL's path below the gateway. For
    /// WeChat's own host (no path) that is the whole path; for a gateway
    /// with a prefix (`http://host/prefix`) the prefix is not signed, so
    /// requests verify wherever the API is mounted.
    fn gateway_relative_path<'u>(&self, url: &'u reqwest::Url) -> &'u str {
        let gateway = reqwest::Url::parse(&self.config.api_base_url).ok();
        let prefix = gateway
            .as_ref()
            .filter(|g| g.origin() == url.origin())
            .map_or("", |g| g.path().trim_end_matches('/'));
        match url.path().strip_prefix(prefix) {
            Some(rest) if !prefix.is_empty() && rest.starts_with('/') => rest,
            _ => url.path(),
        }
    }

    /// Signs and sends a request; returns status and raw body of a 2xx answer.
    /// `verify` is false only for bill downloads, which WeChat does not sign.
    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
        verify: bool,
        limit_bytes: usize,
    ) -> Result<(StatusCode, Vec<u8>), PayError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| PayError::BadUrl(url.to_owned()))?;
        let path = self.gateway_relative_path(&parsed);
        let canonical = match parsed.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        };
        let body_bytes = body.unwrap_or_default();
        let nonce = sign::new_nonce();
        let auth = Authorization::sign(
            &self.config.merchant_key,
            &self.config.mchid,
            &self.config.merchant_serial_no,
            method.as_str(),
            &canonical,
            self.clock.now_unix_s(),
            &nonce,
            &body_bytes,
        )?;
        let mut request = self
            .http
            .request(method.clone(), parsed)
            .header("Authorization", auth.header_value())
            .header("Accept", "application/json");
        if let Some(id) = self.config.wechatpay_keys.public_key_id() {
            request = request.header(sign::header::SERIAL, id);
        }
        if method != Method::GET {
            request = request
                .header("Content-Type", "application/json")
                .body(body_bytes);
        }
        let mut response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut raw = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if raw.len() + chunk.len() > limit_bytes {
                return Err(PayError::BodyTooLarge(limit_bytes));
            }
            raw.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            // Error answers are not trusted for state, so an unsigned one does
            // no harm: it can only make us fail and retry.
            let err: Option<ApiErrorBody> = serde_json::from_slice(&raw).ok();
            return Err(match err {
                Some(e) => PayError::Api {
                    status: status.as_u16(),
                    code: e.code,
                    message: e.message,
                },
                None => PayError::Api {
                    status: status.as_u16(),
                    code: String::new(),
                    message: String::from_utf8_lossy(&raw).chars().take(200).collect(),
                },
            });
        }
        if verify {
            SignedHeaders::from_header_map(&headers)?.verify(
                &self.config.wechatpay_keys,
                &raw,
                self.clock.now_unix_s(),
            )?;
        }
        Ok((status, raw))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, PayError> {
        let url = format!("{}{path}", self.config.api_base_url);
        let body = body.map(serde_json::to_vec).transpose()?;
        let (_, raw) = self
            .send(method, &url, body, true, API_BODY_LIMIT_BYTES)
            .await?;
        Ok(serde_json::from_slice(&raw)?)
    }

    /// `POST /v3/pay/transactions/jsapi`; returns the prepay id.
    pub async fn prepay_jsapi(&self, order: &JsapiOrder) -> Result<String, PayError> {
        let body = JsapiPrepayRequest::new(&self.config, order);
        let r: PrepayResponse = self
            .call(Method::POST, "/v3/pay/transactions/jsapi", Some(&body))
            .await?;
        Ok(r.prepay_id)
    }

    /// Signs bridge parameters for a prepay id at the current time.
    pub fn jsapi_pay_params(&self, prepay_id: &str) -> Result<JsapiPayParams, PayError> {
        Ok(JsapiPayParams::sign(
            &self.config.merchant_key,
            &self.config.appid,
            prepay_id,
            self.clock.now_unix_s(),
            &sign::new_nonce(),
        )?)
    }

    /// Prepay plus bridge parameters (and the sandbox cashier link, if configured).
    pub async fn create_jsapi_payment(&self, order: &JsapiOrder) -> Result<JsapiPayment, PayError> {
        let prepay_id = self.prepay_jsapi(order).await?;
        let pay_params = self.jsapi_pay_params(&prepay_id)?;
        let cashier_url = self
            .config
            .cashier_url
            .as_ref()
            .map(|base| format!("{base}?prepay_id={}", encode_segment(&prepay_id)));
        Ok(JsapiPayment {
            prepay_id,
            pay_params,
            cashier_url,
        })
    }

    /// `GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=…`.
    pub async fn query_by_out_trade_no(&self, out_trade_no: &str) -> Result<Transaction, PayError> {
        let path = format!(
            "/v3/pay/transactions/out-trade-no/{}?mchid={}",
            encode_segment(out_trade_no),
            encode_segment(&self.config.mchid)
        );
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// `POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close` (204).
    pub async fn close(&self, out_trade_no: &str) -> Result<(), PayError> {
        let url = format!(
            "{}/v3/pay/transactions/out-trade-no/{}/close",
            self.config.api_base_url,
            encode_segment(out_trade_no)
        );
        let body = serde_json::to_vec(&CloseRequest {
            mchid: self.config.mchid.clone(),
        })?;
        self.send(Method::POST, &url, Some(body), true, API_BODY_LIMIT_BYTES)
            .await?;
        Ok(())
    }

    /// `POST /v3/refund/domestic/refunds`.
    pub async fn refund(&self, order: &RefundOrder) -> Result<Refund, PayError> {
        let body = RefundRequest::new(&self.config, order);
        self.call(Method::POST, "/v3/refund/domestic/refunds", Some(&body))
            .await
    }

    /// `GET /v3/refund/domestic/refunds/{out_refund_no}`.
    pub async fn query_refund(&self, out_refund_no: &str) -> Result<Refund, PayError> {
        let path = format!(
            "/v3/refund/domestic/refunds/{}",
            encode_segment(out_refund_no)
        );
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// `GET /v3/bill/tradebill?bill_date=…&bill_type=…` (uncompressed).
    pub async fn trade_bill(
        &self,
        bill_date: &str,
        bill_type: BillType,
    ) -> Result<TradeBillResponse, PayError> {
        let path = format!(
            "/v3/bill/tradebill?bill_date={}&bill_type={}",
            encode_segment(bill_date),
            bill_type.as_str()
        );
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// Downloads a bill (signed GET, unsigned answer), checks its SHA-1 and parses it.
    pub async fn download_bill(&self, bill: &TradeBillResponse) -> Result<TradeBill, PayError> {
        let (_, raw) = self
            .send(
                Method::GET,
                &bill.download_url,
                None,
                false,
                BILL_BODY_LIMIT_BYTES,
            )
            .await?;
        bill::check_bill_hash(&raw, &bill.hash_type, &bill.hash_value)?;
        let text = std::str::from_utf8(&raw).map_err(|_| BillError::NotUtf8)?;
        Ok(bill::parse_trade_bill(text)?)
    }

    /// Verifies and decrypts a payment notification (raw body bytes!).
    pub fn payment_notification(
        &self,
        headers: &SignedHeaders,
        raw_body: &[u8],
    ) -> Result<PaymentNotification, NotificationError> {
        notify::parse_payment_notification(
            &self.config.wechatpay_keys,
            &self.config.api_v3_key,
            headers,
            raw_body,
            self.clock.now_unix_s(),
        )
    }

    /// Verifies and decrypts a notification of either kind (raw body bytes!).
    pub fn notification(
        &self,
        headers: &SignedHeaders,
        raw_body: &[u8],
    ) -> Result<Notification, NotificationError> {
        notify::parse_notification(
            &self.config.wechatpay_keys,
            &self.config.api_v3_key,
            headers,
            raw_body,
            self.clock.now_unix_s(),
        )
    }

    /// Verifies and decrypts a refund notification (raw body bytes!).
    pub fn refund_notification(
        &self,
        headers: &SignedHeaders,
        raw_body: &[u8],
    ) -> Result<RefundNotification, NotificationError> {
        notify::parse_refund_notification(
            &self.config.wechatpay_keys,
            &self.config.api_v3_key,
            headers,
            raw_body,
            self.clock.now_unix_s(),
        )
    }
}

impl PaymentProvider for WechatPayClient {
    fn create_jsapi_order<'a>(&'a self, order: &'a JsapiOrder) -> PayFuture<'a, JsapiPayment> {
        Box::pin(self.create_jsapi_payment(order))
    }

    fn query_order<'a>(&'a self, out_trade_no: &'a str) -> PayFuture<'a, Transaction> {
        Box::pin(self.query_by_out_trade_no(out_trade_no))
    }

    fn close_order<'a>(&'a self, out_trade_no: &'a str) -> PayFuture<'a, ()> {
        Box::pin(self.close(out_trade_no))
    }

    fn create_refund<'a>(&'a self, refund: &'a RefundOrder) -> PayFuture<'a, Refund> {
        Box::pin(self.refund(refund))
    }

    fn query_refund<'a>(&'a self, out_refund_no: &'a str) -> PayFuture<'a, Refund> {
        Box::pin(WechatPayClient::query_refund(self, out_refund_no))
    }

    fn fetch_trade_bill<'a>(
        &'a self,
        bill_date: &'a str,
        bill_type: BillType,
    ) -> PayFuture<'a, TradeBill> {
        Box::pin(async move {
            let meta = self.trade_bill(bill_date, bill_type).await?;
            self.download_bill(&meta).await
        })
    }

    fn parse_payment_notification(
        &self,
        headers: &HeaderMap,
        raw_body: &[u8],
    ) -> Result<PaymentNotification, NotificationError> {
        let signed = SignedHeaders::from_header_map(headers)?;
        self.payment_notification(&signed, raw_body)
    }

    fn parse_refund_notification(
        &self,
        headers: &HeaderMap,
        raw_body: &[u8],
    ) -> Result<RefundNotification, NotificationError> {
        let signed = SignedHeaders::from_header_map(headers)?;
        self.refund_notification(&signed, raw_body)
    }

    fn parse_notification(
        &self,
        headers: &HeaderMap,
        raw_body: &[u8],
    ) -> Result<Notification, NotificationError> {
        let signed = SignedHeaders::from_header_map(headers)?;
        self.notification(&signed, raw_body)
    }
}
