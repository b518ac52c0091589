//! The admin web's limits against a real `ferry serve`, with clients on
//! several 127.0.0.x addresses: half-sent requests and idle connections are
//! capped and closed by the header timeout while the sign-in page still
//! answers; slow requests end at the request timeout; parallel wrong
//! sign-ins get at most five passwords checked; and only a trusted proxy
//! may name the client's address.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

const PASSWORD: &str = "correct horse battery staple";

/// An installation with the web on, `extra_web` lines in `[web]`, and a
/// vendor admin `root`.
fn web_env(extra_web: &str) -> Env {
    let env = Env::new();
    env.enable_web();
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = text.replace("[web]\n", &format!("[web]\n{extra_web}\n"));
    std::fs::write(&env.config, text).unwrap();
    env.ferry_stdin(
        &["admin", "create", "root", "--role", "vendor-admin"],
        PASSWORD.as_bytes(),
    )
    .assert_success();
    env
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n\r\n")
}

/// The sign-in form's pre-session cookie and CSRF token.
fn sign_in_form(web: u16) -> (String, String) {
    let (status, page) = http_from(loopback(1), web, &get("/sign-in"));
    assert_eq!(status, 200, "{page}");
    let cookie = page
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: ferry_presession="))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no pre-session cookie: {page}"))
        .to_owned();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no CSRF field: {page}"))
        .to_owned();
    (cookie, csrf)
}

/// Posts the sign-in form from `from` with `headers`; returns the status.
fn sign_in(
    from: u8,
    web: u16,
    form: &(String, String),
    user: &str,
    password: &str,
    headers: &str,
) -> u16 {
    let body = format!(
        "csrf={}&username={user}&password={}",
        form.1,
        password.replace(' ', "+")
    );
    let request = format!(
        "POST /sign-in HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nCookie: ferry_presession={}\r\n\
         {headers}Content-Length: {}\r\n\r\n{body}",
        form.0,
        body.len()
    );
    http_from(loopback(from), web, &request).0
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Waits up to `timeout` for the server to close `stream`; how long it took.
fn closed_within(stream: &mut TcpStream, timeout: Duration) -> Option<Duration> {
    let started = Instant::now();
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(started.elapsed());
            }
            Err(_) => return None,
        }
    }
}

/// `count` requests whose headers never end, spread over `sources`
/// addresses from 127.0.0.2 on.
fn half_sent_requests(web: u16, count: usize, sources: usize) -> Vec<TcpStream> {
    (0..count)
        .map(|n| {
            let mut stream = tcp_from(loopback(2 + (n % sources) as u8), web).expect("connect");
            let _ = stream.write_all(b"GET /sign-in HTTP/1.1\r\nHost: ferry\r\nX-Never-Ends: ");
            stream
        })
        .collect()
}

#[test]
fn half_sent_requests_do_not_starve_the_sign_in_page_and_are_closed_by_the_timeout() {
    let env = web_env("header_timeout = \"2s\"\nrequest_timeout = \"3s\"");
    let server = env.start();
    let web = server.web_port();
    let descriptors_before = open_descriptors(server.pid());

    // 600 requests whose headers never end, from 6 sources.
    let mut half_sent = half_sent_requests(web, 600, 6);
    // The sign-in page still answers, at once, from another address.
    let started = Instant::now();
    let (status, page) = http_from(loopback(1), web, &get("/sign-in"));
    let sign_in_took = started.elapsed();
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("csrf"), "{page}");
    let descriptors_during = open_descriptors(server.pid());
    assert!(
        descriptors_during < descriptors_before + 256 + 16,
        "{descriptors_during} descriptors open (were {descriptors_before})"
    );

    // Every one of them is closed by the server: at once past the
    // per-address cap, the rest when the 2 s header timeout ends.
    let mut longest = Duration::ZERO;
    for stream in &mut half_sent {
        let took = closed_within(stream, Duration::from_secs(10))
            .expect("a half-sent request was still open after 10 s");
        longest = longest.max(took);
    }
    println!(
        "600 half-sent requests: the sign-in page answered in {sign_in_took:?}; server descriptors {descriptors_before} -> {descriptors_during}; all closed, the last after {longest:?}"
    );

    // A kept-alive connection that goes quiet after its answer is closed too.
    let mut idle = tcp_from(loopback(8), web).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: ferry\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let n = idle.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 "),
        "an answer first"
    );
    let idle_for = closed_within(&mut idle, Duration::from_secs(10))
        .expect("an idle kept-alive connection stayed open");
    assert!(
        idle_for >= Duration::from_secs(1),
        "closed too early: {idle_for:?}"
    );

    // A request whose body never comes is answered 408 at the request timeout.
    let mut slow = tcp_from(loopback(8), web).unwrap();
    slow.write_all(
        b"POST /sign-in HTTP/1.1\r\nHost: ferry\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\ncsrf=",
    )
    .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = slow.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[test]
