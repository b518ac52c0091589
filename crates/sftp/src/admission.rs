//! Admission: which connections the server takes on, and the claims each
//! admitted connection holds on the server's limits.
//!
//! russh accepts every TCP connection it is given, so this module adds what
//! OpenSSH has: a cap on connections that have not logged in yet, in total and
//! per client address (like `MaxStartups`), and the per-account session slot a
//! connection takes when it logs in. A [`ConnectionGuard`] holds those claims
//! and gives them back when the connection ends, however it ends. Refusals are
//! logged sparingly, so a flood of connections is not a flood of log lines.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use russh::server::Handle;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::server::Shared;

/// Connections not yet logged in, by client address, and the refusal log.
#[derive(Default)]
pub(crate) struct Admission {
    unauthenticated: Mutex<HashMap<IpAddr, usize>>,
    refusals: RefusalLog,
}

/// How often a refused-connection line may be logged: a flood of connections
/// must not become a flood of log lines.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Logs connections refused for the unauthenticated caps: the first at once,
/// then at most one line per [`REFUSAL_LOG_EVERY`] with the count since.
#[derive(Default)]
struct RefusalLog {
    state: Mutex<(Option<Instant>, u64)>,
}

impl RefusalLog {
    fn note(&self, ip: IpAddr, total: usize, from_ip: usize) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last, unlogged) = &mut *state;
        *unlogged += 1;
        if last.is_some_and(|at| at.elapsed() < REFUSAL_LOG_EVERY) {
            return;
        }
        tracing::warn!(
            %ip,
            total,
            from_ip,
            refused = *unlogged,
            "refused connections: too many connections are waiting to log in; raise [sftp] max_unauthenticated(_per_address) if these are real clients"
        );
        *last = Some(Instant::now());
        *unlogged = 0;
    }
}

/// One admitted connection's claims on the server's limits, released when
/// the connection ends (the guard lives in the session handler).
pub(crate) struct ConnectionGuard {
    shared: Arc<Shared>,
    ip: IpAddr,
    counted_unauthenticated: bool,
    session_id: Option<u64>,
    authenticated: watch::Sender<bool>,
    pub(crate) banner: Arc<OnceLock<String>>,
}

impl ConnectionGuard {
    /// Admits a new connection unless the unauthenticated caps are reached.
    pub(crate) fn admit(shared: &Arc<Shared>, ip: IpAddr) -> Option<ConnectionGuard> {
        let mut counts = shared
            .admission
            .unauthenticated
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let total: usize = counts.values().sum();
        let from_ip = counts.get(&ip).copied().unwrap_or(0);
        if total >= shared.settings.max_unauthenticated
            || from_ip >= shared.settings.max_unauthenticated_per_address
        {
            drop(counts);
            shared.admission.refusals.note(ip, total, from_ip);
            return None;
        }
        *counts.entry(ip).or_default() += 1;
        Some(ConnectionGuard {
            shared: shared.clone(),
            ip,
            counted_unauthenticated: true,
            session_id: None,
            authenticated: watch::channel(false).0,
            banner: Arc::new(OnceLock::new()),
        })
    }

    pub(crate) fn authenticated_signal(&self) -> watch::Receiver<bool> {
        self.authenticated.subscribe()
    }

    pub(crate) fn client_banner(&self) -> Option<String> {
        self.banner.get().cloned()
    }

    /// Takes a session slot for the account; false when it has too many.
    pub(crate) fn reserve_session(
        &mut self,
        account: &str,
        fingerprint: &str,
        peer: std::net::SocketAddr,
    ) -> bool {
        if self.session_id.is_some() {
            return true;
        }
        self.session_id = self.shared.sessions.reserve(
            account,
            fingerprint,
            peer,
            self.shared.settings.max_sessions_per_account,
        );
        self.session_id.is_some()
    }

    /// Called once the login succeeded: frees the unauthenticated slot and
    /// makes the session reachable for revocation.
    pub(crate) fn logged_in(&mut self, handle: Handle) {
        self.release_unauthenticated();
        if let Some(id) = self.session_id {
            self.shared.sessions.attach(id, handle);
        }
        let _ = self.authenticated.send(true);
    }

    fn release_unauthenticated(&mut self) {
        if !std::mem::take(&mut self.counted_unauthenticated) {
            return;
        }
        let mut counts = self
            .shared
            .admission
            .unauthenticated
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.release_unauthenticated();
        if let Some(id) = self.session_id {
            self.shared.sessions.release(id);
        }
    }
}
