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
