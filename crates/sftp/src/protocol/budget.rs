//! The limits an SFTP session runs under, in one place: open handles (per
//! session, per account on this node, and the process's file descriptors),
//! the largest file, and the account's quota of bytes.
//!
//! The dispatch table says which requests are budgeted (`dispatch::Limit`):
//! OPEN and OPENDIR reserve a [`HandleSlot`] before their handler runs;
//! WRITE charges the bytes it would add to its upload before it is queued.
//! Handlers that change sizes in other ways (the copy when a file is
//! reopened, truncation, removal, rename, an upload put in place) report
//! them here too, so the arithmetic lives in this one module.
//!
//! Cost on the hot path: a WRITE that extends its file is one load of the
//! account's stored bytes and two compare-and-swaps (the account's bytes in
//! progress and the upload's high-water mark); one that rewrites bytes
//! already charged is a single load. No locks, no system calls.
//!
//! Usage is per node: several nodes sharing one `data_dir` each count what
//! their own sessions do, and each re-counts `/inbound` when a session of
//! the account starts (ingest moves finished files away), so the quota is
//! approximate across nodes.

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use ferry_store::format_size;

use super::codec::status;
use super::refusal::{Refusal, refuse};
use crate::upload::Progress;

/// The limits of one account's sessions: the configuration's defaults with
/// the account's own overrides applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open files and folders in one SFTP session.
    pub handles_per_session: usize,
    /// Open files and folders across the account's sessions on this node.
    pub handles_per_account: usize,
    /// The largest file the account may write, in bytes.
    pub max_file_size: u64,
    /// Bytes the account may hold in /inbound plus uploads in progress.
    pub quota: u64,
}

impl Default for Limits {
    /// The defaults documented in config/ferry.toml.
    fn default() -> Limits {
        Limits {
            handles_per_session: 256,
            handles_per_account: 1024,
            max_file_size: 4 << 30,
            quota: 20 << 30,
        }
    }
}

/// What one account holds on this node, shared by its sessions.
#[derive(Debug, Default)]
pub struct AccountUsage {
    /// Open handles across the account's sessions.
    handles: AtomicUsize,
    /// Bytes of the files in /inbound (counted when a session starts, then
    /// kept up to date by what sessions do).
    stored: AtomicU64,
    /// Bytes written to uploads not closed yet (their high-water marks).
    in_progress: AtomicU64,
}

impl AccountUsage {
    /// Re-counts the bytes stored under `inbound` (one walk, no symlinks
    /// followed). Uploads in progress are kept as they are.
    pub fn recount(&self, inbound: &Path) -> io::Result<u64> {
        let bytes = bytes_under(inbound)?;
        self.stored.store(bytes, Ordering::Relaxed);
        Ok(bytes)
    }

    /// Bytes held: stored plus in progress.
    pub fn used(&self) -> u64 {
        self.stored
            .load(Ordering::Relaxed)
            .saturating_add(self.in_progress.load(Ordering::Relaxed))
    }

    /// Open handles across the account's sessions.
    pub fn open_handles(&self) -> usize {
        self.handles.load(Ordering::Relaxed)
    }
}

/// The process's budget of file descriptors for SFTP handles: what is left
/// of RLIMIT_NOFILE once a reserve is kept for accepting connections, the
/// database and the admin web.
#[derive(Debug)]
pub struct DescriptorBudget {
    open: AtomicUsize,
    /// Most SFTP handles open at once in the process.
    budget: usize,
}

impl DescriptorBudget {
    /// Descriptors kept out of the SFTP handles' budget: one eighth of the
    /// limit, at least 128.
    pub fn reserve_for(limit: u64) -> u64 {
        (limit / 8).max(128)
    }

    /// The budget for a process allowed `limit` open descriptors.
    pub fn for_limit(limit: u64) -> DescriptorBudget {
        let budget = limit.saturating_sub(Self::reserve_for(limit));
        DescriptorBudget {
            open: AtomicUsize::new(0),
            budget: usize::try_from(budget).unwrap_or(usize::MAX).max(1),
        }
    }

    /// No budget beyond the session and account limits (tests).
    pub fn unlimited() -> DescriptorBudget {
        DescriptorBudget {
            open: AtomicUsize::new(0),
            budget: usize::MAX / 2,
        }
    }

