//! The console's orders, story and exceptions queue over HTTP (issue 13
//! items 4–6), on SQLite and — with `DORMWATT_TEST_PG_URL` — PostgreSQL:
//! search filters and the building manager's reach, the story's ledger
//! rows, a refused refund that changes nothing, a refund of a refused
//! order from the queue, and the auditor's read-only view.
//! (The harness is `tests/staff.rs`'s, copied: test files share no code.)

use domain::staff::Role;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use std::time::Duration;
use store::Db;
use web::staff::Clock;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "correct horse battery";

struct TestApp {
    base: String,
    http: reqwest::Client,
    db: Db,
    clock: Clock,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A logged-in browser.
struct Browser {
    cookie: String,
    csrf: String,
}

fn csrf_of(html: &str) -> String {
    html.split("name=csrf value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a csrf field")
        .to_owned()
}

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect()
}

fn cookie_pair(set: &[String], name: &str) -> Option<String> {
    set.iter()
        .filter_map(|c| c.split(';').next())
        .find(|kv| kv.starts_with(&format!("{name}=")) && !kv.ends_with('='))
        .map(str::to_owned)
}

impl TestApp {
    async fn spawn(db: Db) -> Self {
        let now = store::now_ms();
        store::testing::seed_one_building_per_area(&db, now)
            .await
            .expect("seed");
        let clock = Clock::manual(now);
        let mut settings = web::Settings::new(
            "http://dormwatt.test",
            domain::time::CampusTz::default(),
            false,
        );
        settings.staff.clock = clock.clone();
        let state = web::AppState::new(db.clone(), settings, None);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(web::serve(listener, state, async {
            let _ = rx.await;
        }));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("client");
        let app = TestApp {
            base,
            http,
            db,
            clock,
            _stop: tx,
        };
        for (name, role) in [
            ("admin", Role::Administrator),
            ("auditor", Role::Auditor),
            ("cashier", Role::Cashier),
        ] {
            app.operator(name, role).await;
        }
        app
    }

    async fn operator(&self, name: &str, role: Role) {
        self.operator_in(name, role, Vec::new()).await;
    }

    async fn operator_in(&self, name: &str, role: Role, building_names: Vec<String>) {
        let new = store::operators::NewOperator {
            name: name.to_owned(),
            role,
            password_phc: domain::staff::hash_password(PASSWORD, rand::random()).unwrap(),
            area_codes: Vec::new(),
            building_names,
        };
        store::operators::create(
            &self.db,
            &new,
            &store::audit::Actor::command_line(),
            self.clock.now_ms(),
        )
        .await
        .expect("operator");
    }

    async fn get(&self, b: Option<&Browser>, path: &str) -> reqwest::Response {
        let mut r = self.http.get(format!("{}{path}", self.base));
        if let Some(b) = b {
            r = r.header(COOKIE, &b.cookie);
        }
        r.send().await.expect("GET")
    }

    async fn text(&self, b: &Browser, path: &str) -> (StatusCode, String) {
        let r = self.get(Some(b), path).await;
        (r.status(), r.text().await.expect("body"))
    }

