//! Walks the lines of an input and hands each part to the reader for its format:
//! private keys first (so no secret line is read as anything else), then
//! RFC 4716 and PEM blocks, then single OpenSSH lines. Blank lines and `#`
//! comments are skipped. Finally a key given twice is reported on its second line.

use std::collections::HashMap;

use crate::blocks::{
    Block, BlockRead, decode_body, marker, pem_body, read_block, split_rfc4716, unterminated,
};
use crate::candidate::{Candidate, judge};
use crate::finding::{Finding, Refusal, RefusalKind, SourceFormat, Verdict};
use crate::key_blob::clean;
use crate::openssh_line::parse_line;
use crate::options::KeyOptions;
use crate::pem::{pkcs1_to_blob, spki_to_blob};
use crate::policy::KeyPolicy;
use crate::private_key;
use crate::text::Line;

/// Every finding in the input, in input order.
pub(crate) fn scan(lines: &[Line<'_>], policy: &KeyPolicy) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let line = lines[index];
        let text = line.text.trim();
        if text.is_empty() || text.starts_with('#') {
            index += 1;
            continue;
        }
        if let Some((finding, next)) = private_key::recognise(lines, index) {
            findings.push(finding);
            index = next;
            continue;
        }
        if let Some(begin) = marker(text).filter(|m| m.begin) {
            let (read, next) = read_block(lines, index, &begin.label);
            let finding = match read {
                BlockRead::Complete(block) => judge_block(block, policy),
                BlockRead::Unterminated => unterminated(line.number, &begin.label),
            };
            findings.push(finding);
            index = next;
            continue;
        }
        findings.push(parse_line(line.number, text, policy));
        index += 1;
    }
    mark_duplicates(&mut findings);
    findings
}

fn judge_block(block: Block<'_>, policy: &KeyPolicy) -> Finding {
    let (format, comment, body) = match block.label.as_str() {
        "SSH2 PUBLIC KEY" => {
            let split = split_rfc4716(&block.content);
            let body = decode_body(&split.body);
            (SourceFormat::Rfc4716, split.comment, body)
        }
        "PUBLIC KEY" => (
            SourceFormat::PemSpki,
            String::new(),
            decode_body(&pem_body(&block.content)).and_then(|der| spki_to_blob(&der)),
        ),
        "RSA PUBLIC KEY" => (
            SourceFormat::PemPkcs1,
            String::new(),
            decode_body(&pem_body(&block.content)).and_then(|der| pkcs1_to_blob(&der)),
        ),
        other => {
            let label = clean(other);
            return Finding::refused(
                block.line,
                SourceFormat::OtherBlock,
                RefusalKind::UnsupportedBlock {
                    label: label.clone(),
                },
                format!(
                    "a \"{label}\" block is not an SSH public key — send the public key file (.pub), e.g. the output of ssh-keygen -y -f your_key"
                ),
            );
        }
    };
    match body {
        Ok(blob) => judge(
            Candidate {
                line: block.line,
                format,
                declared: None,
                blob,
                comment,
                options: KeyOptions::default(),
            },
            policy,
        ),
        Err((kind, reason)) => {
            let mut finding = Finding::refused(block.line, format, kind, reason);
            finding.comment = comment;
            finding
        }
    }
}

/// Refuses the second and later copies of an accepted key.
fn mark_duplicates(findings: &mut [Finding]) {
    let mut first_lines: HashMap<String, usize> = HashMap::new();
    for finding in findings.iter_mut().filter(|f| f.is_accepted()) {
        let Some(key) = &finding.key else { continue };
        let fingerprint = key.fingerprint.clone();
        match first_lines.get(&fingerprint) {
            Some(&first_line) => {
                finding.verdict = Verdict::Refused(Refusal {
                    line: finding.line,
                    kind: RefusalKind::Duplicate { first_line },
                    reason: format!(
                        "this key ({fingerprint}) was already given on line {first_line} — remove one of the two"
                    ),
                });
            }
            None => {
                first_lines.insert(fingerprint, finding.line);
            }
        }
    }
}
