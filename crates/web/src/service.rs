//! What a caller may do, for the pages and the API alike.
//!
//! Each function checks the caller against the account (404 when it may not
//! see it) and the role (404 for vendor-only actions), then calls one store
//! function. The JSON handlers and the HTML form handlers both call these,
//! so a rule lives here once.

use axum::http::{HeaderMap, StatusCode, header};
use ferry_store::{Account, AddOutcome, KeyRecord, LimitsChange, NewKey, Upload};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::{App, HostKey};

/// The accounts the caller may see: all for a vendor admin, its own for a district admin.
pub(crate) async fn visible_accounts(app: &App, who: &Principal) -> Result<Vec<Account>, ApiError> {
    Ok(app
        .store
        .accounts()
        .await?
        .into_iter()
        .filter(|account| who.may_see(&account.name))
        .collect())
}

/// The visible accounts whose name or display name contains `search`
/// (case-insensitive; empty: all), by name.
pub(crate) async fn search_accounts(
    app: &App,
    who: &Principal,
    search: &str,
) -> Result<Vec<Account>, ApiError> {
    let search = search.trim().to_lowercase();
    Ok(visible_accounts(app, who)
        .await?
        .into_iter()
        .filter(|a| {
            search.is_empty()
                || a.name.contains(&search)
                || a.display_name
                    .as_deref()
                    .is_some_and(|d| d.to_lowercase().contains(&search))
        })
        .collect())
}

/// Creates an account (vendor admin only).
pub(crate) async fn create_account(
    app: &App,
    who: &Principal,
    name: &str,
    display_name: Option<&str>,
) -> Result<Account, ApiError> {
    who.check_vendor()?;
    let display_name = display_name.map(str::trim).filter(|d| !d.is_empty());
    Ok(app
        .store
        .create_account(name.trim(), display_name, false, &who.actor())
        .await?)
}

/// Enables or disables an account (vendor admin only).
pub(crate) async fn set_account_enabled(
    app: &App,
    who: &Principal,
    name: &str,
    enabled: bool,
) -> Result<Account, ApiError> {
    who.check_account(name)?;
    who.check_vendor()?;
    Ok(app
        .store
        .set_account_enabled(name, enabled, &who.actor())
        .await?)
}

/// Sets an account's SFTP limits (vendor admin only).
pub(crate) async fn set_account_limits(
    app: &App,
    who: &Principal,
    name: &str,
    change: LimitsChange,
) -> Result<Account, ApiError> {
    who.check_account(name)?;
    who.check_vendor()?;
    Ok(app
        .store
        .set_account_limits(name, change, &who.actor())
        .await?)
}

/// Judges key text: every key accepted, or a 422 naming each refused line.
pub(crate) fn judge_keys(app: &App, text: &[u8]) -> Result<Vec<NewKey>, ApiError> {
    let findings = ferry_keys::parse_keys(text, &app.key_policy)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let refusals: Vec<String> = findings
        .iter()
        .filter_map(|f| f.refusal().map(ToString::to_string))
        .collect();
    if !refusals.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no key was added: fix or remove the refused lines listed below and send the keys again",
        )
        .with_details(refusals));
    }
    Ok(findings.iter().filter_map(NewKey::from_finding).collect())
}

/// Adds keys from text in any accepted format; all or nothing.
pub(crate) async fn add_keys(
    app: &App,
    who: &Principal,
    name: &str,
    text: &[u8],
) -> Result<Vec<AddOutcome>, ApiError> {
    who.check_account(name)?;
    let keys = judge_keys(app, text)?;
    Ok(app
        .store
        .add_keys(name, &keys, app.propagation_delay_ms, &who.actor())
        .await?)
}

/// Replaces the whole key set; keys no longer listed retire when the new
/// ones activate. All or nothing.
pub(crate) async fn replace_keys(
    app: &App,
    who: &Principal,
    name: &str,
    text: &[u8],
) -> Result<Vec<AddOutcome>, ApiError> {
    who.check_account(name)?;
    let keys = judge_keys(app, text)?;
    Ok(app
        .store
        .replace_keys(name, &keys, app.propagation_delay_ms, &who.actor())
        .await?)
}

/// The account's keys, history included.
pub(crate) async fn keys(
    app: &App,
    who: &Principal,
    name: &str,
) -> Result<Vec<KeyRecord>, ApiError> {
    who.check_account(name)?;
    Ok(app.store.keys(name).await?)
}

