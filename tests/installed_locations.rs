//! `GET /oauth/installedLocations` (v3 `/oauth/installed-locations`): the
//! request with every parameter in both versions, the one page type both
//! answers parse into, and listing everything page by page.

mod common;

use std::fmt::Write;

use common::{CLIENT_ID, CLIENT_SECRET, config, render_request, response};
use hoopai_oauth::{
    AccessToken, ApiVersion, Config, DEFAULT_PAGE_SIZE, Error, ErrorKind, InstalledLocationsPage,
    InstalledLocationsQuery, MAX_BODY_BYTES, TokenResponse, Unreadable, UserType,
    installed_locations_request, parse_installed_locations, redact,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const COMPANY_TOKEN: &str = "placeholder-company-access-token-000002";
const COMPANY_ID: &str = "tDtDnQdgm2LXpyiqYvZ6";

type Built = Result<http::Request<Vec<u8>>, Error>;

fn v3_config() -> Config {
    Config::builder(CLIENT_ID, CLIENT_SECRET)
        .api_version(ApiVersion::V3)
        .build()
        .unwrap()
}

fn bearer() -> AccessToken {
    AccessToken::new(COMPANY_TOKEN)
}

/// `render_request` with the bearer token redacted, and the decoded query.
fn render(req: &http::Request<Vec<u8>>) -> String {
    let text = render_request(req).replace(COMPANY_TOKEN, &redact(COMPANY_TOKEN));
    let mut out = format!("{text}\n# decoded query\n");
    for (k, v) in query_of(req) {
        writeln!(out, "{k} = {v:?}").unwrap();
    }
    out
}

fn query_of(req: &http::Request<Vec<u8>>) -> Vec<(String, String)> {
    serde_urlencoded::from_str(req.uri().query().unwrap_or("")).unwrap()
}

fn keys(req: &http::Request<Vec<u8>>) -> Vec<String> {
    query_of(req).into_iter().map(|(k, _)| k).collect()
}

fn every_filter(q: InstalledLocationsQuery) -> InstalledLocationsQuery {
    q.search("Main St & Co")
        .installed(true)
        .version_id("6578278e879ad2646715ba9d")
        .on_trial(false)
        .plan_id("plan-1")
        .location_id("l1C08ntBrFjLS0elLIYU")
}

// ---- requests --------------------------------------------------------------------

#[test]
fn v2_first_page() {
    let req = installed_locations_request(
        &config(),
        &bearer(),
        &InstalledLocationsQuery::new(COMPANY_ID),
    )
    .unwrap();
    assert_eq!(req.method(), http::Method::GET);
    assert_eq!(req.uri().path(), "/oauth/installedLocations");
    assert_eq!(req.headers()["version"], "2021-07-28");
    assert!(req.headers()["authorization"].is_sensitive());
    assert!(req.body().is_empty());
    // appId defaults to the part of the client id before the first '-'.
    assert_eq!(
        query_of(&req),
        [
            ("companyId".to_owned(), COMPANY_ID.to_owned()),
            (
                "appId".to_owned(),
                CLIENT_ID.split('-').next().unwrap().to_owned()
            )
        ]
    );
    snap!(render(&req));
}

#[test]
fn v2_every_parameter() {
    let q = every_filter(
        InstalledLocationsQuery::new(COMPANY_ID)
            .app_id("65f0c0ffee0000000000abcd")
            .skip(40)
            .page_size(20),
    );
    let req = installed_locations_request(&config(), &bearer(), &q).unwrap();
    assert_eq!(
        keys(&req),
        [
            "companyId",
            "appId",
            "skip",
            "limit",
            "query",
            "isInstalled",
            "versionId",
            "onTrial",
            "planId",
            "locationId"
        ]
    );
    snap!(render(&req));
}

#[test]
fn v3_first_page() {
    let req = installed_locations_request(
        &v3_config(),
        &bearer(),
        &InstalledLocationsQuery::new(COMPANY_ID),
    )
    .unwrap();
    assert_eq!(req.uri().path(), "/oauth/installed-locations");
    assert_eq!(req.headers()["version"], "v3");
    snap!(render(&req));
}

#[test]
fn v3_every_parameter() {
    let q = every_filter(
        InstalledLocationsQuery::new(COMPANY_ID)
            .page_size(100)
            .page_token("eyJza2lwIjoyMH0")
            .restrict_to_user_locations(true),
    );
    let req = installed_locations_request(&v3_config(), &bearer(), &q).unwrap();
    assert_eq!(
        keys(&req),
        [
            "companyId",
            "appId",
            "pageSize",
            "pageToken",
            "query",
            "isInstalled",
            "restrictToUserLocations",
            "versionId",
            "onTrial",
            "planId",
            "locationId"
        ]
    );
    snap!(render(&req));
}

/// The same query works in both versions when it uses no version-only parameter.
#[test]
fn one_query_both_versions() {
    let q = every_filter(InstalledLocationsQuery::new(COMPANY_ID).page_size(50));
    let v2 = installed_locations_request(&config(), &bearer(), &q).unwrap();
    let v3 = installed_locations_request(&v3_config(), &bearer(), &q).unwrap();
    let rename = |k: String| if k == "limit" { "pageSize".into() } else { k };
    assert_eq!(
        keys(&v2).into_iter().map(rename).collect::<Vec<_>>(),
        keys(&v3)
    );
}

#[test]
fn bad_inputs_build_nothing() {
    let q = || InstalledLocationsQuery::new(COMPANY_ID);
    let mut location_token =
        TokenResponse::new(AccessToken::new("placeholder-location-token-0000001"));
    location_token.user_type = Some(UserType::Location);
    let v2 = config();
    let v3 = v3_config();
    let cases: Vec<(&str, Built)> = vec![
        (
            "empty company id",
            installed_locations_request(&v2, &bearer(), &InstalledLocationsQuery::new("")),
        ),
        (
            "blank app id",
            installed_locations_request(&v2, &bearer(), &q().app_id(" ")),
        ),
        (
            "v2 page size 0",
            installed_locations_request(&v2, &bearer(), &q().page_size(0)),
        ),
        (
            "v3 page size 0",
            installed_locations_request(&v3, &bearer(), &q().page_size(0)),
        ),
        (
            "v3 page size 101",
            installed_locations_request(&v3, &bearer(), &q().page_size(101)),
        ),
        (
            "skip in v3",
            installed_locations_request(&v3, &bearer(), &q().skip(20)),
        ),
        (
            "page token in v2",
            installed_locations_request(&v2, &bearer(), &q().page_token("abc")),
        ),
        (
            "restrictToUserLocations in v2",
            installed_locations_request(&v2, &bearer(), &q().restrict_to_user_locations(true)),
        ),
        (
            "empty page token",
            installed_locations_request(&v3, &bearer(), &q().page_token("")),
        ),
        (
            "empty search text",
            installed_locations_request(&v2, &bearer(), &q().search("")),
        ),
        (
            "empty version id",
            installed_locations_request(&v2, &bearer(), &q().version_id("")),
        ),
        (
            "empty plan id",
            installed_locations_request(&v3, &bearer(), &q().plan_id(" ")),
        ),
        (
            "empty location id",
            installed_locations_request(&v2, &bearer(), &q().location_id("")),
        ),
        (
            "a Location token as bearer",
            installed_locations_request(&v2, &location_token, &q()),
        ),
        (
            "an empty access token",
            installed_locations_request(&v3, &AccessToken::new(""), &q()),
        ),
    ];
    let mut out = String::new();
    for (name, result) in cases {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name}");
        writeln!(out, "{name}: {err}").unwrap();
    }
    snap!(out);
    // The edges that are fine.
    assert!(installed_locations_request(&v3, &bearer(), &q().page_size(1)).is_ok());
    assert!(installed_locations_request(&v3, &bearer(), &q().page_size(100)).is_ok());
    assert!(installed_locations_request(&v2, &bearer(), &q().page_size(500)).is_ok());
    assert!(installed_locations_request(&v2, &bearer(), &q().skip(0)).is_ok());
}

