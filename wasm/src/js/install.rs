//! The install side for JavaScript: the consent URL and its `state`, the
//! callback check, Location tokens minted from a Company token, and the
//! installed-locations list.

use hoopai_oauth::{
    AccessToken, ConsentRequest, InstalledLocationsPage, InstalledLocationsQuery,
    LocationTokenRequest, Scope, installed_locations_request, location_token_request,
    parse_callback, parse_installed_locations, parse_location_token_response,
};
use js_sys::{Array, Object};
use wasm_bindgen::prelude::*;

use super::client::OAuthClient;
use super::{
    bytes, check_keys, fetched, get, input_error, oauth_error, object, optional_bool,
    optional_number, optional_text, text, time, whole_number,
};
use crate::engine_shape::{self, MAX_SAFE_INTEGER, whole};
use crate::shape::{self, Secret, Shape, Value};

/// A consent `state` from random bytes the caller drew
/// (`crypto.getRandomValues(new Uint8Array(32))`): unpadded base64url.
/// Keep it with the user's session; `parseCallback` checks it.
///
/// # Errors
/// `invalid input` for fewer than 16 or more than 256 bytes.
#[wasm_bindgen(js_name = consentState)]
pub fn consent_state(random_bytes: JsValue) -> Result<String, JsValue> {
    let random = bytes(&random_bytes, "randomBytes")?;
    hoopai_oauth::ConsentState::from_random_bytes(&random)
        .map(|s| s.as_str().to_owned())
        .map_err(oauth_error)
}

/// Reads the consent redirect (a URL, a path with a query, or the query)
/// and checks its `state` against `expectedState` (when given). Returns
/// `{ codeRedacted }` with the code in the non-enumerable `code`.
///
/// # Errors
/// `state mismatch`, `consent denied`, `malformed callback`, `invalid input`.
#[wasm_bindgen(js_name = parseCallback)]
pub fn parse_callback_js(redirect: JsValue, expected_state: JsValue) -> Result<Object, JsValue> {
    let redirect = text(&redirect, "redirect")?;
    let expected = optional_text(&expected_state, "expectedState")?
        .map(hoopai_oauth::ConsentState::new)
        .transpose()
        .map_err(oauth_error)?;
    let code = parse_callback(&redirect, expected.as_ref()).map_err(oauth_error)?;
    let mut s = Shape::default();
    s.text("codeRedacted", code.to_string());
    s.secret("code", Secret::Text(code.secret()));
    object(&s)
}

/// The options of `client.consentUrl({...})`.
const CONSENT_OPTIONS: [&str; 5] = [
    "scopes",
    "state",
    "redirectUri",
    "loginWindowSelf",
    "versionId",
];

#[wasm_bindgen]
impl OAuthClient {
    /// The consent URL to send the user's browser to: `scopes` (an array of
    /// scope names), and optionally `state` (from `consentState`),
    /// `redirectUri`, `loginWindowSelf`, `versionId` (a string, or `true`
    /// for the app id).
    ///
    /// # Errors
    /// `invalid input` (no scope, no redirect URI, a bad state…).
    #[wasm_bindgen(js_name = consentUrl)]
    pub fn consent_url(&self, options: JsValue) -> Result<String, JsValue> {
        check_keys(&options, &CONSENT_OPTIONS, "the consent options")?;
        let scopes: Array = get(&options, "scopes")
            .dyn_into()
            .map_err(|_| input_error("scopes must be an array of scope names"))?;
        let mut req = ConsentRequest::new([]);
        for scope in scopes.iter() {
            let name = text(&scope, "a scope")?;
            req = req.scope(name.parse::<Scope>().map_err(oauth_error)?);
        }
        if let Some(state) = optional_text(&get(&options, "state"), "state")? {
            req = req.state(hoopai_oauth::ConsentState::new(state).map_err(oauth_error)?);
        }
        if let Some(uri) = optional_text(&get(&options, "redirectUri"), "redirectUri")? {
            req = req.redirect_uri(uri);
        }
        if optional_bool(&get(&options, "loginWindowSelf"), "loginWindowSelf")? == Some(true) {
            req = req.login_window_self();
        }
        let version = get(&options, "versionId");
        if version.as_bool() == Some(true) {
            req = req.version_id_from_client_id();
        } else if let Some(id) = optional_text(&version, "versionId")? {
            req = req.version_id(id);
        }
        hoopai_oauth::consent_url(&self.config, &req).map_err(oauth_error)
    }

