//! Black-box tests of the `dormwatt` binary: seeding and status on both
//! backends, configuration errors, and `demo` answering `/readyz`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_dormwatt");

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "dw-cli-{tag}-{}-{}",
        std::process::id(),
        store::now_ms()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

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