// ---- answers ---------------------------------------------------------------------

fn parse(status: u16, body: impl Into<Vec<u8>>) -> Result<InstalledLocationsPage, Error> {
    parse_installed_locations(response(status, &[], body))
}

#[test]
fn v2_page() {
    let page = parse(
        200,
        json!({
            "locations": [
                {"_id": "0IHuJvc2ofPAAA8GzTRi", "name": "John Deo", "address": "47 W 13th St, New York, NY 10011, USA", "isInstalled": true, "versionId": "6578278e879ad2646715ba9c", "installedAt": "2024-01-15T10:30:00.000Z"},
                {"_id": "ve9EPM428h8vShlRW1KT", "name": "Second", "address": "", "isInstalled": false, "timezone": "US/Central"}
            ],
            "count": 1231,
            "installToFutureLocations": true
        })
        .to_string(),
    )
    .unwrap();
    assert_eq!(page.locations.len(), 2);
    assert_eq!(page.total, Some(1231));
    assert_eq!(page.install_to_future_locations, Some(true));
    assert!(page.pagination.is_none());
    assert_eq!(page.locations[1].extra["timezone"], "US/Central");
    snap!(format!("{page:#?}"));
}

#[test]
fn v3_page() {
    let page = parse(
        200,
        json!({
            "items": [
                {"_id": "0IHuJvc2ofPAAA8GzTRi", "name": "John Deo", "address": "47 W 13th St, New York, NY 10011, USA", "isInstalled": true}
            ],
            "pagination": {"totalRecords": 1231, "hasNextPage": true, "hasPrevPage": false, "nextPageToken": "eyJvZmZzZXQiOjIwfQ", "prevPageToken": "eyJvZmZzZXQiOjB9", "currentPageSize": 20, "cursor": "x"},
            "metadata": {"filterApplied": {"companyId": COMPANY_ID, "isInstalled": true}, "sortApplied": {"installedAt": "desc"}},
            "installToFutureLocations": true
        })
        .to_string(),
    )
    .unwrap();
    assert_eq!(page.total, Some(1231));
    let p = page.pagination.as_ref().unwrap();
    assert_eq!(p.next_page_token.as_deref(), Some("eyJvZmZzZXQiOjIwfQ"));
    assert_eq!(p.extra["cursor"], "x");
    assert!(page.metadata.is_some());
    snap!(format!("{page:#?}"));
}

