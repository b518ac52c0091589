//! End to end: `ferry serve` with the admin web on port 0, a token made with
//! `ferry token create`, keys added and listed over plain HTTP/1.1, the host
//! key download compared with `ferry host-key show`, and a clean stop.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN0dT4WOFiLJfa9kHP8Jwfzv0L9YS+2URatPEGnBIPe4 district@laptop";

#[test]
fn serve_web_token_add_and_list_keys() {
    let env = Env::with_web();
    env.create_account("springfield");
    env.create_account("shelbyville");

    let created = env.ferry_ok(&[
        "token",
        "create",
        "--role",
        "district-admin",
        "--account",
        "springfield",
    ]);
    let token = created.stdout.trim().to_owned();
    assert!(token.starts_with("ferry_"), "{created}");
    assert!(created.stderr.contains("shown only this once"), "{created}");
    let vendor = env.ferry_ok(&["token", "create", "--role", "vendor-admin"]);
    let vendor = vendor.stdout.trim().to_owned();
    // A district token needs its account, and the account must exist.
    env.ferry(&["token", "create", "--role", "district-admin"])
        .assert_failure();
    env.ferry(&[
        "token",
        "create",
        "--role",
        "district-admin",
        "--account",
        "nosuch",
    ])
    .assert_failure();
    // Admins: password from stdin.
    let admin = env.ferry_stdin(
        &[
            "admin",
            "create",
            "it-admin",
            "--role",
            "district-admin",
            "--account",
            "springfield",
        ],
        b"a long enough passphrase\n",
    );
    assert!(admin.success(), "{admin}");
    assert!(admin.stdout.contains("created admin it-admin"), "{admin}");
    env.ferry_stdin(
        &["admin", "create", "x", "--role", "vendor-admin"],
        b"short\n",
    )
    .assert_failure();

    let mut server = env.start();
    let port = server.web_port();
    assert!(
        !server
            .log_text()
            .contains("the admin web is not part of this build"),
        "{}",
        server.log_text()
    );

    let (status, _, body) = http(port, "GET", "/healthz", None, "");
    assert_eq!(status, 200, "{body}");

    let (status, _, body) = http(port, "GET", "/api/v1/accounts", None, "");
    assert_eq!(status, 401, "{body}");

    let (status, _, body) = http(
        port,
        "POST",
        "/api/v1/accounts/springfield/keys",
        Some(&token),
        &format!("{KEY}\n"),
    );
    assert_eq!(status, 201, "{body}");
    let added: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(added["keys"][0]["status"], "added");

    let (status, _, body) = http(
        port,
        "GET",
        "/api/v1/accounts/springfield/keys",
        Some(&token),
        "",
    );
    assert_eq!(status, 200, "{body}");
    let listed: Value = serde_json::from_str(&body).unwrap();
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{listed}");
    assert_eq!(keys[0]["comment"], "district@laptop");
    // The test configuration has propagation_delay = 0s.
    assert_eq!(keys[0]["state"], "active");

    // The CLI sees the same key.
    let cli = env.ferry_ok(&["authorized-keys", "springfield"]);
    assert_eq!(cli.stdout.trim(), KEY);

    // Another district's account is 404 for this token; the vendor sees it.
    let (status, _, _) = http(
        port,
        "GET",
        "/api/v1/accounts/shelbyville/keys",
        Some(&token),
        "",
    );
    assert_eq!(status, 404);
    let (status, _, _) = http(
        port,
        "GET",
        "/api/v1/accounts/shelbyville/keys",
        Some(&vendor),
        "",
    );
    assert_eq!(status, 200);

    // The host key download is the Ed25519 key `ferry host-key show` prints.
    let (status, head, body) = http(port, "GET", "/host-key.pub", None, "");
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-disposition: attachment"),
        "{head}"
    );
    let shown = env.host_keys();
    let ed25519 = shown
        .iter()
        .find(|(_, key)| key.starts_with("ssh-ed25519 "))
        .expect("an ed25519 host key");
    let downloaded: Vec<&str> = body.split_whitespace().take(2).collect();
    assert_eq!(downloaded.join(" "), ed25519.1);

    let (status, _, body) = http(port, "GET", "/api/v1/host-keys", None, "");
    assert_eq!(status, 200);
    let host_keys: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        host_keys["keys"].as_array().unwrap().len(),
        shown.len(),
        "{host_keys}"
    );
    assert!(
        host_keys["keys"][0]["known_hosts"]
            .as_str()
            .unwrap()
            .starts_with(&format!("[127.0.0.1]:{} ", server.port)),
        "{host_keys}"
    );

    let status = server
        .terminate(Duration::from_secs(30))
        .expect("ferry serve stops on SIGTERM");
    assert!(status.success(), "{status:?}; log:\n{}", server.log_text());
}

