//! The crate's one error type; documented on [`Error`].

use std::fmt;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};
use serde_json::Value;

use crate::rate_limit::RateLimit;
use crate::sanitize::{MAX_MESSAGES, excerpt, identifier, server_text};
use crate::secret::RefreshToken;

/// What went wrong, stable for code to match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    // ---- caller mistakes -------------------------------------------------
    /// The configuration was rejected when it was built (bad base URL, empty client id…).
    InvalidConfig,
    /// An input to a request builder was rejected (empty code, relative redirect URI…).
    /// No request was built.
    InvalidInput,
    /// The consent redirect carried a `state` that does not match the one sent,
    /// or none although one was sent. Treat it as a forged redirect.
    StateMismatch,
    /// The consent redirect could not be read: malformed URL, a duplicated
    /// parameter, or no authorization code.
    MalformedCallback,

    // ---- engine misuse ---------------------------------------------------
    /// A response, failure or confirmation named a request id that is not in flight.
    UnknownRequest,
    /// An operation named a grant the engine does not hold.
    UnknownGrant,
    /// A record handed to the engine is not usable (wrong schema version, a
    /// different grant, or older than what the engine holds).
    StaleRecord,

    // ---- server answers --------------------------------------------------
    /// The user declined consent, or the authorization server reported an error
    /// on the consent redirect (`?error=…`).
    ConsentDenied,
    /// The code or refresh token is spent, expired or unknown. Only a new
    /// authorization (re-install) recovers.
    InvalidGrant,
    /// The sub-account is suspended. Keep the refresh token: the same one works
    /// again once the location is reactivated.
    LocationNotActive,
    /// The client id or secret was rejected. Retrying will not help.
    ///
    /// A 401 from `/oauth/token` counts only when its message or code names
    /// the client credentials (`clientId`, `client_secret`, "Invalid
    /// client"…); any other 401 there is [`GrantUnauthorized`](Self::GrantUnauthorized).
    InvalidClient,
    /// A parameter is missing or has an invalid value (HTTP 400 or 422).
    InvalidParameter,
    /// The bearer token was rejected (HTTP 401 on an API endpoint).
    Unauthorized,
    /// `/oauth/token` answered 401 without naming the client credentials,
    /// e.g. the official OpenAPI's own example for that path, "Invalid token:
    /// access token is invalid". It concerns the grant (the code or refresh
    /// token presented), not the whole client. A 401 refuses before anything
    /// is spent: keep the refresh token.
    GrantUnauthorized,
    /// The token lacks access (HTTP 403), e.g. to that location.
    Forbidden,
    /// The resource does not exist (HTTP 404).
    NotFound,
    /// Too many requests (HTTP 429). See [`Error::rate_limit`].
    RateLimited,
    /// The server failed (HTTP 5xx). Retry with backoff.
    ServerError,
    /// Another refusal the crate does not classify further (another 4xx).
    Rejected,

    // ---- unreadable answers ---------------------------------------------
    /// The response body could not be read. See [`Error::unreadable_reason`].
    Unreadable,

    // ---- refused webhook deliveries ---------------------------------------
    /// The delivery has no `x-ghl-signature` header (or an empty one). Never
    /// process an unsigned delivery.
    WebhookUnsigned,
    /// The delivery carries only the legacy `x-wh-signature` (RSA) header.
    /// HighLevel ended that scheme on 2026-07-01 (`docs/highlevel-facts.md`,
    /// "Webhook signatures"); genuine
    /// deliveries are signed with `x-ghl-signature` now.
    WebhookLegacySignature,
    /// The `x-ghl-signature` header is not one standard-base64 value of a
    /// 64-byte Ed25519 signature (bad base64, wrong length, sent twice).
    WebhookMalformedSignature,
    /// The signature does not verify over the raw body with any trusted key:
    /// a forgery, another key, or a body changed after signing (for example
    /// parsed and re-serialized before verification). The two cannot be told
    /// apart.
    WebhookBadSignature,
    /// The signed body is not a webhook this crate can read: not a JSON
    /// object, no `type`, too large, or an INSTALL/UNINSTALL without the ids
    /// it needs.
    WebhookMalformed,
    /// The delivery is for another app: its `appId` is not the part of the
    /// configured client id before the first `-`, or an INSTALL/UNINSTALL has
    /// no `appId`.
    WebhookOtherApp,
    /// The payload `timestamp` is outside the accepted window around `now`,
    /// or older than the replay memory reaches.
    WebhookStale,
    /// The `webhookId` was seen before: a replay or a retried delivery
    /// already accepted.
    WebhookReplayed,
    /// The payload has no readable `timestamp` or no `webhookId`, so a replay
    /// cannot be ruled out (old UNINSTALL deliveries); refused unless the
    /// verifier was told to accept such deliveries.
    WebhookUndated,
}

