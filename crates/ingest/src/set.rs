//! Checks on a set of files that travel together (one batch): a OneRoster 1.1
//! export against its manifest.csv, a Clever upload against the five files
//! Clever requires.
//!
//! Each file's own columns are checked by the file checks; this module only
//! answers "is the set complete and consistent?", from the names in the batch
//! and (for OneRoster) the parsed manifest. Names are compared as logical
//! names (date suffix removed) and case-insensitively. It never opens files
//! itself: [`OneRosterManifest::read`] takes a reader and reads at most
//! [`MAX_MANIFEST_BYTES`].

use std::io::Read;

use serde::Serialize;
use thiserror::Error;

use crate::charset::{Charset, UTF8_BOM};
use crate::file_name::FileName;
use crate::problem::{Problem, ProblemKind};
use crate::profile::{CLEVER_FILES, ONEROSTER_11_FILES, Profile};

/// The most of manifest.csv that is read (a real one is under 1 KiB).
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024;

/// What manifest.csv says about one data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileMode {
    /// The file holds every record.
    Bulk,
    /// The file holds changes only.
    Delta,
    /// The file is not supplied.
    Absent,
}

impl FileMode {
    /// `bulk`, `delta` or `absent`, as manifest.csv writes it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bulk => "bulk",
            Self::Delta => "delta",
            Self::Absent => "absent",
        }
    }
}

/// One `propertyName,value` line of manifest.csv.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestEntry {
    /// e.g. `file.users`.
    pub property: String,
    /// e.g. `bulk`.
    pub value: String,
    /// Line in manifest.csv.
    pub line: u64,
}

/// A parsed OneRoster manifest.csv.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OneRosterManifest {
    /// Every line after the header, in order.
    pub entries: Vec<ManifestEntry>,
}

/// manifest.csv could not be read as a manifest.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// Reading failed.
    #[error("manifest.csv could not be read: {0}")]
    Read(#[from] std::io::Error),
    /// Over [`MAX_MANIFEST_BYTES`].
    #[error(
        "manifest.csv is larger than {MAX_MANIFEST_BYTES} bytes; a OneRoster manifest is about 20 short lines"
    )]
    TooLarge,
    /// Not CSV.
    #[error("manifest.csv is not a valid CSV file: {0}")]
    Csv(String),
    /// The header is not `propertyName,value`.
    #[error("manifest.csv's header must be propertyName,value; it is {0}")]
    Header(String),
}

impl OneRosterManifest {
    /// Reads manifest.csv (UTF-8 with or without BOM, or Windows-1252).
    ///
    /// # Errors
    /// [`ManifestError`] when it cannot be read or is not a manifest.
    pub fn read<R: Read>(reader: R) -> Result<Self, ManifestError> {
        let mut bytes = Vec::new();
        reader
            .take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge);
        }
        let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(&bytes);
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text.to_string(),
            Err(_) => Charset::Windows1252.decode(bytes),
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let header = reader
            .headers()
            .map_err(|error| ManifestError::Csv(error.to_string()))?
            .clone();
        let names: Vec<String> = header.iter().map(str::to_lowercase).collect();
        let (Some(property_at), Some(value_at)) = (
            names.iter().position(|name| name == "propertyname"),
            names.iter().position(|name| name == "value"),
        ) else {
            return Err(ManifestError::Header(
                header.iter().collect::<Vec<_>>().join(","),
            ));
        };
        let mut entries = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|error| ManifestError::Csv(error.to_string()))?;
            let property = record.get(property_at).unwrap_or_default();
            if property.is_empty() {
                continue;
            }
            entries.push(ManifestEntry {
                property: property.to_string(),
                value: record.get(value_at).unwrap_or_default().to_string(),
                line: record
                    .position()
                    .map_or(0, |position| line_at(&text, position.byte())),
            });
        }
        Ok(Self { entries })
    }

    /// The value of `property` (case-insensitive), if listed.
    #[must_use]
    pub fn value(&self, property: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|entry| entry.property.eq_ignore_ascii_case(property))
            .map(|entry| entry.value.as_str())
    }
}

/// One file of a checked set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetFile {
    /// The name as uploaded.
    pub file_name: String,
    /// The name without its date suffix.
    pub logical_name: String,
    /// What manifest.csv says about it (OneRoster only).
    pub listed_as: Option<FileMode>,
}

/// What the set checks found.
#[derive(Debug, Clone, Serialize)]
pub struct SetReport {
    /// The profile the set was checked against.
    pub profile: Profile,
    /// The files in the set.
    pub files: Vec<SetFile>,
    /// Set-level problems (none have line numbers; messages name the file).
    pub problems: Vec<Problem>,
}

