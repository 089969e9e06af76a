//! The token lifecycle engine: keeps the access tokens of many grants fresh,
//! and never loses a refresh token.
//!
//! The engine is a state machine with no I/O, no clock and no randomness
//! (quinn-proto style). The caller feeds it inputs, each with the current time,
//! and drains outputs named for what the caller must do:
//!
//! | Input | When |
//! |---|---|
//! | [`Engine::insert`] | a new authorization (code exchange or location token) |
//! | [`Engine::restore`] | a stored record (start-up, or the store says it changed) |
//! | [`Engine::access_token`] | someone needs a token: answered at once |
//! | [`Engine::handle_response`] / [`Engine::handle_token_result`] | the answer to a [`Output::Send`] |
//! | [`Engine::handle_transport_error`] | a [`Output::Send`] got no answer |
//! | [`Engine::handle_timeout`] | [`Engine::poll_timeout`]'s instant is reached |
//! | [`Engine::handle_persisted`] / [`Engine::handle_persist_conflict`] | a compare-and-swap of a [`Output::Persist`] won / lost (shared-store mode) |
//!
//! | Output ([`Engine::poll_output`]) | What to do |
//! |---|---|
//! | [`Output::Persist`] | write the record, durably, before acting on anything after it |
//! | [`Output::Send`] | send the request; hand back the answer with its id |
//! | [`Output::Event`] | tell the user or the log ([`Event`]) |
//!
//! After every input, call [`Engine::poll_output`] until it returns `None`,
//! then [`Engine::poll_timeout`] for the next instant to wake up at.
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
//! other engine's lease, which it waits out.
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
//!     /// Writes `record` if the stored version is `replaces`; else returns the stored record.
//!     fn compare_and_swap(&mut self, replaces: Option<u64>, record: &GrantRecord) -> Result<(), GrantRecord> {
//!         let key = record.grant.to_string();
//!         match self.0.get(&key) {
//!             Some(current) if Some(current.version) != replaces => Err(current.clone()),
//!             None if replaces.is_some() => Err(record.clone()), // (cannot happen here)
//!             _ => {
//!                 self.0.insert(key, record.clone());
//!                 Ok(())
//!             }
//!         }
//!     }
//! }
//!
//! fn drive(engine: &mut Engine, store: &mut Store, now: std::time::SystemTime) -> Result<(), hoopai_oauth::Error> {
//!     while let Some(output) = engine.poll_output() {
//!         match output {
//!             Output::Persist { grant, record, replaces } => {
//!                 match store.compare_and_swap(replaces, &record) {
//!                     Ok(()) => engine.handle_persisted(grant.as_str(), record.version, now)?,
//!                     Err(current) => engine.handle_persist_conflict(grant.as_str(), current, now)?,
//!                 }
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
//! while let Some(output) = a.poll_output() {
//!     match output {
//!         Output::Persist { grant, record, replaces } => {
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
//! grant only once its previous write is confirmed. If a write fails for
//! another reason (the store is down), retry that write. A lease whose
//! outcome has not come when it ends is written again, over the last version
//! known written (the unreported write may have lost to another engine's
//! write of the same version); a lease confirmed
//! with less than [`EngineSettings::request_timeout`] left is renewed instead
//! of used. A record of version 0 ([`GrantRecord::new`]) counts as never
//! stored: the first write of it has `replaces: None`.
//!
//! # Rotation safety
//!
//! Refresh tokens are single-use; the newest one *is* the installation.
//! - Every newly received refresh token is in an [`Output::Persist`] queued
//!   ahead of the events that report the refresh ([`Event::Refreshed`],
//!   [`Event::TokenReady`]). A driver that acts on outputs in order, as the run
//!   loop above does, has written it before anyone is told of the new token.
//!   [`Engine::access_token`] hands the new access token out only once that
//!   [`Output::Persist`] was polled (in shared-store mode: confirmed).
//! - A refresh token is never sent once a newer one was received, and one
//!   refresh per grant is in flight at most (whatever the number of callers).
//! - An answer without `refresh_token` keeps the old one.
//! - An answer that arrives after the engine gave up on its request (timeout,
//!   transport error) is still adopted and persisted; the engine remembers the
//!   last [`ABANDONED_MEMORY`] given-up requests per grant for this.
//! - Expiry counts from when the request was sent, not when its answer came.
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
//! | `InvalidGrant` | re-authorization needed: persisted in that state, [`Event::ReauthorizationNeeded`], no retry |
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
mod held;
mod output;
mod record;
mod schedule;
mod settings;
mod unauthorized;

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Response;

use crate::config::Config;
use crate::error::{Error, ErrorKind};
use crate::secret::{AccessToken, RefreshToken};
use crate::token::{TokenResponse, TokenSet, UserType};
use crate::token_endpoint::{Grant, TokenRequest, parse_token_response, token_request};

pub use output::{Event, Failure, Output, RequestId, TokenStatus};
pub use record::{GrantId, GrantRecord, GrantStatus, Lease, MAX_RECORD_VERSION, RECORD_SCHEMA};
pub use settings::EngineSettings;

use crate::rate_limit::saturating_add as add;
use backoff::{SplitMix64, backoff};
use held::{Held, Interner};
use schedule::Schedule;
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
    lease: Option<(String, Duration)>,
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    index: HashMap<GrantId, u32>,
    schedule: Schedule,
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
}

/// An output waiting in the queue; sends and records are built when polled,
/// from the grant's state at that moment.
///
/// Writes and events carry the incarnation of the grant they were queued
/// for: nothing queued for a removed grant reaches it once it is back, nor a
/// grant that took its slot. (A send is its slot's in-flight request, told by
/// its unique sequence number.)
#[derive(Debug)]
enum Queued {
    Send { slot: u32, seq: u32 },
    Persist(Tag),
    Event(Tag, Event),
}

/// A slot and the incarnation of the grant in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tag {
    slot: u32,
    life: u32,
}

/// The tag of the grant in slot `idx` now.
fn tag(slots: &[Option<Slot>], idx: u32) -> Tag {
    let life = slots
        .get(idx as usize)
        .and_then(Option::as_ref)
        .map_or(0, |s| s.life);
    Tag { slot: idx, life }
}

