//! Exactly-once recharge delivery (reliability.md §2.5, protocol-notes §2.6).
//!
//! A paid order already has a `deliver` job (written in the transaction that
//! marked it paid). The worker claims jobs with a lease and, per meter one at
//! a time, runs:
//!
//! 1. read the meter's purchase count (this read-back is what makes every
//!    retry, restart and lost reply safe);
//! 2. if the order has no sequence number yet, store the count and assign
//!    `seq` once (persisted before any recharge frame is built);
//! 3. loop on [`plan::decide`]: count == seq → delivered (after checking the
//!    last purchase's energy); count == seq − 1 → send the *identical*
//!    recharge frame; anything else → alarm for staff, never guess;
//! 4. a recharge reply carrying count == seq is evidence too; an unknown
//!    outcome (timeout, garbled reply, error reply) goes back to step 3 via
//!    a fresh read-back.
//!
//! Completion writes the order (→ completed), its ledger rows, the job and
//! the meter state in one transaction. An attempt that cannot reach the
//! meter fails the job with a capped backoff; a meter offline for days gets
//! its purchase when it answers again.
//!
//! Every write of the outcome is fenced by the job's lease epoch, and the
//! lease is renewed while the attempt runs and right before every recharge
//! frame, so a worker whose lease was taken over stops before it sends or
//! records anything. An order waiting behind another purchase of its meter
//! is put back without counting a failed attempt and woken when that one
//! settles. A meter that refuses a recharge (hoarding limit) is read back:
//! if the purchase was not applied the number is given back and the order
//! is flagged for staff, refundable.

use crate::bus::BusHandle;
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::plan::{self, Step};
use crate::{Config, Error};
use dlt645::value::{OperatorCode, Recharge, RechargeReply};
use dlt645::{Address, Di, Function, SecurityErrorFlags, request};
use domain::order::OrderState;
use domain::{MeterId, OrderId};
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use store::jobs::Job;
use store::meters::DeliveryEvidence;
use store::orders::{Assignment, DELIVER_QUEUE};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Attempts for each read-back (reads are safe to repeat).
const READ_BACK_ATTEMPTS: u32 = 3;

/// Where a meter is reached.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub(crate) bus: BusHandle,
    pub(crate) address: Address,
}

/// The delivery worker's shared state.
pub(crate) struct Worker {
    pub(crate) db: store::Db,
    pub(crate) cfg: Arc<Config>,
    pub(crate) clock: SharedClock,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) routes: Arc<crate::reload::Routes>,
    /// This process's name in job leases (`<node>#<incarnation>`).
    pub(crate) worker: String,
    in_flight: Mutex<HashSet<i64>>,
    /// Poked when a purchase settles, so the meter's next one (woken in the
    /// store) is claimed at once instead of at the next poll.
    settled: tokio::sync::Notify,
}

/// How one attempt ended.
#[derive(Debug)]
enum Outcome {
    /// The meter's evidence, and when the order was paid.
    Delivered(DeliveryEvidence, Option<i64>),
    /// Needs staff: (event kind, detail).
    Alarm(&'static str, String),
    /// The meter refused purchase `seq` and its count reads `count` < seq:
    /// not applied.
    Refused {
        /// The order's number.
        seq: i64,
        /// The meter's count after the refusal.
        count: i64,
        /// Why.
        detail: String,
    },
    /// Another purchase of the meter goes first (not a failure).
    Wait(String),
    /// Try again later.
    Retry(String),
    /// Nothing to do (already completed, refunded, ...).
    Done,
}

impl Worker {
    pub(crate) fn new(
        db: store::Db,
        cfg: Arc<Config>,
        clock: SharedClock,
        metrics: Arc<Metrics>,
        routes: Arc<crate::reload::Routes>,
        worker: String,
    ) -> Arc<Worker> {
        Arc::new(Worker {
            db,
            cfg,
            clock,
            metrics,
            routes,
            worker,
            in_flight: Mutex::new(HashSet::new()),
            settled: tokio::sync::Notify::new(),
        })
    }

