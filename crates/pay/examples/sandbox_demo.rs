//! A standalone sandbox for trying the cashier in a browser:
//! `cargo run -p pay --example sandbox_demo [port]`. It mounts the sandbox,
//! a notify handler that verifies and prints what arrives, creates one order
//! and prints its cashier link. It stops by itself after ten minutes.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use pay::{JsapiOrder, PaymentProvider, Sandbox, WechatPayClient};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .map(|p| p.parse())
        .transpose()?
        .unwrap_or(8099);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let sandbox = Sandbox::demo();
    let config = pay::sandbox::demo_merchant_config(
        &format!("{base}/sandbox/wxpay"),
        &format!("{base}/notify"),
    );
    let client = Arc::new(WechatPayClient::new(config)?);
    let notify_client = Arc::clone(&client);
    let app = Router::new()
        .nest("/sandbox/wxpay", pay::sandbox_router(sandbox))
        .route(
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
    tokio::spawn(async move { axum::serve(listener, app).await });

    let payment = client
        .create_jsapi_order(&JsapiOrder {
            description: "宿舍电费 3号楼402 · 20 kWh".to_owned(),
            out_trade_no: "DEMO20261126000001".to_owned(),
            amount_fen: 1250,
            payer_openid: "oDemoOpenid000000000000000000".to_owned(),
            time_expire_unix_s: None,
            attach: None,
        })
        .await?;
    let cashier = payment.cashier_url.unwrap_or_default();
    println!("cashier: {cashier}&return_url=/");
    tokio::time::sleep(Duration::from_secs(600)).await;
    Ok(())
}
