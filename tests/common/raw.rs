//! A raw SSH/SFTP client for protocol tests: russh's client logs in with a
//! key and opens the `sftp` subsystem, then the test writes SFTP v3 packets
//! byte by byte (paths as bytes, so NUL and invalid UTF-8 can be sent) and
//! reads what comes back, with a timeout on every wait.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use russh::ChannelMsg;
use russh::client;
use russh::keys::PrivateKeyWithHashAlg;

// SFTP v3 packet types (draft-ietf-secsh-filexfer-02).
pub const SSH_FXP_INIT: u8 = 1;
pub const SSH_FXP_VERSION: u8 = 2;
pub const SSH_FXP_OPEN: u8 = 3;
pub const SSH_FXP_CLOSE: u8 = 4;
pub const SSH_FXP_READ: u8 = 5;
pub const SSH_FXP_WRITE: u8 = 6;
pub const SSH_FXP_LSTAT: u8 = 7;
pub const SSH_FXP_OPENDIR: u8 = 11;
pub const SSH_FXP_READDIR: u8 = 12;
pub const SSH_FXP_REMOVE: u8 = 13;
pub const SSH_FXP_MKDIR: u8 = 14;
pub const SSH_FXP_REALPATH: u8 = 16;
pub const SSH_FXP_STAT: u8 = 17;
pub const SSH_FXP_RENAME: u8 = 18;
pub const SSH_FXP_READLINK: u8 = 19;
pub const SSH_FXP_SYMLINK: u8 = 20;
pub const SSH_FXP_STATUS: u8 = 101;
pub const SSH_FXP_HANDLE: u8 = 102;
pub const SSH_FXP_DATA: u8 = 103;
pub const SSH_FXP_NAME: u8 = 104;
pub const SSH_FXP_ATTRS: u8 = 105;

pub const SSH_FX_OK: u32 = 0;
pub const SSH_FX_EOF: u32 = 1;
pub const SSH_FX_NO_SUCH_FILE: u32 = 2;
pub const SSH_FX_PERMISSION_DENIED: u32 = 3;
pub const SSH_FX_FAILURE: u32 = 4;
pub const SSH_FX_BAD_MESSAGE: u32 = 5;
pub const SSH_FX_OP_UNSUPPORTED: u32 = 8;

pub const SSH_FXF_READ: u32 = 0x01;
pub const SSH_FXF_WRITE: u32 = 0x02;
pub const SSH_FXF_CREAT: u32 = 0x08;
pub const SSH_FXF_TRUNC: u32 = 0x10;

/// The largest reply a test client accepts before calling it oversized
/// without reading it.
pub const MAX_ACCEPTED_REPLY: u32 = 16 * 1024 * 1024;

/// A client handler that accepts any host key (the tests talk to their own
/// server on 127.0.0.1).
pub struct AcceptAnyHostKey;

impl client::Handler for AcceptAnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

pub type Handle = client::Handle<AcceptAnyHostKey>;

/// Opens an SSH connection to 127.0.0.1:port (not logged in yet).
pub async fn connect(port: u16) -> Handle {
    let config = Arc::new(client::Config {
        inactivity_timeout: Some(Duration::from_secs(60)),
        ..Default::default()
    });
    tokio::time::timeout(
        Duration::from_secs(30),
        client::connect(config, ("127.0.0.1", port), AcceptAnyHostKey),
    )
    .await
    .expect("SSH connection and key exchange within 30 s")
    .expect("SSH connection and key exchange")
}

/// Logs in as `user` with the private key at `key`; panics unless accepted.
pub async fn login(port: u16, user: &str, key: &Path) -> Handle {
    let mut handle = connect(port).await;
    let key = russh::keys::load_secret_key(key, None).expect("load the client's private key");
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        handle.authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), None)),
    )
    .await
    .expect("public-key authentication answered within 30 s")
    .expect("public-key authentication ran");
    assert!(
        result.success(),
        "public-key login as {user} refused: {result:?}"
    );
    handle
}

/// Builds an SFTP packet body.
#[derive(Default, Clone)]
pub struct Body(pub Vec<u8>);

