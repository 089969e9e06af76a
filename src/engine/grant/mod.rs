//! The grant state machine: how each grant moves between its phases. The
//! engine's inputs and commands (`super`) come here; this module and its
//! children are the only ones that change a grant, and they do it through
//! the engine's structures (the slot table, the timers, the cap, the pacer,
//! the Location relations), each of which owns its state.
//!
//! - here: what a caller gets ([`Engine::token_status`]), starting a
//!   refresh (under the cap, under a lease in shared-store mode), the
//!   deadlines, retries;
//! - `answer`: what an answer does (new tokens, rescued tokens, answers
//!   for removed grants);
//! - `failure`: what a refusal does, by kind;
//! - `store`: leases, write outcomes, reads, adopting what the store holds;
//! - `lifecycle`: grants added, restored, released, uninstalled, and the
//!   install webhooks;
//! - `output`: what `poll_output` hands out (sends, mints, records) and the
//!   request budget they go under.

mod answer;
mod failure;
mod lifecycle;
mod output;
mod store;

pub(in crate::engine) use store::never_emitted;

use std::time::SystemTime;

use crate::error::Error;
use crate::secret::AccessToken;
use crate::time::saturating_add as add;

use crate::engine::backoff::backoff;
use crate::engine::output::{EngineEvent, RefreshFailure, TokenStatus};
use crate::engine::pacer::FleetChange;
use crate::engine::queue::Queued;
use crate::engine::record::GrantStatus;
use crate::engine::slot::{Phase, Slot, abandon_in_flight, access_key};
use crate::engine::{Engine, unknown_grant};

/// What a caller with no token gets: told to wait, or, while the grant's
/// writes fail, what the store said.
fn waiting(slot: &Slot) -> TokenStatus {
    match &slot.write.store_failure {
        Some(failure) => TokenStatus::StoreFailing((**failure).clone()),
        None => TokenStatus::Pending,
    }
}

impl Engine {
    /// The access token of `grant`, answered at once.
    ///
    /// - [`TokenStatus::Ready`]: a token valid for at least the expiry skew. A
    ///   refresh may be running ahead of expiry meanwhile. A token from a
    ///   refresh is handed out only once the record with its refresh token
    ///   is written: its [`Output::Persist`](super::Output::Persist) polled
    ///   (in shared-store mode: confirmed). Until then the previous access
    ///   token is, while it lasts.
    /// - [`TokenStatus::Pending`]: the token expired; a refresh is in flight or
    ///   scheduled (and is started now if it was not). However many callers
    ///   ask, one refresh runs. Wait for [`EngineEvent::TokenReady`].
    /// - [`TokenStatus::Suspended`], [`TokenStatus::Unauthorized`],
    ///   [`TokenStatus::ReauthorizationNeeded`],
    ///   [`TokenStatus::ConfigurationRejected`]: see each.
    ///
    /// May queue outputs: call [`poll_output`](Self::poll_output) afterwards.
    ///
    /// # Errors
    /// [`ErrorKind::UnknownGrant`].
    pub(in crate::engine) fn token_status(
        &mut self,
        grant: &str,
        now: SystemTime,
    ) -> Result<TokenStatus, Error> {
        let idx = self.lookup(grant)?;
        let skew = self.settings.expiry_skew;
        let halted = self.halted;
        let Some(slot) = self.grants.get_mut(idx) else {
            return Err(unknown_grant(grant));
        };
        match slot.status {
            GrantStatus::ReauthorizationNeeded { .. } => {
                return Ok(TokenStatus::ReauthorizationNeeded);
            }
            GrantStatus::Suspended { until } => return Ok(TokenStatus::Suspended { until }),
            GrantStatus::Unauthorized { until, .. } => {
                return Ok(TokenStatus::Unauthorized { until });
            }
            GrantStatus::Active => {}
        }
        let usable = |token: &AccessToken, expires: SystemTime| {
            add(now, skew) < expires && slot.refresh.rejected != Some(access_key(token))
        };
        if let Some(prev) = &slot.write.prev {
            // New tokens are not written yet: the old access token, or wait.
            if usable(&prev.0, prev.1) {
                return Ok(TokenStatus::Ready(prev.0.clone()));
            }
            slot.refresh.waiters = true;
            return Ok(waiting(slot));
        }
        if usable(&slot.held.access, slot.held.expires_at()) {
            return Ok(TokenStatus::Ready(slot.held.access.clone()));
        }
        if halted {
            return Ok(TokenStatus::ConfigurationRejected);
        }
        slot.refresh.waiters = true;
        if slot.phase == Phase::Idle && slot.timer.is_some() {
            self.start_refresh(idx, now);
        }
        Ok(self.grants.get(idx).map_or(TokenStatus::Pending, waiting))
    }

