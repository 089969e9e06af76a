//! End to end: the quickstart run as a real process (and its functions called
//! in-process), with a real HTTP client, against the fake server on a loopback
//! port.

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/quickstart/main.rs"]
mod quickstart;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use hoopai_oauth::fake::{FakeServer, Install};
use hoopai_oauth::{ErrorKind, GrantRecord, UserType};
use quickstart::{Failure, LocalFake, RealSettings, loopback_listen_address, run_real};

const ID: &str = "6578278e879ad2646715ba9c-e2e";
const SECRET: &str = "e2e-client-secret-placeholder";

// ---- the example as a process -------------------------------------------------------

/// The quickstart binary, built (or found up to date) by cargo in this test's
/// own target folder.
fn quickstart_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let mut cargo = Command::new(env!("CARGO"));
            cargo
                .args([
                    "build",
                    "--quiet",
                    "--example",
                    "quickstart",
                    "--message-format=json",
                ])
                .arg("--manifest-path")
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
                .stderr(Stdio::inherit());
            // What cargo sets for this test process only: left in, some build
            // scripts (ring's) would see a change and rebuild for every run.
            for (key, _) in std::env::vars_os() {
                let key = key.to_string_lossy();
                if key.starts_with("CARGO_PKG_")
                    || [
                        "CARGO_MANIFEST_DIR",
                        "CARGO_MANIFEST_PATH",
                        "CARGO_MANIFEST_LINKS",
                        "CARGO_CRATE_NAME",
                        "CARGO_BIN_NAME",
                        "CARGO_PRIMARY_PACKAGE",
                        "CARGO_TARGET_TMPDIR",
                        "CARGO_RUSTC_CURRENT_DIR",
                        "OUT_DIR",
                    ]
                    .contains(&&*key)
                {
                    cargo.env_remove(&*key);
                }
            }
            // This test runs from `<target>/<profile>/deps/`: build there too.
            let exe = std::env::current_exe().unwrap();
            let deps = exe.parent().unwrap();
            if deps.ends_with("deps")
                && let Some(target) = deps.parent().and_then(|p| p.parent())
            {
                cargo.arg("--target-dir").arg(target);
            }
            let out = cargo.output().expect("running cargo");
            assert!(
                out.status.success(),
                "cargo build --example quickstart failed"
            );
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|m| m["target"]["name"] == "quickstart")
                .find_map(|m| m["executable"].as_str().map(PathBuf::from))
                .expect("cargo names the quickstart executable")
        })
        .clone()
}

/// A running quickstart: its stdin, and its stdout lines as they come.
struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(envs: &[(&str, String)]) -> Self {
        let mut command = Command::new(quickstart_binary());
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("starting the quickstart");
        let stdin = child.stdin.take();
        let (tx, lines) = channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `needle` (a minute at most) and returns it.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!(
                        "no line with {needle:?}; output so far:\n{}",
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// Waits for the exit (two minutes at most): status, all stdout, stderr.
    fn finish(mut self) -> (bool, String, String) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "the quickstart did not exit; output:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.seen.extend(self.lines.iter());
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            std::io::Read::read_to_string(&mut e, &mut stderr).unwrap();
        }
        (status.success(), self.seen.join("\n"), stderr)
    }
}

/// The URL in a printed line that starts with `prefix`.
fn url_in(line: &str, prefix: &str) -> String {
    let start = line
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix} in {line}"));
    line[start..].split_whitespace().next().unwrap().to_owned()
}

/// Every run of 28 or more token characters in `text` (what would be a
/// token, once the URLs are left out).
fn long_runs(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || "-_.~".contains(c)))
        .filter(|w| w.len() >= 28)
        .collect()
}

/// The fake's tokens and codes are placeholders of the form
/// `at-`/`rt-`/`cd-`, 12 hex digits, `-`, 16 hex digits.
fn fake_tokens_in(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(32))
        .filter(|&i| matches!(&b[i..i + 3], b"at-" | b"rt-" | b"cd-"))
        .filter(|&i| {
            let hex = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_hexdigit);
            hex(i + 3..i + 15) && b[i + 15] == b'-' && hex(i + 16..i + 32)
        })
        .map(|i| text[i..i + 32].to_owned())
        .collect()
}

