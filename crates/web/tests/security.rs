//! Issue 10: security hardening of the pages and the JSON API, over HTTP on
//! 127.0.0.1:0, on SQLite and — with `DORMWATT_TEST_PG_URL` — PostgreSQL.

mod common;

use common::Server;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, HeaderMap};
use store::Db;

/// The application as a site at `public_url`.
struct App(Server);

impl std::ops::Deref for App {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.0
    }
}

struct Browser {
    id: i64,
    cookie: String,
    csrf: String,
}

impl App {
    async fn spawn(db: Db, public_url: &str) -> Self {
        let settings = web::Settings::new(public_url, domain::time::CampusTz::default(), false);
        App(Server::start(db, settings, Vec::new()).await)
    }

    /// A logged-in student (a session made the way the login makes it).
    async fn student(&self, openid: &str) -> Browser {
        let now = store::now_ms();
        let s = store::students::upsert_by_openid(&self.db, openid, false, now)
            .await
            .expect("student");
        let settings = web::Settings::new("http://x", domain::time::CampusTz::default(), false);
        let state = web::AppState::new(self.db.clone(), settings, None);
        let set = web::session::start(&state, s.id).await.expect("session");
        let pair = set
            .to_str()
            .expect("ascii")
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned();
        let token = pair.split_once('=').map(|(_, v)| v).unwrap_or_default();
        let row = store::students::session(&self.db, &web::session::token_hash(token), now)
            .await
            .expect("read session")
            .expect("session row");
        Browser {
            id: s.id,
            cookie: pair,
            csrf: row.csrf_token,
        }
    }

    async fn get(&self, b: Option<&Browser>, path: &str) -> reqwest::Response {
        self.get_with(b.map(|b| b.cookie.as_str()), path).await
    }

    async fn post_form(&self, b: &Browser, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.post_with(&b.cookie, path, form).await
    }

    /// Tries to bind `meter`: what happened.
    async fn bind(&self, b: &Browser, meter: &str, password: &str) -> Bind {
        let area = self.area_id.to_string();
        let r = self
            .post_form(
                b,
                "/bind",
                &[
                    ("csrf", &b.csrf),
                    ("area_id", &area),
                    ("meter", meter),
                    ("password", password),
                ],
            )
            .await;
        if r.status() == StatusCode::SEE_OTHER {
            return Bind::Bound;
        }
        let html = r.text().await.expect("body");
        if html.contains("尝试次数过多") || html.contains("Too many attempts") {
            Bind::Throttled
        } else if html.contains("验证密码错误") || html.contains("Wrong meter number") {
            Bind::Wrong
        } else if html.contains("最多可绑定") {
            Bind::TooMany
        } else {
            panic!("unexpected bind answer: {html:.300}")
        }
    }

    async fn change_password(
        &self,
        b: &Browser,
        binding_id: i64,
        current: &str,
        new: &str,
    ) -> StatusCode {
        self.post_form(
            b,
            &format!("/me/meters/{binding_id}/password"),
            &[
                ("csrf", &b.csrf),
                ("current", current),
                ("new", new),
                ("confirm", new),
            ],
        )
        .await
        .status()
    }

    async fn bindings(&self, b: &Browser) -> Vec<store::students::BoundMeter> {
        store::students::bindings(&self.db, b.id)
            .await
            .expect("bindings")
    }
}

