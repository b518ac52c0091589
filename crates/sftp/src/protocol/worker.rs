//! The per-session state (the jail, open handles, the upload event sender)
//! and one handler per request type.
//!
//! Handlers are plain blocking functions: the pipeline decides where they run
//! (READ and WRITE concurrently, everything else alone). Permission checks
//! for paths happen before a handler runs, in `dispatch::authorize`; a
//! handler only re-checks what the table cannot know (file kinds, handles).
//!
//! A handler must never touch a real path that did not come from
//! `Jail::locate`, and never log file contents.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{self, File, FileTimes, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes};
use tokio::sync::mpsc::UnboundedSender;

use super::budget::{Budget, HandleSlot};
use super::codec::{
    Attrs, MAX_DATA_LEN, MAX_PACKET_LEN, NameEntry, Reply, Request, open_flag, status,
};
use super::data::{DataJob, OpenFile};
use super::listing::{attrs_of, long_name};
use super::refusal::{
    Handled, Refusal, invalid_handle, io_refusal, locate_refusal, mismatch, no_such_file, refuse,
};
use crate::jail::{Change, Jail, VirtualPath, may_change};
use crate::upload::{Upload, UploadEvent, WriteMode, failure_reason, finished_event, io_problem};

/// Most entries in one READDIR reply (OpenSSH sends up to 100).
const READDIR_BATCH: usize = 100;

/// An open file: a download, or an upload going to a temp file.
#[derive(Debug)]
pub struct FileHandle {
    /// The file, shared with its data requests in flight.
    pub open: Arc<OpenFile>,
    pub path: VirtualPath,
    pub readable: bool,
    pub writable: bool,
    pub upload: Option<Upload>,
    _slot: HandleSlot,
}

/// An open folder listing.
#[derive(Debug)]
pub struct DirHandle {
    path: VirtualPath,
    real: PathBuf,
    entries: fs::ReadDir,
    dots_sent: bool,
    _slot: HandleSlot,
}

#[derive(Debug)]
pub enum Handle {
    File(FileHandle),
    Dir(DirHandle),
}

/// Everything one SFTP session owns.
#[derive(Debug)]
pub struct Worker {
    pub jail: Jail,
    events: UnboundedSender<UploadEvent>,
    handles: HashMap<u32, Handle>,
    next_handle: u32,
    /// The limits this session runs under.
    pub budget: Budget,
    /// The handle `dispatch` reserved for the OPEN/OPENDIR running now.
    pub reserved: Option<HandleSlot>,
}

impl Worker {
    pub fn new(jail: Jail, events: UnboundedSender<UploadEvent>, budget: Budget) -> Worker {
        Worker {
            jail,
            events,
            handles: HashMap::new(),
            next_handle: 0,
            budget,
            reserved: None,
        }
    }

    /// Handles open in this session.
    pub fn open_handles(&self) -> usize {
        self.handles.len()
    }

    /// The path of an open handle, for the summary log.
    pub fn handle_path(&self, raw: &[u8]) -> Option<String> {
        let id = Self::handle_id(raw).ok()?;
        match self.handles.get(&id)? {
            Handle::File(file) => Some(file.path.to_string()),
            Handle::Dir(dir) => Some(dir.path.to_string()),
        }
    }

    /// The handle place `dispatch` reserved (or one reserved now, for a
    /// handler called directly).
    fn take_slot(&mut self) -> Result<HandleSlot, Refusal> {
        match self.reserved.take() {
            Some(slot) => Ok(slot),
            None => self.budget.reserve_handle(self.handles.len()),
        }
    }

    /// Parses and locates a client path (symlinks never followed).
    fn find(
        &self,
        raw: &[u8],
        action: &str,
    ) -> Result<(VirtualPath, PathBuf, Option<fs::Metadata>), Refusal> {
        let path = VirtualPath::parse(raw)?;
        let located = self
            .jail
            .locate(&path)
            .map_err(|e| locate_refusal(e, action, &path))?;
        Ok((path, located.real, located.metadata))
    }

    /// Like `find`, but the path must exist.
    fn find_existing(
        &self,
        raw: &[u8],
        action: &str,
    ) -> Result<(VirtualPath, PathBuf, fs::Metadata), Refusal> {
        match self.find(raw, action)? {
            (path, real, Some(meta)) => Ok((path, real, meta)),
            (path, _, None) => Err(no_such_file(&path)),
        }
    }

