//! The values the store hands out and takes in.
//!
//! They exist so that the command line, the web API and the SFTP server share
//! one vocabulary (and one JSON shape) for accounts, keys, login attempts,
//! audit events and uploads. Plain data only: nothing here touches the
//! database or reads a clock — states are computed from a `now` the database
//! supplied.

use serde::Serialize;

use crate::time::{format_timestamp, serialize_ms, serialize_opt_ms};

/// Who made a change, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `cli:root`, `admin:alice`, `token:3f9c…` — the caller chooses the form.
    pub who: String,
    /// The address the change came from (web clients), if any.
    pub client_addr: Option<String>,
}

impl Actor {
    /// An actor without a client address (the command line, internal jobs).
    pub fn new(who: impl Into<String>) -> Self {
        Self {
            who: who.into(),
            client_addr: None,
        }
    }

    /// The same actor, acting from `addr`.
    #[must_use]
    pub fn with_client_addr(mut self, addr: impl Into<String>) -> Self {
        self.client_addr = Some(addr.into());
        self
    }
}

impl From<&str> for Actor {
    fn from(who: &str) -> Self {
        Self::new(who)
    }
}

/// A district's SFTP account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    /// Database id.
    pub id: i64,
    /// The SSH user name, `[a-z0-9][a-z0-9_-]{0,62}`.
    pub name: String,
    /// Free text for people, e.g. "Springfield Unified".
    pub display_name: Option<String>,
    /// Disabled accounts cannot log in.
    pub enabled: bool,
    /// Accept `ssh-rsa` (SHA-1) signatures from old Java exporters.
    pub legacy_clients: bool,
    /// How often files are expected (for the freshness check), if at all.
    pub expected_every_secs: Option<i64>,
    /// When the account was created.
    #[serde(serialize_with = "serialize_ms")]
    pub created_at: i64,
    /// The account's own SFTP limits (`null`: the server's default).
    #[serde(flatten)]
    pub limits: AccountLimits,
}

/// An account's own SFTP limits; `None` means the `[sftp]` default applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AccountLimits {
    /// Open files and folders across the account's sessions on one node.
    pub max_handles: Option<u64>,
    /// The largest file the account may upload, in bytes.
    pub max_file_size: Option<u64>,
    /// Bytes the account may hold in /inbound plus uploads in progress.
    pub quota: Option<u64>,
}

/// A change to an account's limits: `None` leaves a limit as it is,
/// `Some(None)` returns it to the server's default, `Some(Some(n))` sets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitsChange {
    pub max_handles: Option<Option<u64>>,
    pub max_file_size: Option<Option<u64>>,
    pub quota: Option<Option<u64>>,
}

impl LimitsChange {
    /// True when the change names no limit at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.max_handles.is_none() && self.max_file_size.is_none() && self.quota.is_none()
    }
}

/// Where a key is in its life. Computed against the database clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Added, usable from `effective_at` on.
    Pending,
    /// Usable.
    Active,
    /// Usable until `retire_at`, when the set that replaced it becomes active.
    Retiring,
    /// Revoked: never usable again.
    Revoked,
    /// Its `retire_at` or its `expiry-time` option has passed.
    Expired,
}

impl KeyState {
    /// The state's name as DESIGN.md spells it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Retiring => "retiring",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }

    /// Whether a login with a key in this state may succeed.
    #[must_use]
    pub fn is_usable(self) -> bool {
        matches!(self, Self::Active | Self::Retiring)
    }
}