    /// `POST /oauth/locationToken`: a Location token for `locationId`,
    /// minted with the Company access token. A `fetch` init as
    /// `refreshRequest` returns; its `headers` (the bearer) are
    /// non-enumerable too.
    ///
    /// # Errors
    /// `invalid input`.
    #[wasm_bindgen(js_name = locationTokenRequest)]
    pub fn location_token_request(
        &self,
        company_access_token: JsValue,
        company_id: JsValue,
        location_id: JsValue,
    ) -> Result<Object, JsValue> {
        let bearer = AccessToken::new(text(&company_access_token, "companyAccessToken")?);
        let req = LocationTokenRequest::new(
            text(&company_id, "companyId")?,
            text(&location_id, "locationId")?,
        );
        let built = location_token_request(&self.config, &bearer, &req).map_err(oauth_error)?;
        object(&bearer_request(&built))
    }

    /// `GET /oauth/installedLocations` with the Company access token and a
    /// query `{ companyId, appId?, pageSize?, skip?, pageToken?, search?,
    /// installed?, restrictToUserLocations?, versionId?, onTrial?, planId?,
    /// locationId? }`.
    ///
    /// # Errors
    /// `invalid input`.
    #[wasm_bindgen(js_name = installedLocationsRequest)]
    pub fn installed_locations_request(
        &self,
        company_access_token: JsValue,
        query: JsValue,
    ) -> Result<Object, JsValue> {
        let bearer = AccessToken::new(text(&company_access_token, "companyAccessToken")?);
        let q = self::query(&query)?;
        let built = installed_locations_request(&self.config, &bearer, &q).map_err(oauth_error)?;
        object(&bearer_request(&built))
    }
}

/// A request with a bearer: the `Authorization` header is a secret too, so
/// the headers are non-enumerable as well as the body (`fetch` reads them
/// by name all the same).
fn bearer_request(r: &http::Request<Vec<u8>>) -> Shape<'_> {
    let mut s = engine_shape::request(r);
    if let Some(pos) = s.shown.iter().position(|(n, _)| *n == "headers")
        && let (_, Value::Pairs(pairs)) = s.shown.remove(pos)
    {
        s.secret("headers", Secret::Pairs(pairs));
    }
    s
}

const QUERY: [&str; 12] = [
    "companyId",
    "appId",
    "pageSize",
    "skip",
    "pageToken",
    "search",
    "installed",
    "restrictToUserLocations",
    "versionId",
    "onTrial",
    "planId",
    "locationId",
];

