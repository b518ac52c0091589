//! Admin users and API tokens: who may use the admin web and the JSON API.
//!
//! This module exists to keep credentials in one place: passwords are kept
//! only as argon2id PHC strings (hashed and checked in `passwords`), API
//! token secrets only as the SHA-256 (hex)
//! of the secret, and a token is matched with a constant-time comparison.
//! Every change writes an audit row in the same transaction. It never logs or
//! returns a password, and returns a token's secret only once, when created.

use base64::Engine;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;
use subtle::ConstantTimeEq;

use crate::Store;
use crate::accounts::lock_account;
use crate::db;
use crate::error::{Result, StoreError};
use crate::events::insert_audit;
use crate::model::Actor;
use crate::passwords::{hash_password, is_password_hash, verify_password};
use crate::sessions::end_sessions_of;
use crate::time::{serialize_ms, serialize_opt_ms};

/// What an admin user or an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Sees and changes every account; may activate pending keys at once.
    VendorAdmin,
    /// Sees and changes only its own account.
    DistrictAdmin,
}

impl Role {
    /// `vendor-admin` or `district-admin`, as stored and typed.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VendorAdmin => "vendor-admin",
            Self::DistrictAdmin => "district-admin",
        }
    }

    /// The role named `text`, if any.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "vendor-admin" => Some(Self::VendorAdmin),
            "district-admin" => Some(Self::DistrictAdmin),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person who signs in to the admin web. The password hash is never handed out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Admin {
    /// Database id.
    pub id: i64,
    /// The sign-in name.
    pub username: String,
    /// What the admin may do.
    pub role: Role,
    /// The account a district admin is bound to.
    pub account: Option<String>,
    /// Disabled admins cannot sign in.
    pub disabled: bool,
    /// When the admin was created.
    #[serde(serialize_with = "serialize_ms")]
    pub created_at: i64,
}

/// An API token, without its secret (which is never stored).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiToken {
    /// Database id.
    pub id: i64,
    /// What the token may do.
    pub role: Role,
    /// The account a district token is bound to.
    pub account: Option<String>,
    /// Who created it.
    pub created_by: String,
    /// When it was created.
    #[serde(serialize_with = "serialize_ms")]
    pub created_at: i64,
    /// When it was revoked, if it was.
    #[serde(serialize_with = "serialize_opt_ms")]
    pub revoked_at: Option<i64>,
}

/// What every API token starts with, so a leaked one is easy to recognise.
pub const TOKEN_PREFIX: &str = "ferry_";

/// Shortest password accepted for an admin.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// SHA-256 of a token's secret, lower-case hex: what the database keeps.
#[must_use]
pub fn token_hash(secret: &str) -> String {
    let digest = Sha256::digest(secret.trim().as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// Compares two token hashes in constant time (for equal lengths).
#[must_use]
pub fn token_hashes_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A new random token secret: 32 bytes from the OS-seeded generator,
/// `ferry_` + base64url without padding.
pub(crate) fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Whether `name` is a valid admin user name: 1 to 64 characters from
/// letters, digits, `.`, `_`, `-` and `@`.
fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_@".contains(&b))
}

/// Checks that the role and account go together, and returns the account's
/// id (locked for the transaction) for a district role.
async fn role_account(
    conn: &mut sqlx::AnyConnection,
    role: Role,
    account: Option<&str>,
) -> Result<Option<i64>> {
    match (role, account) {
        (Role::VendorAdmin, None) => Ok(None),
        (Role::VendorAdmin, Some(name)) => Err(StoreError::InvalidValue {
            what: "a vendor admin's account",
            rule: "absent: a vendor admin sees every account (drop --account, or use --role district-admin)",
            got: name.to_owned(),
        }),
        (Role::DistrictAdmin, None) => Err(StoreError::InvalidValue {
            what: "a district admin's account",
            rule: "given: a district admin is bound to one account (add --account NAME)",
            got: "none".to_owned(),
        }),
        (Role::DistrictAdmin, Some(name)) => {
            Ok(Some(lock_account(conn, name).await?.ok_or_else(|| {
                StoreError::NoSuchAccount {
                    name: name.to_owned(),
                }
            })?))
        }
    }
}

fn parse_role(text: &str) -> Result<Role> {
    Role::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("role `{text}` is not a known role")))
}

