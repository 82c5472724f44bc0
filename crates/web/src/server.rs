//! The HTTP/1.1 accept loop: bounded in time and in connections.
//!
//! `axum::serve` sets no hyper timer, so hyper's header-read timeout never
//! fires and a client sending half a request line holds its socket forever
//! (issue 10 item 5). Here every connection is served by hyper's HTTP/1
//! builder with a Tokio timer and:
//!
//! - a **header-read timeout** (default 5 s) that also bounds an idle
//!   keep-alive connection: hyper starts it whenever it waits for the next
//!   request head, so a silent or trickling client is closed after it;
//! - the **request timeout** of [`crate::app`] (a slow body is read inside
//!   the handler, so it is bounded there);
//! - a **global connection cap**: at the cap we stop accepting (the kernel
//!   backlog queues the rest) instead of growing without bound;
//! - a **per-IP connection cap**: one address cannot take every slot.
//!
//! HTTP/2 is not offered: students reach us through WeChat's browser and
//! reverse proxies over HTTP/1.1, and an `auto` builder would wait for the
//! protocol preface without any timeout.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;

/// Limits of the accept loop (`[web]` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeLimits {
    /// A request head (and the wait for the next one on a kept-alive
    /// connection) must arrive within this.
    pub header_read_timeout: Duration,
    /// Most connections open at once.
    pub connections_max: usize,
    /// Most connections open at once from one IP address.
    pub connections_per_ip_max: usize,
    /// Reverse proxies whose `X-Forwarded-For` names the client: a request
    /// from one of these addresses is seen as coming from the rightmost
    /// address of that header that is not a trusted proxy. Empty (the
    /// default): the header is ignored and the socket's peer is the client.
    pub trusted_proxies: Arc<[IpAddr]>,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            connections_max: 1024,
            connections_per_ip_max: 64,
            trusted_proxies: Arc::from(Vec::new()),
        }
    }
}

/// The client of a request that arrived from `peer`: `peer` itself unless
/// it is a trusted proxy, else the rightmost `X-Forwarded-For` address
/// that is not a trusted proxy (the left part of the header is whatever
/// the client wrote, so it is never read past the first untrusted hop).
/// A malformed entry stops the walk at the last trusted hop, so a garbled
/// header cannot pick an address. Port 0: the client's port is unknown.
pub fn forwarded_client(
    peer: SocketAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[IpAddr],
) -> SocketAddr {
    if !trusted.contains(&peer.ip()) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            break;
        };
        client = SocketAddr::new(ip, 0);
        if !trusted.contains(&ip) {
            break;
        }
    }
    client
}

/// How long shutdown waits for open connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Largest request head hyper buffers (the default is ~400 KiB).
const READ_BUF_BYTES_MAX: usize = 64 * 1024;

/// Open connections per IP address.
#[derive(Default)]
struct PerIp {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    fn try_enter(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut m = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            map: Arc::clone(self),
            ip,
        })
    }
}

/// One open connection counted against its IP; released on drop.
struct IpSlot {
    map: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut m = self.map.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` with `limits` until `shutdown` resolves,
/// then lets open connections finish (at most [`SHUTDOWN_GRACE`]).
/// Handlers see the peer as `ConnectInfo<SocketAddr>`.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.connections_max.max(1)));
    let per_ip = Arc::new(PerIp::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Some(limits.header_read_timeout))
        .max_buf_size(READ_BUF_BYTES_MAX);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(slot) = per_ip.try_enter(peer.ip(), limits.connections_per_ip_max) else {
            tracing::debug!(peer = %peer.ip(), "per-IP connection cap reached; closing");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let svc = connection_service(router.clone(), peer, Arc::clone(&limits.trusted_proxies));
        let conn = http.serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period");
    }
    Ok(())
}

/// The router as a hyper service for one connection, with the peer address.
fn connection_service(
    router: Router,
    peer: SocketAddr,
    trusted: Arc<[IpAddr]>,
) -> hyper_util::service::TowerToHyperService<
    impl tower::Service<
        hyper::Request<hyper::body::Incoming>,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future = impl Send,
    > + Clone,
> {
    let svc = tower::ServiceBuilder::new()
        .map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
            let client = forwarded_client(peer, req.headers(), &trusted);
            req.extensions_mut().insert(ConnectInfo(client));
            req.map(axum::body::Body::new)
        })
        .service(router);
    hyper_util::service::TowerToHyperService::new(svc)
}

#[cfg(test)]
mod tests {
    use super::forwarded_client;
    use axum::http::{HeaderMap, HeaderValue};
    use std::net::{IpAddr, SocketAddr};

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    const PROXY: &str = "127.0.0.1:40000";

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let peer: SocketAddr = "198.51.100.9:5000".parse().expect("peer");
        let c = forwarded_client(peer, &headers(&["203.0.113.7"]), &[ip("127.0.0.1")]);
        assert_eq!(c, peer);
        // No trusted proxies configured: never read.
        let c = forwarded_client(
            PROXY.parse().expect("peer"),
            &headers(&["203.0.113.7"]),
            &[],
        );
        assert_eq!(c, PROXY.parse().expect("peer"));
    }

    #[test]
    fn a_trusted_proxy_names_the_rightmost_untrusted_hop() {
        let trusted = [ip("127.0.0.1"), ip("10.0.0.2")];
        let peer = PROXY.parse().expect("peer");
        // The client prepended a lie; the proxies appended the truth.
        let h = headers(&["1.2.3.4, 203.0.113.7", "10.0.0.2"]);
        assert_eq!(forwarded_client(peer, &h, &trusted).ip(), ip("203.0.113.7"));
        assert_eq!(
            forwarded_client(peer, &headers(&["2001:db8::5"]), &trusted).ip(),
            ip("2001:db8::5")
        );
        // No header: the proxy itself.
        assert_eq!(forwarded_client(peer, &HeaderMap::new(), &trusted), peer);
    }

    #[test]
    fn a_garbled_header_picks_no_address() {
        let trusted = [ip("127.0.0.1")];
        let peer = PROXY.parse().expect("peer");
        assert_eq!(
            forwarded_client(peer, &headers(&["203.0.113.7, not-an-ip"]), &trusted),
            peer
        );
        assert_eq!(forwarded_client(peer, &headers(&[""]), &trusted), peer);
    }
}
