//! The scope list: every official scope has a constant, custom scopes are
//! checked, and the scopes the spec files name are all known.

mod common;

use std::collections::BTreeSet;

use common::spec_json;
use hoopai_oauth::{ErrorKind, Scope, Scopes};
use proptest::prelude::*;
use serde_json::Value;

#[test]
fn the_official_list() {
    let all: Vec<&str> = Scope::ALL.iter().map(Scope::as_str).collect();
    assert!(all.len() > 100, "{}", all.len());
    let unique: BTreeSet<&str> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "a scope is listed twice");
    for scope in Scope::ALL {
        assert!(scope.is_known());
        assert!(!scope.as_str().contains(char::is_whitespace));
        assert_eq!(&scope.as_str().parse::<Scope>().unwrap(), scope);
        assert_eq!(Scope::known(scope.as_str()).as_ref(), Some(scope));
    }
    snap!(all.join("\n"));
}

#[test]
fn the_scopes_of_the_facts_sheet_and_the_spec_files_are_known() {
    for s in [
        "contacts.readonly",
        "conversations/message.write",
        "locations.readonly",
        "oauth.readonly",
        "oauth.write",
    ] {
        assert!(Scope::known(s).is_some(), "{s}");
    }
    // Every scope the OpenAPI files name: security requirements and the
    // `scope` examples of token answers.
    let mut named = BTreeSet::new();
    for file in [
        "highlevel-oauth-v2.openapi.json",
        "highlevel-oauth-v3.openapi.json",
    ] {
        collect_scopes(&spec_json(file), &mut named);
    }
    assert!(named.contains("oauth.write") && named.contains("oauth.readonly"));
    assert!(named.contains("conversations/message.readonly"));
    for s in &named {
        assert!(Scope::known(s).is_some(), "{s} is not in the list");
    }
}

fn collect_scopes(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("security", Value::Array(reqs)) => {
                        for req in reqs {
                            for scopes in req.as_object().into_iter().flat_map(|o| o.values()) {
                                for s in scopes.as_array().into_iter().flatten() {
                                    out.insert(s.as_str().unwrap().to_owned());
                                }
                            }
                        }
                    }
                    ("scope", Value::Object(prop)) => {
                        if let Some(ex) = prop.get("example").and_then(Value::as_str) {
                            out.extend(ex.split_whitespace().map(str::to_owned));
                        }
                    }
                    _ => collect_scopes(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_scopes(i, out)),
        _ => {}
    }
}

#[test]
fn custom_scopes() {
    let beta = Scope::custom("beta/feature.readonly").unwrap();
    assert!(!beta.is_known());
    assert_eq!(beta.to_string(), "beta/feature.readonly");
    // A custom scope that is in the list is the constant.
    assert_eq!(Scope::custom("oauth.write").unwrap(), Scope::OAUTH_WRITE);
    // Case matters: the list has `adPublishing.readOnly`.
    assert_eq!(
        Scope::custom("adPublishing.readOnly").unwrap(),
        Scope::AD_PUBLISHING_READ_ONLY
    );
    assert!(!Scope::custom("adpublishing.readonly").unwrap().is_known());

    let mut refused = String::new();
    for bad in [
        "",
        "contacts.readonly contacts.write",
        "a\tb",
        "a\nb",
        "a\u{0}b",
    ] {
        let err = Scope::custom(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
        assert!(bad.parse::<Scope>().is_err());
        refused.push_str(&format!("{bad:?}: {err}\n"));
    }
    snap!(refused);
}

#[test]
fn serde_and_granted_scopes() {
    let json =
        serde_json::to_string(&[Scope::CONTACTS_READONLY, Scope::custom("x.y").unwrap()]).unwrap();
    assert_eq!(json, r#"["contacts.readonly","x.y"]"#);
    let back: Vec<Scope> = serde_json::from_str(&json).unwrap();
    assert_eq!(back[0], Scope::CONTACTS_READONLY);
    assert!(serde_json::from_str::<Scope>(r#""two words""#).is_err());

    let granted = Scopes::new("oauth.readonly  oauth.write custom.scope");
    assert!(granted.contains_scope(&Scope::OAUTH_WRITE));
    assert!(!granted.contains_scope(&Scope::CONTACTS_READONLY));
    let list: Vec<Scope> = granted.scopes().collect();
    assert_eq!(
        list,
        [
            Scope::OAUTH_READONLY,
            Scope::OAUTH_WRITE,
            Scope::custom("custom.scope").unwrap()
        ]
    );
    assert_eq!(
        format!("{:?}", Scope::OAUTH_WRITE),
        r#"Scope("oauth.write")"#
    );
}

proptest! {
    #[test]
    fn any_string_makes_a_scope_or_an_error(s in ".{0,40}") {
        match Scope::custom(s.clone()) {
            Ok(scope) => {
                prop_assert_eq!(scope.as_str(), s.as_str());
                prop_assert!(!s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control()));
            }
            Err(e) => prop_assert_eq!(e.kind(), ErrorKind::InvalidInput),
        }
    }
}
