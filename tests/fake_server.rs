//! The fake server as a whole: unknown paths, a base URL with a prefix,
//! the rate-limit windows, determinism, Debug without secrets, and speed.
mod common;

use std::time::Duration;

use common::{CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, config, t0};
use hoopai_oauth::fake::{FakeServer, FakeStats, Fault, Install};
use hoopai_oauth::{Config, parse_token_response};
use http::{Request, Response};
use serde_json::json;

use common::fake_http::{
    BASE, assert_no_token, body, exchange_req, fake, install, refresh_of, refresh_req, render, send,
};

#[test]
fn unknown_paths_and_methods_get_404() {
    let mut fake = fake();
    let resp = send(
        &mut fake,
        &Request::get(format!("{BASE}/oauth/nothing"))
            .body(Vec::new())
            .unwrap(),
    );
    snap!("unknown_path", render(&resp));
    let resp = send(
        &mut fake,
        &Request::get(format!("{BASE}/oauth/token"))
            .body(Vec::new())
            .unwrap(),
    );
    assert_eq!(
        (resp.status().as_u16(), body(&resp)["message"].clone()),
        (404, json!("Cannot GET /oauth/token"))
    );
}

#[test]
fn a_base_url_with_a_path_prefix_works() {
    let mut fake = fake();
    let cfg = Config::builder(CLIENT_ID, CLIENT_SECRET)
        .base_url("http://127.0.0.1:8080/hoopai/")
        .build()
        .unwrap();
    let code = fake.approve(&Install::location("company-1", "loc-1"));
    parse_token_response(send(&mut fake, &exchange_req(&cfg, &code))).unwrap();
}

#[test]
fn every_answer_counts_against_the_rate_limit_windows() {
    let mut fake = fake();
    let remaining = |resp: &Response<Vec<u8>>, name: &str| -> u64 {
        resp.headers()[name].to_str().unwrap().parse().unwrap()
    };
    let req = Request::get(format!("{BASE}/nothing"))
        .body(Vec::new())
        .unwrap();
    let a = fake.handle(&req, t0());
    let b = fake.handle(&req, t0() + Duration::from_millis(9_999));
    let c = fake.handle(&req, t0() + Duration::from_secs(10));
    let d = fake.handle(&req, t0() + Duration::from_secs(86_400));
    for r in [&a, &b, &c, &d] {
        assert_eq!(remaining(r, "x-ratelimit-max"), 100);
        assert_eq!(remaining(r, "x-ratelimit-limit-daily"), 200_000);
        assert_eq!(remaining(r, "x-ratelimit-interval-milliseconds"), 10_000);
    }
    let burst: Vec<u64> = [&a, &b, &c, &d]
        .iter()
        .map(|r| remaining(r, "x-ratelimit-remaining"))
        .collect();
    assert_eq!(burst, [99, 98, 99, 99]);
    let daily: Vec<u64> = [&a, &b, &c, &d]
        .iter()
        .map(|r| remaining(r, "x-ratelimit-daily-remaining"))
        .collect();
    assert_eq!(daily, [199_999, 199_998, 199_997, 199_999]);
}

#[test]
fn the_same_calls_give_the_same_bytes_and_clients_differ() {
    let run = |client_id: &str| {
        let mut fake = FakeServer::new(client_id, CLIENT_SECRET);
        let cfg = Config::builder(client_id, CLIENT_SECRET)
            .redirect_uri(REDIRECT_URI)
            .build()
            .unwrap();
        let t = install(&mut fake, &cfg, &Install::location("company-1", "loc-1"));
        let resp = send(&mut fake, &refresh_req(&cfg, &refresh_of(&t)));
        (resp.status(), resp.headers().clone(), resp.into_body())
    };
    assert_eq!(run(CLIENT_ID), run(CLIENT_ID));
    assert_ne!(run(CLIENT_ID).2, run("another-client").2);
}

#[test]
fn debug_shows_no_secret() {
    let mut fake = fake();
    let t = install(
        &mut fake,
        &config(),
        &Install::location("company-1", "loc-1"),
    );
    let code = fake.approve(&Install::location("company-1", "loc-2"));
    fake.fail_next(Fault::ServerError, 3);
    let debug = format!("{fake:?}");
    for secret in [
        CLIENT_SECRET,
        t.access_token.secret(),
        &refresh_of(&t),
        code.secret(),
    ] {
        assert!(!debug.contains(secret), "{debug}");
    }
    assert!(
        debug.contains(CLIENT_ID) && debug.contains("ServerError"),
        "{debug}"
    );
    assert_no_token(&debug);
}

#[test]
fn many_grants_stay_fast() {
    let mut fake = fake();
    let cfg = config();
    let started = std::time::Instant::now();
    let mut tokens = Vec::new();
    for i in 0..2_000 {
        let loc = format!("loc-{i}");
        let code = fake.approve(&Install::location("company-1", &loc));
        let t = parse_token_response(fake.handle(&exchange_req(&cfg, &code), t0())).unwrap();
        tokens.push(refresh_of(&t));
    }
    for rt in &mut tokens {
        let t = parse_token_response(fake.handle(&refresh_req(&cfg, rt), t0())).unwrap();
        *rt = refresh_of(&t);
    }
    let mut live = fake.live_refresh_tokens();
    live.sort();
    tokens.sort();
    assert_eq!(live, tokens);
    let stats = fake.stats();
    assert_eq!(
        (stats.requests, stats.code_exchanges, stats.refreshes),
        (4_000, 2_000, 2_000)
    );
    assert_eq!(stats.spent_refresh_token_reuses, 0);
    assert_ne!(stats, FakeStats::default());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
