//! The functions JavaScript calls, through wasm-bindgen. They copy values
//! between JavaScript and [`crate::shape`]; no I/O, no clock.

use hoopai_oauth::{ApiVersion, Config, TokenRequest, UserType, token_request};
use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use crate::shape::{self, Failure, Shape, Value};

/// One marketplace app's configuration: what every token request needs.
///
/// JavaScript: `new OAuthClient(clientId, clientSecret, baseUrl?, redirectUri?, apiVersion?)`,
/// where `apiVersion` is `"v2"` (the default) or `"v3"`. Throws an
/// `OAuthError` of kind `invalid configuration` for what
/// `hoopai_oauth::ConfigBuilder::build` refuses.
#[wasm_bindgen]
pub struct OAuthClient {
    config: Config,
}

#[wasm_bindgen]
impl OAuthClient {
    /// Builds and checks the configuration.
    ///
    /// # Errors
    /// An `OAuthError` (`invalid configuration`, or `invalid input` for an
    /// unknown `apiVersion`).
    #[wasm_bindgen(constructor)]
    pub fn new(
        client_id: JsValue,
        client_secret: JsValue,
        base_url: JsValue,
        redirect_uri: JsValue,
        api_version: JsValue,
    ) -> Result<OAuthClient, JsValue> {
        let client_id = text(&client_id, "clientId")?;
        let client_secret = text(&client_secret, "clientSecret")?;
        let base_url = optional_text(&base_url, "baseUrl")?;
        let redirect_uri = optional_text(&redirect_uri, "redirectUri")?;
        let api_version = optional_text(&api_version, "apiVersion")?;
        let version = match api_version.as_deref() {
            None | Some("v2") => ApiVersion::V2,
            Some("v3") => ApiVersion::V3,
            Some(other) => {
                return Err(throw(&Failure::Input(format!(
                    "apiVersion must be \"v2\" or \"v3\", not {other:?}"
                ))));
            }
        };
        let mut builder = Config::builder(client_id, client_secret).api_version(version);
        if let Some(url) = base_url {
            builder = builder.base_url(url);
        }
        if let Some(uri) = redirect_uri {
            builder = builder.redirect_uri(uri);
        }
        let config = builder.build().map_err(|e| throw(&e.into()))?;
        Ok(OAuthClient { config })
    }

    /// The API base URL, without a trailing slash.
    #[wasm_bindgen(getter, js_name = baseUrl)]
    #[must_use]
    pub fn base_url(&self) -> String {
        self.config.base_url().to_owned()
    }

    /// The client id (not a secret).
    #[wasm_bindgen(getter, js_name = clientId)]
    #[must_use]
    pub fn client_id(&self) -> String {
        self.config.client_id().to_owned()
    }

    /// `POST /oauth/token` spending `refreshToken`, with `userType`
    /// (`"Company"` or `"Location"`) when given. Returns a `fetch` init:
    /// `{ url, method, headers, redirect: "manual" }` and a non-enumerable
    /// `body` (a `Uint8Array`, holding the client secret and the refresh
    /// token); send it with `fetch(req.url, req)`.
    ///
    /// # Errors
    /// An `OAuthError` of kind `invalid input` (empty token, other user type).
    #[wasm_bindgen(js_name = refreshRequest)]
    pub fn refresh_request(
        &self,
        refresh_token: JsValue,
        user_type: JsValue,
    ) -> Result<Object, JsValue> {
        let token = text(&refresh_token, "refreshToken")?;
        self.request(TokenRequest::refresh_token(token), &user_type)
    }

    /// `POST /oauth/token` exchanging the authorization code of the consent
    /// redirect, with the configured redirect URI. Same shape as
    /// `refreshRequest`.
    ///
    /// # Errors
    /// An `OAuthError` of kind `invalid input` (empty code, other user type).
    #[wasm_bindgen(js_name = codeExchangeRequest)]
    pub fn code_exchange_request(
        &self,
        code: JsValue,
        user_type: JsValue,
    ) -> Result<Object, JsValue> {
        let code = text(&code, "code")?;
        self.request(TokenRequest::authorization_code(code), &user_type)
    }
}

impl OAuthClient {
    fn request(&self, mut request: TokenRequest, user_type: &JsValue) -> Result<Object, JsValue> {
        if let Some(t) = optional_text(user_type, "userType")? {
            request = request.user_type(UserType::parse(&t));
        }
        let built = token_request(&self.config, &request).map_err(|e| throw(&e.into()))?;
        let headers = Array::new();
        for (name, value) in built.headers() {
            let pair = Array::new();
            pair.push(&JsValue::from_str(name.as_str()));
            pair.push(&JsValue::from_str(&String::from_utf8_lossy(
                value.as_bytes(),
            )));
            headers.push(&pair);
        }
        let init = Object::new();
        set(&init, "url", &built.uri().to_string().into())?;
        set(&init, "method", &built.method().as_str().into())?;
        set(&init, "headers", &headers)?;
        // A redirect would carry the form elsewhere; the crate reads a 3xx as
        // the refusal it is.
        set(&init, "redirect", &"manual".into())?;
        hide(&init, "body", &Uint8Array::from(built.body().as_slice()))?;
        Ok(init)
    }
}

