//! The OAuth `state`, bound to the browser that started the install, with
//! nothing kept on the server.
//!
//! `/install` draws a nonce (16 random bytes from the OS), sends it to the
//! consent page as the `state`, and sets a cookie on the same redirect that
//! holds the nonce and an expiry, signed with HMAC-SHA256 ([`cookie`]'s
//! signed jar) under the app's [`StateKey`]. `/callback` accepts a `state`
//! only with a cookie that verifies under that key, has not expired, and
//! holds the same nonce (compared in constant time). A state minted by one
//! browser is therefore refused in any other, and a flood of `/install`
//! fills no server-side table: there is none.
//!
//! The cookie:
//!
//! | Attribute | Value |
//! |---|---|
//! | name | `__Host-hoopai_oauth_state` (`hoopai_oauth_state` on loopback `http`) |
//! | `HttpOnly` | always |
//! | `Secure` | unless the redirect URI is `http` on a loopback host |
//! | `SameSite` | `Lax` (sent on the top-level redirect back from the consent page) |
//! | `Path` | `/` (required by the `__Host-` prefix); the redirect URI's path on loopback `http` |
//! | `Max-Age` | the state's lifetime (default 10 min), also checked on the server from the signed expiry |
//!
//! The `__Host-` prefix makes browsers refuse the cookie from a sibling
//! subdomain, so another site under the same parent domain cannot plant a
//! state of its own. A successful callback clears the cookie, so the same
//! redirect replayed in the browser is refused; the authorization code is
//! single-use at HighLevel too.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, CookieJar, Key, SameSite};
use hoopai_oauth::ConsentState;
use subtle::ConstantTimeEq;

use crate::errors::ServiceError;

/// The key that signs the state cookies: at least 64 random bytes.
///
/// Every process behind one callback URL must use the same key (a state
/// started on one must verify on another); the default, drawn at random when
/// the router is built, only suits one process, and states started before a
/// restart are then refused (the user starts the install again).
#[derive(Clone)]
pub struct StateKey(Key);

impl StateKey {
    /// The key of `secret`: at least 64 bytes, drawn at random and kept
    /// secret (e.g. `openssl rand -base64 64`, decoded).
    ///
    /// # Errors
    /// [`ServiceError::InvalidInput`] for fewer than 64 bytes.
    pub fn from_secret(secret: &[u8]) -> Result<StateKey, ServiceError> {
        Key::try_from(secret).map(StateKey).map_err(|_| {
            ServiceError::InvalidInput(format!(
                "a state key needs at least 64 random bytes, got {}",
                secret.len()
            ))
        })
    }

    /// A fresh key from the OS's randomness.
    ///
    /// # Errors
    /// [`ServiceError::InvalidInput`] when the OS gave no randomness.
    pub fn generate() -> Result<StateKey, ServiceError> {
        let mut bytes = [0u8; 64];
        getrandom::fill(&mut bytes)
            .map_err(|e| ServiceError::InvalidInput(format!("no randomness: {e}")))?;
        Self::from_secret(&bytes)
    }
}

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(…)")
    }
}

/// Why a callback's state was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// No state cookie came with it.
    NoCookie,
    /// A cookie came, but none verifies under the key, holds this state and
    /// is unexpired.
    Mismatch,
}

/// How states are bound: the key, the cookie's name and attributes.
#[derive(Clone, Debug)]
pub(crate) struct Binding {
    key: StateKey,
    ttl: Duration,
    secure: bool,
    path: String,
}

impl Binding {
    /// A binding for states that live `ttl`, for the callback at
    /// `redirect_uri` (which decides `Secure` and the path).
    pub(crate) fn new(key: StateKey, ttl: Duration, redirect_uri: Option<&str>) -> Self {
        let (secure, path) = match redirect_uri.and_then(|u| u.parse::<axum::http::Uri>().ok()) {
            Some(uri) if uri.scheme_str() == Some("http") && is_loopback(uri.host()) => {
                (false, uri.path().to_owned())
            }
            Some(uri) => {
                if uri.scheme_str() != Some("https") {
                    tracing::warn!(
                        "the redirect URI is not https: browsers will not keep the Secure state \
                         cookie, and every callback with a state will be refused"
                    );
                }
                (true, "/".to_owned())
            }
            None => (true, "/".to_owned()),
        };
        Binding {
            key,
            ttl,
            secure,
            path,
        }
    }

