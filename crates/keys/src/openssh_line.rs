//! One line of OpenSSH text: a `.pub` one-liner (`ssh-ed25519 AAAA… comment`)
//! or an authorized_keys line with options before the key.
//!
//! Like sshd, a line is first read as a key; if its first word is not a key
//! type, the options are skipped (quote-aware) and the rest is read as a key.
//! ssh-key's `AuthorizedKeys` is not used: it breaks on quoted spaces and on
//! option lines without a comment.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::candidate::{Candidate, judge};
use crate::finding::{Finding, RefusalKind, SourceFormat};
use crate::key_blob::{clean, embedded_type, is_known_type};
use crate::options::{KeyOptions, options_end};
use crate::policy::KeyPolicy;

/// Standard base64 that tolerates missing padding and non-zero trailing bits,
/// as OpenSSH's decoder does; what matters is the decoded blob.
pub(crate) const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Whether a token looks like base64 key data (long enough, base64 alphabet).
pub(crate) fn is_base64_token(token: &str) -> bool {
    token.len() >= 16
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

/// Whether a word could be a key type name (`ssh-foo`, `x@example.com`).
fn looks_like_type_name(word: &str) -> bool {
    word.len() <= 64
        && word.contains(['-', '@'])
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'@' | b'.' | b'_'))
}

/// Splits off the first whitespace-separated word; the rest has its leading
/// whitespace removed.
fn split_word(text: &str) -> (&str, &str) {
    match text.find(char::is_whitespace) {
        Some(index) => (&text[..index], text[index..].trim_start()),
        None => (text, ""),
    }
}

/// Whether `text` starts like a key: a known type, or a type-like word
/// followed by base64 data.
fn starts_with_key(text: &str) -> bool {
    let (first, rest) = split_word(text);
    let (second, _) = split_word(rest);
    is_known_type(first) || (looks_like_type_name(first) && is_base64_token(second))
}

/// Reads one non-blank, non-comment line (already trimmed).
pub(crate) fn parse_line(line: usize, text: &str, policy: &KeyPolicy) -> Finding {
    if starts_with_key(text) {
        return parse_key(line, KeyOptions::default(), text, policy);
    }
    let (first, rest) = split_word(text);
    if is_base64_token(first) {
        return parse_bare_blob(line, first, rest, policy);
    }
    let end = match options_end(text) {
        Ok(end) => end,
        Err(error) => {
            return if contains_key_type(text) {
                invalid_options(line, error)
            } else {
                not_a_key(line, text)
            };
        }
    };
    let (options_text, rest) = text.split_at(end);
    let rest = rest.trim_start();
    if !starts_with_key(rest) {
        return not_a_key(line, text);
    }
    match KeyOptions::parse(options_text) {
        Ok(options) => parse_key(line, options, rest, policy),
        Err(error) => invalid_options(line, error),
    }
}

fn contains_key_type(text: &str) -> bool {
    text.split_whitespace().any(is_known_type)
}

fn invalid_options(line: usize, error: crate::options::OptionsError) -> Finding {
    let reason = format!(
        "the options before the key cannot be used: {error} — fix them, or paste the key without options"
    );
    Finding::refused(
        line,
        SourceFormat::Openssh,
        RefusalKind::InvalidOptions(error),
        reason,
    )
}

/// `type base64 [comment]` after any options.
fn parse_key(line: usize, options: KeyOptions, text: &str, policy: &KeyPolicy) -> Finding {
    let (declared, rest) = split_word(text);
    let (data, comment) = split_word(rest);
    let refuse = |kind, reason: String| {
        let mut finding = Finding::refused(line, SourceFormat::Openssh, kind, reason);
        finding.comment = comment.to_owned();
        finding.options = options.clone();
        finding
    };
    if data.is_empty() {
        return refuse(
            RefusalKind::MissingKeyData,
            format!(
                "the line names the key type {} but has no key data after it — copy the whole line from the .pub file",
                clean(declared)
            ),
        );
    }
    let Ok(blob) = LENIENT_BASE64.decode(data) else {
        let (kind, reason) = crate::blocks::malformed();
        return refuse(kind, reason);
    };
    judge(
        Candidate {
            line,
            format: SourceFormat::Openssh,
            declared: Some(declared),
            blob,
            comment: comment.to_owned(),
            options,
        },
        policy,
    )
}

/// Key data without the type in front (the type is read from the data).
fn parse_bare_blob(line: usize, data: &str, comment: &str, policy: &KeyPolicy) -> Finding {
    match LENIENT_BASE64.decode(data) {
        Ok(blob) if embedded_type(&blob).is_some_and(is_known_type) => judge(
            Candidate {
                line,
                format: SourceFormat::Openssh,
                declared: None,
                blob,
                comment: comment.to_owned(),
                options: KeyOptions::default(),
            },
            policy,
        ),
        _ => not_a_key(line, data),
    }
}

