//! CSV checks: bytes from an upload into the streaming checker
//! (`FileChecker`, fed in reads of a fuzzer-chosen size as `check_reader`
//! does) under every profile (generic, OneRoster 1.1 data and manifest
//! files, Clever), every character-set and delimiter rule, then into the
//! report text. An input whose first byte is even is raw: its second byte
//! picks the rules, its third the read size, and the rest is the file (the
//! seeds are small CSVs like the ingest tests'). Otherwise the rest is
//! structured: the rules, and raw bytes or a table of plain and quoted values
//! (valid CSV by construction), optionally with one value or line stretched:
//! to 1.5–2 MiB when the stretch's length byte says so (one stretch in
//! [`BIG_STRETCH_ONE_IN`], so the memory bound is tested often while most
//! runs stay fast), otherwise written out in full, so every property below
//! is checked on it: by up to 4 KiB, or (one in four) up to
//! [`SMALL_STRETCH_MAX`] bytes, past the 64 KiB of header the checks keep.
//!
//! Properties:
//! - never a panic;
//! - memory bounded: the checks never hold more than [`MEMORY_CAP`] at once,
//!   however long a line or value is (stretched far beyond the cap);
//! - the report does not depend on how the file was cut into reads;
//! - on valid UTF-8 CSV (every table; raw bytes when they are UTF-8 and the
//!   checker found no quoting problem) the row and column counts equal what
//!   the `csv` crate reads with the same delimiter.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use ferry_fuzz::alloc_meter::{Meter, measure};
use ferry_ingest::{
    ByteSize, CharsetRule, CheckPlan, Delimiter, DelimiterRule, FileChecker, FileReport, FileRule,
    ProblemKind, Profile, READ_BUFFER_BYTES, ReportContext, render_report,
};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: Meter = Meter;

/// Most memory the checks of one file may hold at once: one read
/// ([`READ_BUFFER_BYTES`]) gathered while looking for the end of the first
/// line, the 64 KiB of header kept (at most 2,048 names), at most 20 listed
/// problems per kind, and the report. A big stretch makes a line of [`STRETCH_MIN`] (1.5 MiB) and up
/// to 2 MiB, over this, so any buffer that grows with a line shows.
const MEMORY_CAP: usize = 1 << 20;
const STRETCH_MIN: usize = 3 << 19;
/// One stretch in this many is big (chosen by the low byte of its length):
/// checking 2 MiB costs a thousand small runs.
const BIG_STRETCH_ONE_IN: u32 = 16;
/// The longest small stretch: past the 64 KiB of header kept.
const SMALL_STRETCH_MAX: usize = 72 << 10;

#[derive(Arbitrary, Debug)]
struct Case {
    plan: PlanChoice,
    read_size: u16,
    body: Body,
    stretch: Option<Stretch>,
}

#[derive(Arbitrary, Debug)]
struct PlanChoice {
    profile: u8,
    charset: u8,
    delimiter: u8,
    required_columns: Vec<String>,
    max_size: Option<u32>,
}

#[derive(Arbitrary, Debug)]
enum Body {
    Raw(Vec<u8>),
    Table(Table),
}

#[derive(Arbitrary, Debug)]
struct Table {
    delimiter: u8,
    line_end: u8,
    byte_order_mark: bool,
    rows: Vec<Vec<Value>>,
    last_line_end: bool,
}

#[derive(Arbitrary, Debug)]
enum Value {
    Plain(String),
    Quoted(String),
}

/// `extra` bytes of `byte` inserted at `at` (for a table: the value's letters
/// repeated inside it, so it stays valid CSV): 1.5–2 MiB, never allocated, when
/// `extra % BIG_STRETCH_ONE_IN == 0`, otherwise at most 4 KiB or (when
/// `extra / 16 % 4 == 0`) [`SMALL_STRETCH_MAX`].
#[derive(Arbitrary, Debug)]
struct Stretch {
    at: u16,
    byte: u8,
    extra: u32,
}

/// The file as pieces, so a stretched file of megabytes is never allocated.
struct File {
    head: Vec<u8>,
    filler: Option<(u8, usize)>,
    tail: Vec<u8>,
}

