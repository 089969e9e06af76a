//! Replay protection: the timestamp window and the set of `webhookId`s seen.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

/// What a store of seen webhook ids answers when asked to record one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Recorded {
    /// The id was not seen before and is now recorded: accept the delivery.
    New,
    /// The id was seen before: refuse it as a replay.
    Duplicate,
    /// The delivery is older than what the store still remembers, so it
    /// cannot be shown to be new: refuse it as stale.
    BeyondMemory,
}

/// A store of the `webhookId`s already accepted, for replay checks.
///
/// [`SeenWebhooks`] is the crate's bounded in-memory one. An app that keeps
/// the ids in its own database (several processes behind one webhook URL)
/// implements this trait over it, or, with an async store, calls
/// [`WebhookVerifier::verify_unrecorded`](super::WebhookVerifier::verify_unrecorded)
/// and [`WebhookVerifier::accept`](super::WebhookVerifier::accept) around its
/// own write. Either way the store must:
///
/// 1. **record atomically**: insert the id if absent and report whether it
///    was there, in one step (`INSERT … ON CONFLICT DO NOTHING` and the row
///    count; `SET key value NX`), so two processes given the same delivery
///    cannot both see [`Recorded::New`];
/// 2. **keep each id at least until `timestamp + window`** has passed (plus
///    the clock skew between your processes): after that the delivery is
///    refused as stale by the window check, so the id may be dropped;
/// 3. **record before acting**: act on the event only after `New`. If acting
///    then fails, HighLevel's retry carries the same `webhookId` and is
///    refused as a duplicate, so make the action durable (queue it) first, or
///    delete the id again when it fails.
pub trait WebhookIdStore {
    /// Records `webhook_id`, whose payload says it was sent at `timestamp`,
    /// when the time is `now` and deliveries older than `window` are refused.
    fn record(
        &mut self,
        webhook_id: &str,
        timestamp: SystemTime,
        now: SystemTime,
        window: Duration,
    ) -> Recorded;
}

/// The default capacity of [`SeenWebhooks`].
pub const DEFAULT_SEEN_CAPACITY: usize = 50_000;

/// A bounded, deterministic set of the `webhookId`s accepted, for one
/// process. It reads no clock: entries expire by their payload timestamps.
///
/// It keeps a *floor*, a time below which it remembers nothing, and
/// guarantees: every id recorded with a timestamp at or above the floor is
/// remembered, and any delivery below the floor is answered
/// [`Recorded::BeyondMemory`] (refused as stale). The floor only rises:
///
/// - to `now - window` on every call, since the window check refuses older
///   deliveries anyway (so a `now` that goes backwards opens no gap);
/// - past the oldest entry when the set is full and an entry must be evicted.
///   Deliveries that old are then refused, never accepted twice: a set too
///   small fails closed.
///
/// Memory: at most `capacity` entries of about 100 bytes plus the id's
/// length (ids are 20–40 characters); [`DEFAULT_SEEN_CAPACITY`] (50,000)
/// holds ten minutes of deliveries at over 80 a second, in well under 10 MiB.
/// Each call costs O(log n) plus the entries expired.
#[derive(Debug, Clone)]
pub struct SeenWebhooks {
    capacity: usize,
    by_id: HashMap<Box<str>, SystemTime>,
    by_time: BTreeSet<(SystemTime, Box<str>)>,
    floor: Option<SystemTime>,
}

impl Default for SeenWebhooks {
    fn default() -> Self {
        Self::new(DEFAULT_SEEN_CAPACITY)
    }
}

impl SeenWebhooks {
    /// An empty set holding at most `capacity` ids (at least 1).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        SeenWebhooks {
            capacity: capacity.max(1),
            by_id: HashMap::new(),
            by_time: BTreeSet::new(),
            floor: None,
        }
    }

    /// How many ids are remembered.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no id is remembered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The most ids it remembers.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The time below which it remembers nothing, if any yet.
    #[must_use]
    pub fn floor(&self) -> Option<SystemTime> {
        self.floor
    }

    /// Whether `webhook_id` is remembered.
    #[must_use]
    pub fn contains(&self, webhook_id: &str) -> bool {
        self.by_id.contains_key(webhook_id)
    }

    /// Raises the floor to `to` (never lowers it) and forgets what is below.
    fn raise_floor(&mut self, to: SystemTime) {
        if self.floor.is_some_and(|f| f >= to) {
            return;
        }
        self.floor = Some(to);
        while let Some((t, _)) = self.by_time.first() {
            if *t >= to {
                break;
            }
            if let Some((_, id)) = self.by_time.pop_first() {
                self.by_id.remove(&id);
            }
        }
    }
}

impl WebhookIdStore for SeenWebhooks {
    fn record(
        &mut self,
        webhook_id: &str,
        timestamp: SystemTime,
        now: SystemTime,
        window: Duration,
    ) -> Recorded {
        if let Some(edge) = now.checked_sub(window) {
            self.raise_floor(edge);
        }
        if self.floor.is_some_and(|f| timestamp < f) {
            return Recorded::BeyondMemory;
        }
        if self.by_id.contains_key(webhook_id) {
            return Recorded::Duplicate;
        }
        let id: Box<str> = webhook_id.into();
        self.by_id.insert(id.clone(), timestamp);
        self.by_time.insert((timestamp, id));
        if self.by_id.len() > self.capacity {
            // Forget the oldest entries: everything at their time goes, and
            // the floor moves just past it, so they can never come back as new.
            if let Some((oldest, _)) = self.by_time.first() {
                let past = oldest
                    .checked_add(Duration::from_nanos(1))
                    .unwrap_or(*oldest);
                self.raise_floor(past);
            }
            // Only at the very end of time can the floor not move past it.
            while self.by_id.len() > self.capacity {
                if let Some((_, id)) = self.by_time.pop_first() {
                    self.by_id.remove(&id);
                }
            }
        }
        Recorded::New
    }
}
