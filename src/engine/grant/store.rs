//! The grant and its store: leases (shared-store mode), the outcomes of
//! writes (won, lost, failed, no record), reads, and adopting what other
//! engines wrote.

use std::time::SystemTime;

use crate::error::{Error, ErrorKind};
use crate::time::saturating_add as add;

use crate::engine::backoff::backoff;
use crate::engine::held::Held;
use crate::engine::outcome::StoreFailure;
use crate::engine::output::{EngineEvent, RefreshFailure};
use crate::engine::queue::Queued;
use crate::engine::record::{GrantId, GrantRecord, GrantStatus, Lease};
use crate::engine::slot::{Phase, Slot, Unconfirmed, replace_held, token_key};
use crate::engine::{Engine, unknown_grant};
use crate::time::ceil_seconds;

impl Engine {
    /// Writes a new lease (shared-store mode). If its confirmation has not
    /// come when the lease ends, a new one is written.
    pub(in crate::engine::grant) fn take_lease(&mut self, idx: u32, now: SystemTime) {
        let Some(lease) = self.settings.lease_duration() else {
            return;
        };
        let timeout = self.settings.request_timeout;
        let Some(slot) = self.grants.get_mut(idx) else {
            return;
        };
        let until = ceil_seconds(add(now, lease));
        if until.checked_sub(timeout).is_none_or(|latest| latest < now) {
            // The end of time: no lease could cover a request; the grant rests.
            slot.phase = Phase::Idle;
            self.arm(idx, None);
            return;
        }
        let again = matches!(slot.phase, Phase::Leasing { .. });
        slot.write.version = slot.write.version.saturating_add(1);
        slot.phase = Phase::Leasing { until, again };
        self.arm(idx, Some(until));
        self.queue.push_back(Queued::Persist(self.grants.tag(idx)));
    }

