//! SSH public keys as districts paste or upload them: reading every common
//! format, judging each key against Ferry's policy, and the pure checks the SSH
//! server makes at login (`from=` addresses, `expiry-time`).
//!
//! "We installed our key and still can't connect" is the most common support
//! ticket for an SFTP service, so this crate accepts whatever a person is likely
//! to paste and, for anything it refuses, names the line and says what is wrong
//! and how to fix it. It is pure: no I/O, no database, no clock (callers pass the
//! time in).
//!
//! # Formats read (several per input, mixed, each reported on its own)
//! - OpenSSH one-line public keys and whole `authorized_keys` files (options
//!   such as `from="…"`, `expiry-time="…"`, `no-pty`, `restrict`,
//!   `command="a \"b\" c"`; `#` comments; blank lines; CRLF; a UTF-8 BOM or UTF-16;
//!   trailing whitespace).
//! - RFC 4716 `---- BEGIN SSH2 PUBLIC KEY ----` blocks (PuTTYgen, WinSCP,
//!   `ssh-keygen -e`), with `Comment:` (quoted or not), `\` continuation and
//!   `x-` headers.
//! - PEM `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo: RSA, ECDSA
//!   P-256/384/521, Ed25519) and `-----BEGIN RSA PUBLIC KEY-----` (PKCS#1).
//! - Private keys (OpenSSH, PEM RSA/EC/DSA, PKCS#8, PuTTY `.ppk`, ssh.com),
//!   encrypted or not, are recognised and refused whole; none of their text
//!   appears in any finding, message or `Debug` output.
//!
//! # API
//! - [`parse_keys`]`(input, &policy) -> Result<Vec<Finding>, InputError>`: the
//!   whole job. [`InputError`] covers input that is refused as a whole (over
//!   [`MAX_INPUT_BYTES`], empty, or without anything that looks like a key);
//!   otherwise there is one [`Finding`] per key or key-like thing, with its line
//!   ([`Finding::line`]), the key's facts when it is well-formed
//!   ([`Finding::key`]: [`KeyFacts`] — `russh` [`PublicKey`], SSH type name,
//!   `ssh-keygen -lf` type and bits, `SHA256:` fingerprint, canonical OpenSSH
//!   line), its comment, its [`KeyOptions`] and its [`Verdict`]. A refusal
//!   ([`Refusal`]) displays as `line 3: RSA key is 1024 bits; at least 2048 are
//!   required — generate a new key with ssh-keygen -t ed25519`, and carries a
//!   [`RefusalKind`] with a stable [`RefusalKind::code`]. `Finding` serialises to
//!   the JSON object `ferry key inspect --json` prints per key.
//! - [`KeyPolicy`] (`min_rsa_bits`, default 2048): ed25519 and ECDSA
//!   P-256/384/521 accepted; RSA from `min_rsa_bits` (exact modulus bits) to
//!   [`MAX_RSA_BITS`]; DSA, security keys (`sk-…`), certificates ("certificate
//!   authorities are not supported yet"), `cert-authority` lines, unknown types,
//!   a type label that does not match the key data, and damaged data refused.
//!   A key given twice in one input is refused on its second line.
//! - [`fingerprint`]`(&PublicKey) -> String`: `SHA256:…` as `ssh-keygen -lf` prints it.
//! - Login-time checks: [`from_allows`]`(patterns, IpAddr)` matches `from="…"` as
//!   sshd does; [`parse_expiry_time`] reads `expiry-time` (as UTC) and
//!   [`expiry_has_passed`] compares it with a given time;
//!   [`KeyOptions::allow_login`] does both for one key's options.
//! - [`MAX_KEYS_PER_ACCOUNT`] (100), enforced by the store, which knows how many
//!   keys an account already has.

mod blocks;
mod candidate;
mod expiry;
mod finding;
mod from_patterns;
mod key_blob;
mod openssh_line;
mod options;
mod pem;
mod policy;
mod private_key;
mod scan;
mod text;

#[cfg(test)]
mod tests;

pub use expiry::{ExpiryError, expiry_has_passed, parse_expiry_time};
pub use finding::{
    Finding, KeyFacts, PrivateKeyFormat, Refusal, RefusalKind, SourceFormat, Verdict,
};
pub use from_patterns::from_allows;
pub use options::{KeyOption, KeyOptions, OptionsError};
pub use policy::{KeyPolicy, MAX_RSA_BITS};
pub use russh::keys::PublicKey;

use thiserror::Error;

/// Largest input read, in bytes (1 MiB). Larger input is refused unread.
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;

/// Most keys one account may hold.
pub const MAX_KEYS_PER_ACCOUNT: usize = 100;

/// Input refused as a whole, before or instead of any per-key finding.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InputError {
    /// Over [`MAX_INPUT_BYTES`]; not parsed at all.
    #[error(
        "the input is {size} bytes; at most 1 MiB ({MAX_INPUT_BYTES} bytes) is read — send only the public key file (.pub), which is well under 1 KiB per key"
    )]
    TooLarge {
        /// Size of the input in bytes.
        size: usize,
    },
    /// Nothing but whitespace (or a byte-order mark).
    #[error(
        "the input is empty — paste the contents of your public key file, e.g. ~/.ssh/id_ed25519.pub"
    )]
    Empty,
    /// Not text, and nothing in it looks like a key.
    #[error(
        "the input is not text (it looks like a binary file) and has no SSH public key in it — send the public key file (.pub): one line starting with ssh-ed25519, ecdsa-sha2-nistp256 or ssh-rsa"
    )]
    NotText,
    /// Text in which nothing looks like a key (only comments, or other text).
    #[error(
        "no SSH public key found in the input — a public key is one line starting with ssh-ed25519, ecdsa-sha2-nistp256 or ssh-rsa followed by the key data (the contents of the .pub file)"
    )]
    NoKeyFound,
}

impl InputError {
    /// Stable, kebab-case code for machines.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too-large",
            Self::Empty => "empty",
            Self::NotText => "not-text",
            Self::NoKeyFound => "no-key-found",
        }
    }
}

/// Reads one pasted text or uploaded file and judges every key in it.
///
/// Findings come in input order, one per key, key-like line or block (private
/// keys, damaged keys and lines that are not keys included, so every problem is
/// reported with its line). Blank lines and `#` comments give no finding.
///
/// # Errors
/// [`InputError`] when the input is over 1 MiB, empty, or has nothing that looks
/// like a key (only comments, other text, or binary data).
pub fn parse_keys(input: &[u8], policy: &KeyPolicy) -> Result<Vec<Finding>, InputError> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(InputError::TooLarge { size: input.len() });
    }
    let decoded = text::decode(input);
    if decoded.text.trim().is_empty() {
        return Err(InputError::Empty);
    }
    let lines = text::lines(&decoded.text);
    let findings = scan::scan(&lines, policy);
    let nothing_key_like = findings
        .iter()
        .all(|finding| matches!(finding.refusal(), Some(r) if r.kind == RefusalKind::NotAKey));
    if nothing_key_like {
        return Err(if decoded.looks_binary {
            InputError::NotText
        } else {
            InputError::NoKeyFound
        });
    }
    Ok(findings)
}

/// The key's `SHA256:…` fingerprint, byte-identical to `ssh-keygen -lf`.
#[must_use]
pub fn fingerprint(key: &PublicKey) -> String {
    key_blob::sha256_fingerprint(key.key_data())
}
