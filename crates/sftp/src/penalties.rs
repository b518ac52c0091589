//! Per-source penalties: a source that keeps failing to log in is refused
//! for a while, modelled on OpenSSH's `PerSourcePenalties`.
//!
//! Every connection that ends without logging in adds a penalty to its
//! source (an IPv4 address, an IPv6 /64): failed authentication or an
//! unknown user 5 s, no authentication attempted 1 s, login grace exceeded
//! 10 s. Penalties run down in real time; once more than 15 s are
//! outstanding the source is refused, right after accept and before the SSH
//! banner, until they have run down (at most 10 minutes). A district's own
//! client is never penalised for probing: the penalty is counted once per
//! connection, by how it ended, and a connection that logs in costs nothing.
//!
//! Penalties live in this node's memory, so the check on every accepted
//! connection never waits for anything. The rare moments a penalty becomes
//! active are written to the store (by a background task, never on the
//! accept path) for `ferry penalties list` and the admin web; lifts made
//! there are polled for and taken up within seconds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::server::Shared;

/// Penalty for a connection whose authentication failed.
pub const AUTH_FAILED: Duration = Duration::from_secs(5);
/// Penalty for a connection that tried a user name no account has.
pub const UNKNOWN_USER: Duration = Duration::from_secs(5);
/// Penalty for a connection that ended without trying to authenticate.
pub const NO_AUTH: Duration = Duration::from_secs(1);
/// Penalty for a connection that did not log in within the login grace.
pub const GRACE_EXCEEDED: Duration = Duration::from_secs(10);
/// A source is refused while more than this much penalty is outstanding.
pub const REFUSE_ABOVE: Duration = Duration::from_secs(15);
/// The most penalty a source can have outstanding.
pub const MAX_PENALTY: Duration = Duration::from_secs(600);
/// Sources remembered at most; past it the entries closest to their end
/// are dropped first (OpenSSH's permissive overflow).
const MAX_SOURCES: usize = 65_536;
/// How often lifts are looked for in the store.
const LIFT_POLL: Duration = Duration::from_secs(2);
/// Rows of ended penalties are deleted every this many polls (a minute).
const FORGET_EVERY_POLLS: u64 = 30;

/// How a connection that never logged in ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreLoginEnd {
    /// It offered credentials that were refused.
    AuthFailed,
    /// It tried a user name no account has.
    UnknownUser,
    /// It never tried to authenticate.
    NoAuth,
    /// The login grace ran out.
    GraceExceeded,
}

impl PreLoginEnd {
    fn penalty(self) -> Duration {
        match self {
            Self::AuthFailed => AUTH_FAILED,
            Self::UnknownUser => UNKNOWN_USER,
            Self::NoAuth => NO_AUTH,
            Self::GraceExceeded => GRACE_EXCEEDED,
        }
    }

    /// The reason shown with a penalty.
    pub fn reason(self) -> &'static str {
        match self {
            Self::AuthFailed => "failed authentication",
            Self::UnknownUser => "unknown user",
            Self::NoAuth => "connections without attempting authentication",
            Self::GraceExceeded => "login grace time exceeded",
        }
    }
}

/// A source as Ferry groups client addresses (`ferry_store::source_of`):
/// an IPv4 address, an IPv6 /64. Cheap to compute on every accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SourceKey {
    V4(u32),
    V6(u64),
}

impl SourceKey {
    pub(crate) fn of(ip: IpAddr) -> SourceKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => SourceKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => SourceKey::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

struct Penalty {
    /// How the source is written (`ferry_store::source_of`).
    source: String,
    /// When the outstanding penalty has run down.
    until: Instant,
    active: bool,
    reason: &'static str,
}

/// A penalty that became active or grew, for the store.
#[derive(Debug)]
pub(crate) struct Activation {
    source: String,
    reason: &'static str,
    remaining: Duration,
}

/// This node's penalties.
pub(crate) struct Penalties {
    enabled: bool,
    exempt: Vec<IpNet>,
    table: Mutex<HashMap<SourceKey, Penalty>>,
    activations: mpsc::UnboundedSender<Activation>,
}

impl Penalties {
    /// Penalties (`enabled`) sparing the `exempt` networks; activations go
    /// to the returned receiver, for [`sync_with_store`].
    pub(crate) fn new(
        enabled: bool,
        exempt: Vec<IpNet>,
    ) -> (Penalties, mpsc::UnboundedReceiver<Activation>) {
        let (activations, rx) = mpsc::unbounded_channel();
        let penalties = Penalties {
            enabled,
            exempt,
            table: Mutex::new(HashMap::new()),
            activations,
        };
        (penalties, rx)
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.exempt.iter().any(|net| net.contains(&ip))
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<SourceKey, Penalty>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The reason `ip` is refused now, if it is.
    pub(crate) fn refuses(&self, ip: IpAddr) -> Option<&'static str> {
        self.refuses_at(ip, Instant::now())
    }

