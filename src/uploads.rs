//! `ferry uploads …`: the ingest queue for people — what arrived, what became
//! of it, and the decisions only an admin can make (approve or reject a held
//! file, retry a failed hand-off).
//!
//! Decisions go through the store (the same calls the web API makes), are
//! audited as `cli:<user>`, and are picked up by the running server's
//! pipeline from the queue within `ingest.poll_interval`. The command line
//! is the vendor's: `show` includes what the vendor's import answered (exit
//! status and output, redacted webhook URL, HTTP status and answer), which a
//! district never sees.

use std::process::ExitCode;

use clap::Subcommand;
use ferry_store::{HandoffDetail, Upload, escape_control, format_timestamp};

use crate::commands::{actor, open_store};
use crate::config::Config;

#[derive(Subcommand)]
pub enum UploadsCommand {
    /// List the latest uploads, newest first: of one account, or of all.
    List {
        account: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Show one upload and its report.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Hand over a file the roster guard held.
    Approve { id: i64 },
    /// Refuse a file the roster guard held: it is archived, not handed over.
    Reject { id: i64 },
    /// Try a failed hand-off again.
    Retry { id: i64 },
}

pub async fn uploads(config: &Config, cmd: UploadsCommand) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    match cmd {
        UploadsCommand::List {
            account,
            limit,
            json,
        } => {
            if let Some(name) = &account
                && store.account(name).await?.is_none()
            {
                anyhow::bail!(
                    "no account named `{name}`; see the existing accounts with `ferry account list`"
                );
            }
            let uploads = store.uploads(account.as_deref(), limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&uploads)?);
            } else if uploads.is_empty() {
                println!("no uploads yet");
            } else {
                for upload in &uploads {
                    println!("{}", list_line(upload));
                }
            }
        }
        UploadsCommand::Show { id, json } => {
            let upload = store.upload(id).await?.ok_or_else(|| {
                anyhow::anyhow!(
                    "no upload with id {id}; list uploads and their ids with `ferry uploads list`"
                )
            })?;
            let report = store.upload_report(id).await?;
            if json {
                let mut value = serde_json::to_value(&upload)?;
                value["report"] = report.into();
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print!("{}", details(&upload));
                match report {
                    Some(report) => println!("\n{}", escape_lines(&report)),
                    None => println!("\n(no report yet: the file has not been checked)"),
                }
            }
        }
        UploadsCommand::Approve { id } => {
            let upload = store.approve_upload(id, &actor()).await?;
            println!(
                "upload {id} ({}/{}) approved: it is handed over with the account's next batch",
                upload.account, upload.name
            );
        }
        UploadsCommand::Reject { id } => {
            let upload = store.reject_upload(id, &actor()).await?;
            println!(
                "upload {id} ({}/{}) rejected: it is archived without being handed over, and its report says so",
                upload.account, upload.name
            );
        }
        UploadsCommand::Retry { id } => {
            let upload = store.retry_upload(id, &actor()).await?;
            println!(
                "upload {id} ({}/{}) queued again: it is handed over with the account's next batch",
                upload.account, upload.name
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ID  received_at  account  state  size  name`.
fn list_line(upload: &Upload) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}",
        upload.id,
        format_timestamp(upload.received_at),
        upload.account,
        upload.state,
        upload.size,
        escape_control(&upload.name)
    )
}

/// Text of many lines with every other control character escaped.
fn escape_lines(text: &str) -> String {
    text.lines()
        .map(escape_control)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every field, one per line.
fn details(upload: &Upload) -> String {
    let optional = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    let mut text = format!(
        "upload {}\n  account:      {}\n  name:         {}\n  size:         {} bytes\n  sha256:       {}\n  state:        {}\n  received at:  {}\n  updated at:   {}\n",
        upload.id,
        upload.account,
        escape_control(&upload.name),
        upload.size,
        optional(&upload.sha256),
        upload.state,
        format_timestamp(upload.received_at),
        format_timestamp(upload.updated_at),
    );
    let extra = [
        ("logical name", upload.logical_name.clone()),
        ("rows", upload.rows.map(|r| r.to_string())),
        ("batch", upload.batch_id.map(|b| b.to_string())),
        ("attempts", Some(upload.attempts.to_string())),
        ("decision", upload.decision.clone()),
        ("handed off", upload.handed_off_at.map(format_timestamp)),
        ("archived as", upload.archive_path.clone()),
        ("detail", upload.detail.clone()),
        ("last error", upload.last_error.clone()),
    ];
    for (label, value) in extra {
        if let Some(value) = value {
            let value = escape_control(&value);
            text.push_str(&format!("  {:<13} {value}\n", format!("{label}:")));
        }
    }
    if let Some(handoff) = &upload.handoff {
        text.push_str(&handoff_details(handoff));
    }
    text
}

/// What the vendor's import answered at the last hand-off.
fn handoff_details(handoff: &HandoffDetail) -> String {
    let mut text = String::from("  last hand-off (vendor only; never in the district's report):\n");
    let line = |label: &str, value: &str| format!("    {:<15} {value}\n", format!("{label}:"));
    if let Some(status) = handoff.command_exit_status {
        text.push_str(&line("command exit", &status.to_string()));
    }
    if let Some(output) = &handoff.command_output {
        text.push_str(&line("command output", ""));
        text.push_str(&indented(output));
    }
    if let Some(url) = &handoff.webhook_url {
        let status = handoff
            .webhook_status
            .map_or("no answer".to_owned(), |s| format!("HTTP {s}"));
        text.push_str(&line("webhook", &format!("{url} ({status})")));
    }
    if let Some(body) = &handoff.webhook_body {
        text.push_str(&line("webhook answer", ""));
        text.push_str(&indented(body));
    }
    text
}

fn indented(block: &str) -> String {
    block
        .lines()
        .map(|l| format!("      | {}\n", l.trim_end()))
        .collect()
}
