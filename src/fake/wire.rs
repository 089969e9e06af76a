//! The fake's wire format: reading requests, writing bodies and error shapes.

use http::{Request, StatusCode, header};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::{Fault, Install, Issued};
use crate::token::UserType;

const JSON: &str = "application/json; charset=utf-8";

/// An answer before the common headers are added.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) content_type: Option<&'static str>,
    pub(super) body: Vec<u8>,
    pub(super) location: Option<String>,
    pub(super) retry_after: Option<u64>,
    /// The rate limit is used up: report nothing remaining.
    pub(super) exhausted: bool,
    /// A `401 Invalid JWT`: the bearer was missing, unknown or expired.
    pub(super) invalid_bearer: bool,
}

impl Reply {
    fn raw(status: StatusCode, content_type: Option<&'static str>, body: Vec<u8>) -> Self {
        Reply {
            status,
            content_type,
            body,
            location: None,
            retry_after: None,
            exhausted: false,
            invalid_bearer: false,
        }
    }

    /// A JSON answer.
    pub(super) fn json<T: Serialize>(status: StatusCode, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Reply::raw(status, Some(JSON), body),
            Err(_) => Reply::nest(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error"),
        }
    }

    /// A NestJS error: `{"statusCode","message"}`, plus the `error` title that
    /// NestJS adds to 401, 403, 404 and 422.
    pub(super) fn nest(status: StatusCode, message: &str) -> Self {
        Reply::json(
            status,
            &NestBody {
                status_code: status.as_u16(),
                message: NestMessage::One(message),
                error: title(status),
            },
        )
    }

    /// `400 {"statusCode":400,"message":"Missing parameter: <name>"}`.
    pub(super) fn missing(name: &str) -> Self {
        Reply::nest(
            StatusCode::BAD_REQUEST,
            &format!("Missing parameter: {name}"),
        )
    }

    /// `400 {"statusCode":400,"message":"Invalid parameter: <name>"}`.
    pub(super) fn invalid(name: &str) -> Self {
        Reply::nest(
            StatusCode::BAD_REQUEST,
            &format!("Invalid parameter: {name}"),
        )
    }

    /// A NestJS validation failure: `422` with a list of messages.
    pub(super) fn unprocessable(messages: &[String]) -> Self {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        Reply::json(
            status,
            &NestBody {
                status_code: status.as_u16(),
                message: NestMessage::Many(messages),
                error: title(status),
            },
        )
    }

    /// A v3 AIP error envelope.
    pub(super) fn aip(
        status: StatusCode,
        code: &str,
        message: &str,
        details: &[(&str, &str)],
        resolution: &str,
    ) -> Self {
        Reply::json(
            status,
            &AipEnvelope {
                error: AipBody {
                    code,
                    message,
                    details: Pairs(details),
                    resolution,
                },
            },
        )
    }

    /// `302` to `location`, with no body.
    pub(super) fn redirect(location: String) -> Self {
        let mut r = Reply::raw(StatusCode::FOUND, None, Vec::new());
        r.location = Some(location);
        r
    }

