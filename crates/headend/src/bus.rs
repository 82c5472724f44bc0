//! One scheduler per RS485 bus.
//!
//! A bus is half duplex: the scheduler never has two requests in flight on
//! it (two would collide and both replies be lost). Buses run in parallel,
//! also the buses behind one gateway. Before every routine read the
//! scheduler serves the urgent queue (deliveries and relay commands for a
//! waiting student or staff member), so urgent work waits for at most one
//! transaction.
//!
//! Routine work follows the collection plan ([`crate::plan`]): frequent
//! reads, hourly reads, and once a day the daily-freeze history (which
//! back-fills days missed while a meter was unreachable) plus a clock check.
//! Event reads (trip counters) happen only when status word 3 shows a new
//! trip, to keep frames per meter minimal.

use crate::clock::SharedClock;
use crate::link::Link;
use crate::metrics::BusCounters;
use crate::plan::{self, FREQUENT, HOURLY};
use crate::writer::WriterMsg;
use crate::{Config, Error};
use dlt645::value::{MeterDateTime, OperatorCode, Password, StatusWord3, Value, WriteData};
use dlt645::{Address, Di, Frame, request, wire_time_us};
use jiff::tz::TimeZone;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use store::meters::{FrozenDays, MeterEvent, MeterRow, Observation};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// Longest idle sleep of a scheduler, so a jump of the clock or a due
/// meter is noticed promptly.
const IDLE_SLEEP_MAX_MS: i64 = 1_000;
/// Wait before re-trying a daily read whose freeze is not there yet.
const DAILY_RETRY_MS: i64 = 10 * 60_000;

/// An urgent request: sent before any routine poll.
pub(crate) struct Urgent {
    frame: Frame,
    attempts: u32,
    reply: oneshot::Sender<Result<Frame, Error>>,
}

/// Submits urgent requests to one bus.
#[derive(Clone, Debug)]
pub struct BusHandle {
    tx: mpsc::Sender<Urgent>,
    counters: Arc<BusCounters>,
}

impl BusHandle {
    /// Sends `frame` ahead of routine polling, with up to `attempts` tries
    /// on timeout, and returns the meter's reply (normal or abnormal).
    pub async fn request(&self, frame: Frame, attempts: u32) -> Result<Frame, Error> {
        let (tx, rx) = oneshot::channel();
        self.counters.urgent_queued.fetch_add(1, Ordering::Relaxed);
        let sent = self
            .tx
            .send(Urgent {
                frame,
                attempts: attempts.max(1),
                reply: tx,
            })
            .await;
        if sent.is_err() {
            self.counters.urgent_queued.fetch_sub(1, Ordering::Relaxed);
            return Err(Error::Stopped);
        }
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// The bus's row id.
    pub fn bus_id(&self) -> i64 {
        self.counters.bus_id
    }
}

/// What the scheduler remembers of one meter.
#[derive(Debug)]
struct Slot {
    id: i64,
    address: Address,
    next_frequent_ms: i64,
    next_hourly_ms: i64,
    next_daily_try_ms: i64,
    daily_done_day: i64,
    missing_marked_day: i64,
    last_frozen_day: Option<i64>,
    missed: u32,
    online: Option<bool>,
    last_sw: Option<StatusWord3>,
    swept: bool,
}

impl Slot {
    /// A fresh slot for `m`, the `i`-th meter of a bus (hourly reads spread
    /// `spread` ms apart); `None` for an address that does not parse.
    fn new(shared: &BusShared, now: i64, i: usize, spread: i64, m: &MeterRow) -> Option<Slot> {
        let address = Address::parse(&m.address).ok()?;
        let i = i64::try_from(i).unwrap_or(0);
        Some(Slot {
            id: m.id,
            address,
            next_frequent_ms: now,
            // Hourly reads spread over the hour so they do not all
            // land on the first sweep.
            next_hourly_ms: now + (i * spread).min(shared.cfg.hourly_interval_ms),
            next_daily_try_ms: now,
            daily_done_day: i64::MIN,
            missing_marked_day: i64::MIN,
            last_frozen_day: m.last_frozen_day,
            missed: 0,
            // Never heard of is neither online nor offline: its
            // first answer is not a return.
            online: (m.online || m.seen).then_some(m.online),
            last_sw: m
                .status_word
                .and_then(|w| u16::try_from(w).ok())
                .map(StatusWord3),
            swept: false,
        })
    }
}

/// Everything a bus task shares with the others.
pub(crate) struct BusShared {
    pub(crate) cfg: Arc<Config>,
    pub(crate) clock: SharedClock,
    pub(crate) tz: TimeZone,
    pub(crate) writer: mpsc::Sender<WriterMsg>,
}

/// One bus's scheduler.
pub(crate) struct Bus {
    shared: Arc<BusShared>,
    link: Arc<Link>,
    baud: u32,
    counters: Arc<BusCounters>,
    urgent: mpsc::Receiver<Urgent>,
    urgent_open: bool,
    meters: Vec<Slot>,
    cursor: usize,
    unswept: usize,
    consecutive_timeouts: u32,
    /// The bus's meters as the registry lists them now (hot reload,
    /// crate::reload): a change is applied between two transactions.
    meter_set: Option<watch::Receiver<Vec<MeterRow>>>,
}

impl Bus {
    /// A scheduler for `meters` on a bus at `baud` behind `link`, and the
    /// handle to send it urgent requests.
    pub(crate) fn new(
        shared: Arc<BusShared>,
        link: Arc<Link>,
        counters: Arc<BusCounters>,
        baud: u32,
        meters: &[MeterRow],
    ) -> (Bus, BusHandle) {
        let (tx, rx) = mpsc::channel(shared.cfg.urgent_queue);
        let now = shared.clock.now_ms();
        let n = meters.len().max(1);
        let spread = shared.cfg.frequent_interval_ms / i64::try_from(n).unwrap_or(1);
        let slots: Vec<Slot> = meters
            .iter()
            .enumerate()
            .filter_map(|(i, m)| Slot::new(&shared, now, i, spread, m))
            .collect();
        let handle = BusHandle {
            tx,
            counters: counters.clone(),
        };
        let unswept = slots.len();
        (
            Bus {
                shared,
                link,
                baud,
                counters,
                urgent: rx,
                urgent_open: true,
                meters: slots,
                cursor: 0,
                unswept,
                consecutive_timeouts: 0,
                meter_set: None,
            },
            handle,
        )
    }

