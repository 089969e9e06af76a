//! The documented fields of a token answer in the other shapes servers send
//! them in: `scope` as a JSON list, booleans as strings, a single string
//! where a list is documented, numbers as strings. Each shape is decided
//! (read into the field, or kept as sent in `extra`), and none ever fails the
//! parse: failing would drop a rotated refresh token.

mod common;

use std::fmt::Write;

use common::{config, response, t0};
use hoopai_oauth::{
    Engine, EngineSettings, GrantRecord, LenientBool, Output, TokenResponse, TokenSet,
    parse_location_token_response, parse_token_response,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn ok(body: Value) -> TokenResponse {
    parse_token_response(response(200, &[], body.to_string())).expect("a token answer")
}

/// The record an engine persists for a grant inserted with `token`.
fn persisted(token: TokenResponse) -> GrantRecord {
    let mut engine = Engine::new(config(), EngineSettings::default());
    engine
        .insert("grant-1", TokenSet::new(token, t0()), t0())
        .unwrap();
    while let Some(out) = engine.poll_output(t0()) {
        if let Output::Persist { record, .. } = out {
            return record;
        }
    }
    panic!("no record was persisted");
}

/// Through JSON and back, as a store keeps it.
fn stored(record: &GrantRecord) -> GrantRecord {
    let back: GrantRecord = serde_json::from_str(&serde_json::to_string(record).unwrap()).unwrap();
    assert_eq!(&back, record);
    back
}

#[test]
fn scope_as_a_json_list_is_read_and_persisted() {
    let token = ok(json!({
        "access_token": "A",
        "refresh_token": "R1",
        "expires_in": 86399,
        "scope": ["contacts.readonly", "locations.readonly"],
    }));
    let scopes = token.scope.as_ref().expect("scope is read");
    assert_eq!(scopes.to_vec(), ["contacts.readonly", "locations.readonly"]);
    assert!(scopes.contains("locations.readonly"));
    assert!(token.extra.is_empty(), "{:?}", token.extra);

    // The engine's record keeps them, through JSON and through a restore.
    let record = stored(&persisted(token));
    let kept = record.scopes().expect("the record keeps the scopes");
    assert_eq!(kept.to_vec(), ["contacts.readonly", "locations.readonly"]);
    let json: Value = serde_json::to_value(&record).unwrap();
    assert_eq!(
        json["tokens"]["token"]["scope"],
        "contacts.readonly locations.readonly"
    );
    let mut fresh = Engine::new(config(), EngineSettings::default());
    fresh.restore(record, t0()).unwrap();
    let again = fresh.grants().get("grant-1").map(|g| g.record()).unwrap();
    assert_eq!(
        again.scopes().map(|s| s.to_vec()),
        Some(vec!["contacts.readonly", "locations.readonly"])
    );

    // The location-token endpoint reads it the same way.
    let location = parse_location_token_response(response(
        201,
        &[],
        json!({"access_token": "A", "scope": ["oauth.readonly", "oauth.write"]}).to_string(),
    ))
    .unwrap();
    assert_eq!(
        location.scope.map(|s| s.as_str().to_owned()),
        Some("oauth.readonly oauth.write".to_owned())
    );
}

#[test]
fn a_single_string_where_a_list_is_documented() {
    let token =
        ok(json!({"access_token": "A", "refresh_token": "R1", "approvedLocations": "loc-1"}));
    assert_eq!(token.approved_locations, Some(vec!["loc-1".to_owned()]));
    let record = stored(&persisted(token));
    assert_eq!(
        record.tokens.token().approved_locations,
        Some(vec!["loc-1".to_owned()])
    );
    // Not split: an id holds no separator, and a guess would make up ids.
    let token = ok(json!({"access_token": "A", "approvedLocations": "loc-1,loc-2"}));
    assert_eq!(
        token.approved_locations,
        Some(vec!["loc-1,loc-2".to_owned()])
    );
    let token = ok(json!({"access_token": "A", "approvedLocations": ""}));
    assert_eq!(token.approved_locations, Some(vec![]));
}

#[test]
fn booleans_as_strings_are_read_and_persisted() {
    let token = ok(json!({
        "access_token": "A",
        "refresh_token": "R1",
        "isBulkInstallation": "true",
        "installToFutureLocations": " FALSE ",
        "approveAllLocations": "True",
    }));
    assert_eq!(token.is_bulk_installation, Some(LenientBool::Bool(true)));
    assert_eq!(
        token.install_to_future_locations,
        Some(LenientBool::Bool(false))
    );
    assert_eq!(token.approve_all_locations, Some(LenientBool::Bool(true)));
    let record = stored(&persisted(token));
    let t = record.tokens.token();
    assert_eq!(
        (
            t.is_bulk_installation.clone(),
            t.install_to_future_locations.clone(),
            t.approve_all_locations.clone()
        ),
        (
            Some(LenientBool::Bool(true)),
            Some(LenientBool::Bool(false)),
            Some(LenientBool::Bool(true))
        )
    );
}

/// Every field in every alternative shape: where it goes. The table is the
/// specification of the decisions.
#[test]
fn every_shape_of_every_documented_field() {
    let shapes: Vec<(&str, Vec<Value>)> = vec![
        (
            "scope",
            vec![
                json!("a b"),
                json!(["a", "b"]),
                json!(["a b", "c"]),
                json!([]),
                json!(["a", 1]),
                json!({"a": true}),
                json!(7),
            ],
        ),
        (
            "approvedLocations",
            vec![
                json!(["l1", "l2"]),
                json!("l1"),
                json!(""),
                json!([1, 2]),
                json!(["l1", null]),
                json!({"l1": true}),
            ],
        ),
        (
            "isBulkInstallation",
            vec![
                json!(true),
                json!("false"),
                json!(" TRUE "),
                json!("Bearer"),
                json!("yes"),
                json!(1),
                json!(0),
                json!([true]),
            ],
        ),
        (
            "expires_in",
            vec![
                json!(86399),
                json!("86399"),
                json!(" 86399 "),
                json!(86399.7),
                json!("86399.7"),
                json!("1d"),
                json!(-1),
                json!(true),
            ],
        ),
        (
            "locationId",
            vec![json!("l1"), json!(12), json!(["l1"]), json!({"id": "l1"})],
        ),
        (
            "userType",
            vec![json!("Location"), json!("location"), json!(1)],
        ),
        ("token_type", vec![json!("Bearer"), json!(["Bearer"])]),
    ];
    let mut out = String::new();
    for (field, values) in shapes {
        writeln!(out, "# {field}").unwrap();
        for raw in values {
            let mut body = json!({"access_token": "A", "refresh_token": "R1"});
            body[field] = raw.clone();
            let token = ok(body);
            assert_eq!(token.refresh_token.as_ref().unwrap().secret(), "R1");
            let read = match field {
                "scope" => token
                    .scope
                    .as_ref()
                    .map(|s| format!("{s:?} ({:?})", s.as_str())),
                "approvedLocations" => token.approved_locations.as_ref().map(|v| format!("{v:?}")),
                "isBulkInstallation" => token
                    .is_bulk_installation
                    .as_ref()
                    .map(|v| format!("{v:?}")),
                "expires_in" => token.expires_in.map(|v| v.to_string()),
                "locationId" => token.location_id.as_ref().map(|v| format!("{v:?}")),
                "userType" => token.user_type.as_ref().map(|v| format!("{v:?}")),
                "token_type" => token.token_type.as_ref().map(|v| format!("{v:?}")),
                _ => unreachable!(),
            };
            let kept = token.extra.get(field);
            // Exactly one place holds it.
            assert!(read.is_some() != kept.is_some(), "{field} {raw}");
            match (read, kept) {
                (Some(r), _) => writeln!(out, "{:<22} -> read: {r}", raw.to_string()).unwrap(),
                (_, Some(k)) => {
                    writeln!(out, "{:<22} -> kept in extra: {k}", raw.to_string()).unwrap();
                }
                _ => unreachable!(),
            }
        }
        writeln!(out).unwrap();
    }
    snap!(out);
}

/// Any JSON value.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec!["true", "FALSE", "86399", " 1 ", "Bearer", "", "1e999"])
            .prop_map(Value::from),
    ];
    common::json_value_from(leaf)
}

