//! End-to-end payment scenarios over HTTP on 127.0.0.1:0, with the payment
//! sandbox as WeChat Pay (real signatures, real AES-GCM notifications), on
//! SQLite and — when `DORMWATT_TEST_PG_URL` is set — PostgreSQL. Every
//! scenario ends with the ledger invariants I1–I9 checked.

use std::time::Duration;

use domain::order::OrderState;
use pay::sandbox::{self, Forgery, SandboxConfig};
use pay::{NotifyPlan, Sandbox};
use store::Db;
use store::orders::Order;
use web::payments::{self, NOTIFY_PATH, PaymentSettings, Payments, workers};

const TOKEN: &str = "counter-test-token-0123456789";
/// Upper bound on any wait for an asynchronous effect.
const WAIT: Duration = Duration::from_secs(10);
const OPENID: &str = "oTestPayer000000000000000001";

struct TestApp {
    base: String,
    state: web::AppState,
    sandbox: Sandbox,
    /// Root of the sandbox's own listener.
    sandbox_base: String,
    http: reqwest::Client,
    db: Db,
    /// A meter of area 1 and its area.
    area_id: i64,
    meter: String,
    /// The second area's id.
    other_area_id: i64,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl TestApp {
    async fn spawn(db: Db) -> Self {
        let now = store::now_ms();
        let plan = domain::campus::reference_plan();
        store::campus::seed(&db, &plan, &Default::default(), now)
            .await
            .expect("seed");
        let areas = store::campus::areas(&db).await.expect("areas");
        let area_id = areas[0].id.get();
        let other_area_id = areas[1].id.get();
        let meter = plan.areas[0].buildings[0]
            .meters()
            .next()
            .expect("a meter")
            .address
            .as_str()
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let mut config = SandboxConfig::demo();
        // WeChat's retry schedule / 1000 and a quick refund, so tests stay short.
        config.retry_schedule = sandbox::scaled_retry_schedule(1000);
        config.refund_delay = Duration::from_millis(20);
        config.merchant_base_url = Some(base.clone());
        let sandbox = Sandbox::new(config);
        // The sandbox has its own listener, as in `dormwatt demo`.
        let sandbox_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind sandbox");
        let sandbox_base = format!("http://{}", sandbox_listener.local_addr().expect("addr"));
        let served = sandbox.clone();
        tokio::spawn(async move {
            let _ = served
                .serve(sandbox_listener, std::future::pending::<()>())
                .await;
        });
        let mut settings = PaymentSettings::new("", "");
        settings.counter_token = Some(TOKEN.to_owned());
        settings.bill_reconciliation = false;
        let payments = Payments::sandbox(
            sandbox.clone(),
            &sandbox_base,
            &format!("{base}{NOTIFY_PATH}"),
            settings,
        )
        .expect("sandbox payments");
        let state = web::AppState::new(
            db.clone(),
            web::Settings::new(base.clone(), domain::time::CampusTz::default(), false),
            Some(payments),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serve_state = state.clone();
        tokio::spawn(async move {
            let _ = web::serve(listener, serve_state, async {
                let _ = stopped.await;
            })
            .await;
        });
        Self {
            base,
            state,
            sandbox,
            sandbox_base,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
            db,
            area_id,
            meter,
            other_area_id,
            _stop: stop,
        }
    }

    /// An unpaid WeChat order of `kwh` for the test meter.
    async fn order(&self, kwh: u32) -> Order {
        let req = store::orders::NewOrder {
            area_id: self.area_id,
            meter_address: &self.meter,
            student_id: None,
            kwh: domain::WholeKwh::new(u64::from(kwh), 500).expect("kwh"),
            channel: domain::order::Channel::Wechat,
            operator: None,
        };
        store::orders::create(&self.db, &req, store::now_ms())
            .await
            .expect("create order")
    }

    /// An order with its payment started at the sandbox.
    async fn started(&self, kwh: u32) -> Order {
        let order = self.order(kwh).await;
        payments::start_wechat_payment(&self.state, &order, OPENID)
            .await
            .expect("start payment");
        self.reload(&order).await
    }

    async fn reload(&self, order: &Order) -> Order {
        store::orders::by_id(&self.db, order.id)
            .await
            .expect("read")
            .expect("order exists")
    }

    /// Waits until our notify endpoint acknowledged the sandbox's `event`
    /// notification of the order (it answers only after the commit), then
    /// checks the order is in `state`.
    async fn notified(&self, order: &Order, event: &str, state: OrderState) -> Order {
        let otn = &order.out_trade_no;
        let ok = self
            .sandbox
            .wait_for_deliveries(WAIT, |d| {
                d.iter()
                    .any(|r| &r.out_trade_no == otn && r.event_type == event && r.acknowledged())
            })
            .await;
        assert!(ok, "{otn}: no acknowledged {event}");
        let o = self.reload(order).await;
        assert_eq!(o.state, state, "{otn} after {event}");
        o
    }

    /// The order after its payment notification was acknowledged: charging.
    async fn paid(&self, order: &Order) -> Order {
        self.notified(order, "TRANSACTION.SUCCESS", OrderState::Charging)
            .await
    }

    /// Waits until `n` deliveries of the order's notification were acknowledged.
    async fn wait_acks(&self, otn: &str, n: usize) {
        let ok = self
            .sandbox
            .wait_for_deliveries(WAIT, |d| {
                d.iter()
                    .filter(|r| r.out_trade_no == otn && r.acknowledged())
                    .count()
                    >= n
            })
            .await;
        assert!(ok, "{otn}: fewer than {n} acknowledged deliveries");
    }

    /// Waits for the first delivery of the order's notification and returns its status.
    async fn first_status(&self, otn: &str) -> Option<u16> {
        let ok = self
            .sandbox
            .wait_for_deliveries(WAIT, |d| {
                d.iter().any(|r| r.out_trade_no == otn && !r.probe)
            })
            .await;
        assert!(ok, "{otn}: no delivery");
        self.sandbox
            .deliveries()
            .into_iter()
            .find(|r| r.out_trade_no == otn && !r.probe)
            .and_then(|r| r.status)
    }

    async fn check_ledger(&self) {
        let v = store::ledger::check(&self.db).await.expect("check");
        assert!(v.is_empty(), "ledger violations: {v:?}");
    }

    async fn post_json(
        &self,
        path: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let mut r = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        let json = resp.json().await.unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    async fn post_notification(&self, n: &sandbox::SignedNotification) -> u16 {
        let mut r = self
            .http
            .post(format!("{}{NOTIFY_PATH}", self.base))
            .header("Content-Type", "application/json")
            .body(n.body.clone());
        for (k, v) in n.headers.to_pairs() {
            r = r.header(k, v);
        }
        r.send().await.expect("post").status().as_u16()
    }

    /// Orders in payment-bearing states, and ledger rows per kind for one order.
    async fn count_in(&self, state: domain::order::OrderState) -> usize {
        store::orders::in_state(&self.db, state, 10_000)
            .await
            .expect("in_state")
            .len()
    }

    async fn deliver_jobs(&self) -> i64 {
        store::jobs::depths(&self.db)
            .await
            .expect("depths")
            .into_iter()
            .filter(|(q, s, _)| {
                q == store::orders::DELIVER_QUEUE && *s == store::jobs::JobState::Queued
            })
            .map(|(_, _, n)| n)
            .sum()
    }

    async fn prepaid_fen(&self) -> i64 {
        store::ledger::balance(&self.db, domain::ledger::account::PREPAID, "fen")
            .await
            .expect("balance")
    }
}

/// Runs `scenario` on every configured backend.
macro_rules! on_all_dbs {
    ($scenario:ident) => {
        for db in store::testing::all().await.expect("test dbs") {
            let backend = db.backend();
            eprintln!("{} on {backend:?}", stringify!($scenario));
            let app = TestApp::spawn(db).await;
            tokio::time::timeout(Duration::from_secs(60), $scenario(&app))
                .await
                .unwrap_or_else(|_| panic!("{} timed out on {backend:?}", stringify!($scenario)));
            app.check_ledger().await;
        }
    };
}

async fn duplicated_15_times(app: &TestApp) {
    let order = app.started(10).await;
    app.sandbox.set_notify_plan(
        &order.out_trade_no,
        NotifyPlan::duplicates(15).with_signtest_probe(),
    );
    app.sandbox.pay(&order.out_trade_no).expect("pay");
    app.wait_acks(&order.out_trade_no, 15).await;
    let o = app.reload(&order).await;
    assert_eq!(o.state, OrderState::Charging);
    assert!(o.transaction_id.is_some());
    assert_eq!(app.deliver_jobs().await, 1, "one delivery job");
    assert_eq!(
        app.prepaid_fen().await,
        o.amount_fen.get(),
        "credited exactly once"
    );
    // The probe was refused.
    let probe = app
        .sandbox
        .deliveries()
        .into_iter()
        .find(|d| d.probe)
        .expect("probe sent");
    assert_eq!(probe.status, Some(401));
    // Every notification is logged: one credit, 14 duplicates, one refused probe.
    let log = store::orders::recent_notifications(&app.db, 100)
        .await
        .expect("log");
    let count = |outcome: &str| log.iter().filter(|(_, o)| o == outcome).count();
    assert_eq!(count("credited"), 1, "{log:?}");
    assert_eq!(count("duplicate"), 14, "{log:?}");
    assert_eq!(count("rejected:signtest_probe"), 1, "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_notification_sent_15_times_credits_once() {
    on_all_dbs!(duplicated_15_times);
}

async fn reordered(app: &TestApp) {
    let a = app.started(5).await;
    let b = app.started(7).await;
    // A's notification comes after B's, and again after A was delivered.
    app.sandbox.set_notify_plan(
        &a.out_trade_no,
        NotifyPlan::delayed(Duration::from_millis(300)),
    );
    app.sandbox.pay(&a.out_trade_no).expect("pay a");
    app.sandbox.pay(&b.out_trade_no).expect("pay b");
    app.wait_acks(&b.out_trade_no, 1).await;
    assert_eq!(
        app.reload(&a).await.state,
        OrderState::Unpaid,
        "A not notified yet"
    );
    app.wait_acks(&a.out_trade_no, 1).await;
    let a_paid = app.reload(&a).await;
    assert_eq!(a_paid.state, OrderState::Charging);
    // The meter confirms B (paid first), then A; a stale duplicate of A's
    // notification then arrives.
    for id in [b.id, a.id] {
        let seq = store::orders::assign_purchase_seq(&app.db, id, store::now_ms())
            .await
            .expect("assign")
            .seq()
            .expect("a number: the order ahead is settled");
        let o = store::orders::by_id(&app.db, id)
            .await
            .expect("order")
            .expect("order");
        store::meters::set_purchase_count(&app.db, o.meter_id, seq, store::now_ms())
            .await
            .expect("count");
        let mut tx = app.db.begin().await.expect("tx");
        assert!(
            store::orders::mark_delivered(&mut tx, id, store::now_ms())
                .await
                .expect("deliver")
        );
        tx.commit().await.expect("commit");
    }
    app.sandbox
        .notify(&a.out_trade_no, NotifyPlan::normal())
        .expect("renotify");
    app.wait_acks(&a.out_trade_no, 2).await;
    let a_final = app.reload(&a).await;
    assert_eq!(
        a_final.state,
        OrderState::Completed,
        "a late duplicate does not reopen a completed order"
    );
    assert_eq!(a_final.paid_at_ms, a_paid.paid_at_ms);
    assert_eq!(app.reload(&b).await.state, OrderState::Completed);
    assert_eq!(app.prepaid_fen().await, 0, "A and B moved on to revenue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reordered_notifications_credit_each_order_once() {
    on_all_dbs!(reordered);
}

async fn late_after_expiry(app: &TestApp) {
    // (1) Our expiry closed the order; WeChat's notification arrives after.
    let order = app.started(3).await;
    app.sandbox
        .pay_with(&order.out_trade_no, NotifyPlan::never())
        .expect("pay");
    let closed = store::orders::close(
        &app.db,
        order.id,
        domain::order::OrderEvent::Expire,
        order.expires_at_ms,
    )
    .await
    .expect("close");
    assert_eq!(closed.state, OrderState::Closed);
    app.sandbox
        .notify(&order.out_trade_no, NotifyPlan::duplicates(3))
        .expect("late notify");
    app.wait_acks(&order.out_trade_no, 3).await;
    let o = app.reload(&order).await;
    assert_eq!(
        o.state,
        OrderState::Charging,
        "a late payment is credited, never dropped"
    );
    assert_eq!(app.prepaid_fen().await, o.amount_fen.get());

    // (2) Paid at WeChat, never notified: the expiry worker closes at WeChat,
    // learns it was paid, and records the payment instead of closing.
    let second = app.started(4).await;
    app.sandbox
        .pay_with(&second.out_trade_no, NotifyPlan::never())
        .expect("pay");
    let report = workers::expire_tick(app.state.service(), second.expires_at_ms + 1)
        .await
        .expect("tick");
    assert_eq!(report.paid, 1, "{report:?}");
    assert_eq!(app.reload(&second).await.state, OrderState::Charging);

    // (3) Not paid: closed at WeChat, then here.
    let third = app.started(2).await;
    let report = workers::expire_tick(app.state.service(), third.expires_at_ms + 1)
        .await
        .expect("tick");
    assert_eq!(report.closed, 1, "{report:?}");
    assert_eq!(app.reload(&third).await.state, OrderState::Closed);
    let at_wechat = app.sandbox.order(&third.out_trade_no).expect("known");
    assert_eq!(
        at_wechat.trade_state,
        pay::TradeState::Closed,
        "closed at WeChat first"
    );
    // A second tick changes nothing.
    let again = workers::expire_tick(app.state.service(), third.expires_at_ms + 2)
        .await
        .expect("tick");
    assert_eq!(again.examined, 0);
    assert_eq!(
        app.prepaid_fen().await,
        o.amount_fen.get() + second.amount_fen.get()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payments_around_expiry_are_credited_once() {
    on_all_dbs!(late_after_expiry);
}

async fn forged(app: &TestApp) {
    let order = app.started(6).await;
    for (forgery, want) in [
        (Forgery::BadSignature, 401),
        (Forgery::UnknownSerial, 401),
        (Forgery::StaleTimestamp(600), 401),
        (Forgery::SignTest, 401),
        (Forgery::TamperedCiphertext, 400),
    ] {
        let n = app
            .sandbox
            .forge_notification(&order.out_trade_no, forgery)
            .expect("forge");
        let status = app.post_notification(&n).await;
        assert_eq!(status, want, "{forgery:?}");
    }
    // Garbage without any headers.
    let r = app
        .http
        .post(format!("{}{NOTIFY_PATH}", app.base))
        .body("{}")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(app.reload(&order).await.state, OrderState::Unpaid);

    // Genuinely signed, but for a different amount than our order.
    let wrong = app.order(8).await;
    let provider = &app.state.payments().expect("payments").provider;
    provider
        .create_jsapi_order(&pay::JsapiOrder {
            description: "forged amount".to_owned(),
            out_trade_no: wrong.out_trade_no.clone(),
            amount_fen: wrong.amount_fen.get() + 1,
            payer_openid: OPENID.to_owned(),
            time_expire_unix_s: None,
            attach: None,
        })
        .await
        .expect("prepay");
    app.sandbox.pay(&wrong.out_trade_no).expect("pay");
    assert_eq!(app.first_status(&wrong.out_trade_no).await, Some(400));
    assert_eq!(app.reload(&wrong).await.state, OrderState::Unpaid);

    // Genuinely signed, for an out_trade_no we never issued.
    provider
        .create_jsapi_order(&pay::JsapiOrder {
            description: "unknown".to_owned(),
            out_trade_no: "DWNOSUCHORDER0001".to_owned(),
            amount_fen: 100,
            payer_openid: OPENID.to_owned(),
            time_expire_unix_s: None,
            attach: None,
        })
        .await
        .expect("prepay");
    app.sandbox.pay("DWNOSUCHORDER0001").expect("pay");
    assert_eq!(app.first_status("DWNOSUCHORDER0001").await, Some(404));

    assert_eq!(app.count_in(domain::order::OrderState::Charging).await, 0);
    assert_eq!(app.deliver_jobs().await, 0);
    let log = store::orders::recent_notifications(&app.db, 100)
        .await
        .expect("log");
    for outcome in [
        "rejected:bad_signature",
        "rejected:unknown_serial",
        "rejected:stale_timestamp",
        "rejected:signtest_probe",
        "rejected:decrypt_failed",
        "rejected:missing_header",
        "rejected:amount_mismatch",
        "rejected:unknown_order",
    ] {
        assert!(
            log.iter().any(|(_, o)| o == outcome),
            "{outcome} not logged: {log:?}"
        );
    }
    assert!(!log.iter().any(|(_, o)| o == "credited"), "{log:?}");
    assert_eq!(app.prepaid_fen().await, 0, "nothing credited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_notifications_change_nothing() {
    on_all_dbs!(forged);
}

async fn bad_input(app: &TestApp) {
    let sale = |area_id: i64, meter: &str, kwh: serde_json::Value| serde_json::json!({"area_id": area_id, "meter_address": meter, "kwh": kwh, "operator": "王老师"});
    for (kwh, code) in [
        (serde_json::json!("1.5"), "INVALID_KWH"),
        (serde_json::json!(2.5), "INVALID_KWH"),
        (serde_json::json!(0), "INVALID_KWH"),
        (serde_json::json!(-3), "INVALID_KWH"),
        (serde_json::json!("abc"), "INVALID_KWH"),
        (serde_json::json!("99999999999999999999999"), "INVALID_KWH"),
        (serde_json::json!(100_000), "INVALID_KWH"),
        (serde_json::json!(null), "INVALID_KWH"),
    ] {
        let (status, body) = app
            .post_json(
                "/api/counter/sales",
                Some(TOKEN),
                sale(app.area_id, &app.meter, kwh.clone()),
            )
            .await;
        assert_eq!(status, 422, "{kwh}: {body}");
        assert_eq!(body["code"], code, "{kwh}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| m.contains("kWh")),
            "{body}"
        );
    }
    let (status, body) = app
        .post_json(
            "/api/counter/sales",
            Some(TOKEN),
            sale(app.area_id, "999999999999", serde_json::json!(5)),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("NO_SUCH_METER")),
        "{body}"
    );
    let (status, body) = app
        .post_json(
            "/api/counter/sales",
            Some(TOKEN),
            sale(app.other_area_id, &app.meter, serde_json::json!(5)),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("NO_SUCH_METER")),
        "area mismatch: {body}"
    );
    assert_eq!(body["message"], "no such meter in this area");
    // Operator authentication.
    let ok_body = sale(app.area_id, &app.meter, serde_json::json!(5));
    let (status, _) = app
        .post_json("/api/counter/sales", None, ok_body.clone())
        .await;
    assert_eq!(status, 401);
    let (status, _) = app
        .post_json("/api/counter/sales", Some("wrong"), ok_body.clone())
        .await;
    assert_eq!(status, 401);

    // The student path gives the same messages.
    let student = store::students::upsert_by_openid(&app.db, OPENID, false, store::now_ms())
        .await
        .expect("student");
    for kwh in ["1.5", "0", "-1", "x", "501"] {
        let e =
            payments::create_student_order(&app.state, student.id, app.area_id, &app.meter, kwh)
                .await
                .expect_err(kwh);
        assert!(e.to_string().contains("kWh"), "{kwh}: {e}");
    }
    let e =
        payments::create_student_order(&app.state, student.id, app.other_area_id, &app.meter, "5")
            .await
            .expect_err("area mismatch");
    assert_eq!(e.to_string(), "no such meter in this area");
    for s in [
        domain::order::OrderState::Unpaid,
        domain::order::OrderState::Charging,
    ] {
        assert_eq!(app.count_in(s).await, 0, "no order was created");
    }
    let ok =
        payments::create_student_order(&app.state, student.id, app.area_id, &app.meter, " 12 ")
            .await
            .expect("a good order");
    assert_eq!(ok.kwh.get(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_orders_get_a_clear_message_and_no_order() {
    on_all_dbs!(bad_input);
}

async fn two_tabs(app: &TestApp) {
    let order = app.order(9).await;
    let (a, b) = tokio::join!(
        payments::start_wechat_payment(&app.state, &order, OPENID),
        payments::start_wechat_payment(&app.state, &order, OPENID),
    );
    let (a, b) = (a.expect("tab a"), b.expect("tab b"));
    assert_eq!(a.prepay_id, b.prepay_id, "one prepay, one out_trade_no");
    assert_eq!(a.out_trade_no, order.out_trade_no);
    let link = payments::cashier_link(&a, "/orders/1").expect("sandbox cashier");
    assert_eq!(link.matches("prepay_id=").count(), 1, "{link}");
    assert!(link.ends_with("&return_url=%2Forders%2F1"), "{link}");
    assert!(
        link.starts_with(&format!("{}/cashier?", app.sandbox_base)),
        "the sandbox's own origin: {link}"
    );
    app.sandbox
        .pay(&order.out_trade_no)
        .expect("first tab pays");
    let second = app.sandbox.pay(&order.out_trade_no);
    assert!(
        second.is_err(),
        "the second tab cannot pay again: {second:?}"
    );
    app.paid(&order).await;
    let cancel = payments::cancel_order(&app.state, &order).await;
    assert!(
        matches!(cancel, Err(payments::PaymentError::AlreadyPaid)),
        "{cancel:?}"
    );
    let again = payments::start_wechat_payment(&app.state, &order, OPENID).await;
    assert!(
        matches!(again, Err(payments::PaymentError::AlreadyPaid)),
        "{again:?}"
    );
    assert_eq!(app.prepaid_fen().await, order.amount_fen.get());

    // Cancelling closes at WeChat first: a tab still open cannot pay after.
    let other = app.started(2).await;
    let closed = payments::cancel_order(&app.state, &other)
        .await
        .expect("cancel");
    assert_eq!(closed.state, OrderState::Closed);
    let at_wechat = app.sandbox.order(&other.out_trade_no).expect("known");
    assert_eq!(at_wechat.trade_state, pay::TradeState::Closed);
    assert!(
        app.sandbox.pay(&other.out_trade_no).is_err(),
        "closed at WeChat"
    );
    let restart = payments::start_wechat_payment(&app.state, &other, OPENID).await;
    assert!(
        matches!(restart, Err(payments::PaymentError::NotPayable)),
        "{restart:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_tabs_pay_one_order_once() {
    on_all_dbs!(two_tabs);
}

async fn counter_and_refund(app: &TestApp) {
    let (status, receipt) = app
        .post_json(
            "/api/counter/sales",
            Some(TOKEN),
            serde_json::json!({"area_id": app.area_id, "meter_address": app.meter, "kwh": "20", "operator": "op1"}),
        )
        .await;
    assert_eq!(status, 201, "{receipt}");
    assert_eq!(receipt["order"]["state"], "charging");
    assert_eq!(receipt["order"]["channel"], "counter");
    assert_eq!(receipt["delivery"], "queued");
    assert_eq!(app.deliver_jobs().await, 1, "the sale has a delivery job");
    let amount = receipt["order"]["amount_fen"].as_i64().expect("amount");
    assert_eq!(app.prepaid_fen().await, amount);

    // A WeChat order is paid, never delivered, goes delayed, and staff refund it.
    let order = app.started(11).await;
    app.sandbox.pay(&order.out_trade_no).expect("pay");
    app.paid(&order).await;
    let paid = app.reload(&order).await;
    let marked = workers::overdue_tick(
        app.state.service(),
        paid.paid_at_ms.expect("paid") + 31 * 60 * 1000,
    )
    .await
    .expect("overdue");
    assert_eq!(marked, 2, "both undelivered orders are overdue");
    let r = app
        .http
        .post(format!(
            "{}/api/staff/orders/{}/refund",
            app.base, order.out_trade_no
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("refund");
    assert_eq!(r.status().as_u16(), 202);
    let report = workers::refund_tick(app.state.service(), store::now_ms())
        .await
        .expect("tick");
    assert_eq!(report.examined, 1, "{report:?}");
    // The sandbox finishes the refund and notifies us.
    let refunded = app
        .notified(&order, "REFUND.SUCCESS", OrderState::Refunded)
        .await;
    assert!(refunded.refunded_at_ms.is_some());
    // Polling again finds nothing left to do; the refund happened once.
    let report = workers::refund_tick(app.state.service(), store::now_ms())
        .await
        .expect("tick");
    assert_eq!(report.examined, 0);
    let at_wechat = app.sandbox.order(&order.out_trade_no).expect("known");
    assert_eq!(at_wechat.trade_state, pay::TradeState::Refund);
    // A refund of a charging/refunded order is refused.
    let r = app
        .http
        .post(format!(
            "{}/api/staff/orders/{}/refund",
            app.base, order.out_trade_no
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("refund");
    assert_eq!(r.status().as_u16(), 409);
    let view: serde_json::Value = app
        .http
        .get(format!(
            "{}/api/staff/orders/{}",
            app.base, order.out_trade_no
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(view["state"], "refunded");
    assert_eq!(
        app.prepaid_fen().await,
        amount,
        "only the counter sale is still held"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counter_sale_and_refund_path() {
    on_all_dbs!(counter_and_refund);
}

async fn reconciliation(app: &TestApp) {
    // Paid at WeChat, notification lost: found by the query reconciliation.
    let lost = app.started(13).await;
    app.sandbox
        .pay_with(&lost.out_trade_no, NotifyPlan::never())
        .expect("pay");
    let too_early = workers::reconcile_unpaid_tick(app.state.service(), lost.created_at_ms + 1000)
        .await
        .expect("tick");
    assert_eq!(
        too_early.examined, 0,
        "young orders wait for their notification"
    );
    let report =
        workers::reconcile_unpaid_tick(app.state.service(), lost.created_at_ms + 5 * 60 * 1000)
            .await
            .expect("tick");
    assert_eq!(report.paid, 1, "{report:?}");
    assert_eq!(app.reload(&lost).await.state, OrderState::Charging);

    // The day's bill agrees with our orders…
    let today = pay::time::beijing_date(store::now_ms() / 1000);
    let bill = workers::reconcile_bill(app.state.service(), &today)
        .await
        .expect("bill");
    assert!(bill.totals_match);
    assert_eq!(bill.rows, 1);
    assert!(bill.differences.is_empty(), "{:?}", bill.differences);

    // …until WeChat has a payment we have not recorded: reported, not credited.
    let unseen = app.started(14).await;
    app.sandbox
        .pay_with(&unseen.out_trade_no, NotifyPlan::never())
        .expect("pay");
    let bill = workers::reconcile_bill(app.state.service(), &today)
        .await
        .expect("bill");
    assert_eq!(bill.differences.len(), 1, "{:?}", bill.differences);
    assert_eq!(bill.differences[0].kind, "not_paid_here");
    assert_eq!(bill.differences[0].out_trade_no, unseen.out_trade_no);
    assert_eq!(
        app.reload(&unseen).await.state,
        OrderState::Unpaid,
        "the bill alone never credits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconciliation_finds_lost_notifications() {
    on_all_dbs!(reconciliation);
}

/// A logged-in student: the session cookie pair and the CSRF token.
async fn login(app: &TestApp, openid: &str) -> (String, String) {
    let student = store::students::upsert_by_openid(&app.db, openid, false, store::now_ms())
        .await
        .expect("student");
    let set_cookie = web::session::start(&app.state, student.id)
        .await
        .expect("session");
    let pair = set_cookie
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("pair")
        .to_owned();
    let token = pair.split_once('=').expect("name=value").1.to_owned();
    let row = store::students::session(&app.db, &web::session::token_hash(&token), store::now_ms())
        .await
        .expect("lookup")
        .expect("live session");
    (pair, row.csrf_token)
}

async fn student_api(app: &TestApp) {
    let (alice, alice_csrf) = login(app, "oAlice0000000000000000000001").await;
    let (bob, bob_csrf) = login(app, "oBob000000000000000000000001").await;
    let url = |p: &str| format!("{}{p}", app.base);
    let body = serde_json::json!({"area_id": app.area_id, "meter_address": app.meter, "kwh": 3});
    // Without the CSRF header: refused, nothing created.
    let r = app
        .http
        .post(url("/api/orders"))
        .header("cookie", &alice)
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 403);
    // Without a session: 401.
    let r = app
        .http
        .post(url("/api/orders"))
        .header("accept", "application/json")
        .header("x-csrf-token", &alice_csrf)
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(app.count_in(domain::order::OrderState::Unpaid).await, 0);
    // Bad kWh from the JSON API gets the same clear message.
    let r = app
        .http
        .post(url("/api/orders"))
        .header("cookie", &alice)
        .header("x-csrf-token", &alice_csrf)
        .json(
            &serde_json::json!({"area_id": app.area_id, "meter_address": app.meter, "kwh": "2.5"}),
        )
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 422);
    let created: serde_json::Value = app
        .http
        .post(url("/api/orders"))
        .header("cookie", &alice)
        .header("x-csrf-token", &alice_csrf)
        .json(&body)
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    let otn = created["out_trade_no"].as_str().expect("otn").to_owned();
    assert_eq!(created["state"], "unpaid");
    // Bob can neither see nor pay Alice's order: 404, as if it did not exist.
    let r = app
        .http
        .get(url(&format!("/api/orders/{otn}")))
        .header("cookie", &bob)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 404);
    let r = app
        .http
        .post(url(&format!("/api/orders/{otn}/pay")))
        .header("cookie", &bob)
        .header("x-csrf-token", &bob_csrf)
        .send()
        .await
        .expect("pay");
    assert_eq!(r.status().as_u16(), 404);
    let bobs: serde_json::Value = app
        .http
        .get(url("/api/orders"))
        .header("cookie", &bob)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(bobs.as_array().map(Vec::len), Some(0));
    // Alice pays through the API and the sandbox.
    let started: serde_json::Value = app
        .http
        .post(url(&format!("/api/orders/{otn}/pay")))
        .header("cookie", &alice)
        .header("x-csrf-token", &alice_csrf)
        .send()
        .await
        .expect("pay")
        .json()
        .await
        .expect("json");
    assert!(
        started["pay_params"]["package"]
            .as_str()
            .is_some_and(|p| p.starts_with("prepay_id=")),
        "{started}"
    );
    assert_eq!(started["pay_params"]["signType"], "RSA");
    app.sandbox.pay(&otn).expect("pay");
    app.wait_acks(&otn, 1).await;
    let mine: serde_json::Value = app
        .http
        .get(url(&format!("/api/orders/{otn}")))
        .header("cookie", &alice)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(mine["state"], "charging");
    let list: serde_json::Value = app
        .http
        .get(url("/api/orders"))
        .header("cookie", &alice)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn students_see_and_pay_only_their_own_orders() {
    on_all_dbs!(student_api);
}

/// POST /api/counter/sales with the operator token and an optional
/// `Idempotency-Key`; returns the status, whether the answer was a replay
/// and the body text.
async fn counter_post(
    app: &TestApp,
    key: Option<&str>,
    body: &serde_json::Value,
) -> (u16, bool, String) {
    let mut r = app
        .http
        .post(format!("{}/api/counter/sales", app.base))
        .bearer_auth(TOKEN)
        .json(body);
    if let Some(k) = key {
        r = r.header("Idempotency-Key", k);
    }
    let resp = r.send().await.expect("request");
    let status = resp.status().as_u16();
    let replayed = resp
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    (status, replayed, resp.text().await.expect("body"))
}

/// What a counter sale moves: counter orders, queued deliveries, money held.
async fn counter_effects(app: &TestApp) -> (usize, i64, i64) {
    (
        app.count_in(domain::order::OrderState::Charging).await,
        app.deliver_jobs().await,
        app.prepaid_fen().await,
    )
}

async fn counter_retry(app: &TestApp) {
    let sale = serde_json::json!({"area_id": app.area_id, "meter_address": app.meter, "kwh": 20, "operator": "op1"});
    let (status, replayed, first) = counter_post(app, Some("till-3-0001"), &sale).await;
    assert_eq!((status, replayed), (201, false), "{first}");
    let after_first = counter_effects(app).await;
    assert_eq!(
        (after_first.0, after_first.1),
        (1, 1),
        "one sale, one delivery"
    );

    // The cashier's retry (e.g. after a timeout): the same answer, no second sale.
    let (status, replayed, again) = counter_post(app, Some("till-3-0001"), &sale).await;
    assert_eq!((status, replayed), (201, true), "{again}");
    assert_eq!(again, first, "the same receipt, byte for byte");
    assert_eq!(counter_effects(app).await, after_first);

    // The same key for another sale is refused and changes nothing.
    let other = serde_json::json!({"area_id": app.area_id, "meter_address": app.meter, "kwh": 21, "operator": "op1"});
    let (status, _, body) = counter_post(app, Some("till-3-0001"), &other).await;
    assert_eq!(status, 409, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json error");
    assert_eq!(json["code"], "IDEMPOTENCY_KEY_REUSED", "{body}");
    assert_eq!(counter_effects(app).await, after_first);

    // Malformed keys are refused before anything happens.
    for bad in ["", &"k".repeat(129)] {
        let (status, _, body) = counter_post(app, Some(bad), &sale).await;
        assert_eq!(status, 400, "{bad:?}: {body}");
    }
    assert_eq!(counter_effects(app).await, after_first);

    // Another key is another sale.
    let (status, replayed, _) = counter_post(app, Some("till-3-0002"), &sale).await;
    assert_eq!((status, replayed), (201, false));
    assert_eq!(counter_effects(app).await.0, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_counter_sale_sells_once() {
    on_all_dbs!(counter_retry);
}

async fn counter_twins(app: &TestApp) {
    let sale = serde_json::json!({"area_id": app.area_id, "meter_address": app.meter, "kwh": 5, "operator": "op2"});
    // Two identical requests at the same moment (a double click, a proxy retry).
    let (a, b, c, d) = tokio::join!(
        counter_post(app, Some("till-4-0001"), &sale),
        counter_post(app, Some("till-4-0001"), &sale),
        counter_post(app, Some("till-4-0001"), &sale),
        counter_post(app, Some("till-4-0001"), &sale),
    );
    for r in [&a, &b, &c, &d] {
        assert_eq!(r.0, 201, "{}", r.2);
        assert_eq!(r.2, a.2, "every twin gets the same receipt");
    }
    assert_eq!(
        [&a, &b, &c, &d].iter().filter(|r| !r.1).count(),
        1,
        "exactly one request sold"
    );
    let (orders, jobs, _) = counter_effects(app).await;
    assert_eq!((orders, jobs), (1, 1), "one sale, one delivery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_identical_counter_sales_sell_once() {
    on_all_dbs!(counter_twins);
}

/// Issue 9 item 13: the demo restarts, and with it the sandbox; a payment
/// made at the new sandbox must be credited, not refused for a transaction
/// id the old sandbox already gave to a stored order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_after_a_sandbox_restart_is_credited() {
    for db in store::testing::all().await.expect("test dbs") {
        let before = TestApp::spawn(db.clone()).await;
        let first = before.started(3).await;
        before.sandbox.pay(&first.out_trade_no).expect("pay");
        before.paid(&first).await;
        drop(before);

        // A new process: new sandbox, same database.
        let after = TestApp::spawn(db).await;
        let second = after.started(4).await;
        after.sandbox.pay(&second.out_trade_no).expect("pay");
        let paid = after.paid(&second).await;
        assert_ne!(
            paid.transaction_id,
            after.reload(&first).await.transaction_id,
            "a new transaction id"
        );
        after.check_ledger().await;
    }
}

/// Issue 10 item 1: the sandbox's routes (admin/pay marks any order paid
/// without money) are never served by the application's own listener.
async fn sandbox_not_on_app(app: &TestApp) {
    let order = app.started(3).await;
    for path in [
        "/sandbox/wxpay/admin/pay",
        "/sandbox/wxpay/cashier/confirm",
        "/admin/pay",
    ] {
        let r = app
            .http
            .post(format!("{}{path}", app.base))
            .json(&serde_json::json!({ "out_trade_no": order.out_trade_no }))
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status(), reqwest::StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(app.reload(&order).await.state, OrderState::Unpaid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sandbox_is_not_served_by_the_app() {
    on_all_dbs!(sandbox_not_on_app);
}

/// Issue 10 item 7: unauthenticated junk at the notify URL is counted, and
/// only a logarithmic sample of it is stored.
async fn junk_notifications(app: &TestApp) {
    let before = store::orders::recent_notifications(&app.db, 10_000)
        .await
        .expect("log")
        .len();
    for i in 0..300 {
        let r = app
            .http
            .post(format!("{}{NOTIFY_PATH}", app.base))
            .header("Content-Type", "application/json")
            .body(format!("{{\"junk\":{i}}}"))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 400);
    }
    let after = store::orders::recent_notifications(&app.db, 10_000)
        .await
        .expect("log")
        .len();
    // 1st, 2nd, 4th … 256th: 9 rows for 300 forgeries of one kind.
    assert!(
        after - before <= 9,
        "{} rows for 300 forgeries",
        after - before
    );
    assert!(after > before, "the first forgery is still logged");
    let payments = app.state.payments().expect("payments");
    assert_eq!(payments.rejected.total(), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn junk_notifications_are_counted_not_stored() {
    on_all_dbs!(junk_notifications);
}
