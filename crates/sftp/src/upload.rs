//! Atomic uploads and the events they produce for ingest.
//!
//! A file opened for writing is written to a temporary file in the account's
//! upload folder (`data_dir/uploading/<account>/<random>.upload`: outside the
//! account's view, on the same file system) and renamed onto its real name
//! when the client closes it, so no reader ever sees half a file under its
//! real name. An [`Upload`] that is dropped without [`Upload::finish`] (the
//! session ended without a CLOSE) removes its temporary file and publishes
//! [`UploadEvent::Partial`].
//!
//! Durability: CLOSE does not fsync. Measured on this machine (ext4), 4 KiB
//! write + close + rename cost 59 µs without fsync and 3.1 ms with it (320
//! files/s at most), which would sink small-file uploads far below OpenSSH's
//! sftp-server (which never fsyncs unless asked). The data is complete when it
//! appears under its real name (the rename happens after every write was
//! acknowledged); a client that wants it on stable storage sends
//! `fsync@openssh.com`, which is honoured. A machine crash can therefore lose
//! a just-finished upload's data; ingest hashes files before it accepts them.
//!
//! Errors poison an upload: a WRITE, a truncation or the final rename that
//! failed (disk full, disk quota, file too large, I/O error, the account's
//! quota or largest file) marks its [`Progress`], shared with the WRITEs in
//! flight. CLOSE then answers FAILURE with the reason, the temporary file is
//! removed, and the upload is reported partial with that reason, never
//! finished. A client that ignores the failed WRITE cannot turn the hole it
//! left into a file under its real name.
//!
//! Reopening an existing file without TRUNC copies only its data ranges
//! (SEEK_DATA/SEEK_HOLE, then copy_file_range), so a sparse file stays
//! sparse and cannot be turned into a disk full of zeros.
//!
//! Finished and partial uploads are logged (info) by whoever receives the
//! events, so this module logs them at debug only, to keep one line per event.
//!
//! This module must never put anything under a real name that is not complete.

use std::fs::{self, File, FileTimes, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use crate::jail::{Jail, VirtualPath};
use crate::protocol::budget::{AccountUsage, Budget};

/// A file that was closed (or renamed) under its final name in `/inbound`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadFinished {
    pub account: String,
    /// Virtual path, e.g. `/inbound/roster.csv`.
    pub path: String,
    pub size: u64,
}

/// An upload that was never put under its name (the session ended without
/// a CLOSE, or a write failed); its data was discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPartial {
    pub account: String,
    pub path: String,
    /// Bytes received before it ended.
    pub size: u64,
    /// Why, in words for the district: what happened and what to do.
    pub reason: String,
}

/// The reason a partial upload carries when the session ended without CLOSE.
pub const ENDED_WITHOUT_CLOSE: &str = "the connection ended before the file was closed";

/// What the SFTP layer tells ingest about uploads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadEvent {
    Finished(UploadFinished),
    Partial(UploadPartial),
}

/// True for names that clients use while a transfer is in progress
/// (`*.filepart`, `*.part`, `*.tmp`, names starting with `.`): such files are
/// never processed until they are renamed.
pub fn is_client_temp_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || [".filepart", ".part", ".tmp"]
            .iter()
            .any(|suffix| lower.ends_with(suffix))
}

/// The `Finished` event for a file that now exists under `path`, unless the
/// path is outside `/inbound` or carries a client temp name.
pub(crate) fn finished_event(account: &str, path: &VirtualPath, size: u64) -> Option<UploadEvent> {
    let text = path.to_utf8()?;
    let name = text.rsplit('/').next().unwrap_or_default();
    if !path.is_in_inbound() || path.depth() < 2 || is_client_temp_name(name) {
        return None;
    }
    Some(UploadEvent::Finished(UploadFinished {
        account: account.to_owned(),
        path: text,
        size,
    }))
}