impl std::fmt::Display for KeyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key to install, already parsed and accepted by `ferry-keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// `SHA256:…` as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
    /// The type as `ssh-keygen -lf` shows it (`ED25519`, `RSA`, `ECDSA`).
    pub key_type: String,
    /// Key size in bits.
    pub bits: u32,
    /// The key's comment, empty if none.
    pub comment: String,
    /// The authorized_keys options as written (`from="…",expiry-time="…"`), empty if none.
    pub options: String,
    /// The canonical OpenSSH public key line (type, base64, comment).
    pub openssh_line: String,
}

impl NewKey {
    /// The key of an accepted `ferry-keys` finding; `None` when the finding
    /// was refused or holds no key.
    #[must_use]
    pub fn from_finding(finding: &ferry_keys::Finding) -> Option<Self> {
        let facts = finding.accepted_key()?;
        Some(Self {
            fingerprint: facts.fingerprint.clone(),
            key_type: facts.key_type.clone(),
            bits: facts.bits,
            comment: finding.comment.clone(),
            options: finding.options.raw().to_owned(),
            openssh_line: facts.openssh_line.clone(),
        })
    }
}

/// An installed key, with its state at the database's `now`.
///
/// JSON: `id, fingerprint, type, bits, comment, options, state, effective_at,
/// added_by, last_used_at`, then `retire_at, expires_at, revoked_at,
/// revoked_by, created_at, openssh_line`; times are RFC 3339 UTC strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRecord {
    /// Database id (`ferry key revoke ACCOUNT ID`).
    pub id: i64,
    /// `SHA256:…`.
    pub fingerprint: String,
    /// The type as `ssh-keygen -lf` shows it.
    #[serde(rename = "type")]
    pub key_type: String,
    /// Key size in bits.
    pub bits: u32,
    /// The key's comment.
    pub comment: String,
    /// authorized_keys options as written.
    pub options: String,
    /// State at the database's `now` when the record was read.
    pub state: KeyState,
    /// When the key becomes (or became) usable.
    #[serde(serialize_with = "serialize_ms")]
    pub effective_at: i64,
    /// Who added it.
    pub added_by: String,
    /// The last successful login with it.
    #[serde(serialize_with = "serialize_opt_ms")]
    pub last_used_at: Option<i64>,
    /// When it stops being usable because a replacement set became active.
    #[serde(serialize_with = "serialize_opt_ms")]
    pub retire_at: Option<i64>,
    /// The `expiry-time` option, if any.
    #[serde(serialize_with = "serialize_opt_ms")]
    pub expires_at: Option<i64>,
    /// When it was revoked.
    #[serde(serialize_with = "serialize_opt_ms")]
    pub revoked_at: Option<i64>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
    /// When the row was written.
    #[serde(serialize_with = "serialize_ms")]
    pub created_at: i64,
    /// The canonical OpenSSH public key line.
    pub openssh_line: String,
    /// The owning account's id.
    #[serde(skip)]
    pub account_id: i64,
}

impl KeyRecord {
    /// The key's state at `now_ms` (database clock). Revoked beats everything;
    /// then expired (retire_at or expiry-time passed); then pending; then
    /// retiring (a retire_at is set but not reached); else active.
    #[must_use]
    pub fn state_at(&self, now_ms: i64) -> KeyState {
        if self.revoked_at.is_some() {
            KeyState::Revoked
        } else if self.retire_at.is_some_and(|at| at <= now_ms) || self.expiry_passed(now_ms) {
            KeyState::Expired
        } else if self.effective_at > now_ms {
            KeyState::Pending
        } else if self.retire_at.is_some() {
            KeyState::Retiring
        } else {
            KeyState::Active
        }
    }

    /// Whether the `expiry-time` option has passed at `now_ms` (sshd's rule:
    /// whole seconds, refused once now is past the expiry).
    fn expiry_passed(&self, now_ms: i64) -> bool {
        self.expires_at.is_some_and(|expiry_ms| {
            ferry_keys::expiry_has_passed(expiry_ms.div_euclid(1000), now_ms.div_euclid(1000))
        })
    }

    /// The key as one authorized_keys line: options (if any), then the
    /// OpenSSH public key line.
    #[must_use]
    pub fn authorized_keys_line(&self) -> String {
        if self.options.is_empty() {
            self.openssh_line.clone()
        } else {
            format!("{} {}", self.options, self.openssh_line)
        }
    }
}

