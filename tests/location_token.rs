//! `POST /oauth/locationToken` (v3 `/oauth/location-token`): the request in
//! both versions, the Company-bearer check, and every answer.

mod common;

use std::fmt::Write;

use common::{config, render_request, response, t0};
use hoopai_oauth::{
    AccessToken, Error, ErrorKind, LOCATION_TOKEN_REQUIRED_FIELDS, LocationTokenRequest,
    MAX_BODY_BYTES, TokenResponse, TokenSet, Unreadable, UserType, location_token_request,
    missing_location_token_fields, parse_location_token_response, parse_token_response, redact,
};
use serde_json::{Value, json};

const COMPANY_TOKEN: &str = "placeholder-company-access-token-000001";
const COMPANY_ID: &str = "tDtDnQdgm2LXpyiqYvZ6";
const LOCATION_ID: &str = "l1C08ntBrFjLS0elLIYU";

/// `render_request` with the bearer token redacted.
fn render(req: &http::Request<Vec<u8>>) -> String {
    let text = render_request(req);
    let auth = req.headers()[http::header::AUTHORIZATION].to_str().unwrap();
    let token = auth.strip_prefix("Bearer ").unwrap();
    assert!(text.contains(token));
    text.replace(token, &redact(token))
}

type Built = Result<http::Request<Vec<u8>>, Error>;

/// A Company token answer, as `/oauth/token` gives it.
fn company_token() -> TokenResponse {
    parse_token_response(response(
        200,
        &[],
        json!({
            "access_token": COMPANY_TOKEN,
            "token_type": "Bearer",
            "expires_in": 86399,
            "refresh_token": "placeholder-company-refresh-token-00001",
            "scope": "oauth.readonly oauth.write",
            "userType": "Company",
            "companyId": COMPANY_ID,
            "approvedLocations": [LOCATION_ID],
            "userId": "u1",
        })
        .to_string(),
    ))
    .unwrap()
}

/// A v2 location token answer, with every documented field.
fn location_answer() -> Value {
    json!({
        "access_token": "placeholder-location-access-token-00001",
        "token_type": "Bearer",
        "expires_in": 86399,
        "scope": "conversations/message.readonly conversations/message.write",
        "locationId": LOCATION_ID,
        "planId": "plan-1",
        "userId": "u1",
        "appId": "6578278e879ad2646715ba9c",
        "versionId": "6578278e879ad2646715ba9d",
    })
}

// ---- requests --------------------------------------------------------------------

#[test]
fn v2_request() {
    let req = location_token_request(
        &config(),
        &company_token(),
        &LocationTokenRequest::new(COMPANY_ID, LOCATION_ID),
    )
    .unwrap();
    assert_eq!(req.method(), http::Method::POST);
    assert_eq!(
        req.uri(),
        "https://services.leadconnectorhq.com/oauth/locationToken"
    );
    assert_eq!(req.headers()["version"], "2021-07-28");
    assert_eq!(
        req.headers()["authorization"],
        format!("Bearer {COMPANY_TOKEN}").as_str()
    );
    assert!(req.headers()["authorization"].is_sensitive());
    assert_eq!(
        req.headers()["content-type"],
        "application/x-www-form-urlencoded"
    );
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(req.body()).unwrap();
    assert_eq!(
        form,
        [
            ("companyId".to_owned(), COMPANY_ID.to_owned()),
            ("locationId".to_owned(), LOCATION_ID.to_owned())
        ]
    );
    snap!(render(&req));
}

#[test]
fn v3_request() {
    let req = location_token_request(
        &common::config_v3(),
        &company_token(),
        &LocationTokenRequest::new(COMPANY_ID, LOCATION_ID),
    )
    .unwrap();
    assert_eq!(
        req.uri(),
        "https://services.leadconnectorhq.com/oauth/location-token"
    );
    assert_eq!(req.headers()["version"], "v3");
    snap!(render(&req));
}

/// A token set, a token answer and a bare access token all make the same request.
#[test]
fn every_kind_of_bearer_builds_the_same_request() {
    let body = LocationTokenRequest::new(COMPANY_ID, "loc with spaces&=");
    let from_answer = location_token_request(&config(), &company_token(), &body).unwrap();
    let set = TokenSet::new(company_token(), t0());
    let from_set = location_token_request(&config(), &set, &body).unwrap();
    let bare = AccessToken::new(COMPANY_TOKEN);
    let from_bare = location_token_request(&config(), &bare, &body).unwrap();
    let by_ref = location_token_request(&config(), &&bare, &body).unwrap();
    for other in [&from_set, &from_bare, &by_ref] {
        assert_eq!(render_request(other), render_request(&from_answer));
    }
    // A token answer without userType or locationId is taken as it is.
    let mut unknown = company_token();
    unknown.user_type = None;
    assert!(location_token_request(&config(), &unknown, &body).is_ok());
    snap!(render(&from_answer));
}

