//! The persisted record of one grant, and the grant id.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, ErrorKind};
use crate::secret::{AccessToken, RefreshToken};
use crate::time::{unix, unix_seconds};
use crate::token::{Scopes, TokenSet};

/// The schema version written into every [`GrantRecord`]. A record of another
/// schema is refused with [`ErrorKind::StaleRecord`].
pub const RECORD_SCHEMA: u32 = 1;

/// The highest record version the engine takes (`i64::MAX`, so that stores
/// with signed 64-bit integers hold every version). A record above it is
/// refused with [`ErrorKind::StaleRecord`]: its version could not go up.
pub const MAX_RECORD_VERSION: u64 = i64::MAX as u64;

/// The latest time a record may hold (`obtained_at`, `expires_at`, a lease's
/// or a suspension's end): 9999-12-31T23:59:59Z, in Unix seconds. A record
/// with a later time is refused with [`ErrorKind::InvalidInput`]: such times
/// are corrupt, and deadlines computed from them would reach the end of the
/// platform's time range.
pub const MAX_RECORD_TIME: u64 = 253_402_300_799;

/// The longest grant id the engine takes, in bytes of UTF-8. Ids come from
/// the server (Location and Company ids) and from webhooks; a store keys its
/// rows by them.
pub const MAX_GRANT_ID_BYTES: usize = 256;

/// The caller's name for one grant (one installation): typically the Company
/// id of an agency token or the Location id of a sub-account token.
///
/// Cheap to clone (shared string).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrantId(Arc<str>);

impl GrantId {
    /// Wraps a caller id.
    pub fn new(id: impl AsRef<str>) -> Self {
        GrantId(Arc::from(id.as_ref()))
    }

    /// The id as a string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks that every store can hold the id: not empty, at most
    /// [`MAX_GRANT_ID_BYTES`], no NUL byte (Postgres text cannot hold one).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`], naming the id by its first characters.
    pub fn check(&self) -> Result<(), Error> {
        let id = self.as_str();
        let shown = || {
            let head: String = id.chars().take(16).collect();
            if head.len() < id.len() {
                format!("{head:?}… ({} bytes)", id.len())
            } else {
                format!("{head:?}")
            }
        };
        let why = if id.is_empty() {
            "is empty"
        } else if id.len() > MAX_GRANT_ID_BYTES {
            "is longer than 256 bytes"
        } else if id.contains('\0') {
            "holds a NUL byte"
        } else {
            return Ok(());
        };
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "grant id {} {why}: no store can key a record by it",
                shown()
            ),
        ))
    }
}

impl fmt::Debug for GrantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for GrantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Borrow<str> for GrantId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for GrantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for GrantId {
    fn from(s: &str) -> Self {
        GrantId(Arc::from(s))
    }
}

impl From<String> for GrantId {
    fn from(s: String) -> Self {
        GrantId(Arc::from(s))
    }
}

impl From<&String> for GrantId {
    fn from(s: &String) -> Self {
        GrantId(Arc::from(s.as_str()))
    }
}

impl Serialize for GrantId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for GrantId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(GrantId::from)
    }
}

/// The standing of a grant, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum GrantStatus {
    /// Tokens are usable and refreshed ahead of expiry.
    Active,
    /// The location is not active. The refresh token is kept; the engine tries
    /// it again at `until`.
    Suspended {
        /// When the next attempt is due.
        #[serde(with = "unix_seconds")]
        until: SystemTime,
    },
    /// The refresh was refused with a 401 that does not name the client
    /// credentials ([`ErrorKind::GrantUnauthorized`]). The refresh token is
    /// kept; the engine tries it again at `until`. Someone should look at the
    /// grant meanwhile.
    Unauthorized {
        /// When the next attempt is due.
        #[serde(with = "unix_seconds")]
        until: SystemTime,
        /// Why, for humans (sanitized; no secrets).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The refresh token was refused as invalid: only a new authorization
    /// (re-install) recovers. Nothing is retried.
    ReauthorizationNeeded {
        /// Why, for humans (sanitized; no secrets).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// A short claim by one engine that it is refreshing a grant (shared-store
/// mode). Other engines leave the grant alone until `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Who holds it (the engine's holder name).
    pub holder: String,
    /// When it ends, whole seconds (rounded up when taken).
    #[serde(with = "unix_seconds")]
    pub until: SystemTime,
}

/// Everything the engine knows about one grant, as the caller persists it.
///
/// Serialized as JSON it reads:
///
/// ```json
/// {"schema":1,"grant":"loc-1","version":7,"status":{"state":"active"},
///  "tokens":{"obtained_at":1767225600,"expires_at":1767311999,
///            "token":{"access_token":"…","refresh_token":"…","scope":"…","userType":"Location",…}}}
/// ```
///
/// - `schema` is [`RECORD_SCHEMA`];
/// - `version` goes up by at least one with every write; shared stores
///   compare-and-swap on it (see [`Output::Persist`](crate::Output::Persist));
/// - `tokens` holds the access and refresh tokens with their absolute expiry,
///   scopes and ids; treat the record as the secret it is;
/// - `lease` is present while an engine in shared-store mode is refreshing;
/// - `minted_from` is present on a Location grant the engine mints from a
///   Company grant (see [`Engine::add_location`](crate::Engine::add_location)):
///   the Company grant's id. Such a record may hold no refresh token (the
///   location-token answer had none): the grant is then minted again.
///   Records written before the field existed read as `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GrantRecord {
    /// The schema version of this record, [`RECORD_SCHEMA`].
    pub schema: u32,
    /// The grant.
    pub grant: GrantId,
    /// The record version; bumped on every persist.
    pub version: u64,
    /// The standing of the grant.
    pub status: GrantStatus,
    /// A refresh in progress (shared-store mode), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// The tokens, with absolute expiry, scopes and ids.
    pub tokens: TokenSet,
    /// The Company grant this Location grant is minted from
    /// (`POST /oauth/locationToken`), if the engine mints it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minted_from: Option<GrantId>,
}

