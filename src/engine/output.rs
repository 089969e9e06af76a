//! What the engine tells the caller: outputs to act on, events to report, and
//! the answer to "may I have an access token?".

use std::fmt;
use std::time::SystemTime;

use super::claim::BudgetClaim;
use super::outcome::StoreFailure;
use crate::error::Error;
use crate::rate_limit::Clamped;
use crate::secret::{AccessToken, Fingerprint};
use crate::time::unix;

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
/// [`Engine::poll_output`](crate::Engine::poll_output).
///
/// Each output that asks for I/O has exactly one way back: a
/// [`Send`](Output::Send)'s outcome through
/// [`Engine::handle_send`](crate::Engine::handle_send), a
/// [`Persist`](Output::Persist)'s through
/// [`Engine::handle_write`](crate::Engine::handle_write), a
/// [`Load`](Output::Load)'s through
/// [`Engine::handle_load`](crate::Engine::handle_load), a
/// [`Claim`](Output::Claim)'s through
/// [`Engine::handle_claim`](crate::Engine::handle_claim). Act on the outputs of
/// one grant in order; those of different grants may be acted on
/// concurrently: the engine emits nothing that depends on a write before
/// that write's outcome is handed back.
// Outputs live only between a poll and the caller acting on them.
#[allow(clippy::large_enum_variant)]
#[non_exhaustive]
pub enum Output {
    /// Send this request (a refresh at `POST /oauth/token`, or a mint of a
    /// Location grant at `POST /oauth/locationToken`), then hand its
    /// outcome back with [`Engine::handle_send`](crate::Engine::handle_send):
    /// the answer, or the failure to get one.
    ///
    /// Dispatch it no later than `not_after`; a driver that could not (its
    /// sends wait in a queue) drops it and reports
    /// [`SendOutcome::NotDispatched`](crate::SendOutcome::NotDispatched).
    /// In shared-store mode, `not_after` is a request timeout before the
    /// lease ends, so that the answer is in while the lease holds.
    #[non_exhaustive]
    Send {
        /// The id to hand back.
        id: RequestId,
        /// The grant being refreshed.
        grant: GrantId,
        /// The request. Its body holds the client secret and the refresh token.
        request: http::Request<Vec<u8>>,
        /// The latest instant the request may still be dispatched.
        not_after: SystemTime,
        /// The fingerprint of the refresh token presented, for logs.
        refresh: Fingerprint,
    },
    /// Write this record durably, then hand the outcome back with
    /// [`Engine::handle_write`](crate::Engine::handle_write) (with
    /// `record.grant` and `record.version`).
    ///
    /// Write it by compare-and-swap: only if the stored version is
    /// `replaces` (`None`: only if there is no record yet). A store that is
    /// the engine's alone (single-process mode) may overwrite instead. Until
    /// the outcome comes back, the engine hands out no access token that
    /// depends on the record and sends no refresh that would spend the
    /// refresh token it replaces; a failed write is written again on the
    /// engine's own backoff.
    #[non_exhaustive]
    Persist {
        /// The record to write; `record.grant` is the grant and
        /// `record.version` its new version.
        record: GrantRecord,
        /// The version this write replaces, for compare-and-swap.
        replaces: Option<u64>,
        /// The fingerprint of the refresh token in `record`, for logs.
        refresh: Fingerprint,
    },
    /// Read the grant's record as the store holds it now and hand it back
    /// with [`Engine::handle_load`](crate::Engine::handle_load) (`None` if
    /// there is none). Shared-store mode: asked before a refusal is taken as
    /// the grant's loss, and while waiting (for a lease held elsewhere, for
    /// re-authorization), every [`EngineSettings::reread_interval`](crate::EngineSettings::reread_interval).
    #[non_exhaustive]
    Load {
        /// The grant.
        grant: GrantId,
    },
    /// Delete the grant's record: it was uninstalled
    /// ([`Removal::Uninstalled`](crate::Removal::Uninstalled),
    /// [`Engine::handle_webhook`](crate::Engine::handle_webhook)). The engine
    /// forgot the grant and wiped its tokens. In shared-store mode, other
    /// engines learn it from a write or read that finds no record.
    #[non_exhaustive]
    Delete {
        /// The grant.
        grant: GrantId,
    },
    /// Claim tokens of the request budget shared through the store
    /// ([`EngineSettings::shared_budget`](crate::EngineSettings::shared_budget)),
    /// then hand the store's answer back with
    /// [`Engine::handle_claim`](crate::Engine::handle_claim) (with
    /// [`BudgetClaim::key`]). The sends it is for wait until then; one
    /// claim per budget is out at a time.
    Claim(BudgetClaim),
    /// Something to tell the user or log.
    Event(EngineEvent),
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Send {
                id,
                grant,
                request,
                not_after,
                refresh,
            } => f
                .debug_struct("Send")
                .field("id", id)
                .field("grant", grant)
                .field("method", request.method())
                .field("uri", request.uri())
                .field("body_bytes", &request.body().len())
                .field("not_after", &unix(*not_after))
                .field("refresh", refresh)
                .finish(),
            Output::Persist {
                record,
                replaces,
                refresh,
            } => f
                .debug_struct("Persist")
                .field("record", record)
                .field("replaces", replaces)
                .field("refresh", refresh)
                .finish(),
            Output::Load { grant } => f.debug_struct("Load").field("grant", grant).finish(),
            Output::Delete { grant } => f.debug_struct("Delete").field("grant", grant).finish(),
            Output::Claim(c) => f.debug_tuple("Claim").field(c).finish(),
            Output::Event(e) => f.debug_tuple("Event").field(e).finish(),
        }
    }
}

