//! Delimiters, header and required columns, column counts, quoting, blank and
//! empty files, size limits.

mod common;

use common::{check, check_with, kinds, lines, rule};
use ferry_ingest::{Delimiter, ProblemKind, Severity};

#[test]
fn each_delimiter_detected_and_required() {
    for (delimiter, name) in [
        (Delimiter::Comma, ","),
        (Delimiter::Tab, "\\t"),
        (Delimiter::Pipe, "|"),
        (Delimiter::Semicolon, ";"),
    ] {
        let d = delimiter.as_str();
        let text = format!(
            "id{d}last name{d}first{d}note\n1{d}Smith{d}Ann{d}\"a{d}b\"\n2{d}Lee{d}Bo{d}\n"
        );
        let report = check("a.csv", text.as_bytes());
        assert_eq!(report.delimiter, Some(delimiter), "auto for {name}");
        assert!(report.delimiter_detected);
        assert_eq!(report.columns, 4);
        assert_eq!(report.rows, 2);
        assert!(report.problems.is_empty(), "{name}: {:?}", report.problems);

        let report = check_with(
            "a.csv",
            text.as_bytes(),
            &rule(&format!("pattern = \"*\"\ndelimiter = \"{name}\"")),
        );
        assert_eq!(report.delimiter, Some(delimiter));
        assert!(!report.delimiter_detected);
        assert!(report.problems.is_empty(), "{name}: {:?}", report.problems);
    }
}

#[test]
fn required_delimiter_absent_from_the_header_is_named() {
    let report = check_with(
        "a.csv",
        b"id;name\n1;x\n",
        &rule("pattern = \"*\"\ndelimiter = \",\""),
    );
    assert_eq!(lines(&report, ProblemKind::DelimiterMismatch), [1]);
    assert!(report.problems[0].message.contains("semicolon"));
    assert!(!report.passed());
}

#[test]
fn header_without_any_delimiter_is_one_column() {
    let report = check("a.csv", b"student_id\n1\n2\n");
    assert_eq!(report.columns, 1);
    assert_eq!(report.rows, 2);
    assert_eq!(kinds(&report), [ProblemKind::SingleColumn]);
    assert!(report.passed());
}

#[test]
fn required_columns_are_case_insensitive_and_trimmed() {
    let students = rule(
        "pattern = \"students*.csv\"\nrequired_columns = [\"Student_id\", \"School_id\", \"Last_name\", \"Grade\"]",
    );
    let report = check_with(
        "students.csv",
        b" STUDENT_ID ,school_ID,last_name\n1,2,Lee\n",
        &students,
    );
    let missing = &report.problems[0];
    assert_eq!(missing.kind, ProblemKind::MissingColumns);
    assert_eq!(missing.line, Some(1));
    assert!(
        missing.message.ends_with("column: Grade"),
        "{}",
        missing.message
    );
    assert!(
        missing
            .what_to_do
            .contains("STUDENT_ID, school_ID, last_name")
    );
    assert_eq!(report.header, ["STUDENT_ID", "school_ID", "last_name"]);
    assert!(!report.passed());
}

#[test]
fn duplicate_columns_are_a_warning() {
    let report = check("a.csv", b"id,name,ID\n1,a,1\n");
    assert_eq!(kinds(&report), [ProblemKind::DuplicateColumns]);
    assert!(report.problems[0].message.contains("columns 1 and 3"));
}

#[test]
fn ragged_rows_name_the_first_twenty_lines_and_count_the_rest() {
    let mut text = String::from("a,b,c\n");
    for row in 0..100 {
        text.push_str(if row % 2 == 0 { "1,2,3\n" } else { "1,2\n" });
    }
    let report = check("a.csv", text.as_bytes());
    assert_eq!(report.rows, 100);
    let listed = lines(&report, ProblemKind::ColumnCount);
    let expected: Vec<u64> = (0..20).map(|n| 3 + 2 * n).collect();
    assert_eq!(listed, expected);
    let summary = report.problems.last().unwrap();
    assert_eq!(summary.kind, ProblemKind::ColumnCount);
    assert_eq!(summary.line, None);
    assert!(
        summary.message.contains("30 more like this, 50 in all"),
        "{}",
        summary.message
    );
    assert!(
        report.problems[0]
            .message
            .contains("2 columns; the header (line 1) has 3")
    );
}

#[test]
fn rows_spanning_lines_are_reported_where_they_start() {
    let report = check(
        "a.csv",
        b"id,address,zip\r\n1,\"12 Main St\r\nApt 4\",55555\r\n2,\"1 Elm\r\nSuite 2\",55555,extra\r\n",
    );
    assert_eq!(report.rows, 2);
    assert_eq!(lines(&report, ProblemKind::ColumnCount), [4]);
}

