//! Browsers against the app's OAuth routes over loopback: each with a cookie
//! jar of its own, as a browser has, connecting from any address of the
//! loopback range; and the app they talk to.

use std::net::{IpAddr, Ipv4Addr};

use hoopai_oauth::{Scope, UserType};
use hoopai_oauth_service::{OAuthRouter, ServiceSettings};

use super::app::App;
use super::fake_http::FakeHttp;

/// The app with its OAuth routes (Location installs) under `/oauth`, as
/// `routes` sets them, its consent URL at the fake.
pub async fn oauth_app(
    settings: ServiceSettings,
    routes: impl FnOnce(OAuthRouter) -> OAuthRouter,
) -> App {
    let fake = FakeHttp::start().await;
    let consent = fake.url("/v2/oauth/chooselocation");
    App::start(
        fake,
        settings,
        |config| config.consent_url(consent),
        |_, _, service| {
            let oauth =
                OAuthRouter::new(service, [Scope::CONTACTS_READONLY]).user_type(UserType::Location);
            axum::Router::new().nest("/oauth", routes(oauth).into_router())
        },
    )
    .await
}

/// A browser: a cookie jar of its own, no redirect followed by itself,
/// connecting from `from` (any address of the loopback range).
pub fn browser_from(from: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .local_address(from)
        .build()
        .unwrap()
}

/// A browser on `127.0.0.1`.
pub fn browser() -> reqwest::Client {
    browser_from(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// `GET /oauth/install`: the consent URL and its state, or the status.
pub async fn start_install(http: &reqwest::Client, app: &App) -> Result<(String, String), u16> {
    let response = http
        .get(format!("{}/oauth/install", app.base))
        .send()
        .await
        .unwrap();
    if response.status() != 302 {
        return Err(response.status().as_u16());
    }
    let consent = response.headers()["location"].to_str().unwrap().to_owned();
    let query = consent.split_once('?').unwrap().1;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
    let state = pairs.into_iter().find(|(k, _)| k == "state").unwrap().1;
    Ok((consent, state))
}

/// `GET /oauth/callback?{query}` at the app.
pub async fn callback(
    http: &reqwest::Client,
    app: &App,
    query: &[(&str, &str)],
) -> reqwest::Response {
    callback_at(http, &app.base, query).await.unwrap()
}

/// `GET /oauth/callback?{query}` at the app served at `base`
/// (`http://127.0.0.1:PORT`); the transport error, if any.
pub async fn callback_at(
    http: &reqwest::Client,
    base: &str,
    query: &[(&str, &str)],
) -> reqwest::Result<reqwest::Response> {
    http.get(format!("{base}/oauth/callback"))
        .query(query)
        .send()
        .await
}
