//! Uploads: one row per file a district sent, the durable job queue of ingest.
//!
//! For now the SFTP layer records uploads that ended without a close
//! (`partial`) and finished ones (`received`); ingest will add claiming and
//! state transitions here. This module never touches files on disk.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;
use crate::db;
use crate::error::{Result, StoreError};
use crate::model::{Upload, UploadState};

fn upload_from_row(row: &AnyRow) -> Result<Upload> {
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
    })
}

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
            Some(account) => sqlx::query(
                "SELECT u.id, a.name AS account, u.name, u.size, u.sha256, u.state, \
                 u.received_at, u.updated_at, u.detail \
                 FROM uploads u JOIN accounts a ON a.id = u.account_id \
                 WHERE a.name = $1 ORDER BY u.id DESC LIMIT $2",
            )
            .bind(account)
            .bind(i64::from(limit)),
            None => sqlx::query(
                "SELECT u.id, a.name AS account, u.name, u.size, u.sha256, u.state, \
                 u.received_at, u.updated_at, u.detail \
                 FROM uploads u JOIN accounts a ON a.id = u.account_id \
                 ORDER BY u.id DESC LIMIT $1",
            )
            .bind(i64::from(limit)),
        };
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(upload_from_row).collect()
    }
}
