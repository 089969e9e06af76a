//! The agency endpoints: minting Location tokens, listing installed locations.

use std::time::SystemTime;

use http::{Request, StatusCode};
use serde::Serialize;
use serde_json::Value;

use super::wire::{
    Pairs, Param, Params, Reply, TokenBody, TokenShape, VersionHeader, bearer, invalid_jwt,
    location_not_active, version_header,
};
use super::{FakeServer, Install, LocationRecord};
use crate::token::UserType;

/// The v3 page size bounds and default.
const MAX_PAGE_SIZE: usize = 100;
const DEFAULT_PAGE_SIZE: usize = 20;
/// The prefix of the fake's opaque v3 page tokens.
const PAGE_TOKEN_PREFIX: &str = "page-";

impl FakeServer {
    /// Checks the `Version` header and the bearer: a live Company token with
    /// `scope`. Returns whether the request speaks v3, and the bearer's grant.
    fn agency_bearer<B>(
        &self,
        req: &Request<B>,
        now: SystemTime,
        v3_path: bool,
        scope: &str,
    ) -> Result<(bool, usize), Reply> {
        let v3 = match version_header(req) {
            VersionHeader::Absent => return Err(Reply::missing("version")),
            VersionHeader::Invalid => return Err(Reply::invalid("version")),
            VersionHeader::V2 { .. } => v3_path,
            VersionHeader::V3 => true,
        };
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
        if install.user_type != UserType::Company {
            return Err(Reply::nest(
                StatusCode::UNAUTHORIZED,
                "This authClass type is not allowed to access this scope. Please reach out to the Platform team to get it added.",
            ));
        }
        if !install.scope.split_ascii_whitespace().any(|s| s == scope) {
            return Err(Reply::nest(
                StatusCode::UNAUTHORIZED,
                "The token is not authorized for this scope.",
            ));
        }
        Ok((v3, access.grant))
    }

    // ---- POST /oauth/locationToken ---------------------------------------------------

    pub(super) fn location_token_endpoint(
        &mut self,
        req: &Request<Vec<u8>>,
        now: SystemTime,
        v3_path: bool,
    ) -> Reply {
        self.mint(req, now, v3_path).unwrap_or_else(|reply| reply)
    }

    fn mint(
        &mut self,
        req: &Request<Vec<u8>>,
        now: SystemTime,
        v3_path: bool,
    ) -> Result<Reply, Reply> {
        let (v3, grant) = self.agency_bearer(req, now, v3_path, "oauth.write")?;
        let params = Params::form(req.body()).ok_or_else(|| Reply::invalid("body"))?;
        let mut problems = Vec::new();
        let mut field = |name: &str| match params.get(name) {
            Param::One(v) => Some(v.to_owned()),
            Param::Absent => {
                problems.push(format!("{name} should not be empty"));
                None
            }
            Param::Repeated => {
                problems.push(format!("{name} must be a string"));
                None
            }
        };
        let (company_id, location_id) = (field("companyId"), field("locationId"));
        let (Some(company_id), Some(location_id)) = (company_id, location_id) else {
            return Err(Reply::unprocessable(&problems));
        };
        let company_grant = self.grants.get(grant).ok_or_else(invalid_jwt)?;
        let company = &company_grant.install;
        if company.company_id != company_id {
            return Err(Reply::nest(
                StatusCode::FORBIDDEN,
                "The token does not have access to this company.",
            ));
        }
        if !company_grant.approved.contains(&location_id) {
            return Err(Reply::nest(
                StatusCode::FORBIDDEN,
                "The token does not have access to this location.",
            ));
        }
        if self.inactive.contains(&location_id) {
            return Err(location_not_active());
        }
        let install = Install {
            user_type: UserType::Location,
            company_id,
            location_id: Some(location_id.clone()),
            approved_locations: vec![location_id],
            scope: company.scope.clone(),
            user_id: company.user_id.clone(),
            plan_id: company.plan_id.clone(),
            install_to_future_locations: false,
        };
        let (grant, issued) = self.start_grant(install, now);
        self.stats.location_tokens += 1;
        let with_refresh_token = self.location_refresh_tokens;
        if !with_refresh_token {
            // Never handed out: the grant can only be minted again.
            if let Some(rec) = self.refresh_tokens.get_mut(&issued.refresh_token) {
                rec.revoked = true;
            }
        }
        let install = self
            .grants
            .get(grant)
            .map(|g| &g.install)
            .ok_or_else(invalid_jwt)?;
        Ok(Reply::json(
            StatusCode::CREATED,
            &TokenBody {
                v3,
                shape: TokenShape::LocationToken { with_refresh_token },
                issued: &issued,
                expires_in: self.access_lifetime.as_secs(),
                install,
                approve_all_locations: false,
                app_id: &self.app_id,
            },
        ))
    }

