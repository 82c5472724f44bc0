//! The two signature schemes of API v3 (wechat-notes §3.1, §3.2, §3.4):
//! merchant → WeChat request signatures and the JSAPI `paySign`, and
//! WeChat → merchant response/notification verification.
//!
//! Nothing here reads the clock: timestamps and "now" are arguments, so the
//! ±5 minute window is testable and the sandbox can emit stale messages on purpose.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::Serialize;

use crate::keys::{MerchantKey, SignError, WechatPayKeys};

/// The only signature scheme API v3 uses.
pub const SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";
/// WeChat sends probe notifications whose signature starts with this; they must fail.
pub const SIGNTEST_PREFIX: &str = "WECHATPAY/SIGNTEST/";
/// The replay window for signed timestamps, both directions (all official SDKs use 5 min).
pub const MAX_CLOCK_SKEW_S: i64 = 5 * 60;

/// A fresh 32-character nonce of `[0-9A-F]`.
///
/// # Panics
/// If the operating system's random source fails.
pub fn new_nonce() -> String {
    let mut bytes = [0u8; 16];
    // The OS RNG failing is not something a payment request can recover from.
    SystemRandom::new()
        .fill(&mut bytes)
        .unwrap_or_else(|_| panic!("operating system RNG unavailable"));
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// `METHOD\nURL\nts\nnonce\nbody\n` — the string a merchant request signs.
/// `canonical_url` is the path plus `?query` exactly as sent, without host.
pub fn request_message(
    method: &str,
    canonical_url: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut m = format!("{method}\n{canonical_url}\n{timestamp}\n{nonce}\n").into_bytes();
    m.extend_from_slice(body);
    m.push(b'\n');
    m
}

/// `ts\nnonce\nbody\n` — the string WeChat signs on responses and notifications.
pub fn response_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!("{timestamp}\n{nonce}\n").into_bytes();
    m.extend_from_slice(body);
    m.push(b'\n');
    m
}

/// The fields of an `Authorization: WECHATPAY2-SHA256-RSA2048 …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// Merchant id.
    pub mchid: String,
    /// Request nonce.
    pub nonce_str: String,
    /// Unix seconds, as signed.
    pub timestamp: String,
    /// Merchant API certificate serial.
    pub serial_no: String,
    /// Base64 signature.
    pub signature: String,
}

impl Authorization {
    /// Signs a request and returns the header fields.
    #[expect(
        clippy::too_many_arguments,
        reason = "mirrors the signed message's fields"
    )]
    pub fn sign(
        key: &MerchantKey,
        mchid: &str,
        serial_no: &str,
        method: &str,
        canonical_url: &str,
        timestamp: i64,
        nonce: &str,
        body: &[u8],
    ) -> Result<Self, SignError> {
        let message = request_message(method, canonical_url, timestamp, nonce, body);
        Ok(Self {
            mchid: mchid.to_owned(),
            nonce_str: nonce.to_owned(),
            timestamp: timestamp.to_string(),
            serial_no: serial_no.to_owned(),
            signature: key.sign_base64(&message)?,
        })
    }

    /// Renders the header value.
    pub fn header_value(&self) -> String {
        format!(
            "{SCHEME} mchid=\"{}\",nonce_str=\"{}\",signature=\"{}\",timestamp=\"{}\",serial_no=\"{}\"",
            self.mchid, self.nonce_str, self.signature, self.timestamp, self.serial_no
        )
    }

    /// Parses a header value (field order is free; all five fields are required).
    pub fn parse(value: &str) -> Option<Self> {
        let params = value.strip_prefix(SCHEME)?.strip_prefix(' ')?;
        let (mut mchid, mut nonce, mut ts, mut serial, mut sig) = (None, None, None, None, None);
        for part in params.split(',') {
            let (k, v) = part.trim().split_once('=')?;
            let v = v.strip_prefix('"')?.strip_suffix('"')?.to_owned();
            match k {
                "mchid" => mchid = Some(v),
                "nonce_str" => nonce = Some(v),
                "timestamp" => ts = Some(v),
                "serial_no" => serial = Some(v),
                "signature" => sig = Some(v),
                _ => return None,
            }
        }
        Some(Self {
            mchid: mchid?,
            nonce_str: nonce?,
            timestamp: ts?,
            serial_no: serial?,
            signature: sig?,
        })
    }
}

/// The `Wechatpay-*` headers on a response or notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `Wechatpay-Timestamp` (unix seconds, as text).
    pub timestamp: String,
    /// `Wechatpay-Nonce`.
    pub nonce: String,
    /// `Wechatpay-Signature` (base64, or a `WECHATPAY/SIGNTEST/` probe).
    pub signature: String,
    /// `Wechatpay-Serial`: a `PUB_KEY_ID_…` or a platform certificate serial.
    pub serial: String,
}

/// Header names, as WeChat sends them.
pub mod header {
    /// `Wechatpay-Timestamp`.
    pub const TIMESTAMP: &str = "Wechatpay-Timestamp";
    /// `Wechatpay-Nonce`.
    pub const NONCE: &str = "Wechatpay-Nonce";
    /// `Wechatpay-Signature`.
    pub const SIGNATURE: &str = "Wechatpay-Signature";
    /// `Wechatpay-Serial`.
    pub const SERIAL: &str = "Wechatpay-Serial";
    /// `Wechatpay-Signature-Type`.
    pub const SIGNATURE_TYPE: &str = "Wechatpay-Signature-Type";
    /// `Request-ID`.
    pub const REQUEST_ID: &str = "Request-ID";
}

