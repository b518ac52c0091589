//! The dispatch table: request type → handler, whether the handler writes,
//! and whether it may run concurrently with other requests (OpenSSH's
//! `sftp-server.c` `handlers[]` is the model).
//!
//! The `writes` flag is what keeps the read-only rules in one place: before
//! a writing handler runs, [`authorize`] resolves every path the request
//! would change and checks it against the jail's permission table
//! ([`crate::jail::may_change`]), answering NO_SUCH_FILE for a missing path
//! before PERMISSION_DENIED for a forbidden one, and refuses new names with
//! control characters. Handlers never decide read-only questions themselves.
//!
//! The `limit` flag does the same for the session's budget
//! ([`super::budget`]): OPEN and OPENDIR reserve a handle before their
//! handler runs, WRITE is charged (largest file, quota) before it is
//! queued, and SETSTAT/FSETSTAT sizes are checked against the largest file.

use bytes::Bytes;

use super::codec::{Reply, Request, open_flag, status};
use super::data::DataJob;
use super::refusal::{Handled, Refusal, io_refusal, no_such_file, refuse};
use super::worker::Worker;
use crate::jail::{Change, LocateError, VirtualPath, may_change};
use crate::upload::failure_reason;

/// How a handler runs.
#[derive(Clone, Copy)]
pub enum Runs {
    /// READ and WRITE: prepared on the session's task, then run concurrently
    /// with other data requests (pread/pwrite on an already-open file).
    Concurrently(fn(&Worker, Request) -> Result<DataJob, Refusal>),
    /// Everything else: waits until no data request is in flight, then runs
    /// alone, so per-file order (CLOSE after its WRITEs) always holds;
    /// inline on the session's task unless [`may_take_long`].
    Alone(fn(&mut Worker, Request) -> Handled),
}

/// Whether a handler changes the disk, for the permission check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    No,
    /// Changes the paths named in the request (or works on a handle whose
    /// permission was checked when it was opened).
    Yes,
    /// OPEN: writes only when the flags ask for writing.
    WhenOpenedForWriting,
    /// SETSTAT: where the account may not write, succeeds without doing
    /// anything (WinSCP's "preserve timestamp" must not fail a download).
    AttributesOnly,
}

/// Which part of the session's budget a request uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    None,
    /// OPEN, OPENDIR: a handle is reserved before the handler runs.
    OpensHandle,
    /// WRITE: the bytes it adds are charged before it is queued.
    AddsBytes,
    /// SETSTAT, FSETSTAT: a size past the largest file is refused.
    SetsSize,
}

/// Which request a table entry serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Open,
    Close,
    Read,
    Write,
    Lstat,
    Fstat,
    Setstat,
    Fsetstat,
    Opendir,
    Readdir,
    Remove,
    Mkdir,
    Rmdir,
    Realpath,
    Stat,
    Rename,
    Readlink,
    Symlink,
    PosixRename,
    Limits,
    Fsync,
    Statvfs,
    Hardlink,
    Unsupported,
}

/// One entry of the dispatch table.
pub struct Operation {
    pub kind: Kind,
    pub name: &'static str,
    pub writes: Writes,
    pub limit: Limit,
    pub runs: Runs,
}

const fn alone(
    kind: Kind,
    name: &'static str,
    writes: Writes,
    handler: fn(&mut Worker, Request) -> Handled,
) -> Operation {
    limited(kind, name, writes, Limit::None, handler)
}

const fn limited(
    kind: Kind,
    name: &'static str,
    writes: Writes,
    limit: Limit,
    handler: fn(&mut Worker, Request) -> Handled,
) -> Operation {
    Operation {
        kind,
        name,
        writes,
        limit,
        runs: Runs::Alone(handler),
    }
}

