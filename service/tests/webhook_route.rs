//! The webhook route over a real loopback socket: deliveries signed by the
//! fake's key are verified over their raw bytes; forged, re-serialized,
//! stale, replayed and other-app deliveries are refused with their status;
//! an UNINSTALL removes the grant from the service and the store.

mod common;

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use common::app::App;
use common::fake_http::{CLIENT_ID, CLIENT_SECRET, FakeHttp};
use hoopai_oauth::fake::{FakeServer, FakeWebhook, Install};
use hoopai_oauth::{
    EngineSettings, GrantId, SeenWebhooks, UserType, WebhookPayload, WebhookVerifier,
};
use hoopai_oauth_service::{OAuthRouter, ServiceEvent, ServiceSettings};

async fn app(path: Option<&str>) -> App {
    let settings = ServiceSettings::new(EngineSettings::default());
    App::start(
        FakeHttp::start().await,
        settings,
        |config| config,
        |fake, config, service| {
            let verifier = WebhookVerifier::new(config).add_key(fake.fake().webhook_key());
            let mut routes = OAuthRouter::new(service, []).webhook_verifier(verifier);
            if let Some(path) = path {
                // A store of the app's own, through the `WebhookIdStore` contract.
                routes = routes
                    .webhook_path(path)
                    .webhook_ids(Mutex::new(SeenWebhooks::new(16)));
            }
            axum::Router::new().nest("/oauth", routes.into_router())
        },
    )
    .await
}

async fn next_webhook(
    events: &mut tokio::sync::broadcast::Receiver<ServiceEvent>,
) -> hoopai_oauth_service::WebhookReceived {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .unwrap();
        if let ServiceEvent::Webhook(received) = event {
            return *received;
        }
    }
}

#[tokio::test]
async fn a_valid_install_is_reported_and_an_uninstall_removes_the_grant() {
    let app = app(None).await;
    app.install("loc-1").await;
    app.install("loc-2").await;
    let mut events = app.service.events();

    let install = app.fake.fake().webhook(
        &FakeWebhook::install_location("company-1", "loc-3"),
        SystemTime::now(),
    );
    assert_eq!(app.deliver("/webhook", &install).await.0, 200);
    let received = next_webhook(&mut events).await;
    assert!(matches!(received.event.payload, WebhookPayload::Install(_)));
    assert!(received.removed.is_empty());

    let uninstall = app
        .fake
        .fake()
        .uninstall(&FakeWebhook::uninstall_location("loc-1"), SystemTime::now());
    let (status, body) = app.deliver("/webhook", &uninstall).await;
    assert_eq!(status, 200, "{body}");
    let received = next_webhook(&mut events).await;
    assert_eq!(received.removed, vec![GrantId::new("loc-1")]);
    assert!(app.service.access_token("loc-1").await.is_err());
    assert!(app.stored("loc-1").await.is_none(), "the record is deleted");
    assert!(app.service.access_token("loc-2").await.is_ok());
    assert!(app.stored("loc-2").await.is_some());
    app.service.shutdown().await;
}

#[tokio::test]
async fn forged_and_reserialized_deliveries_are_refused_with_401() {
    let app = app(None).await;
    app.install("loc-1").await;
    let event = FakeWebhook::uninstall_location("loc-1");
    // Signed with a key the app does not trust.
    let mut forger = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
    forger.set_webhook_signing_seed([7; 32]);
    let forged = forger.webhook(&event, SystemTime::now());
    let (status, body) = app.deliver("/webhook", &forged).await;
    assert_eq!(status, 401, "{body}");
    // Unsigned.
    let mut unsigned = app.fake.fake().webhook(&event, SystemTime::now());
    unsigned.headers_mut().remove("x-ghl-signature");
    assert_eq!(app.deliver("/webhook", &unsigned).await.0, 401);
    // Signed by the fake, then parsed and serialized again (pretty-printed):
    // the same JSON value, not the same bytes.
    let signed = app.fake.fake().webhook(&event, SystemTime::now());
    let value: serde_json::Value = serde_json::from_slice(signed.body()).unwrap();
    let mut reserialized = signed.clone();
    *reserialized.body_mut() = serde_json::to_vec_pretty(&value).unwrap();
    assert_ne!(reserialized.body(), signed.body());
    let (status, body) = app.deliver("/webhook", &reserialized).await;
    assert_eq!(status, 401, "{body}");
    // Garbage in the header.
    let mut garbage = signed.clone();
    garbage
        .headers_mut()
        .insert("x-ghl-signature", "not base64!".parse().unwrap());
    assert_eq!(app.deliver("/webhook", &garbage).await.0, 401);
    // None of them acted: the grant is still held and stored.
    assert!(app.service.access_token("loc-1").await.is_ok());
    assert!(app.stored("loc-1").await.is_some());
    // The untouched delivery is accepted.
    assert_eq!(app.deliver("/webhook", &signed).await.0, 200);
    assert!(app.stored("loc-1").await.is_none());
    app.service.shutdown().await;
}

