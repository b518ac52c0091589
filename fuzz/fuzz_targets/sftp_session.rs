//! SFTP sessions against a jail. An input whose first byte is even is a
//! client's packet stream (see `Session::from_packets`; the seeds are the
//! protocol tests' exchanges); otherwise the rest is a structure-aware
//! sequence of requests
//! (every request type, paths from a vocabulary of the layout, escapes,
//! symlinks planted on disk and raw bytes, handles the server gave out or
//! guessed, offsets at the edges) sent in pipelined batches to the real
//! `ferry_sftp::protocol::serve` (its pipeline, dispatch table, permission
//! check and handlers) over an in-memory stream, with a jail in a temporary
//! folder and a canary account folder beside the account root. The folder is
//! made once per process and reused: every run ends with everything but
//! `/inbound` checked unchanged and the upload folder checked empty, so the
//! next run only refills `/inbound` (see [`World::reuse_or_create`]).
//!
//! Properties, checked after every batch (and after the session):
//! - nothing outside the account root is created, changed or read: the
//!   canary's entries keep their kind, size, mode and access, change and
//!   modification times (only `lstat` is used on them, so the check itself
//!   reads nothing), the data folder's own folders keep theirs, and no reply
//!   ever carries the canary's content;
//! - `/`, `/outbound`, `/archive` and `/reports` never change (names, kinds,
//!   sizes, modes, times, content);
//! - every request gets exactly one reply, with its own id;
//! - no name ever appears under `/inbound` unless a CLOSE for it succeeded
//!   (or a MKDIR or RENAME made it): the names on disk equal a model that
//!   follows the successful replies;
//! - when the session ends, no upload is left in the upload folder.
//!
//! Harness limit: WRITE offsets and SETSTAT/FSETSTAT sizes stay below 1 MiB
//! or above 2^63 (where the kernel refuses them), so no fuzz input can make a
//! sparse file of terabytes that a later copy-on-open would fill the disk (or
//! the tmpfs, that is memory) with. Ferry itself does not refuse that yet:
//! the per-account file size limit (issue 9) is what will.
#![no_main]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, FileTimes};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, Once};
use std::time::{Duration, UNIX_EPOCH};

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use ferry_fuzz::sftp_wire::{ReplyPacket, encode_init, encode_request, split_replies};
use ferry_sftp::jail::{Jail, VirtualPath};
use ferry_sftp::protocol::codec::{
    Attrs, Incoming, MAX_PACKET_LEN, Request, client, decode, open_flag, packet, status,
};
use ferry_sftp::protocol::serve_with_slow_storage;
use ferry_sftp::upload::UploadEvent;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};

