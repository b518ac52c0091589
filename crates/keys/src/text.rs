//! Turns the raw bytes someone pasted or uploaded into numbered lines of text.
//!
//! Keys arrive from browsers, Windows editors and PowerShell redirections, so the
//! bytes may carry a UTF-8 byte-order mark, be UTF-16 (PowerShell 5's `>`), use
//! CRLF or lone CR line endings, or not be text at all. Everything downstream
//! works on clean `&str` lines with their 1-based numbers, so this is the only
//! place that has to care about encodings.

use std::borrow::Cow;

/// One line of the input: its 1-based number and its text without the line ending.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'a> {
    pub(crate) number: usize,
    pub(crate) text: &'a str,
}

/// The input decoded to text, plus whether it looked like a binary file.
pub(crate) struct DecodedInput<'a> {
    pub(crate) text: Cow<'a, str>,
    /// True when the bytes were not valid text (invalid UTF-8 or NUL bytes).
    pub(crate) looks_binary: bool,
}

const UTF8_BOM: &[u8] = &[0xEF, 0xBB, 0xBF];

/// Decodes the input bytes to text: strips a UTF-8 BOM, decodes UTF-16 with a
/// BOM, and replaces bytes that are not UTF-8 (marking the input as binary).
pub(crate) fn decode(input: &[u8]) -> DecodedInput<'_> {
    if let Some(rest) = input.strip_prefix(UTF8_BOM) {
        return decode_utf8(rest);
    }
    if let Some(rest) = input.strip_prefix(&[0xFF, 0xFE]) {
        return decode_utf16(rest, u16::from_le_bytes);
    }
    if let Some(rest) = input.strip_prefix(&[0xFE, 0xFF]) {
        return decode_utf16(rest, u16::from_be_bytes);
    }
    decode_utf8(input)
}

fn decode_utf8(bytes: &[u8]) -> DecodedInput<'_> {
    let has_nul = bytes.contains(&0);
    match std::str::from_utf8(bytes) {
        Ok(text) => DecodedInput {
            text: Cow::Borrowed(text),
            looks_binary: has_nul,
        },
        Err(_) => DecodedInput {
            text: String::from_utf8_lossy(bytes),
            looks_binary: true,
        },
    }
}

fn decode_utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> DecodedInput<'static> {
    let units = bytes.chunks(2).map(|pair| match pair {
        [a, b] => unit([*a, *b]),
        // An odd trailing byte cannot be UTF-16; make it a replacement character.
        _ => 0xFFFD,
    });
    let mut looks_binary = !bytes.len().is_multiple_of(2);
    let text: String = char::decode_utf16(units)
        .map(|c| {
            c.unwrap_or_else(|_| {
                looks_binary = true;
                char::REPLACEMENT_CHARACTER
            })
        })
        .collect();
    looks_binary |= text.contains('\0');
    DecodedInput {
        text: Cow::Owned(text),
        looks_binary,
    }
}

/// Splits text into numbered lines. CRLF, LF and a lone CR all end a line; the
/// line text has trailing whitespace removed (leading whitespace is kept).
pub(crate) fn lines(text: &str) -> Vec<Line<'_>> {
    let mut lines = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'\n' => {
                lines.push(&text[start..index]);
                index += 1;
                start = index;
            }
            b'\r' => {
                lines.push(&text[start..index]);
                index += 1;
                if bytes.get(index) == Some(&b'\n') {
                    index += 1;
                }
                start = index;
            }
            _ => index += 1,
        }
    }
    if start < bytes.len() {
        lines.push(&text[start..]);
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(index, text)| Line {
            number: index + 1,
            text: text.trim_end(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_lf_and_lone_cr_all_end_lines_and_trailing_space_goes() {
        let decoded = decode(b"a \r\nb\t\rc\nd");
        let lines = lines(&decoded.text);
        let texts: Vec<_> = lines.iter().map(|l| (l.number, l.text)).collect();
        assert_eq!(texts, vec![(1, "a"), (2, "b"), (3, "c"), (4, "d")]);
    }

    #[test]
    fn utf8_bom_is_stripped() {
        let decoded = decode(b"\xEF\xBB\xBFssh-ed25519 AAAA");
        assert_eq!(decoded.text, "ssh-ed25519 AAAA");
        assert!(!decoded.looks_binary);
    }

    #[test]
    fn utf16_le_with_bom_is_decoded() {
        let mut bytes = vec![0xFF, 0xFE];
        for unit in "ssh-rsa x\r\n".encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        let decoded = decode(&bytes);
        assert_eq!(decoded.text, "ssh-rsa x\r\n");
        assert!(!decoded.looks_binary);
    }

    #[test]
    fn invalid_utf8_is_marked_binary() {
        let decoded = decode(b"abc\xFF\xFEdef");
        assert!(decoded.looks_binary);
        assert!(decode(b"abc\0def").looks_binary);
        assert!(!decode(b"plain text").looks_binary);
    }
}
