//! `dormwatt backup`, `restore` and `verify-backup` (docs/OPERATIONS.md).
//!
//! A backup file is one self-describing container, the same on both
//! backends:
//!
//! ```text
//! DORMWATT-BACKUP 1\n
//! {"backend":"sqlite",…,"schema_version":N,"tables":{"orders":12,…}}\n
//! sha256 <hex of the header line's JSON and the payload>\n
//! <payload>
//! ```
//!
//! The payload is the database as `VACUUM INTO` writes it (SQLite) or a
//! `pg_dump --format=custom` archive taken in the same exported snapshot the
//! row counts were read in (PostgreSQL).

use anyhow::Context;
use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use store::{Backend, Db, Tx};

/// First line of every backup file.
const MAGIC: &str = "DORMWATT-BACKUP 1";

/// Arguments of `dormwatt backup`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The backup file to write (refused if it exists).
    #[arg(long)]
    to: PathBuf,
}

/// Arguments of `dormwatt restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup file to restore into the (empty) configured database.
    #[arg(long)]
    from: PathBuf,
}

/// Arguments of `dormwatt verify-backup`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The backup file to check.
    file: PathBuf,
}

/// What a backup holds, as its header line records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Header {
    /// `sqlite` or `postgres`: the backend the payload restores into.
    backend: String,
    /// The payload's form: `sqlite-database` or `pg_dump-custom`.
    payload: String,
    /// Bytes of the payload.
    payload_bytes: u64,
    /// Highest migration applied when the backup was taken.
    schema_version: i64,
    /// The dormwatt that took it.
    dormwatt_version: String,
    /// When it was taken (unix milliseconds).
    taken_at_ms: i64,
    /// Rows per table at the backup's moment.
    tables: BTreeMap<String, i64>,
}

impl Header {
    /// One line: backend, schema version, tables and rows.
    fn summary(&self) -> String {
        format!(
            "{} schema v{}, {} tables, {} rows",
            self.backend,
            self.schema_version,
            self.tables.len(),
            self.tables.values().sum::<i64>()
        )
    }
}

/// A database's tables, row counts and schema version, read in one
/// transaction.
#[derive(Debug, PartialEq, Eq)]
struct Contents {
    tables: BTreeMap<String, i64>,
    schema_version: Option<i64>,
}

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// A read transaction: on PostgreSQL repeatable read and read only, so
/// every count (and an exported snapshot) sees one moment.
async fn read_tx(db: &Db) -> anyhow::Result<Tx> {
    Ok(match db {
        Db::Sqlite(p) => Tx::Sqlite(p.begin().await?),
        Db::Postgres(p) => Tx::Postgres(pg_read_tx(p).await?),
    })
}

async fn pg_read_tx(
    p: &sqlx::PgPool,
) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut t = p.begin().await?;
    sqlx::query("set transaction isolation level repeatable read, read only")
        .execute(&mut *t)
        .await?;
    Ok(t)
}

/// Every table of the database with its row count, and the schema version.
async fn contents(tx: &mut Tx) -> anyhow::Result<Contents> {
    let list = match tx.backend() {
        Backend::Sqlite => {
            "select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by name"
        }
        Backend::Postgres => {
            "select tablename::text from pg_tables where schemaname = current_schema() order by tablename"
        }
    };
    let names: Vec<String> =
        store::on_tx!(&mut *tx, |c| sqlx::query_scalar(list).fetch_all(c).await?);
    let mut tables = BTreeMap::new();
    for name in names {
        let sql = format!("select count(*) from \"{}\"", name.replace('"', "\"\""));
        let n: i64 = store::on_tx!(&mut *tx, |c| sqlx::query_scalar(sqlx::AssertSqlSafe(
            sql.clone()
        ))
        .fetch_one(c)
        .await?);
        tables.insert(name, n);
    }
    let schema_version = if tables.contains_key("_sqlx_migrations") {
        store::on_tx!(&mut *tx, |c| sqlx::query_scalar(
            "select max(version) from _sqlx_migrations where success"
        )
        .fetch_one(c)
        .await?)
    } else {
        None
    };
    Ok(Contents {
        tables,
        schema_version,
    })
}

