//! The service's metrics, as a Prometheus recorder renders them, against
//! what a test did to a real token service over loopback: refreshes (one
//! failing then retried, one suspended, one rate-limited), store writes,
//! webhook deliveries (accepted, replayed, forged, unsigned, too large),
//! throttled callbacks. Counts are exact; no label holds a grant id, and
//! the rendered text holds no token.
//!
//! The recorder is installed for this test's thread only
//! (`metrics::set_default_local_recorder`), and the test runs on a
//! current-thread runtime, so every task of the service records into it.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::app::App;
use common::env::expired;
use common::fake_http::{CLIENT_ID, CLIENT_SECRET, FakeHttp};
use common::prometheus::Scrape;
use hoopai_oauth::fake::{FakeServer, FakeWebhook, Fault};
use hoopai_oauth::{EngineSettings, WebhookVerifier};
use hoopai_oauth_service::routes::{Rate, RouteLimits};
use hoopai_oauth_service::{OAuthRouter, ServiceSettings, TokenError};
use metrics_exporter_prometheus::PrometheusBuilder;

fn settings() -> ServiceSettings {
    ServiceSettings::new(
        EngineSettings::default()
            .expiry_skew(Duration::from_secs(1))
            .request_timeout(Duration::from_secs(5))
            .backoff(Duration::from_millis(200), Duration::from_secs(1))
            .jitter_seed(7),
    )
    .wait(Duration::from_secs(10))
}

/// Adds `grant` again as if its access token had expired (with the refresh
/// token the store holds), then asks for a token: the caller waits for the
/// refresh.
async fn refresh(app: &App, grant: &str) -> Result<hoopai_oauth::AccessToken, TokenError> {
    let live = app.stored(grant).await.unwrap();
    let live = live.refresh_token().unwrap().secret().to_owned();
    app.service.add(grant, expired(grant, &live)).await.unwrap();
    app.service.access_token(grant).await
}

