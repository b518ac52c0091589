//! A raw-bytes SFTP client for the protocol tests: it drives
//! `ferry_sftp::protocol::serve` over an in-memory duplex stream, so every
//! byte on the wire is under the test's control.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use bytes::{Buf, Bytes};
use ferry_sftp::jail::Jail;
use ferry_sftp::protocol::budget::{Budget, Limits};
use ferry_sftp::protocol::codec::{Attrs, client, packet, status};
use ferry_sftp::protocol::{ProtocolError, SLOW_STORAGE, serve_budgeted};
use ferry_sftp::upload::UploadEvent;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub const ACCOUNT: &str = "district";

/// Runs a test body with a deadline, so no test can hang.
pub async fn bounded<T>(body: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), body)
        .await
        .expect("test timed out")
}

/// The server side of a test session.
pub struct Server {
    pub data: tempfile::TempDir,
    pub root: PathBuf,
    pub upload_dir: PathBuf,
    pub events: mpsc::UnboundedReceiver<UploadEvent>,
    pub task: JoinHandle<Result<(), ProtocolError>>,
}

impl Server {
    /// Waits for `serve` to return.
    pub async fn finished(&mut self) -> Result<(), ProtocolError> {
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("serve did not return")
            .expect("serve panicked")
    }

    /// The next upload event, waiting a little for it.
    pub async fn next_event(&mut self) -> UploadEvent {
        tokio::time::timeout(Duration::from_secs(5), self.events.recv())
            .await
            .expect("no upload event")
            .expect("event channel closed")
    }

    pub fn no_more_events(&mut self) -> bool {
        self.events.try_recv().is_err()
    }
}

/// A decoded reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub kind: u8,
    pub id: u32,
    pub body: Bytes,
}

impl Reply {
    /// (code, message) of a STATUS reply.
    pub fn status(&self) -> (u32, String) {
        assert_eq!(self.kind, packet::STATUS, "expected STATUS, got {self:?}");
        let mut body = self.body.clone();
        let code = body.get_u32();
        let message = take_string(&mut body);
        (code, String::from_utf8(message.to_vec()).unwrap())
    }

    pub fn handle(&self) -> Bytes {
        assert_eq!(
            self.kind,
            packet::HANDLE,
            "expected HANDLE, got {:?}",
            self.status_or_kind()
        );
        take_string(&mut self.body.clone())
    }

    pub fn data(&self) -> Bytes {
        assert_eq!(
            self.kind,
            packet::DATA,
            "expected DATA, got {:?}",
            self.status_or_kind()
        );
        take_string(&mut self.body.clone())
    }

    /// (filename, longname) of each entry of a NAME reply.
    pub fn names(&self) -> Vec<(Vec<u8>, String)> {
        assert_eq!(
            self.kind,
            packet::NAME,
            "expected NAME, got {:?}",
            self.status_or_kind()
        );
        let mut body = self.body.clone();
        let count = body.get_u32();
        (0..count)
            .map(|_| {
                let name = take_string(&mut body).to_vec();
                let long = String::from_utf8_lossy(&take_string(&mut body)).into_owned();
                skip_attrs(&mut body);
                (name, long)
            })
            .collect()
    }

    /// (size, mtime) of an ATTRS reply.
    pub fn size_and_mtime(&self) -> (u64, u32) {
        assert_eq!(
            self.kind,
            packet::ATTRS,
            "expected ATTRS, got {:?}",
            self.status_or_kind()
        );
        let mut body = self.body.clone();
        let flags = body.get_u32();
        assert_eq!(flags & 0x0f, 0x0f);
        let size = body.get_u64();
        body.advance(12);
        body.advance(4);
        (size, body.get_u32())
    }

    pub fn status_or_kind(&self) -> String {
        match self.kind {
            packet::STATUS => format!("{:?}", self.status()),
            kind => format!("packet type {kind}"),
        }
    }
}

fn take_string(body: &mut Bytes) -> Bytes {
    let len = body.get_u32() as usize;
    body.split_to(len)
}

