//! Where the pipeline finds and puts files under `data_dir`.
//!
//! This module exists so that every path the pipeline touches is spelled in
//! one place: an account's `/inbound`, `/archive` and `/reports` (the layout
//! the SFTP jail creates, DESIGN.md "The account's view"), the SFTP layer's
//! upload area (uploads in progress), and the pipeline's own staging area
//! outside every account's view, where a file waits from the moment its batch
//! takes it until it is archived. It never creates account folders: accounts
//! are created by `ferry account create`.

use std::path::{Path, PathBuf};

/// The folders of one `data_dir`.
#[derive(Debug, Clone)]
pub struct Layout {
    data_dir: PathBuf,
}

impl Layout {
    /// The layout of `data_dir`.
    #[must_use]
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
        }
    }

    /// `data_dir/accounts`: one folder per account.
    #[must_use]
    pub fn accounts_dir(&self) -> PathBuf {
        self.data_dir.join("accounts")
    }

    /// `data_dir/accounts/<account>`: the account's `/`.
    #[must_use]
    pub fn account_root(&self, account: &str) -> PathBuf {
        self.accounts_dir().join(account)
    }

    /// The account's `/inbound`.
    #[must_use]
    pub fn inbound(&self, account: &str) -> PathBuf {
        self.account_root(account).join("inbound")
    }

    /// The account's `/archive`.
    #[must_use]
    pub fn archive(&self, account: &str) -> PathBuf {
        self.account_root(account).join("archive")
    }

    /// The account's `/reports`.
    #[must_use]
    pub fn reports(&self, account: &str) -> PathBuf {
        self.account_root(account).join("reports")
    }

    /// `data_dir/uploading/<account>`: SFTP uploads in progress.
    #[must_use]
    pub fn uploading(&self, account: &str) -> PathBuf {
        self.data_dir.join("uploading").join(account)
    }

    /// `data_dir/ingest/<account>/<upload id>/`: where a taken file waits
    /// (checked, held, handed over) until it is archived. Same file system
    /// as `/inbound`, so taking a file is a rename.
    #[must_use]
    pub fn staging_dir(&self, account: &str, upload_id: i64) -> PathBuf {
        self.data_dir
            .join("ingest")
            .join(account)
            .join(upload_id.to_string())
    }

    /// `data_dir/ingest/<account>/batch-<id>.json`: the batch's manifest
    /// (`FERRY_MANIFEST`) while its hand-off command runs.
    #[must_use]
    pub fn manifest(&self, account: &str, batch: i64) -> PathBuf {
        self.data_dir
            .join("ingest")
            .join(account)
            .join(format!("batch-{batch}.json"))
    }

    /// The account and the path under `/inbound` of a real path, if it lies
    /// in some account's `/inbound`.
    #[must_use]
    pub fn inbound_name(&self, path: &Path) -> Option<(String, String)> {
        let rest = path.strip_prefix(self.accounts_dir()).ok()?;
        let mut parts = rest.components();
        let account = parts.next()?.as_os_str().to_str()?.to_owned();
        if parts.next()?.as_os_str() != "inbound" {
            return None;
        }
        let name = parts.as_path().to_str()?.to_owned();
        (!name.is_empty()).then_some((account, name))
    }
}

/// The last component of a path under `/inbound` (`2026/x.csv` → `x.csv`).
#[must_use]
pub fn base_name(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_names_are_found_only_in_inbound() {
        let layout = Layout::new("/srv/ferry");
        assert_eq!(
            layout.inbound_name(Path::new("/srv/ferry/accounts/d1/inbound/x.csv")),
            Some(("d1".to_owned(), "x.csv".to_owned()))
        );
        assert_eq!(
            layout.inbound_name(Path::new("/srv/ferry/accounts/d1/inbound/2026/x.csv")),
            Some(("d1".to_owned(), "2026/x.csv".to_owned()))
        );
        assert_eq!(
            layout.inbound_name(Path::new("/srv/ferry/accounts/d1/archive/x.csv")),
            None
        );
        assert_eq!(
            layout.inbound_name(Path::new("/srv/ferry/accounts/d1/inbound")),
            None
        );
        assert_eq!(base_name("2026/x.csv"), "x.csv");
    }
}
