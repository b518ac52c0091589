//! The store's whole API, run on SQLite (a temporary file) and — the same
//! test bodies — on PostgreSQL when `FERRY_TEST_POSTGRES_URL` is set:
//!
//! ```sh
//! export FERRY_TEST_POSTGRES_URL="$(scripts/test-postgres)"
//! cargo test -p ferry-store
//! ```
//!
//! Each PostgreSQL test runs in its own schema (dropped afterwards), so reruns
//! start clean. Without the variable the PostgreSQL tests say they were
//! skipped — unless `FERRY_REQUIRE_CLIENTS=1` or `CI` is set, where they fail.

mod common;

use common::{TestDb, on_postgres, on_sqlite};
use std::time::{Duration, Instant};

use ferry_store::{
    Actor, AddStatus, Backend, KeyState, LimitsChange, LoginVerdict, MAX_KEYS_PER_ACCOUNT,
    NewAuthAttempt, NewKey, Store, StoreError, UploadState,
};
use ferry_store::{AuthResult, format_timestamp};
use sqlx::Connection;

on_both_backends!(
    migrations_are_idempotent,
    accounts_create_list_and_disable,
    keys_are_pending_then_active,
    adding_a_present_key_changes_nothing,
    revoking_is_immediate,
    replacing_retires_old_keys_when_new_ones_activate,
    at_most_100_keys_all_or_nothing,
    login_candidate_gives_every_verdict,
    cancel_and_activate_pending_keys,
    every_change_is_audited_and_audit_is_append_only,
    partial_upload_is_recorded,
    auth_attempts_are_recorded,
    concurrent_changes_to_one_account_serialize,
    lapsed_logins_say_why_each_live_login_no_longer_works,
);

// ---------------------------------------------------------------- helpers

fn cli() -> Actor {
    Actor::new("cli:test")
}

fn key(n: u32) -> NewKey {
    NewKey {
        fingerprint: format!("SHA256:test-key-{n:04}"),
        key_type: "ED25519".to_owned(),
        bits: 256,
        comment: format!("key{n}@district"),
        options: String::new(),
        openssh_line: format!("ssh-ed25519 AAAAtest{n:04} key{n}@district"),
    }
}

/// A real key, through ferry-keys, as the CLI and web will build it.
fn real_key() -> NewKey {
    let line = "from=\"10.0.0.0/8\" ssh-ed25519 \
                AAAAC3NzaC1lZDI1NTE5AAAAINmXOZjOuoAuJvrxwOy4Rz1LUOSoVKj6/l1JWNMN9xRj \
                district-it@example.org";
    let findings =
        ferry_keys::parse_keys(line.as_bytes(), &ferry_keys::KeyPolicy::default()).expect("parse");
    NewKey::from_finding(&findings[0]).expect("accepted")
}

