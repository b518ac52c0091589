//! The server's identity: its host keys.
//!
//! Districts pin the host key the first time they connect, so it must never
//! change behind their back. The three keys (Ed25519, ECDSA P-256, RSA 3072)
//! are created on first start in `data_dir/host_keys/`, written with mode
//! 0600, and loaded unchanged on every later start. Nothing here ever logs or
//! returns private key material; only public keys and fingerprints leave.

use std::io;
use std::path::{Path, PathBuf};

use russh::keys::ssh_key::private::RsaKeypair;
use russh::keys::ssh_key::{EcdsaCurve, LineEnding};
use russh::keys::{Algorithm, HashAlg, PrivateKey};

/// The file names of the host keys, in the order the server offers them.
const HOST_KEY_FILES: [(&str, HostKeyKind); 3] = [
    ("ssh_host_ed25519_key", HostKeyKind::Ed25519),
    ("ssh_host_ecdsa_key", HostKeyKind::EcdsaP256),
    ("ssh_host_rsa_key", HostKeyKind::Rsa3072),
];

#[derive(Clone, Copy, Debug)]
enum HostKeyKind {
    Ed25519,
    EcdsaP256,
    Rsa3072,
}

/// Why the host keys could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    #[error(
        "cannot create the host key directory {path}: {source}; check that data_dir is writable by the user running ferry"
    )]
    CreateDir { path: PathBuf, source: io::Error },
    #[error(
        "cannot read host key {path}: {reason}; restore it from a backup, or delete it to make a new one (districts that pinned the old key will then see a host key warning)"
    )]
    Load { path: PathBuf, reason: String },
    #[error("cannot create host key {path}: {reason}; check that data_dir is writable")]
    Create { path: PathBuf, reason: String },
}

/// A public host key as districts see it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HostPublicKey {
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`.
    pub algorithm: String,
    /// `SHA256:…`, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
    /// The OpenSSH one-line public key (`.pub` file contents).
    pub openssh: String,
}

/// The server's host keys, loaded from (or created in) `data_dir/host_keys`.
pub struct HostKeys {
    keys: Vec<PrivateKey>,
}

impl HostKeys {
    /// Loads the host keys, creating any that do not exist yet.
    pub fn load_or_create(data_dir: &Path) -> Result<HostKeys, HostKeyError> {
        let dir = data_dir.join("host_keys");
        std::fs::create_dir_all(&dir).map_err(|source| HostKeyError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        let mut keys = Vec::with_capacity(HOST_KEY_FILES.len());
        for (file, kind) in HOST_KEY_FILES {
            let path = dir.join(file);
            let key = if path.exists() {
                load(&path)?
            } else {
                let key = create(kind).map_err(|reason| HostKeyError::Create {
                    path: path.clone(),
                    reason,
                })?;
                write(&path, &key)?;
                tracing::info!(path = %path.display(), fingerprint = %key.public_key().fingerprint(HashAlg::Sha256), "created host key");
                key
            };
            keys.push(key);
        }
        Ok(HostKeys { keys })
    }

    /// The private keys, for the SSH server configuration only.
    pub fn private_keys(&self) -> Vec<PrivateKey> {
        self.keys.clone()
    }

    /// The public halves, for `ferry host-key show` and the host key download.
    pub fn public_keys(&self) -> Vec<HostPublicKey> {
        self.keys
            .iter()
            .map(|key| {
                let public = key.public_key();
                HostPublicKey {
                    algorithm: public.algorithm().as_str().to_owned(),
                    fingerprint: public.fingerprint(HashAlg::Sha256).to_string(),
                    openssh: public
                        .to_openssh()
                        .unwrap_or_else(|_| String::from("(unencodable key)")),
                }
            })
            .collect()
    }
}

fn load(path: &Path) -> Result<PrivateKey, HostKeyError> {
    russh::keys::load_secret_key(path, None).map_err(|e| HostKeyError::Load {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn create(kind: HostKeyKind) -> Result<PrivateKey, String> {
    let mut rng = rand::rng();
    let key = match kind {
        HostKeyKind::Ed25519 => PrivateKey::random(&mut rng, Algorithm::Ed25519),
        HostKeyKind::EcdsaP256 => PrivateKey::random(
            &mut rng,
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256,
            },
        ),
        HostKeyKind::Rsa3072 => RsaKeypair::random(&mut rng, 3072).map(PrivateKey::from),
    };
    key.map_err(|e| e.to_string())
}

/// Writes a new key to a temporary file (mode 0600) and renames it into
/// place, so a crash never leaves a half-written host key behind.
fn write(path: &Path, key: &PrivateKey) -> Result<(), HostKeyError> {
    let tmp = path.with_extension("new");
    let fail = |reason: String| HostKeyError::Create {
        path: path.to_owned(),
        reason,
    };
    let _ = std::fs::remove_file(&tmp);
    key.write_openssh_file(&tmp, LineEnding::LF)
        .map_err(|e| fail(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| fail(e.to_string()))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| fail(e.to_string()))?;
    std::fs::write(path.with_extension("pub"), public + "\n").map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_created_once_and_reloaded_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let first = HostKeys::load_or_create(dir.path()).unwrap().public_keys();
        let algorithms: Vec<_> = first.iter().map(|k| k.algorithm.as_str()).collect();
        assert_eq!(
            algorithms,
            ["ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"]
        );
        let second = HostKeys::load_or_create(dir.path()).unwrap().public_keys();
        let fps = |keys: &[HostPublicKey]| {
            keys.iter()
                .map(|k| k.fingerprint.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(fps(&first), fps(&second));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("host_keys/ssh_host_rsa_key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "host key readable by others");
    }
}
