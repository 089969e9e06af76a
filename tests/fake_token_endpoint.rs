//! The fake's token endpoint answers code exchanges and refreshes as the
//! real one would, and refuses bad requests with the real errors.
mod common;

use std::fmt::Write;
use std::time::Duration;

use common::{CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, config, t0};
use hoopai_oauth::fake::Install;
use hoopai_oauth::{
    AuthorizationCode, Config, ErrorKind, LenientBool, UserType, parse_token_response,
};
use serde_json::json;

use common::fake_http::{
    access_of, agency, assert_no_token, body, configs, exchange_req, fake, form_req, install,
    json_req, refresh_of, refresh_req, render, send,
};

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
