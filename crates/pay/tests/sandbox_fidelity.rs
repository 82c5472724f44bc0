//! The sandbox as a third-party WeChat Pay v3 SDK sees it (issue 11 items
//! 17–18): requests built and signed here the way SDKs do it — over the path
//! relative to the SDK's gateway, with or without a `Wechatpay-Serial` —
//! sent over real HTTP, and every answer checked against WeChat's protocol
//! without going through our own client.

use std::io::Read as _;

use axum::Router;
use pay::sandbox::{self, SandboxConfig};
use pay::sign::{Authorization, SignedHeaders};
use pay::{ApiV3Key, NotifyPlan, PlatformCertificate, Sandbox, WechatPayKeys};
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

fn now() -> i64 {
    pay::Clock::now_unix_s(&pay::SystemClock)
}

/// A minimal merchant SDK: WeChat's signing rules and nothing of ours.
struct Sdk {
    /// What the SDK was told WeChat's host is (`http://127.0.0.1:port`,
    /// possibly with a prefix); it signs paths below it.
    gateway: String,
    http: reqwest::Client,
    /// Sent as `Wechatpay-Serial` (public-key mode) when set.
    public_key_id: Option<String>,
}

/// What came back.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    /// Asserts a 200, showing the body otherwise.
    fn assert_ok(&self) {
        assert_eq!(
            self.status,
            200,
            "{:?}",
            String::from_utf8_lossy(&self.body)
        );
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): status {} body {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Verifies the answer's `Wechatpay-*` signature with the sandbox's
    /// platform key, both as a public key and as its certificate.
    fn verify_signature(&self) -> String {
        let mut keys = WechatPayKeys::with_public_key(
            sandbox::DEMO_PUBLIC_KEY_ID,
            sandbox::platform_public_key(),
        );
        let pem = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/sandbox/sandbox_platform_cert.pem"
        ))
        .expect("certificate file");
        keys.add_certificate(PlatformCertificate::from_pem(&pem).expect("certificate"));
        let signed = SignedHeaders::from_header_map(&self.headers).expect("Wechatpay-* headers");
        signed
            .verify(&keys, &self.body, now())
            .unwrap_or_else(|e| panic!("answer signature: {e}"));
        signed.serial
    }
}

impl Sdk {
    fn new(gateway: &str) -> Self {
        Self {
            gateway: gateway.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            public_key_id: Some(sandbox::DEMO_PUBLIC_KEY_ID.to_owned()),
        }
    }

    /// Certificate mode: no `Wechatpay-Serial` on requests.
    fn certificate_mode(mut self) -> Self {
        self.public_key_id = None;
        self
    }

    /// A signed GET of `path` (see [`Sdk::call`]).
    async fn get(&self, path: &str) -> Answer {
        self.call("GET", path, None).await
    }

    /// `path` is relative to the gateway, query included, exactly as signed.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let nonce = pay::sign::new_nonce();
        let auth = Authorization::sign(
            &sandbox::demo_merchant_key(),
            sandbox::DEMO_MCHID,
            sandbox::DEMO_MERCHANT_SERIAL_NO,
            method,
            path,
            now(),
            &nonce,
            body.as_bytes(),
        )
        .expect("sign");
        let url = format!("{}{path}", self.gateway);
        let mut request = self
            .http
            .request(method.parse().expect("method"), url)
            .header("Authorization", auth.header_value())
            .header("Accept", "application/json")
            .header("User-Agent", "third-party-sdk/1.0")
            .header("Content-Type", "application/json");
        if let Some(id) = &self.public_key_id {
            request = request.header("Wechatpay-Serial", id);
        }
        if method != "GET" {
            request = request.body(body);
        }
        let response = request.send().await.expect("send");
        Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.bytes().await.expect("body").to_vec(),
        }
    }

    /// JSAPI prepay of `fen` for `out_trade_no`; panics unless 200.
    async fn prepay(&self, out_trade_no: &str, fen: i64) {
        let answer = self
            .call(
                "POST",
                "/v3/pay/transactions/jsapi",
                Some(json!({
                    "appid": sandbox::DEMO_APPID,
                    "mchid": sandbox::DEMO_MCHID,
                    "description": "宿舍电费 · 3号楼402",
                    "out_trade_no": out_trade_no,
                    "notify_url": "https://dorm.example.edu/notify",
                    "amount": {"total": fen, "currency": "CNY"},
                    "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
                })),
            )
            .await;
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
    }
}

/// The sandbox at the root of its own listener, as `dormwatt demo` runs it.
async fn serve_at_root(sandbox: &Sandbox) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let sb = sandbox.clone();
    tokio::spawn(async move { sb.serve(listener, std::future::pending()).await });
    base
}

