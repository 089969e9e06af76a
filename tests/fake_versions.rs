//! The `Version` header: every date HighLevel has published for the v2 API
//! and `v3` are served, an unpublished later date is served as v2 and
//! counted, anything else is refused; and what the official SDKs send by
//! default (headers, content types, body encodings, paths) is served.
mod common;

use std::fmt::Write;

use common::{CLIENT_ID, CLIENT_SECRET, config};
use hoopai_oauth::fake::{FakeServer, Install, PUBLISHED_API_VERSIONS};
use hoopai_oauth::{parse_location_token_response, parse_token_response};
use http::{Request, Response};
use serde_json::Value;

use common::fake_http::{BASE, agency, app_id, body, fake, install, refresh_of, render, send};

/// The status and the message (or the field names, sorted) of an answer.
fn outcome(resp: &Response<Vec<u8>>) -> String {
    let status = resp.status().as_u16();
    match serde_json::from_slice::<Value>(resp.body()) {
        Ok(Value::Object(map)) if status >= 400 => {
            format!("{status} {}", map.get("message").unwrap_or(&Value::Null))
        }
        Ok(Value::Object(map)) => {
            let keys: Vec<&str> = map.keys().map(String::as_str).collect();
            format!("{status} {}", keys.join(","))
        }
        _ => format!("{status} (not a JSON object)"),
    }
}

fn refresh_with(version: Option<&str>, refresh_token: &str) -> Request<Vec<u8>> {
    let mut b = Request::post(format!("{BASE}/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(v) = version {
        b = b.header("version", v);
    }
    let form = serde_urlencoded::to_string([
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ])
    .unwrap();
    b.body(form.into_bytes()).unwrap()
}

fn with_bearer(
    method: &str,
    uri: String,
    version: &str,
    bearer: &str,
    body: &str,
) -> Request<Vec<u8>> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {bearer}"))
        .header("version", version)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.as_bytes().to_vec())
        .unwrap()
}

/// One pass over the four endpoints an app calls with a v2 `Version`.
fn every_endpoint(fake: &mut FakeServer, version: &str) -> String {
    let cfg = config();
    let location = install(fake, &cfg, &Install::location("company-9", "loc-9"));
    let refresh = send(fake, &refresh_with(Some(version), &refresh_of(&location)));
    let company = agency(fake, &cfg);
    let bearer = company.access_token.secret().to_owned();
    let mint = send(
        fake,
        &with_bearer(
            "POST",
            format!("{BASE}/oauth/locationToken"),
            version,
            &bearer,
            "companyId=company-1&locationId=loc-1",
        ),
    );
    let list = send(
        fake,
        &with_bearer(
            "GET",
            format!(
                "{BASE}/oauth/installedLocations?companyId=company-1&appId={}",
                app_id()
            ),
            version,
            &bearer,
            "",
        ),
    );
    let api = send(
        fake,
        &with_bearer(
            "GET",
            format!("{BASE}/locations/loc-1"),
            version,
            &bearer,
            "",
        ),
    );
    format!(
        "  /oauth/token (refresh):     {}\n  /oauth/locationToken:       {}\n  /oauth/installedLocations:  {}\n  /locations/loc-1:           {}\n",
        outcome(&refresh),
        outcome(&mint),
        outcome(&list),
        outcome(&api)
    )
}

#[test]
fn every_published_version_and_later_dates_are_served_as_v2() {
    let mut out = String::new();
    for version in PUBLISHED_API_VERSIONS.iter().chain(&["2025-06-01"]) {
        let mut fake = fake();
        writeln!(out, "Version: {version}").unwrap();
        out.push_str(&every_endpoint(&mut fake, version));
        let unpublished = !PUBLISHED_API_VERSIONS.contains(version);
        assert_eq!(
            fake.stats().unpublished_versions,
            if unpublished { 4 } else { 0 },
            "{version}"
        );
    }
    snap!("versions_served", out);
}

#[test]
fn anything_else_is_refused_and_nothing_is_spent() {
    let cfg = config();
    let mut out = String::new();
    for version in [
        "2021-04-14",
        "2020-01-01",
        "2023-02-30",
        "2021-7-28",
        "20210728",
        "2021-07-28T00:00:00Z",
        "V3",
        "v2",
        "latest",
        "",
    ] {
        let mut fake = fake();
        let t = install(&mut fake, &cfg, &Install::location("company-1", "loc-1"));
        let resp = send(&mut fake, &refresh_with(Some(version), &refresh_of(&t)));
        writeln!(out, "{version:?}: {}", outcome(&resp)).unwrap();
        assert!(fake.is_live_refresh_token(&refresh_of(&t)), "{version:?}");
        assert_eq!(fake.stats().unpublished_versions, 0);
    }
    snap!("versions_refused", out);
}

