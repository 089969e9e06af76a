//! What [`Engine::poll_output`] hands out, built from the grants' state at
//! that moment: sends (refreshes and Location-token mints, under the
//! request budget), records, reads, deletes and events.

use std::time::{Duration, SystemTime};

use crate::location_token::{LocationTokenRequest, location_token_request};
use crate::time::saturating_add as add;
use crate::token::UserType;
use crate::token_endpoint::{GrantType, TokenRequest, token_request};

use crate::engine::Engine;
use crate::engine::output::{EngineEvent, Output, RequestId, TokenStatus};
use crate::engine::pacer::{SendKind, Turn};
use crate::engine::queue::Queued;
use crate::engine::record::{GrantId, GrantRecord, Lease};
use crate::engine::settings::BudgetKeying;
use crate::engine::slot::{Phase, Slot};
use crate::engine::table::Tag;

impl Engine {
    /// The request `seq` (of `epoch`) of slot `idx` is handed out at `now`:
    /// the grant is in flight until its answer, or until the request timeout
    /// past `not_after`.
    pub(in crate::engine::grant) fn mark_in_flight(
        &mut self,
        idx: u32,
        seq: u32,
        epoch: u32,
        now: SystemTime,
        not_after: SystemTime,
    ) {
        if let Some(slot) = self.grants.get_mut(idx) {
            slot.phase = Phase::InFlight {
                seq,
                epoch,
                sent_at: now,
                not_after,
                dispatched: true,
            };
        }
        let give_up = crate::time::saturating_add(not_after, self.settings.request_timeout);
        self.arm(idx, Some(give_up));
    }

    /// The next thing to do at `now`, or `None` when there is nothing left.
    ///
    /// Call it until it returns `None` after every call that takes `now`
    /// (`handle_*`, `insert`, `restore`, `access_token`, `reconfigure`), and
    /// act on the outputs in order: an [`Output::Persist`] must be durable
    /// before anything after it is acted on. The write of a newly received
    /// refresh token comes ahead of every other output queued.
    ///
    /// `now` decides what may still be sent: a refresh whose lease would end
    /// before its answer is due (shared-store mode) is not handed out; a new
    /// lease is written instead. Grants waiting for a place under
    /// [`EngineSettings::max_in_flight`](crate::EngineSettings::max_in_flight)
    /// start here, in order, as places free up.
    ///
    /// Requests and records are built here, from the grants' state at this
    /// moment, so a long queue costs little memory.
    #[must_use]
    pub(in crate::engine) fn next_output(&mut self, now: SystemTime) -> Option<Output> {
        loop {
            let Some(q) = self.queue.pop_front() else {
                if !self.stopping
                    && let Some(claim) = self.pacer.claim(now)
                {
                    return Some(Output::Claim(claim));
                }
                if let Some(out) = self.release_paced(now) {
                    return Some(out);
                }
                if !self.queue.is_empty() || self.admit(now) {
                    continue;
                }
                return None;
            };
            match q {
                Queued::Event(t, e) => {
                    if self.grants.live(t) {
                        return Some(Output::Event(e));
                    }
                }
                Queued::Global(e) => return Some(Output::Event(e)),
                Queued::Delete(grant) => return Some(Output::Delete { grant }),
                Queued::Load(t) => {
                    if let Some(slot) = self.grants.get(t.slot).filter(|_| self.grants.live(t)) {
                        return Some(Output::Load {
                            grant: slot.key.clone(),
                        });
                    }
                }
                Queued::Send { slot: idx, seq } => {
                    if let Some(out) = self.build_send(idx, seq, now) {
                        return Some(out);
                    }
                }
                Queued::Persist(t) => {
                    if let Some(out) = self.build_persist(t) {
                        return Some(out);
                    }
                }
            }
        }
    }

    fn build_persist(&mut self, t: Tag) -> Option<Output> {
        let idx = t.slot;
        if self.stopping
            && self.grants.live(t)
            && let Some(slot) = self.grants.get_mut(idx)
            && let Phase::Leasing { .. } = slot.phase
            && slot.write.emitted != Some(slot.write.version)
        {
            // Shutting down: the lease is not taken (it would hold other
            // processes off for nothing); the record stays as it was.
            slot.phase = Phase::Idle;
            slot.write.version = slot.write.version.saturating_sub(1);
            self.arm(idx, None);
            return None;
        }
        let slot = self.grants.get(idx).filter(|_| self.grants.live(t))?;
        if slot.write.emitted == Some(slot.write.version) {
            return None;
        }
        let record = self.build_record(slot);
        let replaces = match slot.phase {
            Phase::Leasing { again: true, .. } => {
                (slot.write.confirmed > 0).then_some(slot.write.confirmed)
            }
            _ => slot.write.emitted,
        };
        let refresh = slot.held.fingerprint();
        if let Some(slot) = self.grants.get_mut(idx) {
            slot.write.emitted = Some(slot.write.version);
            slot.write.high = slot.write.high.max(slot.write.version);
        }
        Some(Output::Persist {
            record,
            replaces,
            refresh,
        })
    }

