//! Onboarding at scale: accounts from a CSV file, applied so that running the
//! same file twice changes nothing.
//!
//! This module exists so that `ferry account import` and the API's import
//! share one reading of the file and one plan. The file is read and checked
//! whole first (every bad line is named, and nothing is applied when one is
//! bad); then each row is compared with the account as it is, and only what
//! differs is written, in one transaction, with the usual audit rows.
//!
//! Columns (a header row names them, in any order; only `name` is required):
//! `name`, `display_name`, `contacts` (addresses separated by `;`, spaces or
//! commas inside quotes), `expected_every` (`24h`, `2d`…, or `off`). An empty
//! cell leaves that value as it is; `none` in `contacts` removes them all.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::Row;

use crate::Store;
use crate::accounts::valid_account_name;
use crate::contacts::{normalise_contacts, replace_contacts};
use crate::db;
use crate::error::{Result, StoreError};
use crate::events::insert_audit;
use crate::model::Actor;

/// Most rows one import may hold.
pub const MAX_IMPORT_ROWS: usize = 100_000;

/// One row of the file, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    /// The line it came from (1 is the header).
    pub line: u64,
    /// The account's name.
    pub name: String,
    /// The district's name; `None`: leave it.
    pub display_name: Option<String>,
    /// The contacts; `None`: leave them.
    pub contacts: Option<Vec<String>>,
    /// The expected interval; `None`: leave it; `Some(None)`: off.
    pub expected_every_secs: Option<Option<i64>>,
}

/// Why a file cannot be imported: one entry per bad line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{summary}")]
pub struct ImportError {
    /// What is wrong and what to do, in one sentence.
    pub summary: String,
    /// `line N: …` for each problem.
    pub details: Vec<String>,
}

/// What the import does (or did) to one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportAction {
    /// A new account.
    Create,
    /// An existing account, changed.
    Update,
    /// An existing account that already was as the file says.
    Unchanged,
}

/// One account's outcome. JSON: `line, name, action, changes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportedAccount {
    /// The file's line.
    pub line: u64,
    /// The account.
    pub name: String,
    /// Created, updated or unchanged.
    pub action: ImportAction,
    /// What changed, in words.
    pub changes: Vec<String>,
}

/// `24h`, `2d`, `90m`, `1w` (and combinations like `1d12h`) in seconds.
fn parse_every(text: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        let n: i64 = digits.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        digits.clear();
    }
    (digits.is_empty() && total > 0).then_some(total)
}

/// Reads and checks an import file (UTF-8, with or without a BOM).
///
/// # Errors
/// [`ImportError`] naming every bad line, or the missing header.
pub fn parse_import_csv(bytes: &[u8]) -> std::result::Result<Vec<ImportRow>, ImportError> {
    let fail = |summary: &str, details: Vec<String>| ImportError {
        summary: summary.to_owned(),
        details,
    };
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let header = reader
        .headers()
        .map_err(|e| {
            fail(
                &format!("the file is not CSV ({e}); save it as CSV (UTF-8)"),
                vec![],
            )
        })?
        .clone();
    let column = |want: &str| {
        header
            .iter()
            .position(|h| h.to_ascii_lowercase().replace([' ', '-'], "_") == want)
    };
    let Some(name_col) = column("name") else {
        return Err(fail(
            "the first line must name the columns: name, display_name, contacts, expected_every (only name is required)",
            vec![],
        ));
    };
    let display_col = column("display_name");
    let contacts_col = column("contacts");
    let every_col = column("expected_every");
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                problems.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let line = record.position().map_or(0, csv::Position::line);
        let cell = |col: Option<usize>| col.and_then(|c| record.get(c)).unwrap_or("").trim();
        let name = cell(Some(name_col));
        if record.iter().all(str::is_empty) {
            continue;
        }
        if !valid_account_name(name) {
            problems.push(format!(
                "line {line}: account name `{name}` is not valid: use 1 to 63 characters from a-z, 0-9, `_` and `-`, starting with a letter or digit"
            ));
            continue;
        }
        if let Some(first) = seen.insert(name.to_owned(), line) {
            problems.push(format!(
                "line {line}: account `{name}` is also on line {first}; keep one row per account"
            ));
            continue;
        }
        let display = cell(display_col);
        let contacts = match cell(contacts_col) {
            "" => None,
            "none" => Some(Vec::new()),
            text => {
                let list: Vec<String> = text
                    .split([';', ',', ' '])
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                match normalise_contacts(&list) {
                    Ok(list) => Some(list),
                    Err(e) => {
                        problems.push(format!("line {line}: {e}"));
                        continue;
                    }
                }
            }
        };
        let every = match cell(every_col) {
            "" => None,
            "off" => Some(None),
            text => match parse_every(text) {
                Some(secs) => Some(Some(secs)),
                None => {
                    problems.push(format!(
                        "line {line}: expected_every `{text}` is not a duration: write it like 24h, 2d or 90m, or off"
                    ));
                    continue;
                }
            },
        };
        rows.push(ImportRow {
            line,
            name: name.to_owned(),
            display_name: (!display.is_empty()).then(|| display.to_owned()),
            contacts,
            expected_every_secs: every,
        });
        if rows.len() > MAX_IMPORT_ROWS {
            return Err(fail(
                "the file has more than 100,000 accounts; split it and import the parts one after the other",
                vec![],
            ));
        }
    }
    if !problems.is_empty() {
        return Err(fail(
            "nothing was imported: fix the lines listed below and import the file again",
            problems,
        ));
    }
    Ok(rows)
}