#[tokio::test]
async fn the_metrics_count_what_happened() {
    let recorder = PrometheusBuilder::new()
        .set_buckets(&[0.001, 0.01, 0.1, 0.25, 0.5, 1.0, 5.0])
        .unwrap()
        .build_recorder();
    let handle = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);

    let app = App::start(
        FakeHttp::start().await,
        settings(),
        |config| config,
        |fake, config, service| {
            let verifier = WebhookVerifier::new(config).add_key(fake.fake().webhook_key());
            let one_a_minute = RouteLimits::new(
                Rate::new(1, Duration::from_secs(60)),
                Rate::new(1_000, Duration::from_millis(1)),
            );
            axum::Router::new().nest(
                "/oauth",
                OAuthRouter::new(service, [])
                    .webhook_verifier(verifier)
                    .callback_limits(one_a_minute)
                    .into_router(),
            )
        },
    )
    .await;
    let began = Instant::now();
    for grant in ["loc-1", "loc-2", "loc-3"] {
        app.install(grant).await;
    }
    // Every answer of the fake takes 200 ms from here on, so each caller
    // below surely asks while its refresh is out, and waits.
    app.fake.set_delay(Duration::from_millis(200));
    let mut tokens = Vec::new();

    // Three refreshes, then one answered 500 and retried.
    for _ in 0..3 {
        tokens.push(refresh(&app, "loc-1").await.unwrap());
    }
    app.fake.fake().fail_next(Fault::ServerError, 1);
    tokens.push(refresh(&app, "loc-1").await.unwrap());
    // One refused: the location is not active.
    app.fake.fake().fail_next(Fault::LocationNotActive, 1);
    let suspended = refresh(&app, "loc-3").await;
    assert!(
        matches!(suspended, Err(TokenError::Suspended { .. })),
        "{suspended:?}"
    );
    let versions: u64 = app
        .service
        .list()
        .await
        .unwrap()
        .iter()
        .map(|g| g.version)
        .sum();

    // Webhooks: an UNINSTALL of loc-2, the same again, a forged one, an
    // unsigned one, one too large.
    let hook = "/webhook";
    let event = FakeWebhook::uninstall_location("loc-2");
    let signed = app.fake.fake().uninstall(&event, SystemTime::now());
    assert_eq!(app.deliver(hook, &signed).await.0, 200);
    let (status, body) = app.deliver(hook, &signed).await;
    assert_eq!((status, body.starts_with("duplicate")), (200, true));
    let mut forger = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
    forger.set_webhook_signing_seed([7; 32]);
    let forged = forger.webhook(&FakeWebhook::uninstall_location("loc-1"), SystemTime::now());
    assert_eq!(app.deliver(hook, &forged).await.0, 401);
    let unsigned = http::Request::builder()
        .method("POST")
        .header("content-type", "application/json")
        .body(br#"{"type":"UNINSTALL","locationId":"loc-1"}"#.to_vec())
        .unwrap();
    assert_eq!(app.deliver(hook, &unsigned).await.0, 401);
    let huge = http::Request::builder()
        .method("POST")
        .header("content-type", "application/json")
        .body(vec![b' '; 2 << 20])
        .unwrap();
    assert_eq!(app.deliver(hook, &huge).await.0, 413);

    // The callback throttle: one request a minute per client.
    let browser = reqwest::Client::new();
    let callback = format!("{}/oauth/callback?code=x", app.base);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            browser
                .get(&callback)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [400, 429, 429]);

    // The gauges are taken at most once a second.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let m = Scrape::parse(&handle.render());
    let within_one_window = began.elapsed() < Duration::from_secs(9);

    assert_eq!(
        m.get("hoopai_refreshes_total", &[("outcome", "refreshed")]),
        4.0
    );
    assert_eq!(
        m.get("hoopai_refreshes_total", &[("outcome", "retry_scheduled")]),
        1.0
    );
    assert_eq!(
        m.get("hoopai_refreshes_total", &[("outcome", "suspended")]),
        1.0
    );
    assert_eq!(m.total("hoopai_refreshes_total"), 6.0);
    assert_eq!(
        m.get("hoopai_refresh_failures_total", &[("kind", "server_error")]),
        1.0
    );
    assert_eq!(
        m.get(
            "hoopai_refresh_failures_total",
            &[("kind", "location_not_active")]
        ),
        1.0
    );
    assert_eq!(m.total("hoopai_refresh_failures_total"), 2.0);
    assert_eq!(m.get("hoopai_requests_total", &[("answer", "ok")]), 4.0);
    assert_eq!(
        m.get("hoopai_requests_total", &[("answer", "server_error")]),
        1.0
    );
    assert_eq!(
        m.get("hoopai_requests_total", &[("answer", "refused")]),
        1.0
    );
    assert_eq!(m.get("hoopai_refresh_duration_seconds_count", &[]), 6.0);
    assert!(m.get("hoopai_refresh_duration_seconds_sum", &[]) >= 6.0 * 0.2);
    assert_eq!(
        m.get("hoopai_refresh_duration_seconds_bucket", &[("le", "0.1")]),
        0.0,
        "every answer took 200 ms or more"
    );
    // Every record version is one write; each returned written.
    assert_eq!(
        m.get("hoopai_store_writes_total", &[("outcome", "written")]),
        versions as f64
    );
    assert_eq!(m.total("hoopai_store_writes_total"), versions as f64);
    assert_eq!(
        m.get("hoopai_store_write_duration_seconds_count", &[]),
        versions as f64
    );
    assert_eq!(m.total("hoopai_store_timeouts_total"), 0.0);
    // The callers who waited: four got a token, one was told "suspended".
    assert_eq!(
        m.get(
            "hoopai_access_token_wait_seconds_count",
            &[("outcome", "ready")]
        ),
        4.0
    );
    assert_eq!(
        m.get(
            "hoopai_access_token_wait_seconds_count",
            &[("outcome", "error")]
        ),
        1.0
    );
    assert!(
        m.get(
            "hoopai_access_token_wait_seconds_sum",
            &[("outcome", "ready")]
        ) >= 4.0 * 0.2
    );
    for (verdict, n) in [
        ("accepted", 1.0),
        ("replay", 1.0),
        ("bad_signature", 1.0),
        ("unsigned", 1.0),
        ("too_large", 1.0),
    ] {
        assert_eq!(
            m.get("hoopai_webhooks_total", &[("verdict", verdict)]),
            n,
            "{verdict}"
        );
    }
    assert_eq!(m.total("hoopai_webhooks_total"), 5.0);
    let route = |outcome| [("route", "callback"), ("outcome", outcome)];
    assert_eq!(m.get("hoopai_route_requests_total", &route("refused")), 1.0);
    assert_eq!(
        m.get("hoopai_route_requests_total", &route("throttled")),
        2.0
    );
    // Gauges: loc-1 active, loc-3 suspended, loc-2 gone; nothing out.
    assert_eq!(m.get("hoopai_grants", &[("status", "active")]), 1.0);
    assert_eq!(m.get("hoopai_grants", &[("status", "suspended")]), 1.0);
    assert_eq!(
        m.get("hoopai_grants", &[("status", "reauthorization_needed")]),
        0.0
    );
    assert_eq!(m.get("hoopai_requests_in_flight", &[]), 0.0);
    assert_eq!(m.get("hoopai_records_unwritten", &[]), 0.0);
    assert_eq!(m.get("hoopai_records_write_failing", &[]), 0.0);
    assert_eq!(m.get("hoopai_sends_waiting_for_budget", &[]), 0.0);
    assert_eq!(m.get("hoopai_sends_deferred_total", &[]), 0.0);
    assert_eq!(m.get("hoopai_service_running", &[]), 1.0);
    assert_eq!(m.get("hoopai_request_budget_max", &[]), 100.0);
    assert_eq!(m.get("hoopai_request_budget_interval_seconds", &[]), 10.0);
    // Three code exchanges and six refresh requests, all within one window
    // of the budget (unless this machine was very slow).
    let spent = m.get("hoopai_request_budget_spent", &[]);
    if within_one_window {
        assert_eq!(spent, 9.0);
    } else {
        assert!((1.0..=9.0).contains(&spent), "{spent}");
    }
    let remaining = m.get("hoopai_rate_limit_remaining", &[]);
    assert!(remaining > 0.0 && remaining < 100.0, "{remaining}");

    // A 429 spends the whole budget: the retry after its Retry-After (1 s)
    // waits for the budget, and is counted as deferred.
    app.fake.fake().fail_next(
        Fault::RateLimited {
            retry_after_secs: Some(1),
        },
        1,
    );
    let live = app.stored("loc-1").await.unwrap();
    let live = live.refresh_token().unwrap().secret().to_owned();
    app.service
        .add("loc-1", expired("loc-1", &live))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(8);
    let m = loop {
        let m = Scrape::parse(&handle.render());
        if m.get("hoopai_sends_waiting_for_budget", &[]) == 1.0 {
            break m;
        }
        assert!(Instant::now() < deadline, "no send waited for the budget");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        m.get("hoopai_requests_total", &[("answer", "rate_limited")]),
        1.0
    );
    assert_eq!(
        m.get("hoopai_refresh_failures_total", &[("kind", "rate_limited")]),
        1.0
    );
    assert_eq!(m.get("hoopai_sends_deferred_total", &[]), 1.0);
    assert_eq!(m.get("hoopai_request_budget_spent", &[]), 100.0);

    let text = handle.render();
    app.service.shutdown().await;
    let m = Scrape::parse(&handle.render());
    assert_eq!(m.get("hoopai_service_running", &[]), 0.0);

    // No label value names a grant, a location or a company, and no token
    // (nor the client secret) is anywhere in the text.
    for sample in m.samples() {
        for value in sample.labels.values() {
            assert!(
                !value.contains("loc-") && !value.contains("company-"),
                "{sample:?}"
            );
        }
    }
    let mut secrets: Vec<String> = tokens.iter().map(|t| t.secret().to_owned()).collect();
    secrets.push(live);
    secrets.push(CLIENT_SECRET.to_owned());
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a secret in the metrics");
    }
    assert!(!text.contains("loc-1") && !text.contains("company-1"));
}
