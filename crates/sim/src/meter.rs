//! One virtual prepaid meter implementing the reference profile
//! (`shared/spec/meter-profile.md`).
//!
//! A meter is plain data plus pure functions of `(frame, instant)`: no task,
//! no timer and no RNG state per meter, so that 100,000 of them fit in a few
//! dozen megabytes. Time-driven behaviour (energy counting, overdraft trips,
//! malicious-load detection, auto-restore, daily freezes) is computed lazily
//! by [`Meter::advance`] whenever the meter is touched, sample by sample, so
//! the result does not depend on how often it is touched.

use dlt645::value::{
    Bcd, MeterDateTime, OperatorCode, Password, Recharge, RechargeReply, RelayCommand,
    RelayControl, StatusWord3, WriteData,
};
use dlt645::{Address, Di, ErrorFlags, Frame, Function, SecurityErrorFlags, request};
use serde::Serialize;

use crate::load::{
    Appliance, BASE_SLOT_MS, DAY_MS, Load, LoadConfig, appliance_load, base_load, draw,
};

/// Daily freezes kept (DI 05 06 0x 01..3E).
pub const FREEZES_MAX: usize = 62;
/// Samples in the malicious-load window (meter-profile.md).
pub const WINDOW: usize = 8;
/// Hits in the window that trip for malicious load.
pub const HITS_TO_TRIP: usize = 5;
/// Consecutive samples over the power limit that are tolerated; one more trips.
pub const OVER_POWER_SAMPLES_MAX: u8 = 5;
/// Largest broadcast time correction a meter accepts, once per day.
pub const BROADCAST_CORRECTION_MAX_MS: i64 = 5 * 60 * 1000;
/// Energy of 0.01 kWh in joules (watt-seconds).
const CENTIKWH_J: u64 = 36_000;

/// (vendor) Power limit a 14H write may set, watts (inclusive).
pub const POWER_LIMIT_RANGE_W: (u32, u32) = (100, 10_000);
/// (vendor) Malicious-load step a 14H write may set, watts (inclusive).
pub const STEP_RANGE_W: (u32, u32) = (100, 5_000);

/// Meter parameters: thresholds and the vendor malicious-load settings.
/// These are the initial values; the head-end may change them with 14H writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MeterParams {
    /// Alarm energy 1 (04000F01), 0.01 kWh: at or below it bit7 is set.
    pub alarm1_centikwh: u32,
    /// Alarm energy 2 (04000F02), 0.01 kWh.
    pub alarm2_centikwh: u32,
    /// Hoarding limit (04000F03): remaining may not exceed it after a recharge.
    pub hoarding_centikwh: u32,
    /// Overdraft limit (04000F04): energy usable after remaining reaches 0.
    pub overdraft_limit_centikwh: u32,
    /// (vendor) Power limit, watts (04A00101; the wire unit is 0.1 W).
    pub power_limit_w: u32,
    /// (vendor) Malicious-load power step, watts (04A00102).
    pub step_w: u16,
    /// (vendor) Increment power-factor threshold, thousandths (04A00103).
    /// Only effective when 500 < value < 1000, as in the firmware it copies.
    pub pf_threshold_milli: u16,
    /// (vendor) Auto-restore delay after a malicious/over-power trip, minutes.
    pub restore_minutes: u16,
    /// (vendor) Trips per day tolerated; one more locks out.
    pub lockout_trips: u8,
    /// The level-02 password (P2 P1 P0 as six hex digits, e.g. 0x123456).
    pub password: u32,
}

impl Default for MeterParams {
    fn default() -> Self {
        Self {
            alarm1_centikwh: 1000,
            alarm2_centikwh: 500,
            hoarding_centikwh: 50_000,
            overdraft_limit_centikwh: 500,
            power_limit_w: 2_500,
            step_w: 600,
            pf_threshold_milli: 900,
            restore_minutes: 5,
            lockout_trips: 3,
            password: 0x12_34_56,
        }
    }
}

/// Fleet-wide, read-only inputs of a meter's behaviour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeterEnv {
    /// Sample period of the power measurement (and so of energy integration
    /// and malicious-load detection), milliseconds of virtual time.
    pub sample_period_ms: i64,
    /// Campus time zone offset from UTC (meters keep local time), ms.
    pub utc_offset_ms: i64,
    /// Load model knobs.
    pub load: LoadConfig,
}

impl Default for MeterEnv {
    fn default() -> Self {
        Self {
            sample_period_ms: 10_000,
            utc_offset_ms: 8 * 3_600_000,
            load: LoadConfig::default(),
        }
    }
}

// Relay-open reasons, kept in one byte.
const R_COMMANDED: u8 = 1 << 0;
const R_BALANCE: u8 = 1 << 1;
const R_MALICIOUS: u8 = 1 << 2;
const R_OVER_POWER: u8 = 1 << 3;
const R_LOCKOUT: u8 = 1 << 4;
const F_KEEP_POWER: u8 = 1 << 5;

/// An appliance plugged in by the control API, on until `until_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Plugged {
    /// The appliance.
    pub appliance: Appliance,
    /// Virtual instant (unix ms) it is unplugged by itself; `i64::MAX` = never.
    pub until_ms: i64,
}

