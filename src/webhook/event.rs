//! Typed webhook events, read leniently from the JSON body.
//!
//! Payload shapes as HighLevel documents them (`docs/highlevel-facts.md`,
//! "Install webhooks"): INSTALL for a
//! Location, a Company or a bulk install with `locationIds`; UNINSTALL for a
//! location or an agency; any other type kept as raw JSON.

use std::fmt;
use std::time::SystemTime;

use serde_json::{Map, Value};

use super::timestamp::{format_rfc3339_millis, parse_rfc3339};
use crate::error::{Error, ErrorKind};
use crate::token::{LenientBool, UserType};

/// The largest webhook body read: 1 MiB. A bulk INSTALL listing 10,000
/// location ids is about 300 KiB.
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

/// The longest `webhookId` taken, in bytes: 256. HighLevel's ids are UUIDs
/// (36 characters); a longer one is refused as
/// [`ErrorKind::WebhookMalformed`], so a seen-id store never has to hold
/// one (each id is remembered for the whole replay window).
pub const MAX_WEBHOOK_ID_BYTES: usize = 256;

/// One webhook delivery, parsed: the fields every event shares, and the
/// event itself.
///
/// Parsing is lenient like the token parser: unknown fields are kept, and an
/// optional field of the wrong shape is kept as sent in the event's `extra`
/// map (for INSTALL and UNINSTALL) instead of failing the event.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct WebhookEvent {
    /// `type`, as sent (`"INSTALL"`, `"UNINSTALL"`, `"LocationCreate"`…).
    pub event_type: String,
    /// `appId`: the part of the client id before the first `-`.
    pub app_id: Option<String>,
    /// `webhookId`: unique per delivery, repeated on retries. Absent from old
    /// UNINSTALL deliveries.
    pub webhook_id: Option<String>,
    /// `timestamp` (ISO 8601, read as RFC 3339). `None` when absent or
    /// unreadable; an unreadable one is kept in the payload's `extra`.
    pub timestamp: Option<SystemTime>,
    /// What happened.
    pub payload: WebhookPayload,
}

/// What a webhook says happened.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WebhookPayload {
    /// `type: "INSTALL"`: the app was installed (boxed: it is the largest).
    Install(Box<InstallEvent>),
    /// `type: "UNINSTALL"`: the app was uninstalled.
    Uninstall(UninstallEvent),
    /// Any other type (`LocationCreate`, `PLAN_CHANGE`, contact events…): the
    /// whole body, as sent, `type` included.
    Other(Map<String, Value>),
}

/// Where an app was installed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InstallTarget {
    /// One sub-account (`installType: "Location"` with a `locationId`). The
    /// app gets a Location token through the code exchange.
    Location {
        /// `locationId`.
        location_id: String,
    },
    /// An agency-wide install with no location list (`installType:
    /// "Company"`): the app gets a Company token.
    Company {
        /// `companyId`.
        company_id: String,
    },
    /// A bulk install: a non-empty `locationIds` list. The app gets a Company
    /// token and mints a Location token for each location.
    Bulk {
        /// `companyId`.
        company_id: String,
        /// `locationIds` (with `locationId` added if it was sent and is not in
        /// the list), in the order sent, without repeats.
        location_ids: Vec<String>,
    },
}

/// An INSTALL event.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct InstallEvent {
    /// Where the app was installed.
    pub target: InstallTarget,
    /// `installType`, as sent (`Location`, `Company`, or another value kept).
    pub install_type: Option<UserType>,
    /// `companyId`: the agency (also for a Location install).
    pub company_id: Option<String>,
    /// `versionId`.
    pub version_id: Option<String>,
    /// `userId`: who installed the app.
    pub user_id: Option<String>,
    /// `planId`, for paid apps.
    pub plan_id: Option<String>,
    /// `trial`.
    pub trial: Option<Trial>,
    /// `isWhitelabelCompany`.
    pub is_whitelabel_company: Option<LenientBool>,
    /// `whitelabelDetails`.
    pub whitelabel_details: Option<WhitelabelDetails>,
    /// `companyName`.
    pub company_name: Option<String>,
    /// Every other field, and fields of the wrong shape, as sent.
    pub extra: Map<String, Value>,
}

