//! A sans-IO client for the OAuth 2.0 API of HoopAI / HighLevel (LeadConnector),
//! `https://services.leadconnectorhq.com`.
//!
//! The crate does no I/O, reads no clock and draws no randomness:
//!
//! - request builders turn typed inputs into `http::Request<Vec<u8>>`:
//!   [`token_request`], [`location_token_request`], [`installed_locations_request`],
//!   and the consent URL ([`ConsentRequest`]);
//! - parsers turn `http::Response` bytes into typed answers or one typed
//!   [`Error`] with a stable [`ErrorKind`]: [`parse_token_response`],
//!   [`parse_location_token_response`], [`parse_installed_locations`],
//!   [`parse_callback`];
//! - install webhooks are verified over their raw bytes, parsed into typed
//!   events and checked for replays by [`WebhookVerifier`];
//! - a [`RequestBudget`] paces requests to HighLevel's rate limit (100 per
//!   10 s by default), following the server's `X-RateLimit-*` headers;
//! - the [`Engine`] runs the token lifecycle for many grants: refresh-ahead,
//!   single-flight, rotation-safe persistence, retries, shared-store leases.
//!
//! Your runtime moves the bytes and supplies the time, so the same code serves
//! tokio, a blocking client, WASM `fetch`, or a test harness with no network.
//! The `fake-server` feature adds `fake::FakeServer`, a sans-IO
//! fake of every endpoint for tests.
//!
//! # Secrets
//!
//! The client secret, access and refresh tokens and the authorization code
//! ([`ClientSecret`], [`AccessToken`], [`RefreshToken`],
//! [`AuthorizationCode`]) are newtypes. Each one:
//! - prints a redaction from `Debug` and `Display` (`ab12…(31 chars)`),
//! - hands its value out only through an explicit [`secret()`](ClientSecret::secret) call,
//! - is zeroized when dropped,
//! - serializes as its plain value, so a token set can be persisted. Treat the
//!   serialized form as the secret it is.
//!
//! Access and refresh tokens also have a [`fingerprint`](RefreshToken::fingerprint):
//! a short, stable, non-secret digest for telling tokens apart in logs.
//!
//! # A run loop
//!
//! A blocking driver is a short loop. `send` stands in for your HTTP client
//! (`ureq`, `reqwest::blocking`, …) and the map for your store; here the clock
//! is simulated so the example runs instantly, where a real driver sleeps until
//! the next deadline.
//!
//! ```
//! use std::collections::HashMap;
//! use std::time::{Duration, UNIX_EPOCH};
//! use hoopai_oauth::{
//!     AccessToken, Config, Engine, EngineSettings, GrantRecord, Output, RefreshToken,
//!     SendOutcome, TokenResponse, TokenSet, TokenStatus, WriteOutcome,
//! };
//!
//! // Stand-in for an HTTP client: every refresh gets new tokens.
//! let mut issued = 0;
//! let mut send = |request: &http::Request<Vec<u8>>| -> std::io::Result<http::Response<Vec<u8>>> {
//!     assert_eq!(request.uri().path(), "/oauth/token");
//!     issued += 1;
//!     let body = format!(
//!         r#"{{"access_token":"access-placeholder-{issued:032}","token_type":"Bearer",
//!             "expires_in":86399,"refresh_token":"refresh-placeholder-{issued:032}",
//!             "userType":"Location","locationId":"loc-1"}}"#
//!     );
//!     Ok(http::Response::builder().status(200).body(body.into_bytes()).unwrap())
//! };
//! // Stand-in for a store: grant id -> record as JSON.
//! let mut store: HashMap<String, String> = HashMap::new();
//!
//! let config = Config::builder("my-client-id", "my-client-secret").build()?;
//! let mut engine = Engine::new(config, EngineSettings::default().jitter_seed(42));
//! let mut now = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
//!
//! // A grant from a code exchange (normally `parse_token_response` of the answer).
//! let mut first = TokenResponse::new(AccessToken::new("access-placeholder-0"));
//! first.refresh_token = Some(RefreshToken::new("refresh-placeholder-0"));
//! first.expires_in = Some(86_399);
//! engine.insert("loc-1", TokenSet::new(first, now), now)?;
//!
//! let end = now + Duration::from_secs(3 * 86_400);
//! loop {
//!     // 1. Act on every output, in order.
//!     while let Some(output) = engine.poll_output(now) {
//!         match output {
//!             Output::Persist { record, .. } => {
//!                 // It may hold the only live refresh token: write it, then
//!                 // report the outcome (a failed write: WriteOutcome::Failed).
//!                 store.insert(record.grant.to_string(), serde_json::to_string(&record).unwrap());
//!                 engine.handle_write(record.grant.as_str(), record.version, WriteOutcome::Written, now)?;
//!             }
//!             Output::Send { id, request, .. } => {
//!                 let outcome = match send(&request) {
//!                     Ok(response) => SendOutcome::Response(response),
//!                     Err(e) => SendOutcome::TransportError(e.to_string()),
//!                 };
//!                 engine.handle_send(id, outcome, now)?;
//!             }
//!             Output::Event(event) => println!("{event}"),
//!             _ => {}
//!         }
//!     }
//!     // 2. Use the token whenever you need it.
//!     match engine.access_token("loc-1", now)? {
//!         TokenStatus::Ready(token) => { let _bearer = token.secret(); }
//!         TokenStatus::Pending => { /* wait for Event::TokenReady */ }
//!         other => println!("loc-1: {other:?}"),
//!     }
//!     // 3. Sleep until the next deadline, then handle it.
//!     let Some(next) = engine.poll_timeout() else { break };
//!     if next > end {
//!         break;
//!     }
//!     // A real driver sleeps here:
//!     // std::thread::sleep(next.duration_since(std::time::SystemTime::now()).unwrap_or_default());
//!     now = next;
//!     engine.handle_timeout(now)?;
//! }
//!
//! // Three days, three refreshes; the store holds the newest refresh token.
//! let record: GrantRecord = serde_json::from_str(&store["loc-1"]).unwrap();
//! assert_eq!(record.refresh_token().unwrap().secret(), format!("refresh-placeholder-{:032}", 3));
//! # Ok::<(), hoopai_oauth::Error>(())
//! ```
//!
//! An async driver is the same loop: spawn each send, feed answers back
//! through a channel, and wait for whichever comes first, an answer or
//! `poll_timeout`'s instant. Several refreshes may be in flight at once (for
//! different grants); each answer goes back with its [`RequestId`].
//!
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// Every module is private: the crate's API is the list below, one path per
// item. (`fake`, behind the `fake-server` feature, is a namespace of its own.)
mod bearer;
mod config;
mod consent;
mod engine;
mod error;
#[cfg(feature = "fake-server")]
pub mod fake;
mod form;
mod installed_locations;
mod location_token;
mod rate_limit;
mod request_budget;
mod response;
mod sanitize;
mod scope;
mod secret;
mod time;
mod token;
mod token_endpoint;
mod webhook;

