//! The payment sandbox: WeChat Pay API v3's server side, in process.
//!
//! It is the default provider of `dormwatt demo` and the fake server of the
//! tests. It speaks the real wire protocol — it verifies our request
//! signatures with the merchant public key, signs every answer with its own
//! platform key, and delivers notifications that are signed and AES-GCM
//! encrypted exactly like WeChat's — so the demo runs the production
//! verification path end to end. Serve it at the root of a listener of its
//! own ([`Sandbox::serve`]), like WeChat's host, and point
//! [`WechatPayConfig::api_base_url`] at it; any WeChat Pay SDK then works
//! by changing the host only. Signatures are checked over the path below
//! the sandbox's root, so [`sandbox_router`] nested under a prefix still
//! verifies what an SDK signs (the path relative to its gateway).
//!
//! **Keys.** `ring` cannot generate RSA keys and the `rsa` crate would add
//! build time and a private-key timing advisory (RUSTSEC-2023-0071) for a
//! demo feature, so the sandbox ships two fixed RSA-2048 key pairs generated
//! with `openssl genpkey` and labelled SANDBOX-ONLY in their PEM files. Their
//! private halves are public; [`WechatPayConfig::validate`] refuses to trust
//! the sandbox platform key when the API base is the real WeChat host (by
//! the fingerprint [`crate::config::SANDBOX_PLATFORM_KEY_SHA256`], which
//! lives outside this module so builds without the sandbox refuse it too).
//! A self-signed platform certificate of the same key serves merchants
//! (and SDKs) in certificate mode.
//! A deployment wanting fresh keys passes its own in [`SandboxConfig`].
//!
//! **Test controls.** [`NotifyPlan`] decides how the notification for a paid
//! order is delivered: N concurrent copies, an initial delay, not before a
//! given instant, never, or preceded by a `WECHATPAY/SIGNTEST` probe.
//! [`Sandbox::pay`] pays an order without a browser; [`Sandbox::notify`]
//! (re)sends the notification of a paid order later; [`Sandbox::forge_notification`]
//! builds forged ones for handler tests; [`Sandbox::deliveries`] records
//! every delivery attempt.

mod cashier;
mod http;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

pub use http::sandbox_router;

use crate::client::{Clock, SystemClock};
use crate::config::WechatPayConfig;
use crate::keys::{ApiV3Key, MerchantKey, PlatformCertificate, RsaPublicKey, WechatPayKeys};
use crate::model::{
    JsapiPrepayRequest, Payer, Refund, RefundNotifyAmount, RefundResult, RefundStatus, TradeState,
    Transaction, TransactionAmount,
};
use crate::notify::{ALGORITHM, EncryptedResource, NotificationEnvelope};
use crate::sign::{self, SIGNTEST_PREFIX, SignedHeaders};
use crate::time::format_beijing;

/// Sandbox-only platform (WeChat side) private key. Public by design.
const PLATFORM_KEY_PEM: &str = include_str!("sandbox_platform_key.pem");
/// Sandbox-only merchant private key for `dormwatt demo`. Public by design.
const MERCHANT_KEY_PEM: &str = include_str!("sandbox_merchant_key.pem");
/// Sandbox-only platform certificate (self-signed with the platform key),
/// served by `GET /v3/certificates` for SDKs in certificate mode.
const PLATFORM_CERT_PEM: &str = include_str!("sandbox_platform_cert.pem");

/// Demo identities. Obviously fake so they are never mistaken for real ones.
pub const DEMO_APPID: &str = "wxsandbox0000demo";
/// Demo merchant id.
pub const DEMO_MCHID: &str = "1900000000";
/// Demo merchant certificate serial.
pub const DEMO_MERCHANT_SERIAL_NO: &str = "5A4D0B0DE5A4D0B0DE5A4D0B0DE5A4D0B0DE5A4D";
/// Demo `PUB_KEY_ID_…` the sandbox signs with.
pub const DEMO_PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0000000000000000SANDBOX00000001";
/// Demo APIv3 key (32 bytes).
pub const DEMO_API_V3_KEY: &[u8; 32] = b"SandboxOnlyApiV3Key0000000000000";

fn load_key(pem: &str) -> MerchantKey {
    // The PEMs are compiled in and covered by tests; failure is a build defect.
    MerchantKey::from_pkcs8_pem(pem)
        .unwrap_or_else(|e| panic!("embedded sandbox key is invalid: {e}"))
}

/// The sandbox platform public key, so production configs can refuse it.
pub fn platform_public_key() -> RsaPublicKey {
    load_key(PLATFORM_KEY_PEM).public_key()
}

