//! READ and WRITE as self-contained jobs: each owns its file (shared) and
//! its data, so the pipeline can run up to 64 of them at once on the blocking
//! pool with pread/pwrite, and encode the reply where it ran.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

use super::codec::{Reply, data_reply, encode_reply, status};

/// A READ or WRITE ready to run anywhere (it owns what it needs).
#[derive(Debug)]
pub struct DataJob {
    pub handle: u32,
    pub offset: u64,
    pub len: u64,
    pub writes: bool,
    pub file: Arc<File>,
    /// What to write (empty for a READ).
    pub data: Bytes,
    /// The file's path as shown in messages.
    pub path: Arc<str>,
}

impl DataJob {
    /// Runs the pread/pwrite and encodes the reply to request `id`.
    pub fn run(self, id: u32) -> Bytes {
        match self.writes {
            true => encode_reply(id, self.write()),
            false => self.read(id),
        }
    }

    fn write(&self) -> Reply {
        match self.file.write_all_at(&self.data, self.offset) {
            Ok(()) => Reply::ok(),
            Err(e) => write_failure(e, &self.path),
        }
    }

    fn read(&self, id: u32) -> Bytes {
        let filled = data_reply(id, self.len as usize, |buffer| {
            read_fully_at(&self.file, buffer, self.offset)
        });
        match filled {
            Ok(reply) if reply.len() > 13 => reply,
            Ok(_) => encode_reply(id, Reply::status(status::EOF, "end of file")),
            Err(e) => encode_reply(
                id,
                Reply::status(status::FAILURE, format!("cannot read {}: {e}", self.path)),
            ),
        }
    }
}

fn write_failure(error: io::Error, path: &str) -> Reply {
    let message = match error.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            format!(
                "cannot write {path}: the server is out of disk space; try again later or contact the vendor"
            )
        }
        _ => format!("cannot write {path}: {error}"),
    };
    Reply::status(status::FAILURE, message)
}

fn read_fully_at(file: &File, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read_at(&mut buffer[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
