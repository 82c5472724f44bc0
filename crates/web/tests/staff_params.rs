//! Meter parameters over HTTP (issue 14 item 6 part 4):
//! `/staff/policy/params` for policy managers only; bad input, a forged
//! token or a cross-site post queue nothing; the confirmation names the
//! count of the building's meters; the confirmed write queues one audited
//! row per meter and the results list them. SQLite and — with
//! `DORMWATT_TEST_PG_URL` — PostgreSQL.

mod common;

use common::staff::{StaffApp, each_db, first_meter, redirects_to};
use domain::staff::Role;
use reqwest::StatusCode;

async fn building_id(app: &StaffApp, name_zh: &str) -> i64 {
    store::on_db!(&app.db, |p| sqlx::query_scalar::<_, i64>(
        "select id from building where name_zh = $1 and area_id = 1"
    )
    .bind(name_zh)
    .fetch_one(p)
    .await)
    .unwrap()
}

async fn writes(app: &StaffApp) -> i64 {
    app.count("select count(*) from meter_param_command").await
}

#[tokio::test]
async fn the_confirmation_names_the_count_and_the_write_queues_one_per_meter() {
    each_db(async |app| {
        let (_, building) = first_meter(&app.db, 1).await;
        let b = building_id(&app, &building).await;
        let meters = store::meter_params::meters_of_building(&app.db, b)
            .await
            .unwrap()
            .len();
        assert!(meters > 1);
        let admin = app.login("admin").await;
        let (s, html) = app.text(&admin, "/staff/policy").await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("href=\"/staff/policy/params\""), "linked");
        let (s, html) = app.text(&admin, "/staff/policy/params").await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains("id=params-form") && html.contains(&building));
        let bs = b.to_string();
        let fields = [
            ("building_id", bs.as_str()),
            ("power_limit_w", "1500"),
            ("malicious_step_w", ""),
            ("malicious_pf", "0.850"),
        ];
        let r = app
            .submit(&admin, "/staff/policy/params/confirm", &fields)
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let html = r.text().await.unwrap();
        assert!(
            html.contains(&format!("将向 {meters} 块电表写入参数")),
            "{html}"
        );
        assert_eq!(writes(&app).await, 0, "the confirmation queues nothing");
        let r = app.submit(&admin, "/staff/policy/params", &fields).await;
        assert!(
            redirects_to(&r, "/staff/policy/params?building_id="),
            "{r:?}"
        );
        let to = r.headers()[reqwest::header::LOCATION]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(writes(&app).await, meters as i64);
        let audit = app.audit("meter_params_requested").await;
        assert_eq!(audit.len(), meters.min(100));
        assert_eq!(audit[0].operator_name, "admin");
        let (s, html) = app.text(&admin, &to).await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("id=params-results"), "{html}");
        assert_eq!(html.matches("class=\"queued\"").count(), meters, "{html}");
        assert!(
            html.contains("1500 W") && html.contains("PF 0.850"),
            "{html}"
        );
    })
    .await;
}

#[tokio::test]
async fn bad_input_a_forged_token_or_a_role_without_policy_queues_nothing() {
    each_db(async |app| {
        let (_, building) = first_meter(&app.db, 1).await;
        let b = building_id(&app, &building).await.to_string();
        let admin = app.login("admin").await;
        for (limit, step, pf, says) in [
            ("", "", "", "请至少填写一项参数"),
            ("99", "", "", "功率限值须在 100 到 10000 W 之间"),
            ("10001", "", "", "功率限值须在 100 到 10000 W 之间"),
            ("", "99", "", "恶性负载功率增量须在 100 到 5000 W 之间"),
            ("", "5001", "", "恶性负载功率增量须在 100 到 5000 W 之间"),
            ("", "", "0.500", "功率因数阈值须大于 0.500 且小于 1.000"),
            ("", "", "1.000", "功率因数阈值须大于 0.500 且小于 1.000"),
            ("", "", "0.8505", "功率因数阈值须大于 0.500 且小于 1.000"),
            ("1.5kW", "", "", "功率须为整数瓦数"),
        ] {
            for path in ["/staff/policy/params/confirm", "/staff/policy/params"] {
                let r = app
                    .submit(
                        &admin,
                        path,
                        &[
                            ("building_id", b.as_str()),
                            ("power_limit_w", limit),
                            ("malicious_step_w", step),
                            ("malicious_pf", pf),
                        ],
                    )
                    .await;
                assert_eq!(
                    r.status(),
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "{path} {limit} {step} {pf}"
                );
                let body = r.text().await.unwrap();
                assert!(body.contains(says), "{path}: {body}");
            }
        }
        let r = app
            .submit(
                &admin,
                "/staff/policy/params",
                &[("building_id", "999999"), ("power_limit_w", "1000")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(writes(&app).await, 0);
        let ok = [("building_id", b.as_str()), ("power_limit_w", "1000")];
        // A forged token, a cross-site post.
        let mut forged = vec![("csrf", "forged")];
        forged.extend_from_slice(&ok);
        let r = app.post(&admin, "/staff/policy/params", &forged).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let mut good = vec![("csrf", admin.csrf.as_str())];
        good.extend_from_slice(&ok);
        let r = app
            .http
            .post(format!("{}/staff/policy/params", app.base))
            .header(reqwest::header::COOKIE, &admin.cookie)
            .header("Origin", "http://evil.test")
            .form(&good)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        // Roles without policy management, and a building manager of
        // another building: refused and audited.
        app.scoped_operator("manager", Role::BuildingManager, &[], &[&building])
            .await;
        let before = app.audit("forbidden").await.len();
        for who in ["cashier", "auditor", "manager"] {
            let br = app.login(who).await;
            let (s, _) = app.text(&br, "/staff/policy/params").await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{who}");
            let r = app.submit(&br, "/staff/policy/params", &ok).await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{who}");
        }
        assert!(app.audit("forbidden").await.len() >= before + 6);
        assert_eq!(writes(&app).await, 0);
        assert!(app.audit("meter_params_requested").await.is_empty());
    })
    .await;
}
