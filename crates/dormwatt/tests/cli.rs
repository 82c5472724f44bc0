//! Black-box tests of the `dormwatt` binary: seeding and status on both
//! backends, configuration errors, and `demo` answering `/readyz`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{BIN, temp_dir, text};

fn dormwatt(dir: &PathBuf, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("DORMWATT_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run dormwatt")
}

fn check_seed_and_status(dir: &PathBuf, url: &str) {
    let out = dormwatt(dir, &["--database-url", url, "seed"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = dormwatt(dir, &["--database-url", url, "seed"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing changed"));
    let out = dormwatt(dir, &["--database-url", url, "status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let per = v["meters_per_building"].as_object().unwrap();
    let reference: Vec<(&String, i64)> = per
        .iter()
        .filter(|(k, _)| k.starts_with("中国传媒大学 / "))
        .map(|(k, n)| (k, n.as_i64().unwrap()))
        .collect();
    assert_eq!(reference.len(), 16);
    assert_eq!(reference.iter().map(|(_, n)| n).sum::<i64>(), 2316);
    for (name, _, n) in domain::campus::REFERENCE_BUILDINGS {
        assert_eq!(
            per[&format!("中国传媒大学 / {name}")].as_i64(),
            Some(i64::try_from(n).unwrap())
        );
    }
    // Natural order, in the JSON text and in the table: 4号楼 before 34号楼.
    let json = String::from_utf8_lossy(&out.stdout);
    let at = |text: &str, name: &str| text.find(&format!("中国传媒大学 / {name}")).unwrap();
    assert!(at(&json, "4号楼") < at(&json, "34号楼"), "{json}");
    let table = dormwatt(dir, &["--database-url", url, "status"]);
    let table = String::from_utf8_lossy(&table.stdout);
    let order: Vec<usize> = ["4号楼", "7号楼", "8号楼", "34号楼", "47号楼", "中蓝一期A区"]
        .iter()
        .map(|name| at(&table, name))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{table}");
    for key in ["areas", "buildings", "rooms", "meters", "gateways", "buses"] {
        assert!(v[key].as_i64().unwrap() > 0, "{key}");
    }
    // Issue 15: the WeChat outbox's counts (nothing sent on a fresh campus).
    for key in ["pending", "sent_today", "failed_today", "followers"] {
        assert_eq!(v["notifications"][key].as_i64(), Some(0), "{key}: {v}");
    }
    let out = dormwatt(dir, &["--database-url", url, "check-ledger"]);
    assert!(out.status.success());
}

#[test]
fn seed_and_status_on_sqlite() {
    let dir = temp_dir("seed");
    check_seed_and_status(&dir, "sqlite://dw.db");
}

#[tokio::test]
async fn seed_and_status_on_postgres() {
    let Some(url) = store::testing::postgres_url().await.unwrap() else {
        return;
    };
    let dir = temp_dir("seedpg");
    tokio::task::spawn_blocking(move || check_seed_and_status(&dir, &url))
        .await
        .unwrap();
}

#[test]
fn bad_configuration_names_the_key() {
    let dir = temp_dir("cfg");
    std::fs::write(
        dir.join("c.toml"),
        "listen = \"127.0.0.1:1\"\nno_such_key = true\n",
    )
    .unwrap();
    let out = dormwatt(&dir, &["--config", "c.toml", "status"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_key"));
    std::fs::write(
        dir.join("d.toml"),
        "[database]\nbusy_timeout_ms = \"soon\"\n",
    )
    .unwrap();
    let out = dormwatt(&dir, &["--config", "d.toml", "status"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("busy_timeout_ms"));
    let out = Command::new(BIN)
        .args(["status"])
        .current_dir(&dir)
        .env("DORMWATT_LISTEN", "nowhere")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen"));
}

#[test]
fn unreachable_database_stops_with_a_clear_message() {
    let dir = temp_dir("unreach");
    let out = dormwatt(
        &dir,
        &[
            "--database-url",
            "postgres://nobody:secret@127.0.0.1:1/x",
            "status",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot open the database"), "{err}");
    assert!(!err.contains("secret"), "password leaked: {err}");
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn demo_answers_readyz() {
    let dir = temp_dir("demo");
    // Keep the simulated gateways off the default ports another run may hold.
    // Below the ephemeral range (32768+), where our own listeners land.
    let base = 20_000 + (std::process::id() % 9_000);
    let mut child = Command::new(BIN)
        .args([
            "--database-url",
            "sqlite://demo.db",
            "--listen",
            "127.0.0.1:0",
            "demo",
            "--history-days",
            "3",
        ])
        .current_dir(&dir)
        .env("DORMWATT_SIMULATOR__BASE_PORT", base.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("http://").nth(1) {
                let _ = tx.send(rest.split('/').next().unwrap_or_default().to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("demo printed its URL");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut ready = None;
    while Instant::now() < deadline {
        if let Some(r) = http_get(&addr, "/readyz")
            && r.starts_with("HTTP/1.1 200")
        {
            ready = Some(r);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        ready.is_some_and(|r| r.ends_with("ready")),
        "demo never became ready"
    );
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let dir = temp_dir("ansi");
    let out = Command::new(BIN)
        .args(["--database-url", "sqlite://ansi.db", "migrate"])
        .current_dir(&dir)
        .env_remove("DORMWATT_DATABASE_URL")
        .env("RUST_LOG", "debug")
        .output()
        .expect("run dormwatt");
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.trim().is_empty(), "expected debug log lines");
    assert!(
        !err.contains('\u{1b}'),
        "ANSI escapes in a piped log: {err:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `dormwatt` with `input` on its stdin (a pipe, as from a password manager).
fn dormwatt_stdin(dir: &PathBuf, args: &[&str], input: &str) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("DORMWATT_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run dormwatt");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().expect("wait")
}

/// Operators from the command line, then the audit chain checked, then
/// one audit row edited behind the triggers' back: check-ledger fails and
/// names it.
async fn check_operators_and_audit_chain(dir: PathBuf, url: String) {
    let area = domain::campus::reference_plan().areas[0].code.clone();
    let run = {
        let (dir, url) = (dir.clone(), url.clone());
        move |args: Vec<String>, input: String| {
            let mut all = vec!["--database-url".to_owned(), url.clone()];
            all.extend(args);
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            dormwatt_stdin(&dir, &all, &input)
        }
    };
    let run = std::sync::Arc::new(run);
    let go = |args: &[&str], input: &str| {
        let run = run.clone();
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let input = input.to_owned();
        async move {
            tokio::task::spawn_blocking(move || run(args, input))
                .await
                .unwrap()
        }
    };
    assert!(go(&["seed"], "").await.status.success());
    let o = go(
        &["operator", "add", "admin", "--role", "administrator"],
        "short\n",
    )
    .await;
    assert!(!o.status.success());
    assert!(
        text(&o).contains("too short: at least 10 characters"),
        "{}",
        text(&o)
    );
    let o = go(
        &["operator", "add", "admin", "--role", "administrator"],
        "1qaz2wsx3edc\n",
    )
    .await;
    assert!(!o.status.success());
    assert!(text(&o).contains("too common"), "{}", text(&o));
    let o = go(
        &["operator", "add", "admin", "--role", "administrator"],
        "correct horse battery staple\n",
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("operator admin created (administrator, all areas)"),
        "{}",
        text(&o)
    );
    let o = go(
        &[
            "operator", "add", "wang", "--role", "cashier", "--area", &area,
        ],
        "another long passphrase\n",
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let o = go(&["operator", "add", "x", "--role", "root"], "").await;
    assert!(text(&o).contains("unknown role 'root'"), "{}", text(&o));
    let o = go(&["operator", "list", "--json"], "").await;
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let listed: Vec<(String, String, serde_json::Value)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["name"].as_str().unwrap().to_owned(),
                o["role"].as_str().unwrap().to_owned(),
                o["areas"].clone(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (
                "admin".to_owned(),
                "administrator".to_owned(),
                serde_json::json!([])
            ),
            (
                "wang".to_owned(),
                "cashier".to_owned(),
                serde_json::json!([area])
            ),
        ]
    );
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("argon2"),
        "no hash is listed"
    );
    let o = go(&["operator", "disable", "wang"], "").await;
    assert!(o.status.success(), "{}", text(&o));
    let o = go(&["operator", "disable", "wang"], "").await;
    assert!(
        !o.status.success() && text(&o).contains("already disabled"),
        "{}",
        text(&o)
    );
    let o = go(&["operator", "list"], "").await;
    assert!(text(&o).contains("disabled"), "{}", text(&o));
    let o = go(&["check-ledger"], "").await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("audit log: chain of 3 rows intact"),
        "{}",
        text(&o)
    );

    // Edit row 2 behind the triggers' back.
    let db = if url.starts_with("sqlite:") {
        store::Db::connect(
            &format!("sqlite://{}/dw.db", dir.display()),
            &Default::default(),
        )
        .await
        .unwrap()
    } else {
        store::Db::connect(&url, &Default::default()).await.unwrap()
    };
    let (drop, edit) = match db.backend() {
        store::Backend::Sqlite => (
            "drop trigger audit_log_no_update",
            "update audit_log set after_json = replace(after_json, 'cashier', 'administrator') where seq = 2",
        ),
        store::Backend::Postgres => (
            "drop trigger audit_log_no_change on audit_log",
            "update audit_log set after_json = replace(after_json, 'cashier', 'administrator') where seq = 2",
        ),
    };
    match &db {
        store::Db::Sqlite(p) => {
            sqlx::query(drop).execute(p).await.unwrap();
            assert_eq!(
                sqlx::query(edit).execute(p).await.unwrap().rows_affected(),
                1
            );
        }
        store::Db::Postgres(p) => {
            sqlx::query(drop).execute(p).await.unwrap();
            assert_eq!(
                sqlx::query(edit).execute(p).await.unwrap().rows_affected(),
                1
            );
        }
    }
    db.close().await;
    let o = go(&["check-ledger"], "").await;
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("audit log: chain broken at row 2: its content does not match its hash"),
        "{}",
        text(&o)
    );
}

#[tokio::test]
async fn operators_and_the_audit_chain_on_sqlite() {
    let dir = temp_dir("ops");
    check_operators_and_audit_chain(dir, "sqlite://dw.db".to_owned()).await;
}

#[tokio::test]
async fn operators_and_the_audit_chain_on_postgres() {
    let Some(url) = store::testing::postgres_url().await.unwrap() else {
        return;
    };
    check_operators_and_audit_chain(temp_dir("opspg"), url).await;
}
