//! The plain-text report a district IT person reads over SFTP in `/reports/`:
//! what arrived, what Ferry read, the result, every problem with its line and
//! what to do, and what to do next.
//!
//! Written for someone who exported a file from their student information
//! system, not for a developer: whole sentences, no codes, numbers with
//! thousands separators, and one clear next step. The text is built from the
//! [`FileReport`] alone plus what only the caller knows (checksum, account,
//! time, the roster guard's decision); it never reads the file or the clock.

use std::fmt::Write as _;

use crate::checker::{FileReport, human_size};
use crate::guard::{GuardDecision, HoldReason};
use crate::names::printable;
use crate::problem::{MAX_LISTED_PER_KIND, Problem, Severity, thousands};
use crate::set::SetReport;

/// What only the caller knows, for the report.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReportContext<'a> {
    /// The account the file arrived in.
    pub account: Option<&'a str>,
    /// When it arrived, already formatted (e.g. `2026-11-23 02:14 UTC`).
    pub received_at: Option<&'a str>,
    /// SHA-256 of the file, hex.
    pub sha256: Option<&'a str>,
    /// The roster guard's decision, when it was asked.
    pub guard: Option<&'a GuardDecision>,
}

/// The result of the checks and the guard together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// Passed the checks and the guard.
    Accepted,
    /// Passed the checks, held by the roster guard.
    HeldForReview(HoldReason),
    /// Failed the checks.
    Refused,
}

/// Errors refuse the file; otherwise the guard may hold it.
#[must_use]
pub fn outcome(report: &FileReport, guard: Option<&GuardDecision>) -> Outcome {
    if !report.passed() {
        Outcome::Refused
    } else if let Some(GuardDecision::Hold(reason)) = guard {
        Outcome::HeldForReview(*reason)
    } else {
        Outcome::Accepted
    }
}

/// Renders the report for one file.
#[must_use]
pub fn render_report(report: &FileReport, context: &ReportContext<'_>) -> String {
    let mut out = String::new();
    let name = printable(&report.file_name);
    let title = format!("Ferry upload report: {name}");
    let _ = writeln!(out, "{title}\n{}\n", "=".repeat(title.chars().count()));

    out.push_str("What arrived\n");
    field(&mut out, "File", &name);
    if let Some(account) = context.account {
        field(&mut out, "Account", account);
    }
    if let Some(received_at) = context.received_at {
        field(&mut out, "Received", received_at);
    }
    if let Some(suffix) = &report.date_suffix {
        field(
            &mut out,
            "Recognised as",
            &format!(
                "{}, exported {suffix} (the date in the file name)",
                report.logical_name
            ),
        );
    }
    field(
        &mut out,
        "Size",
        &if report.size < 1024 {
            format!("{} bytes", thousands(report.size))
        } else {
            format!(
                "{} bytes ({})",
                thousands(report.size),
                human_size(report.size)
            )
        },
    );
    if let Some(sha256) = context.sha256 {
        field(&mut out, "SHA-256", sha256);
    } else if report.not_read {
        field(&mut out, "SHA-256", "not computed: the file was not read");
    }
    field(
        &mut out,
        "Checked as",
        &if report.rule_pattern == "*" {
            format!("{} (default rule)", report.profile)
        } else {
            format!("{} (rule for {})", report.profile, report.rule_pattern)
        },
    );

    out.push_str("\nWhat Ferry read\n");
    if report.not_read {
        out.push_str("  Nothing: the file was refused before a byte of it was read (see below).\n");
    } else {
        render_what_was_read(&mut out, report);
    }

    let result = outcome(report, context.guard);
    out.push('\n');
    let (errors, warnings) = (report.errors, report.warnings);
    match result {
        Outcome::Accepted if warnings == 0 => {
            out.push_str("Result: ACCEPTED. The file passed every check.\n");
        }
        Outcome::Accepted => {
            let _ = writeln!(
                out,
                "Result: ACCEPTED. The file passed the checks, with {} (see below).",
                count(warnings, "warning")
            );
        }
        Outcome::HeldForReview(reason) => {
            let _ = writeln!(
                out,
                "Result: HELD FOR REVIEW. The file passed the checks, but {reason}. It waits until an administrator approves or rejects it."
            );
        }
        Outcome::Refused => {
            let _ = writeln!(
                out,
                "Result: REFUSED. The file has {} and was not passed on; nothing from it was imported.",
                count(errors, "error")
            );
        }
    }

    if !report.problems.is_empty() {
        let capped = report
            .problems
            .iter()
            .any(|problem| problem.line.is_none() && problem.message.starts_with('…'));
        let _ = writeln!(
            out,
            "\nProblems ({}, {}{})",
            count(errors, "error"),
            count(warnings, "warning"),
            if capped {
                format!("; at most {MAX_LISTED_PER_KIND} of each kind are listed")
            } else {
                String::new()
            }
        );
        render_problems(&mut out, &report.problems);
    }

    out.push_str("\nWhat to do next\n");
    let next = match result {
        Outcome::Refused if report.not_read => {
            "Fix what is listed above, then upload the file again. Ferry checks every new upload."
        }
        Outcome::Refused => {
            "Fix the errors listed above in the export, then upload the file again under the same name. Ferry checks every new upload."
        }
        Outcome::HeldForReview(HoldReason::HeaderOnly) => {
            "If the export really has no records (for example between school years), nothing: the vendor will approve it. Otherwise the export probably failed: run it again and upload the complete file, and tell the vendor this one can be rejected."
        }
        Outcome::HeldForReview(HoldReason::RowDrop { .. }) => {
            "If the smaller file is expected (for example students left at the end of a term), nothing: the vendor will approve it. If the export was cut short or filtered by mistake, run it again, upload the complete file, and tell the vendor this one can be rejected."
        }
        Outcome::Accepted if warnings > 0 => {
            "Nothing is required. The warnings above did not stop the file, but fixing them in the export avoids trouble later."
        }
        Outcome::Accepted => "Nothing. The file was accepted as it is.",
    };
    let _ = writeln!(out, "  {next}");
    out
}

