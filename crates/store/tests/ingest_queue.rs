//! The ingest job queue on SQLite and — the same test bodies — on
//! PostgreSQL when `FERRY_TEST_POSTGRES_URL` is set (see store_api.rs for
//! how to start one): dedup of finished files, batch claims, leases taken
//! up again after a crash, the guard's reference rows, duplicates, admin
//! decisions, and freshness; batches of several accounts in flight at once
//! (one per account, on any node), heartbeats, and the vendor's hand-off
//! detail kept apart from the district's.

mod common;

use common::{TestDb, on_postgres, on_sqlite};
use std::time::{Duration, Instant};

use ferry_store::{
    Actor, Enqueued, Finish, HandoffDetail, SeenFile, Store, StoreError, UploadState,
};

on_both_backends!(
    finished_files_are_queued_once,
    a_quiet_account_is_claimed_as_one_batch_by_one_node,
    an_expired_lease_is_taken_up_again,
    failed_hand_offs_are_retried_until_the_limit,
    guard_reference_and_duplicates_count_handed_off_files_only,
    admin_decisions_put_files_back_in_the_queue_audited,
    accounts_without_expected_uploads_are_stale,
    batches_of_different_accounts_are_in_flight_at_once_one_per_account,
    a_renewed_lease_is_never_taken_over_and_an_expired_one_is,
    a_due_retry_waits_while_its_account_has_a_live_batch,
    a_claim_and_a_retake_of_one_account_on_two_nodes_never_both_win,
    all_batches_of_a_restarted_node_are_released_and_retaken_one_by_one,
    the_vendors_handoff_detail_is_kept_apart_from_the_districts,
    a_file_seen_again_after_it_was_processed_is_not_queued_again,
    files_held_together_travel_together_after_the_last_decision,
    a_burst_is_queued_in_one_call_with_a_result_per_file,
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
        inode: None,
    }
}

async fn account(store: &Store, name: &str) {
    store
        .create_account(name, None, false, &cli())
        .await
        .unwrap();
}

async fn queued(store: &Store, name: &str) -> i64 {
    queued_in(store, "d", name).await
}

async fn queued_in(store: &Store, account: &str, name: &str) -> i64 {
    match store
        .enqueue_finished(&seen(account, name, 10, 1))
        .await
        .unwrap()
    {
        Enqueued::New(id) => id,
        other => panic!("{account}/{name} was not new: {other:?}"),
    }
}

/// Archives every file of a batch (its node is done with it).
async fn finish_all(store: &Store, ids: &[i64]) {
    for &id in ids {
        let finish = Finish {
            state: UploadState::Archived,
            detail: "handed over and archived",
            report: None,
            archive_path: None,
        };
        store.finish_upload(id, finish).await.unwrap();
    }
}

