//! The OAuth routes in an axum app over loopback: install → consent at the
//! fake → callback → the grant stored and served. Forged and replayed
//! callbacks are refused.

mod common;

use std::time::Duration;

use common::fake_http::{CLIENT_ID, CLIENT_SECRET, FakeHttp};
use hoopai_oauth::{Config, EngineSettings, GrantId, Scope, UserType};
use hoopai_oauth_service::{
    GrantStore, OAuthRouter, ReqwestClient, ServiceSettings, SqliteStore, TokenService,
};

struct App {
    fake: FakeHttp,
    base: String,
    service: TokenService,
    dir: tempfile::TempDir,
    _task: tokio::task::JoinHandle<()>,
}

async fn app() -> App {
    let fake = FakeHttp::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = Config::builder(CLIENT_ID, CLIENT_SECRET)
        .base_url(fake.base_url())
        .consent_url(fake.url("/v2/oauth/chooselocation"))
        .redirect_uri(format!("{base}/oauth/callback"))
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("grants.sqlite3"))
        .await
        .unwrap();
    let settings =
        ServiceSettings::new(EngineSettings::default().request_timeout(Duration::from_secs(5)));
    let http = ReqwestClient::new(settings.engine()).unwrap();
    let service = TokenService::start(config, settings, store, http)
        .await
        .unwrap();
    // The user's own app, with the OAuth routes nested in it.
    let router = axum::Router::new()
        .route("/", axum::routing::get(|| async { "my app" }))
        .nest(
            "/oauth",
            OAuthRouter::new(service.clone(), [Scope::CONTACTS_READONLY])
                .user_type(UserType::Location)
                .into_router(),
        );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    App {
        fake,
        base,
        service,
        dir,
        _task: task,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn location(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 302, "{:?}", response.text().await);
    response.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn install_consent_callback_then_tokens() {
    let app = app().await;
    let http = client();
    assert_eq!(
        http.get(&app.base)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "my app"
    );
    // 1. Our app sends the browser to consent.
    let consent = location(
        http.get(format!("{}/oauth/install", app.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        consent.starts_with(&app.fake.url("/v2/oauth/chooselocation")),
        "{consent}"
    );
    assert!(consent.contains("state="));
    // 2. The fake approves at once and redirects back.
    let callback = location(http.get(&consent).send().await.unwrap()).await;
    assert!(
        callback.starts_with(&format!("{}/oauth/callback?", app.base)),
        "{callback}"
    );
    // 3. The callback exchanges the code and stores the grant.
    let response = http.get(&callback).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "installed: loc-1\n");
    assert!(app.service.access_token("loc-1").await.is_ok());
    let store = SqliteStore::open(app.dir.path().join("grants.sqlite3"))
        .await
        .unwrap();
    let record = store.load(&GrantId::new("loc-1")).await.unwrap().unwrap();
    assert!(
        app.fake
            .fake()
            .is_live_refresh_token(record.refresh_token().unwrap().secret())
    );
    // 4. The same callback again (a replay) is refused: its state was used.
    let replay = http.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), 400);
    app.service.shutdown().await;
}

#[tokio::test]
async fn forged_callbacks_are_refused() {
    let app = app().await;
    let http = client();
    let before = app
        .fake
        .shared
        .token_calls
        .load(std::sync::atomic::Ordering::SeqCst);
    for query in [
        "code=stolen-code-000000000000000000",
        "code=stolen-code-000000000000000000&state=AAAAAAAAAAAAAAAAAAAAAA",
        "error=access_denied&state=BBBBBBBBBBBBBBBBBBBBBB",
    ] {
        let response = http
            .get(format!("{}/oauth/callback?{query}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        let body = response.text().await.unwrap();
        assert!(!body.contains("stolen-code"), "{body}");
    }
    // A known state with a denied consent: 400, nothing exchanged.
    let consent = location(
        http.get(format!("{}/oauth/install", app.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let state = consent
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let denied = http
        .get(format!(
            "{}/oauth/callback?error=access_denied&state={state}",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 400);
    assert_eq!(
        app.fake
            .shared
            .token_calls
            .load(std::sync::atomic::Ordering::SeqCst),
        before,
        "no code was exchanged"
    );
    assert!(app.service.list().await.unwrap().is_empty());
    app.service.shutdown().await;
}
