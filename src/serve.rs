//! `ferry serve`: start every enabled job and stop them cleanly on a signal.

use anyhow::Context;
use ferry_sftp::host_keys::HostKeys;
use ferry_sftp::{SftpServer, SftpSettings};

use crate::config::Config;

/// Runs until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    init_logging();
    tracing::info!(config = %config.source, data_dir = %config.data_dir.display(), "starting ferry {}", env!("CARGO_PKG_VERSION"));
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!("cannot create data_dir {}: choose a writable directory with data_dir or FERRY_DATA_DIR", config.data_dir.display())
    })?;
    let store = crate::commands::open_store(&config).await?;
    if config.web.enabled {
        tracing::warn!(listen = %config.web.listen, "the admin web is not part of this build yet; [web] is ignored (manage keys with `ferry key`)");
    }
    if config.ingest.enabled {
        tracing::warn!(
            "ingest is not part of this build yet; finished uploads are logged and stay in /inbound"
        );
    }
    if !config.sftp.enabled {
        tracing::warn!(
            "[sftp] enabled = false and nothing else is available yet: waiting for a stop signal"
        );
        shutdown_signal().await;
        return Ok(());
    }
    let host_keys = HostKeys::load_or_create(&config.data_dir)?;
    for key in host_keys.public_keys() {
        tracing::info!(algorithm = %key.algorithm, fingerprint = %key.fingerprint, "host key");
    }
    let settings = SftpSettings {
        listen: config.sftp.listen,
        data_dir: config.data_dir.clone(),
        login_grace: config.sftp.login_grace,
        max_unauthenticated: config.sftp.max_unauthenticated,
        max_unauthenticated_per_address: config.sftp.max_unauthenticated_per_address,
        max_sessions_per_account: config.sftp.max_sessions_per_account,
        shutdown_grace: config.sftp.shutdown_grace,
        idle_timeout: config.sftp.idle_timeout,
    };
    let server = SftpServer::bind(settings, store, &host_keys).await?;
    let addr = server.local_addr()?;
    tracing::info!("sftp listening on {addr}");
    server.run(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received"),
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Logs to stderr; the level comes from FERRY_LOG (else RUST_LOG, else info).
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("FERRY_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
