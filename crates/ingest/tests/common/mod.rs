//! Helpers shared by the integration tests: build a plan from a rule and run
//! the checks over bytes, read in small pieces to exercise the streaming.
#![allow(dead_code)]

use std::io::Read;

use ferry_ingest::{CheckPlan, FileReport, FileRule, ProblemKind, Rules, check_reader};

/// A reader that returns at most `piece` bytes per read, so chunk boundaries
/// fall everywhere.
pub struct Trickle<'a> {
    pub bytes: &'a [u8],
    pub piece: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let count = self.piece.min(buffer.len()).min(self.bytes.len());
        buffer[..count].copy_from_slice(&self.bytes[..count]);
        self.bytes = &self.bytes[count..];
        Ok(count)
    }
}

/// Checks `bytes` as `name` under `rule`, whole and in 7-byte pieces, and
/// asserts both give the same report.
pub fn check_with(name: &str, bytes: &[u8], rule: &FileRule) -> FileReport {
    let plan = CheckPlan::new(name, rule);
    let whole = check_reader(bytes, &plan).expect("reading from memory");
    let trickled = check_reader(Trickle { bytes, piece: 7 }, &plan).expect("reading from memory");
    assert_eq!(
        serde_json::to_value(&whole).unwrap(),
        serde_json::to_value(&trickled).unwrap(),
        "the report must not depend on how the file is read"
    );
    whole
}

/// Checks under the default rule (generic CSV, everything detected).
pub fn check(name: &str, bytes: &[u8]) -> FileReport {
    check_with(name, bytes, &FileRule::default())
}

/// A rule from TOML (one `[[rules]]` table without its header).
pub fn rule(toml_body: &str) -> FileRule {
    let rules = Rules::from_toml_str(&format!("[[rules]]\n{toml_body}\n")).expect("valid rule");
    rules.rules.into_iter().next().unwrap()
}

/// The lines of the problems of `kind`, listed ones only.
pub fn lines(report: &FileReport, kind: ProblemKind) -> Vec<u64> {
    report
        .problems
        .iter()
        .filter(|problem| problem.kind == kind)
        .filter_map(|problem| problem.line)
        .collect()
}

/// The kinds of all problems.
pub fn kinds(report: &FileReport) -> Vec<ProblemKind> {
    report.problems.iter().map(|problem| problem.kind).collect()
}