    async fn post(&self, b: &Browser, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, &b.cookie)
            .form(form)
            .send()
            .await
            .expect("POST")
    }

    /// Tries to log in; the response of the POST.
    async fn try_login(&self, name: &str, password: &str) -> reqwest::Response {
        let r = self.get(None, "/staff/login").await;
        assert_eq!(r.status(), StatusCode::OK);
        let set = set_cookies(&r);
        let login = set
            .iter()
            .find(|c| c.starts_with("dw_staff_login="))
            .expect("login cookie");
        assert!(
            login.contains("Path=/staff")
                && login.contains("HttpOnly")
                && login.contains("SameSite=Strict"),
            "{login}"
        );
        let cookie = cookie_pair(&set, "dw_staff_login").unwrap();
        let csrf = csrf_of(&r.text().await.unwrap());
        self.http
            .post(format!("{}/staff/login", self.base))
            .header(COOKIE, cookie)
            .form(&[
                ("csrf", csrf.as_str()),
                ("name", name),
                ("password", password),
            ])
            .send()
            .await
            .expect("POST login")
    }

    async fn login(&self, name: &str) -> Browser {
        let r = self.try_login(name, PASSWORD).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "login {name}");
        assert_eq!(r.headers()[LOCATION], "/staff");
        let set = set_cookies(&r);
        let session = set
            .iter()
            .find(|c| c.starts_with("dw_staff=") && !c.starts_with("dw_staff=;"))
            .expect("session cookie");
        assert!(
            session.contains("Path=/staff; HttpOnly; SameSite=Strict"),
            "{session}"
        );
        assert!(!session.contains("Secure"), "plain http: {session}");
        let mut b = Browser {
            cookie: cookie_pair(&set, "dw_staff").unwrap(),
            csrf: String::new(),
        };
        let (s, html) = self.text(&b, "/staff").await;
        assert_eq!(s, StatusCode::OK, "{html}");
        b.csrf = csrf_of(&html);
        b
    }

    async fn audit(&self, action: &str) -> Vec<store::audit::AuditRow> {
        store::audit::search(
            &self.db,
            &store::audit::Filter {
                action: Some(action.to_owned()),
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap()
    }
}

async fn each_db(f: impl AsyncFn(TestApp)) {
    for db in store::testing::all().await.expect("test databases") {
        f(TestApp::spawn(db).await).await;
    }
}

fn redirects_to(r: &reqwest::Response, prefix: &str) -> bool {
    r.status() == StatusCode::SEE_OTHER
        && r.headers()[LOCATION]
            .to_str()
            .is_ok_and(|l| l.starts_with(prefix))
}

/// A paid WeChat order for meter `address` of area `area`.
async fn paid(db: &Db, area: i64, address: &str, tx_id: &str, now: i64) -> store::orders::Order {
    let req = store::orders::NewOrder {
        area_id: area,
        meter_address: address,
        student_id: None,
        kwh: domain::WholeKwh::new(5, 500).unwrap(),
        channel: domain::order::Channel::Wechat,
        operator: None,
    };
    let o = store::orders::create(db, &req, now).await.unwrap();
    let conf = store::orders::PaymentConfirmation {
        out_trade_no: &o.out_trade_no,
        transaction_id: tx_id,
        amount_fen: o.amount_fen,
    };
    match store::orders::record_payment(db, &conf, now + 1)
        .await
        .unwrap()
    {
        store::orders::PaidOutcome::Credited(p) => p,
        other => panic!("{other:?}"),
    }
}

/// The first meter and building of area `area`.
async fn first_meter(db: &Db, area: i64) -> (String, String) {
    store::on_db!(db, |p| sqlx::query_as::<_, (String, String)>(
        "select m.address, b.name_zh from meter m join room r on r.id = m.room_id
         join building b on b.id = r.building_id where m.area_id = $1 order by m.id limit 1"
    )
    .bind(area)
    .fetch_one(p)
    .await)
    .unwrap()
}

/// A paid order the meter refused (count below its number): flagged,
/// number given back.
async fn refused(db: &Db, area: i64, address: &str, tx_id: &str, now: i64) -> store::orders::Order {
    let o = paid(db, area, address, tx_id, now).await;
    let job = store::jobs::claim(db, store::orders::DELIVER_QUEUE, "w#1", now + 10, 30_000, 1)
        .await
        .unwrap();
    let seq = store::orders::assign_purchase_seq(db, o.id, now + 11)
        .await
        .unwrap()
        .seq()
        .unwrap();
    store::meters::refuse_delivery(
        db,
        o.id,
        &job[0],
        o.meter_id,
        seq,
        seq - 1,
        "hoarding limit 500.00 kWh",
        now + 12,
    )
    .await
    .unwrap();
    store::orders::by_id(db, o.id).await.unwrap().unwrap()
}

#[tokio::test]
async fn search_filters_work_and_a_building_manager_sees_only_their_buildings() {
    each_db(async |app| {
        let now = app.clock.now_ms();
        let (m1, building1) = first_meter(&app.db, 1).await;
        let (m2, _) = first_meter(&app.db, 2).await;
        let a = paid(&app.db, 1, &m1, "wx-here", now).await;
        let b = paid(&app.db, 2, &m2, "wx-there", now + 5).await;
        app.operator_in("manager", Role::BuildingManager, vec![building1])
            .await;
        let admin = app.login("admin").await;
        let (s, html) = app.text(&admin, "/staff/orders").await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains(&a.out_trade_no) && html.contains(&b.out_trade_no));
        let (_, html) = app.text(&admin, "/staff/orders?transaction=wx-there").await;
        assert!(
            !html.contains(&a.out_trade_no) && html.contains(&b.out_trade_no),
            "{html}"
        );
        let (_, html) = app.text(&admin, &format!("/staff/orders?meter={m1}")).await;
        assert!(html.contains(&a.out_trade_no) && !html.contains(&b.out_trade_no));
        let (_, html) = app
            .text(&admin, &format!("/staff/orders?no={}", b.out_trade_no))
            .await;
        assert!(!html.contains(&a.out_trade_no) && html.contains(&b.out_trade_no));
        let (_, html) = app.text(&admin, "/staff/orders?state=completed").await;
        assert!(html.contains("id=orders-empty"), "{html}");
        // A bad input: a clear message, no search.
        let (s, html) = app.text(&admin, "/staff/orders?meter=1234").await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(html.contains("电表编号为 12 位数字"), "{html}");
        let (s, _) = app.text(&admin, "/staff/orders?from=2026-13-01").await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        // The manager: only their building's order, and the other's story is 403 + audited.
        let manager = app.login("manager").await;
        let (s, html) = app.text(&manager, "/staff/orders").await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            html.contains(&a.out_trade_no) && !html.contains(&b.out_trade_no),
            "{html}"
        );
        let (s, _) = app.text(&manager, &format!("/staff/orders/{}", a.id)).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = app.text(&manager, &format!("/staff/orders/{}", b.id)).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let refused = app.audit("forbidden").await;
        assert!(
            refused
                .iter()
                .any(|r| r.operator_name == "manager"
                    && r.subject == format!("/staff/orders/{}", b.id)),
            "{refused:?}"
        );
        // The manager's nav has orders and exceptions; no refund buttons (no ResolveOrders).
        let (s, html) = app.text(&manager, "/staff/exceptions").await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("href=\"/staff/exceptions\""));
    })
    .await;
}

