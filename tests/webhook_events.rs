//! Parsing webhook bodies into typed events: every documented shape, the
//! leniencies, and every refusal. Each parsed event and error is a snapshot.

mod common;

use std::fmt::Write;

use hoopai_oauth::{
    ErrorKind, InstallTarget, LenientBool, MAX_WEBHOOK_BYTES, UninstallTarget, UserType,
    WebhookPayload, parse_webhook,
};
use proptest::prelude::*;
use serde_json::json;

use common::t0;

const APP: &str = "6578278e879ad2646715ba9c";

fn render(body: &[u8]) -> String {
    match parse_webhook(body) {
        Ok(event) => format!("{event:#?}"),
        Err(e) => format!("{:?}: {e}", e.kind()),
    }
}

#[test]
fn install_for_a_location_with_every_documented_field() {
    let body = json!({
        "type": "INSTALL",
        "appId": APP,
        "versionId": APP,
        "installType": "Location",
        "locationId": "loc-1",
        "companyId": "company-1",
        "userId": "user-1",
        "planId": "plan-1",
        "trial": {"onTrial": true, "trialDuration": 14, "trialStartDate": "2025-12-25T00:00:00.000Z"},
        "isWhitelabelCompany": true,
        "whitelabelDetails": {"domain": "agency.example", "logoUrl": "https://agency.example/logo.png"},
        "companyName": "Acme Agency",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "webhookId": "1b6f0b3e-2c4d-4e5f-8a9b-0c1d2e3f4a5b"
    });
    let event = parse_webhook(body.to_string().as_bytes()).unwrap();
    assert_eq!(event.timestamp, Some(t0()));
    let WebhookPayload::Install(install) = &event.payload else {
        panic!("an INSTALL")
    };
    assert_eq!(
        install.target,
        InstallTarget::Location {
            location_id: "loc-1".into()
        }
    );
    assert_eq!(install.install_type, Some(UserType::Location));
    assert!(install.extra.is_empty(), "{:?}", install.extra);
    snap!(format!("{event:#?}"));
}

#[test]
fn install_for_a_company_and_bulk_installs() {
    let mut out = String::new();
    for (name, body) in [
        (
            "company, no location list",
            json!({"type":"INSTALL","appId":APP,"installType":"Company","companyId":"company-1",
                   "timestamp":"2026-01-01T00:00:00.000Z","webhookId":"w-1"}),
        ),
        (
            "company, empty location list",
            json!({"type":"INSTALL","appId":APP,"installType":"Company","companyId":"company-1",
                   "locationIds":[],"timestamp":"2026-01-01T00:00:00.000Z","webhookId":"w-2"}),
        ),
        (
            "bulk: locationIds",
            json!({"type":"INSTALL","appId":APP,"installType":"Company","companyId":"company-1",
                   "locationIds":["loc-1","loc-2","loc-3"],"timestamp":"2026-01-01T00:00:00.000Z","webhookId":"w-3"}),
        ),
        (
            "bulk of one location",
            json!({"type":"INSTALL","appId":APP,"installType":"Company","companyId":"company-1",
                   "locationIds":["loc-1"],"timestamp":"2026-01-01T00:00:00.000Z","webhookId":"w-4"}),
        ),
        (
            "bulk: repeats dropped, locationId merged",
            json!({"type":"INSTALL","appId":APP,"companyId":"company-1","locationId":"loc-9",
                   "locationIds":["loc-1","loc-2","loc-1",""],"timestamp":"2026-01-01T00:00:00.000Z","webhookId":"w-5"}),
        ),
        (
            "no installType, one locationId",
            json!({"type":"INSTALL","appId":APP,"companyId":"company-1","locationId":"loc-1",
                   "timestamp":"2026-01-01T00:00:00.000Z","webhookId":"w-6"}),
        ),
        (
            "unknown installType, one locationId",
            json!({"type":"install","appId":APP,"installType":"Agency","locationId":"loc-1",
                   "timestamp":"2026-01-01T00:00:00.000Z","webhookId":"w-7"}),
        ),
    ] {
        writeln!(out, "== {name}\n{}", render(body.to_string().as_bytes())).unwrap();
    }
    let bulk = parse_webhook(
        br#"{"type":"INSTALL","appId":"a","installType":"Company","companyId":"c","locationIds":["l1","l2"]}"#,
    )
    .unwrap();
    let WebhookPayload::Install(i) = bulk.payload else {
        panic!()
    };
    assert_eq!(
        i.target,
        InstallTarget::Bulk {
            company_id: "c".into(),
            location_ids: vec!["l1".into(), "l2".into()]
        }
    );
    snap!(out);
}

