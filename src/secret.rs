//! Secret newtypes: the client secret, access and refresh tokens, and the
//! authorization code.
//!
//! Each one:
//! - prints a redaction from `Debug` and `Display` (`ab12…(31 chars)`),
//! - hands its value out only through an explicit [`secret()`](ClientSecret::secret) call,
//! - is zeroized when dropped,
//! - serializes as its plain value, so a token set can be persisted. Treat the
//!   serialized form as the secret it is.
//!
//! Access and refresh tokens also have a [`fingerprint`](RefreshToken::fingerprint):
//! a short, stable, non-secret digest for telling tokens apart in logs.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroize;

/// How many leading characters a redaction shows.
const SHOWN: usize = 4;

/// Redacts a secret for display: the first few characters, then the length.
///
/// Values of eight characters or fewer show nothing but their length, so a
/// short secret is never mostly revealed.
///
/// ```
/// assert_eq!(hoopai_oauth::redact("ab12dc0ae1234a7898f9ff06d4f69gh"), "ab12…(31 chars)");
/// assert_eq!(hoopai_oauth::redact("short"), "…(5 chars)");
/// ```
pub fn redact(value: &str) -> String {
    let count = value.chars().count();
    if count <= 2 * SHOWN {
        format!("…({count} chars)")
    } else {
        let head: String = value.chars().take(SHOWN).collect();
        format!("{head}…({count} chars)")
    }
}

/// How many hex digits a [fingerprint](RefreshToken::fingerprint) has (32 bits).
pub const FINGERPRINT_HEX_DIGITS: usize = 8;

/// The first [`FINGERPRINT_HEX_DIGITS`] lowercase hex digits of SHA-256 over
/// `value`'s UTF-8 bytes.
fn fingerprint_of(value: &str) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write;
    let digest = Sha256::digest(value.as_bytes());
    let mut out = String::with_capacity(FINGERPRINT_HEX_DIGITS);
    for byte in &digest[..FINGERPRINT_HEX_DIGITS / 2] {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Adds `fingerprint()` to a token type.
macro_rules! fingerprinted {
    ($name:ident, $example:literal, $digest:literal) => {
        impl $name {
            /// A short fingerprint of the token, for telling tokens apart in
            /// logs and output: the first 8 lowercase hex digits (32 bits) of
            /// SHA-256 over the token's UTF-8 bytes. It is stable across
            /// versions and platforms, so a shell gives the same value:
            /// `printf %s "$TOKEN" | sha256sum | cut -c1-8`.
            ///
            /// **Not a secret**, and safe to print: a 32-bit digest of a
            /// high-entropy token (HighLevel's are 31 characters or more)
            /// cannot be turned back into the token, and many tokens share
            /// each fingerprint. It identifies, it does not authenticate:
            /// equal fingerprints mean "very likely the same token", different
            /// ones mean "different tokens" (e.g. a refresh token rotated).
            ///
            /// ```
            #[doc = concat!("let token = hoopai_oauth::", stringify!($name), "::new(\"", $example, "\");")]
            #[doc = concat!("assert_eq!(token.fingerprint(), \"", $digest, "\");")]
            /// ```
            #[must_use]
            pub fn fingerprint(&self) -> String {
                fingerprint_of(&self.0)
            }
        }
    };
}

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// Wraps a value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret value itself. Every read of a secret goes through here,
            /// so each one is easy to find in review.
            #[must_use]
            pub fn secret(&self) -> &str {
                &self.0
            }

            /// Whether the value is empty.
            #[must_use]
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }

            /// The length of the value in bytes.
            #[must_use]
            pub fn len(&self) -> usize {
                self.0.len()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), redact(&self.0))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&redact(&self.0))
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                self.0.zeroize();
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map(Self)
            }
        }
    };
}

secret_type! {
    /// The OAuth client secret of a marketplace app.
    ClientSecret
}

secret_type! {
    /// A bearer access token (about a day long-lived).
    AccessToken
}

secret_type! {
    /// A refresh token. Single-use: the newest one *is* the installation.
    RefreshToken
}

secret_type! {
    /// The one-time authorization code from the consent redirect.
    AuthorizationCode
}

// The examples are the HoopAI page's tokens; the digests are what
// `printf %s TOKEN | sha256sum | cut -c1-8` prints.
fingerprinted!(AccessToken, "ab12dc0ae1234a7898f9ff06d4f69gh", "e2220a86");
fingerprinted!(RefreshToken, "xy34dc0ae1234a4858f9ff06d4f66ba", "f0135c72");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_shows_prefix_and_length_only() {
        let token = RefreshToken::new("xy34dc0ae1234a4858f9ff06d4f66ba");
        assert_eq!(format!("{token:?}"), "RefreshToken(xy34…(31 chars))");
        assert_eq!(token.to_string(), "xy34…(31 chars)");
        assert_eq!(token.secret(), "xy34dc0ae1234a4858f9ff06d4f66ba");
    }

    #[test]
    fn short_and_multibyte_secrets_redact_without_panicking() {
        assert_eq!(redact(""), "…(0 chars)");
        assert_eq!(redact("12345678"), "…(8 chars)");
        assert_eq!(redact("ééééééééé"), "éééé…(9 chars)");
    }

    #[test]
    fn fingerprints_tell_tokens_apart_and_show_nothing_of_them() {
        // SHA-256 test vector (FIPS 180-2): "abc" hashes to ba7816bf….
        assert_eq!(RefreshToken::new("abc").fingerprint(), "ba7816bf");
        assert_eq!(AccessToken::new("").fingerprint(), "e3b0c442");
        let a = RefreshToken::new("refresh-token-placeholder-00000001");
        let b = RefreshToken::new("refresh-token-placeholder-00000002");
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint(), a.clone().fingerprint());
        for t in [&a, &b] {
            let f = t.fingerprint();
            assert_eq!(f.len(), FINGERPRINT_HEX_DIGITS);
            assert!(f.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')), "{f}");
        }
        // The same bytes give the same fingerprint whatever the token type.
        assert_eq!(AccessToken::new(a.secret()).fingerprint(), a.fingerprint());
    }

    #[test]
    fn serde_keeps_the_plain_value() {
        let secret = ClientSecret::new("s3cr3t value");
        let json = serde_json::to_string(&secret).unwrap();
        assert_eq!(json, "\"s3cr3t value\"");
        let back: ClientSecret = serde_json::from_str(&json).unwrap();
        assert_eq!(back, secret);
    }
}
