//! The staff console over HTTP on 127.0.0.1:0, on SQLite and — when
//! `DORMWATT_TEST_PG_URL` is set — PostgreSQL: login (right, wrong,
//! throttled, disabled), idle and absolute expiry on a clock the test
//! moves, CSRF, role refusal with its audit row, the operators and audit
//! pages, the CSV export and the audit chain.

mod common;

use common::staff::{PASSWORD, StaffApp, bound_student, each_db};
use domain::staff::Role;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION};
use std::collections::BTreeSet;

const MIN: i64 = 60_000;

fn redirects_to_login(r: &reqwest::Response) -> bool {
    r.status() == StatusCode::SEE_OTHER && r.headers()[LOCATION] == "/staff/login"
}

#[tokio::test]
async fn login_right_wrong_disabled_and_logout() {
    each_db(async |app: StaffApp| {
        // Without a session every console page goes to the login page.
        assert!(redirects_to_login(&app.get(None, "/staff").await));
        assert!(redirects_to_login(&app.get(None, "/staff/audit").await));

        let r = app.try_login("admin", "not the password").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.text().await.unwrap().contains("用户名或密码错误"));
        let r = app.try_login("nobody", PASSWORD).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

        let b = app.login("admin").await;
        let (_, home) = app.text(&b, "/staff").await;
        assert!(home.contains("您好，admin"), "{home}");
        assert!(home.contains("管理员"), "{home}");
        // Only pages that exist, each once in the navigation.
        for href in ["/staff/operators", "/staff/audit", "/staff/password"] {
            assert!(home.contains(&format!("href=\"{href}\"")), "{href}: {home}");
        }

        store::operators::disable(
            &app.db,
            "cashier",
            &store::audit::Actor::command_line(),
            app.clock.now_ms(),
        )
        .await
        .unwrap();
        let r = app.try_login("cashier", PASSWORD).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(r.text().await.unwrap().contains("该账号已停用"));
        // A wrong password does not learn that the account is disabled.
        let r = app.try_login("cashier", "wrong password!").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

        let r = app.post(&b, "/staff/logout", &[("csrf", &b.csrf)]).await;
        assert!(redirects_to_login(&r));
        assert!(redirects_to_login(&app.get(Some(&b), "/staff").await));

        let failed = app.audit("login_failed").await;
        assert_eq!(failed.len(), 4, "{failed:?}");
        assert!(failed.iter().all(|r| r.client_ip == "127.0.0.1"));
        assert_eq!(app.audit("login_ok").await.len(), 1);
        assert_eq!(app.audit("logout").await.len(), 1);
        assert_eq!(store::audit::verify(&app.db).await.unwrap().broken, None);
    })
    .await;
}

#[tokio::test]
async fn failed_logins_are_throttled_per_name_with_the_wait_stated() {
    each_db(async |app: StaffApp| {
        for _ in 0..5 {
            let r = app.try_login("admin", "wrong password!").await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        }
        app.clock.advance(MIN);
        // Even the right password waits now.
        let r = app.try_login("admin", PASSWORD).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let html = r.text().await.unwrap();
        assert!(html.contains("请 14 分钟后再试"), "{html}");
        // Another name from the same address is not held up by these five.
        app.login("auditor").await;
        assert_eq!(app.audit("login_throttled").await.len(), 1);
        app.clock.advance(14 * MIN);
        app.login("admin").await;
    })
    .await;
}

#[tokio::test]
async fn sessions_end_when_idle_and_after_twelve_hours() {
    each_db(async |app: StaffApp| {
        let b = app.login("admin").await;
        app.clock.advance(29 * MIN);
        assert_eq!(app.get(Some(&b), "/staff").await.status(), StatusCode::OK);
        app.clock.advance(30 * MIN + 1);
        assert!(
            redirects_to_login(&app.get(Some(&b), "/staff").await),
            "idle"
        );

        let b = app.login("admin").await;
        let started = app.clock.now_ms();
        while app.clock.now_ms() + 25 * MIN < started + 12 * 60 * MIN {
            app.clock.advance(25 * MIN);
            assert_eq!(app.get(Some(&b), "/staff").await.status(), StatusCode::OK);
        }
        app.clock.advance(25 * MIN);
        assert!(
            redirects_to_login(&app.get(Some(&b), "/staff").await),
            "absolute"
        );
    })
    .await;
}