/// A SQLite file opened read-only: reading it changes nothing.
async fn open_sqlite_read_only(path: &Path) -> anyhow::Result<sqlx::SqlitePool> {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .with_context(|| format!("cannot open {} as a SQLite database", path.display()))?;
    Ok(pool)
}

/// The contents of a SQLite file opened read-only, after `pragma
/// integrity_check` when `integrity`.
async fn sqlite_file_contents(path: &Path, integrity: bool) -> anyhow::Result<Contents> {
    let pool = open_sqlite_read_only(path).await?;
    let result = async {
        if integrity {
            let verdict: Vec<String> = sqlx::query_scalar("pragma integrity_check")
                .fetch_all(&pool)
                .await
                .context("the SQLite payload is not a database")?;
            anyhow::ensure!(
                verdict == ["ok"],
                "the SQLite payload fails integrity_check: {}",
                verdict.join("; ")
            );
        }
        contents(&mut Tx::Sqlite(pool.begin().await?)).await
    }
    .await;
    pool.close().await;
    result
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Writing a copy of the payload failed: the disk's fault, not the backup's.
#[derive(Debug)]
struct CannotWrite(std::io::Error);

impl std::fmt::Display for CannotWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot write the unpacked payload: {}", self.0)
    }
}

impl std::error::Error for CannotWrite {}

/// A SHA-256 over the header's JSON and the payload.
fn digest_of(
    json: &str,
    payload: &mut impl Read,
    out: &mut impl Write,
) -> anyhow::Result<(String, u64)> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(json.as_bytes());
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = payload.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(CannotWrite)?;
        total += n as u64;
    }
    Ok((hex::encode(ctx.finish()), total))
}

/// The password of a PostgreSQL URL moved out of it: the client tools get
/// it in `PGPASSWORD`, never on a command line others can read.
fn pg_tool_target(url: &str) -> anyhow::Result<(String, Option<String>)> {
    let mut u = reqwest::Url::parse(url).context("database_url is not a URL")?;
    let password = u.password().map(|p| {
        percent_encoding::percent_decode_str(p)
            .decode_utf8_lossy()
            .into_owned()
    });
    let _ = u.set_password(None);
    Ok((u.to_string(), password))
}