fn quiet_sandbox() -> Sandbox {
    let sandbox = Sandbox::new(SandboxConfig::demo());
    sandbox.set_default_notify_plan(NotifyPlan::never());
    sandbox
}

#[tokio::test]
async fn a_prefixed_gateway_is_not_part_of_the_signed_path() {
    // An SDK told the gateway is http://host/sandbox/wxpay signs
    // /v3/… — the prefix is its host's business, not the message's.
    let sandbox = quiet_sandbox();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = Router::new().nest_service("/sandbox/wxpay", sandbox.router());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let sdk = Sdk::new(&format!("{base}/sandbox/wxpay"));

    let answer = sdk
        .get(&format!(
            "/v3/pay/transactions/out-trade-no/E2026120200000001?mchid={}",
            sandbox::DEMO_MCHID
        ))
        .await;
    assert_eq!(
        (answer.status, answer.json()["code"].as_str()),
        (404, Some("ORDER_NOT_EXIST")),
        "the request must pass the signature check: {:?}",
        String::from_utf8_lossy(&answer.body)
    );
    sdk.prepay("E2026120200000001", 100).await;
}

#[tokio::test]
async fn orders_are_queried_by_transaction_id_too() {
    let sandbox = quiet_sandbox();
    let sdk = Sdk::new(&serve_at_root(&sandbox).await);
    sdk.prepay("E2026120200000002", 1250).await;
    let paid = sandbox.pay("E2026120200000002").expect("pay");
    let transaction_id = paid.transaction_id.expect("transaction id");

    let answer = sdk
        .get(&format!(
            "/v3/pay/transactions/id/{transaction_id}?mchid={}",
            sandbox::DEMO_MCHID
        ))
        .await;
    answer.assert_ok();
    answer.verify_signature();
    let body = answer.json();
    assert_eq!(body["out_trade_no"], "E2026120200000002");
    assert_eq!(body["transaction_id"], transaction_id.as_str());
    assert_eq!(body["trade_state"], "SUCCESS");
    assert_eq!(body["amount"]["total"], 1250);

    let unknown = sdk
        .get(&format!(
            "/v3/pay/transactions/id/4200000000202612020000000000?mchid={}",
            sandbox::DEMO_MCHID
        ))
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["code"], "ORDER_NOT_EXIST");
    let no_mchid = sdk
        .get(&format!("/v3/pay/transactions/id/{transaction_id}"))
        .await;
    assert_eq!(no_mchid.json()["code"], "PARAM_ERROR");
}

#[tokio::test]
async fn platform_certificates_are_downloaded_encrypted_like_wechat() {
    let sandbox = quiet_sandbox();
    let sdk = Sdk::new(&serve_at_root(&sandbox).await).certificate_mode();
    let answer = sdk.get("/v3/certificates").await;
    answer.assert_ok();
    let body = answer.json();
    let entry = &body["data"][0];
    let enc = &entry["encrypt_certificate"];
    assert_eq!(enc["algorithm"], "AEAD_AES_256_GCM");
    assert_eq!(enc["associated_data"], "certificate");
    let api_v3_key = ApiV3Key::new(sandbox::DEMO_API_V3_KEY).expect("key");
    let pem = pay::aead::decrypt(
        &api_v3_key,
        enc["nonce"].as_str().expect("nonce"),
        enc["associated_data"].as_str().expect("aad"),
        enc["ciphertext"].as_str().expect("ciphertext"),
    )
    .expect("decrypts under the APIv3 key");
    let pem = String::from_utf8(pem).expect("utf-8");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let cert = PlatformCertificate::from_pem(&pem).expect("certificate");
    assert_eq!(entry["serial_no"], cert.serial_no.as_str());
    assert_eq!(cert.public_key, sandbox::platform_public_key());
    for field in ["effective_time", "expire_time"] {
        let t = entry[field].as_str().expect(field);
        assert!(t.ends_with("+08:00") && t.len() == 25, "{field}: {t}");
    }
    let (effective, expire) = (
        pay::time::parse_rfc3339(entry["effective_time"].as_str().unwrap_or_default()),
        pay::time::parse_rfc3339(entry["expire_time"].as_str().unwrap_or_default()),
    );
    assert!(effective.is_some_and(|e| e <= now()) && expire.is_some_and(|e| e > now()));
    // Certificate mode (no PUB_KEY_ID named): signed under the certificate's serial.
    assert_eq!(answer.verify_signature(), cert.serial_no);

    // Public-key mode: the same key, announced by its PUB_KEY_ID.
    let public = Sdk::new(&sdk.gateway).get("/v3/certificates").await;
    assert_eq!(public.verify_signature(), sandbox::DEMO_PUBLIC_KEY_ID);
}

