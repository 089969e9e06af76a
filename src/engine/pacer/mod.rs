//! The engine's request budget and the sends waiting for it. Every request
//! the engine hands out (a refresh or a Location-token mint) spends one
//! token of a [`RequestBudget`]; a send over budget waits its turn and is
//! handed out when the budget frees up: refreshes of grants held first, then
//! mints, each first in, first out. Requests the app counts
//! ([`Engine::count_request`](crate::Engine::count_request)) wait while a
//! refresh waits, and never take more than their share of any interval
//! ([`EngineSettings::counted_share`]). The budget follows the
//! `X-RateLimit-*` headers of every answer, and a 429 spends it all (100
//! requests per 10 s per app by default: see docs/highlevel-facts.md,
//! "Rate limits").
//!
//! One budget for the app, or one per Location or Company
//! ([`BudgetKeying::Resource`]); with [`EngineSettings::shared_budget`] each
//! draws its tokens from the store, shared by every process of the app
//! ([`BudgetClaim`]).
//!
//! Costs O(1) per send in the app's budget: nothing is scanned; a waiting
//! send whose grant moved on meanwhile is dropped when its turn comes.

mod fleet;
mod lane;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};

use crate::rate_limit::{Clamped, RateLimit};
use crate::request_budget::RequestBudget;

use super::claim::{BudgetClaim, ClaimOutcome};
use super::outcome::StoreFailure;
use super::settings::{BudgetKeying, EngineSettings};

use lane::Lane;
pub(crate) use lane::SendKind;

/// The app's lane, under [`BudgetKeying::App`] or for requests that name no
/// resource.
const APP: &str = "";

/// The budgets and the sends waiting for them.
pub(crate) struct Pacer {
    /// Figures a new lane starts from.
    max: u32,
    interval: Duration,
    margin: Option<Duration>,
    share: u8,
    shared: bool,
    keying: BudgetKeying,
    /// The app's client id: the shared budget's key.
    app: Box<str>,
    holder: String,
    lanes: HashMap<Box<str>, Lane>,
    /// Lanes with sends waiting, in key order.
    waiting: BTreeSet<Box<str>>,
    /// Shared budget: lanes whose counted requests wait for a claim.
    asking: BTreeSet<Box<str>>,
    /// While a waiting send is being handed out.
    releasing: bool,
    /// Shared-store mode: slots whose send waited, now under a new lease:
    /// first in line once it is confirmed.
    renewed: HashSet<u32>,
    /// Sends that waited for the budget, in all (for metrics and tests).
    deferred: u64,
    /// Lanes drawing on a share of their own while the store fails.
    in_fallback: usize,
    /// Lanes are pruned when there are more than this.
    prune_at: usize,
}

/// Figures only (the engine's Debug output is scanned for token words).
impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let app = self
            .lanes
            .get(APP)
            .map(|l| (l.budget.max(), l.budget.interval()));
        f.debug_struct("Pacer")
            .field("app", &app)
            .field("lanes", &self.lanes.len())
            .field("waiting", &self.waiting_sends())
            .field("deferred", &self.deferred)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

/// What the pacer says of the first send waiting.
pub(crate) enum Turn {
    /// Nothing waits, or the budget has no room yet.
    None,
    /// This send may go now.
    Send { slot: u32, seq: u32 },
}

/// A change in how the shared budget is drawn from, to report.
pub(crate) enum FleetChange {
    /// The store failed; this process draws `share` per interval of its own.
    Fallback { share: u32, error: StoreFailure },
    /// The store answers again.
    Recovered,
}

impl Pacer {
    pub(crate) fn new(settings: &EngineSettings, client_id: &str) -> Self {
        let (max, interval) = settings.budget();
        let mut pacer = Pacer {
            max,
            interval,
            margin: settings.budget_margin,
            share: settings.counted_share,
            shared: settings.shared_budget,
            keying: settings.budget_keying,
            app: client_id.into(),
            holder: settings.holder().unwrap_or("single-process").to_owned(),
            lanes: HashMap::new(),
            waiting: BTreeSet::new(),
            asking: BTreeSet::new(),
            releasing: false,
            renewed: HashSet::new(),
            deferred: 0,
            in_fallback: 0,
            prune_at: 64,
        };
        pacer.lane(None);
        pacer
    }

    /// New client credentials: the shared budget's key follows the client id.
    pub(crate) fn set_app(&mut self, client_id: &str) {
        self.app = client_id.into();
    }

