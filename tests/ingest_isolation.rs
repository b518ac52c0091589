//! Ingest isolation and secrecy, end to end (issue 11): a real `ferry serve`
//! with the pipeline on (settle and quiet period 1 s), real OpenSSH `sftp`
//! uploads, files placed in `/inbound` by other means, a hand-off command
//! and a webhook receiver of the test's own.
//!
//! - One district's slow hand-off or huge file never holds up another's
//!   batch; within one district, batches stay in order.
//! - A file over its size limit is refused from its size alone, never read.
//! - A name with a line break never reaches `FERRY_FILES`.
//! - `FERRY_MANIFEST` is byte for byte the webhook's body.
//! - The vendor's URLs, credentials, commands and output never reach a
//!   district's `/reports`; the vendor sees them, redacted, in the CLI.
//! - Names of 250 characters are archived and reported.

mod common;
mod ingest_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use ingest_support::*;
use serde_json::Value;

/// An installation with ingest on (`extra_ingest` in `[ingest]`), these
/// accounts with a key each, a running server and a login per account.
fn accounts_setup(extra_ingest: &str, accounts: &[&str]) -> (Env, Server, Vec<Login>) {
    let env = Env::with_ingest(extra_ingest);
    let keys: Vec<ClientKey> = accounts
        .iter()
        .map(|account| {
            env.create_account(account);
            let key = env.new_key(account);
            env.install_key(account, &key);
            key
        })
        .collect();
    let server = env.start();
    let logins = accounts
        .iter()
        .zip(&keys)
        .map(|(account, key)| env.login(&server, account, key))
        .collect();
    (env, server, logins)
}

fn upload(login: &Login, name: &str, content: &str) {
    std::fs::write(login.work.join(name), content).unwrap();
    login
        .sftp_batch(&format!("put {name} /inbound/{name}\n"))
        .assert_success();
}

fn row<'a>(rows: &'a [Value], name: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no upload named {name:?} in {rows:#?}"))
}

/// Lines of `done.log` that are hand-offs of `account`.
fn done_of(handoff: &Handoff, account: &str) -> Vec<String> {
    handoff
        .done()
        .into_iter()
        .filter(|line| line.split(' ').nth(1) == Some(account))
        .collect()
}

#[test]
fn a_slow_hand_off_of_one_account_does_not_hold_up_another_and_each_account_keeps_its_order() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let marks = tempfile::tempdir().unwrap();
    let started = marks.path().join("slow-started");
    let release = marks.path().join("release");
    // Account "slow": the command sleeps 20 s (in steps, so the test can end
    // it early once it has seen what it needs).
    let handoff = Handoff::new(&format!(
        "if [ \"$FERRY_ACCOUNT\" = slow ] && [ ! -e {started:?} ]; then\n\
           touch {started:?}\n\
           i=0; while [ $i -lt 200 ] && [ ! -e {release:?} ]; do sleep 0.1; i=$((i+1)); done\n\
         fi"
    ));
    let (env, server, logins) = accounts_setup(&handoff.config(), &["slow", "quick"]);
    upload(&logins[0], "first.csv", &roster(5));
    assert!(
        wait_until(PIPELINE_TIMEOUT, || started.exists()),
        "slow's hand-off never started; log:\n{}",
        server.log_text()
    );

    // While slow's command sleeps: another file of slow, and quick's file.
    upload(&logins[0], "second.csv", &roster(6));
    let quick_uploaded = Instant::now();
    upload(&logins[1], "quick.csv", &roster(7));
    let rows = env.wait_uploads("quick", PIPELINE_TIMEOUT, "quick's file archived", |rows| {
        all_in_state(rows, 1, "archived")
    });
    let quick_took = quick_uploaded.elapsed();
    assert!(!release.exists());
    assert_eq!(
        done_of(&handoff, "slow"),
        Vec::<String>::new(),
        "quick was handed over while slow's command still ran"
    );
    assert_eq!(done_of(&handoff, "quick").len(), 1, "{:?}", handoff.done());
    assert_eq!(rows[0]["name"], "quick.csv");
    let slow = env.uploads(Some("slow"));
    assert_eq!(
        states(&slow),
        [
            ("first.csv".to_owned(), "checking".to_owned()),
            ("second.csv".to_owned(), "received".to_owned())
        ],
        "slow's second file waits for its first batch"
    );
    eprintln!(
        "quick handed over {:.1} s after its upload (quiet period 1 s) while slow's 20 s hand-off ran",
        quick_took.as_secs_f64()
    );

    // slow's command ends: its batches follow in order.
    std::fs::write(&release, "").unwrap();
    env.wait_uploads(
        "slow",
        PIPELINE_TIMEOUT,
        "both of slow's files archived",
        |rows| all_in_state(rows, 2, "archived"),
    );
    let slow_done = done_of(&handoff, "slow");
    assert_eq!(slow_done.len(), 2, "{slow_done:?}");
    assert!(slow_done[0].ends_with("slow first.csv "), "{slow_done:?}");
    assert!(slow_done[1].ends_with("slow second.csv "), "{slow_done:?}");
    let batch = |line: &str| line.split(' ').next().unwrap().parse::<i64>().unwrap();
    assert!(batch(&slow_done[0]) < batch(&slow_done[1]));
}

