//! One claimed batch, from taking its files to archiving them.
//!
//! Steps, each safe to repeat after a crash (the queue hands an unfinished
//! batch to the next node that asks):
//! 1. take: move each file from `/inbound` into the staging area (a file
//!    already there was taken before);
//! 2. refuse, without reading a byte, a file over its size limit (the rule's
//!    `max_size`, `ingest.max_file_size`) or with a control character in its
//!    name; check the others while hashing, in one read
//!    ([`crate::FileChecker`] + SHA-256), never past the limit;
//! 3. the set checks (OneRoster 1.1, Clever) over the batch's files;
//! 4. decide per file: refused, held by the roster guard, a duplicate of
//!    content already handed over, an admin's approval or rejection, or accepted;
//! 5. hand the accepted files over together, then archive every file that is
//!    done and write its report.
//!
//! A file is marked handed over only after the hand-off succeeded, and is
//! never handed over again once marked. The report (in `/reports`, and the
//! row's `detail`) is the district's: what it can act on. What the vendor's
//! import answered goes to the row's vendor detail only.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_store::{ClaimedBatch, Finish, Store, StoreError, Upload, UploadState, format_timestamp};
use sha2::{Digest, Sha256};

use crate::archive::{move_into, report_file_name, write_report};
use crate::checker::too_large;
use crate::handoff::{HandoffBody, HandoffFile, hand_off, hex};
use crate::layout::{Layout, base_name};
use crate::names::{printable, unsafe_character};
use crate::pipeline::{IngestSettings, MAX_AUTOMATIC_ATTEMPTS};
use crate::{
    CheckPlan, FileChecker, FileReport, GuardDecision, OneRosterManifest, Problem, ProblemKind,
    Profile, READ_BUFFER_BYTES, ReportContext, SetReport, check_clever_set, check_oneroster_set,
    render_report, render_set_report, roster_guard,
};

/// What a batch needs besides its files; shared by the pool's tasks.
pub struct BatchContext {
    pub store: Store,
    pub layout: Layout,
    pub settings: Arc<IngestSettings>,
}

/// Why a batch could not be worked on (it stays in the queue and is taken
/// up again when its lease ends).
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file could not be read, moved or written.
    #[error(
        "{what} {path}: {source}; check that the user running ferry may read and write data_dir"
    )]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl BatchError {
    fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_owned();
        move |source| Self::Io { what, path, source }
    }
}

/// What becomes of one file.
#[derive(Debug, Clone)]
enum Verdict {
    Accept,
    Approved {
        by: String,
    },
    Hold(GuardDecision),
    Refused,
    SetRefused,
    AdminRejected {
        by: String,
        guard: Option<GuardDecision>,
    },
    Duplicate {
        of: i64,
    },
}

/// A file that was taken and checked (or refused unread: no checksum).
struct Checked {
    upload: Upload,
    staged: PathBuf,
    report: FileReport,
    sha256: Option<String>,
    verdict: Verdict,
}

/// Works a claimed batch to its end (or to the point where it waits: held
/// files, a failed hand-off).
///
/// # Errors
/// [`BatchError`]; the batch stays in the queue.
pub async fn process_batch(ctx: &BatchContext, batch: ClaimedBatch) -> Result<(), BatchError> {
    tracing::info!(batch = batch.id, account = %batch.account, files = batch.uploads.len(), "batch taken");
    let today = format_timestamp(ctx.store.now().await?)[..10].to_owned();
    let mut checked = Vec::new();
    for upload in batch.uploads {
        if upload.state == UploadState::HandedOff {
            archive_handed_off(ctx, &upload, &today).await?;
            continue;
        }
        match take(&ctx.layout, &upload)? {
            Some(staged) => checked.push(check(ctx, upload, staged).await?),
            None => {
                let why = format!(
                    "the file left /inbound/{} (deleted or renamed) before Ferry took it; nothing was processed",
                    printable(&upload.name)
                );
                tracing::warn!(upload = upload.id, "{why}");
                let finish = Finish {
                    state: UploadState::Rejected,
                    detail: &why,
                    report: None,
                    archive_path: None,
                };
                ctx.store.finish_upload(upload.id, finish).await?;
            }
        }
    }
    let sets = check_sets(ctx, &mut checked, batch.id, &today)?;
    for file in &mut checked {
        if matches!(file.verdict, Verdict::Accept) {
            file.verdict = decide(ctx, file).await?;
        }
    }
    let (accepted, rest): (Vec<Checked>, Vec<Checked>) = checked
        .into_iter()
        .partition(|f| matches!(f.verdict, Verdict::Accept | Verdict::Approved { .. }));
    for file in rest {
        settle_unaccepted(ctx, file, &today).await?;
    }
    if !accepted.is_empty() {
        hand_over(ctx, batch.id, &batch.account, accepted, &sets, &today).await?;
    }
    Ok(())
}

