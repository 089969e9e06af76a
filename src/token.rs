//! Token types shared by every endpoint: the parsed [`TokenResponse`], the
//! persistable [`TokenSet`] with an absolute expiry, [`UserType`], [`Scopes`] and
//! the lenient [`LenientBool`].

use crate::time::{unix, unix_seconds};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::secret::{AccessToken, RefreshToken};

/// The lifetime assumed when a token answer has no readable `expires_in`:
/// HighLevel's documented 86,399 seconds.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(86_399);

/// The longest `expires_in` taken at face value: ten years. A longer one is
/// kept in [`TokenResponse::expires_in`] as sent, but the lifetime counted
/// is [`DEFAULT_LIFETIME`].
pub const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);

/// The class of a token: agency-wide or one sub-account.
///
/// Two values are equal when their wire values are: `Other("Company")` made
/// by hand is [`Company`](Self::Company), as it reads back.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum UserType {
    /// An agency (Company) token.
    Company,
    /// A sub-account (Location) token.
    Location,
    /// A value this crate does not know, kept as sent.
    Other(String),
}

impl UserType {
    /// The wire value.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            UserType::Company => "Company",
            UserType::Location => "Location",
            UserType::Other(s) => s,
        }
    }

    /// Reads a wire value; unknown values become [`UserType::Other`].
    #[must_use]
    pub fn parse(s: &str) -> Self {
        match s {
            "Company" => UserType::Company,
            "Location" => UserType::Location,
            other => UserType::Other(other.to_owned()),
        }
    }
}

impl PartialEq for UserType {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for UserType {}

impl std::hash::Hash for UserType {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Display for UserType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for UserType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for UserType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| UserType::parse(&s))
    }
}

/// A space-separated scope list, kept exactly as the server sent it.
///
/// The server sends a space-separated string (the official OpenAPI in
/// `tests/data/spec/`; `docs/highlevel-facts.md`, "The token endpoint").
/// A JSON list of strings (`["contacts.readonly","locations.readonly"]`),
/// seen in the field, reads as the same scopes: its items joined with one
/// space. It is written back as the joined string.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Scopes(String);

impl Scopes {
    /// Wraps a raw, space-separated scope string.
    pub fn new(raw: impl Into<String>) -> Self {
        Scopes(raw.into())
    }

    /// Reads the wire value: a space-separated string, or a list of strings
    /// (joined with one space). `None` for any other shape.
    #[must_use]
    pub fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::String(s) => Some(Scopes(s.clone())),
            Value::Array(items) => {
                let mut joined = String::new();
                for item in items {
                    let s = item.as_str()?;
                    if !joined.is_empty() {
                        joined.push(' ');
                    }
                    joined.push_str(s);
                }
                Some(Scopes(joined))
            }
            _ => None,
        }
    }

    /// The raw string, as sent.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The scopes one by one (empty items skipped).
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split_ascii_whitespace()
    }

    /// The scopes as a list.
    #[must_use]
    pub fn to_vec(&self) -> Vec<&str> {
        self.iter().collect()
    }

    /// Whether `scope` is granted.
    #[must_use]
    pub fn contains(&self, scope: &str) -> bool {
        self.iter().any(|s| s == scope)
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Scopes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Reads a string or a list of strings, as [`Scopes::from_value`].
impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Scopes::from_value(&v)
            .ok_or_else(|| de::Error::custom("a scope string or a list of scope strings"))
    }
}

/// A flag declared boolean that servers send in other shapes too: `true`,
/// `"false"`, or the documented example `"Bearer"` for `isBulkInstallation`.
///
/// What reads as a boolean (`true`/`false`, or the strings `"true"` /
/// `"false"` in any case, surrounding whitespace ignored) becomes
/// [`Bool`](Self::Bool);
/// anything else is kept as sent in [`Raw`](Self::Raw), numbers included (a
/// `1` may be a count as well as a flag). A `Raw` made by hand of a value
/// that reads as a boolean is written as that value, and reads back as
/// `Bool`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LenientBool {
    /// A boolean, or the strings `"true"` / `"false"`.
    Bool(bool),
    /// Anything else, kept as sent.
    Raw(Value),
}