    fn add_handle(&mut self, handle: Handle) -> Handled {
        let mut id = self.next_handle;
        while self.handles.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        self.next_handle = id.wrapping_add(1);
        self.handles.insert(id, handle);
        Ok(Reply::Handle(id.to_be_bytes().to_vec()))
    }

    fn handle_id(raw: &[u8]) -> Result<u32, Refusal> {
        let bytes: [u8; 4] = raw.try_into().map_err(|_| invalid_handle())?;
        Ok(u32::from_be_bytes(bytes))
    }

    fn file_handle(&self, raw: &[u8]) -> Result<(u32, &FileHandle), Refusal> {
        let id = Self::handle_id(raw)?;
        match self.handles.get(&id) {
            Some(Handle::File(file)) => Ok((id, file)),
            Some(Handle::Dir(dir)) => Err(refuse(
                status::FAILURE,
                format!("{} is a folder, not a file", dir.path),
            )),
            None => Err(invalid_handle()),
        }
    }

    /// True when an upload still open in this session will land on `path`.
    pub fn is_uploading_to(&self, path: &VirtualPath) -> bool {
        self.uploads().any(|upload| upload.final_path() == path)
    }

    fn uploads(&self) -> impl Iterator<Item = &Upload> {
        self.handles.values().filter_map(|handle| match handle {
            Handle::File(file) => file.upload.as_ref(),
            Handle::Dir(_) => None,
        })
    }

    fn publish(&self, event: Option<UploadEvent>) {
        if let Some(event) = event {
            Upload::publish(&self.events, event);
        }
    }

    // ---- data requests: prepared here, run concurrently by the pipeline ----

    pub fn prepare_read(&self, request: Request) -> Result<DataJob, Refusal> {
        let Request::Read {
            handle,
            offset,
            len,
        } = request
        else {
            return Err(mismatch());
        };
        let (id, file) = self.file_handle(&handle)?;
        if !file.readable {
            return Err(refuse(
                status::PERMISSION_DENIED,
                format!("{} was opened for writing only", file.path),
            ));
        }
        let len = u64::from(len.min(MAX_DATA_LEN));
        Ok(file.job(id, offset, len, false, Bytes::new()))
    }

    pub fn prepare_write(&self, request: Request) -> Result<DataJob, Refusal> {
        let Request::Write {
            handle,
            offset,
            data,
        } = request
        else {
            return Err(mismatch());
        };
        let (id, file) = self.file_handle(&handle)?;
        if !file.writable {
            return Err(refuse(
                status::PERMISSION_DENIED,
                format!(
                    "{} was opened for reading only: open it for writing (in /inbound) to change it",
                    file.path
                ),
            ));
        }
        Ok(file.job(id, offset, data.len() as u64, true, data))
    }

    // ---- everything else: runs alone, after in-flight data requests ----

    pub fn open(&mut self, request: Request) -> Handled {
        let Request::Open { path, flags, attrs } = request else {
            return Err(mismatch());
        };
        match flags & open_flag::ANY_WRITE {
            0 => self.open_for_reading(&path),
            _ => self.open_for_writing(&path, flags, &attrs),
        }
    }

