//! The student pages over HTTP on 127.0.0.1:0, on SQLite and — when
//! `DORMWATT_TEST_PG_URL` is set — PostgreSQL: WeChat login against a mock
//! WeChat API, binding with its guessing protection, the overview and bill,
//! ordering, CSRF and the authorization matrix (student A cannot read or
//! change student B's binding, orders or messages).

mod common;

use axum::extract::Query;
use axum::routing::get;
use common::{Server, cookies_of, csrf_of, location, serve_on_port_0};
use reqwest::StatusCode;
use reqwest::header::COOKIE;
use std::collections::HashMap;
use store::Db;

/// The application with a mock WeChat for the login.
struct TestApp(Server);

impl std::ops::Deref for TestApp {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.0
    }
}

/// A logged-in browser: its cookies and the session's CSRF token.
#[derive(Clone)]
struct Browser {
    cookie: String,
    csrf: String,
}

/// The mock WeChat `sns/oauth2/access_token`: code `snap…` is a snapshot
/// user, `bad` an invalid code, anything else the openid `o-<code>`.
async fn mock_code_exchange(Query(q): Query<HashMap<String, String>>) -> String {
    let code = q.get("code").cloned().unwrap_or_default();
    assert_eq!(q.get("appid").map(String::as_str), Some("wxTESTAPPID"));
    assert_eq!(q.get("secret").map(String::as_str), Some("test-secret"));
    assert_eq!(
        q.get("grant_type").map(String::as_str),
        Some("authorization_code")
    );
    if code == "bad" {
        return r#"{"errcode":40029,"errmsg":"invalid code"}"#.to_owned();
    }
    let snap = if code.starts_with("snap") {
        r#","is_snapshotuser":1"#
    } else {
        ""
    };
    format!(
        r#"{{"access_token":"AT","expires_in":7200,"refresh_token":"RT","openid":"o-{code}","scope":"snsapi_base"{snap}}}"#
    )
}

impl TestApp {
    async fn spawn(db: Db) -> Self {
        let mut stops = Vec::new();
        let wechat = serve_on_port_0(
            axum::Router::new().route("/sns/oauth2/access_token", get(mock_code_exchange)),
            &mut stops,
        )
        .await;
        let mut settings = web::Settings::new(
            "http://dormwatt.test",
            domain::time::CampusTz::default(),
            true,
        );
        settings.wechat_oauth = Some(
            web::WechatOAuth::new(
                "wxTESTAPPID",
                "test-secret",
                wechat.clone(),
                format!("{wechat}/connect/oauth2/authorize"),
            )
            .expect("wechat client"),
        );
        TestApp(Server::start(db, settings, stops).await)
    }

    async fn get(&self, b: Option<&Browser>, path: &str) -> reqwest::Response {
        self.get_with(b.map(|b| b.cookie.as_str()), path).await
    }

    async fn get_text(&self, b: &Browser, path: &str) -> (StatusCode, String) {
        let r = self.get(Some(b), path).await;
        let s = r.status();
        (s, r.text().await.expect("body"))
    }

    async fn post(&self, b: &Browser, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.post_with(&b.cookie, path, form).await
    }

    /// `GET path` in English (with the browser's cookies when given).
    async fn get_en(&self, b: Option<&Browser>, path: &str) -> reqwest::Response {
        let cookie = match b {
            Some(b) => format!("{}; dw_lang=en", b.cookie),
            None => "dw_lang=en".to_owned(),
        };
        self.get_with(Some(&cookie), path).await
    }

    /// Posts the profile form; the page it answers with.
    async fn save_profile(&self, b: &Browser, name: &str, phone: &str) -> String {
        self.post(
            b,
            "/me/profile",
            &[("csrf", &b.csrf), ("name", name), ("phone", phone)],
        )
        .await
        .text()
        .await
        .expect("body")
    }

    /// Logs in through the mock WeChat with `code` and returns the browser.
    async fn wechat_login(&self, code: &str, next: &str) -> (Browser, String) {
        let r = self
            .get(
                None,
                &format!("/login/wechat?next={}", web::url::encode(next)),
            )
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let loc = location(&r);
        assert!(loc.contains("appid=wxTESTAPPID"), "{loc}");
        assert!(
            loc.contains("response_type=code&scope=snsapi_base&state="),
            "{loc}"
        );
        assert!(loc.ends_with("#wechat_redirect"), "{loc}");
        assert!(
            loc.contains("redirect_uri=http%3A%2F%2Fdormwatt.test%2Flogin%2Fwechat%2Fcallback"),
            "{loc}"
        );
        let state = loc
            .split("state=")
            .nth(1)
            .and_then(|s| s.split('#').next())
            .expect("state")
            .to_owned();
        let cookies = cookies_of(&r);
        let r = self
            .get_with(
                Some(&cookies),
                &format!("/login/wechat/callback?code={code}&state={state}"),
            )
            .await;
        let to = if r.status() == StatusCode::SEE_OTHER {
            location(&r)
        } else {
            String::new()
        };
        let session = cookies_of(&r);
        let set = common::set_cookies(&r);
        if let Some(s) = set
            .iter()
            .find(|c| c.starts_with("dw_session=") && !c.starts_with("dw_session=;"))
        {
            assert!(s.contains("HttpOnly") && s.contains("SameSite=Lax"), "{s}");
        }
        let mut b = Browser {
            cookie: session,
            csrf: String::new(),
        };
        if b.cookie.contains("dw_session=") {
            let (_, html) = self.get_text(&b, "/me").await;
            b.csrf = csrf_of(&html);
        }
        (b, to)
    }

    /// A logged-in student with the given meter bound (right password).
    /// Posts the buy page's order form for `meter` in the test area:
    /// `kwh` a preset amount, or `"other"` with the typed `other`.
    async fn order(
        &self,
        b: &Browser,
        meter: &str,
        kwh: &str,
        other: Option<&str>,
    ) -> reqwest::Response {
        let area = self.area_id.to_string();
        let mut form = vec![
            ("csrf", b.csrf.as_str()),
            ("area_id", area.as_str()),
            ("meter", meter),
            ("kwh", kwh),
        ];
        if let Some(other) = other {
            form.push(("other", other));
        }
        self.post(b, "/buy/order", &form).await
    }