/// A boolean as servers send one: `true`/`false`, or the strings `"true"` /
/// `"false"` in any case and with surrounding whitespace. Anything else
/// (numbers included) is not a boolean. Shared by every parser of the crate.
pub(crate) fn read_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

impl LenientBool {
    /// The boolean, if the value was one.
    #[must_use]
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            LenientBool::Bool(b) => Some(*b),
            LenientBool::Raw(_) => None,
        }
    }

    pub(crate) fn from_value(v: Value) -> Self {
        match read_bool(&v) {
            Some(b) => LenientBool::Bool(b),
            None => LenientBool::Raw(v),
        }
    }

    fn to_value(&self) -> Value {
        match self {
            LenientBool::Bool(b) => Value::Bool(*b),
            LenientBool::Raw(v) => v.clone(),
        }
    }
}

/// A token answer from `/oauth/token` or `/oauth/locationToken`, in either API
/// version (snake_case v2 and camelCase v3 names both read into it).
///
/// Only `access_token` is required. A wrongly typed optional field never fails
/// the parse, because failing would drop a freshly rotated refresh token: it is
/// kept in [`extra`](Self::extra) under its wire name instead.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct TokenResponse {
    /// `access_token`.
    pub access_token: AccessToken,
    /// `token_type`, normally `"Bearer"`.
    pub token_type: Option<String>,
    /// `expires_in` in whole seconds, read from an integer, a float or a
    /// numeric string; any whole number of seconds is kept as sent (see
    /// [`lifetime`](Self::lifetime) for how much of it counts).
    pub expires_in: Option<u64>,
    /// `refresh_token`; absent from some answers (the old one then stays valid).
    pub refresh_token: Option<RefreshToken>,
    /// `scope`: a space-separated string, or a list of strings (see [`Scopes`]).
    pub scope: Option<Scopes>,
    /// `userType`.
    pub user_type: Option<UserType>,
    /// `locationId`, for sub-account tokens.
    pub location_id: Option<String>,
    /// `companyId`.
    pub company_id: Option<String>,
    /// `approvedLocations`, for agency tokens: a list of location ids. A
    /// single string reads as a list of that one id (an empty string as an
    /// empty list); it is not split, since ids hold no separator.
    pub approved_locations: Option<Vec<String>>,
    /// `userId`: who installed the app. Documented as required; tolerated missing.
    pub user_id: Option<String>,
    /// `planId`.
    pub plan_id: Option<String>,
    /// `isBulkInstallation`.
    pub is_bulk_installation: Option<LenientBool>,
    /// `installToFutureLocations` (agency tokens).
    pub install_to_future_locations: Option<LenientBool>,
    /// `approveAllLocations` (agency tokens).
    pub approve_all_locations: Option<LenientBool>,
    /// `appId` (location tokens).
    pub app_id: Option<String>,
    /// `versionId` (location tokens).
    pub version_id: Option<String>,
    /// Every other field, as sent (e.g. `refreshTokenId`).
    pub extra: Map<String, Value>,
}

impl TokenResponse {
    /// A response holding just an access token; the other fields are empty.
    #[must_use]
    pub fn new(access_token: AccessToken) -> Self {
        TokenResponse {
            access_token,
            token_type: None,
            expires_in: None,
            refresh_token: None,
            scope: None,
            user_type: None,
            location_id: None,
            company_id: None,
            approved_locations: None,
            user_id: None,
            plan_id: None,
            is_bulk_installation: None,
            install_to_future_locations: None,
            approve_all_locations: None,
            app_id: None,
            version_id: None,
            extra: Map::new(),
        }
    }

