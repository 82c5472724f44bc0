//! [`WechatClient`]: the [`WechatApi`] over HTTP with reqwest.

use crate::{
    AccessToken, Clock, Config, Error, MenuButton, OAuthIdentity, SubscribeMessage,
    TemplateMessage, UserInfo, WechatApi, WxFuture,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;

/// A token is replaced this long before WeChat's expiry (WeChat's stable
/// token rotates 5 minutes early and keeps the old one valid 5 minutes).
const REFRESH_MARGIN_MS: i64 = 5 * 60_000;
/// Most bytes of an answer we read (WeChat's are small JSON objects).
const ANSWER_BYTES_MAX: usize = 64 * 1024;

/// The official-account APIs over HTTP. Cheap to clone (shares its
/// connection pool and token cache).
#[derive(Clone)]
pub struct WechatClient {
    cfg: Arc<Config>,
    http: reqwest::Client,
    clock: Clock,
    /// The cached access token; the lock also makes concurrent refreshes one.
    token: Arc<tokio::sync::Mutex<Option<AccessToken>>>,
}

impl fmt::Debug for WechatClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatClient")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// `errcode`/`errmsg` of any answer (absent means 0).
#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
}

#[derive(Deserialize)]
struct CodeAnswer {
    openid: Option<String>,
    #[serde(default)]
    is_snapshotuser: i64,
    #[serde(default)]
    scope: String,
    unionid: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: i64,
}

#[derive(Deserialize)]
struct MsgAnswer {
    #[serde(default)]
    msgid: i64,
}

impl WechatClient {
    /// A client for `cfg` on the system clock. Fails (instead of falling
    /// back to a client without timeouts) when the HTTP client cannot be
    /// built.
    pub fn new(cfg: Config) -> Result<Self, Error> {
        Self::with_clock(cfg, crate::system_clock())
    }

    /// A client whose token cache reads `clock` (tests move it).
    pub fn with_clock(cfg: Config, clock: Clock) -> Result<Self, Error> {
        if cfg.request_timeout.is_zero() || cfg.connect_timeout.is_zero() {
            return Err(Error::Client("timeouts must be positive".to_owned()));
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.request_timeout)
            .connect_timeout(cfg.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Client(e.without_url().to_string()))?;
        Ok(Self {
            cfg: Arc::new(cfg),
            http,
            clock,
            token: Arc::default(),
        })
    }

