//! Public-key text: what `ferry key inspect`, `ferry key add`, the web form
//! and the API all read (`ferry_keys::parse_keys`). An input whose first
//! byte is even is the pasted bytes themselves (the seeds are every fixture
//! in shared/fixtures/keys); otherwise the rest is a structure-aware paste: real public keys of every format (OpenSSH lines, authorized_keys
//! with options, RFC 4716, PEM SubjectPublicKeyInfo, PKCS#1), real private
//! keys (OpenSSH, encrypted OpenSSH, PEM RSA and EC, PuTTY .ppk) pasted as
//! people paste them (indented, as one line, cut short, markers in lower
//! case, body without markers), free text and raw bytes, joined with LF, CRLF
//! or CR and encoded as UTF-8, UTF-8 with a BOM, or UTF-16 LE/BE with a BOM.
//!
//! Properties:
//! - never a panic, in parsing or in the output (`--json`, the text lines,
//!   `Debug`, the input error);
//! - (structured pastes) never an accepted private key: no accepted finding lies on a private
//!   key's lines, and no accepted key is the public half of a pasted private
//!   key;
//! - (structured pastes) no byte of a private-key block in any output: no 16-character window of
//!   a private key's secret lines (base64 body, PuTTY Private-Lines and
//!   Private-MAC) appears in any output (unless the fuzzer typed that text
//!   itself outside the key).
//!
//! With `FERRY_FUZZ_SSH_KEYGEN=1` every accepted key is also checked against
//! `ssh-keygen -lf` (fingerprint, bits, type): the slower differential check
//! `scripts/fuzz` runs over the corpus.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::LazyLock;

use arbitrary::{Arbitrary, Unstructured};
use ferry_fuzz::keygen;
use ferry_keys::{Finding, KeyPolicy, parse_keys};
use libfuzzer_sys::fuzz_target;

macro_rules! fixture {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../../../shared/fixtures/keys/", $name)),
        )
    };
}

/// Public keys as the tools write them (see shared/fixtures/keys/README.md).
const PUBLIC: &[(&str, &str)] = &[
    fixture!("ed25519.pub"),
    fixture!("ecdsa-p256.pub"),
    fixture!("ecdsa-p384.pub"),
    fixture!("ecdsa-p521.pub"),
    fixture!("rsa-2048.pub"),
    fixture!("rsa-1024-weak.pub"),
    fixture!("dsa-weak.pub"),
    fixture!("user-ed25519-cert.pub"),
    fixture!("authorized_keys"),
    fixture!("puttygen-ed25519-rfc4716.pub"),
    fixture!("puttygen-long-comment-wrapped-rfc4716.pub"),
    fixture!("ssh-keygen-rfc4716.pub"),
    fixture!("ssh-keygen-pkcs8-rsa.pem"),
    fixture!("ssh-keygen-pkcs8-ecdsa.pem"),
    fixture!("ssh-keygen-pem-pkcs1-rsa.pem"),
    fixture!("type-mismatch.pub"),
    fixture!("truncated-base64.pub"),
];

/// Private keys, with the fingerprint of each one's public half (computed
/// with `ssh-keygen -y` / `puttygen -O public-openssh`, and for the
/// encrypted key from the public key its container carries in clear).
const PRIVATE: &[(&str, &str, &str)] = &[
    (
        fixture!("openssh-private-key.txt").1,
        "SHA256:+yY34OPMwN5Z5UXhD+/X5GUdj6mopj9Cnedq2V4bpT8",
        "openssh",
    ),
    (
        fixture!("openssh-private-key-encrypted.txt").1,
        "SHA256:Os/hTHFoS6r1cdDxzrFoAmXEzE4vYMk2kwQ0vJ+9N3Q",
        "openssh-encrypted",
    ),
    (
        fixture!("pem-rsa-private.key").1,
        "SHA256:6TpDsELVXQwWhUNEj5c4jqawSZDl1k7O8/f5qeMMcDk",
        "pem-rsa",
    ),
    (
        fixture!("pem-ec-private.key").1,
        "SHA256:VpbbaosvLVNwVBG+OVMIYrtTBENIqZ3ymrwjjuoFi3k",
        "pem-ec",
    ),
    (
        fixture!("putty-private.ppk").1,
        "SHA256:QZ50xJJJYHJL8JmWtzVWafSOwU0KRl1DAl8A/zLhS/g",
        "ppk",
    ),
];

