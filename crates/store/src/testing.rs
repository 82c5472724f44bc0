//! Fresh databases for tests: a temporary SQLite file always, and a new
//! PostgreSQL database whenever `DORMWATT_TEST_PG_URL` is set (CI sets it).
//! Without it the PostgreSQL half is skipped with a printed notice, so
//! `cargo test` still passes on a laptop.

use crate::{Db, DbOptions, Result};
use sqlx::Executor;
use std::sync::atomic::{AtomicU64, Ordering};

/// Environment variable holding the PostgreSQL URL for tests.
pub const PG_URL_ENV: &str = "DORMWATT_TEST_PG_URL";

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
    let name = format!("dw_test_{}", unique_suffix());
    let admin = Db::connect(
        &url,
        &DbOptions {
            connections_max: 1,
            ..DbOptions::default()
        },
    )
    .await?;
    if let Db::Postgres(p) = &admin {
        p.execute(sqlx::AssertSqlSafe(format!("create database {name}")))
            .await?;
    }
    admin.close().await;
    Ok(Some(with_database(&url, &name)))
}

/// `url` with its database name replaced by `name` (credentials and query kept).
fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (rest, query) = rest
        .split_once('?')
        .map_or((rest, None), |(r, q)| (r, Some(q)));
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("{scheme}://{authority}/{name}{query}")
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
    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            super::with_database("postgres://u:p@h:5432/test", "x"),
            "postgres://u:p@h:5432/x"
        );
        assert_eq!(super::with_database("postgres://h", "x"), "postgres://h/x");
        assert_eq!(
            super::with_database("postgres://h/db?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
    }
}
