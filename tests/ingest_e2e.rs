//! Ingest end to end: a real `ferry serve` with the pipeline on (settle and
//! quiet period 1 s), real OpenSSH `sftp` uploads, a hand-off command that
//! logs what it was given, and a webhook receiver in the test that checks
//! `X-Ferry-Signature` itself (HMAC-SHA256 of the body).
//!
//! Each test asserts the outcome DESIGN.md ("Ingest") promises: every
//! finished file processed exactly once, nothing half-written or temporary
//! ever processed, held files handed over only after approval, and the
//! reports in `/reports` saying why.

mod common;
mod ingest_support;

use std::time::Duration;

use common::*;
use ingest_support::*;
use serde_json::Value;

// ---------------------------------------------------------------- tests

#[test]
fn winscp_style_upload_is_processed_once_under_its_final_name() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let receiver = start_receiver(0);
    let (env, _server, login) = ingest_setup("winscp", &receiver.config());
    let local = login.work.join("x.csv");
    std::fs::write(&local, roster(500)).unwrap();
    let sha = sha256_file(&local);
    login
        .sftp_batch(
            "put x.csv /inbound/x.csv.filepart\nrename /inbound/x.csv.filepart /inbound/x.csv\n",
        )
        .assert_success();

    let rows = env.wait_uploads("winscp", PIPELINE_TIMEOUT, "x.csv archived", |rows| {
        all_in_state(rows, 1, "archived")
    });
    assert_eq!(rows[0]["name"], "x.csv");
    assert_eq!(rows[0]["sha256"], sha.as_str());
    assert_eq!(rows[0]["size"], roster(500).len() as i64);
    let calls = receiver.calls();
    assert_eq!(calls.len(), 1, "one webhook call: {calls:?}");
    assert!(calls[0].signature_ok, "X-Ferry-Signature must verify");
    assert_eq!(file_names(&calls[0]), ["x.csv"]);
    assert_eq!(calls[0].body["files"][0]["sha256"], sha.as_str());
    assert_eq!(calls[0].body["files"][0]["checks"]["rows"], 500);

    let archive = env.account_root("winscp").join("archive");
    let archived = files_under(&archive);
    assert_eq!(archived.len(), 1, "{archived:?}");
    assert!(archived[0].ends_with("x.csv"), "{archived:?}");
    assert_eq!(sha256_file(&archive.join(&archived[0])), sha);
    assert!(dir_names(&env.inbound("winscp")).is_empty());
    let reports = reports_text(&env, "winscp");
    assert!(reports.contains("Ferry upload report: x.csv"), "{reports}");
    assert!(reports.contains("Result: ACCEPTED"), "{reports}");
    assert!(
        reports.contains("Handed over to the vendor's import in batch"),
        "{reports}"
    );
    assert!(!reports.contains("filepart"), "{reports}");

    // The watcher and the scans saw the same file: nothing more happens.
    stays(
        Duration::from_secs(5),
        "the upload must be processed exactly once",
        || receiver.calls().len() == 1 && env.uploads(Some("winscp")).len() == 1,
    );
}

#[test]
fn client_killed_mid_upload_leaves_a_partial_record_and_nothing_processed() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let handoff = Handoff::new("");
    let (env, mut server, login) = ingest_setup("killed", &handoff.config());
    let big = login.work.join("big.csv");
    write_random(&big, 32 * 1024 * 1024);
    let mut client = Running::spawn(
        login.sftp_command(&["-l", "4096"]),
        Some(b"put big.csv /inbound/big.csv\n".to_vec()),
    );
    let started = wait_until(Duration::from_secs(30), || {
        std::fs::read_dir(env.uploading("killed"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.metadata().is_ok_and(|m| m.len() > 256 * 1024))
    });
    assert!(started, "the upload never got going");
    assert!(client.is_running(), "the throttled upload ended too early");
    client.kill_group();
    let _ = client.finish(Duration::from_secs(10));

    let rows = env.wait_uploads("killed", PIPELINE_TIMEOUT, "a partial record", |rows| {
        rows.iter().any(|r| r["state"] == "partial")
    });
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(
        rows[0]["name"], "big.csv",
        "named like finished files: the path under /inbound"
    );
    stays(
        Duration::from_secs(5),
        "a partial upload must never be processed",
        || {
            states(&env.uploads(Some("killed")))
                .iter()
                .all(|(_, state)| state == "partial")
                && handoff.done().is_empty()
                && files_under(&env.account_root("killed").join("archive")).is_empty()
                && files_under(&env.account_root("killed").join("reports")).is_empty()
        },
    );
    assert!(server.is_running());
}

