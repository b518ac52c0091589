//! One claimed batch, from taking its files to archiving them.
//!
//! Steps, each safe to repeat after a crash (the queue hands an unfinished
//! batch to the next node that asks):
//! 1. take: move each file from `/inbound` into the staging area (a file
//!    already there was taken before);
//! 2. check while hashing, in one read ([`crate::FileChecker`] + SHA-256);
//! 3. the set checks (OneRoster 1.1, Clever) over the batch's files;
//! 4. decide per file: refused, held by the roster guard, a duplicate of
//!    content already handed over, an admin's approval or rejection, or accepted;
//! 5. hand the accepted files over together, then archive every file that is
//!    done and write its report.
//!
//! A file is marked handed over only after the hand-off succeeded, and is
//! never handed over again once marked.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use ferry_store::{ClaimedBatch, Finish, Store, StoreError, Upload, UploadState, format_timestamp};
use sha2::{Digest, Sha256};

use crate::archive::{move_into, report_file_name, write_report};
use crate::handoff::{HandoffBody, HandoffFile, HandoffSettings, hand_off, hex};
use crate::layout::{Layout, base_name};
use crate::{
    FileChecker, FileReport, GuardDecision, MaxRowDrop, OneRosterManifest, Profile,
    READ_BUFFER_BYTES, ReportContext, Rules, SetReport, check_clever_set, check_oneroster_set,
    render_report, render_set_report, roster_guard,
};

/// What a batch needs besides its files.
pub struct BatchContext<'a> {
    pub store: &'a Store,
    pub layout: &'a Layout,
    pub rules: &'a Rules,
    pub max_row_drop: MaxRowDrop,
    pub handoff: &'a HandoffSettings,
    pub node: &'a str,
    /// The lease a node takes on a batch, ms.
    pub lease_ms: i64,
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

/// A file that was taken and checked.
struct Checked {
    upload: Upload,
    staged: PathBuf,
    report: FileReport,
    sha256: String,
    verdict: Verdict,
}

/// Works a claimed batch to its end (or to the point where it waits: held
/// files, a failed hand-off).
///
/// # Errors
/// [`BatchError`]; the batch stays in the queue.
pub async fn process_batch(ctx: &BatchContext<'_>, batch: ClaimedBatch) -> Result<(), BatchError> {
    tracing::info!(batch = batch.id, account = %batch.account, files = batch.uploads.len(), "batch taken");
    let today = format_timestamp(ctx.store.now().await?)[..10].to_owned();
    let mut checked = Vec::new();
    for upload in batch.uploads {
        if upload.state == UploadState::HandedOff {
            archive_handed_off(ctx, &upload, &today).await?;
            continue;
        }
        match take(ctx.layout, &upload) {
            Ok(staged) => checked.push(check(ctx, upload, staged).await?),
            Err(why) => {
                tracing::warn!(upload = upload.id, name = %upload.name, "{why}");
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
fn take(layout: &Layout, upload: &Upload) -> Result<PathBuf, String> {
    let staged = staged_path(layout, upload);
    if staged.is_file() {
        return Ok(staged);
    }
    let source = layout.inbound(&upload.account).join(&upload.name);
    let moved = std::fs::create_dir_all(staged.parent().unwrap_or(Path::new(".")))
        .and_then(|()| std::fs::rename(&source, &staged));
    match moved {
        Ok(()) => Ok(staged),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "the file left /inbound/{} (deleted or renamed) before Ferry took it; nothing was processed",
            upload.name
        )),
        Err(e) => Err(format!(
            "Ferry could not take /inbound/{} ({e}); check the permissions of data_dir",
            upload.name
        )),
    }
}

/// Checks and hashes the staged file in one read, on a blocking thread.
async fn check(
    ctx: &BatchContext<'_>,
    upload: Upload,
    staged: PathBuf,
) -> Result<Checked, BatchError> {
    let plan = ctx
        .rules
        .plan_for(Some(&upload.account), base_name(&upload.name));
    let path = staged.clone();
    let read = tokio::task::spawn_blocking(move || check_file(&path, &plan))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()));
    let (report, sha256) = read.and_then(|r| r).map_err(|source| BatchError::Io {
        what: "cannot read",
        path: staged.clone(),
        source,
    })?;
    Ok(Checked {
        verdict: if report.passed() {
            Verdict::Accept
        } else {
            Verdict::Refused
        },
        upload,
        staged,
        report,
        sha256,
    })
}

