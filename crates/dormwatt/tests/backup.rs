//! `dormwatt backup`, `restore`, `verify-backup` and `check-config` on
//! both backends: a backup taken while purchases are written restores into
//! a fresh database that passes `check-ledger`; damaged files and non-empty
//! targets are refused. The restore drill of docs/OPERATIONS.md is these
//! commands.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod common;
use common::{BIN, temp_dir, text};

/// Runs `dormwatt args…` in `dir` (off the async runtime).
async fn dormwatt(dir: &Path, args: &[&str]) -> Output {
    let dir = dir.to_owned();
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&args)
            .current_dir(&dir)
            .env_remove("DORMWATT_DATABASE_URL")
            .env_remove("DORMWATT_CONFIG")
            .env("RUST_LOG", "warn")
            .output()
            .expect("run dormwatt")
    })
    .await
    .unwrap()
}

/// Asserts that `out` contains every one of `wanted`.
fn contains_all(out: &str, wanted: &[&str]) {
    for w in wanted {
        assert!(out.contains(w), "{w}: {out}");
    }
}

/// `dormwatt --database-url url args…`, which must succeed; its stdout.
async fn ok(dir: &Path, url: &str, args: &[&str]) -> String {
    let mut all = vec!["--database-url", url];
    all.extend_from_slice(args);
    let o = dormwatt(dir, &all).await;
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `dormwatt --database-url url args…`, which must fail; its output.
async fn refused(dir: &Path, url: &str, args: &[&str]) -> String {
    let mut all = vec!["--database-url", url];
    all.extend_from_slice(args);
    let o = dormwatt(dir, &all).await;
    assert!(!o.status.success(), "{args:?} succeeded: {}", text(&o));
    text(&o)
}

/// The header line of a backup file.
fn header(file: &Path) -> serde_json::Value {
    let bytes = std::fs::read(file).unwrap();
    let line = bytes.split(|b| *b == b'\n').nth(1).unwrap();
    serde_json::from_slice(line).unwrap()
}

async fn orders(db: &store::Db) -> i64 {
    store::on_db!(db, |p| sqlx::query_scalar("select count(*) from orders")
        .fetch_one(p)
        .await
        .unwrap())
}

/// Fresh, empty databases: SQLite files in `dir`, or new PostgreSQL databases.
struct Databases {
    pg: bool,
    made: Vec<String>,
}

impl Databases {
    async fn fresh(&mut self, dir: &Path, name: &str) -> String {
        let url = if self.pg {
            store::testing::postgres_url().await.unwrap().unwrap()
        } else {
            format!("sqlite://{}", dir.join(format!("{name}.db")).display())
        };
        self.made.push(url.clone());
        url
    }

    /// Drops the PostgreSQL databases made.
    async fn drop_all(self) {
        if !self.pg {
            return;
        }
        let admin = std::env::var(store::testing::PG_URL_ENV).unwrap();
        for url in self.made {
            let name = url.rsplit('/').next().unwrap();
            store::scratch::drop_postgres(&admin, name).await.unwrap();
        }
    }
}

/// Seed, buy in a loop, back up while buying, restore, check.
async fn backup_while_buying(pg: bool) {
    let dir = temp_dir(if pg { "pg" } else { "sqlite" });
    let mut dbs = Databases {
        pg,
        made: Vec::new(),
    };
    let src_url = dbs.fresh(&dir, "src").await;
    let src = store::Db::connect(&src_url, &Default::default())
        .await
        .unwrap();
    src.migrate().await.unwrap();
    let now = store::now_ms();
    store::testing::seed_one_building_per_area(&src, now)
        .await
        .unwrap();
    // An operator, so the audit chain has rows to check after the restore.
    let phc = domain::staff::hash_password("correct horse battery staple", [7; 16]).unwrap();
    store::operators::ensure_with_password(
        &src,
        "admin",
        domain::staff::Role::Administrator,
        &phc,
        &store::audit::Actor::command_line(),
        now,
    )
    .await
    .unwrap();
    let meters: Vec<(String, i64)> = store::on_db!(&src, |p| sqlx::query_as(
        "select address, area_id from meter order by id limit 20"
    )
    .fetch_all(p)
    .await
    .unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let buying = {
        let (src, stop) = (src.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let (address, area) = &meters[n % meters.len()];
                store::orders::create_counter_sale(
                    &src,
                    *area,
                    address,
                    domain::WholeKwh::new(1, 500).unwrap(),
                    "admin",
                    store::now_ms(),
                )
                .await
                .unwrap();
                n += 1;
            }
            n
        })
    };
    while orders(&src).await < 5 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    // Backed up while the purchases go on.
    let before = orders(&src).await;
    let out = ok(&dir, &src_url, &["backup", "--to", "during.dwb"]).await;
    let after = orders(&src).await;
    assert!(out.contains("backup written to during.dwb"), "{out}");
    let during = dir.join("during.dwb");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&during).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "owner only");
    }
    let h = header(&during);
    let in_backup = h["tables"]["orders"].as_i64().unwrap();
    assert!(
        (before..=after).contains(&in_backup),
        "{before} ≤ {in_backup} ≤ {after}"
    );
    assert!(after > before, "purchases ran during the backup");
    assert_eq!(
        h["schema_version"].as_i64(),
        Some(src.known_schema_version())
    );
    let verified = dormwatt(&dir, &["verify-backup", "during.dwb"]).await;
    assert!(verified.status.success(), "{}", text(&verified));
    assert!(text(&verified).contains(&format!("schema       v{}", src.known_schema_version())));

    let restored_url = dbs.fresh(&dir, "restored").await;
    let out = ok(&dir, &restored_url, &["restore", "--from", "during.dwb"]).await;
    assert!(out.contains("restored during.dwb"), "{out}");
    let ledger = ok(&dir, &restored_url, &["check-ledger"]).await;
    assert!(ledger.contains("ledger invariants I1–I14 hold"), "{ledger}");
    assert!(
        ledger.contains("audit log: chain of 1 rows intact"),
        "{ledger}"
    );
    let restored = store::Db::connect(&restored_url, &Default::default())
        .await
        .unwrap();
    assert_eq!(orders(&restored).await, in_backup);
    restored.close().await;

    // After the purchases: a quiet backup restores to the same status.
    stop.store(true, Ordering::Relaxed);
    let bought = buying.await.unwrap();
    assert_eq!(i64::try_from(bought).unwrap(), orders(&src).await);
    ok(&dir, &src_url, &["backup", "--to", "quiet.dwb"]).await;
    let refused_overwrite = refused(&dir, &src_url, &["backup", "--to", "quiet.dwb"]).await;
    assert!(
        refused_overwrite.contains("never overwritten"),
        "{refused_overwrite}"
    );
    let quiet_url = dbs.fresh(&dir, "quiet").await;
    ok(&dir, &quiet_url, &["restore", "--from", "quiet.dwb"]).await;
    ok(&dir, &quiet_url, &["check-ledger"]).await;
    let status = |url: String| {
        let dir = dir.clone();
        async move { ok(&dir, &url, &["status", "--json"]).await }
    };
    let source_status = status(src_url.clone()).await;
    assert_eq!(status(quiet_url.clone()).await, source_status);

    // A non-empty target is refused and keeps what it had.
    let msg = refused(&dir, &quiet_url, &["restore", "--from", "during.dwb"]).await;
    assert!(
        msg.contains("not empty") && msg.contains("nothing was changed"),
        "{msg}"
    );
    assert_eq!(status(quiet_url.clone()).await, source_status);

    // A damaged file fails verify-backup and restore; the target stays empty.
    let bytes = std::fs::read(&during).unwrap();
    let mut flipped = bytes.clone();
    let at = bytes.len() / 2;
    flipped[at] ^= 0x55;
    std::fs::write(dir.join("flipped.dwb"), &flipped).unwrap();
    std::fs::write(dir.join("truncated.dwb"), &bytes[..bytes.len() - 100]).unwrap();
    let empty_url = dbs.fresh(&dir, "empty").await;
    for bad in ["flipped.dwb", "truncated.dwb"] {
        let o = dormwatt(&dir, &["verify-backup", bad]).await;
        assert!(!o.status.success(), "{bad}: {}", text(&o));
        assert!(
            text(&o).contains("is not a good dormwatt backup"),
            "{}",
            text(&o)
        );
        let msg = refused(&dir, &empty_url, &["restore", "--from", bad]).await;
        assert!(msg.contains("is not a good dormwatt backup"), "{msg}");
    }
    if pg {
        let other = dir.join("other.db");
        let msg = refused(
            &dir,
            &format!("sqlite://{}", other.display()),
            &["restore", "--from", "during.dwb"],
        )
        .await;
        assert!(
            msg.contains("restores only into a postgres database"),
            "{msg}"
        );
        assert!(!other.exists(), "nothing written");
        let empty = store::Db::connect(&empty_url, &Default::default())
            .await
            .unwrap();
        assert_eq!(empty.applied_schema_version().await.unwrap(), None);
        empty.close().await;
    } else {
        assert!(!dir.join("empty.db").exists(), "nothing written");
    }
    // docs/OPERATIONS.md "Data retention": the prune commands as written there.
    let dry = ok(&dir, &src_url, &["prune", "--dry-run", "--sizes"]).await;
    contains_all(
        &dry,
        &[
            "retention: readings 90 days",
            "would delete",
            "orders",
            "all",
        ],
    );
    let json = ok(&dir, &src_url, &["prune", "--dry-run", "--json"]).await;
    let json: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(json["dry_run"], true, "{json}");
    let pruned = ok(&dir, &src_url, &["prune"]).await;
    contains_all(&pruned, &["deleted", "statements"]);
    ok(&dir, &src_url, &["check-ledger"]).await;
    src.close().await;
    dbs.drop_all().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_buying_restores_on_sqlite() {
    backup_while_buying(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_buying_restores_on_postgres() {
    if std::env::var(store::testing::PG_URL_ENV).is_err() {
        // Prints the skip notice.
        assert!(store::testing::postgres_url().await.unwrap().is_none());
        return;
    }
    backup_while_buying(true).await;
}

/// The repository's test keys (crates/pay/testdata, no real credentials).
fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pay/testdata")
        .join(name)
}

/// A WeChat Pay configuration of the test keys and the given files.
fn wechat_config(
    dir: &Path,
    db: &str,
    public_url: &str,
    merchant_key: &Path,
    cert: &Path,
) -> PathBuf {
    std::fs::write(dir.join("apiv3.key"), "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb\n").unwrap();
    let toml = format!(
        r#"database_url = "{db}"
public_url = "{public_url}"

[payment]
provider = "wechat"

[payment.wechat]
appid = "wxd678efh567hg6787"
mchid = "1230000109"
merchant_serial_no = "D7CE59D1F522D701"
merchant_key_file = "{key}"
api_v3_key_file = "{v3}"
public_key_id = "PUB_KEY_ID_0112340000000000000000000000000001"
public_key_file = "{pubkey}"
platform_certificate_files = ["{cert}"]
"#,
        key = merchant_key.display(),
        v3 = dir.join("apiv3.key").display(),
        pubkey = testdata("official_wechatpay_public_key_4_2.pem").display(),
        cert = cert.display(),
    );
    let path = dir.join(format!("{}.toml", store::now_ms()));
    std::fs::write(&path, toml).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_passes_a_good_one_and_lists_every_problem() {
    let dir = temp_dir("cfg");
    let db = format!("sqlite://{}", dir.join("dw.db").display());
    let key = testdata("go_sdk_test_private_key.pem");
    let cert = testdata("go_sdk_test_cert_D7CE59D1F522D701.pem");
    let good = wechat_config(&dir, &db, "https://power.example.edu.cn", &key, &cert);
    let good = good.to_str().unwrap();
    let cert_arg = cert.to_str().unwrap();

    // Not migrated yet: the database is the one problem.
    let o = dormwatt(&dir, &["--config", good, "check-config"]).await;
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("run `dormwatt migrate`"), "{}", text(&o));

    assert!(
        dormwatt(&dir, &["--config", good, "migrate"])
            .await
            .status
            .success()
    );
    let o = dormwatt(
        &dir,
        &[
            "--config",
            good,
            "check-config",
            "--merchant-certificate",
            cert_arg,
        ],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    contains_all(
        &out,
        &[
            "ok       payment.wechat.merchant_key_file",
            "ok       payment.wechat.public_key_file",
            "ok       database",
            "configuration OK",
            "payments under serve: WeChat Pay, appid wxd678efh567hg6787, mchid 1230000109",
            "\"mchid\": \"1230000109\"",
        ],
    );
    assert!(
        !out.contains("a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb"),
        "a secret printed: {out}"
    );

    // The wrong key for the merchant certificate.
    let other = testdata("doc_test_private_key.pem");
    let mismatched = wechat_config(&dir, &db, "https://power.example.edu.cn", &other, &cert);
    let o = dormwatt(
        &dir,
        &[
            "--config",
            mismatched.to_str().unwrap(),
            "check-config",
            "--merchant-certificate",
            cert_arg,
        ],
    )
    .await;
    assert!(!o.status.success());
    contains_all(
        &text(&o),
        &["the key does not match the merchant certificate D7CE59D1F522D701"],
    );

    // A bad URL, a missing key file and an unreadable certificate: all three in one run.
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let bad = wechat_config(
        &dir,
        &db,
        "power example",
        &dir.join("missing.pem"),
        &garbage,
    );
    let bad = bad.to_str().unwrap();
    let o = dormwatt(&dir, &["--config", bad, "check-config"]).await;
    assert!(!o.status.success());
    let out = text(&o);
    contains_all(
        &out,
        &[
            "PROBLEM  public_url: 'power example' is not a URL",
            "PROBLEM  payment.wechat.merchant_key_file: cannot read",
            "PROBLEM  payment.wechat.platform_certificate_files (",
            "3 problem(s) found",
        ],
    );
    // serve refuses to start on the same problems.
    let o = dormwatt(&dir, &["--config", bad, "--listen", "127.0.0.1:0", "serve"]).await;
    assert!(!o.status.success());
    let out = text(&o);
    assert!(
        out.contains("not starting: the configuration has problems"),
        "{out}"
    );
    assert!(
        out.contains("payment.wechat.merchant_key_file: cannot read"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
