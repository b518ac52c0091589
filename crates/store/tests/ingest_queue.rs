//! The ingest job queue on SQLite and — the same test bodies — on
//! PostgreSQL when `FERRY_TEST_POSTGRES_URL` is set (see store_api.rs for
//! how to start one): dedup of finished files, batch claims, leases taken
//! up again after a crash, the guard's reference rows, duplicates, admin
//! decisions, and freshness.

mod common;

use common::{TestDb, on_postgres, on_sqlite};
use std::time::{Duration, Instant};

use ferry_store::{Actor, Enqueued, Finish, SeenFile, Store, StoreError, UploadState};

on_both_backends!(
    finished_files_are_queued_once,
    a_quiet_account_is_claimed_as_one_batch_by_one_node,
    an_expired_lease_is_taken_up_again,
    failed_hand_offs_are_retried_until_the_limit,
    guard_reference_and_duplicates_count_handed_off_files_only,
    admin_decisions_put_files_back_in_the_queue_audited,
    accounts_without_expected_uploads_are_stale,
);

// ---------------------------------------------------------------- helpers

fn cli() -> Actor {
    Actor::new("cli:test")
}

fn seen(account: &str, name: &str, size: i64, mtime_ms: i64) -> SeenFile {
    SeenFile {
        account: account.to_owned(),
        name: name.to_owned(),
        size,
        mtime_ms,
    }
}

async fn account(store: &Store, name: &str) {
    store
        .create_account(name, None, false, &cli())
        .await
        .unwrap();
}

async fn queued(store: &Store, name: &str) -> i64 {
    match store
        .enqueue_finished(&seen("d", name, 10, 1))
        .await
        .unwrap()
    {
        Enqueued::New(id) => id,
        other => panic!("{name} was not new: {other:?}"),
    }
}

async fn state(store: &Store, id: i64) -> UploadState {
    store.upload(id).await.unwrap().unwrap().state
}

