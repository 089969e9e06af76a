//! The webhook route: `POST /webhook` (path configurable) verifies each
//! delivery with [`WebhookVerifier`] over the raw body bytes, refuses
//! replays through a [`WebhookIds`] store, then acts on the event.
//!
//! | Delivery | Answer | What the service does |
//! |---|---|---|
//! | valid INSTALL | `200` | [`TokenService::handle_webhook`]: a bulk install (`locationIds`) adds a Location grant per location, minted from the Company grant under the request budget; a Location install whose Company grant is held is minted the same way; otherwise the tokens come through the consent callback. Then [`ServiceEvent::Webhook`] with what was added |
//! | valid UNINSTALL | `200` | the engine removes the location's grant, or the agency's Company grant and every Location grant minted from it, from the service and the store; then [`ServiceEvent::Webhook`] with them |
//! | valid, another type | `200` | [`ServiceEvent::Webhook`] |
//! | no `x-ghl-signature`, only the legacy `x-wh-signature`, bad base64, wrong length, wrong key, body changed after signing | `401` | nothing |
//! | signed, but for another app (`appId`) | `403` | nothing |
//! | not JSON, no `type`, over [`MAX_WEBHOOK_BYTES`] (`413`), a timestamp outside the window, no `timestamp`/`webhookId`, ids the engine cannot name grants by | `400` | nothing |
//! | a `webhookId` already accepted, by this process or another on the same store (a replay, or HighLevel retrying a delivery whose answer it lost) | `200` | nothing: the first delivery was acted on |
//! | the seen-id store failed or timed out | `500` | nothing (the sender retries) |
//! | accepted, but a record could not be deleted (the store is down) | `500` | the grants are forgotten in memory, the record may stay stored; no event |
//! | accepted, but the service is stopping | `503` | nothing |
//!
//! **Replays are answered `200`.** A repeated `webhookId` is refused by the
//! core ([`ErrorKind::WebhookReplayed`]) and nothing is done, but the answer
//! is a success: the first delivery with that id was accepted and acted on,
//! and the common cause of a repeat is the sender retrying after losing
//! that answer. A `409` would only make it retry again. The body says
//! `duplicate`, and the refusal is logged.
//!
//! **Bulk installs.** An agency-wide install gives the app one Company token
//! (through the consent callback with `user_type=Company`, see
//! [`OAuthRouter::user_type`](super::OAuthRouter::user_type)) and a bulk
//! INSTALL listing the locations. Either may come first: the Location
//! grants of a bulk INSTALL wait for the Company grant (reported in
//! [`WebhookReceived::needs_code_exchange`](crate::WebhookReceived) until it
//! is held). Each location is then minted through `/oauth/locationToken`
//! at most as fast as the engine's request budget allows (HighLevel's 100
//! requests per 10 s unless its headers say otherwise), and kept fresh;
//! [`TokenService::access_token`] of a location waits for its first mint.
//! Grants are named by convention: a Company grant by its Company id, a
//! Location grant by its Location id (as [`TokenService::exchange_code`]
//! names them). To catch up after missed deliveries, see
//! [`TokenService::sync_installed_locations`].
//!
//! Every answer is a fixed text (`text/plain`, `nosniff`): a refusal names
//! its kind (`refused: stale webhook`), never the delivery's content; the
//! log has the core's sanitized, capped detail. `webhookId`s over
//! [`MAX_WEBHOOK_ID_BYTES`](hoopai_oauth::MAX_WEBHOOK_ID_BYTES) are refused
//! as malformed (`400`), so the seen-id store never holds one.
//!
//! **Where accepted ids are remembered.** On a service started with a
//! [`SqliteStore`](crate::SqliteStore) or a
//! [`PostgresStore`](crate::PostgresStore), in the store's
//! `hoopai_webhook_ids` table ([`SqliteWebhookIds`](crate::SqliteWebhookIds),
//! [`PostgresWebhookIds`](crate::PostgresWebhookIds)): every process on the
//! store refuses a delivery any of them accepted, so HighLevel's retry of a
//! delivery whose answer was lost is not acted on twice when a load
//! balancer sends it to another process. On other stores, in a
//! [`SeenWebhooks`] of this process (bounded in count and in bytes).
//! [`OAuthRouter::webhook_ids`](super::OAuthRouter::webhook_ids) replaces
//! either. An id is recorded before the delivery is acted on, and
//! forgotten again ([`WebhookIds::forget`]) when acting was answered `500`
//! or `503`, so that the retry is acted on. Recording and acting run in a
//! task of their own: a sender that closes the connection before the
//! answer (or a request timeout) cannot leave an id recorded and its
//! delivery not acted on.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::State as Shared;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hoopai_oauth::{
    ErrorKind, MAX_WEBHOOK_BYTES, Recorded, SeenWebhooks, WebhookEvent, WebhookPayload,
    WebhookVerifier,
};

use crate::errors::ServiceError;
use crate::reports::{ServiceEvent, WebhookReceived};
use crate::service::TokenService;
pub use crate::store::{ForgetFuture, RecordFuture, WebhookIds};
use crate::telemetry;

use super::respond::text;

