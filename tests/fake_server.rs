//! The fake server answers as the real one would, in the shapes the crate parses.
mod common;

use std::fmt::Write;
use std::time::Duration;

use common::{CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, config, t0};
use hoopai_oauth::fake::{FakeServer, FakeStats, Fault, Install};
use hoopai_oauth::{
    AuthorizationCode, Config, ErrorKind, LenientBool, TokenRequest, TokenResponse, UserType,
    parse_token_response, redact, token_request,
};
use http::{Request, Response};
use serde_json::{Value, json};

const BASE: &str = "https://services.leadconnectorhq.com";
const CONSENT: &str = "https://marketplace.gohighlevel.com/v2/oauth/chooselocation";

// ---- helpers ----------------------------------------------------------------------

fn fake() -> FakeServer {
    FakeServer::new(CLIENT_ID, CLIENT_SECRET)
}

fn configs() -> [(&'static str, Config); 2] {
    [("v2", config()), ("v3", common::config_v3())]
}

fn app_id() -> &'static str {
    CLIENT_ID.split('-').next().unwrap()
}

/// Renders an answer (status, headers, body) with every token and code
/// replaced by its redaction, and checks that nothing token-shaped is left.
fn render(resp: &Response<Vec<u8>>) -> String {
    let mut secrets: Vec<String> = Vec::new();
    if let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(resp.body()) {
        for key in [
            "access_token",
            "accessToken",
            "refresh_token",
            "refreshToken",
        ] {
            if let Some(Value::String(s)) = body.get(key) {
                secrets.push(s.clone());
            }
        }
    }
    if let Some(location) = resp.headers().get(http::header::LOCATION) {
        let location = location.to_str().unwrap();
        let query = location.split_once('?').map_or("", |(_, q)| q);
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
        secrets.extend(
            pairs
                .into_iter()
                .filter(|(k, _)| k == "code")
                .map(|(_, v)| v),
        );
    }
    let mut out = String::new();
    writeln!(out, "HTTP {}", resp.status()).unwrap();
    for (name, value) in resp.headers() {
        writeln!(out, "{name}: {}", value.to_str().unwrap()).unwrap();
    }
    writeln!(out).unwrap();
    writeln!(out, "{}", String::from_utf8_lossy(resp.body())).unwrap();
    for s in secrets {
        out = out.replace(&s, &redact(&s));
    }
    assert_no_token(&out);
    out
}

/// Fails if `text` holds a full fake token (`at-`, `rt-` or `cd-`, 12 hex, `-`, 16 hex).
fn assert_no_token(text: &str) {
    let b = text.as_bytes();
    for i in 0..b.len() {
        let rest = &b[i..];
        if rest.len() >= 32
            && [&b"at-"[..], b"rt-", b"cd-"].contains(&&rest[..3])
            && rest[3..15].iter().all(u8::is_ascii_hexdigit)
            && rest[15] == b'-'
            && rest[16..32].iter().all(u8::is_ascii_hexdigit)
        {
            panic!("a full token is in {text}");
        }
    }
}

fn send(fake: &mut FakeServer, req: &Request<Vec<u8>>) -> Response<Vec<u8>> {
    fake.handle(req, t0())
}

fn exchange_req(cfg: &Config, code: &AuthorizationCode) -> Request<Vec<u8>> {
    token_request(cfg, &TokenRequest::authorization_code(code.clone())).unwrap()
}

fn refresh_req(cfg: &Config, refresh_token: &str) -> Request<Vec<u8>> {
    token_request(cfg, &TokenRequest::refresh_token(refresh_token)).unwrap()
}

fn refresh_of(t: &TokenResponse) -> String {
    t.refresh_token.as_ref().unwrap().secret().to_owned()
}

fn access_of(t: &TokenResponse) -> String {
    t.access_token.secret().to_owned()
}

/// Approves `install` and exchanges its code.
fn install(fake: &mut FakeServer, cfg: &Config, install: &Install) -> TokenResponse {
    let code = fake.approve(install);
    parse_token_response(send(fake, &exchange_req(cfg, &code))).unwrap()
}

fn form_req(version: Option<&str>, pairs: &[(&str, &str)]) -> Request<Vec<u8>> {
    let mut b = Request::post(format!("{BASE}/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(v) = version {
        b = b.header("version", v);
    }
    b.body(serde_urlencoded::to_string(pairs).unwrap().into_bytes())
        .unwrap()
}

fn json_req(body: &Value) -> Request<Vec<u8>> {
    Request::post(format!("{BASE}/oauth/token"))
        .header("content-type", "application/json")
        .header("version", "v3")
        .body(serde_json::to_vec(body).unwrap())
        .unwrap()
}

fn location_token_req(v3: bool, bearer: &str, pairs: &[(&str, &str)]) -> Request<Vec<u8>> {
    let path = if v3 {
        "location-token"
    } else {
        "locationToken"
    };
    Request::post(format!("{BASE}/oauth/{path}"))
        .header("authorization", format!("Bearer {bearer}"))
        .header("version", if v3 { "v3" } else { "2021-07-28" })
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(pairs).unwrap().into_bytes())
        .unwrap()
}

fn installed_req(v3: bool, bearer: &str, query: &[(&str, &str)]) -> Request<Vec<u8>> {
    let path = if v3 {
        "installed-locations"
    } else {
        "installedLocations"
    };
    let query = serde_urlencoded::to_string(query).unwrap();
    Request::get(format!("{BASE}/oauth/{path}?{query}"))
        .header("authorization", format!("Bearer {bearer}"))
        .header("version", if v3 { "v3" } else { "2021-07-28" })
        .body(Vec::new())
        .unwrap()
}

