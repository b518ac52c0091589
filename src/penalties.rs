//! `ferry penalties`: the sources the SFTP nodes refuse for now, and lifting
//! a penalty from the command line.
//!
//! `ferry serve` keeps each node's penalties in memory; this separate process
//! reaches them through the rows nodes write to the database when a penalty
//! becomes active, and lifts one by marking its rows, which every node polls
//! for (see `ferry_sftp`'s penalties module).

use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;
use ferry_store::format_timestamp;

use crate::commands::{actor, open_store};
use crate::config::Config;

#[derive(Subcommand)]
pub enum PenaltiesCommand {
    /// List the sources each SFTP node refuses now, with the reason and until when.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Lift the penalty on a source (an IPv4 address, or an IPv6 address or /64) on every node.
    Lift { source: String },
}

/// `ferry penalties list|lift`: reads and marks the rows the SFTP nodes
/// write; each node takes a lift up within a few seconds.
pub async fn penalties(config: &Config, cmd: PenaltiesCommand) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    match cmd {
        PenaltiesCommand::List { json } => {
            let penalties = store.penalties().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&penalties)?);
            } else if penalties.is_empty() {
                println!("no source is penalised on any SFTP node");
            } else {
                for p in penalties {
                    println!(
                        "{}\t{}\tuntil {}\t{}",
                        p.node,
                        p.source,
                        format_timestamp(p.until),
                        p.reason
                    );
                }
            }
        }
        PenaltiesCommand::Lift { source } => {
            let Some(normalised) = ferry_store::parse_source(&source) else {
                bail!(
                    "{source:?} is not a source: give an IPv4 address, or an IPv6 address or /64, as `ferry penalties list` shows it"
                );
            };
            let nodes = store.lift_penalty(&normalised, &actor()).await?;
            if nodes == 0 {
                bail!(
                    "no SFTP node has a penalty on {normalised} now (see `ferry penalties list`); it may have run down already"
                );
            }
            println!(
                "lifted the penalty on {normalised} on {nodes} node(s); each takes it up within a few seconds"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
