//! The ingest burst benchmark (issue 11): N districts each upload one roster
//! file over SFTP at the same moment; how long after the last upload is
//! every file handed over, and how much memory did the server need?
//!
//! A benchmark, not a test: it prints numbers and passes or fails only on
//! correctness (every upload accepted, every file handed over exactly once).
//! Run it through `scripts/bench-ingest-burst`, which builds in release
//! mode, raises the descriptor limit and makes a throwaway PostgreSQL
//! database when asked; `--help` lists the options.
//!
//! What it does:
//! 1. creates N accounts (`bench-00001`…) with one shared Ed25519 key,
//!    straight through the store (no process per account);
//! 2. starts one `ferry serve` (SQLite or PostgreSQL) or two (PostgreSQL,
//!    sharing `data_dir`), each with its own SFTP port, settle 1 s, the
//!    quiet period given, and a hand-off command that appends the batch's
//!    id and the node's name to a log;
//! 3. logs N russh clients in (spread over both nodes and over source
//!    addresses 127.0.x.y), each with its SFTP session open;
//! 4. at one moment, every client writes its roster file
//!    (`/inbound/students_<date>.csv`) and closes it;
//! 5. measures from the last upload's close until the hand-off log holds N
//!    batches, then checks the queue (N uploads, all archived) and reads
//!    each server's peak memory (`VmHWM` in /proc/PID/status).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use ferry_store::{Actor, NewKey, Store, UploadState};
use russh::client;
use russh::keys::PrivateKeyWithHashAlg;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Semaphore, watch};

#[derive(Parser, Debug)]
#[command(
    about = "Ferry's ingest burst benchmark: N districts upload one file each at the same moment"
)]
struct Args {
    /// Districts (accounts), each uploading one file.
    #[arg(long, default_value_t = 50)]
    districts: usize,
    /// Data rows per roster file.
    #[arg(long, default_value_t = 200)]
    rows: usize,
    /// Database URL: sqlite (default: a file in the work folder) or postgres://…
    #[arg(long)]
    database_url: Option<String>,
    /// `ferry serve` processes sharing data_dir and the database (2 needs PostgreSQL).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// The ferry binary.
    #[arg(long, default_value = "target/release/ferry")]
    ferry: PathBuf,
    /// ingest.workers of each node.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// ingest.quiet_period of each node.
    #[arg(long, default_value = "1s")]
    quiet_period: String,
    /// Logins in progress at once while the clients connect.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Extra configuration, `section.key=TOML value` (e.g. `sftp.idle_timeout="30m"`); repeatable.
    #[arg(long = "set")]
    settings: Vec<String>,
    /// Give up after this many seconds of waiting for the hand-offs.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// Work folder (default: a new one under $TMPDIR, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print the result as one JSON object too.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.nodes > 1 && !is_postgres(args.database_url.as_deref()) {
        bail!(
            "--nodes {} needs --database-url postgres://…: nodes share the database",
            args.nodes
        );
    }
    warn_about_descriptors(args.districts);
    // A folder of its own unless --dir names one (then nothing else is made).
    let temp = match args.dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("ferry-burst-").tempdir()?),
    };
    let work = match (&args.dir, &temp) {
        (Some(dir), _) => dir.clone(),
        (None, Some(temp)) => temp.path().to_owned(),
        (None, None) => unreachable!("a temporary folder without --dir"),
    };
    std::fs::create_dir_all(&work)?;
    let data_dir = work.join("data");
    let database_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/ferry.db", data_dir.display()));

    let key = client_key(&work)?;
    let started = Instant::now();
    let store = Store::connect(&database_url).await?;
    store.migrate().await?;
    create_accounts(&store, &data_dir, args.districts, &key.public_line).await?;
    eprintln!(
        "bench: {} accounts created in {:.1} s",
        args.districts,
        started.elapsed().as_secs_f64()
    );

    let handed_log = work.join("handed.log");
    let mut nodes = Vec::new();
    for n in 1..=args.nodes {
        nodes.push(Node::start(
            &args,
            &work,
            &data_dir,
            &database_url,
            &handed_log,
            n,
        )?);
    }
    for node in &mut nodes {
        node.wait_listening(Duration::from_secs(60))?;
    }
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    eprintln!("bench: nodes listening on {ports:?}");

    let outcome = burst(&args, &ports, &key, &handed_log).await;
    let result = match outcome {
        Ok(timing) => report(&args, &store, &nodes, &handed_log, &timing).await,
        Err(e) => Err(e),
    };
    for node in &mut nodes {
        node.stop();
    }
    store.close().await;
    if result.is_err() || args.dir.is_some() {
        let kept = temp.map_or(work, tempfile::TempDir::keep);
        eprintln!(
            "bench: work folder kept: {} (node logs: node-N.log)",
            kept.display()
        );
    }
    result
}

