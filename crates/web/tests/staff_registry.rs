//! The console's registry and bulk import over HTTP (issue 14 items 1–2),
//! on SQLite and — with `DORMWATT_TEST_PG_URL` — PostgreSQL: who may use
//! them (a refusal audited), the anti-CSRF token on forms and uploads, the
//! import's checks on every create form, bad input that changes nothing
//! and leaves the registry version alone, a good change that bumps it, and
//! an import whose apply takes exactly the file that was dry-run.

mod common;

use common::staff::{Browser, StaffApp, each_db, redirects_to};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE};

/// What the seed has in the first area, as the registry lists it.
struct Place {
    area: String,
    building: String,
    room: String,
    gateway: String,
    port: i64,
}

async fn place(app: &StaffApp) -> Place {
    let l = store::registry::listing(&app.db, None, 10_000)
        .await
        .unwrap();
    let area = &l.areas.iter().find(|a| a.id == app.area_id).unwrap().code;
    let b = l.buildings.iter().find(|b| &b.area == area).unwrap();
    let g = l.gateways.iter().find(|g| g.building_id == b.id).unwrap();
    let m = l.meters.iter().find(|m| m.building_id == b.id).unwrap();
    Place {
        area: area.clone(),
        building: b.name_zh.clone(),
        room: m.room.clone(),
        gateway: g.name.clone(),
        port: g.buses[0].port,
    }
}

async fn exec(app: &StaffApp, sql: &'static str) {
    match &app.db {
        store::Db::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        store::Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
    }
    .expect("exec");
}

async fn version(app: &StaffApp) -> i64 {
    store::registry::version(&app.db).await.unwrap()
}

async fn buildings(app: &StaffApp) -> i64 {
    app.count("select count(*) from building").await
}

async fn meters(app: &StaffApp) -> i64 {
    app.count("select count(*) from meter").await
}