async fn wait_for_db_time(store: &Store, at: i64) {
    let give_up = Instant::now() + Duration::from_secs(30);
    while store.now().await.expect("now") < at {
        assert!(
            Instant::now() < give_up,
            "the database clock did not reach {at}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn account_actions(store: &Store, account: &str) -> Vec<String> {
    store
        .audit_events(Some(account), 1000)
        .await
        .expect("audit")
        .into_iter()
        .rev()
        .map(|event| event.action)
        .collect()
}

// ---------------------------------------------------------------- bodies

async fn migrations_are_idempotent(db: TestDb) {
    db.store.migrate().await.expect("second migrate");
    db.store.migrate().await.expect("third migrate");
    let other = Store::connect(&db.url).await.expect("second connection");
    other.migrate().await.expect("migrate from another store");
    db.store
        .create_account("district-1", None, false, &cli())
        .await
        .expect("create");
    let seen = other.account("district-1").await.expect("read");
    assert_eq!(seen.map(|a| a.name).as_deref(), Some("district-1"));
    other.close().await;
}

async fn accounts_create_list_and_disable(db: TestDb) {
    let store = &db.store;
    let created = store
        .create_account("springfield", Some("Springfield USD"), false, &cli())
        .await
        .expect("create");
    assert!(created.enabled && !created.legacy_clients);
    assert_eq!(created.display_name.as_deref(), Some("Springfield USD"));
    assert!(created.created_at > 1_600_000_000_000);

    let err = store
        .create_account("springfield", None, false, &cli())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AccountExists { .. }), "{err}");
    assert!(err.to_string().contains("ferry account list"), "{err}");

    for bad in ["Springfield", "", "-x", "a b", "../etc"] {
        let err = store
            .create_account(bad, None, false, &cli())
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidAccountName { .. }),
            "{bad}: {err}"
        );
        assert!(err.to_string().contains("a-z, 0-9"), "{err}");
    }

    store
        .create_account("alpha", None, true, &cli())
        .await
        .expect("create alpha");
    let names: Vec<String> = store
        .accounts()
        .await
        .expect("list")
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["alpha", "springfield"]);
    assert!(
        store
            .account("alpha")
            .await
            .expect("get")
            .unwrap()
            .legacy_clients
    );
    assert!(store.account("nobody").await.expect("get").is_none());

    let disabled = store
        .set_account_enabled("springfield", false, &cli())
        .await
        .expect("disable");
    assert!(!disabled.enabled);
    assert!(!store.account("springfield").await.unwrap().unwrap().enabled);
    // Setting the same value again changes (and audits) nothing.
    store
        .set_account_enabled("springfield", false, &cli())
        .await
        .expect("disable again");
    let enabled = store
        .set_account_enabled("springfield", true, &cli())
        .await
        .expect("enable");
    assert!(enabled.enabled);

    let legacy = store
        .set_legacy_clients("springfield", true, &cli())
        .await
        .expect("legacy");
    assert!(legacy.legacy_clients);
    let every = store
        .set_expected_every("springfield", Some(86_400), &cli())
        .await
        .expect("every");
    assert_eq!(every.expected_every_secs, Some(86_400));
    let off = store
        .set_expected_every("springfield", None, &cli())
        .await
        .expect("every off");
    assert_eq!(off.expected_every_secs, None);
    let err = store
        .set_expected_every("springfield", Some(0), &cli())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidValue { .. }), "{err}");

    // Limits: set, read back (also through the login lookup's join), reset.
    let limited = store
        .set_account_limits(
            "springfield",
            LimitsChange {
                max_handles: Some(Some(10)),
                quota: Some(Some(5 << 30)),
                ..LimitsChange::default()
            },
            &cli(),
        )
        .await
        .expect("limits");
    assert_eq!(limited.limits.max_handles, Some(10));
    assert_eq!(limited.limits.quota, Some(5 << 30));
    assert_eq!(limited.limits.max_file_size, None);
    let read = store.account("springfield").await.unwrap().unwrap();
    assert_eq!(read.limits, limited.limits);
    let reset = store
        .set_account_limits(
            "springfield",
            LimitsChange {
                quota: Some(None),
                ..LimitsChange::default()
            },
            &cli(),
        )
        .await
        .expect("reset");
    assert_eq!(reset.limits.quota, None);
    assert_eq!(reset.limits.max_handles, Some(10));
    let err = store
        .set_account_limits(
            "springfield",
            LimitsChange {
                max_file_size: Some(Some(0)),
                ..LimitsChange::default()
            },
            &cli(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidValue { .. }), "{err}");
    let audit = store.audit_events(Some("springfield"), 50).await.unwrap();
    let details: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "account.limits")
        .map(|e| e.detail.as_str())
        .collect();
    assert_eq!(
        details,
        [
            "quota default (was 5.0 GiB)",
            "max handles 10 (was default); quota 5.0 GiB (was default)"
        ]
    );

    let err = store
        .set_account_enabled("nobody", false, &cli())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSuchAccount { .. }), "{err}");
    assert!(err.to_string().contains("`nobody`"), "{err}");
    assert!(err.to_string().contains("ferry account list"), "{err}");
    for err in [
        store
            .set_legacy_clients("nobody", true, &cli())
            .await
            .unwrap_err(),
        store
            .set_expected_every("nobody", None, &cli())
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::NoSuchAccount { .. }), "{err}");
    }

    assert_eq!(
        account_actions(store, "springfield").await,
        [
            "account.create",
            "account.disable",
            "account.enable",
            "account.legacy_clients",
            "account.expected_every",
            "account.expected_every",
            "account.limits",
            "account.limits",
        ]
    );

    let json = serde_json::to_value(store.account("springfield").await.unwrap().unwrap()).unwrap();
    for field in [
        "id",
        "name",
        "display_name",
        "enabled",
        "legacy_clients",
        "expected_every_secs",
        "created_at",
        "max_handles",
        "max_file_size",
        "quota",
    ] {
        assert!(
            json.get(field).is_some(),
            "account JSON lacks {field}: {json}"
        );
    }
    assert!(json["created_at"].as_str().unwrap().ends_with('Z'));
}

