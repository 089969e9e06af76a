//! Sealed records: the envelope every store writes when it holds a
//! [`Keyring`], and the codec that reads plain and sealed rows alike.
//!
//! A sealed row's `record` column is text:
//!
//! ```text
//! hoopai-sealed:1:<key id>:<base64 (standard, unpadded) of nonce ‖ ciphertext ‖ tag>
//! ```
//!
//! - XChaCha20-Poly1305 (RFC 8439 with the extended 24-byte nonce), a fresh
//!   random nonce from the operating system for every write;
//! - the plaintext is the record's JSON, as a store without keys writes it;
//! - the associated data is the header (`hoopai-sealed:1:<key id>:`), then
//!   the row's version as 8 bytes big-endian, then the grant id: a sealed
//!   record moved to another row or another version does not open.
//!
//! Plain JSON rows (written without keys, or by earlier versions) start
//! with `{` and are read as before. See `docs/encryption-at-rest.md`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use chacha20poly1305::XNonce;
use chacha20poly1305::aead::{Aead, Payload};
use hoopai_oauth::{GrantId, GrantRecord};
use zeroize::Zeroizing;

use super::keys::{Keyring, RecordKey};
use super::{CorruptRecord, StoreError, decode_json, encode_json};

/// What every sealed record starts with; the envelope version follows.
pub const SEALED_PREFIX: &str = "hoopai-sealed:";

/// The envelope version this build writes and reads.
const ENVELOPE_VERSION: &str = "1";

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Why a sealed record could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealErrorKind {
    /// The record names a key id the keyring does not hold (or the store
    /// has no keyring).
    UnknownKey,
    /// The key is held, but the record does not authenticate under it and
    /// its row: the ciphertext, the key id, the grant id or the version
    /// column was changed, or the key bytes under that id are not the ones
    /// it was sealed with.
    Tampered,
    /// Not a sealed record this build can read: a later envelope version,
    /// a missing part, bad base64, or too short.
    Malformed,
}

/// A sealed record that cannot be opened: it names the grant and, when the
/// envelope is readable, the key id. Stores report it like a corrupt row
/// (it never stops a restore) and never overwrite it unless a
/// compare-and-swap names its exact version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealError {
    /// The grant (the row's key).
    pub grant: GrantId,
    /// The row's version column, if readable.
    pub version: Option<u64>,
    /// The key id the record names, if the envelope is readable.
    pub key_id: Option<String>,
    /// What went wrong.
    pub kind: SealErrorKind,
    detail: String,
}

impl SealError {
    fn new(
        grant: &str,
        version: Option<u64>,
        key_id: Option<&str>,
        kind: SealErrorKind,
        detail: impl Into<String>,
    ) -> Self {
        SealError {
            grant: GrantId::new(grant),
            version,
            key_id: key_id.map(str::to_owned),
            kind,
            detail: detail.into(),
        }
    }

    /// What is wrong, without the grant: the `reason` of the
    /// [`CorruptRecord`] a page reports for it.
    #[must_use]
    pub fn reason(&self) -> String {
        self.detail.clone()
    }
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the sealed record of grant {} cannot be opened: {}",
            super::GrantName(self.grant.as_str()),
            self.detail
        )
    }
}

impl std::error::Error for SealError {}

impl From<SealError> for CorruptRecord {
    fn from(e: SealError) -> Self {
        CorruptRecord {
            reason: e.reason(),
            grant: e.grant,
            version: e.version,
        }
    }
}

/// A row that is not a readable record.
#[derive(Debug)]
pub(crate) enum Unreadable {
    Corrupt(CorruptRecord),
    Sealed(SealError),
}

impl From<Unreadable> for StoreError {
    fn from(u: Unreadable) -> Self {
        match u {
            Unreadable::Corrupt(c) => StoreError::Corrupt(c),
            Unreadable::Sealed(s) => StoreError::Sealed(s),
        }
    }
}

impl From<Unreadable> for CorruptRecord {
    fn from(u: Unreadable) -> Self {
        match u {
            Unreadable::Corrupt(c) => c,
            Unreadable::Sealed(s) => s.into(),
        }
    }
}

/// How a store encodes and decodes its rows: plain JSON, or sealed under a
/// keyring. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Codec {
    keys: Option<Keyring>,
    write_plain: bool,
}

impl Codec {
    pub(crate) fn new(keys: Option<Keyring>, seal_writes: bool) -> Self {
        Codec {
            keys,
            write_plain: !seal_writes,
        }
    }

    /// The same keys; writes sealed or plain.
    pub(crate) fn with_seal_writes(mut self, seal: bool) -> Self {
        self.write_plain = !seal;
        self
    }

