//! The whole check of a delivery: forged, stale, replayed, undated and
//! other-app deliveries each refused with its typed error, in the right
//! order; the seen-set's bounds; the contract for a store of one's own.

mod common;

use std::collections::HashMap;
use std::fmt::Write;
use std::time::{Duration, SystemTime};

use hoopai_oauth::fake::{FakeServer, FakeWebhook};
use hoopai_oauth::{
    ErrorClass, ErrorKind, InstallTarget, Recorded, SeenWebhooks, UninstallTarget, WebhookIdStore,
    WebhookPayload, WebhookVerifier,
};
use proptest::prelude::*;

use common::{CLIENT_ID, CLIENT_SECRET, config, t0};

fn setup() -> (FakeServer, WebhookVerifier) {
    let fake = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
    let verifier = WebhookVerifier::new(&config()).add_key(fake.webhook_key());
    (fake, verifier)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn every_delivery_the_fake_sends_is_accepted_and_typed() {
    let (mut fake, verifier) = setup();
    let mut seen = SeenWebhooks::default();
    let now = t0();
    let cases = [
        FakeWebhook::install_location("company-1", "loc-1"),
        FakeWebhook::install_company("company-1"),
        FakeWebhook::install_bulk("company-1", &["loc-1", "loc-2", "loc-3"]),
        FakeWebhook::uninstall_location("loc-1"),
        FakeWebhook::uninstall_company("company-1"),
    ];
    let mut out = String::new();
    for case in &cases {
        let delivery = fake.webhook(case, now);
        assert_eq!(delivery.method(), http::Method::POST);
        assert_eq!(
            delivery.uri().to_string(),
            "http://127.0.0.1/webhooks/highlevel"
        );
        let event = verifier
            .verify_request(&delivery, now + secs(2), &mut seen)
            .unwrap();
        assert_eq!(event.app_id.as_deref(), Some(verifier.app_id()));
        assert_eq!(event.timestamp, Some(now));
        writeln!(
            out,
            "{}\n{event:?}\n",
            String::from_utf8_lossy(delivery.body())
        )
        .unwrap();
    }
    assert_eq!(seen.len(), cases.len());
    snap!(out);
}

#[test]
fn forged_stale_replayed_and_foreign_deliveries_are_refused() {
    let (mut fake, verifier) = setup();
    let mut seen = SeenWebhooks::default();
    let now = t0();
    let mut out = String::new();
    macro_rules! check {
        ($name:expr, $request:expr, $at:expr, $want:expr $(,)?) => {{
            let err = verifier
                .verify_request($request, $at, &mut seen)
                .unwrap_err();
            assert_eq!(err.kind(), $want, "{}: {err}", $name);
            assert_eq!(err.class(), ErrorClass::Webhook);
            writeln!(out, "== {}\n{:?}: {err}", $name, err.kind()).unwrap();
        }};
    }

    // Forged: signed by a key that is not trusted.
    let mut forger = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
    forger.set_webhook_signing_seed([0x42; 32]);
    let forged = forger.webhook(&FakeWebhook::uninstall_company("company-1"), now);
    check!("forged", &forged, now, ErrorKind::WebhookBadSignature);

    // Stale, and from too far ahead.
    let old = fake.webhook(&FakeWebhook::install_location("company-1", "loc-1"), now);
    check!(
        "stale: 5 min 1 s old",
        &old,
        now + secs(301),
        ErrorKind::WebhookStale,
    );
    check!(
        "from the future: 5 min 1 s ahead",
        &old,
        now - secs(301),
        ErrorKind::WebhookStale,
    );

    // Replayed: accepted once, then refused.
    let fresh = fake.webhook(&FakeWebhook::install_location("company-1", "loc-2"), now);
    verifier
        .verify_request(&fresh, now + secs(300), &mut SeenWebhooks::default())
        .expect("exactly at the edge of the window");
    verifier.verify_request(&fresh, now, &mut seen).unwrap();
    check!(
        "replayed a minute later",
        &fresh,
        now + secs(60),
        ErrorKind::WebhookReplayed,
    );

    // For another app.
    let mut other_app = FakeServer::new("0000aaaa1111bbbb2222cccc-zz", CLIENT_SECRET);
    other_app.set_webhook_signing_seed(hoopai_oauth::fake::FAKE_WEBHOOK_SEED);
    let foreign = other_app.webhook(&FakeWebhook::install_company("company-9"), now);
    check!("another app", &foreign, now, ErrorKind::WebhookOtherApp);
    let no_app = fake.signed_webhook(
        br#"{"type":"INSTALL","installType":"Company","companyId":"c","timestamp":"2026-01-01T00:00:00.000Z","webhookId":"w"}"#
            .to_vec(),
    );
    check!(
        "INSTALL without appId",
        &no_app,
        now,
        ErrorKind::WebhookOtherApp
    );

    // Undated: an old UNINSTALL delivery.
    let undated = fake.signed_webhook(
        br#"{"type":"UNINSTALL","appId":"6578278e879ad2646715ba9c","locationId":"loc-1"}"#.to_vec(),
    );
    check!(
        "undated UNINSTALL",
        &undated,
        now,
        ErrorKind::WebhookUndated
    );
    let no_id = fake.signed_webhook(
        br#"{"type":"UNINSTALL","appId":"6578278e879ad2646715ba9c","locationId":"loc-1","timestamp":"2026-01-01T00:00:00.000Z"}"#.to_vec(),
    );
    check!("no webhookId", &no_id, now, ErrorKind::WebhookUndated);
    let bad_time = fake.signed_webhook(
        br#"{"type":"UNINSTALL","appId":"6578278e879ad2646715ba9c","locationId":"loc-1","timestamp":"yesterday","webhookId":"w-1"}"#.to_vec(),
    );
    check!(
        "unreadable timestamp",
        &bad_time,
        now,
        ErrorKind::WebhookUndated
    );

    // Unsigned, and legacy-only.
    let mut unsigned = fresh.clone();
    unsigned.headers_mut().remove("x-ghl-signature");
    check!("unsigned", &unsigned, now, ErrorKind::WebhookUnsigned);
    let mut legacy = unsigned.clone();
    legacy.headers_mut().insert(
        "x-wh-signature",
        http::HeaderValue::from_static("c2lnbmF0dXJl"),
    );
    check!(
        "legacy only",
        &legacy,
        now,
        ErrorKind::WebhookLegacySignature
    );

    snap!(out);
}

#[test]
fn the_signature_is_checked_before_anything_else() {
    let (mut fake, verifier) = setup();
    let mut seen = SeenWebhooks::default();
    let now = t0();
    // A body that is stale, for another app, and not even JSON: the forgery is
    // what is reported, and nothing is recorded.
    let mut forger = FakeServer::new("otherapp-x", "s");
    forger.set_webhook_signing_seed([9; 32]);
    for body in [
        b"not json".to_vec(),
        br#"{"type":"INSTALL","appId":"otherapp","installType":"Company","companyId":"c","timestamp":"2020-01-01T00:00:00Z","webhookId":"w"}"#.to_vec(),
    ] {
        let forged = forger.signed_webhook(body);
        let err = verifier.verify_request(&forged, now, &mut seen).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WebhookBadSignature);
    }
    assert!(seen.is_empty());
    // A signed body that is stale is not recorded either, so it cannot block
    // anything later.
    let stale = fake.webhook(&FakeWebhook::install_company("c"), now);
    let err = verifier
        .verify_request(&stale, now + secs(3600), &mut seen)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WebhookStale);
    assert!(seen.is_empty());
}

