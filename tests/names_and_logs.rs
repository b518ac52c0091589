//! Client text and the server's output: names with control characters are
//! refused; text a client chose (a user name, a command, a banner, a file
//! name) is escaped in the log, in `ferry account attempts` and `ferry
//! uploads list` (their JSON stays exact); a flood of refused requests
//! writes a handful of summary lines; routine successes stay out of the
//! info log.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::raw::*;
use common::*;
use russh::keys::PrivateKeyWithHashAlg;

const ACCOUNT: &str = "district_names";

#[test]
fn new_names_with_control_characters_are_refused() {
    if !require(&[SSH_KEYGEN]) {
        return;
    }
    let (env, server, login) = setup(ACCOUNT);
    block_on(Duration::from_secs(60), async {
        let handle = raw::login(server.port, ACCOUNT, &login.key.private).await;
        let mut sftp = RawSftp::start(&handle).await;
        sftp.init().await;
        for name in [
            &b"/inbound/a\nb"[..],
            b"/inbound/esc\x1b[2J",
            b"/inbound/tab\t",
        ] {
            let (_, code, message) = sftp.mkdir(name).await.status().unwrap();
            assert_eq!(code, SSH_FX_FAILURE);
            assert!(
                message.contains("file names may not contain control characters"),
                "{message}"
            );
            let opened = sftp
                .open(name, SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC)
                .await;
            assert!(opened.handle().is_none(), "{opened:?}");
        }
    });
    assert!(dir_names(&env.inbound(ACCOUNT)).is_empty());
}

#[test]
fn client_text_cannot_forge_log_lines_and_is_escaped_in_tables() {
    if !require(&[SSH_KEYGEN, SSH]) {
        return;
    }
    let env = Env::with_ingest("");
    env.create_account(ACCOUNT);
    let key = env.new_key(ACCOUNT);
    env.install_key(ACCOUNT, &key);
    let stranger = env.new_key("stranger");
    let server = env.start();
    let forged = "INFO login accepted account=victim";

    // A user name and a command with a line break, a banner with ESC.
    block_on(Duration::from_secs(60), async {
        let config = Arc::new(russh::client::Config {
            client_id: russh::SshId::Standard("SSH-2.0-evil\u{1b}[2Jclient".into()),
            ..Default::default()
        });
        for user in [format!("nobody\n{forged}"), ACCOUNT.to_owned()] {
            let mut handle = russh::client::connect(
                config.clone(),
                ("127.0.0.1", server.port),
                AcceptAnyHostKey,
            )
            .await
            .expect("connect");
            let secret = russh::keys::load_secret_key(&stranger.private, None).unwrap();
            let result = handle
                .authenticate_publickey(&user, PrivateKeyWithHashAlg::new(Arc::new(secret), None))
                .await
                .expect("authentication ran");
            assert!(!result.success());
        }
    });
    let login = env.login(&server, ACCOUNT, &key);
    login.ssh(
        &[],
        Some(&format!("echo\n{forged}")),
        Duration::from_secs(30),
    );
    assert!(
        server
            .wait_log(&["refused a command"], Duration::from_secs(10))
            .is_some()
    );
    let escaped_user = format!("nobody\\n{forged}");
    assert!(
        server
            .wait_log(&[&escaped_user], Duration::from_secs(10))
            .is_some(),
        "the user name is shown escaped:\n{}",
        server.log_text()
    );
    let lines = server.log_lines();
    assert!(
        !lines.iter().any(|l| l.trim_start().starts_with(forged)),
        "a client forged a log line:\n{}",
        server.log_text()
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("echo\\n{forged}"))),
        "{}",
        server.log_text()
    );
    assert!(!server.log_text().contains('\u{1b}'));

    // `ferry account attempts`: the banner escaped; in JSON, exact.
    let table = env.ferry_ok(&["account", "attempts", ACCOUNT]);
    assert!(
        table.stdout.contains("SSH-2.0-evil\\x1b[2Jclient"),
        "{table}"
    );
    assert!(!table.stdout.contains('\u{1b}'));
    let attempts = env.attempts(ACCOUNT);
    assert!(
        attempts
            .iter()
            .any(|a| a["client_banner"] == "SSH-2.0-evil\u{1b}[2Jclient"),
        "{attempts:#?}"
    );

    // `ferry uploads list`: a file with ESC and a line break in its name,
    // put into /inbound by other means, as ingest records it.
    let name = "evil\u{1b}[2J\nname.csv";
    std::fs::write(env.inbound(ACCOUNT).join(name), "id\n1\n").unwrap();
    env.wait_uploads(
        ACCOUNT,
        Duration::from_secs(30),
        "the file recorded",
        |rows| rows.iter().any(|r| r["name"] == name),
    );
    let table = env.ferry_ok(&["uploads", "list", ACCOUNT]);
    assert!(table.stdout.contains("evil\\x1b[2J\\nname.csv"), "{table}");
    assert!(!table.stdout.contains('\u{1b}'));
    assert_eq!(
        table.stdout.lines().count(),
        1,
        "one row, one line: {table}"
    );
}

#[test]
fn a_flood_of_refused_requests_writes_a_handful_of_lines() {
    if !require(&[SSH_KEYGEN]) {
        return;
    }
    let (_env, server, login) = setup(ACCOUNT);
    let before = server.log_len();
    block_on(Duration::from_secs(120), async {
        let handle = raw::login(server.port, ACCOUNT, &login.key.private).await;
        let mut sftp = RawSftp::start(&handle).await;
        sftp.init().await;
        // 5,000 MKDIRs in /, 100 in flight at a time.
        for batch in 0..50 {
            for i in 0..100 {
                let id = sftp.id();
                let path = format!("/flood-{batch}-{i}");
                let body = Body::new().u32(id).string(path.as_bytes()).u32(0);
                assert!(sftp.send(SSH_FXP_MKDIR, body).await);
            }
            for _ in 0..100 {
                let reply = sftp.recv(Duration::from_secs(20)).await;
                assert_eq!(
                    reply.status().map(|s| s.1),
                    Some(SSH_FX_PERMISSION_DENIED),
                    "{reply:?}"
                );
            }
        }
        // Routine successes: folders made and renamed in /inbound.
        for i in 0..100 {
            let path = format!("/inbound/f{i}");
            assert_eq!(
                sftp.mkdir(path.as_bytes()).await.status().unwrap().1,
                SSH_FX_OK
            );
            let to = format!("/inbound/g{i}");
            assert_eq!(
                sftp.rename(path.as_bytes(), to.as_bytes())
                    .await
                    .status()
                    .unwrap()
                    .1,
                SSH_FX_OK
            );
        }
        handle
            .disconnect(russh::Disconnect::ByApplication, "done", "en")
            .await
            .unwrap();
    });
    let summary = server
        .wait_log(&["(5,000 in this session)"], Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no summary line:\n{}", server.log_text()));
    assert!(
        summary.contains("more MKDIRs in /: permission denied"),
        "{summary}"
    );
    let lines = server.log_since(before);
    let about_mkdir: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("mkdir") || l.contains("MKDIR"))
        .collect();
    assert!(
        (2..=4).contains(&about_mkdir.len()),
        "{} lines about MKDIR:\n{}",
        about_mkdir.len(),
        lines.join("\n")
    );
    assert!(
        lines.len() < 20,
        "{} lines in all:\n{}",
        lines.len(),
        lines.join("\n")
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("folder created") || l.contains("renamed")),
        "routine successes are logged at debug only:\n{}",
        lines.join("\n")
    );
}
