//! Verifying and parsing one INSTALL delivery, the whole check and its parts:
//! the Ed25519 signature over the raw body, the JSON parse into a typed event,
//! and the replay check against a seen-set of 10,000 ids.
//!
//! Run: `cargo bench --bench webhook`.

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hoopai_oauth::fake::{FakeServer, FakeWebhook};
use hoopai_oauth::{Config, SeenWebhooks, WebhookIdStore, WebhookVerifier, parse_webhook};

fn main() {
    divan::main();
}

const CLIENT_ID: &str = "6578278e879ad2646715ba9c-lq3w8xd2";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

struct Fixture {
    verifier: WebhookVerifier,
    location: http::Request<Vec<u8>>,
    bulk: http::Request<Vec<u8>>,
}

/// A Location INSTALL and a bulk INSTALL of 100 locations, signed by the fake.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut fake = FakeServer::new(CLIENT_ID, "secret");
        let config = Config::builder(CLIENT_ID, "secret").build().unwrap();
        let ids: Vec<String> = (0..100).map(|i| format!("location-{i:06}")).collect();
        Fixture {
            verifier: WebhookVerifier::new(&config).add_key(fake.webhook_key()),
            location: fake.webhook(&FakeWebhook::install_location("company-1", "loc-1"), now()),
            bulk: fake.webhook(&FakeWebhook::install_bulk("company-1", &ids), now()),
        }
    })
}

/// A seen-set already holding 10,000 ids within the window.
fn full_seen() -> SeenWebhooks {
    let mut seen = SeenWebhooks::default();
    for i in 0..10_000u64 {
        let at = now() - Duration::from_millis(i * 20);
        let _ = seen.record(&format!("id-{i:08}"), at, now(), Duration::from_secs(300));
    }
    seen
}

/// The whole check of a Location INSTALL: signature, parse, app id, window, seen-set.
#[divan::bench]
fn verify_and_parse_install(bencher: divan::Bencher) {
    let f = fixture();
    bencher.with_inputs(full_seen).bench_local_refs(|seen| {
        f.verifier
            .verify(
                black_box(f.location.headers()),
                black_box(f.location.body()),
                now(),
                seen,
            )
            .unwrap()
    });
}

/// The same for a bulk INSTALL listing 100 locations.
#[divan::bench]
fn verify_and_parse_bulk_install_of_100(bencher: divan::Bencher) {
    let f = fixture();
    bencher.with_inputs(full_seen).bench_local_refs(|seen| {
        f.verifier
            .verify(
                black_box(f.bulk.headers()),
                black_box(f.bulk.body()),
                now(),
                seen,
            )
            .unwrap()
    });
}

/// The signature alone.
#[divan::bench]
fn signature_only() {
    let f = fixture();
    f.verifier
        .trusted_keys()
        .verify(
            black_box(f.location.headers()),
            black_box(f.location.body()),
        )
        .unwrap();
}

/// The parse alone.
#[divan::bench]
fn parse_only() {
    parse_webhook(black_box(fixture().location.body())).unwrap();
}
