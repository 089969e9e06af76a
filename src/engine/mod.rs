//! The token lifecycle engine; its documentation is on [`Engine`].

mod backoff;
mod cap;
mod claim;
mod grant;
mod held;
mod locations;
mod outcome;
mod output;
mod pacer;
mod queue;
mod record;
mod rescued;
mod settings;
mod slot;
mod table;
mod timers;
mod unauthorized;
mod view;

use std::time::SystemTime;

use crate::config::Config;
use crate::error::{Error, ErrorKind};
use crate::location_token::LocationTokenRequest;
use crate::secret::AccessToken;
use crate::token::TokenSet;
use crate::webhook::WebhookEvent;

pub use claim::{BudgetClaim, ClaimOutcome, HOLDERS_WINDOWS};
pub use locations::{InstallChanges, LocationDiff, diff_installed_locations};
pub use outcome::{EngineStats, Removal, SendOutcome, StoreFailure, WriteOutcome};
pub use output::{EngineEvent, Output, RefreshFailure, RequestId, TokenStatus};
pub use record::{
    GrantId, GrantRecord, GrantStatus, Lease, MAX_GRANT_ID_BYTES, MAX_RECORD_TIME,
    MAX_RECORD_VERSION, RECORD_SCHEMA,
};
pub use rescued::RESCUED_MEMORY;
pub use settings::{BudgetKeying, EngineSettings};
pub use view::{GrantView, Grants};

use backoff::SplitMix64;

/// How many given-up requests per grant the engine remembers, so that a late
/// answer to one of them is still recognized (and its tokens adopted).
pub const ABANDONED_MEMORY: usize = 4;

