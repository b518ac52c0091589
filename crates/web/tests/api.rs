//! The JSON API against a real (SQLite) store, through tower's `oneshot`:
//! the authorization matrix, key refusals, all-or-nothing, body limits,
//! token storage and the OpenAPI document's completeness.

mod common;

use axum::http::{Method, StatusCode, header};
use common::*;
use ferry_store::{Actor, Role, SessionLimits, Store};

/// A concrete request for every route of the router, aimed at account
/// `alpha`, with the body a successful call needs.
fn request_for(method: &str, path: &str, f: &Fixture) -> (Method, String, Vec<u8>) {
    let id = if path.contains("/uploads/") {
        f.held_upload_id
    } else {
        f.pending_key_id
    };
    let uri = path
        .replace("{name}", "alpha")
        .replace("{id}", &id.to_string());
    let body: Vec<u8> = match (method, path) {
        ("POST", "/api/v1/accounts") => br#"{"name": "gamma", "display_name": "Gamma"}"#.to_vec(),
        ("PATCH", _) => br#"{"enabled": false}"#.to_vec(),
        ("POST", "/api/v1/accounts/{name}/keys") => K2.as_bytes().to_vec(),
        ("PUT", _) => format!("{K2}\n{K3}\n").into_bytes(),
        ("POST", "/api/v1/import/accounts") => b"name,display_name\ndelta,Delta\n".to_vec(),
        _ => Vec::new(),
    };
    (method.parse().unwrap(), uri, body)
}

fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/healthz"
            | "/livez"
            | "/metrics"
            | "/host-key.pub"
            | "/api/v1/openapi.json"
            | "/api/v1/host-keys"
    )
}

fn vendor_only(method: &str, path: &str) -> bool {
    matches!(
        (method, path),
        ("POST", "/api/v1/accounts")
            | ("PATCH", "/api/v1/accounts/{name}")
            | ("POST", "/api/v1/accounts/{name}/keys/{id}/activate")
            | ("POST", "/api/v1/import/accounts")
    )
}

fn expected(method: &str, path: &str, caller: Caller) -> StatusCode {
    if is_public(path) {
        return StatusCode::OK;
    }
    match caller {
        Caller::BadToken | Caller::NoCredentials => StatusCode::UNAUTHORIZED,
        Caller::OtherDistrict => {
            if (path == "/api/v1/accounts" || path == "/api/v1/overview") && method == "GET" {
                StatusCode::OK // lists only its own account (checked below)
            } else {
                StatusCode::NOT_FOUND
            }
        }
        Caller::OwnDistrict if vendor_only(method, path) => StatusCode::NOT_FOUND,
        Caller::Vendor | Caller::OwnDistrict => match (method, path) {
            ("POST", "/api/v1/accounts") | ("POST", "/api/v1/accounts/{name}/keys") => {
                StatusCode::CREATED
            }
            _ => StatusCode::OK,
        },
    }
}

