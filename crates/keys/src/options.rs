//! The options that can stand before a key in an authorized_keys line
//! (`from="10.0.0.0/8",no-pty,expiry-time="20301231" ssh-ed25519 AAAA…`).
//!
//! ssh-key's own parser fails on quoted values with spaces and on option lines
//! without a comment, so this is our own, written to sshd's grammar: options are
//! separated by commas, a value is always double-quoted, and inside the quotes
//! `\"` stands for a quote. Ferry enforces `from=` and `expiry-time=`; every other
//! option (known to sshd or not) is kept and shown, and ignored at login.

use serde::Serialize;
use thiserror::Error;

use crate::expiry::{ExpiryError, parse_expiry_time};
use crate::from_patterns::check_from_patterns;

/// One option: its name as written and its unquoted value, if it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyOption {
    /// The name as written (sshd compares names case-insensitively).
    pub name: String,
    /// The value with the quotes removed and `\"` turned into `"`.
    pub value: Option<String>,
}

/// The parsed options of one key, in the order they were written, plus the
/// text they were parsed from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct KeyOptions {
    options: Vec<KeyOption>,
    raw: String,
}

/// Why the options before a key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OptionsError {
    /// A `"` opened a value that never closes.
    #[error("a quoted value is not closed: a closing \" is missing")]
    UnterminatedQuote,
    /// Two commas in a row, or a comma or `=` with no name before it.
    #[error("an option has no name (two commas in a row, or a stray , or =)")]
    EmptyName,
    /// The name has characters sshd does not allow in option names.
    #[error("\"{0}\" is not an option name; options look like no-pty or from=\"10.0.0.0/8\"")]
    InvalidName(String),
    /// `name=value` without the double quotes sshd requires.
    #[error("the value of {0}= must be in double quotes, e.g. {0}=\"…\"")]
    UnquotedValue(String),
    /// Something other than a comma follows a closing quote.
    #[error("after the closing \" of {0}=\"…\" there must be a comma or a space")]
    TextAfterQuote(String),
    /// An option that needs a value has none (`from`, `expiry-time`, `command`…).
    #[error("the option {0} needs a value, e.g. {0}=\"…\"")]
    MissingValue(String),
    /// More than one `from=` (sshd refuses the key).
    #[error(
        "from= is given more than once; put all addresses in one from=\"…\" separated by commas"
    )]
    DuplicateFrom,
    /// A `from=` entry that would never match, or is not an address.
    #[error("{0}")]
    InvalidFrom(String),
    /// An `expiry-time=` that is not a date.
    #[error(transparent)]
    InvalidExpiry(#[from] ExpiryError),
}

/// Options that take a value in sshd.
const OPTIONS_WITH_VALUES: &[&str] = &[
    "command",
    "environment",
    "expiry-time",
    "from",
    "permitlisten",
    "permitopen",
    "principals",
    "tunnel",
];

