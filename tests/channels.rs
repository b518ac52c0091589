//! Channel lifecycle on one SSH connection, with russh's own client: every
//! way a channel ends gives its slot back (client CLOSE, EOF then the
//! server's close, EOF and CLOSE at once, the server ending SFTP after a
//! protocol violation, refused exec, shell and subsystem requests), so the
//! cap of 10 channels per connection stays a cap on channels open at once;
//! and after the client's EOF the server ends an SFTP channel as OpenSSH
//! does: exit-status 0, then EOF, then CLOSE.

mod common;

use std::time::Duration;

use common::raw::*;
use common::*;
use russh::ChannelMsg;
use russh::client::Msg;

const ACCOUNT: &str = "district_channels";

/// Bound on every wait for one answer from the server.
const ANSWER: Duration = Duration::from_secs(20);

type Channel = russh::Channel<Msg>;

/// Waits for the channel's next message (window adjustments skipped);
/// `None` when the channel is gone.
async fn next_msg(channel: &mut Channel) -> Option<ChannelMsg> {
    loop {
        match tokio::time::timeout(ANSWER, channel.wait()).await {
            Err(_) => panic!("no message on the channel within {ANSWER:?}"),
            Ok(Some(ChannelMsg::WindowAdjusted { .. })) => continue,
            Ok(other) => return other,
        }
    }
}

/// Opens session channel number `n`; panics if it is refused.
async fn open_channel(handle: &Handle, n: usize) -> Channel {
    tokio::time::timeout(ANSWER, handle.channel_open_session())
        .await
        .expect("channel opened within the bound")
        .unwrap_or_else(|e| panic!("channel {n} refused: {e}"))
}

/// Opens a session channel and starts the `sftp` subsystem on it.
async fn open_sftp(handle: &Handle, n: usize) -> Channel {
    let mut channel = open_channel(handle, n).await;
    channel
        .request_subsystem(true, "sftp")
        .await
        .expect("send the subsystem request");
    match next_msg(&mut channel).await {
        Some(ChannelMsg::Success) => channel,
        other => panic!("channel {n}: the sftp subsystem was not started: {other:?}"),
    }
}

/// Reads one whole SFTP packet from the channel: (type, body).
async fn read_packet(channel: &mut Channel, buf: &mut Vec<u8>) -> (u8, Vec<u8>) {
    loop {
        if buf.len() >= 4 {
            let len = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
            assert!((1..1 << 20).contains(&len), "bad SFTP length {len}");
            if buf.len() >= 4 + len {
                let packet: Vec<u8> = buf.drain(..4 + len).collect();
                return (packet[4], packet[5..].to_vec());
            }
        }
        match next_msg(channel).await {
            Some(ChannelMsg::Data { data }) => buf.extend_from_slice(&data),
            other => panic!("expected SFTP data, got {other:?}"),
        }
    }
}

/// INIT, then REALPATH "." (a small request), checking both answers.
async fn small_request(channel: &mut Channel) {
    let mut buf = Vec::new();
    channel
        .data(&packet(SSH_FXP_INIT, &Body::new().u32(3))[..])
        .await
        .expect("send INIT");
    let (ty, _) = read_packet(channel, &mut buf).await;
    assert_eq!(ty, SSH_FXP_VERSION);
    channel
        .data(&packet(SSH_FXP_REALPATH, &Body::new().u32(7).string(b"."))[..])
        .await
        .expect("send REALPATH");
    let (ty, body) = read_packet(channel, &mut buf).await;
    assert_eq!(ty, SSH_FXP_NAME, "REALPATH answers NAME");
    assert_eq!(&body[..4], &7u32.to_be_bytes(), "with the request's id");
}

/// The messages the server sends after the client's EOF, until the channel
/// is closed.
async fn ending_after_eof(channel: &mut Channel) -> Vec<String> {
    channel.eof().await.expect("send EOF");
    let mut seen = Vec::new();
    loop {
        match next_msg(channel).await {
            Some(ChannelMsg::ExitStatus { exit_status }) => {
                seen.push(format!("exit-status {exit_status}"))
            }
            Some(ChannelMsg::Eof) => seen.push("eof".into()),
            Some(ChannelMsg::Close) | None => {
                seen.push("close".into());
                return seen;
            }
            Some(other) => seen.push(format!("{other:?}")),
        }
    }
}