const WINDOW: usize = 16;

#[derive(Arbitrary, Debug)]
struct Paste {
    parts: Vec<Part>,
    line_end: LineEnd,
    encoding: Encoding,
}

#[derive(Arbitrary, Debug)]
enum Part {
    Public {
        fixture: u8,
        options: Option<String>,
        indent: u8,
    },
    Private {
        fixture: u8,
        style: PrivateStyle,
    },
    Text(String),
    Bytes(Vec<u8>),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum PrivateStyle {
    AsIs,
    Indented(u8),
    OneLine,
    TrailingSpaces(u8),
    CutAfter(u8),
    LowerCaseMarkers,
    WithoutMarkers,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum LineEnd {
    Lf,
    CrLf,
    Cr,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Encoding {
    Utf8,
    Utf8Bom,
    Utf16Le,
    Utf16Be,
}

/// The composed paste: its text (before encoding), the lines each private
/// key occupies, the private keys used, and the text the fuzzer typed.
struct Composed {
    text: String,
    raw_tail: Vec<u8>,
    private_lines: Vec<(usize, usize)>,
    private_used: Vec<usize>,
    typed: String,
}

fuzz_target!(|input: &[u8]| {
    match input.split_first() {
        Some((mode, paste)) if mode % 2 == 0 => raw_paste(paste),
        Some((_, bytes)) => {
            if let Ok(paste) = Paste::arbitrary_take_rest(Unstructured::new(bytes)) {
                composed_paste(&paste);
            }
        }
        None => {}
    }
});

/// Bytes as they were pasted or uploaded (the seeds are the key fixtures).
fn raw_paste(input: &[u8]) {
    let parsed = parse_keys(input, &KeyPolicy::default());
    render(&parsed);
    if let (Ok(findings), Ok(text)) = (&parsed, std::str::from_utf8(input))
        && keygen::enabled()
    {
        keygen::compare(text.strip_prefix('\u{feff}').unwrap_or(text), findings);
    }
}

fn composed_paste(paste: &Paste) {
    let composed = compose(paste);
    let input = encode(&composed, paste.encoding);
    let policy = KeyPolicy::default();
    let parsed = parse_keys(&input, &policy);
    let output = render(&parsed);
    let Ok(findings) = &parsed else {
        check_no_secret(&output, &composed);
        return;
    };
    for finding in findings.iter().filter(|f| f.is_accepted()) {
        let key = finding.key.as_ref().expect("accepted findings carry a key");
        for &(first, last) in &composed.private_lines {
            assert!(
                !(first..=last).contains(&finding.line),
                "accepted a key on line {} inside a private key (lines {first}-{last})",
                finding.line
            );
        }
        for &index in &composed.private_used {
            assert_ne!(
                key.fingerprint, PRIVATE[index].1,
                "accepted the public half of pasted private key {}",
                PRIVATE[index].2
            );
        }
    }
    check_no_secret(&output, &composed);
    if keygen::enabled() && matches!(paste.encoding, Encoding::Utf8 | Encoding::Utf8Bom) {
        keygen::compare(&composed.text, findings);
    }
}

fn compose(paste: &Paste) -> Composed {
    let end = match paste.line_end {
        LineEnd::Lf => "\n",
        LineEnd::CrLf => "\r\n",
        LineEnd::Cr => "\r",
    };
    let mut out = Composed {
        text: String::new(),
        raw_tail: Vec::new(),
        private_lines: Vec::new(),
        private_used: Vec::new(),
        typed: String::new(),
    };
    for part in paste.parts.iter().take(16) {
        match part {
            Part::Public {
                fixture,
                options,
                indent,
            } => {
                let (_, text) = PUBLIC[usize::from(*fixture) % PUBLIC.len()];
                let prefix = " ".repeat(usize::from(indent % 4));
                for (index, line) in text.lines().enumerate() {
                    out.text.push_str(&prefix);
                    if let (0, Some(options)) = (index, options) {
                        out.typed.push_str(options);
                        out.text.push_str(options);
                        out.text.push(' ');
                    }
                    out.text.push_str(line);
                    out.text.push_str(end);
                }
            }
            Part::Private { fixture, style } => {
                let index = usize::from(*fixture) % PRIVATE.len();
                let first = line_count(&out.text) + 1;
                let lines = private_lines(PRIVATE[index].0, *style);
                let separator = if matches!(style, PrivateStyle::OneLine) {
                    " "
                } else {
                    end
                };
                out.text.push_str(&lines.join(separator));
                out.text.push_str(end);
                out.private_lines.push((first, line_count(&out.text)));
                out.private_used.push(index);
            }
            Part::Text(text) => {
                out.typed.push_str(text);
                out.text.push_str(text);
                out.text.push_str(end);
            }
            Part::Bytes(bytes) => {
                out.typed.push_str(&String::from_utf8_lossy(bytes));
                out.raw_tail.extend_from_slice(bytes);
            }
        }
    }
    out
}

/// A private key's lines as someone might paste them.
fn private_lines(text: &str, style: PrivateStyle) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let is_marker = |line: &str| line.starts_with("-----");
    match style {
        PrivateStyle::AsIs | PrivateStyle::OneLine => lines.iter().map(|l| l.to_string()).collect(),
        PrivateStyle::Indented(n) => {
            let indent = if n % 2 == 0 { " " } else { "\t" }.repeat(1 + usize::from(n % 4));
            lines.iter().map(|l| format!("{indent}{l}")).collect()
        }
        PrivateStyle::TrailingSpaces(n) => {
            let pad = " ".repeat(1 + usize::from(n % 3));
            lines.iter().map(|l| format!("{l}{pad}")).collect()
        }
        PrivateStyle::CutAfter(n) => {
            let keep = 1 + usize::from(n) % lines.len();
            lines[..keep].iter().map(|l| l.to_string()).collect()
        }
        PrivateStyle::LowerCaseMarkers => lines
            .iter()
            .map(|l| match is_marker(l) {
                true => l.to_lowercase(),
                false => l.to_string(),
            })
            .collect(),
        PrivateStyle::WithoutMarkers => lines
            .iter()
            .filter(|l| !is_marker(l))
            .map(|l| l.to_string())
            .collect(),
    }
}

/// Line ends as Ferry counts them: LF, CRLF and a lone CR each end one.
fn line_count(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut count = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        match byte {
            b'\n' => count += 1,
            b'\r' if bytes.get(index + 1) != Some(&b'\n') => count += 1,
            _ => {}
        }
    }
    count
}

fn encode(composed: &Composed, encoding: Encoding) -> Vec<u8> {
    let tail = String::from_utf8_lossy(&composed.raw_tail);
    let utf16 = |be: bool| {
        let mut out: Vec<u8> = if be {
            vec![0xFE, 0xFF]
        } else {
            vec![0xFF, 0xFE]
        };
        for unit in composed.text.encode_utf16().chain(tail.encode_utf16()) {
            let pair = if be {
                unit.to_be_bytes()
            } else {
                unit.to_le_bytes()
            };
            out.extend_from_slice(&pair);
        }
        out
    };
    match encoding {
        Encoding::Utf8 => [composed.text.as_bytes(), &composed.raw_tail].concat(),
        Encoding::Utf8Bom => [
            &[0xEF, 0xBB, 0xBF][..],
            composed.text.as_bytes(),
            &composed.raw_tail,
        ]
        .concat(),
        Encoding::Utf16Le => utf16(false),
        Encoding::Utf16Be => utf16(true),
    }
}

/// Everything a person or a program could see: `--json`, the text lines
/// `ferry key inspect` prints, `Debug`, and the input error.
fn render(parsed: &Result<Vec<Finding>, ferry_keys::InputError>) -> String {
    match parsed {
        Ok(findings) => {
            let json = serde_json::to_string(&serde_json::json!({ "keys": findings }))
                .expect("findings serialise");
            let lines: Vec<String> = findings.iter().map(Finding::describe).collect();
            format!("{json}\n{}\n{findings:?}", lines.join("\n"))
        }
        Err(error) => format!("{error}\n{error:?}\n{}", error.code()),
    }
}

/// Every 16-character window of every private key's secret lines, less the
/// windows that public keys have too (`AAAAE2VjZHNhLXNo` opens every ECDSA
/// key blob, and an OpenSSH private key carries its public key), mapped to
/// the private keys (bit `1 << index` of [`PRIVATE`]) it belongs to. Secret
/// lines are ASCII, so a window is its 16 bytes as one `u128`, and one pass
/// over a text finds every private key it shows part of.
static SECRET_WINDOWS: LazyLock<WindowMap> = LazyLock::new(|| {
    let mut public = HashSet::new();
    for (_, text) in PUBLIC {
        let output = render(&parse_keys(text.as_bytes(), &KeyPolicy::default()));
        public.extend(windows_of(text));
        public.extend(windows_of(&output));
    }
    let mut map = WindowMap::default();
    for (index, (text, _, _)) in PRIVATE.iter().enumerate() {
        for window in secret_lines(text).into_iter().flat_map(windows_of) {
            if !public.contains(&window) {
                *map.entry(window_key(window.as_bytes())).or_default() |= 1 << index;
            }
        }
    }
    map
});

type WindowMap = HashMap<u128, u8, BuildHasherDefault<WindowHasher>>;

/// A window's key: its 16 bytes.
fn window_key(window: &[u8]) -> u128 {
    u128::from_le_bytes(window.try_into().expect("a window is 16 bytes"))
}

/// Hashes a window key with one multiplication (the windows are fixed and
/// few; SipHash over every position of every output was most of a run).
#[derive(Default)]
struct WindowHasher(u64);

impl Hasher for WindowHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }

    fn write_u128(&mut self, key: u128) {
        let folded = (key as u64) ^ ((key >> 64) as u64).rotate_left(29);
        self.0 = folded.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (folded >> 31);
    }
}

