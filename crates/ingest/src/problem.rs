//! Problems found in an uploaded file or set: what kind, how serious, on which
//! line, what it means in plain English and what the district should do.
//!
//! Every finding a district sees goes through [`Problem`], so the report, the
//! JSON for the hand-off and later the web page all say the same thing. A bad
//! file can have millions of bad lines; [`ProblemLog`] lists the first
//! [`MAX_LISTED_PER_KIND`] of each kind and counts the rest, so memory stays
//! bounded however broken the file is; it never builds the text of a problem
//! that will not be listed.

use std::collections::BTreeMap;

use serde::Serialize;

/// How many problems of one kind are listed with their line numbers; the rest
/// are counted and summarised in one extra problem.
pub const MAX_LISTED_PER_KIND: u64 = 20;

/// Whether a problem stops the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The file fails the checks and is not passed on.
    Error,
    /// Reported, but the file still passes.
    Warning,
}

/// What went wrong, as a stable code for machines (`snake_case` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProblemKind {
    /// Zero bytes, or only a byte-order mark.
    EmptyFile,
    /// A header line and no data rows (the roster guard holds such a file).
    HeaderOnly,
    /// Larger than the rule's `max_size` or `ingest.max_file_size`.
    TooLarge,
    /// A control character (a line break, a tab…) in the file's name.
    UnsafeName,
    /// UTF-16 (Excel's "Unicode Text"), which the checks do not read.
    Utf16,
    /// A spreadsheet or zip file (xlsx, xls) under a CSV name.
    NotText,
    /// Bytes that are not valid UTF-8 where UTF-8 is required.
    InvalidUtf8,
    /// Bytes above 127 where US-ASCII is required.
    NotAscii,
    /// The rule names one character set and the file looks like another.
    CharsetMismatch,
    /// The first line is too long to be a header, or has too many columns.
    HeaderTooLong,
    /// The header does not contain the delimiter the rule expects.
    DelimiterMismatch,
    /// No delimiter at all in the header: the file has one column.
    SingleColumn,
    /// Required columns missing from the header.
    MissingColumns,
    /// The same column name twice in the header.
    DuplicateColumns,
    /// Columns present but not in the order the profile's specification gives.
    ColumnOrder,
    /// A row with more or fewer columns than the header.
    ColumnCount,
    /// A `"` inside a field that does not start with one.
    QuoteInUnquotedField,
    /// Text right after a closing `"` (e.g. `"Smith"Jr`).
    TextAfterClosingQuote,
    /// A quoted field still open at the end of the file.
    UnterminatedQuote,
    /// A quoted field running over many lines (usually a stray quote).
    LongQuotedField,
    /// An empty line.
    BlankLine,
    /// An empty value in a column the profile requires a value for.
    MissingValue,
    /// A date suffix in the file name that is not a real date.
    BadDateSuffix,
    /// A file name the profile does not know.
    UnknownFileName,
    /// A OneRoster set without manifest.csv.
    MissingManifest,
    /// manifest.csv that cannot be read as a OneRoster manifest.
    BadManifest,
    /// A file the set requires (by manifest or by profile) is not there.
    MissingSetFile,
    /// A file in the set that the manifest does not list, or lists as absent.
    UnlistedSetFile,
}

