//! The figures of the engine as a whole, as gauges: grants by status,
//! requests in flight, sends waiting for the request budget, records not
//! written yet, and the request budget's use.
//!
//! Counting grants by status walks every grant ([`Engine::grants`],
//! [`Engine::stats`]: O(grants)), so the gauges are taken at most once a
//! second, and only after something happened: an idle service walks
//! nothing. The request budget's use falls with time alone, so while it is
//! above zero it is taken again every second.
//!
//! **The request budget's use** is the service's own count, kept with the
//! core's [`RequestBudget`] exactly as the engine keeps its own: one token
//! per request handed out (and per request sent outside the engine through
//! the budget), following the `X-RateLimit-*` headers of every answer, all
//! spent by a 429. The engine does not publish its count.

use std::time::{Duration, Instant};

use hoopai_oauth::Engine;
#[cfg(feature = "metrics")]
use hoopai_oauth::{RateLimit, RequestBudget};

/// How often the gauges are taken, at most.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
const EVERY: Duration = Duration::from_secs(1);

/// The engine's gauges, and when to take them again.
pub(crate) struct Gauges {
    #[cfg(feature = "metrics")]
    on: On,
}

#[cfg(feature = "metrics")]
struct On {
    /// Something happened since the gauges were last taken.
    dirty: bool,
    /// The earliest instant they may be taken again.
    next: Instant,
    /// The request budget as the engine spends it.
    budget: RequestBudget,
}

impl Gauges {
    /// Gauges for `engine`, to be taken at once.
    pub(crate) fn new(engine: &Engine) -> Self {
        #[cfg(feature = "metrics")]
        {
            let stats = engine.stats();
            metrics::gauge!("hoopai_service_running").set(1.0);
            Gauges {
                on: On {
                    dirty: true,
                    next: Instant::now(),
                    budget: RequestBudget::new(stats.budget_max, stats.budget_interval),
                },
            }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = engine;
            Gauges {}
        }
    }

    /// Something happened: take the gauges at the next chance.
    pub(crate) fn touch(&mut self) {
        #[cfg(feature = "metrics")]
        {
            self.on.dirty = true;
        }
    }

    /// A request went out under the request budget.
    pub(crate) fn sent(&mut self) {
        #[cfg(feature = "metrics")]
        {
            self.on.budget.spend(std::time::SystemTime::now());
            self.on.dirty = true;
        }
    }

    /// An answer came: its rate-limit headers, or its 429.
    pub(crate) fn answered(&mut self, response: &http::Response<Vec<u8>>) {
        #[cfg(feature = "metrics")]
        {
            let now = std::time::SystemTime::now();
            let rate = RateLimit::from_headers(response.headers());
            if response.status() == http::StatusCode::TOO_MANY_REQUESTS {
                self.on.budget.on_rate_limited(rate.as_ref(), now);
            } else if let Some(rate) = &rate {
                self.on.budget.observe(rate, now);
            }
            if let Some(rate) = &rate {
                if let Some(remaining) = rate.remaining {
                    metrics::gauge!("hoopai_rate_limit_remaining").set(remaining as f64);
                }
                if let Some(remaining) = rate.daily_remaining {
                    metrics::gauge!("hoopai_rate_limit_daily_remaining").set(remaining as f64);
                }
            }
            self.on.dirty = true;
        }
        #[cfg(not(feature = "metrics"))]
        let _ = response;
    }

    /// When the gauges are to be taken next, if anything is to be taken.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        #[cfg(feature = "metrics")]
        {
            self.on.dirty.then_some(self.on.next)
        }
        #[cfg(not(feature = "metrics"))]
        None
    }

    /// Takes the gauges if something happened and a second has passed
    /// since they were last taken.
    pub(crate) fn update(&mut self, engine: &Engine) {
        #[cfg(feature = "metrics")]
        {
            let now = Instant::now();
            if !self.on.dirty || now < self.on.next {
                return;
            }
            let spent = self.take(engine);
            self.on.next = now + EVERY;
            // The budget's use falls with time: taken again until it is 0.
            self.on.dirty = spent > 0;
        }
        #[cfg(not(feature = "metrics"))]
        let _ = engine;
    }

    /// The service stopped: the last figures, and `hoopai_service_running` 0.
    pub(crate) fn stopped(&mut self, engine: &Engine) {
        #[cfg(feature = "metrics")]
        {
            self.take(engine);
            metrics::gauge!("hoopai_service_running").set(0.0);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = engine;
    }

    /// Sets every gauge; returns the budget spent now.
    #[cfg(feature = "metrics")]
    fn take(&mut self, engine: &Engine) -> u64 {
        use super::labels::{STATUSES, status};
        let mut by_status = [0u64; STATUSES.len()];
        for grant in engine.grants().iter() {
            by_status[status(grant.status())] += 1;
        }
        for (label, n) in STATUSES.iter().zip(by_status) {
            // "other" only for a standing this build does not name.
            if *label != "other" || n > 0 {
                metrics::gauge!("hoopai_grants", "status" => *label).set(n as f64);
            }
        }
        let stats = engine.stats();
        metrics::gauge!("hoopai_requests_in_flight").set(stats.in_flight as f64);
        metrics::gauge!("hoopai_sends_waiting_for_budget").set(stats.waiting_for_budget as f64);
        metrics::counter!("hoopai_sends_deferred_total").absolute(stats.waited_for_budget);
        metrics::gauge!("hoopai_records_unwritten").set(stats.unwritten as f64);
        metrics::gauge!("hoopai_records_write_failing").set(stats.writes_failing as f64);
        metrics::gauge!("hoopai_engine_halted").set(if stats.halted { 1.0 } else { 0.0 });
        let now = std::time::SystemTime::now();
        let budget = &self.on.budget;
        let spent = budget.spent(now);
        metrics::gauge!("hoopai_request_budget_spent").set(spent as f64);
        metrics::gauge!("hoopai_request_budget_max").set(f64::from(budget.max()));
        metrics::gauge!("hoopai_request_budget_interval_seconds")
            .set(budget.interval().as_secs_f64());
        spent
    }
}

