//! The crate's fake HighLevel server as a process of its own, on a loopback
//! port, for clients written in other languages (the WASM example under Node
//! uses it).
//!
//! It serves [`hoopai_oauth::fake::FakeServer`] on `127.0.0.1` with a port the
//! operating system chooses, approves one Location install, and writes a
//! handoff file, JSON, readable by the owner only (mode 0600), renamed into
//! place once complete:
//!
//! ```json
//! {"baseUrl": "http://127.0.0.1:PORT", "clientId": "…", "clientSecret": "…",
//!  "redirectUri": "…", "code": "…", "companyId": "…", "locationId": "…"}
//! ```
//!
//! `code` is a one-time authorization code: exchanging it over HTTP gives the
//! grant's first refresh token. Secrets go to the file only; standard output
//! gets one `listening <base url>` line, and, when the server stops, one
//! `stats key=value …` line with what the fake did (requests, code exchanges,
//! refreshes, reuses of a spent refresh token).
//!
//! It stops when its standard input closes, or after `--timeout-secs`
//! (default 600).
//!
//! Run: `cargo run --example fake_server -- --handoff fake.json`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use hoopai_oauth::fake::{FakeServer, Install};

// The loopback server of the quickstart, reused as is.
#[allow(dead_code, unused_imports)]
#[path = "quickstart/main.rs"]
mod quickstart;

use quickstart::LocalFake;

/// The app's credentials (placeholders; the fake accepts them).
const CLIENT_ID: &str = "6578278e879ad2646715ba9c-fakeserver";
const CLIENT_SECRET: &str = "fake-server-client-secret-placeholder";
const REDIRECT_URI: &str = "https://myapp.example/oauth/callback";
const COMPANY: &str = "company-1";
const LOCATION: &str = "loc-1";

/// The command line.
struct Args {
    handoff: PathBuf,
    timeout: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut handoff = None;
    let mut timeout = Duration::from_secs(600);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--handoff" => {
                handoff = Some(PathBuf::from(
                    args.next().ok_or("--handoff needs a file path")?,
                ));
            }
            "--timeout-secs" => {
                let value = args.next().ok_or("--timeout-secs needs a number")?;
                let secs: u64 = value
                    .parse()
                    .map_err(|_| format!("--timeout-secs: {value:?} is not a whole number"))?;
                timeout = Duration::from_secs(secs);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        handoff: handoff.ok_or("usage: fake_server --handoff FILE [--timeout-secs N]")?,
        timeout,
    })
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("fake_server: {why}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let mut fake = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
    fake.add_location(
        COMPANY,
        LOCATION,
        "Downtown Dental",
        "1 Main St, Springfield",
    );
    let code = fake.approve(&Install::location(COMPANY, LOCATION));
    let local = LocalFake::start(fake).map_err(|e| e.to_string())?;

    let handoff = serde_json::json!({
        "baseUrl": local.base_url,
        "clientId": CLIENT_ID,
        "clientSecret": CLIENT_SECRET,
        "redirectUri": REDIRECT_URI,
        "code": code.secret(),
        "companyId": COMPANY,
        "locationId": LOCATION,
    });
    write_private(&args.handoff, &handoff)?;
    println!("listening {}", local.base_url);

    // Stop on whichever comes first: standard input closing, or the timeout.
    let (closed, stdin_closed) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sink = [0u8; 256];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        let _ = closed.send(());
    });
    let why = match stdin_closed.recv_timeout(args.timeout) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => "standard input closed",
        Err(mpsc::RecvTimeoutError::Timeout) => "timeout",
    };
    let stats = local
        .fake
        .lock()
        .map_err(|_| "the fake's lock is poisoned".to_owned())?
        .stats();
    println!(
        "stats requests={} code_exchanges={} refreshes={} spent_refresh_token_reuses={} stopped_by={}",
        stats.requests,
        stats.code_exchanges,
        stats.refreshes,
        stats.spent_refresh_token_reuses,
        why.replace(' ', "_"),
    );
    drop(local);
    let _ = std::fs::remove_file(&args.handoff);
    Ok(())
}

/// Writes `value` to `path` through a private temporary file renamed into
/// place, so a reader never sees a partial file.
fn write_private(path: &Path, value: &serde_json::Value) -> Result<(), String> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    file.write_all(value.to_string().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot rename to {}: {e}", path.display()))
}
