//! Ingest: what happens to a district's upload once it is finished.
//!
//! Two halves:
//! - **The pipeline** ([`run`], [`IngestSettings`]): finished-file
//!   detection (SFTP events, a watcher, periodic scans, the settle rule),
//!   the durable job queue in the store's `uploads` table, batches per quiet
//!   account, the checks, the roster guard, the hand-off (command and/or
//!   signed webhook), the archive, the reports and retention. Modules:
//!   `layout` (paths), `finished` (when a file is finished), `scan`, `watch`,
//!   `pool` (batches of different accounts side by side), `lease` (the
//!   heartbeat), `batch` (one claimed batch, start to end), `handoff` and
//!   `launch` (starting the command so it dies with its node),
//!   `names` (names that are refused, names that fit), `archive`,
//!   `pipeline` (the running tasks).
//! - **The checks**, a pure library that touches neither the store, the
//!   clock nor the file system: callers pass readers and facts in.
//!
//! # Checking one file
//! ```
//! use ferry_ingest::{GuardDecision, MaxRowDrop, ReportContext, Rules, check_reader, render_report, roster_guard};
//!
//! let rules = Rules::from_toml_str(r#"
//!     [[rules]]
//!     pattern = "students*.csv"
//!     required_columns = ["student_id", "last_name"]
//! "#).unwrap();
//! let plan = rules.plan_for(Some("lincoln-usd"), "students_20261123.csv");
//! let file = "student_id,last_name\n1,García\n2,Núñez\n".as_bytes(); // any std::io::Read
//! let report = check_reader(file, &plan).unwrap();
//! assert!(report.passed());
//! assert_eq!(report.logical_name, "students.csv");
//! assert_eq!(report.rows, 2);
//!
//! let guard = roster_guard(report.rows, Some(2), MaxRowDrop::default());
//! assert_eq!(guard, GuardDecision::Pass);
//! let text = render_report(&report, &ReportContext { sha256: Some("9f86…"), guard: Some(&guard), ..Default::default() });
//! assert!(text.contains("Result: ACCEPTED"));
//! ```
//!
//! - [`Rules`] → [`CheckPlan`] ([`Rules::plan_for`] or [`CheckPlan::new`]):
//!   the rule for a file name, its profile's required columns, its date suffix.
//! - [`check_reader`]`(impl Read, &CheckPlan) -> Result<FileReport, CheckError>`,
//!   or [`FileChecker`] (`feed` chunks, `finish`) to check while hashing in the
//!   same read. One pass, bounded memory (a 256 KiB buffer, at most 64 KiB of
//!   header, at most 20 listed problems per kind); 1 GiB in a few seconds.
//! - [`FileReport`] (serde `Serialize`): file and logical name, date suffix,
//!   size, encoding (named, and whether detected), delimiter, header, columns,
//!   rows, and [`Problem`]s — each with its [`ProblemKind`] code, severity,
//!   line, plain-English message and what to do.
//! - [`check_oneroster_set`] (with [`OneRosterManifest::read`]) and
//!   [`check_clever_set`] → [`SetReport`].
//! - [`roster_guard`]`(rows, previous accepted rows, MaxRowDrop) -> GuardDecision`.
//! - [`render_report`] / [`render_set_report`]: the text for `/reports/`.
//!
//! # What the file checks report
//! - Character set, per the rule: `utf-8` (BOM optional; invalid bytes are
//!   errors with their lines), `us-ascii` (bytes over 127 are errors),
//!   `windows-1252` (all bytes decode; a file that looks like UTF-8 is a
//!   warning), or `auto`: a UTF-8 BOM means UTF-8 with BOM, only bytes under
//!   128 means US-ASCII, valid UTF-8 means UTF-8, anything else Windows-1252
//!   (decoded with `encoding_rs`), and the report says which and why.
//!   UTF-16 and spreadsheets (xlsx/xls) saved under a `.csv` name are named.
//! - Delimiter `,` `\t` `|` `;` as required, or detected from the header line
//!   (the candidate occurring most often outside quotes).
//! - The header row (the first non-blank line) and required columns
//!   (case-insensitive, trimmed); duplicate columns; OneRoster column order.
//! - Every row's column count against the header's, with the lines of the
//!   first 20 offending rows and the total.
//! - Quoting: a quote never closed (error, with the line it opens on), text
//!   after a closing quote (error), a quote inside an unquoted value (warning:
//!   it is read literally, as other readers do), a quoted value spanning more
//!   than 10 lines (warning: usually a stray quote).
//! - Empty values in columns the profile requires a value in (OneRoster).
//! - Blank lines (warning), an empty file (error), a header with no rows
//!   (warning; the roster guard holds such a file), the rule's size limit.
//! - The file name's date suffix: `_yyyymmdd`, `_yyyymmddhhmmss`,
//!   `_yyyymmddhhmmssSS` before the extension (as Infinite Campus appends
//!   them), validated as a real date and time and removed to give the logical
//!   name (`students_20261123.csv` → `students.csv`); a suffix that is not a
//!   real date (`_20261345`) is an error, since the file could not be matched
//!   with its previous version.
//!
//! Line numbers are lines as a text editor counts them (LF, CRLF or CR), and
//! a row spanning lines is reported on the line it starts on.
//!
//! # Rules (TOML)
//! [`Rules`] deserialises from this shape; `ferry serve` reads it from the
//! file named by `[ingest] rules_file` (none: the default below for every
//! file). For each file the account's rules are
//! tried in order, then the global ones; the first whose pattern matches wins
//! as a whole (rules are not merged). With no match, the default applies:
//! generic CSV, charset and delimiter `auto`, no required columns, no size
//! limit. Unknown keys and bad values are refused with the key named.
//!
//! ```toml
//! [[rules]]                          # global, tried after the account's own
//! pattern = "students*.csv"          # * and ?, case-insensitive, on the name as uploaded
//! profile = "generic"                # generic | oneroster-1.1 | clever
//! charset = "auto"                   # auto | utf-8 | us-ascii | windows-1252
//! delimiter = ","                    # auto | "," | "\t" | "|" | ";" (or comma, tab, pipe, semicolon)
//! required_columns = ["Student_id", "School_id"]   # on top of the profile's
//! max_size = "500 MB"                # bytes as a number, or B/KB/MB/GB/TB, KiB/MiB/GiB/TiB
//!
//! [[rules]]
//! pattern = "*.csv"
//!
//! [[accounts.lincoln-usd.rules]]     # only for account lincoln-usd, tried first
//! pattern = "*.csv"
//! profile = "oneroster-1.1"
//! ```
//!
//! # Profiles
//! - `generic`: the rule's settings only.
//! - `oneroster-1.1`: each file's header must have every column the OneRoster
//!   1.1 CSV tables give for it (e.g. orgs.csv: sourcedId, status,
//!   dateLastModified, name, type, identifier, parentSourcedId), in that order
//!   (a different order is a warning), and the spec's required fields must
//!   not be empty; manifest.csv needs propertyName,value. The set must have
//!   manifest.csv, every file it lists as bulk or delta must be present, and
//!   files it does not list or lists as absent are reported.
//! - `clever`: schools, students, teachers, sections and enrollments are
//!   required (staff optional), each with Clever's required columns.

