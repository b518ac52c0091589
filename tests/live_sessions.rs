//! Sessions follow their account and key. An open SFTP session (russh's
//! client, idle) ends within 5 s when its account is disabled (by the CLI
//! or the API's `PATCH enabled=false`), when its key retires after
//! `key add --replace` (once the new key is active, not before), and when
//! its key's `expiry-time` passes. Each ending is one audit entry naming
//! the reason, the next upload is refused, and the session's slot in the
//! account's cap is given back (`max_sessions_per_account = 1`), as it is
//! when the client disconnects or simply vanishes.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::raw::*;
use common::*;

const ACCOUNT: &str = "district_live";

/// The promise: a session ends within this long of the change.
const END_DEADLINE: Duration = Duration::from_secs(5);

/// An open, idle SFTP session.
struct Open {
    _handle: Handle,
    sftp: RawSftp,
}

/// Logs in with `key`, starts SFTP and checks that it answers.
async fn open_session(port: u16, key: &ClientKey) -> Open {
    let handle = login(port, ACCOUNT, &key.private).await;
    let mut sftp = RawSftp::start(&handle).await;
    assert!(sftp.send(SSH_FXP_INIT, Body::new().u32(3)).await);
    assert_eq!(
        sftp.recv(Duration::from_secs(20)).await.ty(),
        Some(SSH_FXP_VERSION)
    );
    Open {
        _handle: handle,
        sftp,
    }
}

/// Waits up to `limit` for the server to end the session; how long it took.
async fn ended_within(open: &mut Open, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        match open.sftp.recv(left).await {
            Reply::Closed { .. } => return Some(start.elapsed()),
            Reply::TimedOut => return None,
            _ => continue,
        }
    }
}

/// The `session.end` audit entries of the account, oldest first.
fn session_endings(env: &Env) -> Vec<ferry_store::AuditEvent> {
    let mut endings: Vec<_> = env
        .audit(ACCOUNT)
        .into_iter()
        .filter(|e| e.action == "session.end")
        .collect();
    endings.reverse();
    endings
}

/// Waits for the account's `count`th `session.end` audit entry, checks that
/// there are no more and that the last one names `reason`; returns it.
fn last_ending_says(env: &Env, count: usize, reason: &str) -> ferry_store::AuditEvent {
    // The entry is written just after the disconnect.
    wait_until(Duration::from_secs(10), || {
        session_endings(env).len() >= count
    });
    let mut endings = session_endings(env);
    assert_eq!(
        endings.len(),
        count,
        "one audit entry per ended session: {endings:#?}"
    );
    let last = endings.pop().expect("an ending");
    assert!(last.detail.contains(reason), "{last:?}");
    assert_eq!(last.actor, "sftp", "{last:?}");
    last
}

/// Checks that an upload with `login` is refused and leaves no file.
fn upload_is_refused(env: &Env, login: &Login, name: &str) {
    std::fs::write(login.work.join(name), "id\n1\n").unwrap();
    let run = login.sftp_batch(&format!("put {name} /inbound/{name}\n"));
    run.assert_failure();
    assert!(run.stderr.contains("Permission denied"), "{run}");
    assert!(!env.inbound(ACCOUNT).join(name).exists());
}

fn installation(sftp: &str) -> (Env, ClientKey) {
    let env = Env::with_sftp_settings(sftp);
    env.create_account(ACCOUNT);
    let key = env.new_key(ACCOUNT);
    env.install_key(ACCOUNT, &key);
    (env, key)
}

#[test]
fn disabling_the_account_ends_its_session_by_cli_and_by_api() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let (env, key) = installation("max_sessions_per_account = 1");
    env.enable_web();
    let token = env.ferry_ok(&["token", "create", "--role", "vendor-admin"]);
    let token = token.stdout.trim().to_owned();
    let server = env.start();
    let (port, web) = (server.port, server.web_port());

    for (n, how) in ["cli", "api"].into_iter().enumerate() {
        // The runtime keeps the client's connection going while the test
        // thread runs the change.
        let rt = runtime();
        // The one session the account may hold: the previous one's slot was
        // given back when the server ended it.
        let mut open = rt.block_on(open_session(port, &key));
        match how {
            "cli" => {
                env.ferry_ok(&["account", "disable", ACCOUNT]);
            }
            _ => {
                let (status, _, body) = http(
                    web,
                    "PATCH",
                    &format!("/api/v1/accounts/{ACCOUNT}"),
                    Some(&token),
                    r#"{"enabled": false}"#,
                );
                assert_eq!(status, 200, "{body}");
            }
        }
        let took = rt.block_on(ended_within(&mut open, END_DEADLINE));
        let took = took.unwrap_or_else(|| {
            panic!(
                "the session was still open {END_DEADLINE:?} after the account was disabled ({how})"
            )
        });
        eprintln!("{how}: the session ended {took:?} after the account was disabled");
        upload_is_refused(&env, &env.login(&server, ACCOUNT, &key), "after.csv");
        last_ending_says(&env, n + 1, "account disabled");
        assert!(
            server
                .wait_log(
                    &["account disabled: ending its session"],
                    Duration::from_secs(5)
                )
                .is_some()
        );
        env.ferry_ok(&["account", "enable", ACCOUNT]);
    }
}