    async fn student_with_meter(&self, code: &str, meter: &str) -> Browser {
        let (b, _) = self.wechat_login(code, "/").await;
        let r = self.bind(&b, meter, "000000").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "bind {meter}");
        b
    }

    async fn bind(&self, b: &Browser, meter: &str, password: &str) -> reqwest::Response {
        let area = self.area_id.to_string();
        self.post(
            b,
            "/bind",
            &[
                ("csrf", &b.csrf),
                ("area_id", &area),
                ("meter", meter),
                ("password", password),
                ("make_default", "1"),
            ],
        )
        .await
    }
}

async fn each_db(f: impl AsyncFn(TestApp)) {
    common::each_db(TestApp::spawn, f).await;
}

#[tokio::test]
async fn wechat_login_first_visit_and_expired_session() {
    each_db(async |app: TestApp| {
        // Not logged in: to the login page, remembering where we were going.
        let r = app.get(None, "/bill?month=2026-01").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&r), "/login?next=%2Fbill%3Fmonth%3D2026-01");

        // WeChat login comes back to that page.
        let (b, to) = app.wechat_login("alice", "/bill?month=2026-01").await;
        assert_eq!(to, "/bill?month=2026-01");
        assert!(b.cookie.contains("dw_session="));
        // First visit without a meter: the binding prompt.
        let r = app.get(Some(&b), "/").await;
        assert_eq!(location(&r), "/bind?first=1");
        let (_, html) = app.get_text(&b, "/bind?first=1").await;
        assert!(html.contains("id=first-bind"));
        assert!(html.contains("id=meter-help") && html.contains("<svg"));

        // A forged state is refused: no session.
        let r = app.get(None, "/login/wechat").await;
        let cookies = cookies_of(&r);
        let r = app
            .get_with(
                Some(&cookies),
                "/login/wechat/callback?code=mallory&state=forged",
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(!cookies_of(&r).contains("dw_session="));
        // An invalid code is refused.
        let (b2, _) = app.wechat_login("bad", "/").await;
        assert!(!b2.cookie.contains("dw_session="));

        // An expired session sends the student to log in again, then back.
        match &app.db {
            Db::Sqlite(p) => sqlx::query("update session set expires_at_ms = 0")
                .execute(p)
                .await
                .map(|_| ()),
            Db::Postgres(p) => sqlx::query("update session set expires_at_ms = 0")
                .execute(p)
                .await
                .map(|_| ()),
        }
        .expect("expire");
        let r = app.get(Some(&b), "/records").await;
        assert_eq!(location(&r), "/login?next=%2Frecords");
        // JSON callers get 401 rather than a redirect.
        let r = app.get(Some(&b), "/orders/1/status.json").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    })
    .await;
}

#[tokio::test]
async fn snapshot_users_can_look_but_never_bind_or_pay() {
    each_db(async |app: TestApp| {
        let (b, _) = app.wechat_login("snapshot1", "/").await;
        assert!(b.cookie.contains("dw_session="));
        let (s, html) = app.get_text(&b, "/bind").await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("errbox"));
        let r = app.bind(&b, &app.meters[0], "000000").await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = app.order(&b, &app.meters[0], "20", None).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(app.count("select count(*) from binding").await, 0);
        assert_eq!(app.count("select count(*) from orders").await, 0);
    })
    .await;
}

#[tokio::test]
async fn binding_messages_and_guessing_protection() {
    each_db(async |app: TestApp| {
        let meter = app.meters[0].clone();
        let (a, _) = app.wechat_login("alice", "/").await;
        // Wrong password and unknown meter: the same message.
        let r = app.bind(&a, &meter, "123456").await;
        assert_eq!(r.status(), StatusCode::OK);
        let wrong = r.text().await.expect("body");
        let r = app.bind(&a, "999999999999", "000000").await;
        let unknown = r.text().await.expect("body");
        let msg = "电表编号或验证密码错误";
        assert!(wrong.contains(msg) && unknown.contains(msg));
        // The right password binds and lands on the overview, urging a password change.
        let r = app.bind(&a, &meter, "000000").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&r), "/overview?bound=1");
        let (_, html) = app.get_text(&a, "/overview?bound=1").await;
        assert!(html.contains("id=default-password"), "S7 urge");
        assert!(html.contains("id=usage-chart"));
        assert_eq!(app.count("select count(*) from bind_attempt").await, 3);
        assert_eq!(
            app.count("select count(*) from bind_attempt where ok")
                .await,
            1
        );

        // A roommate binds the same meter: Alice gets a message.
        let (b, _) = app.wechat_login("bob", "/").await;
        let r = app.bind(&b, &meter, "000000").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let (_, html) = app.get_text(&a, "/me").await;
        assert!(
            html.contains("<b class=badge id=unread>1</b>"),
            "unread count"
        );
        let (_, html) = app.get_text(&a, "/me/messages").await;
        assert!(html.contains("电表有新用户绑定"));

        // Guessing: after 5 failures on one meter, even the right password waits.
        let target = app.meters[1].clone();
        let (m, _) = app.wechat_login("mallory", "/").await;
        for _ in 0..5 {
            let body = app
                .bind(&m, &target, "111111")
                .await
                .text()
                .await
                .expect("body");
            assert!(body.contains(msg));
        }
        let body = app
            .bind(&m, &target, "000000")
            .await
            .text()
            .await
            .expect("body");
        assert!(body.contains("尝试次数过多"), "throttled");
        // …but only for Mallory: the strict lock-out is per (meter, student),
        // so the meter's owner is not locked out by someone else's guesses
        // (issue 10 item 2; docs/SECURITY.md).
        let r = app.bind(&b, &target, "000000").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "the owner still binds");
        let r = app.bind(&b, &app.meters[2], "000000").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        // The throttled tries were not recorded as attempts (no lockout extension).
        assert_eq!(
            app.count("select count(*) from bind_attempt where not ok")
                .await,
            2 + 5
        );
    })
    .await;
}