/// Why a retry was scheduled.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RefreshFailure {
    /// The request went unanswered for the request timeout.
    TimedOut,
    /// The driver reported that the request got no answer
    /// ([`SendOutcome::TransportError`](crate::SendOutcome::TransportError)),
    /// with what it said.
    Transport(String),
    /// The server answered with an error (rate limit, server error, an
    /// unreadable answer, or another refusal).
    Answer(Error),
    /// The write of the lease failed ([`WriteOutcome::Failed`](crate::WriteOutcome::Failed)).
    Store(StoreFailure),
}

impl fmt::Display for RefreshFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefreshFailure::TimedOut => f.write_str("timed out"),
            RefreshFailure::Transport(detail) if detail.is_empty() => {
                f.write_str("transport error")
            }
            RefreshFailure::Transport(detail) => write!(f, "transport error: {detail}"),
            RefreshFailure::Answer(e) => write!(f, "{e}"),
            RefreshFailure::Store(e) => write!(f, "the store failed: {e}"),
        }
    }
}

/// Something that happened to a grant, for the user or the log.
///
/// Every event that follows new tokens comes after the
/// [`Output::Persist`] that holds them.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EngineEvent {
    /// Callers that were told [`TokenStatus::Pending`] may ask again: an access
    /// token is ready.
    TokenReady {
        /// The grant.
        grant: GrantId,
        /// When the access token expires.
        expires_at: SystemTime,
    },
    /// A refresh (or a mint) succeeded and its tokens are written: the
    /// [`Output::Persist`] that holds them was confirmed.
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
        failure: RefreshFailure,
    },
    /// The record of a new authorization ([`Engine::insert`](crate::Engine::insert))
    /// is durable: its write was reported [`WriteOutcome::Written`](crate::WriteOutcome::Written).
    /// The installation is safe from here on.
    Durable {
        /// The grant.
        grant: GrantId,
        /// The version written.
        version: u64,
    },
    /// The store holds no record of the grant: it was removed elsewhere
    /// (e.g. uninstalled by another process). The engine forgot it and its
    /// tokens.
    RemovedElsewhere {
        /// The grant.
        grant: GrantId,
    },
    /// A write of the grant's record failed
    /// ([`WriteOutcome::Failed`](crate::WriteOutcome::Failed)); the engine
    /// writes it again at `retry_at`. Meanwhile callers get
    /// [`TokenStatus::StoreFailing`] once the access token held expires, and
    /// no refresh of the grant is sent.
    WriteFailed {
        /// The grant.
        grant: GrantId,
        /// The version that failed.
        version: u64,
        /// What the store said.
        failure: StoreFailure,
        /// When the record is written again.
        retry_at: SystemTime,
    },
    /// A write of the grant went through after failed ones.
    WriteRecovered {
        /// The grant.
        grant: GrantId,
        /// The version written.
        version: u64,
    },
    /// An answer came for a grant no longer held (removed while its
    /// request was out). If it carried a new refresh token
    /// (`refresh_token_kept`), that token is the grant's only live one: the
    /// engine keeps it in memory, and adopts it should the grant come back
    /// ([`Engine::insert`](crate::Engine::insert), [`Engine::restore`](crate::Engine::restore))
    /// with the refresh token that request spent ([`EngineEvent::RescuedTokenAdopted`]).
    AnswerAfterRemoval {
        /// The grant.
        grant: GrantId,
        /// Whether the answer's refresh token is kept.
        refresh_token_kept: bool,
    },
    /// A refresh token from an answer the engine could not take at the time
    /// (its grant was removed, or the answer was a failure that carried one)
    /// was adopted: it is written ahead of everything else and used for the
    /// next refresh.
    RescuedTokenAdopted {
        /// The grant.
        grant: GrantId,
    },
    /// An answer to the grant's request asked for a wait or a rate-limit
    /// interval over the crate's caps, and was read as the cap (see
    /// [`RateLimit`](crate::RateLimit)): a hostile answer, or a change on
    /// the server's side worth a look.
    RateLimitClamped {
        /// The grant whose request was answered so.
        grant: GrantId,
        /// Which figures were cut.
        clamped: Clamped,
    },
    /// The store could not answer a claim on the shared request budget:
    /// this engine draws `share` requests per interval of its own until it
    /// can ([`Engine::handle_claim`](crate::Engine::handle_claim)).
    SharedBudgetFallback {
        /// Requests per interval this engine allows itself meanwhile.
        share: u32,
        /// What the store said.
        error: StoreFailure,
    },
    /// The store answers claims on the shared request budget again.
    SharedBudgetRecovered,
}