/// The staged path of an upload: where [`take`] puts it.
fn staged_path(layout: &Layout, upload: &Upload) -> PathBuf {
    layout
        .staging_dir(&upload.account, upload.id)
        .join(base_name(&upload.name))
}

/// Moves the file from `/inbound` into staging, unless it is there already.
/// `None` when it left `/inbound` before it was taken.
fn take(layout: &Layout, upload: &Upload) -> Result<Option<PathBuf>, BatchError> {
    let staged = staged_path(layout, upload);
    if staged.is_file() {
        return Ok(Some(staged));
    }
    let source = layout.inbound(&upload.account).join(&upload.name);
    let moved = std::fs::create_dir_all(staged.parent().unwrap_or(Path::new(".")))
        .and_then(|()| std::fs::rename(&source, &staged));
    match moved {
        Ok(()) => Ok(Some(staged)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BatchError::io("cannot take", &source)(e)),
    }
}

/// Checks and hashes the staged file in one read, on a blocking thread —
/// unless its size or its name refuses it first, from the metadata alone.
async fn check(ctx: &BatchContext, upload: Upload, staged: PathBuf) -> Result<Checked, BatchError> {
    let mut plan = ctx
        .settings
        .rules
        .plan_for(Some(&upload.account), base_name(&upload.name));
    let limit = plan.max_size.map_or(ctx.settings.max_file_size, |rule| {
        rule.min(ctx.settings.max_file_size)
    });
    plan.max_size = Some(limit);
    let size = std::fs::symlink_metadata(&staged)
        .map_err(BatchError::io("cannot look at", &staged))?
        .len();
    let refused = match unsafe_character(&upload.name) {
        Some(character) => Some(unsafe_name(character)),
        None => (size > limit).then(|| too_large(size, limit)),
    };
    if let Some(problem) = refused {
        return Ok(Checked {
            report: FileReport::refused_unread(&plan, size, problem),
            sha256: None,
            verdict: Verdict::Refused,
            upload,
            staged,
        });
    }
    let path = staged.clone();
    let read = tokio::task::spawn_blocking(move || check_file(&path, &plan, limit))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()));
    let (report, sha256) = read
        .and_then(|r| r)
        .map_err(BatchError::io("cannot read", &staged))?;
    Ok(Checked {
        verdict: if report.passed() {
            Verdict::Accept
        } else {
            Verdict::Refused
        },
        upload,
        staged,
        report,
        sha256: Some(sha256),
    })
}

/// The problem of a name with a control character.
fn unsafe_name(character: char) -> Problem {
    Problem::new(
        ProblemKind::UnsafeName,
        None,
        format!(
            "the file name contains a control character ({}); Ferry does not pass such names on, because a line break in a name can make the vendor's import read the wrong file",
            printable(&character.to_string())
        ),
        "Rename the file without line breaks, tabs or other control characters and upload it again.",
    )
}