    // ---- GET /oauth/installedLocations -----------------------------------------------

    pub(super) fn installed_locations_endpoint(
        &mut self,
        req: &Request<Vec<u8>>,
        now: SystemTime,
        v3_path: bool,
    ) -> Reply {
        match self.list(req, now, v3_path) {
            Ok(reply) => {
                self.stats.installed_location_pages += 1;
                reply
            }
            Err(reply) => reply,
        }
    }

    fn list(&self, req: &Request<Vec<u8>>, now: SystemTime, v3_path: bool) -> Result<Reply, Reply> {
        let (v3, grant) = self.agency_bearer(req, now, v3_path, "oauth.readonly")?;
        let errors = Errors { v3 };
        let params = Params::query(req).ok_or_else(|| errors.invalid("query"))?;
        let text = |name: &str| match params.get(name) {
            Param::Absent => Ok(None),
            Param::One(v) => Ok(Some(v)),
            Param::Repeated => Err(errors.invalid(name)),
        };
        let flag = |name: &str| match text(name)? {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(errors.invalid(name)),
        };
        let company_id = text("companyId")?.ok_or_else(|| errors.missing("companyId"))?;
        let app_id = text("appId")?.ok_or_else(|| errors.missing("appId"))?;
        let filter = Filter {
            is_installed: flag("isInstalled")?,
            on_trial: flag("onTrial")?,
            query: text("query")?.map(str::to_lowercase),
            location_id: text("locationId")?,
            version_id: text("versionId")?,
            plan_id: text("planId")?,
        };
        let (offset, limit) = if v3 {
            let size = match text("pageSize")? {
                None => DEFAULT_PAGE_SIZE,
                Some(s) => s
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                    .ok_or_else(|| errors.invalid("pageSize"))?,
            };
            let offset = match text("pageToken")? {
                None => 0,
                Some(t) => t
                    .strip_prefix(PAGE_TOKEN_PREFIX)
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| errors.invalid("pageToken"))?,
            };
            (offset, size)
        } else {
            let number = |name: &str, default: usize, min: usize| match text(name)? {
                None => Ok(default),
                Some(s) => s
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= min)
                    .ok_or_else(|| errors.invalid(name)),
            };
            (number("skip", 0, 0)?, number("limit", 20, 1)?)
        };
        if app_id != self.app_id {
            return Err(errors.app_not_found(app_id));
        }
        let install = &self.grants.get(grant).ok_or_else(invalid_jwt)?.install;
        if install.company_id != company_id {
            return Err(errors.forbidden_company());
        }
        let ids: &[String] = self.companies.get(company_id).map_or(&[], Vec::as_slice);
        let (total, page) = if filter.is_empty() {
            let page = ids.iter().skip(offset).take(limit);
            (ids.len(), page.filter_map(|id| self.item(id)).collect())
        } else {
            let mut total = 0;
            let mut page = Vec::new();
            for item in ids.iter().filter_map(|id| self.item(id)) {
                if filter.matches(&item, &self.app_id) {
                    if total >= offset && page.len() < limit {
                        page.push(item);
                    }
                    total += 1;
                }
            }
            (total, page)
        };
        let future = install.install_to_future_locations;
        if !v3 {
            return Ok(Reply::json(
                StatusCode::OK,
                &ListV2 {
                    locations: page,
                    count: total,
                    install_to_future_locations: future,
                },
            ));
        }
        let end = offset.saturating_add(page.len());
        let mut applied = vec![("companyId", Value::from(company_id))];
        let texts = [
            ("query", text("query")?),
            ("locationId", filter.location_id),
            ("versionId", filter.version_id),
            ("planId", filter.plan_id),
        ];
        for (name, value) in [
            ("isInstalled", filter.is_installed.map(Value::from)),
            ("onTrial", filter.on_trial.map(Value::from)),
        ]
        .into_iter()
        .chain(texts.map(|(n, v)| (n, v.map(Value::from))))
        {
            if let Some(v) = value {
                applied.push((name, v));
            }
        }
        let pagination = Pagination {
            total_records: total,
            has_next_page: end < total,
            has_prev_page: offset > 0,
            next_page_token: (end < total).then(|| format!("{PAGE_TOKEN_PREFIX}{end}")),
            prev_page_token: (offset > 0)
                .then(|| format!("{PAGE_TOKEN_PREFIX}{}", offset.saturating_sub(limit))),
            current_page_size: page.len(),
        };
        Ok(Reply::json(
            StatusCode::OK,
            &ListV3 {
                items: page,
                pagination,
                metadata: Metadata {
                    filter_applied: Pairs(&applied),
                    sort_applied: Pairs(&[]),
                },
                install_to_future_locations: future,
            },
        ))
    }

    fn item<'a>(&'a self, id: &'a str) -> Option<Item<'a>> {
        let LocationRecord {
            name,
            address,
            installed,
            ..
        } = self.locations.get(id)?;
        Some(Item {
            id,
            name,
            address,
            is_installed: installed.is_some(),
            version_id: installed.as_ref().map(|_| self.app_id.as_str()),
            plan_id: installed.as_ref().and_then(Option::as_deref),
        })
    }
}

