//! The app's configuration: client id and secret, redirect URI, hosts and API version.

use http::Uri;

use crate::error::Error;
use crate::secret::ClientSecret;

/// The path of the token endpoint (the same in v2 and v3).
pub const TOKEN_PATH: &str = "/oauth/token";

/// The production API host.
pub const DEFAULT_BASE_URL: &str = "https://services.leadconnectorhq.com";

/// The standard consent page.
pub const DEFAULT_CONSENT_URL: &str = "https://marketplace.gohighlevel.com/v2/oauth/chooselocation";

/// The white-label consent page.
pub const WHITE_LABEL_CONSENT_URL: &str =
    "https://marketplace.leadconnectorhq.com/v2/oauth/chooselocation";

/// Which version of the OAuth API to speak.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[non_exhaustive]
pub enum ApiVersion {
    /// The `2021-07-28` API: snake_case token bodies, `/oauth/locationToken`,
    /// `/oauth/installedLocations` with `skip`/`limit`.
    #[default]
    V2,
    /// The `v3` API: camelCase bodies, `/oauth/location-token`,
    /// `/oauth/installed-locations` with `pageSize`/`pageToken`, AIP errors.
    V3,
}

impl ApiVersion {
    /// The value of the `Version` header.
    #[must_use]
    pub fn header_value(self) -> &'static str {
        match self {
            ApiVersion::V2 => "2021-07-28",
            ApiVersion::V3 => "v3",
        }
    }
}

/// The configuration of one marketplace app. Build it with [`Config::builder`];
/// every check runs then, so a `Config` in hand is valid.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    client_id: String,
    client_secret: ClientSecret,
    redirect_uri: Option<String>,
    base_url: String,
    consent_url: String,
    api_version: ApiVersion,
    /// `base_url` + `/oauth/token`, parsed once.
    token_uri: Uri,
}

impl Config {
    /// Starts a configuration from the app's client id and secret.
    pub fn builder(
        client_id: impl Into<String>,
        client_secret: impl Into<ClientSecret>,
    ) -> ConfigBuilder {
        ConfigBuilder {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uri: None,
            base_url: DEFAULT_BASE_URL.to_owned(),
            consent_url: DEFAULT_CONSENT_URL.to_owned(),
            api_version: ApiVersion::V2,
        }
    }

    /// The client id.
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The app id: the part of the client id before the first `-`.
    #[must_use]
    pub fn app_id(&self) -> &str {
        self.client_id.split('-').next().unwrap_or(&self.client_id)
    }

    /// The client secret.
    #[must_use]
    pub fn client_secret(&self) -> &ClientSecret {
        &self.client_secret
    }

    /// The default redirect URI, if one was set.
    #[must_use]
    pub fn redirect_uri(&self) -> Option<&str> {
        self.redirect_uri.as_deref()
    }

    /// The API base URL, without a trailing slash.
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The consent page URL.
    #[must_use]
    pub fn consent_url(&self) -> &str {
        &self.consent_url
    }

    /// The API version spoken.
    #[must_use]
    pub fn api_version(&self) -> ApiVersion {
        self.api_version
    }

    /// The token endpoint's URI, parsed when the config was built.
    pub(crate) fn token_uri(&self) -> &Uri {
        &self.token_uri
    }

    /// `base_url` joined with `path` (which starts with `/`).
    pub(crate) fn url(&self, path: &str) -> String {
        let mut s = String::with_capacity(self.base_url.len() + path.len());
        s.push_str(&self.base_url);
        s.push_str(path);
        s
    }
}

/// Builds a [`Config`]; see [`Config::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ConfigBuilder {
    client_id: String,
    client_secret: ClientSecret,
    redirect_uri: Option<String>,
    base_url: String,
    consent_url: String,
    api_version: ApiVersion,
}

impl ConfigBuilder {
    /// The redirect URI registered for the app; used by the code exchange and
    /// the consent URL unless they are given another. It must make the round
    /// trip through the consent redirect: an absolute RFC 3986 URI (ASCII; no
    /// fragment; at most [`MAX_REDIRECT_URI_BYTES`]) whose query, if any,
    /// does not already hold `code`, `state`, `error` or `error_description`.
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uri = Some(uri.into());
        self
    }

    /// The API base URL. Any `https` URL; plain `http` only for loopback hosts
    /// (`localhost`, `127.0.0.0/8`, `[::1]`). Defaults to [`DEFAULT_BASE_URL`].
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The consent page. Defaults to [`DEFAULT_CONSENT_URL`]; white-label apps use
    /// [`WHITE_LABEL_CONSENT_URL`]. Same URL rules as the base URL.
    pub fn consent_url(mut self, url: impl Into<String>) -> Self {
        self.consent_url = url.into();
        self
    }

    /// The API version. Defaults to [`ApiVersion::V2`].
    pub fn api_version(mut self, version: ApiVersion) -> Self {
        self.api_version = version;
        self
    }

    /// Checks everything and builds the configuration.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig) for an empty
    /// or blank client id or secret, a redirect URI that could not come back
    /// through the consent redirect (see [`redirect_uri`](Self::redirect_uri)),
    /// or a base or consent URL that is not `https` (or `http` on loopback),
    /// has a query, or does not parse.
    pub fn build(self) -> Result<Config, Error> {
        if self.client_id.trim().is_empty() {
            return Err(Error::config("client id is empty"));
        }
        if self.client_id.chars().any(char::is_whitespace) {
            return Err(Error::config("client id contains whitespace"));
        }
        if self.client_secret.secret().trim().is_empty() {
            return Err(Error::config("client secret is empty"));
        }
        if let Some(uri) = &self.redirect_uri {
            check_redirect_uri(uri).map_err(|why| Error::config(format!("redirect URI {why}")))?;
        }
        let base_url = check_service_url(&self.base_url)
            .map_err(|why| Error::config(format!("base URL {why}")))?;
        let consent_url = check_service_url(&self.consent_url)
            .map_err(|why| Error::config(format!("consent URL {why}")))?;
        let token_uri: Uri = format!("{base_url}{TOKEN_PATH}").parse().map_err(|_| {
            Error::config(format!("base URL {base_url:?} does not form a valid URI"))
        })?;
        Ok(Config {
            token_uri,
            client_id: self.client_id,
            client_secret: self.client_secret,
            redirect_uri: self.redirect_uri,
            base_url,
            consent_url,
            api_version: self.api_version,
        })
    }
}

