//! Sign-in sessions of the admin web, kept server-side.
//!
//! This module exists so that a session is a row, not a signed cookie: the
//! cookie holds 32 random bytes, the database only their SHA-256, and ending
//! a session (sign-out, a disabled admin, a reset password) takes effect on
//! the next request on every node. Expiry is decided here, against the
//! database clock, in one place: idle too long or too old means ended.

use sqlx::Row;

use crate::Store;
use crate::admins::{Admin, admin_from_row, new_secret, token_hash, token_hashes_match};
use crate::db;
use crate::error::Result;
use crate::events::insert_audit;
use crate::model::Actor;

/// How long a session lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// A session unused this long (ms) is over.
    pub idle_ms: i64,
    /// A session this old (ms) is over, however busy.
    pub absolute_ms: i64,
}

impl Default for SessionLimits {
    /// 30 minutes idle, 12 hours in all.
    fn default() -> Self {
        Self {
            idle_ms: 30 * 60 * 1000,
            absolute_ms: 12 * 60 * 60 * 1000,
        }
    }
}

/// A live session: who is signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    /// Database id.
    pub id: i64,
    /// The signed-in admin.
    pub admin: Admin,
}

const SESSION_SELECT: &str = "SELECT s.id AS session_id, s.secret_hash, s.created_at AS session_created_at, \
     s.last_seen_at, ad.id, ad.username, ad.role, a.name AS account, \
     CASE WHEN ad.disabled THEN 1 ELSE 0 END AS disabled, ad.created_at \
     FROM web_sessions s JOIN admins ad ON ad.id = s.admin_id \
     LEFT JOIN accounts a ON a.id = ad.account_id";

impl Store {
    /// Starts a session for `admin` (who has just proved their password) and
    /// returns the secret for the cookie, which is not kept. Audited as
    /// `admin.sign-in`.
    ///
    /// # Errors
    /// [`crate::StoreError::Database`].
    pub async fn start_session(&self, admin: &Admin, client_addr: Option<&str>) -> Result<String> {
        let secret = new_secret();
        let mut tx = self.pool.begin().await?;
        let now = db::now(self.backend, &mut *tx).await?;
        sqlx::query(
            "INSERT INTO web_sessions (secret_hash, admin_id, client_addr, created_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(token_hash(&secret))
        .bind(admin.id)
        .bind(client_addr)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let mut actor = Actor::new(format!("admin:{}", admin.username));
        if let Some(addr) = client_addr {
            actor = actor.with_client_addr(addr);
        }
        insert_audit(
            &mut tx,
            now,
            &actor,
            admin.account.as_deref(),
            "admin.sign-in",
            &format!("{} signed in to the admin web", admin.username),
        )
        .await?;
        tx.commit().await?;
        Ok(secret)
    }

    /// The live session whose cookie secret is `secret`, touched (its idle
    /// clock restarted); `None` when there is none, it was ended, it idled
    /// past `limits.idle_ms` or is older than `limits.absolute_ms`, or its
    /// admin is disabled. An expired session is ended on the way.
    ///
    /// # Errors
    /// [`crate::StoreError::Database`].
    pub async fn session(&self, secret: &str, limits: SessionLimits) -> Result<Option<WebSession>> {
        let hash = token_hash(secret);
        let mut tx = self.pool.begin().await?;
        let now = db::now(self.backend, &mut *tx).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SESSION_SELECT} WHERE s.secret_hash = $1 AND s.ended_at IS NULL"
        )))
        .bind(hash.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stored: String = row.try_get("secret_hash")?;
        if !token_hashes_match(&stored, &hash) {
            return Ok(None);
        }
        let id: i64 = row.try_get("session_id")?;
        let created_at: i64 = row.try_get("session_created_at")?;
        let last_seen_at: i64 = row.try_get("last_seen_at")?;
        let admin = admin_from_row(&row)?;
        let expired = now - last_seen_at > limits.idle_ms || now - created_at > limits.absolute_ms;
        if expired || admin.disabled {
            sqlx::query("UPDATE web_sessions SET ended_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(None);
        }
        sqlx::query("UPDATE web_sessions SET last_seen_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(WebSession { id, admin }))
    }

    /// Ends the session whose cookie secret is `secret` (sign-out); ending an
    /// ended or unknown session changes nothing.
    ///
    /// # Errors
    /// [`crate::StoreError::Database`].
    pub async fn end_session(&self, secret: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let now = db::now(self.backend, &mut *tx).await?;
        sqlx::query(
            "UPDATE web_sessions SET ended_at = $1 WHERE secret_hash = $2 AND ended_at IS NULL",
        )
        .bind(now)
        .bind(token_hash(secret))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Ends every live session of admin `admin_id` (inside the caller's transaction).
pub(crate) async fn end_sessions_of(
    conn: &mut sqlx::AnyConnection,
    admin_id: i64,
    now: i64,
) -> Result<()> {
    sqlx::query("UPDATE web_sessions SET ended_at = $1 WHERE admin_id = $2 AND ended_at IS NULL")
        .bind(now)
        .bind(admin_id)
        .execute(conn)
        .await?;
    Ok(())
}
