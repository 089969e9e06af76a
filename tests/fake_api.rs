//! `GET /locations/{locationId}`, the fake's one ordinary API call: a live
//! bearer of the location (or of its agency) gets the location; a missing,
//! unknown, expired or revoked one gets `401 Invalid JWT`, and a refresh
//! makes the call work again.
mod common;

use std::time::Duration;

use common::{config, t0};
use hoopai_oauth::fake::{FakeServer, FakeWebhook, Install};
use hoopai_oauth::{ErrorKind, parse_token_response};
use http::{Request, Response};
use serde_json::json;

use common::fake_http::{
    BASE, access_of, agency, body, fake, install, refresh_of, refresh_req, render, send,
};

fn get_location(location_id: &str, bearer: Option<&str>) -> Request<Vec<u8>> {
    let mut b =
        Request::get(format!("{BASE}/locations/{location_id}")).header("version", "2021-07-28");
    if let Some(token) = bearer {
        b = b.header("authorization", format!("Bearer {token}"));
    }
    b.body(Vec::new()).unwrap()
}

fn call(fake: &mut FakeServer, location_id: &str, bearer: Option<&str>) -> Response<Vec<u8>> {
    send(fake, &get_location(location_id, bearer))
}

#[test]
fn a_live_location_token_gets_its_location() {
    let mut fake = fake();
    fake.add_location(
        "company-1",
        "loc-1",
        "Downtown Dental",
        "1 Main St, Springfield",
    );
    let t = install(
        &mut fake,
        &config(),
        &Install::location("company-1", "loc-1"),
    );
    let resp = call(&mut fake, "loc-1", Some(&access_of(&t)));
    snap!("location_by_id", render(&resp));
    assert_eq!(
        body(&resp),
        json!({"location": {"id": "loc-1", "companyId": "company-1", "name": "Downtown Dental", "address": "1 Main St, Springfield"}})
    );
    assert_eq!(fake.stats().api_calls, 1);
}

#[test]
fn an_agency_token_gets_the_locations_of_its_company_only() {
    let mut fake = fake();
    let company = agency(&mut fake, &config());
    let bearer = access_of(&company);
    // loc-3 is not approved for the app, but it is the agency's.
    assert_eq!(call(&mut fake, "loc-3", Some(&bearer)).status(), 200);
    fake.add_location("company-2", "loc-elsewhere", "Elsewhere", "");
    let resp = call(&mut fake, "loc-elsewhere", Some(&bearer));
    assert_eq!(
        (resp.status().as_u16(), body(&resp)["message"].clone()),
        (
            403,
            json!("The token does not have access to this location.")
        )
    );
}

#[test]
fn another_locations_token_is_forbidden() {
    let mut fake = fake();
    let t = install(
        &mut fake,
        &config(),
        &Install::location("company-1", "loc-1"),
    );
    fake.add_location("company-1", "loc-2", "Uptown", "");
    let resp = call(&mut fake, "loc-2", Some(&access_of(&t)));
    snap!("location_by_id_forbidden", render(&resp));
    assert_eq!(fake.stats().api_calls, 0);
}

#[test]
fn missing_unknown_expired_and_revoked_bearers_get_invalid_jwt() {
    let cfg = config();
    let mut fake = fake();
    let t = install(&mut fake, &cfg, &Install::location("company-1", "loc-1"));
    let live = access_of(&t);

    let missing = call(&mut fake, "loc-1", None);
    snap!("location_by_id_invalid_jwt", render(&missing));
    let unknown = call(&mut fake, "loc-1", Some("at-000000000000-0000000000000000"));
    assert_eq!(unknown.body(), missing.body());

    // Expired by its lifetime.
    let later = t0() + Duration::from_secs(86_399);
    let expired = fake.handle(&get_location("loc-1", Some(&live)), later);
    assert_eq!(expired.status(), 401);
    assert_eq!(expired.body(), missing.body());

    // Expired ahead of time, then a refresh makes the call work again.
    let t = install(&mut fake, &cfg, &Install::location("company-1", "loc-1"));
    let live = access_of(&t);
    assert_eq!(call(&mut fake, "loc-1", Some(&live)).status(), 200);
    assert!(fake.expire_access_token(&live));
    assert!(!fake.expire_access_token(&live));
    let refused = call(&mut fake, "loc-1", Some(&live));
    assert_eq!(refused.body(), missing.body());
    let refreshed =
        parse_token_response(send(&mut fake, &refresh_req(&cfg, &refresh_of(&t)))).unwrap();
    assert_eq!(
        call(&mut fake, "loc-1", Some(&access_of(&refreshed))).status(),
        200
    );

    // Revoked by an uninstall.
    fake.uninstall(&FakeWebhook::uninstall_location("loc-1"), t0());
    let revoked = call(&mut fake, "loc-1", Some(&access_of(&refreshed)));
    assert_eq!(revoked.body(), missing.body());

    let stats = fake.stats();
    assert_eq!(
        (
            stats.invalid_bearers,
            stats.access_tokens_expired,
            stats.api_calls
        ),
        (5, 1, 2)
    );

    // The crate reads the answer as what it is: the grant's 401.
    let err = parse_token_response(revoked).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::GrantUnauthorized);
}

#[test]
fn expiring_by_location_or_company_reaches_every_grant_of_it() {
    let cfg = config();
    let mut fake = fake();
    let company = agency(&mut fake, &cfg);
    let a = install(&mut fake, &cfg, &Install::location("company-1", "loc-1"));
    let b = install(&mut fake, &cfg, &Install::location("company-1", "loc-1"));
    let other = install(&mut fake, &cfg, &Install::location("company-1", "loc-2"));
    assert_eq!(fake.expire_access_tokens_of("loc-1"), 2);
    for (t, status) in [(&a, 401), (&b, 401), (&other, 200), (&company, 200)] {
        let loc = t.location_id.as_deref().unwrap_or("loc-1");
        assert_eq!(call(&mut fake, loc, Some(&access_of(t))).status(), status);
    }
    assert_eq!(fake.expire_access_tokens_of("company-1"), 1);
    assert_eq!(
        call(&mut fake, "loc-1", Some(&access_of(&company))).status(),
        401
    );
    assert_eq!(fake.expire_access_tokens_of("nobody"), 0);
}

#[test]
fn only_get_and_a_non_empty_id_are_the_api_call() {
    let mut fake = fake();
    let t = install(
        &mut fake,
        &config(),
        &Install::location("company-1", "loc-1"),
    );
    let mut put = get_location("loc-1", Some(&access_of(&t)));
    *put.method_mut() = http::Method::PUT;
    assert_eq!(send(&mut fake, &put).status(), 404);
    assert_eq!(call(&mut fake, "", Some(&access_of(&t))).status(), 404);
    // A base URL with a path prefix, and a percent-encoded id.
    fake.add_location("company-1", "loc 1", "Spaced", "");
    let spaced = Request::get("http://127.0.0.1:9/prefix/locations/loc%201")
        .header("version", "2021-07-28")
        .header("authorization", format!("Bearer {}", access_of(&t)))
        .body(Vec::new())
        .unwrap();
    assert_eq!(send(&mut fake, &spaced).status(), 403);
}
