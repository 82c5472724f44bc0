//! Campus policy over HTTP (issue 14 item 6): `/staff/policy` for those who
//! may manage policy only, a price scheduled for a building from tomorrow
//! (never today or before), withdrawn while upcoming and not once in force,
//! the low-balance threshold, all audited; students see the scheduled
//! change on the overview and the order page. SQLite and — with
//! `DORMWATT_TEST_PG_URL` — PostgreSQL.

mod common;

use common::staff::{StaffApp, bound_student, each_db, first_meter, redirects_to};
use domain::staff::Role;
use reqwest::StatusCode;

const DAY_MS: i64 = 86_400_000;

async fn count(app: &StaffApp, sql: &'static str) -> i64 {
    app.count(sql).await
}

async fn building_id(app: &StaffApp, name_zh: &str) -> i64 {
    store::on_db!(&app.db, |p| sqlx::query_scalar::<_, i64>(
        "select id from building where name_zh = $1 and area_id = 1"
    )
    .bind(name_zh)
    .fetch_one(p)
    .await)
    .unwrap()
}

/// A logged-in student bound to `address` (a session made the way the
/// login makes it): its `Cookie` header.
async fn student_cookie(app: &StaffApp, address: &str) -> String {
    let now = store::now_ms();
    let s = bound_student(&app.db, "policy-student", address, now).await;
    let settings = web::Settings::new("http://x", domain::time::CampusTz::default(), false);
    let state = web::AppState::new(app.db.clone(), settings, None);
    let set = web::session::start(&state, s.id).await.expect("session");
    set.to_str()
        .expect("ascii")
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn campus_date(ms: i64) -> jiff::civil::Date {
    domain::time::local_date(ms, domain::time::CampusTz::default().tz())
}

#[tokio::test]
async fn only_policy_managers_reach_the_page() {
    each_db(async |app| {
        let (_, building) = first_meter(&app.db, 1).await;
        app.scoped_operator("manager", Role::BuildingManager, &[], &[&building])
            .await;
        let admin = app.login("admin").await;
        let (s, html) = app.text(&admin, "/staff/policy?area_id=1").await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(
            html.contains("id=policy-scopes") && html.contains(&building),
            "{html}"
        );
        assert!(
            html.contains("href=\"/staff/policy\""),
            "the navigation links it"
        );
        for name in ["cashier", "auditor", "manager"] {
            let b = app.login(name).await;
            let (s, _) = app.text(&b, "/staff/policy").await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{name}");
            let tomorrow = campus_date(app.clock.now_ms())
                .tomorrow()
                .unwrap()
                .to_string();
            let r = app
                .submit(
                    &b,
                    "/staff/policy/prices",
                    &[
                        ("area_id", "1"),
                        ("scope", "area"),
                        ("price", "0.6"),
                        ("from", &tomorrow),
                    ],
                )
                .await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{name}");
            // A bare form is refused for the role too, not for its contents.
            for path in ["/staff/policy/prices", "/staff/policy/low-balance"] {
                let r = app.submit(&b, path, &[]).await;
                assert_eq!(r.status(), StatusCode::FORBIDDEN, "{name} {path}");
            }
        }
        assert_eq!(count(&app, "select count(*) from price_schedule").await, 0);
        assert!(app.audit("forbidden").await.len() >= 12);
    })
    .await;
}

#[tokio::test]
async fn a_building_price_from_tomorrow_is_shown_to_its_students_and_audited() {
    each_db(async |app| {
        let now = app.clock.now_ms();
        let (address, building) = first_meter(&app.db, 1).await;
        let b_id = building_id(&app, &building).await;
        let scope = format!("b:{b_id}");
        let admin = app.login("admin").await;
        let today = campus_date(now);
        let tomorrow = today.tomorrow().unwrap();

        // Today (already begun) and yesterday are refused; nothing is stored.
        for day in [today, today.yesterday().unwrap()] {
            let r = app
                .submit(
                    &admin,
                    "/staff/policy/prices",
                    &[
                        ("area_id", "1"),
                        ("scope", &scope),
                        ("price", "0.60"),
                        ("from", &day.to_string()),
                    ],
                )
                .await;
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{day}");
            let html = r.text().await.unwrap();
            assert!(html.contains("id=policy-error"), "{html}");
        }
        // A malformed price is refused too.
        let r = app
            .submit(
                &admin,
                "/staff/policy/prices",
                &[
                    ("area_id", "1"),
                    ("scope", &scope),
                    ("price", "0.123456"),
                    ("from", &tomorrow.to_string()),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        // With a wrong token nothing happens.
        let r = app
            .post(
                &admin,
                "/staff/policy/prices",
                &[
                    ("csrf", "not-the-token"),
                    ("area_id", "1"),
                    ("scope", &scope),
                    ("price", "0.60"),
                    ("from", &tomorrow.to_string()),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(count(&app, "select count(*) from price_schedule").await, 0);

        let r = app
            .submit(
                &admin,
                "/staff/policy/prices",
                &[
                    ("area_id", "1"),
                    ("scope", &scope),
                    ("price", "0.60"),
                    ("from", &tomorrow.to_string()),
                ],
            )
            .await;
        assert!(
            redirects_to(&r, "/staff/policy?area_id=1&done=price"),
            "{:?}",
            r.status()
        );
        let audited = app.audit("price_scheduled").await;
        assert_eq!(audited.len(), 1);
        assert_eq!(audited[0].subject, format!("building:{b_id}"));
        assert_eq!(audited[0].operator_name, "admin");
        let (_, html) = app.text(&admin, "/staff/policy?area_id=1&done=price").await;
        assert!(html.contains("id=policy-notice"), "{html}");
        assert!(html.contains("class=\"upcoming\""), "{html}");
        assert!(
            html.contains(&format!("自 {tomorrow} 起 0.60 元/kWh")),
            "{html}"
        );

        // The student of a meter in that building sees the change coming.
        let cookie = student_cookie(&app, &address).await;
        let want = format!(
            "自 {}月{}日起 0.60 元/kWh",
            tomorrow.month(),
            tomorrow.day()
        );
        let r = app.get_with(Some(&cookie), "/overview").await;
        assert_eq!(r.status(), StatusCode::OK);
        let html = r.text().await.unwrap();
        assert!(
            html.contains("id=price-next") && html.contains(&want),
            "{want} in {html}"
        );
        let r = app
            .get_with(
                Some(&cookie),
                &format!("/buy/order?area_id=1&meter={address}"),
            )
            .await;
        let html = r.text().await.unwrap();
        assert!(
            html.contains("id=price-next") && html.contains(&want),
            "{want} in {html}"
        );

        // Withdrawn while upcoming: gone, audited, the student sees no change.
        let id: i64 = store::on_db!(&app.db, |p| sqlx::query_scalar::<_, i64>(
            "select id from price_schedule"
        )
        .fetch_one(p)
        .await)
        .unwrap();
        let r = app
            .submit(&admin, &format!("/staff/policy/prices/{id}/withdraw"), &[])
            .await;
        assert!(redirects_to(&r, "/staff/policy?area_id=1&done=withdrawn"));
        assert_eq!(count(&app, "select count(*) from price_schedule").await, 0);
        assert_eq!(app.audit("price_withdrawn").await.len(), 1);
        let html = app
            .get_with(Some(&cookie), "/overview")
            .await
            .text()
            .await
            .unwrap();
        assert!(!html.contains("id=price-next"), "{html}");
    })
    .await;
}

#[tokio::test]
async fn a_price_in_force_cannot_be_withdrawn() {
    each_db(async |app| {
        let admin = app.login("admin").await;
        let tomorrow = campus_date(app.clock.now_ms())
            .tomorrow()
            .unwrap()
            .to_string();
        let r = app
            .submit(
                &admin,
                "/staff/policy/prices",
                &[
                    ("area_id", "1"),
                    ("scope", "area"),
                    ("price", "0.58"),
                    ("from", &tomorrow),
                ],
            )
            .await;
        assert!(redirects_to(&r, "/staff/policy"));
        // Two days on the price is in force (and the old session has lapsed).
        app.clock.advance(2 * DAY_MS);
        let admin = app.login("admin").await;
        let (_, html) = app.text(&admin, "/staff/policy?area_id=1").await;
        assert!(html.contains("class=\"in-force\""), "{html}");
        let id: i64 = store::on_db!(&app.db, |p| sqlx::query_scalar::<_, i64>(
            "select id from price_schedule"
        )
        .fetch_one(p)
        .await)
        .unwrap();
        let r = app
            .submit(&admin, &format!("/staff/policy/prices/{id}/withdraw"), &[])
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(count(&app, "select count(*) from price_schedule").await, 1);
        assert!(app.audit("price_withdrawn").await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn the_low_balance_threshold_is_set_and_cleared() {
    each_db(async |app| {
        let (address, _) = first_meter(&app.db, 1).await;
        let meter = domain::MeterId::new(app.meter_id(1, &address).await);
        let admin = app.login("admin").await;
        let r = app
            .submit(
                &admin,
                "/staff/policy/low-balance",
                &[("area_id", "1"), ("scope", "area"), ("kwh", "abc")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let r = app
            .submit(
                &admin,
                "/staff/policy/low-balance",
                &[("area_id", "1"), ("scope", "area"), ("kwh", "12.5")],
            )
            .await;
        assert!(redirects_to(&r, "/staff/policy?area_id=1&done=low"));
        assert_eq!(
            store::policy::low_balance_of(&app.db, meter).await.unwrap(),
            Some(domain::CentiKwh::new(1_250))
        );
        let (_, html) = app.text(&admin, "/staff/policy?area_id=1").await;
        assert!(html.contains("12.50 kWh"), "{html}");
        let r = app
            .submit(
                &admin,
                "/staff/policy/low-balance",
                &[("area_id", "1"), ("scope", "area"), ("kwh", "")],
            )
            .await;
        assert!(redirects_to(&r, "/staff/policy?area_id=1&done=low"));
        assert_eq!(
            store::policy::low_balance_of(&app.db, meter).await.unwrap(),
            Some(domain::CentiKwh::new(500)),
            "cleared: the meter's own again"
        );
        assert_eq!(app.audit("low_balance_policy_set").await.len(), 2);
    })
    .await;
}
