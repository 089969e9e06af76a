//! Rate-limit figures from response headers, and `Retry-After`.
//!
//! HighLevel documents `X-RateLimit-*` headers on every answer (100 requests per
//! 10 s burst, 200,000 a day, per app and resource). `Retry-After` is not
//! documented; it is honoured when present, as delta-seconds or an HTTP date.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

/// What `Retry-After` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryAfter {
    /// Wait this long (delta-seconds).
    Delay(Duration),
    /// Wait until then (an HTTP date).
    At(SystemTime),
}

/// The rate-limit headers of one answer. Every figure is optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimit {
    /// `Retry-After`, if present and readable.
    pub retry_after: Option<RetryAfter>,
    /// `X-RateLimit-Limit-Daily`.
    pub daily_limit: Option<u64>,
    /// `X-RateLimit-Daily-Remaining`.
    pub daily_remaining: Option<u64>,
    /// `X-RateLimit-Interval-Milliseconds`: the burst window.
    pub interval: Option<Duration>,
    /// `X-RateLimit-Max`: requests allowed per burst window.
    pub max: Option<u64>,
    /// `X-RateLimit-Remaining`: requests left in the current burst window.
    pub remaining: Option<u64>,
}

impl RateLimit {
    /// Reads the headers; `None` when none of them is present.
    #[must_use]
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let num = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.trim().parse::<u64>().ok())
        };
        let r = RateLimit {
            retry_after: headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after),
            daily_limit: num("x-ratelimit-limit-daily"),
            daily_remaining: num("x-ratelimit-daily-remaining"),
            interval: num("x-ratelimit-interval-milliseconds").map(Duration::from_millis),
            max: num("x-ratelimit-max"),
            remaining: num("x-ratelimit-remaining"),
        };
        (r != RateLimit::default()).then_some(r)
    }

    /// When a retry may be sent, if the server said: `Retry-After` first; else,
    /// when the burst window is used up, one window from `now`.
    #[must_use]
    pub fn retry_at(&self, now: SystemTime) -> Option<SystemTime> {
        match self.retry_after {
            Some(RetryAfter::Delay(d)) => Some(saturating_add(now, d)),
            Some(RetryAfter::At(t)) => Some(t.max(now)),
            None => match (self.remaining, self.interval) {
                (Some(0), Some(window)) => Some(saturating_add(now, window)),
                _ => None,
            },
        }
    }
}

/// `t + d`, or the latest representable time instead of a panic.
pub(crate) fn saturating_add(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d).unwrap_or_else(|| {
        // Halve until it fits: the platform's range is finite and unknown.
        let mut step = d;
        let mut out = t;
        while step > Duration::from_secs(1) {
            step /= 2;
            if let Some(next) = out.checked_add(step) {
                out = next;
            }
        }
        out
    })
}

/// Parses `Retry-After`: delta-seconds, or an HTTP date
/// (`Sun, 06 Nov 1994 08:49:37 GMT`).
#[must_use]
pub fn parse_retry_after(value: &str) -> Option<RetryAfter> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(RetryAfter::Delay(Duration::from_secs(secs)));
    }
    parse_http_date(value).map(RetryAfter::At)
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
