//! Starting the binary: installs seeded from a config file and flags, the
//! handoff file (the keys earlier readers use included), the fixed port
//! flag, and settings refused with a clear message and exit status 2.
mod common;

use std::net::TcpListener;

use common::{Fake, run};
use serde_json::{Value, json};

/// The handoff with what changes from run to run, and every code, replaced.
fn stable(handoff: &Value) -> String {
    let mut h = handoff.clone();
    let base = h["baseUrl"].as_str().unwrap().to_owned();
    h["pid"] = json!("(pid)");
    for install in h["installs"].as_array_mut().unwrap() {
        install["code"] = json!("(code)");
    }
    h["code"] = json!("(code)");
    serde_json::to_string_pretty(&h)
        .unwrap()
        .replace(&base, "http://127.0.0.1:PORT")
}

#[test]
fn installs_from_a_config_file_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fake.json");
    std::fs::write(
        &config,
        json!({
            "clientId": "65aa11bb22cc33dd44ee55ff-myapp",
            "clientSecret": "my-test-secret",
            "redirectUri": "http://127.0.0.1:3000/oauth/callback",
            "accessTokenLifetimeSecs": 600,
            "installs": [
                {"type": "location", "companyId": "agency-a", "locationId": "shop-1", "name": "Shop One"},
                {"type": "bulk", "companyId": "agency-b", "locations": 2}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let fake = Fake::start(&[
        "--quiet",
        "--config",
        config.to_str().unwrap(),
        "--agency",
        "agency-c:1/2",
    ]);
    snap!("handoff", stable(&fake.handoff));
    // The keys wasm/run.mjs reads are those of the first Location install.
    for key in [
        "baseUrl",
        "clientId",
        "clientSecret",
        "redirectUri",
        "code",
        "companyId",
        "locationId",
    ] {
        assert!(fake.handoff[key].is_string(), "{key}");
    }
    assert_eq!(fake.handoff["code"], fake.handoff["installs"][0]["code"]);
    // The handoff file is private, and removed at exit.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(fake.handoff_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let path = fake.handoff_path();
    let exited = fake.stop();
    assert_eq!(exited.code, Some(0));
    assert!(!path.exists());
}

#[test]
fn a_fixed_port() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fake = Fake::start(&["--quiet", "--port", &port.to_string()]);
    assert_eq!(fake.base, format!("http://127.0.0.1:{port}"));
    let exited = fake.stop();
    assert_eq!(
        exited.stdout.lines().next(),
        Some(format!("listening http://127.0.0.1:{port}").as_str())
    );
}

#[test]
fn bad_settings_are_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.json");
    std::fs::write(
        &config,
        r#"{"installs": [{"type": "location", "companyId": "c"}], "colour": "red"}"#,
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let mut out = String::new();
    for args in [
        vec!["--agency", "agency-1:5/3"],
        vec!["--agency", "agency-1"],
        vec!["--bulk", "agency-1:20000"],
        vec!["--location", "loc-only"],
        vec!["--rate-limit", "100"],
        vec!["--rate-limit", "0/10"],
        vec!["--webhook-url", "https://app.example/hooks"],
        vec!["--max-body-bytes", "10"],
        vec!["--access-token-lifetime", "0"],
        vec!["--config", &config],
        vec!["--config", "/nonexistent/fake.json"],
    ] {
        let exited = run(&args);
        assert_eq!(exited.code, Some(2), "{args:?}: {}", exited.stderr);
        assert!(exited.stdout.is_empty());
        let message = exited.stderr.trim().replace(config.as_str(), "BAD.json");
        out.push_str(&format!(
            "{}\n  {message}\n",
            args.join(" ").replace(config.as_str(), "BAD.json")
        ));
    }
    snap!("refused_settings", out);
}
