//! Ferry's own SFTP v3 server side, run on one SSH channel stream.
//!
//! Why not russh-sftp's loop (see shared/notes/russh.md §3.4, §4): it serves
//! one request at a time, keeps reading after a bad length (desync, tens of
//! thousands of log lines), answers before INIT, does not cap READ lengths and
//! converts paths lossily. This layer:
//! - [`codec`]: framing capped at 256 KiB, raw-byte paths, one decoding error
//!   ends the session;
//! - `dispatch`: the table from request type to handler, with the flag that
//!   marks writing handlers and the single permission check;
//! - `worker`: the session's handles and the handlers, `refusal`: the
//!   status and message of every failure, `data`: READ/WRITE as jobs;
//! - `pipeline`: up to 64 READ/WRITE in flight, every other request alone;
//!   `refusal_log`: refused requests logged once per kind, then counted;
//! - [`budget`]: the session's limits (handles, largest file, quota) and
//!   the account's and process's usage, consulted through the table;
//! - `listing`: attributes and `ls -l` long names.
//!
//! Files live in a [`Jail`]; uploads go through [`crate::upload`].
//! It must never let a packet it cannot parse go unnoticed, never answer with
//! another request's id, and never log file contents.

pub mod budget;
pub mod codec;
mod data;
mod dispatch;
mod listing;
mod pipeline;
mod refusal;
mod refusal_log;
mod worker;

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use crate::jail::Jail;
use crate::upload::UploadEvent;
use budget::{Budget, Limits};
use codec::{DecodeError, PacketReader};
pub use pipeline::SLOW_STORAGE;
use pipeline::{Pipeline, REPLY_QUEUE, write_replies};
use worker::Worker;

/// How long the replies still queued at the end may take to reach a client.
const FINAL_WRITE_GRACE: Duration = Duration::from_secs(30);

/// Client bytes read ahead of the pipeline, at most (see [`read_ahead`]).
/// OpenSSH keeps 64 requests of 32 KiB in flight, 2 MiB; this is above what
/// a well-behaved client sends without waiting for replies.
pub const READ_AHEAD_BYTES: usize = 4 << 20;

/// Why an SFTP session ended other than by the client closing it.
///
/// `serve` has already logged client protocol violations (one warn line);
/// callers need not log them again above debug level.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("the SFTP stream failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the client sent an invalid packet: {0}")]
    InvalidPacket(DecodeError),
    #[error("the client sent packet type {0} before INIT")]
    NotInitialized(u8),
    #[error("the client sent INIT twice")]
    RepeatedInit,
    #[error("the client stopped taking replies")]
    ReplyStreamClosed,
    #[error("internal error: {0}")]
    Internal(String),
}

impl ProtocolError {
    /// True when the client broke the protocol (as opposed to the stream or
    /// the server failing, or a client that died in the middle of a packet).
    pub fn is_client_violation(&self) -> bool {
        match self {
            Self::InvalidPacket(DecodeError::Truncated) => false,
            Self::InvalidPacket(_) | Self::NotInitialized(_) | Self::RepeatedInit => true,
            _ => false,
        }
    }
}

/// Serves one SFTP session on an SSH channel stream until the client closes it or the stream ends,
/// under the default [`Limits`] with a usage of its own (tests, benchmarks).
/// On return (whatever the reason) every upload still open is discarded: temp file removed, UploadEvent::Partial sent.
pub async fn serve<S>(
    stream: S,
    jail: Jail,
    events: mpsc::UnboundedSender<UploadEvent>,
) -> Result<(), ProtocolError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    serve_with_slow_storage(stream, jail, events, SLOW_STORAGE).await
}

/// [`serve`], with data requests overlapping on the blocking pool as soon as
/// one takes longer than `slow_storage` (`Duration::ZERO`: from the start).
pub async fn serve_with_slow_storage<S>(
    stream: S,
    jail: Jail,
    events: mpsc::UnboundedSender<UploadEvent>,
    slow_storage: Duration,
) -> Result<(), ProtocolError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let budget = Budget::standalone(Limits::default());
    serve_budgeted(stream, jail, events, budget, slow_storage).await
}

/// [`serve`] under `budget`: the account's limits and its usage on this
/// node, shared with its other sessions.
pub async fn serve_budgeted<S>(
    stream: S,
    jail: Jail,
    events: mpsc::UnboundedSender<UploadEvent>,
    budget: Budget,
    slow_storage: Duration,
) -> Result<(), ProtocolError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let account = jail.account().to_owned();
    let (reader, writer) = tokio::io::split(stream);
    let (reader, reading) = read_ahead(reader);
    let (replies, queue) = mpsc::channel(REPLY_QUEUE);
    let writer = tokio::spawn(write_replies(writer, queue));
    let outcome = {
        let worker = Worker::new(jail, events, budget);
        let mut pipeline = Pipeline::new(worker, replies, slow_storage);
        pipeline.run(&mut PacketReader::new(reader)).await
        // the pipeline drops here: open uploads are discarded, the reply queue closes
    };
    let written = match tokio::time::timeout(FINAL_WRITE_GRACE, writer).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(std::io::Error::other(join)),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the client stopped reading replies",
        )),
    };
    // When the session ends before the client's EOF, the read-ahead task
    // would wait on the channel for as long as the connection lasts.
    reading.abort();
    let _ = reading.await;
    log_end(&account, &outcome);
    match (outcome, written) {
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(ProtocolError::Io(e)),
        (Ok(()), _) => Ok(()),
    }
}

/// Keeps reading the channel while the pipeline is busy.
///
/// russh delivers a channel's data and its window adjustments through one
/// bounded queue, and stops reading the whole connection while that queue is
/// full. If the pipeline stopped reading because its replies wait for the
/// client's window, the window adjustment that would free them could never
/// arrive: a 512 MiB download stalled this way in 2 of 8 runs. So a task
/// drains the channel into a pipe that holds up to [`READ_AHEAD_BYTES`];
/// only a client that sends that much without reading replies is slowed.
/// The pipe ends when the channel does; the task holds the channel's read
/// half until it ends or is aborted.
fn read_ahead<R>(reader: R) -> (tokio::io::DuplexStream, tokio::task::JoinHandle<()>)
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let (mut pipe, ahead) = tokio::io::duplex(READ_AHEAD_BYTES);
    let reading = tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::with_capacity(256 * 1024, reader);
        if let Err(e) = tokio::io::copy_buf(&mut reader, &mut pipe).await {
            tracing::debug!(error = %e, "sftp channel read ended");
        }
    });
    (ahead, reading)
}

fn log_end(account: &str, outcome: &Result<(), ProtocolError>) {
    match outcome {
        Ok(()) => tracing::debug!(account, "sftp session ended"),
        Err(e) if e.is_client_violation() => {
            tracing::warn!(account, error = %e, "closing the SFTP session")
        }
        Err(ProtocolError::Internal(e)) => {
            tracing::error!(account, error = %e, "sftp session failed")
        }
        Err(e) => tracing::info!(account, error = %e, "sftp session ended"),
    }
}
