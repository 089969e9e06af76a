//! One lane's share of the budget every process draws from through the
//! store: the tokens the store granted and not spent yet, the claim out,
//! and the local share used while the store cannot answer.

use std::time::{Duration, SystemTime};

use crate::request_budget::RequestBudget;
use crate::time::saturating_add as add;

/// The first wait before claiming again after the store failed; it doubles
/// up to [`CLAIM_RETRY_CAP`].
const CLAIM_RETRY_BASE: Duration = Duration::from_millis(250);

/// The longest wait between claims while the store fails.
const CLAIM_RETRY_CAP: Duration = Duration::from_secs(10);

/// The shortest wait before claiming again after the store granted fewer
/// tokens than asked, so that a store that names no time is not asked in a
/// loop.
const CLAIM_AGAIN_MIN: Duration = Duration::from_millis(5);

/// Tokens granted by the store for one kind of request, good until `until`.
#[derive(Debug, Clone, Copy)]
struct Allotment {
    left: u32,
    until: SystemTime,
}

impl Allotment {
    const NONE: Allotment = Allotment {
        left: 0,
        until: SystemTime::UNIX_EPOCH,
    };

    fn usable(&self, now: SystemTime) -> bool {
        self.left > 0 && self.until > now
    }
}

/// What one claim asked for.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Asked {
    pub(super) sends: u32,
    pub(super) others: u32,
}

/// The share of its own a lane draws on when the store cannot answer.
#[derive(Debug)]
struct Share {
    budget: RequestBudget,
    /// The store answers again: the share still holds (with the tokens the
    /// store grants) until what was spent on it is back, so that this
    /// process never sends more than its share in one interval.
    cooling: bool,
}

/// A lane's draw on the shared budget.
#[derive(Debug)]
pub(super) struct Fleet {
    sends: Allotment,
    others: Allotment,
    /// A counted request was refused for want of a granted token.
    pub(super) others_wanted: bool,
    /// The claim out, if one is.
    claim: Option<Asked>,
    /// No claim before this instant.
    retry_at: Option<SystemTime>,
    /// Processes last seen drawing from the budget (0: never heard).
    holders: u32,
    /// Claims failed in a row.
    failures: u32,
    /// This process's share of the budget, while the store cannot answer
    /// and for one interval after.
    share: Option<Share>,
}

impl Fleet {
    pub(super) fn new() -> Self {
        Fleet {
            sends: Allotment::NONE,
            others: Allotment::NONE,
            others_wanted: false,
            claim: None,
            retry_at: None,
            holders: 0,
            failures: 0,
            share: None,
        }
    }

    /// Whether the share (if any) has room at `now`.
    fn share_has_room(&self, now: SystemTime) -> bool {
        self.share
            .as_ref()
            .is_none_or(|s| s.budget.available(now) > 0)
    }

    /// Whether the store is failing: the share alone is drawn on.
    fn failing(&self) -> bool {
        self.share.as_ref().is_some_and(|s| !s.cooling)
    }

    /// Whether a request on `granted` may go at `now`: on a token granted
    /// (within the share while it cools), or while the store fails, on the
    /// share until the next claim is due (a request then waits for that
    /// claim, which ends the failure if the store answers).
    fn may_use(&self, granted: Allotment, now: SystemTime) -> bool {
        if self.failing() {
            self.share_has_room(now) && self.retry_at.is_some_and(|t| t > now)
        } else {
            granted.usable(now) && self.share_has_room(now)
        }
    }

    pub(super) fn can_send(&self, now: SystemTime) -> bool {
        self.may_use(self.sends, now)
    }

    pub(super) fn can_count(&self, now: SystemTime) -> bool {
        self.may_use(self.others, now)
    }

    fn take(&mut self, others: bool, now: SystemTime) {
        if !self.failing() {
            let granted = if others {
                &mut self.others
            } else {
                &mut self.sends
            };
            granted.left = granted.left.saturating_sub(1);
        }
        if let Some(share) = &mut self.share {
            share.budget.spend(now);
        }
    }

    pub(super) fn take_send(&mut self, now: SystemTime) {
        self.take(false, now);
    }

    pub(super) fn take_count(&mut self, now: SystemTime) {
        self.take(true, now);
    }

