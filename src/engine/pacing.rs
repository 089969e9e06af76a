//! Pacing: the engine's request budget. Every request the engine hands out
//! (a refresh or a Location-token mint) spends one token of a
//! [`RequestBudget`]; a send over budget waits its turn in a first-in,
//! first-out queue and is handed out when the budget frees up. The budget
//! follows the `X-RateLimit-*` headers of every answer, and a 429 spends it
//! all (per FACTS.md, "Rate limits": 100 requests per 10 s per app).
//!
//! Costs O(1) per send: nothing is scanned; a waiting send whose grant
//! moved on meanwhile is dropped when its turn comes.

use std::collections::VecDeque;
use std::time::SystemTime;

use http::{HeaderMap, StatusCode};

use crate::rate_limit::RateLimit;
use crate::request_budget::RequestBudget;

use super::Engine;
use super::settings::EngineSettings;
use super::slot::Phase;

/// The budget and the sends waiting for it.
pub(crate) struct Pacing {
    pub(crate) budget: RequestBudget,
    /// Sends waiting for the budget, in order: (slot, sequence number).
    waiting: VecDeque<(u32, u32)>,
    /// When the budget frees up for the first waiting send.
    wake_at: Option<SystemTime>,
    /// While a waiting send is being handed out.
    releasing: bool,
    /// Shared-store mode: slots whose send waited, now under a new lease:
    /// first in line once it is confirmed.
    renewed: std::collections::HashSet<u32>,
    /// Sends that waited for the budget, in all (for metrics and tests).
    pub(crate) deferred: u64,
}

/// Figures only (the engine's Debug output is scanned for token words).
impl std::fmt::Debug for Pacing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacing")
            .field("max", &self.budget.max())
            .field("interval", &self.budget.interval())
            .field("waiting", &self.waiting.len())
            .field("wake_at", &self.wake_at)
            .field("deferred", &self.deferred)
            .finish_non_exhaustive()
    }
}

impl Pacing {
    pub(crate) fn new(settings: &EngineSettings) -> Self {
        let (max, interval) = settings.budget();
        Pacing {
            budget: RequestBudget::new(max, interval),
            waiting: VecDeque::new(),
            wake_at: None,
            releasing: false,
            renewed: std::collections::HashSet::new(),
            deferred: 0,
        }
    }

    /// The instant to wake up at for the sends waiting, if any.
    pub(crate) fn wake_at(&self) -> Option<SystemTime> {
        self.wake_at.filter(|_| !self.waiting.is_empty())
    }
}

impl Engine {
    /// Spends a token of the budget for the send `(idx, seq)` about to be
    /// handed out at `now`; or puts the send in line (its give-up deadline
    /// is lifted: it is not out) and returns `false`. A send never overtakes
    /// those already waiting.
    pub(crate) fn pace(&mut self, idx: u32, seq: u32, now: SystemTime) -> bool {
        let p = &mut self.pacing;
        let renewed = p.renewed.remove(&idx);
        if (p.releasing || renewed || p.waiting.is_empty()) && p.budget.try_spend(now).is_ok() {
            return true;
        }
        if renewed {
            p.waiting.push_front((idx, seq));
        } else {
            p.waiting.push_back((idx, seq));
        }
        p.deferred += 1;
        p.wake_at = Some(p.budget.next_available_at(now));
        self.arm(idx, None);
        false
    }

    /// Hands out the first waiting send the budget allows at `now`, if any.
    pub(crate) fn release_paced(&mut self, now: SystemTime) -> Option<super::Output> {
        while !self.pacing.waiting.is_empty() {
            if self.pacing.budget.available(now) == 0 {
                self.pacing.wake_at = Some(self.pacing.budget.next_available_at(now));
                return None;
            }
            let (idx, seq) = self.pacing.waiting.pop_front()?;
            let waited = self.grants.get(idx).is_some_and(|s| {
                !s.removed
                    && matches!(s.phase, Phase::InFlight { seq: q, dispatched: false, .. } if q == seq)
            });
            if waited && self.settings.is_shared() {
                // Shared-store mode: the lease was taken before the wait and
                // may be short now; the send goes under a new one (and first
                // in line once it is confirmed), as a send that never waited.
                self.pacing.renewed.insert(idx);
                self.take_lease(idx, now);
                return None;
            }
            self.pacing.releasing = true;
            let out = self.build_send(idx, seq, now);
            self.pacing.releasing = false;
            if out.is_some() {
                return out;
            }
        }
        self.pacing.wake_at = None;
        None
    }

    /// The deadline of the pacing queue was reached: its sends are handed
    /// out by the next [`poll_output`](Self::poll_output).
    pub(crate) fn pacing_due(&mut self, now: SystemTime) {
        if self.pacing.wake_at.is_some_and(|t| t <= now) {
            self.pacing.wake_at = None;
        }
    }

    /// Follows the rate-limit headers of an answer received at `now`.
    pub(crate) fn observe_rate(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        now: SystemTime,
    ) {
        let rate = RateLimit::from_headers(headers);
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.pacing.budget.on_rate_limited(rate.as_ref(), now);
        } else if let Some(rate) = rate {
            self.pacing.budget.observe(&rate, now);
        }
    }

    /// Counts a request the app is about to send outside the engine against
    /// the request budget: `None` if counted (send it now), or the instant
    /// the budget has room again (nothing counted; ask again then).
    pub(crate) fn take_budget(&mut self, now: SystemTime) -> Option<SystemTime> {
        let budget = &mut self.pacing.budget;
        if budget.available(now) == 0 {
            return Some(budget.next_available_at(now));
        }
        budget.spend(now);
        None
    }

    /// How many sends wait for the request budget now, and have waited since
    /// the engine started.
    pub(crate) fn paced_counts(&self) -> (usize, u64) {
        (self.pacing.waiting.len(), self.pacing.deferred)
    }
}
