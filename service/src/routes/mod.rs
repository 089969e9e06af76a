//! The app's OAuth routes (feature `axum`): install, callback and the
//! install webhooks, mountable in your own axum app, and a server to serve
//! them with timeouts ([`serve`]).
//!
//! | Route | Does |
//! |---|---|
//! | `POST /webhook` | verifies the signed delivery over its raw bytes, refuses replays, and acts on it: see [`webhook`] |
//! | `GET /install` | draws a fresh `state` (16 random bytes from the OS), binds it to the browser with a signed cookie, and redirects (`302`) to the consent page: see [`binding`] |
//! | `GET /callback` | checks the `state` against the browser's cookie (signed, unexpired, the same nonce; compared in constant time), exchanges the `code`, stores the grant, and answers `200` (or redirects to your success page) |
//! | `GET /healthz`, `GET /readyz` | liveness and readiness (`200` or `503` with a short JSON body): see [`health`] |
//!
//! ```no_run
//! # async fn run(service: hoopai_oauth_service::TokenService) -> std::io::Result<()> {
//! use hoopai_oauth::Scope;
//! use hoopai_oauth_service::OAuthRouter;
//! use hoopai_oauth_service::routes::{ServeLimits, serve};
//!
//! // The config's redirect URI must be this app's `/oauth/callback`.
//! let app = axum::Router::new().nest(
//!     "/oauth",
//!     OAuthRouter::new(service, [Scope::CONTACTS_READONLY]).into_router(),
//! );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! // Header, body and request timeouts, a connection cap, and each
//! // request's client address for the throttles.
//! serve(listener, app, ServeLimits::default(), std::future::pending()).await
//! # }
//! ```
//!
//! **Facing the internet.** Every input of these routes is unauthenticated,
//! so each is bounded (see `docs/security.md` in the repository):
//!
//! - rate: `/install` and `/callback` are throttled per client address and
//!   overall ([`throttle`]: `429` with `Retry-After`; defaults in
//!   [`RouteLimits::install_default`] and [`RouteLimits::callback_default`]);
//!   a `/callback` flood spends at most the overall limit's worth of code
//!   exchanges upstream;
//! - memory: no per-install table (the state lives in a signed cookie), a
//!   bounded table of client addresses, seen webhook ids in the store's
//!   table (pruned) or a set bounded in count and bytes;
//! - size: webhook bodies up to 1 MiB, `webhookId`s up to 256 bytes;
//! - time: header, body and request timeouts when served with [`serve`].
//!
//! Answers are fixed texts (`text/plain`, `X-Content-Type-Options: nosniff`,
//! `Cache-Control: no-store`): nothing the caller sent is reflected. What
//! was refused and why is logged (`tracing`), with the core's sanitized,
//! capped text. A consent the user denied is `400` too.
//!
//! **Installs started from the marketplace.** HighLevel does not document
//! echoing the `state`, and an install started from the marketplace (not
//! from `/install`) comes back with none. A callback without a state is
//! refused unless [`OAuthRouter::allow_missing_state`] is set; what that
//! gives up is said there.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::Response;
use axum::routing::{get, post};
use hoopai_oauth::{Scope, UserType, WebhookVerifier};

use crate::service::TokenService;
use crate::telemetry;

pub mod binding;
mod callback;
pub mod health;
mod respond;
pub mod server;
pub mod throttle;
pub mod webhook;

pub use binding::StateKey;
pub use server::{ServeLimits, serve};
pub use throttle::{ClientAddress, DEFAULT_MAX_CLIENTS, Rate, RouteLimits};
pub use webhook::{ForgetFuture, RecordFuture, WebhookIds};
use webhook::{WebhookRoute, WebhookState};

/// Builds the OAuth router; see the [module docs](self).
#[must_use]
#[derive(Debug)]
pub struct OAuthRouter {
    service: TokenService,
    scopes: Vec<Scope>,
    user_type: Option<UserType>,
    state_ttl: Duration,
    state_key: Option<StateKey>,
    allow_missing_state: bool,
    success_redirect: Option<String>,
    install_limits: RouteLimits,
    callback_limits: RouteLimits,
    client_address: ClientAddress,
    webhook: WebhookRoute,
    healthz_path: String,
    readyz_path: String,
}

impl OAuthRouter {
    /// Routes for `service`, asking consent for `scopes`.
    ///
    /// The webhook route is served at `/webhook`, trusting HighLevel's
    /// published key ([`WebhookVerifier::new`]) and remembering the ids
    /// accepted in the service's store when it can hold them for every
    /// process (SQLite, Postgres), else in memory; see
    /// [`webhook_verifier`](Self::webhook_verifier),
    /// [`webhook_path`](Self::webhook_path) and [`webhook_ids`](Self::webhook_ids).
    pub fn new(service: TokenService, scopes: impl IntoIterator<Item = Scope>) -> Self {
        let webhook = WebhookRoute::new(
            WebhookVerifier::new(service.config()),
            service.webhook_ids(),
        );
        OAuthRouter {
            webhook,
            service,
            scopes: scopes.into_iter().collect(),
            user_type: None,
            state_ttl: Duration::from_secs(10 * 60),
            state_key: None,
            allow_missing_state: false,
            success_redirect: None,
            install_limits: RouteLimits::install_default(),
            callback_limits: RouteLimits::callback_default(),
            client_address: ClientAddress::Peer,
            healthz_path: "/healthz".to_owned(),
            readyz_path: "/readyz".to_owned(),
        }
    }

    /// The `user_type` of the code exchange (`Company` for agency installs).
    pub fn user_type(mut self, user_type: UserType) -> Self {
        self.user_type = Some(user_type);
        self
    }

