//! The demo payment sandbox alone, at the root of its own loopback listener,
//! for clients that are not ours (scripts/interop-wxpay.sh drives it with a
//! PyPI WeChat Pay SDK): `cargo run -p pay --example sandbox_serve [port]`.
//!
//! Prints `PORT <n>` once listening; stops when its standard input closes
//! (the driving script exits) or after ten minutes, whichever comes first.

use std::time::Duration;

use pay::Sandbox;
use tokio::io::AsyncReadExt as _;

/// A forgotten sandbox must not run for ever.
const LIFETIME_MAX: Duration = Duration::from_secs(600);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .map(|p| p.parse())
        .transpose()?
        .unwrap_or(0);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("PORT {}", listener.local_addr()?.port());
    let stop = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0_u8; 64];
        // EOF (or an error) on stdin means whoever started us is gone.
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    let stop = async move {
        let _ = tokio::time::timeout(LIFETIME_MAX, stop).await;
    };
    Sandbox::demo().serve(listener, stop).await?;
    Ok(())
}
