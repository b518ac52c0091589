//! Hand-off: giving a batch's accepted files to the vendor's import, by a
//! command, a webhook, or both (DESIGN.md "Ingest", 5).
//!
//! - The command is an argument vector run without a shell, with
//!   `FERRY_ACCOUNT`, `FERRY_BATCH_ID` and `FERRY_FILES` (the files' paths,
//!   one per line) in its environment, a timeout, and its output captured
//!   for the report. It dies with the node that started it
//!   (`PR_SET_PDEATHSIG`), so a killed node's hand-off is never completed
//!   behind the queue's back; the batch is taken up again instead.
//! - The webhook gets a JSON body with the batch's files and their checks,
//!   signed in `X-Ferry-Signature: sha256=<hex HMAC-SHA256 of the body>`,
//!   and is retried with exponential back-off; any 2xx answer is success.
//!
//! The webhook secret is never logged or written to a report.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;
use tokio::io::AsyncReadExt;

use crate::{FileReport, SetReport};

/// At most this much of a command's output is kept for the report.
pub const MAX_CAPTURED_OUTPUT: usize = 16 * 1024;

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
}

impl std::fmt::Debug for HandoffSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandoffSettings")
            .field("command", &self.command)
            .field("command_timeout", &self.command_timeout)
            .field("webhook_url", &self.webhook_url)
            .field("webhook_secret", &"<hidden>")
            .field("webhook_attempts", &self.webhook_attempts)
            .finish_non_exhaustive()
    }
}

impl HandoffSettings {
    /// The longest a hand-off can take (for the batch's lease).
    #[must_use]
    pub fn worst_case(&self) -> Duration {
        let mut backoff = Duration::ZERO;
        let mut wait = self.webhook_backoff;
        for _ in 1..self.webhook_attempts {
            backoff += wait;
            wait = (wait * 2).min(MAX_BACKOFF);
        }
        self.command_timeout + backoff + WEBHOOK_TIMEOUT * self.webhook_attempts.max(1)
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
    /// Where the file is now (readable by the command).
    pub path: PathBuf,
    /// Bytes.
    pub size: u64,
    /// Hex SHA-256.
    pub sha256: String,
    /// What the checks found.
    pub checks: FileReport,
}

/// The webhook's JSON body.
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

/// Why a hand-off failed; the message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
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
        "the hand-off command ran longer than {timeout:?} and was stopped; make it faster or raise [ingest] command_timeout. Output:\n{output}"
    )]
    Timeout {
        /// The limit.
        timeout: Duration,
        /// What it printed.
        output: String,
    },
    /// The command exited with a failure.
    #[error("the hand-off command failed ({status}); Ferry tries again later. Output:\n{output}")]
    Failed {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed.
        output: String,
    },
    /// Every webhook try failed.
    #[error(
        "the webhook {url} did not accept the batch after {attempts} tries; last: {last}. Check the receiver; Ferry tries again later"
    )]
    Webhook {
        /// The URL.
        url: String,
        /// Tries made.
        attempts: u32,
        /// The last answer or error.
        last: String,
    },
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

/// Hands the batch over; returns what happened, in words, for the report.
///
/// # Errors
/// [`HandoffError`]: the command or the webhook failed.
pub async fn hand_off(
    settings: &HandoffSettings,
    body: &HandoffBody<'_>,
) -> Result<String, HandoffError> {
    let mut said = Vec::new();
    if !settings.command.is_empty() {
        said.push(run_command(settings, body).await?);
    }
    if let Some(url) = &settings.webhook_url {
        said.push(post_webhook(settings, url, body).await?);
    }
    if said.is_empty() {
        said.push("No hand-off is configured ([ingest] command and webhook_url are empty): the files were archived only.".to_owned());
    }
    Ok(said.join("\n"))
}

