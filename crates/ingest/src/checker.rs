//! One file's checks, run in a single streaming pass, and the [`FileReport`]
//! they produce.
//!
//! [`FileChecker`] is push-based (`feed` chunks, then `finish`), so the job
//! runner can hash and check a file in the same read; [`check_reader`] drives
//! it from any `std::io::Read` with one fixed buffer. Memory is bounded by the
//! read buffer, the first line (at most 64 KiB, kept until the delimiter is
//! known), the character-set events of one 4 KiB piece (at most 64 KiB) and
//! the listed problems (at most 20 per kind); the file itself is never held.
//!
//! The order of work: the first line is collected to recognise files that are
//! not CSV at all (UTF-16, a renamed spreadsheet), strip a UTF-8 byte-order
//! mark and detect the delimiter; then every chunk goes to the character-set
//! inspector and the CSV scanner; at the end the character set is decided, the
//! header decoded in it and checked against the required columns.

use std::collections::HashMap;
use std::io::Read;

use serde::Serialize;
use thiserror::Error;

use crate::charset::{Charset, CharsetEvent, CharsetInspector, CharsetRule, UTF8_BOM};
use crate::csv_scan::{CsvScanner, MAX_HEADER_BYTES, MAX_HEADER_COLUMNS, ValueRequirement};
use crate::delimiter::{Delimiter, DelimiterRule, count_candidates, detect_delimiter};
use crate::file_name::DateSuffix;
use crate::problem::{Problem, ProblemKind, ProblemLog, thousands};
use crate::profile::Profile;
use crate::rules::CheckPlan;

/// Bytes read at a time by [`check_reader`].
pub const READ_BUFFER_BYTES: usize = 256 * 1024;

/// Bytes given to the character-set inspector and the scanner at a time,
/// whatever the size of a fed chunk: under the US-ASCII rule the inspector
/// reports every byte over 127, so this bounds the events held at once to
/// 64 KiB (16 bytes each).
const PIECE_BYTES: usize = 4 * 1024;

/// The checks could not run to the end.
#[derive(Debug, Error)]
pub enum CheckError {
    /// Reading the file failed; nothing about the file is known.
    #[error("could not read the file to check it: {0}")]
    Read(#[from] std::io::Error),
}

/// What the checks found in one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The name as uploaded.
    pub file_name: String,
    /// The name with the date suffix removed (`students.csv`).
    pub logical_name: String,
    /// The date suffix, when the name has a valid one.
    pub date_suffix: Option<DateSuffix>,
    /// The profile checked against.
    pub profile: Profile,
    /// The pattern of the rule that applied (`*` for the default rule).
    pub rule_pattern: String,
    /// Size in bytes.
    pub size: u64,
    /// The character set the file was read in; `None` when the file is empty
    /// or not text.
    pub encoding: Option<Charset>,
    /// Whether `encoding` was detected (rule `auto`) rather than required.
    pub encoding_detected: bool,
    /// Why it was detected so, when that needs saying (Windows-1252).
    pub encoding_note: Option<String>,
    /// The delimiter the file was read with; `None` when it was not read.
    pub delimiter: Option<Delimiter>,
    /// Whether `delimiter` was detected from the header (rule `auto`).
    pub delimiter_detected: bool,
    /// The header's column names, decoded and trimmed.
    pub header: Vec<String>,
    /// The line the header is on (1 unless blank lines come first).
    pub header_line: Option<u64>,
    /// Number of columns in the header.
    pub columns: usize,
    /// Data rows: not the header, not blank lines.
    pub rows: u64,
    /// Errors found in all (listed or not); the file passes when this is 0.
    pub errors: u64,
    /// Warnings found in all (listed or not).
    pub warnings: u64,
    /// Every problem, in line order, at most 20 per kind plus a summary.
    pub problems: Vec<Problem>,
    /// The file was refused before a byte of it was read
    /// ([`FileReport::refused_unread`]); such a file is never handed over.
    #[serde(skip)]
    pub not_read: bool,
}

impl FileReport {
    /// The report of a file refused before a byte of it was read — over
    /// its size limit ([`too_large`]), or a name with a control character —
    /// built from the plan and the size alone.
    #[must_use]
    pub fn refused_unread(plan: &CheckPlan, size: u64, problem: Problem) -> Self {
        let (errors, warnings) = if problem.is_error() { (1, 0) } else { (0, 1) };
        FileReport {
            file_name: plan.file_name.name.clone(),
            logical_name: plan.file_name.logical_name.clone(),
            date_suffix: plan.file_name.date_suffix,
            profile: plan.profile,
            rule_pattern: plan.rule_pattern.clone(),
            size,
            encoding: None,
            encoding_detected: plan.charset == CharsetRule::Auto,
            encoding_note: None,
            delimiter: None,
            delimiter_detected: plan.delimiter == DelimiterRule::Auto,
            header: Vec::new(),
            header_line: None,
            columns: 0,
            rows: 0,
            errors,
            warnings,
            problems: vec![problem],
            not_read: true,
        }
    }

