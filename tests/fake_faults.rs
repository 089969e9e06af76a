//! Faults scripted into the fake: each answered with its error kind, in
//! order, spending nothing.
mod common;

use std::time::Duration;

use common::{REDIRECT_URI, config, t0};
use hoopai_oauth::fake::{Fault, Install};
use hoopai_oauth::{ErrorKind, parse_token_response};

use common::fake_http::{
    configs, consent_req, exchange_req, fake, install, refresh_of, refresh_req, render, send,
};

#[test]
fn each_fault_gets_its_error_kind_and_spends_nothing() {
    let cases = [
        (
            Fault::RateLimited {
                retry_after_secs: Some(7),
            },
            ErrorKind::RateLimited,
            "rate_limited",
        ),
        (
            Fault::RateLimited {
                retry_after_secs: None,
            },
            ErrorKind::RateLimited,
            "rate_limited_no_retry_after",
        ),
        (Fault::ServerError, ErrorKind::ServerError, "server_error"),
        (
            Fault::BadGatewayHtml,
            ErrorKind::ServerError,
            "bad_gateway_html",
        ),
        (
            Fault::LocationNotActive,
            ErrorKind::LocationNotActive,
            "location_not_active",
        ),
    ];
    for (fault, kind, name) in cases {
        let mut fake = fake();
        let t = install(
            &mut fake,
            &config(),
            &Install::location("company-1", "loc-1"),
        );
        fake.fail_next(fault.clone(), 1);
        let resp = send(&mut fake, &refresh_req(&config(), &refresh_of(&t)));
        snap!(format!("fault_{name}"), render(&resp));
        let err = parse_token_response(resp).unwrap_err();
        assert_eq!(err.kind(), kind, "{fault:?}");
        if let Fault::RateLimited { retry_after_secs } = fault {
            let wait = err.retry_after(t0());
            let expected = retry_after_secs.map_or(Duration::from_secs(10), Duration::from_secs);
            assert_eq!(wait, Some(expected));
            assert_eq!(err.rate_limit().unwrap().remaining, Some(0));
        }
        assert!(fake.is_live_refresh_token(&refresh_of(&t)), "{fault:?}");
        assert_eq!(fake.stats().faults_served, 1);
        // The next request is handled normally.
        parse_token_response(send(&mut fake, &refresh_req(&config(), &refresh_of(&t)))).unwrap();
    }
}

#[test]
fn faults_are_served_in_order_for_any_request() {
    let mut fake = fake();
    let t = install(
        &mut fake,
        &config(),
        &Install::location("company-1", "loc-1"),
    );
    fake.fail_next(Fault::ServerError, 2);
    fake.fail_next(
        Fault::RateLimited {
            retry_after_secs: None,
        },
        1,
    );
    fake.fail_next(Fault::BadGatewayHtml, 0);
    let req = refresh_req(&config(), &refresh_of(&t));
    let kinds: Vec<ErrorKind> = (0..3)
        .map(|_| {
            parse_token_response(send(&mut fake, &req))
                .unwrap_err()
                .kind()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ErrorKind::ServerError,
            ErrorKind::ServerError,
            ErrorKind::RateLimited
        ]
    );
    parse_token_response(send(&mut fake, &req)).unwrap();

    // Faults answer other endpoints too.
    fake.fail_next(Fault::ServerError, 1);
    let resp = send(&mut fake, &consent_req(&[("redirect_uri", REDIRECT_URI)]));
    assert_eq!(resp.status(), 500);
    assert_eq!(fake.stats().faults_served, 4);
    assert_eq!(fake.stats().requests, 6);
}

#[test]
fn a_suspended_location_keeps_its_refresh_token() {
    for (_, cfg) in configs() {
        let mut fake = fake();
        let t = install(&mut fake, &cfg, &Install::location("company-1", "loc-1"));
        let rt = refresh_of(&t);
        fake.set_location_active("loc-1", false);
        for _ in 0..2 {
            let err = parse_token_response(send(&mut fake, &refresh_req(&cfg, &rt))).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::LocationNotActive);
            assert_eq!(err.messages(), ["Location is not active"]);
            assert!(fake.is_live_refresh_token(&rt));
        }
        // Another location's suspension does not matter; reactivation does.
        fake.set_location_active("loc-2", false);
        fake.set_location_active("loc-1", true);
        let next = parse_token_response(send(&mut fake, &refresh_req(&cfg, &rt))).unwrap();
        assert!(fake.is_live_refresh_token(&refresh_of(&next)));
        assert!(!fake.is_live_refresh_token(&rt));

        // A code for a suspended location is kept until it is active again.
        let code = fake.approve(&Install::location("company-1", "loc-2"));
        let err = parse_token_response(send(&mut fake, &exchange_req(&cfg, &code))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LocationNotActive);
        fake.set_location_active("loc-2", true);
        parse_token_response(send(&mut fake, &exchange_req(&cfg, &code))).unwrap();
    }
}