    /// Most SFTP handles open at once in the process.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// One account may hold at most half of the budget, so a single
    /// district can never take every descriptor from the others.
    fn share_per_account(&self) -> usize {
        (self.budget / 2).max(1)
    }

    /// SFTP handles open now in the process.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// The budget one session consults: its account's limits and usage, and
/// the process's descriptors.
#[derive(Debug, Clone)]
pub struct Budget {
    pub limits: Limits,
    pub usage: Arc<AccountUsage>,
    pub descriptors: Arc<DescriptorBudget>,
}

/// Why a budgeted request was refused; the summary log groups by it.
pub const BUSY: &str = "server busy";
pub const TOO_MANY_HANDLES: &str = "too many open handles";
pub const TOO_LARGE: &str = "file too large";
pub const QUOTA: &str = "storage full";

impl Budget {
    /// A budget with `limits`, a fresh usage and no descriptor budget
    /// (tests and benchmarks).
    pub fn standalone(limits: Limits) -> Budget {
        Budget {
            limits,
            usage: Arc::default(),
            descriptors: Arc::new(DescriptorBudget::unlimited()),
        }
    }

    /// Reserves one handle for a session that holds `session_open` now.
    /// Checked before anything is opened, so a refusal costs nothing.
    pub fn reserve_handle(&self, session_open: usize) -> Result<HandleSlot, Refusal> {
        if session_open >= self.limits.handles_per_session {
            return Err(refuse(
                status::FAILURE,
                format!(
                    "too many open files and folders in this session (at most {}): close some first",
                    self.limits.handles_per_session
                ),
            )
            .logged_as(TOO_MANY_HANDLES));
        }
        let slot = HandleSlot {
            usage: Arc::clone(&self.usage),
            descriptors: Arc::clone(&self.descriptors),
        };
        // Both counters are raised first, then checked: a concurrent
        // reservation sees the raised value, so the caps hold; the slot's
        // drop lowers them again on refusal.
        let process = self.descriptors.open.fetch_add(1, Ordering::Relaxed) + 1;
        let account = self.usage.handles.fetch_add(1, Ordering::Relaxed) + 1;
        if process > self.descriptors.budget || account > self.descriptors.share_per_account() {
            return Err(server_busy());
        }
        if account > self.limits.handles_per_account {
            return Err(refuse(
                status::FAILURE,
                format!(
                    "too many open files and folders: this account may have at most {} open at once across its sessions; close some first",
                    self.limits.handles_per_account
                ),
            )
            .logged_as(TOO_MANY_HANDLES));
        }
        Ok(slot)
    }

    /// Refuses a file of `size` bytes past the largest file.
    pub fn check_size(&self, name: &str, size: u64) -> Result<(), Refusal> {
        match size > self.limits.max_file_size {
            true => Err(self.too_large(name)),
            false => Ok(()),
        }
    }

    /// Charges an upload for growing to `end` bytes (a WRITE, the copy of a
    /// reopened file, a truncation upwards): refused past the largest file
    /// or over the quota. Bytes already charged cost nothing again.
    pub fn grow_upload(&self, upload: &Progress, name: &str, end: u64) -> Result<(), Refusal> {
        let charged = &upload.charged;
        loop {
            let before = charged.load(Ordering::Acquire);
            if end <= before {
                return Ok(());
            }
            self.check_size(name, end)?;
            let grow = end - before;
            self.charge(&self.usage.in_progress, &self.usage.stored, grow)?;
            if charged
                .compare_exchange(before, end, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Ok(());
            }
            // Another WRITE of the same upload moved the mark: give the
            // bytes back and look again.
            sub(&self.usage.in_progress, grow);
        }
    }

    /// Charges an APPEND write of `len` bytes (the kernel picks the offset).
    pub fn append_upload(&self, upload: &Progress, name: &str, len: u64) -> Result<(), Refusal> {
        let end = upload.charged.load(Ordering::Acquire).saturating_add(len);
        self.grow_upload(upload, name, end)
    }

    /// An upload truncated to `size` (FSETSTAT): growth is charged, a
    /// shrink gives bytes back. Runs alone, with no WRITE in flight.
    pub fn resize_upload(&self, upload: &Progress, name: &str, size: u64) -> Result<(), Refusal> {
        let charged = upload.charged.load(Ordering::Acquire);
        if size > charged {
            return self.grow_upload(upload, name, size);
        }
        upload.charged.store(size, Ordering::Release);
        sub(&self.usage.in_progress, charged - size);
        Ok(())
    }

