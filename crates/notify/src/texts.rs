//! What every message says: what happened and what to do, in the vendor's
//! words for the vendor and in the district's words for the district.
//!
//! Pure functions of the facts the fan-out gathered: no store, no clock.

use ferry_store::{NoticeKind, OverviewPage, Upload, format_timestamp};

/// A subject and a plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    /// The subject line.
    pub subject: String,
    /// The body.
    pub body: String,
}

/// What a message about one event may say.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The account's name.
    pub account: String,
    /// The district's name.
    pub display_name: Option<String>,
    /// The upload concerned.
    pub upload: Option<Upload>,
    /// Rows of the last accepted file of the same name (held files).
    pub previous_rows: Option<i64>,
    /// The account's last file's time (stale).
    pub last_file_at: Option<i64>,
    /// The expected interval (stale), seconds.
    pub expected_every_secs: Option<i64>,
    /// The key concerned: fingerprint, comment, expiry (key expiring).
    pub key: Option<(String, String, i64)>,
    /// The event's detail (the refusal count and reason…).
    pub detail: String,
    /// The admin web's address.
    pub web_url: String,
}

impl Facts {
    fn district(&self) -> String {
        match &self.display_name {
            Some(name) => format!("{name} ({})", self.account),
            None => self.account.clone(),
        }
    }

    fn file(&self) -> &str {
        self.upload
            .as_ref()
            .map_or("your file", |u| u.name.as_str())
    }

    fn page(&self, anchor: &str) -> String {
        format!("{}/accounts/{}{anchor}", self.web_url, self.account)
    }

    /// `850 rows, 15% fewer than the last accepted file (1,000 rows)`.
    fn row_drop(&self) -> String {
        let rows = self.upload.as_ref().and_then(|u| u.rows).unwrap_or(0);
        match self.previous_rows {
            _ if rows == 0 => "it has a header and no rows".to_owned(),
            Some(prev) if prev > rows => format!(
                "it has {} rows, {}% fewer than the last accepted file ({} rows)",
                thousands(rows),
                ((prev - rows) * 100 + prev / 2) / prev,
                thousands(prev)
            ),
            _ => format!("it has {} rows", thousands(rows)),
        }
    }

    /// The refused logins' count and reason, from the event's detail.
    fn refusals(&self) -> (String, String) {
        match self.detail.split_once('\t') {
            Some((n, reason)) => (n.to_owned(), reason.to_owned()),
            None => (String::new(), self.detail.clone()),
        }
    }
}

fn thousands(n: i64) -> String {
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// `2026-12-07 02:14 UTC`.
fn when(ms: i64) -> String {
    let t = format_timestamp(ms);
    format!("{} {} UTC", &t[..10], &t[11..16])
}

fn hours(secs: i64) -> String {
    if secs % 86_400 == 0 {
        format!("{} day(s)", secs / 86_400)
    } else {
        format!("{} h", secs / 3600)
    }
}

/// What to do about a refusal reason, for the district.
fn refusal_advice(reason: &str) -> &'static str {
    if reason.starts_with("key not installed") {
        "Your tool is offering a key that is not installed for this account. Paste the public key (.pub) your tool generated on the account page, or send it to your vendor; it works 10 minutes after it is added."
    } else if reason.starts_with("key pending") {
        "The key your tool uses was added recently and is not active yet. It works from the time shown; ask your vendor to activate it now if you cannot wait."
    } else if reason.starts_with("key revoked")
        || reason.starts_with("key expired")
        || reason.starts_with("key retired")
    {
        "The key your tool uses no longer works. Create a new key pair in your tool, paste its public key on the account page, and switch the tool to it."
    } else if reason.starts_with("account disabled") {
        "This account is disabled. Ask your vendor to enable it."
    } else {
        "Check the host, user name and key your tool uses against the connection guide on the account page."
    }
}

