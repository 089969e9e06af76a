//! What the engine tells the caller: outputs to act on, events to report, and
//! the answer to "may I have an access token?".

use std::fmt;
use std::time::SystemTime;

use crate::error::Error;
use crate::secret::AccessToken;
use crate::token::unix;

use super::record::{GrantId, GrantRecord};

/// The id of one emitted refresh request. Hand it back with the answer.
///
/// Ids are unique within one engine.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub(crate) u64);

impl RequestId {
    pub(crate) fn new(seq: u32, slot: u32) -> Self {
        RequestId((u64::from(seq) << 32) | u64::from(slot))
    }

    pub(crate) fn seq(self) -> u32 {
        (self.0 >> 32) as u32
    }

    pub(crate) fn slot(self) -> u32 {
        (self.0 & 0xFFFF_FFFF) as u32
    }

    /// The id as a number, e.g. to key a map of in-flight requests.
    #[must_use]
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// Rebuilds an id from [`as_u64`](Self::as_u64).
    #[must_use]
    pub fn from_u64(raw: u64) -> Self {
        RequestId(raw)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.seq())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId(#{})", self.seq())
    }
}

/// What the caller must do next. Drained with
/// [`Engine::poll_output`](crate::Engine::poll_output); act on them in order.
// Outputs live only between a poll and the caller acting on them.
#[allow(clippy::large_enum_variant)]
#[non_exhaustive]
pub enum Output {
    /// Send this request (a refresh at `POST /oauth/token`), then hand the
    /// answer back with [`Engine::handle_response`](crate::Engine::handle_response),
    /// or a failure to get one with
    /// [`Engine::handle_transport_error`](crate::Engine::handle_transport_error).
    Send {
        /// The id to hand back.
        id: RequestId,
        /// The grant being refreshed.
        grant: GrantId,
        /// The request. Its body holds the client secret and the refresh token.
        request: http::Request<Vec<u8>>,
    },
    /// Write this record, durably, before acting on any later output.
    ///
    /// - Single-process mode: overwrite the grant's record.
    /// - Shared-store mode: compare-and-swap: write only if the stored version
    ///   is `replaces` (`None`: only if there is no record yet), then call
    ///   [`Engine::handle_persisted`](crate::Engine::handle_persisted) if it
    ///   won, or [`Engine::handle_persist_conflict`](crate::Engine::handle_persist_conflict)
    ///   with the stored record if it lost.
    Persist {
        /// The grant.
        grant: GrantId,
        /// The record to write; `record.version` is its new version.
        record: GrantRecord,
        /// The version this write replaces, for compare-and-swap.
        replaces: Option<u64>,
    },
    /// Something to tell the user or log.
    Event(Event),
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Send { id, grant, request } => f
                .debug_struct("Send")
                .field("id", id)
                .field("grant", grant)
                .field("method", request.method())
                .field("uri", request.uri())
                .field("body_bytes", &request.body().len())
                .finish(),
            Output::Persist {
                grant,
                record,
                replaces,
            } => f
                .debug_struct("Persist")
                .field("grant", grant)
                .field("record", record)
                .field("replaces", replaces)
                .finish(),
            Output::Event(e) => f.debug_tuple("Event").field(e).finish(),
        }
    }
}

/// Why a retry was scheduled.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Failure {
    /// The request went unanswered for the request timeout.
    TimedOut,
    /// The caller reported that the request could not be completed.
    Transport,
    /// The server answered with an error (rate limit, server error, an
    /// unreadable answer, or another refusal).
    Answer(Error),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::TimedOut => f.write_str("timed out"),
            Failure::Transport => f.write_str("transport error"),
            Failure::Answer(e) => write!(f, "{e}"),
        }
    }
}

