//! Throw-away PostgreSQL databases for simulations and benchmarks (the
//! deterministic simulation creates one per seed).

use crate::{Db, DbOptions, Result};

/// `url` with its database name replaced by `name` (credentials and query
/// kept).
pub fn database_url(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (rest, query) = rest
        .split_once('?')
        .map_or((rest, None), |(r, q)| (r, Some(q)));
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("{scheme}://{authority}/{name}{query}")
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(crate::Error::Conflict(format!(
            "bad scratch database name {name:?}"
        )));
    }
    Ok(())
}

/// Creates (after dropping any leftover) database `name` on the server of
/// `admin_url`; returns its URL.
pub async fn create_postgres(admin_url: &str, name: &str) -> Result<String> {
    check_name(name)?;
    run_admin(admin_url, &format!("drop database if exists {name}")).await?;
    run_admin(admin_url, &format!("create database {name}")).await?;
    Ok(database_url(admin_url, name))
}

/// Drops database `name` on the server of `admin_url`.
pub async fn drop_postgres(admin_url: &str, name: &str) -> Result<()> {
    check_name(name)?;
    run_admin(
        admin_url,
        &format!("drop database if exists {name} with (force)"),
    )
    .await
}

async fn run_admin(admin_url: &str, sql: &str) -> Result<()> {
    let admin = Db::connect(
        admin_url,
        &DbOptions {
            connections_max: 1,
            ..DbOptions::default()
        },
    )
    .await?;
    let r = match &admin {
        Db::Postgres(p) => sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(p)
            .await
            .map(|_| ()),
        Db::Sqlite(_) => Ok(()),
    };
    admin.close().await;
    Ok(r?)
}
