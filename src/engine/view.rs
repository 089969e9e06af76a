//! A look at one grant the engine holds.

use std::time::SystemTime;

use super::Engine;
use super::output::RefreshFailure;
use super::record::{GrantId, GrantRecord, GrantStatus};
use super::slot::{Phase, Slot};

/// The grants an engine holds, from [`Engine::grants`].
#[derive(Clone, Copy)]
pub struct Grants<'a> {
    pub(super) engine: &'a Engine,
}

impl<'a> Grants<'a> {
    /// The grant `grant`, if the engine holds it. O(1).
    #[must_use]
    pub fn get(&self, grant: &str) -> Option<GrantView<'a>> {
        let idx = self.engine.grants.find(grant)?;
        self.engine.grants.get(idx)?;
        Some(GrantView {
            engine: self.engine,
            idx,
        })
    }

    /// Every grant held, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = GrantView<'a>> + use<'a> {
        let engine = self.engine;
        engine
            .grants
            .held()
            .map(move |idx| GrantView { engine, idx })
    }

    /// How many grants are held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.engine.grants.len()
    }

    /// Whether no grant is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for Grants<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grants").field("len", &self.len()).finish()
    }
}

/// A look at one grant the engine holds ([`Grants::get`],
/// [`Grants::iter`]). Cheap: nothing is copied until asked for.
#[derive(Clone, Copy)]
pub struct GrantView<'a> {
    pub(super) engine: &'a Engine,
    pub(super) idx: u32,
}

impl<'a> GrantView<'a> {
    fn slot(&self) -> &'a Slot {
        // A view is made only for a slot that holds a grant, and the engine
        // cannot change while it is borrowed.
        match self.engine.grants.get(self.idx) {
            Some(slot) => slot,
            None => unreachable!("a grant view of an empty slot"),
        }
    }

    /// The grant's id.
    #[must_use]
    pub fn id(&self) -> &'a GrantId {
        &self.slot().key
    }

    /// Its standing.
    #[must_use]
    pub fn status(&self) -> &'a GrantStatus {
        &self.slot().status
    }

    /// When the access token held expires.
    #[must_use]
    pub fn expires_at(&self) -> SystemTime {
        self.slot().held.expires_at()
    }

    /// The Company grant it is minted from, for a Location grant the engine
    /// mints ([`Engine::add_location`]).
    #[must_use]
    pub fn minted_from(&self) -> Option<&'a GrantId> {
        self.engine.locations.parent_of(self.slot().key.as_str())
    }

    /// The record as the engine holds it now (a copy, tokens included).
    #[must_use]
    pub fn record(&self) -> GrantRecord {
        self.engine.build_record(self.slot())
    }

    /// Whether the store has every change the engine holds for the grant:
    /// its last write's outcome came back [`WriteOutcome::Written`](crate::WriteOutcome::Written).
    #[must_use]
    pub fn is_written(&self) -> bool {
        let slot = self.slot();
        slot.write.version <= slot.write.confirmed
    }

    /// Whether a request of the grant (a refresh or a mint) was handed out
    /// and is neither answered nor given up on.
    #[must_use]
    pub fn request_out(&self) -> bool {
        matches!(
            self.slot().phase,
            Phase::InFlight {
                dispatched: true,
                ..
            }
        )
    }

    /// Why the grant's last refresh failed (or its last write, see
    /// [`RefreshFailure::Store`]), until a refresh succeeds. For callers and logs.
    #[must_use]
    pub fn last_failure(&self) -> Option<RefreshFailure> {
        let slot = self.slot();
        match (&slot.write.store_failure, &slot.refresh.last_failure) {
            (Some(store), _) => Some(RefreshFailure::Store((**store).clone())),
            (None, failure) => failure.as_deref().cloned(),
        }
    }
}

impl std::fmt::Debug for GrantView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantView")
            .field("id", self.id())
            .field("status", &self.status())
            .field("expires_at", &crate::time::unix(self.expires_at()))
            .field("minted_from", &self.minted_from())
            .finish_non_exhaustive()
    }
}