#[test]
fn bad_inputs_build_nothing() {
    let location_answer =
        parse_location_token_response(response(200, &[], location_answer().to_string())).unwrap();
    let mut location_by_type = company_token();
    location_by_type.user_type = Some(UserType::Location);
    let mut location_by_id = company_token();
    location_by_id.user_type = None;
    location_by_id.location_id = Some(LOCATION_ID.into());
    let location_set = TokenSet::new(location_answer.clone(), t0());
    let good = LocationTokenRequest::new(COMPANY_ID, LOCATION_ID);

    let cases: Vec<(&str, Built)> = vec![
        (
            "empty company id",
            location_token_request(
                &config(),
                &company_token(),
                &LocationTokenRequest::new("", LOCATION_ID),
            ),
        ),
        (
            "blank location id",
            location_token_request(
                &config(),
                &company_token(),
                &LocationTokenRequest::new(COMPANY_ID, "  "),
            ),
        ),
        (
            "a location token answer as bearer",
            location_token_request(&config(), &location_answer, &good),
        ),
        (
            "a location token set as bearer",
            location_token_request(&common::config_v3(), &location_set, &good),
        ),
        (
            "a token with userType Location",
            location_token_request(&config(), &location_by_type, &good),
        ),
        (
            "a token with a locationId and no userType",
            location_token_request(&config(), &location_by_id, &good),
        ),
        (
            "an empty access token",
            location_token_request(&config(), &AccessToken::new(""), &good),
        ),
        (
            "an access token with a line break",
            location_token_request(
                &config(),
                &AccessToken::new("placeholder\r\nX-Injected: 1"),
                &good,
            ),
        ),
    ];
    let mut out = String::new();
    for (name, result) in cases {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name}");
        let shown = format!("{err:?} {err}");
        assert!(
            !shown.contains("placeholder-location-access-token"),
            "{shown}"
        );
        writeln!(out, "{name}: {err}").unwrap();
    }
    snap!(out);
}

// ---- answers ---------------------------------------------------------------------

fn parse(status: u16, body: impl Into<Vec<u8>>) -> Result<TokenResponse, Error> {
    parse_location_token_response(response(status, &[], body))
}

#[test]
fn v2_answer_with_every_field() {
    let token = parse(200, location_answer().to_string()).unwrap();
    assert_eq!(token.location_id.as_deref(), Some(LOCATION_ID));
    assert_eq!(token.app_id.as_deref(), Some("6578278e879ad2646715ba9c"));
    assert_eq!(
        token.version_id.as_deref(),
        Some("6578278e879ad2646715ba9d")
    );
    assert_eq!(token.user_type, Some(UserType::Location));
    assert!(token.refresh_token.is_none());
    assert!(missing_location_token_fields(&token).is_empty());
    snap!(format!("{token:#?}"));
}

/// The live report: 201, camelCase v3 names, a refresh token, an extra field.
#[test]
fn v3_answer_201_with_refresh_token_and_extras() {
    let token = parse(
        201,
        json!({
            "accessToken": "placeholder-location-access-token-00002",
            "tokenType": "Bearer",
            "expiresIn": "86399",
            "refreshToken": "placeholder-location-refresh-token-0002",
            "scope": "contacts.readonly",
            "locationId": LOCATION_ID,
            "planId": "plan-1",
            "userId": "u1",
            "traceId": "t-1",
        })
        .to_string(),
    )
    .unwrap();
    assert_eq!(token.expires_in, Some(86_399));
    assert_eq!(
        token.refresh_token.as_ref().unwrap().secret(),
        "placeholder-location-refresh-token-0002"
    );
    assert_eq!(token.extra["traceId"], "t-1");
    snap!(format!("{token:#?}"));
}

/// Any 2xx is success.
#[test]
fn any_2xx_is_success() {
    for status in [200, 201, 202, 203, 299] {
        assert!(
            parse(status, location_answer().to_string()).is_ok(),
            "{status}"
        );
    }
}

/// The docs' "always present" fields are checked by the caller, not by the
/// parser: the OpenAPI requires only `userId`, and a working token is never
/// thrown away over a missing `planId` (free apps have none).
#[test]
fn each_missing_documented_field_is_named_but_not_fatal() {
    let mut out = String::new();
    for field in LOCATION_TOKEN_REQUIRED_FIELDS {
        let mut body = location_answer();
        body.as_object_mut().unwrap().remove(field);
        let token = parse(200, body.to_string()).unwrap();
        assert_eq!(missing_location_token_fields(&token), vec![field]);
        writeln!(
            out,
            "{field}: missing {:?}",
            missing_location_token_fields(&token)
        )
        .unwrap();
    }
    // Several at once, one of them unreadable rather than missing.
    let token = parse(
        200,
        json!({"access_token": "placeholder-location-access-token-00003", "expires_in": "soon"})
            .to_string(),
    )
    .unwrap();
    writeln!(
        out,
        "several: missing {:?}",
        missing_location_token_fields(&token)
    )
    .unwrap();
    let err = parse(200, json!({"token_type": "Bearer"}).to_string()).unwrap_err();
    assert_eq!(err.unreadable_reason(), Some(Unreadable::UnexpectedShape));
    writeln!(out, "no access token: {err}").unwrap();
    snap!(out);
}