/// Strings for numbers and booleans are read; wrong types are kept, never fatal.
#[test]
fn lenient_fields() {
    let page = parse(
        200,
        json!({
            "locations": [
                {"id": "by-id", "name": null, "isInstalled": "true", "versionId": 7},
                {"_id": "both", "id": "ignored", "address": ["a"], "installedAt": 1705314600}
            ],
            "count": "42",
            "installToFutureLocations": "maybe",
            "pagination": "none",
            "items": "also odd"
        })
        .to_string(),
    )
    .unwrap();
    assert_eq!(page.locations[0].id, "by-id");
    assert_eq!(page.locations[0].is_installed, Some(true));
    assert_eq!(page.locations[0].extra["versionId"], 7);
    assert_eq!(page.locations[1].id, "both");
    assert_eq!(page.locations[1].extra["id"], "ignored");
    assert_eq!(page.total, Some(42));
    assert_eq!(page.install_to_future_locations, None);
    assert_eq!(page.extra["installToFutureLocations"], "maybe");
    assert_eq!(page.extra["items"], "also odd");
    snap!(format!("{page:#?}"));
}

#[test]
fn bad_answers() {
    let big = {
        let mut b = br#"{"locations":[],"pad":""#.to_vec();
        b.resize(MAX_BODY_BYTES + 1, b' ');
        b
    };
    let cases: Vec<(&str, u16, Vec<u8>, ErrorKind)> = vec![
        (
            "no list",
            200,
            json!({"count": 3}).to_string().into(),
            ErrorKind::Unreadable,
        ),
        (
            "list of the wrong type",
            200,
            json!({"locations": {"_id": "x"}}).to_string().into(),
            ErrorKind::Unreadable,
        ),
        (
            "a location without id",
            200,
            json!({"locations": [{"_id": "a", "name": "A"}, {"name": "B"}]}).to_string().into(),
            ErrorKind::Unreadable,
        ),
        (
            "a location that is not an object",
            200,
            json!({"items": ["a"]}).to_string().into(),
            ErrorKind::Unreadable,
        ),
        (
            "a JSON array",
            200,
            b"[]".to_vec(),
            ErrorKind::Unreadable,
        ),
        (
            "v3 AIP invalid pageSize",
            400,
            json!({"error": {"code": "INVALID_ARGUMENT", "message": "pageSize must be between 1 and 100", "details": {"field": "pageSize"}, "resolution": "Send a pageSize from 1 to 100."}}).to_string().into(),
            ErrorKind::InvalidParameter,
        ),
        (
            "v3 AIP app not found",
            404,
            json!({"error": {"code": "RESOURCE_NOT_FOUND", "message": "The requested App 'abc' was not found.", "details": {"resource": "App", "identifier": "abc"}, "resolution": "Verify the App exists and you have permission to access it."}}).to_string().into(),
            ErrorKind::NotFound,
        ),
        (
            "auth class",
            401,
            json!({"statusCode": 401, "message": "This authClass type is not allowed to access this scope. Please reach out to the Platform team to get it added."}).to_string().into(),
            ErrorKind::Unauthorized,
        ),
        (
            "forbidden",
            403,
            json!({"statusCode": 403, "message": "You do not have permission to access this resource", "error": "Forbidden"}).to_string().into(),
            ErrorKind::Forbidden,
        ),
        (
            "error body on 200",
            200,
            json!({"statusCode": 401, "message": "Invalid JWT"}).to_string().into(),
            ErrorKind::Unauthorized,
        ),
        (
            "HTML error page",
            503,
            b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>".to_vec(),
            ErrorKind::ServerError,
        ),
        (
            "truncated JSON",
            200,
            br#"{"locations":[{"_id":"a","name":"A"#.to_vec(),
            ErrorKind::Unreadable,
        ),
        ("huge body", 200, big, ErrorKind::Unreadable),
    ];
    let mut out = String::new();
    for (name, status, body, kind) in cases {
        let err = parse(status, body).unwrap_err();
        assert_eq!(err.kind(), kind, "{name}: {err}");
        writeln!(out, "## {name}\n{err:#?}\n{err}\n").unwrap();
    }
    let shape = parse(200, json!({"count": 3}).to_string()).unwrap_err();
    assert_eq!(shape.unreadable_reason(), Some(Unreadable::UnexpectedShape));
    snap!(out);
}

