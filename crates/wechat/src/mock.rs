//! A test server for the official-account API (`api.weixin.qq.com`) that
//! speaks the real protocol (wechat-notes §1.2–1.5, §2, §7): errors are
//! HTTP 200 with `{"errcode":N,"errmsg":"…"}`, codes are single-use and
//! expire after 5 minutes, stable tokens are the same while valid and
//! rotate 5 minutes before expiry, calls with an expired token get 42001
//! and with an unknown one 40001, template messages need a follower (43004)
//! and a known template (40037), subscribe notifications a grant (43101).
//! Time is the given [`Clock`], so expiry is testable without waiting.
//! Serve it with [`MockWechat::serve`] on a loopback listener.

use crate::Clock;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// A code is good for this long after it was issued.
const CODE_TTL_MS: i64 = 5 * 60_000;
/// WeChat rotates a stable token this long before it expires.
const ROTATE_BEFORE_MS: i64 = 5 * 60_000;

#[derive(Debug)]
struct Code {
    openid: String,
    snapshot: bool,
    issued_ms: i64,
    used: bool,
}

#[derive(Debug, Clone)]
struct Token {
    value: String,
    issued_ms: i64,
    /// Revoked by the test (as WeChat does after a leak or a reset).
    revoked: bool,
}

#[derive(Debug, Default)]
struct World {
    codes: HashMap<String, Code>,
    tokens: Vec<Token>,
    token_requests: u64,
    followers: HashSet<String>,
    templates: HashSet<String>,
    grants: HashSet<(String, String)>,
    sent: Vec<Value>,
    menu: Option<Value>,
    next_id: u64,
    /// Template sends still to refuse with this errcode (tests steer it).
    failing_sends: Vec<i64>,
    /// Template send requests that passed the token check.
    template_requests: u64,
}

/// The mock's state; cheap to clone. Tests steer it and read what it saw.
#[derive(Clone)]
pub struct MockWechat {
    appid: String,
    secret: String,
    token_lifetime_ms: i64,
    clock: Clock,
    world: Arc<Mutex<World>>,
}

impl std::fmt::Debug for MockWechat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockWechat")
            .field("appid", &self.appid)
            .finish_non_exhaustive()
    }
}

fn err(errcode: i64, errmsg: &str) -> Json<Value> {
    Json(json!({ "errcode": errcode, "errmsg": format!("{errmsg} rid: mock") }))
}

impl MockWechat {
    /// A mock of the account `appid` with AppSecret `secret`; tokens live
    /// 7200 s of `clock`.
    pub fn new(appid: &str, secret: &str, clock: Clock) -> Self {
        Self {
            appid: appid.to_owned(),
            secret: secret.to_owned(),
            token_lifetime_ms: 7_200_000,
            clock,
            world: Arc::default(),
        }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.world
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Issues a web-authorization code for `openid` (what the authorize
    /// redirect hands the browser); `snapshot`: a snapshot-page user.
    pub fn issue_code(&self, openid: &str, snapshot: bool) -> String {
        let now = (self.clock)();
        let mut w = self.world();
        w.next_id += 1;
        let code = format!("code{:06}", w.next_id);
        w.codes.insert(
            code.clone(),
            Code {
                openid: openid.to_owned(),
                snapshot,
                issued_ms: now,
                used: false,
            },
        );
        code
    }

    /// `openid` follows the account.
    pub fn add_follower(&self, openid: &str) {
        self.world().followers.insert(openid.to_owned());
    }

    /// `openid` stopped following the account.
    pub fn remove_follower(&self, openid: &str) {
        self.world().followers.remove(openid);
    }

    /// The next `n` template sends (with a good token) are refused with
    /// `errcode` (e.g. 45009 quota, 43117 too frequent, -1 busy).
    pub fn fail_next_sends(&self, errcode: i64, n: usize) {
        self.world()
            .failing_sends
            .extend(std::iter::repeat_n(errcode, n));
    }

    /// How many template sends arrived with a good token (accepted or not).
    pub fn template_requests(&self) -> u64 {
        self.world().template_requests
    }

    /// A template exists in the console.
    pub fn add_template(&self, template_id: &str) {
        self.world().templates.insert(template_id.to_owned());
    }

    /// `openid` granted a subscribe notification of `template_id`.
    pub fn grant_subscribe(&self, openid: &str, template_id: &str) {
        self.world()
            .grants
            .insert((openid.to_owned(), template_id.to_owned()));
    }

    /// Revokes every token issued so far (calls with them get 40001).
    pub fn revoke_tokens(&self) {
        for t in &mut self.world().tokens {
            t.revoked = true;
        }
    }

    /// How many token requests (`stable_token` and `token`) arrived.
    pub fn token_requests(&self) -> u64 {
        self.world().token_requests
    }

    /// The template and subscribe messages accepted, as sent.
    pub fn sent(&self) -> Vec<Value> {
        self.world().sent.clone()
    }

    /// The menu last created.
    pub fn menu(&self) -> Option<Value> {
        self.world().menu.clone()
    }

    /// The routes, for serving.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/sns/oauth2/access_token", get(code_exchange))
            .route("/cgi-bin/stable_token", post(stable_token))
            .route("/cgi-bin/token", get(classic_token))
            .route("/cgi-bin/user/info", get(user_info))
            .route("/cgi-bin/message/template/send", post(template_send))
            .route("/cgi-bin/message/subscribe/bizsend", post(subscribe_send))
            .route("/cgi-bin/menu/create", post(menu_create))
            .with_state(self.clone())
    }

    /// Serves the mock on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    fn credentials_ok(&self, appid: Option<&str>, secret: Option<&str>) -> Result<(), Json<Value>> {
        if appid != Some(self.appid.as_str()) {
            return Err(err(40013, "invalid appid"));
        }
        if secret != Some(self.secret.as_str()) {
            return Err(err(40125, "invalid appsecret"));
        }
        Ok(())
    }