/// The sandbox platform certificate as a bare PEM block (the file's comment
/// lines stripped), as `GET /v3/certificates` hands it out.
pub fn platform_certificate_pem() -> &'static str {
    let start = PLATFORM_CERT_PEM
        .find("-----BEGIN CERTIFICATE-----")
        .unwrap_or(0);
    PLATFORM_CERT_PEM[start..].trim_end()
}

/// The demo merchant private key (sandbox-only; its private half is in the repo).
pub fn demo_merchant_key() -> MerchantKey {
    load_key(MERCHANT_KEY_PEM)
}

/// WeChat's documented retry gaps after a failed notification:
/// 15s/15s/30s/3m/10m/20m/30m/30m/30m/60m/3h/3h/3h/6h/6h (wechat-notes §3.6).
pub const WECHAT_RETRY_SCHEDULE_S: [u64; 15] = [
    15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10_800, 10_800, 10_800, 21_600, 21_600,
];

/// WeChat's schedule divided by `divisor` (the sandbox default is /100:
/// 150 ms … 216 s, about 14.5 min in all).
pub fn scaled_retry_schedule(divisor: u32) -> Vec<Duration> {
    WECHAT_RETRY_SCHEDULE_S
        .iter()
        .map(|s| Duration::from_secs(*s) / divisor.max(1))
        .collect()
}

/// How the sandbox behaves.
#[derive(Debug)]
pub struct SandboxConfig {
    /// AppID the merchant must use.
    pub appid: String,
    /// Merchant id.
    pub mchid: String,
    /// Serial our requests must carry.
    pub merchant_serial_no: String,
    /// Verifies our request signatures.
    pub merchant_public_key: RsaPublicKey,
    /// Encrypts notification resources.
    pub api_v3_key: ApiV3Key,
    /// Signs responses and notifications.
    pub platform_key: MerchantKey,
    /// Sent as `Wechatpay-Serial` in public-key mode: notifications, and
    /// answers to requests that name it in their own `Wechatpay-Serial`.
    pub public_key_id: String,
    /// The platform certificate (PEM) of `platform_key`, for merchants in
    /// certificate mode: `GET /v3/certificates` serves it encrypted, and
    /// answers to requests without a `PUB_KEY_ID_…` are signed under its
    /// serial, as WeChat does. `None`: public-key mode only (WeChat's
    /// answer for new merchants, 404 RESOURCE_NOT_EXISTS).
    pub platform_certificate_pem: Option<String>,
    /// Gaps between notification retries (its length bounds the retries).
    pub retry_schedule: Vec<Duration>,
    /// How long a notify endpoint may take to answer (WeChat: 5 s).
    pub notify_timeout: Duration,
    /// How long a refund stays PROCESSING before it succeeds.
    pub refund_delay: Duration,
    /// The merchant's public base URL (e.g. `http://127.0.0.1:8080`): the
    /// cashier runs on its own origin, so its "back to merchant" link is
    /// this base + the same-site path it was given. `None`: the bare path.
    pub merchant_base_url: Option<String>,
}

impl SandboxConfig {
    /// The demo sandbox: shipped keys, demo ids, WeChat's schedule / 100.
    pub fn demo() -> Self {
        Self {
            appid: DEMO_APPID.to_owned(),
            mchid: DEMO_MCHID.to_owned(),
            merchant_serial_no: DEMO_MERCHANT_SERIAL_NO.to_owned(),
            merchant_public_key: demo_merchant_key().public_key(),
            api_v3_key: ApiV3Key::new(DEMO_API_V3_KEY)
                .unwrap_or_else(|_| unreachable!("the constant is 32 bytes")),
            platform_key: load_key(PLATFORM_KEY_PEM),
            public_key_id: DEMO_PUBLIC_KEY_ID.to_owned(),
            platform_certificate_pem: Some(platform_certificate_pem().to_owned()),
            retry_schedule: scaled_retry_schedule(100),
            notify_timeout: Duration::from_secs(5),
            refund_delay: Duration::from_millis(50),
            merchant_base_url: None,
        }
    }
}

