//! The overview: every account's last day at a glance, the accounts that
//! need someone first.
//!
//! This module exists so that the page, `GET /api/v1/overview` and `ferry
//! status` show the same facts, counted the same way, in the same order. It
//! reads everything in a handful of set-wise queries (no query per account),
//! so 5,000 accounts and 200,000 uploads answer in well under a second; the
//! filtering, search and paging then run over the computed rows in memory.
//!
//! What the words mean:
//! - *delivered, rejected* (per account and at the top): files received in
//!   the last 24 hours that were handed over, or refused;
//! - *held, failed* (per account): files waiting now for an admin's review,
//!   or whose hand-off failed and waits for a retry, however old; at the
//!   top, those received in the last 24 hours;
//! - *stale*: `expected_every` is set and no file arrived within it;
//! - *no active key*: no key can log in now (a pending one shows its time);
//! - *refused logins*: refused in the last 24 hours, with the most common reason.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::Row;

use crate::Store;
use crate::error::Result;
use crate::model::UploadState;
use crate::refusals::RefusedLogins;
use crate::time::{serialize_ms, serialize_opt_ms};

/// The window of the overview's counts: 24 hours.
pub const OVERVIEW_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// The last file an account sent (connections that dropped are not files).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastFile {
    /// The upload's id.
    pub id: i64,
    /// The name under `/inbound`.
    pub name: String,
    /// When it arrived.
    #[serde(serialize_with = "serialize_ms")]
    pub received_at: i64,
    /// What became of it.
    pub state: UploadState,
    /// The pipeline's words on it.
    pub detail: Option<String>,
}

/// The account's keys in one line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeySummary {
    /// Keys that can log in now (active or retiring).
    pub active: i64,
    /// When the first pending key becomes active, if one is pending.
    #[serde(serialize_with = "serialize_opt_ms")]
    pub pending_until: Option<i64>,
}

/// What needs someone about an account, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attention {
    /// A hand-off failed and waits for a retry.
    Failed,
    /// A file waits for an admin's review.
    Held,
    /// No key can log in (enabled accounts only).
    NoKey,
    /// No file within `expected_every` (enabled accounts only).
    Stale,
    /// A file was refused in the last 24 hours.
    Rejected,
    /// Logins were refused in the last 24 hours.
    Refused,
}

impl Attention {
    /// Every kind, most urgent first.
    pub const ALL: [Attention; 6] = [
        Self::Failed,
        Self::Held,
        Self::NoKey,
        Self::Stale,
        Self::Rejected,
        Self::Refused,
    ];

    /// The name used in filters and JSON (`no-key`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Held => "held",
            Self::NoKey => "no-key",
            Self::Stale => "stale",
            Self::Rejected => "rejected",
            Self::Refused => "refused",
        }
    }
}

/// One account's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverviewRow {
    /// The account's name.
    pub account: String,
    /// The district's name.
    pub display_name: Option<String>,
    /// Logins allowed.
    pub enabled: bool,
    /// The last file, if any.
    pub last_file: Option<LastFile>,
    /// Files received in the last 24 h that were handed over.
    pub delivered: i64,
    /// Files waiting for review now.
    pub held: i64,
    /// Files received in the last 24 h that were refused.
    pub rejected: i64,
    /// Files whose hand-off failed, waiting now.
    pub failed: i64,
    /// No file within `expected_every`.
    pub stale: bool,
    /// How often files are expected, if at all.
    pub expected_every_secs: Option<i64>,
    /// Key state.
    pub keys: KeySummary,
    /// Refused logins in the last 24 h.
    pub refused_logins: i64,
    /// Their most common reason.
    pub refused_reason: Option<String>,
    /// What needs someone, most urgent first; empty when all is well.
    pub attention: Vec<Attention>,
}

impl OverviewRow {
    /// Sort weight: the most urgent kinds weigh most.
    fn urgency(&self) -> u32 {
        self.attention
            .iter()
            .map(|a| 1u32 << (Attention::ALL.len() - 1 - *a as usize))
            .sum()
    }
}

