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
use crate::model::{Account, AccountLimits, Actor, LimitsChange};
use crate::text::format_size;

/// The account columns, aliased `a_*`, for queries over `accounts a`.
macro_rules! account_cols {
    () => {
        "a.id AS a_id, a.name AS a_name, a.display_name AS a_display_name, \
         CASE WHEN a.enabled THEN 1 ELSE 0 END AS a_enabled, \
         CASE WHEN a.legacy_clients THEN 1 ELSE 0 END AS a_legacy_clients, \
         a.expected_every_secs AS a_expected_every_secs, a.created_at AS a_created_at, \
         a.max_handles AS a_max_handles, a.max_file_size AS a_max_file_size, \
         a.quota_bytes AS a_quota_bytes"
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
        limits: AccountLimits {
            max_handles: limit_from_row(row, "a_max_handles")?,
            max_file_size: limit_from_row(row, "a_max_file_size")?,
            quota: limit_from_row(row, "a_quota_bytes")?,
        },
    }))
}

fn limit_from_row(row: &AnyRow, column: &str) -> Result<Option<u64>> {
    let value: Option<i64> = row.try_get(column)?;
    Ok(value.and_then(|v| u64::try_from(v).ok()))
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
    Limits(LimitsChange),
}

/// The most handles an account may be given (sessions hold them in memory).
pub const MAX_HANDLES_LIMIT: u64 = 1_000_000;

/// Refuses limits of zero (and absurd handle counts) before anything is written.
fn check_limits(change: &LimitsChange) -> Result<()> {
    let values = [
        (
            "the open-handle limit",
            change.max_handles,
            MAX_HANDLES_LIMIT,
        ),
        (
            "the largest file size",
            change.max_file_size,
            i64::MAX as u64,
        ),
        ("the quota", change.quota, i64::MAX as u64),
    ];
    for (what, value, max) in values {
        if let Some(Some(n)) = value
            && (n == 0 || n > max)
        {
            return Err(StoreError::InvalidValue {
                what,
                rule: "a positive number (or default)",
                got: n.to_string(),
            });
        }
    }
    Ok(())
}

/// "max handles 50 (was default)" for the audit log.
fn describe_limit(
    what: &str,
    new: Option<u64>,
    old: Option<u64>,
    show: fn(u64) -> String,
) -> String {
    let shown = |v: Option<u64>| v.map_or_else(|| "default".to_owned(), show);
    format!("{what} {} (was {})", shown(new), shown(old))
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
            limits: AccountLimits::default(),
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

    /// Sets, or returns to the server's default, the account's SFTP limits
    /// (open handles, largest file, quota). Audited as `account.limits`,
    /// naming each limit that changed.
    ///
    /// # Errors
    /// [`StoreError::InvalidValue`] for zero; [`StoreError::NoSuchAccount`].
    pub async fn set_account_limits(
        &self,
        name: &str,
        change: LimitsChange,
        actor: &Actor,
    ) -> Result<Account> {
        check_limits(&change)?;
        self.change_account(name, Change::Limits(change), actor)
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
            Change::Limits(change) => {
                let old = account.limits;
                let new = AccountLimits {
                    max_handles: change.max_handles.unwrap_or(old.max_handles),
                    max_file_size: change.max_file_size.unwrap_or(old.max_file_size),
                    quota: change.quota.unwrap_or(old.quota),
                };
                if new == old {
                    return Ok(account);
                }
                let as_db = |v: Option<u64>| v.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
                sqlx::query(
                    "UPDATE accounts SET max_handles = $1, max_file_size = $2, quota_bytes = $3 \
                     WHERE id = $4",
                )
                .bind(as_db(new.max_handles))
                .bind(as_db(new.max_file_size))
                .bind(as_db(new.quota))
                .bind(account.id)
                .execute(&mut *tx)
                .await?;
                account.limits = new;
                let mut parts = Vec::new();
                if new.max_handles != old.max_handles {
                    parts.push(describe_limit(
                        "max handles",
                        new.max_handles,
                        old.max_handles,
                        |n| n.to_string(),
                    ));
                }
                if new.max_file_size != old.max_file_size {
                    parts.push(describe_limit(
                        "largest file",
                        new.max_file_size,
                        old.max_file_size,
                        format_size,
                    ));
                }
                if new.quota != old.quota {
                    parts.push(describe_limit("quota", new.quota, old.quota, format_size));
                }
                ("account.limits", parts.join("; "))
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
