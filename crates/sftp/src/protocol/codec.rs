//! SFTP v3 wire format (draft-ietf-secsh-filexfer-02): framing, request
//! decoding and reply encoding.
//!
//! Exists because russh-sftp's codec converts paths lossily to UTF-8 and
//! keeps reading after a bad length. Here every packet is framed by its u32
//! length, capped at [`MAX_PACKET_LEN`]; paths and names stay raw bytes; and
//! any framing or decoding error is final for the session (the caller closes
//! the channel) so one bad packet can never desynchronise the stream.
//!
//! This module does no I/O on files and never logs.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest incoming packet (the length field's value), as OpenSSH.
pub const MAX_PACKET_LEN: usize = 256 * 1024;
/// Largest READ reply payload and WRITE payload (OpenSSH: 261120), so a DATA
/// reply stays within [`MAX_PACKET_LEN`].
pub const MAX_DATA_LEN: u32 = (MAX_PACKET_LEN - 1024) as u32;
/// The protocol version Ferry speaks.
pub const SFTP_VERSION: u32 = 3;

/// Packet types (draft-02 section 3, plus the extended ones).
pub mod packet {
    pub const INIT: u8 = 1;
    pub const VERSION: u8 = 2;
    pub const OPEN: u8 = 3;
    pub const CLOSE: u8 = 4;
    pub const READ: u8 = 5;
    pub const WRITE: u8 = 6;
    pub const LSTAT: u8 = 7;
    pub const FSTAT: u8 = 8;
    pub const SETSTAT: u8 = 9;
    pub const FSETSTAT: u8 = 10;
    pub const OPENDIR: u8 = 11;
    pub const READDIR: u8 = 12;
    pub const REMOVE: u8 = 13;
    pub const MKDIR: u8 = 14;
    pub const RMDIR: u8 = 15;
    pub const REALPATH: u8 = 16;
    pub const STAT: u8 = 17;
    pub const RENAME: u8 = 18;
    pub const READLINK: u8 = 19;
    pub const SYMLINK: u8 = 20;
    pub const STATUS: u8 = 101;
    pub const HANDLE: u8 = 102;
    pub const DATA: u8 = 103;
    pub const NAME: u8 = 104;
    pub const ATTRS: u8 = 105;
    pub const EXTENDED: u8 = 200;
    pub const EXTENDED_REPLY: u8 = 201;
}

/// Status codes (draft-02 section 7).
pub mod status {
    pub const OK: u32 = 0;
    pub const EOF: u32 = 1;
    pub const NO_SUCH_FILE: u32 = 2;
    pub const PERMISSION_DENIED: u32 = 3;
    pub const FAILURE: u32 = 4;
    pub const BAD_MESSAGE: u32 = 5;
    pub const OP_UNSUPPORTED: u32 = 8;
}

/// OPEN flags (draft-02 section 6.3).
pub mod open_flag {
    pub const READ: u32 = 0x01;
    pub const WRITE: u32 = 0x02;
    pub const APPEND: u32 = 0x04;
    pub const CREAT: u32 = 0x08;
    pub const TRUNC: u32 = 0x10;
    pub const EXCL: u32 = 0x20;
    /// Any flag that makes the open an upload.
    pub const ANY_WRITE: u32 = WRITE | APPEND | CREAT | TRUNC;
}

/// Attribute flags (draft-02 section 5).
mod attr_flag {
    pub const SIZE: u32 = 0x01;
    pub const UIDGID: u32 = 0x02;
    pub const PERMISSIONS: u32 = 0x04;
    pub const ACMODTIME: u32 = 0x08;
    pub const EXTENDED: u32 = 0x8000_0000;
}

/// File attributes; absent fields are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    pub size: Option<u64>,
    pub uid_gid: Option<(u32, u32)>,
    pub permissions: Option<u32>,
    /// (atime, mtime), seconds since the epoch.
    pub times: Option<(u32, u32)>,
}

