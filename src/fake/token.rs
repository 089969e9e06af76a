//! `POST /oauth/token`: code exchange and refresh.

use std::time::SystemTime;

use http::{Request, StatusCode};
use serde_json::Value;

use super::wire::{
    Param, Params, Reply, TokenBody, TokenShape, VersionHeader, location_not_active, media_type,
    version_header,
};
use super::{FakeServer, Install, Issued};
use crate::token::UserType;

/// The token form's fields: v2 name, v3 (and message) name.
const CLIENT_ID: (&str, &str) = ("client_id", "clientId");
const CLIENT_SECRET: (&str, &str) = ("client_secret", "clientSecret");
const GRANT_TYPE: (&str, &str) = ("grant_type", "grantType");
const CODE: (&str, &str) = ("code", "code");
const REFRESH_TOKEN: (&str, &str) = ("refresh_token", "refreshToken");
const USER_TYPE: (&str, &str) = ("user_type", "userType");
const REDIRECT_URI: (&str, &str) = ("redirect_uri", "redirectUri");

const FIELDS: [(&str, &str); 7] = [
    CLIENT_ID,
    CLIENT_SECRET,
    GRANT_TYPE,
    CODE,
    REFRESH_TOKEN,
    USER_TYPE,
    REDIRECT_URI,
];

/// The fields of a token request, in [`FIELDS`] order; `None` when absent or empty.
struct TokenForm([Option<String>; 7]);

impl TokenForm {
    fn get(&self, field: (&str, &str)) -> Option<&str> {
        let i = FIELDS.iter().position(|f| *f == field)?;
        self.0.get(i)?.as_deref()
    }

    /// The field, or the `400 Missing parameter` answer.
    fn need(&self, field: (&str, &str)) -> Result<&str, Reply> {
        self.get(field).ok_or_else(|| Reply::missing(field.1))
    }

    /// Reads a form body (v2 snake_case, v3 camelCase) or, in v3, a JSON body.
    fn read(req: &Request<Vec<u8>>, v3: bool) -> Result<Self, Reply> {
        let name = |f: (&'static str, &'static str)| if v3 { f.1 } else { f.0 };
        let mut values: [Option<String>; 7] = Default::default();
        let mut problems = Vec::new();
        match media_type(req).as_deref() {
            Some("application/x-www-form-urlencoded") | None => {
                let params = Params::form(req.body()).ok_or_else(|| Reply::invalid("body"))?;
                for (slot, f) in values.iter_mut().zip(FIELDS) {
                    match params.get(name(f)) {
                        Param::Absent => {}
                        Param::One(v) => *slot = Some(v.to_owned()),
                        Param::Repeated => problems.push(format!("{} must be a string", f.1)),
                    }
                }
            }
            Some("application/json") if v3 => {
                let body: Value =
                    serde_json::from_slice(req.body()).map_err(|_| Reply::invalid("body"))?;
                let Value::Object(map) = body else {
                    return Err(Reply::unprocessable(&["body must be an object".to_owned()]));
                };
                for (slot, f) in values.iter_mut().zip(FIELDS) {
                    match map.get(f.1) {
                        None | Some(Value::Null) => {}
                        Some(Value::String(s)) if s.is_empty() => {}
                        Some(Value::String(s)) => *slot = Some(s.clone()),
                        Some(_) => problems.push(format!("{} must be a string", f.1)),
                    }
                }
            }
            Some(other) => {
                problems.push(format!(
                    "the body must be application/x-www-form-urlencoded{}, not {other}",
                    if v3 { " or application/json" } else { "" }
                ));
            }
        }
        if problems.is_empty() {
            Ok(TokenForm(values))
        } else {
            Err(Reply::unprocessable(&problems))
        }
    }
}

impl FakeServer {
    pub(super) fn token_endpoint(&mut self, req: &Request<Vec<u8>>, now: SystemTime) -> Reply {
        self.token_answer(req, now).unwrap_or_else(|reply| reply)
    }