/// Parses the answer to a token request: `status` (`res.status`), `headers`
/// (a `Headers`, a `Map`, an array of `[name, value]` pairs or a plain
/// object), `body` (a `Uint8Array` of the whole body) and `sentAtMs`
/// (`Date.now()` taken before sending; expiry counts from then).
///
/// Returns the token's non-secret fields, the two tokens as redactions
/// (`accessTokenRedacted`, `refreshTokenRedacted`), and the tokens themselves
/// as non-enumerable `accessToken` and `refreshToken`, which printing the
/// object never shows.
///
/// # Errors
/// An `OAuthError`, a JavaScript `Error` with `kind` (the stable
/// `ErrorKind::as_str`, e.g. `"invalid grant"` for a spent refresh token),
/// `class`, `transient`, `advice`, and when known `status`, `code`,
/// `messages`, `traceId`, `detail`, `excerpt`, `unreadableReason`; a refresh
/// token found in an otherwise unusable answer is the non-enumerable
/// `rescuedRefreshToken`: persist it, it may be the live one.
#[wasm_bindgen(js_name = parseTokenResponse)]
pub fn parse_token_response(
    status: f64,
    headers: JsValue,
    body: Vec<u8>,
    sent_at_ms: f64,
) -> Result<Object, JsValue> {
    let parsed = header_pairs(&headers)
        .and_then(|pairs| shape::response(status, pairs, body))
        .and_then(|response| Ok((response, shape::instant(sent_at_ms)?)))
        .and_then(|(response, sent_at)| shape::token_set(response, sent_at));
    match parsed {
        Ok(set) => object(&shape::token_shape(&set)),
        Err(failure) => Err(throw(&failure)),
    }
}

/// Redacts a secret the way the crate does: its first four characters and its
/// length (`ab12…(31 chars)`), nothing but the length for eight characters or
/// fewer.
#[wasm_bindgen]
#[must_use]
pub fn redact(value: &str) -> String {
    hoopai_oauth::redact(value)
}

/// The largest answer body the parsers read, in bytes; a larger one is an
/// `unreadable` error. Stop reading a body past this.
#[wasm_bindgen(js_name = maxBodyBytes)]
#[must_use]
pub fn max_body_bytes() -> usize {
    hoopai_oauth::MAX_BODY_BYTES
}

/// A string argument; anything else (`undefined`, a number…) is refused
/// rather than converted, so that no `"undefined"` is ever sent as a token.
fn text(value: &JsValue, name: &str) -> Result<String, JsValue> {
    value
        .as_string()
        .ok_or_else(|| throw(&Failure::Input(format!("{name} must be a string"))))
}

/// An optional string argument: `undefined` and `null` are none.
fn optional_text(value: &JsValue, name: &str) -> Result<Option<String>, JsValue> {
    if value.is_undefined() || value.is_null() {
        Ok(None)
    } else {
        text(value, name).map(Some)
    }
}

/// Reads header pairs from a `Headers`, a `Map`, an array of pairs, or a
/// plain object; `undefined` and `null` are no headers.
fn header_pairs(headers: &JsValue) -> Result<Vec<(String, String)>, Failure> {
    let bad = || {
        Failure::Input(
            "headers must be a Headers, a Map, an array of [name, value] string pairs or an object of strings"
                .to_owned(),
        )
    };
    if headers.is_undefined() || headers.is_null() {
        return Ok(Vec::new());
    }
    let pairs: Vec<JsValue> = match js_sys::try_iter(headers).map_err(|_| bad())? {
        Some(iter) => iter.collect::<Result<_, _>>().map_err(|_| bad())?,
        None if headers.is_object() => Object::entries(headers.unchecked_ref()).to_vec(),
        None => return Err(bad()),
    };
    pairs
        .into_iter()
        .map(|pair| {
            let pair: Array = pair.dyn_into().map_err(|_| bad())?;
            match (
                pair.length(),
                pair.get(0).as_string(),
                pair.get(1).as_string(),
            ) {
                (2, Some(name), Some(value)) => Ok((name, value)),
                _ => Err(bad()),
            }
        })
        .collect()
}

/// A JavaScript object of a shape: shown fields enumerable, secrets not.
fn object(shape: &Shape<'_>) -> Result<Object, JsValue> {
    let obj = Object::new();
    fill(&obj, shape)?;
    Ok(obj)
}

fn fill(obj: &Object, shape: &Shape<'_>) -> Result<(), JsValue> {
    for (name, value) in &shape.shown {
        let v: JsValue = match value {
            Value::Text(s) => s.into(),
            Value::Number(n) => (*n).into(),
            Value::Bool(b) => (*b).into(),
            Value::List(items) => items
                .iter()
                .map(|s| JsValue::from_str(s))
                .collect::<Array>()
                .into(),
        };
        set(obj, name, &v)?;
    }
    for (name, secret) in &shape.secrets {
        hide(obj, name, &JsValue::from_str(secret))?;
    }
    Ok(())
}

/// The JavaScript `Error` thrown for a failure, named `OAuthError`.
fn throw(failure: &Failure) -> JsValue {
    let error = js_sys::Error::new(&failure.message());
    error.set_name("OAuthError");
    match fill(&error, &failure.shape()) {
        Ok(()) => error.into(),
        Err(e) => e,
    }
}

fn set(obj: &Object, name: &str, value: &JsValue) -> Result<(), JsValue> {
    Reflect::set(obj, &JsValue::from_str(name), value).map(drop)
}

/// Defines a read-only, non-enumerable property: read by name, never printed.
fn hide(obj: &Object, name: &str, value: &JsValue) -> Result<(), JsValue> {
    let descriptor = Object::new();
    set(&descriptor, "value", value)?;
    set(&descriptor, "enumerable", &JsValue::FALSE)?;
    set(&descriptor, "writable", &JsValue::FALSE)?;
    Object::define_property(obj, &JsValue::from_str(name), &descriptor);
    Ok(())
}
