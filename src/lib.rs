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
//! Secrets ([`ClientSecret`], [`AccessToken`], [`RefreshToken`],
//! [`AuthorizationCode`]) print as redactions and are read with `.secret()`.
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

pub mod bearer;
pub mod config;
pub mod consent;
pub mod engine;
pub mod error;
#[cfg(feature = "fake-server")]
pub mod fake;
mod form;
pub mod installed_locations;
pub mod location_token;
pub mod rate_limit;
pub mod request_budget;
mod response;
mod sanitize;
pub mod scope;
pub mod secret;
pub mod token;
pub mod token_endpoint;
pub mod webhook;

pub use bearer::*;
pub use config::*;
pub use consent::*;
pub use engine::*;
pub use error::*;
pub use installed_locations::*;
pub use location_token::*;
pub use rate_limit::*;
pub use request_budget::*;
pub use response::MAX_BODY_BYTES;
pub use sanitize::{EXCERPT_CHARS, MAX_MESSAGES};
pub use scope::*;
pub use secret::*;
pub use token::*;
pub use token_endpoint::*;
pub use webhook::*;

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
