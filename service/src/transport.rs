//! Sending requests: the [`HttpClient`] trait and its reqwest implementation.
//!
//! The core builds every request as an `http::Request<Vec<u8>>` and parses
//! every answer from an `http::Response<Vec<u8>>`; a client only moves bytes.
//! Whatever the client, it must:
//!
//! - read at most [`MAX_BODY_BYTES`] of a body (a token answer is a few KiB);
//! - not follow redirects (a token request redirected elsewhere would carry
//!   the client secret and a refresh token to another host);
//! - time out at or before [`EngineSettings::timeout`], so that no answer
//!   arrives after the engine gave up on it without being handed in.
//!
//! [`ReqwestClient`] (feature `reqwest`, default) does all three.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use hoopai_oauth::{EngineSettings, MAX_BODY_BYTES};

/// Why a request got no answer. Messages hold no request body (no secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No answer within the timeout.
    #[error("no answer within the timeout")]
    TimedOut,
    /// The connection could not be made (refused, DNS, TLS).
    #[error("could not connect: {0}")]
    Connect(String),
    /// The answer's body is larger than the limit; it was not read further.
    #[error("the answer's body is larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The request could not be built or sent, or the answer not read.
    #[error("{0}")]
    Other(String),
}

/// Sends one request and reads its answer. Implement it to use another HTTP
/// client.
///
/// The core builds every request as an `http::Request<Vec<u8>>` and parses
/// every answer from an `http::Response<Vec<u8>>`; a client only moves
/// bytes. Whatever the client, it must:
///
/// - read at most [`MAX_BODY_BYTES`] of a body (a token answer is a few KiB);
/// - not follow redirects (a token request redirected elsewhere would carry
///   the client secret and a refresh token to another host);
/// - time out at or before [`EngineSettings::timeout`], so that no answer
///   arrives after the engine gave up on it without being handed in.
///
/// [`ReqwestClient`](crate::ReqwestClient) (feature `reqwest`, default) does
/// all three.
pub trait HttpClient: Send + Sync + 'static {
    /// Sends `request` and returns the answer, whatever its status (a `4xx`
    /// or `5xx` is an answer, not an error).
    ///
    /// # Errors
    /// [`TransportError`] when there is no complete answer.
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> impl Future<Output = Result<http::Response<Vec<u8>>, TransportError>> + Send;
}

/// The boxed future of [`DynHttpClient`].
pub(crate) type SendFuture<'a> =
    Pin<Box<dyn Future<Output = Result<http::Response<Vec<u8>>, TransportError>> + Send + 'a>>;

/// [`HttpClient`] as a trait object.
pub(crate) trait DynHttpClient: Send + Sync + 'static {
    fn send_boxed(&self, request: http::Request<Vec<u8>>) -> SendFuture<'_>;
}

impl<H: HttpClient> DynHttpClient for H {
    fn send_boxed(&self, request: http::Request<Vec<u8>>) -> SendFuture<'_> {
        Box::pin(self.send(request))
    }
}

impl fmt::Debug for dyn DynHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HttpClient")
    }
}

#[cfg(feature = "reqwest")]
pub use self::reqwest_client::ReqwestClient;

#[cfg(feature = "reqwest")]
mod reqwest_client {
    use std::time::Duration;

    use super::{EngineSettings, HttpClient, MAX_BODY_BYTES, TransportError};

    /// The default [`HttpClient`]: reqwest with rustls (webpki roots), no
    /// redirects, a body cap of [`MAX_BODY_BYTES`], and the engine's request
    /// timeout.
    ///
    /// Cheap to clone (reqwest pools connections).
    #[derive(Debug, Clone)]
    pub struct ReqwestClient {
        client: reqwest::Client,
        body_limit: usize,
    }

    impl ReqwestClient {
        /// A client whose timeout is `settings`' request timeout
        /// ([`EngineSettings::timeout`]).
        ///
        /// # Errors
        /// [`TransportError::Other`] if the TLS backend cannot start.
        pub fn new(settings: &EngineSettings) -> Result<Self, TransportError> {
            Self::with_timeout(settings.timeout())
        }

        /// A client with this whole-request timeout (connect, send, read).
        /// Keep it at or below the engine's request timeout.
        ///
        /// # Errors
        /// [`TransportError::Other`] if the TLS backend cannot start.
        pub fn with_timeout(timeout: Duration) -> Result<Self, TransportError> {
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(10)))
                .use_rustls_tls()
                .https_only(false)
                .build()
                .map_err(|e| TransportError::Other(e.to_string()))?;
            Ok(ReqwestClient {
                client,
                body_limit: MAX_BODY_BYTES,
            })
        }

        /// Wraps a reqwest client you configured yourself (proxies, roots…).
        /// Turn its redirects off and keep its timeout at or below the
        /// engine's; the body cap is still applied here.
        #[must_use]
        pub fn from_client(client: reqwest::Client) -> Self {
            ReqwestClient {
                client,
                body_limit: MAX_BODY_BYTES,
            }
        }

        /// The body cap in bytes (default [`MAX_BODY_BYTES`]); e.g. larger
        /// for API calls that list many items.
        #[must_use]
        pub fn body_limit(mut self, limit: usize) -> Self {
            self.body_limit = limit;
            self
        }
    }

    fn classify(e: &reqwest::Error) -> TransportError {
        // reqwest's messages name the URL, never the body.
        if e.is_timeout() {
            TransportError::TimedOut
        } else if e.is_connect() {
            TransportError::Connect(e.to_string())
        } else {
            TransportError::Other(e.to_string())
        }
    }

    impl HttpClient for ReqwestClient {
        async fn send(
            &self,
            request: http::Request<Vec<u8>>,
        ) -> Result<http::Response<Vec<u8>>, TransportError> {
            let request = reqwest::Request::try_from(request)
                .map_err(|e| TransportError::Other(e.to_string()))?;
            let mut response = self
                .client
                .execute(request)
                .await
                .map_err(|e| classify(&e))?;
            let limit = self.body_limit;
            if response.content_length().is_some_and(|n| n > limit as u64) {
                return Err(TransportError::BodyTooLarge { limit });
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e))? {
                if body.len() + chunk.len() > limit {
                    return Err(TransportError::BodyTooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            let mut out = http::Response::new(body);
            *out.status_mut() = response.status();
            *out.version_mut() = response.version();
            *out.headers_mut() = std::mem::take(response.headers_mut());
            Ok(out)
        }
    }
}
