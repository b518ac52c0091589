//! Per-account limits against a real `ferry serve`, each proven by one
//! district hitting it while another is unharmed: open handles (set per
//! account with `ferry account set`), the process's descriptor budget under
//! a low RLIMIT_NOFILE, the largest file (WRITE and SETSTAT), the quota,
//! and a sparse file reopened.

mod common;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use common::raw::*;
use common::*;

const HOG: &str = "district_hog";
const OTHER: &str = "district_other";
const SSH_FXP_SETSTAT: u8 = 9;
const SSH_FILEXFER_ATTR_SIZE: u32 = 0x1;

/// Two accounts with a key each.
fn two_accounts(env: &Env) -> (ClientKey, ClientKey) {
    let keys = [HOG, OTHER].map(|name| {
        env.create_account(name);
        let key = env.new_key(name);
        env.install_key(name, &key);
        key
    });
    let [hog, other] = keys;
    (hog, other)
}

/// Opens handles (OPENDIR /) on one session until one is refused; returns
/// how many were opened and the refusal's message. The handles stay open
/// while `while_held` runs.
async fn hold_handles(
    port: u16,
    key: &std::path::Path,
    while_held: impl FnOnce(),
) -> (usize, String) {
    let handle = raw::login(port, HOG, key).await;
    let mut sftp = RawSftp::start(&handle).await;
    sftp.init().await;
    let mut held = Vec::new();
    let refusal = loop {
        let reply = sftp.opendir(b"/").await;
        match reply.handle() {
            Some(h) => held.push(h),
            None => break reply.status().expect("a STATUS").2,
        }
        assert!(held.len() <= 2000, "no limit reached");
    };
    while_held();
    (held.len(), refusal)
}

/// The other district logs in with OpenSSH sftp, lists and uploads.
fn other_district_works(env: &Env, server: &Server, key: &ClientKey) {
    let login = env.login(server, OTHER, key);
    std::fs::write(env.work.join("roster.csv"), "id,name\n1,Ada\n").unwrap();
    let run = login.sftp_batch("ls /\nput roster.csv inbound/roster.csv\nls inbound\n");
    run.assert_success();
    assert!(run.stdout.contains("roster.csv"), "{run}");
    assert_eq!(
        std::fs::read(env.inbound(OTHER).join("roster.csv")).unwrap(),
        b"id,name\n1,Ada\n"
    );
}

#[test]
fn one_account_at_its_handle_limit_leaves_the_others_working() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let env = Env::new();
    let (hog_key, other_key) = two_accounts(&env);
    let set = env.ferry_ok(&["account", "set", HOG, "--max-handles", "40"]);
    assert!(set.stdout.contains("max handles 40"), "{set}");
    let server = env.start();
    let (opened, refusal) = block_on(Duration::from_secs(120), async {
        hold_handles(server.port, &hog_key.private, || {
            other_district_works(&env, &server, &other_key)
        })
        .await
    });
    assert_eq!(opened, 40);
    assert_eq!(
        refusal,
        "too many open files and folders in this session (at most 40): close some first"
    );
    let refused_lines = server
        .log_lines()
        .iter()
        .filter(|l| l.contains("refused a request") && l.contains(HOG))
        .count();
    assert_eq!(refused_lines, 1, "logged once:\n{}", server.log_text());
}

#[test]
fn a_low_descriptor_limit_refuses_handles_before_logins_lists_or_the_web_starve() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let env = Env::with_web();
    let (hog_key, other_key) = two_accounts(&env);
    let server = Server::start_with(&env, |cmd| {
        limit_resource(cmd, libc::RLIMIT_NOFILE, 64, 256)
    });
    let budget = server
        .wait_log(&["file descriptors"], Duration::from_secs(10))
        .expect("the budget is logged");
    assert!(
        budget.contains("limit=256") && budget.contains("sftp_handles=128"),
        "the soft limit is raised to the hard one: {budget}"
    );
    let web = server.web_port();
    let (opened, refusal) = block_on(Duration::from_secs(120), async {
        hold_handles(server.port, &hog_key.private, || {
            other_district_works(&env, &server, &other_key);
            assert_eq!(healthz(web), 200, "/healthz answers");
        })
        .await
    });
    assert_eq!(opened, 64, "one account gets half of the 128 handles");
    assert!(refusal.starts_with("server busy: "), "{refusal}");
    assert!(
        !server.log_text().contains("Too many open files"),
        "{}",
        server.log_text()
    );
}

