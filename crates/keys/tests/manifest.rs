//! Judges every file in the shared key fixtures (`shared/fixtures/keys`, made
//! with the real ssh-keygen and PuTTYgen) exactly as its `manifest.tsv` row
//! says — verdict and reason, key types, `ssh-keygen -lf` fingerprints and key
//! count — and proves that no text of a pasted private key reaches any output.
//!
//! The fixtures live beside the repository checkout (`../shared`); if they are
//! missing the tests fail rather than skip, so a broken checkout cannot look green.

use std::fs;
use std::path::PathBuf;

use ferry_keys::{
    Finding, InputError, KeyPolicy, MAX_INPUT_BYTES, PrivateKeyFormat, RefusalKind, parse_keys,
};

fn fixtures_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/keys");
    assert!(
        dir.join("manifest.tsv").is_file(),
        "key fixtures not found at {} — the shared/ folder must sit beside the repository checkout",
        dir.display()
    );
    dir
}

struct Row {
    file: String,
    expected: String,
    reason_or_type: String,
    fingerprints: Vec<String>,
    key_count: usize,
}

fn manifest() -> Vec<Row> {
    let text =
        fs::read_to_string(fixtures_dir().join("manifest.tsv")).expect("manifest.tsv readable");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("file\texpected\treason_or_type\tsha256_fingerprint\tkey_count"),
        "manifest header changed"
    );
    let rows: Vec<Row> = lines
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let columns: Vec<&str> = line.split('\t').collect();
            assert_eq!(columns.len(), 5, "bad manifest row: {line}");
            Row {
                file: columns[0].to_owned(),
                expected: columns[1].to_owned(),
                reason_or_type: columns[2].to_owned(),
                fingerprints: match columns[3] {
                    "-" => Vec::new(),
                    list => list.split(',').map(str::to_owned).collect(),
                },
                key_count: columns[4].parse().expect("key_count is a number"),
            }
        })
        .collect();
    assert!(rows.len() >= 30, "manifest has only {} rows", rows.len());
    rows
}

