//! District admin invitations: one-time links with which a district admin
//! creates their own sign-in, so nobody sets a password for anyone else.
//!
//! This module exists to keep the link's rules in one place: the secret is
//! shown once and only its SHA-256 is kept; a link works once, for
//! [`INVITATION_VALID_MS`], for the account it was made for, and not after it
//! was withdrawn. Using it creates the district admin and spends the link in
//! one transaction, so two browsers racing with the same link make one admin.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;
use crate::admins::{Admin, Role, checked_password_hash, insert_admin, new_secret, token_hash};
use crate::contacts::valid_email;
use crate::db;
use crate::error::{Result, StoreError};
use crate::events::insert_audit;
use crate::model::Actor;
use crate::time::{serialize_ms, serialize_opt_ms};

/// How long an invitation link works: 7 days.
pub const INVITATION_VALID_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// An invitation, without its secret (which is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invitation {
    /// Database id.
    pub id: i64,
    /// The account the new admin will be bound to.
    pub account: String,
    /// Whom it is for.
    pub email: String,
    /// Who made it.
    pub created_by: String,
    /// When.
    #[serde(serialize_with = "serialize_ms")]
    pub created_at: i64,
    /// When the link stops working.
    #[serde(serialize_with = "serialize_ms")]
    pub expires_at: i64,
    /// When it was used, if it was.
    #[serde(serialize_with = "serialize_opt_ms")]
    pub used_at: Option<i64>,
    /// The user name created with it.
    pub used_by: Option<String>,
    /// When it was withdrawn, if it was.
    #[serde(serialize_with = "serialize_opt_ms")]
    pub withdrawn_at: Option<i64>,
}

impl Invitation {
    /// Whether the link still works at `now`.
    #[must_use]
    pub fn is_open(&self, now: i64) -> bool {
        self.used_at.is_none() && self.withdrawn_at.is_none() && self.expires_at > now
    }
}

const INVITATION_SELECT: &str = "SELECT i.id, a.name AS account, i.email, i.created_by, \
     i.created_at, i.expires_at, i.used_at, ad.username AS used_by, i.withdrawn_at \
     FROM admin_invitations i JOIN accounts a ON a.id = i.account_id \
     LEFT JOIN admins ad ON ad.id = i.used_by";

fn invitation_from_row(row: &AnyRow) -> Result<Invitation> {
    Ok(Invitation {
        id: row.try_get("id")?,
        account: row.try_get("account")?,
        email: row.try_get("email")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        used_at: row.try_get("used_at")?,
        used_by: row.try_get("used_by")?,
        withdrawn_at: row.try_get("withdrawn_at")?,
    })
}

fn link_gone() -> StoreError {
    StoreError::InvalidValue {
        what: "an invitation link",
        rule: "unused, not withdrawn and at most 7 days old (ask your vendor for a new link)",
        got: "a link that no longer works".to_owned(),
    }
}