/// Whether reading a file on this file system updates its access time
/// (relatime does when the access time is older than the modification time).
fn reads_update_atime(dir: &Path) -> bool {
    let probe = dir.join("atime-probe");
    std::fs::write(&probe, "x").unwrap();
    set_atime(
        &probe,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000),
    );
    let before = std::fs::metadata(&probe).unwrap().accessed().unwrap();
    let _ = std::fs::read(&probe).unwrap();
    std::fs::metadata(&probe).unwrap().accessed().unwrap() != before
}

fn set_atime(path: &Path, at: SystemTime) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_times(std::fs::FileTimes::new().set_accessed(at))
        .unwrap();
}

#[test]
fn a_4_gib_sparse_file_is_refused_by_its_size_without_being_read_and_another_account_is_not_delayed()
 {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let handoff = Handoff::new("");
    let (env, _server, logins) = accounts_setup(
        &format!("max_file_size = \"1 GiB\"\n{}", handoff.config()),
        &["huge", "quick"],
    );
    // A 4 GiB file with no data blocks, written by other means than SFTP,
    // with an access time in the past: reading it would move the access time.
    let atime_works = reads_update_atime(env.root());
    let huge = env.inbound("huge").join("everything.csv");
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(4 << 30).unwrap();
    drop(file);
    let long_ago = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    set_atime(&huge, long_ago);
    upload(&logins[1], "quick.csv", &roster(3));

    let rows = env.wait_uploads("huge", PIPELINE_TIMEOUT, "the huge file refused", |rows| {
        all_in_state(rows, 1, "rejected")
    });
    let refused = &rows[0];
    assert_eq!(refused["size"], 4_i64 << 30);
    assert!(refused["sha256"].is_null(), "never hashed: {refused}");
    let detail = refused["detail"].as_str().unwrap();
    assert!(detail.starts_with("refused without being read"), "{detail}");
    assert!(detail.contains("1,073,741,824 bytes"), "{detail}");
    let report = reports_text(&env, "huge");
    assert!(
        report.contains("not computed: the file was not read"),
        "{report}"
    );
    assert!(
        report.contains("Nothing: the file was refused before a byte of it was read"),
        "{report}"
    );
    assert!(report.contains("Result: REFUSED"), "{report}");
    let archived = files_under(&env.account_root("huge").join("archive"));
    assert_eq!(archived.len(), 1, "{archived:?}");
    let archived = env.account_root("huge").join("archive").join(&archived[0]);
    let meta = std::fs::metadata(&archived).unwrap();
    assert_eq!(meta.len(), 4 << 30);
    if atime_works {
        assert_eq!(
            meta.accessed().unwrap(),
            long_ago,
            "the file's access time moved: something read it"
        );
    } else {
        eprintln!(
            "this file system does not update access times on reads; relying on the missing checksum"
        );
    }

    env.wait_uploads("quick", PIPELINE_TIMEOUT, "quick's file archived", |rows| {
        all_in_state(rows, 1, "archived")
    });
    assert_eq!(done_of(&handoff, "quick").len(), 1);
    assert!(
        done_of(&handoff, "huge").is_empty(),
        "a refused file is never handed over"
    );
}

