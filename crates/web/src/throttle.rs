//! Sign-in throttling: slows password guessing per address and per user name.
//!
//! Failed sign-ins are counted in memory for a window; past the limit, every
//! sign-in from that address, or for that user name, is refused with one
//! message until the window has passed, whether the password is right or
//! not. The same words answer a wrong user and a wrong password, so the
//! throttle tells an attacker nothing about which user names exist. Memory
//! is bounded: entries are dropped once their window has passed.

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

impl SignInThrottle {
    /// Whether a sign-in from `addr` as `username` must be refused now.
    pub(crate) fn is_blocked(&self, addr: &str, username: &str) -> bool {
        let now = Instant::now();
        let mut failures = self.lock();
        let count = |key: &str, failures: &mut HashMap<String, Vec<Instant>>| {
            failures.get_mut(key).map_or(0, |times| {
                times.retain(|t| now.duration_since(*t) < WINDOW);
                times.len()
            })
        };
        count(&address_key(addr), &mut failures) >= PER_ADDRESS
            || count(&user_key(username), &mut failures) >= PER_USER
    }

    /// Counts a failed sign-in.
    pub(crate) fn record_failure(&self, addr: &str, username: &str) {
        let now = Instant::now();
        let mut failures = self.lock();
        if failures.len() >= MAX_KEYS {
            failures.retain(|_, times| times.iter().any(|t| now.duration_since(*t) < WINDOW));
        }
        if failures.len() >= MAX_KEYS {
            return;
        }
        for key in [address_key(addr), user_key(username)] {
            failures.entry(key).or_default().push(now);
        }
    }

    /// Forgets a user name's failures after a successful sign-in.
    pub(crate) fn record_success(&self, username: &str) {
        self.lock().remove(&user_key(username));
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
            assert!(!throttle.is_blocked(&format!("10.0.0.{i}"), "alice"));
            throttle.record_failure(&format!("10.0.0.{i}"), "alice");
        }
        assert!(throttle.is_blocked("10.9.9.9", "alice"));
        assert!(
            throttle.is_blocked("10.9.9.9", "ALICE "),
            "user names fold case"
        );
        assert!(!throttle.is_blocked("10.9.9.9", "bob"));
    }

    #[test]
    fn blocks_an_address_after_its_failures_for_any_user() {
        let throttle = SignInThrottle::default();
        for i in 0..PER_ADDRESS {
            throttle.record_failure("192.0.2.7", &format!("user{i}"));
        }
        assert!(throttle.is_blocked("192.0.2.7", "someone-new"));
        assert!(!throttle.is_blocked("192.0.2.8", "someone-new"));
    }

    #[test]
    fn success_forgets_the_user_but_not_the_address() {
        let throttle = SignInThrottle::default();
        for _ in 0..PER_USER - 1 {
            throttle.record_failure("192.0.2.1", "carol");
        }
        throttle.record_success("carol");
        throttle.record_failure("192.0.2.1", "carol");
        assert!(!throttle.is_blocked("192.0.2.1", "carol"));
    }
}
