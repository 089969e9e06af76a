//! What every fuzz target shares: how an input becomes an HTTP answer, and
//! the invariants checked on what the parsers return.
//!
//! Response targets read their input as a small HTTP answer, so that seeds
//! are readable and status and headers are fuzzed too:
//!
//! ```text
//! HTTP 429 Too Many Requests      <- the first number on the first line is the status
//! retry-after: 3                  <- header lines, up to the first empty line
//!
//! {"statusCode":429,"message":"…"} <- the body: every byte after the empty line
//! ```
//!
//! Without an empty line, everything after the first line is the body.
#![forbid(unsafe_code)]

use std::time::{Duration, UNIX_EPOCH};

use hoopai_oauth::{Error, LenientBool, TokenResponse, TokenSet};
use serde_json::Value;

/// Runs of token characters at least this long count as secrets (the
/// crate's errors redact them).
pub const LONG_RUN: usize = 28;

/// The answer an input describes (see the crate docs). Lines that are not
/// valid headers are skipped; a status that is not one is 200.
#[must_use]
pub fn response(data: &[u8]) -> http::Response<&[u8]> {
    let (first, rest) = split_once(data, b"\n").unwrap_or((data, &[]));
    let (head, body) = split_once(rest, b"\n\n").unwrap_or((&[], rest));
    let status = first
        .split(|b| !b.is_ascii_digit())
        .find(|w| !w.is_empty())
        .and_then(|w| std::str::from_utf8(w).ok()?.parse::<u16>().ok())
        .and_then(|n| http::StatusCode::from_u16(n).ok())
        .unwrap_or(http::StatusCode::OK);
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    for line in head.split(|&b| b == b'\n') {
        let Some((name, value)) = split_once(line, b":") else {
            continue;
        };
        let value = value.trim_ascii();
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.trim_ascii()),
            http::HeaderValue::from_bytes(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

fn split_once<'a>(data: &'a [u8], separator: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let at = data.windows(separator.len()).position(|w| w == separator)?;
    Some((&data[..at], &data[at + separator.len()..]))
}

/// The characters of one opaque run, as the crate's redaction counts them.
fn in_run(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '.' | '_' | '-' | '+' | '/' | '~' | '%' | '!' | '*' | '\'' | '(' | ')'
        )
}

/// Every run of at least [`LONG_RUN`] token characters in `text`.
#[must_use]
pub fn long_runs(text: &str) -> Vec<&str> {
    text.split(|c: char| !in_run(c))
        .filter(|run| run.len() >= LONG_RUN)
        .collect()
}

/// An error shows no long token-like run of its input: whatever its
/// `Display` or `Debug` prints of 28 or more token characters must not come
/// from `inputs` (the body, and for callbacks the decoded parameters). The
/// crate's own fixed texts, a UUID-like trace id (kept whole on purpose) and
/// its rendering of the parsed rate-limit figures are let through.
///
/// # Panics
/// When the error shows such a run.
pub fn assert_no_secret_shown(e: &Error, inputs: &[&str]) {
    let shown = format!("{e}\n{e:?}");
    for run in long_runs(&shown) {
        if e.trace_id() == Some(run) || e.kind().advice().contains(run) {
            continue;
        }
        // The crate's own rendering of the rate-limit figures it parsed from
        // the headers (e.g. `Some(17060888175089782.328s)`): numbers, not
        // input echoed, even when the body happens to hold the same text.
        if e.rate_limit()
            .is_some_and(|r| format!("{r:?}").contains(run))
        {
            continue;
        }
        for input in inputs {
            assert!(
                !input.contains(run),
                "an error shows {run:?}, a run of the input:\n{shown}"
            );
        }
    }
    // A refresh token kept from a failed answer was in that answer.
    if let Some(rescued) = e.rescued_refresh_token() {
        let escaped = inputs.iter().any(|i| i.contains('\\'));
        assert!(
            escaped || inputs.iter().any(|i| i.contains(rescued.secret())),
            "a rescued refresh token that the answer did not hold"
        );
    }
}

/// A parsed token answer can be put to use without a panic at any time, and
/// reads back from its own JSON as the same answer.
///
/// # Panics
/// When it cannot.
pub fn check_token(token: &TokenResponse) {
    assert!(
        !token.access_token.is_empty(),
        "an empty access token was accepted"
    );
    let _ = token.access_token.fingerprint();
    for now in [UNIX_EPOCH, UNIX_EPOCH + Duration::from_secs(1_767_225_600)] {
        let set = TokenSet::new(token.clone(), now);
        let _ = (
            set.expires_at(),
            set.is_expired(now, Duration::from_secs(300)),
        );
    }
    let json = serde_json::to_string(token).expect("a token answer serializes");
    let back: TokenResponse = serde_json::from_str(&json).expect("its JSON reads back");
    assert_same_token(token, &back);
}

/// Two token answers are the same: every typed field, flag and kept unknown
/// field equal.
///
/// # Panics
/// When they differ.
pub fn assert_same_token(a: &TokenResponse, b: &TokenResponse) {
    let typed = |t: &TokenResponse| {
        (
            (
                t.access_token.clone(),
                t.refresh_token.clone(),
                t.token_type.clone(),
            ),
            (t.expires_in, t.scope.clone(), t.user_type.clone()),
            (
                t.location_id.clone(),
                t.company_id.clone(),
                t.user_id.clone(),
            ),
            (t.approved_locations.clone(), t.plan_id.clone()),
            (t.app_id.clone(), t.version_id.clone()),
        )
    };
    assert_eq!(
        typed(a),
        typed(b),
        "a token answer changes when written and read back"
    );
    let flags = |t: &TokenResponse| {
        [
            &t.is_bulk_installation,
            &t.install_to_future_locations,
            &t.approve_all_locations,
        ]
        .map(|f| {
            f.as_ref().map(|f| match f {
                LenientBool::Bool(b) => Value::Bool(*b),
                LenientBool::Raw(v) => v.clone(),
                other => Value::String(format!("{other:?}")),
            })
        })
    };
    assert_eq!(flags(a), flags(b), "a flag changes");
    // Exact, floats included: the crate builds serde_json with `float_roundtrip`.
    assert_eq!(a.extra, b.extra, "the kept unknown fields change");
}