#[tokio::test]
async fn change_password_needs_the_current_one() {
    each_db(async |app: TestApp| {
        let a = app.student_with_meter("alice", &app.meters[0]).await;
        let bid = app.count("select id from binding").await.to_string();
        let path = format!("/me/meters/{bid}/password");
        let post = |cur: &'static str, new: &'static str| {
            let (a, path) = (a.clone(), path.clone());
            let app = &app;
            async move {
                app.post(
                    &a,
                    &path,
                    &[
                        ("csrf", &a.csrf),
                        ("current", cur),
                        ("new", new),
                        ("confirm", new),
                    ],
                )
                .await
            }
        };
        let body = post("111111", "246810").await.text().await.expect("body");
        assert!(body.contains("当前密码错误"));
        let body = post("000000", "000000").await.text().await.expect("body");
        assert!(body.contains("不能是 000000"));
        let r = post("000000", "246810").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        // The old default no longer binds; the new password does.
        let (b, _) = app.wechat_login("bob", "/").await;
        assert!(
            app.bind(&b, &app.meters[0], "000000")
                .await
                .text()
                .await
                .expect("body")
                .contains("电表编号或验证密码错误")
        );
        assert_eq!(
            app.bind(&b, &app.meters[0], "246810").await.status(),
            StatusCode::SEE_OTHER
        );
        let (_, html) = app.get_text(&a, "/overview").await;
        assert!(!html.contains("id=default-password"));
    })
    .await;
}

#[tokio::test]
async fn overview_chart_and_bill_show_missing_days_distinctly() {
    each_db(async |app: TestApp| {
        let a = app.student_with_meter("alice", &app.meters[0]).await;
        let meter_id = app.count("select meter_id from binding").await;
        let tz = domain::time::CampusTz::default().tz().clone();
        let now = store::now_ms();
        let today = domain::time::day_number(domain::time::local_date(now, &tz));
        for d in 1..=30 {
            let usage = if d == 3 { None } else { Some(250 + d * 10) };
            store::students::put_daily_usage(&app.db, meter_id, today - d, usage, now)
                .await
                .expect("usage");
        }
        let (s, html) = app.get_text(&a, "/overview").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            html.matches("class=miss ").count(),
            1,
            "one missing day drawn as missing"
        );
        assert_eq!(html.matches("class=bar ").count(), 29);
        assert!(html.len() < 100_000);
        let missing = domain::time::date_of_day_number(today - 3);
        let month = format!("{:04}-{:02}", missing.year(), missing.month());
        let (_, bill) = app.get_text(&a, &format!("/bill?month={month}")).await;
        assert!(bill.contains("<tr class=missing>"));
        assert!(bill.contains("id=missing-note") && bill.contains("id=reference-note"));
        // Power off by a malicious load: the reason and the restore countdown.
        let restore = now + 5 * 60_000 - 1_000;
        let sql = "update meter_state set relay_closed = false, relay_reason = 'malicious_load',
                   relay_restore_at_ms = $1, remaining_centikwh = 3000, remaining_at_ms = $2 where meter_id = $3";
        match &app.db {
            Db::Sqlite(p) => sqlx::query(sql).bind(restore).bind(now).bind(meter_id).execute(p).await.map(|_| ()),
            Db::Postgres(p) => sqlx::query(sql).bind(restore).bind(now).bind(meter_id).execute(p).await.map(|_| ()),
        }
        .expect("relay");
        let (_, html) = app.get_text(&a, "/overview").await;
        assert!(html.contains("检测到违规大功率电器"), "relay reason");
        assert!(html.contains("约 5 分钟后自动恢复"), "restore countdown");
        // Days 1,2,4,5,6,7 back: (260+270+290+300+310+320)/6 = 291 (0.01 kWh); 3000/291 = 10.
        assert!(html.contains("id=days-left") && html.contains("<b>10</b>"), "days-left estimate");
        // English on request.
        let r = app.get_en(Some(&a), "/overview").await;
        assert!(
            r.text()
                .await
                .expect("body")
                .contains("Daily usage, last 30 days")
        );
    })
    .await;
}

#[tokio::test]
async fn ordering_whole_kwh_records_and_cancel() {
    each_db(async |app: TestApp| {
        let a = app.student_with_meter("alice", &app.meters[0]).await;
        let area = app.area_id.to_string();
        let (s, html) = app
            .get_text(
                &a,
                &format!("/buy/order?area_id={area}&meter={}", app.meters[0]),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("id=unit-price"));
        // Not whole: a message beside the field, nothing created.
        let r = app.order(&a, &app.meters[0], "other", Some("2.5")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.text().await.expect("body").contains("id=kwh-error"));
        assert_eq!(app.count("select count(*) from orders").await, 0);
        // 20 kWh: an unpaid order, then the payment page.
        let r = app.order(&a, &app.meters[0], "20", None).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let order_id = app.count("select id from orders").await;
        assert_eq!(location(&r), format!("/orders/{order_id}/pay"));
        assert_eq!(app.count("select kwh from orders").await, 20);
        let (_, rec) = app.get_text(&a, "/records").await;
        assert!(rec.contains(&format!("data-order=\"{order_id}\"")) && rec.contains("未支付"));
        let (_, status) = app
            .get_text(&a, &format!("/orders/{order_id}/status.json"))
            .await;
        assert!(status.contains("\"state\":\"unpaid\""));
        // Cancelled orders disappear from the records.
        let r = app
            .post(
                &a,
                &format!("/orders/{order_id}/cancel"),
                &[("csrf", &a.csrf)],
            )
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let (_, rec) = app.get_text(&a, "/records").await;
        assert!(!rec.contains(&format!("data-order=\"{order_id}\"")));
        // Buying for someone else's meter by typing its number works.
        let r = app.order(&a, &app.meters[5], "other", Some("7")).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
    })
    .await;
}