/// The dispatch table.
pub static OPERATIONS: &[Operation] = &[
    limited(
        Kind::Open,
        "open",
        Writes::WhenOpenedForWriting,
        Limit::OpensHandle,
        Worker::open,
    ),
    alone(Kind::Close, "close", Writes::Yes, Worker::close),
    Operation {
        kind: Kind::Read,
        name: "read",
        writes: Writes::No,
        limit: Limit::None,
        runs: Runs::Concurrently(Worker::prepare_read),
    },
    Operation {
        kind: Kind::Write,
        name: "write",
        writes: Writes::Yes,
        limit: Limit::AddsBytes,
        runs: Runs::Concurrently(Worker::prepare_write),
    },
    alone(Kind::Lstat, "lstat", Writes::No, Worker::lstat),
    alone(Kind::Fstat, "fstat", Writes::No, Worker::fstat),
    limited(
        Kind::Setstat,
        "setstat",
        Writes::AttributesOnly,
        Limit::SetsSize,
        Worker::setstat,
    ),
    limited(
        Kind::Fsetstat,
        "fsetstat",
        Writes::Yes,
        Limit::SetsSize,
        Worker::fsetstat,
    ),
    limited(
        Kind::Opendir,
        "opendir",
        Writes::No,
        Limit::OpensHandle,
        Worker::opendir,
    ),
    alone(Kind::Readdir, "readdir", Writes::No, Worker::readdir),
    alone(Kind::Remove, "remove", Writes::Yes, Worker::remove),
    alone(Kind::Mkdir, "mkdir", Writes::Yes, Worker::mkdir),
    alone(Kind::Rmdir, "rmdir", Writes::Yes, Worker::rmdir),
    alone(Kind::Realpath, "realpath", Writes::No, Worker::realpath),
    alone(Kind::Stat, "stat", Writes::No, Worker::lstat),
    alone(Kind::Rename, "rename", Writes::Yes, Worker::rename),
    alone(Kind::Readlink, "readlink", Writes::No, Worker::readlink),
    alone(Kind::Symlink, "symlink", Writes::Yes, Worker::symlink),
    alone(
        Kind::PosixRename,
        "posix-rename@openssh.com",
        Writes::Yes,
        Worker::rename,
    ),
    alone(
        Kind::Limits,
        "limits@openssh.com",
        Writes::No,
        Worker::limits,
    ),
    alone(Kind::Fsync, "fsync@openssh.com", Writes::Yes, Worker::fsync),
    alone(
        Kind::Statvfs,
        "statvfs@openssh.com",
        Writes::No,
        Worker::statvfs,
    ),
    alone(
        Kind::Hardlink,
        "hardlink@openssh.com",
        Writes::Yes,
        Worker::hardlink,
    ),
    alone(
        Kind::Unsupported,
        "unsupported",
        Writes::No,
        Worker::unsupported,
    ),
];

/// The extensions announced in VERSION (name, version), as OpenSSH does.
pub const EXTENSIONS: &[(&str, &str)] = &[
    ("posix-rename@openssh.com", "1"),
    ("statvfs@openssh.com", "2"),
    ("fsync@openssh.com", "1"),
    ("limits@openssh.com", "1"),
];

/// The table entry serving `request`.
pub fn operation(request: &Request) -> &'static Operation {
    let kind = kind_of(request);
    OPERATIONS
        .iter()
        .find(|op| op.kind == kind)
        .expect("every request kind has a table entry")
}

fn kind_of(request: &Request) -> Kind {
    match request {
        Request::Open { .. } => Kind::Open,
        Request::Close { .. } => Kind::Close,
        Request::Read { .. } => Kind::Read,
        Request::Write { .. } => Kind::Write,
        Request::Lstat { .. } => Kind::Lstat,
        Request::Fstat { .. } => Kind::Fstat,
        Request::Setstat { .. } => Kind::Setstat,
        Request::Fsetstat { .. } => Kind::Fsetstat,
        Request::Opendir { .. } => Kind::Opendir,
        Request::Readdir { .. } => Kind::Readdir,
        Request::Remove { .. } => Kind::Remove,
        Request::Mkdir { .. } => Kind::Mkdir,
        Request::Rmdir { .. } => Kind::Rmdir,
        Request::Realpath { .. } => Kind::Realpath,
        Request::Stat { .. } => Kind::Stat,
        Request::Rename { .. } => Kind::Rename,
        Request::Readlink { .. } => Kind::Readlink,
        Request::Symlink { .. } => Kind::Symlink,
        Request::PosixRename { .. } => Kind::PosixRename,
        Request::Limits => Kind::Limits,
        Request::Fsync { .. } => Kind::Fsync,
        Request::Statvfs { .. } => Kind::Statvfs,
        Request::Hardlink { .. } => Kind::Hardlink,
        Request::Unsupported { .. } => Kind::Unsupported,
    }
}

