//! Compact storage of one grant's tokens.
//!
//! A [`TokenResponse`] is roomy (a few hundred bytes of fields, and a B-tree
//! map for unknown fields). The engine keeps the two tokens as they came (moved,
//! not copied), the times as seconds, and the known fields in a small boxed
//! struct with the ids end to end in one string; repeated strings (scope, token
//! type) are shared. Unknown fields are not kept. The full response is rebuilt
//! only when a record is written.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::secret::{AccessToken, Fingerprint, RefreshToken};
use crate::time::unix;
use crate::token::{LenientBool, Scopes, TokenResponse, TokenSet, UserType};

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

/// The non-secret rest of a token answer. Usually the same from one refresh
/// to the next, and then kept as it is.
#[derive(Debug, Clone, PartialEq, Default)]
struct Meta {
    token_type: Option<Arc<str>>,
    scope: Option<Arc<str>>,
    user_type: Option<UserType>,
    /// companyId, locationId, userId, planId, appId, versionId, end to end.
    ids: Box<str>,
    /// Where each id ends in `ids`; `u16::MAX` when absent.
    ends: [u16; IDS],
    approved_locations: Option<Box<[Box<str>]>>,
    /// isBulkInstallation, installToFutureLocations, approveAllLocations:
    /// 0 absent (or not a boolean), 1 false, 2 true.
    flags: [u8; 3],
}

const IDS: usize = 6;
const ABSENT: u16 = u16::MAX;

impl Meta {
    fn id(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        if end == ABSENT {
            return None;
        }
        let start = self.ends[..i]
            .iter()
            .rev()
            .find(|&&e| e != ABSENT)
            .copied()
            .unwrap_or(0);
        self.ids.get(usize::from(start)..usize::from(end))
    }
}

fn flag(v: Option<LenientBool>) -> u8 {
    match v {
        Some(LenientBool::Bool(b)) => 1 + u8::from(b),
        _ => 0,
    }
}

fn unflag(f: u8) -> Option<LenientBool> {
    match f {
        1 => Some(LenientBool::Bool(false)),
        2 => Some(LenientBool::Bool(true)),
        _ => None,
    }
}

/// One grant's tokens.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) access: AccessToken,
    pub(crate) refresh: RefreshToken,
    /// The refresh token's fingerprint, computed once per token.
    fp: Fingerprint,
    /// Unix seconds.
    obtained: u64,
    /// Unix seconds.
    expires: u64,
    /// Shared with the grant's previous tokens while unchanged.
    meta: Arc<Meta>,
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn shared(prev: Option<&Arc<str>>, s: &str, interner: &mut Interner) -> Arc<str> {
    match prev {
        Some(p) if **p == *s => p.clone(),
        _ => interner.intern(s),
    }
}

impl Held {
    /// Splits a token set. `prev` is what the grant held before: its refresh
    /// token is kept when the answer carries none (`None` then means there is
    /// no refresh token at all), and its unchanged parts are reused.
    ///
    /// Unknown fields of the answer (`extra`, e.g. `refreshTokenId`) and
    /// non-boolean values of the boolean flags are not kept.
    pub(crate) fn from_set(
        set: TokenSet,
        prev: Option<&Held>,
        interner: &mut Interner,
    ) -> Option<Held> {
        Self::from_set_inner(set, prev, interner, false)
    }

    fn from_set_inner(
        set: TokenSet,
        prev: Option<&Held>,
        interner: &mut Interner,
        minted: bool,
    ) -> Option<Held> {
        let obtained = unix(set.obtained_at());
        let expires = unix(set.expires_at());
        let mut t = set.into_token();
        let (refresh, fp) = match t.refresh_token.take() {
            Some(r) if !r.secret().trim().is_empty() => match prev {
                Some(p) if p.refresh == r => (r, p.fp),
                _ => {
                    let fp = r.fingerprint();
                    (r, fp)
                }
            },
            _ => match prev {
                Some(p) => (p.refresh.clone(), p.fp),
                None if minted => {
                    let r = RefreshToken::new(String::new());
                    let fp = r.fingerprint();
                    (r, fp)
                }
                None => return None,
            },
        };
        let access = std::mem::replace(&mut t.access_token, AccessToken::new(String::new()));
        let old = prev.map(|p| &*p.meta);
        let mut ids = String::new();
        let mut ends = [ABSENT; IDS];
        for (i, id) in [
            &t.company_id,
            &t.location_id,
            &t.user_id,
            &t.plan_id,
            &t.app_id,
            &t.version_id,
        ]
        .into_iter()
        .enumerate()
        {
            if let Some(id) = id
                && ids.len() + id.len() < usize::from(ABSENT)
            {
                ids.push_str(id);
                ends[i] = u16::try_from(ids.len()).unwrap_or(ABSENT);
            }
        }
        let meta = Meta {
            token_type: t
                .token_type
                .as_deref()
                .map(|s| shared(old.and_then(|m| m.token_type.as_ref()), s, interner)),
            scope: t
                .scope
                .as_ref()
                .map(|s| shared(old.and_then(|m| m.scope.as_ref()), s.as_str(), interner)),
            user_type: t.user_type.take(),
            ids: ids.into_boxed_str(),
            ends,
            approved_locations: t.approved_locations.take().map(|v| {
                v.into_iter()
                    .map(String::into_boxed_str)
                    .collect::<Vec<_>>()
                    .into_boxed_slice()
            }),
            flags: [
                flag(t.is_bulk_installation.take()),
                flag(t.install_to_future_locations.take()),
                flag(t.approve_all_locations.take()),
            ],
        };
        let meta = match prev {
            Some(p) if *p.meta == meta => Arc::clone(&p.meta),
            _ => Arc::new(meta),
        };
        Some(Held {
            access,
            refresh,
            fp,
            obtained,
            expires,
            meta,
        })
    }