/// Something that happened to a grant, for the user or the log.
///
/// Every event that follows new tokens comes after the
/// [`Output::Persist`] that holds them.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// Callers that were told [`TokenStatus::Pending`] may ask again: an access
    /// token is ready.
    TokenReady {
        /// The grant.
        grant: GrantId,
        /// When the access token expires.
        expires_at: SystemTime,
    },
    /// A refresh succeeded; the new tokens were handed out for persistence.
    Refreshed {
        /// The grant.
        grant: GrantId,
        /// When the new access token expires.
        expires_at: SystemTime,
    },
    /// Newer tokens were taken from the shared store (another engine refreshed).
    Adopted {
        /// The grant.
        grant: GrantId,
        /// When the adopted access token expires.
        expires_at: SystemTime,
    },
    /// Another engine holds the refresh lease; this one waits until it ends.
    LeaseHeldElsewhere {
        /// The grant.
        grant: GrantId,
        /// Who holds the lease.
        holder: String,
        /// When the lease ends and this engine looks again.
        until: SystemTime,
    },
    /// The location is not active. The refresh token is kept and tried again
    /// at `until`.
    Suspended {
        /// The grant.
        grant: GrantId,
        /// When the next attempt is due.
        until: SystemTime,
        /// The server's answer.
        error: Error,
    },
    /// The refresh was refused with a 401 that does not name the client
    /// credentials ([`ErrorKind::GrantUnauthorized`](crate::ErrorKind::GrantUnauthorized)).
    /// It concerns this grant alone: its refresh token is kept, the grant is
    /// parked (persisted as [`GrantStatus::Unauthorized`](crate::GrantStatus::Unauthorized))
    /// and tried again at `until` (see
    /// [`EngineSettings::unauthorized_retry`](crate::EngineSettings::unauthorized_retry)),
    /// and the other grants go on. Have someone look at it; a new
    /// authorization ([`Engine::insert`](crate::Engine::insert)) replaces it.
    Unauthorized {
        /// The grant.
        grant: GrantId,
        /// When its refresh token is tried again.
        until: SystemTime,
        /// The server's answer.
        error: Error,
    },
    /// The grant is gone: the user must re-authorize (re-install) the app.
    /// Nothing is retried.
    ReauthorizationNeeded {
        /// The grant.
        grant: GrantId,
        /// The server's answer.
        error: Error,
    },
    /// The client id or secret was rejected. The engine sends nothing more,
    /// for any grant, until [`Engine::reconfigure`](crate::Engine::reconfigure).
    ///
    /// Also raised, with an error of kind
    /// [`InvalidClient`](crate::ErrorKind::InvalidClient) that keeps the
    /// server's answer, when several distinct grants in a row are refused
    /// with a 401 that does not name the client (see
    /// [`EngineSettings::unauthorized_halt_after`](crate::EngineSettings::unauthorized_halt_after)).
    ConfigurationRejected {
        /// The grant whose refresh showed it.
        grant: GrantId,
        /// The server's answer.
        error: Error,
    },
    /// A refresh failed and will be tried again at `at`, with the same
    /// refresh token.
    RetryScheduled {
        /// The grant.
        grant: GrantId,
        /// When the retry is due.
        at: SystemTime,
        /// Retries in a row so far (rate-limit waits do not count).
        attempt: u32,
        /// What went wrong.
        failure: Failure,
    },
}

impl Event {
    /// The grant the event is about.
    #[must_use]
    pub fn grant(&self) -> &GrantId {
        match self {
            Event::TokenReady { grant, .. }
            | Event::Refreshed { grant, .. }
            | Event::Adopted { grant, .. }
            | Event::LeaseHeldElsewhere { grant, .. }
            | Event::Suspended { grant, .. }
            | Event::Unauthorized { grant, .. }
            | Event::ReauthorizationNeeded { grant, .. }
            | Event::ConfigurationRejected { grant, .. }
            | Event::RetryScheduled { grant, .. } => grant,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::TokenReady { grant, expires_at } => {
                write!(f, "{grant}: token ready, expires at {}", unix(*expires_at))
            }
            Event::Refreshed { grant, expires_at } => {
                write!(f, "{grant}: refreshed, expires at {}", unix(*expires_at))
            }
            Event::Adopted { grant, expires_at } => write!(
                f,
                "{grant}: adopted tokens from the store, expires at {}",
                unix(*expires_at)
            ),
            Event::LeaseHeldElsewhere {
                grant,
                holder,
                until,
            } => write!(
                f,
                "{grant}: {holder} is refreshing; looking again at {}",
                unix(*until)
            ),
            Event::Suspended {
                grant,
                until,
                error,
            } => write!(f, "{grant}: suspended until {}: {error}", unix(*until)),
            Event::Unauthorized {
                grant,
                until,
                error,
            } => write!(
                f,
                "{grant}: refresh refused, parked until {}: {error}",
                unix(*until)
            ),
            Event::ReauthorizationNeeded { grant, error } => {
                write!(f, "{grant}: re-authorization needed: {error}")
            }
            Event::ConfigurationRejected { grant, error } => {
                write!(f, "{grant}: configuration rejected: {error}")
            }
            Event::RetryScheduled {
                grant,
                at,
                attempt,
                failure,
            } => write!(f, "{grant}: retry {attempt} at {}: {failure}", unix(*at)),
        }
    }
}

/// The answer of [`Engine::access_token`](crate::Engine::access_token).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TokenStatus {
    /// A valid access token.
    Ready(AccessToken),
    /// No valid token right now; a refresh is in flight or scheduled. Wait for
    /// [`Event::TokenReady`] (or another event about the grant) and ask again.
    Pending,
    /// The location is not active; the engine tries again at `until`.
    Suspended {
        /// When the next attempt is due.
        until: SystemTime,
    },
    /// The grant's refresh was refused with a 401 that does not name the
    /// client; the engine tries its refresh token again at `until`. See
    /// [`Event::Unauthorized`].
    Unauthorized {
        /// When the next attempt is due.
        until: SystemTime,
    },
    /// The grant is gone; the user must re-authorize the app.
    ReauthorizationNeeded,
    /// The token expired and the client credentials were rejected; see
    /// [`Event::ConfigurationRejected`].
    ConfigurationRejected,
}
