//! The official account's message server endpoint `/wechat/events`
//! (issue 15): URL verification, signed event pushes that set the follow
//! state, and forged or malformed pushes that change nothing.

mod common;

use common::{Server, each_db};
use reqwest::StatusCode;
use store::Db;
use store::wechat_outbox::{self, Follows};

const TOKEN: &str = "dormwatt-event-token";

async fn spawn(db: Db) -> Server {
    let mut settings =
        web::Settings::new("http://127.0.0.1", domain::time::CampusTz::default(), false);
    settings.wechat_event_token = Some(TOKEN.to_owned());
    Server::start(db, settings, Vec::new()).await
}

fn query(token: &str, timestamp: &str, nonce: &str) -> String {
    let sig = web::wechat_events::signature(token, timestamp, nonce);
    format!("signature={sig}&timestamp={timestamp}&nonce={nonce}")
}

fn push(openid: &str, event: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>\
         <CreateTime>1795622400</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event></xml>"
    )
}

async fn post(s: &Server, q: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
    s.http
        .post(format!("{}/wechat/events?{q}", s.base))
        .header("content-type", "text/xml")
        .body(body)
        .send()
        .await
        .expect("POST")
}

#[tokio::test]
async fn the_handshake_echoes_only_a_signed_request() {
    each_db(spawn, async |s: Server| {
        let q = query(TOKEN, "1795622400", "n0nce");
        let r = s
            .get_with(None, &format!("/wechat/events?{q}&echostr=hello123"))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.text().await.unwrap(), "hello123");
        let forged = query("not-the-token", "1795622400", "n0nce");
        let r = s
            .get_with(None, &format!("/wechat/events?{forged}&echostr=hello123"))
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_ne!(r.text().await.unwrap(), "hello123");
        let r = s.get_with(None, "/wechat/events?echostr=hello123").await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    })
    .await;
}

#[tokio::test]
async fn signed_subscribe_and_unsubscribe_set_the_follow_state_and_forgeries_change_nothing() {
    each_db(spawn, async |s: Server| {
        let student = store::students::upsert_by_openid(&s.db, "o-alice", false, 0)
            .await
            .unwrap();
        let q = query(TOKEN, "1795622400", "abc");
        let r = post(&s, &q, push("o-alice", "subscribe")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.text().await.unwrap(), "success");
        assert_eq!(wechat_outbox::follows(&s.db, student.id).await.unwrap(), Follows::Yes);

        // A forged signature: refused, the state stays.
        let forged = query("guess", "1795622400", "abc");
        let r = post(&s, &forged, push("o-alice", "unsubscribe")).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let tampered = q.replace("timestamp=1795622400", "timestamp=1795622401");
        let r = post(&s, &tampered, push("o-alice", "unsubscribe")).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(wechat_outbox::follows(&s.db, student.id).await.unwrap(), Follows::Yes);

        // Malformed XML, signed: 400, nothing changes.
        for bad in [
            "<xml><FromUserName>o-alice</FromUserName><MsgType>event".to_owned(),
            "not xml at all".to_owned(),
            "<!DOCTYPE xml [<!ENTITY e \"o-alice\">]><xml><FromUserName>&e;</FromUserName><MsgType>event</MsgType><Event>unsubscribe</Event></xml>".to_owned(),
        ] {
            let r = post(&s, &q, bad.clone()).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
        // Too large: refused before parsing.
        let big = format!("<xml>{}</xml>", "x".repeat(web::wechat_events::EVENT_BYTES_MAX));
        let r = post(&s, &q, big).await;
        assert!(r.status().is_client_error(), "{}", r.status());
        assert_eq!(wechat_outbox::follows(&s.db, student.id).await.unwrap(), Follows::Yes);

        // The real unsubscribe.
        let r = post(&s, &q, push("o-alice", "unsubscribe")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(wechat_outbox::follows(&s.db, student.id).await.unwrap(), Follows::No);
        // A follower we never saw, and a send receipt: acknowledged, no rows.
        let r = post(&s, &q, push("o-stranger", "subscribe")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(s.count("select count(*) from wechat_follow").await, 1);
    })
    .await;
}

#[tokio::test]
async fn without_a_token_there_is_no_endpoint() {
    each_db(
        async |db| {
            let settings =
                web::Settings::new("http://127.0.0.1", domain::time::CampusTz::default(), false);
            Server::start(db, settings, Vec::new()).await
        },
        async |s: Server| {
            let q = query("", "1", "2");
            let r = s
                .get_with(None, &format!("/wechat/events?{q}&echostr=x"))
                .await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND);
        },
    )
    .await;
}
