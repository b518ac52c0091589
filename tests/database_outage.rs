//! A database outage, for real: `ferry serve` on its own PostgreSQL cluster
//! (never the shared `FERRY_TEST_POSTGRES_URL` one), which the test stops
//! (`pg_ctl stop -m fast`) and starts again. While it is down:
//! - a login is refused quickly (the lookup gives up after 3 s instead of
//!   hanging on the pool), and clients are told why in the SSH banner;
//! - the server logs the outage once, not once per refused login;
//! - `/healthz` answers 503 with the reason, `/livez` still 200;
//! - the server keeps running.
//!
//! Once PostgreSQL is back: logins work, `/healthz` is 200, the outage's end
//! is logged, and the files that were queued before the outage or dropped
//! into /inbound during it are handed off by ingest.
//!
//! PostgreSQL's server binaries (initdb, pg_ctl) must be installed (Debian:
//! postgresql); without them the test skips, or fails under
//! FERRY_REQUIRE_CLIENTS=1.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const ACCOUNT: &str = "district_outage";

/// The SSH banner text a client gets while the database is down.
const BANNER: &str = "cannot reach its database";

/// The directory of PostgreSQL's server binaries, as scripts/test-postgres
/// finds it.
fn postgres_bindir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
        .collect();
    dirs.sort();
    dirs.pop().or_else(|| {
        (have("initdb") && have("pg_ctl")).then(|| {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .find(|d| d.join("pg_ctl").is_file())
                .expect("pg_ctl on PATH")
        })
    })
}

/// A throwaway PostgreSQL cluster of this test alone, made by
/// scripts/test-postgres in a private directory, removed on drop.
struct PrivatePostgres {
    dir: PathBuf,
    bindir: PathBuf,
    url: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test-postgres")
}

impl PrivatePostgres {
    /// Starts the cluster, or `None` (after printing why, or panicking under
    /// FERRY_REQUIRE_CLIENTS=1) when PostgreSQL is not installed.
    fn start() -> Option<PrivatePostgres> {
        let bindir = postgres_bindir();
        if !require_found(
            bindir.is_some(),
            "PostgreSQL's initdb and pg_ctl",
            "postgresql",
        ) {
            return None;
        }
        let bindir = bindir?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("ferry-outage-pg-{}-{nanos}", std::process::id()));
        let mut pg = PrivatePostgres {
            dir,
            bindir,
            url: String::new(),
        };
        pg.url = pg.run_script();
        Some(pg)
    }

    /// scripts/test-postgres in this cluster's directory: creates or starts
    /// it and returns its URL.
    fn run_script(&self) -> String {
        let mut cmd = Command::new("bash");
        cmd.arg(script()).env("FERRY_TEST_PG_DIR", &self.dir);
        let r = run(cmd, None, Duration::from_secs(120));
        r.assert_success();
        let url = r.stdout.trim().to_owned();
        assert!(url.starts_with("postgres://"), "{r}");
        url
    }

    /// pg_ctl as the cluster's owner (root may not run it).
    fn pg_ctl(&self, args: &[&str]) -> Run {
        let pg_ctl = self.bindir.join("pg_ctl");
        let data = self.dir.join("data");
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(pg_ctl);
            c
        } else {
            Command::new(pg_ctl)
        };
        cmd.arg("-D").arg(data).args(args);
        run(cmd, None, Duration::from_secs(60))
    }

    fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "stop"]).assert_success();
    }

    fn start_again(&self) {
        assert_eq!(self.run_script(), self.url, "the same cluster, same URL");
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let mut cmd = Command::new("bash");
        cmd.arg(script()).arg("stop").arg(&self.dir);
        let _ = run(cmd, None, Duration::from_secs(60));
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|v| v.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false)
}

/// `/healthz` until it answers `want` (each answer may be reused for 1 s).
fn healthz_becomes(web: u16, want: u16, within: Duration) -> (u16, String) {
    let deadline = Instant::now() + within;
    loop {
        let (status, _, body) = http(web, "GET", "/healthz", None, "");
        if status == want || Instant::now() >= deadline {
            return (status, body);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn logins_are_refused_quickly_while_the_database_is_down_and_work_again_after() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let env = Env::with_ingest("quiet_period = \"4s\"\ncommand = [\"/bin/true\"]");
    env.enable_web();
    env.use_database(&pg.url);
    env.create_account(ACCOUNT);
    let key = env.new_key(ACCOUNT);
    env.install_key(ACCOUNT, &key);
    let mut server = env.start();
    let web = server.web_port();
    let login = env.login(&server, ACCOUNT, &key);
    assert_eq!(healthz_becomes(web, 200, Duration::from_secs(10)).0, 200);

    // Queued before the outage: received, waiting out its quiet period.
    std::fs::write(login.work.join("before.csv"), "id,name\n1,a\n2,b\n").unwrap();
    login
        .sftp_batch("put before.csv /inbound/before.csv\n")
        .assert_success();
    env.wait_uploads(
        ACCOUNT,
        Duration::from_secs(20),
        "before.csv queued",
        |rows| rows.iter().any(|r| r["name"] == "before.csv"),
    );
    pg.stop();
    let stopped = Instant::now();

    // The node notices on its own (the session check pings every 2 s).
    assert!(
        server
            .wait_log(&["the database does not answer"], Duration::from_secs(15))
            .is_some(),
        "the outage is logged"
    );
    let mut refused_in = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let run = login.sftp_batch_timeout("pwd\n", Duration::from_secs(15));
        let took = started.elapsed();
        assert!(
            !run.timed_out && !run.success(),
            "a login with the database down must be refused within the client's 15 s: {run}"
        );
        assert!(run.stderr.contains("Permission denied"), "{run}");
        assert!(run.stderr.contains(BANNER), "the client is told why: {run}");
        refused_in.push(took);
    }
    eprintln!("logins refused in {refused_in:?} with the database down");
    // Dropped into /inbound by other means while the database is down.
    std::fs::write(env.inbound(ACCOUNT).join("during.csv"), "id,name\n3,c\n").unwrap();

    let (status, body) = healthz_becomes(web, 503, Duration::from_secs(10));
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("database unreachable: "), "{body}");
    let (status, _, body) = http(web, "GET", "/livez", None, "");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert!(server.is_running(), "ferry serve keeps running");
    let outage_lines = server
        .log_lines()
        .iter()
        .filter(|l| l.contains("the database does not answer"))
        .count();
    assert_eq!(
        outage_lines,
        1,
        "one line for the outage, not one per refused login:\n{}",
        server.log_text()
    );
    assert!(
        !server.log_text().contains("login grace time expired"),
        "a refused client that leaves is not a login grace expiry:\n{}",
        server.log_text()
    );
    eprintln!("database down for {:?}", stopped.elapsed());

    pg.start_again();
    let (status, body) = healthz_becomes(web, 200, Duration::from_secs(30));
    assert_eq!(status, 200, "{body}");
    login.sftp_batch("pwd\n").assert_success();
    assert!(
        server
            .wait_log(&["the database answers again"], Duration::from_secs(10))
            .is_some()
    );
    // Each file has a row that was handed off and archived. (A file can
    // also get a second row, refused as gone, when a retried scan queues it
    // again after its batch took it: that is ingest's to fix, not asserted.)
    env.wait_uploads(
        ACCOUNT,
        Duration::from_secs(90),
        "both files handed off after the outage",
        |rows| {
            ["before.csv", "during.csv"].iter().all(|name| {
                rows.iter().any(|r| {
                    r["name"] == *name && r["state"] == "archived" && !r["handed_off_at"].is_null()
                })
            })
        },
    );
}
