//! The main example as a real process: it must walk consent → callback →
//! refreshes → webhooks → shutdown by itself, exit 0 well within 30 s,
//! leave the live refresh token in its SQLite file sealed (no token text in
//! the file's bytes), serve Prometheus metrics that count what it and this
//! test did, and print no token in full, even with the service's logs at
//! `trace`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::prometheus::Scrape;
use hoopai_oauth::GrantId;
use hoopai_oauth_service::{
    GrantStore, Keyring, RECORD_KEYS_VAR, SqliteOptions, SqliteStore, StoreError,
};

/// The key the test hands the example (32 bytes of 0x2a, base64).
const KEYS: &str = "test-k1:KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

/// The example's binary, built by `cargo test` beside this test's.
fn example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let debug = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = debug
        .join("examples")
        .join(format!("marketplace_app{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is not built: run `cargo test -p hoopai-oauth-service --features axum`",
        path.display()
    );
    path
}

/// The example, its output read by threads: stdout line by line through
/// the channel, stderr whole at the end.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    stdout: Vec<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Running {
    fn start(dir: &Path, keys: Option<&str>, pause: bool) -> Running {
        let mut command = Command::new(example());
        command
            .env_remove("HOOPAI_CLIENT_ID")
            .env_remove("HOOPAI_METRICS_LISTEN")
            .env("HOOPAI_DATA_DIR", dir)
            // The service's every line, down to trace: none may hold a token.
            .env(
                "RUST_LOG",
                "hoopai_oauth_service=trace,marketplace_app=trace",
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match keys {
            Some(keys) => command.env(RECORD_KEYS_VAR, keys),
            None => command.env_remove(RECORD_KEYS_VAR),
        };
        if pause {
            command.env("HOOPAI_PAUSE_BEFORE_SHUTDOWN", "1");
        } else {
            command.env_remove("HOOPAI_PAUSE_BEFORE_SHUTDOWN");
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Running {
            child,
            lines,
            stdout: Vec::new(),
            stderr,
        }
    }

    /// Reads stdout until a line holds `wanted`; returns that line.
    fn until(&mut self, wanted: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout.push(line.clone());
                    if line.contains(wanted) {
                        return line;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("{wanted:?} not printed:\n{}", self.stdout.join("\n"));
                }
            }
        }
    }

    /// Waits for the exit (killing it after `within`): status, stdout, stderr.
    fn finish(mut self, within: Duration) -> (std::process::ExitStatus, String, String) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                self.child.kill().unwrap();
                panic!("the example did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.stdout.push(line);
        }
        let stderr = self.stderr.join().unwrap();
        (status, self.stdout.join("\n"), stderr)
    }
}

/// The text after `prefix` in `line`, up to the next space.
fn after<'a>(line: &'a str, prefix: &str) -> &'a str {
    let rest = &line[line.find(prefix).unwrap() + prefix.len()..];
    rest.split_whitespace().next().unwrap()
}

/// Every token the fake issues has this shape: `rt-`/`at-`/`cd-`, 12 hex
/// digits, `-`, 16 hex digits.
fn holds_fake_token(text: &str) -> bool {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(32)).any(|i| {
        matches!(&b[i..i + 3], b"rt-" | b"at-" | b"cd-")
            && b[i + 3..i + 15].iter().all(u8::is_ascii_hexdigit)
            && b[i + 15] == b'-'
            && b[i + 16..i + 32].iter().all(u8::is_ascii_hexdigit)
    })
}

/// The bytes of the SQLite database and its side files.
fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("grants.sqlite3") {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(!bytes.is_empty());
    bytes
}