    /// A stored file in /inbound resized from `old` to `new` bytes (SETSTAT).
    pub fn resize_stored(&self, name: &str, old: u64, new: u64) -> Result<(), Refusal> {
        if new > old {
            self.check_size(name, new)?;
            return self.charge(&self.usage.stored, &self.usage.in_progress, new - old);
        }
        sub(&self.usage.stored, old - new);
        Ok(())
    }

    /// A stored file of `size` bytes was removed (or replaced by a rename).
    pub fn stored_removed(&self, size: u64) {
        sub(&self.usage.stored, size);
    }

    /// An upload was put in place: its charge moves from "in progress" to
    /// "stored" as `size` bytes, and the file it replaced (`replaced` bytes)
    /// is gone.
    pub(crate) fn upload_stored(usage: &AccountUsage, charged: u64, size: u64, replaced: u64) {
        sub(&usage.in_progress, charged);
        usage.stored.fetch_add(size, Ordering::Relaxed);
        sub(&usage.stored, replaced);
    }

    /// An upload was discarded: its charge is given back.
    pub(crate) fn upload_discarded(usage: &AccountUsage, charged: u64) {
        sub(&usage.in_progress, charged);
    }

    /// Adds `grow` to `counter` unless it and `other` (stored and in
    /// progress) would pass the quota together.
    fn charge(&self, counter: &AtomicU64, other: &AtomicU64, grow: u64) -> Result<(), Refusal> {
        let quota = self.limits.quota;
        let outside = other.load(Ordering::Relaxed);
        counter
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |mine| {
                let total = mine.saturating_add(outside).saturating_add(grow);
                (total <= quota).then_some(mine + grow)
            })
            .map(drop)
            .map_err(|mine| self.storage_full(mine.saturating_add(outside)))
    }

    fn too_large(&self, name: &str) -> Refusal {
        refuse(
            status::FAILURE,
            format!(
                "{name} would be larger than the largest file this server accepts ({}); split the file or ask the vendor to raise the limit",
                format_size(self.limits.max_file_size)
            ),
        )
        .logged_as(TOO_LARGE)
    }

    fn storage_full(&self, used: u64) -> Refusal {
        refuse(
            status::FAILURE,
            StorageFull {
                used,
                quota: self.limits.quota,
            }
            .to_string(),
        )
        .logged_as(QUOTA)
    }
}

/// "this account's storage is full: N of M used; …"
struct StorageFull {
    used: u64,
    quota: u64,
}

impl fmt::Display for StorageFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "this account's storage is full: {} of {} used; remove files from /inbound or ask the vendor to raise the quota",
            format_size(self.used),
            format_size(self.quota)
        )
    }
}

fn server_busy() -> Refusal {
    refuse(
        status::FAILURE,
        "server busy: too many files are open on this server right now; try again in a few minutes",
    )
    .logged_as(BUSY)
}

/// Subtracts without going below zero (usage is approximate across nodes).
fn sub(counter: &AtomicU64, amount: u64) {
    if amount > 0 {
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(amount))
        });
    }
}

/// One open handle's place in the budget; dropping it gives the place back.
#[derive(Debug)]
pub struct HandleSlot {
    usage: Arc<AccountUsage>,
    descriptors: Arc<DescriptorBudget>,
}

