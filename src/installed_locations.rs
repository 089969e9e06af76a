//! `GET /oauth/installedLocations`; documented on
//! [`installed_locations_request`].

use http::{Method, Request, Response};
use serde_json::{Map, Value};

use crate::bearer::{CompanyBearer, bearer_headers};
use crate::config::{ApiVersion, Config};
use crate::error::{Endpoint, Error, Unreadable};
use crate::response::{json_answer, prepared_body};

/// The v2 path.
pub const INSTALLED_LOCATIONS_PATH: &str = "/oauth/installedLocations";
/// The v3 path.
pub const INSTALLED_LOCATIONS_PATH_V3: &str = "/oauth/installed-locations";
/// The page size the server uses when none is sent (v2 `limit`, v3 `pageSize`).
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// The largest v3 `pageSize`.
pub const MAX_PAGE_SIZE_V3: u32 = 100;

/// The installed-locations path of an API version.
#[must_use]
pub fn installed_locations_path(version: ApiVersion) -> &'static str {
    match version {
        ApiVersion::V2 => INSTALLED_LOCATIONS_PATH,
        ApiVersion::V3 => INSTALLED_LOCATIONS_PATH_V3,
    }
}

/// Where a listing starts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cursor {
    Start,
    /// v2 `skip`.
    Skip(u64),
    /// v3 `pageToken`.
    Token(String),
}

/// A query for the installed-locations list: the company, the filters, and
/// the page. Every documented query parameter has a setter; the config's API
/// version decides the wire names.
///
/// | setter | v2 | v3 |
/// |---|---|---|
/// | [`new`](Self::new) | `companyId` | `companyId` |
/// | [`app_id`](Self::app_id) (default: the config's app id) | `appId` | `appId` |
/// | [`skip`](Self::skip) | `skip` | — (refused) |
/// | [`page_size`](Self::page_size) | `limit` | `pageSize` (1–100) |
/// | [`page_token`](Self::page_token) | — (refused) | `pageToken` |
/// | [`search`](Self::search) | `query` | `query` |
/// | [`installed`](Self::installed) | `isInstalled` | `isInstalled` |
/// | [`restrict_to_user_locations`](Self::restrict_to_user_locations) | — (refused) | `restrictToUserLocations` |
/// | [`version_id`](Self::version_id) | `versionId` | `versionId` |
/// | [`on_trial`](Self::on_trial) | `onTrial` | `onTrial` |
/// | [`plan_id`](Self::plan_id) | `planId` | `planId` |
/// | [`location_id`](Self::location_id) | `locationId` | `locationId` |
///
/// A parameter of the other version is refused when the request is built,
/// never dropped silently. [`next_page`](Self::next_page) only ever sets the
/// paging parameter of the version that answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct InstalledLocationsQuery {
    company_id: String,
    app_id: Option<String>,
    page_size: Option<u32>,
    cursor: Cursor,
    search: Option<String>,
    is_installed: Option<bool>,
    restrict_to_user_locations: Option<bool>,
    version_id: Option<String>,
    on_trial: Option<bool>,
    plan_id: Option<String>,
    location_id: Option<String>,
}

impl InstalledLocationsQuery {
    /// The first page of the locations of `company_id`.
    pub fn new(company_id: impl Into<String>) -> Self {
        InstalledLocationsQuery {
            company_id: company_id.into(),
            app_id: None,
            page_size: None,
            cursor: Cursor::Start,
            search: None,
            is_installed: None,
            restrict_to_user_locations: None,
            version_id: None,
            on_trial: None,
            plan_id: None,
            location_id: None,
        }
    }

    /// `appId`; without it, the config's [`app_id`](Config::app_id).
    pub fn app_id(mut self, app_id: impl Into<String>) -> Self {
        self.app_id = Some(app_id.into());
        self
    }

    /// Items per page: v2 `limit`, v3 `pageSize` (1–100). The server's default
    /// is [`DEFAULT_PAGE_SIZE`].
    pub fn page_size(mut self, size: u32) -> Self {
        self.page_size = Some(size);
        self
    }

    /// v2 `skip`: start after this many locations. Replaces a page token.
    pub fn skip(mut self, skip: u64) -> Self {
        self.cursor = Cursor::Skip(skip);
        self
    }

    /// v3 `pageToken`, from a previous page. Replaces a skip.
    pub fn page_token(mut self, token: impl Into<String>) -> Self {
        self.cursor = Cursor::Token(token.into());
        self
    }

