//! The real OpenSSH `sftp` client against `serve`, without SSH: `sftp -D`
//! runs a relay to a TCP port where `serve` answers. Covers what the client
//! really sends for put, put -p, reput, get, ls -l, rename, mkdir, rm,
//! rmdir, df, chmod, and refused writes. Skipped when `sftp` or `python3` is
//! missing, unless FERRY_REQUIRE_CLIENTS is set (as CI does): then it fails.

mod protocol_client;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use ferry_sftp::jail::Jail;
use ferry_sftp::protocol::serve;
use ferry_sftp::upload::UploadEvent;
use protocol_client::{ACCOUNT, PYTHON_RELAY, bounded};
use tokio::net::TcpListener;

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Runs `sftp -b -` with `batch`; returns (success, stdout, stderr).
fn run_sftp(relay: &std::path::Path, port: u16, batch: &str) -> (bool, String, String) {
    let mut child = Command::new("sftp")
        .args(["-b", "-", "-D"])
        .arg(format!("python3 {} {port}", relay.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sftp");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(batch.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_sftp_client_works_against_serve() {
    if !have("sftp") || !have("python3") {
        let required = std::env::var_os("FERRY_REQUIRE_CLIENTS").is_some();
        assert!(
            !required,
            "FERRY_REQUIRE_CLIENTS is set but sftp or python3 is missing"
        );
        eprintln!("skipped: needs the OpenSSH sftp client and python3");
        return;
    }
    bounded(openssh_session()).await;
}

async fn openssh_session() {
    let data = tempfile::tempdir().unwrap();
    let root = Jail::create_layout(data.path(), ACCOUNT).unwrap();
    std::fs::write(root.join("outbound/report.txt"), b"report for the district").unwrap();
    let local = tempfile::tempdir().unwrap();
    let relay = local.path().join("relay.py");
    std::fs::write(&relay, PYTHON_RELAY).unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(local.path().join("big.bin"), &big).unwrap();
    std::fs::write(local.path().join("a.csv"), b"id,name\n1,Ada\n").unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let data_dir = data.path().to_owned();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let jail = Jail::open(&data_dir, ACCOUNT).unwrap();
            tokio::spawn(serve(stream, jail, events_tx.clone()));
        }
    });

    let l = local.path().display();
    let batch = format!(
        "pwd\nls -l /\ncd inbound\nput {l}/a.csv\nput -p {l}/big.bin\nrename a.csv roster.csv\n\
         mkdir sub\nput {l}/a.csv sub/x.csv\nrm sub/x.csv\nrmdir sub\nchmod 600 roster.csv\ndf\n\
         get roster.csv {l}/roster.back\nget /outbound/report.txt {l}/report.back\nls -l\n\
         -put {l}/a.csv /outbound/a.csv\n-mkdir /archive/x\n-rm /outbound/report.txt\n-get /etc/passwd {l}/passwd\n"
    );
    let (ok, stdout, stderr) = tokio::task::spawn_blocking({
        let relay = relay.clone();
        move || run_sftp(&relay, port, &batch)
    })
    .await
    .unwrap();
    assert!(ok, "sftp failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("Remote working directory: /"), "{stdout}");
    assert!(
        stdout.contains("inbound") && stdout.contains("outbound"),
        "{stdout}"
    );
    // OpenSSH's client prints its own text for the status code, not ours.
    assert!(
        stderr.contains(r#"dest open "/outbound/a.csv": Permission denied"#),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"remote mkdir "/archive/x": Permission denied"#),
        "{stderr}"
    );
    assert!(
        stderr.contains("remote delete /outbound/report.txt: Permission denied"),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"File "/etc/passwd" not found"#),
        "{stderr}"
    );

    assert_eq!(std::fs::read(root.join("inbound/big.bin")).unwrap(), big);
    let local_mtime = std::fs::metadata(local.path().join("big.bin"))
        .unwrap()
        .modified()
        .unwrap();
    let remote_mtime = std::fs::metadata(root.join("inbound/big.bin"))
        .unwrap()
        .modified()
        .unwrap();
    let drift = local_mtime
        .duration_since(remote_mtime)
        .unwrap_or_else(|e| e.duration());
    assert!(
        drift < Duration::from_secs(1),
        "put -p did not keep the time"
    );
    assert_eq!(
        std::fs::read(local.path().join("roster.back")).unwrap(),
        b"id,name\n1,Ada\n"
    );
    assert_eq!(
        std::fs::read(local.path().join("report.back")).unwrap(),
        b"report for the district"
    );
    assert!(!local.path().join("passwd").exists());
    assert!(!root.join("outbound/a.csv").exists());
    assert!(root.join("outbound/report.txt").exists());

    let mut finished = Vec::new();
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(500), events.recv()).await
    {
        if let UploadEvent::Finished(f) = event {
            finished.push(f.path);
        }
    }
    finished.sort();
    assert_eq!(
        finished,
        [
            "/inbound/a.csv",
            "/inbound/big.bin",
            "/inbound/roster.csv",
            "/inbound/sub/x.csv"
        ]
    );

    let mut half = big.clone();
    half.truncate(1_000_000);
    std::fs::write(root.join("inbound/big.bin"), &half).unwrap();
    let batch = format!("cd inbound\nreput {l}/big.bin big.bin\n");
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || run_sftp(&relay, port, &batch))
        .await
        .unwrap();
    assert!(ok, "reput failed:\n{stdout}\n{stderr}");
    assert_eq!(
        std::fs::read(root.join("inbound/big.bin")).unwrap(),
        big,
        "resumed upload differs"
    );
}
