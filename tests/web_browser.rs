//! End to end in a real browser: Debian's headless Chromium, driven over
//! WebDriver (chromedriver + fantoccini), against a real `ferry serve`.
//!
//! An admin made with `ferry admin create` signs in, pastes a PuTTYgen
//! (RFC 4716) key and sees it pending with its activation time, uploads an
//! authorized_keys file with one bad line and sees that line's error (and
//! nothing added), activates and revokes a key through the confirmation
//! step, downloads the host `.pub` through the button and compares it with
//! `ferry host-key show`, and signs out. Every wait has a deadline.

mod common;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const STEP: Duration = Duration::from_secs(30);
const PASSWORD: &str = "a long browser test passphrase";

/// chromedriver on a free loopback port; killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    /// Kills chromedriver's whole process group: the Chromium processes it
    /// started too, also when the test failed before closing the session.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver { child, port };
    let deadline = Instant::now() + STEP;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    driver
}

async fn browser(driver: &Driver, profile: &Path, downloads: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage",
                format!("--user-data-dir={}", profile.display()),
            ],
            "prefs": {
                "download.default_directory": downloads.display().to_string(),
                "download.prompt_for_download": false,
            },
        }),
    );
    let url = format!("http://127.0.0.1:{}", driver.port);
    tokio::time::timeout(
        STEP,
        // Plain HTTP to chromedriver on loopback: no TLS needed.
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url),
    )
    .await
    .expect("chromium started in time")
    .expect("a WebDriver session")
}

/// Runs one browser step with a deadline.
async fn step<T, E: std::fmt::Debug>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> T {
    match tokio::time::timeout(STEP, fut).await {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => panic!("{what}: {e:?}"),
        Err(_) => panic!("{what}: no answer within {STEP:?}"),
    }
}

