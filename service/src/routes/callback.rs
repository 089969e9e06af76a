//! `GET /install` and `GET /callback`.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State as Shared;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use hoopai_oauth::{ConsentRequest, ConsentState, ErrorKind, consent_url, parse_callback};

use super::Routes;
use super::binding::Refused;
use super::respond::{redirect, text};

/// Logs a refusal (with what the caller sent, sanitized and capped by the
/// core) and answers with a fixed text.
fn refuse(status: StatusCode, body: &'static str, why: &dyn std::fmt::Display) -> Response {
    tracing::warn!(status = status.as_u16(), %why, "oauth route refused");
    text(status, body)
}

pub(crate) async fn install(Shared(routes): Shared<Arc<Routes>>) -> Response {
    let Some(binding) = &routes.binding else {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the app cannot start an install: no key to sign its state\n",
            &"no state key",
        );
    };
    let mut random = [0u8; 16];
    if let Err(e) = getrandom::fill(&mut random) {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the app cannot start an install: no randomness\n",
            &e,
        );
    }
    let (state, cookie) = match binding.mint(&random, SystemTime::now()) {
        Ok(minted) => minted,
        Err(e) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the app cannot start an install\n",
                &e,
            );
        }
    };
    let request = ConsentRequest::new(routes.options.scopes.iter().cloned()).state(state);
    let url = consent_url(routes.options.service.config(), &request);
    match url {
        Ok(url) => {
            let mut response = redirect(&url);
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        Err(e) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the app cannot start an install: its consent URL is not valid\n",
            &e,
        ),
    }
}

pub(crate) async fn callback(
    Shared(routes): Shared<Arc<Routes>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = uri.query().unwrap_or("");
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let state = pairs
        .iter()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.as_str());
    let expected = match (state, &routes.binding) {
        (Some(s), Some(binding)) => {
            match binding.check(&headers, s, SystemTime::now()) {
                Ok(()) => {}
                Err(Refused::NoCookie) => {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        "this install was not started in this browser: start it again from the app\n",
                        &"a state without the state cookie",
                    );
                }
                Err(Refused::Mismatch) => {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        "this install was started elsewhere or has expired: start it again from the app\n",
                        &"a state the browser's cookie does not bind",
                    );
                }
            }
            match ConsentState::new(s) {
                Ok(state) => Some(state),
                Err(e) => return refuse(StatusCode::BAD_REQUEST, "malformed state\n", &e),
            }
        }
        (Some(_), None) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the app cannot check the state: no key\n",
                &"no state key",
            );
        }
        (None, _) if routes.options.allow_missing_state => None,
        (None, _) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "the callback carries no state: start the install from the app\n",
                &"no state",
            );
        }
    };
    let code = match parse_callback(&uri.to_string(), expected.as_ref()) {
        Ok(code) => code,
        Err(e) => {
            let body = match e.kind() {
                ErrorKind::ConsentDenied => "consent was not given: nothing was installed\n",
                ErrorKind::StateMismatch => "the state does not match: start the install again\n",
                _ => "malformed callback\n",
            };
            return refuse(StatusCode::BAD_REQUEST, body, &e);
        }
    };
    // In a task of its own: a client that goes away (or a request timeout)
    // must not cut an exchange whose code the server may already have spent.
    let service = routes.options.service.clone();
    let user_type = routes.options.user_type.clone();
    let exchange = tokio::spawn(async move { service.exchange_code(code, user_type).await });
    let grant = match exchange.await {
        Ok(Ok(grant)) => grant,
        Ok(Err(e)) => {
            return refuse(
                StatusCode::BAD_GATEWAY,
                "the code exchange failed: start the install again\n",
                &e,
            );
        }
        Err(e) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the code exchange failed\n",
                &e,
            );
        }
    };
    tracing::info!(grant = %grant, "installed");
    let mut response = match &routes.options.success_redirect {
        Some(url) => redirect(url),
        None => text(StatusCode::OK, format!("installed: {grant}\n")),
    };
    if state.is_some()
        && let Some(clear) = routes.binding.as_ref().and_then(|b| b.clear())
    {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    response
}
