//! `Engine`: the crate's token lifecycle engine for JavaScript, every input
//! and output of its API. Times are `Date.now()` milliseconds; records cross
//! as their JSON text (what stores keep); outputs are plain objects with a
//! `type` (see [`crate::engine_shape`]) whose secrets are non-enumerable.

use std::time::Duration;

use hoopai_oauth::{
    BudgetKeying, ClaimOutcome, EngineSettings, GrantRecord, LocationTokenRequest, Removal,
    RequestId, SendOutcome, StoreFailure, TokenResponse, TokenSet, WriteOutcome,
};
use js_sys::{Array, Object};
use wasm_bindgen::prelude::*;

use super::client::OAuthClient;
use super::webhook::WebhookEvent;
use super::{
    bytes, check_keys, fetched, get, input_error, oauth_error, object, optional_bool,
    optional_number, optional_text, text, time, whole_number,
};
use crate::engine_shape::{self, MAX_SAFE_INTEGER};

/// The token lifecycle of many grants, as a state machine that does no I/O
/// and reads no clock: `hoopai_oauth::Engine`.
///
/// JavaScript: `new Engine(client, settings?)`. After every call that takes
/// `nowMs`, drain `pollOutput(Date.now())` until it returns `undefined` and
/// act on each output; wake at `pollTimeout()` and call `handleTimeout`.
#[wasm_bindgen(js_name = Engine)]
pub struct JsEngine {
    engine: hoopai_oauth::Engine,
}

/// The options of `new Engine(client, {...})`.
const SETTINGS: [&str; 19] = [
    "refreshMarginMs",
    "expirySkewMs",
    "requestTimeoutMs",
    "backoff",
    "rateLimitWaitMs",
    "suspendedRetryMs",
    "unauthorizedRetry",
    "unauthorizedHaltAfter",
    "jitterSeed",
    "sharedStore",
    "rereadIntervalMs",
    "maxInFlight",
    "refreshSpreadMs",
    "dispatchWindowMs",
    "requestBudget",
    "refreshAheadSpreadMs",
    "countedSharePercent",
    "sharedBudget",
    "budgetKeying",
];

/// A duration option in milliseconds, if given.
fn millis(obj: &JsValue, name: &str) -> Result<Option<Duration>, JsValue> {
    optional_number(&get(obj, name), name)?
        .map(|ms| whole_number(ms, name, MAX_SAFE_INTEGER).map(Duration::from_millis))
        .transpose()
}

/// A required duration option of a nested object.
fn required_millis(obj: &JsValue, name: &str, what: &str) -> Result<Duration, JsValue> {
    millis(obj, name)?.ok_or_else(|| input_error(format!("{what} needs {name}")))
}

/// A whole-number option, if given.
fn count(obj: &JsValue, name: &str, max: u64) -> Result<Option<u64>, JsValue> {
    optional_number(&get(obj, name), name)?
        .map(|n| whole_number(n, name, max))
        .transpose()
}

/// The jitter seed: a `bigint` (from `crypto.getRandomValues` on a
/// `BigUint64Array`) or a whole number.
fn seed(value: &JsValue) -> Result<Option<u64>, JsValue> {
    if value.is_undefined() {
        return Ok(None);
    }
    if value.is_bigint() {
        return u64::try_from(value.clone())
            .map(Some)
            .map_err(|_| input_error("jitterSeed must be a bigint from 0 to 2^64 - 1"));
    }
    optional_number(value, "jitterSeed")?
        .map(|n| whole_number(n, "jitterSeed", MAX_SAFE_INTEGER))
        .transpose()
}