async fn keys_are_pending_then_active(db: TestDb) {
    let store = &db.store;
    store
        .create_account("district", None, false, &cli())
        .await
        .unwrap();
    let added = store
        .add_keys("district", &[real_key()], 1500, &cli())
        .await
        .expect("add");
    assert_eq!(added.len(), 1);
    assert_eq!(added[0].status, AddStatus::Added);
    let installed = &added[0].key;
    assert_eq!(installed.state, KeyState::Pending);
    assert_eq!(installed.effective_at - installed.created_at, 1500);
    assert_eq!(
        installed.fingerprint,
        "SHA256:auBi/8GwG/ZHrNkOn1AMSUGpI2TnFoAe1w9CHgIBo4o"
    );
    assert_eq!(installed.options, "from=\"10.0.0.0/8\"");
    assert_eq!(installed.added_by, "cli:test");
    assert!(
        installed
            .authorized_keys_line()
            .starts_with("from=\"10.0.0.0/8\" ssh-ed25519 AAAA")
    );

    assert_eq!(
        store.keys("district").await.unwrap()[0].state,
        KeyState::Pending
    );
    assert!(store.active_keys("district").await.unwrap().is_empty());
    let lookup = store
        .login_candidate("district", &installed.fingerprint)
        .await
        .unwrap();
    let verdict = lookup.verdict();
    assert_eq!(
        verdict,
        LoginVerdict::KeyPending {
            key_id: installed.id,
            until: installed.effective_at
        }
    );
    assert_eq!(
        verdict.to_string(),
        format!(
            "key pending until {}",
            format_timestamp(installed.effective_at)
        )
    );

    wait_for_db_time(store, installed.effective_at).await;
    let keys = store.keys("district").await.unwrap();
    assert_eq!(keys[0].state, KeyState::Active);
    assert_eq!(store.active_keys("district").await.unwrap().len(), 1);
    let verdict = store
        .login_candidate("district", &installed.fingerprint)
        .await
        .unwrap()
        .verdict();
    assert_eq!(
        verdict,
        LoginVerdict::Accepted {
            key_id: installed.id
        }
    );
    assert!(verdict.is_accepted());

    assert_eq!(keys[0].last_used_at, None);
    store.mark_key_used(installed.id).await.unwrap();
    let used = store.keys("district").await.unwrap();
    assert!(
        used[0]
            .last_used_at
            .is_some_and(|t| t >= installed.effective_at)
    );

    let json = serde_json::to_value(&used[0]).unwrap();
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
        assert!(json.get(field).is_some(), "key JSON lacks {field}: {json}");
    }
    assert_eq!(json["type"], "ED25519");
    assert_eq!(json["bits"], 256);
    assert_eq!(json["state"], "active");
    assert_eq!(json["comment"], "district-it@example.org");
    assert!(json["effective_at"].as_str().unwrap().ends_with('Z'));
    assert!(json["last_used_at"].as_str().unwrap().ends_with('Z'));
    assert!(json.get("key_type").is_none());

    let err = store.keys("nobody").await.unwrap_err();
    assert!(matches!(err, StoreError::NoSuchAccount { .. }), "{err}");
    let err = store
        .add_keys("nobody", &[key(1)], 0, &cli())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSuchAccount { .. }), "{err}");
    let err = store
        .add_keys("district", &[], 0, &cli())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NoKeys { .. }), "{err}");
    let err = store
        .add_keys("district", &[key(1)], -1, &cli())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidValue { .. }), "{err}");
}

async fn adding_a_present_key_changes_nothing(db: TestDb) {
    let store = &db.store;
    store
        .create_account("d", None, false, &cli())
        .await
        .unwrap();
    let first = store.add_keys("d", &[key(1)], 0, &cli()).await.unwrap();
    assert_eq!(first[0].status, AddStatus::Added);
    assert_eq!(first[0].key.state, KeyState::Active);

    let again = store
        .add_keys("d", &[key(1), key(2), key(2)], 0, &cli())
        .await
        .unwrap();
    let statuses: Vec<AddStatus> = again.iter().map(|o| o.status).collect();
    assert_eq!(
        statuses,
        [AddStatus::Unchanged, AddStatus::Added, AddStatus::Unchanged]
    );
    assert_eq!(again[0].key.id, first[0].key.id);
    assert_eq!(again[1].key.id, again[2].key.id);
    assert_eq!(store.keys("d").await.unwrap().len(), 2);

    // A pending key offered again stays pending, with its original time.
    let pending = store
        .add_keys("d", &[key(3)], 60_000, &cli())
        .await
        .unwrap();
    let repeat = store.add_keys("d", &[key(3)], 0, &cli()).await.unwrap();
    assert_eq!(repeat[0].status, AddStatus::Unchanged);
    assert_eq!(repeat[0].key.state, KeyState::Pending);
    assert_eq!(repeat[0].key.effective_at, pending[0].key.effective_at);
    assert_eq!(store.keys("d").await.unwrap().len(), 3);
    assert_eq!(
        account_actions(store, "d").await,
        ["account.create", "key.add", "key.add", "key.add"]
    );
}

