//! Records of what happened: login attempts and the audit log.
//!
//! Login attempts let an admin answer "why can't we connect?" from the
//! account's page; the audit log answers "who changed this, and when?". Both
//! are append-only here: this module only INSERTs and SELECTs — it must never
//! UPDATE or DELETE an audit row (the schema's triggers refuse it anyway).

use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;
use crate::db::{self, sql};
use crate::error::{Result, StoreError};
use crate::model::{Actor, AuditEvent, AuthAttempt, AuthResult, NewAuthAttempt};

/// Appends one audit row inside the caller's transaction, stamped `now`
/// (the transaction's database time).
pub(crate) async fn insert_audit(
    conn: &mut AnyConnection,
    now: i64,
    actor: &Actor,
    account: Option<&str>,
    action: &str,
    detail: &str,
) -> Result<i64> {
    let row = sqlx::query(
        "INSERT INTO audit (at, actor, account_name, action, detail, client_addr) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(now)
    .bind(actor.who.as_str())
    .bind(account)
    .bind(action)
    .bind(detail)
    .bind(actor.client_addr.as_deref())
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get("id")?)
}

fn auth_attempt_from_row(row: &AnyRow) -> Result<AuthAttempt> {
    let result: String = row.try_get("result")?;
    let result = match result.as_str() {
        "accepted" => AuthResult::Accepted,
        "refused" => AuthResult::Refused,
        other => {
            return Err(StoreError::Corrupt(format!(
                "auth attempt result `{other}` (expected accepted or refused)"
            )));
        }
    };
    Ok(AuthAttempt {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        account_name: row.try_get("account_name")?,
        client_addr: row.try_get("client_addr")?,
        client_banner: row.try_get("client_banner")?,
        fingerprint: row.try_get("fingerprint")?,
        key_type: row.try_get("key_type")?,
        result,
        reason: row.try_get("reason")?,
    })
}

fn audit_from_row(row: &AnyRow) -> Result<AuditEvent> {
    Ok(AuditEvent {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        account_name: row.try_get("account_name")?,
        action: row.try_get("action")?,
        detail: row.try_get("detail")?,
        client_addr: row.try_get("client_addr")?,
    })
}

impl Store {
    /// Records one login attempt, stamped with the database clock. Returns its id.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn record_auth_attempt(&self, attempt: &NewAuthAttempt) -> Result<i64> {
        let row = sqlx::query(sql(
            self.backend,
            "INSERT INTO auth_attempts \
             (at, account_name, client_addr, client_banner, fingerprint, key_type, result, reason) \
             VALUES ({now}, $1, $2, $3, $4, $5, $6, $7) RETURNING id",
        ))
        .bind(attempt.account_name.as_str())
        .bind(attempt.client_addr.as_str())
        .bind(attempt.client_banner.as_str())
        .bind(attempt.fingerprint.as_deref())
        .bind(attempt.key_type.as_deref())
        .bind(attempt.result.as_str())
        .bind(attempt.reason.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// The latest `limit` login attempts for the user name `account`
    /// (whether or not such an account exists), newest first.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn auth_attempts(&self, account: &str, limit: u32) -> Result<Vec<AuthAttempt>> {
        let rows = sqlx::query(
            "SELECT id, at, account_name, client_addr, client_banner, fingerprint, key_type, \
             result, reason FROM auth_attempts WHERE account_name = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(account)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(auth_attempt_from_row).collect()
    }

    /// Appends an audit event on its own (changes made through the store's
    /// other methods are audited already). Returns its id.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn record_audit(
        &self,
        actor: &Actor,
        account: Option<&str>,
        action: &str,
        detail: &str,
    ) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let now = db::now(self.backend, &mut *tx).await?;
        let id = insert_audit(&mut tx, now, actor, account, action, detail).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The latest `limit` audit events, newest first: for one account, or
    /// for everything when `account` is `None`.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn audit_events(&self, account: Option<&str>, limit: u32) -> Result<Vec<AuditEvent>> {
        let query = match account {
            Some(account) => sqlx::query(
                "SELECT id, at, actor, account_name, action, detail, client_addr FROM audit \
                 WHERE account_name = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(account)
            .bind(i64::from(limit)),
            None => sqlx::query(
                "SELECT id, at, actor, account_name, action, detail, client_addr FROM audit \
                 ORDER BY id DESC LIMIT $1",
            )
            .bind(i64::from(limit)),
        };
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(audit_from_row).collect()
    }
}
