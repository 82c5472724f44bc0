//! The official account's message server endpoint (issue 15 item 3):
//! `GET /wechat/events` is WeChat's URL-verification handshake, `POST
//! /wechat/events` its event push (XML, plaintext mode). Both carry
//! `signature`, `timestamp` and `nonce` in the query; the signature is the
//! hex SHA-1 of the configured token, the timestamp and the nonce, sorted
//! and concatenated. A wrong signature is 403 and a malformed body 400, and
//! neither changes anything.
//!
//! Events: `subscribe` / `unsubscribe` set the student's follow state
//! (store::wechat_outbox); `TEMPLATESENDJOBFINISH` is logged. Anything else
//! is acknowledged and ignored. WeChat wants `success` (or an empty body)
//! within 5 s, else it retries three times; every handler here is one
//! short statement, and repeats are idempotent.

use crate::AppState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use std::collections::HashMap;
use store::wechat_outbox::{FollowSource, Follows};

/// Most bytes of an event push (WeChat's are well under 2 KiB).
pub const EVENT_BYTES_MAX: usize = 16 * 1024;
/// Most characters of one XML field we keep.
const FIELD_CHARS_MAX: usize = 256;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/wechat/events", get(handshake).post(event))
        .layer(axum::extract::DefaultBodyLimit::max(EVENT_BYTES_MAX))
}

/// `hex(sha1(sort([token, timestamp, nonce]).join("")))`.
pub fn signature(token: &str, timestamp: &str, nonce: &str) -> String {
    let mut parts = [token, timestamp, nonce];
    parts.sort_unstable();
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        parts.concat().as_bytes(),
    );
    hex::encode(digest.as_ref())
}

