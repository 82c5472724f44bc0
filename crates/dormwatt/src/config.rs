//! Configuration: built-in defaults, then a TOML file, then `DORMWATT_*`
//! environment variables (env wins), then command-line flags. Unknown keys
//! and malformed values stop startup with a message naming the key.
//! The reference of every key is docs/CONFIGURATION.md.

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// Environment variables with the `DORMWATT_` prefix that are not
/// configuration keys (test harness and script settings).
const NOT_CONFIG_ENV: [&str; 3] = ["test_pg_url", "bin", "config"];

/// The whole configuration.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `sqlite://path` or `postgres://…`.
    pub database_url: String,
    /// Address the HTTP server listens on.
    pub listen: String,
    /// Base URL students and WeChat reach this server at; unset: derived
    /// from the address actually listened on (`http://127.0.0.1:<port>`).
    pub public_url: Option<String>,
    /// IANA time zone of the campus calendar, resolved at load (an unknown
    /// name is refused there).
    pub time_zone: domain::time::CampusTz,
    /// `text` or `json` logs.
    pub log_format: LogFormat,
    /// Refuse demo conveniences (sandbox payments, demo login) unless allowed.
    pub production: bool,
    /// Pool settings.
    pub database: DatabaseConfig,
    /// Head-end settings.
    pub headend: HeadendConfig,
    /// Built-in meter simulator (demo).
    pub simulator: SimulatorConfig,
    /// Payments: provider (sandbox or WeChat Pay), counter sales, workers.
    pub payment: PaymentConfig,
    /// Student pages: WeChat login, sessions.
    pub web: WebConfig,
    /// Data retention: what is pruned after how long (issue 16 item 4).
    pub retention: RetentionConfig,
    /// `[metrics]`: who may scrape `/metrics`, and where (issue 16 item 1).
    pub metrics: MetricsConfig,
    /// `[wechat]`: official-account notifications (issue 15).
    pub wechat: WechatConfig,
}

// Issue 16 item 1 (metrics): the `[metrics]` section.
/// `[metrics]`: Prometheus metrics at `/metrics`. Never public by default:
/// loopback clients of the main listener only.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Off: `/metrics` answers 404 to everyone.
    pub enabled: bool,
    /// Networks (CIDR, e.g. `"10.0.0.0/8"`, or one address) whose clients
    /// may scrape besides loopback. Behind a proxy the client is the
    /// forwarded address (`web.trusted_proxies`), not the proxy.
    pub allow: Vec<String>,
    /// Serve `/metrics` on its own listener (e.g. `"127.0.0.1:9464"`)
    /// instead of the main one.
    pub listen: Option<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            allow: Vec::new(),
            listen: None,
        }
    }
}

impl MetricsConfig {
    /// The allow-list parsed; a bad entry is an error naming it.
    fn networks(&self) -> anyhow::Result<Vec<ipnet::IpNet>> {
        self.allow
            .iter()
            .map(|a| {
                let a = a.trim();
                a.parse::<ipnet::IpNet>()
                    .or_else(|_| a.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "metrics.allow: '{a}' is not a network like 10.0.0.0/8 or an IP address"
                        )
                    })
            })
            .collect()
    }

    /// The metrics listener's address, when it has one.
    pub fn listen_addr(&self) -> anyhow::Result<Option<std::net::SocketAddr>> {
        self.listen
            .as_deref()
            .map(|l| {
                l.parse().map_err(|_| {
                    anyhow::anyhow!("metrics.listen: '{l}' is not an address like 127.0.0.1:9464")
                })
            })
            .transpose()
    }

    /// `others`: (key, address) of the process's other listeners.
    fn validate(&self, listen: &str, others: &[(&str, Option<&str>)]) -> anyhow::Result<()> {
        self.networks()?;
        let Some(a) = self.listen_addr()? else {
            return Ok(());
        };
        // The same port on the same address, or on a wildcard one (0.0.0.0
        // or [::] takes the port on every address): the second bind fails.
        let clash = |b: std::net::SocketAddr| {
            a.port() == b.port()
                && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
        };
        if let Ok(main) = listen.parse::<std::net::SocketAddr>() {
            anyhow::ensure!(
                !clash(main),
                "metrics.listen: {a} takes the main listener's port ({main}); leave metrics.listen out to serve /metrics there, or give it another port"
            );
        }
        for (key, other) in others {
            if let Some(b) = other.and_then(|o| o.parse::<std::net::SocketAddr>().ok()) {
                anyhow::ensure!(
                    !clash(b),
                    "metrics.listen: {a} takes the port of {key} ({b}); give it another port"
                );
            }
        }
        Ok(())
    }

    /// The web side's settings (validated at load).
    pub fn settings(&self) -> web::metrics::MetricsSettings {
        web::metrics::MetricsSettings {
            enabled: self.enabled,
            allow: self.networks().unwrap_or_default(),
            own_listener: self.listen.is_some(),
        }
    }

    /// One line for `check-config`: where and to whom `/metrics` answers.
    pub fn summary(&self) -> String {
        if !self.enabled {
            return "metrics: off (/metrics answers 404)".to_owned();
        }
        let whom = if self.allow.is_empty() {
            "loopback clients only".to_owned()
        } else {
            format!("loopback and {}", self.allow.join(", "))
        };
        match &self.listen {
            Some(l) => format!("metrics: /metrics on its own listener {l}, to {whom}"),
            None => format!("metrics: /metrics on the main listener, to {whom}"),
        }
    }
}

// issue 15 (wechat notifications): the `[wechat]` section.
/// `[wechat]` (docs/CONFIGURATION.md): template messages to followers of
/// the official account whose AppID and secret are `web.wechat_appid` /
/// `web.wechat_secret_file`, and its message-server endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WechatConfig {
    /// Run the sender on this node (several nodes may: rows are leased).
    pub notify: bool,
    /// File holding the message-server token set in the official account's
    /// console; unset: no `/wechat/events` endpoint (404).
    pub event_token_file: Option<PathBuf>,
    /// Time between sender passes.
    pub interval_ms: u64,
    /// Rows per pass.
    pub batch: u32,
    /// A claim's lease.
    pub lease_s: u64,
    /// First retry delay after an error (doubles per attempt).
    pub backoff_base_s: u64,
    /// Longest retry delay.
    pub backoff_max_s: u64,
    /// A message not sent this long after its event fails (counted).
    pub give_up_after_s: u64,
    /// Template ids per message kind (unset: that kind is in-app only).
    pub templates: WechatTemplates,
}