    /// True when there is no error.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.errors == 0
    }

    /// Whether the file has a header and no data rows.
    #[must_use]
    pub fn is_header_only(&self) -> bool {
        self.header_line.is_some() && self.rows == 0
    }
}

/// Runs all of `plan`'s checks over `reader`, reading [`READ_BUFFER_BYTES`] at
/// a time.
///
/// # Errors
/// [`CheckError::Read`] when reading fails.
pub fn check_reader<R: Read>(mut reader: R, plan: &CheckPlan) -> Result<FileReport, CheckError> {
    let mut checker = FileChecker::new(plan);
    let mut buffer = vec![0u8; READ_BUFFER_BYTES];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => checker.feed(&buffer[..read]),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(CheckError::Read(error)),
        }
    }
    Ok(checker.finish())
}

enum Phase {
    /// Collecting the first line: `scanned` bytes looked at so far, whether
    /// that ends inside quotes.
    FirstLine {
        bytes: Vec<u8>,
        scanned: usize,
        in_quotes: bool,
    },
    Scanning(Box<CsvScanner>),
    /// Not a CSV file (UTF-16, a spreadsheet, no line end in 64 KiB): the rest
    /// is only counted.
    Abandoned,
}

/// The streaming checks of one file: [`Self::feed`] its bytes in order, then
/// [`Self::finish`].
pub struct FileChecker {
    plan: CheckPlan,
    size: u64,
    phase: Phase,
    byte_order_mark: bool,
    /// The rule actually applied: a byte-order mark makes `auto` and
    /// `windows-1252` UTF-8.
    effective_charset: CharsetRule,
    inspector: CharsetInspector,
    delimiter: Option<Delimiter>,
    problems: ProblemLog,
    events: Vec<CharsetEvent>,
    first_invalid_utf8_line: Option<u64>,
    first_non_ascii_line: Option<u64>,
    last_reported_charset_line: Option<u64>,
}

impl FileChecker {
    /// Checks for `plan`'s file.
    #[must_use]
    pub fn new(plan: &CheckPlan) -> Self {
        Self {
            plan: plan.clone(),
            size: 0,
            phase: Phase::FirstLine {
                bytes: Vec::new(),
                scanned: 0,
                in_quotes: false,
            },
            byte_order_mark: false,
            effective_charset: plan.charset,
            inspector: CharsetInspector::new(false, false),
            delimiter: None,
            problems: ProblemLog::default(),
            events: Vec::new(),
            first_invalid_utf8_line: None,
            first_non_ascii_line: None,
            last_reported_charset_line: None,
        }
    }