impl ProblemKind {
    /// How serious problems of this kind are.
    #[must_use]
    pub fn severity(self) -> Severity {
        match self {
            Self::HeaderOnly
            | Self::CharsetMismatch
            | Self::SingleColumn
            | Self::DuplicateColumns
            | Self::ColumnOrder
            | Self::QuoteInUnquotedField
            | Self::LongQuotedField
            | Self::BlankLine
            | Self::UnknownFileName
            | Self::UnlistedSetFile => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

/// One finding, as the district reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Stable code.
    pub kind: ProblemKind,
    /// Error (the file fails) or warning.
    pub severity: Severity,
    /// 1-based line in the file as a text editor counts lines, when the problem
    /// has one (for a row spanning lines, the line it starts on).
    pub line: Option<u64>,
    /// What is wrong, in plain English, without the line number.
    pub message: String,
    /// What the district should do about it.
    pub what_to_do: String,
}

impl Problem {
    /// A problem of `kind` with its kind's severity.
    #[must_use]
    pub fn new(
        kind: ProblemKind,
        line: Option<u64>,
        message: impl Into<String>,
        what_to_do: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            severity: kind.severity(),
            line,
            message: message.into(),
            what_to_do: what_to_do.into(),
        }
    }

    /// True for [`Severity::Error`].
    #[must_use]
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Collects problems, listing the first [`MAX_LISTED_PER_KIND`] of each kind.
#[derive(Debug, Default)]
pub(crate) struct ProblemLog {
    listed: Vec<Problem>,
    totals: BTreeMap<ProblemKind, u64>,
}

impl ProblemLog {
    /// Counts one problem of `kind`; builds and lists it only while fewer than
    /// [`MAX_LISTED_PER_KIND`] of that kind are listed (so a file with millions
    /// of bad rows costs a counter, not millions of strings).
    pub(crate) fn add(
        &mut self,
        kind: ProblemKind,
        line: Option<u64>,
        describe: impl FnOnce() -> (String, String),
    ) {
        let total = self.totals.entry(kind).or_insert(0);
        *total += 1;
        if *total <= MAX_LISTED_PER_KIND {
            let (message, what_to_do) = describe();
            self.listed
                .push(Problem::new(kind, line, message, what_to_do));
        }
    }

    /// Adds an already built problem under the same cap.
    pub(crate) fn push(&mut self, problem: Problem) {
        let Problem {
            kind,
            line,
            message,
            what_to_do,
            ..
        } = problem;
        self.add(kind, line, || (message, what_to_do));
    }

    /// How many problems of `kind` were found (listed or not).
    pub(crate) fn total(&self, kind: ProblemKind) -> u64 {
        self.totals.get(&kind).copied().unwrap_or(0)
    }

    /// How many errors and warnings were found in all, listed or not.
    pub(crate) fn totals_by_severity(&self) -> (u64, u64) {
        self.totals
            .iter()
            .fold((0, 0), |(errors, warnings), (kind, total)| {
                match kind.severity() {
                    Severity::Error => (errors + total, warnings),
                    Severity::Warning => (errors, warnings + total),
                }
            })
    }

    /// The listed problems in line order (problems without a line first;
    /// on one line, in [`ProblemKind`] order, so the report never depends on
    /// where a read ended), followed by one summary per kind that had more
    /// than could be listed.
    pub(crate) fn into_problems(self) -> Vec<Problem> {
        let Self { mut listed, totals } = self;
        listed.sort_by_key(|problem| (problem.line.unwrap_or(0), problem.kind));
        for (kind, total) in totals {
            if total > MAX_LISTED_PER_KIND {
                let not_listed = total - MAX_LISTED_PER_KIND;
                let what_to_do = listed
                    .iter()
                    .rev()
                    .find(|problem| problem.kind == kind)
                    .map(|problem| problem.what_to_do.clone())
                    .unwrap_or_default();
                listed.push(Problem::new(
                    kind,
                    None,
                    format!(
                        "…and {} more like this, {} in all; only the first {MAX_LISTED_PER_KIND} are listed with their line numbers",
                        thousands(not_listed),
                        thousands(total)
                    ),
                    what_to_do,
                ));
            }
        }
        listed
    }
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_the_first_twenty_of_a_kind_and_counts_the_rest() {
        let mut log = ProblemLog::default();
        for line in 1..=25 {
            log.add(ProblemKind::ColumnCount, Some(line), || {
                ("bad".into(), "fix".into())
            });
        }
        log.add(ProblemKind::BlankLine, Some(3), || {
            ("blank".into(), "".into())
        });
        assert_eq!(log.total(ProblemKind::ColumnCount), 25);
        let problems = log.into_problems();
        assert_eq!(problems.len(), 22);
        let summary = problems.last().unwrap();
        assert_eq!(summary.line, None);
        assert!(summary.message.contains("5 more"), "{}", summary.message);
        assert!(summary.message.contains("25 in all"));
        assert_eq!(summary.what_to_do, "fix");
        // sorted by line: the blank line 3 sits between rows 3 and 4
        assert_eq!(problems[3].kind, ProblemKind::BlankLine);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn severities() {
        assert_eq!(ProblemKind::ColumnCount.severity(), Severity::Error);
        assert_eq!(ProblemKind::HeaderOnly.severity(), Severity::Warning);
    }
}
