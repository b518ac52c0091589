//! One session channel's life: the slot it holds in its connection's cap,
//! the SFTP task it may become, and the way it ends.
//!
//! russh gets two things wrong for a channel whose stream was handed to a
//! task (read in russh 0.65's source, `channels/io` and `server/encrypted.rs`):
//! - the stream sends EOF when it is shut down and CLOSE when it is dropped,
//!   so anything sent after the protocol let go of it (the exit status) comes
//!   after CLOSE and is lost: OpenSSH's `scp` then reports "Exit status -1"
//!   and exits 1 after a good upload;
//! - once the server has sent CLOSE, russh drops the client's CLOSE reply
//!   without calling `Handler::channel_close`, so a count kept there is
//!   never given back for channels the server ends.
//!
//! So this module owns both: a [`ChannelSlot`] is given back when it is
//! dropped, wherever the channel ended, and [`serve_sftp`] holds russh's
//! stream back until it has sent exit-status, EOF and CLOSE in OpenSSH's
//! order. It must never let a channel end without giving its slot back.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use russh::server::{Handle, Msg};
use russh::{ChannelId, ChannelStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::jail::Jail;
use crate::server::Shared;
use crate::upload::UploadEvent;

/// Session channels one connection may hold open at once (OpenSSH's
/// MaxSessions default): each SFTP channel holds up to 8 MiB in flight.
pub const MAX_CHANNELS_PER_CONNECTION: usize = 10;

/// Channels one connection may open in its lifetime. russh keeps a few KiB
/// for every channel the server closed until the connection ends (measured:
/// 10 MB after 3,000 SFTP channels, nothing for channels the client closed),
/// so a client opening channels without end would grow the server without
/// bound. No real client comes near this; one that does can reconnect.
pub const MAX_CHANNELS_PER_CONNECTION_LIFETIME: usize = 10_000;

/// How long the SFTP task waits for the protocol to give the stream back
/// after it returned (it gives it back at once; this only bounds a bug).
const GIVE_BACK_WAIT: Duration = Duration::from_secs(5);

/// The channel slots of one connection, and how many channels it opened.
pub(crate) struct ChannelSlots {
    open: Arc<Semaphore>,
    opened: usize,
}

/// Why a channel was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoSlot {
    /// [`MAX_CHANNELS_PER_CONNECTION`] are open.
    AllTaken,
    /// [`MAX_CHANNELS_PER_CONNECTION_LIFETIME`] were opened.
    LifetimeUsed,
}

impl ChannelSlots {
    pub(crate) fn new() -> Self {
        ChannelSlots {
            open: Arc::new(Semaphore::new(MAX_CHANNELS_PER_CONNECTION)),
            opened: 0,
        }
    }

    /// A free slot for a new channel, or why there is none.
    pub(crate) fn take(&mut self) -> Result<ChannelSlot, NoSlot> {
        if self.opened >= MAX_CHANNELS_PER_CONNECTION_LIFETIME {
            return Err(NoSlot::LifetimeUsed);
        }
        let slot = self.open.clone().try_acquire_owned();
        let slot = slot.map(ChannelSlot).map_err(|_| NoSlot::AllTaken)?;
        self.opened += 1;
        Ok(slot)
    }

    /// Slots in use.
    #[cfg(test)]
    fn in_use(&self) -> usize {
        MAX_CHANNELS_PER_CONNECTION - self.open.available_permits()
    }
}

/// One open channel's place in its connection's cap; given back on drop.
pub(crate) struct ChannelSlot(#[allow(dead_code)] OwnedSemaphorePermit);

/// Runs the SFTP protocol on a channel, then ends it as OpenSSH's sshd does
/// when its sftp-server exits: exit-status (0 when the client ended the
/// session, 1 when the server did because of an error), EOF, CLOSE. The
/// slot is given back once CLOSE is on its way.
pub(crate) async fn serve_sftp(
    stream: ChannelStream<Msg>,
    id: ChannelId,
    handle: Handle,
    shared: Arc<Shared>,
    jail: Jail,
    events: mpsc::UnboundedSender<UploadEvent>,
    slot: ChannelSlot,
) {
    let account = jail.account().to_owned();
    let budget = shared.budgets.for_session(&shared.store, &jail).await;
    drop(shared);
    let (stream, given_back) = HeldStream::new(stream);
    let slow = crate::protocol::SLOW_STORAGE;
    let exit_status =
        match crate::protocol::serve_budgeted(stream, jail, events, budget, slow).await {
            Ok(()) => 0,
            Err(e) => {
                // Protocol violations were already logged once, at warn.
                if !e.is_client_violation() {
                    tracing::info!(%account, error = %e, "sftp session ended with an error");
                }
                1
            }
        };
    let stream = tokio::time::timeout(GIVE_BACK_WAIT, given_back).await;
    // Messages for a channel the client already closed are dropped by russh.
    let _ = handle.exit_status_request(id, exit_status).await;
    let _ = handle.eof(id).await;
    let _ = handle.close(id).await;
    drop(slot);
    // russh's own CLOSE, sent when its stream drops, now finds the channel
    // closed and sends nothing.
    drop(stream);
}

/// russh's channel stream with its own ending held back: shutting it down
/// only flushes (no EOF), and dropping it hands the stream to
/// [`serve_sftp`] instead of dropping it (which would send CLOSE).
struct HeldStream {
    inner: Option<ChannelStream<Msg>>,
    give_back: Option<oneshot::Sender<ChannelStream<Msg>>>,
}

impl HeldStream {
    fn new(inner: ChannelStream<Msg>) -> (Self, oneshot::Receiver<ChannelStream<Msg>>) {
        let (give_back, given_back) = oneshot::channel();
        let held = HeldStream {
            inner: Some(inner),
            give_back: Some(give_back),
        };
        (held, given_back)
    }

    fn inner(&mut self) -> io::Result<&mut ChannelStream<Msg>> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl AsyncRead for HeldStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.inner() {
            Ok(inner) => Pin::new(inner).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for HeldStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.inner() {
            Ok(inner) => Pin::new(inner).poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.inner() {
            Ok(inner) => Pin::new(inner).poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Flushes only: EOF is sent by [`serve_sftp`], after the exit status.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl Drop for HeldStream {
    fn drop(&mut self) {
        if let (Some(inner), Some(give_back)) = (self.inner.take(), self.give_back.take()) {
            // If serve_sftp is gone, the stream drops here and russh closes.
            let _ = give_back.send(inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_and_given_back_on_drop() {
        let mut slots = ChannelSlots::new();
        let taken: Vec<ChannelSlot> = (0..MAX_CHANNELS_PER_CONNECTION)
            .map(|_| slots.take().expect("a free slot"))
            .collect();
        assert_eq!(slots.take().err(), Some(NoSlot::AllTaken));
        assert_eq!(slots.in_use(), MAX_CHANNELS_PER_CONNECTION);
        drop(taken);
        assert_eq!(slots.in_use(), 0);
        assert!(slots.take().is_ok());
    }

    #[test]
    fn a_connection_opens_at_most_the_lifetime_cap() {
        let mut slots = ChannelSlots::new();
        for _ in 0..MAX_CHANNELS_PER_CONNECTION_LIFETIME {
            drop(slots.take().expect("a slot within the lifetime cap"));
        }
        assert_eq!(slots.take().err(), Some(NoSlot::LifetimeUsed));
        assert_eq!(slots.in_use(), 0);
    }
}
