//! What the crate builds, it reads back. For any input the builders accept:
//! - the consent state and the redirect URI come back through the consent
//!   URL, the (fake) server's redirect and `parse_callback`, and the code
//!   exchanges with the same redirect URI;
//! - the fake server's consent answer always has a readable `Location`
//!   header, or is a typed refusal;
//! - a `GrantRecord` reads back equal through JSON, lifetimes over ten years
//!   included.
//!
//! Inputs that could not make the round trip are refused when built, with a
//! typed error.

mod common;

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{CLIENT_ID, CLIENT_SECRET, t0};
use hoopai_oauth::fake::FakeServer;
use hoopai_oauth::{
    AccessToken, Config, ConsentRequest, ConsentState, Engine, EngineSettings, Error, ErrorKind,
    GrantRecord, GrantStatus, Lease, LenientBool, MAX_REDIRECT_URI_BYTES, Output, RefreshToken,
    Scope, Scopes, TokenRequest, TokenResponse, TokenSet, UserType, consent_url, parse_callback,
    parse_token_response, token_request,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn config_with(redirect: &str) -> Result<Config, Error> {
    Config::builder(CLIENT_ID, CLIENT_SECRET)
        .redirect_uri(redirect)
        .build()
}

/// Sends the consent URL to the fake and returns its answer.
fn consent_at_fake(fake: &mut FakeServer, url: &str) -> http::Response<Vec<u8>> {
    let request = http::Request::get(url)
        .body(Vec::new())
        .expect("a consent URL is a valid request URI");
    fake.handle(&request, t0())
}

/// The whole consent flow for a redirect URI the config took: consent URL,
/// the fake's redirect, the callback, the code exchange.
fn consent_round_trip(config: &Config, state: &ConsentState) -> Result<(), TestCaseError> {
    let redirect = config.redirect_uri().unwrap();
    let url = consent_url(
        config,
        &ConsentRequest::new([Scope::CONTACTS_READONLY]).state(state.clone()),
    )
    .map_err(|e| TestCaseError::fail(format!("consent URL: {e}")))?;
    // The URL carries both values as they are.
    let query = url.split_once('?').unwrap().1;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    prop_assert_eq!(get("redirect_uri"), Some(redirect));
    prop_assert_eq!(get("state"), Some(state.as_str()));
    // The server redirects there, with a Location header a client can read.
    let mut fake = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
    let answer = consent_at_fake(&mut fake, &url);
    prop_assert_eq!(
        answer.status(),
        302,
        "{}",
        String::from_utf8_lossy(answer.body())
    );
    let location = answer
        .headers()
        .get(http::header::LOCATION)
        .ok_or_else(|| TestCaseError::fail("302 without Location"))?
        .to_str()
        .map_err(|_| TestCaseError::fail("Location is not visible ASCII"))?
        .to_owned();
    prop_assert!(location.starts_with(redirect), "{location}");
    // The callback reads the code, with the state checked.
    let code = parse_callback(&location, Some(state))
        .map_err(|e| TestCaseError::fail(format!("callback {location:?}: {e}")))?;
    // And the code exchanges, with the same redirect URI.
    let exchange = token_request(config, &TokenRequest::authorization_code(code)).unwrap();
    let token = parse_token_response(fake.handle(&exchange, t0()))
        .map_err(|e| TestCaseError::fail(format!("exchange: {e}")))?;
    prop_assert!(token.refresh_token.is_some());
    Ok(())
}

// ---- the four findings ---------------------------------------------------------------

#[test]
fn the_four_findings() {
    let mut out = String::new();

    // 1. A state holding U+FFFD went out and could not come back: refused.
    let err = ConsentState::new("abc\u{FFFD}def").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    writeln!(out, "state with U+FFFD: {err}").unwrap();

    // 2. `https://a{` could not be parsed back from the redirect: refused.
    let err = config_with("https://a{").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    writeln!(out, "redirect https://a{{: {err}").unwrap();

    // 3. `https://é`: the fake answered 302 without a readable Location. The
    //    config refuses it, and the fake refuses it too when sent by hand.
    let err = config_with("https://é").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    writeln!(out, "redirect https://é: {err}").unwrap();
    let query = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", "https://é"),
        ("state", "s"),
    ])
    .unwrap();
    let mut fake = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
    let answer = consent_at_fake(
        &mut fake,
        &format!("https://marketplace.gohighlevel.com/v2/oauth/chooselocation?{query}"),
    );
    assert_eq!(answer.status(), 400);
    assert!(answer.headers().get(http::header::LOCATION).is_none());
    let refusal = parse_token_response(answer).unwrap_err();
    assert_eq!(refusal.kind(), ErrorKind::InvalidParameter);
    writeln!(out, "the fake, sent https://é by hand: {refusal}").unwrap();
    // Its punycode form (what a browser sends) makes the round trip.
    let config = config_with("https://xn--9ca/").unwrap();
    consent_round_trip(&config, &ConsentState::new("s").unwrap()).unwrap();

    // 4. A lifetime over ten years: the record reads back equal, and the
    //    lifetime counted is the documented one.
    let mut token = TokenResponse::new(AccessToken::new("access-placeholder"));
    token.refresh_token = Some(RefreshToken::new("refresh-placeholder"));
    token.expires_in = Some(20 * 365 * 86_400);
    let record = GrantRecord::new("loc-1", TokenSet::new(token, t0()));
    let json = serde_json::to_string(&record).unwrap();
    let back: GrantRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(back, record);
    assert_eq!(back.tokens.token().expires_in, Some(20 * 365 * 86_400));
    assert!(back.tokens.token().extra.is_empty());
    assert_eq!(back.expires_at(), t0() + hoopai_oauth::DEFAULT_LIFETIME);
    writeln!(out, "record with expires_in 20 years: reads back equal").unwrap();
    snap!(out);
}