/// The checks' report and the hex SHA-256 of the file at `path`.
fn check_file(path: &Path, plan: &crate::CheckPlan) -> std::io::Result<(FileReport, String)> {
    let mut file = File::open(path)?;
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
/// their set was checked, and travel alone.
fn check_sets(
    ctx: &BatchContext<'_>,
    checked: &mut [Checked],
    batch: i64,
    today: &str,
) -> Result<Vec<SetReport>, BatchError> {
    let mut sets = Vec::new();
    for profile in [Profile::OneRoster11, Profile::Clever] {
        // A file an admin decided on travels alone, its set checked before.
        let members: Vec<usize> = (0..checked.len())
            .filter(|&i| {
                checked[i].report.profile == profile && checked[i].upload.decision.is_none()
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
        write_report(&dir, &file_name, &render_set_report(&set)).map_err(|source| {
            BatchError::Io {
                what: "cannot write the set report",
                path: dir.join(&file_name),
                source,
            }
        })?;
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
async fn decide(ctx: &BatchContext<'_>, file: &Checked) -> Result<Verdict, BatchError> {
    let upload = &file.upload;
    let by = upload.decision.clone();
    let guard = || async {
        let previous = ctx
            .store
            .previous_accepted_rows(&upload.account, &file.report.logical_name, upload.id)
            .await?;
        let previous = previous.and_then(|rows| u64::try_from(rows).ok());
        Ok::<_, StoreError>(roster_guard(file.report.rows, previous, ctx.max_row_drop))
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
    if let Some(of) = ctx
        .store
        .handed_off_duplicate(
            &upload.account,
            &file.report.logical_name,
            &file.sha256,
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
async fn decider(ctx: &BatchContext<'_>, id: i64) -> Result<String, StoreError> {
    Ok(ctx
        .store
        .upload_decider(id)
        .await?
        .unwrap_or_else(|| "an administrator".to_owned()))
}

/// Files that are not handed over: held ones wait in staging; refused,
/// rejected and duplicate ones are archived. Each gets its report.
async fn settle_unaccepted(
    ctx: &BatchContext<'_>,
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
            format!("Not handed over again: the same content of {} was handed over already as upload {of}. The file was archived.", file.report.logical_name),
        ),
        Verdict::Accept | Verdict::Approved { .. } => unreachable!("accepted files are handed over"),
    };
    let guard = match &file.verdict {
        Verdict::Hold(guard) => Some(*guard),
        Verdict::AdminRejected { guard, .. } => *guard,
        _ => None,
    };
    let text = record_report(ctx, &file, guard.as_ref(), &note).await?;
    let archive_path = if state == UploadState::Held {
        None
    } else {
        Some(archive(ctx, &file.upload, &file.staged, today)?)
    };
    publish_report(ctx, &file.upload, &text)?;
    let finish = Finish {
        state,
        detail: &detail,
        report: Some(&text),
        archive_path: archive_path.as_deref(),
    };
    ctx.store.finish_upload(id, finish).await?;
    metrics::counter!("ferry_ingest_files_total", "result" => state.as_str()).increment(1);
    tracing::info!(upload = id, name = %file.upload.name, state = %state, "{detail}");
    Ok(())
}

/// Hands the accepted files over together; on success archives them, on
/// failure leaves them in staging, `failed`, for the queue to retry.
async fn hand_over(
    ctx: &BatchContext<'_>,
    batch: i64,
    account: &str,
    accepted: Vec<Checked>,
    sets: &[SetReport],
    today: &str,
) -> Result<(), BatchError> {
    ctx.store.renew_lease(batch, ctx.node, ctx.lease_ms).await?;
    let files: Vec<HandoffFile> = accepted
        .iter()
        .map(|f| HandoffFile {
            id: f.upload.id,
            name: f.upload.name.clone(),
            logical_name: f.report.logical_name.clone(),
            path: f.staged.clone(),
            size: f.report.size,
            sha256: f.sha256.clone(),
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
    match hand_off(ctx.handoff, &body).await {
        Ok(said) => {
            ctx.store
                .mark_handed_off(&ids, &format!("handed over in batch {batch}"))
                .await?;
            tracing::info!(batch, account, files = ids.len(), "batch handed over");
            metrics::counter!("ferry_ingest_files_total", "result" => "handed_off")
                .increment(ids.len() as u64);
            for file in accepted {
                let note = match &file.verdict {
                    Verdict::Approved { by } => format!(
                        "Approved by {by} after it was held for review.\nHanded over in batch {batch}.\n{said}"
                    ),
                    _ => format!("Handed over in batch {batch}.\n{said}"),
                };
                let text = record_report(ctx, &file, None, &note).await?;
                finish_archived(ctx, &file.upload, &file.staged, &text, today).await?;
            }
        }
        Err(error) => {
            let message = error.to_string();
            tracing::warn!(batch, account, "hand-off failed: {message}");
            for file in accepted {
                let delay = retry_delay(file.upload.attempts);
                let note = format!(
                    "The hand-off FAILED: {message}\nFerry tries again in {} s; nothing needs to be done by the district.",
                    delay / 1000
                );
                let text = record_report(ctx, &file, None, &note).await?;
                publish_report(ctx, &file.upload, &text)?;
                ctx.store
                    .mark_failed(file.upload.id, &message, &message, delay)
                    .await?;
                metrics::counter!("ferry_ingest_files_total", "result" => "failed").increment(1);
            }
        }
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
    ctx: &BatchContext<'_>,
    upload: &Upload,
    today: &str,
) -> Result<(), BatchError> {
    let staged = staged_path(ctx.layout, upload);
    let report = ctx
        .store
        .upload_report(upload.id)
        .await?
        .unwrap_or_default();
    let text = format!(
        "{report}\nHanded over in batch {}; archived after a restart.\n",
        upload.batch_id.unwrap_or(0)
    );
    if !staged.is_file() {
        // Archived just before the crash: only the state was not recorded.
        let finish = Finish {
            state: UploadState::Archived,
            detail: "handed over; archived",
            report: Some(&text),
            archive_path: None,
        };
        ctx.store.finish_upload(upload.id, finish).await?;
        return Ok(());
    }
    finish_archived(ctx, upload, &staged, &text, today).await
}

async fn finish_archived(
    ctx: &BatchContext<'_>,
    upload: &Upload,
    staged: &Path,
    text: &str,
    today: &str,
) -> Result<(), BatchError> {
    let archive_path = archive(ctx, upload, staged, today)?;
    publish_report(ctx, upload, text)?;
    let finish = Finish {
        state: UploadState::Archived,
        detail: "handed over and archived",
        report: Some(text),
        archive_path: Some(&archive_path),
    };
    ctx.store.finish_upload(upload.id, finish).await?;
    Ok(())
}

/// Moves the staged file to `/archive/<today>/`; returns its path under the
/// account's root.
fn archive(
    ctx: &BatchContext<'_>,
    upload: &Upload,
    staged: &Path,
    today: &str,
) -> Result<String, BatchError> {
    let day = ctx.layout.archive(&upload.account).join(today);
    let moved =
        move_into(staged, &day, base_name(&upload.name)).map_err(|source| BatchError::Io {
            what: "cannot archive",
            path: staged.to_owned(),
            source,
        })?;
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

/// Writes (or rewrites) the upload's report in `/reports`.
fn publish_report(ctx: &BatchContext<'_>, upload: &Upload, text: &str) -> Result<(), BatchError> {
    let date = &format_timestamp(upload.received_at)[..10];
    let file_name = report_file_name(date, upload.id, base_name(&upload.name));
    let dir = ctx.layout.reports(&upload.account);
    write_report(&dir, &file_name, text).map_err(|source| BatchError::Io {
        what: "cannot write the report",
        path: dir.join(&file_name),
        source,
    })?;
    Ok(())
}

/// The file's report: the checks (with the guard's decision when it held
/// the file), then what Ferry did with it.
fn report_text(file: &Checked, guard: Option<&GuardDecision>, what_ferry_did: &str) -> String {
    let received = format_timestamp(file.upload.received_at);
    let context = ReportContext {
        account: Some(&file.upload.account),
        received_at: Some(&received),
        sha256: Some(&file.sha256),
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
    ctx: &BatchContext<'_>,
    file: &Checked,
    guard: Option<&GuardDecision>,
    what_ferry_did: &str,
) -> Result<String, StoreError> {
    let text = report_text(file, guard, what_ferry_did);
    ctx.store
        .record_check(
            file.upload.id,
            &file.sha256,
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
