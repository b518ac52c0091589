//! What parsing reports about each key (or key-like thing) in an input: where it
//! was, what it is, and whether Ferry accepts it and why not.
//!
//! These types are what the CLI, the web API and the store consume, so they carry
//! only public material: a refused private key is described by its format and
//! line, never by any of its text.

use russh::keys::PublicKey;
use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};
use thiserror::Error;

use crate::options::{KeyOption, KeyOptions, OptionsError};

/// Where a finding came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceFormat {
    /// A one-line OpenSSH public key or authorized_keys line.
    Openssh,
    /// An RFC 4716 `---- BEGIN SSH2 PUBLIC KEY ----` block (PuTTYgen, WinSCP).
    Rfc4716,
    /// A PEM `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo) block.
    PemSpki,
    /// A PEM `-----BEGIN RSA PUBLIC KEY-----` (PKCS#1) block.
    PemPkcs1,
    /// A private key of any format.
    PrivateKey,
    /// Some other PEM-style block (an X.509 certificate, …).
    OtherBlock,
    /// A line that is not a key.
    Text,
}

/// The kind of private key that was pasted instead of a public one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrivateKeyFormat {
    /// `-----BEGIN OPENSSH PRIVATE KEY-----` (ssh-keygen's default).
    Openssh,
    /// `-----BEGIN RSA PRIVATE KEY-----` (PEM, PKCS#1).
    PemRsa,
    /// `-----BEGIN EC PRIVATE KEY-----` (PEM, SEC1).
    PemEc,
    /// `-----BEGIN DSA PRIVATE KEY-----`.
    PemDsa,
    /// `-----BEGIN PRIVATE KEY-----` or `-----BEGIN ENCRYPTED PRIVATE KEY-----` (PKCS#8).
    Pkcs8,
    /// A PuTTY `.ppk` file (`PuTTY-User-Key-File-…`).
    PuttyPpk,
    /// `---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----` (ssh.com / Tectia export).
    Ssh2,
    /// Some other `… PRIVATE KEY` block.
    Other,
}

impl PrivateKeyFormat {
    /// Plain-words name used in messages.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::Openssh => "an OpenSSH private key",
            Self::PemRsa => "a PEM RSA private key",
            Self::PemEc => "a PEM EC private key",
            Self::PemDsa => "a PEM DSA private key",
            Self::Pkcs8 => "a PKCS#8 private key",
            Self::PuttyPpk => "a PuTTY private key (.ppk)",
            Self::Ssh2 => "an SSH2 (ssh.com) private key",
            Self::Other => "a private key",
        }
    }
}

/// Why a finding was refused. [`RefusalKind::code`] gives a stable short code.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalKind {
    /// A private key was pasted. `encrypted` is `None` when it cannot be told
    /// without reading the secret.
    PrivateKey {
        /// Which private-key format it is.
        format: PrivateKeyFormat,
        /// Whether it is protected by a passphrase, when that is visible.
        encrypted: Option<bool>,
    },
    /// RSA modulus shorter than [`crate::KeyPolicy::min_rsa_bits`].
    RsaTooSmall {
        /// Exact modulus size.
        bits: u32,
        /// The policy's minimum.
        min_bits: u32,
    },
    /// RSA modulus longer than SSH implementations support (16384 bits).
    RsaTooLarge {
        /// Exact modulus size.
        bits: u32,
    },
    /// `ssh-dss`.
    Dsa,
    /// An OpenSSH certificate (`…-cert-v01@openssh.com`).
    Certificate {
        /// The certificate type, e.g. `ssh-ed25519-cert-v01@openssh.com`.
        algorithm: String,
    },
    /// A line with the `cert-authority` option.
    CertificateAuthority,
    /// A FIDO/U2F security-key type (`sk-…@openssh.com`).
    SecurityKey {
        /// The key type.
        algorithm: String,
    },
    /// A key type Ferry does not know.
    UnknownType {
        /// The type as written (cleaned, shortened).
        name: String,
    },
    /// The type written on the line is not the type inside the key data.
    TypeMismatch {
        /// The type written on the line.
        declared: String,
        /// The type inside the key data.
        actual: String,
    },
    /// The key data is not base64.
    MalformedBase64,
    /// The key data decodes but is cut short or damaged.
    IncompleteKey,
    /// A key type with nothing after it.
    MissingKeyData,
    /// The options before the key cannot be used.
    InvalidOptions(OptionsError),
    /// A `BEGIN` block with no matching `END`.
    UnterminatedBlock,
    /// A PEM-style block that is not a public key (an X.509 certificate, …).
    UnsupportedBlock {
        /// The block's label (cleaned, shortened).
        label: String,
    },
    /// The same key was already given earlier in the input.
    Duplicate {
        /// Line of the first occurrence.
        first_line: usize,
    },
    /// A line that is not a key at all.
    NotAKey,
}

impl RefusalKind {
    /// Stable, kebab-case code for machines (`--json`, tests, metrics).
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::PrivateKey { .. } => "private-key",
            Self::RsaTooSmall { .. } => "rsa-too-small",
            Self::RsaTooLarge { .. } => "rsa-too-large",
            Self::Dsa => "dsa",
            Self::Certificate { .. } => "certificate",
            Self::CertificateAuthority => "certificate-authority",
            Self::SecurityKey { .. } => "security-key",
            Self::UnknownType { .. } => "unknown-type",
            Self::TypeMismatch { .. } => "type-mismatch",
            Self::MalformedBase64 => "malformed-base64",
            Self::IncompleteKey => "incomplete-key",
            Self::MissingKeyData => "missing-key-data",
            Self::InvalidOptions(_) => "invalid-options",
            Self::UnterminatedBlock => "unterminated-block",
            Self::UnsupportedBlock { .. } => "unsupported-block",
            Self::Duplicate { .. } => "duplicate",
            Self::NotAKey => "not-a-key",
        }
    }
}

