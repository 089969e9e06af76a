//! The request budget's priorities and its sharing: refreshes go ahead of
//! mints and of the requests the app counts, counted requests keep to their
//! share, figures over their caps are events, several engines draw from one
//! budget kept in the store, and a store that cannot answer leaves each
//! engine a share of its own.

mod common;

use std::time::{Duration, SystemTime};

use common::sim::{Sim, location};
use hoopai_oauth::fake::{FakeRateLimit, FakeWebhook, Fault, Install};
use hoopai_oauth::{
    BudgetKeying, EngineSettings, Output, TokenRequest, TokenStatus, token_request,
};

const COMPANY: &str = "company-1";

/// The most requests sent in any window of `window` (sliding).
fn busiest(times: &[SystemTime], window: Duration) -> usize {
    let mut best = 0;
    let mut start = 0;
    for (i, t) in times.iter().enumerate() {
        while *t >= times[start] + window {
            start += 1;
        }
        best = best.max(i + 1 - start);
    }
    best
}

#[test]
fn a_refresh_that_is_due_goes_ahead_of_waiting_mints() {
    let mut sim = Sim::new();
    // One request per 10 s, so that every send but the first waits.
    let settings = EngineSettings::default().request_budget(1, Duration::from_secs(10));
    let a = sim.add_engine("a", settings);
    sim.install(a, &location("loc-held"));
    sim.install(a, &Install::company(COMPANY, &["loc-1", "loc-2", "loc-3"]));
    sim.run_for(Duration::from_secs(60));
    // The server's headers say the same.
    sim.fake
        .set_rate_limit(Some(FakeRateLimit::new(1, Duration::from_secs(10))));
    sim.note("test", "a bulk INSTALL: three mints wait for the budget");
    let locs = ["loc-1".to_owned(), "loc-2".to_owned(), "loc-3".to_owned()];
    let delivery = sim
        .fake
        .webhook(&FakeWebhook::install_bulk(COMPANY, &locs), sim.now);
    sim.webhook(a, &delivery).unwrap();
    sim.note(
        "test",
        "loc-held's token is refused: its refresh is due now",
    );
    let TokenStatus::Ready(token) = sim.ask(a, "loc-held") else {
        panic!("loc-held has a token");
    };
    sim.nodes[a]
        .engine
        .refresh_now("loc-held", Some(&token), sim.now)
        .unwrap();
    sim.pump(a);
    sim.run_for(Duration::from_secs(60));
    let log = sim.transcript().to_owned();
    // The refresh of loc-held went out before the second and third mints.
    let order: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" send #"))
        .map(|l| l.split_whitespace().nth(5).unwrap_or(""))
        .collect();
    assert_eq!(order, ["loc-1", "loc-held", "loc-2", "loc-3"], "{log}");
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.check_nothing_lost().unwrap();
    snap!(log);
}