impl SignedHeaders {
    /// Reads the four headers through a case-insensitive lookup.
    pub fn from_lookup<'a>(lookup: impl Fn(&str) -> Option<&'a str>) -> Result<Self, VerifyError> {
        let get = |name: &'static str| {
            lookup(name)
                .map(str::to_owned)
                .ok_or(VerifyError::MissingHeader(name))
        };
        Ok(Self {
            timestamp: get(header::TIMESTAMP)?,
            nonce: get(header::NONCE)?,
            signature: get(header::SIGNATURE)?,
            serial: get(header::SERIAL)?,
        })
    }

    /// Reads the headers from an `http` header map (axum's and reqwest's type).
    pub fn from_header_map(headers: &axum::http::HeaderMap) -> Result<Self, VerifyError> {
        Self::from_lookup(|name| headers.get(name).and_then(|v| v.to_str().ok()))
    }

    /// Signs `body` as WeChat would (sandbox side).
    pub fn sign(
        key: &MerchantKey,
        serial: &str,
        timestamp: i64,
        nonce: &str,
        body: &[u8],
    ) -> Result<Self, SignError> {
        let timestamp = timestamp.to_string();
        let signature = key.sign_base64(&response_message(&timestamp, nonce, body))?;
        Ok(Self {
            timestamp,
            nonce: nonce.to_owned(),
            signature,
            serial: serial.to_owned(),
        })
    }

    /// The headers as `(name, value)` pairs, ready to attach to a message.
    pub fn to_pairs(&self) -> [(&'static str, String); 5] {
        [
            (header::TIMESTAMP, self.timestamp.clone()),
            (header::NONCE, self.nonce.clone()),
            (header::SIGNATURE, self.signature.clone()),
            (header::SERIAL, self.serial.clone()),
            (header::SIGNATURE_TYPE, SCHEME.to_owned()),
        ]
    }

    /// Verifies these headers over the raw `body` bytes.
    ///
    /// Checks run cheapest-and-most-specific first so each forgery gets its own
    /// error: probe, unknown key, bad timestamp, stale timestamp, bad signature.
    pub fn verify(
        &self,
        keys: &WechatPayKeys,
        body: &[u8],
        now_unix_s: i64,
    ) -> Result<(), VerifyError> {
        if self.signature.starts_with(SIGNTEST_PREFIX) {
            return Err(VerifyError::SignatureProbe);
        }
        let key = keys
            .key_for_serial(&self.serial)
            .ok_or_else(|| VerifyError::UnknownSerial(self.serial.clone()))?;
        let ts: i64 = self
            .timestamp
            .parse()
            .map_err(|_| VerifyError::MalformedTimestamp)?;
        if (now_unix_s - ts).abs() >= MAX_CLOCK_SKEW_S {
            return Err(VerifyError::StaleTimestamp {
                timestamp: ts,
                now: now_unix_s,
            });
        }
        let signature = STANDARD
            .decode(&self.signature)
            .map_err(|_| VerifyError::BadSignature)?;
        if key.verify(
            &response_message(&self.timestamp, &self.nonce, body),
            &signature,
        ) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }
}

/// Why a WeChat signature was rejected. Each forgery class has its own variant
/// so callers (and tests) can tell them apart; none of them may be acted on.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// A required `Wechatpay-*` header is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A `WECHATPAY/SIGNTEST/` probe; answer non-2xx and the real one follows.
    #[error("WeChat Pay signature probe (WECHATPAY/SIGNTEST)")]
    SignatureProbe,
    /// `Wechatpay-Serial` names no key we trust.
    #[error("unknown Wechatpay-Serial {0}")]
    UnknownSerial(String),
    /// `Wechatpay-Timestamp` is not an integer.
    #[error("malformed Wechatpay-Timestamp")]
    MalformedTimestamp,
    /// `Wechatpay-Timestamp` is outside the ±5 minute window.
    #[error("stale Wechatpay-Timestamp {timestamp} (now {now})")]
    StaleTimestamp {
        /// The signed timestamp.
        timestamp: i64,
        /// Our clock.
        now: i64,
    },
    /// The signature does not verify over the raw body.
    #[error("signature does not verify")]
    BadSignature,
}

/// The object handed to `WeixinJSBridge.invoke('getBrandWCPayRequest', …)`.
/// Field names are the bridge's camelCase; serialize it straight into the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JsapiPayParams {
    /// The service-account AppID.
    pub app_id: String,
    /// Unix seconds as a string (the bridge insists on a string).
    pub time_stamp: String,
    /// Random nonce.
    pub nonce_str: String,
    /// `prepay_id=…`.
    pub package: String,
    /// Always `RSA`.
    pub sign_type: String,
    /// base64 SHA256withRSA over `appId\ntimeStamp\nnonceStr\npackage\n`.
    pub pay_sign: String,
}

impl JsapiPayParams {
    /// Builds and signs the bridge parameters for a prepay id. `signType` is
    /// not part of the signed string; line 4 is the full `prepay_id=…` value
    /// (the APP flavour signs the bare id — wechat-notes §3.4, vector V2).
    pub fn sign(
        key: &MerchantKey,
        appid: &str,
        prepay_id: &str,
        timestamp: i64,
        nonce: &str,
    ) -> Result<Self, SignError> {
        let package = format!("prepay_id={prepay_id}");
        let time_stamp = timestamp.to_string();
        let message = format!("{appid}\n{time_stamp}\n{nonce}\n{package}\n");
        Ok(Self {
            app_id: appid.to_owned(),
            time_stamp,
            nonce_str: nonce.to_owned(),
            package,
            sign_type: "RSA".to_owned(),
            pay_sign: key.sign_base64(message.as_bytes())?,
        })
    }
}
