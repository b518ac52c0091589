//! `ferry key inspect` against every row of the shared key fixtures'
//! `manifest.tsv` (the source of truth): verdict (exit status and the
//! `accepted` flags), fingerprints in file order and key count, read from a
//! file and from stdin; and the fingerprints, bits and types compared with
//! what OpenSSH's own `ssh-keygen -lf` prints for the same keys.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// How long one `ssh-keygen` run may take.
const SSH_KEYGEN_TIMEOUT: Duration = Duration::from_secs(30);

/// `../shared/fixtures/keys`, next to this repository.
fn fixtures_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/keys");
    assert!(
        dir.join("manifest.tsv").is_file(),
        "the key fixtures are missing: expected {} (with manifest.tsv) next to this repository",
        dir.display()
    );
    dir
}

/// One row of manifest.tsv.
#[derive(Debug, Clone)]
struct Row {
    file: String,
    accept: bool,
    reason_or_type: String,
    fingerprints: Vec<String>,
    key_count: usize,
}

impl Row {
    fn path(&self) -> PathBuf {
        fixtures_dir().join(&self.file)
    }

    /// For an accepted row, the SSH key types expected in file order.
    fn expected_types(&self) -> Vec<String> {
        match self.reason_or_type.strip_prefix("authorized_keys:") {
            Some(list) => list.split(',').map(str::to_string).collect(),
            None => vec![self.reason_or_type.clone()],
        }
    }
}

/// Reads and sanity-checks manifest.tsv: the header, five columns per row,
/// as many fingerprints as the key count, every file present, and every
/// fixture file listed (so none is left out of the test).
fn manifest() -> Vec<Row> {
    let dir = fixtures_dir();
    let text = std::fs::read_to_string(dir.join("manifest.tsv")).expect("read manifest.tsv");
    let mut lines = text.lines();
    assert_eq!(
        lines.next().map(str::trim_end),
        Some("file\texpected\treason_or_type\tsha256_fingerprint\tkey_count"),
        "unexpected manifest.tsv header"
    );
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(
            cols.len(),
            5,
            "manifest.tsv row {} has {} columns: {line:?}",
            n + 2,
            cols.len()
        );
        let accept = match cols[1] {
            "accept" => true,
            "reject" => false,
            other => panic!("manifest.tsv row {}: expected is {other:?}", n + 2),
        };
        let fingerprints: Vec<String> = if cols[3] == "-" {
            Vec::new()
        } else {
            cols[3].split(',').map(str::to_string).collect()
        };
        let key_count: usize = cols[4]
            .parse()
            .unwrap_or_else(|e| panic!("manifest.tsv row {}: key_count: {e}", n + 2));
        assert_eq!(
            fingerprints.len(),
            key_count,
            "manifest.tsv row {}: key_count does not match the fingerprints",
            n + 2
        );
        let row = Row {
            file: cols[0].to_string(),
            accept,
            reason_or_type: cols[2].to_string(),
            fingerprints,
            key_count,
        };
        assert!(
            row.path().is_file(),
            "manifest.tsv lists {}, which is missing",
            row.path().display()
        );
        rows.push(row);
    }
    assert!(!rows.is_empty(), "manifest.tsv has no rows");
    for name in dir_names(&dir) {
        if name == "manifest.tsv" || name == "README.md" {
            continue;
        }
        assert!(
            rows.iter().any(|r| r.file == name),
            "fixture {name} is not in manifest.tsv"
        );
    }
    rows
}

fn str_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

/// What the manifest's reason says about the refusal: either the whole input
/// is refused (no findings), or each finding carries one of these codes.
enum ExpectedRefusal {
    WholeInput,
    Codes(&'static [&'static str]),
}

fn expected_refusal(reason: &str) -> ExpectedRefusal {
    use ExpectedRefusal::*;
    match reason.split(':').next().unwrap_or(reason) {
        "weak-rsa-1024" => Codes(&["rsa-too-small"]),
        "weak-dsa" => Codes(&["dsa"]),
        "certificate-not-supported" => Codes(&["certificate"]),
        r if r.starts_with("private-key-") => Codes(&["private-key"]),
        "truncated-base64" => Codes(&["incomplete-key", "malformed-base64"]),
        "type-mismatch" => Codes(&["type-mismatch"]),
        "garbage" | "empty" | "too-large" => WholeInput,
        other => panic!("manifest reason {other:?} is not known to this test"),
    }
}