impl SetReport {
    /// True when no problem is an error.
    #[must_use]
    pub fn passed(&self) -> bool {
        !self.problems.iter().any(Problem::is_error)
    }
}

/// The 1-based line of byte `offset` in `text` (LF, CRLF or lone CR line ends).
/// `offset` is where csv says a record starts, which after CRLF is the LF
/// before it, so line-end bytes there are stepped over first.
fn line_at(text: &str, offset: u64) -> u64 {
    let bytes = text.as_bytes();
    let mut start = (offset as usize).min(bytes.len());
    while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
        start += 1;
    }
    let before = &bytes[..start];
    let terminator = if text.contains('\n') { b'\n' } else { b'\r' };
    1 + memchr::memchr_iter(terminator, before).count() as u64
}

fn set_files(file_names: &[&str]) -> Vec<SetFile> {
    file_names
        .iter()
        .map(|name| SetFile {
            file_name: (*name).to_string(),
            logical_name: FileName::parse(name).logical_name,
            listed_as: None,
        })
        .collect()
}

/// Checks a OneRoster 1.1 set: `file_names` as uploaded; `manifest` is what
/// reading manifest.csv gave (`None` when it was not read).
#[must_use]
pub fn check_oneroster_set(
    file_names: &[&str],
    manifest: Option<Result<&OneRosterManifest, &ManifestError>>,
) -> SetReport {
    let mut files = set_files(file_names);
    let mut problems = Vec::new();
    let has_manifest = files
        .iter()
        .any(|file| file.logical_name.eq_ignore_ascii_case("manifest.csv"));
    let present = |files: &[SetFile], name: &str| {
        files
            .iter()
            .any(|file| file.logical_name.eq_ignore_ascii_case(name))
    };
    if !has_manifest {
        problems.push(Problem::new(
            ProblemKind::MissingManifest,
            None,
            "this OneRoster 1.1 upload has no manifest.csv, so Ferry cannot tell which files belong to it or whether they are complete (bulk) or changes (delta)",
            "Include manifest.csv in the export (it lists every file as bulk, delta or absent) and upload the whole set again.",
        ));
        return SetReport {
            profile: Profile::OneRoster11,
            files,
            problems,
        };
    }
    let manifest = match manifest {
        Some(Ok(manifest)) => manifest,
        Some(Err(error)) => {
            problems.push(bad_manifest(error.to_string()));
            return SetReport {
                profile: Profile::OneRoster11,
                files,
                problems,
            };
        }
        None => {
            problems.push(bad_manifest("manifest.csv was not read".into()));
            return SetReport {
                profile: Profile::OneRoster11,
                files,
                problems,
            };
        }
    };
    match manifest.value("oneroster.version") {
        Some(version) if version.trim() == "1.1" => {}
        Some(version) => problems.push(bad_manifest(format!(
            "manifest.csv says oneroster.version is {version}; this account expects OneRoster 1.1"
        ))),
        None => problems.push(bad_manifest(
            "manifest.csv has no oneroster.version line (it should say 1.1)".into(),
        )),
    }
    let mut mentioned: Vec<&str> = Vec::new();
    for entry in &manifest.entries {
        if !entry.property.to_ascii_lowercase().starts_with("file.") {
            continue;
        }
        let key = &entry.property;
        let spec = ONEROSTER_11_FILES
            .iter()
            .find(|file| file.manifest_key.eq_ignore_ascii_case(key));
        if let Some(spec) = spec {
            mentioned.push(spec.file_name);
        }
        let mode = match entry.value.trim().to_ascii_lowercase().as_str() {
            "bulk" => FileMode::Bulk,
            "delta" => FileMode::Delta,
            "absent" => FileMode::Absent,
            _ => {
                problems.push(bad_manifest(format!(
                    "manifest.csv line {}: {key} is {:?}; it must be bulk, delta or absent",
                    entry.line, entry.value
                )));
                continue;
            }
        };
        let Some(spec) = spec else {
            problems.push(Problem::new(
                ProblemKind::UnknownFileName,
                None,
                format!(
                    "manifest.csv line {} lists {key}, which OneRoster 1.1 does not define",
                    entry.line
                ),
                "Remove the line from manifest.csv, or check its spelling against the OneRoster 1.1 file names.",
            ));
            continue;
        };
        for file in files
            .iter_mut()
            .filter(|file| file.logical_name.eq_ignore_ascii_case(spec.file_name))
        {
            file.listed_as = Some(mode);
        }
        let is_present = present(&files, spec.file_name);
        match mode {
            FileMode::Bulk | FileMode::Delta if !is_present => problems.push(Problem::new(
                ProblemKind::MissingSetFile,
                None,
                format!(
                    "manifest.csv lists {} as {} (line {}), but {} is not in this upload",
                    spec.file_name,
                    mode.as_str(),
                    entry.line,
                    spec.file_name
                ),
                format!(
                    "Upload {} with the rest of the set, or mark it absent in manifest.csv if the export really has no such file.",
                    spec.file_name
                ),
            )),
            FileMode::Absent if is_present => problems.push(Problem::new(
                ProblemKind::UnlistedSetFile,
                None,
                format!(
                    "{} is in this upload, but manifest.csv says it is absent (line {}); the import will ignore it",
                    spec.file_name, entry.line
                ),
                format!(
                    "If {} should be imported, set {} to bulk in manifest.csv.",
                    spec.file_name, spec.manifest_key
                ),
            )),
            _ => {}
        }
    }
    for file in &files {
        if let Some(spec) = ONEROSTER_11_FILES
            .iter()
            .find(|spec| spec.file_name.eq_ignore_ascii_case(&file.logical_name))
            && !mentioned.contains(&spec.file_name)
        {
            problems.push(Problem::new(
                ProblemKind::UnlistedSetFile,
                None,
                format!(
                    "{} is in this upload, but manifest.csv does not list {}",
                    file.file_name, spec.manifest_key
                ),
                format!(
                    "Add the line {},bulk to manifest.csv (or delta, if the file holds only changes).",
                    spec.manifest_key
                ),
            ));
        }
    }
    SetReport {
        profile: Profile::OneRoster11,
        files,
        problems,
    }
}