    /// [`from_set`](Self::from_set) for a minted Location grant: an answer
    /// with no refresh token (and none before) holds an empty placeholder,
    /// which means "mint again".
    pub(crate) fn from_set_minted(
        set: TokenSet,
        prev: Option<&Held>,
        interner: &mut Interner,
    ) -> Option<Held> {
        Self::from_set_inner(set, prev, interner, true)
    }

    /// Whether the grant holds a refresh token (a minted Location grant may not).
    pub(crate) fn has_refresh(&self) -> bool {
        !self.refresh.secret().is_empty()
    }

    /// Drops the refresh token (a minted Location grant whose refresh token
    /// was refused: it is minted again).
    pub(crate) fn clear_refresh(&mut self) {
        self.refresh = RefreshToken::new(String::new());
        self.fp = self.refresh.fingerprint();
    }

    /// Wipes both tokens (an uninstall).
    pub(crate) fn wipe(&mut self) {
        self.access = AccessToken::new(String::new());
        self.clear_refresh();
    }

    /// Rebuilds the token set (copies of the tokens).
    pub(crate) fn to_set(&self) -> TokenSet {
        let m = &*self.meta;
        let id = |i: usize| m.id(i).map(str::to_owned);
        let mut t = TokenResponse::new(self.access.clone());
        // A minted Location grant may hold none (an empty placeholder).
        t.refresh_token = (!self.refresh.secret().is_empty()).then(|| self.refresh.clone());
        t.expires_in = Some(self.expires.saturating_sub(self.obtained));
        t.token_type = m.token_type.as_deref().map(str::to_owned);
        t.scope = m.scope.as_deref().map(Scopes::new);
        t.user_type = m.user_type.clone();
        t.company_id = id(0);
        t.location_id = id(1);
        t.user_id = id(2);
        t.plan_id = id(3);
        t.app_id = id(4);
        t.version_id = id(5);
        t.approved_locations = m
            .approved_locations
            .as_ref()
            .map(|v| v.iter().map(|s| s.to_string()).collect());
        t.is_bulk_installation = unflag(m.flags[0]);
        t.install_to_future_locations = unflag(m.flags[1]);
        t.approve_all_locations = unflag(m.flags[2]);
        // The expiry as held, even where `expires_in` would count otherwise
        // (a stored record may hold any expiry).
        TokenSet::from_parts(t, at(self.obtained), at(self.expires))
    }

    /// The refresh token's fingerprint.
    pub(crate) fn fingerprint(&self) -> Fingerprint {
        self.fp
    }

    /// Replaces the refresh token (one rescued from an answer).
    pub(crate) fn set_refresh(&mut self, token: RefreshToken) {
        self.fp = token.fingerprint();
        self.refresh = token;
    }

    /// Takes the refresh token out to build a request, without copying the
    /// secret; [`put_back_refresh`](Self::put_back_refresh) returns it.
    pub(crate) fn take_refresh(&mut self) -> RefreshToken {
        std::mem::replace(&mut self.refresh, RefreshToken::new(String::new()))
    }

    /// Puts back the token taken by [`take_refresh`](Self::take_refresh).
    pub(crate) fn put_back_refresh(&mut self, token: RefreshToken) {
        self.refresh = token;
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

    /// The Company id of the answer, if it had one.
    pub(crate) fn company_id(&self) -> Option<&str> {
        self.meta.id(0)
    }

    /// The Location id of the answer, if it had one.
    pub(crate) fn location_id(&self) -> Option<&str> {
        self.meta.id(1)
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
    fn round_trip_keeps_every_known_field() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let set = TokenSet::new(sample(), t0);
        let mut interner = Interner::default();
        let held = Held::from_set(set.clone(), None, &mut interner).unwrap();
        let mut expected = sample();
        expected.extra.clear();
        expected.is_bulk_installation = None; // "Bearer" is not a boolean
        assert_eq!(held.to_set(), TokenSet::new(expected, t0));
        assert_eq!(held.expires_at(), set.expires_at());
        // Absent ids stay absent; present ones keep their place.
        let mut sparse = sample();
        sparse.company_id = None;
        sparse.plan_id = None;
        let again = Held::from_set(TokenSet::new(sparse, t0), Some(&held), &mut interner).unwrap();
        let t = again.to_set().into_token();
        assert_eq!(
            (t.company_id, t.location_id.as_deref()),
            (None, Some("loc-1"))
        );
        assert_eq!(
            (t.user_id.as_deref(), t.plan_id, t.app_id.as_deref()),
            (Some("user-1"), None, Some("app"))
        );
    }

    #[test]
    fn missing_refresh_token_falls_back() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let mut t = sample();
        t.refresh_token = None;
        let mut interner = Interner::default();
        assert!(Held::from_set(TokenSet::new(t.clone(), t0), None, &mut interner).is_none());
        let prev = Held::from_set(TokenSet::new(sample(), t0), None, &mut interner).unwrap();
        let held = Held::from_set(TokenSet::new(t, t0), Some(&prev), &mut interner).unwrap();
        assert_eq!(
            held.refresh.secret(),
            "refresh-token-placeholder-000000000000"
        );
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