/// The checks' report and the hex SHA-256 of the file at `path`, reading at
/// most one byte past `limit` (a file still growing is refused as too large,
/// never read without end).
fn check_file(path: &Path, plan: &CheckPlan, limit: u64) -> std::io::Result<(FileReport, String)> {
    let mut file = File::open(path)?.take(limit.saturating_add(1));
    let mut checker = FileChecker::new(plan);
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; READ_BUFFER_BYTES];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        checker.feed(&buffer[..n]);
        hasher.update(&buffer[..n]);
    }
    Ok((checker.finish(), hex(&hasher.finalize())))
}

/// Runs the set checks for the profiles that have them; a set that fails
/// refuses all its files. Writes one set report per set to `/reports`.
/// Files an admin approved or rejected are left out: they were held after
/// their set was checked, and travel with the rest of their held set
/// without being checked again. So are files refused unread.
fn check_sets(
    ctx: &BatchContext,
    checked: &mut [Checked],
    batch: i64,
    today: &str,
) -> Result<Vec<SetReport>, BatchError> {
    let mut sets = Vec::new();
    for profile in [Profile::OneRoster11, Profile::Clever] {
        let members: Vec<usize> = (0..checked.len())
            .filter(|&i| {
                checked[i].report.profile == profile
                    && checked[i].upload.decision.is_none()
                    && !checked[i].report.not_read
            })
            .collect();
        let Some(&first) = members.first() else {
            continue;
        };
        let names: Vec<&str> = members
            .iter()
            .map(|&i| base_name(&checked[i].upload.name))
            .collect();
        let set = match profile {
            Profile::OneRoster11 => {
                let manifest = members
                    .iter()
                    .find(|&&i| {
                        checked[i]
                            .report
                            .logical_name
                            .eq_ignore_ascii_case("manifest.csv")
                    })
                    .map(|&i| {
                        File::open(&checked[i].staged)
                            .map_err(Into::into)
                            .and_then(OneRosterManifest::read)
                    });
                check_oneroster_set(&names, manifest.as_ref().map(Result::as_ref))
            }
            _ => check_clever_set(&names),
        };
        let account = checked[first].upload.account.clone();
        let file_name = format!("{today}_batch-{batch}_{}-set.txt", slug(profile));
        let dir = ctx.layout.reports(&account);
        write_report(&dir, &file_name, &render_set_report(&set)).map_err(BatchError::io(
            "cannot write the set report",
            &dir.join(&file_name),
        ))?;
        if !set.passed() {
            for &i in &members {
                checked[i].verdict = Verdict::SetRefused;
            }
        }
        sets.push(set);
    }
    Ok(sets)
}

fn slug(profile: Profile) -> &'static str {
    match profile {
        Profile::OneRoster11 => "oneroster",
        Profile::Clever => "clever",
        Profile::Generic => "csv",
    }
}

/// The verdict for a file that passed its checks: an admin's decision, a
/// duplicate, or the roster guard's.
async fn decide(ctx: &BatchContext, file: &Checked) -> Result<Verdict, BatchError> {
    let upload = &file.upload;
    let by = upload.decision.clone();
    let guard = || async {
        let previous = ctx
            .store
            .previous_accepted_rows(&upload.account, &file.report.logical_name, upload.id)
            .await?;
        let previous = previous.and_then(|rows| u64::try_from(rows).ok());
        Ok::<_, StoreError>(roster_guard(
            file.report.rows,
            previous,
            ctx.settings.max_row_drop,
        ))
    };
    match by.as_deref() {
        Some("rejected") => {
            return Ok(Verdict::AdminRejected {
                by: decider(ctx, upload.id).await?,
                guard: Some(guard().await?).filter(GuardDecision::is_hold),
            });
        }
        Some("approved") => {
            return Ok(Verdict::Approved {
                by: decider(ctx, upload.id).await?,
            });
        }
        _ => {}
    }
    if let Some(sha256) = &file.sha256
        && let Some(of) = ctx
            .store
            .handed_off_duplicate(
                &upload.account,
                &file.report.logical_name,
                sha256,
                upload.id,
            )
            .await?
    {
        return Ok(Verdict::Duplicate { of });
    }
    let decision = guard().await?;
    Ok(if decision.is_hold() {
        Verdict::Hold(decision)
    } else {
        Verdict::Accept
    })
}