/// The five broad classes of [`ErrorKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The caller's configuration or input was wrong; nothing was sent.
    Caller,
    /// The engine was driven in a way it cannot accept.
    Misuse,
    /// The server answered with a refusal it explained.
    Server,
    /// The server's answer could not be read.
    Unreadable,
    /// An incoming webhook delivery was refused: unsigned, forged, stale,
    /// replayed, unreadable or for another app. Do not act on it.
    Webhook,
}

/// Why a response body was unreadable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Unreadable {
    /// The body was empty.
    Empty,
    /// The body was not JSON (an HTML page from a proxy, plain text…).
    NotJson,
    /// The body was JSON cut off before its end.
    Truncated,
    /// The body was larger than [`MAX_BODY_BYTES`](crate::MAX_BODY_BYTES).
    TooLarge,
    /// The body was JSON of the wrong shape: a required field missing or of the
    /// wrong type.
    UnexpectedShape,
}

impl ErrorKind {
    /// The class of this kind.
    #[must_use]
    pub fn class(self) -> ErrorClass {
        use ErrorKind::*;
        match self {
            InvalidConfig | InvalidInput | StateMismatch | MalformedCallback => ErrorClass::Caller,
            UnknownRequest | UnknownGrant | StaleRecord => ErrorClass::Misuse,
            Unreadable => ErrorClass::Unreadable,
            WebhookUnsigned
            | WebhookLegacySignature
            | WebhookMalformedSignature
            | WebhookBadSignature
            | WebhookMalformed
            | WebhookOtherApp
            | WebhookStale
            | WebhookReplayed
            | WebhookUndated => ErrorClass::Webhook,
            _ => ErrorClass::Server,
        }
    }

    /// Whether sending the same request again later may succeed: rate limits,
    /// server errors and unreadable answers (often a proxy page).
    #[must_use]
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited | ErrorKind::ServerError | ErrorKind::Unreadable
        )
    }

    /// A short, stable, human name for the kind.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        use ErrorKind::*;
        match self {
            InvalidConfig => "invalid configuration",
            InvalidInput => "invalid input",
            StateMismatch => "state mismatch",
            MalformedCallback => "malformed callback",
            UnknownRequest => "unknown request id",
            UnknownGrant => "unknown grant",
            StaleRecord => "stale record",
            ConsentDenied => "consent denied",
            InvalidGrant => "invalid grant",
            LocationNotActive => "location not active",
            InvalidClient => "invalid client",
            InvalidParameter => "invalid parameter",
            Unauthorized => "unauthorized",
            GrantUnauthorized => "grant unauthorized",
            Forbidden => "forbidden",
            NotFound => "not found",
            RateLimited => "rate limited",
            ServerError => "server error",
            Rejected => "request rejected",
            Unreadable => "unreadable response",
            WebhookUnsigned => "unsigned webhook",
            WebhookLegacySignature => "webhook with a legacy signature only",
            WebhookMalformedSignature => "malformed webhook signature",
            WebhookBadSignature => "bad webhook signature",
            WebhookMalformed => "malformed webhook",
            WebhookOtherApp => "webhook for another app",
            WebhookStale => "stale webhook",
            WebhookReplayed => "replayed webhook",
            WebhookUndated => "webhook without replay protection",
        }
    }

    /// What the user of the crate should do about it.
    #[must_use]
    pub fn advice(self) -> &'static str {
        use ErrorKind::*;
        match self {
            InvalidConfig => "fix the configuration",
            InvalidInput => "fix the input; nothing was sent",
            StateMismatch => "reject this redirect: it did not come from the consent you started",
            MalformedCallback => "the redirect is not a valid consent answer",
            UnknownRequest => "hand back only ids of requests that are in flight",
            UnknownGrant => "add the grant to the engine first",
            StaleRecord => "hand back the current record from the store",
            ConsentDenied => "the user must approve the app to continue",
            InvalidGrant => "the grant is gone: the app must be re-authorized (re-installed)",
            LocationNotActive => {
                "keep the refresh token; it works again once the location is reactivated"
            }
            InvalidClient => "check the client id and secret; retrying will not help",
            InvalidParameter => "a parameter is missing or invalid",
            Unauthorized => "the bearer token was rejected; refresh it or re-authorize",
            GrantUnauthorized => {
                "keep the refresh token: the server refused this grant with 401 without naming \
                 the client; look into the grant, and re-authorize it if this persists"
            }
            Forbidden => "the token has no access to this resource",
            NotFound => "check the ids in the request",
            RateLimited => "wait before retrying",
            ServerError => "retry later with backoff",
            Rejected => "the server refused the request",
            Unreadable => "retry later; the answer may have come from a proxy",
            WebhookUnsigned | WebhookMalformedSignature | WebhookBadSignature => {
                "refuse the delivery (HTTP 401) and do not act on it"
            }
            WebhookLegacySignature => {
                "refuse the delivery (HTTP 401); genuine deliveries carry x-ghl-signature"
            }
            WebhookMalformed => "refuse the delivery (HTTP 400) and do not act on it",
            WebhookOtherApp => "ignore the delivery: it is not for this app",
            WebhookStale => {
                "refuse the delivery: it is too old or too far ahead to rule out a replay"
            }
            WebhookReplayed => "do not act on it again: it was already accepted once",
            WebhookUndated => {
                "refuse the delivery, or opt in to undated deliveries and reconcile installs by listing them"
            }
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which endpoint an answer came from; it decides what a bare status means:
/// a 401 from `/oauth/token` is a rejected client when its message names the
/// client credentials, else a refused grant; elsewhere a rejected bearer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `POST /oauth/token`.
    Token,
    /// `POST /oauth/locationToken` (v3: `/oauth/location-token`).
    LocationToken,
    /// `GET /oauth/installedLocations` (v3: `/oauth/installed-locations`).
    InstalledLocations,
}