/// The page's text once `needle` appears in it (polled until the deadline;
/// a page still loading is read again).
async fn wait_text(client: &Client, needle: &str) -> String {
    let deadline = Instant::now() + STEP;
    let mut last = String::new();
    loop {
        let read = async {
            let body = client.find(Locator::Css("body")).await?;
            body.text().await
        };
        if let Ok(Ok(text)) = tokio::time::timeout(STEP, read).await {
            if text.contains(needle) {
                return text;
            }
            last = text;
        }
        assert!(
            Instant::now() < deadline,
            "`{needle}` did not appear; the page says:\n{last}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// With `FERRY_BROWSER_SCREENSHOTS=DIR`, saves the page as DIR/NAME.png
/// (for people looking at the pages; the test asserts nothing about it).
async fn screenshot(client: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("FERRY_BROWSER_SCREENSHOTS") {
        let png = step("screenshot", client.screenshot()).await;
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

/// Fills in and sends the sign-in form on the page shown, then waits for
/// the accounts.
async fn sign_in(client: &Client, user: &str) {
    let form = step(
        "sign-in form",
        client.form(Locator::Css("form[action='/sign-in']")),
    )
    .await;
    step("user", form.set_by_name("username", user)).await;
    step("password", form.set_by_name("password", PASSWORD)).await;
    step("submit", form.submit()).await;
    wait_text(client, "Accounts").await;
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/keys")
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_installs_keys_in_a_real_browser() {
    if !require(&[
        ("chromium", "chromium"),
        ("chromedriver", "chromium-driver"),
    ]) {
        return;
    }
    let env = Env::with_web();
    // A real propagation delay, so a new key is visibly pending.
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        config.replace("propagation_delay = \"0s\"", "propagation_delay = \"10m\""),
    )
    .unwrap();
    env.create_account("lincoln");
    let admin = env.ferry_stdin(
        &["admin", "create", "it-vendor", "--role", "vendor-admin"],
        PASSWORD.as_bytes(),
    );
    assert!(admin.success(), "{admin}");
    let server = Server::start(&env);
    let base = format!("http://127.0.0.1:{}", server.web_port());

    let driver = start_driver();
    let profile = env.root().join("chromium-profile");
    let downloads = env.root().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let client = browser(&driver, &profile, &downloads).await;
    step("window size", client.set_window_size(1280, 1000)).await;
    let mut visited = Vec::new();

    // Sign in.
    step("open sign-in", client.goto(&format!("{base}/"))).await;
    visited.push(step("url", client.current_url()).await.path().to_owned());
    sign_in(&client, "it-vendor").await;
    visited.push(step("url", client.current_url()).await.path().to_owned());

    // The account page.
    step("open account", client.find(Locator::LinkText("lincoln")))
        .await
        .click()
        .await
        .unwrap();
    wait_text(&client, "How to connect").await;
    visited.push(step("url", client.current_url()).await.path().to_owned());

    // Paste a PuTTYgen RFC 4716 key: pending, with its activation time.
    let putty = std::fs::read_to_string(fixture("puttygen-ed25519-rfc4716.pub")).unwrap();
    let area = step("textarea", client.find(Locator::Id("add-keys-text"))).await;
    step("paste", area.send_keys(&putty)).await;
    step("add", client.find(Locator::Id("add-keys-submit")))
        .await
        .click()
        .await
        .unwrap();
    let text = wait_text(&client, "Keys added").await;
    assert!(
        text.contains("SHA256:eg/HSNI3K4OayIrXLyfWv0N2EzKoGVYU2eEDbDzttqU"),
        "{text}"
    );
    assert!(text.contains("pending"), "{text}");
    assert!(
        text.contains("until 20"),
        "the activation time is shown: {text}"
    );
    wait_text(&client, "activates in").await; // the live countdown ran
    screenshot(&client, "account-pending-key").await;
    visited.push(step("url", client.current_url()).await.path().to_owned());

    // An authorized_keys file with one bad line: the line's error, nothing added.
    let good = std::fs::read_to_string(fixture("ed25519.pub")).unwrap();
    let weak = std::fs::read_to_string(fixture("rsa-1024-weak.pub")).unwrap();
    let file = env.work.join("authorized_keys");
    std::fs::write(&file, format!("{}\n{}\n", good.trim(), weak.trim())).unwrap();
    let input = step("file input", client.find(Locator::Id("add-keys-file"))).await;
    step("choose file", input.send_keys(&file.display().to_string())).await;
    step("add", client.find(Locator::Id("add-keys-submit")))
        .await
        .click()
        .await
        .unwrap();
    let text = wait_text(&client, "no key was added").await;
    assert!(text.contains("line 2"), "the bad line is named: {text}");
    assert!(text.contains("1024"), "and why: {text}");
    screenshot(&client, "account-refused-line").await;
    let listed = env.ferry_ok(&["key", "list", "lincoln", "--json"]);
    let keys: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(
        keys.as_array().expect("a JSON list of keys").len(),
        1,
        "nothing half-applied"
    );

    // Activate the pending key (vendor admin), then revoke it after confirming.
    step(
        "reload account",
        client.goto(&format!("{base}/accounts/lincoln")),
    )
    .await;
    let activate = step(
        "activate button",
        client.find(Locator::XPath("//button[normalize-space()='Activate now']")),
    )
    .await;
    step("activate", activate.click()).await;
    wait_text(&client, "The key is active now").await;
    let revoke = step("revoke link", client.find(Locator::Css("a.revoke"))).await;
    step("revoke", revoke.click()).await;
    wait_text(&client, "Revoke this key?").await;
    screenshot(&client, "revoke-confirm").await;
    visited.push(step("url", client.current_url()).await.path().to_owned());
    step("confirm", client.find(Locator::Id("confirm-revoke")))
        .await
        .click()
        .await
        .unwrap();
    let text = wait_text(&client, "Key revoked").await;
    assert!(text.contains("revoked"), "{text}");
    let listed = env.ferry_ok(&["key", "list", "lincoln", "--json"]);
    let keys: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(keys[0]["state"], "revoked", "{keys}");

    // Download the host key with the button; compare with `ferry host-key show`.
    step("download", client.find(Locator::Id("download-host-key")))
        .await
        .click()
        .await
        .unwrap();
    let downloaded = downloads.join("ssh_host_ed25519_key.pub");
    let deadline = Instant::now() + STEP;
    while !downloaded.is_file() {
        assert!(
            Instant::now() < deadline,
            "no download in {}",
            downloads.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pub_file = std::fs::read_to_string(&downloaded).unwrap();
    let shown = env.ferry_ok(&["host-key", "show"]).stdout;
    let key_part: String = pub_file
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(key_part.starts_with("ssh-ed25519 "), "{pub_file}");
    assert!(
        shown.contains(&key_part),
        "`ferry host-key show` has {key_part}:\n{shown}"
    );

    // The sign-in was counted (no names in the metrics).
    step("metrics", client.goto(&format!("{base}/metrics"))).await;
    wait_text(&client, "ferry_web_sign_ins_total{result=\"accepted\"} 1").await;
    visited.push("/metrics".to_owned());
    step("back", client.goto(&format!("{base}/accounts/lincoln"))).await;
    wait_text(&client, "How to connect").await;

    // Sign out: the account page asks for a sign-in again.
    let out = step(
        "sign-out",
        client.find(Locator::Css("form[action='/sign-out'] button")),
    )
    .await;
    step("sign out", out.click()).await;
    wait_text(&client, "Sign in").await;
    step(
        "account again",
        client.goto(&format!("{base}/accounts/lincoln")),
    )
    .await;
    let url = step("url", client.current_url()).await;
    assert_eq!(url.path(), "/sign-in");
    visited.push(url.path().to_owned());

    println!("browser visited: {}", visited.join(" → "));
    step("close", client.close()).await;
    drop(server);
}

/// The `data-account` of every row the overview shows.
async fn overview_rows(client: &Client) -> Vec<String> {
    let rows = step(
        "overview rows",
        client.find_all(Locator::Css("tr.overview-row")),
    )
    .await;
    let mut names = Vec::new();
    for row in rows {
        names.push(
            step("row", row.attr("data-account"))
                .await
                .unwrap_or_default(),
        );
    }
    names
}

/// The overview filtered and searched by a vendor admin; then a district
/// admin invited from the account page accepts the link in a second browser
/// session, sets their own password, and sees only their own account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_filter_search_and_an_invitation_accepted_in_a_second_session() {
    if !require(&[
        ("chromium", "chromium"),
        ("chromedriver", "chromium-driver"),
    ]) {
        return;
    }
    let env = Env::with_web();
    for name in ["lincoln", "springfield", "lakeview"] {
        env.create_account(name);
    }
    // lincoln can log in; the other two have no active key.
    env.ferry_ok(&[
        "key",
        "add",
        "lincoln",
        fixture("ed25519.pub").to_str().unwrap(),
        "--now",
    ]);
    let admin = env.ferry_stdin(
        &["admin", "create", "it-vendor", "--role", "vendor-admin"],
        PASSWORD.as_bytes(),
    );
    assert!(admin.success(), "{admin}");
    let server = Server::start(&env);
    let base = format!("http://127.0.0.1:{}", server.web_port());

    let driver = start_driver();
    let downloads = env.root().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let vendor = browser(&driver, &env.root().join("profile-vendor"), &downloads).await;
    step("window size", vendor.set_window_size(1280, 1000)).await;
    step("open sign-in", vendor.goto(&format!("{base}/sign-in"))).await;
    sign_in(&vendor, "it-vendor").await;

    // The overview: every account, those needing attention first.
    step("overview", vendor.goto(&format!("{base}/overview"))).await;
    let text = wait_text(&vendor, "Last 24 hours").await;
    assert!(text.contains("2 with no active key"), "{text}");
    assert_eq!(
        overview_rows(&vendor).await,
        ["lakeview", "springfield", "lincoln"]
    );
    // Filter: no active key.
    step(
        "filter",
        vendor.find(Locator::Css("a.filter[data-filter='no-key']")),
    )
    .await
    .click()
    .await
    .unwrap();
    wait_text(&vendor, "No active key (2)").await;
    assert_eq!(overview_rows(&vendor).await, ["lakeview", "springfield"]);
    // Search within the filter.
    let search = step("search box", vendor.find(Locator::Id("overview-search"))).await;
    step("type", search.send_keys("spring")).await;
    step("search", vendor.find(Locator::Id("overview-search-submit")))
        .await
        .click()
        .await
        .unwrap();
    wait_text(&vendor, "(1 accounts)").await;
    assert_eq!(overview_rows(&vendor).await, ["springfield"]);
    let url = step("url", vendor.current_url()).await;
    assert!(
        url.query().unwrap_or_default().contains("state=no-key"),
        "{url}"
    );
    screenshot(&vendor, "overview-filtered").await;

    // An invitation from springfield's page, copied.
    step(
        "account",
        vendor.goto(&format!("{base}/accounts/springfield")),
    )
    .await;
    wait_text(&vendor, "Connection guide for the district").await;
    let email = step("email", vendor.find(Locator::Id("invite-email"))).await;
    step("clear", email.clear()).await;
    step("type", email.send_keys("it@springfield.k12.us")).await;
    step("invite", vendor.find(Locator::Id("invite-copy")))
        .await
        .click()
        .await
        .unwrap();
    wait_text(&vendor, "copy this link").await;
    let link = step("link", vendor.find(Locator::Id("invitation-link")))
        .await
        .text()
        .await
        .unwrap();
    assert!(link.starts_with(&format!("{base}/invite/")), "{link}");

    // A second browser, no session: the invited person sets their own password.
    let district = browser(&driver, &env.root().join("profile-district"), &downloads).await;
    step("open link", district.goto(link.trim())).await;
    wait_text(&district, "Set up your sign-in").await;
    let user = step("username", district.find(Locator::Id("invite-username"))).await;
    step("clear", user.clear()).await;
    step("type", user.send_keys("spring-it")).await;
    let pass = step("password", district.find(Locator::Id("invite-password"))).await;
    step("type", pass.send_keys("springfield district passphrase")).await;
    step("accept", district.find(Locator::Id("invite-accept")))
        .await
        .click()
        .await
        .unwrap();
    wait_text(&district, "Connection guide for the district").await;
    let url = step("url", district.current_url()).await;
    assert_eq!(url.path(), "/accounts/springfield");
    // Their overview holds their own row only; another account is not there.
    step("overview", district.goto(&format!("{base}/overview"))).await;
    wait_text(&district, "Last 24 hours").await;
    assert_eq!(overview_rows(&district).await, ["springfield"]);
    step(
        "other account",
        district.goto(&format!("{base}/accounts/lincoln")),
    )
    .await;
    let text = wait_text(&district, "Not found").await;
    assert!(!text.contains("Lincoln"), "{text}");
    // The link worked once.
    step("link again", district.goto(link.trim())).await;
    wait_text(&district, "expired, was used or was withdrawn").await;

    step("close", district.close()).await;
    step("close", vendor.close()).await;
}