    /// The lifetime: `expires_in`, or [`DEFAULT_LIFETIME`] when it is absent
    /// or longer than [`MAX_LIFETIME`] (nonsense for a token that lives a day).
    #[must_use]
    pub fn lifetime(&self) -> Duration {
        self.expires_in
            .filter(|s| *s <= MAX_LIFETIME.as_secs())
            .map_or(DEFAULT_LIFETIME, Duration::from_secs)
    }
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TokenResponse");
        d.field("access_token", &self.access_token);
        macro_rules! opt {
            ($($name:ident),*) => {$(
                if let Some(v) = &self.$name {
                    d.field(stringify!($name), v);
                }
            )*};
        }
        // Free-text fields the server fills go through the same redaction as
        // `extra`, in case one carries a credential.
        if let Some(t) = &self.token_type {
            d.field("token_type", &crate::sanitize::sanitize_message(t));
        }
        opt!(
            expires_in,
            refresh_token,
            scope,
            user_type,
            location_id,
            company_id,
            approved_locations,
            user_id,
            plan_id
        );
        for (name, flag) in [
            ("is_bulk_installation", &self.is_bulk_installation),
            (
                "install_to_future_locations",
                &self.install_to_future_locations,
            ),
            ("approve_all_locations", &self.approve_all_locations),
        ] {
            match flag {
                Some(LenientBool::Raw(v)) => {
                    d.field(name, &format_args!("Raw({:?})", RedactedValue(v)));
                }
                Some(b) => {
                    d.field(name, b);
                }
                None => {}
            }
        }
        opt!(app_id, version_id);
        if !self.extra.is_empty() {
            d.field("extra", &RedactedMap(&self.extra));
        }
        d.finish()
    }
}

/// Shows a map with long opaque strings redacted, in case an unknown field
/// carries a secret.
struct RedactedMap<'a>(&'a Map<String, Value>);

impl fmt::Debug for RedactedMap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, RedactedValue(v))))
            .finish()
    }
}

struct RedactedValue<'a>(&'a Value);

impl fmt::Debug for RedactedValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::String(s) => write!(f, "{:?}", crate::sanitize::sanitize_message(s)),
            Value::Array(items) => f
                .debug_list()
                .entries(items.iter().map(RedactedValue))
                .finish(),
            Value::Object(m) => RedactedMap(m).fmt(f),
            other => write!(f, "{other}"),
        }
    }
}

// ---- wire format -------------------------------------------------------------

/// The fields a token answer may carry, by wire name (v2 and v3).
enum Field {
    AccessToken,
    TokenType,
    ExpiresIn,
    RefreshToken,
    Scope,
    UserType,
    LocationId,
    CompanyId,
    ApprovedLocations,
    UserId,
    PlanId,
    IsBulkInstallation,
    InstallToFutureLocations,
    ApproveAllLocations,
    AppId,
    VersionId,
}

fn field(name: &str) -> Option<Field> {
    Some(match name {
        "access_token" | "accessToken" => Field::AccessToken,
        "token_type" | "tokenType" => Field::TokenType,
        "expires_in" | "expiresIn" => Field::ExpiresIn,
        "refresh_token" | "refreshToken" => Field::RefreshToken,
        "scope" => Field::Scope,
        "userType" | "user_type" => Field::UserType,
        "locationId" => Field::LocationId,
        "companyId" => Field::CompanyId,
        "approvedLocations" => Field::ApprovedLocations,
        "userId" => Field::UserId,
        "planId" => Field::PlanId,
        "isBulkInstallation" => Field::IsBulkInstallation,
        "installToFutureLocations" => Field::InstallToFutureLocations,
        "approveAllLocations" => Field::ApproveAllLocations,
        "appId" => Field::AppId,
        "versionId" => Field::VersionId,
        _ => return None,
    })
}

/// A token answer as read off the wire, before the `access_token` check.
pub(crate) struct WireToken {
    pub(crate) access_token: Option<AccessToken>,
    pub(crate) rest: TokenResponse,
}

