//! The web tests' shared harness: the web server on 127.0.0.1:0 over a
//! seeded test database (SQLite, and PostgreSQL when
//! `DORMWATT_TEST_PG_URL` is set), its HTTP client, and the helpers every
//! page test reads answers with. A test file declares `mod common;` and
//! wraps [`Server`] in its own app type (which adds what only its tests
//! need: a mock WeChat, a manual clock, operators…); the staff console's
//! tests share [`staff::StaffApp`].

#![allow(
    dead_code,
    reason = "each test binary compiles this module and uses only part of it"
)]

pub mod staff;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use std::time::Duration;
use store::Db;
use tokio::sync::oneshot;

/// Upper bound on any single request in these tests.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// The application served on a port of its own, over a database seeded
/// with one building per area (two areas keep the area picker honest).
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// A client that does not follow redirects (tests read `Location`).
    pub http: reqwest::Client,
    /// The test database.
    pub db: Db,
    /// The first area's row id.
    pub area_id: i64,
    /// Meters of the first area's building (nameplate numbers), in order.
    pub meters: Vec<String>,
    /// Dropping these stops the servers (the application and any mocks).
    _stops: Vec<oneshot::Sender<()>>,
}

impl Server {
    /// Seeds `db` and serves the application with `settings`; `stops` are
    /// the stop handles of mock servers the settings point at, held as long
    /// as the server.
    pub async fn start(db: Db, settings: web::Settings, stops: Vec<oneshot::Sender<()>>) -> Self {
        Self::start_at(db, settings, stops, store::now_ms()).await
    }

    /// [`Server::start`] with the seed dated `now_ms` (a manual clock's start).
    pub async fn start_at(
        db: Db,
        settings: web::Settings,
        mut stops: Vec<oneshot::Sender<()>>,
        now_ms: i64,
    ) -> Self {
        let plan = store::testing::seed_one_building_per_area(&db, now_ms)
            .await
            .expect("seed");
        let areas = store::campus::areas(&db).await.expect("areas");
        let meters = plan.areas[0].buildings[0]
            .meters()
            .map(|m| m.address.as_str().to_owned())
            .collect();
        let state = web::AppState::new(db.clone(), settings, None);
        let (listener, base, rx) = listen(&mut stops).await;
        tokio::spawn(web::serve(listener, state, async {
            let _ = rx.await;
        }));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("client");
        Server {
            base,
            http,
            db,
            area_id: areas[0].id.get(),
            meters,
            _stops: stops,
        }
    }

    /// `GET path`, with the browser's `cookie` when given.
    pub async fn get_with(&self, cookie: Option<&str>, path: &str) -> reqwest::Response {
        let mut r = self.http.get(format!("{}{path}", self.base));
        if let Some(cookie) = cookie {
            r = r.header(COOKIE, cookie);
        }
        r.send().await.expect("GET")
    }

    /// `POST path` with a form, as the browser with `cookie`.
    pub async fn post_with(
        &self,
        cookie: &str,
        path: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, cookie)
            .form(form)
            .send()
            .await
            .expect("POST")
    }

    /// The registry's view of meter `address` in the first area.
    pub async fn meter_info(&self, address: &str) -> store::campus::MeterInfo {
        let address = domain::MeterAddress::parse(address).expect("a meter number");
        store::campus::meter_by_address(&self.db, domain::AreaId::new(self.area_id), &address)
            .await
            .expect("query")
            .expect("meter")
    }

    /// The one number `sql` selects (a count, an id).
    pub async fn count(&self, sql: &'static str) -> i64 {
        match &self.db {
            Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.expect("count"),
            Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.expect("count"),
        }
    }
}

/// Runs `f` on an app built by `spawn` over each test database in turn.
pub async fn each_db<A>(spawn: impl AsyncFn(Db) -> A, f: impl AsyncFn(A)) {
    for db in store::testing::all().await.expect("test databases") {
        eprintln!("on {:?}", db.backend());
        f(spawn(db).await).await;
    }
}

/// Serves `router` (a mock of someone else's API) on 127.0.0.1:0 until
/// the handle pushed onto `stops` is dropped; its base URL.
pub async fn serve_on_port_0(router: axum::Router, stops: &mut Vec<oneshot::Sender<()>>) -> String {
    let (listener, base, rx) = listen(stops).await;
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = rx.await;
        })
        .await;
    });
    base
}

/// A listener on 127.0.0.1:0, its base URL, and the stop signal of the
/// server that will use it (its sender pushed onto `stops`).
async fn listen(
    stops: &mut Vec<oneshot::Sender<()>>,
) -> (tokio::net::TcpListener, String, oneshot::Receiver<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = oneshot::channel::<()>();
    stops.push(tx);
    (listener, base, rx)
}

/// The answer's `Location`, or "" without one.
pub fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// The answer's `Set-Cookie` headers as they are.
pub fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect()
}

/// `name=value` pairs of the answer's `Set-Cookie` headers that set a
/// value, as a `Cookie` header.
pub fn cookies_of(r: &reqwest::Response) -> String {
    set_cookies(r)
        .iter()
        .filter_map(|v| v.split(';').next())
        .filter(|kv| kv.split_once('=').is_some_and(|(_, v)| !v.is_empty()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The `name=value` pair of cookie `name` among `set`, if one sets a value.
pub fn cookie_pair(set: &[String], name: &str) -> Option<String> {
    set.iter()
        .filter_map(|c| c.split(';').next())
        .find(|kv| kv.starts_with(&format!("{name}=")) && !kv.ends_with('='))
        .map(str::to_owned)
}

/// The page's CSRF token (its first form's `csrf` field).
pub fn csrf_of(html: &str) -> String {
    html.split("name=csrf value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a csrf field")
        .to_owned()
}
