//! Install webhooks for JavaScript: `WebhookVerifier` (signature over the
//! raw body, app id, timestamp window, replays), `SeenWebhooks` (the
//! bounded memory of accepted ids) and `WebhookEvent` (a verified event,
//! the only thing `Engine.handleWebhook` takes).

use std::time::Duration;

use hoopai_oauth::{Recorded, WebhookIdStore, WebhookKey, WebhookKeys};
use js_sys::{Array, Object, Uint8Array};
use wasm_bindgen::prelude::*;

use super::client::OAuthClient;
use super::{
    bytes, check_keys, get, header_pairs, input_error, oauth_error, object, optional_bool,
    optional_number, throw, time, whole_number,
};
use crate::engine_shape::{MAX_SAFE_INTEGER, duration_ms};
use crate::shape;
use crate::webhook_shape;

/// A verified webhook delivery. Made only by `WebhookVerifier`, so an
/// event handed to `Engine.handleWebhook` was always verified.
///
/// Its fields: `type`, `appId`, `webhookId`, `timestampMs` and `payload`
/// (getters), all of them at once with `toJSON()`.
#[wasm_bindgen]
pub struct WebhookEvent {
    pub(crate) event: hoopai_oauth::WebhookEvent,
}

#[wasm_bindgen]
impl WebhookEvent {
    /// `type`, as sent (`"INSTALL"`, `"UNINSTALL"`, …).
    #[wasm_bindgen(getter, js_name = type)]
    #[must_use]
    pub fn event_type(&self) -> String {
        self.event.event_type.clone()
    }

    /// `appId`.
    #[wasm_bindgen(getter, js_name = appId)]
    #[must_use]
    pub fn app_id(&self) -> Option<String> {
        self.event.app_id.clone()
    }

    /// `webhookId`.
    #[wasm_bindgen(getter, js_name = webhookId)]
    #[must_use]
    pub fn webhook_id(&self) -> Option<String> {
        self.event.webhook_id.clone()
    }

    /// `timestamp`, in milliseconds since the Unix epoch.
    #[wasm_bindgen(getter, js_name = timestampMs)]
    #[must_use]
    pub fn timestamp_ms(&self) -> Option<f64> {
        self.event.timestamp.map(shape::millis)
    }

    /// What happened: `{ kind: "install", target, ... }`,
    /// `{ kind: "uninstall", target, ... }` or `{ kind: "other", body }`.
    ///
    /// # Errors
    /// Only if JavaScript refuses to build the object.
    #[wasm_bindgen(getter)]
    pub fn payload(&self) -> Result<JsValue, JsValue> {
        let all = webhook_shape::event(&self.event);
        match all.get("payload") {
            Some(shape::Value::Object(p)) => object(p).map(JsValue::from),
            _ => Ok(JsValue::UNDEFINED),
        }
    }

    /// Every field as a plain object (what `JSON.stringify` shows).
    ///
    /// # Errors
    /// Only if JavaScript refuses to build the object.
    #[wasm_bindgen(js_name = toJSON)]
    pub fn to_json(&self) -> Result<Object, JsValue> {
        object(&webhook_shape::event(&self.event))
    }
}

/// The memory of webhook ids accepted, bounded in count and bytes; reads no
/// clock (`hoopai_oauth::SeenWebhooks`).
///
/// JavaScript: `new SeenWebhooks(capacity?, maxBytes?)`.
#[wasm_bindgen]
pub struct SeenWebhooks {
    seen: hoopai_oauth::SeenWebhooks,
}

/// What a store of seen ids answered, by its JavaScript name.
fn recorded_name(r: Recorded) -> &'static str {
    match r {
        Recorded::New => "new",
        Recorded::Duplicate => "duplicate",
        _ => "beyond-memory",
    }
}

fn recorded(value: &JsValue) -> Result<Recorded, JsValue> {
    match value.as_string().as_deref() {
        Some("new") => Ok(Recorded::New),
        Some("duplicate") => Ok(Recorded::Duplicate),
        Some("beyond-memory") => Ok(Recorded::BeyondMemory),
        _ => Err(input_error(
            "recorded must be \"new\", \"duplicate\" or \"beyond-memory\"",
        )),
    }
}