impl EngineEvent {
    /// The grant the event is about, if it is about one.
    #[must_use]
    pub fn grant(&self) -> Option<&GrantId> {
        Some(match self {
            EngineEvent::SharedBudgetFallback { .. } | EngineEvent::SharedBudgetRecovered => {
                return None;
            }
            EngineEvent::TokenReady { grant, .. }
            | EngineEvent::Refreshed { grant, .. }
            | EngineEvent::Adopted { grant, .. }
            | EngineEvent::LeaseHeldElsewhere { grant, .. }
            | EngineEvent::Suspended { grant, .. }
            | EngineEvent::Unauthorized { grant, .. }
            | EngineEvent::ReauthorizationNeeded { grant, .. }
            | EngineEvent::ConfigurationRejected { grant, .. }
            | EngineEvent::RetryScheduled { grant, .. }
            | EngineEvent::Durable { grant, .. }
            | EngineEvent::RemovedElsewhere { grant }
            | EngineEvent::WriteFailed { grant, .. }
            | EngineEvent::WriteRecovered { grant, .. }
            | EngineEvent::AnswerAfterRemoval { grant, .. }
            | EngineEvent::RescuedTokenAdopted { grant }
            | EngineEvent::RateLimitClamped { grant, .. } => grant,
        })
    }
}

