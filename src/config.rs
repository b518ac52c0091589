//! Ferry's configuration: one TOML file, built-in defaults, environment overrides.
//!
//! The built-in defaults are `config/ferry.toml` itself, embedded at build
//! time, so the documented file and the behaviour cannot drift apart. A
//! user's file is laid over them key by key, then `FERRY_<SECTION>__<KEY>`
//! variables over that. A bad value stops the start with one line that names
//! the key and what is wrong.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use ipnet::IpNet;
use serde::Deserialize;

/// The default configuration, as shipped in `config/ferry.toml`.
pub const DEFAULT_CONFIG: &str = include_str!("../config/ferry.toml");

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// The group that may read what Ferry creates; `None`: Ferry's user only.
    pub data_group: Option<String>,
    pub sftp: Sftp,
    pub web: Web,
    pub database_url: String,
    pub keys: Keys,
    pub ingest: Ingest,
    pub notify: Notify,
    /// `text` or `json` (`[log] format`).
    pub log_format: String,
    /// Where the configuration came from, for the start-up log.
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct Sftp {
    pub enabled: bool,
    pub listen: SocketAddr,
    pub login_grace: Duration,
    pub max_startups: ferry_sftp::MaxStartups,
    pub max_unauthenticated_per_address: usize,
    pub max_sessions_per_account: usize,
    pub idle_timeout: Duration,
    pub shutdown_grace: Duration,
    pub max_handles_per_session: usize,
    pub max_handles_per_account: usize,
    pub max_file_size: u64,
    pub quota: u64,
    pub penalties: bool,
    pub penalty_exempt: Vec<IpNet>,
    pub attempts_retention: Duration,
    pub legacy_algorithms: bool,
    /// The (host, port) districts connect to, when set.
    pub public_address: Option<(String, u16)>,
}

#[derive(Debug, Clone)]
pub struct Web {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// `https://…` or `http://…` without a trailing slash; empty: derived
    /// from the listening address.
    pub public_url: String,
    pub limits: ferry_web::WebLimits,
}

#[derive(Debug, Clone)]
pub struct Keys {
    pub propagation_delay: Duration,
    pub min_rsa_bits: u32,
}

/// `[ingest]`: the pipeline's settings (see config/ferry.toml).
#[derive(Debug, Clone)]
pub struct Ingest {
    pub enabled: bool,
    pub settle: Duration,
    pub quiet_period: Duration,
    pub retention: Duration,
    pub max_row_drop: ferry_ingest::MaxRowDrop,
    pub scan_interval: Duration,
    pub poll_interval: Duration,
    /// This node's name in the job queue; the host name when not set.
    pub node_id: String,
    pub rules: ferry_ingest::Rules,
    pub handoff: ferry_ingest::HandoffSettings,
    /// Batches of different accounts processed at once.
    pub workers: usize,
    /// Files larger than this are refused without being read.
    pub max_file_size: u64,
}

/// `[notify]`: notifications (see config/ferry.toml).
#[derive(Clone)]
pub struct Notify {
    pub smtp_url: Option<String>,
    pub from: String,
    pub vendor_emails: Vec<String>,
    pub webhook_url: Option<String>,
    pub webhook_secret: String,
    pub repeat_after: Duration,
    pub digest_at: Option<(u32, u32)>,
    pub refused_logins: i64,
    pub refused_logins_window: Duration,
    pub poll_interval: Duration,
    pub check_interval: Duration,
    pub retry_backoff: Duration,
}

impl std::fmt::Debug for Notify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The SMTP URL may hold a password, the webhook secret is one.
        f.debug_struct("Notify")
            .field("smtp", &self.smtp_url.as_ref().map(|_| "set"))
            .field("from", &self.from)
            .field("vendor_emails", &self.vendor_emails)
            .field("webhook", &self.webhook_url.as_ref().map(|_| "set"))
            .field("repeat_after", &self.repeat_after)
            .finish_non_exhaustive()
    }
}