/// An account as it is, for comparing.
struct Current {
    id: i64,
    display_name: Option<String>,
    expected_every_secs: Option<i64>,
    contacts: Vec<String>,
}

/// What `row` changes on `current`, in words.
fn changes(row: &ImportRow, current: Option<&Current>) -> Vec<String> {
    let every = |v: Option<i64>| v.map_or_else(|| "off".to_owned(), |s| format!("{s} s"));
    let mut out = Vec::new();
    let (display, every_now, contacts_now) = match current {
        Some(c) => (
            c.display_name.clone(),
            c.expected_every_secs,
            c.contacts.clone(),
        ),
        None => (None, None, Vec::new()),
    };
    if let Some(d) = &row.display_name
        && display.as_deref() != Some(d.as_str())
    {
        out.push(format!("display name {d:?}"));
    }
    if let Some(e) = row.expected_every_secs
        && e != every_now
    {
        out.push(format!("expected every {}", every(e)));
    }
    if let Some(list) = &row.contacts {
        let same =
            list.len() == contacts_now.len() && list.iter().all(|e| contacts_now.contains(e));
        if !same {
            out.push(if list.is_empty() {
                "no contacts".to_owned()
            } else {
                format!("contacts {}", list.join(", "))
            });
        }
    }
    out
}

impl Store {
    /// Applies `rows` (from [`parse_import_csv`]): creates missing accounts
    /// and changes what differs, in one transaction; with `dry_run`, only
    /// says what it would do. Every change is audited (`account.create`,
    /// `account.import`).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn import_accounts(
        &self,
        rows: &[ImportRow],
        dry_run: bool,
        actor: &Actor,
    ) -> Result<Vec<ImportedAccount>> {
        let mut tx = self.pool.begin().await?;
        let now = db::now(self.backend, &mut *tx).await?;
        let mut current: HashMap<String, Current> = HashMap::new();
        for row in sqlx::query("SELECT id, name, display_name, expected_every_secs FROM accounts")
            .fetch_all(&mut *tx)
            .await?
        {
            current.insert(
                row.try_get("name")?,
                Current {
                    id: row.try_get("id")?,
                    display_name: row.try_get("display_name")?,
                    expected_every_secs: row.try_get("expected_every_secs")?,
                    contacts: Vec::new(),
                },
            );
        }
        let by_id: HashMap<i64, String> = current.iter().map(|(n, c)| (c.id, n.clone())).collect();
        for row in
            sqlx::query("SELECT account_id, email FROM account_contacts ORDER BY created_at, email")
                .fetch_all(&mut *tx)
                .await?
        {
            let id: i64 = row.try_get("account_id")?;
            if let Some(c) = by_id.get(&id).and_then(|name| current.get_mut(name)) {
                c.contacts.push(row.try_get("email")?);
            }
        }
        let mut outcomes = Vec::with_capacity(rows.len());
        for row in rows {
            let existing = current.get(&row.name);
            let changed = changes(row, existing);
            let action = match (existing, changed.is_empty()) {
                (None, _) => ImportAction::Create,
                (Some(_), true) => ImportAction::Unchanged,
                (Some(_), false) => ImportAction::Update,
            };
            if !dry_run && action != ImportAction::Unchanged {
                apply(&mut tx, now, row, existing.map(|c| c.id), &changed, actor).await?;
            }
            outcomes.push(ImportedAccount {
                line: row.line,
                name: row.name.clone(),
                action,
                changes: changed,
            });
        }
        if dry_run {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(outcomes)
    }
}