#[derive(Debug, Clone, PartialEq)]
enum Status {
    Active,
    Suspended(SystemTime),
    /// Refused with a 401 that does not name the client; tried again at `until`.
    Unauthorized {
        until: SystemTime,
        reason: Option<Box<str>>,
    },
    Reauth(Option<Box<str>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Tokens held; the timer is the refresh time (none while a write awaits
    /// confirmation in shared-store mode).
    Idle,
    /// Shared-store mode: the lease record at `version` awaits confirmation.
    /// `again`: written again after an earlier lease write whose outcome was
    /// never reported; that write may have lost to another engine's of the
    /// same version, so this one replaces the last version known written.
    Leasing { until: SystemTime, again: bool },
    /// A refresh request is out.
    InFlight {
        seq: u32,
        epoch: u32,
        sent_at: SystemTime,
    },
    /// Waiting to retry after a failure.
    Backoff,
    /// Another engine's lease; the timer is its end.
    WaitingLease,
    /// Location not active; the timer is the next try.
    Suspended,
    /// Nothing to do until a new authorization.
    Reauth,
    /// The engine is halted (configuration rejected).
    Parked,
}

/// Tokens held that the store may not have yet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unconfirmed {
    None,
    /// Received from a refresh that spent the token with this fingerprint.
    Refreshed {
        spent: u64,
    },
    /// Handed in by `insert`: a new authorization, which always wins.
    Installed,
}

/// Without the fingerprint: with a guessed token, it would confirm the guess.
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
struct Abandoned {
    seq: u32,
    epoch: u32,
    sent_at: SystemTime,
}

#[derive(Debug)]
struct Slot {
    key: GrantId,
    held: Held,
    status: Status,
    phase: Phase,
    timer: Option<SystemTime>,
    /// Version of the state in memory.
    version: u64,
    /// Last version handed out (or read from the store); what the next write replaces.
    emitted: Option<u64>,
    /// Last version known to be in the store.
    confirmed: u64,
    /// Bumped whenever the refresh token changes.
    epoch: u32,
    /// The epoch of the last new authorization ([`Engine::insert`]): answers
    /// to requests sent before it are superseded.
    installed: u32,
    attempt: u32,
    waiters: bool,
    unconfirmed: Unconfirmed,
    abandoned: Vec<Abandoned>,
    /// Removed by [`Engine::remove`]; kept only until its requests are answered.
    removed: bool,
    /// Incarnation: new for each new grant in a slot, and on removal.
    life: u32,
    /// While a newly received refresh token is not yet written (not polled;
    /// in shared-store mode, not confirmed): the access token held before it
    /// and its expiry, which callers get meanwhile.
    prev: Option<Box<(AccessToken, SystemTime)>>,
}

/// Which request an answer belongs to.
#[derive(Debug, Clone, Copy)]
enum Which {
    Current { epoch: u32, sent_at: SystemTime },
    Abandoned { epoch: u32, sent_at: SystemTime },
}

/// Whether a new authorization came in after a request of `epoch` was sent.
fn superseded(slot: &Slot, epoch: u32) -> bool {
    // Wrapping order: `installed` is at most 2^31 epochs after `epoch`.
    slot.installed != epoch && slot.installed.wrapping_sub(epoch) < 1 << 31
}

/// Tells refresh tokens apart (never printed). Tokens are JWTs or random
/// strings: the length and the last 64 bytes (the signature) suffice, and
/// keep this cheap for ~1 KiB tokens.
fn fingerprint(token: &RefreshToken) -> u64 {
    let bytes = token.secret().as_bytes();
    let tail = bytes.get(bytes.len().saturating_sub(64)..).unwrap_or(bytes);
    let mut h = DefaultHasher::new();
    bytes.len().hash(&mut h);
    tail.hash(&mut h);
    h.finish()
}

/// `t` rounded up to a whole second (down, at the end of the platform's range).
fn ceil_seconds(t: SystemTime) -> SystemTime {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let down = add(UNIX_EPOCH, Duration::from_secs(d.as_secs()));
    if d.subsec_nanos() == 0 {
        return down;
    }
    down.checked_add(Duration::from_secs(1)).unwrap_or(down)
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

fn set_timer(schedule: &mut Schedule, idx: u32, slot: &mut Slot, at: Option<SystemTime>) {
    if let Some(old) = slot.timer.take() {
        schedule.remove(old, idx);
    }
    if let Some(t) = at {
        schedule.insert(t, idx);
        slot.timer = Some(t);
    }
}

/// Gives up on the slot's request in flight, if any, remembering it so that a
/// late answer is still recognized. The phase is left for the caller to set.
fn abandon_in_flight(slot: &mut Slot) {
    let Phase::InFlight {
        seq,
        epoch,
        sent_at,
    } = slot.phase
    else {
        return;
    };
    if slot.abandoned.len() >= ABANDONED_MEMORY {
        slot.abandoned.remove(0);
    }
    slot.abandoned.push(Abandoned {
        seq,
        epoch,
        sent_at,
    });
}

/// Replaces the held tokens with others (a new authorization or a record from
/// the store): the request in flight is given up on, and the epoch moves on.
fn replace_held(slot: &mut Slot, held: Held) {
    abandon_in_flight(slot);
    slot.held = held;
    slot.epoch = slot.epoch.wrapping_add(1);
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
        Engine {
            config,
            rng: SplitMix64::new(settings.seed),
            settings,
            lease,
            slots: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            schedule: Schedule::default(),
            queue: VecDeque::new(),
            seq: 0,
            lives: 0,
            halted: false,
            parked: Vec::new(),
            removed: HashMap::new(),
            interner: Interner::default(),
            unauthorized: unauthorized::Streak::default(),
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

    fn slot(&self, idx: u32) -> Option<&Slot> {
        self.slots.get(idx as usize).and_then(Option::as_ref)
    }

    fn slot_mut(&mut self, idx: u32) -> Option<&mut Slot> {
        self.slots.get_mut(idx as usize).and_then(Option::as_mut)
    }

    fn lookup(&self, grant: &str) -> Result<u32, Error> {
        self.index
            .get(grant)
            .copied()
            .ok_or_else(|| unknown_grant(grant))
    }

    fn next_life(&mut self) -> u32 {
        self.lives = self.lives.wrapping_add(1);
        self.lives
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        if self.seq == 0 {
            self.seq = 1;
        }
        self.seq
    }

    // ---- grants in and out ----------------------------------------------------

    /// Adds a grant from a new authorization (a code exchange or a location
    /// token), or replaces the tokens of a grant the engine holds (a
    /// re-install). Build `tokens` with [`TokenSet::new`] from the answer and
    /// the time its request was sent.
    ///
    /// Emits an [`Output::Persist`] of the new record: the refresh token in it
    /// is the installation. In shared-store mode this write wins over whatever
    /// the store holds (a new authorization supersedes older tokens).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if the answer has no refresh token.
    pub fn insert(
        &mut self,
        grant: impl Into<GrantId>,
        tokens: TokenSet,
        now: SystemTime,
    ) -> Result<(), Error> {
        let grant = grant.into();
        let held = Held::from_set(tokens, None, &mut self.interner).ok_or_else(|| {
            Error::input(format!(
                "the tokens for grant {grant} have no refresh token; the engine cannot keep them fresh"
            ))
        })?;
        self.reattach(grant.as_str(), now);
        if let Some(&idx) = self.index.get(grant.as_str()) {
            let margin = self.settings.refresh_margin;
            let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::as_mut) else {
                return Err(unknown_grant(grant.as_str()));
            };
            replace_held(slot, held);
            slot.installed = slot.epoch;
            slot.prev = None;
            slot.status = Status::Active;
            slot.phase = Phase::Idle;
            slot.attempt = 0;
            slot.unconfirmed = Unconfirmed::Installed;
            slot.version = slot.version.saturating_add(1);
            let at = slot.held.refresh_at(margin).max(now);
            set_timer(&mut self.schedule, idx, slot, Some(at));
            let expires_at = slot.held.expires_at();
            let waiters = std::mem::take(&mut slot.waiters);
            self.queue.push_back(Queued::Persist(tag(&self.slots, idx)));
            if waiters {
                self.queue.push_back(Queued::Event(
                    tag(&self.slots, idx),
                    Event::TokenReady { grant, expires_at },
                ));
            }
            return Ok(());
        }
        let at = held.refresh_at(self.settings.refresh_margin).max(now);
        let slot = Slot {
            key: grant,
            held,
            status: Status::Active,
            phase: Phase::Idle,
            timer: None,
            version: 1,
            emitted: None,
            confirmed: 0,
            epoch: 0,
            installed: 0,
            attempt: 0,
            waiters: false,
            unconfirmed: Unconfirmed::Installed,
            abandoned: Vec::new(),
            removed: false,
            life: 0,
            prev: None,
        };
        let idx = self.add_slot(slot);
        self.arm(idx, Some(at));
        self.queue.push_back(Queued::Persist(tag(&self.slots, idx)));
        Ok(())
    }

    /// Loads a grant from its stored record (at start-up, or when the store
    /// says it changed). Nothing is persisted. A record saved mid-refresh
    /// (with a lease) is resumed: the engine waits for the lease to end, then
    /// refreshes with the record's refresh token.
    ///
    /// For a grant the engine already holds, the record must be newer than
    /// the engine's; its tokens are then adopted.
    ///
    /// # Errors
    /// - [`ErrorKind::StaleRecord`]: another schema, or not newer than what
    ///   the engine holds;
    /// - [`ErrorKind::InvalidInput`]: the record has no refresh token.
    pub fn restore(&mut self, record: GrantRecord, now: SystemTime) -> Result<(), Error> {
        record.check()?;
        // A removed grant that comes back while its requests are out goes on
        // as if never removed: it takes the record only if newer.
        let reattached = self.reattach(record.grant.as_str(), now).is_some();
        if let Some(&idx) = self.index.get(record.grant.as_str()) {
            let held_version = self.slot(idx).map_or(0, |s| s.version);
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
            ..
        } = record;
        let Some(held) = Held::from_set(tokens, None, &mut self.interner) else {
            return Err(Error::input("the record has no refresh token"));
        };
        let slot = Slot {
            key: grant,
            held,
            status: Status::Active,
            phase: Phase::Idle,
            timer: None,
            version,
            // Version 0 is a record that was never stored.
            emitted: (version > 0).then_some(version),
            confirmed: version,
            epoch: 0,
            installed: 0,
            attempt: 0,
            waiters: false,
            unconfirmed: Unconfirmed::None,
            abandoned: Vec::new(),
            removed: false,
            life: 0,
            prev: None,
        };
        let idx = self.add_slot(slot);
        self.apply_stored_state(idx, status, lease, now, false);
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
    pub fn remove(&mut self, grant: &str) -> Result<(), Error> {
        let idx = self.lookup(grant)?;
        self.index.remove(grant);
        let life = self.next_life();
        let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::as_mut) else {
            return Ok(());
        };
        slot.waiters = false;
        if matches!(slot.phase, Phase::InFlight { .. }) || !slot.abandoned.is_empty() {
            // Out of the schedule, but remembered should the grant come back.
            if let Some(t) = slot.timer {
                self.schedule.remove(t, idx);
            }
            slot.removed = true;
            // Nothing queued for it reaches it, even once it is back.
            slot.life = life;
            let key = slot.key.clone();
            self.removed.insert(key, idx);
        } else {
            self.free_slot(idx);
        }
        Ok(())
    }

    /// Drops a slot for good.
    fn free_slot(&mut self, idx: u32) {
        let Some(mut slot) = self.slots.get_mut(idx as usize).and_then(Option::take) else {
            return;
        };
        set_timer(&mut self.schedule, idx, &mut slot, None);
        if slot.removed && self.removed.get(slot.key.as_str()) == Some(&idx) {
            self.removed.remove(slot.key.as_str());
        }
        self.free.push(idx);
    }

    /// Takes a removed grant back (with its requests still out), if there is
    /// one of that name, as it was; what was queued for it and dropped is
    /// queued again: the write of tokens not yet handed out.
    fn reattach(&mut self, grant: &str, now: SystemTime) -> Option<u32> {
        let idx = self.removed.remove(grant)?;
        let halted = self.halted;
        let slot = self.slots.get_mut(idx as usize).and_then(Option::as_mut)?;
        slot.removed = false;
        if slot.phase == Phase::Parked && !halted {
            // Reconfigured meanwhile.
            slot.phase = Phase::Idle;
            slot.timer = Some(now);
        }
        if let Some(t) = slot.timer {
            self.schedule.insert(t, idx);
        }
        let unwritten = slot.emitted != Some(slot.version);
        let key = slot.key.clone();
        self.index.insert(key, idx);
        if unwritten {
            self.queue.push_back(Queued::Persist(tag(&self.slots, idx)));
        }
        Some(idx)
    }

    /// An answer for a removed grant: forgotten, and the slot freed once
    /// nothing of it is out.
    fn answer_for_removed(&mut self, id: RequestId) -> Error {
        let idx = id.slot();
        if let Some(slot) = self.slot_mut(idx) {
            if matches!(slot.phase, Phase::InFlight { seq, .. } if seq == id.seq()) {
                slot.phase = Phase::Idle;
            }
            slot.abandoned.retain(|a| a.seq != id.seq());
            if !matches!(slot.phase, Phase::InFlight { .. }) && slot.abandoned.is_empty() {
                self.free_slot(idx);
            }
        }
        Error::new(
            ErrorKind::UnknownRequest,
            format!("request {id} is of a removed grant"),
        )
    }

    fn add_slot(&mut self, mut slot: Slot) -> u32 {
        slot.life = self.next_life();
        let key = slot.key.clone();
        let idx = if let Some(idx) = self.free.pop() {
            if let Some(cell) = self.slots.get_mut(idx as usize) {
                *cell = Some(slot);
            }
            idx
        } else {
            self.slots.push(Some(slot));
            u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
        };
        self.index.insert(key, idx);
        idx
    }

    fn arm(&mut self, idx: u32, at: Option<SystemTime>) {
        if let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::as_mut) {
            set_timer(&mut self.schedule, idx, slot, at);
        }
    }

    // ---- asking for a token -----------------------------------------------------

    /// The access token of `grant`, answered at once.
    ///
    /// - [`TokenStatus::Ready`]: a token valid for at least the expiry skew. A
    ///   refresh may be running ahead of expiry meanwhile. A token from a
    ///   refresh is handed out only once the record with its refresh token
    ///   is written: its [`Output::Persist`] polled (in shared-store mode:
    ///   confirmed). Until then the previous access token is, while it lasts.
    /// - [`TokenStatus::Pending`]: the token expired; a refresh is in flight or
    ///   scheduled (and is started now if it was not). However many callers
    ///   ask, one refresh runs. Wait for [`Event::TokenReady`].
    /// - [`TokenStatus::Suspended`], [`TokenStatus::Unauthorized`],
    ///   [`TokenStatus::ReauthorizationNeeded`],
    ///   [`TokenStatus::ConfigurationRejected`]: see each.
    ///
    /// May queue outputs: call [`poll_output`](Self::poll_output) afterwards.
    ///
    /// # Errors
    /// [`ErrorKind::UnknownGrant`].
    pub fn access_token(&mut self, grant: &str, now: SystemTime) -> Result<TokenStatus, Error> {
        let idx = self.lookup(grant)?;
        let skew = self.settings.expiry_skew;
        let halted = self.halted;
        let Some(slot) = self.slot_mut(idx) else {
            return Err(unknown_grant(grant));
        };
        match slot.status {
            Status::Reauth(_) => return Ok(TokenStatus::ReauthorizationNeeded),
            Status::Suspended(until) => return Ok(TokenStatus::Suspended { until }),
            Status::Unauthorized { until, .. } => return Ok(TokenStatus::Unauthorized { until }),
            Status::Active => {}
        }
        if let Some(prev) = &slot.prev {
            // New tokens are not written yet: the old access token, or wait.
            if add(now, skew) < prev.1 {
                return Ok(TokenStatus::Ready(prev.0.clone()));
            }
            slot.waiters = true;
            return Ok(TokenStatus::Pending);
        }
        if add(now, skew) < slot.held.expires_at() {
            return Ok(TokenStatus::Ready(slot.held.access.clone()));
        }
        if halted {
            return Ok(TokenStatus::ConfigurationRejected);
        }
        slot.waiters = true;
        if slot.phase == Phase::Idle && slot.timer.is_some() {
            self.start_refresh(idx, now);
        }
        Ok(TokenStatus::Pending)
    }

    /// Starts a refresh of `grant` now, whatever its expiry: for instance after
    /// an API call was answered 401 with its access token. Single-flight: if a
    /// refresh is already in flight, leased or waiting to be retried, nothing
    /// new starts. A suspended grant, one parked as unauthorized, or one that
    /// needs re-authorization is left as it is. An [`Event::Refreshed`] and an
    /// [`Event::TokenReady`] follow the refresh; until then
    /// [`access_token`](Self::access_token) keeps answering with the token held.
    ///
    /// May queue outputs: call [`poll_output`](Self::poll_output) afterwards.
    ///
    /// # Errors
    /// [`ErrorKind::UnknownGrant`].
    pub fn refresh_now(&mut self, grant: &str, now: SystemTime) -> Result<(), Error> {
        let idx = self.lookup(grant)?;
        let Some(slot) = self.slot_mut(idx) else {
            return Err(unknown_grant(grant));
        };
        if slot.status != Status::Active || slot.phase != Phase::Idle {
            return Ok(());
        }
        slot.waiters = true;
        self.start_refresh(idx, now);
        Ok(())
    }

    // ---- time -------------------------------------------------------------------------

    /// Handles every deadline due at `now`: refreshes that are due, retries,
    /// request timeouts, ended leases. Call it when
    /// [`poll_timeout`](Self::poll_timeout)'s instant is reached (calling it
    /// early or often is harmless), then drain [`poll_output`](Self::poll_output).
    ///
    /// Costs O(log n) per due deadline.
    pub fn handle_timeout(&mut self, now: SystemTime) {
        while let Some((_, idx)) = self.schedule.pop_due(now) {
            let Some(slot) = self.slot_mut(idx) else {
                continue;
            };
            slot.timer = None;
            match slot.phase {
                Phase::InFlight { .. } => {
                    abandon_in_flight(slot);
                    slot.phase = Phase::Idle;
                    self.retry_after_failure(idx, now, Failure::TimedOut);
                }
                Phase::Idle | Phase::Backoff | Phase::WaitingLease | Phase::Suspended => {
                    self.start_refresh(idx, now);
                }
                // The lease write was never confirmed (nor refused): take it again.
                Phase::Leasing { .. } => self.take_lease(idx, now),
                Phase::Reauth | Phase::Parked => {}
            }
        }
    }

    /// The next instant at which [`handle_timeout`](Self::handle_timeout) must
    /// be called; `None` when nothing is scheduled. Ask again after every
    /// `handle_*` call, `insert`, `restore` and `access_token`: the answer may
    /// move earlier.
    ///
    /// O(log n).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<SystemTime> {
        self.schedule.first()
    }

