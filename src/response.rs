//! Reading answers: the one place that prepares a body for the parsers (the
//! byte-order mark, the size cap), JSON, and telling error bodies from answers.

use http::{Response, StatusCode};
use serde_json::Value;

use crate::error::{Endpoint, Error, Unreadable};

/// The largest body the parsers read: 1 MiB. A token answer is a few KiB
/// (JWTs included) and an installed-locations page of 100 is about 30 KiB; a
/// larger body is a proxy or a fault, and gives [`Unreadable::TooLarge`].
/// Drivers may refuse to download more than this, too.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The UTF-8 byte-order mark, `EF BB BF`.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The body every parser reads: the raw body without the UTF-8 byte-order
/// marks it starts with. RFC 8259 §8.1 lets a JSON reader ignore a leading
/// mark, and servers behind some proxies (or .NET and Windows tooling) send
/// one.
///
/// The marks of a body marked twice on its way, or with whitespace before
/// the mark, are stripped too (everything up to the last mark of the leading
/// run of marks and whitespace): the JSON after them is intact, and refusing
/// it would throw away a success that may hold the only copy of a rotated
/// refresh token. A body without a leading mark is read as it is.
///
/// Every parser goes through here: success and error answers of the token,
/// location-token and installed-locations endpoints.
pub(crate) fn prepared_body<B: AsRef<[u8]>>(resp: &Response<B>) -> &[u8] {
    let raw = resp.body().as_ref();
    let (mut at, mut after_mark) = (0, 0);
    loop {
        if raw[at..].starts_with(BOM) {
            at += BOM.len();
            after_mark = at;
        } else if raw.get(at).is_some_and(u8::is_ascii_whitespace) {
            at += 1;
        } else {
            break;
        }
    }
    &raw[after_mark..]
}

/// Checks the cap; returns the [prepared](prepared_body) body for further reading.
pub(crate) fn checked_body<B: AsRef<[u8]>>(resp: &Response<B>) -> Result<&[u8], Error> {
    let body = prepared_body(resp);
    if body.len() > MAX_BODY_BYTES {
        return Err(Error::unreadable(
            Unreadable::TooLarge,
            resp.status(),
            &body[..256.min(body.len())],
            format!(
                "body of {} bytes is over the {MAX_BODY_BYTES}-byte cap",
                body.len()
            ),
        ));
    }
    Ok(body)
}

/// The error for a non-2xx answer. The status and headers classify it even
/// when the body is too large to read or is not JSON.
pub(crate) fn failure<B: AsRef<[u8]>>(endpoint: Endpoint, resp: &Response<B>) -> Error {
    let body = prepared_body(resp);
    if body.len() > MAX_BODY_BYTES {
        return Error::from_answer(endpoint, resp.status(), resp.headers(), None, &body[..256])
            .with_unreadable(Unreadable::TooLarge);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(parsed) => {
            Error::from_answer(endpoint, resp.status(), resp.headers(), Some(&parsed), body)
        }
        Err(e) => {
            let err = Error::from_answer(endpoint, resp.status(), resp.headers(), None, body);
            if e.is_eof() && body.iter().any(|b| !b.is_ascii_whitespace()) {
                err.with_unreadable(Unreadable::Truncated)
            } else {
                err
            }
        }
    }
}

/// The error for a 2xx body that did not read as the expected shape.
pub(crate) fn unreadable_success(status: StatusCode, body: &[u8], e: &serde_json::Error) -> Error {
    let trimmed = body.iter().position(|b| !b.is_ascii_whitespace());
    if trimmed.is_none() {
        return Error::unreadable(Unreadable::Empty, status, body, "the body is empty");
    }
    let (why, detail) = if e.is_eof() {
        (
            Unreadable::Truncated,
            "the JSON body ends early (truncated)",
        )
    } else if e.is_syntax() {
        (Unreadable::NotJson, "the body is not JSON")
    } else {
        (
            Unreadable::UnexpectedShape,
            "the JSON body has an unexpected shape",
        )
    };
    Error::unreadable(
        why,
        status,
        body,
        format!("{detail}: {}", serde_error_position(e)),
    )
}

/// A serde_json error's category and position, without its text (which may quote a value).
fn serde_error_position(e: &serde_json::Error) -> String {
    format!("at line {} column {}", e.line(), e.column())
}

/// Reads a whole answer as JSON: non-2xx and error bodies on 2xx become errors.
pub(crate) fn json_answer<B: AsRef<[u8]>>(
    endpoint: Endpoint,
    resp: &Response<B>,
) -> Result<Value, Error> {
    if !resp.status().is_success() {
        return Err(failure(endpoint, resp));
    }
    let body = checked_body(resp)?;
    let value: Value =
        serde_json::from_slice(body).map_err(|e| unreadable_success(resp.status(), body, &e))?;
    if Error::looks_like_error_body(&value) {
        return Err(Error::from_answer(
            endpoint,
            resp.status(),
            resp.headers(),
            Some(&value),
            body,
        ));
    }
    Ok(value)
}