/// The crate's error. Match on [`kind()`](Error::kind); show it with `Display`.
///
/// It never holds a secret in full: server messages and body excerpts are
/// sanitized, and long opaque strings in them are redacted.
///
/// The one error type of the crate, with a stable [`ErrorKind`] to match on.
///
/// Errors fall into five classes ([`ErrorClass`]):
/// - **caller** mistakes: bad configuration or input; nothing was sent;
/// - **misuse** of the engine, such as a response for an id that is not in flight;
/// - **server** answers: the server understood and said no;
/// - **unreadable** answers: the body could not be read at all;
/// - **webhook** refusals: an incoming delivery was unsigned, forged, stale,
///   replayed, unreadable or for another app.
///
/// Webhook refusals are kinds of this one error, not a type of their own, so
/// that a webhook handler and the token code share one `?` and one match on
/// [`ErrorKind`]; their class tells a router to answer the sender instead of
/// retrying anything.
#[derive(Clone, PartialEq)]
pub struct Error(Box<Inner>);

#[derive(Clone, PartialEq)]
struct Inner {
    kind: ErrorKind,
    status: Option<StatusCode>,
    messages: Vec<String>,
    code: Option<String>,
    trace_id: Option<String>,
    detail: Option<String>,
    excerpt: Option<String>,
    rate_limit: Option<RateLimit>,
    unreadable: Option<Unreadable>,
    rescued: Option<RefreshToken>,
}

impl Error {
    fn bare(kind: ErrorKind) -> Self {
        Error(Box::new(Inner {
            kind,
            status: None,
            messages: Vec::new(),
            code: None,
            trace_id: None,
            detail: None,
            excerpt: None,
            rate_limit: None,
            unreadable: None,
            rescued: None,
        }))
    }