fn consent_req(query: &[(&str, &str)]) -> Request<Vec<u8>> {
    let query = serde_urlencoded::to_string(query).unwrap();
    Request::get(format!("{CONSENT}?{query}"))
        .body(Vec::new())
        .unwrap()
}

fn body(resp: &Response<Vec<u8>>) -> Value {
    serde_json::from_slice(resp.body()).unwrap()
}

/// The query of a redirect's `Location`.
fn redirect_query(resp: &Response<Vec<u8>>) -> Vec<(String, String)> {
    let location = resp.headers()[http::header::LOCATION].to_str().unwrap();
    let (base, query) = location.split_once('?').unwrap();
    assert_eq!(base, REDIRECT_URI);
    serde_urlencoded::from_str(query).unwrap()
}

/// An agency: five locations, the app approved on three by a Company install.
fn agency(fake: &mut FakeServer, cfg: &Config) -> TokenResponse {
    for (i, name) in [
        "Alpha Dental",
        "Beta Bakery",
        "Gamma Gym",
        "Delta Diner",
        "Epsilon Spa",
    ]
    .iter()
    .enumerate()
    {
        let id = format!("loc-{}", i + 1);
        fake.add_location("company-1", &id, name, &format!("{} Main St", i + 1));
    }
    let code = fake.approve(&Install::company("company-1", &["loc-1", "loc-2", "loc-4"]));
    let req = token_request(
        cfg,
        &TokenRequest::authorization_code(code).user_type(UserType::Company),
    )
    .unwrap();
    parse_token_response(send(fake, &req)).unwrap()
}

// ---- the token endpoint ------------------------------------------------------------

#[test]
fn code_exchange_answers_the_official_schema_in_each_version() {
    for (version, cfg) in configs() {
        let mut fake = fake();
        let code = fake.approve(&Install::location("company-1", "loc-1"));
        let resp = send(&mut fake, &exchange_req(&cfg, &code));
        snap!(format!("code_exchange_{version}"), render(&resp));
        let keys: Vec<String> = body(&resp).as_object().unwrap().keys().cloned().collect();
        let t = parse_token_response(resp).unwrap();
        assert_eq!(t.token_type.as_deref(), Some("Bearer"));
        assert_eq!(t.expires_in, Some(86_399));
        assert_eq!(t.user_type, Some(UserType::Location));
        assert_eq!(t.location_id.as_deref(), Some("loc-1"));
        assert_eq!(t.company_id.as_deref(), Some("company-1"));
        assert_eq!(t.approved_locations, Some(vec!["loc-1".to_owned()]));
        assert_eq!(t.user_id.as_deref(), Some("user-1"));
        assert_eq!(t.plan_id.as_deref(), Some("plan-1"));
        assert_eq!(t.is_bulk_installation, Some(LenientBool::Bool(false)));
        assert!(t.scope.as_ref().unwrap().contains("contacts.readonly"));
        assert!(t.access_token.len() >= 32 && refresh_of(&t).len() >= 32);
        assert!(fake.is_live_refresh_token(&refresh_of(&t)));
        if version == "v2" {
            assert!(keys.contains(&"access_token".to_owned()));
            assert!(t.extra.contains_key("refreshTokenId"));
        } else {
            assert!(keys.contains(&"accessToken".to_owned()));
            assert!(keys.iter().all(|k| !k.contains('_')), "{keys:?}");
            assert!(t.extra.is_empty(), "{:?}", t.extra);
        }
        assert_eq!(fake.stats().code_exchanges, 1);
    }
}

#[test]
fn company_install_reports_its_approved_locations() {
    let mut fake = fake();
    let t = agency(&mut fake, &config());
    assert_eq!(t.user_type, Some(UserType::Company));
    assert_eq!(t.location_id, None);
    assert_eq!(
        t.approved_locations,
        Some(vec![
            "loc-1".to_owned(),
            "loc-2".to_owned(),
            "loc-4".to_owned()
        ])
    );
    assert_eq!(t.is_bulk_installation, Some(LenientBool::Bool(true)));
    assert_eq!(t.approve_all_locations, Some(LenientBool::Bool(false)));
    assert_eq!(
        t.install_to_future_locations,
        Some(LenientBool::Bool(false))
    );
    assert!(t.scope.as_ref().unwrap().contains("oauth.write"));

    // Approving every location of the company says so.
    let mut fake = self::fake();
    fake.add_location("company-2", "loc-9", "Nine", "9 Main St");
    let code = fake.approve(&Install::company("company-2", &["loc-9"]));
    let resp = send(&mut fake, &exchange_req(&config(), &code));
    snap!("company_code_exchange_v2", render(&resp));
    let t = parse_token_response(resp).unwrap();
    assert_eq!(t.approve_all_locations, Some(LenientBool::Bool(true)));
}

#[test]
fn v3_accepts_a_json_body_and_validates_it() {
    let mut fake = fake();
    let code = fake.approve(&Install::location("company-1", "loc-1"));
    let ok = json!({"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET,
        "grantType": "authorization_code", "code": code.secret(), "userType": "Location"});
    let t = parse_token_response(send(&mut fake, &json_req(&ok))).unwrap();
    assert_eq!(t.location_id.as_deref(), Some("loc-1"));

    let bad = json!({"clientId": 42, "clientSecret": CLIENT_SECRET,
        "grantType": ["refresh_token"], "refreshToken": refresh_of(&t)});
    let resp = send(&mut fake, &json_req(&bad));
    snap!("v3_json_body_422", render(&resp));
    let err = parse_token_response(resp).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidParameter);
    assert_eq!(err.status().unwrap().as_u16(), 422);
    assert_eq!(
        err.messages(),
        ["clientId must be a string", "grantType must be a string"]
    );
    // The refresh token was not spent by the rejected request.
    assert!(fake.is_live_refresh_token(&refresh_of(&t)));

    // A v2 request (no Version header) must be a form.
    let mut v2_json = json_req(&ok);
    v2_json.headers_mut().remove("version");
    let err = parse_token_response(send(&mut fake, &v2_json)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidParameter);
    assert_eq!(err.status().unwrap().as_u16(), 422);
}

