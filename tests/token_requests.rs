//! Every `POST /oauth/token` request the crate builds, byte for byte.

mod common;

use common::{CLIENT_ID, CLIENT_SECRET, config, render_request};
use hoopai_oauth::{Config, ErrorKind, TokenRequest, UserType, token_request};

fn requests() -> Vec<(&'static str, TokenRequest)> {
    vec![
        (
            "authorization_code",
            TokenRequest::authorization_code("placeholder-code"),
        ),
        (
            "authorization_code_company",
            TokenRequest::authorization_code("placeholder-code").user_type(UserType::Company),
        ),
        (
            "authorization_code_location",
            TokenRequest::authorization_code("placeholder-code").user_type(UserType::Location),
        ),
        (
            "refresh_token",
            TokenRequest::refresh_token("placeholder-refresh-token"),
        ),
        (
            "refresh_token_company",
            TokenRequest::refresh_token("placeholder-refresh-token").user_type(UserType::Company),
        ),
        (
            "refresh_token_location",
            TokenRequest::refresh_token("placeholder-refresh-token").user_type(UserType::Location),
        ),
        ("client_credentials", TokenRequest::client_credentials()),
        (
            "client_credentials_company",
            TokenRequest::client_credentials().user_type(UserType::Company),
        ),
        (
            "client_credentials_location",
            TokenRequest::client_credentials().user_type(UserType::Location),
        ),
    ]
}

#[test]
fn every_grant_with_and_without_user_type_v2() {
    for (name, req) in requests() {
        let built = token_request(&config(), &req).unwrap();
        snap!(format!("v2_{name}"), render_request(&built));
    }
}

#[test]
fn every_grant_with_and_without_user_type_v3() {
    for (name, req) in requests() {
        let built = token_request(&common::config_v3(), &req).unwrap();
        snap!(format!("v3_{name}"), render_request(&built));
    }
}

#[test]
fn no_authorization_header_and_the_documented_content_type() {
    for (_, req) in requests() {
        let built = token_request(&config(), &req).unwrap();
        assert!(built.headers().get(http::header::AUTHORIZATION).is_none());
        assert_eq!(
            built.headers()[http::header::CONTENT_TYPE],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(built.headers()[http::header::ACCEPT], "application/json");
        assert_eq!(built.method(), http::Method::POST);
    }
}

/// Awkward characters in the secret, the code and the redirect URI must come
/// back unchanged from a standard form decoder. (A redirect URI is ASCII, with
/// its other characters percent-encoded: see `round_trips.rs`.)
#[test]
fn awkward_characters_survive_a_decode() {
    let secret = "s e&c=r+e%t/ü€🔑?#";
    let code = "c o&d=e+%2B";
    let redirect = "https://my.app/cb/%C3%BCn%C3%AF;v=1?x=1&y=a+b&z=%26%3D&w=!$'()*,;:@/?";
    let config = Config::builder("id-with+plus", secret)
        .redirect_uri(redirect)
        .build()
        .unwrap();
    let built = token_request(&config, &TokenRequest::authorization_code(code)).unwrap();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(built.body()).unwrap();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("client_id"), Some("id-with+plus"));
    assert_eq!(get("client_secret"), Some(secret));
    assert_eq!(get("code"), Some(code));
    assert_eq!(get("redirect_uri"), Some(redirect));
    // Nothing raw leaks through: the body is pure ASCII.
    assert!(built.body().is_ascii());
    snap!(render_request(&built));
}

#[test]
fn field_order_is_fixed() {
    let built = token_request(
        &config(),
        &TokenRequest::authorization_code("c").user_type(UserType::Location),
    )
    .unwrap();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(built.body()).unwrap();
    let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "client_id",
            "client_secret",
            "grant_type",
            "code",
            "user_type",
            "redirect_uri"
        ]
    );
    // Building twice gives identical bytes.
    let again = token_request(
        &config(),
        &TokenRequest::authorization_code("c").user_type(UserType::Location),
    )
    .unwrap();
    assert_eq!(built.body(), again.body());
}

#[test]
fn a_per_request_redirect_uri_overrides_the_config() {
    let built = token_request(
        &config(),
        &TokenRequest::authorization_code("c").redirect_uri("https://other.example/cb"),
    )
    .unwrap();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(built.body()).unwrap();
    assert!(pairs.contains(&("redirect_uri".into(), "https://other.example/cb".into())));
}

#[test]
fn a_code_exchange_without_any_redirect_uri_omits_it() {
    let config = Config::builder(CLIENT_ID, CLIENT_SECRET).build().unwrap();
    let built = token_request(&config, &TokenRequest::authorization_code("c")).unwrap();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(built.body()).unwrap();
    assert!(pairs.iter().all(|(k, _)| k != "redirect_uri"));
}

#[test]
fn a_white_label_base_url_is_used_as_given() {
    let config = Config::builder(CLIENT_ID, CLIENT_SECRET)
        .base_url("https://api.white-label.example/prefix/")
        .build()
        .unwrap();
    let built = token_request(&config, &TokenRequest::client_credentials()).unwrap();
    assert_eq!(
        built.uri().to_string(),
        "https://api.white-label.example/prefix/oauth/token"
    );
}

#[test]
fn bad_inputs_build_nothing() {
    let cases: Vec<(&str, TokenRequest)> = vec![
        ("empty code", TokenRequest::authorization_code("")),
        ("blank code", TokenRequest::authorization_code("   ")),
        ("empty refresh token", TokenRequest::refresh_token("")),
        (
            "relative redirect",
            TokenRequest::authorization_code("c").redirect_uri("/oauth/callback"),
        ),
        (
            "redirect without host",
            TokenRequest::authorization_code("c").redirect_uri("https://"),
        ),
        (
            "empty redirect",
            TokenRequest::authorization_code("c").redirect_uri(""),
        ),
        (
            "unknown user type",
            TokenRequest::refresh_token("r").user_type(UserType::parse("Agency")),
        ),
    ];
    let mut report = String::new();
    for (name, req) in cases {
        let err = token_request(&config(), &req).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name}");
        report.push_str(&format!("{name}: {err}\n"));
    }
    snap!(report);
}
