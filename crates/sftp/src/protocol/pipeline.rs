//! The request loop of one session: many requests in flight, bounded.
//!
//! OpenSSH's client keeps 64 requests outstanding; serving them one at a time
//! pays every storage latency serially (measured ~9× slower with 1 ms of
//! storage latency). So:
//! - READ and WRITE on open handles run concurrently, up to
//!   [`MAX_IN_FLIGHT`], as pread/pwrite on the blocking pool — once storage
//!   has shown latency ([`SLOW_STORAGE`]); until then each runs inline on the
//!   session's task, which on local disks is cheaper than the thread hop;
//! - every other request is a barrier: it waits for the data requests in
//!   flight to finish, then runs alone, so per-file order (CLOSE after its
//!   WRITEs, RENAME after CLOSE) always holds. A READ/WRITE that overlaps a
//!   WRITE in flight on the same handle waits too;
//! - barriers run inline on the session's task: they are a few metadata
//!   system calls, and a hop to the blocking pool cost more than the work
//!   (sequential STAT round trip measured ~75 µs with the hop, ~8-20 µs
//!   inline, busy 2-core machine). The ones that can take long
//!   (`dispatch::may_take_long`: fsync, READDIR, copy-on-open) still go to
//!   the blocking pool;
//! - replies may leave out of order (each carries its request's id);
//! - while [`MAX_IN_FLIGHT`] requests or [`MAX_IN_FLIGHT_BYTES`] of data are
//!   in flight the stream is not read, so flow control reaches the client and
//!   memory stays bounded: per session about 8 MiB of data in flight, plus
//!   [`REPLY_QUEUE`] replies (≤ 256 KiB each) waiting for the writer, plus one
//!   incoming packet (OpenSSH's client, told our limits, asks for 64 READs of
//!   255 KiB at once; without the byte cap that alone would be 16 MiB).
//!
//! The loop never blocks a runtime thread on file I/O that can take long.
//! Refused requests go through the session's [`RefusalLog`], which writes
//! one line per kind and then counts.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tokio::task::{self, JoinSet};

use super::ProtocolError;
use super::codec::{
    DecodeError, Incoming, PacketError, PacketReader, Request, decode, encode_reply, encode_version,
};
use super::data::DataJob;
use super::dispatch::{self, EXTENSIONS, Operation, Runs};
use super::refusal::Handled;
use super::refusal_log::RefusalLog;
use super::worker::Worker;

/// Most READ/WRITE requests served at once (OpenSSH's client default).
pub const MAX_IN_FLIGHT: usize = 64;
/// Most READ/WRITE payload bytes in flight at once.
pub const MAX_IN_FLIGHT_BYTES: u64 = 8 << 20;
/// A data request slower than this means storage with latency (a network
/// file system, a busy disk): from then on data requests overlap.
pub const SLOW_STORAGE: Duration = Duration::from_millis(2);
/// Encoded replies waiting for the writer task.
pub const REPLY_QUEUE: usize = 16;

/// A data request in flight, for the overlap check.
struct InFlight {
    task: task::Id,
    span: Span,
}

/// The bytes a data request touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    handle: u32,
    start: u64,
    end: u64,
    writes: bool,
}

impl Span {
    fn of(job: &DataJob) -> Span {
        let end = job.offset.saturating_add(job.len);
        Span {
            handle: job.handle,
            start: job.offset,
            end,
            writes: job.writes,
        }
    }

    fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Two requests conflict when they touch the same bytes of the same
    /// handle and at least one of them writes: they must not run at once.
    fn conflicts_with(&self, other: &Span) -> bool {
        self.handle == other.handle
            && (self.writes || other.writes)
            && self.start < other.end
            && other.start < self.end
    }
}

/// The session loop's state.
pub struct Pipeline {
    /// `None` only while a slow request runs on the blocking pool.
    worker: Option<Box<Worker>>,
    running: JoinSet<Bytes>,
    in_flight: Vec<InFlight>,
    in_flight_bytes: u64,
    /// Set once a data request took longer than `slow_storage`.
    storage_is_slow: bool,
    /// [`SLOW_STORAGE`], unless the caller chose otherwise.
    slow_storage: Duration,
    replies: mpsc::Sender<Bytes>,
    refusals: RefusalLog,
}

