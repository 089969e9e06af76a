//! `POST /oauth/token`; documented on [`token_request`].

use http::{HeaderValue, Method, Request, Response, header};

use crate::config::{ApiVersion, Config, check_redirect_uri};
use crate::error::{Endpoint, Error};
use crate::response::{checked_body, failure, unreadable_success};
use crate::secret::{AuthorizationCode, RefreshToken};
use crate::token::{TokenResponse, UserType, WireToken};

/// The grant a token request presents.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum GrantType {
    /// Exchange the code from the consent redirect.
    AuthorizationCode {
        /// The one-time code.
        code: AuthorizationCode,
        /// The redirect URI; the config's when `None`.
        redirect_uri: Option<String>,
    },
    /// Spend a refresh token for a new access token (and a new refresh token).
    RefreshToken(RefreshToken),
    /// The `client_credentials` grant. Listed by the API, not documented further.
    ClientCredentials,
}

impl GrantType {
    /// The `grant_type` value.
    #[must_use]
    pub fn grant_type(&self) -> &'static str {
        match self {
            GrantType::AuthorizationCode { .. } => "authorization_code",
            GrantType::RefreshToken(_) => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }
}

/// A request to `POST /oauth/token`: a grant and an optional `user_type`.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct TokenRequest {
    grant: GrantType,
    user_type: Option<UserType>,
}

impl TokenRequest {
    /// Any grant.
    pub fn new(grant: GrantType) -> Self {
        TokenRequest {
            grant,
            user_type: None,
        }
    }

    /// Exchange an authorization code, with the config's redirect URI.
    pub fn authorization_code(code: impl Into<AuthorizationCode>) -> Self {
        Self::new(GrantType::AuthorizationCode {
            code: code.into(),
            redirect_uri: None,
        })
    }

    /// Refresh with a refresh token.
    pub fn refresh_token(refresh_token: impl Into<RefreshToken>) -> Self {
        Self::new(GrantType::RefreshToken(refresh_token.into()))
    }

    /// The `client_credentials` grant.
    pub fn client_credentials() -> Self {
        Self::new(GrantType::ClientCredentials)
    }

    /// Asks for a `Company` or a `Location` token.
    pub fn user_type(mut self, user_type: UserType) -> Self {
        self.user_type = Some(user_type);
        self
    }

    /// For a code exchange, a redirect URI other than the config's. Ignored by
    /// other grants.
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        if let GrantType::AuthorizationCode { redirect_uri, .. } = &mut self.grant {
            *redirect_uri = Some(uri.into());
        }
        self
    }

    /// The grant.
    #[must_use]
    pub fn grant(&self) -> &GrantType {
        &self.grant
    }

    /// Takes the grant out (e.g. to reuse its refresh token without a copy).
    #[must_use]
    pub fn into_grant(self) -> GrantType {
        self.grant
    }

    /// The requested user type.
    #[must_use]
    pub fn requested_user_type(&self) -> Option<&UserType> {
        self.user_type.as_ref()
    }
}

