//! What a refused or failed refresh does to its grant, by [`ErrorKind`]:
//! re-authorization, suspension, a halt of the client, a wait under the rate
//! limit, a grant parked as unauthorized (a 401 that does not name the
//! client), or a retry. Minted Location grants have refusals of their own.

use std::time::{Duration, SystemTime};

use crate::error::{Error, ErrorKind};
use crate::time::saturating_add as add;

use crate::engine::Engine;
use crate::engine::output::{EngineEvent, RefreshFailure};
use crate::engine::queue::Queued;
use crate::engine::record::GrantStatus;
use crate::engine::slot::Phase;
use crate::engine::unauthorized::retry_delay;
use crate::time::ceil_seconds;

impl Engine {
    /// What a failed answer does to the grant, by [`Error::kind`].
    pub(in crate::engine::grant) fn handle_failure(
        &mut self,
        idx: u32,
        error: Error,
        now: SystemTime,
    ) {
        // Location grants the engine mints have failures of their own.
        let Some(error) = self.minted_failure(idx, error, now) else {
            return;
        };
        if let Some(token) = error.rescued_refresh_token()
            && self.rescue(idx, &token.clone())
        {
            // Whatever the answer said, the next try goes with the new token.
            self.retry_after_failure(idx, now, RefreshFailure::Answer(error));
            return;
        }
        match error.kind() {
            ErrorKind::InvalidGrant if self.settings.is_shared() => {
                self.check_refusal(idx, error, now)
            }
            ErrorKind::InvalidGrant => self.condemn(idx, error),
            ErrorKind::LocationNotActive => self.suspend(idx, error, now),
            ErrorKind::InvalidClient => self.reject_configuration(idx, error),
            ErrorKind::GrantUnauthorized => self.grant_unauthorized(idx, error, now),
            ErrorKind::RateLimited => self.wait_rate_limit(idx, error, now),
            _ => self.retry_after_failure(idx, now, RefreshFailure::Answer(error)),
        }
    }

    /// Re-authorization needed: persisted in that state, and reported once
    /// that write is confirmed (a lost compare-and-swap means the store
    /// holds something newer, which is adopted instead).
    pub(in crate::engine::grant) fn condemn(&mut self, idx: u32, error: Error) {
        let Some(slot) = self.grants.get_mut(idx) else {
            return;
        };
        slot.status = GrantStatus::ReauthorizationNeeded {
            reason: Some(error.to_string()),
        };
        slot.phase = Phase::Reauth;
        slot.refresh.waiters = false;
        slot.shared.rereads = 0;
        slot.write.version = slot.write.version.saturating_add(1);
        slot.write.condemned = Some(Box::new(error));
        self.timers.set(idx, &mut slot.timer, None);
        self.queue.push_back(Queued::Persist(self.grants.tag(idx)));
    }

    pub(in crate::engine::grant) fn suspend(&mut self, idx: u32, error: Error, now: SystemTime) {
        let suspended_retry = self.settings.suspended_retry;
        let Some(slot) = self.grants.get_mut(idx) else {
            return;
        };
        let grant = slot.key.clone();
        let until = ceil_seconds(add(now, suspended_retry));
        slot.status = GrantStatus::Suspended { until };
        slot.phase = Phase::Suspended;
        slot.refresh.waiters = false;
        slot.write.version = slot.write.version.saturating_add(1);
        self.timers.set(idx, &mut slot.timer, Some(until));
        let t = self.grants.tag(idx);
        self.queue.push_back(Queued::Persist(t));
        self.queue.push_back(Queued::Event(
            t,
            EngineEvent::Suspended {
                grant,
                until,
                error,
            },
        ));
    }

    pub(in crate::engine::grant) fn reject_configuration(&mut self, idx: u32, error: Error) {
        let was_halted = self.halted;
        self.halted = true;
        self.park(idx);
        if !was_halted && let Some(slot) = self.grants.get(idx) {
            let grant = slot.key.clone();
            self.queue.push_back(Queued::Event(
                self.grants.tag(idx),
                EngineEvent::ConfigurationRejected { grant, error },
            ));
        }
    }

    pub(in crate::engine::grant) fn wait_rate_limit(
        &mut self,
        idx: u32,
        error: Error,
        now: SystemTime,
    ) {
        let rate_wait = self.settings.rate_limit_wait;
        let Some(slot) = self.grants.get_mut(idx) else {
            return;
        };
        let at = error
            .retry_at(now)
            .unwrap_or(add(now, rate_wait))
            .max(add(now, Duration::from_secs(1)));
        slot.phase = Phase::Backoff;
        slot.refresh.last_failure = Some(Box::new(RefreshFailure::Answer(error.clone())));
        self.timers.set(idx, &mut slot.timer, Some(at));
        let event = EngineEvent::RetryScheduled {
            grant: slot.key.clone(),
            at,
            attempt: slot.refresh.attempt,
            failure: RefreshFailure::Answer(error),
        };
        self.queue
            .push_back(Queued::Event(self.grants.tag(idx), event));
    }

