//! May this key log in to this account now? Asked at every SSH login, and
//! again every few seconds for every live session.
//!
//! This module exists so that a login and a session already running are
//! judged by the same rule ([`LoginLookup::verdict`], against the database's
//! clock): a session lasts exactly as long as a new login with its key would
//! be accepted, whether the key was revoked, retired or expired or the
//! account disabled, on whichever node that happened. It only reads, except
//! for stamping a key's last use.

use std::collections::HashMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;
use crate::accounts::{account_cols, account_from_row};
use crate::db::sql;
use crate::error::{Result, StoreError};
use crate::keys::{key_cols, key_from_row, relevance};
use crate::model::{KeyRecord, LapsedLogin, LoginLookup};

/// Logins judged per query by [`Store::lapsed_logins`] (two parameters
/// each, far below SQLite's and PostgreSQL's parameter limits).
const LOGINS_PER_QUERY: usize = 500;

/// The lookup of rows that share one (account, fingerprint): the first
/// row's account and database time, and the most relevant key row.
fn lookup_from_rows<'r>(rows: impl IntoIterator<Item = &'r AnyRow>) -> Result<LoginLookup> {
    let mut rows = rows.into_iter().peekable();
    let Some(first) = rows.peek() else {
        return Err(StoreError::Corrupt(
            "the login lookup returned no row".to_owned(),
        ));
    };
    let now: i64 = first.try_get("now_ms")?;
    let account = account_from_row(first)?;
    let mut best: Option<KeyRecord> = None;
    for row in rows {
        if let Some(key) = key_from_row(row, now)?
            && best
                .as_ref()
                .is_none_or(|current| relevance(&key) < relevance(current))
        {
            best = Some(key);
        }
    }
    Ok(LoginLookup {
        now,
        account,
        key: best,
    })
}

impl Store {
    /// Everything an SSH login needs from the store, in one query: the account
    /// (or `None`) and the account's most relevant row for `fingerprint`, with
    /// its state at the database's `now`. [`LoginLookup::verdict`] turns it
    /// into accepted / unknown account / disabled / not installed / pending
    /// until T / revoked / retired / expired.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn login_candidate(&self, account: &str, fingerprint: &str) -> Result<LoginLookup> {
        // The one-row derived table makes the query return a row (and the
        // database time) even when the account does not exist.
        let rows = sqlx::query(sql(
            self.backend,
            concat!(
                "SELECT {now} AS now_ms, ",
                account_cols!(),
                ", ",
                key_cols!(),
                " FROM (SELECT 1 AS one) probe \
                 LEFT JOIN accounts a ON a.name = $1 \
                 LEFT JOIN keys k ON k.account_id = a.id AND k.fingerprint = $2"
            ),
        ))
        .bind(account)
        .bind(fingerprint)
        .fetch_all(&self.pool)
        .await?;
        lookup_from_rows(&rows)
    }

    /// Of the logins `(account, fingerprint)` given (the live sessions of a
    /// node), those a new login would no longer be allowed, each with the
    /// store's verdict (key revoked, retired or expired, account disabled,
    /// …): one query per 500 logins, judged exactly as
    /// [`Store::login_candidate`] judges a login.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn lapsed_logins(&self, logins: &[(String, String)]) -> Result<Vec<LapsedLogin>> {
        let mut lapsed = Vec::new();
        for chunk in logins.chunks(LOGINS_PER_QUERY) {
            lapsed.extend(self.lapsed_among(chunk).await?);
        }
        Ok(lapsed)
    }

    async fn lapsed_among(&self, logins: &[(String, String)]) -> Result<Vec<LapsedLogin>> {
        if logins.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<String> = (0..logins.len())
            .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
            .collect();
        // VALUES names its columns column1, column2 on both backends.
        let text = sql(
            self.backend,
            concat!(
                "SELECT {now} AS now_ms, v.column1 AS probe_account, v.column2 AS probe_fingerprint, ",
                account_cols!(),
                ", ",
                key_cols!(),
                " FROM (VALUES {values}) AS v \
                 LEFT JOIN accounts a ON a.name = v.column1 \
                 LEFT JOIN keys k ON k.account_id = a.id AND k.fingerprint = v.column2"
            ),
        )
        .0
        .replace("{values}", &values.join(", "));
        // Only placeholders were added to the template: values are bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(text));
        for (account, fingerprint) in logins {
            query = query.bind(account.as_str()).bind(fingerprint.as_str());
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut by_login: HashMap<(String, String), Vec<&AnyRow>> = HashMap::new();
        for row in &rows {
            let login = (
                row.try_get("probe_account")?,
                row.try_get("probe_fingerprint")?,
            );
            by_login.entry(login).or_default().push(row);
        }
        let mut lapsed = Vec::new();
        for ((account, fingerprint), rows) in by_login {
            let verdict = lookup_from_rows(rows)?.verdict();
            if !verdict.is_accepted() {
                lapsed.push(LapsedLogin {
                    account,
                    fingerprint,
                    verdict,
                });
            }
        }
        lapsed.sort_by(|a, b| (&a.account, &a.fingerprint).cmp(&(&b.account, &b.fingerprint)));
        Ok(lapsed)
    }

    /// Stamps `last_used_at` of the key that just logged in (database clock).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn mark_key_used(&self, key_id: i64) -> Result<()> {
        sqlx::query(sql(
            self.backend,
            "UPDATE keys SET last_used_at = {now} WHERE id = $1",
        ))
        .bind(key_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
