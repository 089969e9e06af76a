//! Everything the worker knows of the engine's API, in one place: the
//! drivers see only [`Core`] and [`Step`], so a change of the engine's
//! inputs and outputs is a change of this file alone.
//!
//! The server, the workers and the checker name tokens by the harness's own
//! fingerprint ([`fingerprint`]), read here out of each request body and
//! each record; the engine's fingerprint of the same token (the `refresh`
//! field of `Send` and `Persist`) is logged beside it, and checked to name
//! the very token it comes with. No token leaves this module.

use std::time::{Duration, SystemTime};

use hoopai_oauth::{
    Config, Engine, EngineEvent, EngineSettings, Fingerprint, GrantRecord, GrantStatus, Output,
    RequestId, SendOutcome, StoreFailure, TokenStatus, WriteOutcome, parse_token_response,
};

use crate::fingerprint::fingerprint;

/// How the worker's engine is set up.
#[derive(Debug, Clone)]
pub struct EngineSetup {
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: String,
    /// `http://127.0.0.1:port` of the token server.
    pub base_url: String,
    /// This engine's lease holder name.
    pub holder: String,
    /// The jitter seed.
    pub seed: u64,
    /// The request timeout (the HTTP client's is the same).
    pub request_timeout: Duration,
    /// The lease length asked for (the engine raises it to twice the request
    /// timeout).
    pub lease: Duration,
}

impl EngineSetup {
    /// The client configuration.
    ///
    /// # Errors
    /// The configuration is refused.
    pub fn config(&self) -> Result<Config, String> {
        Config::builder(self.client_id.clone(), self.client_secret.clone())
            .base_url(self.base_url.clone())
            .build()
            .map_err(|e| e.to_string())
    }

    /// The engine's settings, the same for every driver: shared-store mode
    /// with this holder and lease, short backoffs for a 6 s `expires_in`.
    pub fn settings(&self) -> EngineSettings {
        EngineSettings::default()
            .jitter_seed(self.seed)
            .request_timeout(self.request_timeout)
            .expiry_skew(Duration::from_secs(1))
            .backoff(Duration::from_millis(250), Duration::from_secs(4))
            .rate_limit_wait(Duration::from_secs(2))
            .shared_store(self.holder.clone(), self.lease)
    }
}

/// A refresh request to send.
#[derive(Debug)]
pub struct SendStep {
    /// The engine's request id, as a number.
    pub id: u64,
    /// The grant.
    pub grant: String,
    /// Fingerprint of the refresh token presented.
    pub fp: String,
    /// The engine's fingerprint of the same token (`fp:…`).
    pub efp: String,
    /// The latest instant the request may still be dispatched.
    pub not_after: SystemTime,
    /// The request. Secret: its body holds the refresh token.
    pub request: http::Request<Vec<u8>>,
}

/// A record to write by compare-and-swap.
#[derive(Debug)]
pub struct WriteStep {
    /// The grant.
    pub grant: String,
    /// The record's version.
    pub version: u64,
    /// The version it replaces (`None`: only if nothing is stored).
    pub replaces: Option<u64>,
    /// Fingerprint of the record's refresh token.
    pub fp: String,
    /// The engine's fingerprint of the same token (`fp:…`).
    pub efp: String,
    /// The record's status: `active`, `suspended`, `reauthorization_needed`.
    pub status: &'static str,
    /// Whether the record holds a lease.
    pub lease: bool,
    /// The record as JSON. Secret.
    pub record: String,
}

/// What the engine asks the driver to do next.
#[derive(Debug)]
pub enum Step {
    /// Send a refresh.
    Send(SendStep),
    /// Write a record.
    Write(WriteStep),
    /// Read a grant's record and hand it back ([`Core::loaded`]).
    Load {
        /// The grant.
        grant: String,
    },
    /// Log an event.
    Event {
        /// The grant.
        grant: String,
        /// The event's kind.
        kind: &'static str,
        /// The event as the engine displays it (no secrets).
        detail: String,
    },
}

/// What handing an answer to the engine showed.
#[derive(Debug, Clone, Default)]
pub struct Answered {
    /// Fingerprint of the refresh token in the answer, if any.
    pub new: Option<String>,
    /// The classified error kind of a failed answer.
    pub error: Option<String>,
    /// Why the engine refused the answer, if it did.
    pub refused: Option<String>,
}

/// The engine, behind the few calls the drivers make.
#[derive(Debug)]
pub struct Core {
    engine: Engine,
}

