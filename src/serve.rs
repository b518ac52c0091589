//! `ferry serve`: start every enabled job and stop them cleanly on a signal.

use anyhow::Context;
use ferry_sftp::host_keys::HostKeys;
use ferry_sftp::{SftpServer, SftpSettings};

use crate::config::Config;

/// Runs until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    init_logging(&config.log_format);
    tracing::info!(config = %config.source, data_dir = %config.data_dir.display(), "starting ferry {}", env!("CARGO_PKG_VERSION"));
    crate::process::secure_data_dir(&config)?;
    crate::process::ignore_file_size_signal();
    let descriptors = descriptor_budget();
    let store = crate::commands::open_store(&config).await?;
    crate::process::secure_database_files(&config)?;
    // One recorder per process; a second `serve` in the same process (tests)
    // keeps the first one's.
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| tracing::warn!(error = %e, "metrics are not collected"))
        .ok();
    metrics::gauge!("ferry_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    if !config.sftp.enabled && !config.web.enabled && !config.ingest.enabled {
        tracing::warn!(
            "[sftp], [web] and [ingest] are all disabled: nothing to run; waiting for a stop signal"
        );
        shutdown_signal().await;
        return Ok(());
    }
    let host_keys = HostKeys::load_or_create(&config.data_dir)?;
    for key in host_keys.public_keys() {
        tracing::info!(algorithm = %key.algorithm, fingerprint = %key.fingerprint, "host key");
    }

    // One stop signal for every job.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    let sftp = if config.sftp.enabled {
        let settings = SftpSettings {
            listen: config.sftp.listen,
            data_dir: config.data_dir.clone(),
            login_grace: config.sftp.login_grace,
            max_startups: config.sftp.max_startups,
            max_unauthenticated_per_address: config.sftp.max_unauthenticated_per_address,
            max_sessions_per_account: config.sftp.max_sessions_per_account,
            shutdown_grace: config.sftp.shutdown_grace,
            idle_timeout: config.sftp.idle_timeout,
            limits: ferry_sftp::Limits {
                handles_per_session: config.sftp.max_handles_per_session,
                handles_per_account: config.sftp.max_handles_per_account,
                max_file_size: config.sftp.max_file_size,
                quota: config.sftp.quota,
            },
            descriptors,
            penalties: config.sftp.penalties,
            penalty_exempt: config.sftp.penalty_exempt.clone(),
            attempts_retention: config.sftp.attempts_retention,
            legacy_algorithms: config.sftp.legacy_algorithms,
            node: node_id(&config),
        };
        let server = SftpServer::bind(settings, store.clone(), &host_keys).await?;
        let addr = server.local_addr()?;
        tracing::info!("sftp listening on {addr}");
        Some((server, addr))
    } else {
        tracing::warn!("[sftp] enabled = false: only the admin web runs");
        None
    };

    let ingest = if config.ingest.enabled {
        let (finished_tx, finished_rx) = tokio::sync::mpsc::unbounded_channel();
        if let Some((server, _)) = &sftp {
            tokio::spawn(forward_finished_uploads(
                server.subscribe_uploads(),
                finished_tx,
            ));
        }
        Some(tokio::spawn(ferry_ingest::run(
            ingest_settings(&config),
            store.clone(),
            finished_rx,
            stopped(),
        )))
    } else {
        tracing::info!("[ingest] enabled = false: finished uploads stay in /inbound");
        None
    };

    let web_url = if config.web.public_url.is_empty() {
        format!("http://{}", config.web.listen)
    } else {
        config.web.public_url.clone()
    };
    let mailer = match &config.notify.smtp_url {
        Some(url) => Some(ferry_notify::Mailer::new(url, &config.notify.from)?),
        None => None,
    };
    let notify = tokio::spawn(ferry_notify::run(
        notify_settings(&config, &web_url),
        store.clone(),
        stopped(),
    ));

    let web = if config.web.enabled {
        let listener = tokio::net::TcpListener::bind(config.web.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on web.listen = {}: choose a free address and port in [web] listen (or FERRY_WEB__LISTEN)",
                    config.web.listen
                )
            })?;
        let addr = listener.local_addr()?;
        let sftp_addr = sftp.as_ref().map_or(config.sftp.listen, |(_, addr)| *addr);
        let web_config = ferry_web::WebConfig {
            store: store.clone(),
            host_keys: host_keys
                .public_keys()
                .into_iter()
                .map(|key| ferry_web::HostKey {
                    algorithm: key.algorithm,
                    fingerprint: key.fingerprint,
                    openssh: key.openssh,
                })
                .collect(),
            sftp_host: match &config.sftp.public_address {
                Some((host, _)) => host.clone(),
                None if sftp_addr.ip().is_unspecified() => String::new(),
                None => sftp_addr.ip().to_string(),
            },
            sftp_port: config
                .sftp
                .public_address
                .as_ref()
                .map_or(sftp_addr.port(), |(_, port)| *port),
            propagation_delay_ms: i64::try_from(config.keys.propagation_delay.as_millis())
                .unwrap_or(i64::MAX),
            key_policy: ferry_keys::KeyPolicy {
                min_rsa_bits: config.keys.min_rsa_bits,
            },
            public_url: if config.web.public_url.is_empty() {
                format!("http://{addr}")
            } else {
                config.web.public_url.clone()
            },
            session_limits: ferry_store::SessionLimits::default(),
            metrics: metrics.clone(),
            mailer: mailer.clone(),
        };
        let public_url = web_config.public_url.clone();
        let web = ferry_web::Web::with_limits(web_config, config.web.limits.clone());
        tracing::info!("web listening on {addr}");
        if let Some(path) = web.offer_setup_link().await? {
            // The one place a secret is printed: it works once, for an hour,
            // and only while no admin exists. Not through the log.
            println!(
                "No admin user exists yet. Open this link within one hour to create the first vendor admin:\n  {public_url}{path}\n(or run `ferry admin create USER --role vendor-admin` on this machine)"
            );
        }
        Some(tokio::spawn(ferry_web::serve(listener, web, stopped())))
    } else {
        None
    };

    if let Some((server, _)) = sftp {
        server.run(stopped()).await?;
    }
    if let Some(ingest) = ingest {
        ingest.await.context("ingest stopped unexpectedly")?;
    }
    notify.await.context("notifications stopped unexpectedly")?;
    if let Some(web) = web {
        web.await
            .context("the admin web stopped unexpectedly")?
            .context("the admin web failed")?;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Raises the open-files limit to its hard limit and logs the budget SFTP
/// handles get from it (the rest is kept for connections, the database and
/// the web).
fn descriptor_budget() -> std::sync::Arc<ferry_sftp::DescriptorBudget> {
    let limit = crate::process::raise_open_files_limit();
    let budget = ferry_sftp::DescriptorBudget::for_limit(limit);
    tracing::info!(
        limit,
        sftp_handles = budget.budget(),
        reserve = ferry_sftp::DescriptorBudget::reserve_for(limit),
        "file descriptors: soft limit raised to the hard limit; SFTP files and folders get {}, the rest is kept for connections, the database and the web",
        budget.budget()
    );
    std::sync::Arc::new(budget)
}

/// The pipeline's settings from `[ingest]` and `data_dir`.
fn ingest_settings(config: &Config) -> ferry_ingest::IngestSettings {
    let ingest = &config.ingest;
    ferry_ingest::IngestSettings {
        data_dir: config.data_dir.clone(),
        settle: ingest.settle,
        quiet_period: ingest.quiet_period,
        retention: ingest.retention,
        scan_interval: ingest.scan_interval,
        poll_interval: ingest.poll_interval,
        max_row_drop: ingest.max_row_drop,
        rules: ingest.rules.clone(),
        node_id: node_id(config),
        handoff: ferry_ingest::HandoffSettings {
            // This binary starts hand-off commands (`ferry __run-hand-off`),
            // so they die with the node without forking the whole server.
            launcher: Some("/proc/self/exe".into()),
            ..ingest.handoff.clone()
        },
        workers: ingest.workers,
        max_file_size: ingest.max_file_size,
        lease: ferry_ingest::DEFAULT_LEASE,
    }
}

/// This node's name among nodes sharing a database (the job queue, the
/// outbox, penalties): `ingest.node_id`, else the machine's name.
fn node_id(config: &Config) -> String {
    if config.ingest.node_id.is_empty() {
        host_name()
    } else {
        config.ingest.node_id.clone()
    }
}

/// The notifier's settings from `[notify]`.
fn notify_settings(config: &Config, web_url: &str) -> ferry_notify::NotifySettings {
    let notify = &config.notify;
    ferry_notify::NotifySettings {
        smtp_url: notify.smtp_url.clone(),
        from: notify.from.clone(),
        vendor_emails: notify.vendor_emails.clone(),
        webhook_url: notify.webhook_url.clone(),
        webhook_secret: notify.webhook_secret.clone(),
        repeat_after: notify.repeat_after,
        digest_at: notify.digest_at,
        refused_logins: notify.refused_logins,
        refused_logins_window: notify.refused_logins_window,
        poll_interval: notify.poll_interval,
        check_interval: notify.check_interval,
        retry_backoff: notify.retry_backoff,
        node_id: node_id(config),
        web_url: web_url.to_owned(),
    }
}

/// The machine's name (the default node id), else `ferry`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "ferry".to_owned())
}