/// Encoding, delimiter, header, rows and columns of a file that was read.
fn render_what_was_read(out: &mut String, report: &FileReport) {
    let encoding = match (report.encoding, &report.encoding_note) {
        (None, _) => "not read".to_string(),
        (Some(charset), Some(note)) => format!("{charset} (detected: {note})"),
        (Some(charset), None) if report.encoding_detected => format!("{charset} (detected)"),
        (Some(charset), None) => format!("{charset} (required for this file)"),
    };
    field(out, "Encoding", &encoding);
    let delimiter = match report.delimiter {
        None => "not read".to_string(),
        Some(delimiter) if report.delimiter_detected => {
            format!("{delimiter} (detected from the header)")
        }
        Some(delimiter) => format!("{delimiter} (required for this file)"),
    };
    field(out, "Delimiter", &delimiter);
    if let Some(line) = report.header_line {
        field(out, "Header", &format!("line {line}"));
        field(
            out,
            "Rows",
            &format!("{} (not counting the header)", thousands(report.rows)),
        );
        field(
            out,
            "Columns",
            &format!("{}: {}", report.columns, report.header.join(", ")),
        );
    } else {
        field(out, "Rows", "none (no header line was found)");
    }
}

/// Renders the checks of a whole set (a OneRoster export, a Clever upload).
#[must_use]
pub fn render_set_report(set: &SetReport) -> String {
    let mut out = String::new();
    let title = format!("Ferry set report: {} upload", set.profile);
    let _ = writeln!(out, "{title}\n{}\n", "=".repeat(title.chars().count()));
    out.push_str("Files in this upload\n");
    for file in &set.files {
        let listed = match file.listed_as {
            Some(mode) => format!(" (manifest.csv: {})", mode.as_str()),
            None => String::new(),
        };
        let _ = writeln!(out, "  {}{listed}", printable(&file.file_name));
    }
    out.push('\n');
    if set.problems.is_empty() {
        out.push_str("Result: the set is complete.\n");
        return out;
    }
    let errors = set.problems.iter().filter(|p| p.is_error()).count() as u64;
    if errors > 0 {
        let _ = writeln!(
            out,
            "Result: REFUSED. The set has {} and was not passed on.",
            count(errors, "error")
        );
    } else {
        out.push_str("Result: the set is complete, with warnings.\n");
    }
    out.push_str("\nProblems\n");
    render_problems(&mut out, &set.problems);
    out
}

fn render_problems(out: &mut String, problems: &[Problem]) {
    for (number, problem) in problems.iter().enumerate() {
        let severity = match problem.severity {
            Severity::Error => "ERROR",
            Severity::Warning => "WARNING",
        };
        let place = match problem.line {
            Some(line) => format!("Line {}: ", thousands(line)),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "  {}. {severity}. {place}{}.",
            number + 1,
            capitalise(problem.message.trim_end_matches('.'))
        );
        if !problem.what_to_do.is_empty() {
            let _ = writeln!(out, "     What to do: {}", problem.what_to_do);
        }
    }
}

fn field(out: &mut String, label: &str, value: &str) {
    let _ = writeln!(out, "  {:<14} {value}", format!("{label}:"));
}

fn count(number: u64, noun: &str) -> String {
    if number == 1 {
        format!("1 {noun}")
    } else {
        format!("{} {noun}s", thousands(number))
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