    /// The next bytes of the file.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.size += chunk.len() as u64;
        match &mut self.phase {
            Phase::Abandoned => {}
            Phase::Scanning(_) => self.process(chunk),
            Phase::FirstLine {
                bytes,
                scanned,
                in_quotes,
            } => {
                bytes.extend_from_slice(chunk);
                let complete = first_line_bounds(bytes, scanned, in_quotes).is_some()
                    || bytes.len() >= MAX_HEADER_BYTES;
                if complete {
                    let bytes = std::mem::take(bytes);
                    self.start(&bytes, false);
                }
            }
        }
    }

    /// Ends the file and returns the report.
    #[must_use]
    pub fn finish(mut self) -> FileReport {
        if let Phase::FirstLine { bytes, .. } = &mut self.phase {
            let bytes = std::mem::take(bytes);
            self.start(&bytes, true);
        }
        let mut scanner = match std::mem::replace(&mut self.phase, Phase::Abandoned) {
            Phase::Scanning(scanner) => Some(scanner),
            _ => None,
        };
        if let Some(scanner) = scanner.as_deref_mut() {
            let mut events = std::mem::take(&mut self.events);
            events.clear();
            self.inspector.finish(&mut events);
            self.place_charset_events(&[], &mut events, scanner.line(), false);
            scanner.finish(&mut self.problems);
        }
        self.build_report(scanner.as_deref())
    }

    /// Starts on the collected first line (`at_end`: the file ended before a
    /// line end was found).
    fn start(&mut self, bytes: &[u8], at_end: bool) {
        if bytes.is_empty() {
            self.phase = Phase::Abandoned;
            return;
        }
        if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
            self.abandon_utf16();
            return;
        }
        if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"\xD0\xCF\x11\xE0") {
            self.problems.add(ProblemKind::NotText, None, || {
                (
                    "this is a spreadsheet or zip file (such as .xlsx or .xls), not a CSV text file".into(),
                    "Open the file in Excel and use Save As → \"CSV UTF-8 (Comma delimited)\", then upload the .csv file.".into(),
                )
            });
            self.phase = Phase::Abandoned;
            return;
        }
        self.byte_order_mark = bytes.starts_with(UTF8_BOM);
        let content = if self.byte_order_mark {
            &bytes[UTF8_BOM.len()..]
        } else {
            bytes
        };
        let (mut scanned, mut in_quotes) = (0, false);
        let bounds = first_line_bounds(content, &mut scanned, &mut in_quotes);
        let (line_start, line_end) = match bounds {
            Some(bounds) => bounds,
            None if at_end => (leading_line_ends(content), content.len()),
            None => {
                self.header_too_long();
                return;
            }
        };
        if line_end - line_start > MAX_HEADER_BYTES {
            self.header_too_long();
            return;
        }
        let header_line = &content[line_start..line_end];
        if header_line.contains(&0) {
            self.abandon_utf16();
            return;
        }
        self.effective_charset = match (self.plan.charset, self.byte_order_mark) {
            (CharsetRule::Auto | CharsetRule::Windows1252, true) => CharsetRule::Utf8,
            (rule, _) => rule,
        };
        if self.byte_order_mark {
            match self.plan.charset {
                CharsetRule::Windows1252 => self.problems.add(ProblemKind::CharsetMismatch, Some(1), || {
                    (
                        "the rule for this file says Windows-1252, but the file starts with a UTF-8 byte-order mark; it was read as UTF-8".into(),
                        "Nothing, if the names read correctly in this report; otherwise save the export as Windows-1252 (ANSI) without a byte-order mark.".into(),
                    )
                }),
                CharsetRule::UsAscii => self.problems.add(ProblemKind::NotAscii, Some(1), || {
                    (
                        "the file starts with a UTF-8 byte-order mark; the rule for this file allows only plain US-ASCII".into(),
                        "Save the export as plain ASCII text (in Excel: \"CSV (Comma delimited)\", not \"CSV UTF-8\"), then upload it again.".into(),
                    )
                }),
                _ => {}
            }
        }
        self.inspector = CharsetInspector::new(
            self.effective_charset == CharsetRule::UsAscii,
            self.effective_charset == CharsetRule::Utf8,
        );
        let first_line = 1 + memchr::memchr_iter(b'\n', &content[..line_start]).count() as u64;
        let delimiter = self.choose_delimiter(header_line, first_line);
        self.delimiter = Some(delimiter);
        let value_requirement = ValueRequirement {
            columns: self.plan.required_values.clone(),
            required_by: self.plan.profile.display_name().to_string(),
        };
        // Blank lines before the header are scanned (and reported) too, so the
        // scanner starts at line 1.
        self.phase = Phase::Scanning(Box::new(CsvScanner::new(delimiter, value_requirement, 1)));
        self.process(content);
    }

    fn header_too_long(&mut self) {
        let limit = MAX_HEADER_BYTES / 1024;
        self.problems.add(ProblemKind::HeaderTooLong, Some(1), || {
            (
                format!("the first line is longer than {limit} KiB, so it cannot be a header line; this does not look like a CSV file with a header"),
                "Check that the file is a CSV export with one header line of column names, and that its lines end with line breaks.".into(),
            )
        });
        self.phase = Phase::Abandoned;
    }

    fn header_too_wide(&mut self, columns: usize, line: u64) {
        self.problems.add(ProblemKind::HeaderTooLong, Some(line), || {
            (
                format!(
                    "the header has {} columns, more than the {} a header may have, so only the first {} names were read; this does not look like a roster's header line",
                    thousands(columns as u64),
                    thousands(MAX_HEADER_COLUMNS as u64),
                    thousands(MAX_HEADER_COLUMNS as u64)
                ),
                "Check that the file is the export it should be and that its delimiter is right (a roster has tens of columns, not thousands).".into(),
            )
        });
    }

    fn abandon_utf16(&mut self) {
        self.problems.add(ProblemKind::Utf16, None, || {
            (
                "the file is in UTF-16 (Excel calls it \"Unicode Text\"), or is not a text file at all".into(),
                "Save the export as \"CSV UTF-8 (Comma delimited)\" (or plain CSV), then upload it again.".into(),
            )
        });
        self.phase = Phase::Abandoned;
    }

    fn choose_delimiter(&mut self, header_line: &[u8], line: u64) -> Delimiter {
        let counts = count_candidates(header_line);
        match self.plan.delimiter {
            DelimiterRule::Fixed(required) => {
                let required_count = Delimiter::ALL
                    .iter()
                    .zip(counts)
                    .find(|(delimiter, _)| **delimiter == required)
                    .map_or(0, |(_, count)| count);
                if required_count == 0
                    && let Some(found) = detect_delimiter(header_line)
                {
                    self.problems.add(ProblemKind::DelimiterMismatch, Some(line), || {
                        (
                            format!(
                                "the header has no {} (the delimiter required for this file); it seems to use {} instead",
                                required.name(),
                                found.name()
                            ),
                            format!(
                                "Export the file with {} between the values (ask the vendor if the file should use {}).",
                                required.name(),
                                found.name()
                            ),
                        )
                    });
                }
                required
            }
            DelimiterRule::Auto => match detect_delimiter(header_line) {
                Some(found) => found,
                None => {
                    if !header_line.trim_ascii().is_empty() {
                        self.problems.add(ProblemKind::SingleColumn, Some(line), || {
                            (
                                "the header has no comma, tab, semicolon or pipe, so the file was read as a single column".into(),
                                "If the file should have several columns, export it with a comma between the values.".into(),
                            )
                        });
                    }
                    Delimiter::Comma
                }
            },
        }
    }

    /// Checks a chunk in pieces of at most [`PIECE_BYTES`].
    fn process(&mut self, chunk: &[u8]) {
        for piece in chunk.chunks(PIECE_BYTES) {
            self.process_piece(piece);
        }
    }

    fn process_piece(&mut self, chunk: &[u8]) {
        let Phase::Scanning(scanner) = &mut self.phase else {
            return;
        };
        let base_line = scanner.line();
        let skip_leading_lf = scanner.pending_cr();
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        self.inspector.inspect(chunk, &mut events);
        scanner.scan(chunk, &mut self.problems);
        if !events.is_empty() {
            self.place_charset_events(chunk, &mut events, base_line, skip_leading_lf);
        }
        self.events = events;
    }

    /// Turns the inspector's byte offsets into lines and reports what the rule
    /// forbids (one problem per line).
    fn place_charset_events(
        &mut self,
        chunk: &[u8],
        events: &mut [CharsetEvent],
        base_line: u64,
        skip_leading_lf: bool,
    ) {
        events.sort_by_key(|event| match event {
            CharsetEvent::NonAscii { offset, .. } | CharsetEvent::InvalidUtf8 { offset, .. } => {
                *offset
            }
        });
        let mut position = usize::from(skip_leading_lf && chunk.first() == Some(&b'\n'));
        let mut line = base_line;
        for &event in events.iter() {
            let (offset, byte) = match event {
                CharsetEvent::NonAscii { offset, byte }
                | CharsetEvent::InvalidUtf8 { offset, byte } => (offset, byte),
            };
            let offset = offset.min(chunk.len());
            if offset > position {
                line += count_line_ends(chunk, position, offset);
                position = offset;
            }
            match event {
                CharsetEvent::NonAscii { .. } => {
                    self.first_non_ascii_line.get_or_insert(line);
                    if self.effective_charset == CharsetRule::UsAscii
                        && self.last_reported_charset_line != Some(line)
                    {
                        self.last_reported_charset_line = Some(line);
                        self.problems.add(ProblemKind::NotAscii, Some(line), || {
                            (
                                format!("the line has a character that is not plain US-ASCII (byte 0x{byte:02X}); the rule for this file allows only ASCII"),
                                "Remove accented letters and symbols from the export, or ask the vendor to accept UTF-8 for this file.".into(),
                            )
                        });
                    }
                }
                CharsetEvent::InvalidUtf8 { .. } => {
                    self.first_invalid_utf8_line.get_or_insert(line);
                    if self.effective_charset == CharsetRule::Utf8
                        && self.last_reported_charset_line != Some(line)
                    {
                        self.last_reported_charset_line = Some(line);
                        let because = if self.byte_order_mark {
                            " although the file starts with a UTF-8 byte-order mark; it mixes character sets"
                        } else {
                            "; the file was probably saved as Windows-1252 (\"ANSI\")"
                        };
                        self.problems.add(ProblemKind::InvalidUtf8, Some(line), || {
                            (
                                format!("the line has bytes that are not valid UTF-8 (starting with 0x{byte:02X}){because}"),
                                "Export or save the file as UTF-8 (in Excel: Save As → \"CSV UTF-8 (Comma delimited)\"), then upload it again.".into(),
                            )
                        });
                    }
                }
            }
        }
    }

    fn decide_encoding(&self) -> (Charset, Option<String>) {
        if self.byte_order_mark {
            return (Charset::Utf8WithBom, None);
        }
        if self.inspector.all_ascii() {
            return (Charset::UsAscii, None);
        }
        let valid_utf8 = self.inspector.valid_utf8();
        match self.plan.charset {
            CharsetRule::Windows1252 => (Charset::Windows1252, None),
            CharsetRule::Utf8 => (Charset::Utf8, None),
            CharsetRule::Auto | CharsetRule::UsAscii if valid_utf8 => (Charset::Utf8, None),
            CharsetRule::Auto | CharsetRule::UsAscii => {
                let note = match (
                    self.first_invalid_utf8_line,
                    self.inspector.first_invalid_utf8,
                ) {
                    (Some(line), Some(byte)) => Some(format!(
                        "line {} has byte 0x{byte:02X}, which is not UTF-8",
                        thousands(line)
                    )),
                    _ => None,
                };
                (Charset::Windows1252, note)
            }
        }
    }

    fn build_report(mut self, scanner: Option<&CsvScanner>) -> FileReport {
        let plan = &self.plan;
        for problem in &plan.name_problems {
            self.problems.push(problem.clone());
        }
        if let Some(limit) = plan.max_size
            && self.size > limit
        {
            self.problems.push(too_large(self.size, limit));
        }
        let header_found = scanner.is_some_and(CsvScanner::header_found);
        let (encoding, encoding_note) = if header_found {
            let (charset, note) = self.decide_encoding();
            (Some(charset), note)
        } else {
            (None, None)
        };
        if plan.charset == CharsetRule::Windows1252
            && !self.byte_order_mark
            && !self.inspector.all_ascii()
            && self.inspector.valid_utf8()
        {
            let line = self.first_non_ascii_line;
            self.problems.add(ProblemKind::CharsetMismatch, line, || {
                (
                    "the rule for this file says Windows-1252, but the file looks like UTF-8; accented letters will read wrongly (é as Ã©)".into(),
                    "Save the export as Windows-1252 (\"ANSI\", in Excel: \"CSV (Comma delimited)\"), or ask the vendor to set this file's character set to utf-8 or auto.".into(),
                )
            });
        }
        let mut header = Vec::new();
        let mut header_line = None;
        let mut columns = 0;
        let mut rows = 0;
        if let Some(scanner) = scanner {
            rows = scanner.rows();
            if header_found {
                let charset = encoding.unwrap_or(Charset::Utf8);
                header = scanner
                    .header_fields()
                    .iter()
                    .map(|field| charset.decode(field).trim().to_string())
                    .collect();
                header_line = Some(scanner.header_line());
                columns = scanner.header_columns();
                if scanner.header_too_wide() {
                    self.header_too_wide(columns, scanner.header_line());
                }
                self.check_header(&header, scanner.header_line());
                if rows == 0 {
                    self.problems.add(ProblemKind::HeaderOnly, None, || {
                        (
                            "the file has a header line and no data rows".into(),
                            "If the export was cut short or failed, run it again and upload the complete file. A file without rows is held for review so it cannot empty the roster.".into(),
                        )
                    });
                }
            } else {
                let blank_lines = scanner.blank_lines();
                self.problems.add(ProblemKind::EmptyFile, None, || {
                    (
                        format!(
                            "the file has no header line, only {} empty line{}",
                            thousands(blank_lines),
                            if blank_lines == 1 { "" } else { "s" }
                        ),
                        "Check the export job: it produced an empty file. Run it again and upload the result.".into(),
                    )
                });
            }
        } else if self.problems.total(ProblemKind::Utf16) == 0
            && self.problems.total(ProblemKind::NotText) == 0
            && self.problems.total(ProblemKind::HeaderTooLong) == 0
        {
            let message = if self.size == 0 {
                "the file is empty (0 bytes)".to_string()
            } else {
                "the file holds only a byte-order mark and no text".to_string()
            };
            self.problems.add(ProblemKind::EmptyFile, None, || {
                (
                    message,
                    "Check the export job: it produced an empty file. Run it again and upload the result.".into(),
                )
            });
        }
        let (errors, warnings) = self.problems.totals_by_severity();
        let plan = &self.plan;
        FileReport {
            file_name: plan.file_name.name.clone(),
            logical_name: plan.file_name.logical_name.clone(),
            date_suffix: plan.file_name.date_suffix,
            profile: plan.profile,
            rule_pattern: plan.rule_pattern.clone(),
            size: self.size,
            encoding,
            encoding_detected: plan.charset == CharsetRule::Auto,
            encoding_note,
            delimiter: if header_found { self.delimiter } else { None },
            delimiter_detected: plan.delimiter == DelimiterRule::Auto,
            columns,
            header,
            header_line,
            rows,
            errors,
            warnings,
            problems: self.problems.into_problems(),
            not_read: false,
        }
    }

    fn check_header(&mut self, header: &[String], line: u64) {
        let normalised: Vec<String> = header.iter().map(|name| name.to_lowercase()).collect();
        let missing: Vec<&str> = self
            .plan
            .required_columns
            .iter()
            .filter(|required| !normalised.contains(&required.trim().to_lowercase()))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            let found = header_as_shown(header);
            let profile = self.plan.profile;
            let count = missing.len();
            let list = missing.join(", ");
            self.problems.add(ProblemKind::MissingColumns, Some(line), || {
                (
                    format!(
                        "the header is missing {} required column{}: {list}",
                        if count == 1 { "a" } else { "these" },
                        if count == 1 { "" } else { "s" }
                    ),
                    format!(
                        "Add the missing column{} to the export's header line ({}names are not case-sensitive). The header found was: {found}",
                        if count == 1 { "" } else { "s" },
                        if profile == Profile::Generic {
                            String::new()
                        } else {
                            format!("{profile} requires them; ")
                        }
                    ),
                )
            });
        }
        let mut first_of: HashMap<&str, usize> = HashMap::new();
        for (index, name) in normalised.iter().enumerate() {
            if name.is_empty() {
                continue;
            }
            if let Some(&first) = first_of.get(name.as_str()) {
                let shown = cut_for_message(&header[index]);
                self.problems.add(ProblemKind::DuplicateColumns, Some(line), || {
                    (
                        format!(
                            "the column {shown} appears more than once in the header (columns {} and {})",
                            first + 1,
                            index + 1
                        ),
                        "Remove or rename the repeated column in the export.".into(),
                    )
                });
            } else {
                first_of.insert(name, index);
            }
        }
        if missing.is_empty()
            && let Some(order) = self.plan.column_order
        {
            let positions: Vec<usize> = order
                .iter()
                .filter_map(|column| {
                    normalised
                        .iter()
                        .position(|name| *name == column.to_lowercase())
                })
                .collect();
            if positions.windows(2).any(|pair| pair[0] > pair[1]) {
                let profile = self.plan.profile;
                self.problems.add(ProblemKind::ColumnOrder, Some(line), || {
                    (
                        format!(
                            "the columns are not in the order {profile} gives: {}",
                            order.join(", ")
                        ),
                        format!("Export the columns in the order {profile} gives; some importers read columns by position."),
                    )
                });
            }
        }
    }
}

