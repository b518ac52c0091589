//! The SSH listener: accepts connections, bounds them, and shuts down cleanly.
//!
//! russh serves one connection per task with no limits of its own, so this
//! module runs each connection under the limits OpenSSH has: admission
//! ([`crate::admission`]: caps on connections not yet logged in, like
//! `MaxStartups`), a login grace period (`LoginGraceTime`), live sessions
//! ([`crate::live_sessions`]: a cap per account, ended when their key is
//! revoked), and a graceful stop that lets transfers finish before closing
//! what is left.
//! It also owns the stream of upload events: partial uploads are recorded in
//! the store, and every event is published for ingest.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use ferry_store::{Store, UploadState};
use russh::server::Handle;
use russh::{Disconnect, MethodKind, MethodSet, SshId};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;

use crate::admission::{Admission, ConnectionGuard, MaxStartups};
use crate::budgets::Budgets;
use crate::database_watch::DatabaseWatch;
use crate::host_keys::HostKeys;
use crate::live_sessions::{SessionRegistry, end_lapsed_sessions};
use crate::penalties::{Activation, Penalties};
use crate::protocol::budget::{DescriptorBudget, Limits};
use crate::session::SshSession;
use crate::upload::{ENDED_WITHOUT_CLOSE, UploadEvent};

/// The SFTP server's settings (the `[sftp]` section, plus `data_dir`).
#[derive(Clone, Debug)]
pub struct SftpSettings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Time a client has from connecting to logging in.
    pub login_grace: Duration,
    /// Early drop and the cap for connections not yet logged in, in total.
    pub max_startups: MaxStartups,
    /// Connections not yet logged in, from one source (an IPv4 address, an
    /// IPv6 /64).
    pub max_unauthenticated_per_address: usize,
    /// Per-source penalties on or off.
    pub penalties: bool,
    /// Networks never penalised.
    pub penalty_exempt: Vec<ipnet::IpNet>,
    /// Login attempts last seen longer ago than this are deleted.
    pub attempts_retention: Duration,
    /// Offer the NIST curves and the ECDSA host key (JSch 0.1.x clients).
    pub legacy_algorithms: bool,
    /// This node's name (penalty rows, shared with other nodes).
    pub node: String,
    /// Logged-in sessions one account may hold at once.
    pub max_sessions_per_account: usize,
    /// Time given to open sessions to finish after a stop is requested.
    pub shutdown_grace: Duration,
    /// A session with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// Each account's limits unless the account has its own.
    pub limits: Limits,
    /// The process's file-descriptor budget for SFTP handles.
    pub descriptors: Arc<DescriptorBudget>,
}

/// State every connection of one server shares.
pub(crate) struct Shared {
    pub store: Store,
    pub settings: SftpSettings,
    pub events: mpsc::UnboundedSender<UploadEvent>,
    pub sessions: SessionRegistry,
    pub admission: Admission,
    pub budgets: Budgets,
    pub database: DatabaseWatch,
    pub penalties: Penalties,
}

/// Temporary upload files untouched this long are leftovers of a crash. An
/// upload in progress on any node sharing `data_dir` keeps its file fresh.
const ABANDONED_UPLOAD_AGE: Duration = Duration::from_secs(24 * 3600);

/// A bound SFTP server, ready to run.
pub struct SftpServer {
    listener: TcpListener,
    config: Arc<russh::server::Config>,
    shared: Arc<Shared>,
    events: mpsc::UnboundedReceiver<UploadEvent>,
    uploads: broadcast::Sender<UploadEvent>,
    activations: mpsc::UnboundedReceiver<Activation>,
}

