//! The HTML: one function per page, a shared layout, and the headers every
//! answer carries. Pages live beside this file by concept: `session`
//! (sign-in, setup), `account` (accounts list, account page), `admins`.
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
use ferry_store::format_timestamp;
use maud::{DOCTYPE, Markup, html};

mod account;
mod admins;
mod guide;
mod overview;
mod people;
mod session;

pub(crate) use account::*;
pub(crate) use admins::*;
pub(crate) use guide::*;
pub(crate) use overview::*;
pub(crate) use people::*;
pub(crate) use session::*;

use crate::auth::Principal;
use crate::error::{ApiError, PageError};

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
                            a href="/overview" { "Overview" }
                            a href="/accounts" { "Accounts" }
                            @if who.is_vendor() { a href="/admins" { "Admins and tokens" } }
                            @if who.is_vendor() { a href="/penalties" { "SFTP penalties" } }
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
pub(crate) fn error_box(err: &ApiError) -> Markup {
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

/// A state as a coloured word.
pub(crate) fn state_word(state: &str) -> Markup {
    html! { span class={ "state state-" (state) } { (state) } }
}
