//! The console's reports and exports (issue 14 item 7) over HTTP, on SQLite
//! and — with `DORMWATT_TEST_PG_URL` — PostgreSQL: orders sold at the
//! counter (through the console) and paid by WeChat; each report's page
//! and exports; the XLSX parsed back with calamine (`import::export::
//! read_back`, the crate that reads imports) whose totals equal the page's
//! and the store's, with dates as dates and numbers as numbers; a building
//! manager's exports hold only their building; bad ranges are a 400 with
//! the reason and no file.

mod common;

use common::staff::{Browser, StaffApp, each_db, first_meter, paid};
use domain::staff::Role;
use import::export::{CellsAre, ReadBack, read_back};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use store::dashboard::Within;
use store::reports::Range;

const DAY_MS: i64 = 86_400_000;

fn tz() -> jiff::tz::TimeZone {
    domain::time::CampusTz::default().tz().clone()
}

fn today(app: &StaffApp) -> i64 {
    domain::time::day_number(domain::time::local_date(app.clock.now_ms(), &tz()))
}

/// The default range: the last 30 days, today included.
fn last_30(app: &StaffApp) -> Range {
    Range::new(today(app) - 29, today(app)).unwrap()
}

/// The page's total of column `key` (`12.34`), empty when it has none.
fn page_total(html: &str, key: &str) -> String {
    let row = html
        .split("id=report-total>")
        .nth(1)
        .unwrap_or_else(|| panic!("a totals row in {html}"));
    let cell = row
        .split(&format!("data-key=\"{key}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("a {key} total in {row}"));
    let text = cell.split('>').nth(1).unwrap();
    text.split('<').next().unwrap().to_owned()
}

/// `GET path` as `b`: the response, which must be a download of `ext`.
async fn download(app: &StaffApp, b: &Browser, path: &str, ext: &str) -> Vec<u8> {
    let r = app.get(Some(b), path).await;
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    let disposition = r.headers()[CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"dormwatt-")
            && disposition.ends_with(&format!(".{ext}\"")),
        "{disposition}"
    );
    r.bytes().await.unwrap().to_vec()
}

async fn xlsx(app: &StaffApp, b: &Browser, path: &str) -> ReadBack {
    read_back(&download(app, b, path, "xlsx").await).expect("an XLSX calamine reads")
}

/// The CSV's rows (after the BOM and the header) as fields.
async fn csv_rows(app: &StaffApp, b: &Browser, path: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let bytes = download(app, b, path, "csv").await;
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "UTF-8 with a BOM");
    let mut r = csv::Reader::from_reader(&bytes[3..]);
    let header = r.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = r
        .records()
        .map(|x| x.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

/// Fen as `12.34`.
fn yuan(fen: i64) -> String {
    domain::Fen::new(fen).to_string()
}

/// Sums a two-decimal column of CSV rows, in hundredths.
fn csv_sum(rows: &[Vec<String>], col: usize) -> i64 {
    rows.iter()
        .map(|r| {
            let (a, b) = r[col].split_once('.').unwrap_or((&r[col], "00"));
            a.parse::<i64>().unwrap() * 100 + b.parse::<i64>().unwrap()
        })
        .sum()
}

/// Sells `kwh` at the counter as `cashier` on meter `address` of area `area`.
async fn sell(app: &StaffApp, cashier: &Browser, area: i64, address: &str, kwh: &str) {
    let m = app.meter_id(area, address).await;
    let key = app.sale_key(cashier, m).await;
    let r = app.sell(cashier, m, kwh, "cash", &key).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "counter sale");
}

#[tokio::test]
async fn sales_page_exports_and_store_agree_and_a_manager_sees_only_their_building() {
    each_db(async |app| {
        let now = app.clock.now_ms();
        let (m1, building1) = first_meter(&app.db, 1).await;
        let (m2, _) = first_meter(&app.db, 2).await;
        // WeChat: one in each building today, one 40 days ago (outside the default range).
        paid(&app.db, 1, &m1, "wx-1", now).await;
        paid(&app.db, 2, &m2, "wx-2", now).await;
        paid(&app.db, 1, &m1, "wx-old", now - 40 * DAY_MS).await;
        // The counter: two sales in building 1, one in the other.
        let cashier = app.login("cashier").await;
        app.open_shift(&cashier).await;
        sell(&app, &cashier, 1, &m1, "30").await;
        sell(&app, &cashier, 1, &m1, "12").await;
        sell(&app, &cashier, 2, &m2, "7").await;

        let range = last_30(&app);
        let all = Within {
            areas: None,
            buildings: None,
        };
        let store_rows = store::reports::sales(&app.db, &all, range, &tz())
            .await
            .unwrap();
        let store_fen: i64 = store_rows.iter().map(|r| r.amount.get()).sum();
        let store_orders: i64 = store_rows.iter().map(|r| r.orders).sum();
        let store_kwh: i64 = store_rows.iter().map(|r| r.kwh).sum();
        assert_eq!(store_orders, 5, "{store_rows:?}");
        assert_eq!(store_kwh, 5 + 5 + 30 + 12 + 7);
        assert!(store_rows.iter().any(|r| r.cashier == "cashier"));

        let admin = app.login("admin").await;
        let (s, html) = app.text(&admin, "/staff/reports").await;
        assert_eq!(s, StatusCode::OK, "{html}");
        for slug in ["sales", "usage", "read-success", "trips", "offline"] {
            assert!(
                html.contains(&format!("href=\"/staff/reports/{slug}\"")),
                "{slug}: {html}"
            );
        }
        assert!(
            html.contains("href=\"/staff/reports\""),
            "the nav links the reports"
        );

        let (s, html) = app.text(&admin, "/staff/reports/sales").await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert_eq!(page_total(&html, "amount_yuan"), yuan(store_fen));
        assert_eq!(page_total(&html, "orders"), store_orders.to_string());
        assert_eq!(page_total(&html, "kwh"), store_kwh.to_string());
        assert!(html.contains("id=report-chart"), "a chart: {html}");
        // The defaults are the last 30 days.
        let from = domain::time::date_of_day_number(range.from).to_string();
        let to = domain::time::date_of_day_number(range.to).to_string();
        assert!(
            html.contains(&format!("name=from value=\"{from}\"")),
            "{html}"
        );
        assert!(html.contains(&format!("name=to value=\"{to}\"")), "{html}");
        let q = format!("from={from}&to={to}");
        let href = format!("/staff/reports/sales.xlsx?from={from}&#38;to={to}");
        assert!(html.contains(&href), "{html}");

        let back = xlsx(&app, &admin, &format!("/staff/reports/sales.xlsx?{q}")).await;
        assert_eq!(back.rows, store_rows.len());
        let amount = back.column("金额（元）").expect("an amount column");
        assert_eq!(amount.cells, CellsAre::Numbers);
        assert_eq!(format!("{:.2}", amount.sum.unwrap()), yuan(store_fen));
        assert_eq!(
            format!("{:.2}", amount.sum.unwrap()),
            page_total(&html, "amount_yuan")
        );
        let orders = back.column("笔数").unwrap();
        assert_eq!((orders.cells, orders.sum), (CellsAre::Numbers, Some(5.0)));
        let day = back.column("日期").unwrap();
        assert_eq!(day.cells, CellsAre::Dates);
        assert_eq!(day.last.as_deref(), Some(to.as_str()));
        assert_eq!(back.column("收银员").unwrap().cells, CellsAre::Text);

        let (header, rows) = csv_rows(&app, &admin, &format!("/staff/reports/sales.csv?{q}")).await;
        let col = header.iter().position(|h| h == "金额（元）").unwrap();
        assert_eq!(csv_sum(&rows, col), store_fen);
        assert!(
            rows.iter().all(|r| r[0] == to),
            "today's sales only: {rows:?}"
        );
        let exported = app.audit("report_exported").await;
        assert_eq!(exported.len(), 2, "{exported:?}");
        assert!(exported.iter().all(|e| e.operator_name == "admin"));

        // The manager of building 1: only its sales, on the page and in the file.
        app.scoped_operator("manager", Role::BuildingManager, &[], &[&building1])
            .await;
        let b1_id = store::lookup::buildings(&app.db)
            .await
            .unwrap()
            .into_iter()
            .find(|b| b.name_zh == building1)
            .unwrap()
            .id;
        let mine = Within {
            areas: None,
            buildings: Some(vec![b1_id]),
        };
        let mine_rows = store::reports::sales(&app.db, &mine, range, &tz())
            .await
            .unwrap();
        let mine_fen: i64 = mine_rows.iter().map(|r| r.amount.get()).sum();
        assert_eq!(mine_rows.iter().map(|r| r.orders).sum::<i64>(), 3);
        assert!(mine_fen < store_fen);
        let manager = app.login("manager").await;
        let (s, html) = app.text(&manager, "/staff/reports/sales").await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert_eq!(page_total(&html, "amount_yuan"), yuan(mine_fen));
        let back = xlsx(&app, &manager, &format!("/staff/reports/sales.xlsx?{q}")).await;
        assert_eq!(
            format!("{:.2}", back.column("金额（元）").unwrap().sum.unwrap()),
            yuan(mine_fen)
        );
        let (_, rows) = csv_rows(&app, &manager, &format!("/staff/reports/sales.csv?{q}")).await;
        assert_eq!(csv_sum(&rows, col), mine_fen);

        // A cashier may not read reports: 403, audited.
        let r = app.get(Some(&cashier), "/staff/reports/sales.xlsx").await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(r.headers().get(CONTENT_DISPOSITION).is_none());
    })
    .await;
}

#[tokio::test]
async fn usage_read_success_trips_and_offline_render_and_export_within_scope() {
    each_db(async |app| {
        let (m1, building1) = first_meter(&app.db, 1).await;
        let (m2, building2) = first_meter(&app.db, 2).await;
        let yesterday = today(&app) - 1;
        let id1 = app.meter_id(1, &m1).await;
        let id2 = app.meter_id(2, &m2).await;
        let run = async |sql: String| {
            store::on_db!(&app.db, |p| sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .execute(p)
                .await
                .map(|r| r.rows_affected()))
            .expect(&sql);
        };
        for (m, u) in [(id1, 1234), (id2, 566)] {
            run(format!(
                "insert into daily_usage (meter_id, day, usage_centikwh, total_end_centikwh, status, updated_at_ms)
                 values ({m}, {yesterday}, {u}, 100000, 'ok', 1)"
            ))
            .await;
        }
        let at = app.clock.now_ms() - 3_600_000;
        for m in [id1, id1, id2] {
            run(format!(
                "insert into meter_event (meter_id, at_ms, kind, detail) values ({m}, {at}, 'trip', 'malicious_load')"
            ))
            .await;
        }
        let admin = app.login("admin").await;
        let (s, html) = app.text(&admin, "/staff/reports/usage").await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert_eq!(page_total(&html, "usage_kwh"), "18.00");
        assert!(html.contains("id=report-chart"), "{html}");
        let back = xlsx(&app, &admin, "/staff/reports/usage.xlsx").await;
        let usage = back.column("用电量（kWh）").unwrap();
        assert_eq!((usage.cells, usage.sum), (CellsAre::Numbers, Some(18.0)));
        assert_eq!(back.column("日期").unwrap().cells, CellsAre::Dates);

        let (s, html) = app.text(&admin, "/staff/reports/trips").await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert_eq!(page_total(&html, "trips"), "3");
        let back = xlsx(&app, &admin, "/staff/reports/trips.xlsx").await;
        assert_eq!(back.column("最近一次").unwrap().cells, CellsAre::Dates);
        assert_eq!(back.column("跳闸次数").unwrap().sum, Some(3.0));

        // The two meters registered three days ago: each due one freeze a
        // day for the three ended days; yesterday's is received (above).
        let registered = app.clock.now_ms() - 3 * DAY_MS;
        run(format!(
            "update meter set created_at_ms = {registered} where id in ({id1}, {id2})"
        ))
        .await;
        let (s, html) = app.text(&admin, "/staff/reports/read-success").await;
        assert_eq!(s, StatusCode::OK, "{html}");
        let back = xlsx(&app, &admin, "/staff/reports/read-success.xlsx").await;
        let store_rows = store::reports::read_success(
            &app.db,
            &Within { areas: None, buildings: None },
            last_30(&app),
            today(&app),
            &tz(),
        )
        .await
        .unwrap();
        assert_eq!(back.rows, store_rows.len());
        let due: i64 = store_rows.iter().map(|r| r.due).sum();
        let received: i64 = store_rows.iter().map(|r| r.received).sum();
        assert!((due, received) >= (6, 2), "{store_rows:?}");
        assert!(html.contains("id=report-heat"), "{html}");
        assert_eq!(page_total(&html, "due"), due.to_string());
        assert_eq!(page_total(&html, "received"), received.to_string());
        let ratio = back.column("成功率").unwrap();
        assert_eq!(ratio.cells, CellsAre::Numbers);
        assert_eq!(back.column("应抄").unwrap().sum, Some(due as f64));

        let (s, html) = app.text(&admin, "/staff/reports/offline").await;
        assert_eq!(s, StatusCode::OK, "{html}");
        let offline = store::reports::offline(&app.db, &Within { areas: None, buildings: None })
            .await
            .unwrap();
        let back = xlsx(&app, &admin, "/staff/reports/offline.xlsx").await;
        assert_eq!(back.rows, offline.len());

        // The manager of building 1: usage and trips of building 1 only.
        app.scoped_operator("manager", Role::BuildingManager, &[], &[&building1])
            .await;
        let manager = app.login("manager").await;
        let (s, html) = app.text(&manager, "/staff/reports/usage").await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert_eq!(page_total(&html, "usage_kwh"), "12.34");
        let (header, rows) = csv_rows(&app, &manager, "/staff/reports/usage.csv").await;
        let b = header.iter().position(|h| h == "楼栋").unwrap();
        assert!(!rows.is_empty() && rows.iter().all(|r| r[b] == building1), "{rows:?}");
        assert_ne!(building1, building2);
        let (_, rows) = csv_rows(&app, &manager, "/staff/reports/trips.csv").await;
        assert!(rows.len() == 1 && rows[0][0] == building1, "{rows:?}");
        let back = xlsx(&app, &manager, "/staff/reports/offline.xlsx").await;
        let mine = store::reports::offline(
            &app.db,
            &Within::of(Role::BuildingManager, &store::operators::list(&app.db).await.unwrap().into_iter().find(|o| o.name == "manager").unwrap().scope),
        )
        .await
        .unwrap();
        assert_eq!(back.rows, mine.len());
        assert!(mine.len() < offline.len() || offline.is_empty());
    })
    .await;
}

#[tokio::test]
async fn bad_ranges_are_a_400_with_the_reason_and_no_file() {
    each_db(async |app| {
        let admin = app.login("admin").await;
        for (q, reason) in [
            ("from=2026-12-10&to=2026-12-01", "结束日期早于开始日期"),
            ("from=2025-01-01&to=2026-12-31", "一次最多查询 366 天"),
            ("from=2026-13-01&to=2026-12-31", "日期格式应为"),
            ("from=yesterday", "日期格式应为"),
            ("to=2026-02-30", "日期格式应为"),
        ] {
            for ext in ["", ".xlsx", ".csv"] {
                let path = format!("/staff/reports/sales{ext}?{q}");
                let r = app.get(Some(&admin), &path).await;
                assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
                assert!(r.headers().get(CONTENT_DISPOSITION).is_none(), "{path}");
                assert!(
                    r.headers()[CONTENT_TYPE]
                        .to_str()
                        .unwrap()
                        .starts_with("text/html")
                );
                let html = r.text().await.unwrap();
                assert!(
                    html.contains("id=report-error") && html.contains(reason),
                    "{path}: {html}"
                );
            }
        }
        assert!(app.audit("report_exported").await.is_empty());
        // 366 days is the most; an unknown report or format is not found.
        let r = app
            .get(
                Some(&admin),
                "/staff/reports/sales.xlsx?from=2025-01-01&to=2026-01-01",
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        for path in ["/staff/reports/unknown", "/staff/reports/sales.pdf"] {
            assert_eq!(
                app.get(Some(&admin), path).await.status(),
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
    })
    .await;
}