/// What adding (or replacing) did to one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AddStatus {
    /// A new row: the key is pending until `effective_at` (or active at once).
    Added,
    /// The key was already pending or active: nothing changed.
    Unchanged,
    /// The key was retiring (replaced earlier) and now stays.
    Reinstated,
    /// Replacing only: the key is not in the new set and retires at `retire_at`.
    Retiring,
}

impl AddStatus {
    /// Lower-case name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Unchanged => "unchanged",
            Self::Reinstated => "reinstated",
            Self::Retiring => "retiring",
        }
    }
}

/// The outcome for one key of [`crate::Store::add_keys`] or
/// [`crate::Store::replace_keys`]. JSON: `status` plus the key's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddOutcome {
    /// What happened.
    pub status: AddStatus,
    /// The key as it is after the change.
    #[serde(flatten)]
    pub key: KeyRecord,
}

/// What [`crate::Store::login_candidate`] found for one login attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginLookup {
    /// The database's clock when the lookup ran (unix ms).
    pub now: i64,
    /// The account, or `None` when no account has the name.
    pub account: Option<Account>,
    /// The account's most relevant row for the offered fingerprint: a usable
    /// one if any, else the earliest pending, else the latest expired or
    /// revoked. `None` when the key was never installed.
    pub key: Option<KeyRecord>,
}

impl LoginLookup {
    /// The decision for this login, in the order sshd would check: account,
    /// then key.
    #[must_use]
    pub fn verdict(&self) -> LoginVerdict {
        let Some(account) = &self.account else {
            return LoginVerdict::UnknownAccount;
        };
        if !account.enabled {
            return LoginVerdict::AccountDisabled;
        }
        let Some(key) = &self.key else {
            return LoginVerdict::KeyNotInstalled;
        };
        match key.state {
            KeyState::Active | KeyState::Retiring => LoginVerdict::Accepted { key_id: key.id },
            KeyState::Pending => LoginVerdict::KeyPending {
                key_id: key.id,
                until: key.effective_at,
            },
            KeyState::Revoked => LoginVerdict::KeyRevoked {
                key_id: key.id,
                at: key.revoked_at.unwrap_or_default(),
            },
            KeyState::Expired => match key.retire_at {
                Some(at) if at <= self.now => LoginVerdict::KeyRetired { key_id: key.id, at },
                _ => LoginVerdict::KeyExpired {
                    key_id: key.id,
                    at: key.expires_at.unwrap_or_default(),
                },
            },
        }
    }
}

/// The store's answer to "may this key log in to this account now?".
/// `Display` gives the reason recorded in the auth attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginVerdict {
    /// No account has the name.
    UnknownAccount,
    /// The account exists but is disabled.
    AccountDisabled,
    /// The account has never had this key.
    KeyNotInstalled,
    /// The key is installed but not yet effective.
    KeyPending {
        /// The key's id.
        key_id: i64,
        /// When it becomes usable.
        until: i64,
    },
    /// The key was revoked.
    KeyRevoked {
        /// The key's id.
        key_id: i64,
        /// When.
        at: i64,
    },
    /// The key was replaced and its retire time passed.
    KeyRetired {
        /// The key's id.
        key_id: i64,
        /// When it retired.
        at: i64,
    },
    /// The key's `expiry-time` option passed.
    KeyExpired {
        /// The key's id.
        key_id: i64,
        /// The expiry time.
        at: i64,
    },
    /// The key may log in (the caller still checks `from=` and the signature).
    Accepted {
        /// The key's id, for [`crate::Store::mark_key_used`].
        key_id: i64,
    },
}

impl LoginVerdict {
    /// Whether the store allows the login.
    #[must_use]
    pub fn is_accepted(&self) -> bool {
        matches!(self, Self::Accepted { .. })
    }
}

