//! The staff console's harness: the server on a manual [`Clock`] with an
//! administrator, an auditor and a cashier, logged-in browsers, and the
//! console's forms (counter sale, shifts, exceptions queue) and fixtures
//! (paid and refused orders, a bound student).

use super::{Server, cookie_pair, csrf_of, set_cookies};
use domain::staff::Role;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use std::fmt::Display;
use store::Db;
use web::staff::Clock;

/// Every test operator's password.
pub const PASSWORD: &str = "correct horse battery";

/// The application with the staff clock the test moves.
pub struct StaffApp {
    server: Server,
    /// The console's clock (starts at the seed's instant).
    pub clock: Clock,
}

impl std::ops::Deref for StaffApp {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

/// A logged-in browser.
pub struct Browser {
    /// Its `Cookie` header.
    pub cookie: String,
    /// The session's CSRF token.
    pub csrf: String,
}

/// Runs `f` on a fresh [`StaffApp`] over each test database in turn.
pub async fn each_db(f: impl AsyncFn(StaffApp)) {
    super::each_db(StaffApp::spawn, f).await;
}

/// Whether `r` redirects to a `Location` starting with `prefix`.
pub fn redirects_to(r: &reqwest::Response, prefix: &str) -> bool {
    r.status() == StatusCode::SEE_OTHER
        && r.headers()[LOCATION]
            .to_str()
            .is_ok_and(|l| l.starts_with(prefix))
}

/// The value of the page's first field `name`.
pub fn field_of(html: &str, name: &str) -> String {
    html.split(&format!("name={name} value=\""))
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("a {name} field in {html}"))
        .to_owned()
}

