//! ferry-web: the admin web — HTML pages for people, a JSON API for scripts
//! (DESIGN.md, "HTTP API").
//!
//! This crate exists to put the store's service functions on HTTP with one
//! authorization rule in one place: a vendor admin sees every account, a
//! district admin (and its tokens) only its own, and every other account
//! answers 404 (never 403), exactly like an account that does not exist. The
//! pages and the API call the same functions in `service`; neither holds SQL
//! (that is [`ferry_store::Store`]) or key parsing (that is `ferry-keys`).
//!
//! Read in this order: `auth` (who is calling: a bearer token or a sign-in
//! session, and the CSRF rule), `service` (what a caller may do), `api` (the
//! JSON routes), `pages` and `views` (the HTML), `throttle` (sign-in limits),
//! `client` (the client's address, behind trusted proxies), `connections`
//! (the accept loop and its limits), `penalties` (the SFTP penalties page).
//!
//! - [`Web`] holds the state; [`Web::offer_setup_link`] makes the one-time
//!   link that creates the first vendor admin; [`Web::router`] the routes.
//! - [`router`] builds the axum router for a config; [`api_routes`] lists
//!   every API route it serves (method, path), for the OpenAPI test.
//! - [`openapi`] is the OpenAPI 3 document, served at `/api/v1/openapi.json`.
//! - [`serve`] runs the router on a listener, within [`WebLimits`], until a
//!   shutdown future completes.

mod api;
mod auth;
mod client;
mod connections;
mod error;
mod forms;
mod health;
mod operations;
mod pages;
mod penalties;
mod service;
mod throttle;
mod views;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodRouter, get, post};
use ferry_keys::KeyPolicy;
use ferry_store::Store;

pub use api::ApiDoc;
pub use auth::Principal;
pub use connections::WebLimits;
pub use error::ApiError;
pub use health::DATABASE_CHECK_TIMEOUT;

/// Largest request body read (key uploads included): 1 MiB.
pub const MAX_BODY_BYTES: usize = ferry_keys::MAX_INPUT_BYTES;

/// A public host key, as `ferry host-key show` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct HostKey {
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `rsa-sha2-512`…
    pub algorithm: String,
    /// `SHA256:…` as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
    /// The OpenSSH one-line public key (the `.pub` file's contents).
    pub openssh: String,
}

/// Everything the handlers need.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The database.
    pub store: Store,
    /// The server's public host keys.
    pub host_keys: Vec<HostKey>,
    /// The host name districts connect to (for the known_hosts line); empty:
    /// the name in each request's `Host` header.
    pub sftp_host: String,
    /// The SFTP port (for the known_hosts line).
    pub sftp_port: u16,
    /// New keys become usable this long after they are added (ms).
    pub propagation_delay_ms: i64,
    /// Which keys are accepted.
    pub key_policy: KeyPolicy,
    /// The address people reach the web on (`https://…` makes the session
    /// cookie `Secure`).
    pub public_url: String,
    /// Session idle and absolute lifetimes.
    pub session_limits: ferry_store::SessionLimits,
    /// The process's metrics, served at `/metrics`; `None`: 404 there.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The mail server, for e-mailing invitations; `None`: links are only shown.
    pub mailer: Option<ferry_notify::Mailer>,
}

/// Shared state of the router.
pub(crate) type AppState = Arc<App>;

/// The configuration plus what the web keeps in memory.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) config: WebConfig,
    /// Connection limits, timeouts and trusted proxies.
    pub(crate) limits: WebLimits,
    /// Failed sign-ins per address and per user name.
    pub(crate) throttle: throttle::SignInThrottle,
    /// The SHA-256 of the one-time setup secret and when it stops working.
    pub(crate) setup: std::sync::Mutex<Option<(String, std::time::Instant)>>,
    /// The last readiness check of the database (`/healthz`).
    pub(crate) health: health::HealthCheck,
}

impl std::ops::Deref for App {
    type Target = WebConfig;
    fn deref(&self) -> &WebConfig {
        &self.config
    }
}

/// The admin web: build it, maybe offer a setup link, then serve its router.
#[derive(Debug, Clone)]
pub struct Web {
    app: AppState,
}

/// How long the first-start setup link works.
pub const SETUP_LINK_VALID: std::time::Duration = std::time::Duration::from_secs(3600);

impl Web {
    /// The web for `config`, with the default [`WebLimits`].
    #[must_use]
    pub fn new(config: WebConfig) -> Self {
        Self::with_limits(config, WebLimits::default())
    }

    /// The web for `config` within `limits`.
    #[must_use]
    pub fn with_limits(config: WebConfig, limits: WebLimits) -> Self {
        Self {
            app: Arc::new(App {
                config,
                limits,
                throttle: throttle::SignInThrottle::default(),
                setup: std::sync::Mutex::new(None),
                health: health::HealthCheck::default(),
            }),
        }
    }

