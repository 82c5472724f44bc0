//! Hot reload of the registry (issue 14 item 1): the head-end follows
//! gateways, buses and meters added, moved, edited or retired while it runs.
//!
//! Every registry change bumps `registry_version` in its own transaction
//! (`store::registry::version`, migration 0015), so a change made by any
//! process (the console, `dormwatt import`) is seen by every head-end. The
//! reload task reads that one number every `registry_poll_ms` of the
//! head-end's clock; when it moved, it reads the registry and applies the
//! difference:
//!
//! - a new gateway gets its link, dial loop, time sync and bus tasks;
//! - a gateway whose host, port or mode changed, or that was disabled, is
//!   stopped (and started again at its new endpoint);
//! - a new bus gets its scheduler; a bus whose baud changed is restarted; a
//!   removed bus is stopped;
//! - on an unchanged bus the scheduler is handed the new meter list (a
//!   `watch` channel) and applies it between two transactions: meters that
//!   stay keep their schedule, new ones are polled at once, removed (retired
//!   or moved) ones are no longer polled. Nothing in flight on that bus is
//!   disturbed;
//! - the route table (meter id → bus, address) used by deliveries and relay
//!   commands is replaced as a whole. A lookup is a read lock and a clone of
//!   a small struct; the lock is written only on a reload.
//!
//! Not followed: a new gateway in `listen` mode (the listener's table of
//! registration names is fixed at start; a warning says a restart is
//! needed). A removed bus's counters stay in the metrics until restart.

use crate::bus::{Bus, BusHandle, BusShared};
use crate::clock::SharedClock;
use crate::deliver::Route;
use crate::link::{self, Link};
use crate::metrics::{BusCounters, Metrics};
use dlt645::Address;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use store::meters::{GatewayRow, MeterRow};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Meter id → how to reach it; swapped as a whole on a reload.
#[derive(Debug, Default)]
pub(crate) struct Routes(RwLock<Arc<HashMap<i64, Route>>>);

impl Routes {
    /// The route of `meter_id` now.
    pub(crate) fn get(&self, meter_id: i64) -> Option<Route> {
        let map = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&meter_id).cloned()
    }

    /// How many meters are routed.
    pub(crate) fn len(&self) -> usize {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// The meters routed now (the relay-command worker claims theirs).
    pub(crate) fn meter_ids(&self) -> Vec<i64> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .copied()
            .collect()
    }

    fn replace(&self, map: HashMap<i64, Route>) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(map);
    }
}

/// One running bus.
struct LiveBus {
    baud: i64,
    handle: BusHandle,
    meters: watch::Sender<Vec<MeterRow>>,
    stop: CancellationToken,
}

/// One running gateway.
struct LiveGateway {
    endpoint: (String, String, i64),
    link: Arc<Link>,
    stop: CancellationToken,
    buses: HashMap<i64, LiveBus>,
}

/// The running gateways and buses, and what is needed to start more.
pub(crate) struct Live {
    shared: Arc<BusShared>,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    stop: CancellationToken,
    gateways: HashMap<i64, LiveGateway>,
    tasks: Vec<JoinHandle<()>>,
    routes: Arc<Routes>,
}

/// What a gateway's link depends on (a gateway that dials in is found by
/// name, so its host and port do not matter).
fn endpoint_of(gw: &GatewayRow) -> (String, String, i64) {
    if gw.mode == "listen" {
        (gw.mode.clone(), String::new(), 0)
    } else {
        (gw.mode.clone(), gw.host.clone(), gw.port)
    }
}

/// The (id, address) pairs of a meter list: what a bus's schedule depends on.
fn identity(meters: &[MeterRow]) -> Vec<(i64, &str)> {
    meters.iter().map(|m| (m.id, m.address.as_str())).collect()
}

fn baud_of(b: i64) -> u32 {
    u32::try_from(b).unwrap_or(2400)
}

impl Live {
    pub(crate) fn new(
        shared: Arc<BusShared>,
        metrics: Arc<Metrics>,
        clock: SharedClock,
        stop: CancellationToken,
    ) -> Live {
        Live {
            shared,
            metrics,
            clock,
            stop,
            gateways: HashMap::new(),
            tasks: Vec::new(),
            routes: Arc::new(Routes::default()),
        }
    }

    /// The route table deliveries and relay commands read.
    pub(crate) fn routes(&self) -> Arc<Routes> {
        self.routes.clone()
    }

    fn start_bus(
        &mut self,
        gw_name: &str,
        link: &Arc<Link>,
        parent: &CancellationToken,
        b: &store::meters::BusRow,
    ) -> LiveBus {
        let baud = baud_of(b.baud);
        let counters = Arc::new(BusCounters {
            bus_id: b.id,
            gateway: gw_name.to_owned(),
            baud,
            meters: b.meters.len(),
            ..BusCounters::default()
        });
        self.metrics.add_bus(counters.clone());
        let (mut bus, handle): (Bus, BusHandle) =
            Bus::new(self.shared.clone(), link.clone(), counters, baud, &b.meters);
        let (tx, rx) = watch::channel(b.meters.clone());
        bus.follow(rx);
        let stop = parent.child_token();
        self.tasks.push(tokio::spawn(bus.run(stop.clone())));
        LiveBus {
            baud: b.baud,
            handle,
            meters: tx,
            stop,
        }
    }

