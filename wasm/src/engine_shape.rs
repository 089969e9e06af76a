//! What JavaScript receives from the engine, as plain Rust values (see
//! [`crate::shape`]): outputs, events, token statuses, grant views and
//! figures. Every object has a `type` field naming its variant in
//! kebab-case, so a JavaScript `switch` can be exhaustive.
//!
//! Times are milliseconds since the Unix epoch (`...Ms`), durations
//! milliseconds. Secrets (a request's body, a record's JSON, an access
//! token) are non-enumerable properties: printing an object never shows one.

use std::time::Duration;

use hoopai_oauth::{
    EngineEvent, EngineStats, GrantRecord, GrantStatus, GrantView, InstallChanges, Output,
    RequestId, TokenStatus,
};
use zeroize::Zeroizing;

use crate::shape::{Secret, Shape, Value, error_shape};

/// The largest integer a JavaScript number holds exactly (2^53 - 1).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// A request id as JavaScript holds it: the decimal text of its `u64`
/// (a number could not hold every id exactly).
#[must_use]
pub fn request_id(id: RequestId) -> String {
    id.as_u64().to_string()
}

/// A record version or count as a JavaScript number. Versions above
/// [`MAX_SAFE_INTEGER`] never reach the engine from JavaScript (see
/// [`check_version`]), so the conversion is exact.
#[must_use]
pub fn whole(n: u64) -> f64 {
    // Exact up to 2^53, which every value handed here stays below.
    #[allow(clippy::cast_precision_loss)]
    let v = n as f64;
    v
}

/// A duration in milliseconds.
#[must_use]
pub fn duration_ms(d: Duration) -> f64 {
    // Durations here are seconds to days: exact.
    #[allow(clippy::cast_precision_loss)]
    let v = d.as_millis() as f64;
    v
}

/// Refuses a record whose version JavaScript could not compare exactly.
///
/// # Errors
/// A message for an `invalid input` error.
pub fn check_version(record: &GrantRecord) -> Result<(), String> {
    if record.version > MAX_SAFE_INTEGER {
        return Err(format!(
            "record of grant {} has version {}, above the largest integer JavaScript holds exactly ({MAX_SAFE_INTEGER})",
            record.grant, record.version
        ));
    }
    Ok(())
}

/// A record as the JSON text stores keep.
///
/// # Errors
/// The serializer's message (it does not fail for the crate's records).
pub fn record_json(record: &GrantRecord) -> Result<Zeroizing<String>, String> {
    serde_json::to_string(record)
        .map(Zeroizing::new)
        .map_err(|e| format!("the record could not be written as JSON: {e}"))
}

/// The standing of a grant: `{ state: "active" | "suspended" |
/// "unauthorized" | "reauthorization-needed", untilMs?, reason? }`.
#[must_use]
pub fn grant_status(status: &GrantStatus) -> Shape<'static> {
    let mut s = Shape::default();
    match status {
        GrantStatus::Active => s.text("state", "active"),
        GrantStatus::Suspended { until } => {
            s.text("state", "suspended");
            s.time("untilMs", *until);
        }
        GrantStatus::Unauthorized { until, reason } => {
            s.text("state", "unauthorized");
            s.time("untilMs", *until);
            s.opt_text("reason", reason.as_deref());
        }
        GrantStatus::ReauthorizationNeeded { reason } => {
            s.text("state", "reauthorization-needed");
            s.opt_text("reason", reason.as_deref());
        }
        _ => {
            s.text("state", "other");
            s.text("detail", "a kind this module does not know");
        }
    }
    s
}

/// A request for `fetch`: `{ url, method, headers, redirect: "manual" }`
/// and the body as a non-enumerable `Uint8Array` (it holds the client
/// secret or a token). Send it with `fetch(request.url, request)`.
#[must_use]
pub fn request(r: &http::Request<Vec<u8>>) -> Shape<'_> {
    let mut s = Shape::default();
    s.text("url", r.uri().to_string());
    s.text("method", r.method().as_str());
    let headers = r
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    s.value("headers", Value::Pairs(headers));
    // A redirect would carry the form elsewhere; the crate reads a 3xx as
    // the refusal it is.
    s.text("redirect", "manual");
    s.secret("body", Secret::Bytes(r.body()));
    s
}