#[tokio::test(flavor = "multi_thread")]
async fn the_marketplace_app_walks_the_whole_life_of_an_install_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let began = Instant::now();
    let mut app = Running::start(dir.path(), Some(KEYS), true);
    let metrics = after(
        &app.until("  metrics: ", Duration::from_secs(30)),
        "metrics: ",
    )
    .to_owned();
    let base = after(&app.until("  app: ", Duration::from_secs(30)), "app: ").to_owned();
    app.until("paused before shutdown", Duration::from_secs(60));

    // While it waits: what this test does to it, then a scrape.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let install = http.get(format!("{base}/oauth/install")).send().await;
    assert_eq!(install.unwrap().status(), 302);
    for _ in 0..2 {
        let unsigned = http
            .post(format!("{base}/oauth/webhook"))
            .header("content-type", "application/json")
            .body(r#"{"type":"UNINSTALL","locationId":"loc-1"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(unsigned.status(), 401);
    }
    let ready = http.get(format!("{base}/oauth/readyz")).send().await;
    assert_eq!(ready.unwrap().status(), 200);
    // The grants gauge is taken at most once a second after a change.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (m, text) = loop {
        let text = http
            .get(&metrics)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let m = Scrape::parse(&text);
        if m.get("hoopai_grants", &[("status", "active")]) == 1.0 {
            break (m, text);
        }
        assert!(
            Instant::now() < deadline,
            "loc-2's removal not seen:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let verdict = |v| m.get("hoopai_webhooks_total", &[("verdict", v)]);
    // The example's forged, signed and replayed UNINSTALL; this test's two
    // unsigned deliveries.
    assert_eq!(verdict("bad_signature"), 1.0, "{text}");
    assert_eq!(verdict("accepted"), 1.0);
    assert_eq!(verdict("replay"), 1.0);
    assert_eq!(verdict("unsigned"), 2.0);
    assert_eq!(m.total("hoopai_webhooks_total"), 5.0);
    let route = |route, outcome| {
        m.get(
            "hoopai_route_requests_total",
            &[("route", route), ("outcome", outcome)],
        )
    };
    // Two installs by the example's browser and one by this test; two
    // callbacks, each replayed once and refused.
    assert_eq!(route("install", "consent_redirect"), 3.0);
    assert_eq!(route("callback", "installed"), 2.0);
    assert_eq!(route("callback", "refused"), 2.0);
    // At least the three refreshes of loc-1 it showed, each written.
    let refreshed = m.get("hoopai_refreshes_total", &[("outcome", "refreshed")]);
    assert!(refreshed >= 3.0, "{text}");
    assert!(m.get("hoopai_store_writes_total", &[("outcome", "written")]) >= 2.0 + refreshed);
    assert!(m.get("hoopai_refresh_duration_seconds_count", &[]) >= refreshed);
    assert_eq!(m.total("hoopai_refresh_failures_total"), 0.0);
    assert_eq!(m.get("hoopai_service_running", &[]), 1.0);
    assert_eq!(m.get("hoopai_request_budget_max", &[]), 100.0);
    assert!(!holds_fake_token(&text) && !text.contains("loc-"), "{text}");

    app.child.stdin.take().unwrap().write_all(b"\n").unwrap();
    let (status, stdout, stderr) = app.finish(Duration::from_secs(60));
    let took = began.elapsed();
    assert!(status.success(), "exit {status:?}\n{stdout}\n{stderr}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    for step in [
        "1. consent → callback: installed: loc-1",
        "1. consent → callback: installed: loc-2",
        "readiness: 200",
        "refresh 3:",
        "forged UNINSTALL (signed with another key): 401",
        "signed UNINSTALL of loc-2: 200",
        "the same delivery again: 200 duplicate",
        "grants held: loc-1",
        "4. shut down:",
        "5. store down at shutdown: 1 record unwritten, saved to",
    ] {
        assert!(stdout.contains(step), "{step:?} missing from\n{stdout}");
    }
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
    assert!(
        stdout.contains("records sealed with key test-k1"),
        "{stdout}"
    );
    // The service logged its refreshes and store writes (at debug and
    // trace here), and not one token the fake issued.
    assert!(
        stderr.contains("refreshed") && stderr.contains("store write"),
        "{stderr}"
    );
    assert!(!holds_fake_token(&stdout), "{stdout}");
    assert!(!holds_fake_token(&stderr), "{stderr}");

    // What it left in SQLite: sealed. Read with the keys, the tokens it held
    // last, never printed in full; the refresh token's fingerprint shown.
    let keys = Keyring::parse(KEYS).unwrap();
    let store = SqliteStore::open_with(
        dir.path().join("grants.sqlite3"),
        SqliteOptions::default().keys(keys),
    )
    .await
    .unwrap();
    let record = store.load(&GrantId::new("loc-1")).await.unwrap().unwrap();
    let refresh = record.refresh_token().unwrap();
    let access = record.access_token();
    for secret in [refresh.secret(), access.secret()] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }
    assert!(
        stdout.contains(&refresh.fingerprint().to_string()),
        "{stdout}"
    );
    assert!(store.load(&GrantId::new("loc-2")).await.unwrap().is_none());
    // Not one token's text in the database's bytes, nor the record's JSON.
    let bytes = String::from_utf8_lossy(&database_bytes(dir.path())).into_owned();
    assert!(!bytes.contains(refresh.secret()) && !bytes.contains(access.secret()));
    assert!(!holds_fake_token(&bytes) && !bytes.contains("refresh_token"));
    // The records a failing store could not write are in a file of their
    // own, readable by the owner only, with the live refresh token.
    let saved: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("unwritten-grants-") && n.ends_with(".json"))
        })
        .collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert!(stdout.contains(&saved[0].display().to_string()), "{stdout}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&saved[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let records: Vec<hoopai_oauth::GrantRecord> =
        serde_json::from_slice(&std::fs::read(&saved[0]).unwrap()).unwrap();
    assert_eq!(records[0].grant.as_str(), "loc-3");
    let refresh = records[0].refresh_token().unwrap().secret();
    assert!(!stdout.contains(refresh) && !stderr.contains(refresh));
}

/// Without `HOOPAI_RECORD_KEYS`, the walk seals with a key of its own and
/// says that a later run cannot read the records; and indeed none can.
#[tokio::test(flavor = "multi_thread")]
async fn without_keys_it_seals_with_a_key_for_this_run_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (status, stdout, stderr) =
        Running::start(dir.path(), None, false).finish(Duration::from_secs(60));
    assert!(status.success(), "exit {status:?}\n{stdout}\n{stderr}");
    assert!(
        stderr.contains("warning: HOOPAI_RECORD_KEYS is not set")
            && stderr.contains("no later run can read them")
            && stderr.contains("openssl rand -base64 32"),
        "{stderr}"
    );
    assert!(stdout.contains("records sealed with key run"), "{stdout}");
    // Another run, with no key or another key, cannot open them.
    let plain = SqliteStore::open(dir.path().join("grants.sqlite3"))
        .await
        .unwrap();
    let read = plain.load(&GrantId::new("loc-1")).await;
    assert!(matches!(read, Err(StoreError::Sealed(_))), "{read:?}");
    let other = SqliteStore::open_with(
        dir.path().join("grants.sqlite3"),
        SqliteOptions::default().keys(Keyring::parse(KEYS).unwrap()),
    )
    .await
    .unwrap();
    let read = other.load(&GrantId::new("loc-1")).await;
    assert!(matches!(read, Err(StoreError::Sealed(_))), "{read:?}");
    assert!(!holds_fake_token(&String::from_utf8_lossy(
        &database_bytes(dir.path())
    )));
}
