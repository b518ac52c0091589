//! A pasted PRIVATE key is refused with a warning to keep it secret and make a
//! new pair, and not one byte of it is kept: every kind of private-key fixture
//! is piped into `ferry key add` and `ferry key inspect` (while a `ferry serve`
//! runs with its log captured), and then the commands' output, the server's
//! log and the raw bytes of the SQLite database files are searched for every
//! 16-character window of the private file's base64 body lines (and every
//! 16-byte window of the decoded secret): none may be found.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const ACCOUNT: &str = "district_leak";

/// Window length searched for.
const WINDOW: usize = 16;

const PRIVATE_FIXTURES: [&str; 5] = [
    "openssh-private-key.txt",
    "openssh-private-key-encrypted.txt",
    "pem-rsa-private.key",
    "pem-ec-private.key",
    "putty-private.ppk",
];

fn fixtures_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/keys");
    assert!(
        dir.join("manifest.tsv").is_file(),
        "the key fixtures are missing: expected {} (with manifest.tsv) next to this repository",
        dir.display()
    );
    dir
}

fn is_base64_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '='
}

/// The base64 body lines of a private-key file: whole lines of base64
/// characters (PEM / OpenSSH bodies, PuTTY's Public-Lines and Private-Lines),
/// plus the value of PuTTY's Private-MAC.
fn body_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(mac) = line.strip_prefix("Private-MAC:") {
            lines.push(mac.trim().to_string());
        } else if line.len() >= WINDOW && line.chars().all(is_base64_char) {
            lines.push(line.to_string());
        }
    }
    lines
}

/// Decodes standard base64 (padding and stray characters ignored).
fn decode_base64(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// The needles of one private file: every 16-character window of each base64
/// body line, and every 16-byte window of the decoded bodies that looks like
/// binary data (at least 10 distinct bytes, at least 6 not printable ASCII).
struct Secret {
    name: String,
    windows: HashSet<Vec<u8>>,
}

impl Secret {
    fn load(name: &str) -> Secret {
        let text = std::fs::read_to_string(fixtures_dir().join(name)).expect("read fixture");
        let lines = body_lines(&text);
        assert!(
            lines.len() >= 2,
            "{name}: found no base64 body in the private key fixture"
        );
        let mut windows = HashSet::new();
        for line in &lines {
            for w in line.as_bytes().windows(WINDOW) {
                windows.insert(w.to_vec());
            }
        }
        // The decoded secret, in case something stores it decoded.
        let mut blocks: Vec<String> = Vec::new();
        let mut current = String::new();
        for line in text.lines().map(str::trim) {
            if line.len() >= 4 && line.chars().all(is_base64_char) {
                current.push_str(line);
            } else if !current.is_empty() {
                blocks.push(std::mem::take(&mut current));
            }
        }
        if !current.is_empty() {
            blocks.push(current);
        }
        for block in blocks {
            let bytes = decode_base64(&block);
            for w in bytes.windows(WINDOW) {
                // Only binary-looking windows: type names and length
                // prefixes ("\0\0\0\x13ecdsa-sha2-nistp384") are public text.
                let distinct: HashSet<u8> = w.iter().copied().collect();
                let binary = w.iter().filter(|b| !b.is_ascii_graphic()).count();
                if distinct.len() >= 10 && binary >= 6 {
                    windows.insert(w.to_vec());
                }
            }
        }
        Secret {
            name: name.to_string(),
            windows,
        }
    }

    /// The first window of the secret found in `haystack`, if any.
    fn find_in(&self, haystack: &[u8]) -> Option<(usize, String)> {
        haystack.windows(WINDOW).enumerate().find_map(|(at, w)| {
            self.windows
                .contains(w)
                .then(|| (at, String::from_utf8_lossy(w).into_owned()))
        })
    }
}

/// ferry.db, ferry.db-wal and ferry.db-shm (those that exist), read raw.
fn database_files(env: &Env) -> Vec<(PathBuf, Vec<u8>)> {
    let db = env.data_dir.join("ferry.db");
    assert!(db.is_file(), "no database at {}", db.display());
    ["ferry.db", "ferry.db-wal", "ferry.db-shm"]
        .iter()
        .map(|n| env.data_dir.join(n))
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read database file");
            (p, bytes)
        })
        .collect()
}

/// The stdout and stderr of every command run with the private keys.
struct Outputs(Vec<(String, String)>);

impl Outputs {
    fn record(&mut self, r: &Run) {
        self.0
            .push((format!("stdout of `{}`", r.what), r.stdout.clone()));
        self.0
            .push((format!("stderr of `{}`", r.what), r.stderr.clone()));
    }
}

/// Asserts that a refusal tells the person to keep the file secret and make
/// a new pair.
fn assert_warns(r: &Run, secret: &Secret) {
    assert!(
        !r.timed_out && r.code().is_some(),
        "{}: the command did not finish: {r}",
        secret.name
    );
    assert!(
        !r.success(),
        "{}: a private key must be refused: {r}",
        secret.name
    );
    let text = r.output().to_lowercase();
    assert!(
        text.contains("private key") && text.contains("secret") && text.contains("generate a new"),
        "{}: the refusal must say it is a private key, to keep it secret and to generate a new pair: {r}",
        secret.name
    );
}

