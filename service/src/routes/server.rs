//! Serving the app with time and connection limits: a slow client cannot
//! hold connections open.
//!
//! `axum::serve` sets no timeout of its own: a client that sends its headers
//! one byte at a time, or a body slower still, keeps its connection (and
//! the task serving it) for as long as it likes. [`serve`] runs the same
//! axum app on hyper's HTTP/1 server ([`hyper_util`]) with:
//!
//! | Limit | Default | What happens |
//! |---|---|---|
//! | [`header_read_timeout`](ServeLimits::header_read_timeout) | 10 s | the connection is closed if a request's head (request line and headers) is not all read this long after the server began waiting for it. The wait begins when the connection opens and again after each answer, so this is also the idle timeout of a kept-alive connection (hyper's `header_read_timeout`) |
//! | [`body_timeout`](ServeLimits::body_timeout) | 10 s | reading a body fails if no part of it arrives for this long (tower-http's `RequestBodyTimeoutLayer`); the route answers `400` or `408` |
//! | [`request_timeout`](ServeLimits::request_timeout) | 30 s | a request not answered this long after its head was read is answered `408 Request Timeout` (tower-http's `TimeoutLayer`), whatever its body does; so a body trickled in under the body timeout still ends |
//! | [`max_connections`](ServeLimits::max_connections) | 1,024 | no more connections are accepted until one closes (the others wait in the listen backlog) |
//!
//! Each request carries its peer address
//! (`axum::extract::ConnectInfo<SocketAddr>`), which the
//! [`OAuthRouter`](super::OAuthRouter)'s throttles key on.
//!
//! The code exchange of `/callback` and the action of `/webhook` run in
//! tasks of their own, so a request timeout (or a client that goes away)
//! ends the wait, never the work: a code the server may have spent is
//! always exchanged to the end and its tokens stored.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::{Layer, ServiceExt};
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

/// The limits of [`serve`]; see the [module docs](self) for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeLimits {
    /// How long the server waits for a request's head, from when it begins
    /// waiting (a new connection, or the end of the previous answer).
    pub header_read_timeout: Duration,
    /// How long a request body may go without sending anything.
    pub body_timeout: Duration,
    /// How long a request may take, body included, before `408`.
    pub request_timeout: Duration,
    /// How many connections are served at once.
    pub max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            header_read_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

impl ServeLimits {
    /// Sets [`header_read_timeout`](Self::header_read_timeout) (at least 1 ms).
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Sets [`body_timeout`](Self::body_timeout) (at least 1 ms).
    #[must_use]
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Sets [`request_timeout`](Self::request_timeout) (at least 1 ms).
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Sets [`max_connections`](Self::max_connections) (at least 1).
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }
}

/// Serves `app` on `listener` with `limits` until `shutdown` completes;
/// then stops accepting, lets the requests in progress finish (within
/// the header and request timeouts) and returns.
///
/// # Errors
/// None so far: a failed `accept` (e.g. out of file descriptors) is logged
/// and retried after 100 ms. The `io::Result` leaves room for start-up
/// errors.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let stack = TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.request_timeout)
        .layer(RequestBodyTimeoutLayer::new(limits.body_timeout).layer(app));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let stack = stack.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            let stack = stack.clone();
            async move {
                Ok::<_, Infallible>(stack.oneshot(request).await.unwrap_or_else(|e| match e {}))
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection closed with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let grace = limits.request_timeout + limits.header_read_timeout;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the grace period; closing them");
    }
    Ok(())
}
