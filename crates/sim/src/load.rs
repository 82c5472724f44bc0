//! The electrical load of one dorm room over time.
//!
//! The load is a pure function of `(room seed, instant)`: counter-based
//! randomness (a hash of the seed and the time slot) instead of a stateful
//! RNG, so a meter that is touched only once a day computes exactly the same
//! energy as one that is polled every second, and 100,000 rooms need no
//! per-room generator state.
//!
//! The model: a few occupants who are in the room and awake with an
//! hour-of-day probability, each running a laptop and a phone charger; LED
//! lights in the evening; a router on standby; and now and then a forbidden
//! resistive appliance (kettle, hair dryer, rice cooker, or in the heating
//! season an electric heater) that the meter's malicious-load detection is
//! meant to catch.

use serde::Serialize;

/// Milliseconds in an hour.
const HOUR_MS: i64 = 3_600_000;
/// Milliseconds in a day.
pub(crate) const DAY_MS: i64 = 86_400_000;
/// The base load is redrawn every five minutes: people do not switch laptops
/// on and off every few seconds, and a slower load keeps lazy catch-up cheap.
pub(crate) const BASE_SLOT_MS: i64 = 300_000;

/// A stateless 64-bit mixer (the finaliser of SplitMix64): good enough to
/// turn (seed, slot) into independent-looking draws.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A draw for `(seed, a, b)`.
pub(crate) fn draw(seed: u64, a: u64, b: u64) -> u64 {
    mix(seed ^ mix(a ^ mix(b)))
}

/// Instantaneous load: active power P (W) and apparent power S (VA).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Load {
    /// Active power in watts.
    pub p_w: u32,
    /// Apparent power in volt-amperes (≥ P).
    pub s_va: u32,
}

impl Load {
    fn add(&mut self, p_w: u32, pf_milli: u32) {
        self.p_w += p_w;
        self.s_va += p_w * 1000 / pf_milli.clamp(100, 1000);
    }

    /// Power factor in thousandths (1000 when there is no load).
    pub fn pf_milli(self) -> u32 {
        (self.p_w * 1000)
            .checked_div(self.s_va)
            .map_or(1000, |pf| pf.min(1000))
    }
}

/// Kinds of appliance that can be plugged into a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplianceKind {
    /// Electric kettle: resistive, ~1.8 kW, a few minutes.
    Kettle,
    /// Electric fan heater: resistive, ~1.5 kW, hours.
    Heater,
    /// Hair dryer: nearly resistive, ~1.2 kW.
    HairDryer,
    /// Rice cooker: resistive, ~0.7 kW.
    RiceCooker,
    /// Induction cooker: ~2.0 kW, power factor ~0.95.
    InductionCooker,
    /// A laptop: switch-mode supply, power factor ~0.6; never malicious.
    Laptop,
    /// Anything else, given by watts and power factor.
    Custom,
}

/// One appliance: kind, active power and power factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Appliance {
    /// What it is.
    pub kind: ApplianceKind,
    /// Active power drawn while on, watts.
    pub watts: u32,
    /// Power factor in thousandths (1000 = purely resistive).
    pub pf_milli: u16,
}

impl Appliance {
    /// The preset for a kind (typical nameplate values).
    pub fn preset(kind: ApplianceKind) -> Self {
        let (watts, pf_milli) = match kind {
            ApplianceKind::Kettle => (1800, 1000),
            ApplianceKind::Heater => (1500, 1000),
            ApplianceKind::HairDryer => (1200, 990),
            ApplianceKind::RiceCooker => (700, 1000),
            ApplianceKind::InductionCooker => (2000, 950),
            ApplianceKind::Laptop => (65, 600),
            ApplianceKind::Custom => (1000, 1000),
        };
        Self {
            kind,
            watts,
            pf_milli,
        }
    }

