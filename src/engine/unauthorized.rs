//! Refreshes refused with a 401 that does not name the client credentials
//! ([`ErrorKind::GrantUnauthorized`]).
//!
//! Such a refusal concerns one grant: it keeps its refresh token, is parked
//! with its own status and tried again at growing intervals, and the other
//! grants go on. A run of them across distinct grants, with no successful
//! refresh in between, means the client is rejected after all: the engine
//! halts as for [`ErrorKind::InvalidClient`].

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use crate::error::{Error, ErrorKind};
use crate::rate_limit::saturating_add as add;

use super::Engine;
use super::output::Event;
use super::queue::Queued;
use super::record::{GrantId, GrantStatus};
use super::schedule::ceil_seconds;
use super::slot::Phase;

/// The distinct grants refused so since the last successful refresh.
#[derive(Debug, Default)]
pub(super) struct Streak {
    grants: HashSet<GrantId>,
}

impl Streak {
    /// Counts a refusal of `grant`; returns how many distinct grants have
    /// been refused in a row now.
    pub(super) fn refused(&mut self, grant: &GrantId) -> usize {
        if !self.grants.contains(grant) {
            self.grants.insert(grant.clone());
        }
        self.grants.len()
    }

    /// A refresh succeeded, or the configuration changed: the run is over.
    pub(super) fn reset(&mut self) {
        if !self.grants.is_empty() {
            // A new set, not `clear`: clearing costs the old capacity on
            // every later success.
            self.grants = HashSet::new();
        }
    }
}

/// The wait before the next try after refusal number `n` (1-based) in a row:
/// `first · 2^(n-1)`, capped at `cap`.
fn retry_delay(first: Duration, cap: Duration, n: u32) -> Duration {
    let exp = n.saturating_sub(1).min(31);
    first.checked_mul(1 << exp).unwrap_or(cap).min(cap)
}

impl Engine {
    /// The refresh of the grant in slot `idx` got a 401 that does not name
    /// the client: park the grant (its refresh token is kept), or halt if
    /// this makes the run of distinct refused grants long enough.
    pub(super) fn grant_unauthorized(&mut self, idx: u32, error: Error, now: SystemTime) {
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
                    Event::ConfigurationRejected { grant, error },
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
    /// [`Event::Unauthorized`].
    pub(super) fn park_unauthorized_until(&mut self, idx: u32, error: Error, until: SystemTime) {
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
            Event::Unauthorized {
                grant,
                until,
                error,
            },
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_up_to_the_cap() {
        let (first, cap) = (Duration::from_secs(3600), Duration::from_secs(86_400));
        let delays: Vec<u64> = (1..=7)
            .map(|n| retry_delay(first, cap, n).as_secs() / 3600)
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 24, 24]);
        assert_eq!(retry_delay(first, cap, u32::MAX), cap);
        assert_eq!(retry_delay(Duration::MAX, Duration::MAX, 40), Duration::MAX);
    }

    #[test]
    fn the_streak_counts_distinct_grants() {
        let mut s = Streak::default();
        assert_eq!(s.refused(&GrantId::new("a")), 1);
        assert_eq!(s.refused(&GrantId::new("a")), 1);
        assert_eq!(s.refused(&GrantId::new("b")), 2);
        s.reset();
        assert_eq!(s.refused(&GrantId::new("b")), 1);
    }
}
