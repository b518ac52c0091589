//! Hand-off: giving a batch's accepted files to the vendor's import, by a
//! command, a webhook, or both (DESIGN.md "Ingest", 5).
//!
//! - The command is an argument vector run without a shell, with
//!   `FERRY_ACCOUNT`, `FERRY_BATCH_ID`, `FERRY_FILES` (the files' absolute
//!   paths, one per line: names with control characters never get here)
//!   and `FERRY_MANIFEST` (the path of a JSON file holding exactly the
//!   webhook's body) in its environment, and a timeout. It dies with the
//!   node that started it (`PR_SET_PDEATHSIG`, see `launch`), so a killed
//!   node's hand-off is never completed behind the queue's back; the batch
//!   is taken up again instead.
//! - The webhook gets the same JSON, signed in
//!   `X-Ferry-Signature: sha256=<hex HMAC-SHA256 of the body>`, and is
//!   retried with exponential back-off; any 2xx answer is success.
//!
//! What the import answered — exit status and the tail of the output, HTTP
//! status and the tail of the body, the URL with credentials and query
//! removed ([`redacted_url`]) — is the vendor's ([`HandoffOutcome::detail`]);
//! it never goes into a district's report. The webhook's URL appears only
//! redacted, in errors and in every log line, and the secret never.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ferry_store::HandoffDetail;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::launch;
use crate::{FileReport, SetReport};

/// At most this much of a command's output, or of a webhook's answer, is
/// kept (the end), for the vendor.
pub const MAX_CAPTURED_OUTPUT: usize = 4 * 1024;

/// How batches are handed over.
#[derive(Clone, Default)]
pub struct HandoffSettings {
    /// The command's argument vector; empty for none.
    pub command: Vec<String>,
    /// How long the command may run.
    pub command_timeout: Duration,
    /// The webhook's URL, if any.
    pub webhook_url: Option<String>,
    /// The HMAC key of `X-Ferry-Signature`.
    pub webhook_secret: String,
    /// Tries per hand-off before the batch counts as failed.
    pub webhook_attempts: u32,
    /// Wait before the second try; doubled before each further one.
    pub webhook_backoff: Duration,
    /// The program that starts the command so it dies with this node
    /// (`ferry` itself: [`crate::LAUNCH_ARG`]); `None`: started directly.
    pub launcher: Option<PathBuf>,
}

impl std::fmt::Debug for HandoffSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandoffSettings")
            .field("command", &self.command)
            .field("command_timeout", &self.command_timeout)
            .field(
                "webhook_url",
                &self.webhook_url.as_deref().map(redacted_url),
            )
            .field("webhook_secret", &"<hidden>")
            .field("webhook_attempts", &self.webhook_attempts)
            .finish_non_exhaustive()
    }
}

impl HandoffSettings {
    /// Whether a command or a webhook is set.
    #[must_use]
    pub fn is_configured(&self) -> bool {
        !self.command.is_empty() || self.webhook_url.is_some()
    }
}

/// The longest wait between two webhook tries.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long one webhook request may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// One file of a batch, as the command and the webhook see it.
#[derive(Debug, Clone, Serialize)]
pub struct HandoffFile {
    /// The upload's id.
    pub id: i64,
    /// The name under `/inbound`.
    pub name: String,
    /// The name without its date suffix.
    pub logical_name: String,
    /// Where the file is now (absolute; readable by the command).
    pub path: PathBuf,
    /// Bytes.
    pub size: u64,
    /// Hex SHA-256.
    pub sha256: String,
    /// What the checks found.
    pub checks: FileReport,
}

/// The webhook's JSON body, and the content of `FERRY_MANIFEST`.
#[derive(Debug, Serialize)]
pub struct HandoffBody<'a> {
    /// The batch's id (the same on every retry: receivers can deduplicate).
    pub batch_id: i64,
    /// The account's name.
    pub account: &'a str,
    /// The files handed over.
    pub files: &'a [HandoffFile],
    /// The set checks (OneRoster, Clever), when the batch had a set.
    pub sets: &'a [SetReport],
}

