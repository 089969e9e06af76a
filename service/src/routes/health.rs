//! `GET /healthz` (liveness) and `GET /readyz` (readiness), paths
//! configurable ([`OAuthRouter::healthz_path`](super::OAuthRouter::healthz_path),
//! [`OAuthRouter::readyz_path`](super::OAuthRouter::readyz_path)).
//!
//! | Route | `200` | `503` |
//! |---|---|---|
//! | `/healthz` | the service's task answers ([`TokenService::is_alive`]) | it stopped, is shutting down, or did not answer in time |
//! | `/readyz` | running, restored, and the store answered its probe ([`TokenService::readiness`]) | the check that failed is named: `engine` (shutting down, stopped, not answering) or `store` (failed or timed out) |
//!
//! Bodies are short fixed JSON, the same for every caller, e.g.
//! `{"ready":false,"failed":"store","engine":"running","restore":"done","store":"timed_out"}`;
//! what the store said is logged, never answered. Answers are kept for
//! [`HEALTH_CACHE`](crate::HEALTH_CACHE) and shared, so a flood of checks
//! makes at most one store call per second.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::service::TokenService;

/// A `application/json` answer that no cache keeps.
fn json(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(crate) async fn healthz(State(service): State<TokenService>) -> Response {
    if service.is_alive().await {
        json(StatusCode::OK, r#"{"alive":true}"#.to_owned() + "\n")
    } else {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"alive":false}"#.to_owned() + "\n",
        )
    }
}

pub(crate) async fn readyz(State(service): State<TokenService>) -> Response {
    let readiness = service.readiness().await;
    let engine = if readiness.running {
        "running"
    } else {
        "stopped"
    };
    let store = readiness.store.as_str();
    match readiness.failed_check() {
        None => json(
            StatusCode::OK,
            format!(
                "{{\"ready\":true,\"engine\":\"{engine}\",\"restore\":\"done\",\"store\":\"{store}\"}}\n"
            ),
        ),
        Some(failed) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{{\"ready\":false,\"failed\":\"{failed}\",\"engine\":\"{engine}\",\"restore\":\"done\",\"store\":\"{store}\"}}\n"
            ),
        ),
    }
}