/// A client request, decoded. Paths, names and handles are raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Open {
        path: Bytes,
        flags: u32,
        attrs: Attrs,
    },
    Close {
        handle: Bytes,
    },
    Read {
        handle: Bytes,
        offset: u64,
        len: u32,
    },
    Write {
        handle: Bytes,
        offset: u64,
        data: Bytes,
    },
    Lstat {
        path: Bytes,
    },
    Fstat {
        handle: Bytes,
    },
    Setstat {
        path: Bytes,
        attrs: Attrs,
    },
    Fsetstat {
        handle: Bytes,
        attrs: Attrs,
    },
    Opendir {
        path: Bytes,
    },
    Readdir {
        handle: Bytes,
    },
    Remove {
        path: Bytes,
    },
    Mkdir {
        path: Bytes,
        attrs: Attrs,
    },
    Rmdir {
        path: Bytes,
    },
    Realpath {
        path: Bytes,
    },
    Stat {
        path: Bytes,
    },
    Rename {
        from: Bytes,
        to: Bytes,
    },
    Readlink {
        path: Bytes,
    },
    Symlink {
        link: Bytes,
        target: Bytes,
    },
    PosixRename {
        from: Bytes,
        to: Bytes,
    },
    Limits,
    Fsync {
        handle: Bytes,
    },
    Statvfs {
        path: Bytes,
    },
    Hardlink {
        from: Bytes,
        to: Bytes,
    },
    /// A request type or extension Ferry does not implement.
    Unsupported {
        what: String,
    },
}

/// One incoming packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Init { version: u32 },
    Request { id: u32, request: Request },
}

/// Why a packet could not be read or decoded. Always ends the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("packet length {0} is over the {MAX_PACKET_LEN}-byte limit")]
    TooLong(u64),
    #[error("packet length {0} is too short to hold a request")]
    TooShort(usize),
    #[error("the stream ended in the middle of a packet")]
    Truncated,
    #[error("{packet} packet is cut short: {field} is missing or longer than the packet")]
    Malformed {
        packet: &'static str,
        field: &'static str,
    },
}

/// The least room made for a read: bytes of the next packets read ahead.
const MIN_READ: usize = 32 * 1024;

/// Reads length-framed packets from the stream.
///
/// `next_packet` is cancel-safe: its only await point is `read_buf`, and a
/// partly received packet stays in the buffer.
pub struct PacketReader<R> {
    stream: R,
    buffer: BytesMut,
}

impl<R: AsyncRead + Unpin> PacketReader<R> {
    pub fn new(stream: R) -> Self {
        PacketReader {
            stream,
            buffer: BytesMut::with_capacity(64 * 1024),
        }
    }

    /// The next packet's body (type byte onwards), or `None` at a clean end
    /// of stream.
    pub async fn next_packet(&mut self) -> Result<Option<Bytes>, PacketError> {
        loop {
            if let Some(body) = self.take_buffered()? {
                return Ok(Some(body));
            }
            self.make_room();
            if self.stream.read_buf(&mut self.buffer).await? == 0 {
                return match self.buffer.is_empty() {
                    true => Ok(None),
                    false => Err(DecodeError::Truncated.into()),
                };
            }
        }
    }

    fn take_buffered(&mut self) -> Result<Option<Bytes>, DecodeError> {
        if self.buffer.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes(self.buffer[..4].try_into().expect("4 bytes")) as usize;
        if len > MAX_PACKET_LEN {
            return Err(DecodeError::TooLong(len as u64));
        }
        if len == 0 {
            return Err(DecodeError::TooShort(0));
        }
        if self.buffer.len() < 4 + len {
            return Ok(None);
        }
        self.buffer.advance(4);
        Ok(Some(self.buffer.split_to(len).freeze()))
    }