    /// Parses `kettle`, `heater`, `hairdryer`, `ricecooker`, `induction`,
    /// `laptop`, or a custom `<watts>W[@<pf>]` such as `2200W@0.98`.
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim().to_ascii_lowercase();
        let kind = match t.as_str() {
            "kettle" => ApplianceKind::Kettle,
            "heater" => ApplianceKind::Heater,
            "hairdryer" | "hair_dryer" | "hair-dryer" => ApplianceKind::HairDryer,
            "ricecooker" | "rice_cooker" | "rice-cooker" => ApplianceKind::RiceCooker,
            "induction" | "induction_cooker" => ApplianceKind::InductionCooker,
            "laptop" => ApplianceKind::Laptop,
            _ => {
                let (w, pf) = t.split_once('@').unwrap_or((&t, "1"));
                let watts: u32 = w.strip_suffix('w').unwrap_or(w).parse().ok()?;
                let pf: f64 = pf.parse().ok()?;
                if !(0.1..=1.0).contains(&pf) || watts == 0 || watts > 60_000 {
                    return None;
                }
                return Some(Self {
                    kind: ApplianceKind::Custom,
                    watts,
                    pf_milli: (pf * 1000.0).round() as u16,
                });
            }
        };
        Some(Self::preset(kind))
    }
}

/// Knobs of the load model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LoadConfig {
    /// Multiplies the probability of the natural forbidden-appliance episodes
    /// (kettle, heater, ...); 0 turns them off, 1 is the default campus.
    pub appliance_rate: f64,
    /// Whether electric heaters come out (the heating season); the simulator
    /// sets it from the virtual date (November to March) unless overridden.
    pub heating_season: Option<bool>,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            appliance_rate: 1.0,
            heating_season: None,
        }
    }
}

/// Probability (percent) that an occupant is in the room, by local hour.
const PRESENT_PCT: [u64; 24] = [
    95, 95, 95, 95, 95, 95, 95, 85, 35, 30, 30, 35, 60, 55, 30, 30, 30, 40, 55, 80, 85, 90, 92, 95,
];
/// Probability (percent) that a present occupant is awake, by local hour.
const AWAKE_PCT: [u64; 24] = [
    30, 10, 5, 3, 3, 3, 10, 70, 100, 100, 100, 100, 100, 80, 100, 100, 100, 100, 100, 100, 100,
    100, 100, 80,
];

/// The room's load at instant `t_ms` (unix ms), with local time at
/// `utc_offset_ms`; `plugged` is an appliance plugged in by the control API.
/// The sum of [`base_load`] and [`appliance_load`].
pub fn room_load(
    seed: u64,
    t_ms: i64,
    utc_offset_ms: i64,
    cfg: &LoadConfig,
    plugged: Option<Appliance>,
) -> Load {
    let mut load = base_load(seed, t_ms, utc_offset_ms).0;
    let extra = appliance_load(seed, t_ms, utc_offset_ms, cfg, plugged);
    load.p_w += extra.p_w;
    load.s_va += extra.s_va;
    load
}

/// The room's everyday load (people, laptops, lights, standby), constant
/// over a five-minute slot; also returns the slot number so that callers
/// can cache it (the slot costs most of a sample's work).
pub fn base_load(seed: u64, t_ms: i64, utc_offset_ms: i64) -> (Load, i64) {
    let local = t_ms + utc_offset_ms;
    let hour = local.rem_euclid(DAY_MS) / HOUR_MS;
    let hour_idx = usize::try_from(hour).unwrap_or(0);
    let slot = local.div_euclid(BASE_SLOT_MS);
    let mut load = Load::default();
    // Router and chargers on standby; some rooms keep a mini-fridge
    // (its compressor's duty cycle averaged out).
    load.add(6 + (draw(seed, 1, 0) % 6) as u32, 500);
    if draw(seed, 3, 0) % 10 < 4 {
        load.add(30, 800);
    }
    let occupants = [3u64, 4, 4, 4, 4, 5, 6, 2][(draw(seed, 2, 0) % 8) as usize];
    let mut awake_present = 0;
    for i in 0..occupants {
        let u = draw(seed, slot as u64, 100 + i);
        let present = u % 100 < PRESENT_PCT[hour_idx];
        let awake = (u / 100) % 100 < AWAKE_PCT[hour_idx];
        if present && awake {
            awake_present += 1;
            if (u / 10_000) % 100 < 70 {
                load.add(40 + ((u / 1_000_000) % 50) as u32, 600);
            }
            if (u / 100_000_000) % 100 < 40 {
                load.add(5, 500);
            }
            if (u / 10_000_000_000) % 100 < 40 {
                // A monitor or desk lamp.
                load.add(25, 900);
            }
        } else if present && (u / 10_000) % 100 < 15 {
            // A laptop or phone charging overnight.
            load.add(20, 550);
        }
    }
    if awake_present > 0 && !(8..17).contains(&hour) {
        load.add(36, 900);
    }
    (load, slot)
}

