//! The staff console's meter look-up, counter sale, receipt and shifts
//! (issue 13 item 3) over HTTP on 127.0.0.1:0, on SQLite and — when
//! `DORMWATT_TEST_PG_URL` is set — PostgreSQL.

mod common;

use common::staff::{Browser, StaffApp, each_db};
use domain::staff::Role;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION};

/// The cashier logged in with an open shift, meter `address` of area 1
/// and its sale form's key: (browser, shift, meter, key).
async fn at_the_counter(app: &StaffApp, address: &str) -> (Browser, i64, i64, String) {
    let cashier = app.login("cashier").await;
    let shift = app.open_shift(&cashier).await;
    let m = app.meter_id(1, address).await;
    let key = app.sale_key(&cashier, m).await;
    (cashier, shift, m, key)
}

/// Sells as [`StaffApp::sell`] and expects the redirect to the receipt:
/// its path.
async fn sold(app: &StaffApp, b: &Browser, m: i64, kwh: &str, tender: &str, key: &str) -> String {
    let r = app.sell(b, m, kwh, tender, key).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    r.headers()[LOCATION].to_str().unwrap().to_owned()
}

/// Expects `r` to be the form again (422) saying `msg`.
async fn refused_with(r: reqwest::Response, msg: &str) {
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert!(html.contains(msg), "{msg}: {html}");
}

/// Whether `html` links shift `id`'s page.
fn links_shift(html: &str, id: i64) -> bool {
    html.contains(&format!("href=\"/staff/shifts/{id}\""))
}

/// `GET path` as `b` in language `lang` (`Accept-Language`): status and body.
async fn text_in(app: &StaffApp, b: &Browser, path: &str, lang: &str) -> (StatusCode, String) {
    let r = app
        .http
        .get(format!("{}{path}", app.base))
        .header(COOKIE, &b.cookie)
        .header("accept-language", lang)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test]
