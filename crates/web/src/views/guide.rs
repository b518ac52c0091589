//! The connection guide for districts, on the account page: the account's
//! own host, port, user name, folder and host key fingerprints, then short,
//! exact steps for WinSCP, OpenSSH `sftp` and Infinite Campus's Data
//! Extract Utility, and how to install the public key their tool made.

use maud::{Markup, html};

use crate::service::ConnectInfo;

/// `sftp -P 2222 user@host`, or without `-P` on port 22.
fn sftp_command(info: &ConnectInfo, user: &str) -> String {
    if info.port == 22 {
        format!("sftp -i ~/.ssh/{user}_ferry {user}@{}", info.host)
    } else {
        format!(
            "sftp -P {} -i ~/.ssh/{user}_ferry {user}@{}",
            info.port, info.host
        )
    }
}

/// The guide for `user` (the account's name).
pub(crate) fn guide(info: &ConnectInfo, user: &str) -> Markup {
    let ed25519 = info
        .keys
        .iter()
        .find(|k| k.key.algorithm.contains("ed25519"))
        .map(|k| k.key.fingerprint.clone())
        .unwrap_or_default();
    let ecdsa = info
        .keys
        .iter()
        .find(|k| k.key.algorithm.starts_with("ecdsa"))
        .map(|k| k.key.fingerprint.clone())
        .unwrap_or_default();
    html! {
        section id="guide" {
            h2 { "Connection guide for the district" }
            p { "Every tool needs the same five things: host " code.guide-host { (info.host) }
                ", port " code.guide-port { (info.port) } ", user name " code.guide-user { (user) }
                ", the folder " code { "/inbound" } " to upload into, and a key pair whose public key is installed above. "
                "Files put anywhere else are refused; what became of each file appears in " code { "/reports" } "." }
            details open {
                summary { strong { "Your tool made a key pair: install its public key" } }
                ol {
                    li { "Open the public key file your tool saved (it ends in " code { ".pub" } ", or is a text block starting " code { "---- BEGIN SSH2 PUBLIC KEY ----" } "). Never send or paste the private key." }
                    li { "Copy all of its text and paste it into " a href="#add-keys" { "Add keys" } " above (or choose the file), then " em { "Add keys" } "." }
                    li { "The key works from the time shown next to it (a few minutes). Until then logins with it are refused with the reason “key pending”." }
                }
            }
            details {
                summary { strong { "WinSCP (Windows)" } }
                ol {
                    li { "Make a key: open PuTTYgen (it comes with WinSCP: Tools ▸ Run PuTTYgen), choose " em { "EdDSA (Ed25519)" } " or RSA 3072, click " em { "Generate" } ", then " em { "Save private key" } " (a .ppk file, kept on this computer) and copy the text under " em { "Public key for pasting into OpenSSH authorized_keys file" } " into Add keys above." }
                    li { "Already have an OpenSSH private key? In PuTTYgen use Conversions ▸ Import key, then Save private key as .ppk; paste its public key as above." }
                    li { "In WinSCP: New Session, File protocol " em { "SFTP" } ", Host name " code.guide-host { (info.host) } ", Port number " code.guide-port { (info.port) } ", User name " code.guide-user { (user) } ", no password." }
                    li { "Advanced… ▸ SSH ▸ Authentication ▸ Private key file: choose the .ppk file. OK, then Save." }
                    li { "Login. On the first connection WinSCP shows the server's key fingerprint: it must be " code { (ed25519) } " (Ed25519) or " code { (ecdsa) } " (ECDSA). Click Accept only if it matches." }
                    li { "Open " code { "inbound" } " and drag your files there." }
                }
            }
            details {
                summary { strong { "OpenSSH sftp (Linux, macOS, Windows 10 and later)" } }
                ol {
                    li { "Make a key: " code { "ssh-keygen -t ed25519 -f ~/.ssh/" (user) "_ferry -C " (user) } " and paste the contents of " code { "~/.ssh/" (user) "_ferry.pub" } " into Add keys above." }
                    li { "Pin the server: add the known_hosts lines above to " code { "~/.ssh/known_hosts" } " (or download the .pub file)." }
                    li { "Connect and upload: " code.guide-sftp { (sftp_command(info, user)) } ", then " code { "put students.csv inbound/" } "." }
                    li { "For a nightly job: " code { "sftp -b - … <<< 'put /path/to/export/*.csv inbound/'" } " (with " code { "-b" } " sftp stops at the first error and exits non-zero)." }
                }
            }
            details {
                summary { strong { "Infinite Campus: Data Extract Utility" } }
                ol {
                    li { "System Administration ▸ Data Utilities ▸ " em { "Data Extract Utility SFTP Key Exchange Manager" } ": click New, give the key a name (e.g. " code { (user) } "), and under " em { "SFTP Server Public Key Upload (.pub file)" } " choose the server's ECDSA key " code { "ssh_host_ecdsa_key.pub" } " (" a href="/host-key.pub?type=ecdsa" download { "download it here" } "). Every Java SFTP library Campus has used accepts ECDSA host keys. If an extract later reports a host key error, upload " a href="/host-key.pub" download { "ssh_host_ed25519_key.pub" } " in its place." }
                    li { "Save, then " em { "Download Client SFTP Public Key" } ": open that .pub file in a text editor, copy all of it and paste it into Add keys above." }
                    li { "In the Data Extract Utility, edit the extract: Delivery Mode " em { "SFTP" } " (not SFTP Legacy), Server " code.guide-host { (info.host) } ", Port " code.guide-port { (info.port) } ", Username " code.guide-user { (user) } ", leave the password empty, path/folder " code { "/inbound" } ", tick " em { "SFTP Key Exchange" } " and pick the key you created as the " em { "SFTP Key Exchange Configuration" } "." }
                    li { "Run the extract once with Test/Run Now after the key is active, and check the extract's history and the login attempts on this page." }
                }
            }
        }
    }
}
