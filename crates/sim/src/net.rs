//! Gateways on TCP and timed half-duplex RS485 buses.
//!
//! Each gateway owns one or more buses and one TCP endpoint:
//! - **server mode**: the gateway listens on `base_port + index` and the
//!   head-end connects to it;
//! - **client mode**: the gateway dials the head-end, sends its registration
//!   packet (its name) and then heartbeats, and redials when the link drops.
//!
//! A gateway routes each request to the bus that holds the addressed meter
//! (broadcast and wildcard frames go to every bus), the way a multi-port
//! concentrator with a routing table does, so the buses of one gateway work
//! in parallel over one TCP connection. Replies go back to the connection
//! the request came from.
//!
//! Each bus is a task that owns the bus's time line (on the virtual clock):
//! a request occupies the line for its wire time, the meter answers after
//! Td, the reply occupies the line for its wire time. A request that arrives
//! while the line is busy collides: neither reply comes back, and the first
//! request reaches its meter only if it had finished transmitting.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use dlt645::{Frame, StreamDecoder, wire_time_us};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::fleet::Fleet;

/// Requests queued per bus before a connection waits (back-pressure).
const BUS_QUEUE: usize = 32;
/// Replies queued per connection.
const CONN_QUEUE: usize = 64;
/// Client mode: longest wait between redials, real time.
const REDIAL_MAX: Duration = Duration::from_secs(10);
/// Client mode: connect timeout, real time.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How the gateways meet the head-end.
#[derive(Debug, Clone)]
pub enum GatewayMode {
    /// Each gateway listens on `host:(base_port + index)`; `base_port` 0
    /// lets the OS choose a free port per gateway (tests).
    Server {
        /// Address to bind.
        host: IpAddr,
        /// Port of the gateway with index 0.
        base_port: u16,
    },
    /// Each gateway dials `headend`, registers with its name, then sends
    /// heartbeats.
    Client {
        /// The head-end's listening address.
        headend: SocketAddr,
    },
}

/// Where a started gateway can be reached.
#[derive(Debug, Clone)]
pub struct GatewayEndpoint {
    /// Gateway name.
    pub name: String,
    /// Platform-wide index.
    pub index: usize,
    /// The bound address (server mode), `None` in client mode.
    pub listen: Option<SocketAddr>,
}

/// A running fleet: its tasks stop when this is dropped or shut down.
#[derive(Debug)]
pub struct RunningFleet {
    fleet: Fleet,
    endpoints: Vec<GatewayEndpoint>,
    tasks: Vec<JoinHandle<()>>,
    /// Dropping it closes every open connection.
    _shutdown: watch::Sender<()>,
}

impl RunningFleet {
    /// The fleet (control API).
    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// One endpoint per gateway, in gateway-index order.
    pub fn endpoints(&self) -> &[GatewayEndpoint] {
        &self.endpoints
    }

    /// Stops every task (listeners, connections, buses, the tick).
    pub fn shutdown(mut self) {
        self.abort();
    }

