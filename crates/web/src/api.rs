//! The JSON API handlers and their OpenAPI description.
//!
//! Each handler checks the caller against the account first
//! ([`Principal::check_account`]), then calls one store function. Key text
//! is judged by `ferry-keys`; a single refused line refuses the whole input.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferry_store::LimitsChange;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::OpenApi;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::{AppState, HostKey, service};

/// The OpenAPI 3 document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ferry admin API",
        description = "Accounts, keys, login attempts and uploads of a Ferry SFTP server. Authenticate with `Authorization: Bearer ferry_…` (a token from `ferry token create`)."
    ),
    paths(
        healthz,
        livez,
        metrics,
        host_key_pub,
        openapi_json,
        host_keys,
        list_accounts,
        create_account,
        get_account,
        patch_account,
        list_keys,
        add_keys,
        get_authorized_keys,
        replace_keys,
        revoke_key,
        activate_key,
        auth_attempts,
        uploads,
        approve_upload,
        reject_upload,
        crate::operations::overview_json,
        crate::operations::import_accounts
    ),
    components(schemas(ErrorBody, HostKey, NewAccount, AccountPatch))
)]
pub struct ApiDoc;

type ApiResult<T> = Result<T, ApiError>;

/// Readiness: `ok` when the database answers `SELECT 1` within 2 s, else
/// 503 with the reason. Load balancers send districts only to nodes that
/// answer 200 here.
#[utoipa::path(get, path = "/healthz", responses(
    (status = 200, description = "`ok`: the database answers", content_type = "text/plain", body = String),
    (status = 503, description = "`database unreachable: …` with the reason", content_type = "text/plain", body = String)))]
pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    match state.health.database(&state.store).await {
        Ok(()) => "ok\n".into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database unreachable: {why}\n"),
        )
            .into_response(),
    }
}

/// Liveness: `ok` whenever the process serves HTTP, whatever the database
/// (restart the process only when this fails).
#[utoipa::path(get, path = "/livez", responses((status = 200, description = "`ok`", content_type = "text/plain", body = String)))]
pub(crate) async fn livez() -> &'static str {
    "ok\n"
}

/// Counters and gauges in the Prometheus text format. Names and labels
/// carry no account names, addresses or keys.
#[utoipa::path(get, path = "/metrics", responses(
    (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
    (status = 404, description = "metrics are not collected by this process", body = ErrorBody)))]
pub(crate) async fn metrics(State(state): State<AppState>) -> ApiResult<Response> {
    let Some(handle) = &state.metrics else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "this process does not collect metrics; scrape the `ferry serve` process",
        ));
    };
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response())
}

/// The OpenAPI document.
#[utoipa::path(get, path = "/api/v1/openapi.json", responses((status = 200, description = "OpenAPI 3 document")))]
pub(crate) async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The public host keys, their fingerprints and ready known_hosts lines.
#[utoipa::path(get, path = "/api/v1/host-keys", responses((status = 200, description = "`{host, port, keys: [{algorithm, fingerprint, openssh, known_hosts}]}`")))]
pub(crate) async fn host_keys(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Json<Value> {
    let info = service::connect_info(&state, &headers);
    let keys: Vec<Value> = info
        .keys
        .iter()
        .map(|k| {
            json!({
                "algorithm": k.key.algorithm,
                "fingerprint": k.key.fingerprint,
                "openssh": k.key.openssh,
                "known_hosts": k.known_hosts,
            })
        })
        .collect();
    Json(json!({"host": info.host, "port": info.port, "keys": keys}))
}

/// `?type=` of the host key download.
#[derive(Debug, Deserialize)]
pub(crate) struct HostKeyQuery {
    #[serde(rename = "type")]
    key_type: Option<String>,
}

/// The host public key as a `.pub` download (Ed25519 unless `?type=ecdsa|rsa`).
#[utoipa::path(get, path = "/host-key.pub",
    params(("type" = Option<String>, Query, description = "`ed25519` (default), `ecdsa` or `rsa`")),
    responses(
        (status = 200, description = "the OpenSSH public key line", content_type = "text/plain", body = String),
        (status = 404, description = "no host key of that type", body = ErrorBody)))]
