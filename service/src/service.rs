//! The token service: a cheap, cloneable handle on a task that owns the engine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use hoopai_oauth::{
    AccessToken, AuthorizationCode, Config, GrantId, TokenRequest, TokenSet, UserType,
    parse_token_response, token_request,
};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::actor;
use crate::command::Command;
use crate::errors::{CallError, ServiceError, TokenError};
use crate::health::{HealthCache, NOT_RUNNING};
use crate::reports::{GrantInfo, Readiness, ServiceEvent, ShutdownReport, StartReport};
use crate::settings::ServiceSettings;
use crate::store::{GrantStore, WebhookIds};
use crate::transport::{DynHttpClient, HttpClient};

pub(crate) struct Inner {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) events: broadcast::Sender<ServiceEvent>,
    pub(crate) http: Arc<dyn DynHttpClient>,
    pub(crate) config: Config,
    pub(crate) wait: Duration,
    pub(crate) started: StartReport,
    /// The store's memory of webhook ids, if it has one for every process.
    pub(crate) webhook_ids: Option<Arc<dyn WebhookIds>>,
    pub(crate) probe_timeout: Duration,
    pub(crate) health: HealthCache,
    /// Set once `shutdown` was called on any handle.
    pub(crate) stopping: AtomicBool,
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
    /// and shared-store mode ([`EngineSettings::shared_store`](hoopai_oauth::EngineSettings::shared_store)) alike, and its
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
        let webhook_ids = store.shared_webhook_ids();
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
                webhook_ids,
                probe_timeout: settings.probe_timeout,
                health: HealthCache::default(),
                stopping: AtomicBool::new(false),
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

    /// Where the store remembers webhook ids for every process on it
    /// ([`GrantStore::shared_webhook_ids`]), for the routes.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn webhook_ids(&self) -> Option<Arc<dyn WebhookIds>> {
        self.inner.webhook_ids.clone()
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
    /// In shared-store mode a grant this process does not hold is read from
    /// the store first: another process may have added it.
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
        let answer = self.ask_token(&grant, rejected.clone(), deadline).await;
        if !matches!(answer, Err(TokenError::UnknownGrant(_))) {
            return answer;
        }
        // Shared-store mode: another process may have added the grant since
        // this one started. Read it from the store, then ask again.
        match self.discover(&grant).await {
            Ok(true) => self.ask_token(&grant, rejected, deadline).await,
            Ok(false) => answer,
            Err(message) => Err(TokenError::StoreFailing { grant, message }),
        }
    }

    async fn ask_token(
        &self,
        grant: &GrantId,
        rejected: Option<AccessToken>,
        deadline: Instant,
    ) -> Result<AccessToken, TokenError> {
        let grant = grant.clone();
        let wait = deadline.saturating_duration_since(Instant::now());
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

    /// In shared-store mode, reads the record of `grant` if this process
    /// does not hold it (another process added it after this one started)
    /// and restores it. Whether the grant is held then (`false` in
    /// single-process mode for a grant not held), or the store's failure.
    pub(crate) async fn discover(&self, grant: &GrantId) -> crate::command::Discovered {
        let grant = grant.clone();
        self.call(|reply| Command::Discover { grant, reply })
            .await
            .unwrap_or(Ok(false))
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
        let sent_at = SystemTime::now();
        let response = self.send_counted(request).await?;
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

    /// Sends a request outside the engine (a code exchange, an
    /// installed-locations page) within the engine's request budget: waits
    /// for a token and spends it
    /// ([`Engine::count_request`](hoopai_oauth::Engine::count_request)),
    /// sends, and hands the answer's status and headers back
    /// ([`Engine::handle_counted_answer`](hoopai_oauth::Engine::handle_counted_answer)),
    /// so that its rate-limit headers, or its `429`, steer the budget.
    pub(crate) async fn send_counted(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, ServiceError> {
        while let Some(free) = self
            .call(|reply| Command::TakeBudget { reply })
            .await
            .ok_or(ServiceError::Stopped)?
        {
            let wait = free.duration_since(SystemTime::now()).unwrap_or_default();
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
        let response = self.inner.http.send_boxed(request).await?;
        let status = response.status();
        let headers = Box::new(response.headers().clone());
        // Not waited for: the answer is the caller's either way.
        let _ = self
            .inner
            .commands
            .send(Command::CountedAnswer { status, headers })
            .await;
        Ok(response)
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
        self.inner.stopping.store(true, Ordering::Release);
        self.call(|reply| Command::Shutdown { reply })
            .await
            .unwrap_or_default()
    }

    /// Whether the service is ready to serve, for a readiness check (the
    /// `/readyz` route of [`OAuthRouter`](crate::OAuthRouter) answers with
    /// it): its task runs (it is not shutting down or stopped), and its
    /// store answered a probe within
    /// [`ServiceSettings::probe_timeout`](crate::ServiceSettings::probe_timeout).
    /// The restore is done: a service exists only after it.
    ///
    /// The probe is a delete of a grant id no store can hold
    /// ([`StoreProbe`](crate::StoreProbe)): it takes the store's write path,
    /// so a SQLite file locked by another writer, or a locked Postgres
    /// table, fails it. An answer is kept for
    /// [`HEALTH_CACHE`](crate::HEALTH_CACHE); concurrent callers share one
    /// check, and one probe runs at a time.
    pub async fn readiness(&self) -> Readiness {
        if self.inner.stopping.load(Ordering::Acquire) {
            return NOT_RUNNING;
        }
        self.inner.health.readiness(self.ask_health(true)).await
    }

    /// Whether the service's task answers, for a liveness check (the
    /// `/healthz` route): `false` once it stopped or while it shuts down
    /// (it then reads no command), or if it did not answer within
    /// [`ServiceSettings::probe_timeout`](crate::ServiceSettings::probe_timeout).
    /// The store is not asked. An answer is kept for
    /// [`HEALTH_CACHE`](crate::HEALTH_CACHE).
    pub async fn is_alive(&self) -> bool {
        self.inner.health.alive(self.ask_health(false)).await
    }

    /// Asks the task how it is; `None` without an answer in time (the task
    /// answers by the probe timeout: this bounds a task gone or stuck).
    async fn ask_health(&self, probe_store: bool) -> Option<Readiness> {
        let asked = self.call(|reply| Command::Health { probe_store, reply });
        tokio::time::timeout(self.inner.probe_timeout * 2, asked)
            .await
            .ok()
            .flatten()
    }
}
