//! TCP links to gateways, in both modes: we dial the gateway (server-mode
//! gateway), or the gateway dials us and announces itself with a
//! registration packet (client-mode gateway, protocol-notes §6).
//!
//! A link carries the requests of every bus behind its gateway; replies are
//! matched to the outstanding request by meter address (one outstanding
//! request per bus and addresses are unique, so the address is a key),
//! function and DI echo. Anything else on the stream — heartbeats,
//! registration prefixes, late replies, garbage — is counted and dropped.

use crate::Error;
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use dlt645::{Address, Control, Di, Frame, Function, StreamDecoder, encode};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Frames queued for one connection's writer.
const WRITE_QUEUE: usize = 64;
/// Real-time limit on establishing a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Real-time limit on writing one frame to the socket.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// First redial delay, doubled per failure up to [`REDIAL_MAX`].
const REDIAL_MIN: Duration = Duration::from_millis(200);
/// Longest redial delay.
const REDIAL_MAX: Duration = Duration::from_secs(30);
/// How long a dialling gateway has to send its registration packet.
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest registration packet (USR gateways allow 40 bytes).
const REGISTRATION_MAX: usize = 40;
/// Copies of the daily time broadcast (it is never acknowledged).
const TIME_SYNC_REPEATS: usize = 3;
/// Connections waiting to register at once; more are closed.
const UNREGISTERED_MAX: usize = 64;

/// A request waiting for its reply.
struct Pending {
    token: u64,
    request: Control,
    di: Option<Di>,
    reply: oneshot::Sender<Frame>,
}