/// The token lifecycle engine: keeps the access tokens of many grants fresh,
/// and never loses a refresh token.
///
/// The engine is a state machine with no I/O, no clock and no randomness
/// (quinn-proto style). The caller feeds it inputs, each with the current
/// time, and drains outputs named for what the caller must do. Every output
/// that asks for I/O has one way back; every input and command takes `now`
/// and returns a `Result`. The guide, with a blocking loop and the
/// shared-store protocol in detail, is docs/engine.md in the repository.
///
/// | Group | Methods |
/// |---|---|
/// | Inputs: the outcome of an output, the timer | [`handle_send`](Engine::handle_send) ([`SendOutcome`]), [`handle_write`](Engine::handle_write) ([`WriteOutcome`]), [`handle_load`](Engine::handle_load), [`handle_timeout`](Engine::handle_timeout) |
/// | Commands | [`insert`](Engine::insert), [`restore`](Engine::restore), [`remove`](Engine::remove) ([`Removal`]), [`access_token`](Engine::access_token), [`refresh_now`](Engine::refresh_now), [`handle_webhook`](Engine::handle_webhook), [`add_location`](Engine::add_location), [`reconfigure`](Engine::reconfigure), [`count_request`](Engine::count_request), [`handle_counted_answer`](Engine::handle_counted_answer), [`handle_claim`](Engine::handle_claim) ([`ClaimOutcome`]), [`shut_down`](Engine::shut_down) |
/// | Polls | [`poll_output`](Engine::poll_output), [`poll_timeout`](Engine::poll_timeout) |
/// | Getters | [`grants`](Engine::grants) ([`Grants`], [`GrantView`]), [`stats`](Engine::stats) ([`EngineStats`]) |
///
/// | Output | Do | Hand back |
/// |---|---|---|
/// | [`Output::Persist`] | write the record durably (compare-and-swap on `replaces`) | [`Engine::handle_write`] |
/// | [`Output::Send`] | send the request by its `not_after` | [`Engine::handle_send`] |
/// | [`Output::Load`] | read the grant's record | [`Engine::handle_load`] |
/// | [`Output::Delete`] | delete the grant's record (uninstalled) | nothing |
/// | [`Output::Claim`] | claim request tokens from the shared budget ([`BudgetClaim`]) | [`Engine::handle_claim`] |
/// | [`Output::Event`] | tell the user or the log ([`EngineEvent`]) | nothing |
///
/// After every input and command, call [`Engine::poll_output`] until it
/// returns `None`, then [`Engine::poll_timeout`] for the next instant to
/// wake up at. A `Persist` is unconfirmed until its outcome comes back: the
/// engine hands out no access token that depends on it, sends no refresh
/// that would spend the refresh token it replaces, and writes a failed one
/// again on its own backoff. So a driver may write asynchronously and act
/// on the outputs of different grants concurrently; per grant, in order.
///
/// The code is laid out by concern: `grant/` is the grant state machine
/// (the only code that changes a grant); `table`, `timers`, `cap`, `pacer`,
/// `queue`, `locations` and `rescued` are structures that own their state;
/// `output`, `outcome`, `record` and `settings` are the public types.
///
/// # Modes
///
/// - **Single-process mode** (the default): one engine owns its grants'
///   records. Writes may be plain overwrites (a compare-and-swap is never
///   lost); report each outcome all the same. At start-up,
///   [`Engine::restore`] every stored record.
/// - **Shared-store mode** ([`EngineSettings::shared_store`]): several
///   processes share one store that can compare-and-swap on
///   [`GrantRecord::version`]. Before each refresh the engine writes a short
///   [`Lease`] and sends the refresh only once that write won. An engine that
///   loses the race adopts the record it lost to: newer tokens instead of a
///   refresh, or the other engine's lease, which it waits out while
///   re-reading the store. Single-process mode is this without leases.
///
/// docs/engine.md shows two engines racing for one grant on one store.
///
/// A lease whose outcome has not come when it ends is written again, over
/// the last version known written; a lease confirmed with less than
/// [`EngineSettings::request_timeout`] left is renewed instead of used. A
/// record of version 0 ([`GrantRecord::new`]) counts as never stored: the
/// first write of it has `replaces: None`, and if the store does hold such a
/// record, the conflict hands it back and the engine writes over it.
///
/// # Location grants and pacing
///
/// A Location grant can be minted from a Company grant
/// ([`Engine::add_location`], or a bulk INSTALL through
/// [`Engine::handle_webhook`]) with the Company grant's access token, kept
/// fresh by its own refresh token and minted again when it has none (see
/// docs/highlevel-facts.md, "Location tokens"). Every send (refresh or
/// mint) spends a token of the engine's request budget, by default
/// HighLevel's 100 requests per 10 s (docs/highlevel-facts.md, "Rate
/// limits"; [`EngineSettings::request_budget`]), following the
/// `X-RateLimit-*` headers of the answers; sends over budget wait in a
/// first-in, first-out line. (`tests/engine_locations.rs`)
///
/// # Rotation safety
///
/// Refresh tokens are single-use; the newest one *is* the installation. Each
/// property below names the test that checks it (in `tests/`; the property
/// tests and the fuzz target `fuzz/fuzz_targets/engine.rs` check all of them
/// against random interleavings).
///
/// 1. **Written first.** A newly received refresh token (an answer, a token
///    rescued from a failure, [`Engine::insert`], a rewrite after a lost
///    compare-and-swap) is in an [`Output::Persist`] queued ahead of every
///    other output. A process killed can lose a grant only within one
///    request plus one write, whatever else is queued.
///    (`engine_rotation_safety::a_new_refresh_token_is_written_before_anything_queued`)
/// 2. **Handed out once written.** [`Engine::access_token`] hands a new
///    access token out only once the record with its refresh token is
///    confirmed written ([`WriteOutcome::Written`]), and no refresh spends
///    a refresh token whose successor is not written; [`EngineEvent::Refreshed`]
///    follows that write. (`engine_properties`, invariant "ready only if
///    stored"; `engine_regressions::a_new_token_is_ready_only_once_its_write_is_confirmed`)
/// 3. **Covered by its lease.** The engine knows the time a send is handed
///    out ([`Engine::poll_output`] takes `now`); a send whose lease would
///    end before its request timeout is never handed out (a new lease is
///    written instead), and every send carries `not_after`, after which the
///    driver must not dispatch it ([`SendOutcome::NotDispatched`]). The
///    engine gives up on a request only a request timeout after `not_after`,
///    so a request dispatched in time never overlaps its retry.
///    (`engine_rotation_safety::nothing_is_sent_that_its_lease_cannot_cover`,
///    `engine_rotation_safety::an_expired_send_is_leased_again`)
/// 4. **One refresh in flight per grant, never a spent token.** Whatever the
///    number of callers and engines. (`engine_single_flight`,
///    `engine_properties`, invariants checked at every send)
/// 5. **Checked before declared lost.** In shared-store mode, "invalid
///    grant" makes the engine read the store ([`Output::Load`]); a newer
///    token there is adopted. "Re-authorization needed" is written only
///    over the very version read, holding the refused token (compare-and-swap
///    makes this exact), and [`EngineEvent::ReauthorizationNeeded`] follows only
///    once that write won.
///    (`engine_rotation_safety::invalid_grant_is_checked_against_the_store`)
/// 6. **Engines converge.** Waiting for a lease held elsewhere, for a read,
///    or for re-authorization, the engine re-reads the store every
///    [`EngineSettings::reread_interval`] (re-authorization: less and less
///    often, up to the backoff cap), and whenever handed a record
///    ([`Engine::handle_load`]). A stale view lasts seconds, not a lease.
///    (`engine_rotation_safety::an_engine_waiting_for_re_authorization_converges`)
/// 7. **No stampede.** At most [`EngineSettings::max_in_flight`] grants hold
///    a lease or a request at once; the others wait their turn in order (no
///    scan of all grants). Grants already due when restored are spread over
///    [`EngineSettings::refresh_spread`], in an order of the engine's own
///    jitter seed. (`engine_rotation_safety::no_stampede_at_start_up`)
/// 8. **Version 0 is adopted.** A stored [`GrantRecord::new`] record is
///    written over, not fought.
///    (`engine_rotation_safety::version_zero_records_are_adopted_not_fought`)
/// 9. **Time always moves on.** [`Engine::handle_timeout`] returns: every
///    deadline it sets is later than the one handled. [`Engine::restore`]
///    refuses a record with times past [`MAX_RECORD_TIME`].
///    (`engine_rotation_safety::handle_timeout_terminates_at_the_end_of_time`,
///    `engine_rotation_safety::a_record_at_the_end_of_time_is_refused`)
/// 10. **A deleted record is a removed grant.** A compare-and-swap or a read
///     that finds no record ([`WriteOutcome::NoRecord`]) forgets the
///     grant and its tokens, with [`EngineEvent::RemovedElsewhere`].
///     (`engine_rotation_safety::a_deleted_record_means_removed_elsewhere`)
/// 11. **Late answers count.** An answer that arrives after the engine gave
///     up on its request is still adopted and persisted (the last
///     [`ABANDONED_MEMORY`] given-up requests per grant are remembered); an
///     answer without `refresh_token` keeps the old one; expiry counts from
///     when the request was handed out. An answer for a grant removed
///     meanwhile is kept ([`RESCUED_MEMORY`]) and adopted if the grant comes
///     back with the token it spent. (`engine_late_response`,
///     `engine_rotation_safety::a_rescued_refresh_token_is_adopted_and_written`)
/// 12. **Fingerprints, not tokens.** Every [`Output::Send`] and
///     [`Output::Persist`] carries the [`Fingerprint`](crate::Fingerprint)
///     of the refresh token it concerns, for logs.
///     (`engine_rotation_safety::sends_and_writes_carry_fingerprints`)
///
/// What no client can recover: if the server spent a refresh token and its
/// answer is lost for good (the process died with it, or the network dropped
/// it and nothing else arrives), the new refresh token exists only at the
/// server. The next refresh gets "invalid grant", and the grant needs
/// re-authorization. Keep your HTTP client's timeout at or below
/// [`EngineSettings::request_timeout`], and let answers that do arrive late
/// reach the engine.
///
/// # Failures
///
/// Classified by [`Error::kind`]:
///
/// | Kind | What the engine does |
/// |---|---|
/// | `InvalidGrant` | re-authorization needed (shared-store mode: after reading the store): persisted in that state, [`EngineEvent::ReauthorizationNeeded`] once written, no retry |
/// | `LocationNotActive` | suspended: persisted, [`EngineEvent::Suspended`]; the same refresh token is tried again after [`EngineSettings::suspended_retry`] |
/// | `RateLimited` | retried when `Retry-After` (or the spent rate-limit window) says, else after [`EngineSettings::rate_limit_wait`] |
/// | `ServerError`, `Unreadable`, others, timeouts, transport errors | exponential backoff with seeded jitter and a cap ([`EngineSettings::backoff`]), same refresh token |
/// | `InvalidClient` | [`EngineEvent::ConfigurationRejected`]; nothing is sent for any grant until [`Engine::reconfigure`] |
/// | a write failed ([`WriteOutcome::Failed`]) | written again after a backoff ([`EngineEvent::WriteFailed`]); callers get [`TokenStatus::StoreFailing`] once the token held expires; a lease not taken is a refresh retried later ([`RefreshFailure::Store`]) |
/// | `GrantUnauthorized` (a 401 not naming the client) | that grant alone: refresh token kept, persisted as [`GrantStatus::Unauthorized`], [`EngineEvent::Unauthorized`], tried again after [`EngineSettings::unauthorized_retry`]; several distinct grants in a row ([`EngineSettings::unauthorized_halt_after`]) count as `InvalidClient` |
///
/// # Scale
///
/// One engine holds hundreds of thousands of grants. Deadlines sit in an
/// ordered set, so the next deadline and each timeout cost O(log n). Tokens
/// are stored once, compactly; requests and records are built only when
/// polled. Unknown fields of token answers (such as `refreshTokenId`) are
/// not kept.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    settings: EngineSettings,
    /// The grants held, their slots, and those removed with requests out.
    grants: table::Table,
    /// Every grant's deadline, and the writes to try again.
    timers: timers::Timers,
    queue: queue::Queue,
    rng: SplitMix64,
    halted: bool,
    /// Slots that were parked (lazily cleaned: a slot counts only while its
    /// phase is `Parked`).
    parked: Vec<u32>,
    /// Distinct grants refused with a 401 that does not name the client,
    /// since the last successful refresh.
    unauthorized: unauthorized::Streak,
    /// The cap on leases and requests out at once.
    cap: cap::Cap,
    /// Location grants minted from Company grants.
    locations: locations::Locations,
    /// The request budget and the sends waiting for it.
    pacer: pacer::Pacer,
    /// Refresh tokens from answers for grants no longer held.
    rescued: rescued::Rescued,
    /// Strings shared between grants' tokens (scopes, token types).
    interner: held::Interner,
    /// Shutting down ([`Engine::shut_down`]): no refresh starts.
    stopping: bool,
}