/// `EngineSettings` from the options object; every option is optional.
fn settings(options: &JsValue) -> Result<EngineSettings, JsValue> {
    check_keys(options, &SETTINGS, "the Engine settings")?;
    let mut s = EngineSettings::default();
    if options.is_undefined() || options.is_null() {
        return Ok(s);
    }
    let o = options;
    if let Some(d) = millis(o, "refreshMarginMs")? {
        s = s.refresh_margin(d);
    }
    if let Some(d) = millis(o, "expirySkewMs")? {
        s = s.expiry_skew(d);
    }
    if let Some(d) = millis(o, "requestTimeoutMs")? {
        s = s.request_timeout(d);
    }
    let backoff = get(o, "backoff");
    if !backoff.is_undefined() {
        check_keys(&backoff, &["baseMs", "capMs"], "backoff")?;
        s = s.backoff(
            required_millis(&backoff, "baseMs", "backoff")?,
            required_millis(&backoff, "capMs", "backoff")?,
        );
    }
    if let Some(d) = millis(o, "rateLimitWaitMs")? {
        s = s.rate_limit_wait(d);
    }
    if let Some(d) = millis(o, "suspendedRetryMs")? {
        s = s.suspended_retry(d);
    }
    let unauthorized = get(o, "unauthorizedRetry");
    if !unauthorized.is_undefined() {
        check_keys(&unauthorized, &["firstMs", "capMs"], "unauthorizedRetry")?;
        s = s.unauthorized_retry(
            required_millis(&unauthorized, "firstMs", "unauthorizedRetry")?,
            required_millis(&unauthorized, "capMs", "unauthorizedRetry")?,
        );
    }
    if let Some(n) = count(o, "unauthorizedHaltAfter", u64::from(u32::MAX))? {
        s = s.unauthorized_halt_after(u32::try_from(n).unwrap_or(u32::MAX));
    }
    if let Some(seed) = seed(&get(o, "jitterSeed"))? {
        s = s.jitter_seed(seed);
    }
    let shared = get(o, "sharedStore");
    if !shared.is_undefined() {
        check_keys(&shared, &["holder", "leaseMs"], "sharedStore")?;
        let holder = text(&get(&shared, "holder"), "sharedStore.holder")?;
        s = s.shared_store(holder, required_millis(&shared, "leaseMs", "sharedStore")?);
    }
    if let Some(d) = millis(o, "rereadIntervalMs")? {
        s = s.reread_interval(d);
    }
    if let Some(n) = count(o, "maxInFlight", MAX_SAFE_INTEGER)? {
        s = s.max_in_flight(usize::try_from(n).unwrap_or(usize::MAX));
    }
    if let Some(d) = millis(o, "refreshSpreadMs")? {
        s = s.refresh_spread(d);
    }
    if let Some(d) = millis(o, "dispatchWindowMs")? {
        s = s.dispatch_window(d);
    }
    let budget = get(o, "requestBudget");
    if !budget.is_undefined() {
        check_keys(&budget, &["max", "intervalMs"], "requestBudget")?;
        let max = count(&budget, "max", u64::from(u32::MAX))?
            .ok_or_else(|| input_error("requestBudget needs max"))?;
        s = s.request_budget(
            u32::try_from(max).unwrap_or(u32::MAX),
            required_millis(&budget, "intervalMs", "requestBudget")?,
        );
    }
    if let Some(d) = millis(o, "refreshAheadSpreadMs")? {
        s = s.refresh_ahead_spread(d);
    }
    if let Some(n) = count(o, "countedSharePercent", 100)? {
        s = s.counted_share(u8::try_from(n).unwrap_or(100));
    }
    if let Some(on) = optional_bool(&get(o, "sharedBudget"), "sharedBudget")? {
        s = s.shared_budget(on);
    }
    match optional_text(&get(o, "budgetKeying"), "budgetKeying")?.as_deref() {
        None => {}
        Some("app") => s = s.budget_keying(BudgetKeying::App),
        Some("resource") => s = s.budget_keying(BudgetKeying::Resource),
        Some(_) => return Err(input_error("budgetKeying is \"app\" or \"resource\"")),
    }
    Ok(s)
}

/// The store's answer to a `claim` output: `{ granted: { sends, others,
/// holders, nextFreeInMs } }` or `{ failed: message }`.
fn claim_outcome(value: &JsValue) -> Result<ClaimOutcome, JsValue> {
    let what = "the claim's outcome";
    if outcome_key(value, &["granted", "failed"], what)? == "failed" {
        return Ok(ClaimOutcome::Failed(failure(&get(value, "failed"), what)?));
    }
    let granted = get(value, "granted");
    check_keys(
        &granted,
        &["sends", "others", "holders", "nextFreeInMs"],
        "granted",
    )?;
    let small = |name: &str| -> Result<u32, JsValue> {
        let n = count(&granted, name, u64::from(u32::MAX))?
            .ok_or_else(|| input_error(format!("granted needs {name}")))?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    };
    Ok(ClaimOutcome::Granted {
        sends: small("sends")?,
        others: small("others")?,
        holders: small("holders")?,
        next_free_in: required_millis(&granted, "nextFreeInMs", "granted")?,
    })
}

