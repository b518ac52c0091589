//! ferry-web: the admin web's JSON API (DESIGN.md, "HTTP API").
//!
//! This crate exists to put the store's service functions on HTTP for
//! scripts, with one authorization rule in one place: a vendor admin's token
//! sees every account, a district admin's token only its own, and every
//! other account answers 404 (never 403), exactly like an account that does
//! not exist. It holds no SQL (everything goes through [`ferry_store::Store`])
//! and no key parsing of its own (that is `ferry-keys`). The HTML pages will
//! call the same handlers' helpers later.
//!
//! - [`router`] builds the axum router; [`api_routes`] lists every API route
//!   it serves (method, path), for the OpenAPI completeness test.
//! - [`openapi`] is the OpenAPI 3 document, served at `/api/v1/openapi.json`.
//! - [`serve`] runs the router on a listener until a shutdown future completes.

mod api;
mod auth;
mod error;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodRouter, get, post};
use ferry_keys::KeyPolicy;
use ferry_store::Store;

pub use api::ApiDoc;
pub use auth::Principal;
pub use error::ApiError;

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
}

/// Shared state of the router.
pub(crate) type AppState = Arc<WebConfig>;

/// Builds the router and records every route it adds.
struct Routes {
    router: Router<AppState>,
    list: Vec<(&'static str, &'static str)>,
}

impl Routes {
    fn add(
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
    let routes = Routes {
        router: Router::new(),
        list: Vec::new(),
    };
    routes
        .add("/healthz", &["GET"], get(api::healthz))
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
}

/// The router for `config`: every route of DESIGN.md's HTTP API that this
/// build serves, bodies capped at [`MAX_BODY_BYTES`].
pub fn router(config: WebConfig) -> Router {
    build()
        .router
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Arc::new(config))
}

/// Every route [`router`] serves, as (method, path) with `{param}` placeholders.
#[must_use]
pub fn api_routes() -> Vec<(&'static str, &'static str)> {
    build().list
}

/// The OpenAPI 3 document of the API.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    <ApiDoc as utoipa::OpenApi>::openapi()
}

/// Serves `config` on `listener` until `shutdown` completes, then finishes
/// the requests in flight.
///
/// # Errors
/// The listener's I/O error.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: WebConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(config).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
