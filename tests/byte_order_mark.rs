//! Answers that start with a UTF-8 byte-order mark (`EF BB BF`) read as the
//! JSON after it, on every endpoint, for success and error answers alike; and
//! the ugly neighbours: a mark alone, a mark before HTML, a doubled mark, a
//! mark that is not at the start.

mod common;

use common::{config, response, t0};
use hoopai_oauth::{
    AccessToken, Engine, EngineEvent, EngineSettings, Error, ErrorKind, Output, RefreshToken,
    SendOutcome, TokenResponse, TokenSet, Unreadable, parse_installed_locations,
    parse_location_token_response, parse_token_response,
};
use std::fmt::Write;

const BOM: &[u8] = b"\xEF\xBB\xBF";

fn marked(body: &str) -> Vec<u8> {
    [BOM, body.as_bytes()].concat()
}

/// One line per parse: what came out, with secrets redacted by the crate's
/// own `Debug`.
fn line<T: std::fmt::Debug>(out: &mut String, name: &str, result: &Result<T, Error>) {
    match result {
        Ok(v) => writeln!(out, "# {name}\nOk({v:#?})\n").unwrap(),
        Err(e) => writeln!(out, "# {name}\nErr({e:#?})\n{e}\n").unwrap(),
    }
}

/// The two answers seen in the field, exactly.
#[test]
fn the_two_answers_seen_in_the_field() {
    let ok = parse_token_response(response(
        200,
        &[],
        marked(r#"{"access_token":"A","refresh_token":"R1","expires_in":86399}"#),
    ))
    .expect("a marked 200 is a token answer");
    assert_eq!(ok.access_token.secret(), "A");
    assert_eq!(ok.refresh_token.as_ref().map(|r| r.secret()), Some("R1"));
    assert_eq!(ok.expires_in, Some(86_399));
    assert!(ok.extra.is_empty());

    let err = parse_token_response(response(
        400,
        &[],
        marked(r#"{"statusCode":400,"message":"Invalid grant: refresh token is invalid"}"#),
    ))
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidGrant);
    assert_eq!(err.messages(), ["Invalid grant: refresh token is invalid"]);
    assert_eq!(err.unreadable_reason(), None);

    let mut out = String::new();
    line(&mut out, "200 token answer", &Ok::<_, Error>(ok));
    line(&mut out, "400 invalid grant", &Err::<(), _>(err));
    snap!(out);
}

#[test]
fn the_token_endpoint() {
    let mut out = String::new();
    let cases: [(&str, u16, &str, Result<(), ErrorKind>); 5] = [
        (
            "200 v3 answer",
            200,
            r#"{"accessToken":"A","refreshToken":"R","expiresIn":"60","scope":"oauth.write"}"#,
            Ok(()),
        ),
        (
            "200 error body",
            200,
            r#"{"statusCode":400,"message":"Location is not active"}"#,
            Err(ErrorKind::LocationNotActive),
        ),
        (
            "401 invalid client",
            401,
            r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#,
            Err(ErrorKind::InvalidClient),
        ),
        (
            "422 message list",
            422,
            r#"{"statusCode":422,"message":["grant_type must be a string"],"error":"Unprocessable Entity"}"#,
            Err(ErrorKind::InvalidParameter),
        ),
        (
            "429 rate limited",
            429,
            r#"{"statusCode":429,"message":"Too Many Requests"}"#,
            Err(ErrorKind::RateLimited),
        ),
    ];
    for (name, status, body, expected) in cases {
        let result = parse_token_response(response(status, &[], marked(body)));
        assert_eq!(
            result.as_ref().map(|_| ()).map_err(Error::kind),
            expected,
            "{name}"
        );
        // The same body without the mark gives the same value.
        let plain = parse_token_response(response(status, &[], body));
        assert_eq!(
            format!("{result:?}"),
            format!("{plain:?}"),
            "{name}: differs from the unmarked body"
        );
        line(&mut out, name, &result);
    }
    snap!(out);
}

#[test]
fn the_location_token_endpoint() {
    let success = r#"{"access_token":"placeholder-location-access-token-00001","token_type":"Bearer","expires_in":86399,"scope":"contacts.readonly","locationId":"loc-1","planId":"plan-1","userId":"u1"}"#;
    let mut out = String::new();
    let cases: [(&str, u16, &str, Result<(), ErrorKind>); 4] = [
        ("201 location token", 201, success, Ok(())),
        (
            "403 no access to the location",
            403,
            r#"{"statusCode":403,"message":"The token does not have access to this location.","error":"Forbidden"}"#,
            Err(ErrorKind::Forbidden),
        ),
        (
            "401 bearer rejected",
            401,
            r#"{"statusCode":401,"message":"Invalid JWT","error":"Unauthorized"}"#,
            Err(ErrorKind::Unauthorized),
        ),
        (
            "200 error body",
            200,
            r#"{"statusCode":400,"message":"Location is not active"}"#,
            Err(ErrorKind::LocationNotActive),
        ),
    ];
    for (name, status, body, expected) in cases {
        let result = parse_location_token_response(response(status, &[], marked(body)));
        assert_eq!(
            result.as_ref().map(|_| ()).map_err(Error::kind),
            expected,
            "{name}"
        );
        let plain = parse_location_token_response(response(status, &[], body));
        assert_eq!(format!("{result:?}"), format!("{plain:?}"), "{name}");
        line(&mut out, name, &result);
    }
    let token = parse_location_token_response(response(201, &[], marked(success))).unwrap();
    assert_eq!(token.location_id.as_deref(), Some("loc-1"));
    snap!(out);
}

#[test]
fn the_installed_locations_endpoint() {
    let mut out = String::new();
    let cases: [(&str, u16, &str, Result<(), ErrorKind>); 4] = [
        (
            "200 v2 page",
            200,
            r#"{"locations":[{"_id":"loc-1","name":"One","address":"1 Main St","isInstalled":true}],"count":1,"installToFutureLocations":false}"#,
            Ok(()),
        ),
        (
            "200 v3 page",
            200,
            r#"{"items":[{"_id":"loc-1","name":"One"}],"pagination":{"totalRecords":1,"hasNextPage":false}}"#,
            Ok(()),
        ),
        (
            "400 AIP envelope",
            400,
            r#"{"error":{"code":"INVALID_ARGUMENT","message":"pageSize must be between 1 and 100"}}"#,
            Err(ErrorKind::InvalidParameter),
        ),
        (
            "401 bearer rejected",
            401,
            r#"{"statusCode":401,"message":"Invalid token: access token is invalid","error":"Unauthorized"}"#,
            Err(ErrorKind::Unauthorized),
        ),
    ];
    for (name, status, body, expected) in cases {
        let result = parse_installed_locations(response(status, &[], marked(body)));
        assert_eq!(
            result.as_ref().map(|_| ()).map_err(Error::kind),
            expected,
            "{name}"
        );
        let plain = parse_installed_locations(response(status, &[], body));
        assert_eq!(format!("{result:?}"), format!("{plain:?}"), "{name}");
        line(&mut out, name, &result);
    }
    snap!(out);
}

/// The mark alone, before HTML, doubled, or not at the start.
#[test]
fn the_ugly_neighbours() {
    let html = "<html><head><title>502 Bad Gateway</title></head></html>";
    let token = r#"{"access_token":"A","refresh_token":"R1","expires_in":86399}"#;
    let mut out = String::new();

    // A mark alone is an empty body.
    let err = parse_token_response(response(200, &[], BOM)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unreadable);
    assert_eq!(err.unreadable_reason(), Some(Unreadable::Empty));
    line(&mut out, "200, a mark alone", &Err::<(), _>(err));
    let err = parse_token_response(response(503, &[], BOM)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ServerError);
    assert_eq!(err.unreadable_reason(), Some(Unreadable::Empty));
    line(&mut out, "503, a mark alone", &Err::<(), _>(err));

    // A mark before HTML: not JSON; the status still classifies it, and the
    // excerpt holds no mark.
    let err = parse_token_response(response(502, &[], marked(html))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ServerError);
    assert_eq!(err.unreadable_reason(), Some(Unreadable::NotJson));
    assert_eq!(err.excerpt(), Some("502 Bad Gateway"), "{err:?}");
    line(&mut out, "502, a mark before HTML", &Err::<(), _>(err));
    let err = parse_token_response(response(200, &[], marked(html))).unwrap_err();
    assert_eq!(err.unreadable_reason(), Some(Unreadable::NotJson));
    line(&mut out, "200, a mark before HTML", &Err::<(), _>(err));

    // A doubled mark is stripped too: the JSON after it is intact.
    let doubled = [BOM, BOM, token.as_bytes()].concat();
    let ok = parse_token_response(response(200, &[], doubled)).unwrap();
    assert_eq!(ok.refresh_token.as_ref().map(|r| r.secret()), Some("R1"));
    line(&mut out, "200, a doubled mark", &Ok::<_, Error>(ok));
    let doubled = [
        BOM,
        BOM,
        br#"{"statusCode":400,"message":"Location is not active"}"#,
    ]
    .concat();
    let err = parse_installed_locations(response(400, &[], doubled)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LocationNotActive);

    // A mark then whitespace is JSON (whitespace is allowed before a value).
    let spaced = marked(&format!("\r\n  {token}"));
    assert!(parse_token_response(response(200, &[], spaced)).is_ok());

    // Marks after whitespace (say, a proxy's newline before a marked body)
    // are stripped as well.
    let late = [b"\r\n".as_slice(), BOM, b" ", BOM, token.as_bytes()].concat();
    let ok = parse_token_response(response(200, &[], late)).unwrap();
    assert_eq!(ok.refresh_token.as_ref().map(|r| r.secret()), Some("R1"));

    // A mark inside the JSON is a character of the text, never stripped: in
    // a string value it stays; between two tokens it is not JSON.
    let inside = [
        BOM,
        "{\"access_token\":\"\u{feff}A\",\"refresh_token\":\"R1\"}".as_bytes(),
    ]
    .concat();
    let ok = parse_token_response(response(200, &[], inside)).unwrap();
    assert_eq!(ok.access_token.secret(), "\u{feff}A");
    let between = [
        br#"{"access_token":"A","#.as_slice(),
        BOM,
        br#""refresh_token":"R1"}"#,
    ]
    .concat();
    let err = parse_token_response(response(200, &[], between)).unwrap_err();
    assert_eq!(err.unreadable_reason(), Some(Unreadable::NotJson));
    line(
        &mut out,
        "200, a mark between two JSON tokens",
        &Err::<(), _>(err),
    );

    // A mark before truncated JSON is truncated JSON.
    let err =
        parse_token_response(response(200, &[], marked(r#"{"access_token":"A"#))).unwrap_err();
    assert_eq!(err.unreadable_reason(), Some(Unreadable::Truncated));
    let err =
        parse_token_response(response(500, &[], marked(r#"{"statusCode":500,"mess"#))).unwrap_err();
    assert_eq!(err.unreadable_reason(), Some(Unreadable::Truncated));

    // A UTF-16 mark is not UTF-8's: not JSON.
    let err = parse_token_response(response(
        200,
        &[],
        [b"\xFF\xFE".as_slice(), token.as_bytes()].concat(),
    ))
    .unwrap_err();
    assert_eq!(err.unreadable_reason(), Some(Unreadable::NotJson));
    snap!(out);
}

/// A refreshed token in a marked answer is adopted; a marked "Invalid grant"
/// asks for re-authorization instead of backing off.
#[test]
fn the_engine_reads_marked_answers() {
    let mut engine = Engine::new(config(), EngineSettings::default());
    let mut first = TokenResponse::new(AccessToken::new("access-placeholder-0"));
    first.refresh_token = Some(RefreshToken::new("refresh-placeholder-0"));
    first.expires_in = Some(3600);
    engine
        .insert("loc-1", TokenSet::new(first, t0()), t0())
        .unwrap();
    common::drain_written(&mut engine, t0());

    let send = |engine: &mut Engine, at| {
        engine.handle_timeout(at).unwrap();
        loop {
            match engine.poll_output(at) {
                Some(Output::Send { id, .. }) => return id,
                Some(_) => {}
                None => panic!("no refresh was sent"),
            }
        }
    };
    let due = engine.poll_timeout().unwrap();
    let id = send(&mut engine, due);
    let body = marked(r#"{"access_token":"A","refresh_token":"R1","expires_in":86399}"#);
    engine
        .handle_send(id, SendOutcome::Response(response(200, &[], body)), due)
        .unwrap();
    let mut persisted = None;
    let mut events = Vec::new();
    for out in common::drain_written(&mut engine, due) {
        match out {
            Output::Persist { record, .. } => persisted = Some(record),
            Output::Event(e) => events.push(e),
            _ => {}
        }
    }
    let record = persisted.expect("the new tokens are persisted");
    assert_eq!(record.refresh_token().map(|r| r.secret()), Some("R1"));
    assert!(
        matches!(events[..], [EngineEvent::Refreshed { .. }]),
        "{events:?}"
    );

    let due = engine.poll_timeout().unwrap();
    let id = send(&mut engine, due);
    let body = marked(r#"{"statusCode":400,"message":"Invalid grant: refresh token is invalid"}"#);
    engine
        .handle_send(id, SendOutcome::Response(response(400, &[], body)), due)
        .unwrap();
    let mut events = Vec::new();
    for out in common::drain_written(&mut engine, due) {
        if let Output::Event(e) = out {
            events.push(e);
        }
    }
    assert!(
        matches!(events[..], [EngineEvent::ReauthorizationNeeded { .. }]),
        "{events:?}"
    );
    assert_eq!(engine.poll_timeout(), None, "nothing is retried");
}
