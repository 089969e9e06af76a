//! The webhook route: `POST /webhook` (path configurable) verifies each
//! delivery with [`WebhookVerifier`] over the raw body bytes, refuses
//! replays through a [`WebhookIds`] store, then acts on the event.
//!
//! | Delivery | Answer | What the service does |
//! |---|---|---|
//! | valid INSTALL | `200` | [`ServiceEvent::Webhook`]; the tokens come through the consent callback (see below for bulk installs) |
//! | valid UNINSTALL | `200` | removes the grants concerned from the service and the store, then [`ServiceEvent::Webhook`] with them |
//! | valid, another type | `200` | [`ServiceEvent::Webhook`] |
//! | no `x-ghl-signature`, only the legacy `x-wh-signature`, bad base64, wrong length, wrong key, body changed after signing | `401` | nothing |
//! | signed, but for another app (`appId`) | `403` | nothing |
//! | not JSON, no `type`, over [`MAX_WEBHOOK_BYTES`] (`413`), a timestamp outside the window, no `timestamp`/`webhookId` | `400` | nothing |
//! | a `webhookId` already accepted (a replay, or HighLevel retrying a delivery whose answer it lost) | `200` | nothing: the first delivery was acted on |
//! | accepted, but a record could not be deleted (the store is down) | `500` | the grants are forgotten in memory, the record may stay stored; no event |
//!
//! **Replays are answered `200`.** A repeated `webhookId` is refused by the
//! core ([`ErrorKind::WebhookReplayed`]) and nothing is done, but the answer
//! is a success: the first delivery with that id was accepted and acted on,
//! and the common cause of a repeat is the sender retrying after losing
//! that answer. A `409` would only make it retry again. The body says
//! `duplicate`, and the refusal is logged.
//!
//! **Bulk installs.** An agency-wide install gives the app one Company token
//! (through the consent callback with `user_type=Company`) and a bulk INSTALL
//! listing the locations. Minting and keeping fresh a Location token for
//! each is the engine's job as Location grants land there; until then the
//! INSTALL reaches the app as [`ServiceEvent::Webhook`], where it can mint
//! them itself (`hoopai_oauth::LocationTokenRequest`) and
//! [`TokenService::add`] each. The place to call into the engine is marked
//! in the route's INSTALL arm (a comment in its source).
//!
//! The error bodies carry the core's sanitized message: no signature, no key.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State as Shared;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hoopai_oauth::{
    ErrorKind, GrantId, MAX_WEBHOOK_BYTES, Recorded, SeenWebhooks, UninstallTarget, WebhookEvent,
    WebhookIdStore, WebhookPayload, WebhookVerifier,
};

use crate::service::{ServiceError, ServiceEvent, TokenService, WebhookReceived};
use crate::store::StoreError;

/// The future a [`WebhookIds`] returns.
pub type RecordFuture<'a> = Pin<Box<dyn Future<Output = Result<Recorded, StoreError>> + Send + 'a>>;

/// Where the webhook route records the `webhookId`s it accepted, to refuse
/// replays: the contract of [`WebhookIdStore`], async, for a store of the
/// app's own (a table shared by every process behind the webhook URL).
///
/// The store must record atomically (insert if absent, and say whether it
/// was there, in one step: `INSERT … ON CONFLICT DO NOTHING` and the row
/// count), keep each id at least until `timestamp + window` (plus the clock
/// skew between processes), and answer [`Recorded::BeyondMemory`] for a
/// delivery older than what it still remembers. The route records before it
/// acts.
///
/// Any `Mutex<T>` of a [`WebhookIdStore`] is one (in memory, one process);
/// the route's default is a `Mutex<`[`SeenWebhooks`]`>` of
/// [`DEFAULT_SEEN_CAPACITY`](hoopai_oauth::DEFAULT_SEEN_CAPACITY) ids.
pub trait WebhookIds: Send + Sync + 'static {
    /// Records `webhook_id`, sent at `timestamp`, when it is `now` and
    /// deliveries older than `window` are refused anyway.
    ///
    /// # Errors
    /// [`StoreError`]: the delivery is then answered `500` and not acted on
    /// (the sender retries it).
    fn record<'a>(
        &'a self,
        webhook_id: &'a str,
        timestamp: SystemTime,
        now: SystemTime,
        window: Duration,
    ) -> RecordFuture<'a>;
}

impl<T: WebhookIdStore + Send + 'static> WebhookIds for Mutex<T> {
    fn record<'a>(
        &'a self,
        webhook_id: &'a str,
        timestamp: SystemTime,
        now: SystemTime,
        window: Duration,
    ) -> RecordFuture<'a> {
        let recorded = self
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(webhook_id, timestamp, now, window);
        Box::pin(std::future::ready(Ok(recorded)))
    }
}

/// The webhook route's settings, kept by [`OAuthRouter`](super::OAuthRouter).
#[derive(Clone)]
pub(crate) struct WebhookRoute {
    pub(crate) path: String,
    pub(crate) verifier: WebhookVerifier,
    pub(crate) ids: Arc<dyn WebhookIds>,
}