/// The counts at the top of the overview (last 24 h, or now).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OverviewCounts {
    /// Accounts shown.
    pub accounts: i64,
    /// Files received in the last 24 h and handed over.
    pub delivered: i64,
    /// Files received in the last 24 h and held for review.
    pub held: i64,
    /// Files received in the last 24 h and refused.
    pub rejected: i64,
    /// Files received in the last 24 h whose hand-off failed.
    pub failed: i64,
    /// Accounts that are stale now.
    pub stale_accounts: i64,
    /// Enabled accounts with no key that can log in.
    pub no_active_key: i64,
    /// Accounts with refused logins in the last 24 h.
    pub refused_login_accounts: i64,
    /// Accounts that need someone.
    pub needing_attention: i64,
}

/// Which rows to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverviewFilter {
    /// Every account.
    #[default]
    All,
    /// Accounts that need someone.
    Attention,
    /// Accounts with this kind of trouble.
    Only(Attention),
    /// Accounts that need nobody.
    Ok,
}

impl OverviewFilter {
    /// `all`, `attention`, `ok` or an [`Attention`] name; `None` for anything else.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "" | "all" => Some(Self::All),
            "attention" => Some(Self::Attention),
            "ok" => Some(Self::Ok),
            other => Attention::ALL
                .into_iter()
                .find(|a| a.as_str() == other)
                .map(Self::Only),
        }
    }

    /// The filter's name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Attention => "attention",
            Self::Ok => "ok",
            Self::Only(a) => a.as_str(),
        }
    }

    /// Whether `row` passes.
    #[must_use]
    pub fn admits(self, row: &OverviewRow) -> bool {
        match self {
            Self::All => true,
            Self::Attention => !row.attention.is_empty(),
            Self::Ok => row.attention.is_empty(),
            Self::Only(a) => row.attention.contains(&a),
        }
    }

    /// Every filter, in the order the page offers them.
    #[must_use]
    pub fn all() -> Vec<Self> {
        let mut all = vec![Self::All, Self::Attention];
        all.extend(Attention::ALL.into_iter().map(Self::Only));
        all.push(Self::Ok);
        all
    }
}

/// What the caller asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverviewQuery {
    /// Which rows.
    pub filter: OverviewFilter,
    /// Part of the account's name or display name (case-insensitive); empty: any.
    pub search: String,
    /// 1-based page.
    pub page: u32,
    /// Rows per page (1 to 500).
    pub per_page: u32,
}

impl Default for OverviewQuery {
    fn default() -> Self {
        Self {
            filter: OverviewFilter::All,
            search: String::new(),
            page: 1,
            per_page: 50,
        }
    }
}

/// One page of the overview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverviewPage {
    /// The database clock when it was computed.
    #[serde(serialize_with = "serialize_ms")]
    pub generated_at: i64,
    /// Start of the 24-hour window.
    #[serde(serialize_with = "serialize_ms")]
    pub since: i64,
    /// Counts over every account the caller may see (not just this page).
    pub counts: OverviewCounts,
    /// The filter applied.
    pub filter: String,
    /// The search applied.
    pub search: String,
    /// Accounts passing the filter and the search.
    pub total: i64,
    /// This page (1-based).
    pub page: u32,
    /// Rows per page.
    pub per_page: u32,
    /// Pages in all.
    pub pages: u32,
    /// How many accounts each filter would show (with the search applied).
    pub filter_counts: Vec<(String, i64)>,
    /// The rows of this page, those needing attention first.
    pub rows: Vec<OverviewRow>,
}

impl Store {
    /// Every account's row (or only `account`'s), needing attention first,
    /// with the database clock's `now`.
    ///
    /// # Errors
    /// [`crate::StoreError::Database`].
    pub async fn overview_rows(&self, account: Option<&str>) -> Result<(i64, Vec<OverviewRow>)> {
        let (now, rows, _) = self.overview_facts(account).await?;
        Ok((now, rows))
    }