/// Removes temporary upload files (of every account) not written to for
/// `older_than`: what a crash or a killed server left behind. Uploads in
/// progress on any node keep their temp file's mtime fresh, so call it with a
/// generous age (a day) at start.
pub fn sweep_abandoned_uploads(data_dir: &Path, older_than: Duration) -> io::Result<usize> {
    let uploading = data_dir.join("uploading");
    let Ok(accounts) = fs::read_dir(&uploading) else {
        return Ok(0);
    };
    let mut removed = 0;
    for account in accounts.flatten() {
        for temp in fs::read_dir(account.path())?.flatten() {
            let age = temp.metadata()?.modified()?.elapsed().unwrap_or_default();
            if age >= older_than && temp.file_name().as_encoded_bytes().ends_with(b".upload") {
                fs::remove_file(temp.path())?;
                removed += 1;
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, "removed abandoned upload temp files");
    }
    Ok(removed)
}

/// How the client opened the file it writes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WriteMode {
    /// Start from the existing file's content (no TRUNC, or APPEND).
    pub keep_existing: bool,
    /// Every write goes to the end of the file (SSH_FXF_APPEND).
    pub append: bool,
}

/// What an upload shares with its WRITEs in flight: the bytes charged to
/// the account's quota so far (the high-water mark) and, once something
/// failed, the reason it can never be saved.
#[derive(Debug)]
pub struct Progress {
    pub(crate) charged: AtomicU64,
    poison: OnceLock<String>,
    append: bool,
}

impl Progress {
    pub fn new(append: bool) -> Progress {
        Progress {
            charged: AtomicU64::new(0),
            poison: OnceLock::new(),
            append,
        }
    }

    /// Marks the upload as failed, unless it already was; returns the
    /// reason that stuck (the first one).
    pub(crate) fn poison(&self, reason: String) -> &str {
        let _ = self.poison.set(reason);
        self.poisoned().unwrap_or_default()
    }

    /// Why the upload failed, if it did.
    pub(crate) fn poisoned(&self) -> Option<&str> {
        self.poison.get().map(String::as_str)
    }

    /// Whether every WRITE goes to the end of the file (SSH_FXF_APPEND).
    pub(crate) fn appends(&self) -> bool {
        self.append
    }

    fn charged(&self) -> u64 {
        self.charged.load(Ordering::Acquire)
    }
}

/// The reason a failed upload carries: `problem` ("cause; advice") with
/// "nothing was saved as NAME" between the cause and the advice, e.g. "the
/// server's disk is full; nothing was saved as roster.csv; try again later".
pub(crate) fn failure_reason(problem: &str, path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    match problem.rsplit_once("; ") {
        Some((cause, advice)) => format!("{cause}; nothing was saved as {name}; {advice}"),
        None => format!("{problem}; nothing was saved as {name}"),
    }
}

/// A file system error as "cause; advice", the form [`failure_reason`] takes.
pub(crate) fn io_problem(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(libc::ENOSPC) => "the server's disk is full; try again later".to_owned(),
        Some(libc::EDQUOT) => {
            "the server's disk quota is used up; try again later or tell the vendor".to_owned()
        }
        Some(libc::EFBIG) => {
            "the file is larger than the server can store; send a smaller file or tell the vendor"
                .to_owned()
        }
        Some(libc::EIO) => {
            "the server's disk failed to write it (I/O error); try again later and tell the vendor"
                .to_owned()
        }
        _ if error.kind() == io::ErrorKind::WriteZero => {
            "the server's disk took only part of the data; try again later".to_owned()
        }
        _ => format!("the server could not write it ({error}); try again"),
    }
}

/// One file being uploaded: its temporary file and where it will land.
#[derive(Debug)]
pub(crate) struct Upload {
    account: String,
    final_path: VirtualPath,
    final_real: PathBuf,
    temp_real: PathBuf,
    events: UnboundedSender<UploadEvent>,
    pending_times: Option<FileTimes>,
    progress: Arc<Progress>,
    usage: Arc<AccountUsage>,
    /// Bytes of the file this upload replaces, as seen when it was opened
    /// (for the quota; no extra system call at close).
    replaces: u64,
    done: bool,
}

