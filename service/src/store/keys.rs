//! The keys that seal grant records at rest: [`RecordKey`] and [`Keyring`].
//!
//! A key is 32 random bytes with a short id. The id is written in front of
//! every record sealed with it, so a keyring holding several keys opens
//! records sealed under any of them, and seals new ones with the newest:
//! keys rotate without downtime (see `docs/encryption-at-rest.md`).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::{Key, XChaCha20Poly1305};
use zeroize::Zeroizing;

/// The environment variable [`Keyring::from_env`] reads.
pub const RECORD_KEYS_VAR: &str = "HOOPAI_RECORD_KEYS";

/// The longest key id, in bytes.
pub const MAX_KEY_ID_LEN: usize = 32;

/// Standard base64, padding optional (`openssl rand -base64 32` pads).
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One sealing key: an id and 32 secret bytes.
///
/// `Debug` shows the id only; the bytes are wiped from memory on drop.
#[derive(Clone)]
pub struct RecordKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl RecordKey {
    /// A key named `id` (1 to [`MAX_KEY_ID_LEN`] bytes of `A-Z a-z 0-9 _ -`)
    /// with the 32 `bytes`, which must come from a cryptographically secure
    /// random source (e.g. `openssl rand -base64 32`).
    ///
    /// # Errors
    /// [`KeyringError::BadKeyId`] if the id is empty, too long or holds
    /// another character.
    pub fn new(id: impl Into<String>, bytes: [u8; 32]) -> Result<Self, KeyringError> {
        let id = id.into();
        check_key_id(&id)?;
        let bytes = Zeroizing::new(bytes);
        let key: &Key = (&*bytes).into();
        Ok(RecordKey {
            id,
            cipher: XChaCha20Poly1305::new(key),
        })
    }

    /// The key id, as written in every record sealed with this key.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn cipher(&self) -> &XChaCha20Poly1305 {
        &self.cipher
    }
}

impl fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordKey")
            .field("id", &self.id)
            .field("key", &"…(32 bytes)")
            .finish()
    }
}

fn check_key_id(id: &str) -> Result<(), KeyringError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(KeyringError::BadKeyId { id: redact_id(id) })
    }
}

/// A key id as shown in an error: at most 40 characters of it.
fn redact_id(id: &str) -> String {
    let n = id.chars().count();
    if n > 40 {
        let head: String = id.chars().take(8).collect();
        format!("{head}…({n} chars)")
    } else {
        id.to_owned()
    }
}

/// The keys a store seals and opens grant records with, newest first.
///
/// - Writes are sealed with the newest key ([`Keyring::newest`]).
/// - Reads open a record sealed under any key of the ring, found by the key
///   id the sealed record names.
///
/// To rotate: put a new key in front (`k2,k1`), restart the processes, run
/// the store's `reseal` (e.g. [`SqliteStore::reseal`](crate::SqliteStore::reseal)),
/// then drop the old key. See `docs/encryption-at-rest.md`.
///
/// `Debug` shows the key ids only. Cheap to clone (shared).
#[derive(Clone)]
pub struct Keyring {
    keys: Arc<[RecordKey]>,
}

impl Keyring {
    /// A keyring of `keys`, newest first.
    ///
    /// # Errors
    /// [`KeyringError::Empty`] without a key; [`KeyringError::DuplicateId`]
    /// if two keys have the same id.
    pub fn new(keys: impl IntoIterator<Item = RecordKey>) -> Result<Self, KeyringError> {
        let keys: Vec<RecordKey> = keys.into_iter().collect();
        if keys.is_empty() {
            return Err(KeyringError::Empty);
        }
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|k| k.id == key.id) {
                return Err(KeyringError::DuplicateId { id: key.id.clone() });
            }
        }
        Ok(Keyring { keys: keys.into() })
    }

    /// Parses the keyring from [`RECORD_KEYS_VAR`] (`HOOPAI_RECORD_KEYS`);
    /// see [`Keyring::parse`] for the form.
    ///
    /// # Errors
    /// [`KeyringError::Unset`] if the variable is unset or not Unicode;
    /// otherwise as [`Keyring::parse`]. No error holds key material.
    pub fn from_env() -> Result<Self, KeyringError> {
        Self::from_env_var(RECORD_KEYS_VAR)
    }

    /// Parses the keyring from the environment variable `var`.
    ///
    /// # Errors
    /// As [`Keyring::from_env`].
    pub fn from_env_var(var: &str) -> Result<Self, KeyringError> {
        let text = std::env::var(var).map_err(|_| KeyringError::Unset {
            var: var.to_owned(),
        })?;
        let text = Zeroizing::new(text);
        Self::parse(&text)
    }

    /// Parses `id:base64key` entries separated by commas, newest first:
    /// `k2:7Jz…=,k1:Qm9…=`. Each key is 32 bytes in standard base64
    /// (padding optional), e.g. from `openssl rand -base64 32`. Spaces
    /// around entries are ignored.
    ///
    /// # Errors
    /// [`KeyringError::BadEntry`] for an entry without `:`;
    /// [`KeyringError::BadKeyId`]; [`KeyringError::BadKey`] if a key is not
    /// base64 of 32 bytes; [`KeyringError::Empty`]; [`KeyringError::DuplicateId`].
    pub fn parse(text: &str) -> Result<Self, KeyringError> {
        let mut keys = Vec::new();
        for (i, entry) in text.split(',').enumerate() {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let Some((id, encoded)) = entry.split_once(':') else {
                return Err(KeyringError::BadEntry { position: i + 1 });
            };
            let id = id.trim();
            check_key_id(id)?;
            let decoded = Zeroizing::new(KEY_BASE64.decode(encoded.trim()).map_err(|_| {
                KeyringError::BadKey {
                    id: id.to_owned(),
                    reason: "not standard base64".to_owned(),
                }
            })?);
            let bytes: [u8; 32] =
                decoded
                    .as_slice()
                    .try_into()
                    .map_err(|_| KeyringError::BadKey {
                        id: id.to_owned(),
                        reason: format!("{} bytes, not 32", decoded.len()),
                    })?;
            keys.push(RecordKey::new(id, bytes)?);
        }
        Self::new(keys)
    }

    /// The key new records are sealed with (the first).
    #[must_use]
    pub fn newest(&self) -> &RecordKey {
        &self.keys[0]
    }

    /// The key named `id`, if the ring holds it.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<&RecordKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// The key ids, newest first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }
}