#[wasm_bindgen]
impl SeenWebhooks {
    /// An empty memory of at most `capacity` ids (default 50,000) and
    /// `maxBytes` counted bytes (default 16 MiB).
    ///
    /// # Errors
    /// `invalid input` for a number that is not whole.
    #[wasm_bindgen(constructor)]
    pub fn new(capacity: JsValue, max_bytes: JsValue) -> Result<SeenWebhooks, JsValue> {
        let capacity = optional_number(&capacity, "capacity")?
            .map(|n| whole_number(n, "capacity", MAX_SAFE_INTEGER))
            .transpose()?
            .map_or(hoopai_oauth::DEFAULT_SEEN_CAPACITY, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            });
        let mut seen = hoopai_oauth::SeenWebhooks::new(capacity);
        if let Some(max) = optional_number(&max_bytes, "maxBytes")? {
            let max = whole_number(max, "maxBytes", MAX_SAFE_INTEGER)?;
            seen = seen.max_bytes(usize::try_from(max).unwrap_or(usize::MAX));
        }
        Ok(SeenWebhooks { seen })
    }

    /// Ids remembered.
    #[wasm_bindgen(getter)]
    #[must_use]
    pub fn size(&self) -> usize {
        self.seen.len()
    }

    /// Whether `webhookId` is remembered.
    #[must_use]
    pub fn has(&self, webhook_id: &str) -> bool {
        self.seen.contains(webhook_id)
    }

    /// Records `webhookId`, sent at `timestampMs`: `"new"`, `"duplicate"`
    /// or `"beyond-memory"`.
    ///
    /// # Errors
    /// `invalid input` for times that are not `Date.now()` milliseconds.
    pub fn record(
        &mut self,
        webhook_id: &str,
        timestamp_ms: f64,
        now_ms: f64,
        window_ms: f64,
    ) -> Result<String, JsValue> {
        let timestamp = time(timestamp_ms)?;
        let now = time(now_ms)?;
        let window = Duration::from_millis(whole_number(window_ms, "windowMs", MAX_SAFE_INTEGER)?);
        Ok(recorded_name(self.seen.record(webhook_id, timestamp, now, window)).to_owned())
    }
}

/// Verifies webhook deliveries for one app (`hoopai_oauth::WebhookVerifier`):
/// the Ed25519 signature over the raw body, then the JSON, the app id, the
/// timestamp window and the id against the seen ones.
///
/// JavaScript: `new WebhookVerifier(client, { keys?, trustHighLevel?,
/// windowMs?, acceptUndated? })`. `keys` are more keys to trust, each a
/// SubjectPublicKeyInfo in base64 or PEM (HighLevel's published form) or
/// the raw 32 bytes; `trustHighLevel: false` drops HighLevel's own key.
#[wasm_bindgen]
pub struct WebhookVerifier {
    verifier: hoopai_oauth::WebhookVerifier,
}

fn key(value: &JsValue) -> Result<WebhookKey, JsValue> {
    if let Some(spki) = value.as_string() {
        return WebhookKey::from_spki(&spki).map_err(oauth_error);
    }
    let raw = bytes(value, "a webhook key")?;
    let raw: [u8; 32] = raw
        .try_into()
        .map_err(|_| input_error("a raw webhook key is 32 bytes"))?;
    WebhookKey::from_bytes(&raw).map_err(oauth_error)
}