/// One virtual meter. Fields are private: the only ways to change a meter
/// are frames, the passage of time and the control methods below.
#[derive(Debug, Clone)]
pub struct Meter {
    address: Address,
    seed: u64,
    params: MeterParams,
    // Energy, 0.01 kWh.
    total_centikwh: u32,
    remaining_centikwh: u32,
    overdraft_centikwh: u32,
    residual_j: u32,
    // Purchases.
    purchase_count: u32,
    last_purchase_ms: i64,
    last_purchase_centikwh: u32,
    before_purchase_centikwh: u32,
    after_purchase_centikwh: u32,
    purchased_total_centikwh: u32,
    // Relay.
    relay: u8,
    restore_at_ms: i64,
    trips_today: u8,
    trips_day: i32,
    malicious_trips: u16,
    over_power_trips: u16,
    last_malicious_ms: i64,
    last_trip_ms: i64,
    last_trip_operator: u32,
    last_close_ms: i64,
    last_close_operator: u32,
    // Samples (true time), chronological: [0] oldest.
    last_sample_ms: i64,
    samples_p: [u16; WINDOW],
    samples_s: [u16; WINDOW],
    samples_len: u8,
    over_count: u8,
    last_load: Load,
    // The room's everyday load, cached for its five-minute slot.
    base: Load,
    base_slot: i64,
    // Clock: meter time = true + offset + (true - anchor) × ppm / 1e6.
    clock_offset_ms: i64,
    clock_anchor_ms: i64,
    drift_ppm: i16,
    last_broadcast_day: i32,
    // Daily freezes: ring of totals; newest at `freeze_head`, for `freeze_day`.
    freezes: [u32; FREEZES_MAX],
    freeze_head: u8,
    freeze_count: u8,
    freeze_day: i32,
    // Faults and control.
    offline_until_ms: i64,
    plugged: Option<Plugged>,
}

/// What a meter shows to the control API (inspection), in plain units.
#[derive(Debug, Clone, Serialize)]
pub struct MeterView {
    /// Nameplate address.
    pub address: String,
    /// Virtual true time the view was taken, unix ms.
    pub now_ms: i64,
    /// The meter's own clock, local time.
    pub meter_time: String,
    /// Meter clock minus true time, ms (drift plus corrections).
    pub clock_error_ms: i64,
    /// Combined active total energy, 0.01 kWh.
    pub total_centikwh: u32,
    /// Remaining energy, 0.01 kWh.
    pub remaining_centikwh: u32,
    /// Overdraft used, 0.01 kWh.
    pub overdraft_centikwh: u32,
    /// Purchase count.
    pub purchase_count: u32,
    /// Cumulative purchased energy, 0.01 kWh.
    pub purchased_total_centikwh: u32,
    /// Whether the relay is open (no power in the room).
    pub relay_open: bool,
    /// Status word 3 as sent on the wire.
    pub status_word3: String,
    /// Names of the set status bits.
    pub status: Vec<&'static str>,
    /// Current active power, W.
    pub power_w: u32,
    /// Current apparent power, VA.
    pub apparent_va: u32,
    /// Malicious-load trips since install.
    pub malicious_trips: u16,
    /// Over-power trips since install.
    pub over_power_trips: u16,
    /// Trips today (meter day).
    pub trips_today: u8,
    /// Offline (not answering) until this instant, if in the future.
    pub offline_until_ms: Option<i64>,
    /// The appliance plugged in through the control API.
    pub plugged: Option<Plugged>,
    /// Daily freezes held.
    pub freezes: u8,
    /// Parameters.
    pub params: MeterParams,
}

/// Encodes a number, clamping it into the field: a simulated meter never
/// fails to answer because a counter outgrew its BCD digits.
fn num(bcd: Bcd, raw: i64) -> Vec<u8> {
    let max = bcd.max();
    let min = if bcd.signed { -max } else { 0 };
    bcd.encode(raw.clamp(min, max))
        .unwrap_or_else(|_| vec![0; usize::from(bcd.bytes)])
}

/// The local civil time of a meter clock reading.
fn civil(meter_ms: i64, utc_offset_ms: i64) -> MeterDateTime {
    let secs = (meter_ms + utc_offset_ms).div_euclid(1000);
    let ts = jiff::Timestamp::from_second(secs).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let dt = jiff::tz::Offset::UTC.to_datetime(ts);
    let year = u16::try_from(dt.year()).unwrap_or(2000).clamp(2000, 2099);
    MeterDateTime::new(
        year,
        dt.month() as u8,
        dt.day() as u8,
        dt.hour() as u8,
        dt.minute() as u8,
        dt.second() as u8,
    )
    .unwrap_or(MeterDateTime::EARLIEST)
}

/// The meter-clock instant (unix ms) of a local civil time.
fn civil_to_ms(t: MeterDateTime, utc_offset_ms: i64) -> i64 {
    let dt = jiff::civil::DateTime::new(
        t.year() as i16,
        t.month() as i8,
        t.day() as i8,
        t.hour() as i8,
        t.minute() as i8,
        t.second() as i8,
        0,
    );
    dt.ok()
        .and_then(|dt| jiff::tz::Offset::UTC.to_timestamp(dt).ok())
        .map(|ts| ts.as_millisecond() - utc_offset_ms)
        .unwrap_or(0)
}

fn day_of(meter_ms: i64, utc_offset_ms: i64) -> i32 {
    i32::try_from((meter_ms + utc_offset_ms).div_euclid(DAY_MS)).unwrap_or(0)
}