/// One output of `Engine.pollOutput`:
///
/// - `{ type: "send", id, grant, request, notAfterMs, refresh }`
/// - `{ type: "persist", grant, version, replaces, refresh, status, lease?,
///   expiresAtMs, mintedFrom? }` and the non-enumerable `recordJson`
/// - `{ type: "load", grant }`, `{ type: "delete", grant }`
/// - `{ type: "event", event }`
///
/// # Errors
/// For a record that cannot be written as JSON (none of the crate's).
pub fn output(o: &Output) -> Result<Shape<'_>, String> {
    Ok(match o {
        Output::Send {
            id,
            grant,
            request: r,
            not_after,
            refresh,
            ..
        } => {
            let mut s = Shape::typed("send");
            s.text("id", request_id(*id));
            s.text("grant", grant.as_str());
            s.object("request", request(r));
            s.time("notAfterMs", *not_after);
            s.text("refresh", refresh.to_string());
            s
        }
        Output::Persist {
            record,
            replaces,
            refresh,
            ..
        } => {
            let mut s = Shape::typed("persist");
            s.text("grant", record.grant.as_str());
            s.number("version", whole(record.version));
            s.value(
                "replaces",
                replaces.map_or(Value::Null, |v| Value::Number(whole(v))),
            );
            s.text("refresh", refresh.to_string());
            s.object("status", grant_status(&record.status));
            if let Some(lease) = &record.lease {
                let mut l = Shape::default();
                l.text("holder", lease.holder.as_str());
                l.time("untilMs", lease.until);
                s.object("lease", l);
            }
            s.time("expiresAtMs", record.expires_at());
            s.opt_text(
                "mintedFrom",
                record.minted_from.as_ref().map(|g| g.as_str()),
            );
            s.secret("recordJson", Secret::Owned(record_json(record)?));
            s
        }
        Output::Load { grant, .. } => {
            let mut s = Shape::typed("load");
            s.text("grant", grant.as_str());
            s
        }
        Output::Delete { grant, .. } => {
            let mut s = Shape::typed("delete");
            s.text("grant", grant.as_str());
            s
        }
        Output::Claim(claim) => {
            let mut s = Shape::typed("claim");
            s.text("key", claim.key.as_str());
            s.text("holder", claim.holder.as_str());
            s.number("sends", f64::from(claim.sends));
            s.number("others", f64::from(claim.others));
            s.number("max", f64::from(claim.max));
            s.number("othersMax", f64::from(claim.others_max));
            s.number("windowMs", duration_ms(claim.window));
            s
        }
        Output::Event(e) => {
            let mut s = Shape::typed("event");
            s.object("event", event(e));
            s
        }
        _ => {
            // A newer kind of output than this module knows: described, and
            // nothing to hand back.
            let mut s = Shape::typed("other");
            s.text("detail", "a kind this module does not know");
            s
        }
    })
}

/// An error inside an event: its fields and its message.
fn nested_error(e: &hoopai_oauth::Error) -> Shape<'static> {
    let mut s = error_shape(e);
    s.text("message", e.to_string());
    s
}

/// Why a retry was scheduled: `{ type: "timed-out" | "transport" |
/// "answer" | "store", detail?, error?, message }`.
#[must_use]
pub fn refresh_failure(f: &hoopai_oauth::RefreshFailure) -> Shape<'static> {
    let mut s = match f {
        hoopai_oauth::RefreshFailure::TimedOut => Shape::typed("timed-out"),
        hoopai_oauth::RefreshFailure::Transport(detail) => {
            let mut s = Shape::typed("transport");
            s.text("detail", detail.as_str());
            s
        }
        hoopai_oauth::RefreshFailure::Answer(e) => {
            let mut s = Shape::typed("answer");
            s.object("error", nested_error(e));
            s
        }
        hoopai_oauth::RefreshFailure::Store(store) => {
            let mut s = Shape::typed("store");
            s.text("detail", store.message());
            s
        }
        _ => Shape::typed("other"),
    };
    s.text("message", f.to_string());
    s
}

