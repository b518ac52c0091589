//! The administrative subcommands: accounts, keys, host keys, migrations.
//!
//! Each prints what it did in words a vendor's operator can act on, and
//! `--json` where scripts need it. Every change is recorded in the audit log
//! by the store, with the acting user as `cli:<user>`.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use ferry_keys::KeyPolicy;
use ferry_store::{
    AccountLimits, Actor, AddOutcome, AddStatus, KeyRecord, KeyState, LimitsChange, NewKey, Role,
    Store, escape_control, format_size, format_timestamp, parse_size,
};

use crate::config::Config;

#[derive(Subcommand)]
pub enum AccountCommand {
    /// Create a district account and its folders (/inbound, /outbound, /archive, /reports).
    Create {
        name: String,
        #[arg(long)]
        display_name: Option<String>,
        /// Accept ssh-rsa (SHA-1) login signatures from old Java exporters (JSch 0.1.x).
        #[arg(long)]
        legacy_clients: bool,
    },
    /// List accounts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Refuse new logins for an account (its files and keys stay).
    Disable { name: String },
    /// Allow logins again.
    Enable { name: String },
    /// Show recent login attempts: who tried, from where, with which key, and why it was refused.
    Attempts {
        name: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Change an account's settings.
    Set {
        name: String,
        /// Accept ssh-rsa (SHA-1) login signatures (old JSch-based exporters).
        #[arg(long, value_enum)]
        legacy_clients: Option<OnOff>,
        /// How often the account is expected to upload (e.g. 24h), or off.
        #[arg(long, value_name = "DURATION|off")]
        expected_every: Option<String>,
        /// Open files and folders the account may hold across its sessions on a node, or default ([sftp] max_handles_per_account).
        #[arg(long, value_name = "N|default")]
        max_handles: Option<String>,
        /// The largest file the account may upload (e.g. 8GiB), or default ([sftp] max_file_size).
        #[arg(long, value_name = "SIZE|default")]
        max_file_size: Option<String>,
        /// Bytes the account may hold in /inbound plus uploads in progress (e.g. 50GiB), or default ([sftp] quota).
        #[arg(long, value_name = "SIZE|default")]
        quota: Option<String>,
        /// A district contact (repeatable): the list becomes exactly these; `--contact none` removes them all.
        #[arg(long = "contact", value_name = "EMAIL")]
        contacts: Vec<String>,
    },
    /// Create and update accounts from a CSV file (name, display_name, contacts, expected_every); running it twice changes nothing.
    Import {
        file: std::path::PathBuf,
        /// Only say what would change.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `--max-handles N|default` and the sizes: `None` for default.
fn limit_arg(
    flag: &str,
    text: Option<&str>,
    parse: fn(&str) -> Result<u64, String>,
) -> anyhow::Result<Option<Option<u64>>> {
    match text.map(str::trim) {
        None => Ok(None),
        Some("default") => Ok(Some(None)),
        Some(text) => parse(text)
            .map(|n| Some(Some(n)))
            .map_err(|e| anyhow::anyhow!("{flag} {e}; or write default")),
    }
}

fn count(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not a whole number"))
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Add public keys from a file, or from stdin with "-".
    Add {
        account: String,
        file: String,
        /// Activate at once instead of after keys.propagation_delay.
        #[arg(long)]
        now: bool,
        /// Replace the account's whole set: keys not listed retire when the new ones activate.
        #[arg(long)]
        replace: bool,
    },
    /// List an account's keys with their state.
    List {
        account: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key now, by fingerprint (SHA256:…) or id.
    Revoke { account: String, key: String },
    /// Cancel a pending key (before it activates): it is removed.
    Cancel { account: String, key: String },
    /// Activate a pending key now instead of after the propagation delay.
    Activate { account: String, key: String },
    /// Parse and judge keys from a file (or stdin with "-"); stores nothing.
    /// Exits 0 only when at least one key was found and every key was accepted.
    Inspect {
        file: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create an admin user of the admin web; the password is read from standard input.
    Create {
        username: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// The account a district admin is bound to (required for district-admin).
        #[arg(long)]
        account: Option<String>,
    },
    /// Invite a district admin: prints a one-time link (7 days) with which they set their own password.
    Invite {
        #[arg(long)]
        account: String,
        #[arg(long)]
        email: String,
        /// Also e-mail the link to EMAIL (needs notify.smtp_url).
        #[arg(long)]
        send: bool,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it (shown only this once; only its hash is stored).
    Create {
        #[arg(long, value_enum)]
        role: RoleArg,
        /// The account a district token is bound to (required for district-admin).
        #[arg(long)]
        account: Option<String>,
    },
}

/// `--role`: vendor-admin (every account) or district-admin (one account).
#[derive(Clone, Copy, ValueEnum)]
pub enum RoleArg {
    VendorAdmin,
    DistrictAdmin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::VendorAdmin => Role::VendorAdmin,
            RoleArg::DistrictAdmin => Role::DistrictAdmin,
        }
    }
}

#[derive(Subcommand)]
pub enum HostKeyCommand {
    /// Print the host public keys as .pub lines (each after a comment with
    /// its fingerprint), or as known_hosts lines for HOST[:PORT].
    Show {
        /// Print known_hosts lines for this address (default port 22).
        #[arg(long, value_name = "HOST[:PORT]")]
        known_hosts: Option<String>,
    },
}

/// The actor recorded in the audit log for command-line changes: the
/// invoking user (through sudo, the user who ran sudo).
pub fn actor() -> Actor {
    let user = ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(user_of_this_process);
    Actor::new(format!("cli:{user}"))
}

/// The name of this process's user from /etc/passwd, else `uid-N`.
fn user_of_this_process() -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        return "unknown".to_owned();
    };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                (fields.nth(1)? == uid.to_string()).then(|| name.to_owned())
            })
        })
        .unwrap_or_else(|| format!("uid-{uid}"))
}

