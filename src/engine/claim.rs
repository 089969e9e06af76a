//! The shared request budget: what the engine asks of the store, and what
//! the store answers. Documented on [`BudgetClaim`].

use std::time::Duration;

use super::outcome::StoreFailure;

/// How many windows back a store remembers who claimed on a key, for
/// [`ClaimOutcome::Granted::holders`](ClaimOutcome::Granted).
pub const HOLDERS_WINDOWS: u32 = 10;

/// A claim on the request budget that every process of the app shares
/// through its store ([`EngineSettings::shared_budget`](crate::EngineSettings::shared_budget)),
/// from [`Output::Claim`](crate::Output::Claim). The store answers with a
/// [`ClaimOutcome`], handed back with
/// [`Engine::handle_claim`](crate::Engine::handle_claim).
///
/// The store keeps, per [`key`](Self::key), the tokens granted and when;
/// each granted token counts against the key for [`window`](Self::window)
/// from the moment the store granted it, then is forgotten (a process that
/// dies holds nothing past one window). In one atomic step, with `used`
/// the tokens of the key granted within the last `window` and `used_others`
/// those granted as `others`:
///
/// - `sends granted = min(sends, max − used)`;
/// - `others granted = min(others, others_max − used_others, max − used − sends granted)`;
/// - `holders` = the distinct [`holder`](Self::holder)s that claimed on the
///   key (granted tokens or not) within the last [`HOLDERS_WINDOWS`]
///   windows, this one included;
/// - when fewer were granted than asked, `next_free_in` = how long until
///   the oldest counted token is forgotten.
///
/// So the app's counted requests (code exchanges, installed-locations
/// pages) never take more than `others_max` of any window, fleet-wide, and
/// the engines' refreshes and mints always have the rest.
///
/// The store measures time with one clock for every process (a database
/// server's own); `window` already covers the time a granted token may wait
/// before it is sent, and the difference in latency between two requests.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BudgetClaim {
    /// The budget drawn from: the app (its client id), or with
    /// [`BudgetKeying::Resource`](crate::BudgetKeying::Resource) the app and
    /// one Location or Company id (`client-id/resource-id`). At most 64 +
    /// 256 + 1 bytes.
    pub key: String,
    /// Who claims: the engine's lease holder name
    /// ([`EngineSettings::shared_store`](crate::EngineSettings::shared_store)).
    pub holder: String,
    /// Tokens wanted for the engine's own sends (refreshes and mints).
    pub sends: u32,
    /// Tokens wanted for requests the app counts
    /// ([`Engine::count_request`](crate::Engine::count_request)).
    pub others: u32,
    /// The budget: tokens per window, as the engine knows it now (from the
    /// answers' `X-RateLimit-Max`).
    pub max: u32,
    /// The most tokens counted requests may hold of one window
    /// ([`EngineSettings::counted_share`](crate::EngineSettings::counted_share)).
    pub others_max: u32,
    /// How long a granted token counts: the budget's interval, plus its
    /// margin, plus the time a granted token may wait to be sent.
    pub window: Duration,
}

impl BudgetClaim {
    /// A claim of `sends` tokens for the engine's sends and `others` for
    /// counted requests on `key`, by `holder`, from a budget of `max` per
    /// `window` of which counted requests hold at most `others_max`. For
    /// store tests and drivers of other languages; the engine builds its
    /// own.
    #[must_use]
    pub fn new(
        key: impl Into<String>,
        holder: impl Into<String>,
        (sends, others): (u32, u32),
        (max, others_max): (u32, u32),
        window: Duration,
    ) -> Self {
        BudgetClaim {
            key: key.into(),
            holder: holder.into(),
            sends,
            others,
            max,
            others_max,
            window,
        }
    }
}

/// What the store answered to a [`BudgetClaim`], handed back with
/// [`Engine::handle_claim`](crate::Engine::handle_claim).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClaimOutcome {
    /// The store counted these tokens as spent now; the engine uses them at
    /// once (a granted token not used soon is dropped: it was counted).
    Granted {
        /// Tokens granted for the engine's sends.
        sends: u32,
        /// Tokens granted for counted requests.
        others: u32,
        /// Processes that claimed on this budget recently (within
        /// [`HOLDERS_WINDOWS`] windows), this one included: the engine's
        /// share, should the store fail, is the budget divided by them.
        holders: u32,
        /// When fewer were granted than asked: how long until more tokens
        /// are free (zero if unknown).
        next_free_in: Duration,
    },
    /// The store could not answer (down, locked past its timeout, the call
    /// timed out). The engine goes on with a share of the budget of its own
    /// (the budget divided by the processes last seen drawing from it, or
    /// by two if it never heard) and claims again on a backoff.
    Failed(StoreFailure),
}
