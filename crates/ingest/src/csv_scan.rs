//! The streaming CSV scanner: one pass over the bytes, counting rows and
//! columns, finding quoting errors and empty required values, and keeping only
//! the header.
//!
//! It is a small RFC 4180 state machine rather than the `csv` crate because
//! `csv` (like most readers) silently accepts what a district needs to hear
//! about: a quote that never closes, text after a closing quote, a stray quote
//! inside a value. It works on raw bytes (every supported character set keeps
//! the delimiter, quote and line ends at their ASCII values), skips runs of
//! ordinary bytes with a lookup table, copies nothing but header bytes, and
//! never allocates per row, so memory stays flat whatever the file's size.
//!
//! Line numbers are physical lines as a text editor shows them: LF, CRLF and a
//! lone CR each end one line, including inside quoted values. A row is
//! reported on the line it starts on.

use crate::delimiter::Delimiter;
use crate::problem::{ProblemKind, ProblemLog, thousands};

/// The most header bytes kept (the header line is also limited to this size
/// before scanning starts).
pub(crate) const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The most header names kept. Every column costs memory beyond its bytes
/// (its name's place in three lists), so a first line of 64 KiB of
/// delimiters, 65,536 empty columns, would hold megabytes; a roster has tens
/// of columns. Columns past this are counted, not named.
pub(crate) const MAX_HEADER_COLUMNS: usize = 2048;

/// A quoted value running over more lines than this is reported: multi-line
/// addresses take two or three, a stray quote swallows many.
const LONG_QUOTED_VALUE_LINES: u64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a value (just after a delimiter or line end).
    FieldStart,
    /// Inside a value that did not start with a quote.
    Unquoted,
    /// Inside a quoted value.
    Quoted,
    /// Just after a quote inside a quoted value: a second quote is an escaped
    /// quote, a delimiter or line end closes the value.
    QuoteInQuoted,
}

/// Columns that need a value in every row, and who says so.
#[derive(Debug, Clone, Default)]
pub(crate) struct ValueRequirement {
    /// Column names, compared case-insensitively after trimming.
    pub(crate) columns: Vec<String>,
    /// Who requires them, for the message ("OneRoster 1.1").
    pub(crate) required_by: String,
}

pub(crate) struct CsvScanner {
    delimiter: Delimiter,
    delimiter_byte: u8,
    unquoted_stops: StopBytes,
    quoted_stops: StopBytes,
    state: State,
    /// The line the next byte is on.
    line: u64,
    /// The line the current row started on.
    row_line: u64,
    field_index: usize,
    field_has_content: bool,
    field_quoted: bool,
    quote_line: u64,
    /// The previous chunk ended in CR: an LF at the start of the next one
    /// belongs to it.
    pending_cr: bool,
    /// The last byte seen was a line end (so the last line is `line - 1`).
    ended_with_line_end: bool,
    header_done: bool,
    header_line: u64,
    header_fields: Vec<Vec<u8>>,
    /// The header has more than [`MAX_HEADER_COLUMNS`] columns.
    header_too_wide: bool,
    header_current: Vec<u8>,
    header_bytes: usize,
    expected_columns: usize,
    rows: u64,
    blank_lines: u64,
    value_requirement: ValueRequirement,
    /// Per column of the header: the required column's name, when it needs a value.
    value_required: Vec<Option<String>>,
    checks_values: bool,
}

impl CsvScanner {
    /// A scanner starting at `first_line` (after any lines already skipped).
    pub(crate) fn new(
        delimiter: Delimiter,
        value_requirement: ValueRequirement,
        first_line: u64,
    ) -> Self {
        let delimiter_byte = delimiter.byte();
        let unquoted_stops = StopBytes::new([delimiter_byte, b'"', b'\n', b'\r']);
        let quoted_stops = StopBytes::new([b'"', b'"', b'\n', b'\r']);
        Self {
            delimiter,
            delimiter_byte,
            unquoted_stops,
            quoted_stops,
            state: State::FieldStart,
            line: first_line,
            row_line: first_line,
            field_index: 0,
            field_has_content: false,
            field_quoted: false,
            quote_line: first_line,
            pending_cr: false,
            ended_with_line_end: false,
            header_done: false,
            header_line: first_line,
            header_fields: Vec::new(),
            header_too_wide: false,
            header_current: Vec::new(),
            header_bytes: 0,
            expected_columns: 0,
            rows: 0,
            blank_lines: 0,
            value_requirement,
            value_required: Vec::new(),
            checks_values: false,
        }
    }

