//! ferry-store: every read and write of Ferry's database.
//!
//! The SFTP server, the web API, ingest and the command line all go through
//! [`Store`]; none of them writes SQL. The store runs on SQLite (the default:
//! one file, created on first start) or PostgreSQL (several nodes sharing one
//! database), chosen by the URL given to [`Store::connect`]. Both use the same
//! numbered migrations (`migrations/sqlite`, `migrations/postgres`) and the
//! same queries, through sqlx's `Any` driver.
//!
//! Rules every module here keeps:
//! - Times are unix milliseconds, and "now" is always the database's clock
//!   ([`Store::now`]), so every node agrees on when a key becomes active.
//! - Every change to an account or a key writes an audit row in the same
//!   transaction; audit rows are never updated or deleted.
//! - Nothing here parses keys or decides policy: that is `ferry-keys`.

mod accounts;
mod admins;
mod contacts;
mod db;
mod error;
mod events;
mod import;
mod invitations;
mod keys;
mod logins;
mod model;
mod notices;
mod overview;
mod passwords;
mod penalties;
mod queue;
mod refusals;
mod sessions;
mod sources;
mod text;
mod time;
mod uploads;

pub use accounts::MAX_ACCOUNT_NAME_BYTES;
pub use admins::{
    Admin, ApiToken, MIN_PASSWORD_CHARS, Role, TOKEN_PREFIX, token_hash, token_hashes_match,
};
pub use contacts::{MAX_CONTACTS_PER_ACCOUNT, normalise_contacts, valid_email};
pub use db::Backend;
pub use error::{Result, StoreError};
pub use events::{ATTEMPT_REPEAT_WINDOW_MS, Recorded};
pub use import::{ImportAction, ImportError, ImportRow, ImportedAccount, parse_import_csv};
pub use invitations::{INVITATION_VALID_MS, Invitation};
pub use keys::MAX_KEYS_PER_ACCOUNT;
pub use model::{
    Account, AccountLimits, Actor, AddOutcome, AddStatus, AuditEvent, AuthAttempt, AuthResult,
    HandoffDetail, KeyRecord, KeyState, LapsedLogin, LimitsChange, LoginLookup, LoginVerdict,
    NewAuthAttempt, NewKey, Upload, UploadState,
};
pub use notices::{
    Channel, ExpiringKey, NewMessage, NoticeEvent, NoticeKind, OutboxCounts, OutboxMessage, Queued,
};
pub use overview::{
    Attention, KeySummary, LastFile, OVERVIEW_WINDOW_MS, OverviewCounts, OverviewFilter,
    OverviewPage, OverviewQuery, OverviewRow,
};
pub use penalties::PenaltyRecord;
pub use queue::{ClaimedBatch, Enqueued, Finish, SeenFile};
pub use refusals::{RefusedLogins, RepeatedRefusal};
pub use sessions::{SessionLimits, WebSession};
pub use sources::{parse_source, source_of};
pub use text::{escape_control, format_size, parse_size};
pub use time::format_timestamp;

use sqlx::AnyPool;

/// Handle to Ferry's database. Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Held while a refused login attempt finds its row or adds one, so a
    /// flood of simultaneous refusals from one source on this node adds one
    /// row, not one per connection (see `record_auth_attempt`).
    refusal_rows: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Store {
    /// Opens the database at `url` and returns a store ready for
    /// [`Store::migrate`].
    ///
    /// - `sqlite://PATH` (or `sqlite:PATH`): the file and its folder are
    ///   created if missing; WAL mode, foreign keys on, 5 s busy timeout.
    ///   `sqlite::memory:` gives a private in-memory database (tests).
    /// - `postgres://USER:PASSWORD@HOST:PORT/DB` (or `postgresql://…`).
    ///
    /// # Errors
    /// [`StoreError::UnsupportedUrl`], [`StoreError::CreateDir`] or
    /// [`StoreError::Connect`], each naming the fix.
    pub async fn connect(url: &str) -> Result<Store> {
        let (pool, backend) = db::connect(url).await?;
        Ok(Store {
            pool,
            backend,
            refusal_rows: std::sync::Arc::default(),
        })
    }

    /// Applies the migrations this build carries that the database lacks.
    /// Safe to run at every start and from several nodes at once.
    ///
    /// # Errors
    /// [`StoreError::Migrate`] when a migration fails or the database holds a
    /// migration this build does not know (a newer ferry ran on it).
    pub async fn migrate(&self) -> Result<()> {
        db::migrator(self.backend).run(&self.pool).await?;
        Ok(())
    }

    /// Which database this store talks to.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The database's clock, unix milliseconds.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the database cannot be reached.
    pub async fn now(&self) -> Result<i64> {
        db::now(self.backend, &self.pool).await
    }

    /// Whether the database answers: `SELECT 1` (for health checks).
    ///
    /// # Errors
    /// [`StoreError::Database`] when the database cannot be reached.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