impl Meter {
    /// A meter with a believable history: some energy used, a balance, a
    /// few past purchases and 62 days of daily freezes, all drawn from
    /// `seed` so that a fleet is reproducible.
    pub fn new(
        address: Address,
        seed: u64,
        now_ms: i64,
        params: MeterParams,
        drift_ppm_max: u16,
        env: &MeterEnv,
    ) -> Self {
        let d = |k: u64| draw(seed, 0xABCD, k);
        let daily = 300 + (d(1) % 600) as u32; // 3–9 kWh a day
        let total = 50_000 + (d(2) % 800_000) as u32;
        // Most rooms have some balance; a few start nearly empty so that
        // overdraft and balance trips happen early in a run.
        let remaining = if d(3) % 20 == 0 {
            (d(4) % 200) as u32
        } else {
            1_000 + (d(4) % 8_000) as u32
        };
        let purchase_count = 1 + (d(5) % 40) as u32;
        let last_purchase = 2_000 + (d(6) % 8) as u32 * 1_000;
        let drift_ppm = if drift_ppm_max == 0 {
            0
        } else {
            let span = i64::from(drift_ppm_max) * 2 + 1;
            (d(7) as i64).rem_euclid(span) as i16 - drift_ppm_max as i16
        };
        let today = day_of(now_ms, env.utc_offset_ms);
        // Newest freeze first (freeze_head = 0): today's midnight, then one
        // day of believable usage back per freeze.
        let mut freezes = [0u32; FREEZES_MAX];
        let mut used = (d(9) % u64::from(daily)) as u32;
        for (k, f) in freezes.iter_mut().enumerate() {
            *f = total.saturating_sub(used);
            used += daily / 2 + (draw(seed, 0xF2EE, k as u64) % u64::from(daily)) as u32;
        }
        let mut m = Self {
            address,
            seed,
            params,
            total_centikwh: total,
            remaining_centikwh: remaining,
            overdraft_centikwh: 0,
            residual_j: 0,
            purchase_count,
            last_purchase_ms: now_ms - (1 + (d(8) % 20) as i64) * DAY_MS,
            last_purchase_centikwh: last_purchase,
            before_purchase_centikwh: remaining / 3,
            after_purchase_centikwh: remaining / 3 + last_purchase,
            purchased_total_centikwh: total + remaining,
            relay: 0,
            restore_at_ms: 0,
            trips_today: 0,
            trips_day: today,
            malicious_trips: 0,
            over_power_trips: 0,
            last_malicious_ms: 0,
            last_trip_ms: 0,
            last_trip_operator: 0,
            last_close_ms: 0,
            last_close_operator: 0,
            last_sample_ms: now_ms,
            samples_p: [0; WINDOW],
            samples_s: [0; WINDOW],
            samples_len: 0,
            over_count: 0,
            last_load: Load::default(),
            base: Load::default(),
            base_slot: i64::MIN,
            clock_offset_ms: 0,
            clock_anchor_ms: now_ms,
            drift_ppm,
            last_broadcast_day: i32::MIN,
            freezes,
            freeze_head: 0,
            freeze_count: FREEZES_MAX as u8,
            freeze_day: today,
            offline_until_ms: 0,
            plugged: None,
        };
        // A real meter has been sampling long before the simulation starts:
        // fill the window with the current load so that an appliance
        // plugged in at once is a step, as it would be.
        m.last_load = m.load_at(now_ms, env);
        m.push_sample(m.last_load);
        for _ in 1..WINDOW {
            m.push_sample(m.last_load);
        }
        m
    }

    /// The meter's address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The meter's clock reading at true instant `true_ms`.
    pub fn meter_ms(&self, true_ms: i64) -> i64 {
        let drift = (true_ms - self.clock_anchor_ms) * i64::from(self.drift_ppm) / 1_000_000;
        true_ms + self.clock_offset_ms + drift
    }

    /// Sets the meter clock so that it reads `meter_ms` at true time `true_ms`.
    fn set_clock(&mut self, true_ms: i64, meter_ms: i64) {
        self.clock_offset_ms = meter_ms - true_ms;
        self.clock_anchor_ms = true_ms;
    }

    fn relay_open(&self) -> bool {
        let safety = self.relay & (R_MALICIOUS | R_OVER_POWER | R_LOCKOUT) != 0;
        // Keep-power (保电) suppresses remote and balance trips, not the
        // safety trips: a heater behind a kept meter is still a fire risk.
        let remote = self.relay & F_KEEP_POWER == 0 && self.relay & (R_COMMANDED | R_BALANCE) != 0;
        safety || remote
    }

    /// Status word 3 as the meter reports it.
    pub fn status_word(&self, true_ms: i64) -> StatusWord3 {
        let _ = true_ms;
        StatusWord3(StatusWord3::KWH_PREPAID)
            .with(StatusWord3::RELAY_OPEN, self.relay_open())
            .with(
                StatusWord3::RELAY_COMMANDED_OPEN,
                self.relay & (R_COMMANDED | R_BALANCE) != 0 && self.relay & F_KEEP_POWER == 0,
            )
            .with(
                StatusWord3::PRE_TRIP_ALARM,
                self.remaining_centikwh <= self.params.alarm1_centikwh,
            )
            .with(
                StatusWord3::MALICIOUS_LOAD_TRIP,
                self.relay & R_MALICIOUS != 0,
            )
            .with(StatusWord3::OVER_POWER_TRIP, self.relay & R_OVER_POWER != 0)
            .with(StatusWord3::KEEP_POWER, self.relay & F_KEEP_POWER != 0)
            .with(StatusWord3::LOCKED_OUT, self.relay & R_LOCKOUT != 0)
    }

    /// Records a trip or close event if the relay changed state.
    fn note_relay(&mut self, was_open: bool, true_ms: i64, operator: u32) {
        let open = self.relay_open();
        if open && !was_open {
            self.last_trip_ms = self.meter_ms(true_ms);
            self.last_trip_operator = operator;
            // An open relay measures 0 W; the window fills with zeros (the
            // restore delay is longer than the window), so an appliance
            // still plugged in when power comes back is a fresh step and is
            // caught again, which is what leads to a lockout.
            self.samples_p = [0; WINDOW];
            self.samples_s = [0; WINDOW];
            self.samples_len = WINDOW as u8;
            self.over_count = 0;
        } else if !open && was_open {
            self.last_close_ms = self.meter_ms(true_ms);
            self.last_close_operator = operator;
        }
    }