#[tokio::test]
async fn trade_bill_comes_gzip_compressed_when_asked() {
    let sandbox = quiet_sandbox();
    let sdk = Sdk::new(&serve_at_root(&sandbox).await);
    sdk.prepay("E2026120200000003", 3000).await;
    sandbox.pay("E2026120200000003").expect("pay");
    let today = pay::time::beijing_date(now());
    let answer = sdk
        .get(&format!(
            "/v3/bill/tradebill?bill_date={today}&bill_type=ALL&tar_type=GZIP"
        ))
        .await;
    answer.assert_ok();
    answer.verify_signature();
    let meta = answer.json();
    let url = meta["download_url"].as_str().expect("download_url");
    let path = url.strip_prefix(&sdk.gateway).expect("on the sandbox");
    let file = sdk.get(path).await;
    assert_eq!(file.status, 200);
    assert_eq!(&file.body[..2], &[0x1f, 0x8b], "a gzip member");
    let mut csv = Vec::new();
    flate2::read::GzDecoder::new(&file.body[..])
        .read_to_end(&mut csv)
        .expect("gunzip");
    // The hash is over the uncompressed bill.
    pay::bill::check_bill_hash(
        &csv,
        meta["hash_type"].as_str().unwrap_or_default(),
        meta["hash_value"].as_str().unwrap_or_default(),
    )
    .expect("SHA-1 of the uncompressed bill");
    let bill = pay::parse_trade_bill(std::str::from_utf8(&csv).expect("utf-8")).expect("bill");
    assert!(
        bill.rows
            .iter()
            .any(|r| r.out_trade_no == "E2026120200000003" && r.settlement_total_fen == 3000),
        "{bill:#?}"
    );
    let bad = sdk
        .get(&format!(
            "/v3/bill/tradebill?bill_date={today}&tar_type=ZIP"
        ))
        .await;
    assert_eq!(bad.json()["code"], "PARAM_ERROR");
}

#[tokio::test]
async fn unknown_routes_answer_wechats_signed_json_error() {
    let sandbox = quiet_sandbox();
    let sdk = Sdk::new(&serve_at_root(&sandbox).await);
    for (method, path) in [
        ("GET", "/v3/pay/transactions/h5"),
        ("GET", "/v3/no/such/api"),
        // A known path with a method it does not take.
        ("GET", "/v3/pay/transactions/jsapi"),
    ] {
        let answer = sdk.call(method, path, None).await;
        assert_eq!(answer.status, 404, "{method} {path}");
        assert_eq!(
            answer
                .headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{method} {path}"
        );
        let body = answer.json();
        assert!(
            body["code"].is_string() && body["message"].is_string(),
            "{body}"
        );
        answer.verify_signature();
    }
}

#[tokio::test]
async fn a_204_carries_no_content_type() {
    let sandbox = quiet_sandbox();
    let sdk = Sdk::new(&serve_at_root(&sandbox).await);
    sdk.prepay("E2026120200000004", 100).await;
    let answer = sdk
        .call(
            "POST",
            "/v3/pay/transactions/out-trade-no/E2026120200000004/close",
            Some(json!({"mchid": sandbox::DEMO_MCHID})),
        )
        .await;
    assert_eq!(answer.status, 204);
    assert!(answer.body.is_empty());
    assert_eq!(
        answer.headers.get(CONTENT_TYPE),
        None,
        "{:?}",
        answer.headers
    );
    answer.verify_signature();
}

#[tokio::test]
async fn refunds_name_the_order_by_transaction_id_too() {
    let sandbox = quiet_sandbox();
    let sdk = Sdk::new(&serve_at_root(&sandbox).await);
    sdk.prepay("E2026120200000005", 2000).await;
    let transaction_id = sandbox
        .pay("E2026120200000005")
        .expect("pay")
        .transaction_id
        .expect("id");
    let answer = sdk
        .call(
            "POST",
            "/v3/refund/domestic/refunds",
            Some(json!({
                "transaction_id": transaction_id,
                "out_refund_no": "R2026120200000005",
                "amount": {"refund": 500, "total": 2000, "currency": "CNY"},
            })),
        )
        .await;
    answer.assert_ok();
    let body = answer.json();
    assert_eq!(body["out_trade_no"], "E2026120200000005");
    assert_eq!(body["transaction_id"], transaction_id.as_str());
    assert_eq!(body["amount"]["refund"], 500);
}
