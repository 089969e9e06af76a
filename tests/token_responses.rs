//! Parsing `POST /oauth/token` answers: the documented examples, extras, and
//! every leniency the crate promises.

mod common;

use std::time::Duration;

use common::{response, spec_json, spec_path, t0};
use hoopai_oauth::{
    ErrorKind, LenientBool, TokenResponse, TokenSet, UserType, parse_token_response,
};
use serde_json::{Map, Value, json};

fn ok(body: impl Into<Vec<u8>>) -> TokenResponse {
    parse_token_response(response(200, &[], body)).expect("a token answer")
}

/// The example answer on the HoopAI page, cut out of the page text as it is.
fn hoopai_page_example() -> String {
    let page = std::fs::read_to_string(spec_path("hoopai-get-access-token.txt")).unwrap();
    let start = page.find("\n{").expect("example start") + 1;
    let end = start + page[start..].find("\n}").expect("example end") + 2;
    page[start..end].to_owned()
}

/// An example answer assembled from the `example` of every property of a schema.
fn schema_example(file: &str, schema: &str) -> Value {
    let spec = spec_json(file);
    let props = spec["components"]["schemas"][schema]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{schema} in {file}"));
    let mut out = Map::new();
    for (name, prop) in props {
        if let Some(example) = prop.get("example") {
            out.insert(name.clone(), example.clone());
        }
    }
    Value::Object(out)
}

#[test]
fn the_hoopai_page_example_verbatim() {
    let body = hoopai_page_example();
    let token = ok(body.clone());
    assert_eq!(
        token.access_token.secret(),
        "ab12dc0ae1234a7898f9ff06d4f69gh"
    );
    assert_eq!(token.expires_in, Some(86_399));
    assert_eq!(token.user_type, Some(UserType::Location));
    assert_eq!(
        token.scope.as_ref().unwrap().to_vec(),
        [
            "conversations/message.readonly",
            "conversations/message.write"
        ]
    );
    // The documented "Bearer" example of a boolean is kept raw.
    assert_eq!(
        token.is_bulk_installation,
        Some(LenientBool::Raw(Value::String("Bearer".into())))
    );
    assert!(token.extra.is_empty());
    snap!(format!("{token:#?}"));
}

#[test]
fn the_official_v2_schema_example() {
    let body = schema_example(
        "highlevel-oauth-v2.openapi.json",
        "GetAccessCodeSuccessfulResponseDto",
    );
    let token = ok(body.to_string());
    assert_eq!(
        token.install_to_future_locations,
        Some(LenientBool::Bool(true))
    );
    assert_eq!(token.approve_all_locations, Some(LenientBool::Bool(true)));
    assert_eq!(token.user_id.as_deref(), Some("l1C08ntBrFjLS0elLIYU"));
    snap!(format!("{token:#?}"));
}

#[test]
fn the_official_v3_schema_example() {
    let body = schema_example(
        "highlevel-oauth-v3.openapi.json",
        "GetAccessTokenSuccessfulResponseDto",
    );
    let token = ok(body.to_string());
    assert!(token.refresh_token.is_some());
    assert_eq!(token.is_bulk_installation, Some(LenientBool::Bool(false)));
    assert!(token.extra.is_empty(), "{:?}", token.extra);
    snap!(format!("{token:#?}"));
}

#[test]
fn extra_fields_are_kept() {
    let token = ok(json!({
        "access_token": "placeholder-access-token-0000000001",
        "token_type": "Bearer",
        "expires_in": 86399,
        "refresh_token": "placeholder-refresh-token-000000001",
        "scope": "contacts.readonly",
        "userType": "Company",
        "companyId": "tDtDnQdgm2LXpyiqYvZ6",
        "approvedLocations": ["loc1", "loc2"],
        "userId": "u1",
        "refreshTokenId": "66f0c0ffee",
        "traceId": "abc",
        "nested": {"a": [1, 2, {"b": null}]},
        "userType2": "Agency",
    })
    .to_string());
    assert_eq!(token.extra["refreshTokenId"], "66f0c0ffee");
    assert_eq!(token.extra.len(), 4);
    snap!(format!("{token:#?}"));
}

#[test]
fn expires_in_as_integer_float_or_numeric_string() {
    for (raw, expect) in [
        (json!(86399), Some(86_399)),
        (json!(86399.0), Some(86_399)),
        (json!(86399.9), Some(86_399)),
        (json!("86399"), Some(86_399)),
        (json!(" 86399 "), Some(86_399)),
        (json!("86399.5"), Some(86_399)),
        (json!(0), Some(0)),
        (json!(null), None),
    ] {
        let token = ok(json!({"access_token": "a", "expires_in": raw}).to_string());
        assert_eq!(token.expires_in, expect, "{raw}");
        assert!(token.extra.is_empty(), "{raw}");
    }
}