#[test]
fn codes_are_single_use() {
    for (version, cfg) in configs() {
        let mut fake = fake();
        let code = fake.approve(&Install::location("company-1", "loc-1"));
        parse_token_response(send(&mut fake, &exchange_req(&cfg, &code))).unwrap();
        let resp = send(&mut fake, &exchange_req(&cfg, &code));
        snap!(format!("code_reused_{version}"), render(&resp));
        let err = parse_token_response(resp).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidGrant);
        assert_eq!(
            err.messages(),
            ["Invalid grant: authorization code is invalid"]
        );

        let unknown = AuthorizationCode::new("cd-000000000000-0000000000000000");
        let err = parse_token_response(send(&mut fake, &exchange_req(&cfg, &unknown)));
        assert_eq!(err.unwrap_err().kind(), ErrorKind::InvalidGrant);
        assert_eq!(fake.stats().code_exchanges, 1);
    }
}

#[test]
fn refresh_tokens_rotate() {
    for (version, cfg) in configs() {
        let mut fake = fake();
        let first = install(&mut fake, &cfg, &Install::location("company-1", "loc-1"));
        let resp = send(&mut fake, &refresh_req(&cfg, &refresh_of(&first)));
        snap!(format!("refresh_{version}"), render(&resp));
        let second = parse_token_response(resp).unwrap();
        assert_ne!(refresh_of(&first), refresh_of(&second));
        assert_ne!(access_of(&first), access_of(&second));
        assert_eq!(second.location_id.as_deref(), Some("loc-1"));
        assert!(!fake.is_live_refresh_token(&refresh_of(&first)));
        assert!(fake.was_issued_refresh_token(&refresh_of(&first)));
        assert!(fake.is_live_refresh_token(&refresh_of(&second)));
        assert!(!fake.was_issued_refresh_token("rt-never-issued"));
        assert_eq!(fake.live_refresh_tokens(), vec![refresh_of(&second)]);

        // And again, with the newest one.
        let third = parse_token_response(send(&mut fake, &refresh_req(&cfg, &refresh_of(&second))))
            .unwrap();
        assert_eq!(fake.live_refresh_tokens(), vec![refresh_of(&third)]);
        assert_eq!(fake.stats().refreshes, 2);
    }
}

#[test]
fn a_spent_refresh_token_is_an_invalid_grant() {
    for (version, cfg) in configs() {
        let mut fake = fake();
        let first = install(&mut fake, &cfg, &Install::location("company-1", "loc-1"));
        let second =
            parse_token_response(send(&mut fake, &refresh_req(&cfg, &refresh_of(&first)))).unwrap();
        let resp = send(&mut fake, &refresh_req(&cfg, &refresh_of(&first)));
        snap!(format!("refresh_token_reused_{version}"), render(&resp));
        let err = parse_token_response(resp).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidGrant);
        assert_eq!(err.status().unwrap().as_u16(), 400);
        assert_eq!(err.messages(), ["Invalid grant: refresh token is invalid"]);
        assert_eq!(fake.stats().spent_refresh_token_reuses, 1);
        // The reuse does not revoke the newest token.
        assert!(fake.is_live_refresh_token(&refresh_of(&second)));

        let err = parse_token_response(send(&mut fake, &refresh_req(&cfg, "rt-unknown-token")));
        assert_eq!(err.unwrap_err().kind(), ErrorKind::InvalidGrant);
        assert_eq!(fake.stats().spent_refresh_token_reuses, 1);
    }
}

#[test]
fn refresh_tokens_expire_after_a_year() {
    let mut fake = fake();
    let t = install(
        &mut fake,
        &config(),
        &Install::location("company-1", "loc-1"),
    );
    let req = refresh_req(&config(), &refresh_of(&t));
    let later = t0() + hoopai_oauth::fake::REFRESH_TOKEN_LIFETIME;
    let err = parse_token_response(fake.handle(&req, later)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidGrant);
    let just_before = later - Duration::from_secs(1);
    parse_token_response(fake.handle(&req, just_before)).unwrap();
}

#[test]
fn bad_client_credentials_get_401() {
    for (version, cfg) in configs() {
        let mut fake = fake();
        let code = fake.approve(&Install::location("company-1", "loc-1"));
        let wrong = Config::builder(CLIENT_ID, "not-the-secret")
            .redirect_uri(REDIRECT_URI)
            .api_version(cfg.api_version())
            .build()
            .unwrap();
        let resp = send(&mut fake, &exchange_req(&wrong, &code));
        snap!(format!("bad_client_{version}"), render(&resp));
        let err = parse_token_response(resp).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidClient);
        assert_eq!(err.status().unwrap().as_u16(), 401);

        let other = Config::builder("someone-else", CLIENT_SECRET)
            .api_version(cfg.api_version())
            .build()
            .unwrap();
        let err = parse_token_response(send(&mut fake, &exchange_req(&other, &code)));
        assert_eq!(err.unwrap_err().kind(), ErrorKind::InvalidClient);

        // The code survives failed client authentication.
        parse_token_response(send(&mut fake, &exchange_req(&cfg, &code))).unwrap();
    }
}