/// Who decided on an upload, from the audit log's actor as the store kept it.
async fn decider(ctx: &BatchContext, id: i64) -> Result<String, StoreError> {
    Ok(ctx
        .store
        .upload_decider(id)
        .await?
        .unwrap_or_else(|| "an administrator".to_owned()))
}

/// Files that are not handed over: held ones wait in staging; refused,
/// rejected and duplicate ones are archived. Each gets its report.
async fn settle_unaccepted(
    ctx: &BatchContext,
    file: Checked,
    today: &str,
) -> Result<(), BatchError> {
    let id = file.upload.id;
    let (state, detail, note) = match &file.verdict {
        Verdict::Hold(_) => (
            UploadState::Held,
            "held for review by the roster guard".to_owned(),
            format!(
                "An administrator decides with `ferry uploads approve {id}` (hand it over) or `ferry uploads reject {id}`, or on the account's page."
            ),
        ),
        Verdict::Refused if file.report.not_read => (
            UploadState::Rejected,
            format!(
                "refused without being read: {}",
                file.report.problems.first().map_or("", |p| p.message.as_str())
            ),
            "The file was refused before a byte of it was read, and archived; it was not handed over.".to_owned(),
        ),
        Verdict::Refused => (
            UploadState::Rejected,
            "refused by the checks".to_owned(),
            "The file was archived and not handed over.".to_owned(),
        ),
        Verdict::SetRefused => (
            UploadState::Rejected,
            "refused: its set (see the set report) is not complete".to_owned(),
            "The set this file belongs to failed its checks (see the set report in /reports): no file of it was handed over. The files were archived.".to_owned(),
        ),
        Verdict::AdminRejected { by, .. } => (
            UploadState::Rejected,
            format!("rejected by {by}"),
            format!("Decision: REJECTED by {by}. The file was archived and not handed over."),
        ),
        Verdict::Duplicate { of } => (
            UploadState::Archived,
            format!("duplicate of upload {of}: not handed over again"),
            format!("Not handed over again: the same content of {} was handed over already as upload {of}. The file was archived.", printable(&file.report.logical_name)),
        ),
        Verdict::Accept | Verdict::Approved { .. } => unreachable!("accepted files are handed over"),
    };
    let guard = match &file.verdict {
        Verdict::Hold(guard) => Some(*guard),
        Verdict::AdminRejected { guard, .. } => *guard,
        _ => None,
    };
    let (archive_path, note) = if state == UploadState::Held {
        (None, note)
    } else {
        let path = archive(ctx, &file.upload, &file.staged, today)?;
        let note = format!("{note}\n{}", archived_as(&path));
        (Some(path), note)
    };
    let text = record_report(ctx, &file, guard.as_ref(), &note).await?;
    publish_report(ctx, &file.upload, &text)?;
    let finish = Finish {
        state,
        detail: &detail,
        report: Some(&text),
        archive_path: archive_path.as_deref(),
    };
    ctx.store.finish_upload(id, finish).await?;
    metrics::counter!("ferry_ingest_files_total", "result" => state.as_str()).increment(1);
    tracing::info!(upload = id, name = %printable(&file.upload.name), state = %state, "{}", printable(&detail));
    Ok(())
}