    /// Runs until `stop`.
    pub(crate) async fn run(mut self, stop: CancellationToken) {
        if self.meters.is_empty() {
            self.counters
                .first_sweep_done_ms
                .store(self.shared.clock.now_ms(), Ordering::Relaxed);
        }
        while !stop.is_cancelled() {
            self.follow_registry();
            self.serve_urgent().await;
            if !self.link.is_connected() {
                self.idle(250, &stop).await;
                continue;
            }
            let now = self.shared.clock.now_ms();
            let (today, tod) = plan::campus_day(now, &self.shared.tz);
            match self.next_due(now, today, tod) {
                Some(i) => self.poll(i, now, today).await,
                None => {
                    let hourly_on = self.shared.cfg.hourly_interval_ms > 0;
                    let wait = self
                        .meters
                        .iter()
                        .map(|m| {
                            if hourly_on {
                                m.next_frequent_ms.min(m.next_hourly_ms)
                            } else {
                                m.next_frequent_ms
                            }
                        })
                        .min()
                        .map_or(IDLE_SLEEP_MAX_MS, |t| t - now)
                        .clamp(1, IDLE_SLEEP_MAX_MS);
                    self.idle(wait, &stop).await;
                }
            }
        }
    }

    /// Follows registry changes (crate::reload) from now on.
    pub(crate) fn follow(&mut self, meter_set: watch::Receiver<Vec<MeterRow>>) {
        self.meter_set = Some(meter_set);
    }