/// The file's shape; strings are checked and converted in [`Config::from_raw`].
/// `web.public_url`: empty, or an http(s) URL (trailing `/` dropped).
fn public_url(text: &str) -> anyhow::Result<String> {
    let text = text.trim().trim_end_matches('/');
    if text.is_empty() || text.starts_with("https://") || text.starts_with("http://") {
        Ok(text.to_owned())
    } else {
        bail!(
            "web.public_url = {text:?} is not a URL: write the address people open, such as \"https://sftp.example.org\", or leave it empty"
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: PathBuf,
    data_group: String,
    sftp: RawSftp,
    web: RawWeb,
    database: RawDatabase,
    keys: RawKeys,
    ingest: RawIngest,
    notify: RawNotify,
    log: RawLog,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    smtp_url: String,
    from: String,
    vendor_emails: Vec<String>,
    webhook_url: String,
    webhook_secret: String,
    repeat_after: String,
    digest_at: String,
    refused_logins: i64,
    refused_logins_window: String,
    poll_interval: String,
    check_interval: String,
    retry_backoff: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSftp {
    enabled: bool,
    listen: String,
    login_grace: String,
    max_startups: String,
    max_unauthenticated_per_address: usize,
    max_sessions_per_account: usize,
    idle_timeout: String,
    shutdown_grace: String,
    max_handles_per_session: usize,
    max_handles_per_account: usize,
    max_file_size: String,
    quota: String,
    penalties: bool,
    penalty_exempt: Vec<String>,
    attempts_retention: String,
    legacy_algorithms: bool,
    public_address: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    enabled: bool,
    listen: String,
    public_url: String,
    max_connections: usize,
    max_connections_per_address: usize,
    header_timeout: String,
    request_timeout: String,
    trusted_proxies: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    propagation_delay: String,
    min_rsa_bits: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIngest {
    enabled: bool,
    settle: String,
    quiet_period: String,
    retention: String,
    max_row_drop: f64,
    scan_interval: String,
    poll_interval: String,
    node_id: String,
    rules_file: String,
    command: Vec<String>,
    command_timeout: String,
    webhook_url: String,
    webhook_secret: String,
    webhook_attempts: u32,
    webhook_backoff: String,
    workers: usize,
    max_file_size: toml::Value,
}

impl Config {
    /// Loads the configuration: `explicit` (from `--config`), else
    /// `$FERRY_CONFIG`, else `config/ferry.toml` when present, else the
    /// built-in defaults; then environment overrides.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<Config> {
        let from_env = std::env::var_os("FERRY_CONFIG").map(PathBuf::from);
        let local = Path::new("config/ferry.toml");
        let file = explicit
            .map(Path::to_owned)
            .or(from_env)
            .or_else(|| local.exists().then(|| local.to_owned()));
        let overrides: Vec<(String, String)> = std::env::vars().collect();
        match file {
            Some(path) => {
                let text = std::fs::read_to_string(&path).with_context(|| {
                    format!("cannot read the configuration file {}: check the path given to --config or FERRY_CONFIG", path.display())
                })?;
                Config::parse(Some(&text), &overrides, &path.display().to_string())
            }
            None => Config::parse(None, &overrides, "built-in defaults"),
        }
    }

    /// Builds the configuration from an optional file's text laid over the
    /// defaults, then the `FERRY_…` variables among `env`.
    pub fn parse(
        file: Option<&str>,
        env: &[(String, String)],
        source: &str,
    ) -> anyhow::Result<Config> {
        let mut table: toml::Table = DEFAULT_CONFIG
            .parse()
            .context("the built-in configuration is invalid")?;
        if let Some(text) = file {
            let user: toml::Table = text
                .parse()
                .map_err(|e| anyhow::anyhow!("configuration {source} is not valid TOML: {e}"))?;
            merge(&mut table, user, "")?;
        }
        apply_env(&mut table, env)?;
        let raw: RawConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e| anyhow::anyhow!("configuration {source}: {e}"))?;
        Config::from_raw(raw, source)
    }

    fn from_raw(raw: RawConfig, source: &str) -> anyhow::Result<Config> {
        let data_group = raw.data_group.trim().to_owned();
        let config = Config {
            data_dir: raw.data_dir,
            data_group: (!data_group.is_empty()).then_some(data_group),
            sftp: sftp(raw.sftp)?,
            web: web(raw.web)?,
            database_url: raw.database.url,
            keys: Keys {
                propagation_delay: duration("keys.propagation_delay", &raw.keys.propagation_delay)?,
                min_rsa_bits: raw.keys.min_rsa_bits,
            },
            ingest: ingest(raw.ingest)?,
            notify: notify(raw.notify)?,
            log_format: match raw.log.format.trim() {
                "text" | "" => "text".to_owned(),
                "json" => "json".to_owned(),
                other => bail!("log.format = {other:?}: write \"text\" or \"json\""),
            },
            source: source.to_owned(),
        };
        if !(config.database_url.starts_with("sqlite:")
            || config.database_url.starts_with("postgres"))
        {
            bail!(
                "database.url = {:?}: use sqlite://PATH or postgres://user:password@host/database",
                config.database_url
            );
        }
        if config.keys.min_rsa_bits < 1024 {
            bail!(
                "keys.min_rsa_bits = {}: must be at least 1024 (2048 is the safe default)",
                config.keys.min_rsa_bits
            );
        }
        Ok(config)
    }
}

/// Checks and converts `[sftp]`.
fn sftp(raw: RawSftp) -> anyhow::Result<Sftp> {
    let max_startups = ferry_sftp::MaxStartups::parse(&raw.max_startups)
        .map_err(|why| anyhow::anyhow!("sftp.max_startups = {:?}: {why}", raw.max_startups))?;
    Ok(Sftp {
        enabled: raw.enabled,
        listen: address("sftp.listen", &raw.listen)?,
        login_grace: duration("sftp.login_grace", &raw.login_grace)?,
        max_startups,
        max_unauthenticated_per_address: at_least_one(
            "sftp.max_unauthenticated_per_address",
            raw.max_unauthenticated_per_address,
        )?,
        max_sessions_per_account: at_least_one(
            "sftp.max_sessions_per_account",
            raw.max_sessions_per_account,
        )?,
        idle_timeout: duration("sftp.idle_timeout", &raw.idle_timeout)?,
        shutdown_grace: duration("sftp.shutdown_grace", &raw.shutdown_grace)?,
        max_handles_per_session: at_least_one(
            "sftp.max_handles_per_session",
            raw.max_handles_per_session,
        )?,
        max_handles_per_account: at_least_one(
            "sftp.max_handles_per_account",
            raw.max_handles_per_account,
        )?,
        max_file_size: size("sftp.max_file_size", &raw.max_file_size)?,
        quota: size("sftp.quota", &raw.quota)?,
        penalties: raw.penalties,
        penalty_exempt: networks("sftp.penalty_exempt", &raw.penalty_exempt)?,
        attempts_retention: duration("sftp.attempts_retention", &raw.attempts_retention)?,
        legacy_algorithms: raw.legacy_algorithms,
        public_address: public_address(&raw.public_address)?,
    })
}

/// Checks and converts `[web]`.
fn web(raw: RawWeb) -> anyhow::Result<Web> {
    Ok(Web {
        enabled: raw.enabled,
        listen: address("web.listen", &raw.listen)?,
        public_url: public_url(&raw.public_url)?,
        limits: ferry_web::WebLimits {
            max_connections: at_least_one("web.max_connections", raw.max_connections)?,
            max_connections_per_address: at_least_one(
                "web.max_connections_per_address",
                raw.max_connections_per_address,
            )?,
            header_timeout: nonzero("web.header_timeout", &raw.header_timeout)?,
            request_timeout: nonzero("web.request_timeout", &raw.request_timeout)?,
            trusted_proxies: networks("web.trusted_proxies", &raw.trusted_proxies)?,
        },
    })
}

/// A list of CIDRs (a bare address counts as /32 or /128).
fn networks(key: &str, texts: &[String]) -> anyhow::Result<Vec<IpNet>> {
    texts
        .iter()
        .map(|text| {
            let text = text.trim();
            text.parse::<IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    anyhow::anyhow!(
                        "{key}: {text:?} is not a network; write CIDRs like \"192.0.2.0/24\" or \"2001:db8::/48\""
                    )
                })
        })
        .collect()
}

