//! API errors: a status and `{"error": "...", "details": [...]}`.
//!
//! Every message names the problem and the fix. Store errors map to the
//! status a script can act on (404 unknown, 409 conflict, 422 refused input).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferry_store::StoreError;

/// The JSON body of every error.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What is wrong and how to fix it.
    pub error: String,
    /// One entry per refused line (`line 3: …`), when there are lines.
    pub details: Vec<String>,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: ErrorBody,
}

impl ApiError {
    /// An error without details.
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: error.into(),
                details: Vec::new(),
            },
        }
    }

    /// The same error with per-line details.
    #[must_use]
    pub fn with_details(mut self, details: Vec<String>) -> Self {
        self.body.details = details;
        self
    }

    /// 404 for an account the caller may not see (or that does not exist):
    /// the same answer either way.
    pub fn no_account(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!(
                "no account named `{name}`; list the accounts you can see with GET /api/v1/accounts"
            ),
        )
    }

    /// 404 for an operation the caller's role may not use (never 403).
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not found; see GET /api/v1/openapi.json for the routes this server has",
        )
    }

    /// 401: no or an unknown token.
    pub fn unauthorized(why: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            format!(
                "{why}; send `Authorization: Bearer ferry_…` with a token from `ferry token create`"
            ),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        if let StoreError::NoSuchAccount { name } = &err {
            // Word for word what an account the caller may not see gets.
            return Self::no_account(name);
        }
        let status = match &err {
            StoreError::NoSuchAccount { .. }
            | StoreError::NoSuchKey { .. }
            | StoreError::NoSuchAdmin { .. }
            | StoreError::NoSuchUpload { .. }
            | StoreError::NoSuchToken { .. } => StatusCode::NOT_FOUND,
            StoreError::AccountExists { .. }
            | StoreError::AdminExists { .. }
            | StoreError::KeyNotPending { .. }
            | StoreError::UploadNotInState { .. } => StatusCode::CONFLICT,
            StoreError::InvalidAccountName { .. }
            | StoreError::InvalidValue { .. }
            | StoreError::NoKeys { .. }
            | StoreError::TooManyKeys { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            _ => {
                tracing::error!(error = %err, "API request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        Self::new(status, err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A page's error: send the browser to sign in, or show an error page with
/// the API error's status and words (rendered in `views`).
#[derive(Debug)]
pub(crate) enum PageError {
    /// No live session: 303 to the sign-in page.
    SignIn,
    /// Anything else, shown as a page.
    Api(ApiError),
}

impl From<ApiError> for PageError {
    fn from(err: ApiError) -> Self {
        Self::Api(err)
    }
}

impl From<StoreError> for PageError {
    fn from(err: StoreError) -> Self {
        Self::Api(err.into())
    }
}