impl fmt::Display for EngineEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineEvent::TokenReady { grant, expires_at } => {
                write!(f, "{grant}: token ready, expires at {}", unix(*expires_at))
            }
            EngineEvent::Refreshed { grant, expires_at } => {
                write!(f, "{grant}: refreshed, expires at {}", unix(*expires_at))
            }
            EngineEvent::Adopted { grant, expires_at } => write!(
                f,
                "{grant}: adopted tokens from the store, expires at {}",
                unix(*expires_at)
            ),
            EngineEvent::LeaseHeldElsewhere {
                grant,
                holder,
                until,
            } => write!(
                f,
                "{grant}: {holder} is refreshing; looking again at {}",
                unix(*until)
            ),
            EngineEvent::Suspended {
                grant,
                until,
                error,
            } => write!(f, "{grant}: suspended until {}: {error}", unix(*until)),
            EngineEvent::Unauthorized {
                grant,
                until,
                error,
            } => write!(
                f,
                "{grant}: refresh refused, parked until {}: {error}",
                unix(*until)
            ),
            EngineEvent::ReauthorizationNeeded { grant, error } => {
                write!(f, "{grant}: re-authorization needed: {error}")
            }
            EngineEvent::ConfigurationRejected { grant, error } => {
                write!(f, "{grant}: configuration rejected: {error}")
            }
            EngineEvent::RetryScheduled {
                grant,
                at,
                attempt,
                failure,
            } => write!(f, "{grant}: retry {attempt} at {}: {failure}", unix(*at)),
            EngineEvent::Durable { grant, version } => {
                write!(f, "{grant}: new authorization written (version {version})")
            }
            EngineEvent::RemovedElsewhere { grant } => {
                write!(f, "{grant}: removed from the store elsewhere; forgotten")
            }
            EngineEvent::WriteFailed {
                grant,
                version,
                failure,
                retry_at,
            } => write!(
                f,
                "{grant}: write of version {version} failed, written again at {}: {failure}",
                unix(*retry_at)
            ),
            EngineEvent::WriteRecovered { grant, version } => {
                write!(f, "{grant}: version {version} written after failed writes")
            }
            EngineEvent::RateLimitClamped { grant, clamped } => {
                let what = match (clamped.retry_after, clamped.interval) {
                    (true, true) => "Retry-After and the rate-limit interval",
                    (true, false) => "Retry-After",
                    _ => "the rate-limit interval",
                };
                write!(f, "{grant}: {what} over the cap, read as the cap")
            }
            EngineEvent::SharedBudgetFallback { share, error } => write!(
                f,
                "shared request budget unavailable, {share} requests per interval of our own: {error}"
            ),
            EngineEvent::SharedBudgetRecovered => {
                f.write_str("shared request budget available again")
            }
            EngineEvent::AnswerAfterRemoval {
                grant,
                refresh_token_kept,
            } => {
                let kept = if *refresh_token_kept {
                    "; its new refresh token is kept in memory"
                } else {
                    ""
                };
                write!(
                    f,
                    "{grant}: an answer came after the grant was removed{kept}"
                )
            }
            EngineEvent::RescuedTokenAdopted { grant } => {
                write!(f, "{grant}: a rescued refresh token was adopted")
            }
        }
    }
}

/// The answer of [`Engine::access_token`](crate::Engine::access_token).
///
/// Not `#[non_exhaustive]`, on purpose: a new status is a breaking change,
/// so that every driver's `match` must decide what it means for its callers
/// (a status that fell through to "keep waiting" once made callers wait for
/// nothing).
#[derive(Debug, Clone, PartialEq)]
pub enum TokenStatus {
    /// A valid access token.
    Ready(AccessToken),
    /// No valid token right now; a refresh is in flight or scheduled. Wait for
    /// [`EngineEvent::TokenReady`] (or another event about the grant) and ask again.
    Pending,
    /// The location is not active; the engine tries again at `until`.
    Suspended {
        /// When the next attempt is due.
        until: SystemTime,
    },
    /// The grant's refresh was refused with a 401 that does not name the
    /// client; the engine tries its refresh token again at `until`. See
    /// [`EngineEvent::Unauthorized`].
    Unauthorized {
        /// When the next attempt is due.
        until: SystemTime,
    },
    /// The grant is gone; the user must re-authorize the app.
    ReauthorizationNeeded,
    /// The token expired and the client credentials were rejected; see
    /// [`EngineEvent::ConfigurationRejected`].
    ConfigurationRejected,
    /// No valid token, because the grant's store is failing: its newest
    /// tokens are not written yet (or the lease its refresh needs could not
    /// be), and the engine hands out nothing that depends on them. It
    /// writes again on its own backoff ([`EngineEvent::WriteFailed`]).
    StoreFailing(StoreFailure),
}