    /// `query`: search the locations by name.
    pub fn search(mut self, text: impl Into<String>) -> Self {
        self.search = Some(text.into());
        self
    }

    /// `isInstalled`: only locations where the app is (or is not) installed.
    pub fn installed(mut self, installed: bool) -> Self {
        self.is_installed = Some(installed);
        self
    }

    /// v3 `restrictToUserLocations`: only locations the current user can access.
    pub fn restrict_to_user_locations(mut self, restrict: bool) -> Self {
        self.restrict_to_user_locations = Some(restrict);
        self
    }

    /// `versionId`: only installs of this app version.
    pub fn version_id(mut self, version_id: impl Into<String>) -> Self {
        self.version_id = Some(version_id.into());
        self
    }

    /// `onTrial`: only installs in (or out of) trial mode.
    pub fn on_trial(mut self, on_trial: bool) -> Self {
        self.on_trial = Some(on_trial);
        self
    }

    /// `planId`: only installs on this plan.
    pub fn plan_id(mut self, plan_id: impl Into<String>) -> Self {
        self.plan_id = Some(plan_id.into());
        self
    }

    /// `locationId`: only this location.
    pub fn location_id(mut self, location_id: impl Into<String>) -> Self {
        self.location_id = Some(location_id.into());
        self
    }

    /// The company id.
    #[must_use]
    pub fn company_id(&self) -> &str {
        &self.company_id
    }

    /// The page size asked for, if any.
    #[must_use]
    pub fn requested_page_size(&self) -> Option<u32> {
        self.page_size
    }

    /// The v2 `skip`, if any.
    #[must_use]
    pub fn skipped(&self) -> Option<u64> {
        match self.cursor {
            Cursor::Skip(n) => Some(n),
            _ => None,
        }
    }

    /// The v3 `pageToken`, if any.
    #[must_use]
    pub fn requested_page_token(&self) -> Option<&str> {
        match &self.cursor {
            Cursor::Token(t) => Some(t),
            _ => None,
        }
    }

    /// The query for the page after `page` (which answered `self`), or `None`
    /// when `page` was the last. Pure: the same inputs give the same answer.
    ///
    /// - v3 pages (they carry `pagination`): the next query carries
    ///   `nextPageToken`. There is none after a page with `hasNextPage: false`,
    ///   without a token, or whose token is the one just used.
    /// - v2 pages: the next query skips the locations seen so far. There is none
    ///   after an empty page, once `count` locations are seen, or, when there is
    ///   no `count`, after a page shorter than the page size.
    #[must_use]
    pub fn next_page(&self, page: &InstalledLocationsPage) -> Option<InstalledLocationsQuery> {
        if let Some(p) = &page.pagination {
            if p.has_next_page == Some(false) {
                return None;
            }
            let token = p.next_page_token.as_deref().filter(|t| !t.is_empty())?;
            if self.requested_page_token() == Some(token) {
                return None;
            }
            return Some(self.clone().page_token(token));
        }
        let seen = u64::try_from(page.locations.len()).unwrap_or(u64::MAX);
        if seen == 0 {
            return None;
        }
        let skip = match self.cursor {
            Cursor::Start => 0,
            Cursor::Skip(n) => n,
            // A token query that got a v2 answer: nothing sound to continue from.
            Cursor::Token(_) => return None,
        };
        let next = skip.saturating_add(seen);
        let more = match page.total {
            Some(total) => next < total,
            None => seen >= u64::from(self.page_size.unwrap_or(DEFAULT_PAGE_SIZE)),
        };
        more.then(|| self.clone().skip(next))
    }
}