/// A duration that must be longer than zero.
fn nonzero(key: &str, text: &str) -> anyhow::Result<Duration> {
    let value = duration(key, text)?;
    if value.is_zero() {
        bail!("{key} = {text:?}: must be longer than zero, like 10s");
    }
    Ok(value)
}

/// Checks and converts `[ingest]`.
fn ingest(raw: RawIngest) -> anyhow::Result<Ingest> {
    let max_row_drop = ferry_ingest::MaxRowDrop::new(raw.max_row_drop).map_err(|_| {
        anyhow::anyhow!(
            "ingest.max_row_drop = {}: must be a fraction between 0 and 1, like 0.10",
            raw.max_row_drop
        )
    })?;
    if raw
        .command
        .first()
        .is_some_and(|program| program.trim().is_empty())
    {
        bail!(
            "ingest.command starts with an empty program name: write it like [\"/usr/local/bin/import\", \"--district\"], or [] for no command"
        );
    }
    let webhook_url = raw.webhook_url.trim().to_owned();
    if !webhook_url.is_empty() {
        if !(webhook_url.starts_with("http://") || webhook_url.starts_with("https://")) {
            bail!(
                "ingest.webhook_url = {webhook_url:?}: must start with https:// (or http://), or be empty for no webhook"
            );
        }
        if raw.webhook_secret.is_empty() {
            bail!(
                "ingest.webhook_secret is empty while ingest.webhook_url is set: set a secret (preferably in FERRY_INGEST__WEBHOOK_SECRET) so the receiver can verify X-Ferry-Signature"
            );
        }
    }
    let scan_interval = duration("ingest.scan_interval", &raw.scan_interval)?;
    let poll_interval = duration("ingest.poll_interval", &raw.poll_interval)?;
    for (key, value) in [
        ("ingest.scan_interval", scan_interval),
        ("ingest.poll_interval", poll_interval),
    ] {
        if value.is_zero() {
            bail!("{key} = 0s: must be longer than zero, like 5m or 2s");
        }
    }
    let max_file_size = match &raw.max_file_size {
        toml::Value::String(text) => text.parse::<ferry_ingest::ByteSize>(),
        toml::Value::Integer(bytes) => u64::try_from(*bytes)
            .map_err(|_| "a size limit must be more than 0 bytes".to_owned())
            .and_then(|bytes| bytes.to_string().parse()),
        other => Err(format!("{other} is not a size")),
    }
    .map_err(|e| {
        anyhow::anyhow!(
            "ingest.max_file_size: {e}; write it like \"2 GiB\" or \"500 MB\" (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
        )
    })?;
    Ok(Ingest {
        enabled: raw.enabled,
        workers: at_least_one("ingest.workers", raw.workers)?,
        max_file_size: max_file_size.0,
        settle: duration("ingest.settle", &raw.settle)?,
        quiet_period: duration("ingest.quiet_period", &raw.quiet_period)?,
        retention: duration("ingest.retention", &raw.retention)?,
        max_row_drop,
        scan_interval,
        poll_interval,
        node_id: raw.node_id.trim().to_owned(),
        rules: rules(&raw.rules_file)?,
        handoff: ferry_ingest::HandoffSettings {
            command: raw.command,
            command_timeout: duration("ingest.command_timeout", &raw.command_timeout)?,
            webhook_url: (!webhook_url.is_empty()).then_some(webhook_url),
            webhook_secret: raw.webhook_secret,
            webhook_attempts: at_least_one(
                "ingest.webhook_attempts",
                raw.webhook_attempts as usize,
            )? as u32,
            webhook_backoff: duration("ingest.webhook_backoff", &raw.webhook_backoff)?,
            launcher: None,
        },
    })
}

