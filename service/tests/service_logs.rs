#![allow(dead_code, unused_imports)]
//! The token service's logs carry no secret. Alone in its binary: `tracing`
//! caches callsite interest process-wide, and tests on other threads
//! without a subscriber would hide lines from this one.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::fake_http::FakeHttp;
use hoopai_oauth::fake::Install;
use hoopai_oauth::{
    AccessToken, EngineSettings, Event, GrantId, RefreshToken, TokenResponse, TokenSet, UserType,
};
use hoopai_oauth_service::{
    GrantStore, ReqwestClient, ServiceEvent, ServiceSettings, SqliteStore, TokenError, TokenService,
};

struct Env {
    server: FakeHttp,
    dir: tempfile::TempDir,
}

impl Env {
    async fn new() -> Self {
        Env {
            server: FakeHttp::start().await,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("grants.sqlite3")
    }

    async fn store(&self) -> SqliteStore {
        SqliteStore::open(self.path()).await.unwrap()
    }

    fn settings(&self) -> ServiceSettings {
        ServiceSettings::new(
            EngineSettings::default()
                .expiry_skew(Duration::from_secs(1))
                .request_timeout(Duration::from_secs(5))
                .backoff(Duration::from_millis(200), Duration::from_secs(1))
                .jitter_seed(7),
        )
        .wait(Duration::from_secs(10))
    }

    async fn start_with(&self, settings: ServiceSettings) -> TokenService {
        let http = ReqwestClient::new(settings.engine()).unwrap();
        TokenService::start(self.server.config(), settings, self.store().await, http)
            .await
            .unwrap()
    }

    async fn start(&self) -> TokenService {
        self.start_with(self.settings()).await
    }

    /// Consent at the fake, then the code exchange through the service.
    async fn install(&self, service: &TokenService, location: &str) -> GrantId {
        let code = self
            .server
            .fake()
            .approve(&Install::location("company-1", location));
        service
            .exchange_code(code, Some(UserType::Location))
            .await
            .unwrap()
    }

    async fn stored_refresh(&self, grant: &str) -> String {
        let record = self
            .store()
            .await
            .load(&GrantId::new(grant))
            .await
            .unwrap()
            .unwrap();
        record.refresh_token().unwrap().secret().to_owned()
    }

    fn token_calls(&self) -> u64 {
        self.server.shared.token_calls.load(Ordering::SeqCst)
    }
}

/// Tokens for `grant` obtained two days ago (expired), with this refresh token.
fn expired(grant: &str, refresh: &str) -> TokenSet {
    let mut token = TokenResponse::new(AccessToken::new(format!(
        "access-expired-{grant}-000000000000000000"
    )));
    token.refresh_token = Some(RefreshToken::new(refresh));
    token.expires_in = Some(86_399);
    token.location_id = Some(grant.to_owned());
    TokenSet::new(token, SystemTime::now() - Duration::from_secs(2 * 86_400))
}

async fn next_event(
    events: &mut tokio::sync::broadcast::Receiver<ServiceEvent>,
    mut wanted: impl FnMut(&ServiceEvent) -> bool,
) -> ServiceEvent {
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let event = events.recv().await.unwrap();
            if wanted(&event) {
                return event;
            }
        }
    })
    .await
    .expect("the event came in time")
}

/// Collects what `tracing` prints.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_carry_no_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let env = Env::new().await;
    let service = env.start().await;
    env.install(&service, "loc-1").await;
    let first = env.stored_refresh("loc-1").await;
    service
        .add("loc-1", expired("loc-1", &first))
        .await
        .unwrap();
    let token = service.access_token("loc-1").await.unwrap();
    let second = env.stored_refresh("loc-1").await;
    env.server
        .fake()
        .fail_next(hoopai_oauth::fake::Fault::ServerError, 1);
    service
        .add("loc-1", expired("loc-1", &second))
        .await
        .unwrap();
    let _ = service.access_token("loc-1").await;
    service.shutdown().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("loc-1"), "the logs name the grant:\n{logs}");
    assert!(logs.contains("refreshed"), "{logs}");
    for secret in [
        first.as_str(),
        second.as_str(),
        token.secret(),
        common::fake_http::CLIENT_SECRET,
    ] {
        assert!(
            !logs.contains(secret),
            "a secret leaked into the logs:\n{logs}"
        );
    }
}
