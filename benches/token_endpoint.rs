//! Building a refresh request and parsing the HoopAI page's token answer,
//! side by side with a floor: the same form built with bare
//! `serde_urlencoded` and the same body parsed by `serde_json` into a plain struct.
//!
//! Run: `cargo bench --bench token_endpoint`.

use std::hint::black_box;
use std::sync::OnceLock;

use hoopai_oauth::{Config, TokenRequest, parse_token_response, token_request};

fn main() {
    divan::main();
}

/// The example answer on the HoopAI page, as the page prints it.
fn body() -> &'static [u8] {
    static BODY: OnceLock<Vec<u8>> = OnceLock::new();
    BODY.get_or_init(|| {
        let page = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/spec/hoopai-get-access-token.txt"
        ))
        .expect("the HoopAI page in tests/data/spec");
        let start = page.find("\n{").expect("example start") + 1;
        let end = start + page[start..].find("\n}").expect("example end") + 2;
        page.as_bytes()[start..end].to_vec()
    })
}

const CLIENT_ID: &str = "6578278e879ad2646715ba9c-lq3w8xd2";
const CLIENT_SECRET: &str = "placeholder-client-secret-0123456789";
const REFRESH: &str = "xy34dc0ae1234a4858f9ff06d4f66ba";

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| Config::builder(CLIENT_ID, CLIENT_SECRET).build().unwrap())
}

/// The crate: a complete `http::Request` for the refresh, then the answer parsed
/// into a `TokenResponse` with every field.
#[divan::bench]
fn crate_build_and_parse() {
    let req = token_request(config(), &TokenRequest::refresh_token(REFRESH)).unwrap();
    black_box(&req);
    let resp = http::Response::new(black_box(body()));
    let token = parse_token_response(resp).unwrap();
    black_box(&token);
}

/// The crate's request builder alone.
#[divan::bench]
fn crate_build_only() {
    black_box(token_request(config(), &TokenRequest::refresh_token(REFRESH)).unwrap());
}

/// The crate's parser alone.
#[divan::bench]
fn crate_parse_only() {
    let resp = http::Response::new(black_box(body()));
    black_box(parse_token_response(resp).unwrap());
}

#[allow(dead_code)]
#[derive(serde::Deserialize)]
struct Plain {
    #[serde(rename = "userId")]
    user_id: String,
    access_token: String,
    token_type: String,
    expires_in: u64,
    refresh_token: String,
    scope: String,
    #[serde(rename = "userType")]
    user_type: String,
    #[serde(rename = "locationId")]
    location_id: String,
    #[serde(rename = "companyId")]
    company_id: String,
    #[serde(rename = "approvedLocations")]
    approved_locations: Vec<String>,
    #[serde(rename = "planId")]
    plan_id: String,
    #[serde(rename = "isBulkInstallation")]
    is_bulk_installation: serde_json::Value,
}

/// The floor: the form with bare `serde_urlencoded`, the body with `serde_json`
/// into a plain struct.
#[divan::bench]
fn floor_build_and_parse() {
    let form = serde_urlencoded::to_string([
        ("client_id", black_box(CLIENT_ID)),
        ("client_secret", black_box(CLIENT_SECRET)),
        ("grant_type", "refresh_token"),
        ("refresh_token", black_box(REFRESH)),
    ])
    .unwrap();
    black_box(&form);
    let plain: Plain = serde_json::from_slice(black_box(body())).unwrap();
    black_box(&plain);
}

/// The floor's form alone.
#[divan::bench]
fn floor_build_only() {
    black_box(
        serde_urlencoded::to_string([
            ("client_id", black_box(CLIENT_ID)),
            ("client_secret", black_box(CLIENT_SECRET)),
            ("grant_type", "refresh_token"),
            ("refresh_token", black_box(REFRESH)),
        ])
        .unwrap(),
    );
}

/// The floor's parse alone.
#[divan::bench]
fn floor_parse_only() {
    let plain: Plain = serde_json::from_slice(black_box(body())).unwrap();
    black_box(plain);
}
