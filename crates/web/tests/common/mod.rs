//! The shared installation of the web tests: a real (SQLite) store with
//! accounts `alpha` (one pending key) and `beta`, a token and a signed-in
//! admin session for each kind of caller, and requests through tower's
//! `oneshot`.
#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use ferry_keys::KeyPolicy;
use ferry_store::{Actor, NewKey, Role, SessionLimits, Store};
use ferry_web::{HostKey, WebConfig};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub const K1: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN0dT4WOFiLJfa9kHP8Jwfzv0L9YS+2URatPEGnBIPe4 k1@test";
pub const K2: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOerZ8woMBQCS0SNTocAZ2s67JI984JuldiM4emaztzB k2@test";
pub const K3: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL+c0bofPM46sXdJ/OYcvnHHcJv0dcEkTLqly5xOfAH8 k3@test";
pub const SHORT_RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDNn9XxnKBsLcXL3sYDob1CHIEGD7Ka9hrA8ohYHb7LzQJcrr9z/iShWcNnI4G/6LyiJDXINm0HxBwvSZn/f++pXXG+9dJIYnUlx+L62Zt4S7vVkZPQoA2liDXDdwxIXuexlp7JfOAkXyTF4ZBxSun9aXY4rnZEuMkuWhrzcshr9w== short";

/// One installation: accounts `alpha` (with a pending key) and `beta`, and a
/// token for each kind of caller.
pub struct Fixture {
    pub store: Store,
    pub app: Router,
    pub vendor: String,
    pub alpha: String,
    pub beta: String,
    pub pending_key_id: i64,
    /// Session cookie secrets of admins `root` (vendor), `alpha-admin`, `beta-admin`.
    pub vendor_session: String,
    pub alpha_session: String,
    pub beta_session: String,
    /// Admin ids.
    pub alpha_admin_id: i64,
    /// The id of `alpha`'s API token.
    pub alpha_token_id: i64,
    /// An upload of `alpha` held by the roster guard.
    pub held_upload_id: i64,
}

/// The password of every fixture admin.
pub const PASSWORD: &str = "correct horse battery staple";

pub fn policy() -> KeyPolicy {
    KeyPolicy { min_rsa_bits: 2048 }
}

pub fn new_key(line: &str) -> NewKey {
    let findings = ferry_keys::parse_keys(line.as_bytes(), &policy()).expect("parse");
    NewKey::from_finding(&findings[0]).expect("accepted key")
}

