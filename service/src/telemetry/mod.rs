//! What the service measures, through the [`metrics`](https://docs.rs/metrics)
//! facade (feature `metrics`, on by default). Nothing is recorded until the
//! app installs a recorder (a Prometheus exporter, for instance); without
//! the feature every function here is empty.
//!
//! Every metric is listed, with its type, labels and meaning, in
//! `docs/metrics.md`. Rules kept here:
//!
//! - names start with `hoopai_` and carry their unit (`_seconds`, `_total`);
//! - label values come from small fixed sets (a status, a kind, an
//!   outcome), never a grant, location or company id, nor anything a caller
//!   sent: the series stay few, and no secret can reach them;
//! - recording is a call of the facade's macros: cheap, synchronous, never
//!   awaited. The figures that need a walk over every grant are taken at
//!   most once a second ([`Gauges`]).

use std::time::Duration;

use hoopai_oauth::{EngineEvent, ErrorKind, WriteOutcome};

use crate::store::StoreError;
use crate::transport::TransportError;

mod gauges;
#[cfg(feature = "metrics")]
mod labels;

pub(crate) use gauges::Gauges;

/// Records a refresh's end as the engine reported it: its outcome, and
/// for a failure its kind.
pub(crate) fn event(event: &EngineEvent) {
    #[cfg(feature = "metrics")]
    {
        let Some((outcome, kind)) = labels::refresh_outcome(event) else {
            return;
        };
        metrics::counter!("hoopai_refreshes_total", "outcome" => outcome).increment(1);
        if let Some(kind) = kind {
            metrics::counter!("hoopai_refresh_failures_total", "kind" => kind).increment(1);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = event;
}

/// Records a request the engine handed out (a refresh or a mint), from
/// when it was sent to its answer (or to the failure to get one).
pub(crate) fn answered(
    elapsed: Duration,
    answer: &Result<http::Response<Vec<u8>>, TransportError>,
) {
    #[cfg(feature = "metrics")]
    {
        metrics::histogram!("hoopai_refresh_duration_seconds").record(elapsed);
        let answer = labels::answer(answer);
        metrics::counter!("hoopai_requests_total", "answer" => answer).increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (elapsed, answer);
}

/// Records a request that was never sent: handed out past its `not_after`.
pub(crate) fn not_dispatched() {
    #[cfg(feature = "metrics")]
    metrics::counter!("hoopai_requests_total", "answer" => "not_dispatched").increment(1);
}

/// Records a store write as the store returned it, and how long it took
/// (from when the call started, not from when it was asked).
pub(crate) fn store_write(elapsed: Duration, result: &Result<WriteOutcome, StoreError>) {
    #[cfg(feature = "metrics")]
    {
        let outcome = labels::write_outcome(result);
        metrics::counter!("hoopai_store_writes_total", "outcome" => outcome).increment(1);
        metrics::histogram!("hoopai_store_write_duration_seconds").record(elapsed);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (elapsed, result);
}

/// Records a store call (`"write"`, `"read"`, `"delete"`) reported failed
/// at its deadline.
pub(crate) fn store_timed_out(op: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("hoopai_store_timeouts_total", "op" => op).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = op;
}

/// Records how long a caller of `access_token` waited, for one that had to
/// (`outcome`: `ready`, `error` or `timed_out`).
pub(crate) fn token_wait(elapsed: Duration, outcome: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::histogram!("hoopai_access_token_wait_seconds", "outcome" => outcome).record(elapsed);
    #[cfg(not(feature = "metrics"))]
    let _ = (elapsed, outcome);
}

/// Records what the webhook route made of a delivery (`accepted`,
/// `replay`, `store_failed`, …; see `docs/metrics.md`).
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
pub(crate) fn webhook(verdict: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("hoopai_webhooks_total", "verdict" => verdict).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = verdict;
}

/// Records a delivery the core's verifier refused, by the refusal's kind.
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
pub(crate) fn webhook_refused(kind: ErrorKind) {
    #[cfg(feature = "metrics")]
    webhook(labels::webhook_verdict(kind));
    #[cfg(not(feature = "metrics"))]
    let _ = kind;
}

/// Records the outcome of a request to `/install` or `/callback`
/// (`throttled` for a 429 of the route's throttle).
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
pub(crate) fn route(route: &'static str, outcome: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("hoopai_route_requests_total", "route" => route, "outcome" => outcome)
        .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (route, outcome);
}

/// Describes every metric to the recorder installed (its unit and a line
/// of text); called when a service starts.
pub(crate) fn describe() {
    #[cfg(feature = "metrics")]
    gauges::describe();
}
