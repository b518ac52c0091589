//! The roster guard on real reports, and the plain-text report.

mod common;

use common::{check, check_with, rule};
use ferry_ingest::{
    GuardDecision, HoldReason, MaxRowDrop, Outcome, ReportContext, outcome, render_report,
    roster_guard,
};

fn roster(rows: usize) -> Vec<u8> {
    let mut text = String::from("student_id,last_name\n");
    for id in 0..rows {
        text.push_str(&format!("{id},Name{id}\n"));
    }
    text.into_bytes()
}

#[test]
fn fifteen_percent_drop_is_held_five_percent_passes() {
    let previous = check("students_20261122.csv", &roster(1000)).rows;
    let dropped = check("students_20261123.csv", &roster(850));
    let decision = roster_guard(dropped.rows, Some(previous), MaxRowDrop::default());
    assert!(matches!(
        decision,
        GuardDecision::Hold(HoldReason::RowDrop {
            previous_rows: 1000,
            rows: 850,
            ..
        })
    ));
    assert!(matches!(
        outcome(&dropped, Some(&decision)),
        Outcome::HeldForReview(_)
    ));

    let smaller = check("students_20261123.csv", &roster(950));
    let decision = roster_guard(smaller.rows, Some(previous), MaxRowDrop::default());
    assert_eq!(decision, GuardDecision::Pass);
    assert_eq!(outcome(&smaller, Some(&decision)), Outcome::Accepted);
}

#[test]
fn header_only_is_held() {
    let report = check("students_20261123.csv", b"student_id,last_name\r\n");
    assert!(report.is_header_only());
    let decision = roster_guard(report.rows, Some(1000), MaxRowDrop::default());
    assert_eq!(decision, GuardDecision::Hold(HoldReason::HeaderOnly));
    let text = render_report(
        &report,
        &ReportContext {
            guard: Some(&decision),
            ..Default::default()
        },
    );
    assert!(text.contains("Result: HELD FOR REVIEW"), "{text}");
    assert!(text.contains("header and no rows"), "{text}");
}

#[test]
fn guard_decision_serialises_for_the_hand_off() {
    let decision = roster_guard(850, Some(1000), MaxRowDrop::new(0.1).unwrap());
    let json = serde_json::to_value(decision).unwrap();
    assert_eq!(json["decision"], "hold");
    assert_eq!(json["reason"], "row_drop");
    assert_eq!(json["previous_rows"], 1000);
}

#[test]
fn report_text_lists_every_problem_with_its_line_and_what_to_do() {
    let file = b"student_id,last_name,grade\n1,Lee,3\n2,Smith\n3,\"Cruz\"Jr,4\n\n4,Diaz,5,x\n";
    let report = check_with(
        "students_20261123.csv",
        file,
        &rule("pattern = \"students*.csv\"\nrequired_columns = [\"student_id\", \"school_id\"]"),
    );
    let text = render_report(
        &report,
        &ReportContext {
            account: Some("lincoln-usd"),
            received_at: Some("2026-11-23 02:14 UTC"),
            sha256: Some("5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"),
            guard: None,
        },
    );
    for expected in [
        "Ferry upload report: students_20261123.csv",
        "Account:       lincoln-usd",
        "Received:      2026-11-23 02:14 UTC",
        "Recognised as: students.csv, exported 2026-11-23",
        &format!("Size:          {} bytes", file.len()),
        "SHA-256:       5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef",
        "Checked as:    CSV (rule for students*.csv)",
        "Encoding:      US-ASCII (detected)",
        "Delimiter:     comma (detected from the header)",
        "Rows:          4 (not counting the header)",
        "Columns:       3: student_id, last_name, grade",
        "Result: REFUSED. The file has 4 errors",
        "Problems (4 errors, 1 warning)",
        "ERROR. Line 1: The header is missing a required column: school_id.",
        "ERROR. Line 3: This row has 2 columns; the header (line 1) has 3.",
        "ERROR. Line 4: Text follows the closing double quote",
        "WARNING. Line 5: The line is empty; it was skipped.",
        "ERROR. Line 6: This row has 4 columns",
        "What to do: Check the row for a missing or extra comma",
        "What to do next\n  Fix the errors listed above",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // problems are listed in line order
    let line3 = text.find("Line 3:").unwrap();
    let line6 = text.find("Line 6:").unwrap();
    assert!(line3 < line6);
}

#[test]
fn report_text_for_an_accepted_windows_1252_file() {
    let report = check("alumnos.csv", b"Nombre;A\xF1o\r\nJos\xE9;2026\r\n");
    let text = render_report(&report, &ReportContext::default());
    assert!(
        text.contains(
            "Encoding:      Windows-1252 (detected: line 1 has byte 0xF1, which is not UTF-8)"
        ),
        "{text}"
    );
    assert!(
        text.contains("Delimiter:     semicolon (detected from the header)"),
        "{text}"
    );
    assert!(text.contains("Columns:       2: Nombre, Año"), "{text}");
    assert!(
        text.contains("Result: ACCEPTED. The file passed every check."),
        "{text}"
    );
    assert!(
        text.contains("Nothing. The file was accepted as it is."),
        "{text}"
    );
    assert!(!text.contains("SHA-256"), "no checksum was given");
}

#[test]
fn report_summarises_problems_beyond_the_listed_ones() {
    let mut text = String::from("a,b\n");
    for _ in 0..1000 {
        text.push_str("1\n");
    }
    let report = check("a.csv", text.as_bytes());
    let rendered = render_report(&report, &ReportContext::default());
    assert!(
        rendered.contains("Line 21: This row has 1 column;"),
        "{rendered}"
    );
    assert!(!rendered.contains("Line 22:"));
    assert!(
        rendered.contains("…and 980 more like this, 1,000 in all"),
        "{rendered}"
    );
    assert_eq!(report.errors, 1000);
    assert!(
        rendered.contains("Result: REFUSED. The file has 1,000 errors"),
        "{rendered}"
    );
    assert!(
        rendered
            .contains("Problems (1,000 errors, 0 warnings; at most 20 of each kind are listed)"),
        "{rendered}"
    );
}

#[test]
fn file_report_json_shape() {
    let report = check("students_20261123.csv", "id\tname\nà\tb\n".as_bytes());
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["encoding"], "UTF-8");
    assert_eq!(json["delimiter"], "\t");
    assert_eq!(json["rows"], 1);
    assert_eq!(json["columns"], 2);
    assert_eq!(json["header"], serde_json::json!(["id", "name"]));
    assert_eq!(json["date_suffix"], "2026-11-23");
    assert_eq!(json["profile"], "generic");
    assert_eq!(json["problems"], serde_json::json!([]));
}
