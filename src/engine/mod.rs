//! The token lifecycle engine: keeps the access tokens of many grants fresh,
//! and never loses a refresh token.
//!
//! The engine is a state machine with no I/O, no clock and no randomness
//! (quinn-proto style). The caller feeds it inputs, each with the current time,
//! and drains outputs named for what the caller must do. The whole API:
//!
//! | Input | When |
//! |---|---|
//! | [`Engine::insert`] | a new authorization (code exchange or location token) |
//! | [`Engine::restore`] | a stored record (start-up) |
//! | [`Engine::remove`] | the grant is gone (uninstall) |
//! | [`Engine::access_token`] / [`Engine::refresh_now`] | someone needs a token: answered at once |
//! | [`Engine::handle_response`] / [`Engine::handle_token_result`] | the answer to an [`Output::Send`] |
//! | [`Engine::handle_transport_error`] | an [`Output::Send`] got no answer |
//! | [`Engine::handle_send_expired`] | an [`Output::Send`] was not dispatched by its `not_after` |
//! | [`Engine::handle_rescued`] | a refresh token rescued from an answer the engine refused |
//! | [`Engine::handle_timeout`] | [`Engine::poll_timeout`]'s instant is reached |
//! | [`Engine::handle_persisted`] / [`Engine::handle_persist_conflict`] | a compare-and-swap of an [`Output::Persist`] won / lost (shared-store mode) |
//! | [`Engine::handle_persist_failed`] / [`Engine::handle_record_deleted`] | a write failed / found no record |
//! | [`Engine::handle_loaded`] / [`Engine::reread`] | the record as stored now (after an [`Output::Load`], or any time) / ask for it |
//! | [`Engine::reconfigure`] | new client credentials after [`Event::ConfigurationRejected`] |
//! | [`Engine::handle_webhook`] | a verified install webhook: adds or removes grants |
//! | [`Engine::add_location`] / [`Engine::uninstall`] | a Location grant to mint from a Company grant / an uninstall |
//! | [`Engine::count_request`] | a request the app sent outside the engine (counted against the budget) |
//!
//! | Output ([`Engine::poll_output`]) | What to do |
//! |---|---|
//! | [`Output::Persist`] | write the record, durably, before acting on anything after it |
//! | [`Output::Send`] | send the request by its `not_after`; hand back the answer with its id |
//! | [`Output::Load`] | read the grant's record; hand it back with [`Engine::handle_loaded`] |
//! | [`Output::Delete`] | delete the grant's record (uninstalled) |
//! | [`Output::Event`] | tell the user or the log ([`Event`]) |
//!
//! After every input, call [`Engine::poll_output`] until it returns `None`,
//! then [`Engine::poll_timeout`] for the next instant to wake up at.
//! [`Engine::in_flight`] counts the requests out (for a clean shutdown).
//!
//! The code is laid out by concern: `grant` (one grant's state machine and
//! its answers), `shared` (the shared-store protocol: leases,
//! compare-and-swap outcomes, re-reads), `schedule` (timers, caps and
//! spreading over many grants), `output` (the queue and what it hands out),
//! `record` (what is stored), `grants` (adding and removing grants),
//! `location` (Location grants minted from a Company grant, install
//! webhooks), `pacing` (the request budget).
//!
//! # Location grants and install webhooks
//!
//! A Location grant can be minted from a Company grant
//! ([`Engine::add_location`], or a bulk INSTALL through
//! [`Engine::handle_webhook`]): `POST /oauth/locationToken` (v3
//! `/oauth/location-token`) with the Company grant's access token (per
//! FACTS.md, "POST /oauth/locationToken"). It is then kept fresh by its own
//! refresh token when the answer had one, and minted again when it had none
//! or when its refresh token is refused ("invalid grant"). Minting asks the
//! Company grant for its access token: an expired one is refreshed once
//! (single-flight) while the mints wait, and the Company refresh token is
//! never presented by a mint, so a Company rotation while mints are out is
//! safe. A mint refused with 403 ("The token does not have access to this
//! location.") means re-authorization for that location; a 401 parks that
//! location as unauthorized without counting towards the client's
//! rejection; "Location is not active" suspends it. The other locations go
//! on. [`GrantRecord::minted_from`] persists the relation; a record of a
//! minted grant may hold no refresh token. UNINSTALL ([`Engine::uninstall`])
//! wipes the tokens and emits [`Output::Delete`]. [`diff_installed_locations`]
//! compares the grants held with the installed-locations list.
//! (`tests/engine_locations.rs`)
//!
//! In shared-store mode a minted grant without a refresh token is not
//! supported yet: the compare-and-swap paths require a refresh token in the
//! stored record.
//!
//! # Pacing
//!
//! Every send (refresh or mint) spends a token of the engine's
//! [`RequestBudget`](crate::RequestBudget): by default HighLevel's 100
//! requests per 10 s (per FACTS.md, "Rate limits";
//! [`EngineSettings::request_budget`]), following the `X-RateLimit-*`
//! headers of the answers handed to [`Engine::handle_response`]; a 429
//! spends it all, and the grant still waits as the 429 says. Sends over
//! budget wait in a first-in, first-out line (no scan of the grants) and go
//! out as it frees up; [`Engine::poll_timeout`] includes that instant.
//! Minted grants refresh at points spread over
//! [`EngineSettings::refresh_ahead_spread`] before their refresh time.
//! Measured against the fake with its rate limit on: a bulk install of
//! 1,000 locations is ready after 102.5 s, 1.02× the budget's floor, with
//! no 429 (a spent token comes back one window plus a 2.5% margin later: see
//! [`RequestBudget`](crate::RequestBudget)). (`engine_locations::bulk_install_of_1000_locations_mints_at_the_budget`)
//!
//! # A run loop
//!
//! The [crate documentation](crate#a-run-loop) has a complete, compiling
//! blocking driver: drain the outputs, hand the token out, sleep until the next
//! deadline.
//!
//! # Single-process mode (the default)
//!
//! One engine owns its grants' records. Each [`Output::Persist`] is a plain
//! overwrite; the store needs no compare-and-swap, and
//! [`Engine::handle_persisted`] is optional. At start-up, [`Engine::restore`]
//! every stored record.
//!
//! # Shared-store mode
//!
//! Several processes (or engines) hold the same grants and share one store
//! that can compare-and-swap on [`GrantRecord::version`]. Before each refresh
//! the engine writes a short [`Lease`] and sends the refresh only once the
//! caller confirms that this write won. An engine that loses the race is handed
//! the current record and adopts it: newer tokens instead of a refresh, or the
//! other engine's lease, which it waits out while re-reading the store.
//!
//! ```
//! use std::collections::HashMap;
//! use std::time::{Duration, UNIX_EPOCH};
//! use hoopai_oauth::{
//!     AccessToken, Config, Engine, EngineSettings, GrantRecord, Output, RefreshToken,
//!     TokenResponse, TokenSet,
//! };
//!
//! /// A store with compare-and-swap on the record version.
//! #[derive(Default)]
//! struct Store(HashMap<String, GrantRecord>);
//!
//! impl Store {
//!     /// Writes `record` if the stored version is `replaces`; else returns
//!     /// the stored record (`None`: nothing is stored).
//!     fn compare_and_swap(&mut self, replaces: Option<u64>, record: &GrantRecord) -> Result<(), Option<GrantRecord>> {
//!         let key = record.grant.to_string();
//!         match self.0.get(&key) {
//!             current if current.map(|c| c.version) != replaces => Err(current.cloned()),
//!             _ => {
//!                 self.0.insert(key, record.clone());
//!                 Ok(())
//!             }
//!         }
//!     }
//! }
//!
//! fn drive(engine: &mut Engine, store: &mut Store, now: std::time::SystemTime) -> Result<(), hoopai_oauth::Error> {
//!     while let Some(output) = engine.poll_output(now) {
//!         match output {
//!             Output::Persist { grant, record, replaces, .. } => {
//!                 match store.compare_and_swap(replaces, &record) {
//!                     Ok(()) => engine.handle_persisted(grant.as_str(), record.version, now)?,
//!                     Err(Some(current)) => engine.handle_persist_conflict(grant.as_str(), current, now)?,
//!                     Err(None) => engine.handle_record_deleted(grant.as_str(), now)?,
//!                 }
//!             }
//!             Output::Load { grant, .. } => {
//!                 let current = store.0.get(grant.as_str()).cloned();
//!                 engine.handle_loaded(grant.as_str(), current, now)?;
//!             }
//!             Output::Send { .. } => { /* send it, as in the run loop above */ }
//!             Output::Event(event) => println!("{event}"),
//!             _ => {}
//!         }
//!     }
//!     Ok(())
//! }
//!
//! let config = Config::builder("my-client-id", "my-client-secret").build()?;
//! let settings = |name: &str| {
//!     EngineSettings::default().shared_store(name, Duration::from_secs(120))
//! };
//! let mut a = Engine::new(config.clone(), settings("worker-a"));
//! let mut b = Engine::new(config, settings("worker-b"));
//! let mut store = Store::default();
//! let t0 = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
//!
//! let mut token = TokenResponse::new(AccessToken::new("access-placeholder-0"));
//! token.refresh_token = Some(RefreshToken::new("refresh-placeholder-0"));
//! a.insert("loc-1", TokenSet::new(token, t0), t0)?;
//! drive(&mut a, &mut store, t0)?;
//! b.restore(store.0["loc-1"].clone(), t0)?;
//!
//! // Both come due at once. `a` writes its lease first and sends; `b`'s
//! // compare-and-swap loses, and `b` waits out `a`'s lease.
//! let due = a.poll_timeout().unwrap();
//! a.handle_timeout(due);
//! b.handle_timeout(due);
//! let mut sends = 0;
//! while let Some(output) = a.poll_output(due) {
//!     match output {
//!         Output::Persist { grant, record, replaces, .. } => {
//!             store.compare_and_swap(replaces, &record).unwrap();
//!             a.handle_persisted(grant.as_str(), record.version, due)?;
//!         }
//!         Output::Send { .. } => sends += 1,
//!         _ => {}
//!     }
//! }
//! drive(&mut b, &mut store, due)?;
//! assert_eq!(sends, 1);
//! assert!(b.poll_timeout().unwrap() > due); // waiting for the lease to end
//! # Ok::<(), hoopai_oauth::Error>(())
//! ```
//!
//! In shared-store mode report every write's outcome: the engine refreshes a
//! grant only once its previous write is confirmed. A lease whose outcome
//! has not come when it ends is written again, over the last version known
//! written (the unreported write may have lost to another engine's write of
//! the same version); a lease confirmed with less than
//! [`EngineSettings::request_timeout`] left is renewed instead of used. A
//! record of version 0 ([`GrantRecord::new`]) counts as never stored: the
//! first write of it has `replaces: None`, and if the store does hold such a
//! record, the conflict hands it back and the engine writes over it.
//!
//! # Rotation safety
//!
//! Refresh tokens are single-use; the newest one *is* the installation. Each
//! property below names the test that checks it (in `tests/`; the property
//! tests and the fuzz target `fuzz/fuzz_targets/engine.rs` check all of them
//! against random interleavings).
//!
//! 1. **Written first.** A newly received refresh token (an answer, a token
//!    rescued from a failure, [`Engine::insert`], a rewrite after a lost
//!    compare-and-swap) is in an [`Output::Persist`] queued ahead of every
//!    other output. A process killed can lose a grant only within one
//!    request plus one write, whatever else is queued.
//!    (`engine_rotation_safety::a_new_refresh_token_is_written_before_anything_queued`)
//! 2. **Handed out once written.** [`Engine::access_token`] hands a new
//!    access token out only once the record with its refresh token was
//!    polled (shared-store mode: confirmed); events about it follow that
//!    write. (`engine_properties`, invariant "ready only if stored")
//! 3. **Covered by its lease.** The engine knows the time a send is handed
//!    out ([`Engine::poll_output`] takes `now`); a send whose lease would
//!    end before its request timeout is never handed out (a new lease is
//!    written instead), and every send carries `not_after`, after which the
//!    driver must not dispatch it ([`Engine::handle_send_expired`]). The
//!    engine gives up on a request only a request timeout after `not_after`,
//!    so a request dispatched in time never overlaps its retry.
//!    (`engine_rotation_safety::nothing_is_sent_that_its_lease_cannot_cover`,
//!    `engine_rotation_safety::an_expired_send_is_leased_again`)
//! 4. **One refresh in flight per grant, never a spent token.** Whatever the
//!    number of callers and engines. (`engine_single_flight`,
//!    `engine_properties`, invariants checked at every send)
//! 5. **Checked before declared lost.** In shared-store mode, "invalid
//!    grant" makes the engine read the store ([`Output::Load`]); a newer
//!    token there is adopted. "Re-authorization needed" is written only
//!    over the very version read, holding the refused token (compare-and-swap
//!    makes this exact), and [`Event::ReauthorizationNeeded`] follows only
//!    once that write won.
//!    (`engine_rotation_safety::invalid_grant_is_checked_against_the_store`)
//! 6. **Engines converge.** Waiting for a lease held elsewhere, for a read,
//!    or for re-authorization, the engine re-reads the store every
//!    [`EngineSettings::reread_interval`] (re-authorization: less and less
//!    often, up to the backoff cap), and whenever asked ([`Engine::reread`],
//!    [`Engine::handle_loaded`]). A stale view lasts seconds, not a lease.
//!    (`engine_rotation_safety::an_engine_waiting_for_re_authorization_converges`)
//! 7. **No stampede.** At most [`EngineSettings::max_in_flight`] grants hold
//!    a lease or a request at once; the others wait their turn in order (no
//!    scan of all grants). Grants already due when restored are spread over
//!    [`EngineSettings::refresh_spread`], in an order of the engine's own
//!    jitter seed. (`engine_rotation_safety::no_stampede_at_start_up`)
//! 8. **Version 0 is adopted.** A stored [`GrantRecord::new`] record is
//!    written over, not fought.
//!    (`engine_rotation_safety::version_zero_records_are_adopted_not_fought`)
//! 9. **Time always moves on.** [`Engine::handle_timeout`] returns: every
//!    deadline it sets is later than the one handled. [`Engine::restore`]
//!    refuses a record with times past [`MAX_RECORD_TIME`].
//!    (`engine_rotation_safety::handle_timeout_terminates_at_the_end_of_time`,
//!    `engine_rotation_safety::a_record_at_the_end_of_time_is_refused`)
//! 10. **A deleted record is a removed grant.** A compare-and-swap or a read
//!     that finds no record ([`Engine::handle_record_deleted`]) forgets the
//!     grant and its tokens, with [`Event::RemovedElsewhere`].
//!     (`engine_rotation_safety::a_deleted_record_means_removed_elsewhere`)
//! 11. **Late answers count.** An answer that arrives after the engine gave
//!     up on its request is still adopted and persisted (the last
//!     [`ABANDONED_MEMORY`] given-up requests per grant are remembered); an
//!     answer without `refresh_token` keeps the old one; expiry counts from
//!     when the request was handed out. (`engine_late_response`)
//! 12. **Fingerprints, not tokens.** Every [`Output::Send`] and
//!     [`Output::Persist`] carries the [`Fingerprint`](crate::Fingerprint)
//!     of the refresh token it concerns, for logs.
//!     (`engine_rotation_safety::sends_and_writes_carry_fingerprints`)
//!
//! What no client can recover: if the server spent a refresh token and its
//! answer is lost for good (the process died with it, or the network dropped
//! it and nothing else arrives), the new refresh token exists only at the
//! server. The next refresh gets "invalid grant", and the grant needs
//! re-authorization. Keep your HTTP client's timeout at or below
//! [`EngineSettings::request_timeout`], and let answers that do arrive late
//! reach the engine.
//!
//! # Failures
//!
//! Classified by [`Error::kind`]:
//!
//! | Kind | What the engine does |
//! |---|---|
//! | `InvalidGrant` | re-authorization needed (shared-store mode: after reading the store): persisted in that state, [`Event::ReauthorizationNeeded`], no retry |
//! | `LocationNotActive` | suspended: persisted, [`Event::Suspended`]; the same refresh token is tried again after [`EngineSettings::suspended_retry`] |
//! | `RateLimited` | retried when `Retry-After` (or the spent rate-limit window) says, else after [`EngineSettings::rate_limit_wait`] |
//! | `ServerError`, `Unreadable`, others, timeouts, transport errors | exponential backoff with seeded jitter and a cap ([`EngineSettings::backoff`]), same refresh token |
//! | `InvalidClient` | [`Event::ConfigurationRejected`]; nothing is sent for any grant until [`Engine::reconfigure`] |
//! | `GrantUnauthorized` (a 401 not naming the client) | that grant alone: refresh token kept, persisted as [`GrantStatus::Unauthorized`], [`Event::Unauthorized`], tried again after [`EngineSettings::unauthorized_retry`]; several distinct grants in a row ([`EngineSettings::unauthorized_halt_after`]) count as `InvalidClient` |
//!
//! # Scale
//!
//! One engine holds hundreds of thousands of grants. Deadlines sit in an
//! ordered set, so the next deadline and each timeout cost O(log n). Tokens are
//! stored once, compactly; requests and records are built only when polled.
//! Unknown fields of token answers (such as `refreshTokenId`) are not kept.