impl Upload {
    /// Creates the (empty) temporary file; `usage` is the account's, which
    /// the upload's charge is given back to when it ends; `replaces` the
    /// size of the file now under the final name (0 for none).
    pub(crate) fn begin(
        jail: &Jail,
        (final_path, final_real, replaces): (VirtualPath, PathBuf, u64),
        mode: WriteMode,
        events: UnboundedSender<UploadEvent>,
        usage: Arc<AccountUsage>,
    ) -> io::Result<(Upload, File)> {
        let temp_real = jail
            .upload_dir()
            .join(format!("{:032x}.upload", rand::random::<u128>()));
        // 0666: the process umask (077 by default, see serve) decides.
        // O_APPEND comes after the copy ([`Upload::start_appending`]): the
        // copy writes at offsets.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o666)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temp_real)?;
        let upload = Upload {
            account: jail.account().to_owned(),
            final_path,
            final_real,
            temp_real,
            events,
            pending_times: None,
            progress: Arc::new(Progress::new(mode.append)),
            usage,
            replaces,
            done: false,
        };
        Ok((upload, file))
    }

    /// What the upload shares with its WRITEs.
    pub(crate) fn progress(&self) -> &Arc<Progress> {
        &self.progress
    }

    /// Copies the data of the file being replaced into `file` (the copy
    /// must already be charged), so the upload can resume or append without
    /// touching the original until close. Holes stay holes.
    pub(crate) fn copy_existing(&self, file: &File) -> io::Result<()> {
        let original = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&self.final_real)?;
        copy_data_ranges(&original, file)
    }

    /// From now on every write to `file` goes to its end (SSH_FXF_APPEND).
    pub(crate) fn start_appending(&self, file: &File) -> io::Result<()> {
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on a descriptor `file` owns.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        // SAFETY: as above; only O_APPEND is added.
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_APPEND) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Gives up an upload that was never handed to the client (its OPEN was
    /// refused): temporary file removed, no event.
    pub(crate) fn cancel(mut self) {
        self.done = true;
        Budget::upload_discarded(&self.usage, self.progress.charged());
        let _ = fs::remove_file(&self.temp_real);
    }

    /// The virtual path the file will have once closed.
    pub(crate) fn final_path(&self) -> &VirtualPath {
        &self.final_path
    }

    /// Remembers timestamps to set when the upload is closed (after the last
    /// write, so they stick).
    pub(crate) fn set_times_at_close(&mut self, times: FileTimes) {
        self.pending_times = Some(times);
    }

    /// Puts the complete file under its real name (atomically replacing an
    /// existing file) and returns the event to publish, if any. A poisoned
    /// upload, or one whose rename fails, is discarded instead (dropped:
    /// reported partial with the reason) and the reason is returned.
    pub(crate) fn finish(mut self, file: &File) -> Result<Option<UploadEvent>, String> {
        let label = self.final_path.to_string();
        if let Some(reason) = self.progress.poisoned() {
            return Err(reason.to_owned());
        }
        if let Some(times) = self.pending_times.take()
            && let Err(e) = file.set_times(times)
        {
            tracing::debug!(account = %self.account, path = %label, error = %e, "cannot set the upload's times");
        }
        let size = file
            .metadata()
            .map_err(|e| self.fail(&io_problem(&e), &label))?
            .len();
        if let Err(e) = fs::rename(&self.temp_real, &self.final_real) {
            let problem = format!("the server could not put the file in place ({e}); try again");
            return Err(self.fail(&problem, &label));
        }
        self.done = true;
        Budget::upload_stored(&self.usage, self.progress.charged(), size, self.replaces);
        tracing::debug!(account = %self.account, path = %label, size, "upload closed");
        Ok(finished_event(&self.account, &self.final_path, size))
    }

    /// Poisons the upload with `problem` and returns the reason.
    fn fail(&self, problem: &str, label: &str) -> String {
        self.progress
            .poison(failure_reason(problem, label))
            .to_owned()
    }

    /// Publishes an event; a closed channel (ingest stopped) is not an error here.
    pub(crate) fn publish(events: &UnboundedSender<UploadEvent>, event: UploadEvent) {
        if events.send(event).is_err() {
            tracing::debug!("nobody listens to upload events any more");
        }
    }
}