    pub(in crate::engine::grant) fn build_send(
        &mut self,
        idx: u32,
        seq: u32,
        now: SystemTime,
    ) -> Option<Output> {
        let (timeout, window) = (self.settings.request_timeout, self.settings.dispatch_window);
        let slot = self.grants.get(idx)?;
        let Phase::InFlight { seq: s, epoch, .. } = slot.phase else {
            return None;
        };
        if s != seq {
            return None;
        }
        if slot.removed {
            // Removed before it was sent: no answer will come.
            self.answer_for_removed(RequestId::new(seq, idx));
            return None;
        }
        if epoch != slot.refresh.epoch {
            return None;
        }
        if self.halted {
            // Queued before the client was rejected: it waits for reconfigure.
            self.park(idx);
            return None;
        }
        if self.stopping {
            // Shutting down: never out, so nothing is spent.
            if let Some(slot) = self.grants.get_mut(idx) {
                slot.phase = Phase::Idle;
            }
            self.arm(idx, None);
            return None;
        }
        // The lease this request goes under (shared-store mode): the answer
        // must be due before it ends.
        let mut not_after = crate::time::saturating_add(now, window);
        if self.settings.is_shared() {
            let until = slot.shared.lease_until;
            let latest = until.and_then(|u| u.checked_sub(timeout));
            match latest {
                Some(latest) if latest >= now => not_after = not_after.min(latest),
                _ => {
                    // Too little of the lease left: write a new one.
                    self.take_lease(idx, now);
                    return None;
                }
            }
        }
        if self.mints_next(idx) {
            // A Location grant with no refresh token: minted from its Company grant.
            return self.build_mint(idx, seq, epoch, not_after, now);
        }
        if !self.pace(idx, seq, SendKind::Refresh, now) {
            return None;
        }
        let slot = self.grants.get(idx)?;
        let user_type = match slot.held.user_type() {
            Some(t @ (UserType::Company | UserType::Location)) => Some(t.clone()),
            _ => None,
        };
        let grant = slot.key.clone();
        let refresh = slot.held.fingerprint();
        // The refresh token goes into the request and comes back out: the
        // secret is not copied (nor a copy left to zeroize).
        let slot = self.grants.get_mut(idx)?;
        let token = slot.held.take_refresh();
        let mut req = TokenRequest::refresh_token(token);
        if let Some(t) = user_type {
            req = req.user_type(t);
        }
        let built = token_request(&self.config, &req);
        if let (GrantType::RefreshToken(token), Some(slot)) =
            (req.into_grant(), self.grants.get_mut(idx))
        {
            slot.held.put_back_refresh(token);
        }
        match built {
            Ok(request) => {
                self.mark_in_flight(idx, seq, epoch, now, not_after);
                Some(Output::Send {
                    id: RequestId::new(seq, idx),
                    grant,
                    request,
                    not_after,
                    refresh,
                })
            }
            Err(error) => {
                // The configuration cannot build a refresh: nothing can be sent.
                let was_halted = self.halted;
                self.halted = true;
                self.park(idx);
                (!was_halted).then_some(Output::Event(EngineEvent::ConfigurationRejected {
                    grant,
                    error,
                }))
            }
        }
    }

    pub(in crate::engine) fn build_record(&self, slot: &Slot) -> GrantRecord {
        let status = slot.status.clone();
        let lease = match (slot.phase, self.settings.holder()) {
            (Phase::Leasing { until, .. }, Some(holder)) => Some(Lease {
                holder: holder.to_owned(),
                until,
            }),
            _ => None,
        };
        let mut record = GrantRecord::new(slot.key.clone(), slot.held.to_set());
        record.version = slot.write.version;
        record.status = status;
        record.lease = lease;
        record.minted_from = self.locations.parent_of(slot.key.as_str()).cloned();
        record
    }

