//! Uploads stay atomic under real write errors: a disk that fills up (a
//! small tmpfs as data_dir) with OpenSSH `sftp` and PuTTY `psftp`, the same
//! with the SQLite database on that full disk, RLIMIT_FSIZE on the server
//! (EFBIG), and a final rename that fails. Each time: the client is told,
//! nothing appears under the final name, no temporary file is left, the
//! upload is recorded `partial` with the reason, nothing is handed to
//! ingest, and the server keeps serving.

mod common;

use std::time::Duration;

use common::raw::*;
use common::*;
use serde_json::Value;

const ACCOUNT: &str = "district_full";
const SSH_FXP_RMDIR: u8 = 15;

/// The one row for `name`, which must be partial with `reason`.
fn assert_partial(env: &Env, name: &str, reason: &str) {
    let rows = env.uploads_named(ACCOUNT, name);
    assert_eq!(rows.len(), 1, "one row for {name}: {rows:#?}");
    assert_eq!(rows[0]["state"], "partial", "{rows:#?}");
    assert_eq!(rows[0]["detail"], reason, "{rows:#?}");
}

fn assert_nothing_saved(env: &Env, name: &str) {
    assert!(
        !env.inbound(ACCOUNT).join(name).exists(),
        "{name} appeared under its final name"
    );
    assert!(
        dir_names(&env.uploading(ACCOUNT)).is_empty(),
        "temporary files left: {:?}",
        dir_names(&env.uploading(ACCOUNT))
    );
}

/// A hand-off command that records the names it was given.
fn handoff(env: &Env) -> std::path::PathBuf {
    let log = env.root().join("handed-off.log");
    let script = env.root().join("handoff.sh");
    std::fs::write(
        &script,
        format!(
            "printf '%s\\n' \"$FERRY_FILES\" >> {:?}\n",
            log.display().to_string()
        ),
    )
    .unwrap();
    env.edit_config(
        "[ingest]\nenabled = true\n",
        &format!(
            "[ingest]\nenabled = true\ncommand = [\"/bin/sh\", {:?}]\n",
            script.display().to_string()
        ),
    );
    log
}

#[test]
fn a_full_disk_saves_nothing_under_the_name_with_sftp_and_psftp() {
    if !require(&[SSH_KEYGEN, SFTP, PSFTP, PUTTYGEN]) {
        return;
    }
    let env = Env::with_ingest("");
    let handed_off = handoff(&env);
    // The database lives outside the full disk here, so every outcome can
    // be read back; the next test puts it on the full disk.
    env.database_outside_data_dir();
    let Some(disk) = Tmpfs::mount(&env.data_dir, 32) else {
        return;
    };
    env.create_account(ACCOUNT);
    let key = env.new_key(ACCOUNT);
    env.install_key(ACCOUNT, &key);
    let mut server = env.start();
    let login = env.login(&server, ACCOUNT, &key);
    let filler = disk.fill("filler", 24 << 20);
    write_random(&env.work.join("big.bin"), 40 << 20);

    let sftp = login.sftp_batch("put big.bin inbound/big.bin\n");
    sftp.assert_failure();
    let disk_full = "the server's disk is full; nothing was saved as big.bin; try again later";
    assert_nothing_saved(&env, "big.bin");
    assert_partial(&env, "big.bin", disk_full);

    let psftp = login.psftp_batch("cd inbound\nput big.bin big2.bin\n");
    psftp.assert_failure();
    assert_nothing_saved(&env, "big2.bin");
    assert_partial(
        &env,
        "big2.bin",
        "the server's disk is full; nothing was saved as big2.bin; try again later",
    );
    assert!(
        server
            .wait_log(&["upload failed", "big2.bin"], Duration::from_secs(10))
            .is_some(),
        "the failure is logged"
    );

    // Space again: the server serves, and the next upload is whole and handed off.
    std::fs::remove_file(filler).unwrap();
    std::fs::write(env.work.join("small.csv"), "id,name\n1,Ada\n").unwrap();
    login
        .sftp_batch("put small.csv inbound/small.csv\n")
        .assert_success();
    let rows = env.wait_uploads(
        ACCOUNT,
        Duration::from_secs(30),
        "small.csv handed off",
        |rows| {
            rows.iter().any(|r| {
                r["name"] == "small.csv"
                    && matches!(r["state"].as_str(), Some("handed_off" | "archived"))
            })
        },
    );
    let states: Vec<(&Value, &Value)> = rows.iter().map(|r| (&r["name"], &r["state"])).collect();
    assert_eq!(
        rows.len(),
        3,
        "only the partial rows and small.csv: {states:?}"
    );
    let handed = std::fs::read_to_string(&handed_off).unwrap_or_default();
    assert!(handed.contains("small.csv"), "{handed}");
    assert!(
        !handed.contains("big"),
        "a failed upload was handed off: {handed}"
    );
    assert!(server.is_running());
    drop(server);
    drop(disk);
}