#[test]
fn missing_and_invalid_parameters_get_400() {
    let mut fake = fake();
    let t = install(
        &mut fake,
        &config(),
        &Install::location("company-1", "loc-1"),
    );
    let rt = refresh_of(&t);
    let (id, secret) = (CLIENT_ID, CLIENT_SECRET);
    type Case<'a> = (&'a str, Option<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "no client_id",
            None,
            vec![
                ("client_secret", secret),
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
            ],
            "Missing parameter: clientId",
        ),
        (
            "empty client_id",
            None,
            vec![
                ("client_id", ""),
                ("client_secret", secret),
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
            ],
            "Missing parameter: clientId",
        ),
        (
            "no client_secret",
            None,
            vec![
                ("client_id", id),
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
            ],
            "Missing parameter: clientSecret",
        ),
        (
            "no grant_type",
            None,
            vec![
                ("client_id", id),
                ("client_secret", secret),
                ("refresh_token", &rt),
            ],
            "Missing parameter: grantType",
        ),
        (
            "no refresh_token",
            None,
            vec![
                ("client_id", id),
                ("client_secret", secret),
                ("grant_type", "refresh_token"),
            ],
            "Missing parameter: refreshToken",
        ),
        (
            "no code",
            None,
            vec![
                ("client_id", id),
                ("client_secret", secret),
                ("grant_type", "authorization_code"),
            ],
            "Missing parameter: code",
        ),
        (
            "bad grant_type",
            None,
            vec![
                ("client_id", id),
                ("client_secret", secret),
                ("grant_type", "password"),
            ],
            "Invalid parameter: grantType",
        ),
        (
            "client_credentials",
            None,
            vec![
                ("client_id", id),
                ("client_secret", secret),
                ("grant_type", "client_credentials"),
            ],
            "Invalid parameter: grantType",
        ),
        (
            "bad user_type",
            None,
            vec![
                ("client_id", id),
                ("client_secret", secret),
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
                ("user_type", "Agency"),
            ],
            "Invalid parameter: userType",
        ),
        (
            "user_type of another class",
            None,
            vec![
                ("client_id", id),
                ("client_secret", secret),
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
                ("user_type", "Company"),
            ],
            "Invalid parameter: userType",
        ),
        (
            "v2 names sent as v3",
            Some("v3"),
            vec![
                ("client_id", id),
                ("client_secret", secret),
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
            ],
            "Missing parameter: clientId",
        ),
        (
            "v3 without refreshToken",
            Some("v3"),
            vec![
                ("clientId", id),
                ("clientSecret", secret),
                ("grantType", "refresh_token"),
            ],
            "Missing parameter: refreshToken",
        ),
        (
            "bad Version",
            Some("2020-01-01"),
            vec![
                ("client_id", id),
                ("client_secret", secret),
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
            ],
            "Invalid parameter: version",
        ),
    ];
    let mut table = String::new();
    for (name, version, pairs, message) in cases {
        let resp = send(&mut fake, &form_req(version, &pairs));
        writeln!(table, "# {name}\n{}", String::from_utf8_lossy(resp.body())).unwrap();
        let err = parse_token_response(resp).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidParameter, "{name}");
        assert_eq!(err.status().unwrap().as_u16(), 400, "{name}");
        assert_eq!(err.messages(), [message], "{name}");
    }
    assert_no_token(&table);
    snap!("parameter_errors", table);

    // A repeated field fails validation (422).
    let pairs = [
        ("client_id", id),
        ("client_id", id),
        ("client_secret", secret),
        ("grant_type", "refresh_token"),
        ("refresh_token", &rt),
    ];
    let err = parse_token_response(send(&mut fake, &form_req(None, &pairs))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidParameter);
    assert_eq!(err.messages(), ["clientId must be a string"]);

    // None of it spent the refresh token.
    assert!(fake.is_live_refresh_token(&rt));
}

#[test]
fn each_fault_gets_its_error_kind_and_spends_nothing() {
    let cases = [
        (
            Fault::RateLimited {
                retry_after_secs: Some(7),
            },
            ErrorKind::RateLimited,
            "rate_limited",
        ),
        (
            Fault::RateLimited {
                retry_after_secs: None,
            },
            ErrorKind::RateLimited,
            "rate_limited_no_retry_after",
        ),
        (Fault::ServerError, ErrorKind::ServerError, "server_error"),
        (
            Fault::BadGatewayHtml,
            ErrorKind::ServerError,
            "bad_gateway_html",
        ),
        (
            Fault::LocationNotActive,
            ErrorKind::LocationNotActive,
            "location_not_active",
        ),
    ];
    for (fault, kind, name) in cases {
        let mut fake = fake();
        let t = install(
            &mut fake,
            &config(),
            &Install::location("company-1", "loc-1"),
        );
        fake.fail_next(fault.clone(), 1);
        let resp = send(&mut fake, &refresh_req(&config(), &refresh_of(&t)));
        snap!(format!("fault_{name}"), render(&resp));
        let err = parse_token_response(resp).unwrap_err();
        assert_eq!(err.kind(), kind, "{fault:?}");
        if let Fault::RateLimited { retry_after_secs } = fault {
            let wait = err.retry_after(t0());
            let expected = retry_after_secs.map_or(Duration::from_secs(10), Duration::from_secs);
            assert_eq!(wait, Some(expected));
            assert_eq!(err.rate_limit().unwrap().remaining, Some(0));
        }
        assert!(fake.is_live_refresh_token(&refresh_of(&t)), "{fault:?}");
        assert_eq!(fake.stats().faults_served, 1);
        // The next request is handled normally.
        parse_token_response(send(&mut fake, &refresh_req(&config(), &refresh_of(&t)))).unwrap();
    }
}

