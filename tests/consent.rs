//! The consent flow both ways: the URL that sends the user to consent, and the
//! redirect that comes back.

mod common;

use std::fmt::Write;

use common::{CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, config};
use hoopai_oauth::{
    Config, ConsentRequest, ConsentState, Error, ErrorClass, ErrorKind, MAX_CALLBACK_BYTES, Scope,
    WHITE_LABEL_CONSENT_URL, consent_url, parse_callback,
};
use proptest::prelude::*;

/// 32 fixed "random" bytes: test data, not randomness.
const SEED: [u8; 32] = [
    0x3e, 0x91, 0x07, 0xfa, 0x5c, 0x22, 0xd8, 0x6b, 0x10, 0xee, 0x4f, 0x83, 0x29, 0xb6, 0x71, 0x0d,
    0xc4, 0x58, 0x9a, 0x3f, 0xe2, 0x67, 0x1b, 0xd0, 0x85, 0x4c, 0xf9, 0x36, 0xab, 0x02, 0x7e, 0xc1,
];

fn state() -> ConsentState {
    ConsentState::from_random_bytes(&SEED).unwrap()
}

/// The URL and its decoded parameters, for a snapshot.
fn render(url: &str) -> String {
    let (base, query) = url.split_once('?').expect("a query");
    let mut out = format!("{url}\n\n# base\n{base}\n\n# decoded query\n");
    for (k, v) in decode(query) {
        writeln!(out, "{k} = {v:?}").unwrap();
    }
    out
}

fn decode(query: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str(query).unwrap()
}

fn params(url: &str) -> Vec<(String, String)> {
    decode(url.split_once('?').unwrap().1)
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

// ---- consent URL -----------------------------------------------------------------

#[test]
fn minimal_url() {
    let url = consent_url(&config(), &ConsentRequest::new([Scope::CONTACTS_READONLY])).unwrap();
    assert!(url.starts_with("https://marketplace.gohighlevel.com/v2/oauth/chooselocation?"));
    assert_eq!(
        params(&url),
        owned(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "contacts.readonly"),
        ])
    );
    snap!(render(&url));
}

#[test]
fn every_option() {
    let scopes = [
        Scope::OAUTH_READONLY,
        Scope::OAUTH_WRITE,
        Scope::CONVERSATIONS_MESSAGE_WRITE,
        Scope::LOCATIONS_CUSTOM_VALUES_READONLY,
        Scope::OAUTH_WRITE, // a repeat is sent once
    ];
    let url = consent_url(
        &config(),
        &ConsentRequest::new(scopes)
            .state(state())
            .login_window_self()
            .version_id_from_client_id(),
    )
    .unwrap();
    let app_id = CLIENT_ID.split('-').next().unwrap();
    assert_eq!(
        params(&url),
        owned(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            (
                "scope",
                "oauth.readonly oauth.write conversations/message.write locations/customValues.readonly"
            ),
            ("state", state().as_str()),
            ("loginWindowOpenMode", "self"),
            ("version_id", app_id),
        ])
    );
    // Spaces go as `+`, slashes as `%2F`, like URLSearchParams.
    assert!(url.contains("scope=oauth.readonly+oauth.write+conversations%2Fmessage.write+"));
    snap!(render(&url));
}

#[test]
fn white_label_host_explicit_version_and_other_redirect() {
    let config = Config::builder(CLIENT_ID, CLIENT_SECRET)
        .consent_url(WHITE_LABEL_CONSENT_URL)
        .build()
        .unwrap();
    let req = ConsentRequest::new([Scope::LOCATIONS_READONLY])
        .scope(Scope::custom("beta/thing.readonly").unwrap())
        .redirect_uri("https://other.example/cb?tenant=a+b")
        .version_id("65f0c0ffee0000000000abcd");
    let url = consent_url(&config, &req).unwrap();
    assert!(url.starts_with("https://marketplace.leadconnectorhq.com/v2/oauth/chooselocation?"));
    let p = params(&url);
    assert_eq!(p[2].1, "https://other.example/cb?tenant=a+b");
    assert_eq!(p[3].1, "locations.readonly beta/thing.readonly");
    assert_eq!(
        p[4],
        ("version_id".into(), "65f0c0ffee0000000000abcd".into())
    );
    snap!(render(&url));
}