impl Body {
    pub fn new() -> Body {
        Body(Vec::new())
    }
    pub fn u8(mut self, v: u8) -> Body {
        self.0.push(v);
        self
    }
    pub fn u32(mut self, v: u32) -> Body {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(mut self, v: u64) -> Body {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn string(mut self, s: &[u8]) -> Body {
        self.0.extend_from_slice(&(s.len() as u32).to_be_bytes());
        self.0.extend_from_slice(s);
        self
    }
    pub fn raw(mut self, s: &[u8]) -> Body {
        self.0.extend_from_slice(s);
        self
    }
}

/// A framed packet: u32 length, type, body.
pub fn packet(ty: u8, body: &Body) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.0.len() + 5);
    out.extend_from_slice(&((body.0.len() + 1) as u32).to_be_bytes());
    out.push(ty);
    out.extend_from_slice(&body.0);
    out
}

/// Reads fields out of a reply.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, pos: 0 }
    }
    pub fn u32(&mut self) -> Option<u32> {
        let b = self.data.get(self.pos..self.pos + 4)?;
        self.pos += 4;
        Some(u32::from_be_bytes(b.try_into().ok()?))
    }
    pub fn u64(&mut self) -> Option<u64> {
        let b = self.data.get(self.pos..self.pos + 8)?;
        self.pos += 8;
        Some(u64::from_be_bytes(b.try_into().ok()?))
    }
    pub fn string(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        let b = self.data.get(self.pos..self.pos.checked_add(len)?)?;
        self.pos += len;
        Some(b)
    }
    /// Skips an ATTRS structure.
    pub fn attrs(&mut self) -> Option<()> {
        let flags = self.u32()?;
        if flags & 0x1 != 0 {
            self.u64()?;
        }
        if flags & 0x2 != 0 {
            self.u32()?;
            self.u32()?;
        }
        if flags & 0x4 != 0 {
            self.u32()?;
        }
        if flags & 0x8 != 0 {
            self.u32()?;
            self.u32()?;
        }
        if flags & 0x8000_0000 != 0 {
            let n = self.u32()?;
            for _ in 0..n {
                self.string()?;
                self.string()?;
            }
        }
        Some(())
    }
    pub fn rest(&self) -> &'a [u8] {
        &self.data[self.pos.min(self.data.len())..]
    }
}

/// What came back from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A whole packet: type and body (the bytes after the type).
    Packet { ty: u8, body: Vec<u8> },
    /// A packet whose length field exceeds MAX_ACCEPTED_REPLY (not read).
    Oversized { len: u32 },
    /// The channel reached EOF or closed (with `partial` bytes of an
    /// unfinished packet left over).
    Closed { partial: usize },
    /// Nothing within the timeout.
    TimedOut,
}

impl Reply {
    pub fn ty(&self) -> Option<u8> {
        match self {
            Reply::Packet { ty, .. } => Some(*ty),
            _ => None,
        }
    }

    /// The request id of a reply packet (the first u32 of every reply but VERSION).
    pub fn id(&self) -> Option<u32> {
        match self {
            Reply::Packet { body, .. } => Reader::new(body).u32(),
            _ => None,
        }
    }

    /// (id, code, message) of a STATUS reply.
    pub fn status(&self) -> Option<(u32, u32, String)> {
        match self {
            Reply::Packet {
                ty: SSH_FXP_STATUS,
                body,
            } => {
                let mut r = Reader::new(body);
                let id = r.u32()?;
                let code = r.u32()?;
                let msg = r
                    .string()
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .unwrap_or_default();
                Some((id, code, msg))
            }
            _ => None,
        }
    }

    /// The handle of a HANDLE reply.
    pub fn handle(&self) -> Option<Vec<u8>> {
        match self {
            Reply::Packet {
                ty: SSH_FXP_HANDLE,
                body,
            } => {
                let mut r = Reader::new(body);
                r.u32()?;
                r.string().map(|h| h.to_vec())
            }
            _ => None,
        }
    }