/// Describes every metric of the service to the recorder (unit and text).
#[cfg(feature = "metrics")]
pub(super) fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "hoopai_grants",
        Unit::Count,
        "Grants held, by status (active, suspended, unauthorized, reauthorization_needed)"
    );
    describe_gauge!(
        "hoopai_service_running",
        "1 while the token service's task runs, 0 once it stopped"
    );
    describe_gauge!(
        "hoopai_requests_in_flight",
        Unit::Count,
        "Requests (refreshes and mints) handed out and not answered yet"
    );
    describe_gauge!(
        "hoopai_sends_waiting_for_budget",
        Unit::Count,
        "Sends waiting for the request budget now"
    );
    describe_counter!(
        "hoopai_sends_deferred_total",
        Unit::Count,
        "Sends that had to wait for the request budget"
    );
    describe_gauge!(
        "hoopai_records_unwritten",
        Unit::Count,
        "Grants holding changes the store does not have yet"
    );
    describe_gauge!(
        "hoopai_records_write_failing",
        Unit::Count,
        "Grants whose last write failed and is to be written again"
    );
    describe_gauge!(
        "hoopai_engine_halted",
        "1 while the client credentials are rejected (nothing is sent)"
    );
    describe_gauge!(
        "hoopai_request_budget_spent",
        Unit::Count,
        "Requests spent from the request budget within its current interval"
    );
    describe_gauge!(
        "hoopai_request_budget_max",
        Unit::Count,
        "Requests the request budget allows per interval"
    );
    describe_gauge!(
        "hoopai_request_budget_interval_seconds",
        Unit::Seconds,
        "The request budget's interval"
    );
    describe_gauge!(
        "hoopai_rate_limit_remaining",
        Unit::Count,
        "X-RateLimit-Remaining of the last answer that had it"
    );
    describe_gauge!(
        "hoopai_rate_limit_daily_remaining",
        Unit::Count,
        "X-RateLimit-Daily-Remaining of the last answer that had it"
    );
    describe_counter!(
        "hoopai_refreshes_total",
        Unit::Count,
        "Refreshes and mints ended, by outcome"
    );
    describe_counter!(
        "hoopai_refresh_failures_total",
        Unit::Count,
        "Refreshes and mints that failed, by kind"
    );
    describe_counter!(
        "hoopai_requests_total",
        Unit::Count,
        "Requests handed out by the engine, by what came back"
    );
    describe_histogram!(
        "hoopai_refresh_duration_seconds",
        Unit::Seconds,
        "From sending a refresh or mint to its answer (or to giving up)"
    );
    describe_counter!(
        "hoopai_store_writes_total",
        Unit::Count,
        "Store writes returned, by outcome"
    );
    describe_histogram!(
        "hoopai_store_write_duration_seconds",
        Unit::Seconds,
        "How long each store write took"
    );
    describe_counter!(
        "hoopai_store_timeouts_total",
        Unit::Count,
        "Store calls reported failed at their deadline, by op"
    );
    describe_histogram!(
        "hoopai_access_token_wait_seconds",
        Unit::Seconds,
        "How long callers of access_token waited, for those that had to"
    );
    describe_counter!(
        "hoopai_webhooks_total",
        Unit::Count,
        "Webhook deliveries, by verdict"
    );
    describe_counter!(
        "hoopai_route_requests_total",
        Unit::Count,
        "Requests to /install and /callback, by route and outcome"
    );
}
