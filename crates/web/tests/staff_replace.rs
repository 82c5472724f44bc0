//! Meter replacement in the console (issue 14 item 3) over HTTP, on SQLite
//! and — with `DORMWATT_TEST_PG_URL` — PostgreSQL: who may open and post
//! the form (role, scope, CSRF, origin), bad input that changes nothing, and
//! a replacement that moves the binding, carries the energy and links the
//! two meters' pages.

mod common;

use common::staff::{StaffApp, bound_student, each_db, first_meter, redirects_to};
use domain::staff::Role;
use reqwest::StatusCode;
use reqwest::header::LOCATION;

/// Meter `address`'s id, with a last reading of register 9000 and balance
/// 1500 (0.01 kWh).
async fn read_meter(app: &StaffApp, address: &str) -> i64 {
    let id = app.meter_id(1, address).await;
    store::on_db!(&app.db, |p| sqlx::query(
        "update meter_state set total_centikwh = 9000, remaining_centikwh = 1500, remaining_at_ms = $2
         where meter_id = $1"
    )
    .bind(id)
    .bind(app.clock.now_ms())
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    id
}

/// Meters in service and the audit rows of replacements.
async fn unchanged(app: &StaffApp) -> (i64, usize) {
    (
        app.count("select count(*) from meter where retired_at_ms is null")
            .await,
        app.audit("meter_replaced").await.len(),
    )
}

#[tokio::test]
async fn only_administrators_of_the_meters_place_may_replace_it() {
    each_db(async |app: StaffApp| {
        let (address, building) = first_meter(&app.db, 1).await;
        let id = read_meter(&app, &address).await;
        let path = format!("/staff/meters/{id}/replace");
        let fields = [
            ("address", "990000000001"),
            ("profile", "dlt645-ref"),
            ("reason", "burnt"),
            ("confirm", "1"),
        ];
        app.scoped_operator("bm", Role::BuildingManager, &["cuc"], &[&building])
            .await;
        app.scoped_operator("east-admin", Role::Administrator, &["demo-east"], &[])
            .await;
        let before = unchanged(&app).await;
        for who in ["cashier", "auditor", "bm", "east-admin"] {
            let b = app.login(who).await;
            let (s, page) = app.text(&b, &path).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{who}: {page}");
            let r = app.submit(&b, &path, &fields).await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{who}");
            // Nor is the link on the meter's page.
            let (_, page) = app.text(&b, &format!("/staff/meters/{id}")).await;
            assert!(!page.contains("id=meter-replace"), "{who}");
        }
        let admin = app.login("admin").await;
        let (s, page) = app.text(&admin, &format!("/staff/meters/{id}")).await;
        assert_eq!(s, StatusCode::OK);
        assert!(page.contains(&format!("href=\"{path}\"")), "{page}");
        // Without the CSRF token, or from another origin: refused.
        let r = app.post(&admin, &path, &fields).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let mut form = vec![("csrf", admin.csrf.as_str())];
        form.extend_from_slice(&fields);
        let r = app
            .http
            .post(format!("{}{path}", app.base))
            .header(reqwest::header::COOKIE, &admin.cookie)
            .header("Origin", "https://evil.example")
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(unchanged(&app).await, before);
    })
    .await;
}

#[tokio::test]
async fn bad_input_is_shown_on_the_form_and_changes_nothing() {
    each_db(async |app: StaffApp| {
        let (address, _) = first_meter(&app.db, 1).await;
        let (other, _) = {
            let second: (String,) = store::on_db!(&app.db, |p| sqlx::query_as(
                "select address from meter where area_id = 1 order by id limit 1 offset 1"
            )
            .fetch_one(p)
            .await)
            .unwrap();
            (second.0, ())
        };
        let id = read_meter(&app, &address).await;
        let path = format!("/staff/meters/{id}/replace");
        let admin = app.login("admin").await;
        let (s, page) = app.text(&admin, &path).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(
            page.contains("id=replace-form") && page.contains("90.00 kWh"),
            "{page}"
        );
        let before = unchanged(&app).await;
        let ok = |k: &'static str, v: &'static str| {
            let mut f = vec![
                ("address", "990000000001"),
                ("profile", "dlt645-ref"),
                ("final", ""),
                ("reason", "烧坏"),
                ("confirm", "1"),
            ];
            f.iter_mut().find(|(n, _)| *n == k).unwrap().1 = v;
            f
        };
        let taken: &'static str = Box::leak(other.into_boxed_str());
        for (fields, says) in [
            (ok("address", "12345"), "12 位"),
            (ok("address", taken), "已经登记过"),
            (ok("profile", "other"), "未知的电表型号"),
            (ok("reason", " "), "请填写更换原因"),
            (ok("final", "89.99"), "低于"),
            (ok("final", "12,5"), "两位小数"),
            (ok("confirm", ""), "请先勾选确认"),
        ] {
            let r = app.submit(&admin, &path, &fields).await;
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{fields:?}");
            let page = r.text().await.unwrap();
            assert!(
                page.contains("id=replace-error") && page.contains(says),
                "{says}: {page}"
            );
        }
        // A paid order on its way to the meter: refused until it settles.
        common::staff::paid(&app.db, 1, &address, "wx-flight", app.clock.now_ms()).await;
        let r = app.submit(&admin, &path, &ok("reason", "烧坏")).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text().await.unwrap().contains("正在进行的订单"));
        assert_eq!(unchanged(&app).await, before);
    })
    .await;
}

