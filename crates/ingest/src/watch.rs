//! The watcher: `notify` on `data_dir/accounts`, recursively, so files that
//! appear in any account's `/inbound` — including accounts created after the
//! start — are noticed without waiting for the next scan.
//!
//! It only reports paths (account, name under `/inbound`); whether a file is
//! finished is [`crate::finished::Settler`]'s call. When the watcher cannot
//! start (no inotify, too many watches) the periodic scan still finds every
//! file, later.

use std::path::PathBuf;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::layout::Layout;

/// A running watcher; dropping it stops watching.
pub struct InboundWatcher {
    _watcher: notify::RecommendedWatcher,
}

/// Starts watching; paths under some `/inbound` arrive on the returned channel.
///
/// # Errors
/// The `notify` error, when the platform watcher cannot start.
pub fn watch_inbound(
    layout: &Layout,
) -> notify::Result<(InboundWatcher, mpsc::UnboundedReceiver<(String, String)>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let filter = layout.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else {
            return;
        };
        if event.kind.is_access() || event.kind.is_remove() {
            return;
        }
        for path in event.paths {
            if let Some(found) = filter.inbound_name(&path) {
                let _ = tx.send(found);
            }
        }
    })?;
    let accounts: PathBuf = layout.accounts_dir();
    std::fs::create_dir_all(&accounts).map_err(notify::Error::io)?;
    watcher.watch(&accounts, RecursiveMode::Recursive)?;
    Ok((InboundWatcher { _watcher: watcher }, rx))
}
