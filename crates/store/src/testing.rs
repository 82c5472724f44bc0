//! Fresh databases for tests: a temporary SQLite file always, and a new
//! PostgreSQL database whenever `DORMWATT_TEST_PG_URL` is set (CI sets it).
//! Without it the PostgreSQL half is skipped with a printed notice, so
//! `cargo test` still passes on a laptop. When it is set but the server
//! cannot be used (wrong URL, server down, not PostgreSQL), every function
//! here returns an error, so the tests fail rather than skip.
//!
//! The skip notice is written to the process's real stderr (past the test
//! harness's capture), once per test binary, so it shows in `cargo test`'s
//! output. Test databases and files are named after the test process; the
//! first test of each process removes those of test processes that have
//! ended (also after a crash or kill -9), so they do not pile up.
//!
//! When `DORMWATT_TEST_PG_LOG` names a file, each PostgreSQL test database
//! created appends one line to it; `.ci/run` counts them to show that the
//! PostgreSQL half really ran.

use crate::{Db, DbOptions, Result};
use sqlx::Executor;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Environment variable holding the PostgreSQL URL for tests.
pub const PG_URL_ENV: &str = "DORMWATT_TEST_PG_URL";
/// Environment variable naming a file that gets one line per PostgreSQL
/// test database created.
pub const PG_LOG_ENV: &str = "DORMWATT_TEST_PG_LOG";

static COUNTER: AtomicU64 = AtomicU64::new(0);
static SKIP_NOTICE: std::sync::Once = std::sync::Once::new();
static FILES_SWEPT: AtomicBool = AtomicBool::new(false);
static DATABASES_SWEPT: AtomicBool = AtomicBool::new(false);

/// Writes to the real stderr: `eprintln!` inside a test is captured and
/// shown only when the test fails.
fn notice(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stderr().write_all(format!("{text}\n").as_bytes());
}

/// Whether the test process `pid` (from a name we made) has ended. Only
/// answered where the process table can be read; elsewhere nothing is
/// removed.
fn ended(pid: &str) -> bool {
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    let proc = std::path::Path::new("/proc");
    pid != std::process::id() && proc.join("self").exists() && !proc.join(pid.to_string()).exists()
}

/// The process id in `<prefix><pid>_…`.
fn pid_of<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    name.strip_prefix(prefix)?.split('_').next()
}

/// Removes the SQLite files of ended test processes (once per process).
fn sweep_files(dir: &std::path::Path) {
    if !FILES_SWEPT.swap(true, Ordering::Relaxed) {
        remove_ended(dir);
    }
}

fn remove_ended(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if pid_of(name, "t_").is_some_and(ended) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Drops the `dw_test_*` databases of ended test processes (once per
/// process).
async fn sweep_databases(admin: &Db) {
    if DATABASES_SWEPT.swap(true, Ordering::Relaxed) {
        return;
    }
    let Db::Postgres(p) = admin else { return };
    let Ok(names) = sqlx::query_scalar::<_, String>(
        "select datname from pg_database where datname like 'dw\\_test\\_%'",
    )
    .fetch_all(p)
    .await
    else {
        return;
    };
    for name in names {
        if pid_of(&name, "dw_test_").is_some_and(ended)
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            let _ = p
                .execute(sqlx::AssertSqlSafe(format!(
                    "drop database if exists {name} with (force)"
                )))
                .await;
        }
    }
}

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
    sweep_files(&dir);
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
        SKIP_NOTICE.call_once(|| {
            notice(&format!(
                "notice: {PG_URL_ENV} is not set: the PostgreSQL half of these tests is skipped"
            ));
        });
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
    sweep_databases(&admin).await;
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

/// The reference campus cut to its first `buildings` buildings per area
/// (fast to seed; every area stays, so area pickers are still tested).
pub fn reference_plan_cut(buildings: usize) -> domain::campus::CampusPlan {
    let mut plan = domain::campus::reference_plan();
    for a in &mut plan.areas {
        a.buildings.truncate(buildings);
    }
    plan
}

/// Seeds the reference campus cut to one building per area
/// ([`reference_plan_cut`]) and returns its plan.
pub async fn seed_one_building_per_area(
    db: &Db,
    now_ms: i64,
) -> Result<domain::campus::CampusPlan> {
    let plan = reference_plan_cut(1);
    crate::campus::seed(db, &plan, &Default::default(), now_ms).await?;
    Ok(plan)
}

/// Every test database ([`all`]), each seeded at `now_ms` with the
/// reference campus cut to `buildings` buildings per area.
pub async fn all_seeded_cut(buildings: usize, now_ms: i64) -> Result<Vec<Db>> {
    all_seeded_with(&reference_plan_cut(buildings), now_ms).await
}

/// Every test database ([`all`]), each seeded with the whole reference
/// campus at `now_ms`.
pub async fn all_seeded(now_ms: i64) -> Result<Vec<Db>> {
    all_seeded_with(&domain::campus::reference_plan(), now_ms).await
}

async fn all_seeded_with(plan: &domain::campus::CampusPlan, now_ms: i64) -> Result<Vec<Db>> {
    let dbs = all().await?;
    for db in &dbs {
        crate::campus::seed(
            db,
            plan,
            &crate::campus::GatewayAddressing::default(),
            now_ms,
        )
        .await?;
    }
    Ok(dbs)
}

/// What a meter refusing a paid order's recharge leaves behind (the
/// hoarding limit, say): `worker` claims the next delivery job at `at[0]`,
/// numbers order `o` at `at[1]`, and the meter's count (the number − 1)
/// refuses it at `at[2]` with `detail` — the order flagged, its number
/// given back. Fails when there is no delivery job to claim or the order
/// gets no number.
pub async fn meter_refuses(
    db: &Db,
    o: &crate::orders::Order,
    worker: &str,
    at: [i64; 3],
    detail: &str,
) -> Result<()> {
    let jobs =
        crate::jobs::claim(db, crate::orders::DELIVER_QUEUE, worker, at[0], 30_000, 1).await?;
    let job = jobs
        .first()
        .ok_or_else(|| crate::Error::Conflict("no delivery job to claim".to_owned()))?;
    let seq = crate::orders::assign_purchase_seq(db, o.id, at[1])
        .await?
        .seq()
        .ok_or_else(|| crate::Error::Conflict("the order got no purchase number".to_owned()))?;
    crate::meters::refuse_delivery(db, o.id, job, o.meter_id, seq, seq - 1, detail, at[2]).await
}

#[cfg(test)]
mod tests {
    /// Files of ended test processes go; those of live ones stay.
    #[test]
    fn files_of_ended_test_processes_are_removed() {
        if !std::path::Path::new("/proc/self").exists() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("dormwatt-sweep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let me = std::process::id();
        let names = [
            format!("t_{me}_0_1.db"),
            "t_1_0_1.db".to_owned(),
            "t_4000000000_3_9.db".to_owned(),
            "t_4000000000_3_9.db-wal".to_owned(),
            "other.db".to_owned(),
        ];
        for n in &names {
            std::fs::write(dir.join(n), b"x").unwrap();
        }
        super::remove_ended(&dir);
        let left: std::collections::BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        let want: std::collections::BTreeSet<String> =
            [names[0].clone(), names[1].clone(), names[4].clone()].into();
        assert_eq!(left, want);
    }

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
