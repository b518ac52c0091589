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
use serde::Deserialize;

/// The default configuration, as shipped in `config/ferry.toml`.
pub const DEFAULT_CONFIG: &str = include_str!("../config/ferry.toml");

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub sftp: Sftp,
    pub web: Web,
    pub database_url: String,
    pub keys: Keys,
    pub ingest: Ingest,
    /// Where the configuration came from, for the start-up log.
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct Sftp {
    pub enabled: bool,
    pub listen: SocketAddr,
    pub login_grace: Duration,
    pub max_unauthenticated: usize,
    pub max_unauthenticated_per_address: usize,
    pub max_sessions_per_account: usize,
    pub idle_timeout: Duration,
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone)]
pub struct Web {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// `https://…` or `http://…` without a trailing slash; empty: derived
    /// from the listening address.
    pub public_url: String,
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
    sftp: RawSftp,
    web: RawWeb,
    database: RawDatabase,
    keys: RawKeys,
    ingest: RawIngest,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSftp {
    enabled: bool,
    listen: String,
    login_grace: String,
    max_unauthenticated: usize,
    max_unauthenticated_per_address: usize,
    max_sessions_per_account: usize,
    idle_timeout: String,
    shutdown_grace: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    enabled: bool,
    listen: String,
    public_url: String,
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
        let config = Config {
            data_dir: raw.data_dir,
            sftp: Sftp {
                enabled: raw.sftp.enabled,
                listen: address("sftp.listen", &raw.sftp.listen)?,
                login_grace: duration("sftp.login_grace", &raw.sftp.login_grace)?,
                max_unauthenticated: at_least_one(
                    "sftp.max_unauthenticated",
                    raw.sftp.max_unauthenticated,
                )?,
                max_unauthenticated_per_address: at_least_one(
                    "sftp.max_unauthenticated_per_address",
                    raw.sftp.max_unauthenticated_per_address,
                )?,
                max_sessions_per_account: at_least_one(
                    "sftp.max_sessions_per_account",
                    raw.sftp.max_sessions_per_account,
                )?,
                idle_timeout: duration("sftp.idle_timeout", &raw.sftp.idle_timeout)?,
                shutdown_grace: duration("sftp.shutdown_grace", &raw.sftp.shutdown_grace)?,
            },
            web: Web {
                enabled: raw.web.enabled,
                listen: address("web.listen", &raw.web.listen)?,
                public_url: public_url(&raw.web.public_url)?,
            },
            database_url: raw.database.url,
            keys: Keys {
                propagation_delay: duration("keys.propagation_delay", &raw.keys.propagation_delay)?,
                min_rsa_bits: raw.keys.min_rsa_bits,
            },
            ingest: ingest(raw.ingest)?,
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
        assert!(err("", &[("FERRY_SFTP__MAX_UNAUTHENTICATED", "many")]).contains("whole number"));
        assert!(err("[database]\nurl = \"mysql://x\"", &[]).contains("database.url"));
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
