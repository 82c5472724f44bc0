//! Issue 10: security hardening of the pages and the JSON API, over HTTP on
//! 127.0.0.1:0, on SQLite and — with `DORMWATT_TEST_PG_URL` — PostgreSQL.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, HeaderMap};
use store::Db;

struct App {
    base: String,
    http: reqwest::Client,
    db: Db,
    area_id: i64,
    /// Meters of the first building of area 1, in order.
    meters: Vec<String>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

struct Browser {
    cookie: String,
    csrf: String,
}

impl App {
    async fn spawn(db: Db, public_url: &str) -> Self {
        let now = store::now_ms();
        let mut plan = domain::campus::reference_plan();
        for a in &mut plan.areas {
            a.buildings.truncate(1);
        }
        store::campus::seed(&db, &plan, &Default::default(), now)
            .await
            .expect("seed");
        let areas = store::campus::areas(&db).await.expect("areas");
        let meters = plan.areas[0].buildings[0]
            .meters()
            .map(|m| m.address.as_str().to_owned())
            .collect();
        let state = web::AppState::new(
            db.clone(),
            web::Settings::new(public_url, "Asia/Shanghai", false),
            None,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(web::serve(listener, state, async {
            let _ = rx.await;
        }));
        App {
            base,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
            db,
            area_id: areas[0].id,
            meters,
            _stop: tx,
        }
    }

    /// A logged-in student (a session made the way the login makes it).
    async fn student(&self, openid: &str) -> Browser {
        let now = store::now_ms();
        let s = store::students::upsert_by_openid(&self.db, openid, false, now)
            .await
            .expect("student");
        let settings = web::Settings::new("http://x", "Asia/Shanghai", false);
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
            cookie: pair,
            csrf: row.csrf_token,
        }
    }

    async fn get(&self, b: Option<&Browser>, path: &str) -> reqwest::Response {
        let mut r = self.http.get(format!("{}{path}", self.base));
        if let Some(b) = b {
            r = r.header(COOKIE, &b.cookie);
        }
        r.send().await.expect("GET")
    }

    async fn post_form(
        &self,
        b: &Browser,
        path: &str,
        form: &[(&str, &str)],
        ip: &str,
    ) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, &b.cookie)
            .header("X-Forwarded-For", ip)
            .form(form)
            .send()
            .await
            .expect("POST")
    }
}

async fn each_db(public_url: &str, f: impl AsyncFn(App)) {
    for db in store::testing::all().await.expect("test databases") {
        eprintln!("on {:?}", db.backend());
        f(App::spawn(db, public_url).await).await;
    }
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
