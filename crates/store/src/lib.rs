//! The only crate that knows SQL. One API over two backends: SQLite (the
//! embedded default) and PostgreSQL (production), chosen by the database URL.
//!
//! Invariant: every query in this crate runs on both backends in the test
//! suite (PostgreSQL when `DORMWATT_TEST_PG_URL` is set, as in CI). Every
//! function that moves money or energy does so inside one transaction that
//! also writes the ledger transfers and the job that follows from it.

// Outside tests a panic is a bug we chose to keep: an `expect` with its
// reason under a local `allow`, or a type that makes the case impossible
// (crates/dormwatt/tests/workspace_lints.rs checks every crate says so).
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod api_keys;
pub mod audit;
/// The live building view of the console (issue 14 item 4).
pub mod building_view;
pub mod campus;
pub mod dashboard;
mod db;
/// The exceptions queue (issue 13 item 5).
pub mod exceptions;
pub mod history;
pub mod idempotency;
pub mod jobs;
pub mod ledger;
pub mod lookup;
pub mod message;
/// A meter's history for its console page (issue 14 item 4).
pub mod meter_history;
/// Staff parameter writes to meters: power limit, malicious load (issue 14 item 6, part 4).
pub mod meter_params;
pub mod meter_reset;
pub mod meters;
// Issue 16 item 1: database-derived gauges of /metrics.
pub mod metrics;
/// Move-out settlement (issue 13 item 6, docs/MOVE-OUT.md).
pub mod moveout;
pub mod nodes;
pub mod notices;
pub mod notify;
pub mod operators;
pub mod orders;
/// Campus policy: price schedule, low-balance threshold (issue 14 item 6).
pub mod policy;
pub mod registry;
/// Staff relay commands across processes (issue 14 item 5).
pub mod relay;
/// Meter replacement: the carried energy and its delivery (issue 14 item 3).
pub mod replace;
/// Staff reports and their aggregate queries (issue 14 item 7).
pub mod reports;
/// Data retention: pruning and table sizes (issue 16 item 4).
pub mod retention;
mod row;
/// No-cut hours and scheduled power-off hours (issue 14 item 6, part 3).
pub mod schedule;
pub mod scratch;
pub mod shifts;
/// Orders for staff: search and story (issue 13 item 4).
pub mod story;
pub mod students;
/// The free monthly allowance and its delivery (issue 14 item 6, E4).
pub mod subsidy;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
/// WeChat template-message outbox, follow state, preferences (issue 15).
pub mod wechat_outbox;

pub use db::{Backend, Db, DbOptions, Tx, redact_url};

/// Errors of the store. Causes are for logs; callers map them to user
/// messages at the edge.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be reached or a query failed.
    #[error("database error: {0}")]
    Sqlx(#[source] sqlx::Error),
    /// Applying migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database was migrated by a newer dormwatt.
    #[error(
        "the database schema is at version {found}, newer than this dormwatt knows ({known}); \
         upgrade dormwatt or point it at another database"
    )]
    NewerSchema {
        /// Highest version applied in the database.
        found: i64,
        /// Highest version this binary embeds.
        known: i64,
    },
    /// The database holds an applied migration this dormwatt does not
    /// embed, or one whose text differs from the embedded one. Migrations
    /// are append-only (docs/ARCHITECTURE.md): this is refused, never
    /// guessed at.
    #[error(
        "the database has migration {version} ({description}) applied, which this dormwatt {why}; \
         it was migrated by a different build: use the dormwatt release that migrated it, or restore a backup"
    )]
    ForeignMigration {
        /// The applied version.
        version: i64,
        /// Its recorded description.
        description: String,
        /// "does not know" / "knows with a different text".
        why: &'static str,
    },
    /// The database URL is not `sqlite://…` or `postgres://…`.
    #[error("unsupported database URL (expected sqlite://path or postgres://…): {0}")]
    BadUrl(String),
    /// A row that must exist does not.
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// The request conflicts with the current state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// An order event its current state does not allow (the same text as a
    /// conflict; the structure is kept for callers that decide on it).
    #[error("conflict: {0}")]
    IllegalTransition(#[from] domain::order::IllegalTransition),
    /// A worker's job lease ran out and another worker took the job: the
    /// change was refused (fencing), and the caller must stop that work.
    #[error("lease lost: {0}")]
    LeaseLost(String),
    /// The stored data broke an invariant (a bug or tampering).
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for Error {
    /// A row that did not decode into its domain types is corrupt data,
    /// not a database failure.
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Decode(source) => match source.downcast::<row::BadValue>() {
                Ok(bad) => Error::Corrupt(bad.0),
                Err(source) => Error::Sqlx(sqlx::Error::Decode(source)),
            },
            e => Error::Sqlx(e),
        }
    }
}

/// What is wrong with the storage under a database, as far as an error shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    /// The disk (or the database's size limit) is full.
    Full,
    /// The database cannot be written (read-only file, filesystem or server).
    ReadOnly,
}

impl Error {
    /// The storage fault behind this error, if it is one: SQLite's
    /// SQLITE_FULL / SQLITE_READONLY (extended codes included), PostgreSQL's
    /// `53100 disk_full` / `25006 read_only_sql_transaction`.
    pub fn storage_fault(&self) -> Option<StorageFault> {
        let Error::Sqlx(sqlx::Error::Database(e)) = self else {
            return None;
        };
        let code = e.code()?;
        if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
            // An extended result code; the primary code is its low byte.
            return match code.parse::<i64>().ok()? & 0xff {
                13 => Some(StorageFault::Full),
                8 => Some(StorageFault::ReadOnly),
                _ => None,
            };
        }
        match code.as_ref() {
            "53100" => Some(StorageFault::Full),
            "25006" => Some(StorageFault::ReadOnly),
            _ => None,
        }
    }
}

/// Result alias of the store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Current unix time in milliseconds. The store takes `now_ms` as an
/// argument everywhere; this is for the binary and tests.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