#[tokio::test]
async fn stale_other_app_and_malformed_deliveries_are_refused() {
    let app = app(None).await;
    app.install("loc-1").await;
    let event = FakeWebhook::uninstall_location("loc-1");
    let stale = app
        .fake
        .fake()
        .webhook(&event, SystemTime::now() - Duration::from_secs(10 * 60));
    let (status, body) = app.deliver("/webhook", &stale).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("stale") || body.contains("window"), "{body}");
    // Signed with the trusted key, for another app.
    let mut other = FakeServer::new("0123456789abcdef01234567-other", "secret");
    let other_app = other.webhook(&event, SystemTime::now());
    assert_eq!(app.deliver("/webhook", &other_app).await.0, 403);
    // Signed, but not JSON.
    let malformed = app.fake.fake().signed_webhook(b"{not json".to_vec());
    assert_eq!(app.deliver("/webhook", &malformed).await.0, 400);
    // Too large for the route: refused before it is read in full.
    let huge = app.fake.fake().signed_webhook(vec![b' '; 2 * 1024 * 1024]);
    assert_eq!(app.deliver("/webhook", &huge).await.0, 413);
    assert!(app.service.access_token("loc-1").await.is_ok());
    assert!(app.stored("loc-1").await.is_some());
    app.service.shutdown().await;
}

/// A replay is answered 200 and not acted on: an UNINSTALL replayed after
/// the location was installed again leaves the new grant alone.
#[tokio::test]
async fn a_replayed_delivery_is_acknowledged_and_not_acted_on() {
    for path in [None, Some("/hooks/highlevel")] {
        let app = app(path).await;
        let route = path.unwrap_or("/webhook");
        app.install("loc-1").await;
        let uninstall = app
            .fake
            .fake()
            .webhook(&FakeWebhook::uninstall_location("loc-1"), SystemTime::now());
        assert_eq!(app.deliver(route, &uninstall).await.0, 200);
        assert!(app.stored("loc-1").await.is_none());
        app.install("loc-1").await;
        let (status, body) = app.deliver(route, &uninstall).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("duplicate"), "{body}");
        assert!(app.service.access_token("loc-1").await.is_ok());
        assert!(
            app.stored("loc-1").await.is_some(),
            "the new install survives the replay"
        );
        app.service.shutdown().await;
    }
}

/// An agency UNINSTALL removes the Company grant; Location grants of the
/// same agency, installed on their own, stay.
#[tokio::test]
async fn an_agency_uninstall_removes_its_company_grant() {
    let app = app(None).await;
    app.install("loc-1").await;
    let code = app
        .fake
        .fake()
        .approve(&Install::company("company-1", &["loc-1"]));
    let company = app
        .service
        .exchange_code(code, Some(UserType::Company))
        .await
        .unwrap();
    assert_eq!(company.as_str(), "company-1");
    let uninstall = app.fake.fake().webhook(
        &FakeWebhook::uninstall_company("company-1"),
        SystemTime::now(),
    );
    assert_eq!(app.deliver("/webhook", &uninstall).await.0, 200);
    assert!(app.stored("company-1").await.is_none());
    assert!(app.stored("loc-1").await.is_some());
    app.service.shutdown().await;
}

/// Seen ids in memory, each recorded only after a pause: long enough for
/// the sender to go away between the id recorded and the delivery acted on.
struct SlowIds(Mutex<SeenWebhooks>);

impl hoopai_oauth_service::routes::WebhookIds for SlowIds {
    fn record<'a>(
        &'a self,
        webhook_id: &'a str,
        timestamp: SystemTime,
        now: SystemTime,
        window: Duration,
    ) -> hoopai_oauth_service::routes::RecordFuture<'a> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.0.record(webhook_id, timestamp, now, window).await
        })
    }
}

/// A sender that closes the connection without reading the answer (a
/// load balancer's timeout, HighLevel giving up) does not cut the
/// delivery: it is acted on, and its retry is answered as a duplicate.
#[tokio::test]
async fn a_delivery_whose_sender_goes_away_is_still_acted_on() {
    use tokio::io::AsyncWriteExt;
    let settings = ServiceSettings::new(EngineSettings::default());
    let app = App::start(
        FakeHttp::start().await,
        settings,
        |config| config,
        |fake, config, service| {
            let verifier = WebhookVerifier::new(config).add_key(fake.fake().webhook_key());
            let routes = OAuthRouter::new(service, [])
                .webhook_verifier(verifier)
                .webhook_ids(SlowIds(Mutex::new(SeenWebhooks::new(16))));
            axum::Router::new().nest("/oauth", routes.into_router())
        },
    )
    .await;
    app.install("loc-1").await;
    let mut events = app.service.events();
    let uninstall = app
        .fake
        .fake()
        .webhook(&FakeWebhook::uninstall_location("loc-1"), SystemTime::now());
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut head = format!(
        "POST /oauth/webhook HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\n",
        uninstall.body().len()
    );
    for (name, value) in uninstall.headers() {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(uninstall.body()).await.unwrap();
    // Gone before the id is even recorded.
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(stream);
    let received = next_webhook(&mut events).await;
    assert_eq!(received.removed, vec![GrantId::new("loc-1")]);
    assert!(app.stored("loc-1").await.is_none());
    let (status, body) = app.deliver("/webhook", &uninstall).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("duplicate"), "{body}");
    app.service.shutdown().await;
}