/// Construction.
impl Engine {
    /// An engine with no grants.
    #[must_use]
    pub fn new(config: Config, settings: EngineSettings) -> Self {
        let pacer = pacer::Pacer::new(&settings, config.client_id());
        let max_in_flight = settings.max_in_flight;
        Engine {
            config,
            rng: SplitMix64::new(settings.seed),
            settings,
            grants: table::Table::default(),
            timers: timers::Timers::default(),
            queue: queue::Queue::default(),
            halted: false,
            parked: Vec::new(),
            unauthorized: unauthorized::Streak::default(),
            cap: cap::Cap::new(max_in_flight),
            locations: locations::Locations::default(),
            pacer,
            rescued: rescued::Rescued::default(),
            interner: held::Interner::default(),
            stopping: false,
        }
    }
}

/// Inputs: the outcomes of outputs, and the timer.
impl Engine {
    /// Hands back the outcome of the [`Output::Send`] `id`: the server's
    /// answer (as bytes, or parsed), a transport error, or that it was not
    /// dispatched in time.
    ///
    /// An answer:
    /// - Success: the new tokens are adopted (the old refresh token is kept
    ///   if the answer has none), an [`Output::Persist`] is queued ahead of
    ///   every other output, then [`EngineEvent::Refreshed`]; callers waiting get
    ///   [`EngineEvent::TokenReady`] once that write is confirmed. The expiry
    ///   counts from when the request was handed out. A success for a
    ///   request the engine had given up on is adopted all the same, as is
    ///   one whose grant was restored from an older record meanwhile: only a
    ///   new authorization ([`insert`](Self::insert)) since its request
    ///   supersedes it.
    /// - RefreshFailure: a refresh token rescued from the answer
    ///   ([`Error::rescued_refresh_token`]) is adopted and persisted first,
    ///   and the refresh retried with it. Otherwise, classified by
    ///   [`Error::kind`]: see [Failures](Engine#failures). A failure of
    ///   a request that was given up on, or that presented a refresh token
    ///   older than the one held, is ignored.
    /// - For a grant removed while the request was out:
    ///   [`EngineEvent::AnswerAfterRemoval`]; a refresh token in it is kept (see
    ///   [`RESCUED_MEMORY`]) or adopted if the grant is held again.
    /// - A 429 spends the whole request budget.
    ///
    /// Server errors in the answer are not errors of this call: they
    /// become events.
    ///
    /// # Errors
    /// [`ErrorKind::UnknownRequest`] if `id` was never handed out, or is
    /// long done (not the current request of its grant, nor one of the last
    /// [`ABANDONED_MEMORY`] given up on). If the answer holds a refresh
    /// token, the error carries it in [`Error::rescued_refresh_token`]:
    /// keep it, the server may have spent the one sent.
    pub fn handle_send(
        &mut self,
        id: RequestId,
        outcome: SendOutcome,
        now: SystemTime,
    ) -> Result<(), Error> {
        match outcome {
            SendOutcome::Response(response) => self.on_response(id, response, now),
            SendOutcome::Parsed(result) => self.on_answer(id, result, false, now),
            SendOutcome::TransportError(detail) => self.on_transport_error(id, detail, now),
            SendOutcome::NotDispatched => self.on_not_dispatched(id, now),
        }
    }

