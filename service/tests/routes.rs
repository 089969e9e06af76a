//! The OAuth routes in an axum app over loopback: install → consent at the
//! fake → callback → the grant stored and served. Forged and replayed
//! callbacks are refused.

mod common;

use std::time::Duration;

use common::app::App;
use common::fake_http::FakeHttp;
use hoopai_oauth::{EngineSettings, Scope, UserType};
use hoopai_oauth_service::{OAuthRouter, ServiceSettings};

async fn app() -> App {
    let fake = FakeHttp::start().await;
    let consent = fake.url("/v2/oauth/chooselocation");
    let settings =
        ServiceSettings::new(EngineSettings::default().request_timeout(Duration::from_secs(5)));
    App::start(
        fake,
        settings,
        |config| config.consent_url(consent),
        |_, _, service| {
            // The user's own app, with the OAuth routes nested in it.
            axum::Router::new()
                .route("/", axum::routing::get(|| async { "my app" }))
                .nest(
                    "/oauth",
                    OAuthRouter::new(service, [Scope::CONTACTS_READONLY])
                        .user_type(UserType::Location)
                        .into_router(),
                )
        },
    )
    .await
}

/// A browser: it keeps cookies, and follows no redirect by itself.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
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
    let record = app.stored("loc-1").await.unwrap();
    assert!(
        app.fake
            .fake()
            .is_live_refresh_token(record.refresh_token().unwrap().secret())
    );
    // 4. The same callback again (a replay) is refused: the success cleared
    //    the browser's state cookie.
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
