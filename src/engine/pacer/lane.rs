//! One budget (the app's, or one resource's) and the sends waiting for it:
//! refreshes first, then mints, each line first in, first out; counted
//! requests held to their share.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use crate::request_budget::RequestBudget;

use super::fleet::{Asked, Fleet};

/// How soon to ask again when a counted request waits for the store's
/// answer to a claim.
const COUNT_POLL: Duration = Duration::from_millis(5);

/// What a send is, for its place in line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendKind {
    /// A refresh of a grant held: goes ahead of mints and counted requests.
    Refresh,
    /// A mint of a Location grant.
    Mint,
}

/// A budget and its lines.
#[derive(Debug)]
pub(super) struct Lane {
    /// The server's view: the answers' headers, 429s.
    pub(super) budget: RequestBudget,
    /// Requests counted by the app, held to their share of `budget`.
    pub(super) others: RequestBudget,
    share: u8,
    refreshes: VecDeque<(u32, u32)>,
    mints: VecDeque<(u32, u32)>,
    /// When the first waiting send may go.
    pub(super) wake_at: Option<SystemTime>,
    /// The shared budget's grants, when it is on.
    pub(super) fleet: Option<Fleet>,
}

/// The most counted requests may take of `max`, at `share` percent.
fn others_max(max: u32, share: u8) -> u32 {
    let n = u64::from(max) * u64::from(share) / 100;
    u32::try_from(n).unwrap_or(u32::MAX).max(1)
}

impl Lane {
    pub(super) fn new(max: u32, interval: Duration, share: u8, fleet: bool) -> Self {
        Lane {
            budget: RequestBudget::new(max, interval),
            others: RequestBudget::new(others_max(max, share), interval),
            share,
            refreshes: VecDeque::new(),
            mints: VecDeque::new(),
            wake_at: None,
            fleet: fleet.then(Fleet::new),
        }
    }

    /// The lane with `margin` (if set) on its budgets.
    pub(super) fn with_margin(mut self, margin: Option<Duration>) -> Self {
        if let Some(m) = margin {
            let m = m.min(self.budget.interval());
            self.budget = self.budget.with_margin(m);
            self.others = self.others.with_margin(m);
        }
        self
    }

    /// The budget's figures changed (the answers' headers): the counted
    /// share follows.
    pub(super) fn follow(&mut self) {
        let (max, interval) = (self.budget.max(), self.budget.interval());
        self.others.resize(others_max(max, self.share), interval);
    }

    pub(super) fn waiting(&self) -> usize {
        self.refreshes.len() + self.mints.len()
    }

    /// Whether a send of `kind` arriving now is behind nobody.
    pub(super) fn is_first(&self, kind: SendKind) -> bool {
        match kind {
            SendKind::Refresh => self.refreshes.is_empty(),
            SendKind::Mint => self.refreshes.is_empty() && self.mints.is_empty(),
        }
    }

    /// A send of `kind` joins its line: at its head if `first`.
    pub(super) fn push(&mut self, kind: SendKind, send: (u32, u32), first: bool) {
        let line = match kind {
            SendKind::Refresh => &mut self.refreshes,
            SendKind::Mint => &mut self.mints,
        };
        if first {
            line.push_front(send);
        } else {
            line.push_back(send);
        }
    }

    /// The first waiting send: refreshes before mints.
    pub(super) fn pop(&mut self) -> Option<(u32, u32)> {
        self.refreshes
            .pop_front()
            .or_else(|| self.mints.pop_front())
    }

    pub(super) fn refreshes_wait(&self) -> bool {
        !self.refreshes.is_empty()
    }

    pub(super) fn can_send(&self, now: SystemTime) -> bool {
        self.budget.available(now) > 0 && self.fleet.as_ref().is_none_or(|f| f.can_send(now))
    }

    pub(super) fn spend_send(&mut self, now: SystemTime) {
        self.budget.spend(now);
        if let Some(f) = &mut self.fleet {
            f.cool(now);
            f.take_send(now);
        }
    }

    /// When a waiting send may go: `None` while only a claim's answer can
    /// tell.
    pub(super) fn next_send_at(&self, now: SystemTime) -> Option<SystemTime> {
        let local = self.budget.next_available_at(now);
        match &self.fleet {
            None => Some(local),
            Some(f) => f.ready_at(now).map(|t| t.max(local)),
        }
    }

    /// A counted request at `now`: `None` if counted (sent now), or when to
    /// ask again.
    pub(super) fn count(&mut self, now: SystemTime) -> Option<SystemTime> {
        if self.refreshes_wait() {
            // Refreshes that are due go first.
            return Some(self.wake_at.unwrap_or(now).max(now));
        }
        if self.others.available(now) == 0 {
            return Some(self.others.next_available_at(now));
        }
        if self.budget.available(now) == 0 {
            return Some(self.budget.next_available_at(now));
        }
        if let Some(f) = &mut self.fleet {
            f.cool(now);
            if !f.can_count(now) {
                // Claimed by the next poll; ask again once it is answered.
                f.others_wanted = true;
                return Some(crate::time::saturating_add(now, COUNT_POLL));
            }
            f.take_count(now);
        }
        self.budget.spend(now);
        self.others.spend(now);
        None
    }

    /// What to claim from the store at `now`, if anything.
    pub(super) fn to_claim(&self, now: SystemTime) -> Option<Asked> {
        let f = self.fleet.as_ref()?;
        if !f.may_claim(now) {
            return None;
        }
        if f.probe_only(now) {
            let wanted = self.waiting() > 0 || f.others_wanted;
            return wanted.then_some(Asked::default());
        }
        let room = self.budget.available(now);
        let sends = if self.waiting() > 0 && !f.can_send(now) {
            u32::try_from(self.waiting()).unwrap_or(u32::MAX).min(room)
        } else {
            0
        };
        let others = u32::from(
            f.others_wanted && !f.can_count(now) && self.others.available(now) > 0 && room > sends,
        );
        (sends > 0 || others > 0).then_some(Asked { sends, others })
    }

    /// How long a granted token counts in the store: the interval, plus
    /// the margin, plus as long again for the time a token may wait.
    pub(super) fn claim_window(&self) -> Duration {
        self.budget.interval() + self.budget.margin() * 2
    }

    /// How long a granted token may wait before it is sent.
    pub(super) fn hold(&self) -> Duration {
        self.budget.margin()
    }

    /// Nothing waits, nothing counts, nothing is out: the lane may go.
    pub(super) fn is_idle(&self, now: SystemTime) -> bool {
        self.waiting() == 0
            && self.budget.spent(now) == 0
            && self.budget.available(now) > 0
            && self.others.spent(now) == 0
            && self.fleet.as_ref().is_none_or(|f| f.is_idle(now))
    }
}
