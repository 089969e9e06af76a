//! The bearer of the agency-only endpoints (`/oauth/locationToken`,
//! `/oauth/installedLocations`): a Company access token.

use http::header::{self, HeaderValue};
use http::request::Builder;

use crate::config::Config;
use crate::error::Error;
use crate::secret::AccessToken;
use crate::token::{TokenResponse, TokenSet, UserType};

/// Something that holds a Company (agency) access token.
///
/// The agency-only endpoints refuse a Location (sub-account) token with a 401
/// ("This authClass type is not allowed to access this scope"). Passing a
/// [`TokenResponse`] or a [`TokenSet`] lets the crate catch that before
/// anything is sent: a token whose `userType` is `Location`, or which has a
/// `locationId` and no `userType`, is refused with
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput). A bare
/// [`AccessToken`] carries no class, so it is taken as it is.
pub trait CompanyBearer {
    /// The Company access token.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when this is
    /// known to be a Location token.
    fn company_access_token(&self) -> Result<&AccessToken, Error>;
}

impl CompanyBearer for AccessToken {
    fn company_access_token(&self) -> Result<&AccessToken, Error> {
        Ok(self)
    }
}

impl CompanyBearer for TokenResponse {
    fn company_access_token(&self) -> Result<&AccessToken, Error> {
        match &self.user_type {
            Some(UserType::Location) => Err(Error::input(
                "this is a Location (sub-account) token; the agency endpoints need the Company token",
            )),
            None if self.location_id.is_some() => Err(Error::input(
                "this token carries a locationId, so it is a Location (sub-account) token; \
                 the agency endpoints need the Company token",
            )),
            _ => Ok(&self.access_token),
        }
    }
}

impl CompanyBearer for TokenSet {
    fn company_access_token(&self) -> Result<&AccessToken, Error> {
        self.token().company_access_token()
    }
}

impl<T: CompanyBearer + ?Sized> CompanyBearer for &T {
    fn company_access_token(&self) -> Result<&AccessToken, Error> {
        (**self).company_access_token()
    }
}

/// Adds `Authorization: Bearer …` (marked sensitive), `Version` and `Accept`.
pub(crate) fn bearer_headers(
    builder: Builder,
    config: &Config,
    bearer: &(impl CompanyBearer + ?Sized),
) -> Result<Builder, Error> {
    let token = bearer.company_access_token()?;
    if token.secret().trim().is_empty() {
        return Err(Error::input("the access token is empty"));
    }
    let mut value = HeaderValue::try_from(format!("Bearer {}", token.secret()))
        .map_err(|_| Error::input("the access token holds characters a header cannot carry"))?;
    value.set_sensitive(true);
    Ok(builder
        .header(header::AUTHORIZATION, value)
        .header("Version", config.api_version().header_value())
        .header(header::ACCEPT, "application/json"))
}
