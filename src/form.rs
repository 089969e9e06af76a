//! `application/x-www-form-urlencoded` bodies, byte-identical to
//! `serde_urlencoded`'s encoding, written with the `percent-encoding` crate.
//!
//! `serde_urlencoded` (through `form_urlencoded`) costs a few nanoseconds per
//! byte; request bodies here are dominated by ~1 KiB JWTs that need no escaping,
//! which `percent-encoding` passes through as whole runs, about three times faster.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What the form encoding escapes: every byte but `A-Z a-z 0-9 * - . _`.
/// (A space is escaped too, then written as `+`, as the form encoding does.)
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

/// Encodes `pairs` as `k1=v1&k2=v2…`.
pub(crate) fn encode(pairs: &[(&str, &str)]) -> String {
    let len = pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mut out = String::with_capacity(len);
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        push_encoded(&mut out, k);
        out.push('=');
        push_encoded(&mut out, v);
    }
    out
}

fn push_encoded(out: &mut String, s: &str) {
    // Borrowed, without a copy, when nothing needs escaping (a JWT).
    let encoded: Cow<'_, str> = utf8_percent_encode(s, FORM).into();
    if s.contains(' ') {
        // A `%20` in the output can only come from a space: a literal `%20` in
        // the input is written `%2520`.
        out.push_str(&encoded.replace("%20", "+"));
    } else {
        out.push_str(&encoded);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::encode;

    #[test]
    fn matches_serde_urlencoded_on_examples() {
        let pairs = [
            ("client_id", "6578278e879ad2646715ba9c-lq3w8xd2"),
            ("client_secret", "s3cr3t with spaces & symbols=+/?é"),
            ("grant_type", "refresh_token"),
            ("refresh_token", "eyJhbGciOi.JSUzI1-NiIs_In*R5c"),
            ("literal", "%20 and + and %2B and  two  spaces"),
            ("", ""),
        ];
        assert_eq!(encode(&pairs), serde_urlencoded::to_string(pairs).unwrap());
    }

    proptest! {
        #[test]
        fn matches_serde_urlencoded(pairs in prop::collection::vec((".*", ".*"), 0..5)) {
            let refs: Vec<(&str, &str)> =
                pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(encode(&refs), serde_urlencoded::to_string(&refs).unwrap());
        }
    }
}