/// Why a hand-off failed; the message says what to check. For the vendor:
/// it names commands and hosts (never the webhook's credentials or query).
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    /// `FERRY_MANIFEST` could not be written.
    #[error(
        "the hand-off manifest {path} could not be written: {source}; check that data_dir is writable and not full"
    )]
    Manifest {
        /// Where it was to go.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The command could not be started.
    #[error(
        "the hand-off command {program:?} could not be started: {source}; check [ingest] command"
    )]
    Spawn {
        /// argv\[0\].
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The command ran too long and was killed.
    #[error(
        "the hand-off command ran longer than {timeout:?} and was stopped; make it faster or raise [ingest] command_timeout"
    )]
    Timeout {
        /// The limit.
        timeout: Duration,
    },
    /// The command exited with a failure.
    #[error(
        "the hand-off command failed ({status}); see its output in `ferry uploads show`. Ferry tries again later"
    )]
    Failed {
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// Every webhook try failed.
    #[error(
        "the webhook {url} did not accept the batch after {attempts} tries; last: {last}. Check the receiver; Ferry tries again later"
    )]
    Webhook {
        /// The URL, redacted.
        url: String,
        /// Tries made.
        attempts: u32,
        /// The last answer or error.
        last: String,
    },
}

/// What a hand-off came to: success or why not, and what the import
/// answered, for the vendor.
#[derive(Debug)]
pub struct HandoffOutcome {
    /// Handed over, or why not.
    pub result: Result<(), HandoffError>,
    /// Exit status, output, redacted URL, HTTP status, body.
    pub detail: HandoffDetail,
}

/// `sha256=<hex HMAC-SHA256 of body keyed with secret>`.
#[must_use]
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

/// Lower-case hex.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// `url` without user name, password, query and fragment — the form in
/// which a webhook URL is logged, stored and shown.
#[must_use]
pub fn redacted_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "(a URL that cannot be parsed)".to_owned(),
    }
}

/// Hands the batch over: writes `manifest` (the body as JSON), runs the
/// command, posts the webhook, and removes `manifest` again.
pub async fn hand_off(
    settings: &HandoffSettings,
    body: &HandoffBody<'_>,
    manifest: &Path,
) -> HandoffOutcome {
    let mut detail = HandoffDetail::default();
    let json = serde_json::to_vec(body).expect("the hand-off body serialises");
    let result = async {
        if !settings.command.is_empty() {
            write_manifest(manifest, &json).await?;
            run_command(settings, body, manifest, &mut detail).await?;
        }
        if let Some(url) = &settings.webhook_url {
            post_webhook(settings, url, body.batch_id, &json, &mut detail).await?;
        }
        Ok(())
    }
    .await;
    let _ = tokio::fs::remove_file(manifest).await;
    HandoffOutcome { result, detail }
}

async fn write_manifest(path: &Path, json: &[u8]) -> Result<(), HandoffError> {
    let written = async {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        tokio::fs::write(path, json).await
    };
    written.await.map_err(|source| HandoffError::Manifest {
        path: path.to_owned(),
        source,
    })
}

