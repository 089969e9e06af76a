//! Where the `webhookId`s of accepted deliveries are remembered, to refuse
//! replays: the [`WebhookIds`] contract, in memory for one process, or in
//! the grant store's database for every process that shares it
//! ([`SqliteWebhookIds`], [`PostgresWebhookIds`]).
//!
//! HighLevel sends a delivery again when it did not get the answer to it.
//! Behind a load balancer that retry may reach another process: only a
//! memory every process shares refuses it there. A [`TokenService`]
//! started on a [`SqliteStore`] or a [`PostgresStore`] hands the store's
//! table to its [`OAuthRouter`] (see [`GrantStore::shared_webhook_ids`]);
//! on a [`MemoryStore`] the router keeps its own
//! [`SeenWebhooks`](hoopai_oauth::SeenWebhooks).
//!
//! # The table
//!
//! `hoopai_webhook_ids`, created by the store's migrations beside
//! `hoopai_grants`: one row per id (its UTF-8 bytes, at most
//! [`MAX_WEBHOOK_ID_BYTES`]), with the time (Unix milliseconds) after
//! which it may be dropped: the payload's `timestamp` plus the replay
//! window plus [`WEBHOOK_ID_CLOCK_SKEW`]. Recording is one
//! `INSERT … ON CONFLICT DO NOTHING`; its row count says whether the id was
//! new. Every [`PRUNE_EVERY`]th call of a handle (the first one included)
//! also deletes up to [`PRUNE_BATCH`] expired rows, oldest first through
//! an index on the expiry: eight rows a call on average, so expired rows go
//! eight times as fast as rows come. The table holds the ids still within
//! their delivery's window and skew, plus at most about
//! [`PRUNE_EVERY`] expired ones per process in a steady flow; after a burst
//! it never holds more than it held at its peak, and sheds the backlog at
//! [`PRUNE_BATCH`] rows a turn. (Measured, `docs/webhooks.md`: deleting a
//! few rows on every call tripled the cost of a call on Postgres; in
//! batches, pruning costs next to nothing.)
//!
//! [`TokenService`]: crate::TokenService
//! [`OAuthRouter`]: crate::OAuthRouter
//! [`SqliteStore`]: crate::SqliteStore
//! [`PostgresStore`]: crate::PostgresStore
//! [`MemoryStore`]: crate::MemoryStore
//! [`GrantStore::shared_webhook_ids`]: super::GrantStore::shared_webhook_ids

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hoopai_oauth::{MAX_WEBHOOK_ID_BYTES, Recorded, WebhookIdStore};

use super::StoreError;

#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

#[cfg(feature = "postgres")]
pub use postgres::PostgresWebhookIds;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteWebhookIds;

/// The future [`WebhookIds::record`] returns.
pub type RecordFuture<'a> = Pin<Box<dyn Future<Output = Result<Recorded, StoreError>> + Send + 'a>>;

/// The future [`WebhookIds::forget`] returns.
pub type ForgetFuture<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// How much the clocks of the processes sharing a store may disagree:
/// 60 s. The stores keep each id this much longer than the replay window
/// asks; change it with [`SqliteWebhookIds::clock_skew`] or
/// [`PostgresWebhookIds::clock_skew`].
pub const WEBHOOK_ID_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Every how many calls to record an id a handle on a table prunes it (of
/// up to [`PRUNE_BATCH`] expired rows).
pub const PRUNE_EVERY: u64 = 64;

/// How many expired rows one prune deletes at most: eight per call on
/// average.
pub const PRUNE_BATCH: usize = 512;

/// Counts the calls of a handle (and its clones): whether a call prunes.
#[derive(Debug, Clone, Default)]
pub(crate) struct PruneTurns(Arc<AtomicU64>);

impl PruneTurns {
    /// Whether the call taking this turn prunes.
    pub(crate) fn next(&self) -> bool {
        self.0.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == 0
    }
}

/// Where the webhook route records the `webhookId`s it accepted, to refuse
/// replays: the contract of [`WebhookIdStore`], async.
///
/// The store must record atomically (insert if absent, and say whether it
/// was there, in one step: `INSERT … ON CONFLICT DO NOTHING` and the row
/// count), keep each id at least until `timestamp + window` (plus the clock
/// skew between processes), and answer [`Recorded::BeyondMemory`] for a
/// delivery older than what it still remembers. The route records before it
/// acts, and calls [`forget`](Self::forget) when acting failed in a way the
/// sender's retry should repair (the service was stopping, a record could
/// not be deleted).
///
/// Implementations: [`SqliteWebhookIds`] and [`PostgresWebhookIds`] (one
/// memory for every process on the store; what the routes use by default
/// on those stores), and any `Mutex<T>` of a [`WebhookIdStore`] (in memory,
/// one process; the default on other stores is a `Mutex<`[`SeenWebhooks`]`>`
/// of [`DEFAULT_SEEN_CAPACITY`] ids).
///
/// [`SeenWebhooks`]: hoopai_oauth::SeenWebhooks
/// [`DEFAULT_SEEN_CAPACITY`]: hoopai_oauth::DEFAULT_SEEN_CAPACITY
pub trait WebhookIds: Send + Sync + 'static {
    /// Records `webhook_id`, sent at `timestamp`, when it is `now` and
    /// deliveries older than `window` are refused anyway.
    ///
    /// # Errors
    /// [`StoreError`]: the delivery is then answered `500` and not acted on
    /// (the sender retries it).
    fn record<'a>(
        &'a self,
        webhook_id: &'a str,
        timestamp: SystemTime,
        now: SystemTime,
        window: Duration,
    ) -> RecordFuture<'a>;

    /// Forgets `webhook_id` again, so that the sender's retry of a delivery
    /// that was recorded but not acted on is acted on. The default does
    /// nothing (the id stays remembered, and the retry is refused as a
    /// duplicate).
    ///
    /// # Errors
    /// [`StoreError`] if the store failed; the id may stay remembered.
    fn forget<'a>(&'a self, webhook_id: &'a str) -> ForgetFuture<'a> {
        let _ = webhook_id;
        Box::pin(std::future::ready(Ok(())))
    }
}