fn windows_of(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    (0..=bytes.len().saturating_sub(WINDOW))
        .filter_map(|start| std::str::from_utf8(bytes.get(start..start + WINDOW)?).ok())
        .map(str::to_owned)
        .collect()
}

/// The secret lines of a private key: its base64 body (for PuTTY, only the
/// Private-Lines, since Public-Lines are the public key) and PuTTY's MAC.
fn secret_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut public_lines_left = 0;
    for line in text.lines().map(str::trim) {
        if let Some(count) = line.strip_prefix("Public-Lines:") {
            public_lines_left = count.trim().parse().unwrap_or(0);
        } else if let Some(mac) = line.strip_prefix("Private-MAC:") {
            lines.push(mac.trim());
        } else if public_lines_left > 0 {
            public_lines_left -= 1;
        } else if line.len() >= WINDOW
            && line
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            lines.push(line);
        }
    }
    lines
}

fn check_no_secret(output: &str, composed: &Composed) {
    let used = composed
        .private_used
        .iter()
        .fold(0u8, |bits, &index| bits | 1 << index);
    let mut shown = keys_shown(output) & used;
    if shown != 0 {
        // Text the fuzzer typed itself may hold a window; then it proves nothing.
        shown &= !keys_shown(&composed.typed);
    }
    if shown != 0 {
        let index = shown.trailing_zeros() as usize;
        panic!(
            "part of private key {} appears in the output:\n{output}",
            PRIVATE[index].2
        );
    }
}

/// The private keys (bit `1 << index`) of which some window appears in `text`.
fn keys_shown(text: &str) -> u8 {
    let windows = &*SECRET_WINDOWS;
    text.as_bytes()
        .windows(WINDOW)
        .filter_map(|window| windows.get(&window_key(window)))
        .fold(0, |bits, &keys| bits | keys)
}
