//! The client's side of SFTP v3 for the fuzz targets: every [`Request`]
//! Ferry decodes, encoded back into a packet (for the round-trip property
//! and to drive sessions), and replies split and read.
//!
//! Written from draft-ietf-secsh-filexfer-02 with the field builders of
//! `codec::client`, not with the server's decoder, so a round trip compares
//! two independent readings of the format.

use bytes::Bytes;
use ferry_sftp::protocol::codec::{Attrs, Request, client, packet};

/// The packet (length prefix included) that asks `request` with `id`, or
/// `None` for [`Request::Unsupported`], which stands for many encodings.
pub fn encode_request(id: u32, request: &Request) -> Option<Bytes> {
    use client::{attrs, string};
    use packet::*;
    let (kind, fields): (u8, Vec<u8>) = match request {
        Request::Open {
            path,
            flags,
            attrs: a,
        } => (
            OPEN,
            [string(path), flags.to_be_bytes().to_vec(), attrs(a)].concat(),
        ),
        Request::Close { handle } => (CLOSE, string(handle)),
        Request::Read {
            handle,
            offset,
            len,
        } => (
            READ,
            [
                string(handle),
                offset.to_be_bytes().to_vec(),
                len.to_be_bytes().to_vec(),
            ]
            .concat(),
        ),
        Request::Write {
            handle,
            offset,
            data,
        } => (
            WRITE,
            [string(handle), offset.to_be_bytes().to_vec(), string(data)].concat(),
        ),
        Request::Lstat { path } => (LSTAT, string(path)),
        Request::Fstat { handle } => (FSTAT, string(handle)),
        Request::Setstat { path, attrs: a } => (SETSTAT, [string(path), attrs(a)].concat()),
        Request::Fsetstat { handle, attrs: a } => (FSETSTAT, [string(handle), attrs(a)].concat()),
        Request::Opendir { path } => (OPENDIR, string(path)),
        Request::Readdir { handle } => (READDIR, string(handle)),
        Request::Remove { path } => (REMOVE, string(path)),
        Request::Mkdir { path, attrs: a } => (MKDIR, [string(path), attrs(a)].concat()),
        Request::Rmdir { path } => (RMDIR, string(path)),
        Request::Realpath { path } => (REALPATH, string(path)),
        Request::Stat { path } => (STAT, string(path)),
        Request::Rename { from, to } => (RENAME, [string(from), string(to)].concat()),
        Request::Readlink { path } => (READLINK, string(path)),
        Request::Symlink { link, target } => (SYMLINK, [string(link), string(target)].concat()),
        Request::PosixRename { from, to } => extended("posix-rename@openssh.com", &[from, to]),
        Request::Limits => extended("limits@openssh.com", &[]),
        Request::Fsync { handle } => extended("fsync@openssh.com", &[handle]),
        Request::Statvfs { path } => extended("statvfs@openssh.com", &[path]),
        Request::Hardlink { from, to } => extended("hardlink@openssh.com", &[from, to]),
        Request::Unsupported { .. } => return None,
    };
    Some(client::request(kind, id, &fields))
}

fn extended(name: &str, fields: &[&Bytes]) -> (u8, Vec<u8>) {
    let mut out = client::string(name.as_bytes());
    for field in fields {
        out.extend_from_slice(&client::string(field));
    }
    (packet::EXTENDED, out)
}

/// The INIT packet.
pub fn encode_init(version: u32) -> Bytes {
    let body = [&[packet::INIT][..], &version.to_be_bytes()].concat();
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    Bytes::from(out)
}

/// An ATTRS value with only the given fields.
pub fn attrs(size: Option<u64>, permissions: Option<u32>, times: Option<(u32, u32)>) -> Attrs {
    Attrs {
        size,
        uid_gid: None,
        permissions,
        times,
    }
}

/// One reply packet, split off the stream.
#[derive(Debug, Clone)]
pub struct ReplyPacket {
    /// The whole packet, length prefix included.
    pub raw: Vec<u8>,
}

impl ReplyPacket {
    /// The packet type.
    pub fn kind(&self) -> u8 {
        self.raw[4]
    }

    /// The request id (every reply but VERSION has one).
    pub fn id(&self) -> Option<u32> {
        match self.kind() {
            packet::VERSION => None,
            _ => self.raw.get(5..9).map(be_u32),
        }
    }

    /// The status code of a STATUS reply.
    pub fn status(&self) -> Option<u32> {
        match self.kind() {
            packet::STATUS => self.raw.get(9..13).map(be_u32),
            _ => None,
        }
    }

    /// The handle of a HANDLE reply.
    pub fn handle(&self) -> Option<&[u8]> {
        if self.kind() != packet::HANDLE {
            return None;
        }
        let len = be_u32(self.raw.get(9..13)?) as usize;
        self.raw.get(13..13 + len)
    }
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes(bytes.try_into().expect("4 bytes"))
}

/// Splits every complete packet off the front of `stream`.
///
/// # Panics
/// When a packet's length is 0 or over `max_len`: the server must never send one.
pub fn split_replies(stream: &mut Vec<u8>, max_len: usize) -> Vec<ReplyPacket> {
    let mut packets = Vec::new();
    while let Some(head) = stream.get(..4) {
        let len = be_u32(head) as usize;
        assert!(
            len > 0 && len <= max_len,
            "the server sent a packet of length {len}"
        );
        if stream.len() < 4 + len {
            break;
        }
        let raw: Vec<u8> = stream.drain(..4 + len).collect();
        packets.push(ReplyPacket { raw });
    }
    packets
}
