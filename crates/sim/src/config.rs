//! Simulator configuration: meters, link timing and faults.

use serde::Serialize;

use crate::meter::{MeterEnv, MeterParams};

/// Everything that shapes a simulated fleet. `Default` is the reference
/// profile's defaults with no faults.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of everything random (rooms, meters, reply jitter, faults); the
    /// same seed and the same requests give the same run.
    pub seed: u64,
    /// Virtual start instant (unix ms); `None` = the wall clock at start.
    pub start_ms: Option<i64>,
    /// Virtual seconds per real second (0 = paused, advanced by hand).
    pub speed: f64,
    /// Fleet-wide meter inputs (sample period, time zone, load model).
    pub env: MeterEnv,
    /// Initial meter parameters.
    pub params: MeterParams,
    /// Largest clock drift of a meter, ppm (each meter draws one in ±this).
    pub drift_ppm_max: u16,
    /// Meter reply delay Td, ms (meter-profile.md: 20–500, default 30).
    pub reply_delay_ms: u32,
    /// Extra uniform jitter added to Td, ms.
    pub reply_jitter_ms: u32,
    /// `FE` bytes a meter puts before its replies (0–4).
    pub reply_preamble: u8,
    /// `FE` bytes assumed before every request when computing its wire time:
    /// the gateway forwards what the head-end sent, and masters send four.
    pub request_preamble: u8,
    /// Fault injection.
    pub faults: FaultConfig,
    /// TCP clients a gateway in server mode accepts at once (USR gateways
    /// allow a handful); more are closed at once.
    pub connections_max: usize,
    /// Heartbeat period of a gateway in client mode, virtual ms.
    pub heartbeat_period_ms: i64,
    /// Heartbeat bytes (client mode). Chosen without 68H so that even a
    /// naive parser does not mistake them for a frame start.
    pub heartbeat: Vec<u8>,
    /// Every this many virtual ms all meters are brought up to date, which
    /// bounds the catch-up work a single request may trigger.
    pub tick_ms: i64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            start_ms: None,
            speed: 1.0,
            env: MeterEnv::default(),
            params: MeterParams::default(),
            drift_ppm_max: 20,
            reply_delay_ms: 30,
            reply_jitter_ms: 10,
            reply_preamble: 4,
            request_preamble: 4,
            faults: FaultConfig::default(),
            connections_max: 4,
            heartbeat_period_ms: 60_000,
            heartbeat: b"DWHB".to_vec(),
            tick_ms: 15 * 60_000,
        }
    }
}

/// Fault injection rates. Every rate is a probability in 0..=1; all draws
/// come from RNGs seeded with [`FaultConfig::seed`], one stream per bus and
/// per gateway, so a run with the same requests is reproducible.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultConfig {
    /// Seed of the fault RNGs.
    pub seed: u64,
    /// A request is lost on the bus before the meter: not applied, no reply.
    pub request_loss: f64,
    /// The meter applies the request but its reply is lost.
    pub reply_loss: f64,
    /// One byte of a reply is corrupted on the way back.
    pub corrupt: f64,
    /// A reply is held back by the gateway for up to `latency_ms_max` extra.
    pub latency: f64,
    /// Largest extra latency, virtual ms.
    pub latency_ms_max: u32,
    /// Probability per meter and day that the meter goes offline for a
    /// window of `offline_ms_min..=offline_ms_max` (it keeps counting).
    pub offline_per_day: f64,
    /// Shortest offline window, virtual ms.
    pub offline_ms_min: i64,
    /// Longest offline window, virtual ms (at most seven days).
    pub offline_ms_max: i64,
    /// Per request received: the gateway resets its TCP connection instead.
    pub tcp_reset: f64,
    /// Per request received: the gateway goes silent (accepts bytes, answers
    /// nothing) for `silent_ms`.
    pub silent: f64,
    /// Length of a silent spell, virtual ms.
    pub silent_ms: i64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            request_loss: 0.0,
            reply_loss: 0.0,
            corrupt: 0.0,
            latency: 0.0,
            latency_ms_max: 2_000,
            offline_per_day: 0.0,
            offline_ms_min: 3_600_000,
            offline_ms_max: 2 * 86_400_000,
            tcp_reset: 0.0,
            silent: 0.0,
            silent_ms: 60_000,
        }
    }
}

impl FaultConfig {
    /// Sets one rate or length by name (the control surface's `fault`
    /// command); returns false for an unknown name or a bad value.
    pub fn set(&mut self, name: &str, value: f64) -> bool {
        let rate = (0.0..=1.0).contains(&value);
        let len = value >= 0.0 && value.is_finite();
        match name {
            "seed" if len => self.seed = value as u64,
            "request_loss" if rate => self.request_loss = value,
            "reply_loss" if rate => self.reply_loss = value,
            "corrupt" if rate => self.corrupt = value,
            "latency" if rate => self.latency = value,
            "latency_ms_max" if len => self.latency_ms_max = value as u32,
            "offline_per_day" if rate => self.offline_per_day = value,
            "offline_ms_min" if len => self.offline_ms_min = value as i64,
            "offline_ms_max" if len => self.offline_ms_max = (value as i64).min(7 * 86_400_000),
            "tcp_reset" if rate => self.tcp_reset = value,
            "silent" if rate => self.silent = value,
            "silent_ms" if len => self.silent_ms = value as i64,
            _ => return false,
        }
        true
    }
}
