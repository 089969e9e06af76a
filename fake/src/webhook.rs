//! Delivering a signed webhook over HTTP to the app, as HighLevel would: a
//! `POST` of the JSON body with `x-ghl-signature`. Plain `http://` only (the
//! app under test listens on loopback); each delivery is bounded in time and
//! in what is read back.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;

/// How long a delivery may take, connection and answer included.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of the app's answer is read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The longest webhook URL accepted.
const MAX_URL_BYTES: usize = 2048;

/// A URL the fake can deliver to: `http://host[:port]/path`.
pub fn check_url(url: &str) -> Result<Uri, String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!("a URL is at most {MAX_URL_BYTES} bytes"));
    }
    let uri: Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "{url:?}: the fake delivers over plain http:// only; point it at the app's loopback port"
            ));
        }
        _ => return Err(format!("{url:?} is not an http:// URL")),
    }
    if uri.authority().is_none() {
        return Err(format!("{url:?} has no host"));
    }
    Ok(uri)
}

/// What became of one delivery.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub url: String,
    /// Whether the app answered with a 2xx.
    pub delivered: bool,
    /// The app's status, if it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why there was no answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The body sent, as text (it holds no secret), and its signature.
    pub body: String,
    pub signature: String,
}

/// The client that delivers webhooks.
#[derive(Clone)]
pub struct Sender {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Sender {
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(DELIVERY_TIMEOUT));
        Sender {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// Sends `request` (signed by the fake) to `url`.
    pub async fn deliver(&self, request: Request<Vec<u8>>, url: Uri) -> Delivery {
        let (mut parts, body) = request.into_parts();
        parts.uri = url.clone();
        let text = String::from_utf8_lossy(&body).into_owned();
        let signature = parts
            .headers
            .get(hoopai_oauth::SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let request = Request::from_parts(parts, Full::new(Bytes::from(body)));
        let sent = tokio::time::timeout(DELIVERY_TIMEOUT, async {
            let response = self.client.request(request).await.map_err(|e| {
                let mut why = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    why.push_str(": ");
                    why.push_str(&s.to_string());
                    source = s.source();
                }
                why
            })?;
            let status = response.status().as_u16();
            // Read (a bounded part of) the answer, so the connection is reusable.
            let _ = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await;
            Ok::<u16, String>(status)
        })
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", DELIVERY_TIMEOUT.as_secs())));
        let (status, error) = match sent {
            Ok(status) => (Some(status), None),
            Err(why) => (None, Some(why)),
        };
        Delivery {
            url: url.to_string(),
            delivered: status.is_some_and(|s| (200..300).contains(&s)),
            status,
            error,
            body: text,
            signature,
        }
    }
}
