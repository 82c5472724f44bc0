//! Connection pools for the two backends and the dispatch macros.

use crate::{Error, Result};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// Pool settings. Explicit sizes and timeouts (never the library defaults),
/// so an operator can see and tune them.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Most connections in the pool.
    pub connections_max: u32,
    /// How long a query waits for SQLite's single writer before failing.
    pub busy_timeout_ms: u64,
    /// How long to wait for a free pooled connection.
    pub acquire_timeout_ms: u64,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            connections_max: 16,
            busy_timeout_ms: 5_000,
            acquire_timeout_ms: 10_000,
        }
    }
}

/// A database handle: one of two concrete sqlx pools. Cheap to clone.
#[derive(Clone, Debug)]
pub enum Db {
    /// SQLite pool.
    Sqlite(SqlitePool),
    /// PostgreSQL pool.
    Postgres(PgPool),
}

/// Runs the same expression against whichever concrete pool a [`Db`] holds;
/// each arm is type-checked for its own backend.
#[macro_export]
#[doc(hidden)]
macro_rules! on_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::Db::Sqlite($pool) => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}

/// A write transaction on either backend.
#[derive(Debug)]
pub enum Tx {
    /// SQLite transaction, started with `BEGIN IMMEDIATE`.
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    /// PostgreSQL transaction.
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// Runs the same expression against the connection of a [`Tx`].
#[macro_export]
#[doc(hidden)]
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::Tx::Sqlite(t) => {
                let $conn = &mut **t;
                $body
            }
            $crate::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}

impl Tx {
    /// Commits the transaction.
    pub async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    /// Which backend this transaction runs on.
    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }
}

/// Fails when `conn` cannot write: a write in a transaction that is rolled
/// back (nothing reaches the file), so it also works on a full disk.
async fn refuse_read_only(conn: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
    use sqlx::Connection as _;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let version: i64 = sqlx::query_scalar("pragma user_version")
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "pragma user_version = {version}"
    )))
    .execute(&mut *tx)
    .await?;
    tx.rollback().await
}