    /// The rows, sorted, and the top counts of files received in the window.
    async fn overview_facts(
        &self,
        account: Option<&str>,
    ) -> Result<(i64, Vec<OverviewRow>, OverviewCounts)> {
        let now = self.now().await?;
        let mut counts = OverviewCounts::default();
        let since = now - OVERVIEW_WINDOW_MS;
        let mut rows = self.account_rows(account, now).await?;
        let index: HashMap<i64, usize> = rows
            .iter()
            .enumerate()
            .map(|(n, (id, _))| (*id, n))
            .collect();
        for (account_id, state, in_window, n) in self.upload_counts(account, since).await? {
            let Some(&at) = index.get(&account_id) else {
                continue;
            };
            if in_window {
                match state.as_str() {
                    "delivered" => counts.delivered += n,
                    "held" => counts.held += n,
                    "rejected" => counts.rejected += n,
                    "failed" => counts.failed += n,
                    _ => {}
                }
            }
            let row = &mut rows[at].1;
            match (state.as_str(), in_window) {
                ("delivered", true) => row.delivered += n,
                ("rejected", true) => row.rejected += n,
                ("held", false) => row.held += n,
                ("failed", false) => row.failed += n,
                _ => {}
            }
        }
        for (account_id, keys) in self.key_summaries(account, now).await? {
            if let Some(&at) = index.get(&account_id) {
                rows[at].1.keys = keys;
            }
        }
        let refused = self.refused_logins_since(since, account).await?;
        let mut rows: Vec<OverviewRow> = rows.into_iter().map(|(_, row)| row).collect();
        for row in &mut rows {
            if let Some(RefusedLogins {
                count, top_reason, ..
            }) = refused.get(&row.account)
            {
                row.refused_logins = *count;
                row.refused_reason = Some(top_reason.clone());
            }
            row.attention = attention(row);
        }
        rows.sort_by(|a, b| {
            b.urgency()
                .cmp(&a.urgency())
                .then_with(|| a.account.cmp(&b.account))
        });
        Ok((now, rows, counts))
    }

    /// The overview page `query` asks for, over every account (`account`
    /// `None`, vendor admins) or one (district admins).
    ///
    /// # Errors
    /// [`crate::StoreError::Database`].
    pub async fn overview(
        &self,
        account: Option<&str>,
        query: &OverviewQuery,
    ) -> Result<OverviewPage> {
        let (now, rows, mut counts) = self.overview_facts(account).await?;
        counts.accounts = rows.len() as i64;
        for row in &rows {
            counts.stale_accounts += i64::from(row.stale);
            counts.no_active_key += i64::from(row.attention.contains(&Attention::NoKey));
            counts.refused_login_accounts += i64::from(row.refused_logins > 0);
            counts.needing_attention += i64::from(!row.attention.is_empty());
        }
        Ok(page_of(now, counts, rows, query))
    }