#[test]
fn faults_are_served_in_order_for_any_request() {
    let mut fake = fake();
    let t = install(
        &mut fake,
        &config(),
        &Install::location("company-1", "loc-1"),
    );
    fake.fail_next(Fault::ServerError, 2);
    fake.fail_next(
        Fault::RateLimited {
            retry_after_secs: None,
        },
        1,
    );
    fake.fail_next(Fault::BadGatewayHtml, 0);
    let req = refresh_req(&config(), &refresh_of(&t));
    let kinds: Vec<ErrorKind> = (0..3)
        .map(|_| {
            parse_token_response(send(&mut fake, &req))
                .unwrap_err()
                .kind()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ErrorKind::ServerError,
            ErrorKind::ServerError,
            ErrorKind::RateLimited
        ]
    );
    parse_token_response(send(&mut fake, &req)).unwrap();

    // Faults answer other endpoints too.
    fake.fail_next(Fault::ServerError, 1);
    let resp = send(&mut fake, &consent_req(&[("redirect_uri", REDIRECT_URI)]));
    assert_eq!(resp.status(), 500);
    assert_eq!(fake.stats().faults_served, 4);
    assert_eq!(fake.stats().requests, 6);
}

#[test]
fn a_suspended_location_keeps_its_refresh_token() {
    for (_, cfg) in configs() {
        let mut fake = fake();
        let t = install(&mut fake, &cfg, &Install::location("company-1", "loc-1"));
        let rt = refresh_of(&t);
        fake.set_location_active("loc-1", false);
        for _ in 0..2 {
            let err = parse_token_response(send(&mut fake, &refresh_req(&cfg, &rt))).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::LocationNotActive);
            assert_eq!(err.messages(), ["Location is not active"]);
            assert!(fake.is_live_refresh_token(&rt));
        }
        // Another location's suspension does not matter; reactivation does.
        fake.set_location_active("loc-2", false);
        fake.set_location_active("loc-1", true);
        let next = parse_token_response(send(&mut fake, &refresh_req(&cfg, &rt))).unwrap();
        assert!(fake.is_live_refresh_token(&refresh_of(&next)));
        assert!(!fake.is_live_refresh_token(&rt));

        // A code for a suspended location is kept until it is active again.
        let code = fake.approve(&Install::location("company-1", "loc-2"));
        let err = parse_token_response(send(&mut fake, &exchange_req(&cfg, &code))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LocationNotActive);
        fake.set_location_active("loc-2", true);
        parse_token_response(send(&mut fake, &exchange_req(&cfg, &code))).unwrap();
    }
}

// ---- location tokens ---------------------------------------------------------------

#[test]
fn a_company_token_mints_location_tokens() {
    for (version, cfg) in configs() {
        let v3 = version == "v3";
        let mut fake = fake();
        let company = agency(&mut fake, &cfg);
        let bearer = access_of(&company);
        let req = location_token_req(
            v3,
            &bearer,
            &[("companyId", "company-1"), ("locationId", "loc-2")],
        );
        let resp = send(&mut fake, &req);
        assert_eq!(resp.status(), 201);
        snap!(format!("location_token_{version}"), render(&resp));
        let keys: Vec<String> = body(&resp).as_object().unwrap().keys().cloned().collect();
        let mut expected = vec![
            "appId",
            "expires_in",
            "locationId",
            "planId",
            "scope",
            "userId",
            "versionId",
            "access_token",
            "token_type",
            "refresh_token",
        ];
        if v3 {
            expected = vec![
                "appId",
                "expiresIn",
                "locationId",
                "planId",
                "scope",
                "userId",
                "versionId",
                "accessToken",
                "tokenType",
                "refreshToken",
            ];
        }
        expected.sort_unstable();
        assert_eq!(keys, expected);
        let minted = parse_token_response(resp).unwrap();
        assert_eq!(minted.location_id.as_deref(), Some("loc-2"));
        assert_eq!(minted.app_id.as_deref(), Some(app_id()));
        assert_eq!(minted.version_id.as_deref(), Some(app_id()));
        assert_eq!(minted.plan_id.as_deref(), Some("plan-1"));
        assert_eq!(minted.user_id.as_deref(), Some("user-1"));
        assert_eq!(fake.stats().location_tokens, 1);

        // Its refresh token works at /oauth/token and gives a Location token.
        let refreshed =
            parse_token_response(send(&mut fake, &refresh_req(&cfg, &refresh_of(&minted))))
                .unwrap();
        assert_eq!(refreshed.user_type, Some(UserType::Location));
        assert_eq!(refreshed.location_id.as_deref(), Some("loc-2"));
        assert_eq!(refreshed.company_id.as_deref(), Some("company-1"));
        // The Company grant keeps its own refresh token.
        let mut live = fake.live_refresh_tokens();
        live.sort();
        let mut expected = vec![refresh_of(&company), refresh_of(&refreshed)];
        expected.sort();
        assert_eq!(live, expected);
    }
}

