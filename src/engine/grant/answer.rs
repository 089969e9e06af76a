//! What an answer to a refresh or a mint does to its grant: new tokens
//! adopted (written first), refresh tokens rescued from failures, answers
//! that come late or for a grant removed meanwhile.

use std::time::SystemTime;

use http::Response;

use crate::error::{Error, ErrorKind};
use crate::rate_limit::Clamped;
use crate::secret::RefreshToken;
use crate::token::{TokenResponse, TokenSet};
use crate::token_endpoint::parse_token_response;

use crate::engine::held::Held;
use crate::engine::output::{EngineEvent, RefreshFailure, RequestId};
use crate::engine::queue::Queued;
use crate::engine::record::{GrantId, GrantStatus};
use crate::engine::slot::{Phase, Unconfirmed, abandon_in_flight, superseded, token_key};
use crate::engine::{Engine, unknown_request};

/// Which request an answer belongs to.
#[derive(Debug, Clone, Copy)]
pub(in crate::engine::grant) enum Which {
    Current { epoch: u32, sent_at: SystemTime },
    Abandoned { epoch: u32, sent_at: SystemTime },
}

/// The refresh token an answer carries, if any: a success's, or one rescued
/// from a failure.
fn rescued(result: Result<TokenResponse, Error>) -> Option<RefreshToken> {
    match result {
        Ok(mut token) => token.refresh_token.take(),
        Err(e) => e.rescued_refresh_token().cloned(),
    }
    .filter(|t| !t.secret().trim().is_empty())
}

/// `error`, carrying `token` for the caller to keep.
fn with_rescued(error: Error, token: Option<RefreshToken>) -> Error {
    match token {
        Some(token) => error.with_rescued_refresh_token(token),
        None => error,
    }
}

impl Engine {
    /// Hands back the answer to request `id`: parsed with
    /// [`parse_token_response`], then as [`handle_token_result`](Self::handle_token_result).
    ///
    /// # Errors
    /// [`ErrorKind::UnknownRequest`] if `id` is not in flight (nor a recently
    /// given-up request of a grant still held, or of a removed grant); if the
    /// answer holds a refresh token, the error carries it in
    /// [`Error::rescued_refresh_token`]: keep it (see
    /// [`handle_rescued`](Self::handle_rescued)), the server may have spent
    /// the one sent. Server errors in the answer are not errors of this
    /// call: they become events.
    pub(in crate::engine) fn on_response<B: AsRef<[u8]>>(
        &mut self,
        id: RequestId,
        response: Response<B>,
        now: SystemTime,
    ) -> Result<(), Error> {
        let mint = self.is_mint(id);
        let resource = self.budget_resource(id.slot(), mint);
        let clamped = self.pacer.observe(
            resource.as_deref(),
            response.status(),
            response.headers(),
            now,
        );
        self.report_clamped(id, clamped);
        let parsed = if mint {
            crate::location_token::parse_location_token_response(response)
        } else {
            parse_token_response(response)
        };
        self.on_answer(id, parsed, true, now)
    }

    /// An answer to request `id` had figures over their caps: an event, for
    /// the grant it was for (if still held).
    fn report_clamped(&mut self, id: RequestId, clamped: Option<Clamped>) {
        let Some(clamped) = clamped else {
            return;
        };
        if let Some(slot) = self.grants.get(id.slot()) {
            let grant = slot.key.clone();
            let tag = self.grants.tag(id.slot());
            self.queue.push_back(Queued::Event(
                tag,
                EngineEvent::RateLimitClamped { grant, clamped },
            ));
        }
    }