#[test]
fn counted_requests_keep_to_their_share_and_wait_for_refreshes() {
    let mut sim = Sim::new();
    let settings = EngineSettings::default()
        .request_budget(10, Duration::from_secs(10))
        .counted_share(30);
    let a = sim.add_engine("a", settings);
    let start = sim.now;
    let engine = &mut sim.nodes[a].engine;
    // 30% of 10: three counted requests per interval.
    for _ in 0..3 {
        assert_eq!(engine.count_request(None, start).unwrap(), None);
    }
    let again = engine.count_request(None, start).unwrap().unwrap();
    // The first comes back one interval (and its 250 ms margin) later.
    assert_eq!(again, start + Duration::from_millis(10_250));
    assert_eq!(engine.count_request(None, again).unwrap(), None);

    // Nine grants due at once: seven take the rest of the budget, two wait;
    // while they wait, counted requests wait too, even with share left.
    let mut sim = Sim::new();
    let settings = EngineSettings::default().request_budget(7, Duration::from_secs(10));
    let a = sim.add_engine("a", settings);
    let grants: Vec<String> = (1..=9).map(|i| format!("loc-{i}")).collect();
    for g in &grants {
        sim.install(a, &location(g));
    }
    sim.run_for(Duration::from_secs(20));
    for g in &grants {
        let TokenStatus::Ready(token) = sim.ask_quietly(a, g) else {
            panic!("{g} has a token");
        };
        sim.nodes[a]
            .engine
            .refresh_now(g, Some(&token), sim.now)
            .unwrap();
    }
    sim.pump(a);
    let stats = sim.nodes[a].engine.stats();
    assert_eq!(stats.waiting_for_budget, 2);
    let now = sim.now;
    let wait = sim.nodes[a].engine.count_request(None, now).unwrap();
    assert!(wait.is_some_and(|t| t > now), "{wait:?}");
    sim.run_for(Duration::from_secs(11));
    assert_eq!(sim.nodes[a].engine.stats().waiting_for_budget, 0);
    let now = sim.now;
    assert_eq!(sim.nodes[a].engine.count_request(None, now).unwrap(), None);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

/// The answers to counted requests teach the budget too: their
/// `X-RateLimit-*` figures are followed, and a `429` to a code exchange
/// spends the whole budget, so the refreshes due wait for the window
/// instead of drawing `429`s of their own.
#[test]
fn the_answers_to_counted_requests_steer_the_budget() {
    let mut sim = Sim::new();
    let a = sim.add_engine(
        "a",
        EngineSettings::default().request_budget(100, Duration::from_secs(10)),
    );
    let start = sim.now;
    let engine = &mut sim.nodes[a].engine;
    assert_eq!(engine.count_request(None, start).unwrap(), None);
    // The server says its window holds 30 and all 30 are used (29 by
    // another process of the app).
    let mut headers = http::HeaderMap::new();
    headers.insert("x-ratelimit-max", "30".parse().unwrap());
    headers.insert(
        "x-ratelimit-interval-milliseconds",
        "10000".parse().unwrap(),
    );
    headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
    let clamped = engine
        .handle_counted_answer(None, http::StatusCode::BAD_REQUEST, &headers, start)
        .unwrap();
    assert_eq!(clamped, None);
    // None left until the first comes back.
    let wait = engine.count_request(None, start).unwrap();
    assert!(
        wait.is_some_and(|t| t >= start + Duration::from_secs(10)),
        "{wait:?}"
    );

    // A 429 with a Retry-After over the cap (1 h): capped, reported, and
    // the whole budget spent until then.
    let mut sim = Sim::new();
    let a = sim.add_engine("a", EngineSettings::default());
    let grants: Vec<String> = (1..=3).map(|i| format!("loc-{i}")).collect();
    for g in &grants {
        sim.install(a, &location(g));
    }
    sim.run_for(Duration::from_secs(1));
    let now = sim.now;
    let engine = &mut sim.nodes[a].engine;
    assert_eq!(engine.count_request(None, now).unwrap(), None);
    let mut headers = http::HeaderMap::new();
    headers.insert("retry-after", "10000000000".parse().unwrap());
    let clamped = engine
        .handle_counted_answer(None, http::StatusCode::TOO_MANY_REQUESTS, &headers, now)
        .unwrap()
        .expect("the Retry-After was capped");
    assert!(clamped.retry_after && !clamped.interval);
    let wait = engine.count_request(None, now).unwrap();
    assert!(
        wait.is_some_and(|t| t >= now + hoopai_oauth::MAX_RETRY_AFTER),
        "{wait:?}"
    );
    // A refresh asked now waits for the budget: nothing is sent.
    let TokenStatus::Ready(token) = sim.ask_quietly(a, "loc-1") else {
        panic!("loc-1 has a token");
    };
    let sends = sim.fake.stats().refreshes;
    sim.nodes[a]
        .engine
        .refresh_now("loc-1", Some(&token), sim.now)
        .unwrap();
    sim.pump(a);
    assert_eq!(sim.nodes[a].engine.stats().waiting_for_budget, 1);
    sim.run_for(Duration::from_secs(60));
    assert_eq!(
        sim.fake.stats().refreshes,
        sends,
        "a refresh went out during the wait"
    );
    assert_eq!(sim.nodes[a].engine.stats().waiting_for_budget, 1);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

/// A callback flood: the app counts (and sends) a code exchange whenever
/// the engine lets it, 20 times a second for 10 minutes, while 150 grants
/// come due over that time. Every grant refreshes before its token expires,
/// and the server never answers 429.
#[test]
fn a_flood_of_counted_requests_cannot_starve_refreshes() {
    let mut sim = Sim::new();
    sim.set_quiet(true);
    let a = sim.add_engine("a", EngineSettings::default());
    // Tokens living 20 minutes: due 10 minutes after their install.
    sim.fake.set_access_lifetime(Duration::from_secs(20 * 60));
    let grants: Vec<String> = (1..=150).map(|i| format!("loc-{i:03}")).collect();
    for (i, g) in grants.iter().enumerate() {
        sim.install(a, &location(g));
        if i % 30 == 29 {
            // Installs come in bursts, due together later.
            sim.run_for(Duration::from_secs(120));
        }
    }
    sim.fake.set_rate_limit(Some(FakeRateLimit::highlevel()));
    let junk = token_request(
        &common::config(),
        &TokenRequest::authorization_code("junk-code"),
    )
    .unwrap();
    let end = sim.now + Duration::from_secs(600);
    let mut counted = Vec::new();
    while sim.now < end {
        let now = sim.now;
        if sim.nodes[a]
            .engine
            .count_request(None, now)
            .unwrap()
            .is_none()
        {
            let _ = sim.fake.handle(&junk, now);
            counted.push(now);
        }
        sim.run_for(Duration::from_millis(50));
    }
    let stats = sim.fake.stats();
    assert_eq!(stats.rate_limited, 0, "429s during the flood");
    for g in &grants {
        let record = &sim.store.records[g.as_str()];
        assert!(
            record.expires_at() > end,
            "{g} was not kept fresh: expires {:?}",
            record.expires_at()
        );
    }
    // Counted requests kept to half of any window.
    assert!(busiest(&counted, Duration::from_secs(10)) <= 50);
    assert!(
        counted.len() > 500,
        "the flood was served: {}",
        counted.len()
    );
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.check_nothing_lost().unwrap();
}

#[test]
fn a_retry_after_over_the_cap_is_an_event_and_waits_an_hour() {
    let mut sim = Sim::new();
    let a = sim.add_engine("a", EngineSettings::default());
    sim.install(a, &location("loc-1"));
    let due = sim.nodes[a].engine.poll_timeout().unwrap();
    // 317 years.
    sim.fake.fail_next(
        Fault::RateLimited {
            retry_after_secs: Some(10_000_000_000),
        },
        1,
    );
    sim.run_until(due + Duration::from_secs(2 * 3600));
    let log = sim.transcript().to_owned();
    assert!(
        log.contains("rate limit clamped loc-1 retry-after=true"),
        "{log}"
    );
    assert_eq!(sim.fake.stats().refreshes, 1);
    assert_eq!(
        sim.store.records["loc-1"].expires_at(),
        due + Duration::from_secs(3600 + 86_399)
    );
    sim.check_nothing_lost().unwrap();
    snap!(log);
}

#[test]
fn resource_keying_gives_each_location_a_budget_of_its_own() {
    for keying in [BudgetKeying::App, BudgetKeying::Resource] {
        let mut sim = Sim::new();
        let settings = EngineSettings::default()
            .request_budget(1, Duration::from_secs(10))
            .budget_keying(keying);
        let a = sim.add_engine("a", settings);
        sim.install(a, &location("loc-1"));
        sim.install(a, &location("loc-2"));
        let now = sim.now;
        let engine = &mut sim.nodes[a].engine;
        for g in ["loc-1", "loc-2"] {
            engine.refresh_now(g, None, now).unwrap();
        }
        let mut sends = Vec::new();
        while let Some(out) = engine.poll_output(now) {
            if let Output::Send { grant, .. } = out {
                sends.push(grant.to_string());
            }
        }
        let waiting = engine.stats().waiting_for_budget;
        match keying {
            BudgetKeying::App => assert_eq!((sends.len(), waiting), (1, 1)),
            _ => assert_eq!((sends.len(), waiting), (2, 0)),
        }
    }
}

/// Three engines sharing a store, each with 100 grants due at the same
/// moment, against a server that allows 100 requests per 10 s.
fn three_engines(shared_budget: bool) -> Sim {
    let mut sim = Sim::new();
    sim.set_quiet(true);
    let nodes: Vec<usize> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            let settings = EngineSettings::default()
                .shared_store(*n, Duration::from_secs(90))
                .shared_budget(shared_budget);
            sim.add_engine(n, settings)
        })
        .collect();
    for (k, &node) in nodes.iter().enumerate() {
        for i in 0..100 {
            sim.install(node, &location(&format!("loc-{k}-{i:03}")));
        }
    }
    sim.fake.set_rate_limit(Some(FakeRateLimit::highlevel()));
    sim
}

