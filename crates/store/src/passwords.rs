//! Password hashing for admin users: argon2id, off the async workers.
//!
//! An argon2 computation takes about 19 MiB and tens of milliseconds of one
//! core, by design. Run on the async workers, a burst of sign-ins would
//! stall everything else the process serves (SFTP sessions included), so
//! every hash and check runs on the blocking pool, at most
//! [`MAX_PASSWORD_WORK`] at once; the rest wait their turn. Each check is
//! counted in `ferry_admin_password_checks_total` where it is really done,
//! so tests and monitoring can see how many passwords were checked.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, PasswordHash};

use crate::admins::{MIN_PASSWORD_CHARS, new_secret};
use crate::error::{Result, StoreError};

/// Refuses passwords under [`MIN_PASSWORD_CHARS`] characters.
fn check_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(StoreError::InvalidValue {
            what: "an admin password",
            rule: "at least 12 characters (a passphrase of a few words is easiest)",
            got: format!("{} characters", password.chars().count()),
        });
    }
    Ok(())
}

/// Argon2 computations (hash or verify) running at once, at most: each
/// takes about 19 MiB and tens of milliseconds of one core.
const MAX_PASSWORD_WORK: usize = 2;

/// Runs argon2 `work` on the blocking pool, at most [`MAX_PASSWORD_WORK`]
/// at once, so a password check never holds an async worker and a flood of
/// sign-ins waits its turn instead of taking every core.
async fn password_work<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_PASSWORD_WORK);
    let _slot = SLOTS
        .acquire()
        .await
        .map_err(|_| StoreError::Corrupt("the password check queue is closed".into()))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Corrupt(format!("the password check failed: {e}")))
}

/// An argon2id hash of nothing anyone types, verified against for unknown
/// user names (computed on first use, inside [`password_work`]).
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| argon2_hash(&new_secret()).unwrap_or_default())
}

fn argon2_hash(password: &str) -> Result<String> {
    let hash: PasswordHash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| StoreError::Corrupt(format!("cannot hash the password: {e}")))?;
    Ok(hash.to_string())
}

/// Hashes `password` with argon2id (default parameters, random salt).
pub(crate) async fn hash_password(password: &str) -> Result<String> {
    check_password(password)?;
    let password = password.to_owned();
    password_work(move || argon2_hash(&password)).await?
}

/// Whether `password` matches the PHC string `hash` (the dummy hash when
/// `None`, so an unknown user costs the same). Every call is counted in
/// `ferry_admin_password_checks_total`, where the work is really done.
pub(crate) async fn verify_password(password: &str, hash: Option<String>) -> Result<bool> {
    let password = password.to_owned();
    password_work(move || {
        metrics::counter!("ferry_admin_password_checks_total").increment(1);
        let hash = hash.as_deref().unwrap_or_else(|| dummy_hash());
        PasswordHash::new(hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
}

/// Whether `text` is a PHC string argon2 can check against.
pub(crate) fn is_password_hash(text: &str) -> bool {
    PasswordHash::new(text).is_ok()
}