impl Pipeline {
    pub fn new(worker: Worker, replies: mpsc::Sender<Bytes>, slow_storage: Duration) -> Pipeline {
        Pipeline {
            refusals: RefusalLog::new(worker.jail.account()),
            worker: Some(Box::new(worker)),
            running: JoinSet::new(),
            in_flight: Vec::new(),
            in_flight_bytes: 0,
            storage_is_slow: slow_storage.is_zero(),
            slow_storage,
            replies,
        }
    }

    /// Serves requests until the stream ends or breaks the protocol.
    pub async fn run<R: AsyncRead + Unpin>(
        &mut self,
        packets: &mut PacketReader<R>,
    ) -> Result<(), ProtocolError> {
        if !self.handshake(packets).await? {
            return Ok(());
        }
        loop {
            let next = tokio::select! {
                biased;
                Some(done) = self.running.join_next_with_id() => {
                    self.complete(done).await?;
                    continue;
                }
                next = packets.next_packet(), if self.has_room() => next,
            };
            match next.map_err(packet_error)? {
                Some(body) => self.handle_packet(body).await?,
                None => break,
            }
        }
        self.drain().await
    }

    /// Waits for INIT and answers VERSION. `false` when the stream ended first.
    async fn handshake<R: AsyncRead + Unpin>(
        &mut self,
        packets: &mut PacketReader<R>,
    ) -> Result<bool, ProtocolError> {
        let Some(body) = packets.next_packet().await.map_err(packet_error)? else {
            return Ok(false);
        };
        match decode(body.clone())? {
            Incoming::Init { version } => {
                tracing::debug!(client_version = version, "sftp session started");
                self.send(encode_version(EXTENSIONS)).await?;
                Ok(true)
            }
            Incoming::Request { .. } => Err(ProtocolError::NotInitialized(body[0])),
        }
    }

    async fn handle_packet(&mut self, body: Bytes) -> Result<(), ProtocolError> {
        match decode(body)? {
            Incoming::Init { .. } => Err(ProtocolError::RepeatedInit),
            Incoming::Request { id, request } => self.handle_request(id, request).await,
        }
    }

    async fn handle_request(&mut self, id: u32, request: Request) -> Result<(), ProtocolError> {
        let op = dispatch::operation(&request);
        tracing::trace!(id, request = op.name, "request");
        match op.runs {
            Runs::Concurrently(prepare) => {
                match dispatch::prepare_data(self.worker()?, op, prepare, request) {
                    Ok(job) => self.start(id, job).await,
                    Err(refusal) => {
                        self.refusals.record(op.name, || None, &refusal);
                        self.send(encode_reply(id, refusal.into())).await
                    }
                }
            }
            Runs::Alone(handler) => {
                self.drain().await?;
                let subject = dispatch::subject(&request);
                let handled = match dispatch::may_take_long(&request) {
                    false => dispatch::run_alone(self.worker_mut()?, op, handler, request),
                    true => self.run_on_blocking_pool(op, handler, request).await?,
                };
                let reply = handled.unwrap_or_else(|refusal| {
                    let folder = || subject.as_deref().and_then(dispatch::folder_of);
                    self.refusals.record(op.name, folder, &refusal);
                    refusal.into()
                });
                if self.refusals.pending() {
                    self.refusals.flush_if_due();
                }
                self.send(encode_reply(id, reply)).await
            }
        }
    }

    /// Runs a slow request (fsync, a large listing, copy-on-open) off the
    /// runtime's threads; the worker travels with it and comes back.
    async fn run_on_blocking_pool(
        &mut self,
        op: &'static Operation,
        handler: fn(&mut Worker, Request) -> Handled,
        request: Request,
    ) -> Result<Handled, ProtocolError> {
        let mut worker = self
            .worker
            .take()
            .ok_or(ProtocolError::Internal("worker missing".into()))?;
        let (worker, reply) = task::spawn_blocking(move || {
            let reply = dispatch::run_alone(&mut worker, op, handler, request);
            (worker, reply)
        })
        .await
        .map_err(|e| ProtocolError::Internal(format!("{} handler failed: {e}", op.name)))?;
        self.worker = Some(worker);
        Ok(reply)
    }