mod archive;
mod batch;
mod charset;
mod checker;
mod csv_scan;
mod delimiter;
mod file_name;
mod finished;
mod guard;
mod handoff;
mod launch;
mod layout;
mod lease;
mod names;
mod pipeline;
mod pool;
mod problem;
mod profile;
mod report_text;
mod rules;
mod scan;
mod set;
mod watch;

pub use archive::{move_into, numbered_name, remove_expired, report_file_name};
pub use batch::BatchError;
pub use finished::{Settler, is_client_temp_name, is_temp_path};
pub use handoff::{
    HandoffBody, HandoffError, HandoffFile, HandoffOutcome, HandoffSettings, redacted_url,
    signature,
};
pub use launch::{LAUNCH_ARG, exec_hand_off};
pub use layout::Layout;
pub use names::{NAME_MAX, file_name_that_fits, printable, unsafe_character};
pub use pipeline::{DEFAULT_LEASE, FinishedUpload, IngestSettings, MAX_AUTOMATIC_ATTEMPTS, run};

pub use charset::{Charset, CharsetRule};
pub use checker::{
    CheckError, FileChecker, FileReport, READ_BUFFER_BYTES, check_reader, too_large,
};
pub use delimiter::{Delimiter, DelimiterRule, detect_delimiter};
pub use file_name::{DateSuffix, FileName};
pub use guard::{GuardDecision, HoldReason, MaxRowDrop, MaxRowDropError, roster_guard};
pub use problem::{MAX_LISTED_PER_KIND, Problem, ProblemKind, Severity};
pub use profile::{
    CLEVER_FILES, CleverFile, ONEROSTER_11_FILES, ONEROSTER_MANIFEST_COLUMNS, OneRosterFile,
    Profile, clever_file, oneroster_file,
};
pub use report_text::{Outcome, ReportContext, outcome, render_report, render_set_report};
pub use rules::{AccountRules, ByteSize, CheckPlan, FilePattern, FileRule, Rules, RulesError};
pub use set::{
    FileMode, MAX_MANIFEST_BYTES, ManifestEntry, ManifestError, OneRosterManifest, SetFile,
    SetReport, check_clever_set, check_oneroster_set,
};