    /// The data of a DATA reply.
    pub fn data(&self) -> Option<Vec<u8>> {
        match self {
            Reply::Packet {
                ty: SSH_FXP_DATA,
                body,
            } => {
                let mut r = Reader::new(body);
                r.u32()?;
                r.string().map(|d| d.to_vec())
            }
            _ => None,
        }
    }

    /// The file names of a NAME reply (as bytes).
    pub fn names(&self) -> Option<Vec<Vec<u8>>> {
        match self {
            Reply::Packet {
                ty: SSH_FXP_NAME,
                body,
            } => {
                let mut r = Reader::new(body);
                r.u32()?;
                let n = r.u32()?;
                let mut names = Vec::new();
                for _ in 0..n {
                    names.push(r.string()?.to_vec());
                    r.string()?;
                    r.attrs()?;
                }
                Some(names)
            }
            _ => None,
        }
    }
}

/// An `sftp` subsystem channel spoken to byte by byte.
pub struct RawSftp {
    channel: russh::Channel<client::Msg>,
    buf: Vec<u8>,
    eof: bool,
    closed: bool,
    /// Bytes the server sent on the channel's stderr.
    pub stderr: Vec<u8>,
    next_id: u32,
}

impl RawSftp {
    /// Opens a session channel on a logged-in connection and starts the
    /// `sftp` subsystem (no INIT sent yet).
    pub async fn start(handle: &Handle) -> RawSftp {
        let mut channel =
            tokio::time::timeout(Duration::from_secs(30), handle.channel_open_session())
                .await
                .expect("session channel opened within 30 s")
                .expect("session channel opened");
        channel
            .request_subsystem(true, "sftp")
            .await
            .expect("send the subsystem request");
        loop {
            match tokio::time::timeout(Duration::from_secs(30), channel.wait()).await {
                Ok(Some(ChannelMsg::Success)) => break,
                Ok(Some(ChannelMsg::Failure)) => panic!("the server refused the sftp subsystem"),
                Ok(Some(ChannelMsg::WindowAdjusted { .. })) => continue,
                Ok(Some(other)) => {
                    panic!("unexpected answer to the sftp subsystem request: {other:?}")
                }
                Ok(None) => panic!("the channel closed instead of starting the sftp subsystem"),
                Err(_) => panic!("no answer to the sftp subsystem request within 30 s"),
            }
        }
        RawSftp {
            channel,
            buf: Vec::new(),
            eof: false,
            closed: false,
            stderr: Vec::new(),
            next_id: 1,
        }
    }

