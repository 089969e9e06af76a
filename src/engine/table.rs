//! The grants an engine holds: a table of slots, an index by grant id, the
//! slots of removed grants whose requests are still out, and the shared
//! strings their tokens use. A slot is named by its index and the
//! incarnation of the grant in it (a [`Tag`]), so that nothing queued for a
//! grant reaches another that took its slot.

use std::collections::HashMap;

use super::record::GrantId;
use super::slot::Slot;

/// A slot and the incarnation of the grant in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tag {
    pub(crate) slot: u32,
    pub(crate) life: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Table {
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    index: HashMap<GrantId, u32>,
    /// Removed grants whose requests are still out, by grant: kept until
    /// those requests are answered or the grant comes back.
    removed: HashMap<GrantId, u32>,
    /// The last incarnation given out.
    lives: u32,
    /// The last request sequence number given out.
    seq: u32,
}

impl Table {
    pub(crate) fn get(&self, idx: u32) -> Option<&Slot> {
        self.slots.get(idx as usize).and_then(Option::as_ref)
    }

    pub(crate) fn get_mut(&mut self, idx: u32) -> Option<&mut Slot> {
        self.slots.get_mut(idx as usize).and_then(Option::as_mut)
    }

    /// The slot of grant `grant`, if held.
    pub(crate) fn find(&self, grant: &str) -> Option<u32> {
        self.index.get(grant).copied()
    }

    /// How many grants are held.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// How many slots there are (held, removed or free).
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The slots of the grants held.
    pub(crate) fn held(&self) -> impl Iterator<Item = u32> + '_ {
        self.index.values().copied()
    }

    /// Puts `slot` in a free slot (a new incarnation) and indexes it.
    pub(crate) fn add(&mut self, mut slot: Slot) -> u32 {
        slot.life = self.next_life();
        let key = slot.key.clone();
        let idx = if let Some(idx) = self.free.pop() {
            if let Some(cell) = self.slots.get_mut(idx as usize) {
                *cell = Some(slot);
            }
            idx
        } else {
            self.slots.push(Some(slot));
            u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
        };
        self.index.insert(key, idx);
        idx
    }

    /// Takes slot `idx` out of the index and gives it a new incarnation
    /// (nothing queued for it reaches it any more); kept as removed, by
    /// grant, while its requests are out.
    pub(crate) fn set_removed(&mut self, idx: u32) {
        let life = self.next_life();
        if let Some(slot) = self.get_mut(idx) {
            slot.removed = true;
            slot.life = life;
            let key = slot.key.clone();
            self.removed.insert(key, idx);
        }
    }

    /// Takes grant `grant` out of the index (its slot is kept).
    pub(crate) fn unindex(&mut self, grant: &str) {
        self.index.remove(grant);
    }

    /// The removed slot of grant `grant`, back in the index.
    pub(crate) fn take_removed(&mut self, grant: &str) -> Option<u32> {
        let idx = self.removed.remove(grant)?;
        let slot = self.get_mut(idx)?;
        slot.removed = false;
        let key = slot.key.clone();
        self.index.insert(key, idx);
        Some(idx)
    }

    /// Empties slot `idx` for good; returns what was in it.
    pub(crate) fn free(&mut self, idx: u32) -> Option<Slot> {
        let slot = self.slots.get_mut(idx as usize).and_then(Option::take)?;
        if slot.removed && self.removed.get(slot.key.as_str()) == Some(&idx) {
            self.removed.remove(slot.key.as_str());
        }
        self.free.push(idx);
        Some(slot)
    }

    /// Forgets that grant `grant` is removed (its tokens are gone).
    pub(crate) fn forget_removed(&mut self, grant: &str) {
        self.removed.remove(grant);
    }

    /// Whether no removed grant is kept.
    #[cfg(test)]
    pub(crate) fn removed_is_empty(&self) -> bool {
        self.removed.is_empty()
    }

    /// Whether every slot is empty and free.
    #[cfg(test)]
    pub(crate) fn is_vacant(&self) -> bool {
        self.slots.iter().all(Option::is_none) && self.free.len() == self.slots.len()
    }

    /// The tag of the grant in slot `idx` now.
    pub(crate) fn tag(&self, idx: u32) -> Tag {
        Tag {
            slot: idx,
            life: self.get(idx).map_or(0, |s| s.life),
        }
    }

    /// Whether the grant `t` names is still there.
    pub(crate) fn live(&self, t: Tag) -> bool {
        self.get(t.slot)
            .is_some_and(|s| s.life == t.life && !s.removed)
    }

    fn next_life(&mut self) -> u32 {
        self.lives = self.lives.wrapping_add(1);
        self.lives
    }

    /// A new request sequence number (never 0).
    pub(crate) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        if self.seq == 0 {
            self.seq = 1;
        }
        self.seq
    }
}