    /// Starts a gateway's link and buses. A gateway in `listen` mode gets
    /// its link into `listened` (served by the listener), when given.
    pub(crate) fn add_gateway(
        &mut self,
        gw: &GatewayRow,
        listened: Option<&mut HashMap<String, Arc<Link>>>,
    ) {
        let link = Link::new(gw.name.clone(), self.metrics.clone());
        let stop = self.stop.child_token();
        let mut buses = HashMap::new();
        for b in &gw.buses {
            let live = self.start_bus(&gw.name, &link, &stop, b);
            buses.insert(b.id, live);
        }
        let cfg = self.shared.cfg.clone();
        if cfg.time_sync_at_ms >= 0 {
            let baud_min = gw
                .buses
                .iter()
                .map(|b| baud_of(b.baud))
                .min()
                .unwrap_or(2400);
            self.tasks.push(tokio::spawn(link::time_sync_loop(
                link.clone(),
                self.clock.clone(),
                cfg.time_zone.tz().clone(),
                cfg.time_sync_at_ms,
                baud_min,
                stop.clone(),
            )));
        }
        match gw.mode.as_str() {
            "listen" => match listened {
                Some(l) => {
                    l.insert(gw.name.clone(), link.clone());
                }
                None => tracing::warn!(
                    gateway = %gw.name,
                    "a gateway in listen mode was added while running; it is served after a restart"
                ),
            },
            _ => {
                let port = u16::try_from(gw.port).unwrap_or(0);
                self.tasks.push(tokio::spawn(link::dial_loop(
                    link.clone(),
                    gw.host.clone(),
                    port,
                    stop.clone(),
                )));
            }
        }
        self.gateways.insert(
            gw.id,
            LiveGateway {
                endpoint: endpoint_of(gw),
                link,
                stop,
                buses,
            },
        );
    }

    /// Makes the running gateways and buses those of `registry`, then
    /// replaces the route table.
    pub(crate) fn apply(&mut self, registry: &[GatewayRow]) {
        let wanted: HashMap<i64, &GatewayRow> = registry.iter().map(|g| (g.id, g)).collect();
        let gone: Vec<i64> = self
            .gateways
            .keys()
            .filter(|id| !wanted.contains_key(id))
            .copied()
            .collect();
        for id in gone {
            if let Some(g) = self.gateways.remove(&id) {
                tracing::info!(gateway.id = id, "gateway left the registry; stopping it");
                g.stop.cancel();
            }
        }
        for gw in registry {
            let endpoint = endpoint_of(gw);
            let moved = self
                .gateways
                .get(&gw.id)
                .is_some_and(|g| g.endpoint != endpoint);
            if moved && let Some(g) = self.gateways.remove(&gw.id) {
                tracing::info!(gateway = %gw.name, "gateway endpoint changed; reconnecting");
                g.stop.cancel();
            }
            let Some(mut live) = self.gateways.remove(&gw.id) else {
                tracing::info!(gateway = %gw.name, buses = gw.buses.len(), "gateway joined");
                self.add_gateway(gw, None);
                continue;
            };
            let ids: Vec<i64> = live.buses.keys().copied().collect();
            for id in ids {
                let keep = gw
                    .buses
                    .iter()
                    .any(|b| b.id == id && live.buses.get(&id).is_some_and(|l| l.baud == b.baud));
                if !keep && let Some(b) = live.buses.remove(&id) {
                    b.stop.cancel();
                }
            }
            for b in &gw.buses {
                match live.buses.get(&b.id) {
                    Some(l) => {
                        l.meters.send_if_modified(|now| {
                            if identity(now) == identity(&b.meters) {
                                return false;
                            }
                            now.clone_from(&b.meters);
                            true
                        });
                    }
                    None => {
                        let started = self.start_bus(&gw.name, &live.link, &live.stop, b);
                        live.buses.insert(b.id, started);
                    }
                }
            }
            self.gateways.insert(gw.id, live);
        }
        self.rebuild_routes(registry);
    }

    /// Builds the route table from `registry` and the running buses.
    pub(crate) fn rebuild_routes(&self, registry: &[GatewayRow]) {
        let mut routes = HashMap::new();
        for gw in registry {
            let Some(live) = self.gateways.get(&gw.id) else {
                continue;
            };
            for b in &gw.buses {
                let Some(lb) = live.buses.get(&b.id) else {
                    continue;
                };
                for m in &b.meters {
                    if let Ok(address) = Address::parse(&m.address) {
                        routes.insert(
                            m.id,
                            Route {
                                bus: lb.handle.clone(),
                                address,
                            },
                        );
                    }
                }
            }
        }
        self.routes.replace(routes);
    }

    /// Polls the registry version every `poll_ms` (0: never) and applies
    /// changes; on stop, waits for every task it started.
    pub(crate) async fn run(mut self, db: store::Db, poll_ms: i64, mut seen: i64) {
        if poll_ms > 0 {
            loop {
                tokio::select! {
                    () = self.clock.sleep_ms(poll_ms) => {}
                    () = self.stop.cancelled() => break,
                }
                match store::registry::version(&db).await {
                    Ok(v) if v != seen => match store::meters::registry(&db).await {
                        Ok(reg) => {
                            seen = v;
                            self.apply(&reg);
                            tracing::info!(
                                version = v,
                                meters = self.routes.len(),
                                "registry reloaded"
                            );
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "could not read the registry; retrying")
                        }
                    },
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read the registry version; retrying")
                    }
                }
                self.tasks.retain(|t| !t.is_finished());
            }
        } else {
            self.stop.cancelled().await;
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
