//! Admission: which connections the server takes on, and the claims each
//! admitted connection holds on the server's limits.
//!
//! russh accepts every TCP connection it is given, so this module adds what
//! OpenSSH has, checked in this order right after accept, before a byte is
//! sent:
//! - a source under a penalty ([`crate::penalties`]) is closed at once;
//! - connections that have not logged in yet are capped per source (an IPv4
//!   address, an IPv6 /64) and in total by `MaxStartups` early drop
//!   ([`MaxStartups`]): above *start* a new one is refused with probability
//!   *rate*%, rising linearly to 100% at *full*, so an attacker holding
//!   connections open slows districts down instead of shutting them out;
//! - a logged-in connection takes a session slot of its account.
//!
//! A [`ConnectionGuard`] holds those claims and gives them back when the
//! connection ends, however it ends; a connection that ends without logging
//! in is charged its penalty then. Refusals are logged sparingly, so a flood
//! of connections is not a flood of log lines.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use russh::server::Handle;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::penalties::{PreLoginEnd, SourceKey};
use crate::server::Shared;

/// OpenSSH's `MaxStartups start:rate:full` for connections that have not
/// logged in: none is refused below `start`; from `start` on, a new one is
/// refused with probability `rate`%, rising linearly to 100% at `full`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxStartups {
    pub start: usize,
    pub rate: u32,
    pub full: usize,
}

impl MaxStartups {
    /// Parses `start:rate:full` (e.g. `16:30:64`), or a single number `N`
    /// meaning no early drop and a hard cap of N.
    ///
    /// # Errors
    /// What is wrong, in words.
    pub fn parse(text: &str) -> Result<MaxStartups, String> {
        let numbers: Vec<&str> = text.trim().split(':').collect();
        let number = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("{s:?} is not a whole number"))
        };
        let parsed = match numbers.as_slice() {
            [full] => {
                let full = number(full)?;
                MaxStartups {
                    start: full,
                    rate: 100,
                    full,
                }
            }
            [start, rate, full] => MaxStartups {
                start: number(start)?,
                rate: u32::try_from(number(rate)?).unwrap_or(u32::MAX),
                full: number(full)?,
            },
            _ => return Err("write it as start:rate:full, like \"16:30:64\"".into()),
        };
        if parsed.full == 0 || parsed.start == 0 {
            return Err("start and full must be at least 1".into());
        }
        if parsed.start > parsed.full {
            return Err("start must not be larger than full".into());
        }
        if parsed.rate == 0 || parsed.rate > 100 {
            return Err("rate is a percentage from 1 to 100".into());
        }
        Ok(parsed)
    }

    /// The chance, in percent, that a new connection is refused while
    /// `unauthenticated` connections are waiting to log in.
    pub fn drop_percent(&self, unauthenticated: usize) -> u32 {
        if unauthenticated < self.start {
            return 0;
        }
        if unauthenticated >= self.full {
            return 100;
        }
        let above = (unauthenticated - self.start) as u64;
        let span = (self.full - self.start) as u64;
        let rate = u64::from(self.rate);
        (rate + (100 - rate) * above / span) as u32
    }
}

impl std::fmt::Display for MaxStartups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.start, self.rate, self.full)
    }
}

/// Why a new connection was closed right after accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The source is under a penalty (the reason of its latest one).
    Penalised(&'static str),
    /// `MaxStartups`: dropped at random, or the total is at `full`.
    MaxStartups,
    /// The source has `max_unauthenticated_per_address` waiting already.
    PerSource,
}

impl Refusal {
    fn metric_label(self) -> &'static str {
        match self {
            Self::Penalised(_) => "penalised",
            Self::MaxStartups => "max_startups",
            Self::PerSource => "per_address",
        }
    }
}

/// Connections not yet logged in, by source, and the refusal logs.
#[derive(Default)]
pub(crate) struct Admission {
    unauthenticated: Mutex<HashMap<SourceKey, usize>>,
    cap_refusals: RefusalLog,
    penalty_refusals: RefusalLog,
}

impl Admission {
    /// Notes a refused connection: a metric always, a log line sparingly.
    pub(crate) fn refused(&self, ip: IpAddr, refusal: Refusal) {
        metrics::counter!("ferry_sftp_connections_refused_total", "reason" => refusal.metric_label())
            .increment(1);
        match refusal {
            Refusal::Penalised(reason) => self.penalty_refusals.note(|refused| {
                tracing::info!(
                    %ip,
                    reason,
                    refused,
                    "refused connections from penalised sources (see `ferry penalties list`)"
                )
            }),
            Refusal::MaxStartups | Refusal::PerSource => {
                let (total, from_source) = self.counts(ip);
                self.cap_refusals.note(|refused| {
                    tracing::warn!(
                        %ip,
                        total,
                        from_source,
                        refused,
                        "refused connections: too many connections are waiting to log in; raise [sftp] max_startups or max_unauthenticated_per_address if these are real clients"
                    )
                })
            }
        }
    }