    /// The key writes are sealed with, if any.
    fn sealing_key(&self) -> Option<&RecordKey> {
        match (&self.keys, self.write_plain) {
            (Some(keys), false) => Some(keys.newest()),
            _ => None,
        }
    }

    /// The record as this store writes it.
    pub(crate) fn encode(&self, record: &GrantRecord) -> Result<String, StoreError> {
        let json = Zeroizing::new(encode_json(record)?);
        match self.sealing_key() {
            None => Ok(json.to_string()),
            Some(key) => seal(key, &record.grant, record.version, json.as_bytes()),
        }
    }

    /// A readable row's text as this store writes it now: the same
    /// plaintext, byte for byte (fields this build does not know are
    /// kept), sealed under the newest key or plain.
    pub(crate) fn rewrite(
        &self,
        grant: &str,
        version: u64,
        text: &str,
    ) -> Result<String, Unreadable> {
        let plain = if text.starts_with(SEALED_PREFIX) {
            open(self.keys.as_ref(), grant, Some(version), text).map_err(Unreadable::Sealed)?
        } else {
            Zeroizing::new(text.as_bytes().to_vec())
        };
        let json = std::str::from_utf8(&plain).map_err(|_| not_utf8(grant, Some(version)))?;
        decode_json(grant, Some(version), json).map_err(Unreadable::Corrupt)?;
        match self.sealing_key() {
            None => Ok(json.to_owned()),
            Some(key) => seal(key, &GrantId::new(grant), version, &plain).map_err(|e| {
                Unreadable::Corrupt(CorruptRecord {
                    grant: GrantId::new(grant),
                    version: Some(version),
                    reason: e.to_string(),
                })
            }),
        }
    }

    /// Reads a stored row: sealed or plain, it must be a record of this
    /// schema, of this grant, at the row's version.
    pub(crate) fn decode(
        &self,
        grant: &str,
        version: Option<u64>,
        text: &str,
    ) -> Result<GrantRecord, Unreadable> {
        if !text.starts_with(SEALED_PREFIX) {
            return decode_json(grant, version, text).map_err(Unreadable::Corrupt);
        }
        let plain = open(self.keys.as_ref(), grant, version, text).map_err(Unreadable::Sealed)?;
        let json = std::str::from_utf8(&plain).map_err(|_| not_utf8(grant, version))?;
        decode_json(grant, version, json).map_err(Unreadable::Corrupt)
    }

    /// Whether `text` is already as this store would write it now (sealed
    /// under the newest key, or plain when writes are plain): what
    /// `reseal` leaves alone.
    pub(crate) fn is_current(&self, text: &str) -> bool {
        match self.sealing_key() {
            None => !text.starts_with(SEALED_PREFIX),
            Some(key) => text
                .strip_prefix(SEALED_PREFIX)
                .and_then(|rest| rest.strip_prefix(ENVELOPE_VERSION))
                .and_then(|rest| rest.strip_prefix(':'))
                .and_then(|rest| rest.strip_prefix(key.id()))
                .is_some_and(|rest| rest.starts_with(':')),
        }
    }
}

fn not_utf8(grant: &str, version: Option<u64>) -> Unreadable {
    Unreadable::Corrupt(CorruptRecord {
        grant: GrantId::new(grant),
        version,
        reason: "the sealed record is not UTF-8 text".to_owned(),
    })
}

/// `hoopai-sealed:1:<key id>:`
fn header(key_id: &str) -> String {
    format!("{SEALED_PREFIX}{ENVELOPE_VERSION}:{key_id}:")
}

fn associated_data(header: &str, grant: &str, version: u64) -> Vec<u8> {
    let mut ad = Vec::with_capacity(header.len() + 8 + grant.len());
    ad.extend_from_slice(header.as_bytes());
    ad.extend_from_slice(&version.to_be_bytes());
    ad.extend_from_slice(grant.as_bytes());
    ad
}

fn seal(
    key: &RecordKey,
    grant: &GrantId,
    version: u64,
    plain: &[u8],
) -> Result<String, StoreError> {
    let refuse = |reason: String| StoreError::InvalidWrite {
        grant: grant.clone(),
        reason,
    };
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)
        .map_err(|e| refuse(format!("no random nonce from the operating system: {e}")))?;
    let nonce = XNonce::from(nonce);
    let header = header(key.id());
    let ad = associated_data(&header, grant.as_str(), version);
    let sealed = key
        .cipher()
        .encrypt(
            &nonce,
            Payload {
                msg: plain,
                aad: &ad,
            },
        )
        .map_err(|_| refuse("the record could not be sealed".to_owned()))?;
    let mut body = Vec::with_capacity(NONCE_LEN + sealed.len());
    body.extend_from_slice(&nonce);
    body.extend_from_slice(&sealed);
    let mut out = header;
    STANDARD_NO_PAD.encode_string(&body, &mut out);
    Ok(out)
}

