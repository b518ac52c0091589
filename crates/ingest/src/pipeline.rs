//! The running pipeline: detection feeding the queue, the worker pool
//! emptying it (`pool`), and retention.
//!
//! Detection has three sources, deduplicated by the queue (same account,
//! name, size and mtime is one job): the SFTP layer's "upload finished"
//! events (finished at once), the watcher and the periodic scan (finished
//! once settled). The pool polls the store — never an in-process signal
//! alone — so a batch another node left behind, or a file an admin approved
//! from the command line, is picked up within [`IngestSettings::poll_interval`].
//! An account's files are claimed as a batch once the account is quiet: no
//! new file for `quiet_period`, no SFTP upload in progress, nothing settling.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_store::{Enqueued, SeenFile, Store, format_timestamp};
use tokio::sync::{mpsc, watch};

use crate::archive::remove_expired;
use crate::finished::{Settler, look};
use crate::handoff::HandoffSettings;
use crate::layout::Layout;
use crate::names::printable;
use crate::scan::scan_inbound;
use crate::watch::watch_inbound;
use crate::{MaxRowDrop, Rules};

/// A failed hand-off is retried automatically until a file was taken up
/// this many times; after that it waits for `ferry uploads retry`.
pub const MAX_AUTOMATIC_ATTEMPTS: i64 = 5;

/// A node's lease on a batch; renewed every quarter of it while the batch
/// runs, so a dead node's batch is taken up by another within this long.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// Everything the pipeline needs from the configuration.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// `data_dir`.
    pub data_dir: std::path::PathBuf,
    /// A file written by other means is finished once unchanged this long.
    pub settle: Duration,
    /// An account's files travel once it has been quiet this long.
    pub quiet_period: Duration,
    /// Archive days and reports older than this are removed.
    pub retention: Duration,
    /// How often every `/inbound` is scanned.
    pub scan_interval: Duration,
    /// How often the worker asks the queue for work.
    pub poll_interval: Duration,
    /// The roster guard's limit.
    pub max_row_drop: MaxRowDrop,
    /// The file checks' rules.
    pub rules: Rules,
    /// This node's name in the queue (leases).
    pub node_id: String,
    /// The hand-off.
    pub handoff: HandoffSettings,
    /// Batches (of different accounts) worked on at once by this node.
    pub workers: usize,
    /// No file larger than this is read, whatever its rule says.
    pub max_file_size: u64,
    /// The lease on a batch ([`DEFAULT_LEASE`]), renewed while it runs.
    pub lease: Duration,
}

impl IngestSettings {
    pub(crate) fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }
}

/// A file the SFTP layer closed or renamed under its final name.
#[derive(Debug, Clone)]
pub struct FinishedUpload {
    /// The account.
    pub account: String,
    /// The path under `/inbound` (`x.csv`, `2026/x.csv`).
    pub name: String,
}

/// How often retention runs.
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// Runs until `stop` completes. A batch cut off by the stop keeps its lease
/// in the store and is taken up again at the next start.
pub async fn run(
    mut settings: IngestSettings,
    store: Store,
    finished: mpsc::UnboundedReceiver<FinishedUpload>,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    // FERRY_FILES and FERRY_MANIFEST hold absolute paths, whatever the
    // working directory of the import.
    if let Ok(absolute) = std::path::absolute(&settings.data_dir) {
        settings.data_dir = absolute;
    }
    settings.workers = settings.workers.max(1);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        stop.await;
        let _ = stop_tx.send(true);
    });
    match store.release_node_jobs(&settings.node_id).await {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(files = n, node = %settings.node_id, "taking up the batches this node left unfinished")
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot release this node's unfinished batches; they are taken up when their lease ends")
        }
    }
    let settings = Arc::new(settings);
    let busy = Arc::new(Mutex::new(BTreeSet::new()));
    let worker = tokio::spawn(until_stopped(
        stop_rx.clone(),
        crate::pool::work(settings.clone(), store.clone(), busy.clone()),
    ));
    let retention = tokio::spawn(until_stopped(
        stop_rx.clone(),
        retain(settings.clone(), store.clone()),
    ));
    tracing::info!(node = %settings.node_id, workers = settings.workers, "ingest running");
    until_stopped(stop_rx, detect(settings, store, finished, busy)).await;
    let _ = worker.await;
    let _ = retention.await;
    tracing::info!("ingest stopped");
}

async fn until_stopped(mut stop: watch::Receiver<bool>, job: impl Future<Output = ()>) {
    tokio::select! {
        _ = stop.wait_for(|stop| *stop) => {}
        () = job => {}
    }
}