async fn revoking_is_immediate(db: TestDb) {
    let store = &db.store;
    store
        .create_account("d", None, false, &cli())
        .await
        .unwrap();
    let added = store
        .add_keys("d", &[key(1), key(2)], 0, &cli())
        .await
        .unwrap();
    let before = store.now().await.unwrap();

    let revoked = store
        .revoke_key("d", &key(1).fingerprint, &Actor::new("admin:alice"))
        .await
        .expect("revoke by fingerprint");
    assert_eq!(revoked.id, added[0].key.id);
    assert_eq!(revoked.state, KeyState::Revoked);
    assert_eq!(revoked.revoked_by.as_deref(), Some("admin:alice"));
    assert!(revoked.revoked_at.is_some_and(|t| t >= before));
    let verdict = store
        .login_candidate("d", &key(1).fingerprint)
        .await
        .unwrap()
        .verdict();
    assert!(
        matches!(verdict, LoginVerdict::KeyRevoked { .. }),
        "{verdict}"
    );
    assert!(verdict.to_string().starts_with("key revoked at "));
    let active: Vec<String> = store
        .active_keys("d")
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.fingerprint)
        .collect();
    assert_eq!(active, [key(2).fingerprint]);

    let by_id = store
        .revoke_key("d", &added[1].key.id.to_string(), &cli())
        .await
        .expect("revoke by id");
    assert_eq!(by_id.fingerprint, key(2).fingerprint);
    assert!(store.active_keys("d").await.unwrap().is_empty());

    // Revoking again is harmless and writes no audit row.
    let audit_before = store.audit_events(Some("d"), 100).await.unwrap().len();
    let again = store
        .revoke_key("d", &key(1).fingerprint, &cli())
        .await
        .unwrap();
    assert_eq!(again.state, KeyState::Revoked);
    assert_eq!(again.revoked_by.as_deref(), Some("admin:alice"));
    assert_eq!(
        store.audit_events(Some("d"), 100).await.unwrap().len(),
        audit_before
    );

    let err = store
        .revoke_key("d", "SHA256:nope", &cli())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSuchKey { .. }), "{err}");
    assert!(err.to_string().contains("ferry key list d"), "{err}");
    let err = store.revoke_key("d", "999999", &cli()).await.unwrap_err();
    assert!(matches!(err, StoreError::NoSuchKey { .. }), "{err}");
    let err = store.revoke_key("nobody", "1", &cli()).await.unwrap_err();
    assert!(matches!(err, StoreError::NoSuchAccount { .. }), "{err}");

    let live = [
        ("d".to_owned(), key(1).fingerprint),
        ("d".to_owned(), key(2).fingerprint),
    ];
    let lapsed = store.lapsed_logins(&live).await.unwrap();
    let fingerprints: Vec<&str> = lapsed.iter().map(|l| l.fingerprint.as_str()).collect();
    assert_eq!(fingerprints, [key(1).fingerprint, key(2).fingerprint]);
    assert!(
        lapsed
            .iter()
            .all(|l| l.account == "d" && matches!(l.verdict, LoginVerdict::KeyRevoked { .. }))
    );

    // A revoked key can be installed again: a new row, the old one stays revoked.
    let readded = store.add_keys("d", &[key(1)], 0, &cli()).await.unwrap();
    assert_eq!(readded[0].status, AddStatus::Added);
    assert_ne!(readded[0].key.id, added[0].key.id);
    let verdict = store
        .login_candidate("d", &key(1).fingerprint)
        .await
        .unwrap()
        .verdict();
    assert_eq!(
        verdict,
        LoginVerdict::Accepted {
            key_id: readded[0].key.id
        }
    );
    assert_eq!(store.keys("d").await.unwrap().len(), 3);
}

async fn replacing_retires_old_keys_when_new_ones_activate(db: TestDb) {
    let store = &db.store;
    store
        .create_account("d", None, false, &cli())
        .await
        .unwrap();
    let (a, b, c) = (key(1), key(2), key(3));
    store
        .add_keys("d", &[a.clone(), b.clone()], 0, &cli())
        .await
        .unwrap();

    let outcomes = store
        .replace_keys("d", &[b.clone(), c.clone()], 1500, &cli())
        .await
        .expect("replace");
    let summary: Vec<(&str, AddStatus, KeyState)> = outcomes
        .iter()
        .map(|o| (o.key.fingerprint.as_str(), o.status, o.key.state))
        .collect();
    assert_eq!(
        summary,
        [
            (
                b.fingerprint.as_str(),
                AddStatus::Unchanged,
                KeyState::Active
            ),
            (c.fingerprint.as_str(), AddStatus::Added, KeyState::Pending),
            (
                a.fingerprint.as_str(),
                AddStatus::Retiring,
                KeyState::Retiring
            ),
        ]
    );
    let new_effective = outcomes[1].key.effective_at;
    assert_eq!(
        outcomes[2].key.retire_at,
        Some(new_effective),
        "no gap, no lock-out"
    );

    // Until the new set is active, the old key still logs in.
    let verdict = store
        .login_candidate("d", &a.fingerprint)
        .await
        .unwrap()
        .verdict();
    assert!(verdict.is_accepted(), "{verdict}");
    let usable: Vec<String> = store
        .active_keys("d")
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.fingerprint)
        .collect();
    assert_eq!(usable, [a.fingerprint.clone(), b.fingerprint.clone()]);

    wait_for_db_time(store, new_effective).await;
    let states: Vec<(String, KeyState)> = store
        .keys("d")
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.fingerprint, k.state))
        .collect();
    assert_eq!(
        states,
        [
            (a.fingerprint.clone(), KeyState::Expired),
            (b.fingerprint.clone(), KeyState::Active),
            (c.fingerprint.clone(), KeyState::Active),
        ]
    );
    let verdict = store
        .login_candidate("d", &a.fingerprint)
        .await
        .unwrap()
        .verdict();
    assert!(
        matches!(verdict, LoginVerdict::KeyRetired { at, .. } if at == new_effective),
        "{verdict}"
    );
    assert!(verdict.to_string().contains("retired"));

    // A retiring key that is offered again stays.
    let outcomes = store
        .replace_keys("d", std::slice::from_ref(&c), 60_000, &cli())
        .await
        .unwrap();
    assert_eq!(outcomes[1].status, AddStatus::Retiring);
    assert_eq!(outcomes[1].key.fingerprint, b.fingerprint);
    let reinstated = store
        .add_keys("d", std::slice::from_ref(&b), 0, &cli())
        .await
        .unwrap();
    assert_eq!(reinstated[0].status, AddStatus::Reinstated);
    assert_eq!(reinstated[0].key.state, KeyState::Active);
    assert_eq!(reinstated[0].key.retire_at, None);

    // Replacing with no delay retires at once.
    let outcomes = store
        .replace_keys("d", std::slice::from_ref(&a), 0, &cli())
        .await
        .unwrap();
    assert_eq!(outcomes[0].status, AddStatus::Added);
    assert_eq!(outcomes[0].key.state, KeyState::Active);
    assert!(
        outcomes[1..]
            .iter()
            .all(|o| o.key.state == KeyState::Expired)
    );
    let usable: Vec<String> = store
        .active_keys("d")
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.fingerprint)
        .collect();
    assert_eq!(usable, std::slice::from_ref(&a.fingerprint));

    let err = store.replace_keys("d", &[], 0, &cli()).await.unwrap_err();
    assert!(matches!(err, StoreError::NoKeys { .. }), "{err}");
    assert!(err.to_string().contains("ferry key revoke"), "{err}");

    let actions = account_actions(store, "d").await;
    assert_eq!(actions.iter().filter(|a| *a == "key.retire").count(), 4);
    assert_eq!(actions.iter().filter(|a| *a == "key.reinstate").count(), 1);
}

