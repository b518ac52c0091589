//! Accounts: one per district, named by its SSH user name.
//!
//! This module exists to keep account rules in one place: the name format,
//! the uniqueness check that also holds under concurrent creation, and the
//! audit row that goes with every change. It never deletes an account (keys,
//! uploads and the audit log refer to it).

use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

use crate::Store;
use crate::db;
use crate::error::{Result, StoreError};
use crate::events::insert_audit;
use crate::model::{Account, Actor};

/// The account columns, aliased `a_*`, for queries over `accounts a`.
macro_rules! account_cols {
    () => {
        "a.id AS a_id, a.name AS a_name, a.display_name AS a_display_name, \
         CASE WHEN a.enabled THEN 1 ELSE 0 END AS a_enabled, \
         CASE WHEN a.legacy_clients THEN 1 ELSE 0 END AS a_legacy_clients, \
         a.expected_every_secs AS a_expected_every_secs, a.created_at AS a_created_at"
    };
}
pub(crate) use account_cols;

/// The account in `row` (columns from [`account_cols!`]), or `None` when the
/// row came from an outer join that found no account.
pub(crate) fn account_from_row(row: &AnyRow) -> Result<Option<Account>> {
    let Some(id) = row.try_get::<Option<i64>, _>("a_id")? else {
        return Ok(None);
    };
    Ok(Some(Account {
        id,
        name: row.try_get("a_name")?,
        display_name: row.try_get("a_display_name")?,
        enabled: row.try_get::<i64, _>("a_enabled")? != 0,
        legacy_clients: row.try_get::<i64, _>("a_legacy_clients")? != 0,
        expected_every_secs: row.try_get("a_expected_every_secs")?,
        created_at: row.try_get("a_created_at")?,
    }))
}

/// The longest account name, in bytes: a login with a longer user name can
/// be refused without asking the database.
pub const MAX_ACCOUNT_NAME_BYTES: usize = 63;

/// Whether `name` is a valid account name: `[a-z0-9][a-z0-9_-]{0,62}`.
#[must_use]
pub(crate) fn valid_account_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_ACCOUNT_NAME_BYTES
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Takes the account's row lock for the rest of the transaction and returns
/// its id, or `None` if there is no such account. Writing the row (to the
/// same value) is the one row lock both SQLite and PostgreSQL understand:
/// concurrent key changes to one account run one after the other.
pub(crate) async fn lock_account(conn: &mut AnyConnection, name: &str) -> Result<Option<i64>> {
    let row = sqlx::query("UPDATE accounts SET enabled = enabled WHERE name = $1 RETURNING id")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        Some(row) => Some(row.try_get("id")?),
        None => None,
    })
}

/// One account by name, read with `executor`.
async fn fetch_account<'e, E>(executor: E, name: &str) -> Result<Option<Account>>
where
    E: Executor<'e, Database = Any>,
{
    let row = sqlx::query(concat!(
        "SELECT ",
        account_cols!(),
        " FROM accounts a WHERE a.name = $1"
    ))
    .bind(name)
    .fetch_optional(executor)
    .await?;
    match row {
        Some(row) => account_from_row(&row),
        None => Ok(None),
    }
}

/// A change to one account setting.
enum Change {
    Enabled(bool),
    LegacyClients(bool),
    ExpectedEvery(Option<i64>),
}

fn on_off(value: bool) -> &'static str {
    if value { "on" } else { "off" }
}

fn every(value: Option<i64>) -> String {
    value.map_or_else(|| "off".to_owned(), |secs| format!("{secs} s"))
}

impl Store {
    /// Creates an account (enabled). Audited as `account.create`.
    ///
    /// # Errors
    /// [`StoreError::InvalidAccountName`] unless the name matches
    /// `[a-z0-9][a-z0-9_-]{0,62}`; [`StoreError::AccountExists`].
    pub async fn create_account(
        &self,
        name: &str,
        display_name: Option<&str>,
        legacy_clients: bool,
        actor: &Actor,
    ) -> Result<Account> {
        if !valid_account_name(name) {
            return Err(StoreError::InvalidAccountName {
                name: name.to_owned(),
            });
        }
        let display_name = display_name.map(str::trim).filter(|d| !d.is_empty());
        let mut tx = self.pool.begin().await?;
        let now = db::now(self.backend, &mut *tx).await?;
        let inserted = sqlx::query(
            "INSERT INTO accounts (name, display_name, enabled, legacy_clients, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(name)
        .bind(display_name)
        .bind(true)
        .bind(legacy_clients)
        .bind(now)
        .fetch_one(&mut *tx)
        .await;
        let id: i64 = match inserted {
            Ok(row) => row.try_get("id")?,
            Err(err) if StoreError::is_unique_violation(&err) => {
                return Err(StoreError::AccountExists {
                    name: name.to_owned(),
                });
            }
            Err(err) => return Err(err.into()),
        };
        let detail = format!(
            "created account {name}{}; legacy clients {}",
            display_name
                .map(|d| format!(" ({d:?})"))
                .unwrap_or_default(),
            on_off(legacy_clients)
        );
        insert_audit(&mut tx, now, actor, Some(name), "account.create", &detail).await?;
        tx.commit().await?;
        Ok(Account {
            id,
            name: name.to_owned(),
            display_name: display_name.map(str::to_owned),
            enabled: true,
            legacy_clients,
            expected_every_secs: None,
            created_at: now,
        })
    }

    /// Every account, by name.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn accounts(&self) -> Result<Vec<Account>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            account_cols!(),
            " FROM accounts a ORDER BY a.name"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .filter_map(|row| account_from_row(row).transpose())
            .collect()
    }