pub(crate) async fn host_key_pub(
    State(state): State<AppState>,
    Query(query): Query<HostKeyQuery>,
) -> ApiResult<Response> {
    let wanted = query.key_type.as_deref().unwrap_or("ed25519");
    let (prefix, file) = match wanted {
        "ed25519" => ("ssh-ed25519", "ssh_host_ed25519_key.pub"),
        "ecdsa" => ("ecdsa-sha2-", "ssh_host_ecdsa_key.pub"),
        "rsa" => ("ssh-rsa", "ssh_host_rsa_key.pub"),
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "no host key of type `{other}`; use ?type=ed25519 (the default), ecdsa or rsa"
                ),
            ));
        }
    };
    let key = state
        .host_keys
        .iter()
        .find(|key| key.openssh.starts_with(prefix))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("this server has no {wanted} host key; see GET /api/v1/host-keys"),
            )
        })?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        format!("{}\n", key.openssh.trim_end()),
    )
        .into_response())
}

/// The accounts the caller may see: all for a vendor admin, its own for a district admin.
#[utoipa::path(get, path = "/api/v1/accounts", responses(
    (status = 200, description = "`{accounts: [...]}`"),
    (status = 401, description = "no or unknown token", body = ErrorBody)))]
pub(crate) async fn list_accounts(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<Value>> {
    let accounts = service::visible_accounts(&state, &principal).await?;
    let stale = service::stale_accounts(&state).await?;
    let accounts: Vec<Value> = accounts
        .iter()
        .map(|a| service::account_json(a, &stale))
        .collect();
    Ok(Json(json!({ "accounts": accounts })))
}

/// `POST /api/v1/accounts` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct NewAccount {
    /// The SSH user name, `[a-z0-9][a-z0-9_-]{0,62}`.
    name: String,
    /// Free text for people.
    display_name: Option<String>,
}

/// Parses a JSON body, naming the problem on failure.
fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    example: &str,
) -> ApiResult<T> {
    let body = body.map_err(body_rejection)?;
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the body is not the JSON this route takes ({e}); send for example {example}"),
        )
    })
}

pub(crate) fn body_rejection(rejection: BytesRejection) -> ApiError {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            status,
            "the body is over 1 MiB; send only the public key file (.pub), which is well under 1 KiB per key",
        )
    } else {
        ApiError::new(status, format!("cannot read the body: {rejection}"))
    }
}

/// Creates an account (vendor admin only).
#[utoipa::path(post, path = "/api/v1/accounts", request_body = NewAccount, responses(
    (status = 201, description = "the account"),
    (status = 404, description = "not a vendor admin", body = ErrorBody),
    (status = 409, description = "the account exists", body = ErrorBody),
    (status = 422, description = "invalid name", body = ErrorBody)))]
pub(crate) async fn create_account(
    State(state): State<AppState>,
    principal: Principal,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    principal.check_vendor()?;
    let new: NewAccount = json_body(
        body,
        r#"{"name": "springfield-usd", "display_name": "Springfield Unified"}"#,
    )?;
    let account =
        service::create_account(&state, &principal, &new.name, new.display_name.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(json!(account))))
}

/// One account.
#[utoipa::path(get, path = "/api/v1/accounts/{name}", params(("name" = String, Path, description = "account name")), responses(
    (status = 200, description = "the account"),
    (status = 404, description = "no such account (or not yours)", body = ErrorBody)))]
pub(crate) async fn get_account(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let account = principal.visible_account(&state.store, &name).await?;
    let stale = service::stale_accounts(&state).await?;
    let mut value = service::account_json(&account, &stale);
    value["contacts"] = json!(state.store.contacts(&name).await?);
    Ok(Json(value))
}

/// `PATCH /api/v1/accounts/{name}` body: any of the fields; a limit set to
/// `null` returns to the server's default.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct AccountPatch {
    /// Allow (true) or refuse (false) logins (vendor admins).
    enabled: Option<bool>,
    /// Open files and folders across the account's sessions on a node
    /// (vendor admins).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, nullable)]
    max_handles: Option<Option<u64>>,
    /// The largest file the account may upload, in bytes (vendor admins).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, nullable)]
    max_file_size: Option<Option<u64>>,
    /// Bytes the account may hold in /inbound plus uploads in progress
    /// (vendor admins).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, nullable)]
    quota: Option<Option<u64>>,
    /// The district contacts, replacing the list (`[]` removes them all).
    contacts: Option<Vec<String>>,
}

/// A field that is present, possibly `null` (absent stays `None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Changes an account: enables or disables it and sets its SFTP limits
/// (vendor admin only), or sets its district contacts (a district admin may
/// set its own).
#[utoipa::path(patch, path = "/api/v1/accounts/{name}", request_body = AccountPatch, params(("name" = String, Path, description = "account name")), responses(
    (status = 200, description = "the account"),
    (status = 404, description = "no such account, or not a vendor admin", body = ErrorBody),
    (status = 422, description = "nothing to change, or a limit of zero", body = ErrorBody)))]