impl KeyOptions {
    /// Parses the options text of one authorized_keys line (everything before
    /// the key type, with no unquoted whitespace in it). The empty string gives
    /// no options.
    ///
    /// # Errors
    /// [`OptionsError`] for text sshd would refuse, and for `from=`/`expiry-time=`
    /// values Ferry could not enforce.
    pub fn parse(text: &str) -> Result<Self, OptionsError> {
        let mut options = Vec::new();
        let mut chars = text.chars().peekable();
        while chars.peek().is_some() {
            let mut name = String::new();
            while let Some(&c) = chars.peek() {
                if c == ',' || c == '=' {
                    break;
                }
                name.push(c);
                chars.next();
            }
            if name.is_empty() {
                return Err(OptionsError::EmptyName);
            }
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(OptionsError::InvalidName(printable(&name)));
            }
            let mut value = None;
            if chars.next_if_eq(&'=').is_some() {
                if chars.next_if_eq(&'"').is_none() {
                    return Err(OptionsError::UnquotedValue(name));
                }
                let mut text = String::new();
                loop {
                    match chars.next() {
                        None => return Err(OptionsError::UnterminatedQuote),
                        Some('"') => break,
                        Some('\\') if chars.peek() == Some(&'"') => {
                            chars.next();
                            text.push('"');
                        }
                        Some(c) => text.push(c),
                    }
                }
                value = Some(text);
                if chars.peek().is_some_and(|&c| c != ',') {
                    return Err(OptionsError::TextAfterQuote(name));
                }
            }
            // A trailing comma is tolerated, as sshd does.
            chars.next_if_eq(&',');
            options.push(KeyOption { name, value });
        }
        let parsed = Self {
            options,
            raw: text.to_owned(),
        };
        parsed.validate()?;
        Ok(parsed)
    }

    fn validate(&self) -> Result<(), OptionsError> {
        let mut seen_from = false;
        for option in &self.options {
            let name = option.name.to_ascii_lowercase();
            let value = option.value.as_deref();
            if OPTIONS_WITH_VALUES.contains(&name.as_str()) && value.is_none() {
                return Err(OptionsError::MissingValue(option.name.clone()));
            }
            match (name.as_str(), value) {
                ("from", Some(patterns)) => {
                    if seen_from {
                        return Err(OptionsError::DuplicateFrom);
                    }
                    seen_from = true;
                    check_from_patterns(patterns).map_err(OptionsError::InvalidFrom)?;
                }
                ("expiry-time", Some(time)) => {
                    parse_expiry_time(time)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// True when there are no options.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.options.is_empty()
    }

    /// The options in the order they were written.
    #[must_use]
    pub fn as_slice(&self) -> &[KeyOption] {
        &self.options
    }

    /// The text the options were parsed from, exactly as written.
    #[must_use]
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The first option with this name (case-insensitive, as in sshd).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&KeyOption> {
        self.options
            .iter()
            .find(|option| option.name.eq_ignore_ascii_case(name))
    }

    /// Whether an option with this name is present (case-insensitive).
    #[must_use]
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The `from="…"` pattern list, for [`crate::from_allows`].
    #[must_use]
    pub fn from_patterns(&self) -> Option<&str> {
        self.get("from").and_then(|option| option.value.as_deref())
    }

    /// The `expiry-time` as unix seconds (read as UTC). With several, the
    /// earliest wins, as in sshd.
    #[must_use]
    pub fn expiry_time(&self) -> Option<i64> {
        self.options
            .iter()
            .filter(|option| option.name.eq_ignore_ascii_case("expiry-time"))
            .filter_map(|option| parse_expiry_time(option.value.as_deref()?).ok())
            .min()
    }

    /// Whether the options allow a login from `addr` at `now_unix`: the
    /// `from=` list (if any) matches and the `expiry-time` (if any) has not passed.
    #[must_use]
    pub fn allow_login(&self, addr: std::net::IpAddr, now_unix: i64) -> bool {
        let from_ok = self
            .from_patterns()
            .is_none_or(|patterns| crate::from_allows(patterns, addr));
        let expiry_ok = self
            .expiry_time()
            .is_none_or(|expiry| !crate::expiry_has_passed(expiry, now_unix));
        from_ok && expiry_ok
    }

    /// The options written back as authorized_keys text (`name` or
    /// `name="value"`, comma-separated, `"` escaped as `\"`); empty when there
    /// are none. [`KeyOptions::parse`] of the result gives the same options.
    #[must_use]
    pub fn to_authorized_keys_prefix(&self) -> String {
        self.options
            .iter()
            .map(|option| match &option.value {
                Some(value) => format!("{}=\"{}\"", option.name, value.replace('"', "\\\"")),
                None => option.name.clone(),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Shortens and cleans text that is echoed back in a message.
fn printable(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(40)
        .collect();
    if text.chars().count() > 40 {
        format!("{clean}…")
    } else {
        clean
    }
}

/// Finds where the options end in an authorized_keys line: the first space or
/// tab outside double quotes (sshd's `sshkey_advance_past_options`).
///
/// # Errors
/// [`OptionsError::UnterminatedQuote`] when a quote is still open at the end.
pub(crate) fn options_end(line: &str) -> Result<usize, OptionsError> {
    let mut quoted = false;
    let mut chars = line.char_indices().peekable();
    while let Some((index, c)) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(|&(_, next)| next == '"') => {
                chars.next();
            }
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return Ok(index),
            _ => {}
        }
    }
    if quoted {
        Err(OptionsError::UnterminatedQuote)
    } else {
        Ok(line.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_quoted_values_in_order() {
        let options = KeyOptions::parse(
            r#"from="10.0.0.0/8,172.16.0.0/12",no-pty,expiry-time="20301231",restrict"#,
        )
        .unwrap();
        let names: Vec<_> = options.as_slice().iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["from", "no-pty", "expiry-time", "restrict"]);
        assert_eq!(options.from_patterns(), Some("10.0.0.0/8,172.16.0.0/12"));
        assert_eq!(options.expiry_time(), Some(1_924_905_600));
        assert!(options.has("NO-PTY"));
        assert!(!options.has("no-agent-forwarding"));
    }

    #[test]
    fn quoted_spaces_and_escaped_quotes() {
        let options = KeyOptions::parse(
            r#"command="internal-sftp -d /in",environment="A=b c",command="echo \"hi\"""#,
        )
        .unwrap();
        let values: Vec<_> = options
            .as_slice()
            .iter()
            .map(|o| o.value.as_deref().unwrap())
            .collect();
        assert_eq!(values, ["internal-sftp -d /in", "A=b c", r#"echo "hi""#]);
    }

    #[test]
    fn unknown_options_are_kept() {
        let options = KeyOptions::parse(r#"x-vendor-thing,zz-custom="1""#).unwrap();
        assert_eq!(options.as_slice().len(), 2);
        assert_eq!(
            options.get("zz-custom").unwrap().value.as_deref(),
            Some("1")
        );
        assert_eq!(options.raw(), r#"x-vendor-thing,zz-custom="1""#);
    }

    #[test]
    fn prefix_round_trips() {
        let text = r#"from="10.0.0.0/8",no-pty,command="echo \"hi\" there",expiry-time="20301231""#;
        let options = KeyOptions::parse(text).unwrap();
        let prefix = options.to_authorized_keys_prefix();
        assert_eq!(prefix, text);
        assert_eq!(
            KeyOptions::parse(&prefix).unwrap().as_slice(),
            options.as_slice()
        );
        assert_eq!(KeyOptions::default().to_authorized_keys_prefix(), "");
    }

    #[test]
    fn earliest_expiry_wins() {
        let options =
            KeyOptions::parse(r#"expiry-time="20301231",expiry-time="20250101""#).unwrap();
        assert_eq!(options.expiry_time(), Some(1_735_689_600));
    }

    #[test]
    fn refusals() {
        use OptionsError::*;
        let cases: &[(&str, OptionsError)] = &[
            (r#"from="10.0.0.0/8"#, UnterminatedQuote),
            ("no-pty,,restrict", EmptyName),
            (",no-pty", EmptyName),
            ("from=10.0.0.0/8", UnquotedValue("from".into())),
            (r#"from="10.0.0.0/8"x"#, TextAfterQuote("from".into())),
            ("from", MissingValue("from".into())),
            ("expiry-time", MissingValue("expiry-time".into())),
            (r#"from="10.0.0.0/8",from="192.0.2.1""#, DuplicateFrom),
            ("no pty", InvalidName("no pty".into())),
        ];
        for (text, expected) in cases {
            assert_eq!(&KeyOptions::parse(text).unwrap_err(), expected, "{text}");
        }
        assert!(matches!(
            KeyOptions::parse(r#"expiry-time="2030-12-31""#),
            Err(InvalidExpiry(_))
        ));
        assert!(matches!(
            KeyOptions::parse(r#"from="10.0.0.1/8""#),
            Err(InvalidFrom(message)) if message.contains("10.0.0.0/8")
        ));
    }

    #[test]
    fn allow_login_combines_from_and_expiry() {
        let options = KeyOptions::parse(r#"from="10.0.0.0/8",expiry-time="20301231""#).unwrap();
        let inside = "10.1.2.3".parse().unwrap();
        let outside = "192.0.2.1".parse().unwrap();
        let before = 1_900_000_000;
        let after = 1_924_905_601;
        assert!(options.allow_login(inside, before));
        assert!(!options.allow_login(outside, before));
        assert!(!options.allow_login(inside, after));
        assert!(KeyOptions::default().allow_login(outside, after));
    }

    #[test]
    fn options_end_skips_quoted_spaces() {
        let line = r#"command="a b \"c d\"",no-pty ssh-ed25519 AAAA"#;
        let end = options_end(line).unwrap();
        assert_eq!(&line[..end], r#"command="a b \"c d\"",no-pty"#);
        assert_eq!(
            options_end(r#"from="x y"#),
            Err(OptionsError::UnterminatedQuote)
        );
        assert_eq!(options_end("restrict"), Ok(8));
    }
}