#[test]
fn undated_deliveries_can_be_accepted_on_purpose() {
    let (fake, verifier) = setup();
    let verifier = verifier.accept_undated(true);
    let mut seen = SeenWebhooks::default();
    let undated = fake.signed_webhook(
        br#"{"type":"UNINSTALL","appId":"6578278e879ad2646715ba9c","locationId":"loc-1"}"#.to_vec(),
    );
    let event = verifier.verify_request(&undated, t0(), &mut seen).unwrap();
    let WebhookPayload::Uninstall(u) = &event.payload else {
        panic!()
    };
    assert_eq!(
        u.target,
        UninstallTarget::Location {
            location_id: "loc-1".into()
        }
    );
    assert!(seen.is_empty(), "nothing to record without a webhookId");
    // Still held to the window when it has a timestamp; still signed.
    let dated = fake.signed_webhook(
        br#"{"type":"UNINSTALL","appId":"6578278e879ad2646715ba9c","locationId":"loc-1","timestamp":"2025-01-01T00:00:00Z"}"#.to_vec(),
    );
    assert_eq!(
        verifier
            .verify_request(&dated, t0(), &mut seen)
            .unwrap_err()
            .kind(),
        ErrorKind::WebhookStale
    );
    let mut unsigned = undated.clone();
    unsigned.headers_mut().clear();
    assert_eq!(
        verifier
            .verify_request(&unsigned, t0(), &mut seen)
            .unwrap_err()
            .kind(),
        ErrorKind::WebhookUnsigned
    );
}

