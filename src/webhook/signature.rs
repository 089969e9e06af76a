//! The `x-ghl-signature` check: an Ed25519 signature, in base64, over the raw
//! body bytes, against a set of trusted public keys.

use std::fmt;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ed25519_dalek::{Signature, VerifyingKey};
use http::HeaderMap;

use crate::error::{Error, ErrorKind};

/// The header of the current signature scheme.
pub const SIGNATURE_HEADER: &str = "x-ghl-signature";

/// The header of the legacy RSA scheme, which HighLevel ended on 2026-07-01.
pub const LEGACY_SIGNATURE_HEADER: &str = "x-wh-signature";

/// HighLevel's published webhook public key, as SubjectPublicKeyInfo DER in
/// base64, as HighLevel's webhook guide publishes it
/// (<https://marketplace.gohighlevel.com/docs/webhook/WebhookIntegrationGuide>;
/// `docs/highlevel-facts.md`, "Webhook signatures"). The raw 32-byte Ed25519 key
/// is the last 32 bytes of the DER.
pub const HIGHLEVEL_WEBHOOK_PUBLIC_KEY: &str =
    "MCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg=";

/// The fixed DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410):
/// `SEQUENCE { SEQUENCE { OID 1.3.101.112 } BIT STRING (33 bytes) }`.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Standard base64, with or without `=` padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The longest header value read: a 64-byte signature is 88 base64 characters.
const MAX_HEADER_CHARS: usize = 256;

/// One trusted Ed25519 public key. Public keys are not secrets; `Debug` shows
/// the first 8 bytes in hex.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct WebhookKey(VerifyingKey);

impl WebhookKey {
    /// HighLevel's published key, [`HIGHLEVEL_WEBHOOK_PUBLIC_KEY`] (always
    /// `Some`: a unit test pins it; the set is empty, and refuses everything,
    /// if it ever were not).
    pub(crate) fn highlevel() -> Option<Self> {
        Self::from_spki(HIGHLEVEL_WEBHOOK_PUBLIC_KEY).ok()
    }

    /// A key from its raw 32 bytes.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if the bytes are not an Ed25519 point, or a
    /// point of small order (a weak key that would accept forged signatures).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, Error> {
        let key = VerifyingKey::from_bytes(bytes)
            .map_err(|_| Error::input("webhook key: not an Ed25519 public key"))?;
        if key.is_weak() {
            return Err(Error::input(
                "webhook key: a weak (small-order) Ed25519 key accepts forgeries",
            ));
        }
        Ok(WebhookKey(key))
    }

    /// A key from a SubjectPublicKeyInfo in base64 DER, the form HighLevel
    /// publishes, with or without PEM armor (`-----BEGIN PUBLIC KEY-----`).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if the text is not base64, or not the DER of
    /// an Ed25519 key (44 bytes, OID 1.3.101.112).
    pub fn from_spki(text: &str) -> Result<Self, Error> {
        let body: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("-----"))
            .flat_map(str::chars)
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = BASE64
            .decode(body.as_bytes())
            .map_err(|_| Error::input("webhook key: the SubjectPublicKeyInfo is not base64"))?;
        let raw = der
            .strip_prefix(&ED25519_SPKI_PREFIX[..])
            .and_then(|rest| <&[u8; 32]>::try_from(rest).ok())
            .ok_or_else(|| {
                Error::input(format!(
                    "webhook key: {} bytes of DER are not an Ed25519 SubjectPublicKeyInfo",
                    der.len()
                ))
            })?;
        Self::from_bytes(raw)
    }

    /// The raw 32 bytes.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The underlying `ed25519-dalek` key.
    #[must_use]
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }
}

impl From<VerifyingKey> for WebhookKey {
    fn from(key: VerifyingKey) -> Self {
        WebhookKey(key)
    }
}

impl fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0.as_bytes();
        f.write_str("WebhookKey(")?;
        for b in &bytes[..8] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…)")
    }
}

/// The keys a delivery may be signed with. A signature that verifies with any
/// of them is accepted, so a rotated key can be added before HighLevel
/// switches to it and removed after.
///
/// [`WebhookKeys::default`] holds HighLevel's published key. An empty set
/// refuses every delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookKeys(Vec<WebhookKey>);

impl Default for WebhookKeys {
    fn default() -> Self {
        Self::highlevel()
    }
}

impl WebhookKeys {
    /// HighLevel's published key alone.
    #[must_use]
    pub fn highlevel() -> Self {
        WebhookKeys(WebhookKey::highlevel().into_iter().collect())
    }

    /// No key at all (every delivery is refused until one is added).
    #[must_use]
    pub fn empty() -> Self {
        WebhookKeys(Vec::new())
    }

    /// This set with `key` added (a key already in the set is not repeated).
    #[must_use]
    pub fn with(mut self, key: WebhookKey) -> Self {
        self.add(key);
        self
    }

    /// Adds `key` (a key already in the set is not repeated).
    pub fn add(&mut self, key: WebhookKey) {
        if !self.0.contains(&key) {
            self.0.push(key);
        }
    }

