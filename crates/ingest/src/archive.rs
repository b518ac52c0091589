//! Archive and reports: where a processed file and its report end up in the
//! account's view (DESIGN.md "Ingest", 6 and 7).
//!
//! A file moves to `/archive/YYYY-MM-DD/` under its own name; a second file
//! of the same name that day is kept as `name (2).ext`, and so on: nothing is
//! ever overwritten (the move is a hard link that fails on an existing name,
//! then the removal of the staged file). Reports go to `/reports/` as
//! `YYYY-MM-DD_upload-<id>_<name>.txt`, rewritten when the upload's result
//! changes (held, then approved and handed over). Every name made here goes
//! through [`file_name_that_fits`]: however long or odd the district's name,
//! the archive copy and the report can be written (the report states the
//! original name). Retention removes archive days and reports older than
//! `ingest.retention`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::layout::Layout;
use crate::names::file_name_that_fits;

/// Tries at most this many `name (N).ext` before giving up.
const MAX_SAME_NAME: u32 = 10_000;

/// `name (n).ext` (`x.csv`, 2 → `x (2).csv`; `README`, 3 → `README (3)`).
#[must_use]
pub fn numbered_name(name: &str, n: u32) -> String {
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{} ({n}){}", &name[..dot], &name[dot..]),
        _ => format!("{name} ({n})"),
    }
}

/// Moves `staged` into `dir` under `name`, or the first free `name (N).ext`,
/// each made to fit ([`file_name_that_fits`]); never replaces a file.
/// Returns the final path.
///
/// # Errors
/// The I/O error of creating `dir` or moving the file.
pub fn move_into(staged: &Path, dir: &Path, name: &str) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    for n in 1..=MAX_SAME_NAME {
        let candidate = dir.join(file_name_that_fits(&if n == 1 {
            name.to_owned()
        } else {
            numbered_name(name, n)
        }));
        match fs::hard_link(staged, &candidate) {
            Ok(()) => {
                fs::remove_file(staged)?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "{} already holds {MAX_SAME_NAME} files named like {name}",
        dir.display()
    )))
}

/// The report's file name for upload `id` of `name` received on `date`,
/// made to fit ([`file_name_that_fits`]).
#[must_use]
pub fn report_file_name(date: &str, id: i64, name: &str) -> String {
    file_name_that_fits(&format!("{date}_upload-{id}_{name}.txt"))
}

/// Writes `text` to `dir/file_name` (replacing an earlier version of the
/// same report) through a temporary dot-file, so a reader never sees half.
///
/// # Errors
/// The I/O error.
pub fn write_report(dir: &Path, file_name: &str, text: &str) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let target = dir.join(file_name);
    let temp = dir.join(file_name_that_fits(&format!(".{file_name}.writing")));
    fs::write(&temp, text)?;
    fs::rename(&temp, &target)?;
    Ok(target)
}

/// Removes archive days (`archive/YYYY-MM-DD/`) before `oldest_kept_date`
/// and reports not modified within `retention`, of every account. Returns
/// how many days and reports were removed.
///
/// # Errors
/// Only when `data_dir/accounts` cannot be listed; single failures are logged.
pub fn remove_expired(
    layout: &Layout,
    oldest_kept_date: &str,
    retention: Duration,
) -> io::Result<usize> {
    let mut removed = 0;
    for account in fs::read_dir(layout.accounts_dir())?.flatten() {
        let Some(name) = account.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        removed += remove_old_days(&layout.archive(&name), oldest_kept_date);
        removed += remove_old_reports(&layout.reports(&name), retention);
    }
    Ok(removed)
}

fn remove_old_days(archive: &Path, oldest_kept_date: &str) -> usize {
    let Ok(days) = fs::read_dir(archive) else {
        return 0;
    };
    let mut removed = 0;
    for day in days.flatten() {
        let Some(name) = day.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if is_date(&name) && name.as_str() < oldest_kept_date {
            match fs::remove_dir_all(day.path()) {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(path = %day.path().display(), error = %e, "cannot remove an expired archive day")
                }
            }
        }
    }
    removed
}