/// Where a JSON reader stopped, without quoting the input (it may hold a
/// token).
fn json_error(what: &str, e: &serde_json::Error) -> JsValue {
    let why = match e.classify() {
        serde_json::error::Category::Io => "could not be read",
        serde_json::error::Category::Syntax => "is not JSON",
        serde_json::error::Category::Data => "is JSON of another shape",
        serde_json::error::Category::Eof => "ends early (truncated)",
    };
    input_error(format!(
        "{what} {why} (at line {} column {})",
        e.line(),
        e.column()
    ))
}

/// A record from its JSON, as stores keep it.
pub(crate) fn parse_record(value: &JsValue, what: &str) -> Result<GrantRecord, JsValue> {
    let json = text(value, what)?;
    let record: GrantRecord = serde_json::from_str(&json).map_err(|e| json_error(what, &e))?;
    engine_shape::check_version(&record).map_err(input_error)?;
    Ok(record)
}

/// A store failure's message.
fn failure(value: &JsValue, what: &str) -> Result<StoreFailure, JsValue> {
    let message = match value.as_string() {
        Some(m) => m,
        None => return Err(input_error(format!("{what}.failed must be a string"))),
    };
    Ok(StoreFailure::new(message))
}

/// The one key of an outcome object, among `known`.
fn outcome_key(outcome: &JsValue, known: &[&str], what: &str) -> Result<String, JsValue> {
    let bad = || {
        input_error(format!(
            "{what} must be an object with exactly one of: {}",
            known.join(", ")
        ))
    };
    if !outcome.is_object() {
        return Err(bad());
    }
    let keys = Object::keys(outcome.unchecked_ref::<Object>());
    if keys.length() != 1 {
        return Err(bad());
    }
    let key = keys.get(0).as_string().unwrap_or_default();
    if known.contains(&key.as_str()) {
        Ok(key)
    } else {
        Err(bad())
    }
}

/// A request id handed back: the text of `output.id`.
fn request_id(value: &JsValue) -> Result<RequestId, JsValue> {
    value
        .as_string()
        .and_then(|s| s.parse::<u64>().ok())
        .map(RequestId::from_u64)
        .ok_or_else(|| input_error("the request id must be the text of a send's id"))
}

/// The outcome of a send:
/// `{ response: { status, headers, body } }`, `{ transportError: "text" }`,
/// `{ notDispatched: true }`, or `{ parsed: tokenJson }` (the JSON of a
/// token answer read elsewhere).
fn send_outcome(outcome: &JsValue) -> Result<SendOutcome, JsValue> {
    let key = outcome_key(
        outcome,
        &["response", "transportError", "notDispatched", "parsed"],
        "the send outcome",
    )?;
    let v = get(outcome, &key);
    Ok(match key.as_str() {
        "response" => {
            check_keys(&v, &["status", "headers", "body"], "the response")?;
            let status = get(&v, "status")
                .as_f64()
                .ok_or_else(|| input_error("response.status must be a number"))?;
            let body = bytes(&get(&v, "body"), "response.body")?;
            SendOutcome::Response(fetched(status, &get(&v, "headers"), body)?)
        }
        "transportError" => SendOutcome::TransportError(text(&v, "transportError")?),
        "notDispatched" if v.as_bool() == Some(true) => SendOutcome::NotDispatched,
        "notDispatched" => return Err(input_error("notDispatched must be true")),
        _ => {
            let json = text(&v, "parsed")?;
            let token: TokenResponse =
                serde_json::from_str(&json).map_err(|e| json_error("the parsed token", &e))?;
            SendOutcome::Parsed(Ok(token))
        }
    })
}