    fn open_for_reading(&mut self, raw: &[u8]) -> Handled {
        let (path, real, meta) = self.find_existing(raw, "open")?;
        check_regular_file(&path, &meta)?;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&real)
            .map_err(|e| io_refusal(e, "open", &path))?;
        tracing::debug!(account = %self.jail.account(), %path, "download opened");
        let slot = self.take_slot()?;
        self.add_handle(Handle::File(FileHandle::new(file, path, true, None, slot)))
    }

    fn open_for_writing(&mut self, raw: &[u8], flags: u32, attrs: &Attrs) -> Handled {
        let (path, real, meta) = self.find(raw, "open")?;
        if let Some(meta) = &meta {
            check_regular_file(&path, meta)?;
        }
        let exists = meta.is_some();
        if exists && flags & open_flag::CREAT != 0 && flags & open_flag::EXCL != 0 {
            return Err(refuse(status::FAILURE, format!("{path} already exists")));
        }
        if !exists && flags & open_flag::CREAT == 0 {
            return Err(no_such_file(&path));
        }
        let mode = WriteMode {
            keep_existing: flags & open_flag::TRUNC == 0,
            append: flags & open_flag::APPEND != 0,
        };
        let slot = self.take_slot()?;
        let replaces = meta.as_ref().map_or(0, fs::Metadata::len);
        let (mut upload, file) = Upload::begin(
            &self.jail,
            (path.clone(), real, replaces),
            mode,
            self.events.clone(),
            Arc::clone(&self.budget.usage),
        )
        .map_err(|e| io_refusal(e, "start the upload of", &path))?;
        let existing = meta.filter(|_| mode.keep_existing).map(|m| m.len());
        if let Err(refusal) = self.start_upload(&upload, &file, &path, existing, mode) {
            upload.cancel();
            return Err(refusal);
        }
        if let Some(times) = attrs.times {
            upload.set_times_at_close(file_times(times));
        }
        tracing::debug!(account = %self.jail.account(), %path, "upload opened");
        let readable = flags & open_flag::READ != 0;
        let handle = FileHandle::new(file, path, readable, Some(upload), slot);
        self.add_handle(Handle::File(handle))
    }

    /// Starts an upload from the existing file's data (charged to the
    /// quota first; holes stay holes), then turns on APPEND if asked.
    fn start_upload(
        &self,
        upload: &Upload,
        file: &File,
        path: &VirtualPath,
        existing: Option<u64>,
        mode: WriteMode,
    ) -> Result<(), Refusal> {
        if let Some(len) = existing {
            self.budget
                .grow_upload(upload.progress(), &path.to_string(), len)?;
            upload
                .copy_existing(file)
                .map_err(|e| io_refusal(e, "copy the existing", path))?;
        }
        if mode.append {
            upload
                .start_appending(file)
                .map_err(|e| io_refusal(e, "append to", path))?;
        }
        Ok(())
    }

    pub fn close(&mut self, request: Request) -> Handled {
        let Request::Close { handle } = request else {
            return Err(mismatch());
        };
        let id = Self::handle_id(&handle)?;
        match self.handles.remove(&id) {
            Some(Handle::File(FileHandle {
                open,
                upload: Some(upload),
                ..
            })) => {
                let event = upload
                    .finish(&open.file)
                    .map_err(|reason| refuse(status::FAILURE, reason))?;
                self.publish(event);
                Ok(Reply::ok())
            }
            Some(_) => Ok(Reply::ok()),
            None => Err(invalid_handle()),
        }
    }

    pub fn lstat(&mut self, request: Request) -> Handled {
        let (Request::Lstat { path } | Request::Stat { path }) = request else {
            return Err(mismatch());
        };
        let (_, _, meta) = self.find_existing(&path, "look at")?;
        Ok(Reply::Attrs(attrs_of(&meta)))
    }

    pub fn fstat(&mut self, request: Request) -> Handled {
        let Request::Fstat { handle } = request else {
            return Err(mismatch());
        };
        let id = Self::handle_id(&handle)?;
        let (meta, path) = match self.handles.get(&id) {
            Some(Handle::File(file)) => (file.open.file.metadata(), &file.path),
            Some(Handle::Dir(dir)) => (fs::symlink_metadata(&dir.real), &dir.path),
            None => return Err(invalid_handle()),
        };
        let meta = meta.map_err(|e| io_refusal(e, "look at", path))?;
        Ok(Reply::Attrs(attrs_of(&meta)))
    }

    /// Only reached where the account may write (see `dispatch`): times are
    /// honoured, a size truncates, permissions and owners are ignored.
    pub fn setstat(&mut self, request: Request) -> Handled {
        let Request::Setstat { path, attrs } = request else {
            return Err(mismatch());
        };
        let (path, real, meta) = self.find(&path, "change")?;
        let Some(meta) = meta else {
            return self.set_times_of_upload_to(&path, &attrs);
        };
        if let Some(size) = attrs.size.filter(|_| meta.is_file()) {
            let label = path.to_string();
            self.budget.resize_stored(&label, meta.len(), size)?;
            let file = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&real);
            if let Err(e) = file.and_then(|f| f.set_len(size)) {
                let _ = self.budget.resize_stored(&label, size, meta.len());
                return Err(io_refusal(e, "resize", &path));
            }
        }
        if let Some(times) = attrs.times {
            set_times_nofollow(&real, times)
                .map_err(|e| io_refusal(e, "set the times of", &path))?;
        }
        Ok(Reply::ok())
    }

    /// SETSTAT on a file that is still being uploaded in this session: the
    /// times are set when it is closed.
    fn set_times_of_upload_to(&mut self, path: &VirtualPath, attrs: &Attrs) -> Handled {
        let uploads = self.handles.values_mut().filter_map(|handle| match handle {
            Handle::File(FileHandle {
                upload: Some(upload),
                ..
            }) if upload.final_path() == path => Some(upload),
            _ => None,
        });
        let mut found = false;
        for upload in uploads {
            found = true;
            if let Some(times) = attrs.times {
                upload.set_times_at_close(file_times(times));
            }
        }
        if found {
            Ok(Reply::ok())
        } else {
            Err(no_such_file(path))
        }
    }

    pub fn fsetstat(&mut self, request: Request) -> Handled {
        let Request::Fsetstat { handle, attrs } = request else {
            return Err(mismatch());
        };
        let id = Self::handle_id(&handle)?;
        let file = match self.handles.get_mut(&id) {
            Some(Handle::File(file)) => file,
            Some(Handle::Dir(_)) => return Ok(Reply::ok()),
            None => return Err(invalid_handle()),
        };
        if let Some(upload) = file.upload.as_mut() {
            if let Some(size) = attrs.size {
                resize_upload(&self.budget, &file.open, upload, size)?;
            }
            if let Some(times) = attrs.times {
                upload.set_times_at_close(file_times(times));
            }
        } else if let Some(times) = attrs
            .times
            .filter(|_| may_change(&file.path, Change::Modify).is_ok())
        {
            file.open
                .file
                .set_times(file_times(times))
                .map_err(|e| io_refusal(e, "set the times of", &file.path))?;
        }
        Ok(Reply::ok())
    }

    pub fn opendir(&mut self, request: Request) -> Handled {
        let Request::Opendir { path } = request else {
            return Err(mismatch());
        };
        let (path, real, meta) = self.find_existing(&path, "list")?;
        if !meta.is_dir() {
            return Err(refuse(status::FAILURE, format!("{path} is not a folder")));
        }
        let entries = fs::read_dir(&real).map_err(|e| io_refusal(e, "list", &path))?;
        let slot = self.take_slot()?;
        self.add_handle(Handle::Dir(DirHandle {
            path,
            real,
            entries,
            dots_sent: false,
            _slot: slot,
        }))
    }

    pub fn readdir(&mut self, request: Request) -> Handled {
        let Request::Readdir { handle } = request else {
            return Err(mismatch());
        };
        let id = Self::handle_id(&handle)?;
        let owner = self.jail.account().to_owned();
        let root = self.jail.root().to_owned();
        let Some(Handle::Dir(dir)) = self.handles.get_mut(&id) else {
            return Err(invalid_handle());
        };
        let now = unix_now();
        let mut batch = Vec::with_capacity(READDIR_BATCH);
        if !dir.dots_sent {
            dir.dots_sent = true;
            batch.extend(dot_entries(dir, &root, &owner, now));
        }
        while batch.len() < READDIR_BATCH {
            let Some(entry) = dir.entries.next() else {
                break;
            };
            let Ok(entry) = entry else { continue };
            let Ok(meta) = entry.metadata() else { continue };
            if meta.file_type().is_symlink() {
                continue;
            }
            let name = entry.file_name();
            batch.push(name_entry(name.as_bytes(), &meta, &owner, now));
        }
        match batch.is_empty() {
            true => Err(refuse(status::EOF, "end of folder listing")),
            false => Ok(Reply::Name(batch)),
        }
    }

    pub fn remove(&mut self, request: Request) -> Handled {
        let Request::Remove { path } = request else {
            return Err(mismatch());
        };
        let (path, real, meta) = self.find_existing(&path, "remove")?;
        if meta.is_dir() {
            return Err(refuse(
                status::FAILURE,
                format!("{path} is a folder: remove it with rmdir"),
            ));
        }
        fs::remove_file(&real).map_err(|e| io_refusal(e, "remove", &path))?;
        if meta.is_file() {
            self.budget.stored_removed(meta.len());
        }
        tracing::debug!(account = %self.jail.account(), %path, "file removed");
        Ok(Reply::ok())
    }

    pub fn mkdir(&mut self, request: Request) -> Handled {
        let Request::Mkdir { path, .. } = request else {
            return Err(mismatch());
        };
        let (path, real, meta) = self.find(&path, "create")?;
        if meta.is_some() {
            return Err(refuse(status::FAILURE, format!("{path} already exists")));
        }
        fs::create_dir(&real).map_err(|e| io_refusal(e, "create", &path))?;
        tracing::debug!(account = %self.jail.account(), %path, "folder created");
        Ok(Reply::ok())
    }

    pub fn rmdir(&mut self, request: Request) -> Handled {
        let Request::Rmdir { path } = request else {
            return Err(mismatch());
        };
        let (path, real, meta) = self.find_existing(&path, "remove")?;
        if !meta.is_dir() {
            return Err(refuse(
                status::FAILURE,
                format!("{path} is not a folder: remove it with rm"),
            ));
        }
        fs::remove_dir(&real).map_err(|e| io_refusal(e, "remove", &path))?;
        tracing::debug!(account = %self.jail.account(), %path, "folder removed");
        Ok(Reply::ok())
    }

    pub fn realpath(&mut self, request: Request) -> Handled {
        let Request::Realpath { path } = request else {
            return Err(mismatch());
        };
        let path = VirtualPath::parse(&path)?.to_bytes();
        let entry = NameEntry {
            filename: path.clone(),
            longname: path,
            attrs: Attrs::default(),
        };
        Ok(Reply::Name(vec![entry]))
    }

    /// RENAME and posix-rename@openssh.com: both replace an existing target
    /// (WinSCP relies on it), atomically.
    pub fn rename(&mut self, request: Request) -> Handled {
        let (Request::Rename { from, to } | Request::PosixRename { from, to }) = request else {
            return Err(mismatch());
        };
        let (from, from_real, from_meta) = self.find_existing(&from, "rename")?;
        let (to, to_real, to_meta) = self.find(&to, "rename onto")?;
        if from == to {
            return Ok(Reply::ok());
        }
        if to.depth() > from.depth() && to.components().take(from.depth()).eq(from.components()) {
            return Err(refuse(
                status::FAILURE,
                format!("cannot move {from} into itself ({to})"),
            ));
        }
        if let Some(to_meta) = to_meta
            .as_ref()
            .filter(|meta| meta.is_dir() != from_meta.is_dir())
        {
            let what = if to_meta.is_dir() {
                "a folder"
            } else {
                "a file"
            };
            return Err(refuse(
                status::FAILURE,
                format!("{to} already exists and is {what}"),
            ));
        }
        fs::rename(&from_real, &to_real).map_err(|e| io_refusal(e, "rename", &from))?;
        if let Some(replaced) = to_meta.filter(fs::Metadata::is_file) {
            self.budget.stored_removed(replaced.len());
        }
        tracing::debug!(account = %self.jail.account(), %from, %to, "renamed");
        if from_meta.is_file() {
            self.publish(finished_event(self.jail.account(), &to, from_meta.len()));
        }
        Ok(Reply::ok())
    }

    pub fn readlink(&mut self, request: Request) -> Handled {
        let Request::Readlink { path } = request else {
            return Err(mismatch());
        };
        let (path, _, _) = self.find_existing(&path, "read")?;
        Err(refuse(
            status::FAILURE,
            format!("{path} is not a symbolic link"),
        ))
    }

    pub fn symlink(&mut self, _request: Request) -> Handled {
        Err(refuse(
            status::PERMISSION_DENIED,
            "symbolic links cannot be created on this server",
        ))
    }

    pub fn hardlink(&mut self, _request: Request) -> Handled {
        Err(refuse(
            status::PERMISSION_DENIED,
            "hard links cannot be created on this server",
        ))
    }

    pub fn limits(&mut self, _request: Request) -> Handled {
        let mut data = Vec::with_capacity(32);
        data.put_u64(MAX_PACKET_LEN as u64);
        data.put_u64(u64::from(MAX_DATA_LEN));
        data.put_u64(u64::from(MAX_DATA_LEN));
        data.put_u64(self.budget.limits.handles_per_session as u64);
        Ok(Reply::ExtendedReply(data))
    }

    pub fn fsync(&mut self, request: Request) -> Handled {
        let Request::Fsync { handle } = request else {
            return Err(mismatch());
        };
        let (_, file) = self.file_handle(&handle)?;
        file.open
            .file
            .sync_all()
            .map_err(|e| io_refusal(e, "flush", &file.path))?;
        Ok(Reply::ok())
    }

    pub fn statvfs(&mut self, request: Request) -> Handled {
        let Request::Statvfs { path } = request else {
            return Err(mismatch());
        };
        let (path, real, _) = self.find_existing(&path, "look at")?;
        let stats = statvfs(&real).map_err(|e| io_refusal(e, "look at", &path))?;
        let mut data = Vec::with_capacity(88);
        for value in stats {
            data.put_u64(value);
        }
        Ok(Reply::ExtendedReply(data))
    }

    pub fn unsupported(&mut self, request: Request) -> Handled {
        let what = match request {
            Request::Unsupported { what } => what,
            other => format!("{other:?}"),
        };
        Err(refuse(
            status::OP_UNSUPPORTED,
            format!("{what} is not supported by this server"),
        ))
    }
}