    /// The account named `name`, if any.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn account(&self, name: &str) -> Result<Option<Account>> {
        fetch_account(&self.pool, name).await
    }

    /// Enables or disables logins for the account. Audited as
    /// `account.enable` / `account.disable` when it changes anything.
    ///
    /// # Errors
    /// [`StoreError::NoSuchAccount`].
    pub async fn set_account_enabled(
        &self,
        name: &str,
        enabled: bool,
        actor: &Actor,
    ) -> Result<Account> {
        self.change_account(name, Change::Enabled(enabled), actor)
            .await
    }

    /// Allows or refuses `ssh-rsa` (SHA-1) signatures for the account's
    /// logins. Audited as `account.legacy_clients`.
    ///
    /// # Errors
    /// [`StoreError::NoSuchAccount`].
    pub async fn set_legacy_clients(
        &self,
        name: &str,
        legacy_clients: bool,
        actor: &Actor,
    ) -> Result<Account> {
        self.change_account(name, Change::LegacyClients(legacy_clients), actor)
            .await
    }

    /// Sets how often the account is expected to upload (`None`: no
    /// expectation). Audited as `account.expected_every`.
    ///
    /// # Errors
    /// [`StoreError::InvalidValue`] for zero or negative seconds;
    /// [`StoreError::NoSuchAccount`].
    pub async fn set_expected_every(
        &self,
        name: &str,
        every_secs: Option<i64>,
        actor: &Actor,
    ) -> Result<Account> {
        if let Some(secs) = every_secs
            && secs <= 0
        {
            return Err(StoreError::InvalidValue {
                what: "the expected upload interval",
                rule: "a positive number of seconds (or off)",
                got: secs.to_string(),
            });
        }
        self.change_account(name, Change::ExpectedEvery(every_secs), actor)
            .await
    }

    async fn change_account(&self, name: &str, change: Change, actor: &Actor) -> Result<Account> {
        let no_such = || StoreError::NoSuchAccount {
            name: name.to_owned(),
        };
        let mut tx = self.pool.begin().await?;
        lock_account(&mut tx, name).await?.ok_or_else(no_such)?;
        let now = db::now(self.backend, &mut *tx).await?;
        let mut account = fetch_account(&mut *tx, name).await?.ok_or_else(no_such)?;

        let (action, detail) = match change {
            Change::Enabled(enabled) => {
                if account.enabled == enabled {
                    return Ok(account);
                }
                sqlx::query("UPDATE accounts SET enabled = $1 WHERE id = $2")
                    .bind(enabled)
                    .bind(account.id)
                    .execute(&mut *tx)
                    .await?;
                account.enabled = enabled;
                if enabled {
                    ("account.enable", "enabled logins".to_owned())
                } else {
                    ("account.disable", "disabled logins".to_owned())
                }
            }
            Change::LegacyClients(legacy) => {
                if account.legacy_clients == legacy {
                    return Ok(account);
                }
                sqlx::query("UPDATE accounts SET legacy_clients = $1 WHERE id = $2")
                    .bind(legacy)
                    .bind(account.id)
                    .execute(&mut *tx)
                    .await?;
                account.legacy_clients = legacy;
                (
                    "account.legacy_clients",
                    format!(
                        "legacy clients (ssh-rsa SHA-1 signatures) {} (was {})",
                        on_off(legacy),
                        on_off(!legacy)
                    ),
                )
            }
            Change::ExpectedEvery(secs) => {
                if account.expected_every_secs == secs {
                    return Ok(account);
                }
                sqlx::query("UPDATE accounts SET expected_every_secs = $1 WHERE id = $2")
                    .bind(secs)
                    .bind(account.id)
                    .execute(&mut *tx)
                    .await?;
                let was = every(account.expected_every_secs);
                account.expected_every_secs = secs;
                (
                    "account.expected_every",
                    format!("expected upload every {} (was {was})", every(secs)),
                )
            }
        };
        insert_audit(&mut tx, now, actor, Some(name), action, &detail).await?;
        tx.commit().await?;
        tracing::info!(account = name, actor = %actor.who, action, "{detail}");
        Ok(account)
    }
}

#[cfg(test)]
mod tests {
    use super::valid_account_name;

    #[test]
    fn account_names() {
        for good in ["a", "0", "springfield-usd", "d_42", &"a".repeat(63)] {
            assert!(valid_account_name(good), "{good}");
        }
        for bad in [
            "",
            "-a",
            "_a",
            "A",
            "abc.def",
            "a b",
            "a/b",
            "é",
            &"a".repeat(64),
        ] {
            assert!(!valid_account_name(bad), "{bad}");
        }
    }
}