    /// Hands back the outcome of the [`Output::Persist`] of record `version`
    /// of `grant`.
    ///
    /// - [`WriteOutcome::Written`]: the record is durable. Tokens that
    ///   depended on it are handed out, a lease's refresh is sent, a new
    ///   authorization is reported [`EngineEvent::Durable`].
    /// - [`WriteOutcome::Conflict`]: if the engine holds tokens newer than
    ///   the stored ones (it received them, or they came from
    ///   [`insert`](Self::insert)), it writes them again over the stored
    ///   record: a newer refresh token is never given up. Otherwise it adopts
    ///   the stored record: newer tokens instead of refreshing, another
    ///   engine's lease (waited out, re-reading the store meanwhile), or the
    ///   stored status. The late outcome of an older write is ignored.
    /// - [`WriteOutcome::NoRecord`]: the grant was removed elsewhere: forgotten,
    ///   with [`EngineEvent::RemovedElsewhere`].
    /// - [`WriteOutcome::Failed`]: written again after a backoff
    ///   ([`EngineEvent::WriteFailed`]); a lease not taken is a refresh retried
    ///   later. Meanwhile callers of the grant get
    ///   [`TokenStatus::StoreFailing`] once the token held expires.
    ///
    /// # Errors
    /// [`ErrorKind::UnknownGrant`]; [`ErrorKind::UnknownRequest`] if the
    /// engine never emitted that version; for a conflict,
    /// [`ErrorKind::StaleRecord`] if the stored record is of another schema
    /// or grant, or older than a version known written, and
    /// [`ErrorKind::InvalidInput`] if it has no refresh token or absurd
    /// times.
    pub fn handle_write(
        &mut self,
        grant: &str,
        version: u64,
        outcome: WriteOutcome,
        now: SystemTime,
    ) -> Result<(), Error> {
        match outcome {
            WriteOutcome::Written => self.on_written(grant, version, now),
            WriteOutcome::Conflict(current) => {
                self.check_emitted(grant, version)?;
                self.on_conflict(grant, *current, now)
            }
            WriteOutcome::NoRecord => {
                self.check_emitted(grant, version)?;
                self.on_no_record(grant)
            }
            WriteOutcome::Failed(failure) => self.on_write_failed(grant, version, failure, now),
        }
    }

