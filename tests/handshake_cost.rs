//! The handshake CPU table: what one SSH handshake costs the server, for
//! every key exchange (and host-key signature) it offers.
//!
//! Not a timed test: it is `#[ignore]`d and asserts only that the
//! handshakes it measures complete. Run it with
//!
//! ```sh
//! cargo test --release --test handshake_cost -- --ignored --nocapture
//! ```
//!
//! It starts its own `ferry serve`, or measures a server already running
//! when `HANDSHAKE_TARGET=PORT:PID` is set (the PID's own CPU plus its
//! reaped children's, so OpenSSH's forked sessions count). A russh client
//! forces one algorithm per row and completes `HANDSHAKES_PER_ROW` (default
//! 20) key exchanges, each from its own 127.0.1.x address so per-source
//! penalties never interfere; the server's utime+stime before and after
//! (from /proc/PID/stat) divided by the count is the row's figure.
//! `HANDSHAKE_ROWS=group15,3072` measures only the rows whose label
//! contains one of the comma-separated words.

mod common;

use std::borrow::Cow;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::raw::{AcceptAnyHostKey, runtime};
use common::*;
use russh::client;
use russh::keys::{Algorithm, EcdsaCurve, HashAlg};
use russh::{Preferred, kex};

/// One row: the key exchange and the host-key signature the client insists on.
struct Row {
    kex: kex::Name,
    host_key: Algorithm,
    /// The group-exchange sizes the client asks for (min, preferred, max).
    gex: (usize, usize, usize),
    note: &'static str,
}

fn rows() -> Vec<Row> {
    let ed25519 = Algorithm::Ed25519;
    let openssh_gex = (2048, 8192, 8192);
    let row = |kex, note| Row {
        kex,
        host_key: ed25519.clone(),
        gex: openssh_gex,
        note,
    };
    let mut rows = vec![
        row(kex::MLKEM768X25519_SHA256, ""),
        row(kex::CURVE25519, ""),
        row(kex::CURVE25519_PRE_RFC_8731, ""),
        row(kex::ECDH_SHA2_NISTP256, "legacy_algorithms"),
        row(kex::ECDH_SHA2_NISTP384, "legacy_algorithms"),
        row(kex::ECDH_SHA2_NISTP521, "legacy_algorithms"),
        row(kex::DH_G14_SHA256, ""),
        row(kex::DH_G15_SHA512, "never offered"),
        row(kex::DH_G16_SHA512, "removed"),
        row(kex::DH_G18_SHA512, "removed"),
        row(kex::DH_GEX_SHA256, "client asks 2048<8192<8192 (OpenSSH)"),
        Row {
            gex: (2048, 3072, 3072),
            ..row(kex::DH_GEX_SHA256, "client asks 3072")
        },
        Row {
            gex: (2048, 2048, 2048),
            ..row(kex::DH_GEX_SHA256, "client asks 2048 (JSch-like)")
        },
        Row {
            gex: (8192, 8192, 8192),
            ..row(kex::DH_GEX_SHA256, "client insists on 8192 (attack)")
        },
    ];
    for (host_key, note) in [
        (
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256,
            },
            "host key, legacy_algorithms",
        ),
        (
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            },
            "host key",
        ),
        (
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha256),
            },
            "host key",
        ),
    ] {
        rows.push(Row {
            kex: kex::CURVE25519,
            host_key,
            gex: openssh_gex,
            note,
        });
    }
    rows
}

/// utime+stime+cutime+cstime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    let after_name = stat.rsplit(')').next().expect("stat has a (name)");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14..=17 of stat(5); `fields[0]` is field 3 (state).
    fields[11..15]
        .iter()
        .map(|f| f.parse::<u64>().expect("numeric CPU field"))
        .sum()
}

fn ticks_per_second() -> u64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf CLK_TCK");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100)
}

/// One key exchange from 127.0.1.`n`; true when it completed.
async fn handshake(port: u16, n: u8, row: &Row) -> bool {
    let preferred = Preferred {
        kex: Cow::Owned(vec![
            row.kex,
            kex::EXTENSION_SUPPORT_AS_CLIENT,
            kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
        ]),
        key: Cow::Owned(vec![row.host_key.clone()]),
        ..Preferred::default()
    };
    let Ok(gex) = client::GexParams::new(row.gex.0, row.gex.1, row.gex.2) else {
        return false;
    };
    let config = Arc::new(client::Config {
        preferred,
        gex,
        inactivity_timeout: Some(Duration::from_secs(30)),
        ..Default::default()
    });
    let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
        return false;
    };
    if socket
        .bind(SocketAddr::from((Ipv4Addr::new(127, 0, 1, n), 0)))
        .is_err()
    {
        return false;
    }
    let Ok(Ok(stream)) = tokio::time::timeout(
        Duration::from_secs(10),
        socket.connect(SocketAddr::from(([127, 0, 0, 1], port))),
    )
    .await
    else {
        return false;
    };
    let connected = tokio::time::timeout(
        Duration::from_secs(30),
        client::connect_stream(config, stream, AcceptAnyHostKey),
    )
    .await;
    match connected {
        Ok(Ok(handle)) => {
            let _ = handle
                .disconnect(russh::Disconnect::ByApplication, "", "")
                .await;
            true
        }
        _ => false,
    }
}

#[test]
#[ignore = "a measurement, not a check: run with --ignored --nocapture"]
fn handshake_cpu_table() {
    let per_row: u32 = std::env::var("HANDSHAKES_PER_ROW")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let (_env, _server, port, pid) = match std::env::var("HANDSHAKE_TARGET") {
        Ok(target) => {
            let (port, pid) = target.split_once(':').expect("HANDSHAKE_TARGET=PORT:PID");
            (None, None, port.parse().unwrap(), pid.parse().unwrap())
        }
        Err(_) => {
            let env = Env::new();
            let server = env.start();
            let (port, pid) = (server.port, server.pid());
            (Some(env), Some(server), port, pid)
        }
    };
    let tick_ms = 1000.0 / ticks_per_second() as f64;
    let rt = runtime();
    println!("| key exchange | host key | server CPU per handshake | note |");
    println!("|---|---|---|---|");
    let mut source = 0u8;
    let only = std::env::var("HANDSHAKE_ROWS").unwrap_or_default();
    for row in rows() {
        let label = format!("{} {} {}", row.kex.as_ref(), row.host_key, row.note);
        if !only.is_empty() && !only.split(',').any(|part| label.contains(part)) {
            continue;
        }
        // Let the previous row's connections finish on the server.
        std::thread::sleep(Duration::from_millis(500));
        let before = cpu_ticks(pid);
        let mut completed = 0;
        for _ in 0..per_row {
            source = source.wrapping_add(1).max(1);
            if rt.block_on(handshake(port, source, &row)) {
                completed += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
        let spent_ms = (cpu_ticks(pid) - before) as f64 * tick_ms;
        let cost = if completed == 0 {
            "refused (not offered)".to_owned()
        } else {
            format!("{:.1} ms", spent_ms / f64::from(completed))
        };
        println!(
            "| {} | {} | {cost} | {}{} |",
            row.kex.as_ref(),
            row.host_key,
            row.note,
            if completed > 0 && completed < per_row {
                format!(" ({completed}/{per_row} completed)")
            } else {
                String::new()
            }
        );
    }
}