const OPTIONAL_FIELDS: &[&str] = &[
    "token_type",
    "tokenType",
    "expires_in",
    "expiresIn",
    "scope",
    "userType",
    "locationId",
    "companyId",
    "approvedLocations",
    "userId",
    "planId",
    "isBulkInstallation",
    "installToFutureLocations",
    "approveAllLocations",
    "appId",
    "versionId",
    "refreshTokenId",
];

proptest! {
    /// Whatever shape the optional fields take, the answer parses and the
    /// rotated refresh token is there; the answer reads back to itself
    /// through JSON; and the engine's record of it reads back equal.
    #[test]
    fn no_optional_field_ever_fails_a_token_answer(
        fields in prop::collection::vec((prop::sample::select(OPTIONAL_FIELDS), json_value()), 0..8)
    ) {
        let mut body = json!({"access_token": "A", "refresh_token": "R-rotated"});
        for (name, v) in &fields {
            body[*name] = v.clone();
        }
        let token = parse_token_response(response(200, &[], body.to_string()))
            .map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(token.refresh_token.as_ref().map(|r| r.secret()), Some("R-rotated"));
        let back: TokenResponse = serde_json::from_str(&serde_json::to_string(&token).unwrap()).unwrap();
        prop_assert_eq!(&back, &token);
        let record = persisted(token);
        let again: GrantRecord = serde_json::from_str(&serde_json::to_string(&record).unwrap()).unwrap();
        prop_assert_eq!(again, record);
    }
}