#[test]
fn no_version_header_is_served_as_v2_at_the_token_endpoint_only() {
    let cfg = config();
    let mut fake = fake();
    let t = install(&mut fake, &cfg, &Install::location("company-1", "loc-1"));
    let refreshed = parse_token_response(send(&mut fake, &refresh_with(None, &refresh_of(&t))));
    assert!(refreshed.is_ok());
    let company = agency(&mut fake, &cfg);
    let mut req = with_bearer(
        "GET",
        format!("{BASE}/locations/loc-1"),
        "2021-07-28",
        company.access_token.secret(),
        "",
    );
    req.headers_mut().remove("version");
    let resp = send(&mut fake, &req);
    assert_eq!(outcome(&resp), r#"400 "Missing parameter: version""#);
}

/// `@gohighlevel/api-client` 3.1 (npm) with no settings: axios sends
/// `Version: 2023-02-21`, `x-sdk-version`, axios's `Accept` and
/// `User-Agent`, and `URLSearchParams` form bodies on the v2 paths.
#[test]
fn the_official_node_sdk_defaults_are_served() {
    let cfg = config();
    let mut fake = fake();
    let t = install(&mut fake, &cfg, &Install::location("company-1", "loc-1"));
    let node = |req: http::request::Builder| {
        req.header("accept", "application/json, text/plain, */*")
            .header("version", "2023-02-21")
            .header("x-sdk-version", "3.1.0")
            .header("user-agent", "axios/1.15.2")
            .header("accept-encoding", "gzip, compress, deflate, br")
    };
    let form = serde_urlencoded::to_string([
        ("refresh_token", refresh_of(&t).as_str()),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("grant_type", "refresh_token"),
        ("user_type", "Location"),
    ])
    .unwrap();
    let refresh = node(Request::post(format!("{BASE}/oauth/token")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.into_bytes())
        .unwrap();
    let resp = send(&mut fake, &refresh);
    snap!("node_sdk_refresh", render(&resp));
    parse_token_response(resp).unwrap();

    let company = agency(&mut fake, &cfg);
    let bearer = format!("Bearer {}", company.access_token.secret());
    let mint = node(Request::post(format!("{BASE}/oauth/locationToken")))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", &bearer)
        .body(b"companyId=company-1&locationId=loc-2".to_vec())
        .unwrap();
    let resp = send(&mut fake, &mint);
    snap!("node_sdk_location_token", render(&resp));
    parse_location_token_response(resp).unwrap();

    let list = node(Request::get(format!(
        "{BASE}/oauth/installedLocations?companyId=company-1&appId={}",
        app_id()
    )))
    .header("authorization", &bearer)
    .body(Vec::new())
    .unwrap();
    let resp = send(&mut fake, &list);
    assert_eq!(resp.status(), 200, "{}", render(&resp));
    assert_eq!(body(&resp)["count"], 5);
    assert_eq!(fake.stats().unpublished_versions, 0);
}

/// `gohighlevel-api-client` 3.0 (PyPI) with no settings: `Version: v3` on
/// every call, camelCase form fields, the v3 paths.
#[test]
fn the_official_python_sdk_defaults_are_served() {
    let cfg = config();
    let mut fake = fake();
    let t = install(&mut fake, &cfg, &Install::location("company-1", "loc-1"));
    let python = |req: http::request::Builder| {
        req.header("version", "v3")
            .header("ghl-sdk-version", "python/3.0.0")
            .header("accept", "*/*")
            .header("user-agent", "python-httpx/0.28.1")
    };
    let form = serde_urlencoded::to_string([
        ("refreshToken", refresh_of(&t).as_str()),
        ("clientId", CLIENT_ID),
        ("clientSecret", CLIENT_SECRET),
        ("grantType", "refresh_token"),
        ("userType", "Location"),
    ])
    .unwrap();
    let refresh = python(Request::post(format!("{BASE}/oauth/token")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.into_bytes())
        .unwrap();
    let resp = send(&mut fake, &refresh);
    assert_eq!(
        outcome(&resp),
        "200 accessToken,approvedLocations,companyId,expiresIn,isBulkInstallation,locationId,planId,refreshToken,scope,tokenType,userId,userType"
    );

    let company = agency(&mut fake, &cfg);
    let bearer = format!("Bearer {}", company.access_token.secret());
    let mint = python(Request::post(format!("{BASE}/oauth/location-token")))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", &bearer)
        .body(b"companyId=company-1&locationId=loc-2".to_vec())
        .unwrap();
    let resp = send(&mut fake, &mint);
    assert_eq!(resp.status(), 201, "{}", render(&resp));
    assert!(body(&resp)["accessToken"].is_string());

    let list = python(Request::get(format!(
        "{BASE}/oauth/installed-locations?companyId=company-1&appId={}&pageSize=20",
        app_id()
    )))
    .header("authorization", &bearer)
    .body(Vec::new())
    .unwrap();
    let resp = send(&mut fake, &list);
    assert_eq!(resp.status(), 200, "{}", render(&resp));
    assert_eq!(body(&resp)["pagination"]["totalRecords"], 5);
}
