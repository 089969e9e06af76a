//! The binary over loopback HTTP: an agency install served end to end, the
//! API call's `401` and the refresh that cures it, scripted faults in order,
//! the rate limit, suspended locations, the log (fingerprints only) and the
//! bounds on what it reads.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Fake, body};
use hoopai_oauth::{
    ErrorKind, InstalledLocationsQuery, LocationTokenRequest, TokenRequest, UserType,
    installed_locations_request, location_token_request, parse_installed_locations,
    parse_location_token_response, parse_token_response, token_request,
};
use serde_json::{Value, json};

fn get_location(fake: &Fake, location_id: &str, bearer: &str) -> http::Response<Vec<u8>> {
    let request = http::Request::get(format!("{}/locations/{location_id}", fake.base))
        .header("version", "2021-07-28")
        .header("authorization", format!("Bearer {bearer}"))
        .body(Vec::new())
        .unwrap();
    fake.send(request).unwrap()
}

#[test]
fn an_agency_install_is_served_end_to_end() {
    let fake = Fake::start(&["--agency", "agency-1:2/3", "--quiet"]);
    let cfg = fake.config();
    let exchange = TokenRequest::authorization_code(fake.code(0)).user_type(UserType::Company);
    let company =
        parse_token_response(fake.send(token_request(&cfg, &exchange).unwrap()).unwrap()).unwrap();
    assert_eq!(company.user_type, Some(UserType::Company));
    assert_eq!(
        company.approved_locations.as_deref(),
        Some(&["agency-1-loc-1".to_owned(), "agency-1-loc-2".to_owned()][..])
    );

    let list =
        installed_locations_request(&cfg, &company, &InstalledLocationsQuery::new("agency-1"))
            .unwrap();
    let page = parse_installed_locations(fake.send(list).unwrap()).unwrap();
    let installed: Vec<(&str, bool)> = page
        .locations
        .iter()
        .map(|l| (l.id.as_str(), l.is_installed == Some(true)))
        .collect();
    assert_eq!(
        installed,
        [
            ("agency-1-loc-1", true),
            ("agency-1-loc-2", true),
            ("agency-1-loc-3", false)
        ]
    );

    let mint = location_token_request(
        &cfg,
        &company,
        &LocationTokenRequest::new("agency-1", "agency-1-loc-2"),
    )
    .unwrap();
    let minted = parse_location_token_response(fake.send(mint).unwrap()).unwrap();
    let bearer = minted.access_token.secret().to_owned();
    let ok = get_location(&fake, "agency-1-loc-2", &bearer);
    assert_eq!(body(&ok)["location"]["companyId"], "agency-1");
    // Not approved: no Location token for it.
    let refused = location_token_request(
        &cfg,
        &company,
        &LocationTokenRequest::new("agency-1", "agency-1-loc-3"),
    )
    .unwrap();
    let err = parse_location_token_response(fake.send(refused).unwrap()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden);

    // Expired ahead of time: 401 Invalid JWT; the refresh cures it.
    let (status, expired) = fake.admin("POST", "expire", Some(json!({ "accessToken": bearer })));
    assert_eq!((status, expired), (200, json!({ "expired": 1 })));
    let unauthorized = get_location(&fake, "agency-1-loc-2", &bearer);
    assert_eq!(unauthorized.status(), 401);
    assert_eq!(
        body(&unauthorized),
        json!({"statusCode": 401, "message": "Invalid JWT", "error": "Unauthorized"})
    );
    let refresh = TokenRequest::refresh_token(minted.refresh_token.as_ref().unwrap().secret());
    let refreshed =
        parse_token_response(fake.send(token_request(&cfg, &refresh).unwrap()).unwrap()).unwrap();
    assert_eq!(
        get_location(&fake, "agency-1-loc-2", refreshed.access_token.secret()).status(),
        200
    );
    // The spent refresh token is refused.
    let again = parse_token_response(fake.send(token_request(&cfg, &refresh).unwrap()).unwrap())
        .unwrap_err();
    assert_eq!(again.kind(), ErrorKind::InvalidGrant);

    let exited = fake.stop();
    assert_eq!(exited.code, Some(0));
    let stats = exited.stdout.lines().last().unwrap();
    for expected in [
        "stats requests=9 ",
        " code_exchanges=1 refreshes=1 spent_refresh_token_reuses=1 location_tokens=1 ",
        " installed_location_pages=1 api_calls=2 invalid_bearers=1 access_tokens_expired=1 ",
        " stopped_by=stdin_closed",
    ] {
        assert!(stats.contains(expected), "{expected:?} not in {stats}");
    }
}

