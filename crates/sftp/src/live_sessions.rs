//! Live sessions: every logged-in session on this node, by account and key.
//!
//! The registry enforces the per-account session cap (`MaxSessions` for an
//! account rather than a connection) and lets a change made on any node reach
//! the sessions on this one: every few seconds each node asks the shared
//! store which of its sessions' logins (account, key) would no longer be
//! allowed, and ends those sessions, so no cache or message bus is needed.
//! A session lives exactly as long as a new login with its key would work:
//! revoked, retired and expired keys and disabled accounts all end it the
//! same way, and each ending is written to the audit log with its reason.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_store::{Actor, LapsedLogin, LoginVerdict};
use russh::server::Handle;
use tokio::time::MissedTickBehavior;

use crate::database_watch::Caller;
use crate::server::{Shared, disconnect};

/// How often every node checks its sessions' logins against the store.
const SESSION_CHECK_EVERY: Duration = Duration::from_secs(2);

/// The longest one check may wait for the database.
const SESSION_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Who the audit log names for sessions the server ended.
const AUDIT_ACTOR: &str = "sftp";

/// Live logged-in sessions by account: for the per-account cap, and to end
/// the sessions whose login lapsed.
#[derive(Default)]
pub(crate) struct SessionRegistry {
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, LiveSession>>,
}

struct LiveSession {
    account: String,
    fingerprint: String,
    peer: SocketAddr,
    handle: Option<Handle>,
    /// Set once the session is being ended, so it is ended (and audited) once.
    ending: bool,
}

/// A session to end: where it came from and how to reach it.
pub(crate) struct Ending {
    peer: SocketAddr,
    handle: Handle,
}