#[tokio::test]
async fn a_replacement_moves_the_binding_carries_the_energy_and_links_the_pages() {
    each_db(async |app: StaffApp| {
        let (address, _) = first_meter(&app.db, 1).await;
        let id = read_meter(&app, &address).await;
        let now = app.clock.now_ms();
        let student = bound_student(&app.db, "小明", &address, now).await;
        let admin = app.login("admin").await;
        let r = app
            .submit(
                &admin,
                &format!("/staff/meters/{id}/replace"),
                &[
                    ("address", "9900 0000 0002"),
                    ("profile", "dlt645-ref"),
                    ("final", "92"),
                    ("reason", "烧坏 burnt"),
                    ("confirm", "1"),
                ],
            )
            .await;
        assert!(redirects_to(&r, "/staff/meters/"), "{:?}", r.status());
        let to = r.headers()[LOCATION].to_str().unwrap().to_owned();
        let new_id = app.meter_id(1, "990000000002").await;
        assert_eq!(to, format!("/staff/meters/{new_id}?replaced=1300"));
        let (s, page) = app.text(&admin, &to).await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            page.contains("id=meter-replaced-notice") && page.contains("13.00 kWh"),
            "{page}"
        );
        assert!(
            page.contains(&format!("href=\"/staff/meters/{id}\"")),
            "{page}"
        );
        // The old meter's page stays readable and names its successor.
        let (s, old_page) = app.text(&admin, &format!("/staff/meters/{id}")).await;
        assert_eq!(s, StatusCode::OK);
        assert!(old_page.contains("id=meter-replaced-by"), "{old_page}");
        assert!(!old_page.contains("id=meter-replace>"), "{old_page}");
        let bound: i64 = store::on_db!(&app.db, |p| sqlx::query_scalar(
            "select meter_id from binding where student_id = $1"
        )
        .bind(student.id)
        .fetch_one(p)
        .await)
        .unwrap();
        assert_eq!(bound, new_id);
        let rows = app.audit("meter_replaced").await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].operator_name, "admin");
        assert!(store::ledger::check(&app.db).await.unwrap().is_empty());
        // A second replacement of the retired meter is refused.
        let r = app
            .submit(
                &admin,
                &format!("/staff/meters/{id}/replace"),
                &[
                    ("address", "990000000003"),
                    ("profile", "dlt645-ref"),
                    ("reason", "again"),
                    ("confirm", "1"),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    })
    .await;
}
