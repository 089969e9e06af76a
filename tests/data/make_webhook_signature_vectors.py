#!/usr/bin/env python3
"""Writes webhook-signature-vectors.json: the x-ghl-signature header format,
signed by an implementation independent of the crate (pyca/cryptography).

Run from this folder: python3 make_webhook_signature_vectors.py
"""
import base64
import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SEED = b"hoopai-oauth header vectors key!"  # 32 fixed bytes: a published test key
OTHER_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")  # RFC 8032 TEST 1
assert len(SEED) == 32

key = Ed25519PrivateKey.from_private_bytes(SEED)
other = Ed25519PrivateKey.from_private_bytes(OTHER_SEED)
public = key.public_key()
spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

body = (
    b'{"type":"INSTALL","appId":"6578278e879ad2646715ba9c","versionId":"6578278e879ad2646715ba9c",'
    b'"installType":"Location","locationId":"loc-1","companyId":"company-1","userId":"user-1",'
    b'"companyName":"Acme Agency","isWhitelabelCompany":false,'
    b'"timestamp":"2026-01-01T00:00:00.000Z","webhookId":"1b6f0b3e-2c4d-4e5f-8a9b-0c1d2e3f4a5b"}'
)
sig = key.sign(body)
b64 = base64.b64encode(sig).decode()
flipped = bytearray(sig)
flipped[0] ^= 0x01

cases = [
    ("standard base64, padded", b64, None, "ok"),
    ("standard base64, unpadded", b64.rstrip("="), None, "ok"),
    ("surrounding spaces", "  " + b64 + " ", None, "ok"),
    ("both current and legacy headers: the current one decides", b64, "bGVnYWN5", "ok"),
    ("URL-safe alphabet", base64.urlsafe_b64encode(sig).decode(), None,
     "ok" if base64.urlsafe_b64encode(sig) == base64.b64encode(sig) else "WebhookMalformedSignature"),
    ("63 bytes", base64.b64encode(sig[:63]).decode(), None, "WebhookMalformedSignature"),
    ("65 bytes", base64.b64encode(sig + b"\x00").decode(), None, "WebhookMalformedSignature"),
    ("hex instead of base64", sig.hex(), None, "WebhookMalformedSignature"),
    ("scheme prefix", "ed25519=" + b64, None, "WebhookMalformedSignature"),
    ("not base64 at all", "not a signature!", None, "WebhookMalformedSignature"),
    ("one bit flipped", base64.b64encode(bytes(flipped)).decode(), None, "WebhookBadSignature"),
    ("signed by another key", base64.b64encode(other.sign(body)).decode(), None, "WebhookBadSignature"),
    ("signature of another body", base64.b64encode(key.sign(body + b" ")).decode(), None, "WebhookBadSignature"),
    ("signature of the re-serialized body", base64.b64encode(key.sign(json.dumps(json.loads(body)).encode())).decode(), None, "WebhookBadSignature"),
    ("empty header", "", None, "WebhookUnsigned"),
    ("no header", None, None, "WebhookUnsigned"),
    ("legacy header only", None, base64.b64encode(b"\x01" * 512).decode(), "WebhookLegacySignature"),
]

out = {
    "about": "x-ghl-signature vectors: Ed25519 (RFC 8032) over the raw body, standard base64; "
             "signed with pyca/cryptography by make_webhook_signature_vectors.py",
    "public_key_spki_base64": base64.b64encode(spki).decode(),
    "body": body.decode(),
    "cases": [
        {"name": n, "x-ghl-signature": h, "x-wh-signature": l, "expect": e} for (n, h, l, e) in cases
    ],
}
with open("webhook-signature-vectors.json", "w") as f:
    json.dump(out, f, indent=2)
    f.write("\n")