#[tokio::test]
async fn csrf_and_origin_are_checked() {
    each_db(async |app: TestApp| {
        let (a, _) = app.wechat_login("alice", "/").await;
        let r = app
            .post(
                &a,
                "/me/profile",
                &[("csrf", "nope"), ("name", "X"), ("phone", "")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = app
            .http
            .post(format!("{}/me/profile", app.base))
            .header(COOKIE, &a.cookie)
            .header("origin", "http://evil.test")
            .form(&[("csrf", a.csrf.as_str()), ("name", "X"), ("phone", "")])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        // Validation: a bad phone is refused beside the field; a good one is saved.
        let body = app.save_profile(&a, "小明", "12ab").await;
        assert!(body.contains("id=phone-error"));
        let body = app.save_profile(&a, "小明", "138 0013 8000").await;
        assert!(body.contains("id=profile-saved") && body.contains("13800138000"));
        // Demo login needs its own token too.
        let r = app
            .http
            .post(format!("{}/login/demo", app.base))
            .form(&[("csrf", "x"), ("name", "d")])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    })
    .await;
}

#[tokio::test]
async fn a_student_cannot_read_or_change_anothers_things() {
    each_db(async |app: TestApp| {
        let a = app.student_with_meter("alice", &app.meters[0]).await;
        let b = app.student_with_meter("bob", &app.meters[1]).await;
        let a_id = app.count("select id from student where openid = 'o-alice'").await;
        let a_binding = app.count("select id from binding where student_id = (select id from student where openid = 'o-alice')").await;
        let r = app.order(&a, &app.meters[0], "10", None).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let a_order = app.count("select id from orders").await;
        store::students::send_message(&app.db, a_id, "notice", "for alice", "secret body", None, store::now_ms())
            .await
            .expect("message");

        // Reads: 404, never A's data.
        for path in [
            format!("/orders/{a_order}"),
            format!("/orders/{a_order}/pay"),
            format!("/orders/{a_order}/status.json"),
            format!("/me/meters/{a_binding}/password"),
            format!("/bill?meter={a_binding}"),
            "/orders/abc".to_owned(),
            "/orders/-1".to_owned(),
            "/bill?meter=x1".to_owned(),
        ] {
            let (s, body) = app.get_text(&b, &path).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
            assert!(!body.contains(&app.meters[0]), "{path} leaks A's meter");
        }
        let (_, html) = app.get_text(&b, "/me/messages").await;
        assert!(!html.contains("secret body"));
        let (_, html) = app.get_text(&b, "/records").await;
        assert!(!html.contains(&format!("data-order=\"{a_order}\"")));
        let (_, html) = app.get_text(&b, "/me/meters").await;
        assert!(!html.contains(&app.meters[0]));

        // Writes: 404 and nothing changes.
        for path in [
            format!("/orders/{a_order}/cancel"),
            format!("/orders/{a_order}/pay"),
            format!("/me/meters/{a_binding}/default"),
            format!("/me/meters/{a_binding}/unbind"),
        ] {
            let r = app.post(&b, &path, &[("csrf", &b.csrf)]).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        }
        let r = app
            .post(&b, &format!("/me/meters/{a_binding}/password"), &[("csrf", &b.csrf), ("current", "000000"), ("new", "135791"), ("confirm", "135791")])
            .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(app.count("select count(*) from binding").await, 2);
        assert_eq!(app.count("select count(*) from orders where state = 'unpaid'").await, 1);
        // B opened their inbox: A's message is still unread.
        assert_eq!(app.count("select count(*) from message where read_at_ms is null").await, 1);
        assert_eq!(app.count("select count(*) from meter where password_hash is not null").await, 0);
        // A still sees all of it.
        let (s, _) = app.get_text(&a, &format!("/orders/{a_order}")).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = app.get_text(&a, &format!("/me/meters/{a_binding}/password")).await;
        assert_eq!(s, StatusCode::OK);
    })
    .await;
}

#[tokio::test]
async fn demo_login_creates_and_picks_demo_students() {
    each_db(async |app: TestApp| {
        let r = app.get(None, "/login?next=%2Fbuy").await;
        let cookies = cookies_of(&r);
        let html = r.text().await.expect("body");
        assert!(html.contains("id=demo-login"));
        let token = csrf_of(&html);
        let r = app
            .http
            .post(format!("{}/login/demo", app.base))
            .header(COOKIE, &cookies)
            .form(&[
                ("csrf", token.as_str()),
                ("name", "演示甲"),
                ("next", "/buy"),
            ])
            .send()
            .await
            .expect("demo");
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&r), "/buy");
        assert_eq!(
            app.count("select count(*) from student where is_demo")
                .await,
            1
        );
        // A non-demo student cannot be picked through the demo login.
        let (_, _) = app.wechat_login("alice", "/").await;
        let alice = app
            .count("select id from student where openid = 'o-alice'")
            .await
            .to_string();
        let r = app
            .http
            .post(format!("{}/login/demo", app.base))
            .header(COOKIE, &cookies)
            .form(&[("csrf", token.as_str()), ("student_id", alice.as_str())])
            .send()
            .await
            .expect("demo");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    })
    .await;
}