/// `[wechat.templates]`: template ids chosen in the official account's
/// console, per message kind.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WechatTemplates {
    /// Purchase delivered (`thing1` room, `thing2` what, `phrase3` status, `time4`).
    pub delivered: Option<String>,
    /// Low balance (`thing1` room, `thing2` remaining, `thing3` days left, `time4`).
    pub low_balance: Option<String>,
    /// Power cut for balance (`thing1` room, `thing2` what, `thing3` what to do, `time4`).
    pub power_cut: Option<String>,
}

impl Default for WechatConfig {
    fn default() -> Self {
        Self {
            notify: true,
            event_token_file: None,
            interval_ms: 5_000,
            batch: 50,
            lease_s: 60,
            backoff_base_s: 30,
            backoff_max_s: 1_800,
            give_up_after_s: 12 * 3_600,
            templates: WechatTemplates::default(),
        }
    }
}

impl WechatConfig {
    fn validate(&self) -> anyhow::Result<()> {
        let ranges: [(&str, u64, u64, u64); 6] = [
            ("interval_ms", self.interval_ms, 200, 600_000),
            ("batch", self.batch.into(), 1, 1_000),
            ("lease_s", self.lease_s, 10, 3_600),
            ("backoff_base_s", self.backoff_base_s, 1, 3_600),
            (
                "backoff_max_s",
                self.backoff_max_s,
                self.backoff_base_s,
                86_400,
            ),
            ("give_up_after_s", self.give_up_after_s, 60, 7 * 86_400),
        ];
        for (key, value, min, max) in ranges {
            anyhow::ensure!(
                (min..=max).contains(&value),
                "wechat.{key}: must be {min}..={max}, got {value}"
            );
        }
        Ok(())
    }

    /// The message-server token, read from its file.
    pub fn event_token(&self) -> anyhow::Result<Option<String>> {
        let Some(file) = &self.event_token_file else {
            return Ok(None);
        };
        let token = String::from_utf8(read_secret(file, "wechat.event_token_file")?)
            .context("wechat.event_token_file: not UTF-8")?
            .trim()
            .to_owned();
        anyhow::ensure!(
            !token.is_empty() && token.len() <= 64,
            "wechat.event_token_file: the token must be 1..=64 characters"
        );
        Ok(Some(token))
    }

    /// The sender's settings.
    pub fn sender(
        &self,
        tz: &domain::time::CampusTz,
        public_url: &str,
    ) -> service::wechat_notify::SenderSettings {
        let templates = service::wechat_notify::Templates {
            delivered: self.templates.delivered.clone(),
            low_balance: self.templates.low_balance.clone(),
            power_cut: self.templates.power_cut.clone(),
        };
        let mut s = service::wechat_notify::SenderSettings::new(templates, tz.clone());
        s.lease = std::time::Duration::from_secs(self.lease_s);
        s.batch = i64::from(self.batch);
        s.backoff_base = std::time::Duration::from_secs(self.backoff_base_s);
        s.backoff_max = std::time::Duration::from_secs(self.backoff_max_s);
        s.give_up_after = std::time::Duration::from_secs(self.give_up_after_s);
        s.url = Some(format!("{}/", public_url.trim_end_matches('/')));
        s
    }
}
// end issue 15 (wechat notifications)

// issue 16 item 4 (retention): the `[retention]` section.
/// `[retention]` (docs/CONFIGURATION.md, docs/OPERATIONS.md "Data
/// retention"): how long the rows that grow without bound are kept. Daily
/// usage, orders, the ledger and the audit log are kept forever.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Run the pruning worker on this node (safe on several nodes at once).
    pub enabled: bool,
    /// How often the worker runs a pass.
    pub interval_s: u64,
    /// Raw hourly readings, days (the first and last of each meter are kept).
    pub readings_days: u32,
    /// Meter events not about an order (trips, offline spells), days.
    pub events_days: u32,
    /// Done jobs other than deliveries, days.
    pub jobs_days: u32,
    /// Throttle rows (bind attempts, lookups, staff logins), days.
    pub attempts_days: u32,
    /// Idempotency keys of the JSON API, days.
    pub idempotency_days: u32,
    /// Most rows one delete statement removes.
    pub batch_rows: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        let p = store::retention::Policy::default();
        Self {
            enabled: true,
            interval_s: 3600,
            readings_days: p.readings_days,
            events_days: p.events_days,
            jobs_days: p.jobs_days,
            attempts_days: p.attempts_days,
            idempotency_days: p.idempotency_days,
            batch_rows: u32::try_from(p.batch_rows).unwrap_or(5000),
        }
    }
}

impl RetentionConfig {
    fn validate(&self) -> anyhow::Result<()> {
        let ranges: [(&str, u64, u64, u64); 7] = [
            ("interval_s", self.interval_s, 60, 86_400),
            ("readings_days", self.readings_days.into(), 7, 36_500),
            ("events_days", self.events_days.into(), 30, 36_500),
            ("jobs_days", self.jobs_days.into(), 1, 36_500),
            // The longest throttle window (binding: 30 days) must stay whole.
            ("attempts_days", self.attempts_days.into(), 31, 36_500),
            ("idempotency_days", self.idempotency_days.into(), 1, 36_500),
            ("batch_rows", self.batch_rows.into(), 100, 50_000),
        ];
        for (key, value, min, max) in ranges {
            anyhow::ensure!(
                (min..=max).contains(&value),
                "retention.{key}: must be {min}..={max}, got {value}"
            );
        }
        Ok(())
    }

    /// The store's policy; staff sessions die with the console's timeouts.
    pub fn policy(&self, web: &WebConfig) -> store::retention::Policy {
        let staff = web.staff();
        store::retention::Policy {
            readings_days: self.readings_days,
            events_days: self.events_days,
            jobs_days: self.jobs_days,
            attempts_days: self.attempts_days,
            idempotency_days: self.idempotency_days,
            staff_idle_ms: staff.idle_timeout_ms,
            staff_absolute_ms: staff.absolute_timeout_ms,
            batch_rows: i64::from(self.batch_rows),
        }
    }
}
// end issue 16 item 4 (retention)