#[test]
fn kill_9_in_the_middle_of_a_batch_then_restart_finishes_it_exactly_once() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let started = tempfile::NamedTempFile::new().unwrap();
    let handoff = Handoff::new(&format!(
        "echo \"$FERRY_BATCH_ID\" >> {:?}\nsleep 3",
        started.path()
    ));
    let env = Env::with_ingest(&handoff.config());
    env.create_account("crash");
    let key = env.new_key("crash");
    env.install_key("crash", &key);
    let mut server = env.start();
    let login = env.login(&server, "crash", &key);
    std::fs::write(login.work.join("a.csv"), roster(10)).unwrap();
    std::fs::write(login.work.join("b.csv"), roster(20)).unwrap();
    login
        .sftp_batch("put a.csv /inbound/a.csv\nput b.csv /inbound/b.csv\n")
        .assert_success();

    assert!(
        wait_until(PIPELINE_TIMEOUT, || !read_lines(started.path()).is_empty()),
        "the hand-off command never started; log:\n{}",
        server.log_text()
    );
    server.kill9();
    // The command died with the node: its "done" line never comes.
    stays(
        Duration::from_secs(4),
        "a killed node's hand-off must not complete",
        || handoff.done().is_empty(),
    );
    assert_eq!(
        states(&env.uploads(Some("crash"))),
        [
            ("a.csv".to_owned(), "checking".to_owned()),
            ("b.csv".to_owned(), "checking".to_owned())
        ]
    );

    let _restarted = env.start();
    env.wait_uploads(
        "crash",
        PIPELINE_TIMEOUT,
        "both files archived after the restart",
        |rows| all_in_state(rows, 2, "archived"),
    );
    let handed = handoff.done();
    assert_eq!(handed.len(), 1, "one completed hand-off: {handed:?}");
    assert!(
        handed[0].ends_with("crash a.csv b.csv "),
        "both files in one batch: {handed:?}"
    );
    let archived = files_under(&env.account_root("crash").join("archive"));
    assert_eq!(archived.len(), 2, "{archived:?}");
    assert!(dir_names(&env.inbound("crash")).is_empty());
    stays(
        Duration::from_secs(4),
        "the batch must be handed over exactly once",
        || handoff.done().len() == 1,
    );
}

#[test]
fn files_copied_into_inbound_while_ferry_is_stopped_are_processed_at_start() {
    if !require(&[SSH_KEYGEN]) {
        return;
    }
    let handoff = Handoff::new("");
    let env = Env::with_ingest(&handoff.config());
    env.create_account("offline");
    std::fs::create_dir_all(env.inbound("offline").join("2026")).unwrap();
    std::fs::write(env.inbound("offline").join("schools.csv"), roster(3)).unwrap();
    std::fs::write(env.inbound("offline").join("2026/staff.csv"), roster(4)).unwrap();
    std::fs::write(env.inbound("offline").join("half.csv.part"), "student_id\n").unwrap();

    let _server = env.start();
    env.wait_uploads("offline", PIPELINE_TIMEOUT, "both files archived", |rows| {
        all_in_state(rows, 2, "archived")
    });
    assert_eq!(
        states(&env.uploads(Some("offline"))),
        [
            ("2026/staff.csv".to_owned(), "archived".to_owned()),
            ("schools.csv".to_owned(), "archived".to_owned())
        ]
    );
    let handed = handoff.done();
    assert_eq!(handed.len(), 1, "{handed:?}");
    assert!(
        handed[0].ends_with("offline schools.csv staff.csv "),
        "{handed:?}"
    );
    assert_eq!(
        dir_names(&env.inbound("offline")),
        ["2026", "half.csv.part"],
        "the temporary name is left alone"
    );
}

#[test]
fn oneroster_set_without_manifest_is_refused_with_that_reason() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let rules = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        rules.path(),
        "[[rules]]\npattern = \"*.csv\"\nprofile = \"oneroster-1.1\"\n",
    )
    .unwrap();
    let handoff = Handoff::new("");
    let (env, _server, login) = ingest_setup(
        "oneroster",
        &format!(
            "rules_file = {:?}\n{}",
            rules.path().display().to_string(),
            handoff.config()
        ),
    );
    std::fs::write(
        login.work.join("orgs.csv"),
        "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\n\
         o1,active,2026-11-01,Lincoln High,school,LHS,\n",
    )
    .unwrap();
    std::fs::write(
        login.work.join("academicSessions.csv"),
        "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear\n\
         t1,active,2026-11-01,Fall,term,2026-08-15,2026-12-20,,2027\n",
    )
    .unwrap();
    login
        .sftp_batch("put orgs.csv /inbound/orgs.csv\nput academicSessions.csv /inbound/academicSessions.csv\n")
        .assert_success();
    env.wait_uploads("oneroster", PIPELINE_TIMEOUT, "the set refused", |rows| {
        all_in_state(rows, 2, "rejected")
    });
    let reports = reports_text(&env, "oneroster");
    assert!(reports.contains("Ferry set report"), "{reports}");
    assert!(reports.contains("no manifest.csv"), "{reports}");
    assert!(reports.contains("REFUSED"), "{reports}");
    assert!(
        handoff.done().is_empty(),
        "nothing of a refused set is handed over"
    );
    assert_eq!(
        files_under(&env.account_root("oneroster").join("archive")).len(),
        2,
        "refused files are archived for the district to see"
    );
}

