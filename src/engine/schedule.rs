//! The timer wheel of the engine: one deadline per grant slot, ordered, so the
//! next deadline and each insert or removal cost O(log n).

use std::collections::BTreeSet;
use std::time::SystemTime;

#[derive(Debug, Default)]
pub(crate) struct Schedule {
    set: BTreeSet<(SystemTime, u32)>,
}

impl Schedule {
    pub(crate) fn insert(&mut self, at: SystemTime, slot: u32) {
        self.set.insert((at, slot));
    }

    pub(crate) fn remove(&mut self, at: SystemTime, slot: u32) {
        self.set.remove(&(at, slot));
    }

    pub(crate) fn first(&self) -> Option<SystemTime> {
        self.set.first().map(|(t, _)| *t)
    }

    /// Takes the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: SystemTime) -> Option<(SystemTime, u32)> {
        match self.set.first() {
            Some(&(t, _)) if t <= now => self.set.pop_first(),
            _ => None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }
}
