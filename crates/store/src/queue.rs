//! The ingest job queue: finished files in `uploads`, claimed in batches.
//!
//! This module exists so that every node agrees, through the database alone,
//! on which files are waiting, which node works on which batch and until
//! when, and what became of each file. A node claims all waiting files of a
//! quiet account as one batch and holds a lease on it, renewed while it
//! works ([`Store::renew_lease`]); a node that dies loses its lease and
//! another (or itself, restarted) takes the batch up again. On PostgreSQL
//! claims lock rows with `FOR UPDATE SKIP LOCKED`, so two nodes never take
//! the same file.
//!
//! Batches of different accounts run side by side, on one node or many;
//! one account has at most one batch in flight (`checking` or
//! `handed_off`), on any node: a claim or a retake for an account with a
//! batch in flight gets nothing, so an account's files travel in order.
//! Both take the account's row lock before they decide. Files the roster
//! guard held in one batch travel on together: one an admin decided on
//! waits while another of its batch is still held (`decided_waiting_for_its_set!`).
//! It never touches files on disk.

use sqlx::Row;

use crate::Store;
use crate::accounts::lock_account;
use crate::db;
use crate::error::{Result, StoreError};
use crate::model::{HandoffDetail, Upload, UploadState};
use crate::notices::{NoticeKind, insert_event};
use crate::uploads::{upload_cols, upload_from_row};

/// SQL condition on a waiting upload `u`: an admin approved or rejected it,
/// and another file held in the same batch still waits for a decision.
/// Such a file is not ready yet, so the files of a held set are handed over
/// together once the last of them is decided, however far apart the
/// decisions came. (A macro so that it joins the queries at compile time.)
macro_rules! decided_waiting_for_its_set {
    () => {
        "(u.decision IN ('approved', 'rejected') AND EXISTS (SELECT 1 FROM uploads h \
         WHERE h.batch_id = u.batch_id AND h.state = 'held'))"
    };
}

/// A finished file seen in an account's `/inbound`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenFile {
    /// The account's name.
    pub account: String,
    /// The path under `/inbound`, e.g. `students.csv` or `2026/students.csv`.
    pub name: String,
    /// Bytes.
    pub size: i64,
    /// Modification time, unix ms.
    pub mtime_ms: i64,
    /// The inode, when known: a file moved out of `/inbound` for
    /// processing keeps it, a new upload under the same name gets another.
    pub inode: Option<i64>,
}

/// What [`Store::enqueue_finished`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// A new row, with its id.
    New(i64),
    /// The file was replaced before it was taken: the waiting row now
    /// describes the new content.
    Replaced(i64),
    /// The same file (size and mtime) is queued already.
    AlreadyQueued(i64),
}

/// A batch a node claimed: files of one account, handed over together.
#[derive(Debug, Clone)]
pub struct ClaimedBatch {
    /// The batch's id (`FERRY_BATCH_ID`).
    pub id: i64,
    /// The account's name.
    pub account: String,
    /// The files this node now works on.
    pub uploads: Vec<Upload>,
}

/// Where a file ends, for [`Store::finish_upload`].
#[derive(Debug, Clone, Copy)]
pub struct Finish<'a> {
    /// The new state.
    pub state: UploadState,
    /// What happened, in words.
    pub detail: &'a str,
    /// The report, when it changed.
    pub report: Option<&'a str>,
    /// Where the file was archived (relative to the account's root).
    pub archive_path: Option<&'a str>,
}

impl Store {
    /// Records a finished file as `received`, unless the same file (account,
    /// name, size, mtime) is waiting or being taken already, or — with its
    /// inode known — was queued before in any state (another node, or the
    /// watcher, saw it just before it was taken). A waiting row of the same
    /// name with other content is updated instead of duplicated.
    ///
    /// # Errors
    /// [`StoreError::NoSuchAccount`]; [`StoreError::InvalidValue`] for a negative size.
    pub async fn enqueue_finished(&self, file: &SeenFile) -> Result<Enqueued> {
        let mut results = self.enqueue_all(std::slice::from_ref(file)).await?;
        results.pop().expect("one result per file")
    }