impl FileHandle {
    fn new(
        file: File,
        path: VirtualPath,
        readable: bool,
        upload: Option<Upload>,
        slot: HandleSlot,
    ) -> FileHandle {
        let open = OpenFile {
            file,
            label: path.to_string().into(),
            upload: upload.as_ref().map(|u| Arc::clone(u.progress())),
        };
        FileHandle {
            open: Arc::new(open),
            path,
            readable,
            writable: upload.is_some(),
            upload,
            _slot: slot,
        }
    }

    fn job(&self, handle: u32, offset: u64, len: u64, writes: bool, data: Bytes) -> DataJob {
        DataJob {
            handle,
            offset,
            len,
            writes,
            open: Arc::clone(&self.open),
            data,
        }
    }
}

/// FSETSTAT's size on an upload: charged (or given back), then applied.
/// Either failing poisons the upload: its content is no longer what the
/// client meant it to be.
fn resize_upload(
    budget: &Budget,
    open: &OpenFile,
    upload: &Upload,
    size: u64,
) -> Result<(), Refusal> {
    let poison = |problem: &str| {
        upload
            .progress()
            .poison(failure_reason(problem, &open.label));
    };
    budget
        .resize_upload(upload.progress(), &open.label, size)
        .inspect_err(|refusal| poison(&refusal.message))?;
    open.file.set_len(size).map_err(|e| {
        let problem = io_problem(&e);
        poison(&problem);
        refuse(status::FAILURE, failure_reason(&problem, &open.label))
    })
}