/// The outcome of a write: `{ written: true }`, `{ conflict: recordJson }`,
/// `{ noRecord: true }` or `{ failed: "message" }`.
fn write_outcome(outcome: &JsValue) -> Result<WriteOutcome, JsValue> {
    let key = outcome_key(
        outcome,
        &["written", "conflict", "noRecord", "failed"],
        "the write outcome",
    )?;
    let v = get(outcome, &key);
    Ok(match key.as_str() {
        "written" if v.as_bool() == Some(true) => WriteOutcome::Written,
        "noRecord" if v.as_bool() == Some(true) => WriteOutcome::NoRecord,
        "written" | "noRecord" => return Err(input_error(format!("{key} must be true"))),
        "conflict" => WriteOutcome::Conflict(Box::new(parse_record(&v, "the conflicting record")?)),
        _ => WriteOutcome::Failed(failure(&v, "the write outcome")?),
    })
}

/// A read: the record's JSON, `null` for none, or `{ failed: "message" }`.
/// `undefined` is refused: a store that forgot to return would otherwise
/// make the engine forget the grant.
fn read(value: &JsValue) -> Result<Result<Option<GrantRecord>, StoreFailure>, JsValue> {
    if value.is_null() {
        return Ok(Ok(None));
    }
    if value.is_string() {
        return Ok(Ok(Some(parse_record(value, "the record read")?)));
    }
    if value.is_object() && outcome_key(value, &["failed"], "the read").is_ok() {
        return Ok(Err(failure(&get(value, "failed"), "the read")?));
    }
    Err(input_error(
        "a read is the record's JSON, null for no record, or { failed: message }",
    ))
}

/// Tokens to insert: the JSON of a token set, or the object
/// `parseTokenResponse` returned (its `tokenSetJson`).
fn token_set(tokens: &JsValue) -> Result<TokenSet, JsValue> {
    let json = if tokens.is_string() {
        tokens.clone()
    } else {
        get(tokens, "tokenSetJson")
    };
    let json = text(
        &json,
        "tokens (a token set's JSON, or what parseTokenResponse returned)",
    )?;
    serde_json::from_str(&json).map_err(|e| json_error("the token set", &e))
}

/// Why a grant is removed.
fn removal(why: &JsValue) -> Result<Removal, JsValue> {
    match why.as_string().as_deref() {
        Some("uninstalled") => Ok(Removal::Uninstalled),
        Some("deleted-elsewhere") => Ok(Removal::DeletedElsewhere),
        Some("released") => Ok(Removal::Released),
        _ => Err(input_error(
            "the removal must be \"uninstalled\", \"deleted-elsewhere\" or \"released\"",
        )),
    }
}

fn ids(list: &[hoopai_oauth::GrantId]) -> Array {
    list.iter().map(|g| JsValue::from_str(g.as_str())).collect()
}

#[wasm_bindgen(js_class = Engine)]
impl JsEngine {
    /// An engine with no grants, for the app of `client`, tuned by
    /// `settings` (durations in milliseconds): `refreshMarginMs`,
    /// `expirySkewMs`, `requestTimeoutMs`, `backoff: { baseMs, capMs }`,
    /// `rateLimitWaitMs`, `suspendedRetryMs`, `unauthorizedRetry: { firstMs,
    /// capMs }`, `unauthorizedHaltAfter`, `jitterSeed` (a bigint from
    /// `crypto.getRandomValues`), `sharedStore: { holder, leaseMs }`,
    /// `rereadIntervalMs`, `maxInFlight`, `refreshSpreadMs`,
    /// `dispatchWindowMs`, `requestBudget: { max, intervalMs }`,
    /// `refreshAheadSpreadMs`.
    ///
    /// # Errors
    /// `invalid input` for an unknown option or a value out of range.
    #[wasm_bindgen(constructor)]
    pub fn new(client: &OAuthClient, settings: JsValue) -> Result<JsEngine, JsValue> {
        let settings = self::settings(&settings)?;
        Ok(JsEngine {
            engine: hoopai_oauth::Engine::new(client.config.clone(), settings),
        })
    }

    /// Hands back the outcome of the send `id`.
    ///
    /// # Errors
    /// `invalid input`; the engine's `unknown request` (with a
    /// non-enumerable `rescuedRefreshToken` if the answer carried one: keep it).
    #[wasm_bindgen(js_name = handleSend)]
    pub fn handle_send(
        &mut self,
        id: JsValue,
        outcome: JsValue,
        now_ms: f64,
    ) -> Result<(), JsValue> {
        let id = request_id(&id)?;
        let outcome = send_outcome(&outcome)?;
        let now = time(now_ms)?;
        self.engine
            .handle_send(id, outcome, now)
            .map_err(oauth_error)
    }

