//! Harness for Ferry's end-to-end tests: a throwaway installation (temporary
//! `data_dir`, configuration and SQLite database), a real `ferry serve` process,
//! client keys, and runners for the real clients (OpenSSH `sftp`/`ssh`, PuTTY
//! `psftp`).
//!
//! Rules every helper keeps: each child process runs with a timeout and is
//! killed (with its process group) when the timeout expires; the server is
//! stopped with SIGTERM, then SIGKILL, when its handle drops; temporary
//! directories go away with the `Env`. A missing client binary makes the test
//! skip, or fail when `FERRY_REQUIRE_CLIENTS=1`.
#![allow(dead_code)]

pub mod raw;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// The one line a shell or exec request gets.
pub const SFTP_ONLY_LINE: &str =
    "This account accepts SFTP only. Connect with an SFTP client such as WinSCP or sftp.";

/// The four folders of an account's root, as `/` lists them.
pub const LAYOUT: [&str; 4] = ["archive", "inbound", "outbound", "reports"];

/// How long a `ferry` administrative command may take (the first one that
/// touches host keys generates an RSA-3072 key).
pub const FERRY_CMD_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `ferry serve` may take to print its listening line.
pub const SERVER_START_TIMEOUT: Duration = Duration::from_secs(90);
/// Default timeout of one client session.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Client binaries
// ---------------------------------------------------------------------------

/// Whether `bin` is found on PATH.
pub fn have(bin: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        let candidate = dir.join(bin);
        std::fs::metadata(&candidate)
            .map(|m| {
                m.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
            .unwrap_or(false)
    })
}

/// Checks that every client binary a test needs is installed. Returns false
/// (after printing "skipped: …") when one is missing, or panics when
/// `FERRY_REQUIRE_CLIENTS=1`.
///
/// `needs` pairs a binary with the Debian package that provides it.
pub fn require(needs: &[(&str, &str)]) -> bool {
    needs
        .iter()
        .all(|(bin, package)| require_found(have(bin), bin, package))
}

/// [`require`] for something found another way than on PATH (such as
/// PostgreSQL's server binaries): `found`, or false after printing
/// "skipped: …", or a panic under `FERRY_REQUIRE_CLIENTS=1`.
pub fn require_found(found: bool, what: &str, package: &str) -> bool {
    if found {
        return true;
    }
    if std::env::var("FERRY_REQUIRE_CLIENTS").as_deref() == Ok("1") {
        panic!(
            "{what} is not installed: install the {package} package (FERRY_REQUIRE_CLIENTS=1 makes missing clients fail)"
        );
    }
    eprintln!("skipped: {what} not installed (install the {package} package to run this test)");
    false
}

pub const SSH_KEYGEN: (&str, &str) = ("ssh-keygen", "openssh-client");
pub const SFTP: (&str, &str) = ("sftp", "openssh-client");
pub const SSH: (&str, &str) = ("ssh", "openssh-client");
pub const PSFTP: (&str, &str) = ("psftp", "putty-tools");
pub const PUTTYGEN: (&str, &str) = ("puttygen", "putty-tools");

// ---------------------------------------------------------------------------
// Running child processes with a timeout
// ---------------------------------------------------------------------------