/// The name of a record's status, as logged: `active`, `suspended`,
/// `reauthorization_needed`.
#[must_use]
pub fn status_name(status: &GrantStatus) -> &'static str {
    match status {
        GrantStatus::Active => "active",
        GrantStatus::Suspended { .. } => "suspended",
        GrantStatus::ReauthorizationNeeded { .. } => "reauthorization_needed",
        _ => "other",
    }
}

/// The name of an engine event's kind, as logged (e.g. `refreshed`).
#[must_use]
pub fn event_kind(event: &EngineEvent) -> &'static str {
    match event {
        EngineEvent::TokenReady { .. } => "token_ready",
        EngineEvent::Refreshed { .. } => "refreshed",
        EngineEvent::Adopted { .. } => "adopted",
        EngineEvent::LeaseHeldElsewhere { .. } => "lease_held_elsewhere",
        EngineEvent::Suspended { .. } => "suspended",
        EngineEvent::ReauthorizationNeeded { .. } => "reauthorization_needed",
        EngineEvent::ConfigurationRejected { .. } => "configuration_rejected",
        EngineEvent::RetryScheduled { .. } => "retry_scheduled",
        EngineEvent::Durable { .. } => "durable",
        EngineEvent::RemovedElsewhere { .. } => "removed_elsewhere",
        EngineEvent::WriteFailed { .. } => "write_failed",
        EngineEvent::WriteRecovered { .. } => "write_recovered",
        EngineEvent::AnswerAfterRemoval { .. } => "answer_after_removal",
        EngineEvent::RescuedTokenAdopted { .. } => "rescued_token_adopted",
        _ => "other",
    }
}

/// The harness's fingerprint of the token in a refresh request's form
/// body, and whether the engine's fingerprint names that same token.
fn presented(request: &http::Request<Vec<u8>>, engine: Fingerprint) -> (String, bool) {
    let form: Vec<(String, String)> =
        serde_urlencoded::from_bytes(request.body()).unwrap_or_default();
    form.iter()
        .find(|(k, _)| k == "refresh_token" || k == "refreshToken")
        .map_or_else(
            || ("none".to_owned(), false),
            |(_, v)| (fingerprint(v), Fingerprint::of(v) == engine),
        )
}

/// The same for a record's refresh token.
fn record_fp(record: &GrantRecord, engine: Fingerprint) -> (String, bool) {
    record.refresh_token().map_or_else(
        || ("none".to_owned(), false),
        |t| (fingerprint(t.secret()), t.fingerprint() == engine),
    )
}

/// The words of a failure line that says an engine's fingerprint names
/// another token than the one it comes with (the checker looks for them).
pub const FINGERPRINT_DISAGREES: &str = "the engine's fingerprint names another token";

/// Says so when the engine's fingerprint names another token than the one
/// it comes with (a failure line; the run goes on).
fn check_efp(what: &str, grant: &str, agrees: bool) -> Option<String> {
    (!agrees).then(|| format!("{what} of {grant}: {FINGERPRINT_DISAGREES}"))
}

impl Core {
    /// An engine in shared-store mode.
    ///
    /// # Errors
    /// The configuration is refused.
    pub fn new(setup: &EngineSetup) -> Result<Self, String> {
        Ok(Core {
            engine: Engine::new(setup.config()?, setup.settings()),
        })
    }

    /// Loads a stored record (JSON).
    ///
    /// # Errors
    /// The record is unreadable or refused.
    pub fn restore(&mut self, record: &str, now: SystemTime) -> Result<(), String> {
        let record: GrantRecord = serde_json::from_str(record).map_err(|e| e.to_string())?;
        self.engine.restore(record, now).map_err(|e| e.to_string())
    }