    /// Builds the mint of slot `idx` (request `seq`), or, while the Company
    /// grant has no access token to lend, waits for it.
    pub(in crate::engine::grant) fn build_mint(
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
        if !self.pace(idx, seq, SendKind::Mint, now) {
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

    /// Whether the grant in slot `idx` is minted (not refreshed) next: a
    /// Location grant of a Company grant, with no refresh token.
    pub(in crate::engine::grant) fn mints_next(&self, idx: u32) -> bool {
        self.grants.get(idx).is_some_and(|s| {
            !s.held.has_refresh() && self.locations.parent_of(s.key.as_str()).is_some()
        })
    }

    /// Whether request `id` is a mint.
    pub(in crate::engine::grant) fn is_mint(&self, id: RequestId) -> bool {
        self.locations.is_mint(id)
    }

    /// Forgets that `id` was a mint (its answer is in); returns whether it was.
    pub(in crate::engine::grant) fn mint_answered(&mut self, id: RequestId) -> bool {
        self.locations.mint_answered(id)
    }

    /// The resource whose budget the send of slot `idx` draws from, under
    /// [`BudgetKeying::Resource`] (`None` otherwise): a mint's Company, a
    /// refresh's Location or Company.
    pub(in crate::engine::grant) fn budget_resource(&self, idx: u32, mint: bool) -> Option<String> {
        if self.settings.budget_keying != BudgetKeying::Resource {
            return None;
        }
        let slot = self.grants.get(idx)?;
        let held = &slot.held;
        let id = if mint {
            held.company_id().map(str::to_owned).or_else(|| {
                let parent = self.locations.parent_of(slot.key.as_str())?;
                let p = self.grants.find(parent.as_str())?;
                self.grants.get(p)?.held.company_id().map(str::to_owned)
            })
        } else {
            held.location_id()
                .or_else(|| held.company_id())
                .map(str::to_owned)
        };
        Some(id.unwrap_or_else(|| slot.key.as_str().to_owned()))
    }

    /// Spends a token of the budget for the send `(idx, seq)` of `kind`
    /// about to be handed out at `now`; or puts the send in line (its
    /// give-up deadline is lifted: it is not out) and returns `false`.
    fn pace(&mut self, idx: u32, seq: u32, kind: SendKind, now: SystemTime) -> bool {
        let resource = self.budget_resource(idx, kind == SendKind::Mint);
        if self.pacer.admit(idx, seq, resource.as_deref(), kind, now) {
            return true;
        }
        self.arm(idx, None);
        false
    }

    /// Whether the lease of slot `idx` is still as good at `now` as one just
    /// taken: less than one dispatch window of it is gone (a send that
    /// waited only for a claim on the shared budget). A late answer then has
    /// the same room before the lease ends as for a send that never waited.
    fn lease_is_fresh(&self, idx: u32, now: SystemTime) -> bool {
        let Some(lease) = self.settings.lease_duration() else {
            return false;
        };
        let fresh = lease.saturating_sub(self.settings.dispatch_window);
        self.grants
            .get(idx)
            .and_then(|s| s.shared.lease_until)
            .and_then(|until| until.duration_since(now).ok())
            .is_some_and(|left| left >= fresh)
    }

    /// Hands out the first waiting send the budget allows at `now`, if any.
    fn release_paced(&mut self, now: SystemTime) -> Option<Output> {
        while let Turn::Send { slot: idx, seq } = self.pacer.next(now) {
            let waited = self.grants.get(idx).is_some_and(|s| {
                !s.removed
                    && matches!(s.phase, Phase::InFlight { seq: q, dispatched: false, .. } if q == seq)
            });
            if waited && self.settings.is_shared() && !self.lease_is_fresh(idx, now) {
                // Shared-store mode: the lease was taken before the wait and
                // is shorter now; the send goes under a new one (and first
                // in line once it is confirmed), as a send that never waited.
                self.pacer.renew(idx);
                self.take_lease(idx, now);
                return None;
            }
            self.pacer.begin_release();
            let out = self.build_send(idx, seq, now);
            self.pacer.end_release();
            if out.is_some() {
                return out;
            }
        }
        None
    }

    /// The Company grant `company_grant` may lend its access token now: the
    /// Location grants waiting for it are started again.
    pub(in crate::engine::grant) fn wake_locations(
        &mut self,
        company_grant: &GrantId,
        now: SystemTime,
    ) {
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

    /// A mint answered with tokens: the grant's refresh time is drawn within
    /// [`EngineSettings::refresh_ahead_spread`](super::EngineSettings::refresh_ahead_spread)
    /// before it, so that locations minted together do not come due together.
    pub(in crate::engine::grant) fn spread_minted(&mut self, idx: u32, now: SystemTime) {
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
