//! A 401 from `/oauth/token` is a rejected client only when it names the
//! client credentials; any other 401 there concerns the grant alone
//! (`GrantUnauthorized`). Elsewhere a 401 is a rejected bearer.

mod common;

use std::fmt::Write;

use common::{response, spec_json};
use hoopai_oauth::{
    ErrorClass, ErrorKind, parse_installed_locations, parse_location_token_response,
    parse_token_response,
};

/// 401 answers that name the client credentials.
const CLIENT_401: &[&str] = &[
    r#"{"statusCode":401,"message":"Invalid client: client credentials are invalid","error":"Unauthorized"}"#,
    r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#,
    r#"{"error":"unauthorized_client"}"#,
    r#"{"statusCode":401,"message":"Invalid clientId","error":"Unauthorized"}"#,
    r#"{"statusCode":401,"message":"client_secret does not match"}"#,
    r#"{"statusCode":401,"message":"Wrong client secret"}"#,
    r#"{"status":401,"message":"Unknown client id","name":"HttpException"}"#,
    r#"{"error":{"code":"UNAUTHENTICATED","message":"clientSecret is invalid"}}"#,
    r#"{"statusCode":401,"message":["clientId must belong to an app"],"error":"Unauthorized"}"#,
];

/// 401 answers that do not: the grant's.
const GRANT_401: &[&str] = &[
    r#"{"statusCode":401,"message":"Invalid token: access token is invalid","error":"Unauthorized"}"#,
    r#"{"statusCode":401,"message":"Invalid JWT","error":"Unauthorized"}"#,
    r#"{"status":401,"message":"This authClass type is not allowed to access this scope. Please reach out to the Platform team to get it added.","name":"HttpException","traceId":"6a1b2c3d-0000-4000-8000-123456789abc"}"#,
    r#"{"error":{"code":"UNAUTHENTICATED","message":"The token is not valid"}}"#,
    r#"{"statusCode":401,"message":"Unauthorized"}"#,
    "",
    "<html><body>401 Authorization Required</body></html>",
];

#[test]
fn a_401_that_names_the_client_is_an_invalid_client() {
    let mut out = String::new();
    for body in CLIENT_401 {
        let err = parse_token_response(response(401, &[], *body)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidClient, "{body}");
        writeln!(out, "{body}\n{err:#?}\n{err}\n").unwrap();
    }
    snap!(out);
}

#[test]
fn any_other_401_is_the_grant_s() {
    let mut out = String::new();
    for body in GRANT_401 {
        let err = parse_token_response(response(401, &[], *body)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::GrantUnauthorized, "{body}");
        assert_eq!(err.class(), ErrorClass::Server);
        assert!(!err.kind().is_transient(), "not retried like a 5xx");
        writeln!(out, "{body}\n{err:#?}\n{err}\n").unwrap();
    }
    // The same on a 200 whose body says 401.
    let err = parse_token_response(response(200, &[], GRANT_401[0])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::GrantUnauthorized);
    let err = parse_token_response(response(200, &[], CLIENT_401[0])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidClient);
    snap!(out);
}

/// The official OpenAPI's own 401 example for `/oauth/token`, read from the
/// spec's common schemas, is the grant's.
#[test]
fn the_official_401_example_is_the_grant_s() {
    let spec = spec_json("highlevel-oauth-v2.openapi.json");
    let reference = spec["paths"]["/oauth/token"]["post"]["responses"]["401"]["content"]
        ["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap();
    let name = reference.rsplit('/').next().unwrap();
    let schema = &spec_json("highlevel-common-schemas-v2.json")["components"]["schemas"][name];
    let mut body = serde_json::Map::new();
    for (field, prop) in schema["properties"].as_object().unwrap() {
        body.insert(field.clone(), prop["example"].clone());
    }
    let err = parse_token_response(response(
        401,
        &[],
        serde_json::Value::Object(body).to_string(),
    ))
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::GrantUnauthorized);
    assert_eq!(err.messages(), ["Invalid token: access token is invalid"]);
}

/// On the other endpoints a 401 is the bearer's, whatever it says.
#[test]
fn elsewhere_a_401_is_a_rejected_bearer() {
    for body in CLIENT_401.iter().chain(GRANT_401) {
        let err = parse_location_token_response(response(401, &[], *body)).unwrap_err();
        let expected = if err.code() == Some("invalid_client")
            || err.messages().iter().any(|m| m.contains("Invalid client"))
        {
            // Named outright as a client failure, whatever the status.
            ErrorKind::InvalidClient
        } else {
            ErrorKind::Unauthorized
        };
        assert_eq!(err.kind(), expected, "{body}");
        let err = parse_installed_locations(response(401, &[], *body)).unwrap_err();
        assert_eq!(err.kind(), expected, "{body}");
    }
}
