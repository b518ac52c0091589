//! From the binary SSH key blob (the base64 part of a public key line) to
//! [`KeyFacts`]: the type check against the written label, decoding through
//! ssh-key, the ECDSA point check, and the type/bits/fingerprint exactly as
//! `ssh-keygen -lf` shows them.
//!
//! Every input format ends up here, so all formats get the same checks and the
//! same fingerprints.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use russh::keys::ssh_key::public::KeyData;
use russh::keys::ssh_key::{EcdsaCurve, HashAlg, Mpint, PublicKey};

use crate::finding::{KeyFacts, RefusalKind};

/// Key types Ferry recognises (accepted or refused by policy). Anything else in
/// a blob is an unknown type.
const KNOWN_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "ssh-dss",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-ed25519-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "ssh-rsa-cert-v01@openssh.com",
    "ssh-dss-cert-v01@openssh.com",
    "sk-ssh-ed25519-cert-v01@openssh.com",
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
];

/// Whether `name` is a key type Ferry recognises.
pub(crate) fn is_known_type(name: &str) -> bool {
    KNOWN_TYPES.contains(&name)
}

/// A blob that could not become [`KeyFacts`], with the reason in plain words.
pub(crate) type BlobProblem = (RefusalKind, String);

const RECOPY: &str =
    "copy the whole key again from the .pub file (an OpenSSH public key is a single line)";

/// Reads the type name at the start of a blob, if the blob starts with a
/// plausible one (printable ASCII, at most 64 bytes).
pub(crate) fn embedded_type(blob: &[u8]) -> Option<&str> {
    let length = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    if length == 0 || length > 64 {
        return None;
    }
    let name = blob.get(4..4 + length)?;
    if !name.iter().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    std::str::from_utf8(name).ok()
}

/// Decodes a blob. `declared` is the type written before the base64 (OpenSSH
/// lines), `None` when the format has no such label.
pub(crate) fn decode_blob(
    blob: &[u8],
    declared: Option<&str>,
    comment: &str,
) -> Result<KeyFacts, BlobProblem> {
    let Some(actual) = embedded_type(blob) else {
        return Err(incomplete());
    };
    if let Some(declared) = declared
        && declared != actual
    {
        let declared = clean(declared);
        return Err((
            RefusalKind::TypeMismatch {
                declared: declared.clone(),
                actual: actual.to_owned(),
            },
            format!(
                "the line says the key is {declared}, but the key data inside is {actual}; the line was edited or mixed up — {RECOPY}"
            ),
        ));
    }
    if !is_known_type(actual) {
        return Err((
            RefusalKind::UnknownType {
                name: actual.to_owned(),
            },
            format!(
                "unknown key type {actual}; Ferry accepts ssh-ed25519, ecdsa-sha2-nistp256/384/521 and ssh-rsa — generate a new key with ssh-keygen -t ed25519"
            ),
        ));
    }
    let mut public_key = PublicKey::from_bytes(blob).map_err(|_| incomplete())?;
    if let KeyData::Ecdsa(ecdsa) = public_key.key_data()
        && !ecdsa_point_is_valid(ecdsa)
    {
        return Err((
            RefusalKind::IncompleteKey,
            format!(
                "the ECDSA key's point is not on its curve, so the key data is damaged — {RECOPY}"
            ),
        ));
    }
    public_key.set_comment(comment);
    let (key_type, bits) = type_and_bits(public_key.key_data());
    let is_certificate = public_key.key_data().is_certificate();
    let (public_key, canonical_blob) = match public_key.key_data().certificate() {
        // ssh-keygen shows a certificate with the certified key's fingerprint.
        Some(certificate) => (
            PublicKey::new(certificate.public_key().clone(), comment),
            blob.to_vec(),
        ),
        None => {
            let canonical = public_key.to_bytes().map_err(|_| incomplete())?;
            (public_key, canonical)
        }
    };
    let mut openssh_line = format!("{actual} {}", STANDARD.encode(&canonical_blob));
    if !comment.is_empty() {
        openssh_line.push(' ');
        openssh_line.push_str(comment);
    }
    Ok(KeyFacts {
        fingerprint: crate::fingerprint(&public_key),
        public_key,
        algorithm: actual.to_owned(),
        key_type,
        bits,
        openssh_line,
        is_certificate,
    })
}

fn incomplete() -> BlobProblem {
    (
        RefusalKind::IncompleteKey,
        format!(
            "the key data is incomplete or damaged (it was probably cut off or changed when it was copied) — {RECOPY}"
        ),
    )
}

/// Shortens and cleans a type label echoed back in a message.
pub(crate) fn clean(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(64)
        .collect();
    if text.chars().count() > 64 {
        format!("{cleaned}…")
    } else {
        cleaned
    }
}

fn ecdsa_point_is_valid(key: &russh::keys::ssh_key::public::EcdsaPublicKey) -> bool {
    match key.curve() {
        EcdsaCurve::NistP256 => p256::ecdsa::VerifyingKey::try_from(key).is_ok(),
        EcdsaCurve::NistP384 => p384::ecdsa::VerifyingKey::try_from(key).is_ok(),
        EcdsaCurve::NistP521 => p521::ecdsa::VerifyingKey::try_from(key).is_ok(),
    }
}

