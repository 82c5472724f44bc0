//! The reference campus of the source document, as a pure plan that both
//! `dormwatt seed` (the registry) and the simulator (virtual meters) build
//! from, so the two always agree on addresses, buses and gateways.
//!
//! Layout decisions (PRODUCT.md §2 leaves them open; recorded here and in
//! docs/ARCHITECTURE.md):
//! - Zhonglan (中蓝) is six buildings: phase I zones A–E (160 meters each) and
//!   phase II (162 meters), 962 together.
//! - One meter per room. Rooms are numbered floor×100 + n; a building has
//!   six floors (three when it has fewer than 60 meters).
//! - Meters are wired in room order onto RS485 buses of at most 64 meters,
//!   split evenly; a gateway has at most four RS485 ports (buses).
//! - Meter address = `2017` + area number (2 digits) + building number within
//!   the area (2 digits) + meter number within the building (4 digits).
//! - Buses run at 2400 bps, the common default of DL/T 645-2007 meters.

use crate::{MeterAddress, UnitPrice};

/// Most meters one RS485 bus may carry (the transceiver unit-load limit).
pub const BUS_METERS_MAX: usize = 64;
/// RS485 ports per gateway in the reference plan.
pub const GATEWAY_BUSES_MAX: usize = 4;
/// Default bus speed.
pub const DEFAULT_BAUD: u32 = 2400;
/// The reference meter's hoarding limit (meter-profile.md, DI 04000F03):
/// it refuses a recharge that would take its balance above 500.00 kWh, so
/// the platform refuses such an order before payment.
pub const METER_HOARD_LIMIT_CENTIKWH: i64 = 50_000;

/// The whole platform: one or more areas.
#[derive(Debug, Clone)]
pub struct CampusPlan {
    /// The areas (schools/campuses), in display order.
    pub areas: Vec<AreaPlan>,
}

/// One area ("所属区域").
#[derive(Debug, Clone)]
pub struct AreaPlan {
    /// Short stable code, e.g. `cuc`.
    pub code: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// Tariff for the whole area.
    pub unit_price: UnitPrice,
    /// Buildings in display order.
    pub buildings: Vec<BuildingPlan>,
}

/// One building with its gateways.
#[derive(Debug, Clone)]
pub struct BuildingPlan {
    /// Chinese name, e.g. `47号楼`.
    pub name_zh: String,
    /// English name, e.g. `Building 47`.
    pub name_en: String,
    /// Gateways, each with up to four buses.
    pub gateways: Vec<GatewayPlan>,
}

impl BuildingPlan {
    /// Number of meters in the building.
    pub fn meter_count(&self) -> usize {
        self.gateways.iter().map(GatewayPlan::meter_count).sum()
    }

    /// All meters of the building in wiring order.
    pub fn meters(&self) -> impl Iterator<Item = &MeterPlan> {
        self.gateways
            .iter()
            .flat_map(|g| g.buses.iter().flat_map(|b| b.meters.iter()))
    }
}

/// One gateway (serial-to-TCP server).
#[derive(Debug, Clone)]
pub struct GatewayPlan {
    /// Name, unique on the platform, e.g. `cuc-47-gw2`. Also the registration
    /// id a gateway in client mode announces.
    pub name: String,
    /// Index of the gateway on the whole platform (0-based); the simulator
    /// listens on `base_port + index`.
    pub index: usize,
    /// The gateway's buses.
    pub buses: Vec<BusPlan>,
}

impl GatewayPlan {
    /// Number of meters behind the gateway.
    pub fn meter_count(&self) -> usize {
        self.buses.iter().map(|b| b.meters.len()).sum()
    }
}

/// One RS485 bus.
#[derive(Debug, Clone)]
pub struct BusPlan {
    /// Port number on the gateway (1-based, as printed on the box).
    pub port: u8,
    /// Bus speed in bit/s.
    pub baud: u32,
    /// Meters on the bus, in wiring order.
    pub meters: Vec<MeterPlan>,
}

