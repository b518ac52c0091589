//! Malformed SFTP input from a raw client (russh's client, bytes written by
//! hand): an oversized length, a packet over the 256 KiB cap, a truncated
//! packet then EOF, a request before INIT, a READ of 0xFFFFFFFF bytes and an
//! unknown request type. For each, the server answers or closes the channel
//! cleanly, logs at most a few warnings, stays alive, serves a fresh session
//! and keeps its memory bounded.

mod common;

use std::time::Duration;

use common::raw::*;
use common::*;

const ACCOUNT: &str = "district_raw";

/// Largest data a READ may return (Ferry's cap, as OpenSSH's sftp-server).
const READ_CAP: usize = 256 * 1024;
/// Peak memory the server may reach during these tests.
const MAX_VM_HWM_KIB: u64 = 200 * 1024;
/// Warnings and errors one malformed input may add to the log.
const MAX_WARN_LINES: usize = 3;
/// All log lines one malformed input may add (login and session lines included).
const MAX_LOG_LINES: usize = 30;

/// A test's fixture: a server, the account's key, and a log mark.
struct Case {
    server: Server,
    login: Login,
    env: Env,
}

fn case() -> Option<Case> {
    if !require(&[SSH_KEYGEN]) {
        return None;
    }
    let (env, server, login) = setup(ACCOUNT);
    Some(Case { server, login, env })
}

/// What every case must show afterwards: the log gained few lines for it,
/// the server is alive, a fresh session works, and memory stayed bounded.
fn after_case(c: &mut Case, what: &str, log_mark: usize) {
    // Give the server a moment to log what it has to say about the input.
    std::thread::sleep(Duration::from_millis(500));
    let lines = c.server.log_since(log_mark);
    let warns: Vec<&String> = lines.iter().filter(|l| is_warn_or_error(l)).collect();
    assert!(
        warns.len() <= MAX_WARN_LINES,
        "{what}: the server logged {} warnings/errors (at most {MAX_WARN_LINES}): {:#?}",
        warns.len(),
        &warns[..warns.len().min(20)]
    );
    assert!(
        lines.len() <= MAX_LOG_LINES,
        "{what}: the server logged {} lines (at most {MAX_LOG_LINES}): {:#?}",
        lines.len(),
        &lines[..lines.len().min(40)]
    );
    eprintln!("{what}: server log for the case:\n  {}", lines.join("\n  "));

    assert!(c.server.is_running(), "{what}: the server process died");

    // A fresh raw session.
    let port = c.login.port;
    let key = c.login.key.private.clone();
    block_on(Duration::from_secs(120), async {
        let handle = login(port, ACCOUNT, &key).await;
        let mut sftp = RawSftp::start(&handle).await;
        assert_eq!(sftp.init().await, 3, "{what}: fresh session INIT");
        let listed = sftp
            .list(b"/")
            .await
            .unwrap_or_else(|e| panic!("{what}: fresh session cannot list /: {e:?}"));
        let mut names: Vec<String> = listed
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .filter(|n| n != "." && n != "..")
            .collect();
        names.sort();
        assert_eq!(names, LAYOUT, "{what}: fresh session lists /");
    });
    // And a fresh OpenSSH sftp session, when the client is installed.
    if have("sftp") {
        let r = c.login.sftp_batch("ls /\n");
        assert!(
            r.success(),
            "{what}: a fresh `sftp` session failed afterwards: {r}"
        );
    }

    let hwm = c.server.vm_hwm_kib();
    eprintln!("{what}: server VmHWM {hwm} kB");
    assert!(
        hwm < MAX_VM_HWM_KIB,
        "{what}: server peak memory {hwm} kB (limit {MAX_VM_HWM_KIB} kB)"
    );
    assert!(c.server.is_running(), "{what}: the server process died");
}

/// Logs in, starts the subsystem, optionally sends INIT, then runs `body`.
fn with_session<F>(c: &Case, init: bool, body: F)
where
    F: AsyncFnOnce(&mut RawSftp),
{
    let port = c.login.port;
    let key = c.login.key.private.clone();
    block_on(Duration::from_secs(120), async move {
        let handle = login(port, ACCOUNT, &key).await;
        let mut sftp = RawSftp::start(&handle).await;
        if init {
            assert_eq!(sftp.init().await, 3);
        }
        body(&mut sftp).await;
    });
}