/// Whether the query is signed with `token` (constant-time comparison).
fn signed(token: &str, q: &HashMap<String, String>) -> bool {
    let (Some(sig), Some(ts), Some(nonce)) =
        (q.get("signature"), q.get("timestamp"), q.get("nonce"))
    else {
        return false;
    };
    if sig.len() != 40 || ts.len() > 32 || nonce.len() > 64 {
        return false;
    }
    let want = signature(token, ts, nonce);
    // Compared without an early exit, so timing does not reveal how much
    // of a guessed signature was right.
    let given = sig.to_ascii_lowercase();
    want.len() == given.len()
        && want
            .bytes()
            .zip(given.bytes())
            .fold(0_u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The token, or 404 when this deployment has no message server.
fn token(state: &AppState) -> Result<&str, StatusCode> {
    state
        .settings()
        .wechat_event_token
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or(StatusCode::NOT_FOUND)
}

async fn handshake(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<String, StatusCode> {
    let token = token(&state)?;
    if !signed(token, &q) {
        tracing::warn!("wechat URL verification with a wrong signature refused");
        return Err(StatusCode::FORBIDDEN);
    }
    let echo = q.get("echostr").ok_or(StatusCode::BAD_REQUEST)?;
    if echo.len() > FIELD_CHARS_MAX {
        return Err(StatusCode::BAD_REQUEST);
    }
    Ok(echo.clone())
}

/// The fields of an event push we read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Push {
    /// `FromUserName`: the follower's openid.
    pub from: String,
    /// `MsgType` (`event` for events).
    pub msg_type: String,
    /// `Event` (`subscribe`, `unsubscribe`, `TEMPLATESENDJOBFINISH`, …).
    pub event: String,
    /// `Status` of a template send receipt.
    pub status: String,
    /// `MsgID` of a template send receipt.
    pub msg_id: String,
}

/// Parses WeChat's flat `<xml><Field>…</Field>…</xml>` (text or CDATA
/// values). `None` for anything else: not XML, another root, nesting,
/// DOCTYPE (no entity expansion ever), a missing `FromUserName`/`MsgType`.
pub fn parse_push(body: &[u8]) -> Option<Push> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut push = Push::default();
    let mut depth = 0_u32;
    let mut field: Option<String> = None;
    let mut seen_root = false;
    let mut buf = Vec::new();
    loop {
        let ev = reader.read_event_into(&mut buf).ok()?;
        match ev {
            Event::Start(e) => {
                let name = e.name().into_inner().to_owned();
                depth += 1;
                match depth {
                    1 if name == "xml" && !seen_root => seen_root = true,
                    2 => field = Some(name),
                    _ => return None,
                }
            }
            Event::End(_) => {
                depth = depth.checked_sub(1)?;
                field = None;
            }
            Event::Empty(_) if depth == 1 => {}
            Event::Text(t) if depth == 2 => {
                let v = t.xml10_content().into_owned();
                set_field(&mut push, field.as_deref(), &v);
            }
            Event::CData(t) if depth == 2 => {
                let v = t.xml10_content().into_owned();
                set_field(&mut push, field.as_deref(), &v);
            }
            Event::Text(t) if depth < 2 => {
                if !t.chars().all(char::is_whitespace) {
                    return None;
                }
            }
            Event::Decl(_) | Event::Comment(_) if depth == 0 => {}
            Event::Eof => break,
            _ => return None,
        }
        buf.clear();
    }
    (seen_root && depth == 0 && !push.from.is_empty() && !push.msg_type.is_empty()).then_some(push)
}

fn set_field(push: &mut Push, field: Option<&str>, v: &str) {
    let v: String = v.trim().chars().take(FIELD_CHARS_MAX).collect();
    match field {
        Some("FromUserName") => push.from = v,
        Some("MsgType") => push.msg_type = v,
        Some("Event") => push.event = v,
        Some("Status") => push.status = v,
        Some("MsgID") => push.msg_id = v,
        _ => {}
    }
}

async fn event(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<&'static str, StatusCode> {
    let token = token(&state)?;
    if !signed(token, &q) {
        tracing::warn!("wechat event push with a wrong signature refused");
        return Err(StatusCode::FORBIDDEN);
    }
    if q.get("encrypt_type").is_some_and(|t| t != "raw") {
        // Safe mode is not supported: configure plaintext mode.
        tracing::warn!("wechat event push in encrypted mode refused (plaintext mode only)");
        return Err(StatusCode::BAD_REQUEST);
    }
    let Some(push) = parse_push(&body) else {
        tracing::warn!(bytes = body.len(), "malformed wechat event push refused");
        return Err(StatusCode::BAD_REQUEST);
    };
    if push.msg_type != "event" {
        return Ok("success");
    }
    let follows = match push.event.as_str() {
        "subscribe" => Follows::Yes,
        "unsubscribe" => Follows::No,
        "TEMPLATESENDJOBFINISH" => {
            tracing::info!(msgid = %push.msg_id, status = %push.status, "wechat template send receipt");
            return Ok("success");
        }
        _ => return Ok("success"),
    };
    let now_ms = store::now_ms();
    match store::wechat_outbox::set_follow_by_openid(
        state.db(),
        &push.from,
        follows,
        FollowSource::Event,
        now_ms,
    )
    .await
    {
        Ok(known) => {
            tracing::info!(event = %push.event, known_student = known, "wechat follow state changed");
            Ok("success")
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot record a wechat follow event");
            // WeChat retries a non-success answer.
            Err(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_sha1_of_the_sorted_parts() {
        // sha1("1409304348" + "abc" + "token"... sorted: "1409304348", "nonce", "token")
        let s = signature("token", "1409304348", "nonce");
        let d = ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            b"1409304348noncetoken",
        );
        assert_eq!(s, hex::encode(d.as_ref()));
        assert_eq!(s.len(), 40);
    }

    #[test]
    fn pushes_parse_and_junk_does_not() {
        let ok = b"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o-alice]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[unsubscribe]]></Event></xml>";
        let p = parse_push(ok).unwrap();
        assert_eq!(
            (p.from.as_str(), p.event.as_str()),
            ("o-alice", "unsubscribe")
        );
        for bad in [
            &b"not xml"[..],
            b"<xml><FromUserName>o</FromUserName>",
            b"<other><FromUserName>o</FromUserName><MsgType>event</MsgType></other>",
            b"<xml><FromUserName><b>o</b></FromUserName><MsgType>event</MsgType></xml>",
            b"<!DOCTYPE x [<!ENTITY a \"b\">]><xml><FromUserName>&a;</FromUserName><MsgType>event</MsgType></xml>",
            b"<xml><MsgType>event</MsgType></xml>",
        ] {
            assert_eq!(parse_push(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
