//! A day of the simulated campus on a paused clock: believable usage, the
//! natural forbidden appliances get caught, and a seed reproduces the run.

use sim::{Fleet, LoadConfig, SimConfig};

/// 2026-11-26 00:00 Asia/Shanghai.
const DAY0_MS: i64 = 1_795_622_400_000;
const DAY_MS: i64 = 86_400_000;

fn fleet(seed: u64) -> Fleet {
    let mut cfg = SimConfig {
        seed,
        start_ms: Some(DAY0_MS),
        speed: 0.0,
        ..SimConfig::default()
    };
    cfg.env.load = LoadConfig {
        appliance_rate: 1.0,
        heating_season: Some(true),
    };
    Fleet::from_plan(&sim::synthetic_plan(256), cfg)
}

fn views(f: &Fleet) -> Vec<sim::MeterView> {
    f.addresses()
        .iter()
        .flatten()
        .flatten()
        .map(|a| f.inspect(&a.to_string()).unwrap())
        .collect()
}

#[test]
fn a_day_of_dorm_life() {
    let f = fleet(7);
    let before = views(&f);
    f.clock().advance(DAY_MS);
    f.advance_all();
    let after = views(&f);
    let used: Vec<i64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| i64::from(a.total_centikwh) - i64::from(b.total_centikwh))
        .collect();
    let mean = used.iter().sum::<i64>() / used.len() as i64;
    // A four-person dorm room uses a few kWh a day.
    assert!((150..1500).contains(&mean), "mean {mean} centikWh/day");
    assert!(used.iter().all(|&u| u > 0));
    let trips: u32 = after.iter().map(|v| u32::from(v.malicious_trips)).sum();
    let tripped_rooms = after.iter().filter(|v| v.malicious_trips > 0).count();
    eprintln!("mean use {mean} centikWh/day; {tripped_rooms} rooms tripped, {trips} trips");
    // Kettles, dryers, cookers and heaters show up in a minority of rooms
    // and the meters catch them.
    assert!(
        (5..200).contains(&tripped_rooms),
        "{tripped_rooms} rooms, {trips} trips"
    );
    // Every room got a new daily freeze at midnight.
    assert!(after.iter().all(|v| v.freezes == 62));

    // The same seed reproduces the day exactly; another seed does not.
    let g = fleet(7);
    g.clock().advance(DAY_MS);
    let again: Vec<(u32, u16)> = views(&g)
        .iter()
        .map(|v| (v.total_centikwh, v.malicious_trips))
        .collect();
    let first: Vec<(u32, u16)> = after
        .iter()
        .map(|v| (v.total_centikwh, v.malicious_trips))
        .collect();
    assert_eq!(first, again);
    let h = fleet(8);
    h.clock().advance(DAY_MS);
    let other: Vec<u32> = views(&h).iter().map(|v| v.total_centikwh).collect();
    assert_ne!(first.iter().map(|x| x.0).collect::<Vec<_>>(), other);
}