impl Drop for Upload {
    /// An upload that was not finished is discarded: temp file removed,
    /// `Partial` published.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let size = fs::metadata(&self.temp_real).map(|m| m.len()).unwrap_or(0);
        if let Err(e) = fs::remove_file(&self.temp_real) {
            tracing::warn!(temp = %self.temp_real.display(), error = %e, "could not remove an abandoned upload");
        }
        Budget::upload_discarded(&self.usage, self.progress.charged());
        let reason = self.progress.poisoned().unwrap_or(ENDED_WITHOUT_CLOSE);
        tracing::debug!(account = %self.account, path = %self.final_path, size, reason, "upload discarded");
        let event = UploadPartial {
            account: self.account.clone(),
            path: self
                .final_path
                .to_utf8()
                .unwrap_or_else(|| self.final_path.to_string()),
            size,
            reason: reason.to_owned(),
        };
        Upload::publish(&self.events, UploadEvent::Partial(event));
    }
}

/// Copies `from` into `to` (empty) range by range: only the data ranges
/// SEEK_DATA/SEEK_HOLE report are copied, so holes stay holes (and cost no
/// disk); copy_file_range does the copying in the kernel where it can.
fn copy_data_ranges(from: &File, to: &File) -> io::Result<()> {
    let len = from.metadata()?.len();
    to.set_len(len)?;
    let mut position = 0;
    while position < len {
        let Some(start) = seek(from, position, libc::SEEK_DATA)? else {
            break;
        };
        let end = seek(from, start, libc::SEEK_HOLE)?.unwrap_or(len).min(len);
        copy_range(from, to, start, end)?;
        position = end;
    }
    Ok(())
}

/// lseek(2) with SEEK_DATA/SEEK_HOLE; `None` past the last data (ENXIO).
/// A file system without them reports the whole file as data.
fn seek(file: &File, offset: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    let offset = libc::off_t::try_from(offset).map_err(io::Error::other)?;
    // SAFETY: plain lseek on a descriptor `file` owns.
    let found = unsafe { libc::lseek(file.as_raw_fd(), offset, whence) };
    if found >= 0 {
        return Ok(Some(found as u64));
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::ENXIO) => Ok(None),
        Some(libc::EINVAL) if whence == libc::SEEK_DATA => Ok(Some(offset as u64)),
        Some(libc::EINVAL) => Ok(None),
        _ => Err(error),
    }
}

/// Copies bytes `start..end` of `from` to the same offsets of `to`.
fn copy_range(from: &File, to: &File, start: u64, end: u64) -> io::Result<()> {
    let mut position = start;
    while position < end {
        let mut off_in = position as libc::loff_t;
        let mut off_out = position as libc::loff_t;
        let want = usize::try_from(end - position)
            .unwrap_or(usize::MAX)
            .min(1 << 30);
        // SAFETY: both descriptors are open; the offsets are valid pointers.
        let copied = unsafe {
            libc::copy_file_range(
                from.as_raw_fd(),
                &mut off_in,
                to.as_raw_fd(),
                &mut off_out,
                want,
                0,
            )
        };
        match copied {
            0 => break,
            n if n > 0 => position += n as u64,
            _ => {
                let error = io::Error::last_os_error();
                match error.raw_os_error() {
                    Some(libc::EXDEV | libc::ENOSYS | libc::EINVAL | libc::EOPNOTSUPP) => {
                        return copy_range_by_hand(from, to, position, end);
                    }
                    Some(libc::EINTR) => {}
                    _ => return Err(error),
                }
            }
        }
    }
    Ok(())
}

