//! A global allocator that counts, so a target can assert how much memory the
//! code under test asked for: the largest single allocation and the peak of
//! live bytes since [`measure`] started.
//!
//! A target opts in with `#[global_allocator] static A: Meter = Meter;`.
//! Counting is process-wide: measure only single-threaded code.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering::Relaxed};

/// The counting allocator (delegates to the system allocator).
pub struct Meter;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn grew(size: usize) {
    let live = LIVE.fetch_add(size as isize, Relaxed) + size as isize;
    PEAK.fetch_max(live, Relaxed);
    LARGEST.fetch_max(size, Relaxed);
}

fn shrank(size: usize) {
    LIVE.fetch_sub(size as isize, Relaxed);
}

// SAFETY: every call is passed to `System` unchanged; the counters are atomics.
unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract, which we forward.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: as for `alloc`.
        unsafe { System.dealloc(pointer, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let new = unsafe { System.realloc(pointer, layout, new_size) };
        if !new.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        new
    }
}

/// What the measured code asked of the allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Most bytes live at once, counted from the start of the measurement
    /// (memory freed that was allocated before it counts negative, so this
    /// never overstates).
    pub peak_live: usize,
    /// The largest single allocation (or reallocation's new size).
    pub largest: usize,
}

/// Runs `work` and reports its allocations. Only meaningful when the target
/// installed [`Meter`] as its global allocator and nothing else runs.
pub fn measure<R>(work: impl FnOnce() -> R) -> (R, Usage) {
    LIVE.store(0, Relaxed);
    PEAK.store(0, Relaxed);
    LARGEST.store(0, Relaxed);
    let result = work();
    let usage = Usage {
        peak_live: PEAK.load(Relaxed).max(0) as usize,
        largest: LARGEST.load(Relaxed),
    };
    (result, usage)
}
