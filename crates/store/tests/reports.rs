//! Staff reports (issue 14 item 7) on SQLite and, when
//! `DORMWATT_TEST_PG_URL` is set, on PostgreSQL: known rows are seeded and
//! every report's figures are compared with totals computed here, in Rust,
//! from the seeded list (not by a second query).

mod common;

use common::NOW;
use domain::order::Channel;
use domain::time::{day_number, local_date};
use std::collections::BTreeMap;
use store::dashboard::Within;
use store::reports::{self, OfflineBucket, Range, RangeError};
use store::{Db, testing};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn tz() -> jiff::tz::TimeZone {
    domain::time::CampusTz::default().tz().clone()
}

/// The campus day of an instant.
fn day_of(ms: i64) -> i64 {
    day_number(local_date(ms, &tz()))
}

/// `NOW` is midnight starting 2026-11-26 in Shanghai: day D0.
fn d0() -> i64 {
    day_of(NOW)
}

async fn run(db: &Db, sql: String) {
    store::on_db!(db, |p| sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
    .expect(&sql);
}

/// A meter: (id, address, building id, bus id, created_at_ms).
type MeterInfo = (i64, String, i64, Option<i64>, i64);

async fn meters(db: &Db) -> Vec<MeterInfo> {
    store::on_db!(db, |p| sqlx::query_as(
        "select m.id, m.address, r.building_id, m.bus_id, m.created_at_ms
         from meter m join room r on r.id = m.room_id order by m.id"
    )
    .fetch_all(p)
    .await)
    .expect("meters")
}

/// Two meters of different buildings: (first building's, second's).
fn two_buildings(ms: &[MeterInfo]) -> (MeterInfo, MeterInfo) {
    let a = ms[0].clone();
    let b = ms
        .iter()
        .find(|m| m.2 != a.2)
        .expect("a second building")
        .clone();
    (a, b)
}

async fn seeded() -> Vec<Db> {
    testing::all_seeded_cut(2, NOW)
        .await
        .expect("seeded test databases")
}

fn only(building: i64) -> Within {
    Within {
        areas: None,
        buildings: Some(vec![building]),
    }
}

#[test]
fn ranges_are_bounded() {
    assert_eq!(Range::new(10, 9), Err(RangeError::Backwards));
    assert_eq!(
        Range::new(0, 366).map(Range::days),
        Err(RangeError::TooLong)
    );
    assert_eq!(Range::new(0, 365).map(Range::days), Ok(366));
}

/// One seeded order: (meter, channel, operator, kwh, amount, paid, refunded).
type Sale = (
    i64,
    Channel,
    &'static str,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
);

#[tokio::test]
async fn sales_by_day_channel_and_cashier_with_refunds_apart() {
    for db in seeded().await {
        let ms = meters(&db).await;
        let (a, b) = two_buildings(&ms);
        let start = NOW; // 00:00 of D0
        let sales: Vec<Sale> = vec![
            (
                a.0,
                Channel::Wechat,
                "",
                10,
                600,
                Some(start - DAY + 10 * HOUR),
                None,
            ),
            // The last millisecond of D0 − 1 belongs to it.
            (a.0, Channel::Wechat, "", 5, 300, Some(start - 1), None),
            // The first of D0 to D0; refunded on D0 + 1.
            (
                b.0,
                Channel::Wechat,
                "",
                2,
                120,
                Some(start),
                Some(start + DAY + 10 * HOUR),
            ),
            (
                a.0,
                Channel::Counter,
                "alice",
                20,
                1200,
                Some(start + HOUR),
                None,
            ),
            (
                a.0,
                Channel::Counter,
                "alice",
                3,
                180,
                Some(start + 2 * HOUR),
                None,
            ),
            (
                b.0,
                Channel::Counter,
                "bob",
                1,
                60,
                Some(start + 3 * HOUR),
                None,
            ),
            // Outside the range: paid before it, refunded in it.
            (
                b.0,
                Channel::Counter,
                "bob",
                4,
                240,
                Some(start - 5 * DAY),
                Some(start + 5 * HOUR),
            ),
            (
                a.0,
                Channel::Counter,
                "alice",
                7,
                420,
                Some(start - 5 * DAY),
                None,
            ),
            // Never paid.
            (a.0, Channel::Wechat, "", 9, 540, None, None),
        ];
        for (i, (m, ch, op, kwh, amount, paid, refunded)) in sales.iter().enumerate() {
            let state = if refunded.is_some() {
                "refunded"
            } else if paid.is_some() {
                "completed"
            } else {
                "unpaid"
            };
            let opt = |v: &Option<i64>| v.map_or("null".to_owned(), |x| x.to_string());
            let operator = if op.is_empty() {
                "null".to_owned()
            } else {
                format!("'{op}'")
            };
            run(
                &db,
                format!(
                    "insert into orders (out_trade_no, meter_id, area_id, kwh, unit_price_centifen_per_kwh,
                        amount_fen, channel, state, operator, created_at_ms, expires_at_ms, paid_at_ms,
                        refunded_at_ms, updated_at_ms)
                     select 'R{i}', id, area_id, {kwh}, 6000, {amount}, '{}', '{state}', {operator},
                        {c}, {c}, {}, {}, {c} from meter where id = {m}",
                    ch.as_str(),
                    opt(paid),
                    opt(refunded),
                    c = start - 6 * DAY,
                ),
            )
            .await;
        }
        let range = Range::new(d0() - 1, d0() + 1).unwrap();
        for (w, building) in [(Within::default(), None), (only(a.2), Some(a.2))] {
            // Expected, from the list: key (day, channel, cashier).
            let mut want: BTreeMap<(i64, &str, &str), [i64; 5]> = BTreeMap::new();
            for (m, ch, op, kwh, amount, paid, refunded) in &sales {
                let bld = ms.iter().find(|x| x.0 == *m).unwrap().2;
                if building.is_some_and(|b| b != bld) {
                    continue;
                }
                let in_range = |d: i64| d >= range.from && d <= range.to;
                if let Some(p) = paid.map(day_of).filter(|d| in_range(*d)) {
                    let e = want.entry((p, ch.as_str(), op)).or_default();
                    e[0] += 1;
                    e[1] += kwh;
                    e[2] += amount;
                }
                if let Some(r) = refunded.map(day_of).filter(|d| in_range(*d)) {
                    let e = want.entry((r, ch.as_str(), op)).or_default();
                    e[3] += 1;
                    e[4] += amount;
                }
            }
            let got = reports::sales(&db, &w, range, &tz()).await.unwrap();
            let got: BTreeMap<(i64, &str, &str), [i64; 5]> = got
                .iter()
                .map(|r| {
                    (
                        (r.day, r.channel.as_str(), r.cashier.as_str()),
                        [r.orders, r.kwh, r.amount.get(), r.refunds, r.refunded.get()],
                    )
                })
                .collect();
            assert_eq!(got, want, "{:?} {building:?}", db.backend());
            if building.is_none() {
                // Spot checks of the boundaries, by hand.
                assert_eq!(got[&(d0() - 1, "wechat", "")], [2, 15, 900, 0, 0]);
                assert_eq!(got[&(d0(), "counter", "alice")], [2, 23, 1380, 0, 0]);
                assert_eq!(got[&(d0() + 1, "wechat", "")], [0, 0, 0, 1, 120]);
                assert_eq!(got[&(d0(), "counter", "bob")], [1, 1, 60, 1, 240]);
            }
        }
    }
}

