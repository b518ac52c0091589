//! Each account's budget on this node: its limits (the `[sftp]` defaults
//! with the account's own overrides from the store) and its usage (open
//! handles, bytes held), shared by all its sessions here, plus the
//! process's descriptor budget they all draw on.
//!
//! Usage is kept in memory, per node: it is counted by walking the
//! account's `/inbound` when a session starts (so files ingest moved away
//! stop counting) and kept up to date by the sessions themselves. An
//! account's overrides are read when a session starts; a change applies to
//! the sessions that start after it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use ferry_store::{AccountLimits, Store};

use crate::jail::{INBOUND, Jail};
use crate::protocol::budget::{AccountUsage, Budget, DescriptorBudget, Limits};

/// How long a session start waits for the account's overrides before it
/// goes on with the defaults.
const OVERRIDES_TIMEOUT: Duration = Duration::from_secs(5);

/// The budgets of every account with a session on this node.
pub(crate) struct Budgets {
    defaults: Limits,
    descriptors: Arc<DescriptorBudget>,
    usage: Mutex<HashMap<String, Weak<AccountUsage>>>,
}

impl Budgets {
    pub(crate) fn new(defaults: Limits, descriptors: Arc<DescriptorBudget>) -> Budgets {
        Budgets {
            defaults,
            descriptors,
            usage: Mutex::new(HashMap::new()),
        }
    }

    /// The budget of a session of `jail`'s account that starts now: its
    /// limits read from the store, its usage recounted.
    pub(crate) async fn for_session(&self, store: &Store, jail: &Jail) -> Budget {
        let account = jail.account();
        let overrides = match tokio::time::timeout(OVERRIDES_TIMEOUT, store.account(account)).await
        {
            Ok(Ok(Some(found))) => found.limits,
            Ok(Ok(None)) => AccountLimits::default(),
            Ok(Err(e)) => {
                tracing::warn!(account, error = %e, "cannot read the account's limits; using the defaults");
                AccountLimits::default()
            }
            Err(_) => {
                tracing::warn!(
                    account,
                    "the database did not answer in time; using the default limits"
                );
                AccountLimits::default()
            }
        };
        let usage = self.usage_of(account);
        let inbound = jail.root().join(INBOUND);
        let counted = Arc::clone(&usage);
        match tokio::task::spawn_blocking(move || counted.recount(&inbound)).await {
            Ok(Ok(bytes)) => tracing::debug!(account, bytes, "counted the bytes in /inbound"),
            Ok(Err(e)) => tracing::warn!(account, error = %e, "cannot count the bytes in /inbound"),
            Err(e) => tracing::warn!(account, error = %e, "counting /inbound failed"),
        }
        Budget {
            limits: with_overrides(self.defaults, overrides),
            usage,
            descriptors: Arc::clone(&self.descriptors),
        }
    }

    /// The account's usage on this node, shared with its live sessions.
    fn usage_of(&self, account: &str) -> Arc<AccountUsage> {
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(live) = usage.get(account).and_then(Weak::upgrade) {
            return live;
        }
        usage.retain(|_, weak| weak.strong_count() > 0);
        let fresh = Arc::new(AccountUsage::default());
        usage.insert(account.to_owned(), Arc::downgrade(&fresh));
        fresh
    }
}

/// The defaults with an account's overrides applied. An account's handle
/// limit also caps its sessions' (a session cannot hold more than its account).
pub fn with_overrides(defaults: Limits, overrides: AccountLimits) -> Limits {
    let handles_per_account = overrides
        .max_handles
        .map_or(defaults.handles_per_account, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        });
    Limits {
        handles_per_session: defaults.handles_per_session.min(handles_per_account),
        handles_per_account,
        max_file_size: overrides.max_file_size.unwrap_or(defaults.max_file_size),
        quota: overrides.quota.unwrap_or(defaults.quota),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_defaults_one_by_one() {
        let defaults = Limits::default();
        assert_eq!(with_overrides(defaults, AccountLimits::default()), defaults);
        let limits = with_overrides(
            defaults,
            AccountLimits {
                max_handles: Some(10),
                max_file_size: None,
                quota: Some(5),
            },
        );
        assert_eq!(limits.handles_per_account, 10);
        assert_eq!(limits.handles_per_session, 10);
        assert_eq!(limits.max_file_size, defaults.max_file_size);
        assert_eq!(limits.quota, 5);
    }

    #[test]
    fn sessions_of_one_account_share_its_usage_until_the_last_ends() {
        let budgets = Budgets::new(Limits::default(), Arc::new(DescriptorBudget::unlimited()));
        let one = budgets.usage_of("a");
        let two = budgets.usage_of("a");
        assert!(Arc::ptr_eq(&one, &two));
        assert!(!Arc::ptr_eq(&one, &budgets.usage_of("b")));
        drop((one, two));
        let fresh = budgets.usage_of("a");
        assert_eq!(Arc::strong_count(&fresh), 1);
    }
}
