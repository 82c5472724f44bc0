//! The reference meter profile, driven in process on a paused virtual clock
//! (no TCP, no real time): recharge rule, overdraft, relay control,
//! malicious-load and over-power trips, lockout, freezes, clock, faults.

use dlt645::value::{
    Bcd, MeterDateTime, OperatorCode, Password, Recharge, RechargeReply, RelayCommand,
    RelayControl, StatusWord3, WriteData,
};
use dlt645::{Address, Di, ErrorFlags, Frame, SecurityErrorFlags, request};
use sim::{Appliance, ApplianceKind, FaultConfig, Fleet, LoadConfig, SimConfig};

/// 2026-11-26 10:00 Asia/Shanghai.
const START_MS: i64 = 1_795_622_400_000 + 10 * 3_600_000;
const SHANGHAI_MS: i64 = 8 * 3_600_000;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const PW: Password = Password {
    level: 2,
    code: 0x123456,
};

fn fleet(meters: usize) -> (Fleet, Vec<Address>) {
    let mut cfg = SimConfig {
        start_ms: Some(START_MS),
        speed: 0.0,
        drift_ppm_max: 0,
        ..SimConfig::default()
    };
    // No natural kettles or heaters: the tests plug their own.
    cfg.env.load = LoadConfig {
        appliance_rate: 0.0,
        heating_season: Some(false),
    };
    let f = Fleet::from_plan(&sim::synthetic_plan(meters), cfg);
    let a = f.addresses()[0][0].clone();
    (f, a)
}

fn read(f: &Fleet, a: Address, di: Di) -> Frame {
    f.request(&request::read_request(a, di)).expect("reply")
}

fn read_num(f: &Fleet, a: Address, di: Di, bcd: Bcd) -> i64 {
    let r = read(f, a, di);
    assert_eq!(r.di(), Some(di), "{r:?}");
    bcd.decode(r.payload()).expect("bcd")
}

fn status(f: &Fleet, a: Address) -> StatusWord3 {
    StatusWord3::from_wire(read(f, a, Di::STATUS_WORD_3).payload()).expect("status")
}

fn meter_time(ms: i64) -> MeterDateTime {
    let ts = jiff::Timestamp::from_millisecond(ms + SHANGHAI_MS).unwrap();
    let dt = jiff::tz::Offset::UTC.to_datetime(ts);
    MeterDateTime::new(
        dt.year() as u16,
        dt.month() as u8,
        dt.day() as u8,
        dt.hour() as u8,
        dt.minute() as u8,
        dt.second() as u8,
    )
    .unwrap()
}

fn relay(f: &Fleet, a: Address, cmd: RelayCommand, pw: Password, valid_for_ms: i64) -> Frame {
    let rc = RelayControl {
        password: pw,
        operator: OperatorCode(0x1234_5678),
        command: cmd,
        reserved: 0,
        valid_until: meter_time(f.clock().now_ms() + valid_for_ms),
    };
    f.request(&request::relay_request(a, &rc)).expect("reply")
}

fn recharge(f: &Fleet, a: Address, energy_centikwh: u32, count: u32) -> Option<Frame> {
    let r = Recharge {
        operator: OperatorCode(7),
        energy_centikwh,
        purchase_count: count,
        mac1: [0; 4],
        customer: 312,
        mac2: [0; 4],
    };
    f.request(&request::recharge_request(a, &r).unwrap())
}

fn write(f: &Fleet, a: Address, di: Di, value: Vec<u8>) -> Frame {
    let w = WriteData {
        di,
        password: PW,
        operator: OperatorCode(1),
        value,
    };
    f.request(&request::write_request(a, &w).unwrap())
        .expect("reply")
}