impl Db {
    /// Opens a pool for `url` (`sqlite://path`, `sqlite::memory:` or
    /// `postgres://…`) and checks that the database answers.
    pub async fn connect(url: &str, opts: &DbOptions) -> Result<Db> {
        let acquire = Duration::from_millis(opts.acquire_timeout_ms);
        if url.starts_with("sqlite:") {
            let memory = url.contains(":memory:");
            let conn = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                // WAL lets readers proceed while the single writer commits;
                // FULL makes every commit durable: money is at stake.
                .journal_mode(if memory {
                    SqliteJournalMode::Memory
                } else {
                    SqliteJournalMode::Wal
                })
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_millis(opts.busy_timeout_ms))
                .foreign_keys(true);
            // An in-memory database exists once per connection: keep one.
            let max = if memory {
                1
            } else {
                opts.connections_max.max(1)
            };
            let mut pool = SqlitePoolOptions::new()
                .max_connections(max)
                .acquire_timeout(acquire)
                // A connection whose COMMIT or ROLLBACK failed (e.g. SQLITE_FULL,
                // after which SQLite has already rolled back on its own) keeps a
                // non-zero sqlx transaction depth, and every later `BEGIN` on it
                // fails with "attempted to call begin_with at non-zero
                // transaction depth". Never give such a connection out again.
                .after_release(|conn, _meta| {
                    use sqlx::Connection as _;
                    Box::pin(async move {
                        // The rollback of a dropped transaction is queued on the
                        // connection's worker; a ping runs after it.
                        conn.ping().await?;
                        let clean = !conn.is_in_transaction();
                        if !clean {
                            tracing::warn!(
                                "discarding a SQLite connection left inside a failed transaction"
                            );
                        }
                        Ok(clean)
                    })
                });
            if !memory {
                // SQLite silently opens a file it cannot open for writing
                // read-only, and such a connection stays read-only after the
                // directory is writable again. Refuse it (the pool retries until
                // its acquire timeout), so none ever enters the pool.
                pool = pool.after_connect(|conn, _meta| Box::pin(refuse_read_only(conn)));
            }
            let pool = pool.connect_with(conn).await?;
            Ok(Db::Sqlite(pool))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let conn = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(opts.connections_max.max(1))
                .acquire_timeout(acquire)
                .connect_with(conn)
                .await?;
            Ok(Db::Postgres(pool))
        } else {
            Err(Error::BadUrl(redact_url(url)))
        }
    }

    /// Which backend this handle talks to.
    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Starts a write transaction. On SQLite it begins with `BEGIN
    /// IMMEDIATE`, taking the write lock up front: a deferred transaction
    /// that reads and then writes can fail with SQLITE_BUSY half-way.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Db::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// The highest migration version this binary embeds.
    pub fn known_schema_version(&self) -> i64 {
        self.migrator().iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// The embedded migrations of `backend` as manifest lines
    /// (`version description sha384-hex`), checked against the committed
    /// `migrations/MANIFEST` by a test so that an applied migration is never
    /// edited, renumbered or removed.
    pub fn migration_manifest(backend: Backend) -> String {
        let m = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        let mut out = String::new();
        for mig in m.iter() {
            out.push_str(&format!(
                "{} {} {}\n",
                mig.version,
                mig.description.replace(' ', "_"),
                mig.checksum
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            ));
        }
        out
    }

    fn migrator(&self) -> &'static Migrator {
        match self {
            Db::Sqlite(_) => &SQLITE_MIGRATIONS,
            Db::Postgres(_) => &POSTGRES_MIGRATIONS,
        }
    }

    /// The highest migration version applied in the database, if any.
    pub async fn applied_schema_version(&self) -> Result<Option<i64>> {
        let exists: bool = match self {
            Db::Sqlite(p) => {
                sqlx::query_scalar::<_, i64>(
                    "select count(*) from sqlite_master where type = 'table' and name = '_sqlx_migrations'",
                )
                .fetch_one(p)
                .await?
                    > 0
            }
            Db::Postgres(p) => {
                sqlx::query_scalar::<_, bool>("select to_regclass('_sqlx_migrations') is not null")
                    .fetch_one(p)
                    .await?
            }
        };
        if !exists {
            return Ok(None);
        }
        let v: Option<i64> = on_db!(self, |p| {
            sqlx::query_scalar("select max(version) from _sqlx_migrations where success")
                .fetch_one(p)
                .await?
        });
        Ok(v)
    }

    /// Refuses a database migrated by a newer dormwatt.
    pub async fn check_not_newer(&self) -> Result<()> {
        let known = self.known_schema_version();
        match self.applied_schema_version().await? {
            Some(found) if found > known => Err(Error::NewerSchema { found, known }),
            _ => Ok(()),
        }
    }

    /// Applies the embedded migrations of this backend.
    ///
    /// Migrations are append-only. The one exception in the project's
    /// history is handled here: the covering index for daily usage was
    /// committed as 0002 and renumbered 0003 with the same text. A database
    /// that applied it as 0002 has the row renumbered (same checksum, no
    /// 0003 yet); any other applied migration that this binary does not
    /// embed, or embeds with another checksum, is refused with
    /// [`Error::ForeignMigration`] before anything runs.
    pub async fn migrate(&self) -> Result<()> {
        self.check_not_newer().await?;
        self.renumber_legacy_migrations().await?;
        self.check_applied_are_known().await?;
        match self {
            Db::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await?,
            Db::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await?,
        }
        Ok(())
    }

    /// Applied migrations as (version, description, checksum).
    async fn applied_migrations(&self) -> Result<Vec<(i64, String, Vec<u8>)>> {
        if self.applied_schema_version().await?.is_none() {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, String, Vec<u8>)> = on_db!(self, |p| {
            sqlx::query_as(
                "select version, description, checksum from _sqlx_migrations order by version",
            )
            .fetch_all(p)
            .await?
        });
        Ok(rows)
    }

    /// Renumbers the covering-index migration applied as 0002 before it
    /// became 0003 (identical text, so identical checksum). Guarded: it
    /// changes the row only while it is still 2 with that checksum and no
    /// 3 exists, so two processes migrating at once renumber it once.
    async fn renumber_legacy_migrations(&self) -> Result<()> {
        const OLD: i64 = 2;
        const NEW: i64 = 3;
        let Some(embedded) = self.migrator().iter().find(|m| m.version == NEW) else {
            return Ok(());
        };
        let applied = self.applied_migrations().await?;
        let legacy = applied
            .iter()
            .any(|(v, _, sum)| *v == OLD && sum.as_slice() == embedded.checksum.as_ref());
        if !legacy || applied.iter().any(|(v, _, _)| *v == NEW) {
            return Ok(());
        }
        let sum = embedded.checksum.to_vec();
        let n = on_db!(self, |p| {
            sqlx::query(
                "update _sqlx_migrations set version = $1 where version = $2 and checksum = $3
                 and not exists (select 1 from _sqlx_migrations where version = $1)",
            )
            .bind(NEW)
            .bind(OLD)
            .bind(sum)
            .execute(p)
            .await?
            .rows_affected()
        });
        if n == 1 {
            tracing::info!("migration 0002_daily_usage_cover renumbered 0003 (same text)");
        }
        Ok(())
    }

    /// Refuses a database with an applied migration this binary does not
    /// embed or embeds with another text.
    async fn check_applied_are_known(&self) -> Result<()> {
        for (version, description, sum) in self.applied_migrations().await? {
            let why = match self.migrator().iter().find(|m| m.version == version) {
                None => "does not know",
                Some(m) if m.checksum.as_ref() != sum.as_slice() => "knows with a different text",
                Some(_) => continue,
            };
            return Err(Error::ForeignMigration {
                version,
                description,
                why,
            });
        }
        Ok(())
    }

    /// Whether the database answers a trivial query (reads only; `/readyz`
    /// uses [`Db::check_writable`]).
    pub async fn ping(&self) -> Result<()> {
        on_db!(self, |p| sqlx::query("select 1")
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Whether a write commits (for `/readyz`): a row of `health_probe` is
    /// rewritten in a write transaction. A read alone cannot see a full disk
    /// or a read-only database; see [`Error::storage_fault`] for the cause.
    pub async fn check_writable(&self, now_ms: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, |c| {
            sqlx::query(
            "insert into health_probe (id, probes, at_ms) values (1, 1, $1)
             on conflict (id) do update set probes = health_probe.probes + 1, at_ms = excluded.at_ms"
        )
        .bind(now_ms)
        .execute(c)
        .await
        .map(|_| ())?
        });
        tx.commit().await
    }

    /// Closes the pool, waiting for connections to return.
    pub async fn close(&self) {
        on_db!(self, |p| p.close().await);
    }
}

/// The URL with any password replaced, safe for logs and error messages.
pub fn redact_url(url: &str) -> String {
    // scheme://user:password@host → scheme://user:***@host
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((cred, host)) = rest.split_once('@')
    {
        let user = cred.split_once(':').map_or(cred, |(u, _)| u);
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn migration_trees_agree() {
        let names = |m: &Migrator| {
            m.iter()
                .map(|m| (m.version, m.description.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&SQLITE_MIGRATIONS), names(&POSTGRES_MIGRATIONS));
        assert!(SQLITE_MIGRATIONS.iter().next().is_some());
    }
}