#[test]
fn the_window_is_configurable() {
    let (mut fake, verifier) = setup();
    let verifier = verifier.window(secs(30));
    assert_eq!(verifier.replay_window(), secs(30));
    let delivery = fake.webhook(&FakeWebhook::install_company("c"), t0());
    let mut seen = SeenWebhooks::default();
    assert_eq!(
        verifier
            .verify_request(&delivery, t0() + secs(31), &mut seen)
            .unwrap_err()
            .kind(),
        ErrorKind::WebhookStale
    );
    verifier
        .verify_request(&delivery, t0() + secs(30), &mut seen)
        .unwrap();
}

/// An app's own store, e.g. a table with a unique key and an expiry column.
#[derive(Default)]
struct Table {
    rows: HashMap<String, SystemTime>,
}

impl Table {
    /// `INSERT … ON CONFLICT DO NOTHING`, with expired rows swept first.
    fn insert_if_absent(&mut self, id: &str, keep_until: SystemTime, now: SystemTime) -> bool {
        self.rows.retain(|_, until| *until >= now);
        if self.rows.contains_key(id) {
            return false;
        }
        self.rows.insert(id.to_owned(), keep_until);
        true
    }
}

impl WebhookIdStore for Table {
    fn record(
        &mut self,
        id: &str,
        timestamp: SystemTime,
        now: SystemTime,
        window: Duration,
    ) -> Recorded {
        if self.insert_if_absent(id, timestamp + window, now) {
            Recorded::New
        } else {
            Recorded::Duplicate
        }
    }
}

#[test]
fn a_store_of_the_apps_own() {
    let (mut fake, verifier) = setup();
    let mut table = Table::default();
    let now = t0();
    let bulk = fake.webhook(&FakeWebhook::install_bulk("c", &["l1", "l2"]), now);
    // Through the trait.
    let event = verifier.verify_request(&bulk, now, &mut table).unwrap();
    assert!(matches!(
        &event.payload,
        WebhookPayload::Install(i) if matches!(&i.target, InstallTarget::Bulk { location_ids, .. } if location_ids.len() == 2)
    ));
    assert_eq!(
        verifier
            .verify_request(&bulk, now + secs(10), &mut table)
            .unwrap_err()
            .kind(),
        ErrorKind::WebhookReplayed
    );
    // In two steps, as an async store would be driven.
    let other = fake.webhook(&FakeWebhook::uninstall_location("l1"), now);
    let event = verifier
        .verify_unrecorded(other.headers(), other.body(), now)
        .unwrap();
    let (id, timestamp) = event.replay_key().unwrap();
    let new = table.insert_if_absent(id, timestamp + verifier.replay_window(), now);
    let recorded = if new {
        Recorded::New
    } else {
        Recorded::Duplicate
    };
    verifier.accept(event.clone(), recorded).unwrap();
    let again = table.insert_if_absent(id, timestamp + verifier.replay_window(), now);
    assert!(!again);
    assert_eq!(
        verifier
            .accept(event, Recorded::Duplicate)
            .unwrap_err()
            .kind(),
        ErrorKind::WebhookReplayed
    );
}

