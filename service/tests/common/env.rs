//! A token service over loopback: the core's fake behind [`FakeHttp`], the
//! reqwest client, and the SQLite store in a temporary folder.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use hoopai_oauth::fake::Install;
use hoopai_oauth::{
    AccessToken, EngineSettings, GrantId, RefreshToken, TokenResponse, TokenSet, UserType,
};
use hoopai_oauth_service::{
    GrantStore, ReqwestClient, ServiceEvent, ServiceSettings, SqliteStore, TokenService,
};

use super::fake_http::FakeHttp;

pub struct Env {
    pub server: FakeHttp,
    pub dir: tempfile::TempDir,
}

impl Env {
    pub async fn new() -> Self {
        Env {
            server: FakeHttp::start().await,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("grants.sqlite3")
    }

    pub async fn store(&self) -> SqliteStore {
        SqliteStore::open(self.path()).await.unwrap()
    }

    pub fn settings(&self) -> ServiceSettings {
        ServiceSettings::new(
            EngineSettings::default()
                .expiry_skew(Duration::from_secs(1))
                .request_timeout(Duration::from_secs(5))
                .backoff(Duration::from_millis(200), Duration::from_secs(1))
                .jitter_seed(7),
        )
        .wait(Duration::from_secs(10))
    }

    pub async fn start_with(&self, settings: ServiceSettings) -> TokenService {
        let http = ReqwestClient::new(settings.engine()).unwrap();
        TokenService::start(self.server.config(), settings, self.store().await, http)
            .await
            .unwrap()
    }

    pub async fn start(&self) -> TokenService {
        self.start_with(self.settings()).await
    }

    /// Consent at the fake, then the code exchange through the service.
    pub async fn install(&self, service: &TokenService, location: &str) -> GrantId {
        install(&self.server, service, location).await
    }

    pub async fn stored_refresh(&self, grant: &str) -> String {
        let record = self
            .store()
            .await
            .load(&GrantId::new(grant))
            .await
            .unwrap()
            .unwrap();
        record.refresh_token().unwrap().secret().to_owned()
    }

    /// Adds `grant` again as if its access token had expired, with the
    /// refresh token the store holds for it; returns that refresh token.
    pub async fn expire(&self, service: &TokenService, grant: &str) -> String {
        let live = self.stored_refresh(grant).await;
        service.add(grant, expired(grant, &live)).await.unwrap();
        live
    }

    pub fn token_calls(&self) -> u64 {
        self.server.shared.token_calls.load(Ordering::SeqCst)
    }
}

/// Consent for `location` (of `company-1`) at the fake, then the code
/// exchange through the service.
pub async fn install(server: &FakeHttp, service: &TokenService, location: &str) -> GrantId {
    let code = server
        .fake()
        .approve(&Install::location("company-1", location));
    service
        .exchange_code(code, Some(UserType::Location))
        .await
        .unwrap()
}

/// Tokens for `grant` obtained two days ago (expired), with this refresh token.
pub fn expired(grant: &str, refresh: &str) -> TokenSet {
    let mut token = TokenResponse::new(AccessToken::new(format!(
        "access-expired-{grant}-000000000000000000"
    )));
    token.refresh_token = Some(RefreshToken::new(refresh));
    token.expires_in = Some(86_399);
    token.location_id = Some(grant.to_owned());
    TokenSet::new(token, SystemTime::now() - Duration::from_secs(2 * 86_400))
}

/// The next event `wanted` accepts, within 15 s.
pub async fn next_event(
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