    /// Starts a refresh of `grant` now, whatever its expiry: for instance after
    /// an API call was answered 401 with its access token. With `rejected`
    /// (the access token the API refused), nothing starts if that token is
    /// no longer the one handed out (another caller's refresh replaced it),
    /// and it is never handed out again. Single-flight: if a refresh is
    /// already in flight, leased or waiting to be retried, nothing new
    /// starts. A suspended grant, one parked as unauthorized, or one that
    /// needs re-authorization is left as it is.
    pub(in crate::engine) fn refresh_grant(
        &mut self,
        grant: &str,
        rejected: Option<&AccessToken>,
        now: SystemTime,
    ) -> Result<(), Error> {
        let idx = self.lookup(grant)?;
        let Some(slot) = self.grants.get_mut(idx) else {
            return Err(unknown_grant(grant));
        };
        if let Some(rejected) = rejected {
            // Never handed out again (it may be the one handed out while
            // newer tokens are written).
            slot.refresh.rejected = Some(access_key(rejected));
            if *rejected != slot.held.access {
                // Newer tokens are held already (written, or being written).
                return Ok(());
            }
        }
        if slot.status != GrantStatus::Active || slot.phase != Phase::Idle {
            return Ok(());
        }
        slot.refresh.waiters = true;
        self.start_refresh(idx, now);
        Ok(())
    }

    /// Handles every deadline due at `now`: refreshes that are due, retries,
    /// request timeouts, ended leases, re-reads of the store, writes to try
    /// again. Call it when [`poll_timeout`](Self::poll_timeout)'s instant is
    /// reached (calling it early or often is harmless), then drain
    /// [`poll_output`](Self::poll_output).
    ///
    /// Always returns: it handles the deadlines due when called, and every
    /// deadline it sets is later than `now` (at the end of the platform's
    /// time range, where that is impossible, the grant gets none).
    ///
    /// Costs O(log n) per due deadline.
    pub(in crate::engine) fn on_timeout(&mut self, now: SystemTime) {
        self.timers.begin(now);
        self.pacer.due(now);
        while let Some(idx) = self.timers.pop_rewrite(now) {
            self.rewrite_due(idx);
        }
        while let Some(idx) = self.timers.pop_due(now) {
            let Some(slot) = self.grants.get_mut(idx) else {
                continue;
            };
            slot.timer = None;
            match slot.phase {
                Phase::InFlight { .. } => {
                    abandon_in_flight(slot);
                    slot.phase = Phase::Idle;
                    self.retry_after_failure(idx, now, RefreshFailure::TimedOut);
                }
                Phase::Idle | Phase::Backoff | Phase::Suspended => self.start_refresh(idx, now),
                Phase::WaitingLease { until } if until <= now => self.resume(idx, now),
                Phase::WaitingLease { .. } | Phase::Checking | Phase::Reauth => {
                    self.reread_due(idx, now);
                }
                // The lease write was never confirmed (nor refused): take it again.
                Phase::Leasing { .. } => self.take_lease(idx, now),
                Phase::Queued | Phase::Parked => {}
            }
        }
        self.timers.end();
    }

    /// The next instant at which [`handle_timeout`](Self::handle_timeout) must
    /// be called; `None` when nothing is scheduled. Ask again after every
    /// `handle_*` call, `insert`, `restore`, `access_token` and
    /// [`poll_output`](Self::poll_output): the answer may move earlier.
    ///
    /// O(log n).
    #[must_use]
    pub(in crate::engine) fn next_timeout(&self) -> Option<SystemTime> {
        [self.timers.next(), self.pacer.wake_at()]
            .into_iter()
            .flatten()
            .min()
    }

    /// How many refresh requests are out: handed out by
    /// [`poll_output`](Self::poll_output) and neither answered nor given up
    /// on. A driver shutting down cleanly waits for this to reach zero (and
    /// writes what the answers bring). O(cap).
    #[must_use]
    pub(in crate::engine) fn count_in_flight(&self) -> usize {
        self.cap
            .holding(&self.grants)
            .filter(|&idx| {
                self.grants.get(idx).is_some_and(|s| {
                    matches!(
                        s.phase,
                        Phase::InFlight {
                            dispatched: true,
                            ..
                        }
                    )
                })
            })
            .count()
    }