/// `[web]`: the student pages. Secrets are file paths, never values.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Absolute lifetime of a student session.
    pub session_ttl_s: u64,
    /// The official account's AppID for web authorization (usually the same
    /// as `[payment.wechat] appid`); unset: no WeChat login.
    pub wechat_appid: Option<String>,
    /// File holding the official account's AppSecret.
    pub wechat_secret_file: Option<PathBuf>,
    /// Base URL of the WeChat API (a mock's in tests).
    pub wechat_api_base_url: String,
    /// WeChat's authorize endpoint (a mock's in tests).
    pub wechat_authorize_url: String,
    /// A request head (and the wait for the next one on a kept-alive
    /// connection) must arrive within this, or the connection is closed.
    pub header_read_timeout_ms: u64,
    /// Most HTTP connections open at once.
    pub connections_max: usize,
    /// Most HTTP connections open at once from one IP address.
    pub connections_per_ip_max: usize,
    /// Addresses of the reverse proxies whose `X-Forwarded-For` is believed
    /// (e.g. `["127.0.0.1"]` behind a local nginx); empty: never read.
    pub trusted_proxies: Vec<String>,
    /// A staff console session ends after this long without a request.
    pub staff_idle_timeout_s: u64,
    /// A staff console session ends this long after login, however busy.
    pub staff_absolute_timeout_s: u64,
}

/// Longest session lifetime accepted: 30 days.
const SESSION_TTL_S_MAX: u64 = 30 * 24 * 3600;

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            session_ttl_s: u64::try_from(web::session::SESSION_TTL_MS_DEFAULT / 1000)
                .unwrap_or(604_800),
            wechat_appid: None,
            wechat_secret_file: None,
            wechat_api_base_url: "https://api.weixin.qq.com".to_owned(),
            wechat_authorize_url: "https://open.weixin.qq.com/connect/oauth2/authorize".to_owned(),
            header_read_timeout_ms: 5000,
            connections_max: 1024,
            connections_per_ip_max: 64,
            trusted_proxies: Vec::new(),
            staff_idle_timeout_s: u64::try_from(web::staff::IDLE_TIMEOUT_MS_DEFAULT / 1000)
                .unwrap_or(1800),
            staff_absolute_timeout_s: u64::try_from(web::staff::ABSOLUTE_TIMEOUT_MS_DEFAULT / 1000)
                .unwrap_or(43_200),
        }
    }
}

impl WebConfig {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (60..=SESSION_TTL_S_MAX).contains(&self.session_ttl_s),
            "web.session_ttl_s: must be 60..={SESSION_TTL_S_MAX}"
        );
        anyhow::ensure!(
            self.wechat_appid.is_some() == self.wechat_secret_file.is_some(),
            "web.wechat_appid and web.wechat_secret_file go together"
        );
        anyhow::ensure!(
            (500..=60_000).contains(&self.header_read_timeout_ms),
            "web.header_read_timeout_ms: must be 500..=60000"
        );
        anyhow::ensure!(
            (1..=100_000).contains(&self.connections_max),
            "web.connections_max: must be 1..=100000"
        );
        anyhow::ensure!(
            (1..=self.connections_max).contains(&self.connections_per_ip_max),
            "web.connections_per_ip_max: must be 1..=web.connections_max"
        );
        self.trusted_proxy_addrs()?;
        anyhow::ensure!(
            (60..=7 * 24 * 3600).contains(&self.staff_absolute_timeout_s),
            "web.staff_absolute_timeout_s: must be 60..=604800"
        );
        anyhow::ensure!(
            (60..=self.staff_absolute_timeout_s).contains(&self.staff_idle_timeout_s),
            "web.staff_idle_timeout_s: must be 60..=web.staff_absolute_timeout_s"
        );
        Ok(())
    }

    /// The staff console's session timeouts.
    pub fn staff(&self) -> web::staff::StaffSettings {
        web::staff::StaffSettings {
            idle_timeout_ms: i64::try_from(self.staff_idle_timeout_s.saturating_mul(1000))
                .unwrap_or(i64::MAX),
            absolute_timeout_ms: i64::try_from(self.staff_absolute_timeout_s.saturating_mul(1000))
                .unwrap_or(i64::MAX),
            clock: web::staff::Clock::system(),
        }
    }

    /// The page settings' WeChat login, reading the secret file.
    pub fn wechat_oauth(&self) -> anyhow::Result<Option<web::WechatOAuth>> {
        let (Some(appid), Some(file)) = (&self.wechat_appid, &self.wechat_secret_file) else {
            return Ok(None);
        };
        let secret = String::from_utf8(read_secret(file, "web.wechat_secret_file")?)
            .context("web.wechat_secret_file: not UTF-8")?
            .trim()
            .to_owned();
        let oauth = web::WechatOAuth::new(
            appid.clone(),
            secret,
            self.wechat_api_base_url.clone(),
            self.wechat_authorize_url.clone(),
        )
        .context("web.wechat_appid: cannot build the WeChat client")?;
        Ok(Some(oauth))
    }

    /// `trusted_proxies` parsed; an entry that is not an IP address is an
    /// error naming it.
    fn trusted_proxy_addrs(&self) -> anyhow::Result<Vec<std::net::IpAddr>> {
        self.trusted_proxies
            .iter()
            .map(|a| {
                a.trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("web.trusted_proxies: '{a}' is not an IP address"))
            })
            .collect()
    }

    /// Timeouts, connection caps and trusted proxies of the HTTP server
    /// (validated at load: an unparsable proxy never gets here).
    pub fn limits(&self) -> web::ServeLimits {
        web::ServeLimits {
            header_read_timeout: std::time::Duration::from_millis(self.header_read_timeout_ms),
            connections_max: self.connections_max,
            connections_per_ip_max: self.connections_per_ip_max,
            trusted_proxies: self.trusted_proxy_addrs().unwrap_or_default().into(),
        }
    }

    /// Session lifetime in milliseconds.
    pub fn session_ttl_ms(&self) -> i64 {
        i64::try_from(self.session_ttl_s.saturating_mul(1000)).unwrap_or(i64::MAX)
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

/// Database pool settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Most pooled connections.
    pub connections_max: u32,
    /// SQLite busy timeout.
    pub busy_timeout_ms: u64,
    /// Wait for a pooled connection.
    pub acquire_timeout_ms: u64,
}

