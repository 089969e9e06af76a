//! Compact storage of one grant's tokens.
//!
//! A [`TokenResponse`] is roomy (a few hundred bytes of fields, and a B-tree
//! map for unknown fields). The engine keeps the two tokens as they came (moved,
//! not copied), the times as seconds, and the rest in a small boxed struct;
//! repeated strings (scope, token type) are shared. The full response is
//! rebuilt only when a record is written.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::secret::{AccessToken, RefreshToken};
use crate::token::{LenientBool, Scopes, TokenResponse, TokenSet, UserType, unix};

/// Shares identical strings (scopes, token types) between grants. Bounded: past
/// `MAX_INTERNED` distinct values, new ones are simply not shared.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    set: HashSet<Arc<str>>,
}

const MAX_INTERNED: usize = 4096;

impl Interner {
    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.set.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        if self.set.len() < MAX_INTERNED {
            self.set.insert(a.clone());
        }
        a
    }
}

/// The non-secret rest of a token answer.
#[derive(Debug, Clone, PartialEq, Default)]
struct Meta {
    token_type: Option<Arc<str>>,
    scope: Option<Arc<str>>,
    user_type: Option<UserType>,
    company_id: Option<Box<str>>,
    location_id: Option<Box<str>>,
    user_id: Option<Box<str>>,
    plan_id: Option<Box<str>>,
    app_id: Option<Box<str>>,
    version_id: Option<Box<str>>,
    approved_locations: Option<Box<[Box<str>]>>,
    /// isBulkInstallation, installToFutureLocations, approveAllLocations:
    /// 0 absent, 1 false, 2 true (other shapes are kept in `extra`).
    flags: [u8; 3],
    /// Unknown fields, as JSON object text.
    extra: Option<Box<str>>,
}

const FLAG_NAMES: [&str; 3] = [
    "isBulkInstallation",
    "installToFutureLocations",
    "approveAllLocations",
];

/// One grant's tokens.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) access: AccessToken,
    pub(crate) refresh: RefreshToken,
    /// Unix seconds.
    obtained: u64,
    /// Unix seconds.
    expires: u64,
    meta: Box<Meta>,
}

fn boxed(s: Option<String>) -> Option<Box<str>> {
    s.map(String::into_boxed_str)
}