    /// Sets (or clears) a slot's deadline. While
    /// [`handle_timeout`](Self::handle_timeout) handles deadlines up to
    /// `floor`, a deadline at or before it is not set: at the end of time
    /// (where additions saturate) the grant rests rather than coming due
    /// again at once.
    pub(in crate::engine::grant) fn arm(&mut self, idx: u32, at: Option<SystemTime>) {
        if let Some(slot) = self.grants.get_mut(idx) {
            self.timers.arm(idx, &mut slot.timer, at);
        }
    }

    /// Starts the grants waiting for a place under the cap, in order, while
    /// places are free. Returns whether it started any.
    pub(in crate::engine::grant) fn admit(&mut self, now: SystemTime) -> bool {
        let mut started = false;
        while let Some(t) = self.cap.next_waiting(&self.grants) {
            let queued = self
                .grants
                .get(t.slot)
                .is_some_and(|s| s.life == t.life && !s.removed && s.phase == Phase::Queued);
            if queued {
                if let Some(slot) = self.grants.get_mut(t.slot) {
                    slot.phase = Phase::Idle;
                }
                self.start_refresh(t.slot, now);
                started = true;
            }
        }
        started
    }

    pub(in crate::engine::grant) fn start_refresh(&mut self, idx: u32, now: SystemTime) {
        if self.halted {
            self.park(idx);
            return;
        }
        if self.stopping {
            // Shutting down: nothing new starts.
            self.arm(idx, None);
            return;
        }
        let shared = self.settings.is_shared();
        let Some(slot) = self.grants.get(idx) else {
            return;
        };
        if matches!(slot.status, GrantStatus::ReauthorizationNeeded { .. })
            || matches!(
                slot.phase,
                Phase::InFlight { .. } | Phase::Leasing { .. } | Phase::Checking | Phase::Queued
            )
        {
            return;
        }
        let write_out = slot.write.is_out();
        self.arm(idx, None);
        if write_out {
            // A write is still out: refresh once its outcome is known.
            if let Some(slot) = self.grants.get_mut(idx) {
                slot.phase = Phase::Idle;
                slot.refresh.deferred = true;
            }
            return;
        }
        if self.cap.is_full(&self.grants) {
            let t = self.grants.tag(idx);
            if let Some(slot) = self.grants.get_mut(idx) {
                slot.phase = Phase::Queued;
            }
            self.cap.wait(t);
            return;
        }
        let Some(slot) = self.grants.get_mut(idx) else {
            return;
        };
        slot.refresh.deferred = false;
        slot.refresh.run = slot.refresh.run.wrapping_add(1);
        let run = slot.refresh.run;
        let t = self.grants.tag(idx);
        self.cap.take(t, run);
        if shared {
            self.take_lease(idx, now);
        } else {
            self.send(idx, now);
        }
    }

    /// Queues the refresh request. Its deadlines are set again when it is
    /// handed out ([`poll_output`](Self::poll_output)).
    pub(in crate::engine::grant) fn send(&mut self, idx: u32, now: SystemTime) {
        if self.halted {
            self.park(idx);
            return;
        }
        let seq = self.grants.next_seq();
        let (window, timeout) = (self.settings.dispatch_window, self.settings.request_timeout);
        let Some(slot) = self.grants.get_mut(idx) else {
            return;
        };
        let Some(not_after) = now
            .checked_add(window)
            .filter(|t| t.checked_add(timeout).is_some())
        else {
            // The end of time: no deadline could follow it; the grant rests.
            slot.phase = Phase::Idle;
            self.arm(idx, None);
            return;
        };
        slot.phase = Phase::InFlight {
            seq,
            epoch: slot.refresh.epoch,
            sent_at: now,
            not_after,
            dispatched: false,
        };
        self.arm(idx, Some(add(not_after, timeout)));
        self.queue.push_back(Queued::Send { slot: idx, seq });
    }