async fn run_command(
    settings: &HandoffSettings,
    body: &HandoffBody<'_>,
    manifest: &Path,
    detail: &mut HandoffDetail,
) -> Result<(), HandoffError> {
    let program = settings.command[0].clone();
    let files: Vec<String> = body
        .files
        .iter()
        .map(|f| f.path.display().to_string())
        .collect();
    let mut command = launch::command(settings.launcher.as_deref(), &settings.command);
    command
        .env("FERRY_ACCOUNT", body.account)
        .env("FERRY_BATCH_ID", body.batch_id.to_string())
        .env("FERRY_FILES", files.join("\n"))
        .env("FERRY_MANIFEST", manifest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|source| HandoffError::Spawn { program, source })?;
    let (stdout, stderr) = (Tail::default(), Tail::default());
    let reading = tokio::spawn({
        let (out, err) = (stdout.clone(), stderr.clone());
        let (out_pipe, err_pipe) = (child.stdout.take(), child.stderr.take());
        async move {
            tokio::join!(out.read_all(out_pipe), err.read_all(err_pipe));
        }
    });
    let waited = tokio::time::timeout(settings.command_timeout, child.wait()).await;
    if waited.is_err() {
        let _ = child.kill().await;
    }
    let complete = finish_reading(reading).await;
    let mut output = stdout.bytes();
    output.extend_from_slice(&stderr.bytes());
    if !complete {
        output.extend_from_slice(
            b"\n[output not complete: a process the command started keeps it open]",
        );
    }
    detail.command_output = Some(captured(output));
    let Ok(status) = waited else {
        return Err(HandoffError::Timeout {
            timeout: settings.command_timeout,
        });
    };
    let status = status.map_err(|source| HandoffError::Spawn {
        program: settings.command[0].clone(),
        source,
    })?;
    detail.command_exit_status = status.code().map(i64::from);
    if status.success() {
        Ok(())
    } else {
        Err(HandoffError::Failed { status })
    }
}

/// The last [`MAX_CAPTURED_OUTPUT`] bytes of a pipe, kept while it is read
/// (so what was read is there even when reading is cut short); memory stays
/// bounded however much a command prints.
#[derive(Clone, Default)]
struct Tail(std::sync::Arc<std::sync::Mutex<(Vec<u8>, u64)>>);

impl Tail {
    async fn read_all(&self, pipe: Option<impl AsyncRead + Unpin>) {
        let Some(mut pipe) = pipe else {
            return;
        };
        let mut buffer = vec![0; 8192];
        while let Ok(n) = pipe.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            let mut tail = self.0.lock().expect("output tail lock");
            let (kept, dropped) = &mut *tail;
            kept.extend_from_slice(&buffer[..n]);
            if kept.len() > 2 * MAX_CAPTURED_OUTPUT {
                let cut = kept.len() - MAX_CAPTURED_OUTPUT;
                *dropped += cut as u64;
                kept.drain(..cut);
            }
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let tail = self.0.lock().expect("output tail lock");
        let (kept, dropped) = &*tail;
        let mut bytes = Vec::new();
        if *dropped > 0 {
            bytes.extend_from_slice(format!("[… {dropped} earlier bytes cut …]\n").as_bytes());
        }
        bytes.extend_from_slice(kept);
        bytes
    }
}

/// Waits for the output to end; a background process that keeps the pipes
/// open does not hold the hand-off up for more than two seconds. False when
/// reading was cut short.
async fn finish_reading(reading: tokio::task::JoinHandle<()>) -> bool {
    let abort = reading.abort_handle();
    match tokio::time::timeout(Duration::from_secs(2), reading).await {
        Ok(_) => true,
        Err(_) => {
            abort.abort();
            false
        }
    }
}

/// Output as text, cut to about [`MAX_CAPTURED_OUTPUT`] bytes (the end is kept).
fn captured(bytes: Vec<u8>) -> String {
    let limit = MAX_CAPTURED_OUTPUT + 64;
    let start = bytes.len().saturating_sub(limit);
    let text = String::from_utf8_lossy(&bytes[start..]).into_owned();
    if start > 0 {
        format!("[… {start} earlier bytes cut …]\n{text}")
    } else {
        text
    }
}

