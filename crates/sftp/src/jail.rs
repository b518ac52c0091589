//! The account's view of the disk: `data_dir/accounts/<account>/` is `/` to
//! the client, with the fixed layout `/inbound`, `/outbound`, `/archive` and
//! `/reports` (see DESIGN.md, "The account's view").
//!
//! This module exists so that the two questions every SFTP request asks —
//! "which file on disk is this client path?" and "may the account change it?"
//! — are answered in exactly one place:
//! - [`VirtualPath::parse`] turns whatever bytes a client sends into a
//!   normalised path that cannot climb above `/` (`..`, absolute and relative
//!   paths, repeated slashes); it refuses NUL bytes and over-long names, and
//!   keeps names as raw bytes (never a lossy UTF-8 conversion).
//! - [`Jail::locate`] walks that path on disk with `lstat`, one component at a
//!   time, and never follows a symbolic link: a symlink planted on disk is
//!   treated as not there.
//! - [`may_change`] is the permission table: only the inside of `/inbound` is
//!   writable.
//!
//! It must never hand out a real path that was not produced by [`Jail::locate`].

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The folders every account has, in the order they are created.
pub const LAYOUT_FOLDERS: [&str; 4] = ["inbound", "outbound", "archive", "reports"];

/// The only folder an account may write into.
pub const INBOUND: &str = "inbound";

/// Longest file name a component may have (Linux NAME_MAX).
pub const NAME_MAX: usize = 255;

/// Longest virtual path accepted (Linux PATH_MAX).
pub const PATH_MAX: usize = 4096;

/// One account's jail: its root folder and its private upload folder.
#[derive(Debug, Clone)]
pub struct Jail {
    account: String,
    root: PathBuf,
    upload_dir: PathBuf,
}

impl Jail {
    /// Creates data_dir/accounts/<account>/{inbound,outbound,archive,reports}
    /// (idempotent) and the upload temp dir; returns the root path.
    pub fn create_layout(data_dir: &Path, account: &str) -> io::Result<PathBuf> {
        check_account_name(account)?;
        let root = account_root(data_dir, account);
        for folder in LAYOUT_FOLDERS {
            fs::create_dir_all(root.join(folder))?;
        }
        fs::create_dir_all(upload_dir(data_dir, account))?;
        Ok(root)
    }

    /// The jail of an existing account (errors if its root is missing, saying
    /// to create the account).
    pub fn open(data_dir: &Path, account: &str) -> io::Result<Jail> {
        check_account_name(account)?;
        let root = account_root(data_dir, account);
        match fs::symlink_metadata(&root) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{} is not a folder",
                    root.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "the folder of account {account} ({}) is missing: create the account with `ferry account create {account}`",
                        root.display()
                    ),
                ));
            }
            Err(e) => return Err(e),
        }
        let upload_dir = upload_dir(data_dir, account);
        fs::create_dir_all(&upload_dir)?;
        Ok(Jail {
            account: account.to_owned(),
            root,
            upload_dir,
        })
    }

    /// The account this jail belongs to.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The account's root folder on disk (`/` to the client).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where this account's uploads are written until they are closed:
    /// outside the account's view, on the same file system.
    pub fn upload_dir(&self) -> &Path {
        &self.upload_dir
    }

    /// Finds `path` on disk without following any symbolic link.
    ///
    /// Every folder on the way must exist and be a real folder, otherwise the
    /// path does not exist for the client. The last component may be missing
    /// (then `metadata` is `None`); a symlink there counts as missing too.
    pub fn locate(&self, path: &VirtualPath) -> Result<Located, LocateError> {
        let mut real = self.root.clone();
        let mut components = path.components().peekable();
        while let Some(component) = components.next() {
            real.push(OsStr::from_bytes(component));
            let is_last = components.peek().is_none();
            match fs::symlink_metadata(&real) {
                Ok(meta) if is_last => {
                    let metadata = (!meta.file_type().is_symlink()).then_some(meta);
                    return Ok(Located { real, metadata });
                }
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => return Err(LocateError::NotFound),
                Err(e) if is_last && e.kind() == io::ErrorKind::NotFound => {
                    return Ok(Located {
                        real,
                        metadata: None,
                    });
                }
                Err(e) if is_missing(&e) => return Err(LocateError::NotFound),
                Err(e) => return Err(LocateError::Io(e)),
            }
        }
        let metadata = fs::symlink_metadata(&real).map_err(LocateError::Io)?;
        Ok(Located {
            real,
            metadata: Some(metadata),
        })
    }

    /// Like [`Jail::locate`], but the path must exist.
    pub fn locate_existing(
        &self,
        path: &VirtualPath,
    ) -> Result<(PathBuf, fs::Metadata), LocateError> {
        let located = self.locate(path)?;
        match located.metadata {
            Some(meta) => Ok((located.real, meta)),
            None => Err(LocateError::NotFound),
        }
    }
}