/// The merchant config that matches [`SandboxConfig::demo`]: demo keys and
/// ids, API base pointing at the sandbox's own listener, cashier link enabled.
///
/// `api_base_url` is where the server reaches the sandbox: its own
/// listener, routes at the root like WeChat's host, e.g.
/// `http://127.0.0.1:8081`; `notify_url` is our own handler (payments and
/// refunds both go there). The cashier link is `api_base_url` + `/cashier`
/// (change `cashier_url` when browsers reach the sandbox elsewhere).
pub fn demo_merchant_config(api_base_url: &str, notify_url: &str) -> WechatPayConfig {
    let base = api_base_url.trim_end_matches('/').to_owned();
    let cashier_path = format!("{base}/cashier");
    WechatPayConfig {
        appid: DEMO_APPID.to_owned(),
        mchid: DEMO_MCHID.to_owned(),
        merchant_key: demo_merchant_key(),
        merchant_serial_no: DEMO_MERCHANT_SERIAL_NO.to_owned(),
        api_v3_key: ApiV3Key::new(DEMO_API_V3_KEY)
            .unwrap_or_else(|_| unreachable!("the constant is 32 bytes")),
        wechatpay_keys: WechatPayKeys::with_public_key(DEMO_PUBLIC_KEY_ID, platform_public_key()),
        notify_url: notify_url.to_owned(),
        refund_notify_url: Some(notify_url.to_owned()),
        cashier_url: Some(cashier_path),
        api_base_url: base,
        user_agent: WechatPayConfig::DEFAULT_USER_AGENT.to_owned(),
        request_timeout: WechatPayConfig::DEFAULT_REQUEST_TIMEOUT,
        connect_timeout: WechatPayConfig::DEFAULT_CONNECT_TIMEOUT,
    }
}

/// How the notification of a paid order is delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyPlan {
    /// Independent deliveries of the same notification, sent concurrently,
    /// each with its own retries (0 = never notify; capped at [`NOTIFY_COPIES_MAX`]).
    pub copies: u32,
    /// Wait before the first attempt.
    pub delay: Duration,
    /// Do not send before this unix second (sandbox clock): a "late" notification.
    pub not_before_unix_s: Option<i64>,
    /// Send a `WECHATPAY/SIGNTEST/` probe first, which handlers must reject.
    pub signtest_probe: bool,
}

impl Default for NotifyPlan {
    fn default() -> Self {
        Self::normal()
    }
}

impl NotifyPlan {
    /// One notification, right away, retried on failure.
    pub fn normal() -> Self {
        Self {
            copies: 1,
            delay: Duration::ZERO,
            not_before_unix_s: None,
            signtest_probe: false,
        }
    }

    /// No notification at all (the merchant must find out by querying).
    pub fn never() -> Self {
        Self {
            copies: 0,
            ..Self::normal()
        }
    }

    /// `copies` concurrent deliveries of the same notification.
    pub fn duplicates(copies: u32) -> Self {
        Self {
            copies,
            ..Self::normal()
        }
    }

    /// One notification after `delay`.
    pub fn delayed(delay: Duration) -> Self {
        Self {
            delay,
            ..Self::normal()
        }
    }

    /// One notification no earlier than `unix_s`.
    pub fn late_after(unix_s: i64) -> Self {
        Self {
            not_before_unix_s: Some(unix_s),
            ..Self::normal()
        }
    }

    /// Adds a SIGNTEST probe before the real notification.
    pub fn with_signtest_probe(mut self) -> Self {
        self.signtest_probe = true;
        self
    }
}

/// One delivery attempt, as recorded by the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryRecord {
    /// Envelope id (shared by copies and retries of one event).
    pub notification_id: String,
    /// `TRANSACTION.SUCCESS`, `REFUND.SUCCESS`.
    pub event_type: String,
    /// The order.
    pub out_trade_no: String,
    /// Which copy (0-based).
    pub copy: u32,
    /// Which attempt of this copy (0 = first try).
    pub attempt: u32,
    /// Whether this was a SIGNTEST probe.
    pub probe: bool,
    /// HTTP status answered, if any.
    pub status: Option<u16>,
    /// Transport error, if any.
    pub error: Option<String>,
    /// How long after the notification was scheduled this attempt was sent
    /// (on the Tokio clock): never before the plan's delay.
    pub sent_after: Duration,
    /// The sandbox clock (unix seconds) when this attempt was sent: never
    /// before a late plan's instant.
    pub sent_at_unix_s: i64,
}

impl DeliveryRecord {
    /// Whether the receiver acknowledged (2xx).
    pub fn acknowledged(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// How to spoil a notification (for tests of the notify handler).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// A genuine notification.
    None,
    /// Signature over a different body.
    BadSignature,
    /// `Wechatpay-Serial` names a key the merchant does not have.
    UnknownSerial,
    /// Correctly signed, timestamp this many seconds in the past.
    StaleTimestamp(i64),
    /// A `WECHATPAY/SIGNTEST/` probe signature.
    SignTest,
    /// Correctly signed, but the ciphertext was altered before signing
    /// (as if the sender had the platform key but not the APIv3 key).
    TamperedCiphertext,
}

/// A notification ready to POST.
#[derive(Debug, Clone)]
pub struct SignedNotification {
    /// `Wechatpay-*` headers.
    pub headers: SignedHeaders,
    /// Raw JSON body.
    pub body: Vec<u8>,
}

/// Why a sandbox control call failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SandboxError {
    /// No such order (by out_trade_no or prepay_id).
    #[error("no such order")]
    UnknownOrder,
    /// The order cannot be paid in its current state.
    #[error("order is {0:?}, cannot pay")]
    NotPayable(TradeState),
    /// `time_expire` has passed.
    #[error("order expired")]
    Expired,
    /// The prepay id is older than 2 h.
    #[error("prepay_id expired")]
    PrepayExpired,
    /// The order has not been paid, so there is nothing to notify.
    #[error("order not paid")]
    NotPaid,
}