/// The vendor's message about an event.
#[must_use]
pub fn vendor(kind: NoticeKind, f: &Facts) -> Text {
    let district = f.district();
    let (subject, body) = match kind {
        NoticeKind::Held => {
            let id = f.upload.as_ref().map_or(0, |u| u.id);
            (
                format!("[Ferry] {}: {} held for review", f.account, f.file()),
                format!(
                    "{district} sent {}; the roster guard held it: {}.\n\nApprove it (hand it over) or reject it on {} or with `ferry uploads approve {id}` / `ferry uploads reject {id}`.\nThe district was told that you will review it.",
                    f.file(),
                    f.row_drop(),
                    f.page("#uploads")
                ),
            )
        }
        NoticeKind::Rejected => (
            format!("[Ferry] {}: {} refused", f.account, f.file()),
            format!(
                "{district}'s file {} was refused: {}.\n\nIt was archived and not handed over; its report is in the district's /reports folder and on {}.\nThe district was told what to fix.",
                f.file(),
                f.detail,
                f.page("#uploads")
            ),
        ),
        NoticeKind::HandoffFailed => {
            let (id, attempts) = f.upload.as_ref().map_or((0, 0), |u| (u.id, u.attempts));
            (
                format!(
                    "[Ferry] {}: hand-off of {} failed for good",
                    f.account,
                    f.file()
                ),
                format!(
                    "The hand-off of {district}'s file {} failed {attempts} times and is no longer retried automatically.\nLast error: {}\n\nFix the import (ingest.command / ingest.webhook_url), then run `ferry uploads retry {id}`.",
                    f.file(),
                    f.detail
                ),
            )
        }
        NoticeKind::Stale => (
            format!("[Ferry] {}: no file received (stale)", f.account),
            format!(
                "{district} expects a file every {} and none has arrived since {}.\nCheck the district's export job and its login attempts on {}.",
                f.expected_every_secs
                    .map_or_else(|| "day".to_owned(), hours),
                f.last_file_at
                    .map_or_else(|| "the account was created".to_owned(), when),
                f.page("#attempts")
            ),
        ),
        NoticeKind::RefusedLogins => {
            let (n, reason) = f.refusals();
            (
                format!("[Ferry] {}: repeated refused logins ({reason})", f.account),
                format!(
                    "{district}'s logins were refused {n} times recently for one reason: {reason}.\nThe district was told what to do; the attempts are on {}.",
                    f.page("#attempts")
                ),
            )
        }
        NoticeKind::KeyExpiring => {
            let (fp, comment, at) = f.key.clone().unwrap_or_default();
            (
                format!(
                    "[Ferry] {}: a key expires on {}",
                    f.account,
                    &when(at)[..10]
                ),
                format!(
                    "{district}'s key {fp} ({comment}) expires on {}. Logins with it will then be refused.\nThe district was asked to install a new key: {}",
                    when(at),
                    f.page("#keys")
                ),
            )
        }
        NoticeKind::Digest => (String::new(), String::new()),
    };
    Text { subject, body }
}

/// The district's message about an event; `None` for what a district cannot act on.
#[must_use]
pub fn district(kind: NoticeKind, f: &Facts) -> Option<Text> {
    let district = f.district();
    let footer = format!(
        "\n\nAccount: {district}\nDetails and the connection guide: {}\n(This message was sent by Ferry, your vendor's SFTP server, to the contacts of this account.)",
        f.page("")
    );
    let (subject, body) = match kind {
        NoticeKind::Held => (
            format!("Your file {} was held for review", f.file()),
            format!(
                "Your file {} was held: {}. Your vendor will review it; if the export was cut short, upload a complete file.",
                f.file(),
                f.row_drop()
            ),
        ),
        NoticeKind::Rejected => {
            let by_admin = f.detail.starts_with("rejected by");
            let body = if by_admin {
                format!(
                    "Your vendor rejected your file {} after reviewing it; it was not imported. If the export was cut short, upload a complete file.",
                    f.file()
                )
            } else {
                format!(
                    "Your file {} was refused and not imported: {}. The report in the /reports folder on the SFTP server lists every problem with its line number. Fix the export and upload the file again.",
                    f.file(),
                    f.detail
                        .trim_start_matches("refused: ")
                        .trim_start_matches("refused ")
                )
            };
            (format!("Your file {} was refused", f.file()), body)
        }
        NoticeKind::Stale => (
            "We have not received your nightly file".to_owned(),
            format!(
                "No file has arrived from {district} since {} (a file is expected every {}). Please check that your export job ran and can log in; the login attempts on the account page say why a login was refused.",
                f.last_file_at
                    .map_or_else(|| "the account was set up".to_owned(), when),
                f.expected_every_secs
                    .map_or_else(|| "day".to_owned(), hours)
            ),
        ),
        NoticeKind::RefusedLogins => {
            let (n, reason) = f.refusals();
            (
                "Your SFTP logins are being refused".to_owned(),
                format!(
                    "Logins to {} were refused {n} times recently: {reason}.\n{}",
                    f.account,
                    refusal_advice(&reason)
                ),
            )
        }
        NoticeKind::KeyExpiring => {
            let (fp, comment, at) = f.key.clone().unwrap_or_default();
            (
                format!("Your SFTP key expires on {}", &when(at)[..10]),
                format!(
                    "The key {fp} ({comment}) that logs in to {} expires on {}; after that its logins are refused. Create a new key pair in your tool, paste its public key on the account page before then (it works 10 minutes after it is added), and switch the tool to it.",
                    f.account,
                    when(at)
                ),
            )
        }
        NoticeKind::HandoffFailed | NoticeKind::Digest => return None,
    };
    Some(Text {
        subject,
        body: format!("{body}{footer}"),
    })
}