fn open(
    keys: Option<&Keyring>,
    grant: &str,
    version: Option<u64>,
    text: &str,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let fail = |key_id: Option<&str>, kind, detail: String| {
        Err(SealError::new(grant, version, key_id, kind, detail))
    };
    let rest = &text[SEALED_PREFIX.len()..];
    let mut parts = rest.splitn(3, ':');
    let (Some(envelope), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next())
    else {
        return fail(
            None,
            SealErrorKind::Malformed,
            "a sealed record without its key id or body".to_owned(),
        );
    };
    if envelope != ENVELOPE_VERSION {
        return fail(
            None,
            SealErrorKind::Malformed,
            format!(
                "sealed with envelope version {}; this build reads version {ENVELOPE_VERSION}",
                super::GrantName(envelope)
            ),
        );
    }
    let shown_id = super::GrantName(key_id).to_string();
    let Some(keys) = keys else {
        return fail(
            Some(&shown_id),
            SealErrorKind::UnknownKey,
            format!("sealed under key {shown_id}, and the store was opened without keys"),
        );
    };
    let Some(key) = keys.get(key_id) else {
        return fail(
            Some(&shown_id),
            SealErrorKind::UnknownKey,
            format!(
                "sealed under key {shown_id}, which the keyring ({}) does not hold",
                keys.ids().collect::<Vec<_>>().join(", ")
            ),
        );
    };
    let Ok(body) = STANDARD_NO_PAD.decode(body) else {
        return fail(
            Some(key_id),
            SealErrorKind::Malformed,
            format!("the body sealed under key {key_id} is not base64"),
        );
    };
    if body.len() < NONCE_LEN + TAG_LEN {
        return fail(
            Some(key_id),
            SealErrorKind::Malformed,
            format!("the body sealed under key {key_id} is too short"),
        );
    }
    let Some(version) = version else {
        return fail(
            Some(key_id),
            SealErrorKind::Tampered,
            "the row's version column is unreadable, and the seal binds it".to_owned(),
        );
    };
    let (nonce, sealed) = body.split_at(NONCE_LEN);
    let nonce = XNonce::try_from(nonce).map_err(|_| {
        SealError::new(
            grant,
            Some(version),
            Some(key_id),
            SealErrorKind::Malformed,
            "bad nonce",
        )
    })?;
    let ad = associated_data(&header(key_id), grant, version);
    match key.cipher().decrypt(
        &nonce,
        Payload {
            msg: sealed,
            aad: &ad,
        },
    ) {
        Ok(plain) => Ok(Zeroizing::new(plain)),
        Err(_) => fail(
            Some(key_id),
            SealErrorKind::Tampered,
            format!(
                "sealed under key {key_id} but does not authenticate for this grant and version: \
                 changed or moved after sealing, or key {key_id} is not the key it was sealed with"
            ),
        ),
    }
}

impl Keyring {
    /// `record` sealed under the newest key, as a store with this keyring
    /// writes it in its `record` column (for tools that move records
    /// between stores, and benchmarks). A fresh random nonce each call.
    ///
    /// # Errors
    /// [`StoreError::InvalidWrite`] if the record does not serialize or the
    /// operating system gives no randomness.
    pub fn seal_record(&self, record: &GrantRecord) -> Result<String, StoreError> {
        Codec::new(Some(self.clone()), true).encode(record)
    }