#[test]
fn a_full_disk_that_also_holds_the_database() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let env = Env::new();
    let Some(disk) = Tmpfs::mount(&env.data_dir, 16) else {
        return;
    };
    env.create_account(ACCOUNT);
    let key = env.new_key(ACCOUNT);
    env.install_key(ACCOUNT, &key);
    let mut server = env.start();
    let login = env.login(&server, ACCOUNT, &key);
    write_random(&env.work.join("big.bin"), 4 << 20);
    // Not a byte left: the upload, the login record and the database
    // writes all meet ENOSPC.
    let filler = disk.fill("filler", 0);
    let sftp = login.sftp_batch("put big.bin inbound/big.bin\n");
    sftp.assert_failure();
    assert_nothing_saved(&env, "big.bin");
    assert!(server.is_running());
    // The partial row is written after the temporary file is removed; on a
    // disk with no room at all SQLite may still refuse it, and then the log
    // says so. Either way it is never recorded as anything but partial.
    let logged = server
        .wait_log(&["upload failed", "big.bin"], Duration::from_secs(10))
        .is_some();
    assert!(logged, "the failed upload is logged");
    std::fs::remove_file(filler).unwrap();
    let rows = env.uploads_named(ACCOUNT, "big.bin");
    let recorded = rows.len() == 1 && rows[0]["state"] == "partial";
    let not_recorded = rows.is_empty()
        && server
            .wait_log(
                &["could not record a partial upload"],
                Duration::from_secs(5),
            )
            .is_some();
    assert!(recorded || not_recorded, "{rows:#?}\n{}", server.log_text());

    // Room again: the same server and database work.
    std::fs::write(env.work.join("small.csv"), "id\n1\n").unwrap();
    login
        .sftp_batch("put small.csv inbound/small.csv\n")
        .assert_success();
    assert_eq!(
        std::fs::read(env.inbound(ACCOUNT).join("small.csv")).unwrap(),
        b"id\n1\n"
    );
    let key2 = env.new_key("second");
    env.install_key(ACCOUNT, &key2);
    login
        .with_key(&key2)
        .sftp_batch("ls inbound\n")
        .assert_success();
    drop(server);
    drop(disk);
}

#[test]
fn a_file_size_limit_on_the_server_process_fails_the_upload_not_the_server() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let env = Env::new();
    env.create_account(ACCOUNT);
    let key = env.new_key(ACCOUNT);
    env.install_key(ACCOUNT, &key);
    let limit = 6 << 20;
    let mut server = Server::start_with(&env, |cmd| {
        limit_resource(cmd, libc::RLIMIT_FSIZE, limit, limit)
    });
    let login = env.login(&server, ACCOUNT, &key);
    write_random(&env.work.join("big.bin"), 10 << 20);
    login
        .sftp_batch("put big.bin inbound/big.bin\n")
        .assert_failure();
    assert!(server.is_running(), "SIGXFSZ must not kill the server");
    assert_nothing_saved(&env, "big.bin");
    assert_partial(
        &env,
        "big.bin",
        "the file is larger than the server can store; nothing was saved as big.bin; send a smaller file or tell the vendor",
    );
    std::fs::write(env.work.join("small.csv"), "id\n1\n").unwrap();
    login
        .sftp_batch("put small.csv inbound/small.csv\n")
        .assert_success();
    assert!(env.inbound(ACCOUNT).join("small.csv").exists());
}

#[test]
fn a_rename_that_fails_at_close_saves_nothing() {
    if !require(&[SSH_KEYGEN]) {
        return;
    }
    let (env, server, login) = setup(ACCOUNT);
    block_on(Duration::from_secs(60), async {
        let handle = raw::login(server.port, ACCOUNT, &login.key.private).await;
        let mut sftp = RawSftp::start(&handle).await;
        sftp.init().await;
        assert_eq!(
            sftp.mkdir(b"/inbound/sub").await.status().unwrap().1,
            SSH_FX_OK
        );
        let opened = sftp
            .open(
                b"/inbound/sub/x.csv",
                SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC,
            )
            .await;
        let file = opened.handle().expect("a handle");
        assert_eq!(
            sftp.write(&file, 0, b"id\n1\n").await.status().unwrap().1,
            SSH_FX_OK
        );
        // The folder goes away while the file is open (it is empty: the
        // upload is written outside the account's view), so the rename fails.
        let rmdir = sftp
            .request(SSH_FXP_RMDIR, Body::new().string(b"/inbound/sub"))
            .await;
        assert_eq!(rmdir.status().unwrap().1, SSH_FX_OK, "{rmdir:?}");
        let (_, code, message) = sftp.close(&file).await.status().unwrap();
        assert_eq!(code, SSH_FX_FAILURE);
        assert!(
            message.starts_with("the server could not put the file in place (")
                && message.ends_with("nothing was saved as x.csv; try again"),
            "{message}"
        );
    });
    assert!(dir_names(&env.uploading(ACCOUNT)).is_empty());
    let rows = env.uploads_named(ACCOUNT, "sub/x.csv");
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["state"], "partial");
    assert!(
        rows[0]["detail"]
            .as_str()
            .unwrap()
            .contains("could not put the file in place"),
        "{rows:#?}"
    );
}