pub async fn fixture_with(store: Store, limits: SessionLimits) -> Fixture {
    store.migrate().await.expect("migrate");
    let cli = Actor::new("cli:test");
    store
        .create_account("alpha", Some("Alpha USD"), false, &cli)
        .await
        .unwrap();
    store
        .create_account("beta", None, false, &cli)
        .await
        .unwrap();
    let added = store
        .add_keys("alpha", &[new_key(K1)], 600_000, &cli)
        .await
        .unwrap();
    let (_, vendor) = store
        .create_api_token(Role::VendorAdmin, None, &cli)
        .await
        .unwrap();
    let (alpha_token, alpha) = store
        .create_api_token(Role::DistrictAdmin, Some("alpha"), &cli)
        .await
        .unwrap();
    let (_, beta) = store
        .create_api_token(Role::DistrictAdmin, Some("beta"), &cli)
        .await
        .unwrap();
    let held_upload_id = match store
        .enqueue_finished(&ferry_store::SeenFile {
            account: "alpha".into(),
            name: "students.csv".into(),
            size: 20,
            mtime_ms: 1,
            inode: None,
        })
        .await
        .unwrap()
    {
        ferry_store::Enqueued::New(id) => id,
        other => panic!("{other:?}"),
    };
    store
        .finish_upload(
            held_upload_id,
            ferry_store::Finish {
                state: ferry_store::UploadState::Held,
                detail: "held for review: a header and no rows",
                report: None,
                archive_path: None,
            },
        )
        .await
        .unwrap();
    let mut sessions = Vec::new();
    for (user, role, account) in [
        ("root", Role::VendorAdmin, None),
        ("alpha-admin", Role::DistrictAdmin, Some("alpha")),
        ("beta-admin", Role::DistrictAdmin, Some("beta")),
    ] {
        let admin = store
            .create_admin(user, PASSWORD, role, account, &cli)
            .await
            .unwrap();
        let secret = store.start_session(&admin, None).await.unwrap();
        sessions.push((admin.id, secret));
    }
    let app = ferry_web::router(WebConfig {
        store: store.clone(),
        host_keys: vec![
            HostKey {
                algorithm: "ssh-ed25519".into(),
                fingerprint: "SHA256:test-ed".into(),
                openssh: K2.replace("k2@test", "host"),
            },
            HostKey {
                algorithm: "ssh-rsa".into(),
                fingerprint: "SHA256:test-rsa".into(),
                openssh: SHORT_RSA.replace("short", "host"),
            },
        ],
        sftp_host: "sftp.example.org".into(),
        sftp_port: 2222,
        propagation_delay_ms: 600_000,
        key_policy: policy(),
        public_url: "http://127.0.0.1:8080".into(),
        session_limits: limits,
        metrics: Some(
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .build_recorder()
                .handle(),
        ),
        mailer: None,
    });
    Fixture {
        store,
        app,
        vendor,
        alpha,
        beta,
        pending_key_id: added[0].key.id,
        vendor_session: sessions[0].1.clone(),
        alpha_session: sessions[1].1.clone(),
        beta_session: sessions[2].1.clone(),
        alpha_admin_id: sessions[1].0,
        alpha_token_id: alpha_token.id,
        held_upload_id,
    }
}

pub async fn fixture() -> Fixture {
    fixture_limited(SessionLimits::default()).await
}

/// A fixture whose sessions live `limits`.
pub async fn fixture_limited(limits: SessionLimits) -> Fixture {
    fixture_with(
        Store::connect("sqlite::memory:").await.expect("connect"),
        limits,
    )
    .await
}

pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub headers: axum::http::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

pub async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    send(app, request.body(Body::from(body)).unwrap()).await
}

/// Sends any request.
pub async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        content_type,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Caller {
    Vendor,
    OwnDistrict,
    OtherDistrict,
    BadToken,
    NoCredentials,
}

pub const CALLERS: [Caller; 5] = [
    Caller::Vendor,
    Caller::OwnDistrict,
    Caller::OtherDistrict,
    Caller::BadToken,
    Caller::NoCredentials,
];

/// A browser-like request: the session cookie (if any) and, for a form, a
/// URL-encoded body.
pub async fn page(
    app: &Router,
    method: Method,
    uri: &str,
    session: Option<&str>,
    form: &[(&str, &str)],
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(secret) = session {
        request = request.header(header::COOKIE, format!("ferry_session={secret}"));
    }
    let body = if form.is_empty() {
        Body::empty()
    } else {
        request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        Body::from(
            form.iter()
                .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
                .collect::<Vec<_>>()
                .join("&"),
        )
    };
    send(app, request.body(body).unwrap()).await
}

/// Percent-encodes a form value.
pub fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The CSRF token in a page's forms.
pub fn csrf_in(html: &str) -> String {
    let start = html
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF field in: {html}"))
        + "name=\"csrf\" value=\"".len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// The CSRF token of a signed-in session, read from its landing page the
/// way a browser gets it.
pub async fn csrf_of(app: &Router, session: &str) -> String {
    let answer = page(app, Method::GET, "/accounts", Some(session), &[]).await;
    let answer = if answer.status == StatusCode::SEE_OTHER {
        let to = answer.headers[header::LOCATION]
            .to_str()
            .unwrap()
            .to_owned();
        page(app, Method::GET, &to, Some(session), &[]).await
    } else {
        answer
    };
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    csrf_in(&answer.text)
}