/// The filters of a listing.
struct Filter<'a> {
    is_installed: Option<bool>,
    on_trial: Option<bool>,
    /// Lowercased.
    query: Option<String>,
    location_id: Option<&'a str>,
    version_id: Option<&'a str>,
    plan_id: Option<&'a str>,
}

impl Filter<'_> {
    fn is_empty(&self) -> bool {
        self.is_installed.is_none()
            && self.on_trial.is_none()
            && self.query.is_none()
            && self.location_id.is_none()
            && self.version_id.is_none()
            && self.plan_id.is_none()
    }

    fn matches(&self, item: &Item<'_>, app_id: &str) -> bool {
        // Nothing is on trial in the fake.
        self.is_installed.is_none_or(|i| i == item.is_installed)
            && self.on_trial != Some(true)
            && self
                .query
                .as_ref()
                .is_none_or(|q| item.name.to_lowercase().contains(q.as_str()))
            && self.location_id.is_none_or(|l| l == item.id)
            && self
                .version_id
                .is_none_or(|v| item.is_installed && v == app_id)
            && self.plan_id.is_none_or(|p| item.plan_id == Some(p))
    }
}

/// The error shapes of the listing: NestJS in v2, the AIP envelope in v3.
struct Errors {
    v3: bool,
}

impl Errors {
    fn missing(&self, name: &str) -> Reply {
        if self.v3 {
            self.argument(name, &format!("{name} is required"))
        } else {
            Reply::missing(name)
        }
    }

    fn invalid(&self, name: &str) -> Reply {
        if self.v3 {
            self.argument(name, &format!("{name} has an invalid value"))
        } else {
            Reply::invalid(name)
        }
    }

    fn argument(&self, name: &str, message: &str) -> Reply {
        let resolution = if name == "pageSize" {
            "Send a pageSize between 1 and 100."
        } else if name == "pageToken" {
            "Send a pageToken from a previous response, or none for the first page."
        } else {
            "Correct the parameter and retry."
        };
        Reply::aip(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            message,
            &[("field", name)],
            resolution,
        )
    }

    fn app_not_found(&self, app_id: &str) -> Reply {
        if self.v3 {
            Reply::aip(
                StatusCode::NOT_FOUND,
                "RESOURCE_NOT_FOUND",
                &format!("The requested App '{app_id}' was not found."),
                &[("resource", "App"), ("identifier", app_id)],
                "Verify the App exists and you have permission to access it.",
            )
        } else {
            Reply::nest(StatusCode::NOT_FOUND, "App not found")
        }
    }

    fn forbidden_company(&self) -> Reply {
        let message = "The token does not have access to this company.";
        if self.v3 {
            Reply::aip(
                StatusCode::FORBIDDEN,
                "PERMISSION_DENIED",
                message,
                &[("resource", "Company")],
                "Use a Company token of this company.",
            )
        } else {
            Reply::nest(StatusCode::FORBIDDEN, message)
        }
    }
}

/// One location of a listing (`InstalledLocationSchema`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Item<'a> {
    #[serde(rename = "_id")]
    id: &'a str,
    name: &'a str,
    address: &'a str,
    is_installed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_id: Option<&'a str>,
    #[serde(skip)]
    plan_id: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListV2<'a> {
    locations: Vec<Item<'a>>,
    count: usize,
    install_to_future_locations: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListV3<'a> {
    items: Vec<Item<'a>>,
    pagination: Pagination,
    metadata: Metadata<'a>,
    install_to_future_locations: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Pagination {
    total_records: usize,
    has_next_page: bool,
    has_prev_page: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prev_page_token: Option<String>,
    current_page_size: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata<'a> {
    filter_applied: Pairs<'a, Value>,
    sort_applied: Pairs<'a>,
}
