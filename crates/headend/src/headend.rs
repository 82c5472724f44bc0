//! Starting, steering and stopping the head-end.

use crate::bus::BusShared;
use crate::clock::SharedClock;
use crate::deliver::Worker;
use crate::link;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::writer::{self, WriterMsg};
use crate::{Config, Error, plan, reload};
use dlt645::value::{OperatorCode, Password, RelayCommand, RelayControl, StatusWord3, Value};
use dlt645::{Di, request};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Real-time bound on a graceful shutdown.
/// How long shutdown waits for tasks to finish their current step (a bus
/// round trip is at most a few hundred ms; a delivery in flight is simply
/// released, and the next worker reads the meter back before sending).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(1_500);

/// A running head-end. Dropping it aborts every task (like a crash: leases
/// run out and the next head-end reads back before it sends).
#[derive(Debug)]
pub struct Headend {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    metrics: Arc<Metrics>,
    routes: Arc<reload::Routes>,
    cfg: Arc<Config>,
    clock: SharedClock,
    writer: Option<mpsc::Sender<WriterMsg>>,
    listen: Option<SocketAddr>,
    node: store::nodes::NodeLock,
}

/// The result of a relay command, confirmed by reading status word 3.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RelayOutcome {
    /// Whether the meter accepted the command (9CH).
    pub accepted: bool,
    /// Whether the relay is closed (power on) after the command.
    pub relay_closed: Option<bool>,
    /// Status word 3 read after the command.
    pub status_word: Option<u16>,
}