    /// A fresh request id.
    pub fn id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    /// Sends bytes as they are. Returns false if the channel refused them
    /// (already closed) or they could not be sent within 10 s.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> bool {
        matches!(
            tokio::time::timeout(Duration::from_secs(10), self.channel.data(bytes)).await,
            Ok(Ok(()))
        )
    }

    /// Sends one framed packet.
    pub async fn send(&mut self, ty: u8, body: Body) -> bool {
        self.send_raw(&packet(ty, &body)).await
    }

    /// Sends EOF on the channel (the client will write no more).
    pub async fn send_eof(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.channel.eof()).await;
    }

    /// Waits up to `timeout` for the next whole reply.
    pub async fn recv(&mut self, timeout: Duration) -> Reply {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.buf.len() >= 4 {
                let len = u32::from_be_bytes(self.buf[..4].try_into().unwrap());
                if len > MAX_ACCEPTED_REPLY {
                    return Reply::Oversized { len };
                }
                let total = 4 + len as usize;
                if len >= 1 && self.buf.len() >= total {
                    let pkt: Vec<u8> = self.buf.drain(..total).collect();
                    return Reply::Packet {
                        ty: pkt[4],
                        body: pkt[5..].to_vec(),
                    };
                }
                if len == 0 {
                    // Not a valid SFTP packet; report it as a 0-type packet.
                    self.buf.drain(..4);
                    return Reply::Packet {
                        ty: 0,
                        body: Vec::new(),
                    };
                }
            }
            if self.closed || self.eof {
                // After EOF no more data can come.
                return Reply::Closed {
                    partial: self.buf.len(),
                };
            }
            let msg = match tokio::time::timeout_at(deadline, self.channel.wait()).await {
                Err(_) => return Reply::TimedOut,
                Ok(m) => m,
            };
            match msg {
                Some(ChannelMsg::Data { data }) => self.buf.extend_from_slice(&data),
                Some(ChannelMsg::ExtendedData { data, .. }) => self.stderr.extend_from_slice(&data),
                Some(ChannelMsg::Eof) => self.eof = true,
                Some(ChannelMsg::Close) | None => self.closed = true,
                Some(_) => {}
            }
        }
    }

    /// Waits until the channel is closed (or EOF) and returns true, or false
    /// if it is still open after `timeout`. Packets received meanwhile are
    /// returned too.
    pub async fn wait_closed(&mut self, timeout: Duration) -> (bool, Vec<Reply>) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                Reply::Closed { .. } => return (true, seen),
                Reply::TimedOut => return (false, seen),
                other @ Reply::Oversized { .. } => {
                    seen.push(other);
                    return (false, seen);
                }
                other => seen.push(other),
            }
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed || self.eof
    }

    /// Sends INIT (version 3) and expects VERSION.
    pub async fn init(&mut self) -> u32 {
        assert!(
            self.send(SSH_FXP_INIT, Body::new().u32(3)).await,
            "send INIT"
        );
        match self.recv(Duration::from_secs(10)).await {
            Reply::Packet {
                ty: SSH_FXP_VERSION,
                body,
            } => Reader::new(&body).u32().expect("VERSION carries a version"),
            other => panic!("expected VERSION after INIT, got {other:?}"),
        }
    }

    /// Sends a request and waits for its reply; panics if the reply does not
    /// carry the request's id.
    pub async fn request(&mut self, ty: u8, body_after_id: Body) -> Reply {
        let id = self.id();
        let body = Body::new().u32(id).raw(&body_after_id.0);
        if !self.send(ty, body).await {
            return Reply::Closed { partial: 0 };
        }
        let reply = self.recv(Duration::from_secs(20)).await;
        if let Reply::Packet { .. } = &reply {
            assert_eq!(
                reply.id(),
                Some(id),
                "reply to request type {ty} carries another id: {reply:?}"
            );
        }
        reply
    }

    pub async fn realpath(&mut self, path: &[u8]) -> Reply {
        self.request(SSH_FXP_REALPATH, Body::new().string(path))
            .await
    }

    pub async fn stat(&mut self, path: &[u8]) -> Reply {
        self.request(SSH_FXP_STAT, Body::new().string(path)).await
    }

    pub async fn lstat(&mut self, path: &[u8]) -> Reply {
        self.request(SSH_FXP_LSTAT, Body::new().string(path)).await
    }

    pub async fn open(&mut self, path: &[u8], pflags: u32) -> Reply {
        self.request(SSH_FXP_OPEN, Body::new().string(path).u32(pflags).u32(0))
            .await
    }

    pub async fn opendir(&mut self, path: &[u8]) -> Reply {
        self.request(SSH_FXP_OPENDIR, Body::new().string(path))
            .await
    }

    pub async fn mkdir(&mut self, path: &[u8]) -> Reply {
        self.request(SSH_FXP_MKDIR, Body::new().string(path).u32(0))
            .await
    }

    pub async fn remove(&mut self, path: &[u8]) -> Reply {
        self.request(SSH_FXP_REMOVE, Body::new().string(path)).await
    }

    pub async fn rename(&mut self, from: &[u8], to: &[u8]) -> Reply {
        self.request(SSH_FXP_RENAME, Body::new().string(from).string(to))
            .await
    }

    pub async fn read(&mut self, handle: &[u8], offset: u64, len: u32) -> Reply {
        self.request(
            SSH_FXP_READ,
            Body::new().string(handle).u64(offset).u32(len),
        )
        .await
    }

    pub async fn write(&mut self, handle: &[u8], offset: u64, data: &[u8]) -> Reply {
        self.request(
            SSH_FXP_WRITE,
            Body::new().string(handle).u64(offset).string(data),
        )
        .await
    }

    pub async fn close(&mut self, handle: &[u8]) -> Reply {
        self.request(SSH_FXP_CLOSE, Body::new().string(handle))
            .await
    }

    /// Lists a directory: every name READDIR returns until EOF.
    pub async fn list(&mut self, path: &[u8]) -> Result<Vec<Vec<u8>>, Reply> {
        let opened = self.opendir(path).await;
        let Some(handle) = opened.handle() else {
            return Err(opened);
        };
        let mut names = Vec::new();
        loop {
            let r = self
                .request(SSH_FXP_READDIR, Body::new().string(&handle))
                .await;
            if let Some(batch) = r.names() {
                names.extend(batch);
                continue;
            }
            match r.status() {
                Some((_, SSH_FX_EOF, _)) => break,
                _ => return Err(r),
            }
        }
        self.close(&handle).await;
        Ok(names)
    }

    /// Reads a whole file through an opened handle, in 32 KiB requests.
    pub async fn read_all(&mut self, handle: &[u8]) -> Result<Vec<u8>, Reply> {
        let mut out = Vec::new();
        loop {
            let r = self.read(handle, out.len() as u64, 32 * 1024).await;
            if let Some(d) = r.data() {
                if d.is_empty() {
                    return Err(r);
                }
                out.extend(d);
                continue;
            }
            match r.status() {
                Some((_, SSH_FX_EOF, _)) => return Ok(out),
                _ => return Err(r),
            }
        }
    }
}