impl Drop for HandleSlot {
    fn drop(&mut self) {
        self.usage.handles.fetch_sub(1, Ordering::Relaxed);
        self.descriptors.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The apparent size of every regular file under `dir`, symlinks not
/// followed. A missing folder holds nothing.
pub fn bytes_under(dir: &Path) -> io::Result<u64> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut total = 0u64;
    for entry in entries {
        let entry = entry?;
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            total = total.saturating_add(bytes_under(&entry.path())?);
        } else if meta.is_file() {
            total = total.saturating_add(meta.len());
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(quota: u64, max_file_size: u64) -> Limits {
        Limits {
            handles_per_session: 3,
            handles_per_account: 4,
            max_file_size,
            quota,
        }
    }

    #[test]
    fn handles_are_capped_per_session_account_and_process_and_given_back() {
        let budget = Budget::standalone(limits(100, 100));
        assert!(
            budget
                .reserve_handle(3)
                .unwrap_err()
                .message
                .contains("in this session (at most 3)")
        );
        let slots: Vec<_> = (0..4).map(|_| budget.reserve_handle(0).unwrap()).collect();
        let refused = budget.reserve_handle(0).unwrap_err();
        assert!(refused.message.contains("at most 4 open"), "{refused:?}");
        assert_eq!(refused.class(), Some(TOO_MANY_HANDLES));
        assert_eq!(
            budget.usage.open_handles(),
            4,
            "the refusal gave its place back"
        );
        drop(slots);
        assert_eq!(budget.usage.open_handles(), 0);
        assert_eq!(budget.descriptors.open(), 0);

        // The process budget: one account may hold half of it at most.
        let descriptors = Arc::new(DescriptorBudget::for_limit(256));
        assert_eq!(descriptors.budget(), 128);
        let big = Limits {
            handles_per_session: 1000,
            handles_per_account: 1000,
            ..Limits::default()
        };
        let one = Budget {
            descriptors: Arc::clone(&descriptors),
            ..Budget::standalone(big)
        };
        let other = Budget {
            descriptors: Arc::clone(&descriptors),
            ..Budget::standalone(big)
        };
        let held: Vec<_> = (0..64).map(|_| one.reserve_handle(0).unwrap()).collect();
        let busy = one.reserve_handle(0).unwrap_err();
        assert!(busy.message.starts_with("server busy"), "{busy:?}");
        let theirs: Vec<_> = (0..64).map(|_| other.reserve_handle(0).unwrap()).collect();
        assert_eq!(descriptors.open(), 128);
        drop((held, theirs));
        assert_eq!(descriptors.open(), 0);
    }

    #[test]
    fn uploads_are_charged_once_per_byte_against_size_and_quota() {
        let budget = Budget::standalone(limits(1000, 600));
        let a = Progress::new(false);
        let b = Progress::new(false);
        budget.grow_upload(&a, "a", 500).unwrap();
        budget.grow_upload(&a, "a", 300).unwrap();
        assert_eq!(budget.usage.used(), 500, "rewriting charged bytes is free");
        let large = budget.grow_upload(&b, "/inbound/b", 601).unwrap_err();
        assert_eq!(
            large.message,
            "/inbound/b would be larger than the largest file this server accepts (600 B); split the file or ask the vendor to raise the limit"
        );
        budget.grow_upload(&b, "b", 500).unwrap();
        let full = budget.grow_upload(&b, "b", 501).unwrap_err();
        assert_eq!(
            full.message,
            "this account's storage is full: 1000 B of 1000 B used; remove files from /inbound or ask the vendor to raise the quota"
        );
        budget.resize_upload(&a, "a", 100).unwrap();
        assert_eq!(budget.usage.used(), 600);
        Budget::upload_stored(&budget.usage, 100, 100, 0);
        assert_eq!(budget.usage.used(), 600);
        Budget::upload_discarded(&budget.usage, 500);
        assert_eq!(budget.usage.used(), 100);
        budget.resize_stored("/inbound/a", 100, 700).unwrap_err();
        budget.resize_stored("/inbound/a", 100, 400).unwrap();
        budget.stored_removed(400);
        assert_eq!(budget.usage.used(), 0);
        budget.stored_removed(10);
        assert_eq!(budget.usage.used(), 0, "never below zero");
    }

    #[test]
    fn concurrent_writes_charge_exactly_their_high_water_mark() {
        let budget = Arc::new(Budget::standalone(limits(u64::MAX, u64::MAX)));
        let upload = Arc::new(Progress::new(false));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (budget, upload) = (Arc::clone(&budget), Arc::clone(&upload));
                std::thread::spawn(move || {
                    for i in 0..1000u64 {
                        budget.grow_upload(&upload, "x", (i * 4 + t) * 10).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(budget.usage.used(), 3999 * 10);
    }

    #[test]
    fn recount_walks_inbound_without_following_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("a"), vec![0; 10]).unwrap();
        fs::write(dir.path().join("sub/b"), vec![0; 5]).unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("link")).unwrap();
        let usage = AccountUsage::default();
        assert_eq!(usage.recount(dir.path()).unwrap(), 15);
        assert_eq!(usage.used(), 15);
        assert_eq!(bytes_under(&dir.path().join("missing")).unwrap(), 0);
    }
}