#[test]
fn location_token_refusals() {
    for (version, cfg) in configs() {
        let v3 = version == "v3";
        let mut fake = fake();
        let company = agency(&mut fake, &cfg);
        let bearer = access_of(&company);
        let mint = |fake: &mut FakeServer, bearer: &str, pairs: &[(&str, &str)]| {
            send(fake, &location_token_req(v3, bearer, pairs))
        };
        let ok_pairs = [("companyId", "company-1"), ("locationId", "loc-1")];

        // A location the install did not approve.
        let resp = mint(
            &mut fake,
            &bearer,
            &[("companyId", "company-1"), ("locationId", "loc-3")],
        );
        snap!(
            format!("location_token_unapproved_{version}"),
            render(&resp)
        );
        assert_eq!(resp.status(), 403);
        assert_eq!(
            body(&resp)["message"],
            "The token does not have access to this location."
        );

        // Another company.
        let resp = mint(
            &mut fake,
            &bearer,
            &[("companyId", "company-2"), ("locationId", "loc-1")],
        );
        assert_eq!(resp.status(), 403);

        // A Location token as the bearer.
        let minted = parse_token_response(mint(&mut fake, &bearer, &ok_pairs)).unwrap();
        let resp = mint(&mut fake, &access_of(&minted), &ok_pairs);
        snap!(
            format!("location_token_with_location_bearer_{version}"),
            render(&resp)
        );
        assert_eq!(resp.status(), 401);
        assert!(
            body(&resp)["message"]
                .as_str()
                .unwrap()
                .starts_with("This authClass type is not allowed")
        );

        // An unknown bearer, and none at all.
        let resp = mint(&mut fake, "at-000000000000-0000000000000000", &ok_pairs);
        assert_eq!(
            (resp.status().as_u16(), body(&resp)["message"].clone()),
            (401, json!("Invalid JWT"))
        );
        let mut no_bearer = location_token_req(v3, &bearer, &ok_pairs);
        no_bearer.headers_mut().remove("authorization");
        assert_eq!(send(&mut fake, &no_bearer).status(), 401);

        // No Version header.
        let mut no_version = location_token_req(v3, &bearer, &ok_pairs);
        no_version.headers_mut().remove("version");
        let resp = send(&mut fake, &no_version);
        assert_eq!(
            (resp.status().as_u16(), body(&resp)["message"].clone()),
            (400, json!("Missing parameter: version"))
        );

        // Missing fields fail validation.
        let resp = mint(&mut fake, &bearer, &[("companyId", "company-1")]);
        snap!(
            format!("location_token_missing_location_{version}"),
            render(&resp)
        );
        assert_eq!(resp.status(), 422);
        assert_eq!(
            body(&resp)["message"],
            json!(["locationId should not be empty"])
        );

        // A suspended location.
        fake.set_location_active("loc-1", false);
        let resp = mint(&mut fake, &bearer, &ok_pairs);
        assert_eq!(
            (resp.status().as_u16(), body(&resp)["message"].clone()),
            (400, json!("Location is not active"))
        );

        // A Company token without oauth.write.
        let mut narrow = Install::company("company-1", &["loc-1"]);
        narrow.scope = "oauth.readonly".to_owned();
        let narrow = install(&mut fake, &cfg, &narrow);
        let resp = mint(
            &mut fake,
            &access_of(&narrow),
            &[("companyId", "company-1"), ("locationId", "loc-2")],
        );
        assert_eq!(
            (resp.status().as_u16(), body(&resp)["message"].clone()),
            (401, json!("The token is not authorized for this scope."))
        );

        assert_eq!(fake.stats().location_tokens, 1);
    }
}

#[test]
fn access_tokens_expire() {
    let mut fake = fake();
    fake.set_access_lifetime(Duration::from_secs(60));
    let company = agency(&mut fake, &config());
    assert_eq!(company.expires_in, Some(60));
    let at = |secs: u64| t0() + Duration::from_secs(secs);
    let mint = |bearer: &TokenResponse| {
        location_token_req(
            false,
            &access_of(bearer),
            &[("companyId", "company-1"), ("locationId", "loc-1")],
        )
    };

    // A refresh gives a new access token; the old one stays valid until it expires.
    let fresh =
        parse_token_response(fake.handle(&refresh_req(&config(), &refresh_of(&company)), at(30)))
            .unwrap();
    assert_eq!(fake.handle(&mint(&company), at(30)).status(), 201);
    assert_eq!(fake.handle(&mint(&company), at(59)).status(), 201);
    let resp = fake.handle(&mint(&company), at(60));
    assert_eq!(
        (resp.status().as_u16(), body(&resp)["message"].clone()),
        (401, json!("Invalid JWT"))
    );
    assert_eq!(fake.handle(&mint(&fresh), at(89)).status(), 201);
    assert_eq!(fake.handle(&mint(&fresh), at(90)).status(), 401);
}

// ---- installed locations -----------------------------------------------------------

/// Lists every page; returns the ids and the number of pages.
fn list_all_v2(
    fake: &mut FakeServer,
    bearer: &str,
    extra: &[(&str, &str)],
) -> (Vec<String>, usize) {
    let (mut ids, mut pages, mut skip) = (Vec::new(), 0, 0);
    loop {
        let skip_s = skip.to_string();
        let mut query = vec![
            ("companyId", "company-1"),
            ("appId", app_id()),
            ("skip", &skip_s),
            ("limit", "2"),
        ];
        query.extend_from_slice(extra);
        let page = body(&send(fake, &installed_req(false, bearer, &query)));
        pages += 1;
        let items = page["locations"].as_array().unwrap();
        ids.extend(items.iter().map(|l| l["_id"].as_str().unwrap().to_owned()));
        skip += items.len();
        if items.is_empty() || skip >= page["count"].as_u64().unwrap() as usize {
            return (ids, pages);
        }
    }
}

fn list_all_v3(
    fake: &mut FakeServer,
    bearer: &str,
    extra: &[(&str, &str)],
) -> (Vec<String>, usize) {
    let (mut ids, mut pages, mut token) = (Vec::new(), 0, None::<String>);
    loop {
        let mut query = vec![
            ("companyId", "company-1"),
            ("appId", app_id()),
            ("pageSize", "2"),
        ];
        if let Some(t) = &token {
            query.push(("pageToken", t));
        }
        query.extend_from_slice(extra);
        let page = body(&send(fake, &installed_req(true, bearer, &query)));
        pages += 1;
        let items = page["items"].as_array().unwrap();
        ids.extend(items.iter().map(|l| l["_id"].as_str().unwrap().to_owned()));
        assert_eq!(page["pagination"]["currentPageSize"], items.len());
        match page["pagination"]["nextPageToken"].as_str() {
            Some(t) => {
                assert_eq!(page["pagination"]["hasNextPage"], true);
                token = Some(t.to_owned());
            }
            None => {
                assert_eq!(page["pagination"]["hasNextPage"], false);
                return (ids, pages);
            }
        }
    }
}

