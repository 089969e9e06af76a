//! The request budget; documented on [`RequestBudget`].

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use crate::rate_limit::RateLimit;
use crate::time::saturating_add;

/// HighLevel's documented burst budget: requests per [`HIGHLEVEL_BURST_INTERVAL`].
pub const HIGHLEVEL_BURST_MAX: u32 = 100;

/// HighLevel's documented burst window.
pub const HIGHLEVEL_BURST_INTERVAL: Duration = Duration::from_secs(10);

/// The largest budget adopted from a server's headers, per interval: larger
/// figures are read as this, so a hostile or broken header cannot make the
/// budget unbounded.
pub const BUDGET_MAX_ADOPTED: u32 = 100_000;

/// How long after one interval a spent token comes back by default, at most:
/// it covers the difference in latency between two requests (see the module
/// docs). The default margin is 2.5% of the interval, capped at this: 250 ms
/// for HighLevel's 10 s window, 25 ms for a 1 s window.
pub const DEFAULT_BUDGET_MARGIN: Duration = Duration::from_millis(250);

/// The shortest interval adopted from a server's headers.
pub const BUDGET_MIN_INTERVAL: Duration = Duration::from_millis(1);

/// A request budget: at most `max` requests in any `interval`.
///
/// - [`try_spend`](Self::try_spend) before each request; when it refuses, it
///   says when the next token is free;
/// - [`observe`](Self::observe) the [`RateLimit`] of every answer (and of a
///   429): the budget adopts the server's `max` and interval, counts requests
///   the server saw but this budget did not (other processes of the same app)
///   as spent now, and honours `Retry-After`.
///
/// Memory is bounded by the spends within one interval (at most `max`
/// entries, and one entry per observation of spends made elsewhere).
///
/// A request budget per app: a token bucket sized to HighLevel's burst limit,
/// that follows the server's `X-RateLimit-*` headers. Pure: time is an argument.
///
/// HighLevel allows 100 requests per 10 s per app and resource, and reports
/// the figures in `X-RateLimit-Max`, `X-RateLimit-Interval-Milliseconds` and
/// `X-RateLimit-Remaining` (HighLevel's OAuth FAQ; `docs/highlevel-facts.md`,
/// "Rate limits"). How the server counts
/// its window (fixed or sliding) is not documented, so the budget is built to
/// pass both: each token spent comes back one interval after it was spent,
/// plus a small margin ([`DEFAULT_BUDGET_MARGIN`]). At most `max` requests
/// then go out in **any** interval, and nearly `max` per interval is still
/// reached. (A bucket that refills continuously at `max / interval` lets up to
/// `2 × max` out within one interval — a full bucket plus its refill — and
/// draws 429s from a server counting windows.)
///
/// The margin is there because the server counts a request when it arrives,
/// and the budget when it is sent: a request sent exactly one interval after
/// an earlier one, over a faster path (a reused connection, after the first
/// went through a handshake), can arrive less than one interval after it, and
/// find the server's window still full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestBudget {
    max: u32,
    interval: Duration,
    /// Added to `interval` before a spent token comes back; `None`: the
    /// default, 2.5% of the interval up to [`DEFAULT_BUDGET_MARGIN`].
    margin: Option<Duration>,
    /// When tokens were spent, with how many, in the order spent.
    spent: VecDeque<(SystemTime, u32)>,
    blocked_until: Option<SystemTime>,
}

impl Default for RequestBudget {
    /// HighLevel's documented 100 requests per 10 s.
    fn default() -> Self {
        Self::new(HIGHLEVEL_BURST_MAX, HIGHLEVEL_BURST_INTERVAL)
    }
}

impl RequestBudget {
    /// A budget of `max` requests (at least 1, at most [`BUDGET_MAX_ADOPTED`]) in any
    /// `interval` (at least [`BUDGET_MIN_INTERVAL`]), all available now.
    #[must_use]
    pub fn new(max: u32, interval: Duration) -> Self {
        RequestBudget {
            max: max.clamp(1, BUDGET_MAX_ADOPTED),
            interval: interval.max(BUDGET_MIN_INTERVAL),
            margin: None,
            spent: VecDeque::new(),
            blocked_until: None,
        }
    }

    /// The same budget with spent tokens coming back `margin` after one
    /// interval instead of the default (2.5% of the interval, at most
    /// [`DEFAULT_BUDGET_MARGIN`]); zero: exactly one interval after they were
    /// spent.
    #[must_use]
    pub fn with_margin(mut self, margin: Duration) -> Self {
        self.margin = Some(margin);
        self
    }

    /// How long after one interval a spent token comes back.
    #[must_use]
    pub fn margin(&self) -> Duration {
        self.margin
            .unwrap_or_else(|| (self.interval / 40).min(DEFAULT_BUDGET_MARGIN))
    }

    /// New figures for the budget, keeping what was spent (clamped as in
    /// [`new`](Self::new)).
    pub(crate) fn resize(&mut self, max: u32, interval: Duration) {
        self.max = max.clamp(1, BUDGET_MAX_ADOPTED);
        self.interval = interval.max(BUDGET_MIN_INTERVAL);
    }

    /// When a token spent at `t` comes back.
    fn back_at(&self, t: SystemTime) -> SystemTime {
        saturating_add(saturating_add(t, self.interval), self.margin())
    }

    /// Requests allowed per interval.
    #[must_use]
    pub fn max(&self) -> u32 {
        self.max
    }