mod backoff;
mod failure;
mod grant;
mod grants;
mod held;
mod location;
mod output;
mod pacing;
mod record;
mod schedule;
mod settings;
mod shared;
mod unauthorized;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use crate::config::Config;
use crate::error::{Error, ErrorKind};

pub use location::{InstallChanges, LocationDiff, diff_installed_locations};
pub use output::{Event, Failure, Output, RequestId, TokenStatus};
pub use record::{
    GrantId, GrantRecord, GrantStatus, Lease, MAX_RECORD_TIME, MAX_RECORD_VERSION, RECORD_SCHEMA,
};
pub use settings::EngineSettings;

use backoff::SplitMix64;
use grant::Slot;
use held::Interner;
use output::{Queued, Tag};
use schedule::{Busy, Schedule};
use settings::StoreMode;

/// How many given-up requests per grant the engine remembers, so that a late
/// answer to one of them is still recognized (and its tokens adopted).
pub const ABANDONED_MEMORY: usize = 4;

/// The token lifecycle of many grants, as a state machine. See the
/// [module docs](self) for how to drive it.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    settings: EngineSettings,
    /// Shared-store mode: the holder name and the lease length.
    lease: Option<(String, Duration)>,
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    index: HashMap<GrantId, u32>,
    schedule: Schedule,
    /// Writes to try again after a failure.
    rewrites: Schedule,
    queue: VecDeque<Queued>,
    rng: SplitMix64,
    seq: u32,
    /// The last incarnation given out.
    lives: u32,
    halted: bool,
    /// Slots that were parked (lazily cleaned: a slot counts only while its
    /// phase is `Parked`).
    parked: Vec<u32>,
    /// Removed grants whose requests are still out, by grant: kept until
    /// those requests are answered or the grant comes back.
    removed: HashMap<GrantId, u32>,
    interner: Interner,
    /// Distinct grants refused with a 401 that does not name the client,
    /// since the last successful refresh.
    unauthorized: unauthorized::Streak,
    /// Grants holding a place under the cap (lazily cleaned).
    busy: Vec<Busy>,
    /// Grants waiting for a place under the cap, in order (lazily cleaned).
    waiting: VecDeque<Tag>,
    /// While handling timeouts: the instant handled.
    floor: Option<SystemTime>,
    /// Location grants minted from Company grants.
    locations: location::Locations,
    /// The request budget and the sends waiting for it.
    pacing: pacing::Pacing,
}

