//! The `x-ghl-signature` check: RFC 8032 vectors for the primitive, our own
//! vectors for the header format (signed by an independent implementation),
//! re-serialized bodies, key rotation, and single-byte changes.

mod common;

use std::fmt::Write;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer as _, SigningKey};
use hoopai_oauth::fake::{FakeServer, FakeWebhook};
use hoopai_oauth::{ErrorKind, WebhookKey, WebhookKeys};
use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use serde_json::Value;

use common::{CLIENT_ID, CLIENT_SECRET, t0};

fn data(file: &str) -> String {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn hex(text: &str) -> Vec<u8> {
    assert!(text.len() % 2 == 0, "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn signed(header: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-ghl-signature", HeaderValue::from_str(header).unwrap());
    h
}

struct Rfc8032 {
    name: String,
    secret: Vec<u8>,
    public: Vec<u8>,
    message: Vec<u8>,
    signature: Vec<u8>,
}

/// Reads the RFC 8032 section 7.1 vectors copied into `tests/data`.
fn rfc8032_vectors() -> Vec<Rfc8032> {
    let mut out: Vec<Rfc8032> = Vec::new();
    for line in data("rfc8032-ed25519-vectors.txt").lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix("TEST ") {
            out.push(Rfc8032 {
                name: name.to_owned(),
                secret: Vec::new(),
                public: Vec::new(),
                message: Vec::new(),
                signature: Vec::new(),
            });
            continue;
        }
        let (field, value) = line.split_once(':').expect("FIELD: value");
        let t = out.last_mut().expect("a TEST line first");
        let bytes = hex(value.trim());
        match field {
            "SECRET KEY" => t.secret = bytes,
            "PUBLIC KEY" => t.public = bytes,
            "MESSAGE" => t.message.extend(bytes),
            "SIGNATURE" => t.signature = bytes,
            other => panic!("unknown field {other}"),
        }
    }
    out
}

#[test]
fn rfc8032_test_vectors() {
    let vectors = rfc8032_vectors();
    let lengths: Vec<(&str, usize)> = vectors
        .iter()
        .map(|t| (t.name.as_str(), t.message.len()))
        .collect();
    assert_eq!(
        lengths,
        [
            ("1", 0),
            ("2", 1),
            ("3", 2),
            ("1024", 1023),
            ("SHA(abc)", 64)
        ]
    );
    for t in &vectors {
        let secret: [u8; 32] = t.secret.as_slice().try_into().unwrap();
        let public: [u8; 32] = t.public.as_slice().try_into().unwrap();
        // The primitive: key derivation and deterministic signing.
        let signing = SigningKey::from_bytes(&secret);
        assert_eq!(
            signing.verifying_key().to_bytes(),
            public,
            "TEST {}",
            t.name
        );
        assert_eq!(
            signing.sign(&t.message).to_bytes().to_vec(),
            t.signature,
            "TEST {}",
            t.name
        );
        // Through the crate's header check.
        let keys = WebhookKeys::empty().with(WebhookKey::from_bytes(&public).unwrap());
        let header = signed(&BASE64.encode(&t.signature));
        assert_eq!(keys.verify(&header, &t.message), Ok(0), "TEST {}", t.name);
        // One more byte, or one byte changed, and it fails.
        let mut longer = t.message.clone();
        longer.push(0);
        assert_eq!(
            keys.verify(&header, &longer).unwrap_err().kind(),
            ErrorKind::WebhookBadSignature
        );
        if let Some(last) = longer.len().checked_sub(2) {
            let mut changed = t.message.clone();
            changed[last] ^= 0x80;
            assert_eq!(
                keys.verify(&header, &changed).unwrap_err().kind(),
                ErrorKind::WebhookBadSignature
            );
        }
    }
}

#[test]
fn header_format_vectors() {
    let v: Value = serde_json::from_str(&data("webhook-signature-vectors.json")).unwrap();
    let key = WebhookKey::from_spki(v["public_key_spki_base64"].as_str().unwrap()).unwrap();
    let keys = WebhookKeys::empty().with(key);
    let body = v["body"].as_str().unwrap().as_bytes();
    let mut report = String::new();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 17);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mut headers = HeaderMap::new();
        if let Some(h) = case["x-ghl-signature"].as_str() {
            headers.insert("x-ghl-signature", HeaderValue::from_str(h).unwrap());
        }
        if let Some(h) = case["x-wh-signature"].as_str() {
            headers.insert("x-wh-signature", HeaderValue::from_str(h).unwrap());
        }
        let outcome = keys.verify(&headers, body);
        let got = match &outcome {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("{:?}", e.kind()),
        };
        assert_eq!(got, case["expect"].as_str().unwrap(), "{name}");
        match outcome {
            Ok(i) => writeln!(report, "{name}\n  ok: key {i}").unwrap(),
            Err(e) => writeln!(report, "{name}\n  {:?}: {e}", e.kind()).unwrap(),
        }
    }
    snap!(report);
}