    /// The line the next byte will be on.
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    /// Whether the last chunk ended in CR (its LF may open the next chunk).
    pub(crate) fn pending_cr(&self) -> bool {
        self.pending_cr
    }

    pub(crate) fn header_found(&self) -> bool {
        self.header_done
    }

    pub(crate) fn header_line(&self) -> u64 {
        self.header_line
    }

    /// The header's raw fields (undecoded), once found: the first
    /// [`MAX_HEADER_COLUMNS`] of them.
    pub(crate) fn header_fields(&self) -> &[Vec<u8>] {
        &self.header_fields
    }

    /// The header's columns, once found, all counted (see [`Self::header_too_wide`]).
    pub(crate) fn header_columns(&self) -> usize {
        self.expected_columns
    }

    /// Whether the header has more columns than [`MAX_HEADER_COLUMNS`], so
    /// only the first ones were kept.
    pub(crate) fn header_too_wide(&self) -> bool {
        self.header_too_wide
    }

    /// Data rows (not the header, not blank lines).
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    pub(crate) fn blank_lines(&self) -> u64 {
        self.blank_lines
    }

    /// Scans the next chunk.
    pub(crate) fn scan(&mut self, chunk: &[u8], problems: &mut ProblemLog) {
        let end = chunk.len();
        let mut index = 0;
        if self.pending_cr {
            self.pending_cr = false;
            if chunk.first() == Some(&b'\n') {
                index = 1;
                // The LF of a CRLF inside a quoted header name is part of it.
                if self.state == State::Quoted && !self.header_done {
                    self.capture_header(b"\n");
                }
            }
        }
        while index < end {
            match self.state {
                State::FieldStart | State::Unquoted => {
                    let start = index;
                    index = self.unquoted_stops.skip(chunk, index);
                    if index > start {
                        self.field_has_content = true;
                        self.state = State::Unquoted;
                        if !self.header_done {
                            self.capture_header(&chunk[start..index]);
                        }
                    }
                    if index == end {
                        break;
                    }
                    let byte = chunk[index];
                    if byte == self.delimiter_byte {
                        self.end_field(problems);
                        index += 1;
                    } else if byte == b'"' {
                        if self.state == State::FieldStart {
                            self.state = State::Quoted;
                            self.field_quoted = true;
                            self.quote_line = self.line;
                        } else {
                            self.stray_quote(problems);
                            if !self.header_done {
                                self.capture_header(b"\"");
                            }
                        }
                        index += 1;
                    } else {
                        self.end_row(problems);
                        index = self.consume_line_end(chunk, index);
                        self.row_line = self.line;
                    }
                }
                State::Quoted => {
                    let start = index;
                    index = self.quoted_stops.skip(chunk, index);
                    if index > start {
                        self.field_has_content = true;
                        if !self.header_done {
                            self.capture_header(&chunk[start..index]);
                        }
                    }
                    if index == end {
                        break;
                    }
                    if chunk[index] == b'"' {
                        self.state = State::QuoteInQuoted;
                        index += 1;
                    } else {
                        self.field_has_content = true;
                        let after = self.consume_line_end(chunk, index);
                        if !self.header_done {
                            self.capture_header(&chunk[index..after]);
                        }
                        index = after;
                    }
                }
                State::QuoteInQuoted => {
                    let byte = chunk[index];
                    if byte == b'"' {
                        self.field_has_content = true;
                        if !self.header_done {
                            self.capture_header(b"\"");
                        }
                        self.state = State::Quoted;
                        index += 1;
                    } else if byte == self.delimiter_byte {
                        self.end_field(problems);
                        index += 1;
                    } else if byte == b'\n' || byte == b'\r' {
                        self.end_row(problems);
                        index = self.consume_line_end(chunk, index);
                        self.row_line = self.line;
                    } else {
                        self.text_after_closing_quote(problems);
                        // Read on as an ordinary value, as other readers do.
                        self.state = State::Unquoted;
                    }
                }
            }
        }
        if let Some(&last) = chunk.last() {
            self.ended_with_line_end = last == b'\n' || last == b'\r';
        }
    }