#[test]
fn recharge_rule_repeat_gap_hoarding_and_apply() {
    let (f, m) = fleet(1);
    let a = m[0];
    let count = read_num(&f, a, Di::PURCHASE_COUNT, Bcd::COUNT) as u32;
    let before = read_num(&f, a, Di::REMAINING_ENERGY, Bcd::ENERGY);
    let bought = read_num(&f, a, Di::CUMULATIVE_PURCHASED_ENERGY, Bcd::ENERGY);

    let serr = |r: Option<Frame>| {
        let r = r.expect("reply");
        assert_eq!(r.control().byte(), 0xC3);
        r.security_error().expect("SERR")
    };
    assert_eq!(
        serr(recharge(&f, a, 2000, count)),
        SecurityErrorFlags::REPEAT_RECHARGE
    );
    assert_eq!(
        serr(recharge(&f, a, 2000, count + 2)),
        SecurityErrorFlags::COUNT_ERROR
    );
    assert_eq!(
        serr(recharge(&f, a, 60_000, count + 1)),
        SecurityErrorFlags::HOARDING_LIMIT
    );
    // Nothing changed.
    assert_eq!(read_num(&f, a, Di::REMAINING_ENERGY, Bcd::ENERGY), before);
    assert_eq!(
        read_num(&f, a, Di::PURCHASE_COUNT, Bcd::COUNT) as u32,
        count
    );

    let ok = recharge(&f, a, 2000, count + 1).expect("reply");
    assert_eq!(ok.control().byte(), 0x83);
    let reply = RechargeReply::from_wire(ok.data()).expect("reply data");
    assert_eq!(reply.purchase_count, count + 1);
    assert_eq!(reply.remaining_centikwh, before + 2000);
    assert_eq!(
        read_num(&f, a, Di::PURCHASE_COUNT, Bcd::COUNT) as u32,
        count + 1
    );
    assert_eq!(read_num(&f, a, Di::LAST_PURCHASE_ENERGY, Bcd::ENERGY), 2000);
    assert_eq!(
        read_num(&f, a, Di::CUMULATIVE_PURCHASED_ENERGY, Bcd::ENERGY),
        bought + 2000
    );
    // The same frame again is a repeat and adds nothing.
    assert_eq!(
        serr(recharge(&f, a, 2000, count + 1)),
        SecurityErrorFlags::REPEAT_RECHARGE
    );
    assert_eq!(
        read_num(&f, a, Di::REMAINING_ENERGY, Bcd::ENERGY),
        before + 2000
    );
}

#[test]
fn balance_runs_out_into_overdraft_then_trips_and_a_recharge_closes() {
    let (f, m) = fleet(1);
    let a = m[0];
    assert_eq!(
        write(&f, a, Di::OVERDRAFT_LIMIT, Bcd::ENERGY.encode(50).unwrap())
            .control()
            .byte(),
        0x94
    );
    f.set_remaining(&a.to_string(), 20).unwrap();
    let total0 = read_num(&f, a, Di::COMBINED_ACTIVE_ENERGY, Bcd::SIGNED_ENERGY);
    // Keep a steady 500 W so the energy goes quickly.
    f.plug(&a.to_string(), Appliance::parse("500W@0.7").unwrap(), None)
        .unwrap();
    f.clock().advance(2 * HOUR);
    let v = f.inspect(&a.to_string()).unwrap();
    assert_eq!(v.remaining_centikwh, 0);
    assert!(v.overdraft_centikwh >= 50, "{v:?}");
    assert!(v.relay_open);
    let s = status(&f, a);
    assert!(
        s.relay_open() && s.relay_commanded_open() && s.pre_trip_alarm(),
        "{s:?}"
    );
    // While open, nothing is counted.
    let total1 = read_num(&f, a, Di::COMBINED_ACTIVE_ENERGY, Bcd::SIGNED_ENERGY);
    assert!(total1 > total0);
    f.clock().advance(HOUR);
    assert_eq!(
        read_num(&f, a, Di::COMBINED_ACTIVE_ENERGY, Bcd::SIGNED_ENERGY),
        total1
    );
    let overdraft = read_num(&f, a, Di::OVERDRAFT_ENERGY, Bcd::ENERGY);
    // A recharge pays the overdraft back first and closes the relay.
    let count = read_num(&f, a, Di::PURCHASE_COUNT, Bcd::COUNT) as u32;
    recharge(&f, a, 1000, count + 1).expect("reply");
    assert_eq!(
        read_num(&f, a, Di::REMAINING_ENERGY, Bcd::ENERGY),
        1000 - overdraft
    );
    assert_eq!(read_num(&f, a, Di::OVERDRAFT_ENERGY, Bcd::ENERGY), 0);
    assert!(!status(&f, a).relay_open());
    assert!(read(&f, a, Di::LAST_CLOSE_EVENT).payload().len() >= 6);
}