#[test]
fn uninstalls_and_other_types() {
    let mut out = String::new();
    for (name, body) in [
        (
            "location, old delivery (no timestamp, no webhookId)",
            json!({"type":"UNINSTALL","appId":APP,"locationId":"loc-1"}),
        ),
        (
            "agency",
            json!({"type":"UNINSTALL","appId":APP,"companyId":"company-1",
                   "timestamp":"2026-01-01T00:00:00.000Z","webhookId":"w-8"}),
        ),
        (
            "location with its company",
            json!({"type":"UNINSTALL","appId":APP,"locationId":"loc-1","companyId":"company-1",
                   "timestamp":"2026-01-01T00:00:00.000Z","webhookId":"w-9"}),
        ),
        (
            "LocationCreate, kept raw",
            json!({"type":"LocationCreate","id":"loc-2","companyId":"company-1","name":"New shop",
                   "timestamp":"2026-01-01T00:00:00.000Z","webhookId":"w-10"}),
        ),
        (
            "PLAN_CHANGE, kept raw",
            json!({"type":"PLAN_CHANGE","appId":APP,"locationId":"loc-1","currentPlanId":"p2",
                   "previousPlanId":"p1","timestamp":"2026-01-01T00:00:00.000Z","webhookId":"w-11"}),
        ),
    ] {
        writeln!(out, "== {name}\n{}", render(body.to_string().as_bytes())).unwrap();
    }
    let agency = parse_webhook(br#"{"type":"UNINSTALL","appId":"a","companyId":"c"}"#).unwrap();
    let WebhookPayload::Uninstall(u) = agency.payload else {
        panic!()
    };
    assert_eq!(
        u.target,
        UninstallTarget::Company {
            company_id: "c".into()
        }
    );
    snap!(out);
}

#[test]
fn wrong_shapes_never_fail_the_event() {
    let body = json!({
        "type": "INSTALL",
        "appId": APP,
        "versionId": 3,
        "installType": "Location",
        "locationId": "loc-1",
        "companyId": "company-1",
        "userId": 42,
        "planId": null,
        "trial": "yes",
        "isWhitelabelCompany": "true",
        "whitelabelDetails": ["agency.example"],
        "companyName": {"en": "Acme"},
        "timestamp": 1_767_225_600,
        "webhookId": "w-12",
        "somethingNew": {"nested": [1, 2, 3]}
    });
    let event = parse_webhook(body.to_string().as_bytes()).unwrap();
    assert_eq!(
        event.timestamp, None,
        "a number is not an ISO 8601 timestamp"
    );
    let WebhookPayload::Install(install) = &event.payload else {
        panic!()
    };
    assert_eq!(install.is_whitelabel_company, Some(LenientBool::Bool(true)));
    assert_eq!(install.trial, None);
    for kept in [
        "versionId",
        "userId",
        "trial",
        "whitelabelDetails",
        "companyName",
        "timestamp",
        "somethingNew",
    ] {
        assert!(install.extra.contains_key(kept), "{kept} kept in extra");
    }
    snap!(format!("{event:#?}"));
}

#[test]
fn every_refusal() {
    let mut big = br#"{"type":"INSTALL","pad":""#.to_vec();
    big.resize(MAX_WEBHOOK_BYTES + 1, b'a');
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", b"".to_vec()),
        ("whitespace", b" \n\t ".to_vec()),
        (
            "HTML",
            b"<html><body>502 Bad Gateway</body></html>".to_vec(),
        ),
        (
            "truncated JSON",
            br#"{"type":"INSTALL","appId":"a"#.to_vec(),
        ),
        ("not UTF-8", b"{\"type\":\"INSTALL\xff\xfe\"}".to_vec()),
        ("a JSON array", br#"[{"type":"INSTALL"}]"#.to_vec()),
        ("a JSON string", br#""INSTALL""#.to_vec()),
        ("no type", br#"{"appId":"a","locationId":"l"}"#.to_vec()),
        ("a numeric type", br#"{"type":1,"appId":"a"}"#.to_vec()),
        ("an empty type", br#"{"type":"","appId":"a"}"#.to_vec()),
        (
            "Location INSTALL without locationId",
            br#"{"type":"INSTALL","appId":"a","installType":"Location","companyId":"c"}"#.to_vec(),
        ),
        (
            "Company INSTALL without companyId",
            br#"{"type":"INSTALL","appId":"a","installType":"Company"}"#.to_vec(),
        ),
        (
            "bulk INSTALL without companyId",
            br#"{"type":"INSTALL","appId":"a","locationIds":["l1","l2"]}"#.to_vec(),
        ),
        (
            "UNINSTALL without ids",
            br#"{"type":"UNINSTALL","appId":"a"}"#.to_vec(),
        ),
        ("over the size cap", big),
    ];
    let mut out = String::new();
    for (name, body) in &cases {
        let err = parse_webhook(body).expect_err(name);
        assert_eq!(err.kind(), ErrorKind::WebhookMalformed, "{name}");
        writeln!(out, "== {name}\n{:?}: {err}", err.kind()).unwrap();
    }
    snap!(out);
}

#[test]
fn a_byte_order_mark_is_skipped() {
    let body = b"\xEF\xBB\xBF{\"type\":\"UNINSTALL\",\"appId\":\"a\",\"locationId\":\"l\"}";
    let event = parse_webhook(body).unwrap();
    assert_eq!(event.event_type, "UNINSTALL");
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_bytes_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_webhook(&body);
    }

    #[test]
    fn no_json_panics(
        t in prop::sample::select(vec!["INSTALL", "UNINSTALL", "install", "Other"]),
        fields in prop::collection::btree_map(
            prop::sample::select(vec![
                "appId", "installType", "locationId", "locationIds", "companyId", "trial",
                "whitelabelDetails", "isWhitelabelCompany", "timestamp", "webhookId", "userId",
            ]),
            prop_oneof![
                Just(json!(null)), Just(json!(true)), Just(json!(7)), Just(json!("x")),
                Just(json!("Company")), Just(json!("Location")), Just(json!(["a", "b"])),
                Just(json!([1, "a"])), Just(json!({"onTrial": "maybe"})), Just(json!("2026-01-01T00:00:00Z")),
            ],
            0..11,
        ),
    ) {
        let mut body = serde_json::Map::new();
        body.insert("type".into(), json!(t));
        for (k, v) in fields {
            body.insert(k.into(), v);
        }
        let text = serde_json::to_vec(&body).unwrap();
        match parse_webhook(&text) {
            Ok(event) => prop_assert_eq!(event.event_type, t),
            Err(e) => prop_assert_eq!(e.kind(), ErrorKind::WebhookMalformed),
        }
    }
}
