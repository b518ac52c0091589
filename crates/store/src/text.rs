//! Showing text that came from a client, and byte sizes, to people.
//!
//! Anything a client chose (file names, user names, client banners, key
//! comments) may hold control characters: a line break forges a log line or
//! a table row, an ESC sequence rewrites an operator's terminal. Every
//! terminal table and page that shows such text passes it through
//! [`escape_control`]; the server's log escapes whole lines (src/serve.rs).
//! JSON output stays exact: its encoder escapes control characters itself.
//!
//! Sizes are written like `4 GiB` and read with the same units (`KiB`,
//! `MiB`, `GiB`, `TiB`; `KB`, `MB`, `GB` are powers of 1000), through the
//! `bytesize` crate.

use std::borrow::Cow;

/// `text` with every control character (U+0000–U+001F, U+007F–U+009F)
/// shown as an escape: `\n`, `\r`, `\t`, `\x1b`, `\u{85}`. Backslashes are
/// doubled, so an escape in the output always means a control character in
/// the input. Text without them is returned as it is.
#[must_use]
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() || c == '\\') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `bytes` for people, in binary units: `512 B`, `1.5 MiB`, `20.0 GiB`.
#[must_use]
pub fn format_size(bytes: u64) -> String {
    bytesize::ByteSize::b(bytes).display().iec().to_string()
}

/// Reads a size such as `4GiB`, `500 MiB`, `20GB` or a plain number of bytes.
///
/// # Errors
/// A message naming the text and how to write a size.
pub fn parse_size(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|_| {
            format!("{text:?} is not a size: write it like 4GiB, 500MiB or a number of bytes")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible_and_plain_text_is_untouched() {
        assert!(matches!(
            escape_control("roster_2026.csv é"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            escape_control("a\nlogin accepted account=x"),
            "a\\nlogin accepted account=x"
        );
        assert_eq!(
            escape_control("\u{1b}[31mred\r\t\0"),
            "\\x1b[31mred\\r\\t\\x00"
        );
        assert_eq!(escape_control("\u{7f}\u{85}"), "\\x7f\\u{85}");
        assert_eq!(escape_control("a\\nb"), "a\\\\nb", "a literal backslash-n");
    }

    #[test]
    fn sizes_read_and_write_in_binary_units() {
        assert_eq!(parse_size("4GiB").unwrap(), 4 << 30);
        assert_eq!(parse_size(" 500 MiB ").unwrap(), 500 << 20);
        assert_eq!(parse_size("20GB").unwrap(), 20_000_000_000);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert!(parse_size("lots").unwrap_err().contains("4GiB"));
        assert_eq!(format_size(20 << 30), "20.0 GiB");
        assert_eq!(format_size(1000), "1000 B");
    }
}