/// Every page, and the form pages with their error messages, rendered in
/// every language of the catalog: no text is missing, and an English page
/// is not left in Chinese.
#[tokio::test]
async fn every_page_renders_in_every_language() {
    each_db(async |app: TestApp| {
        let a = app.student_with_meter("alice", &app.meters[0]).await;
        let _bob = app.student_with_meter("bob", &app.meters[0]).await;
        let area = app.area_id.to_string();
        let r = app.order(&a, &app.meters[0], "10", None).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let order = app.count("select id from orders").await;
        let binding = app
            .count("select id from binding where student_id = (select id from student where openid = 'o-alice')")
            .await;
        let meter_id = app.count("select min(meter_id) from binding").await;
        let now = store::now_ms();
        let tz = domain::time::CampusTz::default().tz().clone();
        let today = domain::time::day_number(domain::time::local_date(now, &tz));
        for d in 1..=10 {
            let usage = (d != 4).then_some(300 + d);
            store::students::put_daily_usage(&app.db, meter_id, today - d, usage, now)
                .await
                .expect("usage");
        }
        let pages = [
            "/overview?bound=1".to_owned(),
            "/bind?first=1".to_owned(),
            "/buy".to_owned(),
            format!("/buy/order?area_id={area}&meter={}", app.meters[0]),
            format!("/buy/order?area_id={area}&meter=000000000000"),
            format!("/orders/{order}/pay"),
            format!("/orders/{order}"),
            "/records".to_owned(),
            "/bill".to_owned(),
            "/me".to_owned(),
            "/me/profile".to_owned(),
            "/me/messages".to_owned(),
            "/me/meters".to_owned(),
            format!("/me/meters/{binding}/password?done=1"),
            "/orders/999999".to_owned(),
        ];
        let forms: Vec<(String, Vec<(&str, String)>)> = vec![
            ("/bind".to_owned(), vec![("area_id", area.clone()), ("meter", app.meters[1].clone()), ("password", "123456".to_owned())]),
            ("/bind".to_owned(), vec![("area_id", area.clone()), ("meter", "12ab".to_owned()), ("password", "123456".to_owned())]),
            ("/buy/order".to_owned(), vec![("area_id", area.clone()), ("meter", app.meters[0].clone()), ("kwh", "other".to_owned()), ("other", "2.5".to_owned())]),
            ("/me/profile".to_owned(), vec![("name", "小明".to_owned()), ("phone", "12ab".to_owned())]),
            (format!("/me/meters/{binding}/password"), vec![("current", "000000".to_owned()), ("new", "1".to_owned()), ("confirm", "2".to_owned())]),
        ];
        for lang in web::i18n::Lang::all() {
            let cookie = format!("{}; dw_lang={}", a.cookie, lang.code());
            let check = |path: &str, status: StatusCode, html: &str| {
                assert!(
                    !html.contains(web::i18n::MISSING_MARK),
                    "{} {path}: a text is missing: {html}",
                    lang.code()
                );
                assert!(html.contains(&format!("<html lang={}>", lang.tag())), "{path}: {status}");
                if lang.code() == "en" {
                    // The chrome is English (Chinese place names may remain).
                    assert!(!html.contains("返回") && !html.contains("首页"), "{path} in Chinese");
                }
            };
            for path in &pages {
                let r = app
                    .http
                    .get(format!("{}{path}", app.base))
                    .header(COOKIE, &cookie)
                    .send()
                    .await
                    .expect("GET");
                let status = r.status();
                assert!(
                    status == StatusCode::OK || (status == StatusCode::NOT_FOUND && path.contains("999999")),
                    "{path}: {status}"
                );
                check(path, status, &r.text().await.expect("body"));
            }
            for (path, fields) in &forms {
                let mut form: Vec<(&str, &str)> = vec![("csrf", a.csrf.as_str())];
                form.extend(fields.iter().map(|(k, v)| (*k, v.as_str())));
                let r = app
                    .http
                    .post(format!("{}{path}", app.base))
                    .header(COOKIE, &cookie)
                    .form(&form)
                    .send()
                    .await
                    .expect("POST");
                let status = r.status();
                assert_eq!(status, StatusCode::OK, "{path}");
                let html = r.text().await.expect("body");
                assert!(html.contains("errbox") || html.contains("field-msg"), "{path}: no message");
                check(path, status, &html);
            }
        }
    })
    .await;
}

/// Issue 11 items 1–2: the amount ticked is the amount charged, even with
/// something left in "other"; every preset and the button show the price.
#[tokio::test]
async fn the_ticked_amount_is_charged_and_priced() {
    each_db(async |app: TestApp| {
        let a = app.student_with_meter("alice", &app.meters[0]).await;
        let area = app.area_id.to_string();
        let info = app.meter_info(&app.meters[0]).await;
        let price = info.unit_price_centifen_per_kwh;
        let yuan = |k: u64| {
            price
                .amount_for(domain::WholeKwh::new(k, 10_000).expect("kwh"))
                .to_string()
        };
        let (_, html) = app
            .get_text(
                &a,
                &format!("/buy/order?area_id={area}&meter={}", app.meters[0]),
            )
            .await;
        for k in [10, 20, 50, 100, 200] {
            assert!(
                html.contains(&format!("{k} kWh<small class=price>¥{}</small>", yuan(k))),
                "preset {k}: {html}"
            );
        }
        assert!(
            html.contains(&format!(
                "id=order-submit>购电 20 kWh · ¥{}</button>",
                yuan(20)
            )),
            "the button says what it buys"
        );
        // 50 ticked, 30 left in "other": 50 it is.
        let r = app.order(&a, &app.meters[0], "50", Some("30")).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(app.count("select kwh from orders").await, 50);
    })
    .await;
}

/// Issue 11 item 3: a meter at 0.00 kWh, or below its low-balance mark, is
/// shown in red with a buy button on the overview and in my meters; at 0
/// with the relay closed the meter is in overdraft, and the page says so.
#[tokio::test]
async fn empty_and_low_meters_are_warned_about() {
    each_db(async |app: TestApp| {
        let a = app.student_with_meter("alice", &app.meters[0]).await;
        let meter_id = app.count("select meter_id from binding").await;
        let set = async |remaining: i64, closed: bool| {
            let sql = "update meter_state set remaining_centikwh = $1, relay_closed = $2, remaining_at_ms = $3 where meter_id = $4";
            match &app.db {
                Db::Sqlite(p) => sqlx::query(sql).bind(remaining).bind(closed).bind(store::now_ms()).bind(meter_id).execute(p).await.map(|_| ()),
                Db::Postgres(p) => sqlx::query(sql).bind(remaining).bind(closed).bind(store::now_ms()).bind(meter_id).execute(p).await.map(|_| ()),
            }
            .expect("meter state");
        };
        set(0, true).await;
        let (_, html) = app.get_text(&a, "/overview").await;
        assert!(html.contains("id=low-balance"), "zero balance warned");
        assert!(html.contains("透支"), "overdraft named");
        assert!(html.contains("class=\"big err\" id=remaining"), "zero in red");
        assert!(html.contains("href=\"/buy/order?area_id="), "a buy button");
        let (_, meters) = app.get_text(&a, "/me/meters").await;
        assert!(meters.contains("class=\"card low\""), "my meters highlights it");
        set(0, false).await;
        let (_, html) = app.get_text(&a, "/overview").await;
        assert!(html.contains("id=low-balance") && html.contains("已断电"));
        set(120, true).await;
        let (_, html) = app.get_text(&a, "/overview").await;
        assert!(html.contains("id=low-balance") && html.contains("剩余电量不足"), "low warned");
        set(50_000, true).await;
        let (_, html) = app.get_text(&a, "/overview").await;
        assert!(!html.contains("id=low-balance"), "plenty: no warning");
    })
    .await;
}

