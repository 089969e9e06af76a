//! One grant's slot: its tokens, its standing, the phase of its refresh,
//! and what the engine remembers about its writes and requests.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::SystemTime;

use crate::error::Error;
use crate::secret::{AccessToken, RefreshToken};

use super::ABANDONED_MEMORY;
use super::held::Held;
use super::outcome::StoreFailure;
use super::output::RefreshFailure;
use super::record::{GrantId, GrantStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Tokens held; the timer is the refresh time (none while a write awaits
    /// confirmation in shared-store mode).
    Idle,
    /// Due, and waiting for a place under [`EngineSettings::max_in_flight`](super::EngineSettings::max_in_flight).
    Queued,
    /// Shared-store mode: the lease record at `version` awaits confirmation.
    /// `again`: written again after an earlier lease write whose outcome was
    /// never reported; that write may have lost to another engine's of the
    /// same version, so this one replaces the last version known written.
    Leasing { until: SystemTime, again: bool },
    /// A refresh request is queued (`dispatched: false`) or handed out.
    /// `not_after`: the latest instant it may be dispatched; the engine gives
    /// up on it a request timeout after that.
    InFlight {
        seq: u32,
        epoch: u32,
        sent_at: SystemTime,
        not_after: SystemTime,
        dispatched: bool,
    },
    /// Waiting to retry after a failure.
    Backoff,
    /// Another engine's lease, ending at `until`; the timer is the next
    /// re-read of the store or the lease's end.
    WaitingLease { until: SystemTime },
    /// Shared-store mode: the refresh token was refused as invalid; the
    /// store is read before the grant is declared lost.
    Checking,
    /// Location not active; the timer is the next try.
    Suspended,
    /// Nothing to do until a new authorization (in shared-store mode, the
    /// timer is the next re-read of the store).
    Reauth,
    /// The engine is halted (configuration rejected).
    Parked,
}

impl Phase {
    /// Whether the grant holds a place under the cap (a lease being taken, or
    /// a request out).
    pub(crate) fn is_busy(self) -> bool {
        matches!(self, Phase::Leasing { .. } | Phase::InFlight { .. })
    }
}

/// Tokens held that the store may not have yet.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unconfirmed {
    None,
    /// Received from a refresh that spent the token with this key.
    Refreshed {
        spent: u64,
    },
    /// Handed in by `insert`: a new authorization, which always wins.
    Installed,
}

/// Without the key: with a guessed token, it would confirm the guess.
impl std::fmt::Debug for Unconfirmed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unconfirmed::None => "None",
            Unconfirmed::Refreshed { .. } => "Refreshed",
            Unconfirmed::Installed => "Installed",
        })
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Abandoned {
    pub(crate) seq: u32,
    pub(crate) epoch: u32,
    pub(crate) sent_at: SystemTime,
}

/// One grant: its tokens, standing and phase, and what the engine knows of
/// its refreshes, its writes and the shared store.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) key: GrantId,
    pub(crate) held: Held,
    pub(crate) status: GrantStatus,
    pub(crate) phase: Phase,
    pub(crate) timer: Option<SystemTime>,
    /// Incarnation: new for each new grant in a slot, and on removal.
    pub(crate) life: u32,
    /// Removed ([`Removal::Released`](super::Removal::Released)); kept only
    /// until its requests are answered.
    pub(crate) removed: bool,
    pub(crate) refresh: Refreshing,
    pub(crate) write: Writes,
    pub(crate) shared: Sharing,
}

/// What the engine knows of a grant's refreshes and their callers.
#[derive(Debug, Default)]
pub(crate) struct Refreshing {
    /// Bumped whenever the refresh token changes.
    pub(crate) epoch: u32,
    /// The epoch of the last new authorization (`insert`): answers to
    /// requests sent before it are superseded.
    pub(crate) installed: u32,
    /// Retries in a row.
    pub(crate) attempt: u32,
    /// Callers were told to wait.
    pub(crate) waiters: bool,
    /// Requests given up on, remembered so that a late answer is still
    /// recognized.
    pub(crate) abandoned: Vec<Abandoned>,
    /// Which refresh run of this slot holds a place under the cap.
    pub(crate) run: u32,
    /// The key of an access token an API refused (`refresh_now` with it):
    /// never handed out again.
    pub(crate) rejected: Option<u64>,
    /// A refresh was wanted while a write was out: it starts once the
    /// write's outcome is known.
    pub(crate) deferred: bool,
    /// Why the last refresh (or lease) failed, until one succeeds.
    pub(crate) last_failure: Option<Box<RefreshFailure>>,
}