impl SessionRegistry {
    /// Reserves a session slot for `account`, or `None` when it is full.
    /// The slot is held until [`SessionRegistry::release`], which the
    /// connection's guard calls however the connection ends.
    pub(crate) fn reserve(
        &self,
        account: &str,
        fingerprint: &str,
        peer: SocketAddr,
        max: usize,
    ) -> Option<u64> {
        let mut live = self.lock();
        if live.values().filter(|s| s.account == account).count() >= max {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        live.insert(
            id,
            LiveSession {
                account: account.to_owned(),
                fingerprint: fingerprint.to_owned(),
                peer,
                handle: None,
                ending: false,
            },
        );
        Some(id)
    }

    pub(crate) fn attach(&self, id: u64, handle: Handle) {
        if let Some(s) = self.lock().get_mut(&id) {
            s.handle = Some(handle);
        }
    }

    pub(crate) fn release(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// The distinct logins (account, fingerprint) of sessions not yet ending.
    fn logins(&self) -> Vec<(String, String)> {
        let live = self.lock();
        let distinct: BTreeSet<(&str, &str)> = live
            .values()
            .filter(|s| !s.ending)
            .map(|s| (s.account.as_str(), s.fingerprint.as_str()))
            .collect();
        distinct
            .into_iter()
            .map(|(a, f)| (a.to_owned(), f.to_owned()))
            .collect()
    }

    /// Marks the live sessions of this login as ending and returns them;
    /// sessions already ending are not returned again.
    fn start_ending(&self, account: &str, fingerprint: &str) -> Vec<Ending> {
        let mut live = self.lock();
        live.values_mut()
            .filter(|s| !s.ending && s.account == account && s.fingerprint == fingerprint)
            .filter_map(|s| {
                let handle = s.handle.clone()?;
                s.ending = true;
                Some(Ending {
                    peer: s.peer,
                    handle,
                })
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, LiveSession>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Every [`SESSION_CHECK_EVERY`], ends the sessions on this node whose login
/// a new login would no longer be allowed. With no session to check it
/// still asks the database for `SELECT 1`, so an outage is noticed (and
/// logged, and told to connecting clients) before the next login waits on it.
pub(crate) async fn end_lapsed_sessions(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(SESSION_CHECK_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let logins = shared.sessions.logins();
        let checked = tokio::time::timeout(SESSION_CHECK_TIMEOUT, async {
            if logins.is_empty() {
                shared.store.ping().await.map(|()| Vec::new())
            } else {
                shared.store.lapsed_logins(&logins).await
            }
        })
        .await;
        let lapsed = match checked {
            Ok(Ok(lapsed)) => lapsed,
            Ok(Err(e)) => {
                shared.database.failed(Caller::SessionCheck, &e);
                continue;
            }
            Err(_) => {
                let why = format!("no answer within {SESSION_CHECK_TIMEOUT:?}");
                shared.database.failed(Caller::SessionCheck, &why);
                continue;
            }
        };
        shared.database.answered();
        for login in lapsed {
            for ending in shared
                .sessions
                .start_ending(&login.account, &login.fingerprint)
            {
                tokio::spawn(end_session(shared.clone(), login.clone(), ending));
            }
        }
    }
}

/// Why a lapsed login ends its sessions, in a few words for the log line
/// ("key revoked: ending its session").
fn short_reason(verdict: &LoginVerdict) -> &'static str {
    match verdict {
        LoginVerdict::KeyRevoked { .. } => "key revoked",
        LoginVerdict::KeyRetired { .. } => "key retired",
        LoginVerdict::KeyExpired { .. } => "key expired",
        LoginVerdict::AccountDisabled => "account disabled",
        LoginVerdict::UnknownAccount => "account deleted",
        LoginVerdict::KeyNotInstalled | LoginVerdict::KeyPending { .. } => "key removed",
        LoginVerdict::Accepted { .. } => "login allowed",
    }
}

/// Disconnects one session (telling the client why) and records it in the
/// audit log.
async fn end_session(shared: Arc<Shared>, login: LapsedLogin, ending: Ending) {
    let reason = short_reason(&login.verdict);
    tracing::info!(
        account = %login.account,
        fingerprint = %login.fingerprint,
        peer = %ending.peer,
        detail = %login.verdict,
        "{reason}: ending its session"
    );
    disconnect(
        &ending.handle,
        &format!("session ended by the server: {}", login.verdict),
    )
    .await;
    let actor = Actor::new(AUDIT_ACTOR).with_client_addr(ending.peer.to_string());
    let detail = format!(
        "ended the SFTP session from {} that logged in with {}: {}",
        ending.peer, login.fingerprint, login.verdict
    );
    if let Err(e) = shared
        .store
        .record_audit(&actor, Some(&login.account), "session.end", &detail)
        .await
    {
        tracing::warn!(account = %login.account, error = %e, "could not record the ended session in the audit log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "127.0.0.1:50000".parse().unwrap()
    }

    #[test]
    fn sessions_are_capped_per_account_and_released() {
        let registry = SessionRegistry::default();
        let a1 = registry.reserve("a", "SHA256:k1", peer(), 2).unwrap();
        let _a2 = registry.reserve("a", "SHA256:k2", peer(), 2).unwrap();
        assert!(registry.reserve("a", "SHA256:k1", peer(), 2).is_none());
        assert!(
            registry.reserve("b", "SHA256:k1", peer(), 2).is_some(),
            "other accounts are not affected"
        );
        registry.release(a1);
        assert!(registry.reserve("a", "SHA256:k1", peer(), 2).is_some());
    }

    #[test]
    fn logins_are_distinct_and_skip_sessions_being_ended() {
        let registry = SessionRegistry::default();
        registry.reserve("a", "SHA256:k1", peer(), 10).unwrap();
        registry.reserve("a", "SHA256:k1", peer(), 10).unwrap();
        registry.reserve("b", "SHA256:k2", peer(), 10).unwrap();
        assert_eq!(
            registry.logins(),
            [
                ("a".to_owned(), "SHA256:k1".to_owned()),
                ("b".to_owned(), "SHA256:k2".to_owned())
            ]
        );
        // Without a handle (login not finished) a session cannot be ended yet
        // and stays listed.
        assert!(registry.start_ending("a", "SHA256:k1").is_empty());
        assert_eq!(registry.logins().len(), 2);
    }
}
