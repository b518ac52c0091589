//! Character sets: the rule a file is checked against, the set a file turns out
//! to be in, and the streaming inspector that tells them apart.
//!
//! District exports come from Windows tools: Excel saves "CSV UTF-8" with a
//! byte-order mark, plain "CSV" in Windows-1252, and older SIS extracts are
//! pure ASCII. Reading a Windows-1252 `Año` as UTF-8 breaks names and headers,
//! so the set is detected (or checked against the rule) over the whole file,
//! chunk by chunk, keeping at most three bytes of an unfinished UTF-8 sequence
//! between chunks. Only the header is ever decoded; the inspector itself never
//! allocates per chunk.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// The UTF-8 byte-order mark.
pub(crate) const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Which character set a rule requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum CharsetRule {
    /// Detect: a byte-order mark means UTF-8; only bytes below 128 means
    /// US-ASCII; valid UTF-8 means UTF-8; anything else is Windows-1252.
    #[default]
    Auto,
    /// UTF-8, with or without a byte-order mark; invalid bytes are errors.
    Utf8,
    /// Only bytes below 128.
    UsAscii,
    /// Windows-1252 (what Excel and Notepad call "ANSI" on a US or Western
    /// European Windows); every byte decodes.
    Windows1252,
}

impl CharsetRule {
    /// The name used in configuration.
    #[must_use]
    pub fn config_name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Utf8 => "utf-8",
            Self::UsAscii => "us-ascii",
            Self::Windows1252 => "windows-1252",
        }
    }
}

impl TryFrom<String> for CharsetRule {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "utf-8" | "utf8" => Ok(Self::Utf8),
            "us-ascii" | "ascii" => Ok(Self::UsAscii),
            "windows-1252" | "cp1252" | "win-1252" => Ok(Self::Windows1252),
            _ => Err(format!(
                "unknown charset {value:?}: use \"auto\", \"utf-8\", \"us-ascii\" or \"windows-1252\""
            )),
        }
    }
}

/// The character set a file was read in, as the report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// Only bytes below 128 (also valid UTF-8 and Windows-1252).
    UsAscii,
    /// UTF-8 without a byte-order mark.
    Utf8,
    /// UTF-8 starting with a byte-order mark (Excel's "CSV UTF-8").
    Utf8WithBom,
    /// Windows-1252 ("ANSI").
    Windows1252,
}

impl Charset {
    /// The name a person reads: `US-ASCII`, `UTF-8`, `UTF-8 with BOM`, `Windows-1252`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::UsAscii => "US-ASCII",
            Self::Utf8 => "UTF-8",
            Self::Utf8WithBom => "UTF-8 with BOM",
            Self::Windows1252 => "Windows-1252",
        }
    }

    /// Decodes `bytes` (a header field, say) in this set. Invalid UTF-8 becomes
    /// U+FFFD; Windows-1252 uses the WHATWG table, so every byte decodes.
    #[must_use]
    pub fn decode(self, bytes: &[u8]) -> String {
        match self {
            Self::UsAscii | Self::Utf8 | Self::Utf8WithBom => {
                String::from_utf8_lossy(bytes).into_owned()
            }
            Self::Windows1252 => encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0
                .into_owned(),
        }
    }
}

impl fmt::Display for Charset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Charset {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// Something the inspector saw at a byte offset of the chunk it was given
/// (0 when the bytes began in the previous chunk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CharsetEvent {
    /// A byte of 128 or more (reported only when every one is wanted).
    NonAscii { offset: usize, byte: u8 },
    /// The start of a sequence that is not valid UTF-8.
    InvalidUtf8 { offset: usize, byte: u8 },
}

/// Streaming classifier: is everything so far ASCII, is it valid UTF-8, and
/// where are the bytes that break the rule.
#[derive(Debug)]
pub(crate) struct CharsetInspector {
    /// Report every byte of 128 or more (rule US-ASCII).
    every_non_ascii: bool,
    /// Report every invalid UTF-8 sequence (rule UTF-8, or a BOM), rather than
    /// only the first.
    every_invalid_utf8: bool,
    all_ascii: bool,
    valid_utf8: bool,
    /// First bytes of a UTF-8 sequence the previous chunk ended in the middle of.
    carry: [u8; 4],
    carry_len: usize,
    /// The first non-ASCII byte and the first invalid UTF-8 byte, with their
    /// offsets in the chunk they were found in; the caller turns them into lines.
    pub(crate) first_non_ascii: Option<u8>,
    pub(crate) first_invalid_utf8: Option<u8>,
}