    /// An error of `kind` raised by the crate itself, with a detail for humans.
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        let mut e = Self::bare(kind);
        e.0.detail = Some(detail.into());
        e
    }

    /// A refused webhook delivery.
    pub(crate) fn webhook(kind: ErrorKind, detail: impl Into<String>) -> Self {
        debug_assert_eq!(kind.class(), ErrorClass::Webhook);
        Self::new(kind, detail)
    }

    /// A configuration error.
    pub(crate) fn config(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidConfig, detail)
    }

    /// An input error.
    pub(crate) fn input(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, detail)
    }

    /// An unreadable answer.
    pub(crate) fn unreadable(
        why: Unreadable,
        status: StatusCode,
        body: &[u8],
        detail: impl Into<String>,
    ) -> Self {
        let mut e = Self::new(ErrorKind::Unreadable, detail);
        e.0.status = Some(status);
        e.0.unreadable = Some(why);
        e.0.excerpt = excerpt(body);
        e
    }

    /// Keeps a refresh token found in an answer that failed otherwise.
    pub(crate) fn with_rescued_refresh_token(mut self, token: RefreshToken) -> Self {
        self.0.rescued = Some(token);
        self
    }

    /// A refresh token found in an answer that was otherwise unusable (say, a
    /// 2xx without an access token). The server may already have spent the
    /// token that was sent, so this one may be the installation now: persist it
    /// before retrying, and refresh with it.
    #[must_use]
    pub fn rescued_refresh_token(&self) -> Option<&RefreshToken> {
        self.0.rescued.as_ref()
    }

    /// The same answer, classified as `kind` by the crate's own judgement
    /// (e.g. several grants refused in a row mean the client is), with
    /// `detail` saying why. The server's status and text are kept.
    pub(crate) fn reclassified(mut self, kind: ErrorKind, detail: impl Into<String>) -> Self {
        self.0.kind = kind;
        self.0.detail = Some(detail.into());
        self
    }

    /// Marks why the body could not be read.
    pub(crate) fn with_unreadable(mut self, why: Unreadable) -> Self {
        self.0.unreadable = Some(why);
        self
    }

    /// Attaches a server's machine-readable code and message(s), sanitized, to
    /// an error the crate raised itself (e.g. the `error` and
    /// `error_description` of a consent redirect).
    pub(crate) fn with_server_text<'a>(
        mut self,
        code: Option<&str>,
        messages: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        self.0.code = code.map(server_text).filter(|c| !c.is_empty());
        self.0.messages = capped_messages(messages);
        self
    }

    /// The stable kind.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The class of the kind.
    #[must_use]
    pub fn class(&self) -> ErrorClass {
        self.0.kind.class()
    }

    /// The HTTP status of the answer, if the error came from one. For an error
    /// body on a 2xx status this is the status the body claims, if any.
    #[must_use]
    pub fn status(&self) -> Option<StatusCode> {
        self.0.status
    }

    /// The server's message(s), sanitized, each capped at
    /// [`EXCERPT_CHARS`](crate::EXCERPT_CHARS) characters (an ellipsis
    /// marks a cut). NestJS 422 answers carry several: at most
    /// [`MAX_MESSAGES`] are kept, and a last line counts the rest.
    #[must_use]
    pub fn messages(&self) -> &[String] {
        &self.0.messages
    }

    /// The server's machine-readable code, if it sent one: the RFC 6749 `error`
    /// (`invalid_grant`), the AIP `code` (`RESOURCE_NOT_FOUND`) or the NestJS
    /// `error` (`Unauthorized`).
    #[must_use]
    pub fn code(&self) -> Option<&str> {
        self.0.code.as_deref()
    }

    /// The server's trace id, if it sent one; quote it to support.
    #[must_use]
    pub fn trace_id(&self) -> Option<&str> {
        self.0.trace_id.as_deref()
    }

    /// The crate's own explanation, for errors the crate raised itself.
    #[must_use]
    pub fn detail(&self) -> Option<&str> {
        self.0.detail.as_deref()
    }

    /// A capped (at most 200 characters), sanitized excerpt of the body, for
    /// unreadable or unclassified answers.
    #[must_use]
    pub fn excerpt(&self) -> Option<&str> {
        self.0.excerpt.as_deref()
    }

    /// The rate-limit figures of the answer, when it carried any.
    #[must_use]
    pub fn rate_limit(&self) -> Option<&RateLimit> {
        self.0.rate_limit.as_ref()
    }

    /// Why the body was unreadable, for [`ErrorKind::Unreadable`].
    #[must_use]
    pub fn unreadable_reason(&self) -> Option<Unreadable> {
        self.0.unreadable
    }

    /// When the server asked us to retry, if it said: `Retry-After`, or the end
    /// of the rate-limit window when nothing remains in it.
    #[must_use]
    pub fn retry_at(&self, now: SystemTime) -> Option<SystemTime> {
        self.0.rate_limit.as_ref().and_then(|r| r.retry_at(now))
    }

    /// How long the server asked us to wait, if it said.
    #[must_use]
    pub fn retry_after(&self, now: SystemTime) -> Option<Duration> {
        self.retry_at(now)
            .map(|at| at.duration_since(now).unwrap_or_default())
    }

    /// Builds the error for a non-success answer, or for an error body on a 2xx.
    ///
    /// `body` is the parsed JSON if the body was JSON; `raw` is the raw body.
    pub(crate) fn from_answer(
        endpoint: Endpoint,
        status: StatusCode,
        headers: &HeaderMap,
        body: Option<&Value>,
        raw: &[u8],
    ) -> Self {
        let mut fields = ErrorFields::default();
        if let Some(v) = body {
            fields.read(v);
        }
        let effective = if status.is_success() {
            fields
                .status
                .and_then(|s| u16::try_from(s).ok())
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(status)
        } else {
            status
        };
        let kind = classify(endpoint, effective, &fields);
        let mut e = Self::bare(kind);
        e.0.status = Some(effective);
        e.0.messages = capped_messages(fields.messages.iter().map(String::as_str));
        e.0.code = fields.code.as_deref().map(server_text);
        e.0.trace_id = fields.trace_id.as_deref().map(identifier);
        if body.is_none() || e.0.messages.is_empty() {
            e.0.excerpt = excerpt(raw);
        }
        if body.is_none() && !status.is_success() {
            e.0.unreadable = Some(if raw.is_empty() {
                Unreadable::Empty
            } else {
                Unreadable::NotJson
            });
        }
        let rate = RateLimit::from_headers(headers);
        if rate.is_some() || kind == ErrorKind::RateLimited {
            e.0.rate_limit = Some(rate.unwrap_or_default());
        }
        e
    }

    /// Whether a JSON object on a 2xx status is an error body rather than an answer.
    pub(crate) fn looks_like_error_body(v: &Value) -> bool {
        let Some(o) = v.as_object() else { return false };
        let status_says_error = ["statusCode", "status"]
            .iter()
            .any(|k| o.get(*k).and_then(value_as_u64).is_some_and(|s| s >= 400));
        status_says_error
            || o.get("error")
                .is_some_and(|e| e.is_string() || e.is_object())
            || o.contains_key("error_description")
    }
}