impl StaffApp {
    /// Serves a seeded database with the three operators of every area.
    pub async fn spawn(db: Db) -> Self {
        let now = store::now_ms();
        let clock = Clock::manual(now);
        let mut settings = web::Settings::new(
            "http://dormwatt.test",
            domain::time::CampusTz::default(),
            false,
        );
        settings.staff.clock = clock.clone();
        let app = StaffApp {
            server: Server::start_at(db, settings, Vec::new(), now).await,
            clock,
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

    /// Creates operator `name` of every area with [`PASSWORD`].
    pub async fn operator(&self, name: &str, role: Role) {
        self.scoped_operator(name, role, &[], &[]).await;
    }

    /// Creates operator `name` limited to `areas` (codes) and `buildings`
    /// (Chinese names); none of either is every area.
    pub async fn scoped_operator(
        &self,
        name: &str,
        role: Role,
        areas: &[&str],
        buildings: &[&str],
    ) {
        let new = store::operators::NewOperator {
            name: name.to_owned(),
            role,
            password_phc: domain::staff::hash_password(PASSWORD, rand::random()).unwrap(),
            area_codes: areas.iter().map(|s| (*s).to_owned()).collect(),
            building_names: buildings.iter().map(|s| (*s).to_owned()).collect(),
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

    /// The operator row of `name`.
    pub async fn operator_id(&self, name: &str) -> i64 {
        store::operators::list(&self.db)
            .await
            .unwrap()
            .into_iter()
            .find(|o| o.name == name)
            .expect("operator")
            .id
    }

    /// `GET path`, as `b` when given.
    pub async fn get(&self, b: Option<&Browser>, path: &str) -> reqwest::Response {
        self.get_with(b.map(|b| b.cookie.as_str()), path).await
    }

    /// `GET path` as `b`: status and body.
    pub async fn text(&self, b: &Browser, path: &str) -> (StatusCode, String) {
        let r = self.get(Some(b), path).await;
        (r.status(), r.text().await.expect("body"))
    }

    /// `POST path` with `form` as it is, as `b`.
    pub async fn post(&self, b: &Browser, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.post_with(&b.cookie, path, form).await
    }

    /// `POST path` as `b` with its CSRF token and `fields`.
    pub async fn submit(
        &self,
        b: &Browser,
        path: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut form = vec![("csrf", b.csrf.as_str())];
        form.extend_from_slice(fields);
        self.post(b, path, &form).await
    }

    /// Tries to log in; the response of the POST.
    pub async fn try_login(&self, name: &str, password: &str) -> reqwest::Response {
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
        self.post_with(
            &cookie,
            "/staff/login",
            &[
                ("csrf", csrf.as_str()),
                ("name", name),
                ("password", password),
            ],
        )
        .await
    }

    /// Logs `name` in with [`PASSWORD`], checking the session cookie.
    pub async fn login(&self, name: &str) -> Browser {
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

    /// The audit rows of `action`, newest first.
    pub async fn audit(&self, action: &str) -> Vec<store::audit::AuditRow> {
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

    // ---- The counter and shifts ----

    /// The row id of meter `address` in area `area_id`.
    pub async fn meter_id(&self, area_id: i64, address: &str) -> i64 {
        store::lookup::by_address(&self.db, area_id, address)
            .await
            .unwrap()
            .expect("meter")
            .meter_id
            .get()
    }

    /// The meter's recent orders, newest first.
    pub async fn orders_of(&self, meter_id: i64) -> Vec<store::orders::Order> {
        store::lookup::recent_orders(&self.db, domain::MeterId::new(meter_id), 50)
            .await
            .unwrap()
    }

    /// The counter page for `meter_id`: its one-time key.
    pub async fn sale_key(&self, b: &Browser, meter_id: i64) -> String {
        let (s, html) = self
            .text(b, &format!("/staff/counter?meter={meter_id}"))
            .await;
        assert_eq!(s, StatusCode::OK, "{html}");
        field_of(&html, "key")
    }

    /// Opens `b`'s shift: its id.
    pub async fn open_shift(&self, b: &Browser) -> i64 {
        let r = self.submit(b, "/staff/shifts/open", &[]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        r.headers()[LOCATION]
            .to_str()
            .unwrap()
            .trim_start_matches("/staff/shifts/")
            .parse()
            .unwrap()
    }

    /// Shift `id` as stored.
    pub async fn shift(&self, id: i64) -> store::shifts::Shift {
        store::shifts::get(&self.db, id)
            .await
            .unwrap()
            .expect("shift")
    }

    /// Closes shift `id` as `b` with `counted` cash.
    pub async fn close_shift(&self, b: &Browser, id: i64, counted: &str) -> reqwest::Response {
        let path = format!("/staff/shifts/{id}/close");
        self.submit(b, &path, &[("counted", counted)]).await
    }

    /// Signs shift `id` off as `b`.
    pub async fn sign_off(&self, b: &Browser, id: i64) -> reqwest::Response {
        self.submit(b, &format!("/staff/shifts/{id}/sign-off"), &[])
            .await
    }

    /// Sells `kwh` on `meter_id` as `b`, paid by `tender`, with form key `key`.
    pub async fn sell(
        &self,
        b: &Browser,
        meter_id: i64,
        kwh: &str,
        tender: &str,
        key: &str,
    ) -> reqwest::Response {
        let id = meter_id.to_string();
        let form = [
            ("meter_id", id.as_str()),
            ("kwh", kwh),
            ("tender", tender),
            ("key", key),
        ];
        self.submit(b, "/staff/counter", &form).await
    }

    // ---- The exceptions queue and move-out ----

    /// A paid order refused by its meter ([`refuse`]) on the first meter
    /// of `area`, at the clock's now; and that meter's number.
    pub async fn refused_order(&self, area: i64, tx_id: &str) -> (String, store::orders::Order) {
        let now = self.clock.now_ms();
        let (address, _) = first_meter(&self.db, area).await;
        let o = paid(&self.db, area, &address, tx_id, now).await;
        (address, refuse(&self.db, o, now).await)
    }

    /// Presses `action` (refund, redeliver, resolve) on order `id` in the
    /// exceptions queue as `b`, with `fields` (a note).
    pub async fn on_exception(
        &self,
        b: &Browser,
        id: impl Display,
        action: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let path = format!("/staff/exceptions/{id}/{action}");
        self.submit(b, &path, fields).await
    }

    /// Settles the move-out of meter `meter` (its number) as `b`.
    pub async fn move_out(&self, b: &Browser, meter: &str, note: &str) -> reqwest::Response {
        let form = [("meter", meter), ("note", note)];
        self.submit(b, "/staff/move-out", &form).await
    }
}

// ---- Order and student fixtures, written to the store directly ----

/// A paid WeChat order for meter `address` of area `area`.
pub async fn paid(
    db: &Db,
    area: i64,
    address: &str,
    tx_id: &str,
    now: i64,
) -> store::orders::Order {
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
pub async fn first_meter(db: &Db, area: i64) -> (String, String) {
    store::on_db!(db, |p| sqlx::query_as::<_, (String, String)>(
        "select m.address, b.name_zh from meter m join room r on r.id = m.room_id
         join building b on b.id = r.building_id where m.area_id = $1 order by m.id limit 1"
    )
    .bind(area)
    .fetch_one(p)
    .await)
    .unwrap()
}

/// Paid order `o` refused by its meter (count below its number): flagged,
/// number given back; as stored then.
pub async fn refuse(db: &Db, o: store::orders::Order, now: i64) -> store::orders::Order {
    store::testing::meter_refuses(
        db,
        &o,
        "w#1",
        [now + 10, now + 11, now + 12],
        "hoarding limit 500.00 kWh",
    )
    .await
    .unwrap();
    store::orders::by_id(db, o.id).await.unwrap().unwrap()
}

/// A demo student `name` bound (by default) to meter `address`.
pub async fn bound_student(
    db: &Db,
    name: &str,
    address: &str,
    now: i64,
) -> store::students::Student {
    let s = store::students::create_demo(db, name, now).await.unwrap();
    store::on_db!(db, |p| sqlx::query(
        "insert into binding (student_id, meter_id, is_default, created_at_ms)
         select $1, id, true, 0 from meter where address = $2"
    )
    .bind(s.id)
    .bind(address)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    s
}