const ACCOUNT: &str = "district";
const CANARY: &[u8] = b"FERRY-FUZZ-CANARY-7f3a9c";
/// Most requests in one session, and in one batch.
const MAX_REQUESTS: usize = 48;
const MAX_BATCH: usize = 16;
const BATCH_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Arbitrary, Debug)]
struct Session {
    /// Data requests overlap on the blocking pool from the start (as on slow
    /// storage) instead of running inline.
    overlap: bool,
    first_id: u32,
    batches: Vec<Vec<Op>>,
    /// Raw bytes sent after the last batch (a client that breaks the protocol).
    garbage: Option<Vec<u8>>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Open {
        path: PathChoice,
        flags: u8,
        attrs: AttrChoice,
    },
    Close {
        handle: HandleChoice,
    },
    Read {
        handle: HandleChoice,
        offset: u64,
        len: u32,
    },
    Write {
        handle: HandleChoice,
        offset: Offset,
        data: Vec<u8>,
    },
    Lstat {
        path: PathChoice,
    },
    Stat {
        path: PathChoice,
    },
    Fstat {
        handle: HandleChoice,
    },
    Setstat {
        path: PathChoice,
        attrs: AttrChoice,
    },
    Fsetstat {
        handle: HandleChoice,
        attrs: AttrChoice,
    },
    Opendir {
        path: PathChoice,
    },
    Readdir {
        handle: HandleChoice,
    },
    Remove {
        path: PathChoice,
    },
    Mkdir {
        path: PathChoice,
    },
    Rmdir {
        path: PathChoice,
    },
    Realpath {
        path: PathChoice,
    },
    Rename {
        from: PathChoice,
        to: PathChoice,
        posix: bool,
    },
    Readlink {
        path: PathChoice,
    },
    Symlink {
        link: PathChoice,
        target: PathChoice,
    },
    Hardlink {
        from: PathChoice,
        to: PathChoice,
    },
    Limits,
    Fsync {
        handle: HandleChoice,
    },
    Statvfs {
        path: PathChoice,
    },
    /// Any request type with any fields, sent only when it decodes (a
    /// packet that does not decode ends the session: that is `garbage`).
    Raw {
        kind: u8,
        fields: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
enum PathChoice {
    Known(u8),
    Joined { absolute: bool, parts: Vec<Part> },
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Part {
    Name(u8),
    Dot,
    DotDot,
    Empty,
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum HandleChoice {
    /// The n-th handle the server gave out in this session (or, before any
    /// reply is in, the id it would give).
    Given(u8),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Offset {
    Small(u16),
    Near(u32),
    Beyond(u64),
}

#[derive(Arbitrary, Debug)]
struct AttrChoice {
    size: Option<Offset>,
    uid_gid: Option<(u32, u32)>,
    permissions: Option<u32>,
    times: Option<(u32, u32)>,
}

/// Paths a client would send, and the ones an attacker would.
const KNOWN_PATHS: &[&[u8]] = &[
    b"/",
    b"/inbound",
    b"/outbound",
    b"/archive",
    b"/reports",
    b"/inbound/existing.csv",
    b"/inbound/sub",
    b"/inbound/sub/nested.csv",
    b"/inbound/new.csv",
    b"/inbound/new.csv.filepart",
    b"/inbound/sub/new",
    b"/outbound/download.csv",
    b"/outbound/folder",
    b"/archive/2024-01-01",
    b"/archive/2024-01-01/old.csv",
    b"/reports/report.txt",
    b"/inbound/escape",
    b"/inbound/escape/secret.txt",
    b"/inbound/escape-file",
    b"/escape",
    b"/outbound/escape",
    b"../canary/secret.txt",
    b"/../../canary",
    b"inbound/./sub/../new.csv",
    b"/inbound/bad\xff.csv",
    b"/inbound/.hidden",
    b"",
    b".",
    b"/inbound/",
    b"/new",
    b"/inbound/sub/..",
    b"/inbound/a\0b",
];

const KNOWN_NAMES: &[&[u8]] = &[
    b"inbound",
    b"outbound",
    b"archive",
    b"reports",
    b"sub",
    b"existing.csv",
    b"new.csv",
    b"nested.csv",
    b"escape",
    b"escape-file",
    b"canary",
    b"accounts",
    b"uploading",
    b"secret.txt",
    b"x.filepart",
    b"\xff\xfe",
];

fuzz_target!(|input: &[u8]| {
    let session = match input.split_first() {
        Some((mode, stream)) if mode % 2 == 0 => Session::from_packets(mode & 2 != 0, stream),
        Some((_, bytes)) => match Session::arbitrary_take_rest(Unstructured::new(bytes)) {
            Ok(session) => session,
            Err(_) => return,
        },
        None => return,
    };
    RUNTIME.block_on(run(session));
});

impl Session {
    /// A session from a client's packet stream (after INIT): each packet is
    /// sent with a fresh id, and a packet of type 0 ends a batch. The seeds
    /// are the exchanges of the protocol tests in this form.
    fn from_packets(overlap: bool, mut stream: &[u8]) -> Session {
        let mut batches = vec![Vec::new()];
        while let [a, b, c, d, rest @ ..] = stream {
            let len = (u32::from_be_bytes([*a, *b, *c, *d]) as usize).min(rest.len());
            let (body, next) = rest.split_at(len);
            stream = next;
            match body {
                [0, ..] => batches.push(Vec::new()),
                [kind, _, _, _, _, fields @ ..] => {
                    let batch = batches.last_mut().expect("one batch at least");
                    if batch.len() == MAX_BATCH {
                        batches.push(Vec::new());
                    }
                    let fields = fields.to_vec();
                    batches.last_mut().unwrap().push(Op::Raw {
                        kind: *kind,
                        fields,
                    });
                }
                _ => {}
            }
        }
        Session {
            overlap,
            first_id: 1,
            batches,
            garbage: None,
        }
    }
}

/// `FERRY_FUZZ_DEBUG=1`: print every request and the start of its reply
/// (for replaying a crash).
static DEBUG: LazyLock<bool> = LazyLock::new(|| std::env::var_os("FERRY_FUZZ_DEBUG").is_some());

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
});

async fn run(session: Session) {
    let world = World::reuse_or_create();
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let jail = Jail::open(&world.data, ACCOUNT).expect("the jail opens");
    let before = world.snapshot();
    let (client, server) = tokio::io::duplex(1 << 20);
    let slow_storage = match session.overlap {
        true => Duration::ZERO,
        false => Duration::from_secs(3600),
    };
    let serving = tokio::spawn(serve_with_slow_storage(
        server,
        jail,
        events_tx,
        slow_storage,
    ));
    let (mut from_server, mut to_server) = tokio::io::split(client);
    let mut client = Client::new(session.first_id);
    to_server.write_all(&encode_init(3)).await.unwrap();
    let version = client.read_replies(&mut from_server, 1).await;
    assert_eq!(version[0].kind(), packet::VERSION);

    let mut model = Model::new(&world);
    let mut sent_so_far = 0;
    for batch in &session.batches {
        let ops: Vec<&Op> = batch
            .iter()
            .take(MAX_BATCH.min(MAX_REQUESTS - sent_so_far))
            .collect();
        if ops.is_empty() {
            break;
        }
        sent_so_far += ops.len();
        let requests = client.requests(&ops);
        let replies = client
            .exchange(&mut to_server, &mut from_server, &requests)
            .await;
        for (sent, reply) in requests.iter().zip(&replies) {
            if *DEBUG {
                eprintln!(
                    "{} {:?} -> {:?}",
                    sent.id,
                    sent.request,
                    reply.raw.get(4..13)
                );
            }
            model.apply(&sent.request, reply);
        }
        model.check(&world);
        world.check_unchanged(&before);
    }

    let clean_end = session.garbage.is_none();
    if let Some(garbage) = &session.garbage {
        let _ = to_server.write_all(garbage).await;
    }
    let _ = to_server.shutdown().await;
    let late = client.read_to_end(&mut from_server).await;
    if clean_end {
        assert!(late.is_empty(), "replies nobody asked for: {late:?}");
    }
    let outcome = tokio::time::timeout(BATCH_TIMEOUT, serving)
        .await
        .expect("serve returns once the client has gone")
        .expect("serve does not panic");
    if clean_end {
        outcome.expect("a session that kept the protocol ends cleanly");
        model.check(&world);
    }
    world.check_unchanged(&before);
    world.check_no_upload_left();
    while let Ok(event) = events.try_recv() {
        let path = match &event {
            UploadEvent::Finished(f) => &f.path,
            UploadEvent::Partial(p) => &p.path,
        };
        assert!(
            path.starts_with("/inbound/"),
            "upload event outside /inbound: {event:?}"
        );
    }
    world.keep_for_next_run();
}

/// A request on its way: its id, what it asks, and its packet.
struct Sent {
    id: u32,
    request: Request,
    packet: Bytes,
}

impl Sent {
    /// The request with WRITE offsets and sizes kept below 1 MiB or above
    /// 2^63 (see the harness limit in the opening comment).
    fn within_harness_limits(self) -> Sent {
        let limit = |value: u64| match value {
            v if !(1 << 20..1 << 63).contains(&v) => v,
            v => v % (1 << 20),
        };
        let limit_attrs = |attrs: &Attrs| Attrs {
            size: attrs.size.map(limit),
            ..attrs.clone()
        };
        let request = match &self.request {
            Request::Write {
                handle,
                offset,
                data,
            } => Request::Write {
                handle: handle.clone(),
                offset: limit(*offset),
                data: data.clone(),
            },
            Request::Setstat { path, attrs } => Request::Setstat {
                path: path.clone(),
                attrs: limit_attrs(attrs),
            },
            Request::Fsetstat { handle, attrs } => Request::Fsetstat {
                handle: handle.clone(),
                attrs: limit_attrs(attrs),
            },
            _ => return self,
        };
        let packet = encode_request(self.id, &request).expect("encodable");
        Sent {
            id: self.id,
            request,
            packet,
        }
    }
}

/// The client side: ids, the handles given out, and the reply stream.
struct Client {
    next_id: u32,
    handles: Vec<Bytes>,
    unread: Vec<u8>,
}

impl Client {
    fn new(first_id: u32) -> Client {
        Client {
            next_id: first_id,
            handles: Vec::new(),
            unread: Vec::new(),
        }
    }

    /// The requests to send for `ops`, each with its own id.
    fn requests(&mut self, ops: &[&Op]) -> Vec<Sent> {
        let mut out = Vec::new();
        for op in ops {
            let id = self.next_id;
            let sent = match op {
                Op::Raw { kind, fields } => raw_request(*kind, id, fields),
                op => {
                    let request = self.request(op);
                    encode_request(id, &request).map(|packet| Sent {
                        id,
                        request,
                        packet,
                    })
                }
            }
            .map(|sent| sent.within_harness_limits());
            if let Some(sent) = sent {
                out.push(sent);
                self.next_id = id.wrapping_add(1);
            }
        }
        out
    }

    fn request(&self, op: &Op) -> Request {
        let p = |choice: &PathChoice| Bytes::from(path(choice));
        let h = |choice: &HandleChoice| self.handle(choice);
        match op {
            Op::Open { path, flags, attrs } => Request::Open {
                path: p(path),
                flags: open_flags(*flags),
                attrs: attrs_of(attrs),
            },
            Op::Close { handle } => Request::Close { handle: h(handle) },
            Op::Read {
                handle,
                offset,
                len,
            } => Request::Read {
                handle: h(handle),
                offset: *offset,
                len: *len,
            },
            Op::Write {
                handle,
                offset,
                data,
            } => Request::Write {
                handle: h(handle),
                offset: offset.value(),
                data: Bytes::copy_from_slice(&data[..data.len().min(64 * 1024)]),
            },
            Op::Lstat { path } => Request::Lstat { path: p(path) },
            Op::Stat { path } => Request::Stat { path: p(path) },
            Op::Fstat { handle } => Request::Fstat { handle: h(handle) },
            Op::Setstat { path, attrs } => Request::Setstat {
                path: p(path),
                attrs: attrs_of(attrs),
            },
            Op::Fsetstat { handle, attrs } => Request::Fsetstat {
                handle: h(handle),
                attrs: attrs_of(attrs),
            },
            Op::Opendir { path } => Request::Opendir { path: p(path) },
            Op::Readdir { handle } => Request::Readdir { handle: h(handle) },
            Op::Remove { path } => Request::Remove { path: p(path) },
            Op::Mkdir { path } => Request::Mkdir {
                path: p(path),
                attrs: Attrs::default(),
            },
            Op::Rmdir { path } => Request::Rmdir { path: p(path) },
            Op::Realpath { path } => Request::Realpath { path: p(path) },
            Op::Rename { from, to, posix } => match posix {
                true => Request::PosixRename {
                    from: p(from),
                    to: p(to),
                },
                false => Request::Rename {
                    from: p(from),
                    to: p(to),
                },
            },
            Op::Readlink { path } => Request::Readlink { path: p(path) },
            Op::Symlink { link, target } => Request::Symlink {
                link: p(link),
                target: p(target),
            },
            Op::Hardlink { from, to } => Request::Hardlink {
                from: p(from),
                to: p(to),
            },
            Op::Limits => Request::Limits,
            Op::Fsync { handle } => Request::Fsync { handle: h(handle) },
            Op::Statvfs { path } => Request::Statvfs { path: p(path) },
            Op::Raw { .. } => unreachable!("raw requests are built by raw_request"),
        }
    }

    fn handle(&self, choice: &HandleChoice) -> Bytes {
        match choice {
            HandleChoice::Given(n) => match self.handles.get(usize::from(*n)) {
                Some(handle) => handle.clone(),
                None => Bytes::copy_from_slice(&u32::from(*n % 8).to_be_bytes()),
            },
            HandleChoice::Raw(bytes) => Bytes::copy_from_slice(&bytes[..bytes.len().min(16)]),
        }
    }

    /// Sends the requests pipelined and returns their replies in request
    /// order, asserting that each came exactly once with its own id.
    async fn exchange(
        &mut self,
        to_server: &mut WriteHalf<DuplexStream>,
        from_server: &mut ReadHalf<DuplexStream>,
        requests: &[Sent],
    ) -> Vec<ReplyPacket> {
        let packets: Vec<u8> = requests
            .iter()
            .flat_map(|sent| sent.packet.to_vec())
            .collect();
        let write = async {
            to_server
                .write_all(&packets)
                .await
                .expect("the server reads requests");
        };
        let (_, replies) = tokio::join!(write, self.read_replies(from_server, requests.len()));
        let mut by_id: HashMap<u32, ReplyPacket> = HashMap::new();
        for reply in replies {
            let id = reply.id().expect("replies carry an id");
            assert!(
                requests.iter().any(|sent| sent.id == id),
                "a reply to id {id}, which was not asked: {reply:?}"
            );
            assert!(by_id.insert(id, reply).is_none(), "two replies to id {id}");
        }
        let ordered: Vec<ReplyPacket> = requests
            .iter()
            .map(|sent| by_id.remove(&sent.id).expect("one reply per request"))
            .collect();
        for reply in &ordered {
            if let Some(handle) = reply.handle() {
                self.handles.push(Bytes::copy_from_slice(handle));
            }
        }
        ordered
    }

    async fn read_replies(
        &mut self,
        from_server: &mut ReadHalf<DuplexStream>,
        wanted: usize,
    ) -> Vec<ReplyPacket> {
        let mut replies = Vec::new();
        let read = async {
            let mut buffer = vec![0u8; 64 * 1024];
            while replies.len() < wanted {
                let packets = split_replies(&mut self.unread, MAX_PACKET_LEN);
                replies.extend(packets.into_iter().inspect(no_canary));
                if replies.len() >= wanted {
                    break;
                }
                let n = from_server
                    .read(&mut buffer)
                    .await
                    .expect("the reply stream reads");
                assert!(
                    n > 0,
                    "the server ended the session with {} of {wanted} replies",
                    replies.len()
                );
                self.unread.extend_from_slice(&buffer[..n]);
            }
        };
        tokio::time::timeout(BATCH_TIMEOUT, read)
            .await
            .unwrap_or_else(|_| panic!("no reply within {BATCH_TIMEOUT:?}"));
        assert!(
            replies.len() == wanted,
            "more replies than requests: {replies:?}"
        );
        replies
    }

    async fn read_to_end(&mut self, from_server: &mut ReadHalf<DuplexStream>) -> Vec<ReplyPacket> {
        let mut rest = Vec::new();
        tokio::time::timeout(BATCH_TIMEOUT, from_server.read_to_end(&mut rest))
            .await
            .expect("the reply stream ends after the client does")
            .expect("the reply stream reads");
        self.unread.extend_from_slice(&rest);
        let late = split_replies(&mut self.unread, MAX_PACKET_LEN);
        late.iter().for_each(no_canary);
        late
    }
}

fn no_canary(reply: &ReplyPacket) {
    assert!(
        !reply.raw.windows(CANARY.len()).any(|w| w == CANARY),
        "a reply carries the canary's content: {reply:?}"
    );
}

/// A request of any type with any fields, when it decodes.
fn raw_request(kind: u8, id: u32, fields: &[u8]) -> Option<Sent> {
    let packet = client::request(kind, id, fields);
    match decode(packet.slice(4..)) {
        Ok(Incoming::Request { request, .. }) => Some(Sent {
            id,
            request,
            packet,
        }),
        _ => None,
    }
}

fn path(choice: &PathChoice) -> Vec<u8> {
    match choice {
        PathChoice::Known(n) => KNOWN_PATHS[usize::from(*n) % KNOWN_PATHS.len()].to_vec(),
        PathChoice::Joined { absolute, parts } => {
            let names: Vec<Vec<u8>> = parts
                .iter()
                .take(8)
                .map(|part| match part {
                    Part::Name(n) => KNOWN_NAMES[usize::from(*n) % KNOWN_NAMES.len()].to_vec(),
                    Part::Dot => b".".to_vec(),
                    Part::DotDot => b"..".to_vec(),
                    Part::Empty => Vec::new(),
                    Part::Raw(bytes) => bytes.clone(),
                })
                .collect();
            let joined = names.join(&b'/');
            match absolute {
                true => [b"/".as_slice(), &joined].concat(),
                false => joined,
            }
        }
        PathChoice::Raw(bytes) => bytes.clone(),
    }
}

fn open_flags(bits: u8) -> u32 {
    let flags = u32::from(bits & 0x3f);
    match bits & 0x40 {
        0 => flags,
        _ => flags | 0xff00_0000,
    }
}

impl Offset {
    fn value(self) -> u64 {
        match self {
            Offset::Small(n) => u64::from(n),
            Offset::Near(n) => u64::from(n % (1 << 20)),
            Offset::Beyond(n) => n | 1 << 63,
        }
    }
}

fn attrs_of(choice: &AttrChoice) -> Attrs {
    Attrs {
        size: choice.size.map(Offset::value),
        uid_gid: choice.uid_gid,
        permissions: choice.permissions,
        times: choice.times,
    }
}

/// The names under /inbound (relative, `/`-separated), as the successful
/// replies say they must be.
struct Model {
    inbound: BTreeSet<Vec<u8>>,
    /// Upload handles and the name each will get at CLOSE.
    uploads: HashMap<Vec<u8>, Vec<u8>>,
}

impl Model {
    fn new(world: &World) -> Model {
        Model {
            inbound: world.inbound_names(),
            uploads: HashMap::new(),
        }
    }

    fn apply(&mut self, request: &Request, reply: &ReplyPacket) {
        let ok = reply.status() == Some(status::OK);
        match request {
            Request::Open { path, flags, .. } if flags & open_flag::ANY_WRITE != 0 => {
                if let Some(handle) = reply.handle() {
                    let name = inbound_name(path).expect("uploads are opened in /inbound only");
                    self.uploads.insert(handle.to_vec(), name);
                }
            }
            Request::Close { handle } => {
                if let Some(name) = self.uploads.remove(&handle[..])
                    && ok
                {
                    self.inbound.insert(name);
                }
            }
            Request::Mkdir { path, .. } if ok => {
                self.inbound
                    .insert(inbound_name(path).expect("mkdir in /inbound only"));
            }
            Request::Remove { path } | Request::Rmdir { path } if ok => {
                let name = inbound_name(path).expect("removal in /inbound only");
                assert!(
                    self.inbound.remove(&name),
                    "removed a name that was not there"
                );
            }
            Request::Rename { from, to } | Request::PosixRename { from, to } if ok => {
                let from = inbound_name(from).expect("renames in /inbound only");
                let to = inbound_name(to).expect("renames in /inbound only");
                if from != to {
                    self.rename(&from, &to);
                }
            }
            _ => {}
        }
    }

    fn rename(&mut self, from: &[u8], to: &[u8]) {
        let under = |name: &[u8], top: &[u8]| {
            name == top || (name.starts_with(top) && name.get(top.len()) == Some(&b'/'))
        };
        self.inbound.retain(|name| !under(name, to));
        let moved: Vec<Vec<u8>> = self
            .inbound
            .iter()
            .filter(|n| under(n, from))
            .cloned()
            .collect();
        for name in moved {
            self.inbound.remove(&name);
            self.inbound.insert([to, &name[from.len()..]].concat());
        }
    }

    fn check(&self, world: &World) {
        let actual = world.inbound_names();
        let unexplained: Vec<_> = actual
            .difference(&self.inbound)
            .map(|n| String::from_utf8_lossy(n))
            .collect();
        let missing: Vec<_> = self
            .inbound
            .difference(&actual)
            .map(|n| String::from_utf8_lossy(n))
            .collect();
        assert!(
            unexplained.is_empty() && missing.is_empty(),
            "/inbound holds names no successful CLOSE, MKDIR or RENAME made: {unexplained:?}; \
             names the replies made are gone: {missing:?}"
        );
    }
}

/// `sub/x.csv` for `/inbound/sub/x.csv`.
fn inbound_name(raw: &[u8]) -> Option<Vec<u8>> {
    let path = VirtualPath::parse(raw).ok()?;
    if !path.is_in_inbound() || path.depth() < 2 {
        return None;
    }
    let names: Vec<&[u8]> = path.components().skip(1).collect();
    Some(names.join(&b'/'))
}

/// One data folder: the account's jail, filled, and the canary.
struct World {
    data: PathBuf,
    root: PathBuf,
    /// Paths outside the account root that must never be touched.
    canary: Vec<PathBuf>,
}

/// What is known of one entry without reading it.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    kind: u32,
    size: u64,
    mode: u32,
    times: [(i64, i64); 3],
}

/// A tree's entries and, for files, their content.
type Tree = BTreeMap<Vec<u8>, (Stat, Option<Vec<u8>>)>;

#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    canary: Vec<Option<Stat>>,
    fixed: Tree,
}

/// The previous run's world, kept for the next one.
static SPARE: Mutex<Option<World>> = Mutex::new(None);

impl World {
    /// The previous run's world with `/inbound` refilled, or a new one. Sound
    /// because a run that returns has checked everything else unchanged (the
    /// canary's `lstat` and the fixed folders, against a snapshot taken after
    /// the refill) and the upload folder empty; a run that fails aborts.
    fn reuse_or_create() -> World {
        let spare = SPARE.lock().unwrap().take();
        match spare {
            Some(world) if world.refill_inbound().is_ok() => world,
            // Dropping a world that could not be refilled removes it.
            _ => World::create(),
        }
    }

