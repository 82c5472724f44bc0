//! Issue 10 item 5: slow clients are closed, connections are capped. Raw
//! TCP sockets against `web::serve` on 127.0.0.1:0. No assertion is about
//! time: each waits for the server to close the socket, with a generous
//! bound that only turns "never" into a failure.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Turns "the server never closes it" into a test failure.
const NEVER: Duration = Duration::from_secs(20);

async fn spawn(limits: web::ServeLimits) -> (String, tokio::sync::oneshot::Sender<()>) {
    let db = store::testing::sqlite().await.expect("sqlite");
    let mut settings =
        web::Settings::new("http://127.0.0.1", domain::time::CampusTz::default(), false);
    settings.limits = limits;
    let state = web::AppState::new(db, settings, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(web::serve(listener, state, async {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// Reads until the server closes the socket; `None` if it stays open.
async fn read_until_closed(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let r = tokio::time::timeout(NEVER, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    r.ok().map(|()| got)
}

fn short() -> web::ServeLimits {
    web::ServeLimits {
        header_read_timeout: Duration::from_millis(500),
        ..web::ServeLimits::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_headers_are_closed_by_the_server() {
    let (addr, _stop) = spawn(short()).await;
    let mut socks = Vec::new();
    for i in 0..50 {
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        // Half a request head, never finished.
        s.write_all(format!("GET /healthz?{i} HTTP/1.1\r\nHost: x\r\nX-Slow: ").as_bytes())
            .await
            .expect("write");
        socks.push(s);
    }
    // And one that sends nothing at all.
    socks.push(TcpStream::connect(&addr).await.expect("connect"));
    for (i, s) in socks.iter_mut().enumerate() {
        assert!(
            read_until_closed(s).await.is_some(),
            "socket {i} with a partial head is still open"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let (addr, _stop) = spawn(short()).await;
    let mut s = TcpStream::connect(&addr).await.expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let got = read_until_closed(&mut s)
        .await
        .expect("the idle keep-alive connection is closed");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("ok"), "answered before closing: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_connection() {
    let limits = web::ServeLimits {
        // Long enough that the held sockets stay open during the test.
        header_read_timeout: Duration::from_secs(60),
        connections_max: 64,
        connections_per_ip_max: 4,
        ..web::ServeLimits::default()
    };
    let (addr, _stop) = spawn(limits).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\n").await.expect("write");
        held.push(s);
    }
    let mut fifth = TcpStream::connect(&addr).await.expect("connect");
    let _ = fifth.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").await;
    let got = read_until_closed(&mut fifth)
        .await
        .expect("the fifth connection from one address is closed");
    assert!(got.is_empty(), "closed without an answer");
    // Once one is released, the address may connect again.
    drop(held.pop());
    let mut again = None;
    for _ in 0..100 {
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let got = read_until_closed(&mut s).await.unwrap_or_default();
        if !got.is_empty() {
            again = Some(got);
            break;
        }
        // The server notices the dropped socket asynchronously.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text =
        String::from_utf8_lossy(&again.expect("served again after a slot freed")).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

/// Behind a trusted proxy the client is the forwarded address (a failed
/// staff login is recorded under it); from anywhere else the header is
/// ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_trusted_proxy_names_the_client() {
    let db = store::testing::sqlite().await.expect("sqlite");
    for (trusted, forwarded, recorded) in [
        (
            vec!["127.0.0.1".parse().expect("ip")],
            "198.51.100.1, 203.0.113.7",
            "203.0.113.7",
        ),
        (Vec::new(), "203.0.113.8", "127.0.0.1"),
    ] {
        let mut settings =
            web::Settings::new("http://127.0.0.1", domain::time::CampusTz::default(), false);
        settings.limits.trusted_proxies = std::sync::Arc::from(trusted);
        let state = web::AppState::new(db.clone(), settings, None);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (_stop, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(web::serve(listener, state, async {
            let _ = rx.await;
        }));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let page = http
            .get(format!("{base}/staff/login"))
            .send()
            .await
            .expect("GET");
        let cookie = page
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
            .collect::<Vec<_>>()
            .join("; ");
        let html = page.text().await.expect("body");
        let csrf = html
            .split("name=csrf value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("csrf");
        let name = format!("nobody-{recorded}");
        http.post(format!("{base}/staff/login"))
            .header(reqwest::header::COOKIE, &cookie)
            .header("x-forwarded-for", forwarded)
            .form(&[
                ("csrf", csrf),
                ("name", &name),
                ("password", "wrong password here"),
            ])
            .send()
            .await
            .expect("POST");
        let store::Db::Sqlite(pool) = &db else {
            unreachable!("a SQLite test")
        };
        let ip: String =
            sqlx::query_scalar("select client_ip from staff_login_attempt where name = ?1")
                .bind(&name)
                .fetch_one(pool)
                .await
                .expect("the failed attempt is recorded");
        assert_eq!(ip, recorded, "forwarded {forwarded}");
    }
}