async fn a_sale_with_bad_input_records_nothing() {
    each_db(async |app: StaffApp| {
        app.scoped_operator("cuc-cashier", Role::Cashier, &["cuc"], &[])
            .await;
        let cashier = app.login("cuc-cashier").await;
        let m = app.meter_id(1, "201701010001").await;
        let key = app.sale_key(&cashier, m).await;
        // No open shift yet.
        let r = app.sell(&cashier, m, "30", "cash", &key).await;
        refused_with(r, "您还没有开班").await;
        app.open_shift(&cashier).await;
        for (kwh, msg) in [
            ("2.5", "请输入整数 kWh"),
            ("abc", "请输入整数 kWh"),
            ("0", "至少 1 kWh"),
            ("-3", "至少 1 kWh"),
            ("100000", "每单最多"),
            ("", "请输入整数 kWh"),
        ] {
            let r = app.sell(&cashier, m, kwh, "cash", &key).await;
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{kwh}");
            let html = r.text().await.unwrap();
            assert!(html.contains(msg), "{kwh}: {html}");
        }
        let r = app.sell(&cashier, m, "30", "bitcoin", &key).await;
        refused_with(r, "请选择付款方式").await;
        let r = app.sell(&cashier, 999_999, "30", "cash", &key).await;
        refused_with(r, "没有找到这块电表").await;
        let r = app
            .submit(
                &cashier,
                "/staff/counter",
                &[("kwh", "30"), ("tender", "cash"), ("key", &key)],
            )
            .await;
        refused_with(r, "请先查找并选择电表").await;
        let r = app.sell(&cashier, m, "30", "cash", "").await;
        refused_with(r, "表单已失效").await;
        assert!(app.orders_of(m).await.is_empty(), "nothing sold");
        // A meter outside the cashier's areas: 403, audited, nothing sold.
        let other = app.meter_id(2, "201702010001").await;
        let forbidden = app.audit("forbidden").await.len();
        let r = app.sell(&cashier, other, "30", "cash", &key).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(app.audit("forbidden").await.len(), forbidden + 1);
        assert!(app.orders_of(other).await.is_empty());
        assert!(app.audit("counter_sale").await.is_empty());
        // The same form with a good amount sells, once.
        sold(&app, &cashier, m, "30", "cash", &key).await;
        assert_eq!(app.orders_of(m).await.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_double_submission_sells_once_and_shows_the_same_receipt() {
    each_db(async |app: StaffApp| {
        let (cashier, shift, m, key) = at_the_counter(&app, "201701010002").await;
        let first = sold(&app, &cashier, m, "30", "cash", &key).await;
        let second = sold(&app, &cashier, m, "30", "cash", &key).await;
        assert_eq!(first, second);
        let orders = app.orders_of(m).await;
        assert_eq!(orders.len(), 1, "sold once");
        assert_eq!(app.audit("counter_sale").await.len(), 1);
        let s = app.shift(shift).await;
        assert_eq!(s.sales_count, 1);
        // The same key for another sale is refused, nothing sold.
        let r = app.sell(&cashier, m, "31", "cash", &key).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.orders_of(m).await.len(), 1);
        // A fresh form sells again.
        let key2 = app.sale_key(&cashier, m).await;
        assert_ne!(key, key2);
        sold(&app, &cashier, m, "5", "card", &key2).await;
        assert_eq!(app.orders_of(m).await.len(), 2);
    })
    .await;
}

#[tokio::test]
async fn the_receipt_and_the_cash_up() {
    each_db(async |app: StaffApp| {
        let (cashier, shift, m, key) = at_the_counter(&app, "201701010003").await;
        let receipt = sold(&app, &cashier, m, "30", "cash", &key).await;
        let o = app.orders_of(m).await.remove(0);
        let (s, html) = app.text(&cashier, &receipt).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        for want in [
            o.out_trade_no.as_str(),
            "201701010003",
            "¥15.90",
            "现金",
            "id=receipt-operator>cashier<",
            "data:image/svg+xml,",
            "加电中",
            "/status.json",
        ] {
            assert!(html.contains(want), "{want}: {html}");
        }
        assert!(html.contains("id=receipt-kwh>30<"), "{html}");
        let (s, json) = app.text(&cashier, &format!("{receipt}/status.json")).await;
        assert_eq!(s, StatusCode::OK);
        assert!(json.contains("\"state\":\"charging\""), "{json}");
        // The cash-up: 30 kWh and ¥15.90 in cash; 15.00 counted is 0.90 short.
        let r = app.close_shift(&cashier, shift, "15元").await;
        refused_with(r, "请输入清点的现金金额").await;
        let r = app.close_shift(&cashier, shift, "15.00").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let (_, page) = app.text(&cashier, &format!("/staff/shifts/{shift}")).await;
        assert!(page.contains("id=shift-expected>¥15.90<"), "{page}");
        assert!(page.contains("id=shift-counted>¥15.00<"), "{page}");
        assert!(page.contains("¥-0.90"), "{page}");
        assert!(page.contains("<td>30.00</td>"), "{page}");
        assert!(
            !page.contains(&format!("action=\"/staff/shifts/{shift}/close\"")),
            "read-only: {page}"
        );
        // Closing again changes nothing.
        let r = app.close_shift(&cashier, shift, "99").await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let stored = app.shift(shift).await;
        assert_eq!(stored.counted_cash_fen, Some(domain::Fen::new(1500)));
        // Selling into the closed shift: no open shift, nothing sold.
        let key = app.sale_key(&cashier, m).await;
        let r = app.sell(&cashier, m, "1", "cash", &key).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.orders_of(m).await.len(), 1);
        // The administrator signs it off, once.
        let admin = app.login("admin").await;
        let (_, page) = app.text(&admin, &format!("/staff/shifts/{shift}")).await;
        assert!(page.contains("id=shift-sign-off"), "{page}");
        let r = app.sign_off(&admin, shift).await;
        assert_eq!(r.status(), StatusCode::OK);
        let r = app.sign_off(&admin, shift).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.audit("shift_signed_off").await.len(), 1);
        // A cashier cannot sign off.
        let r = app.sign_off(&cashier, shift).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    })
    .await;
}

#[tokio::test]
async fn a_building_manager_is_refused_another_buildings_meter_with_an_audit_row() {
    each_db(async |app: StaffApp| {
        let plan = domain::campus::reference_plan();
        let building = plan.areas[0].buildings[0].name_zh.clone();
        app.scoped_operator("bm", Role::BuildingManager, &["cuc"], &[&building])
            .await;
        let bm = app.login("bm").await;
        let mine = app.meter_id(1, "201701010001").await;
        let (s, html) = app.text(&bm, &format!("/staff/meters/{mine}")).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains("201701010001"), "{html}");
        assert!(!html.contains("id=meter-sell"), "{html}");
        let other = app.meter_id(2, "201702010001").await;
        let before = app.audit("forbidden").await.len();
        let (s, _) = app.text(&bm, &format!("/staff/meters/{other}")).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let rows = app.audit("forbidden").await;
        assert_eq!(rows.len(), before + 1);
        assert_eq!(rows[0].operator_name, "bm");
        assert_eq!(rows[0].subject, format!("/staff/meters/{other}"));
        // The look-ups list only the manager's meters.
        let (_, found) = app
            .text(&bm, "/staff/meters?area=2&number=201702010001")
            .await;
        assert!(found.contains("没有找到"), "{found}");
        let (_, json) = app.text(&bm, "/staff/meters/suggest?q=2017020").await;
        assert_eq!(json, "[]");
        let (_, json) = app.text(&bm, "/staff/meters/suggest?q=2017010100").await;
        assert!(json.contains("201701010001"), "{json}");
        // No counter for a building manager.
        let (s, _) = app.text(&bm, "/staff/counter").await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    })
    .await;
}

