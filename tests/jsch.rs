//! JSch 0.1.x, the SSH library inside districts' Java SIS extract tools,
//! against a real `ferry serve`. JSch 0.1.x has no Ed25519 and Ferry offers
//! no `ssh-rsa` (SHA-1) host-key signature, so it must verify Ferry's ECDSA
//! P-256 host key; it signs its login with `ssh-rsa` (SHA-1), which Ferry
//! accepts only for accounts with legacy clients on. The client lives in
//! tests/jsch/FerryJschClient.java and is compiled at test time.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const ACCOUNT: &str = "district_jsch";

/// Debian's JSch (libjsch-java, 0.1.54/0.1.55).
const JSCH_JAR: &str = "/usr/share/java/jsch.jar";
const JAVA: (&str, &str) = ("java", "default-jdk-headless");
const JAVAC: (&str, &str) = ("javac", "default-jdk-headless");

/// javac on a busy machine.
const JAVAC_TIMEOUT: Duration = Duration::from_secs(180);
/// One JSch run: JVM start, login, the SFTP commands. The client's own
/// connect/read timeouts are 20 s.
const JSCH_TIMEOUT: Duration = Duration::from_secs(120);

/// Checks the JDK and the JSch jar, like `common::require` does for binaries.
fn require_java_and_jsch() -> bool {
    if !require(&[SSH_KEYGEN, JAVA, JAVAC]) {
        return false;
    }
    if !Path::new(JSCH_JAR).is_file() {
        if std::env::var("FERRY_REQUIRE_CLIENTS").as_deref() == Ok("1") {
            panic!(
                "{JSCH_JAR} is missing: install the libjsch-java package (and default-jdk-headless) \
                 (FERRY_REQUIRE_CLIENTS=1 makes missing clients fail)"
            );
        }
        eprintln!(
            "skipped: {JSCH_JAR} missing (install the libjsch-java package to run this test)"
        );
        return false;
    }
    true
}

/// Compiles tests/jsch/FerryJschClient.java into `out`.
fn compile_client(out: &Path) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/jsch/FerryJschClient.java");
    std::fs::create_dir_all(out).expect("create javac output dir");
    let mut cmd = Command::new("javac");
    cmd.args(["-nowarn", "-encoding", "UTF-8", "-cp", JSCH_JAR, "-d"])
        .arg(out)
        .arg(&source);
    run(cmd, None, JAVAC_TIMEOUT).assert_success();
    assert!(
        out.join("FerryJschClient.class").is_file(),
        "javac wrote no FerryJschClient.class"
    );
}

/// An RSA-3072 key in the PEM (PKCS#1) format JSch 0.1.x reads.
fn new_rsa_pem_key(env: &Env, label: &str) -> ClientKey {
    let key = env.new_key_of_type(label, &["-t", "rsa", "-b", "3072", "-m", "PEM"]);
    let pem = std::fs::read_to_string(&key.private).expect("read private key");
    assert!(
        pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "ssh-keygen -m PEM did not write a PKCS#1 PEM key"
    );
    key
}

/// A known_hosts file holding only `key` ("type base64") for the server.
fn known_hosts_with(env: &Env, port: u16, file: &str, key: &str) -> PathBuf {
    let path = env.root().join(file);
    std::fs::write(&path, format!("[127.0.0.1]:{port} {key}\n")).expect("write known_hosts");
    path
}

/// Runs the compiled client with `commands` on stdin.
fn jsch(
    classes: &Path,
    port: u16,
    key: &ClientKey,
    known_hosts: &Path,
    work: &Path,
    commands: &str,
) -> Run {
    let mut cmd = Command::new("java");
    cmd.current_dir(work)
        .args(["-Xmx256m", "-XX:+UseSerialGC", "-cp"])
        .arg(format!("{}:{JSCH_JAR}", classes.display()))
        .args(["FerryJschClient", "127.0.0.1", &port.to_string(), ACCOUNT])
        .arg(&key.private)
        .arg(known_hosts);
    let r = run(cmd, Some(commands.as_bytes().to_vec()), JSCH_TIMEOUT);
    eprintln!("----- JSch run -----\n{r}\n--------------------");
    r
}

/// The output lines following `> cmd`, up to the next command.
fn command_output<'a>(r: &'a Run, cmd: &str) -> Vec<&'a str> {
    let marker = format!("> {cmd}");
    let mut lines = r.stdout.lines().skip_while(|l| *l != marker);
    assert!(lines.next().is_some(), "JSch never ran `{cmd}`:\n{r}");
    lines.take_while(|l| !l.starts_with("> ")).collect()
}

