//! The fake's installed-locations endpoint: pages and filters in v2, page
//! tokens in v3, and its refusals.
mod common;

use std::fmt::Write;

use common::config;
use hoopai_oauth::fake::FakeServer;
use hoopai_oauth::parse_token_response;
use http::Request;
use serde_json::json;

use common::fake_http::{
    access_of, agency, app_id, assert_no_token, body, fake, installed_req, location_token_req,
    render, send,
};

/// Lists every page; returns the ids and the number of pages.
fn list_all_v2(
    fake: &mut FakeServer,
    bearer: &str,
    extra: &[(&str, &str)],
) -> (Vec<String>, usize) {
    let (mut ids, mut pages, mut skip) = (Vec::new(), 0, 0);
    loop {
        let skip_s = skip.to_string();
        let mut query = vec![
            ("companyId", "company-1"),
            ("appId", app_id()),
            ("skip", &skip_s),
            ("limit", "2"),
        ];
        query.extend_from_slice(extra);
        let page = body(&send(fake, &installed_req(false, bearer, &query)));
        pages += 1;
        let items = page["locations"].as_array().unwrap();
        ids.extend(items.iter().map(|l| l["_id"].as_str().unwrap().to_owned()));
        skip += items.len();
        if items.is_empty() || skip >= page["count"].as_u64().unwrap() as usize {
            return (ids, pages);
        }
    }
}

fn list_all_v3(
    fake: &mut FakeServer,
    bearer: &str,
    extra: &[(&str, &str)],
) -> (Vec<String>, usize) {
    let (mut ids, mut pages, mut token) = (Vec::new(), 0, None::<String>);
    loop {
        let mut query = vec![
            ("companyId", "company-1"),
            ("appId", app_id()),
            ("pageSize", "2"),
        ];
        if let Some(t) = &token {
            query.push(("pageToken", t));
        }
        query.extend_from_slice(extra);
        let page = body(&send(fake, &installed_req(true, bearer, &query)));
        pages += 1;
        let items = page["items"].as_array().unwrap();
        ids.extend(items.iter().map(|l| l["_id"].as_str().unwrap().to_owned()));
        assert_eq!(page["pagination"]["currentPageSize"], items.len());
        match page["pagination"]["nextPageToken"].as_str() {
            Some(t) => {
                assert_eq!(page["pagination"]["hasNextPage"], true);
                token = Some(t.to_owned());
            }
            None => {
                assert_eq!(page["pagination"]["hasNextPage"], false);
                return (ids, pages);
            }
        }
    }
}

#[test]
fn installed_locations_v2_pages_and_filters() {
    let mut fake = fake();
    let company = agency(&mut fake, &config());
    let bearer = access_of(&company);
    let first = send(
        &mut fake,
        &installed_req(
            false,
            &bearer,
            &[
                ("companyId", "company-1"),
                ("appId", app_id()),
                ("limit", "2"),
            ],
        ),
    );
    snap!("installed_locations_v2_first_page", render(&first));
    let page = body(&first);
    assert_eq!(page["count"], 5);
    assert_eq!(page["installToFutureLocations"], false);
    assert_eq!(
        page["locations"][0],
        json!({"_id": "loc-1", "name": "Alpha Dental", "address": "1 Main St", "isInstalled": true, "versionId": app_id()})
    );
    assert_eq!(page["locations"][1]["_id"], "loc-2");

    let all: Vec<String> = (1..=5).map(|i| format!("loc-{i}")).collect();
    assert_eq!(list_all_v2(&mut fake, &bearer, &[]), (all, 3));
    let installed = vec!["loc-1".to_owned(), "loc-2".to_owned(), "loc-4".to_owned()];
    assert_eq!(
        list_all_v2(&mut fake, &bearer, &[("isInstalled", "true")]),
        (installed, 2)
    );
    let not = vec!["loc-3".to_owned(), "loc-5".to_owned()];
    assert_eq!(
        list_all_v2(&mut fake, &bearer, &[("isInstalled", "false")]).0,
        not
    );
    assert_eq!(
        list_all_v2(&mut fake, &bearer, &[("query", "BAKERY")]).0,
        ["loc-2"]
    );
    assert_eq!(
        list_all_v2(&mut fake, &bearer, &[("locationId", "loc-5")]).0,
        ["loc-5"]
    );
    assert_eq!(
        list_all_v2(&mut fake, &bearer, &[("planId", "plan-1")])
            .0
            .len(),
        3
    );
    assert_eq!(
        list_all_v2(&mut fake, &bearer, &[("onTrial", "true")])
            .0
            .len(),
        0
    );
    let pages_served = fake.stats().installed_location_pages;
    assert_eq!(pages_served, 1 + 3 + 2 + 1 + 1 + 1 + 2 + 1);

    // Refusals.
    let q = |extra: &[(&'static str, &'static str)]| {
        let mut q = vec![("companyId", "company-1"), ("appId", app_id())];
        q.extend_from_slice(extra);
        q
    };
    let mut table = String::new();
    let mut refuse = |name: &str, fake: &mut FakeServer, req: Request<Vec<u8>>, status: u16| {
        let resp = send(fake, &req);
        assert_eq!(resp.status().as_u16(), status, "{name}");
        writeln!(
            table,
            "# {name}\nHTTP {}\n{}",
            resp.status(),
            String::from_utf8_lossy(resp.body())
        )
        .unwrap();
    };
    refuse(
        "bad skip",
        &mut fake,
        installed_req(false, &bearer, &q(&[("skip", "-1")])),
        400,
    );
    refuse(
        "zero limit",
        &mut fake,
        installed_req(false, &bearer, &q(&[("limit", "0")])),
        400,
    );
    refuse(
        "bad isInstalled",
        &mut fake,
        installed_req(false, &bearer, &q(&[("isInstalled", "yes")])),
        400,
    );
    refuse(
        "no companyId",
        &mut fake,
        installed_req(false, &bearer, &[("appId", app_id())]),
        400,
    );
    refuse(
        "unknown app",
        &mut fake,
        installed_req(
            false,
            &bearer,
            &[("companyId", "company-1"), ("appId", "other-app")],
        ),
        404,
    );
    refuse(
        "another company",
        &mut fake,
        installed_req(
            false,
            &bearer,
            &[("companyId", "company-2"), ("appId", app_id())],
        ),
        403,
    );
    let minted = parse_token_response(send(
        &mut fake,
        &location_token_req(
            false,
            &bearer,
            &[("companyId", "company-1"), ("locationId", "loc-1")],
        ),
    ))
    .unwrap();
    refuse(
        "Location bearer",
        &mut fake,
        installed_req(false, &access_of(&minted), &q(&[])),
        401,
    );
    let mut no_version = installed_req(false, &bearer, &q(&[]));
    no_version.headers_mut().remove("version");
    refuse("no Version", &mut fake, no_version, 400);
    assert_no_token(&table);
    snap!("installed_locations_v2_refusals", table);
    assert_eq!(fake.stats().installed_location_pages, pages_served);
}

