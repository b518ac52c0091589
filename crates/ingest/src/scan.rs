//! The scan: every file in every account's `/inbound`, at start-up and every
//! `ingest.scan_interval`, for what the watcher missed (files that arrived
//! while Ferry was down, an overflowing inotify queue).
//!
//! It only lists names; [`crate::finished::Settler`] decides when they are
//! finished and the queue drops what it knows already. Symbolic links are
//! never followed and folders deeper than [`MAX_DEPTH`] are not walked.

use std::fs;
use std::path::Path;

use crate::finished::is_temp_path;
use crate::layout::Layout;

/// Folder levels below `/inbound` that are walked.
pub const MAX_DEPTH: usize = 8;

/// (account, name under `/inbound`) of every regular file with a final name.
#[must_use]
pub fn scan_inbound(layout: &Layout) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let Ok(accounts) = fs::read_dir(layout.accounts_dir()) else {
        return found;
    };
    for account in accounts.flatten() {
        let Some(name) = account.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        walk(&layout.inbound(&name), "", 0, &mut |file| {
            found.push((name.clone(), file));
        });
    }
    found
}

fn walk(dir: &Path, prefix: &str, depth: usize, found: &mut dyn FnMut(String)) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let name = format!("{prefix}{file_name}");
        if is_temp_path(&name) {
            continue;
        }
        match entry.file_type() {
            Ok(kind) if kind.is_file() => found(name),
            Ok(kind) if kind.is_dir() && depth < MAX_DEPTH => {
                walk(&entry.path(), &format!("{name}/"), depth + 1, found);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_final_names_in_every_inbound() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        for account in ["a", "b"] {
            fs::create_dir_all(layout.inbound(account).join("sub")).unwrap();
            fs::create_dir_all(layout.reports(account)).unwrap();
        }
        fs::write(layout.inbound("a").join("x.csv"), "1").unwrap();
        fs::write(layout.inbound("a").join("x.csv.filepart"), "1").unwrap();
        fs::write(layout.inbound("b").join("sub/y.csv"), "1").unwrap();
        fs::write(layout.reports("b").join("r.txt"), "1").unwrap();
        let mut found = scan_inbound(&layout);
        found.sort();
        assert_eq!(
            found,
            vec![
                ("a".to_owned(), "x.csv".to_owned()),
                ("b".to_owned(), "sub/y.csv".to_owned())
            ]
        );
    }
}