/// `POST /staff/import` as `b`: a multipart upload of `bytes` as `name`,
/// with `csrf`.
async fn upload(
    app: &StaffApp,
    b: &Browser,
    csrf: &str,
    name: &str,
    bytes: &[u8],
) -> reqwest::Response {
    let boundary = "----dormwatt-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (field, value) in [("csrf", csrf), ("kind", "")] {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    app.http
        .post(format!("{}/staff/import", app.base))
        .header(COOKIE, &b.cookie)
        .header(
            CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("POST")
}

/// The SHA-256 the dry-run page shows.
fn sha_of(html: &str) -> String {
    html.split("id=import-sha256>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap_or_else(|| panic!("a SHA-256 in {html}"))
        .to_owned()
}

/// The failing rows of the dry-run page's error table.
fn error_rows(html: &str) -> Vec<String> {
    let Some(table) = html.split("id=import-errors>").nth(1) else {
        return Vec::new();
    };
    let table = table.split("</table>").next().unwrap();
    table
        .split("<tr><td>")
        .skip(1)
        .map(|r| r.split('<').next().unwrap().to_owned())
        .collect()
}

fn csv(lines: &[String]) -> Vec<u8> {
    let mut s = lines.join("\r\n");
    s.push_str("\r\n");
    s.into_bytes()
}

#[tokio::test]
async fn only_administrators_use_the_registry_and_a_refusal_is_audited() {
    each_db(async |app| {
        let cashier = app.login("cashier").await;
        let auditor = app.login("auditor").await;
        for path in [
            "/staff/registry",
            "/staff/import",
            "/staff/import/template/meters.xlsx",
        ] {
            let (s, _) = app.text(&cashier, path).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{path}");
        }
        // An auditor may not change the registry either (no write actions).
        let (s, _) = app.text(&auditor, "/staff/registry").await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (v, n) = (version(&app).await, buildings(&app).await);
        let p = place(&app).await;
        let r = app
            .submit(
                &cashier,
                "/staff/registry/buildings",
                &[("area", &p.area), ("name_zh", "9号楼"), ("name_en", "")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = upload(&app, &cashier, &cashier.csrf, "b.csv", b"x").await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!((version(&app).await, buildings(&app).await), (v, n));
        let refused = app.audit("forbidden").await;
        assert!(
            refused
                .iter()
                .any(|r| r.operator_name == "cashier" && r.subject == "/staff/registry/buildings"),
            "{refused:?}"
        );
        // The cashier's navigation has neither page; the administrator's has both.
        let (_, html) = app.text(&cashier, "/staff").await;
        assert!(!html.contains("href=\"/staff/registry\""));
        let admin = app.login("admin").await;
        let (_, html) = app.text(&admin, "/staff").await;
        assert!(
            html.contains("href=\"/staff/registry\"") && html.contains("href=\"/staff/import\"")
        );
    })
    .await;
}

#[tokio::test]
async fn a_post_without_the_sessions_token_changes_nothing() {
    each_db(async |app| {
        let admin = app.login("admin").await;
        let p = place(&app).await;
        let (v, n) = (version(&app).await, buildings(&app).await);
        let r = app
            .post(
                &admin,
                "/staff/registry/buildings",
                &[("csrf", "forged"), ("area", &p.area), ("name_zh", "9号楼")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let file = csv(&[
            "区域代码/area,楼栋/building,英文名/name_en".to_owned(),
            format!("{},9号楼,", p.area),
        ]);
        let r = upload(&app, &admin, "forged", "b.csv", &file).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = app
            .post(
                &admin,
                "/staff/import/apply",
                &[("csrf", "forged"), ("sha256", "00")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!((version(&app).await, buildings(&app).await), (v, n));
    })
    .await;
}

#[tokio::test]
async fn create_forms_use_the_imports_checks_and_a_change_bumps_the_version() {
    each_db(async |app| {
        let admin = app.login("admin").await;
        let p = place(&app).await;
        let (s, html) = app.text(&admin, "/staff/registry").await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains(&p.gateway) && html.contains(&app.meters[0]), "{html}");

        // A building: created once (audited, version bumped), refused twice.
        let v = version(&app).await;
        let building = [("area", p.area.as_str()), ("name_zh", "9号楼"), ("name_en", "B9")];
        let r = app.submit(&admin, "/staff/registry/buildings", &building).await;
        assert!(redirects_to(&r, "/staff/registry?done=building"), "{r:?}");
        assert_eq!(version(&app).await, v + 1);
        assert_eq!(app.audit("registry_created").await.len(), 1);
        let n = buildings(&app).await;
        let r = app.submit(&admin, "/staff/registry/buildings", &building).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text().await.unwrap().contains("already registered"));
        assert_eq!((version(&app).await, buildings(&app).await), (v + 1, n));

        // Meters: each bad one refused with its reason, nothing written.
        let meter = |address: &'static str, building: String, bus: String| {
            vec![
                ("address", address.to_owned()),
                ("area", p.area.clone()),
                ("building", building),
                ("room", p.room.clone()),
                ("gateway", p.gateway.clone()),
                ("bus", bus),
                ("profile", String::new()),
                ("unit_price", String::new()),
                ("low_balance_kwh", String::new()),
            ]
        };
        let port = p.port.to_string();
        let taken: &'static str = Box::leak(app.meters[0].clone().into_boxed_str());
        let bad = [
            (meter("12345", p.building.clone(), port.clone()), "电表编号/address"),
            (meter("20170101003A", p.building.clone(), port.clone()), "电表编号/address"),
            (meter(taken, p.building.clone(), port.clone()), "already registered"),
            (meter("209901010001", "没有这栋楼".to_owned(), port.clone()), "unknown building"),
            (meter("209901010001", p.building.clone(), "9".to_owned()), "has no bus on port 9"),
        ];
        let (v, m) = (version(&app).await, meters(&app).await);
        for (fields, why) in &bad {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = app.submit(&admin, "/staff/registry/meters", &fields).await;
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{fields:?}");
            let html = r.text().await.unwrap();
            assert!(html.contains("id=registry-errors") && html.contains(why), "{why}: {html}");
        }
        assert_eq!((version(&app).await, meters(&app).await), (v, m));

        // A full bus refuses one more meter.
        let good = meter("209901010001", p.building.clone(), port.clone());
        let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
        exec(&app,
            "update bus set meter_capacity = (select count(*) from meter m where m.bus_id = bus.id)",
        )
        .await;
        let r = app.submit(&admin, "/staff/registry/meters", &good).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text().await.unwrap().contains("bus over capacity"));
        assert_eq!((version(&app).await, meters(&app).await), (v, m));
        exec(&app,"update bus set meter_capacity = 64").await;
        let r = app.submit(&admin, "/staff/registry/meters", &good).await;
        assert!(redirects_to(&r, "/staff/registry?done=meter"), "{r:?}");
        assert_eq!((version(&app).await, meters(&app).await), (v + 1, m + 1));
        let id = app.meter_id(app.area_id, "209901010001").await;

        // Edit: a bad price is refused and changes nothing; a good one is saved.
        let path = format!("/staff/registry/meters/{id}");
        let r = app
            .submit(&admin, &path, &[("profile", "dlt645-ref"), ("unit_price", "abc"), ("low_balance_kwh", "")])
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(version(&app).await, v + 1);
        let r = app
            .submit(&admin, &path, &[("profile", "dlt645-ref"), ("unit_price", "0.6"), ("low_balance_kwh", "8")])
            .await;
        assert!(redirects_to(&r, "/staff/registry?building="), "{r:?}");
        assert_eq!(version(&app).await, v + 2);
        let row = store::registry::meter(&app.db, id).await.unwrap().unwrap();
        assert_eq!(
            (row.unit_price_centifen_per_kwh, row.low_balance_centikwh),
            (Some(6_000), 800)
        );
        let edited = app.audit("meter_edited").await;
        assert_eq!(edited.len(), 1);

        // Retire: once; the second time it is refused and nothing moves.
        let retire = format!("/staff/registry/meters/{id}/retire");
        let r = app.submit(&admin, &retire, &[]).await;
        assert!(redirects_to(&r, "/staff/registry?building="), "{r:?}");
        assert_eq!(version(&app).await, v + 3);
        let r = app.submit(&admin, &retire, &[]).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(version(&app).await, v + 3);
        let row = store::registry::meter(&app.db, id).await.unwrap().unwrap();
        assert!(row.retired_at_ms.is_some() && row.bus.is_none());

        // The counter refuses to sell for it, saying why.
        let cashier = app.login("cashier").await;
        app.open_shift(&cashier).await;
        let key = app.sale_key(&cashier, id).await;
        let r = app.sell(&cashier, id, "10", "cash", &key).await;
        let html = r.text().await.unwrap();
        assert!(html.contains("该电表已停用，不能售电"), "{html}");
        assert!(app.orders_of(id).await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn an_import_lists_every_bad_row_and_applies_only_the_dry_run_file() {
    each_db(async |app| {
        let admin = app.login("admin").await;
        let p = place(&app).await;
        // The template, parsed back with the import's own reader.
        let r = app
            .get(Some(&admin), "/staff/import/template/meters.xlsx")
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let xlsx = r.bytes().await.unwrap();
        let table = import::read_table(&xlsx).unwrap();
        assert_eq!(table.header[0], "电表编号/address");
        assert!(!table.rows.is_empty());

        let header = "电表编号/address,区域代码/area,楼栋/building,房间/room,网关/gateway,总线/bus"
            .to_owned();
        let row = |address: &str, building: &str| {
            format!(
                "{address},{},{building},{},{},{}",
                p.area, p.room, p.gateway, p.port
            )
        };
        let mut lines = vec![header.clone()];
        for i in 0..10 {
            lines.push(row(&format!("2099020100{i:02}"), &p.building));
        }
        // Rows 4, 7 and 10 (the header is row 1) are bad.
        lines[3] = row("209902010001", &p.building); // the same address as row 3
        lines[6] = row("20990201", &p.building);
        lines[9] = row("209902010099", "没有这栋楼");
        let (v, m) = (version(&app).await, meters(&app).await);
        let r = upload(&app, &admin, &admin.csrf, "meters.csv", &csv(&lines)).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = r.text().await.unwrap();
        assert_eq!(error_rows(&html), ["4", "7", "10"], "{html}");
        assert!(html.contains("共 10 行，7 行通过，3 行有错误"), "{html}");
        assert!(
            !html.contains("id=import-apply"),
            "no apply while rows fail"
        );
        // That file cannot be applied: it was never kept.
        let bad_sha = sha_of(&html);
        let r = app
            .submit(&admin, "/staff/import/apply", &[("sha256", &bad_sha)])
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!((version(&app).await, meters(&app).await), (v, m));

        // Fixed: a dry run that passes, then apply by its hash.
        lines[3] = row("209902010011", &p.building);
        lines[6] = row("209902010012", &p.building);
        lines[9] = row("209902010013", &p.building);
        let fixed = csv(&lines);
        let r = upload(&app, &admin, &admin.csrf, "meters.csv", &fixed).await;
        assert_eq!(r.status(), StatusCode::OK);
        let html = r.text().await.unwrap();
        assert!(
            error_rows(&html).is_empty() && html.contains("id=import-apply"),
            "{html}"
        );
        let sha = sha_of(&html);
        assert_eq!(sha, hex_sha256(&fixed));
        assert_eq!(
            (version(&app).await, meters(&app).await),
            (v, m),
            "a dry run writes nothing"
        );
        // Another operator cannot apply this operator's dry run.
        app.operator("admin2", domain::staff::Role::Administrator)
            .await;
        let admin2 = app.login("admin2").await;
        let r = app
            .submit(&admin2, "/staff/import/apply", &[("sha256", &sha)])
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(meters(&app).await, m);
        let r = app
            .submit(&admin, "/staff/import/apply", &[("sha256", &sha)])
            .await;
        assert!(
            redirects_to(&r, "/staff/import?imported=10&kind=meters"),
            "{r:?}"
        );
        assert_eq!((version(&app).await, meters(&app).await), (v + 1, m + 10));
        let audit = app.audit("registry_imported").await;
        assert_eq!(audit.len(), 1);
        assert!(
            audit[0].after_json.as_deref().unwrap_or("").contains(&sha),
            "{audit:?}"
        );
        // Applied once: the same hash again finds nothing to apply.
        let r = app
            .submit(&admin, "/staff/import/apply", &[("sha256", &sha)])
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(meters(&app).await, m + 10);
    })
    .await;
}

#[tokio::test]
async fn a_gbk_csv_as_excel_saves_it_and_an_oversized_file_are_handled() {
    each_db(async |app| {
        let admin = app.login("admin").await;
        let p = place(&app).await;
        // Excel on Chinese Windows: "CSV (逗号分隔)" is GBK, CRLF, no BOM,
        // and keeps the template's header.
        let text = format!(
            "区域代码/area,楼栋/building,房间/room,楼层/floor\r\n{a},{b},九零一,9\r\n{a},{b},九零二,9\r\n",
            a = p.area,
            b = p.building
        );
        let (gbk, _, unmappable) = encoding_rs::GBK.encode(&text);
        assert!(!unmappable && std::str::from_utf8(&gbk).is_err());
        let r = upload(&app, &admin, &admin.csrf, "rooms.csv", &gbk).await;
        let html = r.text().await.unwrap();
        assert!(html.contains("id=import-apply"), "{html}");
        let sha = sha_of(&html);
        let r = app.submit(&admin, "/staff/import/apply", &[("sha256", &sha)]).await;
        assert!(redirects_to(&r, "/staff/import?imported=2&kind=rooms"), "{r:?}");
        assert_eq!(
            app.count("select count(*) from room where number in ('九零一', '九零二')").await,
            2
        );
        // Neither UTF-8 nor GBK: the whole file is refused.
        let r = upload(&app, &admin, &admin.csrf, "x.csv", b"\xff\xfe\x00a,b\r\n").await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text().await.unwrap().contains("wrong encoding"));
        // Over the limit: refused before reading.
        let big = vec![b'a'; web_upload_max() + 1];
        let r = upload(&app, &admin, &admin.csrf, "big.csv", &big).await;
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    })
    .await;
}

fn web_upload_max() -> usize {
    8 * 1024 * 1024
}

fn hex_sha256(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    d.as_ref().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[tokio::test]
async fn a_gateways_connection_is_edited_with_the_imports_rules() {
    each_db(async |app| {
        let admin = app.login("admin").await;
        let p = place(&app).await;
        let l = store::registry::listing(&app.db, None, 0).await.unwrap();
        let g = l.gateways.iter().find(|g| g.name == p.gateway).unwrap();
        let path = format!("/staff/registry/gateways/{}", g.id);
        let v = version(&app).await;
        // Dial needs a host; an unknown mode is refused: nothing changes.
        for bad in [
            [("mode", "dial"), ("host", ""), ("port", "21999")],
            [("mode", "serial"), ("host", "10.0.0.9"), ("port", "21999")],
            [("mode", "dial"), ("host", "10.0.0.9"), ("port", "70000")],
        ] {
            let r = app.submit(&admin, &path, &bad).await;
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        }
        assert_eq!(version(&app).await, v);
        let r = app
            .submit(
                &admin,
                &path,
                &[("mode", "dial"), ("host", "10.0.0.9"), ("port", "21999")],
            )
            .await;
        assert!(
            redirects_to(&r, "/staff/registry?done=gateway-edited"),
            "{r:?}"
        );
        assert_eq!(version(&app).await, v + 1);
        let l = store::registry::listing(&app.db, None, 0).await.unwrap();
        let after = l.gateways.iter().find(|x| x.id == g.id).unwrap();
        assert_eq!(
            (after.mode.as_str(), after.host.as_str(), after.port),
            ("dial", "10.0.0.9", 21999)
        );
        let audit = app.audit("gateway_edited").await;
        assert_eq!(audit.len(), 1);
        assert!(
            audit[0]
                .after_json
                .as_deref()
                .unwrap_or("")
                .contains("10.0.0.9")
        );
        // The cashier may not.
        let cashier = app.login("cashier").await;
        let r = app
            .submit(
                &cashier,
                &path,
                &[("mode", "listen"), ("host", ""), ("port", "")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(version(&app).await, v + 1);
    })
    .await;
}
