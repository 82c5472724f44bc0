//! The use cases of dormwatt, written once and called from the pages, the
//! JSON API, the (future) staff console and the simulation alike: what a
//! bind with its guessing protection ([`bind`]), a purchase ([`purchase`]),
//! a payment notification ([`notify`]), a refund ([`refund`]) and a counter
//! sale ([`counter`]) *do*, over what students type ([`input`]); the payment side's
//! background work ([`workers`]); and the one [`supervisor`] that starts
//! and stops every background worker of the process.
//!
//! Invariant: this crate knows neither HTTP nor SQL. It calls `store`
//! functions and `pay`'s [`pay::PaymentProvider`] trait, and never imports
//! axum, sqlx or reqwest (checked by `tests/layering.rs`). Callers map its
//! errors to answers; an order is credited only from a payment fact WeChat
//! signed (a verified notification or a signed query answer) after its
//! appid, mchid, amount and `trade_state` were checked against our order.

#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub mod bind;
pub mod counter;
pub mod input;
pub mod notify;
pub mod purchase;
pub mod refund;
/// No-cut hours and power-off hours: the scheduler worker (issue 14 item 6, part 3).
pub mod schedule;
pub mod supervisor;
/// WeChat template messages from the outbox (issue 15).
pub mod wechat_notify;
pub mod workers;

pub use notify::RejectedNotifications;
pub use purchase::{OrderInputError, PaymentError, StartedPayment};

/// A paid order the meter has not confirmed within this is flagged
/// *delayed*: [`domain::order::DELIVERY_WINDOW_DEFAULT_MS`] as a duration.
pub const DELIVERY_WINDOW_DEFAULT: Duration =
    Duration::from_millis(domain::order::DELIVERY_WINDOW_DEFAULT_MS.unsigned_abs());
/// The shortest delivery window accepted: a delivery normally takes a few
/// seconds, but a bus round of retries can take tens of them.
pub const DELIVERY_WINDOW_MIN: Duration = Duration::from_secs(60);

/// How long a paid order may wait for the meter's confirmation before it
/// is flagged delayed. Parsed once: never zero, never below
/// [`DELIVERY_WINDOW_MIN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryWindow(Duration);

/// Why a delivery window was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "must be at least {min_s} seconds (a paid order not confirmed by its meter within it is \
     flagged delayed); got {given_s}"
)]
pub struct DeliveryWindowError {
    /// What was given, seconds (may be zero or negative).
    pub given_s: i64,
    /// The shortest window accepted, seconds.
    pub min_s: u64,
}

impl DeliveryWindow {
    /// A window of `seconds`, refusing zero, negative and too-short ones.
    pub fn from_secs(seconds: i64) -> Result<Self, DeliveryWindowError> {
        let min_s = DELIVERY_WINDOW_MIN.as_secs();
        match u64::try_from(seconds) {
            Ok(s) if s >= min_s => Ok(Self(Duration::from_secs(s))),
            _ => Err(DeliveryWindowError {
                given_s: seconds,
                min_s,
            }),
        }
    }

    /// The window.
    pub fn get(self) -> Duration {
        self.0
    }

    /// The window in milliseconds.
    pub fn as_ms(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

impl Default for DeliveryWindow {
    fn default() -> Self {
        Self(DELIVERY_WINDOW_DEFAULT)
    }
}

/// The payment side of a process. Cheap to clone.
#[derive(Clone)]
pub struct Payments {
    /// WeChat Pay (or the sandbox speaking the same protocol).
    pub provider: Arc<dyn pay::PaymentProvider>,
    /// The in-process sandbox, when it is the provider (demo and tests).
    /// It is served on its own listener ([`pay::Sandbox::serve`]), never by
    /// the application's router.
    #[cfg(feature = "sandbox")]
    pub sandbox: Option<pay::Sandbox>,
    /// The sandbox cashier's origin (`http://host:port`), which the payment
    /// form redirects browsers to; `None` with the real WeChat Pay.
    pub cashier_origin: Option<String>,
    /// Merchant identity and limits.
    pub settings: Arc<PaymentSettings>,
    /// Notifications refused before their signature verified (counted; only
    /// a sample is stored).
    pub rejected: Arc<RejectedNotifications>,
}

impl fmt::Debug for Payments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payments")
            .field("sandbox", &self.cashier_origin.is_some())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Settings of the payment side (from `[payment]` in the configuration).
#[derive(Clone)]
pub struct PaymentSettings {
    /// Our service account's AppID: notifications for another one are refused.
    pub appid: String,
    /// Our merchant id: notifications for another one are refused.
    pub mchid: String,
    /// Shown in the payer's WeChat bill before the order details (≤ 60 chars, no emoji).
    pub description_prefix: String,
    /// Campus-wide ceiling of kWh per order; each area may be stricter.
    pub order_kwh_max: u32,
    /// How much earlier than our 2-hour expiry WeChat stops accepting the
    /// payment, so a payment can never land after we closed the order.
    pub time_expire_margin: Duration,
    /// Bearer token of the counter-sales and staff API; `None` refuses every call.
    pub counter_token: Option<String>,
    /// Unpaid orders older than this with no notification are queried at WeChat.
    pub reconcile_after: Duration,
    /// How often the payment workers run.
    pub worker_interval: Duration,
    /// Fetch and compare the previous day's trade bill (not with the sandbox
    /// in tests, where there is no previous day).
    pub bill_reconciliation: bool,
}

impl fmt::Debug for PaymentSettings {
    /// The counter token is a secret: show only whether it is set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaymentSettings")
            .field("appid", &self.appid)
            .field("mchid", &self.mchid)
            .field("description_prefix", &self.description_prefix)
            .field("order_kwh_max", &self.order_kwh_max)
            .field("time_expire_margin", &self.time_expire_margin)
            .field("counter_token", &self.counter_token.as_ref().map(|_| "***"))
            .field("reconcile_after", &self.reconcile_after)
            .field("worker_interval", &self.worker_interval)
            .field("bill_reconciliation", &self.bill_reconciliation)
            .finish()
    }
}

/// Campus-wide kWh ceiling per order when no payment side sets one.
pub const ORDER_KWH_MAX_DEFAULT: u32 = 500;

impl PaymentSettings {
    /// Defaults for a merchant identity; every knob can be changed after.
    pub fn new(appid: impl Into<String>, mchid: impl Into<String>) -> Self {
        Self {
            appid: appid.into(),
            mchid: mchid.into(),
            description_prefix: "宿舍电费".to_owned(),
            order_kwh_max: ORDER_KWH_MAX_DEFAULT,
            time_expire_margin: Duration::from_secs(5 * 60),
            counter_token: None,
            reconcile_after: Duration::from_secs(3 * 60),
            worker_interval: Duration::from_secs(30),
            bill_reconciliation: true,
        }
    }
}

impl Payments {
    /// Payments through `provider`.
    pub fn new(provider: Arc<dyn pay::PaymentProvider>, settings: PaymentSettings) -> Self {
        Self {
            provider,
            #[cfg(feature = "sandbox")]
            sandbox: None,
            cashier_origin: None,
            settings: Arc::new(settings),
            rejected: Arc::default(),
        }
    }

