//! The service when its store fails: nothing received is lost, the grant's
//! writes are retried (by the service in single-process mode, by the engine
//! in shared-store mode), its callers wait for the write, and what cannot be
//! written by shutdown is handed back. Also: a refresh token rescued from an
//! answer for an earlier hold of a grant is written.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use common::fake_http::FakeHttp;
use hoopai_oauth::{AccessToken, EngineSettings, GrantId, GrantRecord};
use hoopai_oauth_service::{
    GrantStore, MemoryStore, Page, ReqwestClient, ServiceEvent, ServiceSettings, StoreError, Swap,
    TokenService,
};

/// A memory store whose writes fail while `down` is set, and whose next
/// `token_writes` writes of records without a lease (token writes, not
/// leases) fail.
#[derive(Clone, Default)]
struct Flaky {
    inner: Arc<MemoryStore>,
    down: Arc<AtomicBool>,
    token_writes: Arc<AtomicU32>,
    failed: Arc<AtomicU32>,
}

impl Flaky {
    fn check_record(&self, record: &GrantRecord) -> Result<(), StoreError> {
        let fail_token_write = record.lease.is_none()
            && self
                .token_writes
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if fail_token_write {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Backend {
                store: "flaky",
                message: "connection reset".into(),
            });
        }
        self.check()
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            self.failed.fetch_add(1, Ordering::SeqCst);
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
        self.check_record(record)?;
        self.inner.compare_and_swap(record, replaces).await
    }
    async fn put(&self, record: &GrantRecord) -> Result<(), StoreError> {
        self.check_record(record)?;
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
        .request_timeout(Duration::from_secs(2))
        .backoff(Duration::from_millis(100), Duration::from_millis(400));
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

/// A service over a [`Flaky`] store, `loc-1` installed through the code
/// exchange, and the access token first handed out for it.
async fn installed(shared: bool) -> (FakeHttp, Flaky, TokenService, AccessToken) {
    let server = FakeHttp::start().await;
    let store = Flaky::default();
    let service = start(&server, store.clone(), shared).await;
    common::env::install(&server, &service, "loc-1").await;
    let first = service.access_token("loc-1").await.unwrap();
    (server, store, service, first)
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
    let (server, store, service, first) = installed(shared).await;
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
    let (server, store, service, first) = installed(false).await;
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

/// Shared-store mode: a token write that fails is reported to the engine,
/// which writes it again on its own backoff; the caller gets the new token
/// only once it is written, and no second refresh is sent.
#[tokio::test]
async fn shared_store_a_failed_token_write_is_written_again_by_the_engine() {
    let (server, store, service, first) = installed(true).await;
    let mut events = service.events();
    // The lease write goes through, the refresh is sent, and the write of
    // its answer fails twice.
    store.token_writes.store(2, Ordering::SeqCst);
    let fresh = service.token_after_401("loc-1", &first).await.unwrap();
    assert_ne!(fresh.secret(), first.secret());
    assert_eq!(store.failed.load(Ordering::SeqCst), 2);
    let (mut failed, mut recovered) = (0, 0);
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await
    {
        match event {
            ServiceEvent::StoreWriteFailed {
                grant, retry_in, ..
            } => {
                assert_eq!(grant.as_str(), "loc-1");
                assert_eq!(retry_in, None, "the engine schedules the write");
                failed += 1;
            }
            ServiceEvent::StoreWriteRecovered { .. } => recovered += 1,
            _ => {}
        }
    }
    assert_eq!((failed, recovered), (2, 1));
    let stored = stored_refresh(&store, "loc-1").await;
    assert!(server.fake().is_live_refresh_token(&stored));
    assert_eq!(server.fake().stats().refreshes, 1, "one refresh, not two");
    let report = service.shutdown().await;
    assert!(report.unwritten.is_empty());
}

/// Shutdown in shared-store mode waits for the engine's rewrite of a token
/// whose write failed, within the grace period.
#[tokio::test]
async fn shared_store_shutdown_waits_for_a_failed_write_to_go_through() {
    let (server, store, service, first) = installed(true).await;
    let mut events = service.events();
    store.token_writes.store(1, Ordering::SeqCst);
    let _waiting = {
        let service = service.clone();
        tokio::spawn(async move { service.token_after_401("loc-1", &first).await })
    };
    while !matches!(
        events.recv().await.unwrap(),
        ServiceEvent::StoreWriteFailed { .. }
    ) {}
    let report = service.shutdown().await;
    assert!(report.unwritten.is_empty(), "{:?}", report.unwritten);
    assert!(report.abandoned.is_empty());
    let stored = stored_refresh(&store, "loc-1").await;
    assert!(server.fake().is_live_refresh_token(&stored));
}

/// A grant removed while its refresh is out: the answer is for a grant no
/// longer held, so the engine refuses it, but the refresh token it carries
/// is the grant's only live one. When the grant is added back with the
/// spent token, the rescued one goes to the engine (`handle_rescued`) and
/// is written.
#[tokio::test]
async fn a_refresh_token_rescued_from_an_earlier_hold_is_written() {
    let (server, store, service, first) = installed(false).await;
    let held = store
        .inner
        .load(&GrantId::new("loc-1"))
        .await
        .unwrap()
        .unwrap();
    let mut events = service.events();
    server.set_delay(Duration::from_millis(500));
    let _waiting = {
        let service = service.clone();
        tokio::spawn(async move { service.token_after_401("loc-1", &first).await })
    };
    while server.shared.token_calls.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Removed while the refresh is out; its answer comes for a grant no
    // longer held.
    service.remove("loc-1").await.unwrap();
    loop {
        if let ServiceEvent::AnswerForRemovedGrant { grant, rescued } =
            tokio::time::timeout(Duration::from_secs(5), events.recv())
                .await
                .unwrap()
                .unwrap()
        {
            assert_eq!(grant.as_str(), "loc-1");
            assert!(rescued);
            break;
        }
    }
    // Added back with the tokens it had (e.g. from a backup): the refresh
    // token in them is spent; the rescued one takes its place.
    service.add("loc-1", held.tokens.clone()).await.unwrap();
    loop {
        if let ServiceEvent::RescuedTokenAdopted { grant } =
            tokio::time::timeout(Duration::from_secs(5), events.recv())
                .await
                .unwrap()
                .unwrap()
        {
            assert_eq!(grant.as_str(), "loc-1");
            break;
        }
    }
    // Written ahead of anything else: the store holds the live token.
    let mut stored = stored_refresh(&store, "loc-1").await;
    for _ in 0..50 {
        if server.fake().is_live_refresh_token(&stored) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        stored = stored_refresh(&store, "loc-1").await;
    }
    assert!(server.fake().is_live_refresh_token(&stored));
    assert_ne!(stored, held.refresh_token().unwrap().secret());
    server.set_delay(Duration::ZERO);
    // And it keeps working: the next refresh presents the rescued token.
    let token = service.access_token("loc-1").await.unwrap();
    let again = service.token_after_401("loc-1", &token).await.unwrap();
    assert_ne!(again.secret(), token.secret());
    let stored = stored_refresh(&store, "loc-1").await;
    assert!(server.fake().is_live_refresh_token(&stored));
    service.shutdown().await;
}
