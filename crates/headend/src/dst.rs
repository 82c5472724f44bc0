//! Deterministic simulation of the money core (TigerBeetle's VOPR
//! discipline), run by `dormwatt dst`.
//!
//! One seed is one world: a small campus in a fresh database (SQLite in
//! memory, or a new PostgreSQL database), simulated meters (the simulator's
//! own [`sim::meter::Meter`], speaking DL/T 645 frames), a simulated clock
//! and two head-end workers. A seeded random number generator picks every
//! step: orders created; payment notifications — duplicated, late (after
//! expiry), forged with a wrong amount, reordered; workers claiming jobs
//! and running the *real* delivery code ([`crate::deliver::deliver_once`])
//! against the *real* store; every meter request delivered, lost on the way
//! there, answered with its reply lost, garbled, or sent to a meter that is
//! offline for hours or days; meters that refuse (hoarding limit); workers
//! crashing at any await point of an attempt and restarting as the same
//! node or another; leases running out while a stale worker still holds an
//! attempt; refunds that succeed, fail or are answered twice; expiry;
//! staff "deliver again". Only one task runs at a time: an attempt runs
//! until it waits for the meter, then the scheduler decides, so a seed
//! replays exactly.
//!
//! After every step the ledger invariants (`store::ledger::check`) must
//! hold. At the end the faults stop (liveness phase), workers drain the
//! queue, staff refund what the meters refused, and then every paid order
//! must be completed or refunded exactly once, and each meter's purchase
//! count and purchased energy must have risen by exactly what the ledger
//! says was delivered.

use crate::clock::{Clock, Sleep};
use crate::deliver::{self, Ctx, MeterBus, Recorded};
use crate::{Config, Error};
use dlt645::{Address, Frame};
use domain::campus::{AreaPlan, BuildingPlan, BusPlan, CampusPlan, GatewayPlan, MeterPlan};
use domain::{Fen, MeterId};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use tokio::sync::{mpsc, oneshot};

/// What to run.
#[derive(Debug, Clone)]
pub struct DstOptions {
    /// First seed.
    pub first_seed: u64,
    /// Number of seeds.
    pub seeds: u64,
    /// Random steps per seed before the liveness phase.
    pub steps: usize,
    /// `None`: SQLite in memory; else a PostgreSQL server URL on which a
    /// database per seed is created (and dropped).
    pub postgres_url: Option<String>,
    /// Print every step of every seed to stderr.
    pub trace: bool,
}

/// The result of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DstSummary {
    /// Seeds run.
    pub seeds: u64,
    /// Steps taken in all.
    pub steps: u64,
    /// Invariant violations seen (after any step, or at the end).
    pub violations: u64,
    /// Paid orders neither completed nor refunded at the end, plus
    /// purchases on a meter the ledger does not record.
    pub lost: u64,
    /// Purchases recorded twice, or recorded without reaching the meter.
    pub doubled: u64,
    /// Seeds with any violation, lost or doubled (replay with `--seed`).
    pub failing_seeds: Vec<u64>,
    /// Paid orders in all seeds.
    pub orders_paid: u64,
    /// Orders completed in all seeds.
    pub orders_completed: u64,
    /// Orders refunded in all seeds.
    pub orders_refunded: u64,
    /// Worker crashes simulated.
    pub crashes: u64,
    /// The first violation found, for the report.
    pub first_violation: Option<String>,
}

/// SplitMix64: small, seedable, the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The simulated clock (ms); sleeps never finish (attempts do not sleep).
#[derive(Debug, Default)]
struct SimTime(AtomicI64);

impl Clock for SimTime {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
    fn sleep_ms(&self, _ms: i64) -> Sleep<'_> {
        Box::pin(std::future::pending())
    }
}

type Pending = (Frame, oneshot::Sender<Result<Frame, Error>>);

/// The bus of one attempt: every request goes to the scheduler.
struct SimBus(mpsc::UnboundedSender<Pending>);

impl MeterBus for SimBus {
    fn request(
        &self,
        frame: Frame,
        _attempts: u32,
    ) -> impl std::future::Future<Output = Result<Frame, Error>> + Send {
        let (tx, rx) = oneshot::channel();
        let sent = self.0.send((frame, tx));
        async move {
            sent.map_err(|_| Error::Stopped)?;
            rx.await.map_err(|_| Error::Stopped)?
        }
    }
}

