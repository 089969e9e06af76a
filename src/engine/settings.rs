//! Tuning of the engine: margins, timeouts, retry policy, store mode.

use std::time::Duration;

/// How records reach the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreMode {
    Single,
    Shared { holder: String, lease: Duration },
}

/// Which requests share one request budget.
///
/// HighLevel counts its limits per app and per resource (a Location or a
/// Company; docs/highlevel-facts.md, "Rate limits"), but which resource a
/// request to the token endpoint counts against is not documented. The
/// default is the safe reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BudgetKeying {
    /// One budget for every request of the app (the default).
    #[default]
    App,
    /// One budget per resource: a refresh draws from its grant's Location
    /// (or Company), a mint from its Company, a counted request from the
    /// resource it names ([`Engine::count_request`](crate::Engine::count_request)),
    /// or from the app's budget if it names none.
    Resource,
}

/// The engine's tuning. Start from [`EngineSettings::default()`] and change
/// what you need:
///
/// ```
/// use std::time::Duration;
/// use hoopai_oauth::EngineSettings;
///
/// let settings = EngineSettings::default()
///     .refresh_margin(Duration::from_secs(15 * 60))
///     .jitter_seed(0x5eed)
///     .shared_store("worker-1", Duration::from_secs(120));
/// assert_eq!(settings.lease_duration(), Some(Duration::from_secs(120)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct EngineSettings {
    pub(crate) refresh_margin: Duration,
    pub(crate) expiry_skew: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) backoff_base: Duration,
    pub(crate) backoff_cap: Duration,
    pub(crate) rate_limit_wait: Duration,
    pub(crate) suspended_retry: Duration,
    pub(crate) unauthorized_retry: Duration,
    pub(crate) unauthorized_retry_cap: Duration,
    pub(crate) unauthorized_halt_after: u32,
    pub(crate) seed: u64,
    pub(crate) store: StoreMode,
    pub(crate) reread_interval: Duration,
    pub(crate) max_in_flight: usize,
    pub(crate) refresh_spread: Duration,
    pub(crate) dispatch_window: Duration,
    pub(crate) budget_max: u32,
    pub(crate) budget_interval: Duration,
    pub(crate) budget_margin: Option<Duration>,
    pub(crate) refresh_ahead_spread: Duration,
    pub(crate) counted_share: u8,
    pub(crate) shared_budget: bool,
    pub(crate) budget_keying: BudgetKeying,
}

impl Default for EngineSettings {
    /// - refresh margin 10 min, expiry skew 30 s, request timeout 60 s;
    /// - backoff from 2 s doubling to a 10 min cap, with jitter from seed 0;
    /// - 60 s after a 429 that names no wait; 1 h between tries of a suspended location;
    /// - a grant refused with a 401 that names no client credentials is tried
    ///   again after 1 h, doubling up to a day; 3 distinct grants refused so
    ///   in a row mean the client is rejected;
    /// - single-process store mode; in shared-store mode the store is re-read
    ///   every 5 s while waiting;
    /// - at most 16 leases and requests out at once; grants already due when
    ///   restored spread over 30 s; sends dispatched within 1 s;
    /// - a request budget of 100 requests per 10 s (HighLevel's documented
    ///   burst limit), following the answers' `X-RateLimit-*` headers;
    /// - minted Location grants refresh at points spread over the 5 minutes
    ///   before their refresh time;
    /// - requests the app counts (code exchanges, installed-locations pages)
    ///   take at most 50% of any interval of the budget, and wait while a
    ///   refresh waits;
    /// - one budget for the app, kept in this process.
    fn default() -> Self {
        EngineSettings {
            refresh_margin: Duration::from_secs(10 * 60),
            expiry_skew: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            backoff_base: Duration::from_secs(2),
            backoff_cap: Duration::from_secs(10 * 60),
            rate_limit_wait: Duration::from_secs(60),
            suspended_retry: Duration::from_secs(60 * 60),
            unauthorized_retry: Duration::from_secs(60 * 60),
            unauthorized_retry_cap: Duration::from_secs(24 * 60 * 60),
            unauthorized_halt_after: 3,
            seed: 0,
            store: StoreMode::Single,
            reread_interval: Duration::from_secs(5),
            max_in_flight: 16,
            refresh_spread: Duration::from_secs(30),
            dispatch_window: Duration::from_secs(1),
            budget_max: crate::request_budget::HIGHLEVEL_BURST_MAX,
            budget_interval: crate::request_budget::HIGHLEVEL_BURST_INTERVAL,
            budget_margin: None,
            refresh_ahead_spread: Duration::from_secs(5 * 60),
            counted_share: 50,
            shared_budget: false,
            budget_keying: BudgetKeying::App,
        }
    }
}

