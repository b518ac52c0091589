//! The HTML pages' routes: sign-in, first-admin setup, accounts, the account
//! page and its forms, admin users and tokens.
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
use ferry_store::{Role, StoreError};
use maud::Markup;
use serde::Deserialize;

use crate::auth::{self, PRESESSION_COOKIE, Principal, SESSION_COOKIE};
use crate::error::{ApiError, PageError};
use crate::forms::{AnonymousForm, SignedIn, SignedInForm};
use crate::{AppState, Routes};
use crate::{service, throttle, views};

type PageResult = Result<Response, PageError>;

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
        .add(
            "/accounts",
            &["GET", "POST"],
            get(accounts).post(create_account),
        )
        .add("/accounts/{name}", &["GET"], get(account))
        .add("/accounts/{name}/enabled", &["POST"], post(set_enabled))
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

fn html(markup: Markup) -> Response {
    Html(markup.into_string()).into_response()
}

fn see_other(to: &str) -> Response {
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
        include_str!("../static/ferry.css"),
    )
}

async fn script() -> Response {
    static_file(
        "text/javascript; charset=utf-8",
        include_str!("../static/ferry.js"),
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

// ---- sign-in, sign-out, setup ------------------------------------------------

/// `Set-Cookie` for `name`; `max_age` in seconds (0 deletes it).
fn set_cookie(state: &AppState, name: &str, value: &str, max_age: u64) -> String {
    let secure = if state.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// A page before sign-in, with a fresh pre-session cookie its form is tied to.
fn anonymous_page(
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

async fn sign_in_form(State(state): State<AppState>) -> Response {
    anonymous_page(&state, StatusCode::OK, |csrf| {
        views::sign_in(csrf, "", None)
    })
}

/// The one answer for a wrong user name and a wrong password.
const WRONG_CREDENTIALS: &str = "Wrong user name or password. Check both and try again.";

async fn sign_in(State(state): State<AppState>, form: AnonymousForm) -> PageResult {
    let username = form.fields.text("username").trim().to_owned();
    let password = form.fields.text("password");
    let addr = form.client_addr.clone().unwrap_or_default();
    if state.throttle.is_blocked(&addr, &username) {
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
    }
    let Some(admin) = state
        .store
        .verify_admin_password(&username, &password)
        .await?
    else {
        state.throttle.record_failure(&addr, &username);
        metrics::counter!("ferry_web_sign_ins_total", "result" => "refused").increment(1);
        tracing::info!(client = %addr, "admin web sign-in refused");
        return Ok(anonymous_page(&state, StatusCode::UNAUTHORIZED, |csrf| {
            views::sign_in(csrf, &username, Some(WRONG_CREDENTIALS))
        }));
    };
    state.throttle.record_success(&username);
    metrics::counter!("ferry_web_sign_ins_total", "result" => "accepted").increment(1);
    signed_in_response(&state, &admin, form.client_addr.as_deref()).await
}

/// Starts a session and sends the browser to its landing page.
async fn signed_in_response(
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

async fn sign_out(
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
fn setup_link_valid(state: &AppState, secret: &str) -> bool {
    let guard = state
        .setup
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    guard.as_ref().is_some_and(|(hash, until)| {
        std::time::Instant::now() < *until
            && auth::secrets_match(hash, &ferry_store::token_hash(secret))
    })
}

fn setup_link_gone() -> PageError {
    PageError::Api(ApiError::new(
        StatusCode::NOT_FOUND,
        "this setup link has expired or was used; sign in, or create an admin with `ferry admin create USER --role vendor-admin` on the server",
    ))
}

async fn setup_form(State(state): State<AppState>, Path(secret): Path<String>) -> PageResult {
    if !setup_link_valid(&state, &secret) || state.store.admin_count().await? > 0 {
        return Err(setup_link_gone());
    }
    Ok(anonymous_page(&state, StatusCode::OK, |csrf| {
        views::setup(csrf, None)
    }))
}

async fn setup(
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

// ---- accounts -------------------------------------------------------------------

async fn accounts(State(state): State<AppState>, SignedIn(who): SignedIn) -> PageResult {
    if let (Role::DistrictAdmin, Some(account)) = (who.role, &who.account) {
        return Ok(see_other(&format!("/accounts/{account}")));
    }
    let list = service::visible_accounts(&state, &who).await?;
    let stale = service::stale_accounts(&state).await?;
    Ok(html(views::accounts(&who, &list, &stale, None)))
}

async fn create_account(State(state): State<AppState>, form: SignedInForm) -> PageResult {
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
            let list = service::visible_accounts(&state, who).await?;
            let stale = service::stale_accounts(&state).await?;
            let mut response = html(views::accounts(who, &list, &stale, Some(&err)));
            *response.status_mut() = err.status;
            Ok(response)
        }
        Err(err) => Err(err.into()),
    }
}

/// `?done=` after a change: which notice to show (fixed words, never echoed input).
#[derive(Debug, Deserialize)]
struct Done {
    done: Option<String>,
}

fn notice(done: Option<&str>) -> Option<&'static str> {
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
        "approved" => "Upload approved: it is handed over on the next pass.",
        "rejected" => "Upload rejected: it is archived and never handed over.",
        _ => return None,
    })
}

async fn account(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    Path(name): Path<String>,
    headers: HeaderMap,
    axum::extract::Query(done): axum::extract::Query<Done>,
) -> PageResult {
    render_account(
        &state,
        &who,
        &name,
        &headers,
        notice(done.done.as_deref()),
        None,
    )
    .await
}

async fn render_account(
    state: &AppState,
    who: &Principal,
    name: &str,
    headers: &HeaderMap,
    notice: Option<&str>,
    key_error: Option<(&str, &ApiError, &str)>,
) -> PageResult {
    let account = who.visible_account(&state.store, name).await?;
    let keys = state.store.keys(name).await?;
    let attempts = state.store.auth_attempts(name, 20).await?;
    let uploads = service::uploads(state, who, name, 20).await?;
    let audit = state.store.audit_events(Some(name), 30).await?;
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
        notice,
        key_error,
    };
    let mut response = html(views::account(&view));
    if let Some((_, err, _)) = key_error {
        *response.status_mut() = err.status;
    }
    Ok(response)
}

async fn set_enabled(
    State(state): State<AppState>,
    Path(name): Path<String>,
    form: SignedInForm,
) -> PageResult {
    let enabled = form.fields.text("enabled") == "true";
    service::set_account_enabled(&state, &form.principal, &name, enabled).await?;
    let done = if enabled { "enabled" } else { "disabled" };
    Ok(see_other(&format!("/accounts/{name}?done={done}")))
}

/// The key text of an add/replace form: the pasted text, then the file's.
fn key_text(form: &SignedInForm) -> Vec<u8> {
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

async fn add_keys(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    form: SignedInForm,
) -> PageResult {
    key_form(&state, &name, &headers, &form, "add").await
}

async fn replace_keys(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    form: SignedInForm,
) -> PageResult {
    key_form(&state, &name, &headers, &form, "replace").await
}

/// Adds or replaces keys; a refusal re-shows the page with every refused
/// line next to the form and the text as sent.
async fn key_form(
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
            render_account(state, who, name, headers, None, Some((which, &err, &sent))).await
        }
        Err(err) => Err(err.into()),
    }
}

