//! The fake's side of installs: signed INSTALL/UNINSTALL deliveries that go
//! with its state, the rate limit it can enforce, and Location tokens minted
//! with or without a refresh token.

mod common;

use std::fmt::Write;
use std::time::Duration;

use common::{CLIENT_ID, CLIENT_SECRET, config, t0};
use hoopai_oauth::fake::{FakeRateLimit, FakeServer, FakeWebhook, Install};
use hoopai_oauth::{
    ErrorKind, InstallTarget, LocationTokenRequest, SeenWebhooks, TokenRequest, TokenResponse,
    UninstallTarget, UserType, WebhookPayload, WebhookVerifier, location_token_request,
    parse_location_token_response, parse_token_response, redact, token_request,
};
use http::Response;
use serde_json::Value;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Status, headers and body, with tokens redacted.
fn render(resp: &Response<Vec<u8>>) -> String {
    let mut out = String::new();
    writeln!(out, "HTTP {}", resp.status()).unwrap();
    for (name, value) in resp.headers() {
        writeln!(out, "{name}: {}", value.to_str().unwrap()).unwrap();
    }
    let mut body = String::from_utf8_lossy(resp.body()).into_owned();
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(resp.body()) {
        for key in [
            "access_token",
            "refresh_token",
            "accessToken",
            "refreshToken",
        ] {
            if let Some(Value::String(s)) = map.get(key) {
                body = body.replace(s, &redact(s));
            }
        }
    }
    writeln!(out, "\n{body}").unwrap();
    out
}

/// A bulk install of `locations` under `company-1`: the Company token.
fn company_grant(fake: &mut FakeServer, locations: &[&str]) -> TokenResponse {
    let code = fake.approve(&Install::company("company-1", locations));
    let request = token_request(
        &config(),
        &TokenRequest::authorization_code(code).user_type(UserType::Company),
    )
    .unwrap();
    parse_token_response(fake.handle(&request, t0())).unwrap()
}

fn mint(
    fake: &mut FakeServer,
    company: &TokenResponse,
    location: &str,
    at: std::time::SystemTime,
) -> Response<Vec<u8>> {
    let request = location_token_request(
        &config(),
        company,
        &LocationTokenRequest::new("company-1", location),
    )
    .unwrap();
    fake.handle(&request, at)
}

#[test]
fn the_rate_limit_is_off_by_default() {
    let mut fake = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
    let company = company_grant(&mut fake, &["loc-1"]);
    for _ in 0..150 {
        assert_eq!(mint(&mut fake, &company, "loc-1", t0()).status(), 201);
    }
    assert_eq!(fake.stats().rate_limited, 0);
}