impl Engine {
    /// An engine with no grants.
    #[must_use]
    pub fn new(config: Config, settings: EngineSettings) -> Self {
        let lease = match &settings.store {
            StoreMode::Single => None,
            StoreMode::Shared { holder, .. } => {
                settings.lease_duration().map(|d| (holder.clone(), d))
            }
        };
        let pacing = pacing::Pacing::new(&settings);
        Engine {
            config,
            rng: SplitMix64::new(settings.seed),
            settings,
            lease,
            slots: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            schedule: Schedule::default(),
            rewrites: Schedule::default(),
            queue: VecDeque::new(),
            seq: 0,
            lives: 0,
            halted: false,
            parked: Vec::new(),
            removed: HashMap::new(),
            interner: Interner::default(),
            unauthorized: unauthorized::Streak::default(),
            busy: Vec::new(),
            waiting: VecDeque::new(),
            floor: None,
            locations: location::Locations::default(),
            pacing,
        }
    }

    /// Makes room for `additional` more grants.
    pub fn reserve(&mut self, additional: usize) {
        self.slots.reserve(additional);
        self.index.reserve(additional);
    }

    /// The settings.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How many grants the engine holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the engine holds no grant.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Whether the engine holds `grant`.
    #[must_use]
    pub fn contains(&self, grant: &str) -> bool {
        self.index.contains_key(grant)
    }

    /// Whether the client credentials were rejected; nothing is sent until
    /// [`reconfigure`](Self::reconfigure).
    #[must_use]
    pub fn is_halted(&self) -> bool {
        self.halted
    }

    /// A snapshot of a grant's record as the engine holds it now.
    #[must_use]
    pub fn record(&self, grant: &str) -> Option<GrantRecord> {
        let idx = *self.index.get(grant)?;
        let slot = self.slot(idx)?;
        Some(self.build_record(slot))
    }
}

fn unknown_grant(grant: &str) -> Error {
    Error::new(
        ErrorKind::UnknownGrant,
        format!("the engine holds no grant {grant:?}"),
    )
}

fn unknown_request(id: RequestId) -> Error {
    Error::new(
        ErrorKind::UnknownRequest,
        format!("request {id} is not in flight"),
    )
}

#[cfg(test)]
mod tests;