/// One gateway link, shared by the buses behind it.
pub(crate) struct Link {
    pub(crate) name: String,
    pending: Mutex<HashMap<Address, Pending>>,
    out: Mutex<Option<mpsc::Sender<Vec<u8>>>>,
    next_token: AtomicU64,
    /// Wakes the connection to drop itself (a half-open link).
    reset: Notify,
    /// Held shared by every bus transaction and exclusively by a
    /// broadcast: a broadcast goes out on every bus of the gateway at
    /// once, so no bus may be mid-transaction.
    pub(crate) gate: tokio::sync::RwLock<()>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("name", &self.name).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Link {
    pub(crate) fn new(name: String, metrics: Arc<Metrics>) -> Arc<Link> {
        Arc::new(Link {
            name,
            pending: Mutex::new(HashMap::new()),
            out: Mutex::new(None),
            next_token: AtomicU64::new(1),
            reset: Notify::new(),
            gate: tokio::sync::RwLock::new(()),
            metrics,
        })
    }

    /// Whether a connection is up.
    pub(crate) fn is_connected(&self) -> bool {
        lock(&self.out).is_some()
    }

    /// Asks the current connection to close (it is redialled or awaited).
    pub(crate) fn reset(&self) {
        self.reset.notify_waiters();
    }

    /// Sends `frame` and waits up to `timeout_ms` (clock time) for the
    /// matching reply.
    pub(crate) async fn transact(
        &self,
        frame: &Frame,
        timeout_ms: i64,
        clock: &SharedClock,
    ) -> Result<Frame, Error> {
        let sender = lock(&self.out).clone().ok_or(Error::Disconnected)?;
        let (tx, rx) = oneshot::channel();
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let address = frame.address();
        let expects_reply = !address.is_broadcast();
        if expects_reply {
            lock(&self.pending).insert(
                address,
                Pending {
                    token,
                    request: frame.control(),
                    di: match frame.function() {
                        Some(Function::Read | Function::Security) => frame.di(),
                        _ => None,
                    },
                    reply: tx,
                },
            );
        }
        if sender.send(encode(frame)).await.is_err() {
            self.forget(address, token);
            return Err(Error::Disconnected);
        }
        if !expects_reply {
            return Err(Error::Timeout);
        }
        tokio::select! {
            r = rx => r.map_err(|_| Error::Disconnected),
            () = clock.sleep_ms(timeout_ms) => {
                self.forget(address, token);
                Err(Error::Timeout)
            }
        }
    }

    /// Sends a frame no meter answers (a broadcast).
    pub(crate) async fn send_only(&self, frame: &Frame) -> Result<(), Error> {
        let sender = lock(&self.out).clone().ok_or(Error::Disconnected)?;
        sender
            .send(encode(frame))
            .await
            .map_err(|_| Error::Disconnected)
    }

    fn forget(&self, address: Address, token: u64) {
        let mut p = lock(&self.pending);
        if p.get(&address).is_some_and(|x| x.token == token) {
            p.remove(&address);
        }
    }

    /// Hands a decoded frame to the request it answers.
    fn dispatch(&self, frame: Frame) {
        if !frame.control().is_reply() {
            self.metrics
                .unmatched_replies
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut p = lock(&self.pending);
        let matches = p.get(&frame.address()).is_some_and(|x| {
            frame.control().answers(x.request)
                && (frame.control().is_abnormal() || x.di.is_none() || frame.di() == x.di)
        });
        if !matches {
            drop(p);
            tracing::debug!(gateway = %self.name, address = %frame.address(), control = %frame.control(), "reply matches no request");
            self.metrics
                .unmatched_replies
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Some(x) = p.remove(&frame.address()) {
            let _ = x.reply.send(frame);
        }
    }

    /// Serves one TCP connection until it closes, is reset, or `stop`.
    pub(crate) async fn run_connection(
        self: &Arc<Self>,
        stream: TcpStream,
        leftover: Vec<u8>,
        stop: &CancellationToken,
    ) {
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
        *lock(&self.out) = Some(tx.clone());
        self.metrics.connects.fetch_add(1, Ordering::Relaxed);
        tracing::info!(gateway = %self.name, "gateway connected");
        let writer_done = CancellationToken::new();
        let done_guard = writer_done.clone().drop_guard();
        let writer = tokio::spawn(async move {
            // Cancels `writer_done` however the writer ends.
            let _done = done_guard;
            while let Some(mut bytes) = rx.recv().await {
                // Frames of several buses that are ready together go out
                // in one write: one syscall instead of one per frame.
                while let Ok(more) = rx.try_recv() {
                    bytes.extend_from_slice(&more);
                }
                match tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&bytes)).await {
                    Ok(Ok(())) => {}
                    _ => return,
                }
            }
        });
        let mut decoder = StreamDecoder::new();
        decoder.push(&leftover);
        let mut buf = vec![0u8; 2048];
        loop {
            while let Some(item) = decoder.next_frame() {
                match item {
                    Ok(frame) => self.dispatch(frame),
                    Err(_) => {
                        self.metrics.garbled(&self.name);
                    }
                }
            }
            let n = tokio::select! {
                r = rd.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                },
                () = self.reset.notified() => break,
                () = stop.cancelled() => break,
                () = writer_done.cancelled() => break,
            };
            decoder.push(&buf[..n]);
        }
        writer.abort();
        {
            let mut out = lock(&self.out);
            if out.as_ref().is_some_and(|s| s.same_channel(&tx)) {
                *out = None;
            }
        }
        // Waiters of this connection learn at once that it is gone.
        lock(&self.pending).clear();
        self.metrics.disconnects.fetch_add(1, Ordering::Relaxed);
        tracing::info!(gateway = %self.name, "gateway disconnected");
    }
}

