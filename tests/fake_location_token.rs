//! The fake's location-token endpoint: Location tokens minted from a
//! Company token, its refusals, and access tokens that expire.
mod common;

use std::time::Duration;

use common::{config, t0};
use hoopai_oauth::fake::{FakeServer, Install};
use hoopai_oauth::{TokenResponse, UserType, parse_token_response};
use serde_json::json;

use common::fake_http::{
    access_of, agency, app_id, body, configs, fake, install, location_token_req, refresh_of,
    refresh_req, render, send,
};

#[test]
fn a_company_token_mints_location_tokens() {
    for (version, cfg) in configs() {
        let v3 = version == "v3";
        let mut fake = fake();
        let company = agency(&mut fake, &cfg);
        let bearer = access_of(&company);
        let req = location_token_req(
            v3,
            &bearer,
            &[("companyId", "company-1"), ("locationId", "loc-2")],
        );
        let resp = send(&mut fake, &req);
        assert_eq!(resp.status(), 201);
        snap!(format!("location_token_{version}"), render(&resp));
        let keys: Vec<String> = body(&resp).as_object().unwrap().keys().cloned().collect();
        let mut expected = vec![
            "appId",
            "expires_in",
            "locationId",
            "planId",
            "scope",
            "userId",
            "versionId",
            "access_token",
            "token_type",
            "refresh_token",
        ];
        if v3 {
            expected = vec![
                "appId",
                "expiresIn",
                "locationId",
                "planId",
                "scope",
                "userId",
                "versionId",
                "accessToken",
                "tokenType",
                "refreshToken",
            ];
        }
        expected.sort_unstable();
        assert_eq!(keys, expected);
        let minted = parse_token_response(resp).unwrap();
        assert_eq!(minted.location_id.as_deref(), Some("loc-2"));
        assert_eq!(minted.app_id.as_deref(), Some(app_id()));
        assert_eq!(minted.version_id.as_deref(), Some(app_id()));
        assert_eq!(minted.plan_id.as_deref(), Some("plan-1"));
        assert_eq!(minted.user_id.as_deref(), Some("user-1"));
        assert_eq!(fake.stats().location_tokens, 1);

        // Its refresh token works at /oauth/token and gives a Location token.
        let refreshed =
            parse_token_response(send(&mut fake, &refresh_req(&cfg, &refresh_of(&minted))))
                .unwrap();
        assert_eq!(refreshed.user_type, Some(UserType::Location));
        assert_eq!(refreshed.location_id.as_deref(), Some("loc-2"));
        assert_eq!(refreshed.company_id.as_deref(), Some("company-1"));
        // The Company grant keeps its own refresh token.
        let mut live = fake.live_refresh_tokens();
        live.sort();
        let mut expected = vec![refresh_of(&company), refresh_of(&refreshed)];
        expected.sort();
        assert_eq!(live, expected);
    }
}

