//! The worker pool: batches of different accounts side by side.
//!
//! This module exists so that one district's slow hand-off, slow webhook or
//! huge file delays only that district. A dispatcher asks the queue for
//! work — batches left behind first (a dead node's, failed hand-offs due
//! again), then quiet accounts — and runs each batch as its own task, at
//! most [`crate::IngestSettings::workers`] at once, each under its lease's
//! heartbeat ([`crate::lease`]). One account never has two batches in
//! flight: the queue refuses them on every node, and the dispatcher skips
//! accounts it is working on.
//!
//! The queue is asked every `poll_interval`; the quiet accounts it names
//! are kept until the next time, and whenever a batch ends the next of
//! them is claimed at once. A burst of thousands of accounts therefore
//! costs one claim per account, not one scan of the queue per batch.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ferry_store::{ClaimedBatch, Store, StoreError};
use tokio::task::{Id, JoinError, JoinSet};

use crate::batch::{BatchContext, process_batch};
use crate::layout::Layout;
use crate::lease::while_leased;
use crate::pipeline::{IngestSettings, MAX_AUTOMATIC_ATTEMPTS};

/// Runs the pool until dropped; dropping it stops every batch (their
/// leases stay, and the batches are taken up again).
pub(crate) async fn work(
    settings: Arc<IngestSettings>,
    store: Store,
    busy: Arc<Mutex<BTreeSet<String>>>,
) {
    let ctx = Arc::new(BatchContext {
        store,
        layout: Layout::new(&settings.data_dir),
        settings: settings.clone(),
    });
    let mut pool = Pool {
        ctx,
        running: JoinSet::new(),
        accounts: BTreeMap::new(),
        ready: VecDeque::new(),
    };
    let mut tick = tokio::time::interval(settings.poll_interval);
    loop {
        let asked = tokio::select! {
            _ = tick.tick() => pool.ask_the_queue().await,
            Some(ended) = pool.running.join_next_with_id() => {
                pool.ended(ended);
                Ok(())
            }
        };
        if let Err(e) = asked.and(pool.start_ready(&busy).await) {
            tracing::warn!(error = %e, "ingest could not ask the queue for work; trying again");
        }
    }
}

/// The batches this node works on.
struct Pool {
    ctx: Arc<BatchContext>,
    /// One task per batch.
    running: JoinSet<()>,
    /// The account of each running batch's task.
    accounts: BTreeMap<Id, String>,
    /// Quiet accounts not claimed yet, oldest waiting first, as the queue
    /// named them at its last asking.
    ready: VecDeque<String>,
}

impl Pool {
    fn has_room(&self) -> bool {
        self.running.len() < self.ctx.settings.workers
    }

    /// Takes up batches left behind while there is room, then learns which
    /// accounts are quiet.
    async fn ask_the_queue(&mut self) -> Result<(), StoreError> {
        let ctx = self.ctx.clone();
        let settings = &ctx.settings;
        while self.has_room() {
            let Some(batch) = ctx
                .store
                .retake_batch(
                    &settings.node_id,
                    settings.lease_ms(),
                    MAX_AUTOMATIC_ATTEMPTS,
                )
                .await?
            else {
                break;
            };
            self.start(batch);
        }
        let quiet_ms = i64::try_from(settings.quiet_period.as_millis()).unwrap_or(i64::MAX);
        self.ready = ctx.store.quiet_accounts(quiet_ms).await?.into();
        Ok(())
    }

    /// Claims ready accounts' batches until the pool is full.
    async fn start_ready(&mut self, busy: &Mutex<BTreeSet<String>>) -> Result<(), StoreError> {
        let ctx = self.ctx.clone();
        let settings = &ctx.settings;
        while self.has_room() {
            let Some(account) = self.ready.pop_front() else {
                break;
            };
            let settling = busy.lock().expect("busy accounts lock").contains(&account);
            if self.is_working_on(&account)
                || settling
                || upload_in_progress(&ctx.layout, &account, settings.quiet_period)
            {
                continue;
            }
            if let Some(batch) = ctx
                .store
                .claim_batch(&account, &settings.node_id, settings.lease_ms())
                .await?
            {
                self.start(batch);
            }
        }
        Ok(())
    }

    fn is_working_on(&self, account: &str) -> bool {
        self.accounts.values().any(|a| a == account)
    }

    /// Runs `batch` as its own task under its lease.
    fn start(&mut self, batch: ClaimedBatch) {
        if self.is_working_on(&batch.account) {
            // Only when this node's own lease ran out while the batch still
            // runs here; the running task goes on, the lease runs out again.
            tracing::warn!(batch = batch.id, account = %batch.account, "batch of an account this node is working on already; left for later");
            return;
        }
        let ctx = self.ctx.clone();
        let account = batch.account.clone();
        let task = self.running.spawn(async move {
            let account = batch.account.clone();
            let id = batch.id;
            let settings = &ctx.settings;
            let work = process_batch(&ctx, batch);
            match while_leased(&ctx.store, id, &settings.node_id, settings.lease, work).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(batch = id, account = %account, error = %e, "batch stopped; it is taken up again when its lease ends");
                }
                Err(lost) => {
                    tracing::warn!(batch = id, account = %account, ?lost, "batch stopped: this node lost its lease");
                }
            }
        });
        self.accounts.insert(task.id(), account);
    }

    fn ended(&mut self, ended: Result<(Id, ()), JoinError>) {
        let id = match ended {
            Ok((id, ())) => id,
            Err(e) => {
                tracing::error!(error = %e, "a batch task failed; its batch is taken up again when its lease ends");
                e.id()
            }
        };
        self.accounts.remove(&id);
    }
}

/// Whether an SFTP upload of the account (on any node sharing `data_dir`)
/// wrote within `quiet_period`. Older temp files are a crash's leftovers.
fn upload_in_progress(layout: &Layout, account: &str, quiet_period: Duration) -> bool {
    let Ok(entries) = std::fs::read_dir(layout.uploading(account)) else {
        return false;
    };
    entries.flatten().any(|entry| {
        entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_none_or(|age| age < quiet_period)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_upload_temp_files_do_not_block_a_batch() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        assert!(!upload_in_progress(&layout, "d", Duration::from_secs(60)));
        std::fs::create_dir_all(layout.uploading("d")).unwrap();
        std::fs::write(layout.uploading("d").join("a.upload"), "x").unwrap();
        assert!(upload_in_progress(&layout, "d", Duration::from_secs(60)));
        assert!(!upload_in_progress(&layout, "d", Duration::ZERO));
    }
}
