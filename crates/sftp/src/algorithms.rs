//! Which SSH algorithms Ferry offers, and why.
//!
//! russh's defaults are close but not right for a server on the internet:
//! they offer pre-login zlib, the SHA-1 `ssh-rsa` host-key signature, and a
//! Diffie-Hellman group-exchange answer that ignores the client's maximum. The
//! lists here are the contract in DESIGN.md ("Algorithms"): no SHA-1 anywhere
//! by default; plain (non-ETM) HMACs stay offered because libssh2 clients
//! (curl) and JSch fail with ETM-only lists; ECDH over the NIST curves is on
//! because old Java exporters need it.

use std::borrow::Cow;

use russh::kex::dh::groups::{DH_GROUP14, DH_GROUP15, DH_GROUP16, DH_GROUP17, DH_GROUP18, DhGroup};
use russh::keys::{Algorithm, EcdsaCurve, HashAlg};
use russh::{Preferred, cipher, compression, kex, mac};

/// The algorithm lists the server offers.
pub fn preferred() -> Preferred {
    Preferred {
        kex: Cow::Borrowed(&[
            kex::MLKEM768X25519_SHA256,
            kex::CURVE25519,
            kex::CURVE25519_PRE_RFC_8731,
            kex::ECDH_SHA2_NISTP256,
            kex::ECDH_SHA2_NISTP384,
            kex::ECDH_SHA2_NISTP521,
            kex::DH_GEX_SHA256,
            kex::DH_G16_SHA512,
            kex::DH_G18_SHA512,
            kex::DH_G14_SHA256,
            // Pseudo-algorithms: these names do not parse from strings, and
            // leaving them out silently drops ext-info (server-sig-algs) and
            // the strict-kex Terrapin countermeasure.
            kex::EXTENSION_SUPPORT_AS_SERVER,
            kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
        ]),
        // Host-key signatures (only those with a loaded key are offered) and
        // the server-sig-algs list. `ssh-rsa` (SHA-1) is absent: legacy
        // clients' SHA-1 *user* signatures are decided per account in the
        // session's auth handler instead.
        key: Cow::Owned(vec![
            Algorithm::Ed25519,
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256,
            },
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP384,
            },
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP521,
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha256),
            },
        ]),
        host_key_certificates: Cow::Borrowed(&[]),
        cipher: Cow::Borrowed(&[
            cipher::CHACHA20_POLY1305,
            cipher::AES_256_GCM,
            cipher::AES_128_GCM,
            cipher::AES_256_CTR,
            cipher::AES_192_CTR,
            cipher::AES_128_CTR,
        ]),
        mac: Cow::Borrowed(&[
            mac::HMAC_SHA256_ETM,
            mac::HMAC_SHA512_ETM,
            mac::HMAC_SHA256,
            mac::HMAC_SHA512,
        ]),
        compression: Cow::Borrowed(&[compression::NONE]),
    }
}

/// Picks a group-exchange group inside the client's `min..=max` (RFC 4419),
/// the smallest at least as large as its preferred size, else the largest
/// that fits. `None` when no built-in group fits, which fails the exchange.
pub fn dh_gex_group(min: usize, preferred: usize, max: usize) -> Option<DhGroup> {
    let mut fits: Vec<DhGroup> = [DH_GROUP14, DH_GROUP15, DH_GROUP16, DH_GROUP17, DH_GROUP18]
        .into_iter()
        .filter(|g| (min..=max).contains(&g.bit_size()))
        .collect();
    match fits.iter().position(|g| g.bit_size() >= preferred) {
        Some(i) => Some(fits.swap_remove(i)),
        None => fits.pop(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_exchange_stays_within_the_clients_range() {
        // JSch 0.1.x asks for 1024 < 2048 < 2048; russh's default sent 4096.
        assert_eq!(dh_gex_group(1024, 2048, 2048).unwrap().bit_size(), 2048);
        // OpenSSH asks for 2048 < 8192 < 8192 and gets the largest group.
        assert_eq!(dh_gex_group(2048, 8192, 8192).unwrap().bit_size(), 8192);
        assert_eq!(dh_gex_group(2048, 3072, 8192).unwrap().bit_size(), 3072);
        assert!(dh_gex_group(512, 768, 1024).is_none());
    }

    #[test]
    fn nothing_sha1_and_no_compression_is_offered() {
        let p = preferred();
        let names: Vec<String> = p
            .kex
            .iter()
            .map(|n| n.as_ref().to_owned())
            .chain(p.mac.iter().map(|n| n.as_ref().to_owned()))
            .chain(p.key.iter().map(|a| a.to_string()))
            .collect();
        assert!(
            names.iter().all(|n| !n.contains("sha1") && n != "ssh-rsa"),
            "{names:?}"
        );
        assert!(names.contains(&"hmac-sha2-256".to_owned()));
        assert!(names.contains(&"ext-info-s".to_owned()));
        assert!(names.contains(&"kex-strict-s-v00@openssh.com".to_owned()));
        assert_eq!(p.compression.len(), 1);
    }
}