/// A small multi-threaded tokio runtime for one test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs `fut` on a fresh runtime, panicking if it takes longer than
/// `timeout` (no raw-protocol test may hang).
pub fn block_on<F: std::future::Future>(timeout: Duration, fut: F) -> F::Output {
    runtime().block_on(async move {
        tokio::time::timeout(timeout, fut)
            .await
            .unwrap_or_else(|_| {
                panic!("the raw SSH/SFTP exchange did not finish within {timeout:?}")
            })
    })
}

/// Opens an SSH connection to 127.0.0.1:`port` from the local address
/// `from` with `config`; `Err` when the server refused the connection, closed
/// it, or the key exchange failed (all within 30 s).
pub async fn connect_from(
    from: std::net::Ipv4Addr,
    port: u16,
    config: Arc<client::Config>,
) -> Result<Handle, String> {
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(std::net::SocketAddr::from((from, 0)))
        .map_err(|e| format!("bind {from}: {e}"))?;
    let stream = tokio::time::timeout(
        Duration::from_secs(10),
        socket.connect(std::net::SocketAddr::from(([127, 0, 0, 1], port))),
    )
    .await
    .map_err(|_| "TCP connect timed out".to_owned())?
    .map_err(|e| format!("TCP connect: {e}"))?;
    tokio::time::timeout(
        Duration::from_secs(30),
        client::connect_stream(config, stream, AcceptAnyHostKey),
    )
    .await
    .map_err(|_| "no SSH handshake within 30 s".to_owned())?
    .map_err(|e| format!("SSH handshake: {e}"))
}

/// One public-key login attempt as `user` with the private key at `key`
/// from `from`: `Ok(true)` logged in, `Ok(false)` refused, `Err` when the
/// connection itself failed or was refused. The connection is closed
/// afterwards either way unless logged in (then the handle is returned
/// through `keep`).
pub async fn try_login_from(
    from: std::net::Ipv4Addr,
    port: u16,
    user: &str,
    key: &Path,
) -> Result<Option<Handle>, String> {
    let config = Arc::new(client::Config {
        inactivity_timeout: Some(Duration::from_secs(60)),
        ..Default::default()
    });
    let mut handle = connect_from(from, port, config).await?;
    let key = russh::keys::load_secret_key(key, None).expect("load the client's private key");
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        handle.authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), None)),
    )
    .await
    .map_err(|_| "no answer to the login within 30 s".to_owned())?
    .map_err(|e| format!("login: {e}"))?;
    if result.success() {
        Ok(Some(handle))
    } else {
        let _ = handle
            .disconnect(russh::Disconnect::ByApplication, "", "")
            .await;
        Ok(None)
    }
}