#[tokio::test]
async fn usage_by_building_and_day_counts_missing_days_apart() {
    for db in seeded().await {
        let ms = meters(&db).await;
        let (a, b) = two_buildings(&ms);
        let a2 = ms
            .iter()
            .find(|m| m.2 == a.2 && m.0 != a.0)
            .unwrap()
            .clone();
        // (meter, day, usage; None = missing)
        let rows: Vec<(i64, i64, Option<i64>)> = vec![
            (a.0, d0() - 2, Some(350)),
            (a2.0, d0() - 2, Some(120)),
            (b.0, d0() - 2, None),
            (a.0, d0() - 1, None),
            (a2.0, d0() - 1, Some(0)),
            (b.0, d0() - 1, Some(999)),
            (a.0, d0() - 3, Some(5000)), // before the range
        ];
        for (m, day, usage) in &rows {
            let (u, status) =
                usage.map_or(("null".to_owned(), "missing"), |u| (u.to_string(), "ok"));
            run(
                &db,
                format!(
                    "insert into daily_usage (meter_id, day, usage_centikwh, total_end_centikwh, status, updated_at_ms)
                     values ({m}, {day}, {u}, null, '{status}', 1)"
                ),
            )
            .await;
        }
        let range = Range::new(d0() - 2, d0()).unwrap();
        for (w, building) in [(Within::default(), None), (only(b.2), Some(b.2))] {
            let mut want: BTreeMap<(i64, i64), [i64; 3]> = BTreeMap::new();
            for (m, day, usage) in &rows {
                let bld = ms.iter().find(|x| x.0 == *m).unwrap().2;
                if building.is_some_and(|x| x != bld) || *day < range.from || *day > range.to {
                    continue;
                }
                let e = want.entry((*day, bld)).or_default();
                match usage {
                    Some(u) => {
                        e[0] += u;
                        e[1] += 1;
                    }
                    None => e[2] += 1,
                }
            }
            let got: BTreeMap<(i64, i64), [i64; 3]> = reports::usage(&db, &w, range)
                .await
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        (r.day, r.building_id),
                        [r.usage.get(), r.meters_read, r.meters_missing],
                    )
                })
                .collect();
            assert_eq!(got, want, "{:?}", db.backend());
        }
    }
}