fn skip_attrs(body: &mut Bytes) {
    let flags = body.get_u32();
    let sizes = [(0x1, 8), (0x2, 8), (0x4, 4), (0x8, 8)];
    for (flag, size) in sizes {
        if flags & flag != 0 {
            body.advance(size);
        }
    }
}

/// The client side: raw packets in, raw packets out.
pub struct Client {
    pub stream: DuplexStream,
    next_id: u32,
}

/// A data dir with one account, and `serve` running on a duplex stream.
pub async fn start_without_init() -> (Client, Server) {
    start_without_init_with(SLOW_STORAGE).await
}

/// Like `start_without_init`, with the slow-storage threshold given
/// (`Duration::ZERO`: every data request overlaps on the blocking pool).
pub async fn start_without_init_with(slow_storage: Duration) -> (Client, Server) {
    let data = tempfile::tempdir().unwrap();
    let budget = Budget::standalone(Limits::default());
    serve_in(data, budget, slow_storage)
}

/// A session of the account in `data` (created if needed) under `budget`,
/// after INIT/VERSION. Sessions given clones of one budget share its usage,
/// like sessions of one account on one node.
pub async fn start_in(data: tempfile::TempDir, budget: Budget) -> (Client, Server) {
    init(serve_in(data, budget, SLOW_STORAGE)).await
}

fn serve_in(data: tempfile::TempDir, budget: Budget, slow_storage: Duration) -> (Client, Server) {
    let root = Jail::create_layout(data.path(), ACCOUNT).unwrap();
    let jail = Jail::open(data.path(), ACCOUNT).unwrap();
    let upload_dir = jail.upload_dir().to_owned();
    let (events_tx, events) = mpsc::unbounded_channel();
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let task = tokio::spawn(serve_budgeted(
        theirs,
        jail,
        events_tx,
        budget,
        slow_storage,
    ));
    (
        Client {
            stream: ours,
            next_id: 1000,
        },
        Server {
            data,
            root,
            upload_dir,
            events,
            task,
        },
    )
}

/// Like `start_without_init`, after INIT/VERSION.
pub async fn start() -> (Client, Server) {
    init(start_without_init().await).await
}

/// Like `start`, as on storage with latency: data requests overlap on the
/// blocking pool from the first one.
pub async fn start_on_slow_storage() -> (Client, Server) {
    init(start_without_init_with(Duration::ZERO).await).await
}

async fn init((mut client, server): (Client, Server)) -> (Client, Server) {
    client
        .send_raw(&[0, 0, 0, 5, packet::INIT, 0, 0, 0, 3])
        .await;
    let version = client.recv().await.expect("no VERSION");
    assert_eq!(version.kind, packet::VERSION);
    (client, server)
}

impl Client {
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Sends a request; returns its id.
    pub async fn send(&mut self, kind: u8, fields: &[u8]) -> u32 {
        self.next_id += 1;
        let id = self.next_id;
        self.send_raw(&client::request(kind, id, fields)).await;
        id
    }