impl WebhookRoute {
    pub(crate) fn new(verifier: WebhookVerifier) -> Self {
        WebhookRoute {
            path: "/webhook".to_owned(),
            verifier,
            ids: Arc::new(Mutex::new(SeenWebhooks::default())),
        }
    }
}

impl std::fmt::Debug for WebhookRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRoute")
            .field("path", &self.path)
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

pub(crate) struct WebhookState {
    pub(crate) route: WebhookRoute,
    pub(crate) service: TokenService,
}

/// The status a refusal of the core is answered with.
fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::WebhookUnsigned
        | ErrorKind::WebhookLegacySignature
        | ErrorKind::WebhookMalformedSignature
        | ErrorKind::WebhookBadSignature => StatusCode::UNAUTHORIZED,
        ErrorKind::WebhookOtherApp => StatusCode::FORBIDDEN,
        ErrorKind::WebhookReplayed => StatusCode::OK,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn refuse(error: &hoopai_oauth::Error) -> Response {
    let status = status_of(error.kind());
    tracing::warn!(status = status.as_u16(), kind = ?error.kind(), %error, "webhook refused");
    let body = match error.kind() {
        ErrorKind::WebhookReplayed => format!("duplicate: {error}\n"),
        _ => format!("{error}\n"),
    };
    (status, body).into_response()
}

pub(crate) async fn webhook(
    Shared(state): Shared<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = SystemTime::now();
    let verifier = &state.route.verifier;
    // The raw bytes as received: never parsed and serialized again first.
    let event = match verifier.verify_unrecorded(&headers, &body, now) {
        Ok(event) => event,
        Err(e) => return refuse(&e),
    };
    let recorded = match event.replay_key() {
        Some((id, timestamp)) => {
            match state
                .route
                .ids
                .record(id, timestamp, now, verifier.replay_window())
                .await
            {
                Ok(recorded) => recorded,
                Err(e) => {
                    tracing::error!(error = %e, "the seen-webhook store failed");
                    return (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "seen-webhook store failed\n",
                    )
                        .into_response();
                }
            }
        }
        None => Recorded::New,
    };
    let event = match verifier.accept(event, recorded) {
        Ok(event) => event,
        Err(e) => return refuse(&e),
    };
    act(&state.service, event).await
}

/// Acts on an accepted delivery.
async fn act(service: &TokenService, event: WebhookEvent) -> Response {
    let mut removed = Vec::new();
    let mut failed: Option<ServiceError> = None;
    match &event.payload {
        WebhookPayload::Uninstall(uninstall) => {
            let concerned = match concerned(service, &uninstall.target).await {
                Ok(grants) => grants,
                Err(e) => {
                    return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response();
                }
            };
            for grant in concerned {
                match service.remove(grant.as_str()).await {
                    Ok(()) => removed.push(grant),
                    // Removed meanwhile (e.g. by another delivery).
                    Err(ServiceError::UnknownGrant(_)) => {}
                    Err(e) => {
                        // Forgotten in memory; the record may still be stored.
                        tracing::error!(grant = %grant, error = %e, "uninstall: the record could not be deleted");
                        failed = Some(e);
                    }
                }
            }
            tracing::info!(removed = removed.len(), "uninstall webhook");
        }
        WebhookPayload::Install(install) => {
            // Location grants minted from a Company grant (bulk installs) are
            // added to the engine here once it manages them; for now the
            // INSTALL is handed to the app as `ServiceEvent::Webhook`.
            tracing::info!(target = ?install.target, "install webhook");
        }
        _ => tracing::info!(event_type = %event.event_type, "webhook"),
    }
    if let Some(e) = failed {
        return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response();
    }
    let count = removed.len();
    service.publish(ServiceEvent::Webhook(Box::new(WebhookReceived {
        event,
        removed,
        added: Vec::new(),
        needs_code_exchange: Vec::new(),
    })));
    (
        StatusCode::OK,
        format!("accepted; {count} grant(s) removed\n"),
    )
        .into_response()
}

/// The grants an uninstall concerns: the location's grant; for an agency,
/// its Company grant (a grant named for the Company, or holding a token of
/// that Company and of no Location). Location grants installed on their own
/// stay: each has its own install, and its own UNINSTALL.
async fn concerned(
    service: &TokenService,
    target: &UninstallTarget,
) -> Result<Vec<GrantId>, ServiceError> {
    let held = service.list().await?;
    Ok(match target {
        UninstallTarget::Location { location_id } => held
            .into_iter()
            .filter(|g| {
                g.grant.as_str() == location_id || g.location_id.as_deref() == Some(location_id)
            })
            .map(|g| g.grant)
            .collect(),
        UninstallTarget::Company { company_id } => held
            .into_iter()
            .filter(|g| {
                g.grant.as_str() == company_id
                    || (g.company_id.as_deref() == Some(company_id) && g.location_id.is_none())
            })
            .map(|g| g.grant)
            .collect(),
        _ => Vec::new(),
    })
}

/// The body limit of the route: the core's [`MAX_WEBHOOK_BYTES`].
pub(crate) const BODY_LIMIT: usize = MAX_WEBHOOK_BYTES;
