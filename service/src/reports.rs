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
