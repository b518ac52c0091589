//! The session's summary of refused requests, so a client that repeats a
//! refused request thousands of times writes a handful of log lines, not
//! one per request.
//!
//! A refusal worth an operator's attention (see `Refusal::class`: a
//! permission refusal, a limit, a refused name) is logged the first time
//! its kind occurs in the session, with its full message; repeats are only
//! counted, and the count is logged every [`SUMMARY_EVERY`] while requests
//! keep coming ("refused 15,600 more MKDIRs in /: permission denied") and
//! once more when the session ends. Ordinary answers (a missing file, the
//! end of a listing) are not logged at all.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::refusal::Refusal;

/// How often the counts of repeated refusals are written.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(5);

/// Kinds of refusal tracked one by one; further kinds of one request type
/// are counted together, so a client cannot grow the map without bound.
const MAX_KINDS: usize = 64;

/// What is counted together: the request, where, and why.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Kind {
    request: &'static str,
    /// "in /inbound", or empty for requests on a handle.
    place: String,
    class: &'static str,
}

#[derive(Debug, Default)]
struct Count {
    /// Refusals since this kind's last line.
    unlogged: u64,
    total: u64,
}

/// The summary of one session's refusals.
#[derive(Debug)]
pub struct RefusalLog {
    account: String,
    counts: HashMap<Kind, Count>,
    /// When the pending counts are due; `None` while nothing is pending.
    due: Option<Instant>,
}

impl RefusalLog {
    pub fn new(account: &str) -> RefusalLog {
        RefusalLog {
            account: account.to_owned(),
            counts: HashMap::new(),
            due: None,
        }
    }

    /// Notes a refused `request`; `folder` names the folder of the path it
    /// was about (`None` for requests on a handle), and is only asked for
    /// when the refusal is one to log.
    pub fn record(
        &mut self,
        request: &'static str,
        folder: impl FnOnce() -> Option<String>,
        refusal: &Refusal,
    ) {
        let Some(class) = refusal.class() else {
            return;
        };
        let mut kind = Kind {
            request,
            place: folder().map(|f| format!("in {f}")).unwrap_or_default(),
            class,
        };
        if !self.counts.contains_key(&kind) && self.counts.len() >= MAX_KINDS {
            kind.place = "elsewhere".to_owned();
        }
        let count = self.counts.entry(kind).or_default();
        count.total += 1;
        if count.total == 1 {
            tracing::info!(account = %self.account, request, reason = %refusal.message, "refused a request");
            return;
        }
        count.unlogged += 1;
        let now = Instant::now();
        match self.due {
            None => self.due = Some(now + SUMMARY_EVERY),
            Some(due) if now >= due => self.flush(),
            Some(_) => {}
        }
    }

    /// Writes the pending counts if they are due.
    pub fn flush_if_due(&mut self) {
        if self.due.is_some_and(|due| Instant::now() >= due) {
            self.flush();
        }
    }

    /// Writes every pending count (at the end of the session, or when due).
    pub fn flush(&mut self) {
        self.due = None;
        for (kind, count) in &mut self.counts {
            if count.unlogged == 0 {
                continue;
            }
            let place = match kind.place.as_str() {
                "" => String::new(),
                place => format!(" {place}"),
            };
            tracing::info!(
                account = %self.account,
                "refused {} more {}s{place}: {} ({} in this session)",
                thousands(count.unlogged),
                kind.request.to_ascii_uppercase(),
                kind.class,
                thousands(count.total)
            );
            count.unlogged = 0;
        }
    }

    /// True while counts wait to be written.
    pub fn pending(&self) -> bool {
        self.due.is_some()
    }
}

impl Drop for RefusalLog {
    fn drop(&mut self) {
        self.flush();
    }
}

/// 15600 → "15,600".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::codec::status;
    use super::super::refusal::refuse;
    use super::*;

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(15_600), "15,600");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn repeats_are_counted_and_ordinary_refusals_ignored() {
        let mut log = RefusalLog::new("d");
        let denied = refuse(status::PERMISSION_DENIED, "/ is read-only");
        let missing = refuse(status::NO_SUCH_FILE, "No such file");
        log.record(
            "open",
            || panic!("not asked for ordinary refusals"),
            &missing,
        );
        assert!(log.counts.is_empty());
        for _ in 0..1000 {
            log.record("mkdir", || Some("/".to_owned()), &denied);
        }
        assert!(log.pending());
        let kind = log.counts.keys().next().unwrap().clone();
        assert_eq!(kind.place, "in /");
        assert_eq!(log.counts[&kind].unlogged, 999);
        log.flush();
        assert!(!log.pending());
        assert_eq!(log.counts[&kind].unlogged, 0);
        assert_eq!(log.counts[&kind].total, 1000);
    }

    #[test]
    fn the_number_of_kinds_is_bounded() {
        let mut log = RefusalLog::new("d");
        let denied = refuse(status::PERMISSION_DENIED, "no");
        for i in 0..1000 {
            log.record("mkdir", || Some(format!("/x{i}")), &denied);
        }
        assert_eq!(log.counts.len(), MAX_KINDS + 1);
    }
}
