//! Refused logins, summed up: how many an account had and why.
//!
//! The overview shows refused logins of the last 24 hours with the most
//! common reason, and the notifier raises an alarm when one account is
//! refused again and again for one reason (the district's tool offers the
//! wrong key, or tries before a new key is active). Both read the login
//! attempts through the two functions here and nowhere else, so a change to
//! how attempts are stored is made here once. Repeated refusals from one
//! source are one row with a `repeat_count` (migration 0006): a row counts
//! when its latest repeat falls in the window, with all its repeats.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use crate::Store;
use crate::db;
use crate::error::Result;

/// Refused logins of one account within a window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RefusedLogins {
    /// How many.
    pub count: i64,
    /// The most common reason (the alphabetically first of equally common ones).
    pub top_reason: String,
    /// How many had that reason.
    pub top_count: i64,
}

/// One account refused at least the threshold number of times for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepeatedRefusal {
    /// The account's name (only existing accounts are reported).
    pub account: String,
    /// The reason, as recorded (`key not installed`, `key pending until …`).
    pub reason: String,
    /// How many times within the window.
    pub count: i64,
}

impl Store {
    /// Refused logins since `since_ms` (database clock) per user name: of
    /// every name tried, or of `account` only.
    ///
    /// # Errors
    /// [`crate::StoreError::Database`].
    pub async fn refused_logins_since(
        &self,
        since_ms: i64,
        account: Option<&str>,
    ) -> Result<BTreeMap<String, RefusedLogins>> {
        let query = match account {
            Some(account) => sqlx::query(
                "SELECT account_name, reason, CAST(SUM(repeat_count) AS BIGINT) AS n FROM auth_attempts \
                 WHERE last_at >= $1 AND result = 'refused' AND account_name = $2 \
                 GROUP BY account_name, reason",
            )
            .bind(since_ms)
            .bind(account),
            None => sqlx::query(
                "SELECT account_name, reason, CAST(SUM(repeat_count) AS BIGINT) AS n FROM auth_attempts \
                 WHERE last_at >= $1 AND result = 'refused' GROUP BY account_name, reason",
            )
            .bind(since_ms),
        };
        let mut by_account: BTreeMap<String, RefusedLogins> = BTreeMap::new();
        for row in query.fetch_all(&self.pool).await? {
            let name: String = row.try_get("account_name")?;
            let reason: String = row.try_get("reason")?;
            let n: i64 = row.try_get("n")?;
            let entry = by_account.entry(name).or_default();
            entry.count += n;
            if n > entry.top_count || (n == entry.top_count && reason < entry.top_reason) {
                entry.top_count = n;
                entry.top_reason = reason;
            }
        }
        Ok(by_account)
    }

    /// Existing accounts refused at least `threshold` times for one reason
    /// within the last `window_ms`, by account and reason.
    ///
    /// # Errors
    /// [`crate::StoreError::Database`].
    pub async fn repeated_refusals(
        &self,
        window_ms: i64,
        threshold: i64,
    ) -> Result<Vec<RepeatedRefusal>> {
        let rows = sqlx::query(db::sql(
            self.backend,
            "SELECT t.account_name, t.reason, CAST(SUM(t.repeat_count) AS BIGINT) AS n FROM auth_attempts t \
             JOIN accounts a ON a.name = t.account_name \
             WHERE t.last_at >= {now} - $1 AND t.result = 'refused' \
             GROUP BY t.account_name, t.reason HAVING SUM(t.repeat_count) >= $2 \
             ORDER BY t.account_name, t.reason",
        ))
        .bind(window_ms)
        .bind(threshold)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RepeatedRefusal {
                    account: row.try_get("account_name")?,
                    reason: row.try_get("reason")?,
                    count: row.try_get("n")?,
                })
            })
            .collect()
    }
}