#[test]
fn a_name_with_a_line_break_arriving_by_other_means_is_refused_with_a_report() {
    if !require(&[SSH_KEYGEN]) {
        return;
    }
    let log_dir = tempfile::tempdir().unwrap();
    let files_log = log_dir.path().join("files.log");
    let handoff = Handoff::new(&format!(
        "printf '%s\\n---\\n' \"$FERRY_FILES\" >> {files_log:?}"
    ));
    let env = Env::with_ingest(&handoff.config());
    env.create_account("district");
    let evil = "roster.csv\nferry.db";
    std::fs::write(env.inbound("district").join(evil), roster(4)).unwrap();
    std::fs::write(env.inbound("district").join("good.csv"), roster(4)).unwrap();
    let _server = env.start();

    let rows = env.wait_uploads("district", PIPELINE_TIMEOUT, "both files done", |rows| {
        rows.len() == 2
            && rows
                .iter()
                .all(|r| r["state"] == "rejected" || r["state"] == "archived")
    });
    let refused = row(&rows, evil);
    assert_eq!(refused["state"], "rejected", "{rows:#?}");
    assert!(refused["sha256"].is_null());
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("control character"),
        "{refused}"
    );
    assert_eq!(row(&rows, "good.csv")["state"], "archived");

    // The hand-off saw one path, on one line.
    let files = std::fs::read_to_string(&files_log).unwrap();
    let paths: Vec<&str> = files.lines().filter(|l| *l != "---").collect();
    assert_eq!(paths.len(), 1, "{files:?}");
    assert!(
        Path::new(paths[0]).is_absolute() && paths[0].ends_with("/good.csv"),
        "{files:?}"
    );
    assert!(!files.contains("ferry.db"), "{files:?}");

    // The district reads why, in a report whose name has no line break.
    let reports_dir = env.account_root("district").join("reports");
    let report_names = files_under(&reports_dir);
    assert_eq!(report_names.len(), 2, "{report_names:?}");
    for name in report_names
        .iter()
        .chain(&files_under(&env.account_root("district").join("archive")))
    {
        let name = name.to_str().unwrap();
        assert!(!name.chars().any(|c| c.is_ascii_control()), "{name:?}");
    }
    let reports = reports_text(&env, "district");
    assert!(
        reports.contains("Ferry upload report: roster.csv\\nferry.db"),
        "{reports}"
    );
    assert!(reports.contains("control character (\\n)"), "{reports}");
    assert!(
        reports.contains("Rename the file without line breaks"),
        "{reports}"
    );
    assert!(dir_names(&env.inbound("district")).is_empty());
}

