//! Defences before login, each reproduced with real connections from
//! several 127.0.0.x sources against a real `ferry serve`: MaxStartups early
//! drop, per-source penalties (applied, refused before the SSH banner,
//! expiring, the exempt list, lifted by command, never charged to a district
//! that probes keys before logging in), and login floods that leave the
//! database and the log small. 127.0.0.1 is exempt from penalties in the
//! test configuration; every source that must be penalisable is another
//! 127.0.0.x address.

mod common;

use std::net::{Ipv4Addr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::raw::{block_on, connect_from, try_login_from};
use common::*;

const ACCOUNT: &str = "district_gate";

/// An installation with ACCOUNT and its key installed, `[sftp]` extras given.
fn installation(extra_sftp: &str) -> (Env, ClientKey) {
    let env = Env::with_sftp_settings(extra_sftp);
    env.create_account(ACCOUNT);
    let key = env.new_key(ACCOUNT);
    env.install_key(ACCOUNT, &key);
    (env, key)
}

/// `ferry penalties list --json`: (source, reason) of every row.
fn penalties(env: &Env) -> Vec<(String, String)> {
    let r = env.ferry_ok(&["penalties", "list", "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("`ferry penalties list --json` is not JSON ({e}): {r}"));
    rows.iter()
        .map(|row| {
            assert!(row["node"].as_str().is_some_and(|n| !n.is_empty()), "{row}");
            assert!(row["until"].as_str().is_some(), "{row}");
            (
                row["source"].as_str().unwrap_or_default().to_owned(),
                row["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The district's real client, retried the way a scheduler would: up to
/// `tries` times, `pause` apart. Returns the try that logged in.
fn sftp_with_retries(login: &Login, tries: u32, pause: Duration) -> u32 {
    let mut last = None;
    for n in 1..=tries {
        let run = login.sftp_batch_timeout("pwd\n", Duration::from_secs(30));
        if run.success() {
            return n;
        }
        last = Some(run);
        std::thread::sleep(pause);
    }
    panic!(
        "the district could not log in with {tries} tries; last: {}",
        last.unwrap()
    );
}

/// One connection from `from` that tries an unknown user name and ends.
fn unknown_user_attempt(from: Ipv4Addr, port: u16, key: &ClientKey) -> Result<(), String> {
    block_on(Duration::from_secs(60), async {
        match try_login_from(from, port, "nobody-here", &key.private).await? {
            Some(_) => panic!("an unknown user logged in"),
            None => Ok(()),
        }
    })
}

/// One connection from `from` that reads the banner and leaves without
/// authenticating; false when the server closed it before the banner.
fn no_auth_connection(from: Ipv4Addr, port: u16) -> bool {
    ssh_banner_from(from, port).is_some()
}

#[test]
fn a_district_logs_in_while_70_idle_connections_are_held() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    // Grace long enough that nothing the attacker holds times out here.
    let (env, key) = installation("login_grace = \"120s\"");
    let server = env.start();
    let login = env.login(&server, ACCOUNT, &key);
    // 7 sources, 10 connections each (the per-source cap), all idle.
    let mut held: Vec<TcpStream> = Vec::new();
    let mut refused = 0;
    for source in 2..=8 {
        for _ in 0..10 {
            let mut stream = tcp_from(loopback(source), server.port).expect("TCP connect");
            match first_bytes(&mut stream, Duration::from_secs(20)) {
                Some(banner) => {
                    assert!(banner.starts_with("SSH-2.0-Ferry"), "{banner:?}");
                    held.push(stream);
                }
                None => refused += 1,
            }
        }
    }
    // On main all 64 unauthenticated slots filled and every district was
    // refused; early drop refuses more and more of them past 16.
    assert!(
        (16..64).contains(&held.len()),
        "held {} idle connections, {refused} refused",
        held.len()
    );
    let tries = sftp_with_retries(&login, 40, Duration::from_millis(250));
    println!(
        "early drop: {} of 70 idle connections held, {refused} refused; the district logged in at try {tries}",
        held.len()
    );
    assert!(
        server
            .wait_log(
                &["too many connections are waiting to log in"],
                Duration::from_secs(5)
            )
            .is_some()
    );
    drop(held);
}

#[test]
fn an_attacker_who_keeps_reconnecting_is_penalised_and_districts_get_in() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let (env, key) = installation("login_grace = \"2s\"");
    let server = env.start();
    let login = env.login(&server, ACCOUNT, &key);
    let port = server.port;
    let stop = Arc::new(AtomicBool::new(false));
    // The attacker keeps 10 idle connections open from each of 7 sources,
    // reconnecting as soon as one is closed, until told to stop.
    let attacker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut open: Vec<Vec<TcpStream>> = (0..7).map(|_| Vec::new()).collect();
            let mut refused_at_once = [0u32; 7];
            let give_up = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < give_up {
                for (i, streams) in open.iter_mut().enumerate() {
                    streams.retain_mut(still_open);
                    while streams.len() < 10 {
                        let Ok(mut stream) = tcp_from(loopback(2 + i as u8), port) else {
                            break;
                        };
                        match first_bytes(&mut stream, Duration::from_secs(10)) {
                            Some(_) => streams.push(stream),
                            None => {
                                refused_at_once[i] += 1;
                                break;
                            }
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            refused_at_once
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    let tries = sftp_with_retries(&login, 60, Duration::from_millis(250));
    let waited = started.elapsed();
    // Still under attack: a source's new connection is closed at once.
    assert_eq!(ssh_banner_from(loopback(2), port), None);
    stop.store(true, Ordering::Relaxed);
    let refused_at_once = attacker.join().unwrap();
    println!(
        "persistent attacker: the district logged in after {waited:?} (try {tries}); connections refused at once per source: {refused_at_once:?}"
    );
    assert!(
        refused_at_once.iter().all(|&n| n > 0),
        "every attacking source was refused: {refused_at_once:?}"
    );
    // Every source is listed; the reason is its latest event (grace
    // exceeded, or the connections the attacker dropped when it stopped).
    let listed = penalties(&env);
    for source in 2..=8 {
        let source = format!("127.0.0.{source}");
        assert!(
            listed.iter().any(|(s, _)| *s == source),
            "{source} is not listed as penalised: {listed:?}"
        );
    }
    assert!(
        listed
            .iter()
            .any(|(_, reason)| reason == "login grace time exceeded"),
        "{listed:?}"
    );
    assert!(
        !listed.iter().any(|(s, _)| s == "127.0.0.1"),
        "the district's source is not penalised: {listed:?}"
    );
}

/// Whether the server still holds `stream` open (any banner bytes are read).
fn still_open(stream: &mut TcpStream) -> bool {
    use std::io::Read;
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    let open = loop {
        match stream.read(&mut buf) {
            Ok(0) => break false,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break true,
            Err(_) => break false,
        }
    };
    stream.set_nonblocking(false).unwrap();
    open
}

#[test]
fn penalties_refuse_before_the_banner_expire_spare_the_exempt_and_lift_by_command() {
    if !require(&[SSH_KEYGEN]) {
        return;
    }
    let (env, _key) = installation("penalty_exempt = [\"127.0.0.1/32\", \"127.0.0.9/32\"]");
    env.enable_web();
    let server = env.start();
    let port = server.port;
    let stranger = env.new_key("stranger");

    // 127.0.0.4: three unknown-user connections (15 s), then connections
    // that never authenticate (1 s each) until the penalty passes 15 s.
    for _ in 0..3 {
        unknown_user_attempt(loopback(4), port, &stranger).expect("served until penalised");
    }
    let mut no_auth = 0;
    while no_auth_connection(loopback(4), port) {
        no_auth += 1;
        assert!(no_auth < 20, "127.0.0.4 was never penalised");
    }
    let activated = Instant::now();
    // Refused right after accept: not one byte, so no SSH banner and no
    // key exchange.
    let mut stream = tcp_from(loopback(4), port).unwrap();
    let started = Instant::now();
    assert_eq!(first_bytes(&mut stream, Duration::from_secs(5)), None);
    assert!(started.elapsed() < Duration::from_secs(2), "closed at once");

    // 127.0.0.3: unknown-user connections until refused: after the 4th
    // (20 s), or the 5th when the 4th's end is noticed a moment late.
    let mut served = 0;
    while unknown_user_attempt(loopback(3), port, &stranger).is_ok() {
        served += 1;
        assert!(served < 6, "127.0.0.3 was never penalised");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        (4..=5).contains(&served),
        "penalised once more than 15 s had accrued, not after {served}"
    );
    assert_eq!(ssh_banner_from(loopback(3), port), None);

    // 127.0.0.9 is exempt: the same failures, never refused.
    for _ in 0..8 {
        unknown_user_attempt(loopback(9), port, &stranger).expect("an exempt source is served");
    }
    assert!(ssh_banner_from(loopback(9), port).is_some());
    // Other sources are unaffected.
    assert!(ssh_banner_from(loopback(5), port).is_some());

    // Listed for people (CLI) and counted for monitoring.
    assert!(wait_until(Duration::from_secs(10), || {
        let listed = penalties(&env);
        listed
            .iter()
            .any(|(s, r)| s == "127.0.0.3" && r == "unknown user")
            && listed.iter().any(|(s, _)| s == "127.0.0.4")
    }));
    let web = server.web_port();
    assert!(wait_until(Duration::from_secs(10), || metric_value(
        web,
        "ferry_sftp_penalised_sources"
    ) >= 2.0));
    let (_, metrics) = http_from(
        loopback(1),
        web,
        "GET /metrics HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n\r\n",
    );
    assert!(
        metrics.contains("ferry_sftp_connections_refused_total{reason=\"penalised\"}"),
        "{metrics}"
    );

    // Lifting by command: 127.0.0.3 is served again within seconds.
    let lifted = env.ferry_ok(&["penalties", "lift", "127.0.0.3"]);
    assert!(lifted.stdout.contains("127.0.0.3"), "{lifted}");
    assert!(
        wait_until(Duration::from_secs(10), || no_auth_connection(
            loopback(3),
            port
        )),
        "the lifted source is still refused"
    );
    assert!(
        server
            .wait_log(&["penalty lifted", "127.0.0.3"], Duration::from_secs(5))
            .is_some()
    );
    let again = env.ferry(&["penalties", "lift", "127.0.0.3"]);
    assert!(
        !again.success() && again.stderr.contains("no SFTP node has a penalty"),
        "{again}"
    );
    let bad = env.ferry(&["penalties", "lift", "example.org"]);
    assert!(
        !bad.success() && bad.stderr.contains("not a source"),
        "{bad}"
    );

    // 127.0.0.4's penalty runs down: still refused 5 s after it began,
    // served again once about 15 s have passed.
    while activated.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        ssh_banner_from(loopback(4), port),
        None,
        "expired too early"
    );
    assert!(
        wait_until(Duration::from_secs(20), || no_auth_connection(
            loopback(4),
            port
        )),
        "the penalty did not run down"
    );
    println!(
        "127.0.0.4 was refused for {:?} after {no_auth} connections without authentication",
        activated.elapsed()
    );
}

#[test]
fn a_district_that_offers_other_keys_first_is_never_penalised() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let (env, key) = installation("");
    let server = env.start();
    let wrong = [env.new_key("laptop"), env.new_key("old-backup")];
    // OpenSSH probes `none`, then offers both keys that are not installed,
    // then the district's key: 2 refused offers per login.
    let login = env.login(&server, ACCOUNT, &wrong[0]);
    let extra = [
        "-v",
        "-i",
        wrong[1].private.to_str().unwrap(),
        "-i",
        key.private.to_str().unwrap(),
        "-o",
        "BindAddress=127.0.0.5",
    ];
    for _ in 0..8 {
        let cmd = login.sftp_command(&extra);
        let run = common::run(cmd, Some(b"pwd\n".to_vec()), CLIENT_TIMEOUT);
        assert!(run.success(), "{run}");
        assert!(run.stderr.contains("Authenticated"), "{run}");
    }
    // 16 refused offers would be 80 s of penalty if counted per offer.
    assert!(penalties(&env).is_empty(), "{:?}", penalties(&env));
    assert!(ssh_banner_from(loopback(5), server.port).is_some());
    let attempts = env.attempts(ACCOUNT);
    let folded = attempts
        .iter()
        .find(|a| a["reason"] == "key not installed")
        .unwrap_or_else(|| panic!("{attempts:#?}"));
    assert_eq!(
        folded["count"], 16,
        "one row counts the refused offers: {folded:#}"
    );
    assert_eq!(
        attempts
            .iter()
            .filter(|a| a["result"] == "accepted")
            .count(),
        8
    );
}

#[test]
fn a_login_flood_leaves_the_database_and_the_log_small() {
    if !require(&[SSH_KEYGEN]) {
        return;
    }
    // The flood comes from an exempt source (a district NAT, say), so no
    // penalty cuts it short and every attempt reaches authentication; the
    // admission caps are raised so it runs in seconds. What is measured is
    // what the attempts leave behind.
    let (env, key) = installation(
        "penalty_exempt = [\"127.0.0.0/8\"]\nmax_unauthenticated_per_address = 64\nmax_startups = \"64:30:128\"",
    );
    let stranger = env.new_key("stranger");
    let db = env.data_dir.join("ferry.db");
    let wal = env.data_dir.join("ferry.db-wal");
    let db_size = || {
        // The last connection to close checkpoints SQLite's write-ahead log
        // into the file and removes it: measure the data, not the log.
        block_on(Duration::from_secs(60), async {
            let store = ferry_store::Store::connect(&format!("sqlite://{}", db.display()))
                .await
                .expect("open the test database");
            store.close().await;
        });
        file_len(&db) + file_len(&wal)
    };
    let db_before = db_size();
    let mut server = env.start();
    let log_bytes =
        |server: &Server| -> usize { server.log_lines().iter().map(|l| l.len() + 1).sum() };
    let log_before = log_bytes(&server);
    let port = server.port;
    let started = Instant::now();

    // 40 logins with 200,000-byte user names.
    let long_names = block_on(Duration::from_secs(300), async {
        let mut refused = 0;
        for n in 0..40u32 {
            let user = format!("{n:03}").repeat(200_000 / 3 + 1)[..200_000].to_owned();
            match try_login_from(loopback(6), port, &user, &stranger.private).await {
                Ok(None) | Err(_) => refused += 1,
                Ok(Some(_)) => panic!("a 200,000-byte user name logged in"),
            }
        }
        refused
    });
    assert_eq!(long_names, 40);

    // 2,000 refused attempts with a normal name from one source: 48
    // connections at a time, each making attempts until the server's limit
    // of 6 per connection ends it.
    let refused = block_on(Duration::from_secs(300), async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..48 {
            let stranger = stranger.private.clone();
            tasks.spawn(async move {
                let mut refused = 0u32;
                while refused < 2000 / 48 + 1 {
                    let config = Arc::new(russh::client::Config::default());
                    let Ok(mut handle) = connect_from(loopback(7), port, config).await else {
                        continue;
                    };
                    let private = russh::keys::load_secret_key(&stranger, None).unwrap();
                    let private = Arc::new(private);
                    for _ in 0..6 {
                        let attempt = handle.authenticate_publickey(
                            ACCOUNT,
                            russh::keys::PrivateKeyWithHashAlg::new(private.clone(), None),
                        );
                        match tokio::time::timeout(Duration::from_secs(30), attempt).await {
                            Ok(Ok(result)) if !result.success() => refused += 1,
                            _ => break,
                        }
                    }
                }
                refused
            });
        }
        let mut total = 0;
        while let Some(n) = tasks.join_next().await {
            total += n.unwrap();
        }
        total
    });
    let flood_time = started.elapsed();
    assert!(refused >= 2000, "{refused}");
    // The account's page still works: the refusals are a few rows.
    let attempts = env.attempts(ACCOUNT);
    let counted: i64 = attempts
        .iter()
        .filter(|a| a["result"] == "refused")
        .map(|a| a["count"].as_i64().unwrap())
        .sum();
    assert_eq!(counted, i64::from(refused), "{attempts:#?}");
    assert!(attempts.len() <= 3, "{attempts:#?}");

    let log_growth = log_bytes(&server) - log_before;
    // SQLite's write-ahead log is bounded by its automatic checkpoint (about
    // 1000 pages), whatever the flood; reported, not asserted.
    let wal_during = file_len(&wal);
    server.terminate(Duration::from_secs(30));
    let db_growth = db_size().saturating_sub(db_before);
    println!(
        "login flood: 40 logins with 200,000-byte user names and {refused} refused attempts in {flood_time:?}: \
         database +{db_growth} bytes (write-ahead log {wal_during} bytes while running), log +{log_growth} bytes"
    );
    assert!(db_growth < 300_000, "database grew {db_growth} bytes");
    assert!(log_growth < 300_000, "log grew {log_growth} bytes");
    // A long name is recorded shortened, with its length.
    let long = "017".repeat(200_000 / 3 + 1)[..200_000].to_owned();
    let shortened = ferry_sftp::session::printable_user_name(&long);
    assert!(shortened.len() < 100, "{shortened}");
    let recorded = env.attempts(&shortened);
    assert_eq!(recorded.len(), 1, "{recorded:#?}");
    assert!(
        recorded[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("200000 bytes")),
        "{recorded:#?}"
    );
    let _ = key;
}

#[test]
fn key_exchanges_are_bounded_and_legacy_algorithms_can_be_turned_off() {
    use russh::keys::{Algorithm, EcdsaCurve};
    use russh::{Preferred, kex};
    use std::borrow::Cow;

    /// Whether a client insisting on `kex`, `host_key` and group-exchange
    /// sizes `gex` completes a key exchange.
    fn handshake(
        port: u16,
        kex: kex::Name,
        host_key: &Algorithm,
        gex: (usize, usize, usize),
    ) -> bool {
        let config = Arc::new(russh::client::Config {
            preferred: Preferred {
                kex: Cow::Owned(vec![
                    kex,
                    kex::EXTENSION_SUPPORT_AS_CLIENT,
                    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
                ]),
                key: Cow::Owned(vec![host_key.clone()]),
                ..Preferred::default()
            },
            gex: russh::client::GexParams::new(gex.0, gex.1, gex.2).unwrap(),
            ..Default::default()
        });
        block_on(
            Duration::from_secs(60),
            connect_from(loopback(1), port, config),
        )
        .is_ok()
    }
    let ed25519 = Algorithm::Ed25519;
    let ecdsa = Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP256,
    };
    let openssh = (2048, 8192, 8192);
    let insisting = (4096, 8192, 8192);
    // (kex, host key, group sizes, served by default, served without legacy)
    let cases = [
        (kex::CURVE25519, &ed25519, openssh, true, true),
        (kex::MLKEM768X25519_SHA256, &ed25519, openssh, true, true),
        (kex::DH_G14_SHA256, &ed25519, openssh, true, true),
        (kex::DH_GEX_SHA256, &ed25519, openssh, true, true),
        (kex::DH_GEX_SHA256, &ed25519, insisting, false, false),
        (kex::DH_G16_SHA512, &ed25519, openssh, false, false),
        (kex::DH_G18_SHA512, &ed25519, openssh, false, false),
        (kex::ECDH_SHA2_NISTP256, &ed25519, openssh, true, false),
        (kex::ECDH_SHA2_NISTP521, &ed25519, openssh, true, false),
        (kex::CURVE25519, &ecdsa, openssh, true, false),
    ];
    for (legacy, settings) in [(true, ""), (false, "legacy_algorithms = false")] {
        let env = Env::with_sftp_settings(settings);
        let server = env.start();
        for (kex, host_key, gex, by_default, without_legacy) in &cases {
            let want = if legacy { *by_default } else { *without_legacy };
            assert_eq!(
                handshake(server.port, *kex, host_key, *gex),
                want,
                "{} with host key {host_key} and groups {gex:?} (legacy_algorithms = {legacy})",
                kex.as_ref()
            );
        }
    }
}

#[test]
fn login_attempts_past_the_retention_are_deleted() {
    if !require(&[SSH_KEYGEN]) {
        return;
    }
    let (env, _key) = installation("attempts_retention = \"2s\"");
    let stranger = env.new_key("stranger");
    let mut server = env.start();
    block_on(Duration::from_secs(60), async {
        let refused = try_login_from(loopback(1), server.port, ACCOUNT, &stranger.private).await;
        assert!(matches!(refused, Ok(None)), "the stranger's key is refused");
    });
    assert_eq!(env.attempts(ACCOUNT).len(), 1);
    server.terminate(Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(2500));
    // Each node prunes at start, then hourly.
    let server = env.start();
    assert!(
        server
            .wait_log(
                &["deleted login attempts older than"],
                Duration::from_secs(20)
            )
            .is_some()
    );
    assert!(env.attempts(ACCOUNT).is_empty());
}
