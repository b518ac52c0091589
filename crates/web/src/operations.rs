//! The operations side of the admin web: the overview (a page and `GET
//! /api/v1/overview`) and the accounts import (`POST
//! /api/v1/import/accounts`).
//!
//! The overview's facts, order, filter, search and paging are the store's
//! (`ferry_store::Store::overview`), so the page, the API and `ferry status`
//! agree; here the caller's scope is applied: a vendor admin sees every
//! account, a district admin only its own row.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use ferry_store::{ImportAction, OverviewFilter, OverviewPage, OverviewQuery, Role};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::error::{ApiError, PageError};
use crate::forms::SignedIn;
use crate::{App, AppState, api, views};

/// `?state=&q=&page=&per_page=` of the overview.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct OverviewParams {
    pub(crate) state: Option<String>,
    pub(crate) q: Option<String>,
    pub(crate) page: Option<u32>,
    pub(crate) per_page: Option<u32>,
}

impl OverviewParams {
    fn query(&self) -> Result<OverviewQuery, ApiError> {
        let state = self.state.as_deref().unwrap_or("all");
        let filter = OverviewFilter::parse(state).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "state `{state}` is not a filter; use one of: {}",
                    OverviewFilter::all()
                        .iter()
                        .map(|f| f.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        Ok(OverviewQuery {
            filter,
            search: self.q.clone().unwrap_or_default(),
            page: self.page.unwrap_or(1),
            per_page: self.per_page.unwrap_or(50),
        })
    }
}

/// The overview the caller may see: every account, or its own.
pub(crate) async fn overview_for(
    app: &App,
    who: &Principal,
    params: &OverviewParams,
) -> Result<OverviewPage, ApiError> {
    let query = params.query()?;
    let scope = match who.role {
        Role::VendorAdmin => None,
        Role::DistrictAdmin => Some(who.account.as_deref().unwrap_or_default()),
    };
    Ok(app.store.overview(scope, &query).await?)
}

/// The overview: counts for the last 24 h and one row per account, those
/// needing attention first.
#[utoipa::path(get, path = "/api/v1/overview",
    params(
        ("state" = Option<String>, Query, description = "all (default), attention, failed, held, no-key, stale, rejected, refused, ok"),
        ("q" = Option<String>, Query, description = "part of the account's name or display name"),
        ("page" = Option<u32>, Query, description = "1-based page (default 1)"),
        ("per_page" = Option<u32>, Query, description = "rows per page, 1 to 500 (default 50)")),
    responses(
        (status = 200, description = "`{generated_at, since, counts: {accounts, delivered, held, rejected, failed, stale_accounts, no_active_key, refused_login_accounts, needing_attention}, filter, search, total, page, per_page, pages, filter_counts, rows: [{account, display_name, enabled, last_file, delivered, held, rejected, failed, stale, keys: {active, pending_until}, refused_logins, refused_reason, attention}]}`"),
        (status = 422, description = "unknown filter", body = crate::error::ErrorBody)))]
pub(crate) async fn overview_json(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<OverviewParams>,
) -> Result<Json<Value>, ApiError> {
    let page = overview_for(&state, &principal, &params).await?;
    Ok(Json(json!(page)))
}

/// The overview page.
pub(crate) async fn overview_page(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    Query(params): Query<OverviewParams>,
) -> Result<Response, PageError> {
    let page = overview_for(&state, &who, &params).await?;
    Ok(Html(views::overview(&who, &page).into_string()).into_response())
}

/// `?dry_run=true` of the import.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ImportParams {
    dry_run: Option<bool>,
}

/// Creates and updates accounts from a CSV file (vendor admin only):
/// columns name, display_name, contacts, expected_every. Importing the same
/// file twice changes nothing; `?dry_run=true` only says what it would do.
#[utoipa::path(post, path = "/api/v1/import/accounts",
    params(("dry_run" = Option<bool>, Query, description = "only say what would change")),
    request_body(content = String, content_type = "text/csv", description = "a header row naming the columns (name required; display_name, contacts, expected_every optional), then one row per account"),
    responses(
        (status = 200, description = "`{dry_run, created, updated, unchanged, accounts: [{line, name, action, changes}]}`"),
        (status = 404, description = "not a vendor admin", body = crate::error::ErrorBody),
        (status = 422, description = "refused file; details name each bad line; nothing was applied", body = crate::error::ErrorBody)))]
pub(crate) async fn import_accounts(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<ImportParams>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    principal.check_vendor()?;
    let body = body.map_err(api::body_rejection)?;
    let rows = ferry_store::parse_import_csv(&body).map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.summary).with_details(e.details)
    })?;
    let dry_run = params.dry_run.unwrap_or(false);
    let outcome = state
        .store
        .import_accounts(&rows, dry_run, &principal.actor())
        .await?;
    let count = |action| outcome.iter().filter(|a| a.action == action).count();
    Ok(Json(json!({
        "dry_run": dry_run,
        "created": count(ImportAction::Create),
        "updated": count(ImportAction::Update),
        "unchanged": count(ImportAction::Unchanged),
        "accounts": outcome,
    })))
}