    fn load_at(&mut self, true_ms: i64, env: &MeterEnv) -> Load {
        if self.relay_open() {
            return Load::default();
        }
        let plugged = self
            .plugged
            .filter(|p| true_ms < p.until_ms)
            .map(|p| p.appliance);
        let local_slot = (true_ms + env.utc_offset_ms).div_euclid(BASE_SLOT_MS);
        if local_slot != self.base_slot {
            (self.base, self.base_slot) = base_load(self.seed, true_ms, env.utc_offset_ms);
        }
        let extra = appliance_load(self.seed, true_ms, env.utc_offset_ms, &env.load, plugged);
        Load {
            p_w: self.base.p_w + extra.p_w,
            s_va: self.base.s_va + extra.s_va,
        }
    }

    /// Runs the meter forward, sample by sample, to true instant `to_ms`.
    pub fn advance(&mut self, to_ms: i64, env: &MeterEnv) {
        let period = env.sample_period_ms.max(1);
        while self.last_sample_ms + period <= to_ms {
            let t = self.last_sample_ms + period;
            self.step(t, period, env);
            self.last_sample_ms = t;
        }
    }

    fn step(&mut self, t: i64, period_ms: i64, env: &MeterEnv) {
        let meter_now = self.meter_ms(t);
        let day = day_of(meter_now, env.utc_offset_ms);
        if day > self.freeze_day {
            // Daily freeze at 00:00 meter time; a clock that jumped days
            // ahead freezes each missed day with the same total.
            let missed = (day - self.freeze_day).min(FREEZES_MAX as i32);
            for _ in 0..missed {
                self.freeze_head =
                    ((usize::from(self.freeze_head) + FREEZES_MAX - 1) % FREEZES_MAX) as u8;
                self.freezes[usize::from(self.freeze_head)] = self.total_centikwh;
                self.freeze_count = (self.freeze_count + 1).min(FREEZES_MAX as u8);
            }
            self.freeze_day = day;
        }
        if day != self.trips_day {
            self.trips_day = day;
            self.trips_today = 0;
        }
        if let Some(p) = self.plugged
            && t >= p.until_ms
        {
            self.plugged = None;
        }
        let was_open = self.relay_open();
        if self.restore_at_ms != 0 && t >= self.restore_at_ms {
            self.restore_at_ms = 0;
            self.relay &= !(R_MALICIOUS | R_OVER_POWER);
            self.note_relay(was_open, t, 0);
        }
        let load = self.load_at(t, env);
        self.last_load = load;
        if load.p_w == 0 {
            return;
        }
        // Energy.
        let joules = u64::from(self.residual_j) + u64::from(load.p_w) * period_ms as u64 / 1000;
        let centi = (joules / CENTIKWH_J) as u32;
        self.residual_j = (joules % CENTIKWH_J) as u32;
        if centi > 0 {
            self.consume(centi, t);
        }
        // Detection, on the samples of a closed relay.
        self.push_sample(load);
        if self.relay_open() {
            return;
        }
        if load.p_w > self.params.power_limit_w {
            self.over_count = self.over_count.saturating_add(1);
            if self.over_count > OVER_POWER_SAMPLES_MAX {
                self.over_power_trips = self.over_power_trips.saturating_add(1);
                self.safety_trip(R_OVER_POWER, t, env);
                return;
            }
        } else {
            self.over_count = 0;
        }
        if self.malicious_hits() >= HITS_TO_TRIP {
            self.malicious_trips = self.malicious_trips.saturating_add(1);
            self.last_malicious_ms = meter_now;
            self.safety_trip(R_MALICIOUS, t, env);
        }
    }

    fn consume(&mut self, centi: u32, t: i64) {
        self.total_centikwh = self.total_centikwh.saturating_add(centi);
        if self.remaining_centikwh >= centi {
            self.remaining_centikwh -= centi;
        } else {
            let short = centi - self.remaining_centikwh;
            self.remaining_centikwh = 0;
            self.overdraft_centikwh = self.overdraft_centikwh.saturating_add(short);
        }
        if self.remaining_centikwh == 0
            && self.overdraft_centikwh >= self.params.overdraft_limit_centikwh
            && self.relay & R_BALANCE == 0
        {
            let was = self.relay_open();
            self.relay |= R_BALANCE;
            self.note_relay(was, t, 0);
        }
    }

    fn push_sample(&mut self, load: Load) {
        let p = u16::try_from(load.p_w).unwrap_or(u16::MAX);
        let s = u16::try_from(load.s_va).unwrap_or(u16::MAX);
        if usize::from(self.samples_len) < WINDOW {
            let i = usize::from(self.samples_len);
            self.samples_p[i] = p;
            self.samples_s[i] = s;
            self.samples_len += 1;
        } else {
            self.samples_p.copy_within(1.., 0);
            self.samples_s.copy_within(1.., 0);
            self.samples_p[WINDOW - 1] = p;
            self.samples_s[WINDOW - 1] = s;
        }
    }

    /// Hits of the window: samples whose step from the oldest sample is at
    /// least the power step and whose increment is resistive enough.
    fn malicious_hits(&self) -> usize {
        if usize::from(self.samples_len) < WINDOW {
            return 0;
        }
        let step = i64::from(self.params.step_w);
        let pf = i64::from(self.params.pf_threshold_milli);
        let pf_enabled = pf > 500 && pf < 1000;
        let (p0, s0) = (i64::from(self.samples_p[0]), i64::from(self.samples_s[0]));
        (1..WINDOW)
            .filter(|&i| {
                let dp = i64::from(self.samples_p[i]) - p0;
                let ds = i64::from(self.samples_s[i]) - s0;
                dp >= step && (!pf_enabled || ds <= 0 || dp * 1000 > pf * ds)
            })
            .count()
    }

    fn safety_trip(&mut self, reason: u8, t: i64, _env: &MeterEnv) {
        let was = self.relay_open();
        self.relay |= reason;
        self.restore_at_ms = t + i64::from(self.params.restore_minutes) * 60_000;
        self.trips_today = self.trips_today.saturating_add(1);
        if self.trips_today > self.params.lockout_trips {
            self.relay |= R_LOCKOUT;
        }
        self.note_relay(was, t, 0);
        self.last_load = Load::default();
    }