    /// Makes room for the next read when there is less than the packet being
    /// read still needs (or than [`MIN_READ`]): room for all of the packet
    /// and at least [`MIN_READ`], allocated exactly. `BytesMut::reserve` grows
    /// by doubling, which took a packet at the cap to a 512 KiB buffer; this
    /// never holds more than one packet at the cap plus [`MIN_READ`], and
    /// moves a packet's bytes at most once.
    fn make_room(&mut self) {
        let need = self.wanted();
        if self.buffer.capacity() - self.buffer.len() >= need.min(MIN_READ) {
            return;
        }
        let room = need.max(MIN_READ);
        if self.buffer.try_reclaim(room) {
            return;
        }
        let mut bigger = BytesMut::with_capacity(self.buffer.len() + room);
        bigger.extend_from_slice(&self.buffer);
        self.buffer = bigger;
    }

    fn wanted(&self) -> usize {
        match self.buffer.get(..4) {
            Some(head) => (u32::from_be_bytes(head.try_into().expect("4 bytes")) as usize + 4)
                .saturating_sub(self.buffer.len()),
            None => 4,
        }
    }
}

/// Reading a packet failed: the stream broke, or the packet is invalid.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Invalid(#[from] DecodeError),
}

/// Cursor over one packet body that fails instead of panicking.
struct Fields {
    body: Bytes,
    packet: &'static str,
}

impl Fields {
    fn need(&self, n: usize, field: &'static str) -> Result<(), DecodeError> {
        match self.body.remaining() >= n {
            true => Ok(()),
            false => Err(DecodeError::Malformed {
                packet: self.packet,
                field,
            }),
        }
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.need(4, field)?;
        Ok(self.body.get_u32())
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.need(8, field)?;
        Ok(self.body.get_u64())
    }

    fn string(&mut self, field: &'static str) -> Result<Bytes, DecodeError> {
        let len = self.u32(field)? as usize;
        self.need(len, field)?;
        Ok(self.body.split_to(len))
    }

    fn attrs(&mut self) -> Result<Attrs, DecodeError> {
        let flags = self.u32("attribute flags")?;
        let mut attrs = Attrs::default();
        if flags & attr_flag::SIZE != 0 {
            attrs.size = Some(self.u64("size")?);
        }
        if flags & attr_flag::UIDGID != 0 {
            attrs.uid_gid = Some((self.u32("uid")?, self.u32("gid")?));
        }
        if flags & attr_flag::PERMISSIONS != 0 {
            attrs.permissions = Some(self.u32("permissions")?);
        }
        if flags & attr_flag::ACMODTIME != 0 {
            attrs.times = Some((self.u32("atime")?, self.u32("mtime")?));
        }
        if flags & attr_flag::EXTENDED != 0 {
            for _ in 0..self.u32("extended count")? {
                self.string("extended type")?;
                self.string("extended data")?;
            }
        }
        Ok(attrs)
    }
}

/// Decodes one packet body. Trailing bytes after the known fields are
/// ignored, as OpenSSH does.
pub fn decode(body: Bytes) -> Result<Incoming, DecodeError> {
    if body.len() < 5 && body.first() != Some(&packet::INIT) {
        return Err(DecodeError::TooShort(body.len()));
    }
    let kind = body[0];
    let mut fields = Fields {
        body: body.slice(1..),
        packet: packet_name(kind),
    };
    if kind == packet::INIT {
        return Ok(Incoming::Init {
            version: fields.u32("version")?,
        });
    }
    let id = fields.u32("request id")?;
    let request = decode_request(kind, &mut fields)?;
    Ok(Incoming::Request { id, request })
}