    /// Checks `?access_token=`: 41001 missing, 40001 unknown or revoked,
    /// 42001 expired.
    fn token_ok(&self, q: &HashMap<String, String>) -> Result<(), Json<Value>> {
        let Some(given) = q.get("access_token") else {
            return Err(err(41001, "access_token missing"));
        };
        let now = (self.clock)();
        let w = self.world();
        match w.tokens.iter().find(|t| &t.value == given) {
            None => Err(err(
                40001,
                "invalid credential, access_token is invalid or not latest",
            )),
            Some(t) if t.revoked => Err(err(
                40001,
                "invalid credential, access_token is invalid or not latest",
            )),
            Some(t) if now >= t.issued_ms + self.token_lifetime_ms => {
                Err(err(42001, "access_token expired"))
            }
            Some(_) => Ok(()),
        }
    }

    fn new_token(&self, w: &mut World, now: i64) -> Token {
        w.next_id += 1;
        let t = Token {
            value: format!("ACCESS_TOKEN_{:06}_{}", w.next_id, "x".repeat(40)),
            issued_ms: now,
            revoked: false,
        };
        w.tokens.push(t.clone());
        t
    }
}

/// The opening of every call that takes `?access_token=`: the token is
/// checked before anything else, and a bad one answers WeChat's error.
struct WithToken;

impl axum::extract::FromRequestParts<MockWechat> for WithToken {
    type Rejection = Json<Value>;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        m: &MockWechat,
    ) -> Result<Self, Self::Rejection> {
        let Query(q) = Query::<HashMap<String, String>>::from_request_parts(parts, m)
            .await
            .map_err(|_| err(41001, "access_token missing"))?;
        m.token_ok(&q).map(|()| WithToken)
    }
}

async fn code_exchange(
    State(m): State<MockWechat>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    if let Err(e) = m.credentials_ok(
        q.get("appid").map(String::as_str),
        q.get("secret").map(String::as_str),
    ) {
        return e;
    }
    if q.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return err(40002, "invalid grant_type");
    }
    let now = (m.clock)();
    let mut w = m.world();
    let Some(code) = q.get("code").and_then(|c| w.codes.get_mut(c)) else {
        return err(40029, "invalid code");
    };
    if code.used {
        return err(40163, "code been used");
    }
    if now >= code.issued_ms + CODE_TTL_MS {
        return err(40029, "invalid code");
    }
    code.used = true;
    let mut a = json!({
        "access_token": "WEB_ACCESS_TOKEN",
        "expires_in": 7200,
        "refresh_token": "REFRESH_TOKEN",
        "openid": code.openid,
        "scope": "snsapi_base,",
    });
    if code.snapshot {
        a["is_snapshotuser"] = json!(1);
    }
    Json(a)
}

