//! Readiness for load balancers: does this node's database answer?
//!
//! `/healthz` answers 200 only when the database answers `SELECT 1` within
//! [`DATABASE_CHECK_TIMEOUT`], and 503 with the reason otherwise, so a load
//! balancer stops sending districts to a node that cannot log anyone in.
//! (`/livez` answers whenever the process serves HTTP and needs nothing
//! here.) The route needs no sign-in, so one answer is reused for
//! [`REUSE_FOR`] and concurrent probes wait for one check: a flood of probes
//! is not a flood of queries.

use std::time::Duration;

use ferry_store::Store;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long the database has to answer `SELECT 1`.
pub const DATABASE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one check's answer is reused.
const REUSE_FOR: Duration = Duration::from_secs(1);

/// The last database check and its answer (`Err`: why it failed).
#[derive(Debug, Default)]
pub(crate) struct HealthCheck {
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl HealthCheck {
    /// Whether the database answers; `Err` says why not.
    pub(crate) async fn database(&self, store: &Store) -> Result<(), String> {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = last.as_ref()
            && at.elapsed() < REUSE_FOR
        {
            return answer.clone();
        }
        let answer = match tokio::time::timeout(DATABASE_CHECK_TIMEOUT, store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "the database did not answer SELECT 1 within {DATABASE_CHECK_TIMEOUT:?}; \
                 check that the database server is running and reachable at [database] url"
            )),
        };
        *last = Some((Instant::now(), answer.clone()));
        answer
    }
}
