//! The demo payment sandbox alone, at the root of its own loopback listener:
//! `cargo run -p pay --example sandbox_serve [port] [--demo]`.
//!
//! Without `--demo` it is for clients that are not ours
//! (scripts/interop-wxpay.sh drives it with a PyPI WeChat Pay SDK). With
//! `--demo` it is for trying the cashier in a browser: our client creates
//! one order, its cashier link is printed, and a notify receiver on a
//! second loopback listener verifies and prints what arrives.
//!
//! Prints `PORT <n>` once listening; stops when its standard input closes
//! (the driving script exits, or Ctrl-D) or after ten minutes, whichever
//! comes first.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use pay::{JsapiOrder, PaymentProvider, Sandbox, WechatPayClient};
use tokio::io::AsyncReadExt as _;

/// A forgotten sandbox must not run for ever.
const LIFETIME_MAX: Duration = Duration::from_secs(600);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let demo = args.iter().any(|a| a == "--demo");
    let port: u16 = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(|p| p.parse())
        .transpose()?
        .unwrap_or(0);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let sandbox_base = format!("http://{}", listener.local_addr()?);
    println!("PORT {}", listener.local_addr()?.port());
    let sandbox = Sandbox::demo();
    if demo {
        start_demo_order(&sandbox_base).await?;
    }
    let stop = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0_u8; 64];
        // EOF (or an error) on stdin means whoever started us is gone.
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    let stop = async move {
        let _ = tokio::time::timeout(LIFETIME_MAX, stop).await;
    };
    sandbox.serve(listener, stop).await?;
    Ok(())
}

/// Serves a notify receiver that verifies and prints what arrives, and
/// creates one order at the sandbox at `sandbox_base` (served once this
/// returns); prints its cashier link.
async fn start_demo_order(sandbox_base: &str) -> Result<(), Box<dyn std::error::Error>> {
    let notify_listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let notify_url = format!("http://{}/notify", notify_listener.local_addr()?);
    let config = pay::sandbox::demo_merchant_config(sandbox_base, &notify_url);
    let client = Arc::new(WechatPayClient::new(config)?);
    let notify_client = Arc::clone(&client);
    let receiver = axum::Router::new().route(
        "/notify",
        post(move |headers: HeaderMap, body: Bytes| {
            let client = Arc::clone(&notify_client);
            async move {
                match client.parse_notification(&headers, &body) {
                    Ok(n) => {
                        println!("verified notification: {n:?}");
                        StatusCode::NO_CONTENT
                    }
                    Err(e) => {
                        println!("rejected notification: {e}");
                        StatusCode::UNAUTHORIZED
                    }
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(notify_listener, receiver).await });
    // The order is created once the sandbox answers (it is served right after).
    tokio::spawn(async move {
        let order = JsapiOrder {
            description: "宿舍电费 3号楼402 · 20 kWh".to_owned(),
            out_trade_no: "DEMO20261126000001".to_owned(),
            amount_fen: 1250,
            payer_openid: "oDemoOpenid000000000000000000".to_owned(),
            time_expire_unix_s: None,
            attach: None,
        };
        match client.create_jsapi_order(&order).await {
            Ok(payment) => println!(
                "cashier: {}&return_url=/",
                payment.cashier_url.unwrap_or_default()
            ),
            Err(e) => println!("creating the demo order failed: {e}"),
        }
    });
    Ok(())
}