#[test]
fn engines_on_one_store_draw_from_one_budget() {
    // Each engine alone: three times the budget at once, and 429s.
    let mut apart = three_engines(false);
    let start = apart.now;
    apart.run_for(Duration::from_secs(86_400));
    assert!(
        apart.fake.stats().rate_limited > 0,
        "the control saw no 429"
    );

    let mut sim = three_engines(true);
    let due = sim.nodes[0].engine.poll_timeout().unwrap();
    assert_eq!(start, sim.now);
    sim.run_for(Duration::from_secs(86_400));
    let stats = sim.fake.stats();
    assert_eq!(stats.rate_limited, 0, "429s with a shared budget");
    assert_eq!(stats.refreshes, 300);
    let refreshes: Vec<SystemTime> = sim
        .send_times
        .iter()
        .copied()
        .filter(|t| *t >= due)
        .collect();
    assert_eq!(refreshes.len(), 300);
    let took = refreshes
        .last()
        .unwrap()
        .duration_since(refreshes[0])
        .unwrap();
    // Two full windows wait: 300 requests at 100 per 10.5 s (the interval,
    // its margin, and as long again for a granted token to be sent).
    assert!(took <= Duration::from_secs(22), "{took:?}");
    assert!(busiest(&sim.send_times, Duration::from_secs(10)) <= 100);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.check_nothing_lost().unwrap();
    let per_window: Vec<usize> = (0..3)
        .map(|w| {
            let from = refreshes[0] + Duration::from_millis(10_500) * w;
            let to = from + Duration::from_millis(10_500);
            refreshes.iter().filter(|t| **t >= from && **t < to).count()
        })
        .collect();
    snap!(format!(
        "refreshes: 300 across 3 engines\n\
         429s: {}\n\
         first to last: {took:?}\n\
         per 10.5 s window: {per_window:?}\n\
         most in any 10 s: {}\n\
         claims answered by the store: {}\n",
        stats.rate_limited,
        busiest(&sim.send_times, Duration::from_secs(10)),
        sim.store.claims,
    ));
}

