//! The store tests' harness: each test body runs on SQLite (a temporary
//! file) and on PostgreSQL when `FERRY_TEST_POSTGRES_URL` is set, each
//! PostgreSQL run in its own schema (dropped afterwards). Without the
//! variable the PostgreSQL tests say they were skipped, unless
//! `FERRY_REQUIRE_CLIENTS=1` or `CI` is set, where they fail.
#![allow(dead_code)]

use std::future::Future;

use ferry_store::{Backend, Store};
use sqlx::{AssertSqlSafe, Connection, Executor};

pub const PG_ENV: &str = "FERRY_TEST_POSTGRES_URL";

/// A migrated store plus what a test needs to open the same database again.
#[derive(Clone)]
pub struct TestDb {
    pub store: Store,
    pub url: String,
}

pub async fn on_sqlite<F, Fut>(body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    // A folder that does not exist yet: connect must create it.
    let url = format!("sqlite://{}/not/yet/there/ferry.db", dir.path().display());
    let store = Store::connect(&url).await.expect("open sqlite");
    store.migrate().await.expect("migrate sqlite");
    body(TestDb {
        store: store.clone(),
        url,
    })
    .await;
    store.close().await;
}

pub fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The PostgreSQL URL, `None` to skip, or a panic where skipping is not allowed.
pub fn postgres_url(test: &str) -> Option<String> {
    match std::env::var(PG_ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ if required("FERRY_REQUIRE_CLIENTS") || required("CI") => panic!(
            "{PG_ENV} is not set, and FERRY_REQUIRE_CLIENTS=1 or CI is set, so the PostgreSQL \
             tests may not be skipped: run `export {PG_ENV}=\"$(scripts/test-postgres)\"` first"
        ),
        _ => {
            eprintln!(
                "SKIPPED postgres::{test}: {PG_ENV} is not set \
                 (start one with: export {PG_ENV}=\"$(scripts/test-postgres)\")"
            );
            None
        }
    }
}

pub async fn on_postgres<F, Fut>(test: &str, body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(base) = postgres_url(test) else {
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    let schema = format!("ferry_t_{test}_{}_{nanos}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {PG_ENV}: {e}"));
    admin
        .execute(AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
        .await
        .expect("create schema");
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
    let store = Store::connect(&url).await.expect("open postgres");
    assert_eq!(store.backend(), Backend::Postgres);
    store.migrate().await.expect("migrate postgres");

    let outcome = tokio::spawn(body(TestDb {
        store: store.clone(),
        url,
    }))
    .await;
    store.close().await;
    admin
        .execute(AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
        .await
        .expect("drop schema");
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

/// Defines `sqlite::NAME` and `postgres::NAME` for each test body `NAME`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::on_sqlite(super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::on_postgres(stringify!($name), super::$name).await;
                }
            )*
        }
    };
}