/// Runs a PostgreSQL client tool (`pg_dump`, `pg_restore`), failing with
/// its stderr.
async fn pg_tool(tool: &str, url: Option<&str>, args: &[&std::ffi::OsStr]) -> anyhow::Result<()> {
    let mut cmd = tokio::process::Command::new(tool);
    if let Some(url) = url {
        let (dbname, password) = pg_tool_target(url)?;
        cmd.arg("--dbname").arg(dbname);
        if let Some(pw) = password {
            cmd.env("PGPASSWORD", pw);
        }
    }
    let out = cmd.args(args).output().await.with_context(|| {
        format!("cannot run {tool} (PostgreSQL client tools, see docs/OPERATIONS.md)")
    })?;
    anyhow::ensure!(
        out.status.success(),
        "{tool} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// `dormwatt backup --to FILE`.
pub async fn backup(cfg: &crate::config::Config, args: BackupArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !args.to.exists(),
        "{} exists; give a new file name (backups are never overwritten)",
        args.to.display()
    );
    let db = crate::run::connect(cfg).await?;
    let payload = TempFile(with_suffix(&args.to, ".payload"));
    // VACUUM INTO and pg_dump write a new file.
    let _ = std::fs::remove_file(&payload.0);
    let taken = take_payload(&db, cfg, &payload.0).await;
    db.close().await;
    let (kind, found) = taken?;
    let header = write_container(&args.to, &payload.0, db.backend(), kind, found)?;
    println!(
        "backup written to {}: {}",
        args.to.display(),
        header.summary()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes the payload of `db` to `path` and returns its kind and contents.
async fn take_payload(
    db: &Db,
    cfg: &crate::config::Config,
    path: &Path,
) -> anyhow::Result<(&'static str, Contents)> {
    let text = path.to_str().context("the backup file name is not UTF-8")?;
    match db {
        Db::Sqlite(p) => {
            // A consistent copy while writers go on (WAL readers are not blocked).
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "vacuum into '{}'",
                text.replace('\'', "''")
            )))
            .execute(p)
            .await
            .context("VACUUM INTO failed")?;
            Ok(("sqlite-database", sqlite_file_contents(path, true).await?))
        }
        Db::Postgres(p) => {
            let mut t = pg_read_tx(p).await?;
            let snapshot: String = sqlx::query_scalar("select pg_export_snapshot()")
                .fetch_one(&mut *t)
                .await?;
            let mut tx = Tx::Postgres(t);
            let found = contents(&mut tx).await?;
            // pg_dump reads in our snapshot: the archive holds exactly the rows counted.
            pg_tool(
                "pg_dump",
                Some(&cfg.database_url),
                &[
                    "--format=custom".as_ref(),
                    format!("--snapshot={snapshot}").as_ref(),
                    "--no-owner".as_ref(),
                    "--no-privileges".as_ref(),
                    "--file".as_ref(),
                    path.as_os_str(),
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(("pg_dump-custom", found))
        }
    }
}

/// Wraps the payload file in the container at `to` (written beside it, then renamed).
fn write_container(
    to: &Path,
    payload: &Path,
    backend: Backend,
    kind: &str,
    found: Contents,
) -> anyhow::Result<Header> {
    let header = Header {
        backend: backend_name(backend).to_owned(),
        payload: kind.to_owned(),
        payload_bytes: std::fs::metadata(payload)?.len(),
        schema_version: found
            .schema_version
            .context("the database has no migrations applied: nothing to back up")?,
        dormwatt_version: env!("CARGO_PKG_VERSION").to_owned(),
        taken_at_ms: store::now_ms(),
        tables: found.tables,
    };
    let json = serde_json::to_string(&header)?;
    let (sum, _) = digest_of(
        &json,
        &mut std::fs::File::open(payload)?,
        &mut std::io::sink(),
    )?;
    let partial = TempFile(with_suffix(to, ".partial"));
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    // Personal data and the ledger: readable by the owner only.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    let created = open
        .open(&partial.0)
        .with_context(|| format!("cannot write {}", partial.0.display()))?;
    let mut out = std::io::BufWriter::new(created);
    write!(out, "{MAGIC}\n{json}\nsha256 {sum}\n")?;
    std::io::copy(&mut std::fs::File::open(payload)?, &mut out)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::fs::rename(&partial.0, to).with_context(|| format!("cannot write {}", to.display()))?;
    Ok(header)
}

/// The container at `file`, read up to its payload: the header's JSON and
/// the recorded checksum.
type Container = (std::io::BufReader<std::fs::File>, String, String);

fn open_container(file: &Path) -> anyhow::Result<Container> {
    let mut r = std::io::BufReader::new(
        std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?,
    );
    let mut line = |what: &str| -> anyhow::Result<String> {
        let mut s = String::new();
        r.by_ref().take(1 << 20).read_line(&mut s)?;
        s.strip_suffix('\n')
            .map(str::to_owned)
            .with_context(|| format!("truncated before its {what}"))
    };
    anyhow::ensure!(line("first line")? == MAGIC, "not a dormwatt backup file");
    let json = line("header")?;
    let sum = line("checksum")?;
    let sum = sum
        .strip_prefix("sha256 ")
        .context("no sha256 line")?
        .to_owned();
    Ok((r, json, sum))
}

/// The header as the file claims it, before any checksum (for refusals
/// that need not read the whole file).
fn claimed_header(file: &Path) -> anyhow::Result<Header> {
    let (_, json, _) = open_container(file)
        .with_context(|| format!("{} is not a good dormwatt backup", file.display()))?;
    serde_json::from_str(&json).context("unreadable backup header")
}

/// Writes the payload of `file` to `dest`, checks the checksum and length,
/// and then the payload itself ([`check_payload`]).
async fn unpack(file: &Path, dest: &Path) -> anyhow::Result<Header> {
    let result: anyhow::Result<Header> = async {
        let header = extract(file, dest)?;
        check_payload(&header, dest).await?;
        Ok(header)
    }
    .await;
    match result {
        Err(e) if e.is::<CannotWrite>() => {
            Err(e.context(format!("unpacking into {}", dest.display())))
        }
        r => r.with_context(|| format!("{} is not a good dormwatt backup", file.display())),
    }
}

fn extract(file: &Path, dest: &Path) -> anyhow::Result<Header> {
    let (mut r, json, sum) = open_container(file)?;
    let created = std::fs::File::create(dest).map_err(CannotWrite)?;
    let mut out = std::io::BufWriter::new(created);
    let (found, bytes) = digest_of(&json, &mut r, &mut out)?;
    let written = out.into_inner().map_err(|e| CannotWrite(e.into_error()))?;
    written.sync_all().map_err(CannotWrite)?;
    anyhow::ensure!(found == sum, "checksum mismatch: the file is damaged");
    let header: Header = serde_json::from_str(&json).context("unreadable header")?;
    anyhow::ensure!(
        bytes == header.payload_bytes,
        "payload is {bytes} bytes, the header says {}",
        header.payload_bytes
    );
    Ok(header)
}

/// Checks that a restored or extracted database holds what the header says.
fn same_contents(header: &Header, found: &Contents) -> anyhow::Result<()> {
    anyhow::ensure!(
        found.schema_version == Some(header.schema_version),
        "schema version {:?}, the backup header says {}",
        found.schema_version,
        header.schema_version
    );
    for (table, n) in &header.tables {
        let got = found.tables.get(table).copied();
        anyhow::ensure!(
            got == Some(*n),
            "table {table}: {got:?} rows, the backup header says {n}"
        );
    }
    anyhow::ensure!(
        found.tables.len() == header.tables.len(),
        "{} tables, the backup header names {}",
        found.tables.len(),
        header.tables.len()
    );
    Ok(())
}

/// A payload file, removed on drop (with SQLite's side files).
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str) -> Self {
        Self(std::env::temp_dir().join(format!(
            "dormwatt-{tag}-{}-{}",
            std::process::id(),
            store::now_ms()
        )))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(with_suffix(&self.0, suffix));
        }
    }
}

