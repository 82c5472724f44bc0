//! WeChat official-account APIs (wechat-notes §1–2): web-authorization code
//! exchange, the global access token (cached, refreshed before expiry and
//! after WeChat says it expired), user info, template and subscribe
//! messages, menu creation — behind the [`WechatApi`] trait, implemented
//! by [`WechatClient`] over HTTP. [`mock`] (feature `mock`) is a test
//! server speaking the same protocol.
//!
//! Invariant: every call has a timeout (set when the client is built; a
//! client that cannot be built is an error, never a client without
//! timeouts); the AppSecret and access tokens are never logged (request
//! URLs carry them, so transport errors are logged without their URL); an
//! answer is successful only when its `errcode` is absent or 0 (WeChat
//! answers errors with HTTP 200).

#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

mod client;
#[cfg(feature = "mock")]
pub mod mock;

pub use client::WechatClient;

/// The production API host.
pub const PRODUCTION_API_BASE_URL: &str = "https://api.weixin.qq.com";

/// Errcodes we act on (wechat-notes §1.4, §1.5, §2.1).
pub mod errcode {
    /// Invalid code (also a re-used one).
    pub const INVALID_CODE: i64 = 40029;
    /// Code already used.
    pub const CODE_BEEN_USED: i64 = 40163;
    /// Invalid credential: wrong secret, or an access token that is not
    /// (or no longer) valid.
    pub const INVALID_CREDENTIAL: i64 = 40001;
    /// Invalid access token.
    pub const INVALID_ACCESS_TOKEN: i64 = 40014;
    /// Access token expired.
    pub const ACCESS_TOKEN_EXPIRED: i64 = 42001;
    /// Invalid openid.
    pub const INVALID_OPENID: i64 = 40003;
    /// Invalid template id.
    pub const INVALID_TEMPLATE_ID: i64 = 40037;
    /// The recipient does not follow the account.
    pub const REQUIRE_SUBSCRIBE: i64 = 43004;
    /// The user refused or cancelled the subscription.
    pub const SUBSCRIBE_REFUSED: i64 = 43101;
    /// System busy.
    pub const SYSTEM_BUSY: i64 = -1;
}

/// Why a WeChat call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// WeChat answered with a non-zero `errcode`.
    #[error("wechat errcode {errcode}: {errmsg}")]
    Api {
        /// WeChat's error code.
        errcode: i64,
        /// WeChat's message (often ends in `rid: …`).
        errmsg: String,
    },
    /// The call did not complete (connect, timeout, non-200 status). The
    /// text never holds the URL (it carries secrets).
    #[error("wechat transport: {0}")]
    Transport(String),
    /// The answer was not the JSON we expect.
    #[error("wechat answer not understood: {0}")]
    Decode(String),
    /// The client could not be built (e.g. its TLS or timeout setup).
    #[error("wechat client: {0}")]
    Client(String),
}

impl Error {
    /// The errcode of an API error.
    pub fn errcode(&self) -> Option<i64> {
        match self {
            Self::Api { errcode, .. } => Some(*errcode),
            _ => None,
        }
    }

    /// The access token the call used is no longer good (fetch a new one).
    pub fn is_token_rejected(&self) -> bool {
        matches!(
            self.errcode(),
            Some(
                errcode::ACCESS_TOKEN_EXPIRED
                    | errcode::INVALID_CREDENTIAL
                    | errcode::INVALID_ACCESS_TOKEN
            )
        )
    }

    /// The OAuth code was invalid, used or expired (ask the user to log in again).
    pub fn is_bad_code(&self) -> bool {
        matches!(
            self.errcode(),
            Some(errcode::INVALID_CODE | errcode::CODE_BEEN_USED)
        )
    }
}

/// A boxed future of a WeChat call.
pub type WxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// Who a web-authorization code belongs to (`sns/oauth2/access_token`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthIdentity {
    /// The user's openid under our AppID.
    pub openid: String,
    /// WeChat opened a snapshot page: the openid is virtual; never bind or
    /// pay with it.
    pub is_snapshot_user: bool,
    /// The granted scopes (`snsapi_base`, `snsapi_userinfo`).
    pub scopes: Vec<String>,
    /// Only with `snsapi_userinfo` and an Open Platform binding.
    pub unionid: Option<String>,
}