#[tokio::test]
async fn authorization_matrix() {
    let routes = ferry_web::api_routes();
    let mut rows = 0;
    let mut failures = Vec::new();
    for &(method, path) in &routes {
        for caller in CALLERS {
            // A fresh installation per cell: earlier calls change nothing here.
            let f = fixture().await;
            let token = match caller {
                Caller::Vendor => Some(f.vendor.clone()),
                Caller::OwnDistrict => Some(f.alpha.clone()),
                Caller::OtherDistrict => Some(f.beta.clone()),
                Caller::BadToken => Some(format!("ferry_{}", "A".repeat(43))),
                Caller::NoCredentials => None,
            };
            let (m, uri, body) = request_for(method, path, &f);
            let answer = call(&f.app, m, &uri, token.as_deref(), body).await;
            let want = expected(method, path, caller);
            rows += 1;
            println!(
                "{method:6} {path:50} {caller:?}: {} (want {want})",
                answer.status
            );
            if answer.status != want {
                failures.push(format!(
                    "{method} {path} as {caller:?}: got {}, want {want}: {}",
                    answer.status, answer.text
                ));
            }
            if answer.status == StatusCode::UNAUTHORIZED {
                assert!(answer.headers.contains_key(header::WWW_AUTHENTICATE));
                assert!(answer.json()["error"].as_str().unwrap().contains("Bearer"));
            }
            if answer.status == StatusCode::NOT_FOUND {
                // The other district's 404 is the same answer as for an
                // account that does not exist: it does not mention alpha exists.
                assert!(answer.json()["error"].is_string(), "{}", answer.text);
            }
            if method == "GET" && path == "/api/v1/accounts" && answer.status == StatusCode::OK {
                let names: Vec<String> = answer.json()["accounts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["name"].as_str().unwrap().to_owned())
                    .collect();
                let want_names: Vec<&str> = match caller {
                    Caller::Vendor => vec!["alpha", "beta"],
                    Caller::OwnDistrict => vec!["alpha"],
                    _ => vec!["beta"],
                };
                assert_eq!(names, want_names, "{caller:?}");
            }
            // A refused caller changed nothing.
            if !answer.status.is_success() && !is_public(path) {
                let keys = f.store.keys("alpha").await.unwrap();
                assert_eq!(keys.len(), 1, "{method} {path} {caller:?}");
                assert_eq!(keys[0].state, ferry_store::KeyState::Pending);
                assert!(f.store.account("gamma").await.unwrap().is_none());
                assert!(f.store.account("alpha").await.unwrap().unwrap().enabled);
                let held = f.store.upload(f.held_upload_id).await.unwrap().unwrap();
                assert_eq!(held.state, ferry_store::UploadState::Held);
            }
        }
    }
    println!(
        "authorization matrix: {rows} rows ({} routes x {} callers)",
        routes.len(),
        CALLERS.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(rows, routes.len() * CALLERS.len());
}

#[tokio::test]
async fn unknown_account_and_foreign_account_answer_alike() {
    let f = fixture().await;
    let foreign = call(
        &f.app,
        Method::GET,
        "/api/v1/accounts/alpha/keys",
        Some(&f.beta),
        vec![],
    )
    .await;
    let vendor_unknown = call(
        &f.app,
        Method::GET,
        "/api/v1/accounts/nosuch/keys",
        Some(&f.vendor),
        vec![],
    )
    .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    assert_eq!(vendor_unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(
        foreign.text.replace("alpha", "X"),
        vendor_unknown.text.replace("nosuch", "X")
    );
}

#[tokio::test]
async fn refused_lines_are_422_with_details_and_nothing_is_applied() {
    let f = fixture().await;
    let body = format!("{K2}\n{SHORT_RSA}\nnot a key at all\n{K3}\n");
    for (method, uri) in [
        (Method::POST, "/api/v1/accounts/alpha/keys"),
        (Method::PUT, "/api/v1/accounts/alpha/authorized_keys"),
    ] {
        let answer = call(
            &f.app,
            method.clone(),
            uri,
            Some(&f.alpha),
            body.clone().into_bytes(),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            answer.text
        );
        let json = answer.json();
        assert!(
            json["error"].as_str().unwrap().contains("no key was added"),
            "{json}"
        );
        let details: Vec<&str> = json["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        assert_eq!(details.len(), 2, "{details:?}");
        assert!(details[0].starts_with("line 2: "), "{details:?}");
        assert!(details[0].contains("2048"), "{details:?}");
        assert!(details[1].starts_with("line 3: "), "{details:?}");
        // Nothing half-applied: only the fixture's pending key.
        let keys = f.store.keys("alpha").await.unwrap();
        assert_eq!(keys.len(), 1, "{method} {uri}");
        assert_eq!(keys[0].comment, "k1@test");
    }
    // Input refused as a whole (empty) is a 422 too.
    let empty = call(
        &f.app,
        Method::POST,
        "/api/v1/accounts/alpha/keys",
        Some(&f.alpha),
        b"  \n".to_vec(),
    )
    .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(empty.json()["error"].as_str().unwrap().contains("empty"));
}

#[tokio::test]
async fn keys_add_list_replace_revoke_activate() {
    let f = fixture().await;
    let added = call(
        &f.app,
        Method::POST,
        "/api/v1/accounts/alpha/keys",
        Some(&f.alpha),
        K2.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let outcome = &added.json()["keys"][0];
    assert_eq!(outcome["status"], "added");
    assert_eq!(outcome["state"], "pending");
    for field in [
        "id",
        "fingerprint",
        "type",
        "bits",
        "comment",
        "options",
        "state",
        "effective_at",
        "added_by",
        "last_used_at",
    ] {
        assert!(outcome.get(field).is_some(), "missing {field}: {outcome}");
    }
    assert!(outcome["added_by"].as_str().unwrap().starts_with("token:"));
    let k2_id = outcome["id"].as_i64().unwrap();

    let listed = call(
        &f.app,
        Method::GET,
        "/api/v1/accounts/alpha/keys",
        Some(&f.vendor),
        vec![],
    )
    .await;
    assert_eq!(listed.json()["keys"].as_array().unwrap().len(), 2);

    // Nothing active yet: the authorized_keys text is empty.
    let ak = call(
        &f.app,
        Method::GET,
        "/api/v1/accounts/alpha/authorized_keys",
        Some(&f.alpha),
        vec![],
    )
    .await;
    assert_eq!(ak.status, StatusCode::OK);
    assert!(ak.content_type.starts_with("text/plain"));
    assert_eq!(ak.text, "");

    // The district cannot activate; the vendor can.
    let uri = format!("/api/v1/accounts/alpha/keys/{k2_id}/activate");
    assert_eq!(
        call(&f.app, Method::POST, &uri, Some(&f.alpha), vec![])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let activated = call(&f.app, Method::POST, &uri, Some(&f.vendor), vec![]).await;
    assert_eq!(activated.status, StatusCode::OK, "{}", activated.text);
    assert_eq!(activated.json()["state"], "active");
    let again = call(&f.app, Method::POST, &uri, Some(&f.vendor), vec![]).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let ak = call(
        &f.app,
        Method::GET,
        "/api/v1/accounts/alpha/authorized_keys",
        Some(&f.alpha),
        vec![],
    )
    .await;
    assert_eq!(ak.text, format!("{K2}\n"));

    // Replace the set with K3: K2 retires when K3 activates.
    let replaced = call(
        &f.app,
        Method::PUT,
        "/api/v1/accounts/alpha/authorized_keys",
        Some(&f.alpha),
        K3.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text);
    let statuses: Vec<String> = replaced.json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            format!(
                "{} {}",
                k["comment"].as_str().unwrap(),
                k["status"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        statuses.contains(&"k3@test added".to_owned()),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&"k2@test retiring".to_owned()),
        "{statuses:?}"
    );

    // Revoke K2 now.
    let revoked = call(
        &f.app,
        Method::DELETE,
        &format!("/api/v1/accounts/alpha/keys/{k2_id}"),
        Some(&f.alpha),
        vec![],
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    assert_eq!(revoked.json()["state"], "revoked");
    let missing = call(
        &f.app,
        Method::DELETE,
        "/api/v1/accounts/alpha/keys/99999",
        Some(&f.alpha),
        vec![],
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // Every change is in the audit log under the token.
    let audit = f.store.audit_events(Some("alpha"), 50).await.unwrap();
    for action in ["key.add", "key.activate", "key.revoke"] {
        assert!(
            audit
                .iter()
                .any(|e| e.action == action && e.actor.starts_with("token:")),
            "no {action} by a token in {audit:?}"
        );
    }
}

#[tokio::test]
async fn accounts_create_patch_and_history_routes() {
    let f = fixture().await;
    let created = call(
        &f.app,
        Method::POST,
        "/api/v1/accounts",
        Some(&f.vendor),
        br#"{"name":"gamma"}"#.to_vec(),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.json()["name"], "gamma");
    let dup = call(
        &f.app,
        Method::POST,
        "/api/v1/accounts",
        Some(&f.vendor),
        br#"{"name":"gamma"}"#.to_vec(),
    )
    .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    let bad = call(
        &f.app,
        Method::POST,
        "/api/v1/accounts",
        Some(&f.vendor),
        br#"{"name":"Bad Name"}"#.to_vec(),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let garbage = call(
        &f.app,
        Method::POST,
        "/api/v1/accounts",
        Some(&f.vendor),
        b"{".to_vec(),
    )
    .await;
    assert_eq!(garbage.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        garbage.json()["error"]
            .as_str()
            .unwrap()
            .contains("send for example")
    );

    let patched = call(
        &f.app,
        Method::PATCH,
        "/api/v1/accounts/gamma",
        Some(&f.vendor),
        br#"{"enabled":false}"#.to_vec(),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(patched.json()["enabled"], false);

    f.store
        .record_upload(
            "alpha",
            "inbound/students.csv",
            10,
            ferry_store::UploadState::Received,
            None,
        )
        .await
        .unwrap();
    let uploads = call(
        &f.app,
        Method::GET,
        "/api/v1/accounts/alpha/uploads",
        Some(&f.alpha),
        vec![],
    )
    .await;
    assert_eq!(uploads.json()["uploads"][0]["name"], "inbound/students.csv");
    let attempts = call(
        &f.app,
        Method::GET,
        "/api/v1/accounts/alpha/auth-attempts?limit=5",
        Some(&f.alpha),
        vec![],
    )
    .await;
    assert_eq!(attempts.status, StatusCode::OK);
    assert!(attempts.json()["attempts"].is_array());
}

#[tokio::test]
async fn host_keys_and_pub_download() {
    let f = fixture().await;
    let keys = call(&f.app, Method::GET, "/api/v1/host-keys", None, vec![]).await;
    let json = keys.json();
    assert_eq!(json["keys"][0]["fingerprint"], "SHA256:test-ed");
    assert!(
        json["keys"][0]["known_hosts"]
            .as_str()
            .unwrap()
            .starts_with("[sftp.example.org]:2222 ssh-ed25519 AAAA"),
        "{json}"
    );
    let pubkey = call(&f.app, Method::GET, "/host-key.pub", None, vec![]).await;
    assert_eq!(pubkey.status, StatusCode::OK);
    assert!(pubkey.content_type.starts_with("text/plain"));
    assert!(
        pubkey.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    assert!(pubkey.text.starts_with("ssh-ed25519 "));
    let rsa = call(&f.app, Method::GET, "/host-key.pub?type=rsa", None, vec![]).await;
    assert!(rsa.text.starts_with("ssh-rsa "));
    let ecdsa = call(
        &f.app,
        Method::GET,
        "/host-key.pub?type=ecdsa",
        None,
        vec![],
    )
    .await;
    assert_eq!(ecdsa.status, StatusCode::NOT_FOUND); // this fixture has none
    let dsa = call(&f.app, Method::GET, "/host-key.pub?type=dsa", None, vec![]).await;
    assert_eq!(dsa.status, StatusCode::NOT_FOUND);
    assert!(
        dsa.json()["error"]
            .as_str()
            .unwrap()
            .contains("ecdsa or rsa")
    );
}

#[tokio::test]
async fn bodies_over_one_mib_are_refused() {
    let f = fixture().await;
    let mut body = format!("{K2}\n").into_bytes();
    body.resize(ferry_web::MAX_BODY_BYTES + 1, b'#');
    let answer = call(
        &f.app,
        Method::POST,
        "/api/v1/accounts/alpha/keys",
        Some(&f.alpha),
        body,
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.text
    );
    assert!(answer.json()["error"].as_str().unwrap().contains("1 MiB"));
    assert_eq!(f.store.keys("alpha").await.unwrap().len(), 1);
}

#[tokio::test]
async fn revoked_token_is_refused() {
    let f = fixture().await;
    let token = f
        .store
        .api_token_by_secret(&f.alpha)
        .await
        .unwrap()
        .unwrap();
    f.store
        .revoke_api_token(token.id, &Actor::new("cli:test"))
        .await
        .unwrap();
    let answer = call(
        &f.app,
        Method::GET,
        "/api/v1/accounts",
        Some(&f.alpha),
        vec![],
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let audit = f.store.audit_events(Some("alpha"), 50).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "token.revoke"));
    assert!(audit.iter().any(|e| e.action == "token.create"));
}

#[tokio::test]
async fn tokens_are_stored_hashed_and_compared_in_constant_time() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/ferry.db", dir.path().display());
    let f = fixture_with(
        Store::connect(&url).await.unwrap(),
        SessionLimits::default(),
    )
    .await;
    // The token works…
    let answer = call(
        &f.app,
        Method::GET,
        "/api/v1/accounts",
        Some(&f.vendor),
        vec![],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(f.vendor.starts_with("ferry_") && f.vendor.len() == 6 + 43);
    // …its hash is in the database, and the secret is in no file of it.
    let hash = ferry_store::token_hash(&f.vendor);
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM api_tokens")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(stored.contains(&hash));
    pool.close().await;
    f.store.close().await;
    let mut searched = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        searched += 1;
        for secret in [&f.vendor, &f.alpha, &f.beta] {
            let body = secret.trim_start_matches("ferry_").as_bytes();
            assert!(
                !bytes.windows(body.len()).any(|w| w == body),
                "a token secret is stored in clear"
            );
        }
    }
    assert!(searched >= 1);

    // The comparison is subtle's constant-time equality, on the lookup path.
    assert!(ferry_store::token_hashes_match(
        &hash,
        &ferry_store::token_hash(&f.vendor)
    ));
    assert!(!ferry_store::token_hashes_match(
        &hash,
        &ferry_store::token_hash(&f.alpha)
    ));
    let source = include_str!("../../store/src/admins.rs");
    let compare = &source[source.find("pub fn token_hashes_match").unwrap()..];
    assert!(compare[..compare.find('}').unwrap()].contains(".ct_eq("));
    let lookup = &source[source.find("pub async fn api_token_by_secret").unwrap()..];
    let lookup = &lookup[..lookup
        .find("pub async fn")
        .map_or(lookup.len(), |_| lookup[1..].find("pub async fn").unwrap())];
    assert!(lookup.contains("token_hashes_match(&stored, &hash)"));
}

#[tokio::test]
async fn admins_are_hashed_with_argon2id() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/ferry.db", dir.path().display());
    let f = fixture_with(
        Store::connect(&url).await.unwrap(),
        SessionLimits::default(),
    )
    .await;
    let actor = Actor::new("cli:test");
    let password = "correct horse battery staple";
    let admin = f
        .store
        .create_admin(
            "it@alpha",
            password,
            Role::DistrictAdmin,
            Some("alpha"),
            &actor,
        )
        .await
        .unwrap();
    assert_eq!(admin.account.as_deref(), Some("alpha"));
    assert!(
        f.store
            .verify_admin_password("it@alpha", password)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        f.store
            .verify_admin_password("it@alpha", "wrong password!!")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        f.store
            .verify_admin_password("nobody", password)
            .await
            .unwrap()
            .is_none()
    );
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let stored: String = sqlx::query_scalar("SELECT password_hash FROM admins")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    assert!(!stored.contains(password));
    // Rules: unique names, bound district admins, unbound vendor admins, long passwords.
    let err = f
        .store
        .create_admin("it@alpha", password, Role::VendorAdmin, None, &actor)
        .await
        .unwrap_err();
    assert!(matches!(err, ferry_store::StoreError::AdminExists { .. }));
    assert!(
        f.store
            .create_admin("v", password, Role::VendorAdmin, Some("alpha"), &actor)
            .await
            .is_err()
    );
    assert!(
        f.store
            .create_admin("d", password, Role::DistrictAdmin, None, &actor)
            .await
            .is_err()
    );
    assert!(
        f.store
            .create_admin("d", password, Role::DistrictAdmin, Some("nosuch"), &actor)
            .await
            .is_err()
    );
    assert!(
        f.store
            .create_admin("d", "short", Role::VendorAdmin, None, &actor)
            .await
            .is_err()
    );
    let audit = f.store.audit_events(Some("alpha"), 50).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "admin.create" && !e.detail.contains(password))
    );
}

#[test]
fn every_api_route_is_in_the_openapi_document() {
    let doc = ferry_web::openapi();
    let mut documented = Vec::new();
    for (path, item) in &doc.paths.paths {
        for (method, op) in [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ] {
            if op.is_some() {
                documented.push((method.to_owned(), path.clone()));
            }
        }
    }
    let mut served: Vec<(String, String)> = ferry_web::api_routes()
        .into_iter()
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
        .collect();
    served.sort();
    documented.sort();
    assert_eq!(served, documented);
    assert!(served.len() >= 16);
}

#[tokio::test]
async fn openapi_is_served() {
    let f = fixture().await;
    let answer = call(&f.app, Method::GET, "/api/v1/openapi.json", None, vec![]).await;
    assert_eq!(answer.status, StatusCode::OK);
    let json = answer.json();
    assert!(json["openapi"].as_str().unwrap().starts_with("3."));
    assert!(json["paths"]["/api/v1/accounts/{name}/keys"]["post"].is_object());
}

#[tokio::test]
async fn held_uploads_are_approved_or_rejected_and_staleness_is_reported() {
    let f = fixture().await;
    let uri = format!(
        "/api/v1/accounts/alpha/uploads/{}/approve",
        f.held_upload_id
    );
    // Not through another account's path, even for the vendor.
    let wrong = format!("/api/v1/accounts/beta/uploads/{}/approve", f.held_upload_id);
    let answer = call(&f.app, Method::POST, &wrong, Some(&f.vendor), vec![]).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.text);
    let answer = call(&f.app, Method::POST, &uri, Some(&f.alpha), vec![]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json()["state"], "received", "queued again");
    let decider = f.store.upload_decider(f.held_upload_id).await.unwrap();
    assert!(decider.unwrap().starts_with("token:"));
    let again = call(&f.app, Method::POST, &uri, Some(&f.alpha), vec![]).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert!(
        again.json()["error"]
            .as_str()
            .unwrap()
            .contains("only held"),
        "{}",
        again.text
    );
    let reject = uri.replace("approve", "reject");
    let answer = call(&f.app, Method::POST, &reject, Some(&f.alpha), vec![]).await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.text);

    // `stale`: alpha expects files every second and has had none.
    let cli = Actor::new("cli:test");
    f.store
        .set_expected_every("alpha", Some(1), &cli)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let answer = call(
        &f.app,
        Method::GET,
        "/api/v1/accounts",
        Some(&f.vendor),
        vec![],
    )
    .await;
    let accounts = answer.json()["accounts"].as_array().unwrap().clone();
    let stale: Vec<(String, bool)> = accounts
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_owned(),
                a["stale"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        stale,
        vec![("alpha".to_owned(), true), ("beta".to_owned(), false)]
    );
    let answer = call(
        &f.app,
        Method::GET,
        "/api/v1/accounts/alpha",
        Some(&f.alpha),
        vec![],
    )
    .await;
    assert_eq!(answer.json()["stale"], true);
}

#[tokio::test]
async fn patch_sets_and_resets_an_accounts_limits() {
    let f = fixture().await;
    let patch = |body: &'static str, token: String| {
        let app = f.app.clone();
        async move {
            call(
                &app,
                Method::PATCH,
                "/api/v1/accounts/alpha",
                Some(&token),
                body.as_bytes().to_vec(),
            )
            .await
        }
    };
    let set = patch(
        r#"{"max_handles": 10, "quota": 1073741824}"#,
        f.vendor.clone(),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK);
    assert_eq!(set.json()["max_handles"], 10);
    assert_eq!(set.json()["quota"], 1_073_741_824u64);
    assert_eq!(set.json()["max_file_size"], serde_json::Value::Null);
    assert_eq!(set.json()["enabled"], true, "enabled untouched");

    let reset = patch(r#"{"quota": null}"#, f.vendor.clone()).await;
    assert_eq!(reset.status, StatusCode::OK);
    assert_eq!(reset.json()["quota"], serde_json::Value::Null);
    assert_eq!(reset.json()["max_handles"], 10, "absent fields untouched");

    let zero = patch(r#"{"max_file_size": 0}"#, f.vendor.clone()).await;
    assert_eq!(zero.status, StatusCode::UNPROCESSABLE_ENTITY);
    let nothing = patch("{}", f.vendor.clone()).await;
    assert_eq!(nothing.status, StatusCode::UNPROCESSABLE_ENTITY);
    let district = patch(r#"{"quota": 1}"#, f.alpha.clone()).await;
    assert_eq!(district.status, StatusCode::NOT_FOUND, "vendor admins only");
    let audit = f.store.audit_events(Some("alpha"), 10).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "account.limits"
                && e.detail.contains("quota default (was 1.0 GiB)")),
        "{audit:?}"
    );
}

#[tokio::test]
async fn healthz_is_503_with_the_reason_when_the_database_is_gone_and_livez_stays_200() {
    let f = fixture().await;
    let ready = call(&f.app, Method::GET, "/healthz", None, vec![]).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    assert_eq!(ready.text, "ok\n");

    f.store.close().await;
    // The last answer is reused for up to a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let ready = call(&f.app, Method::GET, "/healthz", None, vec![]).await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.text
    );
    assert!(
        ready.text.starts_with("database unreachable: ") && ready.text.len() > 30,
        "the 503 names the reason: {:?}",
        ready.text
    );
    let live = call(&f.app, Method::GET, "/livez", None, vec![]).await;
    assert_eq!(live.status, StatusCode::OK, "{}", live.text);
    assert_eq!(live.text, "ok\n");
}

#[tokio::test]
async fn the_vendors_handoff_detail_reaches_vendor_admins_only() {
    let f = fixture().await;
    let id = match f
        .store
        .enqueue_finished(&ferry_store::SeenFile {
            account: "alpha".into(),
            name: "teachers.csv".into(),
            size: 10,
            mtime_ms: 2,
            inode: None,
        })
        .await
        .unwrap()
    {
        ferry_store::Enqueued::New(id) => id,
        other => panic!("{other:?}"),
    };
    f.store
        .claim_batch("alpha", "n1", 60_000)
        .await
        .unwrap()
        .unwrap();
    let detail = ferry_store::HandoffDetail {
        command_exit_status: Some(3),
        command_output: Some("COMMAND-OUTPUT on db-host-7".into()),
        webhook_url: Some("https://hooks.vendor.example/in".into()),
        webhook_status: Some(500),
        webhook_body: Some("WEBHOOK-BODY trace".into()),
    };
    f.store.record_handoff(&[id], &detail).await.unwrap();
    let district = format!(
        "the vendor's import did not accept this batch; the vendor has been told (reference #{id})"
    );
    f.store
        .mark_failed(
            id,
            &district,
            "the hand-off command failed (exit status: 3)",
            60_000,
        )
        .await
        .unwrap();
    let vendor_only = [
        "COMMAND-OUTPUT",
        "db-host-7",
        "hooks.vendor.example",
        "WEBHOOK-BODY",
        "exit status: 3",
    ];
    let listed = |token: String| {
        let app = f.app.clone();
        async move {
            call(
                &app,
                Method::GET,
                "/api/v1/accounts/alpha/uploads",
                Some(&token),
                vec![],
            )
            .await
        }
    };

    let vendor = listed(f.vendor.clone()).await;
    let row = &vendor.json()["uploads"][0];
    assert_eq!(row["id"], id);
    assert_eq!(row["handoff"]["command_exit_status"], 3);
    assert_eq!(row["handoff"]["webhook_status"], 500);
    assert_eq!(
        row["handoff"]["webhook_url"],
        "https://hooks.vendor.example/in"
    );
    assert_eq!(
        row["last_error"],
        "the hand-off command failed (exit status: 3)"
    );

    let district_answer = listed(f.alpha.clone()).await;
    let row = &district_answer.json()["uploads"][0];
    assert_eq!(row["id"], id);
    assert_eq!(row["detail"], district.as_str());
    assert!(
        row["handoff"].is_null() && row["last_error"].is_null(),
        "{row}"
    );
    for text in vendor_only {
        assert!(
            !district_answer.text.contains(text),
            "{text} in {}",
            district_answer.text
        );
    }

    // The account page: the vendor admin sees the detail, the district's
    // admin the district's wording only.
    let vendor_page = page(
        &f.app,
        Method::GET,
        "/accounts/alpha",
        Some(&f.vendor_session),
        &[],
    )
    .await;
    assert_eq!(vendor_page.status, StatusCode::OK);
    for text in vendor_only {
        assert!(
            vendor_page.text.contains(text),
            "{text} missing for the vendor"
        );
    }
    let district_page = page(
        &f.app,
        Method::GET,
        "/accounts/alpha",
        Some(&f.alpha_session),
        &[],
    )
    .await;
    assert_eq!(district_page.status, StatusCode::OK);
    assert!(district_page.text.contains(&format!("reference #{id}")));
    for text in vendor_only {
        assert!(
            !district_page.text.contains(text),
            "{text} shown to the district"
        );
    }
}