async fn at_most_100_keys_all_or_nothing(db: TestDb) {
    let store = &db.store;
    store
        .create_account("d", None, false, &cli())
        .await
        .unwrap();
    let hundred: Vec<NewKey> = (0..100).map(key).collect();
    let added = store
        .add_keys("d", &hundred, 0, &cli())
        .await
        .expect("100 keys");
    assert_eq!(added.len(), MAX_KEYS_PER_ACCOUNT);

    let err = store
        .add_keys("d", &[key(100)], 0, &cli())
        .await
        .unwrap_err();
    match &err {
        StoreError::TooManyKeys {
            would_have, limit, ..
        } => assert_eq!((*would_have, *limit), (101, 100)),
        other => panic!("expected TooManyKeys, got {other}"),
    }
    assert!(err.to_string().contains("ferry key revoke"), "{err}");

    store
        .revoke_key("d", &key(0).fingerprint, &cli())
        .await
        .unwrap();
    // Two keys into one free place: neither goes in.
    let err = store
        .add_keys("d", &[key(100), key(101)], 0, &cli())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TooManyKeys { .. }), "{err}");
    assert_eq!(store.keys("d").await.unwrap().len(), 100);
    store
        .add_keys("d", &[key(100)], 0, &cli())
        .await
        .expect("one fits");

    // A replacement set is held to the limit itself; the old keys retiring do not count.
    let too_many: Vec<NewKey> = (200..301).map(key).collect();
    let err = store
        .replace_keys("d", &too_many, 0, &cli())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TooManyKeys { .. }), "{err}");
    let fresh: Vec<NewKey> = (200..300).map(key).collect();
    store
        .replace_keys("d", &fresh, 60_000, &cli())
        .await
        .expect("replace 100 by 100");
    let err = store
        .add_keys("d", &[key(400)], 0, &cli())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TooManyKeys { .. }), "{err}");
}

async fn login_candidate_gives_every_verdict(db: TestDb) {
    let store = &db.store;
    store
        .create_account("acme", None, false, &cli())
        .await
        .unwrap();
    store
        .create_account("closed", None, false, &cli())
        .await
        .unwrap();
    store
        .add_keys("closed", &[key(9)], 0, &cli())
        .await
        .unwrap();
    store
        .set_account_enabled("closed", false, &cli())
        .await
        .unwrap();

    let lookup = store
        .login_candidate("nobody", &key(1).fingerprint)
        .await
        .unwrap();
    assert!(lookup.account.is_none() && lookup.key.is_none());
    assert!(lookup.now > 1_600_000_000_000);
    assert_eq!(lookup.verdict(), LoginVerdict::UnknownAccount);
    assert_eq!(lookup.verdict().to_string(), "unknown account");

    let verdict = store
        .login_candidate("closed", &key(9).fingerprint)
        .await
        .unwrap()
        .verdict();
    assert_eq!(verdict, LoginVerdict::AccountDisabled);
    assert_eq!(verdict.to_string(), "account disabled");

    let verdict = store
        .login_candidate("acme", &key(1).fingerprint)
        .await
        .unwrap()
        .verdict();
    assert_eq!(verdict, LoginVerdict::KeyNotInstalled);
    assert_eq!(verdict.to_string(), "key not installed");

    let mut expired = key(2);
    expired.options = "expiry-time=\"20200101\"".to_owned();
    let pending = key(3);
    let revoked = key(4);
    let active = key(5);
    let retired = key(6);
    store
        .add_keys(
            "acme",
            &[expired.clone(), revoked.clone(), retired.clone()],
            0,
            &cli(),
        )
        .await
        .unwrap();
    store
        .add_keys("acme", std::slice::from_ref(&pending), 3_600_000, &cli())
        .await
        .unwrap();
    store
        .revoke_key("acme", &revoked.fingerprint, &cli())
        .await
        .unwrap();
    // Replace `retired` at once; keep the others (the replacement set).
    store
        .replace_keys(
            "acme",
            &[expired.clone(), pending.clone(), active.clone()],
            0,
            &cli(),
        )
        .await
        .unwrap();

    let lookup = store
        .login_candidate("acme", &expired.fingerprint)
        .await
        .unwrap();
    assert_eq!(lookup.key.as_ref().unwrap().state, KeyState::Expired);
    assert_eq!(
        lookup.key.as_ref().unwrap().expires_at,
        Some(1_577_836_800_000)
    );
    let verdict = lookup.verdict();
    assert!(
        matches!(
            verdict,
            LoginVerdict::KeyExpired {
                at: 1_577_836_800_000,
                ..
            }
        ),
        "{verdict}"
    );
    assert_eq!(
        verdict.to_string(),
        "key expired at 2020-01-01T00:00:00.000Z (its expiry-time option)"
    );

    let verdict = store
        .login_candidate("acme", &pending.fingerprint)
        .await
        .unwrap()
        .verdict();
    assert!(
        matches!(verdict, LoginVerdict::KeyPending { .. }),
        "{verdict}"
    );
    let verdict = store
        .login_candidate("acme", &revoked.fingerprint)
        .await
        .unwrap()
        .verdict();
    assert!(
        matches!(verdict, LoginVerdict::KeyRevoked { .. }),
        "{verdict}"
    );
    let verdict = store
        .login_candidate("acme", &retired.fingerprint)
        .await
        .unwrap()
        .verdict();
    assert!(
        matches!(verdict, LoginVerdict::KeyRetired { .. }),
        "{verdict}"
    );
    let lookup = store
        .login_candidate("acme", &active.fingerprint)
        .await
        .unwrap();
    assert_eq!(lookup.account.as_ref().unwrap().name, "acme");
    let verdict = lookup.verdict();
    assert_eq!(
        verdict,
        LoginVerdict::Accepted {
            key_id: lookup.key.as_ref().unwrap().id
        }
    );
    assert_eq!(verdict.to_string(), "accepted");

    // Another account's key is "not installed" here, whatever its state there.
    let verdict = store
        .login_candidate("acme", &key(9).fingerprint)
        .await
        .unwrap()
        .verdict();
    assert_eq!(verdict, LoginVerdict::KeyNotInstalled);
}