#[test]
fn relay_commands_password_deadline_and_keep_power() {
    let (f, m) = fleet(1);
    let a = m[0];
    let wrong = Password {
        level: 2,
        code: 0x111111,
    };
    let r = relay(&f, a, RelayCommand::Trip, wrong, HOUR);
    assert_eq!(
        (r.control().byte(), r.error_flags()),
        (0xDC, Some(ErrorFlags::PASSWORD))
    );
    assert!(!status(&f, a).relay_open());
    let r = relay(&f, a, RelayCommand::Trip, PW, -MINUTE);
    assert_eq!(
        (r.control().byte(), r.error_flags()),
        (0xDC, Some(ErrorFlags::OTHER))
    );
    assert!(!status(&f, a).relay_open());

    assert_eq!(
        relay(&f, a, RelayCommand::Trip, PW, HOUR).control().byte(),
        0x9C
    );
    let s = status(&f, a);
    assert!(s.relay_open() && s.relay_commanded_open());
    let trip = read(&f, a, Di::LAST_TRIP_EVENT);
    assert_eq!(
        MeterDateTime::from_wire_seconds(&trip.payload()[..6]).unwrap(),
        meter_time(START_MS)
    );
    relay(&f, a, RelayCommand::CloseAllowed, PW, HOUR);
    assert!(!status(&f, a).relay_open());

    relay(&f, a, RelayCommand::KeepPower, PW, HOUR);
    relay(&f, a, RelayCommand::Trip, PW, HOUR);
    let s = status(&f, a);
    assert!(s.keep_power() && !s.relay_open(), "{s:?}");
    relay(&f, a, RelayCommand::KeepPowerRelease, PW, HOUR);
    assert!(status(&f, a).relay_open());
}

#[test]
fn kettle_trips_restores_trips_again_and_locks_out_until_direct_close() {
    let (f, m) = fleet(1);
    let a = m[0];
    let addr = a.to_string();
    // Plugged at once: the meter's window already holds the room's load.
    f.plug(&addr, Appliance::preset(ApplianceKind::Kettle), None)
        .unwrap();
    // 8 samples of 10 s after the step: well within two minutes.
    f.clock().advance(2 * MINUTE);
    let s = status(&f, a);
    assert!(
        s.relay_open() && s.malicious_load_trip() && !s.relay_commanded_open(),
        "{s:?}"
    );
    assert_eq!(read_num(&f, a, Di::MALICIOUS_LOAD_TRIPS, Bcd::COUNT), 1);
    assert!(read(&f, a, Di::LAST_MALICIOUS_LOAD_TRIP).payload().len() == 6);
    // Auto-restore after 5 minutes; the kettle is still on: caught again.
    f.clock().advance(5 * MINUTE);
    f.clock().advance(2 * MINUTE);
    assert_eq!(read_num(&f, a, Di::MALICIOUS_LOAD_TRIPS, Bcd::COUNT), 2);
    // Two more rounds reach 4 trips today > 3 allowed: locked out.
    f.clock().advance(14 * MINUTE);
    assert_eq!(read_num(&f, a, Di::MALICIOUS_LOAD_TRIPS, Bcd::COUNT), 4);
    let s = status(&f, a);
    assert!(s.locked_out() && s.relay_open(), "{s:?}");
    // Lockout survives the restore delay...
    f.clock().advance(HOUR);
    assert!(status(&f, a).relay_open());
    assert_eq!(read_num(&f, a, Di::MALICIOUS_LOAD_TRIPS, Bcd::COUNT), 4);
    // ...and only a direct close (with the kettle gone) ends it.
    f.unplug(&addr).unwrap();
    relay(&f, a, RelayCommand::CloseAllowed, PW, HOUR);
    assert!(status(&f, a).locked_out());
    relay(&f, a, RelayCommand::DirectClose, PW, HOUR);
    let s = status(&f, a);
    assert!(
        !s.relay_open() && !s.locked_out() && !s.malicious_load_trip(),
        "{s:?}"
    );
    f.clock().advance(HOUR);
    assert!(!status(&f, a).relay_open());
}