fn read_fixture(file: &str) -> Vec<u8> {
    let path = fixtures_dir().join(file);
    fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Checks one refused finding against a manifest reason code.
fn check_refusal_code(file: &str, code: &str, findings: &[Finding]) {
    let refusals: Vec<&RefusalKind> = findings
        .iter()
        .filter_map(|f| f.refusal().map(|r| &r.kind))
        .collect();
    assert_eq!(
        refusals.len(),
        1,
        "{file}: expected one refusal, got {findings:#?}"
    );
    let kind = refusals[0];
    let private = |format, encrypted| RefusalKind::PrivateKey { format, encrypted };
    let expected = match code.split_once(':') {
        None => match code {
            "weak-rsa-1024" => RefusalKind::RsaTooSmall {
                bits: 1024,
                min_bits: 2048,
            },
            "weak-dsa" => RefusalKind::Dsa,
            "private-key-openssh" => private(PrivateKeyFormat::Openssh, Some(false)),
            "private-key-openssh-encrypted" => private(PrivateKeyFormat::Openssh, Some(true)),
            "private-key-putty-ppk" => private(PrivateKeyFormat::PuttyPpk, Some(false)),
            "private-key-pem-rsa" => private(PrivateKeyFormat::PemRsa, Some(false)),
            "private-key-pem-ec" => private(PrivateKeyFormat::PemEc, Some(false)),
            // The base64 still decodes; the key inside is cut short.
            "truncated-base64" => RefusalKind::IncompleteKey,
            other => panic!("{file}: manifest reason {other} is not handled by this test"),
        },
        Some(("certificate-not-supported", algorithm)) => RefusalKind::Certificate {
            algorithm: algorithm.to_owned(),
        },
        Some(("type-mismatch", labels)) => {
            let (declared, actual) = labels
                .strip_suffix("-blob")
                .and_then(|l| l.split_once("-label-on-"))
                .unwrap_or_else(|| panic!("{file}: cannot read {labels}"));
            RefusalKind::TypeMismatch {
                declared: declared.to_owned(),
                actual: actual.to_owned(),
            }
        }
        Some((other, _)) => panic!("{file}: manifest reason {other} is not handled by this test"),
    };
    assert_eq!(kind, &expected, "{file}");
    let refusal = findings.iter().find_map(Finding::refusal).unwrap();
    let shown = refusal.to_string();
    assert!(
        shown.starts_with(&format!("line {}: ", refusal.line)),
        "{file}: {shown}"
    );
    if code.starts_with("private-key") {
        assert!(shown.contains("Keep that file secret"), "{file}: {shown}");
        assert!(
            shown.contains("public half") || shown.contains("PuTTYgen"),
            "{file}: {shown}"
        );
    }
    if code.starts_with("certificate-not-supported") {
        assert!(
            shown.contains("certificate authorities are not supported yet"),
            "{file}: {shown}"
        );
    }
}

/// Checks an input-level refusal against a manifest reason code.
fn check_input_error(file: &str, code: &str, error: &InputError, size: usize) {
    let expected = match code {
        "empty" => InputError::Empty,
        "garbage" => InputError::NotText,
        _ => match code
            .strip_prefix("too-large:")
            .and_then(|rest| rest.strip_suffix("-bytes-over-1MiB"))
        {
            Some(bytes) => {
                let bytes: usize = bytes.parse().expect("size in too-large code");
                assert_eq!(bytes, size, "{file}: manifest size differs from the file");
                assert!(bytes > MAX_INPUT_BYTES);
                InputError::TooLarge { size: bytes }
            }
            None => panic!("{file}: input refused as a whole ({error}), manifest says {code}"),
        },
    };
    assert_eq!(error, &expected, "{file}");
}

#[test]
fn every_manifest_row_is_judged_as_the_manifest_says() {
    let policy = KeyPolicy::default();
    let mut checked = 0;
    for row in manifest() {
        let file = row.file.as_str();
        let bytes = read_fixture(file);
        let result = parse_keys(&bytes, &policy);
        let findings: &[Finding] = result.as_deref().unwrap_or(&[]);
        let keys: Vec<_> = findings.iter().filter_map(|f| f.key.as_ref()).collect();
        let fingerprints: Vec<&str> = keys.iter().map(|k| k.fingerprint.as_str()).collect();
        assert_eq!(fingerprints, row.fingerprints, "{file}: fingerprints");
        assert_eq!(keys.len(), row.key_count, "{file}: key count");

        match row.expected.as_str() {
            "accept" => {
                let findings = result.as_ref().unwrap_or_else(|e| panic!("{file}: {e}"));
                assert!(!findings.is_empty(), "{file}: no finding");
                for finding in findings {
                    assert!(finding.is_accepted(), "{file}: {}", finding.describe());
                }
                let types: Vec<&str> = keys.iter().map(|k| k.algorithm.as_str()).collect();
                let expected_types: Vec<&str> =
                    match row.reason_or_type.strip_prefix("authorized_keys:") {
                        Some(list) => list.split(',').collect(),
                        None => vec![row.reason_or_type.as_str()],
                    };
                assert_eq!(types, expected_types, "{file}: key types");
                assert_eq!(findings.len(), row.key_count, "{file}: findings");
            }
            "reject" => match &result {
                Ok(findings) => check_refusal_code(file, &row.reason_or_type, findings),
                Err(error) => check_input_error(file, &row.reason_or_type, error, bytes.len()),
            },
            other => panic!("{file}: unknown expected verdict {other}"),
        }
        checked += 1;
    }
    assert!(checked >= 30);
}

#[test]
fn accepted_keys_have_canonical_lines_and_ssh_keygen_types() {
    let policy = KeyPolicy::default();
    let expectations = [
        ("ed25519.pub", "ED25519", 256),
        ("ecdsa-p256.pub", "ECDSA", 256),
        ("ecdsa-p384.pub", "ECDSA", 384),
        ("ecdsa-p521.pub", "ECDSA", 521),
        ("rsa-2048.pub", "RSA", 2048),
        ("rsa-3072.pub", "RSA", 3072),
        ("rsa-4096.pub", "RSA", 4096),
        ("ssh-keygen-pem-pkcs1-rsa.pem", "RSA", 3072),
        ("puttygen-ed25519-rfc4716.pub", "ED25519", 256),
    ];
    for (file, key_type, bits) in expectations {
        let findings = parse_keys(&read_fixture(file), &policy).unwrap();
        let key = findings[0].accepted_key().unwrap();
        assert_eq!(
            (key.key_type.as_str(), key.bits),
            (key_type, bits),
            "{file}"
        );
        // The canonical line parses back to the same key and fingerprint.
        let again = parse_keys(key.openssh_line.as_bytes(), &policy).unwrap();
        assert_eq!(
            again[0].accepted_key().unwrap().fingerprint,
            key.fingerprint,
            "{file}"
        );
    }
    // The one-liner's canonical line is the file's line.
    let text = String::from_utf8(read_fixture("ed25519.pub")).unwrap();
    let findings = parse_keys(text.as_bytes(), &policy).unwrap();
    assert_eq!(
        findings[0].key.as_ref().unwrap().openssh_line,
        text.trim_end()
    );
}

#[test]
fn rfc4716_comments_are_read_like_puttygen_writes_them() {
    let policy = KeyPolicy::default();
    let comment = |file: &str| {
        parse_keys(&read_fixture(file), &policy).unwrap()[0]
            .comment
            .clone()
    };
    let long = "SIS nightly roster export key for Springfield Unified School District - generated 20261123 by district IT";
    assert_eq!(comment("puttygen-long-comment-rfc4716.pub"), long);
    assert_eq!(comment("puttygen-long-comment-wrapped-rfc4716.pub"), long);
    assert_eq!(
        comment("puttygen-ecdsa-p256-rfc4716.pub"),
        "district laptop key"
    );
    assert_eq!(
        comment("puttygen-ed25519-rfc4716.pub"),
        "ed25519-key-20261123"
    );
}

#[test]
fn authorized_keys_options_are_parsed() {
    let findings = parse_keys(&read_fixture("authorized_keys"), &KeyPolicy::default()).unwrap();
    let options: Vec<String> = findings
        .iter()
        .map(|f| f.options.to_authorized_keys_prefix())
        .collect();
    assert_eq!(
        options,
        [
            "",
            "from=\"10.0.0.0/8\",no-pty",
            "no-pty,expiry-time=\"20301231\"",
            "from=\"10.0.0.0/8,172.16.0.0/12\",no-pty,expiry-time=\"20301231\",no-port-forwarding",
        ]
    );
    let last = &findings[3].options;
    assert!(ferry_keys::from_allows(
        last.from_patterns().unwrap(),
        "172.20.1.1".parse().unwrap()
    ));
    assert!(!ferry_keys::from_allows(
        last.from_patterns().unwrap(),
        "192.168.1.1".parse().unwrap()
    ));
    assert_eq!(last.expiry_time(), Some(1_924_905_600));
}

/// Every 16-character window of every base64-looking line of a file.
fn secret_windows(text: &str) -> Vec<String> {
    let mut windows = Vec::new();
    for line in text.lines() {
        // PuTTY lines are "Header: value" or base64; keep the base64 part.
        let candidate = line.trim();
        let base64_like = candidate.len() >= 16
            && candidate
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
        if base64_like {
            let chars: Vec<char> = candidate.chars().collect();
            for window in chars.windows(16) {
                windows.push(window.iter().collect());
            }
        }
    }
    windows
}

/// Everything a caller could print or store about a parse result.
fn everything_shown(result: &Result<Vec<Finding>, InputError>) -> String {
    let mut shown = format!("{result:?}\n{result:#?}\n");
    match result {
        Ok(findings) => {
            for finding in findings {
                shown.push_str(&finding.describe());
                shown.push('\n');
                if let Some(refusal) = finding.refusal() {
                    shown.push_str(&format!("{refusal}\n{}\n", refusal.reason));
                }
                shown.push_str(&finding.comment);
                shown.push_str(finding.options.raw());
            }
            shown.push_str(&serde_json::to_string(findings).unwrap());
        }
        Err(error) => shown.push_str(&error.to_string()),
    }
    shown
}

#[test]
fn no_private_key_text_reaches_any_output() {
    let policy = KeyPolicy::default();
    let public = String::from_utf8(read_fixture("ed25519.pub")).unwrap();
    let mut files_checked = 0;
    for row in manifest()
        .into_iter()
        .filter(|row| row.reason_or_type.starts_with("private-key"))
    {
        let text = String::from_utf8(read_fixture(&row.file)).unwrap();
        let windows = secret_windows(&text);
        assert!(windows.len() > 100, "{}: too little to check", row.file);
        // The private key alone, and pasted between two public keys.
        for input in [text.clone(), format!("{public}{text}\n{public}")] {
            let result = parse_keys(input.as_bytes(), &policy);
            let shown = everything_shown(&result);
            // Windows that also occur in the public key we pasted around it
            // (e.g. the base64 of a type name) say nothing about leaks.
            for window in windows.iter().filter(|w| !public.contains(w.as_str())) {
                assert!(
                    !shown.contains(window.as_str()),
                    "{}: output contains {window:?}",
                    row.file
                );
            }
        }
        files_checked += 1;
    }
    assert_eq!(files_checked, 5);
}
