//! Which SSH algorithms Ferry offers, and why.
//!
//! russh's defaults are close but not right for a server on the internet:
//! they offer pre-login zlib, the SHA-1 `ssh-rsa` host-key signature, and a
//! Diffie-Hellman group-exchange answer that ignores the client's maximum. The
//! lists here are the contract in DESIGN.md ("Algorithms"): no SHA-1 anywhere
//! by default; plain (non-ETM) HMACs stay offered because libssh2 clients
//! (curl) and JSch fail with ETM-only lists.
//!
//! Every key exchange must be cheap for the server, because a client can pick
//! the most expensive one and send random bytes: russh computes finite-field
//! Diffie-Hellman with a full-size exponent inside its own session task, on
//! the async workers, where Ferry cannot move it. Measured on a 2-core test
//! machine (tests/handshake_cost.rs): 2048 bits cost 9 ms, 3072 bits 32 ms,
//! 4096 bits 72 ms, 8192 bits 0.5 s. So the fixed 4096- and 8192-bit groups
//! are not offered and group exchange stops at 3072 bits; every offered key
//! exchange stays under 50 ms of server CPU.
//!
//! `sftp.legacy_algorithms` (on by default) keeps ECDH over the NIST curves
//! and the ECDSA host key, which Java exporters on JSch 0.1.x need; a vendor
//! without such clients turns it off and offers neither.

use std::borrow::Cow;

use russh::kex::dh::groups::{DH_GROUP14, DH_GROUP15, DhGroup};
use russh::keys::{Algorithm, EcdsaCurve, HashAlg, PrivateKey};
use russh::{Preferred, cipher, compression, kex, mac};

/// The largest finite-field Diffie-Hellman group offered, in bits.
pub const MAX_DH_BITS: usize = 3072;

/// Key exchanges offered to every client, best first.
const KEX: &[kex::Name] = &[
    kex::MLKEM768X25519_SHA256,
    kex::CURVE25519,
    kex::CURVE25519_PRE_RFC_8731,
    kex::DH_GEX_SHA256,
    kex::DH_G14_SHA256,
];

/// Key exchanges offered only with `legacy_algorithms` (JSch 0.1.x).
const LEGACY_KEX: &[kex::Name] = &[
    kex::ECDH_SHA2_NISTP256,
    kex::ECDH_SHA2_NISTP384,
    kex::ECDH_SHA2_NISTP521,
];

/// Pseudo-algorithms: these names do not parse from strings, and leaving them
/// out silently drops ext-info (server-sig-algs) and the strict-kex Terrapin
/// countermeasure.
const KEX_EXTENSIONS: &[kex::Name] = &[
    kex::EXTENSION_SUPPORT_AS_SERVER,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];

/// The ECDSA host-key algorithms, offered only with `legacy_algorithms`.
fn legacy_host_key_algorithms() -> [Algorithm; 3] {
    [
        EcdsaCurve::NistP256,
        EcdsaCurve::NistP384,
        EcdsaCurve::NistP521,
    ]
    .map(|curve| Algorithm::Ecdsa { curve })
}

/// Whether a host key exists only for legacy clients (the ECDSA one).
pub fn is_legacy_host_key(key: &PrivateKey) -> bool {
    legacy_host_key_algorithms().contains(&key.algorithm())
}

/// The algorithm lists the server offers; `legacy` adds the NIST curves and
/// the ECDSA host key.
pub fn preferred(legacy: bool) -> Preferred {
    let mut kex_names = KEX.to_vec();
    if legacy {
        // After curve25519, before the finite-field groups: cheaper than DH.
        kex_names.splice(3..3, LEGACY_KEX.iter().copied());
    }
    kex_names.extend_from_slice(KEX_EXTENSIONS);
    // Host-key signatures (only those with a loaded key are offered) and the
    // server-sig-algs list. `ssh-rsa` (SHA-1) is absent: legacy clients'
    // SHA-1 *user* signatures are decided per account in the session's auth
    // handler instead.
    let mut key = vec![Algorithm::Ed25519];
    if legacy {
        key.extend(legacy_host_key_algorithms());
    }
    key.extend([
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha512),
        },
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha256),
        },
    ]);
    Preferred {
        kex: Cow::Owned(kex_names),
        key: Cow::Owned(key),
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

/// Picks a group-exchange group inside the client's `min..=max` (RFC 4419)
/// and at most [`MAX_DH_BITS`]: the smallest at least as large as its
/// preferred size, else the largest that fits. `None` when no group fits,
/// which fails the exchange (a client insisting on 8192 bits).
pub fn dh_gex_group(min: usize, preferred: usize, max: usize) -> Option<DhGroup> {
    let mut fits: Vec<DhGroup> = [DH_GROUP14, DH_GROUP15]
        .into_iter()
        .filter(|g| g.bit_size() <= MAX_DH_BITS && (min..=max).contains(&g.bit_size()))
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
        // OpenSSH asks for 2048 < 8192 < 8192 and gets the largest offered.
        assert_eq!(dh_gex_group(2048, 8192, 8192).unwrap().bit_size(), 3072);
        assert_eq!(dh_gex_group(2048, 3072, 8192).unwrap().bit_size(), 3072);
        assert!(dh_gex_group(512, 768, 1024).is_none());
        // A client insisting on expensive groups gets none.
        assert!(dh_gex_group(4096, 8192, 8192).is_none());
    }

    #[test]
    fn no_key_exchange_above_3072_bits_is_offered() {
        for legacy in [true, false] {
            let p = preferred(legacy);
            let names: Vec<&str> = p.kex.iter().map(|n| n.as_ref()).collect();
            for heavy in ["group16", "group17", "group18", "sha1"] {
                assert!(!names.iter().any(|n| n.contains(heavy)), "{names:?}");
            }
        }
    }

    #[test]
    fn legacy_algorithms_are_the_nist_curves_and_the_ecdsa_host_key() {
        let names = |p: &Preferred| -> Vec<String> {
            p.kex
                .iter()
                .map(|n| n.as_ref().to_owned())
                .chain(p.key.iter().map(|a| a.to_string()))
                .collect()
        };
        let with = names(&preferred(true));
        let without = names(&preferred(false));
        let legacy: Vec<&String> = with.iter().filter(|n| !without.contains(n)).collect();
        assert_eq!(
            legacy,
            [
                "ecdh-sha2-nistp256",
                "ecdh-sha2-nistp384",
                "ecdh-sha2-nistp521",
                "ecdsa-sha2-nistp256",
                "ecdsa-sha2-nistp384",
                "ecdsa-sha2-nistp521"
            ]
        );
        assert!(without.iter().all(|n| !n.contains("nistp")), "{without:?}");
        assert!(without.contains(&"curve25519-sha256".to_owned()));
    }

    #[test]
    fn nothing_sha1_and_no_compression_is_offered() {
        let p = preferred(true);
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