/// Runs `ferry key inspect --json` on one fixture (by path, or piped to
/// stdin with `-`) and returns every way the answer differs from the manifest.
fn check_row(env: &Env, row: &Row, via_stdin: bool) -> Vec<String> {
    let path = row.path().display().to_string();
    let r = if via_stdin {
        let bytes = std::fs::read(row.path()).expect("read fixture");
        env.ferry_stdin(&["key", "inspect", "--json", "-"], &bytes)
    } else {
        env.ferry(&["key", "inspect", "--json", &path])
    };
    let how = if via_stdin { "stdin" } else { "file" };
    let mut problems = Vec::new();
    let mut fail = |what: String| problems.push(format!("{} ({how}): {what}", row.file));

    if r.timed_out || r.code().is_none() {
        fail(format!("did not finish normally: {r}"));
        return problems;
    }
    let code = r.code().unwrap_or(-1);
    if row.accept && code != 0 {
        fail(format!(
            "expected exit status 0 (accepted), got {code}: {r}"
        ));
    }
    if !row.accept && code == 0 {
        fail(format!(
            "expected a non-zero exit status (refused), got 0: {r}"
        ));
    }

    let json: Value = match serde_json::from_str(r.stdout.trim()) {
        Ok(v) => v,
        Err(e) => {
            fail(format!(
                "--json did not print a JSON document ({e}); DESIGN.md promises {{\"keys\":[…]}}: {r}"
            ));
            return problems;
        }
    };
    let Some(keys) = json.get("keys").and_then(Value::as_array) else {
        fail(format!("the JSON has no \"keys\" array: {json}"));
        return problems;
    };

    // Fingerprints (in file order) and key count.
    let fingerprints: Vec<String> = keys
        .iter()
        .filter_map(|k| str_field(k, "fingerprint"))
        .map(str::to_string)
        .collect();
    if fingerprints != row.fingerprints {
        fail(format!(
            "fingerprints {fingerprints:?}, manifest says {:?}",
            row.fingerprints
        ));
    }
    if fingerprints.len() != row.key_count {
        fail(format!(
            "{} well-formed keys, manifest says {}",
            fingerprints.len(),
            row.key_count
        ));
    }

    // The documented fields are present in every finding, and the verdict
    // and reason agree with each other.
    for k in keys {
        for field in [
            "line",
            "type",
            "bits",
            "fingerprint",
            "comment",
            "options",
            "accepted",
            "reason",
        ] {
            if k.get(field).is_none() {
                fail(format!("a finding lacks the \"{field}\" field: {k}"));
            }
        }
        match k.get("accepted").and_then(Value::as_bool) {
            Some(true) if !k.get("reason").is_none_or(Value::is_null) => {
                fail(format!("an accepted finding has a reason: {k}"))
            }
            Some(false) if str_field(k, "reason").is_none_or(|s| s.trim().is_empty()) => {
                fail(format!("a refused finding has no reason: {k}"))
            }
            None => fail(format!("\"accepted\" is not a boolean: {k}")),
            _ => {}
        }
    }

    let accepted: Vec<bool> = keys
        .iter()
        .map(|k| k.get("accepted").and_then(Value::as_bool) == Some(true))
        .collect();
    if row.accept {
        if keys.is_empty() || accepted.iter().any(|a| !a) {
            fail(format!(
                "expected every key accepted, got accepted flags {accepted:?}: {json}"
            ));
        }
        let types: Vec<&str> = keys
            .iter()
            .filter_map(|k| str_field(k, "algorithm"))
            .collect();
        if types != row.expected_types() {
            fail(format!(
                "key types {types:?}, manifest says {:?}",
                row.expected_types()
            ));
        }
    } else {
        if accepted.iter().any(|a| *a) {
            fail(format!(
                "expected nothing accepted, got accepted flags {accepted:?}: {json}"
            ));
        }
        match expected_refusal(&row.reason_or_type) {
            ExpectedRefusal::WholeInput => {
                if !keys.is_empty() {
                    fail(format!(
                        "expected the whole input refused (no findings), got {json}"
                    ));
                }
                let message = format!("{} {}", str_field(&json, "error").unwrap_or(""), r.stderr);
                if message.trim().is_empty() {
                    fail(format!("the refusal gives no reason: {r}"));
                }
            }
            ExpectedRefusal::Codes(codes) => {
                if keys.is_empty() {
                    fail(format!(
                        "expected a finding refused with {codes:?}, got no findings: {json}"
                    ));
                }
                for k in keys {
                    let code = str_field(k, "reason_code").unwrap_or("");
                    if !codes.contains(&code) {
                        fail(format!(
                            "reason_code {code:?}, expected one of {codes:?} for {}: {k}",
                            row.reason_or_type
                        ));
                    }
                }
            }
        }
        specific_reason_checks(row, keys, &mut fail);
    }
    problems
}

