//! What the pages and the API show of pre-login defences: the SFTP
//! penalties page (a vendor admin sees every node's penalised sources and
//! lifts one with a CSRF-checked button; a district admin gets the 404 of a
//! page that does not exist), and login attempts with their repeat count.

mod common;

use axum::http::{Method, StatusCode, header};
use common::*;

#[tokio::test]
async fn vendor_admins_see_and_lift_penalties_districts_get_404() {
    let f = fixture().await;
    f.store
        .record_penalty("node-a", "192.0.2.7", "failed authentication", 60_000)
        .await
        .unwrap();
    f.store
        .record_penalty(
            "node-b",
            "2001:db8:1:2::/64",
            "login grace time exceeded",
            60_000,
        )
        .await
        .unwrap();

    let listed = page(
        &f.app,
        Method::GET,
        "/penalties",
        Some(&f.vendor_session),
        &[],
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    for shown in [
        "node-a",
        "192.0.2.7",
        "failed authentication",
        "2001:db8:1:2::/64",
        "Lift",
    ] {
        assert!(
            listed.text.contains(shown),
            "{shown} missing: {}",
            listed.text
        );
    }
    for district in [&f.alpha_session, &f.beta_session] {
        let refused = page(&f.app, Method::GET, "/penalties", Some(district), &[]).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND);
        assert!(!refused.text.contains("192.0.2.7"));
    }

    // Without the CSRF token nothing is lifted.
    let forged = page(
        &f.app,
        Method::POST,
        "/penalties/lift",
        Some(&f.vendor_session),
        &[("source", "192.0.2.7")],
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(f.store.penalties().await.unwrap().len(), 2);

    let csrf = csrf_in(&listed.text);
    let lifted = page(
        &f.app,
        Method::POST,
        "/penalties/lift",
        Some(&f.vendor_session),
        &[("csrf", &csrf), ("source", "192.0.2.7")],
    )
    .await;
    assert_eq!(lifted.status, StatusCode::SEE_OTHER);
    let to = lifted.headers[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(to, "/penalties?lifted=192.0.2.7");
    assert_eq!(
        f.store.lifted_penalties("node-a").await.unwrap(),
        ["192.0.2.7"]
    );
    let after = page(&f.app, Method::GET, &to, Some(&f.vendor_session), &[]).await;
    assert!(
        after.text.contains("Penalty on 192.0.2.7 lifted"),
        "{}",
        after.text
    );
    assert!(after.text.contains("2001:db8:1:2::/64"));
    let audit = f.store.audit_events(None, 5).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "penalty.lift" && e.actor == "admin:root"),
        "{audit:?}"
    );

    // A district admin cannot lift one either.
    let district_csrf = csrf_of(&f.app, &f.alpha_session).await;
    let refused = page(
        &f.app,
        Method::POST,
        "/penalties/lift",
        Some(&f.alpha_session),
        &[("csrf", &district_csrf), ("source", "2001:db8:1:2::1")],
    )
    .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    assert_eq!(f.store.penalties().await.unwrap().len(), 1);
    // Not a source: refused with the fix.
    let bad = page(
        &f.app,
        Method::POST,
        "/penalties/lift",
        Some(&f.vendor_session),
        &[("csrf", &csrf), ("source", "<script>")],
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!bad.text.contains("<script>"));
}

#[tokio::test]
async fn repeated_refusals_show_their_count_on_the_page_and_in_the_api() {
    let f = fixture().await;
    for port in 0..3 {
        f.store
            .record_auth_attempt(&ferry_store::NewAuthAttempt {
                account_name: "alpha".into(),
                client_addr: format!("198.51.100.4:{}", 40000 + port),
                client_banner: "SSH-2.0-WinSCP".into(),
                fingerprint: Some("SHA256:wrong".into()),
                key_type: Some("ssh-ed25519".into()),
                result: ferry_store::AuthResult::Refused,
                reason: "key not installed".into(),
            })
            .await
            .unwrap();
    }
    let api = call(
        &f.app,
        Method::GET,
        "/api/v1/accounts/alpha/auth-attempts",
        Some(&f.vendor),
        Vec::new(),
    )
    .await;
    assert_eq!(api.status, StatusCode::OK, "{}", api.text);
    let attempts = &api.json()["attempts"];
    assert_eq!(attempts.as_array().unwrap().len(), 1, "{attempts}");
    assert_eq!(attempts[0]["count"], 3);
    assert!(attempts[0]["last_at"].as_str().is_some());
    assert_eq!(attempts[0]["client_addr"], "198.51.100.4:40002");

    let account = page(
        &f.app,
        Method::GET,
        "/accounts/alpha",
        Some(&f.vendor_session),
        &[],
    )
    .await;
    assert_eq!(account.status, StatusCode::OK);
    let row = account
        .text
        .split("<tr>")
        .find(|row| row.contains("key not installed"))
        .unwrap_or_else(|| panic!("no attempt row: {}", account.text));
    assert!(row.contains("<td class=\"count\">3"), "{row}");
    assert!(row.contains(" since "), "{row}");
}
