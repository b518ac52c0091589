//! Who is calling: a bearer token or a sign-in session, resolved through the
//! store, and the CSRF rule that goes with sessions.
//!
//! One rule, one place: [`Principal::may_see`] decides whether the caller
//! may see an account, and every account route asks it before anything
//! else, answering 404 when it may not.
//!
//! Sessions live in the database (`ferry_store::Store::session`); the
//! cookie `ferry_session` holds only a random secret (HttpOnly,
//! SameSite=Strict, Secure behind https). Each session's CSRF token is
//! derived from that secret, so it needs no storage and changes with every
//! sign-in. Before sign-in, the sign-in and setup forms are tied the same way
//! to a short-lived `ferry_presession` cookie.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use base64::Engine;
use ferry_store::{Account, Actor, Role, Store, Upload};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::ApiError;

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "ferry_session";
/// The cookie that ties the sign-in and setup forms to one browser.
pub(crate) const PRESESSION_COOKIE: &str = "ferry_presession";
/// The header a script using a session cookie sends its CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// What the caller may do.
    pub role: Role,
    /// A district caller's account.
    pub account: Option<String>,
    /// The caller as the audit log names it (`token:ID`, `admin:NAME`).
    pub who: String,
    /// The client's address, when known.
    pub client_addr: Option<String>,
    /// The CSRF token of a session caller; `None` for a bearer token.
    pub(crate) csrf: Option<String>,
    /// The signed-in admin's id (session callers).
    pub(crate) admin_id: Option<i64>,
}

impl Principal {
    /// Whether the caller may see (and change) the account `name`.
    #[must_use]
    pub fn may_see(&self, name: &str) -> bool {
        match self.role {
            Role::VendorAdmin => true,
            Role::DistrictAdmin => self.account.as_deref() == Some(name),
        }
    }

    /// Whether the caller is a vendor admin.
    #[must_use]
    pub fn is_vendor(&self) -> bool {
        self.role == Role::VendorAdmin
    }

    /// An upload as this caller may see it: a vendor admin sees what the
    /// vendor's import answered; a district admin sees the district's
    /// version only ([`Upload::for_district`]).
    #[must_use]
    pub fn upload_view(&self, upload: Upload) -> Upload {
        if self.is_vendor() {
            upload
        } else {
            upload.for_district()
        }
    }

    /// The actor recorded in the audit log.
    #[must_use]
    pub fn actor(&self) -> Actor {
        let actor = Actor::new(self.who.clone());
        match &self.client_addr {
            Some(addr) => actor.with_client_addr(addr.clone()),
            None => actor,
        }
    }

    /// `Ok` when the caller may see `name`, else the 404 an unknown account gets.
    ///
    /// # Errors
    /// [`ApiError::no_account`].
    pub fn check_account(&self, name: &str) -> Result<(), ApiError> {
        if self.may_see(name) {
            Ok(())
        } else {
            Err(ApiError::no_account(name))
        }
    }

    /// `Ok` for a vendor admin; for anyone else the 404 of a route that does
    /// not exist (a district admin is never told what it may not do).
    ///
    /// # Errors
    /// [`ApiError::not_found`].
    pub fn check_vendor(&self) -> Result<(), ApiError> {
        if self.is_vendor() {
            Ok(())
        } else {
            Err(ApiError::not_found())
        }
    }

    /// The account `name` when the caller may see it and it exists; the
    /// same 404 in both other cases, so a district cannot probe for others.
    ///
    /// # Errors
    /// [`ApiError::no_account`], or a store failure.
    pub async fn visible_account(&self, store: &Store, name: &str) -> Result<Account, ApiError> {
        self.check_account(name)?;
        store
            .account(name)
            .await?
            .ok_or_else(|| ApiError::no_account(name))
    }

    /// Whether `token` is this session's CSRF token (constant time).
    pub(crate) fn csrf_matches(&self, token: &str) -> bool {
        self.csrf
            .as_deref()
            .is_some_and(|expected| secrets_match(expected, token))
    }
}

/// A new random secret: 32 bytes, base64url without padding.
pub(crate) fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The CSRF token that goes with a session or pre-session secret.
pub(crate) fn csrf_token_for(secret: &str) -> String {
    let digest = Sha256::digest(format!("ferry-csrf:{secret}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// Compares two secrets in constant time (for equal lengths).
pub(crate) fn secrets_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

/// The request's client address, when the server recorded it: the peer,
/// or the address a trusted proxy named (see `crate::client`).
pub(crate) fn client_addr(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<crate::client::ClientAddr>()
        .map(|crate::client::ClientAddr(ip)| ip.to_string())
}

/// The caller of a session cookie, if the cookie names a live session.
pub(crate) async fn session_principal(
    parts: &Parts,
    state: &AppState,
) -> Result<Option<Principal>, ApiError> {
    let Some(secret) = cookie(&parts.headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let Some(session) = state.store.session(&secret, state.session_limits).await? else {
        return Ok(None);
    };
    let admin = session.admin;
    Ok(Some(Principal {
        role: admin.role,
        account: admin.account,
        who: format!("admin:{}", admin.username),
        client_addr: client_addr(parts),
        csrf: Some(csrf_token_for(&secret)),
        admin_id: Some(admin.id),
    }))
}

/// The caller of a bearer token; `Err` 401 for an unknown or revoked one.
async fn token_principal(
    parts: &Parts,
    state: &AppState,
    value: &header::HeaderValue,
) -> Result<Principal, ApiError> {
    let Some(secret) = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|s| !s.is_empty())
    else {
        return Err(ApiError::unauthorized(
            "the Authorization header is not `Bearer <token>`",
        ));
    };
    let Some(token) = state.store.api_token_by_secret(secret).await? else {
        return Err(ApiError::unauthorized("the token is unknown or revoked"));
    };
    Ok(Principal {
        role: token.role,
        account: token.account,
        who: format!("token:{}", token.id),
        client_addr: client_addr(parts),
        csrf: None,
        admin_id: None,
    })
}

/// The API's caller: a bearer token, else a sign-in session. A session
/// caller changing anything must send its CSRF token in `X-CSRF-Token`.
impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            return token_principal(parts, state, value).await;
        }
        let Some(principal) = session_principal(parts, state).await? else {
            return Err(ApiError::unauthorized("no credentials"));
        };
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !safe && !principal.csrf_matches(sent) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "a request signed in with a session cookie must send its CSRF token in the X-CSRF-Token header; scripts should use a bearer token instead",
            ));
        }
        Ok(principal)
    }
}