#[test]
fn installed_locations_v3_pages_with_tokens() {
    let mut fake = fake();
    let company = agency(&mut fake, &common::config_v3());
    let bearer = access_of(&company);
    let all: Vec<String> = (1..=5).map(|i| format!("loc-{i}")).collect();
    assert_eq!(list_all_v3(&mut fake, &bearer, &[]), (all, 3));
    assert_eq!(
        list_all_v3(&mut fake, &bearer, &[("isInstalled", "true")]).0,
        ["loc-1", "loc-2", "loc-4"]
    );

    let base = [
        ("companyId", "company-1"),
        ("appId", app_id()),
        ("pageSize", "2"),
    ];
    let first = send(
        &mut fake,
        &installed_req(
            true,
            &bearer,
            &[&base[..], &[("isInstalled", "true")]].concat(),
        ),
    );
    snap!("installed_locations_v3_first_page", render(&first));
    let next = body(&first)["pagination"]["nextPageToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let last = send(
        &mut fake,
        &installed_req(
            true,
            &bearer,
            &[&base[..], &[("isInstalled", "true"), ("pageToken", &next)]].concat(),
        ),
    );
    snap!("installed_locations_v3_last_page", render(&last));
    let last = body(&last);
    assert_eq!(last["pagination"]["hasPrevPage"], true);
    assert_eq!(last["pagination"]["totalRecords"], 3);

    // The same page through the v2 path with a `Version: v3` header.
    let mut by_header = installed_req(false, &bearer, &base);
    by_header
        .headers_mut()
        .insert("version", "v3".parse().unwrap());
    assert_eq!(
        body(&send(&mut fake, &by_header))["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let mut table = String::new();
    for (name, query, status) in [
        (
            "pageSize 0",
            vec![
                ("companyId", "company-1"),
                ("appId", app_id()),
                ("pageSize", "0"),
            ],
            400,
        ),
        (
            "pageSize 101",
            vec![
                ("companyId", "company-1"),
                ("appId", app_id()),
                ("pageSize", "101"),
            ],
            400,
        ),
        (
            "bad pageToken",
            vec![
                ("companyId", "company-1"),
                ("appId", app_id()),
                ("pageToken", "eyJza2lwIjoyMH0"),
            ],
            400,
        ),
        ("no appId", vec![("companyId", "company-1")], 400),
        (
            "unknown app",
            vec![("companyId", "company-1"), ("appId", "abc")],
            404,
        ),
        (
            "another company",
            vec![("companyId", "company-2"), ("appId", app_id())],
            403,
        ),
    ] {
        let resp = send(&mut fake, &installed_req(true, &bearer, &query));
        assert_eq!(resp.status().as_u16(), status, "{name}");
        let b = body(&resp);
        assert!(
            b["error"]["code"].is_string() && b["error"]["message"].is_string(),
            "{name}: {b}"
        );
        writeln!(
            table,
            "# {name}\nHTTP {}\n{}",
            resp.status(),
            String::from_utf8_lossy(resp.body())
        )
        .unwrap();
    }
    assert_no_token(&table);
    snap!("installed_locations_v3_refusals", table);
}
