//! The grants an engine holds: adding them (a new authorization, a stored
//! record), removing them, and the slot table behind them.

use std::time::SystemTime;

use crate::error::{Error, ErrorKind};
use crate::token::TokenSet;

use super::held::Held;
use super::output::{Event, RequestId};
use super::queue::Queued;
use super::record::{GrantId, GrantRecord, GrantStatus};
use super::slot::{Phase, Slot, Unconfirmed, replace_held, token_key};
use super::{Engine, unknown_grant};

impl Engine {
    /// Adds a grant from a new authorization (a code exchange or a location
    /// token), or replaces the tokens of a grant the engine holds (a
    /// re-install). Build `tokens` with [`TokenSet::new`] from the answer and
    /// the time its request was sent.
    ///
    /// Emits an [`Output::Persist`](super::Output::Persist) of the new record
    /// ahead of every other output: the refresh token in it is the
    /// installation. In shared-store mode this write wins over whatever the
    /// store holds (a new authorization supersedes older tokens).
    /// [`Event::Durable`] follows once the record is written.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if the answer has no refresh token.
    pub(crate) fn insert_grant(
        &mut self,
        grant: impl Into<GrantId>,
        tokens: TokenSet,
        now: SystemTime,
    ) -> Result<(), Error> {
        let grant = grant.into();
        if grant.as_str().is_empty() {
            return Err(Error::input("a grant needs a non-empty id"));
        }
        let held = Held::from_set(tokens, None, &mut self.interner).ok_or_else(|| {
            Error::input(format!(
                "the tokens for grant {grant} have no refresh token; the engine cannot keep them fresh"
            ))
        })?;
        self.reattach(grant.as_str(), now);
        if let Some(idx) = self.grants.find(grant.as_str()) {
            let margin = self.settings.refresh_margin;
            let Some(slot) = self.grants.get_mut(idx) else {
                return Err(unknown_grant(grant.as_str()));
            };
            replace_held(slot, held);
            slot.refresh.installed = slot.refresh.epoch;
            slot.write.prev = None;
            slot.status = GrantStatus::Active;
            slot.phase = Phase::Idle;
            slot.refresh.attempt = 0;
            slot.write.condemned = None;
            slot.write.unconfirmed = Unconfirmed::Installed;
            slot.write.version = slot.write.version.saturating_add(1);
            let at = slot.held.refresh_at(margin).max(now);
            let expires_at = slot.held.expires_at();
            let waiters = std::mem::take(&mut slot.refresh.waiters);
            let key = token_key(&slot.held.refresh);
            self.arm(idx, Some(at));
            let t = self.grants.tag(idx);
            self.queue.push_front(Queued::Persist(t));
            if waiters {
                self.queue.push_back(Queued::Event(
                    t,
                    Event::TokenReady {
                        grant: grant.clone(),
                        expires_at,
                    },
                ));
            }
            self.adopt_kept(idx, key, now);
            self.wake_locations(&grant, now);
            return Ok(());
        }
        let at = held.refresh_at(self.settings.refresh_margin).max(now);
        let key = token_key(&held.refresh);
        let idx = self
            .grants
            .add(Slot::new(grant.clone(), held, 1, Unconfirmed::Installed));
        if let Some(slot) = self.grants.get_mut(idx) {
            slot.write.emitted = None;
            slot.write.confirmed = 0;
            slot.write.high = 0;
        }
        self.arm(idx, Some(at));
        self.queue.push_front(Queued::Persist(self.grants.tag(idx)));
        self.adopt_kept(idx, key, now);
        self.wake_locations(&grant, now);
        Ok(())
    }