impl<T: WebhookIdStore + Send + 'static> WebhookIds for Mutex<T> {
    fn record<'a>(
        &'a self,
        webhook_id: &'a str,
        timestamp: SystemTime,
        now: SystemTime,
        window: Duration,
    ) -> RecordFuture<'a> {
        let recorded = self
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(webhook_id, timestamp, now, window);
        Box::pin(std::future::ready(Ok(recorded)))
    }
}

/// One call to record an id in a table, checked and turned into columns.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The id's UTF-8 bytes.
    pub(crate) id: Vec<u8>,
    /// When the row may be dropped, in Unix milliseconds.
    pub(crate) expires_ms: i64,
    /// `now`, in Unix milliseconds: rows that expired before it are pruned.
    pub(crate) now_ms: i64,
    /// A random number written with the row, so that a call that failed
    /// after its insert may have landed removes only its own row.
    pub(crate) claim: i64,
    /// Whether this call prunes (see [`PruneTurns`]).
    pub(crate) prune: bool,
}

impl Entry {
    /// The entry for a delivery, or what to answer without asking the
    /// table: [`Recorded::BeyondMemory`] for a delivery older than `now -
    /// window` (its row may be gone from the table, and the verifier's
    /// window refuses it anyway).
    ///
    /// Any process may drop a row once its own clock is past `timestamp +
    /// window + skew`; while the clocks agree within `skew`, every process
    /// that still holds the delivery within its window finds the row.
    pub(crate) fn new(
        store: &'static str,
        webhook_id: &str,
        timestamp: SystemTime,
        now: SystemTime,
        window: Duration,
        skew: Duration,
    ) -> Result<Result<Self, Recorded>, StoreError> {
        check_id(webhook_id)?;
        if now.checked_sub(window).is_some_and(|edge| timestamp < edge) {
            return Ok(Err(Recorded::BeyondMemory));
        }
        let keep = window.saturating_add(skew);
        let expires = timestamp.checked_add(keep).unwrap_or(timestamp);
        let mut claim = [0u8; 8];
        getrandom::fill(&mut claim).map_err(|e| StoreError::backend(store, e))?;
        Ok(Ok(Entry {
            id: webhook_id.as_bytes().to_vec(),
            expires_ms: unix_ms(expires),
            now_ms: unix_ms(now),
            claim: i64::from_le_bytes(claim),
            prune: false,
        }))
    }
}

/// Refuses an id no table keeps: over [`MAX_WEBHOOK_ID_BYTES`] (the parser
/// refuses those too, so only a direct caller sees this).
pub(crate) fn check_id(webhook_id: &str) -> Result<(), StoreError> {
    if webhook_id.len() > MAX_WEBHOOK_ID_BYTES {
        return Err(StoreError::InvalidWebhookId {
            reason: format!(
                "the webhookId is {} bytes long, over the {MAX_WEBHOOK_ID_BYTES}-byte limit",
                webhook_id.len()
            ),
        });
    }
    Ok(())
}

/// `t` in Unix milliseconds, negative before 1970, saturating.
pub(crate) fn unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// [`Recorded::New`] when the insert added a row, [`Recorded::Duplicate`]
/// when the id was there.
pub(crate) fn recorded(inserted: u64) -> Recorded {
    if inserted == 1 {
        Recorded::New
    } else {
        Recorded::Duplicate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn deliveries_older_than_the_window_are_beyond_memory() {
        let window = Duration::from_secs(300);
        let skew = Duration::from_secs(60);
        let now = at(10_000);
        let old = Entry::new("test", "id", at(10_000 - 301), now, window, skew).unwrap();
        assert_eq!(old.unwrap_err(), Recorded::BeyondMemory);
        let edge = Entry::new("test", "id", at(10_000 - 300), now, window, skew)
            .unwrap()
            .unwrap();
        assert_eq!(edge.expires_ms, (10_000 + 60) * 1000);
        assert_eq!(edge.now_ms, 10_000_000);
        let ahead = Entry::new("test", "id", at(10_300), now, window, skew)
            .unwrap()
            .unwrap();
        assert_eq!(ahead.expires_ms, (10_300 + 360) * 1000);
    }

    #[test]
    fn ids_over_the_limit_are_refused() {
        let long = "x".repeat(MAX_WEBHOOK_ID_BYTES + 1);
        let e =
            Entry::new("test", &long, at(1), at(1), Duration::ZERO, Duration::ZERO).unwrap_err();
        assert!(matches!(e, StoreError::InvalidWebhookId { .. }), "{e}");
        assert!(check_id(&"é".repeat(MAX_WEBHOOK_ID_BYTES / 2)).is_ok());
    }

    #[test]
    fn times_before_1970_are_negative() {
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_millis(1500)), -1500);
        assert_eq!(unix_ms(at(2)), 2000);
    }
}
