//! What the token service reports: its events, what it restored at start,
//! what it left at shutdown, the grants it holds, and what an install
//! changed.

use std::time::{Duration, SystemTime};

use hoopai_oauth::{EngineEvent, GrantId, GrantRecord, GrantStatus};

use crate::store::{CorruptRecord, StoreError};

/// Something the service did, for the user or the log: the engine's events
/// and the service's own. Carries no secret.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServiceEvent {
    /// An event of the engine (refreshed, suspended, retry scheduled…).
    Engine(EngineEvent),
    /// A record at start-up could not be read or restored; it is left in the
    /// store untouched and the grant is not served.
    CorruptRecord(CorruptRecord),
    /// A webhook delivery was verified and accepted: INSTALL (the app gets
    /// its tokens through the consent callback, or, for a bulk install,
    /// mints Location tokens from the Company grant), UNINSTALL (the grants
    /// concerned were removed), or another type.
    Webhook(Box<WebhookReceived>),
}

/// A webhook delivery the app's webhook route accepted, and what the
/// service did about it (feature `axum`, see [`crate::routes`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WebhookReceived {
    /// The verified event (no secret in it).
    pub event: hoopai_oauth::WebhookEvent,
    /// The grants an UNINSTALL removed (from the service and the store): a
    /// location's grant, or an agency's Company grant and every Location
    /// grant minted from it.
    pub removed: Vec<GrantId>,
    /// The Location grants an INSTALL added, minted from their Company
    /// grant (see [`TokenService::handle_webhook`](crate::TokenService::handle_webhook)).
    pub added: Vec<GrantId>,
    /// The grants an INSTALL names whose tokens come from the code exchange
    /// (the consent callback).
    pub needs_code_exchange: Vec<GrantId>,
}

/// What [`TokenService::start`](crate::TokenService::start) restored from the store.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct StartReport {
    /// Grants restored into the engine.
    pub restored: usize,
    /// Rows that could not be read or restored (each also sent as
    /// [`ServiceEvent::CorruptRecord`] and logged); left untouched.
    pub corrupt: Vec<CorruptRecord>,
    /// How long the restore took.
    pub elapsed: Duration,
}

/// One grant as the service holds it, for [`TokenService::list`](crate::TokenService::list).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct GrantInfo {
    /// The grant.
    pub grant: GrantId,
    /// Its standing.
    pub status: GrantStatus,
    /// When its access token expires.
    pub expires_at: SystemTime,
    /// The record version held.
    pub version: u64,
    /// The Company (agency) its token belongs to, when the token answer said.
    pub company_id: Option<String>,
    /// The Location (sub-account) of a Location token, when the answer said.
    pub location_id: Option<String>,
}

/// What [`TokenService::shutdown`](crate::TokenService::shutdown) leaves behind.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Refreshes in flight at shutdown that were answered (and written) before it returned.
    pub finished: usize,
    /// Grants whose refresh was still unanswered at the end of the grace
    /// period. The server may have spent the refresh token they presented:
    /// if so, their next refresh is refused and they need re-authorization.
    pub abandoned: Vec<GrantId>,
    /// Records that could not be written (the store kept failing): the only
    /// copy of their tokens. Write them somewhere; restore them later.
    pub unwritten: Vec<GrantRecord>,
}

/// What an install webhook or an installed-locations sync changed in the
/// service. Carries no secret.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct GrantChanges {
    /// Location grants added, each minted from its Company grant through
    /// `/oauth/locationToken` under the engine's request budget. Their
    /// record is written once the first mint is answered;
    /// [`TokenService::access_token`](crate::TokenService::access_token) waits for it (and, before the Company
    /// grant is held, for the code exchange that adds it).
    pub added: Vec<GrantId>,
    /// Grants removed from the service, the Company grant before the
    /// Location grants minted from it. Their tokens are wiped and their
    /// records deleted from the store (except those in
    /// [`undeleted`](Self::undeleted)).
    pub removed: Vec<GrantId>,
    /// Grants the event names that only a code exchange can add (a
    /// Location or Company install: the tokens come through the consent
    /// callback, [`TokenService::exchange_code`](crate::TokenService::exchange_code)). For a bulk install, the
    /// Company grant when it is not held yet: its Location grants wait
    /// for it.
    pub needs_code_exchange: Vec<GrantId>,
    /// Removed grants whose record could not be deleted, with the store's
    /// error. The grant is gone from memory all the same; the record left
    /// behind holds a refresh token the server revoked, and is restored at
    /// the next start unless deleted.
    pub undeleted: Vec<(GrantId, StoreError)>,
}

/// What [`TokenService::readiness`](crate::TokenService::readiness) found.
///
/// A service exists only once [`TokenService::start`](crate::TokenService::start)
/// has restored every grant from the store, so the restore is always done
/// when this is asked; the checks are the two that can fail afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Readiness {
    /// The service's task answered, and is neither shutting down nor stopped.
    pub running: bool,
    /// What the store did with the probe.
    pub store: StoreProbe,
}

impl Readiness {
    /// Whether the service is ready: running, and its store answered.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.failed_check().is_none()
    }

    /// The first check that failed, `"engine"` or `"store"`; `None` when
    /// the service is ready.
    #[must_use]
    pub fn failed_check(&self) -> Option<&'static str> {
        if !self.running {
            Some("engine")
        } else if self.store != StoreProbe::Answered {
            Some("store")
        } else {
            None
        }
    }
}

/// What the store did with the readiness probe: a delete of a grant id no
/// store can hold (longer than [`MAX_GRANT_ID_BYTES`](hoopai_oauth::MAX_GRANT_ID_BYTES)),
/// so it goes through the store's write path and can never touch a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreProbe {
    /// It answered within the probe timeout.
    Answered,
    /// It answered with an error (logged with the store's message).
    Failed,
    /// It did not answer within the probe timeout, or the previous probe
    /// has not returned yet (only one runs at a time).
    TimedOut,
    /// Not asked: the service is not running.
    NotAsked,
}

impl StoreProbe {
    /// A short fixed name: `ok`, `failed`, `timed_out`, `not_asked`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            StoreProbe::Answered => "ok",
            StoreProbe::Failed => "failed",
            StoreProbe::TimedOut => "timed_out",
            StoreProbe::NotAsked => "not_asked",
        }
    }
}