impl Headend {
    /// Loads the gateway/bus/meter registry from `db` and starts one link
    /// task per gateway, one scheduler per bus, the store writer and the
    /// delivery worker. A gateway in `listen` mode is served by the
    /// listener at `cfg.listen`.
    pub async fn start(db: store::Db, cfg: Config, clock: SharedClock) -> Result<Headend, Error> {
        cfg.validate()?;
        let cfg = Arc::new(cfg);
        let stop = CancellationToken::new();
        let metrics = Arc::new(Metrics::default());
        // The version first: a change committed after it is reloaded.
        let registry_version = store::registry::version(&db).await?;
        let registry = store::meters::registry(&db).await?;
        // This process's identity in job leases. Holding the node's lock
        // proves no other live process is this node, so leases of earlier
        // incarnations belong to dead processes: take them back at once.
        let node = store::nodes::acquire(&db, &cfg.worker_id, clock.now_ms()).await?;
        let worker_name = node.worker();
        let released =
            store::jobs::release_incarnations(&db, &node.name, &worker_name, clock.now_ms())
                .await?;
        tracing::info!(node = %node.name, worker = %worker_name, leases_taken_back = released, "head-end node");
        let (wtx, wrx) = mpsc::channel(writer::WRITER_QUEUE);
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(writer::run(
            db.clone(),
            wrx,
            metrics.clone(),
            clock.clone(),
            cfg.writer_batch_max,
        )));
        let shared = Arc::new(BusShared {
            cfg: cfg.clone(),
            clock: clock.clone(),
            tz: cfg.time_zone.tz().clone(),
            writer: wtx.clone(),
        });
        // issue 14 item 1: gateways and buses run under crate::reload, which
        // follows registry changes while the head-end runs.
        let mut live = reload::Live::new(shared, metrics.clone(), clock.clone(), stop.clone());
        let mut listened = HashMap::new();
        for gw in &registry {
            live.add_gateway(gw, Some(&mut listened));
        }
        live.rebuild_routes(&registry);
        let routes = live.routes();
        tasks.push(tokio::spawn(live.run(
            db.clone(),
            cfg.registry_poll_ms,
            registry_version,
        )));
        let mut listen = None;
        if let Some(addr) = &cfg.listen {
            let listener = TcpListener::bind(addr).await?;
            listen = Some(listener.local_addr()?);
            tracing::info!(listen = %listen.map(|a| a.to_string()).unwrap_or_default(), gateways = listened.len(), "listening for gateways that dial in");
            tasks.push(tokio::spawn(link::listen_loop(
                listener,
                listened,
                metrics.clone(),
                stop.clone(),
            )));
        } else if !listened.is_empty() {
            tracing::warn!(
                gateways = listened.len(),
                "gateways in listen mode but no [headend] listen address; they stay unreachable"
            );
        }
        let worker = Worker::new(
            db.clone(),
            cfg.clone(),
            clock.clone(),
            metrics.clone(),
            routes.clone(),
            worker_name,
        );
        tasks.push(tokio::spawn(worker.run(stop.clone())));
        tracing::info!(
            gateways = registry.len(),
            meters = routes.len(),
            "head-end started"
        );
        Ok(Headend {
            stop,
            tasks,
            metrics,
            routes,
            cfg,
            clock,
            writer: Some(wtx),
            listen,
            node,
        })
    }

    /// The counters now.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// The live counters, to snapshot later (issue 16 item 1: `/metrics`
    /// reads them at scrape time while the head-end runs as a worker).
    pub fn counters(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Where gateways in client mode can dial in, when listening.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen
    }

    /// A staff relay command (trip, close, keep-power…) with the configured
    /// validity deadline, sent ahead of routine polling and confirmed by
    /// reading status word 3 afterwards. The outcome is also recorded as a
    /// meter event.
    pub async fn relay(&self, meter_id: i64, command: RelayCommand) -> Result<RelayOutcome, Error> {
        let route = self
            .routes
            .get(meter_id)
            .ok_or(Error::UnknownMeter(meter_id))?;
        let tz = self.cfg.time_zone.tz();
        let now = self.clock.now_ms();
        let valid_until = plan::meter_time(now + self.cfg.relay_validity_ms, tz)
            .ok_or_else(|| Error::Config("clock outside 2000–2099".into()))?;
        let rc = RelayControl {
            password: Password {
                level: 2,
                code: self.cfg.meter_password,
            },
            operator: OperatorCode(self.cfg.operator_code),
            command,
            reserved: 0,
            valid_until,
        };
        // A relay command is idempotent, so it may be repeated on timeout.
        let reply = route
            .bus
            .request(request::relay_request(route.address, &rc), 3)
            .await?;
        let accepted = !reply.control().is_abnormal();
        let sw = route
            .bus
            .request(request::read_request(route.address, Di::STATUS_WORD_3), 3)
            .await
            .ok()
            .and_then(|f| match plan::value(&f) {
                Some(Value::StatusWord3(s)) => Some(s),
                _ => None,
            });
        let outcome = RelayOutcome {
            accepted,
            relay_closed: sw.map(|s: StatusWord3| !s.relay_open()),
            status_word: sw.map(|s| s.0),
        };
        let at = self.clock.now_ms();
        let Some(writer) = &self.writer else {
            return Ok(outcome);
        };
        let _ = writer
            .send(WriterMsg::Round {
                obs: Box::new(store::meters::Observation {
                    meter_id,
                    at_ms: at,
                    seen: true,
                    online: Some(true),
                    status_word: sw.map(|s| i64::from(s.0)),
                    keep_power: sw.map(|s| s.keep_power()),
                    relay_closed: outcome.relay_closed,
                    relay_reason: sw
                        .and_then(|s| plan::relay_reason(s, Some(1)))
                        .map(str::to_owned),
                    ..Default::default()
                }),
                events: vec![store::meters::MeterEvent {
                    meter_id,
                    at_ms: at,
                    kind: "relay_command".to_owned(),
                    detail: format!(
                        "{}: {}",
                        command.name(),
                        if accepted { "accepted" } else { "refused" }
                    ),
                }],
                frozen: None,
            })
            .await;
        if !accepted {
            return Err(Error::Refused(format!(
                "{:?}",
                reply.error_flags().map(|e| e.names())
            )));
        }
        Ok(outcome)
    }

    /// How often the delivery worker looks for paid orders, and how many
    /// deliveries run at once (the head-end's stated pace and bound).
    pub fn delivery_pace(&self) -> (Duration, usize) {
        (
            Duration::from_millis(u64::try_from(self.cfg.deliver_poll_ms).unwrap_or(1_000)),
            self.cfg.deliver_concurrency,
        )
    }

    /// Stops every task, waiting (at most 1.5 s) for them to finish their
    /// current step; `true` when every task ended by itself, `false` when
    /// some had to be aborted.
    pub async fn shutdown(mut self) -> bool {
        self.stop.cancel();
        // The writer drains and ends once every sender is gone.
        self.writer = None;
        let tasks = std::mem::take(&mut self.tasks);
        let all = async {
            for t in tasks {
                let _ = t.await;
            }
        };
        if tokio::time::timeout(SHUTDOWN_TIMEOUT, all).await.is_err() {
            tracing::warn!("head-end tasks did not stop in time; aborting them");
            return false;
        }
        true
    }

    // Issue 14 item 5 (crate::commands): the meters this head-end routes
    // and its clock and settings, for the relay-command worker.
    /// The meters this head-end has a bus for.
    pub(crate) fn routed_meters(&self) -> Vec<i64> {
        self.routes.meter_ids()
    }

    /// How to reach `meter_id` now (issue 14 item 6 part 4, crate::params).
    pub(crate) fn route(&self, meter_id: i64) -> Option<crate::deliver::Route> {
        self.routes.get(meter_id)
    }

    /// The head-end's clock now.
    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The head-end's settings.
    pub(crate) fn config(&self) -> &Config {
        &self.cfg
    }

    /// This process's name in job leases (`<node>#<incarnation>`).
    pub fn worker_name(&self) -> String {
        self.node.worker()
    }

    /// The stop token: cancel it to stop the head-end from elsewhere.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }
}

impl Drop for Headend {
    fn drop(&mut self) {
        self.stop.cancel();
        for t in &self.tasks {
            t.abort();
        }
    }
}
