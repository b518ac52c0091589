//! Refusals: the status code and the specific English message every failed
//! request carries (never a bare "Failure"), and the mapping from file
//! system errors to them. A missing path is always NO_SUCH_FILE.

use std::io;

use super::codec::{Reply, status};
use crate::jail::{LocateError, PathError, VirtualPath};

/// A refused request: the status code and a message that says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: u32,
    pub message: String,
    /// Set for refusals an operator should see (a limit, a refused name):
    /// the words the session's summary log groups them by.
    class: Option<&'static str>,
}

impl Refusal {
    /// Marks the refusal as one to log, grouped under `class`.
    pub fn logged_as(mut self, class: &'static str) -> Refusal {
        self.class = Some(class);
        self
    }

    /// What the summary log groups this refusal under; `None` for the
    /// ordinary answers of a working session (a missing file, end of a
    /// listing), which are not logged. A permission refusal always is.
    pub fn class(&self) -> Option<&'static str> {
        self.class.or(match self.code {
            status::PERMISSION_DENIED => Some("permission denied"),
            _ => None,
        })
    }
}

impl From<Refusal> for Reply {
    fn from(refusal: Refusal) -> Reply {
        Reply::Status {
            code: refusal.code,
            message: refusal.message,
        }
    }
}

pub type Handled = Result<Reply, Refusal>;

pub fn refuse(code: u32, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
        class: None,
    }
}

pub fn no_such_file(path: &VirtualPath) -> Refusal {
    refuse(
        status::NO_SUCH_FILE,
        format!("No such file or folder: {path}"),
    )
}

impl From<PathError> for Refusal {
    fn from(error: PathError) -> Refusal {
        refuse(status::FAILURE, format!("invalid path: {error}"))
    }
}

/// Turns a file system error into a status that names the path and the cause.
pub fn io_refusal(error: io::Error, action: &str, path: &VirtualPath) -> Refusal {
    use io::ErrorKind::*;
    match error.kind() {
        NotFound | NotADirectory => no_such_file(path),
        PermissionDenied => refuse(
            status::PERMISSION_DENIED,
            format!(
                "the server's file system refused to {action} {path}; ask the vendor to check the folder's permissions"
            ),
        ),
        AlreadyExists => refuse(status::FAILURE, format!("{path} already exists")),
        DirectoryNotEmpty => refuse(
            status::FAILURE,
            format!("{path} is not empty: remove what is in it first"),
        ),
        IsADirectory => refuse(status::FAILURE, format!("{path} is a folder")),
        InvalidFilename => refuse(
            status::FAILURE,
            format!("cannot {action} {path}: the name is too long"),
        ),
        StorageFull | QuotaExceeded => refuse(
            status::FAILURE,
            format!(
                "cannot {action} {path}: the server is out of disk space; try again later or contact the vendor"
            ),
        )
        .logged_as("server disk full"),
        _ => refuse(status::FAILURE, format!("cannot {action} {path}: {error}")),
    }
}

pub fn locate_refusal(error: LocateError, action: &str, path: &VirtualPath) -> Refusal {
    match error {
        LocateError::NotFound => no_such_file(path),
        LocateError::Io(e) => io_refusal(e, action, path),
    }
}

pub fn invalid_handle() -> Refusal {
    refuse(
        status::FAILURE,
        "invalid handle: it was never opened here or is already closed",
    )
}

pub fn mismatch() -> Refusal {
    refuse(
        status::FAILURE,
        "internal error: request routed to the wrong handler",
    )
}
