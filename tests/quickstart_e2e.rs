//! End to end: the quickstart's own code, with a real HTTP client, against the
//! fake server on a loopback port.

#[allow(dead_code)]
#[path = "../examples/quickstart.rs"]
mod quickstart;

use hoopai_oauth::fake::{FakeServer, Install};
use hoopai_oauth::{ErrorKind, GrantRecord, UserType};
use quickstart::{Failure, LocalFake, RealSettings, run_local, run_real};

#[test]
fn the_local_flow_succeeds_end_to_end() {
    let summary = run_local().unwrap_or_else(|e| panic!("{e}"));
    let steps = summary.steps.join("\n");
    assert_eq!(summary.steps.len(), 12, "{steps}");
    assert!(steps.contains("refresh token rotated"), "{steps}");
    assert!(
        steps.contains("approved locations [\"loc-1\", \"loc-2\", \"loc-3\"]"),
        "{steps}"
    );
    assert!(steps.contains("location token for loc-3"), "{steps}");
    assert!(steps.contains("page 3 (of 5 in all): loc-5"), "{steps}");
}

const ID: &str = "6578278e879ad2646715ba9c-e2e";
const SECRET: &str = "e2e-client-secret-placeholder";

/// A fake on loopback with one approved Location install, and its code.
fn approved() -> (LocalFake, hoopai_oauth::AuthorizationCode) {
    let local = LocalFake::start(FakeServer::new(ID, SECRET)).unwrap();
    let code = local
        .fake
        .lock()
        .unwrap()
        .approve(&Install::location("c-1", "l-1"));
    (local, code)
}

fn settings(local: &LocalFake, code: String, file: Option<std::path::PathBuf>) -> RealSettings {
    RealSettings {
        client_id: ID.into(),
        client_secret: SECRET.into(),
        redirect_uri: "https://myapp.example/cb".into(),
        code,
        base_url: Some(local.base_url.clone()),
        user_type: Some(UserType::Location),
        token_file: file,
    }
}

#[test]
fn the_real_server_path_exchanges_refreshes_and_writes_a_private_token_file() {
    let (local, code) = approved();
    let dir = std::env::temp_dir().join(format!("hoopai-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tokens.json");
    let summary = run_real(&settings(
        &local,
        code.secret().to_owned(),
        Some(file.clone()),
    ))
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
    run_real(&settings(&local, code.secret().to_owned(), None)).unwrap();
    let err = run_real(&settings(&local, code.secret().to_owned(), None)).unwrap_err();
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
    match run_real(&s).unwrap_err() {
        Failure::OAuth(e) => assert_eq!(e.kind(), ErrorKind::InvalidClient),
        other => panic!("{other}"),
    }
}

#[test]
fn nothing_listening_is_a_transport_failure() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = RealSettings {
        client_id: ID.into(),
        client_secret: SECRET.into(),
        redirect_uri: "https://myapp.example/cb".into(),
        code: "code".into(),
        base_url: Some(format!("http://127.0.0.1:{port}")),
        user_type: None,
        token_file: None,
    };
    assert!(matches!(run_real(&s).unwrap_err(), Failure::Transport(_)));
}
