//! The reqwest client against a real loopback server: the core's fake
//! behind axum, plus routes that misbehave.

mod common;

use std::time::{Duration, Instant};

use common::fake_http::FakeHttp;
use hoopai_oauth::fake::Install;
use hoopai_oauth::{
    EngineSettings, MAX_BODY_BYTES, TokenRequest, parse_token_response, token_request,
};
use hoopai_oauth_service::{HttpClient, ReqwestClient, TransportError};

fn get(url: &str) -> http::Request<Vec<u8>> {
    http::Request::get(url).body(Vec::new()).unwrap()
}

#[tokio::test]
async fn exchanges_a_code_with_the_fake() {
    let server = FakeHttp::start().await;
    let code = server
        .fake()
        .approve(&Install::location("company-1", "loc-1"));
    let client = ReqwestClient::new(&EngineSettings::default()).unwrap();
    let request = token_request(&server.config(), &TokenRequest::authorization_code(code)).unwrap();
    let response = client.send(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let token = parse_token_response(response).unwrap();
    assert_eq!(token.location_id.as_deref(), Some("loc-1"));
    let refresh = token.refresh_token.unwrap();
    assert!(server.fake().is_live_refresh_token(refresh.secret()));
}

#[tokio::test]
async fn an_error_status_is_an_answer() {
    let server = FakeHttp::start().await;
    let client = ReqwestClient::new(&EngineSettings::default()).unwrap();
    let request = token_request(
        &server.config(),
        &TokenRequest::refresh_token(hoopai_oauth::RefreshToken::new(
            "refresh-never-issued-000000000000000",
        )),
    )
    .unwrap();
    let response = client.send(request).await.unwrap();
    assert_eq!(response.status(), 400);
    let error = parse_token_response(response).unwrap_err();
    assert_eq!(error.kind(), hoopai_oauth::ErrorKind::InvalidGrant);
}

#[tokio::test]
async fn bodies_over_the_cap_are_refused() {
    let server = FakeHttp::start().await;
    let client = ReqwestClient::new(&EngineSettings::default()).unwrap();
    let error = client.send(get(&server.url("/huge"))).await.unwrap_err();
    assert_eq!(
        error,
        TransportError::BodyTooLarge {
            limit: MAX_BODY_BYTES
        }
    );
    // A larger cap reads it.
    let big = client.clone().body_limit(4 * 1024 * 1024);
    assert_eq!(
        big.send(get(&server.url("/huge")))
            .await
            .unwrap()
            .body()
            .len(),
        2 * 1024 * 1024
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = FakeHttp::start().await;
    let client = ReqwestClient::new(&EngineSettings::default()).unwrap();
    let response = client.send(get(&server.url("/redirect"))).await.unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], "/huge");
}

#[tokio::test]
async fn the_timeout_is_the_engines() {
    let server = FakeHttp::start().await;
    let settings = EngineSettings::default().request_timeout(Duration::from_secs(1));
    let client = ReqwestClient::new(&settings).unwrap();
    let started = Instant::now();
    let error = client.send(get(&server.url("/slow"))).await.unwrap_err();
    assert_eq!(error, TransportError::TimedOut);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    // Bind, note the port, close: nothing listens there now.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = ReqwestClient::new(&EngineSettings::default()).unwrap();
    let error = client
        .send(get(&format!("http://{addr}/oauth/token")))
        .await
        .unwrap_err();
    assert!(matches!(error, TransportError::Connect(_)), "{error:?}");
}