// ---- paging ----------------------------------------------------------------------

fn page(body: Value) -> InstalledLocationsPage {
    parse(200, body.to_string()).unwrap()
}

fn locs(n: usize) -> Vec<Value> {
    (0..n).map(|i| json!({"_id": format!("loc-{i}")})).collect()
}

#[test]
fn next_page_rules() {
    let q = InstalledLocationsQuery::new(COMPANY_ID);
    // v2 with a count: skip what was seen, stop at the count.
    let next = q
        .next_page(&page(json!({"locations": locs(20), "count": 45})))
        .unwrap();
    assert_eq!(next.skipped(), Some(20));
    let next = next
        .next_page(&page(json!({"locations": locs(20), "count": 45})))
        .unwrap();
    assert_eq!(next.skipped(), Some(40));
    assert!(
        next.next_page(&page(json!({"locations": locs(5), "count": 45})))
            .is_none()
    );
    // A server that gives fewer than asked is followed by its count.
    let small = q
        .clone()
        .page_size(50)
        .next_page(&page(json!({"locations": locs(10), "count": 45})))
        .unwrap();
    assert_eq!(small.skipped(), Some(10));
    assert_eq!(small.requested_page_size(), Some(50));
    // v2 without a count: a short page is the last; a full one is not.
    assert!(q.next_page(&page(json!({"locations": locs(19)}))).is_none());
    assert_eq!(
        q.next_page(&page(
            json!({"locations": locs(DEFAULT_PAGE_SIZE as usize)})
        ))
        .unwrap()
        .skipped(),
        Some(20)
    );
    // An empty page is the last, whatever the count says.
    assert!(
        q.next_page(&page(json!({"locations": [], "count": 45})))
            .is_none()
    );
    // v3: follow the token.
    let v3 = |pagination: Value| page(json!({"items": locs(2), "pagination": pagination}));
    let next = q
        .next_page(&v3(json!({"hasNextPage": true, "nextPageToken": "t2"})))
        .unwrap();
    assert_eq!(next.requested_page_token(), Some("t2"));
    assert_eq!(next.skipped(), None);
    // The token alone is enough.
    assert!(q.next_page(&v3(json!({"nextPageToken": "t2"}))).is_some());
    // hasNextPage false, no token, an empty token, or the same token: the end.
    assert!(
        q.next_page(&v3(json!({"hasNextPage": false, "nextPageToken": "t2"})))
            .is_none()
    );
    assert!(q.next_page(&v3(json!({"hasNextPage": true}))).is_none());
    assert!(
        q.next_page(&v3(json!({"hasNextPage": true, "nextPageToken": ""})))
            .is_none()
    );
    assert!(
        next.next_page(&v3(json!({"hasNextPage": true, "nextPageToken": "t2"})))
            .is_none()
    );
}