fn field<'a>(attempt: &'a serde_json::Value, name: &str) -> &'a str {
    attempt.get(name).and_then(|v| v.as_str()).unwrap_or("")
}

#[test]
fn jsch_logs_in_with_ssh_rsa_only_when_the_account_allows_legacy_clients() {
    if !require_java_and_jsch() {
        return;
    }
    let env = Env::new();
    env.create_account(ACCOUNT);
    let key = new_rsa_pem_key(&env, "jsch_rsa3072");
    env.install_key(ACCOUNT, &key);
    let server = env.start();

    let classes = env.root().join("jsch-classes");
    compile_client(&classes);

    // known_hosts with Ferry's ECDSA P-256 key only: the one JSch 0.1.x can verify.
    let host_keys = env.host_keys();
    let ecdsa = host_keys
        .iter()
        .find(|(_, k)| k.starts_with("ecdsa-sha2-nistp256 "))
        .unwrap_or_else(|| {
            panic!("`ferry host-key show` lists no ecdsa-sha2-nistp256 key: {host_keys:?}")
        });
    eprintln!("ferry host keys: {host_keys:?}");
    let known_hosts = known_hosts_with(&env, server.port, "known_hosts", &ecdsa.1);

    // The host key is really checked: a different ECDSA key in known_hosts
    // makes JSch refuse the server before it logs in.
    let impostor = {
        let path = env.root().join("keys").join("impostor_ecdsa");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut cmd = Command::new("ssh-keygen");
        cmd.args(["-q", "-t", "ecdsa", "-b", "256", "-N", "", "-f"])
            .arg(&path);
        run(cmd, None, Duration::from_secs(30)).assert_success();
        let public = std::fs::read_to_string(format!("{}.pub", path.display())).unwrap();
        let mut words = public.split_whitespace();
        format!("{} {}", words.next().unwrap(), words.next().unwrap())
    };
    let wrong_hosts = known_hosts_with(&env, server.port, "known_hosts_wrong", &impostor);
    let r = jsch(&classes, server.port, &key, &wrong_hosts, &env.work, "");
    assert!(!r.timed_out, "{r}");
    assert_eq!(
        r.code(),
        Some(2),
        "JSch must refuse a changed host key: {r}"
    );
    assert!(
        r.stdout.contains("CONNECT_FAILED") && r.stdout.contains("HostKey has been changed"),
        "JSch must refuse the server because its host key differs from known_hosts: {r}"
    );

    // (a) Legacy clients off (the default): the ssh-rsa (SHA-1) login is refused.
    let r = jsch(&classes, server.port, &key, &known_hosts, &env.work, "");
    assert!(!r.timed_out, "{r}");
    assert_eq!(r.code(), Some(2), "the login must fail: {r}");
    assert!(
        r.stdout.contains("CONNECT_FAILED") && r.stdout.contains("Auth fail"),
        "JSch must fail with `Auth fail` (the host key was accepted, the login was not): {r}"
    );
    assert!(
        r.stderr.contains("is known and matches the ECDSA host key"),
        "JSch must have verified Ferry's ECDSA host key against known_hosts: {r}"
    );
    let refused = env
        .wait_attempt(ACCOUNT, Duration::from_secs(10), |a| {
            field(a, "result") == "refused" && field(a, "fingerprint") == key.fingerprint
        })
        .unwrap_or_else(|all| panic!("no refused attempt recorded for the JSch key: {all:#?}"));
    eprintln!("refused attempt: {refused:#}");
    let reason = field(&refused, "reason");
    assert!(
        reason.contains("ssh-rsa") && reason.contains("SHA-1"),
        "the attempt must say the ssh-rsa (SHA-1) signature was refused: {refused:#}"
    );
    assert!(
        field(&refused, "client_banner").contains("JSCH"),
        "the attempt must record JSch's banner: {refused:#}"
    );
    assert!(
        dir_names(&env.inbound(ACCOUNT)).is_empty(),
        "a refused login changed /inbound"
    );

    // (b) Legacy clients on: the same client logs in and works in /inbound.
    env.ferry_ok(&["account", "set", ACCOUNT, "--legacy-clients", "on"]);
    let up = env.work.join("extract.csv");
    write_random(&up, 1024 * 1024 + 7);
    let up_sha = sha256_file(&up);
    std::fs::write(env.work.join("denied.csv"), "id\n1\n").unwrap();
    let outbound_before = snapshot(&env.account_root(ACCOUNT).join("outbound"), &[]);
    let r = jsch(
        &classes,
        server.port,
        &key,
        &known_hosts,
        &env.work,
        "put extract.csv /inbound/extract.csv\n\
         ls /inbound\n\
         get /inbound/extract.csv download.csv\n\
         rename /inbound/extract.csv /inbound/extract-renamed.csv\n\
         ls /inbound\n\
         rm /inbound/extract-renamed.csv\n\
         ls /inbound\n\
         put denied.csv /outbound/denied.csv\n",
    );
    r.assert_success();
    assert!(
        r.stderr.contains("is known and matches the ECDSA host key"),
        "JSch must have verified Ferry's ECDSA host key: {r}"
    );
    let negotiated = r
        .stdout
        .lines()
        .find(|l| l.starts_with("NEGOTIATED "))
        .unwrap_or_else(|| panic!("JSch printed no NEGOTIATED line: {r}"));
    eprintln!("JSch {negotiated}");
    assert!(
        negotiated.contains("host_key=ecdsa-sha2-nistp256")
            && negotiated.contains("host_key_type=ecdsa-sha2-nistp256"),
        "JSch must have used the ECDSA P-256 host key: {negotiated}"
    );
    assert!(
        !negotiated.contains("sha1"),
        "nothing SHA-1 may be negotiated apart from the user signature: {negotiated}"
    );

    assert!(
        command_output(&r, "put extract.csv /inbound/extract.csv").contains(&"OK put"),
        "upload failed: {r}"
    );
    assert!(
        command_output(&r, "get /inbound/extract.csv download.csv").contains(&"OK get"),
        "download failed: {r}"
    );
    assert_eq!(
        sha256_file(&env.work.join("download.csv")),
        up_sha,
        "the downloaded file differs from the uploaded one"
    );
    assert!(
        command_output(
            &r,
            "rename /inbound/extract.csv /inbound/extract-renamed.csv"
        )
        .contains(&"OK rename"),
        "rename failed: {r}"
    );
    // `ls /inbound` ran three times; check the later listings in order.
    let listings: Vec<Vec<String>> = {
        let mut all = Vec::new();
        let mut current: Option<Vec<String>> = None;
        for line in r.stdout.lines() {
            if let Some(cmd) = line.strip_prefix("> ") {
                if let Some(done) = current.take() {
                    all.push(done);
                }
                if cmd == "ls /inbound" {
                    current = Some(Vec::new());
                }
            } else if let (Some(cur), Some(entry)) = (current.as_mut(), line.strip_prefix("ENTRY "))
            {
                let name = entry.split_whitespace().next().unwrap_or("");
                if name != "." && name != ".." {
                    cur.push(name.to_string());
                }
            }
        }
        all.extend(current);
        all
    };
    assert_eq!(
        listings,
        [
            vec!["extract.csv".to_string()],
            vec!["extract-renamed.csv".to_string()],
            vec![]
        ],
        "`ls /inbound` after put, rename and rm: {r}"
    );
    assert!(
        command_output(&r, "rm /inbound/extract-renamed.csv").contains(&"OK rm"),
        "rm failed: {r}"
    );
    assert!(
        dir_names(&env.inbound(ACCOUNT)).is_empty(),
        "/inbound must be empty after rm: {:?}",
        dir_names(&env.inbound(ACCOUNT))
    );

    // Writing to /outbound is refused with SSH_FX_PERMISSION_DENIED (3).
    let denied = command_output(&r, "put denied.csv /outbound/denied.csv");
    assert!(
        denied.iter().any(|l| l.starts_with("SFTP_ERROR put id=3 ")),
        "a put to /outbound must fail with a permission error (SSH_FX_PERMISSION_DENIED): {denied:?}\n{r}"
    );
    let outbound_diff = snapshot_diff(
        &outbound_before,
        &snapshot(&env.account_root(ACCOUNT).join("outbound"), &[]),
    );
    assert!(
        outbound_diff.is_empty(),
        "the refused put changed /outbound: {outbound_diff:#?}"
    );
    assert!(
        dir_names(&env.uploading(ACCOUNT)).is_empty(),
        "uploads left temporary files in {}",
        env.uploading(ACCOUNT).display()
    );

    let accepted = env
        .wait_attempt(ACCOUNT, Duration::from_secs(10), |a| {
            field(a, "result") == "accepted" && field(a, "fingerprint") == key.fingerprint
        })
        .unwrap_or_else(|all| panic!("no accepted attempt recorded for the JSch key: {all:#?}"));
    eprintln!("accepted attempt: {accepted:#}");
    let warnings: Vec<String> = server
        .log_lines()
        .into_iter()
        .filter(|l| is_warn_or_error(l))
        .collect();
    eprintln!("server WARN/ERROR lines: {warnings:#?}");
}
