//! Label values: each from a small fixed set, so that no id, token or text
//! a caller sent can become a label.

use hoopai_oauth::{EngineEvent, ErrorKind, GrantStatus, RefreshFailure, WriteOutcome};

use crate::store::StoreError;
use crate::transport::TransportError;

/// The outcome of a refresh (or a mint) an event reports, and for a
/// failure its kind; `None` for an event that ends no refresh.
pub(super) fn refresh_outcome(event: &EngineEvent) -> Option<(&'static str, Option<&'static str>)> {
    Some(match event {
        EngineEvent::Refreshed { .. } => ("refreshed", None),
        EngineEvent::Adopted { .. } => ("adopted", None),
        EngineEvent::RetryScheduled { failure, .. } => {
            ("retry_scheduled", Some(failure_kind(failure)))
        }
        EngineEvent::Suspended { error, .. } => ("suspended", Some(error_kind(error.kind()))),
        EngineEvent::Unauthorized { error, .. } => ("unauthorized", Some(error_kind(error.kind()))),
        EngineEvent::ReauthorizationNeeded { error, .. } => {
            ("reauthorization_needed", Some(error_kind(error.kind())))
        }
        EngineEvent::ConfigurationRejected { error, .. } => {
            ("configuration_rejected", Some(error_kind(error.kind())))
        }
        _ => return None,
    })
}

/// Why a refresh failed.
pub(super) fn failure_kind(failure: &RefreshFailure) -> &'static str {
    match failure {
        RefreshFailure::TimedOut => "timed_out",
        RefreshFailure::Transport(_) => "transport",
        RefreshFailure::Store(_) => "store",
        RefreshFailure::Answer(e) => error_kind(e.kind()),
        _ => "other",
    }
}

/// A server's refusal (or an unreadable answer) by its kind.
pub(super) fn error_kind(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidGrant => "invalid_grant",
        ErrorKind::LocationNotActive => "location_not_active",
        ErrorKind::InvalidClient => "invalid_client",
        ErrorKind::GrantUnauthorized => "grant_unauthorized",
        ErrorKind::Unauthorized => "unauthorized",
        ErrorKind::InvalidParameter => "invalid_parameter",
        ErrorKind::Forbidden => "forbidden",
        ErrorKind::NotFound => "not_found",
        ErrorKind::RateLimited => "rate_limited",
        ErrorKind::ServerError => "server_error",
        ErrorKind::Rejected => "rejected",
        ErrorKind::Unreadable => "unreadable",
        _ => "other",
    }
}

/// What came back for a request.
pub(super) fn answer(answer: &Result<http::Response<Vec<u8>>, TransportError>) -> &'static str {
    match answer {
        Ok(r) if r.status().is_success() => "ok",
        Ok(r) if r.status() == http::StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        Ok(r) if r.status().is_client_error() => "refused",
        Ok(r) if r.status().is_server_error() => "server_error",
        Ok(_) => "other",
        Err(TransportError::TimedOut) => "timed_out",
        Err(_) => "no_answer",
    }
}

/// What a store write returned.
pub(super) fn write_outcome(result: &Result<WriteOutcome, StoreError>) -> &'static str {
    match result {
        Ok(WriteOutcome::Written) => "written",
        Ok(WriteOutcome::Conflict(_)) => "conflict",
        Ok(WriteOutcome::NoRecord) => "no_record",
        Ok(_) | Err(_) => "failed",
    }
}

/// A grant's standing.
pub(super) fn status(status: &GrantStatus) -> usize {
    match status {
        GrantStatus::Active => 0,
        GrantStatus::Suspended { .. } => 1,
        GrantStatus::Unauthorized { .. } => 2,
        GrantStatus::ReauthorizationNeeded { .. } => 3,
        _ => 4,
    }
}

/// The label of each index [`status`] returns.
pub(super) const STATUSES: [&str; 5] = [
    "active",
    "suspended",
    "unauthorized",
    "reauthorization_needed",
    "other",
];

/// A webhook the core's verifier refused, by why.
pub(super) fn webhook_verdict(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::WebhookReplayed => "replay",
        ErrorKind::WebhookUnsigned => "unsigned",
        ErrorKind::WebhookLegacySignature => "legacy_signature",
        ErrorKind::WebhookMalformedSignature => "malformed_signature",
        ErrorKind::WebhookBadSignature => "bad_signature",
        ErrorKind::WebhookOtherApp => "other_app",
        ErrorKind::WebhookStale => "stale",
        ErrorKind::WebhookUndated => "undated",
        ErrorKind::WebhookMalformed => "malformed",
        _ => "refused",
    }
}