    /// Hands back the record of `grant` as the store holds it now, after an
    /// [`Output::Load`] or at any time (a change notification, a periodic
    /// scan): `Ok(None)` if there is none, `Err` if the read failed (the
    /// engine asks again on its own timer when it needs the record).
    ///
    /// - A record older than a version known written is a stale read:
    ///   ignored.
    /// - A record holding the refresh token that was refused as invalid
    ///   (shared-store mode): the grant is lost. "Re-authorization needed" is
    ///   written over exactly that version, and reported once the write won.
    /// - A newer record: its tokens, lease and status are adopted, unless the
    ///   engine holds newer tokens, which it writes again over it.
    /// - `None`: the grant was removed elsewhere, as
    ///   [`WriteOutcome::NoRecord`].
    ///
    /// # Errors
    /// [`ErrorKind::UnknownGrant`]; [`ErrorKind::StaleRecord`] for a record of
    /// another schema or grant; [`ErrorKind::InvalidInput`] for one without a
    /// refresh token or with absurd times.
    pub fn handle_load(
        &mut self,
        grant: &str,
        read: Result<Option<GrantRecord>, StoreFailure>,
        now: SystemTime,
    ) -> Result<(), Error> {
        match read {
            Ok(record) => self.on_loaded(grant, record, now),
            Err(_) => self.lookup(grant).map(|_| ()),
        }
    }

    /// Hands back the store's answer to the [`Output::Claim`] on budget
    /// `key` ([`BudgetClaim::key`]): the tokens granted are spent by the
    /// sends waiting (and the counted requests asking) at once; a failure
    /// puts this engine on a share of the budget of its own
    /// ([`EngineEvent::SharedBudgetFallback`]) until a later claim is
    /// answered ([`EngineEvent::SharedBudgetRecovered`]). An answer for no
    /// claim out (the engine was told twice) is ignored.
    ///
    /// # Errors
    /// None today; the `Result` keeps every input alike.
    pub fn handle_claim(
        &mut self,
        key: &str,
        outcome: ClaimOutcome,
        now: SystemTime,
    ) -> Result<(), Error> {
        self.on_claimed(key, outcome, now);
        Ok(())
    }