/// Issue 11 item 4: in the demo the bind page offers real meter numbers of
/// the demo campus, and one of them binds.
#[tokio::test]
async fn the_demo_bind_page_offers_real_meters() {
    each_db(async |app: TestApp| {
        let (a, _) = app.wechat_login("alice", "/").await;
        let (_, html) = app.get_text(&a, "/bind").await;
        assert!(html.contains("id=demo-meters"), "demo meters offered");
        let offered = html
            .split("<span class=demo-meter>")
            .nth(1)
            .and_then(|s| s.split('<').next())
            .expect("a demo meter")
            .to_owned();
        let r = app.bind(&a, &offered, "000000").await;
        assert_eq!(
            r.status(),
            StatusCode::SEE_OTHER,
            "the offered {offered} binds"
        );
    })
    .await;
}

/// Issue 11 item 15: an unknown path answers the app's 404 page in the
/// reader's language, not an empty body.
#[tokio::test]
async fn unknown_paths_get_the_apps_404_page() {
    each_db(async |app: TestApp| {
        let r = app.get(None, "/no/such/page").await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let body = r.text().await.expect("body");
        assert!(
            body.contains("id=error-page") && body.contains("页面不存在"),
            "{body}"
        );
        let r = app.get_en(None, "/nope").await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let body = r.text().await.expect("body");
        assert!(
            body.contains("<html lang=en>") && body.contains("Page not found"),
            "{body}"
        );
    })
    .await;
}

/// Issue 11 item 12: success is green (not the warning box) and every
/// action says what it did: cancelling, unbinding, making default, binding
/// a meter that is not the default.
#[tokio::test]
async fn actions_are_confirmed_in_green() {
    each_db(async |app: TestApp| {
        let a = app.student_with_meter("alice", &app.meters[0]).await;
        let (_, html) = app.get_text(&a, "/overview?bound=1").await;
        assert!(
            html.contains("<div class=okbox id=bound-ok>"),
            "bound in green"
        );
        let area = app.area_id.to_string();
        let r = app.order(&a, &app.meters[0], "10", None).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let order = app.count("select id from orders").await;
        let r = app
            .post(&a, &format!("/orders/{order}/cancel"), &[("csrf", &a.csrf)])
            .await;
        assert_eq!(location(&r), "/records?cancelled=1");
        let (_, html) = app.get_text(&a, &location(&r)).await;
        assert!(
            html.contains("class=okbox id=order-cancelled"),
            "cancel confirmed"
        );
        // A second meter, not as default: confirmed where it is listed.
        let r = app
            .post(
                &a,
                "/bind",
                &[
                    ("csrf", &a.csrf),
                    ("area_id", &area),
                    ("meter", &app.meters[1]),
                    ("password", "000000"),
                ],
            )
            .await;
        assert_eq!(location(&r), "/me/meters?done=bound");
        let (_, html) = app.get_text(&a, &location(&r)).await;
        assert!(html.contains("class=okbox id=meters-done") && html.contains("未设为默认"));
        let second = app.count("select max(id) from binding").await;
        let r = app
            .post(
                &a,
                &format!("/me/meters/{second}/default"),
                &[("csrf", &a.csrf)],
            )
            .await;
        let (_, html) = app.get_text(&a, &location(&r)).await;
        assert!(html.contains("已设为默认电表"), "default confirmed");
        let r = app
            .post(
                &a,
                &format!("/me/meters/{second}/unbind"),
                &[("csrf", &a.csrf)],
            )
            .await;
        assert_eq!(location(&r), "/me/meters?done=unbound");
        let (_, html) = app.get_text(&a, &location(&r)).await;
        assert!(html.contains("已解除绑定"), "unbind confirmed: {html}");
    })
    .await;
}

/// Issue 11 item 9: an unpaid order shows one deadline as a clock time on
/// the pay page, the order page and the records, no spinner beside 未支付,
/// and the order page says how to pay again.
#[tokio::test]
async fn unpaid_orders_show_one_deadline() {
    each_db(async |app: TestApp| {
        let a = app.student_with_meter("alice", &app.meters[0]).await;
        let r = app.order(&a, &app.meters[0], "10", None).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let order = app.count("select id from orders").await;
        let expires = app.count("select expires_at_ms from orders").await;
        let tz = domain::time::CampusTz::default().tz().clone();
        let due = jiff::Timestamp::from_millisecond(expires)
            .expect("ts")
            .to_zoned_datetime(tz);
        let hhmm = due.strftime("%H:%M").to_string();
        for path in [
            format!("/orders/{order}/pay"),
            format!("/orders/{order}"),
            "/records".to_owned(),
        ] {
            let (_, html) = app.get_text(&a, &path).await;
            assert!(
                html.contains(&format!("{hhmm} 前支付")),
                "{path}: deadline {hhmm}"
            );
        }
        let (_, html) = app.get_text(&a, &format!("/orders/{order}")).await;
        assert!(
            html.contains("id=order-spinner class=spinner style=\"display:none\""),
            "no spinner while unpaid"
        );
        assert!(
            html.contains("id=unpaid-note") && html.contains("重新支付"),
            "how to pay again"
        );
    })
    .await;
}

/// Issue 11 item 11: full-width digits are accepted in amounts and phone
/// numbers; empty, letters and decimals each get their own message; the
/// name field allows what the server accepts.
#[tokio::test]
async fn inputs_are_normalised_and_refused_precisely() {
    each_db(async |app: TestApp| {
        let a = app.student_with_meter("alice", &app.meters[0]).await;
        let order = async |other: &str| app.order(&a, &app.meters[0], "other", Some(other)).await;
        let empty = order("").await.text().await.expect("body");
        let letters = order("abc").await.text().await.expect("body");
        let decimal = order("2.5").await.text().await.expect("body");
        assert!(empty.contains("请输入购电电量"), "empty");
        assert!(
            letters.contains("只能填写数字") && !letters.contains("不能有小数"),
            "letters"
        );
        assert!(decimal.contains("不能有小数"), "decimal");
        let r = order("３０").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "full-width digits");
        assert_eq!(app.count("select kwh from orders").await, 30);
        let body = app.save_profile(&a, "小明", "１３８００１３８０００").await;
        assert!(
            body.contains("id=profile-saved") && body.contains("13800138000"),
            "full-width phone"
        );
        assert!(
            body.contains("id=name name=name maxlength=20 "),
            "name limit agrees with the server"
        );
    })
    .await;
}

