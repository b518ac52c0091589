//! The accounts list, the account page (connect, keys, attempts, uploads,
//! audit) and the revoke confirmation.

use ferry_store::{
    Account, AuditEvent, AuthAttempt, KeyRecord, KeyState, Upload, UploadState, escape_control,
    format_size,
};
use maud::{Markup, Render, html};

use super::{csrf_field, error_box, page, state_word, when};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::service::ConnectInfo;

/// The accounts list (vendor admin), with the create form.
pub(crate) fn accounts(
    who: &Principal,
    list: &AccountList<'_>,
    stale: &[String],
    error: Option<&ApiError>,
) -> Markup {
    let accounts = list.accounts;
    let q = list.search;
    let link = |page: usize| {
        let mut url = format!("/accounts?page={page}");
        if !q.is_empty() {
            url.push_str("&q=");
            url.extend(form_urlencoded::byte_serialize(q.as_bytes()));
        }
        url
    };
    let body = html! {
        h1 { "Accounts" }
        section {
            form.row method="get" action="/accounts" {
                label { "Search " input id="accounts-search" type="search" name="q" value=(q) placeholder="name or district"; }
                button type="submit" { "Search" }
            }
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
            @if accounts.is_empty() { p.muted { @if q.is_empty() { "No accounts yet." } @else { "No account matches." } } }
            p.pages {
                @if list.page > 1 { a id="accounts-prev" href=(link(list.page - 1)) { "← Previous" } " " }
                "Page " (list.page) " of " (list.pages) " (" (list.total) " accounts)"
                @if list.page < list.pages { " " a id="accounts-next" href=(link(list.page + 1)) { "Next →" } }
            }
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

/// One page of the accounts list.
#[derive(Debug)]
pub(crate) struct AccountList<'a> {
    pub(crate) accounts: &'a [Account],
    pub(crate) search: &'a str,
    pub(crate) page: usize,
    pub(crate) pages: usize,
    pub(crate) total: usize,
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
    /// District contacts.
    pub(crate) contacts: &'a [String],
    /// Invitations (shown to vendor admins).
    pub(crate) invitations: &'a [ferry_store::Invitation],
    /// The database clock.
    pub(crate) now: i64,
    /// An invitation just made.
    pub(crate) new_invitation: Option<&'a super::NewInvitation>,
    /// Whether invitations can be e-mailed.
    pub(crate) can_email: bool,
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
        (super::guide(view.connect, &account.name))
        (super::people_section(who, &account.name, view.contacts, view.invitations, view.now, view.new_invitation, view.can_email))
        section id="attempts" {
            h2 { "Recent login attempts" }
            p.muted { "Newest first. The reason says why a login was refused. Repeated refusals from one source with the same reason are one line, counted; the address, client and key are the latest." }
            table {
                thead { tr { th { "When" } th { "Times" } th { "From" } th { "Client" } th { "Key" } th { "Result" } th { "Reason" } } }
                tbody {
                    @for a in view.attempts {
                        tr {
                            td { (when(a.last_at)) }
                            td.count {
                                (a.count)
                                @if a.count > 1 { span.muted { " since " (when(a.at)) } }
                            }
                            td.mono { (Shown(&a.client_addr)) }
                            td.mono { (Shown(&a.client_banner)) }
                            td.mono { (Shown(a.fingerprint.as_deref().unwrap_or(""))) }
                            td { (state_word(a.result.as_str())) }
                            td { (Shown(&a.reason)) }
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
                            td.mono { (Shown(&u.name)) }
                            td { (u.size) " bytes" }
                            td { (state_word(u.state.as_str())) }
                            td {
                                (Shown(u.detail.as_deref().unwrap_or("")))
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
                        tr { td { (when(e.at)) } td.mono { (Shown(&e.actor)) } td { (Shown(&e.detail)) } }
                    }
                }
            }
        }
        (limits_section(view, &base))
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
                @if let Some(error) = &upload.last_error { dt { "Error" } dd { (Shown(error)) } }
                @if let Some(h) = handoff {
                    @if let Some(status) = h.command_exit_status { dt { "Command exit status" } dd.mono { (status) } }
                    @if let Some(output) = &h.command_output { dt { "Command output (end)" } dd { pre { (output) } } }
                    @if let Some(url) = &h.webhook_url { dt { "Webhook" } dd.mono { (Shown(url)) } }
                    @if let Some(status) = h.webhook_status { dt { "Webhook HTTP status" } dd.mono { (status) } }
                    @if let Some(body) = &h.webhook_body { dt { "Webhook answer (end)" } dd { pre { (body) } } }
                }
            }
        }
    }
}

/// Text that came from a client (a file name, a banner, a key comment):
/// control characters shown as escapes, then HTML-escaped by maud.
struct Shown<'a>(&'a str);

impl Render for Shown<'_> {
    fn render_to(&self, buffer: &mut String) {
        escape_control(self.0).as_ref().render_to(buffer);
    }
}

/// The account's own SFTP limits; a form to change them for vendor admins.
fn limits_section(view: &AccountPage<'_>, base: &str) -> Markup {
    let limits = &view.account.limits;
    let shown = |v: Option<u64>, size: bool| match (v, size) {
        (None, _) => "the server's default".to_owned(),
        (Some(n), true) => format_size(n),
        (Some(n), false) => n.to_string(),
    };
    let value = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
    html! {
        section id="limits" {
            h2 { "Limits" }
            p {
                "Open files and folders: " (shown(limits.max_handles, false))
                ". Largest file: " (shown(limits.max_file_size, true))
                ". Quota (/inbound plus uploads in progress): " (shown(limits.quota, true)) "."
            }
            @if view.who.is_vendor() {
                form method="post" action={ (base) "/limits" } {
                    (csrf_field(view.who))
                    label { "Open files and folders " input name="max_handles" inputmode="numeric" value=(value(limits.max_handles)) placeholder="default"; }
                    label { "Largest file " input name="max_file_size" value=(value(limits.max_file_size)) placeholder="default, or e.g. 8GiB"; }
                    label { "Quota " input name="quota" value=(value(limits.quota)) placeholder="default, or e.g. 50GiB"; }
                    button.secondary type="submit" { "Save limits" }
                }
                p.muted { "Empty means the server's default ([sftp] in ferry.toml). Sizes in bytes or like 500MiB, 8GiB. A change applies to sessions that start after it." }
            }
        }
    }
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
                            td.comment { (Shown(&key.comment)) }
                            td.mono { (Shown(&key.options)) }
                            td.mono { (Shown(&key.added_by)) }
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
                span.muted { "Comment" } span { (Shown(&key.comment)) }
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