/// One meter in one room.
#[derive(Debug, Clone)]
pub struct MeterPlan {
    /// Nameplate address.
    pub address: MeterAddress,
    /// Room number, e.g. `312`.
    pub room: String,
    /// Floor of the room.
    pub floor: u32,
}

/// Per-building meter counts of the source document (PRODUCT.md §2), with
/// Zhonglan's 962 split as described in the module docs.
pub const REFERENCE_BUILDINGS: [(&str, &str, usize); 16] = [
    ("4号楼", "Building 4", 30),
    ("7号楼", "Building 7", 118),
    ("8号楼", "Building 8", 72),
    ("34号楼", "Building 34", 110),
    ("35号楼", "Building 35", 79),
    ("36号楼", "Building 36", 114),
    ("38号楼", "Building 38", 82),
    ("41号楼", "Building 41", 130),
    ("43号楼", "Building 43", 149),
    ("47号楼", "Building 47", 470),
    ("中蓝一期A区", "Zhonglan I-A", 160),
    ("中蓝一期B区", "Zhonglan I-B", 160),
    ("中蓝一期C区", "Zhonglan I-C", 160),
    ("中蓝一期D区", "Zhonglan I-D", 160),
    ("中蓝一期E区", "Zhonglan I-E", 160),
    ("中蓝二期", "Zhonglan II", 162),
];

/// Total meters of the reference area.
pub const REFERENCE_METERS: usize = 2316;

/// The reference platform: the source's campus plus a small second area so
/// that the area choice is real.
pub fn reference_plan() -> CampusPlan {
    let mut gateway_index = 0;
    let main = build_area(
        1,
        "cuc",
        "中国传媒大学",
        "Communication University of China",
        const { UnitPrice::fixed(5300) },
        &REFERENCE_BUILDINGS,
        &mut gateway_index,
    );
    let second = build_area(
        2,
        "demo-east",
        "华东示范学院",
        "East Demo College",
        const { UnitPrice::fixed(5500) },
        &[("1号楼", "Building 1", 24), ("2号楼", "Building 2", 24)],
        &mut gateway_index,
    );
    CampusPlan {
        areas: vec![main, second],
    }
}

fn build_area(
    area_no: usize,
    code: &str,
    name_zh: &str,
    name_en: &str,
    unit_price: UnitPrice,
    buildings: &[(&str, &str, usize)],
    gateway_index: &mut usize,
) -> AreaPlan {
    let buildings = buildings
        .iter()
        .enumerate()
        .map(|(i, &(zh, en, n))| build_building(area_no, code, i + 1, zh, en, n, gateway_index))
        .collect();
    AreaPlan {
        code: code.to_owned(),
        name_zh: name_zh.to_owned(),
        name_en: name_en.to_owned(),
        unit_price,
        buildings,
    }
}

