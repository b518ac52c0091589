//! DER public keys from PEM blocks — SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`)
//! for RSA, ECDSA P-256/384/521 and Ed25519, and PKCS#1 (`BEGIN RSA PUBLIC KEY`)
//! — converted to the SSH key blob that the rest of the crate judges.
//!
//! This is what `ssh-keygen -i -m PKCS8` / `-m PEM` do; ssh-key cannot read
//! these formats itself.

use russh::keys::ssh_key::public::{EcdsaPublicKey, Ed25519PublicKey, KeyData, RsaPublicKey};
use russh::keys::ssh_key::{Mpint, PublicKey};
use spki::ObjectIdentifier;
use spki::der::Decode as _;

use crate::finding::RefusalKind;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const DSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10040.4.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const SECP521R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");

type Converted = Result<Vec<u8>, (RefusalKind, String)>;

fn damaged() -> (RefusalKind, String) {
    (
        RefusalKind::IncompleteKey,
        "the PEM public key is incomplete or damaged (its DER structure does not decode) — export the public key again and copy the whole block".to_owned(),
    )
}

fn unsupported(what: &str) -> (RefusalKind, String) {
    (
        RefusalKind::UnknownType {
            name: what.to_owned(),
        },
        format!(
            "the PEM public key is {what}, which Ferry does not accept; Ferry accepts Ed25519, ECDSA P-256/384/521 and RSA — generate a new key with ssh-keygen -t ed25519"
        ),
    )
}

fn to_blob(key: KeyData) -> Converted {
    PublicKey::from(key).to_bytes().map_err(|_| damaged())
}

/// SubjectPublicKeyInfo DER → SSH blob.
pub(crate) fn spki_to_blob(der: &[u8]) -> Converted {
    let info = spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|_| damaged())?;
    let key_bytes = info.subject_public_key.as_bytes().ok_or_else(damaged)?;
    let oid = info.algorithm.oid;
    if oid == RSA_ENCRYPTION {
        pkcs1_to_blob(key_bytes)
    } else if oid == EC_PUBLIC_KEY {
        let curve = info.algorithm.parameters_oid().map_err(|_| damaged())?;
        let ecdsa = if curve == SECP256R1 {
            p256::ecdsa::VerifyingKey::from_sec1_bytes(key_bytes)
                .map(|key| EcdsaPublicKey::from(&key))
        } else if curve == SECP384R1 {
            p384::ecdsa::VerifyingKey::from_sec1_bytes(key_bytes)
                .map(|key| EcdsaPublicKey::from(&key))
        } else if curve == SECP521R1 {
            p521::ecdsa::VerifyingKey::from_sec1_bytes(key_bytes)
                .map(|key| EcdsaPublicKey::from(&key))
        } else {
            return Err(unsupported(&format!(
                "an EC key on a curve SSH does not use ({curve})"
            )));
        };
        let ecdsa = ecdsa.map_err(|_| {
            (
                RefusalKind::IncompleteKey,
                "the EC public key's point is not on its curve, so the key is damaged — export the public key again".to_owned(),
            )
        })?;
        to_blob(KeyData::Ecdsa(ecdsa))
    } else if oid == ED25519 {
        let bytes: [u8; 32] = key_bytes.try_into().map_err(|_| damaged())?;
        to_blob(KeyData::Ed25519(Ed25519PublicKey(bytes)))
    } else if oid == DSA {
        Err((
            RefusalKind::Dsa,
            "DSA keys are not accepted: they are limited to 1024 bits and OpenSSH has disabled them — generate a new key with ssh-keygen -t ed25519".to_owned(),
        ))
    } else {
        Err(unsupported(&format!("of algorithm {oid}")))
    }
}

/// PKCS#1 `RSAPublicKey` DER → SSH blob.
pub(crate) fn pkcs1_to_blob(der: &[u8]) -> Converted {
    let key = pkcs1::RsaPublicKey::try_from(der).map_err(|_| damaged())?;
    let e = Mpint::from_positive_bytes(key.public_exponent.as_bytes());
    let n = Mpint::from_positive_bytes(key.modulus.as_bytes());
    let rsa = RsaPublicKey::new(e, n).map_err(|_| damaged())?;
    to_blob(KeyData::Rsa(rsa))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    // `openssl genpkey -algorithm ed25519 | openssl pkey -pubout`
    const ED25519_SPKI: &str = "MCowBQYDK2VwAyEAEP/4zKjBXZvP+YvrjZMPczADeMmSqpDw+Sn89/osSQI=";

    #[test]
    fn ed25519_spki_becomes_an_ssh_blob() {
        let der = STANDARD.decode(ED25519_SPKI).unwrap();
        let blob = spki_to_blob(&der).unwrap();
        let key = PublicKey::from_bytes(&blob).unwrap();
        // `ssh-keygen -lf` of the same key written as an OpenSSH line.
        assert_eq!(
            crate::fingerprint(&key),
            "SHA256:yLTJCQ6PHk4HOZkyGUvAY8D5gpQxAMhw3PpNdsrQNrY"
        );
    }

    #[test]
    fn garbage_der_is_damaged() {
        assert_eq!(
            spki_to_blob(b"\x30\x03\x02\x01").unwrap_err().0,
            RefusalKind::IncompleteKey
        );
        assert_eq!(
            pkcs1_to_blob(b"nonsense").unwrap_err().0,
            RefusalKind::IncompleteKey
        );
    }
}