/// Redirect URIs the config refuses, each with its reason; and some it takes
/// that look odd but come back.
#[test]
fn redirect_uris_that_could_not_come_back_are_refused() {
    let long = format!("https://a.example/{}", "x".repeat(MAX_REDIRECT_URI_BYTES));
    let refused = [
        "https://myapp.com/cb?tenant=a b",
        "https://myapp.com/cb/ünï",
        "https://myapp.com/cb#frag",
        "https://myapp.com/cb%",
        "https://myapp.com/cb%zz",
        "https://myapp.com/cb?x=%FF",
        "https://myapp.com/cb?state=mine",
        "https://myapp.com/cb?code=1",
        "https://myapp.com/cb?error=x",
        "https://myapp.com/cb?x=1&x=2",
        "https://myapp.com/cb?x\"=1",
        "https://myapp.com/{tenant}",
        "https://a:b:c@/",
        long.as_str(),
    ];
    let mut out = String::new();
    for uri in refused {
        let err = config_with(uri).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{uri}");
        // The consent request's own redirect URI follows the same rules.
        let no_redirect = Config::builder(CLIENT_ID, CLIENT_SECRET).build().unwrap();
        let err2 = consent_url(
            &no_redirect,
            &ConsentRequest::new([Scope::OAUTH_WRITE]).redirect_uri(uri),
        )
        .unwrap_err();
        assert_eq!(err2.kind(), ErrorKind::InvalidInput, "{uri}");
        let shown = err.to_string().replace(&"x".repeat(64), "x…");
        writeln!(out, "{shown}").unwrap();
    }
    snap!(out);

    let state = ConsentState::new("s t&a=t+e/ü").unwrap();
    for uri in [
        "https://myapp.com/oauth/callback",
        "http://localhost:8080/cb",
        "http://[::1]:3000/cb",
        "http://127.0.0.1/",
        "com.example.app://oauth",
        "https://myapp.com/cb?tenant=a+b&flag",
        "https://myapp.com/cb?",
        "https://user@myapp.com/a%2Fb/;p=1/!$'()*,",
        "https://myapp.com/cb/%C3%BCn%C3%AF?x=%E2%82%AC",
        "HTTPS://MYAPP.COM/CB",
    ] {
        let config = config_with(uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
        consent_round_trip(&config, &state).unwrap_or_else(|e| panic!("{uri}: {e}"));
    }
}

// ---- consent: properties ------------------------------------------------------------------

/// A state: any text, with the characters that trip encoders more likely.
fn any_state() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{1,40}",
        ".{0,40}",
        prop::collection::vec(
            prop::sample::select(vec![
                "a", " ", "+", "&", "=", "%", "%2B", "#", "?", "/", "ü", "€", "🔑", "\u{FFFD}",
                "\u{FEFF}", "\u{200B}", "\u{7}", "\n", "\\", "\"", "<", "'",
            ]),
            1..12,
        )
        .prop_map(|parts| parts.concat()),
    ]
}

