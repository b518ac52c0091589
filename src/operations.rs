//! The operations commands: `ferry status` (the overview), `ferry account
//! import` and `ferry admin invite`, plus the address parsing `ferry
//! host-key show --known-hosts` needs.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use ferry_store::{ImportAction, OverviewFilter, OverviewQuery, Store, format_timestamp};

use crate::commands::{actor, open_store};
use crate::config::Config;

/// `ferry status [--json]`: the overview, accounts needing attention first.
pub async fn status(
    config: &Config,
    json: bool,
    state: &str,
    search: Option<String>,
    page: u32,
    per_page: u32,
) -> anyhow::Result<ExitCode> {
    let filter = OverviewFilter::parse(state).with_context(|| {
        format!("--state {state:?} is not a filter: use all, attention, failed, held, no-key, stale, rejected, refused or ok")
    })?;
    let store = open_store(config).await?;
    let query = OverviewQuery {
        filter,
        search: search.unwrap_or_default(),
        page,
        per_page,
    };
    let overview = store.overview(None, &query).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&overview)?);
        return Ok(ExitCode::SUCCESS);
    }
    let c = &overview.counts;
    println!(
        "last 24 h: {} delivered, {} held, {} rejected, {} hand-offs failed",
        c.delivered, c.held, c.rejected, c.failed
    );
    println!(
        "now: {} of {} accounts need attention; {} stale, {} with no active key, {} with refused logins",
        c.needing_attention,
        c.accounts,
        c.stale_accounts,
        c.no_active_key,
        c.refused_login_accounts
    );
    println!();
    for row in &overview.rows {
        let needs: Vec<&str> = row.attention.iter().map(|a| a.as_str()).collect();
        let last = row.last_file.as_ref().map_or_else(
            || "no file yet".to_owned(),
            |f| format!("{} {} {}", f.name, format_timestamp(f.received_at), f.state),
        );
        let keys = match (row.keys.active, row.keys.pending_until) {
            (0, Some(at)) => format!("no active key (pending until {})", format_timestamp(at)),
            (0, None) => "no active key".to_owned(),
            (n, _) => format!("{n} keys"),
        };
        let refused = match &row.refused_reason {
            Some(reason) => format!("{} refused ({reason})", row.refused_logins),
            None => "0 refused".to_owned(),
        };
        println!(
            "{}\t{}\tlast: {last}\theld {} rejected {} failed {}\t{}{keys}\t{refused}",
            row.account,
            if needs.is_empty() {
                "ok".to_owned()
            } else {
                needs.join(",")
            },
            row.held,
            row.rejected,
            row.failed,
            if row.stale { "STALE\t" } else { "" },
        );
    }
    if overview.pages > 1 {
        println!(
            "\npage {} of {} ({} accounts); --page N for more",
            overview.page, overview.pages, overview.total
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry account import FILE.csv [--dry-run]`.
pub async fn import(
    config: &Config,
    store: &Store,
    file: &Path,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(file)
        .with_context(|| format!("cannot read {}: check the path", file.display()))?;
    let rows = match ferry_store::parse_import_csv(&bytes) {
        Ok(rows) => rows,
        Err(e) => {
            for line in &e.details {
                eprintln!("{line}");
            }
            bail!("{}", e.summary);
        }
    };
    let outcome = store.import_accounts(&rows, dry_run, &actor()).await?;
    let mut counts = [0usize; 3];
    for account in &outcome {
        let (n, verb) = match account.action {
            ImportAction::Create => (0, if dry_run { "would create" } else { "created" }),
            ImportAction::Update => (1, if dry_run { "would update" } else { "updated" }),
            ImportAction::Unchanged => (2, "unchanged"),
        };
        counts[n] += 1;
        if account.action != ImportAction::Unchanged {
            println!("{verb} {}: {}", account.name, account.changes.join("; "));
        }
        if account.action == ImportAction::Create && !dry_run {
            ferry_sftp::jail::Jail::create_layout(&config.data_dir, &account.name).with_context(|| {
                format!("account {} was created but its folders could not be: check that data_dir is writable", account.name)
            })?;
        }
    }
    println!(
        "{}{} created, {} updated, {} unchanged",
        if dry_run {
            "dry run, nothing changed: "
        } else {
            ""
        },
        counts[0],
        counts[1],
        counts[2]
    );
    Ok(ExitCode::SUCCESS)
}

/// `ferry admin invite --account NAME --email EMAIL [--send]`.
pub async fn invite(
    config: &Config,
    account: &str,
    email: &str,
    send: bool,
) -> anyhow::Result<ExitCode> {
    let mailer = if send {
        let Some(url) = &config.notify.smtp_url else {
            bail!(
                "--send needs a mail server: set notify.smtp_url (and notify.from), or leave out --send and pass the link on yourself"
            );
        };
        Some(ferry_notify::Mailer::new(url, &config.notify.from)?)
    } else {
        None
    };
    let store = open_store(config).await?;
    let display = store.account(account).await?.and_then(|a| a.display_name);
    let (invitation, secret) = store.create_invitation(account, email, &actor()).await?;
    let base = if config.web.public_url.is_empty() {
        format!("http://{}", config.web.listen)
    } else {
        config.web.public_url.clone()
    };
    let link = format!("{base}/invite/{secret}");
    eprintln!(
        "invitation {} for {} to become a district admin of {account}; the link works once, until {} (shown only this once):",
        invitation.id,
        invitation.email,
        format_timestamp(invitation.expires_at)
    );
    println!("{link}");
    if let Some(mailer) = mailer {
        let days = ferry_store::INVITATION_VALID_MS / 86_400_000;
        ferry_notify::send_invitation(
            &mailer,
            &invitation.email,
            account,
            display.as_deref(),
            &link,
            days,
        )
        .await
        .context(
            "the invitation was made but could not be e-mailed; pass the link above on yourself",
        )?;
        eprintln!("e-mailed to {}", invitation.email);
    }
    Ok(ExitCode::SUCCESS)
}

/// `HOST[:PORT]` as known_hosts names it: `host` on port 22, else `[host]:port`.
pub fn known_hosts_name(address: &str) -> anyhow::Result<String> {
    let bad = || {
        anyhow::anyhow!(
            "--known-hosts {address:?}: write HOST or HOST:PORT, like sftp.example.org:2222"
        )
    };
    let (host, port) = match address.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse::<u16>().map_err(|_| bad())?,
                None if after.is_empty() => 22,
                None => return Err(bad()),
            };
            (host.to_owned(), port)
        }
        None => match address.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => {
                (host.to_owned(), port.parse::<u16>().map_err(|_| bad())?)
            }
            _ => (address.to_owned(), 22),
        },
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    Ok(if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    })
}

#[cfg(test)]
mod tests {
    use super::known_hosts_name;

    #[test]
    fn known_hosts_names() {
        assert_eq!(
            known_hosts_name("sftp.example.org").unwrap(),
            "sftp.example.org"
        );
        assert_eq!(
            known_hosts_name("sftp.example.org:22").unwrap(),
            "sftp.example.org"
        );
        assert_eq!(
            known_hosts_name("sftp.example.org:2222").unwrap(),
            "[sftp.example.org]:2222"
        );
        assert_eq!(known_hosts_name("[::1]:2222").unwrap(), "[::1]:2222");
        assert!(known_hosts_name("host:port").is_err());
    }
}
