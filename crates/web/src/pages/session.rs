//! Sign-in, sign-out and the one-time setup link that creates the first
//! vendor admin: the pages a browser sees before it has a session.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use ferry_store::{Role, StoreError};
use maud::Markup;

use super::{PageResult, see_other};
use crate::AppState;
use crate::auth::{self, PRESESSION_COOKIE, SESSION_COOKIE};
use crate::error::{ApiError, PageError};
use crate::forms::{AnonymousForm, SignedInForm};
use crate::{throttle, views};

/// `Set-Cookie` for `name`; `max_age` in seconds (0 deletes it).
pub(super) fn set_cookie(state: &AppState, name: &str, value: &str, max_age: u64) -> String {
    let secure = if state.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// A page before sign-in, with a fresh pre-session cookie its form is tied to.
pub(super) fn anonymous_page(
    state: &AppState,
    status: StatusCode,
    render: impl FnOnce(&str) -> Markup,
) -> Response {
    let secret = auth::new_secret();
    let csrf = auth::csrf_token_for(&secret);
    let cookie = set_cookie(state, PRESESSION_COOKIE, &secret, 3600);
    (
        status,
        [(header::SET_COOKIE, cookie)],
        Html(render(&csrf).into_string()),
    )
        .into_response()
}

pub(super) async fn sign_in_form(State(state): State<AppState>) -> Response {
    anonymous_page(&state, StatusCode::OK, |csrf| {
        views::sign_in(csrf, "", None)
    })
}

/// The one answer for a wrong user name and a wrong password.
pub(super) const WRONG_CREDENTIALS: &str = "Wrong user name or password. Check both and try again.";

pub(super) async fn sign_in(State(state): State<AppState>, form: AnonymousForm) -> PageResult {
    let username = form.fields.text("username").trim().to_owned();
    let password = form.fields.text("password");
    let addr = form.client_addr.clone().unwrap_or_default();
    let Some(attempt) = state.throttle.begin(&addr, &username) else {
        metrics::counter!("ferry_web_sign_ins_total", "result" => "throttled").increment(1);
        let message = format!(
            "Too many failed sign-ins. Wait {} minutes and try again, or ask a vendor admin to set a new password.",
            throttle::WINDOW.as_secs() / 60
        );
        return Ok(anonymous_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            |csrf| views::sign_in(csrf, &username, Some(&message)),
        ));
    };
    let Some(admin) = state
        .store
        .verify_admin_password(&username, &password)
        .await?
    else {
        metrics::counter!("ferry_web_sign_ins_total", "result" => "refused").increment(1);
        tracing::info!(client = %addr, "admin web sign-in refused");
        return Ok(anonymous_page(&state, StatusCode::UNAUTHORIZED, |csrf| {
            views::sign_in(csrf, &username, Some(WRONG_CREDENTIALS))
        }));
    };
    attempt.succeeded();
    metrics::counter!("ferry_web_sign_ins_total", "result" => "accepted").increment(1);
    signed_in_response(&state, &admin, form.client_addr.as_deref()).await
}

/// Starts a session and sends the browser to its landing page.
pub(super) async fn signed_in_response(
    state: &AppState,
    admin: &ferry_store::Admin,
    client_addr: Option<&str>,
) -> PageResult {
    let secret = state.store.start_session(admin, client_addr).await?;
    let absolute = u64::try_from(state.session_limits.absolute_ms / 1000).unwrap_or(0);
    let landing = match (&admin.role, &admin.account) {
        (Role::DistrictAdmin, Some(account)) => format!("/accounts/{account}"),
        _ => "/accounts".to_owned(),
    };
    let mut response = see_other(&landing);
    let headers = response.headers_mut();
    for cookie in [
        set_cookie(state, SESSION_COOKIE, &secret, absolute),
        set_cookie(state, PRESESSION_COOKIE, "", 0),
    ] {
        if let Ok(value) = cookie.parse() {
            headers.append(header::SET_COOKIE, value);
        }
    }
    Ok(response)
}

pub(super) async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: SignedInForm,
) -> PageResult {
    let _ = form;
    if let Some(secret) = auth::cookie(&headers, SESSION_COOKIE) {
        state.store.end_session(&secret).await?;
    }
    let mut response = see_other("/sign-in");
    if let Ok(value) = set_cookie(&state, SESSION_COOKIE, "", 0).parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// Whether `secret` is the live setup link's.
pub(super) fn setup_link_valid(state: &AppState, secret: &str) -> bool {
    let guard = state
        .setup
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    guard.as_ref().is_some_and(|(hash, until)| {
        std::time::Instant::now() < *until
            && auth::secrets_match(hash, &ferry_store::token_hash(secret))
    })
}

pub(super) fn setup_link_gone() -> PageError {
    PageError::Api(ApiError::new(
        StatusCode::NOT_FOUND,
        "this setup link has expired or was used; sign in, or create an admin with `ferry admin create USER --role vendor-admin` on the server",
    ))
}

pub(super) async fn setup_form(
    State(state): State<AppState>,
    Path(secret): Path<String>,
) -> PageResult {
    if !setup_link_valid(&state, &secret) || state.store.admin_count().await? > 0 {
        return Err(setup_link_gone());
    }
    Ok(anonymous_page(&state, StatusCode::OK, |csrf| {
        views::setup(csrf, None)
    }))
}

pub(super) async fn setup(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    form: AnonymousForm,
) -> PageResult {
    if !setup_link_valid(&state, &secret) || state.store.admin_count().await? > 0 {
        return Err(setup_link_gone());
    }
    let username = form.fields.text("username").trim().to_owned();
    let actor = ferry_store::Actor::new("web:setup-link");
    let created = state
        .store
        .create_admin(
            &username,
            &form.fields.text("password"),
            Role::VendorAdmin,
            None,
            &actor,
        )
        .await;
    let admin = match created {
        Ok(admin) => admin,
        Err(err @ StoreError::InvalidValue { .. }) => {
            let message = err.to_string();
            return Ok(anonymous_page(
                &state,
                StatusCode::UNPROCESSABLE_ENTITY,
                |csrf| views::setup(csrf, Some(&message)),
            ));
        }
        Err(err) => return Err(err.into()),
    };
    *state
        .setup
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    signed_in_response(&state, &admin, form.client_addr.as_deref()).await
}