/// The load of forbidden appliances: the room's own occasional ones and
/// the one `plugged` in by the control API.
pub fn appliance_load(
    seed: u64,
    t_ms: i64,
    utc_offset_ms: i64,
    cfg: &LoadConfig,
    plugged: Option<Appliance>,
) -> Load {
    let mut load = Load::default();
    if let Some(a) = natural_appliance(seed, t_ms + utc_offset_ms, cfg) {
        load.add(a.watts, u32::from(a.pf_milli));
    }
    if let Some(a) = plugged {
        load.add(a.watts, u32::from(a.pf_milli));
    }
    load
}

/// A forbidden appliance the room happens to run at `local` (local ms), if any.
fn natural_appliance(seed: u64, local: i64, cfg: &LoadConfig) -> Option<Appliance> {
    if cfg.appliance_rate <= 0.0 {
        return None;
    }
    let hour_no = local.div_euclid(HOUR_MS);
    let hour = hour_no.rem_euclid(24);
    let minute = (local.rem_euclid(HOUR_MS) / 60_000) as u64;
    let per_hour = |what: u64, pct_x100: u64| -> Option<(u64, u64)> {
        if pct_x100 == 0 {
            return None;
        }
        let u = draw(seed, hour_no as u64, what);
        let p = (pct_x100 as f64 * cfg.appliance_rate) as u64;
        (u % 10_000 < p).then_some(((u / 10_000) % 55, u / 1_000_000))
    };
    // Kettles: breakfast, lunch, evening tea; ~3–5 minutes.
    let kettle_pct = match hour {
        7 | 8 => 100,
        12 => 50,
        19..=22 => 80,
        9..=23 => 10,
        _ => 0,
    };
    if let Some((start, u)) = per_hour(1, kettle_pct) {
        let dur = 3 + u % 3;
        if (start..start + dur).contains(&minute) {
            return Some(Appliance {
                kind: ApplianceKind::Kettle,
                watts: 1500 + (u / 7 % 4) as u32 * 100,
                pf_milli: 1000,
            });
        }
    }
    let dryer_pct = match hour {
        7 | 21 | 22 => 50,
        _ => 0,
    };
    if let Some((start, u)) = per_hour(2, dryer_pct)
        && (start..start + 2 + u % 3).contains(&minute)
    {
        return Some(Appliance {
            kind: ApplianceKind::HairDryer,
            watts: 1000 + (u / 5 % 3) as u32 * 100,
            pf_milli: 990,
        });
    }
    let cooker_pct = match hour {
        11 | 17 => 50,
        _ => 0,
    };
    if let Some((start, u)) = per_hour(3, cooker_pct)
        && (start..start + 25).contains(&minute)
    {
        return Some(Appliance {
            kind: ApplianceKind::RiceCooker,
            watts: 600 + (u / 3 % 3) as u32 * 50,
            pf_milli: 1000,
        });
    }
    // Heaters: one evening session per room-day with small probability,
    // starting 19:00–22:59 and lasting 1–3 h (so it may run past midnight).
    if (2..19).contains(&hour) {
        return None;
    }
    let day = local.div_euclid(DAY_MS);
    for d in [day, day - 1] {
        if !heating_season(cfg, d) {
            continue;
        }
        let u = draw(seed, d as u64, 4);
        if (u % 10_000) as f64 >= 200.0 * cfg.appliance_rate {
            continue;
        }
        let start = d * DAY_MS + 19 * HOUR_MS + ((u / 10_000) % 240) as i64 * 60_000;
        let end = start + (60 + (u / 10_000_000) % 120) as i64 * 60_000;
        if (start..end).contains(&local) {
            return Some(Appliance {
                kind: ApplianceKind::Heater,
                watts: 1000 + (u / 100_000 % 11) as u32 * 100,
                pf_milli: 1000,
            });
        }
    }
    None
}