/// The consent page is the same whatever API version the config speaks.
#[test]
fn v3_config_builds_the_same_url() {
    let req = ConsentRequest::new([Scope::OAUTH_WRITE]).state(state());
    let v2 = consent_url(&config(), &req).unwrap();
    let v3 = consent_url(&common::config_v3(), &req).unwrap();
    assert_eq!(v2, v3);
    snap!(render(&v3));
}

#[test]
fn every_official_scope_in_one_url() {
    let url = consent_url(&config(), &ConsentRequest::new(Scope::ALL.iter().cloned())).unwrap();
    let scope = params(&url).remove(3);
    assert_eq!(scope.0, "scope");
    let expected: Vec<&str> = Scope::ALL.iter().map(Scope::as_str).collect();
    assert_eq!(scope.1, expected.join(" "));
}

#[test]
fn bad_consent_requests_build_nothing() {
    let no_redirect = Config::builder(CLIENT_ID, CLIENT_SECRET).build().unwrap();
    let cases: Vec<(&str, Result<String, Error>)> = vec![
        ("no scope", consent_url(&config(), &ConsentRequest::new([]))),
        (
            "no redirect URI anywhere",
            consent_url(&no_redirect, &ConsentRequest::new([Scope::OAUTH_WRITE])),
        ),
        (
            "relative redirect URI",
            consent_url(
                &config(),
                &ConsentRequest::new([Scope::OAUTH_WRITE]).redirect_uri("/oauth/callback"),
            ),
        ),
        (
            "empty version_id",
            consent_url(
                &config(),
                &ConsentRequest::new([Scope::OAUTH_WRITE]).version_id(" "),
            ),
        ),
    ];
    let mut out = String::new();
    for (name, result) in cases {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name}");
        writeln!(out, "{name}: {err}").unwrap();
    }
    snap!(out);
}

// ---- state -----------------------------------------------------------------------

