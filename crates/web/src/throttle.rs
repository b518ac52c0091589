//! Sign-in throttling: slows password guessing per address and per user name.
//!
//! Failed sign-ins are counted in memory for a window; past the limit, every
//! sign-in from that address, or for that user name, is refused with one
//! message until the window has passed, whether the password is right or
//! not. The same words answer a wrong user and a wrong password, so the
//! throttle tells an attacker nothing about which user names exist. Memory
//! is bounded: entries are dropped once their window has passed.
//!
//! Checking and counting are one step ([`SignInThrottle::begin`]): a sign-in
//! is counted as a failure before its password is checked, and the count is
//! taken back only if the password was right. So 40 guesses sent at once get
//! at most [`PER_USER`] passwords checked, not as many as arrive before the
//! first failure is counted.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed sign-ins allowed per user name within [`WINDOW`].
pub(crate) const PER_USER: usize = 5;
/// Failed sign-ins allowed per client address within [`WINDOW`].
pub(crate) const PER_ADDRESS: usize = 20;
/// How long a failure counts.
pub(crate) const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Most keys remembered; past it the oldest failures are forgotten first.
const MAX_KEYS: usize = 100_000;

/// Recent failures per key (`addr:…`, `user:…`).
#[derive(Debug, Default)]
pub(crate) struct SignInThrottle {
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

/// A sign-in the throttle let through, counted as a failure until
/// [`SignInAttempt::succeeded`] says otherwise.
#[must_use = "a sign-in attempt counts as a failure unless it succeeded"]
pub(crate) struct SignInAttempt<'a> {
    throttle: &'a SignInThrottle,
    addr: String,
    username: String,
    at: Instant,
}

impl SignInAttempt<'_> {
    /// The password was right: the attempt is not a failure, and the user
    /// name's earlier failures are forgotten.
    pub(crate) fn succeeded(self) {
        let mut failures = self.throttle.lock();
        if let Some(times) = failures.get_mut(&address_key(&self.addr))
            && let Some(i) = times.iter().rposition(|t| *t == self.at)
        {
            times.remove(i);
        }
        failures.remove(&user_key(&self.username));
    }
}

impl SignInThrottle {
    /// Lets a sign-in from `addr` as `username` go ahead, counted as a
    /// failure, or `None` when either has reached its limit.
    pub(crate) fn begin(&self, addr: &str, username: &str) -> Option<SignInAttempt<'_>> {
        let now = Instant::now();
        let mut failures = self.lock();
        let mut recent = |key: &str| {
            failures.get_mut(key).map_or(0, |times| {
                times.retain(|t| now.duration_since(*t) < WINDOW);
                times.len()
            })
        };
        if recent(&address_key(addr)) >= PER_ADDRESS || recent(&user_key(username)) >= PER_USER {
            return None;
        }
        if failures.len() >= MAX_KEYS {
            failures.retain(|_, times| times.iter().any(|t| now.duration_since(*t) < WINDOW));
        }
        if failures.len() < MAX_KEYS {
            for key in [address_key(addr), user_key(username)] {
                failures.entry(key).or_default().push(now);
            }
        }
        Some(SignInAttempt {
            throttle: self,
            addr: addr.to_owned(),
            username: username.to_owned(),
            at: now,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Instant>>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn address_key(addr: &str) -> String {
    format!("addr:{addr}")
}

fn user_key(username: &str) -> String {
    format!("user:{}", username.trim().to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::{PER_ADDRESS, PER_USER, SignInThrottle};

    #[test]
    fn blocks_a_user_after_its_failures_from_any_address() {
        let throttle = SignInThrottle::default();
        for i in 0..PER_USER {
            assert!(throttle.begin(&format!("10.0.0.{i}"), "alice").is_some());
        }
        assert!(throttle.begin("10.9.9.9", "alice").is_none());
        assert!(
            throttle.begin("10.9.9.9", "ALICE ").is_none(),
            "user names fold case"
        );
        assert!(throttle.begin("10.9.9.9", "bob").is_some());
    }

    #[test]
    fn blocks_an_address_after_its_failures_for_any_user() {
        let throttle = SignInThrottle::default();
        for i in 0..PER_ADDRESS {
            let _failed = throttle.begin("192.0.2.7", &format!("user{i}")).unwrap();
        }
        assert!(throttle.begin("192.0.2.7", "someone-new").is_none());
        assert!(throttle.begin("192.0.2.8", "someone-new").is_some());
    }

    #[test]
    fn success_forgets_the_user_and_is_not_counted_for_the_address() {
        let throttle = SignInThrottle::default();
        for _ in 0..PER_USER - 1 {
            let _failed = throttle.begin("192.0.2.1", "carol").unwrap();
        }
        throttle.begin("192.0.2.1", "carol").unwrap().succeeded();
        let _failed = throttle.begin("192.0.2.1", "carol").unwrap();
        assert!(throttle.begin("192.0.2.1", "carol").is_some());
        // 20 sign-ins from one address, all right: none counts against it.
        for i in 0..PER_ADDRESS {
            throttle
                .begin("192.0.2.9", &format!("u{i}"))
                .unwrap()
                .succeeded();
        }
        assert!(throttle.begin("192.0.2.9", "another").is_some());
    }

    #[test]
    fn simultaneous_sign_ins_are_counted_before_any_password_is_checked() {
        let throttle = SignInThrottle::default();
        // 40 attempts arrive before any of them has been decided.
        let let_through: Vec<_> = (0..40)
            .filter_map(|_| throttle.begin("192.0.2.3", "dave"))
            .collect();
        assert_eq!(let_through.len(), PER_USER);
    }
}