    /// A scripted fault.
    pub(super) fn fault(fault: &Fault) -> Self {
        match fault {
            Fault::RateLimited { retry_after_secs } => {
                let mut r = Reply::nest(
                    StatusCode::TOO_MANY_REQUESTS,
                    "ThrottlerException: Too Many Requests",
                );
                r.retry_after = *retry_after_secs;
                r.exhausted = true;
                r
            }
            Fault::ServerError => {
                Reply::nest(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
            }
            Fault::BadGatewayHtml => Reply::raw(
                StatusCode::BAD_GATEWAY,
                Some("text/html"),
                b"<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n<center><h1>502 Bad Gateway</h1></center>\n<hr><center>cloudflare</center>\n</body>\n</html>\n".to_vec(),
            ),
            Fault::LocationNotActive => location_not_active(),
            Fault::Unauthorized { message } => Reply::nest(StatusCode::UNAUTHORIZED, message),
        }
    }
}

/// `400 {"statusCode":400,"message":"Location is not active"}`.
pub(super) fn location_not_active() -> Reply {
    Reply::nest(StatusCode::BAD_REQUEST, "Location is not active")
}

/// `401 Invalid JWT`, for a missing, unknown or expired bearer.
pub(super) fn invalid_jwt() -> Reply {
    let mut r = Reply::nest(StatusCode::UNAUTHORIZED, "Invalid JWT");
    r.invalid_bearer = true;
    r
}

fn title(status: StatusCode) -> Option<&'static str> {
    match status.as_u16() {
        401 | 403 | 404 | 422 => status.canonical_reason(),
        _ => None,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NestBody<'a> {
    status_code: u16,
    message: NestMessage<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum NestMessage<'a> {
    One(&'a str),
    Many(&'a [String]),
}

#[derive(Serialize)]
struct AipEnvelope<'a> {
    error: AipBody<'a>,
}

#[derive(Serialize)]
struct AipBody<'a> {
    code: &'a str,
    message: &'a str,
    details: Pairs<'a>,
    resolution: &'a str,
}

/// Pairs serialized as a JSON object, in order.
pub(super) struct Pairs<'a, V = &'a str>(pub(super) &'a [(&'a str, V)]);

impl<V: Serialize> Serialize for Pairs<'_, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

// ---- reading requests -----------------------------------------------------------

/// One parameter of a form or query.
pub(super) enum Param<'a> {
    /// Absent or empty.
    Absent,
    One(&'a str),
    /// Sent more than once.
    Repeated,
}

/// Decoded form or query pairs.
pub(super) struct Params(Vec<(String, String)>);

impl Params {
    /// Decodes an `application/x-www-form-urlencoded` body; `None` if it does not decode.
    pub(super) fn form(body: &[u8]) -> Option<Self> {
        serde_urlencoded::from_bytes(body).ok().map(Params)
    }

    /// Decodes the query string of a request; `None` if it does not decode.
    pub(super) fn query<B>(req: &Request<B>) -> Option<Self> {
        serde_urlencoded::from_str(req.uri().query().unwrap_or(""))
            .ok()
            .map(Params)
    }

    pub(super) fn get(&self, name: &str) -> Param<'_> {
        let mut values = self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
        match (values.next(), values.next()) {
            (None, _) => Param::Absent,
            (Some(_), Some(_)) => Param::Repeated,
            (Some(v), None) if v.is_empty() => Param::Absent,
            (Some(v), None) => Param::One(v),
        }
    }
}

/// The request's `Version` header.
pub(super) enum VersionHeader {
    Absent,
    /// A date: the v2 API. `published` says whether it is one of
    /// [`PUBLISHED_API_VERSIONS`](super::PUBLISHED_API_VERSIONS); an
    /// unpublished one is later than the first of them.
    V2 {
        published: bool,
    },
    V3,
    /// Neither `v3` nor a date from the first published one on.
    Invalid,
}

pub(super) fn version_header<B>(req: &Request<B>) -> VersionHeader {
    let Some(value) = req.headers().get("version") else {
        return VersionHeader::Absent;
    };
    match value.to_str().map(str::trim) {
        Ok("v3") => VersionHeader::V3,
        Ok(v) if super::PUBLISHED_API_VERSIONS.contains(&v) => {
            VersionHeader::V2 { published: true }
        }
        // Dates compare as text in this form; none before the first
        // published version can be one a client learned from HighLevel.
        Ok(v) if is_calendar_date(v) && v > super::PUBLISHED_API_VERSIONS[0] => {
            VersionHeader::V2 { published: false }
        }
        _ => VersionHeader::Invalid,
    }
}