struct Attempt {
    worker: usize,
    order_id: i64,
    handle: tokio::task::JoinHandle<Recorded>,
    rx: mpsc::UnboundedReceiver<Pending>,
    pending: Option<Pending>,
}

struct SimMeter {
    id: i64,
    address: Address,
    meter: sim::meter::Meter,
    count0: u32,
    purchased0: u32,
    offline_until_ms: i64,
}

struct WorkerState {
    node: String,
    incarnation: u32,
}

impl WorkerState {
    fn name(&self) -> String {
        format!("{}#{}", self.node, self.incarnation)
    }
}

const START_MS: i64 = 1_795_622_400_000;
const METERS: usize = 3;
const ORDERS_MAX: usize = 14;

fn plan() -> CampusPlan {
    let meters = (1..=METERS)
        .map(|i| MeterPlan {
            address: domain::MeterAddress::parse(&format!("2017980100{i:02}"))
                .unwrap_or_else(|_| unreachable!("a valid address")),
            room: format!("{}", 100 + i),
            floor: 1,
        })
        .collect();
    CampusPlan {
        areas: vec![AreaPlan {
            code: "dst".into(),
            name_zh: "模拟".into(),
            name_en: "Simulation".into(),
            unit_price: domain::UnitPrice::from_centifen_per_kwh(5300)
                .unwrap_or_else(|| unreachable!("a valid price")),
            buildings: vec![BuildingPlan {
                name_zh: "1号楼".into(),
                name_en: "Building 1".into(),
                gateways: vec![GatewayPlan {
                    name: "dst-gw1".into(),
                    index: 0,
                    buses: vec![BusPlan {
                        port: 1,
                        baud: 2400,
                        meters,
                    }],
                }],
            }],
        }],
    }
}

/// Runs the seeds and sums up.
pub async fn run(opts: &DstOptions) -> Result<DstSummary, store::Error> {
    let mut sum = DstSummary::default();
    for seed in opts.first_seed..opts.first_seed + opts.seeds {
        let r = run_seed(seed, opts).await?;
        sum.seeds += 1;
        sum.steps += r.steps;
        sum.violations += r.violations.len() as u64;
        sum.lost += r.lost;
        sum.doubled += r.doubled;
        sum.orders_paid += r.paid;
        sum.orders_completed += r.completed;
        sum.orders_refunded += r.refunded;
        sum.crashes += r.crashes;
        if !r.violations.is_empty() || r.lost > 0 || r.doubled > 0 {
            sum.failing_seeds.push(seed);
            if sum.first_violation.is_none() {
                sum.first_violation = Some(format!(
                    "seed {seed}: {}",
                    r.violations
                        .first()
                        .cloned()
                        .unwrap_or_else(|| format!("lost {} doubled {}", r.lost, r.doubled))
                ));
            }
            eprintln!(
                "dst: seed {seed} FAILED (replay: dormwatt dst --seed {seed} --trace): {:?} lost {} doubled {}",
                r.violations.first(),
                r.lost,
                r.doubled
            );
        }
    }
    Ok(sum)
}

#[derive(Default)]
struct SeedResult {
    steps: u64,
    violations: Vec<String>,
    lost: u64,
    doubled: u64,
    paid: u64,
    completed: u64,
    refunded: u64,
    crashes: u64,
}

async fn open_db(
    seed: u64,
    opts: &DstOptions,
) -> Result<(store::Db, Option<String>), store::Error> {
    let small = store::DbOptions {
        connections_max: 4,
        ..store::DbOptions::default()
    };
    let (url, name) = match &opts.postgres_url {
        None => ("sqlite::memory:".to_owned(), None),
        Some(admin) => {
            let name = format!("dw_dst_{}_{seed}", std::process::id());
            (
                store::scratch::create_postgres(admin, &name).await?,
                Some(name),
            )
        }
    };
    let db = store::Db::connect(&url, &small).await?;
    db.migrate().await?;
    Ok((db, name))
}

