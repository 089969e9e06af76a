//! The routes' answers: fixed texts, never the caller's input.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A `text/plain` answer with `X-Content-Type-Options: nosniff` (so no
/// browser reads it as HTML) and `Cache-Control: no-store`.
pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut response = (status, body.into()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A `302` to `location`, with the same headers as [`text`].
pub(crate) fn redirect(location: &str) -> Response {
    let mut response = text(StatusCode::FOUND, "");
    match HeaderValue::from_str(location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
            response
        }
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the redirect could not be built\n",
        ),
    }
}