/// Broadcasts the time to every meter behind `link` once a campus day at
/// `at_ms` after midnight, with every bus of the gateway quiet. Meters
/// accept one correction of at most ±5 minutes a day; larger errors are
/// corrected per meter by the daily clock check.
pub(crate) async fn time_sync_loop(
    link: Arc<Link>,
    clock: SharedClock,
    tz: jiff::tz::TimeZone,
    at_ms: i64,
    baud_min: u32,
    stop: CancellationToken,
) {
    // Checked once a minute so a jump of the clock is noticed.
    const CHECK_MS: i64 = 60_000;
    let mut done_day = i64::MIN;
    while !stop.is_cancelled() {
        let now = clock.now_ms();
        let (day, tod) = crate::plan::campus_day(now, &tz);
        if day > done_day
            && tod >= at_ms
            && link.is_connected()
            && let Some(t) = crate::plan::meter_time(now, &tz)
        {
            let frame = dlt645::request::broadcast_time_request(t);
            let wire_us =
                dlt645::wire_time_us(crate::plan::REQUEST_PREAMBLE + frame.wire_len(), baud_min);
            let wire_ms = i64::try_from(wire_us.div_ceil(1000)).unwrap_or(1000);
            // The broadcast holds every bus for seconds at low baud; a stop
            // ends it at its next await (dropping the guard frees the buses).
            // A broadcast cut short is harmless: meters take one correction
            // a day, and the daily clock check corrects each one anyway.
            let broadcast = async {
                let _quiet = link.gate.write().await;
                // A request we gave up on may still occupy a line (it can be
                // answered up to Td after it ends): let it drain first.
                let settle_ms = crate::plan::TD_MAX_MS + 100;
                clock.sleep_ms(settle_ms).await;
                let mut sent = false;
                // Nobody acknowledges a broadcast, so it is repeated: a meter
                // takes one correction a day and ignores the repeats.
                for _ in 0..TIME_SYNC_REPEATS {
                    if link.send_only(&frame).await.is_err() {
                        break;
                    }
                    sent = true;
                    // Hold the buses until the frame is off every line, with
                    // room for a late arrival at the gateway.
                    clock.sleep_ms(wire_ms + settle_ms).await;
                }
                sent
            };
            let sent = tokio::select! {
                sent = broadcast => sent,
                () = stop.cancelled() => return,
            };
            if sent {
                link.metrics.time_syncs.fetch_add(1, Ordering::Relaxed);
                tracing::info!(gateway = %link.name, "broadcast time sent");
                done_day = day;
            }
        }
        tokio::select! {
            () = clock.sleep_ms(CHECK_MS) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Dials a server-mode gateway and keeps redialling with backoff.
pub(crate) async fn dial_loop(link: Arc<Link>, host: String, port: u16, stop: CancellationToken) {
    let mut backoff = REDIAL_MIN;
    while !stop.is_cancelled() {
        let connect =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), port)));
        match tokio::select! { r = connect => r, () = stop.cancelled() => return } {
            Ok(Ok(stream)) => {
                backoff = REDIAL_MIN;
                link.run_connection(stream, Vec::new(), &stop).await;
            }
            Ok(Err(e)) => {
                tracing::debug!(gateway = %link.name, host = %host, port, error = %e, "dial failed");
            }
            Err(_) => tracing::debug!(gateway = %link.name, "dial timed out"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(REDIAL_MAX);
    }
}

/// Accepts gateways that dial us, identifies each by its registration
/// packet and hands the connection to its link. Unknown ids are counted,
/// logged and closed.
pub(crate) async fn listen_loop(
    listener: TcpListener,
    links: HashMap<String, Arc<Link>>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let links = Arc::new(links);
    let waiting = Arc::new(tokio::sync::Semaphore::new(UNREGISTERED_MAX));
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = stop.cancelled() => return,
        };
        let Ok((stream, peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = waiting.clone().try_acquire_owned() else {
            tracing::warn!(peer = %peer, "too many unregistered gateway connections; closing");
            continue;
        };
        let links = links.clone();
        let metrics = metrics.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let registered = register(stream, peer, &links, &metrics).await;
            drop(permit);
            if let Some((link, stream, leftover)) = registered {
                link.run_connection(stream, leftover, &stop).await;
            }
        });
    }
}

/// Reads the registration packet: the gateway's name, possibly followed by
/// frames. Prefers the longest known name that the bytes start with.
async fn register(
    mut stream: TcpStream,
    peer: SocketAddr,
    links: &HashMap<String, Arc<Link>>,
    metrics: &Metrics,
) -> Option<(Arc<Link>, TcpStream, Vec<u8>)> {
    let mut got = Vec::with_capacity(REGISTRATION_MAX);
    let mut buf = [0u8; REGISTRATION_MAX];
    let deadline = tokio::time::Instant::now() + REGISTRATION_TIMEOUT;
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => break,
        };
        got.extend_from_slice(&buf[..n]);
        let exact = links.get(String::from_utf8_lossy(&got).as_ref()).is_some();
        if exact || got.len() >= REGISTRATION_MAX {
            break;
        }
        // A name is sent in one piece by real gateways; give a split one a
        // moment to complete, then decide on what arrived.
        match tokio::time::timeout(Duration::from_millis(100), stream.peek(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => continue,
            _ => break,
        }
    }
    let best = links
        .iter()
        .filter(|(name, _)| got.starts_with(name.as_bytes()))
        .max_by_key(|(name, _)| name.len());
    match best {
        Some((name, link)) => {
            let leftover = got[name.len()..].to_vec();
            Some((link.clone(), stream, leftover))
        }
        None => {
            metrics
                .unknown_registrations
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(peer = %peer, registration = %String::from_utf8_lossy(&got).escape_debug(), "gateway with an unknown registration id; closing");
            None
        }
    }
}