/// Hands the accepted files over together; on success archives them, on
/// failure leaves them in staging, `failed`, for the queue to retry. The
/// district's reports say what the district can act on; what the import
/// answered is kept for the vendor.
async fn hand_over(
    ctx: &BatchContext,
    batch: i64,
    account: &str,
    accepted: Vec<Checked>,
    sets: &[SetReport],
    today: &str,
) -> Result<(), BatchError> {
    let files: Vec<HandoffFile> = accepted
        .iter()
        .map(|f| HandoffFile {
            id: f.upload.id,
            name: f.upload.name.clone(),
            logical_name: f.report.logical_name.clone(),
            path: f.staged.clone(),
            size: f.report.size,
            sha256: f.sha256.clone().unwrap_or_default(),
            checks: f.report.clone(),
        })
        .collect();
    let body = HandoffBody {
        batch_id: batch,
        account,
        files: &files,
        sets,
    };
    let ids: Vec<i64> = accepted.iter().map(|f| f.upload.id).collect();
    let manifest = ctx.layout.manifest(account, batch);
    let outcome = hand_off(&ctx.settings.handoff, &body, &manifest).await;
    if !outcome.detail.is_empty() {
        ctx.store.record_handoff(&ids, &outcome.detail).await?;
    }
    let Err(error) = outcome.result else {
        ctx.store
            .mark_handed_off(&ids, &format!("handed over in batch {batch}"))
            .await?;
        tracing::info!(batch, account, files = ids.len(), "batch handed over");
        metrics::counter!("ferry_ingest_files_total", "result" => "handed_off")
            .increment(ids.len() as u64);
        let handed = if ctx.settings.handoff.is_configured() {
            format!("Handed over to the vendor's import in batch {batch}.")
        } else {
            "No import is set up for these files yet: they were archived only.".to_owned()
        };
        for file in accepted {
            let note = match &file.verdict {
                Verdict::Approved { by } => {
                    format!("Approved by {by} after it was held for review.\n{handed}")
                }
                _ => handed.clone(),
            };
            let archive_path = archive(ctx, &file.upload, &file.staged, today)?;
            let note = format!("{note}\n{}", archived_as(&archive_path));
            let text = record_report(ctx, &file, None, &note).await?;
            finish_archived(ctx, &file.upload, &text, &archive_path).await?;
        }
        return Ok(());
    };
    let vendor = error.to_string();
    tracing::warn!(batch, account, "hand-off failed: {vendor}");
    for file in accepted {
        let id = file.upload.id;
        let district = format!(
            "the vendor's import did not accept this batch; the vendor has been told (reference #{id})"
        );
        let delay = retry_delay(file.upload.attempts);
        let next = if file.upload.attempts >= MAX_AUTOMATIC_ATTEMPTS {
            "Ferry does not try again on its own: the vendor hands it over again once the import is fixed. Nothing needs to be done by the district.".to_owned()
        } else {
            format!(
                "Ferry tries again in {} minutes; nothing needs to be done by the district.",
                delay / 60_000
            )
        };
        let note = format!("The hand-off FAILED: {district}.\n{next}");
        let text = record_report(ctx, &file, None, &note).await?;
        publish_report(ctx, &file.upload, &text)?;
        if file.upload.attempts >= MAX_AUTOMATIC_ATTEMPTS {
            // The one place a hand-off is given up on: the store records it
            // with the vendor's notification in one transaction.
            ctx.store.give_up_upload(id, &district, &vendor).await?;
        } else {
            ctx.store.mark_failed(id, &district, &vendor, delay).await?;
        }
        metrics::counter!("ferry_ingest_files_total", "result" => "failed").increment(1);
    }
    Ok(())
}

/// Wait before the queue retries a failed hand-off: 1 min, doubling, at most 1 h.
fn retry_delay(attempts: i64) -> i64 {
    let doublings = u32::try_from(attempts.clamp(1, 7) - 1).unwrap_or(0);
    (60_000_i64 << doublings).min(3_600_000)
}

/// A file handed over before a crash: archive it now.
async fn archive_handed_off(
    ctx: &BatchContext,
    upload: &Upload,
    today: &str,
) -> Result<(), BatchError> {
    let staged = staged_path(&ctx.layout, upload);
    let report = ctx
        .store
        .upload_report(upload.id)
        .await?
        .unwrap_or_default();
    let handed = format!(
        "{report}\nHanded over in batch {}; archived after a restart.\n",
        upload.batch_id.unwrap_or(0)
    );
    if !staged.is_file() {
        // Archived just before the crash: only the state was not recorded.
        let finish = Finish {
            state: UploadState::Archived,
            detail: "handed over; archived",
            report: Some(&handed),
            archive_path: None,
        };
        ctx.store.finish_upload(upload.id, finish).await?;
        return Ok(());
    }
    let archive_path = archive(ctx, upload, &staged, today)?;
    let text = format!("{handed}{}\n", archived_as(&archive_path));
    finish_archived(ctx, upload, &text, &archive_path).await
}