/// The webhook route's settings, kept by [`OAuthRouter`](super::OAuthRouter).
#[derive(Clone)]
pub(crate) struct WebhookRoute {
    pub(crate) path: String,
    pub(crate) verifier: WebhookVerifier,
    pub(crate) ids: Arc<dyn WebhookIds>,
}

impl WebhookRoute {
    /// The route at `/webhook`, remembering ids in `ids` (the store's, for
    /// every process on it) or else in a [`SeenWebhooks`] of its own.
    pub(crate) fn new(verifier: WebhookVerifier, ids: Option<Arc<dyn WebhookIds>>) -> Self {
        WebhookRoute {
            path: "/webhook".to_owned(),
            verifier,
            ids: ids.unwrap_or_else(|| Arc::new(Mutex::new(SeenWebhooks::default()))),
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

/// Answers a refusal with a fixed text naming its kind (never the
/// delivery's content); the refusal is logged with the core's sanitized,
/// capped detail.
fn refuse(error: &hoopai_oauth::Error) -> Response {
    let status = status_of(error.kind());
    telemetry::webhook_refused(error.kind());
    if error.kind() == ErrorKind::WebhookReplayed {
        // Most often the sender retrying after a lost answer.
        tracing::info!(%error, "webhook already accepted: not acted on again");
    } else {
        tracing::warn!(status = status.as_u16(), kind = ?error.kind(), %error, "webhook refused");
    }
    let body = match error.kind() {
        ErrorKind::WebhookReplayed => "duplicate: already accepted\n".to_owned(),
        kind => format!("refused: {}\n", kind.as_str()),
    };
    text(status, body)
}

pub(crate) async fn webhook(
    Shared(state): Shared<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = SystemTime::now();
    // The raw bytes as received: never parsed and serialized again first.
    let event = match state.route.verifier.verify_unrecorded(&headers, &body, now) {
        Ok(event) => event,
        Err(e) => return refuse(&e),
    };
    // From the recording of its id on, in a task of its own: a client that
    // goes away (or a request timeout) drops this future, and must not cut
    // the delivery between the id recorded and the action done, or the
    // sender's retry would be refused as a replay of a delivery never acted
    // on.
    match tokio::spawn(record_and_act(state, event, now)).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "acting on a webhook failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, "failed\n")
        }
    }
}

/// Records a verified delivery's `webhookId` (refusing a replay), acts on
/// it, and forgets the id again if acting was answered `500` or `503`.
async fn record_and_act(
    state: Arc<WebhookState>,
    event: WebhookEvent,
    now: SystemTime,
) -> Response {
    let verifier = &state.route.verifier;
    let id = event.replay_key().map(|(id, _)| id.to_owned());
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
                    telemetry::webhook("store_failed");
                    return text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "seen-webhook store failed\n",
                    );
                }
            }
        }
        None => Recorded::New,
    };
    let event = match verifier.accept(event, recorded) {
        Ok(event) => event,
        Err(e) => return refuse(&e),
    };
    let response = act(&state.service, event).await;
    // Not acted on, or not in full: the sender's retry must be taken as
    // new, by whichever process it reaches.
    if response.status().is_server_error()
        && let Some(id) = id
        && let Err(e) = state.route.ids.forget(&id).await
    {
        tracing::error!(error = %e, "a webhookId not acted on stays recorded");
    }
    response
}

/// Acts on an accepted delivery: the engine adds or removes the grants
/// ([`TokenService::handle_webhook`]).
async fn act(service: &TokenService, event: WebhookEvent) -> Response {
    let changes = match service.handle_webhook(&event).await {
        Ok(changes) => changes,
        Err(e @ ServiceError::OAuth(_)) => {
            tracing::warn!(error = %e, "webhook refused by the engine");
            telemetry::webhook("unnamable");
            return text(
                StatusCode::BAD_REQUEST,
                "refused: the ids of this event cannot name grants\n",
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "webhook not acted on");
            telemetry::webhook("stopping");
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the service is stopping: retry later\n",
            );
        }
    };
    match &event.payload {
        WebhookPayload::Install(install) => tracing::info!(
            target = ?install.target,
            added = changes.added.len(),
            needs_code_exchange = changes.needs_code_exchange.len(),
            "install webhook"
        ),
        WebhookPayload::Uninstall(_) => {
            tracing::info!(removed = changes.removed.len(), "uninstall webhook");
        }
        _ => tracing::info!(event_type = %event.event_type, "webhook"),
    }
    if let Some((grant, e)) = changes.undeleted.first() {
        // Forgotten in memory; the record may still be stored.
        tracing::error!(grant = %grant, error = %e, undeleted = changes.undeleted.len(), "uninstall: a record could not be deleted");
        telemetry::webhook("delete_failed");
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "a record could not be deleted: retry later\n",
        );
    }
    let body = format!(
        "accepted; {} grant(s) added, {} removed\n",
        changes.added.len(),
        changes.removed.len()
    );
    telemetry::webhook("accepted");
    service.publish(ServiceEvent::Webhook(Box::new(WebhookReceived {
        event,
        removed: changes.removed,
        added: changes.added,
        needs_code_exchange: changes.needs_code_exchange,
    })));
    text(StatusCode::OK, body)
}

/// The body limit of the route: the core's [`MAX_WEBHOOK_BYTES`].
pub(crate) const BODY_LIMIT: usize = MAX_WEBHOOK_BYTES;
