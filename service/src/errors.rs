//! Why a call of the token service failed.

use std::time::{Duration, SystemTime};

use hoopai_oauth::GrantId;

use crate::store::StoreError;
use crate::transport::TransportError;

/// Why [`TokenService::access_token`](crate::TokenService::access_token) has no token to give.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The service holds no grant of that id.
    #[error("unknown grant {0}")]
    UnknownGrant(GrantId),
    /// The location is not active (its refresh token survives: see
    /// `docs/highlevel-facts.md`, "Refusals of the token endpoint");
    /// the engine tries again at `until`.
    #[error("grant {grant} is suspended (location not active) until {until:?}")]
    Suspended {
        /// The grant.
        grant: GrantId,
        /// When the engine tries again.
        until: SystemTime,
    },
    /// The refresh token was refused: the app must be re-installed.
    #[error("grant {grant} needs re-authorization (re-install the app)")]
    ReauthorizationNeeded {
        /// The grant.
        grant: GrantId,
    },
    /// The client id or secret was rejected; nothing is refreshed.
    #[error("the client credentials were rejected; grant {grant} cannot be refreshed")]
    ConfigurationRejected {
        /// The grant.
        grant: GrantId,
    },
    /// The grant's refresh was refused with a 401 that does not name the
    /// client; its refresh token is kept and tried again at `until`. Have
    /// someone look at it (see [`EngineEvent::Unauthorized`](hoopai_oauth::EngineEvent::Unauthorized)).
    #[error(
        "grant {grant} was refused with HTTP 401; its refresh token is tried again at {until:?}"
    )]
    Unauthorized {
        /// The grant.
        grant: GrantId,
        /// When the engine tries again.
        until: SystemTime,
    },
    /// The grant's newest tokens cannot be written (or the lease its
    /// refresh needs): the store is failing. Nothing that depends on them
    /// is handed out; the engine writes again on its own backoff.
    #[error("the store is failing for grant {grant}: {message}")]
    StoreFailing {
        /// The grant.
        grant: GrantId,
        /// What the store last said (no secret).
        message: String,
    },
    /// No token came within the wait (a refresh is failing or slow).
    #[error("no token for grant {grant} within {waited:?}{}", .last_failure.as_ref().map(|f| format!("; last failure: {f}")).unwrap_or_default())]
    TimedOut {
        /// The grant.
        grant: GrantId,
        /// How long the caller waited.
        waited: Duration,
        /// The last failed refresh of the grant, if any (no secret).
        last_failure: Option<String>,
    },
    /// The service is shutting down or stopped.
    #[error("the token service is stopped")]
    Stopped,
}

/// Why a management call of the service failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The store failed (a read at start-up, a delete).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The core refused the input or classified the server's answer.
    #[error(transparent)]
    OAuth(#[from] hoopai_oauth::Error),
    /// The HTTP client got no answer.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The service holds no grant of that id.
    #[error("unknown grant {0}")]
    UnknownGrant(GrantId),
    /// A grant had no access token to lend (e.g. the Company grant of an
    /// installed-locations sync).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The grant is held but its record could not be written yet; the
    /// engine writes it again on its backoff ([`EngineEvent::WriteFailed`](hoopai_oauth::EngineEvent::WriteFailed)).
    #[error("the record of grant {grant} is not written yet ({message}); it is written again")]
    WritePending {
        /// The grant.
        grant: GrantId,
        /// What the store said (no secret).
        message: String,
    },
    /// The input cannot be served (e.g. a token answer naming no grant).
    #[error("{0}")]
    InvalidInput(String),
    /// The service is shutting down or stopped.
    #[error("the token service is stopped")]
    Stopped,
}

/// Why [`TokenService::send_authorized`](crate::TokenService::send_authorized) failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No access token (see [`TokenError`]).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The API call got no answer.
    #[error(transparent)]
    Transport(#[from] TransportError),
}