fn check_regular_file(path: &VirtualPath, meta: &fs::Metadata) -> Result<(), Refusal> {
    if meta.is_dir() {
        return Err(refuse(
            status::FAILURE,
            format!("{path} is a folder, not a file"),
        ));
    }
    if !meta.is_file() {
        return Err(refuse(
            status::FAILURE,
            format!("{path} is not a regular file"),
        ));
    }
    Ok(())
}

fn dot_entries(dir: &DirHandle, root: &Path, owner: &str, now: i64) -> Vec<NameEntry> {
    let parent_real = match dir.path.depth() {
        0 => root.to_owned(),
        _ => dir.real.parent().unwrap_or(root).to_owned(),
    };
    [(&b"."[..], &dir.real), (&b".."[..], &parent_real)]
        .into_iter()
        .filter_map(|(name, real)| {
            fs::symlink_metadata(real)
                .ok()
                .map(|meta| name_entry(name, &meta, owner, now))
        })
        .collect()
}

fn name_entry(name: &[u8], meta: &fs::Metadata, owner: &str, now: i64) -> NameEntry {
    NameEntry {
        filename: name.to_vec(),
        longname: long_name(name, meta, owner, now),
        attrs: attrs_of(meta),
    }
}

fn file_times((atime, mtime): (u32, u32)) -> FileTimes {
    let at = |seconds: u32| UNIX_EPOCH + Duration::from_secs(u64::from(seconds));
    FileTimes::new()
        .set_accessed(at(atime))
        .set_modified(at(mtime))
}

fn set_times_nofollow(real: &Path, (atime, mtime): (u32, u32)) -> io::Result<()> {
    let path = CString::new(real.as_os_str().as_bytes())?;
    let time = |seconds: u32| libc::timespec {
        tv_sec: seconds as libc::time_t,
        tv_nsec: 0,
    };
    let times = [time(atime), time(mtime)];
    // SAFETY: `path` is a valid NUL-terminated string and `times` has two entries.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            path.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The 11 fields of statvfs@openssh.com, in protocol order.
fn statvfs(real: &Path) -> io::Result<[u64; 11]> {
    let path = CString::new(real.as_os_str().as_bytes())?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is a valid out pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)]
    Ok([
        st.f_bsize as u64,
        st.f_frsize as u64,
        st.f_blocks as u64,
        st.f_bfree as u64,
        st.f_bavail as u64,
        st.f_files as u64,
        st.f_ffree as u64,
        st.f_favail as u64,
        st.f_fsid as u64,
        st.f_flag as u64,
        st.f_namemax as u64,
    ])
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