impl SftpServer {
    /// Binds the listener. Fails with the address in the message when the
    /// port is taken or not allowed.
    pub async fn bind(
        settings: SftpSettings,
        store: Store,
        host_keys: &HostKeys,
    ) -> io::Result<SftpServer> {
        let listener = TcpListener::bind(settings.listen).await.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot listen on {} for SFTP: {e}; choose a free port with [sftp] listen or FERRY_SFTP__LISTEN",
                    settings.listen
                ),
            )
        })?;
        match crate::upload::sweep_abandoned_uploads(&settings.data_dir, ABANDONED_UPLOAD_AGE) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                removed = n,
                "removed temporary files of uploads abandoned before the last stop"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot sweep abandoned upload files"),
        }
        let config = Arc::new(ssh_config(&settings, host_keys));
        let (tx, events) = mpsc::unbounded_channel();
        let (uploads, _) = broadcast::channel(1024);
        let budgets = Budgets::new(settings.limits, Arc::clone(&settings.descriptors));
        let (penalties, activations) =
            Penalties::new(settings.penalties, settings.penalty_exempt.clone());
        let shared = Arc::new(Shared {
            budgets,
            store,
            settings,
            events: tx,
            sessions: SessionRegistry::default(),
            admission: Admission::default(),
            database: DatabaseWatch::default(),
            penalties,
        });
        Ok(SftpServer {
            listener,
            config,
            shared,
            events,
            uploads,
            activations,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Upload events (finished and partial uploads), for ingest.
    pub fn subscribe_uploads(&self) -> broadcast::Receiver<UploadEvent> {
        self.uploads.subscribe()
    }

    /// Serves until `stop` completes, then stops accepting, gives open
    /// sessions `shutdown_grace` to finish, and closes the rest. Uploads cut
    /// off this way are recorded as partial; none is left under its name.
    pub async fn run(self, stop: impl Future<Output = ()>) -> io::Result<()> {
        let SftpServer {
            listener,
            config,
            shared,
            events,
            uploads,
            activations,
        } = self;
        let recorder = tokio::spawn(record_upload_events(shared.store.clone(), events, uploads));
        let lapsed = tokio::spawn(end_lapsed_sessions(shared.clone()));
        let penalty_sync = tokio::spawn(crate::penalties::sync_with_store(
            shared.clone(),
            activations,
        ));
        let pruning = tokio::spawn(prune_auth_attempts(shared.clone()));
        let (force_close, force_rx) = watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                accepted = listener.accept() => match accepted {
                    // A refused connection is closed at once, before the SSH
                    // banner: it costs one accept and one close.
                    Ok((stream, peer)) => match ConnectionGuard::admit(&shared, peer.ip()) {
                        Ok(guard) => {
                            connections.spawn(serve_connection(config.clone(), shared.clone(), stream, peer, guard, force_rx.clone()));
                        }
                        Err(refusal) => {
                            drop(stream);
                            shared.admission.refused(peer.ip(), refusal);
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        lapsed.abort();
        penalty_sync.abort();
        pruning.abort();
        let open = connections.len();
        tracing::info!(open, grace = ?shared.settings.shutdown_grace, "stopping: no new connections; waiting for open sessions");
        let drained = tokio::time::timeout(shared.settings.shutdown_grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::info!(
                open = connections.len(),
                "grace period over: closing the remaining sessions"
            );
            let _ = force_close.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(10), async {
                while connections.join_next().await.is_some() {}
            })
            .await;
            connections.abort_all();
        }
        drop(shared);
        let _ = tokio::time::timeout(Duration::from_secs(10), recorder).await;
        Ok(())
    }
}

/// russh's configuration, with its unsafe or slow defaults replaced (see
/// `../shared/notes/russh.md`).
fn ssh_config(settings: &SftpSettings, host_keys: &HostKeys) -> russh::server::Config {
    russh::server::Config {
        server_id: SshId::Standard(format!("SSH-2.0-Ferry_{}", env!("CARGO_PKG_VERSION")).into()),
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        // OpenSSH probes "none" first; without this every login waits 1 s.
        auth_rejection_time_initial: Some(Duration::ZERO),
        auth_rejection_time: Duration::from_millis(300),
        keys: host_keys
            .private_keys()
            .into_iter()
            .filter(|key| settings.legacy_algorithms || !crate::algorithms::is_legacy_host_key(key))
            .collect(),
        max_auth_attempts: 6,
        inactivity_timeout: Some(settings.idle_timeout),
        keepalive_interval: Some(Duration::from_secs(60)),
        nodelay: true,
        preferred: crate::algorithms::preferred(settings.legacy_algorithms),
        ..Default::default()
    }
}

/// Runs one connection: SSH handshake and login within the grace period,
/// then the session until it ends or the server is stopped.
async fn serve_connection(
    config: Arc<russh::server::Config>,
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    guard: ConnectionGuard,
    mut force_close: watch::Receiver<bool>,
) {
    let deadline = guard.deadline();
    let mut authenticated = guard.authenticated_signal();
    let banner = guard.banner.clone();
    let handler = SshSession::new(shared.clone(), peer, guard);
    let stream = BannerTap::new(stream, banner.clone());
    let session =
        match tokio::time::timeout_at(deadline, russh::server::run_stream(config, stream, handler))
            .await
        {
            Ok(Ok(session)) => session,
            Ok(Err(e)) => return log_session_end(peer, &banner, e),
            Err(_) => {
                tracing::info!(%peer, "login grace time expired before the SSH handshake");
                return;
            }
        };
    let handle = session.handle();
    tokio::pin!(session);
    let login = tokio::select! {
        biased;
        result = &mut session => return finish(peer, &banner, result),
        login = tokio::time::timeout_at(deadline, async { authenticated.wait_for(|a| *a).await.is_ok() }) => login,
    };
    match login {
        Ok(true) => tokio::select! {
            result = &mut session => return finish(peer, &banner, result),
            _ = async { force_close.wait_for(|f| *f).await.is_ok() } => disconnect(&handle, "server is shutting down").await,
        },
        // The connection's handler is gone before a login: the client left
        // (for example after a refused login) and the session is ending.
        Ok(false) => {}
        Err(_) => {
            tracing::info!(%peer, "login grace time expired; disconnecting");
            disconnect(&handle, "login grace time expired").await;
        }
    }
    let result = tokio::time::timeout(Duration::from_secs(5), &mut session).await;
    if let Ok(result) = result {
        finish(peer, &banner, result);
    }
}

pub(crate) async fn disconnect(handle: &Handle, why: &str) {
    let _ = handle
        .disconnect(Disconnect::ByApplication, why.to_owned(), String::new())
        .await;
}

fn finish(peer: SocketAddr, banner: &OnceLock<String>, result: Result<(), russh::Error>) {
    if let Err(e) = result {
        log_session_end(peer, banner, e);
    }
}

/// Logs why a connection ended badly; a failed algorithm negotiation names
/// both sides' offers, so an admin can see what the client lacked.
fn log_session_end(peer: SocketAddr, banner: &OnceLock<String>, error: russh::Error) {
    let client = banner.get().map(String::as_str).unwrap_or("(no banner)");
    match &error {
        russh::Error::NoCommonAlgo { .. } => {
            tracing::warn!(%peer, client, "algorithm negotiation failed: {error}")
        }
        russh::Error::IO(_) | russh::Error::Disconnect | russh::Error::HUP => {
            tracing::debug!(%peer, client, "connection ended: {error}")
        }
        _ => tracing::info!(%peer, client, "connection ended: {error}"),
    }
}

/// How often login attempts past `sftp.attempts_retention` are deleted.
const ATTEMPT_PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Deletes login attempts older than the retention, at start and hourly.
async fn prune_auth_attempts(shared: Arc<Shared>) {
    let retention =
        i64::try_from(shared.settings.attempts_retention.as_millis()).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval(ATTEMPT_PRUNE_EVERY);
    loop {
        tick.tick().await;
        match shared.store.prune_auth_attempts(retention).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(
                removed,
                "deleted login attempts older than sftp.attempts_retention"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot delete old login attempts"),
        }
    }
}

/// Records partial uploads with their reason (finished ones are ingest's to
/// record) and publishes every upload event.
async fn record_upload_events(
    store: Store,
    mut events: mpsc::UnboundedReceiver<UploadEvent>,
    uploads: broadcast::Sender<UploadEvent>,
) {
    while let Some(event) = events.recv().await {
        match &event {
            UploadEvent::Finished(f) => {
                metrics::counter!("ferry_sftp_uploads_total", "result" => "finished").increment(1);
                tracing::info!(account = %f.account, path = %f.path, size = f.size, "upload finished")
            }
            UploadEvent::Partial(p) => {
                metrics::counter!("ferry_sftp_uploads_total", "result" => "partial").increment(1);
                if p.reason == ENDED_WITHOUT_CLOSE {
                    tracing::info!(account = %p.account, path = %p.path, size = p.size, "upload ended without close: recorded as partial");
                } else {
                    tracing::warn!(account = %p.account, path = %p.path, size = p.size, reason = %p.reason, "upload failed: recorded as partial");
                }
                let size = i64::try_from(p.size).unwrap_or(i64::MAX);
                // Named like ingest names finished files: the path under /inbound.
                let name = p.path.strip_prefix("/inbound/").unwrap_or(&p.path);
                if let Err(e) = store
                    .record_upload(
                        &p.account,
                        name,
                        size,
                        UploadState::Partial,
                        Some(&p.reason),
                    )
                    .await
                {
                    tracing::warn!(error = %e, "could not record a partial upload");
                }
            }
        }
        let _ = uploads.send(event);
    }
}

/// Passes a TCP stream through, keeping the client's SSH identification line
/// (e.g. `SSH-2.0-OpenSSH_9.2p1`) so login attempts can record the client.
struct BannerTap<S> {
    inner: S,
    banner: Arc<OnceLock<String>>,
    seen: Vec<u8>,
}

impl<S> BannerTap<S> {
    fn new(inner: S, banner: Arc<OnceLock<String>>) -> Self {
        BannerTap {
            inner,
            banner,
            seen: Vec::new(),
        }
    }

    fn observe(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' || self.seen.len() >= 255 {
                let line = String::from_utf8_lossy(&self.seen).trim_end().to_owned();
                if line.starts_with("SSH-") {
                    let _ = self.banner.set(line);
                    self.seen = Vec::new();
                    return;
                }
                self.seen.clear();
            } else {
                self.seen.push(b);
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for BannerTap<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.banner.get().is_none() {
            let new = buf.filled()[before..].to_vec();
            self.observe(&new);
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for BannerTap<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_tap_keeps_the_identification_line() {
        let banner = Arc::new(OnceLock::new());
        let mut tap = BannerTap::new((), banner.clone());
        tap.observe(b"SSH-2.0-Open");
        tap.observe(b"SSH_9.2p1 Debian\r\n\0\0\0binary");
        assert_eq!(banner.get().unwrap(), "SSH-2.0-OpenSSH_9.2p1 Debian");
    }
}