    /// Applies a changed meter list: meters still on the bus at the same
    /// address keep their schedule and state, new ones are polled at once,
    /// removed ones are no longer polled. Runs between two transactions, so
    /// nothing in flight on the bus is disturbed.
    fn follow_registry(&mut self) {
        let Some(rx) = self.meter_set.as_mut() else {
            return;
        };
        if !rx.has_changed().unwrap_or(false) {
            return;
        }
        let wanted = rx.borrow_and_update().clone();
        let now = self.shared.clock.now_ms();
        let spread =
            self.shared.cfg.frequent_interval_ms / i64::try_from(wanted.len().max(1)).unwrap_or(1);
        let mut old: std::collections::HashMap<i64, Slot> =
            self.meters.drain(..).map(|m| (m.id, m)).collect();
        let mut added = 0usize;
        for (i, m) in wanted.iter().enumerate() {
            match old.remove(&m.id) {
                Some(slot) if slot.address.to_string() == m.address => self.meters.push(slot),
                _ => {
                    if let Some(slot) = Slot::new(&self.shared, now, i, spread, m) {
                        added += 1;
                        self.meters.push(slot);
                    }
                }
            }
        }
        self.unswept = self.meters.iter().filter(|m| !m.swept).count();
        self.cursor = 0;
        tracing::info!(
            bus.id = self.counters.bus_id,
            meters = self.meters.len(),
            added,
            removed = old.len(),
            "bus follows the registry"
        );
    }

    /// Sleeps up to `ms`, waking early for an urgent request.
    async fn idle(&mut self, ms: i64, stop: &CancellationToken) {
        let clock = self.shared.clock.clone();
        if !self.urgent_open {
            tokio::select! {
                () = clock.sleep_ms(ms) => {}
                () = stop.cancelled() => {}
            }
            return;
        }
        let got = tokio::select! {
            u = self.urgent.recv() => u,
            () = clock.sleep_ms(ms) => return,
            () = stop.cancelled() => return,
        };
        match got {
            Some(u) => self.serve_one(u).await,
            None => self.urgent_open = false,
        }
    }

    async fn serve_urgent(&mut self) {
        while let Ok(u) = self.urgent.try_recv() {
            self.serve_one(u).await;
        }
    }

    async fn serve_one(&mut self, u: Urgent) {
        let r = self.transact(&u.frame, u.attempts).await;
        self.counters.urgent_queued.fetch_sub(1, Ordering::Relaxed);
        self.counters.urgent_done.fetch_add(1, Ordering::Relaxed);
        let _ = u.reply.send(r);
    }

