//! A look at one grant the engine holds.

use std::time::SystemTime;

use super::Engine;
use super::output::RefreshFailure;
use super::record::{GrantId, GrantRecord, GrantStatus};
use super::slot::{Phase, Slot};

/// A look at one grant the engine holds ([`Engine::grant`],
/// [`Engine::grants`]). Cheap: nothing is copied until asked for.
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
