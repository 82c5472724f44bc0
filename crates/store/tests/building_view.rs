//! The live building view (issue 14 item 4): one query per building, the
//! state of every room, the filters; and keep-power as routine polling
//! reads it from status word 3 (item 4 of the relay task). Both backends.

mod common;

use common::{NOW, operator, seeded_two_buildings};
use domain::staff::Role;
use store::Db;
use store::building_view::{self, Filter};
use store::meters::{self, MeterEvent, Observation};
use store::relay::{self, Outcome, Reason, RelayAction};

const DAY_START: i64 = NOW - 3_600_000;

/// The first building and its meters, by id.
async fn first_building(db: &Db) -> (i64, Vec<i64>) {
    let b: i64 = store::on_db!(db, |p| sqlx::query_scalar::<_, i64>(
        "select min(id) from building"
    )
    .fetch_one(p)
    .await)
    .unwrap();
    let m: Vec<i64> = store::on_db!(db, |p| sqlx::query_scalar::<_, i64>(
        "select m.id from meter m join room r on r.id = m.room_id where r.building_id = $1
         order by m.id"
    )
    .bind(b)
    .fetch_all(p)
    .await)
    .unwrap();
    (b, m)
}

fn obs(meter_id: i64, at_ms: i64) -> Observation {
    Observation {
        meter_id,
        at_ms,
        seen: true,
        online: Some(true),
        ..Observation::default()
    }
}

#[tokio::test]
async fn the_view_shows_every_room_and_the_filters_pick_the_right_ones() {
    for db in seeded_two_buildings().await {
        let (b, m) = first_building(&db).await;
        assert!(
            m.len() >= 6,
            "{:?}: a building of {} meters",
            db.backend(),
            m.len()
        );
        let rooms: i64 = store::on_db!(&db, |p| sqlx::query_scalar::<_, i64>(
            "select count(*) from room where building_id = $1"
        )
        .bind(b)
        .fetch_one(p)
        .await)
        .unwrap();
        // m[0] online, closed, plenty; m[1] tripped for malicious load
        // today; m[2] low; m[3] in overdraft; m[4] read yesterday only;
        // the rest never read (offline, not read today).
        let mut o0 = obs(m[0], NOW);
        o0.relay_closed = Some(true);
        o0.power_w = Some(850);
        o0.remaining_centikwh = Some(12_000);
        let mut o1 = obs(m[1], NOW);
        o1.relay_closed = Some(false);
        o1.relay_reason = Some("malicious_load".into());
        o1.remaining_centikwh = Some(9_000);
        let mut o2 = obs(m[2], NOW);
        o2.relay_closed = Some(true);
        o2.remaining_centikwh = Some(300);
        let mut o3 = obs(m[3], NOW);
        o3.relay_closed = Some(true);
        o3.remaining_centikwh = Some(0);
        o3.overdraft_centikwh = Some(150);
        let mut o4 = obs(m[4], DAY_START - 60_000);
        o4.remaining_centikwh = Some(5_000);
        let trip = |at_ms, detail: &str| MeterEvent {
            meter_id: m[1],
            at_ms,
            kind: "trip".into(),
            detail: detail.into(),
        };
        let events = [
            trip(NOW - 1000, "malicious_load; trips since install 3"),
            trip(NOW - 500, "malicious_load; trips since install 4"),
            // Yesterday's and another reason's do not count.
            trip(DAY_START - 1, "malicious_load; trips since install 2"),
            trip(NOW - 200, "over_power"),
        ];
        meters::record(&db, &[o0, o1, o2, o3, o4], &events, &[], NOW)
            .await
            .unwrap();
        let (_, actor) = operator(&db, "li", Role::Administrator).await;
        relay::request(
            &db,
            &actor,
            &[m[2]],
            RelayAction::Trip,
            &Reason::parse("检修").unwrap(),
            NOW,
        )
        .await
        .unwrap();

        let cells = building_view::cells(&db, b, DAY_START).await.unwrap();
        assert_eq!(
            cells.len() as i64,
            rooms,
            "{:?}: one cell per room",
            db.backend()
        );
        let cell = |id: i64| cells.iter().find(|c| c.meter_id == Some(id)).unwrap();
        assert_eq!(cell(m[0]).power_w, Some(850));
        assert_eq!(cell(m[0]).online, Some(true));
        assert_eq!(cell(m[1]).relay_reason.as_deref(), Some("malicious_load"));
        assert_eq!(cell(m[1]).malicious_trips_today, 2, "{:?}", db.backend());
        assert_eq!(cell(m[2]).open_command.as_deref(), Some("trip"));
        assert_eq!(cell(m[2]).open_command_state.as_deref(), Some("queued"));
        assert_eq!(cell(m[0]).open_command, None);

        let pick = |f: Filter| -> Vec<i64> {
            cells
                .iter()
                .filter(|c| c.passes(f, DAY_START))
                .filter_map(|c| c.meter_id)
                .collect()
        };
        let never_read: Vec<i64> = m[5..].to_vec();
        assert_eq!(pick(Filter::PowerOff), [m[1]], "{:?}", db.backend());
        assert_eq!(pick(Filter::MaliciousToday), [m[1]]);
        assert_eq!(pick(Filter::LowBalance), [m[2]]);
        assert_eq!(pick(Filter::Overdraft), [m[3]]);
        assert_eq!(pick(Filter::Offline), never_read);
        let mut not_read = vec![m[4]];
        not_read.extend(&never_read);
        assert_eq!(pick(Filter::NotReadToday), not_read);

        // The index counts the same.
        let s = building_view::summaries(&db).await.unwrap();
        let mine = s.iter().find(|s| s.building_id == b).unwrap();
        assert_eq!(mine.meters, m.len() as i64);
        assert_eq!(mine.offline, never_read.len() as i64, "{:?}", db.backend());
        assert_eq!(mine.power_off, 1);
    }
}