    /// One request with up to `attempts` tries on timeout. Abnormal replies
    /// are returned as frames: the meter answered.
    async fn transact(&mut self, frame: &Frame, attempts: u32) -> Result<Frame, Error> {
        let timeout = plan::timeout_ms(
            self.baud,
            frame.wire_len(),
            self.shared.cfg.gateway_slack_ms,
        );
        let mut last = Error::Timeout;
        for _ in 0..attempts.max(1) {
            self.counters.frames_sent.fetch_add(1, Ordering::Relaxed);
            self.counters.wire_us.fetch_add(
                wire_time_us(plan::REQUEST_PREAMBLE + frame.wire_len(), self.baud),
                Ordering::Relaxed,
            );
            let reply = {
                // Shared with the other buses; a time broadcast takes it alone.
                let _gate = self.link.gate.read().await;
                self.link.transact(frame, timeout, &self.shared.clock).await
            };
            match reply {
                Ok(reply) => {
                    self.counters.replies.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .wire_us
                        .fetch_add(wire_time_us(reply.wire_len(), self.baud), Ordering::Relaxed);
                    self.consecutive_timeouts = 0;
                    return Ok(reply);
                }
                Err(Error::Timeout) => {
                    self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                    self.consecutive_timeouts += 1;
                    if self.consecutive_timeouts >= self.shared.cfg.link_reset_after_timeouts {
                        tracing::warn!(gateway = %self.link.name, bus.id = self.counters.bus_id, "no replies for a long run of requests; reconnecting");
                        self.consecutive_timeouts = 0;
                        self.link.reset();
                    }
                    last = Error::Timeout;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// A read of `di`, decoded; abnormal replies become `Refused`.
    async fn read(&mut self, address: Address, di: Di, attempts: u32) -> Result<Frame, Error> {
        self.serve_urgent().await;
        let r = self
            .transact(&request::read_request(address, di), attempts)
            .await;
        match r {
            Ok(f) if f.control().is_abnormal() => {
                self.counters.reads_ok.fetch_add(1, Ordering::Relaxed);
                Err(Error::Refused(format!(
                    "{:?}",
                    f.error_flags().map(|e| e.names())
                )))
            }
            Ok(f) => {
                self.counters.reads_ok.fetch_add(1, Ordering::Relaxed);
                Ok(f)
            }
            Err(e) => {
                self.counters.reads_failed.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    fn daily_due(&self, m: &Slot, now: i64, today: i64, tod: i64) -> bool {
        let after = self.shared.cfg.daily_read_after_ms;
        after >= 0 && tod >= after && m.daily_done_day < today && now >= m.next_daily_try_ms
    }

    fn next_due(&mut self, now: i64, today: i64, tod: i64) -> Option<usize> {
        let n = self.meters.len();
        let hourly_on = self.shared.cfg.hourly_interval_ms > 0;
        for k in 0..n {
            let i = (self.cursor + k) % n;
            let m = &self.meters[i];
            if now >= m.next_frequent_ms
                || (hourly_on && now >= m.next_hourly_ms)
                || self.daily_due(m, now, today, tod)
            {
                self.cursor = (i + 1) % n;
                return Some(i);
            }
        }
        None
    }

    /// One meter's round: whatever of the plan is due.
    async fn poll(&mut self, i: usize, now: i64, today: i64) {
        let cfg = self.shared.cfg.clone();
        let (_, tod) = plan::campus_day(now, &self.shared.tz);
        let (id, address) = (self.meters[i].id, self.meters[i].address);
        let frequent = now >= self.meters[i].next_frequent_ms;
        let hourly = cfg.hourly_interval_ms > 0 && now >= self.meters[i].next_hourly_ms;
        let daily = self.daily_due(&self.meters[i], now, today, tod);
        // A meter already offline gets one try per read: each silent try
        // costs a whole timeout of bus time that online meters need.
        let attempts = if self.meters[i].online == Some(false) {
            1
        } else {
            cfg.read_attempts
        };
        let mut obs = Observation {
            meter_id: id,
            at_ms: now,
            ..Observation::default()
        };
        let mut events = Vec::new();
        let mut answered = false;
        let mut silent = false;
        let mut reads: Vec<Di> = Vec::with_capacity(6);
        if frequent {
            reads.extend(FREQUENT);
        }
        if hourly {
            reads.extend(HOURLY);
        }
        for di in reads {
            match self.read(address, di, attempts).await {
                Ok(f) => {
                    answered = true;
                    apply(&mut obs, di, &f);
                }
                Err(Error::Refused(_)) => answered = true,
                Err(_) => {
                    silent = true;
                    break;
                }
            }
        }
        if !silent {
            match plan::overdraft(obs.remaining_centikwh) {
                plan::Overdraft::Unknown => {}
                plan::Overdraft::Zero => obs.overdraft_centikwh = Some(0),
                plan::Overdraft::Read => {
                    // A meter without the DI (Refused) or a lost reply
                    // leaves the stored overdraft as it was.
                    if let Ok(f) = self.read(address, Di::OVERDRAFT_ENERGY, attempts).await {
                        apply(&mut obs, Di::OVERDRAFT_ENERGY, &f);
                    }
                }
            }
        }
        let mut frozen = None;
        if daily && !silent {
            match self.daily(i, today, tod).await {
                Ok((f, mut ev)) => {
                    answered = true;
                    frozen = f;
                    events.append(&mut ev);
                }
                Err(_) => silent = true,
            }
        }
        let clock_now = self.shared.clock.now_ms();
        obs.at_ms = clock_now;
        if let Some(sw) = obs.status_word.and_then(|w| u16::try_from(w).ok()) {
            let sw = StatusWord3(sw);
            let reason = plan::relay_reason(sw, obs.remaining_centikwh);
            obs.relay_closed = Some(reason.is_none());
            obs.relay_reason = reason.map(str::to_owned);
            obs.keep_power = Some(sw.keep_power());
            let before = self.meters[i]
                .last_sw
                .map(|s| plan::relay_reason(s, obs.remaining_centikwh));
            if before != Some(reason) {
                match reason {
                    Some(r) => {
                        let detail = self.trip_detail(address, r).await;
                        events.push(event(id, clock_now, "trip", detail));
                    }
                    None if before.is_some() => {
                        events.push(event(id, clock_now, "restore", String::new()));
                    }
                    None => {}
                }
            }
            self.meters[i].last_sw = Some(sw);
        }
        let m = &mut self.meters[i];
        if answered {
            obs.seen = true;
            m.missed = 0;
            if m.online != Some(true) {
                obs.online = Some(true);
                if m.online == Some(false) {
                    events.push(event(id, clock_now, "online", String::new()));
                }
                m.online = Some(true);
            }
        } else {
            m.missed = m.missed.saturating_add(1);
            if m.missed >= cfg.offline_after_missed_polls && m.online != Some(false) {
                obs.online = Some(false);
                events.push(event(
                    id,
                    clock_now,
                    "offline",
                    format!("{} polls unanswered", m.missed),
                ));
                m.online = Some(false);
            }
        }
        obs.missed_polls = i64::from(m.missed);
        obs.keep_readings = hourly && answered;
        if frequent {
            m.next_frequent_ms = now + cfg.frequent_interval_ms;
        }
        if hourly {
            m.next_hourly_ms = now + cfg.hourly_interval_ms;
        }
        if daily && silent {
            m.next_daily_try_ms = clock_now + cfg.frequent_interval_ms;
            if m.missing_marked_day < today {
                // Yesterday could not be read: say so (S4) rather than
                // show zero; the next successful freeze read back-fills it.
                m.missing_marked_day = today;
                let _ = self
                    .shared
                    .writer
                    .send(WriterMsg::MarkMissing {
                        meter_id: id,
                        through_day: today - 1,
                    })
                    .await;
            }
        }
        if frequent && !m.swept {
            m.swept = true;
            if answered && !silent {
                self.counters
                    .first_sweep_read
                    .fetch_add(1, Ordering::Relaxed);
            }
            self.unswept -= 1;
            if self.unswept == 0 {
                self.counters
                    .first_sweep_done_ms
                    .store(clock_now, Ordering::Relaxed);
            }
        }
        let _ = self
            .shared
            .writer
            .send(WriterMsg::Round {
                obs: Box::new(obs),
                events,
                frozen,
            })
            .await;
    }

    /// The detail of a trip event; for a safety trip with the meter's trip
    /// counter (one extra read, only when a trip is new).
    async fn trip_detail(&mut self, address: Address, reason: &str) -> String {
        let di = match reason {
            "malicious_load" => Di::MALICIOUS_LOAD_TRIPS,
            "over_power" => Di::OVER_POWER_TRIPS,
            _ => return reason.to_owned(),
        };
        match self.read(address, di, 1).await {
            Ok(f) => match plan::number(&f) {
                Some(n) => format!("{reason}; trips since install {n}"),
                None => reason.to_owned(),
            },
            Err(_) => reason.to_owned(),
        }
    }

    /// The daily read: freeze history since the last stored day, and the
    /// meter clock. `Err` when the meter stopped answering.
    async fn daily(
        &mut self,
        i: usize,
        today: i64,
        tod: i64,
    ) -> Result<(Option<FrozenDays>, Vec<MeterEvent>), Error> {
        let cfg = self.shared.cfg.clone();
        let (id, address) = (self.meters[i].id, self.meters[i].address);
        let attempts = cfg.read_attempts;
        let f = self
            .read(address, Di::LAST_DAILY_FREEZE_TIME, attempts)
            .await?;
        let Some(Value::DateTime(t)) = plan::value(&f) else {
            return Err(Error::BadReply("freeze time".into()));
        };
        let Some(freeze_day) = plan::meter_day(t) else {
            return Err(Error::BadReply("freeze date".into()));
        };
        // Freeze n=1 happened at the start of `freeze_day`: it holds the
        // total at the end of the day before.
        let last_end = freeze_day - 1;
        let k = match self.meters[i].last_frozen_day {
            Some(d) if d >= last_end => 0,
            Some(d) => (last_end - d).clamp(1, i64::from(cfg.backfill_days_max)),
            None => i64::from(cfg.first_backfill_days),
        };
        let mut totals = Vec::new();
        for n in 1..=k {
            let Some(di) = u8::try_from(n).ok().and_then(Di::daily_freeze_energy) else {
                break;
            };
            match self.read(address, di, attempts).await {
                Ok(f) => match plan::value(&f) {
                    Some(Value::EnergyBlock(v)) if !v.is_empty() => {
                        totals.push((last_end - (n - 1), v[0]));
                    }
                    _ => break,
                },
                Err(Error::Refused(_)) => break,
                Err(e) => {
                    // Keep what was read; the rest is read next time.
                    self.store_partial(id, &totals);
                    return Err(e);
                }
            }
        }
        let mut events = Vec::new();
        if let Some(e) = self.check_clock(id, address, tod).await {
            events.push(e);
        }
        let m = &mut self.meters[i];
        if let Some(&(d, _)) = totals.first() {
            m.last_frozen_day = Some(m.last_frozen_day.map_or(d, |x| x.max(d)));
        }
        if freeze_day >= today {
            m.daily_done_day = today;
        } else {
            // The meter has not frozen today yet (its clock lags): again later.
            m.next_daily_try_ms = self.shared.clock.now_ms() + DAILY_RETRY_MS;
        }
        Ok((
            (!totals.is_empty()).then_some(FrozenDays {
                meter_id: id,
                totals,
            }),
            events,
        ))
    }

    fn store_partial(&mut self, id: i64, totals: &[(i64, i64)]) {
        if totals.is_empty() {
            return;
        }
        if let Some(m) = self.meters.iter_mut().find(|m| m.id == id) {
            m.last_frozen_day = Some(
                m.last_frozen_day
                    .map_or(totals[0].0, |x| x.max(totals[0].0)),
            );
        }
        let _ = self.shared.writer.try_send(WriterMsg::Round {
            obs: Box::new(Observation {
                meter_id: id,
                at_ms: self.shared.clock.now_ms(),
                seen: true,
                online: Some(true),
                ..Observation::default()
            }),
            events: Vec::new(),
            frozen: Some(FrozenDays {
                meter_id: id,
                totals: totals.to_vec(),
            }),
        });
    }

    /// Reads the meter's time of day; corrects it with a 14H write when it
    /// is off by more than the configured limit.
    async fn check_clock(&mut self, id: i64, address: Address, tod: i64) -> Option<MeterEvent> {
        let attempts = self.shared.cfg.read_attempts;
        let f = self.read(address, Di::TIME, attempts).await.ok()?;
        let Some(Value::Time {
            hour,
            minute,
            second,
        }) = plan::value(&f)
        else {
            return None;
        };
        let error = plan::clock_error_ms((hour, minute, second), tod);
        if error.abs() <= self.shared.cfg.clock_max_error_ms {
            return None;
        }
        let now = self.shared.clock.now_ms();
        let t: MeterDateTime = plan::meter_time(now, &self.shared.tz)?;
        let w = WriteData {
            di: Di::TIME,
            password: Password {
                level: 2,
                code: self.shared.cfg.meter_password,
            },
            operator: OperatorCode(self.shared.cfg.operator_code),
            value: t.to_wire_time().to_vec(),
        };
        let frame = request::write_request(address, &w).ok()?;
        // Writing the time again after a lost reply does no harm.
        let ok =
            matches!(self.transact(&frame, attempts).await, Ok(r) if !r.control().is_abnormal());
        Some(event(
            id,
            now,
            "clock_corrected",
            format!(
                "meter clock off by {} s; correction {}",
                error / 1000,
                if ok { "accepted" } else { "failed" }
            ),
        ))
    }
}

fn event(meter_id: i64, at_ms: i64, kind: &str, detail: String) -> MeterEvent {
    MeterEvent {
        meter_id,
        at_ms,
        kind: kind.to_owned(),
        detail,
    }
}

/// Puts a read value into the observation.
fn apply(obs: &mut Observation, di: Di, f: &Frame) {
    if di == Di::STATUS_WORD_3 {
        if let Some(Value::StatusWord3(sw)) = plan::value(f) {
            obs.status_word = Some(i64::from(sw.0));
        }
        return;
    }
    let Some(v) = plan::number(f) else { return };
    match di {
        Di::REMAINING_ENERGY => obs.remaining_centikwh = Some(v),
        Di::OVERDRAFT_ENERGY => obs.overdraft_centikwh = Some(v),
        // XX.XXXX kW: tenths of a watt on the wire.
        Di::ACTIVE_POWER => obs.power_w = Some(v / 10),
        Di::COMBINED_ACTIVE_ENERGY => obs.total_centikwh = Some(v),
        Di::VOLTAGE => obs.voltage_dv = Some(v),
        Di::PURCHASE_COUNT => obs.purchase_count = Some(v),
        _ => {}
    }
}