#[allow(clippy::too_many_lines)]
async fn run_seed(seed: u64, opts: &DstOptions) -> Result<SeedResult, store::Error> {
    let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xD5);
    let trace = |s: &str| {
        if opts.trace {
            eprintln!("[seed {seed}] {s}");
        }
    };
    let (db, pg_name) = open_db(seed, opts).await?;
    let time = Arc::new(SimTime(AtomicI64::new(START_MS)));
    store::campus::seed(
        &db,
        &plan(),
        &store::campus::GatewayAddressing::default(),
        START_MS,
    )
    .await?;
    let env = sim::MeterEnv::default();
    let registry = store::meters::registry(&db).await?;
    let mut meters: BTreeMap<i64, SimMeter> = BTreeMap::new();
    for (i, m) in registry
        .iter()
        .flat_map(|g| g.buses.iter())
        .flat_map(|b| b.meters.iter())
        .enumerate()
    {
        let address =
            Address::parse(&m.address).map_err(|e| store::Error::Corrupt(e.to_string()))?;
        let mut params = sim::MeterParams::default();
        // Some meters hold less than the platform believes: they refuse.
        if rng.chance(30) {
            params.hoarding_centikwh = 3_000 + (rng.below(40) as u32) * 100;
        }
        let meter =
            sim::meter::Meter::new(address, seed ^ (i as u64 + 1), START_MS, params, 0, &env);
        let v = meter.view(START_MS, &env);
        meters.insert(
            m.id,
            SimMeter {
                id: m.id,
                address,
                meter,
                count0: v.purchase_count,
                purchased0: v.purchased_total_centikwh,
                offline_until_ms: 0,
            },
        );
    }
    // What the head-end knew of the meters before (their counts, as a
    // first poll would have stored them).
    for m in meters.values() {
        store::meters::set_purchase_count(&db, MeterId::new(m.id), i64::from(m.count0), START_MS)
            .await?;
    }
    let cfg = Config {
        deliver_lease_ms: 15_000,
        deliver_backoff_cap_ms: 60_000,
        deliver_resends_max: 2,
        ..Config::default()
    };
    let mut workers = [
        WorkerState {
            node: "dst-a".into(),
            incarnation: 1,
        },
        WorkerState {
            node: "dst-b".into(),
            incarnation: 1,
        },
    ];
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut orders: Vec<store::orders::Order> = Vec::new();
    let mut res = SeedResult::default();
    let meter_ids: Vec<i64> = meters.keys().copied().collect();

    let total = opts.steps;
    let mut step = 0usize;
    let mut healing = false;
    let mut quiet_rounds = 0;
    loop {
        step += 1;
        res.steps += 1;
        let now = time.now_ms();
        if !healing && step > total {
            healing = true;
            trace("liveness phase: faults stop");
        }
        if healing {
            // Drain: run every attempt to the end, claim what is due, move
            // time on; staff refund what the meters refused.
            if let Some(a) = attempts.pop() {
                let a = finish_attempt(a, &mut meters, &time, &env, &mut rng, &trace).await;
                if let Some(a) = a {
                    attempts.push(a);
                }
            } else {
                let w = step % 2;
                let started =
                    claim_and_start(&db, &cfg, &time, &workers[w], w, &mut attempts).await?;
                if started == 0 {
                    let due = store::jobs::depths(&db).await?;
                    let queued: i64 = due
                        .iter()
                        .filter(|(_, s, _)| *s == store::jobs::JobState::Queued)
                        .map(|(_, _, n)| n)
                        .sum();
                    trace(&format!("drain: depths {due:?}"));
                    staff_settle(&db, &time, &mut res, &trace).await?;
                    if queued == 0 {
                        quiet_rounds += 1;
                        if quiet_rounds > 3 {
                            break;
                        }
                    }
                    time.0.fetch_add(61_000, Ordering::SeqCst);
                }
            }
            if step > total + 4_000 {
                res.violations
                    .push("liveness: the queue did not drain".into());
                break;
            }
        } else {
            match rng.below(100) {
                // A student creates an order.
                0..=11 if orders.len() < ORDERS_MAX => {
                    let mid = meter_ids[rng.below(meter_ids.len() as u64) as usize];
                    let address = meters[&mid].address.to_string();
                    let kwh = 1 + rng.below(30);
                    let req = store::orders::NewOrder {
                        area_id: 1,
                        meter_address: &address,
                        student_id: None,
                        kwh: domain::WholeKwh::new(kwh, 500)
                            .unwrap_or_else(|_| unreachable!("in range")),
                        channel: domain::order::Channel::Wechat,
                        operator: None,
                    };
                    match store::orders::create(&db, &req, now).await {
                        Ok(o) => {
                            trace(&format!("order {} for meter {mid}: {kwh} kWh", o.id));
                            orders.push(o);
                        }
                        Err(e) => trace(&format!("order refused: {e}")),
                    }
                }
                // A payment notification (maybe a duplicate, maybe late).
                0..=29 if !orders.is_empty() => {
                    let o = &orders[rng.below(orders.len() as u64) as usize];
                    let tx = format!("4200{:024}", o.id);
                    let forged = rng.chance(10);
                    let conf = store::orders::PaymentConfirmation {
                        out_trade_no: &o.out_trade_no,
                        transaction_id: &tx,
                        amount_fen: if forged {
                            Fen::new(o.amount_fen.get() + 1)
                        } else {
                            o.amount_fen
                        },
                    };
                    let r = store::orders::record_payment(&db, &conf, now).await;
                    trace(
                        &format!("payment for order {} (forged {forged}): {r:?}", o.id)
                            .chars()
                            .take(160)
                            .collect::<String>(),
                    );
                    if forged && r.is_ok() {
                        res.violations
                            .push(format!("a forged amount was credited for order {}", o.id));
                    }
                }
                // A worker claims a job and runs it to its first meter request.
                0..=49 => {
                    let w = rng.below(2) as usize;
                    claim_and_start(&db, &cfg, &time, &workers[w], w, &mut attempts).await?;
                }
                // The meter side of a waiting request: answered, lost, garbled…
                0..=74 if !attempts.is_empty() => {
                    let i = rng.below(attempts.len() as u64) as usize;
                    let a = attempts.swap_remove(i);
                    if let Some(a) =
                        step_attempt(a, &mut meters, &time, &env, &mut rng, false, &trace).await
                    {
                        attempts.push(a);
                    }
                }
                // A worker process dies at whatever await point it is at.
                75..=78 => {
                    let w = rng.below(2) as usize;
                    let before = attempts.len();
                    attempts.retain(|a| {
                        if a.worker == w {
                            a.handle.abort();
                            false
                        } else {
                            true
                        }
                    });
                    res.crashes += 1;
                    workers[w].incarnation += 1;
                    // Restarted as the same node, it takes back its dead
                    // incarnation's leases; sometimes it comes back on
                    // another host and waits for them to run out.
                    if rng.chance(70) {
                        let n = store::jobs::release_incarnations(
                            &db,
                            &workers[w].node,
                            &workers[w].name(),
                            now,
                        )
                        .await?;
                        trace(&format!(
                            "worker {w} crashed ({} attempts), restarted; took back {n} leases",
                            before - attempts.len()
                        ));
                    } else {
                        workers[w].node = format!("dst-{w}-{step}");
                        trace(&format!(
                            "worker {w} crashed, restarted elsewhere as {}",
                            workers[w].name()
                        ));
                    }
                }
                // Time passes (leases, backoffs, expiry, delivery window).
                79..=86 => {
                    let d = match rng.below(10) {
                        0 => 2 * 3_600_000,
                        1..=3 => 20_000 + rng.below(60_000) as i64,
                        _ => 500 + rng.below(5_000) as i64,
                    };
                    time.0.fetch_add(d, Ordering::SeqCst);
                    trace(&format!("time +{d} ms"));
                }
                // A meter goes offline for hours or days.
                87 => {
                    let mid = meter_ids[rng.below(meter_ids.len() as u64) as usize];
                    let until = now + 3_600_000 * (1 + rng.below(48) as i64);
                    if let Some(m) = meters.get_mut(&mid) {
                        m.offline_until_ms = until;
                    }
                    trace(&format!(
                        "meter {mid} offline until +{} h",
                        (until - now) / 3_600_000
                    ));
                }
                // Overdue orders are flagged; unpaid ones expire.
                88..=90 => {
                    store::orders::mark_overdue(
                        &db,
                        domain::order::DELIVERY_WINDOW_DEFAULT_MS,
                        now,
                    )
                    .await?;
                    for o in store::orders::expired_unpaid(&db, now, 50).await? {
                        let _ =
                            store::orders::close(&db, o.id, domain::order::OrderEvent::Expire, now)
                                .await;
                    }
                }
                // A refund of a delayed order, answered once, twice, or failed.
                91..=95 => {
                    let delayed =
                        store::orders::in_state(&db, domain::order::OrderState::Delayed, 50)
                            .await?;
                    if !delayed.is_empty() {
                        let o = &delayed[rng.below(delayed.len() as u64) as usize];
                        match store::orders::request_refund(&db, o.id, now).await {
                            Ok(r) => {
                                let no = r.refund_no.clone().unwrap_or_default();
                                let ok = rng.chance(75);
                                store::orders::finish_refund(&db, &no, ok, now + 1).await?;
                                if rng.chance(30) {
                                    let _ =
                                        store::orders::finish_refund(&db, &no, ok, now + 2).await;
                                }
                                trace(&format!("refund of order {} succeeded {ok}", o.id));
                            }
                            Err(e) => trace(&format!("refund of order {} refused: {e}", o.id)),
                        }
                    }
                }
                // Staff deliver a flagged order again.
                96..=97 => {
                    let delayed =
                        store::orders::in_state(&db, domain::order::OrderState::Delayed, 50)
                            .await?;
                    for o in delayed {
                        if store::orders::redeliver(&db, o.id, now).await? {
                            trace(&format!("staff: deliver order {} again", o.id));
                            break;
                        }
                    }
                }
                _ => {}
            }
        }
        for v in store::ledger::check(&db).await? {
            res.violations
                .push(format!("step {step}: {} {}", v.invariant, v.detail));
        }
        if !res.violations.is_empty() {
            break;
        }
    }
    for a in attempts {
        a.handle.abort();
    }
    // The end: every paid order completed or refunded, meters = ledger.
    if res.violations.is_empty() {
        final_check(&db, &meters, &time, &env, &mut res).await?;
    }
    db.close().await;
    if let (Some(url), Some(name)) = (&opts.postgres_url, pg_name) {
        store::scratch::drop_postgres(url, &name).await?;
    }
    Ok(res)
}