#[tokio::test]
async fn a_retired_meter_leaves_the_view() {
    for db in seeded_two_buildings().await {
        let (b, m) = first_building(&db).await;
        store::on_db!(&db, |p| sqlx::query(
            "update meter set retired_at_ms = $2 where id = $1"
        )
        .bind(m[0])
        .bind(NOW)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
        let cells = building_view::cells(&db, b, DAY_START).await.unwrap();
        assert!(cells.iter().all(|c| c.meter_id != Some(m[0])));
        let empty = cells.iter().filter(|c| c.meter_id.is_none()).count();
        assert_eq!(
            empty,
            1,
            "{:?}: the room stays, without a meter",
            db.backend()
        );
        assert!(Filter::ALL.iter().all(|&f| {
            cells
                .iter()
                .filter(|c| c.meter_id.is_none())
                .all(|c| !c.passes(f, DAY_START))
        }));
    }
}

#[tokio::test]
async fn routine_polling_reads_keep_power_from_status_word_3() {
    for db in seeded_two_buildings().await {
        let (_, m) = first_building(&db).await;
        let id = m[0];
        // A keep-power set at the meter itself (or a command whose outcome
        // was lost) shows up on the next routine read.
        let mut o = obs(id, NOW);
        o.status_word = Some(0x0100 | 0x4000);
        o.keep_power = Some(true);
        meters::record(&db, &[o], &[], &[], NOW).await.unwrap();
        assert!(
            relay::keep_power(&db, id).await.unwrap(),
            "{:?}: bit 14 read but keep-power not stored",
            db.backend()
        );
        // So no balance trip is queued for it.
        assert!(!relay::enqueue_balance_trip(&db, id, NOW).await.unwrap());
        let mut o = obs(id, NOW + 1000);
        o.status_word = Some(0x0100);
        o.keep_power = Some(false);
        meters::record(&db, &[o], &[], &[], NOW + 1000)
            .await
            .unwrap();
        assert!(!relay::keep_power(&db, id).await.unwrap());
        // A round without status word 3 leaves it alone.
        exec_keep(&db, id, true).await;
        meters::record(&db, &[obs(id, NOW + 2000)], &[], &[], NOW + 2000)
            .await
            .unwrap();
        assert!(relay::keep_power(&db, id).await.unwrap());
    }
}

async fn exec_keep(db: &Db, id: i64, on: bool) {
    store::on_db!(db, |p| sqlx::query(
        "update meter_state set keep_power = $2 where meter_id = $1"
    )
    .bind(id)
    .bind(on)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
}

#[tokio::test]
async fn an_older_read_written_late_does_not_undo_a_confirmed_keep_power() {
    for db in seeded_two_buildings().await {
        let (_, m) = first_building(&db).await;
        let id = m[0];
        common::exec(&db, "update meter_state set online = true").await;
        let (_, actor) = operator(&db, "zhao", Role::Administrator).await;
        relay::request(
            &db,
            &actor,
            &[id],
            RelayAction::KeepPower,
            &Reason::parse("医疗设备").unwrap(),
            NOW,
        )
        .await
        .unwrap();
        let c = relay::claim(&db, &[id], "he-1", NOW + 10, 30_000, 1)
            .await
            .unwrap()
            .remove(0);
        let ok = Outcome {
            accepted: true,
            status_word: Some(0x0100 | 0x4000),
            relay_closed: Some(true),
            error: None,
        };
        relay::finish(&db, &c, &ok, NOW + 20).await.unwrap();
        assert!(relay::keep_power(&db, id).await.unwrap());
        // A routine read taken before the command, batched and written after.
        let mut stale = obs(id, NOW + 5);
        stale.status_word = Some(0x0100);
        stale.keep_power = Some(false);
        meters::record(&db, &[stale], &[], &[], NOW + 30)
            .await
            .unwrap();
        assert!(
            relay::keep_power(&db, id).await.unwrap(),
            "{:?}: a stale read undid a confirmed keep-power",
            db.backend()
        );
        // A read taken after it is believed.
        let mut fresh = obs(id, NOW + 40);
        fresh.status_word = Some(0x0100);
        fresh.keep_power = Some(false);
        meters::record(&db, &[fresh], &[], &[], NOW + 40)
            .await
            .unwrap();
        assert!(!relay::keep_power(&db, id).await.unwrap());
    }
}

#[tokio::test]
async fn a_meters_history_is_newest_first_and_bounded() {
    for db in seeded_two_buildings().await {
        let (_, m) = first_building(&db).await;
        let id = m[0];
        let events: Vec<MeterEvent> = (0..5)
            .map(|i| MeterEvent {
                meter_id: id,
                at_ms: NOW + i,
                kind: "online".into(),
                detail: format!("e{i}"),
            })
            .collect();
        let mut o = obs(id, NOW);
        o.keep_readings = true;
        o.power_w = Some(100);
        o.remaining_centikwh = Some(2_000);
        let mut o2 = obs(id, NOW + 10);
        o2.keep_readings = true;
        o2.power_w = Some(200);
        meters::record(&db, &[o, o2], &events, &[], NOW + 10)
            .await
            .unwrap();
        let e = store::meter_history::recent_events(&db, id, 3)
            .await
            .unwrap();
        let d: Vec<&str> = e.iter().map(|e| e.detail.as_str()).collect();
        assert_eq!(d, ["e4", "e3", "e2"], "{:?}", db.backend());
        let r = store::meter_history::recent_readings(&db, id, 10)
            .await
            .unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].quantity.as_str(), r[0].value), ("power", 200));
        let s = store::students::create_demo(&db, "王五", NOW)
            .await
            .unwrap();
        store::on_db!(&db, |p| sqlx::query(
            "insert into binding (student_id, meter_id, is_default, created_at_ms) values ($1, $2, true, $3)"
        )
        .bind(s.id)
        .bind(id)
        .bind(NOW)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
        let b = store::meter_history::binders(&db, id).await.unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].openid, s.openid);
        assert!(b[0].is_default);
        assert!(
            store::meter_history::binders(&db, m[1])
                .await
                .unwrap()
                .is_empty()
        );
    }
}
