//! `Retry-After` and `X-RateLimit-Interval-Milliseconds` are capped where
//! they are parsed, in both forms of `Retry-After` (seconds and HTTP date),
//! and the answer says when a figure was clamped. One 429 must not stop an
//! app for centuries.

mod common;

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use common::{response, t0};
use hoopai_oauth::{
    ErrorKind, MAX_RATE_LIMIT_INTERVAL, MAX_RETRY_AFTER, RateLimit, RequestBudget, RetryAfter,
    parse_retry_after, parse_token_response,
};

/// `t0` as an HTTP date, the `Date` header of the answers below.
const T0_DATE: &str = "Thu, 01 Jan 2026 00:00:00 GMT";

fn rate_of(headers: &[(&str, &str)]) -> RateLimit {
    let err = parse_token_response(response(429, headers, "")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    *err.rate_limit().unwrap()
}

fn secs_after_t0(t: Option<SystemTime>) -> String {
    t.map_or("none".to_owned(), |t| {
        format!("t0 + {}s", t.duration_since(t0()).unwrap().as_secs())
    })
}

/// Every shape of the two capped headers: the parsed figures, when a retry
/// may go out (seen at `t0`), whether the answer says it was clamped, and
/// the error as a user reads it.
#[test]
fn the_parsed_figures_for_every_shape_of_the_capped_headers() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("seconds under the cap", &[("Retry-After", "120")]),
        ("seconds at the cap", &[("Retry-After", "3600")]),
        ("seconds one over the cap", &[("Retry-After", "3601")]),
        ("317 years in seconds", &[("Retry-After", "10000000000")]),
        (
            "u64::MAX seconds",
            &[("Retry-After", "18446744073709551615")],
        ),
        (
            "more digits than a u64 holds",
            &[("Retry-After", "99999999999999999999999")],
        ),
        (
            "a date 2 minutes after the answer's Date",
            &[
                ("Date", T0_DATE),
                ("Retry-After", "Thu, 01 Jan 2026 00:02:00 GMT"),
            ],
        ),
        (
            "a date before the answer's Date",
            &[
                ("Date", T0_DATE),
                ("Retry-After", "Wed, 31 Dec 2025 23:00:00 GMT"),
            ],
        ),
        (
            "year 9999 with the answer's Date",
            &[
                ("Date", T0_DATE),
                ("Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT"),
            ],
        ),
        (
            "year 9999 in both Date and Retry-After",
            &[
                ("Date", "Fri, 31 Dec 9999 23:00:00 GMT"),
                ("Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT"),
            ],
        ),
        (
            "year 9999 without a Date",
            &[("Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT")],
        ),
        (
            "a date 2 minutes ahead without a Date",
            &[("Retry-After", "Thu, 01 Jan 2026 00:02:00 GMT")],
        ),
        (
            "the documented 10 s window, used up",
            &[
                ("X-RateLimit-Interval-Milliseconds", "10000"),
                ("X-RateLimit-Max", "100"),
                ("X-RateLimit-Remaining", "0"),
            ],
        ),
        (
            "a window of 115 days, used up",
            &[
                ("X-RateLimit-Interval-Milliseconds", "10000000000"),
                ("X-RateLimit-Max", "100"),
                ("X-RateLimit-Remaining", "0"),
            ],
        ),
        (
            "a window longer than a u64 of milliseconds",
            &[("X-RateLimit-Interval-Milliseconds", "184467440737095516150")],
        ),
        (
            "both over their caps",
            &[
                ("Retry-After", "86400"),
                ("X-RateLimit-Interval-Milliseconds", "600000"),
            ],
        ),
        ("not a number", &[("Retry-After", "soon")]),
        ("negative", &[("Retry-After", "-1")]),
    ];
    let mut out = String::new();
    for (name, headers) in cases {
        let err = parse_token_response(response(429, headers, "")).unwrap_err();
        let rate = err.rate_limit().unwrap();
        writeln!(out, "## {name}").unwrap();
        for (k, v) in *headers {
            writeln!(out, "{k}: {v}").unwrap();
        }
        writeln!(out, "retry_after: {:?}", rate.retry_after).unwrap();
        writeln!(out, "interval: {:?}", rate.interval).unwrap();
        writeln!(out, "clamped: {:?}", rate.clamped).unwrap();
        writeln!(out, "was_clamped at t0: {}", rate.was_clamped(t0())).unwrap();
        writeln!(out, "retry at: {}", secs_after_t0(err.retry_at(t0()))).unwrap();
        writeln!(out, "error: {err}\n").unwrap();

        // Whatever the header, no wait goes past the caps.
        if let Some(at) = err.retry_at(t0()) {
            assert!(
                at <= t0() + MAX_RETRY_AFTER.max(MAX_RATE_LIMIT_INTERVAL),
                "{name}"
            );
        }
        if let Some(interval) = rate.interval {
            assert!(interval <= MAX_RATE_LIMIT_INTERVAL, "{name}");
        }
    }
    snap!("rate_limit_caps", out);
}