/// Whether `text` is a date of the calendar written `YYYY-MM-DD`, the form
/// of every v2 `Version` HighLevel has published.
fn is_calendar_date(text: &str) -> bool {
    let b = text.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !digits(0..4)
        || !digits(5..7)
        || !digits(8..10)
    {
        return false;
    }
    let (Ok(year), Ok(month), Ok(day)) = (
        text[0..4].parse::<i32>(),
        text[5..7].parse::<u8>(),
        text[8..10].parse::<u8>(),
    ) else {
        return false;
    };
    ::time::Month::try_from(month)
        .and_then(|m| ::time::Date::from_calendar_date(year, m, day))
        .is_ok()
}

/// The bearer token of the `Authorization` header.
pub(super) fn bearer<B>(req: &Request<B>) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The media type of the body, lowercased, without parameters.
pub(super) fn media_type<B>(req: &Request<B>) -> Option<String> {
    let value = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    let media = value.split(';').next().unwrap_or("").trim();
    Some(media.to_ascii_lowercase())
}

// ---- token bodies -------------------------------------------------------------------

/// Which token answer to write.
#[derive(Clone, Copy)]
pub(super) enum TokenShape {
    /// `/oauth/token`: the v2 schema plus `refreshTokenId`, or the v3 schema.
    Token,
    /// `/oauth/locationToken` / `/oauth/location-token`, with or without a
    /// refresh token.
    LocationToken {
        /// Whether the answer carries `refresh_token`.
        with_refresh_token: bool,
    },
}

/// A token answer, serialized with the field names and order of its schema.
pub(super) struct TokenBody<'a> {
    pub(super) v3: bool,
    pub(super) shape: TokenShape,
    pub(super) issued: &'a Issued,
    pub(super) expires_in: u64,
    pub(super) install: &'a Install,
    pub(super) approve_all_locations: bool,
    pub(super) app_id: &'a str,
}

impl Serialize for TokenBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = |v2: &'static str, v3: &'static str| if self.v3 { v3 } else { v2 };
        let i = self.install;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry(n("access_token", "accessToken"), &self.issued.access_token)?;
        m.serialize_entry(n("token_type", "tokenType"), "Bearer")?;
        m.serialize_entry(n("expires_in", "expiresIn"), &self.expires_in)?;
        match self.shape {
            TokenShape::Token => {
                m.serialize_entry(
                    n("refresh_token", "refreshToken"),
                    &self.issued.refresh_token,
                )?;
                m.serialize_entry("scope", &i.scope)?;
                m.serialize_entry("userType", i.user_type.as_str())?;
                if let Some(l) = &i.location_id {
                    m.serialize_entry("locationId", l)?;
                }
                m.serialize_entry("companyId", &i.company_id)?;
                m.serialize_entry("approvedLocations", &i.approved_locations)?;
                m.serialize_entry("userId", &i.user_id)?;
                if let Some(p) = &i.plan_id {
                    m.serialize_entry("planId", p)?;
                }
                let company = i.user_type == UserType::Company;
                m.serialize_entry("isBulkInstallation", &company)?;
                if company {
                    m.serialize_entry("installToFutureLocations", &i.install_to_future_locations)?;
                    m.serialize_entry("approveAllLocations", &self.approve_all_locations)?;
                }
                if !self.v3 {
                    m.serialize_entry("refreshTokenId", &self.issued.refresh_token_id)?;
                }
            }
            TokenShape::LocationToken { with_refresh_token } => {
                m.serialize_entry("scope", &i.scope)?;
                if let Some(l) = &i.location_id {
                    m.serialize_entry("locationId", l)?;
                }
                if let Some(p) = &i.plan_id {
                    m.serialize_entry("planId", p)?;
                }
                m.serialize_entry("userId", &i.user_id)?;
                m.serialize_entry("appId", self.app_id)?;
                m.serialize_entry("versionId", self.app_id)?;
                if with_refresh_token {
                    m.serialize_entry(
                        n("refresh_token", "refreshToken"),
                        &self.issued.refresh_token,
                    )?;
                }
            }
        }
        m.end()
    }
}