/// Where the first non-blank line of `bytes` starts and ends (before its line
/// end), looking for the end outside double quotes. `scanned` and `in_quotes`
/// carry progress between calls so a header arriving in small pieces is not
/// rescanned.
fn first_line_bounds(
    bytes: &[u8],
    scanned: &mut usize,
    in_quotes: &mut bool,
) -> Option<(usize, usize)> {
    let start = leading_line_ends(bytes);
    if start == bytes.len() {
        return None;
    }
    let from = (*scanned).max(start);
    for (index, &byte) in bytes.iter().enumerate().skip(from) {
        match byte {
            b'"' => *in_quotes = !*in_quotes,
            b'\n' | b'\r' if !*in_quotes => return Some((start, index)),
            _ => {}
        }
    }
    *scanned = bytes.len();
    None
}

/// How many line-end bytes `bytes` starts with (blank lines before the header).
/// The line ends in `chunk[from..to]` counted as the scanner counts them: LF,
/// CRLF and a lone CR each end one line (a CR that ends the chunk counts; the
/// scanner then skips the LF that may open the next chunk).
fn count_line_ends(chunk: &[u8], from: usize, to: usize) -> u64 {
    memchr::memchr2_iter(b'\n', b'\r', &chunk[from..to])
        .filter(|&at| chunk[from + at] == b'\n' || chunk.get(from + at + 1) != Some(&b'\n'))
        .count() as u64
}