impl std::fmt::Display for LoginVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownAccount => f.write_str("unknown account"),
            Self::AccountDisabled => f.write_str("account disabled"),
            Self::KeyNotInstalled => f.write_str("key not installed"),
            Self::KeyPending { until, .. } => {
                write!(f, "key pending until {}", format_timestamp(*until))
            }
            Self::KeyRevoked { at, .. } => write!(f, "key revoked at {}", format_timestamp(*at)),
            Self::KeyRetired { at, .. } => write!(
                f,
                "key retired at {} (replaced by a newer key set)",
                format_timestamp(*at)
            ),
            Self::KeyExpired { at, .. } => write!(
                f,
                "key expired at {} (its expiry-time option)",
                format_timestamp(*at)
            ),
            Self::Accepted { .. } => f.write_str("accepted"),
        }
    }
}

/// The outcome of a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthResult {
    /// Logged in.
    Accepted,
    /// Refused.
    Refused,
}

impl AuthResult {
    /// `accepted` or `refused`, as stored.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Refused => "refused",
        }
    }
}

/// A login attempt to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuthAttempt {
    /// The user name the client tried (whether or not such an account exists).
    pub account_name: String,
    /// The client's address (`ip:port`).
    pub client_addr: String,
    /// The client's SSH version banner, empty if unknown.
    pub client_banner: String,
    /// The fingerprint of the key offered, if any.
    pub fingerprint: Option<String>,
    /// The type of the key offered, if any.
    pub key_type: Option<String>,
    /// Accepted or refused.
    pub result: AuthResult,
    /// Why, in words (see [`LoginVerdict`]'s `Display`, plus the SFTP layer's own reasons).
    pub reason: String,
}

/// A recorded login attempt. JSON: `id, at, last_at, count, account,
/// client_addr, client_banner, fingerprint, type, result, reason`. A row
/// stands for `count` refusals of the same user name from the same source
/// with the same reason, the first at `at` and the latest at `last_at`; the
/// address, banner and key are the latest one's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthAttempt {
    /// Database id.
    pub id: i64,
    /// When (database clock).
    #[serde(serialize_with = "serialize_ms")]
    pub at: i64,
    /// The user name the client tried.
    #[serde(rename = "account")]
    pub account_name: String,
    /// The client's address.
    pub client_addr: String,
    /// The client's SSH version banner.
    pub client_banner: String,
    /// The fingerprint offered, if any.
    pub fingerprint: Option<String>,
    /// The key type offered, if any.
    #[serde(rename = "type")]
    pub key_type: Option<String>,
    /// `accepted` or `refused`.
    pub result: AuthResult,
    /// Why.
    pub reason: String,
    /// How many attempts this row stands for (1 unless refusals repeated).
    pub count: i64,
    /// When the latest of them was made (database clock).
    #[serde(serialize_with = "serialize_ms")]
    pub last_at: i64,
}

/// One audit log entry. JSON: `id, at, actor, account, action, detail, client_addr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// Database id.
    pub id: i64,
    /// When (database clock).
    #[serde(serialize_with = "serialize_ms")]
    pub at: i64,
    /// Who.
    pub actor: String,
    /// The account concerned, if any.
    #[serde(rename = "account")]
    pub account_name: Option<String>,
    /// What, e.g. `key.add`, `account.disable`.
    pub action: String,
    /// Details in words (fingerprints, old and new values).
    pub detail: String,
    /// Where the change came from, if known.
    pub client_addr: Option<String>,
}

/// Where an upload is in the ingest pipeline (DESIGN.md, "Ingest").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadState {
    /// The connection dropped before close; never processed.
    Partial,
    /// Finished and waiting for ingest.
    Received,
    /// Being validated.
    Checking,
    /// Waiting for an admin's decision.
    Held,
    /// Refused by validation or an admin.
    Rejected,
    /// Hand-off failed.
    Failed,
    /// Handed to the vendor's import.
    HandedOff,
    /// Moved to the archive.
    Archived,
}

impl UploadState {
    /// Every state, in pipeline order.
    pub const ALL: [UploadState; 8] = [
        Self::Partial,
        Self::Received,
        Self::Checking,
        Self::Held,
        Self::Rejected,
        Self::Failed,
        Self::HandedOff,
        Self::Archived,
    ];

