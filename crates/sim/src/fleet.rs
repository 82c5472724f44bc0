//! The fleet: every meter, grouped by bus and gateway, plus the in-process
//! control API.
//!
//! Meters live in one `Vec` per bus behind one mutex per bus: a bus is
//! half-duplex, so its meters are only ever touched by one request at a
//! time anyway, and the control API takes the same lock.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use dlt645::{Address, Frame, PREAMBLE, encode_into};
use domain::campus::{AreaPlan, BuildingPlan, BusPlan, CampusPlan, GatewayPlan, MeterPlan};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use crate::clock::SimClock;
use crate::config::{FaultConfig, SimConfig};
use crate::load::{Appliance, DAY_MS, draw, mix};
use crate::meter::{Meter, MeterView};

/// Why a control request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// No meter has this address.
    #[error("no meter {0}")]
    NoMeter(String),
    /// No gateway has this name.
    #[error("no gateway {0}")]
    NoGateway(String),
    /// The address is not 12 digits.
    #[error("bad meter address {0:?}")]
    BadAddress(String),
}

/// Where a meter sits.
#[derive(Debug, Clone, Copy)]
struct MeterRef {
    bus: u32,
    pos: u32,
}

pub(crate) struct BusSlot {
    pub(crate) port: u8,
    pub(crate) baud: u32,
    state: Mutex<BusState>,
}

struct BusState {
    meters: Vec<Meter>,
    /// The room of each meter, by position.
    rooms: Vec<Box<str>>,
    rng: SmallRng,
}

pub(crate) struct GatewaySlot {
    pub(crate) name: String,
    pub(crate) index: usize,
    pub(crate) buses: Range<usize>,
    /// Virtual ms until which the gateway answers nothing.
    pub(crate) silent_until_ms: AtomicI64,
    /// Bumped to make every connection of the gateway reset.
    pub(crate) reset: watch::Sender<u64>,
    pub(crate) rng: Mutex<SmallRng>,
}

pub(crate) struct FleetInner {
    pub(crate) clock: SimClock,
    pub(crate) config: SimConfig,
    faults: RwLock<FaultConfig>,
    pub(crate) buses: Vec<BusSlot>,
    pub(crate) gateways: Vec<GatewaySlot>,
    /// Where each meter is. Meters are only ever added ([`Fleet::add_meter`]);
    /// never held while a bus is being locked by the writer.
    index: RwLock<HashMap<Address, MeterRef>>,
}

/// A simulated fleet of meters, buses and gateways. Cheap to clone (shared).
///
/// Build it with [`Fleet::from_plan`], serve it over TCP with
/// [`Fleet::start`](crate::net), and inspect or steer it with the methods
/// below while it runs.
#[derive(Clone)]
pub struct Fleet {
    pub(crate) inner: Arc<FleetInner>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("meters", &self.meter_count())
            .field("buses", &self.inner.buses.len())
            .field("gateways", &self.inner.gateways.len())
            .finish()
    }
}

/// What the bus hands back for one request.
#[derive(Debug, Default)]
pub(crate) struct Delivery {
    /// Reply bytes as they go on the wire (preamble included).
    pub(crate) reply: Option<Vec<u8>>,
    /// Extra gateway latency before the reply reaches TCP, virtual ms.
    pub(crate) extra_latency_ms: u32,
    /// Reply delay Td for this transaction, virtual µs.
    pub(crate) td_us: i64,
}

/// A gateway as the control API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GatewayInfo {
    /// Platform-unique name (also the registration packet in client mode).
    pub name: String,
    /// Platform-wide index (server mode listens on `base_port + index`).
    pub index: usize,
    /// Buses: (port on the gateway, baud, meters).
    pub buses: Vec<(u8, u32, usize)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The address as a number, the per-meter key of seeds and fault draws.
fn address_key(a: Address) -> u64 {
    let w = a.to_wire();
    u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], 0, 0])
}

fn to_wire_address(a: &domain::MeterAddress) -> Address {
    // A domain address is always 12 digits, so this cannot fail.
    Address::parse(a.as_str()).unwrap_or(Address::BROADCAST)
}

