//! When a file in `/inbound` counts as finished (DESIGN.md "Ingest", 1).
//!
//! A file the SFTP layer closed or renamed under its final name is finished
//! at once. A file written by other means (a copy into the folder, a network
//! share) is finished once its modification time is `ingest.settle` old and
//! its size did not change between two looks: [`Settler`] keeps the
//! candidates the watcher and the scans report until then. Client temporary
//! names are never finished. Nothing here writes to disk or to the store.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_store::SeenFile;

use crate::layout::{Layout, base_name};

/// True for names clients use while a transfer is in progress (`*.filepart`,
/// `*.part`, `*.tmp`, names starting with `.`): never processed until
/// renamed. The same rule as `ferry_sftp::upload::is_client_temp_name`
/// (ingest does not depend on the SFTP crate).
#[must_use]
pub fn is_client_temp_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || [".filepart", ".part", ".tmp"]
            .iter()
            .any(|suffix| lower.ends_with(suffix))
}

/// Whether any folder or the file of a path under `/inbound` carries a
/// temporary name (a dot-folder hides everything in it).
#[must_use]
pub fn is_temp_path(name: &str) -> bool {
    name.split('/').any(|part| part.starts_with('.')) || is_client_temp_name(base_name(name))
}

/// What the file at `account`'s `/inbound/name` is now: `None` when it is
/// missing, not a regular file (symbolic links are never followed), or
/// carries a temporary name.
#[must_use]
pub fn look(layout: &Layout, account: &str, name: &str) -> Option<SeenFile> {
    if is_temp_path(name) {
        return None;
    }
    let meta = fs::symlink_metadata(layout.inbound(account).join(name)).ok()?;
    if !meta.is_file() {
        return None;
    }
    Some(SeenFile {
        account: account.to_owned(),
        name: name.to_owned(),
        size: i64::try_from(meta.len()).unwrap_or(i64::MAX),
        mtime_ms: meta.modified().map(unix_ms).unwrap_or(0),
        inode: i64::try_from(std::os::unix::fs::MetadataExt::ino(&meta)).ok(),
    })
}

/// Unix milliseconds of a file time.
fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Files seen by the watcher or a scan, until they have settled.
#[derive(Debug, Default)]
pub struct Settler {
    /// (account, name) → what the last look found.
    candidates: BTreeMap<(String, String), Option<SeenFile>>,
}

impl Settler {
    /// Remembers a file to look at again.
    pub fn note(&mut self, account: &str, name: &str) {
        if !is_temp_path(name) {
            self.candidates
                .entry((account.to_owned(), name.to_owned()))
                .or_insert(None);
        }
    }

    /// Accounts with a file still settling (an upload by other means in progress).
    #[must_use]
    pub fn busy_accounts(&self) -> BTreeSet<String> {
        self.candidates.keys().map(|(a, _)| a.clone()).collect()
    }

    /// Looks at every candidate again; returns those that settled (and
    /// forgets them, and those that are gone).
    pub fn settled(&mut self, layout: &Layout, settle: Duration) -> Vec<SeenFile> {
        let now = unix_ms(SystemTime::now());
        let settle_ms = i64::try_from(settle.as_millis()).unwrap_or(i64::MAX);
        let mut done = Vec::new();
        self.candidates.retain(|(account, name), previous| {
            let Some(current) = look(layout, account, name) else {
                return false;
            };
            let unchanged = previous
                .as_ref()
                .is_none_or(|p| p.size == current.size && p.mtime_ms == current.mtime_ms);
            if unchanged && now.saturating_sub(current.mtime_ms) >= settle_ms {
                done.push(current);
                return false;
            }
            *previous = Some(current);
            true
        });
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_never_finished() {
        for name in [
            "x.csv.filepart",
            "X.CSV.PART",
            "a.tmp",
            ".hidden.csv",
            ".tmp/x.csv",
        ] {
            assert!(is_temp_path(name), "{name}");
        }
        for name in ["x.csv", "2026/x.csv", "part.csv"] {
            assert!(!is_temp_path(name), "{name}");
        }
    }

    #[test]
    fn a_file_settles_once_old_enough_and_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        fs::create_dir_all(layout.inbound("d")).unwrap();
        let path = layout.inbound("d").join("x.csv");
        fs::write(&path, "a\n1\n").unwrap();
        let mut settler = Settler::default();
        settler.note("d", "x.csv");
        settler.note("d", "x.csv.filepart");
        assert!(settler.settled(&layout, Duration::from_secs(60)).is_empty());
        assert_eq!(settler.busy_accounts().len(), 1);
        let done = settler.settled(&layout, Duration::ZERO);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].name, "x.csv");
        assert_eq!(done[0].size, 4);
        assert!(settler.busy_accounts().is_empty());

        settler.note("d", "gone.csv");
        assert!(settler.settled(&layout, Duration::ZERO).is_empty());
        assert!(
            settler.busy_accounts().is_empty(),
            "missing files are forgotten"
        );
    }
}