/// A map key, borrowed from the input when it can be.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for WireToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WireToken;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireToken, A::Error> {
                let mut access: Option<AccessToken> = None;
                let mut r = TokenResponse::new(AccessToken::new(String::new()));
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    let value: Value = map.next_value()?;
                    let Some(f) = field(&key) else {
                        r.extra.insert(key.into_owned(), value);
                        continue;
                    };
                    // A value of the wrong type goes to `extra` under its wire name.
                    let misfit = match (f, value) {
                        (_, Value::Null) => None,
                        (Field::AccessToken, Value::String(s)) => {
                            access = Some(AccessToken::new(s));
                            None
                        }
                        (Field::RefreshToken, Value::String(s)) => {
                            r.refresh_token = Some(RefreshToken::new(s));
                            None
                        }
                        (Field::ExpiresIn, v) => match seconds(&v) {
                            Some(s) => {
                                r.expires_in = Some(s);
                                None
                            }
                            None => Some(v),
                        },
                        (Field::TokenType, Value::String(s)) => set(&mut r.token_type, s),
                        (Field::Scope, v) => match Scopes::from_value(&v) {
                            Some(scopes) => {
                                r.scope = Some(scopes);
                                None
                            }
                            None => Some(v),
                        },
                        (Field::UserType, Value::String(s)) => {
                            r.user_type = Some(UserType::parse(&s));
                            None
                        }
                        (Field::LocationId, Value::String(s)) => set(&mut r.location_id, s),
                        (Field::CompanyId, Value::String(s)) => set(&mut r.company_id, s),
                        (Field::UserId, Value::String(s)) => set(&mut r.user_id, s),
                        (Field::PlanId, Value::String(s)) => set(&mut r.plan_id, s),
                        (Field::AppId, Value::String(s)) => set(&mut r.app_id, s),
                        (Field::VersionId, Value::String(s)) => set(&mut r.version_id, s),
                        (Field::ApprovedLocations, Value::String(s)) => {
                            r.approved_locations =
                                Some(if s.is_empty() { Vec::new() } else { vec![s] });
                            None
                        }
                        (Field::ApprovedLocations, Value::Array(items)) => {
                            if items.iter().all(Value::is_string) {
                                r.approved_locations = Some(
                                    items
                                        .into_iter()
                                        .filter_map(|v| match v {
                                            Value::String(s) => Some(s),
                                            _ => None,
                                        })
                                        .collect(),
                                );
                                None
                            } else {
                                Some(Value::Array(items))
                            }
                        }
                        (Field::IsBulkInstallation, v) => {
                            r.is_bulk_installation = Some(LenientBool::from_value(v));
                            None
                        }
                        (Field::InstallToFutureLocations, v) => {
                            r.install_to_future_locations = Some(LenientBool::from_value(v));
                            None
                        }
                        (Field::ApproveAllLocations, v) => {
                            r.approve_all_locations = Some(LenientBool::from_value(v));
                            None
                        }
                        (_, v) => Some(v),
                    };
                    if let Some(v) = misfit {
                        r.extra.insert(key.into_owned(), v);
                    }
                }
                Ok(WireToken {
                    access_token: access,
                    rest: r,
                })
            }
        }
        d.deserialize_map(V)
    }
}

fn set(slot: &mut Option<String>, s: String) -> Option<Value> {
    *slot = Some(s);
    None
}

/// Whole seconds from an integer, a float or a numeric string; `None` for
/// anything negative, non-finite, non-numeric, or a float of 10^15 or more
/// (past the integers a float holds exactly). Every `u64` reads, so what the
/// writer writes reads back.
fn seconds(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0 && *f < 1e15)
                .map(|f| f as u64)
        }),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<u64>().ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && *f >= 0.0 && *f < 1e15)
                    .map(|f| f as u64)
            })
        }
        _ => None,
    }
}