#[test]
fn laptops_do_not_trip_but_a_big_inductive_load_trips_over_power() {
    let (f, m) = fleet(2);
    f.clock().advance(2 * MINUTE);
    // A 700 W non-resistive step (PF 0.6) is not malicious.
    f.plug(
        &m[0].to_string(),
        Appliance::parse("700W@0.6").unwrap(),
        None,
    )
    .unwrap();
    // 3 kW at PF 0.6 exceeds the 2.5 kW limit but is not resistive.
    f.plug(
        &m[1].to_string(),
        Appliance::parse("3000W@0.6").unwrap(),
        None,
    )
    .unwrap();
    f.clock().advance(3 * MINUTE);
    assert!(!status(&f, m[0]).relay_open());
    let s = status(&f, m[1]);
    assert!(
        s.relay_open() && s.over_power_trip() && !s.malicious_load_trip(),
        "{s:?}"
    );
    assert_eq!(read_num(&f, m[1], Di::OVER_POWER_TRIPS, Bcd::COUNT), 1);
    // Raising the limit by a 14H write stops the trips after the restore.
    write(
        &f,
        m[1],
        Di::POWER_LIMIT,
        Bcd::POWER_LIMIT.encode(40_000).unwrap(),
    );
    assert_eq!(
        read_num(&f, m[1], Di::POWER_LIMIT, Bcd::POWER_LIMIT),
        40_000
    );
    f.clock().advance(30 * MINUTE);
    assert!(!status(&f, m[1]).relay_open());
    assert_eq!(read_num(&f, m[1], Di::OVER_POWER_TRIPS, Bcd::COUNT), 1);
}

#[test]
fn daily_freeze_at_meter_midnight_keeps_62_days() {
    let (f, m) = fleet(1);
    let a = m[0];
    let t = |r: Frame| MeterDateTime::from_wire_minutes(r.payload()).unwrap();
    let first = t(read(&f, a, Di::LAST_DAILY_FREEZE_TIME));
    assert_eq!(first.to_string(), "2026-11-26 00:00:00");
    // 14 h later it is 00:00:10 on the 27th: a new freeze.
    f.clock().advance(14 * HOUR + 10_000);
    let total = read_num(&f, a, Di::COMBINED_ACTIVE_ENERGY, Bcd::SIGNED_ENERGY);
    assert_eq!(
        t(read(&f, a, Di::LAST_DAILY_FREEZE_TIME)).to_string(),
        "2026-11-27 00:00:00"
    );
    assert_eq!(t(read(&f, a, Di::daily_freeze_time(2).unwrap())), first);
    let block = read(&f, a, Di::LAST_DAILY_FREEZE_ENERGY);
    assert_eq!(block.payload().len(), 20);
    let frozen = Bcd::ENERGY.decode(&block.payload()[..4]).unwrap();
    assert!(frozen <= total && total - frozen < 10, "{frozen} {total}");
    let prev = Bcd::ENERGY
        .decode(&read(&f, a, Di::daily_freeze_energy(2).unwrap()).payload()[..4])
        .unwrap();
    assert!(prev < frozen);
    // 62 kept; the 63rd does not exist.
    assert_eq!(
        read(&f, a, Di::daily_freeze_energy(62).unwrap())
            .control()
            .byte(),
        0x91
    );
    let r = read(&f, a, Di(0x0506_003F));
    assert_eq!(r.error_flags(), Some(ErrorFlags::NO_DATA));
}

#[test]
fn broadcast_time_corrects_small_errors_once_a_day() {
    let (f, m) = fleet(1);
    let a = m[0];
    let now = f.clock().now_ms();
    let clock = |f: &Fleet| f.inspect(&a.to_string()).unwrap().clock_error_ms;
    assert_eq!(clock(&f), 0);
    // +10 min is too large.
    f.transact(
        &request::broadcast_time_request(meter_time(now + 10 * MINUTE)),
        false,
    );
    assert_eq!(clock(&f), 0);
    f.transact(
        &request::broadcast_time_request(meter_time(now + 3 * MINUTE)),
        false,
    );
    assert_eq!(clock(&f), 3 * MINUTE);
    // A second correction the same day is ignored.
    f.transact(&request::broadcast_time_request(meter_time(now)), false);
    assert_eq!(clock(&f), 3 * MINUTE);
    // A 14H write of the time sets it regardless.
    let w = write(&f, a, Di::TIME, meter_time(now).to_wire_time().to_vec());
    assert_eq!(w.control().byte(), 0x94);
    assert_eq!(clock(&f), 0);
}

