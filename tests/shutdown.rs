//! SIGTERM with an upload in flight: the server stops accepting, lets the
//! transfer run for up to `sftp.shutdown_grace`, then exits; a cut upload
//! never appears under its final name.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const ACCOUNT: &str = "district_shutdown";

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

/// Starts a throttled `put` and waits until it is visibly under way.
fn start_upload(env: &Env, login: &Login, size: u64, kbit_per_s: u32) -> Running {
    let big = login.work.join("big.bin");
    write_random(&big, size);
    let mut client = Running::spawn(
        login.sftp_command(&["-l", &kbit_per_s.to_string()]),
        Some(b"put big.bin /inbound/big.bin\n".to_vec()),
    );
    let uploading = env.uploading(ACCOUNT);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) && client.is_running() {
        if uploading_bytes(&uploading) >= 64 * 1024 {
            return client;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        client.is_running(),
        "the upload ended before the server could be stopped"
    );
    // The upload area was not seen filling; go on once the transfer has
    // surely started (the partial-upload test reports the upload area).
    std::thread::sleep(Duration::from_secs(2));
    client
}

#[test]
fn sigterm_cuts_a_long_upload_after_the_grace_and_leaves_no_half_file() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let env = Env::with_sftp_settings("shutdown_grace = \"2s\"");
    env.create_account(ACCOUNT);
    let key = env.new_key(ACCOUNT);
    env.install_key(ACCOUNT, &key);
    let mut server = env.start();
    let login = env.login(&server, ACCOUNT, &key);
    let inbound = env.inbound(ACCOUNT);

    // 32 MiB at 2048 Kbit/s: about two minutes, far beyond the grace.
    let client = start_upload(&env, &login, 32 * 1024 * 1024, 2048);
    let status = server.terminate(Duration::from_secs(2 + 15));
    let status = status
        .unwrap_or_else(|| panic!("ferry serve still runs 17 s after SIGTERM (shutdown_grace 2s)"));
    assert!(
        status.success(),
        "ferry serve exited with {status} after SIGTERM"
    );
    let r = client.finish(Duration::from_secs(20));
    assert!(
        !r.timed_out,
        "the client hung after the server stopped: {r}"
    );
    assert!(!r.success(), "the cut upload cannot have succeeded: {r}");

    assert!(
        !inbound.join("big.bin").exists(),
        "a cut upload appeared under its final name"
    );
    assert_eq!(
        dir_names(&inbound),
        Vec::<String>::new(),
        "inbound must be empty after a cut upload"
    );
    assert!(
        dir_names(&env.uploading(ACCOUNT)).is_empty(),
        "the cut upload's temporary file was left in {}: {:?}",
        env.uploading(ACCOUNT).display(),
        dir_names(&env.uploading(ACCOUNT))
    );
}

#[test]
fn sigterm_lets_a_short_upload_finish_and_refuses_new_logins() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let env = Env::with_sftp_settings("shutdown_grace = \"30s\"");
    env.create_account(ACCOUNT);
    let key = env.new_key(ACCOUNT);
    env.install_key(ACCOUNT, &key);
    let mut server = env.start();
    let login = env.login(&server, ACCOUNT, &key);
    let inbound = env.inbound(ACCOUNT);

    // 4 MiB at 8192 Kbit/s: about four seconds.
    let client = start_upload(&env, &login, 4 * 1024 * 1024, 8192);
    signal_pid(server.pid(), "TERM");

    // No new sessions once the shutdown started.
    let late = login.sftp_batch_timeout("ls /\n", Duration::from_secs(15));
    assert!(!late.timed_out, "a login during shutdown hung: {late}");
    assert!(
        !late.success(),
        "a new session was served after SIGTERM: {late}"
    );

    let r = client.finish(Duration::from_secs(30));
    assert!(
        r.success(),
        "an upload that fits in the grace period must finish: {r}"
    );
    let status = server
        .wait_exit(Duration::from_secs(30 + 15))
        .unwrap_or_else(|| {
            panic!("ferry serve still runs 45 s after SIGTERM with no transfer left")
        });
    assert!(
        status.success(),
        "ferry serve exited with {status} after SIGTERM"
    );
    assert_eq!(
        sha256_file(&inbound.join("big.bin")),
        sha256_file(&login.work.join("big.bin")),
        "the upload finished during shutdown differs"
    );
    assert!(
        dir_names(&env.uploading(ACCOUNT)).is_empty(),
        "temporary files left after shutdown"
    );
}