/// Opens 10 channels at once (each starting SFTP), checks that an 11th is
/// refused, and closes them again.
async fn cap_is_ten_open_at_once(handle: &Handle) {
    let mut open = Vec::new();
    for n in 0..10 {
        open.push(open_sftp(handle, n).await);
    }
    let eleventh = tokio::time::timeout(ANSWER, handle.channel_open_session())
        .await
        .expect("the 11th channel is answered within the bound");
    assert!(
        eleventh.is_err(),
        "an 11th channel open at once must be refused"
    );
    for channel in open {
        let _ = channel.close().await;
    }
}

#[test]
fn fifty_sftp_channels_one_after_another_then_the_eleventh_at_once_is_refused() {
    if !require(&[SSH_KEYGEN]) {
        return;
    }
    let (_env, server, login) = setup(ACCOUNT);
    block_on(Duration::from_secs(240), async {
        let handle = login_raw(&server, &login).await;
        for n in 0..50 {
            let mut channel = open_sftp(&handle, n).await;
            small_request(&mut channel).await;
            match n % 3 {
                // The way OpenSSH's sftp and scp end: EOF, then wait for the
                // server to end the channel.
                0 => assert_eq!(
                    ending_after_eof(&mut channel).await,
                    ["exit-status 0", "eof", "close"],
                    "channel {n}: after the client's EOF the server sends exit-status 0, EOF and CLOSE, in that order"
                ),
                // The client closes without EOF.
                1 => channel.close().await.expect("send CLOSE"),
                // EOF and CLOSE at once.
                _ => {
                    channel.eof().await.expect("send EOF");
                    channel.close().await.expect("send CLOSE");
                }
            }
        }
        cap_is_ten_open_at_once(&handle).await;
    });
    assert!(
        server.log_lines().iter().all(|l| !is_warn_or_error(l)),
        "no warning for channels that ended normally:\n{}",
        server.log_text()
    );
}

#[test]
fn channels_the_server_ends_or_refuses_give_their_slot_back() {
    if !require(&[SSH_KEYGEN]) {
        return;
    }
    let (_env, server, login) = setup(ACCOUNT);
    block_on(Duration::from_secs(240), async {
        let handle = login_raw(&server, &login).await;
        for n in 0..24 {
            let mut channel = open_channel(&handle, n).await;
            match n % 4 {
                // A request before INIT: the server ends SFTP (exit status 1).
                0 => {
                    channel
                        .request_subsystem(true, "sftp")
                        .await
                        .expect("send the subsystem request");
                    assert!(matches!(
                        next_msg(&mut channel).await,
                        Some(ChannelMsg::Success)
                    ));
                    channel
                        .data(&packet(SSH_FXP_REALPATH, &Body::new().u32(1).string(b"."))[..])
                        .await
                        .expect("send a request before INIT");
                    let mut seen = Vec::new();
                    while let Some(msg) = next_msg(&mut channel).await {
                        if matches!(msg, ChannelMsg::Close) {
                            break;
                        }
                        seen.push(format!("{msg:?}"));
                    }
                    assert_eq!(
                        seen,
                        ["ExitStatus { exit_status: 1 }", "Eof"],
                        "channel {n}: the server ends SFTP with exit status 1"
                    );
                }
                // exec and shell: the SFTP-only line, then the server closes.
                1 | 2 => {
                    if n % 4 == 1 {
                        channel.exec(true, "id").await.expect("send exec");
                    } else {
                        channel.request_shell(true).await.expect("send shell");
                    }
                    while let Some(msg) = next_msg(&mut channel).await {
                        if matches!(msg, ChannelMsg::Close) {
                            break;
                        }
                    }
                }
                // Another subsystem: refused; the client then closes.
                _ => {
                    channel
                        .request_subsystem(true, "netconf")
                        .await
                        .expect("send the subsystem request");
                    assert!(matches!(
                        next_msg(&mut channel).await,
                        Some(ChannelMsg::Failure)
                    ));
                    channel.close().await.expect("send CLOSE");
                }
            }
        }
        cap_is_ten_open_at_once(&handle).await;
    });
}

/// Logs in with russh's client.
async fn login_raw(server: &Server, account: &Login) -> Handle {
    login(server.port, &account.user, &account.key.private).await
}