/// Builds `GET /oauth/installedLocations` (v3: `/oauth/installed-locations`)
/// with `Authorization: Bearer <Company access token>`, the config's `Version`
/// header, and the query parameters in the order of the table on
/// [`InstalledLocationsQuery`]. Booleans are sent as `true`/`false`.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput), and no request,
/// for an empty company, app, version, plan or location id, empty search text
/// or page token, a page size of 0 (or over 100 in v3), a parameter of the
/// other API version, an empty access token, or a bearer known to be a
/// Location token (see [`CompanyBearer`]).
///
/// `GET /oauth/installedLocations` (v3: `/oauth/installed-locations`): where
/// the app is installed under a company, page by page.
///
/// The endpoint needs a Company token with scope `oauth.readonly`. Both API
/// versions parse into the same [`InstalledLocationsPage`], and
/// [`InstalledLocationsQuery::next_page`] knows both paging schemes, so a
/// driver lists everything the same way in either version:
///
/// ```
/// use hoopai_oauth::{
///     AccessToken, Config, InstalledLocation, InstalledLocationsQuery, installed_locations_request,
///     parse_installed_locations,
/// };
///
/// # fn send(_: http::Request<Vec<u8>>) -> http::Response<Vec<u8>> {
/// #     http::Response::new(br#"{"locations":[{"_id":"l1","name":"One","address":"A"}],"count":1}"#.to_vec())
/// # }
/// let config = Config::builder("6578278e879ad2646715ba9c-lq3w8xd2", "placeholder-secret").build()?;
/// let company_token = AccessToken::new("placeholder-company-access-token");
/// let mut all: Vec<InstalledLocation> = Vec::new();
/// let mut query = Some(InstalledLocationsQuery::new("tDtDnQdgm2LXpyiqYvZ6").installed(true));
/// while let Some(q) = query {
///     let response = send(installed_locations_request(&config, &company_token, &q)?);
///     let page = parse_installed_locations(response)?;
///     query = q.next_page(&page);
///     all.extend(page.locations);
/// }
/// assert_eq!(all.len(), 1);
/// # Ok::<(), hoopai_oauth::Error>(())
/// ```
pub fn installed_locations_request(
    config: &Config,
    bearer: &(impl CompanyBearer + ?Sized),
    q: &InstalledLocationsQuery,
) -> Result<Request<Vec<u8>>, Error> {
    let v3 = config.api_version() == ApiVersion::V3;
    let non_empty = |name: &str, value: &str| {
        if value.trim().is_empty() {
            Err(Error::input(format!("the {name} is empty")))
        } else {
            Ok(())
        }
    };
    non_empty("company id", &q.company_id)?;
    let app_id = q.app_id.as_deref().unwrap_or(config.app_id());
    non_empty("app id", app_id)?;
    let mut params: Vec<(&str, String)> = vec![
        ("companyId", q.company_id.clone()),
        ("appId", app_id.to_owned()),
    ];
    if let Some(size) = q.page_size {
        if size == 0 {
            return Err(Error::input("the page size is 0; it must be at least 1"));
        }
        if v3 && size > MAX_PAGE_SIZE_V3 {
            return Err(Error::input(format!(
                "the page size is {size}; v3 takes 1 to {MAX_PAGE_SIZE_V3}"
            )));
        }
    }
    if v3 {
        if let Cursor::Skip(_) = q.cursor {
            return Err(Error::input(
                "skip is a v2 parameter; v3 pages with pageToken (see next_page)",
            ));
        }
        if let Some(size) = q.page_size {
            params.push(("pageSize", size.to_string()));
        }
        if let Cursor::Token(token) = &q.cursor {
            non_empty("page token", token)?;
            params.push(("pageToken", token.clone()));
        }
    } else {
        if let Cursor::Token(_) = q.cursor {
            return Err(Error::input(
                "pageToken is a v3 parameter; v2 pages with skip (see next_page)",
            ));
        }
        if q.restrict_to_user_locations.is_some() {
            return Err(Error::input(
                "restrictToUserLocations is a v3 parameter; v2 has no such filter",
            ));
        }
        if let Cursor::Skip(skip) = q.cursor {
            params.push(("skip", skip.to_string()));
        }
        if let Some(size) = q.page_size {
            params.push(("limit", size.to_string()));
        }
    }
    if let Some(text) = &q.search {
        non_empty("search text", text)?;
        params.push(("query", text.clone()));
    }
    if let Some(b) = q.is_installed {
        params.push(("isInstalled", b.to_string()));
    }
    if let Some(b) = q.restrict_to_user_locations {
        params.push(("restrictToUserLocations", b.to_string()));
    }
    if let Some(id) = &q.version_id {
        non_empty("version id", id)?;
        params.push(("versionId", id.clone()));
    }
    if let Some(b) = q.on_trial {
        params.push(("onTrial", b.to_string()));
    }
    if let Some(id) = &q.plan_id {
        non_empty("plan id", id)?;
        params.push(("planId", id.clone()));
    }
    if let Some(id) = &q.location_id {
        non_empty("location id", id)?;
        params.push(("locationId", id.clone()));
    }
    let query = serde_urlencoded::to_string(&params)
        .map_err(|e| Error::input(format!("the query could not be encoded: {e}")))?;
    let uri = format!(
        "{}?{query}",
        config.url(installed_locations_path(config.api_version()))
    );
    let builder = Request::builder().method(Method::GET).uri(uri);
    bearer_headers(builder, config, bearer)?
        .body(Vec::new())
        .map_err(|e| Error::config(format!("the request could not be built: {e}")))
}