/// Revokes a key now (by id or fingerprint).
pub(crate) async fn revoke_key(
    app: &App,
    who: &Principal,
    name: &str,
    key: &str,
) -> Result<KeyRecord, ApiError> {
    who.check_account(name)?;
    Ok(app.store.revoke_key(name, key, &who.actor()).await?)
}

/// Withdraws a key that is still pending.
pub(crate) async fn cancel_key(
    app: &App,
    who: &Principal,
    name: &str,
    key: &str,
) -> Result<KeyRecord, ApiError> {
    who.check_account(name)?;
    Ok(app
        .store
        .cancel_pending_key(name, key, &who.actor())
        .await?)
}

/// Activates a pending key at once (vendor admin only).
pub(crate) async fn activate_key(
    app: &App,
    who: &Principal,
    name: &str,
    key: &str,
) -> Result<KeyRecord, ApiError> {
    who.check_account(name)?;
    who.check_vendor()?;
    Ok(app.store.activate_key(name, key, &who.actor()).await?)
}

/// What an admin decides about a held upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UploadDecision {
    /// Hand it over despite the roster guard.
    Approve,
    /// Archive it without handing it over.
    Reject,
}

/// Approves or rejects a held upload of account `name`. An upload of
/// another account answers 404, like one that does not exist.
pub(crate) async fn decide_upload(
    app: &App,
    who: &Principal,
    name: &str,
    id: &str,
    decision: UploadDecision,
) -> Result<Upload, ApiError> {
    who.visible_account(&app.store, name).await?;
    let missing = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "account `{name}` has no upload `{id}`; list them with GET /api/v1/accounts/{name}/uploads"
            ),
        )
    };
    let id: i64 = id.parse().map_err(|_| missing())?;
    let upload = app.store.upload(id).await?.ok_or_else(missing)?;
    if upload.account != name {
        return Err(missing());
    }
    let actor = who.actor();
    let upload = match decision {
        UploadDecision::Approve => app.store.approve_upload(id, &actor).await?,
        UploadDecision::Reject => app.store.reject_upload(id, &actor).await?,
    };
    Ok(who.upload_view(upload))
}

/// The latest `limit` uploads of account `name`, as the caller may see them
/// (the vendor's hand-off detail for vendor admins only).
pub(crate) async fn uploads(
    app: &App,
    who: &Principal,
    name: &str,
    limit: u32,
) -> Result<Vec<Upload>, ApiError> {
    who.visible_account(&app.store, name).await?;
    let uploads = app.store.uploads(Some(name), limit).await?;
    Ok(uploads.into_iter().map(|u| who.upload_view(u)).collect())
}

/// The names of the accounts that expect files and have had none within
/// their window (`expected_every`).
pub(crate) async fn stale_accounts(app: &App) -> Result<Vec<String>, ApiError> {
    Ok(app.store.stale_accounts().await?)
}

/// An account as JSON, with its `stale` flag.
pub(crate) fn account_json(account: &Account, stale: &[String]) -> serde_json::Value {
    let mut value = serde_json::json!(account);
    value["stale"] = serde_json::Value::Bool(stale.contains(&account.name));
    value
}

/// A host key with its ready known_hosts line.
#[derive(Debug, Clone)]
pub(crate) struct ConnectKey {
    pub(crate) key: HostKey,
    pub(crate) known_hosts: String,
}

/// How to reach the SFTP server: host, port and host keys.
#[derive(Debug, Clone)]
pub(crate) struct ConnectInfo {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) keys: Vec<ConnectKey>,
}

/// The SFTP host, port and host keys with known_hosts lines. An SFTP server
/// on every address (0.0.0.0) has no one name: the name this request reached
/// the web on is used.
pub(crate) fn connect_info(app: &App, headers: &HeaderMap) -> ConnectInfo {
    let host = if app.sftp_host.is_empty() {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(host_without_port)
            .unwrap_or("localhost")
            .to_owned()
    } else {
        app.sftp_host.clone()
    };
    let name = known_hosts_name(&host, app.sftp_port);
    let keys = app
        .host_keys
        .iter()
        .map(|key| {
            let key_part = key
                .openssh
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            ConnectKey {
                key: key.clone(),
                known_hosts: format!("{name} {key_part}"),
            }
        })
        .collect();
    ConnectInfo {
        host,
        port: app.sftp_port,
        keys,
    }
}

/// `[host]:port` as known_hosts writes it (plain host for port 22).
fn known_hosts_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

/// `example.org:8080` → `example.org`; `[::1]:8080` → `::1`.
fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}