    /// The refresh of the grant in slot `idx` got a 401 that does not name
    /// the client: park the grant (its refresh token is kept), or halt if
    /// this makes the run of distinct refused grants long enough.
    pub(in crate::engine::grant) fn grant_unauthorized(
        &mut self,
        idx: u32,
        error: Error,
        now: SystemTime,
    ) {
        let limit = self.settings.unauthorized_halt_after;
        let (first, cap) = (
            self.settings.unauthorized_retry,
            self.settings.unauthorized_retry_cap,
        );
        let halted = self.halted;
        let Some(slot) = self.grants.get_mut(idx) else {
            return;
        };
        let grant = slot.key.clone();
        let run = self.unauthorized.refused(&grant);
        if run >= usize::try_from(limit).unwrap_or(usize::MAX) {
            let detail = if run == 1 {
                "a refresh was refused with HTTP 401, and one such grant is the limit: the \
                 client is taken as rejected"
                    .to_owned()
            } else {
                format!(
                    "{run} distinct grants in a row were refused with HTTP 401, with no \
                     successful refresh in between: the client is taken as rejected"
                )
            };
            let error = error.reclassified(ErrorKind::InvalidClient, detail);
            self.halted = true;
            self.park(idx);
            if !halted {
                self.queue.push_back(Queued::Event(
                    self.grants.tag(idx),
                    EngineEvent::ConfigurationRejected { grant, error },
                ));
            }
            return;
        }
        slot.refresh.attempt = slot.refresh.attempt.saturating_add(1);
        let until = ceil_seconds(add(now, retry_delay(first, cap, slot.refresh.attempt)));
        self.park_unauthorized_until(idx, error, until);
    }

    /// Parks the grant in slot `idx` as unauthorized (its refresh token is
    /// kept) until `until`: persisted in that state, and reported with
    /// [`EngineEvent::Unauthorized`].
    pub(in crate::engine::grant) fn park_unauthorized_until(
        &mut self,
        idx: u32,
        error: Error,
        until: SystemTime,
    ) {
        let Some(slot) = self.grants.get_mut(idx) else {
            return;
        };
        let grant = slot.key.clone();
        slot.status = GrantStatus::Unauthorized {
            until,
            reason: Some(error.to_string()),
        };
        slot.phase = Phase::Backoff;
        slot.refresh.waiters = false;
        slot.write.version = slot.write.version.saturating_add(1);
        self.timers.set(idx, &mut slot.timer, Some(until));
        let t = self.grants.tag(idx);
        self.queue.push_back(Queued::Persist(t));
        self.queue.push_back(Queued::Event(
            t,
            EngineEvent::Unauthorized {
                grant,
                until,
                error,
            },
        ));
    }

    /// A failed answer for a Location grant the engine mints, handled here;
    /// any other is handed back.
    ///
    /// - A mint refused with 403 ("The token does not have access to this
    ///   location.": the location was uninstalled): re-authorization needed
    ///   for that location alone.
    /// - A mint refused with 401: that location is parked as unauthorized
    ///   and tried again later; it does not count towards the client's
    ///   rejection (the other locations go on).
    /// - The grant's own refresh token refused as invalid: minted again.
    pub(in crate::engine::grant) fn minted_failure(
        &mut self,
        idx: u32,
        error: Error,
        now: SystemTime,
    ) -> Option<Error> {
        let minted = self
            .grants
            .get(idx)
            .is_some_and(|s| self.locations.parent_of(s.key.as_str()).is_some());
        if !minted {
            return Some(error);
        }
        let mint = self.mints_next(idx);
        match error.kind() {
            ErrorKind::Forbidden if mint => self.condemn(idx, error),
            ErrorKind::Unauthorized | ErrorKind::GrantUnauthorized | ErrorKind::InvalidClient
                if mint =>
            {
                self.park_unauthorized(idx, error, now);
            }
            ErrorKind::InvalidGrant if !mint => {
                if let Some(slot) = self.grants.get_mut(idx) {
                    slot.held.clear_refresh();
                    slot.phase = Phase::Idle;
                }
                self.start_refresh(idx, now);
            }
            _ => return Some(error),
        }
        None
    }

    fn park_unauthorized(&mut self, idx: u32, error: Error, now: SystemTime) {
        let until = ceil_seconds(add(now, self.settings.unauthorized_retry));
        self.park_unauthorized_until(idx, error, until);
    }
}
