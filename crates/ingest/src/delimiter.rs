//! Field delimiters: the four a district export uses (comma, tab, pipe,
//! semicolon), the rule that fixes one or asks for detection, and detection
//! from the header line.
//!
//! Detection looks only at the header, outside double quotes: the header is
//! plain column names, so the delimiter is the candidate that occurs most often
//! there. Data rows are never used to guess, so one odd row cannot change how
//! the whole file is read.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// A field delimiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delimiter {
    /// `,`
    Comma,
    /// A tab character.
    Tab,
    /// `|`
    Pipe,
    /// `;` (Excel's CSV where the decimal separator is a comma).
    Semicolon,
}

impl Delimiter {
    /// Every delimiter, in the order detection prefers on a tie.
    pub const ALL: [Delimiter; 4] = [Self::Comma, Self::Tab, Self::Semicolon, Self::Pipe];

    /// The byte in the file.
    #[must_use]
    pub fn byte(self) -> u8 {
        match self {
            Self::Comma => b',',
            Self::Tab => b'\t',
            Self::Pipe => b'|',
            Self::Semicolon => b';',
        }
    }

    /// What a person calls it: `comma`, `tab`, `pipe (|)`, `semicolon`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Comma => "comma",
            Self::Tab => "tab",
            Self::Pipe => "pipe (|)",
            Self::Semicolon => "semicolon",
        }
    }

    /// The character as text (a tab is a real tab).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Comma => ",",
            Self::Tab => "\t",
            Self::Pipe => "|",
            Self::Semicolon => ";",
        }
    }
}

impl fmt::Display for Delimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Serialised as the character itself (`","`, `"\t"`, `"|"`, `";"`).
impl Serialize for Delimiter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The delimiter a rule requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum DelimiterRule {
    /// Detect from the header line.
    #[default]
    Auto,
    /// Exactly this one.
    Fixed(Delimiter),
}

impl TryFrom<String> for DelimiterRule {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let fixed = match value.as_str() {
            "," => Delimiter::Comma,
            "\t" => Delimiter::Tab,
            "|" => Delimiter::Pipe,
            ";" => Delimiter::Semicolon,
            other => match other.trim().to_ascii_lowercase().as_str() {
                "auto" => return Ok(Self::Auto),
                "comma" => Delimiter::Comma,
                "tab" | "\\t" => Delimiter::Tab,
                "pipe" => Delimiter::Pipe,
                "semicolon" => Delimiter::Semicolon,
                _ => {
                    return Err(format!(
                        "unknown delimiter {value:?}: use \"auto\", \",\", \"\\t\", \"|\" or \";\" (or comma, tab, pipe, semicolon)"
                    ));
                }
            },
        };
        Ok(Self::Fixed(fixed))
    }
}

/// How often each candidate occurs in `header_line` outside double quotes, in
/// the order of [`Delimiter::ALL`].
#[must_use]
pub(crate) fn count_candidates(header_line: &[u8]) -> [usize; 4] {
    let mut counts = [0usize; 4];
    let mut in_quotes = false;
    for &byte in header_line {
        if byte == b'"' {
            in_quotes = !in_quotes;
        } else if !in_quotes {
            for (count, delimiter) in counts.iter_mut().zip(Delimiter::ALL) {
                if byte == delimiter.byte() {
                    *count += 1;
                }
            }
        }
    }
    counts
}

/// The delimiter of a header line: the candidate occurring most often outside
/// quotes (ties go to comma, then tab, semicolon, pipe); `None` when there is none.
#[must_use]
pub fn detect_delimiter(header_line: &[u8]) -> Option<Delimiter> {
    let counts = count_candidates(header_line);
    let mut best: Option<(Delimiter, usize)> = None;
    for (delimiter, count) in Delimiter::ALL.into_iter().zip(counts) {
        if count > 0 && best.is_none_or(|(_, best_count)| count > best_count) {
            best = Some((delimiter, count));
        }
    }
    best.map(|(delimiter, _)| delimiter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_delimiter() {
        assert_eq!(detect_delimiter(b"a,b,c"), Some(Delimiter::Comma));
        assert_eq!(detect_delimiter(b"a\tb\tc"), Some(Delimiter::Tab));
        assert_eq!(detect_delimiter(b"a|b|c"), Some(Delimiter::Pipe));
        assert_eq!(detect_delimiter(b"a;b;c"), Some(Delimiter::Semicolon));
        assert_eq!(detect_delimiter(b"abc"), None);
    }

    #[test]
    fn ignores_delimiters_inside_quotes() {
        assert_eq!(
            detect_delimiter(b"\"Last, First\";\"a,b\";c"),
            Some(Delimiter::Semicolon)
        );
    }

    #[test]
    fn tie_prefers_comma() {
        assert_eq!(detect_delimiter(b"a,b;c"), Some(Delimiter::Comma));
    }

    #[test]
    fn rule_from_config_text() {
        assert_eq!(
            DelimiterRule::try_from("\t".to_string()),
            Ok(DelimiterRule::Fixed(Delimiter::Tab))
        );
        assert_eq!(
            DelimiterRule::try_from("Semicolon".to_string()),
            Ok(DelimiterRule::Fixed(Delimiter::Semicolon))
        );
        assert_eq!(
            DelimiterRule::try_from("auto".to_string()),
            Ok(DelimiterRule::Auto)
        );
        assert!(DelimiterRule::try_from(":".to_string()).is_err());
    }
}
