//! `ferry`: the command line, and the edge where errors become messages.
//!
//! Every subcommand is a few lines that load the configuration, open the
//! store and call one crate. Errors leave here as one line that names the
//! problem and the fix (anyhow at the edge, thiserror in the crates).

mod commands;
mod config;
mod log_writer;
mod operations;
mod penalties;
mod process;
mod serve;
mod uploads;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "Ferry: an SFTP server for school districts' nightly files"
)]
struct Cli {
    /// Configuration file (else $FERRY_CONFIG, else config/ferry.toml when present, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the SFTP server, the admin web API and ingest until SIGTERM or Ctrl-C.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage district accounts.
    #[command(subcommand)]
    Account(commands::AccountCommand),
    /// Manage an account's public keys.
    #[command(subcommand)]
    Key(commands::KeyCommand),
    /// Print an account's active keys in OpenSSH authorized_keys format.
    AuthorizedKeys { account: String },
    /// Show the server's host keys.
    #[command(subcommand)]
    HostKey(commands::HostKeyCommand),
    /// Manage admin users of the admin web.
    #[command(subcommand)]
    Admin(commands::AdminCommand),
    /// Manage API tokens (`Authorization: Bearer …` for the JSON API).
    #[command(subcommand)]
    Token(commands::TokenCommand),
    /// The overview: the last 24 hours, accounts needing attention first.
    Status {
        #[arg(long)]
        json: bool,
        /// all, attention, failed, held, no-key, stale, rejected, refused, ok.
        #[arg(long, default_value = "all")]
        state: String,
        /// Part of the account's name or display name.
        #[arg(long)]
        search: Option<String>,
        #[arg(long, default_value_t = 1)]
        page: u32,
        #[arg(long, default_value_t = 100)]
        per_page: u32,
    },
    /// Finished uploads in the ingest queue: list, show, and decide on held or failed ones.
    #[command(subcommand)]
    Uploads(uploads::UploadsCommand),
    /// Sources the SFTP nodes refuse for now (per-source penalties): list them, or lift one.
    #[command(subcommand)]
    Penalties(penalties::PenaltiesCommand),
}

fn main() -> std::process::ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == ferry_ingest::LAUNCH_ARG) {
        // `ferry serve` starting a hand-off command (ferry_ingest::launch).
        let error = ferry_ingest::exec_hand_off(&args[2..]);
        eprintln!(
            "ferry: the hand-off command could not be started: {error}; check [ingest] command"
        );
        return std::process::ExitCode::from(127);
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferry: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ferry: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let config = config::Config::load(cli.config.as_deref())?;
    process::set_umask(&config);
    match cli.command {
        Command::Serve => serve::serve(config)
            .await
            .map(|_| std::process::ExitCode::SUCCESS),
        Command::Migrate => commands::migrate(&config).await,
        Command::Account(cmd) => commands::account(&config, cmd).await,
        Command::Key(cmd) => commands::key(&config, cmd).await,
        Command::AuthorizedKeys { account } => commands::authorized_keys(&config, &account).await,
        Command::HostKey(cmd) => commands::host_key(&config, cmd),
        Command::Admin(cmd) => commands::admin(&config, cmd).await,
        Command::Token(cmd) => commands::token(&config, cmd).await,
        Command::Uploads(cmd) => uploads::uploads(&config, cmd).await,
        Command::Penalties(cmd) => penalties::penalties(&config, cmd).await,
        Command::Status {
            json,
            state,
            search,
            page,
            per_page,
        } => operations::status(&config, json, &state, search, page, per_page).await,
    }
}