#[test]
fn a_body_reserialized_after_signing_fails() {
    let mut fake = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
    let delivery = fake.webhook(
        &FakeWebhook::install_bulk("company-1", &["loc-1", "loc-2"]),
        t0(),
    );
    let keys = WebhookKeys::empty().with(fake.webhook_key());
    assert_eq!(keys.verify(delivery.headers(), delivery.body()), Ok(0));
    // What the official Node SDK verifies: JSON.stringify of the parsed body.
    let parsed: Value = serde_json::from_slice(delivery.body()).unwrap();
    for reserialized in [
        serde_json::to_vec(&parsed).unwrap(),
        serde_json::to_vec_pretty(&parsed).unwrap(),
    ] {
        assert_ne!(reserialized, *delivery.body());
        let err = keys.verify(delivery.headers(), &reserialized).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WebhookBadSignature);
    }
    // Even a re-serialization that keeps every byte but the key order.
    let text = std::str::from_utf8(delivery.body()).unwrap();
    let swapped = text.replacen(r#""type":"INSTALL","#, "", 1).replacen(
        r#""webhookId""#,
        r#""type":"INSTALL","webhookId""#,
        1,
    );
    assert_eq!(swapped.len(), text.len());
    assert_eq!(
        serde_json::from_str::<Value>(&swapped).unwrap(),
        parsed,
        "the same JSON value"
    );
    let err = keys
        .verify(delivery.headers(), swapped.as_bytes())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WebhookBadSignature);
    snap!(err.to_string());
}

#[test]
fn keys_rotate_and_an_empty_set_refuses_everything() {
    let mut fake = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
    let old = fake.webhook(&FakeWebhook::install_location("c", "l"), t0());
    let old_key = fake.webhook_key();
    fake.set_webhook_signing_seed([7; 32]);
    let new = fake.webhook(&FakeWebhook::install_location("c", "l"), t0());
    let new_key = fake.webhook_key();
    assert_ne!(old_key, new_key);

    let mut keys = WebhookKeys::highlevel().with(old_key).with(new_key);
    assert_eq!(keys.keys().len(), 3);
    assert_eq!(keys.verify(old.headers(), old.body()), Ok(1));
    assert_eq!(keys.verify(new.headers(), new.body()), Ok(2));
    assert!(keys.remove(&old_key));
    assert_eq!(
        keys.verify(old.headers(), old.body()).unwrap_err().kind(),
        ErrorKind::WebhookBadSignature
    );
    // The published key alone trusts neither test key.
    let published = WebhookKeys::default();
    assert_eq!(
        published
            .verify(new.headers(), new.body())
            .unwrap_err()
            .kind(),
        ErrorKind::WebhookBadSignature
    );
    // No key, no delivery: verification is never skipped.
    let err = WebhookKeys::empty()
        .verify(new.headers(), new.body())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WebhookBadSignature);
    assert!(
        err.to_string().contains("none of the 0 trusted key(s)"),
        "{err}"
    );
}

#[test]
fn a_repeated_header_is_refused() {
    let mut fake = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
    let delivery = fake.webhook(&FakeWebhook::install_company("c"), t0());
    let keys = WebhookKeys::empty().with(fake.webhook_key());
    let mut headers = delivery.headers().clone();
    let value = headers["x-ghl-signature"].clone();
    headers.append("x-ghl-signature", value);
    let err = keys.verify(&headers, delivery.body()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WebhookMalformedSignature);
    let mut binary = HeaderMap::new();
    binary.insert(
        "x-ghl-signature",
        HeaderValue::from_bytes(b"\xff\xfe signature").unwrap(),
    );
    let err = keys.verify(&binary, delivery.body()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WebhookMalformedSignature);
    let huge = signed(&"A".repeat(10_000));
    let err = keys.verify(&huge, delivery.body()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WebhookMalformedSignature);
    snap!(err.to_string());
}

fn fixed_delivery() -> (WebhookKeys, http::Request<Vec<u8>>) {
    let mut fake = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
    let delivery = fake.webhook(
        &FakeWebhook::install_bulk("company-1", &["loc-1", "loc-2", "loc-3"]),
        t0(),
    );
    (WebhookKeys::empty().with(fake.webhook_key()), delivery)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_single_byte_change_in_the_body_fails(at in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let (keys, delivery) = fixed_delivery();
        let mut body = delivery.body().clone();
        let i = at.index(body.len());
        body[i] ^= xor;
        let err = keys.verify(delivery.headers(), &body).unwrap_err();
        prop_assert_eq!(err.kind(), ErrorKind::WebhookBadSignature);
    }

    #[test]
    fn any_single_byte_change_in_the_signature_fails(at in 0usize..64, xor in 1u8..=255) {
        let (keys, delivery) = fixed_delivery();
        let header = delivery.headers()["x-ghl-signature"].to_str().unwrap();
        let mut sig = BASE64.decode(header).unwrap();
        sig[at] ^= xor;
        let err = keys.verify(&signed(&BASE64.encode(&sig)), delivery.body()).unwrap_err();
        prop_assert_eq!(err.kind(), ErrorKind::WebhookBadSignature);
    }

    #[test]
    fn any_single_character_change_in_the_header_fails(at in 0usize..86, to in prop::char::range('!', '~')) {
        let (keys, delivery) = fixed_delivery();
        let header = delivery.headers()["x-ghl-signature"].to_str().unwrap().to_owned();
        prop_assume!(header.as_bytes()[at] != to as u8);
        let mut changed = header.into_bytes();
        changed[at] = to as u8;
        let changed = String::from_utf8(changed).unwrap();
        let err = keys.verify(&signed(&changed), delivery.body()).unwrap_err();
        prop_assert!(
            matches!(err.kind(), ErrorKind::WebhookBadSignature | ErrorKind::WebhookMalformedSignature),
            "{:?}", err.kind()
        );
    }

    #[test]
    fn no_header_value_panics(header in "\\PC{0,200}", body in prop::collection::vec(any::<u8>(), 0..300)) {
        let (keys, _) = fixed_delivery();
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&header) {
            headers.insert("x-ghl-signature", v);
        }
        prop_assert!(keys.verify(&headers, &body).is_err());
    }
}
