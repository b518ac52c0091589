//! The operations commands against a real database: `ferry account import`
//! with 5,000 rows, run twice (the second run changes nothing), its
//! `--dry-run`, `ferry status --json`, and `ferry host-key show` lines a
//! person can paste.

use std::path::Path;
use std::process::{Command, Output};

fn ferry(data: &Path, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("FERRY_DATA_DIR", data)
        .env(
            "FERRY_DATABASE__URL",
            format!("sqlite://{}/ferry.db", data.display()),
        )
        .env_remove("FERRY_CONFIG")
        .current_dir(data)
        .output()
        .expect("run ferry");
    assert!(
        output.status.success(),
        "ferry {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn importing_5000_accounts_twice_changes_nothing_the_second_time() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let mut csv = String::from("name,display_name,contacts,expected_every\n");
    for i in 0..5000 {
        csv.push_str(&format!(
            "district-{i:04},District {i},\"it{i}@d{i}.k12.us; ops@d{i}.k12.us\",24h\n"
        ));
    }
    let file = data.join("accounts.csv");
    std::fs::write(&file, &csv).unwrap();
    let file = file.to_str().unwrap();

    let dry = stdout(&ferry(data, &["account", "import", file, "--dry-run"]));
    assert!(
        dry.ends_with("dry run, nothing changed: 5000 created, 0 updated, 0 unchanged\n"),
        "{dry}"
    );
    let listed = stdout(&ferry(data, &["account", "list", "--json"]));
    assert_eq!(listed.trim(), "[]", "a dry run creates nothing");

    let first = stdout(&ferry(data, &["account", "import", file]));
    assert!(
        first.ends_with("5000 created, 0 updated, 0 unchanged\n"),
        "{}",
        &first[first.len() - 200..]
    );
    assert!(
        data.join("accounts/district-4999/inbound").is_dir(),
        "folders are created"
    );
    let second = stdout(&ferry(data, &["account", "import", file]));
    assert_eq!(second, "0 created, 0 updated, 5000 unchanged\n");

    // One changed row changes one account.
    let changed = csv.replace("District 17,", "District Seventeen,");
    std::fs::write(data.join("accounts.csv"), changed).unwrap();
    let third = stdout(&ferry(data, &["account", "import", file]));
    assert!(
        third.contains("updated district-0017: display name \"District Seventeen\""),
        "{third}"
    );
    assert!(
        third.ends_with("0 created, 1 updated, 4999 unchanged\n"),
        "{third}"
    );

    let status: serde_json::Value = serde_json::from_slice(
        &ferry(data, &["status", "--json", "--search", "district-0017"]).stdout,
    )
    .unwrap();
    assert_eq!(status["counts"]["accounts"], 5000);
    assert_eq!(status["total"], 1);
    assert_eq!(status["rows"][0]["account"], "district-0017");
    assert_eq!(
        status["rows"][0]["attention"],
        serde_json::json!(["no-key"])
    );
}

#[test]
fn a_bad_import_file_names_every_bad_line_and_applies_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    std::fs::write(
        data.join("bad.csv"),
        "name,contacts,expected_every\ngood-one,it@x.org,24h\nBad Name,,\nok,not-an-address,\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["account", "import", data.join("bad.csv").to_str().unwrap()])
        .env("FERRY_DATA_DIR", data)
        .env(
            "FERRY_DATABASE__URL",
            format!("sqlite://{}/ferry.db", data.display()),
        )
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("line 3:") && err.contains("line 4:"), "{err}");
    assert!(err.contains("nothing was imported"), "{err}");
    assert_eq!(
        stdout(&ferry(data, &["account", "list", "--json"])).trim(),
        "[]"
    );
}

#[test]
fn host_key_show_prints_pub_and_known_hosts_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let pubs = stdout(&ferry(data, &["host-key", "show"]));
    let keys: Vec<&str> = pubs.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(keys.len(), 3, "{pubs}");
    assert!(
        keys[0].starts_with("ssh-ed25519 AAAA") && keys[0].split(' ').count() == 2,
        "{pubs}"
    );
    assert!(
        pubs.lines()
            .next()
            .unwrap()
            .starts_with("# ssh-ed25519 SHA256:"),
        "{pubs}"
    );
    // Each line is a .pub file ssh-keygen reads.
    if Command::new("ssh-keygen").arg("-?").output().is_ok() {
        let file = data.join("host.pub");
        std::fs::write(&file, format!("{}\n", keys[0])).unwrap();
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let fp = String::from_utf8_lossy(&out.stdout)
            .split(' ')
            .nth(1)
            .unwrap()
            .to_owned();
        assert!(
            pubs.contains(&fp),
            "the comment shows ssh-keygen's fingerprint {fp}: {pubs}"
        );
    }
    let known = stdout(&ferry(
        data,
        &["host-key", "show", "--known-hosts", "sftp.example.org:2222"],
    ));
    let lines: Vec<&str> = known.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("[sftp.example.org]:2222 ")),
        "{known}"
    );
    let known22 = stdout(&ferry(
        data,
        &["host-key", "show", "--known-hosts", "sftp.example.org"],
    ));
    assert!(
        known22
            .lines()
            .any(|l| l.starts_with("sftp.example.org ssh-ed25519 ")),
        "{known22}"
    );
}