#[tokio::test]
async fn an_auditor_cannot_sell_or_keep_a_shift() {
    each_db(async |app: StaffApp| {
        let auditor = app.login("auditor").await;
        let m = app.meter_id(1, "201701010004").await;
        let (s, _) = app
            .text(&auditor, &format!("/staff/counter?meter={m}"))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let r = app.sell(&auditor, m, "30", "cash", "k-auditor-1").await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = app.submit(&auditor, "/staff/shifts/open", &[]).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(app.orders_of(m).await.is_empty());
        assert!(
            store::shifts::list(&app.db, None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        // They read the shifts and meters, without write controls.
        let (s, page) = app.text(&auditor, "/staff/shifts").await;
        assert_eq!(s, StatusCode::OK);
        assert!(!page.contains("id=shift-open"), "{page}");
        let (s, page) = app.text(&auditor, &format!("/staff/meters/{m}")).await;
        assert_eq!(s, StatusCode::OK);
        assert!(!page.contains("id=meter-sell"), "{page}");
        let (_, home) = app.text(&auditor, "/staff").await;
        assert!(!home.contains("href=\"/staff/counter\""), "{home}");
        assert!(home.contains("href=\"/staff/shifts\""), "{home}");
    })
    .await;
}

#[tokio::test]
async fn the_counter_pages_render_in_both_languages_and_list_offline_meters() {
    each_db(async |app: StaffApp| {
        let (cashier, shift, m, key) = at_the_counter(&app, "201701010005").await;
        let receipt = sold(&app, &cashier, m, "3", "card", &key).await;
        let admin = app.login("admin").await;
        let pages = [
            "/staff/meters".to_owned(),
            "/staff/meters?offline=1".to_owned(),
            "/staff/meters?q=20170101".to_owned(),
            format!("/staff/meters/{m}"),
            "/staff/counter".to_owned(),
            format!("/staff/counter?meter={m}"),
            "/staff/counter?area=1&number=2017".to_owned(),
            receipt.clone(),
            "/staff/shifts".to_owned(),
            format!("/staff/shifts/{shift}"),
        ];
        for lang in ["zh-CN", "en"] {
            for p in &pages {
                let (status, html) = text_in(&app, &admin, p, lang).await;
                assert!(
                    status == StatusCode::OK || status == StatusCode::UNPROCESSABLE_ENTITY,
                    "{lang} {p}: {status}"
                );
                assert!(!html.contains("⟦missing"), "{lang} {p}: {html}");
            }
        }
        let (_, en) = text_in(&app, &admin, &receipt, "en").await;
        assert!(en.contains("Counter · Card"), "{en}");
        // Nothing has been polled in the test: every meter is "never reached"
        // and listed as offline.
        let (_, offline) = app.text(&admin, "/staff/meters?offline=1").await;
        assert!(offline.contains("201701010005"), "{offline}");
        // The 12-digit rule and "not found" are stated.
        let (_, bad) = app.text(&admin, "/staff/meters?area=1&number=12345").await;
        assert!(bad.contains("电表号为 12 位数字"), "{bad}");
        let (_, none) = app
            .text(&admin, "/staff/meters?area=1&number=209999999999")
            .await;
        assert!(none.contains("没有找到"), "{none}");
    })
    .await;
}

#[tokio::test]
async fn shifts_are_read_by_their_cashier_and_by_readers_of_their_areas() {
    each_db(async |app: StaffApp| {
        app.scoped_operator("cuc-cashier", Role::Cashier, &["cuc"], &[])
            .await;
        app.scoped_operator("east-auditor", Role::Auditor, &["demo-east"], &[])
            .await;
        let cuc = app.login("cuc-cashier").await;
        let cuc_shift = app.open_shift(&cuc).await;
        let cashier = app.login("cashier").await;
        let any_shift = app.open_shift(&cashier).await;
        // A cashier reads their own shift only.
        let (s, _) = app
            .text(&cashier, &format!("/staff/shifts/{cuc_shift}"))
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (_, list) = app.text(&cashier, "/staff/shifts").await;
        assert!(links_shift(&list, any_shift), "{list}");
        assert!(!links_shift(&list, cuc_shift), "{list}");
        // An auditor of another area does not see the cuc cashier's shift,
        // but sees the one of a cashier of every area.
        let east = app.login("east-auditor").await;
        let (s, _) = app.text(&east, &format!("/staff/shifts/{cuc_shift}")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = app.text(&east, &format!("/staff/shifts/{any_shift}")).await;
        assert_eq!(s, StatusCode::OK);
        // The auditor of every area sees both.
        let auditor = app.login("auditor").await;
        let (_, list) = app.text(&auditor, "/staff/shifts").await;
        assert!(links_shift(&list, cuc_shift), "{list}");
        assert!(links_shift(&list, any_shift), "{list}");
        // No close form for someone else's shift, and a close is refused.
        let (_, page) = app
            .text(&auditor, &format!("/staff/shifts/{cuc_shift}"))
            .await;
        assert!(!page.contains("/close\""), "{page}");
        let r = app.close_shift(&auditor, cuc_shift, "0").await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(app.shift(cuc_shift).await.is_open());
    })
    .await;
}

#[tokio::test]
async fn two_submissions_of_one_form_at_once_sell_once() {
    each_db(async |app: StaffApp| {
        let (cashier, _, m, key) = at_the_counter(&app, "201701010006").await;
        let (a, b) = tokio::join!(
            app.sell(&cashier, m, "30", "cash", &key),
            app.sell(&cashier, m, "30", "cash", &key)
        );
        assert_eq!(a.status(), StatusCode::SEE_OTHER);
        assert_eq!(b.status(), StatusCode::SEE_OTHER);
        assert_eq!(a.headers()[LOCATION], b.headers()[LOCATION]);
        assert_eq!(app.orders_of(m).await.len(), 1);
        assert_eq!(app.audit("counter_sale").await.len(), 1);
    })
    .await;
}
