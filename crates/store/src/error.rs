//! The store's one error type.
//!
//! It exists so that callers (the command line, the web API, the SFTP server)
//! can show a message that names the problem and the fix without knowing SQL,
//! and can match on the cases they answer differently (404 for an unknown
//! account, 409 for a duplicate, and so on). Messages never contain a database
//! password: connection URLs are shown with the password masked.

use std::path::PathBuf;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `database.url` is not a SQLite or PostgreSQL URL.
    #[error(
        "database url `{url}` is not supported: use `sqlite://PATH` (for example sqlite://./data/ferry.db) \
         or `postgres://USER:PASSWORD@HOST:PORT/DATABASE` in [database] url"
    )]
    UnsupportedUrl {
        /// The URL, password masked.
        url: String,
    },

    /// The SQLite database's folder could not be created.
    #[error(
        "cannot create the folder {path} for the SQLite database: {source}; check the path in [database] url and that the user running ferry may write there"
    )]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// The database could not be opened or reached.
    #[error(
        "cannot open the database {url}: {source}; check [database] url (host, port, user, password, database name) and that the server is running"
    )]
    Connect {
        /// The URL, password masked.
        url: String,
        /// The driver's error.
        source: sqlx::Error,
    },

    /// Applying the schema migrations failed.
    #[error(
        "applying database migrations failed: {0}; the database is left at the last migration that succeeded — fix the cause and run `ferry migrate` again"
    )]
    Migrate(#[from] sqlx::migrate::MigrateError),

    /// An account name that does not fit the rules.
    #[error(
        "account name `{name}` is not valid: use 1 to 63 characters from a-z, 0-9, `_` and `-`, \
         starting with a letter or digit (for example `springfield-usd`)"
    )]
    InvalidAccountName {
        /// The name as given.
        name: String,
    },

    /// The account already exists.
    #[error("account `{name}` already exists; see the existing accounts with `ferry account list`")]
    AccountExists {
        /// The account's name.
        name: String,
    },

    /// No account has this name.
    #[error("no account named `{name}`; see the existing accounts with `ferry account list`")]
    NoSuchAccount {
        /// The name as given.
        name: String,
    },

    /// The account has no key with this fingerprint or id.
    #[error(
        "account `{account}` has no key `{key}`; list its keys (with their ids and fingerprints) with `ferry key list {account}`"
    )]
    NoSuchKey {
        /// The account's name.
        account: String,
        /// The fingerprint or id as given.
        key: String,
    },

    /// An operation that only applies to pending keys was asked for another state.
    #[error(
        "key `{key}` of account `{account}` is {state}, not pending, so it cannot be {action}; see `ferry key list {account}`"
    )]
    KeyNotPending {
        /// The account's name.
        account: String,
        /// The fingerprint or id as given.
        key: String,
        /// The key's state now.
        state: crate::KeyState,
        /// What was asked: "cancelled" or "activated".
        action: &'static str,
    },

    /// Adding the keys would put the account over the limit.
    #[error(
        "account `{account}` would have {would_have} keys (pending or active) and at most {limit} are allowed; revoke keys it no longer uses (`ferry key list {account}`, then `ferry key revoke {account} FINGERPRINT`) or replace the whole set"
    )]
    TooManyKeys {
        /// The account's name.
        account: String,
        /// The count after the change.
        would_have: usize,
        /// The limit.
        limit: usize,
    },

    /// Keys were to be added or replaced but none was given.
    #[error("no keys were given for account `{account}`; {hint}")]
    NoKeys {
        /// The account's name.
        account: String,
        /// What to do instead.
        hint: &'static str,
    },

    /// A value outside its allowed range.
    #[error("{what} must be {rule}, got {got}")]
    InvalidValue {
        /// What the value is.
        what: &'static str,
        /// The rule it breaks.
        rule: &'static str,
        /// The value given.
        got: String,
    },

    /// An admin user with this name exists already.
    #[error("admin `{username}` already exists; choose another user name")]
    AdminExists {
        /// The user name.
        username: String,
    },

    /// No API token has this id.
    #[error("no API token with id {id}")]
    NoSuchToken {
        /// The id as given.
        id: i64,
    },

    /// No admin user has this id.
    #[error("no admin user with id {id}; list them on the Admins page")]
    NoSuchAdmin {
        /// The id as given.
        id: i64,
    },

    /// No upload has this id.
    #[error("no upload with id {id}; list uploads and their ids with `ferry uploads list`")]
    NoSuchUpload {
        /// The id as given.
        id: i64,
    },

    /// An upload is not in a state the asked change applies to.
    #[error(
        "upload {id} is {state}, so it cannot be {action}: only {allowed} uploads can; see `ferry uploads show {id}`"
    )]
    UploadNotInState {
        /// The upload's id.
        id: i64,
        /// Its state now.
        state: crate::UploadState,
        /// What was asked: "approved", "rejected", "retried".
        action: &'static str,
        /// The states the change applies to, in words.
        allowed: &'static str,
    },

    /// Any other database failure.
    #[error(
        "database error: {0}; if it persists, check that the database is reachable and migrated (`ferry migrate`)"
    )]
    Database(#[from] sqlx::Error),

    /// A row held a value the code cannot read (a damaged or foreign database).
    #[error(
        "unexpected value in the database: {0}; the database may have been edited by hand or belongs to another version of ferry"
    )]
    Corrupt(String),
}

impl StoreError {
    /// True when the error is the database refusing a duplicate key.
    pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
        err.as_database_error()
            .is_some_and(|db| db.is_unique_violation())
    }
}

/// `Result` with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The URL with any password replaced by `***`, for messages and logs.
pub(crate) fn mask_url(url: &str) -> String {
    // scheme://user:password@host… → scheme://user:***@host…
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_owned();
    };
    format!(
        "{}://{}:***{}",
        &url[..scheme_end],
        &userinfo[..colon],
        &rest[at..]
    )
}

#[cfg(test)]
mod tests {
    use super::mask_url;

    #[test]
    fn masks_passwords_only() {
        assert_eq!(
            mask_url("postgres://ferry:s3cret@127.0.0.1:5432/ferry"),
            "postgres://ferry:***@127.0.0.1:5432/ferry"
        );
        assert_eq!(
            mask_url("postgres://ferry@db/ferry"),
            "postgres://ferry@db/ferry"
        );
        assert_eq!(
            mask_url("sqlite://./data/ferry.db"),
            "sqlite://./data/ferry.db"
        );
        assert_eq!(mask_url("nonsense"), "nonsense");
    }
}