/// Opens the store and applies pending migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(&config.database_url).await?;
    store.migrate().await?;
    Ok(store)
}

pub async fn migrate(config: &Config) -> anyhow::Result<ExitCode> {
    open_store(config).await?;
    println!("database is up to date");
    Ok(ExitCode::SUCCESS)
}

pub async fn account(config: &Config, cmd: AccountCommand) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    match cmd {
        AccountCommand::Create {
            name,
            display_name,
            legacy_clients,
        } => {
            let account = store
                .create_account(&name, display_name.as_deref(), legacy_clients, &actor())
                .await?;
            crate::process::secure_data_dir(config)?;
            let root = ferry_sftp::jail::Jail::create_layout(&config.data_dir, &account.name).with_context(|| {
                format!("account {name} was created but its folders could not be: check that data_dir is writable")
            })?;
            println!("created account {} ({})", account.name, root.display());
            if legacy_clients {
                println!(
                    "legacy clients: ssh-rsa (SHA-1) login signatures are accepted for this account"
                );
            }
            println!("next: ferry key add {} KEYFILE.pub", account.name);
        }
        AccountCommand::List { json } => {
            let accounts = store.accounts().await?;
            let stale = store.stale_accounts().await?;
            let is_stale = |name: &str| stale.iter().any(|s| s == name);
            if json {
                let mut listed = Vec::new();
                for a in &accounts {
                    let mut value = serde_json::to_value(a)?;
                    value["stale"] = is_stale(&a.name).into();
                    listed.push(value);
                }
                println!("{}", serde_json::to_string_pretty(&listed)?);
            } else if accounts.is_empty() {
                println!("no accounts yet: create one with `ferry account create NAME`");
            } else {
                for a in accounts {
                    println!(
                        "{}\t{}\t{}{}{}",
                        a.name,
                        if a.enabled { "enabled" } else { "disabled" },
                        a.display_name.as_deref().unwrap_or(""),
                        if a.legacy_clients {
                            "\tlegacy-clients"
                        } else {
                            ""
                        },
                        if is_stale(&a.name) {
                            "\tSTALE: no upload within its expected interval"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
        AccountCommand::Disable { name } => {
            store.set_account_enabled(&name, false, &actor()).await?;
            println!("account {name} disabled: new logins are refused");
        }
        AccountCommand::Enable { name } => {
            store.set_account_enabled(&name, true, &actor()).await?;
            println!("account {name} enabled");
        }
        AccountCommand::Attempts { name, limit, json } => {
            let attempts = store.auth_attempts(&name, limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&attempts)?);
            } else if attempts.is_empty() {
                println!("no login attempts recorded for {name}");
            } else {
                for a in attempts {
                    // A row stands for `count` refusals; its time is the latest.
                    let times = if a.count > 1 {
                        format!(" x{} since {}", a.count, format_timestamp(a.at))
                    } else {
                        String::new()
                    };
                    println!(
                        "{}\t{}\t{}{}\t{}\t{}\t{}",
                        format_timestamp(a.last_at),
                        escape_control(&a.client_addr),
                        a.result.as_str(),
                        times,
                        escape_control(&a.reason),
                        escape_control(a.fingerprint.as_deref().unwrap_or("-")),
                        escape_control(&a.client_banner)
                    );
                }
            }
        }
        AccountCommand::Import { file, dry_run } => {
            return crate::operations::import(config, &store, &file, dry_run).await;
        }
        AccountCommand::Set {
            name,
            legacy_clients,
            expected_every,
            max_handles,
            max_file_size,
            quota,
            contacts,
        } => {
            let limits = LimitsChange {
                max_handles: limit_arg("--max-handles", max_handles.as_deref(), count)?,
                max_file_size: limit_arg("--max-file-size", max_file_size.as_deref(), parse_size)?,
                quota: limit_arg("--quota", quota.as_deref(), parse_size)?,
            };
            if legacy_clients.is_none()
                && expected_every.is_none()
                && limits.is_empty()
                && contacts.is_empty()
            {
                bail!(
                    "nothing to change: give --legacy-clients on|off, --expected-every DURATION|off, --max-handles N, --max-file-size SIZE, --quota SIZE or --contact EMAIL"
                );
            }
            if !limits.is_empty() {
                let account = store.set_account_limits(&name, limits, &actor()).await?;
                println!("account {name}: {}", describe_limits(&account.limits));
            }
            if !contacts.is_empty() {
                let list: Vec<String> = contacts.into_iter().filter(|c| c != "none").collect();
                let stored = store.set_contacts(&name, &list, &actor()).await?;
                if stored.is_empty() {
                    println!("account {name}: no contacts");
                } else {
                    println!("account {name}: contacts {}", stored.join(", "));
                }
            }
            if let Some(on) = legacy_clients {
                let on = matches!(on, OnOff::On);
                store.set_legacy_clients(&name, on, &actor()).await?;
                println!(
                    "account {name}: legacy clients {}",
                    if on { "on" } else { "off" }
                );
            }
            if let Some(every) = expected_every {
                let secs = match every.as_str() {
                    "off" => None,
                    text => Some(
                        humantime::parse_duration(text)
                            .map_err(|e| {
                                anyhow::anyhow!(
                                    "--expected-every {text:?}: {e}; write it like 24h, or off"
                                )
                            })?
                            .as_secs() as i64,
                    ),
                };
                store.set_expected_every(&name, secs, &actor()).await?;
                println!("account {name}: expected every {every}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// "max handles 50, largest file default, quota 1.0 GiB".
fn describe_limits(limits: &AccountLimits) -> String {
    let or_default =
        |v: Option<u64>, show: fn(u64) -> String| v.map_or_else(|| "default".to_owned(), show);
    format!(
        "max handles {}, largest file {}, quota {}",
        or_default(limits.max_handles, |n| n.to_string()),
        or_default(limits.max_file_size, format_size),
        or_default(limits.quota, format_size)
    )
}

/// Reads a key file, or stdin for "-".
fn read_input(file: &str) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if file == "-" {
        std::io::stdin()
            .take(ferry_keys::MAX_INPUT_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .context("cannot read keys from standard input")?;
    } else {
        let path = Path::new(file);
        let len = std::fs::metadata(path)
            .with_context(|| format!("cannot read {file}: check the path"))?
            .len();
        if len > ferry_keys::MAX_INPUT_BYTES as u64 {
            bail!(
                "{file} is {len} bytes; a key file is at most 1 MiB: give the .pub file, not an archive or a private key"
            );
        }
        bytes = std::fs::read(path).with_context(|| format!("cannot read {file}"))?;
    }
    Ok(bytes)
}

pub async fn key(config: &Config, cmd: KeyCommand) -> anyhow::Result<ExitCode> {
    let policy = KeyPolicy {
        min_rsa_bits: config.keys.min_rsa_bits,
    };
    if let KeyCommand::Inspect { file, json } = &cmd {
        return inspect(file, &policy, *json);
    }
    let store = open_store(config).await?;
    match cmd {
        KeyCommand::Add {
            account,
            file,
            now,
            replace,
        } => {
            let keys = accepted_keys(&read_input(&file)?, &policy)?;
            let delay_ms = if now {
                0
            } else {
                i64::try_from(config.keys.propagation_delay.as_millis()).unwrap_or(i64::MAX)
            };
            let outcomes = if replace {
                store
                    .replace_keys(&account, &keys, delay_ms, &actor())
                    .await?
            } else {
                store.add_keys(&account, &keys, delay_ms, &actor()).await?
            };
            for outcome in outcomes {
                println!("{}", describe_outcome(&outcome));
            }
        }
        KeyCommand::List { account, json } => {
            let keys = store.keys(&account).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else if keys.is_empty() {
                println!("{account} has no keys: add one with `ferry key add {account} FILE.pub`");
            } else {
                for k in keys {
                    let last_used = k.last_used_at.map_or("never used".to_owned(), |at| {
                        format!("last used {}", format_timestamp(at))
                    });
                    println!(
                        "{}\t{}\t{} {}\t{}\t{}\tadded by {}\t{}\t{}",
                        k.id,
                        k.fingerprint,
                        k.key_type,
                        k.bits,
                        state_detail(&k),
                        last_used,
                        escape_control(&k.added_by),
                        escape_control(&k.options),
                        escape_control(&k.comment)
                    );
                }
            }
        }
        KeyCommand::Revoke { account, key } => {
            let revoked = store.revoke_key(&account, &key, &actor()).await?;
            println!(
                "revoked {} ({} {}) of {account}: it can no longer log in",
                revoked.fingerprint, revoked.key_type, revoked.bits
            );
        }
        KeyCommand::Cancel { account, key } => {
            let cancelled = store.cancel_pending_key(&account, &key, &actor()).await?;
            println!(
                "cancelled pending key {} of {account}: it was removed",
                cancelled.fingerprint
            );
        }
        KeyCommand::Activate { account, key } => {
            let activated = store.activate_key(&account, &key, &actor()).await?;
            println!(
                "{} of {account}: {}",
                activated.fingerprint,
                state_detail(&activated)
            );
        }
        KeyCommand::Inspect { .. } => unreachable!("handled above"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The keys of an input when every one is accepted; otherwise every refusal
/// is printed and nothing is returned, so nothing is half-applied.
fn accepted_keys(input: &[u8], policy: &KeyPolicy) -> anyhow::Result<Vec<NewKey>> {
    let findings = ferry_keys::parse_keys(input, policy)?;
    let refusals: Vec<String> = findings
        .iter()
        .filter_map(|f| f.refusal().map(ToString::to_string))
        .collect();
    if !refusals.is_empty() {
        for refusal in &refusals {
            eprintln!("{refusal}");
        }
        bail!("no key was added: fix or remove the refused key(s) above and run the command again");
    }
    Ok(findings.iter().filter_map(NewKey::from_finding).collect())
}

fn describe_outcome(outcome: &AddOutcome) -> String {
    let k = &outcome.key;
    let what = format!(
        "{} ({} {}{})",
        k.fingerprint,
        k.key_type,
        k.bits,
        comment_suffix(&k.comment)
    );
    match outcome.status {
        AddStatus::Added => format!("added {what}: {}", state_detail(k)),
        AddStatus::Unchanged => format!("unchanged {what}: already installed, {}", state_detail(k)),
        AddStatus::Reinstated => format!("kept {what}: no longer retiring"),
        AddStatus::Retiring => format!("retiring {what}: {}", state_detail(k)),
    }
}

fn comment_suffix(comment: &str) -> String {
    if comment.is_empty() {
        String::new()
    } else {
        format!(", {comment}")
    }
}

/// The state in words, with the time that matters for it.
fn state_detail(k: &KeyRecord) -> String {
    match k.state {
        KeyState::Pending => format!("pending, active from {}", format_timestamp(k.effective_at)),
        KeyState::Active => "active".to_owned(),
        KeyState::Retiring => match k.retire_at {
            Some(at) => format!("retiring at {}", format_timestamp(at)),
            None => "retiring".to_owned(),
        },
        KeyState::Revoked => match k.revoked_at {
            Some(at) => format!("revoked at {}", format_timestamp(at)),
            None => "revoked".to_owned(),
        },
        KeyState::Expired => "expired".to_owned(),
    }
}

/// `ferry key inspect`: parse and judge, store nothing.
fn inspect(file: &str, policy: &KeyPolicy, json: bool) -> anyhow::Result<ExitCode> {
    let parsed = read_input(file).and_then(|input| Ok(ferry_keys::parse_keys(&input, policy)?));
    let findings = match parsed {
        Ok(findings) => findings,
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "keys": [], "error": e.to_string() })
                );
            }
            eprintln!("ferry: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "keys": findings }))?
        );
    } else {
        for f in &findings {
            match (f.accepted_key(), f.refusal()) {
                (Some(k), _) => println!(
                    "line {}: accepted {} {} {}{}",
                    f.line,
                    k.bits,
                    k.fingerprint,
                    k.key_type,
                    comment_suffix(&f.comment)
                ),
                (None, Some(r)) => println!("{r}"),
                (None, None) => {}
            }
        }
    }
    let all_accepted = !findings.is_empty() && findings.iter().all(|f| f.is_accepted());
    Ok(if all_accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn authorized_keys(config: &Config, account: &str) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    for key in store.active_keys(account).await? {
        println!("{}", key.authorized_keys_line());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn host_key(config: &Config, cmd: HostKeyCommand) -> anyhow::Result<ExitCode> {
    let HostKeyCommand::Show { known_hosts } = cmd;
    let keys = ferry_sftp::host_keys::HostKeys::load_or_create(&config.data_dir)?;
    let name = match &known_hosts {
        Some(address) => Some(crate::operations::known_hosts_name(address)?),
        None => None,
    };
    for key in keys.public_keys() {
        // `type base64` without the file's comment: what .pub and known_hosts take.
        let key_part = key
            .openssh
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        println!("# {} {}", key.algorithm, key.fingerprint);
        match &name {
            Some(name) => println!("{name} {key_part}"),
            None => println!("{key_part}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn admin(config: &Config, cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    let (username, role, account) = match cmd {
        AdminCommand::Create {
            username,
            role,
            account,
        } => (username, role, account),
        AdminCommand::Invite {
            account,
            email,
            send,
        } => return crate::operations::invite(config, &account, &email, send).await,
    };
    let mut input = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut input)
        .context("cannot read the password from standard input")?;
    let password = input.lines().next().unwrap_or_default();
    if password.is_empty() {
        bail!(
            "no password on standard input: pipe it in, for example `printf '%s\\n' \"$PASSWORD\" | ferry admin create {username} --role …`"
        );
    }
    let store = open_store(config).await?;
    let admin = store
        .create_admin(
            &username,
            password,
            role.into(),
            account.as_deref(),
            &actor(),
        )
        .await?;
    match &admin.account {
        Some(account) => println!(
            "created admin {} ({}, account {account})",
            admin.username, admin.role
        ),
        None => println!("created admin {} ({})", admin.username, admin.role),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn token(config: &Config, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    let TokenCommand::Create { role, account } = cmd;
    let store = open_store(config).await?;
    let (token, secret) = store
        .create_api_token(role.into(), account.as_deref(), &actor())
        .await?;
    eprintln!(
        "created API token {} ({}{}); it is shown only this once, store it now:",
        token.id,
        token.role,
        token
            .account
            .as_deref()
            .map(|a| format!(", account {a}"))
            .unwrap_or_default()
    );
    println!("{secret}");
    Ok(ExitCode::SUCCESS)
}