impl EngineSettings {
    /// Refresh this long before the access token expires. A token whose whole
    /// lifetime is shorter than twice the margin is refreshed at half its life.
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// [`Engine::access_token`](crate::Engine::access_token) treats a token as
    /// expired this long before its expiry, so a token handed out still has
    /// some life left.
    pub fn expiry_skew(mut self, skew: Duration) -> Self {
        self.expiry_skew = skew;
        self
    }

    /// How long a refresh request may go unanswered before the engine gives up
    /// on it and schedules a retry. Set your HTTP client's timeout to this or
    /// less. Zero is raised to one second.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout.max(Duration::from_secs(1));
        self
    }

    /// Exponential backoff after server errors, unreadable answers, transport
    /// errors and timeouts: `base · 2^(attempt-1)` capped at `cap`, jittered to
    /// between half and all of it.
    pub fn backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.backoff_base = base.max(Duration::from_millis(1));
        self.backoff_cap = cap.max(self.backoff_base);
        self
    }

    /// The wait after a 429 whose headers name none (no `Retry-After`, no
    /// spent rate-limit window).
    pub fn rate_limit_wait(mut self, wait: Duration) -> Self {
        self.rate_limit_wait = wait;
        self
    }

    /// How long to wait before trying the same refresh token again after
    /// "Location is not active".
    pub fn suspended_retry(mut self, interval: Duration) -> Self {
        self.suspended_retry = interval;
        self
    }

    /// How long a grant whose refresh got a 401 that does not name the client
    /// credentials ([`ErrorKind::GrantUnauthorized`](crate::ErrorKind::GrantUnauthorized))
    /// waits before its refresh token is tried again: `first`, doubling with
    /// each refusal in a row, up to `cap`.
    ///
    /// The grant is parked meanwhile ([`EngineEvent::Unauthorized`](crate::EngineEvent::Unauthorized)),
    /// for someone to look at. It is tried again at all because a 401 refuses
    /// before anything is spent: the refresh token is still good if the fault
    /// passes, and parking it for good would leave the installation without a
    /// token until someone acts. At growing intervals a grant that stays
    /// refused costs about one request a day. `first` is raised to 1 s and
    /// `cap` to `first`.
    pub fn unauthorized_retry(mut self, first: Duration, cap: Duration) -> Self {
        self.unauthorized_retry = first.max(Duration::from_secs(1));
        self.unauthorized_retry_cap = cap.max(self.unauthorized_retry);
        self
    }

    /// How many distinct grants in a row, with no successful refresh in
    /// between, may get a 401 that does not name the client credentials
    /// before the engine takes it that the client is rejected after all:
    /// [`EngineEvent::ConfigurationRejected`](crate::EngineEvent::ConfigurationRejected),
    /// and nothing more is sent until
    /// [`Engine::reconfigure`](crate::Engine::reconfigure). The same grant
    /// refused twice counts once. Default 3; 1 treats every such 401 as the
    /// client's; 0 is raised to 1.
    pub fn unauthorized_halt_after(mut self, grants: u32) -> Self {
        self.unauthorized_halt_after = grants.max(1);
        self
    }

    /// The seed of the jitter sequence. Give each process its own (e.g. drawn
    /// once from the OS at start-up) so their retries spread out.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Single-process mode (the default): this engine is the only writer of
    /// its grants' records. An [`Output::Persist`](crate::Output::Persist)
    /// may be a plain overwrite; its outcome is handed back all the same
    /// ([`Engine::handle_write`](crate::Engine::handle_write)). Shared-store
    /// mode without leases.
    pub fn single_process(mut self) -> Self {
        self.store = StoreMode::Single;
        self
    }

    /// Shared-store mode: several engines share one store with
    /// compare-and-swap on the record version. Before each refresh the engine
    /// writes a lease of `lease` named `holder`, and sends only once the caller
    /// confirms that the write won. The lease is raised to at least twice the
    /// request timeout.
    pub fn shared_store(mut self, holder: impl Into<String>, lease: Duration) -> Self {
        self.store = StoreMode::Shared {
            holder: holder.into(),
            lease,
        };
        self
    }

    /// Shared-store mode: how often the store is read again while the engine
    /// waits (for a lease held elsewhere, for the answer to a read, for
    /// re-authorization: there less and less often, up to the backoff cap).
    /// A stale view of the store lasts about this long. Raised to at least
    /// 100 ms.
    pub fn reread_interval(mut self, interval: Duration) -> Self {
        self.reread_interval = interval.max(Duration::from_millis(100));
        self
    }

    /// The most grants that hold a lease or a refresh request at once (at
    /// least 1). Others that come due wait their turn, in order. Per
    /// HighLevel's limits (100 requests per 10 s per app; docs/highlevel-facts.md,
    /// "Rate limits"),
    /// a few processes with the default 16 stay well inside them.
    pub fn max_in_flight(mut self, cap: usize) -> Self {
        self.max_in_flight = cap.max(1);
        self
    }

    /// Shared-store mode: grants already due when restored (a restart after
    /// a pause) are refreshed at random points within this window (drawn from the jitter
    /// seed), so that engines starting together neither refresh every grant
    /// at once nor take them in the same order. Zero: at once.
    pub fn refresh_spread(mut self, spread: Duration) -> Self {
        self.refresh_spread = spread;
        self
    }

    /// How long after being handed out an [`Output::Send`](crate::Output::Send)
    /// may still be dispatched (its `not_after`, at most; in shared-store mode
    /// also bounded by the lease). The engine gives up on the request a
    /// request timeout after that. Raised to at least 1 ms.
    pub fn dispatch_window(mut self, window: Duration) -> Self {
        self.dispatch_window = window.max(Duration::from_millis(1));
        self
    }

    /// The engine's request budget: at most `max` requests (refreshes and
    /// Location-token mints) in any `interval` (default 100 per 10 s,
    /// HighLevel's documented burst limit per app: docs/highlevel-facts.md,
    /// "Rate limits"). Sends over budget wait their turn, in order, and go out as
    /// the budget frees up; the budget follows the `X-RateLimit-Max`,
    /// `X-RateLimit-Interval-Milliseconds` and `X-RateLimit-Remaining`
    /// headers of every answer handed to [`Engine::handle_send`](crate::Engine::handle_send),
    /// and a 429 spends it all (see [`RequestBudget`](crate::RequestBudget)).
    /// `max` is raised to 1, `interval` to 1 ms. Several processes of one app
    /// should split the figure (or rely on the headers).
    pub fn request_budget(mut self, max: u32, interval: Duration) -> Self {
        let b = crate::request_budget::RequestBudget::new(max, interval);
        self.budget_max = b.max();
        self.budget_interval = b.interval();
        self
    }

    /// Location grants minted together (a bulk install) would all come due
    /// together a day later: each minted grant refreshes at a point drawn
    /// (from the jitter seed) within this window before its refresh time
    /// (default 5 min; at most half the token's life). Zero: no spreading.
    pub fn refresh_ahead_spread(mut self, spread: Duration) -> Self {
        self.refresh_ahead_spread = spread;
        self
    }

    /// The most requests the app counts against the budget
    /// ([`Engine::count_request`](crate::Engine::count_request): code
    /// exchanges, installed-locations pages, API calls) may take of any
    /// interval, in percent of the budget (default 50; 1 to 100; at least
    /// one request). They also wait while a refresh waits, so a flood of
    /// callbacks can neither starve refreshes nor take more than this share.
    pub fn counted_share(mut self, percent: u8) -> Self {
        self.counted_share = percent.clamp(1, 100);
        self
    }

    /// Draw the request budget from the store, shared by every process of
    /// the app (default off: each engine keeps the budget to itself). The
    /// engine then claims its tokens with [`Output::Claim`](crate::Output::Claim)
    /// before it spends them, and falls back to a share of its own while
    /// the store cannot answer (see [`BudgetClaim`](crate::BudgetClaim)).
    pub fn shared_budget(mut self, on: bool) -> Self {
        self.shared_budget = on;
        self
    }

    /// Which requests share a budget (default [`BudgetKeying::App`]).
    pub fn budget_keying(mut self, keying: BudgetKeying) -> Self {
        self.budget_keying = keying;
        self
    }

    /// How long after one interval a spent request token comes back: the
    /// margin that covers a request that reaches the server later than it
    /// was counted (a slow connection, a busy machine), so that it does not
    /// land in a window the server still sees as full. Default: 2.5% of the
    /// interval, at most 250 ms
    /// ([`DEFAULT_BUDGET_MARGIN`](crate::DEFAULT_BUDGET_MARGIN)); at most one
    /// interval. A shared budget's claims count for the interval plus twice
    /// the margin.
    pub fn budget_margin(mut self, margin: Duration) -> Self {
        self.budget_margin = Some(margin);
        self
    }

    /// The request budget: requests per interval, and the interval.
    #[must_use]
    pub fn budget(&self) -> (u32, Duration) {
        (self.budget_max, self.budget_interval)
    }

    /// The request timeout.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The lease length in shared-store mode (after the raise to twice the
    /// request timeout); `None` in single-process mode.
    #[must_use]
    pub fn lease_duration(&self) -> Option<Duration> {
        match &self.store {
            StoreMode::Single => None,
            StoreMode::Shared { lease, .. } => Some((*lease).max(self.request_timeout * 2)),
        }
    }

    /// Shared-store mode: this engine's lease holder name.
    pub(crate) fn holder(&self) -> Option<&str> {
        match &self.store {
            StoreMode::Single => None,
            StoreMode::Shared { holder, .. } => Some(holder),
        }
    }

    /// Whether shared-store mode is on.
    #[must_use]
    pub fn is_shared(&self) -> bool {
        matches!(self.store, StoreMode::Shared { .. })
    }
}