#[test]
fn oversized_length_closes_the_channel() {
    let Some(mut c) = case() else { return };
    let mark = c.server.log_len();
    with_session(&c, true, async |sftp: &mut RawSftp| {
        let mut bytes = vec![0xFF, 0xFF, 0xFF, 0xFF];
        // Junk after the length: a server that skips 4 bytes and reads on
        // would take it for more packets.
        bytes.extend((0..65u8).map(|i| i.wrapping_mul(37)));
        sftp.send_raw(&bytes).await;
        let (closed, seen) = sftp.wait_closed(Duration::from_secs(10)).await;
        assert!(
            closed,
            "a 0xFFFFFFFF length must close the channel; it stayed open (replies: {seen:?})"
        );
        for r in &seen {
            assert_eq!(
                r.ty(),
                Some(SSH_FXP_STATUS),
                "only a STATUS may precede the close: {seen:?}"
            );
        }
    });
    after_case(&mut c, "length 0xFFFFFFFF", mark);
}

#[test]
fn packet_over_the_cap_closes_the_channel() {
    let Some(mut c) = case() else { return };
    let mark = c.server.log_len();
    with_session(&c, true, async |sftp: &mut RawSftp| {
        // A 300 000-byte WRITE: over the 256 KiB packet cap.
        let body = Body::new()
            .u32(77)
            .string(b"no-such-handle")
            .u64(0)
            .string(&vec![0x41; 300_000 - 31]);
        sftp.send(SSH_FXP_WRITE, body).await;
        let (closed, seen) = sftp.wait_closed(Duration::from_secs(15)).await;
        assert!(
            closed,
            "a packet over 256 KiB must close the channel; it stayed open (replies: {seen:?})"
        );
        assert!(
            seen.len() <= 1,
            "one oversized packet got {} replies: {seen:?}",
            seen.len()
        );
    });
    after_case(&mut c, "300 000-byte packet", mark);
}

#[test]
fn truncated_packet_then_eof_closes_cleanly() {
    let Some(mut c) = case() else { return };
    let mark = c.server.log_len();
    with_session(&c, true, async |sftp: &mut RawSftp| {
        // Announces 100 bytes, sends 10, then EOF.
        let mut bytes = 100u32.to_be_bytes().to_vec();
        bytes.push(SSH_FXP_REALPATH);
        bytes.extend_from_slice(&[0, 0, 0, 9, 0, 0, 0, 1, b'/']);
        sftp.send_raw(&bytes).await;
        sftp.send_eof().await;
        let (closed, seen) = sftp.wait_closed(Duration::from_secs(10)).await;
        assert!(
            closed,
            "a truncated packet followed by EOF must end the channel (replies: {seen:?})"
        );
        for r in &seen {
            assert_eq!(
                r.ty(),
                Some(SSH_FXP_STATUS),
                "only a STATUS may precede the close: {seen:?}"
            );
        }
    });
    after_case(&mut c, "truncated packet + EOF", mark);
}

#[test]
fn request_before_init_is_not_served() {
    let Some(mut c) = case() else { return };
    let mark = c.server.log_len();
    with_session(&c, false, async |sftp: &mut RawSftp| {
        sftp.send(SSH_FXP_OPENDIR, Body::new().u32(7).string(b"/inbound"))
            .await;
        let reply = sftp.recv(Duration::from_secs(10)).await;
        match &reply {
            Reply::Closed { .. } => {}
            Reply::Packet {
                ty: SSH_FXP_STATUS, ..
            } => {
                let (id, code, _) = reply.status().expect("a STATUS");
                assert_eq!(id, 7, "the STATUS must carry the request's id: {reply:?}");
                assert_ne!(
                    code, SSH_FX_OK,
                    "a request before INIT must not succeed: {reply:?}"
                );
            }
            other => {
                panic!("a request before INIT must be refused or close the channel, got {other:?}")
            }
        }
        if !sftp.is_closed() {
            let (closed, seen) = sftp.wait_closed(Duration::from_secs(3)).await;
            assert!(
                seen.iter()
                    .all(|r| r.ty() == Some(SSH_FXP_STATUS) || r.ty() == Some(SSH_FXP_VERSION)),
                "after a refused pre-INIT request: {seen:?} (closed: {closed})"
            );
        }
    });
    after_case(&mut c, "request before INIT", mark);
}