#[tokio::test]
async fn posts_without_the_csrf_token_are_refused() {
    each_db(async |app: StaffApp| {
        let b = app.login("admin").await;
        let r = app.post(&b, "/staff/logout", &[("csrf", "forged")]).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            app.get(Some(&b), "/staff").await.status(),
            StatusCode::OK,
            "still logged in"
        );
        let r = app
            .post(
                &b,
                "/staff/operators",
                &[
                    ("csrf", ""),
                    ("name", "x1"),
                    ("role", "cashier"),
                    ("password", "a long passphrase"),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        // The login form's token must match its cookie.
        let r = app
            .http
            .post(format!("{}/staff/login", app.base))
            .header(COOKIE, "dw_staff_login=abc")
            .form(&[("csrf", "abd"), ("name", "admin"), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        // A cross-site form post is refused before any handler.
        let r = app
            .http
            .post(format!("{}/staff/logout", app.base))
            .header(COOKIE, &b.cookie)
            .header("Origin", "http://evil.test")
            .form(&[("csrf", b.csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(store::operators::list(&app.db).await.unwrap().len(), 3);
    })
    .await;
}

#[tokio::test]
async fn an_auditor_reads_and_exports_but_every_write_is_refused_and_audited() {
    each_db(async |app: StaffApp| {
        let admin = app.login("admin").await;
        // The administrator creates a cashier; a weak password is refused first.
        let create = async |name: &str, pw: &str| {
            let f = [("name", name), ("role", "cashier"), ("password", pw)];
            app.submit(&admin, "/staff/operators", &f).await
        };
        let r = create("li", "1234567890").await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text().await.unwrap().contains("密码太常见"));
        let r = create("li", "short").await;
        assert!(r.text().await.unwrap().contains("至少 10 个字符"));
        let r = create("li", "a long passphrase").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let r = create("li", "a long passphrase").await;
        assert!(r.text().await.unwrap().contains("already exists"));

        let auditor = app.login("auditor").await;
        let (s, home) = app.text(&auditor, "/staff").await;
        assert_eq!(s, StatusCode::OK);
        assert!(home.contains("href=\"/staff/audit\""), "{home}");
        let (s, ops) = app.text(&auditor, "/staff/operators").await;
        assert_eq!(s, StatusCode::OK);
        assert!(ops.contains("li"), "{ops}");
        assert!(
            !ops.contains("action=\"/staff/operators\""),
            "no create form: {ops}"
        );
        assert!(!ops.contains("/disable"), "no disable buttons: {ops}");

        let li = store::operators::list(&app.db)
            .await
            .unwrap()
            .into_iter()
            .find(|o| o.name == "li")
            .unwrap();
        let before = app.audit("forbidden").await.len();
        let r = app
            .post(
                &auditor,
                "/staff/operators",
                &[
                    ("csrf", &auditor.csrf),
                    ("name", "evil"),
                    ("role", "administrator"),
                    ("password", "a long passphrase"),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(r.text().await.unwrap().contains("无权"));
        let r = app
            .post(
                &auditor,
                &format!("/staff/operators/{}/disable", li.id),
                &[("csrf", &auditor.csrf)],
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let refused = app.audit("forbidden").await;
        assert_eq!(refused.len(), before + 2);
        assert_eq!(refused[0].operator_name, "auditor");
        assert!(refused[0].subject.ends_with("/disable"), "{:?}", refused[0]);
        assert!(
            refused[0]
                .after_json
                .as_deref()
                .unwrap()
                .contains("manage_operators")
        );
        let names: Vec<String> = store::operators::list(&app.db)
            .await
            .unwrap()
            .into_iter()
            .filter(|o| o.disabled_at_ms.is_none())
            .map(|o| o.name)
            .collect();
        assert_eq!(
            names,
            ["admin", "auditor", "cashier", "li"],
            "nothing changed"
        );

        // A cashier may not read the audit log (403, audited).
        let cashier = app.login("cashier").await;
        assert_eq!(
            app.get(Some(&cashier), "/staff/audit").await.status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.get(Some(&cashier), "/staff/operators").await.status(),
            StatusCode::FORBIDDEN
        );

        // The auditor searches and exports.
        let (s, page) = app
            .text(&auditor, "/staff/audit?operator=auditor&action=forbidden")
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(page.matches("<tr><td>").count(), 2, "{page}");
        let (_, page) = app
            .text(&auditor, "/staff/audit?action=operator_created")
            .await;
        assert!(page.contains("operator:li"), "{page}");
        let today = jiff::Timestamp::from_millisecond(app.clock.now_ms())
            .unwrap()
            .to_zoned_datetime(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap())
            .date()
            .to_string();
        let (_, page) = app
            .text(
                &auditor,
                &format!("/staff/audit?from={today}&to={today}&action=login_ok"),
            )
            .await;
        assert_eq!(page.matches("<tr><td>").count(), 3, "{page}");
        let (_, page) = app
            .text(&auditor, "/staff/audit?from=2001-01-01&to=2001-01-02")
            .await;
        assert!(page.contains("id=audit-empty"), "{page}");
        let r = app
            .get(Some(&auditor), "/staff/audit.csv?action=forbidden")
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
        let csv = r.text().await.unwrap();
        let lines: Vec<&str> = csv.trim_start_matches('\u{feff}').lines().collect();
        assert_eq!(
            lines[0],
            "seq,at,operator_id,operator,action,client_ip,subject,before,after,prev_hash,hash"
        );
        assert_eq!(lines.len(), 1 + refused.len() + 2, "{csv}");
        assert!(
            lines.iter().skip(1).all(|l| l.contains(",forbidden,")),
            "{csv}"
        );
        assert_eq!(app.audit("audit_exported").await.len(), 1);
        assert_eq!(store::audit::verify(&app.db).await.unwrap().broken, None);
    })
    .await;
}

#[tokio::test]
async fn the_password_is_changed_with_the_old_one_and_other_sessions_end() {
    each_db(async |app: StaffApp| {
        let b = app.login("cashier").await;
        let other = app.login("cashier").await;
        let change = async |old: &str, new: &str, again: &str| {
            let f = [("old", old), ("new", new), ("again", again)];
            app.submit(&b, "/staff/password", &f).await
        };
        let r = change(
            "wrong old one",
            "a new long passphrase",
            "a new long passphrase",
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text().await.unwrap().contains("当前密码不正确"));
        let r = change(PASSWORD, "a new long passphrase", "a different one").await;
        assert!(r.text().await.unwrap().contains("不一致"));
        let r = change(PASSWORD, "qwertyuiop", "qwertyuiop").await;
        assert!(r.text().await.unwrap().contains("密码太常见"));
        let r = change(PASSWORD, "a new long passphrase", "a new long passphrase").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(app.get(Some(&b), "/staff").await.status(), StatusCode::OK);
        assert!(redirects_to_login(&app.get(Some(&other), "/staff").await));
        assert_eq!(
            app.try_login("cashier", PASSWORD).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.try_login("cashier", "a new long passphrase")
                .await
                .status(),
            StatusCode::SEE_OTHER
        );
        assert_eq!(app.audit("password_changed").await.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn every_console_page_renders_in_both_languages() {
    each_db(async |app: StaffApp| {
        let mut b = app.login("admin").await;
        let base_cookie = b.cookie.clone();
        for lang in ["zh", "en"] {
            b.cookie = format!("{base_cookie}; dw_lang={lang}");
            for path in [
                "/staff",
                "/staff/operators",
                "/staff/audit",
                "/staff/password",
                "/staff/nope",
            ] {
                let (s, html) = app.text(&b, path).await;
                assert!(s == StatusCode::OK || path == "/staff/nope", "{path}: {s}");
                assert!(
                    !html.contains(web::i18n::MISSING_MARK),
                    "{lang} {path}: {html}"
                );
            }
            let (_, html) = app.text(&b, "/staff").await;
            let want = if lang == "en" {
                "Hello, admin"
            } else {
                "您好，admin"
            };
            assert!(html.contains(want), "{html}");
            assert!(html.contains("/lang?to="), "the language switch: {html}");
        }
        let r = app.get(None, "/staff/login").await;
        assert!(!r.text().await.unwrap().contains(web::i18n::MISSING_MARK));
        let css = app.get(None, "/staff/assets/staff.css").await;
        assert_eq!(css.status(), StatusCode::OK);
    })
    .await;
}

/// A secret shown once: `r` is a 200 not to be stored; the text of element `id`.
async fn shown_once(r: reqwest::Response, id: &str) -> String {
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let html = r.text().await.unwrap();
    html.split(&format!("id={id}>"))
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap_or_else(|| panic!("#{id} in {html}"))
        .to_owned()
}

/// The lowest meter row id.
async fn first_meter_id(app: &StaffApp) -> i64 {
    app.count("select min(id) from meter").await
}

/// Every building of the seeded campus as (id, area id, Chinese name).
async fn buildings(app: &StaffApp) -> Vec<(i64, i64, String)> {
    store::notices::buildings(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.id, b.area_id, b.name_zh))
        .collect()
}

/// The notice form with no schedule and revision 0.
fn notice_form<'a>(csrf: &'a str, title: &'a str, target: &'a str) -> Form<'a> {
    vec![
        ("csrf", csrf),
        ("revision", "0"),
        ("title", title),
        ("body", "停水通知：周三 9:00–12:00"),
        ("from", ""),
        ("until", ""),
        ("target", target),
    ]
}

/// `f` with field `key` set to `value` (in its place, or added).
fn with<'a>(mut f: Form<'a>, key: &'a str, value: &'a str) -> Form<'a> {
    match f.iter_mut().find(|(k, _)| *k == key) {
        Some(field) => field.1 = value,
        None => f.push((key, value)),
    }
    f
}

#[tokio::test]
async fn a_bad_notice_is_refused_with_its_reason_and_records_nothing() {
    each_db(async |app: StaffApp| {
        let admin = app.login("admin").await;
        let (s, page) = app.text(&admin, "/staff/notices/new").await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(page.contains("推送标记仅作保存"), "{page}");
        let b = buildings(&app).await;
        let first = b[0].0.to_string();
        let long = "长".repeat(61);
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (notice_form(&admin.csrf, " ", "campus"), "请填写标题"),
            (
                notice_form(&admin.csrf, &long, "campus"),
                "标题最多 60 个字",
            ),
            (
                notice_form(&admin.csrf, "t", "buildings"),
                "请选择 1 至 200 栋楼",
            ),
            (notice_form(&admin.csrf, "t", "moon"), "请选择公告对象"),
            (
                {
                    let mut f = notice_form(&admin.csrf, "t", "buildings");
                    f.push(("building", "999999"));
                    f
                },
                "请选择公告对象",
            ),
            (
                with(
                    with(
                        notice_form(&admin.csrf, "t", "campus"),
                        "from",
                        "2026-12-03T10:00",
                    ),
                    "until",
                    "2026-12-03T09:00",
                ),
                "显示结束时间必须晚于开始时间",
            ),
            (
                with(notice_form(&admin.csrf, "t", "campus"), "from", "tomorrow"),
                "时间格式不正确",
            ),
        ];
        for (form, why) in &cases {
            let r = app.post(&admin, "/staff/notices", form).await;
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{why}");
            let html = r.text().await.unwrap();
            assert!(html.contains(why), "{why}: {html}");
        }
        assert!(store::notices::list(&app.db, 10).await.unwrap().is_empty());
        assert!(app.audit("notice_created").await.is_empty());

        let mut f = notice_form(&admin.csrf, "停水", "buildings");
        f.push(("building", &first));
        f.push(("pinned", "1"));
        let r = app.post(&admin, "/staff/notices", &f).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let n = store::notices::list(&app.db, 10).await.unwrap();
        assert_eq!(n.len(), 1);
        assert!(n[0].draft.pinned && !n[0].draft.push);
        assert_eq!(app.audit("notice_created").await.len(), 1);
        let (s, list) = app.text(&admin, "/staff/notices").await;
        assert_eq!(s, StatusCode::OK);
        assert!(list.contains("停水") && list.contains("显示中"), "{list}");

        // An edit from a stale revision is refused and changes nothing.
        let path = format!("/staff/notices/{}", n[0].id);
        let (s, edit) = app.text(&admin, &path).await;
        assert_eq!(s, StatusCode::OK, "{edit}");
        let changed = notice_form(&admin.csrf, "停水（改期）", "campus");
        let r = app
            .post(&admin, &path, &with(changed, "revision", "7"))
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text().await.unwrap().contains("刚被别人修改过"));
        let rev = n[0].revision.to_string();
        let changed = notice_form(&admin.csrf, "停水（改期）", "campus");
        let r = app
            .post(&admin, &path, &with(changed, "revision", &rev))
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let edited = app.audit("notice_updated").await;
        assert_eq!(edited.len(), 1);
        assert!(edited[0].before_json.as_deref().unwrap().contains("停水"));
        assert!(edited[0].after_json.as_deref().unwrap().contains("改期"));
    })
    .await;
}

#[tokio::test]
async fn a_building_manager_publishes_for_their_buildings_only() {
    each_db(async |app: StaffApp| {
        let b = buildings(&app).await;
        let (mine, _, ref name) = b[0];
        let (other, _, _) = *b.iter().find(|x| x.1 != b[0].1).expect("another area");
        app.scoped_operator("lou", Role::BuildingManager, &[], &[name])
            .await;
        let lou = app.login("lou").await;
        let (s, page) = app.text(&lou, "/staff/notices/new").await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            !page.contains("value=campus") && !page.contains(&format!("value=\"{other}\"")),
            "only their buildings are offered: {page}"
        );
        let before = app.audit("forbidden").await.len();
        let other_s = other.to_string();
        let mut f = notice_form(&lou.csrf, "别的楼", "buildings");
        f.push(("building", &other_s));
        let r = app.post(&lou, "/staff/notices", &f).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = app
            .post(
                &lou,
                "/staff/notices",
                &notice_form(&lou.csrf, "全校", "campus"),
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let refused = app.audit("forbidden").await;
        assert_eq!(refused.len(), before + 2);
        assert!(
            refused[0]
                .after_json
                .as_deref()
                .unwrap()
                .contains("publish_notice")
        );
        assert!(store::notices::list(&app.db, 10).await.unwrap().is_empty());

        let mine_s = mine.to_string();
        let mut f = notice_form(&lou.csrf, "本楼停电检修", "buildings");
        f.push(("building", &mine_s));
        let r = app.post(&lou, "/staff/notices", &f).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        // A campus-wide notice of the administrator is not theirs to edit.
        let admin = app.login("admin").await;
        let r = app
            .post(
                &admin,
                "/staff/notices",
                &notice_form(&admin.csrf, "全校", "campus"),
            )
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let all = store::notices::list(&app.db, 10).await.unwrap();
        let campus = all.iter().find(|n| n.draft.title == "全校").unwrap();
        let (s, _) = app
            .text(&lou, &format!("/staff/notices/{}", campus.id))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, list) = app.text(&lou, "/staff/notices").await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            !list.contains(&format!("href=\"/staff/notices/{}\"", campus.id)),
            "{list}"
        );
    })
    .await;
}

#[tokio::test]
async fn staff_reset_a_meters_password_shown_once_and_audited_without_it() {
    each_db(async |app: StaffApp| {
        let meter = first_meter_id(&app).await;
        let path = format!("/staff/meters/{meter}/password");
        let cashier = app.login("cashier").await;
        let before = app.audit("forbidden").await.len();
        let (s, _) = app.text(&cashier, &path).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert_eq!(app.audit("forbidden").await.len(), before + 1);

        let admin = app.login("admin").await;
        let (s, page) = app.text(&admin, &path).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(page.contains("id=reset-form"), "{page}");
        let r = app.post(&admin, &path, &[("csrf", &admin.csrf)]).await;
        let pw = shown_once(r, "reset-password").await;
        assert!(
            pw.len() == 6 && pw.bytes().all(|b| b.is_ascii_digit()),
            "{pw}"
        );
        let t = store::meter_reset::target(&app.db, meter)
            .await
            .unwrap()
            .unwrap();
        assert!(domain::password::verify(&pw, t.password_hash.as_deref()));
        let rows = app.audit("meter_password_reset").await;
        assert_eq!(rows.len(), 1);
        assert!(!format!("{:?}", rows[0]).contains(&pw));
        let r = app
            .post(
                &admin,
                "/staff/meters/99999999/password",
                &[("csrf", &admin.csrf)],
            )
            .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test]
async fn the_dashboard_links_each_figure_to_its_list() {
    each_db(async |app: StaffApp| {
        let admin = app.login("admin").await;
        let (s, home) = app.text(&admin, "/staff").await;
        assert_eq!(s, StatusCode::OK, "{home}");
        for href in [
            "/staff/orders?state=charging",
            "/staff/exceptions",
            "/staff/meters?offline=1",
        ] {
            assert!(home.contains(&format!("href=\"{href}\"")), "{href}: {home}");
        }
        assert!(
            home.contains("今日售电") && home.contains("今天还没有售电"),
            "{home}"
        );
        let meters: i64 = store::on_db!(&app.db, |p| sqlx::query_scalar::<_, i64>(
            "select count(*) from meter"
        )
        .fetch_one(p)
        .await)
        .unwrap();
        assert!(home.contains(&format!("共 {meters} 块电表")), "{home}");
    })
    .await;
}

#[tokio::test]
async fn api_keys_are_made_in_the_console_and_a_revoked_one_is_refused() {
    each_db(async |app: StaffApp| {
        let admin = app.login("admin").await;
        let make = async |name: &str, role: &str| {
            let r = app
                .post(
                    &admin,
                    "/staff/apikeys",
                    &[("csrf", &admin.csrf), ("name", name), ("role", role)],
                )
                .await;
            shown_once(r, "apikey-secret").await
        };
        let till = make("till-1", "cashier").await;
        let reader = make("reader", "auditor").await;
        let r = app
            .post(
                &admin,
                "/staff/apikeys",
                &[
                    ("csrf", &admin.csrf),
                    ("name", "till-1"),
                    ("role", "cashier"),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let (s, list) = app.text(&admin, "/staff/apikeys").await;
        assert_eq!(s, StatusCode::OK);
        assert!(list.contains("till-1") && !list.contains(&till), "{list}");

        let call = async |secret: &str, method: reqwest::Method, path: &str| {
            app.http
                .request(method, format!("{}{path}", app.base))
                .bearer_auth(secret)
                .send()
                .await
                .unwrap()
                .status()
        };
        let get = reqwest::Method::GET;
        let post = reqwest::Method::POST;
        assert_eq!(
            call(&till, get.clone(), "/api/staff/orders/DWNONE").await,
            StatusCode::NOT_FOUND,
            "authorized, no such order"
        );
        let used = app.audit("api_key_used").await;
        assert_eq!(used.len(), 1);
        assert_eq!(used[0].operator_name, "api-key:till-1");
        // An auditor's key reads but does not refund.
        let before = app.audit("forbidden").await.len();
        assert_eq!(
            call(&reader, post.clone(), "/api/staff/orders/DWNONE/refund").await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(app.audit("forbidden").await.len(), before + 1);
        assert_eq!(
            call("dwk_0000", get.clone(), "/api/staff/orders/DWNONE").await,
            StatusCode::UNAUTHORIZED
        );

        let key = store::api_keys::list(&app.db)
            .await
            .unwrap()
            .into_iter()
            .find(|k| k.name == "till-1")
            .unwrap();
        assert!(key.last_used_at_ms.is_some());
        let path = format!("/staff/apikeys/{}/revoke", key.id);
        let r = app.post(&admin, &path, &[("csrf", &admin.csrf)]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let r = app.post(&admin, &path, &[("csrf", &admin.csrf)]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "twice is harmless");
        assert_eq!(app.audit("api_key_revoked").await.len(), 1);
        assert_eq!(
            call(&till, get.clone(), "/api/staff/orders/DWNONE").await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(&till, post, "/api/counter/sales").await,
            StatusCode::UNAUTHORIZED
        );
    })
    .await;
}

/// A form's fields, in order.
type Form<'a> = Vec<(&'a str, &'a str)>;

/// The console router's POST routes (their path patterns), read from
/// `router()` in `src/staff/mod.rs`.
fn console_post_routes() -> BTreeSet<&'static str> {
    let src = include_str!("../src/staff/mod.rs");
    let router = src
        .split("pub fn router()")
        .nth(1)
        .and_then(|s| s.split("\n}\n").next())
        .expect("router()");
    let routes: BTreeSet<&str> = router
        .split(".route(")
        .skip(1)
        .filter(|r| r.contains("post("))
        .map(|r| r.split('"').nth(1).expect("a path"))
        .collect();
    assert_eq!(
        routes.len(),
        router.matches("post(").count(),
        "one POST a path"
    );
    routes
}

/// The rows of the tables a console write adds to, by table.
async fn row_counts(app: &StaffApp) -> Vec<(&'static str, i64)> {
    let mut counts = Vec::new();
    for (table, sql) in [
        ("operator", "select count(*) from operator"),
        ("orders", "select count(*) from orders"),
        ("ledger_transfer", "select count(*) from ledger_transfer"),
        ("job", "select count(*) from job"),
        ("order_flag", "select count(*) from order_flag"),
        ("staff_refund", "select count(*) from staff_refund"),
        ("move_out", "select count(*) from move_out"),
        ("binding", "select count(*) from binding"),
        ("notice", "select count(*) from notice"),
        ("notice_building", "select count(*) from notice_building"),
        ("api_key", "select count(*) from api_key"),
        ("shift", "select count(*) from shift"),
        ("shift_sale", "select count(*) from shift_sale"),
        // Campus policy (issue 14 item 6).
        ("price_schedule", "select count(*) from price_schedule"),
        ("campus_policy", "select count(*) from campus_policy"),
        // No-cut and power-off hours (issue 14 item 6, part 3).
        ("policy_window", "select count(*) from policy_window"),
        // Meter parameter writes (issue 14 item 6, part 4).
        (
            "meter_param_command",
            "select count(*) from meter_param_command",
        ),
    ] {
        counts.push((table, app.count(sql).await));
    }
    counts
}

#[tokio::test]
async fn an_auditor_is_refused_every_console_write_route() {
    each_db(async |app: StaffApp| {
        let now = app.clock.now_ms();
        let admin = app.login("admin").await;
        let b = buildings(&app).await;
        let first = b[0].0.to_string();
        let mut f = notice_form(&admin.csrf, "停水", "buildings");
        f.push(("building", &first));
        assert_eq!(
            app.post(&admin, "/staff/notices", &f).await.status(),
            StatusCode::SEE_OTHER
        );
        let notice = store::notices::list(&app.db, 1).await.unwrap()[0].clone();
        let r = app
            .submit(
                &admin,
                "/staff/apikeys",
                &[("name", "till"), ("role", "cashier")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let key = store::api_keys::list(&app.db).await.unwrap()[0].id;
        let meter = first_meter_id(&app).await;
        let admin_id = app.operator_id("admin").await;
        // A flagged order in the queue and a student to move out.
        let (m1, order) = app.refused_order(1, "wx-audited").await;
        let student = bound_student(&app.db, "stays", &m1, now).await;
        // The cashier's closed shift (to sign off) and open one (to close).
        let cashier = app.login("cashier").await;
        let closed = app.open_shift(&cashier).await;
        let r = app.close_shift(&cashier, closed, "0").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let open = app.open_shift(&cashier).await;
        // Campus policy (issue 14 item 6): a price scheduled for tomorrow.
        let tomorrow = domain::time::local_date(now, domain::time::CampusTz::default().tz())
            .tomorrow()
            .unwrap()
            .to_string();
        let policy_form = [
            ("area_id", "1"),
            ("scope", "area"),
            ("price", "0.60"),
            ("from", tomorrow.as_str()),
        ];
        let r = app
            .submit(&admin, "/staff/policy/prices", &policy_form)
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let price_id = store::policy::schedule(&app.db, domain::AreaId::new(1))
            .await
            .unwrap()[0]
            .id;

        let auditor = app.login("auditor").await;
        // The pages an auditor opens carry no write form but logout.
        for page in [
            "/staff",
            "/staff/notices",
            "/staff/apikeys",
            "/staff/operators",
            "/staff/audit",
        ] {
            let (s, html) = app.text(&auditor, page).await;
            assert_eq!(s, StatusCode::OK, "{page}");
            let posts: Vec<&str> = html
                .split("<form method=post action=\"")
                .skip(1)
                .filter_map(|s| s.split('"').next())
                .filter(|a| *a != "/staff/logout")
                .collect();
            assert!(posts.is_empty(), "{page}: {posts:?}");
        }

        let csrf = auditor.csrf.as_str();
        let meter_id = app.meter_id(1, &m1).await.to_string();
        let revision = notice.revision.to_string();
        let notice_edit = with(notice_form(csrf, "改掉", "campus"), "revision", &revision);
        // Every POST route with a plausible form: (pattern, path, form).
        let routes: Vec<(&str, String, Form<'_>)> = vec![
            (
                "/staff/operators",
                "/staff/operators".to_owned(),
                vec![
                    ("csrf", csrf),
                    ("name", "evil"),
                    ("role", "administrator"),
                    ("password", "a long passphrase"),
                ],
            ),
            (
                "/staff/operators/{id}/disable",
                format!("/staff/operators/{admin_id}/disable"),
                vec![("csrf", csrf)],
            ),
            (
                "/staff/exceptions/{id}/refund",
                format!("/staff/exceptions/{}/refund", order.id),
                vec![("csrf", csrf)],
            ),
            (
                "/staff/exceptions/{id}/redeliver",
                format!("/staff/exceptions/{}/redeliver", order.id),
                vec![("csrf", csrf)],
            ),
            (
                "/staff/exceptions/{id}/resolve",
                format!("/staff/exceptions/{}/resolve", order.id),
                vec![("csrf", csrf), ("note", "looked at it")],
            ),
            (
                "/staff/move-out",
                "/staff/move-out".to_owned(),
                vec![("csrf", csrf), ("meter", &m1), ("note", "moved out")],
            ),
            (
                "/staff/notices",
                "/staff/notices".to_owned(),
                notice_form(csrf, "全校", "campus"),
            ),
            (
                "/staff/notices/{id}",
                format!("/staff/notices/{}", notice.id),
                notice_edit,
            ),
            (
                "/staff/meters/{id}/password",
                format!("/staff/meters/{meter}/password"),
                vec![("csrf", csrf)],
            ),
            (
                "/staff/meters/{id}/replace",
                format!("/staff/meters/{meter}/replace"),
                vec![
                    ("csrf", csrf),
                    ("address", "990000000099"),
                    ("profile", "dlt645-ref"),
                    ("reason", "auditor"),
                    ("confirm", "1"),
                ],
            ),
            (
                "/staff/apikeys",
                "/staff/apikeys".to_owned(),
                vec![
                    ("csrf", csrf),
                    ("name", "evil-key"),
                    ("role", "administrator"),
                ],
            ),
            (
                "/staff/apikeys/{id}/revoke",
                format!("/staff/apikeys/{key}/revoke"),
                vec![("csrf", csrf)],
            ),
            (
                "/staff/counter",
                "/staff/counter".to_owned(),
                vec![
                    ("csrf", csrf),
                    ("meter_id", &meter_id),
                    ("kwh", "30"),
                    ("tender", "cash"),
                    ("key", "k-auditor-1"),
                ],
            ),
            (
                "/staff/shifts/open",
                "/staff/shifts/open".to_owned(),
                vec![("csrf", csrf)],
            ),
            (
                "/staff/shifts/{id}/close",
                format!("/staff/shifts/{open}/close"),
                vec![("csrf", csrf), ("counted", "0")],
            ),
            (
                "/staff/shifts/{id}/sign-off",
                format!("/staff/shifts/{closed}/sign-off"),
                vec![("csrf", csrf)],
            ),
            (
                "/staff/policy/prices",
                "/staff/policy/prices".to_owned(),
                [vec![("csrf", csrf)], policy_form.to_vec()].concat(),
            ),
            (
                "/staff/policy/prices/{id}/withdraw",
                format!("/staff/policy/prices/{price_id}/withdraw"),
                vec![("csrf", csrf)],
            ),
            (
                "/staff/policy/low-balance",
                "/staff/policy/low-balance".to_owned(),
                vec![
                    ("csrf", csrf),
                    ("area_id", "1"),
                    ("scope", "area"),
                    ("kwh", "9"),
                ],
            ),
            (
                "/staff/relay/confirm",
                "/staff/relay/confirm".to_owned(),
                vec![
                    ("csrf", csrf),
                    ("meter", &meter_id),
                    ("action", "trip"),
                    ("reason", "auditor"),
                ],
            ),
            (
                "/staff/relay",
                "/staff/relay".to_owned(),
                vec![
                    ("csrf", csrf),
                    ("meter", &meter_id),
                    ("action", "trip"),
                    ("reason", "auditor"),
                ],
            ),
            // No-cut and power-off hours (issue 14 item 6, part 3).
            (
                "/staff/policy/windows",
                "/staff/policy/windows".to_owned(),
                vec![
                    ("csrf", csrf),
                    ("area_id", "1"),
                    ("scope", "area"),
                    ("kind", "power_off"),
                    ("start", "23:30"),
                    ("end", "06:00"),
                    ("d0", "1"),
                ],
            ),
            (
                "/staff/policy/windows/clear",
                "/staff/policy/windows/clear".to_owned(),
                vec![
                    ("csrf", csrf),
                    ("area_id", "1"),
                    ("scope", "area"),
                    ("kind", "power_off"),
                ],
            ),
            // The free monthly allowance (issue 14 item 6, part 2).
            (
                "/staff/policy/subsidy",
                "/staff/policy/subsidy".to_owned(),
                vec![
                    ("csrf", csrf),
                    ("area_id", "1"),
                    ("scope", "area"),
                    ("kwh", "10"),
                ],
            ),
            (
                "/staff/policy/subsidy/run",
                "/staff/policy/subsidy/run".to_owned(),
                vec![("csrf", csrf), ("area_id", "1")],
            ),
            // Meter parameter writes (issue 14 item 6, part 4).
            (
                "/staff/policy/params",
                "/staff/policy/params".to_owned(),
                vec![
                    ("csrf", csrf),
                    ("building_id", &first),
                    ("power_limit_w", "1000"),
                ],
            ),
            (
                "/staff/policy/params/confirm",
                "/staff/policy/params/confirm".to_owned(),
                vec![
                    ("csrf", csrf),
                    ("building_id", &first),
                    ("power_limit_w", "1000"),
                ],
            ),
        ];
        // A POST route added to the router is added here too (or is one
        // the auditor may use for itself).
        let mut covered: BTreeSet<&str> = routes.iter().map(|(pattern, _, _)| *pattern).collect();
        assert_eq!(covered.len(), routes.len(), "each route once");
        covered.extend(["/staff/login", "/staff/logout", "/staff/password"]);
        assert_eq!(covered, console_post_routes());

        let tables = row_counts(&app).await;
        let audit_rows = app.count("select count(*) from audit_log").await;
        let before = app.audit("forbidden").await.len();
        for (_, path, form) in &routes {
            let r = app.post(&auditor, path, form).await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        }
        // The audit log gets one refusal a route, and nothing else.
        let refused_rows = app.audit("forbidden").await;
        assert_eq!(refused_rows.len(), before + routes.len());
        assert_eq!(
            app.count("select count(*) from audit_log").await,
            audit_rows + routes.len() as i64
        );
        let subjects: BTreeSet<&str> = refused_rows[..routes.len()]
            .iter()
            .inspect(|r| assert_eq!(r.operator_name, "auditor", "{r:?}"))
            .map(|r| r.subject.as_str())
            .collect();
        let paths: BTreeSet<&str> = routes.iter().map(|(_, path, _)| path.as_str()).collect();
        assert_eq!(subjects, paths);
        // Nothing changed.
        assert_eq!(row_counts(&app).await, tables);
        let n = &store::notices::list(&app.db, 10).await.unwrap()[0];
        assert_eq!(
            (n.draft.title.as_str(), n.revision),
            ("停水", notice.revision)
        );
        assert!(
            store::api_keys::list(&app.db).await.unwrap()[0]
                .revoked_at_ms
                .is_none()
        );
        assert_eq!(store::api_keys::list(&app.db).await.unwrap().len(), 1);
        assert!(
            store::meter_reset::target(&app.db, meter)
                .await
                .unwrap()
                .unwrap()
                .password_hash
                .is_none()
        );
        assert!(app.audit("meter_password_reset").await.is_empty());
        assert!(
            store::operators::list(&app.db)
                .await
                .unwrap()
                .iter()
                .all(|o| o.disabled_at_ms.is_none())
        );
        assert_eq!(
            store::orders::by_id(&app.db, order.id)
                .await
                .unwrap()
                .unwrap(),
            order
        );
        assert!(app.audit("order_flags_resolved").await.is_empty());
        assert_eq!(
            store::students::bindings(&app.db, student.id)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(app.shift(open).await.is_open());
        let signed = app.shift(closed).await;
        assert_eq!(signed.signed_off_by, None);
    })
    .await;
}

#[tokio::test]
async fn the_notices_reset_and_api_key_pages_render_in_both_languages() {
    each_db(async |app: StaffApp| {
        let mut b = app.login("admin").await;
        let mut f = notice_form(&b.csrf, "停水", "campus");
        f.push(("pinned", "1"));
        assert_eq!(
            app.post(&b, "/staff/notices", &f).await.status(),
            StatusCode::SEE_OTHER
        );
        let notice = store::notices::list(&app.db, 1).await.unwrap()[0].id;
        let meter = first_meter_id(&app).await;
        let base_cookie = b.cookie.clone();
        for lang in ["zh", "en"] {
            b.cookie = format!("{base_cookie}; dw_lang={lang}");
            for path in [
                "/staff/notices".to_owned(),
                "/staff/notices/new".to_owned(),
                format!("/staff/notices/{notice}"),
                format!("/staff/meters/{meter}/password"),
                "/staff/apikeys".to_owned(),
            ] {
                let (s, html) = app.text(&b, &path).await;
                assert_eq!(s, StatusCode::OK, "{path}");
                assert!(
                    !html.contains(web::i18n::MISSING_MARK),
                    "{lang} {path}: {html}"
                );
            }
            let (_, html) = app.text(&b, "/staff/notices").await;
            let want = if lang == "en" { "Showing" } else { "显示中" };
            assert!(html.contains(want), "{html}");
        }
    })
    .await;
}
