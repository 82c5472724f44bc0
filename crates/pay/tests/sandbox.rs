//! Client ↔ sandbox over real HTTP on 127.0.0.1:0: every endpoint, the
//! notification path (signature verified, resource decrypted), retries,
//! duplicates, probes and forgeries.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use pay::client::PaymentProvider;
use pay::notify::NotificationError;
use pay::sandbox::{self, DeliveryRecord, Forgery, SandboxConfig};
use pay::{
    BillType, JsapiOrder, NotifyPlan, OffsetClock, PayError, RefundOrder, RefundStatus, Sandbox,
    TradeState, VerifyError, WechatPayClient,
};

/// What our test notify endpoint saw.
#[derive(Debug)]
enum Received {
    Payment(pay::PaymentNotification),
    Refund(pay::RefundNotification),
    Rejected(String),
}

struct NotifySink {
    client: WechatPayClient,
    received: Mutex<Vec<Received>>,
    /// Answer 500 to this many valid notifications before accepting.
    fail_first: AtomicU32,
}

struct TestEnv {
    base_url: String,
    sandbox: Sandbox,
    client: WechatPayClient,
    sink: Arc<NotifySink>,
}

impl TestEnv {
    async fn spawn() -> Self {
        let mut config = SandboxConfig::demo();
        // WeChat's schedule / 1000: 15 ms, 15 ms, 30 ms, 180 ms, …
        config.retry_schedule = sandbox::scaled_retry_schedule(1000);
        config.refund_delay = Duration::from_millis(10);
        Self::spawn_with(Sandbox::new(config)).await
    }