/// A virtual path found on disk.
#[derive(Debug)]
pub struct Located {
    /// The real path inside the account's root.
    pub real: PathBuf,
    /// `lstat` of it; `None` when it does not exist (its folder does).
    pub metadata: Option<fs::Metadata>,
}

/// Why a virtual path could not be found on disk.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    /// A folder on the way is missing, is not a folder, or is a symlink.
    #[error("no such file or folder")]
    NotFound,
    #[error(transparent)]
    Io(io::Error),
}

fn is_missing(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn account_root(data_dir: &Path, account: &str) -> PathBuf {
    data_dir.join("accounts").join(account)
}

fn upload_dir(data_dir: &Path, account: &str) -> PathBuf {
    data_dir.join("uploading").join(account)
}

fn check_account_name(account: &str) -> io::Result<()> {
    let bad =
        account.is_empty() || account == "." || account == ".." || account.contains(['/', '\0']);
    if bad {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{account:?} cannot be an account folder name"),
        ));
    }
    Ok(())
}

/// A client path, normalised: absolute, without `.`, `..` or empty
/// components, and never above `/`. Names are raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VirtualPath {
    components: Vec<Vec<u8>>,
}

/// Why a client path was refused before touching the disk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("file names cannot contain NUL bytes")]
    ContainsNul,
    #[error("a name in the path is {0} bytes long; names may be at most 255 bytes")]
    NameTooLong(usize),
    #[error("the path is {0} bytes long; paths may be at most 4096 bytes")]
    PathTooLong(usize),
}

impl VirtualPath {
    /// `/`, the account's root.
    pub fn root() -> VirtualPath {
        VirtualPath {
            components: Vec::new(),
        }
    }

    /// Normalises a client path. The working folder is `/`, so relative paths
    /// start there; `..` at `/` stays at `/`.
    pub fn parse(raw: &[u8]) -> Result<VirtualPath, PathError> {
        if raw.contains(&0) {
            return Err(PathError::ContainsNul);
        }
        if raw.len() > PATH_MAX {
            return Err(PathError::PathTooLong(raw.len()));
        }
        let mut components: Vec<Vec<u8>> = Vec::new();
        for component in raw.split(|&b| b == b'/') {
            match component {
                b"" | b"." => {}
                b".." => {
                    components.pop();
                }
                name if name.len() > NAME_MAX => return Err(PathError::NameTooLong(name.len())),
                name => components.push(name.to_vec()),
            }
        }
        Ok(VirtualPath { components })
    }

    /// The names from the root down.
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.components.iter().map(Vec::as_slice)
    }

    /// 0 for `/`, 1 for `/inbound`, 2 for `/inbound/x`.
    pub fn depth(&self) -> usize {
        self.components.len()
    }

    /// The last name, `None` for `/`.
    pub fn file_name(&self) -> Option<&[u8]> {
        self.components.last().map(Vec::as_slice)
    }

    /// The folder that holds this path (`/` for `/` itself).
    pub fn parent(&self) -> VirtualPath {
        let mut components = self.components.clone();
        components.pop();
        VirtualPath { components }
    }

    /// The top-level folder this path is in, `None` for `/`.
    pub fn top_folder(&self) -> Option<&[u8]> {
        self.components.first().map(Vec::as_slice)
    }

    /// True for `/inbound` and everything below it.
    pub fn is_in_inbound(&self) -> bool {
        self.top_folder() == Some(INBOUND.as_bytes())
    }

    /// The path as the client sees it: `/`, `/inbound/roster.csv`.
    pub fn to_bytes(&self) -> Vec<u8> {
        if self.components.is_empty() {
            return b"/".to_vec();
        }
        let mut bytes = Vec::new();
        for component in &self.components {
            bytes.push(b'/');
            bytes.extend_from_slice(component);
        }
        bytes
    }

    /// The path as text, when every name is valid UTF-8.
    pub fn to_utf8(&self) -> Option<String> {
        String::from_utf8(self.to_bytes()).ok()
    }
}