    /// Hands back the outcome of the persist of record `version` of `grant`.
    ///
    /// # Errors
    /// `invalid input`; the engine's `unknown grant`, `unknown request`,
    /// `stale record`.
    #[wasm_bindgen(js_name = handleWrite)]
    pub fn handle_write(
        &mut self,
        grant: JsValue,
        version: f64,
        outcome: JsValue,
        now_ms: f64,
    ) -> Result<(), JsValue> {
        let grant = text(&grant, "grant")?;
        let version = whole_number(version, "version", MAX_SAFE_INTEGER)?;
        let outcome = write_outcome(&outcome)?;
        let now = time(now_ms)?;
        self.engine
            .handle_write(&grant, version, outcome, now)
            .map_err(oauth_error)
    }

    /// Hands back the record of `grant` as the store holds it now: its
    /// JSON, `null` for none, or `{ failed: "message" }`.
    ///
    /// # Errors
    /// `invalid input` (also for `undefined`); the engine's `unknown grant`,
    /// `stale record`.
    #[wasm_bindgen(js_name = handleLoad)]
    pub fn handle_load(
        &mut self,
        grant: JsValue,
        read: JsValue,
        now_ms: f64,
    ) -> Result<(), JsValue> {
        let grant = text(&grant, "grant")?;
        let read = self::read(&read)?;
        let now = time(now_ms)?;
        self.engine
            .handle_load(&grant, read, now)
            .map_err(oauth_error)
    }

    /// Hands back the store's answer to a `claim` output (a shared request
    /// budget, setting `sharedBudget`): `{ granted: { sends, others,
    /// holders, nextFreeInMs } }`, or `{ failed: message }` if the store
    /// could not answer.
    ///
    /// # Errors
    /// `invalid input` for an outcome of another shape or the time.
    #[wasm_bindgen(js_name = handleClaim)]
    pub fn handle_claim(
        &mut self,
        key: JsValue,
        outcome: JsValue,
        now_ms: f64,
    ) -> Result<(), JsValue> {
        let key = match key.as_string() {
            Some(k) => k,
            None => return Err(input_error("the claim's key must be a string")),
        };
        let outcome = claim_outcome(&outcome)?;
        let now = time(now_ms)?;
        self.engine
            .handle_claim(&key, outcome, now)
            .map_err(oauth_error)
    }

    /// Handles every deadline due at `nowMs`.
    ///
    /// # Errors
    /// `invalid input` for a time that is not `Date.now()` milliseconds.
    #[wasm_bindgen(js_name = handleTimeout)]
    pub fn handle_timeout(&mut self, now_ms: f64) -> Result<(), JsValue> {
        let now = time(now_ms)?;
        self.engine.handle_timeout(now).map_err(oauth_error)
    }

    /// Adds `grant` from a new authorization: `tokens` is what
    /// `parseTokenResponse` returned, or a token set's JSON.
    ///
    /// # Errors
    /// `invalid input` (no refresh token, empty grant, unreadable tokens).
    pub fn insert(&mut self, grant: JsValue, tokens: JsValue, now_ms: f64) -> Result<(), JsValue> {
        let grant = text(&grant, "grant")?;
        let tokens = token_set(&tokens)?;
        let now = time(now_ms)?;
        self.engine.insert(grant, tokens, now).map_err(oauth_error)
    }

    /// Loads a grant from its stored record's JSON (at start-up).
    ///
    /// # Errors
    /// `invalid input`, `stale record`.
    pub fn restore(&mut self, record_json: JsValue, now_ms: f64) -> Result<(), JsValue> {
        let record = parse_record(&record_json, "the record")?;
        let now = time(now_ms)?;
        self.engine.restore(record, now).map_err(oauth_error)
    }

    /// Removes `grant`: `"uninstalled"`, `"deleted-elsewhere"` or
    /// `"released"`. Returns the ids of the grants removed.
    ///
    /// # Errors
    /// `invalid input`; `unknown grant`.
    pub fn remove(&mut self, grant: JsValue, why: JsValue, now_ms: f64) -> Result<Array, JsValue> {
        let grant = text(&grant, "grant")?;
        let why = removal(&why)?;
        let now = time(now_ms)?;
        let removed = self.engine.remove(&grant, why, now).map_err(oauth_error)?;
        Ok(ids(&removed))
    }