/// `[headend]` (docs/CONFIGURATION.md): whether this process runs the
/// head-end, and the head-end's own settings, deserialized straight into
/// [`headend::Config`] (one type, one set of defaults, one validation).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HeadendConfig {
    /// Run the head-end in this process (off for a web-only node).
    pub enabled: bool,
    /// Everything else; unknown keys are refused by `headend::Config`.
    #[serde(flatten)]
    pub settings: headend::Config,
}

impl HeadendConfig {
    /// The head-end's configuration, with the campus time zone.
    pub fn to_headend(&self, time_zone: &domain::time::CampusTz) -> headend::Config {
        headend::Config {
            time_zone: time_zone.clone(),
            ..self.settings.clone()
        }
    }
}

/// Keys that were removed, and where their setting lives now. An old file
/// (or environment) that still sets one is refused with this message, not
/// silently ignored: its value would otherwise stop having any effect.
const REMOVED_KEYS: [(&str, &str); 1] = [(
    "headend.delivery_window_ms",
    "the delivery window is set once, as payment.delivery_window_s (seconds; default 1800)",
)];

/// Built-in simulator settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorConfig {
    /// First TCP port of the simulated gateways (gateway i listens on base + i).
    pub base_port: u16,
    /// Host the simulated gateways listen on.
    pub host: String,
}

/// Which payment provider takes the students' money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentProviderKind {
    /// No online payments on this node (counter sales still work).
    None,
    /// The built-in WeChat Pay emulation with published keys: demo only.
    Sandbox,
    /// The real WeChat Pay API v3 (`[payment.wechat]`).
    Wechat,
}

/// `[payment]`: see docs/CONFIGURATION.md. Secrets are file paths, never values.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentConfig {
    /// `wechat`, `none` or `sandbox`; unset: the sandbox under `dormwatt
    /// demo`, and no payment side (with a message naming what to
    /// configure) under `dormwatt serve`.
    pub provider: Option<PaymentProviderKind>,
    /// Where the sandbox listens (its own listener, never the application's);
    /// unset: the IP of `listen` and a free port.
    pub sandbox_listen: Option<String>,
    /// Let `production = true` run with the sandbox (a staging server).
    pub allow_sandbox_in_production: bool,
    /// The notify URL given to WeChat; default: `public_url` + `/pay/wechat/notify`.
    pub notify_url: Option<String>,
    /// File holding the bearer token of the counter-sales and staff API;
    /// unset: that API refuses every call.
    pub counter_token_file: Option<PathBuf>,
    /// Campus-wide maximum kWh per order (each area may be stricter).
    pub order_kwh_max: u32,
    /// Shown first in the payer's WeChat bill.
    pub description_prefix: String,
    /// WeChat stops accepting a payment this long before our 2-hour expiry.
    pub time_expire_margin_s: u64,
    /// Unpaid orders older than this with no notification are queried.
    pub reconcile_after_s: u64,
    /// A charging order not confirmed by the meter within this becomes
    /// delayed (the one delivery-window setting; at least 60).
    pub delivery_window_s: i64,
    /// How often the payment workers run.
    pub worker_interval_s: u64,
    /// Compare each day's trade bill with our orders (after 10:00 Beijing).
    pub bill_reconciliation: bool,
    /// The merchant, when `provider = "wechat"`.
    pub wechat: WechatPaySection,
}

/// What `serve`/`demo` runs on the payment side ([`PaymentConfig::resolve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentSide {
    /// `provider = "none"`: no online payments (counter sales still work).
    None,
    /// `serve` without a merchant: no online payments, and say what to configure.
    Refused,
    /// The sandbox on its own listener; `opted_in`: under `serve`, by an
    /// explicit `provider = "sandbox"` (warned about loudly).
    Sandbox {
        /// Explicitly configured outside `demo`.
        opted_in: bool,
    },
    /// The real WeChat Pay.
    Wechat,
}

/// Why `serve` runs no payment side, and what to configure.
pub const PAYMENT_REFUSED: &str = "no merchant is configured, so this server takes no online payments. \
To take WeChat payments set payment.provider = \"wechat\" and payment.wechat.appid, \
payment.wechat.mchid, payment.wechat.merchant_serial_no, payment.wechat.merchant_key_file, \
payment.wechat.api_v3_key_file and payment.wechat.public_key_id + payment.wechat.public_key_file \
(or payment.wechat.platform_certificate_files); set payment.provider = \"none\" to run without \
online payments on purpose. The payment sandbox runs only under `dormwatt demo` or with an \
explicit payment.provider = \"sandbox\" (DORMWATT_PAYMENT__PROVIDER=sandbox), never with real money.";

/// Printed (and logged) when `serve` runs the sandbox by explicit opt-in.
#[cfg(feature = "sandbox")]
pub const SANDBOX_WARNING: &str = "PAYMENT SANDBOX ENABLED (payment.provider = \"sandbox\"): its keys are \
public and its admin routes mark any order paid without money. Test and staging only — never with \
real students.";

/// `[payment.wechat]`: a direct (直连) merchant's identity and key files.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WechatPaySection {
    /// The service account's AppID bound to the merchant.
    pub appid: String,
    /// Merchant id.
    pub mchid: String,
    /// Serial of the merchant API certificate (upper-case hex).
    pub merchant_serial_no: String,
    /// `apiclient_key.pem` (PKCS#8).
    pub merchant_key_file: Option<PathBuf>,
    /// File holding the 32-byte APIv3 key.
    pub api_v3_key_file: Option<PathBuf>,
    /// `PUB_KEY_ID_…` of the WeChat Pay public key (public-key mode).
    pub public_key_id: String,
    /// The WeChat Pay public key (`pub_key.pem`, SPKI).
    pub public_key_file: Option<PathBuf>,
    /// Platform certificates (older merchants; both modes may be configured).
    pub platform_certificate_files: Vec<PathBuf>,
    /// API base; default `https://api.mch.weixin.qq.com`.
    pub api_base_url: Option<String>,
    /// Whole-request timeout of API calls.
    pub request_timeout_ms: u64,
}