    /// (account id, row) for every account, with the last file and staleness.
    async fn account_rows(
        &self,
        account: Option<&str>,
        now: i64,
    ) -> Result<Vec<(i64, OverviewRow)>> {
        const SELECT: &str = "SELECT a.id, a.name, a.display_name, \
             CASE WHEN a.enabled THEN 1 ELSE 0 END AS enabled, a.expected_every_secs, \
             a.created_at, u.id AS u_id, u.name AS u_name, u.state AS u_state, \
             u.received_at AS u_received_at, u.detail AS u_detail \
             FROM accounts a LEFT JOIN uploads u ON u.id = (SELECT x.id FROM uploads x \
                 WHERE x.account_id = a.id AND x.state <> 'partial' ORDER BY x.id DESC LIMIT 1)";
        let query = match account {
            Some(name) => {
                sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE a.name = $1"))).bind(name)
            }
            None => sqlx::query(sqlx::AssertSqlSafe(SELECT.to_owned())),
        };
        let rows = query.fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let last_file = match row.try_get::<Option<i64>, _>("u_id")? {
                Some(id) => {
                    let state: String = row.try_get("u_state")?;
                    Some(LastFile {
                        id,
                        name: row.try_get("u_name")?,
                        received_at: row.try_get("u_received_at")?,
                        state: UploadState::parse(&state).ok_or_else(|| {
                            crate::StoreError::Corrupt(format!("upload state `{state}`"))
                        })?,
                        detail: row.try_get("u_detail")?,
                    })
                }
                None => None,
            };
            let expected_every_secs: Option<i64> = row.try_get("expected_every_secs")?;
            let created_at: i64 = row.try_get("created_at")?;
            let last_at = last_file.as_ref().map_or(created_at, |f| f.received_at);
            let stale = expected_every_secs.is_some_and(|secs| last_at + secs * 1000 < now);
            out.push((
                row.try_get("id")?,
                OverviewRow {
                    account: row.try_get("name")?,
                    display_name: row.try_get("display_name")?,
                    enabled: row.try_get::<i64, _>("enabled")? != 0,
                    last_file,
                    delivered: 0,
                    held: 0,
                    rejected: 0,
                    failed: 0,
                    stale,
                    expected_every_secs,
                    keys: KeySummary::default(),
                    refused_logins: 0,
                    refused_reason: None,
                    attention: Vec::new(),
                },
            ));
        }
        Ok(out)
    }

    /// (account id, what, within the window, count): files received since
    /// `since` by outcome (`delivered`, `held`, `rejected`, `failed`;
    /// window true), and files held or failed now (window false).
    async fn upload_counts(
        &self,
        account: Option<&str>,
        since: i64,
    ) -> Result<Vec<(i64, String, bool, i64)>> {
        const RECENT: &str = "SELECT u.account_id, \
             SUM(CASE WHEN u.handed_off_at IS NOT NULL THEN 1 ELSE 0 END) AS delivered, \
             SUM(CASE WHEN u.state = 'held' THEN 1 ELSE 0 END) AS held, \
             SUM(CASE WHEN u.state = 'rejected' THEN 1 ELSE 0 END) AS rejected, \
             SUM(CASE WHEN u.state = 'failed' THEN 1 ELSE 0 END) AS failed \
             FROM uploads u JOIN accounts a ON a.id = u.account_id WHERE u.received_at >= $1";
        const WAITING: &str = "SELECT u.account_id, u.state, COUNT(*) AS n \
             FROM uploads u JOIN accounts a ON a.id = u.account_id \
             WHERE u.state IN ('held', 'failed')";
        let (recent, waiting) = match account {
            Some(name) => (
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{RECENT} AND a.name = $2 GROUP BY u.account_id"
                )))
                .bind(since)
                .bind(name),
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{WAITING} AND a.name = $1 GROUP BY u.account_id, u.state"
                )))
                .bind(name),
            ),
            None => (
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{RECENT} GROUP BY u.account_id"
                )))
                .bind(since),
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{WAITING} GROUP BY u.account_id, u.state"
                ))),
            ),
        };
        let mut out = Vec::new();
        for row in recent.fetch_all(&self.pool).await? {
            let id: i64 = row.try_get("account_id")?;
            for what in ["delivered", "held", "rejected", "failed"] {
                let n: i64 = row.try_get::<Option<i64>, _>(what)?.unwrap_or(0);
                if n > 0 {
                    out.push((id, what.to_owned(), true, n));
                }
            }
        }
        for row in waiting.fetch_all(&self.pool).await? {
            out.push((
                row.try_get("account_id")?,
                row.try_get("state")?,
                false,
                row.try_get("n")?,
            ));
        }
        Ok(out)
    }

    /// Each account's usable keys and first pending activation, at `now`.
    async fn key_summaries(
        &self,
        account: Option<&str>,
        now: i64,
    ) -> Result<HashMap<i64, KeySummary>> {
        const SELECT: &str = "SELECT k.account_id, k.effective_at, k.retire_at, k.options \
             FROM keys k JOIN accounts a ON a.id = k.account_id WHERE k.revoked_at IS NULL";
        let query = match account {
            Some(name) => {
                sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} AND a.name = $1"))).bind(name)
            }
            None => sqlx::query(sqlx::AssertSqlSafe(SELECT.to_owned())),
        };
        let mut out: HashMap<i64, KeySummary> = HashMap::new();
        for row in query.fetch_all(&self.pool).await? {
            let account_id: i64 = row.try_get("account_id")?;
            let effective_at: i64 = row.try_get("effective_at")?;
            let retire_at: Option<i64> = row.try_get("retire_at")?;
            let options: String = row.try_get("options")?;
            let expired = retire_at.is_some_and(|at| at <= now)
                || (!options.is_empty()
                    && ferry_keys::KeyOptions::parse(&options)
                        .ok()
                        .and_then(|o| o.expiry_time())
                        .is_some_and(|secs| {
                            ferry_keys::expiry_has_passed(secs, now.div_euclid(1000))
                        }));
            let entry = out.entry(account_id).or_default();
            if expired {
                continue;
            }
            if effective_at > now {
                entry.pending_until = Some(
                    entry
                        .pending_until
                        .map_or(effective_at, |t| t.min(effective_at)),
                );
            } else {
                entry.active += 1;
            }
        }
        Ok(out)
    }
}