    fn abort(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for RunningFleet {
    fn drop(&mut self) {
        self.abort();
    }
}

/// One request on its way to a bus.
struct BusRequest {
    frame: Frame,
    /// Virtual µs at which the gateway started sending it on the line.
    arrival_us: i64,
    reply_to: mpsc::Sender<Vec<u8>>,
}

impl Fleet {
    /// Starts the gateways (bound or dialling, per `mode`), one task per bus
    /// and the coarse tick. Must be called inside a tokio runtime.
    pub async fn start(&self, mode: GatewayMode) -> io::Result<RunningFleet> {
        let mut tasks = Vec::new();
        let mut bus_txs = Vec::with_capacity(self.inner.buses.len());
        for b in 0..self.inner.buses.len() {
            let (tx, rx) = mpsc::channel(BUS_QUEUE);
            bus_txs.push(tx);
            tasks.push(tokio::spawn(run_bus(self.clone(), b, rx)));
        }
        let mut endpoints = Vec::new();
        let (shutdown, shutdown_rx) = watch::channel(());
        for (gi, g) in self.inner.gateways.iter().enumerate() {
            let txs: Vec<(usize, mpsc::Sender<BusRequest>)> =
                g.buses.clone().map(|b| (b, bus_txs[b].clone())).collect();
            let gw = GatewayCtx {
                fleet: self.clone(),
                gw: gi,
                buses: txs,
                shutdown: shutdown_rx.clone(),
            };
            match &mode {
                GatewayMode::Server { host, base_port } => {
                    let port = if *base_port == 0 {
                        0
                    } else {
                        u16::try_from(usize::from(*base_port) + g.index).map_err(|_| {
                            io::Error::new(io::ErrorKind::InvalidInput, "port beyond 65535")
                        })?
                    };
                    let listener = TcpListener::bind((*host, port)).await?;
                    endpoints.push(GatewayEndpoint {
                        name: g.name.clone(),
                        index: g.index,
                        listen: Some(listener.local_addr()?),
                    });
                    tasks.push(tokio::spawn(serve_listener(gw, listener)));
                }
                GatewayMode::Client { headend } => {
                    endpoints.push(GatewayEndpoint {
                        name: g.name.clone(),
                        index: g.index,
                        listen: None,
                    });
                    tasks.push(tokio::spawn(dial_loop(gw, *headend)));
                }
            }
        }
        tasks.push(tokio::spawn(tick(self.clone())));
        Ok(RunningFleet {
            fleet: self.clone(),
            endpoints,
            tasks,
            _shutdown: shutdown,
        })
    }
}

#[derive(Clone)]
struct GatewayCtx {
    fleet: Fleet,
    gw: usize,
    buses: Vec<(usize, mpsc::Sender<BusRequest>)>,
    /// Changes (closes) when the running fleet is dropped.
    shutdown: watch::Receiver<()>,
}

async fn tick(fleet: Fleet) {
    let period = fleet.config().tick_ms.max(1000);
    loop {
        fleet.clock().sleep_ms(period).await;
        // Catching up 100,000 meters takes a while: keep it off the
        // runtime's workers so that bus timing is not held up.
        let f = fleet.clone();
        let _ = tokio::task::spawn_blocking(move || f.advance_all()).await;
    }
}

async fn serve_listener(gw: GatewayCtx, listener: TcpListener) {
    let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let max = gw.fleet.config().connections_max.max(1);
    loop {
        let Ok((stream, _peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if open.load(std::sync::atomic::Ordering::Relaxed) >= max {
            drop(stream);
            continue;
        }
        open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let gw = gw.clone();
        let open = open.clone();
        tokio::spawn(async move {
            serve_connection(&gw, stream, false).await;
            open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        });
    }
}

async fn dial_loop(gw: GatewayCtx, headend: SocketAddr) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(headend)).await {
            Ok(Ok(stream)) => {
                backoff = Duration::from_millis(200);
                serve_connection(&gw, stream, true).await;
            }
            Ok(Err(e)) => {
                tracing::debug!(gateway = %gw.fleet.inner.gateways[gw.gw].name, error = %e, "dial failed")
            }
            Err(_) => {
                tracing::debug!(gateway = %gw.fleet.inner.gateways[gw.gw].name, "dial timed out")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(REDIAL_MAX);
    }
}

/// Serves one TCP connection until it closes or the gateway resets it.
async fn serve_connection(gw: &GatewayCtx, stream: TcpStream, client_mode: bool) {
    let fleet = &gw.fleet;
    let slot = &fleet.inner.gateways[gw.gw];
    let mut reset = slot.reset.subscribe();
    let mut shutdown = gw.shutdown.clone();
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(CONN_QUEUE);
    let clock = fleet.clock().clone();
    let heartbeat = client_mode.then(|| fleet.config().heartbeat.clone());
    let registration = client_mode.then(|| slot.name.as_bytes().to_vec());
    let hb_period = fleet.config().heartbeat_period_ms.max(1000);
    let writer = AbortOnDrop(tokio::spawn(async move {
        if let Some(r) = registration
            && wr.write_all(&r).await.is_err()
        {
            return;
        }
        // Heartbeats keep a fixed period whatever the traffic, like the
        // USR gateways' network-side heartbeat.
        let mut next_hb_us = clock.now_us() + hb_period * 1000;
        loop {
            let next_hb = async {
                match &heartbeat {
                    Some(_) => clock.sleep_until_us(next_hb_us).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(bytes) => if wr.write_all(&bytes).await.is_err() { return },
                    None => return,
                },
                () = next_hb => {
                    // After a clock jump, one heartbeat, not a burst.
                    next_hb_us = (next_hb_us + hb_period * 1000)
                        .max(clock.now_us() + hb_period * 1000 / 2);
                    if let Some(hb) = &heartbeat
                        && wr.write_all(hb).await.is_err() { return }
                }
            }
        }
    }));
    let mut decoder = StreamDecoder::new();
    let mut buf = vec![0u8; 1024];
    'conn: loop {
        let n = tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => break 'conn,
                Ok(n) => n,
            },
            r = reset.changed() => { let _ = r; break 'conn }
            _ = shutdown.changed() => break 'conn,
        };
        decoder.push(&buf[..n]);
        while let Some(item) = decoder.next_frame() {
            // Garbage, bad checksums and unknown functions: the meters
            // ignore such bytes, so the gateway just forwards nothing.
            let Ok(frame) = item else { continue };
            let now_us = fleet.clock().now_us();
            match fleet.gateway_fault(gw.gw, now_us.div_euclid(1000)) {
                Some(true) => break 'conn,
                Some(false) => continue,
                None => {}
            }
            let a = frame.address();
            let targets: Vec<usize> = if a.is_broadcast() || a.has_wildcard() {
                gw.buses.iter().map(|(b, _)| *b).collect()
            } else {
                // A meter the gateway does not know: the frame still goes
                // out on its first port, where nobody answers.
                vec![fleet.bus_of(gw.gw, a).unwrap_or(gw.buses[0].0)]
            };
            for b in targets {
                if let Some((_, btx)) = gw.buses.iter().find(|(i, _)| *i == b) {
                    let req = BusRequest {
                        frame: frame.clone(),
                        arrival_us: now_us,
                        reply_to: tx.clone(),
                    };
                    if btx.send(req).await.is_err() {
                        break 'conn;
                    }
                }
            }
        }
    }
    drop(writer);
}

/// Aborts a task when dropped, so a connection's writer never outlives the
/// connection (e.g. when the fleet shuts down mid-read).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One bus: serialises transactions on the virtual time line.
async fn run_bus(fleet: Fleet, bus: usize, mut rx: mpsc::Receiver<BusRequest>) {
    let baud = fleet.inner.buses[bus].baud;
    let pre = usize::from(fleet.config().request_preamble);
    let clock = fleet.clock().clone();
    let mut free_at_us = i64::MIN;
    while let Some(first) = rx.recv().await {
        let start = first.arrival_us.max(free_at_us);
        let req_us = wire_time_us(pre + first.frame.wire_len(), baud) as i64;
        let req_end = start + req_us;
        let mut busy_end = req_end;
        if wait_or_collide(&clock, &mut rx, &mut busy_end, baud, pre).await {
            free_at_us = busy_end;
            continue;
        }
        let d = fleet.deliver(bus, &first.frame, clock.now_ms(), true);
        let Some(reply) = d.reply else {
            free_at_us = req_end;
            continue;
        };
        let reply_end = req_end + d.td_us + wire_time_us(reply.len(), baud) as i64;
        busy_end = reply_end;
        if wait_or_collide(&clock, &mut rx, &mut busy_end, baud, pre).await {
            free_at_us = busy_end;
            continue;
        }
        free_at_us = reply_end;
        if d.extra_latency_ms == 0 {
            let _ = first.reply_to.try_send(reply);
        } else {
            let clock = clock.clone();
            tokio::spawn(async move {
                clock.sleep_ms(i64::from(d.extra_latency_ms)).await;
                let _ = first.reply_to.send(reply).await;
            });
        }
    }
}

/// Waits until the virtual clock reaches `busy_end`. Every request arriving
/// meanwhile collides: it is lost, it extends the busy time by its own wire
/// time, and the function returns `true` (the transaction is garbled).
async fn wait_or_collide(
    clock: &crate::SimClock,
    rx: &mut mpsc::Receiver<BusRequest>,
    busy_end: &mut i64,
    baud: u32,
    pre: usize,
) -> bool {
    let mut collided = false;
    let mut open = true;
    loop {
        tokio::select! {
            biased;
            () = clock.sleep_until_us(*busy_end) => return collided,
            r = rx.recv(), if open => match r {
                Some(other) => {
                    collided = true;
                    let end = other.arrival_us + wire_time_us(pre + other.frame.wire_len(), baud) as i64;
                    *busy_end = (*busy_end).max(end);
                }
                None => open = false,
            },
        }
    }
}