impl GrantRecord {
    /// A version-0, active record: what to hand to
    /// [`Engine::restore`](crate::Engine::restore) for a grant whose tokens were
    /// kept elsewhere until now.
    #[must_use]
    pub fn new(grant: impl Into<GrantId>, tokens: TokenSet) -> Self {
        GrantRecord {
            schema: RECORD_SCHEMA,
            grant: grant.into(),
            version: 0,
            status: GrantStatus::Active,
            lease: None,
            tokens,
            minted_from: None,
        }
    }

    /// When the access token expires.
    #[must_use]
    pub fn expires_at(&self) -> SystemTime {
        self.tokens.expires_at()
    }

    /// The access token.
    #[must_use]
    pub fn access_token(&self) -> &AccessToken {
        self.tokens.access_token()
    }

    /// The refresh token: the installation itself.
    #[must_use]
    pub fn refresh_token(&self) -> Option<&RefreshToken> {
        self.tokens.refresh_token()
    }

    /// The granted scopes, if the token answer listed them.
    #[must_use]
    pub fn scopes(&self) -> Option<&Scopes> {
        self.tokens.token().scope.as_ref()
    }

    /// The Company id, if known.
    #[must_use]
    pub fn company_id(&self) -> Option<&str> {
        self.tokens.token().company_id.as_deref()
    }

    /// The Location id, for sub-account tokens.
    #[must_use]
    pub fn location_id(&self) -> Option<&str> {
        self.tokens.token().location_id.as_deref()
    }

    /// Checks what the engine needs: the schema, a version that can go up,
    /// times before [`MAX_RECORD_TIME`], and a non-empty refresh token.
    pub(crate) fn check(&self) -> Result<(), Error> {
        self.grant.check()?;
        if self.version > MAX_RECORD_VERSION {
            return Err(Error::new(
                ErrorKind::StaleRecord,
                format!(
                    "record of grant {} has version {}, above the highest the engine takes ({MAX_RECORD_VERSION})",
                    self.grant, self.version
                ),
            ));
        }
        if self.schema != RECORD_SCHEMA {
            return Err(Error::new(
                ErrorKind::StaleRecord,
                format!(
                    "record of grant {} has schema {}, this engine reads schema {RECORD_SCHEMA}",
                    self.grant, self.schema
                ),
            ));
        }
        let times = [
            ("obtained_at", Some(self.tokens.obtained_at())),
            ("expires_at", Some(self.tokens.expires_at())),
            ("lease until", self.lease.as_ref().map(|l| l.until)),
            (
                "suspended until",
                match &self.status {
                    GrantStatus::Suspended { until } => Some(*until),
                    _ => None,
                },
            ),
        ];
        for (name, t) in times {
            if let Some(t) = t
                && unix(t) > MAX_RECORD_TIME
            {
                return Err(Error::input(format!(
                    "record of grant {} has {name} {} s after the Unix epoch, past the latest time the engine takes ({MAX_RECORD_TIME})",
                    self.grant,
                    unix(t)
                )));
            }
        }
        match self.refresh_token() {
            Some(r) if !r.secret().trim().is_empty() => Ok(()),
            // A minted Location grant is minted again from its Company grant.
            _ if self.minted_from.is_some() => Ok(()),
            _ => Err(Error::input(format!(
                "record of grant {} has no refresh token; the engine cannot keep it fresh",
                self.grant
            ))),
        }
    }
}
