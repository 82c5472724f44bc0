//! Meter-fleet simulator: virtual DL/T 645 meters on timed RS485 buses
//! behind TCP gateways.
//!
//! Invariant: everything timed happens on the virtual [`SimClock`], and
//! everything random comes from the configured seed, so a run can go faster
//! than real time and the same seed gives the same meters, loads and faults.
//!
//! - [`meter`]: one meter of the reference profile (`meter-profile.md`):
//!   energy, balance and overdraft, recharge rule, relay, malicious-load and
//!   over-power trips, daily freezes, clock drift, passwords.
//! - [`load`]: a room's believable load, a pure function of (seed, time).
//! - [`fleet`]: all meters by bus and gateway, and the control API
//!   (inspect, plug an appliance, take a meter offline, faults).
//! - [`net`]: gateways in TCP server or client mode; timed half-duplex buses.
//! - [`control`]: a line-based text control surface (stdin or TCP).
//!
//! What a head-end sees on the wire (decisions the specs leave open):
//! - One TCP endpoint per gateway, whatever its number of buses. The
//!   gateway routes a frame to the bus that holds the addressed meter
//!   (broadcast and `AA` wildcard frames to all its buses; an unknown address
//!   to its first bus, where nobody answers), so the head-end may keep one
//!   request outstanding **per bus** on the same connection; replies from
//!   different buses interleave. A second request for a busy bus collides.
//! - Server mode: gateway `index` listens on `base_port + index` and accepts
//!   up to [`SimConfig::connections_max`] clients; a reply goes back to the
//!   connection that sent the request.
//! - Client mode: the gateway dials the head-end, sends its name (ASCII, e.g.
//!   `cuc-b01-gw1`, no terminator) as the registration packet, then
//!   [`SimConfig::heartbeat`] (`DWHB`) every heartbeat period of virtual
//!   time; it redials with backoff when the link drops.
//! - Replies carry [`SimConfig::reply_preamble`] `FE` bytes (default 4).
//! - Meter clocks start at the virtual clock (plus drift): an in-process
//!   head-end running the simulator faster than real time must take its
//!   "now" (relay deadlines, broadcast time) from [`Fleet::clock`].
//!
//! Start a fleet in process:
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use sim::{Fleet, GatewayMode, SimConfig};
//! let plan = domain::campus::reference_plan();
//! let fleet = Fleet::from_plan(&plan, SimConfig { speed: 60.0, ..SimConfig::default() });
//! let running = fleet
//!     .start(GatewayMode::Server { host: [127, 0, 0, 1].into(), base_port: 0 })
//!     .await?;
//! println!("{:?}", running.endpoints()[0].listen);
//! # Ok(()) }
//! ```

// Outside tests a panic is a bug we chose to keep: an `expect` with its
// reason under a local `allow`, or a type that makes the case impossible
// (crates/dormwatt/tests/workspace_lints.rs checks every crate says so).
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod clock;
pub mod config;
pub mod control;
pub mod fleet;
pub mod load;
pub mod meter;
pub mod net;

pub use clock::SimClock;
pub use config::{FaultConfig, SimConfig};
pub use fleet::{ControlError, Fleet, GatewayInfo, synthetic_plan};
pub use load::{Appliance, ApplianceKind, LoadConfig};
pub use meter::{MeterEnv, MeterParams, MeterView};
pub use net::{GatewayEndpoint, GatewayMode, RunningFleet};
