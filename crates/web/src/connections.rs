//! The admin web's connections: how many, from whom, and for how long.
//!
//! `axum::serve` accepts every connection and lets a client take as long as
//! it likes to send its headers, so a few hundred half-sent requests used to
//! eat the process's descriptors (and with them SFTP logins). This accept
//! loop serves HTTP/1.1 with hyper directly and adds:
//! - a cap on connections in total: past it, accepting waits, so new
//!   connections queue in the kernel and cost the process nothing;
//! - a cap per client address: past it, a new connection from that address
//!   is closed at once (proxies in `web.trusted_proxies` are exempt, since
//!   every client behind them shares their address);
//! - hyper's header read timeout, which runs whenever a connection waits
//!   for a request's headers, so it ends both half-sent requests and idle
//!   kept-alive connections;
//! - graceful shutdown: requests in flight are finished, then connections close.
//!
//! The request timeout (headers to the end of the answer) is a layer on the
//! router, see [`crate::Web::router`].

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// How long open connections get to finish after a stop is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The web's limits (the `[web]` keys of the same names).
#[derive(Debug, Clone)]
pub struct WebLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections served at once from one client address.
    pub max_connections_per_address: usize,
    /// Time to send a request's headers; also ends idle kept-alive connections.
    pub header_timeout: Duration,
    /// Time from a request's headers to the end of its answer.
    pub request_timeout: Duration,
    /// Proxies allowed to name the client's address.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for WebLimits {
    fn default() -> Self {
        WebLimits {
            max_connections: 256,
            max_connections_per_address: 32,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            trusted_proxies: Vec::new(),
        }
    }
}

/// Open connections per client address.
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in [`PerAddress`], given back on drop.
struct AddressSlot {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    fn take(table: &Arc<PerAddress>, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut counts = table.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: table.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.table.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes,
/// then finishes the requests in flight (for at most 10 s).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: WebLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address = Arc::new(PerAddress::default());
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "web: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let exempt = crate::client::is_trusted(peer.ip(), &limits.trusted_proxies);
        let slot = if exempt {
            None
        } else {
            match PerAddress::take(&per_address, peer.ip(), limits.max_connections_per_address) {
                Some(slot) => Some(slot),
                None => {
                    metrics::counter!("ferry_web_connections_refused_total").increment(1);
                    continue;
                }
            }
        };
        let service = router
            .clone()
            .map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                req
            });
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "web connection ended");
            }
            drop((permit, slot));
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("web: connections still open after the grace period are closed");
    }
    Ok(())
}