    /// The state's name as stored and shown.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Partial => "partial",
            Self::Received => "received",
            Self::Checking => "checking",
            Self::Held => "held",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
            Self::HandedOff => "handed_off",
            Self::Archived => "archived",
        }
    }

    /// The state named `text`, if any.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == text)
    }
}

impl std::fmt::Display for UploadState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A row of the uploads table. JSON: `id, account, name, size, sha256,
/// state, received_at, updated_at, detail`, …
///
/// Two audiences read it. `detail` (and the report) are the district's:
/// what it can act on. `last_error` and `handoff` are the vendor's: what its
/// import answered, which a district admin never sees
/// ([`Upload::for_district`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Upload {
    /// Database id.
    pub id: i64,
    /// The account's name.
    pub account: String,
    /// The file's name under `/inbound`.
    pub name: String,
    /// Bytes received.
    pub size: i64,
    /// Hex SHA-256 of the content, once known.
    pub sha256: Option<String>,
    /// Pipeline state.
    pub state: UploadState,
    /// When the upload was recorded.
    #[serde(serialize_with = "serialize_ms")]
    pub received_at: i64,
    /// When the row last changed.
    #[serde(serialize_with = "serialize_ms")]
    pub updated_at: i64,
    /// Free text, e.g. why an upload is partial, or what the pipeline did.
    pub detail: Option<String>,
    /// The name with its date suffix removed (`students.csv`), once checked.
    pub logical_name: Option<String>,
    /// Data rows (header excluded), once checked.
    pub rows: Option<i64>,
    /// The batch the file travels in, once claimed.
    pub batch_id: Option<i64>,
    /// Times the pipeline took the job up.
    pub attempts: i64,
    /// The last thing that went wrong (hand-off errors), for the vendor:
    /// it may name commands, hosts and internal errors. Never shown to a district.
    pub last_error: Option<String>,
    /// An admin's decision on a held file: `approved` or `rejected`.
    pub decision: Option<String>,
    /// When the file was handed over, if it was.
    #[serde(serialize_with = "serialize_opt_ms")]
    pub handed_off_at: Option<i64>,
    /// Where the file was archived, relative to the account's root.
    pub archive_path: Option<String>,
    /// What the vendor's import answered at the last hand-off, for the
    /// vendor only; `None` before a hand-off was tried.
    pub handoff: Option<HandoffDetail>,
}

impl Upload {
    /// The upload as a district admin may see it: without the vendor's
    /// detail (`last_error`, `handoff`).
    #[must_use]
    pub fn for_district(mut self) -> Self {
        self.last_error = None;
        self.handoff = None;
        self
    }
}

/// What the vendor's import answered when a batch was handed over: the
/// vendor's detail of an upload, never shown to a district. Output and
/// bodies are tails (the last few KiB), the URL is redacted (no
/// credentials, query or fragment).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HandoffDetail {
    /// The command's exit status; `None` when no command ran, or it was
    /// killed or timed out (the output and `last_error` say which).
    pub command_exit_status: Option<i64>,
    /// The tail of what the command printed (stdout, then stderr).
    pub command_output: Option<String>,
    /// The webhook's URL, redacted.
    pub webhook_url: Option<String>,
    /// The webhook's last HTTP status; `None` when it never answered.
    pub webhook_status: Option<i64>,
    /// The tail of the webhook's last answer.
    pub webhook_body: Option<String>,
}

impl HandoffDetail {
    /// True when nothing was recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A live session's login that a new login would no longer be allowed,
/// and why ([`crate::Store::lapsed_logins`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LapsedLogin {
    /// The account's name.
    pub account: String,
    /// The key's fingerprint.
    pub fingerprint: String,
    /// Why it no longer logs in: key revoked, retired or expired, account
    /// disabled (never [`LoginVerdict::Accepted`]).
    pub verdict: LoginVerdict,
}
