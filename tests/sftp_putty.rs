//! PuTTY `psftp` (the engine inside WinSCP) against a real `ferry serve`:
//! key login (a .ppk made by puttygen), the fixed layout, upload/download with
//! matching checksums, rename (plain SSH_FXP_RENAME, also over an existing
//! file), folders in /inbound, and refused writes everywhere else.

mod common;

use common::*;

const ACCOUNT: &str = "district_putty";

/// Names in a psftp `ls` listing (the last word of each long-format line).
fn psftp_names(lines: &[String]) -> Vec<String> {
    let mut names: Vec<String> = lines
        .iter()
        .filter(|l| !l.starts_with("Listing directory") && !l.starts_with("Remote "))
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .filter(|n| n != "." && n != "..")
        .collect();
    names.sort();
    names
}

#[test]
fn psftp_lists_uploads_downloads_renames_and_makes_folders_in_inbound() {
    if !require(&[SSH_KEYGEN, PUTTYGEN, PSFTP]) {
        return;
    }
    let (env, _server, login) = setup(ACCOUNT);
    let inbound = env.inbound(ACCOUNT);
    let up = login.work.join("up.bin");
    write_random(&up, 3 * 1024 * 1024 + 17);
    let other = login.work.join("other.bin");
    write_random(&other, 200 * 1024 + 3);
    let up_sha = sha256_file(&up);
    let other_sha = sha256_file(&other);

    let r = login.psftp_batch(
        "ls /\ncd /inbound\ncd ..\nls\nput up.bin /inbound/up.bin\nget /inbound/up.bin down.bin\nls /inbound\n",
    );
    r.assert_success();
    let s = sections(&r.stdout, "psftp>");
    assert_eq!(
        psftp_names(section(&s, "ls /")),
        LAYOUT,
        "`ls /` must show exactly the layout: {r}"
    );
    assert_eq!(
        psftp_names(section(&s, "ls")),
        LAYOUT,
        "`cd ..` from /inbound must land on /: {r}"
    );
    assert_eq!(psftp_names(section(&s, "ls /inbound")), ["up.bin"], "{r}");
    assert_eq!(
        sha256_file(&inbound.join("up.bin")),
        up_sha,
        "uploaded file differs on disk"
    );
    assert_eq!(
        sha256_file(&login.work.join("down.bin")),
        up_sha,
        "downloaded file differs"
    );

    // psftp's mv is a plain SSH_FXP_RENAME; over an existing file it must work too.
    let r = login.psftp_batch(
        "mv /inbound/up.bin /inbound/renamed.bin\nput other.bin /inbound/target.bin\nmv /inbound/renamed.bin /inbound/target.bin\nget /inbound/target.bin after_rename.bin\n",
    );
    r.assert_success();
    assert!(
        !inbound.join("up.bin").exists(),
        "mv left the old name behind: {r}"
    );
    assert!(
        !inbound.join("renamed.bin").exists(),
        "mv over an existing file left the source behind: {r}"
    );
    assert_eq!(
        sha256_file(&inbound.join("target.bin")),
        up_sha,
        "mv over an existing file must replace it with the source's content"
    );
    assert_eq!(sha256_file(&login.work.join("after_rename.bin")), up_sha);
    assert_ne!(up_sha, other_sha);

    let r = login.psftp_batch(
        "mkdir /inbound/2024\nmkdir /inbound/2024/q1\nput other.bin /inbound/2024/q1/other.bin\nls /inbound/2024/q1\n",
    );
    r.assert_success();
    let s = sections(&r.stdout, "psftp>");
    assert_eq!(
        psftp_names(section(&s, "ls /inbound/2024/q1")),
        ["other.bin"],
        "{r}"
    );
    assert!(
        inbound.join("2024/q1").is_dir(),
        "mkdir did not create the folder on disk: {r}"
    );
    assert_eq!(sha256_file(&inbound.join("2024/q1/other.bin")), other_sha);
    let r =
        login.psftp_batch("rm /inbound/2024/q1/other.bin\nrmdir /inbound/2024/q1\nrmdir /inbound/2024\nrm /inbound/target.bin\n");
    r.assert_success();
    assert!(
        !inbound.join("2024").exists(),
        "rmdir did not remove the folder: {r}"
    );
    assert_eq!(
        dir_names(&inbound),
        Vec::<String>::new(),
        "inbound should be empty again"
    );
    assert!(
        dir_names(&env.uploading(ACCOUNT)).is_empty(),
        "finished uploads left temporary files in {}",
        env.uploading(ACCOUNT).display()
    );
}

#[test]
fn psftp_cannot_write_outside_inbound() {
    if !require(&[SSH_KEYGEN, PUTTYGEN, PSFTP]) {
        return;
    }
    let (env, _server, login) = setup(ACCOUNT);
    let root = env.account_root(ACCOUNT);
    std::fs::write(root.join("outbound/for_district.csv"), "id,name\n1,a\n").unwrap();
    std::fs::write(root.join("inbound/mine.csv"), "id\n1\n").unwrap();
    write_random(&login.work.join("up.bin"), 64 * 1024);
    let before = snapshot(&root, &[]);

    let r = login.psftp_batch("get /outbound/for_district.csv got.csv\n");
    r.assert_success();
    assert_eq!(
        std::fs::read_to_string(login.work.join("got.csv")).unwrap(),
        "id,name\n1,a\n"
    );

    let mut attempts: Vec<String> = Vec::new();
    for dir in ["", "/outbound", "/archive", "/reports"] {
        attempts.push(format!("put up.bin {dir}/up.bin"));
        attempts.push(format!("mkdir {dir}/newdir"));
    }
    attempts.extend(
        [
            "rm /outbound/for_district.csv",
            "mv /outbound/for_district.csv /outbound/moved.csv",
            "mv /outbound/for_district.csv /inbound/moved.csv",
            "mv /inbound/mine.csv /outbound/mine.csv",
            "mv /inbound/mine.csv /mine.csv",
            "mv /inbound /inbox",
            "rmdir /archive",
            "rmdir /reports",
        ]
        .map(String::from),
    );
    for cmd in &attempts {
        let r = login.psftp_batch(&format!("{cmd}\n"));
        r.assert_failure();
        assert!(
            r.output().to_lowercase().contains("denied"),
            "`{cmd}` should be refused with a permission error: {r}"
        );
        let now = snapshot(&root, &[]);
        let diff = snapshot_diff(&before, &now);
        assert!(
            diff.is_empty(),
            "`{cmd}` changed the account's files: {diff:#?}\n{r}"
        );
    }
    assert!(
        dir_names(&env.uploading(ACCOUNT)).is_empty(),
        "refused uploads left temporary files"
    );
}
