//! The live building view and relay control over HTTP (issue 14 items
//! 4-5), on SQLite and — with `DORMWATT_TEST_PG_URL` — PostgreSQL: a
//! building manager sees and switches only their buildings, every refusal
//! and every piece of bad input queues nothing, the CSRF token is
//! required, and a bulk selection is confirmed with its count.

mod common;

use common::staff::{StaffApp, each_db, redirects_to};
use domain::staff::Role;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use store::Db;

/// Two buildings (id, Chinese name) and their meters, by id.
async fn two_buildings(db: &Db) -> [(i64, String, Vec<i64>); 2] {
    let b: Vec<(i64, String)> = store::on_db!(db, |p| sqlx::query_as::<_, (i64, String)>(
        "select b.id, b.name_zh from building b
         where exists (select 1 from room r join meter m on m.room_id = r.id where r.building_id = b.id)
         order by b.id limit 2"
    )
    .fetch_all(p)
    .await)
    .unwrap();
    let mut out = Vec::new();
    for (id, name) in b {
        let m: Vec<i64> = store::on_db!(db, |p| sqlx::query_scalar::<_, i64>(
            "select m.id from meter m join room r on r.id = m.room_id where r.building_id = $1
             order by m.id"
        )
        .bind(id)
        .fetch_all(p)
        .await)
        .unwrap();
        out.push((id, name, m));
    }
    out.try_into().expect("two buildings with meters")
}

async fn commands(app: &StaffApp) -> i64 {
    app.count("select count(*) from relay_command").await
}

#[tokio::test]
async fn a_building_manager_sees_and_switches_only_their_buildings() {
    each_db(async |app: StaffApp| {
        let [
            (mine, ref name, ref my_meters),
            (other, _, ref other_meters),
        ] = two_buildings(&app.db).await;
        app.scoped_operator("lou", Role::BuildingManager, &[], &[name])
            .await;
        let lou = app.login("lou").await;

        let (s, index) = app.text(&lou, "/staff/buildings").await;
        assert_eq!(s, StatusCode::OK);
        assert!(index.contains(&format!("href=\"/staff/buildings/{mine}\"")));
        assert!(!index.contains(&format!("href=\"/staff/buildings/{other}\"")));

        let (s, page) = app.text(&lou, &format!("/staff/buildings/{mine}")).await;
        assert_eq!(s, StatusCode::OK);
        assert!(page.contains(&format!("name=meter value=\"{}\"", my_meters[0])));
        assert!(page.contains("/staff/relay/confirm"));
        let r = app
            .get(Some(&lou), &format!("/staff/buildings/{mine}.json"))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let live: serde_json::Value = r.json().await.unwrap();
        let cells = live["cells"].as_array().unwrap();
        let with_meter: Vec<i64> = cells
            .iter()
            .filter_map(|c| c["meter"].as_i64())
            .filter(|&m| m > 0)
            .collect();
        assert_eq!(with_meter.len(), my_meters.len());

        let before = app.audit("forbidden").await.len();
        for path in [
            format!("/staff/buildings/{other}"),
            format!("/staff/buildings/{other}.json"),
        ] {
            assert_eq!(
                app.get(Some(&lou), &path).await.status(),
                StatusCode::FORBIDDEN,
                "{path}"
            );
        }
        // Out of scope: one meter, or one among theirs — nothing queued.
        let theirs = other_meters[0].to_string();
        let own = my_meters[0].to_string();
        for meters in [vec![theirs.as_str()], vec![own.as_str(), theirs.as_str()]] {
            let mut f = vec![
                ("action", "trip"),
                ("reason", "违规电器"),
                ("back", "/staff/buildings"),
            ];
            f.extend(meters.iter().map(|m| ("meter", *m)));
            for path in ["/staff/relay", "/staff/relay/confirm"] {
                let r = app.submit(&lou, path, &f).await;
                assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path} {meters:?}");
            }
        }
        assert_eq!(commands(&app).await, 0);
        let refused = app.audit("forbidden").await;
        assert_eq!(refused.len(), before + 6);
        assert!(
            refused[0]
                .after_json
                .as_deref()
                .unwrap()
                .contains("control_relay")
        );

        // Their own room: queued, audited, visible on the meter's page.
        let back = format!("/staff/meters/{own}");
        let r = app
            .submit(
                &lou,
                "/staff/relay",
                &[
                    ("meter", &own),
                    ("action", "trip"),
                    ("reason", "违规电器"),
                    ("back", &back),
                ],
            )
            .await;
        assert!(redirects_to(&r, &back), "{:?}", r.headers().get(LOCATION));
        assert_eq!(commands(&app).await, 1);
        let asked = app.audit("relay_requested").await;
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0].subject, format!("meter:{own}"));
        assert!(asked[0].after_json.as_deref().unwrap().contains("违规电器"));
        let (s, meter) = app.text(&lou, &back).await;
        assert_eq!(s, StatusCode::OK);
        assert!(meter.contains("id=relay-history"), "{meter}");
        assert!(meter.contains("data-state=\"queued\""));
        assert!(meter.contains("违规电器"));
        let r = app
            .get(Some(&lou), &format!("/staff/meters/{own}/relay.json"))
            .await;
        let j: serde_json::Value = r.json().await.unwrap();
        assert_eq!(j["open"], true);
        assert_eq!(j["commands"][0]["state"], "queued");
        // The building view shows the open command.
        let r = app
            .get(Some(&lou), &format!("/staff/buildings/{mine}.json"))
            .await;
        let live: serde_json::Value = r.json().await.unwrap();
        let cell = live["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["meter"].as_i64() == Some(my_meters[0]))
            .unwrap()
            .clone();
        assert!(cell["pending"].as_str().unwrap().contains("拉闸"), "{cell}");
    })
    .await;
}