impl Default for PaymentConfig {
    fn default() -> Self {
        Self {
            provider: None,
            sandbox_listen: None,
            allow_sandbox_in_production: false,
            notify_url: None,
            counter_token_file: None,
            order_kwh_max: 500,
            description_prefix: "宿舍电费".to_owned(),
            time_expire_margin_s: 300,
            reconcile_after_s: 180,
            delivery_window_s: i64::try_from(service::DELIVERY_WINDOW_DEFAULT.as_secs())
                .unwrap_or(i64::MAX),
            worker_interval_s: 30,
            bill_reconciliation: true,
            wechat: WechatPaySection {
                request_timeout_ms: 10_000,
                ..WechatPaySection::default()
            },
        }
    }
}

impl PaymentConfig {
    fn validate(&self, production: bool) -> anyhow::Result<()> {
        anyhow::ensure!(
            !(production
                && self.provider == Some(PaymentProviderKind::Sandbox)
                && !self.allow_sandbox_in_production),
            "payment.provider: the sandbox's keys are public, so anyone could forge payments; \
             set provider = \"wechat\" for production (or payment.allow_sandbox_in_production = true \
             for a staging server)"
        );
        anyhow::ensure!(
            (1..=100_000).contains(&self.order_kwh_max),
            "payment.order_kwh_max: must be 1..=100000"
        );
        anyhow::ensure!(
            self.time_expire_margin_s >= 60 && self.time_expire_margin_s <= 3600,
            "payment.time_expire_margin_s: must be 60..=3600"
        );
        anyhow::ensure!(
            self.worker_interval_s >= 1 && self.worker_interval_s <= 3600,
            "payment.worker_interval_s: must be 1..=3600"
        );
        self.delivery_window()?;
        if let Some(l) = &self.sandbox_listen {
            l.parse::<std::net::SocketAddr>().with_context(|| {
                format!("payment.sandbox_listen: '{l}' is not an address like 127.0.0.1:8081")
            })?;
        }
        if self.provider == Some(PaymentProviderKind::Wechat) {
            let w = &self.wechat;
            for (key, value) in [
                ("appid", &w.appid),
                ("mchid", &w.mchid),
                ("merchant_serial_no", &w.merchant_serial_no),
            ] {
                anyhow::ensure!(!value.trim().is_empty(), "payment.wechat.{key}: required");
            }
            anyhow::ensure!(
                w.merchant_key_file.is_some(),
                "payment.wechat.merchant_key_file: required"
            );
            anyhow::ensure!(
                w.api_v3_key_file.is_some(),
                "payment.wechat.api_v3_key_file: required"
            );
            anyhow::ensure!(
                w.public_key_file.is_some() || !w.platform_certificate_files.is_empty(),
                "payment.wechat: give public_key_id + public_key_file or platform_certificate_files"
            );
        }
        Ok(())
    }
}

impl PaymentConfig {
    /// The delivery window, validated (the only check of that setting).
    pub fn delivery_window(&self) -> anyhow::Result<service::DeliveryWindow> {
        service::DeliveryWindow::from_secs(self.delivery_window_s)
            .map_err(|e| anyhow::anyhow!("payment.delivery_window_s: {e}"))
    }

    /// The web crate's payment settings (reads the counter token file).
    pub fn settings(&self) -> anyhow::Result<web::payments::PaymentSettings> {
        let mut s = web::payments::PaymentSettings::new(&self.wechat.appid, &self.wechat.mchid);
        s.description_prefix.clone_from(&self.description_prefix);
        s.order_kwh_max = self.order_kwh_max;
        s.time_expire_margin = std::time::Duration::from_secs(self.time_expire_margin_s);
        s.reconcile_after = std::time::Duration::from_secs(self.reconcile_after_s);
        s.worker_interval = std::time::Duration::from_secs(self.worker_interval_s);
        s.bill_reconciliation = self.bill_reconciliation;
        if let Some(path) = &self.counter_token_file {
            let token = read_secret(path, "payment.counter_token_file")?;
            let token = String::from_utf8(token)
                .map_err(|_| anyhow::anyhow!("payment.counter_token_file: not UTF-8"))?;
            let token = token.trim();
            anyhow::ensure!(
                token.len() >= 16,
                "payment.counter_token_file: the token must have at least 16 characters"
            );
            s.counter_token = Some(token.to_owned());
        }
        Ok(s)
    }

    /// Which provider this process runs: what is configured, else the
    /// sandbox for `dormwatt demo` and nothing (refused) for `dormwatt serve`.
    pub fn resolve(&self, demo: bool) -> PaymentSide {
        match (self.provider, demo) {
            (Some(PaymentProviderKind::Wechat), _) => PaymentSide::Wechat,
            (Some(PaymentProviderKind::None), _) => PaymentSide::None,
            (Some(PaymentProviderKind::Sandbox), demo) => PaymentSide::Sandbox { opted_in: !demo },
            (None, true) => PaymentSide::Sandbox { opted_in: false },
            (None, false) => PaymentSide::Refused,
        }
    }

    /// The notify URL: `notify_url`, else `public_url` + the notify path.
    pub fn notify_url(&self, public_url: &str) -> String {
        self.notify_url.clone().unwrap_or_else(|| {
            format!(
                "{}{}",
                public_url.trim_end_matches('/'),
                web::payments::NOTIFY_PATH
            )
        })
    }

    /// The sandbox's address: `sandbox_listen`, else `listen`'s IP and a free port.
    #[cfg(feature = "sandbox")]
    pub fn sandbox_addr(&self, listen: std::net::SocketAddr) -> std::net::SocketAddr {
        self.sandbox_listen
            .as_deref()
            .and_then(|l| l.parse().ok())
            .unwrap_or_else(|| std::net::SocketAddr::new(listen.ip(), 0))
    }

