//! Helpers shared by the integration tests: snapshot settings and renderers.
#![allow(dead_code)]

use std::fmt::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hoopai_oauth::Config;

pub mod chaos;
pub mod fake_http;
pub mod sim;

/// The client id used in test data.
pub const CLIENT_ID: &str = "6578278e879ad2646715ba9c-lq3w8xd2";
/// A fixed placeholder client secret used in test data.
pub const CLIENT_SECRET: &str = "placeholder-client-secret";
/// The redirect URI used in test data.
pub const REDIRECT_URI: &str = "https://myapp.com/oauth/callback/hoopai";

/// Insta settings that put every snapshot in the top-level `snapshots/` folder.
pub fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots"));
    s.set_prepend_module_to_snapshot(true);
    s.set_omit_expression(true);
    s
}

/// `insta::assert_snapshot!` with [`settings`].
#[macro_export]
macro_rules! snap {
    ($($t:tt)*) => {
        $crate::common::settings().bind(|| insta::assert_snapshot!($($t)*))
    };
}

/// A v2 config for tests.
pub fn config() -> Config {
    Config::builder(CLIENT_ID, CLIENT_SECRET)
        .redirect_uri(REDIRECT_URI)
        .build()
        .expect("test config")
}

/// A v3 config for tests.
pub fn config_v3() -> Config {
    Config::builder(CLIENT_ID, CLIENT_SECRET)
        .redirect_uri(REDIRECT_URI)
        .api_version(hoopai_oauth::ApiVersion::V3)
        .build()
        .expect("test config")
}

/// A fixed instant: 2026-01-01T00:00:00Z.
pub fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

/// A file of the official documents copied into the repository
/// (`tests/data/spec/`, see the README there).
pub fn spec_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/spec")
        .join(file)
}

/// Reads a spec file as JSON.
pub fn spec_json(file: &str) -> serde_json::Value {
    let text =
        std::fs::read_to_string(spec_path(file)).unwrap_or_else(|e| panic!("reading {file}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {file}: {e}"))
}

/// Renders a built request as text: method, URI, headers in order, body, and
/// the decoded form pairs when the body is a form.
pub fn render_request(req: &http::Request<Vec<u8>>) -> String {
    let mut out = String::new();
    writeln!(out, "{} {}", req.method(), req.uri()).unwrap();
    for (name, value) in req.headers() {
        writeln!(out, "{}: {}", name, value.to_str().unwrap_or("<binary>")).unwrap();
    }
    let body = String::from_utf8_lossy(req.body());
    writeln!(out).unwrap();
    writeln!(out, "{body}").unwrap();
    let is_form = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes()
                .starts_with(b"application/x-www-form-urlencoded")
        });
    if is_form {
        writeln!(out, "\n# decoded form").unwrap();
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(req.body()).unwrap();
        for (k, v) in pairs {
            writeln!(out, "{k} = {v:?}").unwrap();
        }
    }
    out
}

/// Builds a response with a status, headers and body.
pub fn response(
    status: u16,
    headers: &[(&str, &str)],
    body: impl Into<Vec<u8>>,
) -> http::Response<Vec<u8>> {
    let mut b = http::Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body.into()).unwrap()
}

/// Any JSON value built from `leaf` values: arrays and objects nested up to
/// three levels deep, a few entries each.
pub fn json_value_from(
    leaf: impl proptest::strategy::Strategy<Value = serde_json::Value> + 'static,
) -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
    use proptest::prelude::*;
    use serde_json::Value;
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every output of a single-process `engine` at `now`, with each write
/// confirmed as it is polled (a plain overwrite that succeeds), as a driver
/// that writes synchronously reports it.
#[allow(dead_code)]
pub fn drain_written(
    engine: &mut hoopai_oauth::Engine,
    now: SystemTime,
) -> Vec<hoopai_oauth::Output> {
    let mut outs = vec![];
    while let Some(o) = engine.poll_output(now) {
        if let hoopai_oauth::Output::Persist { record, .. } = &o {
            engine
                .handle_write(
                    record.grant.as_str(),
                    record.version,
                    hoopai_oauth::WriteOutcome::Written,
                    now,
                )
                .expect("write confirmed");
        }
        outs.push(o);
    }
    outs
}