    /// Hands back an answer already parsed (e.g. by
    /// [`parse_token_response`]) for request `id`.
    ///
    /// - Success: the new tokens are adopted (the old refresh token is kept
    ///   if the answer has none), an [`Output::Persist`](super::Output::Persist)
    ///   is queued ahead of every other output, then [`EngineEvent::Refreshed`] (and
    ///   [`EngineEvent::TokenReady`] if callers wait). The expiry counts from when
    ///   the request was handed out. A success for a request the engine had
    ///   given up on is adopted all the same, as is one whose grant was
    ///   restored from an older record meanwhile: only a new authorization
    ///   ([`insert`](Self::insert)) since its request supersedes it.
    /// - RefreshFailure: a refresh token rescued from the answer
    ///   ([`Error::rescued_refresh_token`]) is adopted and persisted first, and
    ///   the refresh retried with it. Otherwise, classified by [`Error::kind`]:
    ///   - `InvalidGrant`: single-process mode: re-authorization needed,
    ///     persisted; no retry. Shared-store mode: the store is read first
    ///     ([`Output::Load`](super::Output::Load)); see the module docs.
    ///   - `LocationNotActive`: suspended, persisted; the same refresh token is
    ///     tried again after the suspended-retry interval.
    ///   - `RateLimited`: retried when the server said (`Retry-After` or the
    ///     rate-limit window), else after the rate-limit wait.
    ///   - `InvalidClient`: [`EngineEvent::ConfigurationRejected`]; nothing more is
    ///     sent for any grant until [`reconfigure`](Self::reconfigure).
    ///   - `GrantUnauthorized`: that grant alone is parked, persisted as
    ///     unauthorized with its refresh token, [`EngineEvent::Unauthorized`]; the
    ///     same refresh token is tried again after
    ///     [`EngineSettings::unauthorized_retry`](super::EngineSettings::unauthorized_retry).
    ///     Distinct grants refused so in a row
    ///     ([`EngineSettings::unauthorized_halt_after`](super::EngineSettings::unauthorized_halt_after))
    ///     count as `InvalidClient`.
    ///   - anything else (server errors, unreadable answers, other refusals):
    ///     exponential backoff with jitter, same refresh token.
    ///
    ///   A failure of a request that was given up on, or that presented a
    ///   refresh token older than the one held, is ignored.
    /// - A Location grant the engine mints ([`add_location`](Self::add_location)):
    ///   a mint refused with 403 (the location is no longer approved) means
    ///   re-authorization for that location alone; a mint refused with 401
    ///   parks that location as unauthorized (it does not count towards the
    ///   client's rejection); its own refresh token refused as invalid means
    ///   it is minted again. A successful mint's refresh time is spread
    ///   ([`EngineSettings::refresh_ahead_spread`](super::EngineSettings::refresh_ahead_spread)).
    /// - A 429 spends the whole request budget (see
    ///   [`EngineSettings::request_budget`](super::EngineSettings::request_budget)).
    ///
    /// # Errors
    /// [`ErrorKind::UnknownRequest`], carrying the answer's refresh token (if
    /// any) in [`Error::rescued_refresh_token`].
    pub(in crate::engine) fn on_answer(
        &mut self,
        id: RequestId,
        result: Result<TokenResponse, Error>,
        observed: bool,
        now: SystemTime,
    ) -> Result<(), Error> {
        if let Err(e) = &result
            && e.kind() == ErrorKind::RateLimited
            && !observed
        {
            // Parsed elsewhere: the 429's figures are seen only here.
            let resource = self.budget_resource(id.slot(), self.is_mint(id));
            let clamped = self
                .pacer
                .rate_limited(resource.as_deref(), e.rate_limit(), now);
            self.report_clamped(id, clamped);
        }
        let mint = self.mint_answered(id);
        let which = match self.which(id) {
            Ok(which) => which,
            Err(error) => return Err(with_rescued(error, rescued(result))),
        };
        let idx = id.slot();
        if self.grants.get(idx).is_some_and(|s| s.removed) {
            let presented = match which {
                Which::Current { epoch, .. } | Which::Abandoned { epoch, .. } => self
                    .grants
                    .get(idx)
                    .filter(|s| s.refresh.epoch == epoch && s.held.has_refresh())
                    .map(|s| (s.key.clone(), token_key(&s.held.refresh))),
            };
            let grant = self.grants.get(idx).map(|s| s.key.clone());
            self.answer_for_removed(id);
            if let Some(grant) = grant {
                self.keep_rescued(grant, presented.map(|p| p.1), rescued(result), now);
            }
            return Ok(());
        }
        match which {
            Which::Current { epoch, sent_at } => {
                let Some(slot) = self.grants.get_mut(idx) else {
                    return Err(unknown_request(id));
                };
                self.timers.set(idx, &mut slot.timer, None);
                slot.phase = Phase::Idle;
                let current = epoch == slot.refresh.epoch;
                let adopt = current || !superseded(slot, epoch);
                match result {
                    // New tokens are adopted even if the held ones changed
                    // meanwhile: the server spent the token this request
                    // presented, and only a new authorization supersedes them.
                    Ok(token) if adopt => {
                        self.adopt_answer(idx, token, sent_at, now);
                        if mint {
                            self.spread_minted(idx, now);
                        }
                    }
                    Err(e) if current => self.handle_failure(idx, e, now),
                    // The tokens changed while it was out: refresh again with the new ones.
                    _ => self.rearm_idle(idx, now),
                }
            }
            Which::Abandoned { epoch, sent_at } => {
                let Some(slot) = self.grants.get_mut(idx) else {
                    return Err(unknown_request(id));
                };
                slot.refresh.abandoned.retain(|a| a.seq != id.seq());
                let current = epoch == slot.refresh.epoch;
                if let (Err(e), true) = (&result, current) {
                    // A late failure is ignored, but never a refresh token in it.
                    if let Some(token) = e.rescued_refresh_token() {
                        self.rescue(idx, token);
                    }
                    return Ok(());
                }
                let adopt = current || !superseded(slot, epoch);
                if let (Ok(token), true) = (result, adopt) {
                    // A late success: its refresh token is the newest one.
                    // The retry presented the token this answer spent.
                    abandon_in_flight(slot);
                    self.timers.set(idx, &mut slot.timer, None);
                    slot.phase = Phase::Idle;
                    self.adopt_answer(idx, token, sent_at, now);
                }
            }
        }
        Ok(())
    }