    /// Handles every deadline due at `now`: refreshes that are due, retries,
    /// request timeouts, ended leases, re-reads of the store, writes to try
    /// again. Call it when [`poll_timeout`](Self::poll_timeout)'s instant is
    /// reached (calling it early or often is harmless), then drain
    /// [`poll_output`](Self::poll_output).
    ///
    /// Always returns: every deadline it sets is later than `now` (at the end
    /// of the platform's time range, where that is impossible, the grant gets
    /// none). Costs O(log n) per due deadline.
    ///
    /// # Errors
    /// None today; the `Result` keeps every input alike.
    pub fn handle_timeout(&mut self, now: SystemTime) -> Result<(), Error> {
        self.on_timeout(now);
        Ok(())
    }
}

/// Commands: what the app asks of the engine.
impl Engine {
    /// Adds a grant from a new authorization (a code exchange or a location
    /// token), or replaces the tokens of a grant the engine holds (a
    /// re-install). Build `tokens` with [`TokenSet::new`] from the answer and
    /// the time its request was sent.
    ///
    /// Emits an [`Output::Persist`] of the new record ahead of every other
    /// output: the refresh token in it is the installation. Its
    /// compare-and-swap wins over whatever the store holds (a new
    /// authorization supersedes older tokens). [`EngineEvent::Durable`] follows
    /// once the record is written.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if the answer has no refresh token, or the
    /// grant id is empty.
    pub fn insert(
        &mut self,
        grant: impl Into<GrantId>,
        tokens: TokenSet,
        now: SystemTime,
    ) -> Result<(), Error> {
        self.insert_grant(grant, tokens, now)
    }

    /// Loads a grant from its stored record (at start-up, or when the store
    /// says it changed). Nothing is persisted. A record saved mid-refresh
    /// (with a lease) is resumed: the engine waits for the lease to end, then
    /// refreshes with the record's refresh token. In shared-store mode a
    /// grant already due is refreshed at a random point within
    /// [`EngineSettings::refresh_spread`].
    ///
    /// For a grant the engine already holds, the record must be newer than
    /// the engine's; its tokens are then adopted (to hand in a record that
    /// may be stale, use [`handle_load`](Self::handle_load)).
    ///
    /// # Errors
    /// - [`ErrorKind::StaleRecord`]: another schema, or not newer than what
    ///   the engine holds;
    /// - [`ErrorKind::InvalidInput`]: the record has no refresh token, or
    ///   times past [`MAX_RECORD_TIME`].
    pub fn restore(&mut self, record: GrantRecord, now: SystemTime) -> Result<(), Error> {
        self.restore_grant(record, now)
    }

    /// Removes `grant`, for the reason given (see [`Removal`]). Outputs not
    /// yet polled for it are dropped. Returns the grants removed: `grant`,
    /// and for an uninstalled Company grant every Location grant minted from
    /// it after it.
    ///
    /// If a refresh of a released grant is out, the engine remembers the
    /// grant until its answers are handed in: should it come back
    /// ([`insert`](Self::insert), [`restore`](Self::restore)) before them,
    /// it goes on as if it had never left (its scheduled retry, its answers,
    /// its unwritten tokens), so no new refresh token is lost and no second
    /// refresh starts.
    ///
    /// # Errors
    /// [`ErrorKind::UnknownGrant`] if the engine holds neither `grant` nor
    /// (for an uninstall) any Location grant minted from it.
    pub fn remove(
        &mut self,
        grant: &str,
        why: Removal,
        now: SystemTime,
    ) -> Result<Vec<GrantId>, Error> {
        let _ = now;
        match why {
            Removal::Uninstalled => self.uninstall_grant(grant),
            Removal::DeletedElsewhere => {
                self.on_no_record(grant)?;
                Ok(vec![GrantId::new(grant)])
            }
            Removal::Released => {
                self.release_grant(grant)?;
                Ok(vec![GrantId::new(grant)])
            }
        }
    }

    /// The access token of `grant`, answered at once.
    ///
    /// - [`TokenStatus::Ready`]: a token valid for at least the expiry skew. A
    ///   refresh may be running ahead of expiry meanwhile. A token from a
    ///   refresh is handed out only once the record with its refresh token
    ///   is written (its [`Output::Persist`] confirmed); until then the
    ///   previous access token is, while it lasts.
    /// - [`TokenStatus::Pending`]: the token expired; a refresh is in flight or
    ///   scheduled (and is started now if it was not). However many callers
    ///   ask, one refresh runs. Wait for [`EngineEvent::TokenReady`].
    /// - [`TokenStatus::StoreFailing`]: as `Pending`, but the grant's writes
    ///   are failing: what the store said.
    /// - [`TokenStatus::Suspended`], [`TokenStatus::Unauthorized`],
    ///   [`TokenStatus::ReauthorizationNeeded`],
    ///   [`TokenStatus::ConfigurationRejected`]: see each.
    ///
    /// May queue outputs: call [`poll_output`](Self::poll_output) afterwards.
    ///
    /// # Errors
    /// [`ErrorKind::UnknownGrant`].
    pub fn access_token(&mut self, grant: &str, now: SystemTime) -> Result<TokenStatus, Error> {
        self.token_status(grant, now)
    }

