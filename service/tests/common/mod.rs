//! Helpers shared by the service's integration tests.
#![allow(dead_code)]

pub mod app;
#[cfg(feature = "axum")]
pub mod browser;
pub mod contract;
pub mod env;
pub mod fake_http;
pub mod pg;
pub mod prometheus;
pub mod webhook_db;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hoopai_oauth::{AccessToken, GrantRecord, RefreshToken, TokenResponse, TokenSet};

/// A fixed instant: 2026-01-01T00:00:00Z.
pub fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

/// A record of `grant` at `version` whose tokens end in `tag` (long enough
/// to look like real tokens, so redaction is exercised).
pub fn record(grant: &str, version: u64, tag: &str) -> GrantRecord {
    let mut token = TokenResponse::new(AccessToken::new(format!(
        "access-placeholder-{grant}-{tag}-0000000000000000"
    )));
    token.refresh_token = Some(RefreshToken::new(format!(
        "refresh-placeholder-{grant}-{tag}-0000000000000000"
    )));
    token.expires_in = Some(86_399);
    token.location_id = Some(grant.to_owned());
    let mut record = GrantRecord::new(grant, TokenSet::new(token, t0()));
    record.version = version;
    record
}

/// The refresh token of a record, as text.
pub fn refresh_of(record: &GrantRecord) -> String {
    record
        .refresh_token()
        .map(|r| r.secret().to_owned())
        .unwrap_or_default()
}