/// Server messages as an error keeps them: each sanitized and capped
/// ([`server_text`]), empty ones dropped, at most [`MAX_MESSAGES`] of them
/// plus a line that counts the rest.
fn capped_messages<'a>(messages: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut kept = Vec::new();
    let mut more = 0_usize;
    for message in messages {
        if kept.len() == MAX_MESSAGES {
            more += 1;
            continue;
        }
        let clean = server_text(message);
        if !clean.is_empty() {
            kept.push(clean);
        }
    }
    if more > 0 {
        kept.push(format!("(and {more} more)"));
    }
    kept
}

fn value_as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The fields of every documented error shape, read leniently.
#[derive(Default)]
struct ErrorFields {
    status: Option<u64>,
    messages: Vec<String>,
    code: Option<String>,
    trace_id: Option<String>,
}

impl ErrorFields {
    fn read(&mut self, v: &Value) {
        let Some(o) = v.as_object() else {
            if let Some(s) = v.as_str() {
                self.messages.push(s.to_owned());
            }
            return;
        };
        self.status = o
            .get("statusCode")
            .or_else(|| o.get("status"))
            .and_then(value_as_u64);
        push_messages(&mut self.messages, o.get("message"));
        match o.get("error") {
            // v3 AIP envelope: {"error":{"code","message","details","resolution"}}
            Some(Value::Object(aip)) => {
                self.code = aip.get("code").and_then(Value::as_str).map(str::to_owned);
                push_messages(&mut self.messages, aip.get("message"));
                if let Some(r) = aip.get("resolution").and_then(Value::as_str) {
                    self.messages.push(r.to_owned());
                }
                if self.status.is_none() {
                    self.status = aip.get("status").and_then(value_as_u64);
                }
            }
            // RFC 6749 `error` or the NestJS `error` title.
            Some(Value::String(code)) => self.code = Some(code.clone()),
            _ => {}
        }
        push_messages(&mut self.messages, o.get("error_description"));
        self.trace_id = o
            .get("traceId")
            .or_else(|| o.get("trace_id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
}

fn push_messages(out: &mut Vec<String>, v: Option<&Value>) {
    match v {
        Some(Value::String(s)) if !s.is_empty() => out.push(s.clone()),
        Some(Value::Array(items)) => out.extend(
            items
                .iter()
                .filter_map(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        ),
        _ => {}
    }
}

fn classify(endpoint: Endpoint, status: StatusCode, f: &ErrorFields) -> ErrorKind {
    let text = f.messages.join(" ").to_ascii_lowercase();
    let code = f.code.as_deref().unwrap_or("").to_ascii_lowercase();
    // Message-based answers first: they mean the same whatever the status.
    if text.contains("location is not active") {
        return ErrorKind::LocationNotActive;
    }
    if code == "invalid_grant" || text.contains("invalid grant") {
        return ErrorKind::InvalidGrant;
    }
    if code == "invalid_client"
        || text.contains("invalid client")
        || text.contains("invalid parameter: clientid")
        || text.contains("invalid parameter: clientsecret")
        || text.contains("invalid parameter: client_id")
        || text.contains("invalid parameter: client_secret")
    {
        return ErrorKind::InvalidClient;
    }
    if status == StatusCode::TOO_MANY_REQUESTS || code == "resource_exhausted" {
        return ErrorKind::RateLimited;
    }
    if status.is_server_error() || code == "internal" || code == "unavailable" {
        return ErrorKind::ServerError;
    }
    if matches!(
        code.as_str(),
        "invalid_request" | "unsupported_grant_type" | "invalid_scope" | "invalid_argument"
    ) || text.contains("invalid parameter")
        || text.contains("missing parameter")
        || status == StatusCode::UNPROCESSABLE_ENTITY
    {
        return ErrorKind::InvalidParameter;
    }
    if code == "unauthenticated" || status == StatusCode::UNAUTHORIZED {
        return match endpoint {
            Endpoint::Token if names_client(&text, &code) => ErrorKind::InvalidClient,
            Endpoint::Token => ErrorKind::GrantUnauthorized,
            _ => ErrorKind::Unauthorized,
        };
    }
    if code == "permission_denied"
        || code == "unauthorized_client"
        || status == StatusCode::FORBIDDEN
    {
        return ErrorKind::Forbidden;
    }
    if code == "resource_not_found" || code == "not_found" || status == StatusCode::NOT_FOUND {
        return ErrorKind::NotFound;
    }
    ErrorKind::Rejected
}

/// Whether a refusal's message or code (lowercased) names the client
/// credentials rather than the grant: what makes a 401 from `/oauth/token`
/// an [`ErrorKind::InvalidClient`].
fn names_client(text: &str, code: &str) -> bool {
    const CLIENT_WORDS: [&str; 10] = [
        "clientid",
        "client_id",
        "client id",
        "clientsecret",
        "client_secret",
        "client secret",
        "invalid client",
        "invalid_client",
        "client credentials",
        "client authentication",
    ];
    code.contains("client") || CLIENT_WORDS.iter().any(|w| text.contains(w))
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &*self.0;
        f.write_str(i.kind.as_str())?;
        if let Some(s) = i.status {
            write!(f, " (HTTP {})", s.as_u16())?;
        }
        if let Some(d) = &i.detail {
            write!(f, ": {d}")?;
        }
        if !i.messages.is_empty() {
            write!(f, ": {}", i.messages.join("; "))?;
        } else if let Some(c) = &i.code {
            write!(f, ": {c}")?;
        } else if let Some(x) = &i.excerpt {
            write!(f, ": body starts {x:?}")?;
        }
        if let Some(r) = &i.rate_limit {
            if let Some(crate::rate_limit::RetryAfter::Delay(d)) = r.retry_after {
                write!(f, " (retry after {}s)", d.as_secs())?;
            }
            if r.clamped.retry_after {
                write!(
                    f,
                    " (Retry-After asked for more than the {}s cap)",
                    crate::rate_limit::MAX_RETRY_AFTER.as_secs()
                )?;
            }
            if r.clamped.interval {
                write!(
                    f,
                    " (X-RateLimit-Interval-Milliseconds over the {}s cap)",
                    crate::rate_limit::MAX_RATE_LIMIT_INTERVAL.as_secs()
                )?;
            }
        }
        write!(f, " — {}", i.kind.advice())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &*self.0;
        let mut d = f.debug_struct("Error");
        d.field("kind", &i.kind);
        if let Some(s) = i.status {
            d.field("status", &s.as_u16());
        }
        if !i.messages.is_empty() {
            d.field("messages", &i.messages);
        }
        if let Some(c) = &i.code {
            d.field("code", c);
        }
        if let Some(t) = &i.trace_id {
            d.field("trace_id", t);
        }
        if let Some(x) = &i.detail {
            d.field("detail", x);
        }
        if let Some(x) = &i.excerpt {
            d.field("excerpt", x);
        }
        if let Some(r) = &i.rate_limit {
            d.field("rate_limit", r);
        }
        if let Some(u) = &i.unreadable {
            d.field("unreadable", u);
        }
        if let Some(r) = &i.rescued {
            d.field("rescued_refresh_token", r);
        }
        d.finish()
    }
}

impl std::error::Error for Error {}
