//! Connection limits russh does not have and Ferry adds: the login grace
//! period, the cap on connections still logging in from one address, and the
//! cap on sessions per account. Each limit is set low in the test's config.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use common::raw::*;
use common::*;
use russh::keys::PrivateKeyWithHashAlg;

const ACCOUNT: &str = "district_limits";

/// Connects and reads the server's first bytes. `None` when the server
/// closed the connection before saying anything.
fn connect_and_read_banner(port: u16) -> (TcpStream, Option<String>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("TCP connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 256];
    let banner = match stream.read(&mut buf) {
        Ok(0) => None,
        Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
        Err(e) => panic!("no answer from the server within 20 s: {e}"),
    };
    (stream, banner)
}

/// Reads until the server closes the connection; false if it is still open
/// after `timeout`.
fn closed_by_server_within(stream: &mut TcpStream, timeout: Duration) -> bool {
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn a_client_that_never_logs_in_is_disconnected_after_the_grace_period() {
    let env = Env::with_sftp_settings("login_grace = \"1s\"");
    env.create_account(ACCOUNT);
    let server = env.start();
    let (mut idle, banner) = connect_and_read_banner(server.port);
    assert!(
        banner
            .as_deref()
            .is_some_and(|b| b.starts_with("SSH-2.0-Ferry")),
        "expected Ferry's SSH banner, got {banner:?}"
    );
    // The client sends nothing at all: not even its own banner.
    assert!(
        closed_by_server_within(&mut idle, Duration::from_secs(15)),
        "the server kept a silent connection open past the 1 s login grace"
    );
    assert!(
        server
            .wait_log(&["login grace time expired"], Duration::from_secs(10))
            .is_some(),
        "the expiry is logged"
    );
}

#[test]
fn connections_still_logging_in_are_capped_per_address() {
    let env = Env::with_sftp_settings("max_unauthenticated_per_address = 2");
    env.create_account(ACCOUNT);
    let server = env.start();
    let (first, b1) = connect_and_read_banner(server.port);
    let (second, b2) = connect_and_read_banner(server.port);
    assert!(b1.is_some() && b2.is_some(), "the first two are served");
    let (_third, b3) = connect_and_read_banner(server.port);
    assert_eq!(b3, None, "the third connection must be closed at once");
    assert!(
        server
            .wait_log(
                &["too many connections are waiting to log in"],
                Duration::from_secs(10)
            )
            .is_some(),
        "the refusal is logged"
    );
    // More refusals within the next seconds add no log lines: a flood of
    // connections must not become a flood of log lines.
    for _ in 0..5 {
        assert_eq!(connect_and_read_banner(server.port).1, None);
    }
    let refusal_lines = server
        .log_lines()
        .iter()
        .filter(|l| l.contains("too many connections are waiting to log in"))
        .count();
    assert_eq!(refusal_lines, 1, "{}", server.log_text());
    // Closing the waiting connections frees their slots.
    drop(first);
    drop(second);
    assert!(
        wait_until(Duration::from_secs(15), || connect_and_read_banner(
            server.port
        )
        .1
        .is_some()),
        "slots are released when connections close"
    );
}

#[test]
fn sessions_per_account_are_capped_and_the_refusal_recorded() {
    if !require(&[SSH_KEYGEN]) {
        return;
    }
    let env = Env::with_sftp_settings("max_sessions_per_account = 1");
    env.create_account(ACCOUNT);
    let key = env.new_key(ACCOUNT);
    env.install_key(ACCOUNT, &key);
    let server = env.start();
    block_on(Duration::from_secs(90), async {
        let _first = login(server.port, ACCOUNT, &key.private).await;
        let mut second = connect(server.port).await;
        let private = russh::keys::load_secret_key(&key.private, None).unwrap();
        let result = tokio::time::timeout(
            Duration::from_secs(30),
            second.authenticate_publickey(
                ACCOUNT,
                PrivateKeyWithHashAlg::new(Arc::new(private), None),
            ),
        )
        .await
        .expect("answered within 30 s")
        .expect("authentication ran");
        assert!(
            !result.success(),
            "a second session must be refused while the account has its one"
        );
    });
    let attempt = env
        .wait_attempt(ACCOUNT, Duration::from_secs(10), |a| {
            a["result"] == "refused"
        })
        .unwrap_or_else(|all| panic!("no refused attempt recorded: {all:#?}"));
    assert!(
        attempt["reason"]
            .as_str()
            .is_some_and(|r| r.contains("too many sessions")),
        "{attempt:#}"
    );
    // With the first session gone, a login works again.
    block_on(Duration::from_secs(60), async {
        let _again = login(server.port, ACCOUNT, &key.private).await;
    });
}

#[test]
fn channels_per_connection_are_capped_and_freed_when_closed() {
    if !require(&[SSH_KEYGEN]) {
        return;
    }
    let env = Env::new();
    env.create_account(ACCOUNT);
    let key = env.new_key(ACCOUNT);
    env.install_key(ACCOUNT, &key);
    let server = env.start();
    block_on(Duration::from_secs(90), async {
        let handle = login(server.port, ACCOUNT, &key.private).await;
        let mut open = Vec::new();
        for n in 0..10 {
            let channel = handle.channel_open_session().await;
            open.push(channel.unwrap_or_else(|e| panic!("channel {n} of 10 refused: {e}")));
        }
        assert!(
            handle.channel_open_session().await.is_err(),
            "an 11th session channel on one connection must be refused"
        );
        let first = open.remove(0);
        first.close().await.expect("close a channel");
        let reopened = async {
            loop {
                if handle.channel_open_session().await.is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), reopened)
            .await
            .expect("closing a channel frees its place");
    });
}
