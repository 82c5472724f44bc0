//! No-cut hours and scheduled power-off hours (issue 14 item 6, part 3):
//! the windows, their validation, the scheduler's edges (once per meter
//! and edge even with several schedulers racing; crossing midnight;
//! catch-up; keep-power meters skipped). Both backends; the race runs at
//! READ COMMITTED on PostgreSQL.

mod common;

use common::{NOW, at_once, audit_rows, exec, operator};
use domain::AreaId;
use domain::staff::Role;
use jiff::tz::TimeZone;
use store::Db;
use store::relay::{self, Outcome, Reason, RelayAction};
use store::schedule::{self, BadWindow, WindowKind, WindowSpec};

/// NOW is Thursday 2026-11-26 00:00 in Asia/Shanghai (no DST).
fn local(day: i64, h: i64, m: i64) -> i64 {
    NOW + day * 86_400_000 + (h * 60 + m) * 60_000
}

fn tz() -> TimeZone {
    TimeZone::get("Asia/Shanghai").unwrap()
}

const EVERY_DAY: [u8; 7] = [0, 1, 2, 3, 4, 5, 6];

async fn first_building(db: &Db) -> (i64, i64) {
    store::on_db!(db, |p| sqlx::query_as::<_, (i64, i64)>(
        "select id, area_id from building order by id limit 1"
    )
    .fetch_one(p)
    .await)
    .unwrap()
}

async fn meters_of(db: &Db, building: i64) -> Vec<i64> {
    store::on_db!(db, |p| sqlx::query_scalar::<_, i64>(
        "select m.id from meter m join room r on r.id = m.room_id
         where r.building_id = $1 and m.retired_at_ms is null order by m.id"
    )
    .bind(building)
    .fetch_all(p)
    .await)
    .unwrap()
}

/// (meter, command, state) of the scheduler's commands, by id.
async fn scheduled(db: &Db) -> Vec<(i64, String, String)> {
    store::on_db!(db, |p| sqlx::query_as::<_, (i64, String, String)>(
        "select meter_id, command, state from relay_command where operator_name = '(scheduler)'
         order by id"
    )
    .fetch_all(p)
    .await)
    .unwrap()
}