async fn confirm_revoke(
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

async fn revoke_key(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    form: SignedInForm,
) -> PageResult {
    service::revoke_key(&state, &form.principal, &name, &id).await?;
    Ok(see_other(&format!("/accounts/{name}?done=revoked#keys")))
}

async fn cancel_key(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    form: SignedInForm,
) -> PageResult {
    service::cancel_key(&state, &form.principal, &name, &id).await?;
    Ok(see_other(&format!("/accounts/{name}?done=cancelled#keys")))
}

async fn activate_key(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    form: SignedInForm,
) -> PageResult {
    service::activate_key(&state, &form.principal, &name, &id).await?;
    Ok(see_other(&format!("/accounts/{name}?done=activated#keys")))
}

/// Approves or rejects a held upload (one handler for both routes).
async fn decide_upload(
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

// ---- admin users and tokens (vendor admins) -----------------------------------

/// The admins page with an optional notice, error or new token.
async fn render_admins(
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

async fn admins(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    axum::extract::Query(done): axum::extract::Query<Done>,
) -> PageResult {
    render_admins(&state, &who, notice(done.done.as_deref()), None, None).await
}

/// The role and account of an admin or token form.
fn role_form(form: &SignedInForm) -> Result<(Role, Option<String>), ApiError> {
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
async fn admins_outcome<T>(
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

async fn create_admin(State(state): State<AppState>, form: SignedInForm) -> PageResult {
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
fn numeric_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::not_found())
}

async fn set_password(
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

async fn set_admin_enabled(
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

async fn create_token(State(state): State<AppState>, form: SignedInForm) -> PageResult {
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

async fn revoke_token(
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
