//! The consent step; documented on [`ConsentRequest`].

use std::fmt;

use http::Uri;

use crate::config::{Config, check_redirect_uri};
use crate::error::{Error, ErrorKind};
use crate::scope::Scope;
use crate::secret::{AuthorizationCode, redact};

/// The longest consent redirect [`parse_callback`] reads, in bytes.
pub const MAX_CALLBACK_BYTES: usize = 16 * 1024;

// ---- state ---------------------------------------------------------------------

/// The OAuth `state`: a value the app sends to the consent page and expects back
/// unchanged on the redirect, so that a redirect it did not start is refused.
///
/// The crate never draws randomness. Make a state from random bytes drawn by
/// the caller ([`ConsentState::from_random_bytes`], at least
/// [`MIN_RANDOM_BYTES`](ConsentState::MIN_RANDOM_BYTES)), keep it with the user's
/// session, and restore it with [`ConsentState::new`] when the redirect arrives.
///
/// Comparison ([`ConsentState::matches`], `==`) runs in constant time for equal lengths.
/// `Debug` prints a redaction.
#[derive(Clone)]
pub struct ConsentState(String);

impl ConsentState {
    /// The fewest random bytes [`ConsentState::from_random_bytes`] takes: 16 (128 bits).
    pub const MIN_RANDOM_BYTES: usize = 16;
    /// The most random bytes [`ConsentState::from_random_bytes`] takes: 256.
    pub const MAX_RANDOM_BYTES: usize = 256;
    /// The longest state [`ConsentState::new`] takes, in bytes.
    pub const MAX_LEN: usize = 1024;

    /// Encodes caller-drawn random bytes as unpadded base64url (RFC 4648 §5),
    /// which needs no escaping in a URL.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for fewer than
    /// [`MIN_RANDOM_BYTES`](ConsentState::MIN_RANDOM_BYTES) or more than
    /// [`MAX_RANDOM_BYTES`](ConsentState::MAX_RANDOM_BYTES) bytes.
    pub fn from_random_bytes(bytes: &[u8]) -> Result<ConsentState, Error> {
        if bytes.len() < Self::MIN_RANDOM_BYTES {
            return Err(Error::input(format!(
                "a state needs at least {} random bytes, got {}",
                Self::MIN_RANDOM_BYTES,
                bytes.len()
            )));
        }
        if bytes.len() > Self::MAX_RANDOM_BYTES {
            return Err(Error::input(format!(
                "a state takes at most {} random bytes, got {}",
                Self::MAX_RANDOM_BYTES,
                bytes.len()
            )));
        }
        Ok(ConsentState(base64url(bytes)))
    }

    /// Restores a state kept by the app (or takes one the app made itself).
    ///
    /// Any state it takes comes back unchanged through the consent URL and
    /// [`parse_callback`].
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an empty state, one longer than
    /// [`MAX_LEN`](ConsentState::MAX_LEN), one with a control character, or one
    /// with U+FFFD (the replacement character, which [`parse_callback`]
    /// refuses: it is what a decoder puts for bytes that are not UTF-8).
    pub fn new(value: impl Into<String>) -> Result<ConsentState, Error> {
        let value = value.into();
        if value.is_empty() {
            return Err(Error::input("the state is empty"));
        }
        if value.len() > Self::MAX_LEN {
            return Err(Error::input(format!(
                "the state is {} bytes long; at most {} are allowed",
                value.len(),
                Self::MAX_LEN
            )));
        }
        if value.chars().any(char::is_control) {
            return Err(Error::input("the state holds a control character"));
        }
        if value.contains(char::REPLACEMENT_CHARACTER) {
            return Err(Error::input(
                "the state holds U+FFFD, which a redirect cannot carry back",
            ));
        }
        Ok(ConsentState(value))
    }

