//! The request budget: HighLevel's 100 requests per 10 s, never more in any
//! window, following the server's headers; and against the fake's enforced
//! limit, a bulk of mints at the budget's pace draws no 429.

mod common;

use std::time::{Duration, SystemTime};

use common::{CLIENT_ID, CLIENT_SECRET, config, response, t0};
use hoopai_oauth::fake::{FakeRateLimit, FakeServer, Install};
use hoopai_oauth::{
    ErrorKind, HIGHLEVEL_BURST_INTERVAL, HIGHLEVEL_BURST_MAX, LocationTokenRequest, RateLimit,
    RequestBudget, TokenRequest, UserType, location_token_request, parse_location_token_response,
    parse_token_response, token_request,
};
use proptest::prelude::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn headers(pairs: &[(&str, &str)]) -> RateLimit {
    RateLimit::from_headers(response(200, pairs, "").headers()).expect("rate-limit headers")
}

/// Sends as fast as the budget allows: `n` sends, each at the earliest instant.
fn drain(budget: &mut RequestBudget, n: usize, start: SystemTime) -> Vec<SystemTime> {
    let mut now = start;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match budget.try_spend(now) {
            Ok(()) => out.push(now),
            Err(next) => {
                assert!(next > now, "the next token is later than now");
                now = next;
            }
        }
    }
    out
}

