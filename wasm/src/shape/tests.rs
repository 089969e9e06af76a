//! The shapes JavaScript receives, for answers of the crate's fake server and
//! for unusable input. Snapshots live in the repository's `snapshots/` folder.

use std::fmt::Write;
use std::time::{Duration, UNIX_EPOCH};

use hoopai_oauth::fake::{FakeServer, Install};
use hoopai_oauth::{Config, TokenRequest, UserType, token_request};
use http::Response;

use super::{Failure, Value, instant, response, token_set, token_shape};
use crate::testing::{assert_no_secret_shown, render, render_failure, snapshot};

const CLIENT_ID: &str = "6578278e879ad2646715ba9c-wasm";
const CLIENT_SECRET: &str = "wasm-client-secret-placeholder";
/// 2026-01-01T00:00:00Z, in milliseconds.
const SENT_AT_MS: f64 = 1_767_225_600_000.0;

/// What `fetch` hands to JavaScript: status, header pairs, body bytes.
fn as_fetched(answer: Response<Vec<u8>>) -> (f64, Vec<(String, String)>, Vec<u8>) {
    let (parts, body) = answer.into_parts();
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    (f64::from(parts.status.as_u16()), headers, body)
}

#[test]
fn exchange_refresh_and_reuse_of_the_spent_refresh_token() {
    let mut fake = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
    let code = fake.approve(&Install::location("company-1", "loc-1"));
    let config = Config::builder(CLIENT_ID, CLIENT_SECRET)
        .base_url("http://127.0.0.1:8080")
        .build()
        .unwrap();
    let sent_at = instant(SENT_AT_MS).unwrap();
    let mut call = |request: TokenRequest, at_ms: f64| {
        let request = token_request(&config, &request.user_type(UserType::Location)).unwrap();
        let (status, headers, body) = as_fetched(fake.handle(&request, instant(at_ms).unwrap()));
        response(status, headers, body).and_then(|r| token_set(r, instant(at_ms)?))
    };

    let first = call(TokenRequest::authorization_code(code), SENT_AT_MS).unwrap();
    assert_eq!(first.obtained_at(), sent_at);
    let spent = first.refresh_token().unwrap().secret().to_owned();
    let later = SENT_AT_MS + 60_000.0;
    let second = call(TokenRequest::refresh_token(spent.as_str()), later).unwrap();
    assert_ne!(second.refresh_token().unwrap().secret(), spent, "rotated");
    let reuse = call(TokenRequest::refresh_token(spent.as_str()), later + 1.0).unwrap_err();

    let mut text = String::new();
    for (title, set) in [("code exchange", &first), ("refresh", &second)] {
        let shape = token_shape(set);
        assert_no_secret_shown(&shape, "");
        writeln!(text, "{title}:\n{}", render(&shape)).unwrap();
    }
    assert_eq!(
        reuse.shape().shown[0],
        ("kind", Value::Text("invalid grant".into()))
    );
    assert_no_secret_shown(&reuse.shape(), &reuse.message());
    writeln!(
        text,
        "the spent refresh token again:\n{}",
        render_failure(&reuse)
    )
    .unwrap();
    snapshot("wasm_shape__exchange_refresh_reuse", &text);
}

/// A case: title, status, header pairs, body.
type Fetched<'a> = (&'a str, f64, Vec<(String, String)>, &'a [u8]);

#[test]
fn unusable_answers_keep_a_refresh_token_found_in_them() {
    let sent_at = instant(SENT_AT_MS).unwrap();
    let cases: [Fetched<'_>; 4] = [
        (
            "a 200 with a refresh token but no access token",
            200.0,
            vec![("content-type".into(), "application/json".into())],
            br#"{"refresh_token":"rescued-refresh-placeholder-0000000000001","expires_in":86399}"#,
        ),
        (
            "a 502 page from a proxy",
            502.0,
            vec![("content-type".into(), "text/html".into())],
            b"<html><body>Bad Gateway</body></html>",
        ),
        (
            "a 429 with Retry-After",
            429.0,
            vec![
                ("retry-after".into(), "7".into()),
                ("x-ratelimit-remaining".into(), "0".into()),
            ],
            br#"{"statusCode":429,"message":"Too Many Requests"}"#,
        ),
        ("an empty 200", 200.0, Vec::new(), b""),
    ];
    let mut text = String::new();
    for (title, status, headers, body) in cases {
        let failure = response(status, headers, body.to_vec())
            .and_then(|r| token_set(r, sent_at))
            .unwrap_err();
        assert_no_secret_shown(&failure.shape(), &failure.message());
        writeln!(text, "{title}:\n{}", render_failure(&failure)).unwrap();
    }
    snapshot("wasm_shape__unusable_answers", &text);
}

#[test]
fn unusable_input_from_javascript_is_an_invalid_input_error() {
    let header = |n: &str, v: &str| vec![(n.to_owned(), v.to_owned())];
    let mut failures: Vec<(String, Failure)> = Vec::new();
    for status in [99.0, 1000.0, 200.5, f64::NAN, -200.0] {
        let f = response(status, Vec::new(), Vec::new()).unwrap_err();
        failures.push((format!("status {status}"), f));
    }
    for (title, headers) in [
        ("a header name with a space", header("content type", "x")),
        ("an empty header name", header("", "x")),
        (
            "a header value with a line break",
            header("x-token", "secret-value-not-echoed\r\nx: y"),
        ),
    ] {
        let f = response(200.0, headers, Vec::new()).unwrap_err();
        failures.push((title.to_owned(), f));
    }
    for ms in [f64::NAN, f64::INFINITY, -1.0, 8.7e15] {
        failures.push((format!("sent at {ms} ms"), instant(ms).unwrap_err()));
    }
    let mut text = String::new();
    for (title, failure) in &failures {
        assert!(matches!(failure, Failure::Input(_)), "{title}");
        assert!(!failure.message().contains("secret-value-not-echoed"));
        writeln!(text, "{title}:\n{}", render_failure(failure)).unwrap();
    }
    snapshot("wasm_shape__unusable_input", &text);
}

#[test]
fn times_round_trip_through_milliseconds() {
    for ms in [0.0, 1.0, SENT_AT_MS, 8.64e15] {
        assert_eq!(super::millis(instant(ms).unwrap()), ms);
    }
    // The fraction of a millisecond is dropped.
    assert_eq!(instant(1.9).unwrap(), UNIX_EPOCH + Duration::from_millis(1));
}

#[test]
fn numbers_in_messages_read_as_javascript_prints_them() {
    use super::number_text;
    for (v, text) in [
        (0.0, "0"),
        (200.5, "200.5"),
        (-200.0, "-200"),
        (1.9, "1.9"),
        (8.7e15, "8700000000000000"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "Infinity"),
        (f64::NEG_INFINITY, "-Infinity"),
        (1e300, "more than 10^18"),
    ] {
        assert_eq!(number_text(v), text, "{v}");
    }
}
