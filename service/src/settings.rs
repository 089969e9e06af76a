//! How the token service runs, around the engine's own settings.

use std::time::Duration;

use hoopai_oauth::EngineSettings;

use crate::store::DEFAULT_PAGE_SIZE;

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
    pub(crate) probe_timeout: Duration,
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
    ///   backoff);
    /// - the readiness probe of the store must answer within 2 s.
    pub fn new(engine: EngineSettings) -> Self {
        let timeout = engine.timeout();
        ServiceSettings {
            engine,
            wait: timeout + Duration::from_secs(5),
            shutdown_grace: timeout,
            page_size: DEFAULT_PAGE_SIZE,
            event_capacity: 1024,
            store_timeout: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(2),
        }
    }

    /// How long [`TokenService::access_token`](crate::TokenService::access_token) waits for a refresh.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// How long [`TokenService::shutdown`](crate::TokenService::shutdown) waits for refreshes in flight
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

    /// How long the store has to answer the readiness probe of
    /// [`TokenService::readiness`](crate::TokenService::readiness) (default
    /// 2 s, at least 10 ms); the service's task must answer
    /// [`TokenService::is_alive`](crate::TokenService::is_alive) within it
    /// too.
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = timeout.max(Duration::from_millis(10));
        self
    }

    /// The engine's settings.
    pub fn engine(&self) -> &EngineSettings {
        &self.engine
    }
}