#[test]
fn read_of_0xffffffff_bytes_is_capped() {
    let Some(mut c) = case() else { return };
    let file = c.env.inbound(ACCOUNT).join("big.bin");
    write_random(&file, 4 * 1024 * 1024);
    let content = std::fs::read(&file).unwrap();
    let mark = c.server.log_len();
    with_session(&c, true, async |sftp: &mut RawSftp| {
        let opened = sftp.open(b"/inbound/big.bin", SSH_FXF_READ).await;
        let handle = opened
            .handle()
            .unwrap_or_else(|| panic!("OPEN /inbound/big.bin: {opened:?}"));
        let reply = sftp.read(&handle, 0, 0xFFFF_FFFF).await;
        if let Reply::Oversized { len } = reply {
            panic!("a READ of 0xFFFFFFFF bytes got a {len}-byte reply (cap {READ_CAP} + header)");
        }
        let data = reply
            .data()
            .unwrap_or_else(|| panic!("READ of 0xFFFFFFFF bytes: expected DATA, got {reply:?}"));
        assert!(!data.is_empty(), "READ returned no data");
        assert!(
            data.len() <= READ_CAP,
            "READ returned {} bytes (cap {READ_CAP})",
            data.len()
        );
        assert_eq!(
            &data[..],
            &content[..data.len()],
            "READ returned the wrong bytes"
        );

        // Many such READs in flight at once stay bounded too.
        let mut ids = Vec::new();
        for i in 0..32u64 {
            let id = sftp.id();
            ids.push(id);
            let body = Body::new()
                .u32(id)
                .string(&handle)
                .u64(i * 65536)
                .u32(0xFFFF_FFFF);
            assert!(sftp.send(SSH_FXP_READ, body).await, "send READ {i}");
        }
        let mut answered = Vec::new();
        for _ in 0..ids.len() {
            let r = sftp.recv(Duration::from_secs(20)).await;
            if let Reply::Oversized { len } = r {
                panic!("a pipelined READ got a {len}-byte reply");
            }
            let d = r
                .data()
                .unwrap_or_else(|| panic!("pipelined READ: expected DATA, got {r:?}"));
            assert!(
                d.len() <= READ_CAP,
                "pipelined READ returned {} bytes",
                d.len()
            );
            answered.push(r.id().unwrap());
        }
        answered.sort();
        assert_eq!(answered, ids, "every READ must be answered with its own id");
        let closed = sftp.close(&handle).await;
        assert_eq!(closed.status().map(|s| s.1), Some(SSH_FX_OK), "{closed:?}");
    });
    after_case(&mut c, "READ of 0xFFFFFFFF bytes", mark);
}

#[test]
fn unknown_request_type_gets_op_unsupported_with_its_id() {
    let Some(mut c) = case() else { return };
    let mark = c.server.log_len();
    with_session(&c, true, async |sftp: &mut RawSftp| {
        for (ty, id) in [(99u8, 4242u32), (150, 0x0102_0304), (0, 9)] {
            sftp.send(ty, Body::new().u32(id).string(b"whatever").u32(1))
                .await;
            let reply = sftp.recv(Duration::from_secs(10)).await;
            let (got_id, code, msg) = reply
                .status()
                .unwrap_or_else(|| panic!("unknown type {ty}: expected STATUS, got {reply:?}"));
            assert_eq!(
                got_id, id,
                "unknown type {ty}: the STATUS must carry the request's id"
            );
            assert_eq!(
                code, SSH_FX_OP_UNSUPPORTED,
                "unknown type {ty}: expected OP_UNSUPPORTED, got {code} ({msg})"
            );
        }
        // An unknown extension, too.
        let reply = sftp
            .request(
                200,
                Body::new()
                    .string(b"no-such-extension@example.com")
                    .string(b"x"),
            )
            .await;
        let (_, code, msg) = reply
            .status()
            .unwrap_or_else(|| panic!("unknown extension: expected STATUS, got {reply:?}"));
        assert_eq!(
            code, SSH_FX_OP_UNSUPPORTED,
            "unknown extension: got {code} ({msg})"
        );
        // Still in sync.
        let r = sftp.realpath(b".").await;
        assert_eq!(
            r.names(),
            Some(vec![b"/".to_vec()]),
            "REALPATH . after unknown requests: {r:?}"
        );
    });
    after_case(&mut c, "unknown request type", mark);
}
