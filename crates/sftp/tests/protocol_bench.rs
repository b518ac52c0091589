//! Throughput of the protocol layer alone, with the real OpenSSH `sftp`
//! client and no SSH in between: `sftp -D` starts a small relay that
//! connects to a TCP port where either `serve` or OpenSSH's own
//! `sftp-server` answers. Ignored by default (needs `sftp` and `python3`);
//! run with
//! `cargo test -p ferry-sftp --release --test protocol_bench -- --ignored --nocapture`.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_sftp::jail::Jail;
use ferry_sftp::protocol::serve;
use tokio::net::TcpListener;

const SMALL_FILES: usize = 500;
const BIG_MIB: usize = 256;

fn cpu_seconds(who: i32) -> f64 {
    // SAFETY: getrusage fills a plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut usage) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

fn run_sftp(relay: &Path, port: u16, batch: &str) -> Duration {
    let started = Instant::now();
    let mut child = Command::new("sftp")
        .args(["-q", "-b", "-", "-D"])
        .arg(format!("python3 {} {port}", relay.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("sftp");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(batch.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "sftp batch failed");
    started.elapsed()
}

async fn serve_ferry(listener: TcpListener, data: PathBuf) {
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let jail = Jail::open(&data, "bench").unwrap();
        let (events, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        tokio::spawn(serve(stream, jail, events));
    }
}

async fn serve_openssh(listener: TcpListener, root: PathBuf) {
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        let std_stream = stream.into_std().unwrap();
        std_stream.set_nonblocking(false).unwrap();
        // SAFETY: dup returns a new descriptor we own.
        let (a, b) = unsafe {
            (
                OwnedFd::from_raw_fd(libc::dup(std_stream.as_raw_fd())),
                OwnedFd::from_raw_fd(libc::dup(std_stream.as_raw_fd())),
            )
        };
        let mut child = Command::new("/usr/lib/openssh/sftp-server")
            .args(["-d", root.to_str().unwrap()])
            .stdin(Stdio::from(a))
            .stdout(Stdio::from(b))
            .spawn()
            .unwrap();
        drop(std_stream);
        tokio::task::spawn_blocking(move || child.wait());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_against_openssh_sftp_server() {
    let bench = compare_with_openssh();
    tokio::time::timeout(Duration::from_secs(900), bench)
        .await
        .expect("benchmark timed out");
}

async fn compare_with_openssh() {
    let local = tempfile::tempdir_in("/dev/shm").unwrap();
    let relay = local.path().join("relay.py");
    std::fs::write(&relay, protocol_client::PYTHON_RELAY).unwrap();
    let big = local.path().join("big.bin");
    let content: Vec<u8> = (0..BIG_MIB << 20).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&big, &content).unwrap();
    let small_dir = local.path().join("small");
    std::fs::create_dir(&small_dir).unwrap();
    for i in 0..SMALL_FILES {
        std::fs::write(
            small_dir.join(format!("f{i}.csv")),
            &content[i * 4096..(i + 1) * 4096],
        )
        .unwrap();
    }

    let data = tempfile::tempdir().unwrap();
    let root = Jail::create_layout(data.path(), "bench").unwrap();
    let ferry = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let openssh = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ports = [
        ("ferry", ferry.local_addr().unwrap().port()),
        ("openssh", openssh.local_addr().unwrap().port()),
    ];
    tokio::spawn(serve_ferry(ferry, data.path().to_owned()));
    tokio::spawn(serve_openssh(openssh, root.clone()));

    let put_big = format!("put {} inbound/big.bin\n", big.display());
    let get_big = format!(
        "get inbound/big.bin {}\n",
        local.path().join("back.bin").display()
    );
    let put_small: String = (0..SMALL_FILES)
        .map(|i| {
            format!(
                "put {} inbound/s{i}.csv\n",
                small_dir.join(format!("f{i}.csv")).display()
            )
        })
        .collect();
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    for round in 0..rounds {
        for (name, port) in ports {
            let mut line = format!("round {round} {name:8}");
            for (workload, batch) in [
                ("upload", &put_big),
                ("download", &get_big),
                ("small", &put_small),
            ] {
                if !only.is_empty() && !only.contains(workload) {
                    continue;
                }
                let relay = relay.clone();
                let batch = batch.clone();
                tokio::task::spawn_blocking(|| Command::new("sync").status())
                    .await
                    .unwrap()
                    .unwrap();
                let cpu = cpu_seconds(libc::RUSAGE_SELF);
                let took = tokio::task::spawn_blocking(move || run_sftp(&relay, port, &batch))
                    .await
                    .unwrap();
                let cpu = cpu_seconds(libc::RUSAGE_SELF) - cpu;
                line += &format!(
                    "  {workload} {:6.2}s (ferry cpu {cpu:5.2}s)",
                    took.as_secs_f64()
                );
            }
            println!("{line}");
            if only.is_empty() || only.contains("download") {
                assert_eq!(
                    std::fs::read(local.path().join("back.bin")).unwrap().len(),
                    content.len()
                );
            }
            for entry in std::fs::read_dir(root.join("inbound")).unwrap() {
                std::fs::remove_file(entry.unwrap().path()).unwrap();
            }
        }
    }
}

mod protocol_client;

/// Round-trip latency of requests sent one at a time (what a small-file
/// upload pays per request), on the multi-thread runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_sequential_request_latency() {
    protocol_client::bounded(sequential_request_latency()).await;
}

async fn sequential_request_latency() {
    use ferry_sftp::protocol::codec::{packet, status};
    let (mut client, _server) = protocol_client::start().await;
    for round in 0..3 {
        let started = Instant::now();
        for _ in 0..5000 {
            client.path_request(packet::STAT, b"/inbound").await;
        }
        let stat = started.elapsed() / 5000;
        let started = Instant::now();
        for i in 0..1000 {
            let name = format!("/inbound/f{i}.csv");
            assert_eq!(
                client.upload(name.as_bytes(), &[7u8; 4096]).await.0,
                status::OK
            );
        }
        let upload = started.elapsed() / 1000;
        println!("round {round}: STAT round trip {stat:?}, OPEN+WRITE+CLOSE {upload:?}");
    }
}