    // ---- the refresh --------------------------------------------------------------

    fn start_refresh(&mut self, idx: u32, now: SystemTime) {
        if self.halted {
            self.park(idx);
            return;
        }
        let shared = self.lease.is_some();
        let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::as_mut) else {
            return;
        };
        if matches!(slot.status, Status::Reauth(_))
            || matches!(slot.phase, Phase::InFlight { .. } | Phase::Leasing { .. })
        {
            return;
        }
        set_timer(&mut self.schedule, idx, slot, None);
        match shared {
            true => {
                if slot.emitted.unwrap_or(0) != slot.version || slot.confirmed != slot.version {
                    // A write is still out: refresh once it is confirmed.
                    slot.phase = Phase::Idle;
                    return;
                }
                self.take_lease(idx, now);
            }
            false => self.send(idx, now),
        }
    }

    /// Writes a new lease (shared-store mode). If its confirmation has not
    /// come when the lease ends, a new one is written.
    fn take_lease(&mut self, idx: u32, now: SystemTime) {
        let Some((_, lease)) = self.lease else {
            return;
        };
        let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::as_mut) else {
            return;
        };
        let until = ceil_seconds(add(now, lease));
        let again = matches!(slot.phase, Phase::Leasing { .. });
        slot.version = slot.version.saturating_add(1);
        slot.phase = Phase::Leasing { until, again };
        set_timer(&mut self.schedule, idx, slot, Some(until));
        self.queue.push_back(Queued::Persist(tag(&self.slots, idx)));
    }

    fn send(&mut self, idx: u32, now: SystemTime) {
        if self.halted {
            self.park(idx);
            return;
        }
        let seq = self.next_seq();
        let timeout = self.settings.request_timeout;
        let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::as_mut) else {
            return;
        };
        slot.phase = Phase::InFlight {
            seq,
            epoch: slot.epoch,
            sent_at: now,
        };
        set_timer(&mut self.schedule, idx, slot, Some(add(now, timeout)));
        self.queue.push_back(Queued::Send { slot: idx, seq });
    }

    fn park(&mut self, idx: u32) {
        if let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::as_mut) {
            set_timer(&mut self.schedule, idx, slot, None);
            if slot.phase != Phase::Parked {
                slot.phase = Phase::Parked;
                self.parked.push(idx);
            }
        }
        // Slots leave `Parked` without leaving the list; keep it short.
        if self.parked.len() > 2 * self.slots.len() + 64 {
            let slots = &self.slots;
            self.parked.retain(|&p| {
                slots
                    .get(p as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|s| s.phase == Phase::Parked)
            });
            self.parked.sort_unstable();
            self.parked.dedup();
        }
    }

    /// Replaces the configuration (e.g. a corrected client secret) and lifts
    /// the halt that a rejected configuration put on every grant: their
    /// refreshes are due at once.
    pub fn reconfigure(&mut self, config: Config, now: SystemTime) {
        self.config = config;
        self.halted = false;
        self.unauthorized.reset();
        for idx in std::mem::take(&mut self.parked) {
            if let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::as_mut)
                && slot.phase == Phase::Parked
                && !slot.removed
            {
                slot.phase = Phase::Idle;
                set_timer(&mut self.schedule, idx, slot, Some(now));
            }
        }
    }

    fn retry_after_failure(&mut self, idx: u32, now: SystemTime, failure: Failure) {
        let (base, cap) = (self.settings.backoff_base, self.settings.backoff_cap);
        let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::as_mut) else {
            return;
        };
        slot.attempt = slot.attempt.saturating_add(1);
        let at = add(now, backoff(base, cap, slot.attempt, &mut self.rng));
        slot.phase = Phase::Backoff;
        set_timer(&mut self.schedule, idx, slot, Some(at));
        self.queue.push_back(Queued::Event(
            Tag {
                slot: idx,
                life: slot.life,
            },
            Event::RetryScheduled {
                grant: slot.key.clone(),
                at,
                attempt: slot.attempt,
                failure,
            },
        ));
    }

    // ---- answers ----------------------------------------------------------------------

    /// Hands back the answer to request `id`: parsed with
    /// [`parse_token_response`], then as [`handle_token_result`](Self::handle_token_result).
    ///
    /// # Errors
    /// [`ErrorKind::UnknownRequest`] if `id` is not in flight (nor a recently
    /// given-up request of a grant still held, or of a removed grant); if the
    /// answer holds a refresh token, the error carries it in
    /// [`Error::rescued_refresh_token`]: keep it, the server may have spent
    /// the one sent. Server errors in the answer are not errors of this
    /// call: they become events.
    pub fn handle_response<B: AsRef<[u8]>>(
        &mut self,
        id: RequestId,
        response: Response<B>,
        now: SystemTime,
    ) -> Result<(), Error> {
        self.handle_token_result(id, parse_token_response(response), now)
    }

    /// Hands back an answer already parsed (e.g. by
    /// [`parse_token_response`]) for request `id`.
    ///
    /// - Success: the new tokens are adopted (the old refresh token is kept
    ///   if the answer has none), an [`Output::Persist`] is queued, then
    ///   [`Event::Refreshed`] (and [`Event::TokenReady`] if callers wait). The
    ///   expiry counts from when the request was sent. A success for a request
    ///   the engine had given up on is adopted all the same, as is one whose
    ///   grant was restored from an older record meanwhile: only a new
    ///   authorization ([`insert`](Self::insert)) since its request
    ///   supersedes it.
    /// - Failure: a refresh token rescued from the answer
    ///   ([`Error::rescued_refresh_token`]) is adopted and persisted first, and
    ///   the refresh retried with it. Otherwise, classified by [`Error::kind`]:
    ///   - `InvalidGrant`: re-authorization needed, persisted; no retry.
    ///   - `LocationNotActive`: suspended, persisted; the same refresh token is
    ///     tried again after the suspended-retry interval.
    ///   - `RateLimited`: retried when the server said (`Retry-After` or the
    ///     rate-limit window), else after the rate-limit wait.
    ///   - `InvalidClient`: [`Event::ConfigurationRejected`]; nothing more is
    ///     sent for any grant until [`reconfigure`](Self::reconfigure).
    ///   - `GrantUnauthorized`: that grant alone is parked, persisted as
    ///     unauthorized with its refresh token, [`Event::Unauthorized`]; the
    ///     same refresh token is tried again after
    ///     [`EngineSettings::unauthorized_retry`]. Distinct grants refused so
    ///     in a row ([`EngineSettings::unauthorized_halt_after`]) count as
    ///     `InvalidClient`.
    ///   - anything else (server errors, unreadable answers, other refusals):
    ///     exponential backoff with jitter, same refresh token.
    ///
    ///   A failure of a request that was given up on, or that presented a
    ///   refresh token older than the one held, is ignored.
    ///
    /// # Errors
    /// [`ErrorKind::UnknownRequest`], carrying the answer's refresh token (if
    /// any) in [`Error::rescued_refresh_token`].
    pub fn handle_token_result(
        &mut self,
        id: RequestId,
        result: Result<TokenResponse, Error>,
        now: SystemTime,
    ) -> Result<(), Error> {
        let which = match self.which(id) {
            Ok(which) => which,
            Err(error) => return Err(with_rescued(error, rescued(result))),
        };
        let idx = id.slot();
        if self.slot(idx).is_some_and(|s| s.removed) {
            let error = self.answer_for_removed(id);
            return Err(with_rescued(error, rescued(result)));
        }
        match which {
            Which::Current { epoch, sent_at } => {
                let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::as_mut) else {
                    return Err(unknown_request(id));
                };
                set_timer(&mut self.schedule, idx, slot, None);
                slot.phase = Phase::Idle;
                let current = epoch == slot.epoch;
                let adopt = current || !superseded(slot, epoch);
                match result {
                    // New tokens are adopted even if the held ones changed
                    // meanwhile: the server spent the token this request
                    // presented, and only a new authorization supersedes them.
                    Ok(token) if adopt => self.adopt_answer(idx, token, sent_at, now),
                    Err(e) if current => self.handle_failure(idx, e, now),
                    // The tokens changed while it was out: refresh again with the new ones.
                    _ => self.rearm_idle(idx, now),
                }
            }
            Which::Abandoned { epoch, sent_at } => {
                let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::as_mut) else {
                    return Err(unknown_request(id));
                };
                slot.abandoned.retain(|a| a.seq != id.seq());
                let current = epoch == slot.epoch;
                if let (Err(e), true) = (&result, current) {
                    // A late failure is ignored, but never a refresh token in it.
                    self.rescue(idx, e);
                    return Ok(());
                }
                let adopt = current || !superseded(slot, epoch);
                if let (Ok(token), true) = (result, adopt) {
                    // A late success: its refresh token is the newest one.
                    // The retry presented the token this answer spent.
                    abandon_in_flight(slot);
                    set_timer(&mut self.schedule, idx, slot, None);
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
    pub fn handle_transport_error(&mut self, id: RequestId, now: SystemTime) -> Result<(), Error> {
        let which = self.which(id)?;
        let idx = id.slot();
        if self.slot(idx).is_some_and(|s| s.removed) {
            return Err(self.answer_for_removed(id));
        }
        if let Which::Current { epoch, .. } = which {
            let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::as_mut) else {
                return Err(unknown_request(id));
            };
            set_timer(&mut self.schedule, idx, slot, None);
            abandon_in_flight(slot);
            slot.phase = Phase::Idle;
            if epoch == slot.epoch {
                self.retry_after_failure(idx, now, Failure::Transport);
            } else {
                self.rearm_idle(idx, now);
            }
        }
        Ok(())
    }

    fn which(&self, id: RequestId) -> Result<Which, Error> {
        let slot = self.slot(id.slot()).ok_or_else(|| unknown_request(id))?;
        if let Phase::InFlight {
            seq,
            epoch,
            sent_at,
        } = slot.phase
            && seq == id.seq()
        {
            return Ok(Which::Current { epoch, sent_at });
        }
        slot.abandoned
            .iter()
            .find(|a| a.seq == id.seq())
            .map(|a| Which::Abandoned {
                epoch: a.epoch,
                sent_at: a.sent_at,
            })
            .ok_or_else(|| unknown_request(id))
    }

    fn rearm_idle(&mut self, idx: u32, now: SystemTime) {
        let margin = self.settings.refresh_margin;
        if let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::as_mut) {
            slot.phase = Phase::Idle;
            let at = slot.held.refresh_at(margin).max(now);
            set_timer(&mut self.schedule, idx, slot, Some(at));
        }
    }

    fn adopt_answer(
        &mut self,
        idx: u32,
        token: TokenResponse,
        sent_at: SystemTime,
        now: SystemTime,
    ) {
        let margin = self.settings.refresh_margin;
        let shared = self.lease.is_some();
        // A refresh went through: refused grants are not the client's doing.
        self.unauthorized.reset();
        let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::as_mut) else {
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
            slot.epoch = slot.epoch.wrapping_add(1);
            if slot.unconfirmed != Unconfirmed::Installed {
                slot.unconfirmed = Unconfirmed::Refreshed {
                    spent: fingerprint(&slot.held.refresh),
                };
            }
        }
        let old = std::mem::replace(&mut slot.held, held);
        if rotated && slot.prev.is_none() {
            // Until the new refresh token is written, callers get the old
            // access token (while it lasts).
            let expires = old.expires_at();
            slot.prev = Some(Box::new((old.access, expires)));
        }
        slot.status = Status::Active;
        slot.phase = Phase::Idle;
        slot.attempt = 0;
        slot.version = slot.version.saturating_add(1);
        let at = slot.held.refresh_at(margin).max(now);
        set_timer(&mut self.schedule, idx, slot, Some(at));
        let grant = slot.key.clone();
        let expires_at = slot.held.expires_at();
        // In shared-store mode a new refresh token is ready once its write is
        // confirmed (see `durable`).
        let waiters = !(shared && slot.prev.is_some()) && std::mem::take(&mut slot.waiters);
        self.queue.push_back(Queued::Persist(tag(&self.slots, idx)));
        self.queue.push_back(Queued::Event(
            tag(&self.slots, idx),
            Event::Refreshed {
                grant: grant.clone(),
                expires_at,
            },
        ));
        if waiters {
            self.queue.push_back(Queued::Event(
                tag(&self.slots, idx),
                Event::TokenReady { grant, expires_at },
            ));
        }
    }

    /// Adopts (and queues for persistence) a refresh token found in a failed
    /// answer: the server may have spent the one sent. Returns whether it did.
    fn rescue(&mut self, idx: u32, error: &Error) -> bool {
        let Some(token) = error.rescued_refresh_token() else {
            return false;
        };
        let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::as_mut) else {
            return false;
        };
        if token.secret().trim().is_empty() || *token == slot.held.refresh {
            return false;
        }
        if slot.unconfirmed != Unconfirmed::Installed {
            slot.unconfirmed = Unconfirmed::Refreshed {
                spent: fingerprint(&slot.held.refresh),
            };
        }
        slot.held.refresh = token.clone();
        slot.epoch = slot.epoch.wrapping_add(1);
        slot.version = slot.version.saturating_add(1);
        self.queue.push_back(Queued::Persist(tag(&self.slots, idx)));
        true
    }

    fn handle_failure(&mut self, idx: u32, error: Error, now: SystemTime) {
        if self.rescue(idx, &error) {
            // Whatever the answer said, the next try goes with the new token.
            self.retry_after_failure(idx, now, Failure::Answer(error));
            return;
        }
        let suspended_retry = self.settings.suspended_retry;
        let rate_wait = self.settings.rate_limit_wait;
        let halted = self.halted;
        let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::as_mut) else {
            return;
        };
        let grant = slot.key.clone();
        match error.kind() {
            ErrorKind::InvalidGrant => {
                slot.status = Status::Reauth(Some(error.to_string().into_boxed_str()));
                slot.phase = Phase::Reauth;
                slot.waiters = false;
                slot.version = slot.version.saturating_add(1);
                set_timer(&mut self.schedule, idx, slot, None);
                self.queue.push_back(Queued::Persist(tag(&self.slots, idx)));
                self.queue.push_back(Queued::Event(
                    tag(&self.slots, idx),
                    Event::ReauthorizationNeeded { grant, error },
                ));
            }
            ErrorKind::LocationNotActive => {
                let until = ceil_seconds(add(now, suspended_retry));
                slot.status = Status::Suspended(until);
                slot.phase = Phase::Suspended;
                slot.waiters = false;
                slot.version = slot.version.saturating_add(1);
                set_timer(&mut self.schedule, idx, slot, Some(until));
                self.queue.push_back(Queued::Persist(tag(&self.slots, idx)));
                self.queue.push_back(Queued::Event(
                    tag(&self.slots, idx),
                    Event::Suspended {
                        grant,
                        until,
                        error,
                    },
                ));
            }
            ErrorKind::InvalidClient => {
                self.halted = true;
                self.park(idx);
                if !halted {
                    self.queue.push_back(Queued::Event(
                        tag(&self.slots, idx),
                        Event::ConfigurationRejected { grant, error },
                    ));
                }
            }
            ErrorKind::GrantUnauthorized => self.grant_unauthorized(idx, error, now),
            ErrorKind::RateLimited => {
                let at = error
                    .retry_at(now)
                    .unwrap_or(add(now, rate_wait))
                    .max(add(now, Duration::from_secs(1)));
                slot.phase = Phase::Backoff;
                set_timer(&mut self.schedule, idx, slot, Some(at));
                self.queue.push_back(Queued::Event(
                    Tag {
                        slot: idx,
                        life: slot.life,
                    },
                    Event::RetryScheduled {
                        grant,
                        at,
                        attempt: slot.attempt,
                        failure: Failure::Answer(error),
                    },
                ));
            }
            _ => self.retry_after_failure(idx, now, Failure::Answer(error)),
        }
    }

    // ---- the store ----------------------------------------------------------------------

    /// Confirms that the record `version` of `grant` was written (shared-store
    /// mode: the compare-and-swap won). A lease confirmation releases the
    /// refresh request. Optional in single-process mode; repeated or old
    /// confirmations are harmless.
    ///
    /// # Errors
    /// [`ErrorKind::UnknownGrant`]; [`ErrorKind::UnknownRequest`] if the engine
    /// never emitted that version.
    pub fn handle_persisted(
        &mut self,
        grant: &str,
        version: u64,
        now: SystemTime,
    ) -> Result<(), Error> {
        let idx = self.lookup(grant)?;
        let timeout = self.settings.request_timeout;
        let Some(slot) = self.slot_mut(idx) else {
            return Err(unknown_grant(grant));
        };
        if slot.emitted.is_none_or(|e| version > e) {
            return Err(Error::new(
                ErrorKind::UnknownRequest,
                format!("version {version} of grant {grant} was never emitted"),
            ));
        }
        if version <= slot.confirmed {
            return Ok(());
        }
        slot.confirmed = version;
        if version == slot.version {
            slot.unconfirmed = Unconfirmed::None;
            if let Some(ready) = self.durable(idx) {
                self.queue
                    .push_back(Queued::Event(tag(&self.slots, idx), ready));
            }
        }
        let Some(slot) = self.slot_mut(idx) else {
            return Err(unknown_grant(grant));
        };
        match slot.phase {
            Phase::Leasing { until, .. } if version == slot.version => {
                if add(now, timeout) > until {
                    // Confirmed too late: the lease would end before the
                    // answer is due, and another engine could take over.
                    self.take_lease(idx, now);
                } else {
                    self.send(idx, now);
                }
            }
            Phase::Idle if slot.timer.is_none() => self.rearm_idle(idx, now),
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
    ///   another engine's lease (it waits for it to end), or the stored
    ///   status.
    /// - If `current` is the version the engine knows written while a newer
    ///   write of its own is out, this is the late outcome of an older write:
    ///   ignored (the newer write's outcome decides).
    ///
    /// # Errors
    /// [`ErrorKind::UnknownGrant`]; [`ErrorKind::StaleRecord`] if `current` is
    /// of another schema or grant, or older than a version known written;
    /// [`ErrorKind::InvalidInput`] if it has no refresh token.
    pub fn handle_persist_conflict(
        &mut self,
        grant: &str,
        current: GrantRecord,
        now: SystemTime,
    ) -> Result<(), Error> {
        let idx = self.lookup(grant)?;
        current.check()?;
        let holder = self.lease.as_ref().map(|(h, _)| h.as_str());
        let Some(slot) = self.slot(idx) else {
            return Err(unknown_grant(grant));
        };
        if current.grant.as_str() != grant {
            return Err(Error::new(
                ErrorKind::StaleRecord,
                format!("the record is of grant {}, not {grant}", current.grant),
            ));
        }
        if current.version < slot.confirmed {
            return Err(Error::new(
                ErrorKind::StaleRecord,
                format!(
                    "record version {} of grant {grant} is older than version {} known written",
                    current.version, slot.confirmed
                ),
            ));
        }
        let Some(stored) = current.refresh_token() else {
            return Err(Error::input("the record has no refresh token"));
        };
        if current.version == slot.confirmed && slot.emitted != Some(current.version) {
            // The version known stored: the late outcome of an older write,
            // which the outcome of the newer one out supersedes.
            return Ok(());
        }
        let same_token = *stored == slot.held.refresh;
        // Our own write, reported as a conflict (e.g. a retried write).
        let ours = slot.emitted == Some(current.version)
            && slot.version == current.version
            && same_token
            && match slot.phase {
                Phase::Leasing { until, .. } => current
                    .lease
                    .as_ref()
                    .is_some_and(|l| Some(l.holder.as_str()) == holder && l.until == until),
                _ => current.lease.is_none(),
            };
        if ours {
            return self.handle_persisted(grant, current.version, now);
        }
        if same_token && slot.unconfirmed != Unconfirmed::None || self.holds_newer(idx, &current) {
            self.rewrite_over(idx, current.version);
            return Ok(());
        }
        self.adopt_record(idx, current, now);
        Ok(())
    }

    /// The held tokens are written: the old access token goes, and callers
    /// told to wait are told a token is ready (the event to queue).
    fn durable(&mut self, idx: u32) -> Option<Event> {
        let slot = self.slot_mut(idx)?;
        slot.prev.take()?;
        if !(slot.waiters && slot.status == Status::Active) {
            return None;
        }
        slot.waiters = false;
        Some(Event::TokenReady {
            grant: slot.key.clone(),
            expires_at: slot.held.expires_at(),
        })
    }

    /// Whether the engine holds tokens that are newer than `record`'s and
    /// that the store may not have: a new authorization, or tokens received
    /// for the refresh token the record holds.
    fn holds_newer(&self, idx: u32, record: &GrantRecord) -> bool {
        let Some(slot) = self.slot(idx) else {
            return false;
        };
        match slot.unconfirmed {
            Unconfirmed::None => false,
            Unconfirmed::Installed => true,
            Unconfirmed::Refreshed { spent } => record
                .refresh_token()
                .is_some_and(|t| fingerprint(t) == spent),
        }
    }

    /// Writes the held state again, over the stored `version`.
    fn rewrite_over(&mut self, idx: u32, version: u64) {
        let Some(slot) = self.slot_mut(idx) else {
            return;
        };
        slot.emitted = Some(version);
        slot.confirmed = version;
        slot.version = slot.version.max(version).saturating_add(1);
        self.queue.push_back(Queued::Persist(tag(&self.slots, idx)));
    }

    /// Takes a stored record that is newer than the engine's state.
    fn adopt_record(&mut self, idx: u32, record: GrantRecord, now: SystemTime) {
        let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::as_mut) else {
            return;
        };
        let same_token = record.refresh_token() == Some(&slot.held.refresh);
        let version = record.version;
        slot.version = version;
        slot.emitted = Some(version);
        slot.confirmed = version;
        slot.unconfirmed = Unconfirmed::None;
        slot.prev = None;
        if same_token && matches!(slot.phase, Phase::InFlight { .. }) {
            // Our refresh is out; its answer decides.
            return;
        }
        let GrantRecord {
            status,
            lease,
            tokens,
            ..
        } = record;
        let mut adopted = false;
        if !same_token {
            let Some(held) = Held::from_set(tokens, None, &mut self.interner) else {
                return;
            };
            replace_held(slot, held);
            slot.attempt = 0;
            adopted = true;
        }
        self.apply_stored_state(idx, status, lease, now, adopted);
    }

    /// Sets status, phase and timer from a stored record's status and lease,
    /// and queues the matching events.
    fn apply_stored_state(
        &mut self,
        idx: u32,
        status: GrantStatus,
        lease: Option<Lease>,
        now: SystemTime,
        adopted: bool,
    ) {
        let margin = self.settings.refresh_margin;
        let skew = self.settings.expiry_skew;
        let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::as_mut) else {
            return;
        };
        let grant = slot.key.clone();
        let expires_at = slot.held.expires_at();
        let was = slot.status.clone();
        let mut events = Vec::new();
        if adopted {
            events.push(Event::Adopted {
                grant: grant.clone(),
                expires_at,
            });
        }
        let timer = match status {
            GrantStatus::ReauthorizationNeeded { reason } => {
                slot.status = Status::Reauth(reason.map(String::into_boxed_str));
                slot.phase = Phase::Reauth;
                slot.waiters = false;
                if !matches!(was, Status::Reauth(_)) {
                    events.push(Event::ReauthorizationNeeded {
                        grant: grant.clone(),
                        error: Error::new(
                            ErrorKind::InvalidGrant,
                            "the stored record says the grant needs re-authorization",
                        ),
                    });
                }
                None
            }
            GrantStatus::Suspended { until } => {
                slot.status = Status::Suspended(until);
                slot.phase = Phase::Suspended;
                slot.waiters = false;
                if was != Status::Suspended(until) {
                    events.push(Event::Suspended {
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
                slot.waiters = false;
                // Refused once at least: the next refusal waits longer.
                slot.attempt = slot.attempt.max(1);
                if !matches!(was, Status::Unauthorized { until: u, .. } if u == until) {
                    events.push(Event::Unauthorized {
                        grant: grant.clone(),
                        until,
                        error: Error::new(
                            ErrorKind::GrantUnauthorized,
                            "the stored record says the grant's refresh was refused with 401",
                        ),
                    });
                }
                slot.status = Status::Unauthorized {
                    until,
                    reason: reason.map(String::into_boxed_str),
                };
                Some(until.max(now))
            }
            _ => {
                slot.status = Status::Active;
                slot.phase = Phase::Idle;
                Some(slot.held.refresh_at(margin).max(now))
            }
        };
        // A live lease (whatever the status) holds every refresh off until it ends.
        let timer = match (lease, timer) {
            (Some(l), Some(t)) if l.until > now => {
                slot.phase = Phase::WaitingLease;
                events.push(Event::LeaseHeldElsewhere {
                    grant: grant.clone(),
                    holder: l.holder,
                    until: l.until,
                });
                Some(t.max(l.until))
            }
            (_, t) => t,
        };
        set_timer(&mut self.schedule, idx, slot, timer);
        if slot.waiters && slot.status == Status::Active && add(now, skew) < expires_at {
            slot.waiters = false;
            events.push(Event::TokenReady { grant, expires_at });
        }
        let t = tag(&self.slots, idx);
        self.queue
            .extend(events.into_iter().map(|e| Queued::Event(t, e)));
    }

    // ---- outputs -------------------------------------------------------------------------

    /// The next thing to do, or `None` when there is nothing left.
    ///
    /// Call it until it returns `None` after every call that takes `now`
    /// (`handle_*`, `insert`, `restore`, `access_token`, `reconfigure`), and
    /// act on the outputs in order: an [`Output::Persist`] must be durable
    /// before anything after it is acted on.
    ///
    /// Requests and records are built here, from the grants' state at this
    /// moment, so a long queue costs little memory.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        while let Some(q) = self.queue.pop_front() {
            match q {
                Queued::Event(t, e) => {
                    if self.live(t) {
                        return Some(Output::Event(e));
                    }
                }
                Queued::Send { slot: idx, seq } => {
                    if let Some(out) = self.build_send(idx, seq) {
                        return Some(out);
                    }
                }
                Queued::Persist(t) => {
                    let shared = self.lease.is_some();
                    let idx = t.slot;
                    let Some(slot) = self.slot(idx).filter(|_| self.live(t)) else {
                        continue;
                    };
                    if slot.emitted == Some(slot.version) {
                        continue;
                    }
                    let record = self.build_record(slot);
                    let replaces = match slot.phase {
                        Phase::Leasing { again: true, .. } => {
                            (slot.confirmed > 0).then_some(slot.confirmed)
                        }
                        _ => slot.emitted,
                    };
                    let grant = slot.key.clone();
                    if let Some(slot) = self.slot_mut(idx) {
                        slot.emitted = Some(slot.version);
                        if !shared {
                            slot.confirmed = slot.version;
                            slot.unconfirmed = Unconfirmed::None;
                        }
                    }
                    if !shared && let Some(ready) = self.durable(idx) {
                        // Right after the record that holds the token.
                        self.queue.push_front(Queued::Event(t, ready));
                    }
                    return Some(Output::Persist {
                        grant,
                        record,
                        replaces,
                    });
                }
            }
        }
        None
    }

    /// Whether the grant a write or event was queued for is still there.
    fn live(&self, t: Tag) -> bool {
        self.slot(t.slot)
            .is_some_and(|s| s.life == t.life && !s.removed)
    }

    fn build_send(&mut self, idx: u32, seq: u32) -> Option<Output> {
        let slot = self.slot(idx)?;
        let Phase::InFlight { seq: s, epoch, .. } = slot.phase else {
            return None;
        };
        if s != seq {
            return None;
        }
        if slot.removed {
            // Removed before it was sent: no answer will come.
            let _ = self.answer_for_removed(RequestId::new(seq, idx));
            return None;
        }
        if epoch != slot.epoch {
            return None;
        }
        if self.halted {
            // Queued before the client was rejected: it waits for reconfigure.
            self.park(idx);
            return None;
        }
        let user_type = match slot.held.user_type() {
            Some(t @ (UserType::Company | UserType::Location)) => Some(t.clone()),
            _ => None,
        };
        let grant = slot.key.clone();
        // The refresh token goes into the request and comes back out: the
        // secret is not copied (nor a copy left to zeroize).
        let slot = self.slot_mut(idx)?;
        let token = std::mem::replace(&mut slot.held.refresh, RefreshToken::new(String::new()));
        let mut req = TokenRequest::refresh_token(token);
        if let Some(t) = user_type {
            req = req.user_type(t);
        }
        let built = token_request(&self.config, &req);
        if let (Grant::RefreshToken(token), Some(slot)) = (req.into_grant(), self.slot_mut(idx)) {
            slot.held.refresh = token;
        }
        match built {
            Ok(request) => Some(Output::Send {
                id: RequestId::new(seq, idx),
                grant,
                request,
            }),
            Err(error) => {
                // The configuration cannot build a refresh: nothing can be sent.
                let was_halted = self.halted;
                self.halted = true;
                self.park(idx);
                (!was_halted)
                    .then_some(Output::Event(Event::ConfigurationRejected { grant, error }))
            }
        }
    }

    fn build_record(&self, slot: &Slot) -> GrantRecord {
        let status = match &slot.status {
            Status::Active => GrantStatus::Active,
            Status::Suspended(until) => GrantStatus::Suspended { until: *until },
            Status::Unauthorized { until, reason } => GrantStatus::Unauthorized {
                until: *until,
                reason: reason.as_deref().map(str::to_owned),
            },
            Status::Reauth(reason) => GrantStatus::ReauthorizationNeeded {
                reason: reason.as_deref().map(str::to_owned),
            },
        };
        let lease = match (slot.phase, &self.lease) {
            (Phase::Leasing { until, .. }, Some((holder, _))) => Some(Lease {
                holder: holder.clone(),
                until,
            }),
            _ => None,
        };
        let mut record = GrantRecord::new(slot.key.clone(), slot.held.to_set());
        record.version = slot.version;
        record.status = status;
        record.lease = lease;
        record
    }

    /// How many deadlines are scheduled (for tests and metrics).
    #[must_use]
    pub fn scheduled(&self) -> usize {
        self.schedule.len()
    }
}

#[cfg(test)]
mod tests;
