//! The pages before sign-in: the sign-in form and the first-admin setup form.

use maud::{Markup, html};

use super::page;

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