#[test]
fn an_unreadable_expires_in_is_kept_and_the_default_lifetime_applies() {
    for raw in [
        json!(-5),
        json!("soon"),
        json!(true),
        json!([1]),
        json!(1e300),
    ] {
        let token = ok(json!({"access_token": "a", "expires_in": raw}).to_string());
        assert_eq!(token.expires_in, None, "{raw}");
        assert_eq!(token.extra["expires_in"], raw);
        assert_eq!(token.lifetime(), hoopai_oauth::DEFAULT_LIFETIME);
    }
}

#[test]
fn is_bulk_installation_in_every_shape() {
    for (raw, expect) in [
        (json!(true), LenientBool::Bool(true)),
        (json!(false), LenientBool::Bool(false)),
        (json!("true"), LenientBool::Bool(true)),
        (json!("false"), LenientBool::Bool(false)),
        (json!("Bearer"), LenientBool::Raw(json!("Bearer"))),
        (json!(1), LenientBool::Raw(json!(1))),
    ] {
        let token = ok(json!({"access_token": "a", "isBulkInstallation": raw}).to_string());
        assert_eq!(token.is_bulk_installation, Some(expect.clone()), "{raw}");
    }
}

#[test]
fn any_2xx_is_success() {
    for status in [200, 201, 202, 203, 299] {
        let token = parse_token_response(response(status, &[], r#"{"access_token":"a"}"#))
            .unwrap_or_else(|e| panic!("{status}: {e}"));
        assert_eq!(token.access_token.secret(), "a");
    }
}

#[test]
fn a_missing_refresh_token_is_not_an_error() {
    let token = ok(r#"{"access_token":"a","expires_in":86399}"#);
    assert!(token.refresh_token.is_none());
}

#[test]
fn v3_camel_case_names_read_into_the_same_fields() {
    let v2 = ok(json!({"access_token":"a","token_type":"Bearer","expires_in":5,"refresh_token":"r","userType":"Location"}).to_string());
    let v3 = ok(json!({"accessToken":"a","tokenType":"Bearer","expiresIn":5,"refreshToken":"r","userType":"Location"}).to_string());
    assert_eq!(v2, v3);
}

#[test]
fn unknown_user_types_are_kept() {
    let token = ok(r#"{"access_token":"a","userType":"Agency"}"#);
    assert_eq!(token.user_type, Some(UserType::Other("Agency".into())));
}

#[test]
fn wrongly_typed_optional_fields_never_fail_the_parse() {
    let token = ok(json!({
        "access_token": "a",
        "refresh_token": "r",
        "token_type": 7,
        "scope": ["a", "b"],
        "userType": false,
        "locationId": 12,
        "approvedLocations": "loc1",
        "userId": {"id": "u"},
    })
    .to_string());
    // The refresh token is never lost over a quirk elsewhere.
    assert_eq!(token.refresh_token.as_ref().unwrap().secret(), "r");
    // A scope list and a single approved location are read (see
    // field_shapes.rs); the other four are kept as sent.
    assert_eq!(token.scope.as_ref().unwrap().to_vec(), ["a", "b"]);
    assert_eq!(token.approved_locations, Some(vec!["loc1".to_owned()]));
    assert_eq!(token.extra.len(), 4);
    snap!(format!("{token:#?}"));
}

#[test]
fn token_set_expiry_and_serde_round_trip() {
    let token = ok(hoopai_page_example());
    let received = t0() + Duration::from_millis(750);
    let set = TokenSet::new(token, received);
    assert_eq!(set.obtained_at(), t0());
    assert_eq!(set.expires_at(), t0() + Duration::from_secs(86_399));
    assert!(!set.is_expired(t0(), Duration::ZERO));
    assert!(!set.is_expired(t0() + Duration::from_secs(86_398), Duration::ZERO));
    assert!(set.is_expired(t0() + Duration::from_secs(86_399), Duration::ZERO));
    assert!(set.is_expired(t0() + Duration::from_secs(86_000), Duration::from_secs(400)));

    let json = serde_json::to_string(&set).unwrap();
    let back: TokenSet = serde_json::from_str(&json).unwrap();
    assert_eq!(back, set);
    // The persisted form reads back as a token answer too.
    let value: Value = serde_json::from_str(&json).unwrap();
    let again: TokenResponse = serde_json::from_value(value["token"].clone()).unwrap();
    assert_eq!(&again, set.token());
}

#[test]
fn token_set_of_an_answer_with_extras_round_trips() {
    let token = ok(json!({
        "access_token": "a", "refresh_token": "r", "expires_in": "60",
        "isBulkInstallation": "Bearer", "refreshTokenId": "x", "weird": [1, {"k": null}]
    })
    .to_string());
    let set = TokenSet::new(token, t0());
    let back: TokenSet = serde_json::from_str(&serde_json::to_string(&set).unwrap()).unwrap();
    assert_eq!(back, set);
}

#[test]
fn no_access_token_is_unreadable() {
    for body in [
        r#"{}"#,
        r#"{"access_token":""}"#,
        r#"{"access_token":123}"#,
        r#"{"token":"a"}"#,
    ] {
        let err = parse_token_response(response(200, &[], body)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unreadable, "{body}");
    }
}