/// Passes the SFTP layer's "upload finished" events to ingest (partial
/// uploads are recorded by the SFTP layer and never processed). Events lost
/// to a lagging receiver are found by ingest's scan.
async fn forward_finished_uploads(
    mut events: tokio::sync::broadcast::Receiver<ferry_sftp::UploadEvent>,
    finished: tokio::sync::mpsc::UnboundedSender<ferry_ingest::FinishedUpload>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match events.recv().await {
            Ok(ferry_sftp::UploadEvent::Finished(upload)) => {
                let Some(name) = upload.path.strip_prefix("/inbound/") else {
                    continue;
                };
                let _ = finished.send(ferry_ingest::FinishedUpload {
                    account: upload.account,
                    name: name.to_owned(),
                });
            }
            Ok(ferry_sftp::UploadEvent::Partial(_)) => {}
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "ingest missed upload events; the next scan finds those files"
                );
            }
            Err(RecvError::Closed) => break,
        }
    }
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

/// Logs to stderr; the level comes from FERRY_LOG (else RUST_LOG, else
/// info); the format from FERRY_LOG_FORMAT, else `[log] format`: `json` is
/// one JSON object per line with the same fields as the text form.
fn init_logging(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("FERRY_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let json = std::env::var("FERRY_LOG_FORMAT")
        .map(|v| v.eq_ignore_ascii_case("json"))
        .unwrap_or(format == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::log_writer::EscapingStderr)
        .with_ansi(false);
    // JSON escapes client text itself; the writer escapes the text form's.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