async fn cancel_and_activate_pending_keys(db: TestDb) {
    let store = &db.store;
    store
        .create_account("d", None, false, &cli())
        .await
        .unwrap();
    let added = store
        .add_keys("d", &[key(1), key(2)], 3_600_000, &cli())
        .await
        .unwrap();
    assert!(added.iter().all(|o| o.key.state == KeyState::Pending));

    let activated = store
        .activate_key(
            "d",
            &added[0].key.id.to_string(),
            &Actor::new("admin:vendor"),
        )
        .await
        .expect("activate");
    assert_eq!(activated.state, KeyState::Active);
    assert!(activated.effective_at < added[0].key.effective_at);
    assert!(
        store
            .login_candidate("d", &key(1).fingerprint)
            .await
            .unwrap()
            .verdict()
            .is_accepted()
    );

    let cancelled = store
        .cancel_pending_key("d", &key(2).fingerprint, &cli())
        .await
        .expect("cancel");
    assert_eq!(cancelled.fingerprint, key(2).fingerprint);
    let left: Vec<String> = store
        .keys("d")
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.fingerprint)
        .collect();
    assert_eq!(left, [key(1).fingerprint]);

    let err = store
        .cancel_pending_key("d", &key(1).fingerprint, &cli())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::KeyNotPending {
                state: KeyState::Active,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("is active, not pending"), "{err}");
    let err = store
        .activate_key("d", &key(2).fingerprint, &cli())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSuchKey { .. }), "{err}");

    assert_eq!(
        account_actions(store, "d").await,
        [
            "account.create",
            "key.add",
            "key.add",
            "key.activate",
            "key.cancel"
        ]
    );
}

async fn every_change_is_audited_and_audit_is_append_only(db: TestDb) {
    let store = &db.store;
    let web = Actor::new("admin:alice").with_client_addr("192.0.2.7:51234");
    store
        .create_account("d", Some("District"), false, &web)
        .await
        .unwrap();
    store
        .add_keys("d", &[key(1), key(2)], 0, &web)
        .await
        .unwrap();
    store
        .revoke_key("d", &key(1).fingerprint, &web)
        .await
        .unwrap();
    store.replace_keys("d", &[key(3)], 0, &web).await.unwrap();
    store.set_legacy_clients("d", true, &web).await.unwrap();

    let events = store.audit_events(Some("d"), 100).await.unwrap();
    let actions: Vec<&str> = events.iter().rev().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "account.create",
            "key.add",
            "key.add",
            "key.revoke",
            "key.add",
            "key.retire",
            "account.legacy_clients",
        ]
    );
    assert!(events.iter().all(|e| e.actor == "admin:alice"
        && e.client_addr.as_deref() == Some("192.0.2.7:51234")
        && e.account_name.as_deref() == Some("d")));
    let revoke = events.iter().find(|e| e.action == "key.revoke").unwrap();
    assert!(
        revoke.detail.contains(&key(1).fingerprint),
        "{}",
        revoke.detail
    );
    let legacy = events
        .iter()
        .find(|e| e.action == "account.legacy_clients")
        .unwrap();
    assert!(legacy.detail.contains("on (was off)"), "{}", legacy.detail);
    assert!(
        events
            .windows(2)
            .all(|w| w[0].id > w[1].id && w[0].at >= w[1].at)
    );

    let id = store
        .record_audit(&cli(), None, "config.reload", "reloaded the configuration")
        .await
        .unwrap();
    let all = store.audit_events(None, 1).await.unwrap();
    assert_eq!(all[0].id, id);
    assert_eq!(all[0].account_name, None);
    assert_eq!(
        store.audit_events(None, 100).await.unwrap().len(),
        events.len() + 1
    );
    let json = serde_json::to_value(&all[0]).unwrap();
    for field in [
        "id",
        "at",
        "actor",
        "account",
        "action",
        "detail",
        "client_addr",
    ] {
        assert!(
            json.get(field).is_some(),
            "audit JSON lacks {field}: {json}"
        );
    }

    // The schema itself refuses to rewrite history.
    sqlx::any::install_default_drivers();
    let raw = sqlx::AnyPool::connect(&db.url)
        .await
        .expect("raw connection");
    let update = sqlx::query("UPDATE audit SET detail = 'rewritten'")
        .execute(&raw)
        .await;
    assert!(update.is_err(), "UPDATE on audit must fail");
    let delete = sqlx::query("DELETE FROM audit").execute(&raw).await;
    assert!(delete.is_err(), "DELETE on audit must fail");
    assert!(
        delete.unwrap_err().to_string().contains("append-only"),
        "the refusal says why"
    );
    raw.close().await;
    assert_eq!(
        store.audit_events(None, 100).await.unwrap().len(),
        events.len() + 1
    );
}