fn remove_old_reports(reports: &Path, retention: Duration) -> usize {
    let Ok(files) = fs::read_dir(reports) else {
        return 0;
    };
    let mut removed = 0;
    for file in files.flatten() {
        let old = file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > retention);
        if old && file.file_type().is_ok_and(|t| t.is_file()) {
            match fs::remove_file(file.path()) {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(path = %file.path().display(), error = %e, "cannot remove an expired report")
                }
            }
        }
    }
    removed
}

/// `YYYY-MM-DD`.
fn is_date(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_names_are_numbered_never_overwritten() {
        assert_eq!(numbered_name("x.csv", 2), "x (2).csv");
        assert_eq!(numbered_name("x.tar.gz", 3), "x.tar (3).gz");
        assert_eq!(numbered_name("README", 2), "README (2)");
        assert_eq!(numbered_name(".env", 2), ".env (2)");

        let dir = tempfile::tempdir().unwrap();
        let day = dir.path().join("archive/2026-11-23");
        let mut moved = Vec::new();
        for content in ["first", "second", "third"] {
            let staged = dir.path().join(format!("staged-{content}"));
            fs::write(&staged, content).unwrap();
            moved.push(move_into(&staged, &day, "x.csv").unwrap());
            assert!(!staged.exists());
        }
        let names: Vec<_> = moved
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["x.csv", "x (2).csv", "x (3).csv"]);
        assert_eq!(fs::read_to_string(day.join("x.csv")).unwrap(), "first");
        assert_eq!(fs::read_to_string(day.join("x (3).csv")).unwrap(), "third");
    }

    #[test]
    fn long_and_odd_names_are_archived_and_reported_under_names_that_fit() {
        let dir = tempfile::tempdir().unwrap();
        let day = dir.path().join("archive/2026-11-23");
        let long = format!("{}.csv", "ñ".repeat(123)); // 250 bytes
        assert_eq!(long.len(), 250);
        let mut moved = Vec::new();
        for content in ["first", "second", "third"] {
            let staged = dir.path().join(format!("staged-{content}"));
            fs::write(&staged, content).unwrap();
            moved.push(move_into(&staged, &day, &long).unwrap());
        }
        let names: Vec<String> = moved
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(names[0], long, "a name that fits is kept");
        for name in &names[1..] {
            assert!(name.len() <= crate::names::NAME_MAX, "{name}");
            assert!(name.ends_with(".csv"), "{name}");
        }
        assert_ne!(names[1], names[2]);
        assert_eq!(fs::read_to_string(&moved[2]).unwrap(), "third");

        let report = report_file_name("2026-11-23", 1234567, &long);
        assert!(report.len() <= crate::names::NAME_MAX, "{report}");
        assert!(
            report.starts_with("2026-11-23_upload-1234567_ñ"),
            "{report}"
        );
        assert!(report.ends_with(".txt"), "{report}");
        write_report(&dir.path().join("reports"), &report, "text").unwrap();

        let staged = dir.path().join("staged-newline");
        fs::write(&staged, "x").unwrap();
        let moved = move_into(&staged, &day, "roster.csv\nferry.db").unwrap();
        let name = moved.file_name().unwrap().to_str().unwrap();
        assert!(!name.contains('\n'), "{name:?}");
    }

    #[test]
    fn retention_removes_old_days_and_reports_only() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let archive = layout.archive("d");
        for day in ["2026-01-01", "2026-11-23", "not-a-date"] {
            fs::create_dir_all(archive.join(day)).unwrap();
            fs::write(archive.join(day).join("x.csv"), "1").unwrap();
        }
        write_report(&layout.reports("d"), "r.txt", "report").unwrap();
        let removed = remove_expired(&layout, "2026-10-24", Duration::from_secs(3600)).unwrap();
        assert_eq!(removed, 1);
        assert!(!archive.join("2026-01-01").exists());
        assert!(archive.join("2026-11-23/x.csv").exists());
        assert!(archive.join("not-a-date").exists());
        assert!(
            layout.reports("d").join("r.txt").exists(),
            "a fresh report stays"
        );
        let removed = remove_expired(&layout, "2026-10-24", Duration::ZERO).unwrap();
        assert_eq!(removed, 1, "a report older than the retention goes");
    }
}
