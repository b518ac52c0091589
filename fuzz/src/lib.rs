//! What the fuzz targets share: an allocation meter (for the "memory stays
//! bounded" properties), an SFTP request encoder and reply reader (the test
//! client's side of the wire, which Ferry's server code does not need), and
//! a tiny executor for futures that never wait.
//!
//! Nothing here is a property itself; each target in `fuzz_targets/` states
//! its own properties in its opening comment.

pub mod alloc_meter;
pub mod keygen;
pub mod sftp_wire;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Runs a future whose I/O is all in memory and never returns `Pending` for
/// long (a `&[u8]` reader), without a runtime.
///
/// # Panics
/// When the future stays pending for a million polls: it is waiting for
/// something that an in-memory reader never delivers.
pub fn block_on_ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    for _ in 0..1_000_000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
    panic!("an in-memory future never finished");
}