    /// Records finished files as [`Store::enqueue_finished`] does, all in
    /// one transaction: a burst of thousands of uploads is a few writes,
    /// not one per file competing with the batches' writes. Accounts are
    /// locked in name order, so two nodes queueing the same burst never
    /// wait on each other in a circle. One result per file, in order.
    ///
    /// # Errors
    /// [`StoreError::Database`] for all of them; per file
    /// [`StoreError::NoSuchAccount`] or [`StoreError::InvalidValue`].
    pub async fn enqueue_all(&self, files: &[SeenFile]) -> Result<Vec<Result<Enqueued>>> {
        let mut results: Vec<Option<Result<Enqueued>>> = files.iter().map(|_| None).collect();
        let mut to_write = Vec::new();
        for (i, file) in files.iter().enumerate() {
            if file.size < 0 {
                results[i] = Some(Err(StoreError::InvalidValue {
                    what: "an upload's size",
                    rule: "zero or more bytes",
                    got: file.size.to_string(),
                }));
            } else if let Some(id) = same_file_queued(&self.pool, file).await? {
                // Most sightings are of files queued already (the watcher
                // and the scan after the SFTP layer, another node):
                // recognised without the account's lock, then once more
                // under it.
                results[i] = Some(Ok(Enqueued::AlreadyQueued(id)));
            } else {
                to_write.push(i);
            }
        }
        if !to_write.is_empty() {
            to_write.sort_by(|&a, &b| files[a].account.cmp(&files[b].account));
            let mut tx = self.pool.begin().await?;
            let now = db::now(self.backend, &mut *tx).await?;
            for i in to_write {
                results[i] = Some(match enqueue_one(&mut tx, &files[i], now).await {
                    Err(e @ StoreError::NoSuchAccount { .. }) => Err(e),
                    other => Ok(other?),
                });
            }
            tx.commit().await?;
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("a result for every file"))
            .collect())
    }

    /// Accounts whose waiting files are ready to travel: none arrived or
    /// changed in the last `quiet_ms` (files an admin decided on are ready
    /// at once), and no batch of the account is in flight. Longest waiting first.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn quiet_accounts(&self, quiet_ms: i64) -> Result<Vec<String>> {
        let rows = sqlx::query(db::sql(
            self.backend,
            concat!(
                "SELECT a.name FROM uploads u JOIN accounts a ON a.id = u.account_id \
                 WHERE u.state = 'received' AND NOT ",
                decided_waiting_for_its_set!(),
                " AND NOT EXISTS (SELECT 1 FROM uploads f \
                     WHERE f.account_id = a.id AND f.state IN ('checking', 'handed_off')) \
                 GROUP BY a.name \
                 HAVING MAX(CASE WHEN u.decision IS NULL THEN u.updated_at ELSE 0 END) <= {now} - $1 \
                 ORDER BY MIN(u.id)"
            ),
        ))
        .bind(quiet_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok(row.try_get("name")?)).collect()
    }

    /// Claims every waiting file of `account` as a new batch for `node`,
    /// leased for `lease_ms`. `None` when nothing is waiting, a batch of the
    /// account is in flight (here or on another node), or another node was
    /// faster.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn claim_batch(
        &self,
        account: &str,
        node: &str,
        lease_ms: i64,
    ) -> Result<Option<ClaimedBatch>> {
        let mut tx = self.pool.begin().await?;
        let Some(account_id) = lock_account(&mut tx, account).await? else {
            return Ok(None);
        };
        let in_flight = sqlx::query(
            "SELECT id FROM uploads WHERE account_id = $1 \
             AND state IN ('checking', 'handed_off') LIMIT 1",
        )
        .bind(account_id)
        .fetch_optional(&mut *tx)
        .await?;
        if in_flight.is_some() {
            tx.rollback().await?;
            return Ok(None);
        }
        let now = db::now(self.backend, &mut *tx).await?;
        let batch: i64 = sqlx::query(
            "INSERT INTO ingest_batches (account_id, created_at, node_id) \
             VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(account_id)
        .bind(now)
        .bind(node)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        let claimed = sqlx::query(db::sql(
            self.backend,
            concat!(
                "UPDATE uploads SET state = 'checking', batch_id = $1, node_id = $2, \
                 lease_until = $3 + $4, attempts = attempts + 1, updated_at = $3 \
                 WHERE id IN (SELECT u.id FROM uploads u WHERE u.account_id = $5 \
                 AND u.state = 'received' AND NOT ",
                decided_waiting_for_its_set!(),
                " {skip_locked})"
            ),
        ))
        .bind(batch)
        .bind(node)
        .bind(now)
        .bind(lease_ms)
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let uploads = batch_uploads(&mut tx, batch, node).await?;
        tx.commit().await?;
        Ok(Some(ClaimedBatch {
            id: batch,
            account: account.to_owned(),
            uploads,
        }))
    }

    /// Takes up one batch whose lease ran out (its node died or stalled), or
    /// whose failed hand-off is due for another try (fewer than
    /// `max_attempts` so far), unless another batch of its account is in
    /// flight. `None` when there is none.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn retake_batch(
        &self,
        node: &str,
        lease_ms: i64,
        max_attempts: i64,
    ) -> Result<Option<ClaimedBatch>> {
        let mut tx = db::begin_write(&self.pool, self.backend).await?;
        let now = db::now(self.backend, &mut *tx).await?;
        let candidate = sqlx::query(db::sql(
            self.backend,
            "SELECT u.batch_id, u.account_id FROM uploads u WHERE u.batch_id IS NOT NULL \
             AND u.lease_until < $1 \
             AND (u.state IN ('checking', 'handed_off') OR (u.state = 'failed' AND u.attempts < $2)) \
             AND NOT EXISTS (SELECT 1 FROM uploads o WHERE o.account_id = u.account_id \
                 AND o.batch_id <> u.batch_id AND o.state IN ('checking', 'handed_off') \
                 AND o.lease_until >= $1) \
             ORDER BY u.id LIMIT 1 {skip_locked}",
        ))
        .bind(now)
        .bind(max_attempts)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(candidate) = candidate else {
            tx.rollback().await?;
            return Ok(None);
        };
        let batch: i64 = candidate.try_get("batch_id")?;
        let account_id: i64 = candidate.try_get("account_id")?;
        // The account's lock, then the rule again: a claim on another node
        // may have started a batch of the account since the look above.
        let account: String =
            sqlx::query("UPDATE accounts SET enabled = enabled WHERE id = $1 RETURNING name")
                .bind(account_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get("name")?;
        let busy = sqlx::query(
            "SELECT id FROM uploads WHERE account_id = $1 AND batch_id <> $2 \
             AND state IN ('checking', 'handed_off') AND lease_until >= $3 LIMIT 1",
        )
        .bind(account_id)
        .bind(batch)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let retaken = if busy.is_some() {
            0
        } else {
            sqlx::query(
                "UPDATE uploads SET node_id = $1, lease_until = $2 + $3, updated_at = $2, \
                 attempts = CASE WHEN state = 'handed_off' THEN attempts ELSE attempts + 1 END, \
                 state = CASE WHEN state = 'failed' THEN 'checking' ELSE state END \
                 WHERE batch_id = $5 AND lease_until < $2 \
                 AND (state IN ('checking', 'handed_off') OR (state = 'failed' AND attempts < $4))",
            )
            .bind(node)
            .bind(now)
            .bind(lease_ms)
            .bind(max_attempts)
            .bind(batch)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        };
        if retaken == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let uploads = batch_uploads(&mut tx, batch, node).await?;
        tx.commit().await?;
        Ok(Some(ClaimedBatch {
            id: batch,
            account,
            uploads,
        }))
    }

    /// Ends the leases `node` holds, so its unfinished batches are taken up
    /// at once (a node restarting after a crash calls this first).
    /// Returns the number of files released.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn release_node_jobs(&self, node: &str) -> Result<u64> {
        let done = sqlx::query(db::sql(
            self.backend,
            "UPDATE uploads SET lease_until = {now} - 1 \
             WHERE node_id = $1 AND state IN ('checking', 'handed_off')",
        ))
        .bind(node)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Extends `node`'s lease on the batch's unfinished files by `lease_ms`
    /// from now. False when the node no longer holds them.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn renew_lease(&self, batch: i64, node: &str, lease_ms: i64) -> Result<bool> {
        let done = sqlx::query(db::sql(
            self.backend,
            "UPDATE uploads SET lease_until = {now} + $3 \
             WHERE batch_id = $1 AND node_id = $2 AND state IN ('checking', 'handed_off')",
        ))
        .bind(batch)
        .bind(node)
        .bind(lease_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records what checking a file found: its SHA-256 (`None`: refused
    /// without being read), logical name, rows and report.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn record_check(
        &self,
        id: i64,
        sha256: Option<&str>,
        logical_name: &str,
        rows: i64,
        report: &str,
    ) -> Result<()> {
        sqlx::query(db::sql(
            self.backend,
            "UPDATE uploads SET sha256 = $2, logical_name = $3, rows_count = $4, report = $5, \
             updated_at = {now} WHERE id = $1",
        ))
        .bind(id)
        .bind(sha256)
        .bind(logical_name)
        .bind(rows)
        .bind(report)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Rows of the last file of `logical_name` the account had handed over,
    /// other than upload `id` (the roster guard's reference).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn previous_accepted_rows(
        &self,
        account: &str,
        logical_name: &str,
        id: i64,
    ) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT u.rows_count FROM uploads u JOIN accounts a ON a.id = u.account_id \
             WHERE a.name = $1 AND u.logical_name = $2 AND u.id <> $3 \
             AND u.handed_off_at IS NOT NULL AND u.rows_count IS NOT NULL \
             ORDER BY u.handed_off_at DESC, u.id DESC LIMIT 1",
        )
        .bind(account)
        .bind(logical_name)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => row.try_get("rows_count")?,
            None => None,
        })
    }

    /// The id of an upload other than `id` with the same account, logical
    /// name and content that was handed over already, if any.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn handed_off_duplicate(
        &self,
        account: &str,
        logical_name: &str,
        sha256: &str,
        id: i64,
    ) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT u.id FROM uploads u JOIN accounts a ON a.id = u.account_id \
             WHERE a.name = $1 AND u.logical_name = $2 AND u.sha256 = $3 AND u.id <> $4 \
             AND u.handed_off_at IS NOT NULL ORDER BY u.id LIMIT 1",
        )
        .bind(account)
        .bind(logical_name)
        .bind(sha256)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => Some(row.try_get("id")?),
            None => None,
        })
    }

    /// Marks files handed over (the batch's hand-off succeeded).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn mark_handed_off(&self, ids: &[i64], detail: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let now = db::now(self.backend, &mut *tx).await?;
        for id in ids {
            sqlx::query(
                "UPDATE uploads SET state = 'handed_off', handed_off_at = $2, detail = $3, \
                 last_error = NULL, updated_at = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(now)
            .bind(detail)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Moves a file to its end of the line for now (`held`, `rejected`,
    /// `archived`), releasing its lease. A file held or rejected also gets
    /// its notification event, in the same transaction (see `notices`).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn finish_upload(&self, id: i64, finish: Finish<'_>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let now = db::now(self.backend, &mut *tx).await?;
        let row = sqlx::query(
            "UPDATE uploads SET state = $2, detail = $3, report = COALESCE($4, report), \
             archive_path = COALESCE($5, archive_path), lease_until = NULL, updated_at = $6 \
             WHERE id = $1 RETURNING account_id",
        )
        .bind(id)
        .bind(finish.state.as_str())
        .bind(finish.detail)
        .bind(finish.report)
        .bind(finish.archive_path)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let kind = match finish.state {
            UploadState::Held => Some(NoticeKind::Held),
            UploadState::Rejected => Some(NoticeKind::Rejected),
            _ => None,
        };
        if let (Some(row), Some(kind)) = (row, kind) {
            let account_id: i64 = row.try_get("account_id")?;
            insert_event(
                &mut tx,
                now,
                kind,
                account_id,
                Some(id),
                None,
                finish.detail,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks a file's hand-off failed for good: the queue no longer retries
    /// it (an admin can, with `ferry uploads retry`), and the vendor is
    /// notified (an event in the same transaction).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn give_up_upload(&self, id: i64, detail: &str, error: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let now = db::now(self.backend, &mut *tx).await?;
        let row = sqlx::query(
            "UPDATE uploads SET state = 'failed', last_error = $3, detail = $2, \
             lease_until = NULL, updated_at = $4 WHERE id = $1 RETURNING account_id",
        )
        .bind(id)
        .bind(detail)
        .bind(error)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = row {
            let account_id: i64 = row.try_get("account_id")?;
            insert_event(
                &mut tx,
                now,
                NoticeKind::HandoffFailed,
                account_id,
                Some(id),
                None,
                error,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks a file's hand-off failed: `detail` for the district, `error`
    /// for the vendor (`last_error`); the queue tries again after
    /// `retry_in_ms` (see [`Store::retake_batch`]).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn mark_failed(
        &self,
        id: i64,
        detail: &str,
        error: &str,
        retry_in_ms: i64,
    ) -> Result<()> {
        sqlx::query(db::sql(
            self.backend,
            "UPDATE uploads SET state = 'failed', last_error = $3, detail = $2, \
             lease_until = {now} + $4, updated_at = {now} WHERE id = $1",
        ))
        .bind(id)
        .bind(detail)
        .bind(error)
        .bind(retry_in_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Keeps what the vendor's import answered at a hand-off of these files
    /// (the vendor's detail; replaces the previous try's).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn record_handoff(&self, ids: &[i64], detail: &HandoffDetail) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for id in ids {
            sqlx::query(
                "UPDATE uploads SET handoff_exit_status = $2, handoff_output = $3, \
                 webhook_url = $4, webhook_status = $5, webhook_body = $6 WHERE id = $1",
            )
            .bind(id)
            .bind(detail.command_exit_status)
            .bind(detail.command_output.as_deref())
            .bind(detail.webhook_url.as_deref())
            .bind(detail.webhook_status)
            .bind(detail.webhook_body.as_deref())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// [`Store::enqueue_all`]'s work for one file not seen queued before,
/// inside its transaction. [`StoreError::NoSuchAccount`] comes before any
/// write.
async fn enqueue_one(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    file: &SeenFile,
    now: i64,
) -> Result<Enqueued> {
    let account_id =
        lock_account(tx, &file.account)
            .await?
            .ok_or_else(|| StoreError::NoSuchAccount {
                name: file.account.clone(),
            })?;
    if let Some(id) = same_file_queued(&mut **tx, file).await? {
        return Ok(Enqueued::AlreadyQueued(id));
    }
    let waiting = sqlx::query(
        "SELECT id, state FROM uploads \
         WHERE account_id = $1 AND name = $2 AND state IN ('received', 'checking') \
         ORDER BY id DESC LIMIT 1",
    )
    .bind(account_id)
    .bind(&file.name)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(row) = waiting {
        // Other content than the waiting row's (the same was found above).
        let id: i64 = row.try_get("id")?;
        let state: String = row.try_get("state")?;
        if state == "received" {
            sqlx::query(
                "UPDATE uploads SET size = $2, file_mtime = $3, file_inode = $5, \
                 updated_at = $4 WHERE id = $1",
            )
            .bind(id)
            .bind(file.size)
            .bind(file.mtime_ms)
            .bind(now)
            .bind(file.inode)
            .execute(&mut **tx)
            .await?;
            return Ok(Enqueued::Replaced(id));
        }
    }
    let row = sqlx::query(
        "INSERT INTO uploads (account_id, name, size, file_mtime, file_inode, state, \
         received_at, updated_at) VALUES ($1, $2, $3, $4, $6, 'received', $5, $5) RETURNING id",
    )
    .bind(account_id)
    .bind(&file.name)
    .bind(file.size)
    .bind(file.mtime_ms)
    .bind(now)
    .bind(file.inode)
    .fetch_one(&mut **tx)
    .await?;
    Ok(Enqueued::New(row.try_get("id")?))
}

/// The row of the same file (account, name, size, mtime), if it is waiting
/// or being taken, or — its inode known — was queued before in any state.
async fn same_file_queued<'e, E>(executor: E, file: &SeenFile) -> Result<Option<i64>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(
        "SELECT u.id FROM uploads u JOIN accounts a ON a.id = u.account_id \
         WHERE a.name = $1 AND u.name = $2 AND u.size = $3 AND u.file_mtime = $4 \
         AND (u.file_inode = $5 OR u.state IN ('received', 'checking')) \
         ORDER BY u.id DESC LIMIT 1",
    )
    .bind(&file.account)
    .bind(&file.name)
    .bind(file.size)
    .bind(file.mtime_ms)
    .bind(file.inode)
    .fetch_optional(executor)
    .await?;
    Ok(match row {
        Some(row) => Some(row.try_get("id")?),
        None => None,
    })
}

/// The files of `batch` that `node` now holds.
async fn batch_uploads(
    conn: &mut sqlx::AnyConnection,
    batch: i64,
    node: &str,
) -> Result<Vec<Upload>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        upload_cols!(),
        " FROM uploads u JOIN accounts a ON a.id = u.account_id \
         WHERE u.batch_id = $1 AND u.node_id = $2 AND u.state IN ('checking', 'handed_off') \
         ORDER BY u.id"
    ))
    .bind(batch)
    .bind(node)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(upload_from_row).collect()
}
