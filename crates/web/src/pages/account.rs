//! The accounts list and the account page with its forms: keys, uploads,
//! enabling and disabling. An account the caller may not see answers 404.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use ferry_store::{LimitsChange, Role, parse_size};

use super::{Done, PageResult, html, notice, see_other};
use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::forms::{SignedIn, SignedInForm};
use crate::{service, views};

/// `?q=&page=` of the accounts list.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct ListParams {
    q: Option<String>,
    page: Option<usize>,
}

/// Accounts per page of the list.
const ACCOUNTS_PER_PAGE: usize = 50;

/// The accounts list page: searched, paged, with an optional form error.
async fn render_accounts(
    state: &AppState,
    who: &Principal,
    params: &ListParams,
    error: Option<&ApiError>,
) -> PageResult {
    let search = params.q.as_deref().unwrap_or("").trim();
    let all = service::search_accounts(state, who, search).await?;
    let pages = all.len().div_ceil(ACCOUNTS_PER_PAGE).max(1);
    let page = params.page.unwrap_or(1).clamp(1, pages);
    let shown: Vec<_> = all
        .iter()
        .skip((page - 1) * ACCOUNTS_PER_PAGE)
        .take(ACCOUNTS_PER_PAGE)
        .cloned()
        .collect();
    let stale = service::stale_accounts(state).await?;
    let list = views::AccountList {
        accounts: &shown,
        search,
        page,
        pages,
        total: all.len(),
    };
    let mut response = html(views::accounts(who, &list, &stale, error));
    if let Some(err) = error {
        *response.status_mut() = err.status;
    }
    Ok(response)
}

pub(super) async fn accounts(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    axum::extract::Query(params): axum::extract::Query<ListParams>,
) -> PageResult {
    if let (Role::DistrictAdmin, Some(account)) = (who.role, &who.account) {
        return Ok(see_other(&format!("/accounts/{account}")));
    }
    render_accounts(&state, &who, &params, None).await
}

pub(super) async fn create_account(
    State(state): State<AppState>,
    form: SignedInForm,
) -> PageResult {
    let who = &form.principal;
    who.check_vendor()?;
    let name = form.fields.text("name");
    let display_name = form.fields.text("display_name");
    match service::create_account(&state, who, &name, Some(&display_name)).await {
        Ok(account) => Ok(see_other(&format!(
            "/accounts/{}?done=created",
            account.name
        ))),
        Err(err) if err.status.is_client_error() => {
            render_accounts(&state, who, &ListParams::default(), Some(&err)).await
        }
        Err(err) => Err(err.into()),
    }
}

pub(super) async fn account(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    Path(name): Path<String>,
    headers: HeaderMap,
    axum::extract::Query(done): axum::extract::Query<Done>,
) -> PageResult {
    let extras = super::people::AccountExtras {
        notice: notice(done.done.as_deref()),
        ..Default::default()
    };
    render_account(&state, &who, &name, &headers, &extras, None).await
}

pub(super) async fn render_account(
    state: &AppState,
    who: &Principal,
    name: &str,
    headers: &HeaderMap,
    extras: &super::people::AccountExtras<'_>,
    key_error: Option<(&str, &ApiError, &str)>,
) -> PageResult {
    let account = who.visible_account(&state.store, name).await?;
    let keys = state.store.keys(name).await?;
    let attempts = state.store.auth_attempts(name, 20).await?;
    let uploads = service::uploads(state, who, name, 20).await?;
    let audit = state.store.audit_events(Some(name), 30).await?;
    let contacts = state.store.contacts(name).await?;
    let invitations = if who.is_vendor() {
        state.store.invitations(name).await?
    } else {
        Vec::new()
    };
    let now = state.store.now().await?;
    let connect = service::connect_info(state, headers);
    let stale = service::stale_accounts(state)
        .await?
        .contains(&account.name);
    let view = views::AccountPage {
        who,
        account: &account,
        stale,
        connect: &connect,
        keys: &keys,
        attempts: &attempts,
        uploads: &uploads,
        audit: &audit,
        notice: extras.notice,
        contacts: &contacts,
        invitations: &invitations,
        now,
        new_invitation: extras.new_invitation,
        can_email: state.mailer.is_some(),
        key_error,
    };
    let mut response = html(views::account(&view));
    if let Some((_, err, _)) = key_error {
        *response.status_mut() = err.status;
    }
    Ok(response)
}

pub(super) async fn set_enabled(
    State(state): State<AppState>,
    Path(name): Path<String>,
    form: SignedInForm,
) -> PageResult {
    let enabled = form.fields.text("enabled") == "true";
    service::set_account_enabled(&state, &form.principal, &name, enabled).await?;
    let done = if enabled { "enabled" } else { "disabled" };
    Ok(see_other(&format!("/accounts/{name}?done={done}")))
}