/// `sftp.public_address`: empty, `host` (port 22) or `host:port` (`[v6]:port`).
fn public_address(text: &str) -> anyhow::Result<Option<(String, u16)>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let bad = || {
        anyhow::anyhow!(
            "sftp.public_address = {text:?} is not host or host:port: write it like \"sftp.example.org\" or \"sftp.example.org:2222\", or leave it empty"
        )
    };
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(port) => (host, port.parse().map_err(|_| bad())?),
            None if after.is_empty() => (host, 22),
            None => return Err(bad()),
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, port.parse().map_err(|_| bad())?),
            Some(_) => (text, 22),
            None => (text, 22),
        }
    };
    if host.is_empty() || host.contains(['/', ' ', '@']) || port == 0 {
        return Err(bad());
    }
    Ok(Some((host.to_owned(), port)))
}

/// Checks and converts `[notify]`.
fn notify(raw: RawNotify) -> anyhow::Result<Notify> {
    let smtp_url = Some(raw.smtp_url.trim().to_owned()).filter(|u| !u.is_empty());
    if let Some(url) = &smtp_url {
        if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
            bail!(
                "notify.smtp_url must start with smtp:// or smtps://, like smtp://user:password@mail.example.org:587?tls=required"
            );
        }
        if raw.from.trim().is_empty() {
            bail!(
                "notify.from is empty while notify.smtp_url is set: set the sender, like \"Ferry <ferry@vendor.example>\""
            );
        }
    }
    for email in &raw.vendor_emails {
        if !ferry_store::valid_email(email.trim()) {
            bail!("notify.vendor_emails: {email:?} is not an e-mail address");
        }
    }
    let webhook_url = Some(raw.webhook_url.trim().to_owned()).filter(|u| !u.is_empty());
    if let Some(url) = &webhook_url {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            bail!(
                "notify.webhook_url = {url:?}: must start with https:// (or http://), or be empty"
            );
        }
        if raw.webhook_secret.is_empty() {
            bail!(
                "notify.webhook_secret is empty while notify.webhook_url is set: set a secret (preferably in FERRY_NOTIFY__WEBHOOK_SECRET) so the receiver can verify X-Ferry-Signature"
            );
        }
    }
    let digest_at = match raw.digest_at.trim() {
        "" => None,
        text => {
            let parsed = text
                .split_once(':')
                .and_then(|(h, m)| Some((h.parse::<u32>().ok()?, m.parse::<u32>().ok()?)))
                .filter(|(h, m)| *h < 24 && *m < 60);
            Some(parsed.ok_or_else(|| {
                anyhow::anyhow!("notify.digest_at = {text:?}: write a UTC time like \"07:00\", or leave it empty")
            })?)
        }
    };
    let poll_interval = duration("notify.poll_interval", &raw.poll_interval)?;
    let check_interval = duration("notify.check_interval", &raw.check_interval)?;
    for (key, value) in [
        ("notify.poll_interval", poll_interval),
        ("notify.check_interval", check_interval),
    ] {
        if value.is_zero() {
            bail!("{key} = 0s: must be longer than zero, like 5s or 1m");
        }
    }
    Ok(Notify {
        smtp_url,
        from: raw.from.trim().to_owned(),
        vendor_emails: raw
            .vendor_emails
            .iter()
            .map(|e| e.trim().to_owned())
            .collect(),
        webhook_url,
        webhook_secret: raw.webhook_secret,
        repeat_after: duration("notify.repeat_after", &raw.repeat_after)?,
        digest_at,
        refused_logins: at_least_one(
            "notify.refused_logins",
            usize::try_from(raw.refused_logins).unwrap_or(0),
        )? as i64,
        refused_logins_window: duration(
            "notify.refused_logins_window",
            &raw.refused_logins_window,
        )?,
        poll_interval,
        check_interval,
        retry_backoff: duration("notify.retry_backoff", &raw.retry_backoff)?,
    })
}