fn is_postgres(url: Option<&str>) -> bool {
    url.is_some_and(|u| u.starts_with("postgres"))
}

/// The descriptor limit needed: a socket per client in this process, a
/// socket and a file or two per session in the server.
fn warn_about_descriptors(districts: usize) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft: Option<usize> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok());
    if let Some(soft) = soft
        && soft < districts * 2 + 256
    {
        eprintln!(
            "bench: warning: the descriptor limit is {soft}, {districts} districts want about {}; run through scripts/bench-ingest-burst or `ulimit -n 65536` first",
            districts * 2 + 256
        );
    }
}

struct ClientKey {
    private: Arc<russh::keys::PrivateKey>,
    public_line: String,
}

/// A new Ed25519 key pair, made by ssh-keygen (the format districts use).
fn client_key(work: &Path) -> anyhow::Result<ClientKey> {
    let path = work.join("client_ed25519");
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(path.with_extension("pub"));
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "bench", "-f"])
        .arg(&path)
        .status()
        .context("ssh-keygen (OpenSSH) is needed to make the client key")?;
    if !made.success() {
        bail!("ssh-keygen failed: {made}");
    }
    Ok(ClientKey {
        private: Arc::new(russh::keys::load_secret_key(&path, None)?),
        public_line: std::fs::read_to_string(path.with_extension("pub"))?,
    })
}

fn account_name(i: usize) -> String {
    format!("bench-{:05}", i + 1)
}