/// An event: `{ type, grant, message, ... }`, `type` one of `token-ready`,
/// `refreshed`, `adopted`, `lease-held-elsewhere`, `suspended`,
/// `unauthorized`, `reauthorization-needed`, `configuration-rejected`,
/// `retry-scheduled`, `durable`, `removed-elsewhere`, `write-failed`,
/// `write-recovered`, `answer-after-removal`, `rescued-token-adopted`,
/// `rate-limit-clamped`, `shared-budget-fallback` (`grant` null),
/// `shared-budget-recovered` (`grant` null).
#[must_use]
pub fn event(e: &EngineEvent) -> Shape<'static> {
    let mut s = match e {
        EngineEvent::TokenReady { expires_at, .. } => {
            let mut s = Shape::typed("token-ready");
            s.time("expiresAtMs", *expires_at);
            s
        }
        EngineEvent::Refreshed { expires_at, .. } => {
            let mut s = Shape::typed("refreshed");
            s.time("expiresAtMs", *expires_at);
            s
        }
        EngineEvent::Adopted { expires_at, .. } => {
            let mut s = Shape::typed("adopted");
            s.time("expiresAtMs", *expires_at);
            s
        }
        EngineEvent::LeaseHeldElsewhere { holder, until, .. } => {
            let mut s = Shape::typed("lease-held-elsewhere");
            s.text("holder", holder.as_str());
            s.time("untilMs", *until);
            s
        }
        EngineEvent::Suspended { until, error, .. } => {
            let mut s = Shape::typed("suspended");
            s.time("untilMs", *until);
            s.object("error", nested_error(error));
            s
        }
        EngineEvent::Unauthorized { until, error, .. } => {
            let mut s = Shape::typed("unauthorized");
            s.time("untilMs", *until);
            s.object("error", nested_error(error));
            s
        }
        EngineEvent::ReauthorizationNeeded { error, .. } => {
            let mut s = Shape::typed("reauthorization-needed");
            s.object("error", nested_error(error));
            s
        }
        EngineEvent::ConfigurationRejected { error, .. } => {
            let mut s = Shape::typed("configuration-rejected");
            s.object("error", nested_error(error));
            s
        }
        EngineEvent::RetryScheduled {
            at,
            attempt,
            failure,
            ..
        } => {
            let mut s = Shape::typed("retry-scheduled");
            s.time("atMs", *at);
            s.number("attempt", f64::from(*attempt));
            s.object("failure", refresh_failure(failure));
            s
        }
        EngineEvent::Durable { version, .. } => {
            let mut s = Shape::typed("durable");
            s.number("version", whole(*version));
            s
        }
        EngineEvent::RemovedElsewhere { .. } => Shape::typed("removed-elsewhere"),
        EngineEvent::WriteFailed {
            version,
            failure,
            retry_at,
            ..
        } => {
            let mut s = Shape::typed("write-failed");
            s.number("version", whole(*version));
            s.text("failure", failure.message());
            s.time("retryAtMs", *retry_at);
            s
        }
        EngineEvent::WriteRecovered { version, .. } => {
            let mut s = Shape::typed("write-recovered");
            s.number("version", whole(*version));
            s
        }
        EngineEvent::AnswerAfterRemoval {
            refresh_token_kept, ..
        } => {
            let mut s = Shape::typed("answer-after-removal");
            s.flag("refreshTokenKept", *refresh_token_kept);
            s
        }
        EngineEvent::RescuedTokenAdopted { .. } => Shape::typed("rescued-token-adopted"),
        EngineEvent::RateLimitClamped { clamped, .. } => {
            let mut s = Shape::typed("rate-limit-clamped");
            s.flag("retryAfter", clamped.retry_after);
            s.flag("interval", clamped.interval);
            s
        }
        EngineEvent::SharedBudgetFallback { share, error } => {
            let mut s = Shape::typed("shared-budget-fallback");
            s.number("share", f64::from(*share));
            s.text("detail", error.message());
            s
        }
        EngineEvent::SharedBudgetRecovered => Shape::typed("shared-budget-recovered"),
        _ => Shape::typed("other"),
    };
    // `grant` (null for an event about the engine as a whole) and `message`
    // right after `type`.
    let grant = e
        .grant()
        .map_or(Value::Null, |g| Value::Text(g.to_string()));
    s.shown.insert(1, ("grant", grant));
    s.shown.insert(2, ("message", Value::Text(e.to_string())));
    s
}