impl fmt::Display for VirtualPath {
    /// Shows the path for messages and logs: invalid UTF-8 bytes are shown
    /// as `\xNN`, so nothing is silently replaced.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.to_bytes().utf8_chunks() {
            f.write_str(chunk.valid())?;
            for byte in chunk.invalid() {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        Ok(())
    }
}

/// What a request wants to do to a path, for the permission table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Make a new entry (file or folder) at this path.
    Create,
    /// Change an existing file's content or attributes.
    Modify,
    /// Remove the entry or rename it away.
    RemoveOrRename,
}

/// The permission table: may the account make `change` at `path`?
///
/// `/` and every top-level folder are fixed; only entries inside `/inbound`
/// may be created, changed, renamed or removed. The refusal says why and what
/// to do instead.
pub fn may_change(path: &VirtualPath, change: Change) -> Result<(), String> {
    let names_must_be_text = matches!(change, Change::Create | Change::Modify);
    match path.depth() {
        0 => Err("/ is read-only: upload into /inbound".to_owned()),
        1 if path.is_in_inbound() => match change {
            Change::Modify => Ok(()),
            Change::Create => Err("/inbound already exists".to_owned()),
            Change::RemoveOrRename => Err("/inbound cannot be removed or renamed".to_owned()),
        },
        1 if change == Change::Create => Err(format!(
            "{path} cannot be created: nothing can be created in /; upload into /inbound"
        )),
        _ if !path.is_in_inbound() => Err(format!(
            "{} is read-only: upload into /inbound",
            top_folder_display(path)
        )),
        _ if names_must_be_text && path.to_utf8().is_none() => Err(format!(
            "{path}: file names must be valid UTF-8; rename the file and upload it again"
        )),
        _ => Ok(()),
    }
}