/// The outcome of one child process.
#[derive(Debug)]
pub struct Run {
    pub what: String,
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl Run {
    pub fn success(&self) -> bool {
        !self.timed_out && self.status.is_some_and(|s| s.success())
    }

    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// stdout and stderr together, for "the client said X somewhere".
    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Panics with the whole story unless the process succeeded.
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "expected success: {self}");
        self
    }

    /// Panics unless the process ran to completion (no timeout) and failed.
    pub fn assert_failure(&self) -> &Self {
        assert!(
            !self.timed_out,
            "expected a failure, but it timed out: {self}"
        );
        assert!(
            !self.success(),
            "expected failure, but it succeeded: {self}"
        );
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` -> status {:?}{} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.status,
            if self.timed_out {
                " (TIMED OUT, killed)"
            } else {
                ""
            },
            self.elapsed,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Sends `signal` (a name such as "TERM" or "KILL") to one process.
pub fn signal_pid(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, "--", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Sends `signal` to every process of the group led by `pgid` (a child we
/// spawned with `process_group(0)`).
pub fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A spawned client whose output is being collected; used directly by tests
/// that must act while the client runs (kill it mid-upload).
pub struct Running {
    pub what: String,
    pub child: Child,
    started: Instant,
    out_rx: mpsc::Receiver<(bool, Vec<u8>)>,
}

impl Running {
    /// Spawns `cmd` in its own process group, stdin from `stdin` (or
    /// /dev/null), stdout and stderr collected.
    pub fn spawn(mut cmd: Command, stdin: Option<Vec<u8>>) -> Running {
        let what = describe(&cmd);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => panic!("cannot start `{what}`: {e}"),
        };
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }
        let (tx, out_rx) = mpsc::channel();
        for (is_err, pipe) in [
            (
                false,
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn Read + Send>),
            ),
            (
                true,
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn Read + Send>),
            ),
        ] {
            let tx = tx.clone();
            if let Some(mut pipe) = pipe {
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let _ = pipe.read_to_end(&mut buf);
                    let _ = tx.send((is_err, buf));
                });
            }
        }
        Running {
            what,
            child,
            started: Instant::now(),
            out_rx,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the client and everything it started (sftp runs ssh) with SIGKILL.
    pub fn kill_group(&mut self) {
        if self.is_running() {
            signal_group(self.child.id(), "KILL");
        }
    }

    /// Waits for the client to exit, killing its process group after `timeout`.
    pub fn finish(mut self, timeout: Duration) -> Run {
        let deadline = self.started + timeout;
        let mut timed_out = false;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() >= deadline => {
                    timed_out = true;
                    signal_group(self.child.id(), "KILL");
                    break self.child.wait().ok();
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break None,
            }
        };
        let elapsed = self.started.elapsed();
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        for _ in 0..2 {
            // A grandchild (sftp's ssh) may still hold the pipes: give it a
            // moment, then kill the group so the readers see EOF.
            let got = match self.out_rx.recv_timeout(Duration::from_secs(5)) {
                Ok(got) => Some(got),
                Err(_) => {
                    signal_group(self.child.id(), "KILL");
                    self.out_rx.recv_timeout(Duration::from_secs(5)).ok()
                }
            };
            match got {
                Some((false, b)) => stdout = b,
                Some((true, b)) => stderr = b,
                None => break,
            }
        }
        Run {
            what: std::mem::take(&mut self.what),
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            timed_out,
            elapsed,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            signal_group(self.child.id(), "KILL");
            let _ = self.child.wait();
        }
    }
}

/// Runs `cmd` to completion, killing it (and its process group) after `timeout`.
pub fn run(cmd: Command, stdin: Option<Vec<u8>>, timeout: Duration) -> Run {
    Running::spawn(cmd, stdin).finish(timeout)
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// A command with a clean environment for Ferry: no FERRY_* or RUST_LOG
/// leaking in from the developer's shell, no colours in logs.
fn ferry_command(config: &Path) -> Command {
    let mut cmd = Command::new(FERRY);
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("FERRY_") || k == "RUST_LOG" {
            cmd.env_remove(&key);
        }
    }
    cmd.env("NO_COLOR", "1").arg("--config").arg(config);
    cmd
}

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------

/// SHA-256 of a file, as `sha256sum` prints it.
pub fn sha256_file(path: &Path) -> String {
    let mut cmd = Command::new("sha256sum");
    cmd.arg(path);
    let r = run(cmd, None, Duration::from_secs(120));
    r.assert_success();
    r.stdout
        .split_whitespace()
        .next()
        .expect("sha256sum prints a digest")
        .to_string()
}

/// Writes `len` random bytes to `path`.
pub fn write_random(path: &Path, len: u64) {
    let mut src = std::fs::File::open("/dev/urandom").expect("open /dev/urandom");
    let mut dst = std::fs::File::create(path).expect("create random file");
    let copied = std::io::copy(&mut (&mut src).take(len), &mut dst).expect("copy random bytes");
    assert_eq!(copied, len);
}

/// Names of the entries of a directory (as lossy strings), sorted.
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// One entry of a tree snapshot: kind, length and modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub len: u64,
    pub mtime: Option<std::time::SystemTime>,
    pub link: Option<PathBuf>,
}

/// Snapshot of a tree without following symlinks; `skip` lists paths whose
/// subtrees are left out.
pub fn snapshot(root: &Path, skip: &[&Path]) -> BTreeMap<PathBuf, Entry> {
    fn walk(path: &Path, skip: &[&Path], out: &mut BTreeMap<PathBuf, Entry>) {
        if skip.contains(&path) {
            return;
        }
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return;
        };
        let ft = meta.file_type();
        let kind = if ft.is_symlink() {
            "symlink"
        } else if ft.is_dir() {
            "dir"
        } else if ft.is_file() {
            "file"
        } else {
            "other"
        };
        out.insert(
            path.to_path_buf(),
            Entry {
                kind,
                mode: std::os::unix::fs::PermissionsExt::mode(&meta.permissions()),
                len: if ft.is_dir() { 0 } else { meta.len() },
                mtime: if ft.is_dir() {
                    None
                } else {
                    meta.modified().ok()
                },
                link: std::fs::read_link(path).ok(),
            },
        );
        if ft.is_dir()
            && let Ok(rd) = std::fs::read_dir(path)
        {
            for e in rd.flatten() {
                walk(&e.path(), skip, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, skip, &mut out);
    out
}

/// Describes how two snapshots differ (empty when they are equal).
pub fn snapshot_diff(
    before: &BTreeMap<PathBuf, Entry>,
    after: &BTreeMap<PathBuf, Entry>,
) -> Vec<String> {
    let mut diff = Vec::new();
    for (p, e) in after {
        match before.get(p) {
            None => diff.push(format!("created: {} ({:?})", p.display(), e)),
            Some(b) if b != e => {
                diff.push(format!("changed: {} ({:?} -> {:?})", p.display(), b, e))
            }
            _ => {}
        }
    }
    for p in before.keys() {
        if !after.contains_key(p) {
            diff.push(format!("removed: {}", p.display()));
        }
    }
    diff
}

/// Polls `check` every 50 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Splits a batch client's stdout into (command, output lines) sections,
/// using the echoed prompt lines (`sftp> ls` or `psftp> ls`).
pub fn sections(stdout: &str, prompt: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in stdout.lines() {
        if let Some(cmd) = line.strip_prefix(prompt) {
            out.push((cmd.trim().to_string(), Vec::new()));
        } else if let Some(last) = out.last_mut()
            && !line.trim().is_empty()
        {
            last.1.push(line.trim_end().to_string());
        }
    }
    out
}

/// The output lines of the first section whose command is `cmd`.
pub fn section<'a>(sections: &'a [(String, Vec<String>)], cmd: &str) -> &'a [String] {
    sections
        .iter()
        .find(|(c, _)| c == cmd)
        .map(|(_, lines)| lines.as_slice())
        .unwrap_or_else(|| panic!("no output section for `{cmd}` in {sections:?}"))
}

/// Names printed by OpenSSH's `ls -1` (any leading directory removed).
pub fn ls_names(lines: &[String]) -> Vec<String> {
    let mut names: Vec<String> = lines
        .iter()
        .map(|l| l.trim().trim_end_matches('/'))
        .map(|l| l.rsplit('/').next().unwrap_or(l).to_string())
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .collect();
    names.sort();
    names
}

/// The first line of /etc/passwd: if it ever shows up in a client's
/// output or a downloaded file, the jail leaked.
pub fn passwd_marker() -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| t.lines().next().map(str::to_string))
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "root:x:0:0:".to_string())
}

// ---------------------------------------------------------------------------
// A throwaway installation
// ---------------------------------------------------------------------------

/// A client key pair made with ssh-keygen.
#[derive(Debug, Clone)]
pub struct ClientKey {
    pub private: PathBuf,
    pub public: PathBuf,
    /// `SHA256:…` as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
}

impl ClientKey {
    /// The key in PuTTY's format (made with puttygen on first use).
    pub fn ppk(&self) -> PathBuf {
        let ppk = PathBuf::from(format!("{}.ppk", self.private.display()));
        if !ppk.exists() {
            let mut cmd = Command::new("puttygen");
            cmd.arg(&self.private)
                .args(["-O", "private", "-o"])
                .arg(&ppk);
            run(cmd, None, Duration::from_secs(30)).assert_success();
        }
        ppk
    }

    pub fn public_line(&self) -> String {
        std::fs::read_to_string(&self.public)
            .expect("read public key")
            .trim()
            .to_string()
    }
}

/// A temporary Ferry installation: data_dir, configuration, database.
pub struct Env {
    /// Everything lives under here; removed when the Env and every Server
    /// started from it are gone.
    pub dir: Arc<tempfile::TempDir>,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    /// HOME for client processes (PuTTY writes ~/.putty).
    pub home: PathBuf,
    /// Scratch space for the clients' local files.
    pub work: PathBuf,
}

impl Env {
    /// An installation with the standard test configuration.
    pub fn new() -> Env {
        Env::with_sftp_settings("")
    }

    /// The standard test configuration plus extra lines in `[sftp]` (for
    /// example `shutdown_grace = "2s"`).
    pub fn with_sftp_settings(extra_sftp: &str) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("ferry-e2e-")
            .tempdir()
            .expect("create temp dir");
        let root = dir.path().to_path_buf();
        let data_dir = root.join("data");
        let home = root.join("home");
        let work = root.join("work");
        for d in [&data_dir, &home, &work] {
            std::fs::create_dir_all(d).expect("create test dirs");
        }
        let config = root.join("ferry.toml");
        // Tests connect from 127.0.0.1, which is exempt from per-source
        // penalties here, so one test's deliberate failures never lock its
        // next step out; tests of penalties connect from other 127.0.0.x
        // addresses (see `tcp_from`), or set penalty_exempt themselves.
        let exempt = if extra_sftp.contains("penalty_exempt") {
            ""
        } else {
            "penalty_exempt = [\"127.0.0.1/32\"]\n"
        };
        let text = format!(
            "data_dir = {data:?}\n\n[sftp]\nlisten = \"127.0.0.1:0\"\n{exempt}{extra_sftp}\n\n[database]\nurl = {url:?}\n\n\
             [keys]\npropagation_delay = \"0s\"\n\n[web]\nenabled = false\n\n[ingest]\nenabled = false\n",
            data = data_dir.display().to_string(),
            url = format!("sqlite://{}/ferry.db", data_dir.display()),
        );
        std::fs::write(&config, text).expect("write config");
        Env {
            dir: Arc::new(dir),
            data_dir,
            config,
            home,
            work,
        }
    }

    /// The standard test configuration with the admin web enabled on
    /// 127.0.0.1, port 0 ([`Server::web_port`] finds the port).
    pub fn with_web() -> Env {
        let env = Env::new();
        env.enable_web();
        env
    }

    /// Turns the admin web on (127.0.0.1, port 0) in this installation's
    /// configuration.
    pub fn enable_web(&self) {
        let text = std::fs::read_to_string(&self.config).expect("read config");
        let text = text.replace(
            "[web]\nenabled = false\n",
            "[web]\nenabled = true\nlisten = \"127.0.0.1:0\"\n",
        );
        std::fs::write(&self.config, text).expect("write config");
    }

    /// The standard test configuration with ingest enabled and fast
    /// (settle and quiet period 1 s, queue polled every 200 ms, scans every
    /// 2 s), plus `extra_ingest` lines in `[ingest]`; a key given there
    /// replaces the fast default.
    pub fn with_ingest(extra_ingest: &str) -> Env {
        let env = Env::new();
        let mut lines = vec!["enabled = true".to_string()];
        for (key, value) in [
            ("settle", "\"1s\""),
            ("quiet_period", "\"1s\""),
            ("poll_interval", "\"200ms\""),
            ("scan_interval", "\"2s\""),
        ] {
            let given = extra_ingest.lines().any(|l| {
                l.trim_start().starts_with(&format!("{key} "))
                    || l.trim_start().starts_with(&format!("{key}="))
            });
            if !given {
                lines.push(format!("{key} = {value}"));
            }
        }
        lines.push(extra_ingest.to_string());
        let text = std::fs::read_to_string(&env.config).expect("read config");
        let text = text.replace(
            "[ingest]\nenabled = false\n",
            &format!("[ingest]\n{}\n", lines.join("\n")),
        );
        std::fs::write(&env.config, text).expect("write config");
        env
    }

    /// `ferry uploads list [ACCOUNT] --json`, parsed.
    pub fn uploads(&self, account: Option<&str>) -> Vec<serde_json::Value> {
        let mut args = vec!["uploads", "list", "--json"];
        args.extend(account);
        let r = self.ferry_ok(&args);
        match serde_json::from_str::<serde_json::Value>(&r.stdout) {
            Ok(serde_json::Value::Array(items)) => items,
            other => {
                panic!("`ferry uploads list --json` did not print a JSON array: {other:?}\n{r}")
            }
        }
    }

    /// Polls `ferry uploads list ACCOUNT --json` until `done` holds for the
    /// rows; returns them, or panics with the last rows after `timeout`.
    pub fn wait_uploads(
        &self,
        account: &str,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let rows = self.uploads(Some(account));
            if done(&rows) {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "waited {timeout:?} for {what}; uploads of {account}: {rows:#?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `ferry --config CONFIG args…` with a timeout.
    pub fn ferry(&self, args: &[&str]) -> Run {
        let mut cmd = ferry_command(&self.config);
        cmd.args(args);
        run(cmd, None, FERRY_CMD_TIMEOUT)
    }

    /// Same, with `stdin` fed to the command.
    pub fn ferry_stdin(&self, args: &[&str], stdin: &[u8]) -> Run {
        let mut cmd = ferry_command(&self.config);
        cmd.args(args);
        run(cmd, Some(stdin.to_vec()), FERRY_CMD_TIMEOUT)
    }

    /// Runs a ferry command and panics unless it succeeds.
    pub fn ferry_ok(&self, args: &[&str]) -> Run {
        let r = self.ferry(args);
        assert!(r.success(), "ferry command failed: {r}");
        r
    }

    /// data_dir/accounts/NAME
    pub fn account_root(&self, name: &str) -> PathBuf {
        self.data_dir.join("accounts").join(name)
    }

    /// data_dir/accounts/NAME/inbound
    pub fn inbound(&self, name: &str) -> PathBuf {
        self.account_root(name).join("inbound")
    }

    /// data_dir/uploading/NAME: where uploads live until they are closed.
    pub fn uploading(&self, name: &str) -> PathBuf {
        self.data_dir.join("uploading").join(name)
    }

    /// `ferry account create NAME` and a check of the folders it must make.
    pub fn create_account(&self, name: &str) {
        self.ferry_ok(&["account", "create", name]);
        for folder in LAYOUT {
            let p = self.account_root(name).join(folder);
            assert!(
                p.is_dir(),
                "ferry account create {name} did not create {}",
                p.display()
            );
        }
    }

    /// A new ed25519 key pair (ssh-keygen), not installed anywhere.
    pub fn new_key(&self, label: &str) -> ClientKey {
        self.new_key_of_type(label, &["-t", "ed25519"])
    }

    /// A new key pair made by `ssh-keygen` with `type_args` (e.g. `-t rsa
    /// -b 3072 -m PEM`), not installed anywhere.
    pub fn new_key_of_type(&self, label: &str, type_args: &[&str]) -> ClientKey {
        let private = self.root().join("keys").join(label);
        std::fs::create_dir_all(private.parent().unwrap()).unwrap();
        let mut cmd = Command::new("ssh-keygen");
        cmd.arg("-q")
            .args(type_args)
            .args(["-N", "", "-C", &format!("ferry-test-{label}"), "-f"])
            .arg(&private);
        run(cmd, None, Duration::from_secs(60)).assert_success();
        let public = PathBuf::from(format!("{}.pub", private.display()));
        let mut cmd = Command::new("ssh-keygen");
        cmd.arg("-lf").arg(&public);
        let r = run(cmd, None, Duration::from_secs(30));
        r.assert_success();
        let fingerprint = r
            .stdout
            .split_whitespace()
            .find(|w| w.starts_with("SHA256:"))
            .expect("ssh-keygen -lf prints a SHA256 fingerprint")
            .to_string();
        ClientKey {
            private,
            public,
            fingerprint,
        }
    }

    /// `ferry key add ACCOUNT KEY.pub --now`
    pub fn install_key(&self, account: &str, key: &ClientKey) {
        let public = key.public.display().to_string();
        self.ferry_ok(&["key", "add", account, &public, "--now"]);
    }

    /// `ferry account attempts NAME --json`, parsed. Panics if the command
    /// fails or its output is not a JSON array.
    pub fn attempts(&self, name: &str) -> Vec<serde_json::Value> {
        let r = self.ferry_ok(&["account", "attempts", name, "--json"]);
        match serde_json::from_str::<serde_json::Value>(&r.stdout) {
            Ok(serde_json::Value::Array(items)) => items,
            other => panic!(
                "`ferry account attempts {name} --json` did not print a JSON array: {other:?}\n{r}"
            ),
        }
    }

    /// Polls the recorded attempts of `name` until one satisfies `pred`.
    pub fn wait_attempt(
        &self,
        name: &str,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value, Vec<serde_json::Value>> {
        let deadline = Instant::now() + timeout;
        loop {
            let all = self.attempts(name);
            if let Some(hit) = all.iter().find(|a| pred(a)) {
                return Ok(hit.clone());
            }
            if Instant::now() >= deadline {
                return Err(all);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `ferry host-key show`: (fingerprint, "type base64") per host key.
    pub fn host_keys(&self) -> Vec<(String, String)> {
        // Each key is a `# type SHA256:…` comment, then its `.pub` line.
        let r = self.ferry_ok(&["host-key", "show"]);
        let mut keys = Vec::new();
        let mut fingerprint = None;
        for line in r.stdout.lines() {
            if let Some(comment) = line.strip_prefix("# ") {
                fingerprint = comment
                    .split_whitespace()
                    .find(|word| word.starts_with("SHA256:"))
                    .map(str::to_owned);
                continue;
            }
            let mut words = line.split_whitespace();
            if let (Some(fp), Some(alg), Some(b64)) =
                (fingerprint.take(), words.next(), words.next())
            {
                keys.push((fp, format!("{alg} {b64}")));
            }
        }
        assert!(
            !keys.is_empty(),
            "`ferry host-key show` printed no `# type SHA256:…` comment and `.pub` line pairs:\n{r}"
        );
        keys
    }

    /// Writes a known_hosts file for `[127.0.0.1]:port` with every host key.
    pub fn known_hosts(&self, port: u16) -> PathBuf {
        let path = self.root().join(format!("known_hosts_{port}"));
        let mut text = String::new();
        for (_, key) in self.host_keys() {
            text.push_str(&format!("[127.0.0.1]:{port} {key}\n"));
        }
        std::fs::write(&path, text).expect("write known_hosts");
        path
    }

    /// Starts `ferry serve` with this installation.
    pub fn start(&self) -> Server {
        Server::start(self)
    }

    /// A login description for `user` with `key` against `server`.
    pub fn login(&self, server: &Server, user: &str, key: &ClientKey) -> Login {
        let host_keys = self.host_keys();
        let known_hosts = self.known_hosts(server.port);
        Login {
            user: user.to_string(),
            port: server.port,
            key: key.clone(),
            known_hosts,
            home: self.home.clone(),
            work: self.work.clone(),
            host_fingerprints: host_keys.into_iter().map(|(fp, _)| fp).collect(),
        }
    }
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

/// The usual start of a test: an installation with one account `name`
/// holding one installed key, a running server, and a login for it.
pub fn setup(name: &str) -> (Env, Server, Login) {
    let env = Env::new();
    env.create_account(name);
    let key = env.new_key(name);
    env.install_key(name, &key);
    let server = env.start();
    let login = env.login(&server, name, &key);
    (env, server, login)
}

// ---------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------

/// A running `ferry serve`. Its stderr is collected line by line; dropping
/// the handle stops the process (SIGTERM, then SIGKILL).
pub struct Server {
    child: Child,
    /// Keeps the installation's directory alive until the process is gone.
    _dir: Arc<tempfile::TempDir>,
    pub port: u16,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// Removes ANSI colour sequences, in case the logger adds them anyway.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c2 in chars.by_ref() {
                    if c2.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Whether a log line was logged at WARN or ERROR level.
pub fn is_warn_or_error(line: &str) -> bool {
    line.split_whitespace()
        .take(4)
        .any(|w| w == "WARN" || w == "ERROR")
}

impl Server {
    pub fn start(env: &Env) -> Server {
        Server::start_with(env, |_| {})
    }

    /// Like [`Server::start`], with `adjust` applied to the command first
    /// (for example [`limit_resource`]).
    pub fn start_with(env: &Env, adjust: impl FnOnce(&mut Command)) -> Server {
        let mut cmd = ferry_command(&env.config);
        adjust(&mut cmd);
        // stdout (where the first-start setup link goes) is kept in
        // ROOT/serve.stdout, appended to across restarts.
        let stdout = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(env.root().join("serve.stdout"))
            .expect("open serve.stdout");
        cmd.arg("serve")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {FERRY} serve: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = strip_ansi(String::from_utf8_lossy(&buf).trim_end());
                        sink.lock().unwrap().push(line);
                    }
                }
            }
        });
        let mut server = Server {
            child,
            _dir: Arc::clone(&env.dir),
            port: 0,
            log,
            reader: Some(reader),
        };
        let deadline = Instant::now() + SERVER_START_TIMEOUT;
        loop {
            if let Some(port) = server.listening_port() {
                server.port = port;
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "ferry serve exited with {status} before listening; log:\n{}",
                    server.log_text()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "ferry serve printed no `sftp listening on 127.0.0.1:PORT` line within {:?}; log:\n{}",
                    SERVER_START_TIMEOUT,
                    server.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn listening_port(&self) -> Option<u16> {
        let log = self.log.lock().unwrap();
        log.iter().find_map(|line| {
            let rest = &line[line.find("sftp listening on ")? + "sftp listening on ".len()..];
            let addr = rest.split_whitespace().next()?;
            addr.rsplit(':')
                .next()?
                .trim_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .ok()
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The admin web's port, from its `web listening on 127.0.0.1:PORT` line.
    pub fn web_port(&self) -> u16 {
        let line = self
            .wait_log(&["web listening on "], SERVER_START_TIMEOUT)
            .unwrap_or_else(|| panic!("no `web listening on` line; log:\n{}", self.log_text()));
        let rest = &line[line.find("web listening on ").unwrap() + "web listening on ".len()..];
        rest.split_whitespace()
            .next()
            .and_then(|addr| addr.rsplit(':').next())
            .and_then(|port| {
                port.trim_matches(|c: char| !c.is_ascii_digit())
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("cannot read the port in {line:?}"))
    }

    /// All log lines so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn log_text(&self) -> String {
        self.log_lines().join("\n")
    }

    pub fn log_len(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// Log lines from index `from` on.
    pub fn log_since(&self, from: usize) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.get(from..).map(|s| s.to_vec()).unwrap_or_default()
    }

    /// Waits until a log line contains every one of `needles`.
    pub fn wait_log(&self, needles: &[&str], timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return Some(line.clone());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Peak resident memory (VmHWM) of the server, in KiB.
    pub fn vm_hwm_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status of the server");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit.
    /// Returns its status, or None if it is still running.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        signal_pid(self.child.id(), "TERM");
        self.wait_exit(timeout)
    }

    /// Kills the server with SIGKILL (no clean-up at all, as in a crash) and
    /// waits for it to be gone.
    pub fn kill9(&mut self) {
        signal_pid(self.child.id(), "KILL");
        assert!(
            self.wait_exit(Duration::from_secs(10)).is_some(),
            "ferry serve did not die from SIGKILL within 10 s"
        );
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            signal_pid(self.child.id(), "TERM");
            if self.wait_exit(Duration::from_secs(10)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if std::thread::panicking() {
            let lines = self.log_lines();
            let skip = lines.len().saturating_sub(300);
            eprintln!(
                "----- ferry serve log (last {} lines) -----",
                lines.len() - skip
            );
            for l in &lines[skip..] {
                eprintln!("{l}");
            }
            eprintln!("----- end of ferry serve log -----");
        }
    }
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/// Everything a client needs to log in as one account.
#[derive(Debug, Clone)]
pub struct Login {
    pub user: String,
    pub port: u16,
    pub key: ClientKey,
    pub known_hosts: PathBuf,
    pub home: PathBuf,
    /// The clients' local working directory.
    pub work: PathBuf,
    pub host_fingerprints: Vec<String>,
}

impl Login {
    /// The same login with another key (e.g. one that is not installed).
    pub fn with_key(&self, key: &ClientKey) -> Login {
        Login {
            key: key.clone(),
            ..self.clone()
        }
    }

    /// The same login as another user.
    pub fn as_user(&self, user: &str) -> Login {
        Login {
            user: user.to_string(),
            ..self.clone()
        }
    }

    /// OpenSSH options shared by `ssh` and `sftp`.
    fn openssh_options(&self) -> Vec<String> {
        vec![
            "-F".into(),
            "/dev/null".into(),
            "-i".into(),
            self.key.private.display().to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "-o".into(),
            "GlobalKnownHostsFile=/dev/null".into(),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "UpdateHostKeys=no".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "ConnectTimeout=10".into(),
            "-o".into(),
            "ServerAliveInterval=10".into(),
        ]
    }

    /// The `sftp -b - …` command, without running it; `extra` goes before the host.
    pub fn sftp_command(&self, extra: &[&str]) -> Command {
        let mut cmd = Command::new("sftp");
        cmd.current_dir(&self.work)
            .env("HOME", &self.home)
            .args(["-b", "-", "-P", &self.port.to_string()])
            .args(self.openssh_options())
            .args(extra)
            .arg(format!("{}@127.0.0.1", self.user));
        cmd
    }

    /// Runs OpenSSH `sftp` in batch mode with `commands` on stdin (one per
    /// line). sftp stops at the first failing command (unless it starts with `-`).
    pub fn sftp_batch(&self, commands: &str) -> Run {
        self.sftp_batch_timeout(commands, CLIENT_TIMEOUT)
    }

    pub fn sftp_batch_timeout(&self, commands: &str, timeout: Duration) -> Run {
        run(
            self.sftp_command(&[]),
            Some(commands.as_bytes().to_vec()),
            timeout,
        )
    }

    /// Runs PuTTY `psftp` with `commands` as its batch file.
    pub fn psftp_batch(&self, commands: &str) -> Run {
        self.psftp_batch_timeout(commands, CLIENT_TIMEOUT)
    }

    pub fn psftp_batch_timeout(&self, commands: &str, timeout: Duration) -> Run {
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let batch = self.home.join(format!("psftp-batch-{n}.txt"));
        std::fs::write(&batch, commands).expect("write psftp batch file");
        let mut cmd = Command::new("psftp");
        cmd.current_dir(&self.work)
            .env("HOME", &self.home)
            .args(["-batch", "-noagent", "-bc", "-b"])
            .arg(&batch)
            .args(["-P", &self.port.to_string(), "-i"])
            .arg(self.key.ppk());
        for fp in &self.host_fingerprints {
            cmd.args(["-hostkey", fp]);
        }
        cmd.arg(format!("{}@127.0.0.1", self.user));
        run(cmd, None, timeout)
    }

    /// Runs OpenSSH `ssh` with `extra` options and an optional remote command.
    pub fn ssh(&self, extra: &[&str], remote: Option<&str>, timeout: Duration) -> Run {
        let mut cmd = Command::new("ssh");
        cmd.current_dir(&self.work)
            .env("HOME", &self.home)
            .args(["-p", &self.port.to_string()])
            .args(self.openssh_options())
            .args(extra)
            .arg(format!("{}@127.0.0.1", self.user));
        if let Some(r) = remote {
            cmd.arg(r);
        }
        run(cmd, None, timeout)
    }
}

// ---------------------------------------------------------------------------
// Faults: a small file system, resource limits
// ---------------------------------------------------------------------------

/// A tmpfs of `size_mib` mounted on a folder for the test's lifetime, and
/// unmounted when dropped (declare it before the `Server`, so the server
/// is stopped first). Mounting needs root, as in CI.
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts it on `path` (created if missing). `None`, after saying
    /// "skipped", when mounting is not allowed here; a failure under
    /// `FERRY_REQUIRE_CLIENTS=1`.
    pub fn mount(path: &Path, size_mib: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).expect("create the mount point");
        let mut cmd = Command::new("mount");
        cmd.args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(path);
        let r = run(cmd, None, Duration::from_secs(30));
        if !r.success() {
            if std::env::var("FERRY_REQUIRE_CLIENTS").as_deref() == Ok("1") {
                panic!("cannot mount a tmpfs (this test needs root, as in CI): {r}");
            }
            eprintln!(
                "skipped: cannot mount a tmpfs here (needs root): {}",
                r.stderr.trim()
            );
            return None;
        }
        Some(Tmpfs {
            path: path.to_owned(),
        })
    }

    /// Writes a file of zeros that leaves about `leave_free` bytes free on
    /// the file system (a tmpfs holds written bytes for real).
    pub fn fill(&self, name: &str, leave_free: u64) -> PathBuf {
        let free = free_bytes(&self.path);
        let path = self.path.join(name);
        let mut file = std::fs::File::create(&path).expect("create the filler");
        let chunk = vec![0u8; 1 << 20];
        let mut left = free.saturating_sub(leave_free);
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if file.write_all(&chunk[..n]).is_err() {
                break;
            }
            left -= n as u64;
        }
        let _ = file.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let mut cmd = Command::new("umount");
        cmd.arg(&self.path);
        if !run(cmd, None, Duration::from_secs(30)).success() {
            let mut lazy = Command::new("umount");
            lazy.arg("-l").arg(&self.path);
            let _ = run(lazy, None, Duration::from_secs(30));
        }
    }
}

/// Bytes free for an unprivileged writer on the file system holding `path`.
pub fn free_bytes(path: &Path) -> u64 {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is NUL-terminated and `st` is a valid out pointer.
    assert_eq!(unsafe { libc::statvfs(c_path.as_ptr(), &mut st) }, 0);
    st.f_bavail as u64 * st.f_frsize as u64
}

/// Sets a resource limit (`libc::RLIMIT_*`) in the child before it runs.
pub fn limit_resource(
    cmd: &mut Command,
    resource: libc::__rlimit_resource_t,
    soft: u64,
    hard: u64,
) {
    // SAFETY: setrlimit is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            if libc::setrlimit(resource, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

impl Env {
    /// Replaces `from` with `to` in the configuration file; panics if
    /// `from` is not there.
    pub fn edit_config(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.config).expect("read config");
        assert!(
            text.contains(from),
            "{from:?} is not in the configuration:\n{text}"
        );
        std::fs::write(&self.config, text.replacen(from, to, 1)).expect("write config");
    }

    /// Adds `lines` to the `[sftp]` section.
    pub fn add_sftp_settings(&self, lines: &str) {
        self.edit_config("[sftp]\n", &format!("[sftp]\n{lines}\n"));
    }

    /// Moves the SQLite database out of data_dir (to ROOT/db/ferry.db).
    pub fn database_outside_data_dir(&self) {
        let db = self.root().join("db").join("ferry.db");
        let url = format!("sqlite://{}/ferry.db", self.data_dir.display());
        self.edit_config(
            &format!("{url:?}"),
            &format!("{:?}", format!("sqlite://{}", db.display())),
        );
    }

    /// The rows of `ferry uploads list ACCOUNT --json` named `name`.
    pub fn uploads_named(&self, account: &str, name: &str) -> Vec<serde_json::Value> {
        self.uploads(Some(account))
            .into_iter()
            .filter(|row| row["name"] == name)
            .collect()
    }
}

// ---------------------------------------------------------------------------
// scp (OpenSSH 9.x: SFTP underneath unless -O)
// ---------------------------------------------------------------------------

pub const SCP: (&str, &str) = ("scp", "openssh-client");

impl Login {
    /// Runs OpenSSH `scp` with `extra` options (e.g. `-O`), copying `local`
    /// to `remote_path` on the server.
    pub fn scp_upload(&self, extra: &[&str], local: &Path, remote_path: &str) -> Run {
        let mut cmd = Command::new("scp");
        cmd.current_dir(&self.work)
            .env("HOME", &self.home)
            .args(["-P", &self.port.to_string()])
            .args(self.openssh_options())
            .args(extra)
            .arg(local)
            .arg(format!("{}@127.0.0.1:{remote_path}", self.user));
        run(cmd, None, CLIENT_TIMEOUT)
    }
}

// ---------------------------------------------------------------------------
// Plain HTTP/1.1 to the admin web
// ---------------------------------------------------------------------------

/// One HTTP/1.1 request (Connection: close); returns (status, headers, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String, String) {
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the web port");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, head.to_owned(), body)
}

pub fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let Some((size, rest)) = body.split_once("\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

// ---------------------------------------------------------------------------
// Reading the installation's database directly
// ---------------------------------------------------------------------------

impl Env {
    /// `[database] url` of this installation's configuration.
    pub fn database_url(&self) -> String {
        let text = std::fs::read_to_string(&self.config).expect("read config");
        let section = text
            .split("[database]")
            .nth(1)
            .expect("a [database] section in the test config");
        section
            .lines()
            .find_map(|l| l.trim().strip_prefix("url = "))
            .map(|v| v.trim().trim_matches('"').to_owned())
            .expect("a url in [database]")
    }

    /// Runs `query` against this installation's database (the tests' only
    /// way to read what no command prints, such as the audit log).
    pub fn with_store<T, F>(&self, query: impl FnOnce(ferry_store::Store) -> F) -> T
    where
        F: std::future::Future<Output = T>,
    {
        let url = self.database_url();
        raw::block_on(Duration::from_secs(60), async move {
            let store = ferry_store::Store::connect(&url)
                .await
                .expect("open the installation's database");
            let out = query(store.clone()).await;
            store.close().await;
            out
        })
    }

    /// The audit log of `account`, newest first.
    pub fn audit(&self, account: &str) -> Vec<ferry_store::AuditEvent> {
        let account = account.to_owned();
        self.with_store(|store| async move {
            store
                .audit_events(Some(&account), 1000)
                .await
                .expect("read the audit log")
        })
    }
}

impl Env {
    /// Points this installation at another database (`[database] url`).
    pub fn use_database(&self, url: &str) {
        let text = std::fs::read_to_string(&self.config).expect("read config");
        let current = format!("url = {:?}", self.database_url());
        assert!(text.contains(&current), "no `{current}` line in the config");
        let text = text.replace(&current, &format!("url = {url:?}"));
        std::fs::write(&self.config, text).expect("write config");
    }
}

// ---------------------------------------------------------------------------
// Connections from other loopback addresses (pre-login defences)
// ---------------------------------------------------------------------------

/// 127.0.0.`n`: on Linux every 127.0.0.x address is the local machine, so a
/// test can play several sources without any network setup.
pub fn loopback(n: u8) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(127, 0, 0, n)
}

/// A TCP connection to 127.0.0.1:`port` whose local end is bound to `from`.
pub fn tcp_from(from: std::net::Ipv4Addr, port: u16) -> std::io::Result<std::net::TcpStream> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.bind(&SockAddr::from(std::net::SocketAddr::from((from, 0))))?;
    socket.connect_timeout(
        &SockAddr::from(std::net::SocketAddr::from(([127, 0, 0, 1], port))),
        Duration::from_secs(10),
    )?;
    Ok(socket.into())
}

/// What the server sends first on `stream`, within `timeout`: `None` when
/// it closed the connection without sending a byte (a refusal right after
/// accept). Panics when the server neither speaks nor closes in time.
pub fn first_bytes(stream: &mut std::net::TcpStream, timeout: Duration) -> Option<String> {
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 256];
    match stream.read(&mut buf) {
        Ok(0) => None,
        Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
        Err(e) => panic!("the server neither answered nor closed within {timeout:?}: {e}"),
    }
}

/// Connects from `from` and reads the first bytes: `Some(banner)` when the
/// server speaks SSH, `None` when it closed the connection at once.
pub fn ssh_banner_from(from: std::net::Ipv4Addr, port: u16) -> Option<String> {
    let mut stream = tcp_from(from, port).expect("TCP connect");
    first_bytes(&mut stream, Duration::from_secs(20))
}

/// Size in bytes of a file, 0 when it does not exist.
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// One HTTP/1.1 exchange on a new connection from `from`: `request` is sent
/// as is (it should carry `Connection: close`); returns the status and the
/// whole answer (headers and body).
pub fn http_from(from: std::net::Ipv4Addr, port: u16, request: &str) -> (u16, String) {
    let mut stream = tcp_from(from, port).expect("connect to the web");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {answer:?}"));
    (status, answer)
}

/// The value of the Prometheus counter or gauge `name` (without labels) in
/// the web's `/metrics`, 0 when absent.
pub fn metric_value(web_port: u16, name: &str) -> f64 {
    let (status, text) = http_from(
        loopback(1),
        web_port,
        "GET /metrics HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            (key == name).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}