// ---- answers ----------------------------------------------------------------------------

/// One page of installed locations, from either API version.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct InstalledLocationsPage {
    /// The locations: v2 `locations`, v3 `items`.
    pub locations: Vec<InstalledLocation>,
    /// How many locations there are in all: v2 `count`, v3
    /// `pagination.totalRecords`.
    pub total: Option<u64>,
    /// `installToFutureLocations`.
    pub install_to_future_locations: Option<bool>,
    /// The v3 `pagination` block (`None` in v2).
    pub pagination: Option<Pagination>,
    /// The v3 `metadata` block (`filterApplied`, `sortApplied`), as sent.
    pub metadata: Option<Map<String, Value>>,
    /// Every other field, as sent (and any of the above in an unreadable form).
    pub extra: Map<String, Value>,
}

/// The v3 `pagination` block (AIP-158).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Pagination {
    /// `totalRecords`.
    pub total_records: Option<u64>,
    /// `estimatedTotalRecords`, when the exact total is unknown.
    pub estimated_total_records: Option<u64>,
    /// `hasNextPage`.
    pub has_next_page: Option<bool>,
    /// `hasPrevPage`.
    pub has_prev_page: Option<bool>,
    /// `nextPageToken`, opaque.
    pub next_page_token: Option<String>,
    /// `prevPageToken`, opaque.
    pub prev_page_token: Option<String>,
    /// `currentPageSize`.
    pub current_page_size: Option<u64>,
    /// Every other field, as sent.
    pub extra: Map<String, Value>,
}

/// One location of the list.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct InstalledLocation {
    /// `_id`: the location id (an `id` field is read too).
    pub id: String,
    /// `name`. Documented as required; tolerated missing.
    pub name: Option<String>,
    /// `address`. Documented as required; tolerated missing.
    pub address: Option<String>,
    /// `isInstalled`.
    pub is_installed: Option<bool>,
    /// `versionId`: the app version installed there.
    pub version_id: Option<String>,
    /// `installedAt`, an ISO 8601 time kept as sent.
    pub installed_at: Option<String>,
    /// Every other field, as sent (and any of the above in an unreadable form).
    pub extra: Map<String, Value>,
}

/// Parses the answer of `GET /oauth/installedLocations` (either API version).
///
/// - Any 2xx is success; an error body on a 2xx is an error.
/// - A leading UTF-8 byte-order mark is ignored, as by every parser.
/// - The list is `locations` (v2) or `items` (v3); one of them is required.
///   Each location needs an `_id`; every other field is optional and read
///   leniently (a wrongly typed one is kept in `extra`, never fails the page).
/// - Numbers may come as numbers or numeric strings; booleans as booleans or
///   `"true"`/`"false"`.
///
/// # Errors
/// A server error of the kind the answer describes (v3 errors use the AIP
/// envelope), or [`ErrorKind::Unreadable`](crate::ErrorKind::Unreadable) with
/// [`Unreadable::UnexpectedShape`] when there is no list or a location has no id.
pub fn parse_installed_locations<B: AsRef<[u8]>>(
    resp: Response<B>,
) -> Result<InstalledLocationsPage, Error> {
    let value = json_answer(Endpoint::InstalledLocations, &resp)?;
    let shape = |detail: String| {
        Error::unreadable(
            Unreadable::UnexpectedShape,
            resp.status(),
            prepared_body(&resp),
            detail,
        )
    };
    let Value::Object(mut fields) = value else {
        return Err(shape("the answer is not a JSON object".into()));
    };
    // The list under the other name, in an odd shape, is kept in `extra`.
    let list = match (fields.remove("locations"), fields.remove("items")) {
        (Some(Value::Array(list)), items) => {
            if let Some(v) = items {
                fields.insert("items".to_owned(), v);
            }
            list
        }
        (locations, Some(Value::Array(list))) => {
            if let Some(v) = locations {
                fields.insert("locations".to_owned(), v);
            }
            list
        }
        _ => {
            return Err(shape(
                "the answer has no `locations` (v2) or `items` (v3) list".into(),
            ));
        }
    };
    let mut locations = Vec::with_capacity(list.len());
    for (i, item) in list.into_iter().enumerate() {
        locations.push(
            read_location(item)
                .ok_or_else(|| shape(format!("location #{i} has no `_id` string")))?,
        );
    }
    let mut extra = Map::new();
    let mut page = InstalledLocationsPage {
        locations,
        total: None,
        install_to_future_locations: None,
        pagination: None,
        metadata: None,
        extra: Map::new(),
    };
    for (key, v) in fields {
        match key.as_str() {
            "count" => page.total = keep_if_none(&mut extra, key, v, number),
            "installToFutureLocations" => {
                page.install_to_future_locations = keep_if_none(&mut extra, key, v, boolean);
            }
            "pagination" => match v {
                Value::Object(m) => page.pagination = Some(read_pagination(m)),
                other => {
                    extra.insert(key, other);
                }
            },
            "metadata" => match v {
                Value::Object(m) => page.metadata = Some(m),
                other => {
                    extra.insert(key, other);
                }
            },
            _ => {
                extra.insert(key, v);
            }
        }
    }
    if page.total.is_none() {
        page.total = page.pagination.as_ref().and_then(|p| p.total_records);
    }
    page.extra = extra;
    Ok(page)
}