fn top_folder_display(path: &VirtualPath) -> String {
    let top = path.top_folder().unwrap_or_default();
    VirtualPath {
        components: vec![top.to_vec()],
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn parse(raw: &[u8]) -> String {
        VirtualPath::parse(raw).unwrap().to_string()
    }

    #[test]
    fn parse_normalises_every_escape_attempt_to_a_path_under_root() {
        assert_eq!(parse(b""), "/");
        assert_eq!(parse(b"."), "/");
        assert_eq!(parse(b"/"), "/");
        assert_eq!(parse(b".."), "/");
        assert_eq!(parse(b"../../etc/passwd"), "/etc/passwd");
        assert_eq!(parse(b"/inbound/../../../etc/passwd"), "/etc/passwd");
        assert_eq!(parse(b"inbound/./a/../b.csv"), "/inbound/b.csv");
        assert_eq!(parse(b"//inbound///x.csv//"), "/inbound/x.csv");
        assert_eq!(parse(b"/etc/passwd"), "/etc/passwd");
        assert_eq!(parse(b"inbound\\..\\..\\x"), "/inbound\\..\\..\\x");
        assert_eq!(parse(b"%2e%2e/%2e%2e/etc"), "/%2e%2e/%2e%2e/etc");
    }

    #[test]
    fn parse_refuses_nul_and_long_names_and_keeps_raw_bytes() {
        assert_eq!(
            VirtualPath::parse(b"/inbound/a\0b"),
            Err(PathError::ContainsNul)
        );
        let long = vec![b'a'; 256];
        assert_eq!(VirtualPath::parse(&long), Err(PathError::NameTooLong(256)));
        assert!(VirtualPath::parse(&[b'a'; 255]).is_ok());
        let deep = b"a/".repeat(2100);
        assert_eq!(VirtualPath::parse(&deep), Err(PathError::PathTooLong(4200)));
        let raw = VirtualPath::parse(b"/inbound/bad\xff\xfename.txt").unwrap();
        assert_eq!(raw.to_bytes(), b"/inbound/bad\xff\xfename.txt");
        assert_eq!(raw.to_string(), "/inbound/bad\\xff\\xfename.txt");
        assert_eq!(raw.to_utf8(), None);
    }

    #[test]
    fn permission_table() {
        let p = |s: &str| VirtualPath::parse(s.as_bytes()).unwrap();
        use Change::*;
        for change in [Create, Modify, RemoveOrRename] {
            assert!(may_change(&p("/"), change).is_err());
            assert!(may_change(&p("/inbound/x.csv"), change).is_ok());
            assert!(may_change(&p("/inbound/sub/x.csv"), change).is_ok());
            for ro in [
                "/outbound/x",
                "/archive/2024-01-01/x",
                "/reports/r.txt",
                "/outbound",
                "/stray",
            ] {
                assert!(may_change(&p(ro), change).is_err(), "{ro} {change:?}");
            }
        }
        assert!(may_change(&p("/inbound"), Modify).is_ok());
        assert_eq!(
            may_change(&p("/inbound"), RemoveOrRename).unwrap_err(),
            "/inbound cannot be removed or renamed"
        );
        assert_eq!(
            may_change(&p("/outbound/x"), Create).unwrap_err(),
            "/outbound is read-only: upload into /inbound"
        );
        assert!(
            may_change(&p("/new.csv"), Create)
                .unwrap_err()
                .contains("nothing can be created in /")
        );
        let not_text = VirtualPath::parse(b"/inbound/\xff.csv").unwrap();
        assert!(may_change(&not_text, Create).unwrap_err().contains("UTF-8"));
        assert!(may_change(&not_text, RemoveOrRename).is_ok());
    }

    #[test]
    fn layout_is_created_idempotently_and_open_needs_it() {
        let data = tempfile::tempdir().unwrap();
        assert!(
            Jail::open(data.path(), "district")
                .unwrap_err()
                .to_string()
                .contains("ferry account create district")
        );
        let root = Jail::create_layout(data.path(), "district").unwrap();
        Jail::create_layout(data.path(), "district").unwrap();
        for folder in LAYOUT_FOLDERS {
            assert!(root.join(folder).is_dir());
        }
        let jail = Jail::open(data.path(), "district").unwrap();
        assert_eq!(jail.account(), "district");
        assert!(jail.upload_dir().is_dir());
        assert!(!jail.upload_dir().starts_with(&root));
        assert!(Jail::create_layout(data.path(), "../evil").is_err());
    }

    #[test]
    fn locate_never_follows_symlinks() {
        let data = tempfile::tempdir().unwrap();
        let root = Jail::create_layout(data.path(), "d").unwrap();
        let jail = Jail::open(data.path(), "d").unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"x").unwrap();
        symlink(outside.path(), root.join("inbound/linkdir")).unwrap();
        symlink(outside.path().join("secret"), root.join("inbound/linkfile")).unwrap();
        fs::write(root.join("inbound/plain"), b"x").unwrap();
        let p = |s: &str| VirtualPath::parse(s.as_bytes()).unwrap();

        assert!(matches!(
            jail.locate(&p("/inbound/linkdir/secret")),
            Err(LocateError::NotFound)
        ));
        assert!(
            jail.locate(&p("/inbound/linkfile"))
                .unwrap()
                .metadata
                .is_none()
        );
        assert!(
            jail.locate(&p("/inbound/linkdir"))
                .unwrap()
                .metadata
                .is_none()
        );
        assert!(matches!(
            jail.locate(&p("/inbound/plain/x")),
            Err(LocateError::NotFound)
        ));
        assert!(matches!(
            jail.locate(&p("/nope/x")),
            Err(LocateError::NotFound)
        ));
        let found = jail.locate(&p("/inbound/plain")).unwrap();
        assert_eq!(found.real, root.join("inbound/plain"));
        assert!(found.metadata.unwrap().is_file());
        assert_eq!(jail.locate(&p("/")).unwrap().real, root);
    }
}