/// prepay_id lifetime.
const PREPAY_TTL_S: i64 = 2 * 3600;
/// Bill download token lifetime (pay docs: 5 min).
const BILL_TOKEN_TTL_S: i64 = 5 * 60;
/// Bound on stored delivery records, so a long demo cannot grow without limit.
const DELIVERY_RECORDS_MAX: usize = 10_000;
/// Bound on concurrent copies of one notification.
pub const NOTIFY_COPIES_MAX: u32 = 100;
/// Bound on orders held; beyond it prepay answers 429 like a rate limit.
pub(crate) const ORDERS_MAX: usize = 100_000;

#[derive(Debug, Clone)]
struct Order {
    request: JsapiPrepayRequest,
    prepay_id: String,
    created_unix_s: i64,
    expire_unix_s: Option<i64>,
    state: TradeState,
    transaction_id: Option<String>,
    success_unix_s: Option<i64>,
    refunded_fen: i64,
}

impl Order {
    fn transaction(&self) -> Transaction {
        let paid = self.transaction_id.is_some();
        Transaction {
            appid: self.request.appid.clone(),
            mchid: self.request.mchid.clone(),
            out_trade_no: self.request.out_trade_no.clone(),
            transaction_id: self.transaction_id.clone(),
            trade_type: Some("JSAPI".to_owned()),
            trade_state: self.state,
            trade_state_desc: Some(
                match self.state {
                    TradeState::Success => "支付成功",
                    TradeState::Refund => "转入退款",
                    TradeState::Notpay => "未支付",
                    TradeState::Closed => "已关闭",
                    _ => "其他状态",
                }
                .to_owned(),
            ),
            bank_type: paid.then(|| "OTHERS".to_owned()),
            attach: Some(self.request.attach.clone().unwrap_or_default()),
            success_time: self.success_unix_s.map(format_beijing),
            payer: Some(Payer {
                openid: self.request.payer.openid.clone(),
            }),
            amount: TransactionAmount {
                total: Some(self.request.amount.total),
                payer_total: paid.then_some(self.request.amount.total),
                currency: Some("CNY".to_owned()),
                payer_currency: Some("CNY".to_owned()),
            },
        }
    }
}

#[derive(Debug, Clone)]
struct RefundRecord {
    refund: Refund,
    notify_url: Option<String>,
    success_unix_s: Option<i64>,
}

/// A bill file waiting behind its download token.
#[derive(Debug)]
struct BillFile {
    created_unix_s: i64,
    /// What the download answers: the CSV, or its gzip (`tar_type=GZIP`).
    bytes: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    orders: HashMap<String, Order>,
    by_prepay_id: HashMap<String, String>,
    /// transaction_id → out_trade_no, for `GET /v3/pay/transactions/id/{id}`.
    by_transaction_id: HashMap<String, String>,
    refunds: HashMap<String, RefundRecord>,
    bills: HashMap<String, BillFile>,
    default_plan: NotifyPlan,
    plans: HashMap<String, NotifyPlan>,
    deliveries: Vec<DeliveryRecord>,
    seq: u64,
    /// Every id [`State::fresh_id`] handed out, so this instance never
    /// repeats one even if the clock and the random digits coincide.
    issued_ids: HashSet<String>,
}

impl State {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// A WeChat-like id: `prefix`, the Beijing date `yyyymmdd` of `now_unix_s`,
    /// then `digits` digits — the wall-clock millisecond of the day (8) and
    /// random digits for the rest. A restarted sandbox (demo restarts, test
    /// servers) must not hand out an id an earlier run gave to another order:
    /// dormwatt stores transaction ids as unique, and a reused one would make
    /// the notify handler refuse a real payment forever. So the id depends on
    /// the clock and the OS random generator, never on a counter that restarts.
    fn fresh_id(&mut self, prefix: &str, now_unix_s: i64, digits: usize) -> String {
        debug_assert!(digits > CLOCK_DIGITS, "room for random digits");
        let date = crate::time::beijing_date(now_unix_s).replace('-', "");
        loop {
            let ms_of_day = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() % 86_400_000);
            let id = format!(
                "{prefix}{date}{ms_of_day:0width$}{}",
                random_digits(digits - CLOCK_DIGITS),
                width = CLOCK_DIGITS
            );
            if self.issued_ids.insert(id.clone()) {
                return id;
            }
        }
    }
}

