//! Holding a batch's lease while working on it: the heartbeat.
//!
//! A node leases a batch for a short time ([`crate::IngestSettings::lease`])
//! and renews it every quarter of that while the batch runs, however long
//! its hand-off takes; a node that dies stops renewing, and another node
//! takes the batch up once the lease ran out. The other half of the
//! contract is here too: a node that cannot renew — the lease was taken
//! over, or the database was unreachable for most of a lease — stops working
//! on the batch at once (dropping the work kills its hand-off command), so
//! two nodes never hand the same batch over at the same time.

use std::future::Future;
use std::time::{Duration, Instant};

use ferry_store::Store;

/// Why a batch was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaseLost {
    /// The store says this node no longer holds the batch.
    TakenOver,
    /// The lease could not be renewed for three quarters of its length.
    Unrenewable,
}

/// Runs `work` while renewing `node`'s lease on `batch`; `Err` (and `work`
/// dropped, unfinished) when the lease is lost.
pub(crate) async fn while_leased<T>(
    store: &Store,
    batch: i64,
    node: &str,
    lease: Duration,
    work: impl Future<Output = T>,
) -> Result<T, LeaseLost> {
    tokio::select! {
        biased;
        done = work => Ok(done),
        lost = heartbeat(store, batch, node, lease) => Err(lost),
    }
}

/// Renews the lease every quarter of its length; returns when it is lost.
async fn heartbeat(store: &Store, batch: i64, node: &str, lease: Duration) -> LeaseLost {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let mut renewed = Instant::now();
    let mut tick = tokio::time::interval((lease / 4).max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match store.renew_lease(batch, node, lease_ms).await {
            Ok(true) => renewed = Instant::now(),
            Ok(false) => {
                tracing::warn!(
                    batch,
                    node,
                    "another node took this batch over; stopping work on it here"
                );
                return LeaseLost::TakenOver;
            }
            Err(e) if renewed.elapsed() >= lease * 3 / 4 => {
                tracing::warn!(batch, node, error = %e, "the batch's lease could not be renewed in time; stopping work on it so another node can take it up");
                return LeaseLost::Unrenewable;
            }
            Err(e) => {
                tracing::warn!(batch, node, error = %e, "cannot renew the batch's lease; trying again");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_store::{Actor, SeenFile};

    async fn store_with_a_claimed_batch(lease: Duration) -> (tempfile::TempDir, Store, i64) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/ferry.db", dir.path().display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store
            .create_account("d", None, false, &Actor::new("test"))
            .await
            .unwrap();
        let file = SeenFile {
            account: "d".into(),
            name: "x.csv".into(),
            size: 1,
            mtime_ms: 1,
            inode: None,
        };
        store.enqueue_finished(&file).await.unwrap();
        let lease_ms = i64::try_from(lease.as_millis()).unwrap();
        let batch = store
            .claim_batch("d", "n1", lease_ms)
            .await
            .unwrap()
            .unwrap();
        (dir, store, batch.id)
    }

    #[tokio::test]
    async fn work_longer_than_the_lease_keeps_it_and_finishes() {
        let lease = Duration::from_millis(200);
        let (_dir, store, batch) = store_with_a_claimed_batch(lease).await;
        let work = async {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                // Another node asking all along never gets the batch.
                assert!(store.retake_batch("n2", 60_000, 5).await.unwrap().is_none());
            }
            "done"
        };
        assert_eq!(
            while_leased(&store, batch, "n1", lease, work).await,
            Ok("done")
        );
    }

    #[tokio::test]
    async fn work_whose_batch_was_taken_over_is_stopped() {
        let lease = Duration::from_millis(200);
        let (_dir, store, batch) = store_with_a_claimed_batch(lease).await;
        // n1 stalls past its lease (no heartbeat yet); n2 takes the batch over.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(store.retake_batch("n2", 60_000, 5).await.unwrap().is_some());
        let work = tokio::time::sleep(Duration::from_secs(30));
        assert_eq!(
            while_leased(&store, batch, "n1", lease, work).await,
            Err(LeaseLost::TakenOver)
        );
    }
}