impl Fleet {
    /// Builds the fleet of `plan`: one meter per planned meter, on the
    /// planned bus, behind the planned gateway.
    pub fn from_plan(plan: &CampusPlan, config: SimConfig) -> Self {
        let clock = match config.start_ms {
            Some(ms) => SimClock::new(ms, config.speed),
            None => SimClock::starting_now(config.speed),
        };
        let now_ms = clock.now_ms();
        let mut buses = Vec::new();
        let mut gateways = Vec::new();
        let mut index = HashMap::new();
        let mut gws: Vec<&GatewayPlan> = plan
            .areas
            .iter()
            .flat_map(|a| a.buildings.iter().flat_map(|b| b.gateways.iter()))
            .collect();
        gws.sort_by_key(|g| g.index);
        for g in gws {
            let first = buses.len();
            for bus in &g.buses {
                let b = u32::try_from(buses.len()).unwrap_or(u32::MAX);
                let mut meters = Vec::with_capacity(bus.meters.len());
                let mut rooms = Vec::with_capacity(bus.meters.len());
                for (pos, m) in bus.meters.iter().enumerate() {
                    let address = to_wire_address(&m.address);
                    let seed = mix(config.seed ^ mix(address_key(address)));
                    meters.push(Meter::new(
                        address,
                        seed,
                        now_ms,
                        config.params,
                        config.drift_ppm_max,
                        &config.env,
                    ));
                    rooms.push(m.room.clone().into_boxed_str());
                    index.insert(
                        address,
                        MeterRef {
                            bus: b,
                            pos: u32::try_from(pos).unwrap_or(u32::MAX),
                        },
                    );
                }
                buses.push(BusSlot {
                    port: bus.port,
                    baud: bus.baud,
                    state: Mutex::new(BusState {
                        meters,
                        rooms,
                        rng: SmallRng::seed_from_u64(mix(config.faults.seed ^ mix(u64::from(b)))),
                    }),
                });
            }
            let (reset, _) = watch::channel(0);
            gateways.push(GatewaySlot {
                name: g.name.clone(),
                index: g.index,
                buses: first..buses.len(),
                silent_until_ms: AtomicI64::new(0),
                reset,
                rng: Mutex::new(SmallRng::seed_from_u64(mix(config.faults.seed
                    ^ 0x6A7E
                    ^ mix(g.index as u64)))),
            });
        }
        let faults = RwLock::new(config.faults.clone());
        Self {
            inner: Arc::new(FleetInner {
                clock,
                config,
                faults,
                buses,
                gateways,
                index: RwLock::new(index),
            }),
        }
    }

    /// The virtual clock (shared: speed changes and jumps affect everything).
    pub fn clock(&self) -> &SimClock {
        &self.inner.clock
    }

    /// The configuration the fleet was built with (faults: see [`Fleet::faults`]).
    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    /// Number of meters.
    pub fn meter_count(&self) -> usize {
        self.index().len()
    }