    fn refuses_at(&self, ip: IpAddr, now: Instant) -> Option<&'static str> {
        if !self.enabled {
            return None;
        }
        let key = SourceKey::of(ip);
        let mut table = self.table();
        let penalty = table.get(&key)?;
        if penalty.until <= now {
            table.remove(&key);
            return None;
        }
        (penalty.active && !self.exempt(ip)).then_some(penalty.reason)
    }

    /// Adds the penalty for a connection from `ip` that ended as `end`.
    pub(crate) fn penalise(&self, ip: IpAddr, end: PreLoginEnd) {
        self.penalise_at(ip, end, Instant::now());
    }

    fn penalise_at(&self, ip: IpAddr, end: PreLoginEnd, now: Instant) {
        if !self.enabled || self.exempt(ip) {
            return;
        }
        let key = SourceKey::of(ip);
        let mut table = self.table();
        if table.len() >= MAX_SOURCES && !table.contains_key(&key) {
            table.retain(|_, p| p.until > now);
            if table.len() >= MAX_SOURCES {
                drop_soonest(&mut table);
            }
        }
        let penalty = table.entry(key).or_insert_with(|| Penalty {
            source: ferry_store::source_of(ip),
            until: now,
            active: false,
            reason: end.reason(),
        });
        penalty.until = penalty.until.max(now) + end.penalty();
        penalty.until = penalty.until.min(now + MAX_PENALTY);
        penalty.reason = end.reason();
        let remaining = penalty.until - now;
        let activates = !penalty.active && remaining > REFUSE_ABOVE;
        penalty.active |= activates;
        if penalty.active {
            if activates {
                tracing::info!(
                    source = %penalty.source,
                    seconds = remaining.as_secs(),
                    reason = end.reason(),
                    "penalising source: its connections are refused until the penalty runs down (`ferry penalties lift SOURCE` ends it)"
                );
            }
            let _ = self.activations.send(Activation {
                source: penalty.source.clone(),
                reason: penalty.reason,
                remaining,
            });
        }
    }

    /// Drops the penalty on `source` (as `ferry_store::source_of` writes it).
    pub(crate) fn lift(&self, source: &str) -> bool {
        let mut table = self.table();
        let before = table.len();
        table.retain(|_, p| p.source != source);
        table.len() < before
    }

    /// How many sources are refused now.
    pub(crate) fn active_count(&self) -> usize {
        self.active_count_at(Instant::now())
    }

    fn active_count_at(&self, now: Instant) -> usize {
        let mut table = self.table();
        table.retain(|_, p| p.until > now);
        table.values().filter(|p| p.active).count()
    }
}

/// Removes the entry that would end first.
fn drop_soonest(table: &mut HashMap<SourceKey, Penalty>) {
    if let Some(key) = table
        .iter()
        .min_by_key(|(_, p)| p.until)
        .map(|(key, _)| *key)
    {
        table.remove(&key);
    }
}