    /// Whether the meter is offline (answers nothing) at `true_ms`.
    pub fn is_offline(&self, true_ms: i64) -> bool {
        true_ms < self.offline_until_ms
    }

    /// Takes the meter offline until `until_ms` (it keeps counting energy).
    pub fn set_offline_until(&mut self, until_ms: i64) {
        self.offline_until_ms = until_ms;
    }

    /// Plugs an appliance in until `until_ms`.
    pub fn plug(&mut self, appliance: Appliance, until_ms: i64) {
        self.plugged = Some(Plugged {
            appliance,
            until_ms,
        });
    }

    /// Unplugs the control API's appliance.
    pub fn unplug(&mut self) {
        self.plugged = None;
    }

    /// Sets the remaining energy directly (a test or demo fixture, as if the
    /// meter had been prepared on the bench).
    pub fn set_remaining(&mut self, remaining_centikwh: u32, true_ms: i64) {
        let was = self.relay_open();
        self.remaining_centikwh = remaining_centikwh;
        if remaining_centikwh > 0 {
            self.overdraft_centikwh = 0;
            self.relay &= !R_BALANCE;
        }
        self.note_relay(was, true_ms, 0);
    }

    /// Changes parameters directly (fixture).
    pub fn set_params(&mut self, params: MeterParams) {
        self.params = params;
    }

    /// The meter's state in plain units.
    pub fn view(&self, true_ms: i64, env: &MeterEnv) -> MeterView {
        let sw = self.status_word(true_ms);
        let meter_ms = self.meter_ms(true_ms);
        MeterView {
            address: self.address.to_string(),
            now_ms: true_ms,
            meter_time: civil(meter_ms, env.utc_offset_ms).to_string(),
            clock_error_ms: meter_ms - true_ms,
            total_centikwh: self.total_centikwh,
            remaining_centikwh: self.remaining_centikwh,
            overdraft_centikwh: self.overdraft_centikwh,
            purchase_count: self.purchase_count,
            purchased_total_centikwh: self.purchased_total_centikwh,
            relay_open: self.relay_open(),
            status_word3: format!("{:04X}", sw.0),
            status: sw.names(),
            power_w: self.last_load.p_w,
            apparent_va: self.last_load.s_va,
            malicious_trips: self.malicious_trips,
            over_power_trips: self.over_power_trips,
            trips_today: self.trips_today,
            offline_until_ms: (self.offline_until_ms > true_ms).then_some(self.offline_until_ms),
            plugged: self.plugged,
            freezes: self.freeze_count,
            params: self.params,
        }
    }

    /// Handles a request addressed to this meter (the bus has matched the
    /// address) at true instant `true_ms` and returns the reply, if the
    /// meter sends one. Malformed requests get no reply, as on a real meter.
    pub fn handle(&mut self, req: &Frame, true_ms: i64, env: &MeterEnv) -> Option<Frame> {
        self.advance(true_ms, env);
        let broadcast = req.address().is_broadcast();
        let function = req.function()?;
        if req.control().is_reply() {
            return None;
        }
        let data = req.data();
        let a = self.address;
        match function {
            Function::BroadcastTime => {
                if broadcast && data.len() == 6 {
                    self.broadcast_time(data, true_ms, env);
                }
                None
            }
            _ if broadcast => None,
            Function::Read => {
                if data.len() != 4 {
                    return None;
                }
                let di = Di::from_le_bytes(data)?;
                Some(match self.read(di, true_ms, env) {
                    Some(value) => request::read_reply(a, di, &value)
                        .unwrap_or_else(|_| request::error_reply(a, function, ErrorFlags::OTHER)),
                    None => request::error_reply(a, function, ErrorFlags::NO_DATA),
                })
            }
            Function::ReadFollowUp => {
                (data.len() == 5).then(|| request::error_reply(a, function, ErrorFlags::NO_DATA))
            }
            Function::ReadAddress => {
                if !data.is_empty() {
                    return None;
                }
                request::normal_reply(a, function, a.to_wire().to_vec()).ok()
            }
            Function::Write => {
                let w = WriteData::from_wire(data).ok()?;
                Some(match self.write(&w, true_ms, env) {
                    Ok(()) => request::normal_reply(a, function, Vec::new())
                        .unwrap_or_else(|_| request::error_reply(a, function, ErrorFlags::OTHER)),
                    Err(e) => request::error_reply(a, function, e),
                })
            }
            Function::RelayControl => {
                if data.len() != RelayControl::LEN {
                    return None;
                }
                Some(match self.relay_control(data, true_ms, env) {
                    Ok(()) => request::normal_reply(a, function, Vec::new())
                        .unwrap_or_else(|_| request::error_reply(a, function, ErrorFlags::OTHER)),
                    Err(e) => request::error_reply(a, function, e),
                })
            }
            Function::Security => {
                if data.len() != Recharge::LEN {
                    return None;
                }
                Some(self.recharge(data, true_ms))
            }
            Function::ChangePassword => {
                if data.len() != 12 {
                    return None;
                }
                Some(self.change_password(data))
            }
            Function::ChangeBaud => Some(request::error_reply(a, function, ErrorFlags::BAUD)),
            Function::Freeze
            | Function::WriteAddress
            | Function::ClearDemand
            | Function::ClearMeter
            | Function::ClearEvents
            | Function::MultiFunctionOutput => {
                Some(request::error_reply(a, function, ErrorFlags::OTHER))
            }
        }
    }

    fn broadcast_time(&mut self, data: &[u8], true_ms: i64, env: &MeterEnv) {
        let Ok(t) = MeterDateTime::from_wire_seconds(data) else {
            return;
        };
        let target = civil_to_ms(t, env.utc_offset_ms);
        let current = self.meter_ms(true_ms);
        let day = day_of(current, env.utc_offset_ms);
        if (target - current).abs() <= BROADCAST_CORRECTION_MAX_MS && day != self.last_broadcast_day
        {
            self.set_clock(true_ms, target);
            self.last_broadcast_day = day;
        }
    }

