//! Configuration: built-in defaults, then a TOML file, then `DORMWATT_*`
//! environment variables (env wins), then command-line flags. Unknown keys
//! and malformed values stop startup with a message naming the key.
//! The reference of every key is docs/CONFIGURATION.md.

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

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
    /// Base URL students and WeChat reach this server at.
    pub public_url: String,
    /// IANA time zone of the campus calendar.
    pub time_zone: String,
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

/// Head-end settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeadendConfig {
    /// Run the head-end in this process (off for a web-only node).
    pub enabled: bool,
}

/// Built-in simulator settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorConfig {
    /// First TCP port of the simulated gateways (gateway i listens on base + i).
    pub base_port: u16,
    /// Host the simulated gateways listen on.
    pub host: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "sqlite://dormwatt.db".to_owned(),
            listen: "127.0.0.1:8080".to_owned(),
            public_url: "http://127.0.0.1:8080".to_owned(),
            time_zone: domain::time::DEFAULT_TZ.to_owned(),
            log_format: LogFormat::Text,
            production: false,
            database: DatabaseConfig::default(),
            headend: HeadendConfig::default(),
            simulator: SimulatorConfig::default(),
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
        Self { enabled: true }
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
                .filter(|k| !NOT_CONFIG_ENV.contains(&k.as_str().to_ascii_lowercase().as_str()))
                .split("__"),
        );
        let cfg: Config = fig
            .extract()
            .map_err(describe)
            .context("invalid configuration")?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> anyhow::Result<()> {
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
            jiff::tz::TimeZone::get(&self.time_zone).is_ok(),
            "time_zone: '{}' is not a known IANA time zone",
            self.time_zone
        );
        anyhow::ensure!(
            self.database.connections_max > 0,
            "database.connections_max: must be at least 1"
        );
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