fn bad_manifest(message: String) -> Problem {
    Problem::new(
        ProblemKind::BadManifest,
        None,
        message,
        "Export the OneRoster set again so that manifest.csv is complete (propertyName,value lines with oneroster.version 1.1 and one file.* line per file), then upload the whole set.",
    )
}

/// Checks a Clever set: the five required files must all be there.
#[must_use]
pub fn check_clever_set(file_names: &[&str]) -> SetReport {
    let files = set_files(file_names);
    let required: Vec<&str> = CLEVER_FILES
        .iter()
        .filter(|file| file.required)
        .map(|file| file.file_name)
        .collect();
    let problems = required
        .iter()
        .filter(|name| {
            !files
                .iter()
                .any(|file| file.logical_name.eq_ignore_ascii_case(name))
        })
        .map(|name| {
            Problem::new(
                ProblemKind::MissingSetFile,
                None,
                format!(
                    "{name} is missing; a Clever upload needs {} (staff.csv is optional)",
                    required.join(", ")
                ),
                format!("Upload {name} together with the other files."),
            )
        })
        .collect();
    SetReport {
        profile: Profile::Clever,
        files,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "propertyName,value\nmanifest.version,1.0\noneroster.version,1.1\nfile.academicSessions,bulk\nfile.categories,absent\nfile.classes,bulk\nfile.classResources,absent\nfile.courses,bulk\nfile.courseResources,absent\nfile.demographics,absent\nfile.enrollments,bulk\nfile.lineItems,absent\nfile.orgs,bulk\nfile.resources,absent\nfile.results,absent\nfile.users,bulk\nsource.systemName,Infinite Campus\nsource.systemCode,IC\n";

    #[test]
    fn reads_a_manifest() {
        let manifest = OneRosterManifest::read(MANIFEST.as_bytes()).unwrap();
        assert_eq!(manifest.value("ONEROSTER.version"), Some("1.1"));
        assert_eq!(manifest.entries.len(), 17);
        assert_eq!(manifest.entries[3].line, 5);
    }

    #[test]
    fn complete_set_passes() {
        let manifest = OneRosterManifest::read(MANIFEST.as_bytes()).unwrap();
        let names = [
            "manifest.csv",
            "academicSessions.csv",
            "classes.csv",
            "courses.csv",
            "enrollments.csv",
            "orgs.csv",
            "users_20261123.csv",
        ];
        let report = check_oneroster_set(&names, Some(Ok(&manifest)));
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.files[6].listed_as, Some(FileMode::Bulk));
    }

    #[test]
    fn rejects_bad_manifest_header() {
        let error = OneRosterManifest::read("name,val\na,b\n".as_bytes()).unwrap_err();
        assert!(matches!(error, ManifestError::Header(_)));
    }
}
