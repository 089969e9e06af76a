//! Rate-limit figures from response headers, and `Retry-After`; documented
//! on [`RateLimit`].

use crate::time::saturating_add;
use std::time::{Duration, SystemTime};

use http::HeaderMap;

/// The longest wait a `Retry-After` is read as: 1 hour.
///
/// Far longer than HighLevel's burst window (10 s); a wait the server asks
/// for up to this long is honoured as sent. A longer one (say, to the end of
/// an exhausted daily quota) is read as one hour: the retry after it costs
/// one request, and is answered with a new `Retry-After` if the server still
/// means it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60 * 60);

/// The longest burst window `X-RateLimit-Interval-Milliseconds` is read as:
/// 60 s, six times HighLevel's documented 10 s. A request budget that adopts
/// the window (see [`RequestBudget::observe`](crate::RequestBudget::observe))
/// then never spreads its requests thinner than its `max` per minute.
pub const MAX_RATE_LIMIT_INTERVAL: Duration = Duration::from_secs(60);

/// What `Retry-After` said (capped at [`MAX_RETRY_AFTER`]; see
/// [`RateLimit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryAfter {
    /// Wait this long (delta-seconds, or a date read against the answer's
    /// `Date` header). At most [`MAX_RETRY_AFTER`].
    Delay(Duration),
    /// Wait until then (an HTTP date, in an answer without a `Date` header).
    /// Read through [`until`](Self::until), which caps it.
    At(SystemTime),
}

impl RetryAfter {
    /// When a retry may be sent, at `now`: `now` plus the delay, or the date
    /// (`now` if it is past); never later than `now +` [`MAX_RETRY_AFTER`].
    #[must_use]
    pub fn until(self, now: SystemTime) -> SystemTime {
        let cap = saturating_add(now, MAX_RETRY_AFTER);
        match self {
            RetryAfter::Delay(d) => saturating_add(now, d.min(MAX_RETRY_AFTER)),
            RetryAfter::At(t) => t.max(now).min(cap),
        }
    }

    /// Whether [`until`](Self::until) cuts this value at `now`: a date more
    /// than [`MAX_RETRY_AFTER`] after `now` (a delay was capped when parsed,
    /// see [`Clamped::retry_after`]).
    #[must_use]
    pub fn exceeds_cap(self, now: SystemTime) -> bool {
        match self {
            RetryAfter::Delay(d) => d > MAX_RETRY_AFTER,
            RetryAfter::At(t) => t
                .duration_since(now)
                .is_ok_and(|ahead| ahead > MAX_RETRY_AFTER),
        }
    }
}

/// Which figures of an answer were over their cap and were read as the cap.
/// Each flag says the server asked for more than the crate grants: worth a
/// log line or an event, since it is either a hostile answer or a change on
/// the server's side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Clamped {
    /// `Retry-After` asked for a wait over [`MAX_RETRY_AFTER`].
    pub retry_after: bool,
    /// `X-RateLimit-Interval-Milliseconds` was over [`MAX_RATE_LIMIT_INTERVAL`].
    pub interval: bool,
}

impl Clamped {
    /// Whether any figure was clamped.
    #[must_use]
    pub fn any(self) -> bool {
        self.retry_after || self.interval
    }
}

/// The rate-limit headers of one answer. Every figure is optional.
///
/// Rate-limit figures from response headers, and `Retry-After`.
///
/// HighLevel documents `X-RateLimit-*` headers on every answer (100 requests per
/// 10 s burst, 200,000 a day, per app and resource). `Retry-After` is not
/// documented; it is honoured when present, as delta-seconds or an HTTP date
/// (<https://www.rfc-editor.org/rfc/rfc9110#field.retry-after>).
///
/// **Caps.** A header is input from the network, and one absurd value must not
/// stop an app for years: `Retry-After: 10000000000` (317 years) or
/// `Retry-After: Fri, 31 Dec 9999 23:59:59 GMT` would. So the figures that set
/// a wait are capped where they are parsed:
///
/// | Header | Read as at most | Flag |
/// |---|---|---|
/// | `Retry-After` (seconds, or a date) | [`MAX_RETRY_AFTER`] (1 hour) | [`Clamped::retry_after`] |
/// | `X-RateLimit-Interval-Milliseconds` | [`MAX_RATE_LIMIT_INTERVAL`] (60 s) | [`Clamped::interval`] |
///
/// A number too long for a `u64` counts as over the cap, not as unreadable.
/// A `Retry-After` date is read against the answer's own `Date` header when
/// it has one, and becomes a [`RetryAfter::Delay`] (so a skewed clock on
/// either side, or a `Date` itself far in the future, cannot stretch it).
/// Without a `Date` header it stays a [`RetryAfter::At`], and the cap is
/// applied when it is turned into an instant ([`RetryAfter::until`], which
/// [`RateLimit::retry_at`] and the request budget use; see
/// [`RetryAfter::exceeds_cap`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimit {
    /// `Retry-After`, if present and readable; capped at [`MAX_RETRY_AFTER`].
    pub retry_after: Option<RetryAfter>,
    /// `X-RateLimit-Limit-Daily`.
    pub daily_limit: Option<u64>,
    /// `X-RateLimit-Daily-Remaining`.
    pub daily_remaining: Option<u64>,
    /// `X-RateLimit-Interval-Milliseconds`: the burst window; capped at
    /// [`MAX_RATE_LIMIT_INTERVAL`].
    pub interval: Option<Duration>,
    /// `X-RateLimit-Max`: requests allowed per burst window.
    pub max: Option<u64>,
    /// `X-RateLimit-Remaining`: requests left in the current burst window.
    pub remaining: Option<u64>,
    /// The figures that were over their cap when parsed.
    pub clamped: Clamped,
}

