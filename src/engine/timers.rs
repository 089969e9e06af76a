//! The engine's deadlines: one per grant in an ordered set (the next
//! deadline and each insert or removal cost O(log n)), and the writes to try
//! again after a failure. While deadlines are being handled, none at or
//! before the instant handled is set again, so handling them always ends.

use std::collections::BTreeSet;
use std::time::SystemTime;

#[derive(Debug, Default)]
pub(crate) struct Timers {
    /// Each grant's deadline: (when, slot).
    due: BTreeSet<(SystemTime, u32)>,
    /// Writes to try again after a failure: (when, slot).
    rewrites: BTreeSet<(SystemTime, u32)>,
    /// While deadlines are handled: the instant handled.
    floor: Option<SystemTime>,
}

impl Timers {
    /// Sets (or clears) slot `idx`'s deadline, kept in `timer`, as given.
    pub(crate) fn set(&mut self, idx: u32, timer: &mut Option<SystemTime>, at: Option<SystemTime>) {
        if let Some(old) = timer.take() {
            self.due.remove(&(old, idx));
        }
        if let Some(t) = at {
            self.due.insert((t, idx));
            *timer = Some(t);
        }
    }

    /// As [`set`](Self::set), except that while deadlines up to `floor` are
    /// handled, a deadline at or before it is not set: at the end of time
    /// (where additions saturate) the grant rests rather than coming due
    /// again at once.
    pub(crate) fn arm(&mut self, idx: u32, timer: &mut Option<SystemTime>, at: Option<SystemTime>) {
        let at = at.filter(|t| self.floor.is_none_or(|f| *t > f));
        self.set(idx, timer, at);
    }

    /// Takes slot `idx`'s deadline out of the set, leaving `timer` as it is
    /// (a grant removed while its request is out).
    pub(crate) fn suspend(&mut self, idx: u32, timer: Option<SystemTime>) {
        if let Some(t) = timer {
            self.due.remove(&(t, idx));
        }
    }

    /// Puts a suspended deadline back.
    pub(crate) fn resume(&mut self, idx: u32, timer: Option<SystemTime>) {
        if let Some(t) = timer {
            self.due.insert((t, idx));
        }
    }

    /// A write of slot `idx` to try again at `at`.
    pub(crate) fn rewrite_at(&mut self, at: SystemTime, idx: u32) {
        self.rewrites.insert((at, idx));
    }

    /// Deadlines from here on are handled at `now` ([`end`](Self::end) when done).
    pub(crate) fn begin(&mut self, now: SystemTime) {
        self.floor = Some(now);
    }

    /// Handling is over.
    pub(crate) fn end(&mut self) {
        self.floor = None;
    }

    /// The next rewrite due at `now`, taken out.
    pub(crate) fn pop_rewrite(&mut self, now: SystemTime) -> Option<u32> {
        pop_due(&mut self.rewrites, now)
    }

    /// The next grant deadline due at `now`, taken out: the slot, whose
    /// `timer` the caller clears.
    pub(crate) fn pop_due(&mut self, now: SystemTime) -> Option<u32> {
        pop_due(&mut self.due, now)
    }

    /// The earliest deadline of either kind.
    pub(crate) fn next(&self) -> Option<SystemTime> {
        [self.due.first(), self.rewrites.first()]
            .into_iter()
            .flatten()
            .map(|(t, _)| *t)
            .min()
    }
}

fn pop_due(set: &mut BTreeSet<(SystemTime, u32)>, now: SystemTime) -> Option<u32> {
    match set.first() {
        Some(&(t, _)) if t <= now => set.pop_first().map(|(_, idx)| idx),
        _ => None,
    }
}
