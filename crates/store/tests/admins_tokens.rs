//! Admin users and API tokens on SQLite and, when `FERRY_TEST_POSTGRES_URL`
//! is set (CI sets it), on PostgreSQL: migration 0002 in both dialects,
//! hashing, lookup, revocation, the role/account rules and the audit rows.

mod common;

use common::{TestDb, on_postgres, on_sqlite};
use ferry_store::{Actor, Role, SessionLimits, Store, StoreError, token_hash};

async fn check(store: Store) {
    let cli = Actor::new("cli:test");
    store
        .create_account("alpha", None, false, &cli)
        .await
        .unwrap();

    // Tokens: shown once, stored hashed, found by secret, revocable.
    let (vendor, token_secret) = store
        .create_api_token(Role::VendorAdmin, None, &cli)
        .await
        .unwrap();
    assert!(token_secret.starts_with("ferry_"));
    let found = store
        .api_token_by_secret(&token_secret)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, vendor);
    assert!(
        store
            .api_token_by_secret("ferry_nope")
            .await
            .unwrap()
            .is_none()
    );
    let (district, district_secret) = store
        .create_api_token(Role::DistrictAdmin, Some("alpha"), &cli)
        .await
        .unwrap();
    assert_eq!(district.account.as_deref(), Some("alpha"));
    let listed = store.api_tokens().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_ne!(token_hash(&token_secret), token_hash(&district_secret));
    let revoked = store.revoke_api_token(district.id, &cli).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(
        store
            .api_token_by_secret(&district_secret)
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store.revoke_api_token(9999, &cli).await,
        Err(StoreError::NoSuchToken { id: 9999 })
    ));
    assert!(
        store
            .create_api_token(Role::DistrictAdmin, None, &cli)
            .await
            .is_err()
    );
    assert!(matches!(
        store
            .create_api_token(Role::DistrictAdmin, Some("nosuch"), &cli)
            .await,
        Err(StoreError::NoSuchAccount { .. })
    ));

    // Admins.
    let admin = store
        .create_admin(
            "root",
            "a long enough passphrase",
            Role::VendorAdmin,
            None,
            &cli,
        )
        .await
        .unwrap();
    assert_eq!(admin.role, Role::VendorAdmin);
    assert_eq!(store.admin("root").await.unwrap(), Some(admin.clone()));
    assert_eq!(
        store
            .verify_admin_password("root", "a long enough passphrase")
            .await
            .unwrap(),
        Some(admin)
    );
    assert!(
        store
            .verify_admin_password("root", "not the passphrase")
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store
            .create_admin(
                "root",
                "a long enough passphrase",
                Role::VendorAdmin,
                None,
                &cli
            )
            .await,
        Err(StoreError::AdminExists { .. })
    ));

    // Sessions: server-side, ended by sign-out, by idling, by age, by
    // disabling the admin or setting a new password.
    let limits = SessionLimits::default();
    let root = store.admin("root").await.unwrap().unwrap();
    let secret = store.start_session(&root, Some("127.0.0.1")).await.unwrap();
    let session = store.session(&secret, limits).await.unwrap().unwrap();
    assert_eq!(session.admin, root);
    assert!(store.session("ferry_nope", limits).await.unwrap().is_none());
    store.end_session(&secret).await.unwrap();
    assert!(store.session(&secret, limits).await.unwrap().is_none());

    let secret = store.start_session(&root, None).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let idle = SessionLimits {
        idle_ms: 5,
        absolute_ms: 60_000,
    };
    assert!(
        store.session(&secret, idle).await.unwrap().is_none(),
        "idled out"
    );
    assert!(
        store.session(&secret, limits).await.unwrap().is_none(),
        "stays ended"
    );
    let secret = store.start_session(&root, None).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let old = SessionLimits {
        idle_ms: 60_000,
        absolute_ms: 5,
    };
    assert!(
        store.session(&secret, old).await.unwrap().is_none(),
        "too old"
    );

    let secret = store.start_session(&root, None).await.unwrap();
    store
        .set_admin_password(root.id, "another long passphrase", &cli)
        .await
        .unwrap();
    assert!(
        store.session(&secret, limits).await.unwrap().is_none(),
        "new password ends it"
    );
    assert!(
        store
            .verify_admin_password("root", "a long enough passphrase")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .verify_admin_password("root", "another long passphrase")
            .await
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        store.set_admin_password(root.id, "short", &cli).await,
        Err(StoreError::InvalidValue { .. })
    ));
    let secret = store.start_session(&root, None).await.unwrap();
    let disabled = store.set_admin_disabled(root.id, true, &cli).await.unwrap();
    assert!(disabled.disabled);
    assert!(
        store.session(&secret, limits).await.unwrap().is_none(),
        "disabling ends it"
    );
    assert!(
        store
            .verify_admin_password("root", "another long passphrase")
            .await
            .unwrap()
            .is_none()
    );
    store
        .set_admin_disabled(root.id, false, &cli)
        .await
        .unwrap();
    assert!(matches!(
        store.set_admin_disabled(9999, true, &cli).await,
        Err(StoreError::NoSuchAdmin { id: 9999 })
    ));
    assert_eq!(store.admin_count().await.unwrap(), 1);
    assert_eq!(store.admins().await.unwrap().len(), 1);

    let audit = store.audit_events(None, 100).await.unwrap();
    for action in [
        "token.create",
        "token.revoke",
        "admin.create",
        "admin.sign-in",
        "admin.password",
        "admin.disable",
        "admin.enable",
    ] {
        assert!(audit.iter().any(|e| e.action == action), "no {action}");
    }
    assert!(
        audit
            .iter()
            .all(|e| !e.detail.contains("passphrase") && !e.detail.contains(&token_secret))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    on_sqlite(|db: TestDb| check(db.store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    on_postgres("admins", |db: TestDb| check(db.store)).await;
}