    /// The value bytes of `di`, or `None` for a DI the meter does not know.
    fn read(&self, di: Di, true_ms: i64, env: &MeterEnv) -> Option<Vec<u8>> {
        let p = &self.params;
        let meter_now = self.meter_ms(true_ms);
        let load = self.last_load;
        let voltage_dv = 2200 + (draw(self.seed, true_ms as u64 / 60_000, 9) % 80) as i64
            - 40
            - i64::from(load.p_w) / 100;
        let time_min = |ms: i64| civil(ms, env.utc_offset_ms).to_wire_minutes().to_vec();
        let time_sec = |ms: i64| civil(ms, env.utc_offset_ms).to_wire_seconds().to_vec();
        let event = |ms: i64, op: u32| {
            let mut v = time_sec(ms);
            v.extend(OperatorCode(op).to_wire());
            v.extend(num(Bcd::ENERGY, i64::from(self.total_centikwh)));
            v
        };
        Some(match di {
            Di::COMBINED_ACTIVE_ENERGY => num(Bcd::SIGNED_ENERGY, i64::from(self.total_centikwh)),
            Di::FORWARD_ACTIVE_ENERGY => num(Bcd::ENERGY, i64::from(self.total_centikwh)),
            Di::REVERSE_ACTIVE_ENERGY => num(Bcd::ENERGY, 0),
            Di::REMAINING_ENERGY => num(Bcd::ENERGY, i64::from(self.remaining_centikwh)),
            Di::OVERDRAFT_ENERGY => num(Bcd::ENERGY, i64::from(self.overdraft_centikwh)),
            Di::VOLTAGE => num(Bcd::VOLTAGE, voltage_dv),
            Di::CURRENT => num(
                Bcd::CURRENT,
                i64::from(load.s_va) * 10_000 / voltage_dv.max(1),
            ),
            Di::ACTIVE_POWER | Di::ACTIVE_POWER_A => num(Bcd::POWER, i64::from(load.p_w) * 10),
            Di::POWER_FACTOR => num(Bcd::POWER_FACTOR, i64::from(load.pf_milli())),
            Di::FREQUENCY => num(Bcd::FREQUENCY, 5000),
            Di::DATE => civil(meter_now, env.utc_offset_ms).to_wire_date().to_vec(),
            Di::TIME => civil(meter_now, env.utc_offset_ms).to_wire_time().to_vec(),
            Di::COMM_ADDRESS => self.address.to_wire().to_vec(),
            Di::STATUS_WORD_3 => self.status_word(true_ms).to_wire().to_vec(),
            Di::ALARM_ENERGY_1 => num(Bcd::ENERGY, i64::from(p.alarm1_centikwh)),
            Di::ALARM_ENERGY_2 => num(Bcd::ENERGY, i64::from(p.alarm2_centikwh)),
            Di::HOARDING_LIMIT => num(Bcd::ENERGY, i64::from(p.hoarding_centikwh)),
            Di::OVERDRAFT_LIMIT => num(Bcd::ENERGY, i64::from(p.overdraft_limit_centikwh)),
            Di::LAST_PURCHASE_TIME => time_min(self.last_purchase_ms),
            Di::PURCHASE_COUNT => num(Bcd::COUNT, i64::from(self.purchase_count)),
            Di::LAST_PURCHASE_ENERGY => num(Bcd::ENERGY, i64::from(self.last_purchase_centikwh)),
            Di::REMAINING_BEFORE_PURCHASE => {
                num(Bcd::ENERGY, i64::from(self.before_purchase_centikwh))
            }
            Di::REMAINING_AFTER_PURCHASE => {
                num(Bcd::ENERGY, i64::from(self.after_purchase_centikwh))
            }
            Di::CUMULATIVE_PURCHASED_ENERGY => {
                num(Bcd::ENERGY, i64::from(self.purchased_total_centikwh))
            }
            Di::LAST_TRIP_EVENT if self.last_trip_ms != 0 => {
                event(self.last_trip_ms, self.last_trip_operator)
            }
            Di::LAST_CLOSE_EVENT if self.last_close_ms != 0 => {
                event(self.last_close_ms, self.last_close_operator)
            }
            Di::POWER_LIMIT => num(Bcd::POWER_LIMIT, i64::from(p.power_limit_w) * 10),
            Di::MALICIOUS_LOAD_STEP => num(Bcd::WATTS, i64::from(p.step_w)),
            Di::MALICIOUS_LOAD_PF_THRESHOLD => num(Bcd::RATIO, i64::from(p.pf_threshold_milli)),
            Di::AUTO_RESTORE_DELAY => num(Bcd::MINUTES, i64::from(p.restore_minutes)),
            Di::TRIPS_BEFORE_LOCKOUT => num(Bcd::SMALL_COUNT, i64::from(p.lockout_trips)),
            Di::MALICIOUS_LOAD_TRIPS => num(Bcd::COUNT, i64::from(self.malicious_trips)),
            Di::OVER_POWER_TRIPS => num(Bcd::COUNT, i64::from(self.over_power_trips)),
            Di::LAST_MALICIOUS_LOAD_TRIP if self.last_malicious_ms != 0 => {
                time_sec(self.last_malicious_ms)
            }
            other => return self.read_freeze(other, env),
        })
    }