#[tokio::test]
async fn read_success_is_freezes_received_over_due_per_bus_and_day() {
    for db in seeded().await {
        // Every meter registered ten days ago, but one in the middle of D0 − 2.
        run(
            &db,
            format!("update meter set created_at_ms = {}", NOW - 10 * DAY),
        )
        .await;
        let ms0 = meters(&db).await;
        let late = ms0[1].0;
        run(
            &db,
            format!(
                "update meter set created_at_ms = {} where id = {late}",
                NOW - 2 * DAY + 12 * HOUR
            ),
        )
        .await;
        // A meter on no bus is due nothing.
        let (a, b) = two_buildings(&ms0);
        let ms = meters(&db).await;
        // Freezes received: (meter, day, end total known?)
        let rows: Vec<(i64, i64, bool)> = vec![
            (ms[0].0, d0() - 3, true),
            (ms[0].0, d0() - 2, true),
            (ms[0].0, d0() - 1, false), // marked missing
            (late, d0() - 2, true),
            (late, d0() - 1, true),
            (b.0, d0() - 1, true),
            (ms[0].0, d0(), true), // today: not due, not counted
        ];
        for (m, day, read) in &rows {
            let (t, status) = if *read {
                ("1000", "ok")
            } else {
                ("null", "missing")
            };
            run(
                &db,
                format!(
                    "insert into daily_usage (meter_id, day, usage_centikwh, total_end_centikwh, status, updated_at_ms)
                     values ({m}, {day}, null, {t}, '{status}', 1)"
                ),
            )
            .await;
        }
        let range = Range::new(d0() - 3, d0()).unwrap();
        for (w, building) in [(Within::default(), None), (only(a.2), Some(a.2))] {
            let mut want: BTreeMap<(i64, i64), [i64; 2]> = BTreeMap::new();
            for day in range.from..d0() {
                let day_end =
                    domain::time::day_start_ms(domain::time::date_of_day_number(day + 1), &tz());
                for (id, _, bld, bus, created) in &ms {
                    let Some(bus) = bus else { continue };
                    if building.is_some_and(|x| x != *bld) || *created >= day_end {
                        continue;
                    }
                    let e = want.entry((day, *bus)).or_default();
                    e[0] += 1;
                    if rows
                        .iter()
                        .any(|(m, d, read)| m == id && *d == day && *read)
                    {
                        e[1] += 1;
                    }
                }
            }
            let got = reports::read_success(&db, &w, range, d0(), &tz())
                .await
                .unwrap();
            let got_map: BTreeMap<(i64, i64), [i64; 2]> = got
                .iter()
                .map(|r| ((r.day, r.bus_id), [r.due, r.received]))
                .collect();
            assert_eq!(got_map, want, "{:?} {building:?}", db.backend());
            assert!(got.iter().all(|r| r.day < d0()), "today is never due");
            assert!(got.iter().all(|r| r.ratio_bp().unwrap() <= 10_000));
        }
        // By hand: the late meter's bus on D0 − 3 is due one fewer meter
        // than on D0 − 2, and received one more that day.
        let bus = ms.iter().find(|m| m.0 == late).unwrap().3.unwrap();
        let got = reports::read_success(&db, &Within::default(), range, d0(), &tz())
            .await
            .unwrap();
        let on = |day: i64| {
            got.iter()
                .find(|r| r.day == day && r.bus_id == bus)
                .unwrap()
                .clone()
        };
        assert_eq!(on(d0() - 3).due + 1, on(d0() - 2).due);
        // Nothing before the range was due: an empty range is no rows.
        let none = reports::read_success(
            &db,
            &Within::default(),
            Range::new(d0(), d0() + 2).unwrap(),
            d0(),
            &tz(),
        )
        .await
        .unwrap();
        assert!(none.is_empty(), "{none:?}");
    }
}

