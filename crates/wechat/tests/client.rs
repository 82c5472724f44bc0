//! The real [`WechatClient`] against the protocol-true test server on
//! 127.0.0.1:0, with one shared, hand-moved clock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use wechat::mock::MockWechat;
use wechat::{Config, Keyword, MenuButton, TemplateMessage, WechatApi, WechatClient, errcode};

const APPID: &str = "wxTESTAPPID";
const SECRET: &str = "test-secret";
const T0: i64 = 1_800_000_000_000;

struct Harness {
    mock: MockWechat,
    client: WechatClient,
    now: Arc<AtomicI64>,
    base: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn harness() -> Harness {
    let now = Arc::new(AtomicI64::new(T0));
    let n = now.clone();
    let clock: wechat::Clock = Arc::new(move || n.load(Ordering::SeqCst));
    let mock = MockWechat::new(APPID, SECRET, clock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(mock.clone().serve(listener, async {
        let _ = rx.await;
    }));
    let mut cfg = Config::new(APPID, SECRET);
    cfg.api_base_url = base.clone();
    let client = WechatClient::with_clock(cfg, clock).expect("client");
    Harness {
        mock,
        client,
        now,
        base,
        _stop: tx,
    }
}

impl Harness {
    fn advance(&self, ms: i64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_code_is_exchanged_once_for_its_openid() {
    let h = harness().await;
    let code = h.mock.issue_code("o-alice", false);
    let id = h.client.exchange_code(&code).await.expect("exchange");
    assert_eq!(id.openid, "o-alice");
    assert!(!id.is_snapshot_user);
    assert_eq!(id.scopes, ["snsapi_base"], "the trailing comma is dropped");
    let again = h.client.exchange_code(&code).await.unwrap_err();
    assert_eq!(again.errcode(), Some(errcode::CODE_BEEN_USED), "{again}");
    assert!(again.is_bad_code());
    let unknown = h.client.exchange_code("forged").await.unwrap_err();
    assert_eq!(unknown.errcode(), Some(errcode::INVALID_CODE), "{unknown}");
    let snap = h.mock.issue_code("o-virtual", true);
    assert!(
        h.client
            .exchange_code(&snap)
            .await
            .expect("snapshot")
            .is_snapshot_user
    );
}

#[tokio::test]
async fn a_code_expires_after_five_minutes() {
    let h = harness().await;
    let code = h.mock.issue_code("o-bob", false);
    h.advance(5 * 60_000);
    let e = h.client.exchange_code(&code).await.unwrap_err();
    assert_eq!(e.errcode(), Some(errcode::INVALID_CODE), "{e}");
}

#[tokio::test]
async fn a_wrong_secret_is_an_api_error_and_never_shown() {
    let h = harness().await;
    let mut cfg = Config::new(APPID, "wrong-secret-value");
    cfg.api_base_url = h.base.clone();
    let client = WechatClient::new(cfg).expect("client");
    let code = h.mock.issue_code("o-carol", false);
    let e = client.exchange_code(&code).await.unwrap_err();
    assert_eq!(e.errcode(), Some(40125), "{e}");
    let t = client.access_token().await.unwrap_err();
    assert_eq!(t.errcode(), Some(40125), "{t}");
    assert!(!format!("{e} {t} {client:?}").contains("wrong-secret-value"));
}

#[tokio::test]
async fn transport_errors_do_not_carry_the_secret() {
    // A port nobody listens on: connect fails; the message has no URL.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let mut cfg = Config::new(APPID, "secret-in-the-url");
    cfg.api_base_url = dead;
    let client = WechatClient::new(cfg).expect("client");
    let e = client.exchange_code("c").await.unwrap_err();
    assert!(matches!(e, wechat::Error::Transport(_)), "{e}");
    assert!(!e.to_string().contains("secret-in-the-url"), "{e}");
}

#[test]
fn a_client_without_timeouts_is_refused() {
    let mut cfg = Config::new(APPID, SECRET);
    cfg.request_timeout = Duration::ZERO;
    let e = WechatClient::new(cfg).unwrap_err();
    assert!(matches!(e, wechat::Error::Client(_)), "{e}");
}

#[tokio::test]
async fn the_access_token_is_cached_and_refreshed_before_expiry() {
    let h = harness().await;
    let first = h.client.access_token().await.expect("token");
    assert_eq!(first.expires_at_ms, T0 + 7_200_000);
    h.advance(3_600_000);
    assert_eq!(h.client.access_token().await.expect("cached"), first);
    assert_eq!(h.mock.token_requests(), 1, "served from the cache");
    // Within five minutes of expiry: fetched again, and WeChat has rotated it.
    h.advance(3_600_000 - 4 * 60_000);
    let second = h.client.access_token().await.expect("refreshed");
    assert_eq!(h.mock.token_requests(), 2);
    assert_ne!(second.token, first.token);
    assert!(second.expires_at_ms > first.expires_at_ms);
}

#[tokio::test]
async fn an_expired_or_revoked_token_is_replaced_and_the_call_retried_once() {
    let h = harness().await;
    h.mock.add_follower("o-dave");
    assert!(h.client.user_info("o-dave").await.expect("info").follows());
    assert_eq!(h.mock.token_requests(), 1);
    // WeChat revokes the token (40001): the client fetches another, retries.
    h.mock.revoke_tokens();
    let info = h.client.user_info("o-dave").await.expect("after 40001");
    assert!(info.follows());
    assert_eq!(h.mock.token_requests(), 2);
    let stranger = h.client.user_info("o-eve").await.expect("not a follower");
    assert!(!stranger.follows());
    let bad = h.client.user_info("").await.unwrap_err();
    assert_eq!(bad.errcode(), Some(errcode::INVALID_OPENID), "{bad}");
}

#[tokio::test]
async fn template_messages_need_a_follower_and_a_known_template() {
    let h = harness().await;
    h.mock.add_template("TPL_DELIVERED");
    h.mock.add_follower("o-frank");
    let mut data = BTreeMap::new();
    data.insert(
        "thing1".to_owned(),
        Keyword {
            value: "3号楼 402".to_owned(),
        },
    );
    let mut msg = TemplateMessage {
        touser: "o-frank".to_owned(),
        template_id: "TPL_DELIVERED".to_owned(),
        url: None,
        client_msg_id: Some("delivered:1".to_owned()),
        data,
    };
    let msgid = h.client.send_template(&msg).await.expect("sent");
    assert!(msgid > 0);
    let sent = h.mock.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["data"]["thing1"]["value"], "3号楼 402");
    msg.touser = "o-stranger".to_owned();
    let e = h.client.send_template(&msg).await.unwrap_err();
    assert_eq!(e.errcode(), Some(errcode::REQUIRE_SUBSCRIBE), "{e}");
    msg.touser = "o-frank".to_owned();
    msg.template_id = "TPL_NONE".to_owned();
    let e = h.client.send_template(&msg).await.unwrap_err();
    assert_eq!(e.errcode(), Some(errcode::INVALID_TEMPLATE_ID), "{e}");
}

#[tokio::test]
async fn a_subscribe_grant_allows_one_message() {
    let h = harness().await;
    h.mock.grant_subscribe("o-gina", "SUB_LOW");
    let msg = wechat::SubscribeMessage {
        touser: "o-gina".to_owned(),
        template_id: "SUB_LOW".to_owned(),
        page: None,
        data: BTreeMap::new(),
    };
    h.client.send_subscribe(&msg).await.expect("first");
    let e = h.client.send_subscribe(&msg).await.unwrap_err();
    assert_eq!(e.errcode(), Some(errcode::SUBSCRIBE_REFUSED), "{e}");
}

#[tokio::test]
async fn the_menu_is_created_and_an_oversized_one_refused() {
    let h = harness().await;
    let leaf = |name: &str| MenuButton {
        kind: Some("view".to_owned()),
        name: name.to_owned(),
        url: Some("https://dormwatt.example/".to_owned()),
        sub_button: Vec::new(),
    };
    h.client
        .create_menu(&[leaf("购电"), leaf("用电")])
        .await
        .expect("menu");
    assert_eq!(h.mock.menu().expect("stored")["button"][0]["name"], "购电");
    let e = h
        .client
        .create_menu(&[leaf("a"), leaf("b"), leaf("c"), leaf("d")])
        .await
        .unwrap_err();
    assert_eq!(e.errcode(), Some(40016), "{e}");
}