fn leading_line_ends(bytes: &[u8]) -> usize {
    let skip = if bytes.starts_with(UTF8_BOM) {
        UTF8_BOM.len()
    } else {
        0
    };
    skip + bytes[skip..]
        .iter()
        .take_while(|&&byte| byte == b'\n' || byte == b'\r')
        .count()
}

/// The problem of a file of `size` bytes over its `limit`.
#[must_use]
pub fn too_large(size: u64, limit: u64) -> Problem {
    Problem::new(
        ProblemKind::TooLarge,
        None,
        format!(
            "the file is {} bytes ({}); the limit for this file is {} bytes ({})",
            thousands(size),
            human_size(size),
            thousands(limit),
            human_size(limit)
        ),
        "Check that the export holds only what it should (current school year, active records); if it really is this large, ask the vendor to raise the limit.",
    )
}

/// The most characters of the header a message quotes.
const HEADER_SHOWN_CHARS: usize = 300;

/// The header's names as a message quotes them: joined with commas, cut
/// after [`HEADER_SHOWN_CHARS`] characters (a header may be 64 KiB, three
/// times that decoded, and a message is read by a person).
fn header_as_shown(header: &[String]) -> String {
    let mut shown = String::new();
    for (index, name) in header.iter().enumerate() {
        if index > 0 {
            shown.push_str(", ");
        }
        shown.push_str(name);
        if shown.chars().count() > HEADER_SHOWN_CHARS {
            break;
        }
    }
    cut_for_message(&shown)
}