    /// The interval.
    #[must_use]
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Tokens spent within the interval before `now` (spends recorded after
    /// `now`, if time went backwards, count too).
    #[must_use]
    pub fn spent(&self, now: SystemTime) -> u64 {
        self.spent
            .iter()
            .filter(|(t, _)| self.back_at(*t) > now)
            .map(|(_, n)| u64::from(*n))
            .sum()
    }

    /// Tokens available at `now` (0 while a `Retry-After` holds).
    #[must_use]
    pub fn available(&self, now: SystemTime) -> u32 {
        if self.blocked_until.is_some_and(|t| t > now) {
            return 0;
        }
        let left = u64::from(self.max).saturating_sub(self.spent(now));
        u32::try_from(left).unwrap_or(u32::MAX)
    }

    /// When the next token is available: `now` if one is, else the earliest
    /// instant after `now` when one is.
    #[must_use]
    pub fn next_available_at(&self, now: SystemTime) -> SystemTime {
        let blocked = self.blocked_until.filter(|t| *t > now);
        let over = self.spent(now).saturating_sub(u64::from(self.max) - 1);
        let freed = if over == 0 {
            now
        } else {
            // The `over`-th token to come back, in order of return.
            let mut returns: Vec<(SystemTime, u32)> = self
                .spent
                .iter()
                .map(|(t, n)| (self.back_at(*t), *n))
                .filter(|(back, _)| *back > now)
                .collect();
            returns.sort_unstable();
            let mut need = over;
            let mut at = now;
            for (back, n) in returns {
                at = back;
                need = need.saturating_sub(u64::from(n));
                if need == 0 {
                    break;
                }
            }
            at
        };
        blocked.map_or(freed, |b| b.max(freed))
    }

    /// Spends one token at `now` if one is available; else returns when the
    /// next one is (see [`next_available_at`](Self::next_available_at)).
    ///
    /// # Errors
    /// The instant to try again, when no token is available at `now`.
    pub fn try_spend(&mut self, now: SystemTime) -> Result<(), SystemTime> {
        self.forget_returned(now);
        if self.available(now) == 0 {
            return Err(self.next_available_at(now));
        }
        self.record(now, 1);
        Ok(())
    }

    /// Counts one request sent at `now` whether or not a token was
    /// available: a request that did not ask the budget (a code exchange,
    /// an API call made elsewhere by the same app).
    pub fn spend(&mut self, now: SystemTime) {
        self.forget_returned(now);
        self.record(now, 1);
    }

    /// Follows the rate-limit headers of an answer received at `now`:
    ///
    /// - `X-RateLimit-Max` and `X-RateLimit-Interval-Milliseconds`, when both
    ///   are present, replace the budget's figures (clamped to
    ///   [`BUDGET_MAX_ADOPTED`] and [`BUDGET_MIN_INTERVAL`]);
    /// - `X-RateLimit-Remaining`: when the server has seen more requests in
    ///   its window than this budget spent (another process of the same app),
    ///   the difference is counted as spent at `now`;
    /// - `Retry-After` (not documented, honoured when present): no token is
    ///   available before it (at most [`MAX_RETRY_AFTER`](crate::MAX_RETRY_AFTER)
    ///   from `now`).
    pub fn observe(&mut self, rate: &RateLimit, now: SystemTime) {
        if let (Some(max), Some(interval)) = (rate.max, rate.interval) {
            self.max = u32::try_from(max.clamp(1, u64::from(BUDGET_MAX_ADOPTED)))
                .unwrap_or(BUDGET_MAX_ADOPTED);
            self.interval = interval.max(BUDGET_MIN_INTERVAL);
        }
        self.forget_returned(now);
        if let Some(remaining) = rate.remaining {
            let server_used = u64::from(self.max).saturating_sub(remaining);
            let missing = server_used.saturating_sub(self.spent(now));
            if missing > 0 {
                self.record(now, u32::try_from(missing).unwrap_or(u32::MAX));
            }
        }
        let until = rate.retry_after.map(|r| r.until(now));
        if let Some(until) = until.filter(|t| *t > now) {
            self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
        }
    }

    /// A 429 received at `now`, with the answer's rate-limit figures if it had
    /// any: they are [observed](Self::observe), and the whole budget counts as
    /// spent now (the server says nothing is left, whatever its headers say),
    /// so the next token comes back one interval later, or at `Retry-After`.
    pub fn on_rate_limited(&mut self, rate: Option<&RateLimit>, now: SystemTime) {
        if let Some(rate) = rate {
            self.observe(rate, now);
        }
        let missing = u64::from(self.max).saturating_sub(self.spent(now));
        if missing > 0 {
            self.record(now, u32::try_from(missing).unwrap_or(u32::MAX));
        }
    }

    fn record(&mut self, now: SystemTime, n: u32) {
        match self.spent.back_mut() {
            Some((t, count)) if *t == now => *count = count.saturating_add(n),
            _ => self.spent.push_back((now, n)),
        }
    }

    /// Drops the spends whose tokens are back by `now`.
    fn forget_returned(&mut self, now: SystemTime) {
        let (interval, margin) = (self.interval, self.margin());
        self.spent
            .retain(|(t, _)| saturating_add(saturating_add(*t, interval), margin) > now);
        if self.blocked_until.is_some_and(|t| t <= now) {
            self.blocked_until = None;
        }
    }
}