    /// The state as sent.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `received` is this state. Constant-time over the bytes when the
    /// lengths are equal (the length is not secret).
    #[must_use]
    pub fn matches(&self, received: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), received.as_bytes())
    }
}

/// Constant-time, like [`ConsentState::matches`].
impl PartialEq for ConsentState {
    fn eq(&self, other: &Self) -> bool {
        self.matches(&other.0)
    }
}

impl Eq for ConsentState {}

impl fmt::Debug for ConsentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConsentState({})", redact(&self.0))
    }
}

/// Equality that takes the same time wherever the first difference is
/// (the `subtle` crate); lengths are not secret.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Unpadded base64url (RFC 4648 §5), by the `base64` crate.
fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

// ---- consent URL ---------------------------------------------------------------------

/// What the app asks for on the consent page. Build the URL with
/// [`consent_url`] and send the user's browser there.
///
/// The consent step: the URL that sends the user to HighLevel's consent page
/// ("choose location"), the CSRF [`ConsentState`], and reading the redirect that comes
/// back into an [`AuthorizationCode`] or a typed error.
///
/// ```
/// use hoopai_oauth::{Config, ConsentRequest, ConsentState, Scope, consent_url, parse_callback};
///
/// let config = Config::builder("6578278e879ad2646715ba9c-lq3w8xd2", "placeholder-secret")
///     .redirect_uri("https://myapp.com/oauth/callback")
///     .build()?;
/// // The caller draws the random bytes; the crate only encodes them.
/// let state = ConsentState::from_random_bytes(&[7; 16])?;
/// let request = ConsentRequest::new([Scope::OAUTH_READONLY, Scope::OAUTH_WRITE]).state(state.clone());
/// let url = consent_url(&config, &request)?;
/// assert!(url.starts_with("https://marketplace.gohighlevel.com/v2/oauth/chooselocation?"));
///
/// // …the browser comes back to the redirect URI:
/// let back = format!("https://myapp.com/oauth/callback?code=placeholder-code&state={}", state.as_str());
/// let code = parse_callback(&back, Some(&state))?;
/// assert_eq!(code.secret(), "placeholder-code");
/// # Ok::<(), hoopai_oauth::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct ConsentRequest {
    scopes: Vec<Scope>,
    state: Option<ConsentState>,
    redirect_uri: Option<String>,
    login_window_self: bool,
    version_id: Option<VersionId>,
}

#[derive(Debug, Clone, PartialEq)]
enum VersionId {
    FromClientId,
    Explicit(String),
}

impl ConsentRequest {
    /// Asks for `scopes` (repeats are sent once, in first-seen order).
    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Self {
        let mut req = ConsentRequest {
            scopes: Vec::new(),
            state: None,
            redirect_uri: None,
            login_window_self: false,
            version_id: None,
        };
        for scope in scopes {
            req = req.scope(scope);
        }
        req
    }

    /// Asks for one more scope.
    pub fn scope(mut self, scope: Scope) -> Self {
        if !self.scopes.contains(&scope) {
            self.scopes.push(scope);
        }
        self
    }

    /// Sends `state`; [`parse_callback`] then insists on getting it back.
    pub fn state(mut self, state: ConsentState) -> Self {
        self.state = Some(state);
        self
    }

    /// A redirect URI other than the config's, under the same rules
    /// ([`ConfigBuilder::redirect_uri`](crate::ConfigBuilder::redirect_uri)),
    /// checked when the URL is built.
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uri = Some(uri.into());
        self
    }

    /// Sends `loginWindowOpenMode=self`: the login opens in the same tab.
    pub fn login_window_self(mut self) -> Self {
        self.login_window_self = true;
        self
    }

    /// Sends `version_id` with the app id taken from the client id (the part
    /// before the first `-`), as marketplace-generated links do.
    pub fn version_id_from_client_id(mut self) -> Self {
        self.version_id = Some(VersionId::FromClientId);
        self
    }

    /// Sends this `version_id` (an app version id).
    pub fn version_id(mut self, version_id: impl Into<String>) -> Self {
        self.version_id = Some(VersionId::Explicit(version_id.into()));
        self
    }

    /// The scopes asked for.
    #[must_use]
    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }

    /// The state sent, to keep for [`parse_callback`].
    #[must_use]
    pub fn sent_state(&self) -> Option<&ConsentState> {
        self.state.as_ref()
    }
}

