//! `POST /oauth/locationToken`; documented on [`location_token_request`].

use http::{Method, Request, Response, header};

use crate::bearer::{CompanyBearer, bearer_headers};
use crate::config::{ApiVersion, Config};
use crate::error::{Endpoint, Error};
use crate::token::{TokenResponse, UserType};
use crate::token_endpoint::parse_token_answer;

/// The v2 path.
pub const LOCATION_TOKEN_PATH: &str = "/oauth/locationToken";
/// The v3 path.
pub const LOCATION_TOKEN_PATH_V3: &str = "/oauth/location-token";

/// The fields a location-token answer must carry, by their v2 wire names
/// (v3 names such as `tokenType` and `expiresIn` count too). `access_token`
/// is checked first, on its own.
pub const LOCATION_TOKEN_REQUIRED_FIELDS: [&str; 6] = [
    "token_type",
    "expires_in",
    "scope",
    "locationId",
    "planId",
    "userId",
];

/// The location-token path of an API version.
#[must_use]
pub fn location_token_path(version: ApiVersion) -> &'static str {
    match version {
        ApiVersion::V2 => LOCATION_TOKEN_PATH,
        ApiVersion::V3 => LOCATION_TOKEN_PATH_V3,
    }
}

/// A request for a Location token: which company, which location.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct LocationTokenRequest {
    company_id: String,
    location_id: String,
}

impl LocationTokenRequest {
    /// A token for `location_id`, a sub-account of `company_id`.
    pub fn new(company_id: impl Into<String>, location_id: impl Into<String>) -> Self {
        LocationTokenRequest {
            company_id: company_id.into(),
            location_id: location_id.into(),
        }
    }

    /// The company id.
    #[must_use]
    pub fn company_id(&self) -> &str {
        &self.company_id
    }

    /// The location id.
    #[must_use]
    pub fn location_id(&self) -> &str {
        &self.location_id
    }
}

/// Builds `POST /oauth/locationToken` (v3: `/oauth/location-token`):
/// `Authorization: Bearer <Company access token>`, the config's `Version`
/// header, and the form body `companyId`, `locationId` (the same names in v3).
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput), and no request,
/// for an empty company or location id, an empty access token, or a bearer
/// known to be a Location token (see [`CompanyBearer`]).
///
/// `POST /oauth/locationToken` (v3: `/oauth/location-token`): turn the agency
/// (Company) token into a sub-account (Location) token.
///
/// The endpoint needs scope `oauth.write` on the Company token, and the
/// location among the install's approved locations (else 403 "The token does
/// not have access to this location.").
pub fn location_token_request(
    config: &Config,
    bearer: &(impl CompanyBearer + ?Sized),
    req: &LocationTokenRequest,
) -> Result<Request<Vec<u8>>, Error> {
    if req.company_id.trim().is_empty() {
        return Err(Error::input("the company id is empty"));
    }
    if req.location_id.trim().is_empty() {
        return Err(Error::input("the location id is empty"));
    }
    let form = [
        ("companyId", req.company_id.as_str()),
        ("locationId", req.location_id.as_str()),
    ];
    let body = serde_urlencoded::to_string(form)
        .map_err(|e| Error::input(format!("the form could not be encoded: {e}")))?
        .into_bytes();
    let builder = Request::builder()
        .method(Method::POST)
        .uri(config.url(location_token_path(config.api_version())))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    bearer_headers(builder, config, bearer)?
        .body(body)
        .map_err(|e| Error::config(format!("the request could not be built: {e}")))
}

/// Parses the answer of `POST /oauth/locationToken` (either API version) into
/// the same [`TokenResponse`] the token endpoint gives.
///
/// - Any 2xx is success (the docs say 200; the server has been seen to send 201).
/// - A leading UTF-8 byte-order mark is ignored, as by every parser.
/// - Only `access_token` is required. The fields of
///   [`LOCATION_TOKEN_REQUIRED_FIELDS`] are always present in the docs' answers,
///   but the official OpenAPI requires only `userId`, and `planId` exists for
///   paid apps only; refusing a working token over one of them would throw it
///   (and any refresh token with it) away. Check
///   [`missing_location_token_fields`] if they matter to you.
/// - `appId`, `versionId` and `refresh_token` are optional; other fields are
///   kept in [`TokenResponse::extra`].
/// - The answer has no `userType`; the parser sets
///   [`UserType::Location`], since that is all the endpoint mints. So a
///   location token handed to a builder that needs the Company token is
///   refused (see [`CompanyBearer`]).
///
/// # Errors
/// A server error of the kind the answer describes (a 403 "The token does not
/// have access to this location." is [`Forbidden`](crate::ErrorKind::Forbidden),
/// a 401 is [`Unauthorized`](crate::ErrorKind::Unauthorized)), or
/// [`ErrorKind::Unreadable`](crate::ErrorKind::Unreadable).
pub fn parse_location_token_response<B: AsRef<[u8]>>(
    resp: Response<B>,
) -> Result<TokenResponse, Error> {
    let mut token = parse_token_answer(Endpoint::LocationToken, &resp)?;
    if token.user_type.is_none() {
        token.user_type = Some(UserType::Location);
    }
    Ok(token)
}

/// Which of [`LOCATION_TOKEN_REQUIRED_FIELDS`] a token answer lacks (or has in
/// a form that could not be read), by v2 wire name.
#[must_use]
pub fn missing_location_token_fields(token: &TokenResponse) -> Vec<&'static str> {
    let present = [
        token.token_type.is_some(),
        token.expires_in.is_some(),
        token.scope.is_some(),
        token.location_id.is_some(),
        token.plan_id.is_some(),
        token.user_id.is_some(),
    ];
    LOCATION_TOKEN_REQUIRED_FIELDS
        .iter()
        .zip(present)
        .filter(|(_, here)| !here)
        .map(|(name, _)| *name)
        .collect()
}