/// `GET /healthz`'s status.
fn healthz(port: u16) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[test]
fn the_largest_file_and_the_quota_are_enforced_per_account() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let env = Env::new();
    let (hog_key, other_key) = two_accounts(&env);
    env.ferry_ok(&[
        "account",
        "set",
        HOG,
        "--max-file-size",
        "1MiB",
        "--quota",
        "3MiB",
    ]);
    let server = env.start();
    let login = env.login(&server, HOG, &hog_key);
    write_random(&env.work.join("two.bin"), 2 << 20);
    write_random(&env.work.join("one.bin"), 1000 << 10);

    login
        .sftp_batch("put two.bin inbound/two.bin\n")
        .assert_failure();
    assert!(!env.inbound(HOG).join("two.bin").exists());
    let rows = env.uploads_named(HOG, "two.bin");
    assert_eq!(rows[0]["state"], "partial");
    assert_eq!(
        rows[0]["detail"],
        "/inbound/two.bin would be larger than the largest file this server accepts (1.0 MiB); nothing was saved as two.bin; split the file or ask the vendor to raise the limit"
    );

    let puts = "put one.bin inbound/a.bin\nput one.bin inbound/b.bin\nput one.bin inbound/c.bin\n";
    login.sftp_batch(puts).assert_success();
    login
        .sftp_batch("put one.bin inbound/d.bin\n")
        .assert_failure();
    assert!(!env.inbound(HOG).join("d.bin").exists());
    let detail = env.uploads_named(HOG, "d.bin")[0]["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        detail.starts_with(
            "this account's storage is full: 2.9 MiB of 3.0 MiB used; nothing was saved as d.bin;"
        ),
        "{detail}"
    );
    // The other district has the default limits.
    let other = env.login(&server, OTHER, &other_key);
    other
        .sftp_batch("put two.bin inbound/two.bin\n")
        .assert_success();

    // Room again after a removal.
    login
        .sftp_batch("rm inbound/a.bin\nput one.bin inbound/d.bin\n")
        .assert_success();

    // SETSTAT to a size past the largest file is refused; a sparse file
    // reopened without TRUNC is copied without its holes and counted.
    block_on(Duration::from_secs(60), async {
        let handle = raw::login(server.port, HOG, &hog_key.private).await;
        let mut sftp = RawSftp::start(&handle).await;
        sftp.init().await;
        let setstat = |size: u64| {
            Body::new()
                .string(b"/inbound/b.bin")
                .u32(SSH_FILEXFER_ATTR_SIZE)
                .u64(size)
        };
        let (_, code, message) = sftp
            .request(SSH_FXP_SETSTAT, setstat(1 << 40))
            .await
            .status()
            .unwrap();
        assert_eq!(code, SSH_FX_FAILURE);
        assert!(
            message.starts_with("/inbound/b.bin would be larger"),
            "{message}"
        );
        assert_eq!(
            std::fs::metadata(env.inbound(HOG).join("b.bin"))
                .unwrap()
                .len(),
            1000 << 10
        );
    });
}

#[test]
fn reopening_a_sparse_file_copies_no_holes_and_counts_against_the_quota() {
    if !require(&[SSH_KEYGEN]) {
        return;
    }
    let env = Env::new();
    let (hog_key, _) = two_accounts(&env);
    env.ferry_ok(&["account", "set", HOG, "--quota", "1300MiB"]);
    // A sparse file of 600 MiB holding one byte, put there by other means.
    let sparse = std::fs::File::create(env.inbound(HOG).join("sparse.bin")).unwrap();
    sparse.set_len(600 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, b"x", 300 << 20).unwrap();
    let server = env.start();
    block_on(Duration::from_secs(60), async {
        let handle = raw::login(server.port, HOG, &hog_key.private).await;
        let mut sftp = RawSftp::start(&handle).await;
        sftp.init().await;
        let opened = sftp.open(b"/inbound/sparse.bin", SSH_FXF_WRITE).await;
        let file = opened.handle().unwrap_or_else(|| panic!("{opened:?}"));
        let temp = std::fs::read_dir(env.uploading(HOG))
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let meta = temp.metadata().unwrap();
        assert_eq!(meta.len(), 600 << 20);
        assert!(
            meta.blocks() * 512 < 1 << 20,
            "the copy allocated {} blocks",
            meta.blocks()
        );
        // 600 MiB stored + 600 MiB copied fit in 1300 MiB; a second copy does not.
        let second = sftp.open(b"/inbound/sparse.bin", SSH_FXF_WRITE).await;
        let (_, code, message) = second.status().unwrap_or_else(|| panic!("{second:?}"));
        assert_eq!(code, SSH_FX_FAILURE);
        assert!(
            message.starts_with("this account's storage is full: 1.2 GiB of 1.3 GiB used"),
            "{message}"
        );
        assert_eq!(sftp.close(&file).await.status().unwrap().1, SSH_FX_OK);
    });
}