#[test]
fn ferry_manifest_holds_exactly_what_the_webhook_receives() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let receiver = start_receiver(0);
    let copies = tempfile::tempdir().unwrap();
    let handoff = Handoff::new(&format!(
        "cp \"$FERRY_MANIFEST\" {dir:?}/manifest-$FERRY_BATCH_ID.json\n\
         printf '%s' \"$FERRY_MANIFEST\" > {dir:?}/manifest-path\n\
         printf '%s' \"$FERRY_FILES\" > {dir:?}/files",
        dir = copies.path()
    ));
    let (env, _server, login) = ingest_setup(
        "manifest",
        &format!("{}{}", handoff.config(), receiver.config()),
    );
    std::fs::write(login.work.join("students_20261123.csv"), roster(12)).unwrap();
    std::fs::write(login.work.join("teachers.csv"), roster(3)).unwrap();
    login
        .sftp_batch(
            "put students_20261123.csv /inbound/students_20261123.csv\nput teachers.csv /inbound/teachers.csv\n",
        )
        .assert_success();
    let rows = env.wait_uploads(
        "manifest",
        PIPELINE_TIMEOUT,
        "both files archived",
        |rows| all_in_state(rows, 2, "archived"),
    );
    let calls = receiver.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let batch = calls[0].body["batch_id"].as_i64().unwrap();
    let manifest = std::fs::read(copies.path().join(format!("manifest-{batch}.json"))).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&manifest),
        String::from_utf8_lossy(&calls[0].raw),
        "FERRY_MANIFEST is byte for byte the webhook's body"
    );

    let body: Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(body["account"], "manifest");
    let files = body["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    let listed = std::fs::read_to_string(copies.path().join("files")).unwrap();
    let listed: Vec<&str> = listed.lines().collect();
    for (file, path) in files.iter().zip(&listed) {
        let row = row(&rows, file["name"].as_str().unwrap());
        assert_eq!(file["id"], row["id"]);
        assert_eq!(file["size"], row["size"]);
        assert_eq!(file["sha256"], row["sha256"]);
        assert_eq!(
            file["path"].as_str().unwrap(),
            *path,
            "FERRY_FILES in the same order"
        );
        assert!(Path::new(path).is_absolute(), "{path}");
        assert!(file["checks"]["rows"].is_u64(), "{file}");
    }
    let students = files
        .iter()
        .find(|f| f["name"] == "students_20261123.csv")
        .unwrap();
    assert_eq!(students["logical_name"], "students.csv");
    assert_eq!(students["checks"]["rows"], 12);
    assert_eq!(
        students["sha256"].as_str().unwrap(),
        sha256_file(&login.work.join("students_20261123.csv"))
    );
    let manifest_path = std::fs::read_to_string(copies.path().join("manifest-path")).unwrap();
    assert!(Path::new(&manifest_path).is_absolute(), "{manifest_path}");
    assert!(
        !Path::new(&manifest_path).exists(),
        "removed after the hand-off"
    );

    // The district's reports say it was handed over, and nothing of how.
    let reports = reports_text(&env, "manifest");
    assert!(
        reports.contains("Handed over to the vendor's import in batch"),
        "{reports}"
    );
    for vendor in ["handoff.sh", "handed over\n", "/hook", "127.0.0.1"] {
        assert!(!reports.contains(vendor), "{vendor:?} in {reports}");
    }
}

