//! Records of what happened: login attempts and the audit log.
//!
//! Login attempts let an admin answer "why can't we connect?" from the
//! account's page; the audit log answers "who changed this, and when?".
//! Login attempts arrive from anyone on the internet, so their storage is
//! bounded: repeated refusals of one user name from one source with the same
//! reason become one row with a count, and rows expire after the retention
//! period. The audit log is append-only: this module must never UPDATE or
//! DELETE an audit row (the schema's triggers refuse it anyway).

use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;
use crate::db::{self, sql};
use crate::error::{Result, StoreError};
use crate::model::{Actor, AuditEvent, AuthAttempt, AuthResult, NewAuthAttempt};
use crate::sources::source_of_addr;

/// A refusal repeats the latest row of the same user name, source and
/// reason (instead of adding one) while that row was last seen less than
/// this long ago; after a quiet hour the next refusal starts a new row.
pub const ATTEMPT_REPEAT_WINDOW_MS: i64 = 3_600_000;

/// How a login attempt was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A new row, with this id.
    New(i64),
    /// The refusal repeated the row with this id; it has now been seen
    /// `count` times.
    Repeat {
        /// The row.
        id: i64,
        /// Its count, this attempt included.
        count: i64,
    },
}

impl Recorded {
    /// The row's id.
    #[must_use]
    pub fn id(self) -> i64 {
        match self {
            Self::New(id) | Self::Repeat { id, .. } => id,
        }
    }

    /// How many attempts the row now stands for.
    #[must_use]
    pub fn count(self) -> i64 {
        match self {
            Self::New(_) => 1,
            Self::Repeat { count, .. } => count,
        }
    }
}

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
        count: row.try_get("repeat_count")?,
        last_at: row.try_get("last_at")?,
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
    /// Records one login attempt, stamped with the database clock. A
    /// refusal that repeats a recent one (same user name, source and reason
    /// within [`ATTEMPT_REPEAT_WINDOW_MS`]) adds to that row's count and
    /// moves its `last_at`, address, banner and key to the latest; anything
    /// else is a new row.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn record_auth_attempt(&self, attempt: &NewAuthAttempt) -> Result<Recorded> {
        let source = source_of_addr(&attempt.client_addr);
        // A refusal repeats its row or adds one: one at a time on this node,
        // or simultaneous first refusals from one source would each add one.
        let _one_at_a_time = match attempt.result {
            AuthResult::Refused => Some(self.refusal_rows.lock().await),
            _ => None,
        };
        if attempt.result == AuthResult::Refused {
            let repeated = sqlx::query(sql(
                self.backend,
                "UPDATE auth_attempts SET repeat_count = repeat_count + 1, last_at = {now}, \
                 client_addr = $1, client_banner = $2, fingerprint = $3, key_type = $4 \
                 WHERE id = (SELECT id FROM auth_attempts WHERE account_name = $5 AND source = $6 \
                   AND result = 'refused' AND reason = $7 AND last_at > {now} - $8 \
                   ORDER BY id DESC LIMIT 1) \
                 RETURNING id, repeat_count",
            ))
            .bind(attempt.client_addr.as_str())
            .bind(attempt.client_banner.as_str())
            .bind(attempt.fingerprint.as_deref())
            .bind(attempt.key_type.as_deref())
            .bind(attempt.account_name.as_str())
            .bind(source.as_str())
            .bind(attempt.reason.as_str())
            .bind(ATTEMPT_REPEAT_WINDOW_MS)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = repeated {
                return Ok(Recorded::Repeat {
                    id: row.try_get("id")?,
                    count: row.try_get("repeat_count")?,
                });
            }
        }
        let row = sqlx::query(sql(
            self.backend,
            "INSERT INTO auth_attempts \
             (at, last_at, account_name, client_addr, source, client_banner, fingerprint, \
              key_type, result, reason) \
             VALUES ({now}, {now}, $1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        ))
        .bind(attempt.account_name.as_str())
        .bind(attempt.client_addr.as_str())
        .bind(source.as_str())
        .bind(attempt.client_banner.as_str())
        .bind(attempt.fingerprint.as_deref())
        .bind(attempt.key_type.as_deref())
        .bind(attempt.result.as_str())
        .bind(attempt.reason.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(Recorded::New(row.try_get("id")?))
    }

    /// The latest `limit` login attempts for the user name `account`
    /// (whether or not such an account exists), most recently seen first.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn auth_attempts(&self, account: &str, limit: u32) -> Result<Vec<AuthAttempt>> {
        let rows = sqlx::query(
            "SELECT id, at, last_at, repeat_count, account_name, client_addr, client_banner, \
             fingerprint, key_type, result, reason FROM auth_attempts WHERE account_name = $1 \
             ORDER BY last_at DESC, id DESC LIMIT $2",
        )
        .bind(account)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(auth_attempt_from_row).collect()
    }

    /// Deletes the login attempts last seen more than `retention_ms` ago.
    /// Returns how many rows went.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn prune_auth_attempts(&self, retention_ms: i64) -> Result<u64> {
        let done = sqlx::query(sql(
            self.backend,
            "DELETE FROM auth_attempts WHERE last_at < {now} - $1",
        ))
        .bind(retention_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
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