#[test]
fn state_from_random_bytes() {
    let s = state();
    assert_eq!(s.as_str().len(), 43); // 32 bytes, unpadded base64url
    assert_eq!(decode_base64url(s.as_str()), SEED);
    assert!(s.matches(s.as_str()));
    assert!(!s.matches(&s.as_str()[1..]));
    // Debug never shows it in full.
    let debug = format!("{s:?}");
    assert!(!debug.contains(s.as_str()), "{debug}");
    snap!(format!("{}\n{debug}", s.as_str()));

    for n in [0, 15, 257] {
        let err = ConsentState::from_random_bytes(&vec![1; n]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{n} bytes");
    }
    assert!(ConsentState::from_random_bytes(&[1; 16]).is_ok());
    assert!(ConsentState::from_random_bytes(&[1; 256]).is_ok());
    for bad in [
        String::new(),
        "a\u{7}b".into(),
        "x".repeat(ConsentState::MAX_LEN + 1),
    ] {
        assert_eq!(
            ConsentState::new(bad).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
    assert_eq!(ConsentState::new(s.as_str()).unwrap(), s);
}

/// Decodes unpadded base64url, to check the encoding from the other side.
fn decode_base64url(s: &str) -> Vec<u8> {
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let sextets: Vec<u32> = s
        .chars()
        .map(|c| ALPHABET.find(c).expect("base64url character") as u32)
        .collect();
    let mut out = Vec::new();
    for chunk in sextets.chunks(4) {
        let mut n = 0u32;
        for (i, v) in chunk.iter().enumerate() {
            n |= v << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

proptest! {
    #[test]
    fn states_encode_any_bytes_url_safely(bytes in proptest::collection::vec(any::<u8>(), 16..=256)) {
        let s = ConsentState::from_random_bytes(&bytes).unwrap();
        prop_assert!(s.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        prop_assert_eq!(s.as_str().len(), (bytes.len() * 4).div_ceil(3));
        prop_assert_eq!(decode_base64url(s.as_str()), bytes);
    }
}

// ---- callback --------------------------------------------------------------------

const CODE: &str = "placeholder-authorization-code-0001";

#[test]
fn the_code_comes_back_in_every_form() {
    let st = state();
    let s = st.as_str();
    let forms = [
        format!("https://myapp.com/oauth/callback/hoopai?code={CODE}&state={s}"),
        format!("https://myapp.com/oauth/callback/hoopai?state={s}&code={CODE}#_=_"),
        format!("http://localhost:8080/cb?code={CODE}&state={s}&extra=1"),
        format!("/oauth/callback/hoopai?code={CODE}&state={s}"),
        format!("?code={CODE}&state={s}"),
        format!("code={CODE}&state={s}"),
        format!("  code={CODE}&state={s}\n"),
    ];
    for form in &forms {
        let code = parse_callback(form, Some(&st)).unwrap_or_else(|e| panic!("{form}: {e}"));
        assert_eq!(code.secret(), CODE, "{form}");
    }
    // Without a state sent, none is needed, and one that comes back is ignored.
    assert_eq!(
        parse_callback(&format!("code={CODE}"), None)
            .unwrap()
            .secret(),
        CODE
    );
    assert_eq!(parse_callback(&forms[0], None).unwrap().secret(), CODE);
    // Percent- and plus-encoding are decoded.
    assert_eq!(
        parse_callback("code=a%2Fb+c%3D", None).unwrap().secret(),
        "a/b c="
    );
    // The code is never printed in full.
    let code = parse_callback(&forms[0], Some(&st)).unwrap();
    assert!(!format!("{code:?} {code}").contains(CODE));
}

/// A redirect the consent URL could have produced, state included, parses.
#[test]
fn round_trip_with_the_built_url() {
    let st = state();
    let url = consent_url(
        &config(),
        &ConsentRequest::new([Scope::OAUTH_WRITE]).state(st.clone()),
    )
    .unwrap();
    let p = params(&url);
    let redirect = format!(
        "{}?{}",
        p[2].1,
        serde_urlencoded::to_string([("code", CODE), ("state", p[4].1.as_str())]).unwrap()
    );
    assert_eq!(parse_callback(&redirect, Some(&st)).unwrap().secret(), CODE);
}

#[test]
fn every_bad_redirect_has_its_error() {
    let st = state();
    let s = st.as_str();
    let other = ConsentState::from_random_bytes(&[9; 32]).unwrap();
    let o = other.as_str();
    let long_description = format!(
        "The user denied access.\n\u{1b}[31m token=eyJhbGciOiJIUzI1NiJ9.{} end",
        "x".repeat(60)
    );
    let denied_with_token = serde_urlencoded::to_string([
        ("error", "access_denied"),
        ("error_description", long_description.as_str()),
        ("state", s),
    ])
    .unwrap();
    let cases: Vec<(&str, String, Option<&ConsentState>, ErrorKind)> = vec![
        (
            "server error with state",
            format!(
                "https://myapp.com/cb?error=access_denied&error_description=The+user+denied+access&state={s}"
            ),
            Some(&st),
            ErrorKind::ConsentDenied,
        ),
        (
            "server error without state",
            "https://myapp.com/cb?error=invalid_request&error_description=Invalid%20client_id"
                .into(),
            Some(&st),
            ErrorKind::ConsentDenied,
        ),
        (
            "server error, nothing sent",
            "?error=server_error".into(),
            None,
            ErrorKind::ConsentDenied,
        ),
        (
            "server error with a token-like description and control characters",
            denied_with_token,
            Some(&st),
            ErrorKind::ConsentDenied,
        ),
        (
            "server error with another state",
            format!("?error=access_denied&state={o}"),
            Some(&st),
            ErrorKind::StateMismatch,
        ),
        (
            "missing code",
            format!("https://myapp.com/cb?state={s}"),
            Some(&st),
            ErrorKind::MalformedCallback,
        ),
        (
            "empty code",
            format!("https://myapp.com/cb?code=&state={s}"),
            Some(&st),
            ErrorKind::MalformedCallback,
        ),
        (
            "blank code",
            "code=+++".into(),
            None,
            ErrorKind::MalformedCallback,
        ),
        (
            "no query at all",
            "https://myapp.com/cb".into(),
            None,
            ErrorKind::MalformedCallback,
        ),
        (
            "state mismatch",
            format!("https://myapp.com/cb?code={CODE}&state={o}"),
            Some(&st),
            ErrorKind::StateMismatch,
        ),
        (
            "state one character short",
            format!("?code={CODE}&state={}", &s[..s.len() - 1]),
            Some(&st),
            ErrorKind::StateMismatch,
        ),
        (
            "state missing although sent",
            format!("https://myapp.com/cb?code={CODE}"),
            Some(&st),
            ErrorKind::StateMismatch,
        ),
        (
            "empty state although sent",
            format!("?code={CODE}&state="),
            Some(&st),
            ErrorKind::StateMismatch,
        ),
        (
            "duplicated code",
            format!("?code={CODE}&code=other&state={s}"),
            Some(&st),
            ErrorKind::MalformedCallback,
        ),
        (
            "duplicated state",
            format!("?code={CODE}&state={s}&state={s}"),
            Some(&st),
            ErrorKind::MalformedCallback,
        ),
        (
            "duplicated error",
            "?error=a&error=b".into(),
            None,
            ErrorKind::MalformedCallback,
        ),
        (
            "duplicated other parameter",
            format!("?code={CODE}&x=1&x=2"),
            None,
            ErrorKind::MalformedCallback,
        ),
        (
            "space in the URL",
            format!("https://my app.com/cb?code={CODE}"),
            None,
            ErrorKind::MalformedCallback,
        ),
        (
            "URL without host",
            format!("https:///cb?code={CODE}"),
            None,
            ErrorKind::MalformedCallback,
        ),
        (
            "broken IPv6 host",
            format!("http://[::1/cb?code={CODE}"),
            None,
            ErrorKind::MalformedCallback,
        ),
        (
            "whitespace inside a bare query",
            format!("code={CODE} state=x"),
            None,
            ErrorKind::MalformedCallback,
        ),
        ("empty", "   ".into(), None, ErrorKind::MalformedCallback),
        (
            "too long",
            format!("?code={CODE}&pad={}", "a".repeat(MAX_CALLBACK_BYTES)),
            None,
            ErrorKind::MalformedCallback,
        ),
    ];
    let mut out = String::new();
    for (name, input, expected, kind) in cases {
        let err = parse_callback(&input, expected).unwrap_err();
        assert_eq!(err.kind(), kind, "{name}: {err}");
        assert_eq!(
            err.class(),
            if kind == ErrorKind::ConsentDenied {
                ErrorClass::Server
            } else {
                ErrorClass::Caller
            }
        );
        let shown = format!("{err:?}\n{err}");
        for secret in [CODE, s, o] {
            assert!(!shown.contains(secret), "{name} shows a secret: {shown}");
        }
        assert!(!shown.contains("eyJhbGciOiJIUzI1NiJ9.xxxx"), "{shown}");
        writeln!(out, "## {name}\n{err:#?}\n{err}\n").unwrap();
    }
    snap!(out);
}

#[test]
fn consent_denied_keeps_the_server_words() {
    let err = parse_callback(
        "https://myapp.com/cb?error=access_denied&error_description=The+user+denied+access",
        None,
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConsentDenied);
    assert_eq!(err.code(), Some("access_denied"));
    assert_eq!(err.messages(), ["The user denied access"]);
    assert_eq!(err.status(), None);
}

proptest! {
    #[test]
    fn any_input_parses_or_errs_without_panicking(input in ".{0,200}") {
        let st = ConsentState::from_random_bytes(&SEED).unwrap();
        let _ = parse_callback(&input, Some(&st));
        let _ = parse_callback(&input, None);
    }

    #[test]
    fn any_query_like_input_is_handled(
        pairs in proptest::collection::vec(("[a-z_]{1,8}", "[ -~]{0,20}"), 0..6),
        prefix in prop_oneof![Just(""), Just("?"), Just("https://a.example/cb?"), Just("/cb?")],
    ) {
        let input = format!("{prefix}{}", serde_urlencoded::to_string(&pairs).unwrap());
        match parse_callback(&input, None) {
            Ok(code) => {
                let found = pairs.iter().find(|(k, _)| k == "code").map(|(_, v)| v.as_str());
                prop_assert_eq!(Some(code.secret()), found);
            }
            Err(e) => prop_assert!(matches!(
                e.kind(),
                ErrorKind::MalformedCallback | ErrorKind::ConsentDenied
            )),
        }
    }
}

#[test]
fn invalid_utf8_in_a_percent_encoded_code_is_malformed() {
    for redirect in [
        "?code=%FF%FE",
        "?code=ok&x=%C3",
        "https://myapp.com/cb?code=a%80b",
    ] {
        let err = parse_callback(redirect, None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MalformedCallback, "{redirect}");
    }
    // Valid multi-byte UTF-8 is fine.
    assert_eq!(
        parse_callback("?code=%C3%A9t%C3%A9", None)
            .unwrap()
            .secret(),
        "été"
    );
}