fn decode_request(kind: u8, f: &mut Fields) -> Result<Request, DecodeError> {
    use packet::*;
    Ok(match kind {
        OPEN => Request::Open {
            path: f.string("filename")?,
            flags: f.u32("pflags")?,
            attrs: f.attrs()?,
        },
        CLOSE => Request::Close {
            handle: f.string("handle")?,
        },
        READ => Request::Read {
            handle: f.string("handle")?,
            offset: f.u64("offset")?,
            len: f.u32("length")?,
        },
        WRITE => Request::Write {
            handle: f.string("handle")?,
            offset: f.u64("offset")?,
            data: f.string("data")?,
        },
        LSTAT => Request::Lstat {
            path: f.string("path")?,
        },
        FSTAT => Request::Fstat {
            handle: f.string("handle")?,
        },
        SETSTAT => Request::Setstat {
            path: f.string("path")?,
            attrs: f.attrs()?,
        },
        FSETSTAT => Request::Fsetstat {
            handle: f.string("handle")?,
            attrs: f.attrs()?,
        },
        OPENDIR => Request::Opendir {
            path: f.string("path")?,
        },
        READDIR => Request::Readdir {
            handle: f.string("handle")?,
        },
        REMOVE => Request::Remove {
            path: f.string("filename")?,
        },
        MKDIR => Request::Mkdir {
            path: f.string("path")?,
            attrs: f.attrs()?,
        },
        RMDIR => Request::Rmdir {
            path: f.string("path")?,
        },
        REALPATH => Request::Realpath {
            path: f.string("path")?,
        },
        STAT => Request::Stat {
            path: f.string("path")?,
        },
        RENAME => Request::Rename {
            from: f.string("oldpath")?,
            to: f.string("newpath")?,
        },
        READLINK => Request::Readlink {
            path: f.string("path")?,
        },
        SYMLINK => Request::Symlink {
            link: f.string("linkpath")?,
            target: f.string("targetpath")?,
        },
        EXTENDED => decode_extended(f)?,
        other => Request::Unsupported {
            what: format!("request type {other}"),
        },
    })
}

fn decode_extended(f: &mut Fields) -> Result<Request, DecodeError> {
    let name = f.string("extended request name")?;
    Ok(match &name[..] {
        b"posix-rename@openssh.com" => Request::PosixRename {
            from: f.string("oldpath")?,
            to: f.string("newpath")?,
        },
        b"limits@openssh.com" => Request::Limits,
        b"fsync@openssh.com" => Request::Fsync {
            handle: f.string("handle")?,
        },
        b"statvfs@openssh.com" => Request::Statvfs {
            path: f.string("path")?,
        },
        b"hardlink@openssh.com" => Request::Hardlink {
            from: f.string("oldpath")?,
            to: f.string("newpath")?,
        },
        other => Request::Unsupported {
            what: format!("extension {}", String::from_utf8_lossy(other)),
        },
    })
}

fn packet_name(kind: u8) -> &'static str {
    use packet::*;
    match kind {
        INIT => "INIT",
        OPEN => "OPEN",
        CLOSE => "CLOSE",
        READ => "READ",
        WRITE => "WRITE",
        LSTAT => "LSTAT",
        FSTAT => "FSTAT",
        SETSTAT => "SETSTAT",
        FSETSTAT => "FSETSTAT",
        OPENDIR => "OPENDIR",
        READDIR => "READDIR",
        REMOVE => "REMOVE",
        MKDIR => "MKDIR",
        RMDIR => "RMDIR",
        REALPATH => "REALPATH",
        STAT => "STAT",
        RENAME => "RENAME",
        READLINK => "READLINK",
        SYMLINK => "SYMLINK",
        EXTENDED => "EXTENDED",
        _ => "unknown",
    }
}

/// One entry of a NAME reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameEntry {
    pub filename: Vec<u8>,
    pub longname: Vec<u8>,
    pub attrs: Attrs,
}

/// A reply to one request (the id is added when it is encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status {
        code: u32,
        message: String,
    },
    Handle(Vec<u8>),
    /// DATA reply already encoded by [`data_reply`] (saves a copy).
    Encoded(Bytes),
    Name(Vec<NameEntry>),
    Attrs(Attrs),
    ExtendedReply(Vec<u8>),
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Status {
            code: status::OK,
            message: "Success".to_owned(),
        }
    }

    pub fn status(code: u32, message: impl Into<String>) -> Reply {
        Reply::Status {
            code,
            message: message.into(),
        }
    }
}