    /// The access token of `grant`, answered at once: an object whose `type`
    /// is `ready` (the token in the non-enumerable `token`), `pending`,
    /// `suspended`, `unauthorized`, `reauthorization-needed`,
    /// `configuration-rejected` or `store-failing`.
    ///
    /// # Errors
    /// `unknown grant`.
    #[wasm_bindgen(js_name = accessToken)]
    pub fn access_token(&mut self, grant: JsValue, now_ms: f64) -> Result<Object, JsValue> {
        let grant = text(&grant, "grant")?;
        let now = time(now_ms)?;
        let status = self.engine.access_token(&grant, now).map_err(oauth_error)?;
        object(&engine_shape::token_status(&status))
    }

    /// Starts a refresh of `grant` now; `rejected` is the access token an
    /// API refused with a 401 (or `null`).
    ///
    /// # Errors
    /// `unknown grant`.
    #[wasm_bindgen(js_name = refreshNow)]
    pub fn refresh_now(
        &mut self,
        grant: JsValue,
        rejected: JsValue,
        now_ms: f64,
    ) -> Result<(), JsValue> {
        let grant = text(&grant, "grant")?;
        let rejected = optional_text(&rejected, "rejected")?.map(hoopai_oauth::AccessToken::new);
        let now = time(now_ms)?;
        self.engine
            .refresh_now(&grant, rejected.as_ref(), now)
            .map_err(oauth_error)
    }

    /// Applies a verified install webhook (from `WebhookVerifier`):
    /// `{ added, removed, needsCodeExchange }`.
    ///
    /// # Errors
    /// `invalid input` for ids that cannot name grants.
    #[wasm_bindgen(js_name = handleWebhook)]
    pub fn handle_webhook(&mut self, event: &WebhookEvent, now_ms: f64) -> Result<Object, JsValue> {
        let now = time(now_ms)?;
        let changes = self
            .engine
            .handle_webhook(&event.event, now)
            .map_err(oauth_error)?;
        object(&engine_shape::install_changes(&changes))
    }

    /// Adds the Location grant `grant`, minted from the Company grant
    /// `companyGrant` for `companyId` and `locationId`. Returns whether it
    /// was added (`false`: held already).
    ///
    /// # Errors
    /// `invalid input`.
    #[wasm_bindgen(js_name = addLocation)]
    pub fn add_location(
        &mut self,
        grant: JsValue,
        company_grant: JsValue,
        company_id: JsValue,
        location_id: JsValue,
        now_ms: f64,
    ) -> Result<bool, JsValue> {
        let grant = text(&grant, "grant")?;
        let company_grant = text(&company_grant, "companyGrant")?;
        let request = LocationTokenRequest::new(
            text(&company_id, "companyId")?,
            text(&location_id, "locationId")?,
        );
        let now = time(now_ms)?;
        self.engine
            .add_location(grant, company_grant, &request, now)
            .map_err(oauth_error)
    }

    /// Replaces the configuration (new client credentials).
    ///
    /// # Errors
    /// `invalid input` for the time.
    pub fn reconfigure(&mut self, client: &OAuthClient, now_ms: f64) -> Result<(), JsValue> {
        let now = time(now_ms)?;
        self.engine
            .reconfigure(client.config.clone(), now)
            .map_err(oauth_error)
    }

    /// Counts a request the app sends outside the engine (a code exchange,
    /// an installed-locations page, an API call) against the counted share
    /// of the request budget: `null` (counted, send it now) or the time in
    /// milliseconds to ask again at (nothing counted). `resource` is the
    /// Company or Location id the request is for, or `null`.
    ///
    /// # Errors
    /// `invalid input` for the time.
    #[wasm_bindgen(js_name = countRequest)]
    pub fn count_request(
        &mut self,
        resource: Option<String>,
        now_ms: f64,
    ) -> Result<Option<f64>, JsValue> {
        let now = time(now_ms)?;
        let at = self
            .engine
            .count_request(resource.as_deref(), now)
            .map_err(oauth_error)?;
        Ok(at.map(crate::shape::millis))
    }