/// A missing required field never costs a refresh token: the answer is kept.
#[test]
fn a_refresh_token_is_never_dropped_over_a_missing_field() {
    let token = parse(
        200,
        json!({
            "access_token": "placeholder-location-access-token-00004",
            "refresh_token": "placeholder-location-refresh-token-0004",
        })
        .to_string(),
    )
    .unwrap();
    assert_eq!(
        token.refresh_token.as_ref().unwrap().secret(),
        "placeholder-location-refresh-token-0004"
    );
    assert_eq!(
        missing_location_token_fields(&token),
        LOCATION_TOKEN_REQUIRED_FIELDS
    );
    snap!(format!("{token:#?}"));
}

#[test]
fn error_answers() {
    let big = {
        let mut b = br#"{"access_token":""#.to_vec();
        b.resize(MAX_BODY_BYTES + 1, b'a');
        b
    };
    let cases: Vec<(&str, u16, Vec<u8>, ErrorKind)> = vec![
        (
            "forbidden location",
            403,
            json!({"statusCode": 403, "message": "The token does not have access to this location.", "error": "Forbidden"}).to_string().into(),
            ErrorKind::Forbidden,
        ),
        (
            "auth class",
            401,
            json!({"status": 401, "message": "This authClass type is not allowed to access this scope. Please reach out to the Platform team to get it added.", "name": "HttpException", "traceId": "6a1b2c3d-0000-4000-8000-123456789abc"}).to_string().into(),
            ErrorKind::Unauthorized,
        ),
        (
            "scope not authorized",
            401,
            json!({"statusCode": 401, "message": "The token is not authorized for this scope.", "error": "Unauthorized"}).to_string().into(),
            ErrorKind::Unauthorized,
        ),
        (
            "invalid JWT",
            401,
            json!({"statusCode": 401, "message": "Invalid JWT"}).to_string().into(),
            ErrorKind::Unauthorized,
        ),
        (
            "bad request",
            400,
            json!({"statusCode": 400, "message": "Bad Request"}).to_string().into(),
            ErrorKind::Rejected,
        ),
        (
            "missing parameter",
            400,
            json!({"statusCode": 400, "message": "Missing parameter: locationId"}).to_string().into(),
            ErrorKind::InvalidParameter,
        ),
        (
            "unprocessable",
            422,
            json!({"statusCode": 422, "message": ["locationId must be a string"], "error": "Unprocessable Entity"}).to_string().into(),
            ErrorKind::InvalidParameter,
        ),
        (
            "v3 AIP permission denied",
            403,
            json!({"error": {"code": "PERMISSION_DENIED", "message": "The token does not have access to this location."}}).to_string().into(),
            ErrorKind::Forbidden,
        ),
        (
            "error body on 201",
            201,
            json!({"statusCode": 403, "message": "The token does not have access to this location."}).to_string().into(),
            ErrorKind::Forbidden,
        ),
        (
            "rate limited",
            429,
            json!({"statusCode": 429, "message": "Too Many Requests"}).to_string().into(),
            ErrorKind::RateLimited,
        ),
        (
            "HTML error page",
            502,
            b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>".to_vec(),
            ErrorKind::ServerError,
        ),
        (
            "HTML on 200",
            200,
            b"<!DOCTYPE html><html><body>Just a moment...</body></html>".to_vec(),
            ErrorKind::Unreadable,
        ),
        (
            "truncated JSON",
            201,
            br#"{"access_token":"placeholder-location-access-token-00005","token_"#.to_vec(),
            ErrorKind::Unreadable,
        ),
        ("empty body", 201, Vec::new(), ErrorKind::Unreadable),
        ("huge body", 200, big, ErrorKind::Unreadable),
    ];
    let mut out = String::new();
    for (name, status, body, kind) in cases {
        let err = parse(status, body).unwrap_err();
        assert_eq!(err.kind(), kind, "{name}: {err}");
        let shown = format!("{err:?} {err}");
        assert!(
            !shown.contains("placeholder-location-access-token-00005"),
            "{shown}"
        );
        writeln!(out, "## {name}\n{err:#?}\n{err}\n").unwrap();
    }
    snap!(out);
}