// Configuration and secrets.
pub use config::{
    ApiVersion, Config, ConfigBuilder, DEFAULT_BASE_URL, DEFAULT_CONSENT_URL,
    MAX_REDIRECT_URI_BYTES, TOKEN_PATH, WHITE_LABEL_CONSENT_URL,
};
pub use secret::{
    AccessToken, AuthorizationCode, ClientSecret, FINGERPRINT_MIN_LEN, Fingerprint, RefreshToken,
    redact,
};

// Tokens, scopes and errors, shared by every endpoint.
pub use error::{Endpoint, Error, ErrorClass, ErrorKind, Unreadable};
pub use response::MAX_BODY_BYTES;
pub use sanitize::{EXCERPT_CHARS, MAX_MESSAGES};
pub use scope::Scope;
pub use token::{
    DEFAULT_LIFETIME, LenientBool, MAX_LIFETIME, Scopes, TokenResponse, TokenSet, UserType,
};

// The endpoints: a builder and a parser each.
pub use bearer::CompanyBearer;
pub use consent::{ConsentRequest, ConsentState, MAX_CALLBACK_BYTES, consent_url, parse_callback};
pub use installed_locations::{
    DEFAULT_PAGE_SIZE, INSTALLED_LOCATIONS_PATH, INSTALLED_LOCATIONS_PATH_V3, InstalledLocation,
    InstalledLocationsPage, InstalledLocationsQuery, MAX_PAGE_SIZE_V3, Pagination,
    installed_locations_path, installed_locations_request, parse_installed_locations,
};
pub use location_token::{
    LOCATION_TOKEN_PATH, LOCATION_TOKEN_PATH_V3, LOCATION_TOKEN_REQUIRED_FIELDS,
    LocationTokenRequest, location_token_path, location_token_request,
    missing_location_token_fields, parse_location_token_response,
};
pub use token_endpoint::{GrantType, TokenRequest, parse_token_response, token_request};

// Rate limits and the request budget.
pub use rate_limit::{
    Clamped, MAX_RATE_LIMIT_INTERVAL, MAX_RETRY_AFTER, RateLimit, RetryAfter, parse_retry_after,
};
pub use request_budget::{
    BUDGET_MAX_ADOPTED, BUDGET_MIN_INTERVAL, DEFAULT_BUDGET_MARGIN, HIGHLEVEL_BURST_INTERVAL,
    HIGHLEVEL_BURST_MAX, RequestBudget,
};

// Install webhooks.
pub use webhook::{
    DEFAULT_REPLAY_WINDOW, DEFAULT_SEEN_CAPACITY, DEFAULT_SEEN_MAX_BYTES,
    HIGHLEVEL_WEBHOOK_PUBLIC_KEY, InstallEvent, InstallTarget, LEGACY_SIGNATURE_HEADER,
    MAX_WEBHOOK_BYTES, MAX_WEBHOOK_ID_BYTES, Recorded, SIGNATURE_HEADER, SeenWebhooks, Trial,
    UninstallEvent, UninstallTarget, WebhookEvent, WebhookIdStore, WebhookKey, WebhookKeys,
    WebhookPayload, WebhookVerifier, WhitelabelDetails, parse_webhook,
};

// The engine.
pub use engine::{
    ABANDONED_MEMORY, BudgetClaim, BudgetKeying, ClaimOutcome, Engine, EngineEvent, EngineSettings,
    EngineStats, GrantId, GrantRecord, GrantStatus, GrantView, Grants, HOLDERS_WINDOWS,
    InstallChanges, Lease, LocationDiff, MAX_GRANT_ID_BYTES, MAX_RECORD_TIME, MAX_RECORD_VERSION,
    Output, RECORD_SCHEMA, RESCUED_MEMORY, RefreshFailure, Removal, RequestId, SendOutcome,
    StoreFailure, TokenStatus, WriteOutcome, diff_installed_locations,
};

/// The README's code samples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The code samples of `docs/engine.md`, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/engine.md")]
pub struct EngineGuideDoctests;

/// The code samples of `docs/requests.md`, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/requests.md")]
pub struct RequestsGuideDoctests;

/// The code samples of `docs/webhooks.md`, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/webhooks.md")]
pub struct WebhooksGuideDoctests;
