//! Recognising a PRIVATE key pasted by mistake, so it can be refused whole.
//!
//! Only the markers around the secret are looked at (BEGIN/END lines, PuTTY's
//! header lines, and the fixed, non-secret prefix OpenSSH puts before the cipher
//! name). The secret itself is never decoded, copied or echoed: the finding
//! carries only the format, the line number and the advice.

use crate::finding::{Finding, PrivateKeyFormat, RefusalKind, SourceFormat};
use crate::text::Line;

/// Base64 of `openssh-key-v1\0`: the start of every OpenSSH private key body.
const OPENSSH_MAGIC_BASE64: &str = "b3BlbnNzaC1rZXktdjE";
/// Base64 of the magic followed by cipher name `none` (an unencrypted key).
const OPENSSH_UNENCRYPTED_BASE64: &str = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmU";

/// How a private key block ends.
#[derive(Clone, Copy)]
enum Ending {
    /// A `-----END … PRIVATE KEY-----` style line.
    EndMarker,
    /// PuTTY's `Private-MAC:` (v2/v3) or `Private-Hash:` (v1) line.
    PuttyMac,
    /// Base64 body lines without markers: ends at the first line that is not base64.
    Base64Run,
}

/// If this line starts a private key, its format.
fn starts_private_key(text: &str) -> Option<(PrivateKeyFormat, Ending)> {
    if text.starts_with("PuTTY-User-Key-File-") {
        return Some((PrivateKeyFormat::PuttyPpk, Ending::PuttyMac));
    }
    if text.starts_with(OPENSSH_MAGIC_BASE64) {
        return Some((PrivateKeyFormat::Openssh, Ending::Base64Run));
    }
    let upper = text.to_ascii_uppercase();
    let begin = upper.find("BEGIN ")?;
    if !upper.starts_with("---") || !upper[begin..].contains("PRIVATE KEY") {
        return None;
    }
    let label = upper[begin + "BEGIN ".len()..].trim_start();
    let format = if label.starts_with("OPENSSH PRIVATE KEY") {
        PrivateKeyFormat::Openssh
    } else if label.starts_with("RSA PRIVATE KEY") {
        PrivateKeyFormat::PemRsa
    } else if label.starts_with("EC PRIVATE KEY") {
        PrivateKeyFormat::PemEc
    } else if label.starts_with("DSA PRIVATE KEY") {
        PrivateKeyFormat::PemDsa
    } else if label.starts_with("PRIVATE KEY") || label.starts_with("ENCRYPTED PRIVATE KEY") {
        PrivateKeyFormat::Pkcs8
    } else if label.starts_with("SSH2 ") {
        PrivateKeyFormat::Ssh2
    } else {
        PrivateKeyFormat::Other
    };
    Some((format, Ending::EndMarker))
}

fn is_end_marker(text: &str) -> bool {
    let upper = text.to_ascii_uppercase();
    upper.contains("END ") && upper.contains("PRIVATE KEY") && upper.ends_with("---")
}