async fn stable_token(State(m): State<MockWechat>, Json(body): Json<Value>) -> Json<Value> {
    if body["grant_type"] != "client_credential" {
        return err(40002, "invalid grant_type");
    }
    if let Err(e) = m.credentials_ok(body["appid"].as_str(), body["secret"].as_str()) {
        return e;
    }
    let now = (m.clock)();
    let lifetime = m.token_lifetime_ms;
    let mut w = m.world();
    w.token_requests += 1;
    let current = w
        .tokens
        .iter()
        .rev()
        .find(|t| !t.revoked && now < t.issued_ms + lifetime - ROTATE_BEFORE_MS)
        .cloned();
    let force = body["force_refresh"].as_bool().unwrap_or(false);
    let t = match current {
        Some(t) if !force => t,
        _ => m.new_token(&mut w, now),
    };
    Json(json!({
        "access_token": t.value,
        "expires_in": (t.issued_ms + lifetime - now) / 1000,
    }))
}

async fn classic_token(
    State(m): State<MockWechat>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    if q.get("grant_type").map(String::as_str) != Some("client_credential") {
        return err(40002, "invalid grant_type");
    }
    if let Err(e) = m.credentials_ok(
        q.get("appid").map(String::as_str),
        q.get("secret").map(String::as_str),
    ) {
        return e;
    }
    let now = (m.clock)();
    let mut w = m.world();
    w.token_requests += 1;
    // Every classic call invalidates the previous tokens (after an overlap
    // WeChat keeps; the mock revokes at once).
    for t in &mut w.tokens {
        t.revoked = true;
    }
    let t = m.new_token(&mut w, now);
    Json(json!({ "access_token": t.value, "expires_in": m.token_lifetime_ms / 1000 }))
}

async fn user_info(
    State(m): State<MockWechat>,
    _: WithToken,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let openid = q.get("openid").cloned().unwrap_or_default();
    if openid.is_empty() || openid.len() > 128 {
        return err(40003, "invalid openid");
    }
    if m.world().followers.contains(&openid) {
        Json(json!({
            "subscribe": 1, "openid": openid, "language": "zh_CN",
            "subscribe_time": 1_700_000_000, "tagid_list": [],
        }))
    } else {
        Json(json!({ "subscribe": 0, "openid": openid }))
    }
}

async fn template_send(
    State(m): State<MockWechat>,
    _: WithToken,
    Json(body): Json<Value>,
) -> Json<Value> {
    let mut w = m.world();
    w.template_requests += 1;
    if !w.failing_sends.is_empty() {
        let code = w.failing_sends.remove(0);
        return err(code, "refused by the test");
    }
    let Some(to) = body["touser"].as_str() else {
        return err(47001, "data format error");
    };
    if !body["template_id"]
        .as_str()
        .is_some_and(|t| w.templates.contains(t))
    {
        return err(40037, "invalid template_id");
    }
    if !w.followers.contains(to) {
        return err(43004, "require subscribe");
    }
    w.next_id += 1;
    let msgid = w.next_id;
    w.sent.push(body);
    Json(json!({ "errcode": 0, "errmsg": "ok", "msgid": msgid }))
}

async fn subscribe_send(
    State(m): State<MockWechat>,
    _: WithToken,
    Json(body): Json<Value>,
) -> Json<Value> {
    let mut w = m.world();
    let key = (
        body["touser"].as_str().unwrap_or_default().to_owned(),
        body["template_id"].as_str().unwrap_or_default().to_owned(),
    );
    // A one-time grant allows one message.
    if !w.grants.remove(&key) {
        return err(43101, "user refuse to accept the msg");
    }
    w.sent.push(body);
    Json(json!({ "errcode": 0, "errmsg": "ok" }))
}

async fn menu_create(
    State(m): State<MockWechat>,
    _: WithToken,
    Json(body): Json<Value>,
) -> Json<Value> {
    let Some(buttons) = body["button"].as_array() else {
        return err(40016, "invalid button size");
    };
    if buttons.is_empty() || buttons.len() > 3 {
        return err(40016, "invalid button size");
    }
    if buttons
        .iter()
        .any(|b| b["sub_button"].as_array().is_some_and(|s| s.len() > 5))
    {
        return err(40023, "invalid sub button size");
    }
    m.world().menu = Some(body);
    Json(json!({ "errcode": 0, "errmsg": "ok" }))
}