    /// The next thing to do at `now`, if any; a fingerprint disagreement
    /// is pushed onto `failures`.
    pub fn next_step(&mut self, now: SystemTime, failures: &mut Vec<String>) -> Option<Step> {
        loop {
            let step = match self.engine.poll_output(now)? {
                Output::Send {
                    id,
                    grant,
                    request,
                    not_after,
                    refresh,
                    ..
                } => {
                    let (fp, agrees) = presented(&request, refresh);
                    failures.extend(check_efp("send", grant.as_str(), agrees));
                    Step::Send(SendStep {
                        id: id.as_u64(),
                        grant: grant.to_string(),
                        fp,
                        efp: refresh.to_string(),
                        not_after,
                        request,
                    })
                }
                Output::Persist {
                    record,
                    replaces,
                    refresh,
                    ..
                } => {
                    let grant = record.grant.clone();
                    let json = match serde_json::to_string(&record) {
                        Ok(json) => json,
                        Err(e) => {
                            failures
                                .push(format!("a record of {grant} could not be serialized: {e}"));
                            continue;
                        }
                    };
                    let (fp, agrees) = record_fp(&record, refresh);
                    failures.extend(check_efp("write", grant.as_str(), agrees));
                    Step::Write(WriteStep {
                        grant: grant.to_string(),
                        version: record.version,
                        replaces,
                        fp,
                        efp: refresh.to_string(),
                        status: status_name(&record.status),
                        lease: record.lease.is_some(),
                        record: json,
                    })
                }
                Output::Load { grant, .. } => Step::Load {
                    grant: grant.to_string(),
                },
                Output::Event(event) => Step::Event {
                    grant: event.grant().map(ToString::to_string).unwrap_or_default(),
                    kind: event_kind(&event),
                    detail: event.to_string(),
                },
                _ => continue,
            };
            return Some(step);
        }
    }

    /// Hands back the answer to request `id` (of `grant`). A refresh token
    /// in an answer for a grant no longer held is kept by the engine itself
    /// (`EngineEvent::AnswerAfterRemoval`).
    pub fn answer(
        &mut self,
        id: u64,
        grant: &str,
        response: http::Response<Vec<u8>>,
        now: SystemTime,
    ) -> Answered {
        let result = parse_token_response(response);
        let mut answered = Answered::default();
        match &result {
            Ok(token) => {
                answered.new = token
                    .refresh_token
                    .as_ref()
                    .map(|t| fingerprint(t.secret()));
            }
            Err(e) => {
                answered.error = Some(format!("{:?}", e.kind()));
                answered.new = e.rescued_refresh_token().map(|t| fingerprint(t.secret()));
            }
        }
        if let Err(e) =
            self.engine
                .handle_send(RequestId::from_u64(id), SendOutcome::Parsed(result), now)
        {
            let kept = match e.rescued_refresh_token() {
                None => String::new(),
                Some(token) => format!(
                    "; the answer for {grant} held refresh token {}",
                    fingerprint(token.secret())
                ),
            };
            answered.refused = Some(format!("[{:?}] {e}{kept}", e.kind()));
        }
        answered
    }

    /// Reports that request `id` got no answer.
    ///
    /// # Errors
    /// The engine refused the input.
    pub fn transport_error(&mut self, id: u64, now: SystemTime) -> Result<(), String> {
        self.engine
            .handle_send(
                RequestId::from_u64(id),
                SendOutcome::TransportError(String::new()),
                now,
            )
            .map_err(|e| format!("[{:?}] {e}", e.kind()))
    }

    /// Reports that the write of `version` won.
    ///
    /// # Errors
    /// The engine refused the input.
    pub fn write_won(&mut self, grant: &str, version: u64, now: SystemTime) -> Result<(), String> {
        self.engine
            .handle_write(grant, version, WriteOutcome::Written, now)
            .map_err(|e| format!("[{:?}] {e}", e.kind()))
    }

    /// Reports that a write lost to the stored record (JSON; `None`: the
    /// store holds no record).
    ///
    /// # Errors
    /// The record is unreadable, or the engine refused the input.
    pub fn write_lost(
        &mut self,
        grant: &str,
        version: u64,
        stored: Option<&str>,
        now: SystemTime,
    ) -> Result<(), String> {
        let outcome = match stored {
            Some(stored) => {
                let stored: GrantRecord =
                    serde_json::from_str(stored).map_err(|e| e.to_string())?;
                WriteOutcome::Conflict(Box::new(stored))
            }
            None => WriteOutcome::NoRecord,
        };
        self.engine
            .handle_write(grant, version, outcome, now)
            .map_err(|e| format!("[{:?}] {e}", e.kind()))
    }

    /// Reports that the write of `version` failed (the store errored).
    ///
    /// # Errors
    /// The engine refused the input.
    pub fn write_failed(
        &mut self,
        grant: &str,
        version: u64,
        now: SystemTime,
    ) -> Result<(), String> {
        self.engine
            .handle_write(
                grant,
                version,
                WriteOutcome::Failed(StoreFailure::new("the store is down")),
                now,
            )
            .map_err(|e| format!("[{:?}] {e}", e.kind()))
    }