    fn name(&self) -> &'static str {
        if self.secure {
            "__Host-hoopai_oauth_state"
        } else {
            "hoopai_oauth_state"
        }
    }

    fn cookie(&self, value: String, max_age: Duration) -> Cookie<'static> {
        Cookie::build((self.name(), value))
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .path(self.path.clone())
            .max_age(cookie::time::Duration::seconds(
                i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
            ))
            .build()
    }

    /// A new state, and the `Set-Cookie` value that binds it to the browser,
    /// at `now`, from 16 `random` bytes.
    pub(crate) fn mint(
        &self,
        random: &[u8; 16],
        now: SystemTime,
    ) -> Result<(ConsentState, HeaderValue), String> {
        let state = ConsentState::from_random_bytes(random).map_err(|e| e.to_string())?;
        let expires = unix(now).saturating_add(self.ttl.as_secs());
        let mut jar = CookieJar::new();
        jar.signed_mut(&self.key.0)
            .add(self.cookie(format!("{}.{expires}", state.as_str()), self.ttl));
        let set = jar
            .delta()
            .next()
            .map(ToString::to_string)
            .unwrap_or_default();
        let value = HeaderValue::from_str(&set)
            .map_err(|_| "the state cookie is not a header value".to_owned())?;
        Ok((state, value))
    }

    /// Checks that the request carries a cookie binding `state` at `now`.
    pub(crate) fn check(
        &self,
        headers: &HeaderMap,
        state: &str,
        now: SystemTime,
    ) -> Result<(), Refused> {
        let jar = CookieJar::new();
        let signed = jar.signed(&self.key.0);
        let mut seen = false;
        let mut ok = false;
        for value in headers.get_all(header::COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            for cookie in Cookie::split_parse(value).flatten() {
                if cookie.name() != self.name() {
                    continue;
                }
                seen = true;
                let Some(verified) = signed.verify(cookie.into_owned()) else {
                    continue;
                };
                let Some((nonce, expires)) = verified.value().rsplit_once('.') else {
                    continue;
                };
                let fresh = expires.parse::<u64>().is_ok_and(|e| unix(now) < e);
                let same = nonce.len() == state.len()
                    && bool::from(nonce.as_bytes().ct_eq(state.as_bytes()));
                ok |= fresh && same;
            }
        }
        match (seen, ok) {
            (_, true) => Ok(()),
            (false, false) => Err(Refused::NoCookie),
            (true, false) => Err(Refused::Mismatch),
        }
    }

    /// The `Set-Cookie` value that clears the state cookie.
    pub(crate) fn clear(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&self.cookie(String::new(), Duration::ZERO).to_string()).ok()
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn is_loopback(host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(uri: &str) -> Binding {
        Binding::new(
            StateKey::from_secret(&[7; 64]).unwrap(),
            Duration::from_secs(600),
            Some(uri),
        )
    }

    fn cookie_header(set: &HeaderValue) -> HeaderMap {
        let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, pair.parse().unwrap());
        headers
    }

    #[test]
    fn a_minted_state_verifies_only_with_its_cookie_and_in_time() {
        let b = binding("https://app.example/oauth/callback");
        let now = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let (state, set) = b.mint(&[1; 16], now).unwrap();
        let text = set.to_str().unwrap();
        assert!(text.starts_with("__Host-hoopai_oauth_state="), "{text}");
        for attribute in [
            "HttpOnly",
            "Secure",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=600",
        ] {
            assert!(text.contains(attribute), "{attribute} in {text}");
        }
        let headers = cookie_header(&set);
        assert_eq!(b.check(&headers, state.as_str(), now), Ok(()));
        let late = now + Duration::from_secs(600);
        assert_eq!(
            b.check(&headers, state.as_str(), late),
            Err(Refused::Mismatch)
        );
        let (other, _) = b.mint(&[2; 16], now).unwrap();
        assert_eq!(
            b.check(&headers, other.as_str(), now),
            Err(Refused::Mismatch)
        );
        assert_eq!(
            b.check(&HeaderMap::new(), state.as_str(), now),
            Err(Refused::NoCookie)
        );
        // Signed under another key: refused.
        let stranger = Binding::new(
            StateKey::from_secret(&[8; 64]).unwrap(),
            Duration::from_secs(600),
            Some("https://app.example/oauth/callback"),
        );
        assert_eq!(
            stranger.check(&headers, state.as_str(), now),
            Err(Refused::Mismatch)
        );
        // A cookie edited by hand (a later expiry) does not verify.
        let forged = headers[header::COOKIE]
            .to_str()
            .unwrap()
            .replace(&format!(".{}", 1_767_225_600 + 600), ".9999999999");
        let mut forged_headers = HeaderMap::new();
        forged_headers.insert(header::COOKIE, forged.parse().unwrap());
        assert_eq!(
            b.check(&forged_headers, state.as_str(), late),
            Err(Refused::Mismatch)
        );
    }

    #[test]
    fn loopback_http_gets_a_plain_cookie_on_the_callback_path() {
        let b = binding("http://127.0.0.1:3000/oauth/callback");
        let (_, set) = b.mint(&[1; 16], UNIX_EPOCH).unwrap();
        let text = set.to_str().unwrap();
        assert!(text.starts_with("hoopai_oauth_state="), "{text}");
        assert!(!text.contains("Secure"), "{text}");
        assert!(text.contains("Path=/oauth/callback"), "{text}");
        let cleared = b.clear().unwrap();
        assert!(cleared.to_str().unwrap().contains("Max-Age=0"));
        assert!(StateKey::from_secret(&[0; 63]).is_err());
        assert_eq!(
            format!("{:?}", StateKey::generate().unwrap()),
            "StateKey(…)"
        );
    }
}
