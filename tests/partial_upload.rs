//! A client killed in the middle of an upload leaves nothing under the final
//! name, and the server removes the upload's temporary file once the session
//! is gone.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const ACCOUNT: &str = "district_partial";

/// Size of the temporary file in the upload area (0 when there is none).
fn uploading_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn client_killed_mid_upload_leaves_nothing_under_the_final_name() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let (env, mut server, login) = setup(ACCOUNT);
    let inbound = env.inbound(ACCOUNT);
    let uploading = env.uploading(ACCOUNT);
    let big = login.work.join("big.bin");
    write_random(&big, 32 * 1024 * 1024);

    // 4096 Kbit/s: the 32 MiB upload would take about a minute.
    let mut client = Running::spawn(
        login.sftp_command(&["-l", "4096"]),
        Some(b"put big.bin /inbound/big.bin\n".to_vec()),
    );
    let started = Instant::now();
    let mut seen_in_upload_area = 0;
    while started.elapsed() < Duration::from_secs(30) {
        assert!(
            !inbound.join("big.bin").exists(),
            "the upload is visible under its final name while it is still being written"
        );
        seen_in_upload_area = uploading_bytes(&uploading);
        if seen_in_upload_area >= 512 * 1024 || !client.is_running() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        client.is_running(),
        "the throttled upload ended before it could be interrupted"
    );
    if seen_in_upload_area == 0 {
        // Let it run a little anyway, so the kill lands mid-upload.
        std::thread::sleep(Duration::from_secs(3));
    }
    client.kill_group();
    let killed = client.finish(Duration::from_secs(10));
    assert!(
        !killed.success(),
        "the killed client cannot have succeeded: {killed}"
    );

    // Nothing under the final name, now or after the server noticed.
    assert!(
        !inbound.join("big.bin").exists(),
        "a partial upload appeared under its final name"
    );
    let cleaned = wait_until(Duration::from_secs(30), || {
        uploading_bytes(&uploading) == 0 && dir_names(&uploading).is_empty()
    });
    assert!(
        seen_in_upload_area > 0,
        "during the upload nothing was written under {} (the upload area of the contract)",
        uploading.display()
    );
    assert!(
        cleaned,
        "the partial upload's temporary file is still in {} 30 s after the client died: {:?}",
        uploading.display(),
        dir_names(&uploading)
    );
    assert_eq!(
        dir_names(&inbound),
        Vec::<String>::new(),
        "inbound must hold nothing after a partial upload"
    );

    // The server is fine and the district can try again.
    assert!(server.is_running(), "the server died with the client");
    let small = login.work.join("small.bin");
    write_random(&small, 100_000);
    login
        .sftp_batch("put small.bin /inbound/big.bin\n")
        .assert_success();
    assert_eq!(sha256_file(&inbound.join("big.bin")), sha256_file(&small));
}