#[test]
fn installed_locations_v2_pages_and_filters() {
    let mut fake = fake();
    let company = agency(&mut fake, &config());
    let bearer = access_of(&company);
    let first = send(
        &mut fake,
        &installed_req(
            false,
            &bearer,
            &[
                ("companyId", "company-1"),
                ("appId", app_id()),
                ("limit", "2"),
            ],
        ),
    );
    snap!("installed_locations_v2_first_page", render(&first));
    let page = body(&first);
    assert_eq!(page["count"], 5);
    assert_eq!(page["installToFutureLocations"], false);
    assert_eq!(
        page["locations"][0],
        json!({"_id": "loc-1", "name": "Alpha Dental", "address": "1 Main St", "isInstalled": true, "versionId": app_id()})
    );
    assert_eq!(page["locations"][1]["_id"], "loc-2");

    let all: Vec<String> = (1..=5).map(|i| format!("loc-{i}")).collect();
    assert_eq!(list_all_v2(&mut fake, &bearer, &[]), (all, 3));
    let installed = vec!["loc-1".to_owned(), "loc-2".to_owned(), "loc-4".to_owned()];
    assert_eq!(
        list_all_v2(&mut fake, &bearer, &[("isInstalled", "true")]),
        (installed, 2)
    );
    let not = vec!["loc-3".to_owned(), "loc-5".to_owned()];
    assert_eq!(
        list_all_v2(&mut fake, &bearer, &[("isInstalled", "false")]).0,
        not
    );
    assert_eq!(
        list_all_v2(&mut fake, &bearer, &[("query", "BAKERY")]).0,
        ["loc-2"]
    );
    assert_eq!(
        list_all_v2(&mut fake, &bearer, &[("locationId", "loc-5")]).0,
        ["loc-5"]
    );
    assert_eq!(
        list_all_v2(&mut fake, &bearer, &[("planId", "plan-1")])
            .0
            .len(),
        3
    );
    assert_eq!(
        list_all_v2(&mut fake, &bearer, &[("onTrial", "true")])
            .0
            .len(),
        0
    );
    let pages_served = fake.stats().installed_location_pages;
    assert_eq!(pages_served, 1 + 3 + 2 + 1 + 1 + 1 + 2 + 1);

    // Refusals.
    let q = |extra: &[(&'static str, &'static str)]| {
        let mut q = vec![("companyId", "company-1"), ("appId", app_id())];
        q.extend_from_slice(extra);
        q
    };
    let mut table = String::new();
    let mut refuse = |name: &str, fake: &mut FakeServer, req: Request<Vec<u8>>, status: u16| {
        let resp = send(fake, &req);
        assert_eq!(resp.status().as_u16(), status, "{name}");
        writeln!(
            table,
            "# {name}\nHTTP {}\n{}",
            resp.status(),
            String::from_utf8_lossy(resp.body())
        )
        .unwrap();
    };
    refuse(
        "bad skip",
        &mut fake,
        installed_req(false, &bearer, &q(&[("skip", "-1")])),
        400,
    );
    refuse(
        "zero limit",
        &mut fake,
        installed_req(false, &bearer, &q(&[("limit", "0")])),
        400,
    );
    refuse(
        "bad isInstalled",
        &mut fake,
        installed_req(false, &bearer, &q(&[("isInstalled", "yes")])),
        400,
    );
    refuse(
        "no companyId",
        &mut fake,
        installed_req(false, &bearer, &[("appId", app_id())]),
        400,
    );
    refuse(
        "unknown app",
        &mut fake,
        installed_req(
            false,
            &bearer,
            &[("companyId", "company-1"), ("appId", "other-app")],
        ),
        404,
    );
    refuse(
        "another company",
        &mut fake,
        installed_req(
            false,
            &bearer,
            &[("companyId", "company-2"), ("appId", app_id())],
        ),
        403,
    );
    let minted = parse_token_response(send(
        &mut fake,
        &location_token_req(
            false,
            &bearer,
            &[("companyId", "company-1"), ("locationId", "loc-1")],
        ),
    ))
    .unwrap();
    refuse(
        "Location bearer",
        &mut fake,
        installed_req(false, &access_of(&minted), &q(&[])),
        401,
    );
    let mut no_version = installed_req(false, &bearer, &q(&[]));
    no_version.headers_mut().remove("version");
    refuse("no Version", &mut fake, no_version, 400);
    assert_no_token(&table);
    snap!("installed_locations_v2_refusals", table);
    assert_eq!(fake.stats().installed_location_pages, pages_served);
}