    fn token_answer(&mut self, req: &Request<Vec<u8>>, now: SystemTime) -> Result<Reply, Reply> {
        let v3 = match version_header(req) {
            VersionHeader::Absent | VersionHeader::V2 { .. } => false,
            VersionHeader::V3 => true,
            VersionHeader::Invalid => return Err(Reply::invalid("version")),
        };
        let form = TokenForm::read(req, v3)?;
        let client_id = form.need(CLIENT_ID)?;
        let client_secret = form.need(CLIENT_SECRET)?;
        let grant_type = form.need(GRANT_TYPE)?;
        let user_type = match form.get(USER_TYPE) {
            None => None,
            Some("Company") => Some(UserType::Company),
            Some("Location") => Some(UserType::Location),
            Some(_) => return Err(Reply::invalid(USER_TYPE.1)),
        };
        let secret = match grant_type {
            "authorization_code" => form.need(CODE)?,
            "refresh_token" => form.need(REFRESH_TOKEN)?,
            _ => return Err(Reply::invalid(GRANT_TYPE.1)),
        };
        if client_id != self.client_id || client_secret != self.client_secret.secret() {
            return Err(Reply::nest(
                StatusCode::UNAUTHORIZED,
                "Invalid client: client credentials are invalid",
            ));
        }
        if grant_type == "authorization_code" {
            self.exchange_code(secret, form.get(REDIRECT_URI), user_type.as_ref(), v3, now)
        } else {
            self.refresh(secret, user_type.as_ref(), v3, now)
        }
    }

    fn exchange_code(
        &mut self,
        code: &str,
        redirect_uri: Option<&str>,
        user_type: Option<&UserType>,
        v3: bool,
        now: SystemTime,
    ) -> Result<Reply, Reply> {
        let record = self.codes.get(code).ok_or_else(|| {
            Reply::nest(
                StatusCode::BAD_REQUEST,
                "Invalid grant: authorization code is invalid",
            )
        })?;
        if record
            .redirect_uri
            .as_deref()
            .is_some_and(|expected| redirect_uri != Some(expected))
        {
            return Err(Reply::nest(
                StatusCode::BAD_REQUEST,
                "Invalid grant: redirect URI does not match the authorization request",
            ));
        }
        check_user_type(&record.install, user_type)?;
        if self.is_inactive(&record.install) {
            return Err(location_not_active());
        }
        let Some(record) = self.codes.remove(code) else {
            return Err(Reply::nest(
                StatusCode::BAD_REQUEST,
                "Invalid grant: authorization code is invalid",
            ));
        };
        let (grant, issued) = self.start_grant(record.install, now);
        self.stats.code_exchanges += 1;
        Ok(self.token_reply(grant, &issued, v3))
    }

    fn refresh(
        &mut self,
        refresh_token: &str,
        user_type: Option<&UserType>,
        v3: bool,
        now: SystemTime,
    ) -> Result<Reply, Reply> {
        let invalid = || {
            Reply::nest(
                StatusCode::BAD_REQUEST,
                "Invalid grant: refresh token is invalid",
            )
        };
        let record = *self.refresh_tokens.get(refresh_token).ok_or_else(invalid)?;
        if record.revoked {
            return Err(invalid());
        }
        if record.spent {
            self.stats.spent_refresh_token_reuses += 1;
            return Err(invalid());
        }
        if record.expires_at.is_some_and(|at| now >= at) {
            return Err(invalid());
        }
        let install = &self.grants.get(record.grant).ok_or_else(invalid)?.install;
        check_user_type(install, user_type)?;
        if self.is_inactive(install) {
            return Err(location_not_active());
        }
        let issued = self.rotate(record.grant, now).ok_or_else(invalid)?;
        self.stats.refreshes += 1;
        Ok(self.token_reply(record.grant, &issued, v3))
    }

    fn token_reply(&self, grant: usize, issued: &Issued, v3: bool) -> Reply {
        let Some(g) = self.grants.get(grant) else {
            return Reply::nest(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
        };
        Reply::json(
            StatusCode::OK,
            &TokenBody {
                v3,
                shape: TokenShape::Token,
                issued,
                expires_in: self.access_lifetime.as_secs(),
                install: &g.install,
                approve_all_locations: self.approves_all(g),
                app_id: &self.app_id,
            },
        )
    }
}

/// A requested `user_type` must be the install's.
fn check_user_type(install: &Install, requested: Option<&UserType>) -> Result<(), Reply> {
    match requested {
        Some(t) if *t != install.user_type => Err(Reply::invalid(USER_TYPE.1)),
        _ => Ok(()),
    }
}