/// The path a request is about (the new name, for renames and links), for
/// the summary log: a cheap clone, parsed only if the request is refused.
pub fn subject(request: &Request) -> Option<Bytes> {
    match request {
        Request::Open { path, .. }
        | Request::Opendir { path }
        | Request::Lstat { path }
        | Request::Stat { path }
        | Request::Setstat { path, .. }
        | Request::Remove { path }
        | Request::Mkdir { path, .. }
        | Request::Rmdir { path }
        | Request::Realpath { path }
        | Request::Readlink { path }
        | Request::Statvfs { path } => Some(path.clone()),
        Request::Rename { to, .. }
        | Request::PosixRename { to, .. }
        | Request::Hardlink { to, .. } => Some(to.clone()),
        Request::Symlink { link, .. } => Some(link.clone()),
        _ => None,
    }
}

/// The folder that holds `raw` as the client sees it ("/", "/inbound").
pub fn folder_of(raw: &[u8]) -> Option<String> {
    VirtualPath::parse(raw).ok().map(|p| p.parent().to_string())
}

/// True for requests that may take long enough (milliseconds and more) to
/// deserve the blocking pool instead of the session's task: fsync, folder
/// listings, and uploads that start by copying the existing file.
pub fn may_take_long(request: &Request) -> bool {
    match request {
        Request::Fsync { .. } | Request::Readdir { .. } => true,
        Request::Open { flags, .. } => {
            flags & open_flag::ANY_WRITE != 0 && flags & open_flag::TRUNC == 0
        }
        _ => false,
    }
}

/// Runs a request that runs alone: the permission check, the budget, then
/// its handler.
pub fn run_alone(
    worker: &mut Worker,
    op: &Operation,
    handler: fn(&mut Worker, Request) -> Handled,
    request: Request,
) -> Handled {
    if authorize(worker, op, &request)? == Verdict::SucceedWithoutChange {
        return Ok(Reply::ok());
    }
    match op.limit {
        Limit::OpensHandle => {
            let slot = worker.budget.reserve_handle(worker.open_handles())?;
            worker.reserved = Some(slot);
        }
        Limit::SetsSize => check_size(worker, &request)?,
        Limit::None | Limit::AddsBytes => {}
    }
    let handled = handler(worker, request);
    // A slot the handler did not use (it failed) is given back here.
    worker.reserved = None;
    handled
}

/// Prepares a READ or WRITE; a WRITE is charged to its upload (largest
/// file, quota) before it may run. A WRITE refused here poisons its upload,
/// as a WRITE that failed on disk would.
pub fn prepare_data(
    worker: &Worker,
    op: &Operation,
    prepare: fn(&Worker, Request) -> Result<DataJob, Refusal>,
    request: Request,
) -> Result<DataJob, Refusal> {
    let job = prepare(worker, request)?;
    if op.limit == Limit::AddsBytes {
        charge_write(worker, &job)?;
    }
    Ok(job)
}

fn charge_write(worker: &Worker, job: &DataJob) -> Result<(), Refusal> {
    let Some(upload) = &job.open.upload else {
        return Ok(());
    };
    let label = &job.open.label;
    if let Some(reason) = upload.poisoned() {
        return Err(refuse(status::FAILURE, reason).logged_as("upload already failed"));
    }
    let charged = match upload.appends() {
        true => worker.budget.append_upload(upload, label, job.len),
        false => {
            let end = job.offset.saturating_add(job.len);
            worker.budget.grow_upload(upload, label, end)
        }
    };
    charged.inspect_err(|refusal| {
        upload.poison(failure_reason(&refusal.message, label));
    })
}