    async fn spawn_with(sandbox: Sandbox) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base_url = format!("http://{addr}");
        let config = sandbox::demo_merchant_config(
            &format!("{base_url}/sandbox/wxpay"),
            &format!("{base_url}/notify"),
        );
        let client = WechatPayClient::new(config).expect("client");
        let sink = Arc::new(NotifySink {
            client: client.clone(),
            received: Mutex::new(Vec::new()),
            fail_first: AtomicU32::new(0),
        });
        let handler_sink = Arc::clone(&sink);
        let app = Router::new()
            // Mounted the way the web crate mounts it (nest_service keeps OriginalUri).
            .nest_service("/sandbox/wxpay", sandbox.router())
            .route(
                "/notify",
                post(move |headers: HeaderMap, body: Bytes| {
                    let sink = Arc::clone(&handler_sink);
                    async move { sink.handle(&headers, &body) }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        Self {
            base_url,
            sandbox,
            client,
            sink,
        }
    }

    fn received(&self) -> std::sync::MutexGuard<'_, Vec<Received>> {
        self.sink.received.lock().expect("lock")
    }

    fn payments(&self) -> Vec<pay::PaymentNotification> {
        self.received()
            .iter()
            .filter_map(|r| match r {
                Received::Payment(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    async fn wait(&self, what: &str, done: impl Fn(&[DeliveryRecord]) -> bool) {
        assert!(
            self.sandbox
                .wait_for_deliveries(Duration::from_secs(10), done)
                .await,
            "timed out waiting for {what}: {:#?}",
            self.sandbox.deliveries()
        );
    }
}

impl NotifySink {
    /// A minimal notify handler: verify + decrypt through the client, then
    /// (optionally) fail to simulate an unpersisted notification.
    fn handle(&self, headers: &HeaderMap, body: &[u8]) -> (StatusCode, String) {
        let result = self
            .client
            .parse_notification(headers, body)
            .map(|n| match n {
                pay::Notification::Payment(p) => Received::Payment(p),
                pay::Notification::Refund(r) => Received::Refund(r),
            });
        match result {
            Ok(received) => {
                let failing = self
                    .fail_first
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if failing {
                    return (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        pay::notify::ACK_FAIL_BODY.to_owned(),
                    );
                }
                self.received.lock().expect("lock").push(received);
                (StatusCode::NO_CONTENT, String::new())
            }
            Err(e) => {
                self.received
                    .lock()
                    .expect("lock")
                    .push(Received::Rejected(e.to_string()));
                (
                    StatusCode::UNAUTHORIZED,
                    pay::notify::ACK_FAIL_BODY.to_owned(),
                )
            }
        }
    }
}

fn order(out_trade_no: &str, amount_fen: i64) -> JsapiOrder {
    JsapiOrder {
        description: "宿舍电费-3号楼402".to_owned(),
        out_trade_no: out_trade_no.to_owned(),
        amount_fen,
        payer_openid: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".to_owned(),
        time_expire_unix_s: None,
        attach: Some("meter=17".to_owned()),
    }
}

fn acked(records: &[DeliveryRecord]) -> usize {
    records.iter().filter(|r| r.acknowledged()).count()
}

#[tokio::test]
async fn prepay_pay_notify_query_round_trip() {
    let env = TestEnv::spawn().await;
    let provider: Arc<dyn PaymentProvider> = Arc::new(env.client.clone());

    let payment = provider
        .create_jsapi_order(&order("E2026112600000001", 1250))
        .await
        .expect("prepay");
    assert!(payment.prepay_id.starts_with("wx"));
    assert_eq!(
        payment.pay_params.package,
        format!("prepay_id={}", payment.prepay_id)
    );
    assert_eq!(payment.pay_params.app_id, sandbox::DEMO_APPID);
    // paySign verifies with the merchant's public key over the documented string.
    let p = &payment.pay_params;
    let message = format!(
        "{}\n{}\n{}\n{}\n",
        p.app_id, p.time_stamp, p.nonce_str, p.package
    );
    let sig = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(&p.pay_sign)
            .expect("b64")
    };
    assert!(
        sandbox::demo_merchant_key()
            .public_key()
            .verify(message.as_bytes(), &sig)
    );
    let cashier = payment.cashier_url.expect("sandbox gives a cashier link");
    assert!(
        cashier.contains("/sandbox/wxpay/cashier?prepay_id="),
        "{cashier}"
    );

    let t = provider
        .query_order("E2026112600000001")
        .await
        .expect("query");
    assert_eq!(t.trade_state, TradeState::Notpay);
    assert_eq!(t.total_fen(), Some(1250));
    assert_eq!(t.transaction_id, None);

    env.sandbox.pay("E2026112600000001").expect("pay");
    env.wait("one acknowledged notification", |d| acked(d) == 1)
        .await;

    let payments = env.payments();
    assert_eq!(payments.len(), 1);
    let n = &payments[0];
    assert_eq!(n.event_type, "TRANSACTION.SUCCESS");
    let t = &n.transaction;
    assert_eq!(t.trade_state, TradeState::Success);
    assert_eq!(t.out_trade_no, "E2026112600000001");
    assert_eq!(t.total_fen(), Some(1250));
    assert_eq!(t.payer_total_fen(), Some(1250));
    assert_eq!(t.payer_openid(), Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"));
    assert_eq!(t.attach.as_deref(), Some("meter=17"));
    assert!(t.success_time_unix_s().is_some());
    t.check_merchant(env.client.config()).expect("our merchant");

    let queried = provider
        .query_order("E2026112600000001")
        .await
        .expect("query");
    assert_eq!(queried.trade_state, TradeState::Success);
    assert_eq!(queried.transaction_id, t.transaction_id);

    let missing = provider
        .query_order("E2026112699999999")
        .await
        .expect_err("404");
    assert!(missing.is_not_found(), "{missing:?}");
    assert!(!missing.is_retryable());
}

#[tokio::test]
async fn duplicate_notifications_arrive_with_one_id() {
    let env = TestEnv::spawn().await;
    env.client
        .prepay_jsapi(&order("E2026112600000002", 500))
        .await
        .expect("prepay");
    env.sandbox
        .set_notify_plan("E2026112600000002", NotifyPlan::duplicates(3));
    env.sandbox.pay("E2026112600000002").expect("pay");
    env.wait("three copies", |d| acked(d) == 3).await;
    let payments = env.payments();
    assert_eq!(payments.len(), 3);
    assert!(payments.iter().all(|p| p.id == payments[0].id));
    assert!(
        payments
            .iter()
            .all(|p| p.transaction == payments[0].transaction)
    );
}

#[tokio::test]
async fn failed_answers_are_retried_on_the_schedule() {
    let env = TestEnv::spawn().await;
    env.sink.fail_first.store(2, Ordering::SeqCst);
    env.client
        .prepay_jsapi(&order("E2026112600000003", 100))
        .await
        .expect("prepay");
    env.sandbox.pay("E2026112600000003").expect("pay");
    env.wait("acknowledged after retries", |d| acked(d) == 1)
        .await;
    let attempts: Vec<(u32, Option<u16>)> = env
        .sandbox
        .deliveries()
        .iter()
        .map(|d| (d.attempt, d.status))
        .collect();
    assert_eq!(
        attempts,
        vec![(0, Some(500)), (1, Some(500)), (2, Some(204))]
    );
    assert_eq!(env.payments().len(), 1);
}

#[tokio::test]
async fn never_delayed_and_late_notifications() {
    let env = TestEnv::spawn().await;
    for otn in ["E2026112600000004", "E2026112600000005"] {
        env.client
            .prepay_jsapi(&order(otn, 100))
            .await
            .expect("prepay");
    }
    // Never: the order is paid, but only a query can tell.
    env.sandbox
        .pay_with("E2026112600000004", NotifyPlan::never())
        .expect("pay");
    // Nothing was scheduled, so nothing can arrive later either.
    assert_eq!(env.sandbox.notifications_scheduled(), 0);
    assert!(env.sandbox.deliveries().is_empty());
    let t = env
        .client
        .query_by_out_trade_no("E2026112600000004")
        .await
        .expect("query");
    assert_eq!(t.trade_state, TradeState::Success);
    // …and a late delivery can be sent whenever the test decides.
    env.sandbox
        .notify("E2026112600000004", NotifyPlan::normal())
        .expect("late notify");
    env.wait("late notification", |d| acked(d) == 1).await;

    // Delayed: nothing for the delay, then one delivery.
    env.sandbox
        .pay_with(
            "E2026112600000005",
            NotifyPlan::delayed(Duration::from_millis(300)),
        )
        .expect("pay");
    env.wait("delayed notification", |d| acked(d) == 2).await;
    let of = |otn: &str| -> Vec<DeliveryRecord> {
        env.sandbox
            .deliveries()
            .into_iter()
            .filter(|r| r.out_trade_no == otn)
            .collect()
    };
    let delayed = of("E2026112600000005");
    assert_eq!(delayed.len(), 1, "one delivery: {delayed:#?}");
    assert!(
        delayed[0].sent_after >= Duration::from_millis(300),
        "nothing for the delay: {delayed:#?}"
    );

    // Late: not before a given instant (here: the next second or two).
    let at = pay::Clock::now_unix_s(&pay::SystemClock) + 1;
    env.sandbox
        .notify("E2026112600000005", NotifyPlan::late_after(at))
        .expect("late notify");
    env.wait("late-after notification", |d| acked(d) == 3).await;
    let late = of("E2026112600000005");
    assert_eq!(late.len(), 2, "{late:#?}");
    assert!(late[1].sent_at_unix_s >= at, "not before {at}: {late:#?}");

    assert_eq!(
        env.sandbox
            .notify("E2026112699999999", NotifyPlan::normal()),
        Err(sandbox::SandboxError::UnknownOrder)
    );
}

#[tokio::test]
async fn signtest_probe_is_rejected_then_real_one_accepted() {
    let env = TestEnv::spawn().await;
    env.client
        .prepay_jsapi(&order("E2026112600000006", 100))
        .await
        .expect("prepay");
    env.sandbox
        .pay_with(
            "E2026112600000006",
            NotifyPlan::normal().with_signtest_probe(),
        )
        .expect("pay");
    env.wait("real notification", |d| acked(d) == 1).await;
    let deliveries = env.sandbox.deliveries();
    assert!(deliveries[0].probe);
    assert_eq!(deliveries[0].status, Some(401));
    let received = env.received();
    assert!(matches!(&received[0], Received::Rejected(e) if e.contains("SIGNTEST")));
    assert!(matches!(&received[1], Received::Payment(_)));
}

#[tokio::test]
async fn forged_notifications_get_distinct_errors() {
    let env = TestEnv::spawn().await;
    env.client
        .prepay_jsapi(&order("E2026112600000007", 100))
        .await
        .expect("prepay");
    let genuine = env
        .sandbox
        .forge_notification("E2026112600000007", Forgery::None)
        .expect("build");
    let to_map = |h: &pay::SignedHeaders| {
        let mut map = HeaderMap::new();
        for (name, value) in h.to_pairs() {
            map.insert(name, value.parse().expect("header value"));
        }
        map
    };
    env.client
        .parse_payment_notification(&to_map(&genuine.headers), &genuine.body)
        .expect("genuine verifies");

    let check = |forgery: Forgery| {
        let n = env
            .sandbox
            .forge_notification("E2026112600000007", forgery)
            .expect("build");
        env.client
            .parse_payment_notification(&to_map(&n.headers), &n.body)
            .expect_err("forgery must fail")
    };
    assert!(matches!(
        check(Forgery::BadSignature),
        NotificationError::Verify(VerifyError::BadSignature)
    ));
    assert!(matches!(
        check(Forgery::UnknownSerial),
        NotificationError::Verify(VerifyError::UnknownSerial(_))
    ));
    assert!(matches!(
        check(Forgery::StaleTimestamp(600)),
        NotificationError::Verify(VerifyError::StaleTimestamp { .. })
    ));
    assert!(matches!(
        check(Forgery::SignTest),
        NotificationError::Verify(VerifyError::SignatureProbe)
    ));
    assert!(matches!(
        check(Forgery::TamperedCiphertext),
        NotificationError::Decrypt(pay::aead::AeadError::Authentication)
    ));
    let no_headers = env
        .client
        .parse_payment_notification(&HeaderMap::new(), &genuine.body)
        .expect_err("no headers");
    assert!(matches!(
        no_headers,
        NotificationError::Verify(VerifyError::MissingHeader(_))
    ));

    // Over HTTP, too: the handler answers non-2xx to a forgery.
    let forged = env
        .sandbox
        .forge_notification("E2026112600000007", Forgery::BadSignature)
        .expect("build");
    let mut request = reqwest::Client::new()
        .post(format!("{}/notify", env.base_url))
        .body(forged.body.clone());
    for (name, value) in forged.headers.to_pairs() {
        request = request.header(name, value);
    }
    let status = request.send().await.expect("send").status();
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn close_order_then_it_cannot_be_paid() {
    let env = TestEnv::spawn().await;
    env.client
        .prepay_jsapi(&order("E2026112600000008", 100))
        .await
        .expect("prepay");
    env.client
        .close("E2026112600000008")
        .await
        .expect("close → 204");
    let t = env
        .client
        .query_by_out_trade_no("E2026112600000008")
        .await
        .expect("query");
    assert_eq!(t.trade_state, TradeState::Closed);
    let again = env
        .client
        .close("E2026112600000008")
        .await
        .expect_err("closed");
    assert_eq!(again.code(), Some("ORDER_CLOSED"));
    assert_eq!(
        env.sandbox.pay("E2026112600000008"),
        Err(sandbox::SandboxError::NotPayable(TradeState::Closed))
    );
    // Re-prepay of a closed order is refused too.
    let err = env
        .client
        .prepay_jsapi(&order("E2026112600000008", 100))
        .await
        .expect_err("closed");
    assert_eq!(err.code(), Some("ORDER_CLOSED"));
}

#[tokio::test]
async fn prepay_validation_and_idempotency() {
    let env = TestEnv::spawn().await;
    let first = env
        .client
        .prepay_jsapi(&order("E2026112600000009", 100))
        .await
        .expect("prepay");
    let second = env
        .client
        .prepay_jsapi(&order("E2026112600000009", 100))
        .await
        .expect("again");
    assert_eq!(
        first, second,
        "identical re-prepay returns the same prepay_id"
    );
    let changed = env
        .client
        .prepay_jsapi(&order("E2026112600000009", 200))
        .await
        .expect_err("changed params");
    assert_eq!(changed.code(), Some("OUT_TRADE_NO_USED"));

    let cases = [
        (order("E2026112600000010", 0), "PARAM_ERROR"),
        (order("E1", 100), "PARAM_ERROR"),
        (
            JsapiOrder {
                description: "电费😀".to_owned(),
                ..order("E2026112600000011", 100)
            },
            "PARAM_ERROR",
        ),
    ];
    for (o, code) in cases {
        let err = env.client.prepay_jsapi(&o).await.expect_err("invalid");
        assert_eq!(err.code(), Some(code), "{o:?}");
        assert!(matches!(err, PayError::Api { status: 400, .. }));
    }

    // Expired before payment: the cashier refuses.
    let mut expiring = order("E2026112600000012", 100);
    expiring.time_expire_unix_s = Some(pay::Clock::now_unix_s(&pay::SystemClock) - 1);
    env.client.prepay_jsapi(&expiring).await.expect("prepay");
    assert_eq!(
        env.sandbox.pay("E2026112600000012"),
        Err(sandbox::SandboxError::Expired)
    );
}

#[tokio::test]
async fn refund_create_query_and_notification() {
    let env = TestEnv::spawn().await;
    env.client
        .prepay_jsapi(&order("E2026112600000013", 1000))
        .await
        .expect("prepay");
    let refund_order = RefundOrder {
        out_trade_no: "E2026112600000013".to_owned(),
        out_refund_no: "R2026112600000013".to_owned(),
        reason: Some("退宿".to_owned()),
        refund_fen: 400,
        total_fen: 1000,
    };
    let unpaid = env
        .client
        .refund(&refund_order)
        .await
        .expect_err("not paid");
    assert_eq!(unpaid.code(), Some("INVALID_REQUEST"));

    env.sandbox.pay("E2026112600000013").expect("pay");
    env.wait("payment notification", |d| acked(d) == 1).await;

    let created = env.client.refund(&refund_order).await.expect("refund");
    assert_eq!(created.status, RefundStatus::Processing);
    assert_eq!(created.amount.refund, 400);
    let again = env
        .client
        .refund(&refund_order)
        .await
        .expect("same out_refund_no");
    assert_eq!(
        again.refund_id, created.refund_id,
        "refunds once per out_refund_no"
    );

    env.wait("refund notification", |d| {
        d.iter()
            .any(|r| r.event_type == "REFUND.SUCCESS" && r.acknowledged())
    })
    .await;
    let refunds: Vec<pay::RefundNotification> = env
        .received()
        .iter()
        .filter_map(|r| match r {
            Received::Refund(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].refund.refund_status, RefundStatus::Success);
    assert_eq!(refunds[0].refund.out_refund_no, "R2026112600000013");
    assert_eq!(refunds[0].refund.amount.refund, 400);

    let queried = env
        .client
        .query_refund("R2026112600000013")
        .await
        .expect("query");
    assert_eq!(queried.status, RefundStatus::Success);
    assert!(queried.success_time.is_some());
    let t = env
        .client
        .query_by_out_trade_no("E2026112600000013")
        .await
        .expect("query");
    assert_eq!(t.trade_state, TradeState::Refund);

    let too_much = RefundOrder {
        out_refund_no: "R2026112600000014".to_owned(),
        refund_fen: 601,
        ..refund_order.clone()
    };
    assert_eq!(
        env.client.refund(&too_much).await.expect_err("over").code(),
        Some("NOT_ENOUGH")
    );
    let missing = env
        .client
        .query_refund("R2026112699999999")
        .await
        .expect_err("404");
    assert!(missing.is_not_found());
}

#[tokio::test]
async fn trade_bill_download_and_parse() {
    let env = TestEnv::spawn().await;
    for (otn, fen) in [("E2026112600000015", 1250), ("E2026112600000016", 3000)] {
        env.client
            .prepay_jsapi(&order(otn, fen))
            .await
            .expect("prepay");
        env.sandbox.pay_with(otn, NotifyPlan::never()).expect("pay");
    }
    env.client
        .refund(&RefundOrder {
            out_trade_no: "E2026112600000016".to_owned(),
            out_refund_no: "R2026112600000016".to_owned(),
            reason: None,
            refund_fen: 1000,
            total_fen: 3000,
        })
        .await
        .expect("refund");
    // The refund is in the bill once it succeeded, which its notification says.
    env.wait("refund notification", |d| {
        d.iter()
            .any(|r| r.event_type == "REFUND.SUCCESS" && r.acknowledged())
    })
    .await;

    let today = pay::time::beijing_date(pay::Clock::now_unix_s(&pay::SystemClock));
    let provider: Arc<dyn PaymentProvider> = Arc::new(env.client.clone());
    let bill = provider
        .fetch_trade_bill(&today, BillType::All)
        .await
        .expect("bill");
    assert_eq!(bill.rows.len(), 3, "{bill:#?}");
    assert!(bill.totals_match(), "{bill:#?}");
    assert_eq!(bill.summary.settlement_total_fen, 4250);
    assert_eq!(bill.summary.refund_total_fen, 1000);
    let success: Vec<_> = bill
        .rows
        .iter()
        .filter(|r| r.trade_state == "SUCCESS")
        .collect();
    assert_eq!(success.len(), 2);
    assert!(success.iter().any(|r| r.out_trade_no == "E2026112600000015"
        && r.settlement_total_fen == 1250
        && r.fee_millifen == 8_000));
    let refund = bill
        .rows
        .iter()
        .find(|r| r.trade_state == "REFUND")
        .expect("refund row");
    assert_eq!(refund.out_refund_no.as_deref(), Some("R2026112600000016"));
    assert_eq!(refund.refund_fen, 1000);

    let refunds_only = provider
        .fetch_trade_bill(&today, BillType::Refund)
        .await
        .expect("bill");
    assert_eq!(refunds_only.rows.len(), 1);

    let future = env
        .client
        .trade_bill("2999-01-01", BillType::All)
        .await
        .expect_err("no bill yet");
    assert_eq!(future.code(), Some("NO_STATEMENT_EXIST"));
}

#[tokio::test]
async fn bad_request_signatures_and_clocks_are_refused() {
    let env = TestEnv::spawn().await;
    // A merchant key the sandbox does not know: 401 SIGN_ERROR.
    let mut config = sandbox::demo_merchant_config(
        &format!("{}/sandbox/wxpay", env.base_url),
        &format!("{}/notify", env.base_url),
    );
    config.merchant_key =
        pay::MerchantKey::from_pkcs8_pem(include_str!("../testdata/doc_test_private_key.pem"))
            .expect("key");
    let wrong_key = WechatPayClient::new(config).expect("client");
    let err = wrong_key
        .query_by_out_trade_no("E2026112600000017")
        .await
        .expect_err("sign error");
    assert_eq!(err.code(), Some("SIGN_ERROR"));
    assert!(matches!(err, PayError::Api { status: 401, .. }));

    // Our clock 10 minutes slow: the sandbox rejects the timestamp.
    let config = sandbox::demo_merchant_config(
        &format!("{}/sandbox/wxpay", env.base_url),
        &format!("{}/notify", env.base_url),
    );
    let slow = WechatPayClient::with_clock(config, Arc::new(OffsetClock(-600))).expect("client");
    let err = slow
        .query_by_out_trade_no("E2026112600000017")
        .await
        .expect_err("stale");
    assert_eq!(err.code(), Some("SIGN_ERROR"));

    // A client trusting a different WeChat key refuses the sandbox's answers.
    let mut config = sandbox::demo_merchant_config(
        &format!("{}/sandbox/wxpay", env.base_url),
        &format!("{}/notify", env.base_url),
    );
    config.wechatpay_keys = pay::WechatPayKeys::with_public_key(
        sandbox::DEMO_PUBLIC_KEY_ID,
        pay::RsaPublicKey::from_pem(include_str!("../testdata/go_sdk_test_public_key.pem"))
            .expect("pub"),
    );
    let distrustful = WechatPayClient::new(config).expect("client");
    let err = distrustful
        .prepay_jsapi(&order("E2026112600000017", 100))
        .await
        .expect_err("response signature");
    assert!(
        matches!(err, PayError::ResponseSignature(VerifyError::BadSignature)),
        "{err:?}"
    );
}

#[tokio::test]
async fn stale_sandbox_clock_makes_notifications_rejected_and_retried() {
    // A sandbox whose clock runs 10 min fast signs stale notifications; our
    // handler refuses each, and the sandbox keeps retrying within its bound.
    let mut config = SandboxConfig::demo();
    config.retry_schedule = vec![Duration::from_millis(10); 2];
    let sandbox = Sandbox::with_clock(config, Arc::new(OffsetClock(600)));
    let env = TestEnv::spawn_with(sandbox).await;
    // The merchant clock is not skewed, so the sandbox refuses our requests;
    // create the order through the test hook instead of the client.
    let err = env
        .client
        .prepay_jsapi(&order("E2026112600000018", 100))
        .await
        .expect_err("sandbox sees our timestamp as 10 min old");
    assert_eq!(err.code(), Some("SIGN_ERROR"));
    let skewed = WechatPayClient::with_clock(
        sandbox::demo_merchant_config(
            &format!("{}/sandbox/wxpay", env.base_url),
            &format!("{}/notify", env.base_url),
        ),
        Arc::new(OffsetClock(600)),
    )
    .expect("client");
    skewed
        .prepay_jsapi(&order("E2026112600000018", 100))
        .await
        .expect("prepay with matching clock");
    env.sandbox.pay("E2026112600000018").expect("pay");
    env.wait("all three attempts", |d| d.len() == 3).await;
    assert!(
        env.sandbox
            .deliveries()
            .iter()
            .all(|d| d.status == Some(401))
    );
    assert!(
        env.received()
            .iter()
            .all(|r| matches!(r, Received::Rejected(e) if e.contains("stale")))
    );
}

#[tokio::test]
async fn cashier_page_confirm_and_admin_routes() {
    let env = TestEnv::spawn().await;
    let payment = env
        .client
        .create_jsapi_payment(&order("E2026112600000019", 1250))
        .await
        .expect("prepay");
    let http = reqwest::Client::new();
    let cashier = payment.cashier_url.expect("cashier");
    let page = http
        .get(format!("{cashier}&return_url=/orders/19"))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), reqwest::StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(html.contains("¥12.50"), "{html}");
    assert!(html.contains("确认支付"));
    assert!(html.contains("宿舍电费-3号楼402"));
    assert!(html.contains(r#"action="cashier/confirm""#));

    let cancel = http
        .post(format!("{}/sandbox/wxpay/cashier/cancel", env.base_url))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!(
            "prepay_id={}&return_url=%2Forders%2F19",
            payment.prepay_id
        ))
        .send()
        .await
        .expect("cancel");
    assert!(cancel.text().await.expect("html").contains("已取消支付"));
    assert_eq!(
        env.sandbox
            .order("E2026112600000019")
            .expect("order")
            .trade_state,
        TradeState::Notpay
    );

    let confirm = http
        .post(format!("{}/sandbox/wxpay/cashier/confirm", env.base_url))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!(
            "prepay_id={}&return_url=%2Forders%2F19",
            payment.prepay_id
        ))
        .send()
        .await
        .expect("confirm");
    let html = confirm.text().await.expect("html");
    assert!(html.contains("支付成功"), "{html}");
    assert!(html.contains(r#"href="/orders/19""#));
    env.wait("cashier notification", |d| acked(d) == 1).await;
    assert_eq!(
        env.payments()[0].transaction.out_trade_no,
        "E2026112600000019"
    );

    // Admin API: pay another order with two copies, then read deliveries.
    env.client
        .prepay_jsapi(&order("E2026112600000020", 100))
        .await
        .expect("prepay");
    let paid = http
        .post(format!("{}/sandbox/wxpay/admin/pay", env.base_url))
        .json(&serde_json::json!({"out_trade_no": "E2026112600000020", "copies": 2}))
        .send()
        .await
        .expect("admin pay");
    assert_eq!(paid.status(), reqwest::StatusCode::OK);
    env.wait("admin copies", |d| acked(d) == 3).await;
    let deliveries: serde_json::Value = http
        .get(format!("{}/sandbox/wxpay/admin/deliveries", env.base_url))
        .send()
        .await
        .expect("deliveries")
        .json()
        .await
        .expect("json");
    assert_eq!(deliveries.as_array().map(Vec::len), Some(3));
}

/// Issue 9 item 13: a restarted sandbox (a new instance, as after a demo
/// restart) must not hand out the transaction ids of the previous run, or
/// dormwatt's unique transaction id makes the notify handler refuse the new
/// payment forever.
#[tokio::test]
async fn a_restarted_sandbox_never_reuses_transaction_ids() {
    const PAYMENTS: usize = 40;
    let mut seen = std::collections::HashSet::new();
    for run in 0..2 {
        let env = TestEnv::spawn().await;
        env.sandbox.set_default_notify_plan(NotifyPlan::never());
        for i in 0..PAYMENTS {
            let otn = format!("E20261202{run}{i:07}");
            env.client
                .prepay_jsapi(&order(&otn, 100))
                .await
                .expect("prepay");
            let t = env.sandbox.pay(&otn).expect("pay");
            let id = t.transaction_id.expect("paid orders have an id");
            assert_eq!(id.len(), 28, "{id}");
            assert!(id.starts_with("4200"), "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_digit()), "{id}");
            assert!(seen.insert(id.clone()), "run {run} reused {id}");
        }
    }
    assert_eq!(seen.len(), 2 * PAYMENTS);
}