#[test]
fn a_key_that_retires_after_replace_ends_its_session_once_the_new_key_is_active() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let (env, old) = installation("");
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replace("propagation_delay = \"0s\"", "propagation_delay = \"3s\""),
    )
    .unwrap();
    let new = env.new_key("new");
    let server = env.start();
    let port = server.port;
    let rt = runtime();
    let mut open = rt.block_on(open_session(port, &old));
    env.ferry_ok(&[
        "key",
        "add",
        ACCOUNT,
        &new.public.display().to_string(),
        "--replace",
    ]);
    // The new key becomes active 3 s after the replace; the old key's
    // session ends within 5 s after that.
    let took = rt.block_on(ended_within(
        &mut open,
        Duration::from_secs(3) + END_DEADLINE,
    ));
    let took = took.expect("the session of the replaced key was still open 8 s after the replace");
    eprintln!("the session ended {took:?} after the replace (new key active after 3 s)");

    let (new_fp, old_fp) = (new.fingerprint.clone(), old.fingerprint.clone());
    let (new_effective_at, old_retire_at) = env.with_store(|store| async move {
        let keys = store.keys(ACCOUNT).await.unwrap();
        let new_key = keys.iter().find(|k| k.fingerprint == new_fp).unwrap();
        let old_key = keys.iter().find(|k| k.fingerprint == old_fp).unwrap();
        (new_key.effective_at, old_key.retire_at.unwrap())
    });
    assert_eq!(new_effective_at, old_retire_at);
    let ending = last_ending_says(&env, 1, "key retired");
    assert!(ending.detail.contains(&old.fingerprint), "{ending:?}");
    assert!(
        ending.at >= old_retire_at,
        "the session ended before the new key was active: {} < {old_retire_at}",
        ending.at
    );
    upload_is_refused(&env, &env.login(&server, ACCOUNT, &old), "old.csv");
}

#[test]
fn a_key_whose_expiry_time_passes_ends_its_session() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let env = Env::new();
    env.create_account(ACCOUNT);
    let key = env.new_key(ACCOUNT);
    // sshd's expiry-time format, in UTC, 8 s from now.
    let mut date = Command::new("date");
    date.args(["-u", "-d", "+8 seconds", "+%Y%m%d%H%M%SZ"]);
    let expiry = run(date, None, Duration::from_secs(10));
    expiry.assert_success();
    let expiry = expiry.stdout.trim().to_owned();
    let public = std::fs::read_to_string(&key.public).unwrap();
    let with_option = env.root().join("expiring.pub");
    std::fs::write(&with_option, format!("expiry-time=\"{expiry}\" {public}")).unwrap();
    env.ferry_ok(&[
        "key",
        "add",
        ACCOUNT,
        &with_option.display().to_string(),
        "--now",
    ]);
    let server = env.start();
    let port = server.port;
    let rt = runtime();
    let mut open = rt.block_on(open_session(port, &key));
    // The expiry passes at most 9 s from when it was computed (sshd's rule:
    // once its whole second has passed).
    let took = rt.block_on(ended_within(
        &mut open,
        Duration::from_secs(9) + END_DEADLINE,
    ));
    let took = took.expect("the session was still open 5 s after its key expired");
    eprintln!("the session ended {took:?} after it started (expiry {expiry})");
    last_ending_says(&env, 1, "key expired");
    upload_is_refused(&env, &env.login(&server, ACCOUNT, &key), "late.csv");
}

#[test]
fn a_session_gives_the_accounts_slot_back_however_its_connection_ends() {
    if !require(&[SSH_KEYGEN]) {
        return;
    }
    let (env, key) = installation("max_sessions_per_account = 1");
    let server = env.start();
    let port = server.port;
    // Logs in until a login is accepted (the slot is given back when the
    // server has seen the connection end), bounded.
    let login_again = |what: &str| {
        let rt = runtime();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let private = russh::keys::load_secret_key(&key.private, None).unwrap();
            let accepted = rt.block_on(async {
                let mut handle = connect(port).await;
                let auth = handle.authenticate_publickey(
                    ACCOUNT,
                    russh::keys::PrivateKeyWithHashAlg::new(std::sync::Arc::new(private), None),
                );
                let accepted = tokio::time::timeout(Duration::from_secs(20), auth)
                    .await
                    .is_ok_and(|r| r.is_ok_and(|r| r.success()));
                accepted.then_some(handle)
            });
            if let Some(handle) = accepted {
                return (rt, handle);
            }
            assert!(
                Instant::now() < deadline,
                "the account's one session slot was not given back after {what}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    // The client says goodbye (SSH disconnect).
    let (rt, handle) = login_again("the start");
    rt.block_on(async {
        handle
            .disconnect(russh::Disconnect::ByApplication, "bye", "")
            .await
            .expect("send disconnect");
    });
    drop(rt);
    // The client vanishes (its process dies: TCP closed, no SSH disconnect).
    let (rt, _handle) = login_again("a client disconnect");
    drop(rt);
    // The server ends it (account disabled), then the account is enabled.
    let (rt, handle) = login_again("a client that vanished");
    env.ferry_ok(&["account", "disable", ACCOUNT]);
    rt.block_on(async {
        let closed = tokio::time::timeout(END_DEADLINE + Duration::from_secs(5), async {
            while !handle.is_closed() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        closed
            .await
            .expect("the server ended the disabled account's session");
    });
    env.ferry_ok(&["account", "enable", ACCOUNT]);
    let _last = login_again("the server ended the session");
}
