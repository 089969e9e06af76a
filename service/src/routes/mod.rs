//! The app's OAuth routes (feature `axum`): install, callback and the
//! install webhooks, mountable in your own axum app.
//!
//! | Route | Does |
//! |---|---|
//! | `POST /webhook` | verifies the signed delivery over its raw bytes, refuses replays, and acts on it: see [`webhook`] |
//! | `GET /install` | draws a fresh `state` (16 random bytes from the OS), remembers it, and redirects (`302`) to the consent page |
//! | `GET /callback` | checks the `state` (known, unused, not expired; compared in constant time), exchanges the `code`, stores the grant, and answers `200` (or redirects to your success page) |
//!
//! ```no_run
//! # async fn run(service: hoopai_oauth_service::TokenService) -> std::io::Result<()> {
//! use hoopai_oauth::Scope;
//! use hoopai_oauth_service::OAuthRouter;
//!
//! // The config's redirect URI must be this app's `/oauth/callback`.
//! let app = axum::Router::new().nest(
//!     "/oauth",
//!     OAuthRouter::new(service, [Scope::CONTACTS_READONLY]).into_router(),
//! );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! Refusals are `400` with the core's sanitized message (no code, no state,
//! no token). A consent the user denied is `400` too. Per FACTS.md HighLevel
//! does not document echoing the `state`; a callback without one is refused
//! unless [`OAuthRouter::allow_missing_state`] is set.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State as Shared;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hoopai_oauth::{ConsentRequest, Scope, State, UserType, WebhookVerifier, parse_callback};

use crate::service::TokenService;

pub mod webhook;

pub use webhook::{RecordFuture, WebhookIds};
use webhook::{WebhookRoute, WebhookState};

/// At most this many states wait for their callback; the oldest go first.
const MAX_PENDING: usize = 10_000;

/// Builds the OAuth router; see the [module docs](self).
#[must_use]
#[derive(Debug)]
pub struct OAuthRouter {
    service: TokenService,
    scopes: Vec<Scope>,
    user_type: Option<UserType>,
    state_ttl: Duration,
    allow_missing_state: bool,
    success_redirect: Option<String>,
    webhook: WebhookRoute,
}

impl OAuthRouter {
    /// Routes for `service`, asking consent for `scopes`.
    ///
    /// The webhook route is served at `/webhook`, trusting HighLevel's
    /// published key ([`WebhookVerifier::new`]) and remembering the ids
    /// accepted in memory; see [`webhook_verifier`](Self::webhook_verifier),
    /// [`webhook_path`](Self::webhook_path) and [`webhook_ids`](Self::webhook_ids).
    pub fn new(service: TokenService, scopes: impl IntoIterator<Item = Scope>) -> Self {
        let webhook = WebhookRoute::new(WebhookVerifier::new(service.config()));
        OAuthRouter {
            webhook,
            service,
            scopes: scopes.into_iter().collect(),
            user_type: None,
            state_ttl: Duration::from_secs(10 * 60),
            allow_missing_state: false,
            success_redirect: None,
        }
    }

    /// The `user_type` of the code exchange (`Company` for agency installs).
    pub fn user_type(mut self, user_type: UserType) -> Self {
        self.user_type = Some(user_type);
        self
    }

    /// How long a state waits for its callback (default 10 min).
    pub fn state_ttl(mut self, ttl: Duration) -> Self {
        self.state_ttl = ttl;
        self
    }

    /// Accept a callback that carries no `state` at all (one that carries an
    /// unknown state is still refused). Off by default: without a state, a
    /// forged redirect can install someone else's grant in this app.
    pub fn allow_missing_state(mut self, allow: bool) -> Self {
        self.allow_missing_state = allow;
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

    /// Where accepted `webhookId`s are recorded (default: in memory, this
    /// process only). Several processes behind one webhook URL need a
    /// shared store: see [`WebhookIds`].
    pub fn webhook_ids(mut self, ids: impl WebhookIds) -> Self {
        self.webhook.ids = Arc::new(ids);
        self
    }

    /// The router: `GET /install`, `GET /callback` and `POST /webhook`.
    pub fn into_router(self) -> Router {
        let webhook = Arc::new(WebhookState {
            route: self.webhook.clone(),
            service: self.service.clone(),
        });
        let path = self.webhook.path.clone();
        let shared = Arc::new(Routes {
            options: self,
            pending: Mutex::new(HashMap::new()),
        });
        let hooks = Router::new()
            .route(&path, post(webhook::webhook))
            .layer(DefaultBodyLimit::max(webhook::BODY_LIMIT))
            .with_state(webhook);
        Router::new()
            .route("/install", get(install))
            .route("/callback", get(callback))
            .with_state(shared)
            .merge(hooks)
    }
}

struct Routes {
    options: OAuthRouter,
    /// States handed out, with when.
    pending: Mutex<HashMap<String, Instant>>,
}

impl Routes {
    fn remember(&self, state: &State) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let ttl = self.options.state_ttl;
        pending.retain(|_, at| at.elapsed() < ttl);
        if pending.len() >= MAX_PENDING
            && let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(s, _)| s.clone())
        {
            pending.remove(&oldest);
        }
        pending.insert(state.as_str().to_owned(), Instant::now());
    }

    /// Takes a state out (single use) if it was handed out and is not expired.
    fn take(&self, state: &str) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending
            .remove(state)
            .is_some_and(|at| at.elapsed() < self.options.state_ttl)
    }
}

fn refuse(status: StatusCode, message: impl std::fmt::Display) -> Response {
    tracing::warn!(status = status.as_u16(), %message, "oauth callback refused");
    (status, format!("{message}\n")).into_response()
}

async fn install(Shared(routes): Shared<Arc<Routes>>) -> Response {
    let mut random = [0u8; 16];
    if let Err(e) = getrandom::fill(&mut random) {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("no randomness: {e}"),
        );
    }
    let state = match State::from_random_bytes(&random) {
        Ok(state) => state,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let url = ConsentRequest::new(routes.options.scopes.iter().cloned())
        .state(state.clone())
        .build(routes.options.service.config());
    match url {
        Ok(url) => {
            routes.remember(&state);
            (StatusCode::FOUND, [(header::LOCATION, url)]).into_response()
        }
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn callback(Shared(routes): Shared<Arc<Routes>>, uri: Uri) -> Response {
    let redirect = uri.to_string();
    let query = uri.query().unwrap_or("");
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let state = pairs
        .iter()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.as_str());
    let expected = match state {
        Some(s) => {
            if !routes.take(s) {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "unknown, expired or already used state: start the install again",
                );
            }
            match State::new(s) {
                Ok(state) => Some(state),
                Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
            }
        }
        None if routes.options.allow_missing_state => None,
        None => return refuse(StatusCode::BAD_REQUEST, "the callback carries no state"),
    };
    let code = match parse_callback(&redirect, expected.as_ref()) {
        Ok(code) => code,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let grant = match routes
        .options
        .service
        .exchange_code(code, routes.options.user_type.clone())
        .await
    {
        Ok(grant) => grant,
        Err(e) => return refuse(StatusCode::BAD_GATEWAY, e),
    };
    tracing::info!(grant = %grant, "installed");
    match &routes.options.success_redirect {
        Some(url) => (StatusCode::FOUND, [(header::LOCATION, url.clone())]).into_response(),
        None => (StatusCode::OK, format!("installed: {grant}\n")).into_response(),
    }
}
