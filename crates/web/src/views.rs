//! The HTML: one function per page, a shared layout, and the headers every
//! answer carries.
//!
//! Pages are maud templates, so every value interpolated is HTML-escaped
//! unless wrapped in `PreEscaped` (which nothing here does with data). The
//! Content-Security-Policy allows scripts and styles from this server's own
//! files only: an injected inline `<script>` would not run even if escaping
//! failed. No view reads the store; handlers in `pages` pass the facts in.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use ferry_store::{
    Account, Admin, ApiToken, AuditEvent, AuthAttempt, KeyRecord, KeyState, Role, Upload,
    UploadState, format_timestamp,
};
use maud::{DOCTYPE, Markup, html};

use crate::auth::Principal;
use crate::error::{ApiError, PageError};
use crate::service::ConnectInfo;

/// The policy sent with every answer: nothing inline, nothing foreign.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers to every answer.
pub(crate) async fn security_headers(req: Request, next: Next) -> Response {
    let is_static = req.uri().path().starts_with("/static/");
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The setup link carries its secret in the path: never pass it on.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !is_static {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// `2026-11-23 14:32:05 UTC`.
pub(crate) fn when(ms: i64) -> String {
    let text = format_timestamp(ms);
    format!("{} {} UTC", &text[..10], &text[11..19])
}

/// The frame of every page: title, navigation, sign-out.
pub(crate) fn page(title: &str, who: Option<&Principal>, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Ferry" }
                link rel="stylesheet" href="/static/ferry.css";
                script src="/static/ferry.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "Ferry" }
                    @if let Some(who) = who {
                        nav {
                            a href="/accounts" { "Accounts" }
                            @if who.is_vendor() { a href="/admins" { "Admins and tokens" } }
                        }
                        span.muted { (who.who.trim_start_matches("admin:")) }
                        form.inline method="post" action="/sign-out" {
                            (csrf_field(who))
                            button.secondary type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The hidden CSRF field of a signed-in caller's forms.
pub(crate) fn csrf_field(who: &Principal) -> Markup {
    html! { input type="hidden" name="csrf" value=(who.csrf.as_deref().unwrap_or_default()); }
}

/// An error box: the message and one line per detail.
fn error_box(err: &ApiError) -> Markup {
    html! {
        div.error role="alert" {
            strong { (err.body.error) }
            @if !err.body.details.is_empty() {
                ul.refusals { @for line in &err.body.details { li { (line) } } }
            }
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn => Redirect::to("/sign-in").into_response(),
            Self::Api(err) => {
                let title = if err.status == StatusCode::NOT_FOUND {
                    "Not found"
                } else {
                    "Something went wrong"
                };
                let body = html! {
                    h1 { (title) }
                    (error_box(&err))
                    p { a href="/accounts" { "Back to the accounts" } }
                };
                (err.status, Html(page(title, None, &body).into_string())).into_response()
            }
        }
    }
}

/// The sign-in form.
pub(crate) fn sign_in(csrf: &str, username: &str, message: Option<&str>) -> Markup {
    let body = html! {
        section {
            h1 { "Sign in" }
            @if let Some(message) = message { div.error role="alert" { (message) } }
            form method="post" action="/sign-in" {
                input type="hidden" name="csrf" value=(csrf);
                label { "User name" br; input type="text" name="username" value=(username) autocomplete="username" required; }
                label { "Password" br; input type="password" name="password" autocomplete="current-password" required; }
                button type="submit" { "Sign in" }
            }
        }
    };
    page("Sign in", None, &body)
}

/// The first-start form that creates the first vendor admin.
pub(crate) fn setup(csrf: &str, message: Option<&str>) -> Markup {
    let body = html! {
        section {
            h1 { "Create the first vendor admin" }
            p { "This link works once, for one hour after Ferry started. The admin you create here sees every account and can create the others." }
            @if let Some(message) = message { div.error role="alert" { (message) } }
            form method="post" {
                input type="hidden" name="csrf" value=(csrf);
                label { "User name" br; input type="text" name="username" autocomplete="username" required; }
                label { "Password (at least 12 characters)" br; input type="password" name="password" autocomplete="new-password" required; }
                button type="submit" { "Create and sign in" }
            }
        }
    };
    page("Set up Ferry", None, &body)
}

/// A state as a coloured word.
/// What the vendor's import answered at an upload's last hand-off. Only
/// vendor admins' views of an upload carry it ([`Principal::upload_view`]).
fn vendor_detail(upload: &Upload) -> Markup {
    let handoff = upload.handoff.as_ref();
    if upload.last_error.is_none() && handoff.is_none() {
        return html! {};
    }
    html! {
        details.vendor-detail {
            summary { "Vendor detail (not shown to the district)" }
            dl {
                @if let Some(error) = &upload.last_error { dt { "Error" } dd { (error) } }
                @if let Some(h) = handoff {
                    @if let Some(status) = h.command_exit_status { dt { "Command exit status" } dd.mono { (status) } }
                    @if let Some(output) = &h.command_output { dt { "Command output (end)" } dd { pre { (output) } } }
                    @if let Some(url) = &h.webhook_url { dt { "Webhook" } dd.mono { (url) } }
                    @if let Some(status) = h.webhook_status { dt { "Webhook HTTP status" } dd.mono { (status) } }
                    @if let Some(body) = &h.webhook_body { dt { "Webhook answer (end)" } dd { pre { (body) } } }
                }
            }
        }
    }
}

fn state_word(state: &str) -> Markup {
    html! { span class={ "state state-" (state) } { (state) } }
}

/// The accounts list (vendor admin), with the create form.
pub(crate) fn accounts(
    who: &Principal,
    accounts: &[Account],
    stale: &[String],
    error: Option<&ApiError>,
) -> Markup {
    let body = html! {
        h1 { "Accounts" }
        section {
            table {
                thead { tr { th { "Account (SSH user name)" } th { "Name" } th { "Logins" } th { "Files" } th { "Created" } } }
                tbody {
                    @for account in accounts {
                        tr {
                            td { a href={ "/accounts/" (account.name) } { (account.name) } }
                            td { (account.display_name.as_deref().unwrap_or("")) }
                            td { @if account.enabled { (state_word("active")) } @else { (state_word("refused")) " (disabled)" } }
                            td { @if stale.contains(&account.name) { span.state.state-failed.stale { "stale" } } }
                            td { (when(account.created_at)) }
                        }
                    }
                }
            }
            @if accounts.is_empty() { p.muted { "No accounts yet." } }
        }
        @if who.is_vendor() {
            section {
                h2 { "Create an account" }
                @if let Some(err) = error { (error_box(err)) }
                form method="post" action="/accounts" {
                    (csrf_field(who))
                    div.row {
                        label { "SSH user name (lower-case letters, digits, - and _)" br; input type="text" name="name" required pattern="[a-z0-9][a-z0-9_-]{0,62}"; }
                        label { "District name" br; input type="text" name="display_name"; }
                        button type="submit" { "Create account" }
                    }
                }
            }
        }
    };
    page("Accounts", Some(who), &body)
}

/// Everything the account page shows.
#[derive(Debug)]
pub(crate) struct AccountPage<'a> {
    pub(crate) who: &'a Principal,
    pub(crate) account: &'a Account,
    /// No finished upload within the account's `expected_every`.
    pub(crate) stale: bool,
    pub(crate) connect: &'a ConnectInfo,
    pub(crate) keys: &'a [KeyRecord],
    pub(crate) attempts: &'a [AuthAttempt],
    pub(crate) uploads: &'a [Upload],
    pub(crate) audit: &'a [AuditEvent],
    pub(crate) notice: Option<&'a str>,
    /// A refused key form: which form (`add` / `replace`), the error, the text sent.
    pub(crate) key_error: Option<(&'a str, &'a ApiError, &'a str)>,
}

/// The account page: how to connect, keys, attempts, uploads, audit.
pub(crate) fn account(view: &AccountPage<'_>) -> Markup {
    let who = view.who;
    let account = view.account;
    let base = format!("/accounts/{}", account.name);
    let body = html! {
        h1 {
            @if let Some(display) = &account.display_name {
                (display) " " span.muted { "(" (account.name) ")" }
            } @else {
                (account.name)
            }
        }
        @if view.key_error.is_some() {
            div.error role="alert" { "No key was added. " a href="#add-keys" { "See the refused lines below." } }
        }
        @if let Some(notice) = view.notice { div.notice role="status" { (notice) } }
        @if !account.enabled { div.error { "This account is disabled: every login is refused." } }
        @if view.stale {
            div.error.stale {
                "Stale: no file has arrived within the expected interval ("
                (account.expected_every_secs.map(|s| format!("every {} h", s / 3600)).unwrap_or_default())
                "). Check the district's export job and the login attempts below."
            }
        }
        (connect_section(view))
        (keys_section(view, &base))
        (key_forms(view, &base))
        section id="attempts" {
            h2 { "Recent login attempts" }
            p.muted { "Newest first. The reason says why a login was refused." }
            table {
                thead { tr { th { "When" } th { "From" } th { "Client" } th { "Key" } th { "Result" } th { "Reason" } } }
                tbody {
                    @for a in view.attempts {
                        tr {
                            td { (when(a.at)) }
                            td.mono { (a.client_addr) }
                            td.mono { (a.client_banner) }
                            td.mono { (a.fingerprint.as_deref().unwrap_or("")) }
                            td { (state_word(a.result.as_str())) }
                            td { (a.reason) }
                        }
                    }
                }
            }
            @if view.attempts.is_empty() { p.muted { "No login attempts yet." } }
        }
        section id="uploads" {
            h2 { "Recent uploads" }
            table {
                thead { tr { th { "When" } th { "File" } th { "Size" } th { "State" } th { "Detail" } th {} } }
                tbody {
                    @for u in view.uploads {
                        tr.upload data-id=(u.id) {
                            td { (when(u.received_at)) }
                            td.mono { (u.name) }
                            td { (u.size) " bytes" }
                            td { (state_word(u.state.as_str())) }
                            td {
                                (u.detail.as_deref().unwrap_or(""))
                                (vendor_detail(u))
                            }
                            td {
                                @if u.state == UploadState::Held {
                                    form.inline method="post" action={ (base) "/uploads/" (u.id) "/approve" } {
                                        (csrf_field(who)) button.secondary type="submit" { "Approve (hand over)" }
                                    }
                                    " "
                                    form.inline method="post" action={ (base) "/uploads/" (u.id) "/reject" } {
                                        (csrf_field(who)) button.danger type="submit" { "Reject" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if view.uploads.is_empty() { p.muted { "No uploads yet." } }
        }
        section id="audit" {
            h2 { "Changes to this account" }
            table {
                thead { tr { th { "When" } th { "Who" } th { "What" } } }
                tbody {
                    @for e in view.audit {
                        tr { td { (when(e.at)) } td.mono { (e.actor) } td { (e.detail) } }
                    }
                }
            }
        }
        @if who.is_vendor() {
            section {
                h2 { "Account" }
                form method="post" action={ (base) "/enabled" } {
                    (csrf_field(who))
                    @if account.enabled {
                        input type="hidden" name="enabled" value="false";
                        button.danger type="submit" { "Disable account (refuse every login)" }
                    } @else {
                        input type="hidden" name="enabled" value="true";
                        button type="submit" { "Enable account" }
                    }
                }
            }
        }
    };
    page(&account.name, Some(who), &body)
}

fn connect_section(view: &AccountPage<'_>) -> Markup {
    let info = view.connect;
    html! {
        section id="connect" {
            h2 { "How to connect" }
            div.grid {
                span.muted { "Protocol" } span { "SFTP (SSH File Transfer Protocol), public key only" }
                span.muted { "Host" } span.mono id="sftp-host" { (info.host) }
                span.muted { "Port" } span.mono id="sftp-port" { (info.port) }
                span.muted { "User name" } span.mono id="sftp-user" { (view.account.name) }
                span.muted { "Upload to" } span.mono { "/inbound" }
            }
            h2 { "Server host keys" }
            p.muted { "Check the fingerprint your client shows on first connect against this list, or pin the key file." }
            table {
                thead { tr { th { "Type" } th { "Fingerprint" } th {} } }
                tbody {
                    @for k in &info.keys {
                        tr {
                            td.mono { (k.key.algorithm) }
                            td.mono.host-fingerprint { (k.key.fingerprint) }
                            td { a.button.secondary href={ "/host-key.pub?type=" (host_key_type(&k.key.algorithm)) } download { "Download .pub" } }
                        }
                    }
                }
            }
            p {
                a.button id="download-host-key" href="/host-key.pub" download { "Download server public key (.pub)" }
            }
            p.muted { "A ready known_hosts line (OpenSSH, WinSCP's and Java tools' known hosts):" }
            pre id="known-hosts" { @for k in &info.keys { (k.known_hosts) "\n" } }
        }
    }
}

/// `ed25519`, `ecdsa` or `rsa` for a host key algorithm.
fn host_key_type(algorithm: &str) -> &'static str {
    if algorithm.starts_with("ecdsa") {
        "ecdsa"
    } else if algorithm.contains("rsa") {
        "rsa"
    } else {
        "ed25519"
    }
}

fn keys_section(view: &AccountPage<'_>, base: &str) -> Markup {
    let who = view.who;
    html! {
        section id="keys" {
            h2 { "Keys" }
            table {
                thead { tr { th { "State" } th { "Fingerprint" } th { "Type" } th { "Comment" } th { "Options" } th { "Added by" } th { "Last used" } th {} } }
                tbody {
                    @for key in view.keys {
                        tr.key data-fingerprint=(key.fingerprint) {
                            td {
                                (state_word(key.state.as_str()))
                                @if key.state == KeyState::Pending {
                                    br; span.muted { "until " (when(key.effective_at)) }
                                    br; span.countdown data-until=(key.effective_at) {}
                                }
                                @if key.state == KeyState::Retiring {
                                    @if let Some(at) = key.retire_at { br; span.muted { "until " (when(at)) } }
                                }
                            }
                            td.mono { (key.fingerprint) }
                            td { (key.key_type) " " (key.bits) }
                            td.comment { (key.comment) }
                            td.mono { (key.options) }
                            td.mono { (key.added_by) }
                            td { (key.last_used_at.map(when).unwrap_or_else(|| "never".to_owned())) }
                            td {
                                @if key.state == KeyState::Pending {
                                    form.inline method="post" action={ (base) "/keys/" (key.id) "/cancel" } {
                                        (csrf_field(who)) button.secondary type="submit" { "Cancel" }
                                    }
                                    @if who.is_vendor() {
                                        " "
                                        form.inline method="post" action={ (base) "/keys/" (key.id) "/activate" } {
                                            (csrf_field(who)) button.secondary type="submit" { "Activate now" }
                                        }
                                    }
                                }
                                @if matches!(key.state, KeyState::Active | KeyState::Retiring) {
                                    a.button.secondary.revoke href={ (base) "/keys/" (key.id) "/revoke" } { "Revoke…" }
                                }
                            }
                        }
                    }
                }
            }
            @if view.keys.is_empty() { p.muted { "No keys yet: add the district's public key below." } }
        }
    }
}

fn key_forms(view: &AccountPage<'_>, base: &str) -> Markup {
    let who = view.who;
    let error_for = |form: &str| view.key_error.filter(|(which, _, _)| *which == form);
    html! {
        section id="add-keys" {
            h2 { "Add keys" }
            p.muted { "Paste public keys or choose a file: OpenSSH (.pub), authorized_keys, PuTTYgen's export (RFC 4716) or PEM. New keys work after the propagation delay; revocations are immediate. Never paste a private key." }
            @if let Some((_, err, _)) = error_for("add") { (error_box(err)) }
            form method="post" action={ (base) "/keys#add-keys" } enctype="multipart/form-data" {
                (csrf_field(who))
                label { "Public keys" textarea id="add-keys-text" name="keys" { @if let Some((_, _, text)) = error_for("add") { (text) } } }
                label { "…or a key file " input id="add-keys-file" type="file" name="file" accept=".pub,.txt,text/plain,*"; }
                button id="add-keys-submit" type="submit" { "Add keys" }
            }
        }
        section id="replace-keys" {
            h2 { "Replace the whole set" }
            p.muted { "The keys you send become the account's keys; the others keep working until the new ones are active, then retire." }
            @if let Some((_, err, _)) = error_for("replace") { (error_box(err)) }
            form method="post" action={ (base) "/keys/replace#replace-keys" } enctype="multipart/form-data" {
                (csrf_field(who))
                label { "Public keys" textarea name="keys" { @if let Some((_, _, text)) = error_for("replace") { (text) } } }
                label { "…or a key file " input type="file" name="file" accept=".pub,.txt,text/plain,*"; }
                button type="submit" { "Replace all keys" }
            }
        }
    }
}

/// The revoke confirmation step.
pub(crate) fn confirm_revoke(who: &Principal, account: &str, key: &KeyRecord) -> Markup {
    let body = html! {
        section {
            h1 { "Revoke this key?" }
            div.grid {
                span.muted { "Account" } span.mono { (account) }
                span.muted { "Fingerprint" } span.mono { (key.fingerprint) }
                span.muted { "Comment" } span { (key.comment) }
            }
            p { "Logins with this key are refused at once and its open sessions are closed. This cannot be undone; to use the key again, add it again." }
            form method="post" action={ "/accounts/" (account) "/keys/" (key.id) "/revoke" } {
                (csrf_field(who))
                button.danger id="confirm-revoke" type="submit" { "Revoke key" }
                " "
                a href={ "/accounts/" (account) } { "Keep it" }
            }
        }
    };
    page("Revoke key", Some(who), &body)
}

/// Everything the admins page shows.
#[derive(Debug)]
pub(crate) struct AdminsPage<'a> {
    pub(crate) who: &'a Principal,
    pub(crate) admins: &'a [Admin],
    pub(crate) tokens: &'a [ApiToken],
    pub(crate) accounts: &'a [Account],
    pub(crate) notice: Option<&'a str>,
    pub(crate) error: Option<&'a ApiError>,
    /// A token just created: shown this once.
    pub(crate) new_token: Option<&'a str>,
}

fn role_and_account(role: Role, account: Option<&str>) -> Markup {
    html! { (role.as_str()) @if let Some(account) = account { " of " a href={ "/accounts/" (account) } { (account) } } }
}

/// Admin users and API tokens (vendor admin only).
pub(crate) fn admins(view: &AdminsPage<'_>) -> Markup {
    let who = view.who;
    let account_select = html! {
        select name="account" {
            option value="" { "— none (vendor admin) —" }
            @for a in view.accounts { option value=(a.name) { (a.name) } }
        }
    };
    let role_select = html! {
        select name="role" {
            option value="district-admin" { "district admin (one account)" }
            option value="vendor-admin" { "vendor admin (every account)" }
        }
    };
    let body = html! {
        h1 { "Admins and tokens" }
        @if let Some(notice) = view.notice { div.notice role="status" { (notice) } }
        @if let Some(err) = view.error { (error_box(err)) }
        @if let Some(secret) = view.new_token {
            div.secret role="status" {
                strong { "The new token (shown this once; store it in your script's secret store):" }
                pre id="new-token" { (secret) }
            }
        }
        section {
            h2 { "Admin users" }
            table {
                thead { tr { th { "User" } th { "Role" } th { "State" } th { "New password" } th {} } }
                tbody {
                    @for admin in view.admins {
                        tr {
                            td.mono { (admin.username) }
                            td { (role_and_account(admin.role, admin.account.as_deref())) }
                            td { @if admin.disabled { (state_word("revoked")) " disabled" } @else { (state_word("active")) } }
                            td {
                                form.inline method="post" action={ "/admins/" (admin.id) "/password" } {
                                    (csrf_field(who))
                                    input type="password" name="password" autocomplete="new-password" placeholder="12 characters or more" required;
                                    " " button.secondary type="submit" { "Set password" }
                                }
                            }
                            td {
                                form.inline method="post" action={ "/admins/" (admin.id) "/enabled" } {
                                    (csrf_field(who))
                                    @if admin.disabled {
                                        input type="hidden" name="enabled" value="true";
                                        button.secondary type="submit" { "Enable" }
                                    } @else {
                                        input type="hidden" name="enabled" value="false";
                                        button.danger type="submit" { "Disable" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Create an admin user" }
            form method="post" action="/admins" {
                (csrf_field(who))
                div.row {
                    label { "User name" br; input type="text" name="username" required; }
                    label { "Password (12 characters or more)" br; input type="password" name="password" autocomplete="new-password" required; }
                    label { "Role" br; (role_select) }
                    label { "Account (district admins)" br; (account_select) }
                    button type="submit" { "Create admin" }
                }
            }
        }
        section {
            h2 { "API tokens" }
            table {
                thead { tr { th { "Id" } th { "Role" } th { "Created" } th { "By" } th { "State" } th {} } }
                tbody {
                    @for token in view.tokens {
                        tr {
                            td { (token.id) }
                            td { (role_and_account(token.role, token.account.as_deref())) }
                            td { (when(token.created_at)) }
                            td.mono { (token.created_by) }
                            td { @if let Some(at) = token.revoked_at { (state_word("revoked")) " " (when(at)) } @else { (state_word("active")) } }
                            td {
                                @if token.revoked_at.is_none() {
                                    form.inline method="post" action={ "/tokens/" (token.id) "/revoke" } {
                                        (csrf_field(who)) button.danger type="submit" { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Create a token" }
            form method="post" action="/tokens" {
                (csrf_field(who))
                div.row {
                    label { "Role" br; (role_select) }
                    label { "Account (district tokens)" br; (account_select) }
                    button type="submit" { "Create token" }
                }
            }
        }
    };
    page("Admins and tokens", Some(who), &body)
}