/// SETSTAT/FSETSTAT: a size past the largest file is refused before
/// anything is resized.
fn check_size(worker: &Worker, request: &Request) -> Result<(), Refusal> {
    let (Request::Setstat { attrs, .. } | Request::Fsetstat { attrs, .. }) = request else {
        return Ok(());
    };
    let Some(size) = attrs.size else {
        return Ok(());
    };
    let what = match request {
        Request::Setstat { path, .. } => VirtualPath::parse(path)?.to_string(),
        Request::Fsetstat { handle, .. } => worker.handle_path(handle).unwrap_or_default(),
        _ => String::new(),
    };
    worker.budget.check_size(&what, size)
}

/// What the permission check decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Proceed,
    SucceedWithoutChange,
}

/// Checks every path `request` would change: it must exist (or, to be
/// created, its folder must), and the permission table must allow the change.
pub fn authorize(worker: &Worker, op: &Operation, request: &Request) -> Result<Verdict, Refusal> {
    if op.writes == Writes::No {
        return Ok(Verdict::Proceed);
    }
    for raw in new_names(request) {
        check_new_name(&VirtualPath::parse(raw)?)?;
    }
    for (raw, change) in changes(request) {
        let path = VirtualPath::parse(raw)?;
        check_exists(worker, &path, change, op.writes)?;
        if let Err(reason) = may_change(&path, change) {
            return match op.writes {
                Writes::AttributesOnly => Ok(Verdict::SucceedWithoutChange),
                _ => Err(refuse(status::PERMISSION_DENIED, reason)),
            };
        }
    }
    Ok(Verdict::Proceed)
}

fn check_exists(
    worker: &Worker,
    path: &VirtualPath,
    change: Change,
    writes: Writes,
) -> Result<(), Refusal> {
    let exists = match worker.jail.locate(path) {
        Ok(located) => located.metadata.is_some(),
        Err(LocateError::NotFound) => return Err(no_such_file(path)),
        Err(LocateError::Io(e)) => return Err(io_refusal(e, "look at", path)),
    };
    let uploading = writes == Writes::AttributesOnly && worker.is_uploading_to(path);
    match exists || uploading || change == Change::Create {
        true => Ok(()),
        false => Err(no_such_file(path)),
    }
}

/// The names a request would create: OPEN with CREAT, MKDIR, the target of
/// a rename, and both paths of SYMLINK (OpenSSH sends them swapped) and
/// the new name of a hard link.
fn new_names(request: &Request) -> Vec<&[u8]> {
    match request {
        Request::Open { path, flags, .. } if flags & open_flag::CREAT != 0 => vec![path],
        Request::Mkdir { path, .. } => vec![path],
        Request::Rename { to, .. }
        | Request::PosixRename { to, .. }
        | Request::Hardlink { to, .. } => vec![to],
        Request::Symlink { link, target } => vec![link, target],
        _ => Vec::new(),
    }
}

/// Refuses a new name with a control character (0x00–0x1F, 0x7F): such
/// names forge log lines, garble terminals and split the hand-off's list of
/// files.
fn check_new_name(path: &VirtualPath) -> Result<(), Refusal> {
    let has_control = path
        .file_name()
        .is_some_and(|name| name.iter().any(|&b| b < 0x20 || b == 0x7f));
    if !has_control {
        return Ok(());
    }
    Err(refuse(
        status::FAILURE,
        format!(
            "{}: file names may not contain control characters; choose a name without them",
            ferry_store::escape_control(&path.to_string())
        ),
    )
    .logged_as("control characters in a name"))
}

