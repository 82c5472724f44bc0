//! Test world: a small campus in the simulator (fast virtual clock, real
//! TCP on loopback, ephemeral ports), the same campus in a fresh database,
//! a fault-injecting proxy in front of the gateway, and the head-end.

use dlt645::{Frame, Function, StreamDecoder, encode};
use domain::campus::{AreaPlan, BuildingPlan, BusPlan, CampusPlan, GatewayPlan, MeterPlan};
use headend::{Clock, Headend, SharedClock};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// 2026-11-20 03:00 in Shanghai: campus day starts at 16:00 UTC.
pub const START_MS: i64 = 1_795_114_800_000;
/// One day, ms.
pub const DAY_MS: i64 = 86_400_000;
/// Virtual seconds per real second: fast, yet a 2400-bps transaction
/// (~230 ms virtual) still spans several real milliseconds.
pub const SPEED: f64 = 10.0;

/// The simulator's virtual clock as the head-end's clock.
#[derive(Debug, Clone)]
pub struct VirtualClock(pub sim::SimClock);

impl Clock for VirtualClock {
    fn now_ms(&self) -> i64 {
        self.0.now_ms()
    }

    fn sleep_ms(&self, ms: i64) -> headend::clock::Sleep<'_> {
        Box::pin(self.0.sleep_ms(ms))
    }
}

/// One gateway, two buses of six meters.
pub fn small_plan() -> CampusPlan {
    small_plan_at(2400)
}

/// [`small_plan`] with its buses at `baud`.
pub fn small_plan_at(baud: u32) -> CampusPlan {
    let meter = |i: usize| MeterPlan {
        address: domain::MeterAddress::parse(&format!("2017990100{i:02}")).unwrap(),
        room: format!("{}", 100 + i),
        floor: 1,
    };
    let bus = |port: u8, from: usize| BusPlan {
        port,
        baud,
        meters: (from..from + 6).map(meter).collect(),
    };
    CampusPlan {
        areas: vec![AreaPlan {
            code: "t".into(),
            name_zh: "测试".into(),
            name_en: "Test".into(),
            unit_price: domain::UnitPrice::from_centifen_per_kwh(5300).unwrap(),
            buildings: vec![BuildingPlan {
                name_zh: "1号楼".into(),
                name_en: "Building 1".into(),
                gateways: vec![GatewayPlan {
                    name: "t-b01-gw1".into(),
                    index: 0,
                    buses: vec![bus(1, 1), bus(2, 7)],
                }],
            }],
        }],
    }
}

/// What the proxy does to frames coming back from the gateway.
#[derive(Debug, Default)]
pub struct ProxyRules {
    /// Recharge replies (83H/C3H) still to drop.
    pub drop_recharge_replies: AtomicU32,
    /// After dropping a recharge reply, drop every reply until cleared.
    pub blackout_after_drop: AtomicBool,
    /// Dropping everything now.
    pub blackout: AtomicBool,
    /// Recharge replies dropped so far.
    pub dropped: AtomicU32,
    /// Recharge requests forwarded to the gateway so far.
    pub recharges_sent: AtomicU32,
    /// Broadcast frames (time sync) forwarded to the gateway so far.
    pub broadcasts_sent: AtomicU32,
}

