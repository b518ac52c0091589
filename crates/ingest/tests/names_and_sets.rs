//! Date suffixes and logical names, profiles' per-file columns, and the
//! OneRoster and Clever set checks.

mod common;

use common::{check, check_with, kinds, lines, rule};
use ferry_ingest::{
    FileMode, ManifestError, OneRosterManifest, ProblemKind, Profile, check_clever_set,
    check_oneroster_set, render_set_report,
};

#[test]
fn date_suffixes_map_to_the_logical_name_and_are_reported() {
    for (name, logical, shown) in [
        ("students_20261123.csv", "students.csv", "2026-11-23"),
        (
            "students_20261123235959.csv",
            "students.csv",
            "2026-11-23 23:59:59",
        ),
        (
            "students_2026112323595912.csv",
            "students.csv",
            "2026-11-23 23:59:59.12",
        ),
        ("students.csv", "students.csv", ""),
    ] {
        let report = check(name, b"id,name\n1,a\n");
        assert_eq!(report.file_name, name);
        assert_eq!(report.logical_name, logical);
        assert_eq!(
            report
                .date_suffix
                .map(|suffix| suffix.to_string())
                .unwrap_or_default(),
            shown
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["logical_name"], logical);
    }
}

#[test]
fn impossible_dates_in_the_name_are_errors() {
    for (name, reason) in [
        ("students_20261345.csv", "there is no month 13"),
        ("students_20260431.csv", "April 2026 has no day 31"),
        (
            "students_20261123250000.csv",
            "25:00:00 is not a time of day",
        ),
    ] {
        let report = check(name, b"id,name\n1,a\n");
        assert_eq!(
            report.logical_name, name,
            "an invalid suffix is not removed"
        );
        assert_eq!(report.date_suffix, None);
        assert_eq!(kinds(&report), [ProblemKind::BadDateSuffix]);
        assert!(
            report.problems[0].message.contains(reason),
            "{}",
            report.problems[0].message
        );
        assert!(
            report.problems[0]
                .what_to_do
                .contains("students_YYYYMMDD.csv")
        );
        assert!(!report.passed());
    }
}

fn oneroster() -> ferry_ingest::FileRule {
    rule("pattern = \"*.csv\"\nprofile = \"oneroster-1.1\"")
}

#[test]
fn oneroster_file_needs_every_spec_column_and_required_values() {
    let good = "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\n\
                d1,,,Lincoln USD,district,0042,\n\
                s1,,,Lincoln High,school,0042-1,d1\n";
    let report = check_with("orgs_20261123.csv", good.as_bytes(), &oneroster());
    assert_eq!(report.profile, Profile::OneRoster11);
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    let report = check_with(
        "orgs.csv",
        b"sourcedId,name,type,identifier\nd1,Lincoln USD,district,1\n",
        &oneroster(),
    );
    let missing = &report.problems[0];
    assert_eq!(missing.kind, ProblemKind::MissingColumns);
    assert!(
        missing
            .message
            .ends_with("columns: status, dateLastModified, parentSourcedId"),
        "{}",
        missing.message
    );
    assert!(
        missing
            .what_to_do
            .contains("OneRoster 1.1 CSV requires them")
    );

    let report = check_with(
        "orgs.csv",
        b"sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\n,,,Lincoln USD,district,,\ns1,,,,school,,d1\n",
        &oneroster(),
    );
    assert_eq!(lines(&report, ProblemKind::MissingValue), [2, 3]);
    assert!(
        report.problems[0]
            .message
            .contains("sourcedId value is empty")
    );
    assert!(report.problems[1].message.contains("name value is empty"));
}

#[test]
fn oneroster_column_order_is_a_warning() {
    let report = check_with(
        "orgs.csv",
        b"name,sourcedId,status,dateLastModified,type,identifier,parentSourcedId\nX,d1,,,district,,\n",
        &oneroster(),
    );
    assert_eq!(kinds(&report), [ProblemKind::ColumnOrder]);
    assert!(report.passed());
}

#[test]
fn oneroster_unknown_file_name_is_a_warning() {
    let report = check_with("staff.csv", b"id,name\n1,a\n", &oneroster());
    assert_eq!(kinds(&report), [ProblemKind::UnknownFileName]);
}

const MANIFEST: &str = "propertyName,value\r\nmanifest.version,1.0\r\noneroster.version,1.1\r\nfile.academicSessions,bulk\r\nfile.categories,absent\r\nfile.classes,bulk\r\nfile.classResources,absent\r\nfile.courses,bulk\r\nfile.courseResources,absent\r\nfile.demographics,absent\r\nfile.enrollments,bulk\r\nfile.lineItems,absent\r\nfile.orgs,bulk\r\nfile.resources,absent\r\nfile.results,absent\r\nfile.users,delta\r\nsource.systemName,Infinite Campus\r\n";

const SET: [&str; 7] = [
    "manifest.csv",
    "academicSessions_20261123.csv",
    "classes_20261123.csv",
    "courses_20261123.csv",
    "enrollments_20261123.csv",
    "orgs_20261123.csv",
    "users_20261123.csv",
];