/// Digits of [`State::fresh_id`] taken by the millisecond of the day.
const CLOCK_DIGITS: usize = 8;

/// `n` decimal digits from the OS random generator.
fn random_digits(n: usize) -> String {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        // 32 hex digits of randomness per nonce; keep whole decimal digits only
        // below 250 per byte so every digit is equally likely.
        let nonce = sign::new_nonce();
        for pair in nonce.as_bytes().chunks(2) {
            let byte = std::str::from_utf8(pair)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .unwrap_or(255);
            if byte < 250 && out.len() < n {
                out.push(char::from(b'0' + byte % 10));
            }
        }
    }
    out
}

/// The platform certificate, parsed once.
struct Certificate {
    parsed: PlatformCertificate,
    pem: String,
}

struct Inner {
    config: SandboxConfig,
    certificate: Option<Certificate>,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    state: Mutex<State>,
    /// How many delivery attempts were recorded, for waiting on them.
    recorded: tokio::sync::watch::Sender<usize>,
    /// Notification copies scheduled so far (a plan that sends none adds none).
    scheduled: AtomicU64,
}

/// The sandbox. Cheap to clone; all clones share state.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// A notification job: where to send what, and how.
struct Delivery {
    url: String,
    notification_id: String,
    event_type: String,
    out_trade_no: String,
    body: Vec<u8>,
    plan: NotifyPlan,
    /// When it was scheduled.
    scheduled_at: tokio::time::Instant,
}

impl Sandbox {
    /// A sandbox on the system clock.
    pub fn new(config: SandboxConfig) -> Self {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// The demo sandbox ([`SandboxConfig::demo`]).
    pub fn demo() -> Self {
        Self::new(SandboxConfig::demo())
    }

    /// A sandbox on a given clock (a skewed clock makes stale signatures).
    ///
    /// # Panics
    /// If the TLS-less HTTP client for notifications cannot be built, or
    /// `platform_certificate_pem` is not a certificate of `platform_key`.
    pub fn with_clock(config: SandboxConfig, clock: Arc<dyn Clock>) -> Self {
        let certificate = config.platform_certificate_pem.as_ref().map(|pem| {
            let parsed = PlatformCertificate::from_pem(pem)
                .unwrap_or_else(|e| panic!("sandbox platform certificate is invalid: {e}"));
            assert!(
                parsed.public_key == config.platform_key.public_key(),
                "the sandbox platform certificate does not certify platform_key"
            );
            Certificate {
                parsed,
                pem: pem.clone(),
            }
        });
        let http = reqwest::Client::builder()
            .timeout(config.notify_timeout)
            .connect_timeout(config.notify_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|e| panic!("cannot build HTTP client: {e}"));
        Self {
            inner: Arc::new(Inner {
                config,
                certificate,
                clock,
                http,
                state: Mutex::new(State::default()),
                recorded: tokio::sync::watch::Sender::new(0),
                scheduled: AtomicU64::new(0),
            }),
        }
    }

    /// An axum router serving the sandbox (same as [`sandbox_router`]).
    pub fn router<S>(&self) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        sandbox_router(self.clone())
    }

    /// Serves the sandbox at the root of its own `listener` until
    /// `shutdown` resolves. It is never merged into the production router:
    /// its admin routes pay orders without money.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router::<()>())
            .with_graceful_shutdown(shutdown)
            .await
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not wedge the demo; the state stays usable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> i64 {
        self.inner.clock.now_unix_s()
    }

    /// The config.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// Sets the plan for orders without their own.
    pub fn set_default_notify_plan(&self, plan: NotifyPlan) {
        self.state().default_plan = plan;
    }

    /// Sets the plan for one order (may be called before the order exists).
    pub fn set_notify_plan(&self, out_trade_no: &str, plan: NotifyPlan) {
        self.state().plans.insert(out_trade_no.to_owned(), plan);
    }

    /// The order as a query would return it.
    pub fn order(&self, out_trade_no: &str) -> Option<Transaction> {
        self.state()
            .orders
            .get(out_trade_no)
            .map(Order::transaction)
    }

    /// The out_trade_no of a prepay id.
    pub fn out_trade_no_for_prepay(&self, prepay_id: &str) -> Option<String> {
        self.state().by_prepay_id.get(prepay_id).cloned()
    }