/// Issue 11 item 6: inbox messages are stored as a kind with arguments and
/// shown in the reader's language, naming the meter's building, room and
/// number; a message stored as finished text before that shows as stored.
#[tokio::test]
async fn inbox_messages_are_in_the_readers_language_and_name_the_meter() {
    each_db(async |app: TestApp| {
        let meter = app.meters[0].clone();
        let a = app.student_with_meter("alice", &meter).await;
        let _bob = app.student_with_meter("bob", &meter).await;
        let info = app.meter_info(&meter).await;
        let a_id = app
            .count("select id from student where openid = 'o-alice'")
            .await;
        store::students::send_message(
            &app.db,
            a_id,
            "notice",
            "旧消息 · Old message",
            "旧正文 / old body",
            None,
            1,
        )
        .await
        .expect("an old-style row");
        let (_, zh) = app.get_text(&a, "/me/messages").await;
        assert!(zh.contains("电表有新用户绑定"), "{zh}");
        for named in [&info.building_name_zh, &info.room, &meter] {
            assert!(zh.contains(named.as_str()), "names {named}: {zh}");
        }
        assert!(
            !zh.contains("Someone bound"),
            "only the reader's language: {zh}"
        );
        assert!(
            zh.contains("旧消息 · Old message") && zh.contains("旧正文 / old body"),
            "old rows as stored"
        );
        let r = app.get_en(Some(&a), "/me/messages").await;
        let en = r.text().await.expect("body");
        assert!(en.contains("Someone bound your meter"), "{en}");
        for named in [&info.building_name_en, &info.room, &meter] {
            assert!(en.contains(named.as_str()), "names {named}: {en}");
        }
        assert!(!en.contains("电表有新用户绑定"), "{en}");
    })
    .await;
}

/// Issue 11 item 14: opening the inbox marks the messages it shows read;
/// on that visit they carry a "新" badge, on the next they don't, and no
/// button that reads like a status ("已读") is left.
#[tokio::test]
async fn opening_the_inbox_marks_what_it_shows_read() {
    each_db(async |app: TestApp| {
        let meter = app.meters[0].clone();
        let a = app.student_with_meter("alice", &meter).await;
        let _bob = app.student_with_meter("bob", &meter).await;
        let (_, me) = app.get_text(&a, "/me").await;
        assert!(me.contains("<b class=badge id=unread>1</b>"), "one unread");
        let (_, first) = app.get_text(&a, "/me/messages").await;
        assert_eq!(
            first.matches("class=\"badge new\"").count(),
            1,
            "the unread one is new: {first}"
        );
        assert!(first.contains("新"));
        let inbox = first.split("id=messages").nth(1).expect("the inbox");
        assert!(
            !inbox.contains("<button") && !first.contains("/read\""),
            "no read buttons: {inbox}"
        );
        assert!(
            first.contains("打开本页即视为已读"),
            "says what marks them read"
        );
        assert!(
            !first.contains("id=unread>"),
            "the menu no longer counts what is shown"
        );
        assert_eq!(
            app.count("select count(*) from message where read_at_ms is null")
                .await,
            0
        );
        let (_, second) = app.get_text(&a, "/me/messages").await;
        assert!(
            !second.contains("class=\"badge new\""),
            "seen before: not new"
        );
        assert!(second.contains("电表有新用户绑定"), "still listed");
        let (_, me) = app.get_text(&a, "/me").await;
        assert!(!me.contains("id=unread>"), "nothing unread");
    })
    .await;
}

/// Issue 11 item 3: at 0.00 kWh with the relay closed and the overdraft
/// read from the meter, the overview and my meters say how much has been
/// overdrawn and what buying does (the overdraft is repaid first), in both
/// languages.
#[tokio::test]
async fn a_meter_in_overdraft_says_how_much_in_both_languages() {
    each_db(async |app: TestApp| {
        let a = app.student_with_meter("alice", &app.meters[0]).await;
        let meter_id = app.count("select meter_id from binding").await;
        let now = store::now_ms();
        let o = store::meters::Observation {
            meter_id,
            at_ms: now,
            seen: true,
            relay_closed: Some(true),
            remaining_centikwh: Some(0),
            overdraft_centikwh: Some(321),
            ..Default::default()
        };
        store::meters::record(&app.db, &[o], &[], &[], now)
            .await
            .expect("state");
        for path in ["/overview", "/me/meters"] {
            let (_, zh) = app.get_text(&a, path).await;
            assert!(
                zh.contains("余额已用完，已透支 3.21 kWh，透支额度用完将断电"),
                "{path}: {zh}"
            );
            assert!(
                zh.contains("购买 10 kWh，到账后剩余 6.79 kWh"),
                "{path}: what buying does: {zh}"
            );
            let r = app.get_en(Some(&a), path).await;
            let en = r.text().await.expect("body");
            assert!(en.contains("3.21 kWh overdrawn"), "{path}: {en}");
            assert!(en.contains("buying 10 kWh leaves 6.79 kWh"), "{path}: {en}");
        }
    })
    .await;
}