pub(crate) async fn patch_account(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let mut account = principal.visible_account(&state.store, &name).await?;
    let example = r#"{"enabled": false}, {"quota": 53687091200, "max_file_size": null} or {"contacts": ["it@district.k12.us"]}"#;
    let patch: AccountPatch = json_body(body, example)?;
    let limits = LimitsChange {
        max_handles: patch.max_handles,
        max_file_size: patch.max_file_size,
        quota: patch.quota,
    };
    if patch.enabled.is_none() && limits.is_empty() && patch.contacts.is_none() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("nothing to change: send for example {example}"),
        ));
    }
    if let Some(enabled) = patch.enabled {
        account = service::set_account_enabled(&state, &principal, &name, enabled).await?;
    }
    if !limits.is_empty() {
        account = service::set_account_limits(&state, &principal, &name, limits).await?;
    }
    if let Some(contacts) = &patch.contacts {
        state
            .store
            .set_contacts(&name, contacts, &principal.actor())
            .await?;
    }
    let stale = service::stale_accounts(&state).await?;
    let mut value = service::account_json(&account, &stale);
    value["contacts"] = json!(state.store.contacts(&name).await?);
    Ok(Json(value))
}

/// The account's keys, history included.
#[utoipa::path(get, path = "/api/v1/accounts/{name}/keys", params(("name" = String, Path, description = "account name")), responses(
    (status = 200, description = "`{keys: [{id, fingerprint, type, bits, comment, options, state, effective_at, added_by, last_used_at, …}]}`"),
    (status = 404, description = "no such account (or not yours)", body = ErrorBody)))]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let keys = service::keys(&state, &principal, &name).await?;
    Ok(Json(json!({ "keys": keys })))
}

/// Adds keys (body: text in any accepted format). All or nothing.
#[utoipa::path(post, path = "/api/v1/accounts/{name}/keys", params(("name" = String, Path, description = "account name")),
    request_body(content = String, content_type = "text/plain", description = "OpenSSH lines, authorized_keys, RFC 4716 or PEM public keys"),
    responses(
        (status = 201, description = "`{keys: [{status, …key}]}`: one outcome per key"),
        (status = 404, description = "no such account (or not yours)", body = ErrorBody),
        (status = 413, description = "body over 1 MiB", body = ErrorBody),
        (status = 422, description = "refused input; details name each line", body = ErrorBody)))]
pub(crate) async fn add_keys(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let body = body.map_err(body_rejection)?;
    let outcomes = service::add_keys(&state, &principal, &name, &body).await?;
    Ok((StatusCode::CREATED, Json(json!({ "keys": outcomes }))))
}

/// The keys that may log in now, as an authorized_keys file.
#[utoipa::path(get, path = "/api/v1/accounts/{name}/authorized_keys", params(("name" = String, Path, description = "account name")), responses(
    (status = 200, description = "OpenSSH authorized_keys", content_type = "text/plain", body = String),
    (status = 404, description = "no such account (or not yours)", body = ErrorBody)))]
pub(crate) async fn get_authorized_keys(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    principal.check_account(&name)?;
    let mut text = String::new();
    for key in state.store.active_keys(&name).await? {
        text.push_str(&key.authorized_keys_line());
        text.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// Replaces the whole key set; keys no longer listed retire when the new ones activate.
#[utoipa::path(put, path = "/api/v1/accounts/{name}/authorized_keys", params(("name" = String, Path, description = "account name")),
    request_body(content = String, content_type = "text/plain", description = "the new set, in any accepted format"),
    responses(
        (status = 200, description = "`{keys: [{status, …key}]}`: the new set, then the retiring keys"),
        (status = 404, description = "no such account (or not yours)", body = ErrorBody),
        (status = 413, description = "body over 1 MiB", body = ErrorBody),
        (status = 422, description = "refused input; details name each line", body = ErrorBody)))]
pub(crate) async fn replace_keys(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let body = body.map_err(body_rejection)?;
    let outcomes = service::replace_keys(&state, &principal, &name, &body).await?;
    Ok(Json(json!({ "keys": outcomes })))
}

/// Revokes a key now (by id or fingerprint).
#[utoipa::path(delete, path = "/api/v1/accounts/{name}/keys/{id}",
    params(("name" = String, Path, description = "account name"), ("id" = String, Path, description = "key id or SHA256 fingerprint")),
    responses(
        (status = 200, description = "the revoked key"),
        (status = 404, description = "no such account or key", body = ErrorBody)))]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    principal: Principal,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let key = service::revoke_key(&state, &principal, &name, &id).await?;
    Ok(Json(json!(key)))
}

