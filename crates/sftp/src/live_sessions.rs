//! Live sessions: every logged-in session on this node, by account and key.
//!
//! The registry enforces the per-account session cap (`MaxSessions` for an
//! account rather than a connection) and lets a change made on any node reach
//! the sessions on this one: every node polls the shared store for revoked
//! keys and ends the sessions that logged in with them, so no cache or message
//! bus is needed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::server::Handle;

use crate::server::{Shared, disconnect};

/// Live logged-in sessions by account: for the per-account cap, and to end
/// the sessions of a revoked key.
#[derive(Default)]
pub(crate) struct SessionRegistry {
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, LiveSession>>,
}

struct LiveSession {
    account: String,
    fingerprint: String,
    handle: Option<Handle>,
}

impl SessionRegistry {
    /// Reserves a session slot for `account`, or `None` when it is full.
    pub(crate) fn reserve(&self, account: &str, fingerprint: &str, max: usize) -> Option<u64> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.values().filter(|s| s.account == account).count() >= max {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        live.insert(
            id,
            LiveSession {
                account: account.to_owned(),
                fingerprint: fingerprint.to_owned(),
                handle: None,
            },
        );
        Some(id)
    }

    pub(crate) fn attach(&self, id: u64, handle: Handle) {
        if let Some(s) = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&id)
        {
            s.handle = Some(handle);
        }
    }

    pub(crate) fn release(&self, id: u64) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Handles of the live sessions that logged in with this key.
    pub(crate) fn sessions_of_key(&self, account: &str, fingerprint: &str) -> Vec<Handle> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|s| s.account == account && s.fingerprint == fingerprint)
            .filter_map(|s| s.handle.clone())
            .collect()
    }
}

/// How often every node checks the store for revoked keys.
const REVOCATION_POLL: Duration = Duration::from_secs(2);

/// Ends the live sessions whose key was revoked, on whichever node revoked
/// it: every node polls the shared store, so no cache or message bus is needed.
pub(crate) async fn end_revoked_sessions(shared: Arc<Shared>) {
    let mut since = shared.store.now().await.unwrap_or(0);
    let mut tick = tokio::time::interval(REVOCATION_POLL);
    loop {
        tick.tick().await;
        let now = match shared.store.now().await {
            Ok(now) => now,
            Err(e) => {
                tracing::warn!(error = %e, "cannot check for revoked keys");
                continue;
            }
        };
        // A revoking transaction may commit a moment after its timestamp:
        // look back a little; ending an ended session again is harmless.
        match shared.store.revoked_since(since - 5_000).await {
            Ok(revoked) => {
                for key in revoked {
                    for handle in shared
                        .sessions
                        .sessions_of_key(&key.account, &key.fingerprint)
                    {
                        tracing::info!(account = %key.account, fingerprint = %key.fingerprint, "key revoked: ending its session");
                        disconnect(&handle, "the key this session logged in with was revoked")
                            .await;
                    }
                }
                since = now;
            }
            Err(e) => tracing::warn!(error = %e, "cannot check for revoked keys"),
        }
    }
}
