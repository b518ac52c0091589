//! Admin users and API tokens (vendor admins only).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use ferry_store::Role;

use super::{Done, PageResult, html, notice, see_other};
use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::forms::{SignedIn, SignedInForm};
use crate::views;

/// The admins page with an optional notice, error or new token.
pub(super) async fn render_admins(
    state: &AppState,
    who: &Principal,
    notice: Option<&str>,
    error: Option<&ApiError>,
    new_token: Option<&str>,
) -> PageResult {
    who.check_vendor()?;
    let admins = state.store.admins().await?;
    let tokens = state.store.api_tokens().await?;
    let accounts = state.store.accounts().await?;
    let view = views::AdminsPage {
        who,
        admins: &admins,
        tokens: &tokens,
        accounts: &accounts,
        notice,
        error,
        new_token,
    };
    let mut response = html(views::admins(&view));
    if let Some(err) = error {
        *response.status_mut() = err.status;
    }
    Ok(response)
}

pub(super) async fn admins(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    axum::extract::Query(done): axum::extract::Query<Done>,
) -> PageResult {
    render_admins(&state, &who, notice(done.done.as_deref()), None, None).await
}

/// The role and account of an admin or token form.
pub(super) fn role_form(form: &SignedInForm) -> Result<(Role, Option<String>), ApiError> {
    let role = Role::parse(&form.fields.text("role")).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "choose a role: district admin or vendor admin",
        )
    })?;
    let account = form.fields.text("account");
    let account = match role {
        Role::VendorAdmin => None,
        Role::DistrictAdmin => Some(account).filter(|a| !a.is_empty()),
    };
    Ok((role, account))
}

/// Shows a client error on the admins page; anything else is an error page.
pub(super) async fn admins_outcome<T>(
    state: &AppState,
    who: &Principal,
    outcome: Result<T, ApiError>,
    done: &str,
) -> PageResult {
    match outcome {
        Ok(_) => Ok(see_other(&format!("/admins?done={done}"))),
        Err(err) if err.status.is_client_error() => {
            render_admins(state, who, None, Some(&err), None).await
        }
        Err(err) => Err(err.into()),
    }
}

pub(super) async fn create_admin(State(state): State<AppState>, form: SignedInForm) -> PageResult {
    let who = &form.principal;
    who.check_vendor()?;
    let outcome = match role_form(&form) {
        Ok((role, account)) => state
            .store
            .create_admin(
                form.fields.text("username").trim(),
                &form.fields.text("password"),
                role,
                account.as_deref(),
                &who.actor(),
            )
            .await
            .map_err(ApiError::from),
        Err(err) => Err(err),
    };
    admins_outcome(&state, who, outcome, "admin-created").await
}

/// The `{id}` of an admin or token route; not a number is a missing page.
pub(super) fn numeric_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::not_found())
}

pub(super) async fn set_password(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: SignedInForm,
) -> PageResult {
    let who = &form.principal;
    who.check_vendor()?;
    let id = numeric_id(&id)?;
    let outcome = state
        .store
        .set_admin_password(id, &form.fields.text("password"), &who.actor())
        .await
        .map_err(ApiError::from);
    admins_outcome(&state, who, outcome, "password").await
}

pub(super) async fn set_admin_enabled(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: SignedInForm,
) -> PageResult {
    let who = &form.principal;
    who.check_vendor()?;
    let id = numeric_id(&id)?;
    let enabled = form.fields.text("enabled") == "true";
    if !enabled && who.admin_id == Some(id) {
        let err = ApiError::new(
            StatusCode::CONFLICT,
            "you cannot disable yourself; ask another vendor admin",
        );
        return render_admins(&state, who, None, Some(&err), None).await;
    }
    let outcome = state
        .store
        .set_admin_disabled(id, !enabled, &who.actor())
        .await
        .map_err(ApiError::from);
    let done = if enabled {
        "admin-enabled"
    } else {
        "admin-disabled"
    };
    admins_outcome(&state, who, outcome, done).await
}

pub(super) async fn create_token(State(state): State<AppState>, form: SignedInForm) -> PageResult {
    let who = &form.principal;
    who.check_vendor()?;
    let created = match role_form(&form) {
        Ok((role, account)) => state
            .store
            .create_api_token(role, account.as_deref(), &who.actor())
            .await
            .map_err(ApiError::from),
        Err(err) => Err(err),
    };
    match created {
        // The secret is shown in this answer only: not in a redirect URL.
        Ok((_, secret)) => {
            render_admins(&state, who, Some("Token created."), None, Some(&secret)).await
        }
        Err(err) if err.status.is_client_error() => {
            render_admins(&state, who, None, Some(&err), None).await
        }
        Err(err) => Err(err.into()),
    }
}

pub(super) async fn revoke_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: SignedInForm,
) -> PageResult {
    let who = &form.principal;
    who.check_vendor()?;
    let id = numeric_id(&id)?;
    let outcome = state
        .store
        .revoke_api_token(id, &who.actor())
        .await
        .map_err(ApiError::from);
    admins_outcome(&state, who, outcome, "token-revoked").await
}