    /// Confirms that the record `version` of `grant` was written (its
    /// compare-and-swap won, or it was overwritten). A lease confirmation
    /// releases the refresh request; the confirmation of new tokens lets
    /// them be handed out. Repeated or old confirmations are harmless.
    ///
    /// # Errors
    /// [`ErrorKind::UnknownGrant`]; [`ErrorKind::UnknownRequest`] if the engine
    /// never emitted that version.
    pub(in crate::engine) fn on_written(
        &mut self,
        grant: &str,
        version: u64,
        now: SystemTime,
    ) -> Result<(), Error> {
        let idx = self.lookup(grant)?;
        let timeout = self.settings.request_timeout;
        let Some(slot) = self.grants.get_mut(idx) else {
            return Err(unknown_grant(grant));
        };
        never_emitted(slot, grant, version)?;
        if version <= slot.write.confirmed {
            return Ok(());
        }
        slot.write.confirmed = version;
        // A late outcome of a write reported failed: it is the one out.
        slot.write.emitted = Some(slot.write.emitted.map_or(version, |e| e.max(version)));
        slot.write.failures = 0;
        if version == slot.write.version {
            let recovered = slot.write.store_failure.take().is_some();
            let key = slot.key.clone();
            let t = self.grants.tag(idx);
            if recovered {
                self.queue.push_back(Queued::Event(
                    t,
                    EngineEvent::WriteRecovered {
                        grant: key.clone(),
                        version,
                    },
                ));
            }
            let events = self.durable(idx);
            let ready = !events.is_empty();
            for event in events {
                self.queue.push_back(Queued::Event(t, event));
            }
            if ready {
                self.wake_locations(&key, now);
            }
        }
        let Some(slot) = self.grants.get_mut(idx) else {
            return Err(unknown_grant(grant));
        };
        match slot.phase {
            Phase::Leasing { until, .. } if version == slot.write.version => {
                if add(now, timeout) > until {
                    // Confirmed too late: the lease would end before the
                    // answer is due, and another engine could take over.
                    self.take_lease(idx, now);
                } else {
                    if let Some(slot) = self.grants.get_mut(idx) {
                        slot.shared.lease_until = Some(until);
                    }
                    self.send(idx, now);
                }
            }
            Phase::Idle if slot.timer.is_none() => {
                if std::mem::take(&mut slot.refresh.deferred) {
                    // A refresh was wanted while the write was out.
                    self.start_refresh(idx, now);
                } else {
                    self.rearm_idle(idx, now);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Reports that a write of `grant` lost its compare-and-swap, with the
    /// record the store holds now (shared-store mode).
    ///
    /// - If the engine holds tokens newer than the stored ones (it received
    ///   them, or they came from [`insert`](Self::insert)), it writes them
    ///   again over `current`: a newer refresh token is never given up.
    /// - Otherwise it adopts `current`: newer tokens instead of refreshing, or
    ///   another engine's lease (it waits for it to end, re-reading the store
    ///   meanwhile), or the stored status. A version-0 record
    ///   ([`GrantRecord::new`]) holding the engine's own tokens is adopted
    ///   too: the next write replaces it.
    /// - If `current` is the version the engine knows written while a newer
    ///   write of its own is out, this is the late outcome of an older write:
    ///   ignored (the newer write's outcome decides).
    ///
    /// If the store holds no record at all, call
    /// [`handle_record_deleted`](Self::handle_record_deleted) instead.
    ///
    /// # Errors
    /// [`ErrorKind::UnknownGrant`]; [`ErrorKind::StaleRecord`] if `current` is
    /// of another schema or grant, or older than a version known written;
    /// [`ErrorKind::InvalidInput`] if it has no refresh token or absurd times.
    pub(in crate::engine) fn on_conflict(
        &mut self,
        grant: &str,
        current: GrantRecord,
        now: SystemTime,
    ) -> Result<(), Error> {
        let idx = self.lookup(grant)?;
        self.check_current(idx, grant, &current, false)?;
        let holder = self.settings.holder();
        let Some(slot) = self.grants.get(idx) else {
            return Err(unknown_grant(grant));
        };
        // A minted Location grant's record holds no refresh token until its
        // mint is answered (a pending or lease-only record).
        let minted = self.locations.parent_of(grant).is_some();
        if current.refresh_token().is_none() && !minted {
            return Err(Error::input("the record has no refresh token"));
        }
        if current.version > 0
            && current.version == slot.write.confirmed
            && slot.write.emitted != Some(current.version)
        {
            // The version known stored: the late outcome of an older write,
            // which the outcome of the newer one out supersedes.
            return Ok(());
        }
        let same_token = same_refresh(&current, &slot.held);
        // Our own write, reported as a conflict (e.g. a retried write).
        let ours = current.version > 0
            && slot.write.emitted == Some(current.version)
            && slot.write.version == current.version
            && same_token
            && match slot.phase {
                Phase::Leasing { until, .. } => current
                    .lease
                    .as_ref()
                    .is_some_and(|l| Some(l.holder.as_str()) == holder && l.until == until),
                _ => current.lease.is_none(),
            };
        if ours {
            return self.on_written(grant, current.version, now);
        }
        if same_token && slot.write.unconfirmed != Unconfirmed::None
            || self.holds_newer(idx, &current)
        {
            self.rewrite_over(idx, current.version);
            return Ok(());
        }
        self.adopt_record(idx, current, now);
        Ok(())
    }

    /// Reports that a write of `grant` (record `version`) failed without
    /// reaching the store, or with an unknown outcome: the store was down,
    /// the transaction rolled back, the call timed out. The engine writes
    /// again after a backoff ([`EngineEvent::WriteFailed`]); a lease not taken is
    /// a refresh tried again later ([`RefreshFailure::Store`]). The next write's
    /// compare-and-swap finds out whether this one reached the store after
    /// all.
    ///
    /// # Errors
    /// [`ErrorKind::UnknownGrant`]; [`ErrorKind::UnknownRequest`] if the engine
    /// never emitted that version.
    pub(in crate::engine) fn on_write_failed(
        &mut self,
        grant: &str,
        version: u64,
        failure: StoreFailure,
        now: SystemTime,
    ) -> Result<(), Error> {
        let idx = self.lookup(grant)?;
        let (base, cap) = (self.settings.backoff_base, self.settings.backoff_cap);
        let Some(slot) = self.grants.get_mut(idx) else {
            return Err(unknown_grant(grant));
        };
        never_emitted(slot, grant, version)?;
        if version <= slot.write.confirmed || slot.write.emitted != Some(version) {
            // Old news: a later write is out, or this one is known written.
            return Ok(());
        }
        // The next write replaces the version last known written.
        // (A version-0 record in the store shows up as a conflict, and is
        // then replaced.)
        slot.write.emitted = (slot.write.confirmed > 0).then_some(slot.write.confirmed);
        slot.write.failures = slot.write.failures.saturating_add(1);
        slot.write.store_failure = Some(Box::new(failure.clone()));
        let failures = u32::from(slot.write.failures);
        if let Phase::Leasing { .. } = slot.phase {
            slot.phase = Phase::Idle;
            self.retry_after_failure(idx, now, RefreshFailure::Store(failure));
            return Ok(());
        }
        let at = add(now, backoff(base, cap, failures, &mut self.rng));
        self.timers.rewrite_at(at, idx);
        let t = self.grants.tag(idx);
        self.queue.push_back(Queued::Event(
            t,
            EngineEvent::WriteFailed {
                grant: GrantId::new(grant),
                version,
                failure,
                retry_at: at,
            },
        ));
        Ok(())
    }

    /// A write to try again is due: queued if the grant still has something
    /// unwritten.
    pub(in crate::engine::grant) fn rewrite_due(&mut self, idx: u32) {
        let Some(slot) = self.grants.get(idx) else {
            return;
        };
        if !slot.removed && slot.write.emitted != Some(slot.write.version) {
            self.queue.push_front(Queued::Persist(self.grants.tag(idx)));
        }
    }

    /// The store holds no record of `grant` at all: a compare-and-swap found
    /// nothing to replace, or a read ([`Output::Load`](super::Output::Load))
    /// found nothing. The grant was removed elsewhere (e.g. uninstalled by
    /// another process): the engine forgets it as a released grant (its
    /// tokens are dropped) and reports [`EngineEvent::RemovedElsewhere`].
    ///
    /// # Errors
    /// [`ErrorKind::UnknownGrant`].
    pub(in crate::engine) fn on_no_record(&mut self, grant: &str) -> Result<(), Error> {
        let idx = self.lookup(grant)?;
        let key = self.grants.get(idx).map(|s| s.key.clone());
        self.release_grant(grant)?;
        if let Some(grant) = key {
            self.queue
                .push_back(Queued::Global(EngineEvent::RemovedElsewhere { grant }));
        }
        Ok(())
    }

    /// Hands back the record of `grant` as the store holds it now (`None`: no
    /// record), after an [`Output::Load`](super::Output::Load) or at any time
    /// (a change notification, a periodic scan).
    ///
    /// - A record older than a version known written is a stale read:
    ///   ignored (the engine asks again later if it was waiting for it).
    /// - A record holding the refresh token that was refused as invalid
    ///   (shared-store mode): the grant is lost. "Re-authorization needed" is
    ///   written over exactly that version, and reported once the write won.
    /// - A newer record: its tokens, lease and status are adopted, unless the
    ///   engine holds newer tokens, which it writes again over it.
    /// - `None`: as [`handle_record_deleted`](Self::handle_record_deleted).
    ///
    /// # Errors
    /// [`ErrorKind::UnknownGrant`]; [`ErrorKind::StaleRecord`] for a record of
    /// another schema or grant; [`ErrorKind::InvalidInput`] for one without a
    /// refresh token or with absurd times.
    pub(in crate::engine) fn on_loaded(
        &mut self,
        grant: &str,
        record: Option<GrantRecord>,
        now: SystemTime,
    ) -> Result<(), Error> {
        let idx = self.lookup(grant)?;
        let Some(record) = record else {
            return self.on_no_record(grant);
        };
        self.check_current(idx, grant, &record, true)?;
        let reread = self.settings.reread_interval;
        let Some(slot) = self.grants.get(idx) else {
            return Err(unknown_grant(grant));
        };
        if record.version < slot.write.confirmed {
            return Ok(());
        }
        let same_token = same_refresh(&record, &slot.held);
        let write_out = slot.write.is_out();
        if slot.phase == Phase::Checking {
            if !same_token
                || record.version > slot.write.confirmed && self.holds_newer(idx, &record)
            {
                self.adopt_or_rewrite(idx, record, now);
            } else if matches!(record.status, GrantStatus::ReauthorizationNeeded { .. }) {
                // Another engine found the same.
                self.adopt_record(idx, record, now);
            } else {
                let error = self
                    .grants
                    .get_mut(idx)
                    .and_then(|s| s.write.condemned.take())
                    .map_or_else(
                        || Error::new(ErrorKind::InvalidGrant, "the refresh token was refused"),
                        |e| *e,
                    );
                if let Some(slot) = self.grants.get_mut(idx) {
                    // Written over exactly the version read.
                    slot.write.emitted = Some(record.version);
                    slot.write.high = slot.write.high.max(record.version);
                    slot.write.confirmed = record.version;
                    slot.write.version = slot.write.version.max(record.version);
                }
                self.condemn(idx, error);
            }
            return Ok(());
        }
        if record.version == slot.write.confirmed && same_token || write_out {
            // Nothing new (or a write of ours is out, whose outcome decides).
            if let Phase::WaitingLease { until } = slot.phase {
                self.arm(idx, Some(until.min(add(now, reread)).max(now)));
            }
            return Ok(());
        }
        self.adopt_or_rewrite(idx, record, now);
        Ok(())
    }

    fn adopt_or_rewrite(&mut self, idx: u32, record: GrantRecord, now: SystemTime) {
        if self.holds_newer(idx, &record) {
            self.rewrite_over(idx, record.version);
        } else {
            self.adopt_record(idx, record, now);
        }
    }

    /// Checks a record handed back from the store for `grant`.
    /// `stale_ok`: a read may be stale (it is then ignored); a conflict's
    /// record may not.
    fn check_current(
        &self,
        idx: u32,
        grant: &str,
        current: &GrantRecord,
        stale_ok: bool,
    ) -> Result<(), Error> {
        current.check()?;
        if current.grant.as_str() != grant {
            return Err(Error::new(
                ErrorKind::StaleRecord,
                format!("the record is of grant {}, not {grant}", current.grant),
            ));
        }
        let confirmed = self.grants.get(idx).map_or(0, |s| s.write.confirmed);
        if current.version < confirmed && !stale_ok {
            return Err(Error::new(
                ErrorKind::StaleRecord,
                format!(
                    "record version {} of grant {grant} is older than version {confirmed} known written",
                    current.version
                ),
            ));
        }
        Ok(())
    }

    /// Invalid grant in shared-store mode: read the store before declaring
    /// the grant lost.
    pub(in crate::engine::grant) fn check_refusal(
        &mut self,
        idx: u32,
        error: Error,
        now: SystemTime,
    ) {
        let reread = self.settings.reread_interval;
        let Some(slot) = self.grants.get_mut(idx) else {
            return;
        };
        slot.phase = Phase::Checking;
        slot.write.condemned = Some(Box::new(error));
        self.arm(idx, Some(add(now, reread)));
        self.queue.push_back(Queued::Load(self.grants.tag(idx)));
    }

    /// A re-read of the store is due (waiting for a lease elsewhere, for the
    /// answer to a read, or for re-authorization).
    pub(in crate::engine::grant) fn reread_due(&mut self, idx: u32, now: SystemTime) {
        let (reread, cap) = (self.settings.reread_interval, self.settings.backoff_cap);
        let Some(slot) = self.grants.get_mut(idx) else {
            return;
        };
        let wait = match slot.phase {
            Phase::Reauth => {
                // Lost grants are read less and less often.
                slot.shared.rereads = slot.shared.rereads.saturating_add(1);
                let exp = u32::from(slot.shared.rereads.min(16));
                reread.saturating_mul(1 << exp.min(16)).min(cap.max(reread))
            }
            _ => reread,
        };
        let at = match slot.phase {
            Phase::WaitingLease { until } => until.min(add(now, wait)),
            _ => add(now, wait),
        };
        self.arm(idx, Some(at));
        self.queue.push_back(Queued::Load(self.grants.tag(idx)));
    }

    /// The held tokens are written: the old access token goes, and callers
    /// told to wait are told a token is ready; a new authorization is
    /// reported durable; a refusal is reported once written. The events to
    /// queue.
    pub(in crate::engine::grant) fn durable(&mut self, idx: u32) -> Vec<EngineEvent> {
        let mut events = Vec::new();
        let Some(slot) = self.grants.get_mut(idx) else {
            return events;
        };
        if slot.write.unconfirmed == Unconfirmed::Installed {
            events.push(EngineEvent::Durable {
                grant: slot.key.clone(),
                version: slot.write.version,
            });
        }
        slot.write.unconfirmed = Unconfirmed::None;
        if let Some(error) = slot.write.condemned.take()
            && matches!(slot.status, GrantStatus::ReauthorizationNeeded { .. })
        {
            events.push(EngineEvent::ReauthorizationNeeded {
                grant: slot.key.clone(),
                error: *error,
            });
        }
        let announce = std::mem::take(&mut slot.write.announce);
        if announce {
            events.push(EngineEvent::Refreshed {
                grant: slot.key.clone(),
                expires_at: slot.held.expires_at(),
            });
        }
        let had_prev = slot.write.prev.take().is_some();
        if (had_prev || announce) && slot.refresh.waiters && slot.status == GrantStatus::Active {
            slot.refresh.waiters = false;
            events.push(EngineEvent::TokenReady {
                grant: slot.key.clone(),
                expires_at: slot.held.expires_at(),
            });
        }
        events
    }

    /// Whether the engine holds tokens that are newer than `record`'s and
    /// that the store may not have: a new authorization, or tokens received
    /// for the refresh token the record holds.
    pub(in crate::engine::grant) fn holds_newer(&self, idx: u32, record: &GrantRecord) -> bool {
        let Some(slot) = self.grants.get(idx) else {
            return false;
        };
        match slot.write.unconfirmed {
            Unconfirmed::None => false,
            Unconfirmed::Installed => true,
            Unconfirmed::Refreshed { spent } => record
                .refresh_token()
                .is_some_and(|t| token_key(t) == spent),
        }
    }

    /// Writes the held state again, over the stored `version`, ahead of
    /// everything queued (it holds the newest refresh token).
    pub(in crate::engine::grant) fn rewrite_over(&mut self, idx: u32, version: u64) {
        let Some(slot) = self.grants.get_mut(idx) else {
            return;
        };
        slot.write.emitted = Some(version);
        slot.write.high = slot.write.high.max(version);
        slot.write.confirmed = version;
        slot.write.version = slot.write.version.max(version).saturating_add(1);
        if matches!(slot.phase, Phase::Leasing { .. } | Phase::Checking) {
            // A lease that lost, or a check answered: the tokens first.
            slot.phase = Phase::Idle;
        }
        self.queue.push_front(Queued::Persist(self.grants.tag(idx)));
    }

    /// Takes a stored record that is newer than the engine's state.
    pub(in crate::engine::grant) fn adopt_record(
        &mut self,
        idx: u32,
        record: GrantRecord,
        now: SystemTime,
    ) {
        let Some(slot) = self.grants.get_mut(idx) else {
            return;
        };
        let same_token = same_refresh(&record, &slot.held);
        let version = record.version;
        slot.write.version = version;
        // Handed back by the store: stored, even at version 0.
        slot.write.emitted = Some(version);
        slot.write.high = slot.write.high.max(version);
        slot.write.confirmed = version;
        slot.write.unconfirmed = Unconfirmed::None;
        slot.write.prev = None;
        slot.write.condemned = None;
        slot.write.announce = false;
        if same_token
            && matches!(
                slot.phase,
                Phase::InFlight {
                    dispatched: true,
                    ..
                }
            )
        {
            // Our refresh is out; its answer decides.
            return;
        }
        let GrantRecord {
            status,
            lease,
            tokens,
            minted_from,
            ..
        } = record;
        let mut adopted = false;
        if !same_token {
            let held = if minted_from.is_some() {
                Held::from_set_minted(tokens, None, &mut self.interner)
            } else {
                Held::from_set(tokens, None, &mut self.interner)
            };
            let Some(held) = held else {
                return;
            };
            replace_held(slot, held);
            slot.refresh.attempt = 0;
            adopted = true;
        }
        self.apply_stored_state(idx, status, lease, now, adopted);
    }

    /// Sets status, phase and timer from a stored record's status and lease,
    /// and queues the matching events.
    pub(in crate::engine::grant) fn apply_stored_state(
        &mut self,
        idx: u32,
        status: GrantStatus,
        lease: Option<Lease>,
        now: SystemTime,
        adopted: bool,
    ) {
        let margin = self.settings.refresh_margin;
        let skew = self.settings.expiry_skew;
        let shared = self.settings.is_shared();
        let reread = self.settings.reread_interval;
        let Some(slot) = self.grants.get_mut(idx) else {
            return;
        };
        let grant = slot.key.clone();
        let expires_at = slot.held.expires_at();
        let was = slot.status.clone();
        let mut events = Vec::new();
        if adopted {
            events.push(EngineEvent::Adopted {
                grant: grant.clone(),
                expires_at,
            });
        }
        let timer = match status {
            GrantStatus::ReauthorizationNeeded { reason } => {
                slot.status = GrantStatus::ReauthorizationNeeded { reason };
                slot.phase = Phase::Reauth;
                slot.refresh.waiters = false;
                slot.shared.rereads = 0;
                if !matches!(was, GrantStatus::ReauthorizationNeeded { .. }) {
                    events.push(EngineEvent::ReauthorizationNeeded {
                        grant: grant.clone(),
                        error: Error::new(
                            ErrorKind::InvalidGrant,
                            "the stored record says the grant needs re-authorization",
                        ),
                    });
                }
                // In shared-store mode another engine may still write newer
                // tokens (or a new authorization): look again.
                shared.then(|| add(now, reread))
            }
            GrantStatus::Suspended { until } => {
                slot.status = GrantStatus::Suspended { until };
                slot.phase = Phase::Suspended;
                slot.refresh.waiters = false;
                if was != (GrantStatus::Suspended { until }) {
                    events.push(EngineEvent::Suspended {
                        grant: grant.clone(),
                        until,
                        error: Error::new(
                            ErrorKind::LocationNotActive,
                            "the stored record says the location is not active",
                        ),
                    });
                }
                Some(until.max(now))
            }
            GrantStatus::Unauthorized { until, reason } => {
                slot.phase = Phase::Backoff;
                slot.refresh.waiters = false;
                // Refused once at least: the next refusal waits longer.
                slot.refresh.attempt = slot.refresh.attempt.max(1);
                if !matches!(was, GrantStatus::Unauthorized { until: u, .. } if u == until) {
                    events.push(EngineEvent::Unauthorized {
                        grant: grant.clone(),
                        until,
                        error: Error::new(
                            ErrorKind::GrantUnauthorized,
                            "the stored record says the grant's refresh was refused with 401",
                        ),
                    });
                }
                slot.status = GrantStatus::Unauthorized { until, reason };
                Some(until.max(now))
            }
            _ => {
                slot.status = GrantStatus::Active;
                slot.phase = Phase::Idle;
                Some(slot.held.refresh_at(margin).max(now))
            }
        };
        // A live lease (whatever the status) holds every refresh off until it
        // ends; the store is read again meanwhile.
        let timer = match (lease, timer) {
            (Some(l), Some(t)) if l.until > now && slot.phase != Phase::Reauth => {
                slot.phase = Phase::WaitingLease { until: l.until };
                events.push(EngineEvent::LeaseHeldElsewhere {
                    grant: grant.clone(),
                    holder: l.holder,
                    until: l.until,
                });
                let end = t.max(l.until);
                Some(if shared {
                    end.min(add(now, reread))
                } else {
                    end
                })
            }
            (_, t) => t,
        };
        if slot.refresh.waiters && slot.status == GrantStatus::Active && add(now, skew) < expires_at
        {
            slot.refresh.waiters = false;
            events.push(EngineEvent::TokenReady { grant, expires_at });
        }
        self.arm(idx, timer);
        let t = self.grants.tag(idx);
        self.queue
            .extend(events.into_iter().map(|e| Queued::Event(t, e)));
    }
}

/// [`ErrorKind::UnknownRequest`] if the engine never emitted record
/// `version` of `grant` (the outcome reported is of a write it did not ask
/// for).
pub(in crate::engine) fn never_emitted(
    slot: &Slot,
    grant: &str,
    version: u64,
) -> Result<(), Error> {
    if version > slot.write.high {
        return Err(Error::new(
            ErrorKind::UnknownRequest,
            format!("version {version} of grant {grant} was never emitted"),
        ));
    }
    Ok(())
}

/// Whether `record` holds the refresh token `held` holds (both none: a
/// minted grant not minted yet).
fn same_refresh(record: &GrantRecord, held: &Held) -> bool {
    match record.refresh_token() {
        Some(token) => *token == held.refresh,
        None => !held.has_refresh(),
    }
}