    /// How long a state waits for its callback (default 10 min): the state
    /// cookie's `Max-Age`, and the expiry signed into it.
    pub fn state_ttl(mut self, ttl: Duration) -> Self {
        self.state_ttl = ttl;
        self
    }

    /// The key that signs state cookies (default: drawn at random when the
    /// router is built, which suits one process only; see [`StateKey`]).
    pub fn state_key(mut self, key: StateKey) -> Self {
        self.state_key = Some(key);
        self
    }

    /// Accept a callback that carries no `state` at all, as an install
    /// started from the marketplace does (one that carries a state is still
    /// checked against the browser's cookie). Off by default.
    ///
    /// What it gives up: a callback without a state is bound to no browser,
    /// so anyone can make a victim's browser (or a script) deliver a code
    /// of their own choosing (login CSRF). The app then exchanges it and
    /// holds the tokens of *that* sub-account, as if its owner had installed
    /// the app. The code must still be a real one, issued for this app's
    /// client id and redirect URI, and the throttles still bound how many
    /// are tried. Nothing ties such an install to the user of the app's own
    /// session: link installs to your users only through `/install`.
    pub fn allow_missing_state(mut self, allow: bool) -> Self {
        self.allow_missing_state = allow;
        self
    }

    /// The throttle of `/install` (default [`RouteLimits::install_default`]).
    pub fn install_limits(mut self, limits: RouteLimits) -> Self {
        self.install_limits = limits;
        self
    }

    /// The throttle of `/callback` (default
    /// [`RouteLimits::callback_default`]).
    pub fn callback_limits(mut self, limits: RouteLimits) -> Self {
        self.callback_limits = limits;
        self
    }

    /// Where the throttles read a request's client address (default: the
    /// TCP peer, [`ClientAddress::Peer`]; behind a reverse proxy, the header
    /// it sets).
    pub fn client_address(mut self, address: ClientAddress) -> Self {
        self.client_address = address;
        self
    }

    /// After a successful install, redirect here (`302`) instead of
    /// answering `200` with a short text.
    pub fn success_redirect(mut self, url: impl Into<String>) -> Self {
        self.success_redirect = Some(url.into());
        self
    }

    /// How webhook deliveries are verified: the trusted keys, the replay
    /// window, undated deliveries (default: [`WebhookVerifier::new`] of the
    /// service's config).
    pub fn webhook_verifier(mut self, verifier: WebhookVerifier) -> Self {
        self.webhook.verifier = verifier;
        self
    }

    /// The webhook route's path (default `/webhook`), within the router.
    pub fn webhook_path(mut self, path: impl Into<String>) -> Self {
        self.webhook.path = path.into();
        self
    }

    /// Where accepted `webhookId`s are recorded (default: the service's
    /// store when it holds them for every process on it, as the SQLite and
    /// Postgres stores do; else in memory, this process only). See
    /// [`WebhookIds`].
    pub fn webhook_ids(mut self, ids: impl WebhookIds) -> Self {
        self.webhook.ids = Arc::new(ids);
        self
    }

    /// The liveness route's path (default `/healthz`), within the router.
    pub fn healthz_path(mut self, path: impl Into<String>) -> Self {
        self.healthz_path = path.into();
        self
    }

    /// The readiness route's path (default `/readyz`), within the router.
    pub fn readyz_path(mut self, path: impl Into<String>) -> Self {
        self.readyz_path = path.into();
        self
    }

    /// The router: `GET /install`, `GET /callback`, `POST /webhook`,
    /// `GET /healthz` and `GET /readyz`.
    pub fn into_router(self) -> Router {
        let webhook = Arc::new(WebhookState {
            route: self.webhook.clone(),
            service: self.service.clone(),
        });
        let path = self.webhook.path.clone();
        let health = Router::new()
            .route(&self.healthz_path, get(health::healthz))
            .route(&self.readyz_path, get(health::readyz))
            .with_state(self.service.clone());
        let key = match self.state_key.clone().map_or_else(StateKey::generate, Ok) {
            Ok(key) => Some(key),
            Err(e) => {
                tracing::error!(error = %e, "no state key: installs cannot start");
                None
            }
        };
        let binding = key.map(|key| {
            binding::Binding::new(key, self.state_ttl, self.service.config().redirect_uri())
        });
        let install_throttle = Arc::new(throttle::Throttle::new(
            self.install_limits,
            self.client_address.clone(),
            "install",
        ));
        let callback_throttle = Arc::new(throttle::Throttle::new(
            self.callback_limits,
            self.client_address.clone(),
            "callback",
        ));
        let shared = Arc::new(Routes {
            options: self,
            binding,
        });
        let hooks = Router::new()
            .route(&path, post(webhook::webhook))
            .layer(DefaultBodyLimit::max(webhook::BODY_LIMIT))
            .layer(map_response(count_too_large))
            .with_state(webhook);
        Router::new()
            .route(
                "/install",
                get(callback::install)
                    .layer(from_fn_with_state(install_throttle, throttle::throttle)),
            )
            .route(
                "/callback",
                get(callback::callback)
                    .layer(from_fn_with_state(callback_throttle, throttle::throttle)),
            )
            .with_state(shared)
            .merge(hooks)
            .merge(health)
    }
}

/// Counts the webhook deliveries refused for their size before the route
/// ran (the body limit answers `413` itself).
async fn count_too_large(response: Response) -> Response {
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        telemetry::webhook("too_large");
    }
    response
}

struct Routes {
    options: OAuthRouter,
    /// How states are bound to browsers; `None` when no key could be had.
    binding: Option<binding::Binding>,
}
