//! Admin users and API tokens (vendor admins only).

use ferry_store::{Account, Admin, ApiToken, Role};
use maud::{Markup, html};

use super::{csrf_field, error_box, page, state_word, when};
use crate::auth::Principal;
use crate::error::ApiError;

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
