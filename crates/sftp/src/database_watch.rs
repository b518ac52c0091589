//! Whether the database answers, as the SFTP server sees it, and what the
//! server says about it while it does not.
//!
//! Every login asks the database, and so does the live-session check every
//! few seconds. While the database is down each of them fails; one log line
//! per failure would bury the one fact an operator needs. So failures are
//! counted here: the first one logs that logins are refused, then one line
//! per [`SUMMARY_EVERY`] says how many were refused, and one line says when
//! the database answers again. Clients that connect during an outage are
//! told why in the SSH banner. Nothing here may block: it is a lock around
//! a few counters.

use std::fmt::Display;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// While the database is down, how often a summary line is logged.
pub(crate) const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// The banner a client gets while the database is down.
pub(crate) const DATABASE_DOWN_BANNER: &str = "This server cannot reach its database right now, so logins are refused. \
     Nothing is wrong with your key or account: please try again in a few minutes.\r\n";

/// The database's state, from the calls this node made.
#[derive(Default)]
pub(crate) struct DatabaseWatch {
    outage: Mutex<Option<Outage>>,
}

/// An outage in progress.
struct Outage {
    since: Instant,
    last_summary: Instant,
    /// Logins refused since the last line about the outage.
    refused_logins: u64,
    /// Logins refused since the outage began.
    refused_in_all: u64,
}

/// What failed to reach the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    /// A login's key lookup: the login was refused.
    Login,
    /// The check of live sessions (or, with none, of the database).
    SessionCheck,
}

impl DatabaseWatch {
    /// Notes a call that reached the database; ends an outage.
    pub(crate) fn answered(&self) {
        let Some(outage) = self.lock().take() else {
            return;
        };
        tracing::info!(
            after_secs = outage.since.elapsed().as_secs(),
            refused_logins = outage.refused_in_all,
            "the database answers again: SFTP logins work"
        );
    }

    /// Notes a call that did not reach the database, `error` saying why.
    pub(crate) fn failed(&self, caller: Caller, error: &dyn Display) {
        let mut outage = self.lock();
        let now = Instant::now();
        let refused = u64::from(caller == Caller::Login);
        match outage.as_mut() {
            None => {
                *outage = Some(Outage {
                    since: now,
                    last_summary: now,
                    refused_logins: 0,
                    refused_in_all: refused,
                });
                tracing::error!(
                    error = %error,
                    "the database does not answer: SFTP logins are refused until it does; \
                     check that the database server is running and reachable at [database] url \
                     (one line per minute follows while this lasts)"
                );
            }
            Some(o) => {
                o.refused_logins += refused;
                o.refused_in_all += refused;
                if o.last_summary.elapsed() >= SUMMARY_EVERY {
                    tracing::error!(
                        down_secs = o.since.elapsed().as_secs(),
                        refused_logins = o.refused_logins,
                        error = %error,
                        "the database still does not answer: SFTP logins are refused"
                    );
                    o.last_summary = now;
                    o.refused_logins = 0;
                }
            }
        }
    }

    /// Whether the last call to the database failed.
    pub(crate) fn is_down(&self) -> bool {
        self.lock().is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Outage>> {
        self.outage.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_starts_with_a_failure_and_ends_with_an_answer() {
        let watch = DatabaseWatch::default();
        assert!(!watch.is_down());
        watch.answered();
        assert!(!watch.is_down());
        watch.failed(Caller::SessionCheck, &"connection refused");
        assert!(watch.is_down());
        for _ in 0..3 {
            watch.failed(Caller::Login, &"connection refused");
        }
        assert_eq!(watch.lock().as_ref().map(|o| o.refused_in_all), Some(3));
        watch.answered();
        assert!(!watch.is_down());
    }
}