/// Whether local day number `day` (days since 1970-01-01) is in the heating
/// season (November to March), unless the config forces it.
fn heating_season(cfg: &LoadConfig, day: i64) -> bool {
    if let Some(forced) = cfg.heating_season {
        return forced;
    }
    thread_local! {
        // The calendar lookup is the costliest part of a sample, and
        // consecutive samples are almost always on the same day.
        static LAST: std::cell::Cell<(i64, bool)> = const { std::cell::Cell::new((i64::MIN, false)) };
    }
    let (cached_day, cached) = LAST.get();
    if cached_day == day {
        return cached;
    }
    let month = jiff::civil::Date::constant(1970, 1, 1)
        .checked_add(jiff::Span::new().days(day))
        .map(|d| d.month())
        .unwrap_or(1);
    let on = !(4..=10).contains(&month);
    LAST.set((day, on));
    on
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHANGHAI: i64 = 8 * HOUR_MS;
    // 2026-11-26 00:00 Asia/Shanghai.
    const DAY0: i64 = 1_795_622_400_000;

    #[test]
    fn load_is_deterministic_and_busier_in_the_evening() {
        let cfg = LoadConfig {
            appliance_rate: 0.0,
            heating_season: Some(false),
        };
        let mut night = 0u64;
        let mut evening = 0u64;
        for seed in 0..200u64 {
            let n = room_load(seed, DAY0 + 3 * HOUR_MS, SHANGHAI, &cfg, None);
            let e = room_load(seed, DAY0 + 21 * HOUR_MS, SHANGHAI, &cfg, None);
            assert_eq!(n, room_load(seed, DAY0 + 3 * HOUR_MS, SHANGHAI, &cfg, None));
            assert!(e.s_va >= e.p_w && n.s_va >= n.p_w);
            night += u64::from(n.p_w);
            evening += u64::from(e.p_w);
        }
        assert!(evening > 3 * night, "evening {evening} night {night}");
        // Typical dorm room evening load: a few hundred watts.
        assert!((50..600).contains(&(evening / 200)), "{}", evening / 200);
    }

    #[test]
    fn plugged_appliance_adds_resistive_power() {
        let cfg = LoadConfig {
            appliance_rate: 0.0,
            heating_season: Some(false),
        };
        let base = room_load(7, DAY0, SHANGHAI, &cfg, None);
        let with = room_load(
            7,
            DAY0,
            SHANGHAI,
            &cfg,
            Some(Appliance::preset(ApplianceKind::Kettle)),
        );
        assert_eq!(with.p_w - base.p_w, 1800);
        assert_eq!(with.s_va - base.s_va, 1800);
    }

    #[test]
    fn natural_episodes_happen_sometimes() {
        let cfg = LoadConfig {
            appliance_rate: 1.0,
            heating_season: Some(true),
        };
        let mut rooms_with_big_load = 0;
        for seed in 0..300u64 {
            let big = (0..24 * 12)
                .any(|m| room_load(seed, DAY0 + m * 300_000, SHANGHAI, &cfg, None).p_w > 1000);
            rooms_with_big_load += usize::from(big);
        }
        // Sampled every 5 minutes, a few percent of rooms show one per day.
        assert!(
            (5..150).contains(&rooms_with_big_load),
            "{rooms_with_big_load}"
        );
    }

    #[test]
    fn appliance_parsing() {
        assert_eq!(Appliance::parse("kettle").map(|a| a.watts), Some(1800));
        let c = Appliance::parse("2200W@0.98").unwrap();
        assert_eq!(
            (c.watts, c.pf_milli, c.kind),
            (2200, 980, ApplianceKind::Custom)
        );
        assert_eq!(Appliance::parse("900").map(|a| a.pf_milli), Some(1000));
        assert!(Appliance::parse("toaster").is_none());
        assert!(Appliance::parse("10W@2").is_none());
    }
}
