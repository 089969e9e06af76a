//! The service when its store fails: nothing received is lost, the grant's
//! writes are written again on the engine's backoff (in both modes), its
//! callers wait for the write rather than get a token whose refresh token
//! is not written (and are told the store is failing if their wait ends
//! first), and what cannot be written by shutdown is handed back. Also: a grant uninstalled while its refresh is out leaves
//! nothing behind.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use common::fake_http::FakeHttp;
use hoopai_oauth::{
    AccessToken, EngineEvent, EngineSettings, GrantId, GrantRecord, RefreshFailure, WriteOutcome,
};
use hoopai_oauth_service::{
    GrantStore, MemoryStore, Page, ReqwestClient, ServiceEvent, ServiceSettings, StoreError,
    TokenError, TokenService,
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
    ) -> Result<WriteOutcome, StoreError> {
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
        .shutdown_grace(Duration::from_millis(500));
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

/// Waits for the engine to say that a write of `grant` failed: a token
/// write (`WriteFailed`) or a lease write (`RetryScheduled` for the store).
async fn write_failed(
    events: &mut tokio::sync::broadcast::Receiver<ServiceEvent>,
    grant: &str,
) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            ServiceEvent::Engine(EngineEvent::WriteFailed {
                grant: g, failure, ..
            })
            | ServiceEvent::Engine(EngineEvent::RetryScheduled {
                grant: g,
                failure: RefreshFailure::Store(failure),
                ..
            }) if g.as_str() == grant => return failure.to_string(),
            _ => continue,
        }
    }
}

async fn recovers(shared: bool) {
    let (server, store, service, first) = installed(shared).await;
    let mut events = service.events();

    // The store goes down; an API refuses the token; the refresh succeeds at
    // the server but cannot be written (shared store: the lease cannot be).
    store.down.store(true, Ordering::SeqCst);
    let waiting = {
        let service = service.clone();
        let first = first.clone();
        tokio::spawn(async move { service.token_after_401("loc-1", &first).await })
    };
    let said = write_failed(&mut events, "loc-1").await;
    assert!(said.contains("disk full"), "{said}");
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
    // The caller is not handed a token whose refresh token is not written:
    // it waits; one whose wait ends meanwhile is told the store is
    // failing, with what it said.
    match service
        .access_token_within("loc-1", Duration::from_millis(300))
        .await
    {
        Err(TokenError::StoreFailing { grant, message }) => {
            assert_eq!(grant.as_str(), "loc-1");
            assert!(message.contains("disk full"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!waiting.is_finished(), "no token before it is written");

    // The store comes back: the engine writes again, then the caller gets
    // the new token.
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
    write_failed(&mut events, "loc-1").await;
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
            ServiceEvent::Engine(EngineEvent::WriteFailed { grant, .. }) => {
                assert_eq!(grant.as_str(), "loc-1");
                failed += 1;
            }
            ServiceEvent::Engine(EngineEvent::WriteRecovered { .. }) => recovered += 1,
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
    write_failed(&mut events, "loc-1").await;
    let report = service.shutdown().await;
    assert!(report.unwritten.is_empty(), "{:?}", report.unwritten);
    assert!(report.abandoned.is_empty());
    let stored = stored_refresh(&store, "loc-1").await;
    assert!(server.fake().is_live_refresh_token(&stored));
}

/// A grant uninstalled while its refresh is out: its record is deleted,
/// its tokens wiped, and the answer that comes after is for a grant no
/// longer held: nothing writes the record back, and its token is not kept.
#[tokio::test]
async fn a_grant_uninstalled_during_its_refresh_leaves_nothing_behind() {
    let (server, store, service, first) = installed(false).await;
    let mut events = service.events();
    server.set_delay(Duration::from_millis(500));
    let waiting = {
        let service = service.clone();
        tokio::spawn(async move { service.token_after_401("loc-1", &first).await })
    };
    while server.shared.token_calls.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    service.remove("loc-1").await.unwrap();
    assert!(matches!(
        waiting.await.unwrap(),
        Err(TokenError::UnknownGrant(_))
    ));
    loop {
        if let ServiceEvent::Engine(EngineEvent::AnswerAfterRemoval {
            grant,
            refresh_token_kept,
        }) = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            assert_eq!(grant.as_str(), "loc-1");
            assert!(
                !refresh_token_kept,
                "an uninstalled grant's token is not kept"
            );
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        store
            .inner
            .load(&GrantId::new("loc-1"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(service.list().await.unwrap().is_empty());
    service.shutdown().await;
}