/// The limits form: every field given, an empty one meaning the default.
pub(super) async fn set_limits(
    State(state): State<AppState>,
    Path(name): Path<String>,
    form: SignedInForm,
) -> PageResult {
    let field = |key: &str, parse: fn(&str) -> Result<u64, String>| {
        let text = form.fields.text(key);
        match text.trim() {
            "" | "default" => Ok(Some(None)),
            text => parse(text).map(|n| Some(Some(n))).map_err(|e| {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{key}: {e}"))
            }),
        }
    };
    let count = |text: &str| {
        text.parse::<u64>()
            .map_err(|_| format!("{text:?} is not a whole number"))
    };
    let change = LimitsChange {
        max_handles: field("max_handles", count)?,
        max_file_size: field("max_file_size", parse_size)?,
        quota: field("quota", parse_size)?,
    };
    service::set_account_limits(&state, &form.principal, &name, change).await?;
    Ok(see_other(&format!("/accounts/{name}?done=limits#limits")))
}

/// The key text of an add/replace form: the pasted text, then the file's.
pub(super) fn key_text(form: &SignedInForm) -> Vec<u8> {
    let mut text = form.fields.bytes("keys").to_vec();
    let file = form.fields.bytes("file");
    if !file.is_empty() {
        if !text.is_empty() {
            text.push(b'\n');
        }
        text.extend_from_slice(file);
    }
    text
}

pub(super) async fn add_keys(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    form: SignedInForm,
) -> PageResult {
    key_form(&state, &name, &headers, &form, "add").await
}

pub(super) async fn replace_keys(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    form: SignedInForm,
) -> PageResult {
    key_form(&state, &name, &headers, &form, "replace").await
}

/// Adds or replaces keys; a refusal re-shows the page with every refused
/// line next to the form and the text as sent.
pub(super) async fn key_form(
    state: &AppState,
    name: &str,
    headers: &HeaderMap,
    form: &SignedInForm,
    which: &str,
) -> PageResult {
    let who = &form.principal;
    who.visible_account(&state.store, name).await?;
    let text = key_text(form);
    let outcome = if which == "add" {
        service::add_keys(state, who, name, &text).await
    } else {
        service::replace_keys(state, who, name, &text).await
    };
    match outcome {
        Ok(_) => {
            let done = if which == "add" { "added" } else { "replaced" };
            Ok(see_other(&format!("/accounts/{name}?done={done}#keys")))
        }
        Err(err) if err.status.is_client_error() && err.status != StatusCode::NOT_FOUND => {
            let sent = String::from_utf8_lossy(form.fields.bytes("keys")).into_owned();
            let extras = super::people::AccountExtras::default();
            render_account(
                state,
                who,
                name,
                headers,
                &extras,
                Some((which, &err, &sent)),
            )
            .await
        }
        Err(err) => Err(err.into()),
    }
}

pub(super) async fn confirm_revoke(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    Path((name, id)): Path<(String, String)>,
) -> PageResult {
    who.visible_account(&state.store, &name).await?;
    let keys = service::keys(&state, &who, &name).await?;
    let key = keys
        .iter()
        .find(|key| key.id.to_string() == id || key.fingerprint == id)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("account `{name}` has no key `{id}`; go back to the account page"),
            )
        })?;
    Ok(html(views::confirm_revoke(&who, &name, key)))
}

pub(super) async fn revoke_key(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    form: SignedInForm,
) -> PageResult {
    service::revoke_key(&state, &form.principal, &name, &id).await?;
    Ok(see_other(&format!("/accounts/{name}?done=revoked#keys")))
}

pub(super) async fn cancel_key(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    form: SignedInForm,
) -> PageResult {
    service::cancel_key(&state, &form.principal, &name, &id).await?;
    Ok(see_other(&format!("/accounts/{name}?done=cancelled#keys")))
}

pub(super) async fn activate_key(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    form: SignedInForm,
) -> PageResult {
    service::activate_key(&state, &form.principal, &name, &id).await?;
    Ok(see_other(&format!("/accounts/{name}?done=activated#keys")))
}

/// Approves or rejects a held upload (one handler for both routes).
pub(super) async fn decide_upload(
    state: AppState,
    name: String,
    id: String,
    form: SignedInForm,
    decision: service::UploadDecision,
) -> PageResult {
    service::decide_upload(&state, &form.principal, &name, &id, decision).await?;
    let done = match decision {
        service::UploadDecision::Approve => "approved",
        service::UploadDecision::Reject => "rejected",
    };
    Ok(see_other(&format!("/accounts/{name}?done={done}#uploads")))
}