pub(crate) fn admin_from_row(row: &AnyRow) -> Result<Admin> {
    let role: String = row.try_get("role")?;
    Ok(Admin {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        role: parse_role(&role)?,
        account: row.try_get("account")?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

fn token_from_row(row: &AnyRow) -> Result<ApiToken> {
    let role: String = row.try_get("role")?;
    Ok(ApiToken {
        id: row.try_get("id")?,
        role: parse_role(&role)?,
        account: row.try_get("account")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

const ADMIN_SELECT: &str = "SELECT ad.id, ad.username, ad.role, a.name AS account, \
     CASE WHEN ad.disabled THEN 1 ELSE 0 END AS disabled, ad.created_at, ad.password_hash \
     FROM admins ad LEFT JOIN accounts a ON a.id = ad.account_id";

const TOKEN_SELECT: &str = "SELECT t.id, t.token_hash, t.role, a.name AS account, t.created_by, \
     t.created_at, t.revoked_at FROM api_tokens t LEFT JOIN accounts a ON a.id = t.account_id";

impl Store {
    /// Creates an admin user with an argon2id hash of `password`. A district
    /// admin must name its account; a vendor admin must not. Audited as
    /// `admin.create` (the password never appears anywhere).
    ///
    /// # Errors
    /// [`StoreError::InvalidValue`] for a bad user name, a short password or
    /// a role/account mismatch; [`StoreError::NoSuchAccount`];
    /// [`StoreError::AdminExists`].
    pub async fn create_admin(
        &self,
        username: &str,
        password: &str,
        role: Role,
        account: Option<&str>,
        actor: &Actor,
    ) -> Result<Admin> {
        let password_hash = checked_password_hash(username, password).await?;
        let mut tx = self.pool.begin().await?;
        let account_id = role_account(&mut tx, role, account).await?;
        let now = db::now(self.backend, &mut *tx).await?;
        let id = insert_admin(&mut tx, now, username, &password_hash, role, account_id).await?;
        let detail = match account {
            Some(account) => format!("created admin {username} ({role}, account {account})"),
            None => format!("created admin {username} ({role})"),
        };
        insert_audit(&mut tx, now, actor, account, "admin.create", &detail).await?;
        tx.commit().await?;
        Ok(Admin {
            id,
            username: username.to_owned(),
            role,
            account: account.map(str::to_owned),
            disabled: false,
            created_at: now,
        })
    }

    /// The admin named `username` when `password` is theirs and they are not
    /// disabled; `None` otherwise (the same answer for a wrong user and a
    /// wrong password).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn verify_admin_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<Admin>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ADMIN_SELECT} WHERE ad.username = $1"
        )))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            // Spend the same work as for a known user, so the answer's
            // timing does not tell which user names exist.
            verify_password(password, None).await?;
            return Ok(None);
        };
        let stored: String = row.try_get("password_hash")?;
        let admin = admin_from_row(&row)?;
        if !is_password_hash(&stored) {
            return Err(StoreError::Corrupt(format!(
                "admin {username} has a password hash that is not a PHC string"
            )));
        }
        let ok = verify_password(password, Some(stored)).await?;
        Ok((ok && !admin.disabled).then_some(admin))
    }

    /// The admin named `username`, if any.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn admin(&self, username: &str) -> Result<Option<Admin>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ADMIN_SELECT} WHERE ad.username = $1"
        )))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(admin_from_row).transpose()
    }

    /// Creates an API token and returns it with its secret (`ferry_…`), which
    /// is shown this once: only its SHA-256 is stored. Audited as
    /// `token.create`.
    ///
    /// # Errors
    /// [`StoreError::InvalidValue`] for a role/account mismatch;
    /// [`StoreError::NoSuchAccount`].
    pub async fn create_api_token(
        &self,
        role: Role,
        account: Option<&str>,
        actor: &Actor,
    ) -> Result<(ApiToken, String)> {
        let secret = new_secret();
        let hash = token_hash(&secret);
        let mut tx = self.pool.begin().await?;
        let account_id = role_account(&mut tx, role, account).await?;
        let now = db::now(self.backend, &mut *tx).await?;
        let row = sqlx::query(
            "INSERT INTO api_tokens (token_hash, role, account_id, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(hash.as_str())
        .bind(role.as_str())
        .bind(account_id)
        .bind(actor.who.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        let detail = match account {
            Some(account) => format!("created API token {id} ({role}, account {account})"),
            None => format!("created API token {id} ({role})"),
        };
        insert_audit(&mut tx, now, actor, account, "token.create", &detail).await?;
        tx.commit().await?;
        let token = ApiToken {
            id,
            role,
            account: account.map(str::to_owned),
            created_by: actor.who.clone(),
            created_at: now,
            revoked_at: None,
        };
        Ok((token, secret))
    }

    /// The unrevoked token whose secret is `secret`, if any. The lookup is by
    /// the secret's SHA-256; the stored hash is then compared in constant
    /// time. A token of a district account is valid only while that account
    /// exists.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn api_token_by_secret(&self, secret: &str) -> Result<Option<ApiToken>> {
        let hash = token_hash(secret);
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{TOKEN_SELECT} WHERE t.token_hash = $1 AND t.revoked_at IS NULL"
        )))
        .bind(hash.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stored: String = row.try_get("token_hash")?;
        if !token_hashes_match(&stored, &hash) {
            return Ok(None);
        }
        let token = token_from_row(&row)?;
        if token.role == Role::DistrictAdmin && token.account.is_none() {
            return Ok(None);
        }
        Ok(Some(token))
    }

    /// Every API token (never their secrets), oldest first.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn api_tokens(&self) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{TOKEN_SELECT} ORDER BY t.id")))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes an API token at once. Audited as `token.revoke`; revoking a
    /// revoked token changes nothing.
    ///
    /// # Errors
    /// [`StoreError::NoSuchToken`].
    pub async fn revoke_api_token(&self, id: i64, actor: &Actor) -> Result<ApiToken> {
        let mut tx = self.pool.begin().await?;
        let now = db::now(self.backend, &mut *tx).await?;
        let updated = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{TOKEN_SELECT} WHERE t.id = $1"
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NoSuchToken { id })?;
        let token = token_from_row(&row)?;
        if updated.rows_affected() > 0 {
            let detail = format!("revoked API token {id} ({})", token.role);
            insert_audit(
                &mut tx,
                now,
                actor,
                token.account.as_deref(),
                "token.revoke",
                &detail,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(token)
    }
}

