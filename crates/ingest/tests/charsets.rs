//! Character sets: detection under `auto`, each rule, and Windows-1252 headers
//! read correctly.

mod common;

use common::{check, check_with, kinds, lines, rule};
use ferry_ingest::{Charset, ProblemKind};

/// `Nombre,Año,Dirección,Niño` and two rows, as Excel's plain "CSV" saves it
/// on a Spanish or US Windows: Windows-1252, no byte-order mark.
const WINDOWS_1252: &[u8] =
    b"Nombre,A\xF1o,Direcci\xF3n,Ni\xF1o\r\nJos\xE9,2026,Calle Ma\xF1ana 3,S\xED\r\nZo\xEB,2025,\"Pe\xF1a, 4\",No\r\n";

#[test]
fn windows_1252_header_without_bom_is_detected_and_read_correctly() {
    let report = check("alumnos.csv", WINDOWS_1252);
    assert_eq!(report.encoding, Some(Charset::Windows1252));
    assert!(report.encoding_detected);
    assert_eq!(report.header, ["Nombre", "Año", "Dirección", "Niño"]);
    assert_eq!(report.rows, 2);
    assert!(report.passed(), "{:?}", report.problems);
    let note = report.encoding_note.as_deref().unwrap();
    assert!(note.contains("line 1 has byte 0xF1"), "{note}");
}

#[test]
fn windows_1252_required_columns_match_after_decoding() {
    let report = check_with(
        "alumnos.csv",
        WINDOWS_1252,
        &rule("pattern = \"*.csv\"\nrequired_columns = [\"año\", \"NIÑO\"]"),
    );
    assert!(report.passed(), "{:?}", report.problems);
    let report = check_with(
        "alumnos.csv",
        WINDOWS_1252,
        &rule(
            "pattern = \"*.csv\"\ncharset = \"windows-1252\"\nrequired_columns = [\"Dirección\"]",
        ),
    );
    assert_eq!(report.encoding, Some(Charset::Windows1252));
    assert!(!report.encoding_detected);
    assert!(report.passed(), "{:?}", report.problems);
}

#[test]
fn utf8_with_and_without_bom_and_ascii_are_named() {
    let utf8 = "Nombre,Año\nJosé,2026\n";
    let report = check("a.csv", utf8.as_bytes());
    assert_eq!(report.encoding, Some(Charset::Utf8));
    assert_eq!(report.header, ["Nombre", "Año"]);

    let with_bom = format!("\u{FEFF}{utf8}");
    let report = check("a.csv", with_bom.as_bytes());
    assert_eq!(report.encoding, Some(Charset::Utf8WithBom));
    assert_eq!(
        report.header[0], "Nombre",
        "the BOM is not part of the first column name"
    );

    let report = check("a.csv", b"name,year\nJose,2026\n");
    assert_eq!(report.encoding, Some(Charset::UsAscii));
    assert!(report.passed());
}

#[test]
fn utf8_rule_reports_each_line_with_invalid_bytes() {
    let report = check_with(
        "alumnos.csv",
        WINDOWS_1252,
        &rule("pattern = \"*\"\ncharset = \"utf-8\""),
    );
    assert_eq!(lines(&report, ProblemKind::InvalidUtf8), [1, 2, 3]);
    assert!(!report.passed());
    assert!(report.problems[0].message.contains("Windows-1252"));
    assert!(report.problems[0].what_to_do.contains("CSV UTF-8"));
}

#[test]
fn bom_followed_by_invalid_bytes_is_an_error_even_under_auto() {
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(WINDOWS_1252);
    let report = check("alumnos.csv", &bytes);
    assert_eq!(report.encoding, Some(Charset::Utf8WithBom));
    assert_eq!(lines(&report, ProblemKind::InvalidUtf8), [1, 2, 3]);
    assert!(report.problems[0].message.contains("mixes character sets"));
}

#[test]
fn us_ascii_rule_refuses_other_bytes_with_lines() {
    let ascii_rule = rule("pattern = \"*\"\ncharset = \"us-ascii\"");
    let report = check_with("a.csv", b"name,city\nJose,Lima\n", &ascii_rule);
    assert_eq!(report.encoding, Some(Charset::UsAscii));
    assert!(report.passed());
    let report = check_with(
        "a.csv",
        "name,city\nJosé,Lima\nAna,Cusco\nZoë,Bogotá\n".as_bytes(),
        &ascii_rule,
    );
    assert_eq!(lines(&report, ProblemKind::NotAscii), [2, 4]);
    assert!(!report.passed());
}

#[test]
fn windows_1252_rule_warns_when_the_file_is_really_utf8() {
    let report = check_with(
        "a.csv",
        "name,city\nAna,Lima\nJosé,Lima\n".as_bytes(),
        &rule("pattern = \"*\"\ncharset = \"windows-1252\""),
    );
    assert_eq!(report.encoding, Some(Charset::Windows1252));
    assert_eq!(lines(&report, ProblemKind::CharsetMismatch), [3]);
    assert!(report.passed(), "a mismatch is a warning");
}

#[test]
fn invalid_bytes_late_in_a_large_file_still_switch_detection() {
    let mut bytes = b"id,name\n".to_vec();
    for id in 0..50_000 {
        bytes.extend_from_slice(format!("{id},Jos\u{e9}\n").as_bytes());
    }
    bytes.extend_from_slice(b"50000,Pe\xF1a\n");
    let report = check("big.csv", &bytes);
    assert_eq!(report.encoding, Some(Charset::Windows1252));
    assert!(
        report
            .encoding_note
            .as_deref()
            .unwrap()
            .contains("line 50,002"),
        "{:?}",
        report.encoding_note
    );
    assert_eq!(report.rows, 50_001);
}

#[test]
fn utf16_and_spreadsheets_are_named() {
    let report = check("a.csv", b"\xFF\xFEn\0a\0m\0e\0\r\0\n\0");
    assert_eq!(kinds(&report), [ProblemKind::Utf16]);
    assert_eq!(report.encoding, None);
    let report = check("a.csv", b"n\0a\0m\0e\0,\0x\0\r\0\n\0");
    assert_eq!(kinds(&report), [ProblemKind::Utf16]);
    let report = check("a.csv", b"PK\x03\x04\x14\x00\x06\x00");
    assert_eq!(kinds(&report), [ProblemKind::NotText]);
    assert!(report.problems[0].what_to_do.contains("Save As"));
}
