//! READ and WRITE as self-contained jobs: each owns its file (shared) and
//! its data, so the pipeline can run up to 64 of them at once on the blocking
//! pool with pread/pwrite, and encode the reply where it ran.
//!
//! A WRITE that fails poisons its upload (see `crate::upload`): the upload
//! can then never be put under its name, whatever the client does next.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

use super::codec::{Reply, data_reply, encode_reply, status};
use crate::upload::{Progress, failure_reason, io_problem};

/// An open file as its data requests share it.
#[derive(Debug)]
pub struct OpenFile {
    pub file: File,
    /// The file's path as shown in messages.
    pub label: Box<str>,
    /// Set for a file being uploaded.
    pub upload: Option<Arc<Progress>>,
}

/// A READ or WRITE ready to run anywhere (it owns what it needs).
#[derive(Debug)]
pub struct DataJob {
    pub handle: u32,
    pub offset: u64,
    pub len: u64,
    pub writes: bool,
    pub open: Arc<OpenFile>,
    /// What to write (empty for a READ).
    pub data: Bytes,
}

impl DataJob {
    /// Runs the pread/pwrite and encodes the reply to request `id`.
    pub fn run(self, id: u32) -> Bytes {
        match self.writes {
            true => encode_reply(id, self.write()),
            false => self.read(id),
        }
    }

    /// pwrite, until every byte is written: a short write is retried, and
    /// the error that stops it (ENOSPC, EFBIG…) poisons the upload.
    fn write(&self) -> Reply {
        match self.open.file.write_all_at(&self.data, self.offset) {
            Ok(()) => Reply::ok(),
            Err(e) => Reply::status(status::FAILURE, self.poison(&e)),
        }
    }

    fn poison(&self, error: &io::Error) -> String {
        let reason = failure_reason(&io_problem(error), &self.open.label);
        match &self.open.upload {
            Some(upload) => upload.poison(reason).to_owned(),
            None => reason,
        }
    }

    fn read(&self, id: u32) -> Bytes {
        let filled = data_reply(id, self.len as usize, |buffer| {
            read_fully_at(&self.open.file, buffer, self.offset)
        });
        match filled {
            Ok(reply) if reply.len() > 13 => reply,
            Ok(_) => encode_reply(id, Reply::status(status::EOF, "end of file")),
            Err(e) => encode_reply(
                id,
                Reply::status(
                    status::FAILURE,
                    format!("cannot read {}: {e}", self.open.label),
                ),
            ),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// /dev/full answers every write with ENOSPC, for real.
    #[test]
    fn a_failed_write_poisons_its_upload_with_the_reason() {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let progress = Arc::new(Progress::new(false));
        let open = Arc::new(OpenFile {
            file,
            label: "/inbound/roster.csv".into(),
            upload: Some(Arc::clone(&progress)),
        });
        let job = |data: &'static [u8]| DataJob {
            handle: 0,
            offset: 0,
            len: data.len() as u64,
            writes: true,
            open: Arc::clone(&open),
            data: Bytes::from_static(data),
        };
        let expected =
            "the server's disk is full; nothing was saved as roster.csv; try again later";
        assert_eq!(
            job(b"abc").write(),
            Reply::status(status::FAILURE, expected)
        );
        assert_eq!(progress.poisoned(), Some(expected));
    }
}