/// The check rules in `ingest.rules_file` (empty: the defaults for every file).
fn rules(path: &str) -> anyhow::Result<ferry_ingest::Rules> {
    if path.trim().is_empty() {
        return Ok(ferry_ingest::Rules::default());
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow::anyhow!("ingest.rules_file = {path:?} cannot be read ({e}): check the path, or set it to \"\" for the default checks")
    })?;
    ferry_ingest::Rules::from_toml_str(&text)
        .map_err(|e| anyhow::anyhow!("ingest.rules_file = {path:?}: {e}"))
}

/// Lays `user` over `base`, refusing keys the defaults do not have (typos).
fn merge(base: &mut toml::Table, user: toml::Table, prefix: &str) -> anyhow::Result<()> {
    for (key, value) in user {
        let name = format!("{prefix}{key}");
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(u)) => {
                merge(b, u, &format!("{name}."))?
            }
            (Some(slot), value) => *slot = value,
            (None, _) if name == "sftp.max_unauthenticated" => bail!(
                "sftp.max_unauthenticated was replaced by sftp.max_startups = \"start:rate:full\" (the total is its full); see config/ferry.toml"
            ),
            (None, _) => bail!(
                "unknown configuration key {name}: see config/ferry.toml for the keys Ferry knows"
            ),
        }
    }
    Ok(())
}

/// Applies `FERRY_<SECTION>__<KEY>` and `FERRY_DATA_DIR`, typed like the
/// default value of the key they replace.
fn apply_env(table: &mut toml::Table, env: &[(String, String)]) -> anyhow::Result<()> {
    for (var, value) in env {
        let Some(rest) = var.strip_prefix("FERRY_") else {
            continue;
        };
        let path: Vec<String> = if rest == "DATA_DIR" {
            vec!["data_dir".into()]
        } else if let Some((section, key)) = rest.split_once("__") {
            vec![section.to_ascii_lowercase(), key.to_ascii_lowercase()]
        } else {
            continue;
        };
        let slot = match path.as_slice() {
            [key] => table.get_mut(key),
            [section, key] => table
                .get_mut(section)
                .and_then(|s| s.as_table_mut())
                .and_then(|s| s.get_mut(key)),
            _ => None,
        };
        let Some(slot) = slot else {
            bail!(
                "{var}: Ferry has no configuration key {}; see config/ferry.toml",
                path.join(".")
            );
        };
        *slot =
            typed_like(slot, value).map_err(|what| anyhow::anyhow!("{var}={value:?}: {what}"))?;
    }
    Ok(())
}

