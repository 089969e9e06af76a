//! What JavaScript receives, as plain Rust values, so that the conversion is
//! tested on the host and the JavaScript layer only copies fields.
//!
//! Every object handed to JavaScript has two parts: fields anyone may print
//! ([`Shape::shown`]), and secrets ([`Shape::secrets`]) that the JavaScript
//! layer defines as non-enumerable properties, so that `console.log`,
//! `util.inspect` and `JSON.stringify` never print them while `obj.refreshToken`
//! still reads them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hoopai_oauth::{Error, ErrorClass, ErrorKind, TokenSet};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use zeroize::Zeroizing;

/// One printable value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// A string.
    Text(String),
    /// A number (JavaScript has no other).
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// A list of strings.
    List(Vec<String>),
    /// `[name, value]` pairs (HTTP headers).
    Pairs(Vec<(String, String)>),
    /// `null`.
    Null,
    /// A nested object.
    Object(Shape<'a>),
    /// A list of objects.
    Objects(Vec<Shape<'a>>),
    /// JSON as sent by a server (a webhook's fields kept as they came).
    Json(String),
}

/// A secret value: a borrowed string, one made for JavaScript (wiped when
/// dropped), or bytes (a request body).
#[derive(Clone, PartialEq)]
pub enum Secret<'a> {
    /// Borrowed from its owner.
    Text(&'a str),
    /// Made for JavaScript (a record's JSON); wiped on drop.
    Owned(Zeroizing<String>),
    /// Bytes (a request body holding the client secret or a token).
    Bytes(&'a [u8]),
    /// Header pairs holding a bearer token.
    Pairs(Vec<(String, String)>),
}

impl Secret<'_> {
    /// The secret as text (bytes read as UTF-8, lossily).
    #[must_use]
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Secret::Text(s) => (*s).into(),
            Secret::Owned(s) => s.as_str().into(),
            Secret::Bytes(b) => String::from_utf8_lossy(b),
            Secret::Pairs(pairs) => pairs
                .iter()
                .map(|(n, v)| format!("{n}: {v}\n"))
                .collect::<String>()
                .into(),
        }
    }
}

/// Never prints the secret: its redaction only.
impl std::fmt::Debug for Secret<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hoopai_oauth::redact(&self.text()))
    }
}

/// An object for JavaScript: printable fields, and secrets kept off its
/// printed form.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Shape<'a> {
    /// Field name (camelCase) and value, in order.
    pub shown: Vec<(&'static str, Value<'a>)>,
    /// Field name and secret value; defined as non-enumerable properties.
    pub secrets: Vec<(&'static str, Secret<'a>)>,
}

impl<'a> Shape<'a> {
    /// A shape with a `type` field first.
    #[must_use]
    pub fn typed(name: &str) -> Self {
        let mut s = Shape::default();
        s.text("type", name);
        s
    }

    /// Adds a text field.
    pub fn text(&mut self, name: &'static str, value: impl Into<String>) {
        self.shown.push((name, Value::Text(value.into())));
    }

    /// Adds a text field when there is a value.
    pub fn opt_text(&mut self, name: &'static str, value: Option<&str>) {
        if let Some(v) = value {
            self.text(name, v);
        }
    }

    /// Adds a number field.
    pub fn number(&mut self, name: &'static str, value: f64) {
        self.shown.push((name, Value::Number(value)));
    }

    /// Adds a boolean field.
    pub fn flag(&mut self, name: &'static str, value: bool) {
        self.shown.push((name, Value::Bool(value)));
    }

    /// Adds a time field, in milliseconds since the Unix epoch.
    pub fn time(&mut self, name: &'static str, t: SystemTime) {
        self.number(name, millis(t));
    }

    /// Adds a nested object.
    pub fn object(&mut self, name: &'static str, shape: Shape<'a>) {
        self.shown.push((name, Value::Object(shape)));
    }

    /// Adds a field of any value.
    pub fn value(&mut self, name: &'static str, value: Value<'a>) {
        self.shown.push((name, value));
    }

    /// Adds a secret (non-enumerable) field.
    pub fn secret(&mut self, name: &'static str, secret: Secret<'a>) {
        self.secrets.push((name, secret));
    }

    /// The value of the shown field `name`, if there is one.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Value<'a>> {
        self.shown.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// Why a call from JavaScript failed: the crate's typed error, or input that
/// the JavaScript side passed and that cannot be turned into a request or an
/// answer (reported with the kind [`ErrorKind::InvalidInput`]).
#[derive(Debug)]
pub enum Failure {
    /// The crate's error, from a builder or a parser.
    OAuth(Error),
    /// A value passed from JavaScript was unusable; nothing was built or read.
    Input(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::OAuth(e)
    }
}

impl Failure {
    /// The message of the JavaScript `Error`: the crate's `Display`, which
    /// holds no secret.
    #[must_use]
    pub fn message(&self) -> String {
        match self {
            Failure::OAuth(e) => e.to_string(),
            Failure::Input(why) => format!(
                "{}: {why} — {}",
                ErrorKind::InvalidInput.as_str(),
                ErrorKind::InvalidInput.advice()
            ),
        }
    }

