//! District contacts: the people of an account who hear about what they can
//! act on (a held or refused file, a stale feed, refused logins, an expiring
//! key).
//!
//! This module exists to keep the contact list's rules in one place: a
//! plausible e-mail address (the mail server judges the rest), no duplicates,
//! and an audit row whenever the list changes. It never sends anything: that
//! is the notifier's work.

use sqlx::Row;

use crate::Store;
use crate::error::{Result, StoreError};
use crate::events::insert_audit;
use crate::model::Actor;

/// Most contacts one account may have.
pub const MAX_CONTACTS_PER_ACCOUNT: usize = 20;

/// Whether `email` looks like an address a mail server accepts:
/// `local@domain`, at most 254 characters, no spaces, commas, semicolons,
/// angle brackets, quotes or control characters, and a domain of dotted
/// labels.
#[must_use]
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    let plain = |c: char| !c.is_control() && !c.is_whitespace() && !",;<>\"()[]\\@".contains(c);
    email.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && local.chars().all(plain)
        && !domain.is_empty()
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

/// The addresses trimmed, lower-cased in their domain, deduplicated (first
/// wins) and checked.
///
/// # Errors
/// [`StoreError::InvalidValue`] naming the first address that is not valid,
/// or too many addresses.
pub fn normalise_contacts(emails: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for email in emails {
        let email = email.trim();
        if email.is_empty() {
            continue;
        }
        if !valid_email(email) {
            return Err(StoreError::InvalidValue {
                what: "a contact",
                rule: "an e-mail address like it@district.k12.us",
                got: email.to_owned(),
            });
        }
        let (local, domain) = email.rsplit_once('@').unwrap_or((email, ""));
        let email = format!("{local}@{}", domain.to_ascii_lowercase());
        if !out.contains(&email) {
            out.push(email);
        }
    }
    if out.len() > MAX_CONTACTS_PER_ACCOUNT {
        return Err(StoreError::InvalidValue {
            what: "the number of contacts of an account",
            rule: "at most 20 (use a shared mailbox or a list address for more people)",
            got: out.len().to_string(),
        });
    }
    Ok(out)
}

impl Store {
    /// The account's contacts, in the order they were added.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn contacts(&self, account: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT c.email FROM account_contacts c JOIN accounts a ON a.id = c.account_id \
             WHERE a.name = $1 ORDER BY c.created_at, c.email",
        )
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok(row.try_get("email")?)).collect()
    }

    /// Replaces the account's contacts with `emails` (an empty list removes
    /// them all). Audited as `account.contacts` when it changes anything.
    /// Returns the list as stored.
    ///
    /// # Errors
    /// [`StoreError::InvalidValue`] for an address that is not valid;
    /// [`StoreError::NoSuchAccount`].
    pub async fn set_contacts(
        &self,
        account: &str,
        emails: &[String],
        actor: &Actor,
    ) -> Result<Vec<String>> {
        let emails = normalise_contacts(emails)?;
        let (mut tx, now, account_id) = self.begin_account_change(account).await?;
        if replace_contacts(&mut tx, account_id, &emails, now).await? {
            let detail = if emails.is_empty() {
                "removed every contact".to_owned()
            } else {
                format!("contacts: {}", emails.join(", "))
            };
            insert_audit(
                &mut tx,
                now,
                actor,
                Some(account),
                "account.contacts",
                &detail,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(emails)
    }
}

/// Makes the account's contacts exactly `emails` inside the caller's
/// transaction; false when they were that already.
pub(crate) async fn replace_contacts(
    conn: &mut sqlx::AnyConnection,
    account_id: i64,
    emails: &[String],
    now: i64,
) -> Result<bool> {
    let rows = sqlx::query(
        "SELECT email FROM account_contacts WHERE account_id = $1 ORDER BY created_at, email",
    )
    .bind(account_id)
    .fetch_all(&mut *conn)
    .await?;
    let current: Vec<String> = rows
        .iter()
        .map(|row| row.try_get("email"))
        .collect::<std::result::Result<_, _>>()?;
    let same = current.len() == emails.len() && emails.iter().all(|e| current.contains(e));
    if same {
        return Ok(false);
    }
    sqlx::query("DELETE FROM account_contacts WHERE account_id = $1")
        .bind(account_id)
        .execute(&mut *conn)
        .await?;
    for (n, email) in emails.iter().enumerate() {
        // Later rows a millisecond apart, so the order given is the order kept.
        sqlx::query(
            "INSERT INTO account_contacts (account_id, email, created_at) VALUES ($1, $2, $3)",
        )
        .bind(account_id)
        .bind(email)
        .bind(now + i64::try_from(n).unwrap_or(0))
        .execute(&mut *conn)
        .await?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        for good in ["it@district.k12.us", "a.b+ferry@x.org", "root@localhost"] {
            assert!(valid_email(good), "{good}");
        }
        for bad in [
            "",
            "@x.org",
            "it@",
            "it district@x.org",
            "a,b@x.org",
            "it@x..org",
            "it@-x.org",
            "<it@x.org>",
            "it@x.org\n",
        ] {
            assert!(!valid_email(bad), "{bad:?}");
        }
    }

    #[test]
    fn normalised_lists() {
        let list = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            normalise_contacts(&list(&[
                " It@District.ORG ",
                "",
                "It@district.org",
                "b@x.org"
            ]))
            .unwrap(),
            ["It@district.org", "b@x.org"]
        );
        let err = normalise_contacts(&list(&["ok@x.org", "not an address"])).unwrap_err();
        assert!(err.to_string().contains("not an address"), "{err}");
    }
}