impl FromStr for Keyring {
    type Err = KeyringError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.ids().collect::<Vec<_>>())
            .finish()
    }
}

/// Why a [`Keyring`] or [`RecordKey`] could not be built. No variant holds
/// key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// The environment variable is unset or not Unicode.
    #[error("{var} is not set (expected `id:base64key,…`, newest first)")]
    Unset {
        /// The variable.
        var: String,
    },
    /// No key given.
    #[error("the keyring holds no key")]
    Empty,
    /// An entry is not `id:base64key`.
    #[error("entry {position} of the keyring is not `id:base64key`")]
    BadEntry {
        /// 1-based position of the entry (comma-separated).
        position: usize,
    },
    /// A key id is empty, longer than [`MAX_KEY_ID_LEN`] bytes, or holds a
    /// character other than `A-Z a-z 0-9 _ -`.
    #[error("key id {id:?} is not 1 to {MAX_KEY_ID_LEN} characters of A-Z a-z 0-9 _ -")]
    BadKeyId {
        /// The id (shortened if long).
        id: String,
    },
    /// A key is not 32 bytes of base64.
    #[error("key {id}: {reason}")]
    BadKey {
        /// The key id.
        id: String,
        /// What is wrong (no key material).
        reason: String,
    },
    /// Two keys share an id.
    #[error("key id {id} appears twice in the keyring")]
    DuplicateId {
        /// The id.
        id: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8";

    #[test]
    fn parses_newest_first() {
        let ring = Keyring::parse(&format!(" k2:{K2} , k1:{K1}")).unwrap();
        assert_eq!(ring.ids().collect::<Vec<_>>(), ["k2", "k1"]);
        assert_eq!(ring.newest().id(), "k2");
        assert!(ring.get("k1").is_some());
        assert!(ring.get("k3").is_none());
    }

    #[test]
    fn refuses_bad_input_without_printing_keys() {
        let cases = [
            (String::new(), KeyringError::Empty),
            (format!("k1{K1}"), KeyringError::BadEntry { position: 1 }),
            (
                format!("k1:{K1},k 2:{K2}"),
                KeyringError::BadKeyId { id: "k 2".into() },
            ),
            (
                format!("k1:{K1},k1:{K2}"),
                KeyringError::DuplicateId { id: "k1".into() },
            ),
            (
                "k1:AAECAw==".to_owned(),
                KeyringError::BadKey {
                    id: "k1".into(),
                    reason: "4 bytes, not 32".into(),
                },
            ),
            (
                "k1:not*base64".to_owned(),
                KeyringError::BadKey {
                    id: "k1".into(),
                    reason: "not standard base64".into(),
                },
            ),
        ];
        for (text, expected) in cases {
            let err = Keyring::parse(&text).unwrap_err();
            assert_eq!(err, expected, "{text}");
            let shown = err.to_string();
            assert!(!shown.contains(K1) && !shown.contains(K2), "{shown}");
        }
        let long = "x".repeat(100);
        let err = RecordKey::new(long, [0; 32]).unwrap_err().to_string();
        assert!(err.contains("xxxxxxxx…(100 chars)"), "{err}");
    }

    #[test]
    fn debug_shows_ids_only() {
        let ring = Keyring::parse(&format!("k2:{K2},k1:{K1}")).unwrap();
        let shown = format!("{ring:?} {:?}", ring.newest());
        assert_eq!(
            shown,
            r#"Keyring { keys: ["k2", "k1"] } RecordKey { id: "k2", key: "…(32 bytes)" }"#
        );
    }
}