/// Encodes `reply` to request `id` as a length-prefixed packet.
pub fn encode_reply(id: u32, reply: Reply) -> Bytes {
    if let Reply::Encoded(bytes) = reply {
        return bytes;
    }
    let mut out = BytesMut::with_capacity(64);
    out.put_u32(0);
    match reply {
        Reply::Encoded(_) => unreachable!("returned above"),
        Reply::Status { code, message } => {
            put_header(&mut out, packet::STATUS, id);
            out.put_u32(code);
            put_string(&mut out, message.as_bytes());
            put_string(&mut out, b"en");
        }
        Reply::Handle(handle) => {
            put_header(&mut out, packet::HANDLE, id);
            put_string(&mut out, &handle);
        }
        Reply::Name(entries) => {
            put_header(&mut out, packet::NAME, id);
            out.put_u32(entries.len() as u32);
            for entry in entries {
                put_string(&mut out, &entry.filename);
                put_string(&mut out, &entry.longname);
                put_attrs(&mut out, &entry.attrs);
            }
        }
        Reply::Attrs(attrs) => {
            put_header(&mut out, packet::ATTRS, id);
            put_attrs(&mut out, &attrs);
        }
        Reply::ExtendedReply(data) => {
            put_header(&mut out, packet::EXTENDED_REPLY, id);
            out.put_slice(&data);
        }
    }
    finish_packet(out)
}

/// Encodes the VERSION reply with the extensions Ferry supports.
pub fn encode_version(extensions: &[(&str, &str)]) -> Bytes {
    let mut out = BytesMut::with_capacity(256);
    out.put_u32(0);
    out.put_u8(packet::VERSION);
    out.put_u32(SFTP_VERSION);
    for (name, data) in extensions {
        put_string(&mut out, name.as_bytes());
        put_string(&mut out, data.as_bytes());
    }
    finish_packet(out)
}

/// A DATA reply whose payload is filled in place by `fill` (which returns
/// how many of the `len` bytes it wrote), so a read needs no extra copy.
pub fn data_reply<E>(
    id: u32,
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<usize, E>,
) -> Result<Bytes, E> {
    const HEADER: usize = 4 + 1 + 4 + 4;
    let mut out = BytesMut::zeroed(HEADER + len);
    let filled = fill(&mut out[HEADER..])?;
    out.truncate(HEADER + filled);
    let mut header = &mut out[..HEADER];
    header.put_u32((HEADER - 4 + filled) as u32);
    header.put_u8(packet::DATA);
    header.put_u32(id);
    header.put_u32(filled as u32);
    Ok(out.freeze())
}

fn put_header(out: &mut BytesMut, kind: u8, id: u32) {
    out.put_u8(kind);
    out.put_u32(id);
}

fn put_string(out: &mut BytesMut, bytes: &[u8]) {
    out.put_u32(bytes.len() as u32);
    out.put_slice(bytes);
}

fn put_attrs(out: &mut BytesMut, attrs: &Attrs) {
    let mut flags = 0;
    flags |= if attrs.size.is_some() {
        attr_flag::SIZE
    } else {
        0
    };
    flags |= if attrs.uid_gid.is_some() {
        attr_flag::UIDGID
    } else {
        0
    };
    flags |= if attrs.permissions.is_some() {
        attr_flag::PERMISSIONS
    } else {
        0
    };
    flags |= if attrs.times.is_some() {
        attr_flag::ACMODTIME
    } else {
        0
    };
    out.put_u32(flags);
    if let Some(size) = attrs.size {
        out.put_u64(size);
    }
    if let Some((uid, gid)) = attrs.uid_gid {
        out.put_u32(uid);
        out.put_u32(gid);
    }
    if let Some(permissions) = attrs.permissions {
        out.put_u32(permissions);
    }
    if let Some((atime, mtime)) = attrs.times {
        out.put_u32(atime);
        out.put_u32(mtime);
    }
}