async fn post_webhook(
    settings: &HandoffSettings,
    url: &str,
    batch_id: i64,
    json: &[u8],
    detail: &mut HandoffDetail,
) -> Result<(), HandoffError> {
    let shown_url = redacted_url(url);
    detail.webhook_url = Some(shown_url.clone());
    let signed = signature(settings.webhook_secret.as_bytes(), json);
    let client = reqwest::Client::builder()
        .timeout(WEBHOOK_TIMEOUT)
        .build()
        .map_err(|e| webhook_error(&shown_url, 0, error_chain(e)))?;
    let attempts = settings.webhook_attempts.max(1);
    let mut wait = settings.webhook_backoff;
    let mut last = String::new();
    for attempt in 1..=attempts {
        if attempt > 1 {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_BACKOFF);
        }
        let answer = client
            .post(url)
            .header("Content-Type", "application/json")
            .header("X-Ferry-Signature", &signed)
            .header("X-Ferry-Batch", batch_id.to_string())
            .body(json.to_vec())
            .send()
            .await;
        match answer {
            Ok(mut response) => {
                let status = response.status();
                detail.webhook_status = Some(i64::from(status.as_u16()));
                detail.webhook_body = Some(captured(body_tail(&mut response).await));
                if status.is_success() {
                    return Ok(());
                }
                last = format!("HTTP {status}");
            }
            Err(e) => {
                detail.webhook_status = None;
                detail.webhook_body = None;
                last = error_chain(e);
            }
        }
        tracing::warn!(url = %shown_url, attempt, attempts, answer = %last, "webhook did not accept the batch");
    }
    Err(webhook_error(&shown_url, attempts, last))
}

/// The last [`MAX_CAPTURED_OUTPUT`] bytes of a response's body.
async fn body_tail(response: &mut reqwest::Response) -> Vec<u8> {
    let mut kept = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        kept.extend_from_slice(&chunk);
        if kept.len() > 2 * MAX_CAPTURED_OUTPUT {
            kept.drain(..kept.len() - MAX_CAPTURED_OUTPUT);
        }
    }
    kept
}