fn ids(batch: &ferry_store::ClaimedBatch) -> Vec<i64> {
    batch.uploads.iter().map(|u| u.id).collect()
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
    store
        .mark_failed(a, "the vendor's import did not accept it", "HTTP 500", 0)
        .await
        .unwrap();
    let failed = store.upload(a).await.unwrap().unwrap();
    assert_eq!(failed.state, UploadState::Failed);
    assert_eq!(failed.last_error.as_deref(), Some("HTTP 500"));
    assert_eq!(
        failed.detail.as_deref(),
        Some("the vendor's import did not accept it")
    );
    wait_for_db_time(store, store.now().await.unwrap() + 5).await;

    let retried = store.retake_batch("n1", LEASE, 2).await.unwrap().unwrap();
    assert_eq!(retried.uploads[0].state, UploadState::Checking);
    assert_eq!(retried.uploads[0].attempts, 2);
    store
        .mark_failed(a, "not accepted", "HTTP 500 again", 0)
        .await
        .unwrap();
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
        .record_check(first, Some("aaa"), "students.csv", 100, "r1")
        .await
        .unwrap();
    store
        .record_check(second, Some("bbb"), "students.csv", 50, "r2")
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

async fn batches_of_different_accounts_are_in_flight_at_once_one_per_account(db: TestDb) {
    let store = &db.store;
    account(store, "d").await;
    account(store, "e").await;
    let a = queued_in(store, "d", "a.csv").await;
    let b = queued_in(store, "e", "b.csv").await;
    assert_eq!(store.quiet_accounts(0).await.unwrap(), ["d", "e"]);
    let of_d = store.claim_batch("d", "n1", LEASE).await.unwrap().unwrap();
    let of_e = store.claim_batch("e", "n1", LEASE).await.unwrap().unwrap();
    assert_ne!(of_d.id, of_e.id);
    assert_eq!((ids(&of_d), ids(&of_e)), (vec![a], vec![b]));

    // A new file of d while d's batch is in flight waits for it, on every node.
    let c = queued_in(store, "d", "c.csv").await;
    assert!(
        store.quiet_accounts(0).await.unwrap().is_empty(),
        "d has a batch in flight"
    );
    let other = Store::connect(&db.url).await.unwrap();
    assert!(other.claim_batch("d", "n2", LEASE).await.unwrap().is_none());
    assert!(store.claim_batch("d", "n1", LEASE).await.unwrap().is_none());
    assert_eq!(state(store, c).await, UploadState::Received);

    // Renewing one batch's lease leaves the other alone; both stay n1's.
    assert!(store.renew_lease(of_d.id, "n1", LEASE).await.unwrap());
    assert!(store.renew_lease(of_e.id, "n1", LEASE).await.unwrap());
    assert!(!other.renew_lease(of_d.id, "n2", LEASE).await.unwrap());

    // e finishing does not free d; d finishing does.
    finish_all(store, &[b]).await;
    assert!(other.claim_batch("d", "n2", LEASE).await.unwrap().is_none());
    assert!(
        !store.renew_lease(of_e.id, "n1", LEASE).await.unwrap(),
        "nothing of a finished batch is left to lease"
    );
    finish_all(store, &[a]).await;
    assert_eq!(store.quiet_accounts(0).await.unwrap(), ["d"]);
    let next = other.claim_batch("d", "n2", LEASE).await.unwrap().unwrap();
    assert_eq!(ids(&next), [c], "the waiting file travels next, alone");
    other.close().await;
}

async fn a_renewed_lease_is_never_taken_over_and_an_expired_one_is(db: TestDb) {
    let store = &db.store;
    account(store, "d").await;
    let a = queued(store, "a.csv").await;
    let batch = store.claim_batch("d", "n1", 300).await.unwrap().unwrap();
    let other = Store::connect(&db.url).await.unwrap();
    // Heartbeats every 100 ms for three lease lengths: never taken over.
    let until = store.now().await.unwrap() + 900;
    while store.now().await.unwrap() < until {
        assert!(store.renew_lease(batch.id, "n1", 300).await.unwrap());
        assert!(
            other.retake_batch("n2", LEASE, 5).await.unwrap().is_none(),
            "a batch whose lease is renewed belongs to its node"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The heartbeats stop (the node died): the lease runs out.
    wait_for_db_time(store, store.now().await.unwrap() + 400).await;
    let retaken = other.retake_batch("n2", LEASE, 5).await.unwrap().unwrap();
    assert_eq!((retaken.id, ids(&retaken)), (batch.id, vec![a]));
    assert!(
        !store.renew_lease(batch.id, "n1", 300).await.unwrap(),
        "n1 learns at its next heartbeat that it lost the batch"
    );
    other.close().await;
}

async fn a_due_retry_waits_while_its_account_has_a_live_batch(db: TestDb) {
    let store = &db.store;
    account(store, "d").await;
    let a = queued(store, "a.csv").await;
    store.claim_batch("d", "n1", LEASE).await.unwrap().unwrap();
    store
        .mark_failed(a, "not accepted", "HTTP 503", 0)
        .await
        .unwrap();
    // A new file arrives and travels while a's retry is not due yet …
    let b = queued(store, "b.csv").await;
    let second = store.claim_batch("d", "n1", LEASE).await.unwrap().unwrap();
    assert_eq!(ids(&second), [b]);
    wait_for_db_time(store, store.now().await.unwrap() + 5).await;
    // … and a's retry, due now, waits until that batch is done.
    assert!(
        store.retake_batch("n2", LEASE, 5).await.unwrap().is_none(),
        "one batch per account in flight"
    );
    finish_all(store, &[b]).await;
    let retried = store.retake_batch("n2", LEASE, 5).await.unwrap().unwrap();
    assert_eq!(ids(&retried), [a]);
    assert_eq!(retried.uploads[0].state, UploadState::Checking);
}

async fn a_claim_and_a_retake_of_one_account_on_two_nodes_never_both_win(db: TestDb) {
    let store = &db.store;
    account(store, "d").await;
    let other = Store::connect(&db.url).await.unwrap();
    for round in 0..5 {
        let failed = queued(store, &format!("failed-{round}.csv")).await;
        store.claim_batch("d", "n1", LEASE).await.unwrap().unwrap();
        store
            .mark_failed(failed, "no", "HTTP 500", 0)
            .await
            .unwrap();
        let fresh = queued(store, &format!("fresh-{round}.csv")).await;
        wait_for_db_time(store, store.now().await.unwrap() + 5).await;
        let (claimed, retaken) = tokio::join!(
            store.claim_batch("d", "n1", LEASE),
            other.retake_batch("n2", LEASE, 5)
        );
        let won: Vec<_> = [claimed.unwrap(), retaken.unwrap()]
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(
            won.len(),
            1,
            "round {round}: exactly one batch of d in flight"
        );
        finish_all(store, &ids(&won[0])).await;
        // The loser's files travel afterwards.
        let rest = match store.claim_batch("d", "n1", LEASE).await.unwrap() {
            Some(batch) => batch,
            None => other.retake_batch("n2", LEASE, 5).await.unwrap().unwrap(),
        };
        let mut all = [ids(&won[0]), ids(&rest)].concat();
        all.sort_unstable();
        assert_eq!(all, [failed, fresh], "round {round}");
        finish_all(store, &ids(&rest)).await;
    }
    other.close().await;
}

async fn all_batches_of_a_restarted_node_are_released_and_retaken_one_by_one(db: TestDb) {
    let store = &db.store;
    let mut files = Vec::new();
    for name in ["d", "e", "f"] {
        account(store, name).await;
        files.push(queued_in(store, name, "x.csv").await);
        store.claim_batch(name, "n1", LEASE).await.unwrap().unwrap();
    }
    assert_eq!(store.release_node_jobs("n1").await.unwrap(), 3);
    let mut retaken = Vec::new();
    while let Some(batch) = store.retake_batch("n1", LEASE, 5).await.unwrap() {
        retaken.push((batch.account.clone(), ids(&batch)));
        assert!(retaken.len() <= 3, "each batch once: {retaken:?}");
    }
    retaken.sort();
    assert_eq!(
        retaken,
        [
            ("d".to_owned(), vec![files[0]]),
            ("e".to_owned(), vec![files[1]]),
            ("f".to_owned(), vec![files[2]])
        ]
    );
}

async fn the_vendors_handoff_detail_is_kept_apart_from_the_districts(db: TestDb) {
    let store = &db.store;
    account(store, "d").await;
    let a = queued(store, "a.csv").await;
    let b = queued(store, "b.csv").await;
    store.claim_batch("d", "n1", LEASE).await.unwrap().unwrap();
    assert_eq!(store.upload(a).await.unwrap().unwrap().handoff, None);
    let detail = HandoffDetail {
        command_exit_status: Some(0),
        command_output: Some("imported 10 rows on db-host-7".into()),
        webhook_url: Some("https://hooks.vendor.example/in".into()),
        webhook_status: Some(502),
        webhook_body: Some("upstream db-host-7 down".into()),
    };
    store.record_handoff(&[a, b], &detail).await.unwrap();
    let district = "the vendor's import did not accept this batch";
    store
        .mark_failed(a, district, "webhook answered HTTP 502", 60_000)
        .await
        .unwrap();
    let upload = store.upload(a).await.unwrap().unwrap();
    assert_eq!(upload.handoff.as_ref(), Some(&detail));
    assert_eq!(
        upload.last_error.as_deref(),
        Some("webhook answered HTTP 502")
    );
    assert_eq!(upload.detail.as_deref(), Some(district));
    let listed = store.uploads(Some("d"), 10).await.unwrap();
    assert!(listed.iter().all(|u| u.handoff.as_ref() == Some(&detail)));

    let shown = serde_json::to_string(&upload.clone().for_district()).unwrap();
    for vendor_only in ["db-host-7", "hooks.vendor.example", "HTTP 502"] {
        assert!(!shown.contains(vendor_only), "{vendor_only} in {shown}");
    }
    assert!(shown.contains(district), "{shown}");
    let vendor = serde_json::to_value(&upload).unwrap();
    assert_eq!(vendor["handoff"]["webhook_status"], 502);
    assert_eq!(vendor["handoff"]["command_exit_status"], 0);
}

async fn a_file_seen_again_after_it_was_processed_is_not_queued_again(db: TestDb) {
    let store = &db.store;
    account(store, "d").await;
    let file = SeenFile {
        inode: Some(7),
        ..seen("d", "x.csv", 10, 1000)
    };
    let Enqueued::New(id) = store.enqueue_finished(&file).await.unwrap() else {
        panic!("new")
    };
    let batch = store.claim_batch("d", "n1", LEASE).await.unwrap().unwrap();
    finish_all(store, &ids(&batch)).await;
    // Another node's watcher looked at the file just before it was taken.
    assert_eq!(
        store.enqueue_finished(&file).await.unwrap(),
        Enqueued::AlreadyQueued(id)
    );
    // A new upload under the name (a new inode), even with the same size
    // and a preserved modification time, is a new file.
    let again = SeenFile {
        inode: Some(8),
        ..file.clone()
    };
    assert!(matches!(
        store.enqueue_finished(&again).await.unwrap(),
        Enqueued::New(other) if other != id
    ));
}

async fn files_held_together_travel_together_after_the_last_decision(db: TestDb) {
    let store = &db.store;
    account(store, "d").await;
    let held: Vec<i64> = [
        queued(store, "a.csv").await,
        queued(store, "b.csv").await,
        queued(store, "c.csv").await,
    ]
    .into();
    store.claim_batch("d", "n1", LEASE).await.unwrap().unwrap();
    for &id in &held {
        let finish = Finish {
            state: UploadState::Held,
            detail: "held for review by the roster guard",
            report: None,
            archive_path: None,
        };
        store.finish_upload(id, finish).await.unwrap();
    }
    // Decisions one by one, as an admin clicks through them: none of the
    // decided files travels while another of their batch is still held,
    // not even with a new file of the account being claimed.
    store.reject_upload(held[2], &cli()).await.unwrap();
    store.approve_upload(held[0], &cli()).await.unwrap();
    assert!(store.quiet_accounts(0).await.unwrap().is_empty());
    assert!(store.claim_batch("d", "n1", LEASE).await.unwrap().is_none());
    let new = queued(store, "d.csv").await;
    let alone = store.claim_batch("d", "n1", LEASE).await.unwrap().unwrap();
    assert_eq!(ids(&alone), [new]);
    finish_all(store, &[new]).await;
    assert_eq!(state(store, held[0]).await, UploadState::Received);

    store.approve_upload(held[1], &cli()).await.unwrap();
    assert_eq!(store.quiet_accounts(3_600_000).await.unwrap(), ["d"]);
    let together = store.claim_batch("d", "n1", LEASE).await.unwrap().unwrap();
    let mut claimed = ids(&together);
    claimed.sort_unstable();
    assert_eq!(claimed, held);
}

async fn a_burst_is_queued_in_one_call_with_a_result_per_file(db: TestDb) {
    let store = &db.store;
    account(store, "d").await;
    account(store, "e").await;
    let known = queued_in(store, "e", "old.csv").await;
    let files = [
        seen("e", "new.csv", 5, 1),
        seen("d", "new.csv", 5, 1),
        seen("e", "old.csv", 10, 1),
        seen("gone", "x.csv", 5, 1),
        seen("d", "bad.csv", -1, 1),
        seen("d", "new.csv", 5, 1),
    ];
    let results = store.enqueue_all(&files).await.unwrap();
    assert_eq!(results.len(), files.len());
    let Ok(Enqueued::New(e_new)) = results[0] else {
        panic!("{:?}", results[0])
    };
    let Ok(Enqueued::New(d_new)) = results[1] else {
        panic!("{:?}", results[1])
    };
    assert!(matches!(results[2], Ok(Enqueued::AlreadyQueued(id)) if id == known));
    assert!(
        matches!(&results[3], Err(StoreError::NoSuchAccount { name }) if name == "gone"),
        "{:?}",
        results[3]
    );
    assert!(matches!(results[4], Err(StoreError::InvalidValue { .. })));
    // The same file twice in one burst is queued once.
    assert!(matches!(results[5], Ok(Enqueued::AlreadyQueued(id)) if id == d_new));
    assert_eq!(store.quiet_accounts(0).await.unwrap(), ["e", "d"]);
    let batch = store.claim_batch("e", "n1", LEASE).await.unwrap().unwrap();
    let mut claimed = ids(&batch);
    claimed.sort_unstable();
    assert_eq!(claimed, [known, e_new]);
}
