//! The rate limit the fake can enforce: at most `max` requests accepted in any
//! `interval`, else `429` with the documented `X-RateLimit-*` headers.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use http::StatusCode;

use super::wire::Reply;

/// A rate limit for the fake to enforce; see [`FakeServer::set_rate_limit`](super::FakeServer::set_rate_limit).
///
/// The window slides: a request is refused when `max` requests were already
/// accepted in the `interval` before it (refused requests do not count). A
/// client that never exceeds that also passes a server counting fixed windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FakeRateLimit {
    /// Requests accepted per `interval` (`X-RateLimit-Max`).
    pub max: u64,
    /// The window (`X-RateLimit-Interval-Milliseconds`).
    pub interval: Duration,
    /// Whether a `429` also carries `Retry-After` (whole seconds, rounded up).
    /// HighLevel does not document it (`docs/highlevel-facts.md`, "Rate
    /// limits"), so it is off by default.
    pub retry_after: bool,
}

impl FakeRateLimit {
    /// HighLevel's documented burst limit: 100 requests per 10 s, no `Retry-After`.
    #[must_use]
    pub fn highlevel() -> Self {
        Self::new(100, Duration::from_secs(10))
    }

    /// `max` requests per `interval` (at least 1 and 1 ms), no `Retry-After`.
    #[must_use]
    pub fn new(max: u64, interval: Duration) -> Self {
        FakeRateLimit {
            max: max.max(1),
            interval: interval.max(Duration::from_millis(1)),
            retry_after: false,
        }
    }

    /// The same limit, with `Retry-After` on every `429`.
    #[must_use]
    pub fn with_retry_after(mut self) -> Self {
        self.retry_after = true;
        self
    }

    pub(super) fn interval_ms(&self) -> u64 {
        u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX)
    }
}

/// The sliding window: the times of the requests accepted in the last interval.
#[derive(Debug, Clone)]
pub(super) struct Limiter {
    pub(super) rule: FakeRateLimit,
    accepted: VecDeque<SystemTime>,
}

impl Limiter {
    pub(super) fn new(rule: FakeRateLimit) -> Self {
        Limiter {
            rule,
            accepted: VecDeque::new(),
        }
    }

    /// Admits a request at `now`, returning what remains of the window; or
    /// refuses it, returning how long until one more would be admitted.
    pub(super) fn admit(&mut self, now: SystemTime) -> Result<u64, Duration> {
        if let Some(edge) = now.checked_sub(self.rule.interval) {
            while self.accepted.front().is_some_and(|t| *t <= edge) {
                self.accepted.pop_front();
            }
        }
        let used = u64::try_from(self.accepted.len()).unwrap_or(u64::MAX);
        if used >= self.rule.max {
            let oldest = self.accepted.front().copied().unwrap_or(now);
            let free_at = oldest.checked_add(self.rule.interval).unwrap_or(now);
            return Err(free_at.duration_since(now).unwrap_or_default());
        }
        self.accepted.push_back(now);
        Ok(self.rule.max - used - 1)
    }

    /// The `429` answer.
    pub(super) fn refusal(&self, wait: Duration) -> Reply {
        let mut r = Reply::nest(
            StatusCode::TOO_MANY_REQUESTS,
            "ThrottlerException: Too Many Requests",
        );
        if self.rule.retry_after {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            r.retry_after = Some(secs.max(1));
        }
        r.exhausted = true;
        r
    }
}