#[test]
fn the_rate_limit_answers_429_with_the_documented_headers() {
    let mut fake = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
    let company = company_grant(&mut fake, &["loc-1"]);
    fake.set_rate_limit(Some(FakeRateLimit::highlevel()));
    let start = t0() + secs(1);
    // 100 requests spread over the first 5 s all pass, the last with 0 left.
    let mut last = None;
    for i in 0..100u64 {
        let resp = mint(
            &mut fake,
            &company,
            "loc-1",
            start + Duration::from_millis(i * 50),
        );
        assert_eq!(resp.status(), 201, "request {i}");
        last = Some(resp);
    }
    let last = last.unwrap();
    assert_eq!(last.headers()["x-ratelimit-remaining"], "0");
    // The 101st, 9.9 s after the first, is refused, and nothing is minted.
    let minted = fake.stats().location_tokens;
    let refused = mint(
        &mut fake,
        &company,
        "loc-1",
        start + Duration::from_millis(9_900),
    );
    assert_eq!(refused.status(), 429);
    assert_eq!(fake.stats().location_tokens, minted);
    assert_eq!(fake.stats().rate_limited, 1);
    let err = parse_location_token_response(refused.clone()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    let rate = err.rate_limit().unwrap();
    assert_eq!((rate.max, rate.remaining), (Some(100), Some(0)));
    assert_eq!(rate.interval, Some(secs(10)));
    // The window slides: at 10 s after the first request, one slot is free again.
    let again = mint(&mut fake, &company, "loc-1", start + secs(10));
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(
        mint(&mut fake, &company, "loc-1", start + secs(10)).status(),
        429
    );
    // With Retry-After: the wait until the oldest request leaves the window.
    fake.set_rate_limit(Some(FakeRateLimit::new(2, secs(10)).with_retry_after()));
    let t = start + secs(100);
    assert_eq!(mint(&mut fake, &company, "loc-1", t).status(), 201);
    assert_eq!(
        mint(&mut fake, &company, "loc-1", t + Duration::from_millis(500)).status(),
        201
    );
    let with_retry = mint(&mut fake, &company, "loc-1", t + secs(3));
    assert_eq!(with_retry.headers()["retry-after"], "7");
    snap!(format!(
        "{}\n{}\n{err}",
        render(&refused),
        render(&with_retry)
    ));
}

#[test]
fn location_tokens_with_and_without_a_refresh_token() {
    let mut fake = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
    let company = company_grant(&mut fake, &["loc-1", "loc-2"]);
    let with = mint(&mut fake, &company, "loc-1", t0());
    let with_token = parse_location_token_response(with.clone()).unwrap();
    let refresh = with_token.refresh_token.clone().expect("a refresh token");
    assert!(fake.is_live_refresh_token(refresh.secret()));

    fake.set_location_refresh_tokens(false);
    let without = mint(&mut fake, &company, "loc-2", t0());
    let without_token = parse_location_token_response(without.clone()).unwrap();
    assert_eq!(without_token.refresh_token, None);
    assert_eq!(without_token.location_id.as_deref(), Some("loc-2"));
    // Its access token works; it can only be minted again.
    let live = fake.live_refresh_tokens();
    assert_eq!(live.len(), 2, "the Company grant's and loc-1's: {live:?}");
    assert!(
        mint(&mut fake, &company, "loc-2", t0() + secs(60))
            .status()
            .is_success()
    );
    snap!(format!("{}\n{}", render(&with), render(&without)));
}

#[test]
fn a_bulk_install_and_its_webhook() {
    let mut fake = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
    let verifier = WebhookVerifier::new(&config()).add_key(fake.webhook_key());
    let mut seen = SeenWebhooks::default();
    fake.set_webhook_url("https://app.example/hooks/highlevel");
    let install = Install::company("company-1", &["loc-1", "loc-2", "loc-3"]);
    let (code, delivery) = fake.approve_with_webhook(&install, t0());
    assert_eq!(delivery.uri(), "https://app.example/hooks/highlevel");
    let event = verifier.verify_request(&delivery, t0(), &mut seen).unwrap();
    let WebhookPayload::Install(i) = event.payload else {
        panic!()
    };
    assert_eq!(
        i.target,
        InstallTarget::Bulk {
            company_id: "company-1".into(),
            location_ids: vec!["loc-1".into(), "loc-2".into(), "loc-3".into()]
        }
    );
    // The code of the same install gives the Company token that mints for them.
    let request = token_request(
        &config(),
        &TokenRequest::authorization_code(code).user_type(UserType::Company),
    )
    .unwrap();
    let company = parse_token_response(fake.handle(&request, t0())).unwrap();
    for l in ["loc-1", "loc-2", "loc-3"] {
        assert_eq!(mint(&mut fake, &company, l, t0()).status(), 201);
    }
    // A Location install gives a Location INSTALL.
    let (_, single) = fake.approve_with_webhook(&Install::location("company-1", "loc-4"), t0());
    let event = verifier.verify_request(&single, t0(), &mut seen).unwrap();
    assert!(matches!(
        event.payload,
        WebhookPayload::Install(i) if i.target == InstallTarget::Location { location_id: "loc-4".into() }
    ));
    assert_eq!(fake.stats().webhooks_sent, 2);
}

#[test]
fn an_uninstall_revokes_the_locations_grants() {
    let mut fake = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
    let verifier = WebhookVerifier::new(&config()).add_key(fake.webhook_key());
    let mut seen = SeenWebhooks::default();
    let company = company_grant(&mut fake, &["loc-1", "loc-2"]);
    let loc1 = parse_location_token_response(mint(&mut fake, &company, "loc-1", t0())).unwrap();
    let loc2 = parse_location_token_response(mint(&mut fake, &company, "loc-2", t0())).unwrap();

    let now = t0() + secs(60);
    let delivery = fake.uninstall(&FakeWebhook::uninstall_location("loc-1"), now);
    let event = verifier.verify_request(&delivery, now, &mut seen).unwrap();
    let WebhookPayload::Uninstall(u) = event.payload else {
        panic!()
    };
    assert_eq!(
        u.target,
        UninstallTarget::Location {
            location_id: "loc-1".into()
        }
    );
    assert_eq!(u.company_id.as_deref(), Some("company-1"));

    let refresh = |fake: &mut FakeServer, token: &TokenResponse| {
        let rt = token.refresh_token.clone().unwrap();
        let request = token_request(
            &config(),
            &TokenRequest::refresh_token(rt).user_type(UserType::Location),
        )
        .unwrap();
        parse_token_response(fake.handle(&request, now))
    };
    // loc-1: its refresh token is refused, and it can no longer be minted.
    assert_eq!(
        refresh(&mut fake, &loc1).unwrap_err().kind(),
        ErrorKind::InvalidGrant
    );
    let err = parse_location_token_response(mint(&mut fake, &company, "loc-1", now)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    // loc-2 goes on, and nothing counts as a reused refresh token.
    refresh(&mut fake, &loc2).unwrap();
    assert_eq!(fake.stats().spent_refresh_token_reuses, 0);
    assert_eq!(fake.stats().uninstalls, 1);

    // The agency: every grant of the company goes.
    let delivery = fake.uninstall(&FakeWebhook::uninstall_company("company-1"), now);
    verifier.verify_request(&delivery, now, &mut seen).unwrap();
    assert!(fake.live_refresh_tokens().is_empty());
    let err = parse_location_token_response(mint(&mut fake, &company, "loc-2", now)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
}
