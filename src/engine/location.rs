//! Location grants minted from a Company grant, and the install webhooks
//! that add and remove grants.
//!
//! A Location grant of this kind is minted through `POST /oauth/locationToken`
//! (v3: `/oauth/location-token`) with the access token of its Company grant
//! (per FACTS.md, "POST /oauth/locationToken"). It is kept fresh by its own
//! refresh token when the answer carried one, and minted again from the
//! Company grant when it carried none or when its refresh token is refused.
//!
//! Minting asks the Company grant for its access token
//! ([`Engine::access_token`]): a Company token that expired is refreshed
//! once (single-flight, as any refresh), and the mints wait for it. They go
//! on when the Company grant reports a token (its
//! [`Event::TokenReady`], [`Event::Refreshed`], [`Event::Adopted`] or
//! [`Event::Durable`]), and in any case look again after a while. Mints never
//! present the Company refresh token: a Company rotation while mints are out
//! changes nothing for them (an access token stays valid until it expires).

use std::time::{Duration, SystemTime};

use crate::error::{Error, ErrorKind};
use crate::location_token::{LocationTokenRequest, location_token_request};
use crate::rate_limit::saturating_add as add;
use crate::secret::AccessToken;
use crate::token::{TokenResponse, TokenSet, UserType};
use crate::webhook::{InstallTarget, UninstallTarget, WebhookEvent, WebhookPayload};

use super::held::Held;
use super::locations::InstallChanges;
use super::output::{Output, RequestId, TokenStatus};
use super::queue::Queued;
use super::record::GrantId;
use super::schedule::ceil_seconds;
use super::slot::{Phase, Slot, Unconfirmed};
use super::{Engine, unknown_grant};