    /// Reports that request `id` got no answer (connection refused, reset,
    /// the HTTP client's timeout…). The refresh is retried with backoff, with
    /// the same refresh token. If an answer to it shows up later after all,
    /// hand it in: a success is still adopted.
    ///
    /// # Errors
    /// [`ErrorKind::UnknownRequest`].
    pub(in crate::engine) fn on_transport_error(
        &mut self,
        id: RequestId,
        detail: String,
        now: SystemTime,
    ) -> Result<(), Error> {
        let which = self.which(id)?;
        let idx = id.slot();
        if self.grants.get(idx).is_some_and(|s| s.removed) {
            self.answer_for_removed(id);
            return Ok(());
        }
        if let Which::Current { epoch, .. } = which {
            let Some(slot) = self.grants.get_mut(idx) else {
                return Err(unknown_request(id));
            };
            self.timers.set(idx, &mut slot.timer, None);
            abandon_in_flight(slot);
            slot.phase = Phase::Idle;
            if epoch == slot.refresh.epoch {
                self.retry_after_failure(idx, now, RefreshFailure::Transport(detail));
            } else {
                self.rearm_idle(idx, now);
            }
        }
        Ok(())
    }

    /// Reports that the [`Output::Send`](super::Output::Send) `id` was not
    /// dispatched by its `not_after` instant (a driver that queues its sends
    /// drops late ones): it never went out. The refresh starts again at once
    /// (in shared-store mode with a new lease), with the same refresh token.
    ///
    /// # Errors
    /// [`ErrorKind::UnknownRequest`] if `id` is not the grant's current
    /// request (an expired send already replaced is harmless to report:
    /// the error says so).
    pub(in crate::engine) fn on_not_dispatched(
        &mut self,
        id: RequestId,
        now: SystemTime,
    ) -> Result<(), Error> {
        let idx = id.slot();
        let current = self
            .grants
            .get(idx)
            .is_some_and(|s| matches!(s.phase, Phase::InFlight { seq, .. } if seq == id.seq()));
        if !current {
            return Err(unknown_request(id));
        }
        if self.grants.get(idx).is_some_and(|s| s.removed) {
            self.answer_for_removed(id);
            return Ok(());
        }
        if let Some(slot) = self.grants.get_mut(idx) {
            // Never out: nothing to remember, nothing to wait for.
            slot.phase = Phase::Idle;
        }
        self.arm(idx, None);
        self.start_refresh(idx, now);
        Ok(())
    }

    pub(in crate::engine::grant) fn which(&self, id: RequestId) -> Result<Which, Error> {
        let slot = self
            .grants
            .get(id.slot())
            .ok_or_else(|| unknown_request(id))?;
        if let Phase::InFlight {
            seq,
            epoch,
            sent_at,
            dispatched: true,
            ..
        } = slot.phase
            && seq == id.seq()
        {
            return Ok(Which::Current { epoch, sent_at });
        }
        slot.refresh
            .abandoned
            .iter()
            .find(|a| a.seq == id.seq())
            .map(|a| Which::Abandoned {
                epoch: a.epoch,
                sent_at: a.sent_at,
            })
            .ok_or_else(|| unknown_request(id))
    }

    fn adopt_answer(
        &mut self,
        idx: u32,
        token: TokenResponse,
        sent_at: SystemTime,
        now: SystemTime,
    ) {
        let margin = self.settings.refresh_margin;
        // A refresh went through: refused grants are not the client's doing.
        self.unauthorized.reset();
        let Some(slot) = self.grants.get_mut(idx) else {
            return;
        };
        let Some(held) = Held::from_set(
            TokenSet::new(token, sent_at),
            Some(&slot.held),
            &mut self.interner,
        ) else {
            return;
        };
        let rotated = held.refresh != slot.held.refresh;
        if rotated {
            slot.refresh.epoch = slot.refresh.epoch.wrapping_add(1);
            if slot.write.unconfirmed != Unconfirmed::Installed {
                slot.write.unconfirmed = Unconfirmed::Refreshed {
                    spent: token_key(&slot.held.refresh),
                };
            }
        }
        let old = std::mem::replace(&mut slot.held, held);
        if rotated && slot.write.prev.is_none() {
            // Until the new refresh token is written, callers get the old
            // access token (while it lasts).
            let expires = old.expires_at();
            slot.write.prev = Some(Box::new((old.access, expires)));
        }
        slot.status = GrantStatus::Active;
        slot.phase = Phase::Idle;
        slot.refresh.attempt = 0;
        slot.write.condemned = None;
        slot.refresh.last_failure = None;
        slot.write.version = slot.write.version.saturating_add(1);
        let at = slot.held.refresh_at(margin).max(now);
        self.timers.set(idx, &mut slot.timer, Some(at));
        let grant = slot.key.clone();
        // Reported (Refreshed, and TokenReady to callers waiting) once the
        // write is confirmed: see `durable`.
        slot.write.announce = true;
        let t = self.grants.tag(idx);
        // The new refresh token is written before anything else queued.
        self.queue.push_front(Queued::Persist(t));
        self.wake_locations(&grant, now);
    }

