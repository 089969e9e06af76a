//! What a refused or failed refresh does to its grant, by [`ErrorKind`]:
//! re-authorization, suspension, a halt of the client, a wait under the rate
//! limit, or a retry. Refusals with a 401 that do not name the client are in
//! [`unauthorized`](super::unauthorized); failures of minted Location grants
//! in [`location`](super::location).

use std::time::{Duration, SystemTime};

use crate::error::{Error, ErrorKind};
use crate::rate_limit::saturating_add as add;

use super::Engine;
use super::output::{Event, Failure};
use super::queue::Queued;
use super::record::GrantStatus;
use super::slot::Phase;

impl Engine {
    /// What a failed answer does to the grant, by [`Error::kind`].
    pub(crate) fn handle_failure(&mut self, idx: u32, error: Error, now: SystemTime) {
        // Location grants the engine mints have failures of their own.
        let Some(error) = self.minted_failure(idx, error, now) else {
            return;
        };
        if let Some(token) = error.rescued_refresh_token()
            && self.rescue(idx, &token.clone())
        {
            // Whatever the answer said, the next try goes with the new token.
            self.retry_after_failure(idx, now, Failure::Answer(error));
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
            _ => self.retry_after_failure(idx, now, Failure::Answer(error)),
        }
    }

    /// Re-authorization needed: persisted in that state, and reported once
    /// that write is confirmed (a lost compare-and-swap means the store
    /// holds something newer, which is adopted instead).
    pub(crate) fn condemn(&mut self, idx: u32, error: Error) {
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

    pub(crate) fn suspend(&mut self, idx: u32, error: Error, now: SystemTime) {
        let suspended_retry = self.settings.suspended_retry;
        let Some(slot) = self.grants.get_mut(idx) else {
            return;
        };
        let grant = slot.key.clone();
        let until = super::schedule::ceil_seconds(add(now, suspended_retry));
        slot.status = GrantStatus::Suspended { until };
        slot.phase = Phase::Suspended;
        slot.refresh.waiters = false;
        slot.write.version = slot.write.version.saturating_add(1);
        self.timers.set(idx, &mut slot.timer, Some(until));
        let t = self.grants.tag(idx);
        self.queue.push_back(Queued::Persist(t));
        self.queue.push_back(Queued::Event(
            t,
            Event::Suspended {
                grant,
                until,
                error,
            },
        ));
    }

    pub(crate) fn reject_configuration(&mut self, idx: u32, error: Error) {
        let was_halted = self.halted;
        self.halted = true;
        self.park(idx);
        if !was_halted && let Some(slot) = self.grants.get(idx) {
            let grant = slot.key.clone();
            self.queue.push_back(Queued::Event(
                self.grants.tag(idx),
                Event::ConfigurationRejected { grant, error },
            ));
        }
    }

    pub(crate) fn wait_rate_limit(&mut self, idx: u32, error: Error, now: SystemTime) {
        let rate_wait = self.settings.rate_limit_wait;
        let Some(slot) = self.grants.get_mut(idx) else {
            return;
        };
        let at = error
            .retry_at(now)
            .unwrap_or(add(now, rate_wait))
            .max(add(now, Duration::from_secs(1)));
        slot.phase = Phase::Backoff;
        slot.refresh.last_failure = Some(Box::new(Failure::Answer(error.clone())));
        self.timers.set(idx, &mut slot.timer, Some(at));
        let event = Event::RetryScheduled {
            grant: slot.key.clone(),
            at,
            attempt: slot.refresh.attempt,
            failure: Failure::Answer(error),
        };
        self.queue
            .push_back(Queued::Event(self.grants.tag(idx), event));
    }
}