    fn index(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Address, MeterRef>> {
        self.inner
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn place_of(&self, a: &Address) -> Option<MeterRef> {
        self.index().get(a).copied()
    }

    /// Adds a meter at `addr` in `room` to bus `port` of gateway `gateway`
    /// while the fleet runs (`dormwatt demo` follows the registry, so a
    /// meter imported later answers without a restart). `Ok(false)`: a
    /// meter with this address exists already (nothing changes).
    pub fn add_meter(
        &self,
        gateway: &str,
        port: u8,
        addr: &str,
        room: &str,
    ) -> Result<bool, ControlError> {
        let address = Self::parse(addr)?;
        if self.place_of(&address).is_some() {
            return Ok(false);
        }
        let g = self
            .inner
            .gateways
            .iter()
            .find(|g| g.name == gateway)
            .ok_or_else(|| ControlError::NoGateway(gateway.to_owned()))?;
        let bus = g
            .buses
            .clone()
            .find(|&b| self.inner.buses[b].port == port)
            .ok_or_else(|| ControlError::NoGateway(format!("{gateway} port {port}")))?;
        let cfg = &self.inner.config;
        let seed = mix(cfg.seed ^ mix(address_key(address)));
        let meter = Meter::new(
            address,
            seed,
            self.inner.clock.now_ms(),
            cfg.params,
            cfg.drift_ppm_max,
            &cfg.env,
        );
        // The bus lock and the index lock are never held together here
        // (`deliver` reads the index under the bus lock).
        let pos = {
            let mut st = lock(&self.inner.buses[bus].state);
            st.meters.push(meter);
            st.rooms.push(room.into());
            st.meters.len() - 1
        };
        self.inner
            .index
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                address,
                MeterRef {
                    bus: u32::try_from(bus).unwrap_or(u32::MAX),
                    pos: u32::try_from(pos).unwrap_or(u32::MAX),
                },
            );
        Ok(true)
    }

    /// Number of buses.
    pub fn bus_count(&self) -> usize {
        self.inner.buses.len()
    }

    /// The gateways with their buses.
    pub fn gateways(&self) -> Vec<GatewayInfo> {
        self.inner
            .gateways
            .iter()
            .map(|g| GatewayInfo {
                name: g.name.clone(),
                index: g.index,
                buses: self.inner.buses[g.buses.clone()]
                    .iter()
                    .map(|b| (b.port, b.baud, lock(&b.state).meters.len()))
                    .collect(),
            })
            .collect()
    }

    /// Addresses of the meters on each bus, gateway by gateway
    /// (`result[gateway][bus]`), in wiring order.
    pub fn addresses(&self) -> Vec<Vec<Vec<Address>>> {
        self.inner
            .gateways
            .iter()
            .map(|g| {
                self.inner.buses[g.buses.clone()]
                    .iter()
                    .map(|b| lock(&b.state).meters.iter().map(Meter::address).collect())
                    .collect()
            })
            .collect()
    }

    /// The fault rates now in force.
    pub fn faults(&self) -> FaultConfig {
        self.inner
            .faults
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the fault rates (takes effect with the next request).
    pub fn set_faults(&self, faults: FaultConfig) {
        *self
            .inner
            .faults
            .write()
            .unwrap_or_else(PoisonError::into_inner) = faults;
    }

    fn parse(addr: &str) -> Result<Address, ControlError> {
        domain::MeterAddress::parse(addr)
            .map(|a| to_wire_address(&a))
            .map_err(|_| ControlError::BadAddress(addr.to_owned()))
    }

    /// Runs `f` on the meter at `addr` after bringing it up to date.
    pub(crate) fn with_meter<T>(
        &self,
        addr: &str,
        f: impl FnOnce(&mut Meter, i64, &str) -> T,
    ) -> Result<T, ControlError> {
        let a = Self::parse(addr)?;
        let r = self
            .place_of(&a)
            .ok_or_else(|| ControlError::NoMeter(addr.to_owned()))?;
        let bus = &self.inner.buses[r.bus as usize];
        let now = self.inner.clock.now_ms();
        let mut st = lock(&bus.state);
        let st = &mut *st;
        let m = &mut st.meters[r.pos as usize];
        m.advance(now, &self.inner.config.env);
        Ok(f(m, now, &st.rooms[r.pos as usize]))
    }

    /// The state of one meter (12-digit nameplate address), up to date.
    pub fn inspect(&self, addr: &str) -> Result<MeterView, ControlError> {
        let env = self.inner.config.env;
        self.with_meter(addr, |m, now, _| m.view(now, &env))
    }

    /// The room a meter is in.
    pub fn room_of(&self, addr: &str) -> Result<String, ControlError> {
        self.with_meter(addr, |_, _, room| room.to_owned())
    }

    /// Plugs `appliance` into the meter's room for `duration_ms` of virtual
    /// time (`None` = until unplugged).
    pub fn plug(
        &self,
        addr: &str,
        appliance: Appliance,
        duration_ms: Option<i64>,
    ) -> Result<(), ControlError> {
        self.with_meter(addr, |m, now, _| {
            m.plug(appliance, duration_ms.map_or(i64::MAX, |d| now + d));
        })
    }

    /// Unplugs the appliance plugged with [`Fleet::plug`].
    pub fn unplug(&self, addr: &str) -> Result<(), ControlError> {
        self.with_meter(addr, |m, _, _| m.unplug())
    }

    /// Takes a meter offline (it answers nothing but keeps counting) for
    /// `duration_ms` of virtual time; 0 brings it back online.
    pub fn set_offline(&self, addr: &str, duration_ms: i64) -> Result<(), ControlError> {
        self.with_meter(addr, |m, now, _| {
            m.set_offline_until(now + duration_ms.max(0))
        })
    }

    /// Sets a meter's hoarding limit (it refuses a recharge that would take
    /// its balance above this), 0.01 kWh.
    pub fn set_hoarding_limit(&self, addr: &str, centikwh: u32) -> Result<(), ControlError> {
        let env = self.inner.config.env;
        self.with_meter(addr, |m, now, _| {
            let mut p = m.view(now, &env).params;
            p.hoarding_centikwh = centikwh;
            m.set_params(p);
        })
    }

    /// Sets a meter's level-02 password (P2 P1 P0 as six hex digits): a
    /// meter whose password the head-end does not know refuses its writes
    /// and relay commands with ERR bit2 (fixture).
    pub fn set_password(&self, addr: &str, password: u32) -> Result<(), ControlError> {
        let env = self.inner.config.env;
        self.with_meter(addr, |m, now, _| {
            let mut p = m.view(now, &env).params;
            p.password = password;
            m.set_params(p);
        })
    }

    /// Sets a meter's overdraft limit (04000F04: the energy it lets a room
    /// use after the balance reaches 0, before it trips), 0.01 kWh.
    pub fn set_overdraft_limit(&self, addr: &str, centikwh: u32) -> Result<(), ControlError> {
        let env = self.inner.config.env;
        self.with_meter(addr, |m, now, _| {
            let mut p = m.view(now, &env).params;
            p.overdraft_limit_centikwh = centikwh;
            m.set_params(p);
        })
    }

    /// Sets a meter's remaining energy (fixture for tests and demos).
    pub fn set_remaining(&self, addr: &str, remaining_centikwh: u32) -> Result<(), ControlError> {
        self.with_meter(addr, |m, now, _| m.set_remaining(remaining_centikwh, now))
    }

    fn gateway(&self, name: &str) -> Result<&GatewaySlot, ControlError> {
        self.inner
            .gateways
            .iter()
            .find(|g| g.name == name)
            .ok_or_else(|| ControlError::NoGateway(name.to_owned()))
    }

    /// Makes a gateway silent (reads requests, answers nothing: a half-open
    /// link) for `duration_ms` of virtual time.
    pub fn silence_gateway(&self, name: &str, duration_ms: i64) -> Result<(), ControlError> {
        let g = self.gateway(name)?;
        g.silent_until_ms
            .store(self.inner.clock.now_ms() + duration_ms, Ordering::Relaxed);
        Ok(())
    }

    /// Resets every TCP connection of a gateway now.
    pub fn reset_gateway(&self, name: &str) -> Result<(), ControlError> {
        self.gateway(name)?
            .reset
            .send_modify(|g| *g = g.wrapping_add(1));
        Ok(())
    }

    /// Brings every meter up to date (the coarse tick). Returns the number
    /// of meters advanced.
    pub fn advance_all(&self) -> usize {
        let now = self.inner.clock.now_ms();
        let env = self.inner.config.env;
        let mut n = 0;
        for b in &self.inner.buses {
            let mut st = lock(&b.state);
            for m in &mut st.meters {
                m.advance(now, &env);
                n += 1;
            }
        }
        n
    }

    /// Whether a scheduled (random) offline window covers `now_ms` for the
    /// meter with `address`: drawn per meter and day from the fault seed.
    fn scheduled_offline(f: &FaultConfig, address: Address, now_ms: i64) -> bool {
        if f.offline_per_day <= 0.0 {
            return false;
        }
        let key = address_key(address);
        let span = f.offline_ms_max.max(f.offline_ms_min).max(1);
        let today = now_ms.div_euclid(DAY_MS);
        let back = span / DAY_MS + 1;
        (today - back..=today).any(|d| {
            let u = draw(f.seed ^ 0x0FF1, key, d as u64);
            if ((u % 1_000_000) as f64) >= f.offline_per_day * 1_000_000.0 {
                return false;
            }
            let start = d * DAY_MS + ((u >> 20) % DAY_MS as u64) as i64;
            let len = f.offline_ms_min + ((u >> 40) as i64 % (span - f.offline_ms_min + 1).max(1));
            (start..start + len).contains(&now_ms)
        })
    }

    /// Puts `frame` on bus `bus` at virtual `now_ms`: the addressed meters
    /// act on it and at most one reply comes back (two repliers collide).
    /// Bus faults are drawn here.
    pub(crate) fn deliver(
        &self,
        bus: usize,
        frame: &Frame,
        now_ms: i64,
        faults_on: bool,
    ) -> Delivery {
        let cfg = &self.inner.config;
        let f = if faults_on {
            self.faults()
        } else {
            FaultConfig::default()
        };
        let slot = &self.inner.buses[bus];
        let mut st = lock(&slot.state);
        let st = &mut *st;
        let mut out = Delivery {
            td_us: i64::from(cfg.reply_delay_ms) * 1000,
            ..Delivery::default()
        };
        if cfg.reply_jitter_ms > 0 {
            out.td_us += st
                .rng
                .random_range(0..=i64::from(cfg.reply_jitter_ms) * 1000);
        }
        if f.request_loss > 0.0 && st.rng.random_bool(f.request_loss) {
            return out;
        }
        let a = frame.address();
        let targets: Vec<usize> = if a.is_broadcast() || a.has_wildcard() {
            (0..st.meters.len())
                .filter(|&i| a.matches(st.meters[i].address()))
                .collect()
        } else {
            match self.place_of(&a) {
                Some(r) if r.bus as usize == bus => vec![r.pos as usize],
                _ => Vec::new(),
            }
        };
        let mut replies = Vec::new();
        for i in targets {
            let m = &mut st.meters[i];
            if m.is_offline(now_ms) || Self::scheduled_offline(&f, m.address(), now_ms) {
                continue;
            }
            if let Some(r) = m.handle(frame, now_ms, &cfg.env) {
                replies.push(r);
            }
        }
        // Two meters answering at once garble each other (an AA wildcard on
        // a shared bus): nothing intelligible comes back.
        let [reply] = replies.as_slice() else {
            return out;
        };
        if f.reply_loss > 0.0 && st.rng.random_bool(f.reply_loss) {
            return out;
        }
        let mut bytes = Vec::with_capacity(usize::from(cfg.reply_preamble) + reply.wire_len());
        encode_into(reply, usize::from(cfg.reply_preamble.min(4)), &mut bytes);
        if f.corrupt > 0.0 && st.rng.random_bool(f.corrupt) {
            let skip = bytes.iter().take_while(|&&b| b == PREAMBLE).count();
            let i = st.rng.random_range(skip..bytes.len());
            bytes[i] ^= st.rng.random_range(1..=255u8);
        }
        if f.latency > 0.0 && st.rng.random_bool(f.latency) {
            out.extra_latency_ms = st.rng.random_range(0..=f.latency_ms_max);
        }
        out.reply = Some(bytes);
        out
    }

    /// Sends `frame` straight to its meter, without bus timing, gateways or
    /// faults, and returns the reply frame. For in-process tests of a
    /// head-end's protocol logic.
    pub fn request(&self, frame: &Frame) -> Option<Frame> {
        self.transact(frame, false)
            .and_then(|b| dlt645::decode(&b).ok())
            .map(|(f, _)| f)
    }

    /// Sends `frame` to the bus of its meter (no timing, no gateway) and
    /// returns the reply bytes as they would leave the bus, with the bus
    /// faults (request loss, reply loss, corruption) drawn when
    /// `with_faults`. Broadcast and wildcard frames go to the first bus.
    pub fn transact(&self, frame: &Frame, with_faults: bool) -> Option<Vec<u8>> {
        let now = self.inner.clock.now_ms();
        let bus = self
            .place_of(&frame.address())
            .map_or(0, |r| r.bus as usize);
        self.deliver(bus, frame, now, with_faults).reply
    }

    /// Gateway faults drawn per received request: `Some(true)` = reset the
    /// connection, `Some(false)` = drop the request silently.
    pub(crate) fn gateway_fault(&self, gw: usize, now_ms: i64) -> Option<bool> {
        let g = &self.inner.gateways[gw];
        if now_ms < g.silent_until_ms.load(Ordering::Relaxed) {
            return Some(false);
        }
        let f = self.faults();
        if f.tcp_reset <= 0.0 && f.silent <= 0.0 {
            return None;
        }
        let mut rng = lock(&g.rng);
        if f.tcp_reset > 0.0 && rng.random_bool(f.tcp_reset) {
            return Some(true);
        }
        if f.silent > 0.0 && rng.random_bool(f.silent) {
            g.silent_until_ms
                .store(now_ms + f.silent_ms, Ordering::Relaxed);
            return Some(false);
        }
        None
    }

    /// The bus (fleet-wide index) holding `address` among gateway `gw`'s
    /// buses; `None` when the gateway has no such meter.
    pub(crate) fn bus_of(&self, gw: usize, address: Address) -> Option<usize> {
        let r = self.place_of(&address)?;
        self.inner.gateways[gw]
            .buses
            .contains(&(r.bus as usize))
            .then_some(r.bus as usize)
    }
}

/// A synthetic campus of `meters` meters for load and memory tests: 64
/// meters per bus, four buses per gateway, 1024 meters per building,
/// addresses `2099` + building (4 digits) + meter (4 digits).
pub fn synthetic_plan(meters: usize) -> CampusPlan {
    const PER_BUS: usize = domain::campus::BUS_METERS_MAX;
    const PER_BUILDING: usize = 1024;
    let mut buildings = Vec::new();
    let mut gateway_index = 0;
    let mut left = meters;
    let mut b = 0;
    while left > 0 {
        b += 1;
        let n = left.min(PER_BUILDING);
        left -= n;
        let mplans: Vec<MeterPlan> = (0..n)
            .map(|i| MeterPlan {
                address: domain::MeterAddress::parse(&format!("2099{b:04}{:04}", i + 1))
                    .unwrap_or_else(|_| unreachable!("12 digits")),
                room: format!("{}", (i / 32 + 1) * 100 + i % 32 + 1),
                floor: u32::try_from(i / 32 + 1).unwrap_or(u32::MAX),
            })
            .collect();
        let buses: Vec<BusPlan> = mplans
            .chunks(PER_BUS)
            .enumerate()
            .map(|(p, c)| BusPlan {
                port: u8::try_from(p % domain::campus::GATEWAY_BUSES_MAX + 1).unwrap_or(1),
                baud: domain::campus::DEFAULT_BAUD,
                meters: c.to_vec(),
            })
            .collect();
        let gateways = buses
            .chunks(domain::campus::GATEWAY_BUSES_MAX)
            .enumerate()
            .map(|(g, c)| {
                let gw = GatewayPlan {
                    name: format!("syn-b{b:04}-gw{}", g + 1),
                    index: gateway_index,
                    buses: c.to_vec(),
                };
                gateway_index += 1;
                gw
            })
            .collect();
        buildings.push(BuildingPlan {
            name_zh: format!("合成{b}号楼"),
            name_en: format!("Synthetic {b}"),
            gateways,
        });
    }
    CampusPlan {
        areas: vec![AreaPlan {
            code: "synthetic".to_owned(),
            name_zh: "合成校区".to_owned(),
            name_en: "Synthetic campus".to_owned(),
            unit_price: domain::UnitPrice::from_centifen_per_kwh(5300)
                .unwrap_or_else(|| unreachable!("positive price")),
            buildings,
        }],
    }
}