#[test]
fn a_full_seen_set_refuses_the_oldest_never_accepts_twice() {
    let mut seen = SeenWebhooks::new(3);
    let window = secs(300);
    let now = t0();
    for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
        let at = now + secs(i as u64);
        assert_eq!(seen.record(id, at, now + secs(10), window), Recorded::New);
    }
    assert_eq!(seen.len(), 3);
    assert!(!seen.contains("a"));
    assert_eq!(seen.floor(), Some(now + Duration::from_nanos(1)));
    // "a" again: older than the memory reaches, so refused, not accepted.
    assert_eq!(
        seen.record("a", now, now + secs(10), window),
        Recorded::BeyondMemory
    );
    assert_eq!(
        seen.record("b", now + secs(1), now + secs(10), window),
        Recorded::Duplicate
    );
    // Time passes: entries expire by their payload timestamps.
    assert_eq!(
        seen.record("e", now + secs(400), now + secs(400), window),
        Recorded::New
    );
    assert_eq!(seen.len(), 1);
    // `now` going back does not lower the floor.
    assert_eq!(
        seen.record("b", now + secs(1), now, window),
        Recorded::BeyondMemory
    );
}

#[derive(Debug, Clone)]
struct Op {
    id: u8,
    ts: u16,
    now: u16,
}

fn op() -> impl Strategy<Value = Op> {
    (0u8..40, 0u16..2000, 0u16..2000).prop_map(|(id, ts, now)| Op { id, ts, now })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    /// Whatever the order and times: the set stays within its capacity, and no
    /// delivery (id and timestamp) is ever accepted twice.
    #[test]
    fn the_seen_set_stays_bounded_and_never_accepts_twice(
        capacity in 1usize..12,
        window in 1u64..600,
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let mut seen = SeenWebhooks::new(capacity);
        let mut accepted = std::collections::HashSet::new();
        let mut floor = None;
        for o in &ops {
            let id = format!("w-{}", o.id);
            let ts = t0() + secs(u64::from(o.ts));
            let now = t0() + secs(u64::from(o.now));
            let r = seen.record(&id, ts, now, secs(window));
            prop_assert!(seen.len() <= capacity);
            if r == Recorded::New {
                prop_assert!(accepted.insert((id.clone(), ts)), "{} at {:?} accepted twice", id, ts);
                prop_assert!(seen.contains(&id) || seen.floor() > Some(ts));
            }
            prop_assert!(seen.floor() >= floor, "the floor never goes down");
            floor = seen.floor();
        }
    }
}

#[test]
fn a_webhook_id_over_the_limit_is_malformed_and_never_recorded() {
    let (fake, verifier) = setup();
    let mut seen = SeenWebhooks::default();
    let now = t0();
    for (len, ok) in [
        (36, true),
        (hoopai_oauth::MAX_WEBHOOK_ID_BYTES, true),
        (hoopai_oauth::MAX_WEBHOOK_ID_BYTES + 1, false),
        (900 * 1024, false),
    ] {
        let id = "i".repeat(len);
        let body = format!(
            r#"{{"type":"LocationCreate","appId":"{}","timestamp":"2026-01-01T00:00:00.000Z","webhookId":"{id}"}}"#,
            verifier.app_id()
        );
        let delivery = fake.signed_webhook(body.into_bytes());
        let got = verifier.verify_request(&delivery, now, &mut seen);
        if ok {
            assert!(got.is_ok(), "{len}: {got:?}");
        } else {
            let err = got.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::WebhookMalformed, "{len}");
            assert!(err.to_string().len() < 512, "{len}");
            assert!(!seen.contains(&id));
        }
    }
    assert_eq!(seen.len(), 2);
}

#[test]
fn the_seen_set_is_bounded_in_bytes() {
    let budget = 64 * 1024;
    let mut seen = SeenWebhooks::new(1_000_000).max_bytes(budget);
    let window = secs(300);
    for i in 0..10_000_u64 {
        let id = format!("{i:0>250}");
        let at = t0() + Duration::from_millis(i);
        assert_eq!(seen.record(&id, at, at, window), Recorded::New);
        assert!(seen.bytes() <= budget, "{i}: {}", seen.bytes());
    }
    assert!(seen.len() < 200, "{}", seen.len());
    // What was evicted is refused as beyond memory, never accepted twice.
    let first = format!("{:0>250}", 0);
    let late = t0() + Duration::from_millis(10_000);
    assert_eq!(
        seen.record(&first, t0(), late, window),
        Recorded::BeyondMemory
    );
}