#[test]
fn oneroster_set_with_manifest_passes() {
    let manifest = OneRosterManifest::read(MANIFEST.as_bytes()).unwrap();
    let report = check_oneroster_set(&SET, Some(Ok(&manifest)));
    assert!(report.passed(), "{:?}", report.problems);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let users = report
        .files
        .iter()
        .find(|f| f.logical_name == "users.csv")
        .unwrap();
    assert_eq!(users.listed_as, Some(FileMode::Delta));
    // manifest.csv itself is checked as a file too
    let file = check_with("manifest.csv", MANIFEST.as_bytes(), &oneroster());
    assert!(file.problems.is_empty(), "{:?}", file.problems);
}

#[test]
fn oneroster_set_without_manifest_is_reported_with_that_reason() {
    let without: Vec<&str> = SET[1..].to_vec();
    let report = check_oneroster_set(&without, None);
    assert!(!report.passed());
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].kind, ProblemKind::MissingManifest);
    assert!(report.problems[0].message.contains("has no manifest.csv"));
    let text = render_set_report(&report);
    assert!(text.contains("Result: REFUSED"), "{text}");
    assert!(text.contains("has no manifest.csv"), "{text}");
}

#[test]
fn file_listed_in_the_manifest_but_missing_is_reported() {
    let manifest = OneRosterManifest::read(MANIFEST.as_bytes()).unwrap();
    let without_users: Vec<&str> = SET
        .iter()
        .copied()
        .filter(|n| !n.starts_with("users"))
        .collect();
    let report = check_oneroster_set(&without_users, Some(Ok(&manifest)));
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let problem = &report.problems[0];
    assert_eq!(problem.kind, ProblemKind::MissingSetFile);
    assert!(
        problem
            .message
            .contains("lists users.csv as delta (line 16), but users.csv is not in this upload"),
        "{}",
        problem.message
    );
}

#[test]
fn files_not_listed_or_listed_absent_are_warnings() {
    let manifest = OneRosterManifest::read(MANIFEST.as_bytes()).unwrap();
    let mut names = SET.to_vec();
    names.push("demographics.csv");
    let report = check_oneroster_set(&names, Some(Ok(&manifest)));
    assert_eq!(kinds_of(&report.problems), [ProblemKind::UnlistedSetFile]);
    assert!(report.passed());

    let short = OneRosterManifest::read(
        "propertyName,value\noneroster.version,1.1\nfile.orgs,bulk\n".as_bytes(),
    )
    .unwrap();
    let report = check_oneroster_set(&["manifest.csv", "orgs.csv", "users.csv"], Some(Ok(&short)));
    assert_eq!(kinds_of(&report.problems), [ProblemKind::UnlistedSetFile]);
    assert!(report.problems[0].what_to_do.contains("file.users,bulk"));
}

#[test]
fn bad_manifests() {
    let wrong_version = OneRosterManifest::read(
        "propertyName,value\noneroster.version,1.2\nfile.orgs,full\n".as_bytes(),
    )
    .unwrap();
    let report = check_oneroster_set(&["manifest.csv", "orgs.csv"], Some(Ok(&wrong_version)));
    assert_eq!(
        kinds_of(&report.problems),
        [ProblemKind::BadManifest, ProblemKind::BadManifest]
    );
    assert!(report.problems[0].message.contains("1.2"));
    assert!(
        report.problems[1]
            .message
            .contains("must be bulk, delta or absent")
    );

    let error = OneRosterManifest::read("a,b\n".as_bytes()).unwrap_err();
    assert!(matches!(error, ManifestError::Header(_)));
    let report = check_oneroster_set(&["manifest.csv"], Some(Err(&error)));
    assert_eq!(kinds_of(&report.problems), [ProblemKind::BadManifest]);
}

fn kinds_of(problems: &[ferry_ingest::Problem]) -> Vec<ProblemKind> {
    problems.iter().map(|p| p.kind).collect()
}

#[test]
fn clever_set_missing_a_required_file() {
    let complete = [
        "schools.csv",
        "students.csv",
        "teachers.csv",
        "sections.csv",
        "enrollments.csv",
    ];
    let report = check_clever_set(&complete);
    assert!(report.passed());
    let report = check_clever_set(&[
        "schools.csv",
        "students.csv",
        "teachers.csv",
        "enrollments.csv",
        "staff.csv",
    ]);
    assert!(!report.passed());
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].kind, ProblemKind::MissingSetFile);
    assert!(
        report.problems[0]
            .message
            .starts_with("sections.csv is missing")
    );
    // staff.csv is optional
    let report = check_clever_set(&complete[..]);
    assert!(report.problems.is_empty());
}

#[test]
fn clever_files_need_their_required_columns() {
    let clever = rule("pattern = \"*.csv\"\nprofile = \"clever\"");
    let report = check_with(
        "students.csv",
        b"School_id,Student_id,First_name,Grade\n1,100,Ann,3\n",
        &clever,
    );
    assert_eq!(kinds(&report), [ProblemKind::MissingColumns]);
    assert!(report.problems[0].message.ends_with("column: Last_name"));
    let report = check_with(
        "staff.csv",
        b"school_id,staff_id,staff_email,first_name,last_name,title\n1,9,a@b.org,Ann,Lee,Principal\n",
        &clever,
    );
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}
