//! `OAuthClient` (one app's configuration) and the token requests and
//! answers: what the token-only build holds.

use hoopai_oauth::{ApiVersion, Config, TokenRequest, UserType, token_request};
use js_sys::Object;
use wasm_bindgen::prelude::*;

use super::{check_keys, fetched, get, input_error, object, optional_text, set, text, throw};
use crate::engine_shape;
use crate::shape;

/// One marketplace app's configuration: what every token request needs.
///
/// JavaScript: `new OAuthClient({ clientId, clientSecret, baseUrl?,
/// redirectUri?, consentUrl?, apiVersion? })`, or positionally
/// `new OAuthClient(clientId, clientSecret, baseUrl?, redirectUri?, apiVersion?)`;
/// `apiVersion` is `"v2"` (the default) or `"v3"`. Throws an `OAuthError`
/// of kind `invalid configuration` for what
/// `hoopai_oauth::ConfigBuilder::build` refuses.
#[wasm_bindgen]
pub struct OAuthClient {
    pub(crate) config: Config,
}

/// The options of `new OAuthClient({...})`.
const CLIENT_OPTIONS: [&str; 6] = [
    "clientId",
    "clientSecret",
    "baseUrl",
    "redirectUri",
    "consentUrl",
    "apiVersion",
];

#[wasm_bindgen]
impl OAuthClient {
    /// Builds and checks the configuration.
    ///
    /// # Errors
    /// An `OAuthError` (`invalid configuration`, or `invalid input` for an
    /// unknown `apiVersion` or option).
    #[wasm_bindgen(constructor)]
    pub fn new(
        client_id: JsValue,
        client_secret: JsValue,
        base_url: JsValue,
        redirect_uri: JsValue,
        api_version: JsValue,
    ) -> Result<OAuthClient, JsValue> {
        if client_id.is_object() {
            let options = client_id;
            check_keys(&options, &CLIENT_OPTIONS, "the OAuthClient options")?;
            return Self::build(
                text(&get(&options, "clientId"), "clientId")?,
                text(&get(&options, "clientSecret"), "clientSecret")?,
                optional_text(&get(&options, "baseUrl"), "baseUrl")?,
                optional_text(&get(&options, "redirectUri"), "redirectUri")?,
                optional_text(&get(&options, "consentUrl"), "consentUrl")?,
                optional_text(&get(&options, "apiVersion"), "apiVersion")?,
            );
        }
        Self::build(
            text(&client_id, "clientId")?,
            text(&client_secret, "clientSecret")?,
            optional_text(&base_url, "baseUrl")?,
            optional_text(&redirect_uri, "redirectUri")?,
            None,
            optional_text(&api_version, "apiVersion")?,
        )
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

    /// The app id: the client id before its first `-` (webhooks carry it).
    #[wasm_bindgen(getter, js_name = appId)]
    #[must_use]
    pub fn app_id(&self) -> String {
        self.config.app_id().to_owned()
    }

    /// The configured redirect URI, if any.
    #[wasm_bindgen(getter, js_name = redirectUri)]
    #[must_use]
    pub fn redirect_uri(&self) -> Option<String> {
        self.config.redirect_uri().map(str::to_owned)
    }

    /// `"v2"` or `"v3"`.
    #[wasm_bindgen(getter, js_name = apiVersion)]
    #[must_use]
    pub fn api_version(&self) -> String {
        match self.config.api_version() {
            ApiVersion::V3 => "v3".to_owned(),
            _ => "v2".to_owned(),
        }
    }

    /// What `JSON.stringify` shows: ids and hosts; the secret redacted.
    #[wasm_bindgen(js_name = toJSON)]
    #[must_use]
    pub fn to_json(&self) -> Object {
        let o = Object::new();
        let secret = hoopai_oauth::redact(self.config.client_secret().secret());
        for (name, value) in [
            ("clientId", self.client_id()),
            ("baseUrl", self.base_url()),
            ("apiVersion", self.api_version()),
            ("clientSecret", secret),
        ] {
            let _ = set(&o, name, &value.into());
        }
        o
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
    fn build(
        client_id: String,
        client_secret: String,
        base_url: Option<String>,
        redirect_uri: Option<String>,
        consent_url: Option<String>,
        api_version: Option<String>,
    ) -> Result<OAuthClient, JsValue> {
        let version = match api_version.as_deref() {
            None | Some("v2") => ApiVersion::V2,
            Some("v3") => ApiVersion::V3,
            Some(other) => {
                return Err(input_error(format!(
                    "apiVersion must be \"v2\" or \"v3\", not {other:?}"
                )));
            }
        };
        let mut builder = Config::builder(client_id, client_secret).api_version(version);
        if let Some(url) = base_url {
            builder = builder.base_url(url);
        }
        if let Some(uri) = redirect_uri {
            builder = builder.redirect_uri(uri);
        }
        if let Some(url) = consent_url {
            builder = builder.consent_url(url);
        }
        let config = builder.build().map_err(|e| throw(&e.into()))?;
        Ok(OAuthClient { config })
    }

    fn request(&self, mut request: TokenRequest, user_type: &JsValue) -> Result<Object, JsValue> {
        if let Some(t) = optional_text(user_type, "userType")? {
            request = request.user_type(UserType::parse(&t));
        }
        let built = token_request(&self.config, &request).map_err(|e| throw(&e.into()))?;
        object(&engine_shape::request(&built))
    }
}

/// Parses the answer to a token request: `status` (`res.status`), `headers`
/// (a `Headers`, a `Map`, an array of `[name, value]` pairs or a plain
/// object), `body` (a `Uint8Array` of the whole body) and `sentAtMs`
/// (`Date.now()` taken before sending; expiry counts from then).
///
/// Returns the token's non-secret fields, the two tokens as redactions
/// (`accessTokenRedacted`, `refreshTokenRedacted`), and as non-enumerable
/// properties the tokens themselves (`accessToken`, `refreshToken`) and the
/// whole token set as JSON (`tokenSetJson`, for `Engine.insert`), which
/// printing the object never shows.
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
    let response = fetched(status, &headers, body)?;
    let sent_at = super::time(sent_at_ms)?;
    match shape::token_set(response, sent_at) {
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