/// The most sends within any window of `interval`.
fn busiest_window(sends: &[SystemTime], interval: Duration) -> usize {
    let mut sorted = sends.to_vec();
    sorted.sort();
    let mut best = 0;
    let mut start = 0;
    for end in 0..sorted.len() {
        while sorted[end].duration_since(sorted[start]).unwrap() >= interval {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

#[test]
fn the_default_is_highlevels_documented_limit() {
    let mut budget = RequestBudget::default();
    assert_eq!(
        (budget.max(), budget.interval()),
        (HIGHLEVEL_BURST_MAX, HIGHLEVEL_BURST_INTERVAL)
    );
    assert_eq!(
        (HIGHLEVEL_BURST_MAX, HIGHLEVEL_BURST_INTERVAL.as_secs()),
        (100, 10)
    );
    for _ in 0..100 {
        budget.try_spend(t0()).unwrap();
    }
    assert_eq!(budget.available(t0()), 0);
    // Back one window after they were spent, plus the default margin (2.5%).
    assert_eq!(budget.margin(), ms(250));
    assert_eq!(budget.try_spend(t0()), Err(t0() + ms(10_250)));
    assert_eq!(budget.available(t0() + ms(10_249)), 0);
    assert_eq!(budget.available(t0() + ms(10_250)), 100);
}

#[test]
fn a_thousand_requests_take_ninety_seconds_and_never_exceed_the_window() {
    let mut budget = RequestBudget::default();
    let sends = drain(&mut budget, 1000, t0());
    let took = sends.last().unwrap().duration_since(t0()).unwrap();
    // 100 at once, then 100 every 10.25 s (the window and its margin): the
    // 1000th goes at 92.25 s, under the 100 s floor that 1000 / (100 per
    // 10 s) sets.
    assert_eq!(took, ms(92_250));
    assert_eq!(busiest_window(&sends, Duration::from_secs(10)), 100);
}

#[test]
fn spread_requests_come_back_one_by_one() {
    let mut budget = RequestBudget::new(3, Duration::from_secs(1));
    budget.try_spend(t0()).unwrap();
    budget.try_spend(t0() + ms(100)).unwrap();
    budget.try_spend(t0() + ms(200)).unwrap();
    // A 1 s window: the margin is 25 ms.
    assert_eq!(budget.try_spend(t0() + ms(300)), Err(t0() + ms(1025)));
    assert_eq!(budget.available(t0() + ms(1025)), 1);
    assert_eq!(budget.available(t0() + ms(1125)), 2);
    assert_eq!(budget.next_available_at(t0() + ms(500)), t0() + ms(1025));
}

#[test]
fn it_follows_the_servers_headers() {
    let mut budget = RequestBudget::default();
    budget.try_spend(t0()).unwrap();
    // Another process of the app used 40 more: the server has 59 left.
    budget.observe(
        &headers(&[
            ("x-ratelimit-max", "100"),
            ("x-ratelimit-interval-milliseconds", "10000"),
            ("x-ratelimit-remaining", "59"),
        ]),
        t0() + ms(10),
    );
    assert_eq!(budget.available(t0() + ms(10)), 59);
    // A server that reports more left than we think changes nothing.
    budget.observe(&headers(&[("x-ratelimit-remaining", "99")]), t0() + ms(20));
    assert_eq!(budget.available(t0() + ms(20)), 59);
    // New figures are adopted.
    budget.observe(
        &headers(&[
            ("x-ratelimit-max", "50"),
            ("x-ratelimit-interval-milliseconds", "5000"),
        ]),
        t0() + ms(30),
    );
    assert_eq!((budget.max(), budget.interval()), (50, ms(5000)));
    assert_eq!(budget.available(t0() + ms(30)), 9);
    // Retry-After holds everything back until then.
    budget.observe(&headers(&[("retry-after", "30")]), t0() + ms(40));
    assert_eq!(budget.available(t0() + ms(40)), 0);
    assert_eq!(budget.try_spend(t0() + ms(6000)), Err(t0() + ms(30_040)));
    assert_eq!(budget.available(t0() + ms(30_040)), 50);
}

#[test]
fn a_429_empties_the_budget_for_one_interval() {
    let mut budget = RequestBudget::default();
    budget.try_spend(t0()).unwrap();
    budget.on_rate_limited(None, t0() + ms(5));
    assert_eq!(budget.available(t0() + ms(5)), 0);
    assert_eq!(budget.next_available_at(t0() + ms(5)), t0() + ms(10_250));
    assert_eq!(budget.available(t0() + ms(10_255)), 100);
}

#[test]
fn hostile_headers_keep_it_bounded() {
    let mut budget = RequestBudget::default();
    budget.observe(
        &headers(&[
            ("x-ratelimit-max", "18446744073709551615"),
            ("x-ratelimit-interval-milliseconds", "0"),
            ("x-ratelimit-remaining", "0"),
        ]),
        t0(),
    );
    assert_eq!(budget.max(), hoopai_oauth::BUDGET_MAX_ADOPTED);
    assert_eq!(budget.interval(), hoopai_oauth::BUDGET_MIN_INTERVAL);
    assert_eq!(budget.available(t0()), 0);
    assert_eq!(budget.available(t0() + ms(2)), budget.max());
    budget.observe(
        &headers(&[("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT")]),
        t0(),
    );
    // Honoured, but capped: blocked for an hour, not until the year 9999.
    let cap = hoopai_oauth::MAX_RETRY_AFTER;
    assert_eq!(budget.available(t0() + cap - ms(1)), 0);
    assert_eq!(budget.available(t0() + cap), budget.max());
}

#[test]
fn a_bulk_of_mints_at_the_budgets_pace_draws_no_429() {
    let mut fake = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
    let locations: Vec<String> = (0..300).map(|i| format!("loc-{i:04}")).collect();
    let refs: Vec<&str> = locations.iter().map(String::as_str).collect();
    let code = fake.approve(&Install::company("company-1", &refs));
    let exchange = token_request(
        &config(),
        &TokenRequest::authorization_code(code).user_type(UserType::Company),
    )
    .unwrap();
    let company = parse_token_response(fake.handle(&exchange, t0())).unwrap();
    fake.set_rate_limit(Some(FakeRateLimit::highlevel()));

    let mut budget = RequestBudget::default();
    let mut now = t0() + Duration::from_secs(1);
    let mut minted = 0;
    let mut sends = Vec::new();
    for location in &locations {
        while let Err(next) = budget.try_spend(now) {
            now = next;
        }
        let request = location_token_request(
            &config(),
            &company,
            &LocationTokenRequest::new("company-1", location),
        )
        .unwrap();
        sends.push(now);
        let answer = fake.handle(&request, now);
        if let Some(rate) = RateLimit::from_headers(answer.headers()) {
            budget.observe(&rate, now);
        }
        match parse_location_token_response(answer) {
            Ok(_) => minted += 1,
            Err(e) => panic!("{location}: {e}"),
        }
        // Each answer takes 20 ms to come back.
        now += ms(20);
    }
    assert_eq!(minted, 300);
    assert_eq!(fake.stats().rate_limited, 0);
    // 100 answers 20 ms apart, then the 101st when the first token is back
    // (10.25 s: the window and its margin), the 201st at 20.5 s, and 99 more
    // 20 ms apart.
    let took = sends.last().unwrap().duration_since(sends[0]).unwrap();
    assert_eq!(took, ms(20_500 + 99 * 20));
    // Without the budget, the same loop is refused within the first second.
    let mut unpaced = fake;
    let mut refused = None;
    for (i, location) in locations.iter().enumerate() {
        let at = now + Duration::from_secs(10) + ms(i as u64);
        let request = location_token_request(
            &config(),
            &company,
            &LocationTokenRequest::new("company-1", location),
        )
        .unwrap();
        if let Err(e) = parse_location_token_response(unpaced.handle(&request, at)) {
            assert_eq!(e.kind(), ErrorKind::RateLimited);
            refused = Some(i);
            break;
        }
    }
    assert_eq!(refused, Some(100));
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128),
        ..ProptestConfig::default()
    })]

    /// Whatever the attempts, observations and clock jumps: no window of one
    /// interval ever holds more spends than the budget, and a refusal always
    /// names a later instant.
    #[test]
    fn never_more_than_max_in_any_window(
        max in 1u32..20,
        interval_ms in 1u64..5_000,
        steps in prop::collection::vec((0u64..3_000, prop::option::of(0u64..25)), 1..300),
    ) {
        let interval = ms(interval_ms);
        let mut budget = RequestBudget::new(max, interval);
        let mut now = t0();
        let mut sends = Vec::new();
        for (advance, remaining) in steps {
            now += ms(advance);
            match budget.try_spend(now) {
                Ok(()) => sends.push(now),
                Err(next) => prop_assert!(next > now),
            }
            if let Some(r) = remaining {
                let rate = headers(&[("x-ratelimit-remaining", &r.to_string())]);
                budget.observe(&rate, now);
            }
            prop_assert!(budget.available(now) <= max);
        }
        prop_assert!(busiest_window(&sends, interval) <= max as usize);
    }
}
