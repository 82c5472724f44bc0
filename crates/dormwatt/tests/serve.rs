//! Black-box tests of the `dormwatt serve` binary (issue 10): the payment
//! sandbox never runs unless asked for, and `public_url` follows `--listen`.
//! Each test runs the real binary on a temporary SQLite file and a free
//! loopback port, and kills it at the end.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Upper bound on the server coming up (migrations on an empty file).
const START_ATTEMPTS: u32 = 300;

struct Server {
    child: Child,
    base: String,
    port: u16,
    stderr: PathBuf,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Server {
    /// Starts `dormwatt serve --no-headend` with only `env` as DORMWATT_*
    /// environment, and waits for `/healthz`.
    async fn start(name: &str, env: &[(&str, &str)], setup: impl FnOnce(&Path)) -> Self {
        let dir = std::env::temp_dir().join(format!("dw-serve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        setup(&dir);
        let port = free_port();
        let stderr = dir.join("stderr.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dormwatt"));
        for (k, _) in std::env::vars() {
            if k.starts_with("DORMWATT_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env.iter().copied())
            .current_dir(&dir)
            .arg("--database-url")
            .arg(format!("sqlite://{}", dir.join("t.db").display()))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(["serve", "--no-headend"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        let child = cmd.spawn().expect("start dormwatt");
        let base = format!("http://127.0.0.1:{port}");
        let mut s = Server {
            child,
            base,
            port,
            stderr,
            _dir: TempDir(dir),
        };
        for _ in 0..START_ATTEMPTS {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("dormwatt exited with {status}: {}", s.stderr_text());
            }
            if let Ok(r) = reqwest::get(format!("{}/healthz", s.base)).await
                && r.status().is_success()
            {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("dormwatt did not come up: {}", s.stderr_text());
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Item 1: the documented production steps (no merchant configured) run no
/// sandbox, say what to configure, and serve no sandbox route.
#[tokio::test]
async fn serve_without_a_merchant_runs_no_sandbox_and_says_what_to_configure() {
    let s = Server::start("nomerchant", &[], |_| {}).await;
    let http = client();
    for path in [
        "/sandbox/wxpay/admin/pay",
        "/sandbox/wxpay/v3/pay/transactions/jsapi",
        "/admin/pay",
    ] {
        let r = http
            .post(format!("{}{path}", s.base))
            .json(&serde_json::json!({ "out_trade_no": "E1" }))
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status().as_u16(), 404, "{path}: {}", s.stderr_text());
    }
    let log = s.stderr_text();
    assert!(log.contains("payment side NOT started"), "{log}");
    assert!(log.contains("payment.wechat.mchid"), "{log}");
    assert!(!log.contains("sandbox listening"), "{log}");
}

/// Item 1: the explicit opt-in (an env var, for test scripts) runs the
/// sandbox on its own listener, warns loudly, and still not on the app's.
#[cfg(feature = "sandbox")]
#[tokio::test]
async fn an_explicit_sandbox_opt_in_warns_and_uses_its_own_listener() {
    let s = Server::start(
        "optin",
        &[("DORMWATT_PAYMENT__PROVIDER", "sandbox")],
        |_| {},
    )
    .await;
    let log = s.stderr_text();
    assert!(log.contains("PAYMENT SANDBOX ENABLED"), "{log}");
    let at = log
        .split("sandbox listening on ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("sandbox address in {log}"))
        .trim_end_matches('/')
        .to_owned();
    assert_ne!(at, s.base);
    let http = client();
    let app = http
        .post(format!("{}/admin/pay", s.base))
        .json(&serde_json::json!({ "out_trade_no": "E1" }))
        .send()
        .await
        .expect("POST app");
    assert_eq!(app.status().as_u16(), 404);
    let own = http
        .post(format!("{at}/admin/pay"))
        .json(&serde_json::json!({ "out_trade_no": "E1" }))
        .send()
        .await
        .expect("POST sandbox");
    assert_eq!(own.status().as_u16(), 409, "no such order at the sandbox");
}

/// Item 10: without `public_url`, links follow the address listened on
/// (the WeChat login's redirect_uri is one of them).
#[tokio::test]
async fn public_url_is_derived_from_the_listener() {
    let s = Server::start(
        "publicurl",
        &[
            ("DORMWATT_WEB__WECHAT_APPID", "wxTESTAPPID"),
            ("DORMWATT_WEB__WECHAT_SECRET_FILE", "secret.txt"),
            ("DORMWATT_PAYMENT__PROVIDER", "none"),
        ],
        |dir| std::fs::write(dir.join("secret.txt"), "test-secret\n").expect("secret"),
    )
    .await;
    let r = client()
        .get(format!("{}/login/wechat", s.base))
        .send()
        .await
        .expect("GET");
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let want = format!("redirect_uri=http%3A%2F%2F127.0.0.1%3A{}%2Flogin", s.port);
    assert!(location.contains(&want), "{location}");
}
