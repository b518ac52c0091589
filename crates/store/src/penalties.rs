//! The penalised sources of every SFTP node, for people to see and lift.
//!
//! Penalties themselves live in each node's memory (they are checked on
//! every accepted connection, which must never wait for a database). A node
//! writes a row here when a source's penalty becomes active or is extended,
//! which is rare; `ferry penalties` and the admin web read these rows, and a
//! lift marks a row so that the node owning it drops the penalty at its next
//! poll. Nothing here decides who is penalised: that is the SFTP layer.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;
use crate::db::{self, sql};
use crate::error::Result;
use crate::events::insert_audit;
use crate::model::Actor;
use crate::time::serialize_ms;

/// One node's active penalty on one source. JSON: `node, source, reason,
/// since, until`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PenaltyRecord {
    /// The node refusing the source (`ingest.node_id`, else its host name).
    pub node: String,
    /// The source: an IPv4 address or an IPv6 /64 (see [`crate::source_of`]).
    pub source: String,
    /// The latest event that added to the penalty.
    pub reason: String,
    /// When the penalty became active (database clock).
    #[serde(serialize_with = "serialize_ms")]
    pub since: i64,
    /// When it ends unless lifted, or extended by more events.
    #[serde(serialize_with = "serialize_ms")]
    pub until: i64,
}

fn penalty_from_row(row: &AnyRow) -> Result<PenaltyRecord> {
    Ok(PenaltyRecord {
        node: row.try_get("node")?,
        source: row.try_get("source")?,
        reason: row.try_get("reason")?,
        since: row.try_get("since")?,
        until: row.try_get("until")?,
    })
}

impl Store {
    /// Records that `node` refuses `source` for the next `remaining_ms`
    /// (a new penalty, or a longer one). A lift not yet taken up is kept.
    ///
    /// # Errors
    /// [`crate::StoreError::Database`].
    pub async fn record_penalty(
        &self,
        node: &str,
        source: &str,
        reason: &str,
        remaining_ms: i64,
    ) -> Result<()> {
        sqlx::query(sql(
            self.backend,
            "INSERT INTO sftp_penalties (node, source, reason, since, until) \
             VALUES ($1, $2, $3, {now}, {now} + $4) \
             ON CONFLICT (node, source) DO UPDATE SET reason = excluded.reason, \
             until = excluded.until, \
             since = CASE WHEN sftp_penalties.until < excluded.since \
                     THEN excluded.since ELSE sftp_penalties.since END",
        ))
        .bind(node)
        .bind(source)
        .bind(reason)
        .bind(remaining_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every node's penalties that are in force (not ended, not lifted),
    /// by node, then latest end first.
    ///
    /// # Errors
    /// [`crate::StoreError::Database`].
    pub async fn penalties(&self) -> Result<Vec<PenaltyRecord>> {
        let rows = sqlx::query(sql(
            self.backend,
            "SELECT node, source, reason, since, until FROM sftp_penalties \
             WHERE until > {now} AND lifted_at IS NULL ORDER BY node, until DESC, source",
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(penalty_from_row).collect()
    }

    /// Lifts the penalty on `source` (as [`crate::parse_source`] writes it)
    /// on every node that has one in force; each node drops it at its next
    /// poll. Audited as `penalty.lift`. Returns how many nodes had one.
    ///
    /// # Errors
    /// [`crate::StoreError::Database`].
    pub async fn lift_penalty(&self, source: &str, actor: &Actor) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let now = db::now(self.backend, &mut *tx).await?;
        let lifted = sqlx::query(
            "UPDATE sftp_penalties SET lifted_at = $1 \
             WHERE source = $2 AND lifted_at IS NULL AND until > $1",
        )
        .bind(now)
        .bind(source)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if lifted > 0 {
            let detail = format!("lifted the SFTP penalty on {source} ({lifted} node(s))");
            insert_audit(&mut tx, now, actor, None, "penalty.lift", &detail).await?;
        }
        tx.commit().await?;
        Ok(lifted)
    }

    /// The sources whose penalty on `node` was lifted and not yet taken up.
    ///
    /// # Errors
    /// [`crate::StoreError::Database`].
    pub async fn lifted_penalties(&self, node: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT source FROM sftp_penalties WHERE node = $1 AND lifted_at IS NOT NULL",
        )
        .bind(node)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok(row.try_get("source")?)).collect()
    }

    /// Deletes `node`'s rows that were lifted or have ended, once the node
    /// has taken them up. Returns how many went.
    ///
    /// # Errors
    /// [`crate::StoreError::Database`].
    pub async fn forget_penalties(&self, node: &str) -> Result<u64> {
        let done = sqlx::query(sql(
            self.backend,
            "DELETE FROM sftp_penalties WHERE node = $1 \
             AND (lifted_at IS NOT NULL OR until <= {now})",
        ))
        .bind(node)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Deletes every row of `node`: at start, when its memory is empty.
    ///
    /// # Errors
    /// [`crate::StoreError::Database`].
    pub async fn clear_penalties(&self, node: &str) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sftp_penalties WHERE node = $1")
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
