//! The service when its store fails: nothing received is lost, the grant's
//! writes are retried in order, its callers wait for the write, and what
//! cannot be written by shutdown is handed back.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::fake_http::FakeHttp;
use hoopai_oauth::fake::Install;
use hoopai_oauth::{EngineSettings, GrantId, GrantRecord, UserType};
use hoopai_oauth_service::{
    GrantStore, MemoryStore, Page, ReqwestClient, ServiceEvent, ServiceSettings, StoreError, Swap,
    TokenService,
};

/// A memory store whose writes fail while `down` is set.
#[derive(Clone, Default)]
struct Flaky {
    inner: Arc<MemoryStore>,
    down: Arc<AtomicBool>,
}

impl Flaky {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Backend {
                store: "flaky",
                message: "disk full".into(),
            });
        }
        Ok(())
    }
}

impl GrantStore for Flaky {
    async fn load(&self, grant: &GrantId) -> Result<Option<GrantRecord>, StoreError> {
        self.inner.load(grant).await
    }
    async fn load_page(&self, after: Option<&GrantId>, limit: usize) -> Result<Page, StoreError> {
        self.inner.load_page(after, limit).await
    }
    async fn compare_and_swap(
        &self,
        record: &GrantRecord,
        replaces: Option<u64>,
    ) -> Result<Swap, StoreError> {
        self.check()?;
        self.inner.compare_and_swap(record, replaces).await
    }
    async fn put(&self, record: &GrantRecord) -> Result<(), StoreError> {
        self.check()?;
        self.inner.put(record).await
    }
    async fn delete(&self, grant: &GrantId) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.delete(grant).await
    }
}

async fn start(server: &FakeHttp, store: Flaky, shared: bool) -> TokenService {
    let mut engine = EngineSettings::default()
        .expiry_skew(Duration::from_secs(1))
        .request_timeout(Duration::from_secs(2));
    if shared {
        engine = engine.shared_store("worker-1", Duration::from_secs(4));
    }
    let settings = ServiceSettings::new(engine)
        .wait(Duration::from_secs(10))
        .shutdown_grace(Duration::from_millis(500))
        .write_retry(Duration::from_millis(50), Duration::from_millis(200));
    let http = ReqwestClient::new(settings.engine()).unwrap();
    TokenService::start(server.config(), settings, store, http)
        .await
        .unwrap()
}

async fn stored_refresh(store: &Flaky, grant: &str) -> String {
    let record = store
        .inner
        .load(&GrantId::new(grant))
        .await
        .unwrap()
        .unwrap();
    record.refresh_token().unwrap().secret().to_owned()
}

async fn recovers(shared: bool) {
    let server = FakeHttp::start().await;
    let store = Flaky::default();
    let service = start(&server, store.clone(), shared).await;
    let code = server
        .fake()
        .approve(&Install::location("company-1", "loc-1"));
    service
        .exchange_code(code, Some(UserType::Location))
        .await
        .unwrap();
    let first = service.access_token("loc-1").await.unwrap();
    let mut events = service.events();

    // The store goes down; an API refuses the token; the refresh succeeds at
    // the server but cannot be written.
    store.down.store(true, Ordering::SeqCst);
    let waiting = {
        let service = service.clone();
        let first = first.clone();
        tokio::spawn(async move { service.token_after_401("loc-1", &first).await })
    };
    loop {
        match events.recv().await.unwrap() {
            ServiceEvent::StoreWriteFailed { grant, error, .. } => {
                assert_eq!(grant.as_str(), "loc-1");
                assert!(error.to_string().contains("disk full"));
                break;
            }
            _ => continue,
        }
    }
    let live = server.fake().live_refresh_tokens();
    let stored = stored_refresh(&store, "loc-1").await;
    if shared {
        // Shared store: the lease write failed, so no refresh was sent and
        // the stored refresh token is still the live one.
        assert!(live.contains(&stored));
        assert_eq!(
            server.shared.token_calls.load(Ordering::SeqCst),
            1,
            "the code exchange only"
        );
    } else {
        // Single process: the refresh went out; the server's only live refresh
        // token is in memory, not in the store.
        assert!(!live.contains(&stored));
    }
    // Either way the caller is not handed a token yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "no token before its refresh token is written"
    );

    // The store comes back: the write goes through, then the caller gets the token.
    store.down.store(false, Ordering::SeqCst);
    let fresh = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_ne!(fresh.secret(), first.secret());
    let stored = stored_refresh(&store, "loc-1").await;
    assert!(server.fake().is_live_refresh_token(&stored));
    service.shutdown().await;
}

#[tokio::test]
async fn a_failed_write_is_retried_and_blocks_only_its_grant_single_process() {
    recovers(false).await;
}

#[tokio::test]
async fn a_failed_write_is_retried_and_blocks_only_its_grant_shared_store() {
    recovers(true).await;
}

#[tokio::test]
async fn shutdown_hands_back_records_it_could_not_write() {
    let server = FakeHttp::start().await;
    let store = Flaky::default();
    let service = start(&server, store.clone(), false).await;
    let code = server
        .fake()
        .approve(&Install::location("company-1", "loc-1"));
    service
        .exchange_code(code, Some(UserType::Location))
        .await
        .unwrap();
    let first = service.access_token("loc-1").await.unwrap();
    store.down.store(true, Ordering::SeqCst);
    let mut events = service.events();
    let _waiting = {
        let service = service.clone();
        tokio::spawn(async move { service.token_after_401("loc-1", &first).await })
    };
    while !matches!(
        events.recv().await.unwrap(),
        ServiceEvent::StoreWriteFailed { .. }
    ) {}
    let report = service.shutdown().await;
    assert_eq!(report.unwritten.len(), 1);
    let record = &report.unwritten[0];
    assert_eq!(record.grant.as_str(), "loc-1");
    assert!(
        server
            .fake()
            .is_live_refresh_token(record.refresh_token().unwrap().secret())
    );
}