/// Activates a pending key at once (vendor admin only).
#[utoipa::path(post, path = "/api/v1/accounts/{name}/keys/{id}/activate",
    params(("name" = String, Path, description = "account name"), ("id" = String, Path, description = "key id or SHA256 fingerprint")),
    responses(
        (status = 200, description = "the key, now active"),
        (status = 404, description = "no such account or key, or not a vendor admin", body = ErrorBody),
        (status = 409, description = "the key is not pending", body = ErrorBody)))]
pub(crate) async fn activate_key(
    State(state): State<AppState>,
    principal: Principal,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let key = service::activate_key(&state, &principal, &name, &id).await?;
    Ok(Json(json!(key)))
}

/// `?limit=` of the history routes.
#[derive(Debug, Deserialize)]
pub(crate) struct Limit {
    limit: Option<u32>,
}

impl Limit {
    fn get(&self) -> u32 {
        self.limit.unwrap_or(50).clamp(1, 1000)
    }
}

/// Recent login attempts, newest first.
#[utoipa::path(get, path = "/api/v1/accounts/{name}/auth-attempts",
    params(("name" = String, Path, description = "account name"), ("limit" = Option<u32>, Query, description = "at most this many (default 50)")),
    responses(
        (status = 200, description = "`{attempts: [{id, at, last_at, count, account, client_addr, client_banner, fingerprint, type, result, reason}]}`: repeated refusals from one source with the same reason are one item with `count`, first `at`, latest `last_at`"),
        (status = 404, description = "no such account (or not yours)", body = ErrorBody)))]
pub(crate) async fn auth_attempts(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    Query(limit): Query<Limit>,
) -> ApiResult<Json<Value>> {
    principal.visible_account(&state.store, &name).await?;
    let attempts = state.store.auth_attempts(&name, limit.get()).await?;
    Ok(Json(json!({ "attempts": attempts })))
}

/// Recent uploads, newest first. `detail` is the district's wording; a
/// vendor admin also gets `last_error` and `handoff` (what the vendor's
/// import answered: `command_exit_status`, `command_output`, `webhook_url`
/// without credentials or query, `webhook_status`, `webhook_body`), which
/// are `null` for a district admin.
#[utoipa::path(get, path = "/api/v1/accounts/{name}/uploads",
    params(("name" = String, Path, description = "account name"), ("limit" = Option<u32>, Query, description = "at most this many (default 50)")),
    responses(
        (status = 200, description = "`{uploads: [{id, account, name, size, sha256, state, received_at, updated_at, detail, last_error, handoff}]}`; `last_error` and `handoff` for vendor admins only"),
        (status = 404, description = "no such account (or not yours)", body = ErrorBody)))]
pub(crate) async fn uploads(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    Query(limit): Query<Limit>,
) -> ApiResult<Json<Value>> {
    let uploads = service::uploads(&state, &principal, &name, limit.get()).await?;
    Ok(Json(json!({ "uploads": uploads })))
}

/// Approves a held upload: it is handed over despite the roster guard.
#[utoipa::path(post, path = "/api/v1/accounts/{name}/uploads/{id}/approve",
    params(("name" = String, Path, description = "account name"), ("id" = i64, Path, description = "upload id")),
    responses(
        (status = 200, description = "the upload, queued again"),
        (status = 404, description = "no such account or upload (or not yours)", body = ErrorBody),
        (status = 409, description = "the upload is not held", body = ErrorBody)))]
pub(crate) async fn approve_upload(
    State(state): State<AppState>,
    principal: Principal,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    decide(
        &state,
        &principal,
        &name,
        &id,
        service::UploadDecision::Approve,
    )
    .await
}

/// Rejects a held upload: it is archived and never handed over.
#[utoipa::path(post, path = "/api/v1/accounts/{name}/uploads/{id}/reject",
    params(("name" = String, Path, description = "account name"), ("id" = i64, Path, description = "upload id")),
    responses(
        (status = 200, description = "the upload, queued to be archived"),
        (status = 404, description = "no such account or upload (or not yours)", body = ErrorBody),
        (status = 409, description = "the upload is not held", body = ErrorBody)))]
pub(crate) async fn reject_upload(
    State(state): State<AppState>,
    principal: Principal,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    decide(
        &state,
        &principal,
        &name,
        &id,
        service::UploadDecision::Reject,
    )
    .await
}

/// The body of both decision routes.
async fn decide(
    state: &AppState,
    principal: &Principal,
    name: &str,
    id: &str,
    decision: service::UploadDecision,
) -> ApiResult<Json<Value>> {
    let upload = service::decide_upload(state, principal, name, id, decision).await?;
    Ok(Json(json!(upload)))
}