fn typed_like(default: &toml::Value, value: &str) -> Result<toml::Value, String> {
    Ok(match default {
        toml::Value::Boolean(_) => toml::Value::Boolean(match value {
            "true" | "on" | "yes" | "1" => true,
            "false" | "off" | "no" | "0" => false,
            _ => return Err("expected true or false".into()),
        }),
        toml::Value::Integer(_) => {
            toml::Value::Integer(value.parse().map_err(|_| "expected a whole number")?)
        }
        toml::Value::Float(_) => {
            toml::Value::Float(value.parse().map_err(|_| "expected a number like 0.10")?)
        }
        toml::Value::Array(_) => {
            let parsed: toml::Table = format!("value = {value}").parse().map_err(
                |_| "expected a list of strings like [\"/usr/local/bin/import\", \"--batch\"]",
            )?;
            parsed["value"].clone()
        }
        _ => toml::Value::String(value.to_owned()),
    })
}

fn duration(key: &str, text: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        anyhow::anyhow!(
            "{key} = {text:?} is not a duration ({e}); write it like 30s, 10m, 2h or 30d"
        )
    })
}

fn size(key: &str, text: &str) -> anyhow::Result<u64> {
    match ferry_store::parse_size(text) {
        Ok(0) => bail!("{key} = {text:?}: must be more than zero"),
        Ok(bytes) => Ok(bytes),
        Err(e) => bail!("{key} = {e}"),
    }
}

fn address(key: &str, text: &str) -> anyhow::Result<SocketAddr> {
    text.parse().map_err(|_| {
        anyhow::anyhow!("{key} = {text:?} is not an address and port; write it like 127.0.0.1:2222 or 0.0.0.0:22")
    })
}

