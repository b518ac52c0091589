//! File names Ferry itself writes (archive copies, reports) and names it
//! refuses to pass on.
//!
//! This module exists so that no name a district sends — however long or
//! unusual — can make a batch fail or confuse the vendor's import:
//! - [`unsafe_character`]: control characters (bytes 0x00–0x1F and 0x7F)
//!   would split a path in `FERRY_FILES` (one path per line); a file whose
//!   name has one is refused, never handed over.
//! - [`file_name_that_fits`]: a name Ferry derives from the district's
//!   (`x (2).csv`, `2026-11-23_upload-7_x.csv.txt`) can outgrow the file
//!   system's limit of [`NAME_MAX`] bytes; it is shortened, keeping its
//!   extension and adding a short hash of the whole name, so two long names
//!   stay apart.
//! - [`printable`]: the name as a person reads it in a report, control
//!   characters written as escapes.
//!
//! Pure functions: nothing here touches the disk.

use sha2::{Digest, Sha256};

/// The longest file name (one path component) Linux file systems take, in bytes.
pub const NAME_MAX: usize = 255;

/// An extension longer than this (in bytes, with its dot) is not kept when
/// a name is shortened: it is most likely not an extension.
const MAX_KEPT_EXTENSION: usize = 16;

/// The first control character in `name` (0x00–0x1F, 0x7F), if any.
#[must_use]
pub fn unsafe_character(name: &str) -> Option<char> {
    name.chars().find(|&c| c.is_ascii_control())
}

/// `name` with control characters written as escapes (`\n`, `\t`, `\x7f`),
/// for reports and logs: the store's [`ferry_store::escape_control`], the
/// one escaping every part of Ferry uses.
#[must_use]
pub fn printable(name: &str) -> String {
    ferry_store::escape_control(name).into_owned()
}

/// A name Ferry may create for `name`: control characters replaced by `_`,
/// then shortened to [`NAME_MAX`] bytes by [`shortened`]. The same input
/// always gives the same output.
#[must_use]
pub fn file_name_that_fits(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_ascii_control() { '_' } else { c })
        .collect();
    if cleaned == name {
        shortened(name, NAME_MAX)
    } else {
        // Two names that differ only in their control characters must not
        // become one: the hash is of the original.
        with_hash(&cleaned, name, NAME_MAX.min(cleaned.len() + HASH_LEN))
    }
}

/// `name` when it has at most `max_bytes` bytes; else its beginning, `~`,
/// eight hex digits of the SHA-256 of the whole name, and its extension.
#[must_use]
pub fn shortened(name: &str, max_bytes: usize) -> String {
    if name.len() <= max_bytes {
        name.to_owned()
    } else {
        with_hash(name, name, max_bytes)
    }
}

/// `~` and eight hex digits.
const HASH_LEN: usize = 9;

/// `shown`'s beginning, `~<hash of hashed>` and `shown`'s extension, in at
/// most `max_bytes` bytes.
fn with_hash(shown: &str, hashed: &str, max_bytes: usize) -> String {
    let extension = match shown.rfind('.') {
        Some(dot) if dot > 0 && shown.len() - dot <= MAX_KEPT_EXTENSION => &shown[dot..],
        _ => "",
    };
    let stem = &shown[..shown.len() - extension.len()];
    let digest = Sha256::digest(hashed.as_bytes());
    let hash = format!(
        "~{:02x}{:02x}{:02x}{:02x}",
        digest[0], digest[1], digest[2], digest[3]
    );
    let room = max_bytes.saturating_sub(extension.len() + hash.len());
    let mut cut = room.min(stem.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{hash}{extension}", &stem[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_found_and_escaped() {
        assert_eq!(unsafe_character("roster.csv\nferry.db"), Some('\n'));
        assert_eq!(unsafe_character("a\x7fb.csv"), Some('\x7f'));
        assert_eq!(unsafe_character("a\u{0}b"), Some('\u{0}'));
        assert_eq!(unsafe_character("Núñez – 2026 (final).csv"), None);
        assert_eq!(
            printable("roster.csv\nferry.db\t\x1b\\"),
            "roster.csv\\nferry.db\\t\\x1b\\\\"
        );
    }

    #[test]
    fn short_names_are_kept_and_long_ones_fit_with_their_extension() {
        assert_eq!(file_name_that_fits("students.csv"), "students.csv");
        let long = format!("{}.csv", "s".repeat(300));
        let fitted = file_name_that_fits(&long);
        assert_eq!(fitted.len(), NAME_MAX);
        assert!(fitted.ends_with(".csv"), "{fitted}");
        assert!(fitted.starts_with("sss"), "{fitted}");
        assert_eq!(fitted, file_name_that_fits(&long), "stable");
        let other = file_name_that_fits(&format!("{}x.csv", "s".repeat(300)));
        assert_ne!(fitted, other, "two long names stay apart");

        // Multi-byte characters are never cut in half.
        let accented = "é".repeat(200);
        let fitted = shortened(&accented, 100);
        assert!(fitted.len() <= 100);
        assert!(fitted.starts_with("éé"));

        // A "extension" that is really part of the name is not kept.
        let dotted = format!("a.{}", "b".repeat(300));
        let fitted = file_name_that_fits(&dotted);
        assert!(fitted.len() <= NAME_MAX);
        assert!(fitted.starts_with("a.bbb"), "{fitted}");
    }

    #[test]
    fn control_characters_become_underscores_with_a_hash() {
        let newline = file_name_that_fits("roster.csv\nferry.db");
        let tab = file_name_that_fits("roster.csv\tferry.db");
        assert!(newline.starts_with("roster.csv_ferry~"), "{newline}");
        assert!(newline.ends_with(".db"), "{newline}");
        assert_ne!(newline, tab);
        assert!(unsafe_character(&newline).is_none());
        let long = format!("{}\n.csv", "x".repeat(300));
        assert!(file_name_that_fits(&long).len() <= NAME_MAX);
    }
}