/// Builds `POST /oauth/token` for `req`.
///
/// The form body holds, in this order: `client_id`, `client_secret`,
/// `grant_type`, then `code` or `refresh_token`, `user_type`, `redirect_uri`
/// (v3: the camelCase names `clientId`, `clientSecret`, `grantType`, `code`,
/// `refreshToken`, `userType`, `redirectUri`, and a `Version: v3` header).
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput), and no request,
/// for an empty code or refresh token, a redirect URI the config would refuse
/// (see [`ConfigBuilder::redirect_uri`](crate::ConfigBuilder::redirect_uri)),
/// or a `user_type` other than `Company` or `Location`.
///
/// `POST /oauth/token`: build the request for each grant, parse the answer.
///
/// The client authenticates with `client_id` and `client_secret` form fields,
/// never with an `Authorization` header: the HoopAI page's Bearer line is an
/// artefact of its doc generator (the official OpenAPI has no security on this path,
/// and a client fetching its first token has no bearer).
pub fn token_request(config: &Config, req: &TokenRequest) -> Result<Request<Vec<u8>>, Error> {
    let v3 = config.api_version() == ApiVersion::V3;
    let name = |v2: &'static str, v3name: &'static str| if v3 { v3name } else { v2 };
    let mut form: Vec<(&str, &str)> = Vec::with_capacity(6);
    form.push((name("client_id", "clientId"), config.client_id()));
    form.push((
        name("client_secret", "clientSecret"),
        config.client_secret().secret(),
    ));
    form.push((name("grant_type", "grantType"), req.grant.grant_type()));
    let mut redirect: Option<&str> = None;
    match &req.grant {
        GrantType::AuthorizationCode { code, redirect_uri } => {
            if code.secret().trim().is_empty() {
                return Err(Error::input("the authorization code is empty"));
            }
            form.push(("code", code.secret()));
            redirect = redirect_uri.as_deref().or(config.redirect_uri());
            if let Some(uri) = redirect {
                check_redirect_uri(uri)
                    .map_err(|why| Error::input(format!("redirect URI {why}")))?;
            }
        }
        GrantType::RefreshToken(token) => {
            if token.secret().trim().is_empty() {
                return Err(Error::input("the refresh token is empty"));
            }
            form.push((name("refresh_token", "refreshToken"), token.secret()));
        }
        GrantType::ClientCredentials => {}
    }
    if let Some(t) = &req.user_type {
        if let UserType::Other(other) = t {
            return Err(Error::input(format!(
                "user_type must be Company or Location, not {other:?}"
            )));
        }
        form.push((name("user_type", "userType"), t.as_str()));
    }
    if let Some(uri) = redirect {
        form.push((name("redirect_uri", "redirectUri"), uri));
    }
    let body = crate::form::encode(&form).into_bytes();
    let mut request = Request::new(body);
    *request.method_mut() = Method::POST;
    *request.uri_mut() = config.token_uri().clone();
    let headers = request.headers_mut();
    headers.reserve(3);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(FORM_CONTENT_TYPE),
    );
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    if v3 {
        headers.insert(
            "version",
            HeaderValue::from_static(ApiVersion::V3.header_value()),
        );
    }
    Ok(request)
}

/// The content type of form bodies.
pub(crate) const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// Parses the answer of `POST /oauth/token` (either API version).
///
/// - Any 2xx is success; a 2xx whose body is an error body is an error.
/// - Only `access_token` is required; a missing `refresh_token` is fine.
/// - Bodies over [`MAX_BODY_BYTES`](crate::MAX_BODY_BYTES) are refused unread.
/// - A body (success or error) that starts with UTF-8 byte-order marks is
///   read as the JSON after them (RFC 8259 §8.1), as by every parser.
///
/// # Errors
/// A server error of the kind the answer describes, or
/// [`ErrorKind::Unreadable`](crate::ErrorKind::Unreadable).
pub fn parse_token_response<B: AsRef<[u8]>>(resp: Response<B>) -> Result<TokenResponse, Error> {
    parse_token_answer(Endpoint::Token, &resp)
}

/// Shared by the token and location-token parsers.
pub(crate) fn parse_token_answer<B: AsRef<[u8]>>(
    endpoint: Endpoint,
    resp: &Response<B>,
) -> Result<TokenResponse, Error> {
    let status = resp.status();
    if !status.is_success() {
        return Err(failure(endpoint, resp));
    }
    let body = checked_body(resp)?;
    let wire: WireToken =
        serde_json::from_slice(body).map_err(|e| unreadable_success(status, body, &e))?;
    match wire.access_token {
        Some(access) if !access.is_empty() => {
            let mut token = wire.rest;
            token.access_token = access;
            Ok(token)
        }
        _ => {
            let mut rest = wire.rest;
            let as_value = serde_json::Value::Object(std::mem::take(&mut rest.extra));
            let err = if Error::looks_like_error_body(&as_value) {
                Error::from_answer(endpoint, status, resp.headers(), Some(&as_value), body)
            } else {
                Error::unreadable(
                    crate::error::Unreadable::UnexpectedShape,
                    status,
                    body,
                    "the answer has no access_token",
                )
            };
            // Never drop a refresh token the server may have just rotated.
            Err(match rest.refresh_token.take() {
                Some(rt) if !rt.is_empty() => err.with_rescued_refresh_token(rt),
                _ => err,
            })
        }
    }
}