    /// Adopts (and queues for persistence, ahead of everything) a refresh
    /// token the server may have issued while spending the one held. Returns
    /// whether it did.
    pub(in crate::engine::grant) fn rescue(&mut self, idx: u32, token: &RefreshToken) -> bool {
        let Some(slot) = self.grants.get_mut(idx) else {
            return false;
        };
        if token.secret().trim().is_empty() || *token == slot.held.refresh {
            return false;
        }
        if slot.write.unconfirmed != Unconfirmed::Installed {
            slot.write.unconfirmed = Unconfirmed::Refreshed {
                spent: token_key(&slot.held.refresh),
            };
        }
        slot.held.set_refresh(token.clone());
        slot.refresh.epoch = slot.refresh.epoch.wrapping_add(1);
        slot.write.version = slot.write.version.saturating_add(1);
        self.queue.push_front(Queued::Persist(self.grants.tag(idx)));
        true
    }

    /// Adopts a refresh token rescued from an answer the engine could not
    /// take at the time, for the grant held now in slot `idx`: if it is not
    /// the one held, it is written ahead of every other output and used for
    /// the next refresh (a grant waiting for re-authorization becomes
    /// active again), with [`EngineEvent::RescuedTokenAdopted`]. The access token
    /// held is kept.
    pub(in crate::engine::grant) fn rescue_grant(
        &mut self,
        idx: u32,
        token: &RefreshToken,
        now: SystemTime,
    ) {
        if !self.rescue(idx, token) {
            return;
        }
        let Some(slot) = self.grants.get_mut(idx) else {
            return;
        };
        let grant = slot.key.clone();
        if matches!(slot.status, GrantStatus::ReauthorizationNeeded { .. })
            || matches!(slot.phase, Phase::Checking | Phase::Reauth)
        {
            slot.status = GrantStatus::Active;
            slot.write.condemned = None;
            self.rearm_idle(idx, now);
        }
        let t = self.grants.tag(idx);
        self.queue
            .push_back(Queued::Event(t, EngineEvent::RescuedTokenAdopted { grant }));
    }

    /// An answer for a grant removed while its request was out, carrying
    /// `token` (if any), for a request that presented the refresh token
    /// with key `presented` (if known): adopted if the grant is held again,
    /// else kept in memory should it come back with the spent token.
    fn keep_rescued(
        &mut self,
        grant: GrantId,
        presented: Option<u64>,
        token: Option<RefreshToken>,
        now: SystemTime,
    ) {
        let kept = match (token, self.grants.find(grant.as_str())) {
            (Some(token), Some(idx)) => {
                // Held again: adopted if it is not the token held.
                self.rescue_grant(idx, &token, now);
                return;
            }
            (Some(token), None) => match presented {
                Some(spent) => {
                    self.rescued.keep(grant.clone(), spent, token);
                    true
                }
                None => false,
            },
            (None, _) => false,
        };
        self.queue
            .push_back(Queued::Global(EngineEvent::AnswerAfterRemoval {
                grant,
                refresh_token_kept: kept,
            }));
    }

    /// A grant added back (`insert`, `restore`) in slot `idx` with the
    /// refresh token of key `key`: if an answer for it came while it was
    /// away and spent that very token, the token it carried is adopted.
    pub(in crate::engine::grant) fn adopt_kept(&mut self, idx: u32, key: u64, now: SystemTime) {
        let Some(grant) = self.grants.get(idx).map(|s| s.key.clone()) else {
            return;
        };
        if let Some(token) = self.rescued.take(&grant, key) {
            self.rescue_grant(idx, &token, now);
        }
    }

    /// An answer for a removed grant: forgotten, and the slot freed once
    /// nothing of it is out.
    pub(in crate::engine::grant) fn answer_for_removed(&mut self, id: RequestId) {
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
}