fn query(q: &JsValue) -> Result<InstalledLocationsQuery, JsValue> {
    check_keys(q, &QUERY, "the installed-locations query")?;
    let mut query = InstalledLocationsQuery::new(text(&get(q, "companyId"), "companyId")?);
    let opt = |name: &str| optional_text(&get(q, name), name);
    if let Some(v) = opt("appId")? {
        query = query.app_id(v);
    }
    if let Some(n) = optional_number(&get(q, "pageSize"), "pageSize")? {
        let n = whole_number(n, "pageSize", u64::from(u32::MAX))?;
        query = query.page_size(u32::try_from(n).unwrap_or(u32::MAX));
    }
    if let Some(n) = optional_number(&get(q, "skip"), "skip")? {
        query = query.skip(whole_number(n, "skip", MAX_SAFE_INTEGER)?);
    }
    if let Some(v) = opt("pageToken")? {
        query = query.page_token(v);
    }
    if let Some(v) = opt("search")? {
        query = query.search(v);
    }
    if let Some(b) = optional_bool(&get(q, "installed"), "installed")? {
        query = query.installed(b);
    }
    if let Some(b) = optional_bool(
        &get(q, "restrictToUserLocations"),
        "restrictToUserLocations",
    )? {
        query = query.restrict_to_user_locations(b);
    }
    if let Some(v) = opt("versionId")? {
        query = query.version_id(v);
    }
    if let Some(b) = optional_bool(&get(q, "onTrial"), "onTrial")? {
        query = query.on_trial(b);
    }
    if let Some(v) = opt("planId")? {
        query = query.plan_id(v);
    }
    if let Some(v) = opt("locationId")? {
        query = query.location_id(v);
    }
    Ok(query)
}

/// Parses the answer of `locationTokenRequest`, as `parseTokenResponse`
/// does (the token object, with `tokenSetJson` for `Engine.insert`).
///
/// # Errors
/// An `OAuthError`.
#[wasm_bindgen(js_name = parseLocationTokenResponse)]
pub fn parse_location_token(
    status: f64,
    headers: JsValue,
    body: Vec<u8>,
    sent_at_ms: f64,
) -> Result<Object, JsValue> {
    let response = fetched(status, &headers, body)?;
    let sent_at = time(sent_at_ms)?;
    let token = parse_location_token_response(response).map_err(oauth_error)?;
    let set = hoopai_oauth::TokenSet::new(token, sent_at);
    object(&shape::token_shape(&set))
}

/// Parses one page of the installed-locations list, answering `query`:
/// `{ locations: [{ id, name?, address?, isInstalled?, versionId?,
/// installedAt? }], total?, installToFutureLocations?, nextQuery }`, where
/// `nextQuery` is the query for the next page, or `null` after the last.
///
/// # Errors
/// An `OAuthError`.
#[wasm_bindgen(js_name = parseInstalledLocations)]
pub fn parse_installed(
    query: JsValue,
    status: f64,
    headers: JsValue,
    body: Vec<u8>,
) -> Result<Object, JsValue> {
    let q = self::query(&query)?;
    let response = fetched(status, &headers, body)?;
    let page = parse_installed_locations(response).map_err(oauth_error)?;
    let out = object(&page_shape(&page))?;
    let next = match q.next_page(&page) {
        None => JsValue::NULL,
        Some(next) => {
            // The same query, with the paging of the next page.
            let copy = Object::assign(&Object::new(), query.unchecked_ref());
            if let Some(skip) = next.skipped() {
                super::set(&copy, "skip", &whole(skip).into())?;
            }
            if let Some(token) = next.requested_page_token() {
                super::set(&copy, "pageToken", &token.into())?;
            }
            copy.into()
        }
    };
    super::set(&out, "nextQuery", &next)?;
    Ok(out)
}

fn page_shape(page: &InstalledLocationsPage) -> Shape<'static> {
    let mut s = Shape::default();
    let locations = page
        .locations
        .iter()
        .map(|l| {
            let mut o = Shape::default();
            o.text("id", l.id.as_str());
            o.opt_text("name", l.name.as_deref());
            o.opt_text("address", l.address.as_deref());
            if let Some(b) = l.is_installed {
                o.flag("isInstalled", b);
            }
            o.opt_text("versionId", l.version_id.as_deref());
            o.opt_text("installedAt", l.installed_at.as_deref());
            o
        })
        .collect();
    s.value("locations", Value::Objects(locations));
    if let Some(total) = page.total {
        s.number("total", whole(total.min(MAX_SAFE_INTEGER)));
    }
    if let Some(b) = page.install_to_future_locations {
        s.flag("installToFutureLocations", b);
    }
    s
}