    fn counts(&self, ip: IpAddr) -> (usize, usize) {
        let counts = self.lock();
        let total = counts.values().sum();
        (total, counts.get(&SourceKey::of(ip)).copied().unwrap_or(0))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SourceKey, usize>> {
        self.unauthenticated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

/// How often a refused-connection line may be logged: a flood of connections
/// must not become a flood of log lines.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Logs refused connections: the first at once, then at most one line per
/// [`REFUSAL_LOG_EVERY`] with the count since.
#[derive(Default)]
struct RefusalLog {
    state: Mutex<(Option<Instant>, u64)>,
}

impl RefusalLog {
    fn note(&self, log: impl FnOnce(u64)) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last, unlogged) = &mut *state;
        *unlogged += 1;
        if last.is_some_and(|at| at.elapsed() < REFUSAL_LOG_EVERY) {
            return;
        }
        log(*unlogged);
        *last = Some(Instant::now());
        *unlogged = 0;
    }
}

/// What a connection did before logging in, for its penalty if it never does.
#[derive(Debug, Default)]
struct PreLogin {
    attempted: bool,
    unknown_user: bool,
    /// Refused for the server's reasons (database down, session cap): the
    /// client is not to blame.
    server_side: bool,
}

/// An authentication event of a connection not logged in yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthNote {
    /// Credentials were offered and refused.
    Refused,
    /// The user name is no account's.
    UnknownUser,
    /// The server could not decide or serve the login (not the client's fault).
    ServerSide,
}

/// One admitted connection's claims on the server's limits, released when
/// the connection ends (the guard lives in the session handler).
pub(crate) struct ConnectionGuard {
    shared: Arc<Shared>,
    ip: IpAddr,
    source: SourceKey,
    /// The end of the login grace.
    deadline: Instant,
    counted_unauthenticated: bool,
    logged_in: bool,
    prelogin: PreLogin,
    session_id: Option<u64>,
    authenticated: watch::Sender<bool>,
    pub(crate) banner: Arc<OnceLock<String>>,
}

impl ConnectionGuard {
    /// Admits a new connection from `ip`, or says why not.
    pub(crate) fn admit(shared: &Arc<Shared>, ip: IpAddr) -> Result<ConnectionGuard, Refusal> {
        if let Some(reason) = shared.penalties.refuses(ip) {
            return Err(Refusal::Penalised(reason));
        }
        let source = SourceKey::of(ip);
        let settings = &shared.settings;
        let mut counts = shared.admission.lock();
        let total: usize = counts.values().sum();
        if counts.get(&source).copied().unwrap_or(0) >= settings.max_unauthenticated_per_address {
            return Err(Refusal::PerSource);
        }
        let drop_percent = settings.max_startups.drop_percent(total);
        if drop_percent > 0 && rand::random_range(0..100u32) < drop_percent {
            return Err(Refusal::MaxStartups);
        }
        *counts.entry(source).or_default() += 1;
        Ok(ConnectionGuard {
            shared: shared.clone(),
            ip,
            source,
            deadline: Instant::now() + settings.login_grace,
            counted_unauthenticated: true,
            logged_in: false,
            prelogin: PreLogin::default(),
            session_id: None,
            authenticated: watch::channel(false).0,
            banner: Arc::new(OnceLock::new()),
        })
    }

    /// When the login grace of this connection ends.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    pub(crate) fn authenticated_signal(&self) -> watch::Receiver<bool> {
        self.authenticated.subscribe()
    }

    pub(crate) fn client_banner(&self) -> Option<String> {
        self.banner.get().cloned()
    }

    /// Notes an authentication event, for the penalty if the connection
    /// ends without logging in.
    pub(crate) fn note(&mut self, note: AuthNote) {
        match note {
            AuthNote::Refused => self.prelogin.attempted = true,
            AuthNote::UnknownUser => {
                self.prelogin.attempted = true;
                self.prelogin.unknown_user = true;
            }
            AuthNote::ServerSide => self.prelogin.server_side = true,
        }
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
        self.logged_in = true;
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
        let mut counts = self.shared.admission.lock();
        if let Some(n) = counts.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.source);
            }
        }
    }

    /// How a connection that never logged in ended, for its penalty; `None`
    /// when the client is not to blame.
    fn prelogin_end(&self) -> Option<PreLoginEnd> {
        let p = &self.prelogin;
        if Instant::now() >= self.deadline {
            Some(PreLoginEnd::GraceExceeded)
        } else if p.server_side {
            None
        } else if p.unknown_user {
            Some(PreLoginEnd::UnknownUser)
        } else if p.attempted {
            Some(PreLoginEnd::AuthFailed)
        } else {
            Some(PreLoginEnd::NoAuth)
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.release_unauthenticated();
        if !self.logged_in
            && let Some(end) = self.prelogin_end()
        {
            self.shared.penalties.penalise(self.ip, end);
        }
        if let Some(id) = self.session_id {
            self.shared.sessions.release(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MaxStartups;

    #[test]
    fn max_startups_parses_and_rises_linearly_from_rate_at_start_to_100_at_full() {
        let m = MaxStartups::parse("16:30:64").unwrap();
        assert_eq!(m.to_string(), "16:30:64");
        assert_eq!(m.drop_percent(0), 0);
        assert_eq!(m.drop_percent(15), 0);
        assert_eq!(m.drop_percent(16), 30);
        assert_eq!(m.drop_percent(40), 65);
        assert_eq!(m.drop_percent(63), 98);
        assert_eq!(m.drop_percent(64), 100);
        assert_eq!(m.drop_percent(1000), 100);
        let hard = MaxStartups::parse("64").unwrap();
        assert_eq!((hard.drop_percent(63), hard.drop_percent(64)), (0, 100));
        for bad in [
            "",
            "16:30",
            "a:30:64",
            "65:30:64",
            "16:0:64",
            "16:101:64",
            "0:30:64",
        ] {
            assert!(MaxStartups::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
