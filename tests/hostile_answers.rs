//! Answers built to break a client: absurd numbers, huge bodies on error
//! statuses, and a rotated refresh token inside an otherwise useless answer.
//! None may panic, and none may lose a refresh token.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{response, t0};
use hoopai_oauth::{
    ErrorKind, MAX_BODY_BYTES, TokenSet, Unreadable, parse_location_token_response,
    parse_token_response,
};

#[test]
fn absurd_lifetimes_fall_back_to_the_documented_one() {
    // Whole seconds are kept as sent (so a record holding them reads back
    // equal); numbers no u64 holds go to `extra`. Either way the lifetime
    // counted is the documented one.
    for (raw, kept) in [
        ("18446744073709551615", Some(u64::MAX)),
        ("\"18446744073709551615\"", Some(u64::MAX)),
        ("315360001", Some(315_360_001)),
        ("1e300", None),
        ("99999999999999999999999", None),
    ] {
        let body = format!(r#"{{"access_token":"a","refresh_token":"r","expires_in":{raw}}}"#);
        let token = parse_token_response(response(200, &[], body)).unwrap();
        assert_eq!(token.expires_in, kept, "{raw}");
        assert_eq!(
            token.extra.contains_key("expires_in"),
            kept.is_none(),
            "{raw}"
        );
        assert_eq!(token.lifetime(), hoopai_oauth::DEFAULT_LIFETIME, "{raw}");
        let set = TokenSet::new(token, t0());
        assert_eq!(set.expires_at(), t0() + hoopai_oauth::DEFAULT_LIFETIME);
    }
    // Far-off instants never panic either.
    let token = parse_token_response(response(
        200,
        &[],
        r#"{"access_token":"a","expires_in":315360000}"#,
    ))
    .unwrap();
    let set = TokenSet::new(token, t0());
    assert!(set.is_expired(t0(), Duration::MAX));
    let _ = TokenSet::new(
        set.token().clone(),
        UNIX_EPOCH + Duration::from_secs(u64::MAX / 4),
    );
}

#[test]
fn absurd_retry_after_values_never_panic() {
    for value in [
        "18446744073709551615",
        "Sun, 06 Nov 300000000000 08:49:37 GMT",
        "Sun, 06 Nov 9223372036854775807 08:49:37 GMT",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "-1",
        "",
    ] {
        let err = parse_token_response(response(429, &[("Retry-After", value)], "")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RateLimited, "{value}");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        if let Some(at) = err.retry_at(now) {
            assert!(at >= now, "{value}");
        }
        let _ = err.to_string();
    }
}

#[test]
fn a_huge_error_body_keeps_its_status_classification() {
    let body = vec![b'x'; MAX_BODY_BYTES + 10];
    let err =
        parse_token_response(response(429, &[("Retry-After", "3")], body.clone())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.unreadable_reason(), Some(Unreadable::TooLarge));
    assert_eq!(err.retry_after(t0()), Some(Duration::from_secs(3)));
    let err = parse_token_response(response(503, &[], body)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ServerError);
}

#[test]
fn truncated_json_on_an_error_status_is_marked_truncated() {
    let err = parse_token_response(response(500, &[], r#"{"statusCode":500,"mess"#)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ServerError);
    assert_eq!(err.unreadable_reason(), Some(Unreadable::Truncated));
}

#[test]
fn a_rotated_refresh_token_in_a_useless_answer_is_rescued() {
    let rotated = "rt-rotated-0000000000000000000000000001";
    for body in [
        format!(r#"{{"access_token":"","refresh_token":"{rotated}"}}"#),
        format!(r#"{{"refresh_token":"{rotated}","expires_in":86399}}"#),
        format!(r#"{{"statusCode":500,"message":"oops","refresh_token":"{rotated}"}}"#),
    ] {
        let err = parse_token_response(response(200, &[], body.clone())).unwrap_err();
        assert_eq!(
            err.rescued_refresh_token().map(|t| t.secret()),
            Some(rotated),
            "{body}"
        );
        let shown = format!("{err:?} {err}");
        assert!(!shown.contains(rotated), "{shown}");
        assert!(shown.contains("rescued_refresh_token"), "{shown}");
    }
    let plain = parse_token_response(response(200, &[], "{}")).unwrap_err();
    assert!(plain.rescued_refresh_token().is_none());
}

#[test]
fn the_documented_400_for_a_bad_client_parameter_is_an_invalid_client() {
    for message in [
        "Invalid parameter: clientId",
        "Invalid parameter: clientSecret",
        "Invalid parameter: client_secret",
    ] {
        let body = format!(r#"{{"statusCode":400,"message":"{message}"}}"#);
        let err = parse_token_response(response(400, &[], body)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidClient, "{message}");
    }
    let err = parse_token_response(response(
        400,
        &[],
        r#"{"statusCode":400,"message":"Invalid parameter: grantType"}"#,
    ))
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidParameter);
}

#[test]
fn secrets_in_error_codes_are_redacted() {
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig";
    let err =
        parse_token_response(response(400, &[], format!(r#"{{"error":"{jwt}"}}"#))).unwrap_err();
    let shown = format!("{err:?} {err}");
    assert!(!shown.contains(jwt), "{shown}");
    let err = parse_token_response(response(
        400,
        &[],
        r#"{"statusCode":400,"message":"refresh token rt_9f8e7d6c5b4a3 is invalid"}"#,
    ))
    .unwrap_err();
    assert!(!err.to_string().contains("rt_9f8e7d6c5b4a3"), "{err}");
}

#[test]
fn a_location_token_without_the_documented_fields_is_kept() {
    let token = parse_location_token_response(response(
        201,
        &[],
        r#"{"access_token":"placeholder-location-access-token-000001","userId":"u1"}"#,
    ))
    .unwrap();
    assert_eq!(token.user_id.as_deref(), Some("u1"));
}

#[test]
fn a_one_mib_server_message_becomes_a_capped_display() {
    // Text just short of filling the largest body read (1 MiB): the body
    // is read, and its text is what must not come through whole.
    let room = MAX_BODY_BYTES - 200;
    let text = |share: usize| {
        let mut t = "A".repeat(20) + &" overflow".repeat(room / share / 9);
        t.truncate(room / share);
        t
    };
    let (one, half) = (text(1), text(2));
    assert!(one.len() > 1000 * 1024);
    for body in [
        serde_json::json!({"statusCode": 500, "message": one}),
        serde_json::json!({"error": "server_error", "error_description": one}),
        serde_json::json!({"error": {"code": "INTERNAL", "message": half, "resolution": half}}),
        serde_json::json!({"statusCode": 500, "message": "x", "error": half, "traceId": half}),
    ] {
        let raw = serde_json::to_vec(&body).unwrap();
        assert!(raw.len() <= MAX_BODY_BYTES, "{}", raw.len());
        let err = parse_token_response(response(500, &[], raw)).unwrap_err();
        assert_eq!(err.unreadable_reason(), None, "the body was read");
        for m in err.messages() {
            assert!(m.chars().count() <= hoopai_oauth::EXCERPT_CHARS + 1, "{m}");
        }
        assert!(err.code().is_none_or(|c| c.chars().count() <= 201));
        assert!(err.trace_id().is_none_or(|c| c.chars().count() <= 201));
        let shown = err.to_string();
        assert!(shown.len() < 4 * 1024, "{} bytes", shown.len());
        assert!(format!("{err:?}").len() < 4 * 1024);
    }
}

#[test]
fn a_422_with_ten_thousand_messages_keeps_a_few_and_counts_the_rest() {
    let messages: Vec<String> = (0..10_000).map(|i| format!("field {i} is wrong")).collect();
    let body = serde_json::json!({"statusCode": 422, "message": messages});
    let err =
        parse_token_response(response(422, &[], serde_json::to_vec(&body).unwrap())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidParameter);
    assert_eq!(err.messages().len(), hoopai_oauth::MAX_MESSAGES + 1);
    assert_eq!(err.messages()[0], "field 0 is wrong");
    assert_eq!(
        err.messages().last().unwrap(),
        &format!("(and {} more)", 10_000 - hoopai_oauth::MAX_MESSAGES)
    );
    assert!(err.to_string().len() < 4 * 1024);
}
