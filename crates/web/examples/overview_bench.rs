//! The overview at vendor scale: seeds 5,000 accounts (90% with an active
//! key, all expecting a daily file), 200,000 uploads over 40 days (some
//! held, rejected, failed) and 20,000 refused logins in the last day, then
//! times `GET /api/v1/overview` and the `/overview` page through the real
//! router (server time: from the request entering the router to the last
//! byte of the body), and `Store::overview` alone.
//!
//! ```sh
//! cargo run --release -p ferry-web --example overview_bench                 # SQLite (a temporary file)
//! FERRY_BENCH_POSTGRES_URL="$(scripts/test-postgres)" \
//!   cargo run --release -p ferry-web --example overview_bench -- postgres  # PostgreSQL (a fresh schema)
//! ```
//! Prints one Markdown table row per measurement (median and slowest of 7).

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use ferry_store::{Actor, OverviewQuery, Role, Store};
use ferry_web::{HostKey, WebConfig};
use http_body_util::BodyExt;
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Executor};
use tower::ServiceExt;

const ACCOUNTS: i64 = 5_000;
const UPLOADS: i64 = 200_000;
const REFUSED: i64 = 20_000;

async fn seed(url: &str, now: i64) {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(url)
        .await
        .expect("connect for seeding");
    let day = "CAST(86400000 AS BIGINT)";
    let statements = [
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ACCOUNTS}) \
             INSERT INTO accounts (name, display_name, enabled, legacy_clients, expected_every_secs, created_at) \
             SELECT 'district-' || i, 'District ' || i, TRUE, FALSE, 86400, {now} - 60 * {day} FROM n"
        ),
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {UPLOADS}) \
             INSERT INTO uploads (account_id, name, size, sha256, state, received_at, updated_at, \
                 handed_off_at, rows_count, logical_name, attempts) \
             SELECT ((i - 1) % {ACCOUNTS}) + 1, 'students_' || i || '.csv', 1000, 'x', \
                 CASE WHEN i % 997 = 0 THEN 'held' WHEN i % 101 = 0 THEN 'rejected' \
                      WHEN i % 1999 = 0 THEN 'failed' ELSE 'archived' END, \
                 {now} - ((i - 1) / {ACCOUNTS}) * {day} - 3600000, \
                 {now} - ((i - 1) / {ACCOUNTS}) * {day} - 3500000, \
                 CASE WHEN i % 997 = 0 OR i % 101 = 0 OR i % 1999 = 0 THEN NULL \
                      ELSE {now} - ((i - 1) / {ACCOUNTS}) * {day} - 3500000 END, \
                 100, 'students.csv', 1 FROM n"
        ),
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ACCOUNTS}) \
             INSERT INTO keys (account_id, fingerprint, key_type, bits, comment, options, openssh_line, \
                 added_by, created_at, effective_at) \
             SELECT i, 'SHA256:bench' || i, 'ED25519', 256, '', '', 'ssh-ed25519 AAAA', 'bench', \
                 {now} - {day}, {now} - {day} FROM n WHERE i % 10 <> 0"
        ),
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {REFUSED}) \
             INSERT INTO auth_attempts (at, last_at, account_name, client_addr, client_banner, result, reason) \
             SELECT {now} - (i % 80000) * 1000, {now} - (i % 80000) * 1000, 'district-' || ((i % 500) + 1), '192.0.2.1:5000', \
                 'SSH-2.0-bench', 'refused', CASE WHEN i % 3 = 0 THEN 'key pending' ELSE 'key not installed' END FROM n"
        ),
        "ANALYZE".to_owned(),
    ];
    for sql in statements {
        conn.execute(AssertSqlSafe(sql)).await.expect("seed");
    }
    conn.close().await.ok();
}

/// Median and slowest of `runs` timings of `f`, after one warm-up.
async fn time<F, Fut>(runs: usize, mut f: F) -> (Duration, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    f().await;
    let mut times = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        f().await;
        times.push(start.elapsed());
    }
    times.sort();
    (times[times.len() / 2], times[times.len() - 1])
}