    /// All delivery attempts so far, in order.
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.state().deliveries.clone()
    }

    /// Notification copies scheduled so far, sent or not (each copy is one
    /// delivery with its retries; [`NotifyPlan::never`] schedules none).
    pub fn notifications_scheduled(&self) -> u64 {
        self.inner.scheduled.load(Ordering::SeqCst)
    }

    /// Waits until `done(deliveries)` holds, re-checking at every recorded
    /// delivery attempt; `false` if `timeout` passes first.
    pub async fn wait_for_deliveries(
        &self,
        timeout: Duration,
        done: impl Fn(&[DeliveryRecord]) -> bool,
    ) -> bool {
        // Subscribed before the first check, so no attempt is missed.
        let mut recorded = self.inner.recorded.subscribe();
        let until_done = async {
            while !done(&self.state().deliveries) {
                if recorded.changed().await.is_err() {
                    return false;
                }
            }
            true
        };
        tokio::time::timeout(timeout, until_done)
            .await
            .unwrap_or(false)
    }

    /// Pays an order as the student would at the cashier, then notifies per
    /// the order's plan (or the default). Must run inside a Tokio runtime.
    pub fn pay(&self, out_trade_no: &str) -> Result<Transaction, SandboxError> {
        let plan = {
            let s = self.state();
            s.plans
                .get(out_trade_no)
                .cloned()
                .unwrap_or_else(|| s.default_plan.clone())
        };
        self.pay_with(out_trade_no, plan)
    }

    /// Pays an order and notifies with an explicit plan.
    pub fn pay_with(
        &self,
        out_trade_no: &str,
        plan: NotifyPlan,
    ) -> Result<Transaction, SandboxError> {
        let now = self.now();
        let transaction = {
            let mut s = self.state();
            if !s.orders.contains_key(out_trade_no) {
                return Err(SandboxError::UnknownOrder);
            }
            // 28 digits like WeChat's: 4200 + yyyymmdd + 16.
            let transaction_id = s.fresh_id("4200", now, 16);
            let order = s
                .orders
                .get_mut(out_trade_no)
                .ok_or(SandboxError::UnknownOrder)?;
            if order.state != TradeState::Notpay {
                return Err(SandboxError::NotPayable(order.state));
            }
            if order.expire_unix_s.is_some_and(|e| now > e) {
                return Err(SandboxError::Expired);
            }
            if now > order.created_unix_s + PREPAY_TTL_S {
                return Err(SandboxError::PrepayExpired);
            }
            order.state = TradeState::Success;
            order.success_unix_s = Some(now);
            order.transaction_id = Some(transaction_id.clone());
            let transaction = order.transaction();
            s.by_transaction_id
                .insert(transaction_id, out_trade_no.to_owned());
            transaction
        };
        tracing::info!(out_trade_no, "sandbox: order paid");
        self.notify(out_trade_no, plan)?;
        Ok(transaction)
    }

    /// (Re)sends the TRANSACTION.SUCCESS notification of a paid order with
    /// `plan` — e.g. a late or duplicate delivery long after payment.
    pub fn notify(&self, out_trade_no: &str, plan: NotifyPlan) -> Result<(), SandboxError> {
        let (transaction, url) = {
            let s = self.state();
            let order = s
                .orders
                .get(out_trade_no)
                .ok_or(SandboxError::UnknownOrder)?;
            if order.transaction_id.is_none() {
                return Err(SandboxError::NotPaid);
            }
            (order.transaction(), order.request.notify_url.clone())
        };
        let (id, body) = self.payment_envelope(&transaction, Forgery::None);
        self.dispatch(Delivery {
            url,
            notification_id: id,
            event_type: "TRANSACTION.SUCCESS".to_owned(),
            out_trade_no: out_trade_no.to_owned(),
            body,
            plan,
            scheduled_at: tokio::time::Instant::now(),
        });
        Ok(())
    }

    /// Builds a TRANSACTION.SUCCESS notification for an order (paid or not:
    /// a forger does not care), spoiled as `forgery` says.
    pub fn forge_notification(
        &self,
        out_trade_no: &str,
        forgery: Forgery,
    ) -> Result<SignedNotification, SandboxError> {
        let mut transaction = self.order(out_trade_no).ok_or(SandboxError::UnknownOrder)?;
        if transaction.transaction_id.is_none() {
            // Pretend it was paid, as a forger would claim.
            transaction.trade_state = TradeState::Success;
            transaction.transaction_id = Some("4200000000000000000000000000".to_owned());
            transaction.success_time = Some(format_beijing(self.now()));
            transaction.amount.payer_total = transaction.amount.total;
        }
        let (_, body) = self.payment_envelope(&transaction, forgery);
        let mut ts = self.now();
        if let Forgery::StaleTimestamp(age) = forgery {
            ts -= age;
        }
        let nonce = sign::new_nonce();
        let mut headers = self.sign_headers(ts, &nonce, &body);
        match forgery {
            Forgery::BadSignature => {
                headers = self.sign_headers(ts, &nonce, b"{\"something\":\"else\"}");
            }
            Forgery::UnknownSerial => {
                headers.serial = "PUB_KEY_ID_0000000000000000UNKNOWN0000000".to_owned();
            }
            Forgery::SignTest => {
                headers.signature = format!("{SIGNTEST_PREFIX}{}", STANDARD.encode(nonce));
            }
            Forgery::None | Forgery::StaleTimestamp(_) | Forgery::TamperedCiphertext => {}
        }
        Ok(SignedNotification { headers, body })
    }

    /// Signs in public-key mode (notifications are always sent that way).
    fn sign_headers(&self, ts: i64, nonce: &str, body: &[u8]) -> SignedHeaders {
        self.sign_headers_as(&self.inner.config.public_key_id, ts, nonce, body)
    }

    /// Signs with the platform key, announcing `serial` (the `PUB_KEY_ID_…`
    /// or the platform certificate's serial: the same key either way).
    fn sign_headers_as(&self, serial: &str, ts: i64, nonce: &str, body: &[u8]) -> SignedHeaders {
        SignedHeaders::sign(&self.inner.config.platform_key, serial, ts, nonce, body)
            .unwrap_or_else(|_| panic!("sandbox signing failed"))
    }

    /// Encrypts `plaintext` into an envelope; returns (id, body bytes).
    fn envelope(
        &self,
        event_type: &str,
        summary: &str,
        original_type: &str,
        plaintext: &[u8],
        forgery: Forgery,
    ) -> (String, Vec<u8>) {
        let now = self.now();
        let seq = self.state().next_seq();
        let id = format!(
            "EV-{}{seq:08}",
            crate::time::beijing_date(now).replace('-', "")
        );
        let nonce: String = sign::new_nonce().chars().take(12).collect();
        let aad = original_type;
        let mut ciphertext =
            crate::aead::encrypt(&self.inner.config.api_v3_key, &nonce, aad, plaintext)
                .unwrap_or_else(|_| unreachable!("nonce is 12 bytes"));
        if forgery == Forgery::TamperedCiphertext {
            let mut raw = STANDARD.decode(&ciphertext).unwrap_or_default();
            if let Some(b) = raw.first_mut() {
                *b ^= 0x01;
            }
            ciphertext = STANDARD.encode(raw);
        }
        let envelope = NotificationEnvelope {
            id: id.clone(),
            create_time: format_beijing(now),
            resource_type: "encrypt-resource".to_owned(),
            event_type: event_type.to_owned(),
            summary: summary.to_owned(),
            resource: EncryptedResource {
                original_type: original_type.to_owned(),
                algorithm: ALGORITHM.to_owned(),
                ciphertext,
                associated_data: aad.to_owned(),
                nonce,
            },
        };
        let body = serde_json::to_vec(&envelope).unwrap_or_default();
        (id, body)
    }

    fn payment_envelope(&self, transaction: &Transaction, forgery: Forgery) -> (String, Vec<u8>) {
        let plain = serde_json::to_vec(transaction).unwrap_or_default();
        self.envelope(
            "TRANSACTION.SUCCESS",
            "支付成功",
            "transaction",
            &plain,
            forgery,
        )
    }

    fn record(&self, record: DeliveryRecord) {
        let n = {
            let mut s = self.state();
            if s.deliveries.len() < DELIVERY_RECORDS_MAX {
                s.deliveries.push(record);
            }
            s.deliveries.len()
        };
        self.inner.recorded.send_replace(n);
    }

    fn dispatch(&self, delivery: Delivery) {
        let delivery = Arc::new(delivery);
        let copies = delivery.plan.copies.min(NOTIFY_COPIES_MAX);
        self.inner
            .scheduled
            .fetch_add(u64::from(copies), Ordering::SeqCst);
        for copy in 0..copies {
            let sandbox = self.clone();
            let delivery = Arc::clone(&delivery);
            tokio::spawn(async move { sandbox.deliver(&delivery, copy).await });
        }
    }

    /// One copy of a notification: wait per plan, probe if asked, then try
    /// and retry on the configured schedule until a 2xx answer.
    async fn deliver(&self, d: &Delivery, copy: u32) {
        tokio::time::sleep(d.plan.delay).await;
        if let Some(at) = d.plan.not_before_unix_s {
            let wait_s = at - self.now();
            if wait_s > 0 {
                tokio::time::sleep(Duration::from_secs(wait_s.unsigned_abs())).await;
            }
        }
        if d.plan.signtest_probe && copy == 0 {
            let nonce = sign::new_nonce();
            let mut headers = self.sign_headers(self.now(), &nonce, &d.body);
            headers.signature = format!("{SIGNTEST_PREFIX}{}", STANDARD.encode(&nonce));
            let sent = self.sent(d);
            let answer = self.post(&d.url, &headers, &d.body).await;
            self.record(self.delivery_record(d, copy, 0, true, sent, answer));
        }
        let schedule = &self.inner.config.retry_schedule;
        for attempt in 0..=schedule.len() {
            let nonce = sign::new_nonce();
            let headers = self.sign_headers(self.now(), &nonce, &d.body);
            let sent = self.sent(d);
            let answer = self.post(&d.url, &headers, &d.body).await;
            let record = self.delivery_record(d, copy, attempt, false, sent, answer);
            let acknowledged = record.acknowledged();
            tracing::info!(
                notification.id = %d.notification_id,
                copy,
                attempt,
                status = ?record.status,
                "sandbox: notification delivered"
            );
            self.record(record);
            if acknowledged {
                return;
            }
            if let Some(gap) = schedule.get(attempt) {
                tokio::time::sleep(*gap).await;
            }
        }
        tracing::warn!(notification.id = %d.notification_id, copy, "sandbox: notification retries exhausted");
    }

    /// When an attempt of `d` is sent: since it was scheduled, and the clock.
    fn sent(&self, d: &Delivery) -> (Duration, i64) {
        (d.scheduled_at.elapsed(), self.now())
    }

    fn delivery_record(
        &self,
        d: &Delivery,
        copy: u32,
        attempt: usize,
        probe: bool,
        (sent_after, sent_at_unix_s): (Duration, i64),
        (status, error): (Option<u16>, Option<String>),
    ) -> DeliveryRecord {
        DeliveryRecord {
            sent_after,
            sent_at_unix_s,
            notification_id: d.notification_id.clone(),
            event_type: d.event_type.clone(),
            out_trade_no: d.out_trade_no.clone(),
            copy,
            attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
            probe,
            status,
            error,
        }
    }

    async fn post(
        &self,
        url: &str,
        headers: &SignedHeaders,
        body: &[u8],
    ) -> (Option<u16>, Option<String>) {
        let mut request = self
            .inner
            .http
            .post(url)
            .header("Content-Type", "application/json")
            .header("User-Agent", "Mozilla/4.0 (sandbox; WechatPay notifier)")
            .body(body.to_vec());
        for (name, value) in headers.to_pairs() {
            request = request.header(name, value);
        }
        match request.send().await {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(e) => (None, Some(e.to_string())),
        }
    }

    /// Marks a refund successful and sends its notification.
    fn complete_refund(&self, out_refund_no: &str) {
        let now = self.now();
        let (result, url) = {
            let mut s = self.state();
            let Some(rec) = s.refunds.get_mut(out_refund_no) else {
                return;
            };
            if rec.refund.status != RefundStatus::Processing {
                return;
            }
            rec.refund.status = RefundStatus::Success;
            rec.refund.success_time = Some(format_beijing(now));
            rec.success_unix_s = Some(now);
            let r = &rec.refund;
            let result = RefundResult {
                mchid: self.inner.config.mchid.clone(),
                transaction_id: r.transaction_id.clone(),
                out_trade_no: r.out_trade_no.clone(),
                refund_id: r.refund_id.clone(),
                out_refund_no: r.out_refund_no.clone(),
                refund_status: RefundStatus::Success,
                success_time: r.success_time.clone(),
                user_received_account: r.user_received_account.clone(),
                amount: RefundNotifyAmount {
                    total: r.amount.total,
                    refund: r.amount.refund,
                    payer_total: r.amount.payer_total.unwrap_or(r.amount.total),
                    payer_refund: r.amount.payer_refund.unwrap_or(r.amount.refund),
                },
            };
            (result, rec.notify_url.clone())
        };
        let Some(url) = url else {
            return;
        };
        let plain = serde_json::to_vec(&result).unwrap_or_default();
        let (id, body) = self.envelope(
            "REFUND.SUCCESS",
            "退款成功",
            "refund",
            &plain,
            Forgery::None,
        );
        let plan = self.state().default_plan.clone();
        self.dispatch(Delivery {
            url,
            notification_id: id,
            event_type: "REFUND.SUCCESS".to_owned(),
            out_trade_no: result.out_trade_no,
            body,
            plan,
            scheduled_at: tokio::time::Instant::now(),
        });
    }
}