    /// Starts a data request, after the ones it overlaps have finished.
    async fn start(&mut self, id: u32, job: DataJob) -> Result<(), ProtocolError> {
        let span = Span::of(&job);
        if self
            .in_flight
            .iter()
            .any(|running| running.span.conflicts_with(&span))
        {
            self.drain().await?;
        }
        if !self.storage_is_slow && self.running.is_empty() {
            return self.run_inline(id, job).await;
        }
        let task = self.running.spawn_blocking(move || job.run(id)).id();
        self.in_flight_bytes += span.len();
        self.in_flight.push(InFlight { task, span });
        Ok(())
    }

    /// Runs a data request on the session's task. On local storage a pread or
    /// pwrite into the page cache takes microseconds, less than a hop to the
    /// blocking pool and back; the first one that takes longer than
    /// [`SLOW_STORAGE`] sends the rest of the session's data requests to the
    /// pool, where they overlap.
    async fn run_inline(&mut self, id: u32, job: DataJob) -> Result<(), ProtocolError> {
        let started = Instant::now();
        let reply = job.run(id);
        if started.elapsed() > self.slow_storage {
            tracing::debug!(took = ?started.elapsed(), "slow storage: data requests go to the blocking pool");
            self.storage_is_slow = true;
        }
        self.send(reply).await
    }

    /// True while another data request may start.
    fn has_room(&self) -> bool {
        self.running.len() < MAX_IN_FLIGHT && self.in_flight_bytes < MAX_IN_FLIGHT_BYTES
    }

    async fn complete(
        &mut self,
        done: Result<(task::Id, Bytes), task::JoinError>,
    ) -> Result<(), ProtocolError> {
        let (task, reply) =
            done.map_err(|e| ProtocolError::Internal(format!("data request failed: {e}")))?;
        if let Some(index) = self
            .in_flight
            .iter()
            .position(|running| running.task == task)
        {
            let done = self.in_flight.swap_remove(index);
            self.in_flight_bytes -= done.span.len();
        }
        self.send(reply).await
    }

    /// Waits for every data request in flight and sends their replies.
    async fn drain(&mut self) -> Result<(), ProtocolError> {
        while let Some(done) = self.running.join_next_with_id().await {
            self.complete(done).await?;
        }
        Ok(())
    }

    fn worker(&self) -> Result<&Worker, ProtocolError> {
        self.worker
            .as_deref()
            .ok_or(ProtocolError::Internal("worker missing".into()))
    }

    fn worker_mut(&mut self) -> Result<&mut Worker, ProtocolError> {
        self.worker
            .as_deref_mut()
            .ok_or(ProtocolError::Internal("worker missing".into()))
    }

    async fn send(&self, reply: Bytes) -> Result<(), ProtocolError> {
        self.replies
            .send(reply)
            .await
            .map_err(|_| ProtocolError::ReplyStreamClosed)
    }
}

fn packet_error(error: PacketError) -> ProtocolError {
    match error {
        PacketError::Io(e) => ProtocolError::Io(e),
        PacketError::Invalid(e) => ProtocolError::InvalidPacket(e),
    }
}

impl From<DecodeError> for ProtocolError {
    fn from(error: DecodeError) -> Self {
        ProtocolError::InvalidPacket(error)
    }
}

/// Writes encoded replies to the stream, flushing when the queue is empty so
/// that many small STATUS replies go out together.
pub async fn write_replies<W: AsyncWrite + Unpin>(
    stream: W,
    mut queue: mpsc::Receiver<Bytes>,
) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(64 * 1024, stream);
    while let Some(reply) = queue.recv().await {
        out.write_all(&reply).await?;
        while let Ok(reply) = queue.try_recv() {
            out.write_all(&reply).await?;
        }
        out.flush().await?;
    }
    out.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::Span;

    fn span(handle: u32, start: u64, end: u64, writes: bool) -> Span {
        Span {
            handle,
            start,
            end,
            writes,
        }
    }

    #[test]
    fn only_overlapping_requests_with_a_write_on_one_handle_conflict() {
        let write = span(1, 100, 200, true);
        assert!(write.conflicts_with(&span(1, 150, 160, false)));
        assert!(write.conflicts_with(&span(1, 0, 101, true)));
        assert!(span(1, 199, 300, false).conflicts_with(&write));
        assert!(
            !write.conflicts_with(&span(1, 200, 300, true)),
            "adjacent is fine"
        );
        assert!(
            !write.conflicts_with(&span(2, 100, 200, true)),
            "other handle"
        );
        assert!(
            !span(1, 0, 500, false).conflicts_with(&span(1, 0, 500, false)),
            "two reads"
        );
    }
}
