//! What the driver hands back to the engine: the outcome of a send, of a
//! write, and of a read; why a grant is removed; and what the engine tells
//! about itself.

use std::fmt;
use std::time::Duration;

use crate::error::Error;
use crate::token::TokenResponse;

use super::record::GrantRecord;

/// The outcome of an [`Output::Send`](crate::Output::Send), handed back with
/// [`Engine::handle_send`](crate::Engine::handle_send).
// An outcome lives only for the call that hands it in.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
#[non_exhaustive]
pub enum SendOutcome {
    /// The server answered: status, headers and body, as received. The
    /// engine parses it (a refresh with
    /// [`parse_token_response`](crate::parse_token_response), a mint with
    /// [`parse_location_token_response`](crate::parse_location_token_response))
    /// and follows its `X-RateLimit-*` headers.
    Response(http::Response<Vec<u8>>),
    /// An answer the driver parsed already (for instance in another
    /// runtime). Its rate-limit headers are not seen, except through a 429's
    /// error.
    Parsed(Result<TokenResponse, Error>),
    /// No answer: the connection was refused or reset, or the HTTP client
    /// gave up. The text says what happened, for logs (no secret in it); the
    /// refresh is retried with the same refresh token. If an answer shows up
    /// later after all, hand it in as well: a success is still adopted.
    TransportError(String),
    /// The request was not dispatched by its `not_after`: it never went
    /// out. The engine starts the refresh again at once (in shared-store
    /// mode under a new lease), with the same refresh token.
    NotDispatched,
}

/// The outcome of an [`Output::Persist`](crate::Output::Persist), handed
/// back with [`Engine::handle_write`](crate::Engine::handle_write). Stores
/// return it as it is.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WriteOutcome {
    /// The record was written: the stored version was the one it replaces
    /// (or nothing was stored and it replaces nothing). A plain overwrite
    /// that succeeded is reported so too.
    Written,
    /// Not written: the store holds another version of the grant's record.
    /// Here it is.
    Conflict(Box<GrantRecord>),
    /// Not written: the write replaces a version, but the store holds no
    /// record of the grant at all (another process removed it).
    NoRecord,
    /// Not written, or not known to be: the store failed (down, locked past
    /// its timeout, the transaction rolled back, the call timed out). The
    /// engine writes again on its own backoff.
    Failed(StoreFailure),
}

/// Why a store call failed, as the store said it: for logs, events and the
/// callers of a grant whose write is failing. Capped at 200 characters and
/// sanitized when made, so it holds no token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFailure {
    message: Box<str>,
}

impl StoreFailure {
    /// A failure with the store's message.
    #[must_use]
    pub fn new(message: impl fmt::Display) -> Self {
        let text = crate::sanitize::sanitize_message(&message.to_string());
        let mut capped: String = text.chars().take(crate::sanitize::EXCERPT_CHARS).collect();
        if text.chars().count() > crate::sanitize::EXCERPT_CHARS {
            capped.push('…');
        }
        if capped.is_empty() {
            capped.push_str("the store failed");
        }
        StoreFailure {
            message: capped.into_boxed_str(),
        }
    }

    /// The store's message (sanitized, capped).
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for StoreFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Why a grant leaves the engine ([`Engine::remove`](crate::Engine::remove)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Removal {
    /// The app was uninstalled from it (an UNINSTALL webhook, the
    /// installed-locations list, the app's own decision). Its tokens are
    /// wiped from memory; a Company grant takes every Location grant minted
    /// from it along; each removed grant gets an
    /// [`Output::Delete`](crate::Output::Delete).
    Uninstalled,
    /// The store holds no record of it any more (another process removed
    /// it, seen by a change feed of the driver's own). Forgotten, with
    /// [`EngineEvent::RemovedElsewhere`](crate::EngineEvent::RemovedElsewhere).
    DeletedElsewhere,
    /// The grant leaves this engine but stays installed: its record is left
    /// as it is (for instance, another process takes it over). Should it
    /// come back while a refresh of it is out, or while tokens it received
    /// are not yet written, it goes on as if it had never left: those
    /// tokens are the only copy of the newest refresh token, and their
    /// write is queued again when it comes back.
    Released,
}

/// Figures about the engine as a whole, from [`Engine::stats`](crate::Engine::stats).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct EngineStats {
    /// Grants held.
    pub grants: usize,
    /// Requests handed out and neither answered nor given up on. A driver
    /// shutting down cleanly waits for this to reach zero.
    pub in_flight: usize,
    /// Sends waiting for the request budget now.
    pub waiting_for_budget: usize,
    /// Sends that have waited for the request budget since the engine started.
    pub waited_for_budget: u64,
    /// Grants whose last write failed and is to be written again.
    pub writes_failing: usize,
    /// Grants holding changes the store does not have yet: a write out, or
    /// failed and to be written again.
    pub unwritten: usize,
    /// Whether the client credentials were rejected: nothing is sent until
    /// [`Engine::reconfigure`](crate::Engine::reconfigure).
    pub halted: bool,
    /// The request budget: requests per interval.
    pub budget_max: u32,
    /// The request budget's interval.
    pub budget_interval: Duration,
}