    /// Ends the file: closes the last row and reports a quote left open.
    pub(crate) fn finish(&mut self, problems: &mut ProblemLog) {
        self.pending_cr = false;
        match self.state {
            State::Quoted => {
                let quote_line = self.quote_line;
                let last_line = self.line - u64::from(self.ended_with_line_end);
                problems.add(ProblemKind::UnterminatedQuote, Some(quote_line), || {
                    (
                        format!(
                            "a double quote (\") opens a value on this line and is never closed, so everything after it, to the end of the file (line {}), was read as one value",
                            thousands(last_line)
                        ),
                        "Find the unmatched \" on this line: close it, or write it twice (\"\") if it is part of the value, then export and upload the file again.".into(),
                    )
                });
                self.end_row(problems);
            }
            State::FieldStart if self.field_index == 0 && !self.field_has_content => {}
            _ => self.end_row(problems),
        }
    }

    /// Steps over the line end at `index` (LF, CR or CRLF), counting one line.
    fn consume_line_end(&mut self, chunk: &[u8], index: usize) -> usize {
        self.line += 1;
        if chunk[index] == b'\n' {
            return index + 1;
        }
        match chunk.get(index + 1) {
            Some(b'\n') => index + 2,
            Some(_) => index + 1,
            None => {
                self.pending_cr = true;
                index + 1
            }
        }
    }

    fn capture_header(&mut self, bytes: &[u8]) {
        let room = MAX_HEADER_BYTES.saturating_sub(self.header_bytes);
        let taken = bytes.len().min(room);
        self.header_current.extend_from_slice(&bytes[..taken]);
        self.header_bytes += taken;
    }

    #[inline(always)]
    fn end_field(&mut self, problems: &mut ProblemLog) {
        if !self.header_done || (self.checks_values && !self.field_has_content) || self.field_quoted
        {
            self.end_field_checks(problems);
        }
        self.field_index += 1;
        self.field_has_content = false;
        self.field_quoted = false;
        self.state = State::FieldStart;
    }

    /// The part of ending a field that only some fields need: keeping header
    /// names, required values, and long quoted values.
    #[inline(never)]
    fn end_field_checks(&mut self, problems: &mut ProblemLog) {
        if !self.header_done {
            let field = std::mem::take(&mut self.header_current);
            match self.header_fields.len() < MAX_HEADER_COLUMNS {
                true => self.header_fields.push(field),
                false => self.header_too_wide = true,
            }
        } else if self.checks_values
            && !self.field_has_content
            && let Some(Some(column)) = self.value_required.get(self.field_index)
        {
            let required_by = &self.value_requirement.required_by;
            problems.add(ProblemKind::MissingValue, Some(self.row_line), || {
                (
                    format!("the {column} value is empty; {required_by} requires one in every row"),
                    format!(
                        "Fill in {column} for this record in the student information system, then export and upload the file again."
                    ),
                )
            });
        }
        if self.field_quoted && self.line - self.quote_line >= LONG_QUOTED_VALUE_LINES {
            let (start, lines, last) =
                (self.quote_line, self.line - self.quote_line + 1, self.line);
            problems.add(ProblemKind::LongQuotedField, Some(start), || {
                (
                    format!(
                        "a quoted value starts on this line and runs over {} lines, to line {}; this is usually a stray double quote",
                        thousands(lines),
                        thousands(last)
                    ),
                    "Check this line for a \" that is not closed or not written twice (\"\").".into(),
                )
            });
        }
    }

    fn end_row(&mut self, problems: &mut ProblemLog) {
        if self.field_index == 0 && !self.field_has_content && !self.field_quoted {
            self.blank_lines += 1;
            problems.add(ProblemKind::BlankLine, Some(self.row_line), || {
                (
                    "the line is empty; it was skipped".into(),
                    "Remove empty lines from the export (they often appear when a file is edited by hand).".into(),
                )
            });
            self.state = State::FieldStart;
            return;
        }
        self.end_field(problems);
        let columns = self.field_index;
        self.field_index = 0;
        if !self.header_done {
            self.finish_header(columns);
            return;
        }
        self.rows += 1;
        if columns != self.expected_columns {
            let (expected, header_line, delimiter) =
                (self.expected_columns, self.header_line, self.delimiter);
            problems.add(ProblemKind::ColumnCount, Some(self.row_line), || {
                (
                    format!(
                        "this row has {columns} column{}; the header (line {header_line}) has {expected}",
                        if columns == 1 { "" } else { "s" }
                    ),
                    format!(
                        "Check the row for a missing or extra {name}, or for a value containing a {name} that is not in double quotes.",
                        name = delimiter.name()
                    ),
                )
            });
        }
    }