async fn each_db(public_url: &str, f: impl AsyncFn(App)) {
    common::each_db(async |db| App::spawn(db, public_url).await, f).await;
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Item 8: every answer carries the security headers; pages and personal
/// API answers are not cached; the pages need no inline script.
#[tokio::test]
async fn security_headers_on_every_answer() {
    each_db("http://dormwatt.test", async |app: App| {
        let b = app.student("oSecHeaders000000000000001").await;
        for (path, who) in [
            ("/login", None),
            ("/healthz", None),
            ("/", Some(&b)),
            ("/me", Some(&b)),
            ("/me/meters", Some(&b)),
            ("/bind", Some(&b)),
            ("/buy", Some(&b)),
            ("/records", Some(&b)),
            ("/api/orders", Some(&b)),
            ("/no-such-page", None),
        ] {
            let r = app.get(who, path).await;
            let h = r.headers().clone();
            let csp = header(&h, "content-security-policy");
            assert!(csp.contains("script-src 'self';"), "{path}: CSP {csp:?}");
            assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
            assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
            assert_eq!(header(&h, "x-frame-options"), "DENY", "{path}");
            assert_eq!(header(&h, "x-content-type-options"), "nosniff", "{path}");
            assert_eq!(header(&h, "referrer-policy"), "same-origin", "{path}");
            assert_eq!(header(&h, "strict-transport-security"), "", "{path}: http");
            assert_eq!(header(&h, "cache-control"), "no-store", "{path}");
            let html = r.text().await.expect("body");
            for piece in html.split("<script").skip(1) {
                assert!(
                    piece.starts_with(" src="),
                    "{path}: inline script {piece:.60}"
                );
            }
            for handler in [
                " onclick=",
                " onsubmit=",
                " onload=",
                " onchange=",
                "javascript:",
            ] {
                assert!(!html.contains(handler), "{path}: inline handler {handler}");
            }
        }
        let js = app.get(None, "/assets/app.js").await;
        assert_eq!(
            header(js.headers(), "cache-control"),
            "public, max-age=86400"
        );
    })
    .await;
    each_db("https://power.example.edu.cn", async |app: App| {
        let r = app.get(None, "/login").await;
        assert!(
            header(r.headers(), "strict-transport-security").starts_with("max-age="),
            "HSTS with an https public URL"
        );
    })
    .await;
}

/// Item 9: the JSON API refuses cross-site state changes like the pages do.
#[tokio::test]
async fn api_refuses_cross_site_state_changes() {
    each_db("http://dormwatt.test", async |app: App| {
        let b = app.student("oSecOrigin0000000000000001").await;
        let body = serde_json::json!({
            "area_id": app.area_id, "meter": app.meters[0], "kwh": 5
        });
        let send = |extra: Option<(&'static str, &'static str)>| {
            let mut r = app
                .http
                .post(format!("{}/api/orders", app.base))
                .header(COOKIE, &b.cookie)
                .header("X-CSRF-Token", &b.csrf)
                .json(&body);
            if let Some((k, v)) = extra {
                r = r.header(k, v);
            }
            r.send()
        };
        let evil = send(Some(("Origin", "https://evil.example")))
            .await
            .expect("POST");
        assert_eq!(evil.status(), StatusCode::FORBIDDEN, "foreign Origin");
        let cross = send(Some(("Sec-Fetch-Site", "cross-site")))
            .await
            .expect("POST");
        assert_eq!(
            cross.status(),
            StatusCode::FORBIDDEN,
            "Sec-Fetch-Site: cross-site"
        );
        let pay = app
            .http
            .post(format!("{}/api/orders/E1/pay", app.base))
            .header(COOKIE, &b.cookie)
            .header("X-CSRF-Token", &b.csrf)
            .header("Origin", "https://evil.example")
            .send()
            .await
            .expect("POST");
        assert_eq!(pay.status(), StatusCode::FORBIDDEN, "pay, foreign Origin");
        // A tool without Origin (and the same host) is not refused by this check.
        let ok = send(None).await.expect("POST");
        assert_ne!(ok.status(), StatusCode::FORBIDDEN, "no Origin");
    })
    .await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bind {
    Bound,
    Wrong,
    Throttled,
    TooMany,
}

/// Item 2: "four wrong guesses on other meters, then re-bind my own meter"
/// no longer resets the counters.
#[tokio::test]
async fn a_successful_bind_does_not_reset_the_throttle() {
    each_db("http://dormwatt.test", async |app: App| {
        let a = app.student("oSecSpray00000000000000001").await;
        assert_eq!(app.bind(&a, &app.meters[0], "000000").await, Bind::Bound);
        let mut evaluated = 0;
        let mut throttled = 0;
        for round in 0..3 {
            for k in 1..=4 {
                match app.bind(&a, &app.meters[round * 4 + k], "111111").await {
                    Bind::Wrong => evaluated += 1,
                    Bind::Throttled => throttled += 1,
                    other => panic!("{other:?}"),
                }
            }
            let _ = app.bind(&a, &app.meters[0], "000000").await;
        }
        assert!(evaluated <= 5, "{evaluated} wrong guesses were checked");
        assert!(throttled >= 7, "{throttled} throttled");
    })
    .await;
}

/// Item 2: other students' failures on a meter do not lock out its owner.
#[tokio::test]
async fn someone_elses_failures_do_not_lock_out_the_owner() {
    each_db("http://dormwatt.test", async |app: App| {
        let target = &app.meters[5];
        for n in 0..2 {
            let attacker = app.student(&format!("oSecAttacker00000000000{n:04}")).await;
            for _ in 0..4 {
                assert_eq!(app.bind(&attacker, target, "111111").await, Bind::Wrong);
            }
        }
        let owner = app.student("oSecOwner00000000000000001").await;
        assert_eq!(app.bind(&owner, target, "000000").await, Bind::Bound);
    })
    .await;
}

/// Item 2: parallel requests cannot each get a guess, nor exceed the
/// binding cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_binds_respect_the_throttle_and_the_cap() {
    each_db("http://dormwatt.test", async |app: App| {
        let c = app.student("oSecParallel00000000000001").await;
        let tries = (0..16).map(|i| app.bind(&c, &app.meters[i], "000000"));
        let got = futures_join_all(tries).await;
        let bound = app.bindings(&c).await.len();
        assert!(
            bound <= 8,
            "{bound} bindings after 16 parallel binds: {got:?}"
        );
        let d = app.student("oSecParallel00000000000002").await;
        let guesses = (0..16).map(|_| app.bind(&d, &app.meters[20], "111111"));
        let got = futures_join_all(guesses).await;
        let checked = got.iter().filter(|g| **g == Bind::Wrong).count();
        assert!(
            checked <= 5,
            "{checked} of 16 parallel guesses were checked: {got:?}"
        );
    })
    .await;
}

async fn futures_join_all<F: std::future::Future>(fs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in fs {
        set.push(f);
    }
    let mut out = Vec::with_capacity(set.len());
    // Poll all at once: the point is that they race.
    let mut pinned: Vec<_> = set.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.extend(done.into_iter().map(|d| d.expect("done")));
    out
}

/// Item 3: a binder who knows the password sees the others (masked) and
/// removes them by changing it; they are told.
#[tokio::test]
async fn changing_the_password_unbinds_everyone_else() {
    each_db("http://dormwatt.test", async |app: App| {
        let meter = &app.meters[7];
        let owner = app.student("oSecRightful0000000000001").await;
        let intruder = app.student("oSecIntruder0000000000001").await;
        assert_eq!(app.bind(&owner, meter, "000000").await, Bind::Bound);
        assert_eq!(app.bind(&intruder, meter, "000000").await, Bind::Bound);
        let binding = app.bindings(&owner).await[0].binding_id;
        let page = app
            .get(Some(&owner), "/me/meters")
            .await
            .text()
            .await
            .expect("page");
        assert!(
            page.contains(&format!("id=co-binders-{binding}")),
            "the owner sees the co-binder"
        );
        assert_eq!(
            app.change_password(&owner, binding, "000000", "246810")
                .await,
            StatusCode::SEE_OTHER
        );
        assert!(
            app.bindings(&intruder).await.is_empty(),
            "the intruder is unbound"
        );
        assert_eq!(app.bindings(&owner).await.len(), 1, "the owner stays bound");
        let told = store::students::messages(&app.db, intruder.id, 10)
            .await
            .expect("inbox");
        assert!(
            told.iter().any(|m| matches!(
                m.content,
                store::message::MessageContent::Typed(
                    store::message::MessageArgs::UnboundByPasswordChange { .. }
                )
            )),
            "{told:?}"
        );
        // The intruder cannot come back with the old password.
        assert_eq!(app.bind(&intruder, meter, "000000").await, Bind::Wrong);
    })
    .await;
}

/// Item 6: looking up a meter one is not bound to shows only what a payer
/// needs (room masked, no balance) and is throttled, found or not.
#[tokio::test]
async fn meter_lookup_is_masked_and_throttled() {
    each_db("http://dormwatt.test", async |app: App| {
        let meter = &app.meters[9];
        let info = app.meter_info(meter).await;
        let path = |m: &str| format!("/buy/order?area_id={}&meter={m}", app.area_id);
        let owner = app.student("oSecLookupOwner00000000001").await;
        assert_eq!(app.bind(&owner, meter, "000000").await, Bind::Bound);
        let full = app
            .get(Some(&owner), &path(meter))
            .await
            .text()
            .await
            .expect("page");
        assert!(
            full.contains(&format!(" {}</span>", info.room)),
            "a binder sees the room"
        );
        let payer = app.student("oSecLookupPayer00000000001").await;
        let page = app
            .get(Some(&payer), &path(meter))
            .await
            .text()
            .await
            .expect("page");
        assert!(page.contains("id=order-meter"), "a payer can still buy");
        assert!(
            !page.contains(&format!(" {}</span>", info.room)),
            "the room is masked for a payer: {page:.600}"
        );
        let mut throttled = 0;
        for i in 0..30 {
            let html = app
                .get(Some(&payer), &path(&app.meters[(i % 20) + 10]))
                .await
                .text()
                .await
                .expect("page");
            if html.contains("查询电表过于频繁") {
                throttled += 1;
            }
        }
        assert!(throttled >= 10, "{throttled} of 30 look-ups throttled");
        // The binder's own meter is never throttled.
        let again = app
            .get(Some(&owner), &path(meter))
            .await
            .text()
            .await
            .expect("page");
        assert!(again.contains("id=order-meter"));
    })
    .await;
}