#[test]
fn the_example_run_locally_shows_whose_token_the_rotation_the_consent_url_and_a_429() {
    let run = Running::start(&[]);
    let (ok, out, err) = run.finish();
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("✓ all 16 steps succeeded"), "{out}");
    let line = |needle: &str| {
        out.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in\n{out}"))
    };
    // The consent URL it follows, with a state it then checks.
    let consent = line("consent URL followed: http://127.0.0.1:");
    assert!(
        consent.contains("/v2/oauth/chooselocation?response_type=code"),
        "{consent}"
    );
    assert!(consent.contains("&state="), "{consent}");
    // Whose token it is.
    let exchanged = line("code exchanged:");
    assert!(
        exchanged
            .contains("Location token · locationId loc-1 · companyId company-1 · userId user-1"),
        "{exchanged}"
    );
    let agency = line("agency install exchanged:");
    assert!(
        agency.contains("Company token · companyId company-1 · userId user-1"),
        "{agency}"
    );
    // The 429 the engine waits out, with the refresh token it keeps.
    let refused = line("refresh refused (rate limited (HTTP 429)");
    assert!(refused.contains("the engine waits"), "{refused}");
    // Rotation: same redaction, different fingerprints.
    let refreshed = line("refreshed by the engine after 1 retry: refresh token rotated");
    let fingerprints: Vec<&str> = refreshed.split('#').skip(1).map(|s| &s[..8]).collect();
    let old = exchanged
        .split("refresh ")
        .nth(1)
        .unwrap()
        .split('#')
        .nth(1)
        .unwrap();
    assert_eq!(fingerprints[0], &old[..8], "{refreshed}");
    assert_ne!(fingerprints[0], fingerprints[1], "{refreshed}");
    assert!(
        refused.contains(&format!("#{}", fingerprints[0])),
        "{refused}"
    );
    // No token, code or secret in full.
    assert_eq!(fake_tokens_in(&out), Vec::<String>::new(), "{out}");
    assert!(!out.contains("demo-client-secret"), "{out}");
    for l in out.lines().filter(|l| !l.contains("http")) {
        assert_eq!(long_runs(l), Vec::<&str>::new(), "{l}");
    }
    assert!(err.is_empty(), "{err}");
}

/// The environment of a real-server run against `local`.
fn real_env(
    local: &LocalFake,
    redirect: &str,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("HOOPAI_CLIENT_ID", ID.to_owned()),
        ("HOOPAI_CLIENT_SECRET", SECRET.to_owned()),
        ("HOOPAI_REDIRECT_URI", redirect.to_owned()),
        ("HOOPAI_BASE_URL", local.base_url.clone()),
        ("HOOPAI_CONSENT_URL", consent_page(local)),
        (
            "HOOPAI_SCOPES",
            "contacts.readonly contacts.write".to_owned(),
        ),
        ("HOOPAI_USER_TYPE", "Location".to_owned()),
    ];
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k, v.clone()));
    }
    env
}

fn consent_page(local: &LocalFake) -> String {
    format!("{}/v2/oauth/chooselocation", local.base_url)
}

/// Plays the browser: opens the consent URL (the fake approves at once) and
/// returns where it redirects.
fn approve_in_browser(consent_url: &str) -> String {
    let agent = quickstart::agent();
    let request = http::Request::get(consent_url).body(Vec::new()).unwrap();
    let answer = quickstart::send(&agent, request).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer.status(), 302);
    answer.headers()[http::header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}

