//! No-cut hours and power-off hours over HTTP (issue 14 item 6, part 3):
//! the `/staff/policy` section sets and clears a scope's window, for
//! policy managers only, audited; bad input (a time not HH:MM, start =
//! end, no weekday, an unknown kind or scope, a wrong token) changes
//! nothing; students see the hours that apply to their meter on the
//! overview. SQLite and — with `DORMWATT_TEST_PG_URL` — PostgreSQL.

mod common;

use common::staff::{StaffApp, bound_student, each_db, first_meter, redirects_to};
use domain::staff::Role;
use reqwest::StatusCode;

const WINDOWS: &str = "/staff/policy/windows";
const CLEAR: &str = "/staff/policy/windows/clear";

async fn building_id(app: &StaffApp, name_zh: &str) -> i64 {
    store::on_db!(&app.db, |p| sqlx::query_scalar::<_, i64>(
        "select id from building where name_zh = $1 and area_id = 1"
    )
    .bind(name_zh)
    .fetch_one(p)
    .await)
    .unwrap()
}

async fn student_cookie(app: &StaffApp, address: &str) -> String {
    let now = store::now_ms();
    let s = bound_student(&app.db, "window-student", address, now).await;
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

async fn windows(app: &StaffApp) -> i64 {
    app.count("select count(*) from policy_window").await
}

const MON_FRI: [(&str, &str); 5] = [
    ("d0", "1"),
    ("d1", "1"),
    ("d2", "1"),
    ("d3", "1"),
    ("d4", "1"),
];

fn form<'a>(
    scope: &'a str,
    kind: &'a str,
    start: &'a str,
    end: &'a str,
    days: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut f = vec![
        ("area_id", "1"),
        ("scope", scope),
        ("kind", kind),
        ("start", start),
        ("end", end),
    ];
    f.extend_from_slice(days);
    f
}

#[tokio::test]
async fn only_policy_managers_set_hours() {
    each_db(async |app| {
        let (_, building) = first_meter(&app.db, 1).await;
        app.scoped_operator("manager", Role::BuildingManager, &[], &[&building])
            .await;
        for name in ["cashier", "auditor", "manager"] {
            let b = app.login(name).await;
            let r = app
                .submit(
                    &b,
                    WINDOWS,
                    &form("area", "power_off", "23:30", "06:00", &MON_FRI),
                )
                .await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{name}");
            for path in [WINDOWS, CLEAR] {
                let r = app.submit(&b, path, &[]).await;
                assert_eq!(r.status(), StatusCode::FORBIDDEN, "{name} {path}");
            }
        }
        assert_eq!(windows(&app).await, 0);
    })
    .await;
}