/// What needs someone about `row`, most urgent first.
fn attention(row: &OverviewRow) -> Vec<Attention> {
    let mut out = Vec::new();
    if row.failed > 0 {
        out.push(Attention::Failed);
    }
    if row.held > 0 {
        out.push(Attention::Held);
    }
    if row.enabled && row.keys.active == 0 {
        out.push(Attention::NoKey);
    }
    if row.enabled && row.stale {
        out.push(Attention::Stale);
    }
    if row.rejected > 0 {
        out.push(Attention::Rejected);
    }
    if row.refused_logins > 0 {
        out.push(Attention::Refused);
    }
    out
}

/// Whether `row` matches `search` (already lower-case): a part of the
/// account's name or display name.
fn matches_search(row: &OverviewRow, search: &str) -> bool {
    search.is_empty()
        || row.account.contains(search)
        || row
            .display_name
            .as_deref()
            .is_some_and(|d| d.to_lowercase().contains(search))
}

/// The page of `rows` (sorted) that `query` asks for.
fn page_of(
    now: i64,
    counts: OverviewCounts,
    rows: Vec<OverviewRow>,
    query: &OverviewQuery,
) -> OverviewPage {
    let search = query.search.trim().to_lowercase();
    let searched: Vec<OverviewRow> = rows
        .into_iter()
        .filter(|row| matches_search(row, &search))
        .collect();
    let filter_counts = OverviewFilter::all()
        .into_iter()
        .map(|f| {
            let n = searched.iter().filter(|row| f.admits(row)).count() as i64;
            (f.as_str().to_owned(), n)
        })
        .collect();
    let matching: Vec<OverviewRow> = searched
        .into_iter()
        .filter(|row| query.filter.admits(row))
        .collect();
    let per_page = query.per_page.clamp(1, 500);
    let total = matching.len();
    let pages = u32::try_from(total.div_ceil(per_page as usize))
        .unwrap_or(u32::MAX)
        .max(1);
    let page = query.page.clamp(1, pages);
    let rows = matching
        .into_iter()
        .skip((page as usize - 1) * per_page as usize)
        .take(per_page as usize)
        .collect();
    OverviewPage {
        generated_at: now,
        since: now - OVERVIEW_WINDOW_MS,
        counts,
        filter: query.filter.as_str().to_owned(),
        search: query.search.trim().to_owned(),
        total: total as i64,
        page,
        per_page,
        pages,
        filter_counts,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, attention: Vec<Attention>) -> OverviewRow {
        OverviewRow {
            account: name.to_owned(),
            display_name: Some(format!("{name} Unified")),
            enabled: true,
            last_file: None,
            delivered: 0,
            held: 0,
            rejected: 0,
            failed: 0,
            stale: false,
            expected_every_secs: None,
            keys: KeySummary::default(),
            refused_logins: 0,
            refused_reason: None,
            attention,
        }
    }

    #[test]
    fn filters_search_and_pages() {
        let rows = vec![
            row("alpha", vec![Attention::Held]),
            row("beta", vec![]),
            row("gamma", vec![Attention::Stale, Attention::Refused]),
        ];
        let query = OverviewQuery {
            filter: OverviewFilter::Attention,
            per_page: 1,
            page: 2,
            ..OverviewQuery::default()
        };
        let page = page_of(0, OverviewCounts::default(), rows.clone(), &query);
        assert_eq!((page.total, page.pages, page.page), (2, 2, 2));
        assert_eq!(page.rows[0].account, "gamma");
        let query = OverviewQuery {
            search: "BETA uni".to_owned(),
            ..OverviewQuery::default()
        };
        let page = page_of(0, OverviewCounts::default(), rows.clone(), &query);
        assert_eq!(page.rows.len(), 1);
        assert_eq!(page.rows[0].account, "beta");
        assert!(page.filter_counts.contains(&("ok".to_owned(), 1)));
        assert!(page.filter_counts.contains(&("attention".to_owned(), 0)));
        assert_eq!(
            OverviewFilter::parse("no-key"),
            Some(OverviewFilter::Only(Attention::NoKey))
        );
        assert_eq!(OverviewFilter::parse("bogus"), None);
    }

    #[test]
    fn urgency_orders_failed_before_held_before_refused() {
        let failed = row("a", vec![Attention::Failed]);
        let held_and_refused = row("b", vec![Attention::Held, Attention::Refused]);
        let refused = row("c", vec![Attention::Refused]);
        assert!(failed.urgency() > held_and_refused.urgency());
        assert!(held_and_refused.urgency() > refused.urgency());
        assert_eq!(row("d", vec![]).urgency(), 0);
    }
}