/// A redirect URI: well-formed ones (which must come back), the same with
/// junk mixed in (which must be refused or come back), and plain junk.
fn any_redirect_uri() -> impl Strategy<Value = String> {
    let scheme = prop::sample::select(vec!["https", "http", "com.example.app", "x-y+z.1", "HTTPS"]);
    let host = prop_oneof![
        "[a-z0-9-]{1,12}(\\.[a-z]{2,5})?",
        "localhost:[0-9]{1,5}",
        Just("[::1]:8080".to_owned()),
        Just("127.0.0.1".to_owned()),
        Just("user:pw@host.example".to_owned()),
        Just("xn--9ca.example".to_owned()),
    ];
    // Unreserved and sub-delimiter characters, and escapes of ASCII and of
    // UTF-8 sequences.
    let path = "(/([A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-7][0-9A-F]|%C3%A9|%E2%82%AC){0,8}){0,3}";
    let query = prop::collection::btree_map(
        "[a-z]{1,6}",
        "([A-Za-z0-9._~!$'()*,;:@/?-]|\\+|%[0-7][0-9A-F]|%C3%BC){0,8}",
        0..4,
    )
    .prop_map(|pairs| {
        let pairs: Vec<String> = pairs
            .into_iter()
            .filter(|(k, _)| !["code", "state", "error"].contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if pairs.is_empty() {
            String::new()
        } else {
            format!("?{}", pairs.join("&"))
        }
    });
    let clean = (scheme, host, path, query).prop_map(|(s, h, p, q)| format!("{s}://{h}{p}{q}"));
    let junk = prop::sample::select(vec![
        " ", "é", "{", "}", "#", "#f", "%", "%FF", "%zz", "\"", "<", "\\", "|", "^", "`",
        "?code=1", "&state=2", "?x=1&x=2", "?error=e", "\u{7}", "://", "@", "[", "]",
    ]);
    let dirty = (clean.clone(), junk, any::<prop::sample::Index>()).prop_map(|(uri, junk, at)| {
        let mut cut = at.index(uri.len() + 1);
        while !uri.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}{junk}{}", &uri[..cut], &uri[cut..])
    });
    prop_oneof![
        6 => clean,
        3 => dirty,
        1 => ".{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    /// Any state `ConsentState::new` takes and any redirect URI the config takes
    /// come back through the consent URL, the redirect and the callback.
    #[test]
    fn consent_state_and_redirect_uri_come_back(state in any_state(), redirect in any_redirect_uri()) {
        let state = match ConsentState::new(state) {
            Ok(s) => s,
            Err(e) => {
                prop_assert_eq!(e.kind(), ErrorKind::InvalidInput);
                ConsentState::from_random_bytes(&[7; 16]).unwrap()
            }
        };
        let config = config_with(&redirect);
        // The request's own redirect URI follows the config's rules.
        let no_redirect = Config::builder(CLIENT_ID, CLIENT_SECRET).build().unwrap();
        let by_request = consent_url(
            &no_redirect,
            &ConsentRequest::new([Scope::OAUTH_WRITE]).redirect_uri(redirect.as_str()),
        );
        prop_assert_eq!(config.is_ok(), by_request.is_ok(), "{}", redirect);
        match config {
            Ok(config) => consent_round_trip(&config, &state)?,
            Err(e) => prop_assert_eq!(e.kind(), ErrorKind::InvalidConfig),
        }
    }

    /// Whatever `redirect_uri` a consent URL carries, even one the crate
    /// would refuse, the fake's answer is a redirect with a readable
    /// `Location`, or a typed refusal.
    #[test]
    fn the_fake_never_redirects_without_a_location(redirect in any_redirect_uri(), state in any_state()) {
        let query = serde_urlencoded::to_string([
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", redirect.as_str()),
            ("state", state.as_str()),
        ])
        .unwrap();
        let mut fake = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
        let answer = consent_at_fake(
            &mut fake,
            &format!("https://marketplace.gohighlevel.com/v2/oauth/chooselocation?{query}"),
        );
        if answer.status() == 302 {
            let location = answer.headers().get(http::header::LOCATION);
            prop_assert!(location.is_some_and(|l| l.to_str().is_ok()), "{:?}", location);
        } else {
            prop_assert!(answer.headers().get(http::header::LOCATION).is_none());
            let refusal = parse_token_response(answer).unwrap_err();
            prop_assert_eq!(refusal.kind(), ErrorKind::InvalidParameter);
        }
    }
}

// ---- records: properties ------------------------------------------------------------------

/// Any JSON value.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    common::json_value_from(leaf)
}