    /// Reads a stored `record` column of the row (`grant`, `version`):
    /// sealed under a key of this ring, or plain JSON.
    ///
    /// # Errors
    /// [`StoreError::Sealed`] if it does not open (unknown key, tampered,
    /// another row's or version's); [`StoreError::Corrupt`] if it is not a
    /// record of this grant and version.
    pub fn open_record(
        &self,
        grant: &str,
        version: u64,
        text: &str,
    ) -> Result<GrantRecord, StoreError> {
        Codec::new(Some(self.clone()), true)
            .decode(grant, Some(version), text)
            .map_err(StoreError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoopai_oauth::{AccessToken, RefreshToken, TokenResponse, TokenSet};
    use std::time::{Duration, UNIX_EPOCH};

    fn ring(spec: &[(&str, u8)]) -> Keyring {
        Keyring::new(
            spec.iter()
                .map(|(id, b)| RecordKey::new(*id, [*b; 32]).unwrap()),
        )
        .unwrap()
    }

    fn record(grant: &str, version: u64) -> GrantRecord {
        let mut t = TokenResponse::new(AccessToken::new("access-secret-0123456789abcdef"));
        t.refresh_token = Some(RefreshToken::new("refresh-secret-0123456789abcdef"));
        t.expires_in = Some(3600);
        let mut r = GrantRecord::new(
            grant,
            TokenSet::new(t, UNIX_EPOCH + Duration::from_secs(1_767_225_600)),
        );
        r.version = version;
        r
    }

    fn kind(r: Result<GrantRecord, Unreadable>) -> (SealErrorKind, Option<String>) {
        match r {
            Err(Unreadable::Sealed(e)) => (e.kind, e.key_id),
            other => panic!("expected a seal error, got {other:?}"),
        }
    }

    #[test]
    fn seals_and_opens() {
        let codec = Codec::new(Some(ring(&[("k1", 1)])), true);
        let r = record("loc-1", 7);
        let text = codec.encode(&r).unwrap();
        assert!(text.starts_with("hoopai-sealed:1:k1:"), "{text}");
        assert!(!text.contains("secret"));
        assert!(codec.is_current(&text));
        assert_eq!(codec.decode("loc-1", Some(7), &text).unwrap(), r);
        // Two seals of one record differ (fresh nonce).
        assert_ne!(codec.encode(&r).unwrap(), text);
    }

    #[test]
    fn binds_grant_version_and_key_id() {
        let codec = Codec::new(Some(ring(&[("k1", 1), ("k0", 2)])), true);
        let text = codec.encode(&record("loc-1", 7)).unwrap();
        assert_eq!(
            kind(codec.decode("loc-2", Some(7), &text)),
            (SealErrorKind::Tampered, Some("k1".into()))
        );
        assert_eq!(
            kind(codec.decode("loc-1", Some(8), &text)),
            (SealErrorKind::Tampered, Some("k1".into()))
        );
        // The same body claimed under another held key.
        let relabelled = text.replacen(":k1:", ":k0:", 1);
        assert_eq!(
            kind(codec.decode("loc-1", Some(7), &relabelled)),
            (SealErrorKind::Tampered, Some("k0".into()))
        );
        // One flipped character of the body.
        let mut bytes = text.clone().into_bytes();
        let at = bytes.len() - 10;
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(bytes).unwrap();
        assert_eq!(
            kind(codec.decode("loc-1", Some(7), &flipped)),
            (SealErrorKind::Tampered, Some("k1".into()))
        );
    }

    #[test]
    fn rotation_and_unknown_keys() {
        let old = Codec::new(Some(ring(&[("k1", 1)])), true);
        let new = Codec::new(Some(ring(&[("k2", 2), ("k1", 1)])), true);
        let only_new = Codec::new(Some(ring(&[("k2", 2)])), true);
        let plain = Codec::default();
        let r = record("loc-1", 3);
        let under_k1 = old.encode(&r).unwrap();
        assert_eq!(new.decode("loc-1", Some(3), &under_k1).unwrap(), r);
        assert!(!new.is_current(&under_k1));
        assert!(new.encode(&r).unwrap().starts_with("hoopai-sealed:1:k2:"));
        assert_eq!(
            kind(only_new.decode("loc-1", Some(3), &under_k1)),
            (SealErrorKind::UnknownKey, Some("k1".into()))
        );
        assert_eq!(
            kind(plain.decode("loc-1", Some(3), &under_k1)),
            (SealErrorKind::UnknownKey, Some("k1".into()))
        );
        // Plain rows are read by every codec; writes can be kept plain.
        let json = plain.encode(&r).unwrap();
        assert_eq!(new.decode("loc-1", Some(3), &json).unwrap(), r);
        let unsealing = Codec::new(Some(ring(&[("k2", 2), ("k1", 1)])), false);
        assert_eq!(unsealing.encode(&r).unwrap(), json);
        assert!(unsealing.is_current(&json) && !unsealing.is_current(&under_k1));
    }

    #[test]
    fn malformed_envelopes() {
        let codec = Codec::new(Some(ring(&[("k1", 1)])), true);
        for (text, key) in [
            ("hoopai-sealed:2:k1:AAAA", None),
            ("hoopai-sealed:1:k1", None),
            ("hoopai-sealed:1:k1:!!!", Some("k1")),
            ("hoopai-sealed:1:k1:AAAA", Some("k1")),
        ] {
            assert_eq!(
                kind(codec.decode("loc-1", Some(1), text)),
                (SealErrorKind::Malformed, key.map(str::to_owned)),
                "{text}"
            );
        }
    }
}
