//! Uploads: one row per file a district sent, as people see and steer them.
//!
//! The SFTP layer records uploads that ended without a close (`partial`);
//! ingest records finished ones and moves them along (see `queue.rs`). This
//! module lists them and holds the admin's decisions — approve, reject,
//! retry — which the command line and the web API share, each audited. It
//! never touches files on disk: the running pipeline picks decisions up from
//! the queue.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;
use crate::db;
use crate::error::{Result, StoreError};
use crate::events::insert_audit;
use crate::model::{Actor, HandoffDetail, Upload, UploadState};

pub(crate) fn upload_from_row(row: &AnyRow) -> Result<Upload> {
    let state: String = row.try_get("state")?;
    let state = UploadState::parse(&state).ok_or_else(|| {
        StoreError::Corrupt(format!("upload state `{state}` is not a known state"))
    })?;
    Ok(Upload {
        id: row.try_get("id")?,
        account: row.try_get("account")?,
        name: row.try_get("name")?,
        size: row.try_get("size")?,
        sha256: row.try_get("sha256")?,
        state,
        received_at: row.try_get("received_at")?,
        updated_at: row.try_get("updated_at")?,
        detail: row.try_get("detail")?,
        logical_name: row.try_get("logical_name")?,
        rows: row.try_get("rows_count")?,
        batch_id: row.try_get("batch_id")?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
        decision: row.try_get("decision")?,
        handed_off_at: row.try_get("handed_off_at")?,
        archive_path: row.try_get("archive_path")?,
        handoff: Some(HandoffDetail {
            command_exit_status: row.try_get("handoff_exit_status")?,
            command_output: row.try_get("handoff_output")?,
            webhook_url: row.try_get("webhook_url")?,
            webhook_status: row.try_get("webhook_status")?,
            webhook_body: row.try_get("webhook_body")?,
        })
        .filter(|detail| !detail.is_empty()),
    })
}

/// The columns [`upload_from_row`] reads, for queries over `uploads u JOIN accounts a`.
macro_rules! upload_cols {
    () => {
        "u.id, a.name AS account, u.name, u.size, u.sha256, u.state, \
         u.received_at, u.updated_at, u.detail, u.logical_name, u.rows_count, u.batch_id, \
         u.attempts, u.last_error, u.decision, u.handed_off_at, u.archive_path, \
         u.handoff_exit_status, u.handoff_output, u.webhook_url, u.webhook_status, u.webhook_body"
    };
}
pub(crate) use upload_cols;