    /// The fields of the thrown error.
    #[must_use]
    pub fn shape(&self) -> Shape<'_> {
        let e = match self {
            Failure::OAuth(e) => e,
            Failure::Input(why) => {
                let mut s = Shape::default();
                let kind = ErrorKind::InvalidInput;
                s.text("kind", kind.as_str());
                s.text("class", class_name(kind.class()));
                s.shown
                    .push(("transient", Value::Bool(kind.is_transient())));
                s.text("advice", kind.advice());
                s.text("detail", why.as_str());
                return s;
            }
        };
        let mut s = error_shape(e);
        if let Some(rt) = e.rescued_refresh_token() {
            s.secret("rescuedRefreshToken", Secret::Text(rt.secret()));
        }
        s
    }
}

/// The fields of the crate's error, without its message: kind, class,
/// whether it is transient, advice, and what the server said. A refresh
/// token rescued from the answer is shown redacted only.
#[must_use]
pub fn error_shape(e: &Error) -> Shape<'static> {
    let mut s = Shape::default();
    {
        s.text("kind", e.kind().as_str());
        s.text("class", class_name(e.class()));
        s.shown
            .push(("transient", Value::Bool(e.kind().is_transient())));
        s.text("advice", e.kind().advice());
        if let Some(status) = e.status() {
            s.shown
                .push(("status", Value::Number(f64::from(status.as_u16()))));
        }
        s.opt_text("code", e.code());
        if !e.messages().is_empty() {
            s.shown
                .push(("messages", Value::List(e.messages().to_vec())));
        }
        s.opt_text("traceId", e.trace_id());
        s.opt_text("detail", e.detail());
        s.opt_text("excerpt", e.excerpt());
        if let Some(why) = e.unreadable_reason() {
            s.text("unreadableReason", unreadable_name(why));
        }
        if let Some(rt) = e.rescued_refresh_token() {
            s.text("rescuedRefreshTokenRedacted", rt.to_string());
        }
    }
    s
}

/// The name of why a body was unreadable, as its Rust variant.
fn unreadable_name(why: hoopai_oauth::Unreadable) -> &'static str {
    use hoopai_oauth::Unreadable;
    match why {
        Unreadable::Empty => "Empty",
        Unreadable::NotJson => "NotJson",
        Unreadable::Truncated => "Truncated",
        Unreadable::TooLarge => "TooLarge",
        Unreadable::UnexpectedShape => "UnexpectedShape",
        _ => "Other",
    }
}

/// A JavaScript number as text, for messages, without the float formatting
/// code (a tenth of the module): whole numbers as integers, up to six
/// decimals otherwise.
#[must_use]
pub fn number_text(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    let sign = if v < 0.0 { "-" } else { "" };
    let a = v.abs();
    if a >= 1e18 {
        return format!("{sign}more than 10^18");
    }
    // Below 10^18: the whole part fits a u64.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let whole = a.trunc() as u64;
    let mut frac = a.fract();
    let mut digits = String::new();
    while frac > 1e-9 && digits.len() < 6 {
        frac *= 10.0;
        // A digit from 0 to 9.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let d = frac.trunc() as u8;
        digits.push(char::from(b'0' + d.min(9)));
        frac = frac.fract();
    }
    let digits = digits.trim_end_matches('0');
    if digits.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{digits}")
    }
}

/// The lowercase name of a class.
fn class_name(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Caller => "caller",
        ErrorClass::Misuse => "misuse",
        ErrorClass::Server => "server",
        ErrorClass::Unreadable => "unreadable",
        ErrorClass::Webhook => "webhook",
        _ => "other",
    }
}

/// The largest time JavaScript's `Date` holds, in milliseconds since the epoch.
const MAX_DATE_MS: f64 = 8.64e15;

/// Milliseconds since the Unix epoch (`Date.now()`) as a `SystemTime`.
///
/// # Errors
/// [`Failure::Input`] for a value that is not a finite number from 0 to
/// JavaScript's largest date.
pub fn instant(ms: f64) -> Result<SystemTime, Failure> {
    if !ms.is_finite() || !(0.0..=MAX_DATE_MS).contains(&ms) {
        return Err(Failure::Input(format!(
            "a time must be milliseconds since the Unix epoch (Date.now()), not {}",
            number_text(ms)
        )));
    }
    // In range and finite: the cast cannot truncate anything but the fraction.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let whole = ms as u64;
    UNIX_EPOCH
        .checked_add(Duration::from_millis(whole))
        .ok_or_else(|| Failure::Input(format!("the time {} is out of range", number_text(ms))))
}