/// Any instant a `SystemTime` holds here, before or after the epoch.
fn any_time() -> impl Strategy<Value = SystemTime> {
    prop_oneof![
        (0u64..=i64::MAX as u64, 0u32..1_000_000_000)
            .prop_map(|(s, n)| UNIX_EPOCH + Duration::new(s, n)),
        (1_700_000_000u64..1_900_000_000, 0u32..1_000_000_000)
            .prop_map(|(s, n)| UNIX_EPOCH + Duration::new(s, n)),
        (0u64..1_000_000_000).prop_map(|s| UNIX_EPOCH - Duration::from_secs(s)),
    ]
}

/// Whole seconds, as the engine writes every time of a record.
fn any_whole_seconds() -> impl Strategy<Value = SystemTime> {
    (0u64..=i64::MAX as u64).prop_map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

fn opt_string() -> impl Strategy<Value = Option<String>> {
    prop::option::of(".{0,16}")
}

fn any_user_type() -> impl Strategy<Value = UserType> {
    prop_oneof![
        Just(UserType::Company),
        Just(UserType::Location),
        ".{0,10}".prop_map(UserType::Other),
        Just(UserType::Other("Company".into())),
    ]
}

/// A token answer built through the public fields. `extra` holds fields of
/// other names, as the parser leaves them (see `field_shapes.rs` for answers
/// read off the wire).
fn any_token() -> impl Strategy<Value = TokenResponse> {
    (
        (
            ".{0,20}",
            opt_string(),
            opt_string(),
            prop::option::of(prop_oneof![any::<u64>(), 0u64..400_000_000]),
            opt_string(),
            prop::option::of(any_user_type()),
        ),
        (
            opt_string(),
            opt_string(),
            prop::option::of(prop::collection::vec(".{0,8}", 0..3)),
            opt_string(),
            opt_string(),
            opt_string(),
            opt_string(),
        ),
        (
            prop::option::of(any::<bool>()),
            prop::option::of(any::<bool>()),
            prop::option::of(any::<bool>()),
            prop::collection::btree_map("x[A-Za-z_]{0,8}", json_value(), 0..3),
        ),
    )
        .prop_map(
            |(
                (access, refresh, token_type, expires_in, scope, user_type),
                (location, company, approved, user, plan, app, version),
                (bulk, future, all, extra),
            )| {
                let mut t = TokenResponse::new(AccessToken::new(access));
                t.refresh_token = refresh.map(RefreshToken::new);
                t.token_type = token_type;
                t.expires_in = expires_in;
                t.scope = scope.map(Scopes::new);
                t.user_type = user_type;
                t.location_id = location;
                t.company_id = company;
                t.approved_locations = approved;
                t.user_id = user;
                t.plan_id = plan;
                t.app_id = app;
                t.version_id = version;
                t.is_bulk_installation = bulk.map(LenientBool::Bool);
                t.install_to_future_locations = future.map(LenientBool::Bool);
                t.approve_all_locations = all.map(LenientBool::Bool);
                t.extra = extra.into_iter().collect::<Map<String, Value>>();
                t
            },
        )
}

fn any_status() -> impl Strategy<Value = GrantStatus> {
    prop_oneof![
        Just(GrantStatus::Active),
        any_whole_seconds().prop_map(|until| GrantStatus::Suspended { until }),
        (any_whole_seconds(), opt_string())
            .prop_map(|(until, reason)| GrantStatus::Unauthorized { until, reason }),
        opt_string().prop_map(|reason| GrantStatus::ReauthorizationNeeded { reason }),
    ]
}

fn any_record() -> impl Strategy<Value = GrantRecord> {
    (
        ".{0,12}",
        any_token(),
        any_time(),
        any::<u64>(),
        any_status(),
        prop::option::of((".{0,8}", any_whole_seconds())),
    )
        .prop_map(|(grant, token, at, version, status, lease)| {
            let mut record = GrantRecord::new(grant, TokenSet::new(token, at));
            record.version = version;
            record.status = status;
            record.lease = lease.map(|(holder, until)| Lease { holder, until });
            record
        })
}

/// Through JSON, as a store keeps it.
fn through_json(record: &GrantRecord) -> GrantRecord {
    serde_json::from_str(&serde_json::to_string(record).unwrap()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    /// Any record built through the public API reads back equal.
    #[test]
    fn a_record_reads_back_equal(record in any_record()) {
        prop_assert_eq!(through_json(&record), record);
    }

    /// Any record read off the wire's shapes reads back equal.
    #[test]
    fn a_record_of_any_answer_reads_back_equal(
        fields in prop::collection::vec((".{0,12}|expires_in|scope|userType|approvedLocations|isBulkInstallation", json_value()), 0..6),
        at in any_time(),
    ) {
        let mut body = json!({"access_token": "A", "refresh_token": "R"});
        for (name, v) in fields {
            body[name] = v;
        }
        let token = parse_token_response(common::response(200, &[], body.to_string())).unwrap();
        let record = GrantRecord::new("g", TokenSet::new(token, at));
        prop_assert_eq!(through_json(&record), record);
    }

    /// Any record the engine writes reads back equal, and restores into
    /// another engine as the same record.
    #[test]
    fn an_engine_record_reads_back_and_restores_equal(
        token in any_token(),
        refresh in "[A-Za-z0-9]{1,20}",
        at in 1_700_000_000u64..1_900_000_000,
    ) {
        let mut token = token;
        token.refresh_token = Some(RefreshToken::new(refresh));
        let now = UNIX_EPOCH + Duration::from_secs(at);
        let mut engine = Engine::new(common::config(), EngineSettings::default());
        engine.insert("g", TokenSet::new(token, now), now).unwrap();
        let record = std::iter::from_fn(|| engine.poll_output(now))
            .find_map(|o| match o {
                Output::Persist { record, .. } => Some(record),
                _ => None,
            })
            .unwrap();
        let back = through_json(&record);
        prop_assert_eq!(&back, &record);
        let mut fresh = Engine::new(common::config(), EngineSettings::default());
        fresh.restore(back, now).unwrap();
        prop_assert_eq!(fresh.grants().get("g").map(|g| g.record()).unwrap(), record);
    }
}
