//! The token service: a cheap, cloneable handle on a task that owns the engine.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hoopai_oauth::{
    AccessToken, AuthorizationCode, Config, EngineSettings, Event, GrantId, GrantRecord,
    GrantStatus, TokenRequest, TokenSet, UserType, parse_token_response, token_request,
};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::actor::{self, Command};
use crate::store::{CorruptRecord, DEFAULT_PAGE_SIZE, GrantStore, StoreError};
use crate::transport::{DynHttpClient, HttpClient, TransportError};

/// How the service runs, around the engine's own [`EngineSettings`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ServiceSettings {
    pub(crate) engine: EngineSettings,
    pub(crate) wait: Duration,
    pub(crate) shutdown_grace: Duration,
    pub(crate) page_size: usize,
    pub(crate) event_capacity: usize,
    pub(crate) store_timeout: Duration,
}

impl ServiceSettings {
    /// Defaults around `engine`:
    /// - callers wait up to the engine's request timeout plus 5 s for a refresh
    ///   in flight;
    /// - shutdown waits up to the request timeout for refreshes in flight;
    /// - records are restored 1,000 at a time;
    /// - 1,024 events are buffered per subscriber;
    /// - every store call is reported failed if it has not completed 10 s
    ///   after it was asked (a failed write is written again on the engine's
    ///   backoff).
    pub fn new(engine: EngineSettings) -> Self {
        let timeout = engine.timeout();
        ServiceSettings {
            engine,
            wait: timeout + Duration::from_secs(5),
            shutdown_grace: timeout,
            page_size: DEFAULT_PAGE_SIZE,
            event_capacity: 1024,
            store_timeout: Duration::from_secs(10),
        }
    }

    /// How long [`TokenService::access_token`] waits for a refresh.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// How long [`TokenService::shutdown`] waits for refreshes in flight
    /// before handing them back.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// How many records are read from the store at a time at start-up.
    pub fn page_size(mut self, records: usize) -> Self {
        self.page_size = records.max(1);
        self
    }

    /// How many events are buffered for a slow subscriber before it misses some.
    pub fn event_capacity(mut self, events: usize) -> Self {
        self.event_capacity = events.max(1);
        self
    }

    /// How long a store call (a write, a read, a delete, a page of the
    /// restore) may take, counted from when it is asked, before it is
    /// reported failed with the store named: a write to the engine
    /// ([`WriteOutcome::Failed`](hoopai_oauth::WriteOutcome::Failed), written
    /// again on its backoff), a delete in [`GrantChanges::undeleted`](crate::GrantChanges::undeleted).
    /// A call still running keeps its grant's turn until it returns (every
    /// write is a compare-and-swap: a late one never replaces a newer
    /// record). Keep it above the store's own timeouts (SQLite's busy
    /// timeout, Postgres' `statement_timeout`) so that their precise errors
    /// come first. At least 10 ms.
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout.max(Duration::from_millis(10));
        self
    }

    /// The engine's settings.
    pub fn engine(&self) -> &EngineSettings {
        &self.engine
    }
}

/// Why [`TokenService::access_token`] has no token to give.
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
    /// someone look at it (see [`Event::Unauthorized`]).
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
    /// engine writes it again on its backoff ([`Event::WriteFailed`]).
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

/// Why [`TokenService::send_authorized`] failed.
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

/// Something the service did, for the user or the log: the engine's events
/// and the service's own. Carries no secret.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServiceEvent {
    /// An event of the engine (refreshed, suspended, retry scheduled…).
    Engine(Event),
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
    /// grant (see [`TokenService::handle_webhook`]).
    pub added: Vec<GrantId>,
    /// The grants an INSTALL names whose tokens come from the code exchange
    /// (the consent callback).
    pub needs_code_exchange: Vec<GrantId>,
}

/// What [`TokenService::start`] restored from the store.
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

/// One grant as the service holds it, for [`TokenService::list`].
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

/// What [`TokenService::shutdown`] leaves behind.
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

pub(crate) struct Inner {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) events: broadcast::Sender<ServiceEvent>,
    pub(crate) http: Arc<dyn DynHttpClient>,
    pub(crate) config: Config,
    pub(crate) wait: Duration,
    pub(crate) started: StartReport,
}

/// Keeps the access tokens of many grants fresh, from one tokio task that
/// owns the [`Engine`](hoopai_oauth::Engine); this is a cheap, cloneable
/// handle to it.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use hoopai_oauth::{Config, EngineSettings};
/// use hoopai_oauth_service::{ReqwestClient, ServiceSettings, SqliteStore, TokenService};
///
/// let config = Config::builder("my-client-id", "my-client-secret").build()?;
/// let settings = ServiceSettings::new(EngineSettings::default());
/// let store = SqliteStore::open("grants.sqlite3").await?;
/// let http = ReqwestClient::new(settings.engine())?;
/// let service = TokenService::start(config, settings, store, http).await?;
/// let token = service.access_token("locationId").await?;
/// # let _ = token;
/// service.shutdown().await;
/// # Ok(()) }
/// ```
///
/// Dropping every handle stops the task as [`shutdown`](Self::shutdown) does.
#[derive(Clone)]
pub struct TokenService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("restored", &self.inner.started.restored)
            .finish_non_exhaustive()
    }
}