#[test]
fn admin_installs_give_fresh_codes_and_the_consent_page_approves_one() {
    let fake = Fake::start(&["--quiet"]);
    let cfg = fake.config();
    let (status, made) = fake.admin(
        "POST",
        "installs",
        Some(json!({"type": "location", "companyId": "c-9", "locationId": "l-9", "scope": "locations.readonly"})),
    );
    assert_eq!(status, 200, "{made}");
    let code = made["code"].as_str().unwrap();
    let token = parse_token_response(
        fake.send(token_request(&cfg, &TokenRequest::authorization_code(code)).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(token.location_id.as_deref(), Some("l-9"));
    assert_eq!(
        token.scope.as_ref().map(|s| s
            .scopes()
            .map(|s| s.as_str().to_owned())
            .collect::<Vec<_>>()),
        Some(vec!["locations.readonly".to_owned()])
    );

    // The consent page approves the first seeded install (company-1/loc-1).
    let consent = http::Request::get(format!(
        "{}/v2/oauth/chooselocation?response_type=code&client_id={}&redirect_uri={}&state=s1",
        fake.base,
        fake.handoff["clientId"].as_str().unwrap(),
        "http%3A%2F%2F127.0.0.1%3A9%2Fcallback"
    ))
    .body(Vec::new())
    .unwrap();
    let redirect = fake.send(consent).unwrap();
    assert_eq!(redirect.status(), 302);
    let location = redirect.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("http://127.0.0.1:9/callback?code=cd-"),
        "{location}"
    );
    assert!(location.ends_with("&state=s1"), "{location}");

    let (status, err) = fake.admin(
        "POST",
        "installs",
        Some(json!({"type": "agency", "companyId": "a", "approved": 3, "locations": 2})),
    );
    assert_eq!(
        (status, err),
        (400, json!({"error": "a: 3 approved of 2 locations"}))
    );
}

#[test]
fn scripted_faults_answer_in_order_and_spend_nothing() {
    let fake = Fake::start(&["--quiet"]);
    let cfg = fake.config();
    let token = parse_token_response(
        fake.send(token_request(&cfg, &TokenRequest::authorization_code(fake.code(0))).unwrap())
            .unwrap(),
    )
    .unwrap();
    let refresh = TokenRequest::refresh_token(token.refresh_token.as_ref().unwrap().secret());
    for fault in [
        json!({"fault": "rate-limited", "retryAfterSecs": 2}),
        json!({"fault": "server-error"}),
        json!({"fault": "bad-gateway-html"}),
        json!({"fault": "location-not-active"}),
        json!({"fault": "unauthorized"}),
        json!({"fault": "drop-connection", "times": 2}),
    ] {
        let (status, queued) = fake.admin("POST", "faults", Some(fault));
        assert_eq!(status, 200, "{queued}");
    }
    let mut seen = Vec::new();
    for _ in 0..7 {
        match fake.send(token_request(&cfg, &refresh).unwrap()) {
            Ok(response) => {
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned());
                let kind = parse_token_response(response).unwrap_err().kind();
                seen.push(format!("{kind:?} retry-after={retry_after:?}"));
            }
            Err(e) => seen.push(format!(
                "transport error: {}",
                e.to_string().split(':').next().unwrap()
            )),
        }
    }
    snap!("faults_in_order", seen.join("\n"));
    // Nothing was spent: the same refresh token works now.
    parse_token_response(fake.send(token_request(&cfg, &refresh).unwrap()).unwrap()).unwrap();
    let (_, stats) = fake.admin("GET", "stats", None);
    assert_eq!(stats["fake"]["faultsServed"], 5);
    assert_eq!(stats["server"]["connectionsDropped"], 2);

    // A fault queued and cleared is never served.
    fake.admin(
        "POST",
        "faults",
        Some(json!({"fault": "server-error", "times": 3})),
    );
    assert_eq!(fake.admin("GET", "faults", None).1["queued"][0]["times"], 3);
    assert_eq!(
        fake.admin("DELETE", "faults", None).1,
        json!({"cleared": 1})
    );
    let (status, err) = fake.admin("POST", "faults", Some(json!({"fault": "teapot"})));
    assert_eq!(status, 400);
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("unknown variant `teapot`"),
        "{err}"
    );
}

#[test]
fn the_rate_limit_and_suspended_locations() {
    let fake = Fake::start(&["--quiet", "--location", "c-1/l-1"]);
    let cfg = fake.config();
    let token = parse_token_response(
        fake.send(token_request(&cfg, &TokenRequest::authorization_code(fake.code(0))).unwrap())
            .unwrap(),
    )
    .unwrap();
    let refresh_token = token.refresh_token.as_ref().unwrap().secret().to_owned();

    fake.admin(
        "POST",
        "location-status",
        Some(json!({"locationId": "l-1", "active": false})),
    );
    let refresh = TokenRequest::refresh_token(refresh_token.as_str());
    let err = parse_token_response(fake.send(token_request(&cfg, &refresh).unwrap()).unwrap())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LocationNotActive);
    fake.admin(
        "POST",
        "location-status",
        Some(json!({"locationId": "l-1", "active": true})),
    );

    let (status, _) = fake.admin(
        "POST",
        "rate-limit",
        Some(json!({"max": 2, "intervalMs": 60000, "retryAfter": true})),
    );
    assert_eq!(status, 200);
    let statuses: Vec<(u16, Option<String>)> = (0..3)
        .map(|_| {
            let r = get_location(&fake, "l-1", token.access_token.secret());
            (
                r.status().as_u16(),
                r.headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned()),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [(200, None), (200, None), (429, Some("60".to_owned()))]
    );
    fake.admin("DELETE", "rate-limit", None);
    // The same refresh token, kept through the suspension, still works.
    parse_token_response(fake.send(token_request(&cfg, &refresh).unwrap()).unwrap()).unwrap();
}