fn finish_packet(mut out: BytesMut) -> Bytes {
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    out.freeze()
}

/// Encoding of requests, for tests and test clients.
pub mod client {
    use super::*;

    /// A request packet (length-prefixed) of `kind` with `id` and raw fields.
    pub fn request(kind: u8, id: u32, fields: &[u8]) -> Bytes {
        let mut out = BytesMut::new();
        out.put_u32(0);
        put_header(&mut out, kind, id);
        out.put_slice(fields);
        finish_packet(out)
    }

    /// An SSH string field.
    pub fn string(bytes: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        put_string(&mut out, bytes);
        out.to_vec()
    }

    /// An ATTRS field.
    pub fn attrs(attrs: &Attrs) -> Vec<u8> {
        let mut out = BytesMut::new();
        put_attrs(&mut out, attrs);
        out.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::client::{attrs as attrs_field, request, string};
    use super::*;

    fn body(packet: Bytes) -> Bytes {
        packet.slice(4..)
    }

    fn concat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn decodes_every_request_kind_with_raw_byte_paths() {
        let attrs = Attrs {
            size: Some(7),
            uid_gid: Some((1, 2)),
            permissions: Some(0o644),
            times: Some((3, 4)),
        };
        let path = b"/inbound/bad\xff\xfe.csv";
        let open = request(
            packet::OPEN,
            9,
            &concat(&[&string(path), &0x1au32.to_be_bytes(), &attrs_field(&attrs)]),
        );
        assert_eq!(
            decode(body(open)).unwrap(),
            Incoming::Request {
                id: 9,
                request: Request::Open {
                    path: Bytes::from_static(path),
                    flags: 0x1a,
                    attrs: attrs.clone()
                }
            }
        );
        let write = request(
            packet::WRITE,
            10,
            &concat(&[&string(b"h"), &5u64.to_be_bytes(), &string(b"data")]),
        );
        assert_eq!(
            decode(body(write)).unwrap(),
            Incoming::Request {
                id: 10,
                request: Request::Write {
                    handle: "h".into(),
                    offset: 5,
                    data: "data".into()
                }
            }
        );
        let rename = request(
            packet::EXTENDED,
            11,
            &concat(&[
                &string(b"posix-rename@openssh.com"),
                &string(b"a"),
                &string(b"b"),
            ]),
        );
        assert_eq!(
            decode(body(rename)).unwrap(),
            Incoming::Request {
                id: 11,
                request: Request::PosixRename {
                    from: "a".into(),
                    to: "b".into()
                }
            }
        );
        let unknown = request(99, 12, b"whatever");
        assert!(matches!(
            decode(body(unknown)).unwrap(),
            Incoming::Request {
                id: 12,
                request: Request::Unsupported { .. }
            }
        ));
        let init = Bytes::from_static(&[packet::INIT, 0, 0, 0, 3]);
        assert_eq!(decode(init).unwrap(), Incoming::Init { version: 3 });
    }

    #[test]
    fn truncated_fields_are_errors_not_panics() {
        let stat = request(packet::STAT, 1, &0x7fff_ffffu32.to_be_bytes());
        assert!(matches!(
            decode(body(stat)),
            Err(DecodeError::Malformed { packet: "STAT", .. })
        ));
        assert!(matches!(
            decode(Bytes::from_static(&[packet::READ, 0, 0])),
            Err(DecodeError::TooShort(3))
        ));
        let read = request(packet::READ, 1, &string(b"h"));
        assert!(matches!(
            decode(body(read)),
            Err(DecodeError::Malformed {
                field: "offset",
                ..
            })
        ));
    }

    #[test]
    fn replies_encode_with_length_and_id() {
        let reply = encode_reply(
            0x01020304,
            Reply::status(status::NO_SUCH_FILE, "No such file: /x"),
        );
        assert_eq!(
            u32::from_be_bytes(reply[..4].try_into().unwrap()) as usize,
            reply.len() - 4
        );
        assert_eq!(reply[4], packet::STATUS);
        assert_eq!(&reply[5..9], &[1, 2, 3, 4]);
        assert_eq!(&reply[9..13], &status::NO_SUCH_FILE.to_be_bytes());
        let data = data_reply::<()>(7, 10, |buf| {
            buf[..3].copy_from_slice(b"abc");
            Ok(3)
        })
        .unwrap();
        assert_eq!(
            &data[..],
            &[
                0,
                0,
                0,
                12,
                packet::DATA,
                0,
                0,
                0,
                7,
                0,
                0,
                0,
                3,
                b'a',
                b'b',
                b'c'
            ]
        );
    }

    #[test]
    fn attrs_round_trip() {
        let attrs = Attrs {
            size: Some(1 << 40),
            uid_gid: None,
            permissions: Some(0o100644),
            times: Some((1, 2)),
        };
        let mut fields = Fields {
            body: Bytes::from(attrs_field(&attrs)),
            packet: "test",
        };
        assert_eq!(fields.attrs().unwrap(), attrs);
    }

    #[tokio::test]
    async fn packet_reader_frames_and_refuses_oversized_and_truncated() {
        let mut two = request(packet::STAT, 1, &string(b"/")).to_vec();
        two.extend_from_slice(&request(packet::STAT, 2, &string(b"/inbound")));
        let mut reader = PacketReader::new(&two[..]);
        assert!(reader.next_packet().await.unwrap().is_some());
        assert!(reader.next_packet().await.unwrap().is_some());
        assert!(reader.next_packet().await.unwrap().is_none());

        let huge = [0xffu8, 0xff, 0xff, 0xff, 1, 2, 3];
        let error = PacketReader::new(&huge[..])
            .next_packet()
            .await
            .unwrap_err();
        assert!(matches!(
            error,
            PacketError::Invalid(DecodeError::TooLong(0xffff_ffff))
        ));

        let cut = &request(packet::STAT, 1, &string(b"/inbound"))[..10];
        let error = PacketReader::new(cut).next_packet().await.unwrap_err();
        assert!(matches!(
            error,
            PacketError::Invalid(DecodeError::Truncated)
        ));
    }

    /// Hands out at most `step` bytes per read, as a slow network does.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl AsyncRead for Trickle<'_> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let n = self.step.min(self.data.len()).min(buf.remaining());
            buf.put_slice(&self.data[..n]);
            self.data = &self.data[n..];
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// Found by fuzzing (fuzz/fuzz_targets/sftp_codec.rs): a packet at the
    /// cap arriving a few bytes at a time made the framing buffer grow by
    /// doubling to 512 KiB, twice the cap, when the last 32 KiB were awaited.
    #[tokio::test]
    async fn the_framing_buffer_never_grows_past_one_packet_at_the_cap() {
        let path = vec![b'a'; MAX_PACKET_LEN - 9];
        let packet = request(packet::STAT, 1, &string(&path));
        assert_eq!(packet.len(), 4 + MAX_PACKET_LEN);
        let one_cut = &packet[..packet.len() - 10];
        let two_cut = [&packet[..], one_cut].concat();
        for stream in [one_cut, &two_cut[..]] {
            for step in [1, 7, 4096, 100_000] {
                let mut reader = PacketReader::new(Trickle { data: stream, step });
                // Kept, as WRITE data in flight is while the next packets are read.
                let mut in_flight = Vec::new();
                let end = loop {
                    match reader.next_packet().await {
                        Ok(Some(body)) => in_flight.push(body),
                        other => break other,
                    }
                };
                assert!(matches!(
                    end,
                    Err(PacketError::Invalid(DecodeError::Truncated))
                ));
                let capacity = reader.buffer.capacity();
                assert!(
                    capacity <= 4 + MAX_PACKET_LEN + MIN_READ,
                    "reads of {step}: a {capacity}-byte buffer"
                );
            }
        }
    }
}