impl TokenService {
    /// Restores every grant from `store` (page by page), then starts the
    /// task that owns the engine. Must be called within a tokio runtime.
    ///
    /// Unreadable rows do not stop the start: see [`StartReport::corrupt`].
    /// Every write is a [`GrantStore::compare_and_swap`], in single-process
    /// and shared-store mode ([`EngineSettings::shared_store`]) alike, and its
    /// outcome goes back to the engine.
    ///
    /// # Errors
    /// [`ServiceError::Store`] if the store cannot be read at all.
    pub async fn start<S: GrantStore, H: HttpClient>(
        config: Config,
        settings: ServiceSettings,
        store: S,
        http: H,
    ) -> Result<Self, ServiceError> {
        let (events, _) = broadcast::channel(settings.event_capacity);
        let http = Arc::new(http);
        let (commands, started) = actor::start(
            config.clone(),
            settings.clone(),
            store,
            Arc::clone(&http),
            events.clone(),
        )
        .await?;
        Ok(TokenService {
            inner: Arc::new(Inner {
                commands,
                events,
                http,
                config,
                wait: settings.wait,
                started,
            }),
        })
    }

    /// The client configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// What was restored at start-up.
    #[must_use]
    pub fn start_report(&self) -> &StartReport {
        &self.inner.started
    }

    /// Sends `event` to the subscribers (for the routes).
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn publish(&self, event: ServiceEvent) {
        let _ = self.inner.events.send(event);
    }

    /// The events from now on. A subscriber that falls more than the event
    /// capacity behind gets [`broadcast::error::RecvError::Lagged`] and goes on.
    #[must_use]
    pub fn events(&self) -> broadcast::Receiver<ServiceEvent> {
        self.inner.events.subscribe()
    }