    /// Starts a refresh of `grant` now, whatever its expiry: for instance
    /// after an API call was answered 401 with its access token, handed in
    /// as `rejected`. With `rejected`, nothing starts if that token is no
    /// longer the one handed out (another caller's refresh replaced it), and
    /// it is never handed out again: [`access_token`](Self::access_token)
    /// answers `Pending` until new tokens come. Single-flight: if a refresh
    /// is already in flight, leased or waiting to be retried, nothing new
    /// starts. A suspended grant, one parked as unauthorized, or one that
    /// needs re-authorization is left as it is. An [`EngineEvent::Refreshed`] and
    /// an [`EngineEvent::TokenReady`] follow the refresh.
    ///
    /// May queue outputs: call [`poll_output`](Self::poll_output) afterwards.
    ///
    /// # Errors
    /// [`ErrorKind::UnknownGrant`].
    pub fn refresh_now(
        &mut self,
        grant: &str,
        rejected: Option<&AccessToken>,
        now: SystemTime,
    ) -> Result<(), Error> {
        self.refresh_grant(grant, rejected, now)
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
    /// - UNINSTALL: [`Removal::Uninstalled`] of the location, or of the
    ///   Company grant and every Location grant minted from it. A grant not
    ///   held is no error.
    /// - Any other type: nothing.
    ///
    /// May queue outputs: call [`poll_output`](Self::poll_output) afterwards.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for ids that cannot name grants.
    pub fn handle_webhook(
        &mut self,
        event: &WebhookEvent,
        now: SystemTime,
    ) -> Result<InstallChanges, Error> {
        self.apply_webhook(event, now)
    }

    /// Adds a Location grant `grant`, minted from the Company grant
    /// `company_grant` for `request`'s company and location. The mint goes
    /// out under the request budget and the cap; the Company grant need not
    /// be held yet (the mint waits for it: a bulk INSTALL webhook may come
    /// before the code exchange). Nothing is persisted before the first mint
    /// answers; its record carries [`GrantRecord::minted_from`].
    ///
    /// Returns whether the grant was added: `false` if the engine holds
    /// `grant` already (as it is).
    ///
    /// May queue outputs: call [`poll_output`](Self::poll_output) afterwards.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an empty company or location id, or a
    /// grant minted from itself.
    pub fn add_location(
        &mut self,
        grant: impl Into<GrantId>,
        company_grant: impl Into<GrantId>,
        request: &LocationTokenRequest,
        now: SystemTime,
    ) -> Result<bool, Error> {
        self.add_minted(grant, company_grant, request, now)
    }

    /// Replaces the configuration (e.g. a corrected client secret) and lifts
    /// the halt that a rejected configuration put on every grant: their
    /// refreshes are due at once.
    ///
    /// # Errors
    /// None today; the `Result` keeps every input alike.
    pub fn reconfigure(&mut self, config: Config, now: SystemTime) -> Result<(), Error> {
        self.set_config(config, now);
        Ok(())
    }

    /// Counts a request the app is about to send outside the engine (a code
    /// exchange, an installed-locations page, an API call) against the
    /// request budget, so that the engine's own sends leave room for it.
    /// `resource` is the Location or Company the request is for, if any
    /// (it picks the budget under [`BudgetKeying::Resource`]).
    ///
    /// `None`: counted, send it now. `Some(t)`: not counted, ask again at
    /// `t`: a refresh is waiting for the budget (refreshes go first), the
    /// counted requests have taken their share of the interval
    /// ([`EngineSettings::counted_share`]), the budget is spent, or (with
    /// [`EngineSettings::shared_budget`]) a token is being claimed from the
    /// store: poll the outputs, then ask again.
    ///
    /// # Errors
    /// None today; the `Result` keeps every input alike.
    pub fn count_request(
        &mut self,
        resource: Option<&str>,
        now: SystemTime,
    ) -> Result<Option<SystemTime>, Error> {
        Ok(self.pacer.take(resource, now))
    }

    /// Hands back the status and headers of the answer to a request counted
    /// with [`count_request`](Self::count_request) for `resource`. The budget
    /// follows its `X-RateLimit-*` headers, and a `429` spends all of it (until
    /// `Retry-After`), as for the engine's own requests; poll the outputs and
    /// the timeout after it. Returns the figures read as their caps, if any
    /// (for a request of no grant, the counterpart of
    /// [`EngineEvent::RateLimitClamped`]).
    ///
    /// # Errors
    /// None today; the `Result` keeps every input alike.
    pub fn handle_counted_answer(
        &mut self,
        resource: Option<&str>,
        status: http::StatusCode,
        headers: &http::HeaderMap,
        now: SystemTime,
    ) -> Result<Option<crate::rate_limit::Clamped>, Error> {
        Ok(self.pacer.observe(resource, status, headers, now))
    }

    /// Begins a clean shutdown: from now on no refresh or mint starts (not
    /// for a caller, not when due, not after a retry), no request not yet
    /// handed out is handed out, and no lease is written. Requests already
    /// out are still taken when answered, and every write, rewrite after a
    /// failure and read goes on. A driver stops once
    /// [`EngineStats::in_flight`] and [`EngineStats::unwritten`] are zero,
    /// or its grace period ends; the records of the grants still unwritten
    /// then ([`GrantView::is_written`]) hold tokens the store does not have.
    ///
    /// # Errors
    /// None today; the `Result` keeps every input alike.
    pub fn shut_down(&mut self, now: SystemTime) -> Result<(), Error> {
        let _ = now;
        self.stopping = true;
        Ok(())
    }
}

/// Polls: what to do next, and when to wake up.
impl Engine {
    /// The next thing to do at `now`, or `None` when there is nothing left.
    ///
    /// Call it until it returns `None` after every input and command, and
    /// act on each output (see [`Output`]). The write of a newly received
    /// refresh token comes ahead of every other output queued.
    ///
    /// `now` decides what may still be sent: a refresh whose lease would end
    /// before its answer is due (shared-store mode) is not handed out; a new
    /// lease is written instead. Grants waiting for a place under
    /// [`EngineSettings::max_in_flight`] or for the request budget start
    /// here, in order, as places free up.
    ///
    /// Requests and records are built here, from the grants' state at this
    /// moment, so a long queue costs little memory.
    #[must_use]
    pub fn poll_output(&mut self, now: SystemTime) -> Option<Output> {
        self.next_output(now)
    }