    /// The lane a request naming `resource` draws from.
    fn key<'a>(&self, resource: Option<&'a str>) -> &'a str {
        match self.keying {
            BudgetKeying::Resource => resource.filter(|r| !r.is_empty()).unwrap_or(APP),
            _ => APP,
        }
    }

    fn lane(&mut self, resource: Option<&str>) -> &mut Lane {
        let key = self.key(resource);
        if !self.lanes.contains_key(key) {
            let lane = Lane::new(self.max, self.interval, self.share, self.shared)
                .with_margin(self.margin);
            self.lanes.insert(key.into(), lane);
        }
        self.lanes.get_mut(key).expect("inserted above")
    }

    /// Forgets idle lanes once there are many (amortized O(1)).
    fn prune(&mut self, now: SystemTime) {
        if self.lanes.len() <= self.prune_at {
            return;
        }
        self.lanes
            .retain(|key, lane| key.as_ref() == APP || !lane.is_idle(now));
        self.prune_at = (self.lanes.len() * 2).max(64);
    }

    fn waiting_sends(&self) -> usize {
        self.waiting
            .iter()
            .filter_map(|k| self.lanes.get(k))
            .map(Lane::waiting)
            .sum()
    }

    /// The instant to wake up at for the sends waiting, if any.
    pub(crate) fn wake_at(&self) -> Option<SystemTime> {
        self.waiting
            .iter()
            .filter_map(|k| self.lanes.get(k)?.wake_at)
            .min()
    }

    /// Spends a token for the send `(slot, seq)` of `kind`, for `resource`,
    /// about to be handed out at `now`; or puts it in line and returns
    /// `false`. A send never overtakes those already waiting in its line
    /// (nor a mint any refresh), except the one being released, or one that
    /// waited and took a new lease (first in line).
    pub(crate) fn admit(
        &mut self,
        slot: u32,
        seq: u32,
        resource: Option<&str>,
        kind: SendKind,
        now: SystemTime,
    ) -> bool {
        let renewed = self.renewed.remove(&slot);
        let releasing = self.releasing;
        let key = self.key(resource);
        let lane = self.lane(resource);
        if (releasing || renewed || lane.is_first(kind)) && lane.can_send(now) {
            lane.spend_send(now);
            return true;
        }
        lane.push(kind, (slot, seq), renewed);
        lane.wake_at = lane.next_send_at(now);
        self.deferred += 1;
        if !self.waiting.contains(key) {
            self.waiting.insert(key.into());
        }
        self.prune(now);
        false
    }

    /// The first waiting send the budget allows at `now`, if any (taken out
    /// of the line); the caller hands it out between
    /// [`begin_release`](Self::begin_release) and
    /// [`end_release`](Self::end_release), or drops it.
    pub(crate) fn next(&mut self, now: SystemTime) -> Turn {
        let mut found = None;
        for key in &self.waiting {
            let Some(lane) = self.lanes.get_mut(key) else {
                continue;
            };
            if lane.can_send(now) {
                if let Some((slot, seq)) = lane.pop() {
                    found = Some((key.clone(), lane.waiting() == 0, slot, seq));
                    break;
                }
            }
            lane.wake_at = lane.next_send_at(now);
        }
        match found {
            Some((key, emptied, slot, seq)) => {
                if emptied {
                    self.waiting.remove(&key);
                    if let Some(lane) = self.lanes.get_mut(&key) {
                        lane.wake_at = None;
                    }
                }
                Turn::Send { slot, seq }
            }
            None => Turn::None,
        }
    }

    /// A send released from the line is being built: it may spend.
    pub(crate) fn begin_release(&mut self) {
        self.releasing = true;
    }

    pub(crate) fn end_release(&mut self) {
        self.releasing = false;
    }

    /// Shared-store mode: the send of `slot` waited; it goes under a new
    /// lease, first in line once that is confirmed.
    pub(crate) fn renew(&mut self, slot: u32) {
        self.renewed.insert(slot);
    }

    /// The lines' deadlines reached by `now`: their sends are handed out by
    /// the next poll.
    pub(crate) fn due(&mut self, now: SystemTime) {
        for key in &self.waiting {
            if let Some(lane) = self.lanes.get_mut(key)
                && lane.wake_at.is_some_and(|t| t <= now)
            {
                lane.wake_at = None;
            }
        }
    }

    /// Follows the rate-limit headers of an answer to a request for
    /// `resource`, received at `now`. Returns what was clamped, if anything.
    pub(crate) fn observe(
        &mut self,
        resource: Option<&str>,
        status: StatusCode,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Option<Clamped> {
        let rate = RateLimit::from_headers(headers);
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.rate_limited(resource, rate.as_ref(), now)
        } else if let Some(rate) = rate {
            let lane = self.lane(resource);
            lane.budget.observe(&rate, now);
            lane.follow();
            lane.wake_at = (lane.waiting() > 0)
                .then(|| lane.next_send_at(now))
                .flatten();
            clamped(&rate, now)
        } else {
            None
        }
    }

    /// A 429 for `resource` (as a parsed error): the whole budget is spent.
    /// Returns what was clamped, if anything.
    pub(crate) fn rate_limited(
        &mut self,
        resource: Option<&str>,
        rate: Option<&RateLimit>,
        now: SystemTime,
    ) -> Option<Clamped> {
        let lane = self.lane(resource);
        lane.budget.on_rate_limited(rate, now);
        lane.follow();
        lane.wake_at = (lane.waiting() > 0)
            .then(|| lane.next_send_at(now))
            .flatten();
        rate.and_then(|r| clamped(r, now))
    }

    /// Counts a request for `resource` the app is about to send outside the
    /// engine: `None` if counted (send it now), or the instant to ask again
    /// (nothing counted).
    pub(crate) fn take(&mut self, resource: Option<&str>, now: SystemTime) -> Option<SystemTime> {
        let key = self.key(resource);
        let lane = self.lane(resource);
        let wait = lane.count(now);
        let asking = lane.fleet.as_ref().is_some_and(|f| f.others_wanted);
        if asking && !self.asking.contains(key) {
            self.asking.insert(key.into());
        }
        self.prune(now);
        wait
    }

    /// Shared budget: the next claim to send to the store at `now`, if a
    /// lane needs tokens and has no claim out.
    pub(crate) fn claim(&mut self, now: SystemTime) -> Option<BudgetClaim> {
        let keys = self.waiting.iter().chain(self.asking.iter());
        let (key, asked) = keys
            .filter_map(|k| Some((k, self.lanes.get(k)?.to_claim(now)?)))
            .next()
            .map(|(k, a)| (k.clone(), a))?;
        self.asking.remove(&key);
        let claim_key = self.claim_key(&key);
        let lane = self.lanes.get_mut(&key)?;
        lane.fleet.as_mut()?.claimed(asked);
        let window = lane.claim_window();
        Some(BudgetClaim {
            key: claim_key,
            holder: self.holder.clone(),
            sends: asked.sends,
            others: asked.others,
            max: lane.budget.max(),
            others_max: lane.others.max(),
            window,
        })
    }

    fn claim_key(&self, lane: &str) -> String {
        if lane == APP {
            self.app.to_string()
        } else {
            format!("{}/{lane}", self.app)
        }
    }

    /// The store's answer to the claim on `key`, at `now`. Returns a change
    /// to report, if any. An answer for no claim out is ignored.
    pub(crate) fn claimed(
        &mut self,
        key: &str,
        outcome: ClaimOutcome,
        now: SystemTime,
    ) -> Option<FleetChange> {
        let lane_key = if key == &*self.app {
            APP
        } else {
            key.strip_prefix(&*self.app)?.strip_prefix('/')?
        };
        let lane = self.lanes.get_mut(lane_key)?;
        let hold = lane.hold();
        let (max, interval, margin) = (
            lane.budget.max(),
            lane.budget.interval(),
            lane.budget.margin(),
        );
        let fleet = lane.fleet.as_mut().filter(|f| f.is_claiming())?;
        let change = match outcome {
            ClaimOutcome::Granted {
                sends,
                others,
                holders,
                next_free_in,
            } => fleet
                .granted(sends, others, holders, next_free_in, hold, now)
                .then_some(FleetChange::Recovered),
            ClaimOutcome::Failed(error) => fleet
                .failed(max, interval, margin, now)
                .map(|share| FleetChange::Fallback { share, error }),
        };
        if lane.waiting() > 0 {
            lane.wake_at = lane.next_send_at(now);
        }
        match &change {
            Some(FleetChange::Fallback { .. }) => {
                self.in_fallback += 1;
                (self.in_fallback == 1).then_some(change?)
            }
            Some(FleetChange::Recovered) => {
                self.in_fallback = self.in_fallback.saturating_sub(1);
                (self.in_fallback == 0).then_some(change?)
            }
            None => None,
        }
    }

    /// How many sends wait now, and have waited since the engine started.
    pub(crate) fn counts(&self) -> (usize, u64) {
        (self.waiting_sends(), self.deferred)
    }

    /// The app's budget as the engine knows it now.
    pub(crate) fn app_budget(&self) -> Option<&RequestBudget> {
        self.lanes.get(APP).map(|l| &l.budget)
    }
}

/// What of `rate` was over its cap, if anything.
fn clamped(rate: &RateLimit, now: SystemTime) -> Option<Clamped> {
    rate.was_clamped(now).then(|| Clamped {
        retry_after: rate.clamped.retry_after
            || rate.retry_after.is_some_and(|r| r.exceeds_cap(now)),
        interval: rate.clamped.interval,
    })
}