async fn partial_upload_is_recorded(db: TestDb) {
    let store = &db.store;
    store
        .create_account("d", None, false, &cli())
        .await
        .unwrap();
    let before = store.now().await.unwrap();
    let id = store
        .record_upload(
            "d",
            "inbound/roster_20260520.csv",
            123_456,
            UploadState::Partial,
            Some("connection dropped before close"),
        )
        .await
        .expect("record");
    store
        .record_upload("d", "inbound/other.csv", 0, UploadState::Received, None)
        .await
        .unwrap();
    let uploads = store.uploads(Some("d"), 10).await.unwrap();
    assert_eq!(uploads.len(), 2);
    let partial = uploads.iter().find(|u| u.id == id).unwrap();
    assert_eq!(partial.account, "d");
    assert_eq!(partial.name, "inbound/roster_20260520.csv");
    assert_eq!(partial.size, 123_456);
    assert_eq!(partial.state, UploadState::Partial);
    assert_eq!(partial.sha256, None);
    assert!(partial.received_at >= before);
    assert_eq!(
        partial.detail.as_deref(),
        Some("connection dropped before close")
    );
    assert_eq!(uploads[0].name, "inbound/other.csv", "newest first");
    assert_eq!(store.uploads(None, 1).await.unwrap().len(), 1);

    let json = serde_json::to_value(partial).unwrap();
    for field in [
        "id",
        "account",
        "name",
        "size",
        "sha256",
        "state",
        "received_at",
    ] {
        assert!(
            json.get(field).is_some(),
            "upload JSON lacks {field}: {json}"
        );
    }
    assert_eq!(json["state"], "partial");

    let err = store
        .record_upload("nobody", "x.csv", 1, UploadState::Partial, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSuchAccount { .. }), "{err}");
    let err = store
        .record_upload("d", "x.csv", -1, UploadState::Partial, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidValue { .. }), "{err}");
}

async fn auth_attempts_are_recorded(db: TestDb) {
    let store = &db.store;
    store
        .create_account("d", None, false, &cli())
        .await
        .unwrap();
    let attempt = |reason: &str, result: AuthResult| NewAuthAttempt {
        account_name: "d".to_owned(),
        client_addr: "198.51.100.4:40022".to_owned(),
        client_banner: "SSH-2.0-WinSCP_release_6.3".to_owned(),
        fingerprint: Some(key(1).fingerprint),
        key_type: Some("ED25519".to_owned()),
        result,
        reason: reason.to_owned(),
    };
    store
        .record_auth_attempt(&attempt("key not installed", AuthResult::Refused))
        .await
        .unwrap();
    let id = store
        .record_auth_attempt(&attempt("accepted", AuthResult::Accepted))
        .await
        .unwrap()
        .id();
    store
        .record_auth_attempt(&NewAuthAttempt {
            account_name: "ghost".to_owned(),
            client_addr: "203.0.113.9:1022".to_owned(),
            client_banner: String::new(),
            fingerprint: None,
            key_type: None,
            result: AuthResult::Refused,
            reason: "unknown account".to_owned(),
        })
        .await
        .unwrap();

    let attempts = store.auth_attempts("d", 10).await.unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].id, id, "newest first");
    assert_eq!(attempts[0].result, AuthResult::Accepted);
    assert_eq!(attempts[1].reason, "key not installed");
    assert_eq!(attempts[1].client_banner, "SSH-2.0-WinSCP_release_6.3");
    assert_eq!(store.auth_attempts("d", 1).await.unwrap().len(), 1);
    let ghost = store.auth_attempts("ghost", 10).await.unwrap();
    assert_eq!(ghost.len(), 1);
    assert_eq!(ghost[0].fingerprint, None);

    let json = serde_json::to_value(&attempts[0]).unwrap();
    for field in [
        "id",
        "at",
        "account",
        "client_addr",
        "client_banner",
        "fingerprint",
        "type",
        "result",
        "reason",
        "count",
        "last_at",
    ] {
        assert!(
            json.get(field).is_some(),
            "attempt JSON lacks {field}: {json}"
        );
    }
    assert_eq!(json["result"], "accepted");
}