/// The words a person needs, for the refusals whose wording the issue fixes.
fn specific_reason_checks(row: &Row, keys: &[Value], fail: &mut impl FnMut(String)) {
    let reasons: Vec<String> = keys
        .iter()
        .filter_map(|k| str_field(k, "reason"))
        .map(str::to_lowercase)
        .collect();
    let all = reasons.join(" | ");
    let reason = row.reason_or_type.as_str();
    if let Some(cert_type) = reason.strip_prefix("certificate-not-supported:") {
        if !all.contains("certificate authorities are not supported") {
            fail(format!(
                "the certificate refusal must say certificate authorities are not supported: {all}"
            ));
        }
        let algorithms: Vec<&str> = keys
            .iter()
            .filter_map(|k| str_field(k, "algorithm"))
            .collect();
        if algorithms != [cert_type] {
            fail(format!(
                "certificate type {algorithms:?}, expected {cert_type}"
            ));
        }
    }
    if reason.starts_with("private-key-")
        && !(all.contains("secret") && all.contains("generate a new"))
    {
        fail(format!(
            "a private key's refusal must tell the person to keep it secret and generate a new key pair: {all}"
        ));
    }
    if reason == "weak-rsa-1024" {
        let bits: Vec<u64> = keys
            .iter()
            .filter_map(|k| k.get("bits").and_then(Value::as_u64))
            .collect();
        if bits != [1024] || !all.contains("1024") || !all.contains("2048") {
            fail(format!(
                "the weak RSA refusal must give 1024 bits and the 2048 minimum: bits {bits:?}, {all}"
            ));
        }
    }
    if let Some(detail) = reason.strip_prefix("type-mismatch:")
        && let Some((label, blob)) = detail
            .strip_suffix("-blob")
            .and_then(|d| d.split_once("-label-on-"))
        && !(all.contains(label) && all.contains(blob))
    {
        fail(format!(
            "the type-mismatch refusal must name both {label} and {blob}: {all}"
        ));
    }
}

#[test]
fn manifest_rows_are_judged_as_the_manifest_says_from_a_file() {
    let rows = manifest();
    let env = Env::new();
    let before = snapshot(&env.data_dir, &[]);
    let problems: Vec<String> = rows
        .iter()
        .flat_map(|r| check_row(&env, r, false))
        .collect();
    assert!(
        problems.is_empty(),
        "`ferry key inspect --json FILE` disagrees with manifest.tsv on {} point(s):\n{}",
        problems.len(),
        problems.join("\n\n")
    );
    let diff = snapshot_diff(&before, &snapshot(&env.data_dir, &[]));
    assert!(
        diff.is_empty(),
        "`ferry key inspect` must store nothing, but data_dir changed: {diff:?}"
    );
}

#[test]
fn manifest_rows_are_judged_as_the_manifest_says_from_stdin() {
    let rows = manifest();
    let env = Env::new();
    let before = snapshot(&env.data_dir, &[]);
    let problems: Vec<String> = rows.iter().flat_map(|r| check_row(&env, r, true)).collect();
    assert!(
        problems.is_empty(),
        "`ferry key inspect --json -` disagrees with manifest.tsv on {} point(s):\n{}",
        problems.len(),
        problems.join("\n\n")
    );
    let diff = snapshot_diff(&before, &snapshot(&env.data_dir, &[]));
    assert!(
        diff.is_empty(),
        "`ferry key inspect` must store nothing, but data_dir changed: {diff:?}"
    );
}