#[test]
fn pasted_private_keys_are_refused_and_never_stored_or_logged() {
    let env = Env::new();
    env.create_account(ACCOUNT);
    let mut server = env.start();
    let mut outputs = Outputs(Vec::new());
    let secrets: Vec<Secret> = PRIVATE_FIXTURES.iter().map(|n| Secret::load(n)).collect();
    // A well-formed public key pasted together with the private one (a
    // common mistake): the whole paste is refused, nothing is stored.
    let public_line =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBu2Fy8+gIaIi1HkwgaGURSKk4lhqMzIIcdcUbssiqyQ a@b\n";

    for secret in &secrets {
        let path = fixtures_dir().join(&secret.name);
        let bytes = std::fs::read(&path).expect("read fixture");
        let path = path.display().to_string();
        let mut mixed = public_line.as_bytes().to_vec();
        mixed.extend_from_slice(&bytes);

        let runs = [
            env.ferry_stdin(&["key", "add", ACCOUNT, "-"], &bytes),
            env.ferry_stdin(&["key", "add", ACCOUNT, "-", "--now", "--replace"], &bytes),
            env.ferry_stdin(&["key", "add", ACCOUNT, "-", "--now"], &mixed),
            env.ferry(&["key", "add", ACCOUNT, &path]),
            env.ferry_stdin(&["key", "inspect", "-"], &bytes),
            env.ferry_stdin(&["key", "inspect", "--json", "-"], &bytes),
            env.ferry(&["key", "inspect", "--json", &path]),
        ];
        for r in &runs {
            assert_warns(r, secret);
            outputs.record(r);
        }
        let json: serde_json::Value =
            serde_json::from_str(runs[5].stdout.trim()).expect("inspect --json prints JSON");
        let keys = json["keys"].as_array().expect("a keys array");
        assert!(
            !keys.is_empty()
                && keys.iter().all(|k| k["accepted"] == false
                    && k["reason_code"] == "private-key"
                    && k["fingerprint"].is_null()),
            "{}: expected one refused private-key finding without a fingerprint: {json}",
            secret.name
        );
    }

    // Nothing was stored for the account.
    let list = env.ferry_ok(&["key", "list", ACCOUNT, "--json"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&list.stdout).ok(),
        Some(serde_json::json!([])),
        "refused pastes must store no key: {list}"
    );

    let check = |when: &str, server_log: &str| {
        let mut leaks = Vec::new();
        for secret in &secrets {
            for (what, text) in &outputs.0 {
                if let Some((at, w)) = secret.find_in(text.as_bytes()) {
                    leaks.push(format!("{}: {w:?} in {what} at byte {at}", secret.name));
                }
            }
            if let Some((at, w)) = secret.find_in(server_log.as_bytes()) {
                leaks.push(format!(
                    "{}: {w:?} in the server log at byte {at}",
                    secret.name
                ));
            }
            for (path, bytes) in database_files(&env) {
                if let Some((at, w)) = secret.find_in(&bytes) {
                    leaks.push(format!(
                        "{}: {w:?} in {} at byte {at}",
                        secret.name,
                        path.display()
                    ));
                }
            }
        }
        assert!(
            leaks.is_empty(),
            "private key bytes were found ({when}):\n{}",
            leaks.join("\n")
        );
    };
    // While the server runs (WAL not yet checkpointed) ...
    std::thread::sleep(Duration::from_millis(500));
    check("server running", &server.log_text());
    // ... and after it stopped (WAL folded into the database file).
    let status = server.terminate(Duration::from_secs(30));
    assert!(status.is_some(), "ferry serve did not stop on SIGTERM");
    check("server stopped", &server.log_text());
    let searched: usize = secrets.iter().map(|s| s.windows.len()).sum();
    eprintln!(
        "searched {searched} windows of {} private keys in {} outputs, the server log ({} lines) and the database files",
        secrets.len(),
        outputs.0.len(),
        server.log_lines().len()
    );
}

/// The search is not blind: a public key that IS installed is found in the
/// database files by the same search.
#[test]
fn the_search_finds_a_key_that_is_stored() {
    let env = Env::new();
    env.create_account(ACCOUNT);
    let line = std::fs::read_to_string(fixtures_dir().join("rsa-3072.pub")).expect("read key");
    let body = line
        .split_whitespace()
        .nth(1)
        .expect("base64 field")
        .to_string();
    let mut windows = HashSet::new();
    for w in body.as_bytes().windows(WINDOW) {
        windows.insert(w.to_vec());
    }
    let stored = Secret {
        name: "rsa-3072.pub".into(),
        windows,
    };
    assert!(stored.find_in(b"nothing here").is_none());
    let r = env.ferry_stdin(&["key", "add", ACCOUNT, "-", "--now"], line.as_bytes());
    r.assert_success();
    let found = database_files(&env)
        .iter()
        .any(|(_, bytes)| stored.find_in(bytes).is_some());
    assert!(
        found,
        "an installed public key was not found in the database files: the leak search would be blind"
    );
}
