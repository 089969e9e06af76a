//! The outputs waiting to be polled, in order. Sends and records are built
//! when polled, from the grant's state at that moment.

use std::collections::VecDeque;

use super::output::EngineEvent;
use super::record::GrantId;
use super::table::Tag;

/// An output waiting in the queue; sends and records are built when polled,
/// from the grant's state at that moment.
///
/// Writes, reads and events carry the incarnation of the grant they were
/// queued for: nothing queued for a removed grant reaches it once it is
/// back, nor a grant that took its slot. (A send is its slot's in-flight
/// request, told by its unique sequence number.)
#[derive(Debug)]
pub(crate) enum Queued {
    Send {
        slot: u32,
        seq: u32,
    },
    Persist(Tag),
    Load(Tag),
    Event(Tag, EngineEvent),
    /// An event about a grant no longer held.
    Global(EngineEvent),
    /// The record of an uninstalled grant is to be deleted.
    Delete(GrantId),
}

/// The queue of outputs.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    items: VecDeque<Queued>,
}

impl Queue {
    /// Ahead of everything queued (the write of a new refresh token).
    pub(crate) fn push_front(&mut self, q: Queued) {
        self.items.push_front(q);
    }

    pub(crate) fn push_back(&mut self, q: Queued) {
        self.items.push_back(q);
    }

    pub(crate) fn pop_front(&mut self) -> Option<Queued> {
        self.items.pop_front()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn extend(&mut self, items: impl IntoIterator<Item = Queued>) {
        self.items.extend(items);
    }
}
