//! Notifications end to end against a real SMTP server (Debian's
//! python3-aiosmtpd, started by each test) and a real webhook receiver:
//! events written by the store's transitions reach the right recipients
//! and only them, repeats are deduplicated, delivery is retried after the
//! mail server was down and survives a restart, two nodes on PostgreSQL
//! send each message once, and the webhook is signed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry_notify::NotifySettings;
use ferry_store::{Actor, Finish, Store, UploadState};
use tokio::sync::oneshot;

/// An aiosmtpd server writing each message it receives to a folder, one
/// file per message, first line `X-Rcpt: <recipients>`.
const SINK: &str = r#"
import os, sys, time, threading
from aiosmtpd.controller import Controller
out, port = sys.argv[1], int(sys.argv[2])
class Handler:
    async def handle_DATA(self, server, session, envelope):
        name = '%d-%d.eml' % (time.time_ns(), threading.get_ident())
        tmp = os.path.join(out, '.' + name)
        with open(tmp, 'wb') as f:
            f.write(('X-Rcpt: ' + ','.join(envelope.rcpt_tos) + '\r\n').encode())
            f.write(envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode())
        os.rename(tmp, os.path.join(out, name))
        return '250 OK'
c = Controller(Handler(), hostname='127.0.0.1', port=port)
c.start()
print('ready', flush=True)
sys.stdin.read()
c.stop()
"#;

fn required() -> bool {
    std::env::var("FERRY_REQUIRE_CLIENTS").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
}

/// A python3 that has aiosmtpd (Debian's /usr/bin/python3 first).
fn python() -> Option<&'static str> {
    ["/usr/bin/python3", "python3"].into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

struct Sink {
    child: Child,
    dir: PathBuf,
}

