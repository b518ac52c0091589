//! The pages' extractors: who is signed in, and form posts with their CSRF
//! token checked before any handler sees a field.
//!
//! A page handler that changes anything takes a [`SignedInForm`] (or, before
//! sign-in, an [`AnonymousForm`]); there is no other way to read a posted
//! form, so no handler can forget the CSRF check. A post without the right
//! token is answered 403 and changes nothing. Both URL-encoded forms and
//! `multipart/form-data` (key files) are read, within the 1 MiB body cap.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};

use crate::AppState;
use crate::auth::{self, PRESESSION_COOKIE, Principal};
use crate::error::{ApiError, PageError};

/// A page's signed-in caller (a session cookie; bearer tokens are for the API).
#[derive(Debug, Clone)]
pub(crate) struct SignedIn(pub(crate) Principal);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        match auth::session_principal(parts, state).await? {
            Some(principal) => Ok(Self(principal)),
            None => Err(PageError::SignIn),
        }
    }
}

/// The posted fields, in order. File fields hold the file's bytes.
#[derive(Debug, Default)]
pub(crate) struct Fields(Vec<(String, Vec<u8>)>);

impl Fields {
    /// The first field named `name`, as text (invalid UTF-8 replaced).
    pub(crate) fn text(&self, name: &str) -> String {
        String::from_utf8_lossy(self.bytes(name)).into_owned()
    }

    /// The first field named `name`, as bytes (empty when absent).
    pub(crate) fn bytes(&self, name: &str) -> &[u8] {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map_or(&[][..], |(_, value)| value.as_slice())
    }
}

/// A signed-in caller's form post whose CSRF token matched.
#[derive(Debug)]
pub(crate) struct SignedInForm {
    pub(crate) principal: Principal,
    pub(crate) fields: Fields,
}

impl FromRequest<AppState> for SignedInForm {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, PageError> {
        let (mut parts, body) = req.into_parts();
        let SignedIn(principal) = SignedIn::from_request_parts(&mut parts, state).await?;
        let fields = read_fields(Request::from_parts(parts, body), state).await?;
        if !principal.csrf_matches(&fields.text("csrf")) {
            return Err(csrf_refused());
        }
        Ok(Self { principal, fields })
    }
}

/// A form posted before sign-in (sign-in, first-admin setup), tied to the
/// browser's pre-session cookie by its CSRF token.
#[derive(Debug)]
pub(crate) struct AnonymousForm {
    pub(crate) fields: Fields,
    pub(crate) client_addr: Option<String>,
}

impl FromRequest<AppState> for AnonymousForm {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, PageError> {
        let (parts, body) = req.into_parts();
        let presession = auth::cookie(&parts.headers, PRESESSION_COOKIE);
        let client_addr = auth::client_addr(&parts);
        let fields = read_fields(Request::from_parts(parts, body), state).await?;
        let expected = presession.map(|secret| auth::csrf_token_for(&secret));
        let sent = fields.text("csrf");
        if !expected.is_some_and(|expected| auth::secrets_match(&expected, &sent)) {
            return Err(csrf_refused());
        }
        Ok(Self {
            fields,
            client_addr,
        })
    }
}

fn csrf_refused() -> PageError {
    PageError::Api(ApiError::new(
        StatusCode::FORBIDDEN,
        "this form has expired or did not come from this site (its CSRF token is missing or wrong); go back, reload the page and send it again",
    ))
}

/// Reads a URL-encoded or multipart body into [`Fields`].
async fn read_fields(req: Request, state: &AppState) -> Result<Fields, PageError> {
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if multipart {
        let mut form = Multipart::from_request(req, state)
            .await
            .map_err(|e| unreadable(e.status(), &e.body_text()))?;
        let mut fields = Vec::new();
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| unreadable(e.status(), &e.body_text()))?
        {
            let name = field.name().unwrap_or_default().to_owned();
            let value = field
                .bytes()
                .await
                .map_err(|e| unreadable(e.status(), &e.body_text()))?;
            fields.push((name, value.to_vec()));
        }
        return Ok(Fields(fields));
    }
    let body = Bytes::from_request(req, state)
        .await
        .map_err(|e| unreadable(e.status(), &e.body_text()))?;
    Ok(Fields(
        form_urlencoded::parse(&body)
            .map(|(key, value)| (key.into_owned(), value.into_owned().into_bytes()))
            .collect(),
    ))
}

fn unreadable(status: StatusCode, why: &str) -> PageError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return PageError::Api(ApiError::new(
            status,
            "the form is over 1 MiB; choose only the public key file (.pub), which is well under 1 KiB per key",
        ));
    }
    PageError::Api(ApiError::new(
        StatusCode::BAD_REQUEST,
        format!("cannot read the form ({why}); reload the page and send it again"),
    ))
}