fn free_loopback_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hoopai-e2e-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn with_no_code_and_a_loopback_redirect_it_catches_the_code_itself() {
    let local = LocalFake::start(FakeServer::new(ID, SECRET)).unwrap();
    local
        .with(|f| f.set_consent_install(Install::location("c-9", "l-9")))
        .unwrap();
    let redirect = format!("http://127.0.0.1:{}/oauth/callback", free_loopback_port());
    let dir = temp_dir("loopback");
    let file = dir.join("tokens.json");
    let mut run = Running::start(&real_env(
        &local,
        &redirect,
        &[("HOOPAI_TOKEN_FILE", file.display().to_string())],
    ));
    run.wait_for(&format!("listening on {redirect}"));
    let consent = url_in(&run.seen.join("\n"), &consent_page(&local));
    assert!(
        consent.contains("scope=contacts.readonly+contacts.write"),
        "{consent}"
    );
    let location = approve_in_browser(&consent);
    assert!(
        location.starts_with(&format!("{redirect}?code=")),
        "{location}"
    );
    // The browser follows the redirect to the quickstart's own listener.
    let agent = quickstart::agent();
    let page = quickstart::send(
        &agent,
        http::Request::get(location.as_str())
            .body(Vec::new())
            .unwrap(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page.status(), 200);
    assert!(String::from_utf8_lossy(page.body()).contains("You can close this tab"));

    let (ok, out, err) = run.finish();
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("consent approved, redirect checked (state matches)"),
        "{out}"
    );
    assert!(
        out.contains("Location token · locationId l-9 · companyId c-9 · userId user-1"),
        "{out}"
    );
    assert!(out.contains("refresh token rotated"), "{out}");
    let saved: GrantRecord = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let live = saved.tokens.refresh_token().unwrap().secret().to_owned();
    assert!(local.with(|f| f.is_live_refresh_token(&live)).unwrap());
    assert!(
        !out.contains(&live) && !out.contains(saved.tokens.access_token().secret()),
        "{out}"
    );
    assert!(!out.contains(SECRET), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn with_no_code_and_a_remote_redirect_it_reads_the_pasted_url() {
    let local = LocalFake::start(FakeServer::new(ID, SECRET)).unwrap();
    let redirect = "https://myapp.example/oauth/callback";
    let mut run = Running::start(&real_env(&local, redirect, &[]));
    run.wait_for("then paste here the whole URL");
    let consent = url_in(&run.seen.join("\n"), &consent_page(&local));
    let location = approve_in_browser(&consent);
    let stdin = run.stdin.as_mut().unwrap();
    writeln!(stdin, "{location}").unwrap();
    let (ok, out, err) = run.finish();
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("Location token · locationId loc-1 · companyId company-1"),
        "{out}"
    );
    assert!(out.contains("refresh token rotated"), "{out}");
    assert_eq!(local.with(|f| f.stats().refreshes).unwrap(), 1);
}

#[test]
fn a_pasted_redirect_with_another_state_is_refused() {
    let local = LocalFake::start(FakeServer::new(ID, SECRET)).unwrap();
    let mut run = Running::start(&real_env(&local, "https://myapp.example/cb", &[]));
    run.wait_for("then paste here the whole URL");
    let consent = url_in(&run.seen.join("\n"), &consent_page(&local));
    let location = approve_in_browser(&consent);
    let forged = format!("{}&x=1", location.replace("state=", "state=x"));
    writeln!(run.stdin.as_mut().unwrap(), "{forged}").unwrap();
    let (ok, out, err) = run.finish();
    assert!(!ok, "{out}");
    assert!(err.contains("[StateMismatch]"), "{err}");
    assert_eq!(local.with(|f| f.stats().code_exchanges).unwrap(), 0);
}

#[test]
fn with_neither_code_nor_scopes_it_says_what_to_set() {
    let local = LocalFake::start(FakeServer::new(ID, SECRET)).unwrap();
    let run = Running::start(&real_env(
        &local,
        "https://myapp.example/cb",
        &[("HOOPAI_SCOPES", String::new())],
    ));
    let (ok, _, err) = run.finish();
    assert!(!ok);
    assert!(
        err.contains("HOOPAI_CODE") && err.contains("HOOPAI_SCOPES"),
        "{err}"
    );
}

#[test]
fn loopback_redirects_are_listened_on_and_others_are_not() {
    let cases = [
        (
            "http://127.0.0.1:8910/callback",
            Some(("127.0.0.1:8910", "/callback")),
        ),
        (
            "http://localhost:8910/cb?x=1",
            Some(("127.0.0.1:8910", "/cb")),
        ),
        ("http://[::1]:8910/cb", Some(("[::1]:8910", "/cb"))),
        ("http://localhost/", Some(("127.0.0.1:80", "/"))),
        ("https://127.0.0.1:8910/cb", None),
        ("http://example.com:8910/cb", None),
        ("https://myapp.example/cb", None),
        ("not a url", None),
    ];
    for (uri, want) in cases {
        let got = loopback_listen_address(uri);
        let want = want.map(|(a, p)| (a.to_owned(), p.to_owned()));
        assert_eq!(got, want, "{uri}");
    }
}

// ---- the quickstart's functions, in-process ------------------------------------------

#[test]
fn the_local_flow_succeeds_end_to_end() {
    let summary = quickstart::run_local().unwrap_or_else(|e| panic!("{e}"));
    let steps = summary.steps.join("\n");
    assert_eq!(summary.steps.len(), 16, "{steps}");
    assert!(steps.contains("refresh token rotated"), "{steps}");
    assert!(
        steps.contains("approved locations [\"loc-1\", \"loc-2\", \"loc-3\"]"),
        "{steps}"
    );
    assert!(steps.contains("location token for loc-3"), "{steps}");
    assert!(steps.contains("page 3 (of 5 in all): loc-5"), "{steps}");
}

/// A fake on loopback with one approved Location install, and its code.
fn approved() -> (LocalFake, hoopai_oauth::AuthorizationCode) {
    let local = LocalFake::start(FakeServer::new(ID, SECRET)).unwrap();
    let code = local
        .with(|f| f.approve(&Install::location("c-1", "l-1")))
        .unwrap();
    (local, code)
}

fn settings(local: &LocalFake, code: String, file: Option<PathBuf>) -> RealSettings {
    RealSettings {
        client_id: ID.into(),
        client_secret: SECRET.into(),
        redirect_uri: "https://myapp.example/cb".into(),
        code: Some(code),
        base_url: Some(local.base_url.clone()),
        user_type: Some(UserType::Location),
        token_file: file,
        ..RealSettings::default()
    }
}

fn no_input() -> impl BufRead {
    std::io::empty()
}

#[test]
fn the_real_server_path_exchanges_refreshes_and_writes_a_private_token_file() {
    let (local, code) = approved();
    let dir = temp_dir("file");
    let file = dir.join("tokens.json");
    let summary = run_real(
        &settings(&local, code.secret().to_owned(), Some(file.clone())),
        &mut no_input(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.steps.len(), 4, "{:?}", summary.steps);

    // The file holds the refreshed record: its refresh token is the live one.
    let saved: GrantRecord = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(saved.version, 2);
    let fake = local.fake.lock().unwrap();
    let live = saved.tokens.refresh_token().unwrap().secret();
    assert!(fake.is_live_refresh_token(live));
    assert_eq!(fake.live_refresh_tokens(), vec![live.to_owned()]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_spent_code_fails_with_a_classified_error_and_no_secret() {
    let (local, code) = approved();
    run_real(
        &settings(&local, code.secret().to_owned(), None),
        &mut no_input(),
    )
    .unwrap();
    let err = run_real(
        &settings(&local, code.secret().to_owned(), None),
        &mut no_input(),
    )
    .unwrap_err();
    match &err {
        Failure::OAuth(e) => assert_eq!(e.kind(), ErrorKind::InvalidGrant),
        other => panic!("{other}"),
    }
    let text = err.to_string();
    assert!(!text.contains(code.secret()), "{text}");
    assert!(!text.contains(SECRET), "{text}");
}

#[test]
fn a_wrong_secret_is_an_invalid_client() {
    let (local, code) = approved();
    let mut s = settings(&local, code.secret().to_owned(), None);
    s.client_secret = "wrong-secret-value".into();
    match run_real(&s, &mut no_input()).unwrap_err() {
        Failure::OAuth(e) => assert_eq!(e.kind(), ErrorKind::InvalidClient),
        other => panic!("{other}"),
    }
}

#[test]
fn nothing_listening_is_a_transport_failure() {
    let s = RealSettings {
        client_id: ID.into(),
        client_secret: SECRET.into(),
        redirect_uri: "https://myapp.example/cb".into(),
        code: Some("code".into()),
        base_url: Some(format!("http://127.0.0.1:{}", free_loopback_port())),
        ..RealSettings::default()
    };
    assert!(matches!(
        run_real(&s, &mut no_input()).unwrap_err(),
        Failure::Transport(_)
    ));
}