#[test]
fn retry_after_of_ten_billion_seconds_is_an_hour_and_says_so() {
    let rate = rate_of(&[("Retry-After", "10000000000")]);
    assert_eq!(rate.retry_after, Some(RetryAfter::Delay(MAX_RETRY_AFTER)));
    assert!(rate.clamped.retry_after && !rate.clamped.interval);
    assert_eq!(rate.retry_at(t0()), Some(t0() + MAX_RETRY_AFTER));
    // Under the cap, nothing is flagged.
    let fine = rate_of(&[("Retry-After", "3600")]);
    assert!(!fine.clamped.any() && !fine.was_clamped(t0()));
}

#[test]
fn year_9999_is_an_hour_with_or_without_a_date_header() {
    let with_date = rate_of(&[
        ("Date", T0_DATE),
        ("Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT"),
    ]);
    assert_eq!(
        with_date.retry_after,
        Some(RetryAfter::Delay(MAX_RETRY_AFTER))
    );
    assert!(with_date.clamped.retry_after);

    let without = rate_of(&[("Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT")]);
    assert!(matches!(without.retry_after, Some(RetryAfter::At(_))));
    // Not flagged at parse time (no reference), but capped when used, and
    // the answer says so at `now`.
    assert!(!without.clamped.retry_after);
    assert!(without.was_clamped(t0()));
    assert_eq!(without.retry_at(t0()), Some(t0() + MAX_RETRY_AFTER));
    let r = parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT").unwrap();
    assert!(r.exceeds_cap(t0()));
    assert_eq!(r.until(t0()), t0() + MAX_RETRY_AFTER);
}

/// The request budget honours the capped value: one hostile 429 blocks it
/// for at most an hour, and an absurd window does not spread its tokens over
/// months.
#[test]
fn the_request_budget_is_blocked_at_most_the_cap() {
    for headers in [
        &[("Retry-After", "10000000000")][..],
        &[("Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT")][..],
        &[
            ("Date", T0_DATE),
            ("Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT"),
        ][..],
    ] {
        let rate = rate_of(headers);
        let mut budget = RequestBudget::default();
        budget.on_rate_limited(Some(&rate), t0());
        assert_eq!(budget.available(t0()), 0, "{headers:?}");
        assert_eq!(
            budget.next_available_at(t0()),
            t0() + MAX_RETRY_AFTER,
            "{headers:?}"
        );
        assert!(budget.available(t0() + MAX_RETRY_AFTER) > 0, "{headers:?}");
    }
    let rate = rate_of(&[
        ("X-RateLimit-Interval-Milliseconds", "10000000000"),
        ("X-RateLimit-Max", "100"),
    ]);
    let mut budget = RequestBudget::default();
    budget.observe(&rate, t0());
    assert_eq!(budget.interval(), MAX_RATE_LIMIT_INTERVAL);
    assert!(rate.clamped.interval);
    assert_eq!(budget.next_available_at(t0()), t0());
    let _ = Duration::ZERO;
}