fn forty_parallel_wrong_sign_ins_get_at_most_five_passwords_checked() {
    let env = web_env("");
    let server = env.start();
    let web = server.web_port();
    let form = sign_in_form(web);
    let checked_before = metric_value(web, "ferry_admin_password_checks_total");
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let tasks: Vec<_> = (0..40)
            .map(|n| {
                let form = &form;
                scope.spawn(move || {
                    sign_in(
                        10 + (n % 20) as u8,
                        web,
                        form,
                        "root",
                        &format!("guess {n}"),
                        "",
                    )
                })
            })
            .collect();
        tasks.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let checked = metric_value(web, "ferry_admin_password_checks_total") - checked_before;
    let refused = statuses.iter().filter(|&&s| s == 401).count();
    let throttled = statuses.iter().filter(|&&s| s == 429).count();
    println!(
        "40 parallel wrong sign-ins: {checked} passwords checked, {refused} refused, {throttled} throttled"
    );
    assert_eq!(refused + throttled, 40, "{statuses:?}");
    assert!(
        (1.0..=5.0).contains(&checked),
        "{checked} passwords were checked"
    );
    assert_eq!(refused as f64, checked, "{statuses:?}");
    // The right password is refused too until the window has passed.
    assert_eq!(sign_in(30, web, &form, "root", PASSWORD, ""), 429);
}

#[test]
fn only_a_trusted_proxy_names_the_client_address() {
    let env = web_env("trusted_proxies = [\"127.0.0.9/32\"]");
    let server = env.start();
    let web = server.web_port();
    let form = sign_in_form(web);

    // From an untrusted peer, forged headers change nothing: 20 failures
    // (as many user names) claiming 20 addresses all count against the peer.
    for n in 0..20 {
        let forged = format!("X-Forwarded-For: 203.0.113.{n}\r\nForwarded: for=203.0.113.{n}\r\n");
        assert_eq!(
            sign_in(5, web, &form, &format!("u{n}"), "wrong", &forged),
            401
        );
    }
    let forged = "X-Forwarded-For: 203.0.113.99\r\n";
    assert_eq!(
        sign_in(5, web, &form, "fresh", "wrong", forged),
        429,
        "the peer is throttled"
    );
    assert_eq!(
        sign_in(6, web, &form, "fresh", "wrong", ""),
        401,
        "another peer is not"
    );
    assert!(
        server
            .wait_log(
                &["sign-in refused", "client=127.0.0.5"],
                Duration::from_secs(5)
            )
            .is_some()
    );
    assert!(
        !server.log_text().contains("203.0.113."),
        "a forged address reached the log"
    );

    // Behind the trusted proxy, each client is told apart by the header.
    let client = "X-Forwarded-For: 1.2.3.4, 198.51.100.7\r\n";
    for n in 0..20 {
        assert_eq!(
            sign_in(9, web, &form, &format!("v{n}"), "wrong", client),
            401
        );
    }
    assert_eq!(sign_in(9, web, &form, "fresh2", "wrong", client), 429);
    let other = "Forwarded: for=\"[2001:db8::8]:4711\";proto=https\r\n";
    assert_eq!(sign_in(9, web, &form, "fresh2", "wrong", other), 401);
    assert_eq!(
        sign_in(9, web, &form, "fresh2", "wrong", ""),
        401,
        "the proxy itself"
    );
    assert!(
        server
            .wait_log(
                &["sign-in refused", "client=198.51.100.7"],
                Duration::from_secs(5)
            )
            .is_some()
    );
    assert!(
        server
            .wait_log(
                &["sign-in refused", "client=2001:db8::8"],
                Duration::from_secs(5)
            )
            .is_some()
    );
    // A right password through the proxy signs in and records the client.
    assert_eq!(
        sign_in(
            9,
            web,
            &form,
            "root",
            PASSWORD,
            "X-Forwarded-For: 198.51.100.20\r\n"
        ),
        303
    );
}

#[test]
fn past_the_connection_cap_new_connections_wait_for_a_free_slot() {
    let env = web_env("max_connections = 20\nheader_timeout = \"2s\"");
    let server = env.start();
    let web = server.web_port();
    let descriptors_before = open_descriptors(server.pid());
    // 40 half-sent requests from 4 sources (10 each: under the per-address
    // cap); only 20 are taken on, the rest wait in the kernel's queue.
    let _half_sent = half_sent_requests(web, 40, 4);
    std::thread::sleep(Duration::from_millis(500));
    let descriptors_during = open_descriptors(server.pid());
    assert!(
        descriptors_during <= descriptors_before + 20 + 4,
        "{descriptors_during} descriptors open (were {descriptors_before})"
    );
    // The sign-in page waits for a slot: the header timeout frees them.
    let started = Instant::now();
    let (status, _) = http_from(loopback(1), web, &get("/sign-in"));
    let waited = started.elapsed();
    assert_eq!(status, 200);
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    println!(
        "connection cap 20: server descriptors {descriptors_before} -> {descriptors_during} with 40 half-sent requests; the sign-in page answered after {waited:?}"
    );
}
