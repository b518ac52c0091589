//! The people of an account: its district contacts (who hears about what
//! they can act on), invitations for district admins, and the page where
//! an invited person creates their own sign-in.

use ferry_store::Invitation;
use maud::{Markup, html};

use super::{csrf_field, page, when};
use crate::auth::Principal;

/// A link just made: shown once, with what happened to the e-mail.
#[derive(Debug)]
pub(crate) struct NewInvitation {
    pub(crate) link: String,
    pub(crate) email: String,
    /// `Ok(true)`: e-mailed; `Ok(false)`: not asked to; `Err`: why the e-mail failed.
    pub(crate) emailed: Result<bool, String>,
}

/// Contacts and (vendor admins) invitations.
pub(crate) fn people_section(
    who: &Principal,
    account: &str,
    contacts: &[String],
    invitations: &[Invitation],
    now: i64,
    new_invitation: Option<&NewInvitation>,
    can_email: bool,
) -> Markup {
    let base = format!("/accounts/{account}");
    html! {
        section id="contacts" {
            h2 { "District contacts" }
            p.muted { "They are e-mailed when a file is held or refused, when no file arrived in time, when logins keep being refused and before a key expires. One address per line." }
            form method="post" action={ (base) "/contacts#contacts" } {
                (csrf_field(who))
                textarea id="contacts-text" name="contacts" rows="3" { (contacts.join("\n")) }
                button id="contacts-submit" type="submit" { "Save contacts" }
            }
        }
        @if who.is_vendor() {
            section id="invitations" {
                h2 { "District admins: invitations" }
                p.muted { "An invitation is a link that works once, for 7 days: the person opening it chooses their user name and password and then sees this account only." }
                @if let Some(new) = new_invitation {
                    div.secret role="status" {
                        @match &new.emailed {
                            Ok(true) => { strong { "Invitation e-mailed to " (new.email) ". The link (shown this once):" } }
                            Ok(false) => { strong { "Invitation for " (new.email) ": copy this link and send it (shown this once):" } }
                            Err(why) => { strong { "The e-mail to " (new.email) " could not be sent (" (why) "). Copy this link and send it yourself (shown this once):" } }
                        }
                        pre id="invitation-link" { (new.link) }
                    }
                }
                form method="post" action={ (base) "/invitations#invitations" } {
                    (csrf_field(who))
                    div.row {
                        label { "E-mail address" br;
                            input id="invite-email" type="email" name="email" list="contact-list" required value=(contacts.first().map(String::as_str).unwrap_or(""));
                        }
                        datalist id="contact-list" { @for c in contacts { option value=(c) {} } }
                        button id="invite-copy" type="submit" name="send" value="no" { "Create link to copy" }
                        @if can_email { button id="invite-send" type="submit" name="send" value="yes" { "Create and e-mail" } }
                    }
                }
                table {
                    thead { tr { th { "For" } th { "Made" } th { "State" } th {} } }
                    tbody {
                        @for inv in invitations {
                            tr {
                                td { (inv.email) }
                                td { (when(inv.created_at)) " by " span.mono { (inv.created_by) } }
                                td {
                                    @if let Some(at) = inv.used_at { "used " (when(at)) @if let Some(u) = &inv.used_by { " by " span.mono { (u) } } }
                                    @else if inv.withdrawn_at.is_some() { "withdrawn" }
                                    @else if inv.expires_at <= now { "expired" }
                                    @else { "open until " (when(inv.expires_at)) }
                                }
                                td {
                                    @if inv.is_open(now) {
                                        form.inline method="post" action={ (base) "/invitations/" (inv.id) "/withdraw" } {
                                            (csrf_field(who)) button.secondary type="submit" { "Withdraw" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The page an invited person opens.
pub(crate) fn accept_invitation(
    csrf: &str,
    account: &str,
    email: &str,
    username: &str,
    message: Option<&str>,
) -> Markup {
    let body = html! {
        section {
            h1 { "Set up your sign-in" }
            p { "You were invited (" (email) ") to manage the SFTP account " strong { (account) } ": its keys, login attempts and files. Choose a user name and a password of 12 characters or more; nobody else will know it." }
            @if let Some(message) = message { div.error role="alert" { (message) } }
            form method="post" {
                input type="hidden" name="csrf" value=(csrf);
                label { "User name" br; input id="invite-username" type="text" name="username" value=(username) autocomplete="username" required; }
                label { "Password (at least 12 characters)" br; input id="invite-password" type="password" name="password" autocomplete="new-password" required; }
                button id="invite-accept" type="submit" { "Create my sign-in" }
            }
        }
    };
    page("Set up your sign-in", None, &body)
}