#[tokio::main]
async fn main() {
    let postgres = std::env::args().nth(1).as_deref() == Some("postgres");
    let tmp = tempfile::tempdir().expect("temp dir");
    let (url, cleanup) = if postgres {
        let base = std::env::var("FERRY_BENCH_POSTGRES_URL")
            .or_else(|_| std::env::var("FERRY_TEST_POSTGRES_URL"))
            .expect("set FERRY_BENCH_POSTGRES_URL to a PostgreSQL URL (scripts/test-postgres prints one)");
        let schema = format!("ferry_bench_{}", std::process::id());
        sqlx::any::install_default_drivers();
        let mut admin = AnyConnection::connect(&base).await.expect("connect");
        admin
            .execute(AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
            .await
            .expect("schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        (
            format!("{base}{sep}options=-c%20search_path%3D{schema}"),
            Some((base, schema)),
        )
    } else {
        (format!("sqlite://{}/bench.db", tmp.path().display()), None)
    };
    let store = Store::connect(&url).await.expect("open");
    store.migrate().await.expect("migrate");
    let now = store.now().await.expect("now");
    let seeding = Instant::now();
    seed(&url, now).await;
    eprintln!("seeded in {:.1} s", seeding.elapsed().as_secs_f64());

    let actor = Actor::new("bench");
    let (_, token) = store
        .create_api_token(Role::VendorAdmin, None, &actor)
        .await
        .expect("token");
    let admin = store
        .create_admin(
            "bench",
            "bench-password-long",
            Role::VendorAdmin,
            None,
            &actor,
        )
        .await
        .expect("admin");
    let session = store.start_session(&admin, None).await.expect("session");
    let router = ferry_web::router(WebConfig {
        store: store.clone(),
        host_keys: vec![HostKey {
            algorithm: "ssh-ed25519".into(),
            fingerprint: "SHA256:bench".into(),
            openssh: "ssh-ed25519 AAAA bench".into(),
        }],
        sftp_host: "sftp.example.org".into(),
        sftp_port: 22,
        propagation_delay_ms: 600_000,
        key_policy: ferry_keys::KeyPolicy::default(),
        public_url: "http://127.0.0.1:8080".into(),
        session_limits: ferry_store::SessionLimits::default(),
        metrics: None,
        mailer: None,
    });
    let backend = store.backend().name();
    println!("| backend | what | median | slowest | size |");
    println!("| --- | --- | --- | --- | --- |");
    let store_time = time(7, || async {
        store
            .overview(None, &OverviewQuery::default())
            .await
            .expect("overview");
    })
    .await;
    println!(
        "| {backend} | Store::overview (all accounts, page 1) | {:.0} ms | {:.0} ms | |",
        store_time.0.as_secs_f64() * 1000.0,
        store_time.1.as_secs_f64() * 1000.0
    );
    for (what, path, auth) in [
        (
            "GET /api/v1/overview",
            "/api/v1/overview",
            format!("Bearer {token}"),
        ),
        (
            "GET /api/v1/overview?state=attention&q=district-1",
            "/api/v1/overview?state=attention&q=district-1",
            format!("Bearer {token}"),
        ),
        ("GET /overview (page)", "/overview", String::new()),
        (
            "GET /overview?state=held&q=district-4 (page)",
            "/overview?state=held&q=district-4",
            String::new(),
        ),
    ] {
        let size = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let timing = time(7, || {
            let mut request = Request::get(path);
            if auth.is_empty() {
                request = request.header("cookie", format!("ferry_session={session}"));
            } else {
                request = request.header("authorization", auth.clone());
            }
            let request = request.body(Body::empty()).expect("request");
            let router = router.clone();
            let size = size.clone();
            async move {
                let response = router.oneshot(request).await.expect("answer");
                assert!(response.status().is_success(), "{}", response.status());
                size.store(
                    response
                        .into_body()
                        .collect()
                        .await
                        .expect("body")
                        .to_bytes()
                        .len(),
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
        })
        .await;
        println!(
            "| {backend} | {what} | {:.0} ms | {:.0} ms | {} KiB |",
            timing.0.as_secs_f64() * 1000.0,
            timing.1.as_secs_f64() * 1000.0,
            size.load(std::sync::atomic::Ordering::Relaxed) / 1024
        );
    }
    store.close().await;
    if let Some((base, schema)) = cleanup {
        let mut admin = AnyConnection::connect(&base).await.expect("connect");
        admin
            .execute(AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
            .await
            .expect("drop schema");
    }
}
