//! The HTML pages against a real (SQLite) store, through tower's `oneshot`:
//! the page authorization matrix, CSRF, sessions (cookie flags, idle and
//! absolute expiry, sign-out), sign-in throttling, escaping and the CSP,
//! key refusals on the form, the setup link and the body cap.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use ferry_store::{KeyState, Role, SessionLimits, Store};
use ferry_web::{HostKey, Web, WebConfig};

/// The form a successful call of each POST page route needs.
fn form_for(method: &str, path: &str, csrf: &str) -> Vec<(&'static str, String)> {
    let mut form: Vec<(&'static str, String)> = match (method, path) {
        ("POST", "/accounts") => vec![("name", "gamma".into())],
        ("POST", "/accounts/{name}/enabled") => vec![("enabled", "false".into())],
        ("POST", "/accounts/{name}/limits") => vec![
            ("max_handles", "50".into()),
            ("max_file_size", "".into()),
            ("quota", "1GiB".into()),
        ],
        ("POST", "/accounts/{name}/keys") => vec![("keys", K2.into())],
        ("POST", "/accounts/{name}/keys/replace") => vec![("keys", format!("{K2}\n{K3}"))],
        ("POST", "/admins") => vec![
            ("username", "new-admin".into()),
            ("password", PASSWORD.into()),
            ("role", "district-admin".into()),
            ("account", "alpha".into()),
        ],
        ("POST", "/admins/{id}/password") => vec![("password", "a brand new passphrase".into())],
        ("POST", "/admins/{id}/enabled") => vec![("enabled", "false".into())],
        ("POST", "/tokens") => vec![
            ("role", "district-admin".into()),
            ("account", "alpha".into()),
        ],
        ("POST", "/penalties/lift") => vec![("source", "192.0.2.1".into())],
        ("POST", "/accounts/{name}/invitations") => vec![("email", "new@alpha.org".into())],
        _ => Vec::new(),
    };
    if method == "POST" {
        form.push(("csrf", csrf.to_owned()));
    }
    form
}

/// The concrete URI of a page route, aimed at account `alpha`.
fn uri_for(path: &str, f: &Fixture) -> String {
    let id = if path.starts_with("/admins/") {
        f.alpha_admin_id
    } else if path.starts_with("/tokens/") {
        f.alpha_token_id
    } else if path.contains("/uploads/") {
        f.held_upload_id
    } else if path.contains("/invitations/") {
        1 // made before the matrix runs
    } else {
        f.pending_key_id
    };
    path.replace("{name}", "alpha")
        .replace("{id}", &id.to_string())
}

fn vendor_only(path: &str) -> bool {
    path == "/accounts"
        || path.starts_with("/admins")
        || path.starts_with("/tokens")
        || path.starts_with("/penalties")
        || path.ends_with("/enabled")
        || path.ends_with("/limits")
        || path.ends_with("/activate")
        || path.contains("/invitations")
}

/// What each caller must get. Without a live session every page sends the
/// browser to sign in; an account or action the caller may not see is 404.
fn expected(method: &str, path: &str, caller: Caller) -> StatusCode {
    match caller {
        Caller::BadToken | Caller::NoCredentials => StatusCode::SEE_OTHER,
        _ if (method, path) == ("GET", "/accounts") => match caller {
            Caller::Vendor => StatusCode::OK,
            _ => StatusCode::SEE_OTHER, // to the district's own account
        },
        // Every admin has an overview: a district admin's shows its own row.
        _ if path == "/overview" => StatusCode::OK,
        Caller::OtherDistrict => StatusCode::NOT_FOUND,
        Caller::OwnDistrict if vendor_only(path) => StatusCode::NOT_FOUND,
        _ => match (method, path) {
            // Both show a secret once, in the answer, instead of redirecting.
            ("GET", _) | ("POST", "/tokens") | ("POST", "/accounts/{name}/invitations") => {
                StatusCode::OK
            }
            _ => StatusCode::SEE_OTHER,
        },
    }
}