#[wasm_bindgen]
impl WebhookVerifier {
    /// A verifier for the app of `client`.
    ///
    /// # Errors
    /// `invalid input` for an unknown option or an unusable key.
    #[wasm_bindgen(constructor)]
    pub fn new(client: &OAuthClient, options: JsValue) -> Result<WebhookVerifier, JsValue> {
        check_keys(
            &options,
            &["keys", "trustHighLevel", "windowMs", "acceptUndated"],
            "the WebhookVerifier options",
        )?;
        let mut verifier = hoopai_oauth::WebhookVerifier::new(&client.config);
        if optional_bool(&get(&options, "trustHighLevel"), "trustHighLevel")? == Some(false) {
            verifier = verifier.keys(WebhookKeys::empty());
        }
        let keys = get(&options, "keys");
        if !keys.is_undefined() {
            let list: Array = keys
                .dyn_into()
                .map_err(|_| input_error("keys must be an array"))?;
            for k in list.iter() {
                verifier = verifier.add_key(key(&k)?);
            }
        }
        if let Some(ms) = optional_number(&get(&options, "windowMs"), "windowMs")? {
            let ms = whole_number(ms, "windowMs", MAX_SAFE_INTEGER)?;
            verifier = verifier.window(Duration::from_millis(ms));
        }
        if let Some(accept) = optional_bool(&get(&options, "acceptUndated"), "acceptUndated")? {
            verifier = verifier.accept_undated(accept);
        }
        Ok(WebhookVerifier { verifier })
    }

    /// The replay window in milliseconds: a seen-id store must remember ids
    /// at least this long.
    #[wasm_bindgen(getter, js_name = windowMs)]
    #[must_use]
    pub fn window_ms(&self) -> f64 {
        duration_ms(self.verifier.replay_window())
    }

    /// Verifies one delivery: `headers` as received, `body` the raw bytes
    /// (a `Uint8Array`, never re-serialized JSON), `nowMs`, and the memory
    /// of ids seen.
    ///
    /// # Errors
    /// An `OAuthError` of class `webhook` (`webhook unsigned`, `webhook bad
    /// signature`, `webhook replayed`, …) or `invalid input`.
    pub fn verify(
        &self,
        headers: JsValue,
        body: JsValue,
        now_ms: f64,
        seen: &mut SeenWebhooks,
    ) -> Result<WebhookEvent, JsValue> {
        let (headers, body) = delivery(&headers, &body)?;
        let now = time(now_ms)?;
        self.verifier
            .verify(&headers, &body, now, &mut seen.seen)
            .map(|event| WebhookEvent { event })
            .map_err(oauth_error)
    }

    /// Every check but the seen-id one, for a seen-id store of your own
    /// (shared by processes): record `event.webhookId` there, then call
    /// `accept(event, recorded)`.
    ///
    /// # Errors
    /// As `verify`, never `webhook replayed`.
    #[wasm_bindgen(js_name = verifyUnrecorded)]
    pub fn verify_unrecorded(
        &self,
        headers: JsValue,
        body: JsValue,
        now_ms: f64,
    ) -> Result<WebhookEvent, JsValue> {
        let (headers, body) = delivery(&headers, &body)?;
        let now = time(now_ms)?;
        self.verifier
            .verify_unrecorded(&headers, &body, now)
            .map(|event| WebhookEvent { event })
            .map_err(oauth_error)
    }

    /// Finishes `verifyUnrecorded` with what the store answered:
    /// `"new"`, `"duplicate"` or `"beyond-memory"`. An event without a
    /// `webhookId` (accepted only with `acceptUndated`) is `"new"`.
    ///
    /// # Errors
    /// `webhook replayed` or `webhook stale`.
    pub fn accept(&self, event: &WebhookEvent, recorded: JsValue) -> Result<WebhookEvent, JsValue> {
        let recorded = self::recorded(&recorded)?;
        self.verifier
            .accept(event.event.clone(), recorded)
            .map(|event| WebhookEvent { event })
            .map_err(oauth_error)
    }
}

/// Headers and raw body of a delivery.
fn delivery(headers: &JsValue, body: &JsValue) -> Result<(http::HeaderMap, Vec<u8>), JsValue> {
    let pairs = header_pairs(headers).map_err(|f| throw(&f))?;
    let map = shape::header_map(pairs).map_err(|f| throw(&f))?;
    if body.is_string() {
        return Err(input_error(
            "body must be the raw bytes (a Uint8Array), not text: the signature covers the bytes as received",
        ));
    }
    let body = if let Some(array) = body.dyn_ref::<Uint8Array>() {
        array.to_vec()
    } else {
        bytes(body, "body")?
    };
    Ok((map, body))
}