impl Store {
    /// Every admin user, oldest first (never their password hashes).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn admins(&self) -> Result<Vec<Admin>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ADMIN_SELECT} ORDER BY ad.id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(admin_from_row).collect()
    }

    /// How many admin users exist (the setup link is offered only at zero).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn admin_count(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM admins")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Disables (`true`) or enables an admin user. Disabling ends their
    /// sessions at once. Audited as `admin.disable` / `admin.enable`.
    ///
    /// # Errors
    /// [`StoreError::NoSuchAdmin`].
    pub async fn set_admin_disabled(
        &self,
        id: i64,
        disabled: bool,
        actor: &Actor,
    ) -> Result<Admin> {
        let mut tx = self.pool.begin().await?;
        let now = db::now(self.backend, &mut *tx).await?;
        sqlx::query("UPDATE admins SET disabled = $1 WHERE id = $2")
            .bind(disabled)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let admin = admin_by_id(&mut tx, id).await?;
        if disabled {
            end_sessions_of(&mut tx, id, now).await?;
        }
        let (action, verb) = if disabled {
            ("admin.disable", "disabled")
        } else {
            ("admin.enable", "enabled")
        };
        let detail = format!("{verb} admin {}", admin.username);
        insert_audit(
            &mut tx,
            now,
            actor,
            admin.account.as_deref(),
            action,
            &detail,
        )
        .await?;
        tx.commit().await?;
        Ok(admin)
    }

    /// Sets a new password for an admin user and ends their sessions.
    /// Audited as `admin.password` (the password never appears anywhere).
    ///
    /// # Errors
    /// [`StoreError::InvalidValue`] for a short password; [`StoreError::NoSuchAdmin`].
    pub async fn set_admin_password(
        &self,
        id: i64,
        password: &str,
        actor: &Actor,
    ) -> Result<Admin> {
        let password_hash = hash_password(password).await?;
        let mut tx = self.pool.begin().await?;
        let now = db::now(self.backend, &mut *tx).await?;
        sqlx::query("UPDATE admins SET password_hash = $1 WHERE id = $2")
            .bind(password_hash.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let admin = admin_by_id(&mut tx, id).await?;
        end_sessions_of(&mut tx, id, now).await?;
        let detail = format!("set a new password for admin {}", admin.username);
        insert_audit(
            &mut tx,
            now,
            actor,
            admin.account.as_deref(),
            "admin.password",
            &detail,
        )
        .await?;
        tx.commit().await?;
        Ok(admin)
    }
}