/// The `trial` object of an INSTALL.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Trial {
    /// `onTrial`.
    pub on_trial: Option<LenientBool>,
    /// `trialDuration`, as sent (its unit is not documented).
    pub trial_duration: Option<Value>,
    /// `trialStartDate`, as sent.
    pub trial_start_date: Option<String>,
    /// Every other field, as sent.
    pub extra: Map<String, Value>,
}

/// The `whitelabelDetails` object of an INSTALL.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WhitelabelDetails {
    /// `domain`.
    pub domain: Option<String>,
    /// `logoUrl`.
    pub logo_url: Option<String>,
    /// Every other field, as sent.
    pub extra: Map<String, Value>,
}

/// What was uninstalled.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UninstallTarget {
    /// One sub-account (`locationId` present): drop its Location grant.
    Location {
        /// `locationId`.
        location_id: String,
    },
    /// An agency (`companyId` and no `locationId`): drop the Company grant
    /// and every Location grant minted from it.
    Company {
        /// `companyId`.
        company_id: String,
    },
}

/// An UNINSTALL event.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct UninstallEvent {
    /// What was uninstalled.
    pub target: UninstallTarget,
    /// `companyId`, when sent (also on some location uninstalls).
    pub company_id: Option<String>,
    /// Every other field, and fields of the wrong shape, as sent.
    pub extra: Map<String, Value>,
}

/// Shows the timestamp as RFC 3339 (UTC, milliseconds), the same on every platform.
impl fmt::Debug for WebhookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Rfc3339(SystemTime);
        impl fmt::Debug for Rfc3339 {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&format_rfc3339_millis(self.0))
            }
        }
        f.debug_struct("WebhookEvent")
            .field("event_type", &self.event_type)
            .field("app_id", &self.app_id)
            .field("webhook_id", &self.webhook_id)
            .field("timestamp", &self.timestamp.map(Rfc3339))
            .field("payload", &self.payload)
            .finish()
    }
}

impl WebhookEvent {
    /// The `(webhookId, timestamp)` pair that identifies the delivery for
    /// replay checks, when it has both.
    #[must_use]
    pub fn replay_key(&self) -> Option<(&str, SystemTime)> {
        Some((self.webhook_id.as_deref()?, self.timestamp?))
    }

    /// Whether the type is INSTALL or UNINSTALL, whose `appId` is required.
    fn is_install_event(&self) -> bool {
        matches!(
            self.payload,
            WebhookPayload::Install(_) | WebhookPayload::Uninstall(_)
        )
    }

    /// Checks `appId` against `app_id` (the client id before its first `-`).
    /// INSTALL and UNINSTALL must carry it; other types are checked when they
    /// carry one.
    ///
    /// # Errors
    /// [`ErrorKind::WebhookOtherApp`].
    pub fn check_app_id(&self, app_id: &str) -> Result<(), Error> {
        match self.app_id.as_deref() {
            Some(a) if a == app_id => Ok(()),
            Some(a) => Err(Error::webhook(
                ErrorKind::WebhookOtherApp,
                format!(
                    "appId {:?} is not this app's {app_id:?}",
                    crate::sanitize::server_text(a)
                ),
            )),
            None if self.is_install_event() => Err(Error::webhook(
                ErrorKind::WebhookOtherApp,
                format!(
                    "the {} event has no appId, so it cannot be shown to be for this app",
                    crate::sanitize::server_text(&self.event_type)
                ),
            )),
            None => Ok(()),
        }
    }
}