async fn concurrent_changes_to_one_account_serialize(db: TestDb) {
    let store = &db.store;
    store
        .create_account("d", None, false, &cli())
        .await
        .unwrap();
    // Eight writers add different keys at once: all succeed.
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.add_keys("d", &[key(n)], 0, &cli()).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("concurrent add");
    }
    assert_eq!(store.keys("d").await.unwrap().len(), 8);

    // Eight writers add the same key at once: exactly one row.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.add_keys("d", &[key(50)], 0, &cli()).await })
        })
        .collect();
    let mut added = 0;
    for task in tasks {
        let outcome = task.await.unwrap().expect("concurrent add of one key");
        if outcome[0].status == AddStatus::Added {
            added += 1;
        }
    }
    assert_eq!(added, 1);
    assert_eq!(store.keys("d").await.unwrap().len(), 9);
}

// ---------------------------------------------------------------- SQLite only

#[tokio::test]
async fn sqlite_database_is_created_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a b#c").join("ferry.db");
    let store = Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect creates folder and file");
    assert_eq!(store.backend(), Backend::Sqlite);
    store.migrate().await.unwrap();
    assert!(path.exists(), "{} was not created", path.display());
    store
        .create_account("d", None, false, &cli())
        .await
        .unwrap();
    store.close().await;

    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn sqlite_relative_and_memory_urls() {
    let store = Store::connect("sqlite::memory:").await.expect("memory");
    store.migrate().await.unwrap();
    store
        .create_account("d", None, false, &cli())
        .await
        .unwrap();
    assert_eq!(store.accounts().await.unwrap().len(), 1);
    let now = store.now().await.unwrap();
    assert!(now > 1_600_000_000_000 && now < 10_000_000_000_000);

    let err = Store::connect("mysql://u:hunter2@db/ferry")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("sqlite://") && text.contains("postgres://"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "password leaked: {text}");
    assert!(matches!(
        Store::connect("sqlite://").await.unwrap_err(),
        StoreError::UnsupportedUrl { .. }
    ));
}

#[tokio::test]
async fn postgres_connect_errors_hide_the_password() {
    // Nothing listens on port 1; the error names the URL without the password.
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        Store::connect("postgres://ferry:hunter2@127.0.0.1:1/ferry"),
    )
    .await
    .expect("connect gives up")
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Connect { .. }), "{text}");
    assert!(
        text.contains("postgres://ferry:***@127.0.0.1:1/ferry"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "password leaked: {text}");
}

async fn lapsed_logins_say_why_each_live_login_no_longer_works(db: TestDb) {
    let store = &db.store;
    for name in ["d", "off"] {
        store
            .create_account(name, None, false, &cli())
            .await
            .unwrap();
    }
    let mut expiring = key(3);
    expiring.options = "expiry-time=\"20200101Z\"".to_owned();
    store
        .add_keys("d", &[key(1), key(2), expiring, key(4)], 0, &cli())
        .await
        .unwrap();
    store.add_keys("off", &[key(5)], 0, &cli()).await.unwrap();
    store
        .revoke_key("d", &key(2).fingerprint, &cli())
        .await
        .unwrap();
    // Replacing the set with key 1 and key 3 retires key 4 at once (no delay).
    let mut expiring = key(3);
    expiring.options = "expiry-time=\"20200101Z\"".to_owned();
    store
        .replace_keys("d", &[key(1), expiring], 0, &cli())
        .await
        .unwrap();
    store
        .set_account_enabled("off", false, &cli())
        .await
        .unwrap();

    let live: Vec<(String, String)> = [
        ("d", 1),
        ("d", 2),
        ("d", 3),
        ("d", 4),
        ("off", 5),
        ("gone", 6),
    ]
    .iter()
    .map(|(a, n)| ((*a).to_owned(), key(*n).fingerprint))
    .collect();
    let lapsed = store.lapsed_logins(&live).await.unwrap();
    let reasons: Vec<(String, String)> = lapsed
        .iter()
        .map(|l| {
            let reason = l.verdict.to_string();
            let reason = reason.split(" at ").next().unwrap_or_default().to_owned();
            (
                format!(
                    "{}/{}",
                    l.account,
                    &l.fingerprint[l.fingerprint.len() - 4..]
                ),
                reason,
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("d/0002", "key revoked"),
        ("d/0003", "key expired"),
        ("d/0004", "key retired"),
        ("gone/0006", "unknown account"),
        ("off/0005", "account disabled"),
    ]
    .iter()
    .map(|(l, r)| ((*l).to_owned(), (*r).to_owned()))
    .collect();
    assert_eq!(reasons, want, "key 1 of d still logs in: it is not listed");

    // More logins than one query takes: the same answers, in chunks.
    let many: Vec<(String, String)> = (0..1200u32)
        .map(|n| {
            (
                "d".to_owned(),
                key(if n == 700 { 2 } else { 1 }).fingerprint,
            )
        })
        .collect();
    let lapsed = store.lapsed_logins(&many).await.unwrap();
    assert_eq!(lapsed.len(), 1, "{lapsed:?}");
    assert!(store.lapsed_logins(&[]).await.unwrap().is_empty());
}