/// A `SystemTime` as milliseconds since the Unix epoch.
#[must_use]
pub fn millis(t: SystemTime) -> f64 {
    // Whole milliseconds up to 8.64e15 are exact in an f64.
    #[allow(clippy::cast_precision_loss)]
    let ms = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as f64;
    ms
}

/// Rebuilds the HTTP answer from what `fetch` gave: the status, the header
/// pairs and the body bytes.
///
/// # Errors
/// [`Failure::Input`] for a status that is not a whole number from 100 to 999,
/// or a header name or value that is not valid HTTP (the value is not echoed:
/// it may be a secret).
pub fn response(
    status: f64,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> Result<Response<Vec<u8>>, Failure> {
    let code = (status.fract() == 0.0 && (100.0..=999.0).contains(&status))
        .then(|| {
            // A whole number from 100 to 999.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let n = status as u16;
            StatusCode::from_u16(n).ok()
        })
        .flatten()
        .ok_or_else(|| {
            Failure::Input(format!(
                "the status must be a whole number from 100 to 999, not {}",
                number_text(status)
            ))
        })?;
    let mut response = Response::new(body);
    *response.status_mut() = code;
    *response.headers_mut() = header_map(headers)?;
    Ok(response)
}

/// Header pairs as a `HeaderMap`, every value kept.
///
/// # Errors
/// [`Failure::Input`] for a header name or value that is not valid HTTP
/// (the value is not echoed: it may be a secret).
pub fn header_map(headers: Vec<(String, String)>) -> Result<HeaderMap, Failure> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Failure::Input(format!("{name:?} is not a valid header name")))?;
        let value = HeaderValue::from_str(&value)
            .map_err(|_| Failure::Input(format!("the value of header {name} is not valid")))?;
        map.append(name, value);
    }
    Ok(map)
}

/// Parses a token answer into the token set obtained at `sent_at` (the time
/// the request was sent: expiry counts from then, the cautious end).
///
/// # Errors
/// As [`hoopai_oauth::parse_token_response`].
pub fn token_set(response: Response<Vec<u8>>, sent_at: SystemTime) -> Result<TokenSet, Failure> {
    let token = hoopai_oauth::parse_token_response(response)?;
    Ok(TokenSet::new(token, sent_at))
}

/// The fields of a parsed token: everything but the two tokens is shown, the
/// tokens themselves as redactions; the tokens are the secrets.
#[must_use]
pub fn token_shape(set: &TokenSet) -> Shape<'_> {
    let t = set.token();
    let mut s = Shape::default();
    s.opt_text("tokenType", t.token_type.as_deref());
    #[allow(clippy::cast_precision_loss)]
    s.shown
        .push(("expiresIn", Value::Number(t.lifetime().as_secs() as f64)));
    s.shown
        .push(("obtainedAtMs", Value::Number(millis(set.obtained_at()))));
    s.shown
        .push(("expiresAtMs", Value::Number(millis(set.expires_at()))));
    s.opt_text("scope", t.scope.as_ref().map(|x| x.as_str()));
    s.opt_text("userType", t.user_type.as_ref().map(|u| u.as_str()));
    s.opt_text("companyId", t.company_id.as_deref());
    s.opt_text("locationId", t.location_id.as_deref());
    if let Some(list) = &t.approved_locations {
        s.shown
            .push(("approvedLocations", Value::List(list.clone())));
    }
    s.opt_text("userId", t.user_id.as_deref());
    s.opt_text("planId", t.plan_id.as_deref());
    s.opt_text("appId", t.app_id.as_deref());
    s.opt_text("versionId", t.version_id.as_deref());
    for (name, flag) in [
        ("isBulkInstallation", &t.is_bulk_installation),
        ("installToFutureLocations", &t.install_to_future_locations),
        ("approveAllLocations", &t.approve_all_locations),
    ] {
        if let Some(b) = flag.as_ref().and_then(|f| f.as_bool()) {
            s.shown.push((name, Value::Bool(b)));
        }
    }
    if !t.extra.is_empty() {
        s.shown.push((
            "extraFields",
            Value::List(t.extra.keys().cloned().collect()),
        ));
    }
    s.text("accessTokenRedacted", t.access_token.to_string());
    s.secret("accessToken", Secret::Text(t.access_token.secret()));
    if let Some(rt) = &t.refresh_token {
        s.text("refreshTokenRedacted", rt.to_string());
        s.secret("refreshToken", Secret::Text(rt.secret()));
    }
    // The whole token set as JSON, for `Engine.insert`: secret, like the
    // tokens in it.
    if let Ok(json) = serde_json::to_string(set) {
        s.secret("tokenSetJson", Secret::Owned(Zeroizing::new(json)));
    }
    s
}

#[cfg(test)]
mod tests;
