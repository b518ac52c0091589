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
}

#[derive(Debug, Clone)]
pub struct Keys {
    pub propagation_delay: Duration,
    pub min_rsa_bits: u32,
}

/// Validated now so a bad value stops the start; read by ingest once it lands.
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub struct Ingest {
    pub enabled: bool,
    pub settle: Duration,
    pub quiet_period: Duration,
    pub retention: Duration,
    pub max_row_drop: f64,
}

/// The file's shape; strings are checked and converted in [`Config::from_raw`].
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
            },
            database_url: raw.database.url,
            keys: Keys {
                propagation_delay: duration("keys.propagation_delay", &raw.keys.propagation_delay)?,
                min_rsa_bits: raw.keys.min_rsa_bits,
            },
            ingest: Ingest {
                enabled: raw.ingest.enabled,
                settle: duration("ingest.settle", &raw.ingest.settle)?,
                quiet_period: duration("ingest.quiet_period", &raw.ingest.quiet_period)?,
                retention: duration("ingest.retention", &raw.ingest.retention)?,
                max_row_drop: raw.ingest.max_row_drop,
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
        if !(0.0..=1.0).contains(&config.ingest.max_row_drop) {
            bail!(
                "ingest.max_row_drop = {}: must be a fraction between 0 and 1, like 0.10",
                config.ingest.max_row_drop
            );
        }
        Ok(config)
    }
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
}
