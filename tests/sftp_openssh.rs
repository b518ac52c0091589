//! OpenSSH `sftp` against a real `ferry serve`: key login, the fixed layout,
//! upload/download with matching checksums, rename (also over an existing
//! file), folders in /inbound, and refused writes everywhere else.

mod common;

use common::*;

const ACCOUNT: &str = "district_openssh";

#[test]
fn openssh_sftp_lists_uploads_downloads_renames_and_makes_folders_in_inbound() {
    if !require(&[SSH_KEYGEN, SFTP]) {
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

    // List / (from / and after cd ..), upload, download.
    let r = login.sftp_batch(
        "cd /\nls -1\ncd /inbound\nls -1 /\nput up.bin /inbound/up.bin\nget /inbound/up.bin down.bin\nls -1 /inbound\n",
    );
    r.assert_success();
    let s = sections(&r.stdout, "sftp>");
    assert_eq!(
        ls_names(section(&s, "ls -1")),
        LAYOUT,
        "`ls` of / must show exactly the layout: {r}"
    );
    assert_eq!(
        ls_names(section(&s, "ls -1 /")),
        LAYOUT,
        "`ls /` must show exactly the layout: {r}"
    );
    assert_eq!(ls_names(section(&s, "ls -1 /inbound")), ["up.bin"], "{r}");
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

    // Rename, then rename over an existing file.
    let r = login.sftp_batch(
        "rename /inbound/up.bin /inbound/renamed.bin\nput other.bin /inbound/target.bin\nrename /inbound/renamed.bin /inbound/target.bin\nget /inbound/target.bin after_rename.bin\n",
    );
    r.assert_success();
    assert!(
        !inbound.join("up.bin").exists(),
        "rename left the old name behind"
    );
    assert!(
        !inbound.join("renamed.bin").exists(),
        "rename over an existing file left the source behind"
    );
    assert_eq!(
        sha256_file(&inbound.join("target.bin")),
        up_sha,
        "rename over an existing file must replace it with the source's content"
    );
    assert_eq!(sha256_file(&login.work.join("after_rename.bin")), up_sha);
    assert_ne!(up_sha, other_sha);

    // Folders: make, upload into, list, remove.
    let r = login.sftp_batch(
        "mkdir /inbound/2024\nmkdir /inbound/2024/q1\nput other.bin /inbound/2024/q1/other.bin\nls -1 /inbound/2024/q1\n",
    );
    r.assert_success();
    assert!(
        inbound.join("2024/q1").is_dir(),
        "mkdir did not create the folder on disk: {r}"
    );
    assert_eq!(sha256_file(&inbound.join("2024/q1/other.bin")), other_sha);
    let r = login.sftp_batch("rm /inbound/2024/q1/other.bin\nrmdir /inbound/2024/q1\nrmdir /inbound/2024\nrm /inbound/target.bin\n");
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
fn openssh_sftp_cannot_write_outside_inbound() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let (env, _server, login) = setup(ACCOUNT);
    let root = env.account_root(ACCOUNT);
    // A file the vendor placed for the district, and one in inbound.
    std::fs::write(root.join("outbound/for_district.csv"), "id,name\n1,a\n").unwrap();
    std::fs::write(root.join("inbound/mine.csv"), "id\n1\n").unwrap();
    write_random(&login.work.join("up.bin"), 64 * 1024);
    let before = snapshot(&root, &[]);

    // Reading /outbound works.
    let r = login.sftp_batch("get /outbound/for_district.csv got.csv\n");
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
            "rename /outbound/for_district.csv /outbound/moved.csv",
            "rename /outbound/for_district.csv /inbound/moved.csv",
            "rename /inbound/mine.csv /outbound/mine.csv",
            "rename /inbound/mine.csv /mine.csv",
            "rename /inbound /inbox",
            "rmdir /archive",
            "rmdir /reports",
        ]
        .map(String::from),
    );
    for cmd in &attempts {
        let r = login.sftp_batch(&format!("{cmd}\n"));
        r.assert_failure();
        assert!(
            r.stderr.contains("Permission denied") || r.stderr.contains("denied"),
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