/// A refusal: the line (first line of a block), what is wrong, and the reason
/// in plain words with the fix. Displays as `line 3: RSA key is 1024 bits; …`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {reason}")]
pub struct Refusal {
    /// 1-based line number (first line of a block).
    pub line: usize,
    /// What is wrong, as data.
    pub kind: RefusalKind,
    /// What is wrong and how to fix it, in plain words (without the line number).
    pub reason: String,
}

/// What a well-formed public key (or certificate) is, whether or not the policy
/// accepts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFacts {
    /// The key, with its comment. For a certificate this is the certified key.
    pub public_key: PublicKey,
    /// The SSH type name, e.g. `ssh-ed25519`, `ssh-ed25519-cert-v01@openssh.com`.
    pub algorithm: String,
    /// The type as `ssh-keygen -lf` shows it: `ED25519`, `RSA`, `ECDSA`, `DSA`,
    /// `ED25519-CERT`, …
    pub key_type: String,
    /// The size as `ssh-keygen -lf` shows it (exact RSA modulus bits).
    pub bits: u32,
    /// `SHA256:…`, byte-identical to `ssh-keygen -lf` (for a certificate, that
    /// of the certified key, as ssh-keygen shows it).
    pub fingerprint: String,
    /// Canonical OpenSSH line: type, base64, and the comment if there is one.
    pub openssh_line: String,
    /// True for an OpenSSH certificate.
    pub is_certificate: bool,
}

/// Whether a finding is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted by the policy; [`Finding::key`] is always `Some`.
    Accepted,
    /// Refused, with the reason.
    Refused(Refusal),
}

/// One key or key-like thing found in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// 1-based line number (first line of a block).
    pub line: usize,
    /// Where it came from.
    pub format: SourceFormat,
    /// The key, when it is a well-formed public key or certificate (even if
    /// refused, e.g. short RSA or DSA). `None` for private keys, damaged data,
    /// type mismatches and lines that are not keys.
    pub key: Option<KeyFacts>,
    /// The key's comment (empty if none). Never taken from a private key.
    pub comment: String,
    /// The authorized_keys options before the key (empty if none).
    pub options: KeyOptions,
    /// Accepted, or refused with the reason.
    pub verdict: Verdict,
}

impl Finding {
    pub(crate) fn refused(
        line: usize,
        format: SourceFormat,
        kind: RefusalKind,
        reason: String,
    ) -> Self {
        Self {
            line,
            format,
            key: None,
            comment: String::new(),
            options: KeyOptions::default(),
            verdict: Verdict::Refused(Refusal { line, kind, reason }),
        }
    }

    /// True when the policy accepts this key.
    #[must_use]
    pub fn is_accepted(&self) -> bool {
        matches!(self.verdict, Verdict::Accepted) && self.key.is_some()
    }

    /// The accepted key, or `None` when refused.
    #[must_use]
    pub fn accepted_key(&self) -> Option<&KeyFacts> {
        if self.is_accepted() {
            self.key.as_ref()
        } else {
            None
        }
    }

    /// The refusal, or `None` when accepted.
    #[must_use]
    pub fn refusal(&self) -> Option<&Refusal> {
        match &self.verdict {
            Verdict::Refused(refusal) => Some(refusal),
            Verdict::Accepted => None,
        }
    }

    /// One line for people: `line 4: accepted ED25519 256 SHA256:… comment` or
    /// the refusal (`line 3: RSA key is 1024 bits; …`).
    #[must_use]
    pub fn describe(&self) -> String {
        match (&self.verdict, &self.key) {
            (Verdict::Accepted, Some(key)) => {
                let mut text = format!(
                    "line {}: accepted {} {} {}",
                    self.line, key.key_type, key.bits, key.fingerprint
                );
                if !self.comment.is_empty() {
                    text.push(' ');
                    text.push_str(&self.comment);
                }
                text
            }
            (Verdict::Refused(refusal), _) => refusal.to_string(),
            (Verdict::Accepted, None) => format!("line {}: no key", self.line),
        }
    }
}

/// JSON shape used by `ferry key inspect --json`:
/// `{"line","format","type","algorithm","bits","fingerprint","comment","options",
/// "options_text","openssh_line","accepted","reason","reason_code"}`. Fields that
/// are unknown are `null`; `reason` has no `line N:` prefix.
impl Serialize for Finding {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let key = self.key.as_ref();
        let refusal = self.refusal();
        let options: &[KeyOption] = self.options.as_slice();
        let mut out = serializer.serialize_struct("Finding", 13)?;
        out.serialize_field("line", &self.line)?;
        out.serialize_field("format", &self.format)?;
        out.serialize_field("type", &key.map(|k| k.key_type.as_str()))?;
        out.serialize_field("algorithm", &key.map(|k| k.algorithm.as_str()))?;
        out.serialize_field("bits", &key.map(|k| k.bits))?;
        out.serialize_field("fingerprint", &key.map(|k| k.fingerprint.as_str()))?;
        out.serialize_field("comment", &self.comment)?;
        out.serialize_field("options", options)?;
        out.serialize_field("options_text", self.options.raw())?;
        out.serialize_field("openssh_line", &key.map(|k| k.openssh_line.as_str()))?;
        out.serialize_field("accepted", &self.is_accepted())?;
        out.serialize_field("reason", &refusal.map(|r| r.reason.as_str()))?;
        out.serialize_field("reason_code", &refusal.map(|r| r.kind.code()))?;
        out.end()
    }
}