/// N accounts with their folders and the key, active at once: through the
/// store, a few at a time (SQLite takes one writer anyway).
async fn create_accounts(
    store: &Store,
    data_dir: &Path,
    districts: usize,
    public_line: &str,
) -> anyhow::Result<()> {
    let policy = ferry_keys::KeyPolicy { min_rsa_bits: 2048 };
    let findings = ferry_keys::parse_keys(public_line.as_bytes(), &policy)?;
    let key: Vec<NewKey> = findings.iter().filter_map(NewKey::from_finding).collect();
    anyhow::ensure!(key.len() == 1, "the client key was not accepted");
    let parallel = Arc::new(Semaphore::new(8));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..districts {
        let (store, data_dir, key) = (store.clone(), data_dir.to_owned(), key.clone());
        let permit = parallel.clone().acquire_owned().await?;
        tasks.spawn(async move {
            let _permit = permit;
            let name = account_name(i);
            let actor = Actor::new("bench");
            store.create_account(&name, None, false, &actor).await?;
            ferry_sftp::jail::Jail::create_layout(&data_dir, &name)?;
            store.add_keys(&name, &key, 0, &actor).await?;
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// One `ferry serve`.
struct Node {
    name: String,
    child: Child,
    log: PathBuf,
    port: u16,
}

impl Node {
    fn start(
        args: &Args,
        work: &Path,
        data_dir: &Path,
        database_url: &str,
        handed_log: &Path,
        n: usize,
    ) -> anyhow::Result<Node> {
        let name = format!("bench-node-{n}");
        let config = work.join(format!("node-{n}.toml"));
        std::fs::write(
            &config,
            node_config(args, data_dir, database_url, handed_log, &name)?,
        )?;
        let log = work.join(format!("node-{n}.log"));
        let child = Command::new(&args.ferry)
            .args(["serve", "--config"])
            .arg(&config)
            .env("FERRY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(work.join(format!("node-{n}.out")))?)
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {}: build it with cargo build --release",
                    args.ferry.display()
                )
            })?;
        Ok(Node {
            name,
            child,
            log,
            port: 0,
        })
    }

    fn wait_listening(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let port = log.lines().find_map(|l| {
                l.split("sftp listening on ")
                    .nth(1)
                    .and_then(|rest| rest.trim().rsplit(':').next())
                    .and_then(|port| {
                        port.trim_matches(|c: char| !c.is_ascii_digit())
                            .parse()
                            .ok()
                    })
            });
            if let Some(port) = port
                && log.contains("ingest running")
            {
                self.port = port;
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!("{} exited ({status}) before listening:\n{log}", self.name);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not start listening within {timeout:?}:\n{log}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Peak resident memory, KiB.
    fn vm_hwm_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A node's configuration: the benchmark's limits and timings, then `--set`.
fn node_config(
    args: &Args,
    data_dir: &Path,
    database_url: &str,
    handed_log: &Path,
    name: &str,
) -> anyhow::Result<String> {
    let connections = args.districts + 64;
    let command = format!(
        "echo \"$FERRY_BATCH_ID {name}\" >> '{}'",
        handed_log.display()
    );
    let mut sections: Vec<(String, Vec<String>)> = vec![
        (
            "sftp".into(),
            vec![
                "listen = \"127.0.0.1:0\"".into(),
                format!("max_unauthenticated = {connections}"),
                format!("max_unauthenticated_per_address = {connections}"),
                "login_grace = \"300s\"".into(),
            ],
        ),
        ("web".into(), vec!["enabled = false".into()]),
        ("database".into(), vec![format!("url = {database_url:?}")]),
        ("keys".into(), vec!["propagation_delay = \"0s\"".into()]),
        (
            "ingest".into(),
            vec![
                "settle = \"1s\"".into(),
                format!("quiet_period = {:?}", args.quiet_period),
                "poll_interval = \"200ms\"".into(),
                "scan_interval = \"10m\"".into(),
                format!("node_id = {name:?}"),
                format!("workers = {}", args.workers),
                format!("command = [\"/bin/sh\", \"-c\", {command:?}]"),
            ],
        ),
    ];
    for setting in &args.settings {
        let (key, value) = setting
            .split_once('=')
            .with_context(|| format!("--set {setting}: write section.key=value"))?;
        let (section, key) = key
            .trim()
            .split_once('.')
            .with_context(|| format!("--set {setting}: write section.key=value"))?;
        let line = format!("{key} = {}", value.trim());
        match sections.iter_mut().find(|(s, _)| s == section) {
            Some((_, lines)) => {
                lines.retain(|l| !l.starts_with(&format!("{key} ")));
                lines.push(line);
            }
            None => sections.push((section.to_owned(), vec![line])),
        }
    }
    let mut text = format!("data_dir = {:?}\n", data_dir.display().to_string());
    for (section, lines) in sections {
        text.push_str(&format!("\n[{section}]\n{}\n", lines.join("\n")));
    }
    Ok(text)
}

/// Accepts the benchmark's own servers' host keys.
struct AnyHostKey;

impl client::Handler for AnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// A logged-in district with its SFTP session open.
struct District {
    name: String,
    handle: client::Handle<AnyHostKey>,
    sftp: russh_sftp::client::SftpSession,
}

/// When the uploads ran.
struct Timing {
    /// From the start signal to the last close.
    upload_span: Duration,
    /// From the last close to the last hand-off seen.
    last_upload_to_all_handed: Duration,
    connect: Duration,
}

/// Logs every district in, then uploads all files at once and waits for
/// the hand-offs.
async fn burst(
    args: &Args,
    ports: &[u16],
    key: &ClientKey,
    handed_log: &Path,
) -> anyhow::Result<Timing> {
    let connecting = Instant::now();
    let logins = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.districts {
        let (logins, key) = (logins.clone(), key.private.clone());
        let port = ports[i % ports.len()];
        tasks.spawn(async move {
            let _permit = logins.acquire_owned().await?;
            log_in(i, port, key).await
        });
    }
    let mut districts = Vec::with_capacity(args.districts);
    while let Some(done) = tasks.join_next().await {
        districts.push(done??);
    }
    let connect = connecting.elapsed();
    eprintln!(
        "bench: {} districts logged in, SFTP open, in {:.1} s",
        districts.len(),
        connect.as_secs_f64()
    );

    let content = roster(args.rows);
    let (go, ready) = watch::channel(false);
    let mut uploads = tokio::task::JoinSet::new();
    for district in districts {
        let (mut ready, content) = (ready.clone(), content.clone());
        uploads.spawn(async move {
            ready.wait_for(|go| *go).await?;
            let mut file = district
                .sftp
                .create("/inbound/students_20261123.csv")
                .await?;
            file.write_all(content.as_bytes()).await?;
            file.shutdown().await?;
            let closed = Instant::now();
            let _ = district.sftp.close().await;
            let _ = district
                .handle
                .disconnect(russh::Disconnect::ByApplication, "", "en")
                .await;
            anyhow::Ok((district.name, closed))
        });
    }
    let start = Instant::now();
    go.send(true)?;
    let mut last_close = start;
    let mut failed = Vec::new();
    while let Some(done) = uploads.join_next().await {
        match done? {
            Ok((_, closed)) => last_close = last_close.max(closed),
            Err(e) => failed.push(e.to_string()),
        }
    }
    if !failed.is_empty() {
        bail!("{} uploads failed, first: {}", failed.len(), failed[0]);
    }
    let upload_span = last_close - start;
    eprintln!(
        "bench: {} files uploaded in {:.2} s; waiting for the hand-offs",
        args.districts,
        upload_span.as_secs_f64()
    );
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    loop {
        let handed = count_lines(handed_log);
        if handed >= args.districts {
            return Ok(Timing {
                upload_span,
                last_upload_to_all_handed: last_close.elapsed(),
                connect,
            });
        }
        if Instant::now() > deadline {
            bail!(
                "only {handed} of {} batches handed over after {} s",
                args.districts,
                args.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Logs district `i` in through `port` from source address 127.0.x.y.
async fn log_in(
    i: usize,
    port: u16,
    key: Arc<russh::keys::PrivateKey>,
) -> anyhow::Result<District> {
    let name = account_name(i);
    let source = std::net::Ipv4Addr::new(127, 0, (1 + i / 250 % 250) as u8, (2 + i % 250) as u8);
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind((source, 0).into())?;
    let stream = tokio::time::timeout(
        Duration::from_secs(60),
        socket.connect(([127, 0, 0, 1], port).into()),
    )
    .await??;
    let config = Arc::new(client::Config {
        inactivity_timeout: None,
        ..Default::default()
    });
    let mut handle = tokio::time::timeout(
        Duration::from_secs(120),
        client::connect_stream(config, stream, AnyHostKey),
    )
    .await
    .with_context(|| format!("{name}: key exchange within 120 s"))??;
    let auth = handle
        .authenticate_publickey(&name, PrivateKeyWithHashAlg::new(key, None))
        .await?;
    anyhow::ensure!(auth.success(), "{name}: login refused: {auth:?}");
    let channel = handle.channel_open_session().await?;
    channel.request_subsystem(true, "sftp").await?;
    let sftp = russh_sftp::client::SftpSession::new(channel.into_stream()).await?;
    Ok(District { name, handle, sftp })
}

/// A roster of `rows` students.
fn roster(rows: usize) -> String {
    let mut text = String::from("student_id,last_name,first_name,grade,school_id\n");
    for i in 0..rows {
        text.push_str(&format!("{i},Last{i},First{i},{},{}\n", i % 12 + 1, i % 7));
    }
    text
}

fn count_lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|bytes| bytes.iter().filter(|&&b| b == b'\n').count())
        .unwrap_or(0)
}

/// Checks the queue and prints the numbers.
async fn report(
    args: &Args,
    store: &Store,
    nodes: &[Node],
    handed_log: &Path,
    timing: &Timing,
) -> anyhow::Result<()> {
    let limit = u32::try_from(args.districts * 2 + 10).unwrap_or(u32::MAX);
    // The command's log line comes a moment before the queue records the
    // hand-off and the archive: wait for the queue (not timed).
    let deadline = Instant::now() + Duration::from_secs(60);
    let (uploads, archived) = loop {
        let uploads = store.uploads(None, limit).await?;
        let archived = uploads
            .iter()
            .filter(|u| u.state == UploadState::Archived)
            .count();
        if archived >= args.districts || Instant::now() > deadline {
            break (uploads, archived);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = std::fs::read_to_string(handed_log)?;
    let mut batches: Vec<&str> = log.lines().filter_map(|l| l.split(' ').next()).collect();
    batches.sort_unstable();
    batches.dedup();
    anyhow::ensure!(
        uploads.len() == args.districts
            && batches.len() == args.districts
            && archived == args.districts,
        "expected {n} uploads handed over once each; found {} uploads, {} distinct batches in the log, {archived} archived",
        uploads.len(),
        batches.len(),
        n = args.districts
    );
    let per_node: Vec<String> = nodes
        .iter()
        .map(|node| {
            let handed = log.lines().filter(|l| l.ends_with(&node.name)).count();
            let hwm = node
                .vm_hwm_kib()
                .map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0));
            format!("{}: {handed} batches, VmHWM {hwm} MiB", node.name)
        })
        .collect();
    let database = if is_postgres(args.database_url.as_deref()) {
        "postgres"
    } else {
        "sqlite"
    };
    println!(
        "districts={} database={database} nodes={} workers={} quiet_period={} rows={} | logins {:.1} s | uploads {:.2} s | last upload -> all handed over {:.2} s | {}",
        args.districts,
        args.nodes,
        args.workers,
        args.quiet_period,
        args.rows,
        timing.connect.as_secs_f64(),
        timing.upload_span.as_secs_f64(),
        timing.last_upload_to_all_handed.as_secs_f64(),
        per_node.join("; ")
    );
    if args.json {
        let nodes: Vec<serde_json::Value> = nodes
            .iter()
            .map(|n| {
                serde_json::json!({"node": n.name, "vm_hwm_kib": n.vm_hwm_kib(),
                "batches": log.lines().filter(|l| l.ends_with(&n.name)).count()})
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "districts": args.districts, "database": database, "nodes": nodes,
                "workers": args.workers, "quiet_period": args.quiet_period, "rows": args.rows,
                "login_s": timing.connect.as_secs_f64(),
                "upload_s": timing.upload_span.as_secs_f64(),
                "last_upload_to_all_handed_over_s": timing.last_upload_to_all_handed.as_secs_f64(),
            })
        );
    }
    Ok(())
}