async fn set_keep_power(db: &Db, meter: i64) {
    store::on_db!(db, |p| sqlx::query(
        "update meter_state set keep_power = true where meter_id = $1"
    )
    .bind(meter)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
}

/// Plays the head-end: claims every open command and records it accepted.
async fn execute_all(db: &Db, meters: &[i64], now: i64) -> usize {
    exec(db, "update meter_state set online = true").await;
    let claimed = relay::claim(db, meters, "he", now, 30_000, 1000)
        .await
        .unwrap();
    for c in &claimed {
        let o = Outcome {
            accepted: true,
            status_word: Some(0x0300),
            relay_closed: Some(true),
            error: None,
        };
        relay::finish(db, c, &o, now).await.unwrap();
    }
    claimed.len()
}

async fn tick(db: &Db, now: i64) -> schedule::TickReport {
    schedule::tick(db, &tz(), now, 10_000).await.unwrap()
}

#[test]
fn windows_are_validated() {
    assert_eq!(
        WindowSpec::parse("24:00", "06:00", &[0]),
        Err(BadWindow::BadTime)
    );
    assert_eq!(
        WindowSpec::parse("7:00", "08:00", &[0]),
        Err(BadWindow::BadTime)
    );
    assert_eq!(
        WindowSpec::parse("07:60", "08:00", &[0]),
        Err(BadWindow::BadTime)
    );
    assert_eq!(
        WindowSpec::parse("", "08:00", &[0]),
        Err(BadWindow::BadTime)
    );
    assert_eq!(
        WindowSpec::parse("22:00", "22:00", &[0]),
        Err(BadWindow::Empty)
    );
    assert_eq!(
        WindowSpec::parse("22:00", "08:00", &[]),
        Err(BadWindow::NoWeekday)
    );
    assert_eq!(
        WindowSpec::parse("22:00", "08:00", &[7]),
        Err(BadWindow::NoWeekday)
    );
    let w = WindowSpec::parse(" 23:30 ", "06:00", &[0, 1, 2, 3, 4]).unwrap();
    assert_eq!(
        (w.start_minute, w.end_minute, w.weekdays),
        (1410, 360, 0x1f)
    );
    assert!(w.crosses_midnight());
}

#[test]
fn an_occurrence_crosses_midnight_on_the_day_it_starts() {
    // Weekdays Monday to Friday, 23:30 to 06:00. NOW is a Thursday.
    let w = WindowSpec::parse("23:30", "06:00", &[0, 1, 2, 3, 4]).unwrap();
    let tz = tz();
    let thu = (local(0, 23, 30), local(1, 6, 0));
    assert_eq!(w.occurrence_at(local(0, 23, 29), &tz), None);
    assert_eq!(w.occurrence_at(local(0, 23, 30), &tz), Some(thu));
    // Friday 02:00 is inside Thursday's occurrence.
    assert_eq!(w.occurrence_at(local(1, 2, 0), &tz), Some(thu));
    assert_eq!(w.occurrence_at(local(1, 6, 0), &tz), None);
    // Friday night's occurrence ends on Saturday morning.
    let fri = (local(1, 23, 30), local(2, 6, 0));
    assert_eq!(w.occurrence_at(local(2, 5, 59), &tz), Some(fri));
    // Saturday and Sunday do not start one: Sunday 02:00 and Monday 02:00 are free.
    assert_eq!(w.occurrence_at(local(2, 23, 45), &tz), None);
    assert_eq!(w.occurrence_at(local(3, 2, 0), &tz), None);
    assert_eq!(w.occurrence_at(local(4, 2, 0), &tz), None);
    // A window inside one day.
    let d = WindowSpec::parse("12:00", "14:00", &[3]).unwrap();
    assert_eq!(
        d.occurrence_at(local(0, 13, 0), &tz),
        Some((local(0, 12, 0), local(0, 14, 0)))
    );
    assert_eq!(d.occurrence_at(local(1, 13, 0), &tz), None);
}

#[tokio::test]
async fn no_cut_hours_keep_power_and_release_only_their_own() {
    for db in common::seeded_two_buildings().await {
        let (_, actor) = operator(&db, "wang", Role::Administrator).await;
        let (b, area) = first_building(&db).await;
        let ms = meters_of(&db, b).await;
        assert!(ms.len() >= 4, "{:?}", db.backend());
        // Staff had put ms[0] under keep-power before the window.
        set_keep_power(&db, ms[0]).await;
        let spec = WindowSpec::parse("22:00", "08:00", &EVERY_DAY).unwrap();
        schedule::set_window(
            &db,
            &actor,
            AreaId::new(area),
            Some(b),
            WindowKind::NoCut,
            spec,
            NOW,
        )
        .await
        .unwrap();
        assert_eq!(audit_rows(&db, "policy_window_set").await.len(), 1);
        // Before the window: nothing.
        assert_eq!(tick(&db, local(0, 21, 59)).await.started, 0);
        let r = tick(&db, local(0, 22, 0)).await;
        assert_eq!(
            (r.opened, r.started, r.skipped),
            (1, ms.len() as u64 - 1, 1)
        );
        // Again inside the window: nothing more.
        let again = tick(&db, local(0, 22, 5)).await;
        assert_eq!((again.opened, again.started), (0, 0));
        let cmds = scheduled(&db).await;
        assert_eq!(cmds.len(), ms.len() - 1);
        assert!(cmds.iter().all(|(_, c, _)| c == "keep_power"));
        assert!(!cmds.iter().any(|(m, _, _)| *m == ms[0]));
        assert_eq!(execute_all(&db, &ms, local(0, 22, 6)).await, ms.len() - 1);
        assert!(relay::keep_power(&db, ms[1]).await.unwrap());
        // A trip for balance is refused now.
        assert!(
            !relay::enqueue_balance_trip(&db, ms[1], local(0, 23, 0))
                .await
                .unwrap()
        );
        // Staff put ms[1] under keep-power during the window: it stays after.
        let reason = Reason::parse("医疗").unwrap();
        relay::request(
            &db,
            &actor,
            &[ms[1]],
            RelayAction::KeepPower,
            &reason,
            local(0, 23, 0),
        )
        .await
        .unwrap();
        execute_all(&db, &ms, local(0, 23, 1)).await;
        // The end, the next morning.
        assert_eq!(tick(&db, local(1, 7, 59)).await.ended, 0);
        let end = tick(&db, local(1, 8, 0)).await;
        assert_eq!((end.ended, end.skipped), (ms.len() as u64 - 2, 1));
        let fin = tick(&db, local(1, 8, 1)).await;
        assert_eq!((fin.ended, fin.finished), (0, 1));
        let releases: Vec<i64> = scheduled(&db)
            .await
            .into_iter()
            .filter(|(_, c, _)| c == "keep_power_release")
            .map(|(m, _, _)| m)
            .collect();
        assert_eq!(releases, ms[2..].to_vec(), "{:?}", db.backend());
        execute_all(&db, &ms, local(1, 8, 2)).await;
        assert!(relay::keep_power(&db, ms[0]).await.unwrap());
        assert!(relay::keep_power(&db, ms[1]).await.unwrap());
        assert!(!relay::keep_power(&db, ms[2]).await.unwrap());
        let edges = schedule::edges_of_meter(&db, ms[1]).await.unwrap();
        assert_eq!(edges[1].skipped.as_deref(), Some("staff_keep_power"));
    }
}

#[tokio::test]
async fn power_off_hours_cross_midnight_catch_up_and_skip_keep_power_meters() {
    for db in common::seeded_two_buildings().await {
        let (_, actor) = operator(&db, "li", Role::Administrator).await;
        let (b, area) = first_building(&db).await;
        let ms = meters_of(&db, b).await;
        set_keep_power(&db, ms[0]).await;
        // The whole area, weekdays 23:30–06:00.
        let spec = WindowSpec::parse("23:30", "06:00", &[0, 1, 2, 3, 4]).unwrap();
        schedule::set_window(
            &db,
            &actor,
            AreaId::new(area),
            None,
            WindowKind::PowerOff,
            spec,
            NOW,
        )
        .await
        .unwrap();
        let area_meters: i64 = store::on_db!(&db, |p| sqlx::query_scalar::<_, i64>(
            "select count(*) from meter where area_id = $1 and retired_at_ms is null"
        )
        .bind(area)
        .fetch_one(p)
        .await)
        .unwrap();
        // The scheduler was down at 23:30; it comes back at 02:00 (Friday).
        let r = tick(&db, local(1, 2, 0)).await;
        assert_eq!(r.opened, 1);
        assert_eq!(r.started + r.skipped, area_meters as u64);
        assert_eq!(r.skipped, 1);
        let cmds = scheduled(&db).await;
        assert!(cmds.iter().all(|(_, c, s)| c == "trip" && s == "queued"));
        assert!(!cmds.iter().any(|(m, _, _)| *m == ms[0]));
        let trips = audit_rows(&db, "relay_requested").await;
        assert_eq!(trips.len(), cmds.len().min(100));
        assert_eq!(trips[0].operator_name, "(scheduler)");
        assert!(
            trips[0]
                .after_json
                .as_deref()
                .unwrap()
                .contains("scheduled")
        );
        // The head-end sent the building's; the rest stayed queued (offline).
        execute_all(&db, &ms, local(1, 2, 1)).await;
        // 06:00 Friday: closes for the sent ones, the unsent trips cancelled.
        let end = tick(&db, local(1, 6, 0)).await;
        assert_eq!(end.ended, ms.len() as u64 - 1);
        assert_eq!(end.skipped, area_meters as u64 - ms.len() as u64);
        let after = scheduled(&db).await;
        let closes: Vec<i64> = after
            .iter()
            .filter(|(_, c, _)| c == "close")
            .map(|(m, _, _)| *m)
            .collect();
        assert_eq!(closes, ms[1..].to_vec());
        assert!(
            after
                .iter()
                .filter(|(m, c, _)| c == "trip" && !ms.contains(m))
                .all(|(_, _, s)| s == "cancelled")
        );
        // Friday 23:30 opens the next occurrence; Saturday 23:30 none.
        assert_eq!(tick(&db, local(1, 23, 31)).await.opened, 1);
        assert_eq!(tick(&db, local(2, 23, 31)).await.opened, 0);
    }
}

#[tokio::test]
async fn a_buildings_window_replaces_its_areas_and_clearing_ends_it() {
    for db in common::seeded_two_buildings().await {
        let (_, actor) = operator(&db, "zhao", Role::Administrator).await;
        let (b, area) = first_building(&db).await;
        let ms = meters_of(&db, b).await;
        let area_spec = WindowSpec::parse("23:00", "06:00", &EVERY_DAY).unwrap();
        let own = WindowSpec::parse("00:30", "05:00", &EVERY_DAY).unwrap();
        let a = AreaId::new(area);
        schedule::set_window(&db, &actor, a, None, WindowKind::PowerOff, area_spec, NOW)
            .await
            .unwrap();
        schedule::set_window(&db, &actor, a, Some(b), WindowKind::PowerOff, own, NOW)
            .await
            .unwrap();
        let applies = schedule::windows_of_meter(&db, ms[0]).await.unwrap();
        assert_eq!(applies.len(), 1);
        assert_eq!(applies[0].spec, own);
        // 23:10: the area's window, not for this building.
        tick(&db, local(0, 23, 10)).await;
        assert!(!scheduled(&db).await.iter().any(|(m, _, _)| ms.contains(m)));
        // 00:40: the building's own.
        let r = tick(&db, local(1, 0, 40)).await;
        assert_eq!(r.started, ms.len() as u64);
        // Cleared at 01:00: the next tick ends the occurrence at once.
        assert!(
            schedule::clear_window(
                &db,
                &actor,
                a,
                Some(b),
                WindowKind::PowerOff,
                local(1, 1, 0)
            )
            .await
            .unwrap()
        );
        assert_eq!(audit_rows(&db, "policy_window_cleared").await.len(), 1);
        execute_all(&db, &ms, local(1, 1, 0)).await;
        let end = tick(&db, local(1, 1, 1)).await;
        assert_eq!(end.ended, ms.len() as u64);
        // A second clear finds nothing and writes nothing.
        assert!(
            !schedule::clear_window(
                &db,
                &actor,
                a,
                Some(b),
                WindowKind::PowerOff,
                local(1, 1, 2)
            )
            .await
            .unwrap()
        );
        assert_eq!(audit_rows(&db, "policy_window_cleared").await.len(), 1);
        // A building of another area is refused, nothing written.
        let other: i64 = store::on_db!(&db, |p| sqlx::query_scalar::<_, i64>(
            "select id from building where area_id <> $1 order by id limit 1"
        )
        .bind(area)
        .fetch_one(p)
        .await)
        .unwrap();
        let bad =
            schedule::set_window(&db, &actor, a, Some(other), WindowKind::NoCut, own, NOW).await;
        assert!(
            matches!(bad, Err(schedule::SetError::NoSuchBuilding)),
            "{bad:?}"
        );
        assert_eq!(schedule::windows(&db, a).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn a_tick_is_bounded() {
    for db in common::seeded_two_buildings().await {
        let (_, actor) = operator(&db, "qian", Role::Administrator).await;
        let (b, area) = first_building(&db).await;
        let ms = meters_of(&db, b).await;
        let spec = WindowSpec::parse("22:00", "08:00", &EVERY_DAY).unwrap();
        schedule::set_window(
            &db,
            &actor,
            AreaId::new(area),
            Some(b),
            WindowKind::NoCut,
            spec,
            NOW,
        )
        .await
        .unwrap();
        let first = schedule::tick(&db, &tz(), local(0, 22, 0), 3)
            .await
            .unwrap();
        assert_eq!(first.started, 3);
        let mut total = 3;
        for i in 1..1000 {
            let r = schedule::tick(&db, &tz(), local(0, 22, 0) + i, 3)
                .await
                .unwrap();
            assert!(r.started <= 3);
            if r.started == 0 {
                break;
            }
            total += r.started;
        }
        assert_eq!(total, ms.len() as u64);
    }
}

/// Several schedulers (nodes) tick the same edges at once: each meter gets
/// one command per edge.
#[tokio::test]
async fn racing_schedulers_queue_each_edge_once() {
    for db in common::seeded_two_buildings().await {
        let (_, actor) = operator(&db, "sun", Role::Administrator).await;
        let (b, area) = first_building(&db).await;
        let ms = meters_of(&db, b).await;
        let spec = WindowSpec::parse("23:30", "06:00", &EVERY_DAY).unwrap();
        schedule::set_window(
            &db,
            &actor,
            AreaId::new(area),
            Some(b),
            WindowKind::PowerOff,
            spec,
            NOW,
        )
        .await
        .unwrap();
        for (now, command) in [(local(0, 23, 30), "trip"), (local(1, 6, 0), "close")] {
            if command == "close" {
                execute_all(&db, &ms, now - 1).await;
            }
            let reports = at_once(&db, 6, move |db, _| async move {
                let mut started = 0;
                let mut ended = 0;
                loop {
                    let r = schedule::tick(&db, &tz(), now, 4).await.unwrap();
                    started += r.started;
                    ended += r.ended;
                    if r.started == 0 && r.ended == 0 {
                        return (started, ended);
                    }
                }
            })
            .await;
            let queued: u64 = reports.iter().map(|(s, e)| s + e).sum();
            assert_eq!(queued, ms.len() as u64, "{:?} {command}", db.backend());
            let mut per_meter: Vec<i64> = scheduled(&db)
                .await
                .into_iter()
                .filter(|(_, c, _)| c == command)
                .map(|(m, _, _)| m)
                .collect();
            per_meter.sort_unstable();
            assert_eq!(
                per_meter,
                ms,
                "{:?}: {command} not once per meter",
                db.backend()
            );
        }
    }
}
