//! The fake's webhook public key in the forms verifiers take.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hoopai_oauth::WebhookKey;
use serde::Serialize;

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): followed by
/// the raw 32-byte key, it is the whole SPKI.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// One public key, four ways.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyForms {
    /// SubjectPublicKeyInfo DER in base64: the form HighLevel publishes its key in.
    pub spki_base64: String,
    /// The same SPKI with PEM armor (`-----BEGIN PUBLIC KEY-----`).
    pub pem: String,
    /// The raw 32 bytes in hex.
    pub raw_hex: String,
    /// The raw 32 bytes in base64.
    pub raw_base64: String,
}

impl KeyForms {
    pub fn of(key: &WebhookKey) -> Self {
        let raw = key.to_bytes();
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(&raw);
        let spki_base64 = BASE64.encode(&der);
        KeyForms {
            pem: format!("-----BEGIN PUBLIC KEY-----\n{spki_base64}\n-----END PUBLIC KEY-----\n"),
            spki_base64,
            raw_hex: raw.iter().map(|b| format!("{b:02x}")).collect(),
            raw_base64: BASE64.encode(raw),
        }
    }
}