    /// Payments through the in-process sandbox: a [`pay::WechatPayClient`]
    /// that talks to the sandbox at `api_base_url` (the root of the
    /// sandbox's own listener) and receives its notifications at
    /// `notify_url`. This is exactly the production client and verification
    /// path, only the keys differ.
    #[cfg(feature = "sandbox")]
    pub fn sandbox(
        sandbox: pay::Sandbox,
        api_base_url: &str,
        notify_url: &str,
        settings: PaymentSettings,
    ) -> Result<Self, pay::PayError> {
        Self::sandbox_with_cashier(sandbox, api_base_url, api_base_url, notify_url, settings)
    }

    /// [`Payments::sandbox`] where browsers reach the sandbox's cashier at
    /// `cashier_base_url` (its listener as seen from outside) while the
    /// server calls it at `api_base_url`.
    #[cfg(feature = "sandbox")]
    pub fn sandbox_with_cashier(
        sandbox: pay::Sandbox,
        api_base_url: &str,
        cashier_base_url: &str,
        notify_url: &str,
        mut settings: PaymentSettings,
    ) -> Result<Self, pay::PayError> {
        let mut config = pay::sandbox::demo_merchant_config(api_base_url, notify_url);
        let cashier_base = cashier_base_url.trim_end_matches('/');
        config.cashier_url = Some(format!("{cashier_base}/cashier"));
        // scheme://host[:port] of the cashier: what the CSP's form-action allows.
        let cashier_origin = cashier_base
            .split_once("://")
            .map(|(scheme, rest)| format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest)));
        settings.appid.clone_from(&config.appid);
        settings.mchid.clone_from(&config.mchid);
        let client = pay::WechatPayClient::new(config)?;
        Ok(Self {
            provider: Arc::new(client),
            sandbox: Some(sandbox),
            cashier_origin,
            settings: Arc::new(settings),
            rejected: Arc::default(),
        })
    }
}

/// The use cases over one database and (optionally) one payment side.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Service {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: store::Db,
    payments: Option<Payments>,
    delivery_window: DeliveryWindow,
}

impl Service {
    /// The use cases over `db`; `payments` is `None` on a node that takes
    /// no online payments (counter sales still work).
    pub fn new(db: store::Db, payments: Option<Payments>, delivery_window: DeliveryWindow) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                payments,
                delivery_window,
            }),
        }
    }

    /// The database.
    pub fn db(&self) -> &store::Db {
        &self.inner.db
    }

    /// The payment side, when this node takes payments.
    pub fn payments(&self) -> Option<&Payments> {
        self.inner.payments.as_ref()
    }

    /// How long a paid order may wait for its meter before it is delayed.
    pub fn delivery_window(&self) -> DeliveryWindow {
        self.inner.delivery_window
    }

    /// The campus-wide kWh ceiling per order.
    pub fn order_kwh_max(&self) -> u32 {
        self.payments()
            .map_or(ORDER_KWH_MAX_DEFAULT, |p| p.settings.order_kwh_max)
    }

    /// The counter/staff bearer token, when one is configured (and not empty).
    pub fn counter_token(&self) -> Option<&str> {
        self.payments()
            .and_then(|p| p.settings.counter_token.as_deref())
            .filter(|t| !t.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_window_refuses_zero_negative_and_short() {
        for s in [0, -1, -1800, 59] {
            let e = DeliveryWindow::from_secs(s).unwrap_err();
            assert_eq!(e.given_s, s);
            assert!(e.to_string().contains("at least 60 seconds"), "{e}");
        }
        assert_eq!(
            DeliveryWindow::from_secs(60).unwrap().get(),
            Duration::from_secs(60)
        );
        assert_eq!(DeliveryWindow::default().get(), DELIVERY_WINDOW_DEFAULT);
        assert_eq!(DeliveryWindow::default().as_ms(), 1_800_000);
    }
}