#[test]
fn location_token_refusals() {
    for (version, cfg) in configs() {
        let v3 = version == "v3";
        let mut fake = fake();
        let company = agency(&mut fake, &cfg);
        let bearer = access_of(&company);
        let mint = |fake: &mut FakeServer, bearer: &str, pairs: &[(&str, &str)]| {
            send(fake, &location_token_req(v3, bearer, pairs))
        };
        let ok_pairs = [("companyId", "company-1"), ("locationId", "loc-1")];

        // A location the install did not approve.
        let resp = mint(
            &mut fake,
            &bearer,
            &[("companyId", "company-1"), ("locationId", "loc-3")],
        );
        snap!(
            format!("location_token_unapproved_{version}"),
            render(&resp)
        );
        assert_eq!(resp.status(), 403);
        assert_eq!(
            body(&resp)["message"],
            "The token does not have access to this location."
        );

        // Another company.
        let resp = mint(
            &mut fake,
            &bearer,
            &[("companyId", "company-2"), ("locationId", "loc-1")],
        );
        assert_eq!(resp.status(), 403);

        // A Location token as the bearer.
        let minted = parse_token_response(mint(&mut fake, &bearer, &ok_pairs)).unwrap();
        let resp = mint(&mut fake, &access_of(&minted), &ok_pairs);
        snap!(
            format!("location_token_with_location_bearer_{version}"),
            render(&resp)
        );
        assert_eq!(resp.status(), 401);
        assert!(
            body(&resp)["message"]
                .as_str()
                .unwrap()
                .starts_with("This authClass type is not allowed")
        );

        // An unknown bearer, and none at all.
        let resp = mint(&mut fake, "at-000000000000-0000000000000000", &ok_pairs);
        assert_eq!(
            (resp.status().as_u16(), body(&resp)["message"].clone()),
            (401, json!("Invalid JWT"))
        );
        let mut no_bearer = location_token_req(v3, &bearer, &ok_pairs);
        no_bearer.headers_mut().remove("authorization");
        assert_eq!(send(&mut fake, &no_bearer).status(), 401);

        // No Version header.
        let mut no_version = location_token_req(v3, &bearer, &ok_pairs);
        no_version.headers_mut().remove("version");
        let resp = send(&mut fake, &no_version);
        assert_eq!(
            (resp.status().as_u16(), body(&resp)["message"].clone()),
            (400, json!("Missing parameter: version"))
        );

        // Missing fields fail validation.
        let resp = mint(&mut fake, &bearer, &[("companyId", "company-1")]);
        snap!(
            format!("location_token_missing_location_{version}"),
            render(&resp)
        );
        assert_eq!(resp.status(), 422);
        assert_eq!(
            body(&resp)["message"],
            json!(["locationId should not be empty"])
        );

        // A suspended location.
        fake.set_location_active("loc-1", false);
        let resp = mint(&mut fake, &bearer, &ok_pairs);
        assert_eq!(
            (resp.status().as_u16(), body(&resp)["message"].clone()),
            (400, json!("Location is not active"))
        );

        // A Company token without oauth.write.
        let mut narrow = Install::company("company-1", &["loc-1"]);
        narrow.scope = "oauth.readonly".to_owned();
        let narrow = install(&mut fake, &cfg, &narrow);
        let resp = mint(
            &mut fake,
            &access_of(&narrow),
            &[("companyId", "company-1"), ("locationId", "loc-2")],
        );
        assert_eq!(
            (resp.status().as_u16(), body(&resp)["message"].clone()),
            (401, json!("The token is not authorized for this scope."))
        );

        assert_eq!(fake.stats().location_tokens, 1);
    }
}

#[test]
fn access_tokens_expire() {
    let mut fake = fake();
    fake.set_access_lifetime(Duration::from_secs(60));
    let company = agency(&mut fake, &config());
    assert_eq!(company.expires_in, Some(60));
    let at = |secs: u64| t0() + Duration::from_secs(secs);
    let mint = |bearer: &TokenResponse| {
        location_token_req(
            false,
            &access_of(bearer),
            &[("companyId", "company-1"), ("locationId", "loc-1")],
        )
    };

    // A refresh gives a new access token; the old one stays valid until it expires.
    let fresh =
        parse_token_response(fake.handle(&refresh_req(&config(), &refresh_of(&company)), at(30)))
            .unwrap();
    assert_eq!(fake.handle(&mint(&company), at(30)).status(), 201);
    assert_eq!(fake.handle(&mint(&company), at(59)).status(), 201);
    let resp = fake.handle(&mint(&company), at(60));
    assert_eq!(
        (resp.status().as_u16(), body(&resp)["message"].clone()),
        (401, json!("Invalid JWT"))
    );
    assert_eq!(fake.handle(&mint(&fresh), at(89)).status(), 201);
    assert_eq!(fake.handle(&mint(&fresh), at(90)).status(), 401);
}
