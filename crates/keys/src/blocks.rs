//! Multi-line public key blocks: RFC 4716 `---- BEGIN SSH2 PUBLIC KEY ----`
//! (PuTTYgen, WinSCP, `ssh-keygen -e`) and PEM `-----BEGIN PUBLIC KEY-----`
//! (SubjectPublicKeyInfo) / `-----BEGIN RSA PUBLIC KEY-----` (PKCS#1).
//!
//! ssh-key reads neither, so the framing is handled here; RFC 4716 bodies are
//! already SSH blobs, and PEM bodies are DER that [`crate::pem`] turns into one.

use base64::Engine as _;

use crate::finding::{Finding, RefusalKind, SourceFormat};
use crate::text::Line;

/// A BEGIN or END marker line: `---- BEGIN SSH2 PUBLIC KEY ----`,
/// `-----END PUBLIC KEY-----`…
pub(crate) struct Marker {
    pub(crate) begin: bool,
    /// The label in upper case, e.g. `SSH2 PUBLIC KEY`.
    pub(crate) label: String,
}

pub(crate) fn marker(text: &str) -> Option<Marker> {
    let text = text.trim();
    if !text.starts_with("---") || !text.ends_with("---") || text.len() < 8 {
        return None;
    }
    let inner = text.trim_matches('-').trim();
    let upper = inner.to_ascii_uppercase();
    let (begin, label) = if let Some(label) = upper.strip_prefix("BEGIN ") {
        (true, label)
    } else if let Some(label) = upper.strip_prefix("END ") {
        (false, label)
    } else {
        return None;
    };
    Some(Marker {
        begin,
        label: label.trim().to_owned(),
    })
}

/// A public block's lines between its markers.
pub(crate) struct Block<'a> {
    /// Line number of the BEGIN marker.
    pub(crate) line: usize,
    pub(crate) label: String,
    /// Lines between BEGIN and END (trailing whitespace removed), blank ones left out.
    pub(crate) content: Vec<&'a str>,
}

/// A block as read: complete, or without its END line.
pub(crate) enum BlockRead<'a> {
    Complete(Block<'a>),
    Unterminated,
}

/// Reads the block starting at `lines[start]` (a BEGIN marker with `label`).
/// Returns it with the index after its END line; a block with no END is
/// refused and reading resumes at the next BEGIN (or the end of input).
pub(crate) fn read_block<'a>(
    lines: &[Line<'a>],
    start: usize,
    label: &str,
) -> (BlockRead<'a>, usize) {
    let line = lines[start].number;
    let mut content = Vec::new();
    for (index, current) in lines.iter().enumerate().skip(start + 1) {
        match marker(current.text) {
            Some(end) if !end.begin && end.label == label => {
                let block = Block {
                    line,
                    label: label.to_owned(),
                    content,
                };
                return (BlockRead::Complete(block), index + 1);
            }
            Some(other) if other.begin => {
                return (BlockRead::Unterminated, index);
            }
            _ => {}
        }
        // Leading whitespace is kept: an RFC 4716 continuation line is
        // appended as it is (PuTTYgen starts it with the space between words).
        if !current.text.trim().is_empty() {
            content.push(current.text);
        }
    }
    (BlockRead::Unterminated, lines.len())
}

/// The refusal for a block whose END line is missing.
pub(crate) fn unterminated(line: usize, label: &str) -> Finding {
    let format = match label {
        "SSH2 PUBLIC KEY" => SourceFormat::Rfc4716,
        "PUBLIC KEY" => SourceFormat::PemSpki,
        "RSA PUBLIC KEY" => SourceFormat::PemPkcs1,
        _ => SourceFormat::OtherBlock,
    };
    Finding::refused(
        line,
        format,
        RefusalKind::UnterminatedBlock,
        format!(
            "the {label} block that starts here has no END line, so it was cut off when copied — copy the whole block, including its ---- END … ---- line"
        ),
    )
}

/// The result of reading a block body: the decoded bytes, or a refusal.
pub(crate) type BodyResult = Result<Vec<u8>, (RefusalKind, String)>;