#[tokio::test]
async fn the_story_shows_the_ledger_rows_in_time_order() {
    each_db(async |app| {
        let now = app.clock.now_ms();
        let (m1, _) = first_meter(&app.db, 1).await;
        let o = refused(&app.db, 1, &m1, "wx-story", now).await;
        let admin = app.login("admin").await;
        let (s, html) = app.text(&admin, &format!("/staff/orders/{}", o.id)).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains("id=order-ledger"), "{html}");
        for needle in [
            "payment_received",
            "energy_issued",
            "wx_clearing → prepaid",
            "recharge_refused",
            "hoarding limit 500.00 kWh",
            "id=order-flagged",
        ] {
            assert!(html.contains(needle), "{needle}: {html}");
        }
        let created = html.find(">created<").expect("created");
        let refusal = html.rfind(">recharge_refused<").expect("refusal");
        assert!(created < refusal, "time order");
        let (s, _) = app.text(&admin, "/staff/orders/999999").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test]
async fn refunding_a_completed_order_is_refused_with_its_reason_and_changes_nothing() {
    each_db(async |app| {
        let now = app.clock.now_ms();
        let (m1, _) = first_meter(&app.db, 1).await;
        let o = paid(&app.db, 1, &m1, "wx-done", now).await;
        let mut tx = app.db.begin().await.unwrap();
        store::orders::mark_delivered(&mut tx, o.id, now + 5)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let before = store::orders::by_id(&app.db, o.id).await.unwrap().unwrap();
        let admin = app.login("admin").await;
        let r = app
            .post(
                &admin,
                &format!("/staff/exceptions/{}/refund", o.id),
                &[("csrf", &admin.csrf)],
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = r.text().await.unwrap();
        assert!(
            html.contains("id=exc-error") && html.contains("已完成"),
            "{html}"
        );
        assert_eq!(
            store::orders::by_id(&app.db, o.id).await.unwrap().unwrap(),
            before
        );
        assert!(app.audit("order_refund_requested").await.is_empty());
        // No refund transfer was written.
        assert_eq!(
            store::ledger::balance(&app.db, "refunds", "fen")
                .await
                .unwrap(),
            0
        );
        // A refused order with a number held (a gap) shows the reason, not the button.
        let (m2, _) = first_meter(&app.db, 2).await;
        let g = paid(&app.db, 2, &m2, "wx-gap", now).await;
        let job = store::jobs::claim(
            &app.db,
            store::orders::DELIVER_QUEUE,
            "w#1",
            now + 10,
            30_000,
            1,
        )
        .await
        .unwrap();
        store::orders::assign_purchase_seq(&app.db, g.id, now + 11)
            .await
            .unwrap();
        store::meters::flag_delivery(
            &app.db,
            g.id,
            &job[0],
            g.meter_id,
            "seq_gap",
            "count 3, seq 1",
            now + 12,
        )
        .await
        .unwrap();
        let (_, html) = app.text(&admin, "/staff/exceptions").await;
        assert!(
            html.contains("class=\"muted refund-refused\"") && html.contains("可能已在电表上"),
            "{html}"
        );
        assert!(!html.contains(&format!("/staff/exceptions/{}/refund", g.id)));
        let r = app
            .post(
                &admin,
                &format!("/staff/exceptions/{}/refund", g.id),
                &[("csrf", &admin.csrf)],
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            store::orders::by_id(&app.db, g.id)
                .await
                .unwrap()
                .unwrap()
                .state,
            domain::order::OrderState::Delayed
        );
    })
    .await;
}

#[tokio::test]
async fn a_refused_order_is_refunded_from_the_queue_and_resolved_orders_leave_it() {
    each_db(async |app| {
        let now = app.clock.now_ms();
        let (m1, _) = first_meter(&app.db, 1).await;
        let (m2, _) = first_meter(&app.db, 2).await;
        let o = refused(&app.db, 1, &m1, "wx-r", now).await;
        let p = refused(&app.db, 2, &m2, "wx-p", now).await;
        let admin = app.login("admin").await;
        let (_, html) = app.text(&admin, "/staff/exceptions").await;
        assert!(
            html.contains(&o.out_trade_no) && html.contains("电表拒绝充值"),
            "{html}"
        );
        let r = app
            .post(
                &admin,
                &format!("/staff/exceptions/{}/refund", o.id),
                &[("csrf", &admin.csrf)],
            )
            .await;
        assert!(
            redirects_to(&r, "/staff/exceptions?done=refund"),
            "{:?}",
            r.status()
        );
        let after = store::orders::by_id(&app.db, o.id).await.unwrap().unwrap();
        assert_eq!(after.state, domain::order::OrderState::Refunding);
        let rows = app.audit("order_refund_requested").await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].operator_name, "admin");
        assert_eq!(rows[0].subject, format!("order:{}", o.out_trade_no));
        // A second press: refused with the state, one refund.
        let r = app
            .post(
                &admin,
                &format!("/staff/exceptions/{}/refund", o.id),
                &[("csrf", &admin.csrf)],
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.audit("order_refund_requested").await.len(), 1);
        // Resolve with a note: empty refused, then done once.
        let r = app
            .post(
                &admin,
                &format!("/staff/exceptions/{}/resolve", p.id),
                &[("csrf", &admin.csrf), ("note", " ")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let r = app
            .post(
                &admin,
                &format!("/staff/exceptions/{}/resolve", p.id),
                &[("csrf", &admin.csrf), ("note", "student will buy less")],
            )
            .await;
        assert!(redirects_to(&r, "/staff/exceptions?done=resolve"));
        let (_, html) = app.text(&admin, "/staff/exceptions").await;
        assert!(html.contains("id=exc-empty"), "{html}");
        assert_eq!(app.audit("order_flags_resolved").await.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn an_auditor_sees_the_queue_without_buttons_and_its_posts_get_403() {
    each_db(async |app| {
        let now = app.clock.now_ms();
        let (m1, _) = first_meter(&app.db, 1).await;
        let o = refused(&app.db, 1, &m1, "wx-a", now).await;
        let auditor = app.login("auditor").await;
        let (s, html) = app.text(&auditor, "/staff/exceptions").await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains(&o.out_trade_no));
        assert!(
            !html.contains("/refund\"")
                && !html.contains("/redeliver\"")
                && !html.contains("/resolve\""),
            "{html}"
        );
        for action in ["refund", "redeliver", "resolve"] {
            let r = app
                .post(
                    &auditor,
                    &format!("/staff/exceptions/{}/{action}", o.id),
                    &[("csrf", &auditor.csrf), ("note", "x")],
                )
                .await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{action}");
        }
        assert_eq!(
            store::orders::by_id(&app.db, o.id)
                .await
                .unwrap()
                .unwrap()
                .state,
            domain::order::OrderState::Delayed
        );
        let refused = app.audit("forbidden").await;
        assert_eq!(
            refused
                .iter()
                .filter(|r| r.operator_name == "auditor")
                .count(),
            3
        );
        // A cashier may not resolve orders either.
        let cashier = app.login("cashier").await;
        let r = app
            .post(
                &cashier,
                &format!("/staff/exceptions/{}/refund", o.id),
                &[("csrf", &cashier.csrf)],
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    })
    .await;
}

#[tokio::test]
async fn an_administrator_settles_a_move_out_and_others_may_not() {
    each_db(async |app| {
        let (m1, _) = first_meter(&app.db, 1).await;
        let s = store::students::create_demo(&app.db, "leaver", app.clock.now_ms())
            .await
            .unwrap();
        store::on_db!(&app.db, |p| sqlx::query(
            "insert into binding (student_id, meter_id, is_default, created_at_ms)
             select $1, id, true, 0 from meter where address = $2"
        )
        .bind(s.id)
        .bind(&m1)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
        let auditor = app.login("auditor").await;
        let (st, _) = app.text(&auditor, "/staff/move-out").await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        let r = app
            .post(
                &auditor,
                "/staff/move-out",
                &[("csrf", &auditor.csrf), ("meter", &m1), ("note", "x")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let admin = app.login("admin").await;
        let r = app
            .post(
                &admin,
                "/staff/move-out",
                &[("csrf", &admin.csrf), ("meter", "12345"), ("note", "x")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let r = app
            .post(
                &admin,
                "/staff/move-out",
                &[("csrf", &admin.csrf), ("meter", &m1), ("note", "")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            store::students::bindings(&app.db, s.id)
                .await
                .unwrap()
                .len(),
            1
        );
        let r = app
            .post(
                &admin,
                "/staff/move-out",
                &[
                    ("csrf", &admin.csrf),
                    ("meter", &m1),
                    ("note", "moved out 2026-12-02"),
                ],
            )
            .await;
        assert!(
            redirects_to(&r, "/staff/move-out?meter="),
            "{:?}",
            r.status()
        );
        let loc = r.headers()[LOCATION].to_str().unwrap().to_owned();
        let (_, html) = app.text(&admin, &loc).await;
        assert!(
            html.contains("id=moveout-notice") && html.contains("解除 1 个绑定"),
            "{html}"
        );
        assert!(
            store::students::bindings(&app.db, s.id)
                .await
                .unwrap()
                .is_empty()
        );
        let r = app
            .post(
                &admin,
                "/staff/move-out",
                &[("csrf", &admin.csrf), ("meter", &m1), ("note", "again")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.audit("move_out_settled").await.len(), 1);
    })
    .await;
}