/// Checks a payload without a database: the SQLite file's integrity and
/// counts, or that `pg_restore` reads the archive's table of contents.
async fn check_payload(header: &Header, payload: &Path) -> anyhow::Result<()> {
    match header.payload.as_str() {
        "sqlite-database" => same_contents(header, &sqlite_file_contents(payload, true).await?),
        "pg_dump-custom" => {
            pg_tool(
                "pg_restore",
                None,
                &["--list".as_ref(), payload.as_os_str()],
            )
            .await
        }
        other => anyhow::bail!("unknown payload kind '{other}'"),
    }
}

/// `dormwatt verify-backup FILE` (needs no configuration or database).
pub fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let tmp = TempFile::new("verify");
        let header = unpack(&args.file, &tmp.0).await?;
        println!("{} is a good backup", args.file.display());
        print_header(&header);
        Ok(ExitCode::SUCCESS)
    })
}

fn print_header(h: &Header) {
    println!("backend      {} ({})", h.backend, h.payload);
    println!("schema       v{}", h.schema_version);
    println!(
        "taken        {} by dormwatt {}",
        jiff::Timestamp::from_millisecond(h.taken_at_ms)
            .map_or_else(|_| h.taken_at_ms.to_string(), |t| t.to_string()),
        h.dormwatt_version
    );
    println!("rows per table:");
    for (t, n) in &h.tables {
        println!("  {t:<32} {n:>9}");
    }
}