async fn claim_and_start(
    db: &store::Db,
    cfg: &Config,
    time: &Arc<SimTime>,
    w: &WorkerState,
    index: usize,
    attempts: &mut Vec<Attempt>,
) -> Result<usize, store::Error> {
    let now = time.now_ms();
    let jobs = store::jobs::claim(
        db,
        store::orders::DELIVER_QUEUE,
        &w.name(),
        now,
        cfg.deliver_lease_ms,
        1,
    )
    .await?;
    let n = jobs.len();
    for job in jobs {
        let Some((order_id, meter_id)) = deliver::parse_payload(&job.payload) else {
            continue;
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let db = db.clone();
        let cfg = cfg.clone();
        let clock = time.clone();
        let address = store::campus::meter_by_id(&db, domain::MeterId::new(meter_id))
            .await?
            .and_then(|m| Address::parse(m.address.as_str()).ok())
            .ok_or(store::Error::NotFound("meter"))?;
        let handle = tokio::spawn(async move {
            let bus = SimBus(tx);
            let ctx = Ctx {
                db: &db,
                cfg: &cfg,
                clock: clock.as_ref(),
            };
            deliver::deliver_once(&ctx, &job, order_id, meter_id, &bus, address).await
        });
        let a = Attempt {
            worker: index,
            order_id,
            handle,
            rx,
            pending: None,
        };
        if let Some(a) = run_to_block(a).await {
            attempts.push(a);
        }
    }
    Ok(n)
}

/// Lets the attempt run until it waits for the meter (kept) or ends (gone).
async fn run_to_block(mut a: Attempt) -> Option<Attempt> {
    tokio::select! {
        biased;
        req = a.rx.recv() => match req {
            Some(r) => {
                a.pending = Some(r);
                Some(a)
            }
            // The attempt dropped its bus: it is finishing.
            None => {
                let _ = (&mut a.handle).await;
                None
            }
        },
        _ = &mut a.handle => None,
    }
}

/// The meter's side of the attempt's waiting request, then run on.
async fn step_attempt(
    mut a: Attempt,
    meters: &mut BTreeMap<i64, SimMeter>,
    time: &Arc<SimTime>,
    env: &sim::MeterEnv,
    rng: &mut Rng,
    healed: bool,
    trace: &impl Fn(&str),
) -> Option<Attempt> {
    let Some((frame, reply)) = a.pending.take() else {
        return run_to_block(a).await;
    };
    let now = time.now_ms();
    let target = meters.values_mut().find(|m| m.address == frame.address());
    let answer = match target {
        None => Err(Error::Timeout),
        Some(m) => {
            let fate = if healed { 99 } else { rng.below(100) };
            // Offline, or the request lost on the bus.
            if (now < m.offline_until_ms && !healed) || fate < 8 {
                Err(Error::Timeout)
            } else {
                m.meter.advance(now, env);
                let r = m.meter.handle(&frame, now, env);
                if fate < 18 {
                    Err(Error::Timeout) // applied, reply lost
                } else if fate < 22 {
                    Err(Error::BadReply("garbled".into()))
                } else {
                    r.ok_or(Error::Timeout)
                }
            }
        }
    };
    trace(&format!(
        "order {}: {:?} → {}",
        a.order_id,
        frame.function(),
        if answer.is_ok() { "reply" } else { "no reply" }
    ));
    // A bus round trip takes time.
    time.0.fetch_add(200, Ordering::SeqCst);
    let _ = reply.send(answer);
    run_to_block(a).await
}

/// Liveness phase: answers the attempt's requests without faults until it
/// ends (or 64 requests).
async fn finish_attempt(
    mut a: Attempt,
    meters: &mut BTreeMap<i64, SimMeter>,
    time: &Arc<SimTime>,
    env: &sim::MeterEnv,
    rng: &mut Rng,
    trace: &impl Fn(&str),
) -> Option<Attempt> {
    for _ in 0..64 {
        match step_attempt(a, meters, time, env, rng, true, trace).await {
            Some(next) => a = next,
            None => return None,
        }
    }
    Some(a)
}

/// Liveness: staff refund what the meters refused (flagged, no number).
async fn staff_settle(
    db: &store::Db,
    time: &Arc<SimTime>,
    res: &mut SeedResult,
    trace: &impl Fn(&str),
) -> Result<(), store::Error> {
    let now = time.now_ms();
    store::orders::mark_overdue(db, domain::order::DELIVERY_WINDOW_DEFAULT_MS, now).await?;
    for o in store::orders::in_state(db, domain::order::OrderState::Delayed, 100).await? {
        if o.purchase_seq.is_some() {
            // Holding a number means the meter's count must settle it; with
            // the faults healed that happens without staff — unless it was
            // flagged, which (no outside purchases here) is a bug.
            let events = store::meters::events(db, o.meter_id.get(), 100).await?;
            if events
                .iter()
                .any(|e| e.kind == "seq_gap" && e.detail.starts_with(&format!("order {}:", o.id)))
            {
                res.violations
                    .push(format!("order {} raised a purchase-count gap", o.id));
            } else {
                let _ = store::orders::redeliver(db, o.id, now).await?;
            }
            continue;
        }
        match store::orders::request_refund(db, o.id, now).await {
            Ok(r) => {
                store::orders::finish_refund(
                    db,
                    r.refund_no.as_deref().unwrap_or_default(),
                    true,
                    now,
                )
                .await?;
                trace(&format!("staff refunded order {}", o.id));
            }
            Err(e) => trace(&format!("staff could not refund order {}: {e}", o.id)),
        }
    }
    // Late payments may still sit in refunding after a failed answer.
    Ok(())
}

async fn final_check(
    db: &store::Db,
    meters: &BTreeMap<i64, SimMeter>,
    time: &Arc<SimTime>,
    env: &sim::MeterEnv,
    res: &mut SeedResult,
) -> Result<(), store::Error> {
    let now = time.now_ms();
    for state in [
        domain::order::OrderState::Charging,
        domain::order::OrderState::Delayed,
        domain::order::OrderState::Refunding,
    ] {
        for o in store::orders::in_state(db, state, 1000).await? {
            res.lost += 1;
            res.violations.push(format!(
                "order {} paid but still {} at the end (seq {:?})",
                o.id, o.state, o.purchase_seq
            ));
        }
    }
    let completed = store::orders::in_state(db, domain::order::OrderState::Completed, 1000).await?;
    let refunded = store::orders::in_state(db, domain::order::OrderState::Refunded, 1000).await?;
    res.completed += completed.len() as u64;
    res.refunded += refunded.len() as u64;
    res.paid += (completed.len() + refunded.len()) as u64 + res.lost;
    for m in meters.values() {
        let v = m.meter.view(now, env);
        let count = i64::from(v.purchase_count) - i64::from(m.count0);
        let energy = i64::from(v.purchased_total_centikwh) - i64::from(m.purchased0);
        let mine: Vec<_> = completed
            .iter()
            .filter(|o| o.meter_id.get() == m.id)
            .collect();
        let n = mine.len() as i64;
        let e: i64 = mine.iter().map(|o| o.centikwh().get()).sum();
        if count > n {
            res.lost += (count - n) as u64;
        }
        if count < n {
            res.doubled += (n - count) as u64;
        }
        if count != n || energy != e {
            res.violations.push(format!(
                "meter {}: +{count} purchases / +{energy} centikWh on the meter, ledger {n} / {e}",
                m.id
            ));
        }
    }
    Ok(())
}