#[test]
fn the_vendors_urls_commands_and_output_never_reach_the_districts_reports() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let receiver = start_receiver_answering(usize::MAX, "WEBHOOK-BODY-MARKER from db-host-17");
    let secret_url = receiver
        .url
        .replace("http://", "http://svc-user:Sup3rSecret@")
        + "?api_key=K3yK3y";
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        script.path(),
        "echo COMMAND-OUTPUT-MARKER imported on db-host-17; echo \"args: $*\" >&2\n",
    )
    .unwrap();
    let config = format!(
        "command = [\"/bin/sh\", {:?}, \"--vendor-arg\", \"ARGV-MARKER\"]\n\
         webhook_url = {secret_url:?}\nwebhook_secret = {SECRET:?}\n\
         webhook_attempts = 2\nwebhook_backoff = \"100ms\"\n",
        script.path().display().to_string()
    );
    let (env, server, login) = ingest_setup("secrets", &config);
    upload(&login, "students.csv", &roster(9));
    let rows = env.wait_uploads("secrets", PIPELINE_TIMEOUT, "the hand-off failed", |rows| {
        all_in_state(rows, 1, "failed")
    });
    let id = rows[0]["id"].as_i64().unwrap();
    assert_eq!(receiver.calls().len(), 2, "two tries");

    let vendor_only = [
        "svc-user",
        "Sup3rSecret",
        "api_key",
        "K3yK3y",
        "ARGV-MARKER",
        "--vendor-arg",
        "COMMAND-OUTPUT-MARKER",
        "WEBHOOK-BODY-MARKER",
        "db-host-17",
        "127.0.0.1",
        "/hook",
        "HTTP 500",
        script.path().to_str().unwrap(),
    ];
    let reports_dir = env.account_root("secrets").join("reports");
    let reports = files_under(&reports_dir);
    assert!(!reports.is_empty());
    for report in &reports {
        let text = std::fs::read_to_string(reports_dir.join(report)).unwrap();
        for secret in vendor_only {
            assert!(
                !text.contains(secret),
                "{secret:?} in /reports/{}:\n{text}",
                report.display()
            );
        }
        assert!(
            text.contains(&format!(
                "the vendor's import did not accept this batch; the vendor has been told (reference #{id})"
            )),
            "{text}"
        );
    }
    let detail = rows[0]["detail"].as_str().unwrap();
    for secret in vendor_only {
        assert!(
            !detail.contains(secret),
            "{secret:?} in the district's detail: {detail}"
        );
    }

    // The vendor sees what happened, with the URL redacted.
    let shown = env.ferry_ok(&["uploads", "show", &id.to_string()]).stdout;
    assert!(
        shown
            .lines()
            .any(|l| l.trim_start().starts_with("command exit:") && l.ends_with(" 0")),
        "{shown}"
    );
    assert!(
        shown.contains("COMMAND-OUTPUT-MARKER imported on db-host-17"),
        "{shown}"
    );
    assert!(shown.contains("args: --vendor-arg ARGV-MARKER"), "{shown}");
    assert!(
        shown.contains(&format!("{} (HTTP 500)", receiver.url)),
        "{shown}"
    );
    assert!(
        shown.contains("WEBHOOK-BODY-MARKER from db-host-17"),
        "{shown}"
    );
    assert!(
        shown.contains("did not accept the batch after 2 tries"),
        "{shown}"
    );
    let rows = env.uploads(Some("secrets"));
    assert_eq!(rows[0]["handoff"]["webhook_url"], receiver.url.as_str());
    assert_eq!(rows[0]["handoff"]["webhook_status"], 500);
    for secret in ["Sup3rSecret", "K3yK3y", "svc-user"] {
        assert!(!shown.contains(secret), "{secret} shown: {shown}");
        assert!(!rows[0].to_string().contains(secret), "{secret} in JSON");
        let log = server.log_text();
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    assert!(
        server.log_text().contains(&receiver.url),
        "the log names the webhook, redacted"
    );
}

#[test]
fn names_of_250_characters_are_archived_and_reported() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let handoff = Handoff::new("");
    let (env, _server, login) = ingest_setup("long", &handoff.config());
    let name = format!("{}.csv", "é".repeat(123)); // 250 bytes
    assert_eq!(name.len(), 250);
    for (round, rows) in [(1, 5), (2, 6)] {
        upload(&login, &name, &roster(rows));
        env.wait_uploads("long", PIPELINE_TIMEOUT, "the long name archived", |rows| {
            all_in_state(rows, round, "archived")
        });
    }
    assert_eq!(done_of(&handoff, "long").len(), 2);

    // The second copy that day is `… (2).csv`, 254 + 4 bytes: shortened.
    let archive = env.account_root("long").join("archive");
    let archived: Vec<PathBuf> = files_under(&archive);
    assert_eq!(archived.len(), 2, "{archived:?}");
    let names: Vec<String> = archived
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    assert!(names.contains(&name), "the first keeps its name: {names:?}");
    for archived_name in &names {
        assert!(archived_name.len() <= 255, "{archived_name}");
        assert!(archived_name.ends_with(".csv"), "{archived_name}");
    }
    let reports_dir = env.account_root("long").join("reports");
    let reports = files_under(&reports_dir);
    assert_eq!(reports.len(), 2, "{reports:?}");
    for report in &reports {
        let file_name = report.to_str().unwrap();
        assert!(
            file_name.len() <= 255 && file_name.ends_with(".txt"),
            "{file_name}"
        );
        let text = std::fs::read_to_string(reports_dir.join(report)).unwrap();
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with("File:") && l.ends_with(&name)),
            "the original name: {text}"
        );
        assert!(text.contains("Result: ACCEPTED"), "{text}");
    }
    let texts = reports_text(&env, "long");
    for archived_name in &names {
        assert!(
            texts.contains(archived_name.as_str()),
            "{archived_name} named in a report"
        );
    }
}