impl Store {
    /// Makes an invitation for `email` to become a district admin of
    /// `account`, valid for 7 days. Returns it with its secret, which is
    /// shown this once. Audited as `invitation.create`.
    ///
    /// # Errors
    /// [`StoreError::InvalidValue`] for an address that is not valid;
    /// [`StoreError::NoSuchAccount`].
    pub async fn create_invitation(
        &self,
        account: &str,
        email: &str,
        actor: &Actor,
    ) -> Result<(Invitation, String)> {
        let email = email.trim();
        if !valid_email(email) {
            return Err(StoreError::InvalidValue {
                what: "the invited person's address",
                rule: "an e-mail address like it@district.k12.us",
                got: email.to_owned(),
            });
        }
        let secret = new_secret();
        let (mut tx, now, account_id) = self.begin_account_change(account).await?;
        let id: i64 = sqlx::query(
            "INSERT INTO admin_invitations (secret_hash, account_id, email, created_by, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(token_hash(&secret))
        .bind(account_id)
        .bind(email)
        .bind(&actor.who)
        .bind(now)
        .bind(now + INVITATION_VALID_MS)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        let detail = format!("invited {email} to become a district admin (invitation {id})");
        insert_audit(
            &mut tx,
            now,
            actor,
            Some(account),
            "invitation.create",
            &detail,
        )
        .await?;
        tx.commit().await?;
        let invitation = Invitation {
            id,
            account: account.to_owned(),
            email: email.to_owned(),
            created_by: actor.who.clone(),
            created_at: now,
            expires_at: now + INVITATION_VALID_MS,
            used_at: None,
            used_by: None,
            withdrawn_at: None,
        };
        Ok((invitation, secret))
    }

    /// The account's invitations, newest first.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn invitations(&self, account: &str) -> Result<Vec<Invitation>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{INVITATION_SELECT} WHERE a.name = $1 ORDER BY i.id DESC"
        )))
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(invitation_from_row).collect()
    }

    /// The invitation whose link carries `secret`, while it still works.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn open_invitation(&self, secret: &str) -> Result<Option<Invitation>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{INVITATION_SELECT} WHERE i.secret_hash = $1"
        )))
        .bind(token_hash(secret))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let invitation = invitation_from_row(&row)?;
        let now = self.now().await?;
        Ok(invitation.is_open(now).then_some(invitation))
    }

    /// Uses the link: creates the district admin `username` with `password`
    /// for the invitation's account and spends the link, in one transaction.
    /// Audited as `admin.create` by `invitation:ID`.
    ///
    /// # Errors
    /// [`StoreError::InvalidValue`] for a link that no longer works, a bad
    /// user name or a short password; [`StoreError::AdminExists`].
    pub async fn accept_invitation(
        &self,
        secret: &str,
        username: &str,
        password: &str,
        client_addr: Option<&str>,
    ) -> Result<Admin> {
        let password_hash = checked_password_hash(username, password).await?;
        let mut tx = self.pool.begin().await?;
        let now = db::now(self.backend, &mut *tx).await?;
        let row = sqlx::query(
            "UPDATE admin_invitations SET used_at = $2 WHERE secret_hash = $1 \
             AND used_at IS NULL AND withdrawn_at IS NULL AND expires_at > $2 \
             RETURNING id, account_id, email",
        )
        .bind(token_hash(secret))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(link_gone)?;
        let id: i64 = row.try_get("id")?;
        let account_id: i64 = row.try_get("account_id")?;
        let email: String = row.try_get("email")?;
        let admin_id = insert_admin(
            &mut tx,
            now,
            username,
            &password_hash,
            Role::DistrictAdmin,
            Some(account_id),
        )
        .await?;
        sqlx::query("UPDATE admin_invitations SET used_by = $2 WHERE id = $1")
            .bind(id)
            .bind(admin_id)
            .execute(&mut *tx)
            .await?;
        let account: String = sqlx::query("SELECT name FROM accounts WHERE id = $1")
            .bind(account_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("name")?;
        let mut actor = Actor::new(format!("invitation:{id}"));
        if let Some(addr) = client_addr {
            actor = actor.with_client_addr(addr);
        }
        let detail = format!(
            "created admin {username} (district-admin, account {account}) with the invitation sent to {email}"
        );
        insert_audit(
            &mut tx,
            now,
            &actor,
            Some(&account),
            "admin.create",
            &detail,
        )
        .await?;
        tx.commit().await?;
        Ok(Admin {
            id: admin_id,
            username: username.to_owned(),
            role: Role::DistrictAdmin,
            account: Some(account),
            disabled: false,
            created_at: now,
        })
    }

    /// Withdraws an open invitation of `account`: its link stops working.
    /// Audited as `invitation.withdraw`.
    ///
    /// # Errors
    /// [`StoreError::InvalidValue`] when there is no such open invitation.
    pub async fn withdraw_invitation(&self, account: &str, id: i64, actor: &Actor) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let now = db::now(self.backend, &mut *tx).await?;
        let done = sqlx::query(
            "UPDATE admin_invitations SET withdrawn_at = $3 WHERE id = $1 \
             AND account_id = (SELECT id FROM accounts WHERE name = $2) \
             AND used_at IS NULL AND withdrawn_at IS NULL",
        )
        .bind(id)
        .bind(account)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::InvalidValue {
                what: "the invitation to withdraw",
                rule: "an open invitation of this account (see the account page)",
                got: id.to_string(),
            });
        }
        let detail = format!("withdrew invitation {id}");
        insert_audit(
            &mut tx,
            now,
            actor,
            Some(account),
            "invitation.withdraw",
            &detail,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