    /// Hands back the record read after a `Load` (JSON; `None`: no record).
    ///
    /// # Errors
    /// The record is unreadable, or the engine refused the input.
    pub fn loaded(
        &mut self,
        grant: &str,
        stored: Option<&str>,
        now: SystemTime,
    ) -> Result<(), String> {
        let record = match stored {
            Some(s) => Some(serde_json::from_str::<GrantRecord>(s).map_err(|e| e.to_string())?),
            None => None,
        };
        self.engine
            .handle_load(grant, Ok(record), now)
            .map_err(|e| format!("[{:?}] {e}", e.kind()))
    }

    /// Reports that send `id` was not dispatched by its `not_after`.
    ///
    /// # Errors
    /// The engine refused the input.
    pub fn send_expired(&mut self, id: u64, now: SystemTime) -> Result<(), String> {
        self.engine
            .handle_send(RequestId::from_u64(id), SendOutcome::NotDispatched, now)
            .map_err(|e| format!("[{:?}] {e}", e.kind()))
    }

    /// How many requests are out, as the engine counts them.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.engine.stats().in_flight
    }

    /// Asks for an access token, as an app would; returns the status's name
    /// (the token itself is dropped unseen).
    pub fn ask(&mut self, grant: &str, now: SystemTime) -> &'static str {
        match self.engine.access_token(grant, now) {
            Ok(TokenStatus::Ready(_)) => "ready",
            Ok(TokenStatus::Pending) => "pending",
            Ok(TokenStatus::Suspended { .. }) => "suspended",
            Ok(TokenStatus::Unauthorized { .. }) => "unauthorized",
            Ok(TokenStatus::ReauthorizationNeeded) => "reauthorization_needed",
            Ok(TokenStatus::ConfigurationRejected) => "configuration_rejected",
            Ok(TokenStatus::StoreFailing(_)) => "store_failing",
            Err(_) => "unknown_grant",
        }
    }

    /// Handles the deadlines due at `now`.
    pub fn handle_timeout(&mut self, now: SystemTime) {
        // Never fails today (see `Engine::handle_timeout`).
        let _ = self.engine.handle_timeout(now);
    }

    /// The next deadline, if any.
    #[must_use]
    pub fn deadline(&self) -> Option<SystemTime> {
        self.engine.poll_timeout()
    }
}

/// The stored record (JSON) of a grant just installed: `response` is the
/// answer to its code exchange, sent at `sent_at`; `version` is the record
/// version to store it at (0 is a `GrantRecord::new` as it comes).
///
/// # Errors
/// The answer is not a token, or has no refresh token.
pub fn installed_record(
    grant: &str,
    response: http::Response<Vec<u8>>,
    sent_at: SystemTime,
    version: u64,
) -> Result<String, String> {
    let token = parse_token_response(response).map_err(|e| format!("[{:?}] {e}", e.kind()))?;
    if token.refresh_token.is_none() {
        return Err(format!(
            "the code exchange of {grant} gave no refresh token"
        ));
    }
    let mut record = GrantRecord::new(grant, hoopai_oauth::TokenSet::new(token, sent_at));
    record.version = version;
    serde_json::to_string(&record).map_err(|e| e.to_string())
}

/// The code exchange request of an install, for `installed_record`.
///
/// # Errors
/// The configuration or the request is refused.
pub fn code_exchange(
    client_id: &str,
    client_secret: &str,
    base_url: &str,
    code: &str,
) -> Result<http::Request<Vec<u8>>, String> {
    let config = Config::builder(client_id.to_owned(), client_secret.to_owned())
        .base_url(base_url.to_owned())
        .build()
        .map_err(|e| e.to_string())?;
    hoopai_oauth::token_request(
        &config,
        &hoopai_oauth::TokenRequest::authorization_code(code)
            .user_type(hoopai_oauth::UserType::Location),
    )
    .map_err(|e| e.to_string())
}

/// The fingerprint of a stored record's refresh token, and its status, for
/// the checker.
///
/// # Errors
/// The record is unreadable.
pub fn stored_state(record: &str) -> Result<(Option<String>, &'static str), String> {
    let record: GrantRecord = serde_json::from_str(record).map_err(|e| e.to_string())?;
    Ok((
        record.refresh_token().map(|t| fingerprint(t.secret())),
        status_name(&record.status),
    ))
}