/// The answer of `Engine.accessToken`: `{ type: "ready", tokenRedacted,
/// expiresAtMs? }` with the non-enumerable `token`; `{ type: "pending" }`;
/// `{ type: "suspended" | "unauthorized", untilMs }`;
/// `{ type: "reauthorization-needed" }`; `{ type: "configuration-rejected" }`;
/// `{ type: "store-failing", failure }`.
#[must_use]
pub fn token_status(status: &TokenStatus) -> Shape<'_> {
    // Exhaustive on purpose: a new status must be given a shape here.
    match status {
        TokenStatus::Ready(token) => {
            let mut s = Shape::typed("ready");
            s.text("tokenRedacted", token.to_string());
            s.secret("token", Secret::Text(token.secret()));
            s
        }
        TokenStatus::Pending => Shape::typed("pending"),
        TokenStatus::Suspended { until } => {
            let mut s = Shape::typed("suspended");
            s.time("untilMs", *until);
            s
        }
        TokenStatus::Unauthorized { until } => {
            let mut s = Shape::typed("unauthorized");
            s.time("untilMs", *until);
            s
        }
        TokenStatus::ReauthorizationNeeded => Shape::typed("reauthorization-needed"),
        TokenStatus::ConfigurationRejected => Shape::typed("configuration-rejected"),
        TokenStatus::StoreFailing(failure) => {
            let mut s = Shape::typed("store-failing");
            s.text("failure", failure.message());
            s
        }
    }
}

/// A grant the engine holds: `{ id, status, expiresAtMs, mintedFrom?,
/// isWritten, requestOut, lastFailure? }`.
#[must_use]
pub fn grant_view(g: &GrantView<'_>) -> Shape<'static> {
    let mut s = Shape::default();
    s.text("id", g.id().as_str());
    s.object("status", grant_status(g.status()));
    s.time("expiresAtMs", g.expires_at());
    s.opt_text("mintedFrom", g.minted_from().map(|m| m.as_str()));
    s.flag("isWritten", g.is_written());
    s.flag("requestOut", g.request_out());
    if let Some(f) = g.last_failure() {
        s.object("lastFailure", refresh_failure(&f));
    }
    s
}

/// The engine's figures: `{ grants, inFlight, waitingForBudget,
/// waitedForBudget, writesFailing, unwritten, halted, budgetMax,
/// budgetIntervalMs }`.
#[must_use]
pub fn stats(st: &EngineStats) -> Shape<'static> {
    let mut s = Shape::default();
    let count = |n: usize| whole(u64::try_from(n).unwrap_or(u64::MAX));
    s.number("grants", count(st.grants));
    s.number("inFlight", count(st.in_flight));
    s.number("waitingForBudget", count(st.waiting_for_budget));
    s.number("waitedForBudget", whole(st.waited_for_budget));
    s.number("writesFailing", count(st.writes_failing));
    s.number("unwritten", count(st.unwritten));
    s.flag("halted", st.halted);
    s.number("budgetMax", f64::from(st.budget_max));
    s.number("budgetIntervalMs", duration_ms(st.budget_interval));
    s
}

/// What an install webhook changed: `{ added, removed, needsCodeExchange }`,
/// each a list of grant ids.
#[must_use]
pub fn install_changes(c: &InstallChanges) -> Shape<'static> {
    let ids = |list: &[hoopai_oauth::GrantId]| {
        Value::List(list.iter().map(ToString::to_string).collect())
    };
    let mut s = Shape::default();
    s.value("added", ids(&c.added));
    s.value("removed", ids(&c.removed));
    s.value("needsCodeExchange", ids(&c.needs_code_exchange));
    s
}

#[cfg(test)]
mod tests;