#[test]
fn installed_locations_v3_pages_with_tokens() {
    let mut fake = fake();
    let company = agency(&mut fake, &common::config_v3());
    let bearer = access_of(&company);
    let all: Vec<String> = (1..=5).map(|i| format!("loc-{i}")).collect();
    assert_eq!(list_all_v3(&mut fake, &bearer, &[]), (all, 3));
    assert_eq!(
        list_all_v3(&mut fake, &bearer, &[("isInstalled", "true")]).0,
        ["loc-1", "loc-2", "loc-4"]
    );

    let base = [
        ("companyId", "company-1"),
        ("appId", app_id()),
        ("pageSize", "2"),
    ];
    let first = send(
        &mut fake,
        &installed_req(
            true,
            &bearer,
            &[&base[..], &[("isInstalled", "true")]].concat(),
        ),
    );
    snap!("installed_locations_v3_first_page", render(&first));
    let next = body(&first)["pagination"]["nextPageToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let last = send(
        &mut fake,
        &installed_req(
            true,
            &bearer,
            &[&base[..], &[("isInstalled", "true"), ("pageToken", &next)]].concat(),
        ),
    );
    snap!("installed_locations_v3_last_page", render(&last));
    let last = body(&last);
    assert_eq!(last["pagination"]["hasPrevPage"], true);
    assert_eq!(last["pagination"]["totalRecords"], 3);

    // The same page through the v2 path with a `Version: v3` header.
    let mut by_header = installed_req(false, &bearer, &base);
    by_header
        .headers_mut()
        .insert("version", "v3".parse().unwrap());
    assert_eq!(
        body(&send(&mut fake, &by_header))["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let mut table = String::new();
    for (name, query, status) in [
        (
            "pageSize 0",
            vec![
                ("companyId", "company-1"),
                ("appId", app_id()),
                ("pageSize", "0"),
            ],
            400,
        ),
        (
            "pageSize 101",
            vec![
                ("companyId", "company-1"),
                ("appId", app_id()),
                ("pageSize", "101"),
            ],
            400,
        ),
        (
            "bad pageToken",
            vec![
                ("companyId", "company-1"),
                ("appId", app_id()),
                ("pageToken", "eyJza2lwIjoyMH0"),
            ],
            400,
        ),
        ("no appId", vec![("companyId", "company-1")], 400),
        (
            "unknown app",
            vec![("companyId", "company-1"), ("appId", "abc")],
            404,
        ),
        (
            "another company",
            vec![("companyId", "company-2"), ("appId", app_id())],
            403,
        ),
    ] {
        let resp = send(&mut fake, &installed_req(true, &bearer, &query));
        assert_eq!(resp.status().as_u16(), status, "{name}");
        let b = body(&resp);
        assert!(
            b["error"]["code"].is_string() && b["error"]["message"].is_string(),
            "{name}: {b}"
        );
        writeln!(
            table,
            "# {name}\nHTTP {}\n{}",
            resp.status(),
            String::from_utf8_lossy(resp.body())
        )
        .unwrap();
    }
    assert_no_token(&table);
    snap!("installed_locations_v3_refusals", table);
}

// ---- consent -------------------------------------------------------------------------

#[test]
fn consent_redirects_with_a_code_and_the_state() {
    let mut fake = fake();
    let resp = send(
        &mut fake,
        &consent_req(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "contacts.readonly locations.readonly"),
            ("state", "s t&a=t+e"),
        ]),
    );
    snap!("consent_redirect", render(&resp));
    assert_eq!(resp.status(), 302);
    let query = redirect_query(&resp);
    assert_eq!(query[0].0, "code");
    assert_eq!(query[1], ("state".to_owned(), "s t&a=t+e".to_owned()));
    let code = AuthorizationCode::new(query[0].1.clone());

    // The exchange must name the same redirect URI.
    let other = token_request(
        &config(),
        &TokenRequest::authorization_code(code.clone()).redirect_uri("https://evil.example/cb"),
    )
    .unwrap();
    let err = parse_token_response(send(&mut fake, &other)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidGrant);
    let t = parse_token_response(send(&mut fake, &exchange_req(&config(), &code))).unwrap();
    assert_eq!(t.location_id.as_deref(), Some("loc-1"));
    assert_eq!(
        t.scope.unwrap().as_str(),
        "contacts.readonly locations.readonly"
    );

    // No state sent, none echoed; the consent install is configurable.
    fake.set_consent_install(Install::company("company-7", &["loc-70"]));
    let resp = send(
        &mut fake,
        &consent_req(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
        ]),
    );
    let query = redirect_query(&resp);
    assert_eq!(query.len(), 1);
    let code = AuthorizationCode::new(query[0].1.clone());
    let req = token_request(
        &config(),
        &TokenRequest::authorization_code(code).user_type(UserType::Company),
    )
    .unwrap();
    let t = parse_token_response(send(&mut fake, &req)).unwrap();
    assert_eq!(t.company_id.as_deref(), Some("company-7"));
}

#[test]
fn consent_refusals() {
    let mut fake = fake();
    let resp = send(
        &mut fake,
        &consent_req(&[
            ("response_type", "code"),
            ("client_id", "someone-else"),
            ("redirect_uri", REDIRECT_URI),
            ("state", "xyz"),
        ]),
    );
    snap!("consent_wrong_client", render(&resp));
    assert_eq!(resp.status(), 302);
    let query = redirect_query(&resp);
    assert_eq!(query[0], ("error".to_owned(), "invalid_request".to_owned()));
    assert_eq!(query[2], ("state".to_owned(), "xyz".to_owned()));

    let resp = send(
        &mut fake,
        &consent_req(&[
            ("response_type", "token"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
        ]),
    );
    assert_eq!(redirect_query(&resp)[0].1, "invalid_request");

    let resp = send(
        &mut fake,
        &consent_req(&[("response_type", "code"), ("client_id", CLIENT_ID)]),
    );
    assert_eq!(
        (resp.status().as_u16(), body(&resp)["message"].clone()),
        (400, json!("Missing parameter: redirect_uri"))
    );
    let resp = send(
        &mut fake,
        &consent_req(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", "/relative"),
        ]),
    );
    assert_eq!(resp.status(), 400);
    assert_eq!(fake.live_refresh_tokens().len(), 0);
}

// ---- everything else -----------------------------------------------------------------

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