/// Reads `v` with `read`; when it does not read, keeps it in `extra` under `key`.
fn keep_if_none<T>(
    extra: &mut Map<String, Value>,
    key: String,
    v: Value,
    read: fn(&Value) -> Option<T>,
) -> Option<T> {
    let out = read(&v);
    if out.is_none() && !v.is_null() {
        extra.insert(key, v);
    }
    out
}

fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0 && *f < 1e15)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn boolean(v: &Value) -> Option<bool> {
    crate::token::read_bool(v)
}

fn string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

fn read_location(item: Value) -> Option<InstalledLocation> {
    let Value::Object(fields) = item else {
        return None;
    };
    let mut extra = Map::new();
    let mut id = None;
    let mut loc = InstalledLocation {
        id: String::new(),
        name: None,
        address: None,
        is_installed: None,
        version_id: None,
        installed_at: None,
        extra: Map::new(),
    };
    for (key, v) in fields {
        match key.as_str() {
            "_id" => match v.as_str().filter(|s| !s.is_empty()) {
                Some(s) => id = Some(s.to_owned()),
                None => {
                    extra.insert(key, v);
                }
            },
            "id" if id.is_none() && v.as_str().is_some_and(|s| !s.is_empty()) => {
                id = string(&v);
            }
            "name" => loc.name = keep_if_none(&mut extra, key, v, string),
            "address" => loc.address = keep_if_none(&mut extra, key, v, string),
            "isInstalled" => loc.is_installed = keep_if_none(&mut extra, key, v, boolean),
            "versionId" => loc.version_id = keep_if_none(&mut extra, key, v, string),
            "installedAt" => loc.installed_at = keep_if_none(&mut extra, key, v, string),
            _ => {
                extra.insert(key, v);
            }
        }
    }
    loc.id = id?;
    loc.extra = extra;
    Some(loc)
}

fn read_pagination(fields: Map<String, Value>) -> Pagination {
    let mut p = Pagination::default();
    let mut extra = Map::new();
    for (key, v) in fields {
        match key.as_str() {
            "totalRecords" => p.total_records = keep_if_none(&mut extra, key, v, number),
            "estimatedTotalRecords" => {
                p.estimated_total_records = keep_if_none(&mut extra, key, v, number);
            }
            "hasNextPage" => p.has_next_page = keep_if_none(&mut extra, key, v, boolean),
            "hasPrevPage" => p.has_prev_page = keep_if_none(&mut extra, key, v, boolean),
            "nextPageToken" => p.next_page_token = keep_if_none(&mut extra, key, v, string),
            "prevPageToken" => p.prev_page_token = keep_if_none(&mut extra, key, v, string),
            "currentPageSize" => {
                p.current_page_size = keep_if_none(&mut extra, key, v, number);
            }
            _ => {
                extra.insert(key, v);
            }
        }
    }
    p.extra = extra;
    p
}