    /// Claims and runs delivery jobs until `stop`.
    pub(crate) async fn run(self: Arc<Self>, stop: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.cfg.deliver_concurrency));
        while !stop.is_cancelled() {
            let free = i64::try_from(slots.available_permits()).unwrap_or(0);
            if free > 0 {
                self.claim_and_spawn(&slots, free, &stop).await;
            }
            tokio::select! {
                () = self.clock.sleep_ms(self.cfg.deliver_poll_ms) => {}
                () = self.settled.notified() => {}
                () = stop.cancelled() => {}
            }
        }
        // Give back at once whatever this process still holds, so another
        // process (or our own restart) need not wait for the leases.
        let now = self.clock.now_ms();
        match store::jobs::release_worker(&self.db, &self.worker, now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "released delivery leases on shutdown"),
            Err(e) => tracing::warn!(error = %e, "could not release delivery leases on shutdown"),
        }
    }

    async fn claim_and_spawn(
        self: &Arc<Self>,
        slots: &Arc<Semaphore>,
        free: i64,
        stop: &CancellationToken,
    ) {
        let now = self.clock.now_ms();
        let jobs = match store::jobs::claim(
            &self.db,
            DELIVER_QUEUE,
            &self.worker,
            now,
            self.cfg.deliver_lease_ms,
            free,
        )
        .await
        {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "could not claim delivery jobs");
                return;
            }
        };
        for job in jobs {
            let parsed = parse_payload(&job.payload)
                .map(|(o, m)| (Subject::Order(o), m))
                .or_else(|| parse_carry_payload(&job.payload).map(|(r, m)| (Subject::Carry(r), m)))
                .or_else(|| {
                    parse_subsidy_payload(&job.payload).map(|(s, m)| (Subject::Subsidy(s), m))
                });
            let Some((subject, meter_id)) = parsed else {
                tracing::error!(job.id = job.id.get(), "delivery job with a bad payload");
                let _ = store::jobs::fail(
                    &self.db,
                    &job,
                    "bad payload",
                    now,
                    self.cfg.deliver_backoff_cap_ms,
                )
                .await;
                continue;
            };
            let fresh = lock(&self.in_flight).insert(meter_id);
            if !fresh {
                // One purchase at a time per meter: the counter is sequential.
                let _ =
                    store::jobs::release(&self.db, &job, now + self.cfg.deliver_poll_ms, now).await;
                continue;
            }
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                lock(&self.in_flight).remove(&meter_id);
                let _ = store::jobs::release(&self.db, &job, now, now).await;
                continue;
            };
            let me = self.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let settled = tokio::select! {
                    s = me.handle(&job, subject, meter_id) => s,
                    // Lost the lease: another worker owns the job now.
                    () = me.keep_lease(&job) => false,
                    // On shutdown the run loop releases the lease; the next
                    // worker reads back before sending anything.
                    () = stop.cancelled() => false,
                };
                lock(&me.in_flight).remove(&meter_id);
                drop(permit);
                if settled {
                    me.settled.notify_one();
                }
            });
        }
    }

    /// Renews the job's lease every third of its length; returns (ending
    /// the attempt it races) when the lease was lost.
    async fn keep_lease(&self, job: &Job) {
        let every = (self.cfg.deliver_lease_ms / 3).max(1);
        loop {
            self.clock.sleep_ms(every).await;
            let now = self.clock.now_ms();
            match store::jobs::heartbeat(&self.db, job, now, self.cfg.deliver_lease_ms).await {
                Ok(()) => {}
                Err(store::Error::LeaseLost(why)) => {
                    tracing::warn!(job.id = job.id.get(), %why, "delivery lease lost; stopping this attempt");
                    return;
                }
                // A failed renewal (database briefly away) is retried; the
                // fenced writes stay safe if the lease runs out meanwhile.
                Err(e) => {
                    tracing::warn!(job.id = job.id.get(), error = %e, "could not renew a delivery lease")
                }
            }
        }
    }

    /// Runs one attempt; true when the purchase settled (the meter's next
    /// one may go).
    async fn handle(&self, job: &Job, subject: Subject, meter_id: i64) -> bool {
        let started = self.clock.now_ms();
        // Logged as the order id; a replacement's carried energy as its
        // negated replacement id (its own fields would double every line).
        let order_id = match subject {
            Subject::Order(o) => o,
            Subject::Carry(r) => -r,
            // A free allowance as its id below -10^12 (never a replacement's).
            Subject::Subsidy(id) => -1_000_000_000_000 - id,
        };
        let Some(route) = self.routes.get(meter_id) else {
            let now = self.clock.now_ms();
            let why = Error::UnknownMeter(meter_id).to_string();
            if let Err(e) =
                store::jobs::fail(&self.db, job, &why, now, self.cfg.deliver_backoff_cap_ms).await
            {
                tracing::error!(order.id = order_id, error = %e, "could not record the delivery outcome");
            }
            return false;
        };
        let ctx = Ctx {
            db: &self.db,
            cfg: &self.cfg,
            clock: self.clock.as_ref(),
        };
        let recorded = match subject {
            Subject::Order(o) => {
                deliver_once(&ctx, job, o, meter_id, &route.bus, route.address).await
            }
            Subject::Carry(r) => {
                let c = Credit::Carry(r);
                deliver_credit_once(&ctx, job, c, meter_id, &route.bus, route.address).await
            }
            Subject::Subsidy(id) => {
                let c = Credit::Subsidy(id);
                deliver_credit_once(&ctx, job, c, meter_id, &route.bus, route.address).await
            }
        };
        let now = self.clock.now_ms();
        let settled = matches!(
            recorded,
            Recorded::Delivered { .. } | Recorded::Refused { .. } | Recorded::Done
        );
        match &recorded {
            Recorded::Delivered {
                paid_at_ms,
                purchase,
            } => {
                let paid = paid_at_ms.unwrap_or(started);
                self.metrics.delivered(now - paid);
                tracing::info!(
                    order.id = order_id,
                    meter.id = meter_id,
                    purchase,
                    latency_ms = now - paid,
                    "purchase delivered"
                );
            }
            Recorded::Flagged(kind, detail) => {
                self.metrics
                    .deliveries_flagged
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(order.id = order_id, meter.id = meter_id, kind, detail = %detail, "delivery needs staff");
            }
            Recorded::Refused { seq, count } => {
                self.metrics
                    .deliveries_flagged
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    order.id = order_id,
                    meter.id = meter_id,
                    seq,
                    count,
                    "the meter refused the purchase; number given back, order flagged for staff"
                );
            }
            Recorded::Retry(why) => {
                self.metrics
                    .delivery_attempts_failed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(order.id = order_id, meter.id = meter_id, reason = %why, "delivery attempt failed; will retry");
            }
            Recorded::Waiting(why) => {
                tracing::debug!(order.id = order_id, meter.id = meter_id, reason = %why, "delivery waits for another purchase of its meter");
            }
            Recorded::AlreadyDone | Recorded::Done => {}
            Recorded::NotRecorded(e) => {
                // The lease runs out (or was lost) and the job is retried:
                // the read-back makes that safe even when the meter already
                // has the purchase.
                tracing::error!(order.id = order_id, error = %e, "could not record the delivery outcome");
            }
        }
        settled
    }
}