/// Issue 11 item 10: days before the meter's data starts are not "missing",
/// and the manual's note (red = not read, not zero use; figures for
/// reference) is on every bill, in every language.
#[tokio::test]
async fn the_bill_starts_with_the_meters_data_and_always_explains_red_days() {
    each_db(async |app: TestApp| {
        let a = app.student_with_meter("alice", &app.meters[0]).await;
        let meter_id = app.count("select meter_id from binding").await;
        let tz = domain::time::CampusTz::default().tz().clone();
        let now = store::now_ms();
        let today = domain::time::local_date(now, &tz);
        let back = |d: jiff::civil::Date| {
            d.first_of_month()
                .yesterday()
                .expect("date")
                .first_of_month()
        };
        let (back1, back2) = (back(today), back(back(today)));
        let back3 = back(back2);
        let ym = |d: jiff::civil::Date| format!("{:04}-{:02}", d.year(), d.month());
        // Registered today (the seed), with read history from two months back.
        let (from, to) = (
            domain::time::day_number(back2),
            domain::time::day_number(back2.last_of_month()),
        );
        for day in from..=to {
            store::students::put_daily_usage(&app.db, meter_id, day, Some(100), now)
                .await
                .expect("usage");
        }
        // A month before any data: no day listed, none missing, the start said.
        let (s, bill) = app
            .get_text(&a, &format!("/bill?month={}", ym(back3)))
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(bill.matches("<tr class=missing>").count(), 0, "{bill}");
        assert!(
            !bill.contains("<tr><td>"),
            "no day before the data starts: {bill}"
        );
        assert!(
            bill.contains("id=data-starts") && bill.contains(&back2.to_string()),
            "{bill}"
        );
        // A fully read month still carries the manual's note, in both languages.
        let (_, bill) = app
            .get_text(&a, &format!("/bill?month={}", ym(back2)))
            .await;
        assert_eq!(bill.matches("<tr class=missing>").count(), 0);
        assert!(!bill.contains("id=data-starts"));
        assert!(
            bill.contains("id=missing-note") && bill.contains("并不代表当日无用电"),
            "{bill}"
        );
        assert!(
            bill.contains("id=reference-note") && bill.contains("仅做参考"),
            "{bill}"
        );
        let en = app
            .get_en(Some(&a), &format!("/bill?month={}", ym(back2)))
            .await
            .text()
            .await
            .expect("body");
        assert!(
            en.contains("id=missing-note") && en.contains("do not mean no electricity was used"),
            "{en}"
        );
        assert!(
            en.contains("id=reference-note") && en.contains("for reference only"),
            "{en}"
        );
        // After the start, a day without a reading is missing as before.
        let (_, bill) = app
            .get_text(&a, &format!("/bill?month={}", ym(back1)))
            .await;
        assert_eq!(
            bill.matches("<tr class=missing>").count(),
            usize::try_from(back1.days_in_month()).expect("days"),
        );
    })
    .await;
}

/// Issue 11 item 16, the markup half (the browser journey clicks it): the
/// tabs are inline SVG, and the unbind question is the page's own dialog
/// over a plain form, so the form still posts without the script.
#[tokio::test]
async fn tabs_are_svg_and_the_unbind_question_is_in_the_page() {
    each_db(async |app: TestApp| {
        let a = app.student_with_meter("alice", &app.meters[0]).await;
        let (s, html) = app.get_text(&a, "/me/meters").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(html.matches("<svg class=ico").count(), 4, "{html}");
        for glyph in ["⌂", "⚡", "☰", "☺"] {
            assert!(!html.contains(glyph), "{glyph} in {html}");
        }
        assert!(
            html.contains("<div class=dialog id=confirm-dialog hidden>"),
            "{html}"
        );
        assert!(html.contains("id=confirm-ok>确定</button>"), "{html}");
        assert!(
            html.contains("/unbind\" data-confirm=\"确定解除绑定？\">"),
            "a plain form asks first: {html}"
        );
        assert!(html.contains("<script src=\"/assets/app.js"), "{html}");
    })
    .await;
}

/// Issue 11 item 8: buying for someone else keeps the chosen area and the
/// typed number after an error, and a number that is not 12 digits gets
/// the bind page's 12-digit hint (full-width digits are accepted), not
/// "not found".
#[tokio::test]
async fn buying_for_someone_else_keeps_what_was_typed() {
    each_db(async |app: TestApp| {
        let a = app.student_with_meter("alice", &app.meters[0]).await;
        let second = app.count("select max(id) from area").await;
        assert_ne!(second, app.area_id, "two areas");
        let lookup = async |area: i64, meter: &str| {
            app.get_text(
                &a,
                &format!(
                    "/buy/order?area_id={area}&meter={}",
                    web::url::encode(meter)
                ),
            )
            .await
        };
        for typed in ["12345678901", "12345678901a", "abc"] {
            let (s, html) = lookup(second, typed).await;
            assert_eq!(s, StatusCode::OK, "{typed}");
            assert!(
                html.contains("电表编号为 12 位数字"),
                "{typed}: the 12-digit hint"
            );
            assert!(!html.contains("未找到该电表"), "{typed}: not 'not found'");
            assert!(
                html.contains(&format!("value=\"{second}\" selected")),
                "{typed}: the area stays chosen"
            );
            assert!(
                html.contains(&format!("value=\"{typed}\"")),
                "{typed}: the number stays typed"
            );
        }
        // 12 digits of no meter: "not found", with area and number kept.
        let (_, html) = lookup(second, "000000000000").await;
        assert!(html.contains("未找到该电表"));
        assert!(html.contains(&format!("value=\"{second}\" selected")));
        assert!(html.contains("value=\"000000000000\""));
        // Full-width digits are normalised as on the bind page.
        let wide: String = app.meters[5]
            .chars()
            .map(|c| char::from_u32(u32::from(c) - u32::from('0') + u32::from('０')).unwrap_or(c))
            .collect();
        let (s, html) = lookup(app.area_id, &wide).await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("id=order-meter"), "full-width number found");
        // Posting the order with a short number gives the hint, not a 404.
        let r = app
            .post(
                &a,
                "/buy/order",
                &[
                    ("csrf", &a.csrf),
                    ("area_id", &second.to_string()),
                    ("meter", "1234"),
                    ("kwh", "10"),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let html = r.text().await.expect("body");
        assert!(html.contains("电表编号为 12 位数字"));
        assert!(html.contains("value=\"1234\""));
        assert_eq!(app.count("select count(*) from orders").await, 0);
    })
    .await;
}

#[tokio::test]
async fn a_retired_meter_cannot_be_bought_for() {
    each_db(async |app: TestApp| {
        let a = app.student_with_meter("alice", &app.meters[0]).await;
        // Retired (issue 14): off its bus, history kept.
        let sql = "update meter set retired_at_ms = 1, bus_id = null where address = $1";
        match &app.db {
            store::Db::Sqlite(p) => sqlx::query(sql)
                .bind(&app.meters[0])
                .execute(p)
                .await
                .map(|_| ()),
            store::Db::Postgres(p) => sqlx::query(sql)
                .bind(&app.meters[0])
                .execute(p)
                .await
                .map(|_| ()),
        }
        .expect("retire");
        let r = app.order(&a, &app.meters[0], "20", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        let html = r.text().await.expect("body");
        assert!(html.contains("该电表已停用，不能再充值"), "{html}");
        assert_eq!(app.count("select count(*) from orders").await, 0);
    })
    .await;
}