async fn wait_for_db_time(store: &Store, at: i64) {
    let give_up = Instant::now() + Duration::from_secs(30);
    while store.now().await.expect("now") < at {
        assert!(
            Instant::now() < give_up,
            "the database clock did not reach {at}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const LEASE: i64 = 60_000;

// ---------------------------------------------------------------- bodies

async fn finished_files_are_queued_once(db: TestDb) {
    let store = &db.store;
    account(store, "d").await;
    let first = store
        .enqueue_finished(&seen("d", "x.csv", 10, 1000))
        .await
        .unwrap();
    let Enqueued::New(id) = first else {
        panic!("{first:?}")
    };
    assert_eq!(
        store
            .enqueue_finished(&seen("d", "x.csv", 10, 1000))
            .await
            .unwrap(),
        Enqueued::AlreadyQueued(id),
        "the watcher and the scan seeing the SFTP upload again"
    );
    assert_eq!(
        store
            .enqueue_finished(&seen("d", "x.csv", 12, 2000))
            .await
            .unwrap(),
        Enqueued::Replaced(id),
        "overwritten before it was taken"
    );
    let rows = store.uploads(Some("d"), 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].size, 12);
    assert_eq!(rows[0].state, UploadState::Received);
    assert_eq!(rows[0].attempts, 0);

    // Once taken (checking), the same file is still not queued again …
    let batch = store.claim_batch("d", "n1", LEASE).await.unwrap().unwrap();
    assert_eq!(batch.uploads.len(), 1);
    assert_eq!(
        store
            .enqueue_finished(&seen("d", "x.csv", 12, 2000))
            .await
            .unwrap(),
        Enqueued::AlreadyQueued(id)
    );
    // … but new content under the name is a new upload.
    assert!(matches!(
        store.enqueue_finished(&seen("d", "x.csv", 13, 3000)).await.unwrap(),
        Enqueued::New(other) if other != id
    ));

    let err = store
        .enqueue_finished(&seen("nobody", "x.csv", 1, 1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSuchAccount { .. }), "{err}");
    let err = store
        .enqueue_finished(&seen("d", "x.csv", -1, 1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidValue { .. }), "{err}");
}

async fn a_quiet_account_is_claimed_as_one_batch_by_one_node(db: TestDb) {
    let store = &db.store;
    account(store, "d").await;
    account(store, "e").await;
    let a = queued(store, "a.csv").await;
    let b = queued(store, "b.csv").await;
    assert!(
        store.quiet_accounts(3_600_000).await.unwrap().is_empty(),
        "files that just arrived wait for the quiet period"
    );
    assert_eq!(store.quiet_accounts(0).await.unwrap(), ["d"]);

    // Two nodes race for the account: exactly one gets the files.
    let other = Store::connect(&db.url).await.unwrap();
    let (one, two) = tokio::join!(
        store.claim_batch("d", "n1", LEASE),
        other.claim_batch("d", "n2", LEASE)
    );
    let claims: Vec<_> = [one.unwrap(), two.unwrap()].into_iter().flatten().collect();
    assert_eq!(claims.len(), 1, "one node only");
    let batch = &claims[0];
    assert_eq!(batch.account, "d");
    let mut ids: Vec<i64> = batch.uploads.iter().map(|u| u.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [a, b]);
    for upload in &batch.uploads {
        assert_eq!(upload.state, UploadState::Checking);
        assert_eq!(upload.batch_id, Some(batch.id));
        assert_eq!(upload.attempts, 1);
    }
    assert!(store.claim_batch("d", "n1", LEASE).await.unwrap().is_none());
    assert!(store.claim_batch("e", "n1", LEASE).await.unwrap().is_none());
    assert!(store.quiet_accounts(0).await.unwrap().is_empty());
    assert!(
        store.retake_batch("n3", LEASE, 5).await.unwrap().is_none(),
        "a live lease is not taken"
    );
    other.close().await;
}

async fn an_expired_lease_is_taken_up_again(db: TestDb) {
    let store = &db.store;
    account(store, "d").await;
    let a = queued(store, "a.csv").await;
    let batch = store.claim_batch("d", "n1", 300).await.unwrap().unwrap();
    assert!(store.renew_lease(batch.id, "n1", 300).await.unwrap());
    assert!(
        !store.renew_lease(batch.id, "n2", 300).await.unwrap(),
        "not n2's batch"
    );
    wait_for_db_time(store, store.now().await.unwrap() + 400).await;

    // n1 died; n2 takes the batch up.
    let retaken = store.retake_batch("n2", LEASE, 5).await.unwrap().unwrap();
    assert_eq!(retaken.id, batch.id);
    assert_eq!(retaken.account, "d");
    assert_eq!(retaken.uploads.len(), 1);
    assert_eq!(retaken.uploads[0].id, a);
    assert_eq!(retaken.uploads[0].attempts, 2);
    assert!(store.retake_batch("n3", LEASE, 5).await.unwrap().is_none());

    // A handed-off file not yet archived is taken up too (to archive it),
    // without counting an attempt.
    store
        .mark_handed_off(&[a], "handed over in batch")
        .await
        .unwrap();
    assert_eq!(store.release_node_jobs("n2").await.unwrap(), 1);
    let again = store.retake_batch("n1", LEASE, 5).await.unwrap().unwrap();
    assert_eq!(again.uploads[0].state, UploadState::HandedOff);
    assert_eq!(again.uploads[0].attempts, 2);
    assert!(again.uploads[0].handed_off_at.is_some());

    let finish = Finish {
        state: UploadState::Archived,
        detail: "handed over and archived",
        report: Some("the report"),
        archive_path: Some("archive/2026-11-23/a.csv"),
    };
    store.finish_upload(a, finish).await.unwrap();
    let done = store.upload(a).await.unwrap().unwrap();
    assert_eq!(done.state, UploadState::Archived);
    assert_eq!(
        done.archive_path.as_deref(),
        Some("archive/2026-11-23/a.csv")
    );
    assert_eq!(
        store.upload_report(a).await.unwrap().as_deref(),
        Some("the report")
    );
    assert_eq!(store.release_node_jobs("n1").await.unwrap(), 0);
    assert!(store.retake_batch("n1", LEASE, 5).await.unwrap().is_none());
}

async fn failed_hand_offs_are_retried_until_the_limit(db: TestDb) {
    let store = &db.store;
    account(store, "d").await;
    let a = queued(store, "a.csv").await;
    store.claim_batch("d", "n1", LEASE).await.unwrap().unwrap();
    store.mark_failed(a, "HTTP 500", 0).await.unwrap();
    let failed = store.upload(a).await.unwrap().unwrap();
    assert_eq!(failed.state, UploadState::Failed);
    assert_eq!(failed.last_error.as_deref(), Some("HTTP 500"));
    wait_for_db_time(store, store.now().await.unwrap() + 5).await;

    let retried = store.retake_batch("n1", LEASE, 2).await.unwrap().unwrap();
    assert_eq!(retried.uploads[0].state, UploadState::Checking);
    assert_eq!(retried.uploads[0].attempts, 2);
    store.mark_failed(a, "HTTP 500 again", 0).await.unwrap();
    wait_for_db_time(store, store.now().await.unwrap() + 5).await;
    assert!(
        store.retake_batch("n1", LEASE, 2).await.unwrap().is_none(),
        "two attempts were the limit: it waits for an admin"
    );

    let retried = store.retry_upload(a, &cli()).await.unwrap();
    assert_eq!(retried.state, UploadState::Received);
    assert_eq!(retried.last_error, None);
    assert!(store.claim_batch("d", "n1", LEASE).await.unwrap().is_some());
    let err = store.retry_upload(a, &cli()).await.unwrap_err();
    assert!(matches!(err, StoreError::UploadNotInState { .. }), "{err}");
    assert!(err.to_string().contains("only failed uploads"), "{err}");
}

async fn guard_reference_and_duplicates_count_handed_off_files_only(db: TestDb) {
    let store = &db.store;
    account(store, "d").await;
    let first = queued(store, "students_20261122.csv").await;
    let second = queued(store, "students_20261123.csv").await;
    store.claim_batch("d", "n1", LEASE).await.unwrap().unwrap();
    store
        .record_check(first, "aaa", "students.csv", 100, "r1")
        .await
        .unwrap();
    store
        .record_check(second, "bbb", "students.csv", 50, "r2")
        .await
        .unwrap();
    assert_eq!(
        store
            .previous_accepted_rows("d", "students.csv", second)
            .await
            .unwrap(),
        None,
        "nothing was handed over yet"
    );
    store
        .mark_handed_off(&[first], "handed over")
        .await
        .unwrap();
    assert_eq!(
        store
            .previous_accepted_rows("d", "students.csv", second)
            .await
            .unwrap(),
        Some(100)
    );
    assert_eq!(
        store
            .previous_accepted_rows("d", "students.csv", first)
            .await
            .unwrap(),
        None,
        "a file is not its own reference"
    );
    assert_eq!(
        store
            .handed_off_duplicate("d", "students.csv", "aaa", second)
            .await
            .unwrap(),
        Some(first)
    );
    assert_eq!(
        store
            .handed_off_duplicate("d", "students.csv", "bbb", second)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .handed_off_duplicate("d", "teachers.csv", "aaa", second)
            .await
            .unwrap(),
        None
    );
}

async fn admin_decisions_put_files_back_in_the_queue_audited(db: TestDb) {
    let store = &db.store;
    account(store, "d").await;
    let held = queued(store, "a.csv").await;
    let other = queued(store, "b.csv").await;
    store.claim_batch("d", "n1", LEASE).await.unwrap().unwrap();
    for id in [held, other] {
        let finish = Finish {
            state: UploadState::Held,
            detail: "held for review by the roster guard",
            report: None,
            archive_path: None,
        };
        store.finish_upload(id, finish).await.unwrap();
    }
    let err = store.retry_upload(held, &cli()).await.unwrap_err();
    assert!(matches!(err, StoreError::UploadNotInState { .. }), "{err}");

    let approved = store
        .approve_upload(held, &Actor::new("cli:alice"))
        .await
        .unwrap();
    assert_eq!(approved.state, UploadState::Received);
    assert_eq!(approved.decision.as_deref(), Some("approved"));
    assert_eq!(
        store.upload_decider(held).await.unwrap().as_deref(),
        Some("cli:alice")
    );
    let rejected = store.reject_upload(other, &cli()).await.unwrap();
    assert_eq!(rejected.decision.as_deref(), Some("rejected"));
    let err = store.approve_upload(held, &cli()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot be approved: only held uploads can"),
        "{err}"
    );
    let err = store.approve_upload(9999, &cli()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NoSuchUpload { id: 9999 }),
        "{err}"
    );

    assert_eq!(
        store.quiet_accounts(3_600_000).await.unwrap(),
        ["d"],
        "decided files are ready at once"
    );
    let batch = store.claim_batch("d", "n1", LEASE).await.unwrap().unwrap();
    assert_eq!(batch.uploads.len(), 2);
    assert_eq!(state(store, held).await, UploadState::Checking);

    let actions: Vec<String> = store
        .audit_events(Some("d"), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{} {} {}", e.actor, e.action, e.detail))
        .collect();
    assert!(
        actions.contains(&format!("cli:alice upload.approve upload {held} (a.csv)")),
        "{actions:?}"
    );
    assert!(
        actions.contains(&format!("cli:test upload.reject upload {other} (b.csv)")),
        "{actions:?}"
    );
}

async fn accounts_without_expected_uploads_are_stale(db: TestDb) {
    let store = &db.store;
    account(store, "d").await;
    account(store, "fresh").await;
    account(store, "never").await;
    assert!(
        store.stale_accounts().await.unwrap().is_empty(),
        "nothing is expected"
    );
    for name in ["d", "fresh", "never"] {
        store
            .set_expected_every(name, Some(1), &cli())
            .await
            .unwrap();
    }
    store
        .record_upload("d", "/inbound/x.csv", 5, UploadState::Partial, None)
        .await
        .unwrap();
    wait_for_db_time(store, store.now().await.unwrap() + 1100).await;
    store
        .enqueue_finished(&seen("fresh", "x.csv", 1, 1))
        .await
        .unwrap();
    assert_eq!(
        store.stale_accounts().await.unwrap(),
        ["d", "never"],
        "a partial upload does not count"
    );
    store
        .set_expected_every("never", None, &cli())
        .await
        .unwrap();
    assert_eq!(store.stale_accounts().await.unwrap(), ["d"]);
}