/// Checks the user name and the password, and returns the password's hash.
pub(crate) async fn checked_password_hash(username: &str, password: &str) -> Result<String> {
    if !valid_username(username) {
        return Err(StoreError::InvalidValue {
            what: "an admin user name",
            rule: "1 to 64 characters from letters, digits, `.`, `_`, `-` and `@`",
            got: username.to_owned(),
        });
    }
    hash_password(password).await
}

/// Inserts an admin row in the caller's transaction; returns its id.
pub(crate) async fn insert_admin(
    conn: &mut sqlx::AnyConnection,
    now: i64,
    username: &str,
    password_hash: &str,
    role: Role,
    account_id: Option<i64>,
) -> Result<i64> {
    let inserted = sqlx::query(
        "INSERT INTO admins (username, password_hash, role, account_id, disabled, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(username)
    .bind(password_hash)
    .bind(role.as_str())
    .bind(account_id)
    .bind(false)
    .bind(now)
    .fetch_one(&mut *conn)
    .await;
    match inserted {
        Ok(row) => Ok(row.try_get("id")?),
        Err(err) if StoreError::is_unique_violation(&err) => Err(StoreError::AdminExists {
            username: username.to_owned(),
        }),
        Err(err) => Err(err.into()),
    }
}

async fn admin_by_id(conn: &mut sqlx::AnyConnection, id: i64) -> Result<Admin> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{ADMIN_SELECT} WHERE ad.id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(StoreError::NoSuchAdmin { id })?;
    admin_from_row(&row)
}

#[cfg(test)]
mod tests {
    use super::{TOKEN_PREFIX, new_secret, token_hash, token_hashes_match, valid_username};

    #[test]
    fn secrets_are_32_random_bytes_in_base64url() {
        let a = new_secret();
        let b = new_secret();
        assert_ne!(a, b);
        let body = a.strip_prefix(TOKEN_PREFIX).expect("prefix");
        assert_eq!(body.len(), 43, "{a}");
        assert!(
            body.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn hashes_and_comparison() {
        let h = token_hash("ferry_abc");
        assert_eq!(h.len(), 64);
        assert!(token_hashes_match(&h, &token_hash("ferry_abc")));
        assert!(!token_hashes_match(&h, &token_hash("ferry_abd")));
        assert!(!token_hashes_match(&h, &h[..63]));
    }

    #[test]
    fn usernames() {
        assert!(valid_username("alice"));
        assert!(valid_username("it@springfield.k12.us"));
        assert!(!valid_username(""));
        assert!(!valid_username("a b"));
        assert!(!valid_username(&"a".repeat(65)));
    }
}