/// Builds the consent URL: the config's consent page
/// ([`Config::consent_url`]; standard or white-label host, path
/// `/v2/oauth/chooselocation`) with, in this order, `response_type=code`,
/// `client_id`, `redirect_uri`, `scope` (space-joined), then `state`,
/// `loginWindowOpenMode=self` and `version_id` when asked for.
///
/// Values are form-encoded (a space becomes `+`, `/` becomes `%2F`), as the
/// official SDK's `URLSearchParams` does.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] when no scope is asked for, when there is no
/// redirect URI (neither in the request nor in the config) or it could not
/// come back through the redirect (the rules of
/// [`ConfigBuilder::redirect_uri`](crate::ConfigBuilder::redirect_uri)), or
/// for an empty `version_id`. What it builds comes back: the redirect to the
/// redirect URI with the code and the state reads with [`parse_callback`].
pub fn consent_url(config: &Config, req: &ConsentRequest) -> Result<String, Error> {
    if req.scopes.is_empty() {
        return Err(Error::input("the consent request asks for no scope"));
    }
    let redirect = req
        .redirect_uri
        .as_deref()
        .or(config.redirect_uri())
        .ok_or_else(|| {
            Error::input("the consent request needs a redirect URI (in the request or the config)")
        })?;
    check_redirect_uri(redirect).map_err(|why| Error::input(format!("redirect URI {why}")))?;
    let scope = req
        .scopes
        .iter()
        .map(Scope::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    let mut params: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", config.client_id()),
        ("redirect_uri", redirect),
        ("scope", &scope),
    ];
    if let Some(state) = &req.state {
        params.push(("state", state.as_str()));
    }
    if req.login_window_self {
        params.push(("loginWindowOpenMode", "self"));
    }
    let version_id = match &req.version_id {
        None => None,
        Some(VersionId::FromClientId) => Some(config.app_id()),
        Some(VersionId::Explicit(id)) => Some(id.as_str()),
    };
    if let Some(id) = version_id {
        if id.trim().is_empty() {
            return Err(Error::input("the version_id is empty"));
        }
        params.push(("version_id", id));
    }
    let query = serde_urlencoded::to_string(&params)
        .map_err(|e| Error::input(format!("the consent URL could not be encoded: {e}")))?;
    Ok(format!("{}?{query}", config.consent_url()))
}

// ---- callback ------------------------------------------------------------------------