#[test]
fn first_start_prints_a_setup_link_until_an_admin_exists() {
    let env = Env::with_web();
    let server = env.start();
    let port = server.web_port();
    let stdout_file = env.root().join("serve.stdout");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let printed = loop {
        let text = std::fs::read_to_string(&stdout_file).unwrap_or_default();
        if text.contains("/setup/") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(printed.contains("within one hour"), "{printed}");
    let link = printed
        .split_whitespace()
        .find(|word| word.contains("/setup/"))
        .expect("a setup link");
    assert!(
        link.starts_with(&format!("http://127.0.0.1:{port}/setup/")),
        "{link}"
    );
    let path = &link[link.find("/setup/").unwrap()..];
    // The secret never reaches the log.
    let secret = &path["/setup/".len()..];
    assert!(!server.log_text().contains(secret));
    let (status, head, body) = http(port, "GET", path, None, "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Create the first vendor admin"), "{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("referrer-policy: no-referrer"),
        "{head}"
    );
    let (status, _, _) = http(port, "GET", "/setup/not-the-secret", None, "");
    assert_eq!(status, 404);
    drop(server);

    // Once an admin exists (here from the shell), no link is printed.
    let admin = env.ferry_stdin(
        &["admin", "create", "root", "--role", "vendor-admin"],
        b"a long enough passphrase\n",
    );
    assert!(admin.success(), "{admin}");
    std::fs::write(&stdout_file, "").unwrap();
    let server = env.start();
    // The web answers only after the setup link would have been printed.
    let (status, _, _) = http(server.web_port(), "GET", "/healthz", None, "");
    assert_eq!(status, 200);
    drop(server);
    let printed = std::fs::read_to_string(&stdout_file).unwrap();
    assert!(!printed.contains("/setup/"), "{printed}");
}

#[test]
fn metrics_count_logins_uploads_and_ingest_without_naming_anyone() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let env = Env::with_ingest("");
    env.enable_web();
    env.create_account("metrics-district");
    let key = env.new_key("district");
    env.install_key("metrics-district", &key);
    let server = env.start();
    let port = server.web_port();
    let login = env.login(&server, "metrics-district", &key);
    std::fs::write(login.work.join("roster.csv"), "id,name\n1,Ana\n2,Bo\n").unwrap();
    login
        .sftp_batch("put roster.csv /inbound/roster.csv\n")
        .assert_success();
    env.wait_uploads(
        "metrics-district",
        Duration::from_secs(30),
        "roster.csv archived",
        |rows| rows.iter().any(|r| r["state"] == "archived"),
    );

    let (status, head, body) = http(port, "GET", "/metrics", None, "");
    assert_eq!(status, 200, "{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{head}"
    );
    for line in [
        "ferry_build_info{version=",
        "ferry_sftp_logins_total{result=\"accepted\"} 1",
        "ferry_sftp_uploads_total{result=\"finished\"} 1",
        "ferry_ingest_files_total{result=\"handed_off\"} 1",
    ] {
        assert!(body.contains(line), "no `{line}` in:\n{body}");
    }
    assert!(
        !body.contains("metrics-district") && !body.contains("127.0.0.1"),
        "{body}"
    );
}
