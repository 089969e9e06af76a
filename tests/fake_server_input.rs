//! The fake server answers any request, however malformed, without panicking,
//! and every answer carries the rate-limit headers and reads as a typed result.
mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::{CLIENT_ID, CLIENT_SECRET, t0};
use hoopai_oauth::fake::{FakeServer, Fault, Install};
use hoopai_oauth::{ErrorKind, parse_token_response};
use http::Request;
use proptest::prelude::*;

const PATHS: &[&str] = &[
    "/oauth/token",
    "/oauth/locationToken",
    "/oauth/location-token",
    "/oauth/installedLocations",
    "/oauth/installed-locations",
    "/v2/oauth/chooselocation",
    "/prefix/oauth/token/",
    "/",
    "/other",
];

const NAMES: &[&str] = &[
    "client_id",
    "clientId",
    "client_secret",
    "clientSecret",
    "grant_type",
    "grantType",
    "code",
    "refresh_token",
    "refreshToken",
    "user_type",
    "userType",
    "redirect_uri",
    "companyId",
    "locationId",
    "appId",
    "skip",
    "limit",
    "pageSize",
    "pageToken",
    "isInstalled",
    "query",
    "response_type",
    "state",
    "scope",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(CLIENT_ID.to_owned()),
        Just(CLIENT_SECRET.to_owned()),
        Just("authorization_code".to_owned()),
        Just("refresh_token".to_owned()),
        Just("Company".to_owned()),
        Just("company-1".to_owned()),
        Just("loc-1".to_owned()),
        Just("https://myapp.com/cb?x=1#f".to_owned()),
        Just("page-18446744073709551615".to_owned()),
        Just("18446744073709551616".to_owned()),
        ".{0,12}",
    ]
}

fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (prop::sample::select(NAMES).prop_map(str::to_owned), value()),
        0..8,
    )
}

prop_compose! {
    fn request()(
        post in any::<bool>(),
        path in prop::sample::select(PATHS),
        query in pairs(),
        form in pairs(),
        raw_body in prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
        content_type in prop::option::of(prop::sample::select(&[
            "application/x-www-form-urlencoded",
            "application/json",
            "text/plain",
            "APPLICATION/JSON; charset=utf-8",
        ][..])),
        version in prop::option::of(prop::sample::select(&["2021-07-28", "v3", "v9"][..])),
        bearer in prop::option::of(".{0,40}"),
    ) -> Request<Vec<u8>> {
        let query = serde_urlencoded::to_string(&query).unwrap();
        let body = raw_body.unwrap_or_else(|| serde_urlencoded::to_string(&form).unwrap().into_bytes());
        let mut b = Request::builder()
            .method(if post { "POST" } else { "GET" })
            .uri(format!("http://127.0.0.1:1{path}?{query}"));
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        if let Some(v) = version {
            b = b.header("version", v);
        }
        if let Some(t) = bearer.filter(|t| http::HeaderValue::from_str(&format!("Bearer {t}")).is_ok()) {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b.body(body).unwrap()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_request_gets_an_answer(requests in prop::collection::vec(request(), 1..6), secs in any::<u64>()) {
        let mut fake = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
        fake.approve(&Install::company("company-1", &["loc-1"]));
        fake.fail_next(Fault::LocationNotActive, usize::from(secs % 3 == 0));
        // Any instant, including ones near the ends of what `SystemTime` holds.
        let now = UNIX_EPOCH.checked_add(Duration::from_secs(secs)).unwrap_or_else(t0);
        for req in &requests {
            let resp = fake.handle(req, now);
            prop_assert!(resp.headers().contains_key("x-ratelimit-remaining"));
            prop_assert!(resp.status().as_u16() >= 200);
            if let Err(e) = parse_token_response(resp) {
                prop_assert_ne!(e.kind(), ErrorKind::InvalidInput);
            }
        }
        prop_assert_eq!(fake.stats().requests, requests.len() as u64);
    }
}
