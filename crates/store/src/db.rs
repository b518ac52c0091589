//! Opening the database, the migrations, and the little that differs between
//! SQLite and PostgreSQL.
//!
//! This module exists so that the rest of the store can write each query once.
//! All queries go through sqlx's `Any` driver with `$1`-style placeholders,
//! which both SQLite and PostgreSQL accept. The only dialect difference the
//! queries see is the database clock: a query writes `{now}` and [`sql`]
//! substitutes the backend's expression. Booleans are read through
//! `CASE WHEN … THEN 1 ELSE 0 END` because the `Any` driver cannot decode
//! SQLite's BOOLEAN columns. Nothing here may read the machine's own clock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::AnyConnection;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, AssertSqlSafe, Connection, Executor, Row};

use crate::error::{Result, StoreError, mask_url};

/// The database behind a [`crate::Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// One SQLite file (the default).
    Sqlite,
    /// A PostgreSQL server, possibly shared by several nodes.
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }

    /// The SQL expression for the database clock in unix milliseconds.
    ///
    /// PostgreSQL's `now()` is the start of the current transaction, so every
    /// statement of one transaction sees the same instant; SQLite's `'now'`
    /// is fixed for the duration of one statement.
    fn now_expr(self) -> &'static str {
        match self {
            Self::Sqlite => "CAST(ROUND(unixepoch('now', 'subsec') * 1000) AS INTEGER)",
            Self::Postgres => "CAST(EXTRACT(EPOCH FROM now()) * 1000 AS BIGINT)",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/postgres");

/// The migrations for `backend`, embedded at build time.
pub(crate) fn migrator(backend: Backend) -> &'static Migrator {
    match backend {
        Backend::Sqlite => &SQLITE_MIGRATIONS,
        Backend::Postgres => &POSTGRES_MIGRATIONS,
    }
}

/// `template` with `{now}` replaced by the backend's clock expression, and
/// `{skip_locked}` by `FOR UPDATE SKIP LOCKED` on PostgreSQL (nothing on
/// SQLite, where a writing transaction holds the whole database anyway).
pub(crate) fn sql(backend: Backend, template: &'static str) -> AssertSqlSafe<String> {
    // Only compile-time templates and fixed expressions go in here: values
    // are always bound as parameters.
    let skip_locked = match backend {
        Backend::Sqlite => "",
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
    };
    AssertSqlSafe(
        template
            .replace("{now}", backend.now_expr())
            .replace("{skip_locked}", skip_locked),
    )
}

/// A transaction that will write: on SQLite it takes the write lock at once
/// (`BEGIN IMMEDIATE`), so a transaction that reads first cannot fail to
/// upgrade when another connection wrote in between (WAL's
/// `SQLITE_BUSY_SNAPSHOT`, which the busy timeout does not cover).
pub(crate) async fn begin_write(
    pool: &AnyPool,
    backend: Backend,
) -> Result<sqlx::Transaction<'static, Any>> {
    Ok(match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
        Backend::Postgres => pool.begin().await?,
    })
}

/// The database clock (unix ms), read with `executor` (a pool or a transaction).
pub(crate) async fn now<'e, E>(backend: Backend, executor: E) -> Result<i64>
where
    E: Executor<'e, Database = Any>,
{
    let row = sqlx::query(sql(backend, "SELECT {now} AS now_ms"))
        .fetch_one(executor)
        .await?;
    Ok(row.try_get("now_ms")?)
}

/// How long a query waits for a pooled PostgreSQL connection before it
/// fails. sqlx's default, 30 s, made every caller hang that long while the
/// database was down (sqlx retries a refused connection until then); 5 s
/// lets logins, the web and ingest fail quickly and retry, and is still far
/// above the wait of a busy but healthy pool.
const POSTGRES_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a pool for `url`.
pub(crate) async fn connect(url: &str) -> Result<(AnyPool, Backend)> {
    sqlx::any::install_default_drivers();
    let masked = mask_url(url);
    let connect_error = |source| StoreError::Connect {
        url: masked.clone(),
        source,
    };

    if let Some(rest) = url.strip_prefix("sqlite:") {
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err(StoreError::UnsupportedUrl { url: masked });
        }
        if path == ":memory:" {
            // One connection that never closes: the database lives in it.
            let pool = AnyPoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .after_connect(|conn, _| Box::pin(sqlite_session(conn)))
                .connect("sqlite::memory:")
                .await
                .map_err(connect_error)?;
            return Ok((pool, Backend::Sqlite));
        }
        let sqlx_url = sqlite_url(Path::new(path), query)?;
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .after_connect(|conn, _| Box::pin(sqlite_session(conn)))
            .connect(&sqlx_url)
            .await
            .map_err(connect_error)?;
        // WAL is a property of the file: set once, it stays.
        let mode: String = sqlx::query("PRAGMA journal_mode = WAL")
            .fetch_one(&pool)
            .await
            .map_err(connect_error)?
            .try_get(0)
            .map_err(connect_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(
                "SQLite database {masked} stays in journal mode {mode}: WAL is not available there"
            );
        }
        return Ok((pool, Backend::Sqlite));
    }

    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // One direct connection first: the pool would retry a refused or
        // failed connection until its acquire timeout; this fails at once
        // with the server's own reason (wrong password, no such database…).
        AnyConnection::connect(url)
            .await
            .map_err(connect_error)?
            .close()
            .await
            .map_err(connect_error)?;
        let pool = AnyPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(POSTGRES_ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .map_err(connect_error)?;
        return Ok((pool, Backend::Postgres));
    }

    Err(StoreError::UnsupportedUrl { url: masked })
}

/// Per-connection SQLite settings.
async fn sqlite_session(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    conn.execute("PRAGMA busy_timeout = 5000").await?;
    conn.execute("PRAGMA foreign_keys = ON").await?;
    conn.execute("PRAGMA synchronous = NORMAL").await?;
    Ok(())
}

/// Creates the database file's folder and returns the URL sqlx should open:
/// an absolute, percent-encoded path (so `..`, spaces or `#` in the path are
/// not mangled by URL parsing), creating the file if missing.
fn sqlite_url(path: &Path, query: Option<&str>) -> Result<String> {
    let file_name = path
        .file_name()
        .ok_or_else(|| StoreError::UnsupportedUrl {
            url: format!("sqlite://{}", path.display()),
        })?
        .to_owned();
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|source| StoreError::CreateDir {
        path: parent.clone(),
        source,
    })?;
    let parent = std::fs::canonicalize(&parent).map_err(|source| StoreError::CreateDir {
        path: parent.clone(),
        source,
    })?;
    let full = parent.join(file_name);

    let mut url = String::from("sqlite://");
    for &byte in full.as_os_str().as_encoded_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            url.push(char::from(byte));
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    match query {
        Some(query) if query.split('&').any(|pair| pair.starts_with("mode=")) => {
            url.push('?');
            url.push_str(query);
        }
        Some(query) if !query.is_empty() => {
            url.push('?');
            url.push_str(query);
            url.push_str("&mode=rwc");
        }
        _ => url.push_str("?mode=rwc"),
    }
    Ok(url)
}