impl Store {
    /// Records an upload of `name` (its path under the account root) with
    /// `size` bytes in `state`, stamped with the database clock. Returns its id.
    ///
    /// # Errors
    /// [`StoreError::NoSuchAccount`]; [`StoreError::InvalidValue`] for a
    /// negative size.
    pub async fn record_upload(
        &self,
        account: &str,
        name: &str,
        size: i64,
        state: UploadState,
        detail: Option<&str>,
    ) -> Result<i64> {
        if size < 0 {
            return Err(StoreError::InvalidValue {
                what: "an upload's size",
                rule: "zero or more bytes",
                got: size.to_string(),
            });
        }
        let mut tx = self.pool.begin().await?;
        let now = db::now(self.backend, &mut *tx).await?;
        let row = sqlx::query(
            "INSERT INTO uploads (account_id, name, size, state, received_at, updated_at, detail) \
             SELECT a.id, $2, $3, $4, $5, $5, $6 FROM accounts a WHERE a.name = $1 RETURNING id",
        )
        .bind(account)
        .bind(name)
        .bind(size)
        .bind(state.as_str())
        .bind(now)
        .bind(detail)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::NoSuchAccount {
                name: account.to_owned(),
            });
        };
        let id = row.try_get("id")?;
        tx.commit().await?;
        Ok(id)
    }

    /// The latest `limit` uploads, newest first: of one account, or of all.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn uploads(&self, account: Option<&str>, limit: u32) -> Result<Vec<Upload>> {
        let query = match account {
            Some(account) => sqlx::query(concat!(
                "SELECT ",
                upload_cols!(),
                " FROM uploads u JOIN accounts a ON a.id = u.account_id \
                 WHERE a.name = $1 ORDER BY u.id DESC LIMIT $2"
            ))
            .bind(account)
            .bind(i64::from(limit)),
            None => sqlx::query(concat!(
                "SELECT ",
                upload_cols!(),
                " FROM uploads u JOIN accounts a ON a.id = u.account_id \
                 ORDER BY u.id DESC LIMIT $1"
            ))
            .bind(i64::from(limit)),
        };
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(upload_from_row).collect()
    }

    /// The upload with this id, if any.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn upload(&self, id: i64) -> Result<Option<Upload>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            upload_cols!(),
            " FROM uploads u JOIN accounts a ON a.id = u.account_id WHERE u.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(upload_from_row).transpose()
    }

    /// The plain-text report of an upload (as written to `/reports`), once
    /// the pipeline has checked it.
    ///
    /// # Errors
    /// [`StoreError::NoSuchUpload`].
    pub async fn upload_report(&self, id: i64) -> Result<Option<String>> {
        let row = sqlx::query("SELECT report FROM uploads WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NoSuchUpload { id })?;
        Ok(row.try_get("report")?)
    }

    /// Who approved or rejected an upload (the audit actor, e.g. `cli:alice`), if anyone did.
    ///
    /// # Errors
    /// [`StoreError::NoSuchUpload`].
    pub async fn upload_decider(&self, id: i64) -> Result<Option<String>> {
        let row = sqlx::query("SELECT decided_by FROM uploads WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NoSuchUpload { id })?;
        Ok(row.try_get("decided_by")?)
    }

    /// Approves a held upload: the pipeline hands it over without asking the
    /// roster guard again. Audited as `upload.approve`.
    ///
    /// # Errors
    /// [`StoreError::NoSuchUpload`]; [`StoreError::UploadNotInState`] unless it is held.
    pub async fn approve_upload(&self, id: i64, actor: &Actor) -> Result<Upload> {
        self.decide(id, Decision::Approve, actor).await
    }

    /// Rejects a held upload: the pipeline archives it without handing it
    /// over and says so in its report. Audited as `upload.reject`.
    ///
    /// # Errors
    /// [`StoreError::NoSuchUpload`]; [`StoreError::UploadNotInState`] unless it is held.
    pub async fn reject_upload(&self, id: i64, actor: &Actor) -> Result<Upload> {
        self.decide(id, Decision::Reject, actor).await
    }

    /// Queues a failed upload again (its hand-off failed for good). Audited
    /// as `upload.retry`.
    ///
    /// # Errors
    /// [`StoreError::NoSuchUpload`]; [`StoreError::UploadNotInState`] unless it failed.
    pub async fn retry_upload(&self, id: i64, actor: &Actor) -> Result<Upload> {
        self.decide(id, Decision::Retry, actor).await
    }

    /// Puts a held or failed upload back in the queue (`received`, ready at
    /// once) with the decision recorded, in one audited transaction.
    async fn decide(&self, id: i64, decision: Decision, actor: &Actor) -> Result<Upload> {
        let mut tx = self.pool.begin().await?;
        let now = db::now(self.backend, &mut *tx).await?;
        let row = sqlx::query(
            "SELECT u.state, a.name AS account, u.name FROM uploads u \
             JOIN accounts a ON a.id = u.account_id WHERE u.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NoSuchUpload { id })?;
        let state: String = row.try_get("state")?;
        let state = UploadState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("upload state `{state}`")))?;
        let (from, action, allowed) = decision.applies_to();
        if state != from {
            return Err(StoreError::UploadNotInState {
                id,
                state,
                action,
                allowed,
            });
        }
        let account: String = row.try_get("account")?;
        let name: String = row.try_get("name")?;
        let updated = sqlx::query(
            "UPDATE uploads SET state = 'received', decision = COALESCE($2, decision), \
             decided_by = COALESCE($3, decided_by), last_error = NULL, lease_until = NULL, \
             node_id = NULL, updated_at = $4 WHERE id = $1 AND state = $5",
        )
        .bind(id)
        .bind(decision.stored())
        .bind(decision.stored().map(|_| actor.who.clone()))
        .bind(now)
        .bind(from.as_str())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::Corrupt(format!(
                "upload {id} changed while it was being {action}"
            )));
        }
        let detail = format!("upload {id} ({name})");
        insert_audit(
            &mut tx,
            now,
            actor,
            Some(&account),
            decision.audit_action(),
            &detail,
        )
        .await?;
        tx.commit().await?;
        self.upload(id)
            .await?
            .ok_or(StoreError::NoSuchUpload { id })
    }

    /// Accounts with `expected_every` set and no finished upload within it
    /// (counted from the account's creation when it has none yet), by name.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn stale_accounts(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(db::sql(
            self.backend,
            "SELECT a.name FROM accounts a \
             WHERE a.expected_every_secs IS NOT NULL \
             AND COALESCE((SELECT MAX(u.received_at) FROM uploads u \
                           WHERE u.account_id = a.id AND u.state <> 'partial'), a.created_at) \
                 + a.expected_every_secs * 1000 < {now} \
             ORDER BY a.name",
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok(row.try_get("name")?)).collect()
    }
}

/// An admin's decision on an upload.
#[derive(Debug, Clone, Copy)]
enum Decision {
    Approve,
    Reject,
    Retry,
}

impl Decision {
    /// The state it applies to, the verb for messages, and the rule in words.
    fn applies_to(self) -> (UploadState, &'static str, &'static str) {
        match self {
            Self::Approve => (UploadState::Held, "approved", "held"),
            Self::Reject => (UploadState::Held, "rejected", "held"),
            Self::Retry => (UploadState::Failed, "retried", "failed"),
        }
    }

    /// The value kept in `uploads.decision` (a retry keeps the earlier one).
    fn stored(self) -> Option<&'static str> {
        match self {
            Self::Approve => Some("approved"),
            Self::Reject => Some("rejected"),
            Self::Retry => None,
        }
    }

    fn audit_action(self) -> &'static str {
        match self {
            Self::Approve => "upload.approve",
            Self::Reject => "upload.reject",
            Self::Retry => "upload.retry",
        }
    }
}