/// `dormwatt restore --from FILE` into the configured, empty database.
pub async fn restore(cfg: &crate::config::Config, args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let url = &cfg.database_url;
    let target = if url.starts_with("sqlite:") {
        Backend::Sqlite
    } else {
        Backend::Postgres
    };
    let claimed = claimed_header(&args.from)?;
    anyhow::ensure!(
        claimed.backend == backend_name(target),
        "this is a {} backup; it restores only into a {} database",
        claimed.backend,
        claimed.backend
    );
    let known = known_schema_version(target);
    anyhow::ensure!(
        claimed.schema_version <= known,
        "the backup is at schema v{}, newer than this dormwatt (v{known}): restore it with the dormwatt that took it ({})",
        claimed.schema_version,
        claimed.dormwatt_version
    );
    let header = match target {
        Backend::Sqlite => restore_sqlite(url, &args.from).await?,
        Backend::Postgres => restore_postgres(cfg, &args.from).await?,
    };
    println!(
        "restored {} ({}) into {}",
        args.from.display(),
        header.summary(),
        store::redact_url(url)
    );
    if header.schema_version < known {
        println!("this dormwatt is at schema v{known}: run `dormwatt migrate` next");
    }
    Ok(ExitCode::SUCCESS)
}

/// The highest migration this binary embeds for `backend`.
fn known_schema_version(backend: Backend) -> i64 {
    store::Db::migration_manifest(backend)
        .lines()
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// Why a restore stops before changing anything.
fn not_empty(tables: usize) -> anyhow::Error {
    anyhow::anyhow!(
        "the target database is not empty ({tables} tables): restore only into a new, empty \
         database; nothing was changed"
    )
}

async fn restore_sqlite(url: &str, file: &Path) -> anyhow::Result<Header> {
    use std::str::FromStr as _;
    anyhow::ensure!(
        !url.contains(":memory:"),
        "cannot restore into an in-memory database"
    );
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
    let path = opts.get_filename().to_owned();
    if path.exists() && std::fs::metadata(&path)?.len() > 0 {
        let n = sqlite_file_contents(&path, false).await?.tables.len();
        if n > 0 {
            return Err(not_empty(n));
        }
    }
    // Unpacked beside the target, so the last step is a rename.
    let restoring = TempFile(with_suffix(&path, ".restoring"));
    let header = unpack(file, &restoring.0).await?;
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(with_suffix(&path, suffix));
    }
    std::fs::rename(&restoring.0, &path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    same_contents(&header, &sqlite_file_contents(&path, false).await?)?;
    Ok(header)
}

async fn restore_postgres(cfg: &crate::config::Config, file: &Path) -> anyhow::Result<Header> {
    let db = crate::run::connect(cfg).await?;
    let result = async {
        let n = contents(&mut read_tx(&db).await?).await?.tables.len();
        if n > 0 {
            return Err(not_empty(n));
        }
        let tmp = TempFile::new("restore");
        let header = unpack(file, &tmp.0).await?;
        pg_tool(
            "pg_restore",
            Some(&cfg.database_url),
            &[
                "--no-owner".as_ref(),
                "--no-privileges".as_ref(),
                "--exit-on-error".as_ref(),
                "--single-transaction".as_ref(),
                tmp.0.as_os_str(),
            ],
        )
        .await?;
        same_contents(&header, &contents(&mut read_tx(&db).await?).await?)?;
        Ok(header)
    }
    .await;
    db.close().await;
    result
}

#[cfg(test)]
mod tests {
    use super::pg_tool_target;

    #[test]
    fn the_password_leaves_the_client_tools_command_line() {
        let (url, pw) = pg_tool_target("postgres://dw:s%40cret@db.example:5433/dormwatt").unwrap();
        assert_eq!(url, "postgres://dw@db.example:5433/dormwatt");
        assert_eq!(pw.as_deref(), Some("s@cret"));
        let (url, pw) = pg_tool_target("postgres://dw@localhost/dormwatt").unwrap();
        assert_eq!(url, "postgres://dw@localhost/dormwatt");
        assert_eq!(pw, None);
    }
}
