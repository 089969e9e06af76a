//! The main example as a real process: it must walk consent → callback →
//! refreshes → webhooks → shutdown by itself, exit 0 well within 30 s, leave
//! the live refresh token in its SQLite file, and print no token in full.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hoopai_oauth::GrantId;
use hoopai_oauth_service::{GrantStore, SqliteStore};

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

#[tokio::test(flavor = "multi_thread")]
async fn the_marketplace_app_walks_the_whole_life_of_an_install_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let began = Instant::now();
    let mut child = Command::new(example())
        .env_remove("HOOPAI_CLIENT_ID")
        .env("HOOPAI_DATA_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Waits up to 60 s, then kills it: a hang fails the test.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the example did not exit within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let output = child.wait_with_output().unwrap();
    let took = began.elapsed();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        output.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        output.status
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");
    for step in [
        "1. consent → callback: installed: loc-1",
        "1. consent → callback: installed: loc-2",
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
    // What it left in SQLite: the tokens it held last, never printed in
    // full, and the refresh token's fingerprint shown.
    let store = SqliteStore::open(dir.path().join("grants.sqlite3"))
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