impl Sink {
    fn start(python: &str, port: u16, dir: &Path) -> Sink {
        std::fs::create_dir_all(dir).unwrap();
        let mut child = Command::new(python)
            .args(["-c", SINK, dir.to_str().unwrap(), &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start aiosmtpd");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "aiosmtpd did not start");
        Sink {
            child,
            dir: dir.to_owned(),
        }
    }

    /// Recipient → subjects of the messages received so far.
    fn received(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for entry in std::fs::read_dir(&self.dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).unwrap();
            let rcpt = text
                .lines()
                .next()
                .unwrap()
                .trim_start_matches("X-Rcpt: ")
                .to_owned();
            let subject = text
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or_default()
                .to_owned();
            out.entry(rcpt).or_default().push(subject);
        }
        out
    }

    fn count(&self) -> usize {
        self.received().values().map(Vec::len).sum()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn settings(port: u16, node: &str) -> NotifySettings {
    NotifySettings {
        smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
        from: "Ferry <ferry@vendor.example>".into(),
        vendor_emails: vec!["ops@vendor.example".into()],
        webhook_url: None,
        webhook_secret: String::new(),
        repeat_after: Duration::from_secs(12 * 3600),
        digest_at: None,
        refused_logins: 5,
        refused_logins_window: Duration::from_secs(3600),
        poll_interval: Duration::from_millis(100),
        check_interval: Duration::from_secs(3600),
        retry_backoff: Duration::from_millis(200),
        node_id: node.into(),
        web_url: "https://sftp.example.org".into(),
    }
}

/// A running notifier; dropping it stops it.
struct Worker(Option<oneshot::Sender<()>>, tokio::task::JoinHandle<()>);

impl Worker {
    fn start(settings: NotifySettings, store: &Store) -> Worker {
        let (tx, rx) = oneshot::channel();
        let handle = tokio::spawn(ferry_notify::run(settings, store.clone(), async {
            let _ = rx.await;
        }));
        Worker(Some(tx), handle)
    }

    async fn stop(mut self) {
        let _ = self.0.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), &mut self.1)
            .await
            .expect("the notifier stops")
            .unwrap();
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sqlite_store(dir: &Path) -> Store {
    let store = Store::connect(&format!("sqlite://{}/ferry.db", dir.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
}

/// An account with contacts, created through the store.
async fn account(store: &Store, name: &str, contacts: &[&str]) {
    let actor = Actor::new("test");
    store
        .create_account(name, Some(&format!("{name} Unified")), false, &actor)
        .await
        .unwrap();
    let list: Vec<String> = contacts.iter().map(|c| (*c).to_owned()).collect();
    store.set_contacts(name, &list, &actor).await.unwrap();
}

/// A file of `account` that the pipeline finished in `state` (the same
/// store calls the pipeline makes), with `rows` rows.
async fn finished(store: &Store, account: &str, name: &str, rows: i64, state: UploadState) -> i64 {
    let id = store
        .record_upload(account, name, 100, UploadState::Received, None)
        .await
        .unwrap();
    store
        .record_check(id, Some("00"), "students.csv", rows, "report")
        .await
        .unwrap();
    let detail = match state {
        UploadState::Held => "held for review by the roster guard",
        _ => "refused: line 3: 4 columns, the header has 5",
    };
    store
        .finish_upload(
            id,
            Finish {
                state,
                detail,
                report: None,
                archive_path: None,
            },
        )
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn each_event_reaches_the_right_recipients_once_and_repeats_are_deduplicated() {
    let Some(python) = python() else {
        assert!(
            !required(),
            "python3-aiosmtpd is missing: apt-get install python3-aiosmtpd"
        );
        eprintln!("skipped: python3-aiosmtpd is not installed");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let store = sqlite_store(tmp.path()).await;
    let port = free_port();
    let sink = Sink::start(python, port, &tmp.path().join("mail"));
    account(
        &store,
        "lincoln",
        &["it@lincoln.k12.us", "data@lincoln.k12.us"],
    )
    .await;
    account(&store, "springfield", &["it@springfield.k12.us"]).await;
    let worker = Worker::start(settings(port, "n1"), &store);

    finished(
        &store,
        "lincoln",
        "students_20261207.csv",
        850,
        UploadState::Held,
    )
    .await;
    finished(
        &store,
        "springfield",
        "staff.csv",
        10,
        UploadState::Rejected,
    )
    .await;
    let failed = store
        .record_upload("lincoln", "classes.csv", 5, UploadState::Received, None)
        .await
        .unwrap();
    store
        .give_up_upload(
            failed,
            "the vendor's import did not accept this batch",
            "the import answered 500",
        )
        .await
        .unwrap();

    wait_until("6 messages", || sink.count() >= 6).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = sink.received();
    assert_eq!(
        got.len(),
        4,
        "only the vendor and the two accounts' contacts: {got:?}"
    );
    assert_eq!(got["ops@vendor.example"].len(), 3, "{got:?}");
    for contact in ["it@lincoln.k12.us", "data@lincoln.k12.us"] {
        assert_eq!(
            got[contact],
            ["Your file students_20261207.csv was held for review"],
            "lincoln's contacts hear of the held file only (not springfield's, not the hand-off): {got:?}"
        );
    }
    assert_eq!(
        got["it@springfield.k12.us"],
        ["Your file staff.csv was refused"]
    );
    let held = std::fs::read_dir(&sink.dir)
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .find(|t| t.starts_with("X-Rcpt: it@lincoln.k12.us"))
        .unwrap();
    assert!(held.contains("it has 850 rows"), "{held}");

    // The same kind for the same account within notify.repeat_after: nobody
    // hears of it again; another kind still goes out.
    finished(
        &store,
        "lincoln",
        "students_20261208.csv",
        0,
        UploadState::Held,
    )
    .await;
    finished(&store, "lincoln", "orgs.csv", 3, UploadState::Rejected).await;
    wait_until("the rejection", || sink.count() >= 9).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = sink.received();
    assert_eq!(
        sink.count(),
        9,
        "the second held file is deduplicated: {got:?}"
    );
    assert_eq!(got["it@lincoln.k12.us"].len(), 2);
    assert_eq!(got["ops@vendor.example"].len(), 4);
    worker.stop().await;
    let counts = store.outbox_counts().await.unwrap();
    assert_eq!((counts.sent, counts.pending, counts.failed), (9, 0, 0));
}

#[tokio::test]
async fn delivery_is_retried_after_the_mail_server_was_down_and_survives_a_restart() {
    let Some(python) = python() else {
        assert!(
            !required(),
            "python3-aiosmtpd is missing: apt-get install python3-aiosmtpd"
        );
        eprintln!("skipped: python3-aiosmtpd is not installed");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let store = sqlite_store(tmp.path()).await;
    let port = free_port();
    account(&store, "lincoln", &["it@lincoln.k12.us"]).await;

    // No mail server: the messages wait, with their failed tries counted.
    let worker = Worker::start(settings(port, "n1"), &store);
    finished(&store, "lincoln", "students.csv", 0, UploadState::Held).await;
    let start = Instant::now();
    loop {
        let counts = store.outbox_counts().await.unwrap();
        if counts.pending == 2 && start.elapsed() > Duration::from_secs(1) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "messages never queued: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.stop().await;

    // The mail server is back; a new process (same database) sends each once.
    let sink = Sink::start(python, port, &tmp.path().join("mail"));
    let store = sqlite_store(tmp.path()).await;
    let worker = Worker::start(settings(port, "n1"), &store);
    wait_until("both messages", || sink.count() >= 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = sink.received();
    assert_eq!(got["ops@vendor.example"].len(), 1, "{got:?}");
    assert_eq!(got["it@lincoln.k12.us"].len(), 1, "{got:?}");
    worker.stop().await;
    let counts = store.outbox_counts().await.unwrap();
    assert_eq!((counts.sent, counts.pending), (2, 0));
}

#[tokio::test]
async fn the_webhook_is_signed_with_hmac_sha256_of_the_body() {
    use axum::routing::post;
    use hmac::{Hmac, KeyInit, Mac};
    let tmp = tempfile::tempdir().unwrap();
    let store = sqlite_store(tmp.path()).await;
    account(&store, "lincoln", &[]).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Vec<u8>)>();
    let app = axum::Router::new().route(
        "/hook",
        post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let tx = tx.clone();
                async move {
                    let sig = headers
                        .get("x-ferry-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send((sig, body.to_vec()));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut s = settings(free_port(), "n1");
    s.smtp_url = None;
    s.webhook_url = Some(format!("http://{addr}/hook"));
    s.webhook_secret = "hook-secret".into();
    let worker = Worker::start(s, &store);
    finished(&store, "lincoln", "students.csv", 0, UploadState::Held).await;
    let (sig, body) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("the webhook is called")
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"hook-secret").unwrap();
    mac.update(&body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(sig, format!("sha256={expected}"));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["kind"], "held");
    assert_eq!(json["account"], "lincoln");
    assert_eq!(json["facts"]["file"], "students.csv");
    worker.stop().await;
}

#[tokio::test]
async fn two_nodes_on_postgresql_send_each_message_once() {
    use sqlx::{Connection, Executor};
    let url = match std::env::var("FERRY_TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            assert!(!required(), "FERRY_TEST_POSTGRES_URL is not set");
            eprintln!("skipped: FERRY_TEST_POSTGRES_URL is not set");
            return;
        }
    };
    let Some(python) = python() else {
        assert!(!required(), "python3-aiosmtpd is missing");
        return;
    };
    let schema = format!("ferry_t_notify_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
        .await
        .unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{separator}options=-c%20search_path%3D{schema}");
    let node_a = Store::connect(&scoped).await.unwrap();
    node_a.migrate().await.unwrap();
    let node_b = Store::connect(&scoped).await.unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let sink = Sink::start(python, port, &tmp.path().join("mail"));
    const ACCOUNTS: usize = 20;
    for n in 0..ACCOUNTS {
        account(&node_a, &format!("d{n}"), &[&format!("it@d{n}.org")]).await;
    }
    let a = Worker::start(settings(port, "node-a"), &node_a);
    let b = Worker::start(settings(port, "node-b"), &node_b);
    for n in 0..ACCOUNTS {
        let store = if n % 2 == 0 { &node_a } else { &node_b };
        finished(
            store,
            &format!("d{n}"),
            "students.csv",
            0,
            UploadState::Held,
        )
        .await;
    }
    wait_until("every message", || sink.count() >= 2 * ACCOUNTS).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got = sink.received();
    assert_eq!(sink.count(), 2 * ACCOUNTS, "each message once: {got:?}");
    assert_eq!(got["ops@vendor.example"].len(), ACCOUNTS);
    for n in 0..ACCOUNTS {
        assert_eq!(got[&format!("it@d{n}.org")].len(), 1);
    }
    a.stop().await;
    b.stop().await;
    node_a.close().await;
    node_b.close().await;
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA \"{schema}\" CASCADE"
        )))
        .await
        .unwrap();
}