#[test]
fn windows_1252_file_with_a_plain_header_is_read_correctly() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let receiver = start_receiver(0);
    let (env, _server, login) = ingest_setup("cp1252", &receiver.config());
    // "José" and "Renée" in Windows-1252 (0xE9), no byte-order mark.
    let mut bytes = b"student_id,first_name\r\n1,Jos".to_vec();
    bytes.push(0xE9);
    bytes.extend_from_slice(b"\r\n2,Ren");
    bytes.push(0xE9);
    bytes.extend_from_slice(b"e\r\n");
    std::fs::write(login.work.join("students.csv"), &bytes).unwrap();
    login
        .sftp_batch("put students.csv /inbound/students.csv\n")
        .assert_success();
    env.wait_uploads("cp1252", PIPELINE_TIMEOUT, "the file archived", |rows| {
        all_in_state(rows, 1, "archived")
    });
    let reports = reports_text(&env, "cp1252");
    assert!(
        reports.contains("Encoding:      Windows-1252 (detected: line 2 has byte 0xE9"),
        "{reports}"
    );
    assert!(reports.contains("2 (not counting the header)"), "{reports}");
    assert!(reports.contains("student_id, first_name"), "{reports}");
    assert!(reports.contains("Result: ACCEPTED"), "{reports}");
    let calls = receiver.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].body["files"][0]["checks"]["encoding"],
        "Windows-1252"
    );
    assert_eq!(calls[0].body["files"][0]["checks"]["rows"], 2);
    assert_eq!(calls[0].body["files"][0]["checks"]["errors"], 0);
}

#[test]
fn header_only_file_and_a_15_percent_row_drop_are_held_until_approved() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let handoff = Handoff::new("");
    let (env, _server, login) = ingest_setup("guard", &handoff.config());
    std::fs::write(login.work.join("students_20261122.csv"), roster(100)).unwrap();
    login
        .sftp_batch("put students_20261122.csv /inbound/students_20261122.csv\n")
        .assert_success();
    env.wait_uploads(
        "guard",
        PIPELINE_TIMEOUT,
        "the first roster archived",
        |rows| all_in_state(rows, 1, "archived"),
    );
    assert_eq!(handoff.done().len(), 1);

    std::fs::write(login.work.join("students_20261123.csv"), roster(85)).unwrap();
    std::fs::write(login.work.join("teachers.csv"), "teacher_id,last_name\n").unwrap();
    std::fs::write(login.work.join("staff.csv"), "staff_id,last_name\n").unwrap();
    login
        .sftp_batch(
            "put students_20261123.csv /inbound/students_20261123.csv\nput teachers.csv /inbound/teachers.csv\nput staff.csv /inbound/staff.csv\n",
        )
        .assert_success();
    let rows = env.wait_uploads("guard", PIPELINE_TIMEOUT, "three files held", |rows| {
        rows.iter().filter(|r| r["state"] == "held").count() == 3
    });
    assert_eq!(handoff.done().len(), 1, "held files are not handed over");
    let reports = reports_text(&env, "guard");
    assert!(reports.contains("HELD FOR REVIEW"), "{reports}");
    assert!(
        reports.contains("85 rows, 15 fewer than the 100"),
        "{reports}"
    );
    assert!(reports.contains("header and no rows"), "{reports}");
    stays(
        Duration::from_secs(2),
        "held files wait for a decision",
        || {
            env.uploads(Some("guard"))
                .iter()
                .filter(|r| r["state"] == "held")
                .count()
                == 3
        },
    );

    let staff = rows.iter().find(|r| r["name"] == "staff.csv").unwrap();
    let staff_id = staff["id"].as_i64().unwrap().to_string();
    let rejected = env.ferry_ok(&["uploads", "reject", &staff_id]);
    assert!(rejected.stdout.contains("rejected"), "{rejected}");
    for row in rows
        .iter()
        .filter(|r| r["state"] == "held" && r["name"] != "staff.csv")
    {
        let id = row["id"].as_i64().unwrap().to_string();
        let approved = env.ferry_ok(&["uploads", "approve", &id]);
        assert!(approved.stdout.contains("approved"), "{approved}");
        let again = env.ferry(&["uploads", "approve", &id]);
        assert!(
            !again.success() && again.stderr.contains("cannot be approved"),
            "{again}"
        );
    }
    env.wait_uploads(
        "guard",
        PIPELINE_TIMEOUT,
        "approved files archived, the rejected one rejected",
        |rows| {
            states(rows)
                == [
                    ("staff.csv".to_owned(), "rejected".to_owned()),
                    ("students_20261122.csv".to_owned(), "archived".to_owned()),
                    ("students_20261123.csv".to_owned(), "archived".to_owned()),
                    ("teachers.csv".to_owned(), "archived".to_owned()),
                ]
        },
    );
    let handed = handoff.done();
    assert_eq!(handed.len(), 2, "{handed:?}");
    assert!(
        handed[1].ends_with("students_20261123.csv teachers.csv "),
        "{handed:?}"
    );
    let reports = reports_text(&env, "guard");
    assert!(reports.contains("Approved by cli:"), "{reports}");
    assert!(reports.contains("Decision: REJECTED by cli:"), "{reports}");
    let archived = files_under(&env.account_root("guard").join("archive"));
    assert_eq!(
        archived.len(),
        4,
        "the rejected file is archived too: {archived:?}"
    );
    let students = rows
        .iter()
        .find(|r| r["name"] == "students_20261123.csv")
        .unwrap();
    let shown = env.ferry_ok(&[
        "uploads",
        "show",
        &students["id"].as_i64().unwrap().to_string(),
    ]);
    assert!(shown.stdout.contains("state:        archived"), "{shown}");
    assert!(shown.stdout.contains("Approved by"), "{shown}");
}