/// The longest redirect URI the crate takes, in bytes. The redirect that
/// comes back adds the code and the state to it, and [`parse_callback`]
/// reads at most [`MAX_CALLBACK_BYTES`].
///
/// [`parse_callback`]: crate::parse_callback
/// [`MAX_CALLBACK_BYTES`]: crate::MAX_CALLBACK_BYTES
pub const MAX_REDIRECT_URI_BYTES: usize = 2048;

/// The query parameters the consent redirect adds to the redirect URI.
const REDIRECT_PARAMETERS: [&str; 4] = ["code", "state", "error", "error_description"];

/// Checks that a redirect URI makes the round trip: sent in the consent URL,
/// redirected to with `code` and `state` added to its query, and read back by
/// [`parse_callback`](crate::parse_callback). That takes an absolute URI as
/// RFC 6749 §3.1.2 asks (RFC 3986 §4.3):
/// - a scheme, `://` and a non-empty host;
/// - only URI characters: ASCII letters and digits, ``-._~:/?[]@!$&'()*+,;=``,
///   and `%` as the start of a `%XX` escape; so no space, no control
///   character and no non-ASCII character (percent-encode them; write an
///   international host name in punycode);
/// - no fragment (RFC 6749 §3.1.2);
/// - a query, if any, of `name=value` pairs that decode to UTF-8, with no
///   name twice and none of `code`, `state`, `error` and `error_description`
///   (the redirect adds those);
/// - at most [`MAX_REDIRECT_URI_BYTES`].
pub(crate) fn check_redirect_uri(uri: &str) -> Result<(), String> {
    if uri.is_empty() {
        return Err("is empty".into());
    }
    if uri.chars().any(char::is_control) {
        return Err(format!("{uri:?} contains control characters"));
    }
    if uri.len() > MAX_REDIRECT_URI_BYTES {
        return Err(format!(
            "is {} bytes long; at most {MAX_REDIRECT_URI_BYTES} are taken",
            uri.len()
        ));
    }
    let not_absolute = || format!("{uri:?} is not absolute (it needs a scheme and a host)");
    let (scheme, rest) = uri.split_once("://").ok_or_else(not_absolute)?;
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err(not_absolute());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err(not_absolute());
    }
    if let Some(c) = uri.chars().find(|c| !is_uri_char(*c)) {
        return Err(format!(
            "{uri:?} holds {c:?}, which a URI cannot (percent-encode it; write an \
             international host name in punycode)"
        ));
    }
    if uri.contains('#') {
        return Err(format!(
            "{uri:?} has a fragment; a redirect URI must not (RFC 6749 §3.1.2)"
        ));
    }
    let bytes = uri.as_bytes();
    let bad_escape = bytes.iter().enumerate().any(|(i, b)| {
        *b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if bad_escape {
        return Err(format!("{uri:?} has a % that does not start a %XX escape"));
    }
    // What the callback parser reads the redirect with.
    let parsed: Uri = uri
        .parse()
        .map_err(|_| format!("{uri:?} is not a valid URI"))?;
    if parsed.host().is_none_or(str::is_empty) {
        return Err(not_absolute());
    }
    if let Some((_, query)) = uri.split_once('?') {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|_| format!("{uri:?} has a query that cannot be read"))?;
        let mut seen = std::collections::HashSet::with_capacity(pairs.len());
        for (name, value) in &pairs {
            if name.contains(char::REPLACEMENT_CHARACTER)
                || value.contains(char::REPLACEMENT_CHARACTER)
            {
                return Err(format!(
                    "{uri:?} has a query that is not UTF-8 once decoded"
                ));
            }
            if REDIRECT_PARAMETERS.contains(&name.as_str()) {
                return Err(format!(
                    "{uri:?} has a query parameter {name:?}, which the consent redirect adds"
                ));
            }
            if !seen.insert(name.as_str()) {
                return Err(format!(
                    "{uri:?} has the query parameter {name:?} twice; the redirect could \
                     not be read back"
                ));
            }
        }
    }
    Ok(())
}

/// Whether `c` may appear in a URI (RFC 3986 §2: unreserved, reserved, and
/// `%` for escapes).
fn is_uri_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c)
}

/// Checks a service URL and returns it without a trailing slash.
fn check_service_url(url: &str) -> Result<String, String> {
    let parsed: Uri = url
        .parse()
        .map_err(|_| format!("{url:?} is not a valid URL"))?;
    let host = parsed
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("{url:?} has no host"))?;
    match parsed.scheme_str() {
        Some("https") => {}
        Some("http") if is_loopback(host) => {}
        Some("http") => {
            return Err(format!(
                "{url:?} uses plain http on a host that is not loopback; use https"
            ));
        }
        _ => return Err(format!("{url:?} must start with https://")),
    }
    if parsed.query().is_some() || url.contains('#') {
        return Err(format!("{url:?} must not have a query or fragment"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("localhost"));
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("127.9.9.9"));
        assert!(is_loopback("[::1]"));
        assert!(!is_loopback("10.0.0.1"));
        assert!(!is_loopback("localhost.evil.com"));
    }
}