    fn finish_header(&mut self, columns: usize) {
        self.header_done = true;
        self.header_line = self.row_line;
        self.expected_columns = columns;
        self.header_current = Vec::new();
        let wanted: Vec<String> = self
            .value_requirement
            .columns
            .iter()
            .map(|name| name.trim().to_lowercase())
            .collect();
        self.value_required = self
            .header_fields
            .iter()
            .map(|field| {
                let name = String::from_utf8_lossy(field.trim_ascii()).to_lowercase();
                wanted
                    .iter()
                    .position(|wanted| *wanted == name)
                    .map(|at| self.value_requirement.columns[at].clone())
            })
            .collect();
        self.checks_values = self.value_required.iter().any(Option::is_some);
    }

    fn stray_quote(&mut self, problems: &mut ProblemLog) {
        problems.add(ProblemKind::QuoteInUnquotedField, Some(self.line), || {
            (
                "a double quote (\") appears inside a value that does not start with one; it was read as part of the value".into(),
                "If the value should contain a quote, put the whole value in double quotes and write the quote twice, e.g. \"5'10\"\"\"; spreadsheet programs do this when they save as CSV.".into(),
            )
        });
    }

    fn text_after_closing_quote(&mut self, problems: &mut ProblemLog) {
        problems.add(ProblemKind::TextAfterClosingQuote, Some(self.line), || {
            (
                "text follows the closing double quote of a quoted value (like \"Smith\"Jr), so it is unclear where the value ends".into(),
                "Put the whole value in double quotes and write any quote inside it twice, e.g. \"Smith \"\"Jr\"\"\", then export and upload the file again.".into(),
            )
        });
    }
}

/// The bytes that end a run of ordinary bytes in one state, as a lookup table
/// and as each byte repeated over a word.
struct StopBytes {
    table: [bool; 256],
    repeated: [u64; 4],
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

impl StopBytes {
    fn new(bytes: [u8; 4]) -> Self {
        let mut table = [false; 256];
        for byte in bytes {
            table[usize::from(byte)] = true;
        }
        Self {
            table,
            repeated: bytes.map(|byte| ONES * u64::from(byte)),
        }
    }