    /// The next packet from the server, `None` when it closed the stream.
    pub async fn recv(&mut self) -> Option<Reply> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).await.ok()?;
        let len = u32::from_be_bytes(len) as usize;
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).await.ok()?;
        let mut body = Bytes::from(body);
        let kind = body.get_u8();
        let id = if kind == packet::VERSION {
            0
        } else {
            body.get_u32()
        };
        Some(Reply { kind, id, body })
    }

    /// Sends a request and returns its reply, checking the id.
    pub async fn call(&mut self, kind: u8, fields: &[u8]) -> Reply {
        let id = self.send(kind, fields).await;
        let reply = self.recv().await.expect("server closed the stream");
        assert_eq!(reply.id, id, "reply carries another request's id");
        reply
    }

    /// True when the server has closed its side (EOF, nothing more to read).
    pub async fn closed_by_server(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.stream.read_to_end(&mut rest)).await,
            Ok(Ok(0))
        )
    }

    pub async fn open(&mut self, path: &[u8], flags: u32) -> Reply {
        let fields = [
            client::string(path),
            flags.to_be_bytes().to_vec(),
            client::attrs(&Attrs::default()),
        ]
        .concat();
        self.call(packet::OPEN, &fields).await
    }

    pub async fn write(&mut self, handle: &[u8], offset: u64, data: &[u8]) -> Reply {
        self.call(packet::WRITE, &write_fields(handle, offset, data))
            .await
    }

    pub async fn read(&mut self, handle: &[u8], offset: u64, len: u32) -> Reply {
        let fields = [
            client::string(handle),
            offset.to_be_bytes().to_vec(),
            len.to_be_bytes().to_vec(),
        ]
        .concat();
        self.call(packet::READ, &fields).await
    }

    pub async fn close(&mut self, handle: &[u8]) -> Reply {
        self.call(packet::CLOSE, &client::string(handle)).await
    }

    /// A request whose only field is a path (STAT, REMOVE, OPENDIR, ...).
    pub async fn path_request(&mut self, kind: u8, path: &[u8]) -> Reply {
        self.call(kind, &client::string(path)).await
    }

    pub async fn mkdir(&mut self, path: &[u8]) -> Reply {
        self.call(
            packet::MKDIR,
            &[client::string(path), client::attrs(&Attrs::default())].concat(),
        )
        .await
    }

    pub async fn setstat(&mut self, path: &[u8], attrs: &Attrs) -> Reply {
        self.call(
            packet::SETSTAT,
            &[client::string(path), client::attrs(attrs)].concat(),
        )
        .await
    }

    pub async fn rename(&mut self, from: &[u8], to: &[u8]) -> Reply {
        self.call(
            packet::RENAME,
            &[client::string(from), client::string(to)].concat(),
        )
        .await
    }

    pub async fn extended(&mut self, name: &str, fields: &[u8]) -> Reply {
        self.call(
            packet::EXTENDED,
            &[client::string(name.as_bytes()), fields.to_vec()].concat(),
        )
        .await
    }

    pub async fn posix_rename(&mut self, from: &[u8], to: &[u8]) -> Reply {
        self.extended(
            "posix-rename@openssh.com",
            &[client::string(from), client::string(to)].concat(),
        )
        .await
    }

    /// Opens, writes `content` and closes; returns the CLOSE status.
    pub async fn upload(&mut self, path: &[u8], content: &[u8]) -> (u32, String) {
        let opened = self.open(path, WRITE_CREATE_TRUNCATE).await;
        if opened.kind == packet::STATUS {
            return opened.status();
        }
        let handle = opened.handle();
        assert_eq!(self.write(&handle, 0, content).await.status().0, status::OK);
        self.close(&handle).await.status()
    }

    /// Lists a folder: every (name, longname) until EOF.
    pub async fn list(&mut self, path: &[u8]) -> Vec<(Vec<u8>, String)> {
        let handle = self.path_request(packet::OPENDIR, path).await.handle();
        let mut entries = Vec::new();
        loop {
            let reply = self.call(packet::READDIR, &client::string(&handle)).await;
            if reply.kind == packet::STATUS {
                assert_eq!(reply.status().0, status::EOF);
                break;
            }
            entries.extend(reply.names());
        }
        assert_eq!(self.close(&handle).await.status().0, status::OK);
        entries
    }
}

pub fn write_fields(handle: &[u8], offset: u64, data: &[u8]) -> Vec<u8> {
    [
        client::string(handle),
        offset.to_be_bytes().to_vec(),
        client::string(data),
    ]
    .concat()
}

/// WRITE | CREAT | TRUNC, what OpenSSH's `put` sends.
pub const WRITE_CREATE_TRUNCATE: u32 = 0x02 | 0x08 | 0x10;
pub const READ_ONLY: u32 = 0x01;

/// A relay for `sftp -D "python3 relay.py PORT"`: connects the OpenSSH
/// client's stdin/stdout to a TCP port where `serve` listens (no SSH).
pub const PYTHON_RELAY: &str = r#"
import os, socket, sys, threading
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
def up():
    while True:
        d = os.read(0, 1 << 20)
        if not d:
            s.shutdown(socket.SHUT_WR)
            return
        s.sendall(d)
threading.Thread(target=up, daemon=True).start()
while True:
    d = s.recv(1 << 20)
    if not d:
        break
    v = memoryview(d)
    while v:
        v = v[os.write(1, v):]
"#;
