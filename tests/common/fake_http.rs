//! Talking to the in-process fake server in the `fake_*` tests: requests
//! to each endpoint, answers rendered with their secrets redacted, and a
//! sample agency.

use std::fmt::Write;

use hoopai_oauth::fake::{FakeServer, Install};
use hoopai_oauth::{
    AuthorizationCode, Config, TokenRequest, TokenResponse, UserType, parse_token_response, redact,
    token_request,
};
use http::{Request, Response};
use serde_json::Value;

use super::{CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, config, config_v3, t0};

pub const BASE: &str = "https://services.leadconnectorhq.com";
pub const CONSENT: &str = "https://marketplace.gohighlevel.com/v2/oauth/chooselocation";

pub fn fake() -> FakeServer {
    FakeServer::new(CLIENT_ID, CLIENT_SECRET)
}

pub fn configs() -> [(&'static str, Config); 2] {
    [("v2", config()), ("v3", config_v3())]
}

pub fn app_id() -> &'static str {
    CLIENT_ID.split('-').next().unwrap()
}

/// Renders an answer (status, headers, body) with every token and code
/// replaced by its redaction, and checks that nothing token-shaped is left.
pub fn render(resp: &Response<Vec<u8>>) -> String {
    let mut secrets: Vec<String> = Vec::new();
    if let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(resp.body()) {
        for key in [
            "access_token",
            "accessToken",
            "refresh_token",
            "refreshToken",
        ] {
            if let Some(Value::String(s)) = body.get(key) {
                secrets.push(s.clone());
            }
        }
    }
    if let Some(location) = resp.headers().get(http::header::LOCATION) {
        let location = location.to_str().unwrap();
        let query = location.split_once('?').map_or("", |(_, q)| q);
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
        secrets.extend(
            pairs
                .into_iter()
                .filter(|(k, _)| k == "code")
                .map(|(_, v)| v),
        );
    }
    let mut out = String::new();
    writeln!(out, "HTTP {}", resp.status()).unwrap();
    for (name, value) in resp.headers() {
        writeln!(out, "{name}: {}", value.to_str().unwrap()).unwrap();
    }
    writeln!(out).unwrap();
    writeln!(out, "{}", String::from_utf8_lossy(resp.body())).unwrap();
    for s in secrets {
        out = out.replace(&s, &redact(&s));
    }
    assert_no_token(&out);
    out
}

/// Fails if `text` holds a full fake token (`at-`, `rt-` or `cd-`, 12 hex, `-`, 16 hex).
pub fn assert_no_token(text: &str) {
    let b = text.as_bytes();
    for i in 0..b.len() {
        let rest = &b[i..];
        if rest.len() >= 32
            && [&b"at-"[..], b"rt-", b"cd-"].contains(&&rest[..3])
            && rest[3..15].iter().all(u8::is_ascii_hexdigit)
            && rest[15] == b'-'
            && rest[16..32].iter().all(u8::is_ascii_hexdigit)
        {
            panic!("a full token is in {text}");
        }
    }
}

pub fn send(fake: &mut FakeServer, req: &Request<Vec<u8>>) -> Response<Vec<u8>> {
    fake.handle(req, t0())
}

pub fn exchange_req(cfg: &Config, code: &AuthorizationCode) -> Request<Vec<u8>> {
    token_request(cfg, &TokenRequest::authorization_code(code.clone())).unwrap()
}

pub fn refresh_req(cfg: &Config, refresh_token: &str) -> Request<Vec<u8>> {
    token_request(cfg, &TokenRequest::refresh_token(refresh_token)).unwrap()
}

pub fn refresh_of(t: &TokenResponse) -> String {
    t.refresh_token.as_ref().unwrap().secret().to_owned()
}

pub fn access_of(t: &TokenResponse) -> String {
    t.access_token.secret().to_owned()
}

/// Approves `install` and exchanges its code.
pub fn install(fake: &mut FakeServer, cfg: &Config, install: &Install) -> TokenResponse {
    let code = fake.approve(install);
    parse_token_response(send(fake, &exchange_req(cfg, &code))).unwrap()
}

pub fn form_req(version: Option<&str>, pairs: &[(&str, &str)]) -> Request<Vec<u8>> {
    let mut b = Request::post(format!("{BASE}/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(v) = version {
        b = b.header("version", v);
    }
    b.body(serde_urlencoded::to_string(pairs).unwrap().into_bytes())
        .unwrap()
}

pub fn json_req(body: &Value) -> Request<Vec<u8>> {
    Request::post(format!("{BASE}/oauth/token"))
        .header("content-type", "application/json")
        .header("version", "v3")
        .body(serde_json::to_vec(body).unwrap())
        .unwrap()
}

pub fn location_token_req(v3: bool, bearer: &str, pairs: &[(&str, &str)]) -> Request<Vec<u8>> {
    let path = if v3 {
        "location-token"
    } else {
        "locationToken"
    };
    Request::post(format!("{BASE}/oauth/{path}"))
        .header("authorization", format!("Bearer {bearer}"))
        .header("version", if v3 { "v3" } else { "2021-07-28" })
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(pairs).unwrap().into_bytes())
        .unwrap()
}

pub fn installed_req(v3: bool, bearer: &str, query: &[(&str, &str)]) -> Request<Vec<u8>> {
    let path = if v3 {
        "installed-locations"
    } else {
        "installedLocations"
    };
    let query = serde_urlencoded::to_string(query).unwrap();
    Request::get(format!("{BASE}/oauth/{path}?{query}"))
        .header("authorization", format!("Bearer {bearer}"))
        .header("version", if v3 { "v3" } else { "2021-07-28" })
        .body(Vec::new())
        .unwrap()
}

pub fn consent_req(query: &[(&str, &str)]) -> Request<Vec<u8>> {
    let query = serde_urlencoded::to_string(query).unwrap();
    Request::get(format!("{CONSENT}?{query}"))
        .body(Vec::new())
        .unwrap()
}

pub fn body(resp: &Response<Vec<u8>>) -> Value {
    serde_json::from_slice(resp.body()).unwrap()
}

/// The query of a redirect's `Location`.
pub fn redirect_query(resp: &Response<Vec<u8>>) -> Vec<(String, String)> {
    let location = resp.headers()[http::header::LOCATION].to_str().unwrap();
    let (base, query) = location.split_once('?').unwrap();
    assert_eq!(base, REDIRECT_URI);
    serde_urlencoded::from_str(query).unwrap()
}

/// An agency: five locations, the app approved on three by a Company install.
pub fn agency(fake: &mut FakeServer, cfg: &Config) -> TokenResponse {
    for (i, name) in [
        "Alpha Dental",
        "Beta Bakery",
        "Gamma Gym",
        "Delta Diner",
        "Epsilon Spa",
    ]
    .iter()
    .enumerate()
    {
        let id = format!("loc-{}", i + 1);
        fake.add_location("company-1", &id, name, &format!("{} Main St", i + 1));
    }
    let code = fake.approve(&Install::company("company-1", &["loc-1", "loc-2", "loc-4"]));
    let req = token_request(
        cfg,
        &TokenRequest::authorization_code(code).user_type(UserType::Company),
    )
    .unwrap();
    parse_token_response(send(fake, &req)).unwrap()
}
