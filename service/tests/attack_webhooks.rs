//! Attack on the webhook route over loopback: signed deliveries with huge
//! `webhookId`s, which a seen-id store bounded by count alone would keep
//! for the whole replay window (100 of 900 KiB took a process from 18 MB to
//! 211 MB). See `docs/security.md`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use common::app::App;
use common::fake_http::FakeHttp;
use hoopai_oauth::fake::FakeWebhook;
use hoopai_oauth::{EngineSettings, Recorded, SeenWebhooks, WebhookIdStore, WebhookVerifier};
use hoopai_oauth_service::routes::{RecordFuture, WebhookIds};
use hoopai_oauth_service::{OAuthRouter, ServiceSettings};

/// The route's seen-id store, shared with the test to look into.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<SeenWebhooks>>);

impl WebhookIds for Seen {
    fn record<'a>(
        &'a self,
        webhook_id: &'a str,
        timestamp: SystemTime,
        now: SystemTime,
        window: std::time::Duration,
    ) -> RecordFuture<'a> {
        let recorded: Recorded = self
            .0
            .lock()
            .unwrap()
            .record(webhook_id, timestamp, now, window);
        Box::pin(std::future::ready(Ok(recorded)))
    }
}

/// The resident memory of this process, in KiB (Linux).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Attack: 100 deliveries, each validly signed, each with a 900 KiB
/// `webhookId`. Defence: a `webhookId` over 256 bytes is refused as
/// malformed (`400`) before anything is recorded; the seen-id store is also
/// bounded in bytes. Memory stays flat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_deliveries_with_huge_webhook_ids_are_refused_and_kept_nowhere() {
    let seen = Seen::default();
    let ids = seen.clone();
    let app = App::start(
        FakeHttp::start().await,
        ServiceSettings::new(EngineSettings::default()),
        |config| config,
        move |fake, config, service| {
            let verifier = WebhookVerifier::new(config).add_key(fake.fake().webhook_key());
            let routes = OAuthRouter::new(service, [])
                .webhook_verifier(verifier)
                .webhook_ids(ids);
            axum::Router::new().nest("/oauth", routes.into_router())
        },
    )
    .await;
    // A delivery as the fake sends it, with the id replaced, signed again.
    let delivery = |id: &str| {
        let mut fake = app.fake.fake();
        let sent = fake.webhook(
            &FakeWebhook::install_location("company-1", "loc-9"),
            SystemTime::now(),
        );
        let mut body: serde_json::Value = serde_json::from_slice(sent.body()).unwrap();
        body["webhookId"] = id.into();
        fake.signed_webhook(serde_json::to_vec(&body).unwrap())
    };
    // Warm up the path (allocator, connections) before measuring.
    let (status, _) = app.deliver("/webhook", &delivery("warm-up-id")).await;
    assert_eq!(status, 200);
    let before = rss_kib();
    for i in 0..100 {
        let id = format!("{i:03}{}", "x".repeat(900 * 1024));
        let (status, body) = app.deliver("/webhook", &delivery(&id)).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body, "refused: malformed webhook\n");
    }
    let after = rss_kib();
    let remembered = seen.0.lock().unwrap().len();
    assert_eq!(remembered, 1, "only the warm-up id is remembered");
    if let (Some(before), Some(after)) = (before, after) {
        let grew = after.saturating_sub(before) / 1024;
        eprintln!("resident memory: {before} KiB before, {after} KiB after");
        assert!(grew < 48, "resident memory grew by {grew} MiB");
    }
    // A delivery with an ordinary id is still accepted.
    let (status, body) = app
        .deliver(
            "/webhook",
            &delivery("4c4a0e5f-3c1f-4a8e-9a57-0b1c2d3e4f50"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.service.shutdown().await;
}