/// Decodes a block's base64 body lines (whitespace inside is ignored).
pub(crate) fn decode_body(lines: &[&str]) -> BodyResult {
    let joined: String = lines
        .iter()
        .flat_map(|line| line.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    if joined.is_empty() {
        return Err((
            RefusalKind::MissingKeyData,
            "the block has no key data between its BEGIN and END lines — copy the whole block again".to_owned(),
        ));
    }
    crate::openssh_line::LENIENT_BASE64
        .decode(joined.as_bytes())
        .map_err(|_| malformed())
}

pub(crate) fn malformed() -> (RefusalKind, String) {
    (
        RefusalKind::MalformedBase64,
        "the key data is not valid base64 (it has characters that cannot be part of a key, or was cut off) — copy the whole key again from the public key file".to_owned(),
    )
}

/// An RFC 4716 block split into its headers and body.
pub(crate) struct Rfc4716<'a> {
    /// The `Comment:` header, quotes removed, continuation lines joined.
    pub(crate) comment: String,
    pub(crate) body: Vec<&'a str>,
}

/// Splits RFC 4716 content into headers (`Tag: value`, `\` at the end of a
/// line continues it on the next) and base64 body lines.
pub(crate) fn split_rfc4716<'a>(content: &[&'a str]) -> Rfc4716<'a> {
    let mut comment = String::new();
    let mut body = Vec::new();
    let mut lines = content.iter();
    let mut in_headers = true;
    while let Some(&line) = lines.next() {
        if in_headers && line.contains(':') {
            let mut header = String::new();
            let mut current = line;
            loop {
                match current.strip_suffix('\\') {
                    Some(head) => {
                        header.push_str(head);
                        match lines.next() {
                            Some(&next) => current = next,
                            None => break,
                        }
                    }
                    None => {
                        header.push_str(current);
                        break;
                    }
                }
            }
            if let Some((tag, value)) = header.split_once(':')
                && tag.trim().eq_ignore_ascii_case("Comment")
            {
                let value = value.trim();
                let unquoted = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                comment = unquoted.to_owned();
            }
            continue;
        }
        in_headers = false;
        body.push(line);
    }
    Rfc4716 { comment, body }
}

/// PEM header lines (`Name: value`) before a PEM body are skipped.
pub(crate) fn pem_body<'a>(content: &[&'a str]) -> Vec<&'a str> {
    content
        .iter()
        .copied()
        .skip_while(|line| line.contains(':'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::lines;

    #[test]
    fn markers() {
        let m = marker("---- BEGIN SSH2 PUBLIC KEY ----").unwrap();
        assert!(m.begin);
        assert_eq!(m.label, "SSH2 PUBLIC KEY");
        let m = marker("-----END RSA PUBLIC KEY-----").unwrap();
        assert!(!m.begin);
        assert_eq!(m.label, "RSA PUBLIC KEY");
        assert!(marker("-----").is_none());
        assert!(marker("ssh-ed25519 AAAA").is_none());
    }

    #[test]
    fn headers_with_quotes_continuations_and_x_headers() {
        let content = [
            "x-private-header: something",
            "Comment: \"first part\\",
            " second part\"",
            "Subject: alice",
            "AAAA",
            "BBBB",
        ];
        let split = split_rfc4716(&content);
        assert_eq!(split.comment, "first part second part");
        assert_eq!(split.body, ["AAAA", "BBBB"]);
    }

    #[test]
    fn unquoted_comment_is_kept() {
        let split = split_rfc4716(&["Comment: plain words", "AAAA"]);
        assert_eq!(split.comment, "plain words");
    }

    #[test]
    fn a_block_without_end_is_refused() {
        let lines = lines("---- BEGIN SSH2 PUBLIC KEY ----\nAAAA\n");
        let (BlockRead::Unterminated, next) = read_block(&lines, 0, "SSH2 PUBLIC KEY") else {
            panic!("expected a refusal");
        };
        assert_eq!(next, 2);
        let finding = unterminated(1, "SSH2 PUBLIC KEY");
        assert_eq!(
            finding.refusal().unwrap().kind,
            RefusalKind::UnterminatedBlock
        );
        assert!(
            finding
                .refusal()
                .unwrap()
                .to_string()
                .starts_with("line 1: ")
        );
    }

    #[test]
    fn a_new_begin_ends_an_unterminated_block() {
        let lines = lines(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n---- BEGIN SSH2 PUBLIC KEY ----\nAAAA\n---- END SSH2 PUBLIC KEY ----",
        );
        let (BlockRead::Unterminated, next) = read_block(&lines, 0, "PUBLIC KEY") else {
            panic!("expected a refusal");
        };
        assert_eq!(next, 2);
    }

    #[test]
    fn body_decoding() {
        assert_eq!(decode_body(&["AAEC", "Aw=="]).unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(decode_body(&["AAECAw"]).unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(
            decode_body(&["AA$C"]).unwrap_err().0,
            RefusalKind::MalformedBase64
        );
        assert_eq!(decode_body(&[]).unwrap_err().0, RefusalKind::MissingKeyData);
    }
}