#[test]
fn the_log_holds_fingerprints_never_tokens() {
    let fake = Fake::start(&[]);
    let cfg = fake.config();
    let code = fake.code(0);
    let first = parse_token_response(
        fake.send(token_request(&cfg, &TokenRequest::authorization_code(code.clone())).unwrap())
            .unwrap(),
    )
    .unwrap();
    let rt = first.refresh_token.as_ref().unwrap().secret().to_owned();
    let second = parse_token_response(
        fake.send(token_request(&cfg, &TokenRequest::refresh_token(rt.as_str())).unwrap())
            .unwrap(),
    )
    .unwrap();
    get_location(&fake, "loc-1", first.access_token.secret());
    let secrets = [
        code,
        rt,
        first.access_token.secret().to_owned(),
        second.access_token.secret().to_owned(),
        second.refresh_token.as_ref().unwrap().secret().to_owned(),
        fake.handoff["clientSecret"].as_str().unwrap().to_owned(),
    ];
    let (_, log) = fake.admin("GET", "log?since=0", None);
    let mut entries = log["entries"].clone();
    for e in entries.as_array_mut().unwrap() {
        e["atMs"] = json!("(time)");
    }
    let text = serde_json::to_string_pretty(&entries).unwrap();
    snap!("log_entries", text);
    let (_, page) = fake.admin("GET", "log?since=2&limit=5", None);
    assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    assert_eq!(page["next"], 3);
    let exited = fake.stop();
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()));
        assert!(
            !exited.stderr.contains(secret.as_str()),
            "stderr holds a secret: {}",
            exited.stderr
        );
        assert!(!exited.stdout.contains(secret.as_str()));
    }
    assert_eq!(
        exited.stderr.lines().filter(|l| l.starts_with('#')).count(),
        3,
        "{}",
        exited.stderr
    );
}

#[test]
fn what_it_reads_is_bounded_and_it_keeps_serving() {
    let fake = Fake::start(&["--quiet", "--max-body-bytes", "2048"]);
    let addr = fake.base.trim_start_matches("http://").to_owned();
    let big = http::Request::post(format!("{}/oauth/token", fake.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 4096])
        .unwrap();
    let answer = fake.send(big).unwrap();
    assert_eq!(answer.status(), 413);
    assert_eq!(
        body(&answer),
        json!({"statusCode": 413, "message": "request entity too large", "error": "Payload Too Large"})
    );
    let (status, _) = fake.admin("POST", "faults", Some(Value::String("x".repeat(4096))));
    assert_eq!(status, 413);

    // A request head far over 64 KiB: refused (431), or the connection closed.
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "GET /locations/x HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "b".repeat(200 * 1024)
    );
    let _ = stream.write_all(head.as_bytes());
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 431"),
        "{reply}"
    );

    // Still serving.
    let (status, stats) = fake.admin("GET", "stats", None);
    assert_eq!(status, 200);
    assert_eq!(stats["server"]["bodiesTooLarge"], 2);
    let (status, _) = fake.admin("GET", "handoff", None);
    assert_eq!(status, 200);
}

/// A request that arrived first but was answered after another is not
/// missed by a reader polling the log with `since=next`.
#[test]
fn a_log_reader_polling_with_next_misses_no_request_answered_late() {
    let fake = Fake::start(&["--quiet"]);
    let addr = fake.base.trim_start_matches("http://").to_owned();
    // Slow: its headers now, its body later.
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let body = b"grant_type=refresh_token&refresh_token=rt-unknown";
    write!(
        slow,
        "POST /oauth/token HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    slow.flush().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // Fast: answered while the slow one waits for its body.
    assert_eq!(get_location(&fake, "loc-1", "no-such-token").status(), 401);
    let (_, first) = fake.admin("GET", "log", None);
    let next = first["next"].as_u64().unwrap();
    assert_eq!(first["entries"].as_array().unwrap().len(), 1);
    slow.write_all(body).unwrap();
    let mut answer = [0u8; 64];
    let n = slow.read(&mut answer).unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 "));
    let (_, second) = fake.admin("GET", &format!("log?since={next}"), None);
    let entries = second["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{second}");
    assert_eq!(entries[0]["path"], "/oauth/token");
    assert!(entries[0]["seq"].as_u64().unwrap() > next);
}
