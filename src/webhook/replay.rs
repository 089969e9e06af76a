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

/// The default capacity of [`SeenWebhooks`], in ids.
pub const DEFAULT_SEEN_CAPACITY: usize = 50_000;

/// The default memory budget of [`SeenWebhooks`], in bytes: 16 MiB, as
/// counted by [`SeenWebhooks::bytes`].
pub const DEFAULT_SEEN_MAX_BYTES: usize = 16 * 1024 * 1024;

/// What one remembered id is counted as, besides its bytes (held twice):
/// the two map entries, the time, the boxes' headers, with room to spare.
const ENTRY_OVERHEAD: usize = 128;

/// The bytes one remembered id is counted as.
fn entry_bytes(id: &str) -> usize {
    2 * id.len() + ENTRY_OVERHEAD
}

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
/// - past the oldest entry when the set is full (by count or by bytes) and an
///   entry must be evicted. Deliveries that old are then refused, never
///   accepted twice: a set too small fails closed.
///
/// Memory is bounded twice: at most `capacity` ids, and at most `max_bytes`
/// as counted by [`bytes`](Self::bytes) (each id's bytes twice, plus 128 for
/// its entries). [`DEFAULT_SEEN_CAPACITY`] (50,000) holds ten minutes of
/// deliveries at over 80 a second; HighLevel's ids are 36-byte UUIDs, about
/// 200 counted bytes each, so the default budget [`DEFAULT_SEEN_MAX_BYTES`]
/// (16 MiB) never binds before the count does for them. Ids longer than
/// [`MAX_WEBHOOK_ID_BYTES`](crate::MAX_WEBHOOK_ID_BYTES) never get here (the
/// parser refuses them), and a caller recording such an id directly only
/// makes the set evict sooner. Each call costs O(log n) plus the entries
/// expired.
#[derive(Debug, Clone)]
pub struct SeenWebhooks {
    capacity: usize,
    max_bytes: usize,
    bytes: usize,
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
    /// An empty set holding at most `capacity` ids (at least 1), within
    /// [`DEFAULT_SEEN_MAX_BYTES`].
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        SeenWebhooks {
            capacity: capacity.max(1),
            max_bytes: DEFAULT_SEEN_MAX_BYTES,
            bytes: 0,
            by_id: HashMap::new(),
            by_time: BTreeSet::new(),
            floor: None,
        }
    }

    /// The same set with a memory budget of `max_bytes`, as counted by
    /// [`bytes`](Self::bytes). A set over its budget evicts its oldest
    /// entries and raises its floor past them, as when full by count: a
    /// budget too small fails closed.
    #[must_use]
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
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

    /// The memory the remembered ids are counted as: each id's bytes twice
    /// (it is a key of two maps) plus 128 bytes for its entries.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.bytes
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

    /// Whether it holds more than it may.
    fn over(&self) -> bool {
        self.by_id.len() > self.capacity || (self.bytes > self.max_bytes && self.by_id.len() > 1)
    }

    /// Forgets the oldest entry.
    fn forget_oldest(&mut self) {
        if let Some((_, id)) = self.by_time.pop_first() {
            self.bytes = self.bytes.saturating_sub(entry_bytes(&id));
            self.by_id.remove(&id);
        }
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
            self.forget_oldest();
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
        self.bytes += entry_bytes(&id);
        self.by_id.insert(id.clone(), timestamp);
        self.by_time.insert((timestamp, id));
        while self.over() {
            // Forget the oldest entries: everything at their time goes, and
            // the floor moves just past it, so they can never come back as new.
            let Some((oldest, _)) = self.by_time.first() else {
                break;
            };
            let oldest = *oldest;
            match oldest.checked_add(Duration::from_nanos(1)) {
                Some(past) => self.raise_floor(past),
                // Only at the very end of time can the floor not move past it.
                None => self.forget_oldest(),
            }
        }
        Recorded::New
    }
}
