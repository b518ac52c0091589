//! Who is calling: the bearer token, resolved through the store.
//!
//! One rule, one place: [`Principal::may_see`] decides whether the caller
//! may see an account, and every account route asks it before anything
//! else, answering 404 when it may not.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use ferry_store::{Account, Actor, Role, Store};

use crate::AppState;
use crate::error::ApiError;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// What the caller may do.
    pub role: Role,
    /// A district caller's account.
    pub account: Option<String>,
    /// The caller as the audit log names it (`token:ID`).
    pub who: String,
    /// The client's address, when known.
    pub client_addr: Option<String>,
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
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized("no credentials"));
        };
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
        let client_addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.to_string());
        Ok(Principal {
            role: token.role,
            account: token.account,
            who: format!("token:{}", token.id),
            client_addr,
        })
    }
}
