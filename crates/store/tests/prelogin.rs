//! Pre-login records on both backends: login attempts aggregated and
//! expiring, and the per-node penalty rows behind `ferry penalties`.

mod common;

use common::{TestDb, on_postgres, on_sqlite};

use ferry_store::{Actor, AuthResult, NewAuthAttempt, Recorded, parse_source, source_of};

on_both_backends!(
    repeated_refusals_from_one_source_are_one_row,
    old_attempts_are_pruned,
    penalties_are_listed_lifted_and_forgotten,
);

fn refusal(user: &str, addr: &str, reason: &str, fingerprint: &str) -> NewAuthAttempt {
    NewAuthAttempt {
        account_name: user.to_owned(),
        client_addr: addr.to_owned(),
        client_banner: "SSH-2.0-scanner".to_owned(),
        fingerprint: Some(fingerprint.to_owned()),
        key_type: Some("ED25519".to_owned()),
        result: AuthResult::Refused,
        reason: reason.to_owned(),
    }
}

async fn repeated_refusals_from_one_source_are_one_row(db: TestDb) {
    let store = &db.store;
    let first = store
        .record_auth_attempt(&refusal(
            "d",
            "192.0.2.7:40000",
            "key not installed",
            "SHA256:a",
        ))
        .await
        .unwrap();
    assert!(matches!(first, Recorded::New(_)));
    // 199 more from other ports of the same address, with other keys.
    let mut last = first;
    for n in 1..200 {
        last = store
            .record_auth_attempt(&refusal(
                "d",
                &format!("192.0.2.7:{}", 40000 + n),
                "key not installed",
                &format!("SHA256:k{n}"),
            ))
            .await
            .unwrap();
    }
    assert_eq!(
        last,
        Recorded::Repeat {
            id: first.id(),
            count: 200
        }
    );
    // Another reason, another source (an IPv6 /64 is one source) and
    // another user name each get their own row.
    store
        .record_auth_attempt(&refusal("d", "192.0.2.7:1", "account disabled", "SHA256:a"))
        .await
        .unwrap();
    for addr in ["[2001:db8:1:2::10]:22", "[2001:db8:1:2:ffff::1]:23"] {
        store
            .record_auth_attempt(&refusal("d", addr, "key not installed", "SHA256:a"))
            .await
            .unwrap();
    }
    store
        .record_auth_attempt(&refusal("e", "192.0.2.7:2", "unknown account", "SHA256:a"))
        .await
        .unwrap();
    // Accepted logins are never folded.
    for _ in 0..2 {
        let accepted = NewAuthAttempt {
            result: AuthResult::Accepted,
            reason: "accepted".to_owned(),
            ..refusal("d", "192.0.2.7:3", "", "SHA256:a")
        };
        assert!(matches!(
            store.record_auth_attempt(&accepted).await.unwrap(),
            Recorded::New(_)
        ));
    }

    let rows = store.auth_attempts("d", 50).await.unwrap();
    let counts: Vec<(String, i64)> = rows.iter().map(|r| (r.reason.clone(), r.count)).collect();
    assert_eq!(rows.len(), 5, "{counts:?}");
    let folded = rows.iter().find(|r| r.id == first.id()).unwrap();
    assert_eq!(folded.count, 200);
    assert!(folded.last_at >= folded.at);
    assert_eq!(
        folded.client_addr, "192.0.2.7:40199",
        "the latest address is shown"
    );
    assert_eq!(folded.fingerprint.as_deref(), Some("SHA256:k199"));
    let v6 = rows
        .iter()
        .find(|r| r.client_addr.starts_with("[2001"))
        .unwrap();
    assert_eq!(v6.count, 2, "one /64 is one source");
    assert_eq!(rows[0].result, AuthResult::Accepted, "latest first");
    let json = serde_json::to_value(folded).unwrap();
    assert_eq!(json["count"], 200);
    assert!(json["last_at"].as_str().is_some_and(|t| t.ends_with('Z')));
}

async fn old_attempts_are_pruned(db: TestDb) {
    let store = &db.store;
    store
        .record_auth_attempt(&refusal(
            "d",
            "192.0.2.7:1",
            "key not installed",
            "SHA256:a",
        ))
        .await
        .unwrap();
    assert_eq!(store.prune_auth_attempts(3_600_000).await.unwrap(), 0);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(store.prune_auth_attempts(10).await.unwrap(), 1);
    assert!(store.auth_attempts("d", 10).await.unwrap().is_empty());
}

async fn penalties_are_listed_lifted_and_forgotten(db: TestDb) {
    let store = &db.store;
    let source = parse_source("192.0.2.9").unwrap();
    store
        .record_penalty("node-a", &source, "failed authentication", 60_000)
        .await
        .unwrap();
    store
        .record_penalty("node-b", &source, "login grace exceeded", 30_000)
        .await
        .unwrap();
    store
        .record_penalty("node-a", "2001:db8::/64", "unknown user", 60_000)
        .await
        .unwrap();
    // Extending keeps one row per node and source.
    store
        .record_penalty("node-a", &source, "unknown user", 120_000)
        .await
        .unwrap();
    let listed = store.penalties().await.unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    let a = listed
        .iter()
        .find(|p| p.node == "node-a" && p.source == source)
        .unwrap();
    assert_eq!(a.reason, "unknown user");
    assert!(a.until - a.since >= 119_000, "{a:?}");

    let lifted = store
        .lift_penalty(&source, &Actor::new("cli:test"))
        .await
        .unwrap();
    assert_eq!(lifted, 2, "both nodes' penalties on the source are lifted");
    assert_eq!(store.penalties().await.unwrap().len(), 1);
    assert_eq!(
        store.lifted_penalties("node-a").await.unwrap(),
        std::slice::from_ref(&source)
    );
    assert_eq!(store.forget_penalties("node-a").await.unwrap(), 1);
    assert!(store.lifted_penalties("node-a").await.unwrap().is_empty());
    let audit = store.audit_events(None, 5).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "penalty.lift" && e.detail.contains(&source))
    );
    assert_eq!(
        store
            .lift_penalty(&source, &Actor::new("cli:test"))
            .await
            .unwrap(),
        0,
        "nothing left to lift"
    );
    assert_eq!(store.clear_penalties("node-a").await.unwrap(), 1);
    assert_eq!(store.clear_penalties("node-b").await.unwrap(), 1);
}

#[test]
fn sources_group_ipv4_by_address_and_ipv6_by_64() {
    let ip = |s: &str| s.parse().unwrap();
    assert_eq!(source_of(ip("192.0.2.7")), "192.0.2.7");
    assert_eq!(source_of(ip("::ffff:192.0.2.7")), "192.0.2.7");
    assert_eq!(source_of(ip("2001:db8:1:2:3:4:5:6")), "2001:db8:1:2::/64");
    assert_eq!(
        parse_source("2001:db8:1:2::/64").as_deref(),
        Some("2001:db8:1:2::/64")
    );
    assert_eq!(parse_source(" 192.0.2.7/32 ").as_deref(), Some("192.0.2.7"));
    assert_eq!(
        parse_source("2001:db8:1:2:9::1").as_deref(),
        Some("2001:db8:1:2::/64")
    );
    assert_eq!(parse_source("192.0.2.0/24"), None);
    assert_eq!(parse_source("example.org"), None);
}