fuzz_target!(|input: &[u8]| {
    match input {
        [mode, rules, read_size, file @ ..] if mode % 2 == 0 => check_case(Case {
            plan: PlanChoice::from_byte(*rules),
            read_size: u16::from(*read_size),
            body: Body::Raw(file.to_vec()),
            stretch: None,
        }),
        [_, rest @ ..] => {
            if let Ok(case) = Case::arbitrary_take_rest(Unstructured::new(rest)) {
                check_case(case);
            }
        }
        [] => {}
    }
});

fn check_case(case: Case) {
    if std::env::var_os("FERRY_FUZZ_DEBUG").is_some() {
        eprintln!("{case:?}");
    }
    let plan = plan(&case.plan);
    let file = build(&case);
    let read_size = match case.read_size {
        0 => READ_BUFFER_BYTES,
        n => usize::from(n),
    };
    let (report, usage) = measure(|| {
        let report = check(&plan, &file, read_size);
        let text = render_report(&report, &ReportContext::default());
        assert!(!text.is_empty());
        report
    });
    assert!(
        usage.peak_live <= MEMORY_CAP,
        "checking a {}-byte file held {} bytes at once (cap {MEMORY_CAP})",
        file.len(),
        usage.peak_live
    );
    if file.filler.is_some() {
        return;
    }
    let whole = check(&plan, &file, READ_BUFFER_BYTES);
    assert_eq!(
        serde_json::to_value(&report).unwrap(),
        serde_json::to_value(&whole).unwrap(),
        "the report changed with the read size ({read_size})"
    );
    let valid_csv = match case.body {
        Body::Table(_) => true,
        Body::Raw(_) => std::str::from_utf8(&file.head).is_ok() && !quoting_problem(&report),
    };
    if valid_csv {
        compare_with_csv_crate(&report, &file.head);
    }
}

impl PlanChoice {
    /// Every profile, character-set rule and delimiter rule from one byte
    /// (the raw seeds' second byte).
    fn from_byte(byte: u8) -> PlanChoice {
        PlanChoice {
            profile: byte % 5,
            charset: byte / 5 % 4,
            delimiter: byte / 20 % 5,
            required_columns: Vec::new(),
            max_size: None,
        }
    }
}

fn plan(choice: &PlanChoice) -> CheckPlan {
    let (profile, name) = match choice.profile % 5 {
        0 => (Profile::Generic, "students_20261123.csv"),
        1 => (Profile::OneRoster11, "users.csv"),
        2 => (Profile::OneRoster11, "manifest.csv"),
        3 => (Profile::Clever, "students.csv"),
        _ => (Profile::OneRoster11, "unknown_file.csv"),
    };
    let charset = match choice.charset % 4 {
        0 => CharsetRule::Auto,
        1 => CharsetRule::Utf8,
        2 => CharsetRule::UsAscii,
        _ => CharsetRule::Windows1252,
    };
    let delimiter = match usize::from(choice.delimiter) % 5 {
        4 => DelimiterRule::Auto,
        n => DelimiterRule::Fixed(Delimiter::ALL[n]),
    };
    let rule = FileRule {
        profile,
        charset,
        delimiter,
        required_columns: choice.required_columns.iter().take(4).cloned().collect(),
        max_size: choice.max_size.map(|size| ByteSize(u64::from(size).max(1))),
        ..FileRule::default()
    };
    CheckPlan::new(name, &rule)
}

fn build(case: &Case) -> File {
    let mut head = match &case.body {
        Body::Raw(bytes) => bytes.clone(),
        Body::Table(table) => table_bytes(table),
    };
    let Some(stretch) = &case.stretch else {
        return File {
            head,
            filler: None,
            tail: Vec::new(),
        };
    };
    let (at, byte) = match &case.body {
        Body::Raw(_) => (usize::from(stretch.at).min(head.len()), stretch.byte),
        Body::Table(_) => match letter_position(&head, stretch.at) {
            Some(at) => (at, head[at]),
            None => (head.len(), b'x'),
        },
    };
    if stretch.extra % BIG_STRETCH_ONE_IN != 0 {
        let most = match stretch.extra / BIG_STRETCH_ONE_IN % 4 {
            0 => SMALL_STRETCH_MAX,
            _ => 4 << 10,
        };
        let extra = (stretch.extra / BIG_STRETCH_ONE_IN / 4) as usize % (most + 1);
        head.splice(at..at, std::iter::repeat_n(byte, extra));
        return File {
            head,
            filler: None,
            tail: Vec::new(),
        };
    }
    let extra = STRETCH_MIN + stretch.extra as usize % (STRETCH_MIN / 3);
    let tail = head.split_off(at);
    File {
        head,
        filler: Some((byte, extra)),
        tail,
    }
}