/// The global access token (`cgi-bin/stable_token`).
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The token (never logged).
    pub token: String,
    /// Unix ms after which it must not be used.
    pub expires_at_ms: i64,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// A follower's info (`cgi-bin/user/info`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserInfo {
    /// 1 when the user follows the account (only then are the rest filled).
    pub subscribe: i64,
    /// The openid asked about.
    pub openid: String,
    /// Language, e.g. `zh_CN`.
    #[serde(default)]
    pub language: Option<String>,
    /// When they followed (unix seconds).
    #[serde(default)]
    pub subscribe_time: Option<i64>,
    /// Open Platform unionid, when bound.
    #[serde(default)]
    pub unionid: Option<String>,
}

impl UserInfo {
    /// Follows the account (template messages reach them).
    pub fn follows(&self) -> bool {
        self.subscribe == 1
    }
}

/// One keyword of a template or subscribe message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Keyword {
    /// The text (WeChat truncates past 20 characters).
    pub value: String,
}

/// A template message (`cgi-bin/message/template/send`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateMessage {
    /// Recipient openid (must follow the account).
    pub touser: String,
    /// The template chosen in the console.
    pub template_id: String,
    /// Opened on tap (must be in a JS-safe domain).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// De-duplication id (WeChat drops a repeat for a while).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    /// Keyword → value, per the template's placeholders.
    pub data: std::collections::BTreeMap<String, Keyword>,
}

/// A subscribe notification (`cgi-bin/message/subscribe/bizsend`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscribeMessage {
    /// Recipient openid (must have granted the template).
    pub touser: String,
    /// The template granted.
    pub template_id: String,
    /// Opened on tap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    /// Keyword → value.
    pub data: std::collections::BTreeMap<String, Keyword>,
}

/// One custom-menu button (`cgi-bin/menu/create`); at most 3 top-level
/// buttons with at most 5 sub-buttons each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MenuButton {
    /// `view` (open `url`) for a leaf; absent for a button with sub-buttons.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Label.
    pub name: String,
    /// For `view` buttons.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Sub-buttons.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sub_button: Vec<MenuButton>,
}

/// The official-account APIs dormwatt uses.
pub trait WechatApi: Send + Sync {
    /// Exchanges a web-authorization `code` (single use, 5 minutes) for the
    /// user's openid.
    fn exchange_code<'a>(&'a self, code: &'a str) -> WxFuture<'a, OAuthIdentity>;
    /// The global access token: cached, refreshed before it expires.
    fn access_token(&self) -> WxFuture<'_, AccessToken>;
    /// A follower's info (whether they follow the account).
    fn user_info<'a>(&'a self, openid: &'a str) -> WxFuture<'a, UserInfo>;
    /// Sends a template message; returns WeChat's `msgid`.
    fn send_template<'a>(&'a self, message: &'a TemplateMessage) -> WxFuture<'a, i64>;
    /// Sends a subscribe notification.
    fn send_subscribe<'a>(&'a self, message: &'a SubscribeMessage) -> WxFuture<'a, ()>;
    /// Replaces the account's custom menu.
    fn create_menu<'a>(&'a self, buttons: &'a [MenuButton]) -> WxFuture<'a, ()>;
}

/// A source of unix milliseconds (the token cache's clock).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    })
}

/// How to reach WeChat as one official account.
#[derive(Clone)]
pub struct Config {
    /// The official account's AppID.
    pub appid: String,
    /// The AppSecret (never logged).
    pub secret: String,
    /// `https://api.weixin.qq.com` (a test server's URL in tests).
    pub api_base_url: String,
    /// Whole-request timeout of every call.
    pub request_timeout: Duration,
    /// Connect timeout of every call.
    pub connect_timeout: Duration,
}

impl Config {
    /// Default whole-request timeout.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default connect timeout.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

    /// The production host with the default timeouts.
    pub fn new(appid: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            appid: appid.into(),
            secret: secret.into(),
            api_base_url: PRODUCTION_API_BASE_URL.to_owned(),
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("appid", &self.appid)
            .field("secret", &"<redacted>")
            .field("api_base_url", &self.api_base_url)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}