impl CharsetInspector {
    pub(crate) fn new(every_non_ascii: bool, every_invalid_utf8: bool) -> Self {
        Self {
            every_non_ascii,
            every_invalid_utf8,
            all_ascii: true,
            valid_utf8: true,
            carry: [0; 4],
            carry_len: 0,
            first_non_ascii: None,
            first_invalid_utf8: None,
        }
    }

    pub(crate) fn all_ascii(&self) -> bool {
        self.all_ascii
    }

    /// Valid UTF-8 so far; call [`Self::finish`] first for the final answer.
    pub(crate) fn valid_utf8(&self) -> bool {
        self.valid_utf8
    }

    /// Looks at the next chunk of the file (after any byte-order mark).
    /// `events` receives what the caller must place on a line: the first
    /// non-ASCII byte (always), every further one when `every_non_ascii`, the
    /// first invalid UTF-8 sequence (always) and every further one when
    /// `every_invalid_utf8`.
    pub(crate) fn inspect(&mut self, chunk: &[u8], events: &mut Vec<CharsetEvent>) {
        if chunk.is_empty() {
            return;
        }
        let first_high = if self.all_ascii || self.every_non_ascii {
            match chunk.iter().position(|&byte| byte >= 0x80) {
                None => {
                    if self.carry_len > 0 {
                        // An unfinished sequence followed by ASCII: invalid.
                        self.validate_utf8(chunk, events);
                    }
                    return;
                }
                Some(offset) => Some(offset),
            }
        } else {
            None
        };
        if let Some(offset) = first_high {
            if self.all_ascii {
                self.all_ascii = false;
                self.first_non_ascii = Some(chunk[offset]);
            }
            events.push(CharsetEvent::NonAscii {
                offset,
                byte: chunk[offset],
            });
            if self.every_non_ascii {
                for (index, &byte) in chunk.iter().enumerate().skip(offset + 1) {
                    if byte >= 0x80 {
                        events.push(CharsetEvent::NonAscii {
                            offset: index,
                            byte,
                        });
                    }
                }
            }
        }
        if self.valid_utf8 || self.every_invalid_utf8 {
            self.validate_utf8(chunk, events);
        }
    }

    /// Call at the end of the file: an unfinished sequence there is invalid.
    pub(crate) fn finish(&mut self, events: &mut Vec<CharsetEvent>) {
        if self.carry_len > 0 {
            let byte = self.carry[0];
            self.carry_len = 0;
            self.invalid(0, byte, events);
        }
    }

    fn invalid(&mut self, offset: usize, byte: u8, events: &mut Vec<CharsetEvent>) {
        if self.valid_utf8 {
            self.valid_utf8 = false;
            self.first_invalid_utf8 = Some(byte);
            events.push(CharsetEvent::InvalidUtf8 { offset, byte });
        } else if self.every_invalid_utf8 {
            events.push(CharsetEvent::InvalidUtf8 { offset, byte });
        }
    }

