//! No secret is ever printed in full: not by `Debug`, `Display`, nor an error.

mod common;

use common::{CLIENT_ID, response};
use hoopai_oauth::{
    AccessToken, AuthorizationCode, ClientSecret, Config, RefreshToken, TokenRequest, TokenSet,
    parse_token_response, token_request,
};

// Realistic, JWT-length values that must never appear in output.
const SECRET: &str = "cs_live_5f1e9a0b7c3d4e2f8a6b0c1d2e3f4a5b";
const ACCESS: &str =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdXRoQ2xhc3MiOiJMb2NhdGlvbiJ9.c2lnbmF0dXJl";
const REFRESH: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyZWZyZXNoIjp0cnVlfQ.cmVmcmVzaHNpZw";
const CODE: &str = "4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a99887766554433";

fn assert_clean(what: &str, text: &str) {
    for secret in [SECRET, ACCESS, REFRESH, CODE] {
        assert!(!text.contains(secret), "{what} leaks a secret: {text}");
        // Not even a large piece of one.
        assert!(
            !text.contains(&secret[..20]),
            "{what} leaks part of a secret: {text}"
        );
    }
}

#[test]
fn newtypes_redact() {
    assert_clean(
        "ClientSecret",
        &format!(
            "{:?} {}",
            ClientSecret::new(SECRET),
            ClientSecret::new(SECRET)
        ),
    );
    assert_clean(
        "AccessToken",
        &format!(
            "{:?} {}",
            AccessToken::new(ACCESS),
            AccessToken::new(ACCESS)
        ),
    );
    assert_clean(
        "RefreshToken",
        &format!(
            "{:?} {}",
            RefreshToken::new(REFRESH),
            RefreshToken::new(REFRESH)
        ),
    );
    assert_clean(
        "AuthorizationCode",
        &format!(
            "{:?} {}",
            AuthorizationCode::new(CODE),
            AuthorizationCode::new(CODE)
        ),
    );
}

#[test]
fn config_token_and_request_debug_redact() {
    let config = Config::builder(CLIENT_ID, SECRET).build().unwrap();
    assert_clean("Config", &format!("{config:?} {config:#?}"));
    let req = TokenRequest::refresh_token(REFRESH);
    assert_clean("TokenRequest", &format!("{req:?}"));
    let code = TokenRequest::authorization_code(CODE);
    assert_clean("TokenRequest", &format!("{code:?}"));
    // The built request carries them (it must), but only in its body bytes.
    let built = token_request(&config, &req).unwrap();
    assert!(built.headers().iter().all(|(_, v)| {
        !v.as_bytes()
            .windows(20)
            .any(|w| w == &SECRET.as_bytes()[..20])
    }));

    let body = serde_json::json!({
        "access_token": ACCESS, "refresh_token": REFRESH, "expires_in": 86399,
        "unknownSecretField": SECRET, "nested": {"id_token": ACCESS}, "list": [REFRESH],
    });
    let token = parse_token_response(response(200, &[], body.to_string())).unwrap();
    assert_clean("TokenResponse", &format!("{token:?} {token:#?}"));
    let set = TokenSet::new(token, common::t0());
    assert_clean("TokenSet", &format!("{set:?}"));
}

#[test]
fn errors_redact_tokens_echoed_by_the_server() {
    let bodies = [
        (
            400,
            format!(
                r#"{{"statusCode":400,"message":"Invalid grant: refresh token {REFRESH} is invalid"}}"#
            ),
        ),
        (
            422,
            format!(
                r#"{{"statusCode":422,"message":["client_secret {SECRET} is wrong","code {CODE}"]}}"#
            ),
        ),
        (
            200,
            format!(r#"{{"access_token":"{ACCESS}","refresh_token":"{REFRESH}""#),
        ),
        (
            200,
            format!(r#"{{"refresh_token":"{REFRESH}","note":"no access token"}}"#),
        ),
        (
            502,
            format!("<html><body>upstream said {ACCESS}</body></html>"),
        ),
        (
            200,
            format!(r#"{{"error":"invalid_grant","error_description":"{CODE} was used"}}"#),
        ),
    ];
    for (status, body) in bodies {
        let err = parse_token_response(response(status, &[], body.clone())).unwrap_err();
        assert_clean("Error", &format!("{err:?} {err:#?} {err}"));
        for m in err.messages() {
            assert_clean("Error message", m);
        }
        if let Some(x) = err.excerpt() {
            assert_clean("Error excerpt", x);
        }
    }
}

#[test]
fn config_errors_never_quote_the_secret() {
    let err = Config::builder(CLIENT_ID, SECRET)
        .base_url("http://example.com")
        .build()
        .unwrap_err();
    assert_clean("config error", &format!("{err:?} {err}"));
}

#[test]
fn the_engine_and_its_outputs_redact() {
    use hoopai_oauth::{Engine, EngineSettings, TokenSet};
    let config = Config::builder(CLIENT_ID, SECRET).build().unwrap();
    let mut engine = Engine::new(config, EngineSettings::default());
    let body = serde_json::json!({
        "access_token": ACCESS, "refresh_token": REFRESH, "expires_in": 86399,
        "userType": "Location", "locationId": "loc-1",
    });
    let token = parse_token_response(response(200, &[], body.to_string())).unwrap();
    let now = common::t0();
    engine
        .insert("loc-1", TokenSet::new(token, now), now)
        .unwrap();
    engine.refresh_now("loc-1", None, now).unwrap();
    let outputs = common::drain_written(&mut engine, now);
    for output in &outputs {
        assert_clean("Output", &format!("{output:?} {output:#?}"));
    }
    assert!(outputs.len() >= 2, "a persist and a send: {outputs:?}");
    assert_clean("Engine", &format!("{engine:?}"));
    let record = engine.grants().get("loc-1").map(|g| g.record()).unwrap();
    assert_clean("GrantRecord", &format!("{record:?}"));
    let status = engine.access_token("loc-1", now).unwrap();
    assert_clean("TokenStatus", &format!("{status:?}"));
}
