//! The cap on leases and requests out at once
//! ([`EngineSettings::max_in_flight`](super::EngineSettings::max_in_flight)):
//! the grants holding a place, and those waiting for one, in order. Both
//! lists are cleaned lazily: a place counts only while its grant's run still
//! holds it, and a waiting grant is skipped if it moved on.

use std::collections::VecDeque;

use super::table::{Table, Tag};

/// A grant holding a place under the cap: its slot, incarnation and run.
#[derive(Debug, Clone, Copy)]
struct Busy {
    tag: Tag,
    run: u32,
}

#[derive(Debug)]
pub(crate) struct Cap {
    max: usize,
    busy: Vec<Busy>,
    waiting: VecDeque<Tag>,
}

impl Cap {
    pub(crate) fn new(max: usize) -> Self {
        Cap {
            max,
            busy: Vec::new(),
            waiting: VecDeque::new(),
        }
    }

    /// Whether a place is still taken by that run.
    fn holds(grants: &Table, b: Busy) -> bool {
        grants.get(b.tag.slot).is_some_and(|s| {
            s.life == b.tag.life && s.refresh.run == b.run && !s.removed && s.phase.is_busy()
        })
    }

    /// Whether a new lease or request would go over the cap. Cleans the list
    /// only when it could be full: O(cap) then, O(1) otherwise.
    pub(crate) fn is_full(&mut self, grants: &Table) -> bool {
        if self.busy.len() < self.max {
            return false;
        }
        self.busy.retain(|b| Self::holds(grants, *b));
        self.busy.len() >= self.max
    }

    /// Run `run` of grant `tag` takes a place.
    pub(crate) fn take(&mut self, tag: Tag, run: u32) {
        self.busy.push(Busy { tag, run });
    }

    /// Grant `tag` waits for a place.
    pub(crate) fn wait(&mut self, tag: Tag) {
        self.waiting.push_back(tag);
    }

    /// The next grant waiting, if a place is free.
    pub(crate) fn next_waiting(&mut self, grants: &Table) -> Option<Tag> {
        if self.waiting.is_empty() || self.is_full(grants) {
            return None;
        }
        self.waiting.pop_front()
    }

    /// The places whose run still holds them, for `f` to count. O(cap).
    pub(crate) fn holding<'a>(&'a self, grants: &'a Table) -> impl Iterator<Item = u32> + 'a {
        self.busy
            .iter()
            .filter(move |b| Self::holds(grants, **b))
            .map(|b| b.tag.slot)
    }
}