/// Without --json the exit status is the same verdict.
#[test]
fn manifest_verdicts_hold_without_json() {
    let rows = manifest();
    let env = Env::new();
    let mut problems = Vec::new();
    for row in &rows {
        let r = env.ferry(&["key", "inspect", &row.path().display().to_string()]);
        let ok = r.success();
        if r.timed_out || r.code().is_none() || ok != row.accept {
            problems.push(format!(
                "{}: expected {}, got {r}",
                row.file,
                if row.accept { "exit 0" } else { "a failure" }
            ));
        }
        if !row.accept && r.output().trim().is_empty() {
            problems.push(format!("{}: refused without saying why: {r}", row.file));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// One key as `ssh-keygen -lf` lists it: (bits, fingerprint, type).
type KeygenLine = (u64, String, String);

fn ssh_keygen(args: &[&str], file: &Path) -> Run {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(args).arg(file);
    run(cmd, None, SSH_KEYGEN_TIMEOUT)
}

/// `ssh-keygen -lf` on a fixture, converting RFC 4716 / PKCS#8 / PKCS#1
/// files with `ssh-keygen -i -m …` first and stripping a UTF-8 BOM (which
/// ssh-keygen refuses, see the fixtures' README).
fn ssh_keygen_list(env: &Env, row: &Row) -> Vec<KeygenLine> {
    let mut bytes = std::fs::read(row.path()).expect("read fixture");
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    let text = String::from_utf8_lossy(&bytes);
    let import = if text.contains("---- BEGIN SSH2 PUBLIC KEY ----") {
        Some("RFC4716")
    } else if text.contains("-----BEGIN PUBLIC KEY-----") {
        Some("PKCS8")
    } else if text.contains("-----BEGIN RSA PUBLIC KEY-----") {
        Some("PEM")
    } else {
        None
    };
    let input = env.root().join(format!("ssh-keygen-{}", row.file));
    std::fs::write(&input, &bytes).expect("write ssh-keygen input");
    let listed = match import {
        Some(mode) => {
            let r = ssh_keygen(&["-i", "-m", mode, "-f"], &input);
            r.assert_success();
            let converted = env.root().join(format!("ssh-keygen-{}.openssh", row.file));
            std::fs::write(&converted, &r.stdout).expect("write converted key");
            ssh_keygen(&["-lf"], &converted)
        }
        None => ssh_keygen(&["-lf"], &input),
    };
    listed.assert_success();
    listed
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            assert!(words.len() >= 3, "unexpected ssh-keygen -lf line {l:?}");
            let bits = words[0]
                .parse()
                .unwrap_or_else(|e| panic!("ssh-keygen bits in {l:?}: {e}"));
            let kind = words[words.len() - 1]
                .trim_start_matches('(')
                .trim_end_matches(')');
            (bits, words[1].to_string(), kind.to_string())
        })
        .collect()
}

/// Every fixture with a well-formed key (accepted or refused by policy):
/// ferry's fingerprint, bits and type equal what `ssh-keygen -lf` prints,
/// and the manifest agrees with both.
#[test]
fn fingerprints_bits_and_types_match_ssh_keygen() {
    if !require(&[SSH_KEYGEN]) {
        return;
    }
    let env = Env::new();
    let mut problems = Vec::new();
    let mut compared = 0;
    for row in manifest().iter().filter(|r| r.key_count > 0) {
        let keygen = ssh_keygen_list(&env, row);
        let r = env.ferry(&[
            "key",
            "inspect",
            "--json",
            &row.path().display().to_string(),
        ]);
        let Ok(json) = serde_json::from_str::<Value>(r.stdout.trim()) else {
            problems.push(format!("{}: no JSON from ferry: {r}", row.file));
            continue;
        };
        let ferry: Vec<KeygenLine> = json["keys"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|k| {
                Some((
                    k.get("bits")?.as_u64()?,
                    str_field(k, "fingerprint")?.to_string(),
                    str_field(k, "type")?.to_string(),
                ))
            })
            .collect();
        if ferry != keygen {
            problems.push(format!(
                "{}: ferry says {ferry:?}, ssh-keygen -lf says {keygen:?}",
                row.file
            ));
        }
        let keygen_fps: Vec<String> = keygen.iter().map(|k| k.1.clone()).collect();
        if keygen_fps != row.fingerprints {
            problems.push(format!(
                "{}: ssh-keygen -lf says {keygen_fps:?}, the manifest says {:?}",
                row.file, row.fingerprints
            ));
        }
        compared += keygen.len();
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(compared > 0, "no key was compared with ssh-keygen");
    eprintln!("{compared} keys agree with ssh-keygen -lf");
}