/// pread/pwrite fallback of [`copy_range`].
fn copy_range_by_hand(from: &File, to: &File, mut position: u64, end: u64) -> io::Result<()> {
    let mut buffer = vec![0u8; 256 * 1024];
    while position < end {
        let want = buffer
            .len()
            .min(usize::try_from(end - position).unwrap_or(usize::MAX));
        let read = from.read_at(&mut buffer[..want], position)?;
        if read == 0 {
            break;
        }
        to.write_all_at(&buffer[..read], position)?;
        position += read as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_removes_only_old_temp_files() {
        let data = tempfile::tempdir().unwrap();
        Jail::create_layout(data.path(), "d").unwrap();
        let jail = Jail::open(data.path(), "d").unwrap();
        fs::write(jail.upload_dir().join("abc.upload"), b"x").unwrap();
        assert_eq!(
            sweep_abandoned_uploads(data.path(), Duration::from_secs(3600)).unwrap(),
            0
        );
        assert_eq!(
            sweep_abandoned_uploads(data.path(), Duration::ZERO).unwrap(),
            1
        );
        assert_eq!(fs::read_dir(jail.upload_dir()).unwrap().count(), 0);
    }

    #[test]
    fn client_temp_names() {
        for name in [
            "a.filepart",
            "A.FILEPART",
            "x.part",
            "x.tmp",
            ".hidden",
            ".x.csv",
        ] {
            assert!(is_client_temp_name(name), "{name}");
        }
        for name in ["roster.csv", "part", "tmp.csv", "x.partial", "x.temp"] {
            assert!(!is_client_temp_name(name), "{name}");
        }
    }

    #[test]
    fn finished_events_only_for_final_names_in_inbound() {
        let p = |s: &str| VirtualPath::parse(s.as_bytes()).unwrap();
        assert!(finished_event("d", &p("/inbound/a.csv"), 3).is_some());
        assert!(finished_event("d", &p("/inbound/sub/a.csv"), 3).is_some());
        assert!(finished_event("d", &p("/inbound/a.csv.filepart"), 3).is_none());
        assert!(finished_event("d", &p("/outbound/a.csv"), 3).is_none());
        assert!(finished_event("d", &p("/inbound"), 3).is_none());
    }

    /// An upload of `/inbound/a.csv` in a fresh jail.
    fn start(
        mode: WriteMode,
    ) -> (
        tempfile::TempDir,
        PathBuf,
        Jail,
        Upload,
        File,
        tokio::sync::mpsc::UnboundedReceiver<UploadEvent>,
    ) {
        let data = tempfile::tempdir().unwrap();
        let root = Jail::create_layout(data.path(), "d").unwrap();
        let jail = Jail::open(data.path(), "d").unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let path = VirtualPath::parse(b"/inbound/a.csv").unwrap();
        let usage = Arc::new(AccountUsage::default());
        let target = (path, root.join("inbound/a.csv"), 0);
        let (upload, file) = Upload::begin(&jail, target, mode, tx, usage).unwrap();
        (data, root, jail, upload, file, rx)
    }

    fn partial(size: u64, reason: &str) -> UploadEvent {
        UploadEvent::Partial(UploadPartial {
            account: "d".into(),
            path: "/inbound/a.csv".into(),
            size,
            reason: reason.into(),
        })
    }

    #[test]
    fn dropped_upload_removes_temp_and_reports_partial() {
        let (_data, root, jail, upload, file, mut rx) = start(WriteMode::default());
        file.write_all_at(b"half", 0).unwrap();
        drop(upload);
        assert_eq!(fs::read_dir(jail.upload_dir()).unwrap().count(), 0);
        assert!(!root.join("inbound/a.csv").exists());
        assert_eq!(rx.try_recv().unwrap(), partial(4, ENDED_WITHOUT_CLOSE));
    }

    #[test]
    fn a_poisoned_upload_is_never_put_in_place() {
        let (_data, root, jail, upload, file, mut rx) = start(WriteMode::default());
        file.write_all_at(b"truncated", 0).unwrap();
        let reason = failure_reason(
            "the server's disk is full; try again later",
            "/inbound/a.csv",
        );
        assert_eq!(
            reason,
            "the server's disk is full; nothing was saved as a.csv; try again later"
        );
        upload.progress().poison(reason.clone());
        upload.progress().poison("a later failure".into());
        assert_eq!(upload.finish(&file).unwrap_err(), reason);
        assert!(!root.join("inbound/a.csv").exists());
        assert_eq!(fs::read_dir(jail.upload_dir()).unwrap().count(), 0);
        assert_eq!(rx.try_recv().unwrap(), partial(9, &reason));
        assert!(rx.try_recv().is_err(), "no finished event");
    }

    #[test]
    fn a_failed_rename_discards_the_upload_with_the_reason() {
        let (_data, root, jail, mut upload, file, mut rx) = start(WriteMode::default());
        upload.final_real = root.join("inbound/gone/a.csv");
        file.write_all_at(b"data", 0).unwrap();
        let reason = upload.finish(&file).unwrap_err();
        assert!(
            reason.starts_with("the server could not put the file in place (")
                && reason.ends_with("); nothing was saved as a.csv; try again"),
            "{reason}"
        );
        assert_eq!(fs::read_dir(jail.upload_dir()).unwrap().count(), 0);
        assert_eq!(rx.try_recv().unwrap(), partial(4, &reason));
    }

    #[test]
    fn io_errors_name_the_cause_and_what_to_do() {
        let problem = |errno| io_problem(&io::Error::from_raw_os_error(errno));
        assert_eq!(
            problem(libc::ENOSPC),
            "the server's disk is full; try again later"
        );
        assert!(problem(libc::EDQUOT).starts_with("the server's disk quota is used up; "));
        assert!(problem(libc::EFBIG).starts_with("the file is larger than the server can store; "));
        assert!(problem(libc::EIO).contains("(I/O error); "));
        assert_eq!(
            failure_reason(&problem(libc::EIO), "/inbound/r.csv"),
            "the server's disk failed to write it (I/O error); nothing was saved as r.csv; try again later and tell the vendor"
        );
    }

    #[test]
    fn reopening_copies_data_ranges_only() {
        use std::os::unix::fs::MetadataExt;
        let (_data, root, _jail, upload, file, _rx) = start(WriteMode::default());
        let sparse = File::create(root.join("inbound/a.csv")).unwrap();
        sparse.set_len(1 << 30).unwrap();
        sparse.write_all_at(b"middle", 512 << 20).unwrap();
        sparse.write_all_at(b"end", (1 << 30) - 3).unwrap();
        upload.copy_existing(&file).unwrap();
        let meta = file.metadata().unwrap();
        assert_eq!(meta.len(), 1 << 30);
        assert!(meta.blocks() * 512 < 1 << 20, "{} blocks", meta.blocks());
        let mut buf = [0u8; 6];
        file.read_exact_at(&mut buf, 512 << 20).unwrap();
        assert_eq!(&buf, b"middle");
        file.read_exact_at(&mut buf[..3], (1 << 30) - 3).unwrap();
        assert_eq!(&buf[..3], b"end");
        file.read_exact_at(&mut buf, 4096).unwrap();
        assert_eq!(buf, [0; 6]);
    }

    #[test]
    fn finished_upload_replaces_the_existing_file_and_can_start_from_it() {
        let mode = WriteMode {
            keep_existing: true,
            append: false,
        };
        let (_data, root, jail, upload, file, mut rx) = start(mode);
        fs::write(root.join("inbound/a.csv"), b"old content").unwrap();
        upload.copy_existing(&file).unwrap();
        file.write_all_at(b"new", 0).unwrap();
        assert_eq!(
            fs::read(root.join("inbound/a.csv")).unwrap(),
            b"old content"
        );
        let event = upload.finish(&file).unwrap().unwrap();
        assert_eq!(
            fs::read(root.join("inbound/a.csv")).unwrap(),
            b"new content"
        );
        assert!(matches!(event, UploadEvent::Finished(f) if f.size == 11));
        assert!(rx.try_recv().is_err());
        assert_eq!(fs::read_dir(jail.upload_dir()).unwrap().count(), 0);
    }
}