    fn read_freeze(&self, di: Di, env: &MeterEnv) -> Option<Vec<u8>> {
        let n = di.daily_freeze_index()?;
        if n > self.freeze_count {
            return None;
        }
        let k = usize::from(n - 1);
        match (di.0 >> 8) & 0xFF {
            0x00 => {
                let day = i64::from(self.freeze_day) - k as i64;
                Some(
                    civil(day * DAY_MS - env.utc_offset_ms, env.utc_offset_ms)
                        .to_wire_minutes()
                        .to_vec(),
                )
            }
            0x01 => {
                let total =
                    i64::from(self.freezes[(usize::from(self.freeze_head) + k) % FREEZES_MAX]);
                // Total, then tariffs 1..4; a single-rate meter books all
                // energy on the flat tariff (T2), as the capture in §5 X2 does.
                let mut v = num(Bcd::ENERGY, total);
                v.extend(num(Bcd::ENERGY, 0));
                v.extend(num(Bcd::ENERGY, total));
                v.extend(num(Bcd::ENERGY, 0));
                v.extend(num(Bcd::ENERGY, 0));
                Some(v)
            }
            _ => None,
        }
    }

    fn password_ok(&self, pw: Password) -> bool {
        pw.level == 0x02 && pw.code == self.params.password
    }

    fn write(&mut self, w: &WriteData, true_ms: i64, env: &MeterEnv) -> Result<(), ErrorFlags> {
        if !self.password_ok(w.password) {
            return Err(ErrorFlags::PASSWORD);
        }
        let v = w.value.as_slice();
        let bcd = |b: Bcd| -> Result<u32, ErrorFlags> {
            if v.len() != usize::from(b.bytes) {
                return Err(ErrorFlags::OTHER);
            }
            b.decode(v)
                .ok()
                .and_then(|x| u32::try_from(x).ok())
                .ok_or(ErrorFlags::OTHER)
        };
        let mut p = self.params;
        match w.di {
            Di::ALARM_ENERGY_1 => p.alarm1_centikwh = bcd(Bcd::ENERGY)?,
            Di::ALARM_ENERGY_2 => p.alarm2_centikwh = bcd(Bcd::ENERGY)?,
            Di::HOARDING_LIMIT => p.hoarding_centikwh = bcd(Bcd::ENERGY)?,
            Di::OVERDRAFT_LIMIT => p.overdraft_limit_centikwh = bcd(Bcd::ENERGY)?,
            // (vendor) Out-of-range values are refused (ERR bit0) and leave
            // the parameter as it was: power limit 0.1000–10.0000 kW, step
            // 100–5000 W, power-factor threshold strictly 0.500–1.000.
            Di::POWER_LIMIT => {
                let w = bcd(Bcd::POWER_LIMIT)? / 10;
                if !(POWER_LIMIT_RANGE_W.0..=POWER_LIMIT_RANGE_W.1).contains(&w) {
                    return Err(ErrorFlags::OTHER);
                }
                p.power_limit_w = w;
            }
            Di::MALICIOUS_LOAD_STEP => {
                let w = bcd(Bcd::WATTS)?;
                if !(STEP_RANGE_W.0..=STEP_RANGE_W.1).contains(&w) {
                    return Err(ErrorFlags::OTHER);
                }
                p.step_w = u16::try_from(w).map_err(|_| ErrorFlags::OTHER)?;
            }
            Di::MALICIOUS_LOAD_PF_THRESHOLD => {
                let m = bcd(Bcd::RATIO)?;
                if m <= 500 || m >= 1000 {
                    return Err(ErrorFlags::OTHER);
                }
                p.pf_threshold_milli = u16::try_from(m).map_err(|_| ErrorFlags::OTHER)?;
            }
            Di::AUTO_RESTORE_DELAY => {
                p.restore_minutes =
                    u16::try_from(bcd(Bcd::MINUTES)?).map_err(|_| ErrorFlags::OTHER)?;
            }
            Di::TRIPS_BEFORE_LOCKOUT => {
                p.lockout_trips =
                    u8::try_from(bcd(Bcd::SMALL_COUNT)?).map_err(|_| ErrorFlags::OTHER)?;
            }
            Di::DATE => {
                let (date, _) = MeterDateTime::from_wire_date(v).map_err(|_| ErrorFlags::OTHER)?;
                let now = civil(self.meter_ms(true_ms), env.utc_offset_ms);
                let t = MeterDateTime::new(
                    date.year(),
                    date.month(),
                    date.day(),
                    now.hour(),
                    now.minute(),
                    now.second(),
                )
                .map_err(|_| ErrorFlags::OTHER)?;
                self.set_clock(true_ms, civil_to_ms(t, env.utc_offset_ms));
                return Ok(());
            }
            Di::TIME => {
                let (h, m, s) = MeterDateTime::time_from_wire(v).map_err(|_| ErrorFlags::OTHER)?;
                let now = civil(self.meter_ms(true_ms), env.utc_offset_ms);
                let t = MeterDateTime::new(now.year(), now.month(), now.day(), h, m, s)
                    .map_err(|_| ErrorFlags::OTHER)?;
                self.set_clock(true_ms, civil_to_ms(t, env.utc_offset_ms));
                return Ok(());
            }
            other => {
                // A DI the meter can read but not write is refused as
                // unauthorised; one it does not know at all is "no data".
                return Err(if self.read(other, true_ms, env).is_some() {
                    ErrorFlags::PASSWORD
                } else {
                    ErrorFlags::NO_DATA
                });
            }
        }
        self.params = p;
        Ok(())
    }