#[tokio::test]
async fn malicious_load_trips_by_room() {
    for db in seeded().await {
        let ms = meters(&db).await;
        let (a, b) = two_buildings(&ms);
        let events: Vec<(i64, i64, &str, &str)> = vec![
            (a.0, NOW - DAY + HOUR, "trip", "malicious_load"),
            (a.0, NOW - DAY + 2 * HOUR, "trip", "malicious_load"),
            (
                a.0,
                NOW + HOUR,
                "trip",
                "malicious_load; trips since install 7",
            ),
            (a.0, NOW + 2 * HOUR, "trip", "over_power"),
            (a.0, NOW + 3 * HOUR, "restore", "malicious_load"),
            (a.0, NOW + 5 * DAY, "trip", "malicious_load"), // after the range
            (b.0, NOW + 4 * HOUR, "trip", "malicious_load"),
            (b.0, NOW + 4 * HOUR, "trip", "malicious_loadX"),
        ];
        for (m, at, kind, detail) in &events {
            run(
                &db,
                format!("insert into meter_event (meter_id, at_ms, kind, detail) values ({m}, {at}, '{kind}', '{detail}')"),
            )
            .await;
        }
        let range = Range::new(d0() - 1, d0()).unwrap();
        let got = reports::trips(&db, &Within::default(), range, &tz())
            .await
            .unwrap();
        let summary: Vec<(String, i64, i64)> = got
            .iter()
            .map(|r| (r.meter_address.clone(), r.trips, r.last_at_ms))
            .collect();
        assert_eq!(
            summary,
            [
                (a.1.clone(), 3, NOW + HOUR),
                (b.1.clone(), 1, NOW + 4 * HOUR)
            ],
            "{:?}",
            db.backend()
        );
        let mine = reports::trips(&db, &only(b.2), range, &tz()).await.unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].meter_address, b.1);
    }
}

#[tokio::test]
async fn offline_meters_by_how_long() {
    for db in seeded().await {
        let ms = meters(&db).await;
        let (a, b) = two_buildings(&ms);
        let c = ms
            .iter()
            .find(|m| m.0 != a.0 && m.0 != b.0)
            .unwrap()
            .clone();
        run(
            &db,
            format!("update meter_state set online = true, last_seen_at_ms = {NOW}"),
        )
        .await;
        run(
            &db,
            format!(
                "update meter_state set online = false, last_seen_at_ms = {} where meter_id = {}",
                NOW - 30 * 60_000,
                a.0
            ),
        )
        .await;
        run(
            &db,
            format!(
                "update meter_state set online = false, last_seen_at_ms = {} where meter_id = {}",
                NOW - 2 * DAY,
                b.0
            ),
        )
        .await;
        run(
            &db,
            format!(
                "update meter_state set online = false, last_seen_at_ms = null where meter_id = {}",
                c.0
            ),
        )
        .await;
        let now = NOW + 1000;
        let got = reports::offline(&db, &Within::default()).await.unwrap();
        let summary: Vec<(String, OfflineBucket)> = got
            .iter()
            .map(|r| {
                (
                    r.meter_address.clone(),
                    OfflineBucket::of(r.offline_ms(now)),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (b.1.clone(), OfflineBucket::UnderThreeDays),
                (a.1.clone(), OfflineBucket::UnderHour),
                (c.1.clone(), OfflineBucket::Never),
            ],
            "{:?}",
            db.backend()
        );
        let mine = reports::offline(&db, &only(b.2)).await.unwrap();
        assert_eq!(mine.len(), usize::from(c.2 == b.2) + 1);
    }
}

#[test]
fn offline_buckets_have_closed_lower_bounds() {
    assert_eq!(OfflineBucket::of(Some(HOUR - 1)), OfflineBucket::UnderHour);
    assert_eq!(OfflineBucket::of(Some(HOUR)), OfflineBucket::UnderDay);
    assert_eq!(OfflineBucket::of(Some(3 * DAY)), OfflineBucket::UnderWeek);
    assert_eq!(OfflineBucket::of(Some(7 * DAY)), OfflineBucket::WeekOrMore);
    assert_eq!(OfflineBucket::of(None), OfflineBucket::Never);
}