/// `text` cut after [`HEADER_SHOWN_CHARS`] characters, marked with `…`.
fn cut_for_message(text: &str) -> String {
    match text.char_indices().nth(HEADER_SHOWN_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// `1536` as `1.5 KiB`.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::FileRule;

    fn check(bytes: &[u8], rule: &FileRule, chunk: usize) -> FileReport {
        let plan = CheckPlan::new("students.csv", rule);
        let mut checker = FileChecker::new(&plan);
        for piece in bytes.chunks(chunk.max(1)) {
            checker.feed(piece);
        }
        checker.finish()
    }

    /// Checks `input` in reads of every size from 1 byte, each against `reference`.
    fn assert_same_report_for_every_chunk_size(
        input: &[u8],
        rule: &FileRule,
        reference: &FileReport,
    ) {
        for chunk in 1..input.len() {
            let report = check(input, rule, chunk);
            assert_eq!(
                serde_json::to_value(&report).unwrap(),
                serde_json::to_value(reference).unwrap(),
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn same_report_whatever_the_chunk_size() {
        let input = "\u{FEFF}id;name;city\r\n1;José;\"A;B\"\r\n2;Zoë\r\n3;x;y\r\n".as_bytes();
        let reference = check(input, &FileRule::default(), 1 << 20);
        assert_eq!(reference.encoding, Some(Charset::Utf8WithBom));
        assert_eq!(reference.delimiter, Some(Delimiter::Semicolon));
        assert_eq!(reference.rows, 3);
        assert_eq!(reference.header, ["id", "name", "city"]);
        assert_same_report_for_every_chunk_size(input, &FileRule::default(), &reference);
    }

    /// Found by fuzzing (fuzz/fuzz_targets/csv_check.rs): a quoted header
    /// name holding a CRLF lost its LF when a read ended between the CR and
    /// the LF. (The stray quote before it makes the first-line search end the
    /// line at that CRLF, so the scanner gets the CR and the LF in two reads.)
    #[test]
    fn same_report_whatever_the_chunk_size_with_a_line_end_in_a_quoted_header_name() {
        let input = b"id,a\"b,\"first\r\nname\"\r\n1,2,3\r\n";
        let reference = check(input, &FileRule::default(), 1 << 20);
        assert_eq!(reference.header, ["id", "a\"b", "first\r\nname"]);
        assert_eq!(reference.rows, 1);
        assert_same_report_for_every_chunk_size(input, &FileRule::default(), &reference);
    }

    /// Found by fuzzing (fuzz/fuzz_targets/csv_check.rs): when one line had
    /// a character-set problem and a row problem, their order in the report
    /// depended on where a read ended.
    #[test]
    fn same_report_whatever_the_chunk_size_with_two_problems_on_one_line() {
        let rule = FileRule {
            charset: CharsetRule::UsAscii,
            delimiter: DelimiterRule::Fixed(Delimiter::Tab),
            ..FileRule::default()
        };
        let input = b"id\tname\n\xff\n1\tx\n";
        let reference = check(input, &rule, 1 << 20);
        let kinds: Vec<ProblemKind> = reference.problems.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, [ProblemKind::NotAscii, ProblemKind::ColumnCount]);
        assert_same_report_for_every_chunk_size(input, &rule, &reference);
    }

    /// Found by fuzzing (fuzz/fuzz_targets/csv_check.rs): under the US-ASCII
    /// rule every byte over 127 became an event, and a read full of them held
    /// 16 bytes of events (and a sorted copy) per byte read: 8 MiB for one
    /// 256 KiB read, far over the documented memory bound.
    #[test]
    fn a_read_full_of_non_ascii_bytes_keeps_little_memory() {
        let rule = FileRule {
            charset: CharsetRule::UsAscii,
            ..FileRule::default()
        };
        let plan = CheckPlan::new("students.csv", &rule);
        let mut checker = FileChecker::new(&plan);
        checker.feed(b"id,name\n");
        let mut read = vec![0xFF_u8; READ_BUFFER_BYTES];
        for line_end in read.iter_mut().step_by(1024).skip(1) {
            *line_end = b'\n';
        }
        checker.feed(&read);
        assert!(
            checker.events.capacity() * std::mem::size_of::<CharsetEvent>() <= 64 * 1024,
            "{} events kept",
            checker.events.capacity()
        );
        let report = checker.finish();
        let not_ascii = report
            .problems
            .iter()
            .filter(|p| p.kind == ProblemKind::NotAscii)
            .count();
        assert_eq!(
            not_ascii,
            crate::problem::MAX_LISTED_PER_KIND as usize + 1,
            "listed, then the summary"
        );
        assert!(
            report
                .problems
                .last()
                .unwrap()
                .message
                .contains("256 in all"),
            "one per line: {:?}",
            report.problems.last()
        );
    }

    /// Found by fuzzing (fuzz/fuzz_targets/csv_check.rs): in a file whose
    /// first line ends in CR and later ones in LF, a character-set problem
    /// was put on the line counted by CRs alone (line 2 here), and on another
    /// line when the file was read in small pieces.
    #[test]
    fn charset_problems_are_on_the_right_line_when_line_ends_are_mixed() {
        let input = b"id,name\r1,a\n\n\xff,b\r\n2,c\n";
        for chunk in [1 << 20, 1, 2, 3, 5] {
            let report = check(input, &FileRule::default(), chunk);
            assert_eq!(report.encoding, Some(Charset::Windows1252), "chunk {chunk}");
            assert_eq!(
                report.encoding_note.as_deref(),
                Some("line 4 has byte 0xFF, which is not UTF-8"),
                "chunk {chunk}"
            );
        }
        let utf8 = FileRule {
            charset: CharsetRule::Utf8,
            ..FileRule::default()
        };
        let report = check(input, &utf8, 1 << 20);
        let lines: Vec<Option<u64>> = report
            .problems
            .iter()
            .filter(|p| p.kind == ProblemKind::InvalidUtf8)
            .map(|p| p.line)
            .collect();
        assert_eq!(lines, [Some(4)]);
    }

    #[test]
    fn invalid_utf8_under_the_utf8_rule_names_the_lines() {
        let rule = FileRule {
            charset: CharsetRule::Utf8,
            ..FileRule::default()
        };
        let report = check(b"a,b\n1,ok\n2,Pe\xF1a\n3,x\n4,\xE9\xE9\n", &rule, 3);
        let lines: Vec<_> = report
            .problems
            .iter()
            .filter(|p| p.kind == ProblemKind::InvalidUtf8)
            .map(|p| p.line)
            .collect();
        assert_eq!(lines, [Some(3), Some(5)]);
        assert!(!report.passed());
    }

    /// Found by fuzzing (fuzz/fuzz_targets/csv_check.rs, its memory bound):
    /// a first line of 9,220 tabs made the checks hold over 1 MiB (every empty
    /// column took a place in three lists; 64 KiB of tabs held 6 MiB). The
    /// header keeps at most MAX_HEADER_COLUMNS names, still counts every
    /// column, and the file fails.
    #[test]
    fn a_header_of_thousands_of_columns_keeps_only_the_first_names() {
        let columns = 9221;
        let tabs = vec![b'\t'; columns - 1];
        let input = [&tabs[..], b"\n", &tabs[..], b"\nx\n"].concat();
        for chunk in [7, 4096, 1 << 20] {
            let report = check(&input, &FileRule::default(), chunk);
            assert_eq!(report.delimiter, Some(Delimiter::Tab));
            assert_eq!(report.columns, columns);
            assert_eq!(report.header.len(), MAX_HEADER_COLUMNS);
            assert_eq!(report.rows, 2);
            let problems: Vec<_> = report.problems.iter().map(|p| (p.kind, p.line)).collect();
            assert_eq!(
                problems,
                [
                    (ProblemKind::HeaderTooLong, Some(1)),
                    (ProblemKind::ColumnCount, Some(3))
                ],
                "chunk {chunk}"
            );
            assert!(report.problems[0].message.contains("9,221 columns"));
            assert!(!report.passed());
        }
    }

    /// Found by fuzzing (fuzz/fuzz_targets/csv_check.rs, its memory bound):
    /// with a required column missing, the message quoted the whole header,
    /// 64 KiB of invalid UTF-8 decoded to three bytes a byte, joined and then
    /// formatted again, over 1 MiB at once. A repeated column's name is cut
    /// short too.
    #[test]
    fn messages_quote_a_long_header_cut_short() {
        let rule = FileRule {
            charset: CharsetRule::Utf8,
            required_columns: vec!["id".into()],
            ..FileRule::default()
        };
        let input = [&b"name,"[..], &[0xCF; 60_000], b",name\n1,x,y\n"].concat();
        let report = check(&input, &rule, 4096);
        let missing = report
            .problems
            .iter()
            .find(|p| p.kind == ProblemKind::MissingColumns)
            .expect("id is missing");
        assert!(
            missing
                .what_to_do
                .contains("The header found was: name, \u{FFFD}\u{FFFD}"),
            "{}",
            missing.what_to_do
        );
        assert!(missing.what_to_do.ends_with('…'));
        assert!(missing.what_to_do.chars().count() < 500);
        let duplicate = report
            .problems
            .iter()
            .find(|p| p.kind == ProblemKind::DuplicateColumns)
            .expect("name is there twice");
        assert!(duplicate.message.contains("(columns 1 and 3)"));
        let long_name = "é".repeat(10_000);
        let input = format!("{long_name},id,{long_name}\n1,2,3\n");
        let report = check(input.as_bytes(), &rule, 4096);
        assert_eq!(report.problems[0].kind, ProblemKind::DuplicateColumns);
        let message = &report.problems[0].message;
        assert!(message.contains("é…"), "{message}");
        assert!(message.chars().count() < 500, "{message}");
    }

    #[test]
    fn not_csv_files() {
        let report = check(b"\xFF\xFEa\0,\0b\0", &FileRule::default(), 100);
        assert_eq!(report.problems[0].kind, ProblemKind::Utf16);
        let report = check(b"PK\x03\x04rest of a zip", &FileRule::default(), 100);
        assert_eq!(report.problems[0].kind, ProblemKind::NotText);
        let report = check(
            &vec![b'x'; MAX_HEADER_BYTES + 10],
            &FileRule::default(),
            4096,
        );
        assert_eq!(report.problems[0].kind, ProblemKind::HeaderTooLong);
        assert!(!report.passed());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(512), "512 bytes");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(1 << 30), "1.0 GiB");
    }
}