/// The position of an ASCII letter in the table (repeating it keeps the CSV
/// valid), chosen by `pick`.
fn letter_position(bytes: &[u8], pick: u16) -> Option<usize> {
    let letters: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i].is_ascii_alphabetic())
        .collect();
    (!letters.is_empty()).then(|| letters[usize::from(pick) % letters.len()])
}

fn table_bytes(table: &Table) -> Vec<u8> {
    let delimiter = Delimiter::ALL[usize::from(table.delimiter) % 4].byte();
    let line_end: &[u8] = match table.line_end % 3 {
        0 => b"\n",
        1 => b"\r\n",
        _ => b"\r",
    };
    let mut out = Vec::new();
    if table.byte_order_mark {
        out.extend_from_slice(b"\xEF\xBB\xBF");
    }
    for (index, row) in table.rows.iter().take(64).enumerate() {
        if index > 0 {
            out.extend_from_slice(line_end);
        }
        for (column, value) in row.iter().take(32).enumerate() {
            if column > 0 {
                out.push(delimiter);
            }
            match value {
                Value::Plain(text) => out.extend(
                    text.bytes()
                        .filter(|&b| !matches!(b, b'"' | b'\r' | b'\n') && b != delimiter),
                ),
                Value::Quoted(text) => {
                    out.push(b'"');
                    out.extend_from_slice(text.replace('"', "\"\"").as_bytes());
                    out.push(b'"');
                }
            }
        }
    }
    if table.last_line_end && !table.rows.is_empty() {
        out.extend_from_slice(line_end);
    }
    out
}

impl File {
    fn len(&self) -> usize {
        self.head.len() + self.filler.map_or(0, |(_, n)| n) + self.tail.len()
    }
}

/// Runs the checks, feeding at most `read_size` bytes at a time.
fn check(plan: &CheckPlan, file: &File, read_size: usize) -> FileReport {
    let mut checker = FileChecker::new(plan);
    let mut filler_chunk = Vec::new();
    for chunk in file.head.chunks(read_size) {
        checker.feed(chunk);
    }
    if let Some((byte, mut left)) = file.filler {
        // One reusable piece (allocated here, so it is counted against the cap).
        let piece = read_size.clamp(4096, 64 * 1024);
        filler_chunk.resize(piece, byte);
        while left > 0 {
            let n = left.min(piece);
            checker.feed(&filler_chunk[..n]);
            left -= n;
        }
    }
    for chunk in file.tail.chunks(read_size) {
        checker.feed(chunk);
    }
    checker.finish()
}

fn quoting_problem(report: &FileReport) -> bool {
    report.problems.iter().any(|p| {
        matches!(
            p.kind,
            ProblemKind::UnterminatedQuote
                | ProblemKind::TextAfterClosingQuote
                | ProblemKind::QuoteInUnquotedField
        )
    })
}

/// Rows and columns as the `csv` crate reads them (blank lines skipped, the
/// first record the header).
fn compare_with_csv_crate(report: &FileReport, bytes: &[u8]) {
    let (Some(delimiter), Some(_)) = (report.delimiter, report.header_line) else {
        return;
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter.byte())
        .from_reader(bytes);
    let mut records = reader.byte_records();
    let header = records
        .next()
        .expect("the csv crate finds the header Ferry found")
        .expect("valid UTF-8 CSV reads");
    let rows = records.count() as u64;
    assert_eq!(
        (report.columns, report.rows),
        (header.len(), rows),
        "(columns, rows): Ferry's checker vs the csv crate"
    );
}
