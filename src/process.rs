//! Process-wide settings: who may read what Ferry creates (the umask, the
//! data_dir's mode and group, the SQLite files), the file-descriptor limit,
//! and SIGXFSZ.
//!
//! Private by default: the umask is set once, at start, for every command,
//! so every file and folder Ferry (or SQLite) creates is 0600/0700, or
//! 0640/0750 when `data_group` names a group for the vendor's import. The
//! code creates files with 0666/0777 and lets the umask decide; only host
//! keys are written 0600 whatever the setting. `data_dir` itself is tightened
//! at start, which also shields what older versions created inside it.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::config::Config;

/// Sets the umask for the rest of the process: 077, or 027 with a data group.
pub fn set_umask(config: &Config) {
    let mask = if config.data_group.is_some() {
        0o027
    } else {
        0o077
    };
    // SAFETY: umask(2) cannot fail; it only replaces the process's mask.
    unsafe {
        libc::umask(mask);
    }
}

/// Creates `data_dir` if needed and makes it 0700, or 02750 owned by the
/// data group (setgid, so what is created inside inherits the group).
pub fn secure_data_dir(config: &Config) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create data_dir {}: choose a writable directory with data_dir or FERRY_DATA_DIR",
            dir.display()
        )
    })?;
    let mode = match &config.data_group {
        Some(group) => {
            give_to_group(dir, group)?;
            0o2750
        }
        None => 0o700,
    };
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).with_context(|| {
        format!(
            "cannot make data_dir {} private (mode {mode:o}): run ferry as the directory's owner",
            dir.display()
        )
    })
}

/// Makes an existing SQLite database (and its -wal and -shm files) as
/// private as new files are: 0600, or 0640 for the data group.
pub fn secure_database_files(config: &Config) -> anyhow::Result<()> {
    let Some(path) = sqlite_path(&config.database_url) else {
        return Ok(());
    };
    let mode = if config.data_group.is_some() {
        0o640
    } else {
        0o600
    };
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if !file.exists() {
            continue;
        }
        if let Some(group) = &config.data_group {
            give_to_group(&file, group)?;
        }
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot make {} private", file.display()))?;
    }
    Ok(())
}

/// The file of a `sqlite://PATH` URL (not `:memory:`).
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let path = rest.split('?').next()?;
    let path = path.strip_prefix("//").unwrap_or(path);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

fn give_to_group(path: &Path, group: &str) -> anyhow::Result<()> {
    let gid = group_id(group)?;
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())?;
    // SAFETY: a valid NUL-terminated path; uid -1 leaves the owner alone.
    if unsafe { libc::chown(c_path.as_ptr(), u32::MAX, gid) } != 0 {
        let e = std::io::Error::last_os_error();
        bail!(
            "data_group = {group:?}: cannot give {} to the group ({e}); ferry must run as root or as a member of {group}",
            path.display()
        );
    }
    Ok(())
}

/// The id of the group named `group`.
fn group_id(group: &str) -> anyhow::Result<libc::gid_t> {
    let name = CString::new(group)?;
    let mut entry: libc::group = unsafe { std::mem::zeroed() };
    let mut buffer = vec![0u8; 16 * 1024];
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buffer` outlives it.
    let rc = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() {
        bail!(
            "data_group = {group:?}: there is no such group on this machine; create it (groupadd {group}) or leave data_group empty"
        );
    }
    Ok(entry.gr_gid)
}

/// Raises the soft limit on open files to the hard limit; returns the
/// limit in force.
pub fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid out pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        }
    }
    limit.rlim_cur
}

/// Ignores SIGXFSZ, so a write past RLIMIT_FSIZE fails with EFBIG (and the
/// upload is refused) instead of killing the server.
pub fn ignore_file_size_signal() {
    // SAFETY: setting a signal's disposition to SIG_IGN is always sound.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite://./data/ferry.db"),
            Some(PathBuf::from("./data/ferry.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:/x/f.db?mode=rwc"),
            Some(PathBuf::from("/x/f.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://h/db"), None);
    }

    #[test]
    fn unknown_groups_are_named() {
        let err = group_id("no-such-group-ferry").unwrap_err().to_string();
        assert!(err.contains("no such group"), "{err}");
        assert_eq!(group_id("root").unwrap(), 0);
    }
}