    pub(crate) async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.inner.commands.send(make(tx)).await.ok()?;
        rx.await.ok()
    }

    /// The access token of `grant`: at once when fresh; when a refresh is in
    /// flight, once it is written, waiting up to [`ServiceSettings::wait`].
    ///
    /// # Errors
    /// [`TokenError`]: unknown grant, suspended, re-authorization needed,
    /// configuration rejected, unauthorized, store failing, timed out,
    /// stopped.
    pub async fn access_token(&self, grant: &str) -> Result<AccessToken, TokenError> {
        self.token(grant, None, self.inner.wait).await
    }

    /// As [`access_token`](Self::access_token), waiting up to `wait`.
    ///
    /// # Errors
    /// See [`access_token`](Self::access_token).
    pub async fn access_token_within(
        &self,
        grant: &str,
        wait: Duration,
    ) -> Result<AccessToken, TokenError> {
        self.token(grant, None, wait).await
    }

    /// A token other than `rejected` (which an API refused with 401): starts
    /// one refresh (the engine's `refresh_now`, shared by every caller that
    /// reports the same token) unless one already replaced it, and waits for it.
    ///
    /// # Errors
    /// See [`access_token`](Self::access_token).
    pub async fn token_after_401(
        &self,
        grant: &str,
        rejected: &AccessToken,
    ) -> Result<AccessToken, TokenError> {
        self.token(grant, Some(rejected.clone()), self.inner.wait)
            .await
    }

    async fn token(
        &self,
        grant: &str,
        rejected: Option<AccessToken>,
        wait: Duration,
    ) -> Result<AccessToken, TokenError> {
        let grant = GrantId::new(grant);
        let deadline = Instant::now() + wait;
        let asked = self.call(|reply| Command::Token {
            grant,
            rejected,
            deadline,
            reply,
        });
        // The task answers by the deadline; this bound only guards a task
        // that is gone or stuck.
        match tokio::time::timeout(wait + Duration::from_secs(5), asked).await {
            Ok(Some(answer)) => answer,
            Ok(None) | Err(_) => Err(TokenError::Stopped),
        }
    }

    /// Sends an API request built by `build` with the grant's access token.
    /// If the API answers 401, gets a new token once (one refresh shared by
    /// every caller, see [`token_after_401`](Self::token_after_401)) and
    /// sends the request again; a second 401 is returned as it is.
    ///
    /// The request goes through the service's HTTP client, with its body cap.
    ///
    /// # Errors
    /// [`CallError`].
    pub async fn send_authorized<F>(
        &self,
        grant: &str,
        build: F,
    ) -> Result<http::Response<Vec<u8>>, CallError>
    where
        F: Fn(&AccessToken) -> http::Request<Vec<u8>>,
    {
        let token = self.access_token(grant).await?;
        let response = self.inner.http.send_boxed(build(&token)).await?;
        if response.status() != http::StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        tracing::debug!(grant, "API answered 401; refreshing once");
        let fresh = self.token_after_401(grant, &token).await?;
        Ok(self.inner.http.send_boxed(build(&fresh)).await?)
    }

    /// Adds a grant from a new authorization (a code exchange, a location
    /// token) or replaces the tokens of one held (a re-install), and returns
    /// once its record is written.
    ///
    /// # Errors
    /// [`ServiceError::OAuth`] if the tokens have no refresh token;
    /// [`ServiceError::WritePending`] if the write failed (the engine writes
    /// it again; the grant is held).
    pub async fn add(&self, grant: &str, tokens: TokenSet) -> Result<(), ServiceError> {
        let grant = GrantId::new(grant);
        self.call(|reply| Command::Add {
            grant,
            tokens: Box::new(tokens),
            reply,
        })
        .await
        .unwrap_or(Err(ServiceError::Stopped))
    }

    /// Exchanges an authorization code from the consent redirect, adds the
    /// grant (named by the token's Location id, else its Company id) and
    /// returns its id.
    ///
    /// # Errors
    /// [`ServiceError::Transport`], [`ServiceError::OAuth`] (the server's
    /// classified refusal, e.g. a spent code), [`ServiceError::Store`].
    pub async fn exchange_code(
        &self,
        code: AuthorizationCode,
        user_type: Option<UserType>,
    ) -> Result<GrantId, ServiceError> {
        let mut request = TokenRequest::authorization_code(code);
        if let Some(user_type) = user_type {
            request = request.user_type(user_type);
        }
        let request = token_request(&self.inner.config, &request)?;
        self.take_budget().await?;
        let sent_at = SystemTime::now();
        let response = self.inner.http.send_boxed(request).await?;
        let token = parse_token_response(response)?;
        let grant = token
            .location_id
            .clone()
            .or_else(|| token.company_id.clone())
            .ok_or_else(|| {
                ServiceError::InvalidInput(
                    "the token answer names neither a Location nor a Company".to_owned(),
                )
            })?;
        self.add(&grant, TokenSet::new(token, sent_at)).await?;
        Ok(GrantId::new(grant))
    }

    /// Waits for a token of the engine's request budget for a request
    /// about to be sent outside the engine (a code exchange, an
    /// installed-locations page), and spends it
    /// ([`Engine::count_request`](hoopai_oauth::Engine::count_request)), so
    /// that the engine's own sends leave room for it.
    pub(crate) async fn take_budget(&self) -> Result<(), ServiceError> {
        while let Some(free) = self
            .call(|reply| Command::TakeBudget { reply })
            .await
            .ok_or(ServiceError::Stopped)?
        {
            let wait = free.duration_since(SystemTime::now()).unwrap_or_default();
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
        Ok(())
    }

    /// The service's HTTP client.
    pub(crate) fn http(&self) -> &Arc<dyn DynHttpClient> {
        &self.inner.http
    }

    /// Removes a grant as uninstalled ([`Removal::Uninstalled`](hoopai_oauth::Removal::Uninstalled)):
    /// its tokens are wiped, its record deleted, and for a Company grant
    /// every Location grant minted from it goes too. Returns once the
    /// records are deleted (or their deletes failed).
    ///
    /// # Errors
    /// [`ServiceError::UnknownGrant`]; [`ServiceError::Store`] if a delete
    /// failed or timed out (the grant is forgotten here all the same).
    pub async fn remove(&self, grant: &str) -> Result<(), ServiceError> {
        let grant = GrantId::new(grant);
        self.call(|reply| Command::Remove { grant, reply })
            .await
            .unwrap_or(Err(ServiceError::Stopped))
    }

    /// Every grant held, in id order.
    ///
    /// # Errors
    /// [`ServiceError::Stopped`].
    pub async fn list(&self) -> Result<Vec<GrantInfo>, ServiceError> {
        self.call(|reply| Command::List { reply })
            .await
            .ok_or(ServiceError::Stopped)
    }

    /// Stops the service: no new refresh starts, refreshes in flight are
    /// waited for up to [`ServiceSettings::shutdown_grace`] and their tokens
    /// written; what could not finish is handed back in the report. Callers
    /// still waiting get [`TokenError::Stopped`]. Later calls on any handle
    /// fail with `Stopped`.
    pub async fn shutdown(&self) -> ShutdownReport {
        self.call(|reply| Command::Shutdown { reply })
            .await
            .unwrap_or_default()
    }
}