/// A header's value as a number: `Ok(n)`, `Err(true)` for digits too many
/// for a `u64` (over any cap), `Err(false)` when absent or unreadable.
fn number(headers: &HeaderMap, name: &str) -> Result<u64, bool> {
    let text = headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .ok_or(false)?;
    text.parse::<u64>()
        .map_err(|_| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
}

impl RateLimit {
    /// Reads the headers; `None` when none of them is present. Caps
    /// `Retry-After` and the interval (see above).
    #[must_use]
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let num = |name: &str| number(headers, name).ok();
        let mut clamped = Clamped::default();
        let interval = match number(headers, "x-ratelimit-interval-milliseconds") {
            Ok(ms) if Duration::from_millis(ms) <= MAX_RATE_LIMIT_INTERVAL => {
                Some(Duration::from_millis(ms))
            }
            Ok(_) | Err(true) => {
                clamped.interval = true;
                Some(MAX_RATE_LIMIT_INTERVAL)
            }
            Err(false) => None,
        };
        let date = headers
            .get(http::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| parse_http_date(s.trim()));
        let retry_after = headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| read_retry_after(v, date))
            .map(|(r, over)| {
                clamped.retry_after = over;
                r
            });
        let r = RateLimit {
            retry_after,
            daily_limit: num("x-ratelimit-limit-daily"),
            daily_remaining: num("x-ratelimit-daily-remaining"),
            interval,
            max: num("x-ratelimit-max"),
            remaining: num("x-ratelimit-remaining"),
            clamped,
        };
        (r != RateLimit::default()).then_some(r)
    }

    /// When a retry may be sent, if the server said: `Retry-After` first
    /// (capped, see [`RetryAfter::until`]); else, when the burst window is
    /// used up, one window from `now`.
    #[must_use]
    pub fn retry_at(&self, now: SystemTime) -> Option<SystemTime> {
        match self.retry_after {
            Some(r) => Some(r.until(now)),
            None => match (self.remaining, self.interval) {
                (Some(0), Some(window)) => Some(saturating_add(now, window)),
                _ => None,
            },
        }
    }

    /// Whether a figure was over its cap: flagged when parsed
    /// ([`clamped`](Self::clamped)), or a `Retry-After` date more than
    /// [`MAX_RETRY_AFTER`] after `now` ([`RetryAfter::exceeds_cap`]).
    #[must_use]
    pub fn was_clamped(&self, now: SystemTime) -> bool {
        self.clamped.any() || self.retry_after.is_some_and(|r| r.exceeds_cap(now))
    }
}

/// Parses a `Retry-After` value on its own: delta-seconds (capped at
/// [`MAX_RETRY_AFTER`], digits past a `u64` included), or an HTTP date
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), kept as [`RetryAfter::At`] and capped
/// by [`RetryAfter::until`]. [`RateLimit::from_headers`] also reads a date
/// against the answer's `Date` header and says what it clamped.
#[must_use]
pub fn parse_retry_after(value: &str) -> Option<RetryAfter> {
    read_retry_after(value, None).map(|(r, _)| r)
}

/// A `Retry-After` value, and whether it was over the cap. A date is read
/// against `date` (the answer's `Date` header), when given, as a delay.
fn read_retry_after(value: &str, date: Option<SystemTime>) -> Option<(RetryAfter, bool)> {
    let value = value.trim();
    let delay = |d: Duration| {
        (
            RetryAfter::Delay(d.min(MAX_RETRY_AFTER)),
            d > MAX_RETRY_AFTER,
        )
    };
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(match value.parse::<u64>() {
            Ok(secs) => delay(Duration::from_secs(secs)),
            // More digits than a u64 holds: longer than any cap.
            Err(_) => (RetryAfter::Delay(MAX_RETRY_AFTER), true),
        });
    }
    let at = parse_http_date(value)?;
    Some(match date {
        Some(date) => delay(at.duration_since(date).unwrap_or_default()),
        None => (RetryAfter::At(at), false),
    })
}

/// An HTTP date (IMF-fixdate, RFC 850 or asctime), years 1970–9999.
fn parse_http_date(s: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn http_date_parses() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap().as_secs(), 784_111_777);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 PST"), None);
        assert_eq!(parse_http_date("garbage"), None);
        assert_eq!(
            parse_http_date("Sun, 06 Nov 300000000000 08:49:37 GMT"),
            None
        );
        assert_eq!(
            parse_http_date("Sun, 06 Nov 9223372036854775807 08:49:37 GMT"),
            None
        );
        assert!(parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT").is_some());
        assert_eq!(
            parse_retry_after(" 7 "),
            Some(RetryAfter::Delay(Duration::from_secs(7)))
        );
    }
}