    /// The next instant at which [`handle_timeout`](Self::handle_timeout)
    /// must be called; `None` when nothing is scheduled. Ask again after
    /// every input and command and after [`poll_output`](Self::poll_output):
    /// the answer may move earlier. O(log n).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<SystemTime> {
        self.next_timeout()
    }
}

/// Getters.
impl Engine {
    /// The grants the engine holds: [`Grants::get`] one by id (O(1)),
    /// [`Grants::iter`] over all of them.
    #[must_use]
    pub fn grants(&self) -> Grants<'_> {
        Grants { engine: self }
    }

    /// Figures about the engine as a whole. O(cap).
    #[must_use]
    pub fn stats(&self) -> EngineStats {
        let (waiting, waited) = self.pacer.counts();
        let (budget_max, budget_interval) = self
            .pacer
            .app_budget()
            .map_or_else(|| self.settings.budget(), |b| (b.max(), b.interval()));
        EngineStats {
            grants: self.grants.len(),
            in_flight: self.count_in_flight(),
            waiting_for_budget: waiting,
            waited_for_budget: waited,
            writes_failing: self
                .grants
                .held()
                .filter(|&i| {
                    self.grants
                        .get(i)
                        .is_some_and(|s| s.write.store_failure.is_some())
                })
                .count(),
            unwritten: self
                .grants
                .held()
                .filter(|&i| {
                    self.grants
                        .get(i)
                        .is_some_and(|s| s.write.version > s.write.confirmed)
                })
                .count(),
            halted: self.halted,
            budget_max,
            budget_interval,
        }
    }
}

impl Engine {
    /// Whether the engine holds `grant`.
    pub(crate) fn holds(&self, grant: &str) -> bool {
        self.grants.find(grant).is_some()
    }

    /// [`ErrorKind::UnknownRequest`] if the engine never emitted record
    /// `version` of `grant`.
    fn check_emitted(&self, grant: &str, version: u64) -> Result<(), Error> {
        let idx = self.lookup(grant)?;
        match self.grants.get(idx) {
            Some(slot) => grant::never_emitted(slot, grant, version),
            None => Err(unknown_grant(grant)),
        }
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