    /// The sandbox provider: the demo sandbox (its router is served by the
    /// caller on `sandbox_addr`, the address it was bound to) and a client
    /// for it. The cashier link is the sandbox's address as a browser sees
    /// it: `public_url`'s host when the sandbox listens on a wildcard address.
    #[cfg(feature = "sandbox")]
    pub fn build_sandbox(
        &self,
        public_url: &str,
        sandbox_addr: std::net::SocketAddr,
    ) -> anyhow::Result<web::payments::Payments> {
        let mut own = sandbox_addr;
        if own.ip().is_unspecified() {
            own.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let api_base = format!("http://{own}");
        let browser_base = if sandbox_addr.ip().is_unspecified() {
            let mut u = reqwest::Url::parse(public_url)
                .with_context(|| format!("public_url: '{public_url}' is not a URL"))?;
            u.set_scheme("http")
                .map_err(|()| anyhow::anyhow!("public_url: '{public_url}' has no http host"))?;
            u.set_port(Some(sandbox_addr.port()))
                .map_err(|()| anyhow::anyhow!("public_url: '{public_url}' has no host"))?;
            u.set_path("");
            u.as_str().trim_end_matches('/').to_owned()
        } else {
            api_base.clone()
        };
        let mut config = pay::sandbox::SandboxConfig::demo();
        config.merchant_base_url = Some(public_url.trim_end_matches('/').to_owned());
        let payments = web::payments::Payments::sandbox_with_cashier(
            pay::Sandbox::new(config),
            &api_base,
            &browser_base,
            &self.notify_url(public_url),
            self.settings()?,
        )
        .context("payment sandbox")?;
        Ok(payments)
    }

    /// The real WeChat Pay provider (`[payment.wechat]`).
    pub fn build_wechat(&self, public_url: &str) -> anyhow::Result<web::payments::Payments> {
        let config = self.wechat_pay_config(&self.notify_url(public_url))?;
        let client = pay::WechatPayClient::new(config).context("payment.wechat")?;
        Ok(web::payments::Payments::new(
            std::sync::Arc::new(client),
            self.settings()?,
        ))
    }

    fn wechat_pay_config(&self, notify_url: &str) -> anyhow::Result<pay::WechatPayConfig> {
        let w = &self.wechat;
        let merchant_key = w.merchant_key()?;
        let api_v3_key = w.api_v3_key()?;
        let mut keys = pay::WechatPayKeys::default();
        if let Some(key) = w.public_key()? {
            keys.set_public_key(&w.public_key_id, key);
        }
        for p in &w.platform_certificate_files {
            keys.add_certificate(WechatPaySection::platform_certificate(p)?);
        }
        Ok(pay::WechatPayConfig {
            appid: w.appid.clone(),
            mchid: w.mchid.clone(),
            merchant_key,
            merchant_serial_no: w.merchant_serial_no.clone(),
            api_v3_key,
            wechatpay_keys: keys,
            notify_url: notify_url.to_owned(),
            refund_notify_url: Some(notify_url.to_owned()),
            api_base_url: w
                .api_base_url
                .clone()
                .unwrap_or_else(|| pay::PRODUCTION_API_BASE_URL.to_owned()),
            cashier_url: None,
            user_agent: pay::WechatPayConfig::DEFAULT_USER_AGENT.to_owned(),
            request_timeout: std::time::Duration::from_millis(w.request_timeout_ms.max(1000)),
            connect_timeout: pay::WechatPayConfig::DEFAULT_CONNECT_TIMEOUT,
        })
    }
}

impl WechatPaySection {
    /// The merchant's private key (`merchant_key_file`).
    pub fn merchant_key(&self) -> anyhow::Result<pay::MerchantKey> {
        let text = pem_file(self.merchant_key_file.as_deref(), "merchant_key_file")?;
        pay::MerchantKey::from_pkcs8_pem(&text)
            .map_err(|e| anyhow::anyhow!("payment.wechat.merchant_key_file: {e}"))
    }

    /// The APIv3 key (`api_v3_key_file`).
    pub fn api_v3_key(&self) -> anyhow::Result<pay::ApiV3Key> {
        let v3 = wechat_file(self.api_v3_key_file.as_deref(), "api_v3_key_file")?;
        pay::ApiV3Key::new(v3.trim_ascii())
            .map_err(|e| anyhow::anyhow!("payment.wechat.api_v3_key_file: {e}"))
    }

    /// The WeChat Pay public key, when `public_key_file` is set.
    pub fn public_key(&self) -> anyhow::Result<Option<pay::RsaPublicKey>> {
        if self.public_key_file.is_none() {
            return Ok(None);
        }
        anyhow::ensure!(
            self.public_key_id.starts_with("PUB_KEY_ID_"),
            "payment.wechat.public_key_id: expected PUB_KEY_ID_…"
        );
        let text = pem_file(self.public_key_file.as_deref(), "public_key_file")?;
        let key = pay::RsaPublicKey::from_pem(&text)
            .map_err(|e| anyhow::anyhow!("payment.wechat.public_key_file: {e}"))?;
        Ok(Some(key))
    }

    /// One of `platform_certificate_files`.
    pub fn platform_certificate(p: &Path) -> anyhow::Result<pay::PlatformCertificate> {
        let text = pem_file(Some(p), "platform_certificate_files")?;
        pay::PlatformCertificate::from_pem(&text).map_err(|e| {
            anyhow::anyhow!(
                "payment.wechat.platform_certificate_files ({}): {e}",
                p.display()
            )
        })
    }
}

/// The bytes of the `[payment.wechat]` file `key`, which is required.
fn wechat_file(p: Option<&Path>, key: &str) -> anyhow::Result<Vec<u8>> {
    let p = p.ok_or_else(|| anyhow::anyhow!("payment.wechat.{key}: required"))?;
    read_secret(p, &format!("payment.wechat.{key}"))
}

/// [`wechat_file`] as PEM text.
pub(crate) fn pem_file(p: Option<&Path>, key: &str) -> anyhow::Result<String> {
    String::from_utf8(wechat_file(p, key)?)
        .map_err(|_| anyhow::anyhow!("payment.wechat.{key}: not PEM text"))
}

/// Most bytes of a key or token file (PEM keys are a few KiB).
const SECRET_FILE_BYTES_MAX: u64 = 64 * 1024;

/// Reads a secret file, naming the key (never the content) on error.
fn read_secret(path: &Path, key: &str) -> anyhow::Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("{key}: cannot read {}", path.display()))?
        .len();
    anyhow::ensure!(
        len <= SECRET_FILE_BYTES_MAX,
        "{key}: {} is larger than {SECRET_FILE_BYTES_MAX} bytes",
        path.display()
    );
    std::fs::read(path).with_context(|| format!("{key}: cannot read {}", path.display()))
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "sqlite://dormwatt.db".to_owned(),
            listen: "127.0.0.1:8080".to_owned(),
            public_url: None,
            time_zone: domain::time::CampusTz::default(),
            log_format: LogFormat::Text,
            production: false,
            database: DatabaseConfig::default(),
            headend: HeadendConfig::default(),
            simulator: SimulatorConfig::default(),
            payment: PaymentConfig::default(),
            web: WebConfig::default(),
            retention: RetentionConfig::default(),
            metrics: MetricsConfig::default(),
            wechat: WechatConfig::default(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        let d = store::DbOptions::default();
        Self {
            connections_max: d.connections_max,
            busy_timeout_ms: d.busy_timeout_ms,
            acquire_timeout_ms: d.acquire_timeout_ms,
        }
    }
}

