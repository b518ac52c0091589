//! The SFTP penalties page (vendor admins): which sources each SFTP node
//! refuses for now, and a button that lifts a penalty.
//!
//! Penalties live in each SFTP node's memory; the rows read here are the
//! ones nodes write when a penalty becomes active (see
//! `ferry_store::PenaltyRecord`). Lifting marks the rows, and each node drops
//! its penalty within seconds. A district admin gets the 404 of a page that
//! does not exist, like every vendor-only page.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use ferry_store::PenaltyRecord;
use maud::{Markup, html};
use serde::Deserialize;

use crate::auth::Principal;
use crate::error::{ApiError, PageError};
use crate::forms::{SignedIn, SignedInForm};
use crate::views::{csrf_field, page, when};
use crate::{AppState, Routes};

pub(crate) fn routes() -> Routes {
    Routes::new().add("/penalties", &["GET"], get(list)).add(
        "/penalties/lift",
        &["POST"],
        post(lift),
    )
}

/// `?lifted=` or `?gone=` after a lift: the source (shown only once it
/// parses as one, never echoed as typed).
#[derive(Debug, Deserialize)]
struct Done {
    lifted: Option<String>,
    gone: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    who.check_vendor()?;
    let penalties = state.store.penalties().await?;
    let source = |text: &Option<String>| text.as_deref().and_then(ferry_store::parse_source);
    let notice = match (source(&done.lifted), source(&done.gone)) {
        (Some(source), _) => Some(format!(
            "Penalty on {source} lifted: each SFTP node takes it up within seconds."
        )),
        (None, Some(source)) => Some(format!(
            "No SFTP node has a penalty on {source} now; it may have run down already."
        )),
        (None, None) => None,
    };
    Ok(Html(view(&who, &penalties, notice.as_deref()).into_string()).into_response())
}

async fn lift(State(state): State<AppState>, form: SignedInForm) -> Result<Response, PageError> {
    let who = &form.principal;
    who.check_vendor()?;
    let typed = form.fields.text("source");
    let Some(source) = ferry_store::parse_source(&typed) else {
        return Err(PageError::Api(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "that is not a source: give an IPv4 address or an IPv6 /64 as the penalties list shows it",
        )));
    };
    // A penalty that ran down between listing and clicking is not an error.
    let outcome = if state.store.lift_penalty(&source, &who.actor()).await? == 0 {
        "gone"
    } else {
        tracing::info!(%source, by = %who.who, "SFTP penalty lifted from the admin web");
        "lifted"
    };
    Ok(Redirect::to(&format!("/penalties?{outcome}={source}")).into_response())
}

fn view(who: &Principal, penalties: &[PenaltyRecord], notice: Option<&str>) -> Markup {
    let body = html! {
        h1 { "SFTP penalties" }
        @if let Some(notice) = notice { div.notice role="status" { (notice) } }
        p.muted {
            "A source (an IPv4 address, an IPv6 /64) whose connections keep ending without a login "
            "is refused by the SFTP node it connects to until its penalty runs down. Penalties are "
            "per node and forgotten when a node restarts. Exempt trusted networks with "
            code { "[sftp] penalty_exempt" } "."
        }
        table {
            thead { tr { th { "Node" } th { "Source" } th { "Latest reason" } th { "Since" } th { "Until" } th {} } }
            tbody {
                @for p in penalties {
                    tr.penalty {
                        td.mono { (p.node) }
                        td.mono { (p.source) }
                        td { (p.reason) }
                        td { (when(p.since)) }
                        td { (when(p.until)) }
                        td {
                            form.inline method="post" action="/penalties/lift" {
                                (csrf_field(who))
                                input type="hidden" name="source" value=(p.source);
                                button.secondary type="submit" { "Lift" }
                            }
                        }
                    }
                }
            }
        }
        @if penalties.is_empty() { p.muted { "No source is penalised now." } }
    };
    page("SFTP penalties", Some(who), &body)
}