fn at_least_one(key: &str, n: usize) -> anyhow::Result<usize> {
    if n == 0 {
        bail!("{key} = 0: must be at least 1");
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn built_in_defaults_match_the_design() {
        let c = Config::parse(None, &[], "defaults").unwrap();
        assert_eq!(c.sftp.listen.to_string(), "127.0.0.1:2222");
        assert_eq!(c.web.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://./data/ferry.db");
        assert_eq!(c.keys.propagation_delay, Duration::from_secs(600));
        assert_eq!(c.keys.min_rsa_bits, 2048);
        assert_eq!(c.sftp.login_grace, Duration::from_secs(30));
        assert_eq!(c.ingest.retention, Duration::from_secs(30 * 86400));
        assert_eq!(c.data_group, None);
        assert_eq!(c.sftp.max_handles_per_session, 256);
        assert_eq!(c.sftp.max_handles_per_account, 1024);
        assert_eq!(c.sftp.max_file_size, 4 << 30);
        assert_eq!(c.sftp.quota, 20 << 30);
    }

    #[test]
    fn limits_and_data_group_are_read_and_checked() {
        let c = Config::parse(
            Some("data_group = \"ferry-import\"\n[sftp]\nquota = \"1 GiB\"\n"),
            &env(&[("FERRY_SFTP__MAX_FILE_SIZE", "10MiB")]),
            "test",
        )
        .unwrap();
        assert_eq!(c.data_group.as_deref(), Some("ferry-import"));
        assert_eq!(c.sftp.quota, 1 << 30);
        assert_eq!(c.sftp.max_file_size, 10 << 20);
        let err = |file: &str| Config::parse(Some(file), &[], "f").unwrap_err().to_string();
        assert!(err("[sftp]\nquota = \"lots\"").contains("sftp.quota"));
        assert!(err("[sftp]\nmax_file_size = \"0\"").contains("more than zero"));
        assert!(err("[sftp]\nmax_handles_per_session = 0").contains("at least 1"));
    }

    #[test]
    fn file_and_environment_override_key_by_key() {
        let file = "data_dir = \"/srv/ferry\"\n[keys]\npropagation_delay = \"2s\"\n";
        let c = Config::parse(
            Some(file),
            &env(&[
                ("FERRY_SFTP__LISTEN", "127.0.0.1:0"),
                ("FERRY_SFTP__ENABLED", "false"),
                ("FERRY_CONFIG", "x"),
            ]),
            "test",
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/ferry"));
        assert_eq!(c.keys.propagation_delay, Duration::from_secs(2));
        assert_eq!(c.sftp.listen.port(), 0);
        assert!(!c.sftp.enabled);
        assert_eq!(c.keys.min_rsa_bits, 2048);
    }

    #[test]
    fn bad_values_name_the_key_and_the_fix() {
        let err = |file: &str, vars: &[(&str, &str)]| {
            Config::parse(Some(file), &env(vars), "f")
                .unwrap_err()
                .to_string()
        };
        assert!(
            err("[keys]\npropagation_delay = \"soon\"", &[]).contains("keys.propagation_delay")
        );
        assert!(err("[sftp]\nlisten = \"everywhere\"", &[]).contains("sftp.listen"));
        assert!(err("[sftp]\nlistn = \"x\"", &[]).contains("unknown configuration key sftp.listn"));
        assert!(err("", &[("FERRY_SFTP__NOPE", "1")]).contains("FERRY_SFTP__NOPE"));
        assert!(
            err(
                "",
                &[("FERRY_SFTP__MAX_UNAUTHENTICATED_PER_ADDRESS", "many")]
            )
            .contains("whole number")
        );
        assert!(err("[database]\nurl = \"mysql://x\"", &[]).contains("database.url"));
    }

    #[test]
    fn prelogin_and_web_limits_defaults_and_overrides() {
        let c = Config::parse(None, &[], "defaults").unwrap();
        assert_eq!(c.sftp.max_startups.to_string(), "16:30:64");
        assert!(c.sftp.penalties);
        assert!(c.sftp.penalty_exempt.is_empty());
        assert!(c.sftp.legacy_algorithms);
        assert_eq!(c.sftp.attempts_retention, Duration::from_secs(90 * 86400));
        assert_eq!(c.web.limits.header_timeout, Duration::from_secs(10));
        assert!(c.web.limits.trusted_proxies.is_empty());
        let c = Config::parse(
            Some("[sftp]\npenalty_exempt = [\"192.0.2.0/24\", \"2001:db8::1\"]\n[web]\ntrusted_proxies = [\"127.0.0.1/32\"]\n"),
            &env(&[("FERRY_SFTP__LEGACY_ALGORITHMS", "off"), ("FERRY_SFTP__MAX_STARTUPS", "4:50:8")]),
            "test",
        )
        .unwrap();
        assert_eq!(c.sftp.penalty_exempt.len(), 2);
        assert_eq!(c.sftp.penalty_exempt[1].to_string(), "2001:db8::1/128");
        assert!(!c.sftp.legacy_algorithms);
        assert_eq!(c.sftp.max_startups.to_string(), "4:50:8");
        assert_eq!(c.web.limits.trusted_proxies[0].to_string(), "127.0.0.1/32");
        let err = |file: &str| Config::parse(Some(file), &[], "f").unwrap_err().to_string();
        assert!(err("[sftp]\nmax_startups = \"64:30:16\"").contains("sftp.max_startups"));
        assert!(err("[sftp]\npenalty_exempt = [\"school\"]").contains("sftp.penalty_exempt"));
        assert!(err("[web]\ntrusted_proxies = [\"10.0.0.0/33\"]").contains("web.trusted_proxies"));
        assert!(err("[web]\nheader_timeout = \"0s\"").contains("web.header_timeout"));
        assert!(err("[sftp]\nmax_unauthenticated = 64").contains("sftp.max_startups"));
    }

    #[test]
    fn ingest_defaults_and_overrides() {
        let c = Config::parse(None, &[], "defaults").unwrap();
        let i = &c.ingest;
        assert!(i.enabled);
        assert_eq!(i.settle, Duration::from_secs(30));
        assert_eq!(i.quiet_period, Duration::from_secs(120));
        assert_eq!(i.scan_interval, Duration::from_secs(300));
        assert_eq!(i.max_row_drop.fraction(), 0.10);
        assert!(i.handoff.command.is_empty());
        assert_eq!(i.handoff.webhook_url, None);
        assert_eq!(i.node_id, "");
        assert_eq!(i.workers, 4);
        assert_eq!(i.max_file_size, 2 << 30);
        let c = Config::parse(
            Some("[ingest]\nworkers = 16\nmax_file_size = \"500 MB\"\n"),
            &[],
            "test",
        )
        .unwrap();
        assert_eq!(
            (c.ingest.workers, c.ingest.max_file_size),
            (16, 500_000_000)
        );
        let c = Config::parse(
            None,
            &env(&[("FERRY_INGEST__MAX_FILE_SIZE", "1 KiB")]),
            "test",
        )
        .unwrap();
        assert_eq!(c.ingest.max_file_size, 1024);

        let file = "[ingest]\ncommand = [\"/usr/bin/import\", \"--all\"]\nwebhook_url = \"https://vendor.example/hook\"\n";
        let c = Config::parse(
            Some(file),
            &env(&[
                ("FERRY_INGEST__WEBHOOK_SECRET", "from-the-environment"),
                ("FERRY_INGEST__MAX_ROW_DROP", "0.2"),
            ]),
            "test",
        )
        .unwrap();
        assert_eq!(c.ingest.handoff.command, ["/usr/bin/import", "--all"]);
        assert_eq!(c.ingest.handoff.webhook_secret, "from-the-environment");
        assert_eq!(c.ingest.max_row_drop.fraction(), 0.2);
        assert!(
            !format!("{:?}", c.ingest).contains("from-the-environment"),
            "the secret never shows in debug output"
        );
        let c = Config::parse(
            None,
            &env(&[("FERRY_INGEST__COMMAND", "[\"/bin/true\"]")]),
            "test",
        )
        .unwrap();
        assert_eq!(c.ingest.handoff.command, ["/bin/true"]);
    }

    #[test]
    fn notify_public_address_and_log_format() {
        let c = Config::parse(None, &[], "defaults").unwrap();
        assert_eq!(c.notify.smtp_url, None);
        assert_eq!(c.notify.repeat_after, Duration::from_secs(12 * 3600));
        assert_eq!(c.sftp.public_address, None);
        assert_eq!(c.log_format, "text");
        let file = "[sftp]\npublic_address = \"sftp.example.org:2200\"\n[notify]\nsmtp_url = \"smtp://127.0.0.1:2525\"\nfrom = \"Ferry <f@x.org>\"\nvendor_emails = [\"ops@vendor.example\"]\ndigest_at = \"07:30\"\n";
        let c = Config::parse(Some(file), &env(&[("FERRY_LOG__FORMAT", "json")]), "t").unwrap();
        assert_eq!(
            c.sftp.public_address,
            Some(("sftp.example.org".to_owned(), 2200))
        );
        assert_eq!(c.notify.digest_at, Some((7, 30)));
        assert_eq!(c.log_format, "json");
        let c =
            Config::parse(Some("[sftp]\npublic_address = \"[2001:db8::1]\""), &[], "t").unwrap();
        assert_eq!(c.sftp.public_address, Some(("2001:db8::1".to_owned(), 22)));
        let err = |file: &str| Config::parse(Some(file), &[], "f").unwrap_err().to_string();
        assert!(err("[notify]\nsmtp_url = \"smtp://x:25\"").contains("notify.from"));
        assert!(err("[notify]\nsmtp_url = \"mail.example.org\"").contains("notify.smtp_url"));
        assert!(
            err("[notify]\nwebhook_url = \"https://x\"").contains("FERRY_NOTIFY__WEBHOOK_SECRET")
        );
        assert!(err("[notify]\ndigest_at = \"25:00\"").contains("notify.digest_at"));
        assert!(err("[notify]\nvendor_emails = [\"nope\"]").contains("notify.vendor_emails"));
        assert!(err("[sftp]\npublic_address = \"host:port\"").contains("sftp.public_address"));
        assert!(err("[log]\nformat = \"xml\"").contains("log.format"));
    }

    #[test]
    fn bad_ingest_values_name_the_key_and_the_fix() {
        let err = |file: &str| Config::parse(Some(file), &[], "f").unwrap_err().to_string();
        assert!(err("[ingest]\nmax_row_drop = 1.5").contains("ingest.max_row_drop = 1.5"));
        assert!(err("[ingest]\nworkers = 0").contains("ingest.workers = 0"));
        assert!(err("[ingest]\nmax_file_size = \"5 parsecs\"").contains("ingest.max_file_size"));
        assert!(err("[ingest]\nmax_file_size = 0").contains("ingest.max_file_size"));
        assert!(err("[ingest]\nwebhook_url = \"ftp://x\"").contains("ingest.webhook_url"));
        assert!(
            err("[ingest]\nwebhook_url = \"https://x\"").contains("FERRY_INGEST__WEBHOOK_SECRET")
        );
        assert!(err("[ingest]\ncommand = [\"\"]").contains("ingest.command"));
        assert!(err("[ingest]\nscan_interval = \"0s\"").contains("ingest.scan_interval"));
        assert!(err("[ingest]\ncommand_timeout = \"soon\"").contains("ingest.command_timeout"));
        assert!(
            err("[ingest]\nrules_file = \"/nonexistent/rules.toml\"").contains("ingest.rules_file")
        );
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules.toml");
        std::fs::write(
            &rules,
            "[[rules]]\npattern = \"*.csv\"\nprofile = \"nope\"\n",
        )
        .unwrap();
        let message = err(&format!(
            "[ingest]\nrules_file = {:?}",
            rules.display().to_string()
        ));
        assert!(message.contains("ingest.rules_file"), "{message}");
        let err = Config::parse(None, &env(&[("FERRY_INGEST__COMMAND", "[oops")]), "f")
            .unwrap_err()
            .to_string();
        assert!(err.contains("FERRY_INGEST__COMMAND"), "{err}");
    }
}