    /// Removes `key`; returns whether it was there.
    pub fn remove(&mut self, key: &WebhookKey) -> bool {
        let before = self.0.len();
        self.0.retain(|k| k != key);
        self.0.len() != before
    }

    /// The keys, in the order they were added.
    #[must_use]
    pub fn keys(&self) -> &[WebhookKey] {
        &self.0
    }

    /// Checks the `x-ghl-signature` of a delivery over its raw `body`.
    ///
    /// Returns the index in [`keys`](Self::keys) of the key that verified it.
    /// Verification uses `verify_strict` (RFC 8032 with canonical `S` and no
    /// small-order `R`).
    ///
    /// # Errors
    /// - [`ErrorKind::WebhookUnsigned`]: no `x-ghl-signature`, or an empty one,
    ///   and no legacy header either;
    /// - [`ErrorKind::WebhookLegacySignature`]: only `x-wh-signature` is present;
    /// - [`ErrorKind::WebhookMalformedSignature`]: the header is sent more than
    ///   once, is not ASCII, is not standard base64 (padding optional,
    ///   surrounding spaces ignored), or does not decode to 64 bytes;
    /// - [`ErrorKind::WebhookBadSignature`]: no key of the set verifies it.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<usize, Error> {
        let signature = read_signature(headers)?;
        self.0
            .iter()
            .position(|k| k.0.verify_strict(body, &signature).is_ok())
            .ok_or_else(|| {
                Error::webhook(
                    ErrorKind::WebhookBadSignature,
                    format!(
                        "the signature over the {}-byte body verifies with none of the {} trusted key(s): \
                         the body was changed after signing (verify the raw bytes, never a re-serialization) \
                         or it was not signed by a trusted key",
                        body.len(),
                        self.0.len()
                    ),
                )
            })
    }
}

/// Reads and decodes the one `x-ghl-signature` header.
fn read_signature(headers: &HeaderMap) -> Result<Signature, Error> {
    let mut values = headers.get_all(SIGNATURE_HEADER).iter();
    let Some(value) = values.next() else {
        return Err(if headers.contains_key(LEGACY_SIGNATURE_HEADER) {
            Error::webhook(
                ErrorKind::WebhookLegacySignature,
                "only the legacy x-wh-signature (RSA) header is present; HighLevel ended that scheme \
                 on 2026-07-01 and signs deliveries with x-ghl-signature (Ed25519) only",
            )
        } else {
            Error::webhook(
                ErrorKind::WebhookUnsigned,
                "no x-ghl-signature header: the delivery is not signed",
            )
        });
    };
    let count = 1 + values.count();
    if count > 1 {
        return Err(malformed(format!(
            "x-ghl-signature is sent {count} times; exactly one is expected"
        )));
    }
    let text = value
        .to_str()
        .map_err(|_| malformed("x-ghl-signature is not ASCII".to_owned()))?
        .trim();
    if text.is_empty() {
        return Err(Error::webhook(
            ErrorKind::WebhookUnsigned,
            "the x-ghl-signature header is empty: the delivery is not signed",
        ));
    }
    if text.len() > MAX_HEADER_CHARS {
        return Err(malformed(format!(
            "x-ghl-signature is {} characters long; a base64 Ed25519 signature is 88",
            text.len()
        )));
    }
    let bytes = BASE64.decode(text).map_err(|_| {
        malformed("x-ghl-signature is not standard base64 (A–Z a–z 0–9 + /)".to_owned())
    })?;
    let bytes = <[u8; 64]>::try_from(bytes.as_slice()).map_err(|_| {
        malformed(format!(
            "x-ghl-signature decodes to {} bytes; an Ed25519 signature is 64",
            bytes.len()
        ))
    })?;
    Ok(Signature::from_bytes(&bytes))
}

fn malformed(detail: String) -> Error {
    Error::webhook(ErrorKind::WebhookMalformedSignature, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_key_is_the_published_one() {
        let keys = WebhookKeys::highlevel();
        assert_eq!(keys.keys().len(), 1);
        let raw = keys.keys()[0].to_bytes();
        let der = BASE64.decode(HIGHLEVEL_WEBHOOK_PUBLIC_KEY).unwrap();
        assert_eq!(der.len(), 44);
        assert_eq!(&der[12..], &raw[..]);
        assert_eq!(
            format!("{:?}", keys.keys()[0]),
            "WebhookKey(8b61d1d6cacbe28d…)"
        );
    }

    #[test]
    fn pem_armor_is_accepted() {
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{HIGHLEVEL_WEBHOOK_PUBLIC_KEY}\n-----END PUBLIC KEY-----\n"
        );
        assert_eq!(WebhookKey::from_spki(&pem).ok(), WebhookKey::highlevel());
    }

    #[test]
    fn bad_keys_are_refused() {
        for bad in [
            "",
            "not base64!",
            // An RSA SubjectPublicKeyInfo prefix.
            "MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEA",
            // The right prefix, 31 bytes of key.
            "MCkwBQYDK2VwAyAAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiA==",
        ] {
            let err = WebhookKey::from_spki(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
        }
        // The identity point has small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            WebhookKey::from_bytes(&identity).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
}