/// Exact number of bits of a positive multiple-precision integer.
pub(crate) fn mpint_bits(value: &Mpint) -> u32 {
    match value.as_positive_bytes() {
        Some([first, rest @ ..]) => rest.len() as u32 * 8 + (8 - first.leading_zeros()),
        _ => 0,
    }
}

/// Type name and size as `ssh-keygen -lf` prints them.
pub(crate) fn type_and_bits(key: &KeyData) -> (String, u32) {
    let (name, bits) = match key {
        KeyData::Ed25519(_) => ("ED25519", 256),
        KeyData::Ecdsa(ecdsa) => (
            "ECDSA",
            match ecdsa.curve() {
                EcdsaCurve::NistP256 => 256,
                EcdsaCurve::NistP384 => 384,
                EcdsaCurve::NistP521 => 521,
            },
        ),
        KeyData::Rsa(rsa) => ("RSA", mpint_bits(rsa.n())),
        KeyData::Dsa(dsa) => ("DSA", mpint_bits(dsa.p())),
        KeyData::SkEcdsaSha2NistP256(_) => ("ECDSA-SK", 256),
        KeyData::SkEd25519(_) => ("ED25519-SK", 256),
        KeyData::Certificate(certificate) => {
            let (name, bits) = type_and_bits(certificate.public_key());
            return (format!("{name}-CERT"), bits);
        }
        _ => ("UNKNOWN", 0),
    };
    (name.to_owned(), bits)
}

/// `SHA256:…` exactly as `ssh-keygen -lf` prints it.
pub(crate) fn sha256_fingerprint(key: &KeyData) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJ5LskwRJbFgtj5nhmKo0rmIwjdFDF1+INrq95IBvk5N";

    fn blob(base64: &str) -> Vec<u8> {
        STANDARD.decode(base64).unwrap()
    }

    #[test]
    fn ed25519_facts() {
        let facts = decode_blob(&blob(ED25519), Some("ssh-ed25519"), "alice").unwrap();
        assert_eq!(facts.algorithm, "ssh-ed25519");
        assert_eq!(facts.key_type, "ED25519");
        assert_eq!(facts.bits, 256);
        assert_eq!(
            facts.fingerprint,
            "SHA256:eXLQxAA3G2YlGKSnYlUzM+V5C2uSXzX4+dFoKj9pTEg"
        );
        assert_eq!(facts.openssh_line, format!("ssh-ed25519 {ED25519} alice"));
        assert!(!facts.is_certificate);
    }

    #[test]
    fn label_must_match_blob() {
        let (kind, reason) = decode_blob(&blob(ED25519), Some("ssh-rsa"), "").unwrap_err();
        assert_eq!(
            kind,
            RefusalKind::TypeMismatch {
                declared: "ssh-rsa".into(),
                actual: "ssh-ed25519".into()
            }
        );
        assert!(reason.contains("says the key is ssh-rsa"), "{reason}");
    }

    #[test]
    fn cut_blob_is_incomplete() {
        let full = blob(ED25519);
        let (kind, _) = decode_blob(&full[..full.len() - 5], None, "").unwrap_err();
        assert_eq!(kind, RefusalKind::IncompleteKey);
        let (kind, _) = decode_blob(&full[..3], None, "").unwrap_err();
        assert_eq!(kind, RefusalKind::IncompleteKey);
        let mut longer = full.clone();
        longer.push(0);
        let (kind, _) = decode_blob(&longer, None, "").unwrap_err();
        assert_eq!(kind, RefusalKind::IncompleteKey);
    }

    #[test]
    fn unknown_type_is_named() {
        let mut unknown = Vec::new();
        unknown.extend_from_slice(&7u32.to_be_bytes());
        unknown.extend_from_slice(b"ssh-foo");
        unknown.extend_from_slice(&[0, 0, 0, 1, 9]);
        let (kind, reason) = decode_blob(&unknown, None, "").unwrap_err();
        assert_eq!(
            kind,
            RefusalKind::UnknownType {
                name: "ssh-foo".into()
            }
        );
        assert!(reason.contains("unknown key type ssh-foo"));
    }

    #[test]
    fn ecdsa_point_off_the_curve_is_refused() {
        let mut bad = Vec::new();
        for part in [&b"ecdsa-sha2-nistp256"[..], b"nistp256"] {
            bad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            bad.extend_from_slice(part);
        }
        let mut point = vec![4u8];
        point.extend_from_slice(&[1u8; 64]);
        bad.extend_from_slice(&(point.len() as u32).to_be_bytes());
        bad.extend_from_slice(&point);
        let (kind, reason) = decode_blob(&bad, Some("ecdsa-sha2-nistp256"), "").unwrap_err();
        assert_eq!(kind, RefusalKind::IncompleteKey);
        assert!(reason.contains("not on its curve"));
    }

    #[test]
    fn exact_mpint_bits() {
        assert_eq!(mpint_bits(&Mpint::from_positive_bytes(&[0x01, 0, 0])), 17);
        assert_eq!(mpint_bits(&Mpint::from_positive_bytes(&[0xFF, 0])), 16);
        assert_eq!(mpint_bits(&Mpint::from_positive_bytes(&[0x7F])), 7);
        assert_eq!(mpint_bits(&Mpint::from_positive_bytes(&[])), 0);
    }
}
