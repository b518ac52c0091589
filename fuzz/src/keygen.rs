//! The differential check of the key reader against OpenSSH: for every key
//! Ferry accepts, `ssh-keygen -lf` must print the same fingerprint, bits and
//! type. RFC 4716 and PEM blocks are first converted by `ssh-keygen -i`, as an
//! administrator would; OpenSSH lines are given to it as written (options
//! left out, since ssh-keygen refuses some that sshd accepts).
//!
//! Slow (two processes per key), so it runs only when
//! `FERRY_FUZZ_SSH_KEYGEN=1`, over a corpus (`scripts/fuzz` does that).

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use ferry_keys::{Finding, SourceFormat};

/// Whether the differential check was asked for.
pub fn enabled() -> bool {
    std::env::var_os("FERRY_FUZZ_SSH_KEYGEN").is_some_and(|v| v == "1")
}

/// Compares every accepted finding of `text` with `ssh-keygen -lf`.
///
/// # Panics
/// On any difference, or when ssh-keygen cannot be run.
pub fn compare(text: &str, findings: &[Finding]) {
    let lines = lines(text);
    for finding in findings.iter().filter(|f| f.is_accepted()) {
        let key = finding.key.as_ref().expect("accepted findings carry a key");
        let Some(openssh) = openssh_text(&lines, finding) else {
            continue;
        };
        let printed = fingerprint_line(&openssh);
        let expected = format!("{} {}", key.bits, key.fingerprint);
        let kind = format!("({})", key.key_type);
        assert!(
            printed.starts_with(&expected) && printed.trim_end().ends_with(&kind),
            "line {}: Ferry says {expected} {kind}, ssh-keygen -lf says {printed}\nkey: {openssh}",
            finding.line
        );
    }
}

/// The key as an OpenSSH line ssh-keygen reads, taken from the input itself.
fn openssh_text(lines: &[&str], finding: &Finding) -> Option<String> {
    let key = finding.key.as_ref()?;
    let first = finding.line.checked_sub(1)?;
    let mode = match finding.format {
        SourceFormat::Openssh => return openssh_line(lines.get(first)?, &key.algorithm),
        SourceFormat::Rfc4716 => "RFC4716",
        SourceFormat::PemSpki => "PKCS8",
        SourceFormat::PemPkcs1 => "PEM",
        _ => return None,
    };
    let end = (first + 1..lines.len()).find(|&i| is_end_marker(lines[i]))?;
    let block: Vec<&str> = lines[first..=end].iter().map(|l| l.trim()).collect();
    let file = TempFile::with(&(block.join("\n") + "\n"));
    let output = run(Command::new("ssh-keygen")
        .args(["-i", "-m", mode, "-f"])
        .arg(&file.0));
    Some(output.lines().next()?.to_owned())
}

/// `type base64` from an authorized_keys line (options and comment dropped).
fn openssh_line(line: &str, algorithm: &str) -> Option<String> {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    match tokens.iter().position(|t| *t == algorithm) {
        Some(at) => Some(format!("{algorithm} {}", tokens.get(at + 1)?)),
        // A bare blob: the type is read from the data.
        None => Some(format!("{algorithm} {}", tokens.first()?)),
    }
}

fn is_end_marker(line: &str) -> bool {
    let line = line.trim();
    line.starts_with("---")
        && line
            .trim_matches('-')
            .trim()
            .to_ascii_uppercase()
            .starts_with("END ")
}

fn fingerprint_line(openssh: &str) -> String {
    let file = TempFile::with(&format!("{openssh}\n"));
    run(Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(&file.0))
}

fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .expect("cannot run ssh-keygen: install openssh-client");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Lines as Ferry splits them: LF, CRLF and a lone CR each end one.
fn lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'\n' => {
                lines.push(&text[start..index]);
                start = index + 1;
            }
            b'\r' => {
                lines.push(&text[start..index]);
                if bytes.get(index + 1) == Some(&b'\n') {
                    index += 1;
                }
                start = index + 1;
            }
            _ => {}
        }
        index += 1;
    }
    if start < bytes.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// A file in the temporary folder, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn with(content: &str) -> TempFile {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "ferry-fuzz-keygen-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, content).expect("write a temporary key file");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