/// Parses a webhook body, without checking its signature: use it only on a
/// body that [`WebhookKeys::verify`](super::WebhookKeys::verify) accepted.
///
/// A UTF-8 byte-order mark before the JSON is skipped.
///
/// # Errors
/// [`ErrorKind::WebhookMalformed`]: the body is over [`MAX_WEBHOOK_BYTES`],
/// not UTF-8 JSON, not an object, has no string `type`, or is an INSTALL or
/// UNINSTALL without the ids its target needs (`locationId` for a Location,
/// `companyId` for a Company or bulk install, one of them for an UNINSTALL),
/// or its `webhookId` is over [`MAX_WEBHOOK_ID_BYTES`].
pub fn parse_webhook(body: &[u8]) -> Result<WebhookEvent, Error> {
    if body.len() > MAX_WEBHOOK_BYTES {
        return Err(malformed(format!(
            "the body is {} bytes, over the {MAX_WEBHOOK_BYTES}-byte cap",
            body.len()
        )));
    }
    let json = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let value: Value = serde_json::from_slice(json).map_err(|e| {
        if json.iter().all(u8::is_ascii_whitespace) {
            return malformed("the body is empty".to_owned());
        }
        let what = if e.is_eof() {
            "the JSON body ends early (truncated)"
        } else if std::str::from_utf8(json).is_err() {
            "the body is not UTF-8"
        } else {
            "the body is not JSON"
        };
        malformed(format!(
            "{what} (at line {} column {})",
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(mut map) = value else {
        return Err(malformed("the body is JSON but not an object".to_owned()));
    };
    let event_type = match map.get("type") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        _ => return Err(malformed("the body has no string `type`".to_owned())),
    };
    let app_id = string(&map, "appId");
    let webhook_id = string(&map, "webhookId");
    if let Some(id) = &webhook_id
        && id.len() > MAX_WEBHOOK_ID_BYTES
    {
        return Err(malformed(format!(
            "the webhookId is {} bytes long, over the {MAX_WEBHOOK_ID_BYTES}-byte limit",
            id.len()
        )));
    }
    let timestamp = map
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339);
    let payload = if event_type.eq_ignore_ascii_case("INSTALL") {
        WebhookPayload::Install(Box::new(install(&mut map)?))
    } else if event_type.eq_ignore_ascii_case("UNINSTALL") {
        WebhookPayload::Uninstall(uninstall(&mut map)?)
    } else {
        WebhookPayload::Other(map)
    };
    Ok(WebhookEvent {
        event_type,
        app_id,
        webhook_id,
        timestamp,
        payload,
    })
}

fn malformed(detail: String) -> Error {
    Error::webhook(ErrorKind::WebhookMalformed, detail)
}

fn string(map: &Map<String, Value>, key: &str) -> Option<String> {
    match map.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// Takes `key` out of `map` if it is a non-empty string; a value of another
/// shape stays in `map` (it becomes part of `extra`).
fn take_string(map: &mut Map<String, Value>, key: &str) -> Option<String> {
    match map.get(key) {
        Some(Value::String(s)) if !s.is_empty() => match map.remove(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        },
        Some(Value::Null) => {
            map.remove(key);
            None
        }
        _ => None,
    }
}

/// Takes `key` out of `map` if it is an object.
fn take_object(map: &mut Map<String, Value>, key: &str) -> Option<Map<String, Value>> {
    match map.get(key) {
        Some(Value::Object(_)) => match map.remove(key) {
            Some(Value::Object(o)) => Some(o),
            _ => None,
        },
        Some(Value::Null) => {
            map.remove(key);
            None
        }
        _ => None,
    }
}

/// Takes a flag out of `map`, in any shape ([`LenientBool`] keeps odd ones).
fn take_flag(map: &mut Map<String, Value>, key: &str) -> Option<LenientBool> {
    match map.remove(key)? {
        Value::Null => None,
        v => Some(LenientBool::from_value(v)),
    }
}

/// Removes the envelope fields from an INSTALL/UNINSTALL map, leaving a
/// `timestamp` that did not read in place (it becomes part of `extra`).
fn strip_envelope(map: &mut Map<String, Value>) {
    for key in ["type", "appId", "webhookId"] {
        if matches!(map.get(key), Some(Value::String(_) | Value::Null)) {
            map.remove(key);
        }
    }
    if map
        .get("timestamp")
        .is_some_and(|v| v.as_str().and_then(parse_rfc3339).is_some() || v.is_null())
    {
        map.remove("timestamp");
    }
}

fn install(map: &mut Map<String, Value>) -> Result<InstallEvent, Error> {
    strip_envelope(map);
    let install_type = take_string(map, "installType").map(|s| UserType::parse(&s));
    let company_id = take_string(map, "companyId");
    let location_id = take_string(map, "locationId");
    let location_ids = match map.get("locationIds") {
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            let mut ids: Vec<String> = Vec::with_capacity(items.len() + 1);
            let mut seen = std::collections::HashSet::with_capacity(items.len() + 1);
            for id in items
                .iter()
                .filter_map(Value::as_str)
                .chain(location_id.as_deref())
            {
                if !id.is_empty() && seen.insert(id) {
                    ids.push(id.to_owned());
                }
            }
            map.remove("locationIds");
            ids
        }
        Some(Value::Null) => {
            map.remove("locationIds");
            Vec::new()
        }
        _ => Vec::new(),
    };
    let target = if location_ids.len() > 1
        || (location_ids.len() == 1 && install_type == Some(UserType::Company))
    {
        let company_id = company_id.clone().ok_or_else(|| {
            malformed("a bulk INSTALL (with locationIds) has no companyId".to_owned())
        })?;
        InstallTarget::Bulk {
            company_id,
            location_ids,
        }
    } else if install_type == Some(UserType::Company) {
        let company_id = company_id
            .clone()
            .ok_or_else(|| malformed("a Company INSTALL has no companyId".to_owned()))?;
        InstallTarget::Company { company_id }
    } else {
        // A Location install, or an unknown installType naming one location.
        let location_id = location_id
            .or_else(|| location_ids.into_iter().next())
            .ok_or_else(|| {
                malformed(format!(
                    "an INSTALL with installType {:?} has no locationId",
                    install_type.as_ref().map_or("(none)", UserType::as_str)
                ))
            })?;
        InstallTarget::Location { location_id }
    };
    let trial = take_object(map, "trial").map(|mut t| Trial {
        on_trial: take_flag(&mut t, "onTrial"),
        trial_duration: t.remove("trialDuration").filter(|v| !v.is_null()),
        trial_start_date: take_string(&mut t, "trialStartDate"),
        extra: t,
    });
    let whitelabel_details = take_object(map, "whitelabelDetails").map(|mut w| WhitelabelDetails {
        domain: take_string(&mut w, "domain"),
        logo_url: take_string(&mut w, "logoUrl"),
        extra: w,
    });
    Ok(InstallEvent {
        target,
        install_type,
        company_id,
        version_id: take_string(map, "versionId"),
        user_id: take_string(map, "userId"),
        plan_id: take_string(map, "planId"),
        trial,
        is_whitelabel_company: take_flag(map, "isWhitelabelCompany"),
        whitelabel_details,
        company_name: take_string(map, "companyName"),
        extra: std::mem::take(map),
    })
}

fn uninstall(map: &mut Map<String, Value>) -> Result<UninstallEvent, Error> {
    strip_envelope(map);
    let company_id = take_string(map, "companyId");
    let target = match (take_string(map, "locationId"), &company_id) {
        (Some(location_id), _) => UninstallTarget::Location { location_id },
        (None, Some(company_id)) => UninstallTarget::Company {
            company_id: company_id.clone(),
        },
        (None, None) => {
            return Err(malformed(
                "an UNINSTALL has neither locationId nor companyId".to_owned(),
            ));
        }
    };
    Ok(UninstallEvent {
        target,
        company_id,
        extra: std::mem::take(map),
    })
}