/// Publishes the report of an archived file and records it as archived.
async fn finish_archived(
    ctx: &BatchContext,
    upload: &Upload,
    text: &str,
    archive_path: &str,
) -> Result<(), BatchError> {
    publish_report(ctx, upload, text)?;
    let finish = Finish {
        state: UploadState::Archived,
        detail: "handed over and archived",
        report: Some(text),
        archive_path: Some(archive_path),
    };
    ctx.store.finish_upload(upload.id, finish).await?;
    Ok(())
}

/// Moves the staged file to `/archive/<today>/`; returns its path under the
/// account's root (`/archive/…`).
fn archive(
    ctx: &BatchContext,
    upload: &Upload,
    staged: &Path,
    today: &str,
) -> Result<String, BatchError> {
    let day = ctx.layout.archive(&upload.account).join(today);
    let moved = move_into(staged, &day, base_name(&upload.name))
        .map_err(BatchError::io("cannot archive", staged))?;
    if let Some(dir) = staged.parent() {
        let _ = std::fs::remove_dir(dir);
    }
    let root = ctx.layout.account_root(&upload.account);
    Ok(moved
        .strip_prefix(&root)
        .unwrap_or(&moved)
        .display()
        .to_string())
}

/// "Archived as /archive/…" for the report.
fn archived_as(archive_path: &str) -> String {
    format!(
        "Archived as /{}.",
        printable(archive_path.trim_start_matches('/'))
    )
}

/// Writes (or rewrites) the upload's report in `/reports`, under a name
/// that fits however long the file's name is.
fn publish_report(ctx: &BatchContext, upload: &Upload, text: &str) -> Result<(), BatchError> {
    let date = &format_timestamp(upload.received_at)[..10];
    let file_name = report_file_name(date, upload.id, base_name(&upload.name));
    let dir = ctx.layout.reports(&upload.account);
    write_report(&dir, &file_name, text).map_err(BatchError::io(
        "cannot write the report",
        &dir.join(&file_name),
    ))?;
    Ok(())
}

/// The file's report: the checks (with the guard's decision when it held
/// the file), then what Ferry did with it.
fn report_text(file: &Checked, guard: Option<&GuardDecision>, what_ferry_did: &str) -> String {
    let received = format_timestamp(file.upload.received_at);
    let context = ReportContext {
        account: Some(&file.upload.account),
        received_at: Some(&received),
        sha256: file.sha256.as_deref(),
        guard,
    };
    let mut text = render_report(&file.report, &context);
    text.push_str(&format!(
        "\nWhat Ferry did (upload {})\n  {}\n",
        file.upload.id,
        what_ferry_did.replace('\n', "\n  ")
    ));
    text
}

/// Renders the file's report with `what_ferry_did` and keeps it, with the
/// checksum, logical name and rows, on the file's queue row.
async fn record_report(
    ctx: &BatchContext,
    file: &Checked,
    guard: Option<&GuardDecision>,
    what_ferry_did: &str,
) -> Result<String, StoreError> {
    let text = report_text(file, guard, what_ferry_did);
    ctx.store
        .record_check(
            file.upload.id,
            file.sha256.as_deref(),
            &file.report.logical_name,
            rows(file),
            &text,
        )
        .await?;
    Ok(text)
}

fn rows(file: &Checked) -> i64 {
    i64::try_from(file.report.rows).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!(retry_delay(1), 60_000);
        assert_eq!(retry_delay(2), 120_000);
        assert_eq!(retry_delay(3), 240_000);
        assert_eq!(retry_delay(50), 3_600_000);
    }
}