#[tokio::test]
async fn bad_input_a_forged_token_or_a_role_without_relay_control_queues_nothing() {
    each_db(async |app: StaffApp| {
        let [(_, _, ref meters), _] = two_buildings(&app.db).await;
        let m = meters[0].to_string();
        let admin = app.login("admin").await;
        let long = "拉".repeat(store::relay::REASON_CHARS_MAX + 1);
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (
                vec![("meter", &m), ("action", "trip"), ("reason", "  ")],
                "请填写原因",
            ),
            (vec![("meter", &m), ("action", "trip")], "请填写原因"),
            (
                vec![("meter", &m), ("action", "trip"), ("reason", &long)],
                "原因太长",
            ),
            (
                vec![
                    ("meter", "99999999"),
                    ("action", "trip"),
                    ("reason", "检修"),
                ],
                "所选电表不存在",
            ),
            (
                vec![("meter", "abc"), ("action", "trip"), ("reason", "检修")],
                "所选电表不存在",
            ),
            (
                vec![("meter", &m), ("action", "explode"), ("reason", "检修")],
                "请选择操作",
            ),
            (
                vec![("action", "trip"), ("reason", "检修")],
                "请至少选择一个房间",
            ),
        ];
        for (fields, says) in &cases {
            for path in ["/staff/relay", "/staff/relay/confirm"] {
                let r = app.submit(&admin, path, fields).await;
                assert_eq!(
                    r.status(),
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "{path} {fields:?}"
                );
                let body = r.text().await.unwrap();
                assert!(body.contains(says), "{path} {fields:?}: {body}");
            }
        }
        assert_eq!(commands(&app).await, 0);

        // A forged token, a cross-site post.
        let r = app
            .post(
                &admin,
                "/staff/relay",
                &[
                    ("csrf", "forged"),
                    ("meter", &m),
                    ("action", "trip"),
                    ("reason", "检修"),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = app
            .http
            .post(format!("{}/staff/relay", app.base))
            .header(reqwest::header::COOKIE, &admin.cookie)
            .header("Origin", "http://evil.test")
            .form(&[
                ("csrf", admin.csrf.as_str()),
                ("meter", &m),
                ("action", "trip"),
                ("reason", "检修"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        // Roles without relay control: refused and audited.
        let before = app.audit("forbidden").await.len();
        for who in ["cashier", "auditor"] {
            let b = app.login(who).await;
            let r = app
                .submit(
                    &b,
                    "/staff/relay",
                    &[("meter", &m), ("action", "close"), ("reason", "检修")],
                )
                .await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{who}");
        }
        assert_eq!(app.audit("forbidden").await.len(), before + 2);
        assert_eq!(commands(&app).await, 0);
        assert!(app.audit("relay_requested").await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_bulk_action_is_confirmed_with_its_count_then_queued_whole() {
    each_db(async |app: StaffApp| {
        let [(b, _, ref meters), _] = two_buildings(&app.db).await;
        assert!(meters.len() >= 12);
        let admin = app.login("admin").await;
        let ids: Vec<String> = meters[..12].iter().map(ToString::to_string).collect();
        let back = format!("/staff/buildings/{b}");
        let mut f = vec![
            ("action", "trip"),
            ("reason", "宿舍楼检修"),
            ("back", back.as_str()),
        ];
        f.extend(ids.iter().map(|m| ("meter", m.as_str())));
        // The same room twice counts once.
        f.push(("meter", ids[0].as_str()));
        let r = app.submit(&admin, "/staff/relay/confirm", &f).await;
        assert_eq!(r.status(), StatusCode::OK);
        let page = r.text().await.unwrap();
        assert!(page.contains("将对 12 个房间拉闸"), "{page}");
        assert_eq!(commands(&app).await, 0, "nothing before the confirmation");
        // The confirmation form posts what it names.
        let named = page.matches("name=meter value=").count();
        assert_eq!(named, 12);
        assert!(page.contains("action=\"/staff/relay\""));
        let r = app.submit(&admin, "/staff/relay", &f).await;
        assert!(
            redirects_to(&r, &format!("{back}?queued=12")),
            "{:?}",
            r.headers().get(LOCATION)
        );
        assert_eq!(commands(&app).await, 12);
        assert_eq!(app.audit("relay_requested").await.len(), 12);
        let (_, view) = app.text(&admin, &format!("{back}?queued=12")).await;
        assert!(view.contains("已排队 12 条命令"), "{view}");
        // A keep-power for the rest of the building is its own sentence.
        let rest = meters[12].to_string();
        let r = app
            .submit(
                &admin,
                "/staff/relay/confirm",
                &[
                    ("meter", &rest),
                    ("action", "keep_power"),
                    ("reason", "医疗设备"),
                ],
            )
            .await;
        assert!(r.text().await.unwrap().contains("将对 1 个房间保电"));
    })
    .await;
}

#[tokio::test]
async fn a_meter_page_shows_its_history_with_the_student_masked() {
    each_db(async |app: StaffApp| {
        let (address, _) = common::staff::first_meter(&app.db, 1).await;
        let id = app.meter_id(1, &address).await;
        let now = app.clock.now_ms();
        let s = common::staff::bound_student(&app.db, "张三丰", &address, now).await;
        store::students::update_profile(&app.db, s.id, "张三丰", "13812345678")
            .await
            .unwrap();
        let o = store::meters::Observation {
            meter_id: id,
            at_ms: now - 60_000,
            seen: true,
            online: Some(true),
            power_w: Some(432),
            keep_readings: true,
            ..Default::default()
        };
        let e = store::meters::MeterEvent {
            meter_id: id,
            at_ms: now - 30_000,
            kind: "trip".into(),
            detail: "malicious_load; trips since install 7".into(),
        };
        store::meters::record(&app.db, &[o], &[e], &[], now)
            .await
            .unwrap();
        let admin = app.login("admin").await;
        let (st, page) = app.text(&admin, &format!("/staff/meters/{id}")).await;
        assert_eq!(st, StatusCode::OK);
        assert!(page.contains("id=usage-chart"), "the daily usage chart");
        assert!(page.contains("trips since install 7"), "the event");
        assert!(page.contains("432 W"), "the reading");
        assert!(page.contains("138****5678"), "the phone, masked");
        assert!(!page.contains("13812345678"), "never the whole phone");
        assert!(!page.contains(&s.openid), "never the whole openid");
        assert!(page.contains("张**"));
        // The relay form is there for those who may switch, not for a cashier.
        assert!(page.contains("id=relay-form"));
        let cashier = app.login("cashier").await;
        let (_, page) = app.text(&cashier, &format!("/staff/meters/{id}")).await;
        assert!(!page.contains("id=relay-form"));
    })
    .await;
}