#[tokio::test]
async fn bad_hours_change_nothing() {
    each_db(async |app| {
        let (_, building) = first_meter(&app.db, 1).await;
        let b = format!("b:{}", building_id(&app, &building).await);
        let admin = app.login("admin").await;
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (form(&b, "power_off", "24:00", "06:00", &MON_FRI), "时:分"),
            (form(&b, "power_off", "7:30", "08:00", &MON_FRI), "时:分"),
            (form(&b, "power_off", "", "08:00", &MON_FRI), "时:分"),
            (form(&b, "no_cut", "22:00", "22:00", &MON_FRI), "同一时间"),
            (form(&b, "no_cut", "22:00", "08:00", &[]), "至少选择一天"),
            (form(&b, "sometimes", "22:00", "08:00", &MON_FRI), "类型"),
            (form("b:999999", "no_cut", "22:00", "08:00", &MON_FRI), "楼"),
            (
                form("elsewhere", "no_cut", "22:00", "08:00", &MON_FRI),
                "楼",
            ),
        ];
        for (f, why) in &cases {
            let r = app.submit(&admin, WINDOWS, f).await;
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{f:?}");
            let html = r.text().await.unwrap();
            assert!(
                html.contains("id=policy-error") && html.contains(why),
                "{why} for {f:?}: {html}"
            );
        }
        // A wrong token: refused before anything is read.
        let mut f = form(&b, "no_cut", "22:00", "08:00", &MON_FRI);
        f.push(("csrf", "not-the-token"));
        let r = app.post(&admin, WINDOWS, &f).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(windows(&app).await, 0);
        assert!(app.audit("policy_window_set").await.is_empty());
        // Clearing what is not set writes nothing.
        let r = app
            .submit(
                &admin,
                CLEAR,
                &[("area_id", "1"), ("scope", &b), ("kind", "no_cut")],
            )
            .await;
        assert!(redirects_to(
            &r,
            "/staff/policy?area_id=1&done=window-cleared"
        ));
        assert!(app.audit("policy_window_cleared").await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn hours_are_set_shown_to_students_and_cleared() {
    each_db(async |app| {
        let (address, building) = first_meter(&app.db, 1).await;
        let b_id = building_id(&app, &building).await;
        let b = format!("b:{b_id}");
        let admin = app.login("admin").await;
        let r = app
            .submit(
                &admin,
                WINDOWS,
                &form(&b, "power_off", "23:30", "06:00", &MON_FRI),
            )
            .await;
        assert!(
            redirects_to(&r, "/staff/policy?area_id=1&done=window"),
            "{:?}",
            r.status()
        );
        let every_day: Vec<(&str, &str)> = ["d0", "d1", "d2", "d3", "d4", "d5", "d6"]
            .into_iter()
            .map(|d| (d, "1"))
            .collect();
        let r = app
            .submit(
                &admin,
                WINDOWS,
                &form("area", "no_cut", "22:00", "08:00", &every_day),
            )
            .await;
        assert!(redirects_to(&r, "/staff/policy?area_id=1&done=window"));
        let audited = app.audit("policy_window_set").await;
        assert_eq!(audited.len(), 2);
        assert!(
            audited
                .iter()
                .any(|a| a.subject == format!("building:{b_id}"))
        );
        assert!(audited.iter().all(|a| a.operator_name == "admin"));
        let (_, html) = app
            .text(&admin, "/staff/policy?area_id=1&done=window")
            .await;
        assert!(html.contains("id=policy-notice"), "{html}");
        assert!(
            html.contains("data-kind=\"power_off\"")
                && html.contains("周一至周五 23:30–06:00（至次日）")
                && html.contains("每天 22:00–08:00（至次日）"),
            "{html}"
        );
        // The student of a meter in that building sees both.
        let cookie = student_cookie(&app, &address).await;
        let overview = async || {
            app.get_with(Some(&cookie), "/overview")
                .await
                .text()
                .await
                .unwrap()
        };
        let html = overview().await;
        assert!(
            html.contains("周一至周五 23:30–06:00（至次日） 定时断电")
                && html.contains("每天 22:00–08:00（至次日） 不因欠费断电"),
            "{html}"
        );
        // Replaced: the new hours, one row in force.
        let r = app
            .submit(
                &admin,
                WINDOWS,
                &form(&b, "power_off", "00:00", "05:30", &MON_FRI),
            )
            .await;
        assert!(redirects_to(&r, "/staff/policy?area_id=1&done=window"));
        assert_eq!(
            app.count("select count(*) from policy_window where cleared_at_ms is null")
                .await,
            2
        );
        assert!(overview().await.contains("周一至周五 00:00–05:30 定时断电"));
        // Cleared: gone for the student, audited.
        let r = app
            .submit(
                &admin,
                CLEAR,
                &[("area_id", "1"), ("scope", &b), ("kind", "power_off")],
            )
            .await;
        assert!(redirects_to(
            &r,
            "/staff/policy?area_id=1&done=window-cleared"
        ));
        assert_eq!(app.audit("policy_window_cleared").await.len(), 1);
        let html = overview().await;
        assert!(!html.contains("定时断电"), "{html}");
        assert!(html.contains("不因欠费断电"), "{html}");
    })
    .await;
}