    /// Hands back the answer to a request counted with `countRequest` for
    /// `resource`: its `status` and `headers` (as for `handleSend`). The
    /// budget follows its rate-limit headers, and a `429` spends all of it;
    /// drain `pollOutput` after. Returns `{ retryAfter, interval }` (which
    /// figures were read as their caps) or `null`.
    ///
    /// # Errors
    /// `invalid input` for the time, the status or a header.
    #[wasm_bindgen(js_name = handleCountedAnswer)]
    pub fn handle_counted_answer(
        &mut self,
        resource: Option<String>,
        status: f64,
        headers: &JsValue,
        now_ms: f64,
    ) -> Result<JsValue, JsValue> {
        let now = time(now_ms)?;
        let answer = fetched(status, headers, Vec::new())?;
        let clamped = self
            .engine
            .handle_counted_answer(resource.as_deref(), answer.status(), answer.headers(), now)
            .map_err(oauth_error)?;
        let Some(clamped) = clamped else {
            return Ok(JsValue::NULL);
        };
        let mut shape = crate::shape::Shape::default();
        shape.flag("retryAfter", clamped.retry_after);
        shape.flag("interval", clamped.interval);
        Ok(object(&shape)?.into())
    }

    /// Begins a clean shutdown: nothing new starts; wait for
    /// `stats().inFlight` and `stats().unwritten` to reach zero.
    ///
    /// # Errors
    /// `invalid input` for the time.
    #[wasm_bindgen(js_name = shutDown)]
    pub fn shut_down(&mut self, now_ms: f64) -> Result<(), JsValue> {
        let now = time(now_ms)?;
        self.engine.shut_down(now).map_err(oauth_error)
    }

    /// The next output at `nowMs`, or `undefined` when there is none. Its
    /// `type` is `send`, `persist`, `load`, `delete` or `event`.
    ///
    /// # Errors
    /// `invalid input` for the time.
    #[wasm_bindgen(js_name = pollOutput)]
    pub fn poll_output(&mut self, now_ms: f64) -> Result<JsValue, JsValue> {
        let now = time(now_ms)?;
        match self.engine.poll_output(now) {
            None => Ok(JsValue::UNDEFINED),
            Some(output) => {
                let shape = engine_shape::output(&output).map_err(input_error)?;
                object(&shape).map(JsValue::from)
            }
        }
    }

    /// When to call `handleTimeout` next, in milliseconds, or `undefined`.
    #[wasm_bindgen(js_name = pollTimeout)]
    #[must_use]
    pub fn poll_timeout(&self) -> Option<f64> {
        self.engine.poll_timeout().map(crate::shape::millis)
    }

    /// A look at `grant`: `{ id, status, expiresAtMs, mintedFrom?,
    /// isWritten, requestOut, lastFailure? }`, or `undefined`.
    ///
    /// # Errors
    /// Only if JavaScript refuses to build the object.
    pub fn grant(&self, grant: &str) -> Result<JsValue, JsValue> {
        match self.engine.grants().get(grant) {
            None => Ok(JsValue::UNDEFINED),
            Some(view) => object(&engine_shape::grant_view(&view)).map(JsValue::from),
        }
    }

    /// Every grant held, as `grant` shows it, in no particular order.
    ///
    /// # Errors
    /// Only if JavaScript refuses to build the objects.
    pub fn grants(&self) -> Result<Array, JsValue> {
        let list = Array::new();
        for view in self.engine.grants().iter() {
            list.push(&JsValue::from(object(&engine_shape::grant_view(&view))?));
        }
        Ok(list)
    }

    /// The record of `grant` as the engine holds it now, as JSON (tokens
    /// included: a secret), or `undefined`. For what a shutdown could not
    /// write.
    #[wasm_bindgen(js_name = recordJson)]
    #[must_use]
    pub fn record_json(&self, grant: &str) -> Option<String> {
        let record = self.engine.grants().get(grant)?.record();
        engine_shape::record_json(&record)
            .ok()
            .map(|json| json.as_str().to_owned())
    }

    /// Figures about the engine: `{ grants, inFlight, waitingForBudget,
    /// waitedForBudget, writesFailing, unwritten, halted, budgetMax,
    /// budgetIntervalMs }`.
    ///
    /// # Errors
    /// Only if JavaScript refuses to build the object.
    pub fn stats(&self) -> Result<Object, JsValue> {
        object(&engine_shape::stats(&self.engine.stats()))
    }
}