/// A line that is not a key. Its text is never echoed: it may be part of a
/// secret in a format we do not recognise.
pub(crate) fn not_a_key(line: usize, text: &str) -> Finding {
    let reason = if text.split_whitespace().all(is_base64_token) {
        "this line looks like a piece of a key that was split over several lines — paste the whole key as one line (or a whole block with its BEGIN and END lines)"
    } else {
        "this line is not an SSH public key — a public key is one line that starts with its type (ssh-ed25519, ecdsa-sha2-nistp256 or ssh-rsa) followed by the key data; lines starting with # are ignored"
    };
    Finding::refused(
        line,
        SourceFormat::Text,
        RefusalKind::NotAKey,
        reason.to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Verdict;

    const ED25519: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJ5LskwRJbFgtj5nhmKo0rmIwjdFDF1+INrq95IBvk5N";
    const FINGERPRINT: &str = "SHA256:eXLQxAA3G2YlGKSnYlUzM+V5C2uSXzX4+dFoKj9pTEg";

    fn parse(text: &str) -> Finding {
        parse_line(7, text, &KeyPolicy::default())
    }

    fn code(finding: &Finding) -> &'static str {
        finding.refusal().map_or("accepted", |r| r.kind.code())
    }

    #[test]
    fn one_liner_with_comment() {
        let finding = parse(&format!("ssh-ed25519 {ED25519} alice@example two words"));
        assert_eq!(finding.verdict, Verdict::Accepted);
        assert_eq!(finding.line, 7);
        assert_eq!(finding.comment, "alice@example two words");
        assert_eq!(finding.key.unwrap().fingerprint, FINGERPRINT);
    }

    #[test]
    fn one_liner_without_comment_and_with_tabs() {
        let finding = parse(&format!("ssh-ed25519\t{ED25519}"));
        assert!(finding.is_accepted());
        assert_eq!(finding.comment, "");
    }

    #[test]
    fn options_without_comment() {
        let finding = parse(&format!("no-pty ssh-ed25519 {ED25519}"));
        assert!(finding.is_accepted(), "{}", finding.describe());
        assert!(finding.options.has("no-pty"));
        assert_eq!(finding.comment, "");
    }

    #[test]
    fn options_with_quoted_spaces_and_escaped_quotes() {
        let finding = parse(&format!(
            r#"restrict,command="internal-sftp -d /in",environment="A=\"b c\"",from="10.0.0.0/8" ssh-ed25519 {ED25519} bob"#
        ));
        assert!(finding.is_accepted(), "{}", finding.describe());
        assert_eq!(finding.comment, "bob");
        let command = finding.options.get("command").unwrap();
        assert_eq!(command.value.as_deref(), Some("internal-sftp -d /in"));
        assert_eq!(
            finding.options.get("environment").unwrap().value.as_deref(),
            Some(r#"A="b c""#)
        );
        assert_eq!(finding.options.from_patterns(), Some("10.0.0.0/8"));
    }

    #[test]
    fn bad_options_are_refused_with_the_reason() {
        let finding = parse(&format!(r#"from="10.0.0.1/8" ssh-ed25519 {ED25519}"#));
        assert_eq!(code(&finding), "invalid-options");
        assert!(
            finding.describe().contains("10.0.0.0/8"),
            "{}",
            finding.describe()
        );
        let finding = parse(&format!(r#"from="10.0.0.0/8 ssh-ed25519 {ED25519}"#));
        assert_eq!(code(&finding), "invalid-options");
        assert!(finding.describe().contains("not closed"));
        let finding = parse(&format!(r#"expiry-time="tomorrow" ssh-ed25519 {ED25519}"#));
        assert_eq!(code(&finding), "invalid-options");
    }

    #[test]
    fn cert_authority_option_is_refused() {
        let finding = parse(&format!("cert-authority ssh-ed25519 {ED25519}"));
        assert_eq!(code(&finding), "certificate-authority");
        assert!(
            finding
                .describe()
                .contains("certificate authorities are not supported yet")
        );
        assert!(finding.key.is_some());
    }

    #[test]
    fn malformed_and_missing_data() {
        assert_eq!(code(&parse("ssh-ed25519 AAAA$$$$ x")), "malformed-base64");
        assert_eq!(code(&parse("ssh-ed25519")), "missing-key-data");
        let cut = &ED25519[..40];
        assert_eq!(
            code(&parse(&format!("ssh-ed25519 {cut} x"))),
            "incomplete-key"
        );
    }

    #[test]
    fn mislabelled_and_unknown_types() {
        let finding = parse(&format!("ssh-rsa {ED25519} x"));
        assert_eq!(code(&finding), "type-mismatch");
        assert!(finding.key.is_none());
        let finding = parse(&format!("ssh-foo {ED25519} x"));
        assert_eq!(code(&finding), "type-mismatch");
        let describe = finding.describe();
        assert!(
            describe.starts_with("line 7: the line says the key is ssh-foo"),
            "{describe}"
        );
    }

    #[test]
    fn bare_key_data_without_type_is_read() {
        let finding = parse(&format!("{ED25519} carol"));
        assert!(finding.is_accepted(), "{}", finding.describe());
        assert_eq!(finding.comment, "carol");
    }

    #[test]
    fn lines_that_are_not_keys() {
        let finding = parse("hello world");
        assert_eq!(code(&finding), "not-a-key");
        assert!(!finding.describe().contains("hello"));
        let finding = parse("dGhpcyBpcyBub3QgYSBrZXkgYXQgYWxs");
        assert_eq!(code(&finding), "not-a-key");
        assert!(finding.describe().contains("split over several lines"));
    }
}
