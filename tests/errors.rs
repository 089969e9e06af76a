//! Every error shape the server (or a proxy in front of it) sends, classified.

mod common;

use common::{response, spec_json, t0};
use hoopai_oauth::{
    ErrorClass, ErrorKind, MAX_BODY_BYTES, RetryAfter, Unreadable, parse_token_response,
};
use std::time::{Duration, UNIX_EPOCH};

const RATE_HEADERS: &[(&str, &str)] = &[
    ("X-RateLimit-Limit-Daily", "200000"),
    ("X-RateLimit-Daily-Remaining", "199000"),
    ("X-RateLimit-Interval-Milliseconds", "10000"),
    ("X-RateLimit-Max", "100"),
    ("X-RateLimit-Remaining", "0"),
];

/// (name, status, headers, body, expected kind)
type Case = (
    &'static str,
    u16,
    Vec<(&'static str, &'static str)>,
    String,
    ErrorKind,
);

fn cases() -> Vec<Case> {
    let json = |s: &str| s.to_owned();
    vec![
        (
            "nest_invalid_grant",
            400,
            vec![],
            json(r#"{"statusCode":400,"message":"Invalid grant: refresh token is invalid"}"#),
            ErrorKind::InvalidGrant,
        ),
        (
            "nest_location_not_active",
            400,
            vec![],
            json(r#"{"statusCode":400,"message":"Location is not active"}"#),
            ErrorKind::LocationNotActive,
        ),
        (
            "nest_invalid_parameter",
            400,
            vec![],
            json(r#"{"statusCode":400,"message":"Invalid parameter: grantType"}"#),
            ErrorKind::InvalidParameter,
        ),
        (
            "nest_missing_parameter",
            400,
            vec![],
            json(r#"{"statusCode":400,"message":"Missing parameter: clientId"}"#),
            ErrorKind::InvalidParameter,
        ),
        (
            "nest_bad_request_plain",
            400,
            vec![],
            json(r#"{"statusCode":400,"message":"Bad Request"}"#),
            ErrorKind::Rejected,
        ),
        (
            "nest_unauthorized_on_token_endpoint",
            401,
            vec![],
            json(r#"{"statusCode":401,"message":"Invalid JWT","error":"Unauthorized"}"#),
            ErrorKind::GrantUnauthorized,
        ),
        (
            "nest_422_message_list",
            422,
            vec![],
            json(
                r#"{"statusCode":422,"message":["client_id must be a string","grant_type must be one of the following values: authorization_code, refresh_token"],"error":"Unprocessable Entity"}"#,
            ),
            ErrorKind::InvalidParameter,
        ),
        (
            "http_exception_with_trace_id",
            401,
            vec![],
            json(
                r#"{"status":401,"message":"This authClass type is not allowed to access this scope. Please reach out to the Platform team to get it added.","name":"HttpException","traceId":"6a1b2c3d-0000-4000-8000-123456789abc"}"#,
            ),
            ErrorKind::GrantUnauthorized,
        ),
        (
            "forbidden_location",
            403,
            vec![],
            json(
                r#"{"statusCode":403,"message":"The token does not have access to this location.","error":"Forbidden"}"#,
            ),
            ErrorKind::Forbidden,
        ),
        (
            "aip_envelope_not_found",
            404,
            vec![],
            json(
                r#"{"error":{"code":"RESOURCE_NOT_FOUND","message":"The requested App 'abc' was not found.","details":{"resource":"App","identifier":"abc"},"resolution":"Verify the App exists and you have permission to access it."}}"#,
            ),
            ErrorKind::NotFound,
        ),
        (
            "aip_envelope_invalid_argument",
            400,
            vec![],
            json(
                r#"{"error":{"code":"INVALID_ARGUMENT","message":"pageSize must be between 1 and 100","details":[{"field":"pageSize"}]}}"#,
            ),
            ErrorKind::InvalidParameter,
        ),
        (
            "rfc6749_invalid_grant",
            400,
            vec![],
            json(r#"{"error":"invalid_grant","error_description":"The refresh token is expired"}"#),
            ErrorKind::InvalidGrant,
        ),
        (
            "rfc6749_invalid_client",
            401,
            vec![],
            json(
                r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#,
            ),
            ErrorKind::InvalidClient,
        ),
        (
            "rfc6749_unsupported_grant_type",
            400,
            vec![],
            json(r#"{"error":"unsupported_grant_type"}"#),
            ErrorKind::InvalidParameter,
        ),
        (
            "rate_limited_with_retry_after",
            429,
            [RATE_HEADERS, &[("Retry-After", "7")]].concat(),
            json(r#"{"statusCode":429,"message":"Too Many Requests"}"#),
            ErrorKind::RateLimited,
        ),
        (
            "rate_limited_with_http_date",
            429,
            vec![("Retry-After", "Thu, 01 Jan 2026 00:01:00 GMT")],
            json(r#"{"statusCode":429,"message":"Too Many Requests"}"#),
            ErrorKind::RateLimited,
        ),
        (
            "rate_limited_headers_only",
            429,
            RATE_HEADERS.to_vec(),
            json(""),
            ErrorKind::RateLimited,
        ),
        (
            "server_error_json",
            500,
            vec![],
            json(r#"{"statusCode":500,"message":"Internal server error"}"#),
            ErrorKind::ServerError,
        ),
        (
            "bad_gateway_html",
            502,
            vec![("Content-Type", "text/html")],
            json(
                "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n",
            ),
            ErrorKind::ServerError,
        ),
        (
            "service_unavailable_plain_text",
            503,
            vec![("Content-Type", "text/plain")],
            json(
                "upstream connect error or disconnect/reset before headers. reset reason: overflow",
            ),
            ErrorKind::ServerError,
        ),
        (
            "gateway_timeout_empty",
            504,
            vec![],
            json(""),
            ErrorKind::ServerError,
        ),
        (
            "error_body_on_200",
            200,
            vec![],
            json(r#"{"statusCode":400,"message":"Invalid grant: refresh token is invalid"}"#),
            ErrorKind::InvalidGrant,
        ),
        (
            "rfc_error_on_200",
            200,
            vec![],
            json(r#"{"error":"invalid_grant","error_description":"bad"}"#),
            ErrorKind::InvalidGrant,
        ),
        (
            "html_on_200",
            200,
            vec![("Content-Type", "text/html")],
            json("<!DOCTYPE html><html><body>Please enable cookies.</body></html>"),
            ErrorKind::Unreadable,
        ),
        (
            "plain_text_on_200",
            200,
            vec![],
            json("OK"),
            ErrorKind::Unreadable,
        ),
        ("empty_200", 200, vec![], json(""), ErrorKind::Unreadable),
        (
            "whitespace_200",
            200,
            vec![],
            json(" \r\n "),
            ErrorKind::Unreadable,
        ),
        (
            "truncated_json_200",
            200,
            vec![],
            json(
                r#"{"access_token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0","refresh_tok"#,
            ),
            ErrorKind::Unreadable,
        ),
        (
            "json_array_200",
            200,
            vec![],
            json(r#"[{"access_token":"a"}]"#),
            ErrorKind::Unreadable,
        ),
        (
            "json_string_200",
            200,
            vec![],
            json(r#""access_token""#),
            ErrorKind::Unreadable,
        ),
        (
            "unknown_4xx",
            418,
            vec![],
            json(r#"{"statusCode":418,"message":"I'm a teapot"}"#),
            ErrorKind::Rejected,
        ),
        (
            "message_of_wrong_type",
            400,
            vec![],
            json(r#"{"statusCode":400,"message":{"nested":true}}"#),
            ErrorKind::Rejected,
        ),
    ]
}

#[test]
fn every_error_shape_is_classified() {
    for (name, status, headers, body, kind) in cases() {
        let err = parse_token_response(response(status, &headers, body.clone())).unwrap_err();
        assert_eq!(err.kind(), kind, "{name}");
        snap!(name, format!("{err:#?}\n\n{err}"));
    }
}

#[test]
fn classes_keep_caller_mistakes_apart_from_server_answers() {
    for (name, status, headers, body, _) in cases() {
        let err = parse_token_response(response(status, &headers, body)).unwrap_err();
        assert!(
            matches!(err.class(), ErrorClass::Server | ErrorClass::Unreadable),
            "{name}: {:?}",
            err.class()
        );
    }
}

#[test]
fn retry_after_and_rate_limit_figures() {
    let err = parse_token_response(response(
        429,
        &[RATE_HEADERS, &[("Retry-After", "7")]].concat(),
        "",
    ))
    .unwrap_err();
    let rate = err.rate_limit().unwrap();
    assert_eq!(
        rate.retry_after,
        Some(RetryAfter::Delay(Duration::from_secs(7)))
    );
    assert_eq!(rate.daily_limit, Some(200_000));
    assert_eq!(rate.remaining, Some(0));
    assert_eq!(err.retry_at(t0()), Some(t0() + Duration::from_secs(7)));

    let date = parse_token_response(response(
        429,
        &[("Retry-After", "Thu, 01 Jan 2026 00:01:00 GMT")],
        "",
    ))
    .unwrap_err();
    assert_eq!(
        date.retry_at(t0()),
        Some(UNIX_EPOCH + Duration::from_secs(1_767_225_660))
    );
    // A date in the past means "now".
    assert_eq!(
        date.retry_at(t0() + Duration::from_secs(3600)),
        Some(t0() + Duration::from_secs(3600))
    );

    // Without Retry-After, an exhausted burst window says when.
    let window = parse_token_response(response(429, RATE_HEADERS, "")).unwrap_err();
    assert_eq!(window.retry_after(t0()), Some(Duration::from_secs(10)));

    // A bare 429 still says it is rate limited, without a time.
    let bare = parse_token_response(response(429, &[], "")).unwrap_err();
    assert_eq!(bare.kind(), ErrorKind::RateLimited);
    assert_eq!(bare.retry_at(t0()), None);
}

#[test]
fn a_body_over_the_cap_is_refused_unread() {
    let mut body = br#"{"access_token":""#.to_vec();
    body.resize(MAX_BODY_BYTES + 1, b'a');
    body.extend_from_slice(br#""}"#);
    let err = parse_token_response(response(200, &[], body)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unreadable);
    assert_eq!(err.unreadable_reason(), Some(Unreadable::TooLarge));
    assert!(err.to_string().len() < 600, "{err}");
    // Just under the cap still parses.
    let mut body = br#"{"access_token":"a","pad":""#.to_vec();
    body.resize(MAX_BODY_BYTES - 2, b'b');
    body.extend_from_slice(br#""}"#);
    assert!(parse_token_response(response(200, &[], body)).is_ok());
}

#[test]
fn unreadable_reasons() {
    let reason = |status, body: &str| {
        parse_token_response(response(status, &[], body.to_owned()))
            .unwrap_err()
            .unreadable_reason()
    };
    assert_eq!(reason(200, ""), Some(Unreadable::Empty));
    assert_eq!(reason(200, "<html>"), Some(Unreadable::NotJson));
    assert_eq!(
        reason(200, r#"{"access_token":"a"#),
        Some(Unreadable::Truncated)
    );
    assert_eq!(reason(200, "[1,2]"), Some(Unreadable::UnexpectedShape));
    assert_eq!(reason(200, "{}"), Some(Unreadable::UnexpectedShape));
    assert_eq!(reason(502, "<html>"), Some(Unreadable::NotJson));
    assert_eq!(reason(504, ""), Some(Unreadable::Empty));
}

/// The official error examples of the v3 token endpoint and the common error
/// schemas, read from the spec files.
#[test]
fn the_official_error_examples() {
    let spec = spec_json("highlevel-oauth-v3.openapi.json");
    let examples = spec["paths"]["/oauth/token"]["post"]["responses"]["400"]["content"]
        ["application/json"]["examples"]
        .as_object()
        .unwrap();
    let mut report = String::new();
    for (name, example) in examples {
        let body = example["value"].to_string();
        let err = parse_token_response(response(400, &[], body)).unwrap_err();
        report.push_str(&format!("{name}: {:?} {:?}\n", err.kind(), err.messages()));
    }
    for file in [
        "highlevel-common-schemas-v2.json",
        "highlevel-common-schemas-v3.json",
    ] {
        let schemas = spec_json(file)["components"]["schemas"].clone();
        for (name, schema) in schemas.as_object().unwrap() {
            let mut body = serde_json::Map::new();
            for (field, prop) in schema["properties"].as_object().unwrap() {
                body.insert(field.clone(), prop["example"].clone());
            }
            let status = body["statusCode"].as_u64().unwrap() as u16;
            let err = parse_token_response(response(
                status,
                &[],
                serde_json::Value::Object(body).to_string(),
            ))
            .unwrap_err();
            report.push_str(&format!(
                "{file} {name}: {:?} {:?}\n",
                err.kind(),
                err.messages()
            ));
        }
    }
    snap!(report);
}
