//! OpenSSH `scp` against Ferry. Since OpenSSH 9.0, scp speaks SFTP
//! underneath, and it reports success only when the channel ends with
//! exit-status 0 before CLOSE, as OpenSSH's own server sends it: twenty
//! uploads in a row must each exit 0 and leave the file in place. Legacy
//! `scp -O` runs a remote command, which gets the SFTP-only line and fails.

mod common;

use common::*;

const ACCOUNT: &str = "district_scp";

#[test]
fn scp_uploads_exit_0_twenty_times_in_a_row() {
    if !require(&[SSH_KEYGEN, SCP]) {
        return;
    }
    let (env, server, login) = setup(ACCOUNT);
    let local = login.work.join("roster.csv");
    for n in 0..20 {
        let content = format!("id,name\n{n},student {n}\n");
        std::fs::write(&local, &content).unwrap();
        let name = format!("roster_{n:02}.csv");
        let run = login.scp_upload(&[], &local, &format!("/inbound/{name}"));
        assert!(
            run.success(),
            "scp upload {n} must exit 0 (the server's exit status reaches the client): {run}"
        );
        let stored = env.inbound(ACCOUNT).join(&name);
        assert_eq!(
            std::fs::read_to_string(&stored).unwrap_or_default(),
            content,
            "upload {n} is in place under its name"
        );
    }
    assert!(
        server.log_lines().iter().all(|l| !is_warn_or_error(l)),
        "{}",
        server.log_text()
    );
}

#[test]
fn legacy_scp_gets_the_sftp_only_line_and_fails() {
    if !require(&[SSH_KEYGEN, SCP]) {
        return;
    }
    let (env, _server, login) = setup(ACCOUNT);
    let local = login.work.join("legacy.csv");
    std::fs::write(&local, "id\n1\n").unwrap();
    let run = login.scp_upload(&["-O"], &local, "/inbound/legacy.csv");
    run.assert_failure();
    assert!(
        run.stderr.contains(SFTP_ONLY_LINE),
        "legacy scp shows the SFTP-only line: {run}"
    );
    assert!(!env.inbound(ACCOUNT).join("legacy.csv").exists());
}