    pub(in crate::engine::grant) fn park(&mut self, idx: u32) {
        if let Some(slot) = self.grants.get_mut(idx) {
            self.timers.set(idx, &mut slot.timer, None);
            if slot.phase != Phase::Parked {
                slot.phase = Phase::Parked;
                self.parked.push(idx);
            }
        }
        // Slots leave `Parked` without leaving the list; keep it short.
        if self.parked.len() > 2 * self.grants.capacity() + 64 {
            let grants = &self.grants;
            self.parked
                .retain(|&p| grants.get(p).is_some_and(|s| s.phase == Phase::Parked));
            self.parked.sort_unstable();
            self.parked.dedup();
        }
    }

    /// Replaces the configuration (e.g. a corrected client secret) and lifts
    /// the halt that a rejected configuration put on every grant: their
    /// refreshes are due at once.
    /// The store's answer to the claim on budget `key`.
    pub(in crate::engine) fn on_claimed(
        &mut self,
        key: &str,
        outcome: crate::engine::claim::ClaimOutcome,
        now: SystemTime,
    ) {
        let event = match self.pacer.claimed(key, outcome, now) {
            Some(FleetChange::Fallback { share, error }) => {
                EngineEvent::SharedBudgetFallback { share, error }
            }
            Some(FleetChange::Recovered) => EngineEvent::SharedBudgetRecovered,
            None => return,
        };
        self.queue.push_back(Queued::Global(event));
    }

    pub(in crate::engine) fn set_config(&mut self, config: crate::config::Config, now: SystemTime) {
        self.pacer.set_app(config.client_id());
        self.config = config;
        self.halted = false;
        self.unauthorized.reset();
        for idx in std::mem::take(&mut self.parked) {
            if let Some(slot) = self.grants.get_mut(idx)
                && slot.phase == Phase::Parked
                && !slot.removed
            {
                slot.phase = Phase::Idle;
                self.timers.set(idx, &mut slot.timer, Some(now));
            }
        }
    }

    pub(in crate::engine::grant) fn retry_after_failure(
        &mut self,
        idx: u32,
        now: SystemTime,
        failure: RefreshFailure,
    ) {
        let (base, cap) = (self.settings.backoff_base, self.settings.backoff_cap);
        let Some(slot) = self.grants.get_mut(idx) else {
            return;
        };
        slot.refresh.attempt = slot.refresh.attempt.saturating_add(1);
        let at = add(now, backoff(base, cap, slot.refresh.attempt, &mut self.rng));
        slot.phase = Phase::Backoff;
        slot.refresh.last_failure = Some(Box::new(failure.clone()));
        let event = EngineEvent::RetryScheduled {
            grant: slot.key.clone(),
            at,
            attempt: slot.refresh.attempt,
            failure,
        };
        self.arm(idx, Some(at));
        self.queue
            .push_back(Queued::Event(self.grants.tag(idx), event));
    }

    pub(in crate::engine::grant) fn rearm_idle(&mut self, idx: u32, now: SystemTime) {
        let margin = self.settings.refresh_margin;
        if let Some(slot) = self.grants.get_mut(idx) {
            slot.phase = Phase::Idle;
            let at = slot.held.refresh_at(margin).max(now);
            self.arm(idx, Some(at));
        }
    }

    /// Back to the refresh schedule: refreshed now if due, else at its time.
    pub(in crate::engine::grant) fn resume(&mut self, idx: u32, now: SystemTime) {
        let margin = self.settings.refresh_margin;
        let Some(slot) = self.grants.get_mut(idx) else {
            return;
        };
        slot.phase = Phase::Idle;
        let at = slot.held.refresh_at(margin);
        if at <= now {
            self.start_refresh(idx, now);
        } else {
            self.arm(idx, Some(at));
        }
    }

    /// The refresh time of a grant just loaded: if it is already due (and
    /// in shared-store mode, where other engines load the same grants), a
    /// random point within [`EngineSettings::refresh_spread`](super::EngineSettings::refresh_spread)
    /// from now, so that engines starting together over the same grants
    /// neither refresh all at once nor take them in the same order.
    pub(in crate::engine::grant) fn spread_from(
        &mut self,
        at: SystemTime,
        now: SystemTime,
    ) -> SystemTime {
        let spread = self.settings.refresh_spread;
        if at > now || spread.is_zero() || !self.settings.is_shared() {
            return at.max(now);
        }
        add(now, spread.mul_f64(self.rng.next_unit()))
    }

    pub(in crate::engine) fn lookup(&self, grant: &str) -> Result<u32, Error> {
        self.grants.find(grant).ok_or_else(|| unknown_grant(grant))
    }
}