fn unboxed(s: &Option<Box<str>>) -> Option<String> {
    s.as_deref().map(str::to_owned)
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

impl Held {
    /// Splits a token set. `fallback` is the refresh token to keep when the
    /// answer carries none. Returns `None` when there is no refresh token at all.
    pub(crate) fn from_set(
        set: TokenSet,
        fallback: Option<RefreshToken>,
        interner: &mut Interner,
    ) -> Option<Held> {
        let obtained = unix(set.obtained_at());
        let expires = unix(set.expires_at());
        let mut t = set.into_token();
        let refresh = match t.refresh_token.take() {
            Some(r) if !r.secret().trim().is_empty() => r,
            _ => fallback?,
        };
        let access = std::mem::replace(&mut t.access_token, AccessToken::new(String::new()));
        let mut extra = std::mem::take(&mut t.extra);
        let mut flags = [0u8; 3];
        for (i, v) in [
            t.is_bulk_installation.take(),
            t.install_to_future_locations.take(),
            t.approve_all_locations.take(),
        ]
        .into_iter()
        .enumerate()
        {
            match v {
                None => {}
                Some(LenientBool::Bool(b)) => flags[i] = 1 + u8::from(b),
                Some(LenientBool::Raw(raw)) => {
                    extra.insert(FLAG_NAMES[i].to_owned(), raw);
                }
            }
        }
        let meta = Meta {
            token_type: t.token_type.as_deref().map(|s| interner.intern(s)),
            scope: t.scope.as_ref().map(|s| interner.intern(s.as_str())),
            user_type: t.user_type.take(),
            company_id: boxed(t.company_id.take()),
            location_id: boxed(t.location_id.take()),
            user_id: boxed(t.user_id.take()),
            plan_id: boxed(t.plan_id.take()),
            app_id: boxed(t.app_id.take()),
            version_id: boxed(t.version_id.take()),
            approved_locations: t.approved_locations.take().map(|v| {
                v.into_iter()
                    .map(String::into_boxed_str)
                    .collect::<Vec<_>>()
                    .into_boxed_slice()
            }),
            flags,
            extra: if extra.is_empty() {
                None
            } else {
                serde_json::to_string(&extra)
                    .ok()
                    .map(String::into_boxed_str)
            },
        };
        Some(Held {
            access,
            refresh,
            obtained,
            expires,
            meta: Box::new(meta),
        })
    }

    /// Rebuilds the token set (copies of the tokens).
    pub(crate) fn to_set(&self) -> TokenSet {
        let m = &*self.meta;
        let mut t = TokenResponse::new(self.access.clone());
        t.refresh_token = Some(self.refresh.clone());
        t.expires_in = Some(self.expires.saturating_sub(self.obtained));
        t.token_type = m.token_type.as_deref().map(str::to_owned);
        t.scope = m.scope.as_deref().map(Scopes::new);
        t.user_type = m.user_type.clone();
        t.company_id = unboxed(&m.company_id);
        t.location_id = unboxed(&m.location_id);
        t.user_id = unboxed(&m.user_id);
        t.plan_id = unboxed(&m.plan_id);
        t.app_id = unboxed(&m.app_id);
        t.version_id = unboxed(&m.version_id);
        t.approved_locations = m
            .approved_locations
            .as_ref()
            .map(|v| v.iter().map(|s| s.to_string()).collect());
        let mut extra: Map<String, Value> = m
            .extra
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        let flag = |i: usize, extra: &mut Map<String, Value>| match m.flags[i] {
            1 => Some(LenientBool::Bool(false)),
            2 => Some(LenientBool::Bool(true)),
            _ => extra.remove(FLAG_NAMES[i]).map(LenientBool::Raw),
        };
        t.is_bulk_installation = flag(0, &mut extra);
        t.install_to_future_locations = flag(1, &mut extra);
        t.approve_all_locations = flag(2, &mut extra);
        t.extra = extra;
        TokenSet::new(t, at(self.obtained))
    }

    pub(crate) fn expires_at(&self) -> SystemTime {
        at(self.expires)
    }

    /// When to refresh: `margin` before expiry, but not before half the lifetime.
    pub(crate) fn refresh_at(&self, margin: Duration) -> SystemTime {
        let half = self.obtained + self.expires.saturating_sub(self.obtained) / 2;
        let ahead = self.expires.saturating_sub(margin.as_secs());
        at(ahead.max(half))
    }

    /// The user type, for the refresh request.
    pub(crate) fn user_type(&self) -> Option<&UserType> {
        self.meta.user_type.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TokenResponse {
        let body = r#"{"access_token":"access-token-placeholder-0000000000000","token_type":"Bearer",
            "expires_in":86399,"refresh_token":"refresh-token-placeholder-000000000000",
            "scope":"contacts.readonly oauth.write","userType":"Location","locationId":"loc-1",
            "companyId":"company-1","approvedLocations":["a","b"],"userId":"user-1","planId":"plan-1",
            "isBulkInstallation":"Bearer","installToFutureLocations":true,"appId":"app",
            "versionId":"v1","refreshTokenId":"rt-1","nested":{"x":[1,2]}}"#;
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let set = TokenSet::new(sample(), t0);
        let mut interner = Interner::default();
        let held = Held::from_set(set.clone(), None, &mut interner).unwrap();
        assert_eq!(held.to_set(), set);
        assert_eq!(held.expires_at(), set.expires_at());
    }

    #[test]
    fn missing_refresh_token_falls_back() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let mut t = sample();
        t.refresh_token = None;
        let mut interner = Interner::default();
        assert!(Held::from_set(TokenSet::new(t.clone(), t0), None, &mut interner).is_none());
        let held = Held::from_set(
            TokenSet::new(t, t0),
            Some(RefreshToken::new("old-refresh-token-placeholder-0000")),
            &mut interner,
        )
        .unwrap();
        assert_eq!(held.refresh.secret(), "old-refresh-token-placeholder-0000");
    }

    #[test]
    fn refresh_time_respects_margin_and_half_life() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut interner = Interner::default();
        let held = Held::from_set(TokenSet::new(sample(), t0), None, &mut interner).unwrap();
        assert_eq!(
            held.refresh_at(Duration::from_secs(600)),
            t0 + Duration::from_secs(86_399 - 600)
        );
        // A margin longer than half the life refreshes at half-life.
        assert_eq!(
            held.refresh_at(Duration::from_secs(80_000)),
            t0 + Duration::from_secs(86_399 / 2)
        );
    }
}