    fn validate_utf8(&mut self, chunk: &[u8], events: &mut Vec<CharsetEvent>) {
        let mut position = 0;
        if self.carry_len > 0 {
            let lead = self.carry[0];
            let sequence_len = match lead {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                _ => 4,
            };
            let needed = sequence_len - self.carry_len;
            let available = needed.min(chunk.len());
            let mut joined = [0u8; 4];
            joined[..self.carry_len].copy_from_slice(&self.carry[..self.carry_len]);
            joined[self.carry_len..self.carry_len + available].copy_from_slice(&chunk[..available]);
            let joined_len = self.carry_len + available;
            match std::str::from_utf8(&joined[..joined_len]) {
                Ok(_) => {
                    self.carry_len = 0;
                    position = available;
                }
                Err(error) => match error.error_len() {
                    None => {
                        // Still unfinished (the chunk was tiny): keep waiting.
                        self.carry[..joined_len].copy_from_slice(&joined[..joined_len]);
                        self.carry_len = joined_len;
                        return;
                    }
                    Some(invalid_len) => {
                        let carried = self.carry_len;
                        self.carry_len = 0;
                        self.invalid(0, lead, events);
                        if !self.every_invalid_utf8 {
                            return;
                        }
                        position = invalid_len.saturating_sub(carried);
                    }
                },
            }
        }
        // Fast path: everything but a possibly unfinished last sequence, with
        // SIMD; the standard validator only runs on that tail or on errors.
        let body_end = last_sequence_start(chunk).max(position);
        if simdutf8::basic::from_utf8(&chunk[position..body_end]).is_ok() {
            position = body_end;
        }
        while position < chunk.len() {
            match std::str::from_utf8(&chunk[position..]) {
                Ok(_) => return,
                Err(error) => {
                    let at = position + error.valid_up_to();
                    match error.error_len() {
                        None => {
                            let rest = &chunk[at..];
                            self.carry[..rest.len()].copy_from_slice(rest);
                            self.carry_len = rest.len();
                            return;
                        }
                        Some(invalid_len) => {
                            self.invalid(at, chunk[at], events);
                            if !self.every_invalid_utf8 {
                                return;
                            }
                            position = at + invalid_len;
                        }
                    }
                }
            }
        }
    }
}

/// Where the last UTF-8 sequence of `bytes` starts when it may be unfinished
/// (a lead byte within the last three bytes), else `bytes.len()`.
fn last_sequence_start(bytes: &[u8]) -> usize {
    for index in (bytes.len().saturating_sub(3)..bytes.len()).rev() {
        match bytes[index] {
            0x80..=0xBF => {}
            0xC0..=0xFF => return index,
            _ => return index + 1,
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]], every: bool) -> (CharsetInspector, Vec<CharsetEvent>) {
        let mut inspector = CharsetInspector::new(false, every);
        let mut events = Vec::new();
        for chunk in chunks {
            inspector.inspect(chunk, &mut events);
        }
        inspector.finish(&mut events);
        (inspector, events)
    }

    #[test]
    fn ascii_is_ascii_and_utf8() {
        let (inspector, events) = run(&[b"a,b\n1,2\n"], false);
        assert!(inspector.all_ascii());
        assert!(inspector.valid_utf8());
        assert!(events.is_empty());
    }

    #[test]
    fn utf8_split_across_chunks_is_valid() {
        let text = "Año,Dirección,€uro,😀\n".as_bytes();
        for split in 0..text.len() {
            for split2 in split..text.len() {
                let (inspector, _) = run(
                    &[&text[..split], &text[split..split2], &text[split2..]],
                    true,
                );
                assert!(
                    inspector.valid_utf8(),
                    "split at {split},{split2} reported invalid"
                );
                assert!(!inspector.all_ascii());
            }
        }
    }

    #[test]
    fn windows_1252_is_not_utf8_and_reports_the_byte() {
        let (inspector, events) = run(&[b"Nombre,A\xF1o\n"], false);
        assert!(!inspector.valid_utf8());
        assert!(events.contains(&CharsetEvent::InvalidUtf8 {
            offset: 8,
            byte: 0xF1
        }));
    }

    #[test]
    fn every_invalid_sequence_when_asked() {
        let (_, events) = run(&[b"\xE9a\xE9b", b"\xC3"], true);
        let invalid: Vec<_> = events
            .iter()
            .filter(|event| matches!(event, CharsetEvent::InvalidUtf8 { .. }))
            .collect();
        assert_eq!(invalid.len(), 3, "{events:?}");
    }

    #[test]
    fn unfinished_sequence_followed_by_ascii_is_invalid() {
        let (inspector, _) = run(&[b"ab\xC3", b"cd"], false);
        assert!(!inspector.valid_utf8());
    }

    #[test]
    fn decode_windows_1252() {
        assert_eq!(Charset::Windows1252.decode(b"A\xF1o \x80"), "Año €");
        assert_eq!(Charset::Utf8.decode("Año".as_bytes()), "Año");
    }

    #[test]
    fn rule_names() {
        assert_eq!(
            CharsetRule::try_from("UTF8".to_string()),
            Ok(CharsetRule::Utf8)
        );
        assert!(CharsetRule::try_from("latin-9".to_string()).is_err());
    }
}