/// What a delivery attempt needs besides the meter's bus.
pub struct Ctx<'a> {
    /// The store.
    pub db: &'a store::Db,
    /// Head-end settings (lease, resends, backoff, operator code).
    pub cfg: &'a Config,
    /// Time.
    pub clock: &'a dyn crate::clock::Clock,
}

/// The meter's side of a delivery: one request and its reply (or error).
/// The head-end's [`BusHandle`] in production; the deterministic
/// simulation hands in its own.
pub trait MeterBus: Sync {
    /// Sends `frame` with up to `attempts` tries on timeout.
    fn request(
        &self,
        frame: dlt645::Frame,
        attempts: u32,
    ) -> impl std::future::Future<Output = Result<dlt645::Frame, Error>> + Send;
}

impl MeterBus for BusHandle {
    fn request(
        &self,
        frame: dlt645::Frame,
        attempts: u32,
    ) -> impl std::future::Future<Output = Result<dlt645::Frame, Error>> + Send {
        BusHandle::request(self, frame, attempts)
    }
}

/// How one delivery attempt was recorded in the store.
#[derive(Debug)]
pub enum Recorded {
    /// Completed now.
    Delivered {
        /// When the order was paid.
        paid_at_ms: Option<i64>,
        /// Its purchase number.
        purchase: i64,
    },
    /// The meter's evidence arrived but the order was already completed.
    AlreadyDone,
    /// Flagged for staff: (event kind, detail).
    Flagged(&'static str, String),
    /// The meter refused purchase `seq` (count `count`): number given back.
    Refused {
        /// The number given back.
        seq: i64,
        /// The meter's count.
        count: i64,
    },
    /// Waits behind another purchase of its meter.
    Waiting(String),
    /// Failed; retried after a backoff.
    Retry(String),
    /// Nothing to do (refunded, completed…): the job is closed.
    Done,
    /// The outcome could not be written (lease lost, database error).
    NotRecorded(store::Error),
}

/// Runs one delivery attempt of `job` (order `order_id` for `meter_id`,
/// reached at `address` over `bus`) and records its outcome, fenced by the
/// job's lease.
pub async fn deliver_once<B: MeterBus>(
    ctx: &Ctx<'_>,
    job: &Job,
    order_id: i64,
    meter_id: i64,
    bus: &B,
    address: Address,
) -> Recorded {
    let outcome = match attempt(ctx, job, order_id, meter_id, bus, address).await {
        Ok(o) => o,
        Err(Error::Store(e @ store::Error::LeaseLost(_))) => return Recorded::NotRecorded(e),
        Err(e) => Outcome::Retry(e.to_string()),
    };
    let now = ctx.clock.now_ms();
    let db = ctx.db;
    let ids = (OrderId::new(order_id), MeterId::new(meter_id));
    let r = match outcome {
        Outcome::Delivered(ev, paid_at) => {
            store::meters::complete_delivery(db, ids.0, job, ids.1, ev, now)
                .await
                .map(|changed| {
                    if changed {
                        Recorded::Delivered {
                            paid_at_ms: paid_at,
                            purchase: ev.purchase_count,
                        }
                    } else {
                        Recorded::AlreadyDone
                    }
                })
        }
        Outcome::Alarm(kind, detail) => {
            store::meters::flag_delivery(db, ids.0, job, ids.1, kind, &detail, now)
                .await
                .map(|()| Recorded::Flagged(kind, detail))
        }
        Outcome::Refused { seq, count, detail } => {
            store::meters::refuse_delivery(db, ids.0, job, ids.1, seq, count, &detail, now)
                .await
                .map(|()| Recorded::Refused { seq, count })
        }
        Outcome::Wait(why) => {
            // Woken when the purchase ahead settles; the fallback only
            // covers a wake that was lost.
            store::jobs::wait(db, job, &why, now + ctx.cfg.deliver_backoff_cap_ms, now)
                .await
                .map(|()| Recorded::Waiting(why))
        }
        Outcome::Retry(why) => {
            store::jobs::fail(db, job, &why, now, ctx.cfg.deliver_backoff_cap_ms)
                .await
                .map(|_| Recorded::Retry(why))
        }
        Outcome::Done => {
            let r = async {
                let mut tx = db.begin().await?;
                store::jobs::complete(&mut tx, job, now).await?;
                tx.commit().await
            };
            r.await.map(|()| Recorded::Done)
        }
    };
    r.unwrap_or_else(Recorded::NotRecorded)
}

async fn attempt<B: MeterBus>(
    ctx: &Ctx<'_>,
    job: &Job,
    order_id: i64,
    meter_id: i64,
    bus: &B,
    address: Address,
) -> Result<Outcome, Error> {
    let route = Link { bus, address };
    let (order_id, meter_id) = (OrderId::new(order_id), MeterId::new(meter_id));
    let Some(t) = store::meters::delivery_target(ctx.db, order_id).await? else {
        return Ok(Outcome::Alarm("seq_gap", "order vanished".to_owned()));
    };
    if !matches!(t.state, OrderState::Charging | OrderState::Delayed) {
        return Ok(Outcome::Done);
    }
    if t.meter_id != meter_id {
        return Ok(Outcome::Alarm(
            "seq_gap",
            "job and order disagree on the meter".to_owned(),
        ));
    }
    let count = read_count(&route).await?;
    let seq = match t.purchase_seq {
        Some(s) => s,
        None => {
            // Assign from a fresh count, then persist before any frame.
            store::meters::set_purchase_count(ctx.db, meter_id, count, ctx.clock.now_ms()).await?;
            match store::orders::assign_purchase_seq(ctx.db, order_id, ctx.clock.now_ms()).await? {
                Assignment::Assigned(s) => s,
                Assignment::Wait(why) => return Ok(Outcome::Wait(why)),
                Assignment::NotDeliverable(_) => return Ok(Outcome::Done),
            }
        }
    };
    send_until_settled(
        ctx,
        job,
        &route,
        seq,
        count,
        t.centikwh.get(),
        t.room_id.get(),
        t.paid_at_ms,
    )
    .await
}

/// Sends purchase `seq` of `centikwh` (the meter's count read as `count`)
/// until the meter's evidence settles it: the read-back loop of a purchase,
/// shared by orders and a replacement's carried energy.
#[expect(
    clippy::too_many_arguments,
    reason = "one purchase's fields, shared by orders and carried energy"
)]
async fn send_until_settled<B: MeterBus>(
    ctx: &Ctx<'_>,
    job: &Job,
    route: &Link<'_, B>,
    seq: i64,
    mut count: i64,
    centikwh: i64,
    room_id: i64,
    paid_at_ms: Option<i64>,
) -> Result<Outcome, Error> {
    let energy = u32::try_from(centikwh).map_err(|_| Error::BadReply("energy too large".into()))?;
    let recharge = Recharge {
        operator: OperatorCode(ctx.cfg.operator_code),
        energy_centikwh: energy,
        purchase_count: u32::try_from(seq).map_err(|_| Error::BadReply("seq too large".into()))?,
        mac1: [0; 4],
        customer: u64::try_from(room_id).unwrap_or(0) % (Recharge::CUSTOMER_MAX + 1),
        mac2: [0; 4],
    };
    // Built once: every (re)send is this identical frame.
    let frame = request::recharge_request(route.address, &recharge)
        .map_err(|e| Error::BadReply(e.to_string()))?;
    let mut sends = 0;
    loop {
        match plan::decide(seq, count) {
            Step::Delivered => {
                return verify(route, seq, centikwh, paid_at_ms).await;
            }
            Step::Gap => {
                return Ok(Outcome::Alarm(
                    "seq_gap",
                    format!("meter purchase count {count}, order sequence {seq}"),
                ));
            }
            Step::Send if sends >= ctx.cfg.deliver_resends_max => {
                return Ok(Outcome::Retry(format!(
                    "{sends} sends without confirmation"
                )));
            }
            Step::Send => {}
        }
        sends += 1;
        // Fencing: never send unless this worker still holds the job
        // (renewed now, so the lease outlasts the bus round trip).
        store::jobs::heartbeat(ctx.db, job, ctx.clock.now_ms(), ctx.cfg.deliver_lease_ms).await?;
        match route.bus.request(frame.clone(), 1).await {
            Ok(reply)
                if reply.function() == Some(Function::Security)
                    && !reply.control().is_abnormal() =>
            {
                match RechargeReply::from_wire(reply.data()) {
                    Ok(r) if i64::from(r.purchase_count) == seq => {
                        return Ok(Outcome::Delivered(
                            DeliveryEvidence {
                                purchase_count: seq,
                                remaining_centikwh: Some(r.remaining_centikwh),
                            },
                            paid_at_ms,
                        ));
                    }
                    Ok(r) => count = i64::from(r.purchase_count),
                    Err(_) => count = read_count(route).await?,
                }
            }
            Ok(reply) => {
                let serr = reply.security_error().unwrap_or(SecurityErrorFlags::OTHER);
                if serr.contains(SecurityErrorFlags::HOARDING_LIMIT) {
                    // Refused: read back to know whether it applied.
                    count = read_count(route).await?;
                    if count == seq - 1 {
                        return Ok(Outcome::Refused {
                            seq,
                            count,
                            detail: "the meter would exceed its hoarding limit".to_owned(),
                        });
                    }
                    continue;
                }
                if serr.contains(SecurityErrorFlags::COUNT_ERROR) {
                    tracing::warn!(job.id = job.id.get(), seq, "meter answered count error");
                }
                // Repeat, count error or anything else: an error reply
                // may still have been applied (protocol-notes §2.6), so
                // the read-back decides.
                count = read_count(route).await?;
            }
            Err(Error::Timeout | Error::BadReply(_)) => {
                count = read_count(route).await?;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn read_count<B: MeterBus>(route: &Link<'_, B>) -> Result<i64, Error> {
    let f = route
        .bus
        .request(
            request::read_request(route.address, Di::PURCHASE_COUNT),
            READ_BACK_ATTEMPTS,
        )
        .await?;
    if f.control().is_abnormal() {
        return Err(Error::Refused("purchase count not readable".into()));
    }
    plan::number(&f).ok_or_else(|| Error::BadReply("purchase count".into()))
}

/// count == seq: the last purchase on the meter must be this order's
/// energy, else someone else's purchase holds our number.
async fn verify<B: MeterBus>(
    route: &Link<'_, B>,
    seq: i64,
    centikwh: i64,
    paid_at_ms: Option<i64>,
) -> Result<Outcome, Error> {
    let f = route
        .bus
        .request(
            request::read_request(route.address, Di::LAST_PURCHASE_ENERGY),
            READ_BACK_ATTEMPTS,
        )
        .await?;
    let last = plan::number(&f).ok_or_else(|| Error::BadReply("last purchase energy".into()))?;
    if last != centikwh {
        return Ok(Outcome::Alarm(
            "seq_gap",
            format!("purchase {seq} on the meter is {last} centikWh, the order is {centikwh}"),
        ));
    }
    let remaining = route
        .bus
        .request(
            request::read_request(route.address, Di::REMAINING_ENERGY),
            1,
        )
        .await
        .ok()
        .and_then(|f| plan::number(&f));
    Ok(Outcome::Delivered(
        DeliveryEvidence {
            purchase_count: seq,
            remaining_centikwh: remaining,
        },
        paid_at_ms,
    ))
}

/// A meter as the attempt reaches it.
struct Link<'a, B> {
    bus: &'a B,
    address: Address,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a delivery job delivers.
#[derive(Debug, Clone, Copy)]
enum Subject {
    /// An order's energy.
    Order(i64),
    /// The energy a meter replacement carried to the new meter.
    Carry(i64),
    /// A room's free monthly allowance (store::subsidy).
    Subsidy(i64),
}

/// Energy delivered to a meter without an order: a replacement's carried
/// energy (store::replace) or a room's free monthly allowance
/// (store::subsidy). Both are delivered exactly like a purchase — the
/// read-back decides, every write is fenced by the lease — and differ only
/// in the store functions that hold their state.
#[derive(Debug, Clone, Copy)]
enum Credit {
    /// Replacement id.
    Carry(i64),
    /// Subsidy id.
    Subsidy(i64),
}

/// What [`attempt_credit`] needs of a credit's row.
struct CreditTarget {
    meter_id: MeterId,
    room_id: i64,
    centikwh: i64,
    purchase_seq: Option<i64>,
    delivered: bool,
    at_ms: i64,
}

impl Credit {
    /// What the alarms call it.
    fn noun(self) -> &'static str {
        match self {
            Credit::Carry(_) => "replacement",
            Credit::Subsidy(_) => "free allowance",
        }
    }

    async fn target(self, db: &store::Db) -> Result<Option<CreditTarget>, store::Error> {
        Ok(match self {
            Credit::Carry(id) => {
                store::replace::carry_target(db, id)
                    .await?
                    .map(|t| CreditTarget {
                        meter_id: t.meter_id,
                        room_id: t.room_id.get(),
                        centikwh: t.centikwh.get(),
                        purchase_seq: t.purchase_seq,
                        delivered: t.delivered,
                        at_ms: t.at_ms,
                    })
            }
            Credit::Subsidy(id) => store::subsidy::target(db, id).await?.map(|t| CreditTarget {
                meter_id: t.meter_id,
                room_id: t.room_id.get(),
                centikwh: t.centikwh.get(),
                purchase_seq: t.purchase_seq,
                delivered: t.delivered,
                at_ms: t.at_ms,
            }),
        })
    }

    async fn assign_seq(self, db: &store::Db) -> Result<Assignment, store::Error> {
        match self {
            Credit::Carry(id) => store::replace::assign_carry_seq(db, id).await,
            Credit::Subsidy(id) => store::subsidy::assign_seq(db, id).await,
        }
    }

    async fn complete(
        self,
        db: &store::Db,
        job: &Job,
        meter: MeterId,
        ev: DeliveryEvidence,
        now: i64,
    ) -> Result<bool, store::Error> {
        match self {
            Credit::Carry(id) => store::replace::complete_carry(db, id, job, meter, ev, now).await,
            Credit::Subsidy(id) => store::subsidy::complete(db, id, job, meter, ev, now).await,
        }
    }

    #[expect(clippy::too_many_arguments, reason = "the store functions' arguments")]
    async fn flag(
        self,
        db: &store::Db,
        job: &Job,
        meter: MeterId,
        kind: &str,
        detail: &str,
        unapplied_seq: Option<i64>,
        now: i64,
    ) -> Result<(), store::Error> {
        match self {
            Credit::Carry(id) => {
                store::replace::flag_carry(db, id, job, meter, kind, detail, unapplied_seq, now)
                    .await
            }
            Credit::Subsidy(id) => {
                store::subsidy::flag(db, id, job, meter, kind, detail, unapplied_seq, now).await
            }
        }
    }
}

/// Runs one delivery attempt of `credit` to its meter `meter_id`.
async fn deliver_credit_once<B: MeterBus>(
    ctx: &Ctx<'_>,
    job: &Job,
    credit: Credit,
    meter_id: i64,
    bus: &B,
    address: Address,
) -> Recorded {
    let outcome = match attempt_credit(ctx, job, credit, meter_id, bus, address).await {
        Ok(o) => o,
        Err(Error::Store(e @ store::Error::LeaseLost(_))) => return Recorded::NotRecorded(e),
        Err(e) => Outcome::Retry(e.to_string()),
    };
    let now = ctx.clock.now_ms();
    let db = ctx.db;
    let meter = MeterId::new(meter_id);
    let r = match outcome {
        Outcome::Delivered(ev, at) => {
            credit
                .complete(db, job, meter, ev, now)
                .await
                .map(|changed| {
                    if changed {
                        Recorded::Delivered {
                            paid_at_ms: at,
                            purchase: ev.purchase_count,
                        }
                    } else {
                        Recorded::AlreadyDone
                    }
                })
        }
        Outcome::Alarm(kind, detail) => credit
            .flag(db, job, meter, kind, &detail, None, now)
            .await
            .map(|()| Recorded::Flagged(kind, detail)),
        Outcome::Refused { seq, count, detail } => credit
            .flag(db, job, meter, "recharge_refused", &detail, Some(seq), now)
            .await
            .map(|()| Recorded::Refused { seq, count }),
        Outcome::Wait(why) => {
            store::jobs::wait(db, job, &why, now + ctx.cfg.deliver_backoff_cap_ms, now)
                .await
                .map(|()| Recorded::Waiting(why))
        }
        Outcome::Retry(why) => {
            store::jobs::fail(db, job, &why, now, ctx.cfg.deliver_backoff_cap_ms)
                .await
                .map(|_| Recorded::Retry(why))
        }
        Outcome::Done => {
            let r = async {
                let mut tx = db.begin().await?;
                store::jobs::complete(&mut tx, job, now).await?;
                tx.commit().await
            };
            r.await.map(|()| Recorded::Done)
        }
    };
    r.unwrap_or_else(Recorded::NotRecorded)
}

async fn attempt_credit<B: MeterBus>(
    ctx: &Ctx<'_>,
    job: &Job,
    credit: Credit,
    meter_id: i64,
    bus: &B,
    address: Address,
) -> Result<Outcome, Error> {
    let route = Link { bus, address };
    let Some(t) = credit.target(ctx.db).await? else {
        return Ok(Outcome::Alarm(
            "seq_gap",
            format!("{} vanished", credit.noun()),
        ));
    };
    if t.delivered {
        return Ok(Outcome::Done);
    }
    if t.meter_id.get() != meter_id {
        return Ok(Outcome::Alarm(
            "seq_gap",
            format!("job and {} disagree on the meter", credit.noun()),
        ));
    }
    let count = read_count(&route).await?;
    let seq = match t.purchase_seq {
        Some(s) => s,
        None => {
            store::meters::set_purchase_count(ctx.db, t.meter_id, count, ctx.clock.now_ms())
                .await?;
            match credit.assign_seq(ctx.db).await? {
                Assignment::Assigned(s) => s,
                Assignment::Wait(why) => return Ok(Outcome::Wait(why)),
                Assignment::NotDeliverable(_) => return Ok(Outcome::Done),
            }
        }
    };
    send_until_settled(
        ctx,
        job,
        &route,
        seq,
        count,
        t.centikwh,
        t.room_id,
        Some(t.at_ms),
    )
    .await
}

/// `{"replacement_id":…,"meter_id":…}` (store::replace::carry_key jobs).
pub(crate) fn parse_carry_payload(payload: &str) -> Option<(i64, i64)> {
    let v: serde_json::Value = serde_json::from_str(payload).ok()?;
    Some((
        v.get("replacement_id")?.as_i64()?,
        v.get("meter_id")?.as_i64()?,
    ))
}

/// `{"subsidy_id":…,"meter_id":…}` (store::subsidy::job_key jobs).
pub(crate) fn parse_subsidy_payload(payload: &str) -> Option<(i64, i64)> {
    let v: serde_json::Value = serde_json::from_str(payload).ok()?;
    Some((v.get("subsidy_id")?.as_i64()?, v.get("meter_id")?.as_i64()?))
}

/// `{"order_id":…,"meter_id":…}`.
pub(crate) fn parse_payload(payload: &str) -> Option<(i64, i64)> {
    let v: serde_json::Value = serde_json::from_str(payload).ok()?;
    Some((v.get("order_id")?.as_i64()?, v.get("meter_id")?.as_i64()?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn payload() {
        assert_eq!(
            super::parse_payload(r#"{"order_id":3,"meter_id":9}"#),
            Some((3, 9))
        );
        assert_eq!(super::parse_payload("{}"), None);
        assert_eq!(
            super::parse_carry_payload(r#"{"replacement_id":4,"meter_id":9}"#),
            Some((4, 9))
        );
        assert_eq!(
            super::parse_payload(r#"{"replacement_id":4,"meter_id":9}"#),
            None
        );
        assert_eq!(
            super::parse_subsidy_payload(r#"{"subsidy_id":5,"meter_id":9}"#),
            Some((5, 9))
        );
        assert_eq!(
            super::parse_carry_payload(r#"{"subsidy_id":5,"meter_id":9}"#),
            None
        );
    }
}