/// A TCP proxy in front of the gateway at `upstream`; returns its port.
pub async fn proxy(upstream: std::net::SocketAddr, rules: Arc<ProxyRules>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let Ok(server) = TcpStream::connect(upstream).await else {
                continue;
            };
            let rules = rules.clone();
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let r2 = rules.clone();
                let up = tokio::spawn(async move {
                    let mut dec = StreamDecoder::new();
                    let mut buf = [0u8; 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        dec.push(&buf[..n]);
                        while let Some(f) = dec.next_frame() {
                            if let Ok(f) = f {
                                if f.function() == Some(Function::Security) {
                                    r2.recharges_sent.fetch_add(1, Ordering::SeqCst);
                                }
                                if f.address().is_broadcast() {
                                    r2.broadcasts_sent.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
                let mut dec = StreamDecoder::new();
                let mut buf = [0u8; 1024];
                loop {
                    let n = match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    dec.push(&buf[..n]);
                    while let Some(item) = dec.next_frame() {
                        let Ok(f) = item else { continue };
                        if forward(&rules, &f) && cw.write_all(&encode(&f)).await.is_err() {
                            break;
                        }
                    }
                }
                up.abort();
            });
        }
    });
    port
}

fn forward(rules: &ProxyRules, f: &Frame) -> bool {
    if rules.blackout.load(Ordering::SeqCst) {
        return false;
    }
    if f.function() == Some(Function::Security) {
        let left = rules.drop_recharge_replies.load(Ordering::SeqCst);
        if left > 0 {
            rules
                .drop_recharge_replies
                .store(left - 1, Ordering::SeqCst);
            rules.dropped.fetch_add(1, Ordering::SeqCst);
            if rules.blackout_after_drop.load(Ordering::SeqCst) {
                rules.blackout.store(true, Ordering::SeqCst);
            }
            return false;
        }
    }
    true
}

/// The simulator, the database and the proxy; the head-end is started by
/// the test (it may be restarted).
pub struct World {
    pub db: store::Db,
    pub fleet: sim::Fleet,
    /// Keeps the simulated gateways running.
    pub _running: sim::RunningFleet,
    pub clock: SharedClock,
    pub rules: Arc<ProxyRules>,
}

/// The head-end configuration for tests: short intervals in virtual time.
pub fn config(worker: &str) -> headend::Config {
    headend::Config {
        frequent_interval_ms: 20_000,
        hourly_interval_ms: 3_600_000,
        deliver_poll_ms: 500,
        deliver_lease_ms: 20_000,
        deliver_backoff_cap_ms: 20_000,
        worker_id: worker.to_owned(),
        ..headend::Config::default()
    }
}

impl World {
    /// A world on `db` with the simulator's `faults`.
    pub async fn new(db: store::Db, faults: sim::FaultConfig) -> World {
        Self::with_plan(db, faults, small_plan()).await
    }

    /// A world of `plan` on `db` with the simulator's `faults`.
    pub async fn with_plan(db: store::Db, faults: sim::FaultConfig, plan: CampusPlan) -> World {
        Self::with_plans(db, faults, &plan, &plan).await
    }

    /// A world whose simulator carries `sim_plan` and whose database is
    /// seeded with `db_plan` (meters the registry gains later).
    pub async fn with_plans(
        db: store::Db,
        faults: sim::FaultConfig,
        sim_plan: &CampusPlan,
        db_plan: &CampusPlan,
    ) -> World {
        let plan = sim_plan;
        let fleet = sim::Fleet::from_plan(
            plan,
            sim::SimConfig {
                seed: 7,
                start_ms: Some(START_MS),
                speed: SPEED,
                faults,
                ..sim::SimConfig::default()
            },
        );
        let running = fleet
            .start(sim::GatewayMode::Server {
                host: [127, 0, 0, 1].into(),
                base_port: 0,
            })
            .await
            .unwrap();
        let clock: SharedClock = Arc::new(VirtualClock(fleet.clock().clone()));
        store::campus::seed(
            &db,
            db_plan,
            &store::campus::GatewayAddressing::default(),
            clock.now_ms(),
        )
        .await
        .unwrap();
        let rules = Arc::new(ProxyRules::default());
        for ep in running.endpoints() {
            let port = proxy(ep.listen.unwrap(), rules.clone()).await;
            assert!(
                store::meters::set_gateway_endpoint(&db, &ep.name, "127.0.0.1", port)
                    .await
                    .unwrap()
            );
        }
        World {
            db,
            fleet,
            _running: running,
            clock,
            rules,
        }
    }

    /// Starts a head-end with `cfg`.
    pub async fn headend(&self, cfg: headend::Config) -> Headend {
        Headend::start(self.db.clone(), cfg, self.clock.clone())
            .await
            .unwrap()
    }

    /// (meter id, address) of the `n`-th meter of the registry.
    pub async fn meter(&self, n: usize) -> (i64, String) {
        let r = store::meters::registry(&self.db).await.unwrap();
        let m = r[0]
            .buses
            .iter()
            .flat_map(|b| b.meters.iter())
            .nth(n)
            .unwrap()
            .clone();
        (m.id, m.address)
    }

    /// A paid counter sale of `kwh` for the meter; returns the order id.
    pub async fn buy(&self, meter_id: i64, kwh: u32) -> domain::OrderId {
        let info = store::campus::meter_by_id(&self.db, domain::MeterId::new(meter_id))
            .await
            .unwrap()
            .unwrap();
        let kwh = domain::WholeKwh::parse(&kwh.to_string(), 500).unwrap();
        store::orders::create_counter_sale(
            &self.db,
            info.area_id.get(),
            info.address.as_str(),
            kwh,
            "test",
            self.clock.now_ms(),
        )
        .await
        .unwrap()
        .id
    }

    /// The order's state.
    pub async fn order_state(&self, order_id: domain::OrderId) -> domain::order::OrderState {
        store::orders::by_id(&self.db, order_id)
            .await
            .unwrap()
            .unwrap()
            .state
    }

    /// Asserts the ledger invariants hold.
    pub async fn assert_ledger(&self) {
        let v = store::ledger::check(&self.db).await.unwrap();
        assert!(v.is_empty(), "ledger violations: {v:?}");
    }
}

/// Polls `f` every 20 ms real time until it is true, for at most `secs`.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if f().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Standard fault profile of the issue: 5 % of frames lost each way.
pub fn lossy() -> sim::FaultConfig {
    sim::FaultConfig {
        seed: 11,
        request_loss: 0.05,
        reply_loss: 0.05,
        ..sim::FaultConfig::default()
    }
}

/// The databases to run a scenario on.
pub async fn databases() -> Vec<store::Db> {
    store::testing::all().await.unwrap()
}