/// A pretend server over `total` locations, in the version the request speaks.
/// `count` decides whether v2 answers carry `count`; `cap` limits page sizes.
fn serve(
    req: &http::Request<Vec<u8>>,
    total: usize,
    count: bool,
    cap: usize,
) -> http::Response<Vec<u8>> {
    let q = query_of(req);
    let get = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let v3 = req.uri().path() == "/oauth/installed-locations";
    let size_key = if v3 { "pageSize" } else { "limit" };
    let size = get(size_key)
        .map_or(20, |s| s.parse::<usize>().unwrap())
        .min(cap);
    let offset = if v3 {
        get("pageToken").map_or(0, |t| t.strip_prefix("offset-").unwrap().parse().unwrap())
    } else {
        get("skip").map_or(0, |s| s.parse().unwrap())
    };
    let end = (offset + size).min(total);
    let items = locs(total)[offset.min(total)..end].to_vec();
    let body = if v3 {
        let mut pagination = json!({
            "totalRecords": total,
            "hasNextPage": end < total,
            "hasPrevPage": offset > 0,
            "currentPageSize": items.len(),
        });
        if end < total {
            pagination["nextPageToken"] = json!(format!("offset-{end}"));
        }
        json!({"items": items, "pagination": pagination, "metadata": {}, "installToFutureLocations": false})
    } else if count {
        json!({"locations": items, "count": total, "installToFutureLocations": false})
    } else {
        json!({"locations": items})
    };
    response(200, &[], body.to_string())
}

/// Lists everything the way a driver would; returns the ids and the number of requests.
fn list_all(
    config: &Config,
    size: Option<u32>,
    total: usize,
    count: bool,
    cap: usize,
) -> (Vec<String>, usize) {
    let mut first = InstalledLocationsQuery::new(COMPANY_ID);
    if let Some(s) = size {
        first = first.page_size(s);
    }
    let mut q = Some(first);
    let mut ids = Vec::new();
    let mut requests = 0;
    while let Some(query) = q {
        requests += 1;
        assert!(requests <= total + 2, "the listing does not end");
        let req = installed_locations_request(config, &bearer(), &query).unwrap();
        let page = parse_installed_locations(serve(&req, total, count, cap)).unwrap();
        q = query.next_page(&page);
        ids.extend(page.locations.into_iter().map(|l| l.id));
    }
    (ids, requests)
}

fn expected_ids(total: usize) -> Vec<String> {
    (0..total).map(|i| format!("loc-{i}")).collect()
}

#[test]
fn listing_everything_in_both_versions() {
    let mut out = String::new();
    for (name, config) in [("v2", config()), ("v3", v3_config())] {
        for total in [0, 1, 19, 20, 21, 45, 100] {
            let (ids, requests) = list_all(&config, None, total, true, 100);
            assert_eq!(ids, expected_ids(total), "{name} {total}");
            assert_eq!(requests, total.div_ceil(20).max(1), "{name} {total}");
            writeln!(out, "{name}: {total} locations in {requests} requests").unwrap();
        }
    }
    // A v2 server that caps pages under the size asked: its count keeps us going.
    let (ids, requests) = list_all(&config(), Some(50), 45, true, 10);
    assert_eq!(ids, expected_ids(45));
    writeln!(
        out,
        "v2 capped at 10, asked 50: 45 locations in {requests} requests"
    )
    .unwrap();
    snap!(out);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_total_and_page_size_lists_each_location_once(
        total in 0usize..260,
        size in 1u32..=100,
        count in any::<bool>(),
    ) {
        let expected = expected_ids(total);
        let n = size as usize;
        let (ids, requests) = list_all(&config(), Some(size), total, count, 1000);
        prop_assert_eq!(&ids, &expected);
        let v2_requests = if count || total % n != 0 { total.div_ceil(n).max(1) } else { total / n + 1 };
        prop_assert_eq!(requests, v2_requests);
        let (ids, requests) = list_all(&v3_config(), Some(size), total, count, 1000);
        prop_assert_eq!(&ids, &expected);
        prop_assert_eq!(requests, total.div_ceil(n).max(1));
    }

    #[test]
    fn any_body_parses_or_errs_without_panicking(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_installed_locations(response(200, &[], body));
    }

    #[test]
    fn any_json_parses_or_errs_without_panicking(
        items in proptest::collection::vec(prop_oneof![
            Just(json!({"_id": "a"})),
            Just(json!({"id": 1})),
            Just(json!(null)),
            Just(json!({"_id": "b", "isInstalled": "yes", "name": 3})),
        ], 0..5),
        key in prop_oneof![Just("locations"), Just("items"), Just("other")],
        count in prop_oneof![Just(json!(3)), Just(json!("3")), Just(json!(-1)), Just(json!(1.5)), Just(json!(null))],
    ) {
        let body = json!({key: items, "count": count});
        let _ = parse(200, body.to_string());
    }
}