/// Keeps the store's picture of this node's penalties current: writes
/// activations as they come, takes up lifts, forgets rows that ended, and
/// sets the `ferry_sftp_penalised_sources` gauge.
pub(crate) async fn sync_with_store(
    shared: Arc<Shared>,
    mut activations: mpsc::UnboundedReceiver<Activation>,
) {
    let store = &shared.store;
    let node = shared.settings.node.as_str();
    if let Err(e) = store.clear_penalties(node).await {
        tracing::warn!(error = %e, "cannot clear this node's old penalty rows");
    }
    let mut tick = tokio::time::interval(LIFT_POLL);
    let mut polls: u64 = 0;
    loop {
        tokio::select! {
            activation = activations.recv() => {
                let Some(a) = activation else { return };
                let remaining = i64::try_from(a.remaining.as_millis()).unwrap_or(i64::MAX);
                if let Err(e) = store.record_penalty(node, &a.source, a.reason, remaining).await {
                    tracing::warn!(error = %e, source = %a.source, "cannot record a penalty for `ferry penalties list`");
                }
            }
            _ = tick.tick() => {
                polls += 1;
                // Reads every poll; writes only for a lift, and to drop the
                // rows of ended penalties once a minute.
                let lifted = match store.lifted_penalties(node).await {
                    Ok(lifted) => lifted,
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot look for lifted penalties");
                        Vec::new()
                    }
                };
                for source in &lifted {
                    if shared.penalties.lift(source) {
                        tracing::info!(%source, "penalty lifted by an admin: the source may connect again");
                    }
                }
                if (!lifted.is_empty() || polls.is_multiple_of(FORGET_EVERY_POLLS))
                    && let Err(e) = store.forget_penalties(node).await
                {
                    tracing::warn!(error = %e, "cannot forget lifted or ended penalties");
                }
                metrics::gauge!("ferry_sftp_penalised_sources").set(shared.penalties.active_count() as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_source_is_refused_once_15_s_have_accrued_and_freed_when_they_ran_down() {
        let (penalties, mut activations) = Penalties::new(true, vec![]);
        let scanner = ip("192.0.2.7");
        let t0 = Instant::now();
        for _ in 0..3 {
            penalties.penalise_at(scanner, PreLoginEnd::AuthFailed, t0);
        }
        assert_eq!(
            penalties.refuses_at(scanner, t0),
            None,
            "15 s is not above 15 s"
        );
        assert!(activations.try_recv().is_err());
        penalties.penalise_at(scanner, PreLoginEnd::UnknownUser, t0);
        assert_eq!(penalties.refuses_at(scanner, t0), Some("unknown user"));
        let activation = activations.try_recv().unwrap();
        assert_eq!(activation.source, "192.0.2.7");
        assert_eq!(activation.remaining, secs(20));
        assert_eq!(
            penalties.refuses_at(ip("192.0.2.8"), t0),
            None,
            "only that source"
        );
        assert!(penalties.refuses_at(scanner, t0 + secs(19)).is_some());
        assert_eq!(penalties.active_count_at(t0 + secs(19)), 1);
        assert_eq!(
            penalties.refuses_at(scanner, t0 + secs(21)),
            None,
            "ran down"
        );
        assert_eq!(penalties.active_count_at(t0 + secs(21)), 0);
    }

    #[test]
    fn penalties_run_down_in_real_time_and_are_capped_at_10_minutes() {
        let (penalties, _rx) = Penalties::new(true, vec![]);
        let client = ip("198.51.100.1");
        let mut now = Instant::now();
        // A second of penalty every two seconds never accrues.
        for _ in 0..100 {
            penalties.penalise_at(client, PreLoginEnd::NoAuth, now);
            now += secs(2);
        }
        assert_eq!(penalties.refuses_at(client, now), None);
        for _ in 0..500 {
            penalties.penalise_at(client, PreLoginEnd::GraceExceeded, now);
        }
        assert!(penalties.refuses_at(client, now).is_some());
        assert!(
            penalties
                .refuses_at(client, now + MAX_PENALTY - secs(1))
                .is_some()
        );
        assert_eq!(
            penalties.refuses_at(client, now + MAX_PENALTY + secs(1)),
            None,
            "10 minutes at most"
        );
    }

    #[test]
    fn ipv6_sources_are_grouped_by_64_and_exempt_networks_never_penalised() {
        let exempt = vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8:ffff::/48".parse().unwrap(),
        ];
        let (penalties, _rx) = Penalties::new(true, exempt);
        let now = Instant::now();
        for n in 0..4 {
            penalties.penalise_at(
                ip(&format!("2001:db8:1:2::{n}")),
                PreLoginEnd::AuthFailed,
                now,
            );
            penalties.penalise_at(ip("10.1.2.3"), PreLoginEnd::GraceExceeded, now);
            penalties.penalise_at(ip("2001:db8:ffff:1::1"), PreLoginEnd::GraceExceeded, now);
        }
        assert!(
            penalties
                .refuses_at(ip("2001:db8:1:2:abcd::9"), now)
                .is_some()
        );
        assert_eq!(penalties.refuses_at(ip("2001:db8:1:3::1"), now), None);
        assert_eq!(penalties.refuses_at(ip("10.1.2.3"), now), None);
        assert_eq!(penalties.refuses_at(ip("2001:db8:ffff:1::1"), now), None);
        assert!(penalties.lift("2001:db8:1:2::/64"));
        assert_eq!(
            penalties.refuses_at(ip("2001:db8:1:2::1"), now),
            None,
            "lifted"
        );
    }

    #[test]
    fn disabled_penalties_refuse_nobody() {
        let (penalties, _rx) = Penalties::new(false, vec![]);
        let now = Instant::now();
        for _ in 0..10 {
            penalties.penalise_at(ip("192.0.2.1"), PreLoginEnd::GraceExceeded, now);
        }
        assert_eq!(penalties.refuses_at(ip("192.0.2.1"), now), None);
    }
}