impl Default for HeadendConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            settings: headend::Config::default(),
        }
    }
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        let a = store::campus::GatewayAddressing::default();
        Self {
            base_port: a.base_port,
            host: a.host,
        }
    }
}

impl fmt::Debug for Config {
    /// The database URL may carry a password: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &store::redact_url(&self.database_url))
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("time_zone", &self.time_zone)
            .field("log_format", &self.log_format)
            .field("production", &self.production)
            .field("database", &self.database)
            .field("headend", &self.headend)
            .field("simulator", &self.simulator)
            .field("payment", &self.payment)
            .field("web", &self.web)
            .field("retention", &self.retention)
            .finish()
    }
}

impl Config {
    /// Loads defaults ← `file` (if given, it must exist) ← environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            anyhow::ensure!(
                path.exists(),
                "configuration file {} does not exist",
                path.display()
            );
            fig = fig.merge(Toml::file(path));
        }
        fig = fig.merge(
            Env::prefixed("DORMWATT_")
                .filter(|k| {
                    let k = k.as_str().to_ascii_lowercase();
                    // `DORMWATT_TEST_*` belong to the test harness (store::testing, tests).
                    !(NOT_CONFIG_ENV.contains(&k.as_str()) || k.starts_with("test_"))
                })
                .split("__"),
        );
        for (key, instead) in REMOVED_KEYS {
            if fig.find_value(key).is_ok() {
                anyhow::bail!(
                    "invalid configuration: {key} is no longer a setting: {instead}; remove it \
                     (from the file, or DORMWATT_{} from the environment)",
                    key.to_ascii_uppercase().replace('.', "__")
                );
            }
        }
        refuse_unknown_headend_keys(&fig)?;
        let cfg: Config = fig
            .extract()
            .map_err(describe)
            .context("invalid configuration")?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.web.validate()?;
        self.retention.validate()?;
        self.metrics.validate(
            &self.listen,
            &[
                (
                    "payment.sandbox_listen",
                    self.payment.sandbox_listen.as_deref(),
                ),
                ("headend.listen", self.headend.settings.listen.as_deref()),
            ],
        )?;
        self.wechat.validate()?;
        self.listen
            .parse::<std::net::SocketAddr>()
            .with_context(|| {
                format!(
                    "listen: '{}' is not an address like 127.0.0.1:8080",
                    self.listen
                )
            })?;
        anyhow::ensure!(
            self.database_url.starts_with("sqlite:")
                || self.database_url.starts_with("postgres://")
                || self.database_url.starts_with("postgresql://"),
            "database_url: expected sqlite://path or postgres://…, got '{}'",
            store::redact_url(&self.database_url)
        );
        anyhow::ensure!(
            self.database.connections_max > 0,
            "database.connections_max: must be at least 1"
        );
        self.payment.validate(self.production)?;
        self.headend
            .to_headend(&self.time_zone)
            .validate()
            .map_err(|e| anyhow::anyhow!("headend: {e}"))?;
        Ok(())
    }

    /// Pool options from the configuration.
    pub fn db_options(&self) -> store::DbOptions {
        store::DbOptions {
            connections_max: self.database.connections_max,
            busy_timeout_ms: self.database.busy_timeout_ms,
            acquire_timeout_ms: self.database.acquire_timeout_ms,
        }
    }
}

/// `[headend]` flattens `headend::Config` beside `enabled`, and serde does
/// not refuse unknown keys through a flatten: check them here, against the
/// keys `headend::Config` itself has.
fn refuse_unknown_headend_keys(fig: &Figment) -> anyhow::Result<()> {
    let Ok(value) = fig.find_value("headend") else {
        return Ok(());
    };
    let Some(given) = value.as_dict() else {
        return Ok(());
    };
    let known =
        serde_json::to_value(headend::Config::default()).context("headend::Config serializes")?;
    for key in given.keys() {
        let ok = key == "enabled" || known.get(key).is_some();
        anyhow::ensure!(
            ok,
            "invalid configuration: headend.{key}: unknown key (see docs/CONFIGURATION.md, [headend])"
        );
    }
    Ok(())
}

