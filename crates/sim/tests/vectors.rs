//! The simulated meter's replies byte for byte against the vectors of
//! protocol-notes §5 (meter 123456789012).

use dlt645::decode;
use domain::campus::{AreaPlan, BuildingPlan, BusPlan, CampusPlan, GatewayPlan, MeterPlan};
use sim::{Fleet, LoadConfig, SimConfig};

/// 2025-09-01 08:00:00 Asia/Shanghai, before V10's deadline.
const START_MS: i64 = 1_756_684_800_000;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

fn one_meter_fleet() -> Fleet {
    let plan = CampusPlan {
        areas: vec![AreaPlan {
            code: "t".into(),
            name_zh: "测试".into(),
            name_en: "Test".into(),
            unit_price: domain::UnitPrice::from_centifen_per_kwh(5300).unwrap(),
            buildings: vec![BuildingPlan {
                name_zh: "1号楼".into(),
                name_en: "Building 1".into(),
                gateways: vec![GatewayPlan {
                    name: "t-gw1".into(),
                    index: 0,
                    buses: vec![BusPlan {
                        port: 1,
                        baud: 2400,
                        meters: vec![MeterPlan {
                            address: domain::MeterAddress::parse("123456789012").unwrap(),
                            room: "101".into(),
                            floor: 1,
                        }],
                    }],
                }],
            }],
        }],
    };
    let mut cfg = SimConfig {
        start_ms: Some(START_MS),
        speed: 0.0,
        ..SimConfig::default()
    };
    cfg.env.load = LoadConfig {
        appliance_rate: 0.0,
        heating_season: Some(false),
    };
    Fleet::from_plan(&plan, cfg)
}

/// Sends the request bytes, returns the reply bytes.
fn ask(f: &Fleet, req: &str) -> Option<Vec<u8>> {
    let (frame, _) = decode(&hex(req)).unwrap();
    f.transact(&frame, false)
}

#[test]
fn replies_match_protocol_notes_vectors() {
    let f = one_meter_fleet();
    f.set_remaining("123456789012", 3550).unwrap();
    // V07a → V07b: remaining 35.50 kWh.
    assert_eq!(
        ask(
            &f,
            "FE FE FE FE 68 12 90 78 56 34 12 68 11 04 33 34 C3 33 F8 16"
        ),
        Some(hex(
            "FE FE FE FE 68 12 90 78 56 34 12 68 91 08 33 34 C3 33 83 68 33 33 CD 16"
        ))
    );
    // V09a → V09b: read address with AA×6, the only meter on the bus.
    assert_eq!(
        ask(&f, "FE FE FE FE 68 AA AA AA AA AA AA 68 13 00 DF 16"),
        Some(hex(
            "FE FE FE FE 68 12 90 78 56 34 12 68 93 06 45 C3 AB 89 67 45 07 16"
        ))
    );
    // V10 (trip, password 02/123456, valid until 2025-12-31) → V12a.
    assert_eq!(
        ask(
            &f,
            "FE FE FE FE 68 12 90 78 56 34 12 68 1C 10 35 89 67 45 AB 89 67 45 4D 33 8C 8C 56 64 45 58 EB 16"
        ),
        Some(hex("FE FE FE FE 68 12 90 78 56 34 12 68 9C 00 22 16"))
    );
    // V13a → V13b: status word 3 = 0150 (relay open, commanded open, kWh prepaid).
    assert_eq!(
        ask(
            &f,
            "FE FE FE FE 68 12 90 78 56 34 12 68 11 04 36 38 33 37 73 16"
        ),
        Some(hex(
            "FE FE FE FE 68 12 90 78 56 34 12 68 91 06 36 38 33 37 83 34 AC 16"
        ))
    );
    // V11: close allowed → V12a; then V17a (write alarm 1 = 10.00) → V17b.
    assert_eq!(
        ask(
            &f,
            "FE FE FE FE 68 12 90 78 56 34 12 68 1C 10 35 89 67 45 AB 89 67 45 4E 33 8C 8C 56 64 45 58 EC 16"
        ),
        Some(hex("FE FE FE FE 68 12 90 78 56 34 12 68 9C 00 22 16"))
    );
    assert_eq!(
        ask(
            &f,
            "FE FE FE FE 68 12 90 78 56 34 12 68 14 10 34 42 33 37 35 89 67 45 AB 89 67 45 33 43 33 33 B0 16"
        ),
        Some(hex("FE FE FE FE 68 12 90 78 56 34 12 68 94 00 1A 16"))
    );
    // V10 with a wrong password (02/123457) → V12b, ERR bit2.
    assert_eq!(
        ask(
            &f,
            "FE FE FE FE 68 12 90 78 56 34 12 68 1C 10 35 8A 67 45 AB 89 67 45 4D 33 8C 8C 56 64 45 58 EC 16"
        ),
        Some(hex("FE FE FE FE 68 12 90 78 56 34 12 68 DC 01 37 9A 16"))
    );
    // V04a: voltage replies with L = 6; V14 broadcast time gets no reply.
    let v = ask(
        &f,
        "FE FE FE FE 68 12 90 78 56 34 12 68 11 04 33 34 34 35 6B 16",
    )
    .unwrap();
    assert_eq!(v[13], 0x06);
    assert_eq!(
        ask(
            &f,
            "FE FE FE FE 68 99 99 99 99 99 99 68 08 06 33 33 3B 34 3C 58 DD 16"
        ),
        None
    );
}