/// The daily digest for the vendor: the overview's counts and the accounts
/// needing attention.
#[must_use]
pub fn digest(page: &OverviewPage, web_url: &str) -> Text {
    let c = &page.counts;
    let mut body = format!(
        "Last 24 hours: {} files delivered, {} held, {} rejected, {} hand-offs failed.\nNow: {} accounts stale, {} with no active key, {} with refused logins.\n\n",
        c.delivered,
        c.held,
        c.rejected,
        c.failed,
        c.stale_accounts,
        c.no_active_key,
        c.refused_login_accounts
    );
    if page.rows.is_empty() {
        body.push_str("No account needs attention.\n");
    } else {
        body.push_str(&format!("{} accounts need attention:\n", page.total));
        for row in &page.rows {
            let what: Vec<&str> = row.attention.iter().map(|a| a.as_str()).collect();
            body.push_str(&format!("  {}: {}\n", row.account, what.join(", ")));
        }
        if page.total > page.rows.len() as i64 {
            body.push_str(&format!(
                "  … and {} more\n",
                page.total - page.rows.len() as i64
            ));
        }
    }
    body.push_str(&format!("\nThe overview: {web_url}/overview\n"));
    Text {
        subject: format!(
            "[Ferry] Daily digest: {} accounts need attention",
            c.needing_attention
        ),
        body,
    }
}

/// The invitation e-mail.
#[must_use]
pub fn invitation(account: &str, display_name: Option<&str>, link: &str, days: i64) -> Text {
    let district = display_name.map_or_else(|| account.to_owned(), |d| format!("{d} ({account})"));
    Text {
        subject: format!("Set up your sign-in for {district}'s SFTP account"),
        body: format!(
            "You are invited to manage {district}'s SFTP account on your vendor's Ferry server: install the public keys your tools use, read login attempts and see what became of your files.\n\nOpen this link within {days} days, choose a user name and a password (12 characters or more):\n{link}\n\nThe link works once. If it has expired, ask your vendor for a new one."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_store::UploadState;

    fn upload(name: &str, rows: i64) -> Upload {
        Upload {
            id: 17,
            account: "lincoln-usd".into(),
            name: name.into(),
            size: 1,
            sha256: None,
            state: UploadState::Held,
            received_at: 0,
            updated_at: 0,
            detail: None,
            logical_name: None,
            rows: Some(rows),
            batch_id: None,
            attempts: 1,
            last_error: None,
            decision: None,
            handed_off_at: None,
            archive_path: None,
            handoff: None,
        }
    }

    #[test]
    fn a_held_file_in_the_districts_words() {
        let facts = Facts {
            account: "lincoln-usd".into(),
            display_name: Some("Lincoln Unified".into()),
            upload: Some(upload("students_20261207.csv", 850)),
            previous_rows: Some(1000),
            web_url: "https://sftp.example.org".into(),
            ..Facts::default()
        };
        let text = district(NoticeKind::Held, &facts).unwrap();
        assert!(text.body.starts_with("Your file students_20261207.csv was held: it has 850 rows, 15% fewer than the last accepted file (1,000 rows). Your vendor will review it; if the export was cut short, upload a complete file."), "{}", text.body);
        assert!(
            text.body
                .contains("https://sftp.example.org/accounts/lincoln-usd")
        );
        assert!(
            vendor(NoticeKind::Held, &facts)
                .body
                .contains("ferry uploads approve 17")
        );
        assert!(district(NoticeKind::HandoffFailed, &facts).is_none());
    }

    #[test]
    fn refused_logins_say_what_to_do() {
        let facts = Facts {
            account: "d".into(),
            detail: "6\tkey not installed".into(),
            ..Facts::default()
        };
        let text = district(NoticeKind::RefusedLogins, &facts).unwrap();
        assert!(
            text.body
                .contains("refused 6 times recently: key not installed")
        );
        assert!(text.body.contains("Paste the public key"));
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
