//! The free monthly allowance on `/staff/policy` (issue 14 item 6): the form
//! sets an area's allowance (audited), the "run now" button credits each
//! room once however often it is pressed and the page says so; only policy
//! managers may do either. SQLite and — with `DORMWATT_TEST_PG_URL` —
//! PostgreSQL.

mod common;

use common::staff::{StaffApp, bound_student, each_db, first_meter, redirects_to};
use reqwest::StatusCode;

/// A logged-in student bound to `address`: its `Cookie` header.
async fn student_cookie(app: &StaffApp, address: &str) -> String {
    let now = store::now_ms();
    let s = bound_student(&app.db, "subsidy-student", address, now).await;
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

#[tokio::test]
async fn the_allowance_is_set_and_the_button_credits_each_room_once() {
    each_db(async |app| {
        let admin = app.login("admin").await;
        // Malformed: refused, nothing stored.
        let r = app
            .submit(
                &admin,
                "/staff/policy/subsidy",
                &[("area_id", "1"), ("scope", "area"), ("kwh", "ten")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let r = app
            .submit(
                &admin,
                "/staff/policy/subsidy",
                &[("area_id", "1"), ("scope", "area"), ("kwh", "10")],
            )
            .await;
        assert!(redirects_to(&r, "/staff/policy?area_id=1&done=subsidy"));
        assert_eq!(app.audit("subsidy_policy_set").await.len(), 1);
        let (_, html) = app.text(&admin, "/staff/policy?area_id=1").await;
        assert!(html.contains("id=subsidy-run"), "{html}");
        assert!(html.contains("10.00 kWh"), "{html}");
        let rooms = app
            .count(
                "select count(distinct m.room_id) from meter m
                 where m.area_id = 1 and m.retired_at_ms is null and m.bus_id is not null",
            )
            .await;
        assert!(rooms > 0);
        let r = app
            .submit(&admin, "/staff/policy/subsidy/run", &[("area_id", "1")])
            .await;
        let status = r.status();
        let html = r.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(html.contains("id=policy-notice"), "{html}");
        assert!(
            html.contains(&format!("{rooms} of {rooms} rooms credited now"))
                || html.contains(&format!("{rooms} 间房间中本次发放 {rooms} 间")),
            "{html}"
        );
        assert!(html.contains("id=subsidy-issued"), "{html}");
        // Pressed again: nothing more.
        let r = app
            .submit(&admin, "/staff/policy/subsidy/run", &[("area_id", "1")])
            .await;
        let html = r.text().await.unwrap();
        assert!(
            html.contains(&format!("0 of {rooms} rooms credited now"))
                || html.contains(&format!("{rooms} 间房间中本次发放 0 间")),
            "{html}"
        );
        assert_eq!(app.count("select count(*) from subsidy").await, rooms);
        assert_eq!(app.audit("subsidy_run").await.len(), 1);
        assert!(store::ledger::check(&app.db).await.unwrap().is_empty());
        // The student sees it in the records.
        let (address, _) = first_meter(&app.db, 1).await;
        let cookie = student_cookie(&app, &address).await;
        let r = app.get_with(Some(&cookie), "/records").await;
        assert_eq!(r.status(), StatusCode::OK);
        let html = r.text().await.unwrap();
        assert!(html.contains("每月免费电量 10.00 kWh"), "{html}");
        let r = app.get_with(Some(&cookie), "/overview").await;
        let html = r.text().await.unwrap();
        assert!(
            html.contains("id=allowance") && html.contains("每月免费电量 10.00 kWh"),
            "{html}"
        );
        // The "subsidy issued" report lists the month: rooms and kWh.
        let (s, html) = app.text(&admin, "/staff/reports/subsidy").await;
        assert_eq!(s, StatusCode::OK, "{html}");
        let kwh = format!("{}.00", rooms * 10);
        assert!(html.contains(&kwh), "{kwh}: {html}");
        let r = app.get(Some(&admin), "/staff/reports/subsidy.csv").await;
        assert_eq!(r.status(), StatusCode::OK);
        let csv = r.text().await.unwrap();
        assert!(csv.contains(&kwh), "{csv}");
    })
    .await;
}

#[tokio::test]
async fn only_policy_managers_set_or_run_the_allowance() {
    each_db(async |app| {
        for name in ["cashier", "auditor"] {
            let b = app.login(name).await;
            for (path, form) in [
                (
                    "/staff/policy/subsidy",
                    &[("area_id", "1"), ("scope", "area"), ("kwh", "10")][..],
                ),
                ("/staff/policy/subsidy/run", &[("area_id", "1")][..]),
                ("/staff/policy/subsidy/run", &[][..]),
            ] {
                let r = app.submit(&b, path, form).await;
                assert_eq!(r.status(), StatusCode::FORBIDDEN, "{name} {path}");
            }
        }
        assert_eq!(app.count("select count(*) from subsidy").await, 0);
        assert_eq!(app.audit("subsidy_policy_set").await.len(), 0);
        // A POST without the token is refused before anything.
        let admin = app.login("admin").await;
        let r = app
            .post(&admin, "/staff/policy/subsidy/run", &[("area_id", "1")])
            .await;
        assert_ne!(r.status(), StatusCode::OK);
        assert_eq!(app.count("select count(*) from subsidy").await, 0);
    })
    .await;
}
