//! Private by default, on a real run: after an upload that ingest archives
//! and reports on, everything Ferry created under data_dir (folders,
//! uploads, the archive, the report, the SQLite database with its -wal and
//! -shm) is readable by Ferry's user only; with `data_group` it is
//! group-readable for that one group, and private host keys stay 0600.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const ACCOUNT: &str = "district_modes";

/// Every file and folder under `dir` (itself included), recursively.
fn everything_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = vec![dir.to_owned()];
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path.clone());
            }
            found.push(path);
        }
    }
    found
}

/// Uploads a file, waits until ingest archived it and wrote its report
/// (while the server runs, so the database's -wal and -shm exist), and
/// returns every path under data_dir with its metadata.
fn run_and_collect(env: &Env) -> Vec<(PathBuf, std::fs::Metadata)> {
    env.create_account(ACCOUNT);
    let key = env.new_key(ACCOUNT);
    env.install_key(ACCOUNT, &key);
    let server = env.start();
    let login = env.login(&server, ACCOUNT, &key);
    std::fs::write(env.work.join("roster.csv"), "id,name\n1,Ada\n").unwrap();
    login
        .sftp_batch("put roster.csv inbound/roster.csv\nput roster.csv inbound/second.csv\n")
        .assert_success();
    env.wait_uploads(ACCOUNT, Duration::from_secs(60), "both archived", |rows| {
        rows.len() == 2 && rows.iter().all(|r| r["state"] == "archived")
    });
    let all = everything_under(&env.data_dir);
    let names: Vec<String> = all.iter().map(|p| p.display().to_string()).collect();
    for needed in [
        "/archive/",
        "/reports/",
        "ferry.db-wal",
        "ferry.db-shm",
        "/uploading/",
    ] {
        assert!(
            names.iter().any(|n| n.contains(needed)),
            "no {needed} in {names:#?}"
        );
    }
    let collected = all
        .into_iter()
        .map(|p| {
            let meta = std::fs::symlink_metadata(&p).unwrap();
            (p, meta)
        })
        .collect();
    drop(server);
    collected
}

fn mode(meta: &std::fs::Metadata) -> u32 {
    meta.permissions().mode() & 0o7777
}

#[test]
fn everything_ferry_creates_is_private_to_its_user() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let env = Env::with_ingest("");
    for (path, meta) in run_and_collect(&env) {
        let expected = if meta.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(
            mode(&meta),
            expected,
            "{} is {:o}",
            path.display(),
            mode(&meta)
        );
    }
}

#[test]
fn data_group_makes_them_readable_for_one_group() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    // `daemon` (gid 1) exists on every Debian system; tests run as root.
    let env = Env::with_ingest("");
    env.edit_config("[sftp]\n", "data_group = \"daemon\"\n\n[sftp]\n");
    for (path, meta) in run_and_collect(&env) {
        let host_key = path.components().any(|c| c.as_os_str() == "host_keys")
            && meta.is_file()
            && path.extension().is_none_or(|e| e != "pub");
        let expected = match (meta.is_dir(), host_key) {
            (true, _) => 0o2750,
            (false, true) => 0o600,
            (false, false) => 0o640,
        };
        assert_eq!(
            mode(&meta),
            expected,
            "{} is {:o}",
            path.display(),
            mode(&meta)
        );
        if !host_key {
            assert_eq!(
                meta.gid(),
                1,
                "{} belongs to gid {}",
                path.display(),
                meta.gid()
            );
        }
    }
}
