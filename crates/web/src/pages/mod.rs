//! The HTML pages' routes and what every page handler shares: sign-in and
//! first-admin setup (`session`), accounts and the account page (`account`),
//! admin users and tokens (`admins`).
//!
//! Every handler resolves the caller first ([`SignedIn`] for a view,
//! [`SignedInForm`] for a post, which checks CSRF), then calls `service` —
//! the same functions the JSON API calls — and answers with a page or a
//! redirect (post/redirect/get, so a reload never posts twice). An account
//! the caller may not see answers 404, word for word like a missing one.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::Markup;
use serde::Deserialize;

use crate::auth::{self, SESSION_COOKIE};
use crate::error::{ApiError, PageError};
use crate::service;
use crate::{AppState, Routes};

mod account;
mod admins;
mod people;
mod session;

use account::*;
use admins::*;
use people::*;
use session::*;

pub(crate) type PageResult = Result<Response, PageError>;

/// The pages' routes; the recorded list holds those that need a signed-in admin.
pub(crate) fn routes() -> Routes {
    Routes::new()
        .public("/", get(home))
        .public("/static/ferry.css", get(stylesheet))
        .public("/static/ferry.js", get(script))
        .public("/sign-in", get(sign_in_form).post(sign_in))
        .public("/setup/{secret}", get(setup_form).post(setup))
        // Signs out a session; without one it sends the browser to sign in.
        .public("/sign-out", post(sign_out))
        // The invited person has no session yet; the link's secret is the key.
        .public("/invite/{secret}", get(invite_form).post(accept_invite))
        .add("/overview", &["GET"], get(crate::operations::overview_page))
        .add("/accounts/{name}/contacts", &["POST"], post(set_contacts))
        .add(
            "/accounts/{name}/invitations",
            &["POST"],
            post(create_invitation),
        )
        .add(
            "/accounts/{name}/invitations/{id}/withdraw",
            &["POST"],
            post(withdraw_invitation),
        )
        .add(
            "/accounts",
            &["GET", "POST"],
            get(accounts).post(create_account),
        )
        .add("/accounts/{name}", &["GET"], get(account))
        .add("/accounts/{name}/enabled", &["POST"], post(set_enabled))
        .add("/accounts/{name}/limits", &["POST"], post(set_limits))
        .add("/accounts/{name}/keys", &["POST"], post(add_keys))
        .add(
            "/accounts/{name}/keys/replace",
            &["POST"],
            post(replace_keys),
        )
        .add(
            "/accounts/{name}/keys/{id}/revoke",
            &["GET", "POST"],
            get(confirm_revoke).post(revoke_key),
        )
        .add(
            "/accounts/{name}/keys/{id}/cancel",
            &["POST"],
            post(cancel_key),
        )
        .add(
            "/accounts/{name}/keys/{id}/activate",
            &["POST"],
            post(activate_key),
        )
        .add(
            "/accounts/{name}/uploads/{id}/approve",
            &["POST"],
            post(
                |State(s): State<AppState>, Path((n, i)): Path<(String, String)>, f| {
                    decide_upload(s, n, i, f, service::UploadDecision::Approve)
                },
            ),
        )
        .add(
            "/accounts/{name}/uploads/{id}/reject",
            &["POST"],
            post(
                |State(s): State<AppState>, Path((n, i)): Path<(String, String)>, f| {
                    decide_upload(s, n, i, f, service::UploadDecision::Reject)
                },
            ),
        )
        .add("/admins", &["GET", "POST"], get(admins).post(create_admin))
        .add("/admins/{id}/password", &["POST"], post(set_password))
        .add("/admins/{id}/enabled", &["POST"], post(set_admin_enabled))
        .add("/tokens", &["POST"], post(create_token))
        .add("/tokens/{id}/revoke", &["POST"], post(revoke_token))
}

pub(crate) fn html(markup: Markup) -> Response {
    Html(markup.into_string()).into_response()
}

pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Any other path: JSON under `/api/`, a page elsewhere.
pub(crate) async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        ApiError::not_found().into_response()
    } else {
        PageError::Api(ApiError::new(
            StatusCode::NOT_FOUND,
            "there is no page here; start from the accounts list",
        ))
        .into_response()
    }
}

async fn stylesheet() -> Response {
    static_file(
        "text/css; charset=utf-8",
        include_str!("../../static/ferry.css"),
    )
}

async fn script() -> Response {
    static_file(
        "text/javascript; charset=utf-8",
        include_str!("../../static/ferry.js"),
    )
}

fn static_file(content_type: &'static str, text: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        text,
    )
        .into_response()
}

async fn home(State(state): State<AppState>, headers: HeaderMap) -> PageResult {
    let signed_in = match auth::cookie(&headers, SESSION_COOKIE) {
        Some(secret) => state
            .store
            .session(&secret, state.session_limits)
            .await?
            .is_some(),
        None => false,
    };
    Ok(see_other(if signed_in { "/accounts" } else { "/sign-in" }))
}

/// `?done=` after a change: which notice to show (fixed words, never echoed input).
#[derive(Debug, Deserialize)]
pub(crate) struct Done {
    pub(crate) done: Option<String>,
}

pub(crate) fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "created" => "Account created. Add the district's public key below.",
        "added" => "Keys added. They are pending until the time shown, then logins with them work.",
        "replaced" => {
            "The key set was replaced. The old keys keep working until the new ones are active."
        }
        "revoked" => "Key revoked: logins with it are refused and its sessions were closed.",
        "cancelled" => "The pending key was withdrawn; it will never work.",
        "activated" => "The key is active now.",
        "enabled" => "Account enabled.",
        "disabled" => "Account disabled: every login is refused.",
        "admin-created" => "Admin user created.",
        "password" => "Password set; the user's sessions were ended.",
        "admin-enabled" => "Admin user enabled.",
        "admin-disabled" => "Admin user disabled and signed out.",
        "token-revoked" => "Token revoked.",
        "limits" => "Limits saved: they apply to sessions that start from now on.",
        "contacts" => "Contacts saved.",
        "withdrawn" => "Invitation withdrawn: its link no longer works.",
        "approved" => "Upload approved: it is handed over on the next pass.",
        "rejected" => "Upload rejected: it is archived and never handed over.",
        _ => return None,
    })
}
