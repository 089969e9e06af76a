//! The engine's request budget and the sends waiting for it. Every request
//! the engine hands out (a refresh or a Location-token mint) spends one
//! token of a [`RequestBudget`]; a send over budget waits its turn in a
//! first-in, first-out line and is handed out when the budget frees up. The
//! budget follows the `X-RateLimit-*` headers of every answer, and a 429
//! spends it all (100 requests per 10 s per app by default: see
//! docs/highlevel-facts.md, "Rate limits").
//!
//! Costs O(1) per send: nothing is scanned; a waiting send whose grant
//! moved on meanwhile is dropped when its turn comes.

use std::collections::{HashSet, VecDeque};
use std::time::SystemTime;

use http::{HeaderMap, StatusCode};

use crate::rate_limit::RateLimit;
use crate::request_budget::RequestBudget;

use super::settings::EngineSettings;

/// The budget and the sends waiting for it.
pub(crate) struct Pacer {
    budget: RequestBudget,
    /// Sends waiting for the budget, in order: (slot, sequence number).
    waiting: VecDeque<(u32, u32)>,
    /// When the budget frees up for the first waiting send.
    wake_at: Option<SystemTime>,
    /// While a waiting send is being handed out.
    releasing: bool,
    /// Shared-store mode: slots whose send waited, now under a new lease:
    /// first in line once it is confirmed.
    renewed: HashSet<u32>,
    /// Sends that waited for the budget, in all (for metrics and tests).
    deferred: u64,
}

/// Figures only (the engine's Debug output is scanned for token words).
impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("max", &self.budget.max())
            .field("interval", &self.budget.interval())
            .field("waiting", &self.waiting.len())
            .field("wake_at", &self.wake_at)
            .field("deferred", &self.deferred)
            .finish_non_exhaustive()
    }
}

/// What the pacer says of the first send waiting.
pub(crate) enum Turn {
    /// Nothing waits, or the budget has no room yet.
    None,
    /// This send may go now.
    Send { slot: u32, seq: u32 },
}

impl Pacer {
    pub(crate) fn new(settings: &EngineSettings) -> Self {
        let (max, interval) = settings.budget();
        Pacer {
            budget: RequestBudget::new(max, interval),
            waiting: VecDeque::new(),
            wake_at: None,
            releasing: false,
            renewed: HashSet::new(),
            deferred: 0,
        }
    }

    /// The instant to wake up at for the sends waiting, if any.
    pub(crate) fn wake_at(&self) -> Option<SystemTime> {
        self.wake_at.filter(|_| !self.waiting.is_empty())
    }

    /// Spends a token for the send `(slot, seq)` about to be handed out at
    /// `now`; or puts it in line and returns `false`. A send never overtakes
    /// those already waiting, except the one being released, or one that
    /// waited and took a new lease (first in line).
    pub(crate) fn admit(&mut self, slot: u32, seq: u32, now: SystemTime) -> bool {
        let renewed = self.renewed.remove(&slot);
        if (self.releasing || renewed || self.waiting.is_empty())
            && self.budget.try_spend(now).is_ok()
        {
            return true;
        }
        if renewed {
            self.waiting.push_front((slot, seq));
        } else {
            self.waiting.push_back((slot, seq));
        }
        self.deferred += 1;
        self.wake_at = Some(self.budget.next_available_at(now));
        false
    }

    /// The first waiting send, if the budget allows one at `now` (taken out
    /// of the line); the caller hands it out between
    /// [`begin_release`](Self::begin_release) and
    /// [`end_release`](Self::end_release), or drops it.
    pub(crate) fn next(&mut self, now: SystemTime) -> Turn {
        if self.waiting.is_empty() {
            self.wake_at = None;
            return Turn::None;
        }
        if self.budget.available(now) == 0 {
            self.wake_at = Some(self.budget.next_available_at(now));
            return Turn::None;
        }
        match self.waiting.pop_front() {
            Some((slot, seq)) => Turn::Send { slot, seq },
            None => Turn::None,
        }
    }

    /// A send released from the line is being built: it may spend.
    pub(crate) fn begin_release(&mut self) {
        self.releasing = true;
    }

    pub(crate) fn end_release(&mut self) {
        self.releasing = false;
    }

    /// Shared-store mode: the send of `slot` waited; it goes under a new
    /// lease, first in line once that is confirmed.
    pub(crate) fn renew(&mut self, slot: u32) {
        self.renewed.insert(slot);
    }

    /// The line's deadline was reached: its sends are handed out by the next
    /// poll.
    pub(crate) fn due(&mut self, now: SystemTime) {
        if self.wake_at.is_some_and(|t| t <= now) {
            self.wake_at = None;
        }
    }

    /// Follows the rate-limit headers of an answer received at `now`.
    pub(crate) fn observe(&mut self, status: StatusCode, headers: &HeaderMap, now: SystemTime) {
        let rate = RateLimit::from_headers(headers);
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.budget.on_rate_limited(rate.as_ref(), now);
        } else if let Some(rate) = rate {
            self.budget.observe(&rate, now);
        }
    }

    /// A 429 (as a parsed error): the whole budget is spent.
    pub(crate) fn rate_limited(&mut self, rate: Option<&RateLimit>, now: SystemTime) {
        self.budget.on_rate_limited(rate, now);
    }

    /// Counts a request the app is about to send outside the engine: `None`
    /// if counted (send it now), or the instant the budget has room again
    /// (nothing counted).
    pub(crate) fn take(&mut self, now: SystemTime) -> Option<SystemTime> {
        if self.budget.available(now) == 0 {
            return Some(self.budget.next_available_at(now));
        }
        self.budget.spend(now);
        None
    }

    /// How many sends wait now, and have waited since the engine started.
    pub(crate) fn counts(&self) -> (usize, u64) {
        (self.waiting.len(), self.deferred)
    }
}