impl Engine {
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
    pub(crate) fn add_minted(
        &mut self,
        grant: impl Into<GrantId>,
        company_grant: impl Into<GrantId>,
        request: &LocationTokenRequest,
        now: SystemTime,
    ) -> Result<bool, Error> {
        let (grant, company_grant) = (grant.into(), company_grant.into());
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
        // Version 0: never stored; the mint's answer is the first write.
        let idx = self
            .grants
            .add(Slot::new(grant, held, 0, Unconfirmed::None));
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
    pub(crate) fn uninstall_grant(&mut self, grant: &str) -> Result<Vec<GrantId>, Error> {
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
    pub(crate) fn apply_webhook(
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

    /// Whether the grant in slot `idx` is minted (not refreshed) next: a
    /// Location grant of a Company grant, with no refresh token.
    pub(crate) fn mints_next(&self, idx: u32) -> bool {
        self.grants.get(idx).is_some_and(|s| {
            !s.held.has_refresh() && self.locations.parent_of(s.key.as_str()).is_some()
        })
    }

    /// Whether request `id` is a mint.
    pub(crate) fn is_mint(&self, id: RequestId) -> bool {
        self.locations.is_mint(id)
    }

    /// Forgets that `id` was a mint (its answer is in); returns whether it was.
    pub(crate) fn mint_answered(&mut self, id: RequestId) -> bool {
        self.locations.mint_answered(id)
    }

    /// Builds the mint of slot `idx` (request `seq`), or, while the Company
    /// grant has no access token to lend, waits for it.
    pub(crate) fn build_mint(
        &mut self,
        idx: u32,
        seq: u32,
        epoch: u32,
        not_after: SystemTime,
        now: SystemTime,
    ) -> Option<Output> {
        let (grant, company_id, location_id) = {
            let s = self.grants.get(idx)?;
            (
                s.key.clone(),
                s.held.company_id().map(str::to_owned),
                s.held.location_id().unwrap_or(s.key.as_str()).to_owned(),
            )
        };
        let parent = self.locations.parent_of(grant.as_str())?.clone();
        // A location-token answer need not carry `companyId`: the Company
        // grant's is the one.
        let company_id = company_id
            .or_else(|| {
                let p = self.lookup(parent.as_str()).ok()?;
                self.grants.get(p)?.held.company_id().map(str::to_owned)
            })
            .unwrap_or_default();
        let status = if self.holds(parent.as_str()) {
            self.token_status(parent.as_str(), now).ok()
        } else {
            None
        };
        let bearer = match status {
            Some(TokenStatus::Ready(token)) => token,
            other => {
                // Wait for the Company grant: woken by its events, and in any
                // case looked at again after a while.
                let wait = match other {
                    Some(TokenStatus::Pending) => self.settings.request_timeout,
                    _ => self.settings.backoff_cap,
                };
                let t = self.grants.tag(idx);
                if let Some(slot) = self.grants.get_mut(idx) {
                    slot.phase = Phase::Backoff;
                }
                self.arm(idx, Some(add(now, wait)));
                self.locations.block(parent, t);
                return None;
            }
        };
        if !self.pace(idx, seq, now) {
            return None;
        }
        let req = LocationTokenRequest::new(company_id, location_id);
        match location_token_request(&self.config, &bearer, &req) {
            Ok(request) => {
                let refresh = self.grants.get(idx)?.held.fingerprint();
                self.mark_in_flight(idx, seq, epoch, now, not_after);
                let id = RequestId::new(seq, idx);
                self.note_mint(id);
                Some(Output::Send {
                    id,
                    grant,
                    request,
                    not_after,
                    refresh,
                })
            }
            Err(error) => {
                // Ids the request cannot carry: this location cannot be minted.
                self.condemn(idx, error);
                None
            }
        }
    }

    fn note_mint(&mut self, id: RequestId) {
        // Mints given up on and never answered: past a bound, keep those a
        // slot still knows.
        let bound = 4 * self.grants.capacity() + 64;
        let grants = &self.grants;
        self.locations.note_mint(id, bound, |id| {
            grants.get(id.slot()).is_some_and(|s| {
                matches!(s.phase, Phase::InFlight { seq, .. } if seq == id.seq())
                    || s.refresh.abandoned.iter().any(|a| a.seq == id.seq())
            })
        });
    }

    /// The Company grant `company_grant` may lend its access token now: the
    /// Location grants waiting for it are started again.
    pub(crate) fn wake_locations(&mut self, company_grant: &GrantId, now: SystemTime) {
        for t in self.locations.unblock(company_grant.as_str()) {
            let waiting = self
                .grants
                .get(t.slot)
                .is_some_and(|s| s.life == t.life && !s.removed && s.phase == Phase::Backoff);
            if waiting && self.mints_next(t.slot) {
                if let Some(slot) = self.grants.get_mut(t.slot) {
                    slot.phase = Phase::Idle;
                }
                self.start_refresh(t.slot, now);
            }
        }
    }

    /// A failed answer for a Location grant the engine mints, handled here;
    /// any other is handed back.
    ///
    /// - A mint refused with 403 ("The token does not have access to this
    ///   location.": the location was uninstalled): re-authorization needed
    ///   for that location alone.
    /// - A mint refused with 401: that location is parked as unauthorized
    ///   and tried again later; it does not count towards the client's
    ///   rejection (the other locations go on).
    /// - The grant's own refresh token refused as invalid: minted again.
    pub(crate) fn minted_failure(
        &mut self,
        idx: u32,
        error: Error,
        now: SystemTime,
    ) -> Option<Error> {
        let minted = self
            .grants
            .get(idx)
            .is_some_and(|s| self.locations.parent_of(s.key.as_str()).is_some());
        if !minted {
            return Some(error);
        }
        let mint = self.mints_next(idx);
        match error.kind() {
            ErrorKind::Forbidden if mint => self.condemn(idx, error),
            ErrorKind::Unauthorized | ErrorKind::GrantUnauthorized | ErrorKind::InvalidClient
                if mint =>
            {
                self.park_unauthorized(idx, error, now);
            }
            ErrorKind::InvalidGrant if !mint => {
                if let Some(slot) = self.grants.get_mut(idx) {
                    slot.held.clear_refresh();
                    slot.phase = Phase::Idle;
                }
                self.start_refresh(idx, now);
            }
            _ => return Some(error),
        }
        None
    }

    fn park_unauthorized(&mut self, idx: u32, error: Error, now: SystemTime) {
        let until = ceil_seconds(add(now, self.settings.unauthorized_retry));
        self.park_unauthorized_until(idx, error, until);
    }

    /// A mint answered with tokens: the grant's refresh time is drawn within
    /// [`EngineSettings::refresh_ahead_spread`](super::EngineSettings::refresh_ahead_spread)
    /// before it, so that locations minted together do not come due together.
    pub(crate) fn spread_minted(&mut self, idx: u32, now: SystemTime) {
        let spread = self.settings.refresh_ahead_spread;
        let margin = self.settings.refresh_margin;
        let Some(slot) = self.grants.get(idx) else {
            return;
        };
        if spread.is_zero() || slot.phase != Phase::Idle || slot.timer.is_none() {
            return;
        }
        let at = slot.held.refresh_at(margin);
        let life = slot
            .held
            .expires_at()
            .duration_since(now)
            .unwrap_or(Duration::ZERO);
        let spread = spread.min(life / 2);
        let early = spread.mul_f64(self.rng.next_unit());
        let at = at.checked_sub(early).unwrap_or(at).max(now);
        self.arm(idx, Some(at));
    }
}