fn build_building(
    area_no: usize,
    area_code: &str,
    building_no: usize,
    name_zh: &str,
    name_en: &str,
    meters_total: usize,
    gateway_index: &mut usize,
) -> BuildingPlan {
    let floors = if meters_total < 60 { 3 } else { 6 };
    let per_floor = meters_total.div_ceil(floors);
    let meters: Vec<MeterPlan> = (0..meters_total)
        .map(|i| {
            let floor = i / per_floor + 1;
            let room = floor * 100 + i % per_floor + 1;
            // 2017 AA BB NNNN: the plan has < 100 areas, < 100 buildings
            // per area and < 10,000 meters per building.
            let number = 201_700_000_000
                + (area_no as u64 % 100) * 1_000_000
                + (building_no as u64 % 100) * 10_000
                + (i as u64 + 1) % 10_000;
            MeterPlan {
                address: MeterAddress::from_low_digits(number),
                room: room.to_string(),
                floor: u32::try_from(floor).unwrap_or(u32::MAX),
            }
        })
        .collect();
    let bus_count = meters_total.div_ceil(BUS_METERS_MAX).max(1);
    let mut buses = Vec::with_capacity(bus_count);
    let mut rest = meters.as_slice();
    for b in 0..bus_count {
        // Even split: the first `meters_total % bus_count` buses take one more.
        let take = meters_total / bus_count + usize::from(b < meters_total % bus_count);
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        buses.push(chunk.to_vec());
    }
    let gateways = buses
        .chunks(GATEWAY_BUSES_MAX)
        .enumerate()
        .map(|(g, chunk)| {
            let gw = GatewayPlan {
                name: format!("{area_code}-b{building_no:02}-gw{}", g + 1),
                index: *gateway_index,
                buses: chunk
                    .iter()
                    .enumerate()
                    .map(|(p, m)| BusPlan {
                        port: u8::try_from(p + 1).unwrap_or(u8::MAX),
                        baud: DEFAULT_BAUD,
                        meters: m.clone(),
                    })
                    .collect(),
            };
            *gateway_index += 1;
            gw
        })
        .collect();
    BuildingPlan {
        name_zh: name_zh.to_owned(),
        name_en: name_en.to_owned(),
        gateways,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Addresses are 2017 + area (2 digits) + building (2) + meter (4).
    #[test]
    fn meter_addresses_follow_the_numbering_plan() {
        let plan = reference_plan();
        let addresses = |a: usize, b: usize| -> Vec<String> {
            plan.areas[a].buildings[b]
                .gateways
                .iter()
                .flat_map(|g| g.buses.iter())
                .flat_map(|bus| bus.meters.iter())
                .map(|m| m.address.to_string())
                .collect()
        };
        assert_eq!(addresses(0, 0)[0], "201701010001");
        assert_eq!(addresses(0, 15)[0], "201701160001");
        assert_eq!(addresses(1, 1)[0], "201702020001");
        let n = plan.areas[0].buildings[0].meter_count();
        assert_eq!(
            addresses(0, 0).last().cloned(),
            Some(format!("20170101{n:04}"))
        );
    }

    #[test]
    fn reference_area_matches_the_source() {
        let plan = reference_plan();
        let main = &plan.areas[0];
        assert_eq!(main.buildings.len(), 16);
        let total: usize = main.buildings.iter().map(BuildingPlan::meter_count).sum();
        assert_eq!(total, REFERENCE_METERS);
        for (b, (zh, _, n)) in main.buildings.iter().zip(REFERENCE_BUILDINGS) {
            assert_eq!(b.name_zh, zh);
            assert_eq!(b.meter_count(), n);
        }
        let zhonglan: usize = main.buildings[10..]
            .iter()
            .map(BuildingPlan::meter_count)
            .sum();
        assert_eq!(zhonglan, 962);
    }

    #[test]
    fn buses_and_gateways_respect_limits_and_addresses_are_unique() {
        let plan = reference_plan();
        let mut addrs = HashSet::new();
        let mut gw_index = HashSet::new();
        for area in &plan.areas {
            for b in &area.buildings {
                let mut rooms = HashSet::new();
                for g in &b.gateways {
                    assert!(g.buses.len() <= GATEWAY_BUSES_MAX);
                    assert!(gw_index.insert(g.index));
                    for bus in &g.buses {
                        assert!(!bus.meters.is_empty() && bus.meters.len() <= BUS_METERS_MAX);
                        for m in &bus.meters {
                            assert!(addrs.insert(m.address));
                            assert!(rooms.insert(m.room.clone()));
                        }
                    }
                }
            }
        }
        assert_eq!(addrs.len(), REFERENCE_METERS + 48);
        // 47号楼: 470 meters → 8 buses of ≤64 → 2 gateways.
        let b47 = &plan.areas[0].buildings[9];
        assert_eq!(b47.gateways.iter().map(|g| g.buses.len()).sum::<usize>(), 8);
        assert_eq!(b47.gateways.len(), 2);
    }
}
