//! The people of an account, as forms: district contacts, district admin
//! invitations (made by vendor admins, shown once, optionally e-mailed at
//! once), and the page where the invited person sets their own password.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use ferry_store::StoreError;

use super::session::{anonymous_page, signed_in_response};
use super::{PageResult, see_other};
use crate::AppState;
use crate::error::{ApiError, PageError};
use crate::forms::{AnonymousForm, SignedInForm};
use crate::views::{self, NewInvitation};

/// What the account page shows besides the account's own facts.
#[derive(Debug, Default)]
pub(crate) struct AccountExtras<'a> {
    pub(crate) notice: Option<&'a str>,
    pub(crate) new_invitation: Option<&'a NewInvitation>,
}

pub(super) async fn set_contacts(
    State(state): State<AppState>,
    Path(name): Path<String>,
    form: SignedInForm,
) -> PageResult {
    let who = &form.principal;
    who.visible_account(&state.store, &name).await?;
    let emails: Vec<String> = form
        .fields
        .text("contacts")
        .split([',', ';', '\n', '\r', ' '])
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned)
        .collect();
    state
        .store
        .set_contacts(&name, &emails, &who.actor())
        .await
        .map_err(ApiError::from)?;
    Ok(see_other(&format!(
        "/accounts/{name}?done=contacts#contacts"
    )))
}

pub(super) async fn create_invitation(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    form: SignedInForm,
) -> PageResult {
    let who = &form.principal;
    let account = who.visible_account(&state.store, &name).await?;
    who.check_vendor()?;
    let email = form.fields.text("email").trim().to_owned();
    let (invitation, secret) = state
        .store
        .create_invitation(&name, &email, &who.actor())
        .await
        .map_err(ApiError::from)?;
    let link = format!("{}/invite/{secret}", state.public_url);
    let emailed = match (&state.mailer, form.fields.text("send") == "yes") {
        (Some(mailer), true) => {
            let days = ferry_store::INVITATION_VALID_MS / 86_400_000;
            ferry_notify::send_invitation(
                mailer,
                &invitation.email,
                &name,
                account.display_name.as_deref(),
                &link,
                days,
            )
            .await
            .map(|()| true)
            .map_err(|e| e.to_string())
        }
        _ => Ok(false),
    };
    let new = NewInvitation {
        link,
        email: invitation.email,
        emailed,
    };
    // The link is shown in this answer only: never in a redirect URL.
    let extras = AccountExtras {
        notice: None,
        new_invitation: Some(&new),
    };
    super::account::render_account(&state, who, &name, &headers, &extras, None).await
}

pub(super) async fn withdraw_invitation(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    form: SignedInForm,
) -> PageResult {
    let who = &form.principal;
    who.visible_account(&state.store, &name).await?;
    who.check_vendor()?;
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    state
        .store
        .withdraw_invitation(&name, id, &who.actor())
        .await
        .map_err(ApiError::from)?;
    Ok(see_other(&format!(
        "/accounts/{name}?done=withdrawn#invitations"
    )))
}

fn invitation_gone() -> PageError {
    PageError::Api(ApiError::new(
        StatusCode::NOT_FOUND,
        "this invitation link has expired, was used or was withdrawn; ask your vendor for a new one",
    ))
}

pub(super) async fn invite_form(
    State(state): State<AppState>,
    Path(secret): Path<String>,
) -> PageResult {
    let Some(invitation) = state.store.open_invitation(&secret).await? else {
        return Err(invitation_gone());
    };
    let suggestion = invitation.email.clone();
    Ok(anonymous_page(&state, StatusCode::OK, |csrf| {
        views::accept_invitation(
            csrf,
            &invitation.account,
            &invitation.email,
            &suggestion,
            None,
        )
    }))
}

pub(super) async fn accept_invite(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    form: AnonymousForm,
) -> PageResult {
    let Some(invitation) = state.store.open_invitation(&secret).await? else {
        return Err(invitation_gone());
    };
    let username = form.fields.text("username").trim().to_owned();
    let accepted = state
        .store
        .accept_invitation(
            &secret,
            &username,
            &form.fields.text("password"),
            form.client_addr.as_deref(),
        )
        .await;
    let admin = match accepted {
        Ok(admin) => admin,
        Err(err @ (StoreError::InvalidValue { .. } | StoreError::AdminExists { .. })) => {
            let message = err.to_string();
            return Ok(anonymous_page(
                &state,
                StatusCode::UNPROCESSABLE_ENTITY,
                |csrf| {
                    views::accept_invitation(
                        csrf,
                        &invitation.account,
                        &invitation.email,
                        &username,
                        Some(&message),
                    )
                },
            ));
        }
        Err(err) => return Err(err.into()),
    };
    signed_in_response(&state, &admin, form.client_addr.as_deref()).await
}