fn is_base64_text(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

/// If `lines[start]` begins a private key, returns the refusal and the index of
/// the first line after the key (the rest of the input when the end is missing,
/// so that no line of the secret is ever read as anything else).
pub(crate) fn recognise(lines: &[Line<'_>], start: usize) -> Option<(Finding, usize)> {
    let first = lines[start].text.trim();
    let (format, ending) = starts_private_key(first)?;
    let mut end = lines.len();
    let mut encrypted = None;
    match format {
        PrivateKeyFormat::Pkcs8 => {
            encrypted = Some(first.to_ascii_uppercase().contains("ENCRYPTED PRIVATE KEY"));
        }
        PrivateKeyFormat::PemRsa | PrivateKeyFormat::PemEc | PrivateKeyFormat::PemDsa => {
            encrypted = Some(false);
        }
        _ => {}
    }
    // A key pasted as one line: BEGIN, body and END on the same line.
    let one_line = matches!(ending, Ending::EndMarker)
        && first.to_ascii_uppercase().matches("PRIVATE KEY").count() >= 2;
    if one_line {
        end = start + 1;
        if format == PrivateKeyFormat::Openssh {
            encrypted = openssh_encryption(first);
        }
    } else {
        for (index, line) in lines.iter().enumerate().skip(start) {
            let text = line.text.trim();
            if format == PrivateKeyFormat::Openssh
                && encrypted.is_none()
                && text.starts_with(OPENSSH_MAGIC_BASE64)
            {
                encrypted = openssh_encryption(text);
            }
            match (format, text) {
                (PrivateKeyFormat::PuttyPpk, _) if text.starts_with("Encryption:") => {
                    let cipher = text["Encryption:".len()..].trim();
                    encrypted = Some(!cipher.eq_ignore_ascii_case("none"));
                }
                (
                    PrivateKeyFormat::PemRsa | PrivateKeyFormat::PemEc | PrivateKeyFormat::PemDsa,
                    _,
                ) if text.to_ascii_uppercase().starts_with("PROC-TYPE:")
                    && text.to_ascii_uppercase().contains("ENCRYPTED") =>
                {
                    encrypted = Some(true);
                }
                _ => {}
            }
            let ends_here = match ending {
                Ending::EndMarker => index > start && is_end_marker(text),
                Ending::PuttyMac => {
                    text.starts_with("Private-MAC:") || text.starts_with("Private-Hash:")
                }
                Ending::Base64Run => index > start && !is_base64_text(text),
            };
            if ends_here {
                end = match ending {
                    Ending::Base64Run => index,
                    _ => index + 1,
                };
                break;
            }
        }
    }
    let line = lines[start].number;
    Some((
        Finding::refused(
            line,
            SourceFormat::PrivateKey,
            RefusalKind::PrivateKey { format, encrypted },
            advice(format, encrypted),
        ),
        end,
    ))
}

fn openssh_encryption(text: &str) -> Option<bool> {
    let body_start = text.find(OPENSSH_MAGIC_BASE64)?;
    Some(!text[body_start..].starts_with(OPENSSH_UNENCRYPTED_BASE64))
}

fn advice(format: PrivateKeyFormat, encrypted: Option<bool>) -> String {
    let what = format.describe();
    let passphrase = if encrypted == Some(true) {
        " (even though it is protected by a passphrase)"
    } else {
        ""
    };
    let public_half = match format {
        PrivateKeyFormat::PuttyPpk => {
            "In PuTTYgen, generate a new key and send only the text under \"Public key for pasting into OpenSSH authorized_keys file\" (or the saved public key file)"
        }
        _ => {
            "Generate a new key pair (ssh-keygen -t ed25519) and send only the public half, the .pub file (e.g. id_ed25519.pub)"
        }
    };
    format!(
        "this is {what}, not a public key, so it was refused and nothing of it was kept. Keep that file secret and never send it to anyone{passphrase}. {public_half}; treat the pasted key as exposed and stop using it"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::lines;

    fn recognise_text(text: &str) -> Option<(Finding, usize)> {
        let lines = lines(text);
        recognise(&lines, 0)
    }

    fn kind(finding: &Finding) -> RefusalKind {
        finding.refusal().unwrap().kind.clone()
    }

    #[test]
    fn pem_blocks_are_recognised_to_their_end() {
        let text = "-----BEGIN RSA PRIVATE KEY-----\nMIIEsecret\nAAAA\n-----END RSA PRIVATE KEY-----\nssh-ed25519 AAAA";
        let (finding, next) = recognise_text(text).unwrap();
        assert_eq!(next, 4);
        assert_eq!(
            kind(&finding),
            RefusalKind::PrivateKey {
                format: PrivateKeyFormat::PemRsa,
                encrypted: Some(false)
            }
        );
        assert_eq!(finding.format, SourceFormat::PrivateKey);
        let reason = &finding.refusal().unwrap().reason;
        assert!(reason.contains("Keep that file secret"), "{reason}");
        assert!(reason.contains(".pub"), "{reason}");
        assert!(!format!("{finding:?}").contains("MIIEsecret"));
    }

    #[test]
    fn encrypted_pem_and_pkcs8() {
        let text = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nabcd\n-----END EC PRIVATE KEY-----";
        let (finding, _) = recognise_text(text).unwrap();
        assert_eq!(
            kind(&finding),
            RefusalKind::PrivateKey {
                format: PrivateKeyFormat::PemEc,
                encrypted: Some(true)
            }
        );
        assert!(finding.refusal().unwrap().reason.contains("passphrase"));
        let (finding, _) = recognise_text(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIx\n-----END ENCRYPTED PRIVATE KEY-----",
        )
        .unwrap();
        assert_eq!(
            kind(&finding),
            RefusalKind::PrivateKey {
                format: PrivateKeyFormat::Pkcs8,
                encrypted: Some(true)
            }
        );
        let (finding, _) =
            recognise_text("-----BEGIN PRIVATE KEY-----\nMIIx\n-----END PRIVATE KEY-----").unwrap();
        assert_eq!(
            kind(&finding),
            RefusalKind::PrivateKey {
                format: PrivateKeyFormat::Pkcs8,
                encrypted: Some(false)
            }
        );
    }

    #[test]
    fn openssh_encryption_is_read_from_the_cipher_name_prefix() {
        let plain = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----";
        let (finding, _) = recognise_text(plain).unwrap();
        assert_eq!(
            kind(&finding),
            RefusalKind::PrivateKey {
                format: PrivateKeyFormat::Openssh,
                encrypted: Some(false)
            }
        );
        let encrypted = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeX\n-----END OPENSSH PRIVATE KEY-----";
        let (finding, _) = recognise_text(encrypted).unwrap();
        assert_eq!(
            kind(&finding),
            RefusalKind::PrivateKey {
                format: PrivateKeyFormat::Openssh,
                encrypted: Some(true)
            }
        );
    }

    #[test]
    fn one_line_and_headless_pastes() {
        let one_line = "-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAA -----END OPENSSH PRIVATE KEY-----\nnext";
        let (finding, next) = recognise_text(one_line).unwrap();
        assert_eq!(next, 1);
        assert_eq!(
            kind(&finding),
            RefusalKind::PrivateKey {
                format: PrivateKeyFormat::Openssh,
                encrypted: Some(false)
            }
        );
        let headless =
            "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\nAAAAAAAAAAEAAAAz\n\nssh-ed25519 AAAA";
        let (_, next) = recognise_text(headless).unwrap();
        assert_eq!(next, 2);
    }

    #[test]
    fn putty_ppk_ends_at_the_mac_and_reads_encryption() {
        let text = "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: aes256-cbc\nComment: x\nPublic-Lines: 1\nAAAA\nPrivate-Lines: 1\nBBBB\nPrivate-MAC: 00ff\nssh-ed25519 AAAA";
        let (finding, next) = recognise_text(text).unwrap();
        assert_eq!(next, 8);
        assert_eq!(
            kind(&finding),
            RefusalKind::PrivateKey {
                format: PrivateKeyFormat::PuttyPpk,
                encrypted: Some(true)
            }
        );
        assert!(finding.refusal().unwrap().reason.contains("PuTTYgen"));
    }

    #[test]
    fn a_missing_end_swallows_the_rest() {
        let text = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\nmore secret";
        let (_, next) = recognise_text(text).unwrap();
        assert_eq!(next, 3);
    }

    #[test]
    fn public_keys_are_not_private() {
        assert!(recognise_text("-----BEGIN PUBLIC KEY-----").is_none());
        assert!(recognise_text("---- BEGIN SSH2 PUBLIC KEY ----").is_none());
        assert!(recognise_text("ssh-ed25519 AAAA").is_none());
    }
}