/// Reads the consent redirect: a full URL (`https://app/cb?code=…&state=…`),
/// a path with a query (`/cb?code=…`), or just the query string (with or
/// without the leading `?`). A fragment is ignored.
///
/// Checks, in this order:
/// 1. the input reads as a URL or query and no parameter comes twice
///    (RFC 6749 §3.1), else [`ErrorKind::MalformedCallback`];
/// 2. the state: when `expected_state` is given, the redirect must carry the
///    same state (compared in constant time), else [`ErrorKind::StateMismatch`].
///    An error redirect without any state is let through to step 3: HighLevel
///    does not document echoing the state, and an error grants nothing;
/// 3. an `error` parameter gives [`ErrorKind::ConsentDenied`], with the
///    server's `error` as [`Error::code`] and `error_description` in
///    [`Error::messages`], sanitized;
/// 4. the `code` must be there and non-empty, else
///    [`ErrorKind::MalformedCallback`].
///
/// A state on the redirect when none was sent is ignored. Errors never quote
/// the code or the states.
///
/// # Errors
/// As above.
pub fn parse_callback(
    redirect: &str,
    expected_state: Option<&ConsentState>,
) -> Result<AuthorizationCode, Error> {
    let query = callback_query(redirect)?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| malformed(format!("the query could not be read: {e}")))?;
    // The decoder replaces invalid UTF-8 with U+FFFD; such a code is not the
    // code that was issued.
    if pairs
        .iter()
        .any(|(k, v)| k.contains('\u{FFFD}') || v.contains('\u{FFFD}'))
    {
        return Err(malformed("a parameter is not valid UTF-8 once decoded"));
    }
    let mut seen = std::collections::HashSet::with_capacity(pairs.len());
    for (key, _) in &pairs {
        if !seen.insert(key.as_str()) {
            return Err(malformed(format!(
                "the parameter {:?} comes more than once",
                crate::sanitize::sanitize_message(key)
            )));
        }
    }
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let error = get("error");
    if let Some(expected) = expected_state {
        match get("state") {
            Some(received) if expected.matches(received) => {}
            Some(_) => {
                return Err(Error::new(
                    ErrorKind::StateMismatch,
                    "the state on the redirect is not the one sent",
                ));
            }
            None if error.is_some() => {}
            None => {
                return Err(Error::new(
                    ErrorKind::StateMismatch,
                    "the redirect carries no state although one was sent",
                ));
            }
        }
    }
    if let Some(code) = error {
        let description = get("error_description").into_iter();
        return Err(Error::new(
            ErrorKind::ConsentDenied,
            "the consent redirect carries an error",
        )
        .with_server_text(Some(code), description));
    }
    match get("code") {
        Some(code) if !code.trim().is_empty() => Ok(AuthorizationCode::new(code)),
        Some(_) => Err(malformed("the code on the redirect is empty")),
        None => Err(malformed("the redirect carries no code")),
    }
}

fn malformed(detail: impl Into<String>) -> Error {
    Error::new(ErrorKind::MalformedCallback, detail)
}

/// The query part of a redirect URL, path or bare query.
fn callback_query(redirect: &str) -> Result<&str, Error> {
    if redirect.len() > MAX_CALLBACK_BYTES {
        return Err(malformed(format!(
            "the redirect is {} bytes long; at most {MAX_CALLBACK_BYTES} are read",
            redirect.len()
        )));
    }
    let input = redirect.trim();
    let input = input.split_once('#').map_or(input, |(before, _)| before);
    if input.is_empty() {
        return Err(malformed("the redirect is empty"));
    }
    if let Some(query) = input.strip_prefix('?') {
        return Ok(query);
    }
    if has_scheme(input) || input.starts_with('/') {
        let uri: Uri = input
            .parse()
            .map_err(|_| malformed("the redirect is not a valid URL"))?;
        if has_scheme(input) && uri.host().is_none_or(str::is_empty) {
            return Err(malformed("the redirect URL has no host"));
        }
        // `Uri` keeps the query as a slice of what it parsed; find it in the input.
        return Ok(input.split_once('?').map_or("", |(_, q)| q));
    }
    if input.contains(char::is_whitespace) {
        return Err(malformed("the redirect query holds whitespace"));
    }
    Ok(input)
}

/// Whether `s` starts with `scheme://` (RFC 3986 scheme characters).
fn has_scheme(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        let mut chars = scheme.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_the_rfc_4648_vectors() {
        // RFC 4648 §10, without padding, in the URL-safe alphabet.
        for (input, expected) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64url(input.as_bytes()), expected);
        }
        assert_eq!(base64url(&[0xfb, 0xff, 0xbf]), "-_-_");
    }

    #[test]
    fn constant_time_eq_is_plain_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn schemes() {
        assert!(has_scheme("https://a/b"));
        assert!(has_scheme("com.example.app://cb"));
        assert!(!has_scheme("code=1&next=https://x"));
        assert!(!has_scheme("://x"));
    }
}
