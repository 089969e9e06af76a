//! `GET /locations/{locationId}`: one ordinary API call, so that an app can
//! test its bearer handling (and its refresh after a `401`) against the fake;
//! and expiring access tokens ahead of time, to make that `401` happen.
//!
//! The bearer is checked as the API checks it: a missing, unknown, expired
//! or revoked token gets `401 {"statusCode":401,"message":"Invalid JWT",
//! "error":"Unauthorized"}`; a live token of another location (or of another
//! agency) gets `403 The token does not have access to this location.`. The
//! answer has the shape of `GetLocationByIdSuccessfulResponseDto` in
//! HighLevel's `apps/locations.json` (GoHighLevel/highlevel-api-docs):
//! `{"location":{"id","companyId","name","address"}}`. Scopes are not checked.

use std::collections::HashSet;
use std::time::SystemTime;

use http::{Request, StatusCode};
use percent_encoding::percent_decode_str;
use serde::Serialize;

use super::FakeServer;
use super::wire::{Reply, VersionHeader, bearer, invalid_jwt, version_header};
use crate::token::UserType;

/// The location id of a path ending in `/locations/{locationId}`, decoded.
pub(super) fn location_id(path: &str) -> Option<String> {
    let (rest, id) = path.rsplit_once('/')?;
    if !(rest == "/locations" || rest.ends_with("/locations")) || id.is_empty() {
        return None;
    }
    percent_decode_str(id)
        .decode_utf8()
        .ok()
        .map(|id| id.into_owned())
}

#[derive(Serialize)]
struct LocationAnswer<'a> {
    location: Location<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Location<'a> {
    id: &'a str,
    company_id: &'a str,
    name: &'a str,
    address: &'a str,
}

impl FakeServer {
    /// Expires an access token now, as if its lifetime had run out: from now
    /// on it gets `401 Invalid JWT`, the answer an app's refresh-on-401 path
    /// must handle. Returns whether the token was live.
    pub fn expire_access_token(&mut self, access_token: &str) -> bool {
        let live = self.access_tokens.remove(access_token).is_some();
        if live {
            self.stats.access_tokens_expired += 1;
        }
        live
    }

    /// Expires every live access token of the grants of `id`: a location id
    /// (its Location grants, minted ones included) or a company id (its
    /// Company grants). Returns how many were expired.
    pub fn expire_access_tokens_of(&mut self, id: &str) -> usize {
        let grants: HashSet<usize> = self
            .grants
            .iter()
            .enumerate()
            .filter(|(_, g)| match g.install.user_type {
                UserType::Company => g.install.company_id == id,
                _ => g.install.location_id.as_deref() == Some(id),
            })
            .map(|(i, _)| i)
            .collect();
        let before = self.access_tokens.len();
        self.access_tokens.retain(|_, a| !grants.contains(&a.grant));
        let expired = before - self.access_tokens.len();
        self.stats.access_tokens_expired += expired as u64;
        expired
    }

    pub(super) fn location_endpoint<B>(
        &mut self,
        req: &Request<B>,
        now: SystemTime,
        location_id: &str,
    ) -> Reply {
        match self.location_answer(req, now, location_id) {
            Ok(reply) => {
                self.stats.api_calls += 1;
                reply
            }
            Err(reply) => reply,
        }
    }

    fn location_answer<B>(
        &self,
        req: &Request<B>,
        now: SystemTime,
        location_id: &str,
    ) -> Result<Reply, Reply> {
        match version_header(req) {
            VersionHeader::Absent => return Err(Reply::missing("version")),
            VersionHeader::Invalid => return Err(Reply::invalid("version")),
            VersionHeader::V2 { .. } | VersionHeader::V3 => {}
        }
        let token = bearer(req).ok_or_else(invalid_jwt)?;
        let access = self.access_tokens.get(token).ok_or_else(invalid_jwt)?;
        if access.expires_at.is_some_and(|at| now >= at) {
            return Err(invalid_jwt());
        }
        let install = &self
            .grants
            .get(access.grant)
            .ok_or_else(invalid_jwt)?
            .install;
        let record = self.locations.get(location_id);
        let allowed = match install.user_type {
            UserType::Company => record.is_some_and(|r| r.company_id == install.company_id),
            _ => install.location_id.as_deref() == Some(location_id),
        };
        let (true, Some(record)) = (allowed, record) else {
            return Err(Reply::nest(
                StatusCode::FORBIDDEN,
                "The token does not have access to this location.",
            ));
        };
        Ok(Reply::json(
            StatusCode::OK,
            &LocationAnswer {
                location: Location {
                    id: location_id,
                    company_id: &record.company_id,
                    name: &record.name,
                    address: &record.address,
                },
            },
        ))
    }
}