impl<'de> Deserialize<'de> for TokenResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = WireToken::deserialize(d)?;
        let mut r = wire.rest;
        r.access_token = wire
            .access_token
            .ok_or_else(|| de::Error::missing_field("access_token"))?;
        Ok(r)
    }
}

/// Serializes in the v2 wire shape, so a serialized response parses back to itself.
impl Serialize for TokenResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("access_token", &self.access_token)?;
        macro_rules! opt {
            ($($name:ident => $wire:literal),*) => {$(
                if let Some(v) = &self.$name {
                    m.serialize_entry($wire, v)?;
                }
            )*};
        }
        opt!(
            token_type => "token_type",
            expires_in => "expires_in",
            refresh_token => "refresh_token",
            scope => "scope",
            user_type => "userType",
            location_id => "locationId",
            company_id => "companyId",
            approved_locations => "approvedLocations",
            user_id => "userId",
            plan_id => "planId",
            app_id => "appId",
            version_id => "versionId"
        );
        for (wire, v) in [
            ("isBulkInstallation", &self.is_bulk_installation),
            (
                "installToFutureLocations",
                &self.install_to_future_locations,
            ),
            ("approveAllLocations", &self.approve_all_locations),
        ] {
            if let Some(v) = v {
                m.serialize_entry(wire, &v.to_value())?;
            }
        }
        for (k, v) in &self.extra {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

// ---- token set -----------------------------------------------------------------

/// A token answer pinned to the time it was obtained, with an absolute expiry.
/// Serializable, so it can be persisted; a token set read back from its JSON
/// equals the one written.
///
/// Times are kept in whole Unix seconds; `obtained_at` is rounded down, so the
/// expiry errs early, never late.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenSet {
    #[serde(with = "unix_seconds")]
    obtained_at: SystemTime,
    #[serde(with = "unix_seconds")]
    expires_at: SystemTime,
    token: TokenResponse,
}

impl TokenSet {
    /// Pins `token` to `obtained_at`: the time the response was received, or
    /// better, the time its request was sent.
    #[must_use]
    pub fn new(token: TokenResponse, obtained_at: SystemTime) -> Self {
        let obtained_at = floor_seconds(obtained_at);
        // Whole seconds also where the sum is cut at the end of time.
        let expires_at = floor_seconds(crate::time::saturating_add(obtained_at, token.lifetime()));
        TokenSet {
            obtained_at,
            expires_at,
            token,
        }
    }

    /// A token set with its times as stored (whole seconds), whatever the
    /// token's `expires_in` says.
    pub(crate) fn from_parts(
        token: TokenResponse,
        obtained_at: SystemTime,
        expires_at: SystemTime,
    ) -> Self {
        TokenSet {
            obtained_at: floor_seconds(obtained_at),
            expires_at: floor_seconds(expires_at),
            token,
        }
    }

    /// When the token was obtained (whole seconds).
    #[must_use]
    pub fn obtained_at(&self) -> SystemTime {
        self.obtained_at
    }

    /// When the access token expires.
    #[must_use]
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// Whether the access token is expired at `now`, or will be within `skew`.
    #[must_use]
    pub fn is_expired(&self, now: SystemTime, skew: Duration) -> bool {
        now.checked_add(skew).is_none_or(|t| t >= self.expires_at)
    }

    /// The access token.
    #[must_use]
    pub fn access_token(&self) -> &AccessToken {
        &self.token.access_token
    }

    /// The refresh token, if the answer carried one.
    #[must_use]
    pub fn refresh_token(&self) -> Option<&RefreshToken> {
        self.token.refresh_token.as_ref()
    }

    /// The whole answer.
    #[must_use]
    pub fn token(&self) -> &TokenResponse {
        &self.token
    }

    /// Takes the answer out.
    #[must_use]
    pub fn into_token(self) -> TokenResponse {
        self.token
    }
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("obtained_at", &unix(self.obtained_at))
            .field("expires_at", &unix(self.expires_at))
            .field("token", &self.token)
            .finish()
    }
}

fn floor_seconds(t: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix(t))
}