    /// When no admin user exists yet: a one-time path (`/setup/<secret>`),
    /// valid for [`SETUP_LINK_VALID`], whose form creates the first vendor
    /// admin. `None` once any admin exists.
    ///
    /// # Errors
    /// A store failure.
    pub async fn offer_setup_link(&self) -> Result<Option<String>, ferry_store::StoreError> {
        if self.app.store.admin_count().await? > 0 {
            return Ok(None);
        }
        let secret = auth::new_secret();
        let until = std::time::Instant::now() + SETUP_LINK_VALID;
        *self
            .app
            .setup
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((ferry_store::token_hash(&secret), until));
        Ok(Some(format!("/setup/{secret}")))
    }

    /// The router: every page and API route, bodies capped at
    /// [`MAX_BODY_BYTES`], security headers on every answer, the client's
    /// address decided once (see `client`), and every request answered 408
    /// after [`WebLimits::request_timeout`].
    pub fn router(&self) -> Router {
        build()
            .router
            .merge(pages::routes().router)
            .merge(penalties::routes().router)
            .fallback(pages::not_found)
            .layer(axum::middleware::from_fn(views::security_headers))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(axum::middleware::from_fn_with_state(
                self.app.clone(),
                client::record_client,
            ))
            .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                self.app.limits.request_timeout,
            ))
            .with_state(self.app.clone())
    }
}

/// Builds the router and records every route it adds, so the tests can
/// check every route the router really has (OpenAPI, authorization matrix).
pub(crate) struct Routes {
    router: Router<AppState>,
    list: Vec<(&'static str, &'static str)>,
}

impl Routes {
    pub(crate) fn new() -> Self {
        Self {
            router: Router::new(),
            list: Vec::new(),
        }
    }

    /// A route that needs no sign-in (not recorded for the matrix).
    pub(crate) fn public(mut self, path: &'static str, handler: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, handler);
        self
    }

    pub(crate) fn add(
        mut self,
        path: &'static str,
        methods: &[&'static str],
        handler: MethodRouter<AppState>,
    ) -> Self {
        for method in methods {
            self.list.push((method, path));
        }
        self.router = self.router.route(path, handler);
        self
    }
}

fn build() -> Routes {
    Routes::new()
        .add("/healthz", &["GET"], get(api::healthz))
        .add("/livez", &["GET"], get(api::livez))
        .add("/metrics", &["GET"], get(api::metrics))
        .add("/host-key.pub", &["GET"], get(api::host_key_pub))
        .add("/api/v1/openapi.json", &["GET"], get(api::openapi_json))
        .add("/api/v1/host-keys", &["GET"], get(api::host_keys))
        .add(
            "/api/v1/accounts",
            &["GET", "POST"],
            get(api::list_accounts).post(api::create_account),
        )
        .add(
            "/api/v1/accounts/{name}",
            &["GET", "PATCH"],
            get(api::get_account).patch(api::patch_account),
        )
        .add(
            "/api/v1/accounts/{name}/keys",
            &["GET", "POST"],
            get(api::list_keys).post(api::add_keys),
        )
        .add(
            "/api/v1/accounts/{name}/authorized_keys",
            &["GET", "PUT"],
            get(api::get_authorized_keys).put(api::replace_keys),
        )
        .add(
            "/api/v1/accounts/{name}/keys/{id}",
            &["DELETE"],
            axum::routing::delete(api::revoke_key),
        )
        .add(
            "/api/v1/accounts/{name}/keys/{id}/activate",
            &["POST"],
            post(api::activate_key),
        )
        .add(
            "/api/v1/accounts/{name}/auth-attempts",
            &["GET"],
            get(api::auth_attempts),
        )
        .add(
            "/api/v1/accounts/{name}/uploads",
            &["GET"],
            get(api::uploads),
        )
        .add(
            "/api/v1/accounts/{name}/uploads/{id}/approve",
            &["POST"],
            post(api::approve_upload),
        )
        .add(
            "/api/v1/accounts/{name}/uploads/{id}/reject",
            &["POST"],
            post(api::reject_upload),
        )
        .add("/api/v1/overview", &["GET"], get(operations::overview_json))
        .add(
            "/api/v1/import/accounts",
            &["POST"],
            post(operations::import_accounts),
        )
}

/// The router for `config` (see [`Web::router`]).
pub fn router(config: WebConfig) -> Router {
    Web::new(config).router()
}

/// Every route [`router`] serves, as (method, path) with `{param}` placeholders.
#[must_use]
pub fn api_routes() -> Vec<(&'static str, &'static str)> {
    build().list
}

/// Every page route that needs a signed-in admin, as (method, path), for
/// the authorization matrix; the sign-in, setup and static routes are left out.
#[must_use]
pub fn page_routes() -> Vec<(&'static str, &'static str)> {
    let mut list = pages::routes().list;
    list.extend(penalties::routes().list);
    list
}

/// The OpenAPI 3 document of the API.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    <ApiDoc as utoipa::OpenApi>::openapi()
}

/// Serves `web` on `listener` within its [`WebLimits`] until `shutdown`
/// completes, then finishes the requests in flight.
///
/// # Errors
/// The listener's I/O error.
pub async fn serve(
    listener: tokio::net::TcpListener,
    web: Web,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = web.app.limits.clone();
    connections::serve(listener, web.router(), limits, shutdown).await
}