    fn relay_control(
        &mut self,
        data: &[u8],
        true_ms: i64,
        env: &MeterEnv,
    ) -> Result<(), ErrorFlags> {
        let pw = Password::from_wire(&data[0..4]).map_err(|_| ErrorFlags::OTHER)?;
        if !self.password_ok(pw) {
            return Err(ErrorFlags::PASSWORD);
        }
        let rc = RelayControl::from_wire(data).map_err(|_| ErrorFlags::OTHER)?;
        if civil_to_ms(rc.valid_until, env.utc_offset_ms) < self.meter_ms(true_ms) {
            return Err(ErrorFlags::OTHER);
        }
        let was = self.relay_open();
        match rc.command {
            RelayCommand::Trip => self.relay |= R_COMMANDED,
            RelayCommand::CloseAllowed => self.relay &= !R_COMMANDED,
            RelayCommand::DirectClose => {
                self.relay &= !(R_COMMANDED | R_MALICIOUS | R_OVER_POWER | R_LOCKOUT);
                self.restore_at_ms = 0;
                self.trips_today = 0;
            }
            RelayCommand::Alarm | RelayCommand::AlarmRelease => {}
            RelayCommand::KeepPower => self.relay |= F_KEEP_POWER,
            RelayCommand::KeepPowerRelease => self.relay &= !F_KEEP_POWER,
        }
        self.note_relay(was, true_ms, rc.operator.0);
        Ok(())
    }

    fn recharge(&mut self, data: &[u8], true_ms: i64) -> Frame {
        let a = self.address;
        let Ok(r) = Recharge::from_wire(data) else {
            return request::security_error_reply(a, SecurityErrorFlags::OTHER);
        };
        let stored = self.purchase_count;
        if r.purchase_count == stored {
            return request::security_error_reply(a, SecurityErrorFlags::REPEAT_RECHARGE);
        }
        if r.purchase_count != stored.wrapping_add(1) {
            return request::security_error_reply(a, SecurityErrorFlags::COUNT_ERROR);
        }
        if u64::from(self.remaining_centikwh) + u64::from(r.energy_centikwh)
            > u64::from(self.params.hoarding_centikwh)
        {
            return request::security_error_reply(a, SecurityErrorFlags::HOARDING_LIMIT);
        }
        let was = self.relay_open();
        self.before_purchase_centikwh = self.remaining_centikwh;
        // Purchased energy first pays back the overdraft used.
        let repay = r.energy_centikwh.min(self.overdraft_centikwh);
        self.overdraft_centikwh -= repay;
        self.remaining_centikwh += r.energy_centikwh - repay;
        self.after_purchase_centikwh = self.remaining_centikwh;
        self.purchased_total_centikwh = self
            .purchased_total_centikwh
            .saturating_add(r.energy_centikwh);
        self.purchase_count = r.purchase_count;
        self.last_purchase_ms = self.meter_ms(true_ms);
        self.last_purchase_centikwh = r.energy_centikwh;
        if self.remaining_centikwh > 0 {
            self.relay &= !R_BALANCE;
        }
        self.note_relay(was, true_ms, r.operator.0);
        let reply = RechargeReply {
            remaining_centikwh: i64::from(self.remaining_centikwh),
            purchase_count: self.purchase_count,
        };
        request::recharge_reply(a, &reply)
            .unwrap_or_else(|_| request::security_error_reply(a, SecurityErrorFlags::OTHER))
    }

    fn change_password(&mut self, data: &[u8]) -> Frame {
        let a = self.address;
        let f = Function::ChangePassword;
        let (Ok(old), Ok(new)) = (
            Password::from_wire(&data[4..8]),
            Password::from_wire(&data[8..12]),
        ) else {
            return request::error_reply(a, f, ErrorFlags::OTHER);
        };
        // Only the level-02 password exists on the reference meter.
        if Di::from_le_bytes(data) != Di::password(2) || new.level != 0x02 || !self.password_ok(old)
        {
            return request::error_reply(a, f, ErrorFlags::PASSWORD);
        }
        self.params.password = new.code & 0x00FF_FFFF;
        request::normal_reply(a, f, new.to_wire().to_vec())
            .unwrap_or_else(|_| request::error_reply(a, f, ErrorFlags::OTHER))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dormwatt_frame_decodes_every_di_the_meter_answers() {
        // Each DI of the reference profile, and a few daily freezes: whatever
        // the simulated meter answers, `dormwatt frame decode` must decode
        // (a value, no warning, not "unknown DI").
        let env = MeterEnv::default();
        let address = Address::parse("201701010001").expect("address");
        let now_ms = 1_796_000_000_000;
        let mut meter = Meter::new(address, 7, now_ms, MeterParams::default(), 0, &env);
        let mut dis: Vec<Di> = (0..=0xFFFF_u32)
            .flat_map(|low| {
                [
                    0x0000_0000,
                    0x0090_0000,
                    0x0201_0000,
                    0x0202_0000,
                    0x0203_0000,
                    0x0206_0000,
                    0x0280_0000,
                    0x0400_0000,
                    0x0332_0000,
                    0x04A0_0000,
                ]
                .map(|high| Di(high | low))
            })
            .collect();
        dis.extend(
            (1..=3)
                .flat_map(|n| [Di::daily_freeze_time(n), Di::daily_freeze_energy(n)])
                .flatten(),
        );
        let mut answered = 0;
        for di in dis {
            let Some(reply) = meter.handle(&request::read_request(address, di), now_ms, &env)
            else {
                continue;
            };
            if reply.control().is_abnormal() {
                continue;
            }
            answered += 1;
            let items = dlt645::describe::scan(&dlt645::encode(&reply));
            let [dlt645::describe::Item::Frame(d)] = &items[..] else {
                panic!("{di}: {items:?}");
            };
            assert!(
                d.value.is_some()
                    && d.warnings.is_empty()
                    && !d.unknown_di
                    && d.value_error.is_none(),
                "{di}: {}",
                d.to_human()
            );
            assert!(di.name().is_some(), "{di} has no name");
        }
        assert!(answered >= 30, "only {answered} DIs answered");
    }

    #[test]
    fn a_meter_stays_small() {
        // 100,000 meters in one process: keep each within half a KiB
        // (62 daily freezes alone are 248 bytes).
        assert!(
            std::mem::size_of::<Meter>() <= 512,
            "{}",
            std::mem::size_of::<Meter>()
        );
    }
}