    /// Whether a claim may go out at `now` (not while the share cools with
    /// no room: the tokens granted could not be used).
    pub(super) fn may_claim(&self, now: SystemTime) -> bool {
        self.claim.is_none()
            && self.retry_at.is_none_or(|t| t <= now)
            && (self.failing() || self.share_has_room(now))
    }

    /// Whether a claim at `now` could only tell whether the store answers
    /// again: the store fails and the share has no room, so tokens granted
    /// now could not be used. Such a claim asks for none.
    pub(super) fn probe_only(&self, now: SystemTime) -> bool {
        self.failing() && !self.share_has_room(now)
    }

    pub(super) fn is_claiming(&self) -> bool {
        self.claim.is_some()
    }

    /// A claim goes out.
    pub(super) fn claimed(&mut self, asked: Asked) {
        self.claim = Some(asked);
        self.retry_at = None;
        if asked.others > 0 || self.failing() {
            self.others_wanted = false;
        }
    }

    /// The store granted tokens at `now`, good for `hold`. Returns whether
    /// the lane's failure ended with it.
    pub(super) fn granted(
        &mut self,
        sends: u32,
        others: u32,
        holders: u32,
        next_free_in: Duration,
        hold: Duration,
        now: SystemTime,
    ) -> bool {
        let asked = self.claim.take().unwrap_or_default();
        let until = add(now, hold);
        if sends > 0 {
            self.sends = Allotment { left: sends, until };
        }
        if others > 0 {
            self.others = Allotment {
                left: others,
                until,
            };
        }
        self.holders = holders.max(1);
        self.failures = 0;
        let short = sends < asked.sends || others < asked.others;
        self.retry_at = short.then(|| add(now, next_free_in.max(CLAIM_AGAIN_MIN)));
        let recovered = self.failing();
        if let Some(share) = &mut self.share {
            share.cooling = true;
        }
        self.cool(now);
        recovered
    }

    /// Ends the share once it cooled: nothing spent on it counts any more.
    pub(super) fn cool(&mut self, now: SystemTime) {
        if self
            .share
            .as_ref()
            .is_some_and(|s| s.cooling && s.budget.spent(now) == 0)
        {
            self.share = None;
        }
    }

    /// The store could not answer at `now`: claims wait on a backoff, and
    /// the lane draws from a share of `max` per `interval` of its own.
    /// Returns the share if the lane's failure began now.
    pub(super) fn failed(
        &mut self,
        max: u32,
        interval: Duration,
        margin: Duration,
        now: SystemTime,
    ) -> Option<u32> {
        self.claim = None;
        self.failures = self.failures.saturating_add(1);
        let doublings = self.failures.saturating_sub(1).min(16);
        let wait = CLAIM_RETRY_BASE
            .saturating_mul(1 << doublings)
            .min(CLAIM_RETRY_CAP);
        self.retry_at = Some(add(now, wait));
        match &mut self.share {
            Some(share) if !share.cooling => None,
            Some(share) => {
                // Failing again while cooling: what was spent still counts.
                share.cooling = false;
                Some(share.budget.max())
            }
            None => {
                // Never heard from the store: assume another process draws too.
                let divisor = if self.holders == 0 { 2 } else { self.holders };
                let n = (max / divisor).max(1);
                self.share = Some(Share {
                    budget: RequestBudget::new(n, interval).with_margin(margin),
                    cooling: false,
                });
                Some(n)
            }
        }
    }

    /// When a send may go, as far as the shared budget is concerned: `now`
    /// if it may, when the share has room or the next claim is due, `None`
    /// while a claim is out (its answer wakes the lane).
    pub(super) fn ready_at(&self, now: SystemTime) -> Option<SystemTime> {
        if self.can_send(now) {
            return Some(now);
        }
        if self.claim.is_some() {
            return None;
        }
        let claim = self.retry_at.map_or(now, |t| t.max(now));
        let room = self
            .share
            .as_ref()
            .map_or(now, |s| s.budget.next_available_at(now));
        Some(if self.failing() {
            claim.min(room)
        } else {
            claim.max(room)
        })
    }

    /// Nothing granted, out or pending: the lane may be forgotten.
    pub(super) fn is_idle(&self, now: SystemTime) -> bool {
        self.claim.is_none()
            && self.share.is_none()
            && !self.others_wanted
            && !self.sends.usable(now)
            && !self.others.usable(now)
    }
}
