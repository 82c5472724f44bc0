//! Merchant configuration for a direct (直连) merchant.

use std::time::Duration;

use crate::keys::{ApiV3Key, MerchantKey, WechatPayKeys};

/// Production API base.
pub const PRODUCTION_API_BASE_URL: &str = "https://api.mch.weixin.qq.com";

/// [`crate::RsaPublicKey::fingerprint_sha256`] of the payment sandbox's
/// platform key, whose private half is published in this repository.
///
/// It lives here, not in the sandbox module, so that every build refuses
/// that key against the real API — a production build without the
/// `sandbox` feature included, since anyone can copy the key from the
/// repository into a config. A sandbox test checks it matches the key.
pub const SANDBOX_PLATFORM_KEY_SHA256: &str =
    "64c1dc690a842da8a06b5f62a3cda1f6a46e49412edb84048007c5934e882eff";

/// Everything the client needs to talk to WeChat Pay (or the sandbox).
///
/// `Debug` is derived on purpose: the key types redact themselves, so this
/// struct can be logged at startup without leaking the private key or APIv3 key.
#[derive(Debug)]
pub struct WechatPayConfig {
    /// The certified service account's AppID bound to `mchid`.
    pub appid: String,
    /// Merchant id.
    pub mchid: String,
    /// Merchant API private key (`apiclient_key.pem`).
    pub merchant_key: MerchantKey,
    /// Serial of the merchant API certificate (upper-case hex), sent as `serial_no`.
    pub merchant_serial_no: String,
    /// APIv3 key for decrypting notifications.
    pub api_v3_key: ApiV3Key,
    /// Keys trusted for WeChat's signatures.
    pub wechatpay_keys: WechatPayKeys,
    /// Absolute URL WeChat posts payment notifications to (no query string).
    pub notify_url: String,
    /// Where refund notifications go; `None` uses the one set in the merchant platform.
    pub refund_notify_url: Option<String>,
    /// API base without trailing slash, e.g. [`PRODUCTION_API_BASE_URL`] or
    /// the sandbox's own listener, e.g. `http://127.0.0.1:8081`. A path
    /// after the host is a gateway prefix: requests are signed over the
    /// path below it, as WeChat's SDKs do.
    pub api_base_url: String,
    /// When set (sandbox), the payment page sends students here
    /// (`{cashier_url}?prepay_id=…`, optionally `&return_url=/path`) instead
    /// of calling `WeixinJSBridge`. May be a same-origin path.
    pub cashier_url: Option<String>,
    /// WeChat rejects requests without a User-Agent.
    pub user_agent: String,
    /// Whole-request timeout for API calls.
    pub request_timeout: Duration,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required text field is empty.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// No WeChat Pay public key or platform certificate configured.
    #[error("no WeChat Pay public key or platform certificate configured")]
    NoVerificationKey,
    /// A URL is not absolute http(s), or the notify URL carries a query.
    #[error("{0} must be an absolute http(s) URL without query string")]
    BadUrl(&'static str),
    /// The sandbox's published key is trusted while talking to real WeChat.
    #[error("the sandbox-only platform key must not be trusted against the production API")]
    SandboxKeyInProduction,
}

impl WechatPayConfig {
    /// Defaults for the knobs a deployment rarely changes.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default connect timeout.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
    /// Default User-Agent.
    pub const DEFAULT_USER_AGENT: &str = concat!("dormwatt-pay/", env!("CARGO_PKG_VERSION"));

    /// Checks the config can work. Called by [`crate::WechatPayClient::new`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("appid", &self.appid),
            ("mchid", &self.mchid),
            ("merchant_serial_no", &self.merchant_serial_no),
            ("user_agent", &self.user_agent),
        ] {
            if value.trim().is_empty() {
                return Err(ConfigError::Empty(name));
            }
        }
        if self.wechatpay_keys.is_empty() {
            return Err(ConfigError::NoVerificationKey);
        }
        // Real WeChat wants https; plain http is allowed so the sandbox and
        // local tests can run without TLS.
        let absolute = |u: &str| u.starts_with("https://") || u.starts_with("http://");
        if !absolute(&self.notify_url) || self.notify_url.contains('?') {
            return Err(ConfigError::BadUrl("notify_url"));
        }
        if let Some(u) = &self.refund_notify_url
            && (!absolute(u) || u.contains('?'))
        {
            return Err(ConfigError::BadUrl("refund_notify_url"));
        }
        if !absolute(&self.api_base_url) {
            return Err(ConfigError::BadUrl("api_base_url"));
        }
        // Its private key is in the repository, so anyone could forge
        // "payment succeeded" notifications with it.
        let production = self.api_base_url.contains("api.mch.weixin.qq.com")
            || self.api_base_url.contains("api2.mch.weixin.qq.com");
        if production
            && self
                .wechatpay_keys
                .contains_fingerprint(SANDBOX_PLATFORM_KEY_SHA256)
        {
            return Err(ConfigError::SandboxKeyInProduction);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{RsaPublicKey, WechatPayKeys};

    /// Runs with and without the `sandbox` feature: the key's public half,
    /// as anyone could paste it from the repository into a deployment.
    #[test]
    fn the_published_sandbox_key_is_refused_in_every_build() {
        let private = include_str!("sandbox/sandbox_platform_key.pem");
        let public = MerchantKey::from_pkcs8_pem(private)
            .expect("key")
            .public_key();
        assert_eq!(public.fingerprint_sha256(), SANDBOX_PLATFORM_KEY_SHA256);
        let config = WechatPayConfig {
            appid: "wx0000000000000001".to_owned(),
            mchid: "1900000001".to_owned(),
            merchant_key: MerchantKey::from_pkcs8_pem(private).expect("key"),
            merchant_serial_no: "00AA".to_owned(),
            api_v3_key: ApiV3Key::new(&[b'k'; 32]).expect("32 bytes"),
            wechatpay_keys: WechatPayKeys::with_public_key("PUB_KEY_ID_X", public),
            notify_url: "https://dorm.example.edu/notify".to_owned(),
            refund_notify_url: None,
            api_base_url: PRODUCTION_API_BASE_URL.to_owned(),
            cashier_url: None,
            user_agent: WechatPayConfig::DEFAULT_USER_AGENT.to_owned(),
            request_timeout: WechatPayConfig::DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: WechatPayConfig::DEFAULT_CONNECT_TIMEOUT,
        };
        assert_eq!(config.validate(), Err(ConfigError::SandboxKeyInProduction));
        let other = RsaPublicKey::from_pem(include_str!("../testdata/go_sdk_test_public_key.pem"))
            .expect("pub");
        let config = WechatPayConfig {
            wechatpay_keys: WechatPayKeys::with_public_key("PUB_KEY_ID_X", other),
            ..config
        };
        assert_eq!(config.validate(), Ok(()));
    }
}