    fn keep_for_next_run(self) {
        *SPARE.lock().unwrap() = Some(self);
    }

    fn create() -> World {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        static STALE_REMOVED: Once = Once::new();
        STALE_REMOVED.call_once(remove_stale_worlds);
        let data = base_dir().join(format!(
            "{WORLD_PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&data);
        let root = Jail::create_layout(&data, ACCOUNT).expect("the layout is created");
        let canary_root = data.join("accounts/canary");
        write(canary_root.join("secret.txt"), CANARY).unwrap();
        write(canary_root.join("inbound/upload.csv"), CANARY).unwrap();
        write(data.join("outside.txt"), CANARY).unwrap();
        write(root.join("outbound/download.csv"), b"id,name\n3,download\n").unwrap();
        fs::create_dir_all(root.join("outbound/folder")).unwrap();
        write(root.join("archive/2024-01-01/old.csv"), b"id\n4\n").unwrap();
        write(root.join("reports/report.txt"), b"Result: ACCEPTED\n").unwrap();
        symlink("../canary", root.join("escape")).unwrap();
        symlink(data.join("outside.txt"), root.join("outbound/escape")).unwrap();
        let canary = vec![
            data.clone(),
            data.join("accounts"),
            data.join("uploading"),
            canary_root.clone(),
            canary_root.join("secret.txt"),
            canary_root.join("inbound"),
            canary_root.join("inbound/upload.csv"),
            data.join("outside.txt"),
        ];
        // Times far in the past: any read (relatime), write or new entry
        // afterwards moves them, even within one tick of the kernel's clock.
        let long_ago = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let times = FileTimes::new()
            .set_accessed(long_ago)
            .set_modified(long_ago);
        for path in &canary {
            fs::File::open(path)
                .and_then(|f| f.set_times(times))
                .expect("canary times set");
        }
        let world = World { data, root, canary };
        world.refill_inbound().expect("/inbound is filled");
        world
    }

    /// Empties `/inbound` and puts back what a run starts with: two files and
    /// symlinks to the canary account and to a file in it.
    fn refill_inbound(&self) -> std::io::Result<()> {
        let inbound = self.root.join("inbound");
        for entry in fs::read_dir(&inbound)? {
            let path = entry?.path();
            match fs::symlink_metadata(&path)?.is_dir() {
                true => fs::remove_dir_all(&path)?,
                false => fs::remove_file(&path)?,
            }
        }
        let canary_root = self.data.join("accounts/canary");
        write(inbound.join("existing.csv"), b"id,name\n1,existing\n")?;
        write(inbound.join("sub/nested.csv"), b"id\n2\n")?;
        symlink(&canary_root, inbound.join("escape"))?;
        symlink(canary_root.join("secret.txt"), inbound.join("escape-file"))
    }

    fn snapshot(&self) -> Snapshot {
        let canary = self
            .canary
            .iter()
            .map(|p| fs::symlink_metadata(p).ok().map(|m| stat(&m)))
            .collect();
        let mut fixed = Tree::new();
        let root_meta = fs::symlink_metadata(&self.root).expect("the root exists");
        fixed.insert(b"/".to_vec(), (fixed_stat(&root_meta), None));
        for entry in fs::read_dir(&self.root).expect("the root lists").flatten() {
            let name = entry.file_name().as_bytes().to_vec();
            if name == b"inbound" {
                // Its content is the model's business; its times and size move with it.
                let meta = fs::symlink_metadata(entry.path()).unwrap();
                let kind = Stat {
                    size: 0,
                    times: [(0, 0); 3],
                    ..stat(&meta)
                };
                fixed.insert(name, (kind, None));
                continue;
            }
            walk(&self.root, &entry.path(), true, &mut fixed);
        }
        Snapshot { canary, fixed }
    }

    fn check_unchanged(&self, before: &Snapshot) {
        let now = self.snapshot();
        for ((path, was), is) in self.canary.iter().zip(&before.canary).zip(&now.canary) {
            assert_eq!(was, is, "{} changed or was read", path.display());
        }
        if now.fixed != before.fixed {
            let changed: Vec<_> = before
                .fixed
                .iter()
                .filter(|(k, v)| now.fixed.get(*k) != Some(v))
                .map(|(k, _)| String::from_utf8_lossy(k))
                .chain(
                    now.fixed
                        .keys()
                        .filter(|k| !before.fixed.contains_key(*k))
                        .map(|k| String::from_utf8_lossy(k)),
                )
                .collect();
            panic!("/, /outbound, /archive or /reports changed: {changed:?}");
        }
    }

    fn inbound_names(&self) -> BTreeSet<Vec<u8>> {
        let inbound = self.root.join("inbound");
        let mut tree = Tree::new();
        walk(&inbound, &inbound, false, &mut tree);
        tree.into_keys().filter(|k| !k.is_empty()).collect()
    }

    fn check_no_upload_left(&self) {
        let left: Vec<_> = fs::read_dir(self.data.join("uploading").join(ACCOUNT))
            .expect("the upload folder lists")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            left.is_empty(),
            "uploads left behind after the session: {left:?}"
        );
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.data);
    }
}

fn stat(meta: &fs::Metadata) -> Stat {
    Stat {
        kind: meta.mode() & 0o170000,
        size: meta.len(),
        mode: meta.mode(),
        times: [
            (meta.atime(), meta.atime_nsec()),
            (meta.mtime(), meta.mtime_nsec()),
            (meta.ctime(), meta.ctime_nsec()),
        ],
    }
}

/// [`stat`] without the access time (reading a folder that may be read moves it).
fn fixed_stat(meta: &fs::Metadata) -> Stat {
    let mut stat = stat(meta);
    stat.times[0] = (0, 0);
    stat
}

/// Adds `path` and everything under it (never following a symlink) to `tree`,
/// keyed by the path relative to `base`; with `read`, file contents too.
fn walk(base: &Path, path: &Path, read: bool, tree: &mut Tree) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    let key = path
        .strip_prefix(base)
        .unwrap()
        .as_os_str()
        .as_bytes()
        .to_vec();
    let content = match meta.is_file() {
        true if read => fs::read(path).ok(),
        true => None,
        false if meta.file_type().is_symlink() => fs::read_link(path)
            .ok()
            .map(|t| t.as_os_str().as_bytes().to_vec()),
        false => None,
    };
    tree.insert(key, (fixed_stat(&meta), content));
    if meta.is_dir() {
        for child in fs::read_dir(path).into_iter().flatten().flatten() {
            walk(base, &child.path(), read, tree);
        }
    }
}

/// Writes a file, making its folder first.
fn write(path: PathBuf, content: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(path.parent().expect("a file in a folder"))?;
    fs::write(path, content)
}

const WORLD_PREFIX: &str = "ferry-fuzz-session-";

/// Removes the worlds of fuzzing processes that are gone (each process keeps
/// its world until it exits, and a crash leaves it behind).
fn remove_stale_worlds() {
    let Ok(entries) = fs::read_dir(base_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(WORLD_PREFIX)) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn base_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FERRY_FUZZ_DIR") {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    match shm.is_dir() {
        true => shm.to_owned(),
        false => std::env::temp_dir(),
    }
}