/// Detection: SFTP events, the watcher, the scans, the settle rule.
async fn detect(
    settings: Arc<IngestSettings>,
    store: Store,
    mut finished: mpsc::UnboundedReceiver<FinishedUpload>,
    busy: Arc<Mutex<BTreeSet<String>>>,
) {
    let layout = Layout::new(&settings.data_dir);
    let (_watcher, mut watched) = match watch_inbound(&layout) {
        Ok((watcher, rx)) => (Some(watcher), rx),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the accounts' /inbound folders; files written by other means than SFTP are found by the scan every {:?}", settings.scan_interval);
            (None, mpsc::unbounded_channel().1)
        }
    };
    let mut settler = Settler::default();
    let mut settle_tick = tokio::time::interval(settle_look_interval(settings.settle));
    let mut scan_tick = tokio::time::interval(settings.scan_interval);
    let mut sftp_open = true;
    loop {
        tokio::select! {
            event = finished.recv(), if sftp_open => match event {
                Some(upload) => {
                    // A burst's uploads are queued together, in one write.
                    let mut files = Vec::new();
                    let mut next = Some(upload);
                    while let Some(upload) = next {
                        files.extend(look(&layout, &upload.account, &upload.name));
                        next = (files.len() < MAX_QUEUED_AT_ONCE)
                            .then(|| finished.try_recv().ok())
                            .flatten();
                    }
                    enqueue(&store, &files).await;
                }
                None => sftp_open = false,
            },
            Some((account, name)) = watched.recv() => settler.note(&account, &name),
            _ = scan_tick.tick() => {
                for (account, name) in scan_inbound(&layout) {
                    settler.note(&account, &name);
                }
            }
            _ = settle_tick.tick() => {
                let settled = settler.settled(&layout, settings.settle);
                *busy.lock().expect("busy accounts lock") = settler.busy_accounts();
                for files in settled.chunks(MAX_QUEUED_AT_ONCE) {
                    enqueue(&store, files).await;
                }
            }
        }
    }
}

/// How often settling files are looked at: a quarter of the settle time,
/// between 100 ms and 5 s.
fn settle_look_interval(settle: Duration) -> Duration {
    (settle / 4).clamp(Duration::from_millis(100), Duration::from_secs(5))
}

/// At most this many finished files are queued in one transaction.
const MAX_QUEUED_AT_ONCE: usize = 500;

async fn enqueue(store: &Store, files: &[SeenFile]) {
    if files.is_empty() {
        return;
    }
    let results = match store.enqueue_all(files).await {
        Ok(results) => results,
        Err(e) => {
            tracing::warn!(files = files.len(), first = %printable(&files[0].name), error = %e, "cannot queue finished files; the next scan tries again");
            return;
        }
    };
    for (file, result) in files.iter().zip(results) {
        match result {
            Ok(Enqueued::New(id)) => {
                tracing::info!(upload = id, account = %file.account, name = %printable(&file.name), size = file.size, "finished file queued");
            }
            Ok(Enqueued::Replaced(id)) => {
                tracing::info!(upload = id, account = %file.account, name = %printable(&file.name), size = file.size, "queued file was replaced before it was taken");
            }
            Ok(Enqueued::AlreadyQueued(_)) => {}
            Err(e) => {
                tracing::warn!(account = %file.account, name = %printable(&file.name), error = %e, "cannot queue a finished file; the next scan tries again");
            }
        }
    }
}

/// Retention, every hour.
async fn retain(settings: Arc<IngestSettings>, store: Store) {
    let layout = Layout::new(&settings.data_dir);
    let mut tick = tokio::time::interval(RETENTION_INTERVAL);
    loop {
        tick.tick().await;
        let Ok(now) = store.now().await else {
            continue;
        };
        let retention_ms = i64::try_from(settings.retention.as_millis()).unwrap_or(i64::MAX);
        let oldest_kept = format_timestamp(now.saturating_sub(retention_ms))[..10].to_owned();
        match remove_expired(&layout, &oldest_kept, settings.retention) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                removed = n,
                "removed archive days and reports older than ingest.retention"
            ),
            Err(e) => tracing::warn!(error = %e, "retention could not list the accounts"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settling_files_are_looked_at_often_enough() {
        assert_eq!(
            settle_look_interval(Duration::from_secs(1)),
            Duration::from_millis(250)
        );
        assert_eq!(
            settle_look_interval(Duration::from_secs(30)),
            Duration::from_secs(5)
        );
        assert_eq!(
            settle_look_interval(Duration::ZERO),
            Duration::from_millis(100)
        );
    }
}