#[test]
fn quoting_errors_with_lines() {
    let report = check(
        "a.csv",
        b"id,name,height\n1,Ann,5'4\n2,Bo \"Jr\" Lee,6'0\n3,\"Smith\"Jr,5'9\n4,\"Cruz,5'2\n5,Dee,5'5\n",
    );
    assert_eq!(lines(&report, ProblemKind::QuoteInUnquotedField), [3, 3]);
    assert_eq!(lines(&report, ProblemKind::TextAfterClosingQuote), [4]);
    assert_eq!(lines(&report, ProblemKind::UnterminatedQuote), [5]);
    let unterminated = report
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::UnterminatedQuote)
        .unwrap();
    assert!(
        unterminated.message.contains("(line 6)"),
        "{}",
        unterminated.message
    );
    assert_eq!(
        report
            .problems
            .iter()
            .find(|p| p.kind == ProblemKind::QuoteInUnquotedField)
            .unwrap()
            .severity,
        Severity::Warning
    );
    assert!(!report.passed());
}

#[test]
fn empty_file_and_only_blank_lines() {
    let report = check("a.csv", b"");
    assert_eq!(kinds(&report), [ProblemKind::EmptyFile]);
    assert!(report.problems[0].message.contains("0 bytes"));
    assert!(!report.passed());
    assert_eq!(report.encoding, None);
    assert_eq!(report.delimiter, None);

    let report = check("a.csv", b"\xEF\xBB\xBF");
    assert_eq!(kinds(&report), [ProblemKind::EmptyFile]);

    let report = check("a.csv", b"\r\n\r\n");
    assert!(kinds(&report).contains(&ProblemKind::EmptyFile));
    assert!(!report.passed());
}

#[test]
fn header_only_is_a_warning_and_counts_no_rows() {
    for text in [&b"id,name\n"[..], b"id,name", b"id,name\r\n\r\n"] {
        let report = check("a.csv", text);
        assert_eq!(report.rows, 0);
        assert!(report.is_header_only());
        assert!(kinds(&report).contains(&ProblemKind::HeaderOnly));
        assert!(report.passed(), "the guard, not the checks, holds it");
    }
}

#[test]
fn blank_lines_are_skipped_and_listed() {
    let report = check("a.csv", b"\nid,name\n1,a\n\n2,b\n");
    assert_eq!(report.header_line, Some(2));
    assert_eq!(report.rows, 2);
    assert_eq!(lines(&report, ProblemKind::BlankLine), [1, 4]);
    assert!(report.passed());
}

#[test]
fn size_limit() {
    let limited = rule("pattern = \"*\"\nmax_size = 16");
    let report = check_with("a.csv", b"id,name\n1,a\n2,b\n3,c\n", &limited);
    assert_eq!(kinds(&report), [ProblemKind::TooLarge]);
    let message = &report.problems[0].message;
    assert!(message.contains("the file is 20 bytes"), "{message}");
    assert!(
        message.contains("limit for this file is 16 bytes"),
        "{message}"
    );
    assert!(!report.passed());
    let report = check_with("a.csv", b"id,name\n1,a\n", &limited);
    assert!(report.passed());
}

#[test]
fn agrees_with_the_csv_crate_on_well_formed_files() {
    // Well-formed CSV of every awkward shape: the scanner must count what csv counts.
    let mut text = String::from("id,\"quoted, name\",note\r\n");
    let values = [
        "",
        "plain",
        "\"with, comma\"",
        "\"with \"\"quotes\"\"\"",
        "\"multi\nline\"",
        "é",
    ];
    let mut expected_rows = 0;
    for a in values {
        for b in values {
            text.push_str(&format!("{a},{b},x\r\n"));
            expected_rows += 1;
        }
    }
    let report = check("a.csv", text.as_bytes());
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let csv_rows: Vec<_> = reader.records().map(Result::unwrap).collect();
    assert_eq!(report.rows as usize, csv_rows.len());
    assert_eq!(report.rows, expected_rows);
    assert!(csv_rows.iter().all(|record| record.len() == report.columns));
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn a_failing_reader_is_an_error_not_a_report() {
    struct Failing;
    impl std::io::Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    let plan = ferry_ingest::CheckPlan::new("a.csv", &ferry_ingest::FileRule::default());
    let error = ferry_ingest::check_reader(Failing, &plan).unwrap_err();
    assert!(error.to_string().contains("disk on fire"), "{error}");
}