/// The paths a request would change, and how.
fn changes(request: &Request) -> Vec<(&[u8], Change)> {
    match request {
        Request::Open { path, flags, .. } if flags & open_flag::ANY_WRITE != 0 => {
            let change = if flags & open_flag::CREAT != 0 {
                Change::Create
            } else {
                Change::Modify
            };
            vec![(path, change)]
        }
        Request::Setstat { path, .. } => vec![(path, Change::Modify)],
        Request::Remove { path } | Request::Rmdir { path } => vec![(path, Change::RemoveOrRename)],
        Request::Mkdir { path, .. } => vec![(path, Change::Create)],
        Request::Rename { from, to } | Request::PosixRename { from, to } => {
            vec![(from, Change::RemoveOrRename), (to, Change::Create)]
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_exactly_one_entry_and_only_data_requests_run_concurrently() {
        for op in OPERATIONS {
            assert_eq!(
                OPERATIONS
                    .iter()
                    .filter(|other| other.kind == op.kind)
                    .count(),
                1,
                "{}",
                op.name
            );
            let concurrent = matches!(op.runs, Runs::Concurrently(_));
            assert_eq!(
                concurrent,
                matches!(op.kind, Kind::Read | Kind::Write),
                "{}",
                op.name
            );
        }
    }

    #[test]
    fn writing_handlers_are_flagged() {
        let writes = |kind| OPERATIONS.iter().find(|op| op.kind == kind).unwrap().writes;
        for kind in [
            Kind::Remove,
            Kind::Mkdir,
            Kind::Rmdir,
            Kind::Rename,
            Kind::PosixRename,
            Kind::Write,
            Kind::Symlink,
        ] {
            assert_eq!(writes(kind), Writes::Yes, "{kind:?}");
        }
        for kind in [
            Kind::Read,
            Kind::Stat,
            Kind::Lstat,
            Kind::Opendir,
            Kind::Readdir,
            Kind::Realpath,
        ] {
            assert_eq!(writes(kind), Writes::No, "{kind:?}");
        }
    }

    #[test]
    fn authorize_answers_missing_before_forbidden() {
        let data = tempfile::tempdir().unwrap();
        crate::jail::Jail::create_layout(data.path(), "d").unwrap();
        let jail = crate::jail::Jail::open(data.path(), "d").unwrap();
        let (events, _rx) = tokio::sync::mpsc::unbounded_channel();
        let budget = super::super::budget::Budget::standalone(Default::default());
        let worker = Worker::new(jail, events, budget);
        let check = |request: Request| authorize(&worker, operation(&request), &request);
        let remove = |p: &'static str| Request::Remove { path: p.into() };
        assert_eq!(
            check(remove("/outbound/missing")).unwrap_err().code,
            status::NO_SUCH_FILE
        );
        assert_eq!(
            check(remove("/outbound")).unwrap_err().code,
            status::PERMISSION_DENIED
        );
        assert_eq!(
            check(remove("/inbound")).unwrap_err().message,
            "/inbound cannot be removed or renamed"
        );
        assert_eq!(
            check(remove("/inbound/missing")).unwrap_err().code,
            status::NO_SUCH_FILE
        );
        let create = |p: &'static str| Request::Open {
            path: p.into(),
            flags: 0x1a,
            attrs: Default::default(),
        };
        assert_eq!(
            check(create("/x.csv")).unwrap_err().code,
            status::PERMISSION_DENIED
        );
        assert_eq!(
            check(create("/archive/x.csv")).unwrap_err().code,
            status::PERMISSION_DENIED
        );
        assert_eq!(check(create("/inbound/x.csv")).unwrap(), Verdict::Proceed);
        assert_eq!(
            check(create("/inbound/nofolder/x.csv")).unwrap_err().code,
            status::NO_SUCH_FILE
        );
        let setstat = |p: &'static str| Request::Setstat {
            path: p.into(),
            attrs: Default::default(),
        };
        assert_eq!(
            check(setstat("/outbound")).unwrap(),
            Verdict::SucceedWithoutChange
        );
        assert_eq!(
            check(setstat("/outbound/missing")).unwrap_err().code,
            status::NO_SUCH_FILE
        );
        let read = Request::Open {
            path: "/outbound/x".into(),
            flags: open_flag::READ,
            attrs: Default::default(),
        };
        assert_eq!(check(read).unwrap(), Verdict::Proceed);
    }
}
