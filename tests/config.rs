//! Building a configuration: what is accepted and what is refused, and how.

mod common;

use common::{CLIENT_ID, CLIENT_SECRET};
use hoopai_oauth::{ApiVersion, Config, DEFAULT_BASE_URL, ErrorClass, ErrorKind};

#[test]
fn defaults() {
    let c = Config::builder(CLIENT_ID, CLIENT_SECRET).build().unwrap();
    assert_eq!(c.base_url(), DEFAULT_BASE_URL);
    assert_eq!(c.api_version(), ApiVersion::V2);
    assert_eq!(c.redirect_uri(), None);
    assert_eq!(c.app_id(), "6578278e879ad2646715ba9c");
}

#[test]
fn accepted_base_urls() {
    for (url, expect) in [
        (
            "https://services.leadconnectorhq.com",
            "https://services.leadconnectorhq.com",
        ),
        (
            "https://staging.example.com/",
            "https://staging.example.com",
        ),
        (
            "https://api.example.com:8443/v1",
            "https://api.example.com:8443/v1",
        ),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:3000/", "http://localhost:3000"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ] {
        let c = Config::builder(CLIENT_ID, CLIENT_SECRET)
            .base_url(url)
            .build()
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(c.base_url(), expect);
    }
}

#[test]
fn refused_configurations() {
    let cases = [
        ("empty client id", Config::builder("", CLIENT_SECRET)),
        ("blank client id", Config::builder("  ", CLIENT_SECRET)),
        (
            "client id with space",
            Config::builder("a b", CLIENT_SECRET),
        ),
        ("empty secret", Config::builder(CLIENT_ID, "")),
        ("blank secret", Config::builder(CLIENT_ID, " \t")),
        (
            "plain http, public host",
            Config::builder(CLIENT_ID, CLIENT_SECRET)
                .base_url("http://services.leadconnectorhq.com"),
        ),
        (
            "plain http, private address",
            Config::builder(CLIENT_ID, CLIENT_SECRET).base_url("http://10.0.0.1"),
        ),
        (
            "look-alike loopback",
            Config::builder(CLIENT_ID, CLIENT_SECRET).base_url("http://localhost.evil.example"),
        ),
        (
            "no scheme",
            Config::builder(CLIENT_ID, CLIENT_SECRET).base_url("services.leadconnectorhq.com"),
        ),
        (
            "other scheme",
            Config::builder(CLIENT_ID, CLIENT_SECRET).base_url("ftp://example.com"),
        ),
        (
            "query in base URL",
            Config::builder(CLIENT_ID, CLIENT_SECRET).base_url("https://example.com/?a=1"),
        ),
        (
            "garbage base URL",
            Config::builder(CLIENT_ID, CLIENT_SECRET).base_url("ht tp://x"),
        ),
        (
            "empty base URL",
            Config::builder(CLIENT_ID, CLIENT_SECRET).base_url(""),
        ),
        (
            "relative redirect URI",
            Config::builder(CLIENT_ID, CLIENT_SECRET).redirect_uri("/callback"),
        ),
        (
            "plain http consent URL",
            Config::builder(CLIENT_ID, CLIENT_SECRET)
                .consent_url("http://marketplace.gohighlevel.com/v2/oauth/chooselocation"),
        ),
    ];
    let mut report = String::new();
    for (name, builder) in cases {
        let err = builder.build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{name}");
        assert_eq!(err.class(), ErrorClass::Caller, "{name}");
        assert!(!err.to_string().contains(CLIENT_SECRET), "{name}");
        report.push_str(&format!("{name}: {err}\n"));
    }
    snap!(report);
}

#[test]
fn debug_never_shows_the_secret() {
    let c = Config::builder(CLIENT_ID, CLIENT_SECRET).build().unwrap();
    let debug = format!("{c:?} {c:#?}");
    assert!(!debug.contains(CLIENT_SECRET), "{debug}");
    assert!(debug.contains("plac…(25 chars)"), "{debug}");
}