    /// Loads a grant from its stored record (at start-up, or when the store
    /// says it changed). Nothing is persisted. A record saved mid-refresh
    /// (with a lease) is resumed: the engine waits for the lease to end, then
    /// refreshes with the record's refresh token. A grant already due is
    /// refreshed at a random point within
    /// [`EngineSettings::refresh_spread`](super::EngineSettings::refresh_spread).
    ///
    /// For a grant the engine already holds, the record must be newer than
    /// the engine's; its tokens are then adopted (to hand in a record that
    /// may be stale, use [`handle_loaded`](Self::handle_loaded)).
    ///
    /// # Errors
    /// - [`ErrorKind::StaleRecord`]: another schema, or not newer than what
    ///   the engine holds;
    /// - [`ErrorKind::InvalidInput`]: the record has no refresh token, or
    ///   times past [`MAX_RECORD_TIME`](super::MAX_RECORD_TIME).
    pub(crate) fn restore_grant(
        &mut self,
        record: GrantRecord,
        now: SystemTime,
    ) -> Result<(), Error> {
        record.check()?;
        // A removed grant that comes back while its requests are out goes on
        // as if never removed: it takes the record only if newer.
        let reattached = self.reattach(record.grant.as_str(), now).is_some();
        if let Some(idx) = self.grants.find(record.grant.as_str()) {
            let held_version = self.grants.get(idx).map_or(0, |s| s.write.version);
            if record.version <= held_version {
                if reattached {
                    return Ok(());
                }
                return Err(Error::new(
                    ErrorKind::StaleRecord,
                    format!(
                        "record version {} of grant {} is not newer than version {held_version} held",
                        record.version, record.grant
                    ),
                ));
            }
            if self.holds_newer(idx, &record) {
                // Tokens received (or installed) that the store may not have
                // yet: never trade them for the stored ones; write them again.
                self.rewrite_over(idx, record.version);
                return Ok(());
            }
            self.adopt_record(idx, record, now);
            return Ok(());
        }
        let version = record.version;
        let GrantRecord {
            grant,
            status,
            lease,
            tokens,
            minted_from,
            ..
        } = record;
        let held = if minted_from.is_some() {
            Held::from_set_minted(tokens, None, &mut self.interner)
        } else {
            Held::from_set(tokens, None, &mut self.interner)
        };
        let Some(held) = held else {
            return Err(Error::input("the record has no refresh token"));
        };
        let minted = minted_from.is_some();
        self.locations.relink(&grant, minted_from);
        let key = grant.clone();
        let token = held.has_refresh().then(|| token_key(&held.refresh));
        let idx = self
            .grants
            .add(Slot::new(grant, held, version, Unconfirmed::None));
        self.apply_stored_state(idx, status, lease, now, false);
        // Due already (a restart): spread out.
        let timer = self
            .grants
            .get(idx)
            .filter(|s| s.phase == Phase::Idle)
            .and_then(|s| s.timer);
        if let Some(at) = timer {
            let at = self.spread_from(at, now);
            self.arm(idx, Some(at));
            if minted {
                // Minted together, restored together: kept apart.
                self.spread_minted(idx, now);
            }
        }
        if let Some(token) = token {
            self.adopt_kept(idx, token, now);
        }
        // Location grants waiting for this Company grant go on.
        self.wake_locations(&key, now);
        Ok(())
    }

    /// Forgets a grant (e.g. after an uninstall). Outputs not yet polled for
    /// it are dropped.
    ///
    /// If a refresh of the grant is out, the engine remembers the grant until
    /// its answers are handed in (answers or transport errors, also of
    /// requests it gave up on): should the grant come
    /// back ([`insert`](Self::insert), [`restore`](Self::restore)) before the
    /// answer, it goes on as if it had never left (its scheduled retry, its
    /// answers, its unwritten tokens; a restore takes the record only if it
    /// is newer and holds no older tokens than the engine's), so no new
    /// refresh token is lost and no second refresh starts. Otherwise the answer is an
    /// [`ErrorKind::UnknownRequest`], and a success carries its refresh token
    /// in [`Error::rescued_refresh_token`].
    ///
    /// # Errors
    /// [`ErrorKind::UnknownGrant`].
    pub(crate) fn release_grant(&mut self, grant: &str) -> Result<(), Error> {
        let idx = self.lookup(grant)?;
        self.grants.unindex(grant);
        self.locations.unlink(&GrantId::new(grant));
        let Some(slot) = self.grants.get_mut(idx) else {
            return Ok(());
        };
        slot.refresh.waiters = false;
        if matches!(
            slot.phase,
            Phase::InFlight {
                dispatched: true,
                ..
            }
        ) || !slot.refresh.abandoned.is_empty()
        {
            // Out of the schedule, but remembered should the grant come back
            // (and nothing queued for it reaches it, even once it is back).
            self.timers.suspend(idx, slot.timer);
            self.grants.set_removed(idx);
        } else {
            self.free_slot(idx);
        }
        Ok(())
    }

    /// Drops a slot for good.
    fn free_slot(&mut self, idx: u32) {
        if let Some(mut slot) = self.grants.free(idx) {
            self.timers.set(idx, &mut slot.timer, None);
        }
    }

    /// Takes a removed grant back (with its requests still out), if there is
    /// one of that name, as it was; what was queued for it and dropped is
    /// queued again: the write of tokens not yet handed out.
    fn reattach(&mut self, grant: &str, now: SystemTime) -> Option<u32> {
        let idx = self.grants.take_removed(grant)?;
        let halted = self.halted;
        let slot = self.grants.get_mut(idx)?;
        if slot.phase == Phase::Parked && !halted {
            // Reconfigured meanwhile.
            slot.phase = Phase::Idle;
            slot.timer = Some(now);
        }
        self.timers.resume(idx, slot.timer);
        let unwritten = slot.write.emitted != Some(slot.write.version);
        if unwritten {
            self.queue.push_front(Queued::Persist(self.grants.tag(idx)));
        }
        Some(idx)
    }

    /// An answer for a removed grant: forgotten, and the slot freed once
    /// nothing of it is out.
    pub(crate) fn answer_for_removed(&mut self, id: RequestId) {
        let idx = id.slot();
        if let Some(slot) = self.grants.get_mut(idx) {
            if matches!(slot.phase, Phase::InFlight { seq, .. } if seq == id.seq()) {
                slot.phase = Phase::Idle;
            }
            slot.refresh.abandoned.retain(|a| a.seq != id.seq());
            if !matches!(slot.phase, Phase::InFlight { .. }) && slot.refresh.abandoned.is_empty() {
                self.free_slot(idx);
            }
        }
    }

    pub(crate) fn lookup(&self, grant: &str) -> Result<u32, Error> {
        self.grants.find(grant).ok_or_else(|| unknown_grant(grant))
    }
}