#[test]
fn clock_drift_accumulates() {
    let mut cfg = SimConfig {
        start_ms: Some(START_MS),
        speed: 0.0,
        drift_ppm_max: 50,
        ..SimConfig::default()
    };
    cfg.env.load.appliance_rate = 0.0;
    let f = Fleet::from_plan(&sim::synthetic_plan(20), cfg);
    f.clock().advance(10 * 24 * HOUR);
    let errors: Vec<i64> = f.addresses()[0][0]
        .iter()
        .map(|a| f.inspect(&a.to_string()).unwrap().clock_error_ms)
        .collect();
    // 50 ppm over 10 days is at most 43.2 s.
    assert!(errors.iter().all(|e| e.abs() <= 43_200), "{errors:?}");
    assert!(errors.iter().any(|e| e.abs() > 1_000), "{errors:?}");
}

#[test]
fn unknown_di_and_change_password() {
    let (f, m) = fleet(1);
    let a = m[0];
    let r = read(&f, a, Di(0x0400_0999));
    assert_eq!(
        (r.control().byte(), r.error_flags()),
        (0xD1, Some(ErrorFlags::NO_DATA))
    );
    let new = Password {
        level: 2,
        code: 0x654321,
    };
    let r = f
        .request(&request::change_password_request(a, PW, new).unwrap())
        .unwrap();
    assert_eq!(r.control().byte(), 0x98);
    // The old password no longer works; the new one does.
    let r = relay(&f, a, RelayCommand::Trip, PW, HOUR);
    assert_eq!(r.error_flags(), Some(ErrorFlags::PASSWORD));
    assert_eq!(
        relay(&f, a, RelayCommand::Trip, new, HOUR).control().byte(),
        0x9C
    );
}

#[test]
fn bus_faults_lose_requests_or_replies_as_configured() {
    let (f, m) = fleet(1);
    let a = m[0];
    let count = read_num(&f, a, Di::PURCHASE_COUNT, Bcd::COUNT) as u32;
    let frame = request::recharge_request(
        a,
        &Recharge {
            operator: OperatorCode(7),
            energy_centikwh: 500,
            purchase_count: count + 1,
            mac1: [0; 4],
            customer: 1,
            mac2: [0; 4],
        },
    )
    .unwrap();
    // Lost before the meter: no reply, not applied.
    f.set_faults(FaultConfig {
        request_loss: 1.0,
        ..FaultConfig::default()
    });
    assert!(f.transact(&frame, true).is_none());
    assert_eq!(f.inspect(&a.to_string()).unwrap().purchase_count, count);
    // Lost after the meter: no reply, but applied (the dangerous case).
    f.set_faults(FaultConfig {
        reply_loss: 1.0,
        ..FaultConfig::default()
    });
    assert!(f.transact(&frame, true).is_none());
    assert_eq!(f.inspect(&a.to_string()).unwrap().purchase_count, count + 1);
    // Corrupted: bytes come back but do not decode cleanly.
    f.set_faults(FaultConfig {
        corrupt: 1.0,
        ..FaultConfig::default()
    });
    let bytes = f
        .transact(&request::read_request(a, Di::REMAINING_ENERGY), true)
        .unwrap();
    let clean = f
        .transact(&request::read_request(a, Di::REMAINING_ENERGY), false)
        .unwrap();
    assert_eq!(bytes.len(), clean.len());
    assert_ne!(bytes, clean);
    assert!(dlt645::decode(&bytes).map(|(fr, _)| fr) != dlt645::decode(&clean).map(|(fr, _)| fr));
}

#[test]
fn offline_meter_is_silent_but_keeps_counting() {
    let (f, m) = fleet(1);
    let a = m[0];
    let total0 = read_num(&f, a, Di::COMBINED_ACTIVE_ENERGY, Bcd::SIGNED_ENERGY);
    f.set_offline(&a.to_string(), 2 * 24 * HOUR).unwrap();
    f.clock().advance(24 * HOUR);
    assert!(
        f.request(&request::read_request(a, Di::REMAINING_ENERGY))
            .is_none()
    );
    f.clock().advance(24 * HOUR);
    let total1 = read_num(&f, a, Di::COMBINED_ACTIVE_ENERGY, Bcd::SIGNED_ENERGY);
    // Two days of dorm use: a few kWh.
    assert!(total1 - total0 > 100, "{total0} {total1}");
}