/// Writes one row's changes (creating the account when `id` is `None`).
async fn apply(
    conn: &mut sqlx::AnyConnection,
    now: i64,
    row: &ImportRow,
    id: Option<i64>,
    changed: &[String],
    actor: &Actor,
) -> Result<()> {
    let id = match id {
        Some(id) => id,
        None => {
            let created = sqlx::query(
                "INSERT INTO accounts (name, display_name, enabled, legacy_clients, created_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(&row.name)
            .bind(row.display_name.as_deref())
            .bind(true)
            .bind(false)
            .bind(now)
            .fetch_one(&mut *conn)
            .await;
            let id: i64 = match created {
                Ok(created) => created.try_get("id")?,
                Err(err) if StoreError::is_unique_violation(&err) => {
                    return Err(StoreError::AccountExists {
                        name: row.name.clone(),
                    });
                }
                Err(err) => return Err(err.into()),
            };
            let detail = format!("created account {} by import (line {})", row.name, row.line);
            insert_audit(conn, now, actor, Some(&row.name), "account.create", &detail).await?;
            id
        }
    };
    if let Some(display) = &row.display_name {
        sqlx::query("UPDATE accounts SET display_name = $1 WHERE id = $2")
            .bind(display)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    if let Some(every) = row.expected_every_secs {
        sqlx::query("UPDATE accounts SET expected_every_secs = $1 WHERE id = $2")
            .bind(every)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    if let Some(contacts) = &row.contacts {
        replace_contacts(conn, id, contacts, now).await?;
    }
    if !changed.is_empty() {
        let detail = format!("import (line {}): {}", row.line, changed.join("; "));
        insert_audit(conn, now, actor, Some(&row.name), "account.import", &detail).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_every("24h"), Some(86_400));
        assert_eq!(parse_every("1d12h"), Some(129_600));
        assert_eq!(parse_every("90m"), Some(5_400));
        for bad in ["", "h", "24", "0h", "1x", "-1h"] {
            assert_eq!(parse_every(bad), None, "{bad}");
        }
    }

    #[test]
    fn reads_columns_in_any_order_and_names_every_bad_line() {
        let rows = parse_import_csv(
            "\u{feff}Expected_Every,name,Contacts,display name\n24h,lincoln-usd,\"it@l.org, b@l.org\",Lincoln Unified\n,springfield,,\noff,x1,none,\n"
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].expected_every_secs, Some(Some(86_400)));
        assert_eq!(
            rows[0].contacts.as_deref().unwrap(),
            ["it@l.org", "b@l.org"]
        );
        assert_eq!(rows[0].display_name.as_deref(), Some("Lincoln Unified"));
        assert_eq!(rows[1].contacts, None);
        assert_eq!(rows[1].expected_every_secs, None);
        assert_eq!(rows[2].contacts, Some(vec![]));
        assert_eq!(rows[2].expected_every_secs, Some(None));

        let err = parse_import_csv(
            b"name,contacts,expected_every\nBad Name,,\nok,not-an-address,\nok2,,soon\nok2,,\n",
        )
        .unwrap_err();
        assert_eq!(err.details.len(), 4, "{:?}", err.details);
        assert!(err.details[0].starts_with("line 2:"), "{:?}", err.details);
        assert!(err.details[1].contains("not-an-address"));
        assert!(err.details[2].contains("soon"));
        assert!(err.details[3].contains("also on line 4"));
        assert!(parse_import_csv(b"account,contacts\nx,\n").is_err());
    }
}
