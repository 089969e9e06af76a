//! Secret newtypes and fingerprints (documented on the crate root).
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

impl RefreshToken {
    /// A short, non-secret name of this token, for logs: see [`Fingerprint`].
    #[must_use]
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self.secret())
    }
}

impl AccessToken {
    /// A short, non-secret name of this token, for logs: see [`Fingerprint`].
    #[must_use]
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self.secret())
    }
}

/// Below this many bytes, a token's [`Fingerprint`] shows only its length.
pub const FINGERPRINT_MIN_LEN: usize = 32;

/// A short, non-secret name of a token, to follow it through logs (which
/// refresh token a request presented, which one a write holds, whether a
/// refresh rotated it) without printing it.
///
/// - What it is: the first 48 bits of SHA-256 over a fixed domain prefix and
///   the token, shown as 12 hex digits (`fp:3fa9c02b41de`). The same token has
///   the same fingerprint in every process and every version of this crate.
/// - What it is not: a secret, or a way to check a token. Anyone can compute
///   the fingerprint of a token they hold, so a fingerprint confirms a guess
///   exactly as well as the guess could be checked otherwise; it hides a token
///   only as well as the token's own randomness does. HighLevel refresh tokens
///   are signed JWTs of about a kilobyte, which no one guesses. A token shorter
///   than [`FINGERPRINT_MIN_LEN`] bytes could come from a small space that a
///   guesser can go through, so its fingerprint shows only its length
///   (`short:9`) and tells such tokens apart by length alone.
/// - 48 bits make two live tokens of one app look alike with odds of about
///   one in 10^14 per pair: fine for logs, not an identity check.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(FingerprintRepr);

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum FingerprintRepr {
    Short(u8),
    Hash([u8; 6]),
}

impl Fingerprint {
    /// The fingerprint of a token's value.
    #[must_use]
    pub fn of(token: &str) -> Self {
        use sha2::{Digest, Sha256};
        if token.len() < FINGERPRINT_MIN_LEN {
            // Below the threshold the length fits in a byte.
            return Fingerprint(FingerprintRepr::Short(token.len() as u8));
        }
        let mut h = Sha256::new();
        h.update(b"hoopai-oauth refresh token fingerprint v1\0");
        h.update(token.as_bytes());
        let digest = h.finalize();
        let mut out = [0u8; 6];
        out.copy_from_slice(&digest[..6]);
        Fingerprint(FingerprintRepr::Hash(out))
    }

    /// Whether the token was too short to be fingerprinted (only its length
    /// is shown).
    #[must_use]
    pub fn is_short(&self) -> bool {
        matches!(self.0, FingerprintRepr::Short(_))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            FingerprintRepr::Short(len) => write!(f, "short:{len}"),
            FingerprintRepr::Hash(h) => {
                f.write_str("fp:")?;
                h.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

secret_type! {
    /// The one-time authorization code from the consent redirect.
    AuthorizationCode
}

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
    fn fingerprints_name_long_tokens_and_only_measure_short_ones() {
        let long = RefreshToken::new("x".repeat(40));
        let other = RefreshToken::new(format!("{}y", "x".repeat(39)));
        let fp = long.fingerprint();
        assert_eq!(fp, Fingerprint::of(&"x".repeat(40)));
        assert_ne!(fp, other.fingerprint());
        let shown = fp.to_string();
        assert!(shown.starts_with("fp:") && shown.len() == 15, "{shown}");
        assert!(!shown.contains("xxxx"));
        let short = RefreshToken::new("refresh-1");
        assert_eq!(short.fingerprint().to_string(), "short:9");
        assert!(short.fingerprint().is_short());
        assert_eq!(format!("{:?}", short.fingerprint()), "Fingerprint(short:9)");
    }

    #[test]
    fn short_and_multibyte_secrets_redact_without_panicking() {
        assert_eq!(redact(""), "…(0 chars)");
        assert_eq!(redact("12345678"), "…(8 chars)");
        assert_eq!(redact("ééééééééé"), "éééé…(9 chars)");
    }

    #[test]
    fn fingerprints_are_pinned_across_versions() {
        // SHA-256 over the domain prefix and the token, first 48 bits; the
        // same value in every version, so logs of old and new processes agree:
        // python3 -c 'import hashlib; print(hashlib.sha256(
        //   b"hoopai-oauth refresh token fingerprint v1\0"
        //   b"refresh-token-placeholder-00000001").hexdigest()[:12])'
        let a = RefreshToken::new("refresh-token-placeholder-00000001");
        assert_eq!(a.fingerprint().to_string(), "fp:47ba74b18753");
        let b = RefreshToken::new("refresh-token-placeholder-00000002");
        assert_ne!(a.fingerprint(), b.fingerprint());
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