async fn run_command(
    settings: &HandoffSettings,
    body: &HandoffBody<'_>,
) -> Result<String, HandoffError> {
    let program = settings.command[0].clone();
    let files: Vec<String> = body
        .files
        .iter()
        .map(|f| f.path.display().to_string())
        .collect();
    let mut command = tokio::process::Command::new(&program);
    command
        .args(&settings.command[1..])
        .env("FERRY_ACCOUNT", body.account)
        .env("FERRY_BATCH_ID", body.batch_id.to_string())
        .env("FERRY_FILES", files.join("\n"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    die_with_parent(&mut command);
    let mut child = command
        .spawn()
        .map_err(|source| HandoffError::Spawn { program, source })?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let output = tokio::spawn(async move {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let read_out = async {
            if let Some(mut s) = stdout {
                let _ = s.read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(mut s) = stderr {
                let _ = s.read_to_end(&mut err).await;
            }
        };
        tokio::join!(read_out, read_err);
        out.extend_from_slice(&err);
        out
    });
    let waited = tokio::time::timeout(settings.command_timeout, child.wait()).await;
    let status = match waited {
        Ok(status) => status,
        Err(_) => {
            let _ = child.kill().await;
            let output = captured(collect(output).await);
            return Err(HandoffError::Timeout {
                timeout: settings.command_timeout,
                output,
            });
        }
    };
    let output = captured(collect(output).await);
    match status {
        Ok(status) if status.success() => Ok(format!(
            "Command {:?} succeeded. Output:\n{output}",
            settings.command
        )),
        Ok(status) => Err(HandoffError::Failed { status, output }),
        Err(source) => Err(HandoffError::Spawn {
            program: settings.command[0].clone(),
            source,
        }),
    }
}

/// The output read so far; a background process that keeps the pipes open
/// does not hold the hand-off up for more than two seconds.
async fn collect(output: tokio::task::JoinHandle<Vec<u8>>) -> Vec<u8> {
    let abort = output.abort_handle();
    match tokio::time::timeout(Duration::from_secs(2), output).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => Vec::new(),
        Err(_) => {
            abort.abort();
            b"[output not complete: a process the command started keeps it open]".to_vec()
        }
    }
}

/// The command gets SIGKILL when the thread that started it (a runtime
/// worker, alive as long as the node) ends.
fn die_with_parent(command: &mut tokio::process::Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Output as text, cut to [`MAX_CAPTURED_OUTPUT`] bytes (the end is kept).
fn captured(bytes: Vec<u8>) -> String {
    let start = bytes.len().saturating_sub(MAX_CAPTURED_OUTPUT);
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
    body: &HandoffBody<'_>,
) -> Result<String, HandoffError> {
    let json = serde_json::to_vec(body).expect("the hand-off body serialises");
    let signed = signature(settings.webhook_secret.as_bytes(), &json);
    let client = reqwest::Client::builder()
        .timeout(WEBHOOK_TIMEOUT)
        .build()
        .map_err(|e| webhook_error(url, 0, e.to_string()))?;
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
            .header("X-Ferry-Batch", body.batch_id.to_string())
            .body(json.clone())
            .send()
            .await;
        match answer {
            Ok(response) if response.status().is_success() => {
                return Ok(format!(
                    "Webhook {url} accepted the batch ({}) on try {attempt}.",
                    response.status()
                ));
            }
            Ok(response) => last = format!("HTTP {}", response.status()),
            Err(e) => last = e.to_string(),
        }
        tracing::warn!(url, attempt, attempts, answer = %last, "webhook did not accept the batch");
    }
    Err(webhook_error(url, attempts, last))
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

    #[tokio::test]
    async fn the_command_gets_the_batch_in_its_environment_and_its_output_is_kept() {
        let settings = command(
            "echo \"$FERRY_ACCOUNT/$FERRY_BATCH_ID/$FERRY_FILES\"; echo oops >&2",
            Duration::from_secs(30),
        );
        let said = hand_off(&settings, &body_with(&[])).await.unwrap();
        assert!(said.contains("lincoln/42/\n"), "{said}");
        assert!(said.contains("oops"), "stderr is kept too: {said}");
    }

    #[tokio::test]
    async fn a_failing_or_slow_command_is_an_error_with_its_output() {
        let failed = hand_off(
            &command("echo broken; exit 3", Duration::from_secs(30)),
            &body_with(&[]),
        )
        .await
        .unwrap_err();
        assert!(matches!(failed, HandoffError::Failed { .. }), "{failed}");
        assert!(failed.to_string().contains("broken"), "{failed}");

        let started = std::time::Instant::now();
        let slow = hand_off(
            &command("echo begun; sleep 30", Duration::from_millis(500)),
            &body_with(&[]),
        )
        .await
        .unwrap_err();
        assert!(matches!(slow, HandoffError::Timeout { .. }), "{slow}");
        assert!(slow.to_string().contains("command_timeout"), "{slow}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "stopped at the timeout"
        );

        let missing = HandoffSettings {
            command: vec!["/nonexistent/import".into()],
            command_timeout: Duration::from_secs(5),
            ..HandoffSettings::default()
        };
        let err = hand_off(&missing, &body_with(&[])).await.unwrap_err();
        assert!(matches!(err, HandoffError::Spawn { .. }), "{err}");
    }

    #[test]
    fn captured_output_keeps_the_end() {
        let text = captured(vec![b'a'; MAX_CAPTURED_OUTPUT + 10]);
        assert!(text.starts_with("[… 10 earlier bytes cut …]"));
    }
}