/// A request error and its causes, without the URL (which may carry
/// credentials).
fn error_chain(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn webhook_error(url: &str, attempts: u32, last: String) -> HandoffError {
    HandoffError::Webhook {
        url: url.to_owned(),
        attempts,
        last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_the_rfc_4231_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let settings = HandoffSettings {
            webhook_secret: "s3cret-value".to_owned(),
            ..HandoffSettings::default()
        };
        assert!(!format!("{settings:?}").contains("s3cret"));
    }

    fn body_with(files: &[HandoffFile]) -> HandoffBody<'_> {
        HandoffBody {
            batch_id: 42,
            account: "lincoln",
            files,
            sets: &[],
        }
    }

    fn command(script: &str, timeout: Duration) -> HandoffSettings {
        HandoffSettings {
            command: vec!["/bin/sh".into(), "-c".into(), script.into()],
            command_timeout: timeout,
            ..HandoffSettings::default()
        }
    }

    /// Hands `body_with(&[])` over with a manifest in a temporary folder.
    async fn run(settings: &HandoffSettings) -> (HandoffOutcome, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("batch-42.json");
        let outcome = hand_off(settings, &body_with(&[]), &manifest).await;
        assert!(!manifest.exists(), "the manifest is removed afterwards");
        (outcome, dir)
    }

    #[tokio::test]
    async fn the_command_gets_the_batch_in_its_environment_and_its_output_is_kept() {
        let settings = command(
            "echo \"$FERRY_ACCOUNT/$FERRY_BATCH_ID/$FERRY_FILES\"; cat \"$FERRY_MANIFEST\"; echo oops >&2",
            Duration::from_secs(30),
        );
        let (outcome, _dir) = run(&settings).await;
        outcome.result.unwrap();
        let output = outcome.detail.command_output.unwrap();
        assert!(output.contains("lincoln/42/\n"), "{output}");
        assert!(
            output.contains(r#"{"batch_id":42,"account":"lincoln","files":[],"sets":[]}"#),
            "the manifest is the webhook's body: {output}"
        );
        assert!(output.contains("oops"), "stderr is kept too: {output}");
        assert_eq!(outcome.detail.command_exit_status, Some(0));
    }

    #[tokio::test]
    async fn a_failing_or_slow_command_is_an_error_and_its_output_the_vendors() {
        let (failed, _dir) = run(&command("echo broken; exit 3", Duration::from_secs(30))).await;
        let error = failed.result.unwrap_err();
        assert!(matches!(error, HandoffError::Failed { .. }), "{error}");
        assert!(
            !error.to_string().contains("broken"),
            "the output is kept apart: {error}"
        );
        assert_eq!(failed.detail.command_exit_status, Some(3));
        assert_eq!(failed.detail.command_output.as_deref(), Some("broken\n"));

        let started = std::time::Instant::now();
        let (slow, _dir) = run(&command("echo begun; sleep 30", Duration::from_millis(500))).await;
        let error = slow.result.unwrap_err();
        assert!(matches!(error, HandoffError::Timeout { .. }), "{error}");
        assert!(error.to_string().contains("command_timeout"), "{error}");
        assert_eq!(slow.detail.command_exit_status, None);
        assert!(slow.detail.command_output.unwrap().contains("begun"));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "stopped at the timeout"
        );

        let missing = HandoffSettings {
            command: vec!["/nonexistent/import".into()],
            command_timeout: Duration::from_secs(5),
            ..HandoffSettings::default()
        };
        let (outcome, _dir) = run(&missing).await;
        let error = outcome.result.unwrap_err();
        assert!(matches!(error, HandoffError::Spawn { .. }), "{error}");
    }

    #[tokio::test]
    async fn a_command_printing_without_end_is_kept_to_its_tail() {
        let (outcome, _dir) = run(&command(
            "head -c 5000000 /dev/zero | tr '\\0' x; echo THE-END",
            Duration::from_secs(30),
        ))
        .await;
        outcome.result.unwrap();
        let output = outcome.detail.command_output.unwrap();
        assert!(output.len() < 2 * MAX_CAPTURED_OUTPUT, "{}", output.len());
        assert!(output.starts_with("[… "), "{}", &output[..40]);
        assert!(output.ends_with("THE-END\n"));
    }

    #[test]
    fn urls_lose_credentials_query_and_fragment() {
        assert_eq!(
            redacted_url("http://svc-user:Sup3rSecret@hooks.example:8443/in/hook?api_key=K3y#frag"),
            "http://hooks.example:8443/in/hook"
        );
        assert_eq!(
            redacted_url("https://token@hooks.example/in"),
            "https://hooks.example/in"
        );
        assert_eq!(redacted_url("not a url"), "(a URL that cannot be parsed)");
        let settings = HandoffSettings {
            webhook_url: Some("https://u:Sup3rSecret@h.example/x?api_key=K3y".into()),
            ..HandoffSettings::default()
        };
        let debug = format!("{settings:?}");
        assert!(
            !debug.contains("Sup3rSecret") && !debug.contains("K3y"),
            "{debug}"
        );
    }

    #[tokio::test]
    async fn a_webhook_that_cannot_be_reached_is_reported_without_its_secrets() {
        let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = unused.local_addr().unwrap().port();
        drop(unused);
        let settings = HandoffSettings {
            webhook_url: Some(format!(
                "http://svc-user:Sup3rSecret@127.0.0.1:{port}/hook?api_key=K3y"
            )),
            webhook_secret: "hmac".into(),
            webhook_attempts: 2,
            webhook_backoff: Duration::from_millis(10),
            ..HandoffSettings::default()
        };
        let (outcome, _dir) = run(&settings).await;
        let error = outcome.result.unwrap_err().to_string();
        for secret in ["svc-user", "Sup3rSecret", "api_key", "K3y"] {
            assert!(!error.contains(secret), "{secret} in {error}");
        }
        assert!(error.contains("after 2 tries"), "{error}");
        assert_eq!(
            outcome.detail.webhook_url,
            Some(format!("http://127.0.0.1:{port}/hook"))
        );
        assert_eq!(outcome.detail.webhook_status, None);
    }

    #[test]
    fn captured_output_keeps_the_end() {
        let text = captured(vec![b'a'; MAX_CAPTURED_OUTPUT + 100]);
        assert!(text.starts_with("[… 36 earlier bytes cut …]"), "{text}");
    }
}
