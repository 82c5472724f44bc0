//! Fresh databases for tests: a temporary SQLite file always, and a new
//! PostgreSQL database whenever `DORMWATT_TEST_PG_URL` is set (CI sets it).
//! Without it the PostgreSQL half is skipped with a printed notice, so
//! `cargo test` still passes on a laptop. When it is set but the server
//! cannot be used (wrong URL, server down, not PostgreSQL), every function
//! here returns an error, so the tests fail rather than skip.
//!
//! When `DORMWATT_TEST_PG_LOG` names a file, each PostgreSQL test database
//! created appends one line to it; `.ci/run` counts them to show that the
//! PostgreSQL half really ran.

use crate::{Db, DbOptions, Result};
use sqlx::Executor;
use std::sync::atomic::{AtomicU64, Ordering};

/// Environment variable holding the PostgreSQL URL for tests.
pub const PG_URL_ENV: &str = "DORMWATT_TEST_PG_URL";
/// Environment variable naming a file that gets one line per PostgreSQL
/// test database created.
pub const PG_LOG_ENV: &str = "DORMWATT_TEST_PG_LOG";

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique_suffix() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}_{}_{}", std::process::id(), n, t % 1_000_000_000)
}

/// A migrated SQLite database in a new temporary file.
pub async fn sqlite() -> Result<Db> {
    let dir = std::env::temp_dir().join("dormwatt-tests");
    std::fs::create_dir_all(&dir).map_err(|e| crate::Error::Conflict(e.to_string()))?;
    let path = dir.join(format!("t_{}.db", unique_suffix()));
    let db = Db::connect(
        &format!("sqlite://{}", path.display()),
        &DbOptions::default(),
    )
    .await?;
    db.migrate().await?;
    Ok(db)
}

/// The URL of a new, empty PostgreSQL database, or `None` (with a notice on
/// stderr) when no test server is configured.
pub async fn postgres_url() -> Result<Option<String>> {
    let Ok(url) = std::env::var(PG_URL_ENV) else {
        eprintln!("notice: {PG_URL_ENV} is not set; skipping the PostgreSQL half of this test");
        return Ok(None);
    };
    let log = std::env::var_os(PG_LOG_ENV).map(std::path::PathBuf::from);
    create_database(&url, log.as_deref()).await.map(Some)
}

/// Creates a `dw_test_*` database on the server at `url` and returns its
/// URL; appends its name to `log`, if given. Any failure is an error: a
/// configured server that cannot be used must fail the test, not skip it.
async fn create_database(url: &str, log: Option<&std::path::Path>) -> Result<String> {
    let fail = |why: String| crate::Error::Conflict(format!("{PG_URL_ENV}: {why}"));
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(fail(format!(
            "expected a postgres:// URL, got {:?}",
            crate::redact_url(url)
        )));
    }
    let name = format!("dw_test_{}", unique_suffix());
    let admin = Db::connect(
        url,
        &DbOptions {
            connections_max: 1,
            ..DbOptions::default()
        },
    )
    .await?;
    let created = match &admin {
        Db::Postgres(p) => p
            .execute(sqlx::AssertSqlSafe(format!("create database {name}")))
            .await
            .map(|_| ())
            .map_err(crate::Error::from),
        Db::Sqlite(_) => Err(fail("not a PostgreSQL server".to_owned())),
    };
    admin.close().await;
    created?;
    if let Some(path) = log {
        use std::io::Write as _;
        // One short line per append: concurrent tests do not interleave.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(format!("{name}\n").as_bytes()))
            .map_err(|e| fail(format!("cannot append to {}: {e}", path.display())))?;
    }
    Ok(crate::scratch::database_url(url, &name))
}

/// A migrated, empty PostgreSQL database, if configured.
pub async fn postgres() -> Result<Option<Db>> {
    let Some(url) = postgres_url().await? else {
        return Ok(None);
    };
    let db = Db::connect(
        &url,
        &DbOptions {
            connections_max: 8,
            ..DbOptions::default()
        },
    )
    .await?;
    db.migrate().await?;
    Ok(Some(db))
}

/// Every backend available to this test run, migrated and empty.
pub async fn all() -> Result<Vec<Db>> {
    let mut v = vec![sqlite().await?];
    if let Some(pg) = postgres().await? {
        v.push(pg);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    /// A configured but unusable server is an error (the test fails), never
    /// a skip.
    #[tokio::test]
    async fn an_unusable_server_is_an_error() {
        for url in [
            // Nothing listens on port 1.
            "postgres://postgres@127.0.0.1:1/postgres",
            "sqlite::memory:",
            "",
        ] {
            let r = super::create_database(url, None).await;
            assert!(r.is_err(), "{url:?} gave {r:?}");
        }
    }

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            crate::scratch::database_url("postgres://u:p@h:5432/test", "x"),
            "postgres://u:p@h:5432/x"
        );
        assert_eq!(
            crate::scratch::database_url("postgres://h", "x"),
            "postgres://h/x"
        );
        assert_eq!(
            crate::scratch::database_url("postgres://h/db?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
    }
}