#[test]
fn a_store_that_cannot_answer_claims_leaves_each_engine_a_share() {
    let mut sim = Sim::new();
    let settings = |n: &str| {
        EngineSettings::default()
            .shared_store(n, Duration::from_secs(90))
            .shared_budget(true)
            .request_budget(4, Duration::from_secs(10))
    };
    let a = sim.add_engine("a", settings("a"));
    let b = sim.add_engine("b", settings("b"));
    for i in 1..=4 {
        sim.install(a, &location(&format!("loc-a{i}")));
        sim.install(b, &location(&format!("loc-b{i}")));
    }
    // The server's headers say the same.
    sim.fake
        .set_rate_limit(Some(FakeRateLimit::new(4, Duration::from_secs(10))));
    let due = sim.nodes[a].engine.poll_timeout().unwrap();
    sim.run_until(due + Duration::from_secs(60));
    sim.note(
        "test",
        "one more refresh each: both engines have seen the other claim",
    );
    for (node, g) in [(a, "loc-a1"), (b, "loc-b1")] {
        let TokenStatus::Ready(token) = sim.ask_quietly(node, g) else {
            panic!("{g} has a token");
        };
        sim.nodes[node]
            .engine
            .refresh_now(g, Some(&token), sim.now)
            .unwrap();
        sim.pump(node);
    }
    sim.run_for(Duration::from_secs(60));
    sim.note("test", "the store fails the next claim of each");
    sim.fail_claims = 2;
    for i in 1..=4 {
        for (node, who) in [(a, "a"), (b, "b")] {
            let g = format!("loc-{who}{i}");
            let TokenStatus::Ready(token) = sim.ask_quietly(node, &g) else {
                panic!("{g} has a token");
            };
            sim.nodes[node]
                .engine
                .refresh_now(&g, Some(&token), sim.now)
                .unwrap();
        }
    }
    sim.pump(a);
    sim.pump(b);
    sim.run_for(Duration::from_secs(60));
    let log = sim.transcript().to_owned();
    // Two engines were seen drawing: each allows itself half of 4.
    assert!(
        log.contains("shared budget unavailable, local share 2"),
        "{log}"
    );
    assert!(log.contains("shared budget recovered"), "{log}");
    assert_eq!(sim.fake.stats().rate_limited, 0, "{log}");
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.check_nothing_lost().unwrap();
    snap!(log);
}

#[test]
fn counted_requests_claim_their_tokens_from_the_store() {
    let mut sim = Sim::new();
    let settings = EngineSettings::default()
        .shared_store("a", Duration::from_secs(90))
        .shared_budget(true);
    let a = sim.add_engine("a", settings);
    let now = sim.now;
    let engine = &mut sim.nodes[a].engine;
    let again = engine.count_request(Some(COMPANY), now).unwrap();
    assert_eq!(again, Some(now + Duration::from_millis(5)));
    let Some(Output::Claim(claim)) = engine.poll_output(now) else {
        panic!("a claim");
    };
    assert_eq!(
        (claim.sends, claim.others, claim.max, claim.others_max),
        (0, 1, 100, 50)
    );
    assert_eq!(claim.window, Duration::from_millis(10_500));
    assert!(engine.poll_output(now).is_none());
    let outcome = sim.store.claim(&claim, now);
    let engine = &mut sim.nodes[a].engine;
    engine.handle_claim(&claim.key, outcome, now).unwrap();
    assert_eq!(engine.count_request(Some(COMPANY), now).unwrap(), None);
    // The token was spent: the next one is claimed again.
    assert!(engine.count_request(None, now).unwrap().is_some());
    snap!(format!("{claim:#?}"));
}