#[test]
fn scheduled_offline_windows_follow_the_rate() {
    let (f, m) = fleet(64);
    f.set_faults(FaultConfig {
        offline_per_day: 0.5,
        offline_ms_min: 6 * HOUR,
        offline_ms_max: 12 * HOUR,
        ..FaultConfig::default()
    });
    let mut silent = 0;
    for step in 0..8 {
        f.clock().advance(3 * HOUR + step * 7 * MINUTE);
        silent += m
            .iter()
            .filter(|&&a| {
                f.transact(&request::read_request(a, Di::TIME), true)
                    .is_none()
            })
            .count();
    }
    // Half the meters start one 6–12 h outage a day: a sizeable minority
    // of the 512 reads fails, far from none and far from all.
    assert!((30..300).contains(&silent), "{silent}");
}

#[test]
fn a_meter_added_while_the_fleet_runs_answers_on_its_bus() {
    let (f, _) = fleet(8);
    let g = f.gateways()[0].clone();
    let (port, _, before) = g.buses[0];
    let new = Address::parse("209903010001").unwrap();
    assert!(
        f.request(&request::read_request(new, Di::STATUS_WORD_3))
            .is_none(),
        "unknown before"
    );
    assert_eq!(f.add_meter(&g.name, port, "209903010001", "901"), Ok(true));
    // Once only; a bus the gateway lacks is an error.
    assert_eq!(f.add_meter(&g.name, port, "209903010001", "901"), Ok(false));
    assert!(f.add_meter(&g.name, 99, "209903010002", "902").is_err());
    assert!(
        f.add_meter("no-such-gw", port, "209903010002", "902")
            .is_err()
    );
    assert_eq!(f.meter_count(), 9);
    assert_eq!(f.gateways()[0].buses[0].2, before + 1);
    assert_eq!(f.room_of("209903010001").unwrap(), "901");
    let _ = status(&f, new);
    assert!(f.addresses()[0][0].contains(&new));
}

#[test]
fn out_of_range_parameter_writes_are_refused_and_change_nothing() {
    let (f, m) = fleet(1);
    let a = m[0];
    let limit = read_num(&f, a, Di::POWER_LIMIT, Bcd::POWER_LIMIT);
    let step = read_num(&f, a, Di::MALICIOUS_LOAD_STEP, Bcd::WATTS);
    let pf = read_num(&f, a, Di::MALICIOUS_LOAD_PF_THRESHOLD, Bcd::RATIO);
    for (di, value) in [
        (Di::POWER_LIMIT, Bcd::POWER_LIMIT.encode(999).unwrap()),
        (Di::POWER_LIMIT, Bcd::POWER_LIMIT.encode(100_010).unwrap()),
        (Di::MALICIOUS_LOAD_STEP, Bcd::WATTS.encode(99).unwrap()),
        (Di::MALICIOUS_LOAD_STEP, Bcd::WATTS.encode(5_001).unwrap()),
        (
            Di::MALICIOUS_LOAD_PF_THRESHOLD,
            Bcd::RATIO.encode(500).unwrap(),
        ),
        (
            Di::MALICIOUS_LOAD_PF_THRESHOLD,
            Bcd::RATIO.encode(1_000).unwrap(),
        ),
    ] {
        let r = write(&f, a, di, value);
        assert!(r.control().is_abnormal(), "{di:?}: {r:?}");
    }
    assert_eq!(read_num(&f, a, Di::POWER_LIMIT, Bcd::POWER_LIMIT), limit);
    assert_eq!(read_num(&f, a, Di::MALICIOUS_LOAD_STEP, Bcd::WATTS), step);
    assert_eq!(
        read_num(&f, a, Di::MALICIOUS_LOAD_PF_THRESHOLD, Bcd::RATIO),
        pf
    );
    // In range: applied.
    let r = write(
        &f,
        a,
        Di::MALICIOUS_LOAD_PF_THRESHOLD,
        Bcd::RATIO.encode(999).unwrap(),
    );
    assert!(!r.control().is_abnormal(), "{r:?}");
    assert_eq!(
        read_num(&f, a, Di::MALICIOUS_LOAD_PF_THRESHOLD, Bcd::RATIO),
        999
    );
}