    /// The API's `path` (the query is added by reqwest, which encodes it).
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.api_base_url.trim_end_matches('/'))
    }

    /// Sends `req`, reads a bounded JSON answer and checks its errcode.
    async fn call<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T, Error> {
        let resp = req
            .send()
            .await
            .map_err(|e| Error::Transport(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(Error::Transport(format!("HTTP {}", resp.status().as_u16())));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > ANSWER_BYTES_MAX as u64)
        {
            return Err(Error::Decode("answer too large".to_owned()));
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Error::Transport(e.without_url().to_string()))?;
        if bytes.len() > ANSWER_BYTES_MAX {
            return Err(Error::Decode("answer too large".to_owned()));
        }
        let status: Status =
            serde_json::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string()))?;
        if status.errcode != 0 {
            return Err(Error::Api {
                errcode: status.errcode,
                errmsg: status.errmsg.chars().take(200).collect(),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string()))
    }

    /// Fetches a token from `cgi-bin/stable_token` (normal mode: WeChat
    /// returns the same token while it is valid, so several processes agree).
    async fn fetch_token(&self) -> Result<AccessToken, Error> {
        let body = serde_json::json!({
            "grant_type": "client_credential",
            "appid": self.cfg.appid,
            "secret": self.cfg.secret,
            "force_refresh": false,
        });
        let now = (self.clock)();
        let t: TokenAnswer = self
            .call(
                self.http
                    .post(self.url("/cgi-bin/stable_token"))
                    .json(&body),
            )
            .await?;
        if t.access_token.is_empty() || t.expires_in <= 0 {
            return Err(Error::Decode("token answer without a token".to_owned()));
        }
        Ok(AccessToken {
            token: t.access_token,
            expires_at_ms: now.saturating_add(t.expires_in.saturating_mul(1000)),
        })
    }

    /// The cached token, fetched again when it is within the refresh
    /// margin of its expiry (or half its life, for short-lived ones).
    async fn token(&self) -> Result<AccessToken, Error> {
        let mut cached = self.token.lock().await;
        let now = (self.clock)();
        if let Some(t) = cached.as_ref()
            && now < t.expires_at_ms.saturating_sub(REFRESH_MARGIN_MS)
        {
            return Ok(t.clone());
        }
        let fresh = self.fetch_token().await?;
        tracing::debug!(
            expires_at_ms = fresh.expires_at_ms,
            "wechat access token fetched"
        );
        *cached = Some(fresh.clone());
        Ok(fresh)
    }

    /// Forgets `rejected` (unless another call already replaced it).
    async fn forget(&self, rejected: &AccessToken) {
        let mut cached = self.token.lock().await;
        if cached.as_ref() == Some(rejected) {
            *cached = None;
        }
    }

    /// Calls an API that takes `?access_token=`; if WeChat says the token
    /// is expired or invalid, fetches a new one and tries once more.
    async fn with_token<T: DeserializeOwned>(
        &self,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<T, Error> {
        let token = self.token().await?;
        match self.call(build(&token.token)).await {
            Err(e) if e.is_token_rejected() => {
                tracing::info!(errcode = ?e.errcode(), "wechat access token rejected; fetching a new one");
                self.forget(&token).await;
                let token = self.token().await?;
                self.call(build(&token.token)).await
            }
            other => other,
        }
    }

    /// POSTs `body` as JSON to an API `path` that takes `?access_token=`
    /// ([`WechatClient::with_token`]).
    async fn post_with_token<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl serde::Serialize + Sync),
    ) -> Result<T, Error> {
        self.with_token(|token| {
            self.http
                .post(self.url(path))
                .query(&[("access_token", token)])
                .json(body)
        })
        .await
    }
}

impl WechatApi for WechatClient {
    fn exchange_code<'a>(&'a self, code: &'a str) -> WxFuture<'a, OAuthIdentity> {
        Box::pin(async move {
            let request = self.http.get(self.url("/sns/oauth2/access_token")).query(&[
                ("appid", self.cfg.appid.as_str()),
                ("secret", self.cfg.secret.as_str()),
                ("code", code),
                ("grant_type", "authorization_code"),
            ]);
            let a: CodeAnswer = self.call(request).await?;
            let openid = a
                .openid
                .filter(|o| !o.is_empty() && o.len() <= 128)
                .ok_or_else(|| Error::Decode("code answer without an openid".to_owned()))?;
            Ok(OAuthIdentity {
                openid,
                is_snapshot_user: a.is_snapshotuser == 1,
                // WeChat may leave a trailing comma.
                scopes: a
                    .scope
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
                unionid: a.unionid,
            })
        })
    }

    fn access_token(&self) -> WxFuture<'_, AccessToken> {
        Box::pin(self.token())
    }

    fn user_info<'a>(&'a self, openid: &'a str) -> WxFuture<'a, UserInfo> {
        Box::pin(self.with_token(move |token| {
            self.http.get(self.url("/cgi-bin/user/info")).query(&[
                ("access_token", token),
                ("openid", openid),
                ("lang", "zh_CN"),
            ])
        }))
    }

    fn send_template<'a>(&'a self, message: &'a TemplateMessage) -> WxFuture<'a, i64> {
        Box::pin(async move {
            let a: MsgAnswer = self
                .post_with_token("/cgi-bin/message/template/send", message)
                .await?;
            Ok(a.msgid)
        })
    }

    fn send_subscribe<'a>(&'a self, message: &'a SubscribeMessage) -> WxFuture<'a, ()> {
        Box::pin(async move {
            let _: serde_json::Value = self
                .post_with_token("/cgi-bin/message/subscribe/bizsend", message)
                .await?;
            Ok(())
        })
    }

    fn create_menu<'a>(&'a self, buttons: &'a [MenuButton]) -> WxFuture<'a, ()> {
        Box::pin(async move {
            let body = serde_json::json!({ "button": buttons });
            let _: serde_json::Value = self.post_with_token("/cgi-bin/menu/create", &body).await?;
            Ok(())
        })
    }
}