    /// The index of the first stop byte at or after `index` (`bytes.len()`
    /// if none), eight bytes at a time: a byte equal to a stop byte is a zero
    /// byte of the word XOR that byte repeated, and the classic "has a zero
    /// byte" test finds the first such byte exactly.
    #[inline(always)]
    fn skip(&self, bytes: &[u8], mut index: usize) -> usize {
        let zero_bytes = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
        let [a, b, c, d] = self.repeated;
        while let Some(eight) = bytes.get(index..index + 8) {
            let word = u64::from_le_bytes(eight.try_into().unwrap_or_default());
            let found = zero_bytes(word ^ a)
                | zero_bytes(word ^ b)
                | zero_bytes(word ^ c)
                | zero_bytes(word ^ d);
            if found != 0 {
                return index + (found.trailing_zeros() / 8) as usize;
            }
            index += 8;
        }
        while index < bytes.len() && !self.table[usize::from(bytes[index])] {
            index += 1;
        }
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::Problem;

    fn scan_in_chunks(
        input: &[u8],
        chunk_size: usize,
        required: &[&str],
    ) -> (CsvScanner, Vec<Problem>) {
        let mut scanner = CsvScanner::new(
            Delimiter::Comma,
            ValueRequirement {
                columns: required.iter().map(|s| s.to_string()).collect(),
                required_by: "the test".into(),
            },
            1,
        );
        let mut log = ProblemLog::default();
        for chunk in input.chunks(chunk_size.max(1)) {
            scanner.scan(chunk, &mut log);
        }
        scanner.finish(&mut log);
        (scanner, log.into_problems())
    }

    fn lines_of(problems: &[Problem], kind: ProblemKind) -> Vec<u64> {
        problems
            .iter()
            .filter(|problem| problem.kind == kind)
            .filter_map(|problem| problem.line)
            .collect()
    }

    #[test]
    fn counts_rows_and_columns_in_any_chunking() {
        let input = b"id,name,note\r\n1,\"Smith, J\",\"said \"\"hi\"\"\"\r\n2,Lee,\"two\r\nlines\"\r\n3,O'Neil,\r\n";
        for chunk_size in 1..input.len() {
            let (scanner, problems) = scan_in_chunks(input, chunk_size, &[]);
            assert_eq!(scanner.rows(), 3, "chunk size {chunk_size}");
            assert!(problems.is_empty(), "chunk size {chunk_size}: {problems:?}");
            assert_eq!(
                scanner.header_fields(),
                [b"id".to_vec(), b"name".to_vec(), b"note".to_vec()]
            );
            assert_eq!(scanner.line(), 6, "chunk size {chunk_size}");
        }
    }

    #[test]
    fn ragged_rows_are_reported_on_the_line_they_start() {
        let input = b"a,b,c\n1,2,3\n1,2\n\"x\ny\",2,3,4\n1,2,3\n";
        let (scanner, problems) = scan_in_chunks(input, 4, &[]);
        assert_eq!(scanner.rows(), 4);
        assert_eq!(lines_of(&problems, ProblemKind::ColumnCount), [3, 4]);
        assert!(
            problems[0]
                .message
                .contains("2 columns; the header (line 1) has 3")
        );
    }

    #[test]
    fn quoting_errors() {
        let input = b"a,b\n1,ab\"c\n\"x\"y,2\n3,\"open\n4,5\n";
        let (_, problems) = scan_in_chunks(input, 3, &[]);
        assert_eq!(lines_of(&problems, ProblemKind::QuoteInUnquotedField), [2]);
        assert_eq!(lines_of(&problems, ProblemKind::TextAfterClosingQuote), [3]);
        assert_eq!(lines_of(&problems, ProblemKind::UnterminatedQuote), [4]);
    }

    #[test]
    fn lone_cr_line_ends() {
        let (scanner, problems) = scan_in_chunks(b"a,b\r1,2\r3\r", 2, &[]);
        assert_eq!(scanner.rows(), 2);
        assert_eq!(lines_of(&problems, ProblemKind::ColumnCount), [3]);
    }

    #[test]
    fn blank_lines_are_skipped_and_reported() {
        let (scanner, problems) = scan_in_chunks(b"\na,b\n1,2\n\n3,4\n\r\n", 5, &[]);
        assert_eq!(scanner.rows(), 2);
        assert_eq!(scanner.header_line(), 2);
        assert_eq!(lines_of(&problems, ProblemKind::BlankLine), [1, 4, 6]);
    }

    #[test]
    fn empty_required_values() {
        let input = b"SourcedId , name\n1,x\n,y\n\"\",z\n";
        let (_, problems) = scan_in_chunks(input, 7, &["sourcedId"]);
        assert_eq!(lines_of(&problems, ProblemKind::MissingValue), [3, 4]);
        assert!(problems[0].message.contains("sourcedId value is empty"));
    }

    #[test]
    fn long_quoted_value() {
        let mut input = b"a,b\n1,\"".to_vec();
        input.extend(std::iter::repeat_n(b'\n', 12));
        input.extend(b"\"\n");
        let (_, problems) = scan_in_chunks(&input, 5, &[]);
        assert_eq!(lines_of(&problems, ProblemKind::LongQuotedField), [2]);
    }

    #[test]
    fn skipping_finds_the_first_stop_byte() {
        let stops = StopBytes::new([b',', b'"', b'\n', b'\r']);
        for text in [
            "abcdefghijklmnop,q",
            "abc,defghijklmnopq",
            "abcdefgh\"",
            "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\r\n",
            "abcdefghijk",
            "",
        ] {
            let bytes = text.as_bytes();
            for start in 0..=bytes.len() {
                let expected = (start..bytes.len())
                    .find(|&at| b",\"\n\r".contains(&bytes[at]))
                    .unwrap_or(bytes.len());
                assert_eq!(stops.skip(bytes, start), expected, "{text:?} from {start}");
            }
        }
    }

    #[test]
    fn no_final_line_end() {
        let (scanner, problems) = scan_in_chunks(b"a,b\n1,2", 3, &[]);
        assert_eq!(scanner.rows(), 1);
        assert!(problems.is_empty());
        let (scanner, _) = scan_in_chunks(b"a,b\n1,\"2\"", 3, &[]);
        assert_eq!(scanner.rows(), 1);
    }
}
