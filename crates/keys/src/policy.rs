//! Which well-formed keys Ferry accepts (`[keys]` in the configuration), and the
//! plain-words reason for each key it refuses.

use russh::keys::ssh_key::public::KeyData;
use serde::{Deserialize, Serialize};

use crate::finding::{KeyFacts, RefusalKind};

/// Largest RSA modulus OpenSSH handles (`SSHBUF_MAX_BIGNUM`).
pub const MAX_RSA_BITS: u32 = 16_384;

const NEW_KEY: &str = "generate a new key with ssh-keygen -t ed25519";

/// The key policy: ssh-ed25519 and ECDSA P-256/384/521 are always accepted,
/// ssh-rsa from `min_rsa_bits` up; DSA, security keys, certificates and unknown
/// types are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyPolicy {
    /// Smallest accepted RSA modulus, in exact bits (default 2048).
    pub min_rsa_bits: u32,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        Self { min_rsa_bits: 2048 }
    }
}

impl KeyPolicy {
    /// Judges a well-formed key: `Ok` when accepted, otherwise what is wrong and
    /// the reason in plain words with the fix.
    ///
    /// # Errors
    /// The refusal kind and reason when the policy refuses the key.
    pub fn judge(&self, key: &KeyFacts) -> Result<(), (RefusalKind, String)> {
        if key.is_certificate {
            return Err((
                RefusalKind::Certificate {
                    algorithm: key.algorithm.clone(),
                },
                format!(
                    "this is an OpenSSH certificate ({}), and certificate authorities are not supported yet — send the plain public key (the .pub file without -cert in its name) instead",
                    key.algorithm
                ),
            ));
        }
        match key.public_key.key_data() {
            KeyData::Ed25519(_) | KeyData::Ecdsa(_) => Ok(()),
            KeyData::Rsa(_) if key.bits < self.min_rsa_bits => Err((
                RefusalKind::RsaTooSmall {
                    bits: key.bits,
                    min_bits: self.min_rsa_bits,
                },
                format!(
                    "RSA key is {} bits; at least {} are required — {NEW_KEY}",
                    key.bits, self.min_rsa_bits
                ),
            )),
            KeyData::Rsa(_) if key.bits > MAX_RSA_BITS => Err((
                RefusalKind::RsaTooLarge { bits: key.bits },
                format!(
                    "RSA key is {} bits; SSH supports at most {MAX_RSA_BITS} — {NEW_KEY}",
                    key.bits
                ),
            )),
            KeyData::Rsa(_) => Ok(()),
            KeyData::Dsa(_) => Err((
                RefusalKind::Dsa,
                format!(
                    "DSA (ssh-dss) keys are not accepted: they are limited to 1024 bits and OpenSSH has disabled them — {NEW_KEY}"
                ),
            )),
            KeyData::SkEd25519(_) | KeyData::SkEcdsaSha2NistP256(_) => Err((
                RefusalKind::SecurityKey {
                    algorithm: key.algorithm.clone(),
                },
                format!(
                    "{} is a hardware security-key (FIDO) key, which is not supported yet — {NEW_KEY}",
                    key.algorithm
                ),
            )),
            _ => Err((
                RefusalKind::UnknownType {
                    name: key.algorithm.clone(),
                },
                format!("key type {} is not supported — {NEW_KEY}", key.algorithm),
            )),
        }
    }
}