#[test]
fn webhook_gets_the_batch_again_after_answering_500() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let receiver = start_receiver(1);
    let (env, _server, login) = ingest_setup("webhook", &receiver.config());
    std::fs::write(login.work.join("classes.csv"), roster(7)).unwrap();
    login
        .sftp_batch("put classes.csv /inbound/classes.csv\n")
        .assert_success();
    env.wait_uploads("webhook", PIPELINE_TIMEOUT, "the file archived", |rows| {
        all_in_state(rows, 1, "archived")
    });
    let calls = receiver.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(
        calls.iter().map(|c| c.answered).collect::<Vec<_>>(),
        [500, 200]
    );
    assert!(calls.iter().all(|c| c.signature_ok), "every try is signed");
    assert_eq!(calls[0].raw, calls[1].raw, "the same batch again");
    assert_eq!(file_names(&calls[1]), ["classes.csv"]);
    let reports = reports_text(&env, "webhook");
    assert!(
        reports.contains("Handed over to the vendor's import"),
        "{reports}"
    );
    assert!(!reports.contains(SECRET), "the secret is never written");
    assert!(
        !reports.contains("/hook"),
        "the URL is the vendor's: {reports}"
    );
    let rows = env.uploads(Some("webhook"));
    assert_eq!(rows[0]["handoff"]["webhook_status"], 200, "{rows:#?}");
    assert_eq!(rows[0]["handoff"]["webhook_url"], receiver.url.as_str());
    stays(Duration::from_secs(3), "exactly one success", || {
        receiver.calls().len() == 2
    });
}

#[test]
fn account_list_shows_an_account_without_its_expected_upload_as_stale() {
    let env = Env::new();
    env.create_account("late");
    env.create_account("relaxed");
    env.ferry_ok(&["account", "set", "late", "--expected-every", "1s"]);
    let stale = |name: &str| {
        let r = env.ferry_ok(&["account", "list", "--json"]);
        let accounts: Vec<Value> = serde_json::from_str(&r.stdout).unwrap();
        accounts
            .iter()
            .find(|a| a["name"] == name)
            .map(|a| a["stale"].clone())
            .unwrap()
    };
    assert_eq!(stale("relaxed"), false);
    assert!(
        wait_until(Duration::from_secs(20), || stale("late") == true),
        "an account expected every second with no upload must turn stale"
    );
    assert_eq!(stale("relaxed"), false, "no expectation, never stale");
    let text = env.ferry_ok(&["account", "list"]).stdout;
    let late = text.lines().find(|l| l.starts_with("late\t")).unwrap();
    assert!(late.contains("STALE"), "{text}");
    let relaxed = text.lines().find(|l| l.starts_with("relaxed\t")).unwrap();
    assert!(!relaxed.contains("STALE"), "{text}");
}
