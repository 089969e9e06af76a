//! The fake's consent page: a redirect with a code and the state, and its
//! refusals.
mod common;

use common::{CLIENT_ID, REDIRECT_URI, config};
use hoopai_oauth::fake::Install;
use hoopai_oauth::{
    AuthorizationCode, ErrorKind, TokenRequest, UserType, parse_token_response, token_request,
};
use serde_json::json;

use common::fake_http::{body, consent_req, exchange_req, fake, redirect_query, render, send};

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
