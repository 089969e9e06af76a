//! Grants coming and going: a new authorization, a stored record, a grant
//! released or uninstalled, a Location grant to mint, and the install
//! webhooks that add and remove grants.

use std::time::SystemTime;

use crate::error::{Error, ErrorKind};
use crate::location_token::LocationTokenRequest;
use crate::secret::AccessToken;
use crate::token::{TokenResponse, TokenSet, UserType};
use crate::webhook::{InstallTarget, UninstallTarget, WebhookEvent, WebhookPayload};

use crate::engine::held::Held;
use crate::engine::locations::InstallChanges;
use crate::engine::output::EngineEvent;
use crate::engine::queue::Queued;
use crate::engine::record::{GrantId, GrantRecord, GrantStatus};
use crate::engine::slot::{Phase, Slot, Unconfirmed, replace_held, token_key};
use crate::engine::{Engine, unknown_grant};

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
    /// [`EngineEvent::Durable`] follows once the record is written.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if the answer has no refresh token.
    pub(in crate::engine) fn insert_grant(
        &mut self,
        grant: impl Into<GrantId>,
        tokens: TokenSet,
        now: SystemTime,
    ) -> Result<(), Error> {
        let grant = grant.into();
        grant.check()?;
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
                    EngineEvent::TokenReady {
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
    pub(in crate::engine) fn restore_grant(
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
    pub(in crate::engine) fn release_grant(&mut self, grant: &str) -> Result<(), Error> {
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
            || !matches!(slot.write.unconfirmed, Unconfirmed::None)
        {
            // Out of the schedule, but remembered should the grant come back
            // (and nothing queued for it reaches it, even once it is back).
            // Tokens the store may not have yet are the only copy of the
            // newest refresh token: they come back with the grant, and
            // their write is queued again.
            self.timers.suspend(idx, slot.timer);
            self.grants.set_removed(idx);
        } else {
            self.free_slot(idx);
        }
        Ok(())
    }

    /// Drops a slot for good.
    pub(in crate::engine::grant) fn free_slot(&mut self, idx: u32) {
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

    /// Adds a Location grant `grant`, minted from the Company grant
    /// `company_grant` for `request`'s company and location. The mint goes
    /// out under the request budget and the cap; the Company grant need not
    /// be held yet (the mint waits for it: a bulk INSTALL webhook may come
    /// before the code exchange). Nothing is persisted before the first mint
    /// answers; its record carries [`GrantRecord::minted_from`](super::GrantRecord::minted_from).
    ///
    /// Returns whether the grant was added: `false` if the engine holds
    /// `grant` already (as it is).
    ///
    /// May queue outputs: call [`poll_output`](Self::poll_output) afterwards.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an empty company or location id, or a
    /// grant minted from itself.
    pub(in crate::engine) fn add_minted(
        &mut self,
        grant: impl Into<GrantId>,
        company_grant: impl Into<GrantId>,
        request: &LocationTokenRequest,
        now: SystemTime,
    ) -> Result<bool, Error> {
        let (grant, company_grant) = (grant.into(), company_grant.into());
        grant.check()?;
        company_grant.check()?;
        if request.company_id().trim().is_empty() || request.location_id().trim().is_empty() {
            return Err(Error::input(
                "a Location grant needs a company id and a location id",
            ));
        }
        if grant == company_grant {
            return Err(Error::input(format!(
                "grant {grant} cannot be minted from itself"
            )));
        }
        if self.holds(grant.as_str()) {
            return Ok(false);
        }
        let mut token = TokenResponse::new(AccessToken::new(String::new()));
        token.expires_in = Some(0);
        token.user_type = Some(UserType::Location);
        token.company_id = Some(request.company_id().to_owned());
        token.location_id = Some(request.location_id().to_owned());
        let held = Held::from_set_minted(TokenSet::new(token, now), None, &mut self.interner)
            .ok_or_else(|| Error::input("the Location grant could not be set up"))?;
        self.locations.link(grant.clone(), company_grant);
        // Single process: version 0, never stored; the mint's answer is the
        // first write. Shared-store mode: a record names the grant at once
        // (no tokens, no lease), so that a mint this process has queued is
        // found by the others if it dies first, and a grant another process
        // minted already is adopted (the insert conflicts) instead of minted
        // again.
        let shared = self.settings.is_shared();
        let idx = self
            .grants
            .add(Slot::new(grant, held, u64::from(shared), Unconfirmed::None));
        if shared {
            if let Some(slot) = self.grants.get_mut(idx) {
                slot.write.emitted = None;
                slot.write.confirmed = 0;
                slot.write.high = 0;
            }
            self.queue.push_back(Queued::Persist(self.grants.tag(idx)));
        }
        self.start_refresh(idx, now);
        Ok(true)
    }

    /// Removes an uninstalled grant, and, for a Company grant, every
    /// Location grant minted from it. Each gets an [`Output::Delete`]: delete
    /// its record. Their tokens are wiped from memory at once (an answer to
    /// a refresh still out is then refused as for a removed grant, with any
    /// refresh token in it rescued in the error). Returns the grants removed,
    /// the Company grant first.
    ///
    /// # Errors
    /// [`ErrorKind::UnknownGrant`] if the engine holds neither `grant` nor
    /// any Location grant minted from it.
    pub(in crate::engine) fn uninstall_grant(
        &mut self,
        grant: &str,
    ) -> Result<Vec<GrantId>, Error> {
        let children = self.locations.children_of(grant);
        if !self.holds(grant) && children.is_empty() {
            return Err(unknown_grant(grant));
        }
        let mut removed = Vec::new();
        let own = self.holds(grant).then(|| GrantId::new(grant));
        for g in own.into_iter().chain(children) {
            if let Ok(idx) = self.lookup(g.as_str()) {
                self.release_grant(g.as_str())?;
                // Not taken back by a later insert or restore: its tokens go.
                if let Some(slot) = self.grants.get_mut(idx)
                    && slot.key == g
                    && slot.removed
                {
                    slot.held.wipe();
                    slot.write.prev = None;
                    self.grants.forget_removed(g.as_str());
                }
            }
            self.locations.unlink(&g);
            self.queue.push_back(Queued::Delete(g.clone()));
            removed.push(g);
        }
        self.locations.unblock(grant);
        Ok(removed)
    }

    /// Applies a verified install webhook ([`WebhookVerifier::verify`](crate::WebhookVerifier::verify)).
    /// Grants are named by convention: a Company grant by its Company id, a
    /// Location grant by its Location id.
    ///
    /// - INSTALL, bulk (`locationIds`): a Location grant for each location
    ///   not held, minted from the Company grant named by `companyId` (which
    ///   the code exchange adds with [`insert`](Self::insert); the mints wait
    ///   for it). The Company grant is reported in
    ///   [`InstallChanges::needs_code_exchange`] if it is not held.
    /// - INSTALL, one Location: minted the same way if the Company grant is
    ///   held; else it comes from the code exchange (`needs_code_exchange`).
    /// - INSTALL, a Company with no list: `needs_code_exchange`.
    /// - UNINSTALL: [`uninstall`](Self::uninstall) of the location, or of the
    ///   Company grant and every Location grant minted from it. A grant not
    ///   held is no error.
    /// - Any other type: nothing.
    ///
    /// May queue outputs: call [`poll_output`](Self::poll_output) afterwards.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for ids that cannot name grants.
    pub(in crate::engine) fn apply_webhook(
        &mut self,
        event: &WebhookEvent,
        now: SystemTime,
    ) -> Result<InstallChanges, Error> {
        let mut changes = InstallChanges::default();
        match &event.payload {
            WebhookPayload::Install(install) => match &install.target {
                InstallTarget::Bulk {
                    company_id,
                    location_ids,
                } => {
                    if !self.holds(company_id) {
                        changes.needs_code_exchange.push(GrantId::new(company_id));
                    }
                    for location in location_ids {
                        let req = LocationTokenRequest::new(company_id, location);
                        if self.add_minted(location.as_str(), company_id.as_str(), &req, now)? {
                            changes.added.push(GrantId::new(location));
                        }
                    }
                }
                InstallTarget::Location { location_id } => match &install.company_id {
                    Some(company_id) if self.holds(company_id) => {
                        let req = LocationTokenRequest::new(company_id, location_id);
                        if self.add_minted(location_id.as_str(), company_id.as_str(), &req, now)? {
                            changes.added.push(GrantId::new(location_id));
                        }
                    }
                    _ if !self.holds(location_id) => {
                        changes.needs_code_exchange.push(GrantId::new(location_id));
                    }
                    _ => {}
                },
                InstallTarget::Company { company_id } if !self.holds(company_id) => {
                    changes.needs_code_exchange.push(GrantId::new(company_id));
                }
                // A target of a later version of the payload: nothing known to do.
                #[allow(unreachable_patterns)]
                _ => {}
            },
            WebhookPayload::Uninstall(uninstall) => {
                let grant = match &uninstall.target {
                    UninstallTarget::Location { location_id } => location_id.as_str(),
                    UninstallTarget::Company { company_id } => company_id.as_str(),
                    #[allow(unreachable_patterns)]
                    _ => return Ok(changes),
                };
                if let Ok(removed) = self.uninstall_grant(grant) {
                    changes.removed = removed;
                }
            }
            _ => {}
        }
        Ok(changes)
    }
}
