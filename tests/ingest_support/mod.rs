//! What the ingest end-to-end tests share: an installation with ingest on,
//! a hand-off command that logs what it was given, a webhook receiver that
//! checks `X-Ferry-Signature` itself (HMAC-SHA256 of the body), and ways to
//! read what ended up in an account's folders.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;

use crate::common::*;

/// How long the pipeline may take for one batch in these tests.
pub const PIPELINE_TIMEOUT: Duration = Duration::from_secs(60);
pub const SECRET: &str = "test-webhook-secret";

/// An installation with ingest on and `extra_ingest` in `[ingest]`, one
/// account with a key, a running server and a login.
pub fn ingest_setup(account: &str, extra_ingest: &str) -> (Env, Server, Login) {
    let env = Env::with_ingest(extra_ingest);
    env.create_account(account);
    let key = env.new_key(account);
    env.install_key(account, &key);
    let server = env.start();
    let login = env.login(&server, account, &key);
    (env, server, login)
}

/// A hand-off command: a shell script (the test's; Ferry itself runs no
/// shell) that runs `before`, then appends `<batch id> <account> <file
/// names…>` to `done.log`.
pub struct Handoff {
    pub dir: tempfile::TempDir,
}

impl Handoff {
    pub fn new(before: &str) -> Handoff {
        let dir = tempfile::tempdir().unwrap();
        let done = dir.path().join("done.log");
        std::fs::write(
            dir.path().join("handoff.sh"),
            format!(
                "{before}\nnames=$(printf '%s\\n' \"$FERRY_FILES\" | xargs -n1 basename | sort | tr '\\n' ' ')\n\
                 echo \"$FERRY_BATCH_ID $FERRY_ACCOUNT $names\" >> {done:?}\necho handed over\n"
            ),
        )
        .unwrap();
        Handoff { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The `[ingest] command` line.
    pub fn config(&self) -> String {
        format!(
            "command = [\"/bin/sh\", {:?}]\n",
            self.path("handoff.sh").display().to_string()
        )
    }

    /// Lines of `done.log`: completed hand-offs.
    pub fn done(&self) -> Vec<String> {
        read_lines(&self.path("done.log"))
    }
}

pub fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

pub fn states(rows: &[Value]) -> Vec<(String, String)> {
    let mut states: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or("?").to_owned(),
                r["state"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect();
    states.sort();
    states
}

pub fn all_in_state(rows: &[Value], count: usize, state: &str) -> bool {
    rows.len() == count && rows.iter().all(|r| r["state"] == state)
}

/// Every file under `dir`, recursively, as paths relative to it.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    found.sort();
    found
}

/// The text of every report in the account's /reports, joined.
pub fn reports_text(env: &Env, account: &str) -> String {
    let dir = env.account_root(account).join("reports");
    files_under(&dir)
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap())
        .collect::<Vec<_>>()
        .join("\n----\n")
}

/// Waits `period` and asserts `check` held the whole time (polled): for
/// "nothing more happens" after the expected outcome.
pub fn stays(period: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let end = Instant::now() + period;
    while Instant::now() < end {
        assert!(check(), "{what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub fn roster(rows: usize) -> String {
    let mut text = String::from("student_id,last_name,grade\n");
    for i in 0..rows {
        text.push_str(&format!("{i},Name{i},{}\n", i % 12 + 1));
    }
    text
}

/// A webhook receiver on 127.0.0.1:0 answering 500 to the first
/// `fail_first` requests and 200 afterwards; it records every request and
/// whether its signature was right.
pub struct Receiver {
    pub url: String,
    calls: Arc<Mutex<Vec<Call>>>,
    _runtime: tokio::runtime::Runtime,
}

#[derive(Clone, Debug)]
pub struct Call {
    pub body: Value,
    pub raw: Vec<u8>,
    pub signature_ok: bool,
    pub answered: u16,
}

#[derive(Clone)]
pub struct ReceiverState {
    calls: Arc<Mutex<Vec<Call>>>,
    fail_first: usize,
    failure_body: &'static str,
}

async fn hook(
    axum::extract::State(state): axum::extract::State<ReceiverState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> (axum::http::StatusCode, &'static str) {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let signature_ok = headers
        .get("x-ferry-signature")
        .and_then(|v| v.to_str().ok())
        == Some(format!("sha256={expected}").as_str());
    let mut calls = state.calls.lock().unwrap();
    let answered = if calls.len() < state.fail_first {
        500
    } else {
        200
    };
    calls.push(Call {
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: body.to_vec(),
        signature_ok,
        answered,
    });
    let body = if answered == 200 {
        ""
    } else {
        state.failure_body
    };
    (axum::http::StatusCode::from_u16(answered).unwrap(), body)
}

pub fn start_receiver(fail_first: usize) -> Receiver {
    start_receiver_answering(fail_first, "")
}

/// A receiver answering 500 with `failure_body` to the first `fail_first`
/// requests.
pub fn start_receiver_answering(fail_first: usize, failure_body: &'static str) -> Receiver {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let state = ReceiverState {
        calls: calls.clone(),
        fail_first,
        failure_body,
    };
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(state);
    runtime.spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url: format!("http://{addr}/hook"),
        calls,
        _runtime: runtime,
    }
}

impl Receiver {
    pub fn config(&self) -> String {
        format!(
            "webhook_url = {:?}\nwebhook_secret = {SECRET:?}\nwebhook_backoff = \"300ms\"\n",
            self.url
        )
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

pub fn file_names(call: &Call) -> Vec<String> {
    let mut names: Vec<String> = call.body["files"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| f["name"].as_str().unwrap_or("?").to_owned())
        .collect();
    names.sort();
    names
}