/// What the engine knows of a grant's writes.
#[derive(Debug)]
pub(crate) struct Writes {
    /// Version of the state in memory.
    pub(crate) version: u64,
    /// Last version handed out (or read from the store); what the next
    /// write replaces.
    pub(crate) emitted: Option<u64>,
    /// Last version known to be in the store.
    pub(crate) confirmed: u64,
    /// The highest version ever handed out in a write: an outcome for a
    /// version above it is of a write never asked for.
    pub(crate) high: u64,
    /// Tokens held that the store may not have yet.
    pub(crate) unconfirmed: Unconfirmed,
    /// While a newly received refresh token is not yet written: the access
    /// token held before it and its expiry, which callers get meanwhile.
    pub(crate) prev: Option<Box<(AccessToken, SystemTime)>>,
    /// Failed writes in a row.
    pub(crate) failures: u8,
    /// What the store said when the last write failed; cleared when a
    /// write is confirmed.
    pub(crate) store_failure: Option<Box<StoreFailure>>,
    /// Tokens from a refresh are being written: reported once confirmed.
    pub(crate) announce: bool,
    /// The refusal to report once "re-authorization needed" is written.
    pub(crate) condemned: Option<Box<Error>>,
}

impl Writes {
    /// Whether a write is out whose outcome is not known yet.
    pub(crate) fn is_out(&self) -> bool {
        self.emitted.is_some_and(|e| e > self.confirmed)
    }
}

/// Shared-store mode: the grant's lease and re-reads.
#[derive(Debug, Default)]
pub(crate) struct Sharing {
    /// The end of the lease last confirmed.
    pub(crate) lease_until: Option<SystemTime>,
    /// Re-reads in a row while waiting for re-authorization.
    pub(crate) rereads: u8,
}

impl Slot {
    pub(crate) fn new(key: GrantId, held: Held, version: u64, unconfirmed: Unconfirmed) -> Self {
        Slot {
            key,
            held,
            status: GrantStatus::Active,
            phase: Phase::Idle,
            timer: None,
            life: 0,
            removed: false,
            refresh: Refreshing::default(),
            write: Writes {
                version,
                // Version 0 is a record that was never stored.
                emitted: (version > 0).then_some(version),
                confirmed: version,
                high: version,
                unconfirmed,
                prev: None,
                failures: 0,
                store_failure: None,
                announce: false,
                condemned: None,
            },
            shared: Sharing::default(),
        }
    }
}

/// Whether a new authorization came in after a request of `epoch` was sent.
pub(crate) fn superseded(slot: &Slot, epoch: u32) -> bool {
    // Wrapping order: `installed` is at most 2^31 epochs after `epoch`.
    slot.refresh.installed != epoch && slot.refresh.installed.wrapping_sub(epoch) < 1 << 31
}

/// Tells refresh tokens apart in memory (never printed, never handed out).
/// Tokens are JWTs or random strings: the length and the last 64 bytes (the
/// signature) suffice, and keep this cheap for ~1 KiB tokens.
pub(crate) fn token_key(token: &RefreshToken) -> u64 {
    secret_key(token.secret())
}

/// [`token_key`] of an access token.
pub(crate) fn access_key(token: &AccessToken) -> u64 {
    secret_key(token.secret())
}

fn secret_key(secret: &str) -> u64 {
    let bytes = secret.as_bytes();
    let tail = bytes.get(bytes.len().saturating_sub(64)..).unwrap_or(bytes);
    let mut h = DefaultHasher::new();
    bytes.len().hash(&mut h);
    tail.hash(&mut h);
    h.finish()
}

/// Gives up on the slot's request in flight, if any, remembering it so that a
/// late answer is still recognized. The phase is left for the caller to set.
/// A request never handed out is simply dropped.
pub(crate) fn abandon_in_flight(slot: &mut Slot) {
    let Phase::InFlight {
        seq,
        epoch,
        sent_at,
        dispatched,
        ..
    } = slot.phase
    else {
        return;
    };
    if !dispatched {
        return;
    }
    if slot.refresh.abandoned.len() >= ABANDONED_MEMORY {
        slot.refresh.abandoned.remove(0);
    }
    slot.refresh.abandoned.push(Abandoned {
        seq,
        epoch,
        sent_at,
    });
}

/// Replaces the held tokens with others (a new authorization or a record from
/// the store): the request in flight is given up on, and the epoch moves on.
pub(crate) fn replace_held(slot: &mut Slot, held: Held) {
    abandon_in_flight(slot);
    slot.held = held;
    slot.refresh.epoch = slot.refresh.epoch.wrapping_add(1);
}