/// figment's errors name the key path; make every one of them visible.
fn describe(e: figment::Error) -> anyhow::Error {
    let lines: Vec<String> = e
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            if key.is_empty() {
                e.kind.to_string()
            } else {
                format!("{key}: {}", e.kind)
            }
        })
        .collect();
    anyhow::anyhow!(lines.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_and_bad_value_are_named() {
        let dir = std::env::temp_dir().join(format!("dw-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.toml");
        std::fs::write(&p, "listen = \"127.0.0.1:9\"\nbogus_key = 1\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&p)).unwrap_err());
        assert!(e.contains("bogus_key"), "{e}");
        std::fs::write(&p, "[database]\nconnections_max = \"many\"\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&p)).unwrap_err());
        assert!(
            e.contains("database.connections_max") || e.contains("connections_max"),
            "{e}"
        );
        std::fs::write(&p, "listen = \"nowhere\"\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&p)).unwrap_err());
        assert!(e.contains("listen"), "{e}");
        std::fs::write(&p, "listen = \"127.0.0.1:9999\"\n").unwrap();
        assert_eq!(Config::load(Some(&p)).unwrap().listen, "127.0.0.1:9999");
    }

    // issue 16 item 4 (retention)
    #[test]
    fn retention_keys_are_checked_and_reach_the_policy() {
        let dir = std::env::temp_dir().join(format!("dw-cfg-ret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("r.toml");
        for (bad, key) in [
            ("readings_days = 3", "retention.readings_days"),
            ("attempts_days = 7", "retention.attempts_days"),
            ("batch_rows = 1000000", "retention.batch_rows"),
            ("interval_s = 1", "retention.interval_s"),
            ("keep_forever = true", "keep_forever"),
        ] {
            std::fs::write(&p, format!("[retention]\n{bad}\n")).unwrap();
            let e = format!("{:#}", Config::load(Some(&p)).unwrap_err());
            assert!(e.contains(key), "{bad}: {e}");
        }
        std::fs::write(
            &p,
            "[retention]\nreadings_days = 30\nbatch_rows = 2000\n[web]\nstaff_idle_timeout_s = 600\n",
        )
        .unwrap();
        let c = Config::load(Some(&p)).unwrap();
        let policy = c.retention.policy(&c.web);
        assert_eq!(policy.readings_days, 30);
        assert_eq!(policy.batch_rows, 2000);
        assert_eq!(policy.staff_idle_ms, 600_000);
        assert_eq!(policy.events_days, 365);
        assert!(format!("{c:?}").contains("readings_days: 30"));
    }

    #[test]
    fn production_refuses_the_sandbox_unless_allowed() {
        let dir = std::env::temp_dir().join(format!("dw-cfg-pay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("p.toml");
        std::fs::write(&p, "production = true\n[payment]\nprovider = \"sandbox\"\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&p)).unwrap_err());
        assert!(e.contains("payment.provider"), "{e}");
        std::fs::write(
            &p,
            "production = true\n[payment]\nprovider = \"sandbox\"\nallow_sandbox_in_production = true\n",
        )
        .unwrap();
        assert!(Config::load(Some(&p)).is_ok());
        std::fs::write(&p, "[payment]\nprovider = \"wechat\"\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&p)).unwrap_err());
        assert!(e.contains("payment.wechat.appid"), "{e}");
        let token = dir.join("token");
        std::fs::write(&token, "  a-long-enough-counter-token\n").unwrap();
        let pay = PaymentConfig {
            counter_token_file: Some(token),
            ..PaymentConfig::default()
        };
        let s = pay.settings().unwrap();
        assert_eq!(
            s.counter_token.as_deref(),
            Some("a-long-enough-counter-token")
        );
        assert!(
            !format!("{s:?}").contains("a-long-enough"),
            "Debug hides the token"
        );
    }

    #[test]
    fn only_demo_or_an_explicit_opt_in_runs_the_sandbox() {
        let unset = PaymentConfig::default();
        assert_eq!(
            unset.resolve(true),
            PaymentSide::Sandbox { opted_in: false }
        );
        assert_eq!(unset.resolve(false), PaymentSide::Refused);
        for key in [
            "payment.provider = \"wechat\"",
            "payment.wechat.mchid",
            "payment.wechat.api_v3_key_file",
            "DORMWATT_PAYMENT__PROVIDER=sandbox",
        ] {
            assert!(PAYMENT_REFUSED.contains(key), "{key}");
        }
        let sandbox = PaymentConfig {
            provider: Some(PaymentProviderKind::Sandbox),
            ..PaymentConfig::default()
        };
        assert_eq!(
            sandbox.resolve(false),
            PaymentSide::Sandbox { opted_in: true }
        );
        let none = PaymentConfig {
            provider: Some(PaymentProviderKind::None),
            ..PaymentConfig::default()
        };
        assert_eq!(none.resolve(true), PaymentSide::None);
        assert_eq!(
            Config::default().public_url,
            None,
            "derived from the listener"
        );
    }

    #[test]
    fn one_delivery_window_refusing_zero_negative_and_the_old_key() {
        let dir = std::env::temp_dir().join(format!("dw-cfg-dw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("w.toml");
        assert_eq!(
            Config::default().payment.delivery_window().unwrap().get(),
            std::time::Duration::from_secs(1800)
        );
        for bad in ["0", "-5"] {
            std::fs::write(&p, format!("[payment]\ndelivery_window_s = {bad}\n")).unwrap();
            let e = format!("{:#}", Config::load(Some(&p)).unwrap_err());
            assert!(e.contains("payment.delivery_window_s"), "{e}");
            assert!(e.contains("at least 60 seconds"), "{e}");
        }
        std::fs::write(&p, "[payment]\ndelivery_window_s = 600\n").unwrap();
        let c = Config::load(Some(&p)).unwrap();
        assert_eq!(c.payment.delivery_window().unwrap().as_ms(), 600_000);
        // The head-end's old copy of the setting is refused, naming the new key.
        std::fs::write(&p, "[headend]\ndelivery_window_ms = 600000\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&p)).unwrap_err());
        assert!(e.contains("headend.delivery_window_ms"), "{e}");
        assert!(e.contains("payment.delivery_window_s"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn headend_keys_deserialize_into_the_headend_config() {
        let dir = std::env::temp_dir().join(format!("dw-cfg-he-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("h.toml");
        std::fs::write(
            &p,
            "[headend]\nenabled = false\nfrequent_interval_ms = 60000\ndeliver_concurrency = 8\nworker_id = \"node-a\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&p)).unwrap();
        assert!(!c.headend.enabled);
        let h = c.headend.to_headend(&domain::time::CampusTz::default());
        assert_eq!(h.frequent_interval_ms, 60_000);
        assert_eq!(h.deliver_concurrency, 8);
        assert_eq!(h.worker_id, "node-a");
        assert_eq!(h.time_zone.name(), "Asia/Shanghai");
        assert_eq!(h.read_attempts, headend::Config::default().read_attempts);
        std::fs::write(&p, "[headend]\nbogus = 1\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&p)).unwrap_err());
        assert!(e.contains("bogus"), "{e}");
        std::fs::write(&p, "[headend]\ntime_zone = \"UTC\"\n").unwrap();
        assert!(
            Config::load(Some(&p)).is_err(),
            "the time zone is one top-level setting"
        );
        std::fs::write(&p, "time_zone = \"Mars/Olympus_Mons\"\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&p)).unwrap_err());
        assert!(
            e.contains("time_zone") && e.contains("Mars/Olympus_Mons"),
            "an unknown zone is refused at load, naming the key: {e}"
        );
        std::fs::write(&p, "[headend]\nread_attempts = 0\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&p)).unwrap_err());
        assert!(e.contains("read_attempts"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn debug_hides_database_password() {
        let c = Config {
            database_url: "postgres://u:hunter2@h/db".into(),
            ..Config::default()
        };
        let s = format!("{c:?}");
        assert!(!s.contains("hunter2"), "{s}");
    }
}