#[tokio::test]
async fn page_authorization_matrix() {
    let mut rows = 0;
    let mut failures = Vec::new();
    let page_routes = ferry_web::page_routes();
    for &(method, path) in &page_routes {
        for caller in CALLERS {
            let f = fixture().await;
            // An open invitation of alpha, for the withdraw route.
            let (invitation, _) = f
                .store
                .create_invitation(
                    "alpha",
                    "someone@alpha.org",
                    &ferry_store::Actor::new("test"),
                )
                .await
                .unwrap();
            assert_eq!(invitation.id, 1);
            let session = match caller {
                Caller::Vendor => Some(f.vendor_session.clone()),
                Caller::OwnDistrict => Some(f.alpha_session.clone()),
                Caller::OtherDistrict => Some(f.beta_session.clone()),
                Caller::BadToken => Some("A".repeat(43)),
                Caller::NoCredentials => None,
            };
            let csrf = match &session {
                Some(s) if caller != Caller::BadToken => csrf_of(&f.app, s).await,
                _ => "no-session".to_owned(),
            };
            let form = form_for(method, path, &csrf);
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let uri = uri_for(path, &f);
            let answer = page(
                &f.app,
                method.parse().unwrap(),
                &uri,
                session.as_deref(),
                &form,
            )
            .await;
            let want = expected(method, path, caller);
            rows += 1;
            println!(
                "{method:5} {path:40} {caller:?}: {} (want {want})",
                answer.status
            );
            if answer.status != want {
                failures.push(format!(
                    "{method} {path} as {caller:?}: got {}, want {want}: {}",
                    answer.status, answer.text
                ));
            }
            if answer.status == StatusCode::SEE_OTHER {
                let to = answer.headers[header::LOCATION].to_str().unwrap();
                match caller {
                    Caller::BadToken | Caller::NoCredentials => assert_eq!(to, "/sign-in"),
                    Caller::OtherDistrict => assert_eq!(to, "/accounts/beta"),
                    _ => {}
                }
            }
            if answer.status == StatusCode::NOT_FOUND {
                // A 404 shows nothing of the account: not its district's
                // name, not its keys.
                assert!(
                    !answer.text.contains("Alpha USD") && !answer.text.contains("k1@test"),
                    "{method} {path} {caller:?}: {}",
                    answer.text
                );
            }
            if !answer.status.is_success() && answer.status != StatusCode::SEE_OTHER
                || matches!(
                    caller,
                    Caller::BadToken | Caller::NoCredentials | Caller::OtherDistrict
                )
            {
                // A refused caller changed nothing.
                let keys = f.store.keys("alpha").await.unwrap();
                assert_eq!(keys.len(), 1, "{method} {path} {caller:?}");
                assert_eq!(keys[0].state, KeyState::Pending);
                assert!(f.store.account("gamma").await.unwrap().is_none());
                assert!(f.store.account("alpha").await.unwrap().unwrap().enabled);
                assert_eq!(f.store.admins().await.unwrap().len(), 3);
                let held = f.store.upload(f.held_upload_id).await.unwrap().unwrap();
                assert_eq!(held.state, ferry_store::UploadState::Held);
                assert!(f.store.admins().await.unwrap().iter().all(|a| !a.disabled));
                assert_eq!(
                    f.store
                        .api_tokens()
                        .await
                        .unwrap()
                        .iter()
                        .filter(|t| t.revoked_at.is_none())
                        .count(),
                    3
                );
            }
        }
    }
    // Another district's account page is word for word a missing account's.
    let f = fixture().await;
    let foreign = page(
        &f.app,
        Method::GET,
        "/accounts/alpha",
        Some(&f.beta_session),
        &[],
    )
    .await;
    let missing = page(
        &f.app,
        Method::GET,
        "/accounts/nosuch",
        Some(&f.beta_session),
        &[],
    )
    .await;
    assert_eq!(foreign.status, missing.status);
    assert_eq!(foreign.text, missing.text.replace("nosuch", "alpha"));
    println!(
        "page authorization matrix: {rows} rows ({} routes x {} callers)",
        page_routes.len(),
        CALLERS.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(rows, page_routes.len() * CALLERS.len());
}

#[tokio::test]
async fn every_post_without_the_csrf_token_is_403_and_changes_nothing() {
    let f = fixture().await;
    let mut checked = 0;
    for (method, path) in ferry_web::page_routes()
        .into_iter()
        .filter(|(m, _)| *m == "POST")
    {
        for token in [None, Some("forged")] {
            let mut form = form_for(method, path, token.unwrap_or_default());
            if token.is_none() {
                form.retain(|(k, _)| *k != "csrf");
            }
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let answer = page(
                &f.app,
                Method::POST,
                &uri_for(path, &f),
                Some(&f.vendor_session),
                &form,
            )
            .await;
            assert_eq!(
                answer.status,
                StatusCode::FORBIDDEN,
                "{path} {token:?}: {}",
                answer.text
            );
            assert!(answer.text.contains("CSRF"), "{}", answer.text);
            checked += 1;
        }
    }
    println!("{checked} forged or token-less posts refused");
    assert_eq!(f.store.keys("alpha").await.unwrap().len(), 1);
    assert!(f.store.account("alpha").await.unwrap().unwrap().enabled);
    assert!(f.store.account("gamma").await.unwrap().is_none());

    // The sign-in form is tied to its pre-session cookie the same way.
    let answer = page(
        &f.app,
        Method::POST,
        "/sign-in",
        None,
        &[("username", "root"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    // The JSON API with a session cookie needs the token in X-CSRF-Token.
    let request = |csrf: Option<&str>| {
        let mut r = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/accounts/alpha/keys")
            .header(
                header::COOKIE,
                format!("ferry_session={}", f.vendor_session),
            );
        if let Some(csrf) = csrf {
            r = r.header("x-csrf-token", csrf);
        }
        r.body(Body::from(K2)).unwrap()
    };
    let answer = send(&f.app, request(None)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
    let csrf = csrf_of(&f.app, &f.vendor_session).await;
    let answer = send(&f.app, request(Some(&csrf))).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
}

/// Signs in through the form the way a browser does; returns the answer.
async fn sign_in(app: &axum::Router, username: &str, password: &str) -> Answer {
    let form = send(app, Request::get("/sign-in").body(Body::empty()).unwrap()).await;
    let cookie = form.headers[header::SET_COOKIE].to_str().unwrap();
    let presession = cookie.split(';').next().unwrap().to_owned();
    let csrf = csrf_in(&form.text);
    let body = format!(
        "csrf={}&username={}&password={}",
        urlencode(&csrf),
        urlencode(username),
        urlencode(password)
    );
    let request = Request::post("/sign-in")
        .header(header::COOKIE, presession)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    send(app, request).await
}

/// The `ferry_session` secret a sign-in answer set.
fn session_cookie(answer: &Answer) -> (String, String) {
    let line = answer
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("ferry_session="))
        .expect("a session cookie");
    let secret = line.split(';').next().unwrap()["ferry_session=".len()..].to_owned();
    (secret, line)
}

#[tokio::test]
async fn sign_in_sets_a_strict_httponly_cookie_and_sign_out_ends_the_session() {
    let f = fixture().await;
    let answer = sign_in(&f.app, "alpha-admin", PASSWORD).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    assert_eq!(answer.headers[header::LOCATION], "/accounts/alpha");
    let (secret, line) = session_cookie(&answer);
    assert!(
        line.contains("HttpOnly") && line.contains("SameSite=Strict"),
        "{line}"
    );
    assert!(!line.contains("Secure"), "http public_url: {line}");
    let home = page(&f.app, Method::GET, "/accounts/alpha", Some(&secret), &[]).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.text.contains("Sign out"));

    let csrf = csrf_in(&home.text);
    // Signing out is a change too: without the token it is refused.
    let forged = page(&f.app, Method::POST, "/sign-out", Some(&secret), &[]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(
        f.store
            .session(&secret, SessionLimits::default())
            .await
            .unwrap()
            .is_some()
    );
    let out = page(
        &f.app,
        Method::POST,
        "/sign-out",
        Some(&secret),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    // The old cookie no longer works: the session ended server-side.
    let after = page(&f.app, Method::GET, "/accounts/alpha", Some(&secret), &[]).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert_eq!(after.headers[header::LOCATION], "/sign-in");
    assert!(
        f.store
            .session(&secret, SessionLimits::default())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn the_cookie_is_secure_behind_https() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    let f = fixture_with(store, SessionLimits::default()).await;
    let app = ferry_web::router(WebConfig {
        store: f.store.clone(),
        host_keys: Vec::new(),
        sftp_host: "sftp.example.org".into(),
        sftp_port: 22,
        propagation_delay_ms: 0,
        key_policy: policy(),
        public_url: "https://sftp.example.org".into(),
        session_limits: SessionLimits::default(),
        metrics: None,
        mailer: None,
    });
    let answer = sign_in(&app, "root", PASSWORD).await;
    let (_, line) = session_cookie(&answer);
    assert!(line.contains("; Secure"), "{line}");
}

#[tokio::test]
async fn sessions_end_when_idle_and_when_old() {
    let idle = fixture_limited(SessionLimits {
        idle_ms: 300,
        absolute_ms: 60_000,
    })
    .await;
    let live = page(
        &idle.app,
        Method::GET,
        "/accounts",
        Some(&idle.vendor_session),
        &[],
    )
    .await;
    assert_eq!(live.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let gone = page(
        &idle.app,
        Method::GET,
        "/accounts",
        Some(&idle.vendor_session),
        &[],
    )
    .await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER, "idle past the limit");

    let old = fixture_limited(SessionLimits {
        idle_ms: 60_000,
        absolute_ms: 600,
    })
    .await;
    for _ in 0..3 {
        // Busy, but not forever.
        let live = page(
            &old.app,
            Method::GET,
            "/accounts",
            Some(&old.vendor_session),
            &[],
        )
        .await;
        assert_eq!(live.status, StatusCode::OK);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let gone = page(
        &old.app,
        Method::GET,
        "/accounts",
        Some(&old.vendor_session),
        &[],
    )
    .await;
    assert_eq!(
        gone.status,
        StatusCode::SEE_OTHER,
        "older than the absolute limit"
    );
}

#[tokio::test]
async fn sign_in_is_throttled_and_never_says_which_part_was_wrong() {
    let f = fixture().await;
    let wrong_user = sign_in(&f.app, "nobody", PASSWORD).await;
    let wrong_password = sign_in(&f.app, "beta-admin", "not the password at all").await;
    assert_eq!(wrong_user.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    let message = |a: &Answer| {
        let start = a.text.find("role=\"alert\"").expect("an alert");
        a.text[start..start + a.text[start..].find("</div>").unwrap()].to_owned()
    };
    assert_eq!(message(&wrong_user), message(&wrong_password));

    // Five failures for one user name: the right password is refused too.
    for _ in 0..5 {
        let answer = sign_in(&f.app, "root", "guess guess guess").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    let blocked = sign_in(&f.app, "root", PASSWORD).await;
    assert_eq!(
        blocked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        blocked.text
    );
    assert!(blocked.text.contains("Too many failed sign-ins"));
    assert!(
        blocked
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .all(|v| !v.to_str().unwrap().starts_with("ferry_session="))
    );
    // Another user from elsewhere is not affected by root's count.
    let other = sign_in(&f.app, "alpha-admin", PASSWORD).await;
    assert_eq!(other.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn user_supplied_text_is_escaped_and_the_csp_forbids_inline_script() {
    let f = fixture().await;
    let cli = ferry_store::Actor::new("cli:test");
    f.store
        .create_account("evil", Some("<script>alert('name')</script>"), false, &cli)
        .await
        .unwrap();
    let line = K3.replace("k3@test", "<script>alert('comment')</script>");
    f.store
        .add_keys("evil", &[new_key(&line)], 0, &cli)
        .await
        .unwrap();
    for uri in ["/accounts", "/accounts/evil", "/admins"] {
        let answer = page(&f.app, Method::GET, uri, Some(&f.vendor_session), &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{uri}");
        assert!(
            !answer.text.contains("<script>alert"),
            "{uri}: {}",
            answer.text
        );
        let csp = answer.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert!(csp.contains("default-src 'none'"), "{csp}");
    }
    let account = page(
        &f.app,
        Method::GET,
        "/accounts/evil",
        Some(&f.vendor_session),
        &[],
    )
    .await;
    assert!(
        account
            .text
            .contains("&lt;script&gt;alert('comment')&lt;/script&gt;")
    );
    assert!(
        account
            .text
            .contains("&lt;script&gt;alert('name')&lt;/script&gt;")
    );
    // The only script element is the site's own file.
    assert_eq!(account.text.matches("<script").count(), 1);
    assert!(account.text.contains("<script src=\"/static/ferry.js\""));
}

#[tokio::test]
async fn refused_key_lines_show_next_to_the_form_and_nothing_is_added() {
    let f = fixture().await;
    let csrf = csrf_of(&f.app, &f.alpha_session).await;
    let text = format!("{K2}\n{SHORT_RSA}\nnot a key at all\n");
    let answer = page(
        &f.app,
        Method::POST,
        "/accounts/alpha/keys",
        Some(&f.alpha_session),
        &[("keys", &text), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer.text.contains("no key was added"), "{}", answer.text);
    assert!(answer.text.contains("line 2"), "{}", answer.text);
    assert!(
        answer.text.contains("1024"),
        "the RSA key's size is named: {}",
        answer.text
    );
    assert!(answer.text.contains("line 3"), "{}", answer.text);
    assert_eq!(
        f.store.keys("alpha").await.unwrap().len(),
        1,
        "nothing half-applied"
    );

    // Sent as a file (multipart), the good key alone is added and pending.
    let boundary = "ferryboundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"keys\"\r\n\r\n\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"id_ed25519.pub\"\r\nContent-Type: application/octet-stream\r\n\r\n{K2}\n\r\n--{boundary}--\r\n"
    );
    let request = Request::post("/accounts/alpha/keys")
        .header(header::COOKIE, format!("ferry_session={}", f.alpha_session))
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .unwrap();
    let answer = send(&f.app, request).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    let keys = f.store.keys("alpha").await.unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| k.state == KeyState::Pending));
    let shown = page(
        &f.app,
        Method::GET,
        "/accounts/alpha?done=added",
        Some(&f.alpha_session),
        &[],
    )
    .await;
    assert!(shown.text.contains("Keys added"));
    assert!(shown.text.contains("countdown"));
}

#[tokio::test]
async fn forms_over_one_mib_are_refused() {
    let f = fixture().await;
    let csrf = csrf_of(&f.app, &f.alpha_session).await;
    let big = "#".repeat(ferry_web::MAX_BODY_BYTES + 1);
    let answer = page(
        &f.app,
        Method::POST,
        "/accounts/alpha/keys",
        Some(&f.alpha_session),
        &[("csrf", &csrf), ("keys", &big)],
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.text
    );
    assert_eq!(f.store.keys("alpha").await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_setup_link_creates_the_first_vendor_admin_once() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    let web = Web::new(WebConfig {
        store: store.clone(),
        host_keys: vec![HostKey {
            algorithm: "ssh-ed25519".into(),
            fingerprint: "SHA256:x".into(),
            openssh: K1.into(),
        }],
        sftp_host: String::new(),
        sftp_port: 2222,
        propagation_delay_ms: 0,
        key_policy: policy(),
        public_url: String::new(),
        session_limits: SessionLimits::default(),
        metrics: None,
        mailer: None,
    });
    let path = web
        .offer_setup_link()
        .await
        .unwrap()
        .expect("no admin yet: a link");
    let app = web.router();
    let wrong = page(&app, Method::GET, "/setup/not-the-secret", None, &[]).await;
    assert_eq!(wrong.status, StatusCode::NOT_FOUND);

    let form = send(&app, Request::get(&path).body(Body::empty()).unwrap()).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    let presession = form.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let post = |password: &str| {
        Request::post(&path)
            .header(header::COOKIE, presession.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!(
                "csrf={}&username=first&password={}",
                urlencode(&csrf_in(&form.text)),
                urlencode(password)
            )))
            .unwrap()
    };
    let short = send(&app, post("short")).await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        short.text.contains("at least 12 characters"),
        "{}",
        short.text
    );
    let created = send(&app, post(PASSWORD)).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text);
    let (secret, _) = session_cookie(&created);
    let admin = store.admin("first").await.unwrap().unwrap();
    assert_eq!(admin.role, Role::VendorAdmin);
    let accounts = page(&app, Method::GET, "/accounts", Some(&secret), &[]).await;
    assert_eq!(accounts.status, StatusCode::OK);
    // Used: it works no more, and no new link is offered.
    let again = send(&app, Request::get(&path).body(Body::empty()).unwrap()).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert!(web.offer_setup_link().await.unwrap().is_none());
}

#[tokio::test]
async fn vendor_admin_manages_admins_and_tokens_from_the_page() {
    let f = fixture().await;
    let csrf = csrf_of(&f.app, &f.vendor_session).await;
    let created = page(
        &f.app,
        Method::POST,
        "/tokens",
        Some(&f.vendor_session),
        &[
            ("csrf", &csrf),
            ("role", "district-admin"),
            ("account", "beta"),
        ],
    )
    .await;
    assert_eq!(created.status, StatusCode::OK);
    let start = created.text.find("id=\"new-token\">").unwrap() + "id=\"new-token\">".len();
    let secret = &created.text[start..start + created.text[start..].find('<').unwrap()];
    assert!(secret.starts_with("ferry_"));
    let token = f.store.api_token_by_secret(secret).await.unwrap().unwrap();
    assert_eq!(token.account.as_deref(), Some("beta"));
    // Shown once: the admins page does not show it again.
    let later = page(&f.app, Method::GET, "/admins", Some(&f.vendor_session), &[]).await;
    assert!(!later.text.contains(secret));

    // Disabling the alpha admin signs it out at once.
    let disabled = page(
        &f.app,
        Method::POST,
        &format!("/admins/{}/enabled", f.alpha_admin_id),
        Some(&f.vendor_session),
        &[("csrf", &csrf), ("enabled", "false")],
    )
    .await;
    assert_eq!(disabled.status, StatusCode::SEE_OTHER);
    let out = page(
        &f.app,
        Method::GET,
        "/accounts/alpha",
        Some(&f.alpha_session),
        &[],
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(
        sign_in(&f.app, "alpha-admin", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn client_text_shows_its_control_characters_as_escapes() {
    let f = fixture().await;
    f.store
        .record_auth_attempt(&ferry_store::NewAuthAttempt {
            account_name: "alpha".into(),
            client_addr: "127.0.0.9:5000".into(),
            client_banner: "SSH-2.0-evil\u{1b}[2J".into(),
            fingerprint: None,
            key_type: None,
            result: ferry_store::AuthResult::Refused,
            reason: "key not installed".into(),
        })
        .await
        .unwrap();
    f.store
        .record_upload(
            "alpha",
            "two\nlines.csv",
            3,
            ferry_store::UploadState::Partial,
            Some("the connection ended before the file was closed"),
        )
        .await
        .unwrap();
    let account = page(
        &f.app,
        Method::GET,
        "/accounts/alpha",
        Some(&f.vendor_session),
        &[],
    )
    .await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(
        account.text.contains("SSH-2.0-evil\\x1b[2J"),
        "{}",
        account.text
    );
    assert!(account.text.contains("two\\nlines.csv"));
    assert!(!account.text.contains('\u{1b}'));
    assert!(!account.text.contains("two\nlines"));
}

#[tokio::test]
async fn a_vendor_admin_sets_an_accounts_limits_on_its_page() {
    let f = fixture().await;
    let csrf = csrf_of(&f.app, &f.vendor_session).await;
    let form = |handles: &'static str, size: &'static str, quota: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("max_handles", handles.to_owned()),
            ("max_file_size", size.to_owned()),
            ("quota", quota.to_owned()),
        ]
    };
    let post = |fields: Vec<(&'static str, String)>| {
        let app = f.app.clone();
        let session = f.vendor_session.clone();
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            page(
                &app,
                Method::POST,
                "/accounts/alpha/limits",
                Some(&session),
                &fields,
            )
            .await
        }
    };
    let saved = post(form("50", "", "2GiB")).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);
    let limits = f.store.account("alpha").await.unwrap().unwrap().limits;
    assert_eq!(limits.max_handles, Some(50));
    assert_eq!(limits.max_file_size, None);
    assert_eq!(limits.quota, Some(2 << 30));
    let shown = page(
        &f.app,
        Method::GET,
        "/accounts/alpha",
        Some(&f.vendor_session),
        &[],
    )
    .await;
    assert!(
        shown
            .text
            .contains("Quota (/inbound plus uploads in progress): 2.0 GiB"),
        "{}",
        shown.text
    );
    assert!(shown.text.contains("name=\"quota\""));

    let refused = post(form("50", "huge", "")).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text.contains("max_file_size"), "{}", refused.text);
    assert_eq!(
        f.store.account("alpha").await.unwrap().unwrap().limits,
        limits
    );

    // A district admin sees the limits but no form.
    let own = page(
        &f.app,
        Method::GET,
        "/accounts/alpha",
        Some(&f.alpha_session),
        &[],
    )
    .await;
    assert!(own.text.contains("Largest file: the server's default"));
    assert!(!own.text.contains("name=\"quota\""));
}
